/* Parallel gzip: see include/mxpc/pgz.h.
 *
 * The blocks live in a ring of slots. The calling thread fills the slot of
 * block `next_fill`, queues it, and hands finished blocks to the output in
 * order (`next_emit`); a slot is filled again only once its block has been
 * handed over, so at most `nslots` blocks exist at any time. Workers take
 * queued blocks in order (`next_work`). One mutex guards the counters and
 * the slots' states; the data of a slot belongs to whoever its state says
 * (filler: FREE, worker: WORKING, emitter: DONE/FAILED). */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <zlib.h>

#include "mxpc/pgz.h"

#define SAMPLE (16 * 1024)
/* a sample that does not shrink below this share (in percent) is "incompressible" */
#define INCOMPRESSIBLE_PERCENT 98

enum slot_state { S_FREE, S_QUEUED, S_WORKING, S_DONE, S_FAILED };

struct slot {
    unsigned char *in;
    size_t in_len;
    unsigned char dict[MXPC_PGZ_DICT];
    size_t dict_len;
    unsigned char *out;
    size_t out_len, out_cap;
    uLong crc;
    int last, stored;
    enum slot_state state;
    char err[128];
};

struct worker {
    struct mxpc_pgz *z;
    pthread_t thread;
    z_stream main, sample;
    int main_ready, sample_ready;
    unsigned char *sample_out;
    size_t sample_cap;
};

struct mxpc_pgz {
    int level, nthreads, nslots, started;
    size_t block;
    struct slot *slots;
    struct worker *workers;
    pthread_mutex_t mu;
    pthread_cond_t work_cv, done_cv;
    uint64_t next_fill, next_work, next_emit;
    int stop;
    struct slot *fill; /* the slot being filled, or NULL */
    mxpc_pgz_out_fn out;
    void *ud;
    int header_done, finished, failed;
    uLong crc;
    uint64_t total_in, blocks, stored;
    unsigned char hist[MXPC_PGZ_DICT]; /* the last input bytes: the next block's dictionary */
    size_t hist_len;
    char err[256];
};

/* --- worker side ------------------------------------------------------------ */

/* Level 0 if a level-1 pass over the start of the block, primed with the
 * same dictionary, gains (almost) nothing. */
static int choose_level(struct worker *wk, const struct slot *s, int level)
{
    if (level == 0 || s->in_len == 0)
        return level;
    size_t n = s->in_len < SAMPLE ? s->in_len : SAMPLE;
    z_stream *zs = &wk->sample;
    if (deflateReset(zs) != Z_OK ||
        (s->dict_len > 0 && deflateSetDictionary(zs, s->dict, (uInt)s->dict_len) != Z_OK))
        return level;
    zs->next_in = s->in;
    zs->avail_in = (uInt)n;
    zs->next_out = wk->sample_out;
    zs->avail_out = (uInt)wk->sample_cap;
    if (deflate(zs, Z_FINISH) != Z_STREAM_END)
        return level;
    size_t got = wk->sample_cap - zs->avail_out;
    return got * 100 >= n * INCOMPRESSIBLE_PERCENT ? 0 : level;
}

static int grow_out(struct slot *s, size_t want)
{
    if (want <= s->out_cap)
        return 0;
    unsigned char *p = realloc(s->out, want);
    if (!p)
        return -1;
    s->out = p;
    s->out_cap = want;
    return 0;
}

/* Compresses one block into s->out: raw deflate, ended by a sync flush (or
 * the end of the stream for the last block). 0, or -1 with s->err. */
static int compress_block(struct worker *wk, struct slot *s)
{
    int level = choose_level(wk, s, wk->z->level);
    s->stored = level == 0;
    z_stream *z = &wk->main;
    if (deflateReset(z) != Z_OK || deflateParams(z, level, Z_DEFAULT_STRATEGY) != Z_OK ||
        (s->dict_len > 0 && deflateSetDictionary(z, s->dict, (uInt)s->dict_len) != Z_OK)) {
        snprintf(s->err, sizeof s->err, "compression failed: %s", z->msg ? z->msg : "cannot reset the stream");
        return -1;
    }
    if (grow_out(s, deflateBound(z, s->in_len) + 64) != 0) {
        snprintf(s->err, sizeof s->err, "out of memory");
        return -1;
    }
    int flush = s->last ? Z_FINISH : Z_SYNC_FLUSH;
    z->next_in = s->in;
    z->avail_in = (uInt)s->in_len;
    s->out_len = 0;
    for (;;) {
        z->next_out = s->out + s->out_len;
        z->avail_out = (uInt)(s->out_cap - s->out_len);
        int rc = deflate(z, flush);
        s->out_len = s->out_cap - z->avail_out;
        if (rc == Z_STREAM_ERROR) {
            snprintf(s->err, sizeof s->err, "compression failed: %s", z->msg ? z->msg : "stream error");
            return -1;
        }
        if (s->last ? rc == Z_STREAM_END : z->avail_in == 0 && z->avail_out > 0)
            break;
        if (z->avail_out == 0 && grow_out(s, s->out_cap * 2) != 0) {
            snprintf(s->err, sizeof s->err, "out of memory");
            return -1;
        }
    }
    s->crc = crc32(0L, s->in, (uInt)s->in_len);
    return 0;
}

static void *worker_main(void *arg)
{
    struct worker *wk = arg;
    struct mxpc_pgz *z = wk->z;
    pthread_mutex_lock(&z->mu);
    for (;;) {
        while (!z->stop && z->next_work == z->next_fill)
            pthread_cond_wait(&z->work_cv, &z->mu);
        if (z->stop)
            break;
        struct slot *s = &z->slots[z->next_work % (uint64_t)z->nslots];
        z->next_work++;
        s->state = S_WORKING;
        pthread_mutex_unlock(&z->mu);
        int rc = compress_block(wk, s);
        pthread_mutex_lock(&z->mu);
        s->state = rc == 0 ? S_DONE : S_FAILED;
        pthread_cond_broadcast(&z->done_cv);
    }
    pthread_mutex_unlock(&z->mu);
    return NULL;
}

/* --- caller side ---------------------------------------------------------------- */

static int fail(struct mxpc_pgz *z, const char *msg)
{
    z->failed = 1;
    snprintf(z->err, sizeof z->err, "%s", msg);
    return -1;
}

static int put(struct mxpc_pgz *z, const void *data, size_t len)
{
    if (len > 0 && z->out(z->ud, data, len) != 0)
        return fail(z, "");
    return 0;
}

static void put_le32(unsigned char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

/* Hands the oldest block to the output if it is done (or, with wait, once
 * it is). 1 if one was handed over, 0 if none was ready, -1 on failure. */
static int emit_one(struct mxpc_pgz *z, int wait)
{
    pthread_mutex_lock(&z->mu);
    if (z->next_emit == z->next_fill) {
        pthread_mutex_unlock(&z->mu);
        return 0;
    }
    struct slot *s = &z->slots[z->next_emit % (uint64_t)z->nslots];
    while (wait && s->state != S_DONE && s->state != S_FAILED)
        pthread_cond_wait(&z->done_cv, &z->mu);
    enum slot_state st = s->state;
    pthread_mutex_unlock(&z->mu);
    if (st == S_FAILED)
        return fail(z, s->err);
    if (st != S_DONE)
        return 0;
    if (!z->header_done) {
        /* magic, deflate, no flags, no mtime, no extra flags, OS Unix */
        static const unsigned char header[10] = {0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3};
        if (put(z, header, sizeof header) != 0)
            return -1;
        z->header_done = 1;
    }
    if (put(z, s->out, s->out_len) != 0)
        return -1;
    z->crc = crc32_combine(z->crc, s->crc, (z_off_t)s->in_len);
    z->total_in += s->in_len;
    z->blocks++;
    z->stored += (uint64_t)s->stored;
    pthread_mutex_lock(&z->mu);
    s->state = S_FREE;
    z->next_emit++;
    pthread_mutex_unlock(&z->mu);
    return 1;
}

/* Makes z->fill the slot of the next block, handing blocks over until it is free. */
static int take_slot(struct mxpc_pgz *z)
{
    while (z->next_fill - z->next_emit >= (uint64_t)z->nslots)
        if (emit_one(z, 1) < 0)
            return -1;
    z->fill = &z->slots[z->next_fill % (uint64_t)z->nslots];
    z->fill->in_len = 0;
    z->fill->last = 0;
    return 0;
}

/* Queues the filled block with the input before it as its dictionary. */
static void queue_block(struct mxpc_pgz *z, int last)
{
    struct slot *s = z->fill;
    memcpy(s->dict, z->hist, z->hist_len);
    s->dict_len = z->hist_len;
    s->last = last;
    if (s->in_len >= MXPC_PGZ_DICT) {
        memcpy(z->hist, s->in + s->in_len - MXPC_PGZ_DICT, MXPC_PGZ_DICT);
        z->hist_len = MXPC_PGZ_DICT;
    } else {
        size_t keep = z->hist_len < MXPC_PGZ_DICT - s->in_len ? z->hist_len : MXPC_PGZ_DICT - s->in_len;
        memmove(z->hist, z->hist + z->hist_len - keep, keep);
        memcpy(z->hist + keep, s->in, s->in_len);
        z->hist_len = keep + s->in_len;
    }
    z->fill = NULL;
    pthread_mutex_lock(&z->mu);
    s->state = S_QUEUED;
    z->next_fill++;
    pthread_cond_signal(&z->work_cv);
    pthread_mutex_unlock(&z->mu);
}

int mxpc_pgz_write(struct mxpc_pgz *z, const void *data, size_t len)
{
    if (z->failed || z->finished)
        return z->finished ? fail(z, "write after finish") : -1;
    const unsigned char *p = data;
    while (len > 0) {
        if (!z->fill && take_slot(z) != 0)
            return -1;
        size_t n = z->block - z->fill->in_len < len ? z->block - z->fill->in_len : len;
        memcpy(z->fill->in + z->fill->in_len, p, n);
        z->fill->in_len += n;
        p += n;
        len -= n;
        if (z->fill->in_len == z->block) {
            queue_block(z, 0);
            int rc;
            while ((rc = emit_one(z, 0)) > 0)
                ;
            if (rc < 0)
                return -1;
        }
    }
    return 0;
}

int mxpc_pgz_finish(struct mxpc_pgz *z)
{
    if (z->failed || z->finished)
        return z->finished ? fail(z, "finished twice") : -1;
    if (!z->fill && take_slot(z) != 0)
        return -1;
    queue_block(z, 1);
    while (z->next_emit < z->next_fill)
        if (emit_one(z, 1) < 0)
            return -1;
    unsigned char trailer[8];
    put_le32(trailer, (uint32_t)z->crc);
    put_le32(trailer + 4, (uint32_t)z->total_in);
    if (put(z, trailer, sizeof trailer) != 0)
        return -1;
    z->finished = 1;
    return 0;
}

/* --- life cycle ---------------------------------------------------------------- */

static int online_cpus(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n < 1 ? 1 : n > MXPC_PGZ_MAX_THREADS ? MXPC_PGZ_MAX_THREADS : (int)n;
}

static int init_worker(struct mxpc_pgz *z, struct worker *wk)
{
    wk->z = z;
    /* raw deflate (-15): the gzip wrapper is written here, once */
    wk->main_ready = deflateInit2(&wk->main, z->level, Z_DEFLATED, -MAX_WBITS, 8, Z_DEFAULT_STRATEGY) == Z_OK;
    wk->sample_ready = deflateInit2(&wk->sample, 1, Z_DEFLATED, -MAX_WBITS, 8, Z_DEFAULT_STRATEGY) == Z_OK;
    if (!wk->main_ready || !wk->sample_ready)
        return -1;
    wk->sample_cap = deflateBound(&wk->sample, SAMPLE);
    wk->sample_out = malloc(wk->sample_cap);
    return wk->sample_out ? 0 : -1;
}

struct mxpc_pgz *mxpc_pgz_new(const struct mxpc_pgz_options *opts, mxpc_pgz_out_fn out, void *ud, char *err,
                              size_t errlen)
{
    if (opts->level < 0 || opts->level > 9 || opts->threads < 0 || opts->threads > MXPC_PGZ_MAX_THREADS ||
        (opts->block_size != 0 && (opts->block_size < 1024 || opts->block_size > (1u << 30)))) {
        snprintf(err, errlen, "bad compression settings (level %d, %d threads, blocks of %zu bytes)", opts->level,
                 opts->threads, opts->block_size);
        return NULL;
    }
    struct mxpc_pgz *z = calloc(1, sizeof *z);
    if (!z) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    z->level = opts->level;
    z->nthreads = opts->threads ? opts->threads : online_cpus();
    z->nslots = 2 * z->nthreads + 1;
    z->block = opts->block_size ? opts->block_size : MXPC_PGZ_BLOCK;
    z->out = out;
    z->ud = ud;
    z->crc = crc32(0L, Z_NULL, 0);
    pthread_mutex_init(&z->mu, NULL);
    pthread_cond_init(&z->work_cv, NULL);
    pthread_cond_init(&z->done_cv, NULL);
    z->slots = calloc((size_t)z->nslots, sizeof *z->slots);
    z->workers = calloc((size_t)z->nthreads, sizeof *z->workers);
    int ok = z->slots && z->workers;
    for (int i = 0; ok && i < z->nslots; i++)
        ok = (z->slots[i].in = malloc(z->block)) != NULL;
    for (int i = 0; ok && i < z->nthreads; i++)
        ok = init_worker(z, &z->workers[i]) == 0;
    if (!ok) {
        snprintf(err, errlen, "out of memory for compression");
        mxpc_pgz_free(z);
        return NULL;
    }
    /* signals are for the main thread: its handler interrupts the Lua state */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    for (; z->started < z->nthreads; z->started++)
        if (pthread_create(&z->workers[z->started].thread, NULL, worker_main, &z->workers[z->started]) != 0)
            break;
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (z->started < z->nthreads) {
        snprintf(err, errlen, "cannot start the compression threads");
        mxpc_pgz_free(z);
        return NULL;
    }
    return z;
}

void mxpc_pgz_free(struct mxpc_pgz *z)
{
    if (!z)
        return;
    pthread_mutex_lock(&z->mu);
    z->stop = 1;
    pthread_cond_broadcast(&z->work_cv);
    pthread_mutex_unlock(&z->mu);
    for (int i = 0; i < z->started; i++)
        pthread_join(z->workers[i].thread, NULL);
    for (int i = 0; z->workers && i < z->nthreads; i++) {
        struct worker *wk = &z->workers[i];
        if (wk->main_ready)
            deflateEnd(&wk->main);
        if (wk->sample_ready)
            deflateEnd(&wk->sample);
        free(wk->sample_out);
    }
    for (int i = 0; z->slots && i < z->nslots; i++) {
        free(z->slots[i].in);
        free(z->slots[i].out);
    }
    free(z->slots);
    free(z->workers);
    pthread_mutex_destroy(&z->mu);
    pthread_cond_destroy(&z->work_cv);
    pthread_cond_destroy(&z->done_cv);
    free(z);
}

const char *mxpc_pgz_error(const struct mxpc_pgz *z) { return z->err; }

void mxpc_pgz_stats(const struct mxpc_pgz *z, uint64_t *blocks, uint64_t *stored, int *threads)
{
    if (blocks)
        *blocks = z->blocks;
    if (stored)
        *stored = z->stored;
    if (threads)
        *threads = z->nthreads;
}
