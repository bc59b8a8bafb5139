/* Entra ID's token answers as the Workload Identity exchange reads them
 * (mxpc_azure_token_answer, src/azure_identity.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "mxpc/azure_identity.h"
#include "mxpc/buf.h"

static const time_t ASKED = 1700000000;

static time_t expiry_of(const char *json)
{
    struct mxpc_buf token = MXPC_BUF_INIT;
    time_t expires = 0;
    char code[128], desc[512];
    assert_int_equal(mxpc_azure_token_answer(json, ASKED, &token, &expires, code, sizeof code, desc, sizeof desc), 1);
    assert_string_equal(token.data, "tok");
    mxpc_buf_free(&token);
    return expires;
}

static void a_token_lives_as_long_as_entra_says_within_a_day(void **state)
{
    (void)state;
    assert_true(expiry_of("{\"access_token\":\"tok\",\"expires_in\":3599}") == ASKED + 3599);
    assert_true(expiry_of("{\"expires_in\":\"86400\",\"access_token\":\"tok\"}") == ASKED + 86400);
    /* absent, zero, negative or longer than a day: 300 s (a life past
     * LONG_MAX overflowed the expiry time) */
    assert_true(expiry_of("{\"access_token\":\"tok\"}") == ASKED + 300);
    assert_true(expiry_of("{\"access_token\":\"tok\",\"expires_in\":0}") == ASKED + 300);
    assert_true(expiry_of("{\"access_token\":\"tok\",\"expires_in\":-5}") == ASKED + 300);
    assert_true(expiry_of("{\"access_token\":\"tok\",\"expires_in\":86401}") == ASKED + 300);
    assert_true(expiry_of("{\"access_token\":\"tok\",\"expires_in\":99999999999999999999999}") == ASKED + 300);
}

static void a_refusal_gives_its_code_and_the_first_line_of_its_description(void **state)
{
    (void)state;
    struct mxpc_buf token = MXPC_BUF_INIT;
    time_t expires = 0;
    char code[128], desc[512];
    assert_int_equal(mxpc_azure_token_answer("{\"error\":\"invalid_client\",\"error_description\":\"AADSTS700213: "
                                             "no match\\r\\nTrace ID: x\"}",
                                             ASKED, &token, &expires, code, sizeof code, desc, sizeof desc),
                     0);
    assert_string_equal(code, "invalid_client");
    assert_string_equal(desc, "AADSTS700213: no match");
    assert_int_equal(token.len, 0);
    assert_int_equal(mxpc_azure_token_answer("<html>", ASKED, &token, &expires, code, sizeof code, desc, sizeof desc),
                     0);
    assert_string_equal(code, "");
    assert_string_equal(desc, "");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(a_token_lives_as_long_as_entra_says_within_a_day),
        cmocka_unit_test(a_refusal_gives_its_code_and_the_first_line_of_its_description),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
