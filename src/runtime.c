/* The Lua runtime: see include/mxpc/runtime.h. */
#include "mxpc/runtime.h"
#include "mxpc/ca_bundle.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <lauxlib.h>
#include <lua-cjson.h>
#include <lualib.h>

#include "mxpc/buf.h"
#include "mxpc/error.h"
#include "mxpc/log.h"
#include "mxpc/modules.h"
#include "mxpc/version.h"

static const luaL_Reg c_modules[] = {
    {"mxpc.error", luaopen_mxpc_error},
    {"mxpc.log", luaopen_mxpc_log},
    {"mxpc.fs", luaopen_mxpc_fs},
    {"mxpc.archive", luaopen_mxpc_archive},
    {"mxpc.process", luaopen_mxpc_process},
    {"mxpc.pg", luaopen_mxpc_pg},
    {"mxpc.console", luaopen_mxpc_console},
    {"mxpc.k8s", luaopen_mxpc_k8s},
    {"mxpc.fileset", luaopen_mxpc_fileset},
    {"mxpc.s3", luaopen_mxpc_s3},
    {"mxpc.azure", luaopen_mxpc_azure},
    {"mxpc.aws", luaopen_mxpc_aws},
    {"mxpc.http", luaopen_mxpc_http},
    {"mxpc.sigv4", luaopen_mxpc_sigv4},
    {"mxpc.yaml", luaopen_mxpc_yaml},
    {"mxpc.runtime", luaopen_mxpc_runtime},
    {"cjson", luaopen_cjson},
    {NULL, NULL},
};

/* Registry keys for the directories chosen at start. */
#define REG_SCRIPTS_DIR "mxpc.scripts_dir"
#define REG_DATA_DIR "mxpc.data_dir"

const struct mxpc_embedded_file *mxpc_embedded_find(const char *path)
{
    for (size_t i = 0; i < mxpc_embedded_count; i++)
        if (strcmp(mxpc_embedded_files[i].path, path) == 0)
            return &mxpc_embedded_files[i];
    return NULL;
}

/* package.searchers entry: modules compiled into the binary, tried last. */
static int embedded_searcher(lua_State *L)
{
    const char *name = luaL_checkstring(L, 1);
    const char *const patterns[] = {"lua/%s.lua", "lua/%s/init.lua"};
    struct mxpc_buf tried = MXPC_BUF_INIT;
    for (size_t i = 0; i < sizeof patterns / sizeof *patterns; i++) {
        const char *rel = luaL_gsub(L, name, ".", "/");
        lua_pushfstring(L, patterns[i], rel);
        const char *path = lua_tostring(L, -1);
        const struct mxpc_embedded_file *f = mxpc_embedded_find(path);
        if (f) {
            mxpc_buf_free(&tried);
            lua_pushfstring(L, "=[embedded] %s", path);
            if (luaL_loadbuffer(L, f->data, f->size, lua_tostring(L, -1)) != LUA_OK)
                return luaL_error(L, "error loading embedded module '%s':\n\t%s", name, lua_tostring(L, -1));
            lua_pushfstring(L, "[embedded] %s", path);
            return 2;
        }
        mxpc_buf_printf(&tried, "\n\tno embedded file '%s'", path);
        lua_pop(L, 2);
    }
    lua_pushstring(L, tried.data ? tried.data : "");
    mxpc_buf_free(&tried);
    return 1;
}

/* package.path: scripts dir, then $LUA_PATH (";;" = installed dir + Lua's
 * default), else installed dir + Lua's default. The embedded copy comes last
 * through embedded_searcher. */
static void set_package_path(lua_State *L, const char *scripts_dir, const char *data_dir)
{
    struct mxpc_buf def = MXPC_BUF_INIT;
    if (data_dir && *data_dir)
        mxpc_buf_printf(&def, "%s/lua/?.lua;%s/lua/?/init.lua;", data_dir, data_dir);
    mxpc_buf_puts(&def, LUA_PATH_DEFAULT);

    struct mxpc_buf path = MXPC_BUF_INIT;
    if (scripts_dir && *scripts_dir)
        mxpc_buf_printf(&path, "%s/lua/?.lua;%s/lua/?/init.lua;", scripts_dir, scripts_dir);
    const char *env = getenv("LUA_PATH_5_4");
    if (!env)
        env = getenv("LUA_PATH");
    if (env) {
        /* replace every ";;" with ";<default>;" as lua.c does */
        const char *p = env;
        const char *hit;
        while ((hit = strstr(p, ";;")) != NULL) {
            mxpc_buf_append(&path, p, (size_t)(hit - p));
            mxpc_buf_printf(&path, ";%s;", def.data);
            p = hit + 2;
        }
        mxpc_buf_puts(&path, p);
    } else {
        mxpc_buf_puts(&path, def.data);
    }
    lua_getglobal(L, "package");
    lua_pushstring(L, path.data);
    lua_setfield(L, -2, "path");
    lua_pop(L, 1);
    mxpc_buf_free(&def);
    mxpc_buf_free(&path);
}

lua_State *mxpc_runtime_new(const struct mxpc_runtime_options *opts)
{
    lua_State *L = luaL_newstate();
    if (!L)
        return NULL;
    luaL_openlibs(L);

    luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_PRELOAD_TABLE);
    for (const luaL_Reg *m = c_modules; m->name; m++) {
        lua_pushcfunction(L, m->func);
        lua_setfield(L, -2, m->name);
    }
    lua_pop(L, 1);

    const char *scripts_dir = opts && opts->scripts_dir ? opts->scripts_dir : NULL;
    const char *data_dir = opts && opts->data_dir ? opts->data_dir : MXPC_DATADIR;
    lua_pushstring(L, scripts_dir ? scripts_dir : "");
    lua_setfield(L, LUA_REGISTRYINDEX, REG_SCRIPTS_DIR);
    lua_pushstring(L, data_dir);
    lua_setfield(L, LUA_REGISTRYINDEX, REG_DATA_DIR);
    set_package_path(L, scripts_dir, data_dir);

    lua_getglobal(L, "package");
    lua_getfield(L, -1, "searchers");
    lua_pushcfunction(L, embedded_searcher);
    lua_rawseti(L, -2, (lua_Integer)luaL_len(L, -2) + 1);
    lua_pop(L, 2);
    return L;
}

int mxpc_runtime_pcall(lua_State *L, int nargs, int nresults)
{
    int base = lua_gettop(L) - nargs;
    lua_pushcfunction(L, mxpc_error_traceback);
    lua_insert(L, base);
    int status = lua_pcall(L, nargs, nresults, base);
    lua_remove(L, base);
    return status;
}

/* --- interruption: the flag is in interrupt.c; this makes Lua code see it - */

static lua_State *signal_state;

static void push_interrupt_error(lua_State *L, int signo)
{
    mxpc_error_push(L, "interrupted", NULL, "interrupted by %s", signo == SIGTERM ? "SIGTERM" : "SIGINT");
    lua_pushstring(L, signo == SIGTERM ? "SIGTERM" : "SIGINT");
    lua_setfield(L, -2, "signal");
}

void mxpc_check_interrupt(lua_State *L)
{
    int signo = mxpc_interrupted();
    if (signo) {
        /* raised here: the hook must not raise it a second time, in a pcall's
         * return or in a __close that runs while this error unwinds */
        lua_sethook(signal_state ? signal_state : L, NULL, 0, 0);
        push_interrupt_error(L, signo);
        lua_error(L);
    }
}

static void interrupt_hook(lua_State *L, lua_Debug *ar)
{
    (void)ar;
    lua_sethook(L, NULL, 0, 0);
    mxpc_check_interrupt(L);
}

/* Told by interrupt.c, in the signal handler: lua_sethook is safe to call
 * there (see lua.c). */
static void on_interrupt(int signo)
{
    (void)signo;
    if (signal_state)
        lua_sethook(signal_state, interrupt_hook, LUA_MASKCALL | LUA_MASKRET | LUA_MASKCOUNT, 1);
}

void mxpc_interrupt_rearm(void)
{
    if (mxpc_interrupted())
        on_interrupt(mxpc_interrupted());
}

void mxpc_runtime_install_signal_handlers(lua_State *L)
{
    signal_state = L;
    mxpc_interrupt_set_notify(on_interrupt);
    mxpc_interrupt_install();
}

/* --- Lua module mxpc.runtime ---------------------------------------------- */

/* runtime.embedded() -> array of paths; runtime.embedded(path) -> source or nil */
static int l_embedded(lua_State *L)
{
    if (lua_isnoneornil(L, 1)) {
        lua_createtable(L, (int)mxpc_embedded_count, 0);
        for (size_t i = 0; i < mxpc_embedded_count; i++) {
            lua_pushstring(L, mxpc_embedded_files[i].path);
            lua_rawseti(L, -2, (lua_Integer)i + 1);
        }
        return 1;
    }
    const struct mxpc_embedded_file *f = mxpc_embedded_find(luaL_checkstring(L, 1));
    if (!f)
        return 0;
    lua_pushlstring(L, f->data, f->size);
    return 1;
}

static int l_scripts_dir(lua_State *L)
{
    lua_getfield(L, LUA_REGISTRYINDEX, REG_SCRIPTS_DIR);
    if (lua_tostring(L, -1)[0] == '\0')
        lua_pushnil(L);
    return 1;
}

static int l_data_dir(lua_State *L)
{
    lua_getfield(L, LUA_REGISTRYINDEX, REG_DATA_DIR);
    if (lua_tostring(L, -1)[0] == '\0')
        lua_pushnil(L);
    return 1;
}

/* runtime.clear_interrupt(): forget a handled signal and catch the next one
 * again (the REPL goes back to its prompt after Ctrl-C) */
static int l_clear_interrupt(lua_State *L)
{
    mxpc_interrupt_reset();
    mxpc_runtime_install_signal_handlers(signal_state ? signal_state : L);
    return 0;
}

/* runtime.check_interrupt(): raises the interruption error if a signal came */
static int l_check_interrupt(lua_State *L)
{
    mxpc_check_interrupt(L);
    return 0;
}

/* runtime.pcall(f, ...): pcall, except that a signal which came meanwhile is
 * raised, not returned: the interrupt hook may fire inside f (at a call), and
 * a caller that turns f's failure into "invalid input" must not swallow it. */
static int l_pcall(lua_State *L)
{
    luaL_checkany(L, 1);
    int status = lua_pcall(L, lua_gettop(L) - 1, LUA_MULTRET, 0);
    if (status != LUA_OK) {
        mxpc_check_interrupt(L);
        lua_pushboolean(L, 0);
        lua_insert(L, -2);
        return 2;
    }
    lua_pushboolean(L, 1);
    lua_insert(L, 1);
    return lua_gettop(L);
}

/* runtime.interrupted() -> "SIGINT", "SIGTERM" or false; a deferred signal counts */
static int l_interrupted(lua_State *L)
{
    int signo = mxpc_interrupt_signal();
    if (!signo)
        lua_pushboolean(L, 0);
    else
        lua_pushstring(L, signo == SIGTERM ? "SIGTERM" : "SIGINT");
    return 1;
}

/* runtime.defer_interrupts(on) -> whether it was on: with true, a signal from
 * now on is recorded (runtime.interrupted() tells) but interrupts nothing; one
 * that came before raises now. With false, a recorded signal raises now. A
 * second signal still ends the process at once. */
static int l_defer_interrupts(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TBOOLEAN);
    int on = lua_toboolean(L, 1);
    if (on)
        mxpc_check_interrupt(L);
    lua_pushboolean(L, mxpc_interrupt_defer(on));
    if (!on)
        mxpc_check_interrupt(L);
    return 1;
}

/* runtime.sleep(seconds): waits, raising `interrupted` as soon as a signal
 * arrives (os.execute("sleep") would let the shell swallow it) */
static int l_sleep(lua_State *L)
{
    lua_Number seconds = luaL_checknumber(L, 1);
    luaL_argcheck(L, seconds >= 0 && seconds <= 86400, 1, "seconds must be between 0 and 86400");
    double end = mxpc_monotonic() + (double)seconds;
    for (;;) {
        mxpc_check_interrupt(L);
        double left = end - mxpc_monotonic();
        if (left <= 0)
            break;
        if (left > 0.1) /* a signal between the check and the sleep waits at most this long */
            left = 0.1;
        struct timespec ts = {(time_t)left, (long)((left - (double)(time_t)left) * 1e9)};
        if (nanosleep(&ts, NULL) != 0 && errno != EINTR)
            break;
    }
    return 0;
}

/* runtime.monotonic() -> seconds on a clock that never goes back, for deadlines */
static int l_monotonic(lua_State *L)
{
    lua_pushnumber(L, mxpc_monotonic());
    return 1;
}

/* --- the ticker: runtime.set_ticker's function, called by mxpc_tick ------- */

static int tick_ref = LUA_NOREF;

static void lua_tick(void *ud)
{
    lua_State *L = ud;
    if (!lua_checkstack(L, 4))
        return;
    int top = lua_gettop(L);
    lua_rawgeti(L, LUA_REGISTRYINDEX, tick_ref);
    if (lua_pcall(L, 0, 0, 0) != LUA_OK) {
        if (mxpc_interrupted()) {
            /* the hook raised the signal in here: the loop reports it, and
             * Lua code must still see it */
            on_interrupt(mxpc_interrupted());
        } else {
            mxpc_error_normalize(L, -1);
            const char *msg = mxpc_error_field(L, -1, "message");
            mxpc_log(MXPC_LOG_WARN, "progress display stopped: %s", msg ? msg : "error");
            luaL_unref(L, LUA_REGISTRYINDEX, tick_ref);
            tick_ref = LUA_NOREF;
            mxpc_tick_set(NULL, NULL);
        }
    }
    lua_settop(L, top);
}

/* runtime.set_ticker(fn | nil): fn() is called from long C loops at most
 * every MXPC_TICK_SECONDS (see runtime.h); nil stops it. */
static int l_set_ticker(lua_State *L)
{
    if (!lua_isnoneornil(L, 1))
        luaL_checktype(L, 1, LUA_TFUNCTION);
    if (tick_ref != LUA_NOREF)
        luaL_unref(L, LUA_REGISTRYINDEX, tick_ref);
    tick_ref = LUA_NOREF;
    mxpc_tick_set(NULL, NULL);
    if (lua_isnoneornil(L, 1))
        return 0;
    lua_rawgeti(L, LUA_REGISTRYINDEX, LUA_RIDX_MAINTHREAD);
    lua_State *main_thread = lua_tothread(L, -1);
    lua_pop(L, 1);
    lua_pushvalue(L, 1);
    tick_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    mxpc_tick_set(lua_tick, main_thread);
    return 0;
}

/* runtime.system_ca_file(): the system's CA bundle the TLS clients fall back
 * to, or nil (include/mxpc/ca_bundle.h) */
static int l_system_ca_file(lua_State *L)
{
    const char *f = mxpc_system_ca_file();
    if (f)
        lua_pushstring(L, f);
    else
        lua_pushnil(L);
    return 1;
}

/* runtime.executable(): the program's own path (/proc/self/exe, links
 * resolved), or nil */
static int l_executable(lua_State *L)
{
    char path[4096];
    ssize_t n = readlink("/proc/self/exe", path, sizeof path - 1);
    if (n <= 0) {
        lua_pushnil(L);
        return 1;
    }
    path[n] = '\0';
    lua_pushstring(L, path);
    return 1;
}

/* The architecture in the package's name (tools/package: Debian's names). */
#if defined(__x86_64__)
#define MXPC_ARCH "amd64"
#elif defined(__aarch64__)
#define MXPC_ARCH "arm64"
#elif defined(__i386__)
#define MXPC_ARCH "i386"
#else
#define MXPC_ARCH "unknown"
#endif

int luaopen_mxpc_runtime(lua_State *L)
{
    static const luaL_Reg fns[] = {
        {"embedded", l_embedded},
        {"scripts_dir", l_scripts_dir},
        {"data_dir", l_data_dir},
        {"check_interrupt", l_check_interrupt},
        {"pcall", l_pcall},
        {"clear_interrupt", l_clear_interrupt},
        {"interrupted", l_interrupted},
        {"defer_interrupts", l_defer_interrupts},
        {"sleep", l_sleep},
        {"monotonic", l_monotonic},
        {"set_ticker", l_set_ticker},
        {"libraries", mxpc_push_library_versions},
        {"system_ca_file", l_system_ca_file},
        {"executable", l_executable},
        {NULL, NULL},
    };
    luaL_newlib(L, fns);
    lua_pushstring(L, MXPC_VERSION);
    lua_setfield(L, -2, "version");
    lua_pushstring(L, "mxpc-data-migration");
    lua_setfield(L, -2, "program");
    lua_pushstring(L, MXPC_ARCH);
    lua_setfield(L, -2, "arch");
    return 1;
}
