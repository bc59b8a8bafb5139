/* Many GETs (or HEADs) at once, on the S3 client's engine: mxpc_s3_many.
 * See include/mxpc/s3.h and src/s3_request.h. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "mxpc/buf.h"
#include "mxpc/interrupt.h"
#include "mxpc/s3.h"

#include "s3_request.h"

/* --- many objects at once ------------------------------------------------------
 *
 * Up to `concurrency` requests in flight. A GET's bytes go into memory while
 * the objects held stay within `window` bytes, else into an unnamed file in
 * spill_dir (gone when closed, whatever happens). Each finished item is
 * handed to the callback in completion order and released when it returns;
 * an item the callback holds stays (and keeps its memory) until it is
 * accepted. Only the slots in flight and the held items take memory, so the
 * number of items does not matter. */

struct slot {
    struct request r;
    char *bucket, *key; /* of its item, owned */
    int64_t size;       /* its expected size, or -1 */
    char *mem;
    size_t cap;
    int fd;
    int64_t reserved;
    int busy;
};

struct held {
    struct mxpc_s3_fetched f;
    char *key; /* owned: f.key */
    char *mem;
    int64_t reserved;
    struct held *next;
};

struct many {
    struct mxpc_s3 *s3;
    const struct mxpc_s3_many_options *o;
    int head;
    int64_t reserved; /* bytes of memory promised to slots and held items */
    size_t finished;  /* slots that finished and wait to be handed on */
    int spilled;      /* spill files open, of slots and of held items */
    int max_spilled;  /* a share of the open-file limit */
    const struct mxpc_s3_items *src;
    int have_next;         /* pending holds the next item, asked for but not started */
    struct mxpc_s3_item pending; /* its bucket and key owned */
};

/* Held items each keep their spill file open: while fn holds them (the
 * backup waits for pg_dump), no more than a quarter of the open-file limit
 * are opened, so sockets and other files still get descriptors. */
static int spill_limit(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur > 16384)
        return 4096;
    int n = (int)(rl.rlim_cur / 4);
    return n < 4 ? 4 : n;
}

static int slot_sink(void *ud, const void *data, size_t len, char *err, size_t errlen)
{
    struct slot *s = ud;
    if (s->fd >= 0) {
        const char *p = data;
        while (len > 0) {
            ssize_t n = write(s->fd, p, len);
            if (n < 0 && errno == EINTR)
                continue;
            if (n < 0) {
                snprintf(err, errlen, "cannot write to the working directory: %s", strerror(errno));
                return -1;
            }
            p += n;
            len -= (size_t)n;
        }
        return 0;
    }
    if ((size_t)s->r.delivered + len > s->cap) {
        snprintf(err, errlen, "more bytes arrived than announced");
        return -1;
    }
    memcpy(s->mem + s->r.delivered, data, len);
    return 0;
}

static int spill_file(const char *dir, char *err, size_t errlen)
{
    int fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
    if (fd >= 0)
        return fd;
    struct mxpc_buf b = MXPC_BUF_INIT;
    mxpc_buf_printf(&b, "%s/.mxpc-spill-XXXXXX", dir);
    fd = mkostemp(b.data, O_CLOEXEC);
    if (fd >= 0)
        unlink(b.data);
    else
        snprintf(err, errlen, "cannot create a file in %s: %s", dir, strerror(errno));
    mxpc_buf_free(&b);
    return fd;
}

static void slot_done(struct mxpc_s3 *s3, struct request *r)
{
    (void)s3;
    struct many *m = r->owner;
    m->finished++;
}

/* Asks the source for item i into m->pending (bucket and key copied, so
 * they live as long as its request); 0, or -1 with e filled. */
static int fetch_item(struct many *m, size_t i, struct mxpc_s3_error *e)
{
    if (m->have_next)
        return 0;
    struct mxpc_s3_item it = {NULL, NULL, -1};
    if (m->src->get(m->src->ud, i, &it, e) != 0)
        return -1;
    if (s3_check_names(it.bucket, it.key, 1, e))
        return -1;
    m->pending.bucket = strdup(it.bucket);
    m->pending.key = strdup(it.key);
    if (!m->pending.bucket || !m->pending.key)
        abort();
    m->pending.size = it.size;
    m->have_next = 1;
    return 0;
}

static void drop_pending(struct many *m)
{
    if (m->have_next) {
        free((char *)m->pending.bucket);
        free((char *)m->pending.key);
        m->have_next = 0;
    }
}

/* Starts the pending item, number i, in a free slot; 0, 1 when it needs a
 * spill file and as many are open as allowed (it waits), or -1 with e
 * filled. */
static int slot_start(struct many *m, struct slot *s, size_t i, struct mxpc_s3_error *e)
{
    const struct mxpc_s3_many_options *o = m->o;
    const struct mxpc_s3_item *it = &m->pending;
    int in_memory = it->size >= 0 && it->size <= o->window / 4 && m->reserved + it->size <= o->window;
    if (!m->head && !in_memory && m->spilled >= m->max_spilled)
        return 1;
    memset(&s->r, 0, sizeof s->r);
    s->fd = -1;
    s->reserved = 0;
    s->busy = 1;
    if (!m->head) {
        if (in_memory) {
            if ((size_t)it->size > s->cap || !s->mem) {
                free(s->mem);
                s->cap = it->size ? (size_t)it->size : 1;
                s->mem = malloc(s->cap);
                if (!s->mem)
                    abort();
            }
            s->reserved = it->size;
            m->reserved += it->size;
        } else {
            char err[512];
            s->fd = spill_file(o->spill_dir ? o->spill_dir : "/tmp", err, sizeof err);
            if (s->fd < 0) {
                s->busy = 0;
                s3_set_error(e, "io", "give the working directory some room, or use a smaller window", "%s", err);
                return -1;
            }
            m->spilled++;
        }
    }
    /* the slot takes the item over */
    s->bucket = (char *)it->bucket;
    s->key = (char *)it->key;
    s->size = it->size;
    m->have_next = 0;
    s->r = (struct request){.method = m->head ? "HEAD" : "GET",
                            .bucket = s->bucket,
                            .key = s->key,
                            .idempotent = 1,
                            .sink = m->head ? NULL : slot_sink,
                            .sink_ud = s,
                            .expected_size = m->head ? -1 : s->size,
                            .on_done = slot_done,
                            .owner = m,
                            .index = i};
    s3_request_begin(m->s3, &s->r, 0);
    return 0;
}

static void slot_clear(struct many *m, struct slot *s)
{
    s3_request_free(&s->r);
    free(s->bucket);
    free(s->key);
    s->bucket = s->key = NULL;
    if (s->fd >= 0) {
        close(s->fd);
        m->spilled--;
    }
    s->fd = -1;
    m->reserved -= s->reserved;
    s->reserved = 0;
    s->busy = 0;
    /* memory above the window's share is given back at once */
    if (s->cap > (size_t)(1 << 20)) {
        free(s->mem);
        s->mem = NULL;
        s->cap = 0;
    }
}

static void held_free(struct many *m, struct held *h)
{
    if (h->f.fd >= 0) {
        close(h->f.fd);
        m->spilled--;
    }
    free(h->mem);
    free(h->key);
    m->reserved -= h->reserved;
    free(h);
}

/* Starts items in the free slots, in order, while they allow; *blocked is
 * set when the next item waits for a spill file. 0, or -1 with e filled. */
static int start_slots(struct many *m, struct slot *slots, int conc, size_t *next, int *running, int *blocked,
                       struct mxpc_s3_error *e)
{
    *blocked = 0;
    for (int k = 0; k < conc && *next < m->src->n && !*blocked; k++) {
        if (slots[k].busy)
            continue;
        int rc = fetch_item(m, *next, e);
        if (rc == 0)
            rc = slot_start(m, &slots[k], *next, e);
        if (rc == 1)
            *blocked = 1;
        else if (rc != 0)
            return -1;
        else
            (*next)++, (*running)++;
    }
    return 0;
}

/* Moves the slot's finished item to a held one (its bytes, spill file and
 * key taken over) and frees the slot. */
static struct held *hold_finished(struct many *m, struct slot *s)
{
    int head = m->head;
    struct held *h = calloc(1, sizeof *h);
    if (!h)
        abort();
    h->f.index = s->r.index;
    h->f.fd = -1;
    h->f.failed = s->r.rc != 0;
    if (s->r.rc == 0 && !head && s->size >= 0 && s->r.delivered != s->size) {
        char what[1024];
        s3_object_name(what, sizeof what, s->bucket, s->key);
        s3_set_error(&s->r.err, "size", NULL, "%s: received %lld bytes, expected %lld", what, (long long)s->r.delivered,
                     (long long)s->size);
        h->f.failed = 1;
    }
    if (h->f.failed)
        memcpy(&h->f.err, &s->r.err, sizeof h->f.err);
    h->f.size = head ? s->r.content_length : s->r.delivered;
    snprintf(h->f.etag, sizeof h->f.etag, "%s", s->r.etag);
    if (!h->f.failed && !head) {
        if (s->fd >= 0) {
            h->f.fd = s->fd;
            s->fd = -1;
            lseek(h->f.fd, 0, SEEK_SET);
        } else {
            h->mem = s->mem; /* the slot gets new memory next time */
            h->f.data = h->mem;
            s->mem = NULL;
            s->cap = 0;
            h->reserved = s->reserved;
            s->reserved = 0;
        }
    }
    h->key = s->key; /* the held item takes the key over */
    h->f.key = h->key;
    s->key = NULL;
    slot_clear(m, s);
    return h;
}

/* The held items, in the order they finished. */
struct held_list {
    struct held *first, **last;
};

/* Hands the held items to fn, first to last, until it holds one (while
 * something else can still finish). `must`: nothing else can. 0, or -1
 * with e filled once fn stopped. */
static int hand_over(struct many *m, struct held_list *l, int must, mxpc_s3_fetched_fn fn, void *ud,
                     struct mxpc_s3_error *e)
{
    while (l->first) {
        struct held *h = l->first;
        int r = fn(ud, &h->f, must, e);
        if (r == 1 && !must)
            return 0; /* held: asked again after the next item finishes */
        if (r != 0) {
            if (r == 1)
                s3_set_error(e, "usage", NULL, "an item was held while nothing else could finish");
            return -1;
        }
        l->first = h->next;
        if (!l->first)
            l->last = &l->first;
        held_free(m, h);
    }
    return 0;
}

int mxpc_s3_many(struct mxpc_s3 *s3, int head, const struct mxpc_s3_items *src,
                 const struct mxpc_s3_many_options *o, mxpc_s3_fetched_fn fn, void *ud, struct mxpc_s3_error *e)
{
    s3_clear_error(e);
    size_t n = src->n;
    int conc = o->concurrency > 0 ? o->concurrency : MXPC_S3_DEFAULT_CONCURRENCY;
    struct slot *slots = calloc((size_t)conc, sizeof *slots);
    if (!slots)
        abort();
    for (int k = 0; k < conc; k++)
        slots[k].fd = -1;
    struct many m = {s3, o, head, 0, 0, 0, spill_limit(), src, 0, {NULL, NULL, -1}};
    struct held_list held = {NULL, &held.first};
    size_t next = 0;
    int rc = 0, running = 0;
    for (;;) {
        if (mxpc_interrupted()) {
            s3_set_error(e, "interrupted", NULL, "interrupted: %zu of %zu S3 objects done", next - (size_t)running, n);
            rc = -1;
            break;
        }
        int blocked;
        if ((rc = start_slots(&m, slots, conc, &next, &running, &blocked, e)) != 0)
            break;
        if (m.finished > 0) {
            m.finished = 0;
            for (int k = 0; k < conc; k++) {
                if (!slots[k].busy || slots[k].r.state != REQ_DONE)
                    continue;
                running--;
                struct held *h = hold_finished(&m, &slots[k]);
                *held.last = h;
                held.last = &h->next;
            }
        }
        /* nothing else can finish: nothing runs, and nothing more starts */
        int must = running == 0 && (next >= n || blocked);
        if ((rc = hand_over(&m, &held, must, fn, ud, e)) != 0)
            break;
        if (running == 0 && next >= n && !held.first)
            break;
        if (running > 0 && o->also) {
            s3_pump(s3, 5);
            s3_pump(o->also, 0);
        } else if (running > 0) {
            s3_pump(s3, 100);
        }
        mxpc_tick();
    }
    /* stop what is still in flight: nothing of it is kept */
    for (int k = 0; k < conc; k++) {
        if (slots[k].busy)
            slot_clear(&m, &slots[k]);
        free(slots[k].mem);
    }
    drop_pending(&m);
    while (held.first) {
        struct held *h = held.first;
        held.first = h->next;
        held_free(&m, h);
    }
    free(slots);
    return rc;
}
