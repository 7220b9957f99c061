/*
 * test_index.c - unit tests of hdb_index: points land in the split of their split-attribute
 * values, full and partial split filters select the right splits and merge them exactly like a
 * brute force over the selected points, bad filters are refused with the key named, and split
 * listings report sizes.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "hdb_err.h"
#include "hdb_index.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define DIM 8
#define N 600

static uint64_t rng = 88172645463325252ULL;
static float frand(void) {
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (float)(rng >> 40) / (float)(1 << 24) - 0.5f;
}

static const char *colors[] = {"red", "green", "blue"};

typedef struct {
    float vec[DIM];
    int color; /* index into colors */
    int64_t size;
    bool live;
} pt;

static pt pts[N];

static void make_attrs(const pt *p, hdb_attr *attrs) {
    /* sorted by name: color, size */
    attrs[0].name = "color";
    attrs[0].value.type = HDB_ATTR_STRING;
    attrs[0].value.u.s.p = colors[p->color];
    attrs[0].value.u.s.n = strlen(colors[p->color]);
    attrs[1].name = "size";
    attrs[1].value.type = HDB_ATTR_INT64;
    attrs[1].value.u.i = p->size;
}

static hdb_index *build(void) {
    const char *names[2] = {"color", "size"};
    hdb_attr_type types[2] = {HDB_ATTR_STRING, HDB_ATTR_INT64};
    hdb_index_params p = {.dim = DIM, .metric = HDB_METRIC_L2, .nsplit = 2, .split_names = names,
                          .split_types = types};
    hdb_index *ix;
    char err[256];
    assert_int_equal(hdb_index_create(&ix, &p, err, sizeof err), HDB_OK);
    for (int i = 0; i < N; i++) {
        for (int d = 0; d < DIM; d++) pts[i].vec[d] = frand();
        pts[i].color = i % 3;
        pts[i].size = i % 4;
        pts[i].live = true;
        hdb_attr attrs[2];
        make_attrs(&pts[i], attrs);
        assert_int_equal(hdb_index_upsert(ix, i, pts[i].vec, attrs, 2, err, sizeof err), HDB_OK);
    }
    return ix;
}

static float l2(const float *a, const float *b) {
    double s = 0;
    for (int d = 0; d < DIM; d++) s += ((double)a[d] - b[d]) * ((double)a[d] - b[d]);
    return (float)s;
}

/* Brute force over the live points matching (color, size); -1 means any. */
static void brute(const float *q, int color, int64_t size, size_t k, int64_t *labels) {
    float best[N];
    int64_t lab[N];
    size_t n = 0;
    for (int i = 0; i < N; i++) {
        if (!pts[i].live || (color >= 0 && pts[i].color != color) ||
            (size >= 0 && pts[i].size != size))
            continue;
        best[n] = l2(q, pts[i].vec);
        lab[n++] = i;
    }
    for (size_t j = 0; j < k; j++) {
        size_t m = j;
        for (size_t x = j + 1; x < n; x++)
            if (best[x] < best[m] || (best[x] == best[m] && lab[x] < lab[m])) m = x;
        if (j < n) {
            float tb = best[j];
            int64_t tl = lab[j];
            best[j] = best[m];
            lab[j] = lab[m];
            best[m] = tb;
            lab[m] = tl;
            labels[j] = lab[j];
        } else {
            labels[j] = -1;
        }
    }
}

static void check(hdb_index *ix, const hdb_attr *filter, size_t nfilter, int color, int64_t size) {
    enum { K = 15, NQ = 5 };
    float q[NQ * DIM];
    for (int i = 0; i < NQ * DIM; i++) q[i] = frand();
    hdb_hit out[NQ * K];
    char err[256];
    assert_int_equal(hdb_index_search(ix, NQ, q, K, filter, nfilter, out, err, sizeof err), HDB_OK);
    for (int i = 0; i < NQ; i++) {
        int64_t want[K];
        brute(q + i * DIM, color, size, K, want);
        for (int j = 0; j < K; j++) {
            assert_int_equal(out[i * K + j].label, want[j]);
            if (want[j] >= 0)
                assert_float_equal(out[i * K + j].score, l2(q + i * DIM, pts[want[j]].vec), 1e-4);
        }
    }
}

static void test_filters(void **state) {
    (void)state;
    hdb_index *ix = build();
    assert_int_equal(hdb_index_size(ix), N);
    assert_int_equal(hdb_index_nsplits(ix), 12); /* 3 colors x 4 sizes */
    check(ix, NULL, 0, -1, -1);                  /* all splits, merged */

    hdb_attr f[2];
    f[0].name = "color";
    f[0].value.type = HDB_ATTR_STRING;
    f[0].value.u.s.p = "blue";
    f[0].value.u.s.n = 4;
    check(ix, f, 1, 2, -1); /* partial: the four blue splits */
    f[1].name = "size";
    f[1].value.type = HDB_ATTR_INT64;
    f[1].value.u.i = 3;
    check(ix, f, 2, 2, 3);  /* full: one split */
    check(ix, f + 1, 1, -1, 3);

    /* A filter that matches nothing gives empty results, not an error. */
    f[0].value.u.s.p = "purple";
    f[0].value.u.s.n = 6;
    hdb_hit out[10];
    char err[256];
    assert_int_equal(hdb_index_search(ix, 1, pts[0].vec, 10, f, 2, out, err, sizeof err), HDB_OK);
    for (int j = 0; j < 10; j++) assert_int_equal(out[j].label, -1);
    hdb_index_free(ix);
}

static void test_remove_and_replace(void **state) {
    (void)state;
    hdb_index *ix = build();
    char err[256];
    for (int i = 0; i < N; i += 2) {
        hdb_attr attrs[2];
        make_attrs(&pts[i], attrs);
        assert_int_equal(hdb_index_remove(ix, i, attrs, 2, err, sizeof err), HDB_OK);
        pts[i].live = false;
    }
    /* Replacing a vector keeps the point in its split. */
    for (int i = 1; i < N; i += 6) {
        hdb_attr attrs[2];
        for (int d = 0; d < DIM; d++) pts[i].vec[d] = frand();
        make_attrs(&pts[i], attrs);
        assert_int_equal(hdb_index_upsert(ix, i, pts[i].vec, attrs, 2, err, sizeof err), HDB_OK);
    }
    assert_int_equal(hdb_index_size(ix), N / 2);
    check(ix, NULL, 0, -1, -1);
    hdb_attr f = {.name = "color", .value = {.type = HDB_ATTR_STRING, .u.s = {"red", 3}}};
    check(ix, &f, 1, 0, -1);
    hdb_index_free(ix);
    for (int i = 0; i < N; i++) pts[i].live = true;
}

static void test_bad_filters(void **state) {
    (void)state;
    hdb_index *ix = build();
    char err[256];
    hdb_hit out[4];
    hdb_attr f = {.name = "weight", .value = {.type = HDB_ATTR_INT64, .u.i = 1}};
    assert_int_equal(hdb_index_search(ix, 1, pts[0].vec, 4, &f, 1, out, err, sizeof err),
                     HDB_EINVAL);
    assert_non_null(strstr(err, "split_filter[\"weight\"]"));
    assert_non_null(strstr(err, "color, size"));
    f.name = "size";
    f.value.type = HDB_ATTR_STRING;
    f.value.u.s.p = "3";
    f.value.u.s.n = 1;
    assert_int_equal(hdb_index_check_filter(ix, &f, 1, err, sizeof err), HDB_EINVAL);
    assert_non_null(strstr(err, "has type string, the split attribute is int64"));
    /* A point without its split attributes is refused. */
    hdb_attr only = {.name = "color", .value = {.type = HDB_ATTR_STRING, .u.s = {"red", 3}}};
    assert_int_equal(hdb_index_upsert(ix, 9999, pts[0].vec, &only, 1, err, sizeof err),
                     HDB_ECORRUPT);
    assert_int_equal(hdb_index_size(ix), N);
    hdb_index_free(ix);
}

typedef struct {
    uint64_t total;
    size_t splits;
} tally;

static void count_split(const hdb_value *values, size_t n, uint64_t size, void *arg) {
    tally *t = arg;
    assert_int_equal(n, 2);
    assert_int_equal(values[0].type, HDB_ATTR_STRING);
    assert_int_equal(values[1].type, HDB_ATTR_INT64);
    /* 600 points over 12 (color, size) combinations, 50 each. */
    assert_int_equal(size, 50);
    t->total += size;
    t->splits++;
}

static void test_split_listing_and_applied(void **state) {
    (void)state;
    hdb_index *ix = build();
    tally t = {0, 0};
    hdb_index_foreach_split(ix, count_split, &t);
    assert_int_equal(t.splits, 12);
    assert_int_equal(t.total, N);
    assert_int_equal(hdb_index_applied(ix), 0);
    hdb_index_set_applied(ix, 77);
    assert_int_equal(hdb_index_applied(ix), 77);
    assert_true(hdb_index_distance(HDB_METRIC_IP, -3.0f) == 3.0f);
    assert_true(hdb_index_distance(HDB_METRIC_L2, 3.0f) == 3.0f);
    hdb_index_free(ix);
}

static void test_no_split_attributes(void **state) {
    (void)state;
    hdb_index_params p = {.dim = 2, .metric = HDB_METRIC_IP};
    hdb_index *ix;
    char err[256];
    assert_int_equal(hdb_index_create(&ix, &p, err, sizeof err), HDB_OK);
    float v[2] = {1, 0};
    assert_int_equal(hdb_index_upsert(ix, 5, v, NULL, 0, err, sizeof err), HDB_OK);
    hdb_attr f = {.name = "x", .value = {.type = HDB_ATTR_INT64, .u.i = 1}};
    assert_int_equal(hdb_index_check_filter(ix, &f, 1, err, sizeof err), HDB_EINVAL);
    assert_non_null(strstr(err, "no split attributes"));
    hdb_hit out[1];
    float q[2] = {2, 0};
    assert_int_equal(hdb_index_search(ix, 1, q, 1, NULL, 0, out, err, sizeof err), HDB_OK);
    assert_int_equal(out[0].label, 5);
    assert_float_equal(hdb_index_distance(HDB_METRIC_IP, out[0].score), 2.0, 1e-6);
    hdb_index_free(ix);
    p.dim = 0;
    assert_int_equal(hdb_index_create(&ix, &p, err, sizeof err), HDB_EINVAL);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_filters),
        cmocka_unit_test(test_remove_and_replace),
        cmocka_unit_test(test_bad_filters),
        cmocka_unit_test(test_split_listing_and_applied),
        cmocka_unit_test(test_no_split_attributes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
