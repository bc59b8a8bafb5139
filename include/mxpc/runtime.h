/* The Lua runtime: state creation, module registry, script search order,
 * protected calls, and Lua's side of interruption and the ticker. */
#ifndef MXPC_RUNTIME_H
#define MXPC_RUNTIME_H

#include <stddef.h>

#include <lua.h>

#include "mxpc/interrupt.h"

struct mxpc_runtime_options {
    const char *scripts_dir; /* --scripts DIR or $MXPC_SCRIPTS; may be NULL */
    const char *data_dir;    /* installed scripts; NULL = built-in default */
};

/* One embedded file (generated at build time from lua/ and scripts/). */
struct mxpc_embedded_file {
    const char *path; /* e.g. "lua/mxpc/main.lua", "scripts/backup.lua" */
    const char *data;
    size_t size;
};
extern const struct mxpc_embedded_file mxpc_embedded_files[];
extern const size_t mxpc_embedded_count;
const struct mxpc_embedded_file *mxpc_embedded_find(const char *path);

/* Creates a state with the standard libraries, every mxpc.* C module and cjson
 * in package.preload, package.path set to the search order, and the embedded
 * searcher appended. Returns NULL when out of memory. */
lua_State *mxpc_runtime_new(const struct mxpc_runtime_options *opts);

/* Calls the function below `nargs` arguments with the traceback handler.
 * On error leaves one normalized error object (with a `traceback` field) on the
 * stack and returns its status; otherwise like lua_pcall with nresults. */
int mxpc_runtime_pcall(lua_State *L, int nargs, int nresults);

/* Interruption (the flag itself is in interrupt.h): the signal handlers
 * also make the running Lua code raise an "interrupted" error at its next
 * instruction. */
void mxpc_runtime_install_signal_handlers(lua_State *L);

/* Raises the interruption error if a signal arrived; for C functions called
 * from Lua. */
void mxpc_check_interrupt(lua_State *L);

/* For C code whose lua_pcall failed with the interruption error and which
 * does not raise it: makes the Lua code raise it again at its next
 * instruction (the hook that raised it inside that call is cleared). */
void mxpc_interrupt_rearm(void);

/* runtime.set_ticker(fn) plugs fn into mxpc_tick (interrupt.h). */

int luaopen_mxpc_runtime(lua_State *L);

#endif
