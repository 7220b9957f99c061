/*
 * test_record.c - unit tests of the on-disk codec (hdb_record): tuple keys, point records and
 * timeline entries round-trip, and every truncated or damaged input is rejected, never read
 * out of bounds (run under ASan in CI).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "hdb_arena.h"
#include "hdb_err.h"
#include "hdb_record.h"

#include <math.h>
#include <string.h>

static hdb_value vstr(const char *s) {
    hdb_value v = {.type = HDB_ATTR_STRING};
    v.u.s.p = s;
    v.u.s.n = strlen(s);
    return v;
}

static hdb_value vint(int64_t i) {
    hdb_value v = {.type = HDB_ATTR_INT64};
    v.u.i = i;
    return v;
}

static void test_tuple_roundtrip(void **state) {
    (void)state;
    hdb_arena *a = hdb_arena_create(0);
    hdb_value in[5] = {vstr("shoes"), vint(-42), {.type = HDB_ATTR_BOOL, .u.b = true},
                       {.type = HDB_ATTR_TIMESTAMP, .u.i = 1700000000000000},
                       {.type = HDB_ATTR_BYTES, .u.s = {"\0\1\2", 3}}};
    hdb_buf b;
    hdb_buf_init(&b, a, 1); /* forces growth */
    hdb_tuple_encode(&b, in, 5);
    hdb_value out[5];
    assert_int_equal(hdb_tuple_decode(b.p, b.len, out, 5), HDB_OK);
    for (int i = 0; i < 5; i++) assert_int_equal(hdb_value_cmp(&in[i], &out[i]), 0);
    /* Asking for fewer or more values than encoded is corruption. */
    assert_int_equal(hdb_tuple_decode(b.p, b.len, out, 4), HDB_ECORRUPT);
    hdb_value six[6];
    assert_int_equal(hdb_tuple_decode(b.p, b.len, six, 6), HDB_ECORRUPT);
    for (size_t cut = 0; cut < b.len; cut++)
        assert_int_equal(hdb_tuple_decode(b.p, cut, out, 5), HDB_ECORRUPT);
    hdb_arena_free(a);
}

/* Integer keys sort like the integers: big-endian with the sign bit flipped. */
static void test_tuple_int_order(void **state) {
    (void)state;
    hdb_arena *a = hdb_arena_create(0);
    int64_t vals[] = {INT64_MIN, -1000000, -1, 0, 1, 255, 256, 1000000, INT64_MAX};
    size_t n = sizeof vals / sizeof vals[0];
    hdb_buf prev = {0};
    for (size_t i = 0; i < n; i++) {
        hdb_buf cur;
        hdb_value v = vint(vals[i]);
        hdb_buf_init(&cur, a, 16);
        hdb_tuple_encode(&cur, &v, 1);
        if (i > 0) {
            assert_int_equal(cur.len, prev.len);
            assert_true(memcmp(prev.p, cur.p, cur.len) < 0);
        }
        prev = cur;
    }
    hdb_arena_free(a);
}

/* Distinct tuples never share an encoding, even when string contents could be confused. */
static void test_tuple_injective(void **state) {
    (void)state;
    hdb_arena *a = hdb_arena_create(0);
    hdb_value t1[2] = {vstr("ab"), vstr("c")}, t2[2] = {vstr("a"), vstr("bc")};
    hdb_buf b1, b2;
    hdb_buf_init(&b1, a, 8);
    hdb_buf_init(&b2, a, 8);
    hdb_tuple_encode(&b1, t1, 2);
    hdb_tuple_encode(&b2, t2, 2);
    assert_false(b1.len == b2.len && memcmp(b1.p, b2.p, b1.len) == 0);
    hdb_arena_free(a);
}

static hdb_point sample_point(hdb_attr *attrs, float *vec) {
    attrs[0] = (hdb_attr){"bin", {.type = HDB_ATTR_BYTES, .u.s = {"\xff\x00\x7f", 3}}};
    attrs[1] = (hdb_attr){"flag", {.type = HDB_ATTR_BOOL, .u.b = true}};
    attrs[2] = (hdb_attr){"id", vint(7)};
    attrs[3] = (hdb_attr){"name", vstr("sneaker")};
    attrs[4] = (hdb_attr){"price", {.type = HDB_ATTR_FLOAT64, .u.f = -12.5}};
    attrs[5] = (hdb_attr){"ts", {.type = HDB_ATTR_TIMESTAMP, .u.i = -5}};
    for (int i = 0; i < 5; i++) vec[i] = (float)i * 0.5f - 1.0f;
    return (hdb_point){.vec = vec, .dim = 5, .attrs = attrs, .nattrs = 6};
}

static void assert_same_point(const hdb_point *a, const hdb_point *b) {
    assert_int_equal(a->dim, b->dim);
    if (a->dim) assert_memory_equal(a->vec, b->vec, a->dim * sizeof(float));
    assert_int_equal(a->nattrs, b->nattrs);
    for (uint32_t i = 0; i < a->nattrs; i++) {
        assert_string_equal(a->attrs[i].name, b->attrs[i].name);
        assert_int_equal(hdb_value_cmp(&a->attrs[i].value, &b->attrs[i].value), 0);
    }
}

static void test_record_roundtrip(void **state) {
    (void)state;
    hdb_arena *a = hdb_arena_create(0);
    hdb_attr attrs[6];
    float vec[5];
    hdb_point p = sample_point(attrs, vec);
    hdb_buf b;
    hdb_buf_init(&b, a, 4);
    hdb_record_encode(&b, &p, 123456789);
    hdb_record r;
    assert_int_equal(hdb_record_decode(b.p, b.len, a, &r), HDB_OK);
    assert_int_equal(r.seq, 123456789);
    assert_false(r.point.deleted);
    assert_same_point(&p, &r.point);
    /* The decoded vector is a copy, aligned for SIMD loads. */
    assert_true(((uintptr_t)r.point.vec & 15) == 0);
    hdb_arena_free(a);
}

static void test_record_tombstone_and_empty(void **state) {
    (void)state;
    hdb_arena *a = hdb_arena_create(0);
    hdb_attr id = {"id", vint(1)};
    hdb_point p = {.attrs = &id, .nattrs = 1, .deleted = true};
    hdb_buf b;
    hdb_buf_init(&b, a, 4);
    hdb_record_encode(&b, &p, 9);
    hdb_record r;
    assert_int_equal(hdb_record_decode(b.p, b.len, a, &r), HDB_OK);
    assert_true(r.point.deleted);
    assert_null(r.point.vec);
    assert_int_equal(r.point.nattrs, 1);
    hdb_point none = {0};
    hdb_buf_init(&b, a, 4);
    hdb_record_encode(&b, &none, 1);
    assert_int_equal(hdb_record_decode(b.p, b.len, a, &r), HDB_OK);
    assert_int_equal(r.point.nattrs, 0);
    hdb_arena_free(a);
}

/* Every strict prefix of a record, and the record with a trailing byte, is rejected. */
static void test_record_truncation(void **state) {
    (void)state;
    hdb_arena *a = hdb_arena_create(0);
    hdb_attr attrs[6];
    float vec[5];
    hdb_point p = sample_point(attrs, vec);
    hdb_buf b;
    hdb_buf_init(&b, a, 4);
    hdb_record_encode(&b, &p, 1);
    hdb_record r;
    for (size_t cut = 0; cut < b.len; cut++) {
        unsigned char *copy = hdb_arena_alloc(a, cut ? cut : 1);
        memcpy(copy, b.p, cut);
        assert_int_equal(hdb_record_decode(copy, cut, a, &r), HDB_ECORRUPT);
    }
    hdb_buf_put(&b, "x", 1);
    assert_int_equal(hdb_record_decode(b.p, b.len, a, &r), HDB_ECORRUPT);
    hdb_arena_free(a);
}

/* Damaged lengths and types never cause out-of-bounds reads (ASan watches) and are mostly
 * reported as corruption; a flip that still decodes must stay within the buffer. */
static void test_record_bitflips(void **state) {
    (void)state;
    hdb_arena *a = hdb_arena_create(0);
    hdb_attr attrs[6];
    float vec[5];
    hdb_point p = sample_point(attrs, vec);
    hdb_buf b;
    hdb_buf_init(&b, a, 4);
    hdb_record_encode(&b, &p, 1);
    size_t rejected = 0;
    for (size_t i = 0; i < b.len; i++) {
        for (int bit = 0; bit < 8; bit++) {
            unsigned char *copy = hdb_arena_alloc(a, b.len);
            memcpy(copy, b.p, b.len);
            copy[i] ^= (unsigned char)(1u << bit);
            hdb_record r;
            if (hdb_record_decode(copy, b.len, a, &r) != HDB_OK) rejected++;
        }
        hdb_arena_reset(a);
        hdb_buf_init(&b, a, 4);
        hdb_record_encode(&b, &p, 1);
    }
    /* Flips in the format byte, lengths and type tags must be caught. */
    assert_true(rejected > b.len);
    hdb_arena_free(a);
}

static void test_timeline(void **state) {
    (void)state;
    hdb_arena *a = hdb_arena_create(0);
    hdb_attr attrs[6];
    float vec[5];
    hdb_point p = sample_point(attrs, vec);
    hdb_buf b;
    hdb_buf_init(&b, a, 4);
    hdb_timeline_encode(&b, HDB_TL_UPSERT, 77, 1700000000123456, &p, 88);
    int op;
    uint64_t pid;
    int64_t t;
    assert_int_equal(hdb_timeline_peek(b.p, b.len, &op, &pid, &t), HDB_OK);
    assert_int_equal(op, HDB_TL_UPSERT);
    assert_int_equal(pid, 77);
    assert_int_equal(t, 1700000000123456);
    hdb_timeline_entry e;
    assert_int_equal(hdb_timeline_decode(b.p, b.len, a, &e), HDB_OK);
    assert_int_equal(e.rec.seq, 88);
    assert_same_point(&p, &e.rec.point);
    for (size_t cut = 0; cut < b.len; cut++)
        assert_int_equal(hdb_timeline_decode(b.p, cut, a, &e), HDB_ECORRUPT);
    /* An unknown op is corruption. */
    unsigned char *copy = hdb_arena_alloc(a, b.len);
    memcpy(copy, b.p, b.len);
    copy[1] = 9;
    assert_int_equal(hdb_timeline_peek(copy, b.len, &op, &pid, &t), HDB_ECORRUPT);
    hdb_arena_free(a);
}

static void test_keys(void **state) {
    (void)state;
    unsigned char k[HDB_PID_KEY_LEN], s1[HDB_SEQ_KEY_LEN], s2[HDB_SEQ_KEY_LEN];
    hdb_pid_key(k, 0x0102030405060708ULL);
    assert_int_equal(k[0], 'P');
    assert_int_equal(hdb_get_be64(k + 1), 0x0102030405060708ULL);
    hdb_seq_key(s1, 255);
    hdb_seq_key(s2, 256);
    assert_true(memcmp(s1, s2, sizeof s1) < 0); /* seq keys sort numerically */
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tuple_roundtrip),   cmocka_unit_test(test_tuple_int_order),
        cmocka_unit_test(test_tuple_injective),   cmocka_unit_test(test_record_roundtrip),
        cmocka_unit_test(test_record_tombstone_and_empty),
        cmocka_unit_test(test_record_truncation), cmocka_unit_test(test_record_bitflips),
        cmocka_unit_test(test_timeline),          cmocka_unit_test(test_keys),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
