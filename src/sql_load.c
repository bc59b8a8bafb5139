/* A child's SQL run on a connection of ours by a thread: see include/mxpc/sql_load.h. */
#define _GNU_SOURCE
#include "mxpc/sql_load.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "mxpc/buf.h"
#include "mxpc/interrupt.h"
#include "mxpc/process.h"
#include "mxpc/sql_split.h"

#define BATCH (256 * 1024)      /* bytes of statements sent as one simple query */
#define PIPE_SIZE (1024 * 1024) /* the producer's pipe: fewer wake-ups per megabyte */
#define POLL_MS 200             /* how often a wait looks at mxpc_interrupted() */
#define CANCEL_WAIT_MS 3000     /* how long stopping a load waits for the server to take its cancel */

struct mxpc_sql_load {
    PGconn *conn;
    PGcancel *cancel;
    PQnoticeProcessor notices; /* the connection's own (libpq's, whose argument is NULL), put back at the end */
    int in;      /* the producer's stdout: ours */
    int stop[2]; /* written by free: the thread ends */
    int done[2]; /* written by the thread when it ends */
    pthread_t thread;
    int started;
    struct mxpc_sql_split *split;
    int in_copy; /* the server waits for COPY data */
    int eof;     /* the producer's output ended */
    _Atomic uint64_t bytes;
    atomic_int finished;
    atomic_int stopping;
    struct mxpc_sql_failure failure; /* failure.message[0]: failed */
};

static void close_fd(int *fd)
{
    if (*fd >= 0)
        close(*fd);
    *fd = -1;
}

static void ignore_notice(void *arg, const char *message)
{
    (void)arg;
    (void)message; /* the dump's SQL asks for warnings only; a restore has no one to show them to */
}

__attribute__((format(printf, 2, 3))) static void set_error(struct mxpc_sql_load *l, const char *fmt, ...)
{
    if (l->failure.message[0])
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(l->failure.message, sizeof l->failure.message, fmt, ap);
    va_end(ap);
    mxpc_one_line(l->failure.message);
}

static void copy_field(char *out, size_t cap, const PGresult *res, int field)
{
    const char *v = res ? PQresultErrorField(res, field) : NULL;
    snprintf(out, cap, "%s", v ? v : "");
}

void mxpc_sql_failure_set(struct mxpc_sql_failure *f, const PGresult *res, PGconn *conn, const char *sql)
{
    memset(f, 0, sizeof *f);
    copy_field(f->message, sizeof f->message, res, PG_DIAG_MESSAGE_PRIMARY);
    if (!f->message[0])
        snprintf(f->message, sizeof f->message, "%s", PQerrorMessage(conn));
    if (!f->message[0])
        snprintf(f->message, sizeof f->message, "the server's answer was lost");
    mxpc_one_line(f->message);
    copy_field(f->sqlstate, sizeof f->sqlstate, res, PG_DIAG_SQLSTATE);
    copy_field(f->detail, sizeof f->detail, res, PG_DIAG_MESSAGE_DETAIL);
    copy_field(f->hint, sizeof f->hint, res, PG_DIAG_MESSAGE_HINT);
    copy_field(f->context, sizeof f->context, res, PG_DIAG_CONTEXT);
    const char *pos = res ? PQresultErrorField(res, PG_DIAG_STATEMENT_POSITION) : NULL;
    if (pos && sql)
        mxpc_sql_line_at(sql, strtol(pos, NULL, 10), f->near, sizeof f->near);
}

/* The server refused: its fields, and the statement it points at when it says. */
static void server_error(struct mxpc_sql_load *l, PGresult *res, const char *sql)
{
    if (!l->failure.message[0])
        mxpc_sql_failure_set(&l->failure, res, l->conn, sql);
}

static void drain_results(PGconn *conn)
{
    PGresult *r;
    while ((r = PQgetResult(conn)) != NULL)
        PQclear(r);
}

/* Runs `sql` as one simple query: 0 when it ran, 1 when it is a COPY that
 * waits for data (only where `copy` allows one), -1 on failure. */
static int run_sql(struct mxpc_sql_load *l, const char *sql, int copy)
{
    PGresult *res = PQexec(l->conn, sql);
    ExecStatusType st = res ? PQresultStatus(res) : PGRES_FATAL_ERROR;
    switch (st) {
    case PGRES_COMMAND_OK:
    case PGRES_TUPLES_OK:
    case PGRES_EMPTY_QUERY:
        PQclear(res);
        if (PQtransactionStatus(l->conn) != PQTRANS_INTRANS) { /* a safety net: the splitter gives such statements out alone */
            set_error(l, "the SQL ended the restore's transaction");
            return -1;
        }
        return 0;
    case PGRES_COPY_IN:
        PQclear(res);
        if (copy)
            return 1;
        PQputCopyEnd(l->conn, "a COPY FROM STDIN among other statements");
        drain_results(l->conn);
        set_error(l, "a COPY ... FROM stdin among other statements");
        return -1;
    case PGRES_COPY_OUT:
    case PGRES_COPY_BOTH:
        PQclear(res);
        set_error(l, "a statement that sends data back (COPY ... TO STDOUT) is no restore");
        return -1;
    default: server_error(l, res, sql); PQclear(res); return -1;
    }
}

static int end_copy(struct mxpc_sql_load *l, const char *failure)
{
    l->in_copy = 0;
    if (PQputCopyEnd(l->conn, failure) != 1) {
        /* the server's error (a bad row), read while the data went out, says more */
        PGresult *res = PQgetResult(l->conn);
        if (res && PQresultStatus(res) == PGRES_FATAL_ERROR)
            server_error(l, res, NULL);
        PQclear(res);
        drain_results(l->conn);
        set_error(l, "ending a COPY failed: %s", PQerrorMessage(l->conn));
        return -1;
    }
    PGresult *res = PQgetResult(l->conn);
    int ok = res && PQresultStatus(res) == PGRES_COMMAND_OK;
    if (!ok)
        server_error(l, res, NULL);
    PQclear(res);
    drain_results(l->conn);
    return ok ? 0 : -1;
}

/* Waits for the producer's output: 1, or 0 when told to stop. */
static int readable(struct mxpc_sql_load *l)
{
    for (;;) {
        struct pollfd pf[2] = {{l->in, POLLIN, 0}, {l->stop[0], POLLIN, 0}};
        int n = poll(pf, 2, -1);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 || pf[1].revents)
            return 0;
        if (pf[0].revents)
            return 1;
    }
}

/* Reads more of the producer's output into the splitter: 0, or -1. */
static int read_more(struct mxpc_sql_load *l)
{
    size_t room;
    char *at = mxpc_sql_split_space(l->split, &room);
    if (!at) {
        set_error(l, "out of memory for a line of SQL");
        return -1;
    }
    for (;;) {
        if (!readable(l))
            return -1;
        ssize_t n = read(l->in, at, room);
        if (n > 0) {
            mxpc_sql_split_added(l->split, (size_t)n);
            atomic_fetch_add(&l->bytes, (uint64_t)n);
            return 0;
        }
        if (n == 0) {
            l->eof = 1;
            mxpc_sql_split_end(l->split);
            return 0;
        }
        if (errno != EINTR && errno != EAGAIN) {
            char why[128];
            set_error(l, "reading the SQL failed: %s", strerror_r(errno, why, sizeof why));
            return -1;
        }
    }
}

/* A statement that begins or ends a transaction, in SQL that runs inside
 * ours: pg_restore -f (and pg_dump) write BEGIN; and COMMIT; around large
 * objects, for a psql without --single-transaction. Those are dropped, ours
 * goes on; a ROLLBACK, ABORT or PREPARE TRANSACTION is refused. */
static int transaction_statement(struct mxpc_sql_load *l, const char *sql)
{
    static const char *const kept[] = {"begin", "start", "commit", "end", NULL};
    for (int i = 0; kept[i]; i++) {
        size_t n = strlen(kept[i]);
        if (strncasecmp(sql, kept[i], n) == 0 && !isalnum((unsigned char)sql[n]) && sql[n] != '_' &&
            !strcasestr(sql, "prepared"))
            return 0;
    }
    char word[24];
    snprintf(word, sizeof word, "%.*s", (int)strcspn(sql, " \t\r\n;"), sql);
    set_error(l, "a %s statement in the SQL: the restore runs in one transaction, which only the tool ends", word);
    return -1;
}

static int step(struct mxpc_sql_load *l)
{
    const char *p;
    size_t n;
    switch (mxpc_sql_split_next(l->split, &p, &n)) {
    case MXPC_SQL_NEED: return read_more(l);
    case MXPC_SQL_STATEMENTS: return run_sql(l, p, 0) == 0 ? 0 : -1;
    case MXPC_SQL_TRANSACTION: return transaction_statement(l, mxpc_sql_split_statement(l->split));
    case MXPC_SQL_COPY: {
        int r = run_sql(l, p, 1);
        if (r == 1) {
            l->in_copy = 1;
            mxpc_sql_split_copy_data(l->split);
        }
        return r < 0 ? -1 : 0;
    }
    case MXPC_SQL_DATA:
        if (PQputCopyData(l->conn, p, (int)n) != 1) {
            /* the server's error, if it sent one, says more than the write */
            PGresult *res = PQgetResult(l->conn);
            if (res && PQresultStatus(res) == PGRES_FATAL_ERROR)
                server_error(l, res, NULL);
            PQclear(res);
            set_error(l, "sending COPY data failed: %s", PQerrorMessage(l->conn));
            return -1;
        }
        return 0;
    case MXPC_SQL_DATA_END: return end_copy(l, NULL);
    case MXPC_SQL_DONE: return 1;
    case MXPC_SQL_ERROR:
    default:
        set_error(l, "%s", mxpc_sql_split_error(l->split));
        if (l->in_copy)
            end_copy(l, "the input was cut short");
        return -1;
    }
}

static void *run(void *arg)
{
    struct mxpc_sql_load *l = arg;
    int r;
    do
        r = atomic_load(&l->stopping) ? -1 : step(l);
    while (r == 0);
    if (r < 0 && !l->failure.message[0])
        set_error(l, "the load was stopped");
    atomic_store(&l->finished, 1);
    ssize_t w;
    do
        w = write(l->done[1], "x", 1);
    while (w < 0 && errno == EINTR);
    return NULL;
}

struct cancel {
    PGcancel *cancel;
    int done[2];
};

static void *cancel_run(void *arg)
{
    struct cancel *c = arg;
    char buf[256];
    PQcancel(c->cancel, buf, sizeof buf);
    ssize_t w;
    do
        w = write(c->done[1], "x", 1);
    while (w < 0 && errno == EINTR);
    return NULL;
}

/* PQcancel, waited for CANCEL_WAIT_MS at most: libpq's connects without a
 * timeout, and a server that does not answer must not hold a Ctrl-C for
 * minutes. A cancel that takes longer goes on in a thread of its own, left
 * to the end of the process (with what it uses). Takes `cancel`. */
static void cancel_bounded(PGcancel *cancel)
{
    if (!cancel)
        return;
    struct cancel *c = malloc(sizeof *c);
    if (!c || pipe2(c->done, O_CLOEXEC) != 0) {
        free(c);
        PQfreeCancel(cancel);
        return;
    }
    c->cancel = cancel;
    pthread_t t;
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int e = pthread_create(&t, NULL, cancel_run, c);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (e) {
        close(c->done[0]);
        close(c->done[1]);
        free(c);
        PQfreeCancel(cancel);
        return;
    }
    struct pollfd pf = {c->done[0], POLLIN, 0};
    int n;
    do
        n = poll(&pf, 1, CANCEL_WAIT_MS);
    while (n < 0 && errno == EINTR);
    if (n <= 0) {
        pthread_detach(t);
        return;
    }
    pthread_join(t, NULL);
    close(c->done[0]);
    close(c->done[1]);
    PQfreeCancel(c->cancel);
    free(c);
}

int mxpc_sql_load_start(struct mxpc_sql_load **out, PGconn *conn, struct mxpc_process *producer)
{
    *out = NULL;
    if (PQtransactionStatus(conn) != PQTRANS_INTRANS)
        return EDEADLK; /* (no transaction to run in) */
    struct mxpc_sql_load *l = calloc(1, sizeof *l);
    if (!l)
        return ENOMEM;
    l->conn = conn;
    l->in = -1;
    l->stop[0] = l->stop[1] = l->done[0] = l->done[1] = -1;
    int e = 0;
    if (!(l->split = mxpc_sql_split_new(BATCH)) || !(l->cancel = PQgetCancel(conn)))
        e = ENOMEM;
    if (!e && (pipe2(l->stop, O_CLOEXEC) != 0 || pipe2(l->done, O_CLOEXEC) != 0))
        e = errno;
    if (!e && (l->in = mxpc_process_take_stdout(producer)) < 0)
        e = EINVAL;
    if (!e) {
        (void)fcntl(l->in, F_SETPIPE_SZ, PIPE_SIZE); /* over the system's limit: the default stays */
        l->notices = PQsetNoticeProcessor(conn, ignore_notice, NULL);
        /* signals are for the main thread, which polls for them */
        sigset_t all, old;
        sigfillset(&all);
        pthread_sigmask(SIG_SETMASK, &all, &old);
        e = pthread_create(&l->thread, NULL, run, l);
        pthread_sigmask(SIG_SETMASK, &old, NULL);
        l->started = e == 0;
    }
    if (e) {
        mxpc_sql_load_free(l);
        return e;
    }
    *out = l;
    return 0;
}

int mxpc_sql_load_poll(struct mxpc_sql_load *l)
{
    return atomic_load(&l->finished);
}

int mxpc_sql_load_wait(struct mxpc_sql_load *l, long ms)
{
    double until = ms >= 0 ? mxpc_monotonic() + (double)ms / 1000 : 0;
    while (!atomic_load(&l->finished)) {
        mxpc_tick();
        if (mxpc_interrupted())
            return MXPC_PROCESS_EINTERRUPTED;
        double left = until - mxpc_monotonic();
        if (ms >= 0 && left <= 0)
            return 0;
        int wait = ms >= 0 && left * 1000 < POLL_MS ? (int)(left * 1000) + 1 : POLL_MS;
        struct pollfd pf = {l->done[0], POLLIN, 0};
        poll(&pf, 1, wait);
    }
    return 1;
}

uint64_t mxpc_sql_load_bytes(const struct mxpc_sql_load *l)
{
    return atomic_load(&((struct mxpc_sql_load *)l)->bytes);
}

const struct mxpc_sql_failure *mxpc_sql_load_failure(const struct mxpc_sql_load *l)
{
    return l->failure.message[0] ? &l->failure : NULL;
}

int mxpc_sql_load_input_ended(const struct mxpc_sql_load *l)
{
    return l->eof;
}

void mxpc_sql_load_free(struct mxpc_sql_load *l)
{
    if (!l)
        return;
    if (l->started) {
        if (!atomic_load(&l->finished)) {
            atomic_store(&l->stopping, 1);
            ssize_t w;
            do
                w = write(l->stop[1], "x", 1);
            while (w < 0 && errno == EINTR);
            /* the thread's socket fails at once, even with a server that does not answer */
            shutdown(PQsocket(l->conn), SHUT_RDWR);
            /* and the server stops the statement (an index build would hold its locks
             * until done, the app waiting for them) */
            cancel_bounded(l->cancel);
            l->cancel = NULL; /* cancel_bounded's */
        }
        pthread_join(l->thread, NULL);
        PQsetNoticeProcessor(l->conn, l->notices, NULL);
    }
    PQfreeCancel(l->cancel);
    mxpc_sql_split_free(l->split);
    close_fd(&l->in);
    for (int i = 0; i < 2; i++) {
        close_fd(&l->stop[i]);
        close_fd(&l->done[i]);
    }
    free(l);
}
