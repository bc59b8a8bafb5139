/* S3 client on libcurl. See include/mxpc/s3.h.
 *
 * One curl easy handle per client, reset before each request so the
 * connection is reused. Every request is signed with SigV4 (header signing);
 * the Host header is set explicitly so that what is signed is what is sent.
 *
 * Request bodies (a PUT object, an upload part, the XML of a multipart
 * completion) are always in memory, bounded by the part size. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <curl/curl.h>
#include <expat.h>
#include <openssl/crypto.h>

#include "mxpc/buf.h"
#include "mxpc/log.h"
#include "mxpc/runtime.h"
#include "mxpc/s3.h"
#include "mxpc/sigv4.h"

#define ERROR_BODY_MAX (64 * 1024)
#define RESPONSE_MAX (4 * 1024 * 1024)

struct mxpc_s3 {
    CURL *curl;
    char *endpoint;  /* as given, for messages */
    char *scheme;    /* "http" or "https" */
    char *authority; /* host[:port] */
    char *prefix;    /* path of the endpoint without a trailing '/', maybe "" */
    char *region;
    int path_style;
    int https;
    int unsigned_payload;
    char *ca_file, *ca_dir;
    int64_t part_size, threshold;
    int max_retries;
    int64_t max_send_speed;
    int ignore_interrupt; /* while aborting a multipart upload after an interruption */
    struct mxpc_aws_credentials creds;
};

/* --- errors --------------------------------------------------------------- */

static void set_error(struct mxpc_s3_error *e, const char *code, const char *hint, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void set_error(struct mxpc_s3_error *e, const char *code, const char *hint, const char *fmt, ...)
{
    snprintf(e->code, sizeof e->code, "%s", code);
    snprintf(e->hint, sizeof e->hint, "%s", hint ? hint : "");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->message, sizeof e->message, fmt, ap);
    va_end(ap);
}

static void clear_error(struct mxpc_s3_error *e)
{
    memset(e, 0, sizeof *e);
}

/* "s3://bucket/key" for messages (the endpoint's bucket when bucket is empty). */
static void object_name(char *out, size_t len, const char *bucket, const char *key)
{
    snprintf(out, len, "s3://%s%s%s", bucket && *bucket ? bucket : "(endpoint)", key ? "/" : "", key ? key : "");
}

/* --- XML (expat) ---------------------------------------------------------- */

/* Calls fn for every element with its text content, as each element ends. */
typedef void (*xml_element_fn)(void *ud, const char *name, const char *text);

struct xml_walk {
    struct mxpc_buf text;
    xml_element_fn fn;
    void *ud;
};

static void XMLCALL xml_start(void *ud, const XML_Char *name, const XML_Char **attrs)
{
    (void)name;
    (void)attrs;
    struct xml_walk *w = ud;
    w->text.len = 0;
    mxpc_buf_puts(&w->text, "");
}

static void XMLCALL xml_end(void *ud, const XML_Char *name)
{
    struct xml_walk *w = ud;
    w->fn(w->ud, name, w->text.data ? w->text.data : "");
    w->text.len = 0;
    if (w->text.data)
        w->text.data[0] = '\0';
}

static void XMLCALL xml_chars(void *ud, const XML_Char *s, int len)
{
    struct xml_walk *w = ud;
    mxpc_buf_append(&w->text, s, (size_t)len);
}

static int xml_each(const char *xml, size_t len, xml_element_fn fn, void *ud)
{
    XML_Parser p = XML_ParserCreate(NULL);
    if (!p)
        abort();
    struct xml_walk w = {MXPC_BUF_INIT, fn, ud};
    XML_SetUserData(p, &w);
    XML_SetElementHandler(p, xml_start, xml_end);
    XML_SetCharacterDataHandler(p, xml_chars);
    int ok = XML_Parse(p, xml, (int)len, 1) == XML_STATUS_OK;
    XML_ParserFree(p);
    mxpc_buf_free(&w.text);
    return ok ? 0 : -1;
}

/* Copies the text of the named elements; the end of `record` (if set)
 * calls on_record, which may reset the fields for the next record. */
struct xml_capture {
    const char *names[3];
    char *dest[3];
    size_t size[3];
    const char *record;
    void (*on_record)(struct xml_capture *c);
    void *ud;
    int records; /* how many `record` elements ended */
};

static void capture_element(void *ud, const char *name, const char *text)
{
    struct xml_capture *c = ud;
    for (int i = 0; i < 3 && c->names[i]; i++)
        if (strcmp(name, c->names[i]) == 0)
            snprintf(c->dest[i], c->size[i], "%s", text);
    if (c->record && strcmp(name, c->record) == 0) {
        c->records++;
        if (c->on_record)
            c->on_record(c);
    }
}

/* The <Error> of an S3 answer: code, message, and whether there was one. */
struct xml_error {
    int is_error;
    char code[64];
    char message[256];
    char etag[128]; /* CompleteMultipartUpload's answer when it is no error */
};

static void parse_error(const struct mxpc_buf *body, struct xml_error *x)
{
    struct xml_capture c = {{"Code", "Message", "ETag"},
                            {x->code, x->message, x->etag},
                            {sizeof x->code, sizeof x->message, sizeof x->etag},
                            "Error", NULL, NULL, 0};
    if (body->len)
        xml_each(body->data, body->len, capture_element, &c);
    x->is_error = c.records > 0;
}

/* --- requests ------------------------------------------------------------- */

struct request {
    struct mxpc_s3 *s3;
    const char *method;
    const char *bucket;
    const char *key;   /* NULL for bucket operations */
    const char *query; /* as sent, or NULL */
    const char *range; /* "bytes=N-" or NULL */
    const char *if_match;
    const char *content_type;
    const char *body; /* NULL: no body */
    size_t body_len;
    int idempotent;
    /* 2xx response bodies go to the sink if set, else into `response` */
    mxpc_s3_sink_fn sink;
    void *sink_ud;
    int64_t expected_size;
    int64_t offset, end; /* a ranged GET: bytes offset..end-1 (end 0: to the end of the object) */

    /* results */
    long status;
    struct mxpc_buf response;
    char etag[128];
    int64_t content_length;
    int64_t delivered; /* to the sink, over all attempts */
    char sink_error[512];
    int sink_failed;
    int size_mismatch;

    /* per attempt */
    size_t body_sent;
    int64_t range_from; /* a resumed download: bytes asked to start at */
    int checked;        /* the first bytes of this attempt were seen */
};

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


static int is_2xx(long status)
{
    return status >= 200 && status < 300;
}

/* Response bodies: the object data of a GET (to the sink), else kept. */
static size_t on_write(char *data, size_t size, size_t n, void *ud)
{
    struct request *r = ud;
    size_t len = size * n;
    long status = 0;
    curl_easy_getinfo(r->s3->curl, CURLINFO_RESPONSE_CODE, &status);
    if (!is_2xx(status) || !r->sink) {
        size_t cap = is_2xx(status) ? RESPONSE_MAX : ERROR_BODY_MAX;
        if (r->response.len + len > cap)
            return len; /* keep the start; the rest is of no use */
        mxpc_buf_append(&r->response, data, len);
        return len;
    }
    if (!r->checked) {
        r->checked = 1;
        curl_off_t cl = -1;
        curl_easy_getinfo(r->s3->curl, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &cl);
        if ((r->range_from > 0 || r->end > 0) && status != 206) {
            snprintf(r->sink_error, sizeof r->sink_error, "the server ignored the Range of a download");
            r->sink_failed = 1;
            return 0;
        }
        if (r->range_from == 0 && r->expected_size >= 0 && cl >= 0 && cl != r->expected_size) {
            r->content_length = cl;
            r->size_mismatch = 1;
            return 0;
        }
    }
    if (r->sink(r->sink_ud, data, len, r->sink_error, sizeof r->sink_error) != 0) {
        r->sink_failed = 1;
        return 0;
    }
    r->delivered += (int64_t)len;
    return len;
}

static size_t on_header(char *data, size_t size, size_t n, void *ud)
{
    struct request *r = ud;
    size_t len = size * n;
    if (len >= 5 && strncmp(data, "HTTP/", 5) == 0) {
        r->etag[0] = '\0'; /* a new response (after 100 Continue or a redirect) */
    } else if (len > 5 && strncasecmp(data, "ETag:", 5) == 0) {
        const char *v = data + 5;
        size_t vlen = len - 5;
        while (vlen && (*v == ' ' || *v == '\t'))
            v++, vlen--;
        while (vlen && (v[vlen - 1] == '\r' || v[vlen - 1] == '\n' || v[vlen - 1] == ' '))
            vlen--;
        snprintf(r->etag, sizeof r->etag, "%.*s", (int)vlen, v);
    }
    return len;
}

static size_t on_read(char *buf, size_t size, size_t n, void *ud)
{
    struct request *r = ud;
    size_t want = size * n, left = r->body_len - r->body_sent;
    if (want > left)
        want = left;
    memcpy(buf, r->body + r->body_sent, want);
    r->body_sent += want;
    return want;
}

static int on_seek(void *ud, curl_off_t offset, int origin)
{
    struct request *r = ud;
    if (origin != SEEK_SET || offset < 0 || (size_t)offset > r->body_len)
        return CURL_SEEKFUNC_FAIL;
    r->body_sent = (size_t)offset;
    return CURL_SEEKFUNC_OK;
}

static int on_progress(void *ud, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal, curl_off_t ulnow)
{
    (void)dltotal, (void)dlnow, (void)ultotal, (void)ulnow;
    struct request *r = ud;
    return mxpc_interrupted() && !r->s3->ignore_interrupt;
}

static struct curl_slist *add_header(struct curl_slist *list, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static struct curl_slist *add_header(struct curl_slist *list, const char *fmt, ...)
{
    struct mxpc_buf b = MXPC_BUF_INIT;
    va_list ap;
    va_start(ap, fmt);
    char line[2048];
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    mxpc_buf_puts(&b, line);
    struct curl_slist *l = curl_slist_append(list, b.data);
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

/* One attempt: sign, send, receive. Returns the curl result. */
static CURLcode perform_once(struct mxpc_s3 *s3, struct request *r, const char *payload_hash, char *curl_err)
{
    struct mxpc_buf host = MXPC_BUF_INIT, path = MXPC_BUF_INIT, url = MXPC_BUF_INIT;
    build_target(s3, r->bucket, r->key, &host, &path);
    mxpc_buf_printf(&url, "%s://%s%s%s%s", s3->scheme, host.data, path.data, r->query ? "?" : "",
                    r->query ? r->query : "");

    char range[64] = "";
    if (r->end > 0)
        snprintf(range, sizeof range, "bytes=%lld-%lld", (long long)r->range_from, (long long)r->end - 1);
    else if (r->range_from > 0)
        snprintf(range, sizeof range, "bytes=%lld-", (long long)r->range_from);
    struct mxpc_sigv4_header signed_headers[4];
    size_t nsigned = 0;
    signed_headers[nsigned++] = (struct mxpc_sigv4_header){"host", host.data};
    if (range[0])
        signed_headers[nsigned++] = (struct mxpc_sigv4_header){"range", range};
    if (r->if_match)
        signed_headers[nsigned++] = (struct mxpc_sigv4_header){"if-match", r->if_match};
    struct mxpc_sigv4_signer signer = signer_now(s3, MXPC_SIGV4_CONTENT_SHA256);
    struct mxpc_sigv4_request sreq = {r->method, path.data, r->query, signed_headers, nsigned, payload_hash};
    struct mxpc_sigv4_result sig = MXPC_SIGV4_RESULT_INIT;
    CURLcode code = CURLE_OK;
    struct curl_slist *headers = NULL;
    if (mxpc_sigv4_sign(&signer, &sreq, &sig) != 0) {
        snprintf(curl_err, CURL_ERROR_SIZE, "cannot sign the request");
        code = CURLE_BAD_FUNCTION_ARGUMENT;
        goto out;
    }
    if (mxpc_log_get_level() >= MXPC_LOG_TRACE)
        mxpc_log(MXPC_LOG_TRACE, "s3 canonical request:\n%s\nstring to sign:\n%s", sig.canonical_request.data,
                 sig.string_to_sign.data);

    headers = add_header(headers, "Host: %s", host.data);
    headers = add_header(headers, "x-amz-date: %s", sig.amz_date);
    headers = add_header(headers, "x-amz-content-sha256: %s", payload_hash);
    if (s3->creds.session_token)
        headers = add_header(headers, "x-amz-security-token: %s", s3->creds.session_token);
    headers = add_header(headers, "Authorization: %s", sig.authorization.data);
    if (range[0])
        headers = add_header(headers, "Range: %s", range);
    if (r->if_match)
        headers = add_header(headers, "If-Match: %s", r->if_match);
    headers = add_header(headers, "Content-Type: %s", r->content_type ? r->content_type : "");

    CURL *c = s3->curl;
    curl_easy_reset(c);
    curl_easy_setopt(c, CURLOPT_URL, url.data);
    curl_easy_setopt(c, CURLOPT_PATH_AS_IS, 1L); /* keys may contain "//" or "/./" */
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(c, CURLOPT_USERAGENT, "mxpc-data-migration");
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, curl_err);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, 30L);
    curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1L); /* a stalled transfer fails after two minutes */
    curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, 120L);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_write);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, r);
    curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, on_progress);
    curl_easy_setopt(c, CURLOPT_XFERINFODATA, r);
    if (s3->ca_file)
        curl_easy_setopt(c, CURLOPT_CAINFO, s3->ca_file);
    if (s3->ca_dir)
        curl_easy_setopt(c, CURLOPT_CAPATH, s3->ca_dir);
    if (s3->max_send_speed > 0)
        curl_easy_setopt(c, CURLOPT_MAX_SEND_SPEED_LARGE, (curl_off_t)s3->max_send_speed);
    if (strcmp(r->method, "HEAD") == 0) {
        curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
    } else if (strcmp(r->method, "PUT") == 0 || strcmp(r->method, "POST") == 0) {
        if (strcmp(r->method, "PUT") == 0) {
            curl_easy_setopt(c, CURLOPT_UPLOAD, 1L);
            curl_easy_setopt(c, CURLOPT_INFILESIZE_LARGE, (curl_off_t)r->body_len);
        } else {
            curl_easy_setopt(c, CURLOPT_POST, 1L);
            curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)r->body_len);
        }
        curl_easy_setopt(c, CURLOPT_READFUNCTION, on_read);
        curl_easy_setopt(c, CURLOPT_READDATA, r);
        curl_easy_setopt(c, CURLOPT_SEEKFUNCTION, on_seek);
        curl_easy_setopt(c, CURLOPT_SEEKDATA, r);
    } else if (strcmp(r->method, "GET") != 0) {
        curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, r->method);
    }

    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    code = curl_easy_perform(c);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    r->status = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status);
    curl_off_t cl = -1;
    curl_easy_getinfo(c, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &cl);
    if (!r->size_mismatch)
        r->content_length = cl;
    double ms = (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6;
    mxpc_log(MXPC_LOG_DEBUG, "s3 %s %s://%s%s%s%s -> %ld (%.0f ms)%s%s", r->method, s3->scheme, host.data,
             path.data, r->query ? "?" : "", r->query ? r->query : "", r->status, ms, code ? ": " : "",
             code ? (curl_err[0] ? curl_err : curl_easy_strerror(code)) : "");
out:
    curl_slist_free_all(headers);
    mxpc_sigv4_result_free(&sig);
    mxpc_buf_free(&host);
    mxpc_buf_free(&path);
    mxpc_buf_free(&url);
    return code;
}

static int transient(CURLcode code)
{
    switch (code) {
    case CURLE_COULDNT_CONNECT:
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_PARTIAL_FILE:
    case CURLE_OPERATION_TIMEDOUT:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM: return 1;
    default: return 0;
    }
}

static int tls_problem(CURLcode code)
{
    return code == CURLE_PEER_FAILED_VERIFICATION || code == CURLE_SSL_CACERT_BADFILE ||
           code == CURLE_SSL_CONNECT_ERROR || code == CURLE_SSL_CERTPROBLEM || code == CURLE_SSL_ISSUER_ERROR;
}

/* Sleeps ms milliseconds unless interrupted; returns -1 if interrupted. */
static int backoff(struct mxpc_s3 *s3, int attempt)
{
    long ms = 200L << (attempt < 5 ? attempt : 5);
    for (long slept = 0; slept < ms; slept += 50) {
        if (mxpc_interrupted() && !s3->ignore_interrupt)
            return -1;
        struct timespec ts = {0, 50 * 1000000L};
        nanosleep(&ts, NULL);
    }
    return 0;
}

/* Turns a response >= 300 into an error. */
static void http_error(struct mxpc_s3 *s3, struct request *r, struct mxpc_s3_error *e)
{
    struct xml_error x;
    memset(&x, 0, sizeof x);
    parse_error(&r->response, &x);
    char what[1024];
    object_name(what, sizeof what, r->bucket, r->key);
    e->http_status = r->status;
    snprintf(e->s3_code, sizeof e->s3_code, "%s", x.code);
    const char *detail = x.message[0] ? x.message : x.code;
    if (strcmp(x.code, "NoSuchBucket") == 0)
        set_error(e, "not_found", NULL, "no such bucket: %s (%s)", r->bucket && *r->bucket ? r->bucket : "(endpoint)",
                  s3->endpoint);
    else if (strcmp(x.code, "NoSuchUpload") == 0)
        set_error(e, "not_found", NULL, "no such multipart upload of %s", what);
    else if (strcmp(x.code, "NoSuchKey") == 0 || r->status == 404)
        set_error(e, "not_found", NULL, "no such %s: %s%s%s%s", r->key ? "key" : "bucket", what,
                  x.code[0] ? " (" : "", x.code, x.code[0] ? ")" : "");
    else if (strcmp(x.code, "SignatureDoesNotMatch") == 0)
        set_error(e, "signature", "check the secret key that goes with the access key, and the system clock",
                  "S3 rejected the request signature for %s: %s", what, detail);
    else if (strcmp(x.code, "RequestTimeTooSkewed") == 0)
        set_error(e, "signature", "the system clock is off: synchronize it (NTP)", "S3 rejected %s: %s", what,
                  detail);
    else if (strcmp(x.code, "InvalidAccessKeyId") == 0)
        set_error(e, "forbidden", "check the access key id", "S3 does not know the access key %s (%s): %s",
                  s3->creds.access_key, what, detail);
    else if (r->status == 403)
        set_error(e, "forbidden", "check that the credentials may do this (IAM policy / bucket policy)",
                  "access denied: %s %s%s%s", r->method, what, detail[0] ? ": " : "", detail);
    else if (strcmp(x.code, "BucketAlreadyOwnedByYou") == 0 || strcmp(x.code, "BucketAlreadyExists") == 0)
        set_error(e, "exists", NULL, "bucket %s already exists", r->bucket);
    else if (r->status == 412)
        set_error(e, "changed", "read it again from the start", "%s changed while it was being read", what);
    else if (r->status == 301 || strcmp(x.code, "PermanentRedirect") == 0)
        set_error(e, "s3", "check the region and the endpoint", "S3 %s %s: the bucket is elsewhere (HTTP %ld%s%s)",
                  r->method, what, r->status, detail[0] ? ": " : "", detail);
    else
        set_error(e, "s3", NULL, "S3 %s %s failed: HTTP %ld%s%s%s%s", r->method, what, r->status,
                  x.code[0] ? " " : "", x.code, detail[0] && detail != x.code ? ": " : "",
                  detail != x.code ? detail : "");
}

/* Runs a request with retries; 0 on a 2xx answer, else -1 with e filled. */
static int execute(struct mxpc_s3 *s3, struct request *r, int unsigned_ok, struct mxpc_s3_error *e)
{
    char payload_hash[65];
    if (!r->body)
        snprintf(payload_hash, sizeof payload_hash, "%s", MXPC_SIGV4_EMPTY_SHA256);
    else if (unsigned_ok && s3->unsigned_payload)
        snprintf(payload_hash, sizeof payload_hash, "%s", MXPC_SIGV4_UNSIGNED_PAYLOAD);
    else
        mxpc_sigv4_sha256_hex(r->body, r->body_len, payload_hash);

    r->s3 = s3;
    char curl_err[CURL_ERROR_SIZE];
    CURLcode code;
    char if_match[sizeof r->etag] = "";
    for (int attempt = 0;; attempt++) {
        curl_err[0] = '\0';
        r->body_sent = 0;
        r->checked = 0;
        r->response.len = 0;
        r->range_from = r->sink ? r->offset + r->delivered : 0;
        if (r->range_from > 0 && !r->if_match && if_match[0])
            r->if_match = if_match; /* resume the same object, not a replacement */
        code = perform_once(s3, r, payload_hash, curl_err);
        if (r->sink && r->delivered == 0 && r->etag[0])
            snprintf(if_match, sizeof if_match, "%s", r->etag);
        if (code == CURLE_OK && r->status < 500 && r->status != 429)
            break;
        int retry = r->idempotent && attempt < s3->max_retries && !r->sink_failed && !r->size_mismatch &&
                    code != CURLE_ABORTED_BY_CALLBACK && (code == CURLE_OK || transient(code));
        if (!retry)
            break;
        mxpc_log(MXPC_LOG_WARN, "s3 %s %s/%s: %s; retrying (%d of %d)", r->method, r->bucket ? r->bucket : "",
                 r->key ? r->key : "",
                 code ? (curl_err[0] ? curl_err : curl_easy_strerror(code)) : (r->status == 429 ? "HTTP 429" : "HTTP 5xx"),
                 attempt + 1, s3->max_retries);
        if (backoff(s3, attempt) != 0) {
            code = CURLE_ABORTED_BY_CALLBACK;
            break;
        }
    }
    if (r->if_match == if_match)
        r->if_match = NULL;

    char what[1024];
    object_name(what, sizeof what, r->bucket, r->key);
    if (code == CURLE_ABORTED_BY_CALLBACK) {
        set_error(e, "interrupted", NULL, "interrupted: S3 %s %s", r->method, what);
        return -1;
    }
    if (r->sink_failed) {
        set_error(e, "io", NULL, "%s: %s", what, r->sink_error);
        return -1;
    }
    if (r->size_mismatch) {
        set_error(e, "size", NULL, "%s has %lld bytes, expected %lld", what, (long long)r->content_length,
                  (long long)r->expected_size);
        return -1;
    }
    if (code != CURLE_OK) {
        const char *msg = curl_err[0] ? curl_err : curl_easy_strerror(code);
        if (tls_problem(code))
            set_error(e, "connect",
                      "the server's certificate could not be verified: give its CA with ca_file/ca_dir, "
                      "or set SSL_CERT_FILE or SSL_CERT_DIR",
                      "TLS to %s failed (%s): %s", s3->endpoint, what, msg);
        else
            set_error(e, "connect", "check the endpoint and that the server is reachable", "S3 %s %s at %s: %s",
                      r->method, what, s3->endpoint, msg);
        return -1;
    }
    if (r->status >= 300) {
        http_error(s3, r, e);
        return -1;
    }
    return 0;
}

static void request_free(struct request *r)
{
    mxpc_buf_free(&r->response);
}

/* --- client --------------------------------------------------------------- */

static char *xstrdup(const char *s)
{
    char *d = strdup(s ? s : "");
    if (!d)
        abort();
    return d;
}

static char *env_or(const char *value, const char *env)
{
    if (value && *value)
        return xstrdup(value);
    const char *v = getenv(env);
    return v && *v ? xstrdup(v) : NULL;
}

struct mxpc_s3 *mxpc_s3_new(const struct mxpc_s3_config *cfg, struct mxpc_s3_error *e)
{
    clear_error(e);
    const struct mxpc_aws_credentials *cr = cfg->credentials;
    if (!cr || !cr->access_key || !*cr->access_key || !cr->secret_key || !*cr->secret_key) {
        set_error(e, "usage", NULL, "S3 client without credentials");
        return NULL;
    }
    int64_t part = cfg->part_size ? cfg->part_size : MXPC_S3_DEFAULT_PART_SIZE;
    if (part < MXPC_S3_MIN_PART_SIZE || part > MXPC_S3_MAX_PART_SIZE) {
        set_error(e, "usage", NULL, "part size %lld is outside 5 MiB..5 GiB", (long long)part);
        return NULL;
    }
    int64_t threshold = cfg->multipart_threshold > 0 ? cfg->multipart_threshold : part;
    if (threshold > part) {
        /* a single PUT holds the whole object in memory: no more than one part */
        set_error(e, "usage", NULL, "the multipart threshold (%lld) must not exceed the part size (%lld)",
                  (long long)threshold, (long long)part);
        return NULL;
    }

    char *region = env_or(cfg->region, "AWS_REGION");
    if (!region)
        region = env_or(NULL, "AWS_DEFAULT_REGION");
    if (!region)
        region = xstrdup("us-east-1");
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
        set_error(e, "usage", "write it as https://host[:port] or http://host[:port]",
                  "S3 endpoint %s is not an http(s) URL", ep.data);
        mxpc_buf_free(&ep);
        free(region);
        return NULL;
    }
    size_t alen = strcspn(rest, "/?#");
    if (alen == 0 || rest[alen] == '?' || rest[alen] == '#' || memchr(rest, '@', alen)) {
        set_error(e, "usage", "write it as https://host[:port][/path]", "S3 endpoint %s is not usable",
                  ep.data);
        mxpc_buf_free(&ep);
        free(region);
        return NULL;
    }

    struct mxpc_s3 *s3 = calloc(1, sizeof *s3);
    if (!s3)
        abort();
    curl_global_init(CURL_GLOBAL_DEFAULT);
    s3->curl = curl_easy_init();
    if (!s3->curl)
        abort();
    s3->endpoint = xstrdup(ep.data);
    s3->scheme = xstrdup(https ? "https" : "http");
    s3->authority = strndup(rest, alen);
    s3->prefix = xstrdup(rest + alen);
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
    s3->creds.access_key = xstrdup(cr->access_key);
    s3->creds.secret_key = xstrdup(cr->secret_key);
    s3->creds.session_token = cr->session_token && *cr->session_token ? xstrdup(cr->session_token) : NULL;
    snprintf(s3->creds.source, sizeof s3->creds.source, "%s", cr->source);
    mxpc_redact_add(s3->creds.secret_key);
    mxpc_redact_add(s3->creds.session_token);
    return s3;
}

void mxpc_s3_free(struct mxpc_s3 *s3)
{
    if (!s3)
        return;
    curl_easy_cleanup(s3->curl);
    curl_global_cleanup();
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

static int check_names(const char *bucket, const char *key, int need_key, struct mxpc_s3_error *e)
{
    clear_error(e);
    if (need_key && (!key || !*key)) {
        set_error(e, "usage", NULL, "an S3 object needs a key");
        return -1;
    }
    if (bucket && strchr(bucket, '/')) {
        set_error(e, "usage", NULL, "S3 bucket name %s contains '/'", bucket);
        return -1;
    }
    return 0;
}

/* --- operations ----------------------------------------------------------- */

int mxpc_s3_head(struct mxpc_s3 *s3, const char *bucket, const char *key, struct mxpc_s3_object *out,
                 struct mxpc_s3_error *e)
{
    if (check_names(bucket, key, 1, e))
        return -1;
    struct request r = {.method = "HEAD", .bucket = bucket, .key = key, .idempotent = 1, .expected_size = -1};
    int rc = execute(s3, &r, 0, e);
    if (rc == 0 && out) {
        out->size = r.content_length;
        snprintf(out->etag, sizeof out->etag, "%s", r.etag);
    }
    request_free(&r);
    return rc;
}

static int get_object(struct mxpc_s3 *s3, const char *bucket, const char *key, int64_t expected_size,
                      const struct mxpc_s3_range *range, mxpc_s3_sink_fn sink, void *ud, int64_t *bytes,
                      struct mxpc_s3_error *e)
{
    if (bytes)
        *bytes = 0;
    if (check_names(bucket, key, 1, e))
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
        expected_size = range->length;
    }
    int rc = execute(s3, &r, 0, e);
    if (rc == 0 && expected_size >= 0 && r.delivered != expected_size) {
        char what[1024];
        object_name(what, sizeof what, bucket, key);
        set_error(e, "size", NULL, "%s: received %lld bytes, expected %lld", what, (long long)r.delivered,
                  (long long)expected_size);
        rc = -1;
    }
    if (bytes)
        *bytes = r.delivered;
    request_free(&r);
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
        clear_error(e);
        set_error(e, "usage", NULL, "a range needs offset >= 0 and length > 0");
        return -1;
    }
    return get_object(s3, bucket, key, -1, range, sink, ud, bytes, e);
}

/* Reads exactly len bytes from the source. */
static int fill(mxpc_s3_source_fn source, void *ud, char *buf, size_t len, int64_t done, int64_t size,
                const char *what, struct mxpc_s3_error *e)
{
    size_t got = 0;
    while (got < len) {
        if (mxpc_interrupted()) {
            set_error(e, "interrupted", NULL, "interrupted: S3 upload of %s", what);
            return -1;
        }
        char err[512] = "";
        ssize_t n = source(ud, buf + got, len - got, err, sizeof err);
        if (n < 0) {
            set_error(e, "io", NULL, "upload of %s: %s", what, err[0] ? err : "the source failed");
            return -1;
        }
        if (n == 0) {
            set_error(e, "size", NULL, "upload of %s: the source ended after %lld of %lld bytes", what,
                      (long long)(done + (int64_t)got), (long long)size);
            return -1;
        }
        got += (size_t)n;
    }
    return 0;
}

/* After `size` bytes the source must be at its end. */
static int check_source_end(mxpc_s3_source_fn source, void *ud, int64_t size, const char *what,
                            struct mxpc_s3_error *e)
{
    char extra, err[512] = "";
    ssize_t n = source(ud, &extra, 1, err, sizeof err);
    if (n < 0) {
        set_error(e, "io", NULL, "upload of %s: %s", what, err[0] ? err : "the source failed");
        return -1;
    }
    if (n > 0) {
        set_error(e, "size", NULL, "upload of %s: the source has more than the %lld bytes declared", what,
                  (long long)size);
        return -1;
    }
    return 0;
}

/* --- multipart pieces ------------------------------------------------------
 *
 * Each part is read into memory first: that makes a part retryable after a
 * reset connection, and over plain http lets it be signed with its real
 * SHA-256 (RGW checks it, so corruption on the way is caught). Over https it
 * goes as UNSIGNED-PAYLOAD: TLS already protects it, and hashing would cost
 * a second pass over every byte. Streaming without the buffer
 * (STREAMING-AWS4-HMAC-SHA256-PAYLOAD chunk signing) would save one part of
 * memory but could not be retried. */

struct multipart {
    char id[512];
    struct mxpc_buf enc_id;
    char (*etags)[128];
    int64_t nparts, cap;
};

static int multipart_create(struct mxpc_s3 *s3, const char *bucket, const char *key, struct multipart *m,
                            const char *what, struct mxpc_s3_error *e)
{
    struct request r = {.method = "POST", .bucket = bucket, .key = key, .query = "uploads", .expected_size = -1};
    int rc = execute(s3, &r, 0, e);
    struct xml_capture cap = {{"UploadId"}, {m->id}, {sizeof m->id}, NULL, NULL, NULL, 0};
    m->id[0] = '\0';
    if (rc == 0 && (xml_each(r.response.data, r.response.len, capture_element, &cap) != 0 || !m->id[0])) {
        set_error(e, "s3", NULL, "S3 did not return an upload id for %s", what);
        m->id[0] = '\0';
        rc = -1;
    }
    request_free(&r);
    if (rc == 0)
        mxpc_sigv4_uri_encode(&m->enc_id, m->id, strlen(m->id), 0);
    return rc;
}

/* Uploads the next part (number m->nparts + 1) and keeps its ETag. */
static int multipart_part(struct mxpc_s3 *s3, const char *bucket, const char *key, struct multipart *m,
                          const char *buf, size_t len, const char *what, struct mxpc_s3_error *e)
{
    int64_t n = m->nparts + 1;
    if (n > m->cap) {
        int64_t cap = m->cap ? m->cap * 2 : 64;
        void *grown = realloc(m->etags, (size_t)cap * sizeof *m->etags);
        if (!grown)
            abort();
        m->etags = grown;
        m->cap = cap;
    }
    struct mxpc_buf query = MXPC_BUF_INIT;
    mxpc_buf_printf(&query, "partNumber=%lld&uploadId=%s", (long long)n, m->enc_id.data);
    struct request pr = {.method = "PUT",
                         .bucket = bucket,
                         .key = key,
                         .query = query.data,
                         .body = buf,
                         .body_len = len,
                         .idempotent = 1,
                         .expected_size = -1};
    int rc = execute(s3, &pr, 1, e);
    if (rc == 0 && !pr.etag[0]) {
        set_error(e, "s3", NULL, "S3 returned no ETag for part %lld of %s", (long long)n, what);
        rc = -1;
    }
    if (rc == 0) {
        snprintf(m->etags[n - 1], sizeof m->etags[n - 1], "%s", pr.etag);
        m->nparts = n;
    }
    request_free(&pr);
    mxpc_buf_free(&query);
    return rc;
}

static int multipart_complete(struct mxpc_s3 *s3, const char *bucket, const char *key, struct multipart *m,
                              int64_t size, struct mxpc_s3_object *out, const char *what, struct mxpc_s3_error *e)
{
    struct mxpc_buf xml = MXPC_BUF_INIT, query = MXPC_BUF_INIT;
    mxpc_buf_puts(&xml, "<CompleteMultipartUpload>");
    for (int64_t n = 1; n <= m->nparts; n++)
        mxpc_buf_printf(&xml, "<Part><PartNumber>%lld</PartNumber><ETag>%s</ETag></Part>", (long long)n,
                        m->etags[n - 1]);
    mxpc_buf_puts(&xml, "</CompleteMultipartUpload>");
    mxpc_buf_printf(&query, "uploadId=%s", m->enc_id.data);
    struct request cr = {.method = "POST",
                         .bucket = bucket,
                         .key = key,
                         .query = query.data,
                         .body = xml.data,
                         .body_len = xml.len,
                         .content_type = "application/xml",
                         .expected_size = -1};
    int rc = execute(s3, &cr, 0, e);
    struct xml_error res;
    memset(&res, 0, sizeof res);
    if (rc == 0)
        parse_error(&cr.response, &res);
    if (rc == 0 && res.is_error) { /* S3 may fail a completion inside a 200 answer */
        set_error(e, "s3", NULL, "S3 could not complete the multipart upload of %s: %s: %s", what, res.code,
                  res.message);
        rc = -1;
    }
    if (rc == 0 && out) {
        out->size = size;
        snprintf(out->etag, sizeof out->etag, "%s", res.etag);
        struct mxpc_s3_object o;
        struct mxpc_s3_error he;
        /* RGW 16 answers with an empty ETag; HEAD has the right one */
        if (!out->etag[0] && mxpc_s3_head(s3, bucket, key, &o, &he) == 0)
            snprintf(out->etag, sizeof out->etag, "%s", o.etag);
    }
    request_free(&cr);
    mxpc_buf_free(&xml);
    mxpc_buf_free(&query);
    return rc;
}

/* Aborts the upload, even when interrupted (an unfinished upload is billed
 * storage), and frees what the upload held. */
static void multipart_end(struct mxpc_s3 *s3, const char *bucket, const char *key, struct multipart *m, int failed,
                          const char *what)
{
    if (failed && m->id[0]) {
        struct mxpc_s3_error ae;
        s3->ignore_interrupt = 1;
        if (mxpc_s3_abort_multipart(s3, bucket, key, m->id, &ae) != 0)
            mxpc_log(MXPC_LOG_WARN, "could not abort the multipart upload %s of %s: %s", m->id, what, ae.message);
        else
            mxpc_log(MXPC_LOG_DEBUG, "aborted the multipart upload of %s", what);
        s3->ignore_interrupt = 0;
    }
    mxpc_buf_free(&m->enc_id);
    free(m->etags);
    memset(m, 0, sizeof *m);
}

/* One PUT of a body in memory. */
static int put_single(struct mxpc_s3 *s3, const char *bucket, const char *key, const char *buf, size_t len,
                      struct mxpc_s3_object *out, struct mxpc_s3_error *e)
{
    struct request r = {.method = "PUT",
                        .bucket = bucket,
                        .key = key,
                        .body = buf,
                        .body_len = len,
                        .idempotent = 1,
                        .expected_size = -1};
    int rc = execute(s3, &r, 1, e);
    if (rc == 0 && out) {
        out->size = (int64_t)len;
        snprintf(out->etag, sizeof out->etag, "%s", r.etag);
    }
    request_free(&r);
    return rc;
}

/* Multipart upload of a known size from a source. */
static int put_multipart(struct mxpc_s3 *s3, const char *bucket, const char *key, int64_t size,
                         mxpc_s3_source_fn source, void *ud, struct mxpc_s3_object *out, const char *what,
                         struct mxpc_s3_error *e)
{
    int64_t part = s3->part_size;
    if ((size + part - 1) / part > MXPC_S3_MAX_PARTS) /* stay within S3's 10000 parts */
        part = ((size / MXPC_S3_MAX_PARTS) / MXPC_S3_MIB + 1) * MXPC_S3_MIB;
    int64_t nparts = (size + part - 1) / part;

    struct multipart m;
    memset(&m, 0, sizeof m);
    int rc = multipart_create(s3, bucket, key, &m, what, e);
    if (rc != 0) {
        multipart_end(s3, bucket, key, &m, 0, what);
        return -1;
    }
    mxpc_log(MXPC_LOG_DEBUG, "s3 multipart upload of %s: %lld parts of %lld bytes", what, (long long)nparts,
             (long long)part);
    char *buf = malloc((size_t)part);
    if (!buf)
        abort();
    int64_t done = 0;
    for (int64_t n = 1; rc == 0 && n <= nparts; n++) {
        size_t len = (size_t)(size - done < part ? size - done : part);
        rc = fill(source, ud, buf, len, done, size, what, e);
        if (rc == 0)
            rc = multipart_part(s3, bucket, key, &m, buf, len, what, e);
        done += (int64_t)len;
    }
    if (rc == 0)
        rc = check_source_end(source, ud, size, what, e);
    if (rc == 0)
        rc = multipart_complete(s3, bucket, key, &m, size, out, what, e);
    multipart_end(s3, bucket, key, &m, rc != 0, what);
    free(buf);
    return rc;
}

int mxpc_s3_put(struct mxpc_s3 *s3, const char *bucket, const char *key, int64_t size, mxpc_s3_source_fn source,
                void *ud, struct mxpc_s3_object *out, struct mxpc_s3_error *e)
{
    if (check_names(bucket, key, 1, e))
        return -1;
    char what[1024];
    object_name(what, sizeof what, bucket, key);
    if (size < 0) {
        set_error(e, "usage", NULL, "upload of %s: negative size", what);
        return -1;
    }
    if (size > s3->threshold)
        return put_multipart(s3, bucket, key, size, source, ud, out, what, e);
    char *buf = malloc(size ? (size_t)size : 1);
    if (!buf)
        abort();
    int rc = fill(source, ud, buf, (size_t)size, 0, size, what, e);
    if (rc == 0)
        rc = check_source_end(source, ud, size, what, e);
    if (rc == 0)
        rc = put_single(s3, bucket, key, buf, (size_t)size, out, e);
    free(buf);
    return rc;
}

/* --- uploads of unknown length ---------------------------------------------- */

struct mxpc_s3_upload {
    struct mxpc_s3 *s3;
    char *bucket, *key;
    char what[1024];
    struct multipart m;
    char *buf;
    size_t len, part; /* bytes buffered, size of the part being filled */
    int64_t size;
    int state; /* 0 open, 1 committed, 2 failed or aborted */
};

struct mxpc_s3_upload *mxpc_s3_upload_begin(struct mxpc_s3 *s3, const char *bucket, const char *key,
                                            struct mxpc_s3_error *e)
{
    if (check_names(bucket, key, 1, e))
        return NULL;
    struct mxpc_s3_upload *u = calloc(1, sizeof *u);
    if (!u)
        abort();
    u->s3 = s3;
    u->bucket = xstrdup(bucket);
    u->key = xstrdup(key);
    object_name(u->what, sizeof u->what, bucket, key);
    u->part = (size_t)s3->part_size;
    u->buf = malloc(u->part);
    if (!u->buf)
        abort();
    return u;
}

/* The part size grows as the upload does, so that S3's 10000 parts hold
 * (2000 parts each of 1x, 2x, 4x, 8x and 16x the part size) about 1 TiB
 * with the default 16 MiB. */
static size_t upload_part_size(const struct mxpc_s3_upload *u)
{
    int64_t part = u->s3->part_size << (u->m.nparts / (MXPC_S3_MAX_PARTS / 5));
    return (size_t)(part > MXPC_S3_MAX_PART_SIZE ? MXPC_S3_MAX_PART_SIZE : part);
}

static int upload_fail(struct mxpc_s3_upload *u)
{
    multipart_end(u->s3, u->bucket, u->key, &u->m, 1, u->what);
    u->state = 2;
    return -1;
}

/* Sends the full buffer as the next part (creating the upload first). */
static int upload_flush(struct mxpc_s3_upload *u, struct mxpc_s3_error *e)
{
    if (!u->m.id[0]) {
        if (multipart_create(u->s3, u->bucket, u->key, &u->m, u->what, e) != 0)
            return upload_fail(u);
        mxpc_log(MXPC_LOG_DEBUG, "s3 multipart upload of %s begun", u->what);
    }
    if (u->m.nparts >= MXPC_S3_MAX_PARTS) {
        set_error(e, "size", NULL, "upload of %s: more than %d parts", u->what, MXPC_S3_MAX_PARTS);
        return upload_fail(u);
    }
    if (multipart_part(u->s3, u->bucket, u->key, &u->m, u->buf, u->len, u->what, e) != 0)
        return upload_fail(u);
    u->len = 0;
    size_t next = upload_part_size(u);
    if (next != u->part) {
        char *grown = realloc(u->buf, next);
        if (!grown)
            abort();
        u->buf = grown;
        u->part = next;
    }
    return 0;
}

int mxpc_s3_upload_write(struct mxpc_s3_upload *u, const void *data, size_t len, struct mxpc_s3_error *e)
{
    clear_error(e);
    if (u->state != 0) {
        set_error(e, "usage", NULL, "upload of %s: already %s", u->what, u->state == 1 ? "committed" : "aborted");
        return -1;
    }
    const char *p = data;
    while (len > 0) {
        if (mxpc_interrupted()) {
            set_error(e, "interrupted", NULL, "interrupted: S3 upload of %s", u->what);
            return upload_fail(u);
        }
        size_t n = u->part - u->len < len ? u->part - u->len : len;
        memcpy(u->buf + u->len, p, n);
        u->len += n;
        u->size += (int64_t)n;
        p += n;
        len -= n;
        if (u->len == u->part && upload_flush(u, e) != 0)
            return -1;
    }
    return 0;
}

int mxpc_s3_upload_commit(struct mxpc_s3_upload *u, struct mxpc_s3_object *out, struct mxpc_s3_error *e)
{
    clear_error(e);
    if (u->state != 0) {
        set_error(e, "usage", NULL, "upload of %s: already %s", u->what, u->state == 1 ? "committed" : "aborted");
        return -1;
    }
    if (mxpc_interrupted()) {
        set_error(e, "interrupted", NULL, "interrupted: S3 upload of %s", u->what);
        return upload_fail(u);
    }
    int rc;
    if (!u->m.id[0]) { /* all of it fits one part: one PUT, no multipart upload */
        rc = put_single(u->s3, u->bucket, u->key, u->buf, u->len, out, e);
    } else {
        rc = u->len > 0 ? multipart_part(u->s3, u->bucket, u->key, &u->m, u->buf, u->len, u->what, e) : 0;
        if (rc == 0)
            rc = multipart_complete(u->s3, u->bucket, u->key, &u->m, u->size, out, u->what, e);
    }
    if (rc != 0)
        return upload_fail(u);
    multipart_end(u->s3, u->bucket, u->key, &u->m, 0, u->what);
    u->state = 1;
    return 0;
}

int64_t mxpc_s3_upload_size(const struct mxpc_s3_upload *u)
{
    return u->size;
}

void mxpc_s3_upload_free(struct mxpc_s3_upload *u)
{
    if (!u)
        return;
    if (u->state == 0)
        upload_fail(u);
    free(u->bucket);
    free(u->key);
    free(u->buf);
    free(u);
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
    int rc = execute(s3, &r, 0, e);
    request_free(&r);
    return rc;
}

int mxpc_s3_delete(struct mxpc_s3 *s3, const char *bucket, const char *key, struct mxpc_s3_error *e)
{
    if (check_names(bucket, key, 1, e))
        return -1;
    return simple(s3, "DELETE", bucket, key, NULL, NULL, e);
}

int mxpc_s3_create_bucket(struct mxpc_s3 *s3, const char *bucket, struct mxpc_s3_error *e)
{
    if (check_names(bucket, NULL, 0, e))
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
    if (check_names(bucket, NULL, 0, e))
        return -1;
    return simple(s3, "DELETE", bucket, NULL, NULL, NULL, e);
}

int mxpc_s3_abort_multipart(struct mxpc_s3 *s3, const char *bucket, const char *key, const char *upload_id,
                            struct mxpc_s3_error *e)
{
    if (check_names(bucket, key, 1, e))
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

static void upload_listed(struct xml_capture *c)
{
    struct upload_list *l = c->ud;
    l->fn(l->ud, l->key, l->id);
    l->key[0] = l->id[0] = '\0';
}

int mxpc_s3_list_multipart_uploads(struct mxpc_s3 *s3, const char *bucket, mxpc_s3_upload_fn fn, void *ud,
                                   struct mxpc_s3_error *e)
{
    if (check_names(bucket, NULL, 0, e))
        return -1;
    struct request r = {.method = "GET", .bucket = bucket, .query = "uploads", .idempotent = 1, .expected_size = -1};
    int rc = execute(s3, &r, 0, e);
    struct upload_list l = {"", "", fn, ud};
    struct xml_capture cap = {{"Key", "UploadId"}, {l.key, l.id}, {sizeof l.key, sizeof l.id}, "Upload",
                              upload_listed, &l, 0};
    if (rc == 0 && xml_each(r.response.data, r.response.len, capture_element, &cap) != 0) {
        set_error(e, "s3", NULL, "cannot parse the multipart upload list of bucket %s", bucket);
        rc = -1;
    }
    request_free(&r);
    return rc;
}

char *mxpc_s3_presign(struct mxpc_s3 *s3, const char *method, const char *bucket, const char *key, long expires,
                      struct mxpc_s3_error *e)
{
    if (check_names(bucket, key, 1, e))
        return NULL;
    if (expires < 1 || expires > 604800) {
        set_error(e, "usage", NULL, "a presigned URL expires after 1 to 604800 seconds, not %ld", expires);
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
        set_error(e, "usage", NULL, "cannot presign %s", method);
    }
    mxpc_sigv4_result_free(&sig);
    mxpc_buf_free(&host);
    mxpc_buf_free(&path);
    mxpc_buf_free(&url);
    return result;
}
