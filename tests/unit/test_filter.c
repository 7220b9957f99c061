/*
 * test_filter.c - attribute filters (hdb_filter.h): evaluation of every test and of all / any /
 * not on points with and without the attribute, int64-float64 ranges, payload values of
 * another type, and the checks with the path they name.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "hdb_err.h"
#include "hdb_filter.h"

#include <string.h>

static hdb_value I(int64_t v) { return (hdb_value){.type = HDB_ATTR_INT64, .u.i = v}; }
static hdb_value F(double v) { return (hdb_value){.type = HDB_ATTR_FLOAT64, .u.f = v}; }
static hdb_value S(const char *s) {
    return (hdb_value){.type = HDB_ATTR_STRING, .u.s = {s, strlen(s)}};
}
static hdb_value TS(int64_t v) { return (hdb_value){.type = HDB_ATTR_TIMESTAMP, .u.i = v}; }

/* A point: color "red", n 7, price 9.5, when 1000 (sorted by name). */
static const hdb_attr POINT[] = {{"color", {.type = HDB_ATTR_STRING, .u.s = {"red", 3}}},
                                 {"n", {.type = HDB_ATTR_INT64, .u.i = 7}},
                                 {"price", {.type = HDB_ATTR_FLOAT64, .u.f = 9.5}},
                                 {"when", {.type = HDB_ATTR_TIMESTAMP, .u.i = 1000}}};
#define NPOINT 4

static bool eval(const hdb_filter *f) {
    return hdb_filter_eval(f, POINT, NPOINT);
}

static hdb_filter range(const char *name, const hdb_value *lo, bool lo_incl, const hdb_value *hi,
                        bool hi_incl) {
    hdb_filter f = {.op = HDB_FILTER_RANGE, .name = name};
    if (lo) f.has_lo = true, f.lo = *lo, f.lo_incl = lo_incl;
    if (hi) f.has_hi = true, f.hi = *hi, f.hi_incl = hi_incl;
    return f;
}

static void test_conditions(void **state) {
    (void)state;
    hdb_value red = S("red"), blue = S("blue"), seven = I(7), seven_f = F(7.0);
    hdb_filter eq = {.op = HDB_FILTER_EQUALS, .name = "color", .values = &red, .nvalues = 1};
    assert_true(eval(&eq));
    eq.values = &blue;
    assert_false(eval(&eq));
    eq = (hdb_filter){.op = HDB_FILTER_EQUALS, .name = "n", .values = &seven, .nvalues = 1};
    assert_true(eval(&eq));
    eq.values = &seven_f; /* a float64 7.0 is not the int64 7 for equality */
    assert_false(eval(&eq));
    hdb_value colors[] = {S("blue"), S("red")};
    hdb_filter in = {.op = HDB_FILTER_ONE_OF, .name = "color", .values = colors, .nvalues = 2};
    assert_true(eval(&in));
    in.nvalues = 1;
    assert_false(eval(&in));

    hdb_value lo = I(7), hi = F(9.5);
    hdb_filter r = range("n", &lo, true, NULL, false);
    assert_true(eval(&r));
    r = range("n", &lo, false, NULL, false);
    assert_false(eval(&r)); /* 7 > 7 */
    r = range("price", &lo, false, &hi, true);
    assert_true(eval(&r)); /* 7 < 9.5 <= 9.5: int and float bounds mix */
    r = range("price", NULL, false, &hi, false);
    assert_false(eval(&r));
    hdb_value t0 = TS(999), t1 = TS(1000);
    r = range("when", &t0, false, &t1, true);
    assert_true(eval(&r));
    r = range("when", &lo, true, NULL, false); /* an int bound does not compare to a time */
    assert_false(eval(&r));
    r = range("color", &lo, true, NULL, false); /* nor to a string payload */
    assert_false(eval(&r));

    hdb_filter ex = {.op = HDB_FILTER_EXISTS, .name = "price", .exists = true};
    assert_true(eval(&ex));
    ex.name = "nope";
    assert_false(eval(&ex));
    ex.exists = false;
    assert_true(eval(&ex));
    /* Every test but "missing" fails on an attribute the point lacks. */
    eq = (hdb_filter){.op = HDB_FILTER_EQUALS, .name = "nope", .values = &seven, .nvalues = 1};
    assert_false(eval(&eq));
    r = range("nope", &lo, true, NULL, false);
    assert_false(eval(&r));
}

static void test_trees(void **state) {
    (void)state;
    hdb_value red = S("red"), eight = I(8);
    hdb_filter kids[2] = {
        {.op = HDB_FILTER_EQUALS, .name = "color", .values = &red, .nvalues = 1},
        {.op = HDB_FILTER_EQUALS, .name = "n", .values = &eight, .nvalues = 1}};
    hdb_filter all = {.op = HDB_FILTER_ALL, .kids = kids, .nkids = 2};
    hdb_filter any = {.op = HDB_FILTER_ANY, .kids = kids, .nkids = 2};
    hdb_filter not_all = {.op = HDB_FILTER_NOT, .kids = &all, .nkids = 1};
    assert_false(eval(&all));
    assert_true(eval(&any));
    assert_true(eval(&not_all));
    assert_int_equal(hdb_filter_conditions(&not_all), 2);
}

static void check_is(const hdb_filter *f, const char *want) {
    static const hdb_filter_attr perm[] = {{"n", HDB_ATTR_INT64}, {"color", HDB_ATTR_STRING}};
    char err[512] = "";
    int rc = hdb_filter_check(f, "filter", perm, 2, err, sizeof err);
    if (want == NULL) {
        assert_int_equal(rc, HDB_OK);
        return;
    }
    assert_int_equal(rc, HDB_EINVAL);
    if (strstr(err, want) == NULL) fail_msg("got \"%s\", want \"%s\"", err, want);
}

static void test_checks(void **state) {
    (void)state;
    hdb_value s = S("x"), i = I(1), f = F(1.5), b = {.type = HDB_ATTR_BOOL, .u.b = true};
    hdb_filter eq = {.op = HDB_FILTER_EQUALS, .name = "n", .values = &s, .nvalues = 1};
    check_is(&eq, "filter.condition.equals: attribute \"n\" is a permanent attribute of "
                      "type int64, the value is string");
    eq.values = &i;
    check_is(&eq, NULL);
    eq.name = "payload";
    eq.values = &f;
    check_is(&eq, "cannot be tested for equality");
    eq.values = &b; /* payloads are free: any comparable type */
    check_is(&eq, NULL);
    hdb_filter r = range("color", &i, true, NULL, false);
    check_is(&r, "filter.condition.range: attribute \"color\" is a permanent attribute");
    r = range("n", &f, true, NULL, false); /* a float bound on an int attribute: allowed */
    check_is(&r, NULL);
    r = range("n", NULL, false, NULL, false);
    check_is(&r, "filter.condition.range: needs gt, gte, lt or lte");
    hdb_filter empty = {.op = HDB_FILTER_ANY, .nkids = 0};
    check_is(&empty, "filter.any.filters: needs at least one filter");
    hdb_filter kids[2] = {eq, {.op = 0}};
    hdb_filter all = {.op = HDB_FILTER_ALL, .kids = kids, .nkids = 2};
    check_is(&all, "filter.all.filters[1]: one of all, any, negate or condition");
    hdb_filter noname = {.op = HDB_FILTER_EXISTS, .name = ""};
    check_is(&noname, "filter.condition.attribute: is required");
    /* Depth: 16 levels pass, 17 do not. */
    hdb_filter chain[17];
    chain[16] = (hdb_filter){.op = HDB_FILTER_EXISTS, .name = "n", .exists = true};
    for (int k = 15; k >= 0; k--)
        chain[k] = (hdb_filter){.op = HDB_FILTER_NOT, .kids = &chain[k + 1], .nkids = 1};
    check_is(&chain[1], NULL);
    check_is(&chain[0], "nests deeper than 16 levels");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_conditions),
        cmocka_unit_test(test_trees),
        cmocka_unit_test(test_checks),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
