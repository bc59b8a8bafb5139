/* Lua module mxpc.process: child processes (process.c) as handles.
 *
 *   local p <close> = assert(process.spawn({"pg_dump", "-Fc", "db"},
 *       {env = {PGPASSWORD = pw}, stdout = {file = "/tmp/x/db.backup"}}))
 *   local r = p:wait()    -- {status = 0, stderr = "...", reason = "exit status 0"}
 *
 *   -- a pipeline: b reads what a writes
 *   local a = process.spawn({"pg_restore", "-f", "-", dump}, {stdout = "pipe"})
 *   local b = process.spawn({"psql", "-f", "-"}, {stdin = a})
 *
 *   -- a's output run on a PostgreSQL connection of ours: db:load(a) (mxpc.pg)
 *
 * Environment values are passed to the child only, never on its command line.
 * process.withhold("NAME") keeps a variable of our own environment (a secret
 * read from it) from every child started after.
 * A handle that is closed or collected while the child runs kills it. */
#define _GNU_SOURCE /* sigabbrev_np */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <lauxlib.h>

#include "mxpc/error.h"
#include "mxpc/lua_args.h"
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
 * Returns the mode, or -1 with errno set and *path set when the file cannot
 * be opened. */
static int stream_option(lua_State *L, int opts, int keep, const char *key, int *fd, int for_output,
                         const char **path)
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
        *path = mxpc_args_opt_string(L, -1, "file", keep);
        if (!*path)
            luaL_error(L, "option '%s' must be \"pipe\", \"null\" or {file = path}", key);
        *fd = for_output ? open(*path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600)
                         : open(*path, O_RDONLY | O_CLOEXEC);
        if (*fd < 0) {
            int e = errno;
            lua_pop(L, 1);
            errno = e;
            return -1;
        }
        mode = MXPC_PROCESS_FD;
    } else if (!lua_isnil(L, -1)) {
        luaL_error(L, "option '%s' must be \"pipe\", \"null\" or {file = path}", key);
    }
    lua_pop(L, 1);
    return mode;
}

/* process.withhold(name): true, or nil and a message */
static int l_withhold(lua_State *L)
{
    const char *name = luaL_checkstring(L, 1);
    int e = mxpc_process_withhold(name);
    if (e == 0) {
        lua_pushboolean(L, 1);
        return 1;
    }
    lua_pushnil(L);
    lua_pushfstring(L, "cannot withhold %s from child processes: %s", name,
                    e == EINVAL ? "not a variable name" : strerror(e));
    return 2;
}

/* process.spawn(argv, {env = {NAME = value}, stdin =, stdout =, stderr_max =}) */
static int l_spawn(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    if (!lua_isnoneornil(L, 2))
        luaL_checktype(L, 2, LUA_TTABLE);
    lua_settop(L, 2);
    int keep = mxpc_args_keep(L); /* 3 */
    size_t argc;
    const char **argv = mxpc_args_string_array(L, 1, keep, &argc, "command words must be strings");
    luaL_argcheck(L, argc >= 1, 1, "the command is empty");

    /* env: "NAME=value" strings in a list at index 4 */
    lua_newtable(L);
    if (!lua_isnil(L, 2)) {
        lua_getfield(L, 2, "env");
        if (!lua_isnil(L, -1)) {
            luaL_argcheck(L, lua_istable(L, -1), 2, "env must be a table of NAME = value");
            lua_Integer nenv = 0;
            lua_pushnil(L);
            while (lua_next(L, -2)) {
                int t = lua_type(L, -1);
                const char *k = lua_tostring(L, -2);
                if (lua_type(L, -2) != LUA_TSTRING || (t != LUA_TSTRING && t != LUA_TNUMBER) || !*k ||
                    strchr(k, '='))
                    luaL_error(L, "env must map names to strings");
                lua_pushfstring(L, "%s=%s", k, mxpc_args_string(L, -1, keep, NULL, "an env value"));
                lua_rawseti(L, 4, ++nenv);
                lua_pop(L, 1);
            }
        }
        lua_pop(L, 1);
    }
    size_t nenv;
    const char **env = mxpc_args_string_array(L, 4, keep, &nenv, "env");

    struct mxpc_process_options o = {.argv = argv, .env_add = env};
    const char *path = NULL;
    int in = stream_option(L, 2, keep, "stdin", &o.in_fd, 0, &path);
    if (in < 0)
        return mxpc_error_fail_errno(L, errno, "cannot open %s", path);
    int out = stream_option(L, 2, keep, "stdout", &o.out_fd, 1, &path);
    if (out < 0) {
        int e = errno;
        if (o.in_fd >= 0)
            close(o.in_fd);
        return mxpc_error_fail_errno(L, e, "cannot open %s", path);
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

/* {status = exit code | nil, signal = n | nil, stderr = text, reason = "exit
 * status 1" | "killed by signal 9 (SIGKILL)"} */
void mxpc_process_push_result(lua_State *L, const struct mxpc_process *p, int status)
{
    lua_createtable(L, 0, 4);
    if (WIFEXITED(status)) {
        lua_pushinteger(L, WEXITSTATUS(status));
        lua_setfield(L, -2, "status");
        lua_pushfstring(L, "exit status %d", WEXITSTATUS(status));
    } else if (WIFSIGNALED(status)) {
        int sig = WTERMSIG(status);
        lua_pushinteger(L, sig);
        lua_setfield(L, -2, "signal");
        const char *abbrev = sigabbrev_np(sig);
        if (abbrev)
            lua_pushfstring(L, "killed by signal %d (SIG%s)", sig, abbrev);
        else
            lua_pushfstring(L, "killed by signal %d", sig);
    } else {
        lua_pushfstring(L, "wait status %d", status);
    }
    lua_setfield(L, -2, "reason");
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

/* p:wait() -> {status = exit code | nil, signal = n | nil, stderr = text, reason = how it ended} */
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

struct mxpc_process *mxpc_lua_process(lua_State *L, int idx)
{
    return ((struct lprocess *)luaL_checkudata(L, idx, PROCESS_META))->p;
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
    static const luaL_Reg fns[] = {{"spawn", l_spawn}, {"withhold", l_withhold}, {NULL, NULL}};
    mxpc_lua_class(L, PROCESS_META, methods, meta);
    luaL_newlib(L, fns);
    return 1;
}
