/* Lua module mxpc.yaml: one YAML document into Lua values, with libyaml (the
 * parser the kubeconfig loader uses).
 *
 *   local yaml = require "mxpc.yaml"
 *   local doc, err = yaml.decode(text)
 *
 * Mappings become tables with string keys, sequences arrays, scalars strings
 * (as written: no numbers or booleans are guessed; "" for an empty value),
 * an empty document nil. Aliases are followed; nesting is limited to 64
 * levels. A syntax error returns nil, err (code "yaml") naming line and
 * column. */
#include <lauxlib.h>
#include <yaml.h>

#include "mxpc/error.h"
#include "mxpc/modules.h"

#define MAX_DEPTH 64

static int push_node(lua_State *L, yaml_document_t *doc, yaml_node_t *node, int depth)
{
    if (!node)
        return 0;
    if (depth > MAX_DEPTH || !lua_checkstack(L, 4))
        return -1;
    switch (node->type) {
    case YAML_SCALAR_NODE:
        lua_pushlstring(L, (const char *)node->data.scalar.value, node->data.scalar.length);
        return 0;
    case YAML_SEQUENCE_NODE: {
        lua_newtable(L);
        lua_Integer i = 1;
        for (yaml_node_item_t *it = node->data.sequence.items.start; it < node->data.sequence.items.top; it++) {
            if (push_node(L, doc, yaml_document_get_node(doc, *it), depth + 1) != 0)
                return -1;
            lua_rawseti(L, -2, i++);
        }
        return 0;
    }
    case YAML_MAPPING_NODE: {
        lua_newtable(L);
        for (yaml_node_pair_t *p = node->data.mapping.pairs.start; p < node->data.mapping.pairs.top; p++) {
            yaml_node_t *k = yaml_document_get_node(doc, p->key);
            if (!k || k->type != YAML_SCALAR_NODE)
                return -2;
            if (push_node(L, doc, k, depth + 1) != 0 ||
                push_node(L, doc, yaml_document_get_node(doc, p->value), depth + 1) != 0)
                return -1;
            lua_rawset(L, -3);
        }
        return 0;
    }
    default:
        lua_pushnil(L);
        return 0;
    }
}

/* yaml.decode(text) -> value | nil, err */
static int l_decode(lua_State *L)
{
    size_t len = 0;
    const char *text = luaL_checklstring(L, 1, &len);
    yaml_parser_t parser;
    yaml_document_t doc;
    yaml_parser_initialize(&parser);
    yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
    if (!yaml_parser_load(&parser, &doc)) {
        int n = mxpc_error_fail(L, "yaml", NULL, "YAML error at line %d, column %d: %s",
                                (int)parser.problem_mark.line + 1, (int)parser.problem_mark.column + 1,
                                parser.problem ? parser.problem : "cannot parse");
        yaml_parser_delete(&parser);
        return n;
    }
    yaml_node_t *root = yaml_document_get_root_node(&doc);
    int top = lua_gettop(L), rc = 0;
    if (root)
        rc = push_node(L, &doc, root, 0);
    else
        lua_pushnil(L);
    yaml_document_delete(&doc);
    yaml_parser_delete(&parser);
    if (rc != 0) {
        lua_settop(L, top);
        return mxpc_error_fail(L, "yaml", NULL, "%s",
                               rc == -2 ? "YAML error: a mapping key that is not a plain value"
                                        : "YAML error: nested more than 64 levels deep");
    }
    return 1;
}

int luaopen_mxpc_yaml(lua_State *L)
{
    static const luaL_Reg fns[] = {{"decode", l_decode}, {NULL, NULL}};
    luaL_newlib(L, fns);
    return 1;
}
