/* The shared credentials file: values of any length (session tokens run to
 * kilobytes), and the keys after a long line still read. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(long_session_token_is_read_whole),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
