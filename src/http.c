/* The HTTP transport on libcurl's multi interface, and the policy every
 * client shares: per-transfer defaults, CA certificates, what a signal stops,
 * which failures are transient, and the retry backoff. See
 * include/mxpc/http.h. */
#include "mxpc/http.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "mxpc/buf.h"
#include "mxpc/ca_bundle.h"
#include "mxpc/interrupt.h"
#include "mxpc/version.h"

#define POOL_MAX 64

struct mxpc_http {
    CURLM *multi;
    CURL *pool[POOL_MAX];
    int pooled;
    CURL **added; /* started and not yet finished */
    size_t nadded, capadded;
    struct done {
        CURL *easy;
        CURLcode result;
    } *done; /* finished, not yet taken: done[first..ndone) */
    size_t first, ndone, capdone;
    int cleanup;          /* mxpc_http_cleanup: a signal waits for the grace period */
    double interrupt_seen; /* when a signal was first seen, or 0 */
};

static pthread_once_t global_once = PTHREAD_ONCE_INIT;
static int global_ok;

static void global_cleanup(void)
{
    curl_global_cleanup();
}

static void global_init(void)
{
    global_ok = curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK;
    if (global_ok)
        atexit(global_cleanup);
}

int mxpc_http_global_init(void)
{
    pthread_once(&global_once, global_init);
    return global_ok ? 0 : -1;
}

struct mxpc_http *mxpc_http_new(void)
{
    if (mxpc_http_global_init() != 0)
        return NULL;
    struct mxpc_http *h = calloc(1, sizeof *h);
    if (!h)
        return NULL;
    h->multi = curl_multi_init();
    if (!h->multi) {
        free(h);
        return NULL;
    }
    /* connections stay open for reuse: enough for every request in flight */
    curl_multi_setopt(h->multi, CURLMOPT_MAXCONNECTS, 256L);
    return h;
}

void mxpc_http_free(struct mxpc_http *h)
{
    if (!h)
        return;
    for (size_t i = 0; i < h->nadded; i++) {
        curl_multi_remove_handle(h->multi, h->added[i]);
        curl_easy_cleanup(h->added[i]);
    }
    free(h->added);
    for (size_t i = h->first; i < h->ndone; i++)
        curl_easy_cleanup(h->done[i].easy);
    free(h->done);
    for (int i = 0; i < h->pooled; i++)
        curl_easy_cleanup(h->pool[i]);
    curl_multi_cleanup(h->multi);
    free(h);
}

/* Takes a started transfer out of the set; 1 if it was in it. */
static int forget(struct mxpc_http *h, CURL *easy)
{
    for (size_t i = 0; i < h->nadded; i++) {
        if (h->added[i] == easy) {
            curl_multi_remove_handle(h->multi, easy);
            h->added[i] = h->added[--h->nadded];
            return 1;
        }
    }
    return 0;
}

CURL *mxpc_http_easy(struct mxpc_http *h)
{
    if (h->pooled > 0) {
        CURL *e = h->pool[--h->pooled];
        curl_easy_reset(e);
        return e;
    }
    return curl_easy_init();
}

void mxpc_http_release(struct mxpc_http *h, CURL *easy)
{
    if (!easy)
        return;
    forget(h, easy);
    for (size_t i = h->first; i < h->ndone; i++) {
        if (h->done[i].easy == easy) {
            memmove(&h->done[i], &h->done[i + 1], (h->ndone - i - 1) * sizeof *h->done);
            h->ndone--;
            break;
        }
    }
    curl_easy_setopt(easy, CURLOPT_PRIVATE, NULL);
    if (h->pooled < POOL_MAX) {
        h->pool[h->pooled++] = easy;
        return;
    }
    curl_easy_cleanup(easy);
}

int mxpc_http_add(struct mxpc_http *h, CURL *easy)
{
    if (h->nadded == h->capadded) {
        size_t cap = h->capadded ? h->capadded * 2 : 16;
        CURL **a = realloc(h->added, cap * sizeof *a);
        if (!a)
            abort();
        h->added = a;
        h->capadded = cap;
    }
    if (curl_multi_add_handle(h->multi, easy) != CURLM_OK)
        return -1;
    h->added[h->nadded++] = easy;
    return 0;
}

int mxpc_http_running(const struct mxpc_http *h)
{
    return (int)h->nadded;
}

/* Collects finished transfers into the done queue. */
static int collect(struct mxpc_http *h)
{
    int queued = 0, found = 0;
    CURLMsg *m;
    while ((m = curl_multi_info_read(h->multi, &queued))) {
        if (m->msg != CURLMSG_DONE)
            continue;
        CURL *e = m->easy_handle;
        CURLcode rc = m->data.result;
        forget(h, e);
        if (h->ndone == h->capdone) {
            size_t cap = h->capdone ? h->capdone * 2 : 16;
            struct done *d = realloc(h->done, cap * sizeof *d);
            if (!d)
                abort();
            h->done = d;
            h->capdone = cap;
        }
        h->done[h->ndone++] = (struct done){e, rc};
        found++;
    }
    return found;
}

int mxpc_http_step(struct mxpc_http *h, int timeout_ms)
{
    int still = 0;
    if (curl_multi_perform(h->multi, &still) != CURLM_OK)
        return -1;
    if (collect(h) > 0 || h->ndone > h->first)
        return 0;
    /* nothing finished: wait for activity (or just the timeout when idle) */
    if (curl_multi_poll(h->multi, NULL, 0, timeout_ms, NULL) != CURLM_OK)
        return -1;
    if (curl_multi_perform(h->multi, &still) != CURLM_OK)
        return -1;
    collect(h);
    return 0;
}

CURL *mxpc_http_done(struct mxpc_http *h, CURLcode *result)
{
    if (h->first >= h->ndone) {
        h->first = h->ndone = 0;
        return NULL;
    }
    struct done d = h->done[h->first++];
    if (result)
        *result = d.result;
    return d.easy;
}

CURLcode mxpc_http_perform(struct mxpc_http *h, CURL *easy)
{
    if (mxpc_http_add(h, easy) != 0)
        return CURLE_FAILED_INIT;
    for (;;) {
        /* other transfers that finish meanwhile stay queued for their owner */
        for (size_t i = h->first; i < h->ndone; i++) {
            if (h->done[i].easy != easy)
                continue;
            CURLcode rc = h->done[i].result;
            memmove(&h->done[i], &h->done[i + 1], (h->ndone - i - 1) * sizeof *h->done);
            h->ndone--;
            return rc;
        }
        if (mxpc_http_step(h, 100) != 0) {
            forget(h, easy);
            return CURLE_FAILED_INIT;
        }
    }
}

/* --- the policy every client shares ----------------------------------------- */

int mxpc_ca_apply(CURL *curl, const char *file, const char *dir)
{
    int ok = 1;
    if (!file && !dir)
        file = mxpc_system_ca_file();
    if (file)
        MXPC_HTTP_SET(ok, curl, CURLOPT_CAINFO, file);
    if (dir)
        MXPC_HTTP_SET(ok, curl, CURLOPT_CAPATH, dir);
    return ok ? 0 : -1;
}

int mxpc_http_cleanup(struct mxpc_http *h, int on)
{
    int was = h->cleanup;
    h->cleanup = on;
    return was;
}

int mxpc_http_interrupted(struct mxpc_http *h)
{
    if (!mxpc_interrupted()) {
        h->interrupt_seen = 0;
        return 0;
    }
    double now = mxpc_monotonic();
    if (!h->interrupt_seen)
        h->interrupt_seen = now;
    return !h->cleanup || (now - h->interrupt_seen) * 1000 >= MXPC_HTTP_CLEANUP_GRACE_MS;
}

static int on_progress(void *ud, curl_off_t a, curl_off_t b, curl_off_t c, curl_off_t d)
{
    (void)a, (void)b, (void)c, (void)d;
    return mxpc_http_interrupted(ud);
}

int mxpc_http_defaults(struct mxpc_http *h, CURL *c, char *errbuf)
{
    int ok = 1;
    MXPC_HTTP_SET(ok, c, CURLOPT_USERAGENT, MXPC_HTTP_USER_AGENT);
    MXPC_HTTP_SET(ok, c, CURLOPT_ERRORBUFFER, errbuf);
    MXPC_HTTP_SET(ok, c, CURLOPT_NOSIGNAL, 1L);
    MXPC_HTTP_SET(ok, c, CURLOPT_CONNECTTIMEOUT, 30L);
    MXPC_HTTP_SET(ok, c, CURLOPT_LOW_SPEED_LIMIT, 1L); /* a stalled transfer fails after two minutes */
    MXPC_HTTP_SET(ok, c, CURLOPT_LOW_SPEED_TIME, 120L);
    MXPC_HTTP_SET(ok, c, CURLOPT_NOPROGRESS, 0L);
    MXPC_HTTP_SET(ok, c, CURLOPT_XFERINFOFUNCTION, on_progress);
    MXPC_HTTP_SET(ok, c, CURLOPT_XFERINFODATA, (void *)h);
    return ok ? 0 : -1;
}

int mxpc_http_transient(CURLcode code)
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

int mxpc_http_tls_problem(CURLcode code)
{
    return code == CURLE_PEER_FAILED_VERIFICATION || code == CURLE_SSL_CACERT_BADFILE ||
           code == CURLE_SSL_CONNECT_ERROR || code == CURLE_SSL_CERTPROBLEM || code == CURLE_SSL_ISSUER_ERROR;
}

int mxpc_http_retryable(CURLcode code, long status)
{
    if (code == CURLE_OK)
        return status >= 500 || status == 429;
    return mxpc_http_transient(code);
}

long mxpc_http_backoff_ms(int attempt)
{
    static unsigned seed;
    if (!seed)
        seed = (unsigned)time(NULL) ^ ((unsigned)getpid() << 16);
    long cap = MXPC_HTTP_BACKOFF_MS << (attempt < 5 ? attempt : 5);
    /* equal jitter: half the step, and up to the other half at random, so
     * that clients that failed together do not come back together */
    return cap / 2 + (long)(rand_r(&seed) % (unsigned)(cap / 2 + 1));
}

int mxpc_http_sleep_ms(long ms)
{
    double end = mxpc_monotonic() + (double)ms / 1000;
    for (;;) {
        if (mxpc_interrupted())
            return -1;
        double left = end - mxpc_monotonic();
        if (left <= 0)
            return 0;
        if (left > 0.1)
            left = 0.1;
        struct timespec ts = {0, (long)(left * 1e9)};
        nanosleep(&ts, NULL);
    }
}

/* --- one exchange ------------------------------------------------------------ */

struct exchange {
    struct mxpc_buf *body;
    size_t max;
    int too_big;
};

static size_t on_body(char *data, size_t size, size_t n, void *ud)
{
    struct exchange *x = ud;
    if (x->body->len + size * n > x->max) {
        x->too_big = 1;
        return 0;
    }
    mxpc_buf_append(x->body, data, size * n);
    return size * n;
}

static const char *nonempty_env(const char *name)
{
    const char *v = getenv(name);
    return v && *v ? v : NULL;
}

int mxpc_http_request(const struct mxpc_http_request *r, struct mxpc_buf *response, long *status, char *err,
                      size_t errlen)
{
    const char *method = r->method, *url = r->url;
    struct mxpc_http *hp = mxpc_http_new();
    CURL *c = hp ? mxpc_http_easy(hp) : NULL;
    if (!c) {
        mxpc_http_free(hp);
        snprintf(err, errlen, "%s %s: cannot initialise libcurl", method, url);
        return -1;
    }
    struct curl_slist *list = NULL;
    for (size_t i = 0; r->headers && r->headers[i]; i++) {
        struct curl_slist *l = curl_slist_append(list, r->headers[i]);
        if (!l)
            abort();
        list = l;
    }
    char curl_err[CURL_ERROR_SIZE];
    CURLcode code = CURLE_OK;
    int rc = -1;
    int attempts = r->attempts > 0 ? r->attempts : 1;
    for (int attempt = 0; attempt < attempts; attempt++) {
        if ((attempt && mxpc_http_sleep_ms(mxpc_http_backoff_ms(attempt - 1)) != 0) || mxpc_interrupted()) {
            snprintf(err, errlen, "interrupted: %s %s", method, url);
            rc = -1;
            break;
        }
        response->len = 0;
        curl_err[0] = '\0';
        struct exchange x = {response, r->max_response ? r->max_response : 1024 * 1024, 0};
        curl_easy_reset(c);
        int ok = mxpc_http_defaults(hp, c, curl_err) == 0;
        MXPC_HTTP_SET(ok, c, CURLOPT_URL, url);
        MXPC_HTTP_SET(ok, c, CURLOPT_CUSTOMREQUEST, method);
        MXPC_HTTP_SET(ok, c, CURLOPT_HTTPHEADER, list);
        MXPC_HTTP_SET(ok, c, CURLOPT_CONNECTTIMEOUT, r->connect_timeout);
        MXPC_HTTP_SET(ok, c, CURLOPT_TIMEOUT, r->timeout);
        MXPC_HTTP_SET(ok, c, CURLOPT_WRITEFUNCTION, on_body);
        MXPC_HTTP_SET(ok, c, CURLOPT_WRITEDATA, (void *)&x);
        if (mxpc_ca_apply(c, r->ca_file ? r->ca_file : nonempty_env("SSL_CERT_FILE"),
                          r->ca_file ? NULL : nonempty_env("SSL_CERT_DIR")) != 0)
            ok = 0;
        if (r->body) {
            MXPC_HTTP_SET(ok, c, CURLOPT_POSTFIELDS, r->body);
            MXPC_HTTP_SET(ok, c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)r->body_len);
        }
        if (!ok) {
            snprintf(err, errlen, "%s %s: libcurl refused an option of the request", method, url);
            rc = -1;
            break;
        }
        code = mxpc_http_perform(hp, c);
        mxpc_buf_puts(response, "");
        *status = 0;
        if (code == CURLE_OK) {
            curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, status);
            rc = 0;
        } else if (code == CURLE_ABORTED_BY_CALLBACK && !x.too_big) {
            snprintf(err, errlen, "interrupted: %s %s", method, url);
            rc = -1;
            break;
        } else {
            rc = -1;
            if (x.too_big)
                snprintf(err, errlen, "%s %s: the answer is larger than %zu bytes", method, url, x.max);
            else
                snprintf(err, errlen, "%s %s: %s", method, url, curl_err[0] ? curl_err : curl_easy_strerror(code));
        }
        if (x.too_big || !mxpc_http_retryable(code, *status))
            break;
    }
    curl_slist_free_all(list);
    mxpc_http_release(hp, c);
    mxpc_http_free(hp);
    return rc;
}
