/* Atomic files: the target appears only on commit, with the requested mode,
 * and never replaces an existing file without force. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "mxpc/atomic_file.h"

static char dir[64];

static int setup(void **state)
{
    (void)state;
    strcpy(dir, "/tmp/mxpc-atomic-XXXXXX");
    return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    return system(cmd);
}

static int count_entries(void)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "ls -A '%s' | wc -l", dir);
    FILE *p = popen(cmd, "r");
    int n = -1;
    if (p) {
        if (fscanf(p, "%d", &n) != 1)
            n = -1;
        pclose(p);
    }
    return n;
}

static void commit_makes_the_file_appear(void **state)
{
    (void)state;
    char path[128], err[256];
    snprintf(path, sizeof path, "%s/out.bin", dir);
    struct mxpc_atomic_file *f = mxpc_atomic_open(path, 0, 0600, err, sizeof err);
    assert_non_null(f);
    assert_int_equal(mxpc_atomic_write(f, "hello", 5, err, sizeof err), 0);
    assert_int_equal(access(path, F_OK), -1); /* not there before commit */
    assert_int_equal(mxpc_atomic_commit(f, err, sizeof err), 0);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_size, 5);
    assert_int_equal(st.st_mode & 0777, 0600);
    assert_int_equal(count_entries(), 1); /* no temp file left */
    mxpc_atomic_free(f);
}

static void abort_and_free_leave_nothing(void **state)
{
    (void)state;
    char path[128], err[256];
    snprintf(path, sizeof path, "%s/out.bin", dir);
    struct mxpc_atomic_file *f = mxpc_atomic_open(path, 0, 0600, err, sizeof err);
    assert_non_null(f);
    assert_int_equal(mxpc_atomic_write(f, "partial", 7, err, sizeof err), 0);
    assert_int_equal(count_entries(), 1); /* the temp file */
    mxpc_atomic_free(f);                 /* never committed */
    assert_int_equal(count_entries(), 0);
}

static void existing_target_is_refused_without_force(void **state)
{
    (void)state;
    char path[128], err[256];
    snprintf(path, sizeof path, "%s/out.bin", dir);
    FILE *fp = fopen(path, "w");
    fputs("keep", fp);
    fclose(fp);
    assert_null(mxpc_atomic_open(path, 0, 0600, err, sizeof err));
    assert_non_null(strstr(err, "already exists"));

    /* a file that appears while writing is not replaced either */
    char later[128];
    snprintf(later, sizeof later, "%s/later.bin", dir);
    struct mxpc_atomic_file *f = mxpc_atomic_open(later, 0, 0600, err, sizeof err);
    assert_non_null(f);
    fp = fopen(later, "w");
    fputs("theirs", fp);
    fclose(fp);
    assert_int_equal(mxpc_atomic_commit(f, err, sizeof err), -1);
    assert_non_null(strstr(err, "already exists"));
    mxpc_atomic_free(f);
    assert_int_equal(count_entries(), 2); /* out.bin, later.bin; no temp */

    /* with force it is replaced */
    f = mxpc_atomic_open(path, 1, 0644, err, sizeof err);
    assert_non_null(f);
    assert_int_equal(mxpc_atomic_write(f, "new!!", 5, err, sizeof err), 0);
    assert_int_equal(mxpc_atomic_commit(f, err, sizeof err), 0);
    mxpc_atomic_free(f);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_size, 5);
}

static void missing_directory_is_reported(void **state)
{
    (void)state;
    char path[128], err[256];
    snprintf(path, sizeof path, "%s/no/such/dir/out.bin", dir);
    assert_null(mxpc_atomic_open(path, 0, 0600, err, sizeof err));
    assert_non_null(strstr(err, "No such file or directory"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(commit_makes_the_file_appear, setup, teardown),
        cmocka_unit_test_setup_teardown(abort_and_free_leave_nothing, setup, teardown),
        cmocka_unit_test_setup_teardown(existing_target_is_refused_without_force, setup, teardown),
        cmocka_unit_test_setup_teardown(missing_directory_is_reported, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
