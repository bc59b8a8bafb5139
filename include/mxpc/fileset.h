/* A set of files named by UUID, in the order they were added, 32 bytes a
 * file: the UUID as 16 bytes (and which of its hex digits were upper case,
 * so it reads back exactly as given), its size and a small tag. The backup's
 * list of files and the restore's record of an archive's files are filesets,
 * so that their memory is a small constant per file, not a Lua table each
 * (docs/performance.md). mod_fileset.c is the Lua module mxpc.fileset. */
#ifndef MXPC_FILESET_H
#define MXPC_FILESET_H

#include <stddef.h>
#include <stdint.h>

#include <lua.h>

#define MXPC_UUID_LEN 36

struct mxpc_fileset;

/* The fileset of the mxpc.fileset handle at idx (raises if it is not one). */
struct mxpc_fileset *mxpc_lua_fileset(lua_State *L, int idx);
int mxpc_lua_is_fileset(lua_State *L, int idx);

size_t mxpc_fileset_count(const struct mxpc_fileset *s);
/* File i (0-based): its UUID as text (37 bytes with the NUL), its size (-1: not known). */
void mxpc_fileset_uuid(const struct mxpc_fileset *s, size_t i, char out[MXPC_UUID_LEN + 1]);
int64_t mxpc_fileset_size(const struct mxpc_fileset *s, size_t i);

#endif
