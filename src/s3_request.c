/* The S3 client's request engine. See src/s3_request.h.
 *
 * Request bodies (a PUT object, an upload part, the XML of a multipart
 * completion) are always in memory, bounded by the part size: that is what
 * lets an attempt be retried. */
#include "s3_request.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "mxpc/http.h"
#include "mxpc/log.h"
#include "mxpc/xml.h"

/* --- errors --------------------------------------------------------------- */

void s3_set_error(struct mxpc_s3_error *e, const char *code, const char *hint, const char *fmt, ...)
{
    snprintf(e->code, sizeof e->code, "%s", code);
    snprintf(e->hint, sizeof e->hint, "%s", hint ? hint : "");
    e->facts.kind[0] = '\0'; /* worded here: final */
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->message, sizeof e->message, fmt, ap);
    va_end(ap);
}

void s3_clear_error(struct mxpc_s3_error *e)
{
    e->code[0] = e->message[0] = e->hint[0] = e->s3_code[0] = e->facts.kind[0] = '\0';
    e->http_status = 0;
}

void s3_object_name(char *out, size_t len, const char *bucket, const char *key)
{
    snprintf(out, len, "s3://%s%s%s", bucket && *bucket ? bucket : "(endpoint)", key ? "/" : "", key ? key : "");
}

void s3_client_object_name(const struct mxpc_s3 *s3, char *out, size_t len, const char *bucket, const char *key)
{
    const char *scheme = s3 && s3->dialect ? s3->dialect->scheme : "s3";
    snprintf(out, len, "%s://%s%s%s", scheme, bucket && *bucket ? bucket : "(endpoint)", key ? "/" : "",
             key ? key : "");
}

int s3_check_names(const char *bucket, const char *key, int need_key, struct mxpc_s3_error *e)
{
    s3_clear_error(e);
    if (need_key && (!key || !*key)) {
        s3_set_error(e, "usage", NULL, "an S3 object needs a key");
        return -1;
    }
    if (bucket && strchr(bucket, '/')) {
        s3_set_error(e, "usage", NULL, "S3 bucket name %s contains '/'", bucket);
        return -1;
    }
    return 0;
}

void s3_parse_error(const struct mxpc_buf *body, struct s3_xml_error *x)
{
    struct mxpc_xml_capture c = {{"Code", "Message", "ETag"},
                                 {x->code, x->message, x->etag},
                                 {sizeof x->code, sizeof x->message, sizeof x->etag},
                                 "Error",
                                 NULL,
                                 NULL,
                                 0};
    if (body->len)
        mxpc_xml_each(body->data, body->len, mxpc_xml_capture_element, &c);
    x->is_error = c.records > 0;
}

/* --- the request engine ------------------------------------------------------
 *
 * A request goes through attempts: each is signed afresh (the client's sign
 * step: URL and headers) and added to the
 * client's transport as one transfer; when it ends, attempt_end decides to
 * retry (after a backoff, without blocking the other transfers) or to finish
 * the request (state DONE, rc and err filled, on_done called). pump() moves
 * every request of the client along; execute() runs one request to its end. */

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* --- the transfer's callbacks -------------------------------------------------- */

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
        r->etag[0] = r->ms_error_code[0] = '\0'; /* a new response (after 100 Continue or a redirect) */
        r->total_size = -1;
    } else if (len > 14 && strncasecmp(data, "Content-Range:", 14) == 0) {
        const char *slash = memchr(data, '/', len), *end = data + len;
        int64_t total = 0;
        const char *d = slash ? slash + 1 : end;
        for (; d < end && *d >= '0' && *d <= '9' && total < INT64_MAX / 16; d++)
            total = total * 10 + (*d - '0');
        if (slash && d > slash + 1)
            r->total_size = total;
    } else if (len > 16 && strncasecmp(data, "x-ms-error-code:", 16) == 0) {
        const char *v = data + 16;
        size_t vlen = len - 16;
        while (vlen && (*v == ' ' || *v == '\t'))
            v++, vlen--;
        while (vlen && (v[vlen - 1] == '\r' || v[vlen - 1] == '\n' || v[vlen - 1] == ' '))
            vlen--;
        snprintf(r->ms_error_code, sizeof r->ms_error_code, "%.*s", (int)vlen, v);
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

static void attempt_end(struct mxpc_s3 *s3, struct request *r, CURLcode code);

/* This attempt's transfer: the defaults, the client's CA and speed limit,
 * the method and the callbacks. 0, or -1 if libcurl refused an option. */
static int transfer_options(struct mxpc_s3 *s3, struct request *r, CURL *c)
{
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
    return ok ? 0 : -1;
}

/* Starts one attempt: the client signs it, then the transfer is set up and
 * added to the transport. */
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
    r->range[0] = '\0';
    if (r->end > 0)
        snprintf(r->range, sizeof r->range, "bytes=%lld-%lld", (long long)r->range_from, (long long)r->end - 1);
    else if (r->range_from > 0)
        snprintf(r->range, sizeof r->range, "bytes=%lld-", (long long)r->range_from);

    CURLcode fail = s3->sign(s3, r);
    if (fail != CURLE_OK) {
        attempt_end(s3, r, fail);
        return;
    }
    if (!r->easy)
        r->easy = mxpc_http_easy(s3->http);
    else
        curl_easy_reset(r->easy);
    if (!r->easy) {
        snprintf(r->curl_err, sizeof r->curl_err, "cannot create a libcurl handle");
        fail = CURLE_FAILED_INIT;
    } else if (transfer_options(s3, r, r->easy) != 0) {
        snprintf(r->curl_err, sizeof r->curl_err, "libcurl refused an option of the request");
        fail = CURLE_BAD_FUNCTION_ARGUMENT;
    } else {
        clock_gettime(CLOCK_MONOTONIC, &r->t0);
        if (mxpc_http_add(s3->http, r->easy) != 0) {
            snprintf(r->curl_err, sizeof r->curl_err, "cannot start the transfer");
            fail = CURLE_FAILED_INIT;
        }
    }
    if (fail != CURLE_OK)
        attempt_end(s3, r, fail);
}

/* The IAM action a request needs, for messages. */
static const char *s3_action(const struct request *r)
{
    const char *q = r->query ? r->query : "";
    if (strcmp(r->method, "GET") == 0 || strcmp(r->method, "HEAD") == 0)
        return !r->key                 ? (strstr(q, "uploads") ? "s3:ListBucketMultipartUploads" : "s3:ListBucket")
               : strstr(q, "uploadId") ? "s3:ListMultipartUploadParts"
                                       : "s3:GetObject";
    if (strcmp(r->method, "DELETE") == 0)
        return !r->key ? "s3:DeleteBucket" : strstr(q, "uploadId") ? "s3:AbortMultipartUpload" : "s3:DeleteObject";
    if (strcmp(r->method, "POST") == 0 && !r->key && strcmp(q, "delete") == 0)
        return "s3:DeleteObject";
    return r->key ? "s3:PutObject" : "s3:CreateBucket";
}

void s3_set_facts(struct mxpc_s3 *s3, const struct request *r, struct mxpc_s3_error *e, const char *kind)
{
    struct mxpc_s3_facts *f = &e->facts;
    memset(f, 0, sizeof *f);
    snprintf(f->kind, sizeof f->kind, "%s", kind);
    snprintf(f->service, sizeof f->service, "%s", s3->dialect ? s3->dialect->service : "s3");
    snprintf(f->method, sizeof f->method, "%s", r->method);
    snprintf(f->action, sizeof f->action, "%s", s3_action(r));
    s3_client_object_name(s3, f->object, sizeof f->object, r->bucket, r->key);
    snprintf(f->bucket, sizeof f->bucket, "%s", r->bucket ? r->bucket : "");
    snprintf(f->key, sizeof f->key, "%s", r->key ? r->key : "");
    snprintf(f->endpoint, sizeof f->endpoint, "%s", s3->endpoint);
    snprintf(f->creds_source, sizeof f->creds_source, "%s", s3->creds.source);
    snprintf(f->role_arn, sizeof f->role_arn, "%s", s3->creds.role_arn);
    snprintf(f->access_key, sizeof f->access_key, "%s", s3->creds.access_key ? s3->creds.access_key : "");
    snprintf(f->if_match, sizeof f->if_match, "%s", r->if_match ? r->if_match : "");
    if (r->copy_source && strcmp(f->service, "s3") == 0) /* "/bucket/key" (encoded) -> "s3://bucket/key" */
        snprintf(f->copy_source, sizeof f->copy_source, "s3:/%s", r->copy_source);
    f->resumed = r->delivered > 0;
    f->resume_at = r->range_from;
}

static const char *s3_service_label(const struct mxpc_s3 *s3)
{
    return s3->dialect && strcmp(s3->dialect->service, "azure") == 0 ? "Azure Blob" : "S3";
}

/* A response >= 300: its status, <Code> and <Message> as facts (worded in
 * Lua), with a plain message. */
static void http_error(struct mxpc_s3 *s3, struct request *r, struct mxpc_s3_error *e)
{
    struct s3_xml_error x;
    memset(&x, 0, sizeof x);
    s3_parse_error(&r->response, &x);
    if (!x.code[0] && r->ms_error_code[0])
        snprintf(x.code, sizeof x.code, "%s", r->ms_error_code);
    char what[1024];
    s3_client_object_name(s3, what, sizeof what, r->bucket, r->key);
    s3_set_error(e, "s3", NULL, "%s %s %s failed: HTTP %ld%s%s%s%s", s3_service_label(s3), r->method, what, r->status, x.code[0] ? " " : "",
                 x.code, x.message[0] ? ": " : "", x.message);
    e->http_status = r->status;
    snprintf(e->s3_code, sizeof e->s3_code, "%s", x.code);
    s3_set_facts(s3, r, e, "http");
    snprintf(e->facts.s3_message, sizeof e->facts.s3_message, "%s", x.message);
}

/* The request is over: rc and err from the last attempt's result. */
static void finish(struct mxpc_s3 *s3, struct request *r, CURLcode code)
{
    struct mxpc_s3_error *e = &r->err;
    s3_clear_error(e);
    r->rc = -1;
    r->state = REQ_DONE;
    if (r->if_match == r->if_match_buf)
        r->if_match = NULL;
    char what[1024];
    s3_client_object_name(s3, what, sizeof what, r->bucket, r->key);
    if (code == CURLE_ABORTED_BY_CALLBACK)
        s3_set_error(e, "interrupted", NULL, "interrupted: S3 %s %s", r->method, what);
    else if (r->sink_failed)
        s3_set_error(e, "io", NULL, "%s: %s", what, r->sink_error);
    else if (r->size_mismatch)
        s3_set_error(e, "size", NULL, "%s has %lld bytes, expected %lld", what, (long long)r->content_length,
                     (long long)r->expected_size);
    else if (code == CURLE_LOGIN_DENIED)
        s3_set_error(e, "credentials", NULL, "%s %s %s: cannot renew the %s credentials: %s", s3_service_label(s3),
                     r->method, what, s3->dialect && strcmp(s3->dialect->service, "azure") == 0 ? "Azure" : "AWS",
                     r->curl_err[0] ? r->curl_err : curl_easy_strerror(code));
    else if (code != CURLE_OK) {
        const char *why = r->curl_err[0] ? r->curl_err : curl_easy_strerror(code);
        s3_set_error(e, "connect", NULL, "S3 %s %s at %s: %s", r->method, what, s3->endpoint, why);
        s3_set_facts(s3, r, e, mxpc_http_tls_problem(code) ? "tls" : "connect");
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
        curl_off_t down = 0, up = 0;
        curl_easy_getinfo(c, CURLINFO_SIZE_DOWNLOAD_T, &down);
        curl_easy_getinfo(c, CURLINFO_SIZE_UPLOAD_T, &up);
        s3->bytes_in += down;
        s3->bytes_out += up;
        s3->requests++;
        curl_off_t cl = -1;
        curl_easy_getinfo(c, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &cl);
        if (!r->size_mismatch)
            r->content_length = cl;
        struct timespec t1;
        clock_gettime(CLOCK_MONOTONIC, &t1);
        double ms = (double)(t1.tv_sec - r->t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - r->t0.tv_nsec) / 1e6;
        mxpc_log(MXPC_LOG_DEBUG, "s3 %s %s -> %ld (%.0f ms)%s%s", r->method, r->url.data ? r->url.data : "", r->status,
                 ms, code ? ": " : "", code ? (r->curl_err[0] ? r->curl_err : curl_easy_strerror(code)) : "");
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
    char what[1024];
    if (r->bucket || r->key) /* an S3 request, else a URL's (url_reader.c): without its query */
        snprintf(what, sizeof what, "s3 %s %s/%s", r->method, r->bucket ? r->bucket : "", r->key ? r->key : "");
    else
        snprintf(what, sizeof what, "%s %.*s", r->method, (int)strcspn(r->url.data ? r->url.data : "", "?"),
                 r->url.data ? r->url.data : "");
    mxpc_log(MXPC_LOG_WARN, "%s: %s; retrying (%d of %d)", what,
             code ? (r->curl_err[0] ? r->curl_err : curl_easy_strerror(code))
                  : (r->status == 429 ? "HTTP 429" : "HTTP 5xx"),
             r->attempt + 1, s3->max_retries);
    r->retry_at = now_ms() + mxpc_http_backoff_ms(r->attempt);
    r->attempt++;
    r->state = REQ_WAITING;
    r->next_wait = s3->waiting;
    s3->waiting = r;
}

void s3_request_begin(struct mxpc_s3 *s3, struct request *r, int unsigned_ok)
{
    r->payload_hash[0] = '\0';
    r->unsigned_ok = unsigned_ok;
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

void s3_pump(struct mxpc_s3 *s3, int timeout_ms)
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

void s3_request_cancel(struct mxpc_s3 *s3, struct request *r, const char *code)
{
    if (r->state == REQ_RUNNING)
        mxpc_http_release(s3->http, r->easy), r->easy = NULL;
    else if (r->state == REQ_WAITING)
        unwait(s3, r);
    if (r->state == REQ_RUNNING || r->state == REQ_WAITING) {
        char what[1024];
        s3_client_object_name(s3, what, sizeof what, r->bucket, r->key);
        s3_set_error(&r->err, code, NULL, "S3 %s %s: stopped", r->method, what);
        r->rc = -1;
        r->state = REQ_DONE;
    }
}

int s3_execute(struct mxpc_s3 *s3, struct request *r, int unsigned_ok, struct mxpc_s3_error *e)
{
    s3_request_begin(s3, r, unsigned_ok);
    while (r->state != REQ_DONE)
        s3_pump(s3, 100);
    memcpy(e, &r->err, sizeof *e);
    return r->rc;
}

void s3_request_free(struct request *r)
{
    if (r->s3) {
        if (r->state == REQ_RUNNING || r->state == REQ_WAITING)
            s3_request_cancel(r->s3, r, "interrupted");
        mxpc_http_release(r->s3->http, r->easy);
    }
    r->easy = NULL;
    curl_slist_free_all(r->headers);
    r->headers = NULL;
    mxpc_buf_free(&r->url);
    mxpc_buf_free(&r->response);
}
