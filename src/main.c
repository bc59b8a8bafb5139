/* Entry point: start the Lua runtime and hand the command line to the Lua
 * main module (lua/mxpc/main.lua), which parses it and runs the command.
 * C only picks out what must be known before any Lua runs: --scripts (where
 * Lua files come from) and --debug (print tracebacks). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lua.h>

#include "mxpc/error.h"
#include "mxpc/log.h"
#include "mxpc/runtime.h"

struct early_options {
    const char *scripts_dir;
    int debug;
};

/* Scans argv for --scripts/--debug up to "--" or the script of `run` (whose
 * own arguments are not ours). Full validation happens in Lua. */
static void scan_early_options(int argc, char **argv, struct early_options *o)
{
    const char *env = getenv("MXPC_SCRIPTS");
    if (env && *env)
        o->scripts_dir = env;
    const char *command = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--") == 0)
            break;
        if (strcmp(a, "--debug") == 0) {
            o->debug = 1;
        } else if (strcmp(a, "--scripts") == 0 && i + 1 < argc) {
            o->scripts_dir = argv[++i];
        } else if (strncmp(a, "--scripts=", 10) == 0) {
            o->scripts_dir = a + 10;
        } else if (strcmp(a, "--log-format") == 0) {
            i++; /* skip its value */
        } else if (a[0] != '-') {
            if (!command)
                command = a;
            else if (strcmp(command, "run") == 0)
                break; /* the script: what follows belongs to it */
        }
    }
}

/* prefix + text, redacted and escaped, as one line on stderr; with `lines`,
 * a text of several lines (a server's ERROR with its DETAIL and HINT) as
 * lines, the later ones indented */
static void print_line(const char *prefix, const char *text, int lines)
{
    char *r = mxpc_redact(text);
    char *e = lines ? mxpc_escape_lines(r, "  ") : mxpc_escape_string(r);
    fprintf(stderr, "%s%s\n", prefix, e);
    free(e);
    free(r);
}

/* Prints the error object on top of the stack as one line (plus a hint, and
 * the traceback with --debug), redacted, and returns the exit code. Lua
 * source positions in front of the message are shown only with --debug. */
static int report_error(lua_State *L, int debug)
{
    int code = mxpc_error_exit_code(L, -1);
    const char *hint = mxpc_error_field(L, -1, "hint");
    const char *tb = mxpc_error_field(L, -1, "traceback");
    const char *msg = mxpc_error_field(L, -1, "message");
    const char *ecode = mxpc_error_field(L, -1, "code");
    if (!debug) /* where in the Lua code: only with --debug */
        msg = mxpc_error_skip_positions(msg, tb);
    mxpc_log_status(NULL); /* a progress line ends here */
    if (mxpc_log_get_format() == MXPC_LOG_JSON) {
        char exit_text[16];
        snprintf(exit_text, sizeof exit_text, "%d", code);
        struct mxpc_log_field fields[5];
        size_t n = 0;
        /* sorted by key, as log.* in Lua writes them */
        fields[n++] = (struct mxpc_log_field){"code", ecode ? ecode : "error", MXPC_LOG_STRING};
        fields[n++] = (struct mxpc_log_field){"event", "error", MXPC_LOG_STRING};
        fields[n++] = (struct mxpc_log_field){"exit", exit_text, MXPC_LOG_NUMBER};
        if (hint)
            fields[n++] = (struct mxpc_log_field){"hint", hint, MXPC_LOG_STRING};
        if (debug && tb)
            fields[n++] = (struct mxpc_log_field){"traceback", tb, MXPC_LOG_STRING};
        mxpc_log_fields(MXPC_LOG_ERROR, msg ? msg : "unknown error", fields, n);
        return code;
    }
    int lines = 0; /* the message holds lines of a program's output (error.lines) */
    if (lua_istable(L, -1)) {
        lua_getfield(L, -1, "lines");
        lines = lua_toboolean(L, -1);
        lua_pop(L, 1);
    }
    print_line("error: ", msg ? msg : "unknown error", lines);
    if (hint)
        print_line("hint: ", hint, 0);
    if (debug && tb) {
        /* line by line, so the traceback keeps its shape and nothing in it
         * reaches the terminal raw */
        char *t = mxpc_redact(tb);
        for (char *line = t, *next; line; line = next) {
            next = strchr(line, '\n');
            if (next)
                *next++ = '\0';
            size_t indent = strspn(line, "\t");
            fprintf(stderr, "%*s", (int)(2 * indent), "");
            char *e = mxpc_escape_string(line + indent);
            fprintf(stderr, "%s\n", e);
            free(e);
        }
        free(t);
    }
    return code;
}

int main(int argc, char **argv)
{
    struct early_options early = {0};
    scan_early_options(argc, argv, &early);

    struct mxpc_runtime_options opts = {.scripts_dir = early.scripts_dir, .data_dir = getenv("MXPC_DATADIR")};
    lua_State *L = mxpc_runtime_new(&opts);
    if (!L) {
        fputs("error: cannot create the Lua state (out of memory)\n", stderr);
        return MXPC_EXIT_FAILURE;
    }
    mxpc_runtime_install_signal_handlers(L);

    /* main = require("mxpc.main"); return main.run(argv) */
    lua_getglobal(L, "require");
    lua_pushstring(L, "mxpc.main");
    int status = mxpc_runtime_pcall(L, 1, 1);
    int exit_code = MXPC_EXIT_OK;
    if (status == LUA_OK) {
        lua_getfield(L, -1, "run");
        lua_createtable(L, argc, 0);
        for (int i = 0; i < argc; i++) {
            lua_pushstring(L, argv[i]);
            lua_rawseti(L, -2, i);
        }
        status = mxpc_runtime_pcall(L, 1, 1);
    }
    if (status != LUA_OK) {
        exit_code = report_error(L, early.debug);
    } else if (lua_isinteger(L, -1)) {
        exit_code = (int)lua_tointeger(L, -1);
    }
    /* closing the state runs every pending __gc: partial outputs are removed */
    lua_close(L);
    int signo = mxpc_interrupted();
    if (signo && exit_code == MXPC_EXIT_OK)
        exit_code = 128 + signo;
    return exit_code;
}
