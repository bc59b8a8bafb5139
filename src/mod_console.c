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

/* Tab completion. While readline runs inside l_readline, the completer is
 * argument 2 of that call on `completing`'s stack: called with the word
 * before the cursor, it returns an array of whole words. */
static lua_State *completing;

/* Every character that cannot be part of a name, a field or a method
 * ("c:get", "string.format"), so the completer gets just those. */
static const char word_breaks[] = " \t\n\"\\'`@$><=;|&{}()[],+-*/%^~#!?";

/* The completer's result is at the top of the stack during rl_completion_matches. */
static char *next_match(const char *text, int state)
{
    static lua_Integer i;
    (void)text;
    if (state == 0)
        i = 0;
    while (lua_rawgeti(completing, -1, ++i) != LUA_TNIL) {
        const char *s = lua_tostring(completing, -1);
        char *copy = s ? strdup(s) : NULL;
        lua_pop(completing, 1);
        if (copy)
            return copy;
    }
    lua_pop(completing, 1);
    return NULL;
}

static char **attempt_completion(const char *text, int start, int end)
{
    (void)start;
    (void)end;
    lua_State *L = completing;
    char **matches = NULL;
    rl_attempted_completion_over = 1; /* never file names */
    rl_completion_append_character = '\0';
    if (!L || !lua_checkstack(L, 4))
        return NULL;
    lua_pushvalue(L, 2);
    lua_pushstring(L, text);
    if (lua_pcall(L, 1, 1, 0) == LUA_OK && lua_istable(L, -1) && lua_rawlen(L, -1) > 0)
        matches = rl_completion_matches(text, next_match);
    lua_pop(L, 1);
    return matches;
}

/* console.readline(prompt [, completer]) -> line without its newline, or
 * nil at the end of input. On a terminal, Tab offers completer(word). */
static int l_readline(lua_State *L)
{
    const char *prompt = luaL_optstring(L, 1, "");
    if (isatty(0) && isatty(1)) {
        int with_completion = lua_isfunction(L, 2);
        completing = with_completion ? L : NULL;
        rl_attempted_completion_function = with_completion ? attempt_completion : NULL;
        rl_basic_word_break_characters = word_breaks;
        rl_completer_word_break_characters = (char *)word_breaks;
        char *line = readline(prompt);
        completing = NULL;
        rl_attempted_completion_function = NULL;
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
