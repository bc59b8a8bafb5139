/* The response header lines the S3/Azure engine keeps (s3_response_header,
 * src/s3_request.c): ETag, x-ms-error-code, a Content-Range's total. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "s3_request.h"

static void feed(struct request *r, const char *line)
{
    s3_response_header(r, line, strlen(line));
}

static void new_request(struct request *r)
{
    memset(r, 0, sizeof *r);
    r->total_size = -1;
}

static void values_are_kept_without_blanks(void **state)
{
    (void)state;
    struct request r;
    new_request(&r);
    feed(&r, "HTTP/1.1 206 Partial Content\r\n");
    feed(&r, "etag:  \"9b2cf535f27731c974343645a3985328\" \r\n");
    feed(&r, "X-MS-Error-Code:\tBlobNotFound\r\n");
    feed(&r, "Content-Range: bytes 0-9/12345\r\n");
    assert_string_equal(r.etag, "\"9b2cf535f27731c974343645a3985328\"");
    assert_string_equal(r.ms_error_code, "BlobNotFound");
    assert_int_equal(r.total_size, 12345);
    feed(&r, "HTTP/1.1 200 OK\r\n"); /* a new response forgets the last one's */
    assert_string_equal(r.etag, "");
    assert_string_equal(r.ms_error_code, "");
    assert_int_equal(r.total_size, -1);
}

/* A total that is not all digits, or does not fit int64, is unknown: it
 * used to be read up to its first non-digit, or cut at 18 digits. */
static void a_content_range_total_is_a_whole_number_or_unknown(void **state)
{
    (void)state;
    static const char *bad[] = {
        "Content-Range: bytes 0-9/99999999999999999999\r\n", /* past int64 */
        "Content-Range: bytes 0-9/9223372036854775808\r\n",  /* INT64_MAX + 1 */
        "Content-Range: bytes 0-9/12abc\r\n",
        "Content-Range: bytes 0-9/*\r\n",
        "Content-Range: bytes 0-9/\r\n",
        "Content-Range: bytes 0-9\r\n",
        "Content-Range: bytes 0-9/1 2\r\n",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        struct request r;
        new_request(&r);
        feed(&r, "Content-Range: bytes 0-9/10\r\n");
        feed(&r, bad[i]);
        assert_int_equal(r.total_size, -1);
    }
    struct request r;
    new_request(&r);
    feed(&r, "Content-Range: bytes 0-9/9223372036854775807\r\n");
    assert_true(r.total_size == INT64_MAX);
    feed(&r, "Content-Range: bytes */0\r\n");
    assert_int_equal(r.total_size, 0);
}

/* A value with a control character inside (a bare CR, a NUL, an escape) is
 * no ETag to send back in If-Match or a completion, nor an error code to
 * show; an ETag too long for the engine is none either (it was cut). */
static void values_with_control_characters_or_too_long_are_dropped(void **state)
{
    (void)state;
    struct request r;
    new_request(&r);
    feed(&r, "ETag: \"abc\"\r\n");
    feed(&r, "ETag: \"abc\"\rX-Injected: 1\r\n");
    assert_string_equal(r.etag, "");
    s3_response_header(&r, "ETag: \"a\0b\"\r\n", 13);
    assert_string_equal(r.etag, "");
    feed(&r, "x-ms-error-code: Blob\x1b[2JNotFound\r\n");
    assert_string_equal(r.ms_error_code, "");
    char line[300];
    memset(line, 'e', sizeof line);
    memcpy(line, "ETag: ", 6);
    strcpy(line + 6 + 128, "\r\n");
    feed(&r, line);
    assert_string_equal(r.etag, "");
    strcpy(line + 6 + 127, "\r\n");
    feed(&r, line);
    assert_int_equal(strlen(r.etag), 127);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(values_are_kept_without_blanks),
        cmocka_unit_test(a_content_range_total_is_a_whole_number_or_unknown),
        cmocka_unit_test(values_with_control_characters_or_too_long_are_dropped),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
