/* Lua module mxpc.http: one HTTP request, for scripts and hooks (a webhook,
 * a health check), on the shared transport (http.c).
 *
 *   local http = require "mxpc.http"
 *   local res, err = http.request { method = "POST", url = "https://hooks.example/backup",
 *     headers = { ["Content-Type"] = "application/json" }, body = cjson.encode(summary) }
 *   -- res = { status = 200, body = "..." }; any status is an answer, the caller judges it
 *
 * Options: method (default GET, POST with a body), url (http or https),
 * headers (name -> value), body, timeout (seconds, default 30),
 * connect_timeout (default 10), attempts (default 1: transient connection
 * failures, 5xx and 429 are tried again up to that many times, with the
 * transport's jittered backoff), max_response (bytes, default
 * 1 MiB), ca_file (a PEM file of the CAs to trust instead of SSL_CERT_FILE /
 * SSL_CERT_DIR). Failures to connect return nil, err (code "http"); Ctrl-C raises
 * the usual interruption. */
#include <string.h>

#include <lauxlib.h>

#include "mxpc/buf.h"
#include "mxpc/error.h"
#include "mxpc/http.h"
#include "mxpc/lua_args.h"
#include "mxpc/modules.h"
#include "mxpc/runtime.h"

static lua_Integer opt_int(lua_State *L, const char *key, lua_Integer def, lua_Integer min, lua_Integer max)
{
    lua_Integer v = def;
    if (lua_getfield(L, 1, key) != LUA_TNIL) {
        int isnum = 0;
        v = lua_tointegerx(L, -1, &isnum);
        if (!isnum || v < min || v > max)
            luaL_error(L, "option '%s' must be a whole number from %d to %d", key, (int)min, (int)max);
    }
    lua_pop(L, 1);
    return v;
}

/* The headers table at -1 as "Name: value" lines (kept alive in `keep`). */
static const char **header_lines(lua_State *L, int keep)
{
    int t = lua_gettop(L);
    size_t n = 0;
    for (lua_pushnil(L); lua_next(L, t); lua_pop(L, 1))
        n++;
    const char **lines = lua_newuserdatauv(L, (n + 1) * sizeof *lines, 0);
    lua_rawsetp(L, keep, lines);
    size_t i = 0;
    for (lua_pushnil(L); lua_next(L, t); lua_pop(L, 1)) {
        size_t klen = 0, vlen = 0;
        const char *k = mxpc_args_string(L, -2, keep, &klen, "a header name");
        const char *v = mxpc_args_string(L, -1, keep, &vlen, "a header value");
        if (!k || !v || klen == 0 || strlen(k) != klen || strlen(v) != vlen || strpbrk(k, "\r\n:") ||
            strpbrk(v, "\r\n"))
            luaL_error(L, "header names and values must be strings without line breaks (and names without ':')");
        lua_pushfstring(L, "%s: %s", k, v);
        lines[i++] = lua_tostring(L, -1);
        lua_rawsetp(L, keep, lines[i - 1]);
    }
    lines[i] = NULL;
    return lines;
}

/* http.request{method=, url=, headers=, body=, timeout=, connect_timeout=, attempts=, max_response=}
 *   -> {status =, body =} | nil, err */
static int l_request(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_settop(L, 1);
    const int keep = mxpc_args_keep(L);
    struct mxpc_http_request r = {0};
    r.url = mxpc_args_opt_string(L, 1, "url", keep);
    luaL_argcheck(L, r.url && (strncmp(r.url, "http://", 7) == 0 || strncmp(r.url, "https://", 8) == 0), 1,
                  "option 'url' must be an http:// or https:// URL");
    if (lua_getfield(L, 1, "body") != LUA_TNIL)
        r.body = mxpc_args_string(L, -1, keep, &r.body_len, "option 'body'");
    lua_pop(L, 1);
    r.method = mxpc_args_opt_string(L, 1, "method", keep);
    r.ca_file = mxpc_args_opt_string(L, 1, "ca_file", keep);
    if (!r.method)
        r.method = r.body ? "POST" : "GET";
    luaL_argcheck(L, *r.method && strspn(r.method, "ABCDEFGHIJKLMNOPQRSTUVWXYZ") == strlen(r.method), 1,
                  "option 'method' must be an HTTP method in capitals (GET, POST, ...)");
    if (lua_getfield(L, 1, "headers") != LUA_TNIL) {
        luaL_checktype(L, -1, LUA_TTABLE);
        r.headers = header_lines(L, keep);
    }
    lua_pop(L, 1);
    r.timeout = (long)opt_int(L, "timeout", 30, 1, 3600);
    r.connect_timeout = (long)opt_int(L, "connect_timeout", 10, 1, 600);
    r.attempts = (int)opt_int(L, "attempts", 1, 1, 10);
    r.max_response = (size_t)opt_int(L, "max_response", 1024 * 1024, 1, 1024L * 1024 * 1024);

    struct mxpc_buf body = {0};
    long status = 0;
    char err[1024];
    int rc = mxpc_http_request(&r, &body, &status, err, sizeof err);
    if (rc != 0) {
        mxpc_buf_free(&body);
        mxpc_check_interrupt(L); /* a signal raises the usual interruption */
        return mxpc_error_fail(L, "http", NULL, "%s", err);
    }
    lua_createtable(L, 0, 2);
    lua_pushinteger(L, status);
    lua_setfield(L, -2, "status");
    lua_pushlstring(L, body.data ? body.data : "", body.len);
    lua_setfield(L, -2, "body");
    mxpc_buf_free(&body);
    return 1;
}

int luaopen_mxpc_http(lua_State *L)
{
    static const luaL_Reg fns[] = {{"request", l_request}, {NULL, NULL}};
    luaL_newlib(L, fns);
    return 1;
}
