/* Lua module mxpc.sigv4: AWS requests to services other than S3 (Secrets
 * Manager, ...) from Lua, on the shared pieces in C (sigv4.c, the credential
 * chain, STS).
 *
 *   local sigv4 = require "mxpc.sigv4"
 *   local creds = assert(sigv4.credentials())          -- the tool's own (the chain)
 *   local creds = assert(sigv4.web_identity { role_arn = arn, token = jwt })
 *   local add = assert(sigv4.sign { method = "POST", url = url, service = "secretsmanager",
 *     region = "eu-west-1", headers = { ["X-Amz-Target"] = "..." }, body = json,
 *     credentials = creds })
 *   -- add: the headers to send as well (Authorization, X-Amz-Date, X-Amz-Security-Token)
 *
 * Credentials are tables {access_key, secret_key, session_token, source,
 * expiration}; the secret key and the session token are registered for
 * redaction before they reach Lua. */
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

/* sigv4.credentials([profile]) -> credentials | nil, err */
static int l_credentials(lua_State *L)
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

/* sigv4.web_identity{role_arn=, token=, session_name=} -> credentials | nil, err
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

/* sigv4.sign{method=, url=, service=, region=, headers=, body=, credentials=} -> headers to add */
static int l_sign(lua_State *L)
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

int luaopen_mxpc_sigv4(lua_State *L)
{
    static const luaL_Reg fns[] = {
        {"credentials", l_credentials}, {"web_identity", l_web_identity}, {"sign", l_sign}, {NULL, NULL}};
    luaL_newlib(L, fns);
    return 1;
}
