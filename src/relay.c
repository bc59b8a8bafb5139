/* A relay from one child's stdout to another's stdin: see include/mxpc/relay.h. */
#define _GNU_SOURCE
#include "mxpc/relay.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <unistd.h>

#include "mxpc/interrupt.h"
#include "mxpc/process.h"

#define CHUNK (1024 * 1024) /* bytes one splice moves at most */
#define POLL_MS 200         /* how often a wait looks at mxpc_interrupted() */

struct mxpc_relay {
    int in;          /* the producer's stdout: ours */
    int out;         /* a duplicate of the consumer's stdin: ours, -1 once done */
    int stop[2];     /* written by free: the thread ends */
    int done[2];     /* written by the thread when it ends */
    pthread_t thread;
    int started;
    _Atomic uint64_t bytes;
    atomic_int finished;
    int error;         /* errno of a failed read or write */
    int consumer_gone; /* the consumer stopped reading */
};

static void close_fd(int *fd)
{
    if (*fd >= 0)
        close(*fd);
    *fd = -1;
}

/* Waits until fd is ready for `events`: 1, or 0 when told to stop. */
static int ready(struct mxpc_relay *r, int fd, short events)
{
    for (;;) {
        struct pollfd pf[2] = {{fd, events, 0}, {r->stop[0], POLLIN, 0}};
        int n = poll(pf, 2, -1);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 || pf[1].revents)
            return 0;
        if (pf[0].revents)
            return 1;
    }
}

/* The consumer is gone: reads the rest of the producer's output and drops it. */
static void drain(struct mxpc_relay *r)
{
    char sink[16 * 1024];
    while (ready(r, r->in, POLLIN)) {
        ssize_t n = read(r->in, sink, sizeof sink);
        if (n == 0 || (n < 0 && errno != EINTR && errno != EAGAIN))
            return;
    }
}

/* write(2) of a read(2) chunk, for when splice cannot be used. 0 at the end,
 * 1 to go on, -1 with errno. */
static int copy_some(struct mxpc_relay *r, char *buf, size_t cap)
{
    ssize_t n = read(r->in, buf, cap);
    if (n == 0)
        return 0;
    if (n < 0)
        return errno == EINTR || errno == EAGAIN ? 1 : -1;
    size_t off = 0;
    while (off < (size_t)n) {
        if (!ready(r, r->out, POLLOUT))
            return 0;
        ssize_t w = write(r->out, buf + off, (size_t)n - off);
        if (w > 0) {
            off += (size_t)w;
            atomic_fetch_add(&r->bytes, (uint64_t)w);
        } else if (w < 0 && errno != EAGAIN && errno != EINTR) {
            return -1;
        }
    }
    return 1;
}

static void *run(void *arg)
{
    struct mxpc_relay *r = arg;
    int use_splice = 1;
    char *buf = NULL;
    for (;;) {
        if (!ready(r, r->in, POLLIN) || !ready(r, r->out, POLLOUT))
            break;
        int rc;
        if (use_splice) {
            ssize_t n = splice(r->in, NULL, r->out, NULL, CHUNK, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
            if (n > 0)
                atomic_fetch_add(&r->bytes, (uint64_t)n);
            rc = n > 0 ? 1 : n == 0 ? 0 : (errno == EAGAIN || errno == EINTR) ? 1 : -1;
            if (rc < 0 && errno == EINVAL) {
                use_splice = 0;
                rc = 1;
            }
        } else {
            if (!buf && !(buf = malloc(64 * 1024))) {
                r->error = ENOMEM;
                break;
            }
            rc = copy_some(r, buf, 64 * 1024);
        }
        if (rc == 0)
            break;
        if (rc < 0) {
            if (errno == EPIPE) {
                r->consumer_gone = 1;
                close_fd(&r->out);
                drain(r);
            } else {
                r->error = errno;
            }
            break;
        }
    }
    free(buf);
    close_fd(&r->out);
    atomic_store(&r->finished, 1);
    ssize_t w;
    do
        w = write(r->done[1], "x", 1);
    while (w < 0 && errno == EINTR);
    return NULL;
}

int mxpc_relay_start(struct mxpc_relay **out, struct mxpc_process *producer, struct mxpc_process *consumer)
{
    *out = NULL;
    if (mxpc_process_stdin_fd(consumer) < 0)
        return EINVAL;
    struct mxpc_relay *r = calloc(1, sizeof *r);
    if (!r)
        return ENOMEM;
    r->in = r->out = -1;
    r->stop[0] = r->stop[1] = r->done[0] = r->done[1] = -1;
    int e = 0;
    if (pipe2(r->stop, O_CLOEXEC) != 0 || pipe2(r->done, O_CLOEXEC) != 0)
        e = errno;
    if (!e && (r->out = fcntl(mxpc_process_stdin_fd(consumer), F_DUPFD_CLOEXEC, 0)) < 0)
        e = errno;
    if (!e && (r->in = mxpc_process_take_stdout(producer)) < 0)
        e = EINVAL;
    if (!e) {
        /* signals are for the main thread, which polls for them */
        sigset_t all, old;
        sigfillset(&all);
        pthread_sigmask(SIG_SETMASK, &all, &old);
        e = pthread_create(&r->thread, NULL, run, r);
        pthread_sigmask(SIG_SETMASK, &old, NULL);
        r->started = e == 0;
    }
    if (e) {
        mxpc_relay_free(r);
        return e;
    }
    *out = r;
    return 0;
}

int mxpc_relay_poll(struct mxpc_relay *r)
{
    return atomic_load(&r->finished);
}

int mxpc_relay_wait(struct mxpc_relay *r, long ms)
{
    double until = ms >= 0 ? mxpc_monotonic() + (double)ms / 1000 : 0;
    while (!atomic_load(&r->finished)) {
        mxpc_tick();
        if (mxpc_interrupted())
            return MXPC_PROCESS_EINTERRUPTED;
        double left = until - mxpc_monotonic();
        if (ms >= 0 && left <= 0)
            return 0;
        int wait = ms >= 0 && left * 1000 < POLL_MS ? (int)(left * 1000) + 1 : POLL_MS;
        struct pollfd pf = {r->done[0], POLLIN, 0};
        poll(&pf, 1, wait);
    }
    return 1;
}

uint64_t mxpc_relay_bytes(const struct mxpc_relay *r)
{
    return atomic_load(&((struct mxpc_relay *)r)->bytes);
}

int mxpc_relay_result(const struct mxpc_relay *r, int *consumer_gone)
{
    if (consumer_gone)
        *consumer_gone = r->consumer_gone;
    return r->error;
}

void mxpc_relay_free(struct mxpc_relay *r)
{
    if (!r)
        return;
    if (r->started) {
        ssize_t w;
        do
            w = write(r->stop[1], "x", 1);
        while (w < 0 && errno == EINTR);
        pthread_join(r->thread, NULL);
    }
    close_fd(&r->in);
    close_fd(&r->out);
    for (int i = 0; i < 2; i++) {
        close_fd(&r->stop[i]);
        close_fd(&r->done[i]);
    }
    free(r);
}
