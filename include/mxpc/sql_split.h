/* The SQL of a plain-format dump (pg_dump, pg_restore -f -), split the way
 * psql reads it, for a client that runs it on a connection of its own
 * (sql_load.h): batches of whole statements, each COPY statement alone, the
 * data that follows a COPY ... FROM stdin up to its "\." line, in the pieces
 * it came in.
 *
 * Statements end at a semicolon outside quotes ('...', E'...', "...",
 * $tag$...$tag$), comments (--, nested / * * /), parentheses and the
 * BEGIN ... END of a CREATE FUNCTION or PROCEDURE's body, as in psql; text after
 * the last semicolon is a statement of its own at the end. psql's
 * \restrict and \unrestrict lines (the dump's guard against meta-commands)
 * are dropped; any other backslash command is refused. standard_conforming_
 * strings is taken to be on, as every dump since PostgreSQL 9.1 sets it. A
 * NUL byte outside COPY data is refused.
 *
 * The caller reads into the splitter's buffer and asks for events:
 *
 *   for (;;) switch (mxpc_sql_split_next(s, &p, &n)) {
 *   case MXPC_SQL_NEED:       read into mxpc_sql_split_space(); _added() or _end()
 *   case MXPC_SQL_STATEMENTS: run p (NUL-terminated) as one simple query
 *   case MXPC_SQL_COPY:       run p alone; when it asks for data (COPY ... FROM
 *                             STDIN), call mxpc_sql_split_copy_data()
 *   case MXPC_SQL_TRANSACTION: a statement that begins or ends a transaction
 *                             (BEGIN, START, COMMIT, END, ROLLBACK, ABORT,
 *                             PREPARE TRANSACTION), alone: the caller's to judge
 *   case MXPC_SQL_DATA:       send p[0..n) as COPY data
 *   case MXPC_SQL_DATA_END:   end the COPY
 *   case MXPC_SQL_DONE:       the input ended after whole statements
 *   case MXPC_SQL_ERROR:      mxpc_sql_split_error() says why
 *   }
 *
 * p stays valid until the next call. Memory: the buffer holds one read, a
 * batch and the longest line of SQL (COPY data is never held whole). */
#ifndef MXPC_SQL_SPLIT_H
#define MXPC_SQL_SPLIT_H

#include <stddef.h>

enum mxpc_sql_event {
    MXPC_SQL_NEED,
    MXPC_SQL_STATEMENTS,
    MXPC_SQL_COPY,
    MXPC_SQL_TRANSACTION,
    MXPC_SQL_DATA,
    MXPC_SQL_DATA_END,
    MXPC_SQL_DONE,
    MXPC_SQL_ERROR,
};

struct mxpc_sql_split;

/* A splitter whose batches grow to about `batch` bytes of SQL; NULL when out
 * of memory. */
struct mxpc_sql_split *mxpc_sql_split_new(size_t batch);
void mxpc_sql_split_free(struct mxpc_sql_split *s);

/* Where to read the next input into; *room bytes (at least 4096) are free. */
char *mxpc_sql_split_space(struct mxpc_sql_split *s, size_t *room);
/* n bytes were written at mxpc_sql_split_space(). */
void mxpc_sql_split_added(struct mxpc_sql_split *s, size_t n);
/* The input ended. */
void mxpc_sql_split_end(struct mxpc_sql_split *s);

enum mxpc_sql_event mxpc_sql_split_next(struct mxpc_sql_split *s, const char **p, size_t *n);

/* After MXPC_SQL_COPY: the server waits for data, which starts on the line
 * after the statement. */
void mxpc_sql_split_copy_data(struct mxpc_sql_split *s);

/* After MXPC_SQL_COPY or MXPC_SQL_TRANSACTION: the statement itself, from
 * its first word (the event's text less the space and comments before it).
 * Valid until the next call. */
const char *mxpc_sql_split_statement(const struct mxpc_sql_split *s);

/* After MXPC_SQL_ERROR: what was wrong, for a message. */
const char *mxpc_sql_split_error(const struct mxpc_sql_split *s);

/* The line of `sql` that holds character `pos` (1-based, counted in UTF-8
 * characters, as PostgreSQL's error positions are), cut to fit `cap`, for
 * messages. */
void mxpc_sql_line_at(const char *sql, long pos, char *out, size_t cap);

#endif
