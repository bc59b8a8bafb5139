/* Lua functions called from C as byte sinks and sources (archive, S3).
 *
 * They run in a protected call, so that an error they raise never unwinds
 * through a C library (libarchive, libcurl): it is kept, and raised again once
 * the library has returned (mxpc_callback_reraise). A callback fails by
 * raising, by returning `nil, err` (whose code is kept) or by returning false. */
#ifndef MXPC_LUA_CALLBACK_H
#define MXPC_LUA_CALLBACK_H

#include <stddef.h>

#include <lauxlib.h>
#include <lua.h>

struct mxpc_callback_failure {
    int raised_ref; /* registry ref of the error it raised, or LUA_NOREF */
    char code[64];  /* code of the error object it returned, or "" */
};

#define MXPC_CALLBACK_FAILURE_INIT {LUA_NOREF, ""}

void mxpc_callback_failure_reset(lua_State *L, struct mxpc_callback_failure *f);

/* Calls the function below its `nargs` arguments, expecting `value, err`.
 * Returns 0 leaving the two results, or -1 leaving nothing, with the message
 * in err and the failure recorded in f. */
int mxpc_callback_call(lua_State *L, int nargs, struct mxpc_callback_failure *f, char *err, size_t errlen);

/* Calls the source function on top of the stack for its next chunk: 1 leaves
 * the chunk (a string, possibly empty) on the stack, 0 means the end (the
 * source returned nil; nothing left), -1 a failure (message in err). */
int mxpc_callback_source_chunk(lua_State *L, struct mxpc_callback_failure *f, char *err, size_t errlen);

/* If a callback raised an error, raises it again (does not return). */
void mxpc_callback_reraise(lua_State *L, struct mxpc_callback_failure *f);

#endif
