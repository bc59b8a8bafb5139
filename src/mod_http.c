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
 * the usual interruption.
 *
 *   local r <close> = assert(http.reader(url, { range = 8 << 20, on_expired = function(err)
 *     return fresh_url_or_nil_and_err() end }))
 *   local chunk, err = r:read()   -- the next bytes; nil at the end; nil, err
 *   r:offset(), r:size()          -- bytes read so far; the object's size (nil until known)
 *
 * A streaming reader of one object (url_reader.c): ranged GETs of `range`
 * bytes (default 8 MiB, the most ever held), resumed from the byte reached
 * when a connection drops, retried by the transport's policy. Only Range and
 * If-Match are sent with the URL. A 403 (a presigned URL that expired) calls
 * on_expired(err), which returns another URL for the same object (the read
 * goes on from the same offset) or nil, err (the read fails with it); without
 * on_expired, or when a fresh URL is refused too, read fails with code
 * "expired". Other codes: changed (412), not_found, http, size, connect, tls. */
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>

#include "mxpc/buf.h"
#include "mxpc/error.h"
#include "mxpc/http.h"
#include "mxpc/log.h"
#include "mxpc/lua_args.h"
#include "mxpc/modules.h"
#include "mxpc/runtime.h"
#include "url_reader.h"

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

/* --- http.reader ---------------------------------------------------------- */

#define READER_META "mxpc.http.reader"
#define READER_RANGE (8 * 1024 * 1024)
#define READER_RENEWALS 3 /* fresh URLs in a row that are refused too */

struct lreader {
    struct mxpc_url_reader *u;
    int64_t range;
};

static struct lreader *check_reader(lua_State *L)
{
    struct lreader *r = luaL_checkudata(L, 1, READER_META);
    if (!r->u)
        luaL_error(L, "the reader is closed");
    return r;
}

static int url_fail(lua_State *L, const struct mxpc_url_error *e)
{
    mxpc_error_fail(L, e->code, e->hint[0] ? e->hint : NULL, "%s", e->message);
    if (e->status) {
        lua_pushinteger(L, e->status);
        lua_setfield(L, -2, "status");
    }
    return 2;
}

/* http.reader(url, {range =, on_expired =}) -> reader | nil, err */
static int l_reader(lua_State *L)
{
    const char *url = luaL_checkstring(L, 1);
    lua_settop(L, 2);
    lua_Integer range = READER_RANGE;
    if (!lua_isnil(L, 2)) {
        luaL_checktype(L, 2, LUA_TTABLE);
        if (lua_getfield(L, 2, "range") != LUA_TNIL) {
            int isnum = 0;
            range = lua_tointegerx(L, -1, &isnum);
            luaL_argcheck(L, isnum && range >= 1 && range <= 1024L * 1024 * 1024, 2,
                          "option 'range' must be a whole number of bytes from 1 to 1 GiB");
        }
        lua_pop(L, 1);
        if (lua_getfield(L, 2, "on_expired") != LUA_TNIL)
            luaL_checktype(L, -1, LUA_TFUNCTION);
    } else {
        lua_pushnil(L);
    }
    /* the callback is at 3 */
    struct mxpc_url_error e;
    struct mxpc_url_reader *u = mxpc_url_reader_new(url, &e);
    if (!u)
        return url_fail(L, &e);
    struct lreader *r = lua_newuserdatauv(L, sizeof *r, 1);
    r->u = u;
    r->range = range;
    luaL_setmetatable(L, READER_META);
    lua_pushvalue(L, 3);
    lua_setiuservalue(L, -2, 1);
    return 1;
}

static int collect(void *ud, const void *data, size_t len, char *err, size_t errlen)
{
    (void)err, (void)errlen;
    mxpc_buf_append(ud, data, len);
    return 0;
}

static int r_read(lua_State *L)
{
    struct lreader *r = check_reader(L);
    for (int renewals = 0;; renewals++) {
        struct mxpc_buf b = MXPC_BUF_INIT;
        struct mxpc_url_error e;
        int64_t got = 0;
        int rc = mxpc_url_reader_next(r->u, r->range, collect, &b, &got, &e);
        if (got > 0) { /* bytes first, even of a range that failed: the next read goes on after them */
            lua_pushlstring(L, b.data, b.len);
            mxpc_buf_free(&b);
            return 1;
        }
        mxpc_buf_free(&b);
        if (rc == 0) {
            lua_pushnil(L);
            return 1;
        }
        if (strcmp(e.code, "interrupted") == 0)
            mxpc_check_interrupt(L);
        if (strcmp(e.code, "expired") != 0 || lua_getiuservalue(L, 1, 1) != LUA_TFUNCTION)
            return url_fail(L, &e);
        if (renewals >= READER_RENEWALS) {
            lua_pop(L, 1);
            snprintf(e.hint, sizeof e.hint, "%d fresh URLs in a row were refused: run again later", READER_RENEWALS);
            return url_fail(L, &e);
        }
        mxpc_log(MXPC_LOG_INFO, "%s", e.message);
        url_fail(L, &e); /* nil, err: the callback gets err */
        lua_remove(L, -2);
        lua_call(L, 1, 2);
        if (lua_type(L, -2) != LUA_TSTRING) {
            if (lua_isnil(L, -1))
                return url_fail(L, &e);
            lua_pushnil(L);
            lua_replace(L, -3);
            return 2; /* the callback's nil, err */
        }
        struct mxpc_url_error se;
        if (mxpc_url_reader_set_url(r->u, lua_tostring(L, -2), &se) != 0)
            return url_fail(L, &se);
        lua_pop(L, 2);
    }
}

static int r_offset(lua_State *L)
{
    lua_pushinteger(L, mxpc_url_reader_offset(check_reader(L)->u));
    return 1;
}

static int r_size(lua_State *L)
{
    int64_t size = mxpc_url_reader_size(check_reader(L)->u);
    if (size < 0)
        lua_pushnil(L);
    else
        lua_pushinteger(L, size);
    return 1;
}

static int r_close(lua_State *L)
{
    struct lreader *r = luaL_checkudata(L, 1, READER_META);
    mxpc_url_reader_free(r->u);
    r->u = NULL;
    return 0;
}

static int r_tostring(lua_State *L)
{
    struct lreader *r = luaL_checkudata(L, 1, READER_META);
    lua_pushfstring(L, "http.reader(%s)", r->u ? mxpc_url_reader_name(r->u) : "closed");
    return 1;
}

int luaopen_mxpc_http(lua_State *L)
{
    static const luaL_Reg methods[] = {
        {"read", r_read}, {"offset", r_offset}, {"size", r_size}, {"close", r_close}, {NULL, NULL}};
    static const luaL_Reg meta[] = {{"__gc", r_close}, {"__close", r_close}, {"__tostring", r_tostring}, {NULL, NULL}};
    mxpc_lua_class(L, READER_META, methods, meta);
    static const luaL_Reg fns[] = {{"request", l_request}, {"reader", l_reader}, {NULL, NULL}};
    luaL_newlib(L, fns);
    return 1;
}
