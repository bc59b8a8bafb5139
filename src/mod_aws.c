/* Lua module mxpc.aws: AWS beyond S3 (aws.h): where the credential chain
 * finds credentials, RDS IAM authentication tokens, SigV4 signatures (for
 * tests and other services), and the region. mxpc.s3 keeps credentials,
 * rds_token and sign as aliases. See docs/s3.md. */
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

int luaopen_mxpc_aws(lua_State *L)
{
    static const luaL_Reg functions[] = {
        {"credentials", l_credentials},
        {"rds_token", l_rds_token},
        {"sign", l_sign},
        {"region", l_region},
        {NULL, NULL},
    };
    luaL_newlib(L, functions);
    return 1;
}
