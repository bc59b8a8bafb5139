/* The one HTTP transport (http.c): libcurl's multi interface, shared by the
 * S3 client (s3_client.c) and the Kubernetes client (k8s_client.c).
 *
 * libcurl is initialised once per process (mxpc_http_global_init; cleaned up
 * at exit). A transport is one multi handle: every transfer added to it
 * shares its connection cache, so connections are reused across requests and
 * many requests can be in flight at once. Easy handles are pooled and reset
 * before reuse. Everything runs on the caller's thread: transfers progress
 * only inside mxpc_http_step / mxpc_http_perform.
 *
 * Options are set through MXPC_HTTP_SET, which records a refused option in an
 * `ok` flag so that a request with a wrong option is never sent. */
#ifndef MXPC_HTTP_H
#define MXPC_HTTP_H

#include <curl/curl.h>

/* curl_global_init, once per process; 0 or -1. */
int mxpc_http_global_init(void);

/* curl_easy_setopt, with a refusal recorded in `ok` (an int set to 0). */
#define MXPC_HTTP_SET(ok, h, opt, val)                                                                                 \
    do {                                                                                                               \
        if (curl_easy_setopt((h), (opt), (val)) != CURLE_OK)                                                           \
            (ok) = 0;                                                                                                  \
    } while (0)

struct mxpc_http;

/* NULL if libcurl cannot be initialised. */
struct mxpc_http *mxpc_http_new(void);
/* Removes and frees every transfer still added. NULL is fine. */
void mxpc_http_free(struct mxpc_http *h);

/* A fresh (reset) easy handle from the pool; NULL if libcurl fails. */
CURL *mxpc_http_easy(struct mxpc_http *h);
/* Gives an easy handle back to the pool (removed from the transfer set if
 * still in it). NULL is fine. */
void mxpc_http_release(struct mxpc_http *h, CURL *easy);

/* Starts a transfer; 0 or -1. */
int mxpc_http_add(struct mxpc_http *h, CURL *easy);
/* How many transfers are added and not yet reported done. */
int mxpc_http_running(const struct mxpc_http *h);
/* Moves the transfers along, waiting up to timeout_ms for something to
 * happen when nothing is ready. Finished transfers are removed from the set
 * and reported one by one through mxpc_http_done. Returns 0 or -1. */
int mxpc_http_step(struct mxpc_http *h, int timeout_ms);
/* A finished transfer (removed from the set) and its result, or NULL. */
CURL *mxpc_http_done(struct mxpc_http *h, CURLcode *result);

/* Runs one transfer to its end on the transport (other transfers added to
 * it move along meanwhile); returns its result. */
CURLcode mxpc_http_perform(struct mxpc_http *h, CURL *easy);

/* One HTTP exchange run to its end on a transport of its own: what the AWS
 * credential providers and the mxpc.http Lua module send. */
struct mxpc_buf;
struct mxpc_http_request {
    const char *method, *url;
    const char *const *headers; /* NULL-terminated "Name: value" lines, or NULL */
    const char *body;           /* NULL: none */
    size_t body_len;
    int attempts;               /* connection failures and 5xx are retried (at least 1) */
    long connect_timeout;       /* seconds */
    long timeout;               /* seconds, for the whole exchange */
    size_t max_response;        /* 0: 1 MiB */
    const char *ca_file;        /* the CAs to trust instead of SSL_CERT_FILE / SSL_CERT_DIR; NULL: those */
};
/* CA from SSL_CERT_FILE / SSL_CERT_DIR, else the system's bundle; stops at a
 * signal (mxpc_interrupted; then err starts with "interrupted"). Returns 0
 * with the status and the body, or -1 with a message naming the request. */
int mxpc_http_request(const struct mxpc_http_request *r, struct mxpc_buf *response, long *status, char *err,
                      size_t errlen);

#endif
