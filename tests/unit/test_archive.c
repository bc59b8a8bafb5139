/* The archive writer and reader (C API): round trips by hash, atomic output,
 * declared sizes, names, sinks and sources, damaged input, interruption. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <dirent.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "mxpc/archive.h"
#include "mxpc/buf.h"
#include "mxpc/interrupt.h"

struct dir {
    char path[64];
};

static int setup(void **state)
{
    struct dir *d = malloc(sizeof *d);
    snprintf(d->path, sizeof d->path, "/tmp/mxpc-archive-XXXXXX");
    assert_non_null(mkdtemp(d->path));
    *state = d;
    return 0;
}

static int teardown(void **state)
{
    struct dir *d = *state;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", d->path);
    assert_int_equal(system(cmd), 0);
    free(d);
    mxpc_interrupt_reset();
    return 0;
}

static int count_files(const char *path)
{
    DIR *dir = opendir(path);
    int n = 0;
    for (struct dirent *e; (e = readdir(dir)) != NULL;)
        n += strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0;
    closedir(dir);
    return n;
}

static char *path_in(const struct dir *d, const char *name)
{
    static char buf[128];
    snprintf(buf, sizeof buf, "%s/%s", d->path, name);
    return buf;
}

/* Deterministic incompressible bytes. */
static void fill_random(uint64_t *seed, unsigned char *buf, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        *seed ^= *seed << 13, *seed ^= *seed >> 7, *seed ^= *seed << 17;
        buf[i] = (unsigned char)*seed;
    }
}

static const int64_t sizes[] = {0, 1, 1 << 20, 100 << 20};
#define NSIZES (sizeof sizes / sizeof *sizes)

static void round_trip_is_byte_identical(void **state)
{
    struct dir *d = *state;
    const char *out = path_in(d, "rt.tar.gz");
    unsigned char written[NSIZES][32], read_back[32];
    enum mxpc_archive_status st;
    char err[512];
    struct mxpc_archive_writer *w = mxpc_archive_writer_open_path(out, 0, 1, &st, err, sizeof err);
    assert_non_null(w);
    size_t piece = 65537; /* odd on purpose: pieces straddle tar blocks */
    unsigned char *buf = malloc(piece);
    uint64_t seed = 88172645463325252ull;
    for (size_t i = 0; i < NSIZES; i++) {
        char name[64];
        snprintf(name, sizeof name, "tree/file-%zu", i);
        assert_int_equal(mxpc_archive_writer_begin_entry(w, name, sizes[i], 1700000000), MXPC_ARCHIVE_OK);
        EVP_MD_CTX *md = EVP_MD_CTX_new();
        EVP_DigestInit_ex(md, EVP_sha256(), NULL);
        for (int64_t left = sizes[i]; left > 0;) {
            size_t n = left < (int64_t)piece ? (size_t)left : piece;
            fill_random(&seed, buf, n);
            EVP_DigestUpdate(md, buf, n);
            assert_int_equal(mxpc_archive_writer_write(w, buf, n), MXPC_ARCHIVE_OK);
            left -= (int64_t)n;
        }
        EVP_DigestFinal_ex(md, written[i], NULL);
        EVP_MD_CTX_free(md);
        assert_int_equal(mxpc_archive_writer_end_entry(w), MXPC_ARCHIVE_OK);
    }
    assert_int_equal(mxpc_archive_writer_commit(w), MXPC_ARCHIVE_OK);
    mxpc_archive_writer_free(w);
    struct stat sb;
    assert_int_equal(stat(out, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0600);
    assert_int_equal(count_files(d->path), 1);

    struct mxpc_archive_reader *r = mxpc_archive_reader_open_path(out, NULL, &st, err, sizeof err);
    assert_non_null(r);
    struct mxpc_archive_entry e;
    for (size_t i = 0; i < NSIZES; i++) {
        assert_int_equal(mxpc_archive_reader_next(r, &e), MXPC_ARCHIVE_OK);
        char name[64];
        snprintf(name, sizeof name, "tree/file-%zu", i);
        assert_string_equal(e.name, name);
        assert_int_equal(e.size, sizes[i]);
        assert_int_equal(e.type, MXPC_ARCHIVE_FILE);
        assert_int_equal(e.mtime, 1700000000);
        EVP_MD_CTX *md = EVP_MD_CTX_new();
        EVP_DigestInit_ex(md, EVP_sha256(), NULL);
        int64_t total = 0;
        for (ssize_t n; (n = mxpc_archive_reader_read(r, buf, piece)) != 0;) {
            assert_true(n > 0);
            EVP_DigestUpdate(md, buf, (size_t)n);
            total += n;
        }
        EVP_DigestFinal_ex(md, read_back, NULL);
        EVP_MD_CTX_free(md);
        assert_int_equal(total, sizes[i]);
        assert_memory_equal(read_back, written[i], 32);
    }
    assert_int_equal(mxpc_archive_reader_next(r, &e), MXPC_ARCHIVE_END);
    assert_int_equal(mxpc_archive_reader_next(r, &e), MXPC_ARCHIVE_END);
    assert_string_equal(mxpc_archive_reader_compression(r), "gzip");
    uint64_t entries, in, bytes_out;
    mxpc_archive_reader_stats(r, &entries, &in, &bytes_out);
    assert_int_equal(entries, NSIZES);
    assert_int_equal(in, (uint64_t)sb.st_size);
    mxpc_archive_reader_free(r);
    free(buf);
}

static void existing_target_is_kept_unless_forced(void **state)
{
    struct dir *d = *state;
    const char *out = path_in(d, "keep.tar.gz");
    FILE *f = fopen(out, "w");
    fputs("keep", f);
    fclose(f);
    enum mxpc_archive_status st = MXPC_ARCHIVE_OK;
    char err[512];
    assert_null(mxpc_archive_writer_open_path(out, 0, 6, &st, err, sizeof err));
    assert_int_equal(st, MXPC_ARCHIVE_EEXIST);
    assert_non_null(strstr(err, "already exists"));
    struct mxpc_archive_writer *w = mxpc_archive_writer_open_path(out, 1, 6, &st, err, sizeof err);
    assert_non_null(w);
    struct stat sb;
    assert_int_equal(stat(out, &sb), 0);
    assert_int_equal(sb.st_size, 4); /* untouched until commit */
    assert_int_equal(mxpc_archive_writer_commit(w), MXPC_ARCHIVE_OK);
    mxpc_archive_writer_free(w);
    assert_int_equal(stat(out, &sb), 0);
    assert_true(sb.st_size > 4);
    assert_int_equal(count_files(d->path), 1);
}

static void uncommitted_writer_leaves_nothing(void **state)
{
    struct dir *d = *state;
    char err[512];
    struct mxpc_archive_writer *w = mxpc_archive_writer_open_path(path_in(d, "a.tar.gz"), 0, 6, NULL, err, sizeof err);
    assert_int_equal(mxpc_archive_writer_begin_entry(w, "x", 3, 0), MXPC_ARCHIVE_OK);
    assert_int_equal(mxpc_archive_writer_write(w, "abc", 3), MXPC_ARCHIVE_OK);
    assert_int_equal(count_files(d->path), 1); /* the temporary file */
    mxpc_archive_writer_free(w);
    assert_int_equal(count_files(d->path), 0);
}

static void declared_size_is_enforced(void **state)
{
    struct dir *d = *state;
    char err[512];
    struct mxpc_archive_writer *w = mxpc_archive_writer_open_path(path_in(d, "s.tar.gz"), 0, 6, NULL, err, sizeof err);
    assert_int_equal(mxpc_archive_writer_begin_entry(w, "short", 10, 0), MXPC_ARCHIVE_OK);
    assert_int_equal(mxpc_archive_writer_write(w, "12345", 5), MXPC_ARCHIVE_OK);
    assert_int_equal(mxpc_archive_writer_end_entry(w), MXPC_ARCHIVE_ESIZE);
    assert_non_null(strstr(mxpc_archive_writer_error(w), "entry \"short\": 5 bytes written, 10 declared"));
    assert_int_equal(count_files(d->path), 0); /* failed = aborted */
    assert_int_equal(mxpc_archive_writer_commit(w), MXPC_ARCHIVE_ESTATE);
    mxpc_archive_writer_free(w);

    w = mxpc_archive_writer_open_path(path_in(d, "l.tar.gz"), 0, 6, NULL, err, sizeof err);
    assert_int_equal(mxpc_archive_writer_begin_entry(w, "long", 2, 0), MXPC_ARCHIVE_OK);
    assert_int_equal(mxpc_archive_writer_write(w, "123", 3), MXPC_ARCHIVE_ESIZE);
    assert_non_null(strstr(mxpc_archive_writer_error(w), "more data than the 2 bytes declared"));
    mxpc_archive_writer_free(w);
    assert_int_equal(count_files(d->path), 0);
}

static void misuse_is_refused_without_harm(void **state)
{
    struct dir *d = *state;
    char err[512];
    struct mxpc_archive_writer *w = mxpc_archive_writer_open_path(path_in(d, "m.tar.gz"), 0, 6, NULL, err, sizeof err);
    assert_int_equal(mxpc_archive_writer_write(w, "x", 1), MXPC_ARCHIVE_ESTATE);
    assert_int_equal(mxpc_archive_writer_begin_entry(w, "/abs", 0, 0), MXPC_ARCHIVE_ESTATE);
    assert_non_null(strstr(mxpc_archive_writer_error(w), "entry \"/abs\": absolute path"));
    assert_int_equal(mxpc_archive_writer_begin_entry(w, "a/../../b", 0, 0), MXPC_ARCHIVE_ESTATE);
    assert_int_equal(mxpc_archive_writer_begin_entry(w, "dir/", 0, 0), MXPC_ARCHIVE_ESTATE);
    assert_int_equal(mxpc_archive_writer_begin_entry(w, "ok", 0, 0), MXPC_ARCHIVE_OK);
    assert_int_equal(mxpc_archive_writer_commit(w), MXPC_ARCHIVE_ESTATE); /* entry open */
    assert_int_equal(mxpc_archive_writer_end_entry(w), MXPC_ARCHIVE_OK);
    assert_int_equal(mxpc_archive_writer_commit(w), MXPC_ARCHIVE_OK);
    mxpc_archive_writer_free(w);
    assert_null(mxpc_archive_writer_open_path(path_in(d, "n.tar.gz"), 0, 10, NULL, err, sizeof err));
}

static void names_and_quoting(void **state)
{
    (void)state;
    assert_null(mxpc_archive_name_problem("tree/0d/3e/x"));
    assert_null(mxpc_archive_name_problem("./.metadata"));
    assert_null(mxpc_archive_name_problem("db/"));
    assert_null(mxpc_archive_name_problem("a..b/..c"));
    assert_string_equal(mxpc_archive_name_problem(""), "empty name");
    assert_string_equal(mxpc_archive_name_problem("/etc/passwd"), "absolute path");
    assert_string_equal(mxpc_archive_name_problem(".."), "path escapes the archive");
    assert_string_equal(mxpc_archive_name_problem("tree/../../x"), "path escapes the archive");
    assert_string_equal(mxpc_archive_name_problem("tree/.."), "path escapes the archive");
    struct mxpc_buf b = MXPC_BUF_INIT;
    mxpc_archive_quote(&b, "a\"b\\c\n\x1b\xc3\xa9");
    assert_string_equal(b.data, "\"a\\\"b\\\\c\\n\\x1b\xc3\xa9\"");
    mxpc_buf_free(&b);
    char longname[300];
    memset(longname, 'x', sizeof longname - 1);
    longname[sizeof longname - 1] = '\0';
    mxpc_archive_quote(&b, longname);
    assert_int_equal(b.len, 200 + 3 + 2);
    mxpc_buf_free(&b);
}

/* --- sinks and sources in memory -------------------------------------------- */

struct memsink {
    struct mxpc_buf buf;
    size_t fail_after; /* 0 = never */
};

static int mem_sink(void *ud, const void *data, size_t len, char *err, size_t errlen)
{
    struct memsink *s = ud;
    if (s->fail_after && s->buf.len + len > s->fail_after) {
        snprintf(err, errlen, "upload failed");
        return -1;
    }
    mxpc_buf_append(&s->buf, data, len);
    return 0;
}

struct memsource {
    const char *data;
    size_t len, pos, step;
};

static ssize_t mem_source(void *ud, void *buf, size_t cap, char *err, size_t errlen)
{
    (void)err, (void)errlen;
    struct memsource *s = ud;
    size_t n = s->len - s->pos;
    if (n > cap)
        n = cap;
    if (n > s->step)
        n = s->step;
    memcpy(buf, s->data + s->pos, n);
    s->pos += n;
    return (ssize_t)n;
}

/* An archive in memory with entries "a" = "hello" and "b" = 100000 x 'b'. */
static struct mxpc_buf sample_archive(void)
{
    struct memsink s = {MXPC_BUF_INIT, 0};
    char err[512];
    struct mxpc_archive_writer *w = mxpc_archive_writer_open_sink(mem_sink, &s, "mem", 6, NULL, err, sizeof err);
    assert_non_null(w);
    assert_int_equal(mxpc_archive_writer_begin_entry(w, "a", 5, 0), MXPC_ARCHIVE_OK);
    assert_int_equal(mxpc_archive_writer_write(w, "hello", 5), MXPC_ARCHIVE_OK);
    assert_int_equal(mxpc_archive_writer_end_entry(w), MXPC_ARCHIVE_OK);
    char *b = malloc(100000);
    memset(b, 'b', 100000);
    assert_int_equal(mxpc_archive_writer_begin_entry(w, "b", 100000, 0), MXPC_ARCHIVE_OK);
    assert_int_equal(mxpc_archive_writer_write(w, b, 100000), MXPC_ARCHIVE_OK);
    assert_int_equal(mxpc_archive_writer_end_entry(w), MXPC_ARCHIVE_OK);
    free(b);
    assert_int_equal(mxpc_archive_writer_commit(w), MXPC_ARCHIVE_OK);
    mxpc_archive_writer_free(w);
    return s.buf;
}

/* Reads every entry of data; returns the final status, with the message in msg. */
static int read_all(const char *data, size_t len, size_t step, char *msg, size_t msglen)
{
    struct memsource src = {data, len, 0, step};
    enum mxpc_archive_status st = MXPC_ARCHIVE_OK;
    struct mxpc_archive_reader *r = mxpc_archive_reader_open_source(mem_source, &src, "mem", &st, msg, msglen);
    if (!r)
        return st;
    struct mxpc_archive_entry e;
    int rc;
    while ((rc = mxpc_archive_reader_next(r, &e)) == MXPC_ARCHIVE_OK)
        if ((rc = mxpc_archive_reader_skip(r)) != MXPC_ARCHIVE_OK)
            break;
    snprintf(msg, msglen, "%s", mxpc_archive_reader_error(r));
    mxpc_archive_reader_free(r);
    return rc;
}

static void sink_and_source_round_trip(void **state)
{
    (void)state;
    struct mxpc_buf a = sample_archive();
    struct memsource src = {a.data, a.len, 0, 7}; /* tiny reads on purpose */
    char err[512];
    struct mxpc_archive_reader *r = mxpc_archive_reader_open_source(mem_source, &src, "mem", NULL, err, sizeof err);
    assert_non_null(r);
    struct mxpc_archive_entry e;
    char buf[16];
    assert_int_equal(mxpc_archive_reader_next(r, &e), MXPC_ARCHIVE_OK);
    assert_string_equal(e.name, "a");
    assert_int_equal(mxpc_archive_reader_read(r, buf, sizeof buf), 5);
    assert_memory_equal(buf, "hello", 5);
    assert_int_equal(mxpc_archive_reader_read(r, buf, sizeof buf), 0);
    assert_int_equal(mxpc_archive_reader_next(r, &e), MXPC_ARCHIVE_OK);
    assert_string_equal(e.name, "b");
    int64_t done = -1;
    assert_string_equal(mxpc_archive_reader_current(r, &done), "b");
    assert_int_equal(done, 0);
    assert_int_equal(mxpc_archive_reader_next(r, &e), MXPC_ARCHIVE_END); /* skips "b" */
    assert_null(mxpc_archive_reader_current(r, NULL));
    mxpc_archive_reader_free(r);
    mxpc_buf_free(&a);
}

static void failing_sink_fails_the_writer(void **state)
{
    (void)state;
    struct memsink s = {MXPC_BUF_INIT, 1000};
    char err[512];
    struct mxpc_archive_writer *w = mxpc_archive_writer_open_sink(mem_sink, &s, "upload", 0, NULL, err, sizeof err);
    char *big = calloc(1, 1 << 20);
    assert_int_equal(mxpc_archive_writer_begin_entry(w, "big", 1 << 20, 0), MXPC_ARCHIVE_OK);
    assert_int_equal(mxpc_archive_writer_write(w, big, 1 << 20), MXPC_ARCHIVE_EIO);
    assert_non_null(strstr(mxpc_archive_writer_error(w), "upload: entry \"big\": upload failed"));
    size_t len = s.buf.len;
    mxpc_archive_writer_free(w); /* nothing more reaches the sink */
    assert_int_equal(s.buf.len, len);
    free(big);
    mxpc_buf_free(&s.buf);

    /* a small archive reaches the sink only when it is committed */
    struct memsink late = {MXPC_BUF_INIT, 1};
    w = mxpc_archive_writer_open_sink(mem_sink, &late, "upload", 9, NULL, err, sizeof err);
    assert_int_equal(mxpc_archive_writer_begin_entry(w, "small", 2, 0), MXPC_ARCHIVE_OK);
    assert_int_equal(mxpc_archive_writer_write(w, "hi", 2), MXPC_ARCHIVE_OK);
    assert_int_equal(mxpc_archive_writer_end_entry(w), MXPC_ARCHIVE_OK);
    assert_int_equal(late.buf.len, 0);
    assert_int_equal(mxpc_archive_writer_commit(w), MXPC_ARCHIVE_EIO);
    assert_non_null(strstr(mxpc_archive_writer_error(w), "upload failed"));
    assert_false(mxpc_archive_writer_committed(w));
    mxpc_archive_writer_free(w);
}

static void damaged_input_is_named(void **state)
{
    (void)state;
    struct mxpc_buf a = sample_archive();
    char msg[1024];
    /* intact, also when read a byte at a time */
    assert_int_equal(read_all(a.data, a.len, 1, msg, sizeof msg), MXPC_ARCHIVE_END);
    /* cut */
    assert_int_equal(read_all(a.data, a.len - 20, 4096, msg, sizeof msg), MXPC_ARCHIVE_EINVALID);
    assert_non_null(strstr(msg, "truncated gzip data"));
    /* trailing garbage, and tolerated zero padding */
    struct mxpc_buf b = MXPC_BUF_INIT;
    mxpc_buf_append(&b, a.data, a.len);
    mxpc_buf_append(&b, "\0\0\0\0", 4);
    assert_int_equal(read_all(b.data, b.len, 4096, msg, sizeof msg), MXPC_ARCHIVE_END);
    mxpc_buf_puts(&b, "junk");
    assert_int_equal(read_all(b.data, b.len, 4096, msg, sizeof msg), MXPC_ARCHIVE_EINVALID);
    assert_non_null(strstr(msg, "mem: after entry \"b\": data after the end of the gzip stream"));
    mxpc_buf_free(&b);
    /* wrong CRC in the trailer */
    a.data[a.len - 6] ^= 1;
    assert_int_equal(read_all(a.data, a.len, 4096, msg, sizeof msg), MXPC_ARCHIVE_EINVALID);
    assert_non_null(strstr(msg, "incorrect data check"));
    /* empty input */
    assert_int_equal(read_all("", 0, 1, msg, sizeof msg), MXPC_ARCHIVE_EINVALID);
    assert_non_null(strstr(msg, "empty file"));
    mxpc_buf_free(&a);
}

static void reading_a_directory_fails(void **state)
{
    struct dir *d = *state;
    enum mxpc_archive_status st = MXPC_ARCHIVE_OK;
    char err[512];
    assert_null(mxpc_archive_reader_open_path(d->path, NULL, &st, err, sizeof err));
    assert_int_equal(st, MXPC_ARCHIVE_EIO);
    assert_non_null(strstr(err, "Is a directory"));
}

static void interruption_stops_writing_and_reading(void **state)
{
    struct dir *d = *state;
    char err[512];
    struct mxpc_archive_writer *w = mxpc_archive_writer_open_path(path_in(d, "i.tar.gz"), 0, 6, NULL, err, sizeof err);
    assert_int_equal(mxpc_archive_writer_begin_entry(w, "x", 10, 0), MXPC_ARCHIVE_OK);
    mxpc_interrupt_raise(SIGINT);
    assert_int_equal(mxpc_archive_writer_write(w, "0123456789", 10), MXPC_ARCHIVE_EINTERRUPTED);
    assert_int_equal(count_files(d->path), 0);
    mxpc_archive_writer_free(w);

    mxpc_interrupt_reset();
    struct mxpc_buf a = sample_archive();
    mxpc_interrupt_raise(SIGINT);
    char msg[1024];
    assert_int_equal(read_all(a.data, a.len, 4096, msg, sizeof msg), MXPC_ARCHIVE_EINTERRUPTED);
    mxpc_buf_free(&a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(round_trip_is_byte_identical, setup, teardown),
        cmocka_unit_test_setup_teardown(existing_target_is_kept_unless_forced, setup, teardown),
        cmocka_unit_test_setup_teardown(uncommitted_writer_leaves_nothing, setup, teardown),
        cmocka_unit_test_setup_teardown(declared_size_is_enforced, setup, teardown),
        cmocka_unit_test_setup_teardown(misuse_is_refused_without_harm, setup, teardown),
        cmocka_unit_test(names_and_quoting),
        cmocka_unit_test(sink_and_source_round_trip),
        cmocka_unit_test(failing_sink_fails_the_writer),
        cmocka_unit_test(damaged_input_is_named),
        cmocka_unit_test_setup_teardown(reading_a_directory_fails, setup, teardown),
        cmocka_unit_test_setup_teardown(interruption_stops_writing_and_reading, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
