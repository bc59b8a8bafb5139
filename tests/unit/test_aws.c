/* Temporary AWS credentials and the RDS IAM token, without a server: the STS
 * request is well formed (Action, Version, RoleArn, RoleSessionName,
 * WebIdentityToken, form-encoded), STS answers and container credentials are
 * read, the RDS token has AWS's documented form and a signature that an
 * independent computation of the canonical request confirms, and temporary
 * credentials count as expiring at the right time. */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "mxpc/aws.h"
#include "mxpc/buf.h"
#include "mxpc/s3.h"
#include "mxpc/sigv4.h"

static void sts_request_body(void **state)
{
    (void)state;
    struct mxpc_buf b = MXPC_BUF_INIT;
    mxpc_sts_web_identity_body(&b, "arn:aws:iam::123456789012:role/mx backup", "mxpc-1", "eyJ.a+b/c=.sig", 0);
    assert_string_equal(b.data, "Action=AssumeRoleWithWebIdentity&Version=2011-06-15"
                                "&RoleArn=arn%3Aaws%3Aiam%3A%3A123456789012%3Arole%2Fmx%20backup"
                                "&RoleSessionName=mxpc-1&WebIdentityToken=eyJ.a%2Bb%2Fc%3D.sig");
    mxpc_buf_free(&b);
    mxpc_sts_web_identity_body(&b, "r", "s", "t", 900);
    assert_string_equal(b.data, "Action=AssumeRoleWithWebIdentity&Version=2011-06-15&RoleArn=r&RoleSessionName=s"
                                "&WebIdentityToken=t&DurationSeconds=900");
    mxpc_buf_free(&b);
}

static void expect_endpoint(const char *want)
{
    char *e = mxpc_sts_endpoint();
    assert_string_equal(e, want);
    free(e);
}

static void sts_endpoint(void **state)
{
    (void)state;
    static const char *const vars[] = {"AWS_ENDPOINT_URL_STS", "AWS_ENDPOINT_URL", "AWS_REGION", "AWS_DEFAULT_REGION"};
    for (size_t i = 0; i < 4; i++)
        unsetenv(vars[i]);
    expect_endpoint("https://sts.amazonaws.com");
    setenv("AWS_DEFAULT_REGION", "eu-west-1", 1);
    expect_endpoint("https://sts.eu-west-1.amazonaws.com");
    setenv("AWS_REGION", "eu-central-1", 1);
    expect_endpoint("https://sts.eu-central-1.amazonaws.com"); /* regional by default */
    setenv("AWS_ENDPOINT_URL", "http://all.example", 1);
    expect_endpoint("http://all.example");
    setenv("AWS_ENDPOINT_URL_STS", "http://sts.example:8080", 1);
    expect_endpoint("http://sts.example:8080");
    for (size_t i = 0; i < 4; i++)
        unsetenv(vars[i]);
}

/* The example answer of the STS API reference. */
static const char sts_answer[] =
    "<AssumeRoleWithWebIdentityResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\">\n"
    "  <AssumeRoleWithWebIdentityResult>\n"
    "    <SubjectFromWebIdentityToken>amzn1.account.AF6RHO7KZU5XRVQJGXK6HB56KR2A</SubjectFromWebIdentityToken>\n"
    "    <Audience>client.5498841531868486423.1548@apps.example.com</Audience>\n"
    "    <AssumedRoleUser>\n"
    "      <Arn>arn:aws:sts::123456789012:assumed-role/FederatedWebIdentityRole/app1</Arn>\n"
    "      <AssumedRoleId>AROACLKWSDQRAOEXAMPLE:app1</AssumedRoleId>\n"
    "    </AssumedRoleUser>\n"
    "    <Credentials>\n"
    "      <SessionToken>AQoDYXdzEE0a8ANXXXXXXXXNO1ewxE5TijQyp+IEXAMPLE</SessionToken>\n"
    "      <SecretAccessKey>wJalrXUtnFEMI/K7MDENG/bPxRfiCYzEXAMPLEKEY</SecretAccessKey>\n"
    "      <Expiration>2014-10-24T23:00:23Z</Expiration>\n"
    "      <AccessKeyId>ASgeIAIOSFODNN7EXAMPLE</AccessKeyId>\n"
    "    </Credentials>\n"
    "    <SourceIdentity>SourceIdentityValue</SourceIdentity>\n"
    "    <Provider>www.amazon.com</Provider>\n"
    "  </AssumeRoleWithWebIdentityResult>\n"
    "  <ResponseMetadata><RequestId>ad4156e9-bce1-11e2-82e6-6b6efEXAMPLE</RequestId></ResponseMetadata>\n"
    "</AssumeRoleWithWebIdentityResponse>\n";

static void sts_answers(void **state)
{
    (void)state;
    struct mxpc_aws_credentials c;
    char code[64] = "", message[256] = "";
    assert_int_equal(mxpc_sts_parse_response(sts_answer, strlen(sts_answer), &c, code, sizeof code, message,
                                             sizeof message),
                     1);
    assert_string_equal(c.access_key, "ASgeIAIOSFODNN7EXAMPLE");
    assert_string_equal(c.secret_key, "wJalrXUtnFEMI/K7MDENG/bPxRfiCYzEXAMPLEKEY");
    assert_string_equal(c.session_token, "AQoDYXdzEE0a8ANXXXXXXXXNO1ewxE5TijQyp+IEXAMPLE");
    assert_int_equal(c.expiration, 1414191623);
    assert_string_equal(c.role_arn, "arn:aws:sts::123456789012:assumed-role/FederatedWebIdentityRole/app1");
    mxpc_aws_credentials_clear(&c);

    static const char refused[] =
        "<ErrorResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\"><Error><Type>Sender</Type>"
        "<Code>AccessDenied</Code><Message>Not authorized to perform sts:AssumeRoleWithWebIdentity</Message>"
        "</Error><RequestId>x</RequestId></ErrorResponse>";
    assert_int_equal(
        mxpc_sts_parse_response(refused, strlen(refused), &c, code, sizeof code, message, sizeof message), 0);
    assert_string_equal(code, "AccessDenied");
    assert_string_equal(message, "Not authorized to perform sts:AssumeRoleWithWebIdentity");
    assert_int_equal(mxpc_sts_parse_response("<html>", 6, &c, code, sizeof code, message, sizeof message), -1);
    static const char no_expiry[] = "<R><Credentials><AccessKeyId>a</AccessKeyId><SecretAccessKey>b</SecretAccessKey>"
                                    "</Credentials></R>";
    assert_int_equal(
        mxpc_sts_parse_response(no_expiry, strlen(no_expiry), &c, code, sizeof code, message, sizeof message), -1);
}

static void times_and_json(void **state)
{
    (void)state;
    time_t t;
    assert_int_equal(mxpc_aws_parse_time("2014-10-24T23:00:23Z", &t), 0);
    assert_int_equal(t, 1414191623);
    assert_int_equal(mxpc_aws_parse_time("2014-10-24T23:00:23.123Z", &t), 0);
    assert_int_equal(t, 1414191623);
    assert_int_equal(mxpc_aws_parse_time("2014-10-25T01:00:23+02:00", &t), 0);
    assert_int_equal(t, 1414191623);
    assert_int_equal(mxpc_aws_parse_time("yesterday", &t), -1);

    char v[64];
    assert_int_equal(mxpc_json_string_field("{\"a\": 1, \"aud\" : [ \"sts.amazonaws.com\" ]}", "aud", v, sizeof v), 1);
    assert_string_equal(v, "sts.amazonaws.com");
    assert_int_equal(mxpc_json_string_field("{\"x\":\"q\\\"uo\\/te\"}", "x", v, sizeof v), 1);
    assert_string_equal(v, "q\"uo/te");
    assert_int_equal(mxpc_json_string_field("{\"xy\":\"1\"}", "x", v, sizeof v), 0);

    /* the container credentials answer (EKS Pod Identity agent) */
    struct mxpc_aws_credentials c;
    char err[256];
    assert_int_equal(mxpc_aws_parse_container_json("{\"AccessKeyId\":\"ASIAX\",\"SecretAccessKey\":\"s/k\","
                                                   "\"Token\":\"tok\",\"AccountId\":\"1\","
                                                   "\"Expiration\":\"2014-10-24T23:00:23Z\"}",
                                                   &c, err, sizeof err),
                     0);
    assert_string_equal(c.access_key, "ASIAX");
    assert_string_equal(c.secret_key, "s/k");
    assert_string_equal(c.session_token, "tok");
    assert_int_equal(c.expiration, 1414191623);
    mxpc_aws_credentials_clear(&c);
    assert_int_equal(mxpc_aws_parse_container_json("{\"code\":\"AccessDenied\",\"message\":\"no association\"}", &c,
                                                   err, sizeof err),
                     -1);
    assert_non_null(strstr(err, "AccessDenied no association"));
}

static void jwt_claims(void **state)
{
    (void)state;
    /* {"alg":"RS256"} . {"iss":"https://oidc.eks.eu-west-1.amazonaws.com/id/ABC","aud":["sts.amazonaws.com"],
     * "sub":"system:serviceaccount:ns:sa","exp":1700000000} . sig */
    const char *token = "eyJhbGciOiJSUzI1NiJ9."
                        "eyJpc3MiOiJodHRwczovL29pZGMuZWtzLmV1LXdlc3QtMS5hbWF6b25hd3MuY29tL2lkL0FCQyIsImF1ZCI6WyJz"
                        "dHMuYW1hem9uYXdzLmNvbSJdLCJzdWIiOiJzeXN0ZW06c2VydmljZWFjY291bnQ6bnM6c2EiLCJleHAiOjE3MDAw"
                        "MDAwMDB9.c2ln";
    struct mxpc_jwt_claims cl;
    mxpc_jwt_claims(token, &cl);
    assert_string_equal(cl.iss, "https://oidc.eks.eu-west-1.amazonaws.com/id/ABC");
    assert_string_equal(cl.aud, "sts.amazonaws.com");
    assert_string_equal(cl.sub, "system:serviceaccount:ns:sa");
    assert_int_equal(cl.exp, 1700000000);
    mxpc_jwt_claims("not a token", &cl);
    assert_string_equal(cl.iss, "");
}

static void hex(const unsigned char *in, size_t n, char *out)
{
    for (size_t i = 0; i < n; i++)
        sprintf(out + 2 * i, "%02x", in[i]);
}

/* AWS's documented form: host:port/?Action=connect&DBUser=<user>&X-Amz-Algorithm=AWS4-HMAC-SHA256
 * &X-Amz-Credential=<key>%2F<date>%2F<region>%2Frds-db%2Faws4_request&X-Amz-Date=<time>&X-Amz-Expires=900
 * [&X-Amz-Security-Token=<token>]&X-Amz-SignedHeaders=host&X-Amz-Signature=<64 hex> */
static void rds_token_format(void **state)
{
    (void)state;
    struct mxpc_aws_credentials c = {
        .access_key = "ASIAEXAMPLE",
        .secret_key = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        .session_token = "IQoJb3JpZ2luX2VjE/+=",
    };
    char *token = mxpc_rds_auth_token(&c, "mydb.123456789012.eu-west-1.rds.amazonaws.com", 5432, "mx user",
                                      "eu-west-1", 1369353600);
    assert_non_null(token);
    const char *want_prefix =
        "mydb.123456789012.eu-west-1.rds.amazonaws.com:5432/?Action=connect&DBUser=mx%20user"
        "&X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=ASIAEXAMPLE%2F20130524%2Feu-west-1%2Frds-db%2Faws4_request"
        "&X-Amz-Date=20130524T000000Z&X-Amz-Expires=900&X-Amz-Security-Token=IQoJb3JpZ2luX2VjE%2F%2B%3D"
        "&X-Amz-SignedHeaders=host&X-Amz-Signature=";
    assert_memory_equal(token, want_prefix, strlen(want_prefix));
    const char *sig = token + strlen(want_prefix);
    assert_int_equal(strlen(sig), 64);
    assert_int_equal(strspn(sig, "0123456789abcdef"), 64);

    /* the signature, computed here from the canonical request as AWS documents it */
    const char *canonical = "GET\n/\n"
                            "Action=connect&DBUser=mx%20user&X-Amz-Algorithm=AWS4-HMAC-SHA256"
                            "&X-Amz-Credential=ASIAEXAMPLE%2F20130524%2Feu-west-1%2Frds-db%2Faws4_request"
                            "&X-Amz-Date=20130524T000000Z&X-Amz-Expires=900"
                            "&X-Amz-Security-Token=IQoJb3JpZ2luX2VjE%2F%2B%3D&X-Amz-SignedHeaders=host\n"
                            "host:mydb.123456789012.eu-west-1.rds.amazonaws.com:5432\n\nhost\n" MXPC_SIGV4_EMPTY_SHA256;
    char chash[65];
    mxpc_sigv4_sha256_hex(canonical, strlen(canonical), chash);
    char to_sign[512];
    snprintf(to_sign, sizeof to_sign, "AWS4-HMAC-SHA256\n20130524T000000Z\n20130524/eu-west-1/rds-db/aws4_request\n%s",
             chash);
    unsigned char key[32], mac[32];
    assert_int_equal(mxpc_sigv4_signing_key(c.secret_key, "20130524", "eu-west-1", "rds-db", key), 0);
    unsigned int len = 0;
    HMAC(EVP_sha256(), key, 32, (const unsigned char *)to_sign, strlen(to_sign), mac, &len);
    char want_sig[65];
    hex(mac, 32, want_sig);
    assert_string_equal(sig, want_sig);
    free(token);

    /* permanent credentials: no security token */
    c.session_token = NULL;
    token = mxpc_rds_auth_token(&c, "127.0.0.1", 25435, "demo", "us-east-1", 1369353600);
    assert_null(strstr(token, "X-Amz-Security-Token"));
    assert_non_null(strstr(token, "&X-Amz-Expires=900&X-Amz-SignedHeaders=host&X-Amz-Signature="));
    free(token);
}

static void expiry_margin(void **state)
{
    (void)state;
    struct mxpc_aws_credentials c = {.fetched = 1000, .expiration = 1000 + 3600};
    assert_int_equal(mxpc_aws_credentials_margin(&c), 300); /* an hour: 5 minutes before */
    c.expiration = 1000 + 20;
    assert_int_equal(mxpc_aws_credentials_margin(&c), 5); /* short sessions: a quarter */
    c.expiration = 0;
    assert_int_equal(mxpc_aws_credentials_margin(&c), 0);
    /* static credentials are never refreshed */
    char err[64];
    struct mxpc_aws_credentials s = {.kind = MXPC_AWS_STATIC};
    assert_int_equal(mxpc_aws_credentials_refresh(&s, err, sizeof err), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(sts_request_body), cmocka_unit_test(sts_endpoint),  cmocka_unit_test(sts_answers),
        cmocka_unit_test(times_and_json),   cmocka_unit_test(jwt_claims),    cmocka_unit_test(rds_token_format),
        cmocka_unit_test(expiry_margin),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
