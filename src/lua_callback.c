/* See include/mxpc/lua_callback.h. */
#include "mxpc/lua_callback.h"

#include <stdio.h>

#include "mxpc/error.h"

void mxpc_callback_failure_reset(lua_State *L, struct mxpc_callback_failure *f)
{
    luaL_unref(L, LUA_REGISTRYINDEX, f->raised_ref);
    f->raised_ref = LUA_NOREF;
    f->code[0] = '\0';
}

int mxpc_callback_call(lua_State *L, int nargs, struct mxpc_callback_failure *f, char *err, size_t errlen)
{
    if (lua_pcall(L, nargs, 2, 0) != LUA_OK) {
        mxpc_error_normalize(L, -1);
        const char *msg = mxpc_error_field(L, -1, "message");
        snprintf(err, errlen, "%s", msg ? msg : "error in a callback");
        luaL_unref(L, LUA_REGISTRYINDEX, f->raised_ref);
        f->raised_ref = luaL_ref(L, LUA_REGISTRYINDEX);
        return -1;
    }
    if (lua_type(L, -2) == LUA_TBOOLEAN && !lua_toboolean(L, -2) && lua_isnil(L, -1)) {
        lua_pop(L, 1);
        lua_pushstring(L, "failed");
    }
    if (!lua_toboolean(L, -2) && !lua_isnil(L, -1)) {
        mxpc_error_normalize(L, -1);
        const char *msg = mxpc_error_field(L, -1, "message");
        const char *code = mxpc_error_field(L, -1, "code");
        snprintf(err, errlen, "%s", msg ? msg : "failed");
        snprintf(f->code, sizeof f->code, "%s", code ? code : "io");
        lua_pop(L, 2);
        return -1;
    }
    return 0;
}

int mxpc_callback_source_chunk(lua_State *L, struct mxpc_callback_failure *f, char *err, size_t errlen)
{
    if (mxpc_callback_call(L, 0, f, err, errlen) != 0)
        return -1;
    if (lua_isnil(L, -2)) {
        lua_pop(L, 2);
        return 0;
    }
    if (lua_type(L, -2) != LUA_TSTRING) {
        snprintf(err, errlen, "the source returned a %s instead of a string", luaL_typename(L, -2));
        snprintf(f->code, sizeof f->code, "io");
        lua_pop(L, 2);
        return -1;
    }
    lua_pop(L, 1);
    return 1;
}

void mxpc_callback_reraise(lua_State *L, struct mxpc_callback_failure *f)
{
    if (f->raised_ref == LUA_NOREF)
        return;
    lua_rawgeti(L, LUA_REGISTRYINDEX, f->raised_ref);
    mxpc_callback_failure_reset(L, f);
    lua_error(L);
}
