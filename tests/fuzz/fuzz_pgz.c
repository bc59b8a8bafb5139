/* pgz (src/pgz.c), differential: compresses the input at a level and thread
 * count taken from its first byte, with a small block size so that several
 * blocks (and stored ones) occur, then inflates the output with zlib and
 * checks that it is one gzip member holding exactly the input. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <zlib.h>

#include "mxpc/buf.h"
#include "mxpc/pgz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int out(void *ud, const void *p, size_t len)
{
    mxpc_buf_append(ud, p, len);
    return 0;
}

static void fail(const char *what, int level, int threads, size_t size)
{
    fprintf(stderr, "pgz: %s (level %d, %d threads, %zu bytes)\n", what, level, threads, size);
    abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    int level = data[0] % 10;
    int threads = 1 + (data[0] / 10) % 4;
    data++;
    size--;
    struct mxpc_pgz_options o = {.level = level, .threads = threads, .block_size = 1024};
    struct mxpc_buf gz = MXPC_BUF_INIT;
    char err[256];
    struct mxpc_pgz *z = mxpc_pgz_new(&o, out, &gz, err, sizeof err);
    if (!z)
        fail(err, level, threads, size);
    /* written in uneven pieces, as the archive writer does */
    size_t pos = 0;
    while (pos < size) {
        size_t n = 1 + (pos * 131u) % 3000u;
        if (n > size - pos)
            n = size - pos;
        if (mxpc_pgz_write(z, data + pos, n) != 0)
            fail(mxpc_pgz_error(z), level, threads, size);
        pos += n;
    }
    if (mxpc_pgz_finish(z) != 0)
        fail(mxpc_pgz_error(z), level, threads, size);
    mxpc_pgz_free(z);

    z_stream s;
    memset(&s, 0, sizeof s);
    if (inflateInit2(&s, 16 + MAX_WBITS) != Z_OK)
        fail("inflateInit2", level, threads, size);
    unsigned char *back = malloc(size + 1);
    s.next_in = (unsigned char *)gz.data;
    s.avail_in = (uInt)gz.len;
    s.next_out = back;
    s.avail_out = (uInt)size + 1;
    int rc = inflate(&s, Z_FINISH);
    if (rc != Z_STREAM_END)
        fail("the output does not inflate to one gzip member", level, threads, size);
    if (s.avail_in != 0)
        fail("bytes after the gzip member", level, threads, size);
    if (s.total_out != size || memcmp(back, data, size) != 0)
        fail("inflated output differs from the input", level, threads, size);
    inflateEnd(&s);
    free(back);
    mxpc_buf_free(&gz);
    return 0;
}
