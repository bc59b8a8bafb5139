/* The Azure Blob Storage client: an S3 client (s3_client.c) whose signing
 * step and dialect are Azure's. See include/mxpc/azure.h.
 *
 * Requests: a container is the bucket, a blob name the key; operations on
 * a container get "restype=container". URLs are the endpoint's path (Azurite:
 * "/ACCOUNT") then "/container/blob", percent-encoded as S3's are. */
#include "mxpc/azure.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "mxpc/azure_sharedkey.h"
#include "mxpc/buf.h"
#include "mxpc/http.h"
#include "mxpc/k8s.h"
#include "mxpc/log.h"
#include "mxpc/sigv4.h"

#include "s3_request.h"

enum auth_kind { AUTH_KEY, AUTH_SAS, AUTH_BEARER, AUTH_TOKEN };

struct azure_auth {
    enum auth_kind kind;
    char *account;
    char *key;    /* base64 */
    char *sas;    /* without '?' */
    char *bearer; /* AUTH_BEARER, or the last token of AUTH_TOKEN */
    mxpc_azure_token_fn token;
    void *token_ud;
};

static void auth_free(void *ud)
{
    struct azure_auth *a = ud;
    if (!a)
        return;
    free(a->account);
    free(a->key);
    free(a->sas);
    free(a->bearer);
    free(a);
}

static struct curl_slist *add_header(struct curl_slist *list, const char *name, const char *value)
{
    struct mxpc_buf b = MXPC_BUF_INIT;
    mxpc_buf_printf(&b, "%s: %s", name, value);
    struct curl_slist *l = curl_slist_append(list, b.data);
    mxpc_buf_free(&b);
    if (!l)
        abort();
    return l;
}

/* --- signing: the step the engine calls before each attempt ------------------ */

static CURLcode sign(struct mxpc_s3 *s3, struct request *r)
{
    struct azure_auth *a = s3->dialect_ud;
    struct mxpc_buf path = MXPC_BUF_INIT, query = MXPC_BUF_INIT;
    mxpc_buf_puts(&path, s3->prefix);
    if (r->bucket && *r->bucket) {
        mxpc_buf_putc(&path, '/');
        mxpc_sigv4_uri_encode(&path, r->bucket, strlen(r->bucket), 0);
    }
    if (r->key) {
        mxpc_buf_putc(&path, '/');
        mxpc_sigv4_uri_encode(&path, r->key, strlen(r->key), 1);
    }
    if (path.len == 0)
        mxpc_buf_putc(&path, '/');
    if (r->query)
        mxpc_buf_puts(&query, r->query);
    else if (!r->key)
        mxpc_buf_puts(&query, "restype=container");
    r->url.len = 0;
    mxpc_buf_printf(&r->url, "%s://%s%s", s3->scheme, s3->authority, path.data);
    if (query.len || a->kind == AUTH_SAS)
        mxpc_buf_printf(&r->url, "?%s%s%s", query.len ? query.data : "", query.len && a->kind == AUTH_SAS ? "&" : "",
                        a->kind == AUTH_SAS ? a->sas : "");

    char date[30], length[32];
    mxpc_azure_date(time(NULL), date);
    struct mxpc_azure_header h[12];
    size_t n = 0;
    h[n++] = (struct mxpc_azure_header){"x-ms-date", date};
    h[n++] = (struct mxpc_azure_header){"x-ms-version", MXPC_AZURE_VERSION};
    int is_put = strcmp(r->method, "PUT") == 0;
    if (is_put && r->key && !r->query && !r->copy_source)
        h[n++] = (struct mxpc_azure_header){"x-ms-blob-type", "BlockBlob"};
    if (r->copy_source) {
        h[n++] = (struct mxpc_azure_header){"x-ms-copy-source", r->copy_source};
        h[n++] = (struct mxpc_azure_header){"x-ms-requires-sync", "true"};
    }
    if (is_put || r->body) {
        snprintf(length, sizeof length, "%zu", r->body_len);
        h[n++] = (struct mxpc_azure_header){"Content-Length", length};
    }
    if (r->range[0])
        h[n++] = (struct mxpc_azure_header){"Range", r->range};
    if (r->if_match)
        h[n++] = (struct mxpc_azure_header){"If-Match", r->if_match};
    if (r->if_none_match)
        h[n++] = (struct mxpc_azure_header){"If-None-Match", r->if_none_match};
    if (r->content_md5)
        h[n++] = (struct mxpc_azure_header){"Content-MD5", r->content_md5};
    h[n++] = (struct mxpc_azure_header){"Content-Type", r->content_type ? r->content_type : ""};

    CURLcode rc = CURLE_OK;
    struct mxpc_buf auth = MXPC_BUF_INIT;
    if (a->kind == AUTH_KEY) {
        struct mxpc_azure_sharedkey_request sreq = {r->method, path.data, query.len ? query.data : NULL, h, n};
        struct mxpc_azure_sharedkey_result res = MXPC_AZURE_SHAREDKEY_RESULT_INIT;
        if (mxpc_azure_sharedkey_sign(a->account, a->key, &sreq, &res) != 0) {
            snprintf(r->curl_err, sizeof r->curl_err, "cannot sign the request with the account key");
            rc = CURLE_BAD_FUNCTION_ARGUMENT;
        } else {
            mxpc_buf_puts(&auth, res.authorization.data);
            if (mxpc_log_get_level() >= MXPC_LOG_TRACE)
                mxpc_log(MXPC_LOG_TRACE, "azure string to sign:\n%s", res.string_to_sign.data);
        }
        mxpc_azure_sharedkey_result_free(&res);
    } else if (a->kind == AUTH_TOKEN) {
        char token[8192];
        if (a->token(a->token_ud, token, sizeof token, r->curl_err, sizeof r->curl_err) != 0) {
            r->curl_err[strcspn(r->curl_err, "\n")] = '\0';
            rc = CURLE_LOGIN_DENIED;
        } else {
            mxpc_redact_add(token);
            mxpc_buf_printf(&auth, "Bearer %s", token);
        }
    } else if (a->kind == AUTH_BEARER) {
        mxpc_buf_printf(&auth, "Bearer %s", a->bearer);
    }
    curl_slist_free_all(r->headers);
    r->headers = NULL;
    for (size_t i = 0; rc == CURLE_OK && i < n; i++)
        if (strcmp(h[i].name, "Content-Length") != 0) /* libcurl sends it */
            r->headers = add_header(r->headers, h[i].name, h[i].value);
    if (rc == CURLE_OK && auth.len)
        r->headers = add_header(r->headers, "Authorization", auth.data);
    mxpc_buf_free(&auth);
    mxpc_buf_free(&path);
    mxpc_buf_free(&query);
    return rc;
}

/* --- the dialect ------------------------------------------------------------- */

static void list_query(struct mxpc_buf *q, const char *prefix, const char *token, int max_keys)
{
    mxpc_buf_puts(q, "restype=container&comp=list");
    if (*token) {
        mxpc_buf_puts(q, "&marker=");
        mxpc_sigv4_uri_encode(q, token, strlen(token), 0);
    }
    if (max_keys > 0)
        mxpc_buf_printf(q, "&maxresults=%d", max_keys);
    if (*prefix) {
        mxpc_buf_puts(q, "&prefix=");
        mxpc_sigv4_uri_encode(q, prefix, strlen(prefix), 0);
    }
}

/* Blocks need no request to begin: their ids are made of a random id of the
 * upload and the part number, all of the same length as Azure requires. */
static int blocks_begin(struct mxpc_s3 *s3, const char *bucket, const char *key, char *id, size_t idlen,
                        struct mxpc_s3_error *e)
{
    (void)s3, (void)bucket, (void)key;
    unsigned char rnd[16];
    if (idlen < 33 || RAND_bytes(rnd, sizeof rnd) != 1) {
        s3_set_error(e, "io", NULL, "cannot make a random block id");
        return -1;
    }
    for (size_t i = 0; i < sizeof rnd; i++)
        snprintf(id + 2 * i, 3, "%02x", rnd[i]);
    return 0;
}

/* base64("<upload id>-<part, 6 digits>") */
static void block_id(char out[64], const char *id, int64_t part)
{
    char raw[48];
    int len = snprintf(raw, sizeof raw, "%.32s-%06lld", id, (long long)part);
    EVP_EncodeBlock((unsigned char *)out, (const unsigned char *)raw, len);
}

static void block_query(struct mxpc_buf *q, const char *id, const char *enc_id, int64_t part)
{
    (void)enc_id;
    char b[64];
    block_id(b, id, part);
    mxpc_buf_puts(q, "comp=block&blockid=");
    mxpc_sigv4_uri_encode(q, b, strlen(b), 0);
}

static const char *block_list(struct mxpc_buf *query, struct mxpc_buf *body, const char *id, const char *enc_id,
                              int64_t nparts, char (*etags)[128])
{
    (void)enc_id, (void)etags;
    mxpc_buf_puts(body, "<?xml version=\"1.0\" encoding=\"utf-8\"?><BlockList>");
    for (int64_t n = 1; n <= nparts; n++) {
        char b[64];
        block_id(b, id, n);
        mxpc_buf_printf(body, "<Latest>%s</Latest>", b);
    }
    mxpc_buf_puts(body, "</BlockList>");
    mxpc_buf_puts(query, "comp=blocklist");
    return "PUT";
}

/* Uncommitted blocks of a blob that does not exist are discarded by an
 * empty Put Block List (only if there is still no blob) and a Delete; those of a
 * blob that exists cannot be without changing it, and expire after 7 days. */
static int blocks_abort(struct mxpc_s3 *s3, const char *bucket, const char *key, const char *id,
                        struct mxpc_s3_error *e)
{
    (void)id;
    struct mxpc_s3_object o;
    if (mxpc_s3_head(s3, bucket, key, &o, e) == 0) {
        mxpc_log(MXPC_LOG_WARN,
                 "azblob://%s/%s: the blocks of the failed upload stay uncommitted beside the existing blob; "
                 "Azure discards them after 7 days",
                 bucket, key);
        return 0;
    }
    if (e->http_status != 404)
        return -1;
    /* An empty block list commits an empty blob, discarding every uncommitted
     * block; the Delete then removes it. A Put Block cut off by the stop may
     * still land on the server after that: Get Block List is asked a few
     * times over about 3 s whether blocks came back, and they are discarded
     * again. (The waits are plain sleeps: a signal has often come already.) */
    static const char empty[] = "<?xml version=\"1.0\" encoding=\"utf-8\"?><BlockList></BlockList>";
    static const long waits_ms[] = {200, 400, 800, 1600};
    int discard = 1;
    for (size_t check = 0; check <= sizeof waits_ms / sizeof waits_ms[0]; check++) {
        if (discard) {
            struct request r = {.method = "PUT", .bucket = bucket, .key = key, .query = "comp=blocklist",
                                .body = empty, .body_len = sizeof empty - 1, .content_type = "application/xml",
                                .if_none_match = "*", .idempotent = 1, .expected_size = -1};
            int rc = s3_execute(s3, &r, 0, e);
            s3_request_free(&r);
            if (rc != 0) {
                if (e->http_status == 409 || e->http_status == 412)
                    rc = 0, s3_clear_error(e); /* someone else made the blob meanwhile: theirs stays */
                return rc;
            }
            if (mxpc_s3_delete(s3, bucket, key, e) != 0)
                return -1;
        }
        if (check == sizeof waits_ms / sizeof waits_ms[0])
            break;
        struct timespec ts = {waits_ms[check] / 1000, (waits_ms[check] % 1000) * 1000000L};
        while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
        }
        struct request g = {.method = "GET", .bucket = bucket, .key = key,
                            .query = "comp=blocklist&blocklisttype=uncommitted", .idempotent = 1, .expected_size = -1};
        struct mxpc_s3_error ge;
        discard = 0;
        if (s3_execute(s3, &g, 0, &ge) == 0) {
            mxpc_buf_puts(&g.response, "");
            discard = strstr(g.response.data, "<Block>") != NULL;
        }
        s3_request_free(&g);
        if (discard)
            mxpc_log(MXPC_LOG_DEBUG, "azblob://%s/%s: blocks arrived after the discard; discarding again", bucket,
                     key);
    }
    return 0;
}

/* A missing blob counts as deleted (as S3 answers). */
static int delete_refused(const struct request *r)
{
    return r->rc != 0 && !(r->err.http_status == 404 && strcmp(r->err.s3_code, "BlobNotFound") == 0);
}

/* Delete Blob for every key (the Blob service deletes one blob a request;
 * its Blob Batch is not used), MXPC_S3_DEFAULT_CONCURRENCY requests at once
 * on the client's engine. Every key is tried; e names the first refusal.
 * A signal stops what is in flight: -1 with the interruption. */
static int delete_many(struct mxpc_s3 *s3, const char *bucket, const char *const *keys, size_t n, size_t *refused,
                       struct mxpc_s3_error *e)
{
    size_t conc = n < MXPC_S3_DEFAULT_CONCURRENCY ? n : MXPC_S3_DEFAULT_CONCURRENCY;
    struct request *slots = calloc(conc ? conc : 1, sizeof *slots);
    if (!slots)
        abort();
    size_t next = 0, bad = 0, running = 0;
    int interrupted = 0;
    s3_clear_error(e);
    for (;;) {
        for (size_t i = 0; i < conc && !interrupted && next < n; i++) {
            if (slots[i].method)
                continue;
            struct mxpc_s3_error one;
            const char *key = keys[next++];
            if (s3_check_names(bucket, key, 1, &one) != 0) {
                if (bad++ == 0)
                    memcpy(e, &one, sizeof one);
                continue;
            }
            slots[i] = (struct request){.method = "DELETE", .bucket = bucket, .key = key, .idempotent = 1,
                                        .expected_size = -1};
            s3_request_begin(s3, &slots[i], 0);
            running++;
        }
        if (running == 0 && (interrupted || next >= n))
            break;
        if (running > 0)
            s3_pump(s3, 100);
        for (size_t i = 0; i < conc; i++) {
            struct request *r = &slots[i];
            if (!r->method || r->state != REQ_DONE)
                continue;
            if (r->rc != 0 && strcmp(r->err.code, "interrupted") == 0) {
                if (!interrupted)
                    memcpy(e, &r->err, sizeof *e);
                interrupted = 1;
            } else if (delete_refused(r) && bad++ == 0 && !interrupted) {
                memcpy(e, &r->err, sizeof *e);
            }
            s3_request_free(r);
            memset(r, 0, sizeof *r);
            running--;
        }
    }
    free(slots);
    if (refused)
        *refused = bad;
    return interrupted || bad ? -1 : 0;
}

/* The Blob service operation a request is (as Azure's documentation names
 * them), for messages. */
static const char *azure_action(const struct request *r)
{
    const char *q = r->query ? r->query : "";
    int get = strcmp(r->method, "GET") == 0, head = strcmp(r->method, "HEAD") == 0;
    if (!r->key)
        return get ? "List Blobs" : strcmp(r->method, "DELETE") == 0 ? "Delete Container" : "Create Container";
    if (strstr(q, "comp=blocklist"))
        return get ? "Get Block List" : "Put Block List";
    if (strstr(q, "comp=block"))
        return "Put Block";
    if (strstr(q, "comp=lease"))
        return "Lease Blob";
    if (get)
        return "Get Blob";
    if (head)
        return "Get Blob Properties";
    if (strcmp(r->method, "DELETE") == 0)
        return "Delete Blob";
    return r->copy_source ? "Copy Blob From URL" : "Put Blob";
}

static const struct s3_dialect azure_dialect = {
    .service = "azure",
    .scheme = "azblob",
    .part_etags = 0,
    .list_query = list_query,
    .parts_begin = blocks_begin,
    .part_query = block_query,
    .complete = block_list,
    .delete_many = delete_many,
    .parts_abort = blocks_abort,
    .action = azure_action,
};

/* --- the client ------------------------------------------------------------- */

struct mxpc_s3 *mxpc_azure_new(const struct mxpc_azure_config *cfg, struct mxpc_s3_error *e)
{
    s3_clear_error(e);
    if (!cfg->account || !*cfg->account) {
        s3_set_error(e, "usage", NULL, "an Azure Blob client needs the storage account's name");
        return NULL;
    }
    int nauth = (cfg->account_key && *cfg->account_key) + (cfg->sas && *cfg->sas) + (cfg->bearer && *cfg->bearer) +
                (cfg->token != NULL);
    if (nauth != 1) {
        s3_set_error(e, "usage", "give the account key, a SAS token or a bearer token",
                     nauth ? "an Azure Blob client takes one kind of credentials, not %d" :
                             "an Azure Blob client without credentials%.0d",
                     nauth);
        return NULL;
    }
    if (cfg->account_key && *cfg->account_key) {
        size_t klen = 0;
        unsigned char *k = mxpc_base64_decode(cfg->account_key, strlen(cfg->account_key), &klen);
        free(k);
        if (!k || klen == 0) {
            s3_set_error(e, "usage", "copy the key as the portal shows it (base64)",
                         "the account key of %s is not base64", cfg->account);
            return NULL;
        }
    }
    struct mxpc_buf ep = MXPC_BUF_INIT;
    if (cfg->endpoint && *cfg->endpoint)
        mxpc_buf_puts(&ep, cfg->endpoint);
    else
        mxpc_buf_printf(&ep, "https://%s.blob.core.windows.net", cfg->account);
    /* The engine's client, with placeholder AWS credentials it never uses. */
    struct mxpc_aws_credentials none = {.access_key = (char *)cfg->account, .secret_key = (char *)"\x01"};
    snprintf(none.source, sizeof none.source, "azure");
    struct mxpc_s3_config sc = {
        .endpoint = ep.data,
        .region = "azure",
        .credentials = &none,
        .path_style = 1,
        .ca_file = cfg->ca_file,
        .ca_dir = cfg->ca_dir,
        .part_size = cfg->block_size,
        .multipart_threshold = cfg->threshold,
        .max_retries = cfg->max_retries,
        .unsigned_payload = 1,
        .max_send_speed = cfg->max_send_speed,
    };
    struct mxpc_s3 *s3 = mxpc_s3_new(&sc, e);
    mxpc_buf_free(&ep);
    if (!s3) {
        char m[sizeof e->message];
        snprintf(m, sizeof m, "%s", e->message);
        snprintf(e->message, sizeof e->message, "Azure Blob: %.700s", m);
        return NULL;
    }
    struct azure_auth *a = calloc(1, sizeof *a);
    if (!a)
        abort();
    a->account = mxpc_strdup(cfg->account);
    if (cfg->account_key && *cfg->account_key) {
        a->kind = AUTH_KEY;
        a->key = mxpc_strdup(cfg->account_key);
        mxpc_redact_add(a->key);
    } else if (cfg->sas && *cfg->sas) {
        a->kind = AUTH_SAS;
        a->sas = mxpc_strdup(cfg->sas[0] == '?' ? cfg->sas + 1 : cfg->sas);
        mxpc_redact_add(a->sas);
    } else if (cfg->bearer && *cfg->bearer) {
        a->kind = AUTH_BEARER;
        a->bearer = mxpc_strdup(cfg->bearer);
        mxpc_redact_add(a->bearer);
    } else {
        a->kind = AUTH_TOKEN;
        a->token = cfg->token;
        a->token_ud = cfg->token_ud;
    }
    /* the identity in use, as the facts of errors name it (creds_source) */
    snprintf(s3->creds.source, sizeof s3->creds.source, "%s",
             cfg->identity && *cfg->identity ? cfg->identity : (const char *[]){"account key", "SAS token",
                                                                                 "bearer token", "bearer token"}[a->kind]);
    s3->sign = sign;
    s3->dialect = &azure_dialect;
    s3->dialect_ud = a;
    s3->dialect_free = auth_free;
    return s3;
}

const char *mxpc_azure_auth(const struct mxpc_s3 *s3)
{
    if (s3->dialect != &azure_dialect)
        return "";
    static const char *const names[] = {"account key", "SAS token", "bearer token", "bearer token"};
    return names[((const struct azure_auth *)s3->dialect_ud)->kind];
}

const char *mxpc_azure_account(const struct mxpc_s3 *s3)
{
    return s3->dialect == &azure_dialect ? ((const struct azure_auth *)s3->dialect_ud)->account : "";
}

int mxpc_azure_copy_from_url(struct mxpc_s3 *s3, const char *container, const char *blob, const char *source_url,
                             struct mxpc_s3_error *e)
{
    if (s3_check_names(container, blob, 1, e))
        return -1;
    if (s3->dialect != &azure_dialect) {
        s3_set_error(e, "usage", NULL, "Copy Blob from URL needs an Azure Blob client");
        return -1;
    }
    struct request r = {.method = "PUT", .bucket = container, .key = blob, .body = "", .body_len = 0,
                        .copy_source = source_url, .idempotent = 1, .expected_size = -1};
    int rc = s3_execute(s3, &r, 0, e);
    s3_request_free(&r);
    return rc;
}
