/* The Lua runtime: state creation, module registry, script search order,
 * protected calls and interruption. */
#ifndef MXPC_RUNTIME_H
#define MXPC_RUNTIME_H

#include <signal.h>
#include <stddef.h>

#include <lua.h>

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

/* Interruption: signal handlers record the signal and make the running Lua
 * code raise an "interrupted" error at its next instruction; long C loops
 * poll mxpc_interrupted(). */
void mxpc_runtime_install_signal_handlers(lua_State *L);
int mxpc_interrupted(void); /* 0 or the signal number */
/* For tests and the REPL (which clears a handled Ctrl-C). */
void mxpc_interrupt_reset(void);
void mxpc_interrupt_raise(int signo);

/* Raises the interruption error if a signal arrived; for C loops. */
void mxpc_check_interrupt(lua_State *L);

/* The ticker: long C loops (S3 transfers, archive reading and writing,
 * waiting for a child, a query) call mxpc_tick() as they go round; at most
 * every MXPC_TICK_SECONDS it calls the Lua function set with
 * runtime.set_ticker(fn), on the main thread, so progress can be shown while
 * C works. The function must only look (counters, sizes) and print: it runs
 * in the middle of the C call. An error in it stops the ticker (with a
 * warning); a signal is left to the loop to report. */
#define MXPC_TICK_SECONDS 0.1
void mxpc_tick(void);

int luaopen_mxpc_runtime(lua_State *L);

#endif
