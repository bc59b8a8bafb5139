/* The shared credentials file: values of any length (session tokens run to
 * kilobytes), and the keys after a long line still read. Credential files
 * that never end (/dev/zero) or never open (a FIFO without a writer) are
 * refused at once: this test runs with its address space limited (not under
 * ASan, which reserves terabytes) and an alarm, so a regression fails it
 * instead of taking the machine down or hanging. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "memory_limit.h"

#include "mxpc/log.h"
#include "mxpc/s3.h"

static void long_session_token_is_read_whole(void **state)
{
    (void)state;
    char dir[] = "/tmp/mxpc-creds-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[64];
    snprintf(path, sizeof path, "%s/credentials", dir);
    enum { TOKEN_LEN = 9000 };
    char *token = malloc(TOKEN_LEN + 1);
    assert_non_null(token);
    for (int i = 0; i < TOKEN_LEN; i++)
        token[i] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"[i % 64];
    token[TOKEN_LEN] = '\0';
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fprintf(f, "[other]\naws_access_key_id = NO\naws_secret_access_key = NO\n\n"
               "[long]\naws_access_key_id = AKIDLONG\naws_session_token = %s\naws_secret_access_key = SECRETLONG\n",
            token);
    fclose(f);
    unsetenv("AWS_ACCESS_KEY_ID");
    unsetenv("AWS_SECRET_ACCESS_KEY");
    unsetenv("AWS_SESSION_TOKEN");
    unsetenv("AWS_PROFILE");
    setenv("AWS_SHARED_CREDENTIALS_FILE", path, 1);

    struct mxpc_aws_credentials none = {0}, out = {0};
    char err[512] = "";
    assert_int_equal(mxpc_aws_credentials_resolve(&none, "long", &out, err, sizeof err), 0);
    assert_string_equal(out.access_key, "AKIDLONG");
    assert_string_equal(out.secret_key, "SECRETLONG");
    assert_non_null(out.session_token);
    assert_int_equal(strlen(out.session_token), TOKEN_LEN);
    assert_string_equal(out.session_token, token);
    mxpc_aws_credentials_clear(&out);
    free(token);
    unlink(path);
    rmdir(dir);
    mxpc_redact_clear();
}

static const char *const chain_vars[] = {
    "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_ROLE_ARN", "AWS_CONTAINER_CREDENTIALS_FULL_URI", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE", "AWS_SHARED_CREDENTIALS_FILE", "AWS_EC2_METADATA_DISABLED",
};

static void clear_chain(void)
{
    for (size_t i = 0; i < sizeof chain_vars / sizeof chain_vars[0]; i++)
        unsetenv(chain_vars[i]);
    setenv("AWS_EC2_METADATA_DISABLED", "true", 1);
}

/* The chain's error with the environment as the caller set it (a failure is expected). */
static void resolve_fails(const char *want1, const char *want2)
{
    struct mxpc_aws_credentials out = {0};
    char err[1024] = "";
    alarm(20); /* a FIFO that blocks fails the test instead of hanging it */
    assert_int_equal(mxpc_aws_credentials_resolve(NULL, NULL, &out, err, sizeof err), -1);
    alarm(0);
    if (!strstr(err, want1) || !strstr(err, want2))
        fail_msg("error without \"%s\" and \"%s\": %s", want1, want2, err);
    clear_chain();
}

static char fifo_dir[32];
static char fifo[64];

static int make_fifo(void **state)
{
    (void)state;
    snprintf(fifo_dir, sizeof fifo_dir, "/tmp/mxpc-fifo-XXXXXX");
    if (!mkdtemp(fifo_dir))
        return -1;
    snprintf(fifo, sizeof fifo, "%s/token", fifo_dir);
    clear_chain();
    return mkfifo(fifo, 0600);
}

static int remove_fifo(void **state)
{
    (void)state;
    unlink(fifo);
    rmdir(fifo_dir);
    clear_chain();
    return 0;
}

static void web_identity_token_that_never_ends(void **state)
{
    (void)state;
    setenv("AWS_ROLE_ARN", "arn:aws:iam::123456789012:role/r", 1);
    setenv("AWS_WEB_IDENTITY_TOKEN_FILE", "/dev/zero", 1);
    resolve_fails("cannot read the web identity token file /dev/zero", "a character device, not a regular file");
}

static void web_identity_token_that_is_a_fifo(void **state)
{
    (void)state;
    setenv("AWS_ROLE_ARN", "arn:aws:iam::123456789012:role/r", 1);
    setenv("AWS_WEB_IDENTITY_TOKEN_FILE", fifo, 1);
    resolve_fails("cannot read the web identity token file", "it is a FIFO, not a regular file");
}

static void web_identity_token_too_large(void **state)
{
    (void)state;
    char path[96];
    snprintf(path, sizeof path, "%s/big", fifo_dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    for (int i = 0; i < 70000; i++)
        fputc('x', f);
    fclose(f);
    setenv("AWS_ROLE_ARN", "arn:aws:iam::123456789012:role/r", 1);
    setenv("AWS_WEB_IDENTITY_TOKEN_FILE", path, 1);
    resolve_fails("cannot read the web identity token file", "larger than 65536 bytes");
    unlink(path);
}

static void container_token_that_never_ends(void **state)
{
    (void)state;
    setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", "http://127.0.0.1:9/creds", 1);
    setenv("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE", "/dev/zero", 1);
    resolve_fails("cannot read the container authorization token file /dev/zero", "not a regular file");
}

static void container_token_that_is_a_fifo(void **state)
{
    (void)state;
    setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", "http://127.0.0.1:9/creds", 1);
    setenv("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE", fifo, 1);
    resolve_fails("cannot read the container authorization token file", "it is a FIFO, not a regular file");
}

static void shared_file_that_never_ends(void **state)
{
    (void)state;
    setenv("AWS_SHARED_CREDENTIALS_FILE", "/dev/zero", 1);
    resolve_fails("cannot read the shared credentials file /dev/zero", "not a regular file");
}

static void shared_file_that_is_a_fifo(void **state)
{
    (void)state;
    setenv("AWS_SHARED_CREDENTIALS_FILE", fifo, 1);
    resolve_fails("cannot read the shared credentials file", "it is a FIFO, not a regular file");
}

int main(void)
{
    limit_memory(1024); /* an endless read must fail, not fill the machine */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(long_session_token_is_read_whole),
        cmocka_unit_test_setup_teardown(web_identity_token_that_never_ends, make_fifo, remove_fifo),
        cmocka_unit_test_setup_teardown(web_identity_token_that_is_a_fifo, make_fifo, remove_fifo),
        cmocka_unit_test_setup_teardown(web_identity_token_too_large, make_fifo, remove_fifo),
        cmocka_unit_test_setup_teardown(container_token_that_never_ends, make_fifo, remove_fifo),
        cmocka_unit_test_setup_teardown(container_token_that_is_a_fifo, make_fifo, remove_fifo),
        cmocka_unit_test_setup_teardown(shared_file_that_never_ends, make_fifo, remove_fifo),
        cmocka_unit_test_setup_teardown(shared_file_that_is_a_fifo, make_fifo, remove_fifo),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
