/* Server-side copies, many at once, on the S3 client's engine:
 * mxpc_s3_copy_many (CopyObject, and UploadPartCopy parts for large
 * objects). See include/mxpc/s3.h and src/s3_request.h.
 *
 * Up to `concurrency` requests are in flight: whole copies of the next
 * items, and the parts of objects copied in parts (their parts go first, so
 * that a large object finishes and its upload does not stay open longer
 * than needed). Each object is handed to the caller's function when it is
 * done or has failed; only the objects in progress take memory. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mxpc/buf.h"
#include "mxpc/http.h"
#include "mxpc/interrupt.h"
#include "mxpc/log.h"
#include "mxpc/s3.h"
#include "mxpc/sigv4.h"

#include "s3_request.h"

struct cobj {
    size_t index;
    char *bucket, *key;
    struct mxpc_buf source; /* x-amz-copy-source: "/bucket/key", the key encoded */
    char source_name[1200]; /* "s3://bucket/key" */
    int64_t size;
    int in_parts;
    char upload_id[1024];
    struct mxpc_buf enc_id;
    int64_t part_size, nparts, next_part, parts_done;
    char (*etags)[128];
    int running; /* its requests in flight */
    int failed, done;
    int retries; /* of answers "200 with an <Error>" that S3 says to retry */
    char etag[128];
    struct mxpc_s3_error err;
    struct cobj *next;
};

struct ctask {
    struct request r;
    struct cobj *o;
    int64_t part; /* 0: the whole object */
    struct mxpc_buf query;
    char range[96];
    int busy;
};

struct copier {
    struct mxpc_s3 *s3;
    struct ctask *tasks;
    int conc, running;
    struct cobj *objs; /* begun, not yet handed on */
    int64_t threshold, part_size;
    const char *source_url, *source_query; /* Azure's Copy Blob from URL */
};

static void obj_fail(struct cobj *o, const struct mxpc_s3_error *e)
{
    if (o->failed)
        return;
    o->failed = 1;
    memcpy(&o->err, e, sizeof o->err);
    if (o->err.facts.kind[0])
        snprintf(o->err.facts.copy_source, sizeof o->err.facts.copy_source, "%s", o->source_name);
}

static void obj_free(struct cobj *o)
{
    mxpc_buf_free(&o->source);
    mxpc_buf_free(&o->enc_id);
    free(o->etags);
    free(o->bucket);
    free(o->key);
    free(o);
}

static void task_start(struct copier *c, struct ctask *t, struct cobj *o, int64_t part)
{
    memset(&t->r, 0, sizeof t->r);
    t->o = o;
    t->part = part;
    t->busy = 1;
    t->query.len = 0;
    t->r = (struct request){.method = "PUT",
                            .bucket = o->bucket,
                            .key = o->key,
                            .body = "",
                            .body_len = 0,
                            .copy_source = o->source.data,
                            .idempotent = 1,
                            .expected_size = -1};
    if (part > 0) {
        int64_t from = (part - 1) * o->part_size, to = from + o->part_size - 1;
        if (to >= o->size)
            to = o->size - 1;
        snprintf(t->range, sizeof t->range, "bytes=%lld-%lld", (long long)from, (long long)to);
        s3_multipart_part_query(&t->query, o->upload_id, o->enc_id.data, part);
        t->r.query = t->query.data;
        t->r.copy_range = t->range;
    }
    o->running++;
    c->running++;
    s3_request_begin(c->s3, &t->r, 0);
}

static void task_clear(struct copier *c, struct ctask *t)
{
    if (!t->busy)
        return;
    if (t->r.state != REQ_DONE)
        s3_request_cancel(c->s3, &t->r, "interrupted");
    s3_request_free(&t->r);
    t->o->running--;
    c->running--;
    t->busy = 0;
}

static int retryable(const char *code)
{
    return strcmp(code, "InternalError") == 0 || strcmp(code, "SlowDown") == 0 ||
           strcmp(code, "ServiceUnavailable") == 0;
}

/* A finished request: its object's ETag (or part's), or its failure. A 200
 * answer may carry an <Error>: S3 began the copy, then failed it. */
static void task_end(struct copier *c, struct ctask *t)
{
    struct cobj *o = t->o;
    struct request *r = &t->r;
    if (r->rc != 0) {
        obj_fail(o, &r->err);
        task_clear(c, t);
        return;
    }
    struct s3_xml_error x;
    memset(&x, 0, sizeof x);
    s3_parse_error(&r->response, &x);
    if (x.is_error && retryable(x.code) && o->retries < c->s3->max_retries && !o->failed) {
        o->retries++;
        mxpc_log(MXPC_LOG_DEBUG, "copy of %s answered 200 with %s: trying again", o->source_name, x.code);
        struct cobj *owner = o;
        int64_t part = t->part;
        task_clear(c, t);
        task_start(c, t, owner, part);
        return;
    }
    if (x.is_error) {
        struct mxpc_s3_error e;
        char what[1200];
        s3_client_object_name(c->s3, what, sizeof what, o->bucket, o->key);
        s3_set_error(&e, "s3", NULL, "S3 could not copy %s to %s: %s: %s", o->source_name, what, x.code, x.message);
        s3_set_facts(c->s3, r, &e, "http");
        e.http_status = r->status;
        snprintf(e.s3_code, sizeof e.s3_code, "%s", x.code);
        snprintf(e.facts.s3_message, sizeof e.facts.s3_message, "%s", x.message);
        obj_fail(o, &e);
    } else if (!x.etag[0] && !r->etag[0]) {
        struct mxpc_s3_error e;
        s3_set_error(&e, "s3", NULL, "S3 returned no ETag for the copy of %s%s", o->source_name,
                     t->part ? " (a part)" : "");
        obj_fail(o, &e);
    } else if (t->part) {
        snprintf(o->etags[t->part - 1], sizeof o->etags[0], "%s", x.etag);
        o->parts_done++;
    } else { /* S3 answers the new ETag in the body, Azure in a header */
        snprintf(o->etag, sizeof o->etag, "%s", x.etag[0] ? x.etag : r->etag);
        o->done = 1;
    }
    task_clear(c, t);
}

/* Aborts the object's upload in parts (even after a signal: an unfinished
 * upload is billed storage). */
static void obj_abort(struct copier *c, struct cobj *o)
{
    if (!o->upload_id[0])
        return;
    int cleaning = mxpc_http_cleanup(c->s3->http, 1);
    struct mxpc_s3_error ae;
    char what[1200];
    s3_client_object_name(c->s3, what, sizeof what, o->bucket, o->key);
    if (c->s3->dialect->parts_abort(c->s3, o->bucket, o->key, o->upload_id, &ae) != 0)
        mxpc_log(MXPC_LOG_WARN, "could not abort the multipart upload %s of %s: %s", o->upload_id, what, ae.message);
    else
        mxpc_log(MXPC_LOG_DEBUG, "aborted the multipart upload of %s", what);
    mxpc_http_cleanup(c->s3->http, cleaning);
    o->upload_id[0] = '\0';
}

/* Completes the object's upload in parts (all parts are in). */
static void obj_complete(struct copier *c, struct cobj *o)
{
    struct mxpc_buf query = MXPC_BUF_INIT, body = MXPC_BUF_INIT;
    const char *method = c->s3->dialect->complete(&query, &body, o->upload_id, o->enc_id.data, o->nparts, o->etags);
    struct request r = {.method = method,
                        .bucket = o->bucket,
                        .key = o->key,
                        .query = query.data,
                        .body = body.data,
                        .body_len = body.len,
                        .content_type = "application/xml",
                        .expected_size = -1};
    struct mxpc_s3_error e;
    if (s3_execute(c->s3, &r, 0, &e) != 0) {
        obj_fail(o, &e);
    } else {
        struct s3_xml_error x;
        memset(&x, 0, sizeof x);
        s3_parse_error(&r.response, &x);
        if (x.is_error) {
            char what[1200];
            s3_client_object_name(c->s3, what, sizeof what, o->bucket, o->key);
            s3_set_error(&e, "s3", NULL, "S3 could not complete the multipart copy of %s to %s: %s: %s", o->source_name,
                         what, x.code, x.message);
            obj_fail(o, &e);
        } else {
            snprintf(o->etag, sizeof o->etag, "%s", x.etag[0] ? x.etag : r.etag);
            o->upload_id[0] = '\0'; /* completed: nothing to abort */
            o->done = 1;
        }
    }
    s3_request_free(&r);
    mxpc_buf_free(&query);
    mxpc_buf_free(&body);
}

/* Begins the upload in parts of o: 0, or -1 with o failed. */
static int obj_begin_parts(struct copier *c, struct cobj *o)
{
    o->in_parts = 1;
    o->part_size = c->part_size;
    while ((o->size + o->part_size - 1) / o->part_size > MXPC_S3_MAX_PARTS)
        o->part_size *= 2;
    o->nparts = (o->size + o->part_size - 1) / o->part_size;
    o->next_part = 1;
    o->etags = calloc((size_t)o->nparts, sizeof *o->etags);
    if (!o->etags)
        abort();
    /* once S3 made the upload, only its id lets us abort it: see job_begin in s3_upload.c */
    int cleaning = mxpc_http_cleanup(c->s3->http, 1);
    struct mxpc_s3_error e;
    int rc = c->s3->dialect->parts_begin(c->s3, o->bucket, o->key, o->upload_id, sizeof o->upload_id, &e);
    mxpc_http_cleanup(c->s3->http, cleaning);
    if (rc != 0) {
        o->upload_id[0] = '\0';
        obj_fail(o, &e);
        return -1;
    }
    mxpc_sigv4_uri_encode(&o->enc_id, o->upload_id, strlen(o->upload_id), 0);
    return 0;
}

static struct cobj *obj_new(const struct copier *c, const struct mxpc_s3_copy_item *it, size_t index)
{
    struct cobj *o = calloc(1, sizeof *o);
    if (!o)
        abort();
    o->index = index;
    o->bucket = mxpc_strdup(it->bucket);
    o->key = mxpc_strdup(it->key);
    o->size = it->size;
    if (c->source_url) { /* Azure: a URL; messages show it without its query (a SAS) */
        mxpc_buf_printf(&o->source, "%s/%s/", c->source_url, it->src_bucket);
        mxpc_sigv4_uri_encode(&o->source, it->src_key, strlen(it->src_key), 1);
        snprintf(o->source_name, sizeof o->source_name, "%s", o->source.data);
        if (c->source_query && *c->source_query)
            mxpc_buf_printf(&o->source, "?%s", c->source_query);
    } else {
        mxpc_buf_printf(&o->source, "/%s/", it->src_bucket);
        mxpc_sigv4_uri_encode(&o->source, it->src_key, strlen(it->src_key), 1);
        s3_object_name(o->source_name, sizeof o->source_name, it->src_bucket, it->src_key);
    }
    return o;
}

/* The next part to start, of the first object in parts that has one. */
static struct cobj *part_waiting(struct copier *c)
{
    for (struct cobj *o = c->objs; o; o = o->next)
        if (o->in_parts && !o->failed && o->upload_id[0] && o->next_part <= o->nparts)
            return o;
    return NULL;
}

/* Hands the objects that are over to fn (aborting or completing uploads in
 * parts first): 0, or -1 once fn said to stop. */
static int hand_over(struct copier *c, mxpc_s3_fetched_fn fn, void *ud, struct mxpc_s3_error *e)
{
    for (struct cobj **p = &c->objs; *p;) {
        struct cobj *o = *p;
        if (o->failed && o->running > 0) {
            /* its other parts are of no use now */
            for (int k = 0; k < c->conc; k++)
                if (c->tasks[k].busy && c->tasks[k].o == o)
                    task_clear(c, &c->tasks[k]);
        }
        if (!o->failed && o->in_parts && !o->done && o->running == 0 && o->parts_done == o->nparts)
            obj_complete(c, o);
        if (o->failed && o->in_parts)
            obj_abort(c, o);
        if (!o->failed && !o->done) {
            p = &o->next;
            continue;
        }
        *p = o->next;
        struct mxpc_s3_fetched f;
        memset(&f, 0, sizeof f);
        f.index = o->index;
        f.key = o->key;
        f.failed = o->failed;
        f.fd = -1;
        f.size = o->size;
        snprintf(f.etag, sizeof f.etag, "%s", o->etag);
        if (o->failed)
            memcpy(&f.err, &o->err, sizeof f.err);
        int r = fn(ud, &f, 1, e);
        obj_free(o);
        if (r < 0)
            return -1;
    }
    return 0;
}

/* Starts requests in the free slots: parts first, then the next items. */
static int start_tasks(struct copier *c, const struct mxpc_s3_copy_items *items, size_t *next, struct mxpc_s3_error *e)
{
    for (int k = 0; k < c->conc; k++) {
        struct ctask *t = &c->tasks[k];
        if (t->busy)
            continue;
        struct cobj *o = part_waiting(c);
        if (o) {
            task_start(c, t, o, o->next_part++);
            continue;
        }
        if (*next >= items->n)
            return 0;
        struct mxpc_s3_copy_item it = {NULL, NULL, NULL, NULL, -1};
        if (items->get(items->ud, *next, &it, e) != 0)
            return -1;
        if (s3_check_names(it.src_bucket, it.src_key, 1, e) || s3_check_names(it.bucket, it.key, 1, e))
            return -1;
        o = obj_new(c, &it, *next);
        (*next)++;
        o->next = c->objs;
        c->objs = o;
        if (o->size > c->threshold && !c->source_url) {
            if (obj_begin_parts(c, o) == 0)
                task_start(c, t, o, o->next_part++);
        } else {
            task_start(c, t, o, 0);
        }
    }
    return 0;
}

int mxpc_s3_copy_many(struct mxpc_s3 *s3, const struct mxpc_s3_copy_items *items, const struct mxpc_s3_copy_options *o,
                      mxpc_s3_fetched_fn fn, void *ud, struct mxpc_s3_error *e)
{
    s3_clear_error(e);
    struct copier c = {.s3 = s3};
    c.conc = o && o->concurrency > 0 ? o->concurrency : MXPC_S3_DEFAULT_CONCURRENCY;
    c.threshold = o && o->part_threshold > 0 ? o->part_threshold : MXPC_S3_COPY_THRESHOLD;
    c.part_size = o && o->part_size > 0 ? o->part_size : MXPC_S3_COPY_PART_SIZE;
    if (c.part_size < MXPC_S3_MIN_PART_SIZE)
        c.part_size = MXPC_S3_MIN_PART_SIZE;
    if (c.part_size > MXPC_S3_MAX_PART_SIZE)
        c.part_size = MXPC_S3_MAX_PART_SIZE;
    c.source_url = o ? o->source_url : NULL;
    c.source_query = o ? o->source_query : NULL;
    c.tasks = calloc((size_t)c.conc, sizeof *c.tasks);
    if (!c.tasks)
        abort();
    size_t next = 0;
    int rc = 0;
    for (;;) {
        if (mxpc_interrupted()) {
            s3_set_error(e, "interrupted", NULL, "interrupted: %zu of %zu S3 copies begun", next, items->n);
            rc = -1;
            break;
        }
        if ((rc = start_tasks(&c, items, &next, e)) != 0)
            break;
        if (c.running > 0)
            s3_pump(s3, 100);
        for (int k = 0; k < c.conc; k++)
            if (c.tasks[k].busy && c.tasks[k].r.state == REQ_DONE)
                task_end(&c, &c.tasks[k]);
        if ((rc = hand_over(&c, fn, ud, e)) != 0)
            break;
        if (c.running == 0 && next >= items->n && !c.objs)
            break;
        mxpc_tick();
    }
    /* stop what is still in flight; leave no upload in parts behind */
    for (int k = 0; k < c.conc; k++) {
        task_clear(&c, &c.tasks[k]);
        mxpc_buf_free(&c.tasks[k].query);
    }
    while (c.objs) {
        struct cobj *ob = c.objs;
        c.objs = ob->next;
        obj_abort(&c, ob);
        obj_free(ob);
    }
    free(c.tasks);
    return rc;
}
