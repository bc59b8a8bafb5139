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
int luaopen_mxpc_fileset(lua_State *L);
int luaopen_mxpc_s3(lua_State *L);
int luaopen_mxpc_aws(lua_State *L);
int luaopen_mxpc_azure(lua_State *L);
int luaopen_mxpc_http(lua_State *L);
int luaopen_mxpc_sigv4(lua_State *L);
int luaopen_mxpc_yaml(lua_State *L);
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

/* The archive of the mxpc.archive writer handle at idx, for C code that
 * adds entries (mod_s3.c); raises if it is closed or has an entry open.
 * *mtime gets the time its entries carry. */
struct mxpc_archive_writer;
struct mxpc_archive_writer *mxpc_lua_archive_writer(lua_State *L, int idx, long long *mtime);

/* The reader of the mxpc.archive entry at idx, positioned in that entry
 * (raises if the reader moved past it), for C code that reads entries. */
struct mxpc_archive_reader;
int mxpc_lua_is_archive_entry(lua_State *L, int idx);
struct mxpc_archive_reader *mxpc_lua_archive_entry(lua_State *L, int idx);

/* The child of the mxpc.process handle at idx (raises if it is not one), or
 * NULL once it is closed (mod_process.c). */
struct mxpc_process *mxpc_lua_process(lua_State *L, int idx);

/* Pushes a table of linked library versions (versions.c). */
int mxpc_push_library_versions(lua_State *L);

#endif
