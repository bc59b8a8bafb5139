/* Lua module mxpc.process: child processes (process.c) as handles.
 *
 *   local p <close> = assert(process.spawn({"pg_dump", "-Fc", "db"},
 *       {env = {PGPASSWORD = pw}, stdout = {file = "/tmp/x/db.backup"}}))
 *   local r = p:wait()    -- {status = 0, stderr = "..."}
 *
 *   -- a pipeline: b reads what a writes
 *   local a = process.spawn({"pg_restore", "-f", "-", dump}, {stdout = "pipe"})
 *   local b = process.spawn({"psql", "-f", "-"}, {stdin = a})
 *
 * Environment values are passed to the child only, never on its command line.
 * A handle that is closed or collected while the child runs kills it. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <lauxlib.h>

#include "mxpc/error.h"
#include "mxpc/modules.h"
#include "mxpc/process.h"
#include "mxpc/runtime.h"

#define PROCESS_META "mxpc.process"
#define READ_MAX (1024 * 1024)

struct lprocess {
    struct mxpc_process *p;
    char name[64]; /* argv[0], for messages */
};

static struct lprocess *check_process(lua_State *L)
{
    return luaL_checkudata(L, 1, PROCESS_META);
}

static struct mxpc_process *live_process(lua_State *L)
{
    struct lprocess *lp = check_process(L);
    if (!lp->p)
        luaL_error(L, "attempt to use a closed process");
    return lp->p;
}

/* Reads an stdin/stdout option: "null" (default), "pipe", {file = path}, or
 * (stdin only) another process spawned with stdout = "pipe".
 * Returns the mode, or -1 with errno set and the path pushed when the file
 * cannot be opened. */
static int stream_option(lua_State *L, int opts, const char *key, int *fd, int for_output)
{
    *fd = -1;
    if (lua_isnoneornil(L, opts))
        return MXPC_PROCESS_NULL;
    lua_getfield(L, opts, key);
    int mode = MXPC_PROCESS_NULL;
    if (lua_type(L, -1) == LUA_TSTRING) {
        const char *v = lua_tostring(L, -1);
        if (strcmp(v, "pipe") == 0)
            mode = MXPC_PROCESS_PIPE;
        else if (strcmp(v, "null") != 0)
            luaL_error(L, "option '%s' must be \"pipe\", \"null\" or {file = path}", key);
    } else if (!for_output && luaL_testudata(L, -1, PROCESS_META)) {
        /* a pipeline: this child reads what another one writes */
        struct lprocess *from = lua_touserdata(L, -1);
        *fd = from->p ? mxpc_process_take_stdout(from->p) : -1;
        if (*fd < 0)
            luaL_error(L, "option 'stdin': that process has no stdout pipe to read (spawn it with stdout = \"pipe\")");
        mode = MXPC_PROCESS_FD;
    } else if (lua_istable(L, -1)) {
        lua_getfield(L, -1, "file");
        const char *path = lua_tostring(L, -1);
        if (!path)
            luaL_error(L, "option '%s' must be \"pipe\", \"null\" or {file = path}", key);
        *fd = for_output ? open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600)
                         : open(path, O_RDONLY | O_CLOEXEC);
        if (*fd < 0) {
            int e = errno;
            lua_pop(L, 2);
            errno = e;
            lua_pushstring(L, path);
            return -1;
        }
        lua_pop(L, 1);
        mode = MXPC_PROCESS_FD;
    } else if (!lua_isnil(L, -1)) {
        luaL_error(L, "option '%s' must be \"pipe\", \"null\" or {file = path}", key);
    }
    lua_pop(L, 1);
    return mode;
}

/* process.spawn(argv, {env = {NAME = value}, stdin =, stdout =, stderr_max =}) */
static int l_spawn(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    if (!lua_isnoneornil(L, 2))
        luaL_checktype(L, 2, LUA_TTABLE);
    lua_settop(L, 2);
    int argc = (int)luaL_len(L, 1);
    luaL_argcheck(L, argc >= 1, 1, "the command is empty");
    const char **argv = lua_newuserdatauv(L, sizeof *argv * (size_t)(argc + 1), 0); /* 3 */
    for (int i = 1; i <= argc; i++) {
        lua_rawgeti(L, 1, i);
        argv[i - 1] = lua_tostring(L, -1);
        luaL_argcheck(L, argv[i - 1] != NULL, 1, "command words must be strings");
        lua_pop(L, 1); /* still referenced by the table */
    }
    argv[argc] = NULL;

    /* env: "NAME=value" strings kept alive in a table at index 4 */
    lua_newtable(L);
    int nenv = 0;
    if (!lua_isnil(L, 2)) {
        lua_getfield(L, 2, "env");
        if (!lua_isnil(L, -1)) {
            luaL_argcheck(L, lua_istable(L, -1), 2, "env must be a table of NAME = value");
            lua_pushnil(L);
            while (lua_next(L, -2)) {
                const char *k = lua_tostring(L, -2), *v = lua_tostring(L, -1);
                if (lua_type(L, -2) != LUA_TSTRING || !v || !*k || strchr(k, '='))
                    luaL_error(L, "env must map names to strings");
                lua_pushfstring(L, "%s=%s", k, v);
                lua_rawseti(L, 4, ++nenv);
                lua_pop(L, 1);
            }
        }
        lua_pop(L, 1);
    }
    const char **env = lua_newuserdatauv(L, sizeof *env * (size_t)(nenv + 1), 0);
    for (int i = 1; i <= nenv; i++) {
        lua_rawgeti(L, 4, i);
        env[i - 1] = lua_tostring(L, -1);
        lua_pop(L, 1);
    }
    env[nenv] = NULL;

    struct mxpc_process_options o = {.argv = argv, .env_add = env};
    int in = stream_option(L, 2, "stdin", &o.in_fd, 0);
    if (in < 0)
        return mxpc_error_fail_errno(L, errno, "cannot open %s", lua_tostring(L, -1));
    int out = stream_option(L, 2, "stdout", &o.out_fd, 1);
    if (out < 0) {
        int e = errno;
        if (o.in_fd >= 0)
            close(o.in_fd);
        return mxpc_error_fail_errno(L, e, "cannot open %s", lua_tostring(L, -1));
    }
    o.in = (enum mxpc_process_stream)in;
    o.out = (enum mxpc_process_stream)out;
    if (!lua_isnil(L, 2)) {
        lua_getfield(L, 2, "stderr_max");
        o.stderr_max = (size_t)luaL_optinteger(L, -1, 0);
        lua_pop(L, 1);
    }

    struct lprocess *lp = lua_newuserdatauv(L, sizeof *lp, 0);
    lp->p = NULL;
    snprintf(lp->name, sizeof lp->name, "%s", argv[0]);
    luaL_setmetatable(L, PROCESS_META);
    int e = mxpc_process_spawn(&lp->p, &o);
    if (o.in_fd >= 0)
        close(o.in_fd);
    if (o.out_fd >= 0)
        close(o.out_fd);
    if (e != 0)
        return mxpc_error_fail(L, e == ENOENT ? "not_found" : "io",
                               e == ENOENT ? "install it, or put its directory on PATH" : NULL, "cannot run %s: %s",
                               argv[0], strerror(e));
    return 1;
}

void mxpc_process_push_result(lua_State *L, const struct mxpc_process *p, int status)
{
    lua_createtable(L, 0, 3);
    if (WIFEXITED(status)) {
        lua_pushinteger(L, WEXITSTATUS(status));
        lua_setfield(L, -2, "status");
    } else if (WIFSIGNALED(status)) {
        lua_pushinteger(L, WTERMSIG(status));
        lua_setfield(L, -2, "signal");
    }
    int cut;
    const char *text = mxpc_process_stderr(p, &cut);
    lua_pushfstring(L, "%s%s", text, cut ? "\n[...]" : "");
    lua_setfield(L, -2, "stderr");
}

static void raise_if_interrupted(lua_State *L, long rc)
{
    if (rc == MXPC_PROCESS_EINTERRUPTED)
        mxpc_check_interrupt(L);
}

/* p:write(s, ...) -> p, or false if the child stopped reading, or nil, err */
static int p_write(lua_State *L)
{
    struct mxpc_process *p = live_process(L);
    int n = lua_gettop(L);
    for (int i = 2; i <= n; i++) {
        size_t len;
        const char *s = luaL_checklstring(L, i, &len);
        int rc = mxpc_process_write(p, s, len);
        raise_if_interrupted(L, rc);
        if (rc == 1) {
            lua_pushboolean(L, 0);
            return 1;
        }
        if (rc < 0)
            return mxpc_error_fail_errno(L, errno, "cannot write to %s", check_process(L)->name);
    }
    lua_settop(L, 1);
    return 1;
}

static int p_close_stdin(lua_State *L)
{
    mxpc_process_close_stdin(live_process(L));
    return 0;
}

/* p:read([n]) -> up to n bytes of stdout (default 64 KiB), or nil at the end */
static int p_read(lua_State *L)
{
    struct mxpc_process *p = live_process(L);
    lua_Integer n = luaL_optinteger(L, 2, 64 * 1024);
    luaL_argcheck(L, n > 0 && n <= READ_MAX, 2, "read size must be between 1 and 1 MiB");
    luaL_Buffer b;
    char *buf = luaL_buffinitsize(L, &b, (size_t)n);
    ssize_t got = mxpc_process_read(p, buf, (size_t)n);
    raise_if_interrupted(L, got);
    if (got < 0)
        return mxpc_error_fail_errno(L, errno, "cannot read from %s", check_process(L)->name);
    if (got == 0) {
        lua_pushnil(L);
        return 1;
    }
    luaL_pushresultsize(&b, (size_t)got);
    return 1;
}

/* p:wait() -> {status = exit code | nil, signal = n | nil, stderr = text} */
static int p_wait(lua_State *L)
{
    struct lprocess *lp = check_process(L);
    struct mxpc_process *p = live_process(L);
    int status = 0;
    int rc = mxpc_process_wait(p, &status);
    raise_if_interrupted(L, rc);
    if (rc < 0)
        return mxpc_error_fail_errno(L, errno, "cannot wait for %s", lp->name);
    mxpc_process_push_result(L, p, status);
    return 1;
}

/* p:poll() -> true once the child has ended (p:wait() then returns at once), else false */
static int p_poll(lua_State *L)
{
    struct lprocess *lp = check_process(L);
    int rc = mxpc_process_poll(live_process(L));
    if (rc < 0)
        return mxpc_error_fail_errno(L, errno, "cannot check on %s", lp->name);
    lua_pushboolean(L, rc);
    return 1;
}

static int p_pid(lua_State *L)
{
    lua_pushinteger(L, mxpc_process_pid(live_process(L)));
    return 1;
}

/* kill, close, __close, __gc: idempotent */
static int p_close(lua_State *L)
{
    struct lprocess *lp = check_process(L);
    mxpc_process_free(lp->p);
    lp->p = NULL;
    return 0;
}

static int p_tostring(lua_State *L)
{
    struct lprocess *lp = check_process(L);
    if (!lp->p)
        lua_pushfstring(L, "process (%s, closed)", lp->name);
    else if (mxpc_process_running(lp->p))
        lua_pushfstring(L, "process (%s, pid %d)", lp->name, (int)mxpc_process_pid(lp->p));
    else
        lua_pushfstring(L, "process (%s, exited)", lp->name);
    return 1;
}

int luaopen_mxpc_process(lua_State *L)
{
    static const luaL_Reg methods[] = {
        {"write", p_write}, {"close_stdin", p_close_stdin}, {"read", p_read}, {"wait", p_wait}, {"poll", p_poll},
        {"pid", p_pid},     {"kill", p_close},              {"close", p_close}, {NULL, NULL},
    };
    static const luaL_Reg meta[] = {
        {"__gc", p_close}, {"__close", p_close}, {"__tostring", p_tostring}, {NULL, NULL},
    };
    static const luaL_Reg fns[] = {{"spawn", l_spawn}, {NULL, NULL}};
    mxpc_lua_class(L, PROCESS_META, methods, meta);
    luaL_newlib(L, fns);
    return 1;
}
