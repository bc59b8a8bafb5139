/* AWS Signature Version 4: pure functions, no I/O.
 *
 * Signs a request either with an Authorization header (mxpc_sigv4_sign) or
 * in the query string (mxpc_sigv4_presign: presigned URLs, and the RDS IAM
 * token, which is a presigned "rds-db:connect" request without the scheme).
 *
 * Paths and queries are given as they are sent (percent-encoded). S3 signs
 * the path exactly as sent; other services normalize it (dot segments,
 * empty segments) and encode it once more: MXPC_SIGV4_NORMALIZE_PATH. */
#ifndef MXPC_SIGV4_H
#define MXPC_SIGV4_H

#include <stddef.h>
#include <time.h>

#include "mxpc/buf.h"

#define MXPC_SIGV4_UNSIGNED_PAYLOAD "UNSIGNED-PAYLOAD"
/* SHA-256 of nothing: the payload hash of a request without a body. */
#define MXPC_SIGV4_EMPTY_SHA256 "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

enum {
    /* generic services: normalize the path and encode it again (S3: neither) */
    MXPC_SIGV4_NORMALIZE_PATH = 1 << 0,
    /* header signing: sign x-amz-content-sha256 (S3 requires the header) */
    MXPC_SIGV4_CONTENT_SHA256 = 1 << 1,
    /* the session token is added after signing instead of being signed */
    MXPC_SIGV4_TOKEN_UNSIGNED = 1 << 2,
};

struct mxpc_sigv4_header {
    const char *name;
    const char *value;
};

struct mxpc_sigv4_request {
    const char *method;
    const char *path;  /* as sent, percent-encoded: "/bucket/a%20b" */
    const char *query; /* as sent, without '?'; NULL or "" when none */
    /* the headers to sign, Host included; names in any case, duplicates
     * allowed (joined with ',' in order) */
    const struct mxpc_sigv4_header *headers;
    size_t nheaders;
    /* lowercase hex SHA-256 of the body, MXPC_SIGV4_UNSIGNED_PAYLOAD, or
     * NULL for an empty body */
    const char *payload_hash;
};

struct mxpc_sigv4_signer {
    const char *access_key;
    const char *secret_key;
    const char *session_token; /* NULL or "" without temporary credentials */
    const char *region;
    const char *service; /* "s3", "rds-db", ... */
    time_t time;
    unsigned flags;
};

struct mxpc_sigv4_result {
    char amz_date[17]; /* "20150830T123600Z": the X-Amz-Date header */
    char signature[65];
    struct mxpc_buf canonical_request;
    struct mxpc_buf string_to_sign;
    /* mxpc_sigv4_sign: the value of the Authorization header. The caller also
     * sends X-Amz-Date (amz_date), X-Amz-Security-Token (the session token,
     * if any) and, with MXPC_SIGV4_CONTENT_SHA256, x-amz-content-sha256. */
    struct mxpc_buf authorization;
    /* mxpc_sigv4_presign: the complete query string, X-Amz-Signature last */
    struct mxpc_buf query;
};

#define MXPC_SIGV4_RESULT_INIT {"", "", MXPC_BUF_INIT, MXPC_BUF_INIT, MXPC_BUF_INIT, MXPC_BUF_INIT}

/* Both return 0, or -1 when the request cannot be signed (no method, path,
 * credentials, region or service; HMAC failure). `out` must be initialized
 * with MXPC_SIGV4_RESULT_INIT and released with mxpc_sigv4_result_free. */
int mxpc_sigv4_sign(const struct mxpc_sigv4_signer *s, const struct mxpc_sigv4_request *req,
                    struct mxpc_sigv4_result *out);
/* `expires` in seconds (1..604800). */
int mxpc_sigv4_presign(const struct mxpc_sigv4_signer *s, const struct mxpc_sigv4_request *req, long expires,
                       struct mxpc_sigv4_result *out);
void mxpc_sigv4_result_free(struct mxpc_sigv4_result *r);

/* --- building blocks ------------------------------------------------------- */

/* Percent-encodes every byte but A-Z a-z 0-9 - . _ ~ (and '/' if keep_slash),
 * with uppercase hex: how S3 keys go into paths and values into queries. */
void mxpc_sigv4_uri_encode(struct mxpc_buf *out, const char *s, size_t len, int keep_slash);
/* Decodes %XX escapes (invalid ones stay as they are; '+' stays '+'). */
void mxpc_sigv4_uri_decode(struct mxpc_buf *out, const char *s, size_t len);
/* A query string's parameters in order, split at '&' and '=' and decoded (a
 * parameter without '=' has the value ""; empty parts are skipped): *n of
 * them, NULL when there are none. Free with mxpc_sigv4_query_free. */
struct mxpc_query_param {
    char *key;
    size_t key_len;
    char *value;
    size_t value_len;
};
struct mxpc_query_param *mxpc_sigv4_query_parse(const char *query, size_t *n);
void mxpc_sigv4_query_free(struct mxpc_query_param *params, size_t n);
void mxpc_sigv4_sha256_hex(const void *data, size_t len, char hex[65]);
/* kSigning = HMAC(HMAC(HMAC(HMAC("AWS4" secret, date), region), service), "aws4_request") */
int mxpc_sigv4_signing_key(const char *secret_key, const char *date8, const char *region, const char *service,
                           unsigned char key[32]);
void mxpc_sigv4_amz_date(time_t t, char out[17]);

#endif
