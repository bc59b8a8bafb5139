/* Logging to stderr with levels, text or JSON-lines format, and redaction of
 * registered secrets. Every message that reaches a person goes through here
 * (or through mxpc_redact) so that no secret is ever printed. */
#ifndef MXPC_LOG_H
#define MXPC_LOG_H

#include <stddef.h>
#include <stdio.h>

#include <lua.h>

#include "mxpc/buf.h"

enum mxpc_log_level {
    MXPC_LOG_ERROR = 0,
    MXPC_LOG_WARN,
    MXPC_LOG_INFO,
    MXPC_LOG_DEBUG,
    MXPC_LOG_TRACE,
};

enum mxpc_log_format { MXPC_LOG_TEXT = 0, MXPC_LOG_JSON };

/* What a field's value is: JSON output writes a number, a boolean and null
 * bare (a number that JSON cannot carry, such as inf or nan, as null); text
 * output writes them all as their text. */
enum mxpc_log_kind { MXPC_LOG_STRING = 0, MXPC_LOG_NUMBER, MXPC_LOG_BOOLEAN, MXPC_LOG_NULL };

struct mxpc_log_field {
    const char *key;
    const char *value;
    enum mxpc_log_kind kind;
};

void mxpc_log_set_level(enum mxpc_log_level level);
enum mxpc_log_level mxpc_log_get_level(void);
void mxpc_log_set_format(enum mxpc_log_format format);
enum mxpc_log_format mxpc_log_get_format(void);
/* Where lines go; stderr unless changed (tests). */
void mxpc_log_set_stream(FILE *stream);

/* Name <-> level; returns -1 for an unknown name. */
int mxpc_log_level_from_name(const char *name);
const char *mxpc_log_level_name(enum mxpc_log_level level);

void mxpc_log(enum mxpc_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void mxpc_log_fields(enum mxpc_log_level level, const char *msg, const struct mxpc_log_field *fields,
                     size_t nfields);

/* The status line of a terminal: one line that is rewritten in place
 * ("\r", the text cut to the terminal's width, erase to the end of the
 * line). Every log line first erases it and then draws it again below
 * itself; NULL erases it for good. Only for a stream that is a terminal. */
void mxpc_log_status(const char *text);

/* Registers a secret value: from now on it is replaced by "***" wherever it
 * would be printed. Empty strings are ignored; copies are kept. */
void mxpc_redact_add(const char *secret);
/* Forgets all registered secrets (tests). */
void mxpc_redact_clear(void);
/* Returns a newly allocated copy of `text` with every registered secret and
 * every credential-looking pattern (password=..., user:pass@ in URLs,
 * Authorization headers, presigned-URL signatures) masked. Each byte inside
 * an occurrence of a secret is hidden; a run of them becomes one "***".
 * Linear time in the text for any set of secrets. Never NULL. */
char *mxpc_redact(const char *text);
/* Steps the secret search has taken so far (tests bound the work of a
 * redaction with it instead of timing it). */
size_t mxpc_redact_work(void);

/* The one escaping of text that reaches a terminal or a log: appends the n
 * bytes at s to out with every C0 control and DEL (\n, \r, \t, else \xNN),
 * every byte that is not valid UTF-8 (\xNN), and every code point a terminal
 * acts on or hides (C1 controls, bidirectional overrides, zero-width
 * characters, line separators: \u{N}) escaped. The result is valid UTF-8,
 * one line, and shows on a terminal as what it is. Redact first, then escape. */
void mxpc_escape(struct mxpc_buf *out, const char *s, size_t n);
/* The same as a new string (never NULL). */
char *mxpc_escape_string(const char *s);
/* As mxpc_escape_string, but a text of several lines (a server's message with
 * its DETAIL and HINT) stays several lines: each line escaped, every line
 * after the first begun with `indent` (so none can pass for a line of its
 * own), line ends at the end dropped. */
char *mxpc_escape_lines(const char *s, const char *indent);
/* The same in double quotes, with quotes and backslashes escaped too
 * ("a\"b\\c\x1b"): a name inside a message. */
void mxpc_escape_quoted(struct mxpc_buf *out, const char *s, size_t n);

/* Appends `s` to `out` as a JSON string literal (with quotes): always valid
 * JSON, with controls and hidden code points as \uNNNN and bytes that are not
 * UTF-8 as the text \xNN. */
void mxpc_json_quote(struct mxpc_buf *out, const char *s);

int luaopen_mxpc_log(lua_State *L);

#endif
