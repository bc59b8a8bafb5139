/* Azure Storage Shared Key signing: pure functions, no I/O.
 *
 * The Authorization header "SharedKey ACCOUNT:SIGNATURE" of a Blob request,
 * SIGNATURE = base64(HMAC-SHA256(base64-decoded account key, string to sign)),
 * for service versions 2009-09-19 and later. The string to sign:
 *
 *   VERB \n Content-Encoding \n Content-Language \n Content-Length (empty for 0)
 *   \n Content-MD5 \n Content-Type \n Date \n If-Modified-Since \n If-Match \n
 *   If-None-Match \n If-Unmodified-Since \n Range \n
 *   CanonicalizedHeaders: every x-ms-* header, name lowercased, value trimmed,
 *     "name:value\n", sorted by name the way the Azure SDKs sort them ('-'
 *     before '_' before digits before letters); a repeated header once, its
 *     values joined by ','
 *   CanonicalizedResource: "/" ACCOUNT PATH (the path as sent, percent-encoded;
 *     "/" when empty), then for each query parameter, sorted by lowercased
 *     name, "\nname:value" with the value percent-decoded; a parameter given
 *     several times once, its values sorted and joined by ','
 *
 * The caller sends x-ms-date (mxpc_azure_date) and x-ms-version among the
 * headers it passes, and passes every header it sends that is signed.
 * tests/unit/test_azure_sharedkey.c checks it against signatures made by the
 * Azure SDK for Python. */
#ifndef MXPC_AZURE_SHAREDKEY_H
#define MXPC_AZURE_SHAREDKEY_H

#include <stddef.h>
#include <time.h>

#include "mxpc/buf.h"

struct mxpc_azure_header {
    const char *name; /* any case */
    const char *value;
};

struct mxpc_azure_sharedkey_request {
    const char *method;
    const char *path;  /* as sent, percent-encoded: "/container/a%20b" (Azurite: "/account/container/...") */
    const char *query; /* as sent, without '?'; NULL or "" when none */
    const struct mxpc_azure_header *headers;
    size_t nheaders;
};

struct mxpc_azure_sharedkey_result {
    struct mxpc_buf string_to_sign;
    struct mxpc_buf authorization; /* "SharedKey ACCOUNT:SIGNATURE" */
};

#define MXPC_AZURE_SHAREDKEY_RESULT_INIT {MXPC_BUF_INIT, MXPC_BUF_INIT}

/* 0, or -1 when the request cannot be signed: no method, path or account, or
 * a key that is not base64 (out->authorization then stays empty). `out` must
 * be initialized with MXPC_AZURE_SHAREDKEY_RESULT_INIT and released with
 * mxpc_azure_sharedkey_result_free. */
int mxpc_azure_sharedkey_sign(const char *account, const char *key_base64,
                              const struct mxpc_azure_sharedkey_request *req,
                              struct mxpc_azure_sharedkey_result *out);
void mxpc_azure_sharedkey_result_free(struct mxpc_azure_sharedkey_result *r);

/* The x-ms-date value of time t: RFC 1123, "Sun, 06 Dec 2026 12:00:00 GMT". */
void mxpc_azure_date(time_t t, char out[30]);

#endif
