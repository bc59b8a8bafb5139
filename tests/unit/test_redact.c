/* Redaction: no registered secret or credential pattern survives. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "mxpc/log.h"

static int teardown(void **state)
{
    (void)state;
    mxpc_redact_clear();
    return 0;
}

/* fn(in) == expected, for mxpc_redact and mxpc_escape_string */
static void assert_maps(char *(*fn)(const char *), const char *in, const char *expected)
{
    char *out = fn(in);
    assert_string_equal(out, expected);
    free(out);
}
#define assert_redacts(in, expected) assert_maps(mxpc_redact, in, expected)
#define assert_escapes(in, expected) assert_maps(mxpc_escape_string, in, expected)

/* Log lines written between capture_start and capture_end (which returns
 * them; the caller frees them). */
static FILE *capture_mem;
static char *capture_buf;
static size_t capture_len;
static void capture_start(void)
{
    capture_mem = open_memstream(&capture_buf, &capture_len);
    mxpc_log_set_stream(capture_mem);
}
static char *capture_end(void)
{
    mxpc_log_set_stream(NULL);
    fclose(capture_mem);
    return capture_buf;
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

/* Runs `fn` in a child process that the alarm ends after `seconds`: a
 * redaction that never returns fails the test instead of hanging it. */
static void in_child_within(unsigned seconds, void (*fn)(void))
{
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        alarm(seconds);
        fn();
        _exit(0);
    }
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    if (WIFSIGNALED(status))
        fail_msg("the redaction was killed by signal %d (did not finish within %u s)", WTERMSIG(status), seconds);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
}

/* in a child: exit 1 (with a message) unless redact(in) == expected */
static void child_expect(const char *in, const char *expected)
{
    char *out = mxpc_redact(in);
    if (strcmp(out, expected) != 0) {
        fprintf(stderr, "redact(\"%s\") = \"%s\", expected \"%s\"\n", in, out, expected);
        _exit(1);
    }
    free(out);
}

static void secrets_inside_the_mask(void)
{
    mxpc_redact_add("*");
    child_expect("password is *", "password is ***");
    child_expect("a * b ** c", "a *** b *** c");
    mxpc_redact_clear();
    mxpc_redact_add("**");
    mxpc_redact_add("***");
    mxpc_redact_add("x*");
    child_expect("x** and ***** and x", "*** and *** and x");
    mxpc_redact_clear();
}

static void a_secret_inside_the_mask_terminates(void **state)
{
    (void)state;
    in_child_within(10, secrets_inside_the_mask);
}

static void overlapping_secrets_are_masked_as_one(void **state)
{
    (void)state;
    mxpc_redact_add("abc");
    mxpc_redact_add("bcd");
    /* every byte of every occurrence is hidden, also where they overlap */
    assert_redacts("x abcd y", "x *** y");
    assert_redacts("abcabc", "***");
    assert_redacts("", "");
}

/* --- fuzzing against a plain reference --------------------------------------- */

static unsigned long long rng_state = 0x9e3779b97f4a7c15ULL;
static unsigned rnd(unsigned n)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (unsigned)(rng_state % n);
}

/* A few letters and the mask's own character, so secrets overlap each other,
 * repeat, and are parts of the mask; no credential patterns can form. */
static void random_text(char *out, size_t max_len, size_t min_len)
{
    static const char alphabet[] = "ab*c";
    size_t n = min_len + rnd((unsigned)(max_len - min_len + 1));
    for (size_t i = 0; i < n; i++)
        out[i] = alphabet[rnd(sizeof alphabet - 1)];
    out[n] = '\0';
}

/* Every byte inside an occurrence of a secret in the original text is masked;
 * a run of such bytes becomes one mask. */
static char *reference_redact(const char *text, char secrets[][8], size_t nsecrets)
{
    size_t n = strlen(text);
    char *covered = calloc(n + 1, 1);
    for (size_t s = 0; s < nsecrets; s++) {
        size_t m = strlen(secrets[s]);
        if (m == 0)
            continue;
        for (size_t i = 0; i + m <= n; i++)
            if (memcmp(text + i, secrets[s], m) == 0)
                memset(covered + i, 1, m);
    }
    struct mxpc_buf out = MXPC_BUF_INIT;
    mxpc_buf_puts(&out, "");
    for (size_t i = 0; i < n; i++) {
        if (!covered[i])
            mxpc_buf_putc(&out, text[i]);
        else if (i == 0 || !covered[i - 1])
            mxpc_buf_puts(&out, "***");
    }
    free(covered);
    return mxpc_buf_take(&out);
}

static void fuzz_rounds(void)
{
    char secrets[6][8];
    char text[80];
    for (int round = 0; round < 20000; round++) {
        mxpc_redact_clear();
        size_t nsecrets = rnd(7);
        for (size_t s = 0; s < nsecrets; s++) {
            random_text(secrets[s], 5, 0); /* empty ones too: ignored */
            mxpc_redact_add(secrets[s]);
        }
        random_text(text, sizeof text - 1, 0);
        char *want = reference_redact(text, secrets, nsecrets);
        char *got = mxpc_redact(text);
        if (strcmp(got, want) != 0) {
            fprintf(stderr, "round %d: redact(\"%s\") = \"%s\", expected \"%s\"; secrets:", round, text, got, want);
            for (size_t s = 0; s < nsecrets; s++)
                fprintf(stderr, " \"%s\"", secrets[s]);
            fputc('\n', stderr);
            _exit(1);
        }
        free(want);
        free(got);
    }
    mxpc_redact_clear();
}

static void fuzz_random_secrets_and_texts(void **state)
{
    (void)state;
    in_child_within(60, fuzz_rounds);
}

/* Linear time, counted rather than timed: the work of one redaction is
 * bounded by a constant times (text length x secrets + secret lengths). */
static void work_is_linear_in_the_text(void **state)
{
    (void)state;
    size_t n = 200000, m = 1000;
    char *text = malloc(n + 1);
    char *long_a = malloc(m + 1), *long_ab = malloc(m + 1), *period = malloc(m + 1);
    memset(text, 'a', n);
    text[n] = '\0';
    for (size_t i = m; i < n; i += m)
        text[i] = 'b'; /* almost-matches of long_a everywhere */
    memset(long_a, 'a', m);
    long_a[m] = '\0';
    memcpy(long_ab, long_a, m + 1);
    long_ab[m - 1] = 'b';
    for (size_t i = 0; i < m; i++)
        period[i] = i % 2 ? 'b' : 'a';
    period[m] = '\0';
    mxpc_redact_add(long_a);
    mxpc_redact_add(long_ab);
    mxpc_redact_add(period);
    mxpc_redact_add("a");
    mxpc_redact_add("*");
    size_t before = mxpc_redact_work();
    char *out = mxpc_redact(text);
    size_t work = mxpc_redact_work() - before;
    size_t bound = 4 * (n * 5 + 3 * m + 2);
    if (work > bound)
        fail_msg("redacting %zu bytes with 5 secrets took %zu steps, more than %zu", n, work, bound);
    assert_null(strchr(out, 'a'));
    free(out);
    free(text);
    free(long_a);
    free(long_ab);
    free(period);
}

static void json_log_line_redacts_fields_and_escapes(void **state)
{
    (void)state;
    capture_start();
    mxpc_log_set_format(MXPC_LOG_JSON);
    mxpc_redact_add("pa\"ss");
    struct mxpc_log_field f[] = {{"user", "app", MXPC_LOG_STRING}, {"detail", "pw is pa\"ss", MXPC_LOG_STRING}};
    mxpc_log_fields(MXPC_LOG_INFO, "connect \"db\"", f, 2);
    mxpc_log_set_format(MXPC_LOG_TEXT);
    char *buf = capture_end();
    assert_non_null(strstr(buf, "\"level\":\"info\",\"msg\":\"connect \\\"db\\\"\""));
    assert_non_null(strstr(buf, "\"user\":\"app\",\"detail\":\"pw is ***\"}"));
    assert_null(strstr(buf, "pa\\\"ss"));
    free(buf);
}

static void text_log_respects_level(void **state)
{
    (void)state;
    capture_start();
    mxpc_log_set_level(MXPC_LOG_WARN);
    mxpc_log(MXPC_LOG_INFO, "hidden %d", 1);
    mxpc_log(MXPC_LOG_WARN, "shown %d", 2);
    mxpc_log_set_level(MXPC_LOG_INFO);
    char *buf = capture_end();
    assert_string_equal(buf, "warn: shown 2\n");
    free(buf);
}

static void escaping_shows_what_a_terminal_would_act_on(void **state)
{
    (void)state;
    assert_escapes("plain text: ü, 日本, ✓", "plain text: ü, 日本, ✓");
    assert_escapes("\x1b[31mred\x1b[0m", "\\x1b[31mred\\x1b[0m");
    assert_escapes("a\r\nerror: forged\tx\x7f\x01", "a\\r\\nerror: forged\\tx\\x7f\\x01");
    /* not UTF-8: a stray byte, a cut sequence, an overlong form, a surrogate, beyond U+10FFFF */
    assert_escapes("\xff|\xe6\x97|\xc0\x80|\xed\xa0\x80|\xf4\x90\x80\x80",
                   "\\xff|\\xe6\\x97|\\xc0\\x80|\\xed\\xa0\\x80|\\xf4\\x90\\x80\\x80");
    /* C1 CSI, right-to-left override, zero-width space, line separator, BOM */
    assert_escapes("\xc2\x9b" "2J \xe2\x80\xae" "abc \xe2\x80\x8b \xe2\x80\xa8 \xef\xbb\xbf",
                   "\\u{9b}2J \\u{202e}abc \\u{200b} \\u{2028} \\u{feff}");
    assert_escapes("", "");
    struct mxpc_buf b = MXPC_BUF_INIT;
    mxpc_escape(&b, "a\0b", 3); /* a NUL inside a Lua string */
    assert_string_equal(b.data, "a\\x00b");
    mxpc_buf_free(&b);
}

static void json_quote_is_valid_json_for_any_bytes(void **state)
{
    (void)state;
    struct mxpc_buf b = MXPC_BUF_INIT;
    mxpc_json_quote(&b, "\"q\" \\ \x1b[1m \r\n \xff \xc2\x9b \xe2\x80\xae ü");
    assert_string_equal(b.data, "\"\\\"q\\\" \\\\ \\u001b[1m \\r\\n \\\\xff \\u009b \\u202e ü\"");
    mxpc_buf_free(&b);
}

static void text_log_lines_are_one_line_each(void **state)
{
    (void)state;
    capture_start();
    struct mxpc_log_field f[] = {{"endpoint", "http://x\r\ninfo: forged", MXPC_LOG_STRING}, {"host", "\x1b[31mdb\xff", MXPC_LOG_STRING}};
    mxpc_log_fields(MXPC_LOG_WARN, "cannot reach \x1b]0;title\x07", f, 2);
    char *buf = capture_end();
    assert_string_equal(buf, "warn: cannot reach \\x1b]0;title\\x07 endpoint=\"http://x\\r\\ninfo: forged\" "
                             "host=\\x1b[31mdb\\xff\n");
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
        cmocka_unit_test_teardown(a_secret_inside_the_mask_terminates, teardown),
        cmocka_unit_test_teardown(overlapping_secrets_are_masked_as_one, teardown),
        cmocka_unit_test_teardown(fuzz_random_secrets_and_texts, teardown),
        cmocka_unit_test_teardown(work_is_linear_in_the_text, teardown),
        cmocka_unit_test(escaping_shows_what_a_terminal_would_act_on),
        cmocka_unit_test(json_quote_is_valid_json_for_any_bytes),
        cmocka_unit_test(text_log_lines_are_one_line_each),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
