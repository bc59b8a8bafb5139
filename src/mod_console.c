/* Lua module mxpc.console: line input for the REPL (lua/mxpc/repl.lua).
 * On a terminal it uses libedit (editing, history); otherwise it reads plain
 * lines from stdin, so the REPL can be scripted and tested through a pipe. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <editline/readline.h>
#include <lauxlib.h>

#include "mxpc/modules.h"

/* console.interactive() -> whether stdin and stdout are terminals */
static int l_interactive(lua_State *L)
{
    lua_pushboolean(L, isatty(0) && isatty(1));
    return 1;
}

/* console.readline(prompt) -> line without its newline, or nil at the end of input */
static int l_readline(lua_State *L)
{
    const char *prompt = luaL_optstring(L, 1, "");
    if (isatty(0) && isatty(1)) {
        char *line = readline(prompt);
        if (!line)
            return 0;
        lua_pushstring(L, line);
        free(line);
        return 1;
    }
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    int c, any = 0;
    while ((c = getchar()) != EOF && c != '\n') {
        luaL_addchar(&b, (char)c);
        any = 1;
    }
    if (c == EOF && !any) {
        clearerr(stdin);
        return 0;
    }
    luaL_pushresult(&b);
    return 1;
}

/* console.add_history(line) */
static int l_add_history(lua_State *L)
{
    const char *line = luaL_checkstring(L, 1);
    if (isatty(0) && *line)
        add_history(line);
    return 0;
}

/* console.load_history(path) / console.save_history(path): best effort */
static int l_load_history(lua_State *L)
{
    if (isatty(0))
        read_history(luaL_checkstring(L, 1));
    return 0;
}

static int l_save_history(lua_State *L)
{
    if (isatty(0)) {
        stifle_history(1000);
        write_history(luaL_checkstring(L, 1));
    }
    return 0;
}

int luaopen_mxpc_console(lua_State *L)
{
    static const luaL_Reg fns[] = {
        {"interactive", l_interactive},   {"readline", l_readline},         {"add_history", l_add_history},
        {"load_history", l_load_history}, {"save_history", l_save_history}, {NULL, NULL},
    };
    luaL_newlib(L, fns);
    return 1;
}
