/* Streaming reader for untrusted tar(.gz) archives: see include/mxpc/archive.h.
 *
 * Layers: the source (a file descriptor or a callback) -> gzip, decompressed
 * here with zlib because libarchive's gzip filter checks neither the CRC nor
 * the length of a member, and a corrupt archive must be found -> libarchive's
 * tar parser, reading the uncompressed bytes through in_read(). */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <archive.h>
#include <archive_entry.h>
#include <zlib.h>

#include "mxpc/archive.h"
#include "mxpc/buf.h"
#include "mxpc/log.h"
#include "mxpc/interrupt.h"

#define IN_SIZE (64 * 1024)
#define OUT_SIZE (64 * 1024)
/* the most input read after the end of the tar archive (see drain) */
#define TRAILER_MAX (1024 * 1024)
#define QUOTE_MAX 200

/* --- names ------------------------------------------------------------------ */

const char *mxpc_archive_name_problem(const char *name)
{
    if (!name || !*name)
        return "empty name";
    if (name[0] == '/')
        return "absolute path";
    for (const char *p = name; *p;) {
        size_t len = strcspn(p, "/");
        if (len == 2 && p[0] == '.' && p[1] == '.')
            return "path escapes the archive";
        p += len;
        if (*p == '/')
            p++;
    }
    return NULL;
}

void mxpc_archive_quote(struct mxpc_buf *out, const char *s)
{
    size_t n = strlen(s);
    mxpc_escape_quoted(out, s, n < QUOTE_MAX ? n : QUOTE_MAX);
    if (n > QUOTE_MAX)
        mxpc_buf_puts(out, "...");
}

/* --- the reader ------------------------------------------------------------- */

enum compression { C_UNKNOWN, C_GZIP, C_NONE };
enum reader_state { R_BETWEEN, R_ENTRY, R_END, R_FAILED };

struct mxpc_archive_reader {
    struct archive *a;
    mxpc_archive_source_fn source;
    void *source_ud;
    int fd; /* owned when opened from a path */
    char *name;
    enum compression compression;
    z_stream z;
    int z_ready, member_done, src_eof;
    unsigned char in[IN_SIZE];
    unsigned char out[OUT_SIZE];
    uint64_t bytes_in, bytes_out, entries;
    uint64_t zero_padding; /* zero bytes seen between or after gzip members */
    enum reader_state state;
    enum mxpc_archive_status status; /* of the failure, once failed */
    char *entry_name, *prev_name;
    int64_t entry_size, entry_done;
    int64_t data_end; /* uncompressed offset where the current entry's padded data ends */
    enum mxpc_archive_status src_status; /* why in_read failed */
    char src_err[512];
    char err[1024];
};

/* Records a failure of the input layers (read by fail_archive). */
static la_ssize_t src_fail(struct mxpc_archive_reader *r, enum mxpc_archive_status status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static la_ssize_t src_fail(struct mxpc_archive_reader *r, enum mxpc_archive_status status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->src_err, sizeof r->src_err, fmt, ap);
    va_end(ap);
    r->src_status = status;
    return -1;
}

static int fail(struct mxpc_archive_reader *r, enum mxpc_archive_status status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int fail(struct mxpc_archive_reader *r, enum mxpc_archive_status status, const char *fmt, ...)
{
    struct mxpc_buf b = MXPC_BUF_INIT;
    mxpc_buf_printf(&b, "%s: ", r->name);
    if (r->entry_name || r->prev_name) {
        mxpc_buf_puts(&b, r->entry_name ? "entry " : "after entry ");
        mxpc_archive_quote(&b, r->entry_name ? r->entry_name : r->prev_name);
        mxpc_buf_puts(&b, ": ");
    }
    char msg[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    mxpc_buf_puts(&b, msg);
    snprintf(r->err, sizeof r->err, "%s", b.data);
    mxpc_buf_free(&b);
    r->state = R_FAILED;
    r->status = status;
    return status;
}

/* A libarchive call failed: a reason from the input layers wins. */
static int fail_archive(struct mxpc_archive_reader *r)
{
    if (r->src_status != MXPC_ARCHIVE_OK)
        return fail(r, r->src_status, "%s", r->src_err);
    const char *msg = archive_error_string(r->a);
    if (r->entries == 0 && archive_format(r->a) == 0)
        return fail(r, MXPC_ARCHIVE_EINVALID, "not a tar archive%s",
                    r->compression == C_GZIP ? " (gzip-compressed data of another kind)" : "");
    char text[512];
    snprintf(text, sizeof text, "%s", msg ? msg : "unreadable tar data");
    text[0] = (char)(text[0] >= 'A' && text[0] <= 'Z' ? text[0] - 'A' + 'a' : text[0]);
    return fail(r, MXPC_ARCHIVE_EINVALID, "%s", text);
}

/* Reads more input behind what is still unread; sets src_eof at the end. */
static int fill(struct mxpc_archive_reader *r)
{
    if (r->src_eof)
        return 0;
    if (r->z.avail_in > 0 && r->z.next_in != r->in)
        memmove(r->in, r->z.next_in, r->z.avail_in);
    r->z.next_in = r->in;
    if (r->z.avail_in == IN_SIZE)
        return 0;
    ssize_t n = r->source(r->source_ud, r->in + r->z.avail_in, IN_SIZE - r->z.avail_in, r->src_err,
                          sizeof r->src_err);
    if (n < 0) {
        r->src_status = MXPC_ARCHIVE_EIO;
        return -1;
    }
    if (n == 0)
        r->src_eof = 1;
    r->z.avail_in += (uInt)n;
    r->bytes_in += (uint64_t)n;
    return 0;
}

/* Between gzip members: another member may follow (concatenated gzip is
 * valid), and zero padding is tolerated; anything else is not ours to
 * ignore. Returns 1 if a member follows, 0 at the end, -1 on error. */
static int next_member(struct mxpc_archive_reader *r)
{
    for (;;) {
        if (r->z.avail_in < 2 && !r->src_eof) {
            if (fill(r) != 0)
                return -1;
            continue;
        }
        if (r->z.avail_in == 0)
            return 0;
        if (r->z.avail_in >= 2 && r->z.next_in[0] == 0x1f && r->z.next_in[1] == 0x8b) {
            inflateReset(&r->z);
            r->member_done = 0;
            return 1;
        }
        for (uInt i = 0; i < r->z.avail_in; i++)
            if (r->z.next_in[i] != 0)
                return (int)src_fail(r, MXPC_ARCHIVE_EINVALID, "data after the end of the gzip stream");
        r->zero_padding += r->z.avail_in;
        if (r->zero_padding > TRAILER_MAX)
            return (int)src_fail(r, MXPC_ARCHIVE_EINVALID,
                                 "more than %d bytes of zeros after the end of the gzip stream", TRAILER_MAX);
        r->z.avail_in = 0;
    }
}

/* Produces the next piece of uncompressed input: returns its length (0 at
 * the end) with *buf pointing at it, or -1. */
static la_ssize_t produce(struct mxpc_archive_reader *r, const void **buf)
{
    if (r->compression == C_NONE) {
        if (r->z.avail_in == 0 && fill(r) != 0)
            return -1;
        la_ssize_t n = (la_ssize_t)r->z.avail_in;
        *buf = r->z.next_in;
        r->z.avail_in = 0;
        r->bytes_out += (uint64_t)n;
        return n;
    }
    for (;;) {
        if (r->member_done) {
            int more = next_member(r);
            if (more <= 0)
                return more;
        }
        if (r->z.avail_in == 0 && fill(r) != 0)
            return -1;
        r->z.next_out = r->out;
        r->z.avail_out = OUT_SIZE;
        int rc = inflate(&r->z, Z_NO_FLUSH);
        size_t produced = OUT_SIZE - r->z.avail_out;
        if (rc == Z_STREAM_END) {
            r->member_done = 1;
        } else if (rc == Z_BUF_ERROR || (rc == Z_OK && produced == 0)) {
            if (r->z.avail_in == 0 && r->src_eof)
                return src_fail(r, MXPC_ARCHIVE_EINVALID, "truncated gzip data (the input ends inside the "
                                                          "compressed stream)");
        } else if (rc == Z_MEM_ERROR) {
            return src_fail(r, MXPC_ARCHIVE_EIO, "out of memory while decompressing");
        } else if (rc != Z_OK) {
            return src_fail(r, MXPC_ARCHIVE_EINVALID, "corrupt gzip data (%s)", r->z.msg ? r->z.msg : "bad data");
        }
        if (produced > 0) {
            r->bytes_out += produced;
            *buf = r->out;
            return (la_ssize_t)produced;
        }
    }
}

static la_ssize_t in_read(struct archive *a, void *ud, const void **buf)
{
    (void)a;
    struct mxpc_archive_reader *r = ud;
    mxpc_tick();
    if (mxpc_interrupted())
        return src_fail(r, MXPC_ARCHIVE_EINTERRUPTED, "interrupted");
    if (r->compression == C_UNKNOWN) {
        while (r->z.avail_in < 2 && !r->src_eof)
            if (fill(r) != 0)
                return -1;
        if (r->z.avail_in == 0)
            return src_fail(r, MXPC_ARCHIVE_EINVALID, "empty file, not an archive");
        r->compression = r->z.next_in[0] == 0x1f && r->z.next_in[1] == 0x8b ? C_GZIP : C_NONE;
        /* 16 + 15: gzip wrapper only, the largest window */
        if (r->compression == C_GZIP) {
            if (inflateInit2(&r->z, 16 + MAX_WBITS) != Z_OK)
                return src_fail(r, MXPC_ARCHIVE_EIO, "cannot start decompressing: out of memory");
            r->z_ready = 1;
        }
    }
    return produce(r, buf);
}

static ssize_t fd_source(void *ud, void *buf, size_t cap, char *err, size_t errlen)
{
    struct mxpc_archive_reader *r = ud;
    for (;;) {
        ssize_t n = read(r->fd, buf, cap);
        if (n >= 0)
            return n;
        if (errno == EINTR && !mxpc_interrupted())
            continue;
        snprintf(err, errlen, "cannot read: %s", strerror(errno));
        return -1;
    }
}

static struct mxpc_archive_reader *open_common(struct mxpc_archive_reader *r, enum mxpc_archive_status *status,
                                               char *err, size_t errlen)
{
    r->a = archive_read_new();
    if (!r->a || archive_read_support_format_tar(r->a) != ARCHIVE_OK ||
        archive_read_open2(r->a, r, NULL, in_read, NULL, NULL) != ARCHIVE_OK) {
        if (r->a)
            fail_archive(r);
        else
            fail(r, MXPC_ARCHIVE_EIO, "out of memory");
        snprintf(err, errlen, "%s", r->err);
        if (status)
            *status = r->status;
        mxpc_archive_reader_free(r);
        return NULL;
    }
    r->state = R_BETWEEN;
    return r;
}

static struct mxpc_archive_reader *new_reader(const char *name, enum mxpc_archive_status *status, char *err,
                                              size_t errlen)
{
    struct mxpc_archive_reader *r = calloc(1, sizeof *r);
    if (r)
        r->name = strdup(name);
    if (!r || !r->name) {
        free(r);
        snprintf(err, errlen, "%s: out of memory", name);
        if (status)
            *status = MXPC_ARCHIVE_EIO;
        return NULL;
    }
    r->fd = -1;
    return r;
}

struct mxpc_archive_reader *mxpc_archive_reader_open_path(const char *path, const char *name,
                                                          enum mxpc_archive_status *status, char *err,
                                                          size_t errlen)
{
    struct mxpc_archive_reader *r = new_reader(name ? name : path, status, err, errlen);
    if (!r)
        return NULL;
    r->fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    int e = r->fd < 0 ? errno : fstat(r->fd, &st) != 0 ? errno : S_ISDIR(st.st_mode) ? EISDIR : 0;
    if (e) {
        snprintf(err, errlen, "cannot open %s: %s", path, strerror(e));
        if (status)
            *status = MXPC_ARCHIVE_EIO;
        mxpc_archive_reader_free(r);
        errno = e;
        return NULL;
    }
    r->source = fd_source;
    r->source_ud = r;
    return open_common(r, status, err, errlen);
}

struct mxpc_archive_reader *mxpc_archive_reader_open_source(mxpc_archive_source_fn source, void *ud,
                                                            const char *name, enum mxpc_archive_status *status,
                                                            char *err, size_t errlen)
{
    struct mxpc_archive_reader *r = new_reader(name ? name : "archive stream", status, err, errlen);
    if (!r)
        return NULL;
    r->source = source;
    r->source_ud = ud;
    return open_common(r, status, err, errlen);
}

static int64_t uncompressed_position(struct mxpc_archive_reader *r) { return archive_filter_bytes(r->a, 0); }

/* Reads the input to its very end, so that the last gzip member's CRC and
 * length are checked and nothing follows the archive unnoticed; but not
 * more than TRAILER_MAX bytes of it (a tar's padding to its record size is
 * 10 KiB): input that goes on after the end (zeros from /dev/zero, gzip or
 * not) is refused instead of read for ever. */
static int drain(struct mxpc_archive_reader *r)
{
    uint64_t after = 0;
    for (;;) {
        mxpc_tick();
        if (mxpc_interrupted())
            return (int)src_fail(r, MXPC_ARCHIVE_EINTERRUPTED, "interrupted");
        const void *buf;
        la_ssize_t n = produce(r, &buf);
        if (n < 0)
            return -1;
        if (n == 0)
            return 0;
        after += (uint64_t)n;
        if (after > TRAILER_MAX)
            return (int)src_fail(r, MXPC_ARCHIVE_EINVALID,
                                 "more than %d bytes of data after the end of the tar archive", TRAILER_MAX);
    }
}

/* Rejects what no backup archive may contain; returns 0 or the failure. */
static int check_entry(struct mxpc_archive_reader *r, struct archive_entry *ae)
{
    const char *problem = mxpc_archive_name_problem(r->entry_name);
    if (problem)
        return fail(r, MXPC_ARCHIVE_EINVALID, "%s", problem);
    const char *target = archive_entry_hardlink(ae);
    if (target) {
        struct mxpc_buf b = MXPC_BUF_INIT;
        mxpc_archive_quote(&b, target);
        fail(r, MXPC_ARCHIVE_EINVALID, "hard link (to %s): links are not allowed", b.data);
        mxpc_buf_free(&b);
        return r->status;
    }
    switch (archive_entry_filetype(ae)) {
    case AE_IFREG:
        if (archive_entry_sparse_count(ae) > 0)
            return fail(r, MXPC_ARCHIVE_EINVALID, "sparse file: not allowed");
        break;
    case AE_IFDIR: break;
    case AE_IFLNK: {
        struct mxpc_buf b = MXPC_BUF_INIT;
        mxpc_archive_quote(&b, archive_entry_symlink(ae) ? archive_entry_symlink(ae) : "");
        fail(r, MXPC_ARCHIVE_EINVALID, "symbolic link (to %s): links are not allowed", b.data);
        mxpc_buf_free(&b);
        return r->status;
    }
    case AE_IFCHR:
    case AE_IFBLK: return fail(r, MXPC_ARCHIVE_EINVALID, "device file: not allowed");
    case AE_IFIFO: return fail(r, MXPC_ARCHIVE_EINVALID, "FIFO: not allowed");
    default: return fail(r, MXPC_ARCHIVE_EINVALID, "special file: not allowed");
    }
    if (!archive_entry_size_is_set(ae) || archive_entry_size(ae) < 0)
        return fail(r, MXPC_ARCHIVE_EINVALID, "entry without a valid size");
    return 0;
}

int mxpc_archive_reader_next(struct mxpc_archive_reader *r, struct mxpc_archive_entry *e)
{
    if (r->state == R_FAILED)
        return r->status;
    if (r->state == R_END)
        return MXPC_ARCHIVE_END;
    /* the rest of the current entry's data is skipped here, not by
     * libarchive's next header, so that a failure in it names the entry */
    if (r->state == R_ENTRY && r->entry_done < r->entry_size) {
        int rc = mxpc_archive_reader_skip(r);
        if (rc != MXPC_ARCHIVE_OK)
            return rc;
    }
    if (r->entry_name) {
        free(r->prev_name);
        r->prev_name = r->entry_name;
        r->entry_name = NULL;
    }
    struct archive_entry *ae;
    int rc = archive_read_next_header(r->a, &ae);
    if (rc == ARCHIVE_EOF) {
        /* libarchive accepts a tar that just stops between entries, which is
         * what a writer killed mid-way leaves behind: require the marker */
        if (uncompressed_position(r) <= r->data_end)
            return fail(r, MXPC_ARCHIVE_EINVALID,
                        "the tar data ends without an end-of-archive marker (truncated archive)");
        if (drain(r) != 0)
            return fail_archive(r);
        r->state = R_END;
        return MXPC_ARCHIVE_END;
    }
    if (rc != ARCHIVE_OK)
        return fail_archive(r);
    const char *name = archive_entry_pathname(ae);
    if (!name)
        name = archive_entry_pathname_utf8(ae);
    r->entry_name = strdup(name ? name : "");
    if (!r->entry_name)
        return fail(r, MXPC_ARCHIVE_EIO, "out of memory");
    int bad = check_entry(r, ae);
    if (bad)
        return bad;
    r->entries++;
    r->entry_size = archive_entry_size(ae);
    r->entry_done = 0;
    r->data_end = uncompressed_position(r) + (r->entry_size + 511) / 512 * 512;
    r->state = R_ENTRY;
    e->name = r->entry_name;
    e->size = r->entry_size;
    e->type = archive_entry_filetype(ae) == AE_IFDIR ? MXPC_ARCHIVE_DIRECTORY : MXPC_ARCHIVE_FILE;
    e->mtime = archive_entry_mtime(ae);
    return MXPC_ARCHIVE_OK;
}

ssize_t mxpc_archive_reader_read(struct mxpc_archive_reader *r, void *buf, size_t len)
{
    if (r->state == R_FAILED)
        return r->status;
    if (r->state != R_ENTRY) {
        snprintf(r->err, sizeof r->err, "%s: cannot read: no current entry", r->name);
        return MXPC_ARCHIVE_ESTATE;
    }
    if (mxpc_interrupted())
        return fail(r, MXPC_ARCHIVE_EINTERRUPTED, "interrupted");
    la_ssize_t n = archive_read_data(r->a, buf, len);
    if (n < 0)
        return fail_archive(r);
    r->entry_done += n;
    return n;
}

int mxpc_archive_reader_skip(struct mxpc_archive_reader *r)
{
    if (r->state == R_FAILED)
        return r->status;
    if (r->state != R_ENTRY) {
        snprintf(r->err, sizeof r->err, "%s: cannot skip: no current entry", r->name);
        return MXPC_ARCHIVE_ESTATE;
    }
    if (archive_read_data_skip(r->a) != ARCHIVE_OK)
        return fail_archive(r);
    r->entry_done = r->entry_size;
    return MXPC_ARCHIVE_OK;
}

void mxpc_archive_reader_free(struct mxpc_archive_reader *r)
{
    if (!r)
        return;
    if (r->a)
        archive_read_free(r->a);
    if (r->z_ready)
        inflateEnd(&r->z);
    if (r->fd >= 0)
        close(r->fd);
    free(r->entry_name);
    free(r->prev_name);
    free(r->name);
    free(r);
}

const char *mxpc_archive_reader_error(const struct mxpc_archive_reader *r) { return r->err; }
const char *mxpc_archive_reader_name(const struct mxpc_archive_reader *r) { return r->name; }

const char *mxpc_archive_reader_compression(const struct mxpc_archive_reader *r)
{
    return r->compression == C_GZIP ? "gzip" : r->compression == C_NONE ? "none" : NULL;
}

void mxpc_archive_reader_stats(const struct mxpc_archive_reader *r, uint64_t *entries, uint64_t *bytes_in,
                               uint64_t *bytes_out)
{
    if (entries)
        *entries = r->entries;
    if (bytes_in)
        *bytes_in = r->bytes_in;
    if (bytes_out)
        *bytes_out = r->bytes_out;
}

const char *mxpc_archive_reader_current(const struct mxpc_archive_reader *r, int64_t *done)
{
    if (r->state != R_ENTRY)
        return NULL;
    if (done)
        *done = r->entry_done;
    return r->entry_name;
}
