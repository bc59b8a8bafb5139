/* Lua module mxpc.archive: the streaming tar.gz writer and reader
 * (archive_writer.c, archive_reader.c) as userdata handles. The Mendix
 * layout is decided in lua/mxpc/backup_archive.lua; docs/archive.md has the
 * API with examples.
 *
 *   local w <close> = assert(archive.writer("out.tar.gz", {level = 6}))
 *   assert(w:add_string(".metadata", "{}"))
 *   assert(w:commit())        -- without commit, closing removes the partial file
 *
 *   local r <close> = assert(archive.reader("out.tar.gz"))
 *   for e in r:entries() do print(e.name, e.size, e:read("a")) end
 *
 * Sinks and sources are Lua functions called from inside libarchive's
 * callbacks; they run in a protected call so that an error they raise never
 * unwinds through libarchive: it is kept and raised again once libarchive has
 * returned. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <lauxlib.h>

#include "mxpc/archive.h"
#include "mxpc/buf.h"
#include "mxpc/error.h"
#include "mxpc/lua_args.h"
#include "mxpc/lua_callback.h"
#include "mxpc/modules.h"
#include "mxpc/pgz.h"
#include "mxpc/process.h"
#include "mxpc/runtime.h"

#define WRITER_META "mxpc.archive.writer"
#define WENTRY_META "mxpc.archive.writer_entry"
#define READER_META "mxpc.archive.reader"
#define RENTRY_META "mxpc.archive.entry"

#define CHUNK (64 * 1024)
#define FILE_CHUNK (256 * 1024)
#define STDERR_MAX (16 * 1024)


static const char *status_code(int rc)
{
    switch (rc) {
    case MXPC_ARCHIVE_EEXIST: return "exists";
    case MXPC_ARCHIVE_EINVALID: return "archive_invalid";
    case MXPC_ARCHIVE_ESIZE: return "archive_size";
    default: return "io";
    }
}

/* Turns a failed C call into the Lua convention: re-raises what a callback
 * raised, raises on interruption and misuse, else pushes nil, err. */
static int push_failure(lua_State *L, struct mxpc_callback_failure *f, int rc, const char *msg)
{
    if (f)
        mxpc_callback_reraise(L, f);
    if (rc == MXPC_ARCHIVE_EINTERRUPTED) {
        mxpc_check_interrupt(L);
        return mxpc_error_raise(L, "interrupted", NULL, "%s", msg);
    }
    if (rc == MXPC_ARCHIVE_ESTATE)
        return luaL_error(L, "%s", msg);
    const char *code = f && f->code[0] ? f->code : status_code(rc);
    lua_pushnil(L); /* code "exists": the caller says how to replace it (force = true, --force) */
    mxpc_error_push(L, code, NULL, "%s", msg);
    return 2;
}

static int opt_field(lua_State *L, int opts, const char *name, int type)
{
    if (lua_isnoneornil(L, opts))
        return 0;
    luaL_checktype(L, opts, LUA_TTABLE);
    int t = lua_getfield(L, opts, name);
    if (t == LUA_TNIL) {
        lua_pop(L, 1);
        return 0;
    }
    if (type != LUA_TNONE && t != type)
        luaL_error(L, "option '%s' must be a %s", name, lua_typename(L, type));
    return 1;
}

/* --- writer -------------------------------------------------------------- */

struct lwriter {
    struct mxpc_archive_writer *w;
    lua_State *L; /* of the current call, for the sink */
    int sink_ref;
    struct mxpc_callback_failure failure;
    time_t mtime;
    lua_Integer entry_seq; /* which begin() the open entry came from */
};

struct lwentry {
    lua_Integer seq;
    int done;
};

static int lua_sink(void *ud, const void *data, size_t len, char *err, size_t errlen)
{
    struct lwriter *lw = ud;
    lua_State *L = lw->L;
    lua_rawgeti(L, LUA_REGISTRYINDEX, lw->sink_ref);
    lua_pushlstring(L, data, len);
    if (mxpc_callback_call(L, 1, &lw->failure, err, errlen) != 0)
        return -1;
    lua_pop(L, 2);
    return 0;
}

static struct lwriter *check_writer(lua_State *L, int idx)
{
    struct lwriter *lw = luaL_checkudata(L, idx, WRITER_META);
    if (!lw->w)
        luaL_error(L, "attempt to use a closed archive writer");
    lw->L = L;
    return lw;
}

struct mxpc_archive_writer *mxpc_lua_archive_writer(lua_State *L, int idx, long long *mtime)
{
    struct lwriter *lw = check_writer(L, idx);
    if (mxpc_archive_writer_in_entry(lw->w))
        luaL_error(L, "the archive writer has an entry open");
    *mtime = lw->mtime;
    return lw->w;
}

/* 0 = success; otherwise pushes the failure and returns the count. */
static int writer_rc(lua_State *L, struct lwriter *lw, int rc)
{
    if (rc == MXPC_ARCHIVE_OK)
        return 0;
    return push_failure(L, &lw->failure, rc, mxpc_archive_writer_error(lw->w));
}

static int w_close(lua_State *L)
{
    struct lwriter *lw = luaL_checkudata(L, 1, WRITER_META);
    mxpc_archive_writer_free(lw->w);
    lw->w = NULL;
    luaL_unref(L, LUA_REGISTRYINDEX, lw->sink_ref);
    lw->sink_ref = LUA_NOREF;
    mxpc_callback_failure_reset(L, &lw->failure);
    return 0;
}

static int l_writer(lua_State *L)
{
    int is_sink = lua_isfunction(L, 1);
    const char *path = is_sink ? NULL : luaL_checkstring(L, 1);
    int force = opt_field(L, 2, "force", LUA_TNONE) ? lua_toboolean(L, -1) : 0;
    lua_Integer level = opt_field(L, 2, "level", LUA_TNUMBER) ? luaL_checkinteger(L, -1)
                                                                 : MXPC_ARCHIVE_LEVEL_DEFAULT;
    luaL_argcheck(L, level >= 0 && level <= 9, 2, "level must be between 0 and 9");
    lua_Integer threads = opt_field(L, 2, "threads", LUA_TNUMBER) ? luaL_checkinteger(L, -1) : 0;
    luaL_argcheck(L, threads >= 0 && threads <= MXPC_PGZ_MAX_THREADS, 2, "threads must be between 0 and 16");
    lua_Integer mtime = opt_field(L, 2, "mtime", LUA_TNUMBER) ? luaL_checkinteger(L, -1) : (lua_Integer)time(NULL);
    const char *name = mxpc_args_opt_string(L, 2, "name", mxpc_args_keep(L));

    struct lwriter *lw = lua_newuserdatauv(L, sizeof *lw, 0);
    memset(lw, 0, sizeof *lw);
    lw->sink_ref = LUA_NOREF;
    lw->failure.raised_ref = LUA_NOREF;
    lw->mtime = (time_t)mtime;
    lw->L = L;
    luaL_setmetatable(L, WRITER_META);
    char err[1024];
    enum mxpc_archive_status status = MXPC_ARCHIVE_OK;
    if (is_sink) {
        lua_pushvalue(L, 1);
        lw->sink_ref = luaL_ref(L, LUA_REGISTRYINDEX);
        lw->w = mxpc_archive_writer_open_sink(lua_sink, lw, name, (int)level, &status, err, sizeof err);
    } else {
        lw->w = mxpc_archive_writer_open_path(path, force, (int)level, &status, err, sizeof err);
    }
    if (!lw->w)
        return push_failure(L, &lw->failure, status, err);
    mxpc_archive_writer_set_threads(lw->w, (int)threads);
    return 1;
}

static int begin_entry(lua_State *L, struct lwriter *lw, int name_idx, int size_idx)
{
    const char *name = luaL_checkstring(L, name_idx);
    lua_Integer size = luaL_checkinteger(L, size_idx);
    luaL_argcheck(L, size >= 0, size_idx, "size must not be negative");
    return writer_rc(L, lw, mxpc_archive_writer_begin_entry(lw->w, name, size, lw->mtime));
}

static int push_true(lua_State *L)
{
    lua_pushboolean(L, 1);
    return 1;
}

/* w:add_string(name, s) */
static int w_add_string(lua_State *L)
{
    struct lwriter *lw = check_writer(L, 1);
    size_t len;
    const char *s = luaL_checklstring(L, 3, &len);
    lua_pushinteger(L, (lua_Integer)len);
    int n = begin_entry(L, lw, 2, 4);
    if (!n)
        n = writer_rc(L, lw, mxpc_archive_writer_write(lw->w, s, len));
    if (!n)
        n = writer_rc(L, lw, mxpc_archive_writer_end_entry(lw->w));
    return n ? n : push_true(L);
}

/* w:add_file(name, path): the file's size when opened is the entry's size */
static int w_add_file(lua_State *L)
{
    struct lwriter *lw = check_writer(L, 1);
    const char *name = luaL_checkstring(L, 2);
    const char *path = luaL_checkstring(L, 3);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0) {
        int e = errno;
        if (fd >= 0)
            close(fd);
        return mxpc_error_fail(L, e == ENOENT ? "not_found" : "io", NULL, "cannot open %s: %s", path, strerror(e));
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return mxpc_error_fail(L, "io", NULL, "cannot add %s: not a regular file", path);
    }
    /* the loop only records what went wrong: the buffer and the descriptor
     * are released before anything is raised */
    char *buf = malloc(FILE_CHUNK);
    int rc = buf ? mxpc_archive_writer_begin_entry(lw->w, name, (int64_t)st.st_size, lw->mtime) : MXPC_ARCHIVE_EIO;
    int read_errno = 0;
    while (rc == MXPC_ARCHIVE_OK) {
        ssize_t got = read(fd, buf, FILE_CHUNK);
        if (got < 0 && errno == EINTR && !mxpc_interrupted())
            continue;
        if (got < 0) {
            read_errno = errno;
            mxpc_archive_writer_abort(lw->w);
            break;
        }
        if (got == 0) {
            rc = mxpc_archive_writer_end_entry(lw->w);
            break;
        }
        rc = mxpc_archive_writer_write(lw->w, buf, (size_t)got);
    }
    close(fd);
    if (!buf)
        return luaL_error(L, "out of memory");
    free(buf);
    if (read_errno)
        return mxpc_error_fail(L, "io", NULL, "cannot read %s: %s", path, strerror(read_errno));
    int n = writer_rc(L, lw, rc);
    return n ? n : push_true(L);
}

/* w:add_stream(name, size, source): source() returns the next chunk, nil at
 * the end, or nil, err */
static int w_add_stream(lua_State *L)
{
    struct lwriter *lw = check_writer(L, 1);
    luaL_checktype(L, 4, LUA_TFUNCTION);
    int n = begin_entry(L, lw, 2, 3);
    while (!n) {
        lua_pushvalue(L, 4);
        char err[512];
        if (mxpc_callback_call(L, 0, &lw->failure, err, sizeof err) != 0) {
            mxpc_archive_writer_abort(lw->w);
            if (lw->failure.raised_ref != LUA_NOREF)
                return push_failure(L, &lw->failure, MXPC_ARCHIVE_EIO, err);
            struct mxpc_buf b = MXPC_BUF_INIT;
            mxpc_archive_quote(&b, lua_tostring(L, 2));
            lua_pushnil(L);
            mxpc_error_push(L, lw->failure.code, NULL, "%s: entry %s: %s", mxpc_archive_writer_name(lw->w), b.data,
                            err);
            mxpc_buf_free(&b);
            return 2;
        }
        if (lua_isnil(L, -2)) {
            lua_pop(L, 2);
            n = writer_rc(L, lw, mxpc_archive_writer_end_entry(lw->w));
            break;
        }
        size_t len;
        const char *s = lua_tolstring(L, -2, &len);
        if (!s) {
            mxpc_archive_writer_abort(lw->w);
            return luaL_error(L, "the source of an archive entry must return strings, got %s",
                              luaL_typename(L, -2));
        }
        int rc = mxpc_archive_writer_write(lw->w, s, len);
        lua_pop(L, 2);
        n = writer_rc(L, lw, rc);
    }
    return n ? n : push_true(L);
}

/* w:begin(name, size) -> entry with :write(...) and :finish() */
static int w_begin(lua_State *L)
{
    struct lwriter *lw = check_writer(L, 1);
    int n = begin_entry(L, lw, 2, 3);
    if (n)
        return n;
    struct lwentry *e = lua_newuserdatauv(L, sizeof *e, 2);
    e->seq = ++lw->entry_seq;
    e->done = 0;
    luaL_setmetatable(L, WENTRY_META);
    lua_pushvalue(L, 1);
    lua_setiuservalue(L, -2, 1);
    lua_pushvalue(L, 2);
    lua_setiuservalue(L, -2, 2);
    return 1;
}

static int w_commit(lua_State *L)
{
    struct lwriter *lw = check_writer(L, 1);
    int n = writer_rc(L, lw, mxpc_archive_writer_commit(lw->w));
    return n ? n : push_true(L);
}

static int w_abort(lua_State *L)
{
    struct lwriter *lw = luaL_checkudata(L, 1, WRITER_META);
    mxpc_archive_writer_abort(lw->w);
    return 0;
}

/* Pushes {entries, bytes_in, bytes_out}, shared by w:stats() and r:info(). */
static void push_counts(lua_State *L, uint64_t entries, uint64_t in, uint64_t out)
{
    lua_createtable(L, 0, 5);
    lua_pushinteger(L, (lua_Integer)entries);
    lua_setfield(L, -2, "entries");
    lua_pushinteger(L, (lua_Integer)in);
    lua_setfield(L, -2, "bytes_in");
    lua_pushinteger(L, (lua_Integer)out);
    lua_setfield(L, -2, "bytes_out");
}

static int w_stats(lua_State *L)
{
    struct lwriter *lw = check_writer(L, 1);
    uint64_t entries, in, out;
    mxpc_archive_writer_stats(lw->w, &entries, &in, &out);
    push_counts(L, entries, in, out);
    uint64_t blocks, stored;
    int threads;
    mxpc_archive_writer_compression_stats(lw->w, &blocks, &stored, &threads);
    lua_pushinteger(L, (lua_Integer)blocks);
    lua_setfield(L, -2, "blocks");
    lua_pushinteger(L, (lua_Integer)stored);
    lua_setfield(L, -2, "stored_blocks");
    lua_pushinteger(L, threads);
    lua_setfield(L, -2, "threads");
    return 1;
}

static int w_tostring(lua_State *L)
{
    struct lwriter *lw = luaL_checkudata(L, 1, WRITER_META);
    if (!lw->w) {
        lua_pushstring(L, "archive_writer (closed)");
        return 1;
    }
    uint64_t entries;
    mxpc_archive_writer_stats(lw->w, &entries, NULL, NULL);
    lua_pushfstring(L, "archive_writer (%s, %d entries, %s)", mxpc_archive_writer_name(lw->w), (int)entries,
                    mxpc_archive_writer_committed(lw->w) ? "committed" : "not committed");
    return 1;
}

/* The writer an entry belongs to, if the entry is still the open one. */
static struct lwriter *entry_writer(lua_State *L, struct lwentry **out)
{
    struct lwentry *e = luaL_checkudata(L, 1, WENTRY_META);
    lua_getiuservalue(L, 1, 1);
    struct lwriter *lw = check_writer(L, lua_gettop(L));
    lua_pop(L, 1);
    if (e->done || e->seq != lw->entry_seq || !mxpc_archive_writer_in_entry(lw->w))
        luaL_error(L, "attempt to use a finished archive entry");
    *out = e;
    return lw;
}

/* e:write(s, ...) */
static int we_write(lua_State *L)
{
    struct lwentry *e;
    struct lwriter *lw = entry_writer(L, &e);
    int top = lua_gettop(L);
    for (int i = 2; i <= top; i++) {
        size_t len;
        const char *s = luaL_checklstring(L, i, &len);
        int n = writer_rc(L, lw, mxpc_archive_writer_write(lw->w, s, len));
        if (n)
            return n;
    }
    lua_settop(L, 1);
    return 1;
}

static int we_finish(lua_State *L)
{
    struct lwentry *e;
    struct lwriter *lw = entry_writer(L, &e);
    e->done = 1;
    int n = writer_rc(L, lw, mxpc_archive_writer_end_entry(lw->w));
    return n ? n : push_true(L);
}

/* close/__close/__gc of an unfinished entry: the archive cannot be completed
 * any more (libarchive would pad the entry with zeros), so it is aborted. */
static int we_close(lua_State *L)
{
    struct lwentry *e = luaL_checkudata(L, 1, WENTRY_META);
    if (e->done)
        return 0;
    e->done = 1;
    lua_getiuservalue(L, 1, 1);
    struct lwriter *lw = luaL_testudata(L, -1, WRITER_META);
    if (lw && lw->w && e->seq == lw->entry_seq && mxpc_archive_writer_in_entry(lw->w))
        mxpc_archive_writer_abort(lw->w);
    return 0;
}

static int we_tostring(lua_State *L)
{
    struct lwentry *e = luaL_checkudata(L, 1, WENTRY_META);
    lua_getiuservalue(L, 1, 2);
    struct mxpc_buf b = MXPC_BUF_INIT;
    mxpc_archive_quote(&b, lua_tostring(L, -1));
    lua_pushfstring(L, "archive_writer_entry (%s, %s)", b.data, e->done ? "finished" : "open");
    mxpc_buf_free(&b);
    return 1;
}

/* --- reader -------------------------------------------------------------- */

struct lreader {
    struct mxpc_archive_reader *r;
    lua_State *L;
    int source_ref;
    int chunk_ref; /* the source's chunk not yet handed over */
    size_t chunk_off;
    struct mxpc_callback_failure failure;
    lua_Integer seq; /* number of the current entry */
};

struct lrentry {
    lua_Integer seq;
};

static ssize_t lua_source(void *ud, void *buf, size_t cap, char *err, size_t errlen)
{
    struct lreader *lr = ud;
    lua_State *L = lr->L;
    while (lr->chunk_ref == LUA_NOREF) {
        lua_rawgeti(L, LUA_REGISTRYINDEX, lr->source_ref);
        int got = mxpc_callback_source_chunk(L, &lr->failure, err, errlen);
        if (got <= 0)
            return got;
        if (lua_rawlen(L, -1) == 0) {
            lua_pop(L, 1);
            continue;
        }
        lr->chunk_ref = luaL_ref(L, LUA_REGISTRYINDEX);
        lr->chunk_off = 0;
    }
    lua_rawgeti(L, LUA_REGISTRYINDEX, lr->chunk_ref);
    size_t len;
    const char *s = lua_tolstring(L, -1, &len);
    size_t n = len - lr->chunk_off < cap ? len - lr->chunk_off : cap;
    memcpy(buf, s + lr->chunk_off, n);
    lua_pop(L, 1);
    lr->chunk_off += n;
    if (lr->chunk_off == len) {
        luaL_unref(L, LUA_REGISTRYINDEX, lr->chunk_ref);
        lr->chunk_ref = LUA_NOREF;
    }
    return (ssize_t)n;
}

static struct lreader *check_reader(lua_State *L, int idx)
{
    struct lreader *lr = luaL_checkudata(L, idx, READER_META);
    if (!lr->r)
        luaL_error(L, "attempt to use a closed archive reader");
    lr->L = L;
    return lr;
}

static int reader_rc(lua_State *L, struct lreader *lr, int rc)
{
    return push_failure(L, &lr->failure, rc, mxpc_archive_reader_error(lr->r));
}

static int r_close(lua_State *L)
{
    struct lreader *lr = luaL_checkudata(L, 1, READER_META);
    mxpc_archive_reader_free(lr->r);
    lr->r = NULL;
    luaL_unref(L, LUA_REGISTRYINDEX, lr->source_ref);
    luaL_unref(L, LUA_REGISTRYINDEX, lr->chunk_ref);
    lr->source_ref = lr->chunk_ref = LUA_NOREF;
    mxpc_callback_failure_reset(L, &lr->failure);
    return 0;
}

/* archive.reader(path or source [, {name = "shown in messages"}]) */
static int l_reader(lua_State *L)
{
    int is_source = lua_isfunction(L, 1);
    const char *path = is_source ? NULL : luaL_checkstring(L, 1);
    const char *name = mxpc_args_opt_string(L, 2, "name", mxpc_args_keep(L));
    struct lreader *lr = lua_newuserdatauv(L, sizeof *lr, 0);
    memset(lr, 0, sizeof *lr);
    lr->source_ref = lr->chunk_ref = LUA_NOREF;
    lr->failure.raised_ref = LUA_NOREF;
    lr->L = L;
    luaL_setmetatable(L, READER_META);
    char err[1024];
    enum mxpc_archive_status status = MXPC_ARCHIVE_OK;
    if (is_source) {
        lua_pushvalue(L, 1);
        lr->source_ref = luaL_ref(L, LUA_REGISTRYINDEX);
        lr->r = mxpc_archive_reader_open_source(lua_source, lr, name, &status, err, sizeof err);
    } else {
        lr->r = mxpc_archive_reader_open_path(path, name, &status, err, sizeof err);
        if (!lr->r && status == MXPC_ARCHIVE_EIO && errno == ENOENT)
            return mxpc_error_fail(L, "not_found", NULL, "%s", err);
    }
    if (!lr->r)
        return push_failure(L, &lr->failure, status, err);
    return 1;
}

static const char *const type_names[] = {"file", "directory"};

/* r:next() -> entry, or nil at the end, or nil, err */
static int r_next(lua_State *L)
{
    struct lreader *lr = check_reader(L, 1);
    struct mxpc_archive_entry e;
    int rc = mxpc_archive_reader_next(lr->r, &e);
    lr->seq++; /* the previous entry object is stale from here on */
    if (rc == MXPC_ARCHIVE_END) {
        lua_pushnil(L);
        return 1;
    }
    if (rc != MXPC_ARCHIVE_OK)
        return reader_rc(L, lr, rc);
    struct lrentry *le = lua_newuserdatauv(L, sizeof *le, 2);
    le->seq = lr->seq;
    luaL_setmetatable(L, RENTRY_META);
    lua_pushvalue(L, 1);
    lua_setiuservalue(L, -2, 1);
    lua_createtable(L, 0, 4);
    lua_pushstring(L, e.name);
    lua_setfield(L, -2, "name");
    lua_pushinteger(L, (lua_Integer)e.size);
    lua_setfield(L, -2, "size");
    lua_pushstring(L, type_names[e.type]);
    lua_setfield(L, -2, "type");
    lua_pushinteger(L, (lua_Integer)e.mtime);
    lua_setfield(L, -2, "mtime");
    lua_setiuservalue(L, -2, 2);
    return 1;
}

/* for e in r:entries() do ... end: raises the error object on failure */
static int entries_iter(lua_State *L)
{
    lua_settop(L, 1);
    int n = r_next(L);
    if (n == 2)
        return lua_error(L);
    return 1;
}

static int r_entries(lua_State *L)
{
    check_reader(L, 1);
    lua_pushcfunction(L, entries_iter);
    lua_pushvalue(L, 1);
    return 2;
}

static int r_info(lua_State *L)
{
    struct lreader *lr = check_reader(L, 1);
    uint64_t entries, in, out;
    mxpc_archive_reader_stats(lr->r, &entries, &in, &out);
    push_counts(L, entries, in, out);
    lua_pushstring(L, mxpc_archive_reader_name(lr->r));
    lua_setfield(L, -2, "name");
    const char *c = mxpc_archive_reader_compression(lr->r);
    if (c) {
        lua_pushstring(L, c);
        lua_setfield(L, -2, "compression");
    }
    return 1;
}

static int r_tostring(lua_State *L)
{
    struct lreader *lr = luaL_checkudata(L, 1, READER_META);
    if (!lr->r) {
        lua_pushstring(L, "archive_reader (closed)");
        return 1;
    }
    uint64_t entries;
    mxpc_archive_reader_stats(lr->r, &entries, NULL, NULL);
    lua_pushfstring(L, "archive_reader (%s, %d entries read)", mxpc_archive_reader_name(lr->r), (int)entries);
    return 1;
}

/* The reader of the entry at idx, which must still be the current one. */
static struct lreader *entry_reader_at(lua_State *L, int idx)
{
    idx = lua_absindex(L, idx);
    struct lrentry *e = luaL_checkudata(L, idx, RENTRY_META);
    lua_getiuservalue(L, idx, 1);
    struct lreader *lr = check_reader(L, lua_gettop(L));
    lua_pop(L, 1);
    if (e->seq != lr->seq || !mxpc_archive_reader_current(lr->r, NULL))
        luaL_error(L, "attempt to use an archive entry after moving past it");
    return lr;
}

static struct lreader *entry_reader(lua_State *L)
{
    return entry_reader_at(L, 1);
}

struct mxpc_archive_reader *mxpc_lua_archive_entry(lua_State *L, int idx)
{
    return entry_reader_at(L, idx)->r;
}

int mxpc_lua_is_archive_entry(lua_State *L, int idx)
{
    return luaL_testudata(L, idx, RENTRY_META) != NULL;
}

/* e:read([n | "a"]) -> up to n bytes (default 64 KiB), everything left with
 * "a", nil at the end of the entry, or nil, err */
static int re_read(lua_State *L)
{
    struct lreader *lr = entry_reader(L);
    int all = lua_type(L, 2) == LUA_TSTRING && strcmp(lua_tostring(L, 2), "a") == 0;
    lua_Integer want = all ? CHUNK : luaL_optinteger(L, 2, CHUNK);
    luaL_argcheck(L, want > 0, 2, "count must be positive");
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    size_t total = 0;
    for (;;) {
        char *p = luaL_prepbuffsize(&b, (size_t)want);
        ssize_t n = mxpc_archive_reader_read(lr->r, p, (size_t)want);
        if (n < 0)
            return reader_rc(L, lr, (int)n);
        luaL_addsize(&b, (size_t)n);
        total += (size_t)n;
        if (n == 0 || !all)
            break;
    }
    if (total == 0 && !all) {
        lua_pushnil(L);
        return 1;
    }
    luaL_pushresult(&b);
    return 1;
}

static int chunks_iter(lua_State *L)
{
    lua_settop(L, 0);
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_pushvalue(L, lua_upvalueindex(2));
    int n = re_read(L);
    if (n == 2)
        return lua_error(L);
    return 1;
}

/* for chunk in e:chunks([n]) do ... end: raises the error object on failure */
static int re_chunks(lua_State *L)
{
    entry_reader(L);
    lua_settop(L, 2);
    lua_pushcclosure(L, chunks_iter, 2);
    return 1;
}

static int re_skip(lua_State *L)
{
    struct lreader *lr = entry_reader(L);
    int rc = mxpc_archive_reader_skip(lr->r);
    if (rc != MXPC_ARCHIVE_OK)
        return reader_rc(L, lr, rc);
    return push_true(L);
}

/* Entries own nothing: closing one is allowed (for <close>) and does nothing. */
static int re_close(lua_State *L)
{
    luaL_checkudata(L, 1, RENTRY_META);
    return 0;
}

static int re_index(lua_State *L)
{
    lua_pushvalue(L, 2);
    if (lua_rawget(L, lua_upvalueindex(1)) != LUA_TNIL)
        return 1;
    lua_getiuservalue(L, 1, 2);
    lua_pushvalue(L, 2);
    lua_rawget(L, -2);
    return 1;
}

static int re_tostring(lua_State *L)
{
    luaL_checkudata(L, 1, RENTRY_META);
    lua_getiuservalue(L, 1, 2);
    lua_getfield(L, -1, "name");
    lua_getfield(L, -2, "type");
    lua_getfield(L, -3, "size");
    struct mxpc_buf b = MXPC_BUF_INIT;
    mxpc_archive_quote(&b, lua_tostring(L, -3));
    lua_pushfstring(L, "archive_entry (%s, %s, %I bytes)", b.data, lua_tostring(L, -2), lua_tointeger(L, -1));
    mxpc_buf_free(&b);
    return 1;
}

/* --- keeping an entry in a file (e:save, pipe_to's keep) ------------------- */

struct kept {
    int fd;
    const char *path;
    int err; /* the first errno */
};

/* Creates the file, new (0600): 0, or -1 with k->err. */
static int kept_open(struct kept *k, const char *path)
{
    k->path = path;
    k->err = 0;
    k->fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (k->fd < 0)
        k->err = errno;
    return k->fd < 0 ? -1 : 0;
}

static void kept_write(struct kept *k, const char *p, size_t len)
{
    while (len > 0 && !k->err) {
        ssize_t w = write(k->fd, p, len);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0) {
            k->err = errno;
            break;
        }
        p += w;
        len -= (size_t)w;
    }
}

/* Closes the file, and removes it unless `ok` and every write went well;
 * returns the first errno, or 0. */
static int kept_close(struct kept *k, int ok)
{
    if (k->fd >= 0 && close(k->fd) != 0 && !k->err)
        k->err = errno;
    k->fd = -1;
    if (!ok || k->err)
        unlink(k->path);
    return k->err;
}

static int kept_fail(lua_State *L, const struct kept *k)
{
    int e = k->err;
    const char *code = e == ENOSPC || e == EDQUOT                ? "space"
                       : e == EEXIST                             ? "exists"
                       : e == EACCES || e == EPERM || e == EROFS ? "permission"
                       : e == ENOENT                             ? "not_found"
                                                                 : "io";
    return mxpc_error_fail(L, code, NULL, "cannot write %s: %s", k->path, strerror(e));
}

/* e:save(path) -> bytes, or nil, err: the rest of the entry into a new file
 * (0600; an existing one is an error), read to the end and so checked. On
 * failure no file is left. */
static int re_save(lua_State *L)
{
    struct lreader *lr = entry_reader(L);
    const char *path = luaL_checkstring(L, 2);
    struct kept k;
    if (kept_open(&k, path) != 0)
        return kept_fail(L, &k);
    char *buf = malloc(CHUNK);
    ssize_t n = buf ? 1 : 0;
    lua_Integer total = 0;
    while (n > 0 && !k.err) {
        n = mxpc_archive_reader_read(lr->r, buf, CHUNK);
        if (n > 0) {
            kept_write(&k, buf, (size_t)n);
            total += n;
        }
    }
    free(buf);
    int werr = kept_close(&k, buf && n == 0);
    if (!buf)
        return luaL_error(L, "out of memory");
    if (n < 0)
        return reader_rc(L, lr, (int)n);
    if (werr)
        return kept_fail(L, &k);
    lua_pushinteger(L, total);
    return 1;
}

/* --- e:pipe_to(argv): stream an entry into a command ---------------------- */

/* e:pipe_to({cmd, args...} [, {head = n, keep = path}]) -> {status = exit
 * code | nil, signal = n | nil, stderr = text, head = the first n bytes}, or
 * nil, err if the command cannot be started or `keep` not written. The whole
 * entry is read (and so checked) even if the command stops reading early; its
 * stdout goes to /dev/null. `head` spares a second pass to look at a header
 * (the dump's); `keep` writes the entry into a new file (as e:save) as well,
 * which is left only when the command's result is returned. */
static int re_pipe_to(lua_State *L)
{
    struct lreader *lr = entry_reader(L);
    luaL_checktype(L, 2, LUA_TTABLE);
    lua_settop(L, 3);
    int keep = mxpc_args_keep(L);
    size_t argc;
    const char **argv = mxpc_args_string_array(L, 2, keep, &argc, "command words must be strings");
    luaL_argcheck(L, argc >= 1, 2, "the command is empty");
    lua_Integer head_max = opt_field(L, 3, "head", LUA_TNUMBER) ? luaL_checkinteger(L, -1) : 0;
    luaL_argcheck(L, head_max >= 0 && head_max <= 1024 * 1024, 3, "head must be between 0 and 1 MiB");
    const char *keep_path = opt_field(L, 3, "keep", LUA_TSTRING) ? lua_tostring(L, -1) : NULL;
    struct kept k = {-1, NULL, 0};
    if (keep_path && kept_open(&k, keep_path) != 0)
        return kept_fail(L, &k);
    struct mxpc_buf head = MXPC_BUF_INIT;
    struct mxpc_process_options po = {.argv = argv, .in = MXPC_PROCESS_PIPE, .out = MXPC_PROCESS_NULL,
                                      .stderr_max = STDERR_MAX};
    struct mxpc_process *child;
    int e = mxpc_process_spawn(&child, &po);
    if (e != 0) {
        if (keep_path)
            kept_close(&k, 0);
        return mxpc_error_fail(L, e == ENOENT ? "not_found" : "io", NULL, "cannot run %s: %s", argv[0], strerror(e));
    }
    char *buf = malloc(CHUNK);
    int rc = buf ? 0 : MXPC_ARCHIVE_EIO;
    for (ssize_t n = 1; rc == 0 && n > 0 && !k.err;) {
        n = mxpc_archive_reader_read(lr->r, buf, CHUNK);
        if (n > 0 && head.len < (size_t)head_max)
            mxpc_buf_append(&head, buf, (size_t)n < head_max - head.len ? (size_t)n : head_max - head.len);
        if (n > 0 && keep_path)
            kept_write(&k, buf, (size_t)n);
        if (n < 0)
            rc = (int)n;
        else if (n > 0 && mxpc_process_write(child, buf, (size_t)n) < 0)
            rc = MXPC_ARCHIVE_EINTERRUPTED; /* a child that stops reading is judged by its status */
    }
    free(buf);
    if (k.err) /* the child is not waited for: it is stopped and reaped by mxpc_process_free */
        rc = rc ? rc : MXPC_ARCHIVE_EIO;
    int status = 0;
    if (rc == 0 && mxpc_process_wait(child, &status) != 0)
        rc = MXPC_ARCHIVE_EINTERRUPTED;
    int werr = keep_path ? kept_close(&k, rc == 0) : 0;
    if (rc == 0 && werr) {
        mxpc_buf_free(&head);
        mxpc_process_free(child);
        return kept_fail(L, &k);
    }
    if (rc != 0) {
        mxpc_buf_free(&head);
        mxpc_process_free(child);
        if (werr && buf)
            return kept_fail(L, &k);
        if (rc == MXPC_ARCHIVE_EINTERRUPTED)
            mxpc_check_interrupt(L);
        if (!buf)
            return luaL_error(L, "out of memory");
        return reader_rc(L, lr, rc);
    }
    mxpc_process_push_result(L, child, status);
    mxpc_process_free(child);
    lua_pushlstring(L, head.data ? head.data : "", head.len);
    lua_setfield(L, -2, "head");
    mxpc_buf_free(&head);
    return 1;
}

/* --- module ------------------------------------------------------------------ */

static int l_quote(lua_State *L)
{
    struct mxpc_buf b = MXPC_BUF_INIT;
    mxpc_archive_quote(&b, luaL_checkstring(L, 1));
    lua_pushlstring(L, b.data, b.len);
    mxpc_buf_free(&b);
    return 1;
}

/* archive.name_problem(name) -> nil if the name may appear in an archive, else why not */
static int l_name_problem(lua_State *L)
{
    size_t len;
    const char *name = luaL_checklstring(L, 1, &len);
    const char *problem = strlen(name) != len ? "name contains a NUL byte" : mxpc_archive_name_problem(name);
    if (!problem)
        return 0;
    lua_pushstring(L, problem);
    return 1;
}

int luaopen_mxpc_archive(lua_State *L)
{
    static const luaL_Reg writer_methods[] = {
        {"add_string", w_add_string}, {"add_file", w_add_file}, {"add_stream", w_add_stream},
        {"begin", w_begin},           {"commit", w_commit},     {"abort", w_abort},
        {"close", w_close},           {"stats", w_stats},       {NULL, NULL},
    };
    static const luaL_Reg writer_meta[] = {
        {"__gc", w_close}, {"__close", w_close}, {"__tostring", w_tostring}, {NULL, NULL},
    };
    static const luaL_Reg wentry_methods[] = {
        {"write", we_write}, {"finish", we_finish}, {"close", we_close}, {NULL, NULL},
    };
    static const luaL_Reg wentry_meta[] = {
        {"__gc", we_close}, {"__close", we_close}, {"__tostring", we_tostring}, {NULL, NULL},
    };
    static const luaL_Reg reader_methods[] = {
        {"next", r_next}, {"entries", r_entries}, {"info", r_info}, {"close", r_close}, {NULL, NULL},
    };
    static const luaL_Reg reader_meta[] = {
        {"__gc", r_close}, {"__close", r_close}, {"__tostring", r_tostring}, {NULL, NULL},
    };
    static const luaL_Reg rentry_methods[] = {
        {"read", re_read}, {"chunks", re_chunks}, {"skip", re_skip}, {"save", re_save}, {"pipe_to", re_pipe_to},
        {"close", re_close}, {NULL, NULL},
    };
    mxpc_lua_class(L, WRITER_META, writer_methods, writer_meta);
    mxpc_lua_class(L, WENTRY_META, wentry_methods, wentry_meta);
    mxpc_lua_class(L, READER_META, reader_methods, reader_meta);

    /* entries expose fields (name, size, type, mtime) besides methods */
    luaL_newmetatable(L, RENTRY_META);
    lua_pushcfunction(L, re_tostring);
    lua_setfield(L, -2, "__tostring");
    lua_pushcfunction(L, re_close);
    lua_setfield(L, -2, "__close");
    lua_pushcfunction(L, re_close);
    lua_setfield(L, -2, "__gc");
    luaL_newlib(L, rentry_methods);
    lua_pushcclosure(L, re_index, 1);
    lua_setfield(L, -2, "__index");
    lua_pop(L, 1);

    static const luaL_Reg fns[] = {
        {"writer", l_writer}, {"reader", l_reader}, {"quote", l_quote}, {"name_problem", l_name_problem},
        {NULL, NULL},
    };
    luaL_newlib(L, fns);
    lua_pushinteger(L, MXPC_ARCHIVE_LEVEL_DEFAULT);
    lua_setfield(L, -2, "DEFAULT_LEVEL");
    return 1;
}
