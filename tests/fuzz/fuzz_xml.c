/* The XML answers of S3 and STS (src/xml.c on expat, src/aws_sts.c), and
 * the JSON answers of the container-credentials endpoint and IMDS
 * (src/aws_credentials.c): arbitrary bytes must be read or refused, never
 * crash, overflow a fixed buffer or leak. The first byte picks the parser. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mxpc/aws.h"
#include "mxpc/buf.h"
#include "mxpc/xml.h"

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

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    unsigned pick = data[0] % 3;
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
