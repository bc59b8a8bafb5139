/* The AWS credential provider chain. See include/mxpc/aws.h.
 *
 * Temporary credentials (web identity, container) live in one process-wide
 * cache guarded by a mutex: whoever finds them expiring fetches new ones
 * while the others wait, then everyone copies the same fresh set. */
#include <ctype.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mxpc/aws.h"
#include "mxpc/log.h"
#include "mxpc/s3.h"

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

void mxpc_aws_credentials_copy(struct mxpc_aws_credentials *dst, const struct mxpc_aws_credentials *src)
{
    char *ak = dup_or_null(src->access_key), *sk = dup_or_null(src->secret_key),
         *token = dup_or_null(src->session_token);
    struct mxpc_aws_credentials copy = *src;
    copy.access_key = ak;
    copy.secret_key = sk;
    copy.session_token = token;
    *dst = copy;
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

/* --- temporary credentials, cached -------------------------------------------- */

static pthread_mutex_t cache_lock = PTHREAD_MUTEX_INITIALIZER;
static struct mxpc_aws_credentials cache;
/* After a failed refresh of credentials that are still valid: no new attempt
 * before this time (the cached ones are used meanwhile). */
static time_t cache_retry_after;
#define RETRY_SECONDS 15
#define STILL_VALID_SECONDS 2

long mxpc_aws_credentials_margin(const struct mxpc_aws_credentials *c)
{
    if (!c->expiration)
        return 0;
    long life = (long)(c->expiration - c->fetched);
    long margin = life > 0 ? life / 4 : 0;
    return margin < 300 ? margin : 300;
}

static int expiring(const struct mxpc_aws_credentials *c, time_t now)
{
    return c->expiration && now >= c->expiration - mxpc_aws_credentials_margin(c);
}

typedef int (*fetch_fn)(struct mxpc_aws_credentials *out, char *err, size_t errlen);

/* The cached credentials of `kind`, fetched again when missing or expiring. */
static int cached(enum mxpc_aws_source kind, fetch_fn fetch, struct mxpc_aws_credentials *out, char *err,
                  size_t errlen)
{
    pthread_mutex_lock(&cache_lock);
    int rc = 1;
    time_t now = time(NULL);
    int had = cache.kind == kind && cache.access_key;
    /* credentials that expire soon but are still good are an advisory refresh:
     * if it fails they are used until shortly before their end */
    int usable = had && now + STILL_VALID_SECONDS < cache.expiration;
    if (!had || (expiring(&cache, now) && !(usable && now < cache_retry_after))) {
        struct mxpc_aws_credentials fresh;
        memset(&fresh, 0, sizeof fresh);
        rc = fetch(&fresh, err, errlen);
        if (rc == 1) {
            fresh.kind = kind;
            if (!fresh.fetched)
                fresh.fetched = time(NULL);
            mxpc_redact_add(fresh.secret_key);
            mxpc_redact_add(fresh.session_token);
            mxpc_log(MXPC_LOG_DEBUG, "AWS credentials %s from %s (access key %s, valid for %lld s)",
                     had ? "refreshed" : "obtained", fresh.source, fresh.access_key,
                     fresh.expiration ? (long long)(fresh.expiration - time(NULL)) : -1LL);
            mxpc_aws_credentials_clear(&cache);
            cache = fresh;
            cache_retry_after = 0;
        } else {
            mxpc_aws_credentials_clear(&fresh);
            if (usable) {
                mxpc_log(MXPC_LOG_WARN, "could not renew the AWS credentials from %s; using them for their last %lld s: %.*s",
                         cache.source, (long long)(cache.expiration - now), (int)strcspn(err, "\n"), err);
                cache_retry_after = now + RETRY_SECONDS;
                rc = 1;
            }
        }
    }
    if (rc == 1)
        mxpc_aws_credentials_copy(out, &cache);
    pthread_mutex_unlock(&cache_lock);
    return rc;
}

static int from_web_identity(struct mxpc_aws_credentials *out, const char *profile, char *err, size_t errlen)
{
    (void)profile;
    const char *file = getenv("AWS_WEB_IDENTITY_TOKEN_FILE");
    if (!file || !*file)
        return 0;
    return cached(MXPC_AWS_WEB_IDENTITY, mxpc_aws_web_identity_fetch, out, err, errlen);
}

static int from_container(struct mxpc_aws_credentials *out, const char *profile, char *err, size_t errlen)
{
    (void)profile;
    const char *full = getenv("AWS_CONTAINER_CREDENTIALS_FULL_URI"),
               *rel = getenv("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI");
    if ((!full || !*full) && (!rel || !*rel))
        return 0;
    return cached(MXPC_AWS_CONTAINER, mxpc_aws_container_fetch, out, err, errlen);
}

static int from_imds(struct mxpc_aws_credentials *out, const char *profile, char *err, size_t errlen)
{
    (void)profile;
    return cached(MXPC_AWS_IMDS, mxpc_aws_imds_fetch, out, err, errlen);
}

int mxpc_aws_credentials_refresh(struct mxpc_aws_credentials *c, char *err, size_t errlen)
{
    if (c->kind == MXPC_AWS_STATIC || !expiring(c, time(NULL)))
        return 0;
    static const fetch_fn fetch[] = {NULL, mxpc_aws_web_identity_fetch, mxpc_aws_container_fetch,
                                     mxpc_aws_imds_fetch};
    struct mxpc_aws_credentials fresh;
    int rc = cached(c->kind, fetch[c->kind], &fresh, err, errlen);
    if (rc != 1)
        return -1;
    mxpc_aws_credentials_clear(c);
    *c = fresh;
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
    /* bounded, and only a regular file: never a device or a FIFO read whole */
    struct mxpc_buf text = MXPC_BUF_INIT;
    char why[160];
    FILE *f = NULL;
    if (mxpc_buf_read_file(&text, path, 1 << 20, why, sizeof why) != 0 || !(f = fmemopen(text.data, text.len + 1, "r"))) {
        int missing = errno == ENOENT;
        mxpc_buf_free(&text);
        if ((env_path && *env_path) || chosen || !missing) {
            snprintf(err, errlen, "cannot read the shared credentials file %s%s%s%s: %s", path,
                     chosen ? " (for profile '" : "", chosen ? profile : "", chosen ? "')" : "", missing ? "no such file" : why);
            return -1;
        }
        return 0;
    }
    char *line = NULL; /* any length: session tokens run to kilobytes */
    size_t cap = 0;
    int in_section = 0, found = 0;
    char *ak = NULL, *sk = NULL, *token = NULL;
    while (getline(&line, &cap, f) >= 0) {
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
    explicit_bzero(text.data, text.len);
    mxpc_buf_free(&text);
    if (line)
        explicit_bzero(line, cap);
    free(line);
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
    static const mxpc_aws_credentials_provider_fn chain[] = {from_environment, from_web_identity, from_container,
                                                            from_shared_file, from_imds};
    for (size_t i = 0; rc == 0 && i < sizeof chain / sizeof chain[0]; i++)
        rc = chain[i](out, profile, err, errlen);
    if (rc < 0) {
        mxpc_aws_credentials_clear(out);
        return -1;
    }
    if (rc == 0) {
        snprintf(err, errlen, "no AWS credentials: none given, none in AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, "
                              "no web identity (AWS_WEB_IDENTITY_TOKEN_FILE), no container credentials "
                              "(AWS_CONTAINER_CREDENTIALS_FULL_URI), none in the shared credentials file, no instance "
                              "profile (IMDSv2)");
        return -1;
    }
    mxpc_redact_add(out->secret_key);
    mxpc_redact_add(out->session_token);
    mxpc_log(MXPC_LOG_DEBUG, "AWS credentials from %s (access key %s)", out->source, out->access_key);
    return 0;
}
