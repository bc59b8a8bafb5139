/* Lua module mxpc.s3, its client handle: S3 clients (s3_client.c) as
 * userdata handles, their errors, Lua functions as sinks and sources, and
 * the methods that are one request each. The module itself (mxpc.s3: many
 * requests at once, the uploaders) is mod_s3.c.
 *
 *   local c <close> = assert(s3.client{endpoint = "http://127.0.0.1:27480", access_key = ..., secret_key = ...})
 *   assert(c:put("bucket", "key", "data"))
 *   print(assert(c:get_string("bucket", "key")))
 *
 * See docs/s3.md. */
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

struct client *s3lua_check_client(lua_State *L)
{
    struct client *c = luaL_checkudata(L, 1, CLIENT_META);
    if (!c->s3 || c->closed)
        luaL_error(L, "attempt to use a closed S3 client");
    return c;
}

#define FACT_S(name) mxpc_field_string(L, #name, f->name)
#define FACT_I(name) mxpc_field_integer(L, #name, (lua_Integer)f->name)

/* s3_api.describe(facts) -> code, message, hint: run protected by the caller */
static int describe(lua_State *L)
{
    const struct mxpc_s3_error *e = lua_touserdata(L, 1);
    const struct mxpc_s3_facts *f = &e->facts;
    lua_getglobal(L, "require");
    if (strcmp(f->service, "azure") == 0)
        lua_pushliteral(L, "mxpc.azure_api");
    else
        lua_pushliteral(L, "mxpc.s3_api");
    lua_call(L, 1, 1);
    lua_getfield(L, -1, "describe");
    lua_createtable(L, 0, 24);
    FACT_S(kind), FACT_S(s3_message), FACT_S(method), FACT_S(action), FACT_S(object), FACT_S(bucket), FACT_S(key);
    FACT_S(endpoint), FACT_S(prefix), FACT_S(transport), FACT_S(creds_source), FACT_S(role_arn), FACT_S(access_key);
    FACT_S(if_match), FACT_S(copy_source), FACT_S(service), FACT_I(resume_at), FACT_I(count), FACT_I(total);
    mxpc_field_boolean(L, "resumed", f->resumed);
    mxpc_field_integer(L, "status", e->http_status);
    mxpc_field_string(L, "s3_code", e->s3_code);
    lua_call(L, 1, 3);
    return 3;
}

/* Pushes the error object of a failed S3 call, never raising: worded by
 * lua/mxpc/s3_api.lua from the facts when there are some (C's own message
 * if that fails), with `status` and `s3_code` when the server answered. */
void s3lua_push_error_object(lua_State *L, const struct mxpc_s3_error *e)
{
    int worded = 0;
    if (e->facts.kind[0]) {
        int top = lua_gettop(L);
        lua_pushcfunction(L, describe);
        lua_pushlightuserdata(L, (void *)e);
        int rc = lua_pcall(L, 1, 3, 0);
        if (rc == LUA_OK && lua_type(L, top + 1) == LUA_TSTRING && lua_type(L, top + 2) == LUA_TSTRING) {
            mxpc_error_push(L, lua_tostring(L, top + 1), lua_tostring(L, top + 3), "%s", lua_tostring(L, top + 2));
            lua_replace(L, top + 1);
            worded = 1;
        } else {
            const char *code = rc != LUA_OK ? mxpc_error_field(L, -1, "code") : NULL;
            if (code && strcmp(code, "interrupted") == 0)
                mxpc_interrupt_rearm(); /* the signal that raised in there is not lost */
            mxpc_log(MXPC_LOG_DEBUG, "s3: the error could not be worded: %s",
                     rc != LUA_OK && lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : "no code and message");
        }
        lua_settop(L, top + worded);
    }
    if (!worded)
        mxpc_error_push(L, e->code, e->hint[0] ? e->hint : NULL, "%s", e->message);
    if (e->http_status) {
        lua_pushinteger(L, e->http_status);
        lua_setfield(L, -2, "status");
    }
    if (e->s3_code[0]) {
        lua_pushstring(L, e->s3_code);
        lua_setfield(L, -2, "s3_code");
    }
}

/* Pushes nil and the error object; raises on interruption and misuse. */
int s3lua_push_error(lua_State *L, const struct mxpc_s3_error *e)
{
    if (strcmp(e->code, "interrupted") == 0) {
        mxpc_check_interrupt(L);
        return mxpc_error_raise(L, "interrupted", NULL, "%s", e->message);
    }
    if (strcmp(e->code, "usage") == 0) /* misuse: raised, with the hint */
        return mxpc_error_raise(L, "error", e->hint[0] ? e->hint : NULL, "%s", e->message);
    lua_pushnil(L);
    s3lua_push_error_object(L, e);
    return 2;
}

/* s3.client{endpoint=, region=, access_key=, secret_key=, session_token=,
 * profile=, path_style=, ca_file=, ca_dir=, part_size=, multipart_threshold=,
 * retries=, unsigned_payload=, max_send_speed=} */
int s3lua_client(lua_State *L)
{
    const int keep = s3lua_options(L);
    struct mxpc_aws_credentials creds;
    int n = s3lua_credentials(L, keep, &creds);
    if (n)
        return n;
    struct mxpc_s3_config cfg = {
        .endpoint = mxpc_args_opt_string(L, 1, "endpoint", keep),
        .region = mxpc_args_opt_string(L, 1, "region", keep),
        .credentials = &creds,
        .ca_file = mxpc_args_opt_string(L, 1, "ca_file", keep),
        .ca_dir = mxpc_args_opt_string(L, 1, "ca_dir", keep),
        .part_size = mxpc_args_opt_integer(L, 1, "part_size", 0),
        .multipart_threshold = mxpc_args_opt_integer(L, 1, "multipart_threshold", 0),
        .max_retries = (int)mxpc_args_opt_integer(L, 1, "retries", -1),
        .max_send_speed = mxpc_args_opt_integer(L, 1, "max_send_speed", 0),
    };
    lua_getfield(L, 1, "path_style");
    cfg.path_style = lua_isnil(L, -1) ? -1 : lua_toboolean(L, -1);
    lua_getfield(L, 1, "unsigned_payload");
    cfg.unsigned_payload = lua_isnil(L, -1) ? -1 : lua_toboolean(L, -1);
    lua_pop(L, 2);

    struct client *c = lua_newuserdatauv(L, sizeof *c, 0);
    memset(c, 0, sizeof *c);
    luaL_setmetatable(L, CLIENT_META);
    struct mxpc_s3_error e;
    c->s3 = mxpc_s3_new(&cfg, &e);
    mxpc_aws_credentials_clear(&creds);
    if (!c->s3)
        return s3lua_push_error(L, &e);
    return 1;
}

/* Closing a client with open uploads or uploaders frees it when the last of
 * them closes (they abort through their client). */
void s3lua_client_release(struct client *c)
{
    if (c->closed && c->uploads == 0) {
        mxpc_s3_free(c->s3);
        c->s3 = NULL;
    }
}

/* c:stats() -> {bytes_in =, bytes_out =, requests =}: the bodies' bytes
 * received and sent, and the requests answered (each attempt) */
static int c_stats(lua_State *L)
{
    struct client *c = s3lua_check_client(L);
    int64_t in, out, requests;
    mxpc_s3_stats(c->s3, &in, &out, &requests);
    lua_createtable(L, 0, 3);
    mxpc_field_integer(L, "bytes_in", in);
    mxpc_field_integer(L, "bytes_out", out);
    mxpc_field_integer(L, "requests", requests);
    return 1;
}

static int c_close(lua_State *L)
{
    struct client *c = luaL_checkudata(L, 1, CLIENT_META);
    c->closed = 1;
    s3lua_client_release(c);
    return 0;
}

static int c_tostring(lua_State *L)
{
    struct client *c = luaL_checkudata(L, 1, CLIENT_META);
    if (!c->s3 || c->closed)
        lua_pushliteral(L, "s3.client (closed)");
    else
        lua_pushfstring(L, "s3.client (%s, access key %s)", mxpc_s3_endpoint(c->s3), mxpc_s3_access_key(c->s3));
    return 1;
}

/* The bucket may be nil or "" when the endpoint names it. */
const char *s3lua_opt_bucket(lua_State *L, int idx)
{
    return luaL_optstring(L, idx, "");
}

int s3lua_push_object(lua_State *L, const struct mxpc_s3_object *o)
{
    lua_createtable(L, 0, 2);
    mxpc_field_integer(L, "size", o->size);
    mxpc_field_string(L, "etag", o->etag);
    return 1;
}

/* c:head(bucket, key) -> {size=, etag=} | nil, err */
static int c_head(lua_State *L)
{
    struct client *c = s3lua_check_client(L);
    const char *bucket = s3lua_opt_bucket(L, 2), *key = luaL_checkstring(L, 3);
    struct mxpc_s3_object o;
    struct mxpc_s3_error e;
    if (mxpc_s3_head(c->s3, bucket, key, &o, &e) != 0)
        return s3lua_push_error(L, &e);
    return s3lua_push_object(L, &o);
}

/* --- Lua callbacks ---------------------------------------------------------- */

static int lua_sink(void *ud, const void *data, size_t len, char *err, size_t errlen)
{
    struct s3lua_cb *cb = ud;
    lua_pushvalue(cb->L, cb->fn);
    lua_pushlstring(cb->L, data, len);
    if (mxpc_callback_call(cb->L, 1, &cb->failure, err, errlen) != 0)
        return -1;
    lua_pop(cb->L, 2);
    return 0;
}

ssize_t s3lua_source(void *ud, void *buf, size_t cap, char *err, size_t errlen)
{
    struct s3lua_cb *cb = ud;
    lua_State *L = cb->L;
    while (cb->chunk_off >= cb->chunk_len) {
        luaL_unref(L, LUA_REGISTRYINDEX, cb->chunk_ref);
        cb->chunk_ref = LUA_NOREF;
        cb->chunk = NULL;
        cb->chunk_len = cb->chunk_off = 0;
        lua_pushvalue(L, cb->fn);
        int got = mxpc_callback_source_chunk(L, &cb->failure, err, errlen);
        if (got <= 0)
            return got;
        cb->chunk = lua_tolstring(L, -1, &cb->chunk_len);
        cb->chunk_ref = luaL_ref(L, LUA_REGISTRYINDEX); /* keeps the string alive */
    }
    size_t n = cb->chunk_len - cb->chunk_off;
    if (n > cap)
        n = cap;
    memcpy(buf, cb->chunk + cb->chunk_off, n);
    cb->chunk_off += n;
    return (ssize_t)n;
}

/* After the C call: raises what a callback raised, else pushes the error. */
int s3lua_cb_finish(struct s3lua_cb *cb, int rc, const struct mxpc_s3_error *e)
{
    lua_State *L = cb->L;
    luaL_unref(L, LUA_REGISTRYINDEX, cb->chunk_ref);
    cb->chunk_ref = LUA_NOREF;
    mxpc_callback_reraise(L, &cb->failure);
    return rc == 0 ? 0 : s3lua_push_error(L, e);
}

static int buf_sink(void *ud, const void *data, size_t len, char *err, size_t errlen)
{
    (void)err, (void)errlen;
    mxpc_buf_append(ud, data, len);
    return 0;
}

static int file_sink(void *ud, const void *data, size_t len, char *err, size_t errlen)
{
    return mxpc_atomic_write(ud, data, len, err, errlen);
}

/* c:get(bucket, key, sink [, {expected_size=, force=, offset=, length=, if_match=}]) -> bytes | nil, err
 * sink: function(chunk) or a file path (written atomically). */
static int c_get(lua_State *L)
{
    struct client *c = s3lua_check_client(L);
    const char *bucket = s3lua_opt_bucket(L, 2), *key = luaL_checkstring(L, 3);
    int is_fn = lua_isfunction(L, 4);
    const char *path = is_fn ? NULL : luaL_checkstring(L, 4);
    lua_Integer expected = -1;
    int force = 0;
    struct mxpc_s3_range range = {0, 0, NULL};
    if (!lua_isnoneornil(L, 5)) {
        luaL_checktype(L, 5, LUA_TTABLE);
        lua_settop(L, 5);
        int keep = mxpc_args_keep(L);
        expected = mxpc_args_opt_integer(L, 5, "expected_size", -1);
        force = mxpc_args_opt_bool(L, 5, "force", 0);
        range.offset = mxpc_args_opt_integer(L, 5, "offset", 0);
        range.length = mxpc_args_opt_integer(L, 5, "length", 0);
        range.if_match = mxpc_args_opt_string(L, 5, "if_match", keep);
        luaL_argcheck(L, range.offset >= 0 && range.length >= 0, 5, "offset and length must not be negative");
        luaL_argcheck(L, (range.offset == 0 && !range.if_match) || range.length > 0, 5,
                      "offset and if_match need a length");
        luaL_argcheck(L, range.length == 0 || expected < 0, 5, "expected_size and a range exclude each other");
    }
    struct mxpc_s3_error e;
    int64_t bytes = 0;
    int rc;
    if (is_fn) {
        struct s3lua_cb cb = {L, 4, MXPC_CALLBACK_FAILURE_INIT, LUA_NOREF, NULL, 0, 0};
        rc = range.length ? mxpc_s3_get_range(c->s3, bucket, key, &range, lua_sink, &cb, &bytes, &e)
                          : mxpc_s3_get(c->s3, bucket, key, expected, lua_sink, &cb, &bytes, &e);
        int n = s3lua_cb_finish(&cb, rc, &e);
        if (n)
            return n;
    } else {
        char err[512];
        struct mxpc_atomic_file *f = mxpc_atomic_open(path, force, 0600, err, sizeof err);
        if (!f)
            return mxpc_error_fail(L, errno == EEXIST ? "exists" : "io",
                                   errno == EEXIST ? "choose another file name, or use force to replace it" : NULL,
                                   "%s", err);
        rc = range.length ? mxpc_s3_get_range(c->s3, bucket, key, &range, file_sink, f, &bytes, &e)
                          : mxpc_s3_get(c->s3, bucket, key, expected, file_sink, f, &bytes, &e);
        if (rc == 0 && mxpc_atomic_commit(f, err, sizeof err) != 0) {
            mxpc_atomic_free(f);
            return mxpc_error_fail(L, "io", NULL, "%s", err);
        }
        mxpc_atomic_free(f);
        if (rc != 0)
            return s3lua_push_error(L, &e);
    }
    lua_pushinteger(L, bytes);
    return 1;
}

/* c:get_string(bucket, key) -> string | nil, err */
static int c_get_string(lua_State *L)
{
    struct client *c = s3lua_check_client(L);
    const char *bucket = s3lua_opt_bucket(L, 2), *key = luaL_checkstring(L, 3);
    struct mxpc_buf b = MXPC_BUF_INIT;
    struct mxpc_s3_error e;
    int rc = mxpc_s3_get(c->s3, bucket, key, -1, buf_sink, &b, NULL, &e);
    if (rc == 0)
        lua_pushlstring(L, b.data ? b.data : "", b.len);
    mxpc_buf_free(&b);
    return rc == 0 ? 1 : s3lua_push_error(L, &e);
}

ssize_t s3lua_mem_source(void *ud, void *buf, size_t cap, char *err, size_t errlen)
{
    (void)err, (void)errlen;
    struct s3lua_mem_source *m = ud;
    size_t n = m->len - m->off < cap ? m->len - m->off : cap;
    memcpy(buf, m->data + m->off, n);
    m->off += n;
    return (ssize_t)n;
}

static ssize_t fd_source(void *ud, void *buf, size_t cap, char *err, size_t errlen)
{
    int fd = *(int *)ud;
    for (;;) {
        ssize_t n = read(fd, buf, cap);
        if (n >= 0)
            return n;
        if (errno == EINTR && !mxpc_interrupted())
            continue;
        snprintf(err, errlen, "read: %s", strerror(errno));
        return -1;
    }
}

/* c:put(bucket, key, source [, size]) -> {size=, etag=} | nil, err
 * source: a string (the data), {path = FILE}, or a function returning chunks
 * and nil at the end (size required). */
static int c_put(lua_State *L)
{
    struct client *c = s3lua_check_client(L);
    const char *bucket = s3lua_opt_bucket(L, 2), *key = luaL_checkstring(L, 3);
    struct mxpc_s3_object o = {0, ""};
    struct mxpc_s3_error e;
    int rc;
    if (lua_type(L, 4) == LUA_TSTRING) {
        struct s3lua_mem_source m = {NULL, 0, 0};
        m.data = lua_tolstring(L, 4, &m.len);
        lua_Integer size = luaL_optinteger(L, 5, (lua_Integer)m.len);
        luaL_argcheck(L, size == (lua_Integer)m.len, 5, "size differs from the string's length");
        rc = mxpc_s3_put(c->s3, bucket, key, (int64_t)m.len, s3lua_mem_source, &m, &o, &e);
    } else if (lua_istable(L, 4)) {
        lua_settop(L, 5);
        const char *path = mxpc_args_opt_string(L, 4, "path", mxpc_args_keep(L));
        luaL_argcheck(L, path != NULL, 4, "expected {path = FILE}");
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        struct stat st;
        if (fd < 0 || fstat(fd, &st) != 0) {
            int err = errno;
            if (fd >= 0)
                close(fd);
            return mxpc_error_fail(L, err == ENOENT ? "not_found" : "io", NULL, "cannot open %s: %s", path,
                                   strerror(err));
        }
        lua_Integer size = luaL_optinteger(L, 5, (lua_Integer)st.st_size);
        rc = mxpc_s3_put(c->s3, bucket, key, size, fd_source, &fd, &o, &e);
        close(fd);
    } else {
        luaL_checktype(L, 4, LUA_TFUNCTION);
        lua_Integer size = luaL_checkinteger(L, 5);
        luaL_argcheck(L, size >= 0, 5, "size must not be negative");
        struct s3lua_cb cb = {L, 4, MXPC_CALLBACK_FAILURE_INIT, LUA_NOREF, NULL, 0, 0};
        rc = mxpc_s3_put(c->s3, bucket, key, size, s3lua_source, &cb, &o, &e);
        int n = s3lua_cb_finish(&cb, rc, &e);
        if (n)
            return n;
    }
    if (rc != 0)
        return s3lua_push_error(L, &e);
    return s3lua_push_object(L, &o);
}

int s3lua_result_true(lua_State *L, int rc, const struct mxpc_s3_error *e)
{
    if (rc != 0)
        return s3lua_push_error(L, e);
    lua_pushboolean(L, 1);
    return 1;
}

/* c:delete(bucket, key) -> true | nil, err */
static int c_delete(lua_State *L)
{
    struct client *c = s3lua_check_client(L);
    struct mxpc_s3_error e;
    return s3lua_result_true(L, mxpc_s3_delete(c->s3, s3lua_opt_bucket(L, 2), luaL_checkstring(L, 3), &e), &e);
}

/* c:delete_many(bucket, keys [, {on_batch=}]) -> n | nil, err
 * DeleteObjects requests of MXPC_S3_DELETE_BATCH keys; on_batch(done) after
 * each. err.deleted: how many were deleted before it failed; err.refused: how
 * many S3 refused in the batch that failed. */
static int c_delete_many(lua_State *L)
{
    struct client *c = s3lua_check_client(L);
    const char *bucket = s3lua_opt_bucket(L, 2);
    luaL_checktype(L, 3, LUA_TTABLE);
    int on_batch = 0;
    if (!lua_isnoneornil(L, 4)) {
        luaL_checktype(L, 4, LUA_TTABLE);
        if (lua_getfield(L, 4, "on_batch") != LUA_TNIL) {
            luaL_checktype(L, -1, LUA_TFUNCTION);
            on_batch = lua_gettop(L);
        } else {
            lua_pop(L, 1);
        }
    }
    size_t n = (size_t)luaL_len(L, 3), done = 0;
    const char *keys[MXPC_S3_DELETE_BATCH]; /* strings held by the keys table */
    while (done < n) {
        size_t k = n - done < MXPC_S3_DELETE_BATCH ? n - done : MXPC_S3_DELETE_BATCH;
        for (size_t i = 0; i < k; i++) {
            if (lua_rawgeti(L, 3, (lua_Integer)(done + i) + 1) != LUA_TSTRING)
                return luaL_error(L, "key %d is not a string", (int)(done + i) + 1);
            keys[i] = lua_tostring(L, -1);
            lua_pop(L, 1);
        }
        struct mxpc_s3_error e;
        size_t refused = 0;
        if (mxpc_s3_delete_objects(c->s3, bucket, keys, k, &refused, &e) != 0) {
            int r = s3lua_push_error(L, &e);
            lua_pushinteger(L, (lua_Integer)(refused ? done + k - refused : done));
            lua_setfield(L, -2, "deleted");
            lua_pushinteger(L, (lua_Integer)refused);
            lua_setfield(L, -2, "refused");
            return r;
        }
        done += k;
        if (on_batch) {
            lua_pushvalue(L, on_batch);
            lua_pushinteger(L, (lua_Integer)done);
            lua_call(L, 1, 0);
        }
    }
    lua_pushinteger(L, (lua_Integer)n);
    return 1;
}

static int c_create_bucket(lua_State *L)
{
    struct client *c = s3lua_check_client(L);
    struct mxpc_s3_error e;
    return s3lua_result_true(L, mxpc_s3_create_bucket(c->s3, luaL_checkstring(L, 2), &e), &e);
}

static int c_delete_bucket(lua_State *L)
{
    struct client *c = s3lua_check_client(L);
    struct mxpc_s3_error e;
    return s3lua_result_true(L, mxpc_s3_delete_bucket(c->s3, luaL_checkstring(L, 2), &e), &e);
}

static void add_upload(void *ud, const char *key, const char *upload_id)
{
    lua_State *L = ud;
    lua_createtable(L, 0, 2);
    lua_pushstring(L, key);
    lua_setfield(L, -2, "key");
    lua_pushstring(L, upload_id);
    lua_setfield(L, -2, "upload_id");
    lua_rawseti(L, -2, (lua_Integer)luaL_len(L, -2) + 1);
}

/* c:list_multipart_uploads(bucket) -> {{key=, upload_id=}, ...} | nil, err */
static int c_list_multipart_uploads(lua_State *L)
{
    struct client *c = s3lua_check_client(L);
    const char *bucket = s3lua_opt_bucket(L, 2);
    lua_newtable(L);
    struct mxpc_s3_error e;
    if (mxpc_s3_list_multipart_uploads(c->s3, bucket, add_upload, L, &e) != 0)
        return s3lua_push_error(L, &e);
    return 1;
}

void s3lua_copy_error(struct mxpc_s3_error *dst, const char *code, const char *msg)
{
    memset(dst, 0, sizeof *dst);
    snprintf(dst->code, sizeof dst->code, "%.*s", (int)sizeof dst->code - 1, code && *code ? code : "io");
    snprintf(dst->message, sizeof dst->message, "%s", msg);
}

/* The listing's Lua side: objects appended to the table at `into`, or
 * handed to the function at `fn`. */
struct list_ctx {
    lua_State *L;
    int into, fn;
    struct mxpc_callback_failure failure;
    lua_Integer count;
};

static int list_item(void *ud, const struct mxpc_s3_listed *o, struct mxpc_s3_error *e)
{
    struct list_ctx *x = ud;
    lua_State *L = x->L;
    x->count++;
    if (x->fn)
        lua_pushvalue(L, x->fn);
    lua_createtable(L, 0, 4);
    lua_pushstring(L, o->key);
    lua_setfield(L, -2, "key");
    lua_pushinteger(L, o->size);
    lua_setfield(L, -2, "size");
    lua_pushstring(L, o->etag);
    lua_setfield(L, -2, "etag");
    lua_pushstring(L, o->last_modified);
    lua_setfield(L, -2, "last_modified");
    if (!x->fn) {
        lua_rawseti(L, x->into, (lua_Integer)lua_rawlen(L, x->into) + 1);
        return 0;
    }
    char err[512];
    if (mxpc_callback_call(L, 1, &x->failure, err, sizeof err) != 0) {
        s3lua_copy_error(e, x->failure.code, err);
        return -1;
    }
    lua_pop(L, 2);
    return 0;
}

/* c:list(bucket, prefix [, {max_keys=, on_item=}]) -> {{key=, size=, etag=,
 * last_modified=}, ...} | nil, err; with on_item(object) each object is
 * handed to it instead (nil, err or false stops) and the result is the count. */
static int c_list(lua_State *L)
{
    struct client *c = s3lua_check_client(L);
    const char *bucket = s3lua_opt_bucket(L, 2), *prefix = luaL_optstring(L, 3, "");
    struct list_ctx x = {L, 0, 0, MXPC_CALLBACK_FAILURE_INIT, 0};
    lua_Integer max_keys = 0;
    if (!lua_isnoneornil(L, 4)) {
        luaL_checktype(L, 4, LUA_TTABLE);
        max_keys = mxpc_args_opt_integer(L, 4, "max_keys", 0);
        luaL_argcheck(L, max_keys >= 0 && max_keys <= 1000, 4, "max_keys must be 0..1000");
        if (lua_getfield(L, 4, "on_item") != LUA_TNIL) {
            luaL_checktype(L, -1, LUA_TFUNCTION);
            x.fn = lua_gettop(L);
        } else {
            lua_pop(L, 1);
        }
    }
    lua_newtable(L);
    x.into = lua_gettop(L);
    struct mxpc_s3_error e;
    int rc = mxpc_s3_list(c->s3, bucket, prefix, (int)max_keys, list_item, &x, &e);
    mxpc_callback_reraise(L, &x.failure);
    if (rc != 0)
        return s3lua_push_error(L, &e);
    if (x.fn)
        lua_pushinteger(L, x.count);
    return 1;
}

static int c_abort_multipart(lua_State *L)
{
    struct client *c = s3lua_check_client(L);
    struct mxpc_s3_error e;
    return s3lua_result_true(L,
                       mxpc_s3_abort_multipart(c->s3, s3lua_opt_bucket(L, 2), luaL_checkstring(L, 3),
                                               luaL_checkstring(L, 4), &e),
                       &e);
}

/* c:presign(method, bucket, key [, expires = 3600]) -> url */
static int c_presign(lua_State *L)
{
    struct client *c = s3lua_check_client(L);
    const char *method = luaL_checkstring(L, 2);
    const char *bucket = s3lua_opt_bucket(L, 3), *key = luaL_checkstring(L, 4);
    lua_Integer expires = luaL_optinteger(L, 5, 3600);
    luaL_argcheck(L, expires >= 1 && expires <= 604800, 5, "expires must be 1..604800 seconds");
    struct mxpc_s3_error e;
    char *url = mxpc_s3_presign(c->s3, method, bucket, key, (long)expires, &e);
    if (!url)
        return s3lua_push_error(L, &e);
    lua_pushstring(L, url);
    free(url);
    return 1;
}

void s3lua_register_client(lua_State *L)
{
    static const luaL_Reg methods[] = {
        {"head", c_head},
        {"get", c_get},
        {"get_string", c_get_string},
        {"put", c_put},
        {"delete", c_delete},
        {"delete_many", c_delete_many},
        {"create_bucket", c_create_bucket},
        {"delete_bucket", c_delete_bucket},
        {"list", c_list},
        {"list_multipart_uploads", c_list_multipart_uploads},
        {"abort_multipart", c_abort_multipart},
        {"presign", c_presign},
        {"stats", c_stats},
        {"close", c_close},
        {NULL, NULL},
    };
    static const luaL_Reg meta[] = {
        {"__gc", c_close},
        {"__close", c_close},
        {"__tostring", c_tostring},
        {NULL, NULL},
    };
    mxpc_lua_class(L, CLIENT_META, methods, meta);
}
