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
#include "hdb_file.h"
#include "hdb_index.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

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

static hdb_index_params params(const char **names, hdb_attr_type *types, size_t n) {
    hdb_index_params p = {.engine = {.algo = HDB_ALGO_FLAT, .dim = DIM, .metric = HDB_METRIC_L2},
                          .nsplit = n,
                          .split_names = names,
                          .split_types = types};
    return p;
}

static hdb_point as_point(const float *vec, hdb_attr *attrs, uint32_t nattrs) {
    return (hdb_point){.vec = vec, .dim = DIM, .attrs = attrs, .nattrs = nattrs};
}

static hdb_index *build(void) {
    const char *names[2] = {"color", "size"};
    hdb_attr_type types[2] = {HDB_ATTR_STRING, HDB_ATTR_INT64};
    hdb_index_params p = params(names, types, 2);
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
        hdb_point hp = as_point(pts[i].vec, attrs, 2);
        assert_int_equal(hdb_index_upsert(ix, i, &hp, err, sizeof err), HDB_OK);
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
    hdb_vecs v = {.dense = q};
    assert_int_equal(hdb_index_search(ix, NQ, &v, K, NULL, filter, nfilter, out, err, sizeof err),
                     HDB_OK);
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
    hdb_vecs v0 = {.dense = pts[0].vec};
    assert_int_equal(hdb_index_search(ix, 1, &v0, 10, NULL, f, 2, out, err, sizeof err), HDB_OK);
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
        hdb_point hp = as_point(NULL, attrs, 2);
        assert_int_equal(hdb_index_remove(ix, i, &hp, err, sizeof err), HDB_OK);
        pts[i].live = false;
    }
    /* Replacing a vector keeps the point in its split. */
    for (int i = 1; i < N; i += 6) {
        hdb_attr attrs[2];
        for (int d = 0; d < DIM; d++) pts[i].vec[d] = frand();
        make_attrs(&pts[i], attrs);
        hdb_point hp = as_point(pts[i].vec, attrs, 2);
        assert_int_equal(hdb_index_upsert(ix, i, &hp, err, sizeof err), HDB_OK);
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
    hdb_vecs v0 = {.dense = pts[0].vec};
    assert_int_equal(hdb_index_search(ix, 1, &v0, 4, NULL, &f, 1, out, err, sizeof err),
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
    hdb_point hp = as_point(pts[0].vec, &only, 1);
    assert_int_equal(hdb_index_upsert(ix, 9999, &hp, err, sizeof err), HDB_ECORRUPT);
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
    hdb_index_params p = {.engine = {.algo = HDB_ALGO_FLAT, .dim = 2, .metric = HDB_METRIC_IP}};
    hdb_index *ix;
    char err[256];
    assert_int_equal(hdb_index_create(&ix, &p, err, sizeof err), HDB_OK);
    float v[2] = {1, 0};
    hdb_point hp = {.vec = v, .dim = 2};
    assert_int_equal(hdb_index_upsert(ix, 5, &hp, err, sizeof err), HDB_OK);
    hdb_attr f = {.name = "x", .value = {.type = HDB_ATTR_INT64, .u.i = 1}};
    assert_int_equal(hdb_index_check_filter(ix, &f, 1, err, sizeof err), HDB_EINVAL);
    assert_non_null(strstr(err, "no split attributes"));
    hdb_hit out[1];
    float q[2] = {2, 0};
    hdb_vecs qv = {.dense = q};
    assert_int_equal(hdb_index_search(ix, 1, &qv, 1, NULL, NULL, 0, out, err, sizeof err), HDB_OK);
    assert_int_equal(out[0].label, 5);
    assert_float_equal(hdb_index_distance(HDB_METRIC_IP, out[0].score), 2.0, 1e-6);
    hdb_index_free(ix);
    p.engine.dim = 0;
    assert_int_equal(hdb_index_create(&ix, &p, err, sizeof err), HDB_EINVAL);
}

/* In one batch, the last change of a label wins, across splits of the batch. */
static void test_apply_last_wins(void **state) {
    (void)state;
    const char *names[1] = {"color"};
    hdb_attr_type types[1] = {HDB_ATTR_STRING};
    hdb_index_params p = params(names, types, 1);
    hdb_index *ix;
    char err[256];
    assert_int_equal(hdb_index_create(&ix, &p, err, sizeof err), HDB_OK);
    float a[DIM] = {1}, b[DIM] = {2}, c[DIM] = {3};
    hdb_attr red = {"color", {.type = HDB_ATTR_STRING, .u.s = {"red", 3}}};
    hdb_point pa = as_point(a, &red, 1), pb = as_point(b, &red, 1), pc = as_point(c, &red, 1);
    hdb_index_op ops[5] = {
        {.label = 1, .point = &pa}, {.label = 2, .point = &pb},
        {.label = 1, .remove = true, .point = &pa}, /* 1: upsert, remove -> gone */
        {.label = 2, .point = &pc},                 /* 2: b then c -> c */
        {.label = 3, .remove = true, .point = &pa}, /* 3: removal of an absent label */
    };
    assert_int_equal(hdb_index_apply(ix, 5, ops, err, sizeof err), HDB_OK);
    assert_int_equal(hdb_index_size(ix), 1);
    hdb_hit out[2];
    hdb_vecs q = {.dense = c};
    assert_int_equal(hdb_index_search(ix, 1, &q, 2, NULL, NULL, 0, out, err, sizeof err), HDB_OK);
    assert_int_equal(out[0].label, 2);
    assert_float_equal(out[0].score, 0.0, 1e-6);
    assert_int_equal(out[1].label, -1);
    hdb_index_free(ix);
}

static void tmpdir(char *buf, size_t n, const char *tag) {
    const char *base = getenv("HDB_TEST_TMP") ? getenv("HDB_TEST_TMP") : "/tmp";
    mkdir(base, 0755);
    snprintf(buf, n, "%s/%s.XXXXXX", base, tag);
    assert_non_null(mkdtemp(buf));
}

/* A backup's copy of a snapshot: the files of the current snapshot only, loadable on their
 * own, and ENOTFOUND where there is none. */
static void test_snapshot_copy(void **state) {
    (void)state;
    hdb_index *ix = build();
    char dir[512], dst[512], err[512], path[600];
    tmpdir(dir, sizeof dir, "test_index_src");
    tmpdir(dst, sizeof dst, "test_index_dst");
    uint64_t seq = 0, bytes = 0;
    assert_int_equal(hdb_index_snapshot_copy(dir, dst, &seq, &bytes, err, sizeof err),
                     HDB_ENOTFOUND);
    assert_int_equal(hdb_index_save(ix, dir, 700, err, sizeof err), HDB_OK);
    assert_int_equal(hdb_index_snapshot_copy(dir, dst, &seq, &bytes, err, sizeof err), HDB_OK);
    assert_int_equal(seq, 700);
    assert_true(bytes > 0);
    snprintf(path, sizeof path, "%s/s700-0.eng", dst);
    assert_int_equal(access(path, F_OK), 0);
    /* The source moves on; the copy keeps its own snapshot. */
    assert_int_equal(hdb_index_save(ix, dir, 701, err, sizeof err), HDB_OK);
    const char *names[2] = {"color", "size"};
    hdb_attr_type types[2] = {HDB_ATTR_STRING, HDB_ATTR_INT64};
    hdb_index_params p = params(names, types, 2);
    hdb_index *back;
    int64_t t;
    assert_int_equal(hdb_index_load(&back, &p, dst, &seq, &t, err, sizeof err), HDB_OK);
    assert_int_equal(seq, 700);
    assert_int_equal(hdb_index_size(back), N);
    hdb_index_free(back);
    hdb_index_free(ix);
    assert_int_equal(hdb_rmtree(dir, err, sizeof err), HDB_OK);
    assert_int_equal(hdb_rmtree(dst, err, sizeof err), HDB_OK);
}

static void test_snapshot_roundtrip(void **state) {
    (void)state;
    hdb_index *ix = build();
    char dir[512], err[512];
    tmpdir(dir, sizeof dir, "test_index");
    assert_int_equal(hdb_index_save(ix, dir, 600, err, sizeof err), HDB_OK);
    /* A second snapshot replaces the first; only its files remain. */
    assert_int_equal(hdb_index_save(ix, dir, 601, err, sizeof err), HDB_OK);
    char path[600];
    snprintf(path, sizeof path, "%s/s600-0.eng", dir);
    assert_int_not_equal(access(path, F_OK), 0);

    const char *names[2] = {"color", "size"};
    hdb_attr_type types[2] = {HDB_ATTR_STRING, HDB_ATTR_INT64};
    hdb_index_params p = params(names, types, 2);
    hdb_index *back;
    uint64_t seq;
    int64_t t;
    assert_int_equal(hdb_index_load(&back, &p, dir, &seq, &t, err, sizeof err), HDB_OK);
    assert_int_equal(seq, 601);
    assert_int_equal(hdb_index_applied(back), 601);
    assert_true(t > 0);
    assert_int_equal(hdb_index_size(back), N);
    assert_int_equal(hdb_index_nsplits(back), 12);
    hdb_index_free(ix);
    /* The loaded index answers like the original (checked against the brute force). */
    hdb_attr f = {.name = "color", .value = {.type = HDB_ATTR_STRING, .u.s = {"green", 5}}};
    check(back, &f, 1, 1, -1);
    check(back, NULL, 0, -1, -1);

    /* Another engine spec: refused as corrupt (for this index), so the caller rebuilds. */
    hdb_index_params other = p;
    other.engine.metric = HDB_METRIC_IP;
    hdb_index *x;
    assert_int_equal(hdb_index_load(&x, &other, dir, &seq, &t, err, sizeof err), HDB_ECORRUPT);
    assert_non_null(strstr(err, "engine"));

    /* A damaged engine file and a damaged manifest are both reported as corrupt. */
    snprintf(path, sizeof path, "%s/s601-3.eng", dir);
    FILE *fp = fopen(path, "r+b");
    assert_non_null(fp);
    fseek(fp, 40, SEEK_SET);
    fputc(0x5a, fp);
    fclose(fp);
    assert_int_equal(hdb_index_load(&x, &p, dir, &seq, &t, err, sizeof err), HDB_ECORRUPT);
    snprintf(path, sizeof path, "%s/MANIFEST", dir);
    fp = fopen(path, "r+b");
    fseek(fp, 3, SEEK_SET);
    fputc('X', fp);
    fclose(fp);
    assert_int_equal(hdb_index_load(&x, &p, dir, &seq, &t, err, sizeof err), HDB_ECORRUPT);
    assert_non_null(strstr(err, "checksum"));
    assert_int_equal(hdb_rmtree(dir, err, sizeof err), HDB_OK);
    assert_int_equal(hdb_index_load(&x, &p, dir, &seq, &t, err, sizeof err), HDB_ENOTFOUND);
    hdb_index_free(back);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_filters),
        cmocka_unit_test(test_remove_and_replace),
        cmocka_unit_test(test_bad_filters),
        cmocka_unit_test(test_split_listing_and_applied),
        cmocka_unit_test(test_no_split_attributes),
        cmocka_unit_test(test_apply_last_wins),
        cmocka_unit_test(test_snapshot_roundtrip),
        cmocka_unit_test(test_snapshot_copy),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
