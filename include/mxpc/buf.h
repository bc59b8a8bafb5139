/* A growable byte buffer, always NUL-terminated, and strdup. Allocation
 * failure aborts: the program cannot do anything useful without memory. */
#ifndef MXPC_BUF_H
#define MXPC_BUF_H

#include <stdarg.h>
#include <stddef.h>

struct mxpc_buf {
    char *data;
    size_t len;
    size_t cap;
};

#define MXPC_BUF_INIT {NULL, 0, 0}

void mxpc_buf_append(struct mxpc_buf *b, const void *data, size_t len);
void mxpc_buf_puts(struct mxpc_buf *b, const char *s);
void mxpc_buf_putc(struct mxpc_buf *b, char c);
void mxpc_buf_printf(struct mxpc_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void mxpc_buf_vprintf(struct mxpc_buf *b, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));
/* Appends the file at path, which must be a regular file of at most max
 * bytes (credential and token files: never read a device or an endless
 * stream whole, never wait on a FIFO). Returns 0, or -1 with errno set
 * (EINVAL: not a regular file, EFBIG: larger than max) and why (whylen
 * bytes) saying what is wrong: the system's error, "it is a FIFO, not a
 * regular file", or "it is larger than <max> bytes, ...". */
int mxpc_buf_read_file(struct mxpc_buf *b, const char *path, size_t max, char *why, size_t whylen);
/* The bound for a token file (a service account token, a web identity token) */
#define MXPC_TOKEN_FILE_MAX (64 * 1024)
/* Hands the data over to the caller (who frees it) and resets the buffer. */
char *mxpc_buf_take(struct mxpc_buf *b);
void mxpc_buf_free(struct mxpc_buf *b);

/* A message of several lines (libpq's end with a newline and may span lines)
 * made one line for a person, in place: the trailing newlines and spaces cut,
 * the other newlines and tabs made spaces. */
void mxpc_one_line(char *s);

/* strdup that aborts when out of memory; NULL gives NULL. */
char *mxpc_strdup(const char *s);

#endif
