/* AWS beyond one service: the region, the credential chain and its cache
 * (aws_credentials.c), the temporary credentials it gets from STS
 * AssumeRoleWithWebIdentity (IRSA), the container credentials endpoint (EKS
 * Pod Identity, ECS) and the EC2 instance metadata service, and the RDS IAM
 * authentication token (aws_sts.c). The S3 client (s3.h) and the Lua module
 * mxpc.aws (mod_aws.c) use them.
 *
 * The pieces that build requests and read answers are pure functions, so
 * they are tested without a server; the HTTP exchange is one small function
 * (mxpc_aws_http). */
#ifndef MXPC_AWS_H
#define MXPC_AWS_H

#include <stddef.h>
#include <time.h>

#include "mxpc/buf.h"

/* --- region ------------------------------------------------------------------ */

/* The one region resolver (aws_sts.c): `given` when it is not NULL or "", else
 * AWS_REGION, else AWS_DEFAULT_REGION, else `fallback` (may be NULL). */
const char *mxpc_aws_region(const char *given, const char *fallback);

/* --- credentials (aws_credentials.c) ----------------------------------------------------------- */

enum mxpc_aws_source {
    MXPC_AWS_STATIC = 0,       /* explicit, environment, shared file: never expire */
    MXPC_AWS_WEB_IDENTITY = 1, /* STS AssumeRoleWithWebIdentity */
    MXPC_AWS_CONTAINER = 2,    /* the container credentials endpoint */
    MXPC_AWS_IMDS = 3,         /* the EC2 instance metadata service */
};

struct mxpc_aws_credentials {
    char *access_key;
    char *secret_key;
    char *session_token; /* NULL without temporary credentials */
    /* "explicit", "environment", "shared file (profile P)",
     * "web identity (role R)", "container credentials (URL)" */
    char source[320];
    char role_arn[256];  /* web identity: the role assumed, else "" */
    enum mxpc_aws_source kind;
    time_t expiration;   /* 0 = does not expire */
    time_t fetched;      /* when temporary credentials were obtained */
};

/* One link of the chain: 1 = found (out filled), 0 = not configured here,
 * -1 = configured but failed (message in err). */
typedef int (*mxpc_aws_credentials_provider_fn)(struct mxpc_aws_credentials *out, const char *profile, char *err,
                                                size_t errlen);

/* The chain, in the AWS SDKs' order: `explicit_creds` when it has an access
 * key (then the secret is required); AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY/
 * AWS_SESSION_TOKEN; web identity (AWS_WEB_IDENTITY_TOKEN_FILE + AWS_ROLE_ARN,
 * STS AssumeRoleWithWebIdentity); container credentials
 * (AWS_CONTAINER_CREDENTIALS_FULL_URI / _RELATIVE_URI); the shared
 * credentials file (AWS_SHARED_CREDENTIALS_FILE or ~/.aws/credentials,
 * section `profile` or AWS_PROFILE or "default"); the EC2 instance metadata service
 * (IMDSv2). Temporary credentials are
 * cached for the whole process and fetched again shortly before they expire.
 * Registers the secret key and the session token for redaction. Returns 0, or
 * -1 with "message" or "message\nhint" in err. */
int mxpc_aws_credentials_resolve(const struct mxpc_aws_credentials *explicit_creds, const char *profile,
                                 struct mxpc_aws_credentials *out, char *err, size_t errlen);
/* Temporary credentials close to their expiry (or past it) are replaced by
 * fresh ones from the same source; every holder shares one fetch. 0 (nothing
 * to do, or refreshed), -1 with a message as above. */
int mxpc_aws_credentials_refresh(struct mxpc_aws_credentials *c, char *err, size_t errlen);
/* Seconds before the expiry at which credentials count as expiring: a quarter
 * of their lifetime, at most 5 minutes. */
long mxpc_aws_credentials_margin(const struct mxpc_aws_credentials *c);
void mxpc_aws_credentials_copy(struct mxpc_aws_credentials *dst, const struct mxpc_aws_credentials *src);
void mxpc_aws_credentials_clear(struct mxpc_aws_credentials *c);


/* --- STS AssumeRoleWithWebIdentity ---------------------------------------- */

/* The form body of the request (Action, Version, RoleArn, RoleSessionName,
 * WebIdentityToken; DurationSeconds when > 0), values percent-encoded. */
void mxpc_sts_web_identity_body(struct mxpc_buf *out, const char *role_arn, const char *session_name,
                                const char *token, long duration_seconds);

/* Where STS is: AWS_ENDPOINT_URL_STS, else AWS_ENDPOINT_URL, else the
 * regional endpoint https://sts.<region>.amazonaws.com (AWS_REGION, then
 * AWS_DEFAULT_REGION), else the global https://sts.amazonaws.com.
 * malloc'ed. */
char *mxpc_sts_endpoint(void);

/* Reads an STS answer. 1: credentials in out (and the assumed role's ARN in
 * role_arn, when given); 0: an error answer, its Code and Message in code and
 * message; -1: neither (not XML, or no credentials in it). */
int mxpc_sts_parse_response(const char *xml, size_t len, struct mxpc_aws_credentials *out, char *code,
                            size_t codelen, char *message, size_t msglen);

/* --- small parsers ----------------------------------------------------------- */

/* "2026-12-01T05:00:00Z" (fraction and offset allowed) -> time_t. 0 or -1. */
int mxpc_aws_parse_time(const char *s, time_t *out);

/* The string value of `key` in a flat JSON object (or the first string of an
 * array value). 1 found, 0 not. */
int mxpc_json_string_field(const char *json, const char *key, char *out, size_t outlen);

/* Appends "name=value" (value percent-encoded) to a form body, '&' between fields. */
struct mxpc_buf;
void mxpc_form_field(struct mxpc_buf *out, const char *name, const char *value);

/* The claims of a JWT that matter in messages: iss, aud (first), sub. Empty
 * strings when the token cannot be read. Never verifies anything. */
struct mxpc_jwt_claims {
    char iss[256];
    char aud[256];
    char sub[256];
    long long exp;
};
void mxpc_jwt_claims(const char *token, struct mxpc_jwt_claims *out);

/* The container credentials answer (AccessKeyId, SecretAccessKey, Token,
 * Expiration). 0, or -1 with a message. */
int mxpc_aws_parse_container_json(const char *json, struct mxpc_aws_credentials *out, char *err, size_t errlen);

/* --- the providers (HTTP) ---------------------------------------------------- */

/* Each: 1 = credentials in out, 0 = not configured, -1 = configured but
 * failed: err holds "message\nhint" (the hint part may be missing). */
int mxpc_aws_web_identity_fetch(struct mxpc_aws_credentials *out, char *err, size_t errlen);
int mxpc_aws_container_fetch(struct mxpc_aws_credentials *out, char *err, size_t errlen);
/* The EC2 instance metadata service, IMDSv2 (a session token first), at
 * AWS_EC2_METADATA_SERVICE_ENDPOINT or http://169.254.169.254; off with
 * AWS_EC2_METADATA_DISABLED=true. No answer, or no role attached: 0 (quickly:
 * one attempt, 1 s to connect). */
int mxpc_aws_imds_fetch(struct mxpc_aws_credentials *out, char *err, size_t errlen);

/* One HTTP exchange for the providers: `headers` NULL-terminated "Name: value"
 * lines, `body` NULL for none. CA from SSL_CERT_FILE / SSL_CERT_DIR. Retries
 * connection failures and 5xx twice, unless MXPC_AWS_HTTP_QUICK (one attempt,
 * 1 s to connect, 3 s in all). Returns 0 with the status and the body (up to
 * 1 MiB), or -1 with a message. */
#define MXPC_AWS_HTTP_QUICK 1
int mxpc_aws_http(const char *method, const char *url, const char *const *headers, const char *body,
                  unsigned flags, struct mxpc_buf *response, long *status, char *err, size_t errlen);

/* --- RDS IAM ------------------------------------------------------------------ */

/* The RDS IAM authentication token for user@host:port: a presigned
 * "GET /?Action=connect&DBUser=user" to rds-db in `region`, valid 900
 * seconds from `now`, without the scheme:
 * host:port/?Action=connect&DBUser=...&X-Amz-Algorithm=...&X-Amz-Signature=...
 * malloc'ed, or NULL when it cannot be signed. */
char *mxpc_rds_auth_token(const struct mxpc_aws_credentials *c, const char *host, int port, const char *user,
                          const char *region, time_t now);

#endif
