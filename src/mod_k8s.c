/* Lua module mxpc.k8s: a Kubernetes API client.
 *
 *   local k8s = require "mxpc.k8s"
 *   local c = assert(k8s.connect{kubeconfig = path, context = "admin"})
 *   local app = assert(c:get("mendixapps", "demo-app"))
 *   local secret = assert(c:get("secrets", name))
 *   local values = k8s.secret_data(secret)    -- decoded, registered as secrets
 *
 * C holds the configuration (k8s_config.c) and the HTTP transport
 * (k8s_client.c); the resource table, JSON and error messages are Lua
 * (lua/mxpc/k8s_api.lua), installed into this module when it loads. */
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>

#include "mxpc/error.h"
#include "mxpc/k8s.h"
#include "mxpc/lua_args.h"
#include "mxpc/modules.h"
#include "mxpc/runtime.h"

#define CLIENT_META "mxpc.k8s.client"

struct client {
    struct mxpc_k8s_client *c;
    char *namespace; /* from connect{namespace=}, the context, the service account, or "default" */
};

static struct client *check_client(lua_State *L)
{
    return luaL_checkudata(L, 1, CLIENT_META);
}

static struct mxpc_k8s_client *open_client(lua_State *L)
{
    struct client *u = check_client(L);
    if (!u->c)
        luaL_error(L, "attempt to use a closed k8s client");
    return u->c;
}

static int fail(lua_State *L, const struct mxpc_k8s_error *err)
{
    if (strcmp(err->code, "interrupted") == 0)
        mxpc_check_interrupt(L); /* raises the usual interruption error */
    return mxpc_error_fail(L, err->code, err->hint[0] ? err->hint : NULL, "%s", err->message);
}

/* Optional number field in seconds -> milliseconds; `def` when absent. */
static long opt_ms(lua_State *L, int idx, const char *key, long def)
{
    lua_getfield(L, idx, key);
    long ms = def;
    if (!lua_isnil(L, -1)) {
        lua_Number s = luaL_checknumber(L, -1);
        luaL_argcheck(L, s >= 0 && s < 86400 * 7, idx, "timeout out of range");
        ms = s == 0 ? -1 : (long)(s * 1000);
    }
    lua_pop(L, 1);
    return ms;
}

/* k8s.connect{kubeconfig=, context=, namespace=, in_cluster=, timeout=, connect_timeout=} */
static int l_connect(lua_State *L)
{
    if (lua_isnoneornil(L, 1))
        lua_newtable(L);
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_settop(L, 1);
    const int keep = mxpc_args_keep(L);
    struct mxpc_k8s_load_options lo = {0};
    lo.kubeconfig = mxpc_args_opt_string(L, 1, "kubeconfig", keep);
    lo.context = mxpc_args_opt_string(L, 1, "context", keep);
    const char *ns = mxpc_args_opt_string(L, 1, "namespace", keep);
    lua_getfield(L, 1, "in_cluster");
    lo.in_cluster = lua_toboolean(L, -1);
    lua_pop(L, 1);
    struct mxpc_k8s_client_options co = {
        .connect_timeout_ms = opt_ms(L, 1, "connect_timeout", 0),
        .timeout_ms = opt_ms(L, 1, "timeout", 0),
    };

    struct client *u = lua_newuserdatauv(L, sizeof *u, 0);
    u->c = NULL;
    u->namespace = NULL;
    luaL_setmetatable(L, CLIENT_META);

    struct mxpc_k8s_config cfg;
    struct mxpc_k8s_error err;
    if (mxpc_k8s_config_load(&cfg, &lo, &err) != 0)
        return fail(L, &err);
    const char *chosen = ns && *ns ? ns : cfg.namespace ? cfg.namespace : "default";
    u->namespace = strdup(chosen);
    if (!u->namespace) {
        mxpc_k8s_config_free(&cfg);
        return luaL_error(L, "out of memory");
    }
    u->c = mxpc_k8s_client_new(&cfg, &co, &err);
    if (!u->c)
        return fail(L, &err);
    return 1;
}

/* client:_http(method, path [, body [, content_type]]) -> status, body, content_type | nil, err */
static int c_http(lua_State *L)
{
    struct mxpc_k8s_client *c = open_client(L);
    const char *method = luaL_checkstring(L, 2);
    const char *path = luaL_checkstring(L, 3);
    luaL_argcheck(L, path[0] == '/', 3, "path must start with '/'");
    size_t body_len = 0;
    const char *body = luaL_optlstring(L, 4, NULL, &body_len);
    const char *ctype = luaL_optstring(L, 5, NULL);
    struct mxpc_k8s_response resp;
    struct mxpc_k8s_error err;
    if (mxpc_k8s_request(c, method, path, ctype, body, body_len, &resp, &err) != 0)
        return fail(L, &err);
    lua_pushinteger(L, resp.status);
    lua_pushlstring(L, resp.body.data ? resp.body.data : "", resp.body.len);
    lua_pushstring(L, resp.content_type);
    mxpc_buf_free(&resp.body);
    return 3;
}

static void set_str(lua_State *L, const char *key, const char *value)
{
    if (!value)
        return;
    lua_pushstring(L, value);
    lua_setfield(L, -2, key);
}

/* client:info() -> {server, context, cluster, user, source, namespace, auth}: never a credential */
static int c_info(lua_State *L)
{
    struct mxpc_k8s_client *c = open_client(L);
    const struct mxpc_k8s_config *cfg = mxpc_k8s_client_config(c);
    lua_createtable(L, 0, 8);
    set_str(L, "server", cfg->server);
    set_str(L, "context", cfg->context);
    set_str(L, "cluster", cfg->cluster);
    set_str(L, "user", cfg->user);
    set_str(L, "source", cfg->source);
    set_str(L, "auth", cfg->auth);
    set_str(L, "namespace", check_client(L)->namespace);
    lua_pushboolean(L, cfg->context == NULL);
    lua_setfield(L, -2, "in_cluster");
    return 1;
}

static int c_namespace(lua_State *L)
{
    open_client(L);
    lua_pushstring(L, check_client(L)->namespace);
    return 1;
}

/* close, __close, __gc: idempotent */
static int c_close(lua_State *L)
{
    struct client *u = check_client(L);
    mxpc_k8s_client_free(u->c);
    u->c = NULL;
    free(u->namespace);
    u->namespace = NULL;
    return 0;
}

static int c_tostring(lua_State *L)
{
    struct client *u = check_client(L);
    if (!u->c) {
        lua_pushstring(L, "k8s.client (closed)");
        return 1;
    }
    const struct mxpc_k8s_config *cfg = mxpc_k8s_client_config(u->c);
    if (cfg->context)
        lua_pushfstring(L, "k8s.client (%s, context %s)", cfg->server, cfg->context);
    else
        lua_pushfstring(L, "k8s.client (%s, in-cluster service account)", cfg->server);
    return 1;
}

/* k8s._base64_decode(text) -> bytes | nil */
static int l_base64_decode(lua_State *L)
{
    size_t len, out_len;
    const char *text = luaL_checklstring(L, 1, &len);
    unsigned char *out = mxpc_base64_decode(text, len, &out_len);
    if (!out)
        return 0;
    lua_pushlstring(L, (const char *)out, out_len);
    free(out);
    return 1;
}

int luaopen_mxpc_k8s(lua_State *L)
{
    static const luaL_Reg methods[] = {
        {"_http", c_http}, {"info", c_info}, {"namespace", c_namespace}, {"close", c_close}, {NULL, NULL},
    };
    static const luaL_Reg meta[] = {
        {"__gc", c_close}, {"__close", c_close}, {"__tostring", c_tostring}, {NULL, NULL},
    };
    static const luaL_Reg fns[] = {
        {"connect", l_connect}, {"_base64_decode", l_base64_decode}, {NULL, NULL},
    };
    luaL_newlib(L, fns);                /* M */
    luaL_newmetatable(L, CLIENT_META);  /* M meta */
    luaL_setfuncs(L, meta, 0);
    luaL_newlib(L, methods);            /* M meta methods */
    lua_pushvalue(L, -1);
    lua_setfield(L, -3, "__index");     /* M meta methods */
    lua_remove(L, -2);                  /* M methods */

    /* the Lua half adds get/list/patch/request and secret_data */
    lua_getglobal(L, "require");
    lua_pushstring(L, "mxpc.k8s_api");
    lua_call(L, 1, 1);                  /* M methods api */
    lua_getfield(L, -1, "install");
    lua_pushvalue(L, -4);
    lua_pushvalue(L, -4);
    lua_call(L, 2, 0);                  /* M methods api */
    lua_pop(L, 2);
    return 1;
}
