/* Entra ID tokens with Azure Workload Identity. See include/mxpc/azure_identity.h. */
#include "mxpc/azure_identity.h"

#include <ctype.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mxpc/aws.h" /* mxpc_aws_http, mxpc_json_string_field, mxpc_jwt_claims */
#include "mxpc/buf.h"
#include "mxpc/log.h"

static const char *env(const char *name)
{
    const char *v = getenv(name);
    return v && *v ? v : NULL;
}

int mxpc_azure_wi_configured(char *err, size_t errlen)
{
    const char *missing = !env("AZURE_FEDERATED_TOKEN_FILE") ? "AZURE_FEDERATED_TOKEN_FILE"
                          : !env("AZURE_CLIENT_ID")          ? "AZURE_CLIENT_ID"
                          : !env("AZURE_TENANT_ID")          ? "AZURE_TENANT_ID"
                                                             : NULL;
    if (missing)
        snprintf(err, errlen, "Azure Workload Identity is not configured: %s is not set", missing);
    return missing == NULL;
}

/* "expires_in": 3599 (a number, or a string in Entra's v1 answers); 0 if absent. */
static long json_seconds(const char *json, const char *key)
{
    char pat[64];
    snprintf(pat, sizeof pat, "\"%s\"", key);
    const char *p = strstr(json, pat);
    if (!p)
        return 0;
    p += strlen(pat);
    while (isspace((unsigned char)*p) || *p == ':' || *p == '"')
        p++;
    return strtol(p, NULL, 10);
}

int mxpc_azure_token_answer(const char *json, time_t asked, struct mxpc_buf *token, time_t *expires, char *code,
                            size_t codelen, char *desc, size_t desclen)
{
    char access[8192] = "";
    code[0] = desc[0] = '\0';
    if (mxpc_json_string_field(json, "access_token", access, sizeof access) == 1 && access[0]) {
        long life = json_seconds(json, "expires_in");
        /* Entra's tokens live an hour or so, at most a day: a longer life is none */
        *expires = asked + (life > 0 && life <= MXPC_AZURE_TOKEN_LIFE_MAX ? life : 300);
        mxpc_buf_puts(token, access);
        explicit_bzero(access, sizeof access);
        return 1;
    }
    mxpc_json_string_field(json, "error", code, codelen);
    mxpc_json_string_field(json, "error_description", desc, desclen);
    desc[strcspn(desc, "\r\n")] = '\0';
    return 0;
}

/* One exchange: 0 with the token, or -1 with err. */
static int fetch(const char *scope, struct mxpc_buf *token, time_t *expires, char *err, size_t errlen)
{
    if (!mxpc_azure_wi_configured(err, errlen)) {
        size_t n = strlen(err);
        snprintf(err + n, errlen - n, "\nrun in a pod whose ServiceAccount has the annotation "
                                      "azure.workload.identity/client-id and the label azure.workload.identity/use: "
                                      "\"true\" (docs/jump-pod.md)");
        return -1;
    }
    const char *file = env("AZURE_FEDERATED_TOKEN_FILE"), *client = env("AZURE_CLIENT_ID"),
               *tenant = env("AZURE_TENANT_ID");
    const char *authority = env("AZURE_AUTHORITY_HOST") ? env("AZURE_AUTHORITY_HOST") : "https://login.microsoftonline.com/";
    struct mxpc_buf assertion = MXPC_BUF_INIT, body = MXPC_BUF_INIT, url = MXPC_BUF_INIT, response = MXPC_BUF_INIT;
    int rc = -1;
    char why[160];
    if (mxpc_buf_read_file(&assertion, file, MXPC_TOKEN_FILE_MAX, why, sizeof why) != 0) {
        snprintf(err, errlen, "cannot read the federated token file %s: %s\ncheck that the service account token is "
                              "projected there (Azure Workload Identity's webhook does it)", file, why);
        goto out;
    }
    mxpc_buf_puts(&assertion, "");
    while (assertion.len && isspace((unsigned char)assertion.data[assertion.len - 1]))
        assertion.data[--assertion.len] = '\0';
    if (!assertion.len) {
        snprintf(err, errlen, "the federated token file %s is empty", file);
        goto out;
    }
    mxpc_redact_add(assertion.data);
    size_t alen = strlen(authority);
    mxpc_buf_printf(&url, "%.*s/%s/oauth2/v2.0/token", (int)(alen && authority[alen - 1] == '/' ? alen - 1 : alen),
                    authority, tenant);
    mxpc_form_field(&body, "grant_type", "client_credentials");
    mxpc_form_field(&body, "client_id", client);
    mxpc_form_field(&body, "scope", scope);
    mxpc_form_field(&body, "client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer");
    mxpc_form_field(&body, "client_assertion", assertion.data);
    mxpc_redact_add(body.data);
    const char *headers[] = {"Content-Type: application/x-www-form-urlencoded", "Accept: application/json", NULL};
    long status = 0;
    char herr[512];
    time_t asked = time(NULL);
    mxpc_log(MXPC_LOG_DEBUG, "Azure Workload Identity: token for %s from %s (client id %s, token file %s)", scope,
             url.data, client, file);
    if (mxpc_aws_http("POST", url.data, headers, body.data, 0, &response, &status, herr, sizeof herr) != 0) {
        snprintf(err, errlen, "Azure Workload Identity: cannot reach Entra ID: %s\ncheck AZURE_AUTHORITY_HOST", herr);
        goto out;
    }
    mxpc_buf_puts(&response, "");
    char code[128] = "", desc[512] = "";
    size_t had = token->len;
    if (mxpc_azure_token_answer(response.data, asked, token, expires, code, sizeof code, desc, sizeof desc)) {
        if (status == 200) {
            mxpc_redact_add(token->data);
            rc = 0;
            goto out;
        }
        explicit_bzero(token->data + had, token->len - had); /* a token in a refusal is not taken */
        token->len = had;
    }
    struct mxpc_jwt_claims cl;
    mxpc_jwt_claims(assertion.data, &cl);
    snprintf(err, errlen,
             "Entra ID refused a token for %s to the managed identity %s (HTTP %ld %s%s%s); the federated token in "
             "%s has issuer %s, audience %s, subject %s\n"
             "check the identity's federated credential: issuer the cluster's OIDC issuer, subject "
             "system:serviceaccount:NAMESPACE:NAME of the pod's ServiceAccount, audience api://AzureADTokenExchange",
             scope, client, status, code[0] ? code : "no error code", desc[0] ? ": " : "", desc, file,
             cl.iss[0] ? cl.iss : "(unreadable)", cl.aud[0] ? cl.aud : "(none)", cl.sub[0] ? cl.sub : "(none)");
out:
    if (body.data)
        memset(body.data, 0, body.len);
    mxpc_buf_free(&body);
    mxpc_buf_free(&assertion);
    mxpc_buf_free(&url);
    mxpc_buf_free(&response);
    return rc;
}

/* --- the cache ------------------------------------------------------------------ */

#define SLOTS 4
#define RETRY_SECONDS 15
#define STILL_VALID_SECONDS 2

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct slot {
    char scope[128];
    struct mxpc_buf token;
    time_t fetched, expires, retry_after;
} slots[SLOTS];

static long margin(const struct slot *s)
{
    long life = (long)(s->expires - s->fetched);
    long m = life > 0 ? life / 4 : 0;
    return m < 300 ? m : 300;
}

int mxpc_azure_token(const char *scope, char *out, size_t outlen, time_t *expires, char *err, size_t errlen)
{
    pthread_mutex_lock(&lock);
    struct slot *s = NULL;
    for (int i = 0; i < SLOTS && !s; i++)
        if (strcmp(slots[i].scope, scope) == 0)
            s = &slots[i];
    for (int i = 0; i < SLOTS && !s; i++)
        if (!slots[i].scope[0])
            s = &slots[i];
    if (!s)
        s = &slots[0];
    if (strcmp(s->scope, scope) != 0) {
        snprintf(s->scope, sizeof s->scope, "%s", scope);
        s->token.len = 0;
        s->expires = s->fetched = s->retry_after = 0;
    }
    time_t now = time(NULL);
    int had = s->token.len > 0;
    int usable = had && now + STILL_VALID_SECONDS < s->expires;
    int rc = 0;
    if (!had || (now >= s->expires - margin(s) && !(usable && now < s->retry_after))) {
        struct mxpc_buf fresh = MXPC_BUF_INIT;
        time_t exp = 0, asked = now;
        if (fetch(scope, &fresh, &exp, err, errlen) == 0) {
            mxpc_log(MXPC_LOG_DEBUG, "Azure token for %s %s (valid for %lld s)", scope, had ? "refreshed" : "obtained",
                     (long long)(exp - time(NULL)));
            s->token.len = 0;
            mxpc_buf_append(&s->token, fresh.data, fresh.len);
            mxpc_buf_puts(&s->token, "");
            s->fetched = asked;
            s->expires = exp;
            s->retry_after = 0;
        } else if (usable) {
            mxpc_log(MXPC_LOG_WARN, "could not renew the Azure token for %s; using it for its last %lld s: %.*s", scope,
                     (long long)(s->expires - now), (int)strcspn(err, "\n"), err);
            s->retry_after = now + RETRY_SECONDS;
        } else {
            rc = -1;
        }
        mxpc_buf_free(&fresh);
    }
    if (rc == 0) {
        if (s->token.len + 1 > outlen) {
            snprintf(err, errlen, "the Azure token for %s is longer than %zu bytes", scope, outlen);
            rc = -1;
        } else {
            memcpy(out, s->token.data, s->token.len + 1);
            if (expires)
                *expires = s->expires;
        }
    }
    pthread_mutex_unlock(&lock);
    return rc;
}

int mxpc_azure_storage_token(void *ud, char *out, size_t outlen, char *err, size_t errlen)
{
    (void)ud;
    return mxpc_azure_token(MXPC_AZURE_STORAGE_SCOPE, out, outlen, NULL, err, errlen);
}

void mxpc_azure_token_cache_clear(void)
{
    pthread_mutex_lock(&lock);
    for (int i = 0; i < SLOTS; i++) {
        mxpc_buf_free(&slots[i].token);
        memset(&slots[i], 0, sizeof slots[i]);
    }
    pthread_mutex_unlock(&lock);
}
