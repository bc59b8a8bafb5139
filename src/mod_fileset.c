/* Lua module mxpc.fileset: a set of files named by UUID, 32 bytes a file
 * (include/mxpc/fileset.h). What goes in, and what a file's tag means, is
 * decided in Lua (workflow.lua, backup_archive.lua).
 *
 *   local s = fileset.new()
 *   local i = s:add("0d3e...", 1024)     -- its index; nil, index, tag if already in
 *   s:find(uuid) -> index, size, tag | nil
 *   s:get(i) -> uuid, size (nil: unknown), tag;  s:set_size(i, n);  #s
 *   s:bytes() -> the sum of the known sizes, how many are unknown
 *   for i, uuid, size, tag in s:entries() do ... end
 *
 * UUIDs are the 8-4-4-4-12 hex form, in either case; a UUID reads back
 * exactly as it was added, and two that differ only in case are two files
 * (as they are two keys in S3). */
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>

#include "mxpc/fileset.h"
#include "mxpc/modules.h"

#define FILESET_META "mxpc.fileset"

struct entry {
    uint8_t id[16];
    uint32_t upper; /* bit k: hex digit k was upper case */
    uint32_t tag;
    int64_t size; /* -1: not known */
};

struct mxpc_fileset {
    struct entry *e;
    size_t n, cap;
    uint32_t *slots; /* open addressing: index + 1, 0 = empty */
    size_t nslots;   /* a power of two, at least twice n */
};

static int hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Parses the 8-4-4-4-12 form into *out; 0, or -1 if it is not a UUID. */
static int parse_uuid(const char *s, size_t len, struct entry *out)
{
    if (len != MXPC_UUID_LEN)
        return -1;
    memset(out, 0, sizeof *out);
    int k = 0;
    for (size_t i = 0; i < len; i++) {
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (s[i] != '-')
                return -1;
            continue;
        }
        int v = hexval((unsigned char)s[i]);
        if (v < 0)
            return -1;
        if (s[i] >= 'A' && s[i] <= 'F')
            out->upper |= 1u << k;
        out->id[k / 2] |= (uint8_t)(k % 2 ? v : v << 4);
        k++;
    }
    return 0;
}

static void format_uuid(const struct entry *e, char out[MXPC_UUID_LEN + 1])
{
    static const char lower[] = "0123456789abcdef", upper[] = "0123456789ABCDEF";
    int k = 0;
    for (int i = 0; i < MXPC_UUID_LEN; i++) {
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            out[i] = '-';
            continue;
        }
        int v = k % 2 ? e->id[k / 2] & 15 : e->id[k / 2] >> 4;
        out[i] = (e->upper >> k & 1) ? upper[v] : lower[v];
        k++;
    }
    out[MXPC_UUID_LEN] = '\0';
}

static size_t hash(const struct entry *e)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (int i = 0; i < 16; i++)
        h = (h ^ e->id[i]) * 1099511628211ull;
    h = (h ^ e->upper) * 1099511628211ull;
    return (size_t)(h ^ h >> 29);
}

static int same(const struct entry *a, const struct entry *b)
{
    return a->upper == b->upper && memcmp(a->id, b->id, sizeof a->id) == 0;
}

/* The slot where `key` is, or the empty one where it would go. */
static size_t slot_of(const struct mxpc_fileset *s, const struct entry *key)
{
    size_t mask = s->nslots - 1, i = hash(key) & mask;
    while (s->slots[i] && !same(&s->e[s->slots[i] - 1], key))
        i = (i + 1) & mask;
    return i;
}

static void grow_slots(struct mxpc_fileset *s)
{
    size_t nslots = s->nslots ? s->nslots * 2 : 64;
    uint32_t *slots = calloc(nslots, sizeof *slots);
    if (!slots)
        abort();
    free(s->slots);
    s->slots = slots;
    s->nslots = nslots;
    for (size_t j = 0; j < s->n; j++)
        s->slots[slot_of(s, &s->e[j])] = (uint32_t)(j + 1);
}

static struct mxpc_fileset *check(lua_State *L, int idx)
{
    struct mxpc_fileset **p = luaL_checkudata(L, idx, FILESET_META);
    if (!*p)
        luaL_error(L, "attempt to use a freed fileset");
    return *p;
}

struct mxpc_fileset *mxpc_lua_fileset(lua_State *L, int idx) { return check(L, idx); }

int mxpc_lua_is_fileset(lua_State *L, int idx) { return luaL_testudata(L, idx, FILESET_META) != NULL; }

size_t mxpc_fileset_count(const struct mxpc_fileset *s) { return s->n; }

void mxpc_fileset_uuid(const struct mxpc_fileset *s, size_t i, char out[MXPC_UUID_LEN + 1])
{
    format_uuid(&s->e[i], out);
}

int64_t mxpc_fileset_size(const struct mxpc_fileset *s, size_t i) { return s->e[i].size; }

/* The UUID argument at idx parsed into *key (raises if it is not one). */
static void check_uuid(lua_State *L, int idx, struct entry *key)
{
    size_t len;
    const char *u = luaL_checklstring(L, idx, &len);
    if (parse_uuid(u, len, key) != 0)
        luaL_error(L, "not a UUID: %s", u);
}

/* The index argument at idx, 1..#s, as 0-based. */
static size_t check_index(lua_State *L, const struct mxpc_fileset *s, int idx)
{
    lua_Integer i = luaL_checkinteger(L, idx);
    luaL_argcheck(L, i >= 1 && (size_t)i <= s->n, idx, "no such file in the set");
    return (size_t)i - 1;
}

static int64_t opt_size(lua_State *L, int idx)
{
    if (lua_isnoneornil(L, idx))
        return -1;
    lua_Integer n = luaL_checkinteger(L, idx);
    luaL_argcheck(L, n >= 0, idx, "a size must not be negative");
    return n;
}

/* fileset.new() -> set */
static int l_new(lua_State *L)
{
    struct mxpc_fileset **p = lua_newuserdatauv(L, sizeof *p, 0);
    *p = NULL;
    luaL_setmetatable(L, FILESET_META);
    *p = calloc(1, sizeof **p);
    if (!*p)
        abort();
    grow_slots(*p);
    return 1;
}

static void push_entry(lua_State *L, const struct entry *e)
{
    char u[MXPC_UUID_LEN + 1];
    format_uuid(e, u);
    lua_pushlstring(L, u, MXPC_UUID_LEN);
    if (e->size >= 0)
        lua_pushinteger(L, e->size);
    else
        lua_pushnil(L);
    lua_pushinteger(L, e->tag);
}

/* s:add(uuid [, size [, tag]]) -> index | nil, index, tag (already in) */
static int s_add(lua_State *L)
{
    struct mxpc_fileset *s = check(L, 1);
    struct entry key;
    check_uuid(L, 2, &key);
    key.size = opt_size(L, 3);
    lua_Integer tag = luaL_optinteger(L, 4, 0);
    luaL_argcheck(L, tag >= 0 && tag <= UINT32_MAX, 4, "a tag is 0..2^32-1");
    key.tag = (uint32_t)tag;
    size_t at = slot_of(s, &key);
    if (s->slots[at]) {
        lua_pushnil(L);
        lua_pushinteger(L, s->slots[at]);
        lua_pushinteger(L, s->e[s->slots[at] - 1].tag);
        return 3;
    }
    if (s->n >= UINT32_MAX - 1)
        return luaL_error(L, "too many files in one set");
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap + s->cap / 2 : 256;
        struct entry *e = realloc(s->e, cap * sizeof *e);
        if (!e)
            abort();
        s->e = e;
        s->cap = cap;
    }
    s->e[s->n++] = key;
    s->slots[at] = (uint32_t)s->n;
    if (s->n * 2 > s->nslots)
        grow_slots(s);
    lua_pushinteger(L, (lua_Integer)s->n);
    return 1;
}

/* s:find(uuid) -> index, size, tag | nil */
static int s_find(lua_State *L)
{
    struct mxpc_fileset *s = check(L, 1);
    struct entry key;
    check_uuid(L, 2, &key);
    uint32_t i = s->slots[slot_of(s, &key)];
    if (!i) {
        lua_pushnil(L);
        return 1;
    }
    lua_pushinteger(L, i);
    push_entry(L, &s->e[i - 1]);
    lua_remove(L, -3); /* the UUID the caller has */
    return 3;
}

/* s:get(i) -> uuid, size | nil, tag */
static int s_get(lua_State *L)
{
    struct mxpc_fileset *s = check(L, 1);
    push_entry(L, &s->e[check_index(L, s, 2)]);
    return 3;
}

/* s:set_size(i, size) */
static int s_set_size(lua_State *L)
{
    struct mxpc_fileset *s = check(L, 1);
    size_t i = check_index(L, s, 2);
    luaL_checkany(L, 3);
    s->e[i].size = opt_size(L, 3);
    return 0;
}

/* s:bytes() -> sum of the known sizes, number of unknown sizes */
static int s_bytes(lua_State *L)
{
    struct mxpc_fileset *s = check(L, 1);
    int64_t sum = 0, unknown = 0;
    for (size_t i = 0; i < s->n; i++) {
        if (s->e[i].size >= 0)
            sum += s->e[i].size;
        else
            unknown++;
    }
    lua_pushinteger(L, sum);
    lua_pushinteger(L, unknown);
    return 2;
}

/* s:memory() -> bytes of memory the set holds */
static int s_memory(lua_State *L)
{
    struct mxpc_fileset *s = check(L, 1);
    lua_pushinteger(L, (lua_Integer)(sizeof *s + s->cap * sizeof *s->e + s->nslots * sizeof *s->slots));
    return 1;
}

static int entries_next(lua_State *L)
{
    struct mxpc_fileset *s = check(L, 1);
    lua_Integer i = luaL_checkinteger(L, 2);
    if (i < 0 || (size_t)i >= s->n)
        return 0;
    lua_pushinteger(L, i + 1);
    push_entry(L, &s->e[i]);
    return 4;
}

/* for i, uuid, size, tag in s:entries() */
static int s_entries(lua_State *L)
{
    check(L, 1);
    lua_pushcfunction(L, entries_next);
    lua_pushvalue(L, 1);
    lua_pushinteger(L, 0);
    return 3;
}

static int s_len(lua_State *L)
{
    lua_pushinteger(L, (lua_Integer)check(L, 1)->n);
    return 1;
}

static int s_gc(lua_State *L)
{
    struct mxpc_fileset **p = luaL_checkudata(L, 1, FILESET_META);
    if (*p) {
        free((*p)->e);
        free((*p)->slots);
        free(*p);
        *p = NULL;
    }
    return 0;
}

static int s_tostring(lua_State *L)
{
    struct mxpc_fileset *s = check(L, 1);
    lua_pushfstring(L, "fileset (%d files)", (int)s->n);
    return 1;
}

int luaopen_mxpc_fileset(lua_State *L)
{
    static const luaL_Reg methods[] = {
        {"add", s_add},     {"find", s_find},     {"get", s_get},         {"set_size", s_set_size},
        {"bytes", s_bytes}, {"memory", s_memory}, {"entries", s_entries}, {NULL, NULL},
    };
    static const luaL_Reg meta[] = {
        {"__len", s_len},
        {"__gc", s_gc},
        {"__tostring", s_tostring},
        {NULL, NULL},
    };
    mxpc_lua_class(L, FILESET_META, methods, meta);
    static const luaL_Reg fns[] = {{"new", l_new}, {NULL, NULL}};
    luaL_newlib(L, fns);
    return 1;
}
