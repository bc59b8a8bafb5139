/* Lua module mxpc.fs: the few file-system operations the workflows need, and
 * atomic writers (atomic_file.c) as userdata handles.
 *
 *   local w <close> = assert(fs.atomic_writer("out.bin", {force = false}))
 *   w:write("data")
 *   assert(w:commit())   -- without commit, closing removes the partial file
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <lauxlib.h>
#include <lualib.h>

#include "mxpc/atomic_file.h"
#include "mxpc/error.h"
#include "mxpc/modules.h"

#define WRITER_META "mxpc.fs.atomic_writer"

static const char *code_of(int e)
{
    switch (e) {
    case ENOENT: return "not_found";
    case EEXIST: return "exists";
    case EACCES:
    case EPERM:
    case EROFS: return "permission";
    default: return "io";
    }
}

static int fail_errno(lua_State *L, int e, const char *what, const char *path)
{
    return mxpc_error_fail(L, code_of(e), NULL, "%s %s: %s", what, path, strerror(e));
}

/* --- atomic writer -------------------------------------------------------- */

struct writer {
    struct mxpc_atomic_file *f;
};

static struct writer *check_writer(lua_State *L)
{
    return luaL_checkudata(L, 1, WRITER_META);
}

static struct mxpc_atomic_file *open_writer(lua_State *L)
{
    struct writer *w = check_writer(L);
    if (!w->f || mxpc_atomic_state(w->f) != MXPC_ATOMIC_OPEN)
        luaL_error(L, "attempt to use a closed atomic writer");
    return w->f;
}

static int l_atomic_writer(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    int force = 0;
    lua_Integer mode = 0600;
    if (!lua_isnoneornil(L, 2)) {
        luaL_checktype(L, 2, LUA_TTABLE);
        lua_getfield(L, 2, "force");
        force = lua_toboolean(L, -1);
        lua_getfield(L, 2, "mode");
        if (!lua_isnil(L, -1))
            mode = luaL_checkinteger(L, -1);
        lua_pop(L, 2);
    }
    luaL_argcheck(L, mode >= 0 && mode <= 07777, 2, "mode out of range");
    struct writer *w = lua_newuserdatauv(L, sizeof *w, 0);
    w->f = NULL;
    luaL_setmetatable(L, WRITER_META);
    char err[512];
    w->f = mxpc_atomic_open(path, force, (mode_t)mode, err, sizeof err);
    if (!w->f) {
        int e = errno;
        /* "exists": the caller says how to replace it (force = true, --force) */
        return mxpc_error_fail(L, code_of(e), NULL, "%s", err);
    }
    return 1;
}

static int w_write(lua_State *L)
{
    struct mxpc_atomic_file *f = open_writer(L);
    int n = lua_gettop(L);
    for (int i = 2; i <= n; i++) {
        size_t len;
        const char *s = luaL_checklstring(L, i, &len);
        char err[512];
        if (mxpc_atomic_write(f, s, len, err, sizeof err) != 0)
            return mxpc_error_fail(L, "io", NULL, "%s", err);
    }
    lua_settop(L, 1);
    return 1;
}

static int w_commit(lua_State *L)
{
    struct mxpc_atomic_file *f = open_writer(L);
    char err[512];
    if (mxpc_atomic_commit(f, err, sizeof err) != 0)
        return mxpc_error_fail(L, errno == EEXIST ? "exists" : "io", NULL, "%s", err);
    lua_pushboolean(L, 1);
    return 1;
}

/* abort, close, __close and __gc: idempotent; a committed file stays. */
static int w_abort(lua_State *L)
{
    struct writer *w = check_writer(L);
    mxpc_atomic_free(w->f);
    w->f = NULL;
    return 0;
}

static int w_path(lua_State *L)
{
    struct writer *w = check_writer(L);
    if (!w->f)
        return luaL_error(L, "attempt to use a closed atomic writer");
    lua_pushstring(L, mxpc_atomic_path(w->f));
    return 1;
}

static int w_tostring(lua_State *L)
{
    struct writer *w = check_writer(L);
    if (!w->f) {
        lua_pushstring(L, "atomic_writer (closed)");
        return 1;
    }
    static const char *const states[] = {"open", "committed", "aborted"};
    lua_pushfstring(L, "atomic_writer (%s, %s)", mxpc_atomic_path(w->f), states[mxpc_atomic_state(w->f)]);
    return 1;
}

/* --- plain functions ------------------------------------------------------ */

/* fs.stat(path [, {follow = true}]) -> {type, size, mode, mtime}; a symbolic
 * link is "link" unless follow asks for what it points to */
static int l_stat(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    int follow = 0;
    if (!lua_isnoneornil(L, 2)) {
        luaL_checktype(L, 2, LUA_TTABLE);
        lua_getfield(L, 2, "follow");
        follow = lua_toboolean(L, -1);
        lua_pop(L, 1);
    }
    struct stat st;
    if ((follow ? stat(path, &st) : lstat(path, &st)) != 0)
        return fail_errno(L, errno, "cannot stat", path);
    lua_createtable(L, 0, 4);
    const char *type = S_ISREG(st.st_mode)   ? "file"
                       : S_ISDIR(st.st_mode) ? "directory"
                       : S_ISLNK(st.st_mode) ? "link"
                                             : "other";
    lua_pushstring(L, type);
    lua_setfield(L, -2, "type");
    lua_pushinteger(L, (lua_Integer)st.st_size);
    lua_setfield(L, -2, "size");
    lua_pushinteger(L, (lua_Integer)(st.st_mode & 07777));
    lua_setfield(L, -2, "mode");
    lua_pushinteger(L, (lua_Integer)st.st_mtime);
    lua_setfield(L, -2, "mtime");
    return 1;
}

static int l_read(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    FILE *fp = fopen(path, "rb");
    if (!fp)
        return fail_errno(L, errno, "cannot open", path);
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    for (;;) {
        char *p = luaL_prepbuffer(&b);
        size_t n = fread(p, 1, LUAL_BUFFERSIZE, fp);
        luaL_addsize(&b, n);
        if (n < LUAL_BUFFERSIZE)
            break;
    }
    int bad = ferror(fp);
    int e = errno;
    fclose(fp);
    if (bad)
        return fail_errno(L, e, "cannot read", path);
    luaL_pushresult(&b);
    return 1;
}

static int l_mkdirs(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    mode_t mode = (mode_t)luaL_optinteger(L, 2, 0755);
    size_t len = strlen(path);
    char *p = malloc(len + 1);
    if (!p)
        return luaL_error(L, "out of memory");
    memcpy(p, path, len + 1);
    for (char *s = p + 1;; s++) {
        if (*s == '/' || *s == '\0') {
            char c = *s;
            *s = '\0';
            if (mkdir(p, mode) != 0 && errno != EEXIST) {
                int e = errno;
                lua_pushstring(L, p);
                free(p);
                return fail_errno(L, e, "cannot create directory", lua_tostring(L, -1));
            }
            *s = c;
            if (c == '\0')
                break;
        }
    }
    free(p);
    struct stat st;
    if (stat(path, &st) != 0 || !S_ISDIR(st.st_mode))
        return fail_errno(L, ENOTDIR, "cannot create directory", path);
    lua_pushboolean(L, 1);
    return 1;
}

static int l_remove(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    if (remove(path) != 0)
        return fail_errno(L, errno, "cannot remove", path);
    lua_pushboolean(L, 1);
    return 1;
}

/* fs.commit_file(temp, path, {force}) -> true | nil, err: temp flushed and
 * moved onto path durably; without force an existing path is not replaced */
static int l_commit_file(lua_State *L)
{
    const char *temp = luaL_checkstring(L, 1), *path = luaL_checkstring(L, 2);
    int force = 0;
    if (!lua_isnoneornil(L, 3)) {
        luaL_checktype(L, 3, LUA_TTABLE);
        lua_getfield(L, 3, "force");
        force = lua_toboolean(L, -1);
        lua_pop(L, 1);
    }
    char err[1024];
    if (mxpc_file_commit(temp, path, force, err, sizeof err) != 0)
        return mxpc_error_fail(L, code_of(errno), NULL, "%s", err);
    lua_pushboolean(L, 1);
    return 1;
}

/* fs.mkdtemp(prefix) -> a new directory "<prefix>XXXXXX" with mode 0700 */
static int l_mkdtemp(lua_State *L)
{
    size_t len;
    const char *prefix = luaL_checklstring(L, 1, &len);
    char *tmpl = malloc(len + 7);
    if (!tmpl)
        return luaL_error(L, "out of memory");
    memcpy(tmpl, prefix, len);
    memcpy(tmpl + len, "XXXXXX", 7);
    if (!mkdtemp(tmpl)) {
        int e = errno;
        free(tmpl);
        return fail_errno(L, e, "cannot create a directory at", prefix);
    }
    lua_pushstring(L, tmpl);
    free(tmpl);
    return 1;
}

/* fs.free_space(path) -> bytes an unprivileged user may still write on the
 * file system holding path */
static int l_free_space(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    struct statvfs sv;
    if (statvfs(path, &sv) != 0)
        return fail_errno(L, errno, "cannot stat the file system of", path);
    lua_pushinteger(L, (lua_Integer)sv.f_bavail * (lua_Integer)sv.f_frsize);
    return 1;
}

static int cmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* fs.dir(path) -> sorted array of names (without . and ..) */
static int l_dir(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    DIR *d = opendir(path);
    if (!d)
        return fail_errno(L, errno, "cannot list", path);
    char **names = NULL;
    size_t n = 0, cap = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 16;
            char **grown = realloc(names, cap * sizeof *names);
            if (!grown)
                break;
            names = grown;
        }
        if ((names[n] = strdup(de->d_name)) == NULL)
            break;
        n++;
    }
    closedir(d);
    if (n > 1)
        qsort(names, n, sizeof *names, cmp_names);
    lua_createtable(L, (int)n, 0);
    for (size_t i = 0; i < n; i++) {
        lua_pushstring(L, names[i]);
        lua_rawseti(L, -2, (lua_Integer)i + 1);
        free(names[i]);
    }
    free(names);
    return 1;
}

/* fs.isatty(fd) -> whether the file descriptor (0 stdin, 1 stdout, 2 stderr)
 * is a terminal */
static int l_isatty(lua_State *L)
{
    lua_Integer fd = luaL_checkinteger(L, 1);
    luaL_argcheck(L, fd >= 0 && fd <= 1024, 1, "expected a file descriptor");
    lua_pushboolean(L, isatty((int)fd));
    return 1;
}

/* --- standard output for one writer ------------------------------------------ */

static int reserved_close(lua_State *L)
{
    luaL_Stream *p = luaL_checkudata(L, 1, LUA_FILEHANDLE);
    int ok = fclose(p->f) == 0;
    return luaL_fileresult(L, ok, NULL);
}

/* fs.reserve_stdout() -> a Lua file for what standard output was; from now on
 * file descriptor 1 is the standard error's, so whatever else writes to
 * standard output (print, io.write, io.stdout, os.execute, io.popen, any
 * child process) writes to stderr. The returned file's descriptor is not
 * inherited by child processes. Once per process: a second call is an error. */
static int l_reserve_stdout(lua_State *L)
{
    static int reserved;
    if (reserved)
        return luaL_error(L, "standard output is reserved already");
    fflush(stdout);
    int fd = fcntl(1, F_DUPFD_CLOEXEC, 3);
    if (fd < 0)
        return fail_errno(L, errno, "cannot keep", "standard output");
    if (dup2(2, 1) < 0) {
        int e = errno;
        close(fd);
        return fail_errno(L, e, "cannot point standard output at", "standard error");
    }
    reserved = 1;
    luaL_Stream *p = lua_newuserdatauv(L, sizeof *p, 0);
    p->closef = NULL; /* a closed file until it is opened */
    luaL_setmetatable(L, LUA_FILEHANDLE);
    p->f = fdopen(fd, "wb");
    if (!p->f) {
        int e = errno;
        close(fd);
        return fail_errno(L, e, "cannot open", "standard output");
    }
    p->closef = reserved_close;
    return 1;
}

int luaopen_mxpc_fs(lua_State *L)
{
    static const luaL_Reg methods[] = {
        {"write", w_write}, {"commit", w_commit}, {"abort", w_abort}, {"close", w_abort}, {"path", w_path},
        {NULL, NULL},
    };
    static const luaL_Reg meta[] = {
        {"__gc", w_abort}, {"__close", w_abort}, {"__tostring", w_tostring}, {"__index", NULL}, {NULL, NULL},
    };
    static const luaL_Reg fns[] = {
        {"atomic_writer", l_atomic_writer}, {"stat", l_stat}, {"read", l_read}, {"mkdirs", l_mkdirs},
        {"remove", l_remove},  {"dir", l_dir}, {"commit_file", l_commit_file},  {"mkdtemp", l_mkdtemp}, {"isatty", l_isatty},
        {"free_space", l_free_space}, {"reserve_stdout", l_reserve_stdout}, {NULL, NULL},
    };
    mxpc_lua_class(L, WRITER_META, methods, meta);
    luaL_newlib(L, fns);
    return 1;
}
