/* The archive reader (src/archive_reader.c) on arbitrary bytes: tar, gzip
 * (pgz's output included) or neither. Reads every entry to its end, as
 * `verify` does; the reader must refuse what is malformed, never crash or
 * leak. The uncompressed data read per input is capped (a small gzip member
 * may inflate to gigabytes; the reader streams, so that is not a defect). */
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/types.h>

#include "mxpc/archive.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct source {
    const uint8_t *data;
    size_t size, pos;
};

/* hands the input out in pieces of varying size, as a pipe would */
static ssize_t source(void *ud, void *buf, size_t cap, char *err, size_t errlen)
{
    (void)err;
    (void)errlen;
    struct source *s = ud;
    size_t n = s->size - s->pos;
    size_t piece = 1 + (s->pos * 7919u) % 65536u;
    if (n > cap)
        n = cap;
    if (n > piece)
        n = piece;
    memcpy(buf, s->data + s->pos, n);
    s->pos += n;
    return (ssize_t)n;
}

#define READ_CAP (64u << 20)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct source s = {data, size, 0};
    enum mxpc_archive_status status;
    char err[512];
    struct mxpc_archive_reader *r = mxpc_archive_reader_open_source(source, &s, "fuzz", &status, err, sizeof err);
    if (!r)
        return 0;
    static char buf[65536];
    uint64_t total = 0;
    struct mxpc_archive_entry e;
    while (total < READ_CAP && mxpc_archive_reader_next(r, &e) == MXPC_ARCHIVE_OK) {
        (void)strlen(e.name);
        int64_t done;
        (void)mxpc_archive_reader_current(r, &done);
        ssize_t n;
        while (total < READ_CAP && (n = mxpc_archive_reader_read(r, buf, sizeof buf)) > 0)
            total += (uint64_t)n;
        if (n < 0)
            break;
    }
    (void)strlen(mxpc_archive_reader_error(r));
    mxpc_archive_reader_free(r);
    return 0;
}
