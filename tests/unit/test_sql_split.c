/* The splitter of a plain-format dump's SQL (src/sql_split.c): every input
 * is fed in reads of several sizes (1, 2, 3 and 7 bytes, and as much as the
 * splitter takes at once), and the events must be the same for each:
 * statements S{...}, COPY statements C{...}, the COPY data D{...} (its pieces
 * joined), its end E, DONE "." or ERROR(message). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <cmocka.h>

#include "mxpc/sql_split.h"

#define WHOLE ((size_t)-1)

struct buf {
    char *p;
    size_t len, cap;
};

static void put(struct buf *b, const char *p, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        b->cap = (b->len + n + 1) * 2;
        b->p = realloc(b->p, b->cap);
        assert_non_null(b->p);
    }
    memcpy(b->p + b->len, p, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void puts_(struct buf *b, const char *s)
{
    put(b, s, strlen(s));
}

/* The events of in[0, n) fed in reads of `chunk` bytes, as a string; the
 * caller frees it. mxpc_sql_split_copy_data() follows each COPY whose text
 * says "stdin". */
static char *split(const char *in, size_t n, size_t chunk, size_t batch)
{
    struct mxpc_sql_split *s = mxpc_sql_split_new(batch);
    assert_non_null(s);
    struct buf out = {0};
    puts_(&out, "");
    size_t fed = 0;
    int in_data = 0;
    for (;;) {
        const char *p;
        size_t len;
        enum mxpc_sql_event ev = mxpc_sql_split_next(s, &p, &len);
        if (ev != MXPC_SQL_DATA && ev != MXPC_SQL_NEED && in_data) {
            puts_(&out, "}");
            in_data = 0;
        }
        switch (ev) {
        case MXPC_SQL_NEED: {
            if (fed == n) {
                mxpc_sql_split_end(s);
                break;
            }
            size_t room;
            char *at = mxpc_sql_split_space(s, &room);
            assert_non_null(at);
            assert_true(room >= 4096);
            size_t c = chunk < room ? chunk : room;
            if (c > n - fed)
                c = n - fed;
            memcpy(at, in + fed, c);
            mxpc_sql_split_added(s, c);
            fed += c;
            break;
        }
        case MXPC_SQL_STATEMENTS:
        case MXPC_SQL_COPY:
            assert_non_null(p);
            assert_true(len > 0);
            assert_int_equal(p[len], '\0');
            puts_(&out, ev == MXPC_SQL_COPY ? "C{" : "S{");
            put(&out, p, len);
            puts_(&out, "}");
            if (ev == MXPC_SQL_COPY && (strstr(p, "stdin") || strstr(p, "STDIN")))
                mxpc_sql_split_copy_data(s);
            break;
        case MXPC_SQL_DATA:
            assert_non_null(p);
            assert_true(len > 0);
            if (!in_data)
                puts_(&out, "D{");
            in_data = 1;
            put(&out, p, len);
            break;
        case MXPC_SQL_DATA_END: puts_(&out, "E"); break;
        case MXPC_SQL_DONE:
        case MXPC_SQL_ERROR:
            if (ev == MXPC_SQL_DONE) {
                puts_(&out, ".");
            } else {
                puts_(&out, "ERROR(");
                puts_(&out, mxpc_sql_split_error(s));
                puts_(&out, ")");
            }
            /* nothing but the same after it */
            assert_int_equal(mxpc_sql_split_next(s, &p, &len), ev);
            assert_int_equal(mxpc_sql_split_next(s, &p, &len), ev);
            mxpc_sql_split_free(s);
            return out.p;
        }
    }
}

/* The events of in, the same whatever the reads' sizes. */
static void assert_split_n(const char *in, size_t n, size_t batch, const char *expected)
{
    static const size_t chunks[] = {1, 2, 3, 7, WHOLE};
    for (size_t i = 0; i < sizeof chunks / sizeof *chunks; i++) {
        char *got = split(in, n, chunks[i], batch);
        if (strcmp(got, expected) != 0)
            print_error("reads of %zu bytes:\n", chunks[i]);
        assert_string_equal(got, expected);
        free(got);
    }
}
#define assert_split(in, batch, expected) assert_split_n(in, strlen(in), batch, expected)

#define BIG (1024 * 1024)

/* ---- COPY */

/* "\\." needs its newline to end the data, as in psql (whose server answers
 * "end-of-copy marker corrupt"), whether data came before it or not */
static void test_copy_end_mark_at_end_of_input(void **state)
{
    (void)state;
    assert_split("COPY t FROM stdin;\n\\.", BIG,
                 "C{COPY t FROM stdin;}D{\\.}ERROR(the SQL ended in the middle of a table's COPY data)");
    assert_split("COPY t FROM stdin;\na\n\\.", BIG,
                 "C{COPY t FROM stdin;}D{a\n\\.}ERROR(the SQL ended in the middle of a table's COPY data)");
    assert_split("COPY t FROM stdin;\na\n\\.\n", BIG, "C{COPY t FROM stdin;}D{a\n}E.");
}

/* a COPY is known by its first word, whatever follows it */
static void test_copy_first_word(void **state)
{
    (void)state;
    assert_split("COPY/* t */t FROM stdin;\n1\n\\.\n", BIG, "C{COPY/* t */t FROM stdin;}D{1\n}E.");
    assert_split("COPY\"t\" FROM stdin;\n1\n\\.\n", BIG, "C{COPY\"t\" FROM stdin;}D{1\n}E.");
    assert_split("copyist;\nSELECT 1;", BIG, "S{copyist;\nSELECT 1;}.");
}

/* ---- batches */

/* a batch that went out is not given out again, empty, before a COPY or at the end */
static void test_no_empty_batches(void **state)
{
    (void)state;
    assert_split("SELECT 1;\nCOPY t FROM stdin;\n\\.\n", 1, "S{SELECT 1;}C{\nCOPY t FROM stdin;}E.");
    assert_split("SELECT 1;", 1, "S{SELECT 1;}.");
    assert_split("SELECT 1;\n-- the end\n", 1, "S{SELECT 1;}.");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_copy_end_mark_at_end_of_input),
        cmocka_unit_test(test_copy_first_word),
        cmocka_unit_test(test_no_empty_batches),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
