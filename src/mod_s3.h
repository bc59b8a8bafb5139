/* What the Lua module mxpc.s3 shares between its files and nothing else:
 * the client handle, its errors and Lua functions as sinks and sources
 * (mod_s3_client.c), used by the module's many requests and uploaders
 * (mod_s3.c), and the credentials of an options table (mod_aws.c). */
#ifndef MXPC_MOD_S3_H
#define MXPC_MOD_S3_H

#include <stddef.h>
#include <sys/types.h>

#include <lua.h>

#include "mxpc/aws.h"
#include "mxpc/lua_callback.h"
#include "mxpc/s3.h"

#define CLIENT_META "mxpc.s3.client"
#define UPLOAD_META "mxpc.s3.upload"
#define UPLOADER_META "mxpc.s3.uploader"
#define FILE_CHUNK (256 * 1024)

struct client {
    struct mxpc_s3 *s3;
    int uploads; /* open uploads and uploaders: the client is freed after the last */
    int closed;
};

/* The client at argument 1; raises if it is closed. */
struct client *s3lua_check_client(lua_State *L);
/* Frees a closed client once its last upload or uploader is closed. */
void s3lua_client_release(struct client *c);
/* Pushes the error object of a failed S3 call, never raising (worded by
 * lua/mxpc/s3_api.lua from its facts when it has some). */
void s3lua_push_error_object(lua_State *L, const struct mxpc_s3_error *e);
/* Pushes nil and the error object; raises on interruption and misuse. */
int s3lua_push_error(lua_State *L, const struct mxpc_s3_error *e);
/* true, or nil and the error object. */
int s3lua_result_true(lua_State *L, int rc, const struct mxpc_s3_error *e);
/* An error of the given code and message (no facts). */
void s3lua_copy_error(struct mxpc_s3_error *dst, const char *code, const char *msg);
/* {size=, etag=} of an object. */
int s3lua_push_object(lua_State *L, const struct mxpc_s3_object *o);
/* The bucket argument at idx: may be nil or "" when the endpoint names it. */
const char *s3lua_opt_bucket(lua_State *L, int idx);

/* A Lua function (at stack index fn) used as a sink or source, on the shared
 * callback mechanism (lua_callback.h). */
struct s3lua_cb {
    lua_State *L;
    int fn; /* stack index */
    struct mxpc_callback_failure failure;
    /* source: the chunk being handed out */
    int chunk_ref;
    const char *chunk;
    size_t chunk_len, chunk_off;
};
ssize_t s3lua_source(void *ud, void *buf, size_t cap, char *err, size_t errlen);
/* After the call that used cb: raises what the function raised, else 0. */
int s3lua_cb_finish(struct s3lua_cb *cb, int rc, const struct mxpc_s3_error *e);
/* A string as a source. */
struct s3lua_mem_source {
    const char *data;
    size_t len, off;
};
ssize_t s3lua_mem_source(void *ud, void *buf, size_t cap, char *err, size_t errlen);

/* s3.client{...} -> client | nil, err; the client's metatable with the
 * methods of single requests (mod_s3.c adds the others). */
int s3lua_client(lua_State *L);
void s3lua_register_client(lua_State *L);

/* mod_aws.c: the options table (argument 1, nil = {}) alone at index 1,
 * and the table keeping its strings alive (lua_args.h) pushed at index 2,
 * returned; the credentials of those options (access_key=, secret_key=,
 * session_token=, profile=) from the chain: 0 with out filled, or the count
 * of nil, err pushed. */
int s3lua_options(lua_State *L);
int s3lua_credentials(lua_State *L, int keep, struct mxpc_aws_credentials *out);

#endif
