/* Kubeconfig YAML and the exec plugin's answer (src/k8s_config.c). The
 * first byte picks:
 *   even: the rest is a kubeconfig file, loaded as --kubeconfig FILE (with
 *         its context, cluster and user, credentials and files resolved);
 *         a kubeconfig with an `exec` key anywhere is skipped, so that the
 *         fuzzer never runs a command it made up;
 *   odd:  the rest is what an exec plugin prints (an ExecCredential, JSON
 *         or YAML), read through a fixed kubeconfig whose plugin is
 *         /bin/cat of the input.
 * Loading must succeed or fail with an error message, never crash or leak;
 * the redaction list is emptied after each input. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <yaml.h>

#include "mxpc/k8s.h"
#include "mxpc/log.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char dir[64], input_path[128], plugin_config[128];

static void write_file(const char *path, const void *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(data, 1, len, f) != len || fclose(f) != 0) {
        perror(path);
        abort();
    }
}

static void cleanup(void)
{
    unlink(input_path);
    unlink(plugin_config);
    rmdir(dir);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    snprintf(dir, sizeof dir, "/tmp/mxpc-fuzz-k8s.XXXXXX");
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        abort();
    }
    snprintf(input_path, sizeof input_path, "%s/input", dir);
    snprintf(plugin_config, sizeof plugin_config, "%s/plugin.yaml", dir);
    char text[1024];
    int n = snprintf(text, sizeof text,
                     "apiVersion: v1\nkind: Config\ncurrent-context: c\n"
                     "contexts: [{name: c, context: {cluster: k, user: u, namespace: ns}}]\n"
                     "clusters: [{name: k, cluster: {server: 'https://127.0.0.1:1'}}]\n"
                     "users: [{name: u, user: {exec: {apiVersion: client.authentication.k8s.io/v1,"
                     " command: /bin/cat, args: ['%s']}}}]\n",
                     input_path);
    write_file(plugin_config, text, (size_t)n);
    atexit(cleanup);
    setenv("MXPC_EXEC_TIMEOUT", "5", 1);
    return 0;
}

/* whether any mapping of the document has the key "exec" (as k8s_config.c compares keys) */
static int has_exec(const uint8_t *data, size_t size)
{
    yaml_parser_t parser;
    yaml_document_t doc;
    yaml_parser_initialize(&parser);
    yaml_parser_set_input_string(&parser, data, size);
    int found = 0;
    if (!yaml_parser_load(&parser, &doc)) {
        yaml_parser_delete(&parser);
        return 0; /* not YAML: refused before any exec */
    }
    for (yaml_node_t *n = doc.nodes.start; n < doc.nodes.top; n++) {
        if (n->type != YAML_SCALAR_NODE)
            continue;
        if (strcmp((const char *)n->data.scalar.value, "exec") == 0)
            found = 1;
    }
    yaml_document_delete(&doc);
    yaml_parser_delete(&parser);
    return found;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    int plugin = data[0] & 1;
    data++;
    size--;
    if (!plugin && has_exec(data, size))
        return 0;
    write_file(input_path, data, size);
    struct mxpc_k8s_config cfg;
    memset(&cfg, 0, sizeof cfg);
    struct mxpc_k8s_load_options o = {.kubeconfig = plugin ? plugin_config : input_path};
    struct mxpc_k8s_error err;
    memset(&err, 0, sizeof err);
    if (mxpc_k8s_config_load(&cfg, &o, &err) == 0)
        mxpc_k8s_config_free(&cfg);
    mxpc_redact_clear();
    return 0;
}
