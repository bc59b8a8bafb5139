/* The XML answers of S3 and STS (src/xml.c on expat, src/aws_sts.c), and
 * the JSON answers of the container-credentials endpoint and IMDS
 * (src/aws_credentials.c) and of Entra ID (src/azure_identity.c):
 * arbitrary bytes must be read or refused, never crash, overflow a fixed
 * buffer or leak. The first byte picks the parser (modulo 6):
 *   0  the walker and the capture; S3's <Error> (s3_parse_error: errors,
 *      and CompleteMultipartUpload's answer, an <Error> even with 200)
 *   1  STS's answers          2  the container-credentials and IMDS JSON
 *   3  a listing page (S3's ListObjectsV2, Azure's List Blobs), read twice
 *      into one page as the client reads page after page
 *   4  DeleteObjects' answer  5  Entra ID's token answer; JWT claims */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mxpc/aws.h"
#include "mxpc/azure_identity.h"
#include "mxpc/buf.h"
#include "mxpc/xml.h"
#include "s3_request.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void count_element(void *ud, const char *name, const char *parent, const char *text)
{
    size_t *n = ud;
    *n += strlen(name) + strlen(parent) + strlen(text);
}

static void on_record(struct mxpc_xml_capture *c)
{
    for (int i = 0; i < 3; i++)
        if (c->dest[i])
            c->dest[i][0] = '\0';
}

/* a fixed buffer a parser filled: terminated within its size */
static void check_string(const char *s, size_t cap)
{
    if (strnlen(s, cap) == cap)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    unsigned pick = data[0] % 6;
    data++;
    size--;
    char *text = malloc(size + 1); /* the JSON readers take a C string */
    memcpy(text, data, size);
    text[size] = '\0';
    if (pick == 0) {
        /* the walker and the capture S3's parsers use (errors, ListObjectsV2, ...) */
        size_t n = 0;
        (void)mxpc_xml_each(text, size, count_element, &n);
        char code[64], message[256], key[1024];
        struct mxpc_xml_capture c = {.names = {"Code", "Message", "Key"},
                                     .dest = {code, message, key},
                                     .size = {sizeof code, sizeof message, sizeof key},
                                     .record = "Contents",
                                     .on_record = on_record};
        on_record(&c);
        (void)mxpc_xml_each(text, size, mxpc_xml_capture_element, &c);
        struct mxpc_buf b = MXPC_BUF_INIT;
        (void)mxpc_xml_text(&b, text);
        mxpc_buf_free(&b);
        struct mxpc_buf body = {.data = text, .len = size};
        struct s3_xml_error x;
        memset(&x, 0, sizeof x);
        s3_parse_error(&body, &x);
        check_string(x.code, sizeof x.code);
        check_string(x.message, sizeof x.message);
        check_string(x.etag, sizeof x.etag);
    } else if (pick == 3) {
        static struct list_page p; /* kept over inputs: the client reuses it page after page */
        for (int page = 0; page < 2; page++) {
            if (s3_list_page_parse(&p, text, size) != 0)
                continue;
            for (size_t i = 0; i < p.n; i++) {
                if (p.objects[i].key >= p.strings.len || p.objects[i].etag >= p.strings.len ||
                    p.objects[i].modified >= p.strings.len || p.objects[i].size < 0)
                    abort();
                (void)strlen(p.strings.data + p.objects[i].key);
            }
            if (p.truncated && !p.token.len)
                abort();
        }
        if (size % 7 == 0) { /* now and then, the end of a listing */
            s3_list_page_free(&p);
            memset(&p, 0, sizeof p);
        }
    } else if (pick == 4) {
        struct delete_errors d;
        long n = s3_delete_result_parse(&d, text, size);
        if (n > 0) {
            check_string(d.first_key, sizeof d.first_key);
            check_string(d.first_code, sizeof d.first_code);
            check_string(d.first_message, sizeof d.first_message);
        }
    } else if (pick == 5) {
        struct mxpc_buf token = MXPC_BUF_INIT;
        time_t expires = 0, asked = 1700000000;
        char code[128], desc[512];
        if (mxpc_azure_token_answer(text, asked, &token, &expires, code, sizeof code, desc, sizeof desc)) {
            if (!token.len || expires <= asked || expires > asked + MXPC_AZURE_TOKEN_LIFE_MAX)
                abort();
        } else {
            check_string(code, sizeof code);
            check_string(desc, sizeof desc);
            if (strpbrk(desc, "\r\n"))
                abort();
        }
        mxpc_buf_free(&token);
        struct mxpc_jwt_claims cl;
        mxpc_jwt_claims(text, &cl);
    } else if (pick == 1) {
        struct mxpc_aws_credentials cred;
        memset(&cred, 0, sizeof cred);
        char code[64], message[256];
        (void)mxpc_sts_parse_response(text, size, &cred, code, sizeof code, message, sizeof message);
        mxpc_aws_credentials_clear(&cred);
    } else {
        struct mxpc_aws_credentials cred;
        memset(&cred, 0, sizeof cred);
        char err[512], out[256];
        (void)mxpc_aws_parse_container_json(text, &cred, err, sizeof err);
        mxpc_aws_credentials_clear(&cred);
        (void)mxpc_json_string_field(text, "Token", out, sizeof out);
        time_t t;
        (void)mxpc_aws_parse_time(text, &t);
    }
    free(text);
    return 0;
}
