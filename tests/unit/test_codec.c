/*
 * test_codec.c - unit tests of the protobuf-c <-> domain conversions (hdb_codec): every kind of
 * value, the checks on inbound attributes and points (with the field named in the message),
 * and outbound messages that pack and unpack to the same values.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "hdb_arena.h"
#include "hdb_codec.h"
#include "hdb_err.h"

#include <math.h>
#include <string.h>

static Hilbert__V1__AttributeValue *val_string(hdb_arena *a, const char *s) {
    Hilbert__V1__AttributeValue *v = hdb_arena_alloc(a, sizeof *v);
    hilbert__v1__attribute_value__init(v);
    v->value_case = HILBERT__V1__ATTRIBUTE_VALUE__VALUE_STRING_VALUE;
    v->string_value = (char *)s;
    return v;
}

static Hilbert__V1__AttributeValue *val_int(hdb_arena *a, int64_t i) {
    Hilbert__V1__AttributeValue *v = hdb_arena_alloc(a, sizeof *v);
    hilbert__v1__attribute_value__init(v);
    v->value_case = HILBERT__V1__ATTRIBUTE_VALUE__VALUE_INT64_VALUE;
    v->int64_value = i;
    return v;
}

static void test_value_in_all_types(void **state) {
    (void)state;
    hdb_arena *a = hdb_arena_create(0);
    char err[256];
    hdb_value out;
    Hilbert__V1__AttributeValue v = HILBERT__V1__ATTRIBUTE_VALUE__INIT;

    v.value_case = HILBERT__V1__ATTRIBUTE_VALUE__VALUE_FLOAT64_VALUE;
    v.float64_value = 2.5;
    assert_int_equal(hdb_codec_value_in(&v, 100, "x", &out, err, sizeof err), HDB_OK);
    assert_int_equal(out.type, HDB_ATTR_FLOAT64);
    assert_true(out.u.f == 2.5);

    v.value_case = HILBERT__V1__ATTRIBUTE_VALUE__VALUE_BOOL_VALUE;
    v.bool_value = 1;
    assert_int_equal(hdb_codec_value_in(&v, 100, "x", &out, err, sizeof err), HDB_OK);
    assert_int_equal(out.type, HDB_ATTR_BOOL);
    assert_true(out.u.b);

    v.value_case = HILBERT__V1__ATTRIBUTE_VALUE__VALUE_TIMESTAMP_MICROS;
    v.timestamp_micros = -3;
    assert_int_equal(hdb_codec_value_in(&v, 100, "x", &out, err, sizeof err), HDB_OK);
    assert_int_equal(out.type, HDB_ATTR_TIMESTAMP);
    assert_int_equal(out.u.i, -3);

    uint8_t bytes[4] = {0, 1, 2, 3};
    v.value_case = HILBERT__V1__ATTRIBUTE_VALUE__VALUE_BYTES_VALUE;
    v.bytes_value.data = bytes;
    v.bytes_value.len = 4;
    assert_int_equal(hdb_codec_value_in(&v, 100, "x", &out, err, sizeof err), HDB_OK);
    assert_int_equal(out.type, HDB_ATTR_BYTES);
    assert_int_equal(out.u.s.n, 4);
    /* Over the limit, bytes and strings are refused with the field named. */
    assert_int_equal(hdb_codec_value_in(&v, 3, "attrs[\"blob\"]", &out, err, sizeof err),
                     HDB_EINVAL);
    assert_non_null(strstr(err, "attrs[\"blob\"]"));
    assert_non_null(strstr(err, "limits.max_value_bytes"));
    assert_int_equal(hdb_codec_value_in(val_string(a, "hello"), 4, "s", &out, err, sizeof err),
                     HDB_EINVAL);
    assert_int_equal(hdb_codec_value_in(val_string(a, "hello"), 5, "s", &out, err, sizeof err),
                     HDB_OK);
    assert_int_equal(out.u.s.n, 5);

    /* No member set, or no message at all. */
    Hilbert__V1__AttributeValue unset = HILBERT__V1__ATTRIBUTE_VALUE__INIT;
    assert_int_equal(hdb_codec_value_in(&unset, 100, "points[2].attributes[\"c\"]", &out, err,
                                        sizeof err),
                     HDB_EINVAL);
    assert_string_equal(err, "points[2].attributes[\"c\"]: value is not set");
    assert_int_equal(hdb_codec_value_in(NULL, 100, "f", &out, err, sizeof err), HDB_EINVAL);
    hdb_arena_free(a);
}

static void test_attrs_in(void **state) {
    (void)state;
    hdb_arena *a = hdb_arena_create(0);
    char err[256];
    hdb_attr *attrs;
    uint32_t n;
    hdb_kv kv[3] = {{"zeta", val_int(a, 1)}, {"alpha", val_string(a, "x")}, {"mid", val_int(a, 3)}};
    assert_int_equal(hdb_codec_attrs_in(kv, 3, 10, 100, "attributes", a, &attrs, &n, err,
                                        sizeof err),
                     HDB_OK);
    assert_int_equal(n, 3);
    assert_string_equal(attrs[0].name, "alpha"); /* sorted by name */
    assert_string_equal(attrs[1].name, "mid");
    assert_string_equal(attrs[2].name, "zeta");

    assert_int_equal(hdb_codec_attrs_in(kv, 3, 2, 100, "attributes", a, &attrs, &n, err,
                                        sizeof err),
                     HDB_ELIMIT);
    assert_non_null(strstr(err, "limits.max_attributes"));

    hdb_kv dup[2] = {{"k", val_int(a, 1)}, {"k", val_int(a, 2)}};
    assert_int_equal(hdb_codec_attrs_in(dup, 2, 10, 100, "split_filter", a, &attrs, &n, err,
                                        sizeof err),
                     HDB_EINVAL);
    assert_string_equal(err, "split_filter[\"k\"]: given twice");

    hdb_kv empty[1] = {{"", val_int(a, 1)}};
    assert_int_equal(hdb_codec_attrs_in(empty, 1, 10, 100, "attributes", a, &attrs, &n, err,
                                        sizeof err),
                     HDB_EINVAL);
    assert_non_null(strstr(err, "empty"));

    hdb_kv ctl[1] = {{"bad\nname", val_int(a, 1)}};
    assert_int_equal(hdb_codec_attrs_in(ctl, 1, 10, 100, "attributes", a, &attrs, &n, err,
                                        sizeof err),
                     HDB_EINVAL);
    assert_non_null(strstr(err, "control character"));

    Hilbert__V1__AttributeValue unset = HILBERT__V1__ATTRIBUTE_VALUE__INIT;
    hdb_kv noval[1] = {{"color", &unset}};
    assert_int_equal(hdb_codec_attrs_in(noval, 1, 10, 100, "ids[0].id_attributes", a, &attrs, &n,
                                        err, sizeof err),
                     HDB_EINVAL);
    assert_string_equal(err, "ids[0].id_attributes[\"color\"]: value is not set");
    hdb_arena_free(a);
}

static void test_point_in(void **state) {
    (void)state;
    hdb_arena *a = hdb_arena_create(0);
    char err[256];
    hdb_point p;
    float values[3] = {1, 2, 3};
    Hilbert__V1__DenseVector dense = HILBERT__V1__DENSE_VECTOR__INIT;
    dense.values = values;
    dense.n_values = 3;
    Hilbert__V1__Vector vec = HILBERT__V1__VECTOR__INIT;
    vec.kind_case = HILBERT__V1__VECTOR__KIND_DENSE;
    vec.dense = &dense;
    Hilbert__V1__DataPoint__AttributesEntry e = HILBERT__V1__DATA_POINT__ATTRIBUTES_ENTRY__INIT;
    e.key = "id";
    e.value = val_int(a, 9);
    Hilbert__V1__DataPoint__AttributesEntry *entries[1] = {&e};
    Hilbert__V1__DataPoint dp = HILBERT__V1__DATA_POINT__INIT;
    dp.vector = &vec;
    dp.attributes = entries;
    dp.n_attributes = 1;

    assert_int_equal(hdb_codec_point_in(&dp, 10, 100, 4, a, &p, err, sizeof err), HDB_OK);
    assert_int_equal(p.dim, 3);
    assert_ptr_equal(p.vec, values);
    assert_false(p.deleted);
    assert_int_equal(p.nattrs, 1);

    dp.vector = NULL;
    assert_int_equal(hdb_codec_point_in(&dp, 10, 100, 4, a, &p, err, sizeof err), HDB_EINVAL);
    assert_string_equal(err, "points[4].vector: is required unless is_deleted is set");

    dp.is_deleted = 1; /* a tombstone needs no vector */
    assert_int_equal(hdb_codec_point_in(&dp, 10, 100, 4, a, &p, err, sizeof err), HDB_OK);
    assert_true(p.deleted);
    assert_null(p.vec);

    e.value = NULL;
    assert_int_equal(hdb_codec_point_in(&dp, 10, 100, 1, a, &p, err, sizeof err), HDB_EINVAL);
    assert_string_equal(err, "points[1].attributes[\"id\"]: value is not set");
    hdb_arena_free(a);
}

/* Outbound messages pack and unpack back to the same values. */
static void test_out_roundtrip(void **state) {
    (void)state;
    hdb_arena *a = hdb_arena_create(0);
    hdb_attr attrs[4] = {
        {"b", {.type = HDB_ATTR_BYTES, .u.s = {"\x00\xff", 2}}},
        {"f", {.type = HDB_ATTR_FLOAT64, .u.f = -0.25}},
        {"s", {.type = HDB_ATTR_STRING, .u.s = {"abcdef", 3}}}, /* not NUL-terminated at 3 */
        {"t", {.type = HDB_ATTR_TIMESTAMP, .u.i = 123}},
    };
    float vec[2] = {0.5f, -1.5f};
    Hilbert__V1__DataPoint dp = HILBERT__V1__DATA_POINT__INIT;
    dp.vector = hdb_codec_vector_out(vec, 2, a);
    HDB_ATTRS_OUT(a, attrs, 4, Hilbert__V1__DataPoint__AttributesEntry,
                  hilbert__v1__data_point__attributes_entry__init, dp.attributes);
    dp.n_attributes = 4;
    size_t len = hilbert__v1__data_point__get_packed_size(&dp);
    uint8_t *buf = hdb_arena_alloc(a, len);
    hilbert__v1__data_point__pack(&dp, buf);
    Hilbert__V1__DataPoint *back =
        hilbert__v1__data_point__unpack(hdb_arena_protobuf(a), len, buf);
    assert_non_null(back);
    hdb_point p;
    char err[256];
    assert_int_equal(hdb_codec_point_in(back, 10, 100, 0, a, &p, err, sizeof err), HDB_OK);
    assert_int_equal(p.dim, 2);
    assert_memory_equal(p.vec, vec, sizeof vec);
    assert_int_equal(p.nattrs, 4);
    for (int i = 0; i < 4; i++) {
        assert_string_equal(p.attrs[i].name, attrs[i].name);
        assert_int_equal(hdb_value_cmp(&p.attrs[i].value, &attrs[i].value), 0);
    }
    hdb_arena_free(a);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_value_in_all_types),
        cmocka_unit_test(test_attrs_in),
        cmocka_unit_test(test_point_in),
        cmocka_unit_test(test_out_roundtrip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
