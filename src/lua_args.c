/* See include/mxpc/lua_args.h. */
#include "mxpc/lua_args.h"

#include <lauxlib.h>

int mxpc_args_keep(lua_State *L)
{
    lua_newtable(L);
    return lua_gettop(L);
}

/* Converts the value on top to a string in place, references it from `keep`
 * and returns it; the value stays on top. NULL (nothing converted) for nil and
 * for types that are not strings or numbers. */
static const char *keep_top(lua_State *L, int keep, size_t *len)
{
    int t = lua_type(L, -1);
    if (t != LUA_TSTRING && t != LUA_TNUMBER)
        return NULL;
    const char *s = lua_tolstring(L, -1, len);
    lua_pushvalue(L, -1);
    lua_rawseti(L, keep, (lua_Integer)lua_rawlen(L, keep) + 1);
    return s;
}

const char *mxpc_args_string(lua_State *L, int idx, int keep, size_t *len, const char *what)
{
    idx = lua_absindex(L, idx);
    if (lua_isnoneornil(L, idx)) {
        if (len)
            *len = 0;
        return NULL;
    }
    lua_pushvalue(L, idx); /* a copy: the caller's value is not converted */
    const char *s = keep_top(L, keep, len);
    lua_pop(L, 1);
    if (!s)
        luaL_error(L, "%s must be a string, not %s", what, luaL_typename(L, idx));
    return s;
}

const char *mxpc_args_opt_string(lua_State *L, int opts, const char *key, int keep)
{
    if (lua_isnoneornil(L, opts))
        return NULL;
    luaL_checktype(L, opts, LUA_TTABLE);
    int t = lua_getfield(L, opts, key);
    const char *s = t == LUA_TNIL ? NULL : keep_top(L, keep, NULL);
    if (!s && t != LUA_TNIL)
        luaL_error(L, "option '%s' must be a string, not %s", key, lua_typename(L, t));
    lua_pop(L, 1);
    return s;
}

const char **mxpc_args_string_array(lua_State *L, int idx, int keep, size_t *count, const char *what)
{
    idx = lua_absindex(L, idx);
    luaL_checktype(L, idx, LUA_TTABLE);
    lua_Integer n = luaL_len(L, idx);
    luaL_argcheck(L, n >= 0 && (size_t)n < (size_t)-1 / sizeof(char *) - 1, idx, "array too long");
    const char **a = lua_newuserdatauv(L, sizeof *a * ((size_t)n + 1), 0);
    lua_rawseti(L, keep, (lua_Integer)lua_rawlen(L, keep) + 1);
    for (lua_Integer i = 1; i <= n; i++) {
        lua_geti(L, idx, i);
        a[i - 1] = keep_top(L, keep, NULL);
        if (!a[i - 1])
            luaL_argerror(L, idx, what);
        lua_pop(L, 1);
    }
    a[n] = NULL;
    *count = (size_t)n;
    return a;
}

lua_Integer mxpc_args_opt_integer(lua_State *L, int opts, const char *key, lua_Integer def)
{
    lua_getfield(L, opts, key);
    lua_Integer v = def;
    if (!lua_isnil(L, -1)) {
        int ok;
        v = lua_tointegerx(L, -1, &ok);
        if (!ok)
            luaL_error(L, "option '%s' must be an integer", key);
    }
    lua_pop(L, 1);
    return v;
}

int mxpc_args_opt_bool(lua_State *L, int opts, const char *key, int def)
{
    lua_getfield(L, opts, key);
    int v = lua_isnil(L, -1) ? def : lua_toboolean(L, -1);
    lua_pop(L, 1);
    return v;
}

void mxpc_field_string(lua_State *L, const char *key, const char *value)
{
    if (!value)
        return;
    lua_pushstring(L, value);
    lua_setfield(L, -2, key);
}

void mxpc_field_integer(lua_State *L, const char *key, lua_Integer value)
{
    lua_pushinteger(L, value);
    lua_setfield(L, -2, key);
}

void mxpc_field_boolean(lua_State *L, const char *key, int value)
{
    lua_pushboolean(L, value);
    lua_setfield(L, -2, key);
}
