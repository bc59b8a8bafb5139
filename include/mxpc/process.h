/* Child processes (pg_dump, pg_restore, ...): spawned without a shell, with
 * extra environment variables (so secrets never appear on a command line),
 * stdin/stdout as pipes, /dev/null or a file, and stderr captured (bounded)
 * for error messages. Writing to stdin and reading stdout keep draining
 * stderr, so a chatty child cannot block. Every wait polls
 * mxpc_interrupted() and returns MXPC_PROCESS_EINTERRUPTED when a signal
 * arrived; mxpc_process_free() then kills and reaps the child. */
#ifndef MXPC_PROCESS_H
#define MXPC_PROCESS_H

#include <stddef.h>
#include <sys/types.h>

enum mxpc_process_stream {
    MXPC_PROCESS_NULL = 0, /* /dev/null */
    MXPC_PROCESS_PIPE,     /* a pipe to or from us */
    MXPC_PROCESS_FD,       /* a file descriptor of ours (dup'ed; we keep ours) */
};

enum {
    MXPC_PROCESS_EINTERRUPTED = -2,
    MXPC_PROCESS_ETIMEDOUT = -3, /* past the time set by mxpc_process_set_timeout */
};

struct mxpc_process_options {
    const char *const *argv;    /* argv[0] is looked up in PATH */
    const char *const *env_add; /* "NAME=value" entries set for the child; may be NULL */
    enum mxpc_process_stream in, out;
    int in_fd, out_fd; /* for MXPC_PROCESS_FD */
    size_t stderr_max; /* bytes of stderr kept; 0 = 16 KiB */
};

struct mxpc_process;

/* From now on, no child gets the variable NAME of the program's environment
 * (a secret read from it). Returns 0, EINVAL, ENOSPC (16 names) or ENOMEM. */
int mxpc_process_withhold(const char *name);

/* Returns 0 with *out set, or an errno value (ENOENT: no such command). */
int mxpc_process_spawn(struct mxpc_process **out, const struct mxpc_process_options *opts);

/* Writes all of data to the child's stdin (PIPE). Returns 0; 1 if the child
 * closed its stdin (it stopped reading: judge it by its exit status);
 * MXPC_PROCESS_EINTERRUPTED; or -1 with errno. */
int mxpc_process_write(struct mxpc_process *p, const void *data, size_t len);
void mxpc_process_close_stdin(struct mxpc_process *p);

/* Reads up to cap bytes of the child's stdout (PIPE): the count, 0 at the end,
 * MXPC_PROCESS_EINTERRUPTED, or -1 with errno. */
ssize_t mxpc_process_read(struct mxpc_process *p, void *buf, size_t cap);

/* Closes stdin, reads stderr to its end and reaps the child: 0 with the
 * wait status in *status, MXPC_PROCESS_EINTERRUPTED, or -1 with errno. */
int mxpc_process_wait(struct mxpc_process *p, int *status);

/* Without waiting: 1 if the child has ended (mxpc_process_wait then reaps it
 * at once), 0 if it still runs, -1 with errno. Reads what stderr has. */
int mxpc_process_poll(struct mxpc_process *p);

/* Hands our end of the child's stdout pipe to the caller (to become another
 * child's stdin, for a pipeline); returns -1 if there is none. */
int mxpc_process_take_stdout(struct mxpc_process *p);

/* Reads whatever the child's stderr holds now, without waiting (so that a
 * child whose other streams someone else moves cannot block on it). */
void mxpc_process_drain_stderr(struct mxpc_process *p);

/* Our end of the child's stdin pipe (non-blocking), still ours: -1 if none. */
int mxpc_process_stdin_fd(const struct mxpc_process *p);

/* What the child wrote to stderr so far (NUL-terminated), whether it was cut. */
const char *mxpc_process_stderr(const struct mxpc_process *p, int *cut);
pid_t mxpc_process_pid(const struct mxpc_process *p);
int mxpc_process_running(const struct mxpc_process *p);

/* From now on, read, write and wait give up with MXPC_PROCESS_ETIMEDOUT once
 * `ms` milliseconds have passed (the child still runs: free or kill it). */
void mxpc_process_set_timeout(struct mxpc_process *p, long ms);

/* Sends SIGTERM to a running child (SIGKILL if it is still there 2 s later)
 * and reaps it. Idempotent. */
void mxpc_process_kill(struct mxpc_process *p);
/* Kills a running child, closes everything, frees. NULL is fine. */
void mxpc_process_free(struct mxpc_process *p);

#endif
