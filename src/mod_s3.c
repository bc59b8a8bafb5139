/* Lua module mxpc.s3: s3.client (its handle and single requests are in
 * mod_s3_client.c), many requests at once (c:head_many, c:get_many into an
 * archive) and the uploaders (c:uploader, c:upload). The AWS functions
 * (credentials, RDS token, SigV4) are mxpc.aws's (mod_aws.c), kept here
 * under their old names too. See src/mod_s3.h and docs/s3.md. */
#include <errno.h>
#include <stdarg.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <lauxlib.h>

#include "mxpc/archive.h"
#include "mxpc/atomic_file.h"
#include "mxpc/aws.h"
#include "mxpc/buf.h"
#include "mxpc/error.h"
#include "mxpc/fileset.h"
#include "mxpc/log.h"
#include "mxpc/lua_args.h"
#include "mxpc/lua_callback.h"
#include "mxpc/modules.h"
#include "mxpc/runtime.h"
#include "mxpc/s3.h"
#include "mxpc/sigv4.h"

#include "mod_s3.h"

/* --- many objects at once ------------------------------------------------------ */

struct luploader {
    struct mxpc_s3_uploader *up;
    struct client *c;
};


struct many_ctx {
    lua_State *L;
    int items;                  /* stack index of the items table or fileset */
    struct mxpc_fileset *files; /* the items are a fileset */
    const char *bucket;
    int key_fn, name_fn; /* for a fileset: stack indexes of the functions uuid -> key, uuid -> entry name */
    int on_item;         /* stack index of the function, or 0 */
    int ready;           /* stack index of the function, or 0 */
    int ready_done;
    int head;
    int copy; /* copy_many */
    struct mxpc_s3_copy_options copy_o;
    struct mxpc_s3 *up_client; /* the uploader's, pumped while the GETs run */
    struct mxpc_archive_writer *w;
    long long mtime;
    /* get_many into an uploader (of another client), and copy_many: the
     * target's bucket and the function uuid -> its key (a list's items
     * have the field to_key) */
    struct mxpc_s3_uploader *up;
    const char *to_bucket;
    int to_key_fn;
    struct mxpc_buf key; /* the key get_item gave last */
    struct mxpc_buf to_key; /* the target's key, of the item given last */
    char misuse[256];    /* raised once the requests are stopped */
    struct mxpc_callback_failure failure;
};

/* Misuse found while the requests run, about item `item`: stops them (e),
 * raised after. */
static void set_usage_error(struct many_ctx *x, struct mxpc_s3_error *e, int item, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void set_usage_error(struct many_ctx *x, struct mxpc_s3_error *e, int item, const char *fmt, ...)
{
    int n = snprintf(x->misuse, sizeof x->misuse, "item %d: ", item);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(x->misuse + n, sizeof x->misuse - (size_t)n, fmt, ap);
    va_end(ap);
    s3lua_copy_error(e, "usage", x->misuse);
}

/* Calls the function below its nargs arguments, leaving its one result on
 * the stack: 0, or -1 if it raised (e filled; the error is kept in the
 * failure, raised again once the requests are stopped). */
static int call_kept(struct many_ctx *x, int nargs, struct mxpc_s3_error *e)
{
    lua_State *L = x->L;
    if (lua_pcall(L, nargs, 1, 0) != LUA_OK) {
        mxpc_error_normalize(L, -1);
        const char *msg = mxpc_error_field(L, -1, "message");
        s3lua_copy_error(e, "io", msg ? msg : "error in a callback");
        luaL_unref(L, LUA_REGISTRYINDEX, x->failure.raised_ref);
        x->failure.raised_ref = luaL_ref(L, LUA_REGISTRYINDEX);
        return -1;
    }
    return 0;
}

/* As call_kept, and returns the result's truth (0 or 1), or -1. */
static int call_protected(struct many_ctx *x, int nargs, struct mxpc_s3_error *e)
{
    if (call_kept(x, nargs, e) != 0)
        return -1;
    int yes = lua_toboolean(x->L, -1);
    lua_pop(x->L, 1);
    return yes;
}

/* The item of f as on_item gets it: the items table's own, or for a
 * fileset {index =, uuid =, key =, size =} */
static void push_item(struct many_ctx *x, const struct mxpc_s3_fetched *f)
{
    lua_State *L = x->L;
    if (!x->files) {
        lua_rawgeti(L, x->items, (lua_Integer)f->index + 1);
        return;
    }
    char uuid[MXPC_UUID_LEN + 1];
    mxpc_fileset_uuid(x->files, f->index, uuid);
    int64_t size = mxpc_fileset_size(x->files, f->index);
    lua_createtable(L, 0, 4);
    lua_pushinteger(L, (lua_Integer)f->index + 1);
    lua_setfield(L, -2, "index");
    lua_pushstring(L, uuid);
    lua_setfield(L, -2, "uuid");
    lua_pushstring(L, f->key);
    lua_setfield(L, -2, "key");
    if (size >= 0) {
        lua_pushinteger(L, size);
        lua_setfield(L, -2, "size");
    }
}

/* on_item(item, result | nil, err) */
static int call_on_item(struct many_ctx *x, const struct mxpc_s3_fetched *f, struct mxpc_s3_error *e)
{
    lua_State *L = x->L;
    lua_pushvalue(L, x->on_item);
    push_item(x, f);
    if (f->failed) {
        lua_pushnil(L);
        s3lua_push_error_object(L, &f->err);
    } else {
        lua_createtable(L, 0, 2);
        lua_pushinteger(L, f->size);
        lua_setfield(L, -2, "size");
        lua_pushstring(L, f->etag);
        lua_setfield(L, -2, "etag");
        lua_pushnil(L);
    }
    return call_protected(x, 3, e);
}

/* Replaces the table on top of the stack by its field `name`, read raw: no
 * metamethod runs (and so none can raise) inside the transfer loop. */
static void raw_field(lua_State *L, const char *name)
{
    lua_pushstring(L, name);
    lua_rawget(L, -2);
    lua_remove(L, -2);
}

/* Pushes the string field `field` of item i of the items table, or the
 * result of fn(uuid) for a fileset; 0, or -1 with e filled (a callback
 * raised, or the value is not a string). */
static int push_item_string(struct many_ctx *x, size_t i, const char *field, int fn, struct mxpc_s3_error *e)
{
    lua_State *L = x->L;
    if (x->files) {
        char uuid[MXPC_UUID_LEN + 1];
        mxpc_fileset_uuid(x->files, i, uuid);
        lua_pushvalue(L, fn);
        lua_pushstring(L, uuid);
        if (call_kept(x, 1, e) != 0)
            return -1;
    } else if (lua_rawgeti(L, x->items, (lua_Integer)i + 1) != LUA_TTABLE) {
        lua_pop(L, 1);
        set_usage_error(x, e, (int)i + 1, "not a table");
        return -1;
    } else {
        raw_field(L, field);
    }
    int t = lua_type(L, -1);
    if (t != LUA_TSTRING && t != LUA_TNUMBER) {
        lua_pop(L, 1);
        set_usage_error(x, e, (int)i + 1, x->files ? "the %s function did not return a string" : "no %s", field);
        return -1;
    }
    lua_tostring(L, -1); /* a number becomes its text in the stack slot, which holds it until popped */
    return 0;
}

/* mxpc_s3_items.get: item i from the items table or the fileset */
static int get_item(void *ud, size_t i, struct mxpc_s3_item *it, struct mxpc_s3_error *e)
{
    struct many_ctx *x = ud;
    lua_State *L = x->L;
    if (push_item_string(x, i, "key", x->key_fn, e) != 0)
        return -1;
    it->bucket = x->bucket;
    x->key.len = 0;
    mxpc_buf_puts(&x->key, lua_tostring(L, -1));
    it->key = x->key.data;
    lua_pop(L, 1);
    if (x->files) {
        it->size = mxpc_fileset_size(x->files, i);
    } else {
        lua_rawgeti(L, x->items, (lua_Integer)i + 1);
        raw_field(L, "size");
        int isnum;
        lua_Integer size = lua_tointegerx(L, -1, &isnum);
        int absent = lua_isnil(L, -1);
        lua_pop(L, 1);
        if (!absent && (!isnum || size < 0)) {
            set_usage_error(x, e, (int)i + 1, "size must be a non-negative integer");
            return -1;
        }
        it->size = absent ? -1 : size;
    }
    return 0;
}

/* Copies a finished GET into the archive as one entry. */
static int write_entry(struct many_ctx *x, const struct mxpc_s3_fetched *f, struct mxpc_s3_error *e)
{
    if (push_item_string(x, f->index, "name", x->name_fn, e) != 0)
        return -1;
    /* the name stays on the stack (alive) until the writer has copied it */
    int rc = mxpc_archive_writer_begin_entry(x->w, lua_tostring(x->L, -1), f->size, (time_t)x->mtime);
    lua_pop(x->L, 1);
    if (rc == MXPC_ARCHIVE_OK && f->data) {
        rc = mxpc_archive_writer_write(x->w, f->data, (size_t)f->size);
    } else if (rc == MXPC_ARCHIVE_OK) {
        char *buf = malloc(FILE_CHUNK);
        if (!buf)
            abort();
        for (;;) {
            ssize_t n = read(f->fd, buf, FILE_CHUNK);
            if (n < 0 && errno == EINTR && !mxpc_interrupted())
                continue;
            if (n < 0) {
                free(buf);
                s3lua_copy_error(e, "io", "cannot read back a downloaded file from the working directory");
                return -1;
            }
            if (n == 0)
                break;
            rc = mxpc_archive_writer_write(x->w, buf, (size_t)n);
            if (rc != MXPC_ARCHIVE_OK)
                break;
        }
        free(buf);
    }
    if (rc == MXPC_ARCHIVE_OK)
        rc = mxpc_archive_writer_end_entry(x->w);
    if (rc != MXPC_ARCHIVE_OK) {
        /* a writer with a Lua sink (standard output, an S3 upload) fails
         * when a signal interrupts the sink: that is an interruption too */
        s3lua_copy_error(e, rc == MXPC_ARCHIVE_EINTERRUPTED || mxpc_interrupted() ? "interrupted" : "io",
                   mxpc_archive_writer_error(x->w));
        return -1;
    }
    return 0;
}

/* The target's key of item i into x->to_key: 0, or -1 with e filled. */
static int get_to_key(struct many_ctx *x, size_t i, struct mxpc_s3_error *e)
{
    if (push_item_string(x, i, "to_key", x->to_key_fn, e) != 0)
        return -1;
    x->to_key.len = 0;
    mxpc_buf_puts(&x->to_key, lua_tostring(x->L, -1));
    lua_pop(x->L, 1);
    return 0;
}

static ssize_t fd_source(void *ud, void *buf, size_t cap, char *err, size_t errlen)
{
    int fd = *(int *)ud;
    for (;;) {
        ssize_t n = read(fd, buf, cap);
        if (n < 0 && errno == EINTR && !mxpc_interrupted())
            continue;
        if (n < 0)
            snprintf(err, errlen, "cannot read back a downloaded file: %s", strerror(errno));
        return n;
    }
}

/* Hands a finished GET to the uploader, under the target's key: its bytes
 * are copied into the uploader's window, so the item is released after. */
static int put_object(struct many_ctx *x, const struct mxpc_s3_fetched *f, struct mxpc_s3_error *e)
{
    if (get_to_key(x, f->index, e) != 0)
        return -1;
    if (f->data) {
        struct s3lua_mem_source m = {f->data, (size_t)f->size, 0};
        return mxpc_s3_uploader_put(x->up, x->to_bucket, x->to_key.data, f->size, s3lua_mem_source, &m, e);
    }
    int fd = f->fd;
    return mxpc_s3_uploader_put(x->up, x->to_bucket, x->to_key.data, f->size, fd_source, &fd, e);
}

/* mxpc_s3_copy_items.get: the source of item i as get_item gives it, the
 * target from to_bucket and to_key */
static int get_copy_item(void *ud, size_t i, struct mxpc_s3_copy_item *it, struct mxpc_s3_error *e)
{
    struct many_ctx *x = ud;
    struct mxpc_s3_item src = {NULL, NULL, -1};
    if (get_item(x, i, &src, e) != 0 || get_to_key(x, i, e) != 0)
        return -1;
    *it = (struct mxpc_s3_copy_item){src.bucket, src.key, x->to_bucket, x->to_key.data, src.size};
    return 0;
}

/* ready(must): may the entries be written now? */
static int call_ready(struct many_ctx *x, int must, struct mxpc_s3_error *e)
{
    lua_pushvalue(x->L, x->ready);
    lua_pushboolean(x->L, must);
    return call_protected(x, 1, e);
}

static int many_item(void *ud, const struct mxpc_s3_fetched *f, int must, struct mxpc_s3_error *e)
{
    struct many_ctx *x = ud;
    if (f->failed) {
        if (strcmp(f->err.code, "interrupted") == 0 || !x->on_item) {
            memcpy(e, &f->err, sizeof *e);
            return -1;
        }
        int skip = call_on_item(x, f, e);
        if (skip == 0)
            memcpy(e, &f->err, sizeof *e);
        return skip == 1 ? 0 : -1;
    }
    if (x->w) {
        if (!x->ready_done && x->ready) {
            int ready = call_ready(x, must, e);
            if (ready < 0)
                return -1;
            if (!ready && !must)
                return 1;
            if (!ready) {
                s3lua_copy_error(e, "usage", "ready() said no when nothing else was left to wait for");
                return -1;
            }
        }
        x->ready_done = 1;
        if (write_entry(x, f, e) != 0)
            return -1;
    }
    if (x->up && put_object(x, f, e) != 0)
        return -1;
    if (x->on_item && call_on_item(x, f, e) < 0)
        return -1;
    return 0;
}

/* The common part of head_many and get_many: items (a table or a fileset)
 * at 3, opts at opts_idx. */
static int run_many(lua_State *L, struct client *c, struct many_ctx *x, int opts_idx)
{
    x->bucket = s3lua_opt_bucket(L, 2);
    int keep = mxpc_args_keep(L); /* strings of options given as numbers stay alive */
    struct mxpc_s3_many_options o = {MXPC_S3_DEFAULT_CONCURRENCY, MXPC_S3_DEFAULT_WINDOW, NULL, NULL, 0};
    x->L = L;
    x->items = 3;
    x->failure = (struct mxpc_callback_failure)MXPC_CALLBACK_FAILURE_INIT;
    if (mxpc_lua_is_fileset(L, 3))
        x->files = mxpc_lua_fileset(L, 3);
    else
        luaL_checktype(L, 3, LUA_TTABLE);
    if (!lua_isnoneornil(L, opts_idx)) {
        luaL_checktype(L, opts_idx, LUA_TTABLE);
        o.concurrency = (int)mxpc_args_opt_integer(L, opts_idx, "concurrency", MXPC_S3_DEFAULT_CONCURRENCY);
        luaL_argcheck(L, o.concurrency >= 1 && o.concurrency <= 256, opts_idx, "concurrency must be 1..256");
        o.window = mxpc_args_opt_integer(L, opts_idx, "window", MXPC_S3_DEFAULT_WINDOW);
        luaL_argcheck(L, o.window >= 0, opts_idx, "window must not be negative");
        o.spill_dir = mxpc_args_opt_string(L, opts_idx, "spill_dir", keep);
        const char *fns[] = {"on_item", "ready", "key", "name", "to_key"};
        int *at[] = {&x->on_item, &x->ready, &x->key_fn, &x->name_fn, &x->to_key_fn};
        x->to_bucket = mxpc_args_opt_string(L, opts_idx, "to_bucket", keep);
        if (x->copy) {
            x->copy_o.concurrency = o.concurrency;
            x->copy_o.part_threshold = mxpc_args_opt_integer(L, opts_idx, "part_threshold", 0);
            x->copy_o.part_size = mxpc_args_opt_integer(L, opts_idx, "part_size", 0);
            x->copy_o.source_url = mxpc_args_opt_string(L, opts_idx, "source_url", keep);
            x->copy_o.source_query = mxpc_args_opt_string(L, opts_idx, "source_query", keep);
            luaL_argcheck(L, x->copy_o.part_threshold >= 0 && x->copy_o.part_size >= 0, opts_idx,
                          "part_threshold and part_size must not be negative");
        }
        for (int k = 0; k < 5; k++) {
            if (lua_getfield(L, opts_idx, fns[k]) != LUA_TNIL) {
                if (lua_type(L, -1) != LUA_TFUNCTION)
                    return luaL_error(L, "option '%s' must be a function", fns[k]);
                *at[k] = lua_gettop(L);
            } else {
                lua_pop(L, 1);
            }
        }
    }
    if (x->files && !x->key_fn)
        return luaL_error(L, "a fileset needs the option 'key': a function uuid -> the object's key");
    if (x->files && x->w && !x->name_fn)
        return luaL_error(L, "a fileset needs the option 'name': a function uuid -> the archive entry's name");
    if ((x->up || x->copy) && (!x->to_bucket || (x->files && !x->to_key_fn)))
        return luaL_error(L, "copying needs the option 'to_bucket' (and for a fileset 'to_key': a function uuid -> "
                             "the target's key)");
    size_t n = x->files ? mxpc_fileset_count(x->files) : (size_t)luaL_len(L, 3);
    struct mxpc_s3_items items = {n, get_item, x};
    struct mxpc_s3_error e;
    int rc;
    if (x->copy) {
        struct mxpc_s3_copy_items copies = {n, get_copy_item, x};
        rc = mxpc_s3_copy_many(c->s3, &copies, &x->copy_o, many_item, x, &e);
    } else {
        o.also = x->up ? x->up_client : NULL;
        rc = mxpc_s3_many(c->s3, x->head, &items, &o, many_item, x, &e);
    }
    mxpc_buf_free(&x->key);
    mxpc_buf_free(&x->to_key);
    mxpc_callback_reraise(L, &x->failure);
    if (x->misuse[0])
        return luaL_error(L, "%s", x->misuse);
    if (rc != 0)
        return s3lua_push_error(L, &e);
    lua_pushboolean(L, 1);
    return 1;
}

/* c:head_many(bucket, items, {concurrency=, on_item=}) -> true | nil, err
 * items: {{key=, ...}, ...}; on_item(item, {size=, etag=} | nil, err) is
 * called as each HEAD finishes; for a failed one it returns true to go on. */
static int s3lua_head_many(lua_State *L)
{
    struct client *c = s3lua_check_client(L);
    struct many_ctx x = {0};
    x.head = 1;
    return run_many(L, c, &x, 4);
}

/* c:get_many(bucket, items, writer, {concurrency=, window=, spill_dir=,
 * on_item=, ready=}) -> true | nil, err
 * Each object becomes the archive entry item.name (of item.size bytes) as
 * its GET finishes; see docs/s3.md. */
static int s3lua_get_many(lua_State *L)
{
    struct client *c = s3lua_check_client(L);
    struct many_ctx x = {0};
    struct luploader *u = luaL_testudata(L, 4, UPLOADER_META);
    if (u) {
        luaL_argcheck(L, u->up != NULL, 4, "the uploader is closed");
        x.up = u->up;
        x.up_client = u->c->s3;
    } else {
        x.w = mxpc_lua_archive_writer(L, 4, &x.mtime);
    }
    return run_many(L, c, &x, 5);
}

/* c:copy_many(bucket, items, {to_bucket=, to_key=, key=, concurrency=,
 * part_threshold=, part_size=, on_item=}) -> true | nil, err
 * Server-side copies (CopyObject; UploadPartCopy parts above
 * part_threshold) of the items of `bucket` into to_bucket, with this
 * client's credentials; see docs/s3.md. */
static int s3lua_copy_many(lua_State *L)
{
    struct client *c = s3lua_check_client(L);
    struct many_ctx x = {0};
    x.copy = 1;
    return run_many(L, c, &x, 4);
}

/* --- uploads, many at once -------------------------------------------------------- */

static struct luploader *check_uploader(lua_State *L)
{
    struct luploader *u = luaL_checkudata(L, 1, UPLOADER_META);
    if (!u->up)
        luaL_error(L, "attempt to use a closed S3 uploader");
    return u;
}

/* {concurrency=, window=, no_overwrite=} at idx (optional) into o, which holds the defaults. */
static void upload_options(lua_State *L, int idx, struct mxpc_s3_many_options *o)
{
    if (lua_isnoneornil(L, idx))
        return;
    luaL_checktype(L, idx, LUA_TTABLE);
    o->concurrency = (int)mxpc_args_opt_integer(L, idx, "concurrency", o->concurrency);
    luaL_argcheck(L, o->concurrency >= 1 && o->concurrency <= 256, idx, "concurrency must be 1..256");
    o->window = mxpc_args_opt_integer(L, idx, "window", o->window);
    luaL_argcheck(L, o->window >= 1, idx, "window must be positive");
    o->no_overwrite = mxpc_args_opt_bool(L, idx, "no_overwrite", o->no_overwrite);
}

/* c:uploader{concurrency=, window=} -> uploader (keeps the client alive) */
static int s3lua_uploader(lua_State *L)
{
    struct client *c = s3lua_check_client(L);
    struct mxpc_s3_many_options o = {MXPC_S3_DEFAULT_CONCURRENCY, MXPC_S3_DEFAULT_WINDOW, NULL, NULL, 0};
    upload_options(L, 2, &o);
    struct luploader *u = lua_newuserdatauv(L, sizeof *u, 1);
    u->up = NULL;
    u->c = c;
    luaL_setmetatable(L, UPLOADER_META);
    lua_pushvalue(L, 1);
    lua_setiuservalue(L, -2, 1);
    u->up = mxpc_s3_uploader_new(c->s3, &o);
    c->uploads++;
    return 1;
}

static ssize_t entry_source(void *ud, void *buf, size_t cap, char *err, size_t errlen)
{
    struct mxpc_archive_reader *r = ud;
    ssize_t n = mxpc_archive_reader_read(r, buf, cap);
    if (n < 0) {
        snprintf(err, errlen, "%s", mxpc_archive_reader_error(r));
        return -1;
    }
    return n;
}

struct path_source {
    int fd;
    const char *path;
};

static ssize_t path_source(void *ud, void *buf, size_t cap, char *err, size_t errlen)
{
    const struct path_source *ps = ud;
    for (;;) {
        ssize_t n = read(ps->fd, buf, cap);
        if (n < 0 && errno == EINTR && !mxpc_interrupted())
            continue;
        if (n < 0)
            snprintf(err, errlen, "cannot read %s: %s", ps->path, strerror(errno));
        return n;
    }
}

/* Opens the regular file of the {path = file} source at idx, leaving its
 * path on the stack (popped by the caller after the put): 0, or pushes nil,
 * err and returns 2. */
static int open_path_source(lua_State *L, int idx, struct path_source *ps, int64_t *size)
{
    luaL_argcheck(L, lua_getfield(L, idx, "path") == LUA_TSTRING, idx, "a table source needs its path (a string)");
    ps->path = lua_tostring(L, -1);
    struct stat st;
    ps->fd = open(ps->path, O_RDONLY | O_CLOEXEC | O_NONBLOCK); /* (a FIFO must not block here) */
    int err = ps->fd < 0 || fstat(ps->fd, &st) != 0 ? errno : !S_ISREG(st.st_mode) ? EINVAL : 0;
    if (err) {
        if (ps->fd >= 0)
            close(ps->fd);
        const char *code = err == ENOENT ? "not_found" : err == EACCES || err == EPERM ? "permission" : "io";
        return mxpc_error_fail(L, code, NULL, "cannot read %s: %s", ps->path,
                               err == EINVAL ? "not a regular file" : strerror(err));
    }
    *size = (int64_t)st.st_size;
    return 0;
}

/* up:put(bucket, key, source [, size]) -> true | nil, err
 * source: an archive entry (read in C; size = the entry's), {path = file}, a
 * string, or a function returning chunks (size required). Returns once the
 * object is on its way (the source read); an error may also be one of an
 * earlier object. */
static int u_put(lua_State *L)
{
    struct luploader *u = check_uploader(L);
    const char *bucket = s3lua_opt_bucket(L, 2), *key = luaL_checkstring(L, 3);
    struct mxpc_s3_error e;
    int rc;
    if (mxpc_lua_is_archive_entry(L, 4)) {
        struct mxpc_archive_reader *r = mxpc_lua_archive_entry(L, 4);
        lua_getfield(L, 4, "size");
        lua_Integer size = luaL_optinteger(L, 5, lua_tointeger(L, -1));
        lua_pop(L, 1);
        rc = mxpc_s3_uploader_put(u->up, bucket, key, size, entry_source, r, &e);
    } else if (lua_type(L, 4) == LUA_TTABLE) {
        struct path_source ps = {-1, NULL};
        int64_t size = 0;
        int n = open_path_source(L, 4, &ps, &size);
        if (n)
            return n;
        rc = mxpc_s3_uploader_put(u->up, bucket, key, size, path_source, &ps, &e);
        close(ps.fd);
        lua_pop(L, 1); /* the path */
    } else if (lua_type(L, 4) == LUA_TSTRING) {
        struct s3lua_mem_source m = {NULL, 0, 0};
        m.data = lua_tolstring(L, 4, &m.len);
        rc = mxpc_s3_uploader_put(u->up, bucket, key, (int64_t)m.len, s3lua_mem_source, &m, &e);
    } else {
        luaL_checktype(L, 4, LUA_TFUNCTION);
        lua_Integer size = luaL_checkinteger(L, 5);
        luaL_argcheck(L, size >= 0, 5, "size must not be negative");
        struct s3lua_cb cb = {L, 4, MXPC_CALLBACK_FAILURE_INIT, LUA_NOREF, NULL, 0, 0};
        rc = mxpc_s3_uploader_put(u->up, bucket, key, size, s3lua_source, &cb, &e);
        int n = s3lua_cb_finish(&cb, rc, &e);
        if (n)
            return n;
    }
    return s3lua_result_true(L, rc, &e);
}

/* up:finish() -> true | nil, err: waits for every upload */
static int u_finish(lua_State *L)
{
    struct luploader *u = check_uploader(L);
    struct mxpc_s3_error e;
    return s3lua_result_true(L, mxpc_s3_uploader_finish(u->up, &e), &e);
}

/* up:stats() -> {objects =, bytes =} (objects finished, bytes sent off) */
static int u_stats(lua_State *L)
{
    struct luploader *u = check_uploader(L);
    int64_t objects, bytes;
    mxpc_s3_uploader_stats(u->up, &objects, &bytes);
    lua_createtable(L, 0, 2);
    lua_pushinteger(L, objects);
    lua_setfield(L, -2, "objects");
    lua_pushinteger(L, bytes);
    lua_setfield(L, -2, "bytes");
    return 1;
}

/* Cancels what is in flight and aborts unfinished multipart uploads. */
static int u_close(lua_State *L)
{
    struct luploader *u = luaL_checkudata(L, 1, UPLOADER_META);
    if (u->up) {
        mxpc_s3_uploader_free(u->up);
        u->up = NULL;
        u->c->uploads--;
        s3lua_client_release(u->c);
    }
    return 0;
}

static int u_tostring(lua_State *L)
{
    struct luploader *u = luaL_checkudata(L, 1, UPLOADER_META);
    lua_pushstring(L, u->up ? "s3.uploader" : "s3.uploader (closed)");
    return 1;
}

/* --- uploads of unknown length ----------------------------------------------- */

struct stream {
    struct mxpc_s3_upload *u;
    struct client *c;
};

static struct stream *check_stream(lua_State *L)
{
    struct stream *u = luaL_checkudata(L, 1, UPLOAD_META);
    if (!u->u)
        luaL_error(L, "attempt to use a closed S3 upload");
    return u;
}

/* Aborts the upload unless it was committed; idempotent (close, __close, __gc). */
static int s_close(lua_State *L)
{
    struct stream *u = luaL_checkudata(L, 1, UPLOAD_META);
    if (u->u) {
        mxpc_s3_upload_free(u->u);
        u->u = NULL;
        u->c->uploads--;
        s3lua_client_release(u->c);
    }
    return 0;
}

/* c:upload(bucket, key [, {concurrency=, window=, no_overwrite=}]) -> upload: u:write(chunk...),
 * u:prepare_commit(), u:commit() -> {size=, etag=}, u:abort() */
static int s3lua_upload(lua_State *L)
{
    struct client *c = s3lua_check_client(L);
    const char *bucket = s3lua_opt_bucket(L, 2), *key = luaL_checkstring(L, 3);
    struct mxpc_s3_many_options o = {MXPC_S3_UPLOAD_CONCURRENCY, MXPC_S3_UPLOAD_CONCURRENCY * MXPC_S3_DEFAULT_PART_SIZE,
                                     NULL, NULL, 0};
    int with_options = !lua_isnoneornil(L, 4);
    upload_options(L, 4, &o);
    struct stream *u = lua_newuserdatauv(L, sizeof *u, 1);
    u->u = NULL;
    u->c = c;
    lua_pushvalue(L, 1); /* the upload keeps its client alive */
    lua_setiuservalue(L, -2, 1);
    luaL_setmetatable(L, UPLOAD_META);
    struct mxpc_s3_error e;
    u->u = mxpc_s3_upload_begin(c->s3, bucket, key, with_options ? &o : NULL, &e);
    if (!u->u)
        return s3lua_push_error(L, &e);
    c->uploads++;
    return 1;
}

static int s_write(lua_State *L)
{
    struct stream *u = check_stream(L);
    int n = lua_gettop(L);
    for (int i = 2; i <= n; i++) {
        size_t len;
        const char *data = luaL_checklstring(L, i, &len);
        struct mxpc_s3_error e;
        if (mxpc_s3_upload_write(u->u, data, len, &e) != 0)
            return s3lua_push_error(L, &e);
    }
    lua_pushboolean(L, 1);
    return 1;
}

/* u:prepare_commit() -> true | nil, err: every part sent and in; commit() then only commits */
static int s_prepare_commit(lua_State *L)
{
    struct stream *u = check_stream(L);
    struct mxpc_s3_error e;
    if (mxpc_s3_upload_prepare_commit(u->u, &e) != 0)
        return s3lua_push_error(L, &e);
    lua_pushboolean(L, 1);
    return 1;
}

static int s_commit(lua_State *L)
{
    struct stream *u = check_stream(L);
    struct mxpc_s3_object o = {0, ""};
    struct mxpc_s3_error e;
    if (mxpc_s3_upload_commit(u->u, &o, &e) != 0)
        return s3lua_push_error(L, &e);
    return s3lua_push_object(L, &o);
}

static int s_size(lua_State *L)
{
    lua_pushinteger(L, (lua_Integer)mxpc_s3_upload_size(check_stream(L)->u));
    return 1;
}

static int s_tostring(lua_State *L)
{
    struct stream *u = luaL_checkudata(L, 1, UPLOAD_META);
    lua_pushstring(L, u->u ? "s3.upload" : "s3.upload (closed)");
    return 1;
}

static void register_uploads(lua_State *L)
{
    static const luaL_Reg up_methods[] = {
        {"put", u_put}, {"finish", u_finish}, {"stats", u_stats}, {"close", u_close}, {NULL, NULL},
    };
    static const luaL_Reg up_meta[] = {
        {"__gc", u_close}, {"__close", u_close}, {"__tostring", u_tostring}, {NULL, NULL},
    };
    mxpc_lua_class(L, UPLOADER_META, up_methods, up_meta);
    static const luaL_Reg stream_methods[] = {
        {"write", s_write}, {"prepare_commit", s_prepare_commit}, {"commit", s_commit}, {"abort", s_close}, {"close", s_close}, {"size", s_size},
        {NULL, NULL},
    };
    static const luaL_Reg stream_meta[] = {
        {"__gc", s_close},
        {"__close", s_close},
        {"__tostring", s_tostring},
        {NULL, NULL},
    };
    mxpc_lua_class(L, UPLOAD_META, stream_methods, stream_meta);
}

int luaopen_mxpc_s3(lua_State *L)
{
    s3lua_register_client(L);
    static const luaL_Reg many_methods[] = {
        {"head_many", s3lua_head_many},
        {"get_many", s3lua_get_many},
        {"copy_many", s3lua_copy_many},
        {"uploader", s3lua_uploader},
        {"upload", s3lua_upload},
        {NULL, NULL},
    };
    luaL_getmetatable(L, CLIENT_META);
    lua_getfield(L, -1, "__index");
    luaL_setfuncs(L, many_methods, 0);
    lua_pop(L, 2);
    register_uploads(L);

    static const luaL_Reg functions[] = {
        {"client", s3lua_client},
        {NULL, NULL},
    };
    luaL_newlib(L, functions);
    /* the AWS functions under their old names (they are mxpc.aws's) */
    luaL_requiref(L, "mxpc.aws", luaopen_mxpc_aws, 0);
    static const char *const aliases[] = {"credentials", "rds_token", "sign", NULL};
    for (const char *const *name = aliases; *name; name++) {
        lua_getfield(L, -1, *name);
        lua_setfield(L, -3, *name);
    }
    lua_pop(L, 1);
    return 1;
}
