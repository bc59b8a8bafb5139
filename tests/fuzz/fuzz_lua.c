/* The harness of the Lua targets: MXPC_FUZZ_SCRIPT (tests/fuzz/lua/NAME.lua)
 * returns a function, run on every input as a string in one runtime made
 * once per process, with every embedded module (as the program has them).
 *
 * The function returns normally when the code under test read or refused
 * the input. An error object of the project's (a table with a code other than
 * "error") is a refusal too. A plain Lua error ("attempt to index a nil
 * value", a bad argument, an assertion of the script's own) is a finding:
 * the harness prints it with its traceback and aborts.
 *
 * The Lua interpreter is Debian's, not instrumented: a line hook gives
 * libFuzzer the coverage of the Lua code, each (previous line, line) pair
 * of a chunk counted in libFuzzer's extra counters. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lua.h>

#include "mxpc/error.h"
#include "mxpc/log.h"
#include "mxpc/runtime.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static lua_State *L;
static int fn_ref;

#define LUA_COUNTERS 65536
__attribute__((used, section("__libfuzzer_extra_counters"))) static uint8_t lua_counters[LUA_COUNTERS];

static void line_hook(lua_State *L1, lua_Debug *ar)
{
    static uintptr_t prev;
    if (!lua_getinfo(L1, "S", ar))
        return;
    uintptr_t here = (uintptr_t)ar->source * 31u + (uintptr_t)ar->currentline;
    uintptr_t edge = (here ^ (prev >> 1)) * 2654435761u;
    prev = here;
    uint8_t *c = &lua_counters[(edge >> 7) % LUA_COUNTERS];
    if (*c < 255)
        (*c)++;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    struct mxpc_runtime_options o = {NULL, NULL};
    L = mxpc_runtime_new(&o);
    if (!L) {
        fprintf(stderr, "fuzz: out of memory\n");
        abort();
    }
    if (luaL_loadfile(L, MXPC_FUZZ_SCRIPT) != LUA_OK || mxpc_runtime_pcall(L, 0, 1) != LUA_OK ||
        !lua_isfunction(L, -1)) {
        fprintf(stderr, "fuzz: %s does not return a function: %s\n", MXPC_FUZZ_SCRIPT,
                luaL_tolstring(L, -1, NULL));
        abort();
    }
    fn_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    lua_sethook(L, line_hook, LUA_MASKLINE, 0);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    lua_rawgeti(L, LUA_REGISTRYINDEX, fn_ref);
    lua_pushlstring(L, (const char *)data, size);
    if (mxpc_runtime_pcall(L, 1, 0) != LUA_OK) {
        const char *code = mxpc_error_field(L, -1, "code");
        if (!code || strcmp(code, "error") == 0) {
            const char *tb = mxpc_error_field(L, -1, "traceback");
            fprintf(stderr, "fuzz: %s: %s\n", MXPC_FUZZ_SCRIPT, tb ? tb : luaL_tolstring(L, -1, NULL));
            abort();
        }
        lua_pop(L, 1);
    }
    /* what the input left behind is garbage: collected now, so that
     * libFuzzer's leak check (mallocs against frees) holds per input */
    lua_gc(L, LUA_GCCOLLECT);
    mxpc_redact_clear(); /* the secrets an input registered (k8s_api: a Secret's data) */
    return 0;
}
