/* Streaming tar.gz archives on libarchive and zlib, for the backup archive
 * format (lua/mxpc/backup_archive.lua decides what goes in; this only moves
 * bytes). Nothing is ever held whole in memory: entries are written and read
 * as streams of known size.
 *
 * Writer: pax (restricted, so plain ustar headers whenever they suffice) tar
 * compressed with gzip, to a file (through mxpc_atomic_file: temporary name,
 * mode 0600, renamed on commit, removed on abort) or to a sink callback.
 *
 * Reader: from a file or a source callback. Only regular files
 * and directories whose names stay inside the archive are accepted: links,
 * devices, absolute paths and ".." are errors, as are truncated or corrupt
 * gzip and tar data and a tar without its end-of-archive marker.
 *
 * libarchive writes and parses the tar; gzip is done with zlib in both
 * directions (see the top of each .c file for why). The writer compresses
 * on several threads (pgz.h): one gzip member that any reader reads.
 *
 * Every function that can fail returns an mxpc_archive_status and keeps a
 * message naming the archive, the entry and the problem (..._error()). After
 * any failure other than ESTATE the object is finished: a writer has removed
 * its temporary file; only free() remains. Long loops poll mxpc_interrupted()
 * and fail with EINTERRUPTED. */
#ifndef MXPC_ARCHIVE_H
#define MXPC_ARCHIVE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#include "mxpc/buf.h"

enum mxpc_archive_status {
    MXPC_ARCHIVE_OK = 0,
    MXPC_ARCHIVE_END = 1,            /* no more entries, or no more data in this entry */
    MXPC_ARCHIVE_EIO = -1,           /* the file, sink or source failed */
    MXPC_ARCHIVE_EEXIST = -2,        /* the target exists and force was not given */
    MXPC_ARCHIVE_EINVALID = -3,      /* the archive is malformed or unsafe */
    MXPC_ARCHIVE_EINTERRUPTED = -4,  /* a signal arrived (mxpc_interrupted) */
    MXPC_ARCHIVE_ESIZE = -5,         /* an entry's data does not match its declared size */
    MXPC_ARCHIVE_ESTATE = -6,        /* called in the wrong state: a programming error */
};

enum mxpc_archive_entry_type { MXPC_ARCHIVE_FILE, MXPC_ARCHIVE_DIRECTORY };

#define MXPC_ARCHIVE_LEVEL_DEFAULT 6

/* Returns NULL if `name` may appear in an archive, else the problem
 * ("absolute path", "path escapes the archive", ...). A trailing "/" is
 * accepted (directories). */
const char *mxpc_archive_name_problem(const char *name);

/* Appends `s` in double quotes, escaped as every outside value is
 * (mxpc_escape_quoted), cut after 200 bytes ("..." follows): safe to print
 * whatever an untrusted archive contains. */
void mxpc_archive_quote(struct mxpc_buf *out, const char *s);

/* --- writer ---------------------------------------------------------------- */

struct mxpc_archive_writer;

/* A sink receives the compressed bytes; returns 0, or -1 with a message in err. */
typedef int (*mxpc_archive_sink_fn)(void *ud, const void *data, size_t len, char *err, size_t errlen);

/* On failure returns NULL, sets *status (EEXIST, EIO) and writes a message to err. */
struct mxpc_archive_writer *mxpc_archive_writer_open_path(const char *path, int force, int level,
                                                          enum mxpc_archive_status *status, char *err,
                                                          size_t errlen);
/* `name` names the output in messages. */
struct mxpc_archive_writer *mxpc_archive_writer_open_sink(mxpc_archive_sink_fn sink, void *ud, const char *name,
                                                          int level, enum mxpc_archive_status *status, char *err,
                                                          size_t errlen);

/* Compression threads (0, the default: one per online CPU, see pgz.h); only
 * before the first entry. */
void mxpc_archive_writer_set_threads(struct mxpc_archive_writer *w, int threads);

/* A regular file of exactly `size` bytes follows (mode 0644). */
int mxpc_archive_writer_begin_entry(struct mxpc_archive_writer *w, const char *name, int64_t size, time_t mtime);
/* ESIZE if this would exceed the declared size. */
int mxpc_archive_writer_write(struct mxpc_archive_writer *w, const void *data, size_t len);
/* ESIZE unless exactly the declared size was written. */
int mxpc_archive_writer_end_entry(struct mxpc_archive_writer *w);
/* Writes the end of the archive; a path output is then renamed into place. */
int mxpc_archive_writer_commit(struct mxpc_archive_writer *w);
/* Idempotent; removes the temporary file unless committed. */
void mxpc_archive_writer_abort(struct mxpc_archive_writer *w);
/* Aborts if not committed, then frees. NULL is fine. */
void mxpc_archive_writer_free(struct mxpc_archive_writer *w);

const char *mxpc_archive_writer_error(const struct mxpc_archive_writer *w);
int mxpc_archive_writer_in_entry(const struct mxpc_archive_writer *w);
int mxpc_archive_writer_committed(const struct mxpc_archive_writer *w);
/* Entries begun, uncompressed entry bytes accepted, compressed bytes written. */
void mxpc_archive_writer_stats(const struct mxpc_archive_writer *w, uint64_t *entries, uint64_t *bytes_in,
                               uint64_t *bytes_out);
/* Compressed blocks so far, how many were stored (incompressible), threads
 * used (all 0 before the first bytes reach the compressor). */
void mxpc_archive_writer_compression_stats(const struct mxpc_archive_writer *w, uint64_t *blocks, uint64_t *stored,
                                           int *threads);
/* The target path (path output) or the name given for a sink. */
const char *mxpc_archive_writer_name(const struct mxpc_archive_writer *w);

/* --- reader ---------------------------------------------------------------- */

struct mxpc_archive_reader;

/* A source fills buf with up to cap bytes; returns the count, 0 at the end,
 * or -1 with a message in err. */
typedef ssize_t (*mxpc_archive_source_fn)(void *ud, void *buf, size_t cap, char *err, size_t errlen);

struct mxpc_archive_entry {
    const char *name; /* valid until the next call of next_entry or free */
    int64_t size;
    enum mxpc_archive_entry_type type;
    time_t mtime;
};

/* `name` (may be NULL = path) names the archive in messages. Returns NULL
 * on failure with *status and a message in err. */
struct mxpc_archive_reader *mxpc_archive_reader_open_path(const char *path, const char *name,
                                                          enum mxpc_archive_status *status, char *err,
                                                          size_t errlen);
struct mxpc_archive_reader *mxpc_archive_reader_open_source(mxpc_archive_source_fn source, void *ud,
                                                            const char *name, enum mxpc_archive_status *status,
                                                            char *err, size_t errlen);

/* OK with *e filled, END after the last entry (once the rest of the input
 * has been read and checked), or an error. Skips what is left of the
 * previous entry. */
int mxpc_archive_reader_next(struct mxpc_archive_reader *r, struct mxpc_archive_entry *e);
/* Reads up to len bytes of the current entry into buf: returns the count
 * (> 0), 0 at the end of the entry, or a negative mxpc_archive_status. */
ssize_t mxpc_archive_reader_read(struct mxpc_archive_reader *r, void *buf, size_t len);
/* Reads (and so checks) the rest of the current entry, discarding it. */
int mxpc_archive_reader_skip(struct mxpc_archive_reader *r);
void mxpc_archive_reader_free(struct mxpc_archive_reader *r);

const char *mxpc_archive_reader_error(const struct mxpc_archive_reader *r);
/* The name of the archive in messages. */
const char *mxpc_archive_reader_name(const struct mxpc_archive_reader *r);
/* "gzip" or "none" once known (after the first next_entry), else NULL. */
const char *mxpc_archive_reader_compression(const struct mxpc_archive_reader *r);
/* Entries returned, bytes taken from the input, uncompressed bytes. */
void mxpc_archive_reader_stats(const struct mxpc_archive_reader *r, uint64_t *entries, uint64_t *bytes_in,
                               uint64_t *bytes_out);
/* The current entry's name and how much of its data was read; NULL when
 * there is no current entry. */
const char *mxpc_archive_reader_current(const struct mxpc_archive_reader *r, int64_t *done);

#endif
