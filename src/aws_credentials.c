/* The AWS credential provider chain. See include/mxpc/s3.h. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mxpc/log.h"
#include "mxpc/s3.h"

mxpc_aws_credentials_provider_fn mxpc_aws_web_identity_provider = NULL;

static char *dup_or_null(const char *s)
{
    if (!s || !*s)
        return NULL;
    char *d = strdup(s);
    if (!d)
        abort();
    return d;
}

static void set(struct mxpc_aws_credentials *out, const char *ak, const char *sk, const char *token,
                const char *source)
{
    out->access_key = dup_or_null(ak);
    out->secret_key = dup_or_null(sk);
    out->session_token = dup_or_null(token);
    snprintf(out->source, sizeof out->source, "%s", source);
}

void mxpc_aws_credentials_clear(struct mxpc_aws_credentials *c)
{
    if (!c)
        return;
    free(c->access_key);
    if (c->secret_key)
        memset(c->secret_key, 0, strlen(c->secret_key));
    free(c->secret_key);
    free(c->session_token);
    memset(c, 0, sizeof *c);
}

static int from_environment(struct mxpc_aws_credentials *out, const char *profile, char *err, size_t errlen)
{
    (void)profile;
    const char *ak = getenv("AWS_ACCESS_KEY_ID"), *sk = getenv("AWS_SECRET_ACCESS_KEY");
    if (!ak || !*ak)
        return 0;
    if (!sk || !*sk) {
        snprintf(err, errlen, "AWS_ACCESS_KEY_ID is set but AWS_SECRET_ACCESS_KEY is not");
        return -1;
    }
    set(out, ak, sk, getenv("AWS_SESSION_TOKEN"), "environment");
    return 1;
}

static int from_web_identity(struct mxpc_aws_credentials *out, const char *profile, char *err, size_t errlen)
{
    if (mxpc_aws_web_identity_provider)
        return mxpc_aws_web_identity_provider(out, profile, err, errlen);
    const char *token_file = getenv("AWS_WEB_IDENTITY_TOKEN_FILE");
    if (token_file && *token_file)
        mxpc_log(MXPC_LOG_DEBUG, "AWS_WEB_IDENTITY_TOKEN_FILE is set, but web identity credentials are not "
                                 "supported yet; trying the shared credentials file");
    return 0;
}

static char *trim(char *s)
{
    while (isspace((unsigned char)*s))
        s++;
    size_t n = strlen(s);
    while (n > 0 && isspace((unsigned char)s[n - 1]))
        s[--n] = '\0';
    return s;
}

/* The INI file of the AWS CLI: [profile] sections with key = value lines. */
static int from_shared_file(struct mxpc_aws_credentials *out, const char *profile, char *err, size_t errlen)
{
    char path[4096];
    const char *env_path = getenv("AWS_SHARED_CREDENTIALS_FILE");
    const char *home = getenv("HOME");
    if (env_path && *env_path)
        snprintf(path, sizeof path, "%s", env_path);
    else if (home && *home)
        snprintf(path, sizeof path, "%s/.aws/credentials", home);
    else
        return 0;
    if (!profile || !*profile)
        profile = getenv("AWS_PROFILE");
    int chosen = profile && *profile; /* a profile asked for by name must exist */
    if (!chosen)
        profile = "default";
    FILE *f = fopen(path, "r");
    if (!f) {
        if ((env_path && *env_path) || chosen) {
            snprintf(err, errlen, "cannot read the shared credentials file %s%s%s%s", path,
                     chosen ? " (for profile '" : "", chosen ? profile : "", chosen ? "')" : "");
            return -1;
        }
        return 0;
    }
    char line[4096];
    int in_section = 0, found = 0;
    char *ak = NULL, *sk = NULL, *token = NULL;
    while (fgets(line, sizeof line, f)) {
        char *l = trim(line);
        if (*l == '#' || *l == ';' || !*l)
            continue;
        if (*l == '[') {
            char *end = strchr(l, ']');
            if (end)
                *end = '\0';
            in_section = strcmp(trim(l + 1), profile) == 0;
            found |= in_section;
            continue;
        }
        char *eq = strchr(l, '=');
        if (!in_section || !eq)
            continue;
        *eq = '\0';
        char *k = trim(l), *v = trim(eq + 1);
        char **slot = strcmp(k, "aws_access_key_id") == 0       ? &ak
                      : strcmp(k, "aws_secret_access_key") == 0 ? &sk
                      : strcmp(k, "aws_session_token") == 0     ? &token
                                                                : NULL;
        if (slot) {
            free(*slot);
            *slot = dup_or_null(v);
        }
    }
    fclose(f);
    memset(line, 0, sizeof line);
    int rc = 0;
    if (found && ak && sk) {
        char source[64];
        snprintf(source, sizeof source, "shared file (profile %.30s)", profile);
        set(out, ak, sk, token, source);
        rc = 1;
    } else if (found || chosen) {
        snprintf(err, errlen, "%s: profile '%s' %s", path, profile,
                 found ? "lacks aws_access_key_id or aws_secret_access_key" : "does not exist");
        rc = -1;
    }
    free(ak);
    if (sk)
        memset(sk, 0, strlen(sk));
    free(sk);
    free(token);
    return rc;
}

int mxpc_aws_credentials_resolve(const struct mxpc_aws_credentials *explicit_creds, const char *profile,
                                 struct mxpc_aws_credentials *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    int rc = 0;
    if (explicit_creds && explicit_creds->access_key && *explicit_creds->access_key) {
        if (!explicit_creds->secret_key || !*explicit_creds->secret_key) {
            snprintf(err, errlen, "an access key was given without its secret key");
            return -1;
        }
        set(out, explicit_creds->access_key, explicit_creds->secret_key, explicit_creds->session_token,
            "explicit");
        rc = 1;
    }
    static const mxpc_aws_credentials_provider_fn chain[] = {from_environment, from_web_identity,
                                                            from_shared_file};
    for (size_t i = 0; rc == 0 && i < sizeof chain / sizeof chain[0]; i++)
        rc = chain[i](out, profile, err, errlen);
    if (rc < 0) {
        mxpc_aws_credentials_clear(out);
        return -1;
    }
    if (rc == 0) {
        snprintf(err, errlen, "no AWS credentials: none given, none in AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, "
                              "none in the shared credentials file");
        return -1;
    }
    mxpc_redact_add(out->secret_key);
    mxpc_redact_add(out->session_token);
    mxpc_log(MXPC_LOG_DEBUG, "AWS credentials from %s (access key %s)", out->source, out->access_key);
    return 0;
}
