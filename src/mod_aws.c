/* Lua module mxpc.aws: AWS beyond S3 (aws.h): where the credential chain
 * finds credentials, RDS IAM authentication tokens, SigV4 signatures (for
 * tests and other services), the region, and requests to services other
 * than S3 (Secrets Manager, ...): the chain's credentials for signing, STS's
 * web identity, a signed request's headers. mxpc.s3 keeps credentials,
 * rds_token and sign as aliases; mxpc.sigv4 (credentials, web_identity,
 * sign) those of signing_credentials, web_identity and sign_request. See
 * docs/s3.md.
 *
 * Credentials for signing are tables {access_key, secret_key, session_token,
 * source, expiration}; the secret key and the session token are registered
 * for redaction before they reach Lua. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <lauxlib.h>

#include "mxpc/aws.h"
#include "mxpc/buf.h"
#include "mxpc/error.h"
#include "mxpc/log.h"
#include "mxpc/lua_args.h"
#include "mxpc/modules.h"
#include "mxpc/s3.h"
#include "mxpc/sigv4.h"

#include "mod_s3.h"

/* The options table (argument 1, nil = {}) alone at index 1, and the table
 * keeping its strings alive (lua_args.h) pushed at index 2, returned. */
int s3lua_options(lua_State *L)
{
    if (lua_isnoneornil(L, 1)) {
        lua_settop(L, 0);
        lua_newtable(L);
    }
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_settop(L, 1);
    return mxpc_args_keep(L);
}

/* The credentials of the options table at 1 (strings kept in `keep`).
 * Returns 0 with `out` filled, or the count of nil, err pushed. */
int s3lua_credentials(lua_State *L, int keep, struct mxpc_aws_credentials *out)
{
    const int opts = 1;
    struct mxpc_aws_credentials given = {
        .access_key = (char *)mxpc_args_opt_string(L, opts, "access_key", keep),
        .secret_key = (char *)mxpc_args_opt_string(L, opts, "secret_key", keep),
        .session_token = (char *)mxpc_args_opt_string(L, opts, "session_token", keep),
    };
    mxpc_redact_add(given.secret_key);
    mxpc_redact_add(given.session_token);
    char err[1536];
    if (mxpc_aws_credentials_resolve(&given, mxpc_args_opt_string(L, opts, "profile", keep), out, err, sizeof err) !=
        0) {
        /* the chain's errors are "message" or "message\nhint" */
        char *nl = strchr(err, '\n');
        if (nl)
            *nl++ = '\0';
        return mxpc_error_fail(L, "credentials",
                               nl ? nl
                                  : "give access_key and secret_key, set AWS_ACCESS_KEY_ID and "
                                    "AWS_SECRET_ACCESS_KEY, run where a web identity (IRSA) or container "
                                    "credentials are set up, or configure a profile in ~/.aws/credentials",
                               "%s", err);
    }
    return 0;
}

/* aws.sign{method=, path=, query=, headers={{name, value}, ...} or {name=value},
 * payload_hash=, access_key=, secret_key=, session_token=, region=, service=,
 * time=, normalize=, content_sha256=, token_unsigned=, expires=}
 * -> {canonical_request=, string_to_sign=, signature=, authorization=,
 *     amz_date=, query= (when expires is given: presigned)} */
static int l_sign(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_settop(L, 1);
    const int keep = mxpc_args_keep(L); /* 2 */
    struct mxpc_sigv4_signer s = {
        .access_key = mxpc_args_opt_string(L, 1, "access_key", keep),
        .secret_key = mxpc_args_opt_string(L, 1, "secret_key", keep),
        .session_token = mxpc_args_opt_string(L, 1, "session_token", keep),
        .region = mxpc_args_opt_string(L, 1, "region", keep),
        .service = mxpc_args_opt_string(L, 1, "service", keep),
        .time = (time_t)mxpc_args_opt_integer(L, 1, "time", (lua_Integer)time(NULL)),
        .flags = (mxpc_args_opt_bool(L, 1, "normalize", 0) ? MXPC_SIGV4_NORMALIZE_PATH : 0u) |
                 (mxpc_args_opt_bool(L, 1, "content_sha256", 0) ? MXPC_SIGV4_CONTENT_SHA256 : 0u) |
                 (mxpc_args_opt_bool(L, 1, "token_unsigned", 0) ? MXPC_SIGV4_TOKEN_UNSIGNED : 0u),
    };
    mxpc_redact_add(s.secret_key);
    mxpc_redact_add(s.session_token);
    struct mxpc_sigv4_request req = {
        .method = mxpc_args_opt_string(L, 1, "method", keep),
        .path = mxpc_args_opt_string(L, 1, "path", keep),
        .query = mxpc_args_opt_string(L, 1, "query", keep),
        .payload_hash = mxpc_args_opt_string(L, 1, "payload_hash", keep),
    };
    /* headers: {{name, value}, ...} and name = value */
    lua_getfield(L, 1, "headers"); /* 3 */
    const int headers = 3;
    size_t n = lua_istable(L, headers) ? (size_t)luaL_len(L, headers) : 0;
    size_t count = n;
    if (lua_istable(L, headers)) {
        lua_pushnil(L);
        while (lua_next(L, headers)) {
            count += lua_type(L, -2) == LUA_TSTRING;
            lua_pop(L, 1);
        }
    }
    struct mxpc_sigv4_header *h = lua_newuserdatauv(L, (count ? count : 1) * sizeof *h, 0); /* 4 */
    size_t nh = 0;
    for (size_t i = 1; i <= n; i++) {
        lua_rawgeti(L, headers, (lua_Integer)i);
        luaL_argcheck(L, lua_istable(L, -1), 1, "headers[i] must be {name, value}");
        lua_rawgeti(L, -1, 1);
        lua_rawgeti(L, -2, 2);
        h[nh].name = mxpc_args_string(L, -2, keep, NULL, "a header name");
        h[nh].value = mxpc_args_string(L, -1, keep, NULL, "a header value");
        luaL_argcheck(L, h[nh].name && h[nh].value, 1, "headers[i] must be {name, value}");
        lua_pop(L, 3);
        nh++;
    }
    if (count > n) {
        lua_pushnil(L);
        while (lua_next(L, headers)) {
            if (lua_type(L, -2) == LUA_TSTRING) {
                h[nh].name = lua_tostring(L, -2);
                h[nh].value = mxpc_args_string(L, -1, keep, NULL, "a header value");
                luaL_argcheck(L, h[nh].value != NULL, 1, "headers[i] must be {name, value}");
                nh++;
            }
            lua_pop(L, 1);
        }
    }
    req.headers = h;
    req.nheaders = nh;
    lua_Integer expires = mxpc_args_opt_integer(L, 1, "expires", 0);
    struct mxpc_sigv4_result r = MXPC_SIGV4_RESULT_INIT;
    int rc = expires ? mxpc_sigv4_presign(&s, &req, (long)expires, &r) : mxpc_sigv4_sign(&s, &req, &r);
    if (rc != 0) {
        mxpc_sigv4_result_free(&r);
        return luaL_error(L, "cannot sign: method, path, access_key, secret_key, region and service are required, "
                             "expires 1..604800");
    }
    lua_createtable(L, 0, 6);
    mxpc_field_string(L, "canonical_request", r.canonical_request.data);
    mxpc_field_string(L, "string_to_sign", r.string_to_sign.data);
    mxpc_field_string(L, "signature", r.signature);
    mxpc_field_string(L, "amz_date", r.amz_date);
    if (expires)
        mxpc_field_string(L, "query", r.query.data);
    else
        mxpc_field_string(L, "authorization", r.authorization.data);
    mxpc_sigv4_result_free(&r);
    return 1;
}

/* aws.credentials{access_key=, secret_key=, session_token=, profile=}
 * -> {access_key=, source=, session_token=bool} | nil, err: where the chain
 * finds credentials (never the secret). */
static int l_credentials(lua_State *L)
{
    const int keep = s3lua_options(L);
    struct mxpc_aws_credentials creds;
    int n = s3lua_credentials(L, keep, &creds);
    if (n)
        return n;
    lua_createtable(L, 0, 5);
    mxpc_field_string(L, "access_key", creds.access_key);
    mxpc_field_string(L, "source", creds.source);
    mxpc_field_boolean(L, "session_token", creds.session_token != NULL);
    if (creds.role_arn[0])
        mxpc_field_string(L, "role", creds.role_arn);
    if (creds.expiration)
        mxpc_field_integer(L, "expiration", (lua_Integer)creds.expiration);
    mxpc_aws_credentials_clear(&creds);
    return 1;
}

/* aws.rds_token{host=, port=, user=, region=, time=, access_key=, secret_key=,
 * session_token=, profile=} -> token, {source=, role=} | nil, err: an RDS IAM
 * authentication token (valid 15 minutes) signed with the chain's
 * credentials. The token is registered as a secret. */
static int l_rds_token(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    const int keep = s3lua_options(L);
    const char *host = mxpc_args_opt_string(L, 1, "host", keep), *user = mxpc_args_opt_string(L, 1, "user", keep);
    luaL_argcheck(L, host && *host, 1, "host is required");
    luaL_argcheck(L, user && *user, 1, "user is required");
    lua_Integer port = mxpc_args_opt_integer(L, 1, "port", 5432);
    luaL_argcheck(L, port > 0 && port < 65536, 1, "port must be 1..65535");
    lua_Integer when = mxpc_args_opt_integer(L, 1, "time", 0);
    const char *region = mxpc_aws_region(mxpc_args_opt_string(L, 1, "region", keep), "us-east-1");
    struct mxpc_aws_credentials creds;
    int n = s3lua_credentials(L, keep, &creds);
    if (n)
        return n;
    char *token = mxpc_rds_auth_token(&creds, host, (int)port, user, region, when ? (time_t)when : time(NULL));
    if (!token) {
        mxpc_aws_credentials_clear(&creds);
        return mxpc_error_fail(L, "credentials", NULL, "cannot sign an RDS IAM token for %s@%s:%d", user, host,
                               (int)port);
    }
    mxpc_redact_add(token);
    lua_pushstring(L, token);
    free(token);
    lua_createtable(L, 0, 2);
    mxpc_field_string(L, "source", creds.source);
    mxpc_field_string(L, "role", creds.role_arn);
    mxpc_aws_credentials_clear(&creds);
    return 2;
}

/* aws.region([given [, default]]) -> the region: given, else AWS_REGION,
 * else AWS_DEFAULT_REGION, else default ("us-east-1"; false: nil). The one
 * resolver (aws.h). */
static int l_region(lua_State *L)
{
    lua_settop(L, 2);
    const int keep = mxpc_args_keep(L);
    const char *fallback = lua_isnil(L, 2) ? "us-east-1"
                           : lua_isboolean(L, 2) && !lua_toboolean(L, 2)
                               ? NULL
                               : mxpc_args_string(L, 2, keep, NULL, "the default region");
    const char *region = mxpc_aws_region(mxpc_args_string(L, 1, keep, NULL, "the region"), fallback);
    if (region)
        lua_pushstring(L, region);
    else
        lua_pushnil(L);
    return 1;
}

/* --- requests to other AWS services ------------------------------------------------ */

static void push_credentials(lua_State *L, const struct mxpc_aws_credentials *c)
{
    mxpc_redact_add(c->secret_key);
    if (c->session_token)
        mxpc_redact_add(c->session_token);
    lua_createtable(L, 0, 5);
    lua_pushstring(L, c->access_key);
    lua_setfield(L, -2, "access_key");
    lua_pushstring(L, c->secret_key);
    lua_setfield(L, -2, "secret_key");
    if (c->session_token) {
        lua_pushstring(L, c->session_token);
        lua_setfield(L, -2, "session_token");
    }
    lua_pushstring(L, c->source);
    lua_setfield(L, -2, "source");
    if (c->expiration) {
        lua_pushinteger(L, (lua_Integer)c->expiration);
        lua_setfield(L, -2, "expiration");
    }
}

/* Pushes an error from "message\nhint". */
static int fail_split(lua_State *L, const char *code, char *err)
{
    char *nl = strchr(err, '\n');
    if (nl)
        *nl = '\0';
    return mxpc_error_fail(L, code, nl ? nl + 1 : NULL, "%s", err);
}

/* aws.signing_credentials([profile]) -> credentials | nil, err: the chain's, with the secret key
 * (registered for redaction), for signing requests with aws.sign_request */
static int l_signing_credentials(lua_State *L)
{
    const char *profile = luaL_optstring(L, 1, NULL);
    struct mxpc_aws_credentials c = {0};
    char err[1024];
    if (mxpc_aws_credentials_resolve(NULL, profile, &c, err, sizeof err) != 0)
        return fail_split(L, "aws", err);
    push_credentials(L, &c);
    mxpc_aws_credentials_clear(&c);
    return 1;
}

/* aws.web_identity{role_arn=, token=, session_name=} -> credentials | nil, err
 * (STS AssumeRoleWithWebIdentity at mxpc_sts_endpoint(); err.sts_code is STS's code) */
static int l_web_identity(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_settop(L, 1);
    const int keep = mxpc_args_keep(L);
    const char *role = mxpc_args_opt_string(L, 1, "role_arn", keep);
    const char *token = mxpc_args_opt_string(L, 1, "token", keep);
    const char *session = mxpc_args_opt_string(L, 1, "session_name", keep);
    luaL_argcheck(L, role && *role && token && *token, 1, "role_arn and token are required");
    char session_buf[96];
    if (!session || !*session) {
        snprintf(session_buf, sizeof session_buf, "mxpc-data-migration-%lld", (long long)time(NULL));
        session = session_buf;
    }
    mxpc_redact_add(token);
    struct mxpc_buf body = MXPC_BUF_INIT, response = MXPC_BUF_INIT;
    mxpc_sts_web_identity_body(&body, role, session, token, 0);
    mxpc_redact_add(body.data);
    char *endpoint = mxpc_sts_endpoint();
    const char *headers[] = {"Content-Type: application/x-www-form-urlencoded; charset=utf-8",
                             "Accept: application/xml", NULL};
    long status = 0;
    char herr[512];
    int n;
    mxpc_log(MXPC_LOG_DEBUG, "AWS credentials: STS AssumeRoleWithWebIdentity at %s for role %s (session %s)",
             endpoint, role, session);
    if (mxpc_aws_http("POST", endpoint, headers, body.data, 0, &response, &status, herr, sizeof herr) != 0) {
        n = mxpc_error_fail(L, "aws", "check AWS_REGION, or AWS_ENDPOINT_URL_STS",
                            "cannot reach STS at %s: %s", endpoint, herr);
        goto out;
    }
    struct mxpc_aws_credentials c = {0};
    char code[128] = "", message[512] = "";
    int parsed = mxpc_sts_parse_response(response.data, response.len, &c, code, sizeof code, message,
                                         sizeof message);
    if (parsed == 1 && status == 200) {
        snprintf(c.source, sizeof c.source, "web identity (role %s)", role);
        push_credentials(L, &c);
        mxpc_aws_credentials_clear(&c);
        n = 1;
        goto out;
    }
    if (parsed == 1)
        mxpc_aws_credentials_clear(&c);
    if (parsed != 0)
        snprintf(code, sizeof code, "%s", "unreadable answer");
    n = mxpc_error_fail(L, "aws", NULL, "STS refused AssumeRoleWithWebIdentity for role %s: HTTP %ld %s%s%s", role,
                        status, code, message[0] ? ": " : "", message);
    lua_pushstring(L, code);
    lua_setfield(L, -2, "sts_code");
out:
    free(endpoint);
    if (body.data)
        memset(body.data, 0, body.len);
    mxpc_buf_free(&body);
    mxpc_buf_free(&response);
    return n;
}

/* aws.sign_request{method=, url=, service=, region=, headers=, body=, credentials=} -> the headers to
 * add (Authorization, X-Amz-Date, X-Amz-Security-Token) */
static int l_sign_request(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_settop(L, 1);
    const int keep = mxpc_args_keep(L);
    const char *method = mxpc_args_opt_string(L, 1, "method", keep);
    const char *url = mxpc_args_opt_string(L, 1, "url", keep);
    const char *service = mxpc_args_opt_string(L, 1, "service", keep);
    const char *region = mxpc_args_opt_string(L, 1, "region", keep);
    luaL_argcheck(L, method && url && service && region, 1, "method, url, service and region are required");
    const char *rest = strncmp(url, "https://", 8) == 0 ? url + 8 : strncmp(url, "http://", 7) == 0 ? url + 7 : NULL;
    luaL_argcheck(L, rest && *rest, 1, "option 'url' must be an http:// or https:// URL");
    size_t body_len = 0;
    const char *body = NULL;
    if (lua_getfield(L, 1, "body") != LUA_TNIL)
        body = mxpc_args_string(L, -1, keep, &body_len, "option 'body'");
    lua_pop(L, 1);
    luaL_argcheck(L, lua_getfield(L, 1, "credentials") == LUA_TTABLE, 1, "option 'credentials' must be a table");
    const char *ak = mxpc_args_opt_string(L, -1, "access_key", keep);
    const char *sk = mxpc_args_opt_string(L, -1, "secret_key", keep);
    const char *st = mxpc_args_opt_string(L, -1, "session_token", keep);
    lua_pop(L, 1);
    luaL_argcheck(L, ak && sk, 1, "credentials need access_key and secret_key");

    /* host, path and query from the URL */
    const char *slash = strchr(rest, '/'), *qmark = strchr(rest, '?');
    size_t hostlen = slash ? (size_t)(slash - rest) : qmark ? (size_t)(qmark - rest) : strlen(rest);
    if (qmark && slash && qmark < slash)
        hostlen = (size_t)(qmark - rest);
    lua_pushlstring(L, rest, hostlen);
    const char *host = lua_tostring(L, -1);
    lua_rawsetp(L, keep, host);
    const char *path = "/", *query = NULL;
    if (slash && (!qmark || slash < qmark)) {
        lua_pushlstring(L, slash, qmark ? (size_t)(qmark - slash) : strlen(slash));
        path = lua_tostring(L, -1);
        lua_rawsetp(L, keep, path);
    }
    if (qmark)
        query = qmark + 1;

    /* headers to sign: host and the caller's */
    size_t n = 1;
    if (lua_getfield(L, 1, "headers") != LUA_TNIL) {
        luaL_checktype(L, -1, LUA_TTABLE);
        for (lua_pushnil(L); lua_next(L, -2); lua_pop(L, 1))
            n++;
    }
    struct mxpc_sigv4_header *hs = lua_newuserdatauv(L, n * sizeof *hs, 0);
    lua_rawsetp(L, keep, hs);
    size_t i = 0;
    hs[i++] = (struct mxpc_sigv4_header){"host", host};
    if (lua_istable(L, -1)) {
        int t = lua_gettop(L);
        for (lua_pushnil(L); lua_next(L, t); lua_pop(L, 1)) {
            const char *k = mxpc_args_string(L, -2, keep, NULL, "a header name");
            const char *v = mxpc_args_string(L, -1, keep, NULL, "a header value");
            hs[i++] = (struct mxpc_sigv4_header){k, v};
        }
    }
    lua_pop(L, 1);
    char payload[65];
    mxpc_sigv4_sha256_hex(body ? body : "", body_len, payload);
    struct mxpc_sigv4_signer s = {.access_key = ak, .secret_key = sk, .session_token = st, .region = region,
                                  .service = service, .time = time(NULL), .flags = MXPC_SIGV4_NORMALIZE_PATH};
    struct mxpc_sigv4_request req = {.method = method, .path = path, .query = query, .headers = hs,
                                     .nheaders = i, .payload_hash = payload};
    struct mxpc_sigv4_result out = MXPC_SIGV4_RESULT_INIT;
    if (mxpc_sigv4_sign(&s, &req, &out) != 0) {
        mxpc_sigv4_result_free(&out);
        return mxpc_error_fail(L, "aws", NULL, "cannot sign the request to %s", url);
    }
    lua_createtable(L, 0, 3);
    lua_pushstring(L, out.authorization.data);
    lua_setfield(L, -2, "Authorization");
    lua_pushstring(L, out.amz_date);
    lua_setfield(L, -2, "X-Amz-Date");
    if (st && *st) {
        lua_pushstring(L, st);
        lua_setfield(L, -2, "X-Amz-Security-Token");
    }
    mxpc_sigv4_result_free(&out);
    return 1;
}

int luaopen_mxpc_aws(lua_State *L)
{
    static const luaL_Reg functions[] = {
        {"credentials", l_credentials},
        {"rds_token", l_rds_token},
        {"sign", l_sign},
        {"region", l_region},
        {"signing_credentials", l_signing_credentials},
        {"web_identity", l_web_identity},
        {"sign_request", l_sign_request},
        {NULL, NULL},
    };
    luaL_newlib(L, functions);
    return 1;
}

/* mxpc.sigv4: the names Secrets Manager's store first used, kept as aliases. */
int luaopen_mxpc_sigv4(lua_State *L)
{
    static const luaL_Reg fns[] = {
        {"credentials", l_signing_credentials}, {"web_identity", l_web_identity}, {"sign", l_sign_request}, {NULL, NULL}};
    luaL_newlib(L, fns);
    return 1;
}
