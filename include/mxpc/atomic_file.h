/* A file that appears under its final name only when complete.
 *
 * Data goes to a hidden temporary file beside the target (same directory, so
 * rename is atomic), created with the requested mode (0600 by default). Commit
 * fsyncs it, renames it over the target and fsyncs the directory. Abort, or
 * freeing an uncommitted file, removes the temporary file. Without `force` an
 * existing target is never replaced, not even by a file created meanwhile. */
#ifndef MXPC_ATOMIC_FILE_H
#define MXPC_ATOMIC_FILE_H

#include <stddef.h>
#include <sys/types.h>

struct mxpc_atomic_file;

enum mxpc_atomic_state { MXPC_ATOMIC_OPEN, MXPC_ATOMIC_COMMITTED, MXPC_ATOMIC_ABORTED };

/* Returns NULL on failure with a message in err (and errno set). */
struct mxpc_atomic_file *mxpc_atomic_open(const char *path, int force, mode_t mode, char *err, size_t errlen);
/* Writes everything or fails; returns 0 or -1 with a message in err. */
int mxpc_atomic_write(struct mxpc_atomic_file *f, const void *data, size_t len, char *err, size_t errlen);
int mxpc_atomic_fd(const struct mxpc_atomic_file *f);
const char *mxpc_atomic_path(const struct mxpc_atomic_file *f);
const char *mxpc_atomic_temp_path(const struct mxpc_atomic_file *f);
enum mxpc_atomic_state mxpc_atomic_state(const struct mxpc_atomic_file *f);
/* Returns 0 or -1 with a message in err; on failure the file is aborted. */
int mxpc_atomic_commit(struct mxpc_atomic_file *f, char *err, size_t errlen);
/* Idempotent; removes the temporary file if still open. */
void mxpc_atomic_abort(struct mxpc_atomic_file *f);
/* A finished file written elsewhere put in place the same way: temp is
 * flushed, moved onto path (without force: never replacing an existing
 * file, EEXIST) and the move made durable. 0, or -1 with errno and err. */
int mxpc_file_commit(const char *temp, const char *path, int force, char *err, size_t errlen);
/* Aborts if still open, then frees. NULL is fine. */
void mxpc_atomic_free(struct mxpc_atomic_file *f);

#endif
