/* See include/mxpc/atomic_file.h. */
#define _GNU_SOURCE
#include "mxpc/atomic_file.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct mxpc_atomic_file {
    char *path;
    char *temp;
    int fd;
    int force;
    enum mxpc_atomic_state state;
};

static void set_err(char *err, size_t errlen, const char *what, const char *path, int e)
{
    if (err && errlen)
        snprintf(err, errlen, "%s %s: %s", what, path, strerror(e));
}

/* The directory part of path, as a new string ("." for a bare name). */
static char *dir_of(const char *path)
{
    char *copy = strdup(path);
    if (!copy)
        return NULL;
    char *d = strdup(dirname(copy));
    free(copy);
    return d;
}

struct mxpc_atomic_file *mxpc_atomic_open(const char *path, int force, mode_t mode, char *err, size_t errlen)
{
    struct stat st;
    if (!force && lstat(path, &st) == 0) {
        if (err && errlen)
            snprintf(err, errlen, "%s already exists", path);
        errno = EEXIST;
        return NULL;
    }
    if (lstat(path, &st) == 0 && S_ISDIR(st.st_mode)) {
        set_err(err, errlen, "cannot write", path, EISDIR);
        errno = EISDIR;
        return NULL;
    }
    struct mxpc_atomic_file *f = calloc(1, sizeof *f);
    char *dir = dir_of(path);
    char *base = strdup(path);
    if (!f || !dir || !base) {
        free(f), free(dir), free(base);
        set_err(err, errlen, "cannot write", path, ENOMEM);
        return NULL;
    }
    f->fd = -1;
    f->state = MXPC_ATOMIC_ABORTED; /* nothing to clean up until the temp file exists */
    size_t n = strlen(dir) + strlen(path) + 32;
    f->temp = malloc(n);
    f->path = strdup(path);
    if (!f->temp || !f->path) {
        free(dir), free(base), mxpc_atomic_free(f);
        set_err(err, errlen, "cannot write", path, ENOMEM);
        return NULL;
    }
    snprintf(f->temp, n, "%s/.%s.tmp-XXXXXX", dir, basename(base));
    free(dir);
    free(base);
    f->fd = mkostemp(f->temp, O_CLOEXEC);
    if (f->fd < 0) {
        int e = errno;
        set_err(err, errlen, "cannot create a file beside", path, e);
        mxpc_atomic_free(f);
        errno = e;
        return NULL;
    }
    f->state = MXPC_ATOMIC_OPEN;
    if (fchmod(f->fd, mode) != 0) {
        int e = errno;
        set_err(err, errlen, "cannot set the mode of", f->temp, e);
        mxpc_atomic_free(f);
        errno = e;
        return NULL;
    }
    f->force = force;
    return f;
}

int mxpc_atomic_write(struct mxpc_atomic_file *f, const void *data, size_t len, char *err, size_t errlen)
{
    if (f->state != MXPC_ATOMIC_OPEN) {
        set_err(err, errlen, "cannot write", f->path, EBADF);
        return -1;
    }
    const char *p = data;
    while (len > 0) {
        ssize_t w = write(f->fd, p, len);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            set_err(err, errlen, "cannot write", f->path, errno);
            return -1;
        }
        p += w;
        len -= (size_t)w;
    }
    return 0;
}

int mxpc_atomic_fd(const struct mxpc_atomic_file *f) { return f->fd; }
const char *mxpc_atomic_path(const struct mxpc_atomic_file *f) { return f->path; }
const char *mxpc_atomic_temp_path(const struct mxpc_atomic_file *f) { return f->temp; }
enum mxpc_atomic_state mxpc_atomic_state(const struct mxpc_atomic_file *f) { return f->state; }

/* Moves temp to path; without force fails with EEXIST if path exists. */
static int move_into_place(const char *temp, const char *path, int force)
{
    if (force)
        return rename(temp, path);
    if (renameat2(AT_FDCWD, temp, AT_FDCWD, path, RENAME_NOREPLACE) == 0)
        return 0;
    if (errno != EINVAL && errno != ENOSYS)
        return -1;
    /* file systems without RENAME_NOREPLACE: link() also refuses to replace */
    if (link(temp, path) != 0)
        return -1;
    unlink(temp);
    return 0;
}

/* Makes the rename into path durable: fsync of its directory. */
static void sync_dir_of(const char *path)
{
    char *dir = dir_of(path);
    if (dir) {
        int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd >= 0) {
            fsync(dfd);
            close(dfd);
        }
        free(dir);
    }
}

static int place(const char *temp, const char *path, int force, char *err, size_t errlen)
{
    if (move_into_place(temp, path, force) != 0) {
        int e = errno;
        if (e == EEXIST) {
            if (err && errlen)
                snprintf(err, errlen, "%s already exists", path);
        } else {
            set_err(err, errlen, "cannot rename into", path, e);
        }
        errno = e;
        return -1;
    }
    sync_dir_of(path);
    return 0;
}

int mxpc_file_commit(const char *temp, const char *path, int force, char *err, size_t errlen)
{
    int fd = open(temp, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        set_err(err, errlen, "cannot open", temp, errno);
        return -1;
    }
    if (fsync(fd) != 0) {
        int e = errno;
        close(fd);
        set_err(err, errlen, "cannot flush", temp, e);
        return -1;
    }
    close(fd);
    return place(temp, path, force, err, errlen);
}

int mxpc_atomic_commit(struct mxpc_atomic_file *f, char *err, size_t errlen)
{
    if (f->state != MXPC_ATOMIC_OPEN) {
        set_err(err, errlen, "cannot commit", f->path, EBADF);
        return -1;
    }
    if (fsync(f->fd) != 0) {
        set_err(err, errlen, "cannot flush", f->path, errno);
        mxpc_atomic_abort(f);
        return -1;
    }
    if (close(f->fd) != 0) {
        f->fd = -1;
        set_err(err, errlen, "cannot close", f->path, errno);
        mxpc_atomic_abort(f);
        return -1;
    }
    f->fd = -1;
    if (place(f->temp, f->path, f->force, err, errlen) != 0) {
        mxpc_atomic_abort(f);
        return -1;
    }
    f->state = MXPC_ATOMIC_COMMITTED;
    return 0;
}

void mxpc_atomic_abort(struct mxpc_atomic_file *f)
{
    if (!f || f->state != MXPC_ATOMIC_OPEN)
        return;
    if (f->fd >= 0)
        close(f->fd);
    f->fd = -1;
    unlink(f->temp);
    f->state = MXPC_ATOMIC_ABORTED;
}

void mxpc_atomic_free(struct mxpc_atomic_file *f)
{
    if (!f)
        return;
    mxpc_atomic_abort(f);
    free(f->temp);
    free(f->path);
    free(f);
}
