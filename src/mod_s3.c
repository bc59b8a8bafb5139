/* Lua module mxpc.s3: S3 clients (s3_client.c) as userdata handles, and the
 * SigV4 signer (sigv4.c) for tests and other services.
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

#define CLIENT_META "mxpc.s3.client"
#define UPLOAD_META "mxpc.s3.upload"
#define FILE_CHUNK (256 * 1024)

struct client {
    struct mxpc_s3 *s3;
    int uploads; /* open uploads and uploaders: the client is freed after the last */
    int closed;
};

static struct client *check_client(lua_State *L)
{
    struct client *c = luaL_checkudata(L, 1, CLIENT_META);
    if (!c->s3 || c->closed)
        luaL_error(L, "attempt to use a closed S3 client");
    return c;
}

#define FACT_S(name) (lua_pushstring(L, f->name), lua_setfield(L, -2, #name))
#define FACT_I(name) (lua_pushinteger(L, (lua_Integer)f->name), lua_setfield(L, -2, #name))

/* s3_api.describe(facts) -> code, message, hint: run protected by the caller */
static int describe(lua_State *L)
{
    const struct mxpc_s3_error *e = lua_touserdata(L, 1);
    const struct mxpc_s3_facts *f = &e->facts;
    lua_getglobal(L, "require");
    lua_pushliteral(L, "mxpc.s3_api");
    lua_call(L, 1, 1);
    lua_getfield(L, -1, "describe");
    lua_createtable(L, 0, 24);
    FACT_S(kind), FACT_S(s3_message), FACT_S(method), FACT_S(action), FACT_S(object), FACT_S(bucket), FACT_S(key);
    FACT_S(endpoint), FACT_S(prefix), FACT_S(transport), FACT_S(creds_source), FACT_S(role_arn), FACT_S(access_key);
    FACT_S(if_match), FACT_I(resume_at), FACT_I(count), FACT_I(total);
    lua_pushboolean(L, f->resumed);
    lua_setfield(L, -2, "resumed");
    lua_pushinteger(L, e->http_status);
    lua_setfield(L, -2, "status");
    lua_pushstring(L, e->s3_code);
    lua_setfield(L, -2, "s3_code");
    lua_call(L, 1, 3);
    return 3;
}

/* Pushes the error object of a failed S3 call, never raising: worded by
 * lua/mxpc/s3_api.lua from the facts when there are some (C's own message
 * if that fails), with `status` and `s3_code` when the server answered. */
static void push_error_object(lua_State *L, const struct mxpc_s3_error *e)
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
static int push_s3_error(lua_State *L, const struct mxpc_s3_error *e)
{
    if (strcmp(e->code, "interrupted") == 0) {
        mxpc_check_interrupt(L);
        return mxpc_error_raise(L, "interrupted", NULL, "%s", e->message);
    }
    if (strcmp(e->code, "usage") == 0) /* misuse: raised, with the hint */
        return mxpc_error_raise(L, "error", e->hint[0] ? e->hint : NULL, "%s", e->message);
    lua_pushnil(L);
    push_error_object(L, e);
    return 2;
}

static lua_Integer opt_integer(lua_State *L, int idx, const char *name, lua_Integer def)
{
    lua_getfield(L, idx, name);
    lua_Integer v = def;
    if (!lua_isnil(L, -1)) {
        int ok;
        v = lua_tointegerx(L, -1, &ok);
        if (!ok)
            luaL_error(L, "option '%s' must be an integer", name);
    }
    lua_pop(L, 1);
    return v;
}

/* nil -> def, else the truth of the value */
static int opt_bool(lua_State *L, int idx, const char *name, int def)
{
    lua_getfield(L, idx, name);
    int v = lua_isnil(L, -1) ? def : lua_toboolean(L, -1);
    lua_pop(L, 1);
    return v;
}

/* The options table (argument 1, nil = {}) alone at index 1, and the table
 * keeping its strings alive (lua_args.h) pushed at index 2, returned. */
static int options_and_keep(lua_State *L)
{
    if (lua_isnoneornil(L, 1)) {
        lua_settop(L, 0);
        lua_newtable(L);
    }
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_settop(L, 1);
    return mxpc_args_keep(L);
}

/* The credentials of the options table at 1 (strings kept in `keep`).
 * Returns 0 with `out` filled, or the count of nil, err pushed. */
static int resolve_credentials(lua_State *L, int keep, struct mxpc_aws_credentials *out)
{
    const int opts = 1;
    struct mxpc_aws_credentials given = {
        .access_key = (char *)mxpc_args_opt_string(L, opts, "access_key", keep),
        .secret_key = (char *)mxpc_args_opt_string(L, opts, "secret_key", keep),
        .session_token = (char *)mxpc_args_opt_string(L, opts, "session_token", keep),
    };
    mxpc_redact_add(given.secret_key);
    mxpc_redact_add(given.session_token);
    char err[1536];
    if (mxpc_aws_credentials_resolve(&given, mxpc_args_opt_string(L, opts, "profile", keep), out, err, sizeof err) !=
        0) {
        /* the chain's errors are "message" or "message\nhint" */
        char *nl = strchr(err, '\n');
        if (nl)
            *nl++ = '\0';
        return mxpc_error_fail(L, "credentials",
                               nl ? nl
                                  : "give access_key and secret_key, set AWS_ACCESS_KEY_ID and "
                                    "AWS_SECRET_ACCESS_KEY, run where a web identity (IRSA) or container "
                                    "credentials are set up, or configure a profile in ~/.aws/credentials",
                               "%s", err);
    }
    return 0;
}

/* s3.client{endpoint=, region=, access_key=, secret_key=, session_token=,
 * profile=, path_style=, ca_file=, ca_dir=, part_size=, multipart_threshold=,
 * retries=, unsigned_payload=, max_send_speed=} */
static int l_client(lua_State *L)
{
    const int keep = options_and_keep(L);
    struct mxpc_aws_credentials creds;
    int n = resolve_credentials(L, keep, &creds);
    if (n)
        return n;
    struct mxpc_s3_config cfg = {
        .endpoint = mxpc_args_opt_string(L, 1, "endpoint", keep),
        .region = mxpc_args_opt_string(L, 1, "region", keep),
        .credentials = &creds,
        .ca_file = mxpc_args_opt_string(L, 1, "ca_file", keep),
        .ca_dir = mxpc_args_opt_string(L, 1, "ca_dir", keep),
        .part_size = opt_integer(L, 1, "part_size", 0),
        .multipart_threshold = opt_integer(L, 1, "multipart_threshold", 0),
        .max_retries = (int)opt_integer(L, 1, "retries", -1),
        .max_send_speed = opt_integer(L, 1, "max_send_speed", 0),
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
        return push_s3_error(L, &e);
    return 1;
}

/* Closing a client with open uploads or uploaders frees it when the last of
 * them closes (they abort through their client). */
static void client_release(struct client *c)
{
    if (c->closed && c->uploads == 0) {
        mxpc_s3_free(c->s3);
        c->s3 = NULL;
    }
}

static int c_close(lua_State *L)
{
    struct client *c = luaL_checkudata(L, 1, CLIENT_META);
    c->closed = 1;
    client_release(c);
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
static const char *opt_bucket(lua_State *L, int idx)
{
    return luaL_optstring(L, idx, "");
}

static int push_object(lua_State *L, const struct mxpc_s3_object *o)
{
    lua_createtable(L, 0, 2);
    lua_pushinteger(L, o->size);
    lua_setfield(L, -2, "size");
    lua_pushstring(L, o->etag);
    lua_setfield(L, -2, "etag");
    return 1;
}

/* c:head(bucket, key) -> {size=, etag=} | nil, err */
static int c_head(lua_State *L)
{
    struct client *c = check_client(L);
    const char *bucket = opt_bucket(L, 2), *key = luaL_checkstring(L, 3);
    struct mxpc_s3_object o;
    struct mxpc_s3_error e;
    if (mxpc_s3_head(c->s3, bucket, key, &o, &e) != 0)
        return push_s3_error(L, &e);
    return push_object(L, &o);
}

/* --- Lua callbacks ---------------------------------------------------------- */

/* A Lua function (at stack index fn) used as a sink or source, on the shared
 * callback mechanism (lua_callback.h). */
struct lua_cb {
    lua_State *L;
    int fn; /* stack index */
    struct mxpc_callback_failure failure;
    /* source: the chunk being handed out */
    int chunk_ref;
    const char *chunk;
    size_t chunk_len, chunk_off;
};

static int lua_sink(void *ud, const void *data, size_t len, char *err, size_t errlen)
{
    struct lua_cb *cb = ud;
    lua_pushvalue(cb->L, cb->fn);
    lua_pushlstring(cb->L, data, len);
    if (mxpc_callback_call(cb->L, 1, &cb->failure, err, errlen) != 0)
        return -1;
    lua_pop(cb->L, 2);
    return 0;
}

static ssize_t lua_source(void *ud, void *buf, size_t cap, char *err, size_t errlen)
{
    struct lua_cb *cb = ud;
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
static int cb_finish(struct lua_cb *cb, int rc, const struct mxpc_s3_error *e)
{
    lua_State *L = cb->L;
    luaL_unref(L, LUA_REGISTRYINDEX, cb->chunk_ref);
    cb->chunk_ref = LUA_NOREF;
    mxpc_callback_reraise(L, &cb->failure);
    return rc == 0 ? 0 : push_s3_error(L, e);
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
    struct client *c = check_client(L);
    const char *bucket = opt_bucket(L, 2), *key = luaL_checkstring(L, 3);
    int is_fn = lua_isfunction(L, 4);
    const char *path = is_fn ? NULL : luaL_checkstring(L, 4);
    lua_Integer expected = -1;
    int force = 0;
    struct mxpc_s3_range range = {0, 0, NULL};
    if (!lua_isnoneornil(L, 5)) {
        luaL_checktype(L, 5, LUA_TTABLE);
        lua_settop(L, 5);
        int keep = mxpc_args_keep(L);
        expected = opt_integer(L, 5, "expected_size", -1);
        force = opt_bool(L, 5, "force", 0);
        range.offset = opt_integer(L, 5, "offset", 0);
        range.length = opt_integer(L, 5, "length", 0);
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
        struct lua_cb cb = {L, 4, MXPC_CALLBACK_FAILURE_INIT, LUA_NOREF, NULL, 0, 0};
        rc = range.length ? mxpc_s3_get_range(c->s3, bucket, key, &range, lua_sink, &cb, &bytes, &e)
                          : mxpc_s3_get(c->s3, bucket, key, expected, lua_sink, &cb, &bytes, &e);
        int n = cb_finish(&cb, rc, &e);
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
            return push_s3_error(L, &e);
    }
    lua_pushinteger(L, bytes);
    return 1;
}

/* c:get_string(bucket, key) -> string | nil, err */
static int c_get_string(lua_State *L)
{
    struct client *c = check_client(L);
    const char *bucket = opt_bucket(L, 2), *key = luaL_checkstring(L, 3);
    struct mxpc_buf b = MXPC_BUF_INIT;
    struct mxpc_s3_error e;
    int rc = mxpc_s3_get(c->s3, bucket, key, -1, buf_sink, &b, NULL, &e);
    if (rc == 0)
        lua_pushlstring(L, b.data ? b.data : "", b.len);
    mxpc_buf_free(&b);
    return rc == 0 ? 1 : push_s3_error(L, &e);
}

struct mem_source {
    const char *data;
    size_t len, off;
};

static ssize_t mem_source(void *ud, void *buf, size_t cap, char *err, size_t errlen)
{
    (void)err, (void)errlen;
    struct mem_source *m = ud;
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
    struct client *c = check_client(L);
    const char *bucket = opt_bucket(L, 2), *key = luaL_checkstring(L, 3);
    struct mxpc_s3_object o = {0, ""};
    struct mxpc_s3_error e;
    int rc;
    if (lua_type(L, 4) == LUA_TSTRING) {
        struct mem_source m = {NULL, 0, 0};
        m.data = lua_tolstring(L, 4, &m.len);
        lua_Integer size = luaL_optinteger(L, 5, (lua_Integer)m.len);
        luaL_argcheck(L, size == (lua_Integer)m.len, 5, "size differs from the string's length");
        rc = mxpc_s3_put(c->s3, bucket, key, (int64_t)m.len, mem_source, &m, &o, &e);
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
        struct lua_cb cb = {L, 4, MXPC_CALLBACK_FAILURE_INIT, LUA_NOREF, NULL, 0, 0};
        rc = mxpc_s3_put(c->s3, bucket, key, size, lua_source, &cb, &o, &e);
        int n = cb_finish(&cb, rc, &e);
        if (n)
            return n;
    }
    if (rc != 0)
        return push_s3_error(L, &e);
    return push_object(L, &o);
}

static int result_true(lua_State *L, int rc, const struct mxpc_s3_error *e)
{
    if (rc != 0)
        return push_s3_error(L, e);
    lua_pushboolean(L, 1);
    return 1;
}

/* c:delete(bucket, key) -> true | nil, err */
static int c_delete(lua_State *L)
{
    struct client *c = check_client(L);
    struct mxpc_s3_error e;
    return result_true(L, mxpc_s3_delete(c->s3, opt_bucket(L, 2), luaL_checkstring(L, 3), &e), &e);
}

/* c:delete_many(bucket, keys [, {on_batch=}]) -> n | nil, err
 * DeleteObjects requests of MXPC_S3_DELETE_BATCH keys; on_batch(done) after
 * each. err.deleted: how many were deleted before it failed; err.refused: how
 * many S3 refused in the batch that failed. */
static int c_delete_many(lua_State *L)
{
    struct client *c = check_client(L);
    const char *bucket = opt_bucket(L, 2);
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
            int r = push_s3_error(L, &e);
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
    struct client *c = check_client(L);
    struct mxpc_s3_error e;
    return result_true(L, mxpc_s3_create_bucket(c->s3, luaL_checkstring(L, 2), &e), &e);
}

static int c_delete_bucket(lua_State *L)
{
    struct client *c = check_client(L);
    struct mxpc_s3_error e;
    return result_true(L, mxpc_s3_delete_bucket(c->s3, luaL_checkstring(L, 2), &e), &e);
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
    struct client *c = check_client(L);
    const char *bucket = opt_bucket(L, 2);
    lua_newtable(L);
    struct mxpc_s3_error e;
    if (mxpc_s3_list_multipart_uploads(c->s3, bucket, add_upload, L, &e) != 0)
        return push_s3_error(L, &e);
    return 1;
}

static void copy_error(struct mxpc_s3_error *dst, const char *code, const char *msg)
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
        copy_error(e, x->failure.code, err);
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
    struct client *c = check_client(L);
    const char *bucket = opt_bucket(L, 2), *prefix = luaL_optstring(L, 3, "");
    struct list_ctx x = {L, 0, 0, MXPC_CALLBACK_FAILURE_INIT, 0};
    lua_Integer max_keys = 0;
    if (!lua_isnoneornil(L, 4)) {
        luaL_checktype(L, 4, LUA_TTABLE);
        max_keys = opt_integer(L, 4, "max_keys", 0);
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
        return push_s3_error(L, &e);
    if (x.fn)
        lua_pushinteger(L, x.count);
    return 1;
}

static int c_abort_multipart(lua_State *L)
{
    struct client *c = check_client(L);
    struct mxpc_s3_error e;
    return result_true(L,
                       mxpc_s3_abort_multipart(c->s3, opt_bucket(L, 2), luaL_checkstring(L, 3),
                                               luaL_checkstring(L, 4), &e),
                       &e);
}

/* --- many objects at once ------------------------------------------------------ */

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
    struct mxpc_archive_writer *w;
    long long mtime;
    struct mxpc_buf key; /* the key get_item gave last */
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
    copy_error(e, "usage", x->misuse);
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
        copy_error(e, "io", msg ? msg : "error in a callback");
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
        push_error_object(L, &f->err);
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
                copy_error(e, "io", "cannot read back a downloaded file from the working directory");
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
        copy_error(e, rc == MXPC_ARCHIVE_EINTERRUPTED || mxpc_interrupted() ? "interrupted" : "io",
                   mxpc_archive_writer_error(x->w));
        return -1;
    }
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
                copy_error(e, "usage", "ready() said no when nothing else was left to wait for");
                return -1;
            }
        }
        x->ready_done = 1;
        if (write_entry(x, f, e) != 0)
            return -1;
    }
    if (x->on_item && call_on_item(x, f, e) < 0)
        return -1;
    return 0;
}

/* The common part of head_many and get_many: items (a table or a fileset)
 * at 3, opts at opts_idx. */
static int run_many(lua_State *L, struct client *c, struct many_ctx *x, int opts_idx)
{
    x->bucket = opt_bucket(L, 2);
    int keep = mxpc_args_keep(L); /* strings of options given as numbers stay alive */
    struct mxpc_s3_many_options o = {MXPC_S3_DEFAULT_CONCURRENCY, MXPC_S3_DEFAULT_WINDOW, NULL};
    x->L = L;
    x->items = 3;
    x->failure = (struct mxpc_callback_failure)MXPC_CALLBACK_FAILURE_INIT;
    if (mxpc_lua_is_fileset(L, 3))
        x->files = mxpc_lua_fileset(L, 3);
    else
        luaL_checktype(L, 3, LUA_TTABLE);
    if (!lua_isnoneornil(L, opts_idx)) {
        luaL_checktype(L, opts_idx, LUA_TTABLE);
        o.concurrency = (int)opt_integer(L, opts_idx, "concurrency", MXPC_S3_DEFAULT_CONCURRENCY);
        luaL_argcheck(L, o.concurrency >= 1 && o.concurrency <= 256, opts_idx, "concurrency must be 1..256");
        o.window = opt_integer(L, opts_idx, "window", MXPC_S3_DEFAULT_WINDOW);
        luaL_argcheck(L, o.window >= 0, opts_idx, "window must not be negative");
        o.spill_dir = mxpc_args_opt_string(L, opts_idx, "spill_dir", keep);
        const char *fns[] = {"on_item", "ready", "key", "name"};
        int *at[] = {&x->on_item, &x->ready, &x->key_fn, &x->name_fn};
        for (int k = 0; k < 4; k++) {
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
    struct mxpc_s3_items items = {x->files ? mxpc_fileset_count(x->files) : (size_t)luaL_len(L, 3), get_item, x};
    struct mxpc_s3_error e;
    int rc = mxpc_s3_many(c->s3, x->head, &items, &o, many_item, x, &e);
    mxpc_buf_free(&x->key);
    mxpc_callback_reraise(L, &x->failure);
    if (x->misuse[0])
        return luaL_error(L, "%s", x->misuse);
    if (rc != 0)
        return push_s3_error(L, &e);
    lua_pushboolean(L, 1);
    return 1;
}

/* c:head_many(bucket, items, {concurrency=, on_item=}) -> true | nil, err
 * items: {{key=, ...}, ...}; on_item(item, {size=, etag=} | nil, err) is
 * called as each HEAD finishes; for a failed one it returns true to go on. */
static int c_head_many(lua_State *L)
{
    struct client *c = check_client(L);
    struct many_ctx x = {0};
    x.head = 1;
    return run_many(L, c, &x, 4);
}

/* c:get_many(bucket, items, writer, {concurrency=, window=, spill_dir=,
 * on_item=, ready=}) -> true | nil, err
 * Each object becomes the archive entry item.name (of item.size bytes) as
 * its GET finishes; see docs/s3.md. */
static int c_get_many(lua_State *L)
{
    struct client *c = check_client(L);
    struct many_ctx x = {0};
    x.w = mxpc_lua_archive_writer(L, 4, &x.mtime);
    return run_many(L, c, &x, 5);
}

/* --- uploads, many at once -------------------------------------------------------- */

#define UPLOADER_META "mxpc.s3.uploader"

struct luploader {
    struct mxpc_s3_uploader *up;
    struct client *c;
};

static struct luploader *check_uploader(lua_State *L)
{
    struct luploader *u = luaL_checkudata(L, 1, UPLOADER_META);
    if (!u->up)
        luaL_error(L, "attempt to use a closed S3 uploader");
    return u;
}

/* {concurrency=, window=} at idx (optional) into o, which holds the defaults. */
static void upload_options(lua_State *L, int idx, struct mxpc_s3_many_options *o)
{
    if (lua_isnoneornil(L, idx))
        return;
    luaL_checktype(L, idx, LUA_TTABLE);
    o->concurrency = (int)opt_integer(L, idx, "concurrency", o->concurrency);
    luaL_argcheck(L, o->concurrency >= 1 && o->concurrency <= 256, idx, "concurrency must be 1..256");
    o->window = opt_integer(L, idx, "window", o->window);
    luaL_argcheck(L, o->window >= 1, idx, "window must be positive");
}

/* c:uploader{concurrency=, window=} -> uploader (keeps the client alive) */
static int c_uploader(lua_State *L)
{
    struct client *c = check_client(L);
    struct mxpc_s3_many_options o = {MXPC_S3_DEFAULT_CONCURRENCY, MXPC_S3_DEFAULT_WINDOW, NULL};
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

/* up:put(bucket, key, source [, size]) -> true | nil, err
 * source: an archive entry (read in C; size = the entry's), a string, or a
 * function returning chunks (size required). Returns once the object is on
 * its way; an error may also be one of an earlier object. */
static int u_put(lua_State *L)
{
    struct luploader *u = check_uploader(L);
    const char *bucket = opt_bucket(L, 2), *key = luaL_checkstring(L, 3);
    struct mxpc_s3_error e;
    int rc;
    if (mxpc_lua_is_archive_entry(L, 4)) {
        struct mxpc_archive_reader *r = mxpc_lua_archive_entry(L, 4);
        lua_getfield(L, 4, "size");
        lua_Integer size = luaL_optinteger(L, 5, lua_tointeger(L, -1));
        lua_pop(L, 1);
        rc = mxpc_s3_uploader_put(u->up, bucket, key, size, entry_source, r, &e);
    } else if (lua_type(L, 4) == LUA_TSTRING) {
        struct mem_source m = {NULL, 0, 0};
        m.data = lua_tolstring(L, 4, &m.len);
        rc = mxpc_s3_uploader_put(u->up, bucket, key, (int64_t)m.len, mem_source, &m, &e);
    } else {
        luaL_checktype(L, 4, LUA_TFUNCTION);
        lua_Integer size = luaL_checkinteger(L, 5);
        luaL_argcheck(L, size >= 0, 5, "size must not be negative");
        struct lua_cb cb = {L, 4, MXPC_CALLBACK_FAILURE_INIT, LUA_NOREF, NULL, 0, 0};
        rc = mxpc_s3_uploader_put(u->up, bucket, key, size, lua_source, &cb, &e);
        int n = cb_finish(&cb, rc, &e);
        if (n)
            return n;
    }
    return result_true(L, rc, &e);
}

/* up:finish() -> true | nil, err: waits for every upload */
static int u_finish(lua_State *L)
{
    struct luploader *u = check_uploader(L);
    struct mxpc_s3_error e;
    return result_true(L, mxpc_s3_uploader_finish(u->up, &e), &e);
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
        client_release(u->c);
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
        client_release(u->c);
    }
    return 0;
}

/* c:upload(bucket, key [, {concurrency=, window=}]) -> upload: u:write(chunk...),
 * u:commit() -> {size=, etag=}, u:abort() */
static int c_upload(lua_State *L)
{
    struct client *c = check_client(L);
    const char *bucket = opt_bucket(L, 2), *key = luaL_checkstring(L, 3);
    struct mxpc_s3_many_options o = {MXPC_S3_UPLOAD_CONCURRENCY, MXPC_S3_UPLOAD_CONCURRENCY * MXPC_S3_DEFAULT_PART_SIZE,
                                     NULL};
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
        return push_s3_error(L, &e);
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
            return push_s3_error(L, &e);
    }
    lua_pushboolean(L, 1);
    return 1;
}

static int s_commit(lua_State *L)
{
    struct stream *u = check_stream(L);
    struct mxpc_s3_object o = {0, ""};
    struct mxpc_s3_error e;
    if (mxpc_s3_upload_commit(u->u, &o, &e) != 0)
        return push_s3_error(L, &e);
    return push_object(L, &o);
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

/* c:presign(method, bucket, key [, expires = 3600]) -> url */
static int c_presign(lua_State *L)
{
    struct client *c = check_client(L);
    const char *method = luaL_checkstring(L, 2);
    const char *bucket = opt_bucket(L, 3), *key = luaL_checkstring(L, 4);
    lua_Integer expires = luaL_optinteger(L, 5, 3600);
    luaL_argcheck(L, expires >= 1 && expires <= 604800, 5, "expires must be 1..604800 seconds");
    struct mxpc_s3_error e;
    char *url = mxpc_s3_presign(c->s3, method, bucket, key, (long)expires, &e);
    if (!url)
        return push_s3_error(L, &e);
    lua_pushstring(L, url);
    free(url);
    return 1;
}

/* --- plain functions -------------------------------------------------------- */

/* s3.sign{method=, path=, query=, headers={{name, value}, ...} or {name=value},
 * payload_hash=, access_key=, secret_key=, session_token=, region=, service=,
 * time=, normalize=, content_sha256=, token_unsigned=, expires=}
 * -> {canonical_request=, string_to_sign=, signature=, authorization=,
 *     amz_date=, query= (when expires is given: presigned)} */
static int l_sign(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_settop(L, 1);
    const int keep = mxpc_args_keep(L); /* 2 */
    struct mxpc_sigv4_signer s = {
        .access_key = mxpc_args_opt_string(L, 1, "access_key", keep),
        .secret_key = mxpc_args_opt_string(L, 1, "secret_key", keep),
        .session_token = mxpc_args_opt_string(L, 1, "session_token", keep),
        .region = mxpc_args_opt_string(L, 1, "region", keep),
        .service = mxpc_args_opt_string(L, 1, "service", keep),
        .time = (time_t)opt_integer(L, 1, "time", (lua_Integer)time(NULL)),
        .flags = (opt_bool(L, 1, "normalize", 0) ? MXPC_SIGV4_NORMALIZE_PATH : 0u) |
                 (opt_bool(L, 1, "content_sha256", 0) ? MXPC_SIGV4_CONTENT_SHA256 : 0u) |
                 (opt_bool(L, 1, "token_unsigned", 0) ? MXPC_SIGV4_TOKEN_UNSIGNED : 0u),
    };
    mxpc_redact_add(s.secret_key);
    mxpc_redact_add(s.session_token);
    struct mxpc_sigv4_request req = {
        .method = mxpc_args_opt_string(L, 1, "method", keep),
        .path = mxpc_args_opt_string(L, 1, "path", keep),
        .query = mxpc_args_opt_string(L, 1, "query", keep),
        .payload_hash = mxpc_args_opt_string(L, 1, "payload_hash", keep),
    };
    /* headers: {{name, value}, ...} and name = value */
    lua_getfield(L, 1, "headers"); /* 3 */
    const int headers = 3;
    size_t n = lua_istable(L, headers) ? (size_t)luaL_len(L, headers) : 0;
    size_t count = n;
    if (lua_istable(L, headers)) {
        lua_pushnil(L);
        while (lua_next(L, headers)) {
            count += lua_type(L, -2) == LUA_TSTRING;
            lua_pop(L, 1);
        }
    }
    struct mxpc_sigv4_header *h = lua_newuserdatauv(L, (count ? count : 1) * sizeof *h, 0); /* 4 */
    size_t nh = 0;
    for (size_t i = 1; i <= n; i++) {
        lua_rawgeti(L, headers, (lua_Integer)i);
        luaL_argcheck(L, lua_istable(L, -1), 1, "headers[i] must be {name, value}");
        lua_rawgeti(L, -1, 1);
        lua_rawgeti(L, -2, 2);
        h[nh].name = mxpc_args_string(L, -2, keep, NULL, "a header name");
        h[nh].value = mxpc_args_string(L, -1, keep, NULL, "a header value");
        luaL_argcheck(L, h[nh].name && h[nh].value, 1, "headers[i] must be {name, value}");
        lua_pop(L, 3);
        nh++;
    }
    if (count > n) {
        lua_pushnil(L);
        while (lua_next(L, headers)) {
            if (lua_type(L, -2) == LUA_TSTRING) {
                h[nh].name = lua_tostring(L, -2);
                h[nh].value = mxpc_args_string(L, -1, keep, NULL, "a header value");
                luaL_argcheck(L, h[nh].value != NULL, 1, "headers[i] must be {name, value}");
                nh++;
            }
            lua_pop(L, 1);
        }
    }
    req.headers = h;
    req.nheaders = nh;
    lua_Integer expires = opt_integer(L, 1, "expires", 0);
    struct mxpc_sigv4_result r = MXPC_SIGV4_RESULT_INIT;
    int rc = expires ? mxpc_sigv4_presign(&s, &req, (long)expires, &r) : mxpc_sigv4_sign(&s, &req, &r);
    if (rc != 0) {
        mxpc_sigv4_result_free(&r);
        return luaL_error(L, "cannot sign: method, path, access_key, secret_key, region and service are required, "
                             "expires 1..604800");
    }
    lua_createtable(L, 0, 6);
    lua_pushstring(L, r.canonical_request.data);
    lua_setfield(L, -2, "canonical_request");
    lua_pushstring(L, r.string_to_sign.data);
    lua_setfield(L, -2, "string_to_sign");
    lua_pushstring(L, r.signature);
    lua_setfield(L, -2, "signature");
    lua_pushstring(L, r.amz_date);
    lua_setfield(L, -2, "amz_date");
    if (expires) {
        lua_pushstring(L, r.query.data);
        lua_setfield(L, -2, "query");
    } else {
        lua_pushstring(L, r.authorization.data);
        lua_setfield(L, -2, "authorization");
    }
    mxpc_sigv4_result_free(&r);
    return 1;
}

/* s3.credentials{access_key=, secret_key=, session_token=, profile=}
 * -> {access_key=, source=, session_token=bool} | nil, err: where the chain
 * finds credentials (never the secret). */
static int l_credentials(lua_State *L)
{
    const int keep = options_and_keep(L);
    struct mxpc_aws_credentials creds;
    int n = resolve_credentials(L, keep, &creds);
    if (n)
        return n;
    lua_createtable(L, 0, 5);
    lua_pushstring(L, creds.access_key);
    lua_setfield(L, -2, "access_key");
    lua_pushstring(L, creds.source);
    lua_setfield(L, -2, "source");
    lua_pushboolean(L, creds.session_token != NULL);
    lua_setfield(L, -2, "session_token");
    if (creds.role_arn[0]) {
        lua_pushstring(L, creds.role_arn);
        lua_setfield(L, -2, "role");
    }
    if (creds.expiration) {
        lua_pushinteger(L, (lua_Integer)creds.expiration);
        lua_setfield(L, -2, "expiration");
    }
    mxpc_aws_credentials_clear(&creds);
    return 1;
}

/* s3.rds_token{host=, port=, user=, region=, time=, access_key=, secret_key=,
 * session_token=, profile=} -> token, {source=, role=} | nil, err: an RDS IAM
 * authentication token (valid 15 minutes) signed with the chain's
 * credentials. The token is registered as a secret. */
static int l_rds_token(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    const int keep = options_and_keep(L);
    const char *host = mxpc_args_opt_string(L, 1, "host", keep), *user = mxpc_args_opt_string(L, 1, "user", keep);
    luaL_argcheck(L, host && *host, 1, "host is required");
    luaL_argcheck(L, user && *user, 1, "user is required");
    lua_Integer port = opt_integer(L, 1, "port", 5432);
    luaL_argcheck(L, port > 0 && port < 65536, 1, "port must be 1..65535");
    lua_Integer when = opt_integer(L, 1, "time", 0);
    char region[64];
    const char *r = mxpc_args_opt_string(L, 1, "region", keep);
    if (!r || !*r)
        r = getenv("AWS_REGION");
    if (!r || !*r)
        r = getenv("AWS_DEFAULT_REGION");
    snprintf(region, sizeof region, "%s", r && *r ? r : "us-east-1");
    struct mxpc_aws_credentials creds;
    int n = resolve_credentials(L, keep, &creds);
    if (n)
        return n;
    char *token = mxpc_rds_auth_token(&creds, host, (int)port, user, region, when ? (time_t)when : time(NULL));
    if (!token) {
        mxpc_aws_credentials_clear(&creds);
        return mxpc_error_fail(L, "credentials", NULL, "cannot sign an RDS IAM token for %s@%s:%d", user, host,
                               (int)port);
    }
    mxpc_redact_add(token);
    lua_pushstring(L, token);
    free(token);
    lua_createtable(L, 0, 2);
    lua_pushstring(L, creds.source);
    lua_setfield(L, -2, "source");
    lua_pushstring(L, creds.role_arn);
    lua_setfield(L, -2, "role");
    mxpc_aws_credentials_clear(&creds);
    return 2;
}

int luaopen_mxpc_s3(lua_State *L)
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
        {"head_many", c_head_many},
        {"get_many", c_get_many},
        {"uploader", c_uploader},
        {"upload", c_upload},
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
    static const luaL_Reg up_methods[] = {
        {"put", u_put}, {"finish", u_finish}, {"stats", u_stats}, {"close", u_close}, {NULL, NULL},
    };
    static const luaL_Reg up_meta[] = {
        {"__gc", u_close}, {"__close", u_close}, {"__tostring", u_tostring}, {NULL, NULL},
    };
    mxpc_lua_class(L, UPLOADER_META, up_methods, up_meta);
    static const luaL_Reg stream_methods[] = {
        {"write", s_write}, {"commit", s_commit}, {"abort", s_close}, {"close", s_close}, {"size", s_size},
        {NULL, NULL},
    };
    static const luaL_Reg stream_meta[] = {
        {"__gc", s_close},
        {"__close", s_close},
        {"__tostring", s_tostring},
        {NULL, NULL},
    };
    mxpc_lua_class(L, UPLOAD_META, stream_methods, stream_meta);

    static const luaL_Reg functions[] = {
        {"client", l_client},
        {"sign", l_sign},
        {"credentials", l_credentials},
        {"rds_token", l_rds_token},
        {NULL, NULL},
    };
    luaL_newlib(L, functions);
    return 1;
}
