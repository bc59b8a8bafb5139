/* The SQL of a plain-format dump, split as psql reads it: see include/mxpc/sql_split.h. */
#define _GNU_SOURCE
#include "mxpc/sql_split.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define READ_ROOM (1024 * 1024) /* what a read may fill: one pipe's worth */
#define MIN_ROOM 4096
#define TAG_MAX 256 /* a dollar quote's tag: pg_dump writes $$ and $_$ */

enum lex { NORMAL, SQUOTE, ESTRING, DQUOTE, DOLLAR, LINE_COMMENT, BLOCK_COMMENT };

struct mxpc_sql_split {
    char *in; /* the input: in[pos, end) not yet split */
    size_t cap, pos, end;
    int ended;

    char *sql; /* the statements read and not yet given out; sql[len] is NUL at an event */
    size_t len, cap_sql, batch;
    size_t stmt_start; /* where the statement being read starts in sql */
    size_t stmt_begin; /* its first character that is not space or comment */
    int stmt_any;      /* it has one */
    int batch_any;     /* sql[0, stmt_start) holds a statement */

    enum lex lex;
    int depth;       /* of nested block comments */
    int paren;       /* open parentheses of the statement: a semicolon inside is no end */
    int begin_depth; /* BEGIN (ATOMIC) and CASE open in a CREATE FUNCTION or PROCEDURE, as psql counts */
    int in_word;     /* sql[word, len) is a word being read */
    size_t word;
    int words;        /* the statement's words so far (up to 4 kept) */
    char initials[4]; /* their first letters, lower case, as psql keeps them */
    char tag[TAG_MAX];
    size_t taglen;

    size_t lim; /* while inside a line: in[pos, lim) is the rest of it, its newline included */
    int in_line;
    size_t scanned; /* between lines: in[pos, pos + scanned) holds no newline (not searched again) */

    size_t drop;   /* sql bytes given out by the last event, removed by the next call */
    int saved;     /* the character the last event's NUL replaced, or -1 */
    int alone;     /* give out sql[stmt_start, len) alone next: MXPC_SQL_COPY or _TRANSACTION, else 0 */
    size_t first;  /* where the statement given out alone last starts in sql, past space and comments */
    int copy_wait; /* a COPY was given out: mxpc_sql_split_copy_data() may follow */

    int data; /* in COPY data */
    int at_line_start;
    int done;
    char err[256];
};

struct mxpc_sql_split *mxpc_sql_split_new(size_t batch)
{
    struct mxpc_sql_split *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->cap = READ_ROOM + MIN_ROOM;
    s->cap_sql = 64 * 1024;
    s->in = malloc(s->cap);
    s->sql = malloc(s->cap_sql);
    if (!s->in || !s->sql) {
        mxpc_sql_split_free(s);
        return NULL;
    }
    s->batch = batch ? batch : 1;
    s->saved = -1;
    return s;
}

void mxpc_sql_split_free(struct mxpc_sql_split *s)
{
    if (!s)
        return;
    free(s->in);
    free(s->sql);
    free(s);
}

char *mxpc_sql_split_space(struct mxpc_sql_split *s, size_t *room)
{
    if (s->pos > 0 && !s->in_line) {
        memmove(s->in, s->in + s->pos, s->end - s->pos);
        s->end -= s->pos;
        s->pos = 0;
    }
    if (s->cap - s->end < MIN_ROOM) { /* a line longer than the buffer */
        size_t cap = s->cap * 2;
        char *in = realloc(s->in, cap);
        if (!in) {
            *room = 0;
            return NULL;
        }
        s->in = in;
        s->cap = cap;
    }
    *room = s->cap - s->end;
    if (*room > READ_ROOM)
        *room = READ_ROOM;
    return s->in + s->end;
}

void mxpc_sql_split_added(struct mxpc_sql_split *s, size_t n)
{
    s->end += n;
}

void mxpc_sql_split_end(struct mxpc_sql_split *s)
{
    s->ended = 1;
}

const char *mxpc_sql_split_error(const struct mxpc_sql_split *s)
{
    return s->err;
}

__attribute__((format(printf, 2, 3))) static enum mxpc_sql_event fail(struct mxpc_sql_split *s, const char *fmt,
                                                                       ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(s->err, sizeof s->err, fmt, ap);
    va_end(ap);
    return MXPC_SQL_ERROR;
}

static int add(struct mxpc_sql_split *s, const char *p, size_t n)
{
    if (s->len + n + 1 > s->cap_sql) {
        size_t cap = s->cap_sql;
        while (s->len + n + 1 > cap)
            cap *= 2;
        char *sql = realloc(s->sql, cap);
        if (!sql)
            return -1;
        s->sql = sql;
        s->cap_sql = cap;
    }
    memcpy(s->sql + s->len, p, n);
    s->len += n;
    return 0;
}

static int ident_char(int c)
{
    return isalnum(c) || c == '_' || c == '$' || c >= 0x80;
}

static int tag_char(int c, int first)
{
    return isalpha(c) || c == '_' || c >= 0x80 || (!first && isdigit(c));
}

/* Gives out sql[0, n) (NUL-terminated) as an event; removed at the next call. */
static enum mxpc_sql_event give(struct mxpc_sql_split *s, enum mxpc_sql_event ev, size_t from, size_t n,
                                const char **p, size_t *len)
{
    s->saved = (unsigned char)s->sql[from + n];
    s->sql[from + n] = '\0';
    s->drop = from + n;
    *p = s->sql + from;
    *len = n;
    return ev;
}

/* Takes back what the last event gave out. */
static void settle(struct mxpc_sql_split *s)
{
    if (s->saved >= 0)
        s->sql[s->drop] = (char)s->saved;
    s->saved = -1;
    if (s->drop) {
        memmove(s->sql, s->sql + s->drop, s->len - s->drop);
        s->len -= s->drop;
        s->stmt_start -= s->drop < s->stmt_start ? s->drop : s->stmt_start;
        s->stmt_begin -= s->drop < s->stmt_begin ? s->drop : s->stmt_begin;
        s->drop = 0;
    }
}

static enum mxpc_sql_event next_data(struct mxpc_sql_split *s, const char **p, size_t *n)
{
    size_t avail = s->end - s->pos;
    const char *at = s->in + s->pos;
    if (s->at_line_start && avail >= 3 && memcmp(at, "\\.\n", 3) == 0) {
        s->pos += 3;
        s->data = 0;
        return MXPC_SQL_DATA_END;
    }
    const char *mark = avail >= 4 ? memmem(at, avail, "\n\\.\n", 4) : NULL;
    size_t give_n = mark ? (size_t)(mark - at) + 1 : avail > 3 ? avail - 3 : 0;
    if (!mark && s->ended) /* no end mark will come (one needs its newline, as in psql): all, then the error */
        give_n = avail;
    if (give_n == 0) {
        if (s->ended)
            return fail(s, "the SQL ended in the middle of a table's COPY data");
        return MXPC_SQL_NEED;
    }
    *p = at;
    *n = give_n;
    s->pos += give_n;
    s->at_line_start = at[give_n - 1] == '\n';
    return MXPC_SQL_DATA;
}

/* At the start of a line, before any statement: psql's backslash commands.
 * 1: the line was one to drop; 0: not a command; -1: refused. */
static int meta_line(struct mxpc_sql_split *s)
{
    size_t i = s->pos;
    while (i < s->lim && (s->in[i] == ' ' || s->in[i] == '\t'))
        i++;
    if (i >= s->lim || s->in[i] != '\\')
        return 0;
    size_t w = i + 1, e = w;
    while (e < s->lim && isalpha((unsigned char)s->in[e]))
        e++;
    if (((e - w == 8 && memcmp(s->in + w, "restrict", 8) == 0) ||
         (e - w == 10 && memcmp(s->in + w, "unrestrict", 10) == 0)) &&
        (e == s->lim || isspace((unsigned char)s->in[e]))) {
        s->pos = s->lim;
        s->in_line = 0;
        return 1;
    }
    char word[32];
    snprintf(word, sizeof word, "%.*s", (int)(e - w < 20 ? e - w : 20), s->in + w);
    fail(s, "psql's \\%s command: only SQL, COPY data and \\restrict lines can be restored this way", word);
    return -1;
}

/* Whether the statement's text at p starts with the word w (any case). */
static int first_word(const char *p, const char *w)
{
    size_t n = strlen(w);
    return strncasecmp(p, w, n) == 0 && !ident_char((unsigned char)p[n]);
}

/* The statements given out alone: COPY (data may follow), and those that
 * begin or end a transaction (the loader's to judge: the restore runs in
 * one). 0 for the others. */
static int alone_kind(const char *p)
{
    if (first_word(p, "copy"))
        return MXPC_SQL_COPY;
    static const char *const tx[] = {"begin", "start", "commit", "end", "rollback", "abort", NULL};
    for (int i = 0; tx[i]; i++)
        if (first_word(p, tx[i]))
            return MXPC_SQL_TRANSACTION;
    if (first_word(p, "prepare")) {
        p += 7;
        while (isspace((unsigned char)*p))
            p++;
        if (first_word(p, "transaction"))
            return MXPC_SQL_TRANSACTION;
    }
    return 0;
}

/* A word of the statement ended (psql's count of BEGIN ... END in routine
 * bodies: CREATE [OR REPLACE] FUNCTION or PROCEDURE ... BEGIN ATOMIC). */
static void word_end(struct mxpc_sql_split *s)
{
    s->in_word = 0;
    const char *w = s->sql + s->word;
    size_t n = s->len - s->word;
    if (s->words < 4)
        s->initials[s->words] = (char)tolower((unsigned char)w[0]);
    s->words++;
    const char *i = s->initials;
    int routine = s->words > 2 && i[0] == 'c' &&
                  (i[1] == 'f' || i[1] == 'p' || (s->words > 4 && i[1] == 'o' && i[2] == 'r' && (i[3] == 'f' || i[3] == 'p')));
    if (((n == 5 && strncasecmp(w, "begin", 5) == 0) || (n == 4 && strncasecmp(w, "case", 4) == 0)) && routine)
        s->begin_depth++;
    else if (n == 3 && strncasecmp(w, "end", 3) == 0 && s->begin_depth > 0)
        s->begin_depth--;
}

/* A statement ended at a semicolon: 1 when it is an event to give out now. */
static int statement_end(struct mxpc_sql_split *s)
{
    s->paren = s->begin_depth = s->words = 0;
    if (s->stmt_any && (s->alone = alone_kind(s->sql + s->stmt_begin)) != 0)
        return 1;
    if (s->stmt_any)
        s->batch_any = 1;
    s->stmt_any = 0;
    s->stmt_start = s->len;
    return s->batch_any && s->len >= s->batch;
}

/* Lexes in[pos, lim) into sql, up to the end of the line or a statement to give out. */
static int lex_line(struct mxpc_sql_split *s)
{
    const char *in = s->in;
    while (s->pos < s->lim) {
        size_t i = s->pos;
        int c = (unsigned char)in[i];
        int c1 = i + 1 < s->lim ? (unsigned char)in[i + 1] : -1;
        size_t take = 1;
        if (c == '\0') { /* the statements go out as a C string: the rest would be lost without a word */
            fail(s, "a NUL byte in the SQL, where only text can be");
            return -1;
        }
        if (s->lex == NORMAL && s->in_word && !ident_char(c))
            word_end(s);
        switch (s->lex) {
        case NORMAL:
            if (c == '-' && c1 == '-') {
                s->lex = LINE_COMMENT;
                take = 2;
                break;
            }
            if (c == '/' && c1 == '*') {
                s->lex = BLOCK_COMMENT;
                s->depth = 1;
                take = 2;
                break;
            }
            if (isspace(c))
                break;
            if (c == '\\') {
                fail(s, "a backslash outside quotes (a psql command) in a statement");
                return -1;
            }
            if (!s->stmt_any) {
                s->stmt_any = 1;
                s->stmt_begin = s->len;
            }
            if (!s->in_word && (isalpha(c) || c == '_' || c >= 0x80) &&
                !(s->len > s->stmt_begin && ident_char((unsigned char)s->sql[s->len - 1]))) {
                s->in_word = 1;
                s->word = s->len;
            }
            if (c == '(') {
                s->paren++;
            } else if (c == ')') {
                if (s->paren > 0)
                    s->paren--;
            } else if (c == '\'') {
                int p1 = s->len > 0 ? (unsigned char)s->sql[s->len - 1] : ' ';
                int p2 = s->len > 1 ? (unsigned char)s->sql[s->len - 2] : ' ';
                s->lex = (p1 == 'E' || p1 == 'e') && !ident_char(p2) && s->stmt_begin < s->len ? ESTRING : SQUOTE;
            } else if (c == '"') {
                s->lex = DQUOTE;
            } else if (c == '$' && !(s->len > s->stmt_begin && ident_char((unsigned char)s->sql[s->len - 1]))) {
                size_t j = i + 1;
                while (j < s->lim && tag_char((unsigned char)in[j], j == i + 1))
                    j++;
                if (j < s->lim && in[j] == '$' && j - i - 1 > TAG_MAX) {
                    fail(s, "a dollar quote's tag longer than %d characters", TAG_MAX);
                    return -1;
                }
                if (j < s->lim && in[j] == '$') {
                    s->taglen = j - i - 1;
                    memcpy(s->tag, in + i + 1, s->taglen);
                    s->lex = DOLLAR;
                    take = j - i + 1;
                }
            } else if (c == ';' && s->paren == 0 && s->begin_depth == 0) {
                if (add(s, in + i, 1) != 0)
                    goto oom;
                s->pos++;
                if (statement_end(s))
                    return 1;
                continue;
            }
            break;
        case SQUOTE:
            if (c == '\'')
                s->lex = NORMAL; /* a doubled quote opens it again */
            break;
        case ESTRING:
            if (c == '\\' && c1 >= 0)
                take = 2;
            else if (c == '\'' && c1 == '\'')
                take = 2;
            else if (c == '\'')
                s->lex = NORMAL;
            break;
        case DQUOTE:
            if (c == '"')
                s->lex = NORMAL;
            break;
        case DOLLAR:
            if (c == '$' && i + 1 + s->taglen < s->lim && memcmp(in + i + 1, s->tag, s->taglen) == 0 &&
                in[i + 1 + s->taglen] == '$') {
                s->lex = NORMAL;
                take = s->taglen + 2;
            }
            break;
        case LINE_COMMENT:
            if (c == '\n')
                s->lex = NORMAL;
            break;
        case BLOCK_COMMENT:
            if (c == '/' && c1 == '*') {
                s->depth++;
                take = 2;
            } else if (c == '*' && c1 == '/') {
                take = 2;
                if (--s->depth == 0)
                    s->lex = NORMAL;
            }
            break;
        }
        if (add(s, in + i, take) != 0)
            goto oom;
        s->pos += take;
    }
    s->in_line = 0;
    return 0;
oom:
    fail(s, "out of memory for a statement");
    return -1;
}

/* Gives out the statement read last alone: a COPY, or one that begins or ends a transaction. */
static enum mxpc_sql_event give_alone(struct mxpc_sql_split *s, const char **p, size_t *n)
{
    enum mxpc_sql_event ev = (enum mxpc_sql_event)s->alone;
    s->alone = 0;
    s->copy_wait = ev == MXPC_SQL_COPY;
    s->stmt_any = s->batch_any = 0;
    s->first = s->stmt_begin;
    ev = give(s, ev, s->stmt_start, s->len - s->stmt_start, p, n);
    s->stmt_start = s->len;
    return ev;
}

enum mxpc_sql_event mxpc_sql_split_next(struct mxpc_sql_split *s, const char **p, size_t *n)
{
    *p = NULL;
    *n = 0;
    if (s->err[0])
        return MXPC_SQL_ERROR;
    settle(s);
    s->copy_wait = 0;
    if (s->alone) /* the statements before it went out: now the one alone */
        return give_alone(s, p, n);
    if (s->data)
        return next_data(s, p, n);
    if (s->done)
        return MXPC_SQL_DONE;
    for (;;) {
        if (!s->in_line) {
            const char *nl = memchr(s->in + s->pos + s->scanned, '\n', s->end - s->pos - s->scanned);
            if (!nl && (!s->ended || s->pos == s->end)) {
                s->scanned = s->end - s->pos;
                if (!s->ended)
                    return MXPC_SQL_NEED;
                s->done = 1; /* the end: what is left goes out, as psql sends it */
                if (s->batch_any || s->stmt_any)
                    return give(s, MXPC_SQL_STATEMENTS, 0, s->len, p, n);
                return MXPC_SQL_DONE;
            }
            s->lim = nl ? (size_t)(nl - s->in) + 1 : s->end;
            s->in_line = 1;
            s->scanned = 0;
            if (s->lex == NORMAL && !s->stmt_any) {
                int m = meta_line(s);
                if (m < 0)
                    return MXPC_SQL_ERROR;
                if (m > 0)
                    continue;
            }
        }
        int r = lex_line(s);
        if (r < 0)
            return MXPC_SQL_ERROR;
        if (r == 0)
            continue;
        if (s->alone) /* the statements before it first */
            return s->batch_any ? give(s, MXPC_SQL_STATEMENTS, 0, s->stmt_start, p, n) : give_alone(s, p, n);
        s->batch_any = 0; /* it goes out whole: nothing is left to give out before a COPY or at the end */
        return give(s, MXPC_SQL_STATEMENTS, 0, s->len, p, n);
    }
}

const char *mxpc_sql_split_statement(const struct mxpc_sql_split *s)
{
    return s->sql + s->first;
}

void mxpc_sql_split_copy_data(struct mxpc_sql_split *s)
{
    if (!s->copy_wait || s->err[0])
        return;
    s->copy_wait = 0;
    /* the rest of the statement's line: nothing but space */
    for (; s->in_line && s->pos < s->lim; s->pos++)
        if (!isspace((unsigned char)s->in[s->pos])) {
            fail(s, "text after a COPY ... FROM stdin statement, on its line");
            return;
        }
    s->in_line = 0;
    s->data = 1;
    s->at_line_start = 1;
}

void mxpc_sql_line_at(const char *sql, long pos, char *out, size_t cap)
{
    const char *p = sql, *line = sql;
    for (long chars = 1; *p && chars < pos; p++) {
        if ((*p & 0xC0) != 0x80)
            chars++;
        if (*p == '\n')
            line = p + 1;
    }
    while (*line == ' ' || *line == '\t')
        line++;
    const char *end = strchr(line, '\n');
    size_t n = end ? (size_t)(end - line) : strlen(line);
    size_t room = cap > 4 ? cap - 4 : 0;
    if (cap)
        snprintf(out, cap, "%.*s%s", (int)(n > room ? room : n), line, n > room ? "..." : "");
}
