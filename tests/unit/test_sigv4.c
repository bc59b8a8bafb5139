/* SigV4: every case of the AWS test suite (header and query signing must give
 * the expected canonical request, string to sign, signature and Authorization
 * header byte for byte), plus S3's own rules and the examples of the S3 API
 * reference. The suite's directory comes from the build (MXPC_SIGV4_SUITE);
 * a missing directory is a failure. */
#define _GNU_SOURCE
#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "mxpc/buf.h"
#include "mxpc/sigv4.h"

#ifndef MXPC_SIGV4_SUITE
#error "MXPC_SIGV4_SUITE must name the AWS SigV4 test suite directory"
#endif

/* Reads a file whole; NULL if it does not exist. */
static char *slurp(const char *dir, const char *name)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    struct mxpc_buf b = MXPC_BUF_INIT;
    char why[160];
    if (mxpc_buf_read_file(&b, path, 1 << 20, why, sizeof why) != 0) {
        mxpc_buf_free(&b);
        return NULL;
    }
    return mxpc_buf_take(&b);
}

static char *expected(const char *dir, const char *name)
{
    char *s = slurp(dir, name);
    if (!s)
        fail_msg("%s/%s is missing", dir, name);
    size_t n = strlen(s);
    while (n > 0 && (s[n - 1] == '\n' || s[n - 1] == '\r'))
        s[--n] = '\0';
    return s;
}

/* The string value of "key" in the small, flat context.json (NULL if absent). */
static char *json_string(const char *json, const char *key)
{
    char pat[128];
    snprintf(pat, sizeof pat, "\"%s\"", key);
    const char *p = strstr(json, pat);
    if (!p)
        return NULL;
    p = strchr(p + strlen(pat), ':');
    while (*++p == ' ')
        ;
    if (*p != '"') {
        size_t len = strcspn(p, ",\n}");
        return strndup(p, len);
    }
    const char *e = strchr(p + 1, '"');
    return strndup(p + 1, (size_t)(e - p - 1));
}

static int json_true(const char *json, const char *key)
{
    char *v = json_string(json, key);
    int t = v && strcmp(v, "true") == 0;
    free(v);
    return t;
}

struct parsed_request {
    char method[16];
    char *path;
    char *query;
    struct mxpc_sigv4_header headers[16];
    size_t nheaders;
    char *body;
    size_t body_len;
    char *owned[16]; /* folded header values */
};

/* request.txt: request line, headers (continuation lines join with a space),
 * a blank line, the body. */
static void parse_request(char *text, struct parsed_request *r)
{
    memset(r, 0, sizeof *r);
    char *line_end = strchr(text, '\n');
    assert_non_null(line_end);
    *line_end = '\0';
    char *sp1 = strchr(text, ' ');
    char *sp2 = strrchr(text, ' ');
    assert_true(sp1 && sp2 && sp2 > sp1);
    snprintf(r->method, sizeof r->method, "%.*s", (int)(sp1 - text), text);
    *sp2 = '\0';
    char *target = sp1 + 1;
    char *q = strchr(target, '?');
    if (q)
        *q = '\0';
    r->path = target;
    r->query = q ? q + 1 : NULL;

    char *p = line_end + 1;
    while (*p && *p != '\n') {
        char *e = strchr(p, '\n');
        if (e)
            *e = '\0';
        if ((*p == ' ' || *p == '\t') && r->nheaders > 0) {
            /* folded line: append to the previous value */
            struct mxpc_sigv4_header *h = &r->headers[r->nheaders - 1];
            struct mxpc_buf v = MXPC_BUF_INIT;
            mxpc_buf_printf(&v, "%s %s", h->value, p);
            assert_true(r->nheaders <= 16);
            free(r->owned[r->nheaders - 1]);
            r->owned[r->nheaders - 1] = mxpc_buf_take(&v);
            h->value = r->owned[r->nheaders - 1];
        } else {
            char *colon = strchr(p, ':');
            assert_non_null(colon);
            *colon = '\0';
            assert_true(r->nheaders < 16);
            r->headers[r->nheaders].name = p;
            r->headers[r->nheaders].value = colon + 1;
            r->nheaders++;
        }
        if (!e) {
            p += strlen(p);
            break;
        }
        p = e + 1;
    }
    if (*p == '\n')
        p++;
    r->body = p;
    r->body_len = strlen(p);
}

/* Runs one case in both modes; returns the number of failed comparisons. */
static int check_case(const char *dir)
{
    char *ctx = slurp(dir, "context.json");
    char *req_text = slurp(dir, "request.txt");
    assert_non_null(ctx);
    assert_non_null(req_text);
    struct parsed_request pr;
    parse_request(req_text, &pr);

    char *access = json_string(ctx, "access_key_id"), *secret = json_string(ctx, "secret_access_key");
    char *token = json_string(ctx, "token"), *region = json_string(ctx, "region");
    char *service = json_string(ctx, "service"), *ts = json_string(ctx, "timestamp");
    char *expires = json_string(ctx, "expiration_in_seconds");
    struct tm tm = {0};
    assert_non_null(strptime(ts, "%Y-%m-%dT%H:%M:%SZ", &tm));

    char body_hash[65];
    mxpc_sigv4_sha256_hex(pr.body, pr.body_len, body_hash);
    struct mxpc_sigv4_signer s = {
        .access_key = access,
        .secret_key = secret,
        .session_token = token,
        .region = region,
        .service = service,
        .time = timegm(&tm),
        .flags = (json_true(ctx, "normalize") ? MXPC_SIGV4_NORMALIZE_PATH : 0u) |
                 (json_true(ctx, "sign_body") ? MXPC_SIGV4_CONTENT_SHA256 : 0u) |
                 (json_true(ctx, "omit_session_token") ? MXPC_SIGV4_TOKEN_UNSIGNED : 0u),
    };
    struct mxpc_sigv4_request req = {
        .method = pr.method,
        .path = pr.path,
        .query = pr.query,
        .headers = pr.headers,
        .nheaders = pr.nheaders,
        .payload_hash = body_hash,
    };

    int failures = 0;
#define SAME(got, file)                                                                                        \
    do {                                                                                                       \
        char *want = expected(dir, file);                                                                      \
        if (strcmp((got), want) != 0) {                                                                        \
            print_error("%s/%s:\n--- expected\n%s\n--- got\n%s\n", dir, file, want, (got));                     \
            failures++;                                                                                        \
        }                                                                                                      \
        free(want);                                                                                            \
    } while (0)

    struct mxpc_sigv4_result h = MXPC_SIGV4_RESULT_INIT;
    assert_int_equal(mxpc_sigv4_sign(&s, &req, &h), 0);
    SAME(h.canonical_request.data, "header-canonical-request.txt");
    SAME(h.string_to_sign.data, "header-string-to-sign.txt");
    SAME(h.signature, "header-signature.txt");
    /* the Authorization line of the signed request */
    char *signed_req = expected(dir, "header-signed-request.txt");
    const char *auth = strstr(signed_req, "\nAuthorization:");
    assert_non_null(auth);
    auth += strlen("\nAuthorization:");
    size_t auth_len = strcspn(auth, "\r\n");
    if (strlen(h.authorization.data) != auth_len || strncmp(h.authorization.data, auth, auth_len) != 0) {
        print_error("%s: Authorization\n--- expected\n%.*s\n--- got\n%s\n", dir, (int)auth_len, auth,
                    h.authorization.data);
        failures++;
    }
    free(signed_req);
    mxpc_sigv4_result_free(&h);

    struct mxpc_sigv4_result q = MXPC_SIGV4_RESULT_INIT;
    s.flags &= ~(unsigned)MXPC_SIGV4_CONTENT_SHA256; /* a query signature has no header for it */
    assert_int_equal(mxpc_sigv4_presign(&s, &req, atol(expires), &q), 0);
    SAME(q.canonical_request.data, "query-canonical-request.txt");
    SAME(q.string_to_sign.data, "query-string-to-sign.txt");
    SAME(q.signature, "query-signature.txt");
    char want_sig[96];
    snprintf(want_sig, sizeof want_sig, "X-Amz-Signature=%s", q.signature);
    if (!strstr(q.query.data, want_sig))
        failures++;
    mxpc_sigv4_result_free(&q);
#undef SAME

    free(access);
    free(secret);
    free(token);
    free(region);
    free(service);
    free(ts);
    free(expires);
    for (size_t i = 0; i < 16; i++)
        free(pr.owned[i]);
    free(ctx);
    free(req_text);
    return failures;
}

static int name_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void aws_test_suite(void **state)
{
    (void)state;
    DIR *d = opendir(MXPC_SIGV4_SUITE);
    if (!d)
        fail_msg("the AWS SigV4 test suite is missing: %s", MXPC_SIGV4_SUITE);
    char *names[256];
    size_t n = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL && n < 256) {
        char path[1024];
        snprintf(path, sizeof path, "%s/%s/context.json", MXPC_SIGV4_SUITE, de->d_name);
        FILE *f = fopen(path, "r");
        if (f) {
            fclose(f);
            names[n++] = strdup(de->d_name);
        }
    }
    closedir(d);
    qsort(names, n, sizeof *names, name_cmp);
    /* the suite as vendored has 38 cases; fewer means a broken copy */
    assert_true(n >= 38);
    int failures = 0;
    for (size_t i = 0; i < n; i++) {
        char dir[1024];
        snprintf(dir, sizeof dir, "%s/%s", MXPC_SIGV4_SUITE, names[i]);
        int f = check_case(dir);
        if (f)
            print_error("FAILED case %s (%d mismatches)\n", names[i], f);
        failures += f;
        free(names[i]);
    }
    assert_int_equal(failures, 0);
}

/* --- S3 ------------------------------------------------------------------- */

static const struct mxpc_sigv4_signer s3_example = {
    .access_key = "AKIAIOSFODNN7EXAMPLE",
    .secret_key = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
    .region = "us-east-1",
    .service = "s3",
    .time = 1369353600, /* 2013-05-24T00:00:00Z */
    .flags = MXPC_SIGV4_CONTENT_SHA256,
};

/* The GET Object example of the S3 API reference (header signing). */
static void s3_get_object_example(void **state)
{
    (void)state;
    struct mxpc_sigv4_header h[] = {{"Host", "examplebucket.s3.amazonaws.com"}, {"Range", "bytes=0-9"}};
    struct mxpc_sigv4_request req = {"GET", "/test.txt", NULL, h, 2, MXPC_SIGV4_EMPTY_SHA256};
    struct mxpc_sigv4_result r = MXPC_SIGV4_RESULT_INIT;
    assert_int_equal(mxpc_sigv4_sign(&s3_example, &req, &r), 0);
    assert_string_equal(r.signature, "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41");
    assert_string_equal(r.authorization.data,
                        "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, "
                        "SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, "
                        "Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41");
    mxpc_sigv4_result_free(&r);
}

/* The PUT Object example: '$' in the key is encoded, the body hash signed. */
static void s3_put_object_example(void **state)
{
    (void)state;
    char hash[65];
    mxpc_sigv4_sha256_hex("Welcome to Amazon S3.", 21, hash);
    struct mxpc_sigv4_header h[] = {{"Host", "examplebucket.s3.amazonaws.com"},
                                    {"Date", "Fri, 24 May 2013 00:00:00 GMT"},
                                    {"x-amz-storage-class", "REDUCED_REDUNDANCY"}};
    struct mxpc_buf path = MXPC_BUF_INIT;
    mxpc_sigv4_uri_encode(&path, "/test$file.text", 15, 1);
    assert_string_equal(path.data, "/test%24file.text");
    struct mxpc_sigv4_request req = {"PUT", path.data, NULL, h, 3, hash};
    struct mxpc_sigv4_result r = MXPC_SIGV4_RESULT_INIT;
    assert_int_equal(mxpc_sigv4_sign(&s3_example, &req, &r), 0);
    assert_string_equal(r.signature, "98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd");
    mxpc_sigv4_result_free(&r);
    mxpc_buf_free(&path);
}

/* The presigned URL example: UNSIGNED-PAYLOAD, X-Amz-Expires, signature last. */
static void s3_presigned_url_example(void **state)
{
    (void)state;
    struct mxpc_sigv4_header h[] = {{"host", "examplebucket.s3.amazonaws.com"}};
    struct mxpc_sigv4_request req = {"GET", "/test.txt", NULL, h, 1, MXPC_SIGV4_UNSIGNED_PAYLOAD};
    struct mxpc_sigv4_signer s = s3_example;
    s.flags = 0;
    struct mxpc_sigv4_result r = MXPC_SIGV4_RESULT_INIT;
    assert_int_equal(mxpc_sigv4_presign(&s, &req, 86400, &r), 0);
    assert_string_equal(r.signature, "aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404");
    assert_string_equal(r.query.data,
                        "X-Amz-Algorithm=AWS4-HMAC-SHA256"
                        "&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20130524%2Fus-east-1%2Fs3%2Faws4_request"
                        "&X-Amz-Date=20130524T000000Z&X-Amz-Expires=86400&X-Amz-SignedHeaders=host"
                        "&X-Amz-Signature=aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404");
    size_t len = r.canonical_request.len;
    assert_true(len > 17);
    assert_string_equal(r.canonical_request.data + len - 17, "\nUNSIGNED-PAYLOAD");
    /* out-of-range expiry is refused */
    assert_int_equal(mxpc_sigv4_presign(&s, &req, 0, &r), -1);
    assert_int_equal(mxpc_sigv4_presign(&s, &req, 604801, &r), -1);
    mxpc_sigv4_result_free(&r);
}

static char *canonical_path_of(const char *path, unsigned flags)
{
    struct mxpc_sigv4_header h[] = {{"host", "h"}};
    struct mxpc_sigv4_request req = {"GET", path, NULL, h, 1, NULL};
    struct mxpc_sigv4_signer s = s3_example;
    s.flags = flags;
    struct mxpc_sigv4_result r = MXPC_SIGV4_RESULT_INIT;
    assert_int_equal(mxpc_sigv4_sign(&s, &req, &r), 0);
    char *line = strchr(r.canonical_request.data, '\n') + 1;
    char *copy = strndup(line, strcspn(line, "\n"));
    mxpc_sigv4_result_free(&r);
    return copy;
}

/* S3 signs the path as sent: no dot-segment removal, no double encoding. */
static void s3_path_is_not_normalized(void **state)
{
    (void)state;
    struct {
        const char *path;
        const char *s3;
        const char *generic;
    } cases[] = {
        {"/bucket/a//./b/../c", "/bucket/a//./b/../c", "/bucket/a/c"},
        {"/bucket/a%20b", "/bucket/a%20b", "/bucket/a%2520b"},
        {"/bucket/key/", "/bucket/key/", "/bucket/key/"},
        {"", "/", "/"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *p = canonical_path_of(cases[i].path, MXPC_SIGV4_CONTENT_SHA256);
        assert_string_equal(p, cases[i].s3);
        free(p);
        p = canonical_path_of(cases[i].path, MXPC_SIGV4_NORMALIZE_PATH);
        assert_string_equal(p, cases[i].generic);
        free(p);
    }
}

/* Header signing for S3: x-amz-content-sha256 carries UNSIGNED-PAYLOAD and is
 * signed; the session token is signed as x-amz-security-token. */
static void s3_unsigned_payload_and_token(void **state)
{
    (void)state;
    struct mxpc_sigv4_header h[] = {{"Host", "127.0.0.1:57480"}};
    struct mxpc_sigv4_request req = {"PUT", "/b/k", NULL, h, 1, MXPC_SIGV4_UNSIGNED_PAYLOAD};
    struct mxpc_sigv4_signer s = s3_example;
    s.session_token = "TOKEN/+=";
    struct mxpc_sigv4_result r = MXPC_SIGV4_RESULT_INIT;
    assert_int_equal(mxpc_sigv4_sign(&s, &req, &r), 0);
    assert_string_equal(r.canonical_request.data, "PUT\n/b/k\n\n"
                                                  "host:127.0.0.1:57480\n"
                                                  "x-amz-content-sha256:UNSIGNED-PAYLOAD\n"
                                                  "x-amz-date:20130524T000000Z\n"
                                                  "x-amz-security-token:TOKEN/+=\n\n"
                                                  "host;x-amz-content-sha256;x-amz-date;x-amz-security-token\n"
                                                  "UNSIGNED-PAYLOAD");
    assert_non_null(strstr(r.authorization.data,
                           "SignedHeaders=host;x-amz-content-sha256;x-amz-date;x-amz-security-token, "));
    /* a different secret gives a different signature */
    char first[65];
    memcpy(first, r.signature, sizeof first);
    s.secret_key = "another";
    assert_int_equal(mxpc_sigv4_sign(&s, &req, &r), 0);
    assert_string_not_equal(first, r.signature);
    /* incomplete signers are refused */
    s.access_key = "";
    assert_int_equal(mxpc_sigv4_sign(&s, &req, &r), -1);
    mxpc_sigv4_result_free(&r);
}

/* The RDS IAM token is a presigned rds-db:connect request: generic presigning
 * with the caller's query kept and sorted in. */
static void rds_style_presign(void **state)
{
    (void)state;
    struct mxpc_sigv4_header h[] = {{"host", "db.example.com:5432"}};
    struct mxpc_sigv4_request req = {"GET", "/", "Action=connect&DBUser=mx%20user", h, 1, NULL};
    struct mxpc_sigv4_signer s = s3_example;
    s.service = "rds-db";
    s.flags = MXPC_SIGV4_NORMALIZE_PATH;
    struct mxpc_sigv4_result r = MXPC_SIGV4_RESULT_INIT;
    assert_int_equal(mxpc_sigv4_presign(&s, &req, 900, &r), 0);
    assert_true(strncmp(r.query.data, "Action=connect&DBUser=mx%20user&X-Amz-Algorithm=AWS4-HMAC-SHA256&", 65) ==
                0);
    assert_non_null(strstr(r.query.data, "%2Frds-db%2Faws4_request&X-Amz-Date=20130524T000000Z&X-Amz-Expires=900"));
    assert_non_null(strstr(r.string_to_sign.data, "20130524/us-east-1/rds-db/aws4_request"));
    mxpc_sigv4_result_free(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(aws_test_suite),
        cmocka_unit_test(s3_get_object_example),
        cmocka_unit_test(s3_put_object_example),
        cmocka_unit_test(s3_presigned_url_example),
        cmocka_unit_test(s3_path_is_not_normalized),
        cmocka_unit_test(s3_unsigned_payload_and_token),
        cmocka_unit_test(rds_style_presign),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
