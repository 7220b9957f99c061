/*
 * test_diskguard.c - unit tests of the disk guard on the real file system under
 * $HDB_TEST_TMP: writes are refused below the reserve (data writes at the whole reserve,
 * metadata at half) with a message naming the directory; the store refuses a batch it would
 * not have room for and still serves reads; the ballast is created when there is room, and
 * released at open when free space is short. Reserves are set relative to the free space the
 * test finds, with wide margins, so other writers on the disk do not matter.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "hdb_arena.h"
#include "hdb_diskguard.h"
#include "hdb_err.h"
#include "hdb_store.h"
#include "test_support.h"

#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

typedef struct {
    char dir[512];
    char ballast[600];
} fixture;

static int setup(void **state) {
    fixture *f = calloc(1, sizeof *f);
    if (hdb_test_tmpdir(f->dir, sizeof f->dir, "test_diskguard") != 0) return -1;
    snprintf(f->ballast, sizeof f->ballast, "%s/ballast", f->dir);
    *state = f;
    return 0;
}

static int teardown(void **state) {
    fixture *f = *state;
    hdb_test_rmdir(f->dir);
    free(f);
    return 0;
}

static uint64_t free_bytes(const char *path) {
    struct statvfs v;
    assert_int_equal(statvfs(path, &v), 0);
    return (uint64_t)v.f_bavail * v.f_frsize;
}

static off_t file_size(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 ? st.st_size : -1;
}

static void test_reserve(void **state) {
    fixture *f = *state;
    char err[512];
    uint64_t avail = free_bytes(f->dir);
    hdb_diskguard *g;

    hdb_diskguard_options small = {.path = f->dir, .min_free_bytes = 1 << 20};
    assert_int_equal(hdb_diskguard_open(&g, &small, err, sizeof err), HDB_OK);
    assert_int_equal(hdb_diskguard_check(g, 4096, HDB_WRITE_DATA, err, sizeof err), HDB_OK);
    hdb_diskguard_state st;
    hdb_diskguard_state_get(g, &st);
    assert_true(st.writable);
    assert_true(st.free_bytes > 0 && st.total_bytes >= st.free_bytes);
    hdb_diskguard_close(g);

    /* A reserve of 1.5 x the free space: data writes are refused, metadata still fits. */
    hdb_diskguard_options big = {.path = f->dir, .min_free_bytes = avail + avail / 2};
    assert_int_equal(hdb_diskguard_open(&g, &big, err, sizeof err), HDB_OK);
    assert_int_equal(hdb_diskguard_check(g, 0, HDB_WRITE_DATA, err, sizeof err), HDB_EFULL);
    assert_non_null(strstr(err, f->dir));
    assert_non_null(strstr(err, "storage.min_free_bytes"));
    assert_non_null(strstr(err, "full"));
    assert_int_equal(hdb_diskguard_check(g, 0, HDB_WRITE_META, err, sizeof err), HDB_OK);
    /* Deletes, which make room, need only 1 MiB. */
    assert_int_equal(hdb_diskguard_check(g, 0, HDB_WRITE_FREE, err, sizeof err), HDB_OK);
    /* A metadata write larger than what is left above half the reserve is refused too. */
    assert_int_equal(hdb_diskguard_check(g, avail, HDB_WRITE_META, err, sizeof err), HDB_EFULL);
    hdb_diskguard_state_get(g, &st);
    assert_false(st.writable);
    assert_int_equal(st.min_free_bytes, big.min_free_bytes);
    hdb_diskguard_close(g);

    /* 0 turns the checks off. */
    hdb_diskguard_options off = {.path = f->dir};
    assert_int_equal(hdb_diskguard_open(&g, &off, err, sizeof err), HDB_OK);
    assert_int_equal(hdb_diskguard_check(g, UINT64_MAX / 2, HDB_WRITE_DATA, err, sizeof err),
                     HDB_OK);
    hdb_diskguard_close(g);

    /* A reserve of more than half the disk would stop every write: a quarter is kept. */
    struct statvfs v;
    assert_int_equal(statvfs(f->dir, &v), 0);
    uint64_t total = (uint64_t)v.f_blocks * v.f_frsize;
    hdb_diskguard_options huge = {.path = f->dir, .min_free_bytes = 2 * total};
    assert_int_equal(hdb_diskguard_open(&g, &huge, err, sizeof err), HDB_OK);
    assert_int_equal(hdb_diskguard_min_free(g), total / 4);
    hdb_diskguard_close(g);

    hdb_diskguard_options missing = {.path = "/nonexistent/hilbertdb", .min_free_bytes = 1};
    assert_int_equal(hdb_diskguard_open(&g, &missing, err, sizeof err), HDB_EIO);
    assert_non_null(strstr(err, "/nonexistent/hilbertdb"));
}

static void test_ballast(void **state) {
    fixture *f = *state;
    char err[512];
    hdb_diskguard *g;
    /* Room for it: the monitor creates the ballast (polled with a generous limit). */
    hdb_diskguard_options o = {.path = f->dir, .min_free_bytes = 1 << 20,
                               .ballast_path = f->ballast, .ballast_bytes = 1 << 20,
                               .interval_ms = 20};
    assert_int_equal(hdb_diskguard_open(&g, &o, err, sizeof err), HDB_OK);
    for (int i = 0; i < 3000 && file_size(f->ballast) != (1 << 20); i++) usleep(10000);
    assert_int_equal(file_size(f->ballast), 1 << 20);
    hdb_diskguard_state st;
    hdb_diskguard_state_get(g, &st);
    assert_true(st.ballast_present);
    hdb_diskguard_close(g);
    assert_int_equal(file_size(f->ballast), 1 << 20); /* it outlives the guard */

    /* Short of space at open: the ballast goes before anything else happens. */
    uint64_t avail = free_bytes(f->dir);
    o.min_free_bytes = avail + avail / 2;
    assert_int_equal(hdb_diskguard_open(&g, &o, err, sizeof err), HDB_OK);
    assert_int_equal(file_size(f->ballast), -1);
    hdb_diskguard_close(g);
}

static void test_store_refuses(void **state) {
    fixture *f = *state;
    char err[512], db[600];
    snprintf(db, sizeof db, "%s/db", f->dir);
    hdb_store *s;
    hdb_store_options o = {.path = db, .sync = false, .block_cache_bytes = 1 << 20,
                           .write_buffer_bytes = 1 << 20};
    assert_int_equal(hdb_store_open(&s, &o, err, sizeof err), HDB_OK);
    hdb_cf *cf = hdb_store_cf(s, "default");
    assert_int_equal(hdb_store_put(s, cf, "k", 1, "before", 6, err, sizeof err), HDB_OK);
    hdb_store_close(s);

    /* Reopen with a reserve the disk cannot meet: writes fail, reads go on. */
    uint64_t avail = free_bytes(f->dir);
    o.min_free_bytes = avail + avail / 2;
    assert_int_equal(hdb_store_open(&s, &o, err, sizeof err), HDB_OK);
    cf = hdb_store_cf(s, "default");
    hdb_batch *b = hdb_batch_create();
    hdb_batch_put(b, cf, "k", 1, "after", 5);
    assert_true(hdb_batch_bytes(b) > 5);
    assert_int_equal(hdb_store_write(s, b, err, sizeof err), HDB_EFULL);
    assert_non_null(strstr(err, db));
    hdb_batch_free(b);
    hdb_arena *a = hdb_arena_create(0);
    unsigned char *v;
    size_t vlen;
    assert_int_equal(hdb_store_get(s, cf, NULL, "k", 1, a, &v, &vlen, err, sizeof err), HDB_OK);
    assert_int_equal(vlen, 6);
    assert_memory_equal(v, "before", 6);
    assert_int_equal(hdb_store_space_check(s, 0, false, err, sizeof err), HDB_EFULL);
    assert_int_equal(hdb_store_space_check(s, 0, true, err, sizeof err), HDB_OK);
    hdb_store_space sp;
    hdb_store_space_get(s, &sp);
    assert_false(sp.writable);
    assert_string_equal(sp.path, db);
    hdb_arena_free(a);
    hdb_store_close(s);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_reserve, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ballast, setup, teardown),
        cmocka_unit_test_setup_teardown(test_store_refuses, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
