/* The splitter of a plain-format dump's SQL (src/sql_split.c), fed in reads
 * of a size the first input byte chooses (1 byte to 1 MiB, or each read's
 * own), with a batch size the second one chooses; mxpc_sql_split_copy_data() follows every COPY whose text says
 * "stdin". Checks: events are sane (pointers, lengths, NUL-terminated SQL,
 * nothing but the same after DONE or ERROR), no COPY data holds its end mark,
 * and what is given out (statements, COPY statements, data, "\.\n" for each
 * end of data) is the input itself up to an ERROR, less only what the
 * splitter drops: psql's \restrict and \unrestrict lines, the space after a
 * COPY ... FROM stdin statement on its line, and at DONE text that holds no
 * statement (space and comments). */
#define _GNU_SOURCE
#include <ctype.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "mxpc/sql_split.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_MARKS 4096

struct out {
    char *buf;
    size_t len, cap;
    size_t copy_at[MAX_MARKS]; /* where data started after a COPY (space skipped in the input) */
    size_t ncopy;
};

static void bad(const char *what)
{
    fprintf(stderr, "fuzz: sql_split: %s\n", what);
    abort();
}

static void put(struct out *o, const char *p, size_t n)
{
    if (o->len + n > o->cap) {
        o->cap = (o->len + n) * 2 + 64;
        o->buf = realloc(o->buf, o->cap);
        if (!o->buf)
            bad("out of memory");
    }
    if (n)
        memcpy(o->buf + o->len, p, n);
    o->len += n;
}

/* at is one of the sorted marks */
static int has(const size_t *marks, size_t n, size_t at)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (marks[mid] < at)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < n && marks[lo] == at;
}

/* in[i] starts a line that is psql's \restrict or \unrestrict: its length
 * with the newline, else 0. */
static size_t meta_line(const char *in, size_t n, size_t i)
{
    if (i > 0 && in[i - 1] != '\n')
        return 0;
    size_t e = i;
    while (e < n && in[e] != '\n')
        e++;
    size_t j = i;
    while (j < e && (in[j] == ' ' || in[j] == '\t'))
        j++;
    if (j >= e || in[j] != '\\')
        return 0;
    size_t w = ++j;
    while (j < e && isalpha((unsigned char)in[j]))
        j++;
    if (!((j - w == 8 && memcmp(in + w, "restrict", 8) == 0) || (j - w == 10 && memcmp(in + w, "unrestrict", 10) == 0)))
        return 0;
    if (j < e && !isspace((unsigned char)in[j]))
        return 0;
    return e - i + (e < n);
}

/* in[i, n) holds no statement: space, comments, \restrict lines (a bare ';' is a statement). */
static int no_statement(const char *in, size_t n, size_t i)
{
    while (i < n) {
        size_t m = meta_line(in, n, i);
        if (m) {
            i += m;
        } else if (isspace((unsigned char)in[i])) {
            i++;
        } else if (i + 1 < n && in[i] == '-' && in[i + 1] == '-') {
            while (i < n && in[i] != '\n')
                i++;
        } else if (i + 1 < n && in[i] == '/' && in[i + 1] == '*') {
            int depth = 1;
            for (i += 2; i < n && depth > 0;) {
                if (i + 1 < n && in[i] == '/' && in[i + 1] == '*') {
                    depth++;
                    i += 2;
                } else if (i + 1 < n && in[i] == '*' && in[i + 1] == '/') {
                    depth--;
                    i += 2;
                } else {
                    i++;
                }
            }
        } else {
            return 0;
        }
    }
    return 1;
}

/* (i, k) pairs from which no match was found: a set, so that the search
 * below stays linear in what it reads */
#define MEMO_SIZE (1u << 12)
struct memo {
    uint64_t key[MEMO_SIZE]; /* (i << 32 | k) + 1; 0 free */
    size_t furthest;         /* the most output matched, for the message */
};

static uint64_t *memo_slot(struct memo *memo, size_t i, size_t k)
{
    uint64_t key = ((uint64_t)i << 32 | k) + 1;
    for (size_t h = (size_t)(key * 0x9E3779B97F4A7C15u >> 48), tries = 0; tries < 64; tries++, h++) {
        uint64_t *slot = &memo->key[h & (MEMO_SIZE - 1)];
        if (*slot == 0 || *slot == key)
            return slot;
    }
    return NULL; /* full there: no memory of it */
}

/* o[k, len) is in[i, n) less what the splitter may drop; at DONE, what is
 * left of the input holds no statement. A \restrict line is either given
 * out as it is (in a string, in COPY data) or dropped: both are tried. fresh:
 * k was just reached (the space after a COPY statement is skipped there). */
static int matches(const char *in, size_t n, const struct out *o, size_t i, size_t k, int fresh, int done,
                   struct memo *memo)
{
    for (;;) {
        if (k > memo->furthest)
            memo->furthest = k;
        if (fresh && has(o->copy_at, o->ncopy, k)) { /* the rest of the COPY's line: space */
            while (i < n && in[i] != '\n' && isspace((unsigned char)in[i]))
                i++;
            if (i < n && in[i] == '\n')
                i++;
        }
        fresh = 0;
        if (k == o->len)
            return !done || no_statement(in, n, i);
        size_t m = i < n ? meta_line(in, n, i) : 0;
        if (m) {
            uint64_t *seen = memo_slot(memo, i, k);
            if (seen && *seen)
                return 0;
            if (in[i] == o->buf[k] && matches(in, n, o, i + 1, k + 1, 1, done, memo))
                return 1; /* given out */
            if (seen)
                *seen = ((uint64_t)i << 32 | k) + 1;
            i += m; /* dropped */
            continue;
        }
        if (i < n && in[i] == o->buf[k]) {
            i++;
            k++;
            fresh = 1;
            continue;
        }
        return 0;
    }
}

static int contains(const char *h, size_t hn, const char *needle)
{
    size_t nn = strlen(needle);
    for (size_t i = 0; i + nn <= hn; i++)
        if (strncasecmp(h + i, needle, nn) == 0)
            return 1;
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    static const size_t chunks[] = {1, 2, 3, 7, 64, 4096, 1 << 20, 0};
    static const size_t batches[] = {1, 8, 100, 64 * 1024};
    size_t chunk = chunks[data[0] & 7]; /* 0: each read's size from the PRNG */
    size_t batch = batches[data[1] & 3];
    unsigned rng = data[0] * 2654435761u + data[1];
    const char *in = (const char *)data + 2;
    size_t n = size - 2;

    struct mxpc_sql_split *s = mxpc_sql_split_new(batch);
    if (!s)
        bad("no splitter");
    struct out *o = calloc(1, sizeof *o);
    char *copy = NULL; /* the data of the COPY being read, to look for its end mark */
    size_t copy_len = 0, copy_cap = 0;
    int in_data = 0;
    size_t fed = 0, events = 0;
    enum mxpc_sql_event last;
    for (;;) {
        const char *p;
        size_t len;
        enum mxpc_sql_event ev = mxpc_sql_split_next(s, &p, &len);
        if (++events > 8 * n + 1000)
            bad("no end of events");
        last = ev;
        if (ev == MXPC_SQL_DONE || ev == MXPC_SQL_ERROR)
            break;
        if (ev == MXPC_SQL_NEED) {
            if (p || len)
                bad("NEED with text");
            if (fed == n) {
                mxpc_sql_split_end(s);
                continue;
            }
            size_t room;
            char *at = mxpc_sql_split_space(s, &room);
            if (!at || room < 4096)
                bad("too little room");
            size_t c = chunk;
            if (!c) {
                rng = rng * 1103515245u + 12345u;
                c = 1 + (rng >> 16) % 9000;
            }
            if (c > room)
                c = room;
            if (c > n - fed)
                c = n - fed;
            memcpy(at, in + fed, c);
            mxpc_sql_split_added(s, c);
            fed += c;
            continue;
        }
        if (ev == MXPC_SQL_DATA_END) {
            if (p || len || !in_data)
                bad("DATA_END out of place");
            put(o, "\\.\n", 3);
            in_data = 0;
            continue;
        }
        if (!p || len == 0)
            bad("an event without text");
        if (ev == MXPC_SQL_DATA) {
            if (!in_data)
                bad("DATA outside COPY data");
            if (copy_len + len > copy_cap) {
                copy_cap = (copy_len + len) * 2;
                copy = realloc(copy, copy_cap);
            }
            memcpy(copy + copy_len, p, len);
            size_t from = copy_len > 3 ? copy_len - 3 : 0; /* the mark may start in the piece before */
            copy_len += len;
            if ((copy_len >= 3 && memcmp(copy, "\\.\n", 3) == 0) || memmem(copy + from, copy_len - from, "\n\\.\n", 4))
                bad("COPY data holds its end mark");
            put(o, p, len);
            continue;
        }
        if (ev != MXPC_SQL_STATEMENTS && ev != MXPC_SQL_COPY && ev != MXPC_SQL_TRANSACTION)
            bad("an unknown event");
        if (in_data)
            bad("SQL inside COPY data");
        if (p[len] != '\0')
            bad("SQL not NUL-terminated at its length");
        put(o, p, len);
        if (ev == MXPC_SQL_COPY && contains(p, len, "stdin")) {
            if (o->ncopy == MAX_MARKS)
                goto out;
            o->copy_at[o->ncopy++] = o->len;
            mxpc_sql_split_copy_data(s);
            in_data = 1;
            copy_len = 0;
        }
    }
    for (int i = 0; i < 3; i++) {
        const char *p = "x";
        size_t len = 1;
        if (mxpc_sql_split_next(s, &p, &len) != last || p || len)
            bad("events after DONE or ERROR");
    }
    if (last == MXPC_SQL_ERROR && !mxpc_sql_split_error(s)[0])
        bad("an ERROR without a message");
    if (last == MXPC_SQL_DONE && (in_data || fed != n))
        bad("DONE before the input's end");
    struct memo *memo = calloc(1, sizeof *memo);
    if (!memo)
        bad("out of memory");
    if (!matches(in, n, o, 0, 0, 1, last == MXPC_SQL_DONE, memo)) {
        fprintf(stderr, "fuzz: sql_split: %zu bytes given out, the first %zu of them found in the input\n", o->len,
                memo->furthest);
        bad(last == MXPC_SQL_DONE ? "the output is not the input less what may be dropped, or a statement was dropped"
                                  : "the output is not the input less what may be dropped");
    }
    free(memo);
out:
    free(copy);
    free(o->buf);
    free(o);
    mxpc_sql_split_free(s);
    return 0;
}
