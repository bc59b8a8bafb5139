/* Logging core and redaction. See include/mxpc/log.h. */
#include "mxpc/log.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static enum mxpc_log_level current_level = MXPC_LOG_INFO;
static enum mxpc_log_format current_format = MXPC_LOG_TEXT;
static FILE *log_stream;

static const char *const level_names[] = {"error", "warn", "info", "debug", "trace"};

void mxpc_log_set_level(enum mxpc_log_level level) { current_level = level; }
enum mxpc_log_level mxpc_log_get_level(void) { return current_level; }
void mxpc_log_set_format(enum mxpc_log_format format) { current_format = format; }
enum mxpc_log_format mxpc_log_get_format(void) { return current_format; }
void mxpc_log_set_stream(FILE *stream) { log_stream = stream; }

int mxpc_log_level_from_name(const char *name)
{
    for (int i = 0; i <= MXPC_LOG_TRACE; i++)
        if (strcmp(name, level_names[i]) == 0)
            return i;
    return -1;
}

const char *mxpc_log_level_name(enum mxpc_log_level level)
{
    return level <= MXPC_LOG_TRACE ? level_names[level] : "?";
}

/* --- redaction ------------------------------------------------------------ */

/* A registered secret with its KMP failure table, made once when it is
 * registered, so that every redaction finds all its occurrences in one pass. */
struct secret {
    char *text;
    size_t len;
    size_t *fail; /* fail[i]: length of the longest proper border of text[0..i] */
};

static struct secret *secrets;
static size_t nsecrets;
static size_t redact_work; /* steps taken by the secret search, for tests */

size_t mxpc_redact_work(void) { return redact_work; }

static void *checked(void *p)
{
    if (!p) {
        fputs("error: out of memory\n", stderr);
        abort();
    }
    return p;
}

void mxpc_redact_add(const char *secret)
{
    if (!secret || !*secret)
        return;
    for (size_t i = 0; i < nsecrets; i++)
        if (strcmp(secrets[i].text, secret) == 0)
            return;
    struct secret s = {.text = checked(strdup(secret)), .len = strlen(secret)};
    s.fail = checked(malloc(s.len * sizeof *s.fail));
    s.fail[0] = 0;
    for (size_t i = 1, k = 0; i < s.len; i++) {
        while (k > 0 && s.text[i] != s.text[k])
            k = s.fail[k - 1];
        if (s.text[i] == s.text[k])
            k++;
        s.fail[i] = k;
    }
    secrets = checked(realloc(secrets, (nsecrets + 1) * sizeof *secrets));
    secrets[nsecrets++] = s;
}

void mxpc_redact_clear(void)
{
    for (size_t i = 0; i < nsecrets; i++) {
        free(secrets[i].text);
        free(secrets[i].fail);
    }
    free(secrets);
    secrets = NULL;
    nsecrets = 0;
}

#define MASK "***"

/* Length of the value that starts at p: up to white space, quote, '&' or ','. */
static size_t value_len(const char *p)
{
    size_t n = 0;
    while (p[n] && !isspace((unsigned char)p[n]) && !strchr("\"'&,;", p[n]))
        n++;
    return n;
}

static int starts_with_ci(const char *p, const char *prefix)
{
    return strncasecmp(p, prefix, strlen(prefix)) == 0;
}

/* Keys whose value is a credential, as in "password=...", "X-Amz-Signature=..." */
static const char *const secret_keys[] = {
    "password=",        "password:",       "passwd=",         "x-amz-signature=", "x-amz-security-token=",
    "x-amz-credential=", "secret_access_key=", "secretaccesskey=", "token=",           NULL,
};

/* Masks credential patterns in place of the source text, appending to out. */
static void mask_patterns(struct mxpc_buf *out, const char *s)
{
    const char *p = s;
    while (*p) {
        int matched = 0;
        for (const char *const *k = secret_keys; *k; k++) {
            /* only at a word start, so "mypassword=" still matches but "xpassword" does not matter */
            if (starts_with_ci(p, *k)) {
                size_t klen = strlen(*k);
                mxpc_buf_append(out, p, klen);
                p += klen;
                size_t vlen = value_len(p);
                if (vlen) {
                    mxpc_buf_puts(out, MASK);
                    p += vlen;
                }
                matched = 1;
                break;
            }
        }
        if (matched)
            continue;
        if (starts_with_ci(p, "authorization:")) {
            /* the whole header value up to the end of the line */
            mxpc_buf_append(out, p, 14);
            p += 14;
            while (*p == ' ')
                mxpc_buf_putc(out, *p++);
            mxpc_buf_puts(out, MASK);
            while (*p && *p != '\n' && *p != '\r')
                p++;
            continue;
        }
        if (p[0] == ':' && p[1] == '/' && p[2] == '/') {
            /* scheme://user:password@host -> scheme://user:***@host */
            const char *auth = p + 3;
            size_t n = strcspn(auth, "/@ \t\n\"'");
            if (auth[n] == '@') {
                const char *colon = memchr(auth, ':', n);
                if (colon) {
                    mxpc_buf_append(out, p, (size_t)(colon + 1 - p));
                    mxpc_buf_puts(out, MASK);
                    p = auth + n;
                    continue;
                }
            }
        }
        mxpc_buf_putc(out, *p++);
    }
}

/* Adds +1 at the start and -1 past the end of every occurrence of `s` in
 * text[0..n) to `depth` (Knuth-Morris-Pratt: at most 2n + len steps). */
static void mark_occurrences(const struct secret *s, const char *text, size_t n, int *depth)
{
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        while (k > 0 && text[i] != s->text[k]) {
            k = s->fail[k - 1];
            redact_work++;
        }
        redact_work++;
        if (text[i] == s->text[k])
            k++;
        if (k == s->len) {
            depth[i + 1 - s->len]++;
            depth[i + 1]--;
            k = s->fail[k - 1];
        }
    }
}

/* Every byte of the original text that lies inside an occurrence of a
 * registered secret is masked, and a run of such bytes becomes one mask:
 * all occurrences are found in the original text first and the output is
 * built once, so a secret that is part of the mask (or of another secret)
 * can neither loop nor leave a piece behind. Time: linear in the text for
 * each secret. */
static void mask_secrets(struct mxpc_buf *out, const char *text)
{
    size_t n = strlen(text);
    if (nsecrets == 0 || n == 0) {
        mxpc_buf_append(out, text, n);
        return;
    }
    int *depth = checked(calloc(n + 1, sizeof *depth));
    for (size_t i = 0; i < nsecrets; i++)
        if (secrets[i].len <= n)
            mark_occurrences(&secrets[i], text, n, depth);
    int covered = 0;
    for (size_t i = 0; i < n; i++) {
        int was = covered;
        covered += depth[i];
        if (!covered)
            mxpc_buf_putc(out, text[i]);
        else if (!was)
            mxpc_buf_puts(out, MASK);
    }
    free(depth);
}

char *mxpc_redact(const char *text)
{
    if (!text)
        text = "";
    /* registered secrets first, then credential patterns, each one pass */
    struct mxpc_buf masked = MXPC_BUF_INIT;
    mxpc_buf_puts(&masked, "");
    mask_secrets(&masked, text);
    struct mxpc_buf a = MXPC_BUF_INIT;
    mxpc_buf_puts(&a, "");
    mask_patterns(&a, masked.data);
    mxpc_buf_free(&masked);
    return mxpc_buf_take(&a);
}

/* --- escaping ------------------------------------------------------------- */

/* What the character at p (n bytes left) is for a terminal or a log reader:
 * its length is stored in *len and its code point in *cp. */
enum char_kind {
    CH_PLAIN,   /* printable: copied as it is */
    CH_CONTROL, /* C0 control or DEL: moves the cursor, starts escape sequences, ends lines */
    CH_INVALID, /* a byte that does not start a valid UTF-8 sequence (*len = 1) */
    CH_HIDDEN,  /* a valid code point that a terminal acts on or hides: C1 controls
                 * (U+0080-U+009F, CSI among them), bidirectional overrides and
                 * isolates, zero-width characters, line and paragraph separators */
};

static enum char_kind classify_char(const unsigned char *p, size_t n, size_t *len, uint32_t *cp)
{
    *len = 1;
    *cp = p[0];
    if (p[0] < 0x20 || p[0] == 0x7f)
        return CH_CONTROL;
    if (p[0] < 0x80)
        return CH_PLAIN;
    size_t need;
    uint32_t c, min;
    if (p[0] >= 0xc2 && p[0] <= 0xdf) {
        need = 2, c = p[0] & 0x1f, min = 0x80;
    } else if (p[0] >= 0xe0 && p[0] <= 0xef) {
        need = 3, c = p[0] & 0x0f, min = 0x800;
    } else if (p[0] >= 0xf0 && p[0] <= 0xf4) {
        need = 4, c = p[0] & 0x07, min = 0x10000;
    } else {
        return CH_INVALID;
    }
    if (n < need)
        return CH_INVALID;
    for (size_t i = 1; i < need; i++) {
        if ((p[i] & 0xc0) != 0x80)
            return CH_INVALID;
        c = (c << 6) | (p[i] & 0x3f);
    }
    if (c < min || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff))
        return CH_INVALID;
    *len = need;
    *cp = c;
    if (c <= 0x9f || c == 0x061c || (c >= 0x200b && c <= 0x200f) || (c >= 0x2028 && c <= 0x202e) ||
        (c >= 0x2060 && c <= 0x2069) || c == 0xfeff)
        return CH_HIDDEN;
    return CH_PLAIN;
}

/* The escaping: for text (ESC_TEXT), inside double quotes (ESC_QUOTED: quotes
 * and backslashes are escaped too), or inside a JSON string literal
 * (ESC_JSON: quoted, with JSON's \uNNNN forms, and a byte that is not UTF-8,
 * which JSON cannot carry, as the text \xNN as in text output). */
enum escape_mode { ESC_TEXT, ESC_QUOTED, ESC_JSON };

static void escape_into(struct mxpc_buf *out, const char *s, size_t n, enum escape_mode mode)
{
    int json = mode == ESC_JSON;
    const unsigned char *p = (const unsigned char *)s, *end = p + n;
    while (p < end) {
        size_t len;
        uint32_t cp;
        switch (classify_char(p, (size_t)(end - p), &len, &cp)) {
        case CH_PLAIN:
            if (mode != ESC_TEXT && (*p == '"' || *p == '\\'))
                mxpc_buf_putc(out, '\\');
            mxpc_buf_append(out, p, len);
            break;
        case CH_CONTROL:
            if (*p == '\n')
                mxpc_buf_puts(out, "\\n");
            else if (*p == '\r')
                mxpc_buf_puts(out, "\\r");
            else if (*p == '\t')
                mxpc_buf_puts(out, "\\t");
            else
                mxpc_buf_printf(out, json ? "\\u%04x" : "\\x%02x", *p);
            break;
        case CH_INVALID: mxpc_buf_printf(out, json ? "\\\\x%02x" : "\\x%02x", *p); break;
        case CH_HIDDEN: mxpc_buf_printf(out, json ? "\\u%04x" : "\\u{%x}", (unsigned)cp); break;
        }
        p += len;
    }
}

void mxpc_escape(struct mxpc_buf *out, const char *s, size_t n) { escape_into(out, s, n, ESC_TEXT); }

void mxpc_escape_quoted(struct mxpc_buf *out, const char *s, size_t n)
{
    mxpc_buf_putc(out, '"');
    escape_into(out, s, n, ESC_QUOTED);
    mxpc_buf_putc(out, '"');
}

char *mxpc_escape_string(const char *s)
{
    struct mxpc_buf out = MXPC_BUF_INIT;
    mxpc_buf_puts(&out, "");
    mxpc_escape(&out, s ? s : "", s ? strlen(s) : 0);
    return mxpc_buf_take(&out);
}

char *mxpc_escape_lines(const char *s, const char *indent)
{
    struct mxpc_buf out = MXPC_BUF_INIT;
    mxpc_buf_puts(&out, "");
    size_t n = s ? strlen(s) : 0;
    while (n > 0 && s[n - 1] == '\n')
        n--;
    for (const char *p = s, *end = s + n; p && p <= end;) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        escape_into(&out, p, nl ? (size_t)(nl - p) : (size_t)(end - p), ESC_TEXT);
        if (!nl)
            break;
        mxpc_buf_putc(&out, '\n');
        mxpc_buf_puts(&out, indent);
        p = nl + 1;
    }
    return mxpc_buf_take(&out);
}

void mxpc_json_quote(struct mxpc_buf *out, const char *s)
{
    mxpc_buf_putc(out, '"');
    escape_into(out, s, strlen(s), ESC_JSON);
    mxpc_buf_putc(out, '"');
}

/* --- output --------------------------------------------------------------- */

/* A text value is one word (escaped) unless it is empty or holds a space, a
 * quote or '=': then it is quoted (JSON rules), so a line stays one parseable
 * line. */
static void text_value(struct mxpc_buf *out, const char *v)
{
    if (*v && !strpbrk(v, " \"="))
        mxpc_escape(out, v, strlen(v));
    else
        mxpc_json_quote(out, v);
}

/* Whether s is a number as JSON writes one: -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)? */
static int json_number(const char *s)
{
    const char *p = s;
    if (*p == '-')
        p++;
    if (*p == '0')
        p++;
    else if (*p >= '1' && *p <= '9')
        while (isdigit((unsigned char)*p))
            p++;
    else
        return 0;
    if (*p == '.') {
        if (!isdigit((unsigned char)*++p))
            return 0;
        while (isdigit((unsigned char)*p))
            p++;
    }
    if (*p == 'e' || *p == 'E') {
        p++;
        if (*p == '+' || *p == '-')
            p++;
        if (!isdigit((unsigned char)*p))
            return 0;
        while (isdigit((unsigned char)*p))
            p++;
    }
    return *p == '\0';
}

static void json_value(struct mxpc_buf *out, const struct mxpc_log_field *f, const char *value)
{
    switch (f->kind) {
    case MXPC_LOG_NUMBER: mxpc_buf_puts(out, json_number(value) ? value : "null"); break;
    case MXPC_LOG_BOOLEAN: mxpc_buf_puts(out, strcmp(value, "true") == 0 ? "true" : "false"); break;
    case MXPC_LOG_NULL: mxpc_buf_puts(out, "null"); break;
    default: mxpc_json_quote(out, value); break;
    }
}

/* --- the status line ------------------------------------------------------ */

static char *status_text; /* shown now, redacted and escaped; NULL when none */

static FILE *out_stream(void) { return log_stream ? log_stream : stderr; }

/* Draws the status line, cut to the terminal's width so it never wraps
 * (a wrapped line cannot be rewritten with \r). */
static void status_draw(FILE *stream)
{
    struct winsize ws;
    size_t cols = 80;
    if (ioctl(fileno(stream), TIOCGWINSZ, &ws) == 0 && ws.ws_col > 1)
        cols = ws.ws_col;
    size_t n = 0, shown = 0;
    for (const char *p = status_text; *p; p++) {
        if (((unsigned char)*p & 0xc0) != 0x80 && ++shown >= cols)
            break;
        n++;
    }
    fputc('\r', stream);
    fwrite(status_text, 1, n, stream);
    fputs("\033[K", stream);
}

void mxpc_log_status(const char *text)
{
    FILE *stream = out_stream();
    if (!text) {
        if (status_text) {
            fputs("\r\033[K", stream);
            fflush(stream);
        }
        free(status_text);
        status_text = NULL;
        return;
    }
    char *safe = mxpc_redact(text);
    free(status_text);
    status_text = mxpc_escape_string(safe);
    free(safe);
    status_draw(stream);
    fflush(stream);
}

/* --- log lines ------------------------------------------------------------ */

void mxpc_log_fields(enum mxpc_log_level level, const char *msg, const struct mxpc_log_field *fields,
                     size_t nfields)
{
    if (level > current_level)
        return;
    FILE *stream = out_stream();
    struct mxpc_buf line = MXPC_BUF_INIT;
    /* redact each part before quoting, so a secret with quotes or
     * backslashes is still recognised */
    char *safe_msg = mxpc_redact(msg);
    if (current_format == MXPC_LOG_JSON) {
        struct timeval tv;
        gettimeofday(&tv, NULL);
        struct tm tm;
        gmtime_r(&tv.tv_sec, &tm);
        char ts[40];
        strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%S", &tm);
        mxpc_buf_printf(&line, "{\"time\":\"%s.%03ldZ\",\"level\":\"%s\",\"msg\":", ts,
                        (long)(tv.tv_usec / 1000), mxpc_log_level_name(level));
        mxpc_json_quote(&line, safe_msg);
    } else {
        mxpc_buf_printf(&line, "%s: ", mxpc_log_level_name(level));
        mxpc_escape(&line, safe_msg, strlen(safe_msg));
    }
    free(safe_msg);
    for (size_t i = 0; i < nfields; i++) {
        char *value = mxpc_redact(fields[i].value ? fields[i].value : "");
        if (current_format == MXPC_LOG_JSON) {
            mxpc_buf_putc(&line, ',');
            mxpc_json_quote(&line, fields[i].key);
            mxpc_buf_putc(&line, ':');
            json_value(&line, &fields[i], value);
        } else {
            mxpc_buf_printf(&line, " %s=", fields[i].key);
            text_value(&line, value);
        }
        free(value);
    }
    if (current_format == MXPC_LOG_JSON)
        mxpc_buf_putc(&line, '}');
    mxpc_buf_putc(&line, '\n');
    if (status_text) /* the line takes the status line's place, which moves below it */
        fputs("\r\033[K", stream);
    fputs(line.data, stream);
    if (status_text)
        status_draw(stream);
    fflush(stream);
    mxpc_buf_free(&line);
}

void mxpc_log(enum mxpc_log_level level, const char *fmt, ...)
{
    if (level > current_level)
        return;
    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    mxpc_log_fields(level, msg, NULL, 0);
}
