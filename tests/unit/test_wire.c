/*
 * test_wire.c - unit tests of hdb_wire: UTF-8 validation (overlongs, surrogates, range,
 * truncation) and the descriptor-driven check of string fields in encoded requests, with the
 * field path in the message (map entries named by key).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "hdb_arena.h"
#include "hdb_err.h"
#include "hdb_wire.h"
#include "hilbert/v1/points.pb-c.h"

#include <string.h>

static int valid(const char *s, size_t n) {
    return hdb_utf8_valid((const uint8_t *)s, n, NULL);
}

static void test_utf8(void **state) {
    (void)state;
    assert_true(valid("", 0));
    assert_true(valid("plain ascii", 11));
    assert_true(valid("\xc3\xa9t\xc3\xa9", 6));          /* été */
    assert_true(valid("\xe2\x82\xac", 3));               /* € */
    assert_true(valid("\xf0\x9f\x91\x9f", 4));           /* U+1F45F */
    assert_true(valid("\xf4\x8f\xbf\xbf", 4));           /* U+10FFFF */
    assert_false(valid("\xff", 1));
    assert_false(valid("\x80", 1));                      /* stray continuation */
    assert_false(valid("\xc0\xaf", 2));                  /* overlong '/' */
    assert_false(valid("\xe0\x80\xaf", 3));              /* overlong */
    assert_false(valid("\xed\xa0\x80", 3));              /* surrogate U+D800 */
    assert_false(valid("\xf4\x90\x80\x80", 4));          /* U+110000 */
    assert_false(valid("\xe2\x82", 2));                  /* truncated */
    size_t bad = 99;
    assert_false(hdb_utf8_valid((const uint8_t *)"ok\xc3(", 4, &bad));
    assert_int_equal(bad, 2);
}

/* Encodes an UploadRequest with one point whose attribute `key` holds string `val` (len n). */
static size_t encode(hdb_arena *a, const char *key, const char *val, uint8_t **out) {
    Hilbert__V1__AttributeValue v = HILBERT__V1__ATTRIBUTE_VALUE__INIT;
    v.value_case = HILBERT__V1__ATTRIBUTE_VALUE__VALUE_STRING_VALUE;
    v.string_value = (char *)val;
    Hilbert__V1__DataPoint__AttributesEntry e = HILBERT__V1__DATA_POINT__ATTRIBUTES_ENTRY__INIT;
    e.key = (char *)key;
    e.value = &v;
    Hilbert__V1__DataPoint__AttributesEntry *entries[1] = {&e};
    Hilbert__V1__DataPoint dp = HILBERT__V1__DATA_POINT__INIT;
    dp.attributes = entries;
    dp.n_attributes = 1;
    Hilbert__V1__DataPoint *pts[2] = {&dp, &dp};
    Hilbert__V1__UploadRequest req = HILBERT__V1__UPLOAD_REQUEST__INIT;
    req.points = pts;
    req.n_points = 2;
    size_t n = hilbert__v1__upload_request__get_packed_size(&req);
    *out = hdb_arena_alloc(a, n);
    hilbert__v1__upload_request__pack(&req, *out);
    return n;
}

/* Replaces the first occurrence of marker byte 'Q' in buf with byte b (to inject bad bytes
 * that protobuf-c's own packer, working on C strings, cannot produce). */
static void patch(uint8_t *buf, size_t n, uint8_t b) {
    uint8_t *p = memchr(buf, 'Q', n);
    assert_non_null(p);
    *p = b;
}

static void test_request_strings(void **state) {
    (void)state;
    hdb_arena *a = hdb_arena_create(0);
    const ProtobufCMessageDescriptor *d = &hilbert__v1__upload_request__descriptor;
    char err[512];
    uint8_t *buf;
    size_t n = encode(a, "color", "reQd", &buf);
    assert_int_equal(hdb_wire_check_strings(d, buf, n, err, sizeof err), HDB_OK);

    patch(buf, n, 0x00); /* NUL inside the value of the first point */
    assert_int_equal(hdb_wire_check_strings(d, buf, n, err, sizeof err), HDB_EINVAL);
    assert_string_equal(err, "points[0].attributes[\"color\"].string_value: contains a NUL "
                             "character at byte 2; use a bytes value for binary data");

    n = encode(a, "color", "reQd", &buf);
    patch(buf, n, 0xff);
    assert_int_equal(hdb_wire_check_strings(d, buf, n, err, sizeof err), HDB_EINVAL);
    assert_string_equal(err, "points[0].attributes[\"color\"].string_value: invalid UTF-8 at "
                             "byte 2");

    /* A bad key is named by position, since it cannot be printed. */
    n = encode(a, "coQor", "red", &buf);
    patch(buf, n, 0xc0);
    assert_int_equal(hdb_wire_check_strings(d, buf, n, err, sizeof err), HDB_EINVAL);
    assert_string_equal(err, "points[0].attributes[0].key: invalid UTF-8 at byte 2");

    /* A truncated encoding is reported, not read past. */
    n = encode(a, "color", "red", &buf);
    assert_int_equal(hdb_wire_check_strings(d, buf, n - 1, err, sizeof err), HDB_EINVAL);
    assert_non_null(strstr(err, "malformed"));
    hdb_arena_free(a);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_utf8),
        cmocka_unit_test(test_request_strings),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
