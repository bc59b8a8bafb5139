/* The interrupt flag and the progress ticker: a leaf without Lua, which the
 * Lua runtime (runtime.c) plugs into, so that the mechanism code that polls
 * them (child processes, the HTTP transport, the S3 and Kubernetes clients,
 * archives) is used and tested without a Lua state.
 *
 * SIGINT and SIGTERM set the flag (mxpc_interrupt_install); long C loops poll
 * mxpc_interrupted() and stop. While deferred (past a point of no return) a
 * signal is recorded, not raised. A second signal ends the process at once. */
#ifndef MXPC_INTERRUPT_H
#define MXPC_INTERRUPT_H

/* 0, or the number of the signal that arrived (and is not deferred). */
int mxpc_interrupted(void);
/* Records a signal as the handlers do (for tests, and the REPL's Ctrl-C). */
void mxpc_interrupt_raise(int signo);
/* Forgets a signal, pending or deferred. */
void mxpc_interrupt_reset(void);

/* Called from the signal handler after the flag is set (async-signal-safe
 * code only): the Lua runtime sets a hook there so that running Lua code
 * raises at its next instruction. NULL: nobody is told. */
typedef void (*mxpc_interrupt_notify_fn)(int signo);
void mxpc_interrupt_set_notify(mxpc_interrupt_notify_fn fn);
/* Handles SIGINT and SIGTERM (again: a handled signal puts the default
 * back), ignores SIGPIPE. */
void mxpc_interrupt_install(void);

/* Deferring: with on, a signal from now on is only recorded; with off, a
 * recorded one becomes pending. Returns whether it was on. */
int mxpc_interrupt_defer(int on);
/* The signal that arrived, pending or deferred, or 0. */
int mxpc_interrupt_signal(void);

/* Seconds on a clock that never goes back. */
double mxpc_monotonic(void);

/* The ticker: long C loops (S3 transfers, archive reading and writing,
 * waiting for a child, a query) call mxpc_tick() as they go round; at most
 * every MXPC_TICK_SECONDS it calls the function set with mxpc_tick_set (the
 * runtime sets one that calls runtime.set_ticker's Lua function), never
 * while a signal is pending and never from inside itself, so progress can
 * be shown while C works. The function must only look and print. */
#define MXPC_TICK_SECONDS 0.1
typedef void (*mxpc_tick_fn)(void *ud);
void mxpc_tick_set(mxpc_tick_fn fn, void *ud); /* NULL: no ticker */
void mxpc_tick(void);

#endif
