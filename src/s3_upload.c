/* Uploads on the S3 client's engine: the uploader (many objects, parts in
 * parallel), one object (mxpc_s3_put), and uploads of unknown length. See
 * include/mxpc/s3.h and src/s3_request.h. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mxpc/buf.h"
#include "mxpc/http.h"
#include "mxpc/interrupt.h"
#include "mxpc/log.h"
#include "mxpc/s3.h"
#include "mxpc/sigv4.h"
#include "mxpc/xml.h"

#include "s3_request.h"

/* --- uploads, many at once -------------------------------------------------------
 *
 * Each part is read into memory first: that makes a part
 * retryable after a reset connection, and over plain http lets it be signed
 * with its real SHA-256 (RGW checks it, so corruption on the way is caught).
 * Over https it goes as UNSIGNED-PAYLOAD: TLS already protects it, and
 * hashing would cost a second pass over every byte. Streaming without the
 * buffer (STREAMING-AWS4-HMAC-SHA256-PAYLOAD chunk signing) would save one
 * part of memory but could not be retried.
 *
 * The caller hands over one object after the other (read from one sequential
 * source, an archive); each is read into memory part by part, waiting while
 * the parts in flight fill the window or the concurrency, and sent at once.
 * Large objects are multipart uploads whose parts go in parallel; each is
 * completed when its last part is in. The first failure stops everything:
 * what is in flight is cancelled and every unfinished multipart upload is
 * aborted. */

/* Reads exactly len bytes from the source. */
static int fill(mxpc_s3_source_fn source, void *ud, char *buf, size_t len, int64_t done, int64_t size,
                const char *what, struct mxpc_s3_error *e)
{
    size_t got = 0;
    while (got < len) {
        if (mxpc_interrupted()) {
            s3_set_error(e, "interrupted", NULL, "interrupted: S3 upload of %s", what);
            return -1;
        }
        char err[512] = "";
        ssize_t n = source(ud, buf + got, len - got, err, sizeof err);
        if (n < 0) {
            s3_set_error(e, "io", NULL, "upload of %s: %s", what, err[0] ? err : "the source failed");
            return -1;
        }
        if (n == 0) {
            s3_set_error(e, "size", NULL, "upload of %s: the source ended after %lld of %lld bytes", what,
                         (long long)(done + (int64_t)got), (long long)size);
            return -1;
        }
        got += (size_t)n;
    }
    return 0;
}

/* After `size` bytes the source must be at its end. */
static int check_source_end(mxpc_s3_source_fn source, void *ud, int64_t size, const char *what,
                            struct mxpc_s3_error *e)
{
    char extra, err[512] = "";
    ssize_t n = source(ud, &extra, 1, err, sizeof err);
    if (n < 0) {
        s3_set_error(e, "io", NULL, "upload of %s: %s", what, err[0] ? err : "the source failed");
        return -1;
    }
    if (n > 0) {
        s3_set_error(e, "size", NULL, "upload of %s: the source has more than the %lld bytes declared", what,
                     (long long)size);
        return -1;
    }
    return 0;
}

struct upjob {
    struct mxpc_s3_uploader *up;
    char *bucket, *key;
    char upload_id[512];
    struct mxpc_buf enc_id;
    int64_t nparts, parts_done; /* parts sent so far (all of them once all_read), parts in */
    int64_t cap;                /* of etags */
    char (*etags)[128];
    int all_read, completing, done;
    struct request complete;
    struct mxpc_buf xml, query;
    struct upjob *next;
};

struct uptask {
    struct mxpc_s3_uploader *up;
    struct request r;
    char *buf;
    size_t len;
    struct upjob *job;
    int64_t part;
    char *bucket, *key;
    struct mxpc_buf query;
    struct uptask *next;
};

struct mxpc_s3_uploader {
    struct mxpc_s3 *s3;
    int concurrency;
    int64_t window, reserved;
    int in_flight;
    struct uptask *tasks; /* started, finished or not */
    struct upjob *jobs;   /* multipart uploads not yet completed or aborted */
    int failed, stopped;
    int no_overwrite; /* the commits carry If-None-Match: * (Azure's signing step only) */
    struct mxpc_s3_error err;
    int64_t objects, bytes;
    char last_etag[128]; /* of the object finished last */
};

static void up_fail(struct mxpc_s3_uploader *up, const struct mxpc_s3_error *e)
{
    if (up->failed)
        return;
    up->failed = 1;
    memcpy(&up->err, e, sizeof up->err);
}

static void task_done(struct mxpc_s3 *s3, struct request *r)
{
    struct uptask *t = r->owner;
    struct mxpc_s3_uploader *up = t->up;
    up->in_flight--;
    up->reserved -= (int64_t)t->len;
    free(t->buf);
    t->buf = NULL;
    t->len = 0;
    if (r->rc != 0) {
        up_fail(up, &r->err);
        return;
    }
    if (t->job) {
        if (!r->etag[0] && s3->dialect->part_etags) {
            struct mxpc_s3_error e;
            s3_set_error(&e, "s3", NULL, "S3 returned no ETag for part %lld of s3://%s/%s", (long long)t->part,
                         t->job->bucket, t->job->key);
            up_fail(up, &e);
            return;
        }
        snprintf(t->job->etags[t->part - 1], sizeof t->job->etags[0], "%s", r->etag);
        t->job->parts_done++;
    } else {
        up->objects++;
        snprintf(up->last_etag, sizeof up->last_etag, "%s", r->etag);
    }
}

static void complete_done(struct mxpc_s3 *s3, struct request *r)
{
    (void)s3;
    struct upjob *j = r->owner;
    struct mxpc_s3_uploader *up = j->up;
    up->in_flight--;
    if (r->rc != 0) {
        up_fail(up, &r->err);
        return;
    }
    struct s3_xml_error res;
    memset(&res, 0, sizeof res);
    s3_parse_error(&r->response, &res);
    if (res.is_error) { /* S3 may fail a completion inside a 200 answer */
        struct mxpc_s3_error e;
        s3_set_error(&e, "s3", NULL, "S3 could not complete the multipart upload of s3://%s/%s: %s: %s", j->bucket,
                     j->key, res.code, res.message);
        up_fail(up, &e);
        return;
    }
    j->done = 1;
    up->objects++;
    snprintf(up->last_etag, sizeof up->last_etag, "%s", res.etag[0] ? res.etag : r->etag);
}

/* Frees finished tasks, and starts the completion of multipart uploads
 * whose parts are all in. */
static void up_tidy(struct mxpc_s3_uploader *up)
{
    for (struct uptask **p = &up->tasks; *p;) {
        struct uptask *t = *p;
        if (t->r.state == REQ_DONE) {
            *p = t->next;
            s3_request_free(&t->r);
            mxpc_buf_free(&t->query);
            free(t->buf);
            free(t->bucket);
            free(t->key);
            free(t);
        } else {
            p = &t->next;
        }
    }
    for (struct upjob **p = &up->jobs; *p;) {
        struct upjob *j = *p;
        if (j->done) {
            *p = j->next;
            s3_request_free(&j->complete);
            mxpc_buf_free(&j->xml);
            mxpc_buf_free(&j->query);
            mxpc_buf_free(&j->enc_id);
            free(j->etags);
            free(j->bucket);
            free(j->key);
            free(j);
            continue;
        }
        if (!up->failed && j->all_read && !j->completing && j->parts_done == j->nparts) {
            j->completing = 1;
            const char *method = up->s3->dialect->complete(&j->query, &j->xml, j->upload_id, j->enc_id.data,
                                                           j->nparts, j->etags);
            j->complete = (struct request){.method = method,
                                           .bucket = j->bucket,
                                           .key = j->key,
                                           .query = j->query.data,
                                           .body = j->xml.data,
                                           .body_len = j->xml.len,
                                           .content_type = "application/xml",
                                           .if_none_match = up->no_overwrite ? "*" : NULL,
                                           .expected_size = -1,
                                           .on_done = complete_done,
                                           .owner = j};
            up->in_flight++;
            s3_request_begin(up->s3, &j->complete, 0);
        }
        p = &j->next;
    }
}

/* After the first failure: cancel what is in flight, abort every unfinished
 * multipart upload (even when interrupted: an unfinished upload is billed
 * storage). */
static void up_stop(struct mxpc_s3_uploader *up)
{
    if (up->stopped)
        return;
    up->stopped = 1;
    for (struct uptask *t = up->tasks; t; t = t->next)
        s3_request_cancel(up->s3, &t->r, "interrupted");
    for (struct upjob *j = up->jobs; j; j = j->next)
        if (j->completing)
            s3_request_cancel(up->s3, &j->complete, "interrupted");
    up->in_flight = 0;
    up->reserved = 0;
    up_tidy(up);
    int cleaning = mxpc_http_cleanup(up->s3->http, 1);
    for (struct upjob *j = up->jobs; j; j = j->next) {
        if (j->done)
            continue;
        struct mxpc_s3_error ae;
        char what[1200];
        s3_client_object_name(up->s3, what, sizeof what, j->bucket, j->key);
        int rc = up->s3->dialect->parts_abort(up->s3, j->bucket, j->key, j->upload_id, &ae);
        if (rc != 0 && j->completing && ae.http_status == 404)
            mxpc_log(MXPC_LOG_DEBUG, "the upload in parts of %s was completed before it could be aborted", what);
        else if (rc != 0)
            mxpc_log(MXPC_LOG_WARN, "could not abort the upload in parts %s of %s: %s", j->upload_id, what, ae.message);
        else
            mxpc_log(MXPC_LOG_DEBUG, "aborted the upload in parts of %s", what);
        j->done = 1;
    }
    mxpc_http_cleanup(up->s3->http, cleaning);
    up_tidy(up);
}

/* Moves the transfers along; -1 (e filled, everything stopped) once
 * something failed or a signal came. */
static int up_pump(struct mxpc_s3_uploader *up, int timeout_ms, struct mxpc_s3_error *e)
{
    mxpc_tick();
    if (!up->failed && mxpc_interrupted()) {
        struct mxpc_s3_error ie;
        s3_set_error(&ie, "interrupted", NULL, "interrupted: S3 uploads (%lld objects done)", (long long)up->objects);
        up_fail(up, &ie);
    }
    if (!up->failed && timeout_ms >= 0)
        s3_pump(up->s3, timeout_ms);
    up_tidy(up);
    if (up->failed) {
        up_stop(up);
        memcpy(e, &up->err, sizeof *e);
        return -1;
    }
    return 0;
}

/* Waits until `len` more bytes fit: the window (one part always goes) and
 * the concurrency. */
static int up_room(struct mxpc_s3_uploader *up, int64_t len, struct mxpc_s3_error *e)
{
    if (up_pump(up, -1, e) != 0)
        return -1;
    while (up->in_flight >= up->concurrency || (up->in_flight > 0 && up->reserved + len > up->window))
        if (up_pump(up, 100, e) != 0)
            return -1;
    return 0;
}

static struct uptask *up_send(struct mxpc_s3_uploader *up, const char *bucket, const char *key, char *buf,
                              size_t len, struct upjob *job, int64_t part)
{
    struct uptask *t = calloc(1, sizeof *t);
    if (!t)
        abort();
    t->up = up;
    t->buf = buf;
    t->len = len;
    t->job = job;
    t->part = part;
    if (job)
        up->s3->dialect->part_query(&t->query, job->upload_id, job->enc_id.data, part);
    t->r = (struct request){.method = "PUT",
                            .bucket = job ? job->bucket : bucket,
                            .key = job ? job->key : key,
                            .query = job ? t->query.data : NULL,
                            .body = buf,
                            .body_len = len,
                            .idempotent = 1,
                            .expected_size = -1,
                            .on_done = task_done,
                            .owner = t};
    if (!job) { /* the request keeps pointers: own copies of the names */
        t->bucket = mxpc_strdup(bucket);
        t->key = mxpc_strdup(key);
        t->r.bucket = t->bucket;
        t->r.key = t->key;
        t->r.if_none_match = up->no_overwrite ? "*" : NULL;
    }
    t->next = up->tasks;
    up->tasks = t;
    up->in_flight++;
    up->reserved += (int64_t)len;
    up->bytes += (int64_t)len;
    s3_request_begin(up->s3, &t->r, 1);
    return t;
}

/* Fails the uploader with e and stops everything; returns -1. */
static int up_abandon(struct mxpc_s3_uploader *up, struct mxpc_s3_error *e)
{
    up_fail(up, e);
    up_stop(up);
    return -1;
}

/* S3's steps of a multipart upload (s3_dialect_s3). */
int s3_multipart_begin(struct mxpc_s3 *s3, const char *bucket, const char *key, char *id, size_t idlen,
                       struct mxpc_s3_error *e)
{
    struct request r = {.method = "POST", .bucket = bucket, .key = key, .query = "uploads", .expected_size = -1};
    int rc = s3_execute(s3, &r, 0, e);
    id[0] = '\0';
    struct mxpc_xml_capture cap = {{"UploadId"}, {id}, {idlen}, NULL, NULL, NULL, 0};
    if (rc == 0 && (mxpc_xml_each(r.response.data, r.response.len, mxpc_xml_capture_element, &cap) != 0 || !id[0])) {
        char what[1024];
        s3_object_name(what, sizeof what, bucket, key);
        s3_set_error(e, "s3", NULL, "S3 did not return an upload id for %s", what);
        rc = -1;
    }
    s3_request_free(&r);
    return rc;
}

void s3_multipart_part_query(struct mxpc_buf *q, const char *id, const char *enc_id, int64_t part)
{
    (void)id;
    mxpc_buf_printf(q, "partNumber=%lld&uploadId=%s", (long long)part, enc_id);
}

const char *s3_multipart_complete(struct mxpc_buf *query, struct mxpc_buf *body, const char *id, const char *enc_id,
                                  int64_t nparts, char (*etags)[128])
{
    (void)id;
    mxpc_buf_puts(body, "<CompleteMultipartUpload>");
    for (int64_t n = 1; n <= nparts; n++)
        mxpc_buf_printf(body, "<Part><PartNumber>%lld</PartNumber><ETag>%s</ETag></Part>", (long long)n, etags[n - 1]);
    mxpc_buf_puts(body, "</CompleteMultipartUpload>");
    mxpc_buf_printf(query, "uploadId=%s", enc_id);
    return "POST";
}

/* Creates a multipart upload whose parts are then sent with job_part; it is
 * completed once all_read is set and its parts are in. NULL with e filled
 * (and the uploader stopped) on failure. */
static struct upjob *job_begin(struct mxpc_s3_uploader *up, const char *bucket, const char *key, const char *what,
                               struct mxpc_s3_error *e)
{
    /* Once S3 has made the upload, only its id in the answer lets us abort
     * it: a signal does not cut this short (the answer is small), and stops
     * everything right after (the next up_pump), aborting the upload. */
    int cleaning = mxpc_http_cleanup(up->s3->http, 1);
    struct upjob *j = calloc(1, sizeof *j);
    if (!j)
        abort();
    int rc = up->s3->dialect->parts_begin(up->s3, bucket, key, j->upload_id, sizeof j->upload_id, e);
    mxpc_http_cleanup(up->s3->http, cleaning);
    (void)what;
    if (rc != 0) {
        free(j);
        up_abandon(up, e);
        return NULL;
    }
    j->up = up;
    j->bucket = mxpc_strdup(bucket);
    j->key = mxpc_strdup(key);
    mxpc_sigv4_uri_encode(&j->enc_id, j->upload_id, strlen(j->upload_id), 0);
    j->next = up->jobs;
    up->jobs = j;
    return j;
}

/* Sends buf (malloc'ed, taken over) as the job's next part. */
static void job_part(struct mxpc_s3_uploader *up, struct upjob *j, char *buf, size_t len)
{
    if (j->nparts == j->cap) {
        int64_t cap = j->cap ? j->cap * 2 : 16;
        void *grown = realloc(j->etags, (size_t)cap * sizeof *j->etags);
        if (!grown)
            abort();
        j->etags = grown;
        j->cap = cap;
    }
    j->nparts++;
    up_send(up, NULL, NULL, buf, len, j, j->nparts);
}

struct mxpc_s3_uploader *mxpc_s3_uploader_new(struct mxpc_s3 *s3, const struct mxpc_s3_many_options *o)
{
    struct mxpc_s3_uploader *up = calloc(1, sizeof *up);
    if (!up)
        abort();
    up->s3 = s3;
    up->concurrency = o && o->concurrency > 0 ? o->concurrency : MXPC_S3_DEFAULT_CONCURRENCY;
    up->window = o && o->window > 0 ? o->window : MXPC_S3_DEFAULT_WINDOW;
    up->no_overwrite = o && o->no_overwrite;
    return up;
}

int mxpc_s3_uploader_put(struct mxpc_s3_uploader *up, const char *bucket, const char *key, int64_t size,
                         mxpc_s3_source_fn source, void *ud, struct mxpc_s3_error *e)
{
    s3_clear_error(e);
    if (s3_check_names(bucket, key, 1, e))
        return -1;
    char what[1024];
    s3_client_object_name(up->s3, what, sizeof what, bucket, key);
    if (size < 0) {
        s3_set_error(e, "usage", NULL, "upload of %s: negative size", what);
        return -1;
    }
    if (up->failed) {
        memcpy(e, &up->err, sizeof *e);
        return -1;
    }
    struct mxpc_s3 *s3 = up->s3;
    if (size <= s3->threshold) {
        if (up_room(up, size, e) != 0)
            return -1;
        char *buf = malloc(size ? (size_t)size : 1);
        if (!buf)
            abort();
        if (fill(source, ud, buf, (size_t)size, 0, size, what, e) != 0 ||
            check_source_end(source, ud, size, what, e) != 0) {
            free(buf);
            return up_abandon(up, e);
        }
        up_send(up, bucket, key, buf, (size_t)size, NULL, 0);
        return up_pump(up, 0, e);
    }

    int64_t part = s3->part_size;
    if ((size + part - 1) / part > MXPC_S3_MAX_PARTS)
        part = ((size / MXPC_S3_MAX_PARTS) / MXPC_S3_MIB + 1) * MXPC_S3_MIB;
    struct upjob *j = job_begin(up, bucket, key, what, e);
    if (!j)
        return -1;
    mxpc_log(MXPC_LOG_DEBUG, "s3 multipart upload of %s: %lld parts of %lld bytes", what,
             (long long)((size + part - 1) / part), (long long)part);
    int64_t done = 0;
    while (done < size) {
        size_t len = (size_t)(size - done < part ? size - done : part);
        if (up_room(up, (int64_t)len, e) != 0)
            return -1;
        char *buf = malloc(len);
        if (!buf)
            abort();
        if (fill(source, ud, buf, len, done, size, what, e) != 0) {
            free(buf);
            return up_abandon(up, e);
        }
        job_part(up, j, buf, len);
        done += (int64_t)len;
    }
    if (check_source_end(source, ud, size, what, e) != 0)
        return up_abandon(up, e);
    j->all_read = 1;
    return up_pump(up, 0, e);
}

int mxpc_s3_uploader_finish(struct mxpc_s3_uploader *up, struct mxpc_s3_error *e)
{
    s3_clear_error(e);
    for (;;) {
        if (up_pump(up, up->in_flight > 0 ? 100 : 0, e) != 0)
            return -1;
        if (up->in_flight == 0 && !up->jobs)
            return 0;
    }
}

void mxpc_s3_uploader_stats(const struct mxpc_s3_uploader *up, int64_t *objects, int64_t *bytes)
{
    *objects = up->objects;
    *bytes = up->bytes;
}

void mxpc_s3_uploader_free(struct mxpc_s3_uploader *up)
{
    if (!up)
        return;
    up->failed = 1;
    up_stop(up);
    free(up);
}

/* The object an uploader finished last: its size and ETag. */
static void uploaded_object(struct mxpc_s3_uploader *up, const char *bucket, const char *key, int64_t size,
                            struct mxpc_s3_object *out)
{
    out->size = size;
    snprintf(out->etag, sizeof out->etag, "%s", up->last_etag);
    struct mxpc_s3_object o;
    struct mxpc_s3_error he;
    /* RGW 16 answers a multipart completion with an empty ETag; HEAD has the right one */
    if (!out->etag[0] && mxpc_s3_head(up->s3, bucket, key, &o, &he) == 0)
        snprintf(out->etag, sizeof out->etag, "%s", o.etag);
}

/* One object: the uploader above with one part in memory at a time. */
int mxpc_s3_put(struct mxpc_s3 *s3, const char *bucket, const char *key, int64_t size, mxpc_s3_source_fn source,
                void *ud, struct mxpc_s3_object *out, struct mxpc_s3_error *e)
{
    struct mxpc_s3_many_options o = {1, s3->part_size, NULL, NULL, 0};
    struct mxpc_s3_uploader *up = mxpc_s3_uploader_new(s3, &o);
    int rc = mxpc_s3_uploader_put(up, bucket, key, size, source, ud, e);
    if (rc == 0)
        rc = mxpc_s3_uploader_finish(up, e);
    if (rc == 0 && out)
        uploaded_object(up, bucket, key, size, out);
    mxpc_s3_uploader_free(up);
    return rc;
}

/* --- uploads of unknown length ------------------------------------------------------
 *
 * The bytes are gathered into a part; a full part goes to an uploader (one
 * multipart upload, its parts in parallel as the options allow) and the next
 * part is gathered meanwhile. An object that never fills a part is one PUT
 * at commit. */

struct mxpc_s3_upload {
    struct mxpc_s3_uploader *up;
    char *bucket, *key;
    char what[1024];
    struct upjob *job; /* NULL until the first part is full */
    char *buf;
    size_t len, part; /* bytes gathered, size of the part being gathered */
    int64_t size;
    int state;    /* 0 open, 1 committed, 2 failed or aborted */
    int prepared; /* every part is in: only the commit is left */
};

struct mxpc_s3_upload *mxpc_s3_upload_begin(struct mxpc_s3 *s3, const char *bucket, const char *key,
                                            const struct mxpc_s3_many_options *o, struct mxpc_s3_error *e)
{
    if (s3_check_names(bucket, key, 1, e))
        return NULL;
    struct mxpc_s3_many_options dflt = {MXPC_S3_UPLOAD_CONCURRENCY, MXPC_S3_UPLOAD_CONCURRENCY * s3->part_size, NULL, NULL, 0};
    struct mxpc_s3_upload *u = calloc(1, sizeof *u);
    if (!u)
        abort();
    u->up = mxpc_s3_uploader_new(s3, o ? o : &dflt);
    u->bucket = mxpc_strdup(bucket);
    u->key = mxpc_strdup(key);
    s3_client_object_name(s3, u->what, sizeof u->what, bucket, key);
    u->part = (size_t)s3->part_size;
    u->buf = malloc(u->part);
    if (!u->buf)
        abort();
    return u;
}

/* The part size grows as the upload does, so that S3's 10000 parts hold
 * (2000 parts each of 1x, 2x, 4x, 8x and 16x the part size) about 1 TiB
 * with the default 16 MiB. */
static size_t upload_part_size(const struct mxpc_s3_upload *u)
{
    int64_t parts = u->job ? u->job->nparts : 0;
    int64_t part = u->up->s3->part_size << (parts / (MXPC_S3_MAX_PARTS / 5));
    return (size_t)(part > MXPC_S3_MAX_PART_SIZE ? MXPC_S3_MAX_PART_SIZE : part);
}

/* The upload cannot go on: the uploader has stopped everything (the
 * multipart upload is aborted). */
static int upload_failed(struct mxpc_s3_upload *u, struct mxpc_s3_error *e)
{
    if (!u->up->failed)
        up_abandon(u->up, e);
    else
        memcpy(e, &u->up->err, sizeof *e);
    u->state = 2;
    return -1;
}

/* Sends the full part (beginning the multipart upload first). */
static int upload_flush(struct mxpc_s3_upload *u, struct mxpc_s3_error *e)
{
    if (!u->job) {
        u->job = job_begin(u->up, u->bucket, u->key, u->what, e);
        if (!u->job)
            return upload_failed(u, e);
        mxpc_log(MXPC_LOG_DEBUG, "s3 multipart upload of %s begun", u->what);
    }
    if (u->job->nparts >= MXPC_S3_MAX_PARTS) {
        s3_set_error(e, "size", NULL, "upload of %s: more than %d parts", u->what, MXPC_S3_MAX_PARTS);
        return upload_failed(u, e);
    }
    if (up_room(u->up, (int64_t)u->len, e) != 0)
        return upload_failed(u, e);
    job_part(u->up, u->job, u->buf, u->len);
    u->part = upload_part_size(u);
    u->len = 0;
    u->buf = malloc(u->part);
    if (!u->buf)
        abort();
    return 0;
}

static int upload_usable(struct mxpc_s3_upload *u, struct mxpc_s3_error *e)
{
    s3_clear_error(e);
    if (u->state == 0)
        return 0;
    if (u->state == 2 && u->up->failed)
        memcpy(e, &u->up->err, sizeof *e);
    else
        s3_set_error(e, "usage", NULL, "upload of %s: already %s", u->what, u->state == 1 ? "committed" : "aborted");
    return -1;
}

int mxpc_s3_upload_write(struct mxpc_s3_upload *u, const void *data, size_t len, struct mxpc_s3_error *e)
{
    if (upload_usable(u, e) != 0)
        return -1;
    if (u->prepared && len > 0) {
        s3_set_error(e, "usage", NULL, "upload of %s: its parts are all sent, only the commit is left", u->what);
        return -1;
    }
    /* the parts in flight move on while the next one is gathered; a failure
     * or a signal stops the upload here */
    if (up_pump(u->up, u->up->in_flight > 0 ? 0 : -1, e) != 0)
        return upload_failed(u, e);
    const char *p = data;
    while (len > 0) {
        size_t n = u->part - u->len < len ? u->part - u->len : len;
        memcpy(u->buf + u->len, p, n);
        u->len += n;
        u->size += (int64_t)n;
        p += n;
        len -= n;
        if (u->len == u->part && upload_flush(u, e) != 0)
            return -1;
    }
    return 0;
}

/* Sends the bytes gathered: the object's one PUT when all of it fits one
 * part (no multipart upload), else the last part (if any is left). */
static int upload_send_rest(struct mxpc_s3_upload *u, struct mxpc_s3_error *e)
{
    if (!u->job || u->len > 0) {
        if (up_room(u->up, (int64_t)u->len, e) != 0)
            return upload_failed(u, e);
        if (u->job)
            job_part(u->up, u->job, u->buf, u->len);
        else
            up_send(u->up, u->bucket, u->key, u->buf, u->len, NULL, 0);
    } else {
        free(u->buf);
    }
    u->buf = NULL;
    u->len = 0;
    return 0;
}

int mxpc_s3_upload_prepare_commit(struct mxpc_s3_upload *u, struct mxpc_s3_error *e)
{
    if (upload_usable(u, e) != 0)
        return -1;
    if (up_pump(u->up, -1, e) != 0)
        return upload_failed(u, e);
    if (!u->job || u->prepared) /* an object of one part: its PUT is the commit */
        return 0;
    if (upload_send_rest(u, e) != 0)
        return -1;
    u->prepared = 1;
    while (u->job->parts_done < u->job->nparts)
        if (up_pump(u->up, 100, e) != 0)
            return upload_failed(u, e);
    return 0;
}

int mxpc_s3_upload_commit(struct mxpc_s3_upload *u, struct mxpc_s3_object *out, struct mxpc_s3_error *e)
{
    if (upload_usable(u, e) != 0)
        return -1;
    if (up_pump(u->up, -1, e) != 0)
        return upload_failed(u, e);
    if (upload_send_rest(u, e) != 0)
        return -1;
    if (u->job)
        u->job->all_read = 1;
    if (mxpc_s3_uploader_finish(u->up, e) != 0)
        return upload_failed(u, e);
    u->state = 1;
    if (out)
        uploaded_object(u->up, u->bucket, u->key, u->size, out);
    return 0;
}

int64_t mxpc_s3_upload_size(const struct mxpc_s3_upload *u)
{
    return u->size;
}

void mxpc_s3_upload_free(struct mxpc_s3_upload *u)
{
    if (!u)
        return;
    mxpc_s3_uploader_free(u->up); /* aborts what was not completed */
    free(u->bucket);
    free(u->key);
    free(u->buf);
    free(u);
}
