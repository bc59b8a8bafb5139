/* Versions of the libraries the program is linked with, for `version`. */
#include <string.h>

#include <archive.h>
#include <curl/curl.h>
#include <libpq-fe.h>
#include <openssl/crypto.h>
#include <zlib.h>

#include <lauxlib.h>

#include "mxpc/modules.h"

/* runtime.libraries() -> {lua=, libpq=, libcurl=, libarchive=, openssl=, zlib=} */
int mxpc_push_library_versions(lua_State *L)
{
    lua_createtable(L, 0, 6);
    lua_pushstring(L, LUA_RELEASE);
    lua_setfield(L, -2, "lua");
    int pq = PQlibVersion();
    lua_pushfstring(L, "%d.%d", pq / 10000, pq % 10000);
    lua_setfield(L, -2, "libpq");
    lua_pushstring(L, curl_version_info(CURLVERSION_NOW)->version);
    lua_setfield(L, -2, "libcurl");
    lua_pushstring(L, archive_version_string() + strlen("libarchive "));
    lua_setfield(L, -2, "libarchive");
    lua_pushstring(L, OpenSSL_version(OPENSSL_VERSION));
    lua_setfield(L, -2, "openssl");
    lua_pushstring(L, zlibVersion());
    lua_setfield(L, -2, "zlib");
    return 1;
}
