/* The growable buffer and strdup. See include/mxpc/buf.h. */
#include "mxpc/buf.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void reserve(struct mxpc_buf *b, size_t extra)
{
    if (b->len + extra + 1 <= b->cap)
        return;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < b->len + extra + 1)
        cap *= 2;
    char *p = realloc(b->data, cap);
    if (!p) {
        fputs("error: out of memory\n", stderr);
        abort();
    }
    b->data = p;
    b->cap = cap;
}

void mxpc_buf_append(struct mxpc_buf *b, const void *data, size_t len)
{
    reserve(b, len);
    if (len)
        memcpy(b->data + b->len, data, len);
    b->len += len;
    b->data[b->len] = '\0';
}

void mxpc_buf_puts(struct mxpc_buf *b, const char *s) { mxpc_buf_append(b, s, strlen(s)); }

void mxpc_buf_putc(struct mxpc_buf *b, char c) { mxpc_buf_append(b, &c, 1); }

void mxpc_buf_vprintf(struct mxpc_buf *b, const char *fmt, va_list ap)
{
    va_list again;
    va_copy(again, ap);
    int n = vsnprintf(NULL, 0, fmt, ap);
    if (n > 0) {
        reserve(b, (size_t)n);
        vsnprintf(b->data + b->len, (size_t)n + 1, fmt, again);
        b->len += (size_t)n;
    }
    va_end(again);
}

void mxpc_buf_printf(struct mxpc_buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    mxpc_buf_vprintf(b, fmt, ap);
    va_end(ap);
}

int mxpc_buf_read_file(struct mxpc_buf *b, const char *path)
{
    FILE *fp = fopen(path, "rb");
    if (!fp)
        return -1;
    char chunk[8192];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, fp)) > 0)
        mxpc_buf_append(b, chunk, n);
    int bad = ferror(fp);
    fclose(fp);
    if (bad) {
        errno = EIO;
        return -1;
    }
    mxpc_buf_append(b, "", 0); /* NUL-terminated even when empty */
    return 0;
}

char *mxpc_buf_take(struct mxpc_buf *b)
{
    reserve(b, 0);
    char *p = b->data;
    b->data = NULL;
    b->len = b->cap = 0;
    return p;
}

void mxpc_buf_free(struct mxpc_buf *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

char *mxpc_strdup(const char *s)
{
    if (!s)
        return NULL;
    char *d = strdup(s);
    if (!d)
        abort();
    return d;
}
