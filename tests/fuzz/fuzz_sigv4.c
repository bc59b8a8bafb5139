/* SigV4 canonicalisation (src/sigv4.c) of arbitrary paths, queries and
 * header values. The input is split at newlines: flags, method, path, query,
 * then header names and values in turn. Signing must not crash, and signing
 * the same request twice must give the same signature (header and query). */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mxpc/sigv4.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_FIELDS 20

static void same(const struct mxpc_sigv4_result *a, const struct mxpc_sigv4_result *b, const char *what)
{
    if (strcmp(a->signature, b->signature) != 0) {
        fprintf(stderr, "sigv4: %s: two signatures of the same request differ\n", what);
        abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    unsigned bits = data[0];
    char *text = malloc(size);
    memcpy(text, data + 1, size - 1);
    text[size - 1] = '\0';
    char *field[MAX_FIELDS];
    size_t n = 0;
    for (char *p = text; n < MAX_FIELDS;) {
        field[n++] = p;
        char *nl = strchr(p, '\n');
        if (!nl)
            break;
        *nl = '\0';
        p = nl + 1;
    }
    struct mxpc_sigv4_header headers[MAX_FIELDS / 2];
    size_t nh = 0;
    for (size_t i = 3; i + 1 < n; i += 2)
        headers[nh++] = (struct mxpc_sigv4_header){field[i], field[i + 1]};
    struct mxpc_sigv4_request req = {
        .method = field[0],
        .path = n > 1 ? field[1] : "/",
        .query = n > 2 ? field[2] : NULL,
        .headers = headers,
        .nheaders = nh,
        .payload_hash = bits & 4u ? MXPC_SIGV4_UNSIGNED_PAYLOAD : NULL,
    };
    struct mxpc_sigv4_signer s = {
        .access_key = "AKIDEXAMPLE",
        .secret_key = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
        .session_token = bits & 8u ? "token" : NULL,
        .region = "us-east-1",
        .service = bits & 1u ? "rds-db" : "s3",
        .time = 1440938160,
        .flags = bits & 7u,
    };
    struct mxpc_sigv4_result a = MXPC_SIGV4_RESULT_INIT, b = MXPC_SIGV4_RESULT_INIT;
    int ra = mxpc_sigv4_sign(&s, &req, &a), rb = mxpc_sigv4_sign(&s, &req, &b);
    if (ra != rb) {
        fprintf(stderr, "sigv4: signing the same request twice: %d then %d\n", ra, rb);
        abort();
    }
    if (ra == 0)
        same(&a, &b, "header signing");
    mxpc_sigv4_result_free(&a);
    mxpc_sigv4_result_free(&b);
    struct mxpc_sigv4_result c = MXPC_SIGV4_RESULT_INIT, d = MXPC_SIGV4_RESULT_INIT;
    ra = mxpc_sigv4_presign(&s, &req, 900, &c);
    rb = mxpc_sigv4_presign(&s, &req, 900, &d);
    if (ra != rb) {
        fprintf(stderr, "sigv4: presigning the same request twice: %d then %d\n", ra, rb);
        abort();
    }
    if (ra == 0)
        same(&c, &d, "presigning");
    mxpc_sigv4_result_free(&c);
    mxpc_sigv4_result_free(&d);

    /* the helpers on the whole input */
    struct mxpc_buf e = MXPC_BUF_INIT, f = MXPC_BUF_INIT;
    mxpc_sigv4_uri_encode(&e, (const char *)data, size, data[0] & 1);
    mxpc_sigv4_uri_decode(&f, e.data ? e.data : "", e.len);
    if (f.len != size || (size > 0 && memcmp(f.data, data, size) != 0)) {
        fprintf(stderr, "sigv4: decoding an encoded string does not give it back\n");
        abort();
    }
    mxpc_buf_free(&e);
    mxpc_buf_free(&f);
    size_t nq = 0;
    struct mxpc_query_param *q = mxpc_sigv4_query_parse(field[0], &nq);
    mxpc_sigv4_query_free(q, nq);
    free(text);
    return 0;
}
