/* The growable buffer and strdup. See include/mxpc/buf.h. */
#include "mxpc/buf.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

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

static const char *file_kind(mode_t mode)
{
    return S_ISFIFO(mode) ? "a FIFO" : S_ISCHR(mode) ? "a character device" : S_ISBLK(mode) ? "a block device"
         : S_ISSOCK(mode) ? "a socket" : S_ISDIR(mode) ? "a directory" : "not a regular file";
}

int mxpc_buf_read_file(struct mxpc_buf *b, const char *path, size_t max, char *why, size_t whylen)
{
    /* non-blocking: opening a FIFO for reading would wait for a writer */
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        snprintf(why, whylen, "%s", strerror(e));
        errno = e;
        return -1;
    }
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int e = errno;
        snprintf(why, whylen, "%s", strerror(e));
        close(fd);
        errno = e;
        return -1;
    }
    if (!S_ISREG(st.st_mode)) {
        snprintf(why, whylen, "it is %s, not a regular file", file_kind(st.st_mode));
        close(fd);
        errno = EINVAL;
        return -1;
    }
    size_t start = b->len, got = 0;
    int e = 0;
    char chunk[8192];
    for (;;) {
        ssize_t n = read(fd, chunk, sizeof chunk);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            e = errno;
            snprintf(why, whylen, "%s", strerror(e));
            break;
        }
        if (n == 0) {
            close(fd);
            mxpc_buf_append(b, "", 0); /* NUL-terminated even when empty */
            return 0;
        }
        if ((size_t)n > max - got) {
            e = EFBIG;
            snprintf(why, whylen, "it is larger than %zu bytes, the most such a file may hold", max);
            break;
        }
        mxpc_buf_append(b, chunk, (size_t)n);
        got += (size_t)n;
    }
    close(fd);
    if (b->data) /* nothing of a file that failed (it may hold a secret) */
        explicit_bzero(b->data + start, b->len - start + 1);
    b->len = start;
    errno = e;
    return -1;
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

void mxpc_one_line(char *s)
{
    size_t n = strlen(s);
    while (n > 0 && (s[n - 1] == '\n' || s[n - 1] == ' '))
        s[--n] = '\0';
    for (char *p = s; *p; p++)
        if (*p == '\n' || *p == '\t')
            *p = ' ';
}
