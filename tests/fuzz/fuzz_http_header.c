/* HTTP response header lines as the transport hands them to the S3/Azure
 * engine (s3_response_header, src/s3_request.c: what its curl header
 * callback calls): the input is cut into lines after each '\n', as libcurl
 * delivers them, and fed in order to one request. What the engine keeps
 * must be bounded, NUL-terminated, free of control characters (an ETag goes
 * back in If-Match and in a completion's XML, an error code into messages),
 * and a Content-Range total -1 or a whole number. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "s3_request.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_value(const char *v, size_t cap)
{
    size_t n = strnlen(v, cap);
    if (n == cap)
        abort(); /* not terminated */
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)v[i] < 0x20 || v[i] == 0x7f)
            abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct request r; /* large: once, cleared per input */
    memset(&r, 0, sizeof r);
    r.total_size = -1;
    size_t at = 0;
    while (at < size) {
        const uint8_t *nl = memchr(data + at, '\n', size - at);
        size_t len = nl ? (size_t)(nl - (data + at)) + 1 : size - at;
        /* each line in its own allocation, so that a read past it is seen */
        char *line = malloc(len ? len : 1);
        memcpy(line, data + at, len);
        s3_response_header(&r, line, len);
        free(line);
        check_value(r.etag, sizeof r.etag);
        check_value(r.ms_error_code, sizeof r.ms_error_code);
        if (r.total_size < -1)
            abort();
        at += len;
    }
    return 0;
}
