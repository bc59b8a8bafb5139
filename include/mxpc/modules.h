/* Every C module, registered in package.preload by mxpc_runtime_new. Adding a
 * module = one C file with its luaopen_ function, one line here and one line
 * in the registry table in runtime.c. */
#ifndef MXPC_MODULES_H
#define MXPC_MODULES_H

#include <lua.h>

int luaopen_mxpc_error(lua_State *L);
int luaopen_mxpc_log(lua_State *L);
int luaopen_mxpc_fs(lua_State *L);
int luaopen_mxpc_archive(lua_State *L);
int luaopen_mxpc_process(lua_State *L);
int luaopen_mxpc_pg(lua_State *L);
int luaopen_mxpc_console(lua_State *L);
int luaopen_mxpc_k8s(lua_State *L);
int luaopen_mxpc_s3(lua_State *L);
int luaopen_mxpc_runtime(lua_State *L);

/* Pushes {status = exit code | signal = n, stderr = text} for a child that
 * was waited for (mod_process.c). */
struct mxpc_process;
void mxpc_process_push_result(lua_State *L, const struct mxpc_process *p, int status);

/* Registers the metatable `name` of a userdata handle: the metamethods, and
 * the methods as __index (lua_class.c). */
struct luaL_Reg;
void mxpc_lua_class(lua_State *L, const char *name, const struct luaL_Reg *methods,
                    const struct luaL_Reg *metamethods);

/* Pushes a table of linked library versions (versions.c). */
int mxpc_push_library_versions(lua_State *L);

#endif
