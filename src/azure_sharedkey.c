/* Azure Storage Shared Key signing. See include/mxpc/azure_sharedkey.h. */
#include "mxpc/azure_sharedkey.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "mxpc/k8s.h" /* mxpc_base64_decode */
#include "mxpc/sigv4.h" /* mxpc_sigv4_query_parse */

/* The standard headers, in the order the string to sign has them. */
static const char *const standard_headers[] = {
    "Content-Encoding", "Content-Language", "Content-Length", "Content-MD5", "Content-Type",  "Date",
    "If-Modified-Since", "If-Match",       "If-None-Match",  "If-Unmodified-Since", "Range",
};

/* How the Azure SDKs order x-ms-* names (and the service expects): '-' first,
 * then the other punctuation, digits, upper case, lower case. */
static const char name_order[] = "-!#$%&*.^_|~+\"'(),/`~0123456789:;<=>?@ABCDEFGHIJKLMNOPQRSTUVWXYZ[]"
                                 "abcdefghijklmnopqrstuvwxyz{}";

static int weight(unsigned char c)
{
    const char *p = c ? strchr(name_order, c) : NULL;
    return p ? (int)(p - name_order) : (int)sizeof name_order + c;
}

static int name_cmp(const char *a, const char *b)
{
    for (; *a && *b; a++, b++) {
        int d = weight((unsigned char)*a) - weight((unsigned char)*b);
        if (d)
            return d;
    }
    return (unsigned char)*a - (unsigned char)*b;
}

struct entry {
    char *name;  /* lowercased (query names: decoded too) */
    char *value; /* header: trimmed; query: decoded */
    size_t order;
};

static int header_cmp(const void *a, const void *b)
{
    const struct entry *x = a, *y = b;
    int c = name_cmp(x->name, y->name);
    return c ? c : (x->order > y->order) - (x->order < y->order);
}

static int param_cmp(const void *a, const void *b)
{
    const struct entry *x = a, *y = b;
    int c = strcmp(x->name, y->name);
    return c ? c : strcmp(x->value, y->value);
}

static char *take(struct mxpc_buf *b)
{
    if (!b->data)
        mxpc_buf_puts(b, "");
    return mxpc_buf_take(b);
}

static char *lowercase_n(const char *s, size_t len)
{
    struct mxpc_buf b = MXPC_BUF_INIT;
    for (size_t i = 0; i < len; i++)
        mxpc_buf_putc(&b, (char)tolower((unsigned char)s[i]));
    return take(&b);
}

static char *trimmed(const char *s)
{
    while (isspace((unsigned char)*s))
        s++;
    size_t len = strlen(s);
    while (len > 0 && isspace((unsigned char)s[len - 1]))
        len--;
    struct mxpc_buf b = MXPC_BUF_INIT;
    mxpc_buf_append(&b, s, len);
    return take(&b);
}

static void free_entries(struct entry *e, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(e[i].name);
        free(e[i].value);
    }
    free(e);
}

/* Appends the entries as "sep name:value" lines, a name's values joined by ','. */
static void put_entries(struct mxpc_buf *out, const struct entry *e, size_t n, const char *before,
                        const char *after)
{
    for (size_t i = 0; i < n; i++) {
        if (i > 0 && strcmp(e[i].name, e[i - 1].name) == 0) {
            mxpc_buf_printf(out, ",%s", e[i].value);
            continue;
        }
        if (i > 0)
            mxpc_buf_puts(out, after);
        mxpc_buf_printf(out, "%s%s:%s", before, e[i].name, e[i].value);
    }
    if (n > 0)
        mxpc_buf_puts(out, after);
}

static void canonical_headers(struct mxpc_buf *out, const struct mxpc_azure_sharedkey_request *req)
{
    struct entry *e = calloc(req->nheaders + 1, sizeof *e);
    if (!e)
        abort();
    size_t n = 0;
    for (size_t i = 0; i < req->nheaders; i++) {
        const char *name = req->headers[i].name;
        if (strncasecmp(name, "x-ms-", 5) != 0)
            continue;
        e[n].name = lowercase_n(name, strlen(name));
        e[n].value = trimmed(req->headers[i].value ? req->headers[i].value : "");
        e[n].order = i;
        n++;
    }
    qsort(e, n, sizeof *e, header_cmp);
    put_entries(out, e, n, "", "\n");
    free_entries(e, n);
}

static void canonical_query(struct mxpc_buf *out, const char *query)
{
    size_t n;
    struct mxpc_query_param *q = mxpc_sigv4_query_parse(query, &n);
    if (!q)
        return;
    struct entry *e = calloc(n, sizeof *e);
    if (!e)
        abort();
    for (size_t i = 0; i < n; i++) {
        e[i].name = lowercase_n(q[i].key, q[i].key_len);
        e[i].value = q[i].value;
        q[i].value = NULL;
    }
    mxpc_sigv4_query_free(q, n);
    qsort(e, n, sizeof *e, param_cmp);
    put_entries(out, e, n, "\n", "");
    free_entries(e, n);
}

/* The value of a standard header (the last one sent wins), "" when absent. */
static const char *standard_value(const struct mxpc_azure_sharedkey_request *req, const char *name)
{
    const char *value = "";
    for (size_t i = 0; i < req->nheaders; i++)
        if (strcasecmp(req->headers[i].name, name) == 0 && req->headers[i].value)
            value = req->headers[i].value;
    return value;
}

int mxpc_azure_sharedkey_sign(const char *account, const char *key_base64,
                              const struct mxpc_azure_sharedkey_request *req,
                              struct mxpc_azure_sharedkey_result *out)
{
    if (!account || !*account || !key_base64 || !req || !req->method || !*req->method || !req->path)
        return -1;
    size_t keylen = 0;
    unsigned char *key = mxpc_base64_decode(key_base64, strlen(key_base64), &keylen);
    if (!key || keylen == 0) {
        free(key);
        return -1;
    }
    struct mxpc_buf *s = &out->string_to_sign;
    s->len = 0;
    mxpc_buf_printf(s, "%s\n", req->method);
    for (size_t i = 0; i < sizeof standard_headers / sizeof *standard_headers; i++) {
        char *v = trimmed(standard_value(req, standard_headers[i]));
        /* versions 2015-02-21 and later: a zero Content-Length signs as empty */
        if (strcasecmp(standard_headers[i], "Content-Length") != 0 || strcmp(v, "0") != 0)
            mxpc_buf_puts(s, v);
        mxpc_buf_putc(s, '\n');
        free(v);
    }
    canonical_headers(s, req);
    mxpc_buf_printf(s, "/%s%s", account, *req->path ? req->path : "/");
    canonical_query(s, req->query);

    unsigned char mac[32];
    unsigned int maclen = 0;
    int ok = HMAC(EVP_sha256(), key, (int)keylen, (const unsigned char *)s->data, s->len, mac, &maclen) != NULL &&
             maclen == sizeof mac;
    OPENSSL_cleanse(key, keylen);
    free(key);
    if (!ok)
        return -1;
    char sig[45];
    EVP_EncodeBlock((unsigned char *)sig, mac, sizeof mac);
    out->authorization.len = 0;
    mxpc_buf_printf(&out->authorization, "SharedKey %s:%s", account, sig);
    return 0;
}

void mxpc_azure_sharedkey_result_free(struct mxpc_azure_sharedkey_result *r)
{
    mxpc_buf_free(&r->string_to_sign);
    mxpc_buf_free(&r->authorization);
}

void mxpc_azure_date(time_t t, char out[30])
{
    static const char days[][4] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
    static const char months[][4] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                     "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    struct tm tm;
    gmtime_r(&t, &tm);
    /* not strftime: %a and %b follow the locale */
    snprintf(out, 30, "%s, %02u %s %04u %02u:%02u:%02u GMT", days[(unsigned)tm.tm_wday % 7u],
             (unsigned)tm.tm_mday % 100u, months[(unsigned)tm.tm_mon % 12u], (unsigned)(tm.tm_year + 1900) % 10000u,
             (unsigned)tm.tm_hour % 100u, (unsigned)tm.tm_min % 100u, (unsigned)tm.tm_sec % 100u);
}
