/* Temporary AWS credentials from STS (web identity), the container
 * credentials endpoint and the EC2 instance metadata service, the RDS IAM
 * token, and the one region resolver. See include/mxpc/aws.h. */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "mxpc/aws.h"
#include "mxpc/http.h"
#include "mxpc/log.h"
#include "mxpc/sigv4.h"
#include "mxpc/xml.h"

static const char *env(const char *name)
{
    const char *v = getenv(name);
    return v && *v ? v : NULL;
}

/* --- STS request ---------------------------------------------------------- */

void mxpc_form_field(struct mxpc_buf *out, const char *name, const char *value)
{
    if (out->len)
        mxpc_buf_putc(out, '&');
    mxpc_buf_puts(out, name);
    mxpc_buf_putc(out, '=');
    mxpc_sigv4_uri_encode(out, value, strlen(value), 0);
}

void mxpc_sts_web_identity_body(struct mxpc_buf *out, const char *role_arn, const char *session_name,
                                const char *token, long duration_seconds)
{
    mxpc_form_field(out, "Action", "AssumeRoleWithWebIdentity");
    mxpc_form_field(out, "Version", "2011-06-15");
    mxpc_form_field(out, "RoleArn", role_arn);
    mxpc_form_field(out, "RoleSessionName", session_name);
    mxpc_form_field(out, "WebIdentityToken", token);
    if (duration_seconds > 0) {
        char d[32];
        snprintf(d, sizeof d, "%ld", duration_seconds);
        mxpc_form_field(out, "DurationSeconds", d);
    }
}

char *mxpc_sts_endpoint(void)
{
    const char *e = env("AWS_ENDPOINT_URL_STS");
    if (!e)
        e = env("AWS_ENDPOINT_URL");
    if (e)
        return mxpc_strdup(e);
    const char *region = mxpc_aws_region(NULL, NULL);
    struct mxpc_buf b = MXPC_BUF_INIT;
    if (region)
        mxpc_buf_printf(&b, "https://sts.%s.amazonaws.com", region);
    else
        mxpc_buf_puts(&b, "https://sts.amazonaws.com");
    return mxpc_buf_take(&b);
}

/* --- STS answer (xml.c) ------------------------------------------------------ */

struct sts_answer {
    char *access_key, *secret_key, *token, *expiration, *role_arn;
    char code[128], message[512];
};

static void keep(char **slot, const char *text)
{
    free(*slot);
    *slot = mxpc_strdup(text);
}

static void sts_element(void *ud, const char *name, const char *parent, const char *t)
{
    struct sts_answer *a = ud;
    if (strcmp(name, "AccessKeyId") == 0)
        keep(&a->access_key, t);
    else if (strcmp(name, "SecretAccessKey") == 0)
        keep(&a->secret_key, t);
    else if (strcmp(name, "SessionToken") == 0)
        keep(&a->token, t);
    else if (strcmp(name, "Expiration") == 0)
        keep(&a->expiration, t);
    else if (strcmp(name, "Arn") == 0 && strcmp(parent, "AssumedRoleUser") == 0)
        keep(&a->role_arn, t);
    else if (strcmp(name, "Code") == 0)
        snprintf(a->code, sizeof a->code, "%s", t);
    else if (strcmp(name, "Message") == 0)
        snprintf(a->message, sizeof a->message, "%s", t);
}

int mxpc_sts_parse_response(const char *xml, size_t len, struct mxpc_aws_credentials *out, char *code,
                            size_t codelen, char *message, size_t msglen)
{
    struct sts_answer a;
    memset(&a, 0, sizeof a);
    int ok = mxpc_xml_each(xml, len, sts_element, &a) == 0;
    int rc = -1;
    time_t exp = 0;
    if (ok && a.access_key && a.secret_key && a.expiration && mxpc_aws_parse_time(a.expiration, &exp) == 0) {
        memset(out, 0, sizeof *out);
        out->access_key = a.access_key;
        out->secret_key = a.secret_key;
        out->session_token = a.token && *a.token ? a.token : NULL;
        if (!out->session_token)
            free(a.token);
        out->expiration = exp;
        snprintf(out->role_arn, sizeof out->role_arn, "%s", a.role_arn ? a.role_arn : "");
        a.access_key = a.secret_key = a.token = NULL;
        rc = 1;
    } else if (ok && a.code[0]) {
        snprintf(code, codelen, "%s", a.code);
        snprintf(message, msglen, "%s", a.message);
        rc = 0;
    }
    free(a.access_key);
    if (a.secret_key)
        memset(a.secret_key, 0, strlen(a.secret_key));
    free(a.secret_key);
    free(a.token);
    free(a.expiration);
    free(a.role_arn);
    return rc;
}

/* --- small parsers --------------------------------------------------------- */

int mxpc_aws_parse_time(const char *s, time_t *out)
{
    struct tm tm;
    memset(&tm, 0, sizeof tm);
    int n = 0;
    if (sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d%n", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour, &tm.tm_min,
               &tm.tm_sec, &n) != 6)
        return -1;
    const char *rest = s + n;
    if (*rest == '.')
        for (rest++; isdigit((unsigned char)*rest); rest++) {
        }
    long offset = 0;
    if (*rest == '+' || *rest == '-') {
        int hh = 0, mm = 0;
        if (sscanf(rest + 1, "%2d:%2d", &hh, &mm) != 2)
            return -1;
        offset = (*rest == '-' ? -1 : 1) * (hh * 3600L + mm * 60L);
    } else if (*rest != 'Z' && *rest != 'z' && *rest != '\0') {
        return -1;
    }
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    time_t t = timegm(&tm);
    if (t == (time_t)-1)
        return -1;
    *out = t - offset;
    return 0;
}

int mxpc_json_string_field(const char *json, const char *key, char *out, size_t outlen)
{
    size_t klen = strlen(key);
    for (const char *p = json; (p = strchr(p, '"')) != NULL; p++) {
        if (strncmp(p + 1, key, klen) != 0 || p[1 + klen] != '"')
            continue;
        const char *v = p + klen + 2;
        while (isspace((unsigned char)*v))
            v++;
        if (*v++ != ':')
            continue;
        while (isspace((unsigned char)*v))
            v++;
        if (*v == '[') /* an array: its first string */
            for (v++; isspace((unsigned char)*v); v++) {
            }
        if (*v != '"')
            return 0;
        size_t n = 0;
        for (v++; *v && *v != '"'; v++) {
            char c = *v;
            if (c == '\\' && v[1]) {
                v++;
                c = *v == 'n'   ? '\n'
                    : *v == 't' ? '\t'
                    : *v == 'r' ? '\r'
                    : *v == 'b' ? '\b'
                    : *v == 'f' ? '\f'
                    : *v == 'u' ? '?'
                                : *v;
                if (*v == 'u')
                    for (int i = 0; i < 4 && isxdigit((unsigned char)v[1]); i++)
                        v++;
            }
            if (n + 1 < outlen)
                out[n++] = c;
        }
        if (outlen)
            out[n] = '\0';
        return *v == '"';
    }
    return 0;
}

static int b64url_value(int c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '-' || c == '+')
        return 62;
    if (c == '_' || c == '/')
        return 63;
    return -1;
}

void mxpc_jwt_claims(const char *token, struct mxpc_jwt_claims *out)
{
    memset(out, 0, sizeof *out);
    const char *dot = token ? strchr(token, '.') : NULL;
    if (!dot)
        return;
    const char *end = strchr(dot + 1, '.');
    if (!end)
        return;
    struct mxpc_buf json = MXPC_BUF_INIT;
    unsigned acc = 0;
    int bits = 0;
    for (const char *p = dot + 1; p < end; p++) {
        int v = b64url_value((unsigned char)*p);
        if (v < 0)
            break;
        acc = (acc << 6) | (unsigned)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            mxpc_buf_putc(&json, (char)((acc >> bits) & 0xff));
        }
    }
    mxpc_buf_puts(&json, "");
    mxpc_json_string_field(json.data, "iss", out->iss, sizeof out->iss);
    mxpc_json_string_field(json.data, "aud", out->aud, sizeof out->aud);
    mxpc_json_string_field(json.data, "sub", out->sub, sizeof out->sub);
    const char *exp = strstr(json.data, "\"exp\"");
    if (exp && (exp = strchr(exp, ':')))
        out->exp = strtoll(exp + 1, NULL, 10);
    mxpc_buf_free(&json);
}

int mxpc_aws_parse_container_json(const char *json, struct mxpc_aws_credentials *out, char *err, size_t errlen)
{
    char ak[256], sk[256], token[4096], exp[64];
    int have_token = mxpc_json_string_field(json, "Token", token, sizeof token);
    if (!mxpc_json_string_field(json, "AccessKeyId", ak, sizeof ak) ||
        !mxpc_json_string_field(json, "SecretAccessKey", sk, sizeof sk)) {
        char code[128] = "", message[256] = "";
        if (!mxpc_json_string_field(json, "code", code, sizeof code))
            mxpc_json_string_field(json, "Code", code, sizeof code);
        if (!mxpc_json_string_field(json, "message", message, sizeof message))
            mxpc_json_string_field(json, "Message", message, sizeof message);
        snprintf(err, errlen, "the answer holds no AccessKeyId and SecretAccessKey%s%s%s%s", code[0] ? ": " : "",
                 code, message[0] ? " " : "", message);
        return -1;
    }
    memset(out, 0, sizeof *out);
    if (mxpc_json_string_field(json, "Expiration", exp, sizeof exp) && mxpc_aws_parse_time(exp, &out->expiration)) {
        snprintf(err, errlen, "the answer's Expiration '%s' is not a time", exp);
        return -1;
    }
    out->access_key = mxpc_strdup(ak);
    out->secret_key = mxpc_strdup(sk);
    out->session_token = have_token && token[0] ? mxpc_strdup(token) : NULL;
    memset(sk, 0, sizeof sk);
    memset(token, 0, sizeof token);
    return 0;
}

/* --- HTTP ------------------------------------------------------------------ */

int mxpc_aws_http(const char *method, const char *url, const char *const *headers, const char *body,
                  unsigned flags, struct mxpc_buf *response, long *status, char *err, size_t errlen)
{
    int quick = (flags & MXPC_AWS_HTTP_QUICK) != 0;
    struct mxpc_http_request r = {
        .method = method,
        .url = url,
        .headers = headers,
        .body = body,
        .body_len = body ? strlen(body) : 0,
        .attempts = quick ? 1 : 3,
        .connect_timeout = quick ? 1 : 10,
        .timeout = quick ? 3 : 60,
    };
    return mxpc_http_request(&r, response, status, err, errlen);
}

/* --- web identity ------------------------------------------------------------ */

static int read_token(const char *path, const char *what, struct mxpc_buf *out, char *err, size_t errlen)
{
    char why[160];
    if (mxpc_buf_read_file(out, path, MXPC_TOKEN_FILE_MAX, why, sizeof why) != 0) {
        snprintf(err, errlen, "cannot read %s %s: %s\ncheck that the service account token is mounted there", what,
                 path, why);
        return -1;
    }
    mxpc_buf_puts(out, "");
    while (out->len && isspace((unsigned char)out->data[out->len - 1]))
        out->data[--out->len] = '\0';
    if (!out->len) {
        snprintf(err, errlen, "%s %s is empty", what, path);
        return -1;
    }
    mxpc_redact_add(out->data);
    return 0;
}

/* The message of a refusal by STS, with what to check. */
static void sts_refusal(char *err, size_t errlen, const char *role, const char *file, const char *token,
                        const char *code, const char *message, long status)
{
    struct mxpc_jwt_claims cl;
    mxpc_jwt_claims(token, &cl);
    const char *host = strncmp(cl.iss, "https://", 8) == 0 ? cl.iss + 8 : cl.iss;
    char expired[96] = "";
    if (cl.exp && cl.exp < (long long)time(NULL))
        snprintf(expired, sizeof expired, " (the token expired %lld s ago)", (long long)time(NULL) - cl.exp);
    if (strcmp(code, "AccessDenied") == 0 || strcmp(code, "InvalidIdentityToken") == 0 ||
        strcmp(code, "ExpiredTokenException") == 0 || strcmp(code, "IDPRejectedClaim") == 0)
        snprintf(err, errlen,
                 "STS refused AssumeRoleWithWebIdentity for role %s (%s: %s); the token in %s has issuer %s, "
                 "audience %s, subject %s%s\n"
                 "check the role's trust policy: its Federated principal must be the OIDC provider "
                 "oidc-provider/%s, with the conditions \"%s:aud\": \"%s\" and \"%s:sub\": \"%s\" "
                 "(and the service account's eks.amazonaws.com/role-arn annotation must name this role)",
                 role, code, message, file, cl.iss[0] ? cl.iss : "(unreadable)", cl.aud[0] ? cl.aud : "(none)",
                 cl.sub[0] ? cl.sub : "(none)", expired, host, host, cl.aud[0] ? cl.aud : "sts.amazonaws.com", host,
                 cl.sub);
    else
        snprintf(err, errlen, "STS AssumeRoleWithWebIdentity for role %s failed: HTTP %ld %s%s%s", role, status,
                 code, message[0] ? ": " : "", message);
}

int mxpc_aws_web_identity_fetch(struct mxpc_aws_credentials *out, char *err, size_t errlen)
{
    const char *file = env("AWS_WEB_IDENTITY_TOKEN_FILE"), *role = env("AWS_ROLE_ARN");
    if (!file)
        return 0;
    if (!role) {
        snprintf(err, errlen, "AWS_WEB_IDENTITY_TOKEN_FILE is set but AWS_ROLE_ARN is not\n"
                              "set AWS_ROLE_ARN to the role to assume (EKS sets both from the service account's "
                              "eks.amazonaws.com/role-arn annotation)");
        return -1;
    }
    struct mxpc_buf token = MXPC_BUF_INIT, body = MXPC_BUF_INIT, response = MXPC_BUF_INIT;
    char session[96];
    if (env("AWS_ROLE_SESSION_NAME"))
        snprintf(session, sizeof session, "%s", env("AWS_ROLE_SESSION_NAME"));
    else
        snprintf(session, sizeof session, "mxpc-data-migration-%lld", (long long)time(NULL));
    char *endpoint = mxpc_sts_endpoint();
    int rc = -1;
    if (read_token(file, "the web identity token file", &token, err, errlen) != 0)
        goto out;
    mxpc_sts_web_identity_body(&body, role, session, token.data, 0);
    mxpc_redact_add(body.data);
    const char *headers[] = {"Content-Type: application/x-www-form-urlencoded; charset=utf-8",
                             "Accept: application/xml", NULL};
    long status = 0;
    mxpc_log(MXPC_LOG_DEBUG, "AWS credentials: web identity, STS AssumeRoleWithWebIdentity at %s for role %s "
                             "(token file %s, session %s)",
             endpoint, role, file, session);
    char herr[512];
    time_t asked = time(NULL);
    if (mxpc_aws_http("POST", endpoint, headers, body.data, 0, &response, &status, herr, sizeof herr) != 0) {
        snprintf(err, errlen, "web identity: cannot reach STS: %s\ncheck AWS_REGION, or AWS_ENDPOINT_URL_STS",
                 herr);
        goto out;
    }
    char code[128] = "", message[512] = "";
    int parsed = mxpc_sts_parse_response(response.data, response.len, out, code, sizeof code, message,
                                         sizeof message);
    if (parsed == 1 && status == 200) {
        out->fetched = asked;
        snprintf(out->role_arn, sizeof out->role_arn, "%s", role);
        snprintf(out->source, sizeof out->source, "web identity (role %s)", role);
        rc = 1;
    } else {
        if (parsed == 1)
            mxpc_aws_credentials_clear(out);
        if (parsed != 0)
            snprintf(code, sizeof code, "%s", "unreadable answer");
        sts_refusal(err, errlen, role, file, token.data, code, message, status);
    }
out:
    free(endpoint);
    if (body.data)
        memset(body.data, 0, body.len);
    mxpc_buf_free(&body);
    mxpc_buf_free(&token);
    mxpc_buf_free(&response);
    return rc;
}

/* --- container credentials ----------------------------------------------------- */

/* http is allowed to loopback and to the ECS and EKS link-local agents only,
 * as the AWS SDKs do. */
static int allowed_container_url(const char *url)
{
    if (strncmp(url, "https://", 8) == 0)
        return 1;
    if (strncmp(url, "http://", 7) != 0)
        return 0;
    const char *h = url + 7;
    static const char *const hosts[] = {"127.", "localhost", "[::1]", "169.254.170.2", "169.254.170.23",
                                        "[fd00:ec2::23]"};
    for (size_t i = 0; i < sizeof hosts / sizeof hosts[0]; i++) {
        size_t n = strlen(hosts[i]);
        if (strncmp(h, hosts[i], n) == 0 && (hosts[i][n - 1] == '.' || strchr(":/", h[n]) || !h[n]))
            return 1;
    }
    return 0;
}

int mxpc_aws_container_fetch(struct mxpc_aws_credentials *out, char *err, size_t errlen)
{
    struct mxpc_buf url = MXPC_BUF_INIT, auth = MXPC_BUF_INIT, header = MXPC_BUF_INIT, response = MXPC_BUF_INIT;
    if (env("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI"))
        mxpc_buf_printf(&url, "http://169.254.170.2%s", env("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI"));
    else if (env("AWS_CONTAINER_CREDENTIALS_FULL_URI"))
        mxpc_buf_puts(&url, env("AWS_CONTAINER_CREDENTIALS_FULL_URI"));
    else
        return 0;
    int rc = -1;
    if (!allowed_container_url(url.data)) {
        snprintf(err, errlen, "AWS_CONTAINER_CREDENTIALS_FULL_URI %s: plain http is allowed only to a loopback "
                              "address or the EKS/ECS agent (169.254.170.23, 169.254.170.2)", url.data);
        goto out;
    }
    const char *file = env("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE");
    if (file) {
        if (read_token(file, "the container authorization token file", &auth, err, errlen) != 0)
            goto out;
    } else if (env("AWS_CONTAINER_AUTHORIZATION_TOKEN")) {
        mxpc_buf_puts(&auth, env("AWS_CONTAINER_AUTHORIZATION_TOKEN"));
        mxpc_redact_add(auth.data);
    }
    if (auth.len)
        mxpc_buf_printf(&header, "Authorization: %s", auth.data);
    const char *headers[] = {"Accept: application/json", auth.len ? header.data : NULL, NULL};
    long status = 0;
    char herr[512];
    mxpc_log(MXPC_LOG_DEBUG, "AWS credentials: container credentials at %s", url.data);
    time_t asked = time(NULL);
    if (mxpc_aws_http("GET", url.data, headers, NULL, 0, &response, &status, herr, sizeof herr) != 0) {
        snprintf(err, errlen, "container credentials: %s\ncheck AWS_CONTAINER_CREDENTIALS_FULL_URI "
                              "(EKS Pod Identity: is the eks-pod-identity-agent running on the node?)", herr);
        goto out;
    }
    char perr[384];
    if (status != 200 || mxpc_aws_parse_container_json(response.data, out, perr, sizeof perr) != 0) {
        if (status == 200)
            snprintf(err, errlen, "container credentials from %s: %s", url.data, perr);
        else
            snprintf(err, errlen, "container credentials from %s: HTTP %ld: %.200s\n%s", url.data, status,
                     response.data,
                     status == 401 || status == 403
                         ? "check AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE and the pod identity association of "
                           "the service account"
                         : "");
        goto out;
    }
    out->fetched = asked;
    snprintf(out->source, sizeof out->source, "container credentials (%s)", url.data);
    rc = 1;
out:
    mxpc_buf_free(&url);
    mxpc_buf_free(&auth);
    if (header.data)
        memset(header.data, 0, header.len);
    mxpc_buf_free(&header);
    mxpc_buf_free(&response);
    return rc;
}

/* --- EC2 instance metadata (IMDSv2) ------------------------------------------------ */

int mxpc_aws_imds_fetch(struct mxpc_aws_credentials *out, char *err, size_t errlen)
{
    const char *off = env("AWS_EC2_METADATA_DISABLED");
    if (off && strcasecmp(off, "true") == 0)
        return 0;
    const char *base = env("AWS_EC2_METADATA_SERVICE_ENDPOINT");
    if (!base)
        base = "http://169.254.169.254";
    size_t blen = strlen(base);
    while (blen > 0 && base[blen - 1] == '/')
        blen--;
    struct mxpc_buf url = MXPC_BUF_INIT, token = MXPC_BUF_INIT, header = MXPC_BUF_INIT, role = MXPC_BUF_INIT;
    long status = 0;
    char herr[512];
    int rc = 0;
    mxpc_buf_printf(&url, "%.*s/latest/api/token", (int)blen, base);
    const char *ttl[] = {"X-aws-ec2-metadata-token-ttl-seconds: 21600", NULL};
    if (mxpc_aws_http("PUT", url.data, ttl, "", MXPC_AWS_HTTP_QUICK, &token, &status, herr, sizeof herr) != 0 ||
        status != 200 || !token.len) {
        mxpc_log(MXPC_LOG_DEBUG, "AWS credentials: no instance metadata service at %.*s (%s)", (int)blen, base,
                 status ? "no session token" : herr);
        goto out;
    }
    mxpc_redact_add(token.data);
    mxpc_buf_printf(&header, "X-aws-ec2-metadata-token: %s", token.data);
    const char *auth[] = {header.data, NULL};
    url.len = 0;
    mxpc_buf_printf(&url, "%.*s/latest/meta-data/iam/security-credentials/", (int)blen, base);
    if (mxpc_aws_http("GET", url.data, auth, NULL, MXPC_AWS_HTTP_QUICK, &role, &status, herr, sizeof herr) != 0 ||
        status != 200 || !role.len) {
        mxpc_log(MXPC_LOG_DEBUG, "AWS credentials: the instance has no IAM role (%s)", status ? "HTTP" : herr);
        goto out;
    }
    role.data[strcspn(role.data, "\r\n")] = '\0';
    struct mxpc_buf creds = MXPC_BUF_INIT;
    mxpc_buf_puts(&url, role.data);
    time_t asked = time(NULL);
    rc = -1;
    char perr[384];
    if (mxpc_aws_http("GET", url.data, auth, NULL, MXPC_AWS_HTTP_QUICK, &creds, &status, herr, sizeof herr) != 0)
        snprintf(err, errlen, "instance metadata credentials of role %s: %s", role.data, herr);
    else if (status != 200 || mxpc_aws_parse_container_json(creds.data, out, perr, sizeof perr) != 0)
        snprintf(err, errlen, "instance metadata credentials of role %s: %s", role.data,
                 status != 200 ? "no answer" : perr);
    else {
        out->fetched = asked;
        snprintf(out->source, sizeof out->source, "instance profile (role %s, IMDSv2)", role.data);
        rc = 1;
    }
    mxpc_buf_free(&creds);
out:
    mxpc_buf_free(&url);
    mxpc_buf_free(&token);
    mxpc_buf_free(&header);
    mxpc_buf_free(&role);
    return rc;
}

/* --- RDS IAM token ------------------------------------------------------------- */

char *mxpc_rds_auth_token(const struct mxpc_aws_credentials *c, const char *host, int port, const char *user,
                          const char *region, time_t now)
{
    struct mxpc_buf authority = MXPC_BUF_INIT, query = MXPC_BUF_INIT;
    mxpc_buf_printf(&authority, "%s:%d", host, port);
    mxpc_buf_puts(&query, "Action=connect&DBUser=");
    mxpc_sigv4_uri_encode(&query, user, strlen(user), 0);
    struct mxpc_sigv4_header h = {"host", authority.data};
    struct mxpc_sigv4_request req = {"GET", "/", query.data, &h, 1, NULL};
    struct mxpc_sigv4_signer s = {
        .access_key = c->access_key,
        .secret_key = c->secret_key,
        .session_token = c->session_token,
        .region = region,
        .service = "rds-db",
        .time = now,
        .flags = MXPC_SIGV4_NORMALIZE_PATH,
    };
    struct mxpc_sigv4_result r = MXPC_SIGV4_RESULT_INIT;
    char *token = NULL;
    if (mxpc_sigv4_presign(&s, &req, 900, &r) == 0) {
        struct mxpc_buf t = MXPC_BUF_INIT;
        mxpc_buf_printf(&t, "%s/?%s", authority.data, r.query.data);
        token = mxpc_buf_take(&t);
    }
    mxpc_sigv4_result_free(&r);
    mxpc_buf_free(&authority);
    mxpc_buf_free(&query);
    return token;
}

/* --- region ------------------------------------------------------------------ */

const char *mxpc_aws_region(const char *given, const char *fallback)
{
    if (given && *given)
        return given;
    const char *r = env("AWS_REGION");
    if (!r)
        r = env("AWS_DEFAULT_REGION");
    return r ? r : fallback;
}
