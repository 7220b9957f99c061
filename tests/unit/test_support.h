/*
 * test_support.h - what the unit tests share: a fresh temporary directory per test under
 * $HDB_TEST_TMP (ctest sets it to build/tmp; /tmp otherwise), removed again with hdb_rmtree.
 * Header-only, included by test files after cmocka.h.
 */
#ifndef HDB_TEST_SUPPORT_H
#define HDB_TEST_SUPPORT_H

#include "hdb_file.h"

#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>

/* Creates <base>/<name>.XXXXXX into buf; returns 0, or -1 when it cannot. */
static inline int hdb_test_tmpdir(char *buf, size_t n, const char *name) {
    const char *base = getenv("HDB_TEST_TMP") ? getenv("HDB_TEST_TMP") : "/tmp";
    mkdir(base, 0755);
    snprintf(buf, n, "%s/%s.XXXXXX", base, name);
    return mkdtemp(buf) ? 0 : -1;
}

/* Removes a directory made by hdb_test_tmpdir, with everything in it. */
static inline void hdb_test_rmdir(const char *dir) {
    hdb_rmtree(dir, NULL, 0);
}

#endif /* HDB_TEST_SUPPORT_H */
