/* AWS Signature Version 4. See include/mxpc/sigv4.h. */
#include "mxpc/sigv4.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

static const char hexdigits[] = "0123456789abcdef";

static void to_hex(const unsigned char *data, size_t len, char *out)
{
    for (size_t i = 0; i < len; i++) {
        out[2 * i] = hexdigits[data[i] >> 4];
        out[2 * i + 1] = hexdigits[data[i] & 15];
    }
    out[2 * len] = '\0';
}

static int unreserved(unsigned char c)
{
    return isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~';
}

static int hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c = tolower(c);
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

void mxpc_sigv4_uri_encode(struct mxpc_buf *out, const char *s, size_t len, int keep_slash)
{
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (unreserved(c) || (keep_slash && c == '/'))
            mxpc_buf_putc(out, (char)c);
        else
            mxpc_buf_printf(out, "%%%02X", c);
    }
}

void mxpc_sigv4_uri_decode(struct mxpc_buf *out, const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        if (s[i] == '%' && i + 2 < len && hexval(s[i + 1]) >= 0 && hexval(s[i + 2]) >= 0) {
            mxpc_buf_putc(out, (char)(hexval(s[i + 1]) * 16 + hexval(s[i + 2])));
            i += 2;
        } else {
            mxpc_buf_putc(out, s[i]);
        }
    }
}

void mxpc_sigv4_sha256_hex(const void *data, size_t len, char hex[65])
{
    unsigned char md[32];
    unsigned int mdlen = 0;
    EVP_Digest(data, len, md, &mdlen, EVP_sha256(), NULL);
    to_hex(md, 32, hex);
}

static int hmac(const void *key, size_t keylen, const char *data, unsigned char out[32])
{
    unsigned int len = 0;
    return HMAC(EVP_sha256(), key, (int)keylen, (const unsigned char *)data, strlen(data), out, &len) && len == 32
               ? 0
               : -1;
}

int mxpc_sigv4_signing_key(const char *secret_key, const char *date8, const char *region, const char *service,
                           unsigned char key[32])
{
    struct mxpc_buf k = MXPC_BUF_INIT;
    mxpc_buf_printf(&k, "AWS4%s", secret_key);
    unsigned char a[32], b[32];
    int rc = hmac(k.data, k.len, date8, a) || hmac(a, 32, region, b) || hmac(b, 32, service, a) ||
             hmac(a, 32, "aws4_request", key);
    OPENSSL_cleanse(k.data, k.len);
    mxpc_buf_free(&k);
    OPENSSL_cleanse(a, sizeof a);
    OPENSSL_cleanse(b, sizeof b);
    return rc ? -1 : 0;
}

void mxpc_sigv4_amz_date(time_t t, char out[17])
{
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, 17, "%Y%m%dT%H%M%SZ", &tm);
}

/* --- canonical parts ------------------------------------------------------ */

/* Removes "." and ".." and empty segments; keeps a trailing slash. */
static void normalize_path(struct mxpc_buf *out, const char *path)
{
    size_t n = strlen(path);
    size_t *starts = calloc(n + 1, sizeof *starts); /* segment start offsets in out */
    if (!starts)
        abort();
    size_t depth = 0;
    const char *p = path;
    while (*p) {
        while (*p == '/')
            p++;
        const char *e = strchr(p, '/');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        if (len == 0)
            break;
        if (len == 1 && p[0] == '.') {
            /* nothing */
        } else if (len == 2 && p[0] == '.' && p[1] == '.') {
            if (depth > 0)
                out->len = starts[--depth];
        } else {
            starts[depth++] = out->len;
            mxpc_buf_putc(out, '/');
            mxpc_buf_append(out, p, len);
        }
        p += len;
    }
    if (out->len == 0 || (n > 1 && path[n - 1] == '/'))
        mxpc_buf_putc(out, '/');
    out->data[out->len] = '\0';
    free(starts);
}

static void canonical_path(struct mxpc_buf *out, const char *path, unsigned flags)
{
    if (!*path) {
        mxpc_buf_putc(out, '/');
        return;
    }
    if (flags & MXPC_SIGV4_NORMALIZE_PATH) {
        struct mxpc_buf norm = MXPC_BUF_INIT;
        normalize_path(&norm, path);
        mxpc_sigv4_uri_encode(out, norm.data, norm.len, 1);
        mxpc_buf_free(&norm);
        return;
    }
    /* S3: as sent; bytes that cannot appear in a URL are encoded, escapes kept */
    for (const char *p = path; *p; p++) {
        unsigned char c = (unsigned char)*p;
        if (unreserved(c) || c == '/' || (c == '%' && hexval(p[1]) >= 0 && hexval(p[2]) >= 0))
            mxpc_buf_putc(out, (char)c);
        else
            mxpc_buf_printf(out, "%%%02X", c);
    }
}

struct param {
    char *key; /* encoded */
    char *value;
};

static int param_cmp(const void *a, const void *b)
{
    const struct param *x = a, *y = b;
    int c = strcmp(x->key, y->key);
    return c ? c : strcmp(x->value, y->value);
}

/* A query component strictly encoded. */
static char *encoded(const char *s, size_t len)
{
    struct mxpc_buf enc = MXPC_BUF_INIT;
    mxpc_sigv4_uri_encode(&enc, s, len, 0);
    if (!enc.data)
        mxpc_buf_puts(&enc, "");
    return mxpc_buf_take(&enc);
}

static char *decoded_copy(const char *s, size_t len, size_t *outlen)
{
    struct mxpc_buf dec = MXPC_BUF_INIT;
    mxpc_sigv4_uri_decode(&dec, s, len);
    if (!dec.data)
        mxpc_buf_puts(&dec, "");
    *outlen = dec.len;
    return mxpc_buf_take(&dec);
}

struct mxpc_query_param *mxpc_sigv4_query_parse(const char *query, size_t *n)
{
    *n = 0;
    if (!query || !*query)
        return NULL;
    size_t cap = 1;
    for (const char *p = query; *p; p++)
        cap += *p == '&';
    struct mxpc_query_param *params = calloc(cap, sizeof *params);
    if (!params)
        abort();
    for (const char *p = query; *p;) {
        size_t len = strcspn(p, "&");
        if (len > 0) {
            const char *eq = memchr(p, '=', len);
            size_t klen = eq ? (size_t)(eq - p) : len;
            struct mxpc_query_param *q = &params[(*n)++];
            q->key = decoded_copy(p, klen, &q->key_len);
            q->value = decoded_copy(eq ? eq + 1 : "", eq ? len - klen - 1 : 0, &q->value_len);
        }
        p += len;
        if (*p == '&')
            p++;
    }
    return params;
}

void mxpc_sigv4_query_free(struct mxpc_query_param *params, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(params[i].key);
        free(params[i].value);
    }
    free(params);
}

/* Sorted by key then value, every component encoded the same way. */
static void canonical_query(struct mxpc_buf *out, const char *query)
{
    size_t n;
    struct mxpc_query_param *q = mxpc_sigv4_query_parse(query, &n);
    if (!q)
        return;
    struct param *params = calloc(n, sizeof *params);
    if (!params)
        abort();
    for (size_t i = 0; i < n; i++) {
        params[i].key = encoded(q[i].key, q[i].key_len);
        params[i].value = encoded(q[i].value, q[i].value_len);
    }
    mxpc_sigv4_query_free(q, n);
    qsort(params, n, sizeof *params, param_cmp);
    for (size_t i = 0; i < n; i++) {
        mxpc_buf_printf(out, "%s%s=%s", i ? "&" : "", params[i].key, params[i].value);
        free(params[i].key);
        free(params[i].value);
    }
    free(params);
}

struct header {
    char *name; /* lowercase */
    char *value; /* trimmed, inner whitespace runs collapsed */
    size_t order;
};

static int header_cmp(const void *a, const void *b)
{
    const struct header *x = a, *y = b;
    int c = strcmp(x->name, y->name);
    if (c)
        return c;
    return x->order < y->order ? -1 : x->order > y->order;
}

static char *lowercase(const char *s)
{
    struct mxpc_buf b = MXPC_BUF_INIT;
    for (; *s; s++)
        mxpc_buf_putc(&b, (char)tolower((unsigned char)*s));
    if (!b.data)
        mxpc_buf_puts(&b, "");
    return mxpc_buf_take(&b);
}

static char *trim_collapse(const char *s)
{
    struct mxpc_buf b = MXPC_BUF_INIT;
    mxpc_buf_puts(&b, "");
    int pending_space = 0;
    for (; *s; s++) {
        if (isspace((unsigned char)*s)) {
            pending_space = b.len > 0;
            continue;
        }
        if (pending_space)
            mxpc_buf_putc(&b, ' ');
        pending_space = 0;
        mxpc_buf_putc(&b, *s);
    }
    return mxpc_buf_take(&b);
}

/* Appends the canonical headers (each "name:value\n") to `out` and the
 * signed-header list to `signed_headers`. `extra` are added by the signer. */
static void canonical_headers(struct mxpc_buf *out, struct mxpc_buf *signed_headers,
                              const struct mxpc_sigv4_header *headers, size_t nheaders,
                              const struct mxpc_sigv4_header *extra, size_t nextra)
{
    size_t n = nheaders + nextra;
    struct header *h = calloc(n ? n : 1, sizeof *h);
    if (!h)
        abort();
    for (size_t i = 0; i < n; i++) {
        const struct mxpc_sigv4_header *src = i < nheaders ? &headers[i] : &extra[i - nheaders];
        h[i].name = lowercase(src->name);
        h[i].value = trim_collapse(src->value ? src->value : "");
        h[i].order = i;
    }
    qsort(h, n, sizeof *h, header_cmp);
    mxpc_buf_puts(signed_headers, "");
    for (size_t i = 0; i < n; i++) {
        int same = i > 0 && strcmp(h[i].name, h[i - 1].name) == 0;
        if (same) {
            mxpc_buf_printf(out, ",%s", h[i].value);
        } else {
            if (i > 0)
                mxpc_buf_putc(out, '\n');
            mxpc_buf_printf(out, "%s:%s", h[i].name, h[i].value);
            mxpc_buf_printf(signed_headers, "%s%s", signed_headers->len ? ";" : "", h[i].name);
        }
    }
    if (n)
        mxpc_buf_putc(out, '\n');
    for (size_t i = 0; i < n; i++) {
        free(h[i].name);
        free(h[i].value);
    }
    free(h);
}

/* --- signing -------------------------------------------------------------- */

static int valid_signer(const struct mxpc_sigv4_signer *s, const struct mxpc_sigv4_request *req)
{
    return s && req && req->method && *req->method && req->path && s->access_key && *s->access_key &&
           s->secret_key && s->region && *s->region && s->service && *s->service;
}

static int has_token(const struct mxpc_sigv4_signer *s)
{
    return s->session_token && *s->session_token;
}

/* Builds the canonical request, the string to sign and the signature from
 * the canonical query (already complete) and the extra headers. */
static int finish(const struct mxpc_sigv4_signer *s, const struct mxpc_sigv4_request *req, const char *cquery,
                  const struct mxpc_sigv4_header *extra, size_t nextra, struct mxpc_buf *signed_headers,
                  struct mxpc_sigv4_result *out)
{
    struct mxpc_buf *cr = &out->canonical_request;
    cr->len = 0;
    mxpc_buf_printf(cr, "%s\n", req->method);
    canonical_path(cr, req->path, s->flags);
    mxpc_buf_printf(cr, "\n%s\n", cquery);
    canonical_headers(cr, signed_headers, req->headers, req->nheaders, extra, nextra);
    mxpc_buf_printf(cr, "\n%s\n%s", signed_headers->data,
                    req->payload_hash ? req->payload_hash : MXPC_SIGV4_EMPTY_SHA256);

    char date8[9];
    memcpy(date8, out->amz_date, 8);
    date8[8] = '\0';
    char crhash[65];
    mxpc_sigv4_sha256_hex(cr->data, cr->len, crhash);
    struct mxpc_buf *sts = &out->string_to_sign;
    sts->len = 0;
    mxpc_buf_printf(sts, "AWS4-HMAC-SHA256\n%s\n%s/%s/%s/aws4_request\n%s", out->amz_date, date8, s->region,
                    s->service, crhash);

    unsigned char key[32], sig[32];
    int rc = mxpc_sigv4_signing_key(s->secret_key, date8, s->region, s->service, key);
    if (rc == 0)
        rc = hmac(key, 32, sts->data, sig);
    OPENSSL_cleanse(key, sizeof key);
    if (rc != 0)
        return -1;
    to_hex(sig, 32, out->signature);
    return 0;
}

int mxpc_sigv4_sign(const struct mxpc_sigv4_signer *s, const struct mxpc_sigv4_request *req,
                    struct mxpc_sigv4_result *out)
{
    if (!valid_signer(s, req))
        return -1;
    mxpc_sigv4_amz_date(s->time, out->amz_date);
    struct mxpc_sigv4_header extra[3];
    size_t nextra = 0;
    extra[nextra++] = (struct mxpc_sigv4_header){"x-amz-date", out->amz_date};
    if (has_token(s) && !(s->flags & MXPC_SIGV4_TOKEN_UNSIGNED))
        extra[nextra++] = (struct mxpc_sigv4_header){"x-amz-security-token", s->session_token};
    if (s->flags & MXPC_SIGV4_CONTENT_SHA256)
        extra[nextra++] = (struct mxpc_sigv4_header){
            "x-amz-content-sha256", req->payload_hash ? req->payload_hash : MXPC_SIGV4_EMPTY_SHA256};

    struct mxpc_buf cquery = MXPC_BUF_INIT, signed_headers = MXPC_BUF_INIT;
    mxpc_buf_puts(&cquery, "");
    canonical_query(&cquery, req->query);
    int rc = finish(s, req, cquery.data, extra, nextra, &signed_headers, out);
    if (rc == 0) {
        out->authorization.len = 0;
        mxpc_buf_printf(&out->authorization,
                        "AWS4-HMAC-SHA256 Credential=%s/%.8s/%s/%s/aws4_request, SignedHeaders=%s, Signature=%s",
                        s->access_key, out->amz_date, s->region, s->service, signed_headers.data, out->signature);
    }
    mxpc_buf_free(&cquery);
    mxpc_buf_free(&signed_headers);
    return rc;
}

int mxpc_sigv4_presign(const struct mxpc_sigv4_signer *s, const struct mxpc_sigv4_request *req, long expires,
                       struct mxpc_sigv4_result *out)
{
    if (!valid_signer(s, req) || expires < 1 || expires > 604800)
        return -1;
    mxpc_sigv4_amz_date(s->time, out->amz_date);

    /* the signed header names go into the query before signing */
    struct mxpc_buf scratch = MXPC_BUF_INIT, signed_headers = MXPC_BUF_INIT;
    canonical_headers(&scratch, &signed_headers, req->headers, req->nheaders, NULL, 0);

    struct mxpc_buf q = MXPC_BUF_INIT;
    if (req->query && *req->query)
        mxpc_buf_printf(&q, "%s&", req->query);
    mxpc_buf_printf(&q, "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=");
    struct mxpc_buf cred = MXPC_BUF_INIT;
    mxpc_buf_printf(&cred, "%s/%.8s/%s/%s/aws4_request", s->access_key, out->amz_date, s->region, s->service);
    mxpc_sigv4_uri_encode(&q, cred.data, cred.len, 0);
    mxpc_buf_printf(&q, "&X-Amz-Date=%s&X-Amz-Expires=%ld", out->amz_date, expires);
    int token_signed = has_token(s) && !(s->flags & MXPC_SIGV4_TOKEN_UNSIGNED);
    if (token_signed) {
        mxpc_buf_puts(&q, "&X-Amz-Security-Token=");
        mxpc_sigv4_uri_encode(&q, s->session_token, strlen(s->session_token), 0);
    }
    mxpc_buf_puts(&q, "&X-Amz-SignedHeaders=");
    mxpc_sigv4_uri_encode(&q, signed_headers.data, signed_headers.len, 0);

    struct mxpc_buf cquery = MXPC_BUF_INIT;
    mxpc_buf_puts(&cquery, "");
    canonical_query(&cquery, q.data);
    signed_headers.len = 0;
    int rc = finish(s, req, cquery.data, NULL, 0, &signed_headers, out);
    if (rc == 0) {
        out->query.len = 0;
        mxpc_buf_printf(&out->query, "%s&X-Amz-Signature=%s", cquery.data, out->signature);
        if (has_token(s) && !token_signed) {
            mxpc_buf_puts(&out->query, "&X-Amz-Security-Token=");
            mxpc_sigv4_uri_encode(&out->query, s->session_token, strlen(s->session_token), 0);
        }
    }
    mxpc_buf_free(&scratch);
    mxpc_buf_free(&signed_headers);
    mxpc_buf_free(&cred);
    mxpc_buf_free(&q);
    mxpc_buf_free(&cquery);
    return rc;
}

void mxpc_sigv4_result_free(struct mxpc_sigv4_result *r)
{
    mxpc_buf_free(&r->canonical_request);
    mxpc_buf_free(&r->string_to_sign);
    mxpc_buf_free(&r->authorization);
    mxpc_buf_free(&r->query);
}
