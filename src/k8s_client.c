/* HTTPS requests to the Kubernetes API with libcurl. See include/mxpc/k8s.h.
 *
 * Inline certificates and keys go to libcurl as blobs, never to files. The
 * transport's policy (http.h) applies: its defaults, a signal stops a
 * request, and reads are retried (writes never). */
#include "mxpc/k8s.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#include "mxpc/http.h"

#include "mxpc/log.h"
#include "mxpc/interrupt.h"

#define DEFAULT_CONNECT_TIMEOUT_MS 10000L
#define DEFAULT_TIMEOUT_MS 60000L

struct mxpc_k8s_client {
    struct mxpc_k8s_config cfg;
    struct mxpc_k8s_client_options opts;
    struct mxpc_http *http; /* the shared transport: connections are reused */
    CURL *curl;
    char *base;                  /* URL prefix: the server, or its tls-server-name form */
    struct curl_slist *connect_to; /* tls-server-name: connect to the real host */
};

const char *mxpc_k8s_status_code(long status)
{
    switch (status) {
    case 401: return "unauthorized";
    case 403: return "forbidden";
    case 404: return "not_found";
    case 409: return "conflict";
    case 422: return "invalid";
    default: return "k8s";
    }
}

const struct mxpc_k8s_config *mxpc_k8s_client_config(const struct mxpc_k8s_client *c) { return &c->cfg; }

/* With tls-server-name the URL names that host (so TLS checks and sends it)
 * while CURLOPT_CONNECT_TO sends the connection to the server's address. */
static int setup_server_name(struct mxpc_k8s_client *c, struct mxpc_k8s_error *err)
{
    if (!c->cfg.tls_server_name) {
        c->base = strdup(c->cfg.server);
        return c->base ? 0 : -1;
    }
    CURLU *u = curl_url();
    char *host = NULL, *port = NULL, *url = NULL;
    int rc = -1;
    if (u && curl_url_set(u, CURLUPART_URL, c->cfg.server, 0) == CURLUE_OK &&
        curl_url_get(u, CURLUPART_HOST, &host, 0) == CURLUE_OK &&
        curl_url_get(u, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT) == CURLUE_OK &&
        curl_url_set(u, CURLUPART_HOST, c->cfg.tls_server_name, 0) == CURLUE_OK &&
        curl_url_get(u, CURLUPART_URL, &url, 0) == CURLUE_OK) {
        struct mxpc_buf b = MXPC_BUF_INIT;
        mxpc_buf_printf(&b, "%s:%s:%s:%s", c->cfg.tls_server_name, port, host, port);
        c->connect_to = curl_slist_append(NULL, b.data);
        mxpc_buf_free(&b);
        size_t len = strlen(url);
        while (len > 0 && url[len - 1] == '/')
            len--;
        c->base = strndup(url, len);
        rc = c->base && c->connect_to ? 0 : -1;
    } else {
        mxpc_k8s_set_error(err, "config", NULL, "cannot use tls-server-name \"%s\" with server %s",
                           c->cfg.tls_server_name, c->cfg.server);
    }
    curl_free(host);
    curl_free(port);
    curl_free(url);
    curl_url_cleanup(u);
    return rc;
}

struct mxpc_k8s_client *mxpc_k8s_client_new(struct mxpc_k8s_config *cfg, const struct mxpc_k8s_client_options *opts,
                                            struct mxpc_k8s_error *err)
{
    memset(err, 0, sizeof *err);
    struct mxpc_k8s_client *c = calloc(1, sizeof *c);
    if (!c) {
        mxpc_k8s_config_free(cfg);
        mxpc_k8s_set_error(err, "k8s", NULL, "out of memory");
        return NULL;
    }
    c->cfg = *cfg;
    memset(cfg, 0, sizeof *cfg);
    if (opts)
        c->opts = *opts;
    if (c->opts.connect_timeout_ms <= 0)
        c->opts.connect_timeout_ms = DEFAULT_CONNECT_TIMEOUT_MS;
    if (c->opts.timeout_ms == 0)
        c->opts.timeout_ms = DEFAULT_TIMEOUT_MS;
    c->http = mxpc_http_new();
    c->curl = c->http ? mxpc_http_easy(c->http) : NULL;
    if (!c->curl || setup_server_name(c, err) != 0) {
        if (!err->code[0])
            mxpc_k8s_set_error(err, "k8s", NULL, "cannot set up the HTTP client");
        mxpc_k8s_client_free(c);
        return NULL;
    }
    return c;
}

void mxpc_k8s_client_free(struct mxpc_k8s_client *c)
{
    if (!c)
        return;
    if (c->http) {
        mxpc_http_release(c->http, c->curl);
        mxpc_http_free(c->http);
    }
    curl_slist_free_all(c->connect_to);
    free(c->base);
    mxpc_k8s_config_free(&c->cfg);
    free(c);
}

/* Bound service-account tokens rotate: read the file again before each
 * request; keep the last token read if the file is briefly unreadable. */
static void refresh_token(struct mxpc_k8s_client *c)
{
    if (!c->cfg.token_file)
        return;
    char why[160];
    char *token = mxpc_k8s_read_trimmed(c->cfg.token_file, why, sizeof why);
    if (!token)
        mxpc_log(MXPC_LOG_DEBUG, "k8s: cannot read the token file %s again (%s), keeping the last token",
                 c->cfg.token_file, why);
    if (!token || !*token || (c->cfg.token && strcmp(token, c->cfg.token) == 0)) {
        free(token);
        return;
    }
    mxpc_redact_add(token);
    mxpc_log(MXPC_LOG_DEBUG, "k8s: token file %s changed, using the new token", c->cfg.token_file);
    free(c->cfg.token);
    c->cfg.token = token;
}

static size_t on_body(char *data, size_t size, size_t n, void *userdata)
{
    mxpc_buf_append(userdata, data, size * n);
    return size * n;
}

#define SET(opt, val) MXPC_HTTP_SET(ok, h, opt, val)

static int set_blob(CURL *h, CURLoption opt, const struct mxpc_k8s_blob *b)
{
    struct curl_blob blob = {.data = b->data, .len = b->len, .flags = CURL_BLOB_COPY};
    return curl_easy_setopt(h, opt, &blob) == CURLE_OK;
}

/* TLS and credentials; returns 0 if libcurl refused an option. */
static int set_tls_and_auth(struct mxpc_k8s_client *c, struct curl_slist **headers)
{
    CURL *h = c->curl;
    const struct mxpc_k8s_config *cfg = &c->cfg;
    int ok = 1;
    if (cfg->ca_data.data)
        ok &= set_blob(h, CURLOPT_CAINFO_BLOB, &cfg->ca_data);
    else
        ok &= mxpc_ca_apply(h, cfg->ca_file, NULL) == 0;
    if (cfg->insecure) {
        SET(CURLOPT_SSL_VERIFYPEER, 0L);
        SET(CURLOPT_SSL_VERIFYHOST, 0L);
    }
    if (cfg->cert_data.data)
        ok &= set_blob(h, CURLOPT_SSLCERT_BLOB, &cfg->cert_data);
    else if (cfg->cert_file)
        SET(CURLOPT_SSLCERT, cfg->cert_file);
    if (cfg->key_data.data)
        ok &= set_blob(h, CURLOPT_SSLKEY_BLOB, &cfg->key_data);
    else if (cfg->key_file)
        SET(CURLOPT_SSLKEY, cfg->key_file);
    if (cfg->cert_data.data || cfg->cert_file) {
        SET(CURLOPT_SSLCERTTYPE, "PEM");
        SET(CURLOPT_SSLKEYTYPE, "PEM");
    }
    if (cfg->token) {
        struct mxpc_buf b = MXPC_BUF_INIT;
        mxpc_buf_printf(&b, "Authorization: Bearer %s", cfg->token);
        *headers = curl_slist_append(*headers, b.data);
        memset(b.data, 0, b.len);
        mxpc_buf_free(&b);
    } else if (cfg->username && cfg->password) {
        SET(CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC);
        SET(CURLOPT_USERNAME, cfg->username);
        SET(CURLOPT_PASSWORD, cfg->password);
    }
    if (c->connect_to)
        SET(CURLOPT_CONNECT_TO, c->connect_to);
    return ok;
}

static void transfer_error(struct mxpc_k8s_client *c, CURLcode rc, const char *errbuf, struct mxpc_k8s_error *err)
{
    const struct mxpc_k8s_config *cfg = &c->cfg;
    const char *detail = errbuf[0] ? errbuf : curl_easy_strerror(rc);
    char where[600];
    if (cfg->context)
        snprintf(where, sizeof where, "%s (context %s)", cfg->server, cfg->context);
    else
        snprintf(where, sizeof where, "%s (%s)", cfg->server, cfg->source ? cfg->source : "in-cluster");
    double connect_time = 0;
    curl_easy_getinfo(c->curl, CURLINFO_CONNECT_TIME, &connect_time);
    const char *hint = "check the server address in the kubeconfig and that the API server is reachable from here";
    switch (rc) {
    case CURLE_ABORTED_BY_CALLBACK:
        mxpc_k8s_set_error(err, "interrupted", NULL, "request to %s interrupted", where);
        return;
    case CURLE_OPERATION_TIMEDOUT:
        if (connect_time > 0) {
            mxpc_k8s_set_error(err, "timeout", "the server is slow or overloaded; try again or raise timeout=",
                               "the Kubernetes API at %s did not answer in time: %s", where, detail);
            return;
        }
        break;
    default:
        break;
    }
    if (rc == CURLE_SSL_CERTPROBLEM)
        hint = "check the user's client-certificate and client-key in the kubeconfig";
    else if (mxpc_http_tls_problem(rc))
        hint = "check the cluster's certificate-authority(-data) in the kubeconfig: it must be the CA that signed the "
               "API server's certificate (and the client certificate and key, if used)";
    mxpc_k8s_set_error(err, "connect", hint, "cannot talk to the Kubernetes API at %s: %s", where, detail);
}

/* One attempt: the options, the transfer; the libcurl result. */
static CURLcode attempt(struct mxpc_k8s_client *c, const char *method, const char *url, const char *body,
                        size_t body_len, struct curl_slist **headers, struct mxpc_buf *out, char *errbuf)
{
    CURL *h = c->curl;
    curl_easy_reset(h); /* keeps the open connections */
    errbuf[0] = '\0';
    out->len = 0;
    int ok = mxpc_http_defaults(c->http, h, errbuf) == 0;
    SET(CURLOPT_URL, url);
    SET(CURLOPT_PROTOCOLS_STR, "https,http");
    SET(CURLOPT_CONNECTTIMEOUT_MS, c->opts.connect_timeout_ms);
    if (c->opts.timeout_ms > 0)
        SET(CURLOPT_TIMEOUT_MS, c->opts.timeout_ms);
    SET(CURLOPT_WRITEFUNCTION, on_body);
    SET(CURLOPT_WRITEDATA, out);
    if (strcmp(method, "GET") == 0) {
        SET(CURLOPT_HTTPGET, 1L);
    } else {
        SET(CURLOPT_CUSTOMREQUEST, method);
        if (body) {
            SET(CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body_len);
            SET(CURLOPT_POSTFIELDS, body);
        }
    }
    ok &= set_tls_and_auth(c, headers);
    SET(CURLOPT_HTTPHEADER, *headers);
    return ok ? mxpc_http_perform(c->http, h) : CURLE_BAD_FUNCTION_ARGUMENT;
}

/* Reads (GET, LIST) are retried as the transport's policy says, except a
 * timeout of the whole request (the caller chose how long to wait); writes
 * never are: a PATCH that reached the server must not be sent twice. */
#define READ_ATTEMPTS 3

int mxpc_k8s_request(struct mxpc_k8s_client *c, const char *method, const char *path, const char *content_type,
                     const char *body, size_t body_len, struct mxpc_k8s_response *resp, struct mxpc_k8s_error *err)
{
    memset(resp, 0, sizeof *resp);
    memset(err, 0, sizeof *err);
    refresh_token(c);
    CURL *h = c->curl;
    struct mxpc_buf url = MXPC_BUF_INIT;
    mxpc_buf_printf(&url, "%s%s", c->base, path);
    char errbuf[CURL_ERROR_SIZE] = "";
    int attempts = strcmp(method, "GET") == 0 ? READ_ATTEMPTS : 1;
    CURLcode rc = CURLE_OK;
    struct curl_slist *headers = NULL;
    for (int n = 0; n < attempts; n++) {
        if (n > 0) {
            mxpc_log(MXPC_LOG_WARN, "k8s: %s %s: %s; retrying (%d of %d)", method, path,
                     rc != CURLE_OK ? (errbuf[0] ? errbuf : curl_easy_strerror(rc)) : "HTTP 5xx", n,
                     attempts - 1);
            if (mxpc_http_sleep_ms(mxpc_http_backoff_ms(n - 1)) != 0) {
                rc = CURLE_ABORTED_BY_CALLBACK;
                break;
            }
        }
        /* the Authorization header is in the list: wipe it before freeing */
        for (struct curl_slist *l = headers; l; l = l->next)
            memset(l->data, 0, strlen(l->data));
        curl_slist_free_all(headers);
        headers = curl_slist_append(NULL, "Accept: application/json");
        if (body) {
            char ctype[160];
            snprintf(ctype, sizeof ctype, "Content-Type: %s", content_type ? content_type : "application/json");
            headers = curl_slist_append(headers, ctype);
        }
        rc = attempt(c, method, url.data, body, body_len, &headers, &resp->body, errbuf);
        resp->status = 0;
        if (rc == CURLE_OK)
            curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &resp->status);
        if (rc == CURLE_OPERATION_TIMEDOUT || !mxpc_http_retryable(rc, resp->status))
            break;
    }
    int result = 0;
    if (rc != CURLE_OK) {
        transfer_error(c, rc, errbuf, err);
        mxpc_log(MXPC_LOG_DEBUG, "k8s: %s %s: %s", method, path, err->message);
        mxpc_buf_free(&resp->body);
        result = -1;
    } else {
        char *ct = NULL;
        if (curl_easy_getinfo(h, CURLINFO_CONTENT_TYPE, &ct) == CURLE_OK && ct)
            snprintf(resp->content_type, sizeof resp->content_type, "%s", ct);
        mxpc_buf_append(&resp->body, "", 0);
        mxpc_log(MXPC_LOG_DEBUG, "k8s: %s %s: HTTP %ld, %zu bytes", method, path, resp->status, resp->body.len);
    }
    for (struct curl_slist *l = headers; l; l = l->next)
        memset(l->data, 0, strlen(l->data));
    curl_slist_free_all(headers);
    int ok = 1;
    SET(CURLOPT_HTTPHEADER, (struct curl_slist *)NULL);
    if (!ok)
        mxpc_log(MXPC_LOG_DEBUG, "k8s: cannot clear the request headers");
    mxpc_buf_free(&url);
    return result;
}
