/* A load: the SQL a child writes on its stdout (pg_restore -f -, pg_dump in
 * plain format) run on a PostgreSQL connection of ours by a thread, while the
 * caller does other work: statements in batches of simple queries, COPY data
 * in large CopyData messages (sql_split.h splits it). No psql in between,
 * and nothing is committed by it: the caller opens the transaction before
 * and decides after, once it has judged the child's exit status.
 *
 * The first failure ends the load: the server's error (with the statement it
 * came from), a COPY whose data ended early (sent as a COPY failure, so the
 * server discards it), or a read error. The connection is then in a failed
 * transaction. Stopping a load early cancels the running statement
 * (PQcancel) and shuts the connection's socket: its transaction can no
 * longer commit. */
#ifndef MXPC_SQL_LOAD_H
#define MXPC_SQL_LOAD_H

#include <stdint.h>

#include <libpq-fe.h>

struct mxpc_process;
struct mxpc_sql_load;

/* Takes the producer's stdout (spawned with MXPC_PROCESS_PIPE) and starts
 * running it on `conn`, which is the load's until mxpc_sql_load_free.
 * It runs inside the connection's open transaction (EDEADLK when there is
 * none), which it never ends: pg_restore's BEGIN; and COMMIT; (around large
 * objects) are dropped, a ROLLBACK is refused, and a statement that left
 * the transaction anyway fails the load. Returns 0 or an errno value
 * (EINVAL: the child has no such pipe). */
int mxpc_sql_load_start(struct mxpc_sql_load **out, PGconn *conn, struct mxpc_process *producer);

/* 1 once done (the input ended, or the load failed), else 0. */
int mxpc_sql_load_poll(struct mxpc_sql_load *l);

/* Waits up to `ms` milliseconds (-1: until done), polling mxpc_interrupted()
 * and calling mxpc_tick(): 1 when done, 0 when the time is up, or
 * MXPC_PROCESS_EINTERRUPTED (the load still runs; free it). */
int mxpc_sql_load_wait(struct mxpc_sql_load *l, long ms);

/* Bytes of SQL read from the producer so far (readable at any time). */
uint64_t mxpc_sql_load_bytes(const struct mxpc_sql_load *l);

/* What went wrong: the server's refusal (its fields), or ours (message
 * only). Fields it lacks are "". */
struct mxpc_sql_failure {
    char message[1024]; /* one line */
    char sqlstate[8];
    char detail[512];
    char hint[512];
    char context[512];
    char near[160]; /* the line of SQL the server's error points at */
};

/* Fills `f` from the server's error in `res` (NULL: the connection's error),
 * `sql` the text it ran (for `near`; NULL when none). */
void mxpc_sql_failure_set(struct mxpc_sql_failure *f, const PGresult *res, PGconn *conn, const char *sql);

/* Once done: NULL when all of it ran, else what went wrong. Valid until
 * mxpc_sql_load_free. */
const struct mxpc_sql_failure *mxpc_sql_load_failure(const struct mxpc_sql_load *l);

/* Once done: whether the producer's output had ended (a failure then may
 * be the producer's: judge it first). */
int mxpc_sql_load_input_ended(const struct mxpc_sql_load *l);

/* Stops the thread if it still runs (cancelling what the server does and
 * shutting the socket), frees. NULL is fine. */
void mxpc_sql_load_free(struct mxpc_sql_load *l);

#endif
