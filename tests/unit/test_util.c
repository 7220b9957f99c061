/*
 * test_util.c - unit tests of the util layer: the arena (alignment, large blocks, reset), the
 * byte-keyed hash map, error-buffer helpers, and the domain-type helpers (ordering, names).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "hdb_arena.h"
#include "hdb_crc.h"
#include "hdb_err.h"
#include "hdb_hmap.h"
#include "hdb_types.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

static void test_arena(void **state) {
    (void)state;
    hdb_arena *a = hdb_arena_create(1024);
    for (size_t sz = 1; sz < 3000; sz = sz * 3 + 1) {
        unsigned char *p = hdb_arena_alloc(a, sz);
        assert_true(((uintptr_t)p & 15) == 0);
        memset(p, 0xab, sz); /* ASan: the whole block is ours */
    }
    size_t used = hdb_arena_used(a);
    assert_true(used >= 1 + 4 + 13 + 40 + 121 + 364 + 1093); /* the sizes asked for */
    int *z = hdb_arena_calloc(a, 100, sizeof(int));
    for (int i = 0; i < 100; i++) assert_int_equal(z[i], 0);
    char *s = hdb_arena_sprintf(a, "%s-%d", "split", 42);
    assert_string_equal(s, "split-42");
    assert_string_equal(hdb_arena_strndup(a, "abcdef", 3), "abc");
    hdb_arena_reset(a);
    assert_int_equal(hdb_arena_used(a), 0);
    void *big = hdb_arena_alloc(a, 1 << 20); /* its own chunk */
    memset(big, 1, 1 << 20);
    void *small = hdb_arena_alloc(a, 8);
    assert_non_null(small);
    /* Protobuf allocator: frees are no-ops, allocations come from the arena. */
    ProtobufCAllocator *pb = hdb_arena_protobuf(a);
    void *q = pb->alloc(pb->allocator_data, 64);
    pb->free(pb->allocator_data, q);
    memset(q, 0, 64);
    hdb_arena_free(a);
    hdb_arena_free(NULL);
}

static void test_hmap(void **state) {
    (void)state;
    hdb_hmap *m = hdb_hmap_create();
    static int values[5000];
    char key[32];
    for (int i = 0; i < 5000; i++) {
        int n = snprintf(key, sizeof key, "k%d", i);
        hdb_hmap_put(m, key, (size_t)n, &values[i]);
    }
    assert_int_equal(hdb_hmap_size(m), 5000);
    for (int i = 0; i < 5000; i++) {
        int n = snprintf(key, sizeof key, "k%d", i);
        assert_ptr_equal(hdb_hmap_get(m, key, (size_t)n), &values[i]);
    }
    assert_null(hdb_hmap_get(m, "k5000", 5));
    assert_null(hdb_hmap_get(m, "k1", 1)); /* prefix of a key is a different key */
    hdb_hmap_put(m, "k7", 2, &values[0]);   /* replace */
    assert_ptr_equal(hdb_hmap_get(m, "k7", 2), &values[0]);
    assert_int_equal(hdb_hmap_size(m), 5000);
    hdb_hmap_put(m, "", 0, &values[1]); /* the empty key is a key */
    assert_ptr_equal(hdb_hmap_get(m, "", 0), &values[1]);
    hdb_hmap_free(m);
}

static void test_err_helpers(void **state) {
    (void)state;
    char err[32];
    assert_int_equal(hdb_errf(err, sizeof err, HDB_EINVAL, "k: must be >= %d", 1), HDB_EINVAL);
    assert_string_equal(err, "k: must be >= 1");
    hdb_errf(err, sizeof err, HDB_EINVAL, "must be > 0");
    hdb_err_prefix(err, sizeof err, HDB_EINVAL, "points[%d].vector: ", 3);
    assert_string_equal(err, "points[3].vector: must be > 0");
    /* Truncation keeps the buffer terminated. */
    hdb_errf(err, sizeof err, HDB_EINVAL, "%s", "a very long message that does not fit at all");
    assert_int_equal(strlen(err), sizeof err - 1);
    hdb_err_prefix(err, sizeof err, HDB_EINVAL, "prefix: ");
    assert_int_equal(strlen(err), sizeof err - 1);
    assert_int_equal(strncmp(err, "prefix: a very", 14), 0);
    assert_int_equal(hdb_errf(NULL, 0, HDB_EIO, "ignored"), HDB_EIO);
    assert_string_equal(hdb_strerror(HDB_ENOTFOUND), "not found");
    assert_string_equal(hdb_strerror(12345), "unknown error");
    assert_string_equal(hdb_status_name(0), "OK");
    assert_string_equal(hdb_status_name(3), "INVALID_ARGUMENT");
    assert_string_equal(hdb_status_name(16), "UNAUTHENTICATED");
    assert_string_equal(hdb_status_name(17), "UNKNOWN");
    assert_string_equal(hdb_status_name(-1), "UNKNOWN");
}

static void test_types(void **state) {
    (void)state;
    char err[256];
    assert_int_equal(hdb_name_check("spec.name", "fashion-mnist_v2.1", err, sizeof err), HDB_OK);
    assert_int_equal(hdb_name_check("spec.name", "", err, sizeof err), HDB_EINVAL);
    assert_string_equal(err, "spec.name: is required");
    assert_int_equal(hdb_name_check("spec.name", "a b", err, sizeof err), HDB_EINVAL);
    assert_non_null(strstr(err, "0x20 at offset 1"));
    char longname[HDB_NAME_MAX + 2];
    memset(longname, 'x', sizeof longname - 1);
    longname[sizeof longname - 1] = '\0';
    assert_int_equal(hdb_name_check("n", longname, err, sizeof err), HDB_EINVAL);
    longname[HDB_NAME_MAX] = '\0';
    assert_int_equal(hdb_name_check("n", longname, err, sizeof err), HDB_OK);

    hdb_attr_type t;
    assert_int_equal(hdb_attr_type_parse("Timestamp", &t), 0);
    assert_int_equal(t, HDB_ATTR_TIMESTAMP);
    assert_int_equal(hdb_attr_type_parse("uint8", &t), -1);
    assert_string_equal(hdb_attr_type_name(HDB_ATTR_FLOAT64), "float64");
    hdb_metric m;
    assert_int_equal(hdb_metric_parse("ip", &m), 0);
    assert_int_equal(m, HDB_METRIC_IP);
    assert_int_equal(hdb_metric_parse("hamming", &m), -1);

    hdb_value a = {.type = HDB_ATTR_FLOAT64, .u.f = -0.0}, b = {.type = HDB_ATTR_FLOAT64, .u.f = 0.0};
    assert_true(hdb_value_cmp(&a, &b) < 0); /* IEEE total order: -0 < +0 */
    b.u.f = NAN;
    assert_int_equal(hdb_value_cmp(&b, &b), 0);
    hdb_value s1 = {.type = HDB_ATTR_STRING, .u.s = {"ab", 2}}, s2 = {.type = HDB_ATTR_STRING,
                                                                      .u.s = {"abc", 3}};
    assert_true(hdb_value_cmp(&s1, &s2) < 0);
    hdb_value i1 = {.type = HDB_ATTR_INT64, .u.i = 5};
    assert_true(hdb_value_cmp(&s1, &i1) != 0); /* different types never compare equal */
    char buf[16];
    hdb_value longs = {.type = HDB_ATTR_STRING, .u.s = {"abcdefghijklmnopqrstuvwxyz", 26}};
    hdb_value_format(&longs, buf, sizeof buf);
    assert_true(strlen(buf) < sizeof buf);
    assert_non_null(strstr(buf, "..."));

    hdb_attr attrs[3] = {{"c", i1}, {"a", i1}, {"b", i1}};
    hdb_attrs_sort(attrs, 3);
    assert_string_equal(attrs[0].name, "a");
    assert_ptr_equal(hdb_attr_find(attrs, 3, "b", true), &attrs[1]);
    assert_null(hdb_attr_find(attrs, 3, "d", true));
    assert_ptr_equal(hdb_attr_find(attrs, 3, "c", false), &attrs[2]);
}

static void test_crc32c(void **state) {
    (void)state;
    /* The standard check value of CRC-32C. */
    assert_int_equal(hdb_crc32c(0, "123456789", 9), 0xe3069283u);
    assert_int_equal(hdb_crc32c(0, "", 0), 0);
    /* Incremental equals one-shot, at every split point and odd lengths. */
    const char *s = "HilbertDB snapshot files end with a CRC-32C trailer.";
    size_t n = strlen(s);
    uint32_t whole = hdb_crc32c(0, s, n);
    for (size_t cut = 0; cut <= n; cut++)
        assert_int_equal(hdb_crc32c(hdb_crc32c(0, s, cut), s + cut, n - cut), whole);
    char flipped[64];
    memcpy(flipped, s, n);
    flipped[7] ^= 1;
    assert_int_not_equal(hdb_crc32c(0, flipped, n), whole);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_arena),
        cmocka_unit_test(test_hmap),
        cmocka_unit_test(test_err_helpers),
        cmocka_unit_test(test_types),
        cmocka_unit_test(test_crc32c),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
