/* An Azure Blob Storage client on the S3 client's request engine: the
 * client it makes is a `struct mxpc_s3` whose signing step and dialect are
 * Azure's (src/azure_blob.c), so every operation of s3.h works on it with
 * containers for buckets and blob names for keys:
 *
 *   mxpc_s3_head      Get Blob Properties      mxpc_s3_get(_range)  Get Blob (ranged, resumed)
 *   mxpc_s3_put       Put Blob, or Put Block + Put Block List above the threshold (blocks in parallel)
 *   mxpc_s3_delete    Delete Blob (a missing blob is deleted)
 *   mxpc_s3_list      List Blobs (page after page with markers)
 *   mxpc_s3_many, the uploaders: the same, many at once in the memory window
 *   mxpc_s3_create_bucket / delete_bucket: Create / Delete Container
 *
 * Credentials, one of: the account key (Shared Key signing), a SAS token
 * (its query appended to every URL), or bearer tokens (Entra ID: given, or
 * asked from `token` before each attempt, which caches and renews them).
 *
 * Uncommitted blocks: a block upload that fails or is interrupted leaves
 * blocks that Azure keeps uncommitted for 7 days; where the blob did not
 * exist they are discarded at once (an empty Put Blob with If-None-Match: *
 * then Delete Blob); where it did, the existing blob is left as it was and
 * the blocks expire after those 7 days. */
#ifndef MXPC_AZURE_H
#define MXPC_AZURE_H

#include <stddef.h>
#include <stdint.h>

#include "mxpc/s3.h"

#define MXPC_AZURE_VERSION "2021-12-02"

/* Fills out with a bearer token for https://storage.azure.com: 0, or -1
 * with err filled. Called before every attempt; it caches. */
typedef int (*mxpc_azure_token_fn)(void *ud, char *out, size_t outlen, char *err, size_t errlen);

struct mxpc_azure_config {
    const char *endpoint;    /* the account's blob endpoint; NULL = https://ACCOUNT.blob.core.windows.net */
    const char *account;     /* the storage account */
    const char *account_key; /* base64: Shared Key signing */
    const char *sas;         /* a SAS token (with or without the leading '?') */
    const char *bearer;      /* a bearer token as is */
    mxpc_azure_token_fn token;
    void *token_ud;
    const char *identity;         /* who the credentials are, for messages (e.g. "managed identity <client id>") */
    const char *ca_file, *ca_dir; /* as for S3 */
    int64_t block_size;           /* 0 = 16 MiB; 5 MiB..4000 MiB */
    int64_t threshold;            /* blobs larger than this go in blocks; 0 = block_size */
    int max_retries;              /* -1 = 4 */
    int64_t max_send_speed;
};

/* NULL with e filled ("usage") when the configuration cannot work: no
 * account, no or several credentials, a key that is not base64, a bad
 * endpoint. Free with mxpc_s3_free. */
struct mxpc_s3 *mxpc_azure_new(const struct mxpc_azure_config *cfg, struct mxpc_s3_error *e);

/* Which credentials the client uses, for messages: "account key",
 * "SAS token", "bearer token", or "" for an S3 client. */
const char *mxpc_azure_auth(const struct mxpc_s3 *s3);
/* The storage account ("" for an S3 client). */
const char *mxpc_azure_account(const struct mxpc_s3 *s3);

/* Copy Blob from URL: the blob at source_url (readable by the service:
 * a SAS URL, or a blob of the same account) copied into container/blob
 * synchronously (up to 256 MiB). */
int mxpc_azure_copy_from_url(struct mxpc_s3 *s3, const char *container, const char *blob, const char *source_url,
                             struct mxpc_s3_error *e);

#endif
