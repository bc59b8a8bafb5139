/* Parallel gzip (pgz.c): one gzip member that zlib inflates to the input,
 * blocks primed with the previous 32 KiB, the CRC and length of the whole
 * input in the trailer, the same bytes whatever the threads and the write
 * sizes, incompressible blocks stored, failures of the output reported. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <zlib.h>

#include "mxpc/buf.h"
#include "mxpc/pgz.h"

static int buf_out(void *ud, const void *data, size_t len)
{
    mxpc_buf_append(ud, data, len);
    return 0;
}

static uint64_t rng_state = 88172645463325252ull;

static void random_bytes(unsigned char *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        rng_state ^= rng_state << 13;
        rng_state ^= rng_state >> 7;
        rng_state ^= rng_state << 17;
        p[i] = (unsigned char)rng_state;
    }
}

/* Text-like, compressible bytes. */
static void text_bytes(unsigned char *p, size_t n)
{
    static const char *words[] = {"customer ", "order ", "Rotterdam ", "paid ", "shipped ", "12.50\n", "draft "};
    size_t i = 0, k = 0;
    while (i < n) {
        const char *w = words[(k * 7 + k / 3) % 7];
        for (; *w && i < n; w++)
            p[i++] = (unsigned char)*w;
        k++;
    }
}

/* Compresses data (written in pieces of `piece` bytes) into out. */
static void pgz_compress(struct mxpc_buf *out, const unsigned char *data, size_t len, int level, int threads,
                     size_t block, size_t piece, uint64_t *blocks, uint64_t *stored)
{
    char err[256];
    struct mxpc_pgz_options o = {.level = level, .threads = threads, .block_size = block};
    struct mxpc_pgz *z = mxpc_pgz_new(&o, buf_out, out, err, sizeof err);
    assert_non_null(z);
    for (size_t off = 0; off < len; off += piece)
        assert_int_equal(mxpc_pgz_write(z, data + off, len - off < piece ? len - off : piece), 0);
    assert_int_equal(mxpc_pgz_finish(z), 0);
    mxpc_pgz_stats(z, blocks, stored, NULL);
    mxpc_pgz_free(z);
}

/* Inflates one gzip member (zlib checks the CRC and length) and requires it
 * to end exactly at the end of the input. */
static unsigned char *gunzip(const struct mxpc_buf *gz, size_t expect)
{
    unsigned char *out = malloc(expect + 1);
    z_stream s;
    memset(&s, 0, sizeof s);
    assert_int_equal(inflateInit2(&s, 16 + MAX_WBITS), Z_OK);
    s.next_in = (Bytef *)gz->data;
    s.avail_in = (uInt)gz->len;
    s.next_out = out;
    s.avail_out = (uInt)expect + 1;
    int rc = inflate(&s, Z_FINISH);
    assert_int_equal(rc, Z_STREAM_END);
    assert_int_equal(s.avail_in, 0);  /* one member, nothing after it */
    assert_int_equal(s.total_out, expect);
    inflateEnd(&s);
    return out;
}

static void expect_gunzip(const struct mxpc_buf *gz, const unsigned char *data, size_t len)
{
    unsigned char *back = gunzip(gz, len);
    assert_memory_equal(back, data, len);
    free(back);
}

static void roundtrip(const unsigned char *data, size_t len, int level, int threads, size_t block, size_t piece)
{
    struct mxpc_buf gz = MXPC_BUF_INIT;
    pgz_compress(&gz, data, len, level, threads, block, piece, NULL, NULL);
    expect_gunzip(&gz, data, len);
    mxpc_buf_free(&gz);
}

static void test_roundtrip_sizes(void **state)
{
    (void)state;
    size_t max = 3 * MXPC_PGZ_BLOCK + 5;
    unsigned char *data = malloc(max);
    text_bytes(data, max / 2);
    random_bytes(data + max / 2, max - max / 2);
    const size_t sizes[] = {0, 1, 1023, 32767, 32768, 32769, MXPC_PGZ_BLOCK - 1, MXPC_PGZ_BLOCK, MXPC_PGZ_BLOCK + 1,
                            max};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        roundtrip(data + max - sizes[i], sizes[i], 6, 3, 0, 70000); /* mixed text and random */
        roundtrip(data, sizes[i], 1, 1, 0, sizes[i] ? sizes[i] : 1);
    }
    roundtrip(data, max, 0, 2, 0, 4096);
    roundtrip(data, max, 9, 4, 1024, 777); /* blocks smaller than the dictionary */
    free(data);
}

/* A random 8 KiB chunk repeated, in 8 KiB blocks: every block is a copy of
 * the one before, so it shrinks only if it was primed with that block. */
static void test_dictionary_spans_blocks(void **state)
{
    (void)state;
    size_t chunk = 8192, len = 64 * chunk;
    unsigned char *data = malloc(len);
    random_bytes(data, chunk);
    for (size_t off = chunk; off < len; off += chunk)
        memcpy(data + off, data, chunk);
    struct mxpc_buf gz = MXPC_BUF_INIT;
    uint64_t blocks, stored;
    pgz_compress(&gz, data, len, 6, 2, chunk, len, &blocks, &stored);
    assert_int_equal(blocks, 64 + 1); /* and the empty last one */
    assert_true(gz.len < len / 10);   /* about one chunk, not 64 */
    expect_gunzip(&gz, data, len);
    mxpc_buf_free(&gz);
    free(data);
}

static uint32_t le32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* The header is an ordinary gzip header; the trailer holds the CRC of the
 * whole input (the blocks' CRCs combined) and its length. */
static void test_header_and_trailer(void **state)
{
    (void)state;
    size_t len = 5 * MXPC_PGZ_BLOCK + 12345;
    unsigned char *data = malloc(len);
    text_bytes(data, len / 3);
    random_bytes(data + len / 3, len - len / 3);
    struct mxpc_buf gz = MXPC_BUF_INIT;
    pgz_compress(&gz, data, len, 6, 3, 0, 100000, NULL, NULL);
    const unsigned char *g = (const unsigned char *)gz.data;
    assert_true(gz.len > 18);
    assert_int_equal(g[0], 0x1f);
    assert_int_equal(g[1], 0x8b);
    assert_int_equal(g[2], 8);
    assert_int_equal(g[3], 0); /* no name, comment or extra field */
    assert_int_equal(le32(g + gz.len - 8), (uint32_t)crc32(0L, data, (uInt)len));
    assert_int_equal(le32(g + gz.len - 4), (uint32_t)len);
    mxpc_buf_free(&gz);

    /* empty input: a valid gzip of nothing */
    pgz_compress(&gz, data, 0, 6, 1, 0, 1, NULL, NULL);
    free(gunzip(&gz, 0));
    assert_int_equal(le32((const unsigned char *)gz.data + gz.len - 8), 0);
    mxpc_buf_free(&gz);
    free(data);
}

/* Block boundaries depend on the input alone: any number of threads and any
 * write sizes give the same bytes. */
static void test_same_output_whatever_the_threads(void **state)
{
    (void)state;
    size_t len = 1 << 20;
    unsigned char *data = malloc(len);
    text_bytes(data, len);
    random_bytes(data + len / 2, len / 8);
    struct mxpc_buf one = MXPC_BUF_INIT;
    pgz_compress(&one, data, len, 6, 1, 0, len, NULL, NULL);
    const int threads[] = {2, 5, 16};
    const size_t pieces[] = {1000, 65536, 3};
    for (int i = 0; i < 3; i++) {
        struct mxpc_buf other = MXPC_BUF_INIT;
        pgz_compress(&other, data, i == 2 ? 100000 : len, 6, threads[i], 0, pieces[i], NULL, NULL);
        if (i < 2) {
            assert_int_equal(other.len, one.len);
            assert_memory_equal(other.data, one.data, one.len);
        }
        mxpc_buf_free(&other);
    }
    mxpc_buf_free(&one);
    free(data);
}

/* Incompressible blocks are stored, compressible ones compressed: random
 * data grows by (almost) nothing, text shrinks. */
static void test_incompressible_blocks_are_stored(void **state)
{
    (void)state;
    size_t len = 8 * MXPC_PGZ_BLOCK;
    unsigned char *data = malloc(len);
    random_bytes(data, len);
    struct mxpc_buf gz = MXPC_BUF_INIT;
    uint64_t blocks, stored;
    pgz_compress(&gz, data, len, 9, 2, 0, len, &blocks, &stored);
    assert_int_equal(blocks, 9);
    assert_int_equal(stored, 8); /* the empty last block is not "stored" */
    assert_true(gz.len < len + len / 1000);
    mxpc_buf_free(&gz);

    text_bytes(data, len);
    pgz_compress(&gz, data, len, 9, 2, 0, len, &blocks, &stored);
    assert_int_equal(stored, 0);
    assert_true(gz.len < len / 5);
    mxpc_buf_free(&gz);

    /* half text, half random, on block boundaries */
    random_bytes(data + len / 2, len / 2);
    pgz_compress(&gz, data, len, 6, 2, 0, 5000, &blocks, &stored);
    assert_int_equal(stored, 4);
    expect_gunzip(&gz, data, len);
    mxpc_buf_free(&gz);
    free(data);
}

static int failing_out(void *ud, const void *data, size_t len)
{
    (void)data;
    (void)len;
    int *calls = ud;
    return ++*calls > 1 ? -1 : 0;
}

/* The output fails: write or finish says so, every later call too, and
 * freeing stops the threads with blocks still queued. */
static void test_output_failure(void **state)
{
    (void)state;
    size_t len = 4 << 20;
    unsigned char *data = malloc(len);
    text_bytes(data, len);
    int calls = 0;
    char err[256];
    struct mxpc_pgz_options o = {.level = 6, .threads = 2};
    struct mxpc_pgz *z = mxpc_pgz_new(&o, failing_out, &calls, err, sizeof err);
    assert_non_null(z);
    int rc = mxpc_pgz_write(z, data, len);
    if (rc == 0)
        rc = mxpc_pgz_finish(z);
    assert_int_equal(rc, -1);
    assert_string_equal(mxpc_pgz_error(z), ""); /* the output's own failure */
    assert_int_equal(mxpc_pgz_write(z, data, 10), -1);
    assert_int_equal(mxpc_pgz_finish(z), -1);
    mxpc_pgz_free(z);

    /* freed in the middle of a stream, blocks in flight */
    struct mxpc_buf gz = MXPC_BUF_INIT;
    z = mxpc_pgz_new(&o, buf_out, &gz, err, sizeof err);
    assert_non_null(z);
    assert_int_equal(mxpc_pgz_write(z, data, len), 0);
    mxpc_pgz_free(z);
    mxpc_buf_free(&gz);
    free(data);
}

static void test_bad_options(void **state)
{
    (void)state;
    char err[256];
    struct mxpc_pgz_options o = {.level = 10};
    assert_null(mxpc_pgz_new(&o, buf_out, NULL, err, sizeof err));
    assert_non_null(strstr(err, "level 10"));
    o.level = 6;
    o.threads = MXPC_PGZ_MAX_THREADS + 1;
    assert_null(mxpc_pgz_new(&o, buf_out, NULL, err, sizeof err));
    o.threads = 1;
    o.block_size = 100;
    assert_null(mxpc_pgz_new(&o, buf_out, NULL, err, sizeof err));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip_sizes),
        cmocka_unit_test(test_dictionary_spans_blocks),
        cmocka_unit_test(test_header_and_trailer),
        cmocka_unit_test(test_same_output_whatever_the_threads),
        cmocka_unit_test(test_incompressible_blocks_are_stored),
        cmocka_unit_test(test_output_failure),
        cmocka_unit_test(test_bad_options),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
