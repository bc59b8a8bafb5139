/* A streaming reader of an http(s) URL. See src/url_reader.h. */
#include "url_reader.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mxpc/http.h"
#include "mxpc/log.h"
#include "s3_request.h"

struct mxpc_url_reader {
    struct mxpc_s3 client; /* the engine's client: the transport, the policy, this signing step */
    char *url;
    char name[512]; /* scheme://host/path, without the query */
    char etag[128]; /* of the first answer: every later range must come from the same object */
    int64_t pos, size;
};

static void set_error(struct mxpc_url_error *e, const char *code, long status, const char *hint, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
static void set_error(struct mxpc_url_error *e, const char *code, long status, const char *hint, const char *fmt, ...)
{
    snprintf(e->code, sizeof e->code, "%s", code);
    snprintf(e->hint, sizeof e->hint, "%s", hint ? hint : "");
    e->status = status;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->message, sizeof e->message, fmt, ap);
    va_end(ap);
}

/* The signing step: the URL as it is, and only Range and If-Match. */
static CURLcode sign_url(struct mxpc_s3 *s3, struct request *r)
{
    struct mxpc_url_reader *u = r->owner;
    (void)s3;
    r->url.len = 0;
    mxpc_buf_puts(&r->url, u->url);
    curl_slist_free_all(r->headers);
    r->headers = NULL;
    char line[256];
    if (r->range[0]) {
        snprintf(line, sizeof line, "Range: %s", r->range);
        r->headers = curl_slist_append(r->headers, line);
    }
    if (r->if_match) {
        snprintf(line, sizeof line, "If-Match: %s", r->if_match);
        r->headers = curl_slist_append(r->headers, line);
    }
    r->headers = curl_slist_append(r->headers, "Accept-Encoding: identity");
    return CURLE_OK;
}

static int check_url(const char *url, struct mxpc_url_error *e)
{
    const char *rest = strncmp(url, "https://", 8) == 0 ? url + 8 : strncmp(url, "http://", 7) == 0 ? url + 7 : NULL;
    size_t alen = rest ? strcspn(rest, "/?#") : 0;
    if (!rest || alen == 0 || memchr(rest, '@', alen) || strpbrk(url, " \r\n\t")) {
        set_error(e, "usage", 0, "give an http:// or https:// URL without a user name or spaces",
                  "cannot read %.*s: not an http(s) URL", (int)strcspn(url, "?"), url);
        return -1;
    }
    return 0;
}

static void take_url(struct mxpc_url_reader *u, const char *url)
{
    free(u->url);
    u->url = mxpc_strdup(url);
    const char *q = strchr(url, '?');
    if (q && q[1])
        mxpc_redact_add(q + 1); /* a presigned URL's signature: it reads the object */
    snprintf(u->name, sizeof u->name, "%.*s", (int)strcspn(url, "?#"), url);
}

struct mxpc_url_reader *mxpc_url_reader_new(const char *url, struct mxpc_url_error *e)
{
    memset(e, 0, sizeof *e);
    if (check_url(url, e) != 0)
        return NULL;
    struct mxpc_url_reader *u = calloc(1, sizeof *u);
    if (!u)
        abort();
    u->client.http = mxpc_http_new();
    if (!u->client.http) {
        free(u);
        set_error(e, "connect", 0, NULL, "cannot initialise libcurl");
        return NULL;
    }
    u->client.sign = sign_url;
    u->client.max_retries = 4;
    u->client.ca_file =
        getenv("SSL_CERT_FILE") && *getenv("SSL_CERT_FILE") ? mxpc_strdup(getenv("SSL_CERT_FILE")) : NULL;
    u->client.ca_dir = getenv("SSL_CERT_DIR") && *getenv("SSL_CERT_DIR") ? mxpc_strdup(getenv("SSL_CERT_DIR")) : NULL;
    u->size = -1;
    take_url(u, url);
    u->client.endpoint = u->name;
    return u;
}

void mxpc_url_reader_free(struct mxpc_url_reader *u)
{
    if (!u)
        return;
    mxpc_http_free(u->client.http);
    free(u->client.ca_file);
    free(u->client.ca_dir);
    free(u->url);
    free(u);
}

int mxpc_url_reader_set_url(struct mxpc_url_reader *u, const char *url, struct mxpc_url_error *e)
{
    memset(e, 0, sizeof *e);
    if (check_url(url, e) != 0)
        return -1;
    take_url(u, url);
    return 0;
}

int64_t mxpc_url_reader_offset(const struct mxpc_url_reader *u)
{
    return u->pos;
}
int64_t mxpc_url_reader_size(const struct mxpc_url_reader *u)
{
    return u->size;
}
const char *mxpc_url_reader_name(const struct mxpc_url_reader *u)
{
    return u->name;
}

/* A failed range, worded for a person. */
static void range_error(struct mxpc_url_reader *u, const struct request *r, int64_t from, int64_t to,
                        struct mxpc_url_error *e)
{
    const struct mxpc_s3_error *re = &r->err;
    char where[640];
    snprintf(where, sizeof where, "%s (bytes %lld-%lld)", u->name, (long long)from, (long long)to - 1);
    if (strcmp(re->code, "interrupted") == 0)
        set_error(e, "interrupted", 0, NULL, "interrupted: reading %s", where);
    else if (strcmp(re->code, "io") == 0)
        set_error(e, "http", r->status, "the server must answer Range requests (206) for the archive to be streamed",
                  "reading %s: %s", where, r->sink_error);
    else if (strcmp(re->code, "connect") == 0)
        set_error(e, strcmp(re->facts.kind, "tls") == 0 ? "tls" : "connect", 0,
                  "check the network to that host (and its TLS certificate)", "cannot read %s: %s", where,
                  re->facts.transport[0] ? re->facts.transport : re->message);
    else if (r->status == 403)
        set_error(e, "expired", 403, "a download URL is valid for a limited time: ask for a fresh one",
                  "reading %s: HTTP 403 %s%s%s (the URL has expired or was refused)", where, re->s3_code,
                  re->facts.s3_message[0] ? ": " : "", re->facts.s3_message);
    else if (r->status == 412)
        set_error(e, "changed", 412, "run again: the read starts over with the object as it is now",
                  "reading %s: the object is no longer the one read so far (its ETag was %s)", where, u->etag);
    else if (r->status == 404)
        set_error(e, "not_found", 404, "the object behind the URL was removed: ask for a fresh URL",
                  "reading %s: HTTP 404 (no such object)", where);
    else if (r->status >= 300)
        set_error(e, "http", r->status, NULL, "reading %s: HTTP %ld %s", where, r->status, re->s3_code);
    else
        set_error(e, re->code[0] ? re->code : "http", r->status, NULL, "reading %s: %s", where, re->message);
}

int mxpc_url_reader_next(struct mxpc_url_reader *u, int64_t max, mxpc_s3_sink_fn sink, void *ud, int64_t *got,
                         struct mxpc_url_error *e)
{
    memset(e, 0, sizeof *e);
    *got = 0;
    if (max <= 0) {
        set_error(e, "usage", 0, NULL, "a range of %lld bytes", (long long)max);
        return -1;
    }
    if (u->size >= 0 && u->pos >= u->size)
        return 0;
    int64_t end = u->pos + max;
    if (u->size >= 0 && end > u->size)
        end = u->size;
    struct request r = {.method = "GET",
                        .idempotent = 1,
                        .sink = sink,
                        .sink_ud = ud,
                        .expected_size = -1,
                        .offset = u->pos,
                        .end = end,
                        .total_size = -1,
                        .owner = u,
                        .if_match = u->etag[0] ? u->etag : NULL};
    struct mxpc_s3_error se;
    int rc = s3_execute(&u->client, &r, 0, &se);
    if (rc != 0 && r.status == 416 && u->pos == 0 && r.delivered == 0) {
        u->size = 0; /* an empty object: no byte to ask for */
        s3_request_free(&r);
        return 0;
    }
    if (rc == 0 && r.status != 206) {
        /* 200 to a Range from 0 (a server without ranges): not a stream */
        set_error(e, "http", r.status, "the server must answer Range requests (206) for the archive to be streamed",
                  "reading %s: the server answered HTTP %ld to a Range request", u->name, r.status);
        rc = -1;
    } else if (rc == 0) {
        if (u->size < 0)
            u->size = r.total_size;
        if (!u->etag[0] && r.etag[0])
            snprintf(u->etag, sizeof u->etag, "%s", r.etag);
        int64_t want = (u->size >= 0 && u->size < end ? u->size : end) - u->pos;
        if (r.total_size < 0 || r.delivered != want) {
            set_error(e, "size", r.status, "run again; if it persists, the server does not serve the object whole",
                      "reading %s: received %lld bytes from %lld, expected %lld", u->name, (long long)r.delivered,
                      (long long)u->pos, (long long)want);
            rc = -1;
        }
    } else {
        range_error(u, &r, u->pos, end, e);
    }
    /* bytes passed on are the caller's: a later range starts after them */
    u->pos += r.delivered;
    *got = r.delivered;
    s3_request_free(&r);
    return rc;
}
