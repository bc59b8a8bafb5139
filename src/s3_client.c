/* S3 client on libcurl. See include/mxpc/s3.h.
 *
 * One curl easy handle per client, reset before each request so the
 * connection is reused. Every request is signed with SigV4 (header signing);
 * the Host header is set explicitly so that what is signed is what is sent.
 *
 * Request bodies (a PUT object, an upload part, the XML of a multipart
 * completion) are always in memory, bounded by the part size. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sys/resource.h>
#include <unistd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <curl/curl.h>
#include <expat.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "mxpc/buf.h"
#include "mxpc/http.h"
#include "mxpc/log.h"
#include "mxpc/interrupt.h"
#include "mxpc/s3.h"
#include "mxpc/sigv4.h"

#define ERROR_BODY_MAX (64 * 1024)
#define RESPONSE_MAX (4 * 1024 * 1024)

struct mxpc_s3 {
    struct mxpc_http *http;
    struct request *waiting; /* requests waiting for a retry */
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
    struct mxpc_aws_credentials creds;
};

/* --- errors --------------------------------------------------------------- */

static void set_error(struct mxpc_s3_error *e, const char *code, const char *hint, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void set_error(struct mxpc_s3_error *e, const char *code, const char *hint, const char *fmt, ...)
{
    snprintf(e->code, sizeof e->code, "%s", code);
    snprintf(e->hint, sizeof e->hint, "%s", hint ? hint : "");
    e->facts.kind[0] = '\0'; /* worded here: final */
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->message, sizeof e->message, fmt, ap);
    va_end(ap);
}

/* No error (what a reader looks at; the facts are filled with their kind). */
static void clear_error(struct mxpc_s3_error *e)
{
    e->code[0] = e->message[0] = e->hint[0] = e->s3_code[0] = e->facts.kind[0] = '\0';
    e->http_status = 0;
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
    const char *if_match;
    const char *content_type;
    const char *content_md5; /* base64, signed and sent when set */
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

    /* the engine */
    CURL *easy;
    struct curl_slist *headers;
    struct mxpc_buf url;
    char curl_err[CURL_ERROR_SIZE];
    char payload_hash[65];
    char if_match_buf[128];
    int state, attempt, rc;
    long long retry_at;
    struct timespec t0;
    struct request *next_wait;
    struct mxpc_s3_error err;
    void (*on_done)(struct mxpc_s3 *s3, struct request *r);
    void *owner;
    size_t index;

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
    curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &status);
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
        curl_easy_getinfo(r->easy, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &cl);
        if ((r->range_from > 0 || r->end > 0) && status != 206) {
            snprintf(r->sink_error, sizeof r->sink_error, "the server ignored the Range of a%s download",
                     r->delivered > 0 ? " resumed" : "");
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

/* --- the request engine ------------------------------------------------------
 *
 * A request goes through attempts: each is signed afresh and added to the
 * client's transport as one transfer; when it ends, attempt_end decides to
 * retry (after a backoff, without blocking the other transfers) or to finish
 * the request (state DONE, rc and err filled, on_done called). pump() moves
 * every request of the client along; execute() runs one request to its end. */

enum { REQ_IDLE, REQ_RUNNING, REQ_WAITING, REQ_DONE };

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void attempt_end(struct mxpc_s3 *s3, struct request *r, CURLcode code);

/* Starts one attempt: sign, set the options, add the transfer. */
static void attempt_start(struct mxpc_s3 *s3, struct request *r)
{
    r->curl_err[0] = '\0';
    r->body_sent = 0;
    r->checked = 0;
    r->response.len = 0;
    r->range_from = r->sink ? r->offset + r->delivered : 0;
    if (r->range_from > 0 && !r->if_match && r->if_match_buf[0])
        r->if_match = r->if_match_buf; /* resume the same object, not a replacement */
    r->state = REQ_RUNNING;

    struct mxpc_buf host = MXPC_BUF_INIT, path = MXPC_BUF_INIT;
    build_target(s3, r->bucket, r->key, &host, &path);
    r->url.len = 0;
    mxpc_buf_printf(&r->url, "%s://%s%s%s%s", s3->scheme, host.data, path.data, r->query ? "?" : "",
                    r->query ? r->query : "");

    char range[64] = "";
    if (r->end > 0)
        snprintf(range, sizeof range, "bytes=%lld-%lld", (long long)r->range_from, (long long)r->end - 1);
    else if (r->range_from > 0)
        snprintf(range, sizeof range, "bytes=%lld-", (long long)r->range_from);
    struct mxpc_sigv4_header signed_headers[5];
    size_t nsigned = 0;
    if (r->content_md5)
        signed_headers[nsigned++] = (struct mxpc_sigv4_header){"content-md5", r->content_md5};
    signed_headers[nsigned++] = (struct mxpc_sigv4_header){"host", host.data};
    if (range[0])
        signed_headers[nsigned++] = (struct mxpc_sigv4_header){"range", range};
    if (r->if_match)
        signed_headers[nsigned++] = (struct mxpc_sigv4_header){"if-match", r->if_match};
    struct mxpc_sigv4_request sreq = {r->method, path.data, r->query, signed_headers, nsigned, r->payload_hash};
    struct mxpc_sigv4_result sig = MXPC_SIGV4_RESULT_INIT;
    CURLcode fail = CURLE_OK;
    /* temporary credentials are replaced shortly before they expire */
    if (mxpc_aws_credentials_refresh(&s3->creds, r->curl_err, sizeof r->curl_err) != 0) {
        char *nl = strchr(r->curl_err, '\n');
        if (nl)
            *nl = '\0';
        fail = CURLE_LOGIN_DENIED;
        goto out;
    }
    struct mxpc_sigv4_signer signer = signer_now(s3, MXPC_SIGV4_CONTENT_SHA256);
    if (mxpc_sigv4_sign(&signer, &sreq, &sig) != 0) {
        snprintf(r->curl_err, sizeof r->curl_err, "cannot sign the request");
        fail = CURLE_BAD_FUNCTION_ARGUMENT;
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
    r->headers = add_header(r->headers, "Content-Type: %s", r->content_type ? r->content_type : "");
    if (r->content_md5)
        r->headers = add_header(r->headers, "Content-MD5: %s", r->content_md5);

    if (!r->easy)
        r->easy = mxpc_http_easy(s3->http);
    else
        curl_easy_reset(r->easy);
    CURL *c = r->easy;
    if (!c) {
        snprintf(r->curl_err, sizeof r->curl_err, "cannot create a libcurl handle");
        fail = CURLE_FAILED_INIT;
        goto out;
    }
    int ok = mxpc_http_defaults(s3->http, c, r->curl_err) == 0;
    MXPC_HTTP_SET(ok, c, CURLOPT_PRIVATE, (void *)r);
    MXPC_HTTP_SET(ok, c, CURLOPT_URL, r->url.data);
    MXPC_HTTP_SET(ok, c, CURLOPT_PATH_AS_IS, 1L); /* keys may contain "//" or "/./" */
    MXPC_HTTP_SET(ok, c, CURLOPT_HTTPHEADER, r->headers);
    MXPC_HTTP_SET(ok, c, CURLOPT_WRITEFUNCTION, on_write);
    MXPC_HTTP_SET(ok, c, CURLOPT_WRITEDATA, (void *)r);
    MXPC_HTTP_SET(ok, c, CURLOPT_HEADERFUNCTION, on_header);
    MXPC_HTTP_SET(ok, c, CURLOPT_HEADERDATA, (void *)r);
    if (mxpc_ca_apply(c, s3->ca_file, s3->ca_dir) != 0)
        ok = 0;
    if (s3->max_send_speed > 0)
        MXPC_HTTP_SET(ok, c, CURLOPT_MAX_SEND_SPEED_LARGE, (curl_off_t)s3->max_send_speed);
    if (strcmp(r->method, "HEAD") == 0) {
        MXPC_HTTP_SET(ok, c, CURLOPT_NOBODY, 1L);
    } else if (strcmp(r->method, "PUT") == 0 || strcmp(r->method, "POST") == 0) {
        if (strcmp(r->method, "PUT") == 0) {
            MXPC_HTTP_SET(ok, c, CURLOPT_UPLOAD, 1L);
            MXPC_HTTP_SET(ok, c, CURLOPT_INFILESIZE_LARGE, (curl_off_t)r->body_len);
        } else {
            MXPC_HTTP_SET(ok, c, CURLOPT_POST, 1L);
            MXPC_HTTP_SET(ok, c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)r->body_len);
        }
        MXPC_HTTP_SET(ok, c, CURLOPT_READFUNCTION, on_read);
        MXPC_HTTP_SET(ok, c, CURLOPT_READDATA, (void *)r);
        MXPC_HTTP_SET(ok, c, CURLOPT_SEEKFUNCTION, on_seek);
        MXPC_HTTP_SET(ok, c, CURLOPT_SEEKDATA, (void *)r);
    } else if (strcmp(r->method, "GET") != 0) {
        MXPC_HTTP_SET(ok, c, CURLOPT_CUSTOMREQUEST, r->method);
    }
    if (!ok) {
        snprintf(r->curl_err, sizeof r->curl_err, "libcurl refused an option of the request");
        fail = CURLE_BAD_FUNCTION_ARGUMENT;
        goto out;
    }
    clock_gettime(CLOCK_MONOTONIC, &r->t0);
    if (mxpc_http_add(s3->http, c) != 0) {
        snprintf(r->curl_err, sizeof r->curl_err, "cannot start the transfer");
        fail = CURLE_FAILED_INIT;
    }
out:
    mxpc_sigv4_result_free(&sig);
    mxpc_buf_free(&host);
    mxpc_buf_free(&path);
    if (fail != CURLE_OK)
        attempt_end(s3, r, fail);
}

/* The IAM action a request needs, for messages. */
static const char *s3_action(const struct request *r)
{
    const char *q = r->query ? r->query : "";
    if (strcmp(r->method, "GET") == 0 || strcmp(r->method, "HEAD") == 0)
        return !r->key ? (strstr(q, "uploads") ? "s3:ListBucketMultipartUploads" : "s3:ListBucket")
                       : strstr(q, "uploadId") ? "s3:ListMultipartUploadParts" : "s3:GetObject";
    if (strcmp(r->method, "DELETE") == 0)
        return !r->key ? "s3:DeleteBucket" : strstr(q, "uploadId") ? "s3:AbortMultipartUpload" : "s3:DeleteObject";
    if (strcmp(r->method, "POST") == 0 && !r->key && strcmp(q, "delete") == 0)
        return "s3:DeleteObject";
    return r->key ? "s3:PutObject" : "s3:CreateBucket";
}

/* The facts of a failed request for the Lua half that words the error
 * (lua/mxpc/s3_api.lua); the message already in e is the plain fallback. */
static void set_facts(struct mxpc_s3 *s3, const struct request *r, struct mxpc_s3_error *e, const char *kind)
{
    struct mxpc_s3_facts *f = &e->facts;
    memset(f, 0, sizeof *f);
    snprintf(f->kind, sizeof f->kind, "%s", kind);
    snprintf(f->method, sizeof f->method, "%s", r->method);
    snprintf(f->action, sizeof f->action, "%s", s3_action(r));
    object_name(f->object, sizeof f->object, r->bucket, r->key);
    snprintf(f->bucket, sizeof f->bucket, "%s", r->bucket ? r->bucket : "");
    snprintf(f->key, sizeof f->key, "%s", r->key ? r->key : "");
    snprintf(f->endpoint, sizeof f->endpoint, "%s", s3->endpoint);
    snprintf(f->creds_source, sizeof f->creds_source, "%s", s3->creds.source);
    snprintf(f->role_arn, sizeof f->role_arn, "%s", s3->creds.role_arn);
    snprintf(f->access_key, sizeof f->access_key, "%s", s3->creds.access_key ? s3->creds.access_key : "");
    snprintf(f->if_match, sizeof f->if_match, "%s", r->if_match ? r->if_match : "");
    f->resumed = r->delivered > 0;
    f->resume_at = r->range_from;
}

/* A response >= 300: its status, <Code> and <Message> as facts (worded in
 * Lua), with a plain message. */
static void http_error(struct mxpc_s3 *s3, struct request *r, struct mxpc_s3_error *e)
{
    struct xml_error x;
    memset(&x, 0, sizeof x);
    parse_error(&r->response, &x);
    char what[1024];
    object_name(what, sizeof what, r->bucket, r->key);
    set_error(e, "s3", NULL, "S3 %s %s failed: HTTP %ld%s%s%s%s", r->method, what, r->status, x.code[0] ? " " : "",
              x.code, x.message[0] ? ": " : "", x.message);
    e->http_status = r->status;
    snprintf(e->s3_code, sizeof e->s3_code, "%s", x.code);
    set_facts(s3, r, e, "http");
    snprintf(e->facts.s3_message, sizeof e->facts.s3_message, "%s", x.message);
}

/* The request is over: rc and err from the last attempt's result. */
static void finish(struct mxpc_s3 *s3, struct request *r, CURLcode code)
{
    struct mxpc_s3_error *e = &r->err;
    clear_error(e);
    r->rc = -1;
    r->state = REQ_DONE;
    if (r->if_match == r->if_match_buf)
        r->if_match = NULL;
    char what[1024];
    object_name(what, sizeof what, r->bucket, r->key);
    if (code == CURLE_ABORTED_BY_CALLBACK)
        set_error(e, "interrupted", NULL, "interrupted: S3 %s %s", r->method, what);
    else if (r->sink_failed)
        set_error(e, "io", NULL, "%s: %s", what, r->sink_error);
    else if (r->size_mismatch)
        set_error(e, "size", NULL, "%s has %lld bytes, expected %lld", what, (long long)r->content_length,
                  (long long)r->expected_size);
    else if (code == CURLE_LOGIN_DENIED)
        set_error(e, "credentials", NULL, "S3 %s %s: cannot renew the AWS credentials: %s", r->method, what,
                  r->curl_err[0] ? r->curl_err : curl_easy_strerror(code));
    else if (code != CURLE_OK) {
        const char *why = r->curl_err[0] ? r->curl_err : curl_easy_strerror(code);
        set_error(e, "connect", NULL, "S3 %s %s at %s: %s", r->method, what, s3->endpoint, why);
        set_facts(s3, r, e, mxpc_http_tls_problem(code) ? "tls" : "connect");
        snprintf(e->facts.transport, sizeof e->facts.transport, "%s", why);
    } else if (r->status >= 300)
        http_error(s3, r, e);
    else
        r->rc = 0;
    if (r->on_done)
        r->on_done(s3, r);
}

static void attempt_end(struct mxpc_s3 *s3, struct request *r, CURLcode code)
{
    CURL *c = r->easy;
    r->status = 0;
    if (c && code != CURLE_BAD_FUNCTION_ARGUMENT && code != CURLE_FAILED_INIT && code != CURLE_LOGIN_DENIED) {
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status);
        curl_off_t cl = -1;
        curl_easy_getinfo(c, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &cl);
        if (!r->size_mismatch)
            r->content_length = cl;
        struct timespec t1;
        clock_gettime(CLOCK_MONOTONIC, &t1);
        double ms = (double)(t1.tv_sec - r->t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - r->t0.tv_nsec) / 1e6;
        mxpc_log(MXPC_LOG_DEBUG, "s3 %s %s -> %ld (%.0f ms)%s%s", r->method, r->url.data ? r->url.data : "",
                 r->status, ms, code ? ": " : "", code ? (r->curl_err[0] ? r->curl_err : curl_easy_strerror(code)) : "");
    }
    curl_slist_free_all(r->headers);
    r->headers = NULL;
    if (r->sink && r->range_from == r->offset && r->etag[0])
        snprintf(r->if_match_buf, sizeof r->if_match_buf, "%s", r->etag); /* the object a resume must come from */
    int retry = r->idempotent && r->attempt < s3->max_retries && !r->sink_failed && !r->size_mismatch &&
                mxpc_http_retryable(code, r->status);
    if (!retry) {
        finish(s3, r, code);
        return;
    }
    mxpc_log(MXPC_LOG_WARN, "s3 %s %s/%s: %s; retrying (%d of %d)", r->method, r->bucket ? r->bucket : "",
             r->key ? r->key : "",
             code ? (r->curl_err[0] ? r->curl_err : curl_easy_strerror(code))
                  : (r->status == 429 ? "HTTP 429" : "HTTP 5xx"),
             r->attempt + 1, s3->max_retries);
    r->retry_at = now_ms() + mxpc_http_backoff_ms(r->attempt);
    r->attempt++;
    r->state = REQ_WAITING;
    r->next_wait = s3->waiting;
    s3->waiting = r;
}

/* Starts a request (it runs as the client is pumped). */
static void request_begin(struct mxpc_s3 *s3, struct request *r, int unsigned_ok)
{
    if (!r->body)
        snprintf(r->payload_hash, sizeof r->payload_hash, "%s", MXPC_SIGV4_EMPTY_SHA256);
    else if (unsigned_ok && s3->unsigned_payload)
        snprintf(r->payload_hash, sizeof r->payload_hash, "%s", MXPC_SIGV4_UNSIGNED_PAYLOAD);
    else
        mxpc_sigv4_sha256_hex(r->body, r->body_len, r->payload_hash);
    r->s3 = s3;
    r->attempt = 0;
    attempt_start(s3, r);
}

static void unwait(struct mxpc_s3 *s3, struct request *r)
{
    for (struct request **p = &s3->waiting; *p; p = &(*p)->next_wait) {
        if (*p == r) {
            *p = r->next_wait;
            return;
        }
    }
}

/* Moves every request of the client along, waiting up to timeout_ms. */
static void pump(struct mxpc_s3 *s3, int timeout_ms)
{
    long long now = now_ms();
    int stop = mxpc_http_interrupted(s3->http);
    for (struct request *r = s3->waiting, *next; r; r = next) {
        next = r->next_wait;
        if (stop || r->retry_at <= now) {
            unwait(s3, r);
            if (stop)
                finish(s3, r, CURLE_ABORTED_BY_CALLBACK);
            else
                attempt_start(s3, r);
        } else if (r->retry_at - now < timeout_ms) {
            timeout_ms = (int)(r->retry_at - now);
        }
    }
    if (mxpc_http_step(s3->http, timeout_ms) != 0)
        mxpc_log(MXPC_LOG_DEBUG, "s3: the transport failed to move on; trying again");
    CURLcode code;
    CURL *c;
    while ((c = mxpc_http_done(s3->http, &code))) {
        struct request *r = NULL;
        curl_easy_getinfo(c, CURLINFO_PRIVATE, (char **)&r);
        if (r)
            attempt_end(s3, r, code);
    }
}

/* Stops a request that has not finished (its rc is -1, its error `code`). */
static void request_cancel(struct mxpc_s3 *s3, struct request *r, const char *code)
{
    if (r->state == REQ_RUNNING)
        mxpc_http_release(s3->http, r->easy), r->easy = NULL;
    else if (r->state == REQ_WAITING)
        unwait(s3, r);
    if (r->state == REQ_RUNNING || r->state == REQ_WAITING) {
        char what[1024];
        object_name(what, sizeof what, r->bucket, r->key);
        set_error(&r->err, code, NULL, "S3 %s %s: stopped", r->method, what);
        r->rc = -1;
        r->state = REQ_DONE;
    }
}

/* Runs a request with retries; 0 on a 2xx answer, else -1 with e filled. */
static int execute(struct mxpc_s3 *s3, struct request *r, int unsigned_ok, struct mxpc_s3_error *e)
{
    request_begin(s3, r, unsigned_ok);
    while (r->state != REQ_DONE)
        pump(s3, 100);
    memcpy(e, &r->err, sizeof *e);
    return r->rc;
}

static void request_free(struct request *r)
{
    if (r->s3) {
        if (r->state == REQ_RUNNING || r->state == REQ_WAITING)
            request_cancel(r->s3, r, "interrupted");
        mxpc_http_release(r->s3->http, r->easy);
    }
    r->easy = NULL;
    curl_slist_free_all(r->headers);
    r->headers = NULL;
    mxpc_buf_free(&r->url);
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
    if (memchr(rest, '@', alen)) {
        set_error(e, "usage",
                  "write it as https://host[:port][/path]: the credentials are the access key and the secret key",
                  "S3 endpoint %s holds a user name and password", ep.data);
        mxpc_buf_free(&ep);
        free(region);
        return NULL;
    }
    if (alen == 0 || rest[alen] == '?' || rest[alen] == '#') {
        set_error(e, "usage", "write it as https://host[:port][/path]", "S3 endpoint %s is not usable",
                  ep.data);
        mxpc_buf_free(&ep);
        free(region);
        return NULL;
    }

    struct mxpc_s3 *s3 = calloc(1, sizeof *s3);
    if (!s3)
        abort();
    s3->http = mxpc_http_new();
    if (!s3->http) {
        free(s3);
        set_error(e, "connect", NULL, "cannot initialise libcurl");
        mxpc_buf_free(&ep);
        free(region);
        return NULL;
    }
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
        expected_size = range->length; /* checked at the end: the answer's length is the range's */
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
        if (bytes)
            *bytes = 0;
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

/* The <Error> elements of a DeleteObjects answer: the current one as it is
 * read (xml_capture), and the first. */
struct delete_errors {
    char key[1024], code[64], message[256];
    char first_key[1024], first_code[64], first_message[256];
};

static void delete_error_end(struct xml_capture *c)
{
    struct delete_errors *d = c->ud;
    if (c->records == 1) {
        memcpy(d->first_key, d->key, sizeof d->key);
        memcpy(d->first_code, d->code, sizeof d->code);
        memcpy(d->first_message, d->message, sizeof d->message);
    }
    d->key[0] = d->code[0] = d->message[0] = '\0';
}

/* Appends text as XML character data; -1 if it holds a character XML 1.0
 * cannot carry (control characters other than tab, newline, return). */
static int xml_text(struct mxpc_buf *b, const char *text)
{
    for (const unsigned char *p = (const unsigned char *)text; *p; p++) {
        switch (*p) {
        case '&': mxpc_buf_puts(b, "&amp;"); break;
        case '<': mxpc_buf_puts(b, "&lt;"); break;
        case '>': mxpc_buf_puts(b, "&gt;"); break;
        case '"': mxpc_buf_puts(b, "&quot;"); break;
        case '\'': mxpc_buf_puts(b, "&apos;"); break;
        case '\r': mxpc_buf_puts(b, "&#13;"); break;
        default:
            if (*p < 0x20 && *p != '\t' && *p != '\n')
                return -1;
            mxpc_buf_putc(b, (char)*p);
        }
    }
    return 0;
}

int mxpc_s3_delete_objects(struct mxpc_s3 *s3, const char *bucket, const char *const *keys, size_t n,
                           size_t *refused, struct mxpc_s3_error *e)
{
    clear_error(e);
    if (refused)
        *refused = 0;
    if (n == 0)
        return 0;
    if (n > MXPC_S3_DELETE_BATCH) {
        set_error(e, "usage", NULL, "at most %d keys can be deleted in one request", MXPC_S3_DELETE_BATCH);
        return -1;
    }
    if (check_names(bucket, NULL, 0, e))
        return -1;
    struct mxpc_buf body = MXPC_BUF_INIT;
    mxpc_buf_puts(&body, "<Delete xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Quiet>true</Quiet>");
    for (size_t i = 0; i < n; i++) {
        if (check_names(bucket, keys[i], 1, e)) {
            mxpc_buf_free(&body);
            return -1;
        }
        mxpc_buf_puts(&body, "<Object><Key>");
        if (xml_text(&body, keys[i]) != 0) {
            char what[1024];
            object_name(what, sizeof what, bucket, keys[i]);
            set_error(e, "usage", "delete it with a single DELETE", "%s: the key has a control character, which a "
                      "DeleteObjects request cannot carry", what);
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
        set_error(e, "io", NULL, "cannot compute the MD5 a DeleteObjects request needs");
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
    int rc = execute(s3, &r, 0, e);
    if (rc == 0) {
        struct delete_errors d;
        memset(&d, 0, sizeof d);
        struct xml_capture c = {{"Key", "Code", "Message"},
                                {d.key, d.code, d.message},
                                {sizeof d.key, sizeof d.code, sizeof d.message},
                                "Error", delete_error_end, &d, 0};
        if (xml_each(r.response.data ? r.response.data : "", r.response.len, capture_element, &c) != 0) {
            set_error(e, "io", NULL, "deleting %zu objects in s3://%s: the answer is not the XML S3 sends", n,
                      bucket && *bucket ? bucket : "(endpoint)");
            rc = -1;
        } else if (c.records > 0) {
            size_t refused_n = (size_t)c.records;
            char what[sizeof d.first_key + 128];
            object_name(what, sizeof what, bucket, d.first_key);
            set_error(e, "s3", NULL, "%zu of %zu objects were not deleted; the first, %s: %s%s%s", refused_n, n, what,
                      d.first_code, d.first_message[0] ? ": " : "", d.first_message);
            snprintf(e->s3_code, sizeof e->s3_code, "%s", d.first_code);
            set_facts(s3, &r, e, "delete");
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
    request_free(&r);
    mxpc_buf_free(&body);
    return rc;
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

static void list_element(void *ud, const char *name, const char *text)
{
    struct list_page *p = ud;
    if (strcmp(name, "Key") == 0) {
        p->key.len = 0;
        mxpc_buf_puts(&p->key, text);
    } else if (strcmp(name, "Size") == 0) {
        char *end;
        long long v = strtoll(text, &end, 10);
        if (end == text || *end || v < 0)
            p->bad = 1;
        p->size = v;
    } else if (strcmp(name, "ETag") == 0) {
        snprintf(p->etag, sizeof p->etag, "%s", text);
    } else if (strcmp(name, "LastModified") == 0) {
        snprintf(p->modified, sizeof p->modified, "%s", text);
    } else if (strcmp(name, "IsTruncated") == 0) {
        p->truncated = strcmp(text, "true") == 0;
    } else if (strcmp(name, "NextContinuationToken") == 0) {
        p->token.len = 0;
        mxpc_buf_puts(&p->token, text);
    } else if (strcmp(name, "Contents") == 0) {
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


int mxpc_s3_list(struct mxpc_s3 *s3, const char *bucket, const char *prefix, int max_keys, mxpc_s3_list_fn fn,
                 void *ud, struct mxpc_s3_error *e)
{
    if (check_names(bucket, NULL, 0, e))
        return -1;
    if (!prefix)
        prefix = "";
    struct list_page p;
    memset(&p, 0, sizeof p);
    struct mxpc_buf q = MXPC_BUF_INIT;
    int rc = 0;
    do {
        q.len = 0;
        mxpc_buf_puts(&q, "list-type=2");
        if (p.token.len) {
            mxpc_buf_puts(&q, "&continuation-token=");
            mxpc_sigv4_uri_encode(&q, p.token.data, p.token.len, 0);
        }
        if (max_keys > 0)
            mxpc_buf_printf(&q, "&max-keys=%d", max_keys);
        mxpc_buf_puts(&q, "&prefix=");
        mxpc_sigv4_uri_encode(&q, prefix, strlen(prefix), 0);
        struct request r = {
            .method = "GET", .bucket = bucket, .query = q.data, .idempotent = 1, .expected_size = -1};
        rc = execute(s3, &r, 0, e);
        if (rc != 0 && strcmp(e->facts.kind, "http") == 0) { /* worded as a listing (ListBucket) */
            snprintf(e->facts.kind, sizeof e->facts.kind, "list");
            snprintf(e->facts.prefix, sizeof e->facts.prefix, "%s", prefix);
        }
        list_page_reset(&p);
        if (rc == 0 && (xml_each(r.response.data, r.response.len, list_element, &p) != 0 || p.bad ||
                        (p.truncated && !p.token.len))) {
            set_error(e, "s3", NULL, "cannot parse the object list of s3://%s/%s", bucket && *bucket ? bucket : "(endpoint)",
                      prefix);
            rc = -1;
        }
        request_free(&r);
        for (size_t i = 0; rc == 0 && i < p.n; i++) {
            struct mxpc_s3_listed o = {p.strings.data + p.objects[i].key, p.objects[i].size,
                                       p.strings.data + p.objects[i].etag, p.strings.data + p.objects[i].modified};
            clear_error(e);
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
    if (check_names(bucket, key, 1, e))
        return NULL;
    if (expires < 1 || expires > 604800) {
        set_error(e, "usage", NULL, "a presigned URL expires after 1 to 604800 seconds, not %ld", expires);
        return NULL;
    }
    char cerr[512];
    if (mxpc_aws_credentials_refresh(&s3->creds, cerr, sizeof cerr) != 0) {
        cerr[strcspn(cerr, "\n")] = '\0';
        set_error(e, "credentials", NULL, "cannot renew the AWS credentials: %s", cerr);
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

/* --- many objects at once ------------------------------------------------------
 *
 * Up to `concurrency` requests in flight. A GET's bytes go into memory while
 * the objects held stay within `window` bytes, else into an unnamed file in
 * spill_dir (gone when closed, whatever happens). Each finished item is
 * handed to the callback in completion order and released when it returns;
 * an item the callback holds stays (and keeps its memory) until it is
 * accepted. Only the slots in flight and the held items take memory, so the
 * number of items does not matter. */

struct slot {
    struct request r;
    char *bucket, *key; /* of its item, owned */
    int64_t size;       /* its expected size, or -1 */
    char *mem;
    size_t cap;
    int fd;
    int64_t reserved;
    int busy;
};

struct held {
    struct mxpc_s3_fetched f;
    char *key; /* owned: f.key */
    char *mem;
    int64_t reserved;
    struct held *next;
};

struct many {
    struct mxpc_s3 *s3;
    const struct mxpc_s3_many_options *o;
    int head;
    int64_t reserved; /* bytes of memory promised to slots and held items */
    size_t finished;  /* slots that finished and wait to be handed on */
    int spilled;      /* spill files open, of slots and of held items */
    int max_spilled;  /* a share of the open-file limit */
    const struct mxpc_s3_items *src;
    int have_next;         /* pending holds the next item, asked for but not started */
    struct mxpc_s3_item pending; /* its bucket and key owned */
};

/* Held items each keep their spill file open: while fn holds them (the
 * backup waits for pg_dump), no more than a quarter of the open-file limit
 * are opened, so sockets and other files still get descriptors. */
static int spill_limit(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur > 16384)
        return 4096;
    int n = (int)(rl.rlim_cur / 4);
    return n < 4 ? 4 : n;
}

static int slot_sink(void *ud, const void *data, size_t len, char *err, size_t errlen)
{
    struct slot *s = ud;
    if (s->fd >= 0) {
        const char *p = data;
        while (len > 0) {
            ssize_t n = write(s->fd, p, len);
            if (n < 0 && errno == EINTR)
                continue;
            if (n < 0) {
                snprintf(err, errlen, "cannot write to the working directory: %s", strerror(errno));
                return -1;
            }
            p += n;
            len -= (size_t)n;
        }
        return 0;
    }
    if ((size_t)s->r.delivered + len > s->cap) {
        snprintf(err, errlen, "more bytes arrived than announced");
        return -1;
    }
    memcpy(s->mem + s->r.delivered, data, len);
    return 0;
}

static int spill_file(const char *dir, char *err, size_t errlen)
{
    int fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
    if (fd >= 0)
        return fd;
    struct mxpc_buf b = MXPC_BUF_INIT;
    mxpc_buf_printf(&b, "%s/.mxpc-spill-XXXXXX", dir);
    fd = mkostemp(b.data, O_CLOEXEC);
    if (fd >= 0)
        unlink(b.data);
    else
        snprintf(err, errlen, "cannot create a file in %s: %s", dir, strerror(errno));
    mxpc_buf_free(&b);
    return fd;
}

static void slot_done(struct mxpc_s3 *s3, struct request *r)
{
    (void)s3;
    struct many *m = r->owner;
    m->finished++;
}

/* Asks the source for item i into m->pending (bucket and key copied, so
 * they live as long as its request); 0, or -1 with e filled. */
static int fetch_item(struct many *m, size_t i, struct mxpc_s3_error *e)
{
    if (m->have_next)
        return 0;
    struct mxpc_s3_item it = {NULL, NULL, -1};
    if (m->src->get(m->src->ud, i, &it, e) != 0)
        return -1;
    if (check_names(it.bucket, it.key, 1, e))
        return -1;
    m->pending.bucket = strdup(it.bucket);
    m->pending.key = strdup(it.key);
    if (!m->pending.bucket || !m->pending.key)
        abort();
    m->pending.size = it.size;
    m->have_next = 1;
    return 0;
}

static void drop_pending(struct many *m)
{
    if (m->have_next) {
        free((char *)m->pending.bucket);
        free((char *)m->pending.key);
        m->have_next = 0;
    }
}

/* Starts the pending item, number i, in a free slot; 0, 1 when it needs a
 * spill file and as many are open as allowed (it waits), or -1 with e
 * filled. */
static int slot_start(struct many *m, struct slot *s, size_t i, struct mxpc_s3_error *e)
{
    const struct mxpc_s3_many_options *o = m->o;
    const struct mxpc_s3_item *it = &m->pending;
    int in_memory = it->size >= 0 && it->size <= o->window / 4 && m->reserved + it->size <= o->window;
    if (!m->head && !in_memory && m->spilled >= m->max_spilled)
        return 1;
    memset(&s->r, 0, sizeof s->r);
    s->fd = -1;
    s->reserved = 0;
    s->busy = 1;
    if (!m->head) {
        if (in_memory) {
            if ((size_t)it->size > s->cap || !s->mem) {
                free(s->mem);
                s->cap = it->size ? (size_t)it->size : 1;
                s->mem = malloc(s->cap);
                if (!s->mem)
                    abort();
            }
            s->reserved = it->size;
            m->reserved += it->size;
        } else {
            char err[512];
            s->fd = spill_file(o->spill_dir ? o->spill_dir : "/tmp", err, sizeof err);
            if (s->fd < 0) {
                s->busy = 0;
                set_error(e, "io", "give the working directory some room, or use a smaller window", "%s", err);
                return -1;
            }
            m->spilled++;
        }
    }
    /* the slot takes the item over */
    s->bucket = (char *)it->bucket;
    s->key = (char *)it->key;
    s->size = it->size;
    m->have_next = 0;
    s->r = (struct request){.method = m->head ? "HEAD" : "GET",
                            .bucket = s->bucket,
                            .key = s->key,
                            .idempotent = 1,
                            .sink = m->head ? NULL : slot_sink,
                            .sink_ud = s,
                            .expected_size = m->head ? -1 : s->size,
                            .on_done = slot_done,
                            .owner = m,
                            .index = i};
    request_begin(m->s3, &s->r, 0);
    return 0;
}

static void slot_clear(struct many *m, struct slot *s)
{
    request_free(&s->r);
    free(s->bucket);
    free(s->key);
    s->bucket = s->key = NULL;
    if (s->fd >= 0) {
        close(s->fd);
        m->spilled--;
    }
    s->fd = -1;
    m->reserved -= s->reserved;
    s->reserved = 0;
    s->busy = 0;
    /* memory above the window's share is given back at once */
    if (s->cap > (size_t)(1 << 20)) {
        free(s->mem);
        s->mem = NULL;
        s->cap = 0;
    }
}

static void held_free(struct many *m, struct held *h)
{
    if (h->f.fd >= 0) {
        close(h->f.fd);
        m->spilled--;
    }
    free(h->mem);
    free(h->key);
    m->reserved -= h->reserved;
    free(h);
}

int mxpc_s3_many(struct mxpc_s3 *s3, int head, const struct mxpc_s3_items *src,
                 const struct mxpc_s3_many_options *o, mxpc_s3_fetched_fn fn, void *ud, struct mxpc_s3_error *e)
{
    clear_error(e);
    size_t n = src->n;
    int conc = o->concurrency > 0 ? o->concurrency : MXPC_S3_DEFAULT_CONCURRENCY;
    struct slot *slots = calloc((size_t)conc, sizeof *slots);
    if (!slots)
        abort();
    for (int k = 0; k < conc; k++)
        slots[k].fd = -1;
    struct many m = {s3, o, head, 0, 0, 0, spill_limit(), src, 0, {NULL, NULL, -1}};
    struct held *first = NULL, **last = &first;
    size_t next = 0;
    int rc = 0, running = 0;
    while (rc == 0) {
        if (mxpc_interrupted()) {
            set_error(e, "interrupted", NULL, "interrupted: %zu of %zu S3 objects done", next - (size_t)running, n);
            rc = -1;
            break;
        }
        /* start what the slots allow */
        int blocked = 0; /* the next item waits for a spill file */
        for (int k = 0; k < conc && next < n && rc == 0 && !blocked; k++) {
            if (slots[k].busy)
                continue;
            rc = fetch_item(&m, next, e);
            if (rc == 0)
                rc = slot_start(&m, &slots[k], next, e);
            if (rc == 1)
                blocked = 1, rc = 0;
            else if (rc == 0)
                next++, running++;
        }
        if (rc != 0)
            break;
        /* hand on what finished: held items first, in the order they finished */
        if (m.finished > 0) {
            m.finished = 0;
            for (int k = 0; k < conc; k++) {
                struct slot *s = &slots[k];
                if (!s->busy || s->r.state != REQ_DONE)
                    continue;
                running--;
                struct held *h = calloc(1, sizeof *h);
                if (!h)
                    abort();
                h->f.index = s->r.index;
                h->f.fd = -1;
                h->f.failed = s->r.rc != 0;
                if (s->r.rc == 0 && !head && s->size >= 0 && s->r.delivered != s->size) {
                    char what[1024];
                    object_name(what, sizeof what, s->bucket, s->key);
                    set_error(&s->r.err, "size", NULL, "%s: received %lld bytes, expected %lld", what,
                              (long long)s->r.delivered, (long long)s->size);
                    h->f.failed = 1;
                }
                if (h->f.failed)
                    memcpy(&h->f.err, &s->r.err, sizeof h->f.err);
                h->f.size = head ? s->r.content_length : s->r.delivered;
                snprintf(h->f.etag, sizeof h->f.etag, "%s", s->r.etag);
                if (!h->f.failed && !head) {
                    if (s->fd >= 0) {
                        h->f.fd = s->fd;
                        s->fd = -1;
                        lseek(h->f.fd, 0, SEEK_SET);
                    } else {
                        h->mem = s->mem; /* the slot gets new memory next time */
                        h->f.data = h->mem;
                        s->mem = NULL;
                        s->cap = 0;
                        h->reserved = s->reserved;
                        s->reserved = 0;
                    }
                }
                h->key = s->key; /* the held item takes the key over */
                h->f.key = h->key;
                s->key = NULL;
                slot_clear(&m, s);
                *last = h;
                last = &h->next;
            }
        }
        while (first && rc == 0) {
            /* nothing else can finish: nothing runs, and nothing more starts */
            int must = running == 0 && (next >= n || blocked);
            struct held *h = first;
            int r = fn(ud, &h->f, must, e);
            if (r == 1 && !must)
                break; /* held: asked again after the next item finishes */
            if (r != 0) {
                if (r == 1)
                    set_error(e, "usage", NULL, "an item was held while nothing else could finish");
                rc = -1;
                break;
            }
            first = h->next;
            if (!first)
                last = &first;
            held_free(&m, h);
        }
        if (rc != 0 || (running == 0 && next >= n && !first))
            break;
        if (running > 0)
            pump(s3, 100);
        mxpc_tick();
    }
    /* stop what is still in flight: nothing of it is kept */
    for (int k = 0; k < conc; k++) {
        if (slots[k].busy)
            slot_clear(&m, &slots[k]);
        free(slots[k].mem);
    }
    drop_pending(&m);
    while (first) {
        struct held *h = first;
        first = h->next;
        held_free(&m, h);
    }
    free(slots);
    return rc;
}

/* --- uploads, many at once -------------------------------------------------------
 *
 * Each part is read into memory first: that makes a part
 * retryable after a reset connection, and over plain http lets it be signed
 * with its real SHA-256 (RGW checks it, so corruption on the way is caught).
 * Over https it goes as UNSIGNED-PAYLOAD: TLS already protects it, and
 * hashing would cost a second pass over every byte. Streaming without the
 * buffer (STREAMING-AWS4-HMAC-SHA256-PAYLOAD chunk signing) would save one
 * part of memory but could not be retried.
 *
 * The caller hands over one object after the other (read from one sequential
 * source, an archive); each is read into memory part by part, waiting while
 * the parts in flight fill the window or the concurrency, and sent at once.
 * Large objects are multipart uploads whose parts go in parallel; each is
 * completed when its last part is in. The first failure stops everything:
 * what is in flight is cancelled and every unfinished multipart upload is
 * aborted. */

struct upjob {
    struct mxpc_s3_uploader *up;
    char *bucket, *key;
    char upload_id[512];
    struct mxpc_buf enc_id;
    int64_t nparts, parts_done; /* parts sent so far (all of them once all_read), parts in */
    int64_t cap;                /* of etags */
    char (*etags)[128];
    int all_read, completing, done;
    struct request complete;
    struct mxpc_buf xml, query;
    struct upjob *next;
};

struct uptask {
    struct mxpc_s3_uploader *up;
    struct request r;
    char *buf;
    size_t len;
    struct upjob *job;
    int64_t part;
    char *bucket, *key;
    struct mxpc_buf query;
    struct uptask *next;
};

struct mxpc_s3_uploader {
    struct mxpc_s3 *s3;
    int concurrency;
    int64_t window, reserved;
    int in_flight;
    struct uptask *tasks; /* started, finished or not */
    struct upjob *jobs;   /* multipart uploads not yet completed or aborted */
    int failed, stopped;
    struct mxpc_s3_error err;
    int64_t objects, bytes;
    char last_etag[128]; /* of the object finished last */
};

static void up_fail(struct mxpc_s3_uploader *up, const struct mxpc_s3_error *e)
{
    if (up->failed)
        return;
    up->failed = 1;
    memcpy(&up->err, e, sizeof up->err);
}

static void task_done(struct mxpc_s3 *s3, struct request *r)
{
    (void)s3;
    struct uptask *t = r->owner;
    struct mxpc_s3_uploader *up = t->up;
    up->in_flight--;
    up->reserved -= (int64_t)t->len;
    free(t->buf);
    t->buf = NULL;
    t->len = 0;
    if (r->rc != 0) {
        up_fail(up, &r->err);
        return;
    }
    if (t->job) {
        if (!r->etag[0]) {
            struct mxpc_s3_error e;
            set_error(&e, "s3", NULL, "S3 returned no ETag for part %lld of s3://%s/%s", (long long)t->part,
                      t->job->bucket, t->job->key);
            up_fail(up, &e);
            return;
        }
        snprintf(t->job->etags[t->part - 1], sizeof t->job->etags[0], "%s", r->etag);
        t->job->parts_done++;
    } else {
        up->objects++;
        snprintf(up->last_etag, sizeof up->last_etag, "%s", r->etag);
    }
}

static void complete_done(struct mxpc_s3 *s3, struct request *r)
{
    (void)s3;
    struct upjob *j = r->owner;
    struct mxpc_s3_uploader *up = j->up;
    up->in_flight--;
    if (r->rc != 0) {
        up_fail(up, &r->err);
        return;
    }
    struct xml_error res;
    memset(&res, 0, sizeof res);
    parse_error(&r->response, &res);
    if (res.is_error) { /* S3 may fail a completion inside a 200 answer */
        struct mxpc_s3_error e;
        set_error(&e, "s3", NULL, "S3 could not complete the multipart upload of s3://%s/%s: %s: %s", j->bucket,
                  j->key, res.code, res.message);
        up_fail(up, &e);
        return;
    }
    j->done = 1;
    up->objects++;
    snprintf(up->last_etag, sizeof up->last_etag, "%s", res.etag);
}

/* Frees finished tasks, and starts the completion of multipart uploads
 * whose parts are all in. */
static void up_tidy(struct mxpc_s3_uploader *up)
{
    for (struct uptask **p = &up->tasks; *p;) {
        struct uptask *t = *p;
        if (t->r.state == REQ_DONE) {
            *p = t->next;
            request_free(&t->r);
            mxpc_buf_free(&t->query);
            free(t->buf);
            free(t->bucket);
            free(t->key);
            free(t);
        } else {
            p = &t->next;
        }
    }
    for (struct upjob **p = &up->jobs; *p;) {
        struct upjob *j = *p;
        if (j->done) {
            *p = j->next;
            request_free(&j->complete);
            mxpc_buf_free(&j->xml);
            mxpc_buf_free(&j->query);
            mxpc_buf_free(&j->enc_id);
            free(j->etags);
            free(j->bucket);
            free(j->key);
            free(j);
            continue;
        }
        if (!up->failed && j->all_read && !j->completing && j->parts_done == j->nparts) {
            j->completing = 1;
            mxpc_buf_puts(&j->xml, "<CompleteMultipartUpload>");
            for (int64_t n = 1; n <= j->nparts; n++)
                mxpc_buf_printf(&j->xml, "<Part><PartNumber>%lld</PartNumber><ETag>%s</ETag></Part>", (long long)n,
                                j->etags[n - 1]);
            mxpc_buf_puts(&j->xml, "</CompleteMultipartUpload>");
            mxpc_buf_printf(&j->query, "uploadId=%s", j->enc_id.data);
            j->complete = (struct request){.method = "POST",
                                           .bucket = j->bucket,
                                           .key = j->key,
                                           .query = j->query.data,
                                           .body = j->xml.data,
                                           .body_len = j->xml.len,
                                           .content_type = "application/xml",
                                           .expected_size = -1,
                                           .on_done = complete_done,
                                           .owner = j};
            up->in_flight++;
            request_begin(up->s3, &j->complete, 0);
        }
        p = &j->next;
    }
}

/* After the first failure: cancel what is in flight, abort every unfinished
 * multipart upload (even when interrupted: an unfinished upload is billed
 * storage). */
static void up_stop(struct mxpc_s3_uploader *up)
{
    if (up->stopped)
        return;
    up->stopped = 1;
    for (struct uptask *t = up->tasks; t; t = t->next)
        request_cancel(up->s3, &t->r, "interrupted");
    for (struct upjob *j = up->jobs; j; j = j->next)
        if (j->completing)
            request_cancel(up->s3, &j->complete, "interrupted");
    up->in_flight = 0;
    up->reserved = 0;
    up_tidy(up);
    int cleaning = mxpc_http_cleanup(up->s3->http, 1);
    for (struct upjob *j = up->jobs; j; j = j->next) {
        if (j->done)
            continue;
        struct mxpc_s3_error ae;
        int rc = mxpc_s3_abort_multipart(up->s3, j->bucket, j->key, j->upload_id, &ae);
        if (rc != 0 && j->completing && ae.http_status == 404)
            mxpc_log(MXPC_LOG_DEBUG, "the multipart upload of s3://%s/%s was completed before it could be aborted",
                     j->bucket, j->key);
        else if (rc != 0)
            mxpc_log(MXPC_LOG_WARN, "could not abort the multipart upload %s of s3://%s/%s: %s", j->upload_id,
                     j->bucket, j->key, ae.message);
        else
            mxpc_log(MXPC_LOG_DEBUG, "aborted the multipart upload of s3://%s/%s", j->bucket, j->key);
        j->done = 1;
    }
    mxpc_http_cleanup(up->s3->http, cleaning);
    up_tidy(up);
}

/* Moves the transfers along; -1 (e filled, everything stopped) once
 * something failed or a signal came. */
static int up_pump(struct mxpc_s3_uploader *up, int timeout_ms, struct mxpc_s3_error *e)
{
    mxpc_tick();
    if (!up->failed && mxpc_interrupted()) {
        struct mxpc_s3_error ie;
        set_error(&ie, "interrupted", NULL, "interrupted: S3 uploads (%lld objects done)", (long long)up->objects);
        up_fail(up, &ie);
    }
    if (!up->failed && timeout_ms >= 0)
        pump(up->s3, timeout_ms);
    up_tidy(up);
    if (up->failed) {
        up_stop(up);
        memcpy(e, &up->err, sizeof *e);
        return -1;
    }
    return 0;
}

/* Waits until `len` more bytes fit: the window (one part always goes) and
 * the concurrency. */
static int up_room(struct mxpc_s3_uploader *up, int64_t len, struct mxpc_s3_error *e)
{
    if (up_pump(up, -1, e) != 0)
        return -1;
    while (up->in_flight >= up->concurrency || (up->in_flight > 0 && up->reserved + len > up->window))
        if (up_pump(up, 100, e) != 0)
            return -1;
    return 0;
}

static struct uptask *up_send(struct mxpc_s3_uploader *up, const char *bucket, const char *key, char *buf,
                              size_t len, struct upjob *job, int64_t part)
{
    struct uptask *t = calloc(1, sizeof *t);
    if (!t)
        abort();
    t->up = up;
    t->buf = buf;
    t->len = len;
    t->job = job;
    t->part = part;
    if (job)
        mxpc_buf_printf(&t->query, "partNumber=%lld&uploadId=%s", (long long)part, job->enc_id.data);
    t->r = (struct request){.method = "PUT",
                            .bucket = job ? job->bucket : bucket,
                            .key = job ? job->key : key,
                            .query = job ? t->query.data : NULL,
                            .body = buf,
                            .body_len = len,
                            .idempotent = 1,
                            .expected_size = -1,
                            .on_done = task_done,
                            .owner = t};
    if (!job) { /* the request keeps pointers: own copies of the names */
        t->bucket = xstrdup(bucket);
        t->key = xstrdup(key);
        t->r.bucket = t->bucket;
        t->r.key = t->key;
    }
    t->next = up->tasks;
    up->tasks = t;
    up->in_flight++;
    up->reserved += (int64_t)len;
    up->bytes += (int64_t)len;
    request_begin(up->s3, &t->r, 1);
    return t;
}

/* Fails the uploader with e and stops everything; returns -1. */
static int up_abandon(struct mxpc_s3_uploader *up, struct mxpc_s3_error *e)
{
    up_fail(up, e);
    up_stop(up);
    return -1;
}

/* Creates a multipart upload whose parts are then sent with job_part; it is
 * completed once all_read is set and its parts are in. NULL with e filled
 * (and the uploader stopped) on failure. */
static struct upjob *job_begin(struct mxpc_s3_uploader *up, const char *bucket, const char *key, const char *what,
                               struct mxpc_s3_error *e)
{
    struct request r = {.method = "POST", .bucket = bucket, .key = key, .query = "uploads", .expected_size = -1};
    /* Once S3 has made the upload, only its id in the answer lets us abort
     * it: a signal does not cut this short (the answer is small), and stops
     * everything right after (the next up_pump), aborting the upload. */
    int cleaning = mxpc_http_cleanup(up->s3->http, 1);
    int rc = execute(up->s3, &r, 0, e);
    mxpc_http_cleanup(up->s3->http, cleaning);
    struct upjob *j = calloc(1, sizeof *j);
    if (!j)
        abort();
    struct xml_capture cap = {{"UploadId"}, {j->upload_id}, {sizeof j->upload_id}, NULL, NULL, NULL, 0};
    if (rc == 0 && (xml_each(r.response.data, r.response.len, capture_element, &cap) != 0 || !j->upload_id[0])) {
        set_error(e, "s3", NULL, "S3 did not return an upload id for %s", what);
        rc = -1;
    }
    request_free(&r);
    if (rc != 0) {
        free(j);
        up_abandon(up, e);
        return NULL;
    }
    j->up = up;
    j->bucket = xstrdup(bucket);
    j->key = xstrdup(key);
    mxpc_sigv4_uri_encode(&j->enc_id, j->upload_id, strlen(j->upload_id), 0);
    j->next = up->jobs;
    up->jobs = j;
    return j;
}

/* Sends buf (malloc'ed, taken over) as the job's next part. */
static void job_part(struct mxpc_s3_uploader *up, struct upjob *j, char *buf, size_t len)
{
    if (j->nparts == j->cap) {
        int64_t cap = j->cap ? j->cap * 2 : 16;
        void *grown = realloc(j->etags, (size_t)cap * sizeof *j->etags);
        if (!grown)
            abort();
        j->etags = grown;
        j->cap = cap;
    }
    j->nparts++;
    up_send(up, NULL, NULL, buf, len, j, j->nparts);
}

struct mxpc_s3_uploader *mxpc_s3_uploader_new(struct mxpc_s3 *s3, const struct mxpc_s3_many_options *o)
{
    struct mxpc_s3_uploader *up = calloc(1, sizeof *up);
    if (!up)
        abort();
    up->s3 = s3;
    up->concurrency = o && o->concurrency > 0 ? o->concurrency : MXPC_S3_DEFAULT_CONCURRENCY;
    up->window = o && o->window > 0 ? o->window : MXPC_S3_DEFAULT_WINDOW;
    return up;
}

int mxpc_s3_uploader_put(struct mxpc_s3_uploader *up, const char *bucket, const char *key, int64_t size,
                         mxpc_s3_source_fn source, void *ud, struct mxpc_s3_error *e)
{
    clear_error(e);
    if (check_names(bucket, key, 1, e))
        return -1;
    char what[1024];
    object_name(what, sizeof what, bucket, key);
    if (size < 0) {
        set_error(e, "usage", NULL, "upload of %s: negative size", what);
        return -1;
    }
    if (up->failed) {
        memcpy(e, &up->err, sizeof *e);
        return -1;
    }
    struct mxpc_s3 *s3 = up->s3;
    if (size <= s3->threshold) {
        if (up_room(up, size, e) != 0)
            return -1;
        char *buf = malloc(size ? (size_t)size : 1);
        if (!buf)
            abort();
        if (fill(source, ud, buf, (size_t)size, 0, size, what, e) != 0 ||
            check_source_end(source, ud, size, what, e) != 0) {
            free(buf);
            return up_abandon(up, e);
        }
        up_send(up, bucket, key, buf, (size_t)size, NULL, 0);
        return up_pump(up, 0, e);
    }

    int64_t part = s3->part_size;
    if ((size + part - 1) / part > MXPC_S3_MAX_PARTS)
        part = ((size / MXPC_S3_MAX_PARTS) / MXPC_S3_MIB + 1) * MXPC_S3_MIB;
    struct upjob *j = job_begin(up, bucket, key, what, e);
    if (!j)
        return -1;
    mxpc_log(MXPC_LOG_DEBUG, "s3 multipart upload of %s: %lld parts of %lld bytes", what,
             (long long)((size + part - 1) / part), (long long)part);
    int64_t done = 0;
    while (done < size) {
        size_t len = (size_t)(size - done < part ? size - done : part);
        if (up_room(up, (int64_t)len, e) != 0)
            return -1;
        char *buf = malloc(len);
        if (!buf)
            abort();
        if (fill(source, ud, buf, len, done, size, what, e) != 0) {
            free(buf);
            return up_abandon(up, e);
        }
        job_part(up, j, buf, len);
        done += (int64_t)len;
    }
    if (check_source_end(source, ud, size, what, e) != 0)
        return up_abandon(up, e);
    j->all_read = 1;
    return up_pump(up, 0, e);
}

int mxpc_s3_uploader_finish(struct mxpc_s3_uploader *up, struct mxpc_s3_error *e)
{
    clear_error(e);
    for (;;) {
        if (up_pump(up, up->in_flight > 0 ? 100 : 0, e) != 0)
            return -1;
        if (up->in_flight == 0 && !up->jobs)
            return 0;
    }
}

void mxpc_s3_uploader_stats(const struct mxpc_s3_uploader *up, int64_t *objects, int64_t *bytes)
{
    *objects = up->objects;
    *bytes = up->bytes;
}

void mxpc_s3_uploader_free(struct mxpc_s3_uploader *up)
{
    if (!up)
        return;
    up->failed = 1;
    up_stop(up);
    free(up);
}

/* The object an uploader finished last: its size and ETag. */
static void uploaded_object(struct mxpc_s3_uploader *up, const char *bucket, const char *key, int64_t size,
                            struct mxpc_s3_object *out)
{
    out->size = size;
    snprintf(out->etag, sizeof out->etag, "%s", up->last_etag);
    struct mxpc_s3_object o;
    struct mxpc_s3_error he;
    /* RGW 16 answers a multipart completion with an empty ETag; HEAD has the right one */
    if (!out->etag[0] && mxpc_s3_head(up->s3, bucket, key, &o, &he) == 0)
        snprintf(out->etag, sizeof out->etag, "%s", o.etag);
}

/* One object: the uploader above with one part in memory at a time. */
int mxpc_s3_put(struct mxpc_s3 *s3, const char *bucket, const char *key, int64_t size, mxpc_s3_source_fn source,
                void *ud, struct mxpc_s3_object *out, struct mxpc_s3_error *e)
{
    struct mxpc_s3_many_options o = {1, s3->part_size, NULL};
    struct mxpc_s3_uploader *up = mxpc_s3_uploader_new(s3, &o);
    int rc = mxpc_s3_uploader_put(up, bucket, key, size, source, ud, e);
    if (rc == 0)
        rc = mxpc_s3_uploader_finish(up, e);
    if (rc == 0 && out)
        uploaded_object(up, bucket, key, size, out);
    mxpc_s3_uploader_free(up);
    return rc;
}

/* --- uploads of unknown length ------------------------------------------------------
 *
 * The bytes are gathered into a part; a full part goes to an uploader (one
 * multipart upload, its parts in parallel as the options allow) and the next
 * part is gathered meanwhile. An object that never fills a part is one PUT
 * at commit. */

struct mxpc_s3_upload {
    struct mxpc_s3_uploader *up;
    char *bucket, *key;
    char what[1024];
    struct upjob *job; /* NULL until the first part is full */
    char *buf;
    size_t len, part; /* bytes gathered, size of the part being gathered */
    int64_t size;
    int state; /* 0 open, 1 committed, 2 failed or aborted */
};

struct mxpc_s3_upload *mxpc_s3_upload_begin(struct mxpc_s3 *s3, const char *bucket, const char *key,
                                            const struct mxpc_s3_many_options *o, struct mxpc_s3_error *e)
{
    if (check_names(bucket, key, 1, e))
        return NULL;
    struct mxpc_s3_many_options dflt = {MXPC_S3_UPLOAD_CONCURRENCY, MXPC_S3_UPLOAD_CONCURRENCY * s3->part_size, NULL};
    struct mxpc_s3_upload *u = calloc(1, sizeof *u);
    if (!u)
        abort();
    u->up = mxpc_s3_uploader_new(s3, o ? o : &dflt);
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
    int64_t parts = u->job ? u->job->nparts : 0;
    int64_t part = u->up->s3->part_size << (parts / (MXPC_S3_MAX_PARTS / 5));
    return (size_t)(part > MXPC_S3_MAX_PART_SIZE ? MXPC_S3_MAX_PART_SIZE : part);
}

/* The upload cannot go on: the uploader has stopped everything (the
 * multipart upload is aborted). */
static int upload_failed(struct mxpc_s3_upload *u, struct mxpc_s3_error *e)
{
    if (!u->up->failed)
        up_abandon(u->up, e);
    else
        memcpy(e, &u->up->err, sizeof *e);
    u->state = 2;
    return -1;
}

/* Sends the full part (beginning the multipart upload first). */
static int upload_flush(struct mxpc_s3_upload *u, struct mxpc_s3_error *e)
{
    if (!u->job) {
        u->job = job_begin(u->up, u->bucket, u->key, u->what, e);
        if (!u->job)
            return upload_failed(u, e);
        mxpc_log(MXPC_LOG_DEBUG, "s3 multipart upload of %s begun", u->what);
    }
    if (u->job->nparts >= MXPC_S3_MAX_PARTS) {
        set_error(e, "size", NULL, "upload of %s: more than %d parts", u->what, MXPC_S3_MAX_PARTS);
        return upload_failed(u, e);
    }
    if (up_room(u->up, (int64_t)u->len, e) != 0)
        return upload_failed(u, e);
    job_part(u->up, u->job, u->buf, u->len);
    u->part = upload_part_size(u);
    u->len = 0;
    u->buf = malloc(u->part);
    if (!u->buf)
        abort();
    return 0;
}

static int upload_usable(struct mxpc_s3_upload *u, struct mxpc_s3_error *e)
{
    clear_error(e);
    if (u->state == 0)
        return 0;
    if (u->state == 2 && u->up->failed)
        memcpy(e, &u->up->err, sizeof *e);
    else
        set_error(e, "usage", NULL, "upload of %s: already %s", u->what, u->state == 1 ? "committed" : "aborted");
    return -1;
}

int mxpc_s3_upload_write(struct mxpc_s3_upload *u, const void *data, size_t len, struct mxpc_s3_error *e)
{
    if (upload_usable(u, e) != 0)
        return -1;
    /* the parts in flight move on while the next one is gathered; a failure
     * or a signal stops the upload here */
    if (up_pump(u->up, u->up->in_flight > 0 ? 0 : -1, e) != 0)
        return upload_failed(u, e);
    const char *p = data;
    while (len > 0) {
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
    if (upload_usable(u, e) != 0)
        return -1;
    if (up_pump(u->up, -1, e) != 0)
        return upload_failed(u, e);
    if (!u->job) { /* all of it fits one part: one PUT, no multipart upload */
        if (up_room(u->up, (int64_t)u->len, e) != 0)
            return upload_failed(u, e);
        up_send(u->up, u->bucket, u->key, u->buf, u->len, NULL, 0);
    } else if (u->len > 0) {
        if (up_room(u->up, (int64_t)u->len, e) != 0)
            return upload_failed(u, e);
        job_part(u->up, u->job, u->buf, u->len);
    } else {
        free(u->buf);
    }
    u->buf = NULL;
    u->len = 0;
    if (u->job)
        u->job->all_read = 1;
    if (mxpc_s3_uploader_finish(u->up, e) != 0)
        return upload_failed(u, e);
    u->state = 1;
    if (out)
        uploaded_object(u->up, u->bucket, u->key, u->size, out);
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
    mxpc_s3_uploader_free(u->up); /* aborts what was not completed */
    free(u->bucket);
    free(u->key);
    free(u->buf);
    free(u);
}
