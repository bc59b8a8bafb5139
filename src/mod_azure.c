/* Lua module mxpc.azure: Azure Blob Storage clients (azure_blob.c). A client
 * is the same handle as an S3 client (mxpc.s3's methods: head, get,
 * get_string, put, delete, delete_many, list, get_many, head_many,
 * uploader, upload, create_bucket, delete_bucket) with a container for the
 * bucket and a blob name for the key, plus copy_from_url; its errors are
 * worded by lua/mxpc/azure_api.lua.
 *
 *   local c <close> = assert(azure.client{endpoint = "https://acct.blob.core.windows.net",
 *                                         account = "acct", key = "base64..."})
 *   assert(c:put("container", "blob", "data"))
 *
 * See docs/azure.md. */
#include <string.h>
#include <time.h>

#include <lauxlib.h>

#include "mxpc/azure.h"
#include "mxpc/azure_identity.h"
#include "mxpc/error.h"
#include "mxpc/lua_args.h"
#include "mxpc/modules.h"

#include "mod_s3.h"

/* azure.client{endpoint=, account=, key=, sas=, bearer=, ca_file=, ca_dir=,
 * workload_identity=, identity=, block_size=, threshold=, retries=, max_send_speed=} -> client | nil, err */
static int client(lua_State *L)
{
    const int keep = s3lua_options(L);
    struct mxpc_azure_config cfg = {
        .endpoint = mxpc_args_opt_string(L, 1, "endpoint", keep),
        .account = mxpc_args_opt_string(L, 1, "account", keep),
        .account_key = mxpc_args_opt_string(L, 1, "key", keep),
        .sas = mxpc_args_opt_string(L, 1, "sas", keep),
        .bearer = mxpc_args_opt_string(L, 1, "bearer", keep),
        .identity = mxpc_args_opt_string(L, 1, "identity", keep),
        .ca_file = mxpc_args_opt_string(L, 1, "ca_file", keep),
        .ca_dir = mxpc_args_opt_string(L, 1, "ca_dir", keep),
        .block_size = mxpc_args_opt_integer(L, 1, "block_size", 0),
        .threshold = mxpc_args_opt_integer(L, 1, "threshold", 0),
        .max_retries = (int)mxpc_args_opt_integer(L, 1, "retries", -1),
        .max_send_speed = mxpc_args_opt_integer(L, 1, "max_send_speed", 0),
    };
    lua_getfield(L, 1, "workload_identity");
    int wi = lua_toboolean(L, -1);
    lua_pop(L, 1);
    if (wi) {
        cfg.token = mxpc_azure_storage_token;
        char err[256];
        if (!mxpc_azure_wi_configured(err, sizeof err)) {
            lua_pushnil(L);
            mxpc_error_push(L, "credentials", "run in a pod whose ServiceAccount is annotated with "
                            "azure.workload.identity/client-id (docs/jump-pod.md)", "%s", err);
            return 2;
        }
    }
    struct client *c = lua_newuserdatauv(L, sizeof *c, 0);
    memset(c, 0, sizeof *c);
    luaL_setmetatable(L, CLIENT_META);
    struct mxpc_s3_error e;
    c->s3 = mxpc_azure_new(&cfg, &e);
    if (!c->s3)
        return s3lua_push_error(L, &e);
    return 1;
}

/* azure.token(scope) -> token, expires (epoch seconds) | nil, err: an Entra
 * token by Workload Identity, cached and renewed before it expires. */
static int token(lua_State *L)
{
    const char *scope = luaL_checkstring(L, 1);
    char tok[8192], err[2048];
    time_t expires = 0;
    if (mxpc_azure_token(scope, tok, sizeof tok, &expires, err, sizeof err) != 0) {
        char *nl = strchr(err, '\n');
        if (nl)
            *nl = '\0';
        lua_pushnil(L);
        mxpc_error_push(L, "credentials", nl ? nl + 1 : NULL, "%s", err);
        return 2;
    }
    lua_pushstring(L, tok);
    lua_pushinteger(L, (lua_Integer)expires);
    return 2;
}

/* c:copy_from_url(container, blob, source_url) -> true | nil, err */
static int c_copy_from_url(lua_State *L)
{
    struct client *c = s3lua_check_client(L);
    struct mxpc_s3_error e;
    int rc = mxpc_azure_copy_from_url(c->s3, luaL_checkstring(L, 2), luaL_checkstring(L, 3), luaL_checkstring(L, 4),
                                      &e);
    return s3lua_result_true(L, rc, &e);
}

/* c:azure() -> {account=, auth=} | nil for an S3 client */
static int c_azure(lua_State *L)
{
    struct client *c = s3lua_check_client(L);
    if (!*mxpc_azure_account(c->s3))
        return 0;
    lua_createtable(L, 0, 2);
    lua_pushstring(L, mxpc_azure_account(c->s3));
    lua_setfield(L, -2, "account");
    lua_pushstring(L, mxpc_azure_auth(c->s3));
    lua_setfield(L, -2, "auth");
    return 1;
}

int luaopen_mxpc_azure(lua_State *L)
{
    luaL_requiref(L, "mxpc.s3", luaopen_mxpc_s3, 0);
    lua_pop(L, 1);
    static const luaL_Reg methods[] = {
        {"copy_from_url", c_copy_from_url},
        {"azure", c_azure},
        {NULL, NULL},
    };
    luaL_getmetatable(L, CLIENT_META);
    lua_getfield(L, -1, "__index");
    luaL_setfuncs(L, methods, 0);
    lua_pop(L, 2);
    static const luaL_Reg functions[] = {
        {"client", client},
        {"token", token},
        {NULL, NULL},
    };
    luaL_newlib(L, functions);
    return 1;
}
