/* Strings, numbers and flags from Lua arguments, option tables and arrays,
 * for the C modules, and the fields of the tables they return.
 *
 * Strings and numbers are accepted; numbers are converted as tostring() does.
 * Lua keeps a string alive only while something references it, and a number
 * converted to a string is referenced by nothing but the stack slot it was
 * converted in: once that slot is popped, the garbage collector may free the
 * string while C still holds the pointer. So every string handed out here is
 * referenced from a "keep" table on the stack of the running C function, and
 * stays valid until that function returns.
 *
 *   lua_settop(L, 2);
 *   int keep = mxpc_args_keep(L);                          // 3
 *   size_t argc;
 *   const char **argv = mxpc_args_string_array(L, 1, keep, &argc, "command words must be strings");
 *   const char *name = mxpc_args_opt_string(L, 2, "name", keep);   // NULL when absent
 *
 * Misuse raises (wrong types), as everywhere in the modules. The functions
 * leave the stack as they found it, except mxpc_args_keep, which pushes. */
#ifndef MXPC_LUA_ARGS_H
#define MXPC_LUA_ARGS_H

#include <stddef.h>

#include <lua.h>

/* Pushes a new keep table and returns its (absolute) stack index. */
int mxpc_args_keep(lua_State *L);

/* The value at idx as a string kept alive in `keep` (its length in *len when
 * len is not NULL), or NULL when the value is nil or none; the value at idx
 * itself is not converted. Another type raises "WHAT must be a string". */
const char *mxpc_args_string(lua_State *L, int idx, int keep, size_t *len, const char *what);

/* Field `key` of the options table at opts as a string kept alive in `keep`,
 * or NULL when the field is nil or there are no options (opts is nil or
 * none). A field of another type raises "option 'KEY' must be a string". */
const char *mxpc_args_opt_string(lua_State *L, int opts, const char *key, int keep);

/* The array part 1..n of the table at idx, all strings or numbers, as a
 * NULL-terminated array of n strings (the array itself kept alive in `keep`,
 * like the strings); n in *count. Another element type raises an argument
 * error on idx with `what`. */
const char **mxpc_args_string_array(lua_State *L, int idx, int keep, size_t *count, const char *what);

/* Field `key` of the options table at opts as an integer (a whole number),
 * or def when it is nil; another value raises "option 'KEY' must be an
 * integer". */
lua_Integer mxpc_args_opt_integer(lua_State *L, int opts, const char *key, lua_Integer def);
/* Field `key` of the options table at opts: def when nil, else its truth. */
int mxpc_args_opt_bool(lua_State *L, int opts, const char *key, int def);

/* Fields of the table on top of the stack, for the runs of push/setfield
 * that build a result: t[key] = value. A NULL string sets nothing. */
void mxpc_field_string(lua_State *L, const char *key, const char *value);
void mxpc_field_integer(lua_State *L, const char *key, lua_Integer value);
void mxpc_field_boolean(lua_State *L, const char *key, int value);

#endif
