/* The S3 client: its configuration, the signing step its requests take
 * (SigV4), and the operations that are one request each (head, get, delete,
 * DeleteObjects, buckets, listing, multipart uploads' listing and abort,
 * presigned URLs). The engine that runs requests is s3_request.c; many GETs
 * at once s3_many.c; uploads s3_upload.c. See include/mxpc/s3.h. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>
#include <openssl/evp.h>

#include "mxpc/buf.h"
#include "mxpc/http.h"
#include "mxpc/log.h"
#include "mxpc/s3.h"
#include "mxpc/sigv4.h"
#include "mxpc/xml.h"

#include "s3_request.h"

/* --- signing: the step the engine calls before each attempt ------------------ */

/* Host and path for a bucket and key. */
static void build_target(const struct mxpc_s3 *s3, const char *bucket, const char *key, struct mxpc_buf *host,
                         struct mxpc_buf *path)
{
    int has_bucket = bucket && *bucket;
    if (has_bucket && !s3->path_style)
        mxpc_buf_printf(host, "%s.%s", bucket, s3->authority);
    else
        mxpc_buf_puts(host, s3->authority);
    mxpc_buf_puts(path, s3->prefix);
    if (has_bucket && s3->path_style) {
        mxpc_buf_putc(path, '/');
        mxpc_sigv4_uri_encode(path, bucket, strlen(bucket), 0);
    }
    if (key) {
        mxpc_buf_putc(path, '/');
        mxpc_sigv4_uri_encode(path, key, strlen(key), 1);
    }
    if (path->len == 0)
        mxpc_buf_putc(path, '/');
}


static struct curl_slist *add_header(struct curl_slist *list, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Any length: a session token is signed, and a cut one would not match. */
static struct curl_slist *add_header(struct curl_slist *list, const char *fmt, ...)
{
    struct mxpc_buf b = MXPC_BUF_INIT;
    va_list ap;
    va_start(ap, fmt);
    mxpc_buf_vprintf(&b, fmt, ap);
    va_end(ap);
    struct curl_slist *l = curl_slist_append(list, b.data ? b.data : "");
    mxpc_buf_free(&b);
    if (!l)
        abort();
    return l;
}

/* The client's credentials and region, signing now. */
static struct mxpc_sigv4_signer signer_now(const struct mxpc_s3 *s3, unsigned flags)
{
    struct mxpc_sigv4_signer signer = {
        .access_key = s3->creds.access_key,
        .secret_key = s3->creds.secret_key,
        .session_token = s3->creds.session_token,
        .region = s3->region,
        .service = "s3",
        .time = time(NULL),
        .flags = flags,
    };
    return signer;
}

/* The URL, SigV4 (header signing) and the headers signed with it; the Host
 * header is set explicitly so that what is signed is what is sent. The
 * payload's hash is computed once, on the first attempt. */
static CURLcode sign(struct mxpc_s3 *s3, struct request *r)
{
    if (!r->payload_hash[0]) {
        if (!r->body)
            snprintf(r->payload_hash, sizeof r->payload_hash, "%s", MXPC_SIGV4_EMPTY_SHA256);
        else if (r->unsigned_ok && s3->unsigned_payload)
            snprintf(r->payload_hash, sizeof r->payload_hash, "%s", MXPC_SIGV4_UNSIGNED_PAYLOAD);
        else
            mxpc_sigv4_sha256_hex(r->body, r->body_len, r->payload_hash);
    }
    struct mxpc_buf host = MXPC_BUF_INIT, path = MXPC_BUF_INIT;
    build_target(s3, r->bucket, r->key, &host, &path);
    r->url.len = 0;
    mxpc_buf_printf(&r->url, "%s://%s%s%s%s", s3->scheme, host.data, path.data, r->query ? "?" : "",
                    r->query ? r->query : "");
    const char *range = r->range;
    struct mxpc_sigv4_header signed_headers[7];
    size_t nsigned = 0;
    if (r->content_md5)
        signed_headers[nsigned++] = (struct mxpc_sigv4_header){"content-md5", r->content_md5};
    signed_headers[nsigned++] = (struct mxpc_sigv4_header){"host", host.data};
    if (range[0])
        signed_headers[nsigned++] = (struct mxpc_sigv4_header){"range", range};
    if (r->if_match)
        signed_headers[nsigned++] = (struct mxpc_sigv4_header){"if-match", r->if_match};
    if (r->copy_source)
        signed_headers[nsigned++] = (struct mxpc_sigv4_header){"x-amz-copy-source", r->copy_source};
    if (r->copy_range)
        signed_headers[nsigned++] = (struct mxpc_sigv4_header){"x-amz-copy-source-range", r->copy_range};
    struct mxpc_sigv4_request sreq = {r->method, path.data, r->query, signed_headers, nsigned, r->payload_hash};
    struct mxpc_sigv4_result sig = MXPC_SIGV4_RESULT_INIT;
    CURLcode rc = CURLE_OK;
    /* temporary credentials are replaced shortly before they expire */
    if (mxpc_aws_credentials_refresh(&s3->creds, r->curl_err, sizeof r->curl_err) != 0) {
        char *nl = strchr(r->curl_err, '\n');
        if (nl)
            *nl = '\0';
        rc = CURLE_LOGIN_DENIED;
        goto out;
    }
    struct mxpc_sigv4_signer signer = signer_now(s3, MXPC_SIGV4_CONTENT_SHA256);
    if (mxpc_sigv4_sign(&signer, &sreq, &sig) != 0) {
        snprintf(r->curl_err, sizeof r->curl_err, "cannot sign the request");
        rc = CURLE_BAD_FUNCTION_ARGUMENT;
        goto out;
    }
    if (mxpc_log_get_level() >= MXPC_LOG_TRACE)
        mxpc_log(MXPC_LOG_TRACE, "s3 canonical request:\n%s\nstring to sign:\n%s", sig.canonical_request.data,
                 sig.string_to_sign.data);
    curl_slist_free_all(r->headers);
    r->headers = NULL;
    r->headers = add_header(r->headers, "Host: %s", host.data);
    r->headers = add_header(r->headers, "x-amz-date: %s", sig.amz_date);
    r->headers = add_header(r->headers, "x-amz-content-sha256: %s", r->payload_hash);
    if (s3->creds.session_token)
        r->headers = add_header(r->headers, "x-amz-security-token: %s", s3->creds.session_token);
    r->headers = add_header(r->headers, "Authorization: %s", sig.authorization.data);
    if (range[0])
        r->headers = add_header(r->headers, "Range: %s", range);
    if (r->if_match)
        r->headers = add_header(r->headers, "If-Match: %s", r->if_match);
    if (r->copy_source)
        r->headers = add_header(r->headers, "x-amz-copy-source: %s", r->copy_source);
    if (r->copy_range)
        r->headers = add_header(r->headers, "x-amz-copy-source-range: %s", r->copy_range);
    r->headers = add_header(r->headers, "Content-Type: %s", r->content_type ? r->content_type : "");
    if (r->content_md5)
        r->headers = add_header(r->headers, "Content-MD5: %s", r->content_md5);
out:
    mxpc_sigv4_result_free(&sig);
    mxpc_buf_free(&host);
    mxpc_buf_free(&path);
    return rc;
}

/* --- client --------------------------------------------------------------- */

static char *env_or(const char *value, const char *env)
{
    if (value && *value)
        return mxpc_strdup(value);
    const char *v = getenv(env);
    return v && *v ? mxpc_strdup(v) : NULL;
}

struct mxpc_s3 *mxpc_s3_new(const struct mxpc_s3_config *cfg, struct mxpc_s3_error *e)
{
    s3_clear_error(e);
    const struct mxpc_aws_credentials *cr = cfg->credentials;
    if (!cr || !cr->access_key || !*cr->access_key || !cr->secret_key || !*cr->secret_key) {
        s3_set_error(e, "usage", NULL, "S3 client without credentials");
        return NULL;
    }
    int64_t part = cfg->part_size ? cfg->part_size : MXPC_S3_DEFAULT_PART_SIZE;
    if (part < MXPC_S3_MIN_PART_SIZE || part > MXPC_S3_MAX_PART_SIZE) {
        s3_set_error(e, "usage", NULL, "part size %lld is outside 5 MiB..5 GiB", (long long)part);
        return NULL;
    }
    int64_t threshold = cfg->multipart_threshold > 0 ? cfg->multipart_threshold : part;
    if (threshold > part) {
        /* a single PUT holds the whole object in memory: no more than one part */
        s3_set_error(e, "usage", NULL, "the multipart threshold (%lld) must not exceed the part size (%lld)",
                     (long long)threshold, (long long)part);
        return NULL;
    }

    char *region = mxpc_strdup(mxpc_aws_region(cfg->region, "us-east-1"));
    struct mxpc_buf ep = MXPC_BUF_INIT;
    if (cfg->endpoint && *cfg->endpoint)
        mxpc_buf_puts(&ep, cfg->endpoint);
    else
        mxpc_buf_printf(&ep, "https://s3.%s.amazonaws.com", region);
    const char *rest;
    int https;
    if (strncmp(ep.data, "https://", 8) == 0)
        https = 1, rest = ep.data + 8;
    else if (strncmp(ep.data, "http://", 7) == 0)
        https = 0, rest = ep.data + 7;
    else {
        s3_set_error(e, "usage", "write it as https://host[:port] or http://host[:port]",
                     "S3 endpoint %s is not an http(s) URL", ep.data);
        mxpc_buf_free(&ep);
        free(region);
        return NULL;
    }
    size_t alen = strcspn(rest, "/?#");
    if (memchr(rest, '@', alen)) {
        s3_set_error(e, "usage",
                     "write it as https://host[:port][/path]: the credentials are the access key and the secret key",
                     "S3 endpoint %s holds a user name and password", ep.data);
        mxpc_buf_free(&ep);
        free(region);
        return NULL;
    }
    if (alen == 0 || rest[alen] == '?' || rest[alen] == '#') {
        s3_set_error(e, "usage", "write it as https://host[:port][/path]", "S3 endpoint %s is not usable", ep.data);
        mxpc_buf_free(&ep);
        free(region);
        return NULL;
    }

    struct mxpc_s3 *s3 = calloc(1, sizeof *s3);
    if (!s3)
        abort();
    s3->sign = sign;
    s3->dialect = &s3_dialect_s3;
    s3->http = mxpc_http_new();
    if (!s3->http) {
        free(s3);
        s3_set_error(e, "connect", NULL, "cannot initialise libcurl");
        mxpc_buf_free(&ep);
        free(region);
        return NULL;
    }
    s3->endpoint = mxpc_strdup(ep.data);
    s3->scheme = mxpc_strdup(https ? "https" : "http");
    s3->authority = strndup(rest, alen);
    s3->prefix = mxpc_strdup(rest + alen);
    size_t plen = strlen(s3->prefix);
    while (plen > 0 && s3->prefix[plen - 1] == '/')
        s3->prefix[--plen] = '\0';
    mxpc_buf_free(&ep);
    s3->region = region;
    s3->https = https;
    s3->path_style = cfg->path_style >= 0 ? cfg->path_style : !strstr(s3->authority, "amazonaws.com");
    /* Over https TLS protects the body, so hashing it buys nothing; over http
     * the signed SHA-256 is the only integrity check (RGW verifies it). */
    s3->unsigned_payload = cfg->unsigned_payload >= 0 ? cfg->unsigned_payload : https;
    s3->ca_file = env_or(cfg->ca_file, "SSL_CERT_FILE");
    s3->ca_dir = env_or(cfg->ca_dir, "SSL_CERT_DIR");
    s3->part_size = part;
    s3->threshold = threshold;
    s3->max_retries = cfg->max_retries >= 0 ? cfg->max_retries : 4;
    s3->max_send_speed = cfg->max_send_speed;
    mxpc_aws_credentials_copy(&s3->creds, cr);
    mxpc_redact_add(s3->creds.secret_key);
    mxpc_redact_add(s3->creds.session_token);
    return s3;
}

void mxpc_s3_free(struct mxpc_s3 *s3)
{
    if (!s3)
        return;
    mxpc_http_free(s3->http);
    if (s3->dialect_free)
        s3->dialect_free(s3->dialect_ud);
    free(s3->endpoint);
    free(s3->scheme);
    free(s3->authority);
    free(s3->prefix);
    free(s3->region);
    free(s3->ca_file);
    free(s3->ca_dir);
    mxpc_aws_credentials_clear(&s3->creds);
    free(s3);
}

const char *mxpc_s3_endpoint(const struct mxpc_s3 *s3) { return s3->endpoint; }
const char *mxpc_s3_access_key(const struct mxpc_s3 *s3) { return s3->creds.access_key; }
const char *mxpc_s3_region(const struct mxpc_s3 *s3) { return s3->region; }

void mxpc_s3_stats(const struct mxpc_s3 *s3, int64_t *bytes_in, int64_t *bytes_out, int64_t *requests)
{
    *bytes_in = s3->bytes_in;
    *bytes_out = s3->bytes_out;
    *requests = s3->requests;
}

/* --- operations ----------------------------------------------------------- */

int mxpc_s3_head(struct mxpc_s3 *s3, const char *bucket, const char *key, struct mxpc_s3_object *out,
                 struct mxpc_s3_error *e)
{
    if (s3_check_names(bucket, key, 1, e))
        return -1;
    struct request r = {.method = "HEAD", .bucket = bucket, .key = key, .idempotent = 1, .expected_size = -1};
    int rc = s3_execute(s3, &r, 0, e);
    if (rc == 0 && out) {
        out->size = r.content_length;
        snprintf(out->etag, sizeof out->etag, "%s", r.etag);
    }
    s3_request_free(&r);
    return rc;
}

static int get_object(struct mxpc_s3 *s3, const char *bucket, const char *key, int64_t expected_size,
                      const struct mxpc_s3_range *range, mxpc_s3_sink_fn sink, void *ud, int64_t *bytes,
                      struct mxpc_s3_error *e)
{
    if (bytes)
        *bytes = 0;
    if (s3_check_names(bucket, key, 1, e))
        return -1;
    struct request r = {.method = "GET",
                        .bucket = bucket,
                        .key = key,
                        .idempotent = 1,
                        .sink = sink,
                        .sink_ud = ud,
                        .expected_size = expected_size};
    if (range) {
        r.offset = range->offset;
        r.end = range->offset + range->length;
        r.if_match = range->if_match && *range->if_match ? range->if_match : NULL;
        expected_size = range->length; /* checked at the end: the answer's length is the range's */
    }
    int rc = s3_execute(s3, &r, 0, e);
    if (rc == 0 && expected_size >= 0 && r.delivered != expected_size) {
        char what[1024];
        s3_object_name(what, sizeof what, bucket, key);
        s3_set_error(e, "size", NULL, "%s: received %lld bytes, expected %lld", what, (long long)r.delivered,
                     (long long)expected_size);
        rc = -1;
    }
    if (bytes)
        *bytes = r.delivered;
    s3_request_free(&r);
    return rc;
}

int mxpc_s3_get(struct mxpc_s3 *s3, const char *bucket, const char *key, int64_t expected_size,
                mxpc_s3_sink_fn sink, void *ud, int64_t *bytes, struct mxpc_s3_error *e)
{
    return get_object(s3, bucket, key, expected_size, NULL, sink, ud, bytes, e);
}

int mxpc_s3_get_range(struct mxpc_s3 *s3, const char *bucket, const char *key, const struct mxpc_s3_range *range,
                      mxpc_s3_sink_fn sink, void *ud, int64_t *bytes, struct mxpc_s3_error *e)
{
    if (range->offset < 0 || range->length <= 0) {
        if (bytes)
            *bytes = 0;
        s3_clear_error(e);
        s3_set_error(e, "usage", NULL, "a range needs offset >= 0 and length > 0");
        return -1;
    }
    return get_object(s3, bucket, key, -1, range, sink, ud, bytes, e);
}

static int simple(struct mxpc_s3 *s3, const char *method, const char *bucket, const char *key, const char *query,
                  const char *body, struct mxpc_s3_error *e)
{
    struct request r = {.method = method,
                        .bucket = bucket,
                        .key = key,
                        .query = query,
                        .body = body,
                        .body_len = body ? strlen(body) : 0,
                        .idempotent = 1,
                        .expected_size = -1};
    int rc = s3_execute(s3, &r, 0, e);
    s3_request_free(&r);
    return rc;
}

int mxpc_s3_delete(struct mxpc_s3 *s3, const char *bucket, const char *key, struct mxpc_s3_error *e)
{
    if (s3_check_names(bucket, key, 1, e))
        return -1;
    int rc = simple(s3, "DELETE", bucket, key, NULL, NULL, e);
    if (rc != 0 && e->http_status == 404 && strcmp(s3->dialect->service, "azure") == 0 &&
        strcmp(e->s3_code, "BlobNotFound") == 0)
        rc = 0, s3_clear_error(e); /* as S3 answers: a missing key is deleted */
    return rc;
}

/* The <Error> elements of a DeleteObjects answer: the current one as it is
 * read (xml_capture), and the first. */
struct delete_errors {
    char key[1024], code[64], message[256];
    char first_key[1024], first_code[64], first_message[256];
};

static void delete_error_end(struct mxpc_xml_capture *c)
{
    struct delete_errors *d = c->ud;
    if (c->records == 1) {
        memcpy(d->first_key, d->key, sizeof d->key);
        memcpy(d->first_code, d->code, sizeof d->code);
        memcpy(d->first_message, d->message, sizeof d->message);
    }
    d->key[0] = d->code[0] = d->message[0] = '\0';
}

int mxpc_s3_delete_objects(struct mxpc_s3 *s3, const char *bucket, const char *const *keys, size_t n,
                           size_t *refused, struct mxpc_s3_error *e)
{
    s3_clear_error(e);
    if (refused)
        *refused = 0;
    if (n == 0)
        return 0;
    if (n > MXPC_S3_DELETE_BATCH) {
        s3_set_error(e, "usage", NULL, "at most %d keys can be deleted in one request", MXPC_S3_DELETE_BATCH);
        return -1;
    }
    if (s3_check_names(bucket, NULL, 0, e))
        return -1;
    if (s3->dialect->delete_many)
        return s3->dialect->delete_many(s3, bucket, keys, n, refused, e);
    struct mxpc_buf body = MXPC_BUF_INIT;
    mxpc_buf_puts(&body, "<Delete xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Quiet>true</Quiet>");
    for (size_t i = 0; i < n; i++) {
        if (s3_check_names(bucket, keys[i], 1, e)) {
            mxpc_buf_free(&body);
            return -1;
        }
        mxpc_buf_puts(&body, "<Object><Key>");
        if (mxpc_xml_text(&body, keys[i]) != 0) {
            char what[1024];
            s3_object_name(what, sizeof what, bucket, keys[i]);
            s3_set_error(e, "usage", "delete it with a single DELETE",
                         "%s: the key has a control character, which a "
                         "DeleteObjects request cannot carry",
                         what);
            mxpc_buf_free(&body);
            return -1;
        }
        mxpc_buf_puts(&body, "</Key></Object>");
    }
    mxpc_buf_puts(&body, "</Delete>");
    unsigned char md5[EVP_MAX_MD_SIZE];
    unsigned int md5_len = 0;
    char md5_b64[32];
    if (!EVP_Digest(body.data, body.len, md5, &md5_len, EVP_md5(), NULL) ||
        EVP_EncodeBlock((unsigned char *)md5_b64, md5, (int)md5_len) <= 0) {
        s3_set_error(e, "io", NULL, "cannot compute the MD5 a DeleteObjects request needs");
        mxpc_buf_free(&body);
        return -1;
    }
    struct request r = {.method = "POST",
                        .bucket = bucket,
                        .query = "delete",
                        .body = body.data,
                        .body_len = body.len,
                        .content_type = "application/xml",
                        .content_md5 = md5_b64,
                        .idempotent = 1, /* deleting again what is gone is no harm */
                        .expected_size = -1};
    int rc = s3_execute(s3, &r, 0, e);
    if (rc == 0) {
        struct delete_errors d;
        memset(&d, 0, sizeof d);
        struct mxpc_xml_capture c = {{"Key", "Code", "Message"},
                                     {d.key, d.code, d.message},
                                     {sizeof d.key, sizeof d.code, sizeof d.message},
                                     "Error",
                                     delete_error_end,
                                     &d,
                                     0};
        if (mxpc_xml_each(r.response.data ? r.response.data : "", r.response.len, mxpc_xml_capture_element, &c) != 0) {
            s3_set_error(e, "io", NULL, "deleting %zu objects in s3://%s: the answer is not the XML S3 sends", n,
                         bucket && *bucket ? bucket : "(endpoint)");
            rc = -1;
        } else if (c.records > 0) {
            size_t refused_n = (size_t)c.records;
            char what[sizeof d.first_key + 128];
            s3_object_name(what, sizeof what, bucket, d.first_key);
            s3_set_error(e, "s3", NULL, "%zu of %zu objects were not deleted; the first, %s: %s%s%s", refused_n, n,
                         what, d.first_code, d.first_message[0] ? ": " : "", d.first_message);
            snprintf(e->s3_code, sizeof e->s3_code, "%s", d.first_code);
            s3_set_facts(s3, &r, e, "delete");
            snprintf(e->facts.object, sizeof e->facts.object, "%s", what);
            snprintf(e->facts.key, sizeof e->facts.key, "%s", d.first_key);
            snprintf(e->facts.s3_message, sizeof e->facts.s3_message, "%s", d.first_message);
            e->facts.count = (long long)refused_n;
            e->facts.total = (long long)n;
            if (refused)
                *refused = refused_n;
            rc = -1;
        }
    }
    s3_request_free(&r);
    mxpc_buf_free(&body);
    return rc;
}

int mxpc_s3_create_bucket(struct mxpc_s3 *s3, const char *bucket, struct mxpc_s3_error *e)
{
    if (s3_check_names(bucket, NULL, 0, e))
        return -1;
    struct mxpc_buf body = MXPC_BUF_INIT;
    if (strcmp(s3->region, "us-east-1") != 0) /* AWS wants the region named, except the default one */
        mxpc_buf_printf(&body,
                        "<CreateBucketConfiguration><LocationConstraint>%s</LocationConstraint>"
                        "</CreateBucketConfiguration>",
                        s3->region);
    int rc = simple(s3, "PUT", bucket, NULL, NULL, body.data, e);
    mxpc_buf_free(&body);
    return rc;
}

int mxpc_s3_delete_bucket(struct mxpc_s3 *s3, const char *bucket, struct mxpc_s3_error *e)
{
    if (s3_check_names(bucket, NULL, 0, e))
        return -1;
    return simple(s3, "DELETE", bucket, NULL, NULL, NULL, e);
}

int mxpc_s3_abort_multipart(struct mxpc_s3 *s3, const char *bucket, const char *key, const char *upload_id,
                            struct mxpc_s3_error *e)
{
    if (s3_check_names(bucket, key, 1, e))
        return -1;
    struct mxpc_buf q = MXPC_BUF_INIT;
    mxpc_buf_puts(&q, "uploadId=");
    mxpc_sigv4_uri_encode(&q, upload_id, strlen(upload_id), 0);
    int rc = simple(s3, "DELETE", bucket, key, q.data, NULL, e);
    mxpc_buf_free(&q);
    return rc;
}

struct upload_list {
    char key[1024];
    char id[512];
    mxpc_s3_upload_fn fn;
    void *ud;
};

static void upload_listed(struct mxpc_xml_capture *c)
{
    struct upload_list *l = c->ud;
    l->fn(l->ud, l->key, l->id);
    l->key[0] = l->id[0] = '\0';
}

int mxpc_s3_list_multipart_uploads(struct mxpc_s3 *s3, const char *bucket, mxpc_s3_upload_fn fn, void *ud,
                                   struct mxpc_s3_error *e)
{
    if (s3_check_names(bucket, NULL, 0, e))
        return -1;
    struct request r = {.method = "GET", .bucket = bucket, .query = "uploads", .idempotent = 1, .expected_size = -1};
    int rc = s3_execute(s3, &r, 0, e);
    struct upload_list l = {"", "", fn, ud};
    struct mxpc_xml_capture cap = {
        {"Key", "UploadId"}, {l.key, l.id}, {sizeof l.key, sizeof l.id}, "Upload", upload_listed, &l, 0};
    if (rc == 0 && mxpc_xml_each(r.response.data, r.response.len, mxpc_xml_capture_element, &cap) != 0) {
        s3_set_error(e, "s3", NULL, "cannot parse the multipart upload list of bucket %s", bucket);
        rc = -1;
    }
    s3_request_free(&r);
    return rc;
}

/* One page of ListObjectsV2: the objects (the strings of each in `strings`,
 * at the offsets recorded), whether more follow, and the token for them. */
struct list_page {
    struct mxpc_buf strings;
    struct listed {
        size_t key, etag, modified; /* offsets into strings */
        int64_t size;
    } *objects;
    size_t n, cap;
    /* the <Contents> being read */
    struct mxpc_buf key;
    char etag[128], modified[64];
    int64_t size;
    int truncated, bad;
    struct mxpc_buf token;
};

static size_t page_string(struct list_page *p, const char *s, size_t len)
{
    size_t at = p->strings.len;
    mxpc_buf_append(&p->strings, s, len);
    mxpc_buf_putc(&p->strings, '\0');
    return at;
}

static void list_element(void *ud, const char *name, const char *parent, const char *text)
{
    (void)parent;
    struct list_page *p = ud;
    if (strcmp(name, "Key") == 0 || (strcmp(name, "Name") == 0 && strcmp(parent, "Blob") == 0)) {
        p->key.len = 0;
        mxpc_buf_puts(&p->key, text);
    } else if (strcmp(name, "Size") == 0 || strcmp(name, "Content-Length") == 0) {
        char *end;
        long long v = strtoll(text, &end, 10);
        if (end == text || *end || v < 0)
            p->bad = 1;
        p->size = v;
    } else if (strcmp(name, "ETag") == 0 || strcmp(name, "Etag") == 0) {
        snprintf(p->etag, sizeof p->etag, "%s", text);
    } else if (strcmp(name, "LastModified") == 0 || strcmp(name, "Last-Modified") == 0) {
        snprintf(p->modified, sizeof p->modified, "%s", text);
    } else if (strcmp(name, "IsTruncated") == 0) {
        p->truncated = strcmp(text, "true") == 0;
    } else if (strcmp(name, "NextContinuationToken") == 0 || strcmp(name, "NextMarker") == 0) {
        p->token.len = 0;
        mxpc_buf_puts(&p->token, text);
        if (name[4] == 'M') /* Azure: a marker means more */
            p->truncated = p->token.len > 0;
    } else if (strcmp(name, "Contents") == 0 || strcmp(name, "Blob") == 0) {
        if (p->n == p->cap) {
            p->cap = p->cap ? p->cap * 2 : 64;
            p->objects = realloc(p->objects, p->cap * sizeof *p->objects);
            if (!p->objects)
                abort();
        }
        struct listed *o = &p->objects[p->n++];
        o->key = page_string(p, p->key.data ? p->key.data : "", p->key.len);
        o->etag = page_string(p, p->etag, strlen(p->etag));
        o->modified = page_string(p, p->modified, strlen(p->modified));
        o->size = p->size;
        p->key.len = 0;
        p->etag[0] = p->modified[0] = '\0';
        p->size = 0;
    }
}

static void list_page_reset(struct list_page *p)
{
    p->strings.len = 0;
    p->n = 0;
    p->truncated = p->bad = 0;
    p->token.len = 0;
}

static void list_page_free(struct list_page *p)
{
    mxpc_buf_free(&p->strings);
    mxpc_buf_free(&p->key);
    mxpc_buf_free(&p->token);
    free(p->objects);
}


static void s3_list_query(struct mxpc_buf *q, const char *prefix, const char *token, int max_keys)
{
    mxpc_buf_puts(q, "list-type=2");
    if (*token) {
        mxpc_buf_puts(q, "&continuation-token=");
        mxpc_sigv4_uri_encode(q, token, strlen(token), 0);
    }
    if (max_keys > 0)
        mxpc_buf_printf(q, "&max-keys=%d", max_keys);
    mxpc_buf_puts(q, "&prefix=");
    mxpc_sigv4_uri_encode(q, prefix, strlen(prefix), 0);
}

const struct s3_dialect s3_dialect_s3 = {
    .service = "s3",
    .scheme = "s3",
    .part_etags = 1,
    .list_query = s3_list_query,
    .parts_begin = s3_multipart_begin,
    .part_query = s3_multipart_part_query,
    .complete = s3_multipart_complete,
    .parts_abort = mxpc_s3_abort_multipart,
};

int mxpc_s3_list(struct mxpc_s3 *s3, const char *bucket, const char *prefix, int max_keys, mxpc_s3_list_fn fn,
                 void *ud, struct mxpc_s3_error *e)
{
    if (s3_check_names(bucket, NULL, 0, e))
        return -1;
    if (!prefix)
        prefix = "";
    struct list_page p;
    memset(&p, 0, sizeof p);
    struct mxpc_buf q = MXPC_BUF_INIT;
    int rc = 0;
    do {
        q.len = 0;
        s3->dialect->list_query(&q, prefix, p.token.data ? p.token.data : "", max_keys);
        struct request r = {
            .method = "GET", .bucket = bucket, .query = q.data, .idempotent = 1, .expected_size = -1};
        rc = s3_execute(s3, &r, 0, e);
        if (rc != 0 && strcmp(e->facts.kind, "http") == 0) { /* worded as a listing (ListBucket) */
            snprintf(e->facts.kind, sizeof e->facts.kind, "list");
            snprintf(e->facts.prefix, sizeof e->facts.prefix, "%s", prefix);
        }
        list_page_reset(&p);
        if (rc == 0 && (mxpc_xml_each(r.response.data, r.response.len, list_element, &p) != 0 || p.bad ||
                        (p.truncated && !p.token.len))) {
            char what[1024];
            s3_client_object_name(s3, what, sizeof what, bucket, prefix);
            s3_set_error(e, "s3", NULL, "cannot parse the object list of %s", what);
            rc = -1;
        }
        s3_request_free(&r);
        for (size_t i = 0; rc == 0 && i < p.n; i++) {
            struct mxpc_s3_listed o = {p.strings.data + p.objects[i].key, p.objects[i].size,
                                       p.strings.data + p.objects[i].etag, p.strings.data + p.objects[i].modified};
            s3_clear_error(e);
            if (fn(ud, &o, e) != 0)
                rc = -1;
        }
    } while (rc == 0 && p.truncated);
    list_page_free(&p);
    mxpc_buf_free(&q);
    return rc;
}

char *mxpc_s3_presign(struct mxpc_s3 *s3, const char *method, const char *bucket, const char *key, long expires,
                      struct mxpc_s3_error *e)
{
    if (s3_check_names(bucket, key, 1, e))
        return NULL;
    if (expires < 1 || expires > 604800) {
        s3_set_error(e, "usage", NULL, "a presigned URL expires after 1 to 604800 seconds, not %ld", expires);
        return NULL;
    }
    char cerr[512];
    if (mxpc_aws_credentials_refresh(&s3->creds, cerr, sizeof cerr) != 0) {
        cerr[strcspn(cerr, "\n")] = '\0';
        s3_set_error(e, "credentials", NULL, "cannot renew the AWS credentials: %s", cerr);
        return NULL;
    }
    struct mxpc_buf host = MXPC_BUF_INIT, path = MXPC_BUF_INIT, url = MXPC_BUF_INIT;
    build_target(s3, bucket, key, &host, &path);
    struct mxpc_sigv4_header h[] = {{"host", host.data}};
    struct mxpc_sigv4_signer signer = signer_now(s3, 0);
    struct mxpc_sigv4_request req = {method, path.data, NULL, h, 1, MXPC_SIGV4_UNSIGNED_PAYLOAD};
    struct mxpc_sigv4_result sig = MXPC_SIGV4_RESULT_INIT;
    char *result = NULL;
    if (mxpc_sigv4_presign(&signer, &req, expires, &sig) == 0) {
        mxpc_buf_printf(&url, "%s://%s%s?%s", s3->scheme, host.data, path.data, sig.query.data);
        result = mxpc_buf_take(&url);
    } else {
        s3_set_error(e, "usage", NULL, "cannot presign %s", method);
    }
    mxpc_sigv4_result_free(&sig);
    mxpc_buf_free(&host);
    mxpc_buf_free(&path);
    mxpc_buf_free(&url);
    return result;
}

