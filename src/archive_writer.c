/* Streaming tar.gz writer: see include/mxpc/archive.h.
 *
 * libarchive writes the tar stream into out_write(), which compresses it with
 * the parallel gzip of pgz.c; pgz hands the compressed bytes back to emit()
 * on this thread, which writes them to the file or the sink (so a Lua sink is
 * only ever called from the thread that runs Lua). gzip is done here rather
 * than by libarchive's filter because that filter frees its zlib state only
 * when the archive is closed cleanly (an aborted archive would leak it), and
 * it uses one core. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <archive.h>
#include <archive_entry.h>

#include "mxpc/archive.h"
#include "mxpc/atomic_file.h"
#include "mxpc/buf.h"
#include "mxpc/pgz.h"
#include "mxpc/interrupt.h"

/* Big writes are cut into pieces this size so that an interruption is
 * noticed soon. */
#define WRITE_PIECE (1u << 20)

enum writer_state { W_OPEN, W_ENTRY, W_COMMITTED, W_FAILED };

struct mxpc_archive_writer {
    struct archive *a;
    struct archive_entry *entry;
    struct mxpc_atomic_file *file; /* path output, or NULL for a sink */
    mxpc_archive_sink_fn sink;
    void *sink_ud;
    char *name;
    enum writer_state state;
    int discard; /* set while aborting: the output callback drops everything */
    struct mxpc_pgz *pgz; /* started with the first bytes */
    int level, threads;
    char *entry_name;
    int64_t declared, written;
    uint64_t entries, bytes_in, bytes_out;
    enum mxpc_archive_status out_status; /* why the output callback failed */
    char out_err[512];
    char err[1024];
};

__attribute__((format(printf, 2, 0))) static void set_errv(struct mxpc_archive_writer *w, const char *fmt, va_list ap)
{
    struct mxpc_buf b = MXPC_BUF_INIT;
    mxpc_buf_printf(&b, "%s: ", w->name);
    if (w->entry_name) {
        mxpc_buf_puts(&b, "entry ");
        mxpc_archive_quote(&b, w->entry_name);
        mxpc_buf_puts(&b, ": ");
    }
    char msg[768];
    vsnprintf(msg, sizeof msg, fmt, ap);
    mxpc_buf_puts(&b, msg);
    snprintf(w->err, sizeof w->err, "%s", b.data);
    mxpc_buf_free(&b);
}

/* Records the message, aborts the output and returns `status`. */
static int fail(struct mxpc_archive_writer *w, enum mxpc_archive_status status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int fail(struct mxpc_archive_writer *w, enum mxpc_archive_status status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    set_errv(w, fmt, ap);
    va_end(ap);
    mxpc_archive_writer_abort(w);
    return status;
}

/* A libarchive call failed: the output callback's reason wins over
 * libarchive's generic one. */
static int fail_archive(struct mxpc_archive_writer *w)
{
    if (w->out_status != MXPC_ARCHIVE_OK)
        return fail(w, w->out_status, "%s", w->out_err);
    const char *msg = archive_error_string(w->a);
    return fail(w, MXPC_ARCHIVE_EIO, "%s", msg ? msg : "cannot write the archive");
}

/* Hands compressed bytes to the file or the sink. */
static int emit(struct mxpc_archive_writer *w, const void *data, size_t len)
{
    int rc = w->file ? mxpc_atomic_write(w->file, data, len, w->out_err, sizeof w->out_err)
                     : w->sink(w->sink_ud, data, len, w->out_err, sizeof w->out_err);
    if (rc != 0) {
        w->out_status = MXPC_ARCHIVE_EIO;
        return -1;
    }
    w->bytes_out += len;
    return 0;
}

static int pgz_out(void *ud, const void *data, size_t len) { return emit(ud, data, len); }

/* A failure of pgz itself (not of emit, which set out_err already). */
static int pgz_failed(struct mxpc_archive_writer *w)
{
    if (w->out_status == MXPC_ARCHIVE_OK) {
        w->out_status = MXPC_ARCHIVE_EIO;
        snprintf(w->out_err, sizeof w->out_err, "%s", w->pgz ? mxpc_pgz_error(w->pgz) : "compression failed");
    }
    return -1;
}

/* Compresses `len` bytes, or ends the gzip stream (finish). */
static int deflate_out(struct mxpc_archive_writer *w, const void *data, size_t len, int finish)
{
    if (!w->pgz) {
        struct mxpc_pgz_options o = {.level = w->level, .threads = w->threads};
        w->pgz = mxpc_pgz_new(&o, pgz_out, w, w->out_err, sizeof w->out_err);
        if (!w->pgz) {
            w->out_status = MXPC_ARCHIVE_EIO;
            return -1;
        }
    }
    int rc = finish ? mxpc_pgz_finish(w->pgz) : mxpc_pgz_write(w->pgz, data, len);
    return rc == 0 ? 0 : pgz_failed(w);
}

static la_ssize_t out_write(struct archive *a, void *ud, const void *data, size_t len)
{
    (void)a;
    struct mxpc_archive_writer *w = ud;
    if (w->discard)
        return -1;
    if (mxpc_interrupted()) {
        w->out_status = MXPC_ARCHIVE_EINTERRUPTED;
        snprintf(w->out_err, sizeof w->out_err, "interrupted");
        return -1;
    }
    if (deflate_out(w, data, len, 0) != 0)
        return -1;
    return (la_ssize_t)len;
}

static struct mxpc_archive_writer *open_common(struct mxpc_archive_writer *w, int level,
                                               enum mxpc_archive_status *status, char *err, size_t errlen)
{
    w->level = level;
    w->a = archive_write_new();
    w->entry = archive_entry_new();
    if (!w->a || !w->entry || archive_write_set_format_pax_restricted(w->a) != ARCHIVE_OK ||
        /* the tar stream is padded to whole 10240-byte records, as GNU tar does */
        archive_write_set_bytes_per_block(w->a, 64 * 1024) != ARCHIVE_OK ||
        archive_write_set_bytes_in_last_block(w->a, 10240) != ARCHIVE_OK ||
        archive_write_open2(w->a, w, NULL, out_write, NULL, NULL) != ARCHIVE_OK) {
        if (w->out_status != MXPC_ARCHIVE_OK)
            snprintf(err, errlen, "%s: %s", w->name, w->out_err);
        else
            snprintf(err, errlen, "%s: cannot start the archive: %s", w->name,
                     w->a && archive_error_string(w->a) ? archive_error_string(w->a) : "out of memory");
        *status = w->out_status != MXPC_ARCHIVE_OK ? w->out_status : MXPC_ARCHIVE_EIO;
        mxpc_archive_writer_free(w);
        return NULL;
    }
    w->state = W_OPEN;
    return w;
}

static struct mxpc_archive_writer *new_writer(const char *name, int level, enum mxpc_archive_status *status,
                                              char *err, size_t errlen)
{
    enum mxpc_archive_status dummy;
    if (!status)
        status = &dummy;
    if (level < 0 || level > 9) {
        snprintf(err, errlen, "%s: compression level %d is not between 0 and 9", name, level);
        *status = MXPC_ARCHIVE_ESTATE;
        return NULL;
    }
    struct mxpc_archive_writer *w = calloc(1, sizeof *w);
    if (w)
        w->name = strdup(name);
    if (!w || !w->name) {
        free(w);
        snprintf(err, errlen, "%s: out of memory", name);
        *status = MXPC_ARCHIVE_EIO;
        return NULL;
    }
    w->state = W_FAILED; /* until open_common succeeds */
    return w;
}

struct mxpc_archive_writer *mxpc_archive_writer_open_path(const char *path, int force, int level,
                                                          enum mxpc_archive_status *status, char *err,
                                                          size_t errlen)
{
    struct mxpc_archive_writer *w = new_writer(path, level, status, err, errlen);
    if (!w)
        return NULL;
    w->file = mxpc_atomic_open(path, force, 0600, err, errlen);
    if (!w->file) {
        if (status)
            *status = errno == EEXIST ? MXPC_ARCHIVE_EEXIST : MXPC_ARCHIVE_EIO;
        mxpc_archive_writer_free(w);
        return NULL;
    }
    enum mxpc_archive_status dummy;
    return open_common(w, level, status ? status : &dummy, err, errlen);
}

struct mxpc_archive_writer *mxpc_archive_writer_open_sink(mxpc_archive_sink_fn sink, void *ud, const char *name,
                                                          int level, enum mxpc_archive_status *status, char *err,
                                                          size_t errlen)
{
    struct mxpc_archive_writer *w = new_writer(name ? name : "archive stream", level, status, err, errlen);
    if (!w)
        return NULL;
    w->sink = sink;
    w->sink_ud = ud;
    enum mxpc_archive_status dummy;
    return open_common(w, level, status ? status : &dummy, err, errlen);
}

int mxpc_archive_writer_begin_entry(struct mxpc_archive_writer *w, const char *name, int64_t size, time_t mtime)
{
    if (w->state != W_OPEN) {
        snprintf(w->err, sizeof w->err, "%s: cannot begin an entry: %s", w->name,
                 w->state == W_ENTRY ? "the previous entry is not finished" : "the archive was committed or aborted");
        return MXPC_ARCHIVE_ESTATE;
    }
    const char *problem = mxpc_archive_name_problem(name);
    if (!problem && name[strlen(name) - 1] == '/')
        problem = "a file name cannot end with '/'";
    if (problem || size < 0) {
        struct mxpc_buf b = MXPC_BUF_INIT;
        mxpc_archive_quote(&b, name);
        snprintf(w->err, sizeof w->err, "%s: entry %s: %s", w->name, b.data,
                 problem ? problem : "negative size");
        mxpc_buf_free(&b);
        return MXPC_ARCHIVE_ESTATE;
    }
    free(w->entry_name);
    w->entry_name = strdup(name);
    if (!w->entry_name)
        return fail(w, MXPC_ARCHIVE_EIO, "out of memory");
    archive_entry_clear(w->entry);
    archive_entry_set_pathname(w->entry, name);
    archive_entry_set_filetype(w->entry, AE_IFREG);
    archive_entry_set_perm(w->entry, 0644);
    archive_entry_set_size(w->entry, size);
    archive_entry_set_mtime(w->entry, mtime, 0);
    if (archive_write_header(w->a, w->entry) != ARCHIVE_OK)
        return fail_archive(w);
    w->declared = size;
    w->written = 0;
    w->entries++;
    w->state = W_ENTRY;
    return MXPC_ARCHIVE_OK;
}

int mxpc_archive_writer_write(struct mxpc_archive_writer *w, const void *data, size_t len)
{
    if (w->state != W_ENTRY) {
        snprintf(w->err, sizeof w->err, "%s: cannot write: no entry is open", w->name);
        return MXPC_ARCHIVE_ESTATE;
    }
    if ((uint64_t)len > (uint64_t)(w->declared - w->written))
        return fail(w, MXPC_ARCHIVE_ESIZE, "more data than the %lld bytes declared", (long long)w->declared);
    const char *p = data;
    while (len > 0) {
        mxpc_tick();
        if (mxpc_interrupted())
            return fail(w, MXPC_ARCHIVE_EINTERRUPTED, "interrupted");
        size_t piece = len < WRITE_PIECE ? len : WRITE_PIECE;
        la_ssize_t n = archive_write_data(w->a, p, piece);
        if (n <= 0)
            return fail_archive(w);
        p += n;
        len -= (size_t)n;
        w->written += n;
        w->bytes_in += (uint64_t)n;
    }
    return MXPC_ARCHIVE_OK;
}

int mxpc_archive_writer_end_entry(struct mxpc_archive_writer *w)
{
    if (w->state != W_ENTRY) {
        snprintf(w->err, sizeof w->err, "%s: cannot end an entry: none is open", w->name);
        return MXPC_ARCHIVE_ESTATE;
    }
    /* libarchive would pad a short entry with zeros: a silently corrupt file */
    if (w->written != w->declared)
        return fail(w, MXPC_ARCHIVE_ESIZE, "%lld bytes written, %lld declared", (long long)w->written,
                    (long long)w->declared);
    if (archive_write_finish_entry(w->a) != ARCHIVE_OK)
        return fail_archive(w);
    w->state = W_OPEN;
    return MXPC_ARCHIVE_OK;
}

int mxpc_archive_writer_commit(struct mxpc_archive_writer *w)
{
    if (w->state != W_OPEN) {
        snprintf(w->err, sizeof w->err, "%s: cannot commit: %s", w->name,
                 w->state == W_ENTRY ? "an entry is not finished" : "the archive was committed or aborted");
        return MXPC_ARCHIVE_ESTATE;
    }
    free(w->entry_name);
    w->entry_name = NULL;
    if (archive_write_close(w->a) != ARCHIVE_OK)
        return fail_archive(w);
    if (deflate_out(w, NULL, 0, 1) != 0)
        return fail(w, w->out_status, "%s", w->out_err);
    if (w->file && mxpc_atomic_commit(w->file, w->out_err, sizeof w->out_err) != 0)
        return fail(w, errno == EEXIST ? MXPC_ARCHIVE_EEXIST : MXPC_ARCHIVE_EIO, "%s", w->out_err);
    w->state = W_COMMITTED;
    return MXPC_ARCHIVE_OK;
}

void mxpc_archive_writer_abort(struct mxpc_archive_writer *w)
{
    if (!w || w->state == W_COMMITTED || w->state == W_FAILED)
        return;
    w->state = W_FAILED;
    /* Nothing more reaches the output. Failing first keeps close from
     * padding the open entry to its declared size (possibly terabytes of
     * zeros); closing then frees libarchive's output buffer, which
     * archive_write_free skips for a failed archive. */
    w->discard = 1;
    archive_write_fail(w->a);
    archive_write_close(w->a);
    mxpc_atomic_abort(w->file);
    mxpc_pgz_free(w->pgz); /* its threads and blocks are of no more use */
    w->pgz = NULL;
}

void mxpc_archive_writer_free(struct mxpc_archive_writer *w)
{
    if (!w)
        return;
    mxpc_archive_writer_abort(w);
    w->discard = 1;
    if (w->a)
        archive_write_free(w->a);
    if (w->entry)
        archive_entry_free(w->entry);
    mxpc_pgz_free(w->pgz);
    mxpc_atomic_free(w->file);
    free(w->entry_name);
    free(w->name);
    free(w);
}

void mxpc_archive_writer_set_threads(struct mxpc_archive_writer *w, int threads) { w->threads = threads; }

void mxpc_archive_writer_compression_stats(const struct mxpc_archive_writer *w, uint64_t *blocks, uint64_t *stored,
                                           int *threads)
{
    if (w->pgz) {
        mxpc_pgz_stats(w->pgz, blocks, stored, threads);
        return;
    }
    *blocks = *stored = 0;
    *threads = 0;
}

const char *mxpc_archive_writer_error(const struct mxpc_archive_writer *w) { return w->err; }
int mxpc_archive_writer_in_entry(const struct mxpc_archive_writer *w) { return w->state == W_ENTRY; }
int mxpc_archive_writer_committed(const struct mxpc_archive_writer *w) { return w->state == W_COMMITTED; }
const char *mxpc_archive_writer_name(const struct mxpc_archive_writer *w) { return w->name; }

void mxpc_archive_writer_stats(const struct mxpc_archive_writer *w, uint64_t *entries, uint64_t *bytes_in,
                               uint64_t *bytes_out)
{
    if (entries)
        *entries = w->entries;
    if (bytes_in)
        *bytes_in = w->bytes_in;
    if (bytes_out)
        *bytes_out = w->bytes_out;
}
