/* Lua module mxpc.log: the logging core (log.c) for scripts.
 *
 *   log.info("copied file", {uuid = id, bytes = n})
 *   log.secret(password)          -- never printed from now on
 *   log.set_level("debug"); log.set_format("json")
 *   log.status("copy 45% ...")    -- a terminal's status line; log.status(nil) erases it
 */
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>

#include "mxpc/log.h"
#include "mxpc/modules.h"

#define MAX_FIELDS 32

/* Collects a field table into key/value strings sorted by key, so output is
 * stable. Values are converted with tostring and keep their kind: JSON
 * writes numbers and booleans bare, and cjson.null (a NULL light userdata)
 * as null. */
static size_t collect_fields(lua_State *L, int idx, struct mxpc_log_field *fields)
{
    size_t n = 0;
    if (lua_isnoneornil(L, idx))
        return 0;
    luaL_checktype(L, idx, LUA_TTABLE);
    luaL_checkstack(L, MAX_FIELDS + 4, "too many log fields");
    lua_pushnil(L);
    while (lua_next(L, idx) != 0) {
        if (lua_type(L, -2) == LUA_TSTRING && n < MAX_FIELDS) {
            fields[n].key = lua_tostring(L, -2);
            int t = lua_type(L, -1);
            fields[n].kind = t == LUA_TNUMBER    ? MXPC_LOG_NUMBER
                             : t == LUA_TBOOLEAN ? MXPC_LOG_BOOLEAN
                             : t == LUA_TLIGHTUSERDATA && !lua_touserdata(L, -1) ? MXPC_LOG_NULL
                                                                                  : MXPC_LOG_STRING;
            if (fields[n].kind == MXPC_LOG_NULL) {
                lua_pop(L, 1);
                lua_pushliteral(L, "null");
            }
            fields[n].value = luaL_tolstring(L, -1, NULL);
            /* keep the converted string on the stack until the call ends:
             * key value str -> key str -> str key */
            lua_remove(L, -2);
            lua_insert(L, -2);
            n++;
        } else {
            lua_pop(L, 1);
        }
    }
    /* insertion sort: few fields */
    for (size_t i = 1; i < n; i++)
        for (size_t j = i; j > 0 && strcmp(fields[j - 1].key, fields[j].key) > 0; j--) {
            struct mxpc_log_field t = fields[j];
            fields[j] = fields[j - 1];
            fields[j - 1] = t;
        }
    return n;
}

static int log_at(lua_State *L, enum mxpc_log_level level)
{
    const char *msg = luaL_checkstring(L, 1);
    if (level > mxpc_log_get_level())
        return 0;
    struct mxpc_log_field fields[MAX_FIELDS];
    size_t n = collect_fields(L, 2, fields);
    mxpc_log_fields(level, msg, fields, n);
    return 0;
}

static int l_error(lua_State *L) { return log_at(L, MXPC_LOG_ERROR); }
static int l_warn(lua_State *L) { return log_at(L, MXPC_LOG_WARN); }
static int l_info(lua_State *L) { return log_at(L, MXPC_LOG_INFO); }
static int l_debug(lua_State *L) { return log_at(L, MXPC_LOG_DEBUG); }
static int l_trace(lua_State *L) { return log_at(L, MXPC_LOG_TRACE); }

static int l_set_level(lua_State *L)
{
    const char *name = luaL_checkstring(L, 1);
    int level = mxpc_log_level_from_name(name);
    if (level < 0)
        return luaL_argerror(L, 1, "expected error, warn, info, debug or trace");
    mxpc_log_set_level((enum mxpc_log_level)level);
    return 0;
}

static int l_level(lua_State *L)
{
    lua_pushstring(L, mxpc_log_level_name(mxpc_log_get_level()));
    return 1;
}

static int l_enabled(lua_State *L)
{
    int level = mxpc_log_level_from_name(luaL_checkstring(L, 1));
    if (level < 0)
        return luaL_argerror(L, 1, "expected error, warn, info, debug or trace");
    lua_pushboolean(L, level <= (int)mxpc_log_get_level());
    return 1;
}

static int l_set_format(lua_State *L)
{
    static const char *const names[] = {"text", "json", NULL};
    mxpc_log_set_format((enum mxpc_log_format)luaL_checkoption(L, 1, NULL, names));
    return 0;
}

static int l_format(lua_State *L)
{
    lua_pushstring(L, mxpc_log_get_format() == MXPC_LOG_JSON ? "json" : "text");
    return 1;
}

/* log.status(text): the terminal's status line, rewritten in place (log
 * lines go above it); log.status(nil) erases it. */
static int l_status(lua_State *L)
{
    mxpc_log_status(luaL_optstring(L, 1, NULL));
    return 0;
}

/* log.secret(value): register a value that must never be printed. */
static int l_secret(lua_State *L)
{
    if (!lua_isnil(L, 1))
        mxpc_redact_add(luaL_checkstring(L, 1));
    return 0;
}

/* log.redact(text) -> text with secrets masked */
static int l_redact(lua_State *L)
{
    char *s = mxpc_redact(luaL_checkstring(L, 1));
    lua_pushstring(L, s);
    free(s);
    return 1;
}

/* log.escape(text) -> text safe for a terminal and a log line (mxpc_escape) */
static int l_escape(lua_State *L)
{
    size_t n;
    const char *s = luaL_checklstring(L, 1, &n);
    struct mxpc_buf out = MXPC_BUF_INIT;
    mxpc_buf_puts(&out, "");
    mxpc_escape(&out, s, n);
    lua_pushlstring(L, out.data, out.len);
    mxpc_buf_free(&out);
    return 1;
}

int luaopen_mxpc_log(lua_State *L)
{
    static const luaL_Reg fns[] = {
        {"error", l_error},   {"warn", l_warn},         {"info", l_info},     {"debug", l_debug},
        {"trace", l_trace},   {"set_level", l_set_level}, {"level", l_level}, {"enabled", l_enabled},
        {"set_format", l_set_format}, {"format", l_format}, {"secret", l_secret}, {"redact", l_redact},
        {"escape", l_escape}, {"status", l_status},
        {NULL, NULL},
    };
    luaL_newlib(L, fns);
    return 1;
}
