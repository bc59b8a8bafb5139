/* The S3 client's internals, shared by its files and by nothing else: the
 * client (s3_client.c: configuration, signing, the single operations), the
 * request and the engine that runs requests on the transport
 * (s3_request.c), many GETs at once (s3_many.c), the uploaders
 * (s3_upload.c) and server-side copies (s3_copy.c).
 *
 * The engine knows requests, attempts, retries and the transport; what
 * makes a request S3's (its URL, SigV4 and the headers signed with it) is
 * one step it calls before each attempt: the client's `sign`.
 *
 * Signals and cleanup: a signal stops every request of the client (pump
 * finishes them as "interrupted"), except while the transport is in cleanup
 * (mxpc_http_cleanup): the uploaders turn it on for the requests that must
 * run even after a signal (learning a new multipart upload's id, aborting
 * unfinished uploads) and restore it after; they then run for at most
 * MXPC_HTTP_CLEANUP_GRACE_MS after the signal. Callers of s3_pump and
 * s3_execute otherwise notice a signal themselves (mxpc_interrupted) and
 * stop what they hold. */
#ifndef MXPC_S3_REQUEST_H
#define MXPC_S3_REQUEST_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <curl/curl.h>

#include "mxpc/aws.h"
#include "mxpc/buf.h"
#include "mxpc/s3.h"

#define ERROR_BODY_MAX (64 * 1024)
#define RESPONSE_MAX (4 * 1024 * 1024)

struct request;

/* The signing step: fills r->url and r->headers for this attempt (r->range
 * set by the engine). CURLE_OK, or CURLE_LOGIN_DENIED (credentials could not
 * be renewed) / CURLE_BAD_FUNCTION_ARGUMENT with r->curl_err filled. */
typedef CURLcode (*s3_sign_fn)(struct mxpc_s3 *s3, struct request *r);

/* What differs between the services on the engine (S3, Azure Blob): the
 * listing's query and the steps of an upload in parts (S3's multipart
 * upload; Azure's blocks and block list). The S3 client's is s3_dialect_s3
 * (s3_client.c, s3_upload.c); Azure's is in azure_blob.c. */
struct s3_dialect {
    const char *service; /* "s3" or "azure": which Lua module words errors */
    const char *scheme;  /* of object names in messages: "s3" or "azblob" */
    int part_etags;      /* parts are answered with ETags that the completion names */
    /* the query of a listing page (token: the last page's, "" at first) */
    void (*list_query)(struct mxpc_buf *q, const char *prefix, const char *token, int max_keys);
    /* begins an upload in parts: its id in id (cleanup mode is on) */
    int (*parts_begin)(struct mxpc_s3 *s3, const char *bucket, const char *key, char *id, size_t idlen,
                       struct mxpc_s3_error *e);
    /* the query of part `part` (1-based) of upload id (already URI-encoded: enc_id) */
    void (*part_query)(struct mxpc_buf *q, const char *id, const char *enc_id, int64_t part);
    /* the request that completes it: method, query and body (the parts' ETags) */
    const char *(*complete)(struct mxpc_buf *query, struct mxpc_buf *body, const char *id, const char *enc_id,
                            int64_t nparts, char (*etags)[128]);
    /* deletes keys (mxpc_s3_delete_objects), NULL = S3's DeleteObjects */
    int (*delete_many)(struct mxpc_s3 *s3, const char *bucket, const char *const *keys, size_t n, size_t *refused,
                       struct mxpc_s3_error *e);
    /* discards an unfinished upload in parts; 0 or -1 with e filled */
    int (*parts_abort)(struct mxpc_s3 *s3, const char *bucket, const char *key, const char *id,
                       struct mxpc_s3_error *e);
};
extern const struct s3_dialect s3_dialect_s3;

struct mxpc_s3 {
    struct mxpc_http *http;
    struct request *waiting; /* requests waiting for a retry */
    s3_sign_fn sign;
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
    int64_t bytes_in, bytes_out, requests; /* bodies received and sent, attempts answered (mxpc_s3_stats) */
    struct mxpc_aws_credentials creds;
    const struct s3_dialect *dialect;
    void *dialect_ud; /* the dialect's state (Azure: the credentials), freed with dialect_free */
    void (*dialect_free)(void *ud);
};

struct request {
    struct mxpc_s3 *s3;
    const char *method;
    const char *bucket;
    const char *key;   /* NULL for bucket operations */
    const char *query; /* as sent, or NULL */
    const char *if_match;
    const char *if_none_match; /* Azure's signing step only */
    const char *copy_source;   /* S3: x-amz-copy-source ("/bucket/key", encoded); Azure: x-ms-copy-source (a URL) */
    const char *copy_range;    /* S3: x-amz-copy-source-range of an UploadPartCopy ("bytes=a-b") */
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
    char ms_error_code[64]; /* Azure's x-ms-error-code header (HEAD answers have no body) */
    int64_t content_length;
    int64_t total_size; /* of a 206 answer's Content-Range ("bytes a-b/TOTAL"), else -1 */
    int64_t delivered; /* to the sink, over all attempts */
    char sink_error[512];
    int sink_failed;
    int size_mismatch;

    /* the engine */
    CURL *easy;
    struct curl_slist *headers;
    struct mxpc_buf url;
    char curl_err[CURL_ERROR_SIZE];
    char payload_hash[65]; /* SigV4's, computed by the signing step on the first attempt */
    int unsigned_ok;       /* the body may go unsigned (over https) */
    char range[64];        /* this attempt's Range header, or "" */
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

enum { REQ_IDLE, REQ_RUNNING, REQ_WAITING, REQ_DONE };

/* --- errors ---------------------------------------------------------------- */

void s3_set_error(struct mxpc_s3_error *e, const char *code, const char *hint, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* No error (what a reader looks at; the facts are filled with their kind). */
void s3_clear_error(struct mxpc_s3_error *e);
/* "s3://bucket/key" for messages (the endpoint's bucket when bucket is empty). */
void s3_object_name(char *out, size_t len, const char *bucket, const char *key);
/* The same for a client: "azblob://container/blob" for Azure's. */
void s3_client_object_name(const struct mxpc_s3 *s3, char *out, size_t len, const char *bucket, const char *key);
/* The S3 client's steps of a multipart upload (s3_upload.c). */
int s3_multipart_begin(struct mxpc_s3 *s3, const char *bucket, const char *key, char *id, size_t idlen,
                       struct mxpc_s3_error *e);
void s3_multipart_part_query(struct mxpc_buf *q, const char *id, const char *enc_id, int64_t part);
const char *s3_multipart_complete(struct mxpc_buf *query, struct mxpc_buf *body, const char *id, const char *enc_id,
                                  int64_t nparts, char (*etags)[128]);
/* A bucket name without '/', a key when need_key; 0, or -1 with e filled. */
int s3_check_names(const char *bucket, const char *key, int need_key, struct mxpc_s3_error *e);
/* The facts of a failed request for the Lua half that words the error
 * (lua/mxpc/s3_api.lua); the message already in e is the plain fallback. */
void s3_set_facts(struct mxpc_s3 *s3, const struct request *r, struct mxpc_s3_error *e, const char *kind);

/* The <Error> of an S3 answer: code, message, and whether there was one. */
struct s3_xml_error {
    int is_error;
    char code[64];
    char message[256];
    char etag[128]; /* CompleteMultipartUpload's answer when it is no error */
};
void s3_parse_error(const struct mxpc_buf *body, struct s3_xml_error *x);

/* --- the engine ---------------------------------------------------------------- */

/* Starts a request (it runs as the client is pumped); unsigned_ok: its body
 * may go as UNSIGNED-PAYLOAD where the client allows it. */
void s3_request_begin(struct mxpc_s3 *s3, struct request *r, int unsigned_ok);
/* Moves every request of the client along, waiting up to timeout_ms; a
 * request that ends calls its on_done. */
void s3_pump(struct mxpc_s3 *s3, int timeout_ms);
/* Runs a request with retries; 0 on a 2xx answer, else -1 with e filled. */
int s3_execute(struct mxpc_s3 *s3, struct request *r, int unsigned_ok, struct mxpc_s3_error *e);
/* Stops a request that has not finished (its rc is -1, its error `code`). */
void s3_request_cancel(struct mxpc_s3 *s3, struct request *r, const char *code);
/* Cancels it if it runs, and frees what it holds (not r itself). */
void s3_request_free(struct request *r);

#endif
