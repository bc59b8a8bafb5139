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
#include <time.h>

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
        case MXPC_SQL_TRANSACTION:
        case MXPC_SQL_COPY:
            assert_non_null(p);
            assert_true(len > 0);
            assert_int_equal(p[len], '\0');
            puts_(&out, ev == MXPC_SQL_COPY ? "C{" : ev == MXPC_SQL_TRANSACTION ? "T{" : "S{");
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

/* ---- pg_restore -f - of a small database (PostgreSQL 15), sql_split_dump.sql */

static char *read_dump(size_t *n)
{
    FILE *f = fopen(MXPC_SQL_SPLIT_DUMP, "rb");
    assert_non_null(f);
    struct buf b = {0};
    char chunk[4096];
    size_t r;
    while ((r = fread(chunk, 1, sizeof chunk, f)) > 0)
        put(&b, chunk, r);
    fclose(f);
    *n = b.len;
    return b.p;
}

/* dump[from, to) without its \restrict and \unrestrict lines */
static void put_sql(struct buf *b, const char *from, const char *to)
{
    for (const char *p = from; p < to;) {
        const char *nl = memchr(p, '\n', (size_t)(to - p));
        const char *e = nl ? nl + 1 : to;
        if (strncmp(p, "\\restrict ", 10) != 0 && strncmp(p, "\\unrestrict ", 12) != 0)
            put(b, p, (size_t)(e - p));
        p = e;
    }
}

static void test_dump_one_batch(void **state)
{
    (void)state;
    size_t n;
    char *dump = read_dump(&n);
    const char *copy1 = strstr(dump, "COPY public.empty_one");
    const char *copy2 = strstr(dump, "COPY public.item");
    assert_non_null(copy1);
    assert_non_null(copy2);
    /* the COPY statement's text starts after the statement before it */
    const char *before1 = strstr(dump, "::regclass);") + 12;
    const char *before2 = strstr(copy1, "\\.\n") + 3;
    const char *data2 = strchr(copy2, '\n') + 1;
    const char *end2 = strstr(copy2, "\n\\.\n") + 1;
    const char *rest = end2 + 3;

    struct buf want = {0};
    puts_(&want, "S{");
    put_sql(&want, dump, before1);
    puts_(&want, "}C{");
    put(&want, before1, (size_t)(strchr(copy1, '\n') - before1));
    puts_(&want, "}EC{");
    put(&want, before2, (size_t)(strchr(copy2, '\n') - before2));
    puts_(&want, "}D{");
    put(&want, data2, (size_t)(end2 - data2));
    puts_(&want, "}ES{");
    put_sql(&want, rest, dump + n);
    puts_(&want, "}.");
    /* what the dump holds, by hand */
    assert_non_null(strstr(want.p, "S{--\n-- PostgreSQL database dump\n--\n\n\n-- Dumped from"));
    assert_non_null(strstr(want.p, "SET DEFAULT nextval('public.item_id_seq'::regclass);}C{\n\n\n--\n"
                                   "-- Data for Name: empty_one; Type: TABLE DATA; Schema: public; Owner: postgres\n"
                                   "--\n\nCOPY public.empty_one (x) FROM stdin;}EC{\n\n--\n"));
    assert_non_null(strstr(want.p, "COPY public.item (id, name, note) FROM stdin;}D{1\tapple\tit's; red\n"
                                   "2\tpear\ttab\\there\n3\tback\\\\slash\t\\N\n4\t\\\\.\ta\\\\.\n}ES{\n\n--\n"));
    assert_non_null(strstr(want.p, "USING btree (name);\n\n\n--\n-- PostgreSQL database dump complete\n--\n\n\n}."));
    assert_null(strstr(want.p, "restrict"));

    assert_split_n(dump, n, BIG, want.p);
    free(want.p);
    free(dump);
}

static void test_dump_statement_by_statement(void **state)
{
    (void)state;
    size_t n;
    char *dump = read_dump(&n);
    char *got = split(dump, n, 7, 1);
    /* the kinds of events: 20 statements, the two COPYs, 3 statements, DONE */
    struct buf kinds = {0};
    puts_(&kinds, "");
    for (const char *p = got; *p; p++) {
        if (*p == 'S' || *p == 'C' || *p == 'D') {
            put(&kinds, p, 1);
            p = strchr(p, '}');
        } else {
            put(&kinds, p, 1);
        }
    }
    assert_string_equal(kinds.p, "SSSSSSSSSSSSSSSSSSSS"
                                 "CECDE"
                                 "SSS.");
    assert_non_null(strstr(got, "SET statement_timeout = 0;}S{\nSET lock_timeout = 0;}"));
    assert_non_null(strstr(got,
                           "S{\n\n\n--\n-- Name: item item_pkey; Type: CONSTRAINT; Schema: public; Owner: postgres\n"
                           "--\n\nALTER TABLE ONLY public.item\n    ADD CONSTRAINT item_pkey PRIMARY KEY (id);}"));
    /* the comment after the last statement holds none: dropped */
    const char *last = strstr(got, "CREATE INDEX item_name ON public.item USING btree (name);}.");
    assert_non_null(last);
    assert_string_equal(last + strlen(last) - 3, ";}.");
    char *whole = split(dump, n, WHOLE, 1);
    assert_string_equal(got, whole);
    free(whole);
    free(got);
    free(kinds.p);
    free(dump);
}

/* ---- quotes and comments */

static void test_semicolons_in_quotes_and_comments(void **state)
{
    (void)state;
    assert_split("SELECT 'a;b';\n"
                 "SELECT E'it\\'s;', e'\\\\';\n"
                 "SELECT 'it''s;';\n"
                 "SELECT \"a;b\", \"x\"\"; \";\n"
                 "SELECT 1 -- c;\n"
                 ";\n"
                 "SELECT /* a /* b; */ ; */ 2;\n"
                 "SELECT $$a;b$$, $q$ ' \" ; $$ $q$;",
                 1,
                 "S{SELECT 'a;b';}"
                 "S{\nSELECT E'it\\'s;', e'\\\\';}"
                 "S{\nSELECT 'it''s;';}"
                 "S{\nSELECT \"a;b\", \"x\"\"; \";}"
                 "S{\nSELECT 1 -- c;\n;}"
                 "S{\nSELECT /* a /* b; */ ; */ 2;}"
                 "S{\nSELECT $$a;b$$, $q$ ' \" ; $$ $q$;}.");
}

/* 'it\' is a whole string (standard_conforming_strings): the backslash escapes only in E'' */
static void test_backslash_in_plain_string(void **state)
{
    (void)state;
    assert_split("SELECT 'C:\\';\nSELECT 2;", 1, "S{SELECT 'C:\\';}S{\nSELECT 2;}.");
    assert_split("SELECT xE'a\\';';\nSELECT 2;", 1, "S{SELECT xE'a\\';}S{';\nSELECT 2;}.");
}

static void test_function_bodies(void **state)
{
    (void)state;
    assert_split("CREATE FUNCTION public.f() RETURNS integer\n"
                 "    LANGUAGE plpgsql\n"
                 "    AS $$\n"
                 "BEGIN\n"
                 "COPY x FROM stdin;\n"
                 "  RETURN 1;\n"
                 "END;\n"
                 "$$;\n"
                 "CREATE FUNCTION public.g() RETURNS text\n"
                 "    LANGUAGE plpgsql\n"
                 "    AS $body$\n"
                 "BEGIN\n"
                 "  EXECUTE $$COPY y FROM stdin;$$;\n"
                 "COPY z FROM stdin;\n"
                 "  RETURN 'a;'; -- ;\n"
                 "END;\n"
                 "$body$;\n",
                 1,
                 "S{CREATE FUNCTION public.f() RETURNS integer\n    LANGUAGE plpgsql\n    AS $$\nBEGIN\n"
                 "COPY x FROM stdin;\n  RETURN 1;\nEND;\n$$;}"
                 "S{\nCREATE FUNCTION public.g() RETURNS text\n    LANGUAGE plpgsql\n    AS $body$\nBEGIN\n"
                 "  EXECUTE $$COPY y FROM stdin;$$;\nCOPY z FROM stdin;\n  RETURN 'a;'; -- ;\nEND;\n$body$;}.");
}

/* a$b is an identifier, $1 a parameter: neither opens a dollar quote */
static void test_dollar_not_quote(void **state)
{
    (void)state;
    assert_split("SELECT a$b$c FROM t WHERE x = $1;\nSELECT $1$;\nSELECT 3;", 1,
                 "S{SELECT a$b$c FROM t WHERE x = $1;}S{\nSELECT $1$;}S{\nSELECT 3;}.");
}

/* ---- COPY */

static void test_copy_data_end_mark(void **state)
{
    (void)state;
    assert_split("COPY t (a) FROM stdin;\n"
                 "\\\\.\n"
                 "a\\.\n"
                 "\\.x\n"
                 " \\.\n"
                 "\\.\\.\n"
                 "\\.\n"
                 "SELECT 1;\n",
                 BIG, "C{COPY t (a) FROM stdin;}D{\\\\.\na\\.\n\\.x\n \\.\n\\.\\.\n}ES{SELECT 1;\n}.");
}

static void test_copy_empty_and_first(void **state)
{
    (void)state;
    assert_split("COPY t FROM stdin;\n\\.\nCOPY u FROM stdin;\n\\.\n", BIG,
                 "C{COPY t FROM stdin;}EC{COPY u FROM stdin;}E.");
    /* the space after the statement on its line is not data */
    assert_split("copy t from STDIN; \t\n1\n\\.\n", BIG, "C{copy t from STDIN;}D{1\n}E.");
}

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

/* a COPY the server answers without asking for data (TO stdout): no data follows */
static void test_copy_without_data(void **state)
{
    (void)state;
    assert_split("COPY t TO stdout; SELECT 1;\n", BIG, "C{COPY t TO stdout;}S{ SELECT 1;\n}.");
}

/* ---- batches */

static void test_batches(void **state)
{
    (void)state;
    assert_split("SELECT 1;SELECT 2;SELECT 3;SELECT 4;SELECT 5;", 20,
                 "S{SELECT 1;SELECT 2;SELECT 3;}S{SELECT 4;SELECT 5;}.");
    assert_split("SELECT 1;SELECT 2;SELECT 3;SELECT 4;SELECT 5;SELECT 6;", 20,
                 "S{SELECT 1;SELECT 2;SELECT 3;}S{SELECT 4;SELECT 5;SELECT 6;}.");
}

static void test_statements_before_copy(void **state)
{
    (void)state;
    assert_split("SELECT 1;\nSELECT 2;\nCOPY t FROM stdin;\nx\n\\.\nSELECT 3;", BIG,
                 "S{SELECT 1;\nSELECT 2;}C{\nCOPY t FROM stdin;}D{x\n}ES{SELECT 3;}.");
}

/* A semicolon inside parentheses (a rule's actions) or inside the BEGIN
 * ATOMIC ... END of a routine's body ends no statement, as in psql: a batch
 * cut there would send half a statement. */
static void test_no_end_inside_parens_or_atomic_bodies(void **state)
{
    (void)state;
    const char *rule = "CREATE RULE r AS ON INSERT TO t DO INSTEAD (INSERT INTO a VALUES (1); UPDATE b SET x = 1;);";
    assert_split(rule, 20, "S{CREATE RULE r AS ON INSERT TO t DO INSTEAD (INSERT INTO a VALUES (1); UPDATE b SET x = 1;);}.");
    const char *fn = "CREATE FUNCTION f() RETURNS int LANGUAGE sql\nBEGIN ATOMIC\n SELECT 1;\n SELECT CASE WHEN true THEN 1 "
                     "ELSE 2 END;\nEND;\nSELECT 2;";
    assert_split(fn, 20,
                 "S{CREATE FUNCTION f() RETURNS int LANGUAGE sql\nBEGIN ATOMIC\n SELECT 1;\n SELECT CASE WHEN true THEN 1 "
                 "ELSE 2 END;\nEND;}S{\nSELECT 2;}.");
    assert_split("create or replace procedure p() begin atomic select 1; end; select 2;", 10,
                 "S{create or replace procedure p() begin atomic select 1; end;}S{ select 2;}.");
    /* outside a routine, CASE ... END counts nothing; BEGIN is a transaction's */
    assert_split("SELECT CASE WHEN true THEN 1 END; SELECT 2;", 10, "S{SELECT CASE WHEN true THEN 1 END;}S{ SELECT 2;}.");
}

/* Statements that begin or end a transaction go out alone (pg_restore -f
 * writes BEGIN; and COMMIT; around large objects), after the batch before them. */
static void test_transaction_statements(void **state)
{
    (void)state;
    assert_split("SELECT 1;\nBEGIN;\nSELECT pg_catalog.lo_create('16385');\nCOMMIT;\nSELECT 2;", BIG,
                 "S{SELECT 1;}T{\nBEGIN;}S{\nSELECT pg_catalog.lo_create('16385');}T{\nCOMMIT;}S{\nSELECT 2;}.");
    assert_split("start transaction; end; rollback; abort; prepare transaction 'x'; prepare q as select 1; "
                 "begin_x();",
                 BIG,
                 "T{start transaction;}T{ end;}T{ rollback;}T{ abort;}T{ prepare transaction 'x';}"
                 "S{ prepare q as select 1; begin_x();}.");
}

/* the statement given out alone, from its first word: what the loader judges */
static void test_statement_from_its_first_word(void **state)
{
    (void)state;
    struct mxpc_sql_split *s = mxpc_sql_split_new(BIG);
    assert_non_null(s);
    const char *in = "SELECT 1;\n-- large objects\n/* x */ COMMIT;\nCOPY t FROM stdin;\n\\.\n";
    size_t room;
    char *at = mxpc_sql_split_space(s, &room);
    memcpy(at, in, strlen(in));
    mxpc_sql_split_added(s, strlen(in));
    mxpc_sql_split_end(s);
    const char *p;
    size_t n;
    assert_int_equal(mxpc_sql_split_next(s, &p, &n), MXPC_SQL_STATEMENTS);
    assert_int_equal(mxpc_sql_split_next(s, &p, &n), MXPC_SQL_TRANSACTION);
    assert_string_equal(p, "\n-- large objects\n/* x */ COMMIT;");
    assert_string_equal(mxpc_sql_split_statement(s), "COMMIT;");
    assert_int_equal(mxpc_sql_split_next(s, &p, &n), MXPC_SQL_COPY);
    assert_string_equal(mxpc_sql_split_statement(s), "COPY t FROM stdin;");
    mxpc_sql_split_free(s);
}

/* a dollar quote's tag up to 256 characters is one; a longer one is refused, not misread */
static void test_long_dollar_tags(void **state)
{
    (void)state;
    char tag[300], in[1000], want[1100];
    memset(tag, 'a', 256);
    tag[256] = '\0';
    snprintf(in, sizeof in, "SELECT $%s$;$%s$;", tag, tag);
    snprintf(want, sizeof want, "S{%s}.", in);
    assert_split(in, BIG, want);
    memset(tag, 'a', 257);
    tag[257] = '\0';
    snprintf(in, sizeof in, "SELECT $%s$;$%s$;", tag, tag);
    assert_split(in, BIG, "ERROR(a dollar quote's tag longer than 256 characters)");
}

/* a batch that went out is not given out again, empty, before a COPY or at the end */
static void test_no_empty_batches(void **state)
{
    (void)state;
    assert_split("SELECT 1;\nCOPY t FROM stdin;\n\\.\n", 1, "S{SELECT 1;}C{\nCOPY t FROM stdin;}E.");
    assert_split("SELECT 1;", 1, "S{SELECT 1;}.");
    assert_split("SELECT 1;\n-- the end\n", 1, "S{SELECT 1;}.");
}

/* empty statements before a COPY are given out, not dropped */
static void test_empty_statement_before_copy(void **state)
{
    (void)state;
    assert_split("-- c\n;\nCOPY t FROM stdin;\n\\.\n", BIG, "S{-- c\n;}C{\nCOPY t FROM stdin;}E.");
}

static void test_text_after_last_semicolon(void **state)
{
    (void)state;
    assert_split("SELECT 1;\nSELECT 2", BIG, "S{SELECT 1;\nSELECT 2}.");
    assert_split("SELECT 1;\nSELECT 2", 1, "S{SELECT 1;}S{\nSELECT 2}.");
    assert_split("SELECT 1;\n-- the end\n", BIG, "S{SELECT 1;\n-- the end\n}.");
    assert_split("-- only a comment\n/* and another */\n", BIG, ".");
    assert_split("", BIG, ".");
}

/* ---- psql's commands */

static void test_restrict_lines_dropped(void **state)
{
    (void)state;
    assert_split("\\restrict abc\nSELECT 1;\n  \\unrestrict abc\n", BIG, "S{SELECT 1;\n}.");
    assert_split("SELECT '\n\\restrict abc\n';", BIG, "S{SELECT '\n\\restrict abc\n';}.");
}

static void test_errors(void **state)
{
    (void)state;
    assert_split("SELECT 1;\n\\connect db\nSELECT 2;", BIG,
                 "ERROR(psql's \\connect command: only SQL, COPY data and \\restrict lines can be restored this way)");
    assert_split(
        "\\restrictx\n", BIG,
        "ERROR(psql's \\restrictx command: only SQL, COPY data and \\restrict lines can be restored this way)");
    assert_split("SELECT 1 \\g\n", BIG, "ERROR(a backslash outside quotes (a psql command) in a statement)");
    assert_split("SELECT 1\n\\restrict abc\n;", BIG,
                 "ERROR(a backslash outside quotes (a psql command) in a statement)");
    assert_split("COPY t FROM stdin;\n1\n2\n", BIG,
                 "C{COPY t FROM stdin;}D{1\n2\n}ERROR(the SQL ended in the middle of a table's COPY data)");
    assert_split("COPY t FROM stdin;", BIG,
                 "C{COPY t FROM stdin;}ERROR(the SQL ended in the middle of a table's COPY data)");
    assert_split("COPY t FROM stdin; SELECT 1;\n1\n\\.\n", BIG,
                 "C{COPY t FROM stdin;}ERROR(text after a COPY ... FROM stdin statement, on its line)");
}

/* A NUL byte in SQL would end the statements' text early (PQexec takes a C
 * string): the rest would be dropped without a word. Refused; in COPY data
 * it is the server's to refuse. */
static void test_nul_byte(void **state)
{
    (void)state;
    assert_split_n("SELECT 1;\nSELECT '\0'; DROP TABLE t;\n", 33, BIG,
                   "ERROR(a NUL byte in the SQL, where only text can be)");
    assert_split_n("COPY t FROM stdin;\na\0b\n\\.\n", 27, BIG, "C{COPY t FROM stdin;}D{a\0b\n}E.");
}

/* ---- sizes and line ends */

static void test_long_line(void **state)
{
    (void)state;
    size_t big = 5 * 1024 * 1024;
    struct buf in = {0};
    puts_(&in, "SELECT '");
    char *x = malloc(big);
    memset(x, 'x', big);
    put(&in, x, big);
    puts_(&in, "';\nSELECT 2;");
    struct buf want = {0};
    puts_(&want, "S{SELECT '");
    put(&want, x, big);
    puts_(&want, "';}S{\nSELECT 2;}.");
    static const size_t chunks[] = {4096, 65536, WHOLE};
    for (size_t i = 0; i < 3; i++) {
        char *got = split(in.p, in.len, chunks[i], 1);
        assert_int_equal(strlen(got), want.len);
        assert_true(strcmp(got, want.p) == 0);
        free(got);
    }
    free(x);
    free(in.p);
    free(want.p);
}

/* A line that comes a byte at a time is searched for its newline once, not
 * once per read: 2 MiB took 26 s of CPU (quadratic), now a tenth of a
 * second (ASan included). */
static void test_long_line_in_small_reads(void **state)
{
    (void)state;
    size_t big = 2 * 1024 * 1024;
    struct buf in = {0};
    puts_(&in, "SELECT '");
    char *x = malloc(big);
    memset(x, 'x', big);
    put(&in, x, big);
    puts_(&in, "';");
    clock_t start = clock();
    char *got = split(in.p, in.len, 1, 1);
    double cpu = (double)(clock() - start) / CLOCKS_PER_SEC;
    assert_int_equal(strlen(got), in.len + 4);
    assert_memory_equal(got, "S{SELECT 'xxx", 13);
    assert_string_equal(got + in.len, "';}.");
    if (cpu > 5)
        fail_msg("2 MiB in 1-byte reads took %.1f s of CPU", cpu);
    free(got);
    free(x);
    free(in.p);
}

static void test_crlf(void **state)
{
    (void)state;
    assert_split("SELECT 1;\r\nSELECT 'a\r\n';\r\n", 1, "S{SELECT 1;}S{\r\nSELECT 'a\r\n';}.");
    assert_split("COPY t FROM stdin;\r\n1\r\n\\.\n", BIG, "C{COPY t FROM stdin;}D{1\r\n}E.");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dump_one_batch),
        cmocka_unit_test(test_dump_statement_by_statement),
        cmocka_unit_test(test_semicolons_in_quotes_and_comments),
        cmocka_unit_test(test_backslash_in_plain_string),
        cmocka_unit_test(test_function_bodies),
        cmocka_unit_test(test_dollar_not_quote),
        cmocka_unit_test(test_copy_data_end_mark),
        cmocka_unit_test(test_copy_empty_and_first),
        cmocka_unit_test(test_copy_end_mark_at_end_of_input),
        cmocka_unit_test(test_copy_first_word),
        cmocka_unit_test(test_copy_without_data),
        cmocka_unit_test(test_batches),
        cmocka_unit_test(test_statements_before_copy),
        cmocka_unit_test(test_no_empty_batches),
        cmocka_unit_test(test_empty_statement_before_copy),
        cmocka_unit_test(test_text_after_last_semicolon),
        cmocka_unit_test(test_restrict_lines_dropped),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_no_end_inside_parens_or_atomic_bodies),
        cmocka_unit_test(test_transaction_statements),
        cmocka_unit_test(test_statement_from_its_first_word),
        cmocka_unit_test(test_long_dollar_tags),
        cmocka_unit_test(test_nul_byte),
        cmocka_unit_test(test_long_line),
        cmocka_unit_test(test_long_line_in_small_reads),
        cmocka_unit_test(test_crlf),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
