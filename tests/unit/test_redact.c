/* Redaction: no registered secret or credential pattern survives. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "mxpc/log.h"

static int teardown(void **state)
{
    (void)state;
    mxpc_redact_clear();
    return 0;
}

static void assert_redacts(const char *in, const char *expected)
{
    char *out = mxpc_redact(in);
    assert_string_equal(out, expected);
    free(out);
}

static void registered_secret_is_masked_everywhere(void **state)
{
    (void)state;
    mxpc_redact_add("s3cr3t");
    assert_redacts("pw s3cr3t and again s3cr3t.", "pw *** and again ***.");
}

static void longer_secret_wins_over_its_prefix(void **state)
{
    (void)state;
    mxpc_redact_add("abc");
    mxpc_redact_add("abcdef");
    assert_redacts("x abcdef y abc", "x *** y ***");
}

static void empty_secret_is_ignored(void **state)
{
    (void)state;
    mxpc_redact_add("");
    mxpc_redact_add(NULL);
    assert_redacts("nothing to hide", "nothing to hide");
}

static void credential_patterns_are_masked(void **state)
{
    (void)state;
    assert_redacts("host=db password=hunter2 user=x", "host=db password=*** user=x");
    assert_redacts("postgresql://app:hunter2@db:5432/x", "postgresql://app:***@db:5432/x");
    assert_redacts("Authorization: AWS4-HMAC-SHA256 Credential=AK/x, Signature=ab\nnext",
                   "Authorization: ***\nnext");
    assert_redacts("GET /b/k?X-Amz-Credential=AK%2F1&X-Amz-Signature=deadbeef&x=1",
                   "GET /b/k?X-Amz-Credential=***&X-Amz-Signature=***&x=1");
    assert_redacts("https://host/path@x no-userinfo", "https://host/path@x no-userinfo");
}

static void json_log_line_redacts_fields_and_escapes(void **state)
{
    (void)state;
    char *buf = NULL;
    size_t len = 0;
    FILE *mem = open_memstream(&buf, &len);
    mxpc_log_set_stream(mem);
    mxpc_log_set_format(MXPC_LOG_JSON);
    mxpc_redact_add("pa\"ss");
    struct mxpc_log_field f[] = {{"user", "app"}, {"detail", "pw is pa\"ss"}};
    mxpc_log_fields(MXPC_LOG_INFO, "connect \"db\"", f, 2);
    mxpc_log_set_stream(NULL);
    mxpc_log_set_format(MXPC_LOG_TEXT);
    fclose(mem);
    assert_non_null(strstr(buf, "\"level\":\"info\",\"msg\":\"connect \\\"db\\\"\""));
    assert_non_null(strstr(buf, "\"user\":\"app\",\"detail\":\"pw is ***\"}"));
    assert_null(strstr(buf, "pa\\\"ss"));
    free(buf);
}

static void text_log_respects_level(void **state)
{
    (void)state;
    char *buf = NULL;
    size_t len = 0;
    FILE *mem = open_memstream(&buf, &len);
    mxpc_log_set_stream(mem);
    mxpc_log_set_level(MXPC_LOG_WARN);
    mxpc_log(MXPC_LOG_INFO, "hidden %d", 1);
    mxpc_log(MXPC_LOG_WARN, "shown %d", 2);
    mxpc_log_set_level(MXPC_LOG_INFO);
    mxpc_log_set_stream(NULL);
    fclose(mem);
    assert_string_equal(buf, "warn: shown 2\n");
    free(buf);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(registered_secret_is_masked_everywhere, teardown),
        cmocka_unit_test_teardown(longer_secret_wins_over_its_prefix, teardown),
        cmocka_unit_test_teardown(empty_secret_is_ignored, teardown),
        cmocka_unit_test_teardown(credential_patterns_are_masked, teardown),
        cmocka_unit_test_teardown(json_log_line_redacts_fields_and_escapes, teardown),
        cmocka_unit_test_teardown(text_log_respects_level, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
