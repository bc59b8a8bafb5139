/* The metatable of a userdata handle: metamethods, and `methods` as __index. */
#include <lauxlib.h>

#include "mxpc/modules.h"

void mxpc_lua_class(lua_State *L, const char *name, const luaL_Reg *methods, const luaL_Reg *metamethods)
{
    luaL_newmetatable(L, name);
    luaL_setfuncs(L, metamethods, 0);
    lua_newtable(L);
    luaL_setfuncs(L, methods, 0);
    lua_setfield(L, -2, "__index");
    lua_pop(L, 1);
}
