/* Lua module mxpc.pg: PostgreSQL connections on libpq.
 *
 *   local db <close> = assert(pg.connect{host = "db", port = 5432, dbname = "app",
 *       user = "app", password = pw, sslmode = "verify-full"})
 *   local rows = assert(db:query("select id, name from t where id = $1", 42))
 *
 * Connection parameters are passed as keywords (PQconnectStartParams), never
 * as a connection string, and the password is registered for redaction.
 * Connecting and queries run asynchronously and poll mxpc_interrupted(), so
 * Ctrl-C cancels a running query (PQcancel) instead of waiting for it. Query
 * parameters are sent separately from the SQL text ($1, $2, ...). */
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <lauxlib.h>
#include <libpq-fe.h>

#include "mxpc/buf.h"
#include "mxpc/error.h"
#include "mxpc/log.h"
#include "mxpc/lua_args.h"
#include "mxpc/modules.h"
#include "mxpc/process.h"
#include "mxpc/runtime.h"
#include "mxpc/sql_load.h"
#include "mxpc/sql_split.h"

#define CONN_META "mxpc.pg.connection"
#define LOAD_META "mxpc.pg.load"
#define POLL_MS 200
#define MAX_PARAMS 32

/* type OIDs (pg_type.dat) converted to Lua numbers and booleans */
#define BOOLOID 16
#define INT8OID 20
#define INT2OID 21
#define INT4OID 23
#define OIDOID 26
#define FLOAT4OID 700
#define FLOAT8OID 701

struct lload;

struct lconn {
    PGconn *conn;
    struct lload *load; /* a load that has the connection, or NULL */
    char label[256];    /* user@host:port/dbname, for messages */
};

struct lload {
    struct mxpc_sql_load *l;
    struct lconn *c;
};

static struct lconn *check_conn(lua_State *L)
{
    return luaL_checkudata(L, 1, CONN_META);
}

static PGconn *live_conn(lua_State *L)
{
    struct lconn *c = check_conn(L);
    if (!c->conn)
        luaL_error(L, "attempt to use a closed connection");
    if (c->load)
        luaL_error(L, "the connection is busy with a load (db:load): wait for it or close it first");
    return c->conn;
}

/* A hint for the usual ways a connection fails. */
static const char *connect_hint(const char *msg, const char *sslmode)
{
    if (strstr(msg, "certificate verify failed") || strstr(msg, "root certificate file"))
        return "the server's certificate is not trusted: set PGSSLROOTCERT to the CA certificate (PEM) that "
               "signed it";
    if (strstr(msg, "does not match host name") || strstr(msg, "server certificate for"))
        return "the server's certificate is for another host name: connect by the name in the certificate";
    if (strstr(msg, "server does not support SSL"))
        return "the server does not offer TLS, but the connection's sslmode asks for it";
    if (strstr(msg, "password authentication failed") || strstr(msg, "no password supplied"))
        return "the database credentials were refused: check the environment's database secret";
    if (strstr(msg, "no pg_hba.conf entry"))
        return sslmode && strcmp(sslmode, "disable") == 0
                   ? "the server refuses this client; it may require TLS"
                   : "the server refuses connections from this host or user (pg_hba.conf)";
    if (strstr(msg, "Connection refused") || strstr(msg, "timeout expired") || strstr(msg, "could not translate host"))
        return "check that the database host is reachable from here (from outside the cluster it often is "
               "not: run in a jump pod)";
    return NULL;
}

/* Waits for the socket while polling for interruption. Returns 0, or -1 when interrupted. */
static int wait_socket(PGconn *conn, int for_write, time_t deadline)
{
    for (;;) {
        mxpc_tick();
        if (mxpc_interrupted())
            return -1;
        struct pollfd p = {PQsocket(conn), (short)(for_write ? POLLOUT : POLLIN), 0};
        int r = poll(&p, 1, POLL_MS);
        if (r > 0 || (r < 0 && errno != EINTR))
            return 0;
        if (deadline && time(NULL) >= deadline)
            return 0; /* let libpq notice and report the timeout */
    }
}

/* Connection parameter `key` (a string or a number) of the table at 1. */
static const char *param(lua_State *L, int keep, const char *key)
{
    return mxpc_args_opt_string(L, 1, key, keep);
}

/* pg.connect{host, port, dbname, user, password, sslmode, sslrootcert,
 * connect_timeout, application_name} -> connection, or nil, err */
static int l_connect(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_settop(L, 1);
    const int keep = mxpc_args_keep(L); /* 2: the values as strings */
    static const char *const names[] = {"host",        "port",   "dbname",          "user",
                                        "password",    "sslmode", "sslrootcert",    "connect_timeout",
                                        "application_name", NULL};
    const char *keys[16], *values[16];
    int n = 0;
    for (int i = 0; names[i]; i++) {
        const char *v = param(L, keep, names[i]);
        if (v) {
            keys[n] = names[i];
            values[n++] = v;
        }
    }
    const char *host = param(L, keep, "host"), *port = param(L, keep, "port");
    const char *dbname = param(L, keep, "dbname"), *user = param(L, keep, "user");
    const char *password = param(L, keep, "password"), *sslmode = param(L, keep, "sslmode");
    if (!param(L, keep, "connect_timeout")) {
        keys[n] = "connect_timeout";
        values[n++] = "15";
    }
    if (!param(L, keep, "application_name")) {
        keys[n] = "application_name";
        values[n++] = "mxpc-data-migration";
    }
    keys[n] = values[n] = NULL;
    mxpc_redact_add(password);

    struct lconn *c = lua_newuserdatauv(L, sizeof *c, 0);
    c->conn = NULL;
    c->load = NULL;
    snprintf(c->label, sizeof c->label, "%s@%s:%s/%s", user ? user : "?", host ? host : "localhost",
             port ? port : "5432", dbname ? dbname : "?");
    luaL_setmetatable(L, CONN_META);

    c->conn = PQconnectStartParams(keys, values, 0);
    if (!c->conn)
        return luaL_error(L, "out of memory");
    time_t deadline = time(NULL) + 120; /* libpq's connect_timeout is per address; bound the whole */
    PostgresPollingStatusType st = PGRES_POLLING_WRITING;
    while (PQstatus(c->conn) != CONNECTION_BAD && st != PGRES_POLLING_OK && st != PGRES_POLLING_FAILED) {
        if (wait_socket(c->conn, st == PGRES_POLLING_WRITING, deadline) != 0) {
            PQfinish(c->conn);
            c->conn = NULL;
            mxpc_check_interrupt(L);
        }
        if (time(NULL) >= deadline)
            break;
        st = PQconnectPoll(c->conn);
    }
    if (PQstatus(c->conn) != CONNECTION_OK) {
        char msg[1024];
        snprintf(msg, sizeof msg, "%s", PQerrorMessage(c->conn));
        mxpc_one_line(msg);
        PQfinish(c->conn);
        c->conn = NULL;
        return mxpc_error_fail(L, "connect", connect_hint(msg, sslmode), "cannot connect to PostgreSQL %s: %s",
                               c->label, msg[0] ? msg : "timed out");
    }
    return 1;
}

/* Pushes one value converted by its type; NULL becomes nil. */
static void push_value(lua_State *L, const PGresult *res, int row, int col)
{
    if (PQgetisnull(res, row, col)) {
        lua_pushnil(L);
        return;
    }
    const char *v = PQgetvalue(res, row, col);
    switch (PQftype(res, col)) {
    case BOOLOID: lua_pushboolean(L, v[0] == 't'); break;
    case INT2OID:
    case INT4OID:
    case INT8OID:
    case OIDOID:
        if (!lua_stringtonumber(L, v))
            lua_pushstring(L, v);
        break;
    case FLOAT4OID:
    case FLOAT8OID:
        if (!lua_stringtonumber(L, v))
            lua_pushstring(L, v);
        break;
    default: lua_pushlstring(L, v, (size_t)PQgetlength(res, row, col));
    }
}

/* Sends the query, waits for its result (cancelling it on interruption) and
 * returns the last result, or NULL with the connection's error. */
static PGresult *run_query(lua_State *L, PGconn *conn, const char *sql, int nparams, const char *const *params)
{
    int sent = nparams >= 0 ? PQsendQueryParams(conn, sql, nparams, NULL, params, NULL, NULL, 0)
                            : PQsendQuery(conn, sql);
    if (!sent)
        return NULL;
    PGresult *last = NULL;
    for (;;) {
        while (PQisBusy(conn)) {
            if (wait_socket(conn, 0, 0) != 0) {
                PGcancel *cancel = PQgetCancel(conn);
                char buf[256];
                if (cancel) {
                    PQcancel(cancel, buf, sizeof buf);
                    PQfreeCancel(cancel);
                }
                PGresult *r;
                while ((r = PQgetResult(conn)) != NULL)
                    PQclear(r);
                PQclear(last);
                mxpc_check_interrupt(L);
            }
            if (!PQconsumeInput(conn)) {
                PQclear(last);
                return NULL;
            }
        }
        PGresult *r = PQgetResult(conn);
        if (!r)
            break;
        /* keep the first error, else the last result */
        if (last && PQresultStatus(last) == PGRES_FATAL_ERROR)
            PQclear(r);
        else {
            PQclear(last);
            last = r;
        }
    }
    return last;
}

/* Pushes nil and the error of a refusal or a lost connection: "PostgreSQL
 * user@host:port/db: message (SQLSTATE x), at: the line of SQL it points
 * at", then the server's DETAIL, HINT and CONTEXT on lines of their own, as
 * psql shows them (err.lines); err.sqlstate. */
static int push_failure(lua_State *L, struct lconn *c, const struct mxpc_sql_failure *f)
{
    const char *s = f->sqlstate;
    if (PQstatus(c->conn) == CONNECTION_BAD)
        mxpc_error_fail(L, "connect", NULL, "lost the connection to PostgreSQL %s: %s", c->label, f->message);
    else
        mxpc_error_fail(L, "sql", NULL, "PostgreSQL %s: %s%s%s%s%s%s%s%s%s%s%s%s", c->label, f->message,
                        s[0] ? " (SQLSTATE " : "", s, s[0] ? ")" : "", f->near[0] ? ", at: " : "", f->near,
                        f->detail[0] ? "\nDETAIL:  " : "", f->detail, f->hint[0] ? "\nHINT:  " : "", f->hint,
                        f->context[0] ? "\nCONTEXT:  " : "", f->context);
    if (s[0]) {
        lua_pushstring(L, s);
        lua_setfield(L, -2, "sqlstate");
    }
    if (f->detail[0] || f->hint[0] || f->context[0]) {
        lua_pushboolean(L, 1);
        lua_setfield(L, -2, "lines");
    }
    return 2;
}

static int fail_result(lua_State *L, struct lconn *c, PGresult *res, const char *sql)
{
    struct mxpc_sql_failure f;
    /* a one-line statement is the caller's to show: no `near` */
    mxpc_sql_failure_set(&f, res, c->conn, sql && strchr(sql, '\n') ? sql : NULL);
    PQclear(res);
    return push_failure(L, c, &f);
}

/* db:query(sql, ...) -> rows (array of {column = value}; rows.columns =
 * names in order), or nil, err. Parameters: strings, numbers, booleans, nil. */
static int c_query(lua_State *L)
{
    struct lconn *c = check_conn(L);
    PGconn *conn = live_conn(L);
    const char *sql = luaL_checkstring(L, 2);
    int nparams = lua_gettop(L) - 2;
    luaL_argcheck(L, nparams <= MAX_PARAMS, MAX_PARAMS + 3, "too many query parameters");
    const char *params[MAX_PARAMS];
    for (int i = 0; i < nparams; i++) {
        int idx = i + 3;
        if (lua_isnil(L, idx))
            params[i] = NULL;
        else if (lua_isboolean(L, idx))
            params[i] = lua_toboolean(L, idx) ? "true" : "false";
        else if (lua_type(L, idx) == LUA_TSTRING || lua_type(L, idx) == LUA_TNUMBER)
            params[i] = lua_tostring(L, idx); /* numbers are converted in place, and stay on the stack */
        else
            return luaL_argerror(L, idx, "query parameters must be strings, numbers, booleans or nil");
    }
    PGresult *res = run_query(L, conn, sql, nparams, params);
    ExecStatusType st = res ? PQresultStatus(res) : PGRES_FATAL_ERROR;
    if (st != PGRES_TUPLES_OK && st != PGRES_COMMAND_OK)
        return fail_result(L, c, res, sql);
    int nrows = PQntuples(res), ncols = PQnfields(res);
    lua_createtable(L, nrows, 1);
    lua_createtable(L, ncols, 0);
    for (int j = 0; j < ncols; j++) {
        lua_pushstring(L, PQfname(res, j));
        lua_rawseti(L, -2, j + 1);
    }
    lua_setfield(L, -2, "columns");
    for (int i = 0; i < nrows; i++) {
        lua_createtable(L, 0, ncols);
        for (int j = 0; j < ncols; j++) {
            push_value(L, res, i, j);
            lua_setfield(L, -2, PQfname(res, j));
        }
        lua_rawseti(L, -2, i + 1);
    }
    const char *affected = PQcmdTuples(res);
    if (affected && *affected) {
        lua_pushinteger(L, strtoll(affected, NULL, 10));
        lua_setfield(L, -2, "affected");
    }
    PQclear(res);
    return 1;
}

/* db:exec(sql) -> true, or nil, err. Runs one or more statements, no parameters. */
static int c_exec(lua_State *L)
{
    struct lconn *c = check_conn(L);
    PGconn *conn = live_conn(L);
    const char *sql = luaL_checkstring(L, 2);
    PGresult *res = run_query(L, conn, sql, -1, NULL);
    ExecStatusType st = res ? PQresultStatus(res) : PGRES_FATAL_ERROR;
    if (st != PGRES_TUPLES_OK && st != PGRES_COMMAND_OK && st != PGRES_EMPTY_QUERY)
        return fail_result(L, c, res, sql);
    PQclear(res);
    lua_pushboolean(L, 1);
    return 1;
}

/* db:info() -> {host, port, dbname, user, server_version (integer),
 * ssl = {protocol, cipher} or false} */
static int c_info(lua_State *L)
{
    PGconn *conn = live_conn(L);
    lua_createtable(L, 0, 6);
    lua_pushstring(L, PQhost(conn));
    lua_setfield(L, -2, "host");
    lua_pushstring(L, PQport(conn));
    lua_setfield(L, -2, "port");
    lua_pushstring(L, PQdb(conn));
    lua_setfield(L, -2, "dbname");
    lua_pushstring(L, PQuser(conn));
    lua_setfield(L, -2, "user");
    lua_pushinteger(L, PQserverVersion(conn));
    lua_setfield(L, -2, "server_version");
    if (PQsslInUse(conn)) {
        lua_createtable(L, 0, 2);
        lua_pushstring(L, PQsslAttribute(conn, "protocol"));
        lua_setfield(L, -2, "protocol");
        lua_pushstring(L, PQsslAttribute(conn, "cipher"));
        lua_setfield(L, -2, "cipher");
    } else {
        lua_pushboolean(L, 0);
    }
    lua_setfield(L, -2, "ssl");
    return 1;
}

static void load_stop(struct lload *ld)
{
    mxpc_sql_load_free(ld->l);
    ld->l = NULL;
    if (ld->c)
        ld->c->load = NULL;
    ld->c = NULL;
}

/* close, __close, __gc: idempotent */
static int c_close(lua_State *L)
{
    struct lconn *c = check_conn(L);
    if (c->load)
        load_stop(c->load);
    if (c->conn)
        PQfinish(c->conn);
    c->conn = NULL;
    return 0;
}

static int c_tostring(lua_State *L)
{
    struct lconn *c = check_conn(L);
    if (!c->conn)
        lua_pushfstring(L, "pg.connection (%s, closed)", c->label);
    else
        lua_pushfstring(L, "pg.connection (%s, %s)", c->label,
                        PQsslInUse(c->conn) ? PQsslAttribute(c->conn, "protocol") : "no TLS");
    return 1;
}

/* db:transaction() -> "idle", "active", "intrans" (in a transaction block),
 * "inerror" (in a failed one) or "unknown" (PQtransactionStatus) */
static int c_transaction(lua_State *L)
{
    static const char *const names[] = {"idle", "active", "intrans", "inerror", "unknown"};
    PGTransactionStatusType st = PQtransactionStatus(live_conn(L));
    lua_pushstring(L, names[st <= PQTRANS_UNKNOWN ? st : PQTRANS_UNKNOWN]);
    return 1;
}

/* --- loads ------------------------------------------------------------- */

/* db:load(producer) -> load: the SQL the child writes on its stdout (spawned
 * with stdout = "pipe"; pg_restore -f -, pg_dump in plain format) run on this
 * connection by a thread (sql_load.h), statements in batches, COPY data in
 * large messages. The connection is the load's until it is waited for or
 * closed; nothing is committed by it: begin a transaction before, and judge
 * the child before committing. */
static int c_load(lua_State *L)
{
    struct lconn *c = check_conn(L);
    live_conn(L);
    struct mxpc_process *p = mxpc_lua_process(L, 2);
    luaL_argcheck(L, p != NULL, 2, "the process is closed");
    struct lload *ld = lua_newuserdatauv(L, sizeof *ld, 2);
    ld->l = NULL;
    ld->c = NULL;
    lua_pushvalue(L, 1); /* the connection, kept alive while the load has it */
    lua_setiuservalue(L, -2, 1);
    lua_pushvalue(L, 2); /* the child, whose stderr waits keep reading */
    lua_setiuservalue(L, -2, 2);
    luaL_setmetatable(L, LOAD_META);
    int e = mxpc_sql_load_start(&ld->l, c->conn, p);
    if (e == EINVAL)
        return luaL_error(L, "db:load: spawn the producer with stdout = \"pipe\"");
    if (e == EDEADLK)
        return luaL_error(L, "db:load runs in the caller's transaction: BEGIN first");
    if (e)
        return mxpc_error_fail_errno(L, e, "cannot start loading SQL into PostgreSQL %s", c->label);
    ld->c = c;
    c->load = ld;
    return 1;
}

static struct lload *live_load(lua_State *L)
{
    struct lload *ld = luaL_checkudata(L, 1, LOAD_META);
    if (!ld->l)
        luaL_error(L, "attempt to use a closed load");
    return ld;
}

static void drain_producer(lua_State *L)
{
    lua_getiuservalue(L, 1, 2);
    struct mxpc_process *p = lua_isnil(L, -1) ? NULL : mxpc_lua_process(L, -1);
    if (p)
        mxpc_process_drain_stderr(p);
    lua_pop(L, 1);
}

/* load:wait() -> bytes of SQL read, once all of it ran; or nil, err (the
 * server's refusal, with its SQLSTATE as err.sqlstate, and
 * err.input_ended: whether the producer's output had ended, so that the
 * failure may be the producer's; the connection is then in a failed
 * transaction). Raises on a signal (the load still runs:
 * close it). The connection is free again after it. */
static int l_wait(lua_State *L)
{
    struct lload *ld = live_load(L);
    for (;;) {
        int rc = mxpc_sql_load_wait(ld->l, 100);
        if (rc == MXPC_PROCESS_EINTERRUPTED)
            mxpc_check_interrupt(L);
        drain_producer(L);
        if (rc == 1)
            break;
    }
    const struct mxpc_sql_failure *fail = mxpc_sql_load_failure(ld->l);
    struct mxpc_sql_failure f;
    if (fail)
        f = *fail; /* the load's is gone with it */
    lua_Integer bytes = (lua_Integer)mxpc_sql_load_bytes(ld->l);
    int ended = mxpc_sql_load_input_ended(ld->l);
    struct lconn *c = ld->c;
    load_stop(ld);
    if (!fail) {
        lua_pushinteger(L, bytes);
        return 1;
    }
    push_failure(L, c, &f);
    lua_pushboolean(L, ended);
    lua_setfield(L, -2, "input_ended");
    return 2;
}

/* load:poll() -> true once done */
static int l_poll(lua_State *L)
{
    struct lload *ld = live_load(L);
    drain_producer(L);
    lua_pushboolean(L, mxpc_sql_load_poll(ld->l));
    return 1;
}

/* load:bytes() -> bytes of SQL read so far */
static int l_bytes(lua_State *L)
{
    lua_pushinteger(L, (lua_Integer)mxpc_sql_load_bytes(live_load(L)->l));
    return 1;
}

/* close, __close, __gc: stops a load that still runs (its statement is
 * cancelled and the connection's socket shut: the transaction cannot
 * commit; close the connection); idempotent */
static int l_close(lua_State *L)
{
    struct lload *ld = luaL_checkudata(L, 1, LOAD_META);
    if (ld->l)
        load_stop(ld);
    return 0;
}

/* pg.quote_ident(name) -> "name" with quotes doubled */
static int l_quote_ident(lua_State *L)
{
    size_t len;
    const char *s = luaL_checklstring(L, 1, &len);
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    luaL_addchar(&b, '"');
    for (size_t i = 0; i < len; i++) {
        if (s[i] == '"')
            luaL_addchar(&b, '"');
        luaL_addchar(&b, s[i]);
    }
    luaL_addchar(&b, '"');
    luaL_pushresult(&b);
    return 1;
}

int luaopen_mxpc_pg(lua_State *L)
{
    static const luaL_Reg methods[] = {
        {"query", c_query}, {"exec", c_exec},   {"info", c_info},
        {"load", c_load},   {"close", c_close}, {"transaction", c_transaction}, {NULL, NULL},
    };
    static const luaL_Reg load_methods[] = {
        {"wait", l_wait}, {"poll", l_poll}, {"bytes", l_bytes}, {"close", l_close}, {NULL, NULL},
    };
    static const luaL_Reg load_meta[] = {{"__gc", l_close}, {"__close", l_close}, {NULL, NULL}};
    static const luaL_Reg meta[] = {
        {"__gc", c_close}, {"__close", c_close}, {"__tostring", c_tostring}, {NULL, NULL},
    };
    static const luaL_Reg fns[] = {{"connect", l_connect}, {"quote_ident", l_quote_ident}, {NULL, NULL}};
    mxpc_lua_class(L, CONN_META, methods, meta);
    mxpc_lua_class(L, LOAD_META, load_methods, load_meta);
    luaL_newlib(L, fns);
    return 1;
}
