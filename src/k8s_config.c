/* Kubernetes client configuration: kubeconfig files (parsed with libyaml),
 * the in-cluster service account, and exec credential plugins. See
 * include/mxpc/k8s.h and docs/k8s.md. */
#include "mxpc/k8s.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <yaml.h>

#include "mxpc/log.h"
#include "mxpc/process.h"

#define EXEC_OUTPUT_MAX (1 << 20)
#define EXEC_TIMEOUT_DEFAULT 60L /* seconds a credential plugin may take (MXPC_EXEC_TIMEOUT) */

/* --- small helpers ---------------------------------------------------------- */

void mxpc_k8s_set_error(struct mxpc_k8s_error *err, const char *code, const char *hint, const char *fmt, ...)
{
    snprintf(err->code, sizeof err->code, "%s", code);
    snprintf(err->hint, sizeof err->hint, "%s", hint ? hint : "");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->message, sizeof err->message, fmt, ap);
    va_end(ap);
}

/* `rel` relative to `dir` (the kubeconfig's directory), as kubectl resolves paths. */
static char *resolve_path(const char *dir, const char *rel)
{
    if (rel[0] == '/' || !dir || !*dir)
        return mxpc_strdup(rel);
    struct mxpc_buf b = MXPC_BUF_INIT;
    mxpc_buf_printf(&b, "%s/%s", dir, rel);
    return mxpc_buf_take(&b);
}

static void blob_free(struct mxpc_k8s_blob *b)
{
    free(b->data);
    b->data = NULL;
    b->len = 0;
}

char *mxpc_k8s_read_trimmed(const char *path, char *why, size_t whylen)
{
    struct mxpc_buf b = MXPC_BUF_INIT;
    if (mxpc_buf_read_file(&b, path, MXPC_TOKEN_FILE_MAX, why, whylen) != 0) {
        mxpc_buf_free(&b);
        return NULL;
    }
    while (b.len > 0 && isspace((unsigned char)b.data[b.len - 1]))
        b.data[--b.len] = '\0';
    size_t skip = 0;
    while (skip < b.len && isspace((unsigned char)b.data[skip]))
        skip++;
    memmove(b.data, b.data + skip, b.len - skip + 1);
    return b.data;
}

unsigned char *mxpc_base64_decode(const char *text, size_t text_len, size_t *len)
{
    unsigned char *out = malloc(text_len / 4 * 3 + 4);
    if (!out)
        return NULL;
    unsigned int acc = 0;
    int bits = 0, pad = 0;
    size_t n = 0;
    for (size_t i = 0; i < text_len; i++) {
        unsigned char c = (unsigned char)text[i];
        int v;
        if (isspace(c))
            continue;
        if (c == '=') {
            pad++;
            continue;
        }
        if (pad) /* data after padding */
            goto bad;
        if (c >= 'A' && c <= 'Z')
            v = c - 'A';
        else if (c >= 'a' && c <= 'z')
            v = c - 'a' + 26;
        else if (c >= '0' && c <= '9')
            v = c - '0' + 52;
        else if (c == '+')
            v = 62;
        else if (c == '/')
            v = 63;
        else
            goto bad;
        acc = (acc << 6) | (unsigned int)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[n++] = (unsigned char)(acc >> bits);
            acc &= (1u << bits) - 1;
        }
    }
    if (bits >= 6 || pad > 2) /* a lone sixth bit group cannot be a byte */
        goto bad;
    out[n] = '\0';
    *len = n;
    return out;
bad:
    free(out);
    return NULL;
}

/* --- YAML documents ------------------------------------------------------------ */

struct kc_file {
    char *path;
    char *dir;
    yaml_document_t doc;
};

struct kc_set {
    struct kc_file *files;
    size_t n;
    char *source; /* the paths, ':'-joined */
};

static void kc_free(struct kc_set *s)
{
    for (size_t i = 0; i < s->n; i++) {
        free(s->files[i].path);
        free(s->files[i].dir);
        yaml_document_delete(&s->files[i].doc);
    }
    free(s->files);
    free(s->source);
    memset(s, 0, sizeof *s);
}

/* Parses YAML from `parser` into `doc`; on a syntax error fills `err` naming
 * `what` and libyaml's line and column. */
static int load_yaml(yaml_parser_t *parser, yaml_document_t *doc, const char *what, struct mxpc_k8s_error *err)
{
    if (yaml_parser_load(parser, doc))
        return 0;
    mxpc_k8s_set_error(err, "config", "fix the YAML syntax at that line",
            "%s is not valid YAML: line %zu, column %zu: %s%s%s", what, parser->problem_mark.line + 1,
            parser->problem_mark.column + 1, parser->problem ? parser->problem : "syntax error",
            parser->context ? " " : "", parser->context ? parser->context : "");
    return -1;
}

static int load_yaml_file(const char *path, yaml_document_t *doc, struct mxpc_k8s_error *err)
{
    FILE *fp = fopen(path, "rb");
    if (!fp) {
        mxpc_k8s_set_error(err, "config", NULL, "cannot read kubeconfig %s: %s", path, strerror(errno));
        return -1;
    }
    yaml_parser_t parser;
    yaml_parser_initialize(&parser);
    yaml_parser_set_input_file(&parser, fp);
    char what[1100];
    snprintf(what, sizeof what, "kubeconfig %s", path);
    int rc = load_yaml(&parser, doc, what, err);
    yaml_parser_delete(&parser);
    fclose(fp);
    return rc;
}

static yaml_node_t *node_at(yaml_document_t *doc, int index)
{
    return index ? yaml_document_get_node(doc, index) : NULL;
}

static const char *scalar(yaml_node_t *n)
{
    return n && n->type == YAML_SCALAR_NODE ? (const char *)n->data.scalar.value : NULL;
}

static yaml_node_t *map_get(yaml_document_t *doc, yaml_node_t *map, const char *key)
{
    if (!map || map->type != YAML_MAPPING_NODE)
        return NULL;
    for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top; p++) {
        const char *k = scalar(node_at(doc, p->key));
        if (k && strcmp(k, key) == 0)
            return node_at(doc, p->value);
    }
    return NULL;
}

/* The scalar at `key`, or NULL when absent, empty or not a scalar. */
static const char *map_str(yaml_document_t *doc, yaml_node_t *map, const char *key)
{
    const char *s = scalar(map_get(doc, map, key));
    return s && *s ? s : NULL;
}

static int truthy(const char *s)
{
    return s && (strcasecmp(s, "true") == 0 || strcasecmp(s, "yes") == 0 || strcasecmp(s, "on") == 0);
}

static size_t seq_len(yaml_node_t *seq)
{
    return seq && seq->type == YAML_SEQUENCE_NODE ? (size_t)(seq->data.sequence.items.top - seq->data.sequence.items.start)
                                                  : 0;
}

static yaml_node_t *seq_item(yaml_document_t *doc, yaml_node_t *seq, size_t i)
{
    return node_at(doc, seq->data.sequence.items.start[i]);
}

/* Finds the entry `name` in the list `section` (contexts, clusters, users):
 * the first file that has it wins. Returns its inner mapping (`field`) and
 * the file it came from. */
static yaml_node_t *find_named(struct kc_set *s, const char *section, const char *field, const char *name,
                               struct kc_file **from)
{
    for (size_t f = 0; f < s->n; f++) {
        yaml_document_t *doc = &s->files[f].doc;
        yaml_node_t *list = map_get(doc, yaml_document_get_root_node(doc), section);
        for (size_t i = 0; i < seq_len(list); i++) {
            yaml_node_t *entry = seq_item(doc, list, i);
            const char *n = map_str(doc, entry, "name");
            if (n && strcmp(n, name) == 0) {
                *from = &s->files[f];
                return map_get(doc, entry, field);
            }
        }
    }
    return NULL;
}

/* "a, b, c" of the names in `section`, for hints. */
static void list_names(struct kc_set *s, const char *section, char *out, size_t outlen)
{
    struct mxpc_buf b = MXPC_BUF_INIT;
    for (size_t f = 0; f < s->n; f++) {
        yaml_document_t *doc = &s->files[f].doc;
        yaml_node_t *list = map_get(doc, yaml_document_get_root_node(doc), section);
        for (size_t i = 0; i < seq_len(list); i++) {
            const char *n = map_str(doc, seq_item(doc, list, i), "name");
            if (n)
                mxpc_buf_printf(&b, "%s%s", b.len ? ", " : "", n);
        }
    }
    snprintf(out, outlen, "%s", b.len ? b.data : "(none)");
    mxpc_buf_free(&b);
}

/* Opens the files of a kubeconfig list; files that do not exist are skipped
 * (as kubectl does for $KUBECONFIG), unless `must_exist`. */
static int kc_open(struct kc_set *s, const char *list, int must_exist, struct mxpc_k8s_error *err)
{
    char *copy = mxpc_strdup(list);
    struct mxpc_buf src = MXPC_BUF_INIT;
    int rc = 0;
    char *save = NULL;
    for (char *p = strtok_r(copy, ":", &save); p; p = strtok_r(NULL, ":", &save)) {
        if (!must_exist && access(p, F_OK) != 0)
            continue;
        struct kc_file *grown = realloc(s->files, (s->n + 1) * sizeof *grown);
        if (!grown)
            abort();
        s->files = grown;
        struct kc_file *f = &s->files[s->n];
        memset(f, 0, sizeof *f);
        if (load_yaml_file(p, &f->doc, err) != 0) {
            rc = -1;
            break;
        }
        s->n++;
        f->path = mxpc_strdup(p);
        const char *slash = strrchr(p, '/');
        f->dir = slash ? strndup(p, (size_t)(slash - p == 0 ? 1 : slash - p)) : mxpc_strdup(".");
        mxpc_buf_printf(&src, "%s%s", src.len ? ":" : "", p);
    }
    free(copy);
    s->source = src.len ? mxpc_buf_take(&src) : mxpc_strdup(list);
    mxpc_buf_free(&src);
    return rc;
}

/* --- credentials -------------------------------------------------------------- */

/* Reads `key` (a file path) or `key-data` (base64) of a cluster or user entry. */
static int file_or_data(yaml_document_t *doc, yaml_node_t *map, const char *key, const char *dir, char **file,
                        struct mxpc_k8s_blob *blob, const char *where, struct mxpc_k8s_error *err)
{
    char data_key[64];
    snprintf(data_key, sizeof data_key, "%s-data", key);
    const char *data = map_str(doc, map, data_key);
    if (data) {
        blob->data = mxpc_base64_decode(data, strlen(data), &blob->len);
        if (!blob->data) {
            mxpc_k8s_set_error(err, "config", "the value must be base64 of the PEM text, as kubectl writes it",
                    "%s: %s is not valid base64", where, data_key);
            return -1;
        }
        return 0;
    }
    const char *path = map_str(doc, map, key);
    if (path)
        *file = resolve_path(dir, path);
    return 0;
}

/* Runs an exec credential plugin and fills token / client certificate. */
static int run_exec(yaml_document_t *doc, yaml_node_t *exec, const char *dir, struct mxpc_k8s_config *cfg,
                    const char *where, struct mxpc_k8s_error *err);

static int load_user(yaml_node_t *user, struct kc_file *from, struct mxpc_k8s_config *cfg,
                     struct mxpc_k8s_error *err)
{
    yaml_document_t *doc = &from->doc;
    char where[1200];
    snprintf(where, sizeof where, "user \"%s\" in kubeconfig %s", cfg->user, from->path);
    cfg->auth = "none";
    if (map_get(doc, user, "auth-provider")) {
        mxpc_k8s_set_error(err, "config",
                "use a token, a client certificate or an exec plugin (e.g. kubelogin or the cloud CLI's get-token)",
                "%s uses an auth-provider, which is not supported", where);
        return -1;
    }
    if (file_or_data(doc, user, "client-certificate", from->dir, &cfg->cert_file, &cfg->cert_data, where, err) ||
        file_or_data(doc, user, "client-key", from->dir, &cfg->key_file, &cfg->key_data, where, err))
        return -1;
    if (cfg->key_data.data)
        mxpc_redact_add((const char *)cfg->key_data.data);
    mxpc_redact_add(map_str(doc, user, "client-key-data"));
    if (cfg->cert_file || cfg->cert_data.data)
        cfg->auth = "client certificate";

    const char *token_file = map_str(doc, user, "tokenFile");
    const char *token = map_str(doc, user, "token");
    if (token_file) {
        cfg->token_file = resolve_path(from->dir, token_file);
        char why[160];
        cfg->token = mxpc_k8s_read_trimmed(cfg->token_file, why, sizeof why);
        if (!cfg->token) {
            mxpc_k8s_set_error(err, "config", NULL, "%s: cannot read tokenFile %s: %s", where, cfg->token_file, why);
            return -1;
        }
        cfg->auth = "token file";
    } else if (token) {
        cfg->token = mxpc_strdup(token);
        cfg->auth = "token";
    }
    mxpc_redact_add(cfg->token);

    const char *username = map_str(doc, user, "username");
    const char *password = map_str(doc, user, "password");
    if (username && password && !cfg->token) {
        cfg->username = mxpc_strdup(username);
        cfg->password = mxpc_strdup(password);
        mxpc_redact_add(cfg->password);
        cfg->auth = "basic";
    }

    yaml_node_t *exec = map_get(doc, user, "exec");
    if (exec && !cfg->token && !(cfg->cert_file || cfg->cert_data.data)) {
        if (run_exec(doc, exec, from->dir, cfg, where, err) != 0)
            return -1;
        cfg->auth = "exec";
    }
    return 0;
}

static int load_cluster(yaml_node_t *cluster, struct kc_file *from, struct mxpc_k8s_config *cfg,
                        struct mxpc_k8s_error *err)
{
    yaml_document_t *doc = &from->doc;
    char where[1200];
    snprintf(where, sizeof where, "cluster \"%s\" in kubeconfig %s", cfg->cluster, from->path);
    const char *server = map_str(doc, cluster, "server");
    if (!server) {
        mxpc_k8s_set_error(err, "config", "add the API server's URL (server: https://HOST:PORT) to the cluster",
                "%s has no server", where);
        return -1;
    }
    size_t len = strlen(server);
    while (len > 0 && server[len - 1] == '/')
        len--;
    cfg->server = strndup(server, len);
    if (file_or_data(doc, cluster, "certificate-authority", from->dir, &cfg->ca_file, &cfg->ca_data, where, err))
        return -1;
    cfg->insecure = truthy(map_str(doc, cluster, "insecure-skip-tls-verify"));
    cfg->tls_server_name = mxpc_strdup(map_str(doc, cluster, "tls-server-name"));
    if (map_str(doc, cluster, "proxy-url"))
        mxpc_log(MXPC_LOG_WARN, "%s: proxy-url is not supported; set HTTPS_PROXY instead", where);
    return 0;
}

/* The cluster or user (`kind`) that a context names; fills `err` when missing. */
static yaml_node_t *find_ref(struct kc_set *s, const char *kind, const char *name, const char *context,
                             struct kc_file **from, struct mxpc_k8s_error *err)
{
    char section[16];
    snprintf(section, sizeof section, "%ss", kind);
    yaml_node_t *n = find_named(s, section, kind, name, from);
    if (!n)
        mxpc_k8s_set_error(err, "config", NULL, "%s \"%s\" of context \"%s\" not found in kubeconfig %s", kind, name, context,
                s->source);
    return n;
}

static int load_kubeconfig(struct kc_set *s, const char *context, struct mxpc_k8s_config *cfg,
                           struct mxpc_k8s_error *err)
{
    char names[512];
    if (!context) {
        for (size_t f = 0; f < s->n && !context; f++)
            context = map_str(&s->files[f].doc, yaml_document_get_root_node(&s->files[f].doc), "current-context");
        if (!context) {
            list_names(s, "contexts", names, sizeof names);
            char hint[600];
            snprintf(hint, sizeof hint, "name a context (contexts there: %s), or set one with kubectl config use-context",
                     names);
            mxpc_k8s_set_error(err, "config", hint, "kubeconfig %s has no current-context", s->source);
            return -1;
        }
    }
    cfg->source = mxpc_strdup(s->source);
    cfg->context = mxpc_strdup(context);
    struct kc_file *from = NULL;
    yaml_node_t *ctx = find_named(s, "contexts", "context", context, &from);
    if (!ctx) {
        list_names(s, "contexts", names, sizeof names);
        char hint[600];
        snprintf(hint, sizeof hint, "contexts there: %s", names);
        mxpc_k8s_set_error(err, "config", hint, "context \"%s\" not found in kubeconfig %s", context, s->source);
        return -1;
    }
    const char *cluster = map_str(&from->doc, ctx, "cluster");
    const char *user = map_str(&from->doc, ctx, "user");
    cfg->namespace = mxpc_strdup(map_str(&from->doc, ctx, "namespace"));
    if (!cluster) {
        mxpc_k8s_set_error(err, "config", NULL, "context \"%s\" in kubeconfig %s names no cluster", context, from->path);
        return -1;
    }
    cfg->cluster = mxpc_strdup(cluster);
    yaml_node_t *cl = find_ref(s, "cluster", cluster, context, &from, err);
    if (!cl || load_cluster(cl, from, cfg, err) != 0)
        return -1;
    cfg->auth = "none";
    if (!user)
        return 0;
    cfg->user = mxpc_strdup(user);
    yaml_node_t *us = find_ref(s, "user", user, context, &from, err);
    return us ? load_user(us, from, cfg, err) : -1;
}

/* --- exec plugins -------------------------------------------------------------- */

/* Runs argv with extra environment entries and collects its stdout. Returns
 * the exit status, or -1 with `err` filled (the plugin's stderr is quoted). */
static int spawn_collect(const char *const *argv, const char *const *envs, long timeout_s, struct mxpc_buf *out,
                         const char *what, struct mxpc_k8s_error *err)
{
    struct mxpc_process *p = NULL;
    struct mxpc_process_options po = {.argv = argv, .env_add = envs, .in = MXPC_PROCESS_NULL,
                                      .out = MXPC_PROCESS_PIPE};
    int e = mxpc_process_spawn(&p, &po);
    if (e != 0) {
        mxpc_k8s_set_error(err, "config", e == ENOENT ? "install it, or fix exec.command in the kubeconfig" : NULL,
                "cannot run %s: %s", what, strerror(e));
        return -1;
    }
    mxpc_process_set_timeout(p, timeout_s * 1000);
    char chunk[4096];
    ssize_t n;
    while ((n = mxpc_process_read(p, chunk, sizeof chunk)) > 0 && out->len + (size_t)n <= EXEC_OUTPUT_MAX)
        mxpc_buf_append(out, chunk, (size_t)n);
    int status = 0;
    int rc = n == 0 ? mxpc_process_wait(p, &status) : (int)n;
    if (rc == MXPC_PROCESS_EINTERRUPTED) {
        mxpc_k8s_set_error(err, "interrupted", NULL, "%s: interrupted", what);
    } else if (rc == MXPC_PROCESS_ETIMEDOUT) {
        mxpc_k8s_set_error(err, "timeout",
                           "run the command by hand to see what it waits for (a login in a browser, a prompt); "
                           "MXPC_EXEC_TIMEOUT=SECONDS gives it longer",
                           "%s did not finish within %ld s and was stopped", what, timeout_s);
    } else if (rc != 0 || n > 0) {
        mxpc_k8s_set_error(err, "config", NULL, "%s: %s", what, n > 0 ? "output too large" : strerror(errno));
    } else if (WIFSIGNALED(status)) {
        mxpc_k8s_set_error(err, "config", NULL, "%s was killed by signal %d", what, WTERMSIG(status));
    } else if (WEXITSTATUS(status) != 0) {
        const char *text = mxpc_process_stderr(p, NULL);
        size_t len = strlen(text);
        while (len > 0 && (text[len - 1] == '\n' || text[len - 1] == ' '))
            len--;
        mxpc_k8s_set_error(err, "config", NULL, "%s failed with exit status %d%s%.*s", what, WEXITSTATUS(status),
                len ? ": " : "", (int)(len > 300 ? 300 : len), text);
    } else {
        mxpc_process_free(p);
        return 0;
    }
    mxpc_process_free(p);
    return -1;
}

static int parse_exec_output(const struct mxpc_buf *out, struct mxpc_k8s_config *cfg, const char *what,
                             struct mxpc_k8s_error *err)
{
    /* JSON is YAML: libyaml reads the ExecCredential */
    yaml_parser_t parser;
    yaml_document_t doc;
    yaml_parser_initialize(&parser);
    yaml_parser_set_input_string(&parser, (const unsigned char *)(out->data ? out->data : ""), out->len);
    char label[1536]; /* "the output of " + what (at most 1400 bytes) */
    snprintf(label, sizeof label, "the output of %s", what);
    int rc = load_yaml(&parser, &doc, label, err);
    yaml_parser_delete(&parser);
    if (rc != 0)
        return -1;
    yaml_node_t *root = yaml_document_get_root_node(&doc);
    const char *kind = map_str(&doc, root, "kind");
    yaml_node_t *status = map_get(&doc, root, "status");
    const char *token = map_str(&doc, status, "token");
    const char *cert = map_str(&doc, status, "clientCertificateData");
    const char *key = map_str(&doc, status, "clientKeyData");
    if (!kind || strcmp(kind, "ExecCredential") != 0 || (!token && !(cert && key))) {
        mxpc_k8s_set_error(err, "config", "the plugin must print an ExecCredential with status.token or a client certificate",
                "%s printed no ExecCredential with credentials", what);
        yaml_document_delete(&doc);
        return -1;
    }
    if (token) {
        cfg->token = mxpc_strdup(token);
        mxpc_redact_add(token);
    }
    if (cert && key) {
        cfg->cert_data.data = (unsigned char *)mxpc_strdup(cert);
        cfg->cert_data.len = strlen(cert);
        cfg->key_data.data = (unsigned char *)mxpc_strdup(key);
        cfg->key_data.len = strlen(key);
        mxpc_redact_add(key);
    }
    yaml_document_delete(&doc);
    return 0;
}

/* How long a plugin may run: MXPC_EXEC_TIMEOUT seconds, by default 60.
 * Returns it, or 0 with err filled when the variable is not a number. */
static long exec_timeout(struct mxpc_k8s_error *err)
{
    const char *v = getenv("MXPC_EXEC_TIMEOUT");
    if (!v || !*v)
        return EXEC_TIMEOUT_DEFAULT;
    char *end;
    errno = 0;
    long s = strtol(v, &end, 10);
    if (errno || *end || s < 1 || s > 86400) {
        mxpc_k8s_set_error(err, "config", "give a whole number of seconds from 1 to 86400",
                           "MXPC_EXEC_TIMEOUT=%s is not a number of seconds", v);
        return 0;
    }
    return s;
}

static int run_exec(yaml_document_t *doc, yaml_node_t *exec, const char *dir, struct mxpc_k8s_config *cfg,
                    const char *where, struct mxpc_k8s_error *err)
{
    const char *command = map_str(doc, exec, "command");
    if (!command) {
        mxpc_k8s_set_error(err, "config", NULL, "%s: exec has no command", where);
        return -1;
    }
    const char *api = map_str(doc, exec, "apiVersion");
    if (!api)
        api = "client.authentication.k8s.io/v1beta1";
    yaml_node_t *args = map_get(doc, exec, "args");
    yaml_node_t *env = map_get(doc, exec, "env");
    size_t nargs = seq_len(args), nenv = seq_len(env);

    /* a relative command with a '/' is relative to the kubeconfig's directory */
    char *cmd = strchr(command, '/') ? resolve_path(dir, command) : mxpc_strdup(command);
    char **argv = calloc(nargs + 2, sizeof *argv);
    char **envs = calloc(nenv + 2, sizeof *envs);
    if (!argv || !envs)
        abort();
    argv[0] = cmd;
    for (size_t i = 0; i < nargs; i++) {
        const char *a = scalar(seq_item(doc, args, i));
        argv[i + 1] = (char *)(a ? a : "");
    }
    struct mxpc_buf tmp = MXPC_BUF_INIT;
    size_t ne = 0;
    for (size_t i = 0; i < nenv; i++) {
        yaml_node_t *e = seq_item(doc, env, i);
        const char *name = map_str(doc, e, "name");
        const char *value = scalar(map_get(doc, e, "value"));
        if (!name)
            continue;
        mxpc_buf_printf(&tmp, "%s=%s", name, value ? value : "");
        envs[ne++] = mxpc_buf_take(&tmp);
    }
    mxpc_buf_printf(&tmp,
                    "KUBERNETES_EXEC_INFO={\"apiVersion\":\"%s\",\"kind\":\"ExecCredential\","
                    "\"spec\":{\"interactive\":false}}",
                    api);
    envs[ne++] = mxpc_buf_take(&tmp);

    char what[1400];
    snprintf(what, sizeof what, "credential plugin \"%s\" (%s)", command, where);
    struct mxpc_buf out = MXPC_BUF_INIT;
    long timeout_s = exec_timeout(err);
    int rc = -1;
    if (timeout_s > 0) {
        mxpc_log(MXPC_LOG_DEBUG, "k8s: running %s (at most %ld s)", what, timeout_s);
        rc = spawn_collect((const char *const *)argv, (const char *const *)envs, timeout_s, &out, what, err);
    }
    if (rc == 0) {
        rc = parse_exec_output(&out, cfg, what, err);
    } else if (timeout_s > 0 && strcmp(err->code, "config") == 0 && !err->hint[0]) {
        const char *install = map_str(doc, exec, "installHint");
        snprintf(err->hint, sizeof err->hint, "%s", install ? install : "run the command by hand to see why it fails");
    }
    if (out.data)
        memset(out.data, 0, out.len); /* it held a credential */
    mxpc_buf_free(&out);
    for (size_t i = 0; i < ne; i++)
        free(envs[i]);
    free(envs);
    free(argv);
    free(cmd);
    return rc;
}

/* --- in-cluster ----------------------------------------------------------------- */

static int load_in_cluster(struct mxpc_k8s_config *cfg, struct mxpc_k8s_error *err)
{
    const char *host = getenv("KUBERNETES_SERVICE_HOST");
    const char *port = getenv("KUBERNETES_SERVICE_PORT");
    const char *dir = getenv("MXPC_K8S_SA_DIR");
    if (!dir || !*dir)
        dir = MXPC_K8S_SA_DIR_DEFAULT;
    if (!host || !*host || !port || !*port) {
        mxpc_k8s_set_error(err, "config", NULL,
                "in-cluster configuration needs KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT, which are not set");
        return -1;
    }
    struct mxpc_buf b = MXPC_BUF_INIT;
    mxpc_buf_printf(&b, "in-cluster service account (%s)", dir);
    cfg->source = mxpc_buf_take(&b);
    mxpc_buf_printf(&b, strchr(host, ':') ? "https://[%s]:%s" : "https://%s:%s", host, port);
    cfg->server = mxpc_buf_take(&b);
    mxpc_buf_printf(&b, "%s/token", dir);
    cfg->token_file = mxpc_buf_take(&b);
    char why[160];
    cfg->token = mxpc_k8s_read_trimmed(cfg->token_file, why, sizeof why);
    if (!cfg->token) {
        mxpc_k8s_set_error(err, "config", "mount the service account token (automountServiceAccountToken: true)",
                "cannot read the service account token %s: %s", cfg->token_file, why);
        return -1;
    }
    mxpc_redact_add(cfg->token);
    cfg->auth = "token file";
    mxpc_buf_printf(&b, "%s/ca.crt", dir);
    cfg->ca_file = mxpc_buf_take(&b);
    if (access(cfg->ca_file, R_OK) != 0) {
        free(cfg->ca_file);
        cfg->ca_file = NULL;
    }
    mxpc_buf_printf(&b, "%s/namespace", dir);
    cfg->namespace = mxpc_k8s_read_trimmed(b.data, why, sizeof why);
    mxpc_buf_free(&b);
    return 0;
}

/* --- entry points ---------------------------------------------------------------- */

void mxpc_k8s_config_free(struct mxpc_k8s_config *cfg)
{
    free(cfg->source);
    free(cfg->context);
    free(cfg->cluster);
    free(cfg->user);
    free(cfg->server);
    free(cfg->namespace);
    free(cfg->ca_file);
    blob_free(&cfg->ca_data);
    free(cfg->tls_server_name);
    free(cfg->cert_file);
    free(cfg->key_file);
    blob_free(&cfg->cert_data);
    if (cfg->key_data.data)
        memset(cfg->key_data.data, 0, cfg->key_data.len);
    blob_free(&cfg->key_data);
    free(cfg->token);
    free(cfg->token_file);
    free(cfg->username);
    free(cfg->password);
    memset(cfg, 0, sizeof *cfg);
}

static int in_cluster_possible(void)
{
    const char *host = getenv("KUBERNETES_SERVICE_HOST");
    return host && *host;
}

int mxpc_k8s_config_load(struct mxpc_k8s_config *cfg, const struct mxpc_k8s_load_options *opts,
                         struct mxpc_k8s_error *err)
{
    memset(cfg, 0, sizeof *cfg);
    memset(err, 0, sizeof *err);
    const char *context = opts && opts->context && *opts->context ? opts->context : NULL;
    int rc;
    if (opts && opts->in_cluster) {
        rc = load_in_cluster(cfg, err);
    } else {
        struct kc_set s = {0};
        const char *explicit = opts && opts->kubeconfig && *opts->kubeconfig ? opts->kubeconfig : NULL;
        const char *env = getenv("KUBECONFIG");
        const char *home = getenv("HOME");
        char *home_config = NULL;
        if (explicit) {
            rc = kc_open(&s, explicit, 1, err);
        } else if (env && *env) {
            rc = kc_open(&s, env, 0, err);
        } else if (home && *home) {
            struct mxpc_buf b = MXPC_BUF_INIT;
            mxpc_buf_printf(&b, "%s/.kube/config", home);
            home_config = mxpc_buf_take(&b);
            rc = kc_open(&s, home_config, 0, err);
        } else {
            rc = 0;
        }
        if (rc == 0 && s.n == 0) {
            if (in_cluster_possible()) {
                rc = load_in_cluster(cfg, err);
            } else {
                char looked[1100];
                if (env && *env)
                    snprintf(looked, sizeof looked, "KUBECONFIG=%s names no existing file", env);
                else if (home_config)
                    snprintf(looked, sizeof looked, "%s does not exist", home_config);
                else
                    snprintf(looked, sizeof looked, "neither KUBECONFIG nor HOME is set");
                mxpc_k8s_set_error(err, "config",
                        "pass a kubeconfig file, set KUBECONFIG, or run inside the cluster with a service account",
                        "no Kubernetes configuration found: %s and KUBERNETES_SERVICE_HOST is not set", looked);
                rc = -1;
            }
        } else if (rc == 0) {
            rc = load_kubeconfig(&s, context, cfg, err);
        }
        free(home_config);
        kc_free(&s);
    }
    if (rc != 0)
        mxpc_k8s_config_free(cfg);
    return rc;
}
