/* Azure Shared Key: every request of azure-sharedkey-vectors.txt (signatures
 * made by the Azure SDK for Python's signing policy, written by
 * azure-sharedkey-vectors.py) gives the same string to sign and Authorization
 * header byte for byte; plus what the table cannot show: header order, a key
 * that is not base64, missing parts, x-ms-date's format. The table comes from
 * the build (MXPC_AZURE_SHAREDKEY_VECTORS); a missing file is a failure. */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "mxpc/azure_sharedkey.h"
#include "mxpc/buf.h"

#ifndef MXPC_AZURE_SHAREDKEY_VECTORS
#error "MXPC_AZURE_SHAREDKEY_VECTORS must name tests/unit/azure-sharedkey-vectors.txt"
#endif

#define MAX_HEADERS 24

struct vector {
    char name[160];
    char method[16];
    char path[256];
    char query[256];
    struct mxpc_azure_header headers[MAX_HEADERS];
    char header_text[MAX_HEADERS][320];
    size_t nheaders;
    char sts[2048];
    char auth[128];
};

/* "\n" and "\\" as the generator writes them */
static void unescape(const char *in, char *out, size_t cap)
{
    size_t n = 0;
    for (; *in && n + 1 < cap; in++) {
        if (*in == '\\' && in[1] == 'n') {
            out[n++] = '\n';
            in++;
        } else if (*in == '\\' && in[1] == '\\') {
            out[n++] = '\\';
            in++;
        } else {
            out[n++] = *in;
        }
    }
    out[n] = '\0';
}

static void check_vector(const char *account, const char *key, struct vector *v)
{
    struct mxpc_azure_sharedkey_request req = {v->method, v->path, v->query, v->headers, v->nheaders};
    struct mxpc_azure_sharedkey_result r = MXPC_AZURE_SHAREDKEY_RESULT_INIT;
    if (mxpc_azure_sharedkey_sign(account, key, &req, &r) != 0)
        fail_msg("%s: refused", v->name);
    if (strcmp(r.string_to_sign.data, v->sts) != 0)
        fail_msg("%s: string to sign\n got: %s\nwant: %s", v->name, r.string_to_sign.data, v->sts);
    if (strcmp(r.authorization.data, v->auth) != 0)
        fail_msg("%s: authorization %s, want %s", v->name, r.authorization.data, v->auth);
    mxpc_azure_sharedkey_result_free(&r);
}

static void sdk_vectors(void **state)
{
    (void)state;
    FILE *f = fopen(MXPC_AZURE_SHAREDKEY_VECTORS, "r");
    if (!f)
        fail_msg("%s is missing", MXPC_AZURE_SHAREDKEY_VECTORS);
    char line[4096], account[64] = "", key[128] = "";
    struct vector *v = calloc(1, sizeof *v);
    assert_non_null(v);
    int cases = 0;
    while (fgets(line, sizeof line, f)) {
        line[strcspn(line, "\n")] = '\0';
        char *arg = strchr(line, ' ');
        arg = arg ? arg + 1 : line + strlen(line);
        if (line[0] == '#' || line[0] == '\0')
            continue;
        if (strncmp(line, "account ", 8) == 0)
            snprintf(account, sizeof account, "%s", arg);
        else if (strncmp(line, "key ", 4) == 0)
            snprintf(key, sizeof key, "%s", arg);
        else if (strncmp(line, "case ", 5) == 0) {
            memset(v, 0, sizeof *v);
            snprintf(v->name, sizeof v->name, "%s", arg);
        } else if (strncmp(line, "method ", 7) == 0)
            snprintf(v->method, sizeof v->method, "%s", arg);
        else if (strncmp(line, "path ", 5) == 0)
            snprintf(v->path, sizeof v->path, "%s", arg);
        else if (strncmp(line, "query ", 6) == 0)
            snprintf(v->query, sizeof v->query, "%s", arg);
        else if (strncmp(line, "header ", 7) == 0) {
            assert_true(v->nheaders < MAX_HEADERS);
            char *h = v->header_text[v->nheaders];
            snprintf(h, sizeof v->header_text[0], "%s", arg);
            char *colon = strstr(h, ": ");
            if (!colon)
                colon = strchr(h, ':'); /* an empty value: "name:" */
            assert_non_null(colon);
            *colon = '\0';
            v->headers[v->nheaders].name = h;
            v->headers[v->nheaders].value = colon[1] == ' ' ? colon + 2 : colon + 1;
            v->nheaders++;
        } else if (strncmp(line, "sts ", 4) == 0)
            unescape(arg, v->sts, sizeof v->sts);
        else if (strncmp(line, "auth ", 5) == 0)
            snprintf(v->auth, sizeof v->auth, "%s", arg);
        else if (strcmp(line, "end") == 0) {
            check_vector(account, key, v);
            cases++;
        } else
            fail_msg("unexpected line in the vectors: %s", line);
    }
    fclose(f);
    free(v);
    if (cases < 20)
        fail_msg("only %d cases in %s", cases, MXPC_AZURE_SHAREDKEY_VECTORS);
}

static const char *KEY = "BwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyAhIiMkJSYnKCkqKywtLi8wMTIzNDU2Nzg5Ojs8PT4/QEFCQ0RFRg==";

static char *sign(const char *key, const struct mxpc_azure_header *h, size_t n, const char *query)
{
    struct mxpc_azure_sharedkey_request req = {"GET", "/c/b", query, h, n};
    struct mxpc_azure_sharedkey_result r = MXPC_AZURE_SHAREDKEY_RESULT_INIT;
    char *out = NULL;
    if (mxpc_azure_sharedkey_sign("acct", key, &req, &r) == 0)
        out = strdup(r.authorization.data);
    mxpc_azure_sharedkey_result_free(&r);
    return out;
}

static void header_order_and_case_do_not_matter(void **state)
{
    (void)state;
    struct mxpc_azure_header a[] = {{"x-ms-version", "2021-08-06"}, {"X-MS-Date", "Sun, 06 Dec 2026 12:00:00 GMT"},
                                    {"x-ms-meta-a1", "x"}, {"Content-Type", "text/plain"}};
    struct mxpc_azure_header b[] = {{"content-type", "text/plain"}, {"x-ms-meta-a1", " x "},
                                    {"x-ms-date", "Sun, 06 Dec 2026 12:00:00 GMT"}, {"X-Ms-Version", "2021-08-06"}};
    char *sa = sign(KEY, a, 4, "comp=list&restype=container");
    char *sb = sign(KEY, b, 4, "restype=container&COMP=list");
    assert_non_null(sa);
    assert_string_equal(sa, sb);
    free(sa);
    free(sb);
}

static void refuses_what_cannot_be_signed(void **state)
{
    (void)state;
    struct mxpc_azure_header h[] = {{"x-ms-date", "Sun, 06 Dec 2026 12:00:00 GMT"}};
    assert_null(sign("not base64!", h, 1, NULL));
    assert_null(sign("", h, 1, NULL));
    struct mxpc_azure_sharedkey_result r = MXPC_AZURE_SHAREDKEY_RESULT_INIT;
    struct mxpc_azure_sharedkey_request no_method = {NULL, "/c", NULL, h, 1};
    assert_int_equal(mxpc_azure_sharedkey_sign("acct", KEY, &no_method, &r), -1);
    struct mxpc_azure_sharedkey_request ok = {"GET", "/c", NULL, h, 1};
    assert_int_equal(mxpc_azure_sharedkey_sign("", KEY, &ok, &r), -1);
    assert_int_equal(mxpc_azure_sharedkey_sign("acct", KEY, &ok, &r), 0);
    /* a result can be reused */
    assert_int_equal(mxpc_azure_sharedkey_sign("acct", KEY, &ok, &r), 0);
    assert_non_null(strstr(r.string_to_sign.data, "\n/acct/c"));
    assert_null(strstr(r.string_to_sign.data + 1, "GET\n"));
    mxpc_azure_sharedkey_result_free(&r);
}

static void x_ms_date_is_rfc1123_in_gmt(void **state)
{
    (void)state;
    char d[30];
    mxpc_azure_date(1796558400, d); /* 2026-12-06T12:00:00Z */
    assert_string_equal(d, "Sun, 06 Dec 2026 12:00:00 GMT");
    mxpc_azure_date(0, d);
    assert_string_equal(d, "Thu, 01 Jan 1970 00:00:00 GMT");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(sdk_vectors),
        cmocka_unit_test(header_order_and_case_do_not_matter),
        cmocka_unit_test(refuses_what_cannot_be_signed),
        cmocka_unit_test(x_ms_date_is_rfc1123_in_gmt),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
