/* The interrupt flag and the progress ticker. See include/mxpc/interrupt.h. */
#include "mxpc/interrupt.h"

#include <signal.h>
#include <stddef.h>
#include <string.h>
#include <time.h>

static volatile sig_atomic_t pending_signal;
/* while deferring, a signal is only recorded here */
static volatile sig_atomic_t deferring, deferred_signal;
static mxpc_interrupt_notify_fn notify;

int mxpc_interrupted(void) { return pending_signal; }

void mxpc_interrupt_reset(void)
{
    pending_signal = 0;
    deferred_signal = 0;
}

void mxpc_interrupt_raise(int signo)
{
    if (deferring) {
        deferred_signal = signo;
        return;
    }
    pending_signal = signo;
    mxpc_interrupt_notify_fn fn = notify;
    if (fn)
        fn(signo);
}

void mxpc_interrupt_set_notify(mxpc_interrupt_notify_fn fn) { notify = fn; }

static void on_signal(int signo)
{
    /* a second signal while cleaning up ends the process at once */
    signal(signo, SIG_DFL);
    mxpc_interrupt_raise(signo);
}

void mxpc_interrupt_install(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
}

int mxpc_interrupt_defer(int on)
{
    int was = deferring;
    if (on) {
        deferring = 1;
    } else {
        deferring = 0;
        if (deferred_signal) {
            pending_signal = deferred_signal;
            deferred_signal = 0;
        }
    }
    return was;
}

int mxpc_interrupt_signal(void) { return pending_signal ? pending_signal : deferred_signal; }

double mxpc_monotonic(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* --- the ticker ----------------------------------------------------------- */

static mxpc_tick_fn tick_fn;
static void *tick_ud;
static int tick_busy;
static double tick_next;

void mxpc_tick_set(mxpc_tick_fn fn, void *ud)
{
    tick_fn = fn;
    tick_ud = ud;
    tick_next = 0;
}

void mxpc_tick(void)
{
    if (!tick_fn || tick_busy || pending_signal)
        return;
    double now = mxpc_monotonic();
    if (now < tick_next)
        return;
    tick_next = now + MXPC_TICK_SECONDS;
    tick_busy = 1;
    tick_fn(tick_ud);
    tick_busy = 0;
}
