/* The one HTTP transport (http.c): libcurl's multi interface, shared by the
 * S3 client (s3_request.c), the Kubernetes client (k8s_client.c) and the
 * one-exchange requests of the AWS providers and mxpc.http; and the one
 * policy they share (per-transfer defaults, CA certificates, what a signal
 * stops, transient failures, retry backoff).
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

#include "mxpc/version.h"

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

/* --- the policy every client shares ------------------------------------------ */

#define MXPC_HTTP_USER_AGENT "mxpc-data-migration/" MXPC_VERSION

/* The options every transfer starts from: the user agent, errbuf
 * (CURL_ERROR_SIZE) for libcurl's messages, no signals, 30 s to connect, a
 * stalled transfer (under 1 byte/s for 2 minutes) fails, and a signal stops
 * it (mxpc_http_interrupted, through the progress callback). A client sets
 * what it needs on top (timeouts, callbacks, TLS). 0, or -1 if libcurl
 * refused an option. */
int mxpc_http_defaults(struct mxpc_http *h, CURL *c, char *errbuf);

/* Sets the CA certificates a libcurl handle trusts: file and/or dir when
 * given (either may be NULL), else the system's bundle (ca_bundle.h) when
 * one is found, else libcurl's default. 0, or -1 if libcurl refused an
 * option. */
int mxpc_ca_apply(CURL *curl, const char *file, const char *dir);

/* What a signal stops. Normally every transfer of the transport, at once.
 * Cleaning up after a failure or a signal (aborting a multipart upload,
 * learning the id that lets one be aborted) is different: while cleanup is
 * on, a signal lets the transport's transfers run on for
 * MXPC_HTTP_CLEANUP_GRACE_MS after it was first seen, so the cleanup can
 * finish but a server that does not answer cannot keep the program from
 * ending. mxpc_http_cleanup returns the previous setting (restore it to
 * nest); mxpc_http_interrupted says whether a signal stops the transport's
 * transfers now. */
#define MXPC_HTTP_CLEANUP_GRACE_MS 10000
int mxpc_http_cleanup(struct mxpc_http *h, int on);
int mxpc_http_interrupted(struct mxpc_http *h);

/* Failures worth another attempt: a connection refused, reset or cut off, a
 * timeout, an HTTP/2 stream error. */
int mxpc_http_transient(CURLcode code);
/* Failures of TLS: the peer's certificate, the CA bundle, the handshake, the
 * client certificate. */
int mxpc_http_tls_problem(CURLcode code);
/* The retry policy: another attempt after a transient failure, a 5xx or a
 * 429 answer. Only for requests that can be repeated (GET, HEAD, PUT of the
 * same bytes, ...): a caller never retries a write that is not idempotent. */
int mxpc_http_retryable(CURLcode code, long status);
/* The wait before attempt n+1 (n from 0): MXPC_HTTP_BACKOFF_MS doubling,
 * at most 32 times that, with equal jitter (half of it fixed, half random). */
#define MXPC_HTTP_BACKOFF_MS 200L
long mxpc_http_backoff_ms(int attempt);
/* Sleeps ms, in steps, returning -1 as soon as a signal arrives, else 0. */
int mxpc_http_sleep_ms(long ms);

/* One HTTP exchange run to its end on a transport of its own: what the AWS
 * credential providers and the mxpc.http Lua module send. */
struct mxpc_buf;
struct mxpc_http_request {
    const char *method, *url;
    const char *const *headers; /* NULL-terminated "Name: value" lines, or NULL */
    const char *body;           /* NULL: none */
    size_t body_len;
    int attempts;               /* retried as mxpc_http_retryable says (at least 1) */
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
