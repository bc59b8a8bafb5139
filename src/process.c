/* Child processes: see include/mxpc/process.h. */
#define _GNU_SOURCE
#include "mxpc/process.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "mxpc/buf.h"
#include "mxpc/interrupt.h"

extern char **environ;

#define STDERR_DEFAULT (16 * 1024)
#define POLL_MS 200 /* how often a wait looks at mxpc_interrupted() */

struct mxpc_process {
    pid_t pid;                /* 0 once reaped */
    struct timespec deadline; /* CLOCK_MONOTONIC; tv_sec 0 = none */
    int in, out, err;         /* our ends, -1 when closed */
    struct mxpc_buf errtext;
    size_t errmax;
    int errcut;
};

static void close_fd(int *fd)
{
    if (*fd >= 0)
        close(*fd);
    *fd = -1;
}

/* Variables of the program's own environment that no child gets (a child's
 * environment can be read in /proc by its user). Which ones is Lua's
 * decision (mxpc.main: the secrets it reads from its environment). */
#define MAX_WITHHELD 16
static char *withheld[MAX_WITHHELD]; /* "NAME=" */

int mxpc_process_withhold(const char *name)
{
    size_t len = strlen(name);
    if (len == 0 || strchr(name, '='))
        return EINVAL;
    size_t i = 0;
    for (; i < MAX_WITHHELD && withheld[i]; i++)
        if (strncmp(withheld[i], name, len) == 0 && withheld[i][len] == '=')
            return 0;
    if (i == MAX_WITHHELD)
        return ENOSPC;
    char *entry = malloc(len + 2);
    if (!entry)
        return ENOMEM;
    memcpy(entry, name, len);
    memcpy(entry + len, "=", 2);
    withheld[i] = entry;
    return 0;
}

static int is_withheld(const char *entry)
{
    for (size_t i = 0; i < MAX_WITHHELD && withheld[i]; i++)
        if (strncmp(entry, withheld[i], strlen(withheld[i])) == 0)
            return 1;
    return 0;
}

/* environ with the entries of add set (replacing same-named ones), without
 * the withheld ones. */
static char **merged_environment(const char *const *add)
{
    size_t n = 0, k = 0;
    while (environ[n])
        n++;
    while (add && add[k])
        k++;
    char **env = calloc(n + k + 1, sizeof *env);
    if (!env)
        return NULL;
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        int replaced = 0;
        for (size_t j = 0; j < k && !replaced; j++) {
            size_t len = strcspn(add[j], "=");
            replaced = strncmp(environ[i], add[j], len) == 0 && environ[i][len] == '=';
        }
        if (!replaced && !is_withheld(environ[i]))
            env[m++] = environ[i];
    }
    for (size_t j = 0; j < k; j++)
        env[m++] = (char *)add[j];
    return env;
}

/* Sets up one of the child's standard streams; our end of a pipe goes to *ours. */
static int plan_stream(posix_spawn_file_actions_t *fa, int child_fd, enum mxpc_process_stream mode, int fd, int *ours,
                       int *theirs)
{
    *ours = *theirs = -1;
    if (mode == MXPC_PROCESS_NULL)
        return posix_spawn_file_actions_addopen(fa, child_fd, "/dev/null", child_fd == 0 ? O_RDONLY : O_WRONLY, 0);
    if (mode == MXPC_PROCESS_FD)
        return posix_spawn_file_actions_adddup2(fa, fd, child_fd);
    int pfd[2];
    if (pipe2(pfd, O_CLOEXEC) != 0)
        return errno;
    /* stdin: the child reads pfd[0]; stdout/stderr: the child writes pfd[1] */
    *theirs = child_fd == 0 ? pfd[0] : pfd[1];
    *ours = child_fd == 0 ? pfd[1] : pfd[0];
    return posix_spawn_file_actions_adddup2(fa, *theirs, child_fd);
}

int mxpc_process_spawn(struct mxpc_process **out, const struct mxpc_process_options *o)
{
    *out = NULL;
    struct mxpc_process *p = calloc(1, sizeof *p);
    if (!p)
        return ENOMEM;
    p->in = p->out = p->err = -1;
    p->errmax = o->stderr_max ? o->stderr_max : STDERR_DEFAULT;
    int theirs[3] = {-1, -1, -1};
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawnattr_t at;
    posix_spawnattr_init(&at);
    int rc = plan_stream(&fa, 0, o->in, o->in_fd, &p->in, &theirs[0]);
    if (rc == 0)
        rc = plan_stream(&fa, 1, o->out, o->out_fd, &p->out, &theirs[1]);
    if (rc == 0)
        rc = plan_stream(&fa, 2, MXPC_PROCESS_PIPE, -1, &p->err, &theirs[2]);
    char **env = rc == 0 ? merged_environment(o->env_add) : NULL;
    if (rc == 0 && !env)
        rc = ENOMEM;
    if (rc == 0) {
        /* we ignore SIGPIPE and handle SIGINT; the child gets the defaults */
        sigset_t def;
        sigemptyset(&def);
        sigaddset(&def, SIGPIPE);
        sigaddset(&def, SIGINT);
        sigaddset(&def, SIGTERM);
        posix_spawnattr_setsigdefault(&at, &def);
        posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSIGDEF);
        rc = posix_spawnp(&p->pid, o->argv[0], &fa, &at, (char *const *)o->argv, env);
    }
    free(env);
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&at);
    for (int i = 0; i < 3; i++)
        close_fd(&theirs[i]);
    if (rc != 0) {
        p->pid = 0;
        mxpc_process_free(p);
        return rc;
    }
    if (p->in >= 0)
        fcntl(p->in, F_SETFL, O_NONBLOCK);
    *out = p;
    return 0;
}

/* Reads what is there on stderr, keeping the first errmax bytes. */
void mxpc_process_set_timeout(struct mxpc_process *p, long ms)
{
    clock_gettime(CLOCK_MONOTONIC, &p->deadline);
    p->deadline.tv_sec += ms / 1000;
    p->deadline.tv_nsec += (ms % 1000) * 1000000L;
    if (p->deadline.tv_nsec >= 1000000000L) {
        p->deadline.tv_sec++;
        p->deadline.tv_nsec -= 1000000000L;
    }
}

static int past_deadline(const struct mxpc_process *p)
{
    if (p->deadline.tv_sec == 0)
        return 0;
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return now.tv_sec > p->deadline.tv_sec || (now.tv_sec == p->deadline.tv_sec && now.tv_nsec >= p->deadline.tv_nsec);
}

static void drain_stderr(struct mxpc_process *p)
{
    char buf[4096];
    ssize_t n = read(p->err, buf, sizeof buf);
    if (n < 0 && errno == EINTR)
        return;
    if (n <= 0) {
        close_fd(&p->err);
        return;
    }
    size_t keep = p->errtext.len < p->errmax ? p->errmax - p->errtext.len : 0;
    if ((size_t)n > keep)
        p->errcut = 1;
    mxpc_buf_append(&p->errtext, buf, (size_t)n < keep ? (size_t)n : keep);
}

/* Waits until fd is ready for `events` while draining stderr. Returns 1 when
 * ready (or hung up), 0 when fd is -1, MXPC_PROCESS_EINTERRUPTED,
 * MXPC_PROCESS_ETIMEDOUT. */
static int wait_ready(struct mxpc_process *p, int fd, short events, short *revents)
{
    for (;;) {
        mxpc_tick();
        if (mxpc_interrupted())
            return MXPC_PROCESS_EINTERRUPTED;
        if (past_deadline(p))
            return MXPC_PROCESS_ETIMEDOUT;
        struct pollfd pf[2];
        int n = 0, ifd = -1, ierr = -1;
        if (fd >= 0)
            pf[ifd = n++] = (struct pollfd){fd, events, 0};
        if (p->err >= 0 && p->err != fd)
            pf[ierr = n++] = (struct pollfd){p->err, POLLIN, 0};
        if (n == 0)
            return 0;
        if (poll(pf, (nfds_t)n, POLL_MS) <= 0)
            continue;
        if (ierr >= 0 && pf[ierr].revents)
            drain_stderr(p);
        if (ifd >= 0 && pf[ifd].revents) {
            *revents = pf[ifd].revents;
            return 1;
        }
        if (fd < 0 && p->err < 0)
            return 0;
    }
}

int mxpc_process_write(struct mxpc_process *p, const void *data, size_t len)
{
    const char *d = data;
    while (len > 0) {
        if (p->in < 0)
            return 1;
        short rev = 0;
        int r = wait_ready(p, p->in, POLLOUT, &rev);
        if (r < 0)
            return r;
        if (rev & (POLLERR | POLLHUP)) {
            close_fd(&p->in);
            return 1;
        }
        ssize_t n = write(p->in, d, len);
        if (n > 0) {
            d += n;
            len -= (size_t)n;
        } else if (n < 0 && errno == EPIPE) {
            close_fd(&p->in);
            return 1;
        } else if (n < 0 && errno != EAGAIN && errno != EINTR) {
            return -1;
        }
    }
    return 0;
}

void mxpc_process_close_stdin(struct mxpc_process *p)
{
    close_fd(&p->in);
}

ssize_t mxpc_process_read(struct mxpc_process *p, void *buf, size_t cap)
{
    for (;;) {
        if (p->out < 0)
            return 0;
        short rev = 0;
        int r = wait_ready(p, p->out, POLLIN, &rev);
        if (r < 0)
            return r;
        ssize_t n = read(p->out, buf, cap);
        if (n > 0)
            return n;
        if (n == 0) {
            close_fd(&p->out);
            return 0;
        }
        if (errno != EINTR && errno != EAGAIN)
            return -1;
    }
}

int mxpc_process_wait(struct mxpc_process *p, int *status)
{
    close_fd(&p->in);
    close_fd(&p->out); /* output nobody reads is not waited for */
    while (p->err >= 0) {
        short rev = 0;
        int r = wait_ready(p, p->err, POLLIN, &rev);
        if (r < 0)
            return r;
        if (r == 1)
            drain_stderr(p);
    }
    if (p->pid <= 0) {
        errno = ECHILD;
        return -1;
    }
    for (;;) {
        pid_t w = waitpid(p->pid, status, WNOHANG);
        if (w == p->pid)
            break;
        if (w < 0 && errno != EINTR)
            return -1;
        mxpc_tick();
        if (mxpc_interrupted())
            return MXPC_PROCESS_EINTERRUPTED;
        if (past_deadline(p))
            return MXPC_PROCESS_ETIMEDOUT;
        if (w == 0)
            usleep(10 * 1000);
    }
    p->pid = 0;
    return 0;
}

int mxpc_process_poll(struct mxpc_process *p)
{
    if (p->pid <= 0)
        return 1;
    if (p->err >= 0) {
        struct pollfd f = {p->err, POLLIN, 0};
        if (poll(&f, 1, 0) > 0)
            drain_stderr(p);
    }
    siginfo_t si;
    memset(&si, 0, sizeof si);
    if (waitid(P_PID, (id_t)p->pid, &si, WEXITED | WNOHANG | WNOWAIT) != 0)
        return errno == EINTR ? 0 : -1;
    return si.si_pid == p->pid;
}

int mxpc_process_take_stdout(struct mxpc_process *p)
{
    int fd = p->out;
    p->out = -1;
    return fd;
}

void mxpc_process_drain_stderr(struct mxpc_process *p)
{
    for (int i = 0; i < 64 && p->err >= 0; i++) {
        struct pollfd f = {p->err, POLLIN, 0};
        if (poll(&f, 1, 0) <= 0)
            return;
        drain_stderr(p);
    }
}

int mxpc_process_stdin_fd(const struct mxpc_process *p)
{
    return p->in;
}

const char *mxpc_process_stderr(const struct mxpc_process *p, int *cut)
{
    if (cut)
        *cut = p->errcut;
    return p->errtext.data ? p->errtext.data : "";
}

pid_t mxpc_process_pid(const struct mxpc_process *p)
{
    return p->pid;
}
int mxpc_process_running(const struct mxpc_process *p)
{
    return p->pid > 0;
}

void mxpc_process_kill(struct mxpc_process *p)
{
    /* Our ends are closed only once the child is gone: a child that saw the
     * end of its input first could act on it (psql --single-transaction
     * would commit what it got). */
    if (p->pid > 0) {
        /* SIGTERM, and SIGKILL for a child that ignores it for 2 s */
        kill(p->pid, SIGTERM);
        for (int i = 0; i < 200; i++) {
            pid_t w = waitpid(p->pid, NULL, WNOHANG);
            if (w == p->pid || (w < 0 && errno != EINTR)) {
                p->pid = 0;
                break;
            }
            usleep(10 * 1000);
        }
        if (p->pid > 0) {
            kill(p->pid, SIGKILL);
            while (waitpid(p->pid, NULL, 0) < 0 && errno == EINTR) {
            }
            p->pid = 0;
        }
    }
    close_fd(&p->in);
    close_fd(&p->out);
    close_fd(&p->err);
}

void mxpc_process_free(struct mxpc_process *p)
{
    if (!p)
        return;
    mxpc_process_kill(p);
    mxpc_buf_free(&p->errtext);
    free(p);
}
