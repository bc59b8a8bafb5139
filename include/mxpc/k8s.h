/* Kubernetes client configuration (k8s_config.c) and HTTPS requests
 * (k8s_client.c). The Lua module mxpc.k8s (mod_k8s.c) is built on these.
 *
 * Configuration is found like kubectl does: an explicit kubeconfig file, else
 * $KUBECONFIG (a colon-separated list; the first file that sets a value wins),
 * else ~/.kube/config, else the in-cluster service account
 * (KUBERNETES_SERVICE_HOST/_PORT and the files in
 * /var/run/secrets/kubernetes.io/serviceaccount, or $MXPC_K8S_SA_DIR).
 * See docs/k8s.md. */
#ifndef MXPC_K8S_H
#define MXPC_K8S_H

#include <stddef.h>

#include "mxpc/buf.h"

/* Where the in-cluster service-account files are, unless $MXPC_K8S_SA_DIR. */
#define MXPC_K8S_SA_DIR_DEFAULT "/var/run/secrets/kubernetes.io/serviceaccount"

/* A failure: `code` is the error object's code (config, connect, timeout,
 * interrupted, not_found, forbidden, unauthorized, conflict, invalid, k8s),
 * `message` one line naming what failed, `hint` what to do (may be empty).
 * Secrets never appear in it. */
struct mxpc_k8s_error {
    char code[24];
    char message[1024];
    char hint[512];
};

/* Fills `err`; `hint` may be NULL. */
void mxpc_k8s_set_error(struct mxpc_k8s_error *err, const char *code, const char *hint, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Bytes of inline data (certificate-authority-data and the like), decoded. */
struct mxpc_k8s_blob {
    unsigned char *data;
    size_t len;
};

struct mxpc_k8s_config {
    char *source;    /* the kubeconfig file(s), or "in-cluster service account (DIR)" */
    char *context;   /* context name; NULL in-cluster */
    char *cluster;   /* cluster name; NULL in-cluster */
    char *user;      /* user name; NULL in-cluster */
    char *server;    /* https://host:port, without trailing '/' */
    char *namespace; /* from the context or the service account; NULL if none */

    /* TLS */
    char *ca_file;
    struct mxpc_k8s_blob ca_data;
    int insecure;
    char *tls_server_name;
    char *cert_file, *key_file;
    struct mxpc_k8s_blob cert_data, key_data;

    /* credentials */
    char *token;
    char *token_file; /* re-read by the client when it changes (bound tokens rotate) */
    char *username, *password;
    const char *auth; /* "token", "token file", "client certificate", "basic", "exec", "none" */
};

struct mxpc_k8s_load_options {
    const char *kubeconfig; /* explicit file; NULL: $KUBECONFIG, ~/.kube/config, in-cluster */
    const char *context;    /* NULL: current-context */
    int in_cluster;         /* 1: skip kubeconfig files, use the service account */
};

/* Loads the configuration and resolves credentials (reads token files, runs
 * exec plugins). Every credential learned is registered with
 * mxpc_redact_add. Returns 0, or -1 with `err` filled (cfg is then empty). */
int mxpc_k8s_config_load(struct mxpc_k8s_config *cfg, const struct mxpc_k8s_load_options *opts,
                         struct mxpc_k8s_error *err);
void mxpc_k8s_config_free(struct mxpc_k8s_config *cfg);

/* Reads a small regular file (a token: at most MXPC_TOKEN_FILE_MAX bytes)
 * into a NUL-terminated string with surrounding white space trimmed; NULL on
 * failure, with why (whylen bytes) saying what is wrong. */
char *mxpc_k8s_read_trimmed(const char *path, char *why, size_t whylen);

/* Decodes base64 (standard alphabet, white space ignored). Returns a newly
 * allocated buffer (NUL-terminated for convenience) and its length in *len,
 * or NULL if the text is not base64. */
unsigned char *mxpc_base64_decode(const char *text, size_t text_len, size_t *len);

/* --- client ---------------------------------------------------------------- */

struct mxpc_k8s_client_options {
    long connect_timeout_ms; /* 0: 10 s */
    long timeout_ms;         /* whole request; 0: 60 s; < 0: none */
};

struct mxpc_k8s_response {
    long status;
    struct mxpc_buf body;
    char content_type[128];
};

struct mxpc_k8s_client;

/* Takes over `cfg` (also on failure; it is left empty). */
struct mxpc_k8s_client *mxpc_k8s_client_new(struct mxpc_k8s_config *cfg, const struct mxpc_k8s_client_options *opts,
                                            struct mxpc_k8s_error *err);
void mxpc_k8s_client_free(struct mxpc_k8s_client *c);
const struct mxpc_k8s_config *mxpc_k8s_client_config(const struct mxpc_k8s_client *c);

/* One request. `path` starts with '/' and may carry a query. `content_type`
 * is used when `body` is not NULL. Any HTTP status is a success here (the
 * caller maps >= 400 with mxpc_k8s_status_code); -1 means the request did not
 * complete (code connect, timeout or interrupted). `resp` is initialised by
 * the call; free resp->body with mxpc_buf_free. */
int mxpc_k8s_request(struct mxpc_k8s_client *c, const char *method, const char *path, const char *content_type,
                     const char *body, size_t body_len, struct mxpc_k8s_response *resp, struct mxpc_k8s_error *err);

/* The error code for an HTTP status >= 400: not_found, forbidden,
 * unauthorized, conflict, invalid or k8s. */
const char *mxpc_k8s_status_code(long status);

#endif
