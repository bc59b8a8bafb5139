/* Error objects: see include/mxpc/error.h. The Lua side is module mxpc.error. */
#include "mxpc/error.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <lauxlib.h>

#include "mxpc/log.h"

static int error_tostring(lua_State *L)
{
    const char *msg = mxpc_error_field(L, 1, "message");
    lua_pushstring(L, msg ? msg : "(error without message)");
    return 1;
}

/* Pushes the shared metatable, creating it on first use. */
static void push_meta(lua_State *L)
{
    if (luaL_newmetatable(L, MXPC_ERROR_META)) {
        lua_pushcfunction(L, error_tostring);
        lua_setfield(L, -2, "__tostring");
        lua_pushstring(L, "mxpc.error");
        lua_setfield(L, -2, "__name");
    }
}

__attribute__((format(printf, 4, 0))) static void push_v(lua_State *L, const char *code, const char *hint, const char *fmt, va_list ap)
{
    char msg[1024];
    vsnprintf(msg, sizeof msg, fmt, ap);
    lua_createtable(L, 0, 4);
    lua_pushstring(L, code);
    lua_setfield(L, -2, "code");
    lua_pushstring(L, msg);
    lua_setfield(L, -2, "message");
    if (hint) {
        lua_pushstring(L, hint);
        lua_setfield(L, -2, "hint");
    }
    push_meta(L);
    lua_setmetatable(L, -2);
}

void mxpc_error_push(lua_State *L, const char *code, const char *hint, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    push_v(L, code, hint, fmt, ap);
    va_end(ap);
}

int mxpc_error_fail(lua_State *L, const char *code, const char *hint, const char *fmt, ...)
{
    lua_pushnil(L);
    va_list ap;
    va_start(ap, fmt);
    push_v(L, code, hint, fmt, ap);
    va_end(ap);
    return 2;
}

int mxpc_error_raise(lua_State *L, const char *code, const char *hint, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    push_v(L, code, hint, fmt, ap);
    va_end(ap);
    return lua_error(L);
}

int mxpc_error_fail_errno(lua_State *L, int err, const char *fmt, ...)
{
    char what[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    return mxpc_error_fail(L, "io", NULL, "%s: %s", what, strerror(err));
}

static int is_error_object(lua_State *L, int idx)
{
    if (!lua_istable(L, idx) || !lua_getmetatable(L, idx))
        return 0;
    luaL_getmetatable(L, MXPC_ERROR_META);
    int same = lua_rawequal(L, -1, -2);
    lua_pop(L, 2);
    return same;
}

void mxpc_error_normalize(lua_State *L, int idx)
{
    idx = lua_absindex(L, idx);
    if (is_error_object(L, idx))
        return;
    if (lua_istable(L, idx) && lua_getmetatable(L, idx) == 0) {
        /* a plain table with a message field: adopt it as an error object */
        lua_getfield(L, idx, "message");
        int has = lua_type(L, -1) == LUA_TSTRING;
        lua_pop(L, 1);
        if (has) {
            lua_getfield(L, idx, "code");
            int hascode = lua_type(L, -1) == LUA_TSTRING;
            lua_pop(L, 1);
            if (!hascode) {
                lua_pushstring(L, "error");
                lua_setfield(L, idx, "code");
            }
            push_meta(L);
            lua_setmetatable(L, idx);
            return;
        }
    } else if (lua_istable(L, idx)) {
        lua_pop(L, 1); /* the metatable pushed by lua_getmetatable */
    }
    const char *msg = luaL_tolstring(L, idx, NULL); /* honours __tostring */
    mxpc_error_push(L, "error", NULL, "%s", msg);
    lua_replace(L, idx);
    lua_pop(L, 1);
}

const char *mxpc_error_field(lua_State *L, int idx, const char *name)
{
    if (!lua_istable(L, idx))
        return NULL;
    lua_getfield(L, idx, name);
    const char *s = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : NULL;
    lua_pop(L, 1); /* the string stays alive: the table still references it */
    return s;
}

/* The end of a leading "chunk:line: " in msg, or NULL; the chunk's length in *chunk_len. */
static const char *position_end(const char *msg, size_t *chunk_len)
{
    for (const char *q = msg; *q && *q != '\n'; q++) {
        if (*q != ':' || !isdigit((unsigned char)q[1]))
            continue;
        const char *d = q + 1;
        while (isdigit((unsigned char)*d))
            d++;
        if (d[0] == ':' && d[1] == ' ' && q > msg) {
            *chunk_len = (size_t)(q - msg);
            return d + 2;
        }
        return NULL; /* "a:1x" or "a:1:x": not a position in front */
    }
    return NULL;
}

/* Does the traceback have a frame in this chunk ("\n\tCHUNK:")? */
static int chunk_ran(const char *traceback, const char *chunk, size_t len)
{
    for (const char *t = traceback; t && (t = strstr(t, "\n\t")) != NULL; t += 2)
        if (strncmp(t + 2, chunk, len) == 0 && t[2 + len] == ':')
            return 1;
    return 0;
}

const char *mxpc_error_skip_positions(const char *msg, const char *traceback)
{
    static const char embedded[] = "[embedded] ";
    size_t len;
    const char *end;
    while (msg && (end = position_end(msg, &len)) != NULL &&
           (strncmp(msg, embedded, sizeof embedded - 1) == 0 || chunk_ran(traceback, msg, len)))
        msg = end;
    return msg;
}

int mxpc_error_exit_code(lua_State *L, int idx)
{
    const char *code = mxpc_error_field(L, idx, "code");
    if (!code)
        return MXPC_EXIT_FAILURE;
    if (strcmp(code, "usage") == 0)
        return MXPC_EXIT_USAGE;
    if (strcmp(code, "interrupted") == 0) {
        const char *sig = mxpc_error_field(L, idx, "signal");
        return sig && strcmp(sig, "SIGTERM") == 0 ? MXPC_EXIT_SIGTERM : MXPC_EXIT_SIGINT;
    }
    return MXPC_EXIT_FAILURE;
}

/* --- Lua API -------------------------------------------------------------- */

/* error.new{code=, message=, hint=, ...} -> error object (extra fields kept) */
static int l_new(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_getfield(L, 1, "message");
    luaL_argcheck(L, lua_type(L, -1) == LUA_TSTRING, 1, "field 'message' must be a string");
    lua_pop(L, 1);
    lua_settop(L, 1);
    lua_getfield(L, 1, "code");
    if (lua_isnil(L, -1)) {
        lua_pushstring(L, "error");
        lua_setfield(L, 1, "code");
    }
    lua_pop(L, 1);
    push_meta(L);
    lua_setmetatable(L, 1);
    return 1;
}

/* error.raise(code, message [, hint]) */
static int l_raise(lua_State *L)
{
    const char *code = luaL_checkstring(L, 1);
    const char *msg = luaL_checkstring(L, 2);
    const char *hint = luaL_optstring(L, 3, NULL);
    return mxpc_error_raise(L, code, hint, "%s", msg);
}

/* error.is(v [, code]) -> boolean */
static int l_is(lua_State *L)
{
    int yes = is_error_object(L, 1);
    if (yes && !lua_isnoneornil(L, 2)) {
        const char *code = mxpc_error_field(L, 1, "code");
        yes = code && strcmp(code, luaL_checkstring(L, 2)) == 0;
    }
    lua_pushboolean(L, yes);
    return 1;
}

/* error.normalize(v) -> error object */
static int l_normalize(lua_State *L)
{
    luaL_checkany(L, 1);
    lua_settop(L, 1);
    mxpc_error_normalize(L, 1);
    return 1;
}

int mxpc_error_traceback(lua_State *L)
{
    int level = (int)luaL_optinteger(L, 2, 1);
    lua_settop(L, 1);
    mxpc_error_normalize(L, 1);
    if (mxpc_error_field(L, 1, "traceback"))
        return 1; /* already recorded where it was first raised */
    const char *msg = mxpc_error_field(L, 1, "message");
    luaL_traceback(L, L, msg, level);
    lua_setfield(L, 1, "traceback");
    return 1;
}

int luaopen_mxpc_error(lua_State *L)
{
    static const luaL_Reg fns[] = {
        {"new", l_new},
        {"raise", l_raise},
        {"is", l_is},
        {"normalize", l_normalize},
        {"traceback", mxpc_error_traceback},
        {NULL, NULL},
    };
    luaL_newlib(L, fns);
    push_meta(L);
    lua_setfield(L, -2, "meta");
    return 1;
}
