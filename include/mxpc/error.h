/* Error objects shared by every module.
 *
 * Convention (docs/architecture.md): misuse of an API raises a Lua error
 * (luaL_argerror/luaL_error); a failure of the outside world (file, network,
 * server) returns `nil, err` where err is an error object: a table with
 * metatable "mxpc.error" and fields `code` (short machine word), `message`
 * (one line for a person) and optionally `hint` (what to do). */
#ifndef MXPC_ERROR_H
#define MXPC_ERROR_H

#include <lua.h>

#define MXPC_ERROR_META "mxpc.error"

/* Exit codes of the program, also used by the error codes that map to them. */
enum mxpc_exit {
    MXPC_EXIT_OK = 0,
    MXPC_EXIT_FAILURE = 1,
    MXPC_EXIT_USAGE = 2,
    MXPC_EXIT_SIGINT = 130,
    MXPC_EXIT_SIGTERM = 143,
};

/* Pushes a new error object. `hint` may be NULL. */
void mxpc_error_push(lua_State *L, const char *code, const char *hint, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Pushes nil and an error object; returns 2 (for `return mxpc_error_fail(...)`). */
int mxpc_error_fail(lua_State *L, const char *code, const char *hint, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Raises an error object; does not return. */
int mxpc_error_raise(lua_State *L, const char *code, const char *hint, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Like mxpc_error_fail with code "io" and the text of errno appended. */
int mxpc_error_fail_errno(lua_State *L, int err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Turns the value at `idx` into an error object in place if it is not one
 * (a string becomes {code="error", message=string}). */
void mxpc_error_normalize(lua_State *L, int idx);

/* Reads field `name` (a string) of the error object at idx, or NULL. The
 * pointer stays valid while the object is on the stack. */
const char *mxpc_error_field(lua_State *L, int idx, const char *name);

/* The one message handler (error.traceback in Lua): the error at 1 as an
 * error object with a `traceback` field (kept if it has one: where it was
 * first raised), from `level` (argument 2, default 1: the function that
 * raised; 2 when called from a Lua handler). Returns 1. */
int mxpc_error_traceback(lua_State *L);

/* The exit code an error object maps to (usage -> 2, interrupted -> 130/143). */
int mxpc_error_exit_code(lua_State *L, int idx);

/* The message without the Lua source positions ("chunk:line: ") that Lua
 * puts in front of errors raised with error() or luaL_error: a position is
 * skipped when its chunk ran (the traceback names it) or is one of the
 * embedded files; so "host:5432: refused" and a script's syntax error keep
 * theirs. Returns a pointer into msg. For the top-level message: positions
 * are shown only with --debug. */
const char *mxpc_error_skip_positions(const char *msg, const char *traceback);

int luaopen_mxpc_error(lua_State *L);

#endif
