/* An S3 client on libcurl (AWS S3, MinIO, Ceph RGW). Its credentials come
 * from the AWS credential chain (aws.h).
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
 * protect it (plain http); see the comment at the top of s3_upload.c.
 *
 * Every function that can fail returns 0 or -1 with `e` filled: a code to
 * branch on (below), a one-line message naming the bucket and key, and
 * optionally a hint. */
#ifndef MXPC_S3_H
#define MXPC_S3_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#include "mxpc/aws.h"

#define MXPC_S3_MIB ((int64_t)1024 * 1024)
#define MXPC_S3_DEFAULT_PART_SIZE (16 * MXPC_S3_MIB)
#define MXPC_S3_MIN_PART_SIZE (5 * MXPC_S3_MIB) /* S3's minimum for all parts but the last */
#define MXPC_S3_MAX_PART_SIZE (5 * 1024 * MXPC_S3_MIB)
#define MXPC_S3_MAX_PARTS 10000

/* --- client ---------------------------------------------------------------- */

struct mxpc_s3_error {
    /* not_found, forbidden, signature, exists, connect, interrupted, size,
     * io (a sink or source failed), usage, s3 (any other server error) */
    char code[32];
    char message[768];
    char hint[256];
    long http_status; /* 0 when no response arrived */
    char s3_code[64]; /* <Code> of the error body, e.g. "NoSuchKey" */
    /* What happened, as facts, when kind is set: lua/mxpc/s3_api.lua words
     * the error from them (code, message and hint above are then a plain
     * fallback). kind: "http" (an answer refused the request), "tls",
     * "connect", "list" (ListObjects refused), "delete" (DeleteObjects
     * refused keys). */
    struct mxpc_s3_facts {
        char kind[16];
        char service[8]; /* "s3", or "azure" (lua/mxpc/azure_api.lua words it) */
        char s3_message[256]; /* <Message> */
        char method[8];
        char action[48]; /* the IAM action the request needs */
        char object[1200];
        char bucket[256], key[1024], endpoint[256], prefix[256];
        char transport[256]; /* the transport's error */
        char creds_source[320], role_arn[256], access_key[128];
        char if_match[128];
        char copy_source[1200]; /* a server-side copy's source object, "s3://bucket/key" */
        int resumed;
        long long resume_at;
        long long count, total;
    } facts;
};

struct mxpc_s3_config {
    const char *endpoint; /* "http(s)://host[:port][/path]"; NULL = https://s3.<region>.amazonaws.com */
    const char *region;   /* NULL = mxpc_aws_region's: AWS_REGION, AWS_DEFAULT_REGION, "us-east-1" */
    const struct mxpc_aws_credentials *credentials; /* copied */
    int path_style;       /* 1 path style, 0 virtual host, -1 = path style unless the endpoint is AWS */
    const char *ca_file;  /* NULL = $SSL_CERT_FILE (if set); neither = the system's (ca_bundle.h) */
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
/* The bytes of bodies received and sent, and the requests answered (each
 * attempt), since the client was made. */
void mxpc_s3_stats(const struct mxpc_s3 *s3, int64_t *bytes_in, int64_t *bytes_out, int64_t *requests);

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
/* Deleting a missing key succeeds (as S3 answers). */
int mxpc_s3_delete(struct mxpc_s3 *s3, const char *bucket, const char *key, struct mxpc_s3_error *e);
/* Deletes up to MXPC_S3_DELETE_BATCH keys with one DeleteObjects request
 * (missing keys count as deleted, as S3 answers). 0 when every key is gone;
 * -1 with e filled when the request failed, or when S3 refused some keys:
 * then *refused (if not NULL) says how many, and e names the first. */
#define MXPC_S3_DELETE_BATCH 1000
int mxpc_s3_delete_objects(struct mxpc_s3 *s3, const char *bucket, const char *const *keys, size_t n,
                           size_t *refused, struct mxpc_s3_error *e);
int mxpc_s3_create_bucket(struct mxpc_s3 *s3, const char *bucket, struct mxpc_s3_error *e);
int mxpc_s3_delete_bucket(struct mxpc_s3 *s3, const char *bucket, struct mxpc_s3_error *e);

/* --- many objects at once ---------------------------------------------------- */

#define MXPC_S3_DEFAULT_CONCURRENCY 16
#define MXPC_S3_DEFAULT_WINDOW (32 * MXPC_S3_MIB)

struct mxpc_s3_item {
    const char *bucket, *key;
    int64_t size; /* expected size (a GET fails with "size" otherwise), or -1 */
};

/* The items of mxpc_s3_many, asked for one at a time as their requests
 * start (so that a million of them need not be in memory at once): get
 * fills *it with item i (0-based; bucket and key need to live only until it
 * returns) and returns 0, or -1 with e filled to stop everything. */
struct mxpc_s3_items {
    size_t n;
    int (*get)(void *ud, size_t i, struct mxpc_s3_item *it, struct mxpc_s3_error *e);
    void *ud;
};

struct mxpc_s3_many_options {
    int concurrency;       /* requests in flight; 0 = MXPC_S3_DEFAULT_CONCURRENCY */
    int64_t window;        /* bytes of objects kept in memory; objects larger than a quarter go to files */
    const char *spill_dir; /* where those files are made (unnamed: nothing stays behind); NULL = /tmp */
    struct mxpc_s3 *also;  /* another client to move along while waiting (its uploads take the GETs' bytes) */
    int no_overwrite;      /* uploads: the commit refuses to replace an object that exists by then (Azure:
                              If-None-Match: * on Put Blob and Put Block List; S3 ignores it) */
};

/* A finished item. A GET's bytes are in data (size bytes), or in the file fd
 * (positioned at its start) when they did not fit the window; a HEAD has
 * only size and etag. When failed, err says why. Valid during the call. */
struct mxpc_s3_fetched {
    size_t index;
    const char *key; /* the object's */
    int failed;
    struct mxpc_s3_error err;
    int64_t size;
    char etag[128];
    const char *data;
    int fd;
};

/* Called for each item in the order they finish: 0 = done with it (skipped
 * if it failed), 1 = keep it and ask again later (not allowed when `must` is
 * set: nothing else is left to finish), -1 = stop everything (e filled). */
typedef int (*mxpc_s3_fetched_fn)(void *ud, const struct mxpc_s3_fetched *f, int must, struct mxpc_s3_error *e);

/* GETs (or HEADs with head = 1) of all the items, up to `concurrency` at a
 * time. Returns 0 when every item was handed to fn, or -1 with e filled once
 * fn stopped, or on interruption; then every request still in flight is
 * cancelled and every spilled file closed. */
int mxpc_s3_many(struct mxpc_s3 *s3, int head, const struct mxpc_s3_items *items,
                 const struct mxpc_s3_many_options *o, mxpc_s3_fetched_fn fn, void *ud, struct mxpc_s3_error *e);

/* Server-side copies, many at once: each item's source object is copied
 * into its target by the server (CopyObject, signed with this client's
 * credentials, which must be able to read the source; on an Azure client
 * Copy Blob from URL, see source_url below); no byte of the
 * objects passes through the client. An object larger than part_threshold
 * is copied in parts (a multipart upload of UploadPartCopy parts of
 * part_size, in parallel), aborted on any failure, a signal included. A
 * CopyObject answered 200 with an <Error> body is a failure (retried when
 * S3 says so: InternalError, SlowDown, ServiceUnavailable). fn gets each
 * finished item as mxpc_s3_many's does (key: the target's; size: the bytes
 * copied; etag: the new object's) and returns 0, or -1 to stop everything
 * (1 counts as 0: nothing is held). Returns 0 when every item was handed to
 * fn, or -1 with e filled; then nothing is left running and every
 * unfinished multipart upload is aborted. */
#define MXPC_S3_COPY_THRESHOLD (5 * 1024 * MXPC_S3_MIB) /* CopyObject's limit */
#define MXPC_S3_COPY_PART_SIZE (512 * MXPC_S3_MIB)
struct mxpc_s3_copy_item {
    const char *src_bucket, *src_key; /* the source, on the same endpoint */
    const char *bucket, *key;         /* the target */
    int64_t size;                     /* the source's size (it decides CopyObject or parts), or -1 */
};
struct mxpc_s3_copy_items {
    size_t n;
    /* fills *it with item i; the strings need to live only until it returns */
    int (*get)(void *ud, size_t i, struct mxpc_s3_copy_item *it, struct mxpc_s3_error *e);
    void *ud;
};
struct mxpc_s3_copy_options {
    int concurrency;         /* requests in flight (copies and parts); 0 = MXPC_S3_DEFAULT_CONCURRENCY */
    int64_t part_threshold;  /* 0 = MXPC_S3_COPY_THRESHOLD */
    int64_t part_size;       /* 0 = MXPC_S3_COPY_PART_SIZE (grown to stay within 10,000 parts) */
    /* Azure's Copy Blob from URL: the source is source_url/src_bucket/src_key?source_query
     * (source_url: the account's endpoint; source_query: a SAS, may be NULL); never in parts */
    const char *source_url, *source_query;
};
int mxpc_s3_copy_many(struct mxpc_s3 *s3, const struct mxpc_s3_copy_items *items, const struct mxpc_s3_copy_options *o,
                      mxpc_s3_fetched_fn fn, void *ud, struct mxpc_s3_error *e);

/* Uploads, many at once: put() reads the object from its source into memory
 * (a part at a time for a multipart upload, whose parts then go in
 * parallel), waiting while the window or the concurrency is full, and
 * returns once it is on its way; finish() waits for all. The first failure
 * (or a signal) cancels everything in flight and aborts every unfinished
 * multipart upload; put() and finish() then return -1 with it. free() does
 * the same to whatever is not finished. */
struct mxpc_s3_uploader;
struct mxpc_s3_uploader *mxpc_s3_uploader_new(struct mxpc_s3 *s3, const struct mxpc_s3_many_options *o);
int mxpc_s3_uploader_put(struct mxpc_s3_uploader *up, const char *bucket, const char *key, int64_t size,
                         mxpc_s3_source_fn source, void *ud, struct mxpc_s3_error *e);
int mxpc_s3_uploader_finish(struct mxpc_s3_uploader *up, struct mxpc_s3_error *e);
void mxpc_s3_uploader_stats(const struct mxpc_s3_uploader *up, int64_t *objects, int64_t *bytes);
void mxpc_s3_uploader_free(struct mxpc_s3_uploader *up);

/* An upload whose length is not known in advance, written piece by piece
 * (an archive as it is made): the bytes are gathered into a part; an object
 * that fits one part is one PUT at commit, a larger one a multipart upload
 * on an uploader (above) with options `o` (NULL: 2 parts in flight while
 * the next is gathered), whose parts grow past 2000 parts so that about
 * 1 TiB fits. Any failure or signal, and freeing an upload that was not
 * committed, aborts the multipart upload: nothing is left behind. The
 * client must outlive the upload. */
#define MXPC_S3_UPLOAD_CONCURRENCY 2
struct mxpc_s3_upload;
struct mxpc_s3_upload *mxpc_s3_upload_begin(struct mxpc_s3 *s3, const char *bucket, const char *key,
                                            const struct mxpc_s3_many_options *o, struct mxpc_s3_error *e);
int mxpc_s3_upload_write(struct mxpc_s3_upload *u, const void *data, size_t len, struct mxpc_s3_error *e);
/* Sends what is gathered as the last part and waits until every part is in,
 * a signal or failure stopping it (and aborting the upload): what is left for
 * mxpc_s3_upload_commit is the commit alone (CompleteMultipartUpload, Azure's
 * Put Block List; for an object of one part, its one PUT), so that a caller
 * can defer signals from the point of no return only. No write after it. */
int mxpc_s3_upload_prepare_commit(struct mxpc_s3_upload *u, struct mxpc_s3_error *e);
int mxpc_s3_upload_commit(struct mxpc_s3_upload *u, struct mxpc_s3_object *out, struct mxpc_s3_error *e);
int64_t mxpc_s3_upload_size(const struct mxpc_s3_upload *u);
void mxpc_s3_upload_free(struct mxpc_s3_upload *u); /* aborts unless committed; NULL is fine */

/* Unfinished multipart uploads of a bucket (first 1000), and aborting one. */
typedef void (*mxpc_s3_upload_fn)(void *ud, const char *key, const char *upload_id);
int mxpc_s3_list_multipart_uploads(struct mxpc_s3 *s3, const char *bucket, mxpc_s3_upload_fn fn, void *ud,
                                   struct mxpc_s3_error *e);
int mxpc_s3_abort_multipart(struct mxpc_s3 *s3, const char *bucket, const char *key, const char *upload_id,
                            struct mxpc_s3_error *e);

/* An object of a listing; the strings are valid during the call. */
struct mxpc_s3_listed {
    const char *key;
    int64_t size;
    const char *etag;          /* as S3 gives it, quotes included */
    const char *last_modified; /* ISO 8601, e.g. 2024-03-01T09:00:00.000Z */
};

/* 0 = go on, -1 = stop the listing (e filled). */
typedef int (*mxpc_s3_list_fn)(void *ud, const struct mxpc_s3_listed *o, struct mxpc_s3_error *e);

/* The objects whose keys begin with `prefix` (NULL or "" = all), in key
 * order: ListObjectsV2, page after page (max_keys per page, 0 = the
 * server's default of 1000) with continuation tokens; fn is called for each
 * object as its page arrives. A refusal carries the facts of a listing
 * (kind "list": the prefix, s3:ListBucket), which lua/mxpc/s3_api.lua words. */
int mxpc_s3_list(struct mxpc_s3 *s3, const char *bucket, const char *prefix, int max_keys, mxpc_s3_list_fn fn,
                 void *ud, struct mxpc_s3_error *e);

/* A presigned URL (query signing, UNSIGNED-PAYLOAD) valid for `expires`
 * seconds (1..604800). Returns a malloc'ed URL, or NULL with e filled. */
char *mxpc_s3_presign(struct mxpc_s3 *s3, const char *method, const char *bucket, const char *key, long expires,
                      struct mxpc_s3_error *e);

#endif
