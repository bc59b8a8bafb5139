/* Entra ID access tokens with Azure Workload Identity: the federated
 * service-account token (AZURE_FEDERATED_TOKEN_FILE, read afresh each time:
 * the kubelet rotates it) exchanged at AZURE_AUTHORITY_HOST/AZURE_TENANT_ID/
 * oauth2/v2.0/token (client_credentials with a client_assertion, client id
 * AZURE_CLIENT_ID) for a token of one scope. Tokens are cached per scope and
 * fetched again before they expire (a quarter of their life before, at most
 * 5 minutes), as the AWS credential chain does (aws_credentials.c); a
 * failed renewal of a token still valid for a while uses it meanwhile. */
#ifndef MXPC_AZURE_IDENTITY_H
#define MXPC_AZURE_IDENTITY_H

#include <stddef.h>
#include <time.h>

#define MXPC_AZURE_STORAGE_SCOPE "https://storage.azure.com/.default"
#define MXPC_AZURE_OSSRDBMS_SCOPE "https://ossrdbms-aad.database.windows.net/.default"

/* 1 when AZURE_FEDERATED_TOKEN_FILE, AZURE_CLIENT_ID and AZURE_TENANT_ID are
 * all set (Workload Identity is configured), else 0 with err naming what is
 * missing. */
int mxpc_azure_wi_configured(char *err, size_t errlen);

/* A token for scope into out (NUL-terminated): 0 (with *expires, may be
 * NULL), or -1 with a message (first line: what failed; then what to check). */
int mxpc_azure_token(const char *scope, char *out, size_t outlen, time_t *expires, char *err, size_t errlen);

/* The longest life of a token taken from an answer (seconds). */
#define MXPC_AZURE_TOKEN_LIFE_MAX (24 * 3600)

struct mxpc_buf;

/* Entra ID's answer to a token request (JSON): 1 with the access token
 * appended to token and *expires = asked + expires_in (300 s when it is
 * absent, not positive or longer than MXPC_AZURE_TOKEN_LIFE_MAX); else 0
 * with Entra's error and error_description (its first line) in code and
 * desc, "" when absent. */
int mxpc_azure_token_answer(const char *json, time_t asked, struct mxpc_buf *token, time_t *expires, char *code,
                            size_t codelen, char *desc, size_t desclen);

/* mxpc_azure_token_fn for Blob Storage (ud unused). */
int mxpc_azure_storage_token(void *ud, char *out, size_t outlen, char *err, size_t errlen);

/* Forgets every cached token (tests). */
void mxpc_azure_token_cache_clear(void);

#endif
