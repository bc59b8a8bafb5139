/* Parallel gzip: one gzip member compressed by a pool of threads.
 *
 * The input is cut into blocks (128 KiB by default). Each block is
 * compressed on its own as raw deflate, primed with the 32 KiB of input that
 * precede it (deflateSetDictionary), so matches across block boundaries are
 * kept and the ratio is that of one stream. Every block but the last ends
 * with a sync flush (an empty stored block: byte-aligned, not final), the
 * last with Z_FINISH, so the concatenation is one valid deflate stream. The
 * gzip CRC is the blocks' CRCs joined with crc32_combine. Any gzip reader
 * reads the result: it is a single ordinary member.
 *
 * Level per block: a block whose first 16 KiB do not shrink by at least 2 %
 * at level 1 (already compressed data: the dump, images, archives; primed
 * with the 32 KiB before it when short probes of it are found there) is stored
 * (level 0: written as stored deflate blocks without zlib), the others get
 * the configured level.
 *
 * Memory is bounded: a fixed number of blocks (twice the threads, and the
 * one being filled) are in flight; write() waits for the oldest to be done
 * when all are taken.
 * Output is handed to `out` only on the thread that calls write() and
 * finish(), in order; the worker threads touch nothing but their blocks.
 * The output is the same whatever the number of threads. */
#ifndef MXPC_PGZ_H
#define MXPC_PGZ_H

#include <stddef.h>
#include <stdint.h>

#define MXPC_PGZ_BLOCK (128 * 1024)
#define MXPC_PGZ_DICT (32 * 1024)
#define MXPC_PGZ_MAX_THREADS 16

struct mxpc_pgz;

/* Receives compressed bytes; returns 0, or -1 (the reason is the caller's to keep). */
typedef int (*mxpc_pgz_out_fn)(void *ud, const void *data, size_t len);

struct mxpc_pgz_options {
    int level;         /* 0-9 */
    int threads;       /* 0: one per online CPU, at most MXPC_PGZ_MAX_THREADS */
    size_t block_size; /* 0: MXPC_PGZ_BLOCK; at least 1 KiB */
};

/* Returns NULL with a message in err (bad level, out of memory, no thread). */
struct mxpc_pgz *mxpc_pgz_new(const struct mxpc_pgz_options *opts, mxpc_pgz_out_fn out, void *ud, char *err,
                              size_t errlen);
/* Takes len bytes; may hand finished blocks to `out`. 0, or -1 once `out`
 * or the compression failed (see mxpc_pgz_error; every later call fails). */
int mxpc_pgz_write(struct mxpc_pgz *z, const void *data, size_t len);
/* Compresses what is left and writes the gzip trailer. 0 or -1. */
int mxpc_pgz_finish(struct mxpc_pgz *z);
/* Stops the threads (each ends the block it is on) and frees. NULL is fine. */
void mxpc_pgz_free(struct mxpc_pgz *z);

/* Why the last call failed: "" when the output callback failed. */
const char *mxpc_pgz_error(const struct mxpc_pgz *z);
/* Blocks compressed so far, how many of them were stored, threads used. */
void mxpc_pgz_stats(const struct mxpc_pgz *z, uint64_t *blocks, uint64_t *stored, int *threads);

#endif
