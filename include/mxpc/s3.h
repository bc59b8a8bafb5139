/* An S3 client on libcurl (AWS S3, MinIO, Ceph RGW), and the AWS credential
 * provider chain.
 *
 * Objects are streamed: a download hands its bytes to a sink callback as they
 * arrive, an upload pulls them from a source callback given the exact size.
 * The callbacks have the shapes of the archive module's (mxpc_archive_sink_fn,
 * mxpc_archive_source_fn), so an S3 download can feed an archive entry and an
 * archive entry can be uploaded without an intermediate file.
 *
 * Memory: an upload holds one part (part_size, 16 MiB by default) in memory,
 * never the whole object. Buffering the part is what makes it retryable and
 * lets it be signed with its real SHA-256 where the transport does not
 * protect it (plain http); see the comment at put_part in s3_client.c.
 *
 * Every function that can fail returns 0 or -1 with `e` filled: a code to
 * branch on (below), a one-line message naming the bucket and key, and
 * optionally a hint. */
#ifndef MXPC_S3_H
#define MXPC_S3_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define MXPC_S3_MIB ((int64_t)1024 * 1024)
#define MXPC_S3_DEFAULT_PART_SIZE (16 * MXPC_S3_MIB)
#define MXPC_S3_MIN_PART_SIZE (5 * MXPC_S3_MIB) /* S3's minimum for all parts but the last */
#define MXPC_S3_MAX_PART_SIZE (5 * 1024 * MXPC_S3_MIB)
#define MXPC_S3_MAX_PARTS 10000

/* --- credentials ----------------------------------------------------------- */

struct mxpc_aws_credentials {
    char *access_key;
    char *secret_key;
    char *session_token; /* NULL without temporary credentials */
    char source[64];     /* "explicit", "environment", "shared file (profile P)", ... */
};

/* One link of the chain: 1 = found (out filled), 0 = not configured here,
 * -1 = configured but failed (message in err). */
typedef int (*mxpc_aws_credentials_provider_fn)(struct mxpc_aws_credentials *out, const char *profile, char *err,
                                                size_t errlen);

/* Web identity (IRSA: AWS_ROLE_ARN + AWS_WEB_IDENTITY_TOKEN_FILE, exchanged
 * with STS AssumeRoleWithWebIdentity). NULL until that provider exists; the
 * chain tries it between the environment and the shared credentials file. */
extern mxpc_aws_credentials_provider_fn mxpc_aws_web_identity_provider;

/* The chain: `explicit_creds` when it has an access key (then the secret is
 * required), else AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY/AWS_SESSION_TOKEN,
 * else web identity, else the shared credentials file
 * (AWS_SHARED_CREDENTIALS_FILE or ~/.aws/credentials, section `profile` or
 * AWS_PROFILE or "default"). Registers the secret key and the session token
 * for redaction. Returns 0, or -1 with a message in err. */
int mxpc_aws_credentials_resolve(const struct mxpc_aws_credentials *explicit_creds, const char *profile,
                                 struct mxpc_aws_credentials *out, char *err, size_t errlen);
void mxpc_aws_credentials_clear(struct mxpc_aws_credentials *c);

/* --- client ---------------------------------------------------------------- */

struct mxpc_s3_error {
    /* not_found, forbidden, signature, exists, connect, interrupted, size,
     * io (a sink or source failed), usage, s3 (any other server error) */
    char code[32];
    char message[768];
    char hint[256];
    long http_status; /* 0 when no response arrived */
    char s3_code[64]; /* <Code> of the error body, e.g. "NoSuchKey" */
};

struct mxpc_s3_config {
    const char *endpoint; /* "http(s)://host[:port][/path]"; NULL = https://s3.<region>.amazonaws.com */
    const char *region;   /* NULL = AWS_REGION, AWS_DEFAULT_REGION, "us-east-1" */
    const struct mxpc_aws_credentials *credentials; /* copied */
    int path_style;       /* 1 path style, 0 virtual host, -1 = path style unless the endpoint is AWS */
    const char *ca_file;  /* NULL = $SSL_CERT_FILE (if set) */
    const char *ca_dir;   /* NULL = $SSL_CERT_DIR (if set) */
    int64_t part_size;    /* 0 = 16 MiB; MXPC_S3_MIN_PART_SIZE..MXPC_S3_MAX_PART_SIZE */
    int64_t multipart_threshold; /* objects larger than this use multipart; 0 = part_size */
    int max_retries;      /* -1 = 4 */
    int unsigned_payload; /* -1 = over https only; 0 = always sign the SHA-256; 1 = never */
    int64_t max_send_speed; /* bytes per second, 0 = unlimited */
};

struct mxpc_s3;

struct mxpc_s3_object {
    int64_t size;
    char etag[128];
};

/* Receives downloaded bytes: 0, or -1 with a message in err. */
typedef int (*mxpc_s3_sink_fn)(void *ud, const void *data, size_t len, char *err, size_t errlen);
/* Fills buf with up to cap bytes: the count, 0 at the end, -1 with a message. */
typedef ssize_t (*mxpc_s3_source_fn)(void *ud, void *buf, size_t cap, char *err, size_t errlen);

struct mxpc_s3 *mxpc_s3_new(const struct mxpc_s3_config *cfg, struct mxpc_s3_error *e);
void mxpc_s3_free(struct mxpc_s3 *s3); /* NULL is fine */

const char *mxpc_s3_endpoint(const struct mxpc_s3 *s3);
const char *mxpc_s3_access_key(const struct mxpc_s3 *s3);
const char *mxpc_s3_region(const struct mxpc_s3 *s3);

/* `bucket` may be NULL or "" when the endpoint already names the bucket
 * (path https://host/bucket, or virtual host https://bucket.s3...). */
int mxpc_s3_head(struct mxpc_s3 *s3, const char *bucket, const char *key, struct mxpc_s3_object *out,
                 struct mxpc_s3_error *e);
/* Streams the object into sink. expected_size >= 0: fail with "size" unless
 * the object has exactly that size (checked before the first byte is passed
 * on). *bytes (may be NULL) gets the count passed to the sink. A transfer cut
 * off mid-way is resumed with a Range request for the same ETag. */
int mxpc_s3_get(struct mxpc_s3 *s3, const char *bucket, const char *key, int64_t expected_size,
                mxpc_s3_sink_fn sink, void *ud, int64_t *bytes, struct mxpc_s3_error *e);
/* A part of an object: `length` bytes from `offset`, which must lie within
 * the object. With if_match (an ETag), an object that was replaced meanwhile
 * fails with "changed" instead of mixing two objects' bytes. */
struct mxpc_s3_range {
    int64_t offset, length;
    const char *if_match; /* NULL or "" = any */
};
int mxpc_s3_get_range(struct mxpc_s3 *s3, const char *bucket, const char *key, const struct mxpc_s3_range *range,
                      mxpc_s3_sink_fn sink, void *ud, int64_t *bytes, struct mxpc_s3_error *e);
/* Uploads exactly `size` bytes from source (fewer or more is a "size"
 * error): one PUT up to multipart_threshold, else a multipart upload that is
 * aborted on any failure, interruption included. `out` may be NULL. */
int mxpc_s3_put(struct mxpc_s3 *s3, const char *bucket, const char *key, int64_t size, mxpc_s3_source_fn source,
                void *ud, struct mxpc_s3_object *out, struct mxpc_s3_error *e);
/* An upload whose length is not known in advance, written piece by piece:
 * the bytes are buffered up to a part; an object that fits one part is one
 * PUT at commit, a larger one a multipart upload (parts grow past 2000 parts
 * so that about 1 TiB fits). Any failure, and freeing an upload that was not
 * committed, aborts the multipart upload: nothing is left behind. The client
 * must outlive the upload. */
struct mxpc_s3_upload;
struct mxpc_s3_upload *mxpc_s3_upload_begin(struct mxpc_s3 *s3, const char *bucket, const char *key,
                                            struct mxpc_s3_error *e);
int mxpc_s3_upload_write(struct mxpc_s3_upload *u, const void *data, size_t len, struct mxpc_s3_error *e);
int mxpc_s3_upload_commit(struct mxpc_s3_upload *u, struct mxpc_s3_object *out, struct mxpc_s3_error *e);
int64_t mxpc_s3_upload_size(const struct mxpc_s3_upload *u);
void mxpc_s3_upload_free(struct mxpc_s3_upload *u); /* aborts unless committed; NULL is fine */
/* Deleting a missing key succeeds (as S3 answers). */
int mxpc_s3_delete(struct mxpc_s3 *s3, const char *bucket, const char *key, struct mxpc_s3_error *e);
int mxpc_s3_create_bucket(struct mxpc_s3 *s3, const char *bucket, struct mxpc_s3_error *e);
int mxpc_s3_delete_bucket(struct mxpc_s3 *s3, const char *bucket, struct mxpc_s3_error *e);

/* Unfinished multipart uploads of a bucket (first 1000), and aborting one. */
typedef void (*mxpc_s3_upload_fn)(void *ud, const char *key, const char *upload_id);
int mxpc_s3_list_multipart_uploads(struct mxpc_s3 *s3, const char *bucket, mxpc_s3_upload_fn fn, void *ud,
                                   struct mxpc_s3_error *e);
int mxpc_s3_abort_multipart(struct mxpc_s3 *s3, const char *bucket, const char *key, const char *upload_id,
                            struct mxpc_s3_error *e);

/* A presigned URL (query signing, UNSIGNED-PAYLOAD) valid for `expires`
 * seconds (1..604800). Returns a malloc'ed URL, or NULL with e filled. */
char *mxpc_s3_presign(struct mxpc_s3 *s3, const char *method, const char *bucket, const char *key, long expires,
                      struct mxpc_s3_error *e);

#endif
