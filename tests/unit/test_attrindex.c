/*
 * test_attrindex.c - attribute indexes (hdb_attrindex.h) against brute-force evaluation: random
 * points with keyword, number, timestamp and mixed-type payload attributes, put, replaced and
 * removed at random, then random filter trees; an exact answer must equal the labels that pass
 * hdb_filter_eval, a superset must contain them. Also: save and load give the same answers, a
 * damaged or foreign file is refused, a label past 2^32 makes the index give up, integers
 * past 2^53 make number ranges supersets, and hdb_hmap_del keeps lookups right.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "hdb_attrindex.h"
#include "hdb_err.h"
#include "hdb_hmap.h"
#include "hdb_mem.h"
#include "test_support.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NLABELS 3000
#define NATTR 5 /* per point, sorted by name: color, flag, n, price, when */

static const char *const NAMES[] = {"color", "n", "price", "when", "flag"};
static const char *const COLORS[] = {"red", "green", "blue", "black", "white", "cyan"};

typedef struct {
    bool live;
    hdb_attr attrs[NATTR];
    size_t nattrs;
} point;

static point pts[NLABELS];
static uint64_t rng = 88172645463325252ULL;

static uint64_t next(void) {
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

static hdb_value S(const char *s) {
    return (hdb_value){.type = HDB_ATTR_STRING, .u.s = {s, strlen(s)}};
}
static hdb_value I(int64_t v) { return (hdb_value){.type = HDB_ATTR_INT64, .u.i = v}; }
static hdb_value F(double v) { return (hdb_value){.type = HDB_ATTR_FLOAT64, .u.f = v}; }
static hdb_value TS(int64_t v) { return (hdb_value){.type = HDB_ATTR_TIMESTAMP, .u.i = v}; }
static hdb_value B(bool v) { return (hdb_value){.type = HDB_ATTR_BOOL, .u.b = v}; }

/* A random point; attributes missing at random, "price" int64 or float64 at random (a payload
 * attribute whose type varies per point). */
static void random_point(point *p) {
    p->live = true;
    p->nattrs = 0;
    if (next() % 8) p->attrs[p->nattrs++] = (hdb_attr){"color", S(COLORS[next() % 6])};
    if (next() % 4) p->attrs[p->nattrs++] = (hdb_attr){"flag", B(next() % 2)};
    if (next() % 8) p->attrs[p->nattrs++] = (hdb_attr){"n", I((int64_t)(next() % 100) - 20)};
    if (next() % 8) {
        hdb_value v = next() % 2 ? I((int64_t)(next() % 50)) : F((double)(next() % 5000) / 100.0);
        p->attrs[p->nattrs++] = (hdb_attr){"price", v};
    }
    if (next() % 8) p->attrs[p->nattrs++] = (hdb_attr){"when", TS((int64_t)(next() % 1000) * 1000)};
}

/* Random filters, built in a pool that lives for one check. */
static hdb_filter pool[4096];
static hdb_value vpool[4096];
static size_t npool, nvpool;

static hdb_filter *random_filter(int depth, bool unindexed_ok) {
    hdb_filter *f = &pool[npool++];
    memset(f, 0, sizeof *f);
    unsigned r = (unsigned)(next() % 10);
    if (depth < 3 && r < 3) {
        f->op = r == 0 ? HDB_FILTER_ALL : (r == 1 ? HDB_FILTER_ANY : HDB_FILTER_NOT);
        f->nkids = f->op == HDB_FILTER_NOT ? 1 : 1 + next() % 3;
        hdb_filter *kids = &pool[npool];
        npool += f->nkids;
        for (size_t i = 0; i < f->nkids; i++) {
            hdb_filter *k = random_filter(depth + 1, unindexed_ok);
            kids[i] = *k;
        }
        f->kids = kids;
        return f;
    }
    unsigned c = (unsigned)(next() % 7);
    switch (c) {
    case 0:
    case 1: {
        f->op = c == 0 ? HDB_FILTER_EQUALS : HDB_FILTER_ONE_OF;
        f->name = "color";
        f->nvalues = c == 0 ? 1 : 1 + next() % 3;
        f->values = &vpool[nvpool];
        for (size_t i = 0; i < f->nvalues; i++) vpool[nvpool++] = S(COLORS[next() % 6]);
        break;
    }
    case 2: {
        f->op = HDB_FILTER_RANGE;
        f->name = next() % 2 ? "n" : "price";
        int64_t a = (int64_t)(next() % 100) - 30, b = a + (int64_t)(next() % 60);
        if (next() % 4) f->has_lo = true, f->lo = next() % 2 ? I(a) : F((double)a + 0.5),
                        f->lo_incl = next() % 2;
        if (!f->has_lo || next() % 2)
            f->has_hi = true, f->hi = next() % 2 ? I(b) : F((double)b - 0.25),
            f->hi_incl = next() % 2;
        break;
    }
    case 3: {
        f->op = HDB_FILTER_RANGE;
        f->name = "when";
        int64_t a = (int64_t)(next() % 1000) * 1000;
        f->has_lo = true, f->lo = TS(a), f->lo_incl = next() % 2;
        f->has_hi = true, f->hi = TS(a + (int64_t)(next() % 300) * 1000), f->hi_incl = next() % 2;
        break;
    }
    case 4: {
        f->op = HDB_FILTER_EQUALS;
        f->name = next() % 2 ? "n" : "flag";
        f->values = &vpool[nvpool];
        vpool[nvpool++] = f->name[0] == 'n' ? I((int64_t)(next() % 100) - 20) : B(next() % 2);
        f->nvalues = 1;
        break;
    }
    case 5:
        f->op = HDB_FILTER_EXISTS;
        f->name = NAMES[next() % 5];
        f->exists = next() % 2;
        break;
    default: /* an attribute without an index (when allowed), else "price" exists */
        f->op = HDB_FILTER_EXISTS;
        f->name = unindexed_ok ? "other" : "price";
        f->exists = next() % 2;
        break;
    }
    return f;
}

/* Compares one selection with brute force over the live points. */
static void check_filter(hdb_attrindex *ai, const hdb_filter *f, size_t *exacts) {
    hdb_labelset *set;
    bool exact;
    hdb_attrindex_select(ai, f, &set, &exact);
    if (set == NULL) {
        assert_false(exact);
        return;
    }
    uint64_t want = 0;
    for (int64_t l = 0; l < NLABELS; l++) {
        bool pass = pts[l].live && hdb_filter_eval(f, pts[l].attrs, pts[l].nattrs);
        want += pass;
        if (pass) assert_true(hdb_labelset_has(set, l));
        else if (exact) assert_false(hdb_labelset_has(set, l));
    }
    if (exact) {
        assert_int_equal(hdb_labelset_count(set), want);
        (*exacts)++;
    }
    hdb_labelset_free(set);
}

static void apply_random_changes(hdb_attrindex *ai, size_t n) {
    for (size_t i = 0; i < n; i++) {
        int64_t l = (int64_t)(next() % NLABELS);
        if (next() % 4 == 0) {
            pts[l].live = false;
            hdb_attrindex_remove(ai, l);
        } else {
            random_point(&pts[l]);
            hdb_attrindex_put(ai, l, pts[l].attrs, pts[l].nattrs);
        }
    }
}

static hdb_attrindex *fresh(void) {
    hdb_attrindex *ai;
    char err[256];
    assert_int_equal(hdb_attrindex_create(&ai, 5, NAMES, err, sizeof err), HDB_OK);
    memset(pts, 0, sizeof pts);
    return ai;
}

static void test_matches_brute_force(void **state) {
    (void)state;
    hdb_attrindex *ai = fresh();
    size_t exacts = 0, checks = 0;
    for (int round = 0; round < 6; round++) {
        apply_random_changes(ai, round == 0 ? 2 * NLABELS : 600);
        uint64_t live = 0;
        for (int l = 0; l < NLABELS; l++) live += pts[l].live;
        assert_int_equal(hdb_attrindex_size(ai), live);
        for (int q = 0; q < 150; q++, checks++) {
            npool = nvpool = 0;
            check_filter(ai, random_filter(0, true), &exacts);
        }
    }
    /* Filters on indexed attributes only are answered exactly. */
    for (int q = 0; q < 200; q++) {
        npool = nvpool = 0;
        size_t before = exacts;
        check_filter(ai, random_filter(0, false), &exacts);
        assert_int_equal(exacts, before + 1);
    }
    assert_true(exacts > checks / 4);
    hdb_attrindex_free(ai);
}

static void test_save_load(void **state) {
    (void)state;
    char dir[512], path[600], err[256];
    assert_int_equal(hdb_test_tmpdir(dir, sizeof dir, "attrindex"), 0);
    snprintf(path, sizeof path, "%s/a.attrs", dir);
    hdb_attrindex *ai = fresh();
    apply_random_changes(ai, 2 * NLABELS);
    assert_int_equal(hdb_attrindex_save(ai, path, err, sizeof err), HDB_OK);
    hdb_attrindex *back;
    assert_int_equal(hdb_attrindex_create(&back, 5, NAMES, err, sizeof err), HDB_OK);
    assert_int_equal(hdb_attrindex_load(back, path, err, sizeof err), HDB_OK);
    assert_int_equal(hdb_attrindex_size(back), hdb_attrindex_size(ai));
    size_t exacts = 0;
    for (int q = 0; q < 200; q++) {
        npool = nvpool = 0;
        check_filter(back, random_filter(0, true), &exacts);
    }
    for (size_t i = 0; i < 5; i++) {
        uint64_t l1, d1, l2, d2;
        hdb_attrindex_stats(ai, i, &l1, &d1);
        hdb_attrindex_stats(back, i, &l2, &d2);
        assert_int_equal(l1, l2);
        assert_int_equal(d1, d2);
    }
    assert_true(hdb_attrindex_bytes(back) > 0);
    hdb_attrindex_free(back);

    /* Other attributes than the file's. */
    const char *other[] = {"color", "n"};
    assert_int_equal(hdb_attrindex_create(&back, 2, other, err, sizeof err), HDB_OK);
    assert_int_equal(hdb_attrindex_load(back, path, err, sizeof err), HDB_ECORRUPT);
    hdb_attrindex_free(back);

    /* A flipped byte fails the checksum. */
    FILE *fp = fopen(path, "r+b");
    assert_non_null(fp);
    fseek(fp, 40, SEEK_SET);
    int c = fgetc(fp);
    fseek(fp, 40, SEEK_SET);
    fputc(c ^ 0x5a, fp);
    fclose(fp);
    assert_int_equal(hdb_attrindex_create(&back, 5, NAMES, err, sizeof err), HDB_OK);
    assert_int_equal(hdb_attrindex_load(back, path, err, sizeof err), HDB_ECORRUPT);
    hdb_attrindex_free(back);
    hdb_attrindex_free(ai);
    hdb_test_rmdir(dir);
}

static void test_limits(void **state) {
    (void)state;
    char err[256];
    hdb_attrindex *ai;
    const char *dup[] = {"a", "a"};
    assert_int_equal(hdb_attrindex_create(&ai, 2, dup, err, sizeof err), HDB_EINVAL);
    assert_int_equal(hdb_attrindex_create(&ai, 0, NULL, err, sizeof err), HDB_EINVAL);

    const char *names[] = {"n"};
    assert_int_equal(hdb_attrindex_create(&ai, 1, names, err, sizeof err), HDB_OK);
    hdb_attr big[] = {{"n", I(INT64_C(1) << 60)}};
    hdb_attr small[] = {{"n", I(5)}};
    hdb_attrindex_put(ai, 1, big, 1);
    hdb_attrindex_put(ai, 2, small, 1);
    /* Past 2^53 doubles cannot tell integers apart: ranges on n become supersets. */
    hdb_value lo = I(INT64_C(1) << 60);
    hdb_filter f = {.op = HDB_FILTER_RANGE, .name = "n", .has_lo = true, .lo = lo,
                    .lo_incl = false};
    hdb_labelset *set;
    bool exact;
    hdb_attrindex_select(ai, &f, &set, &exact);
    assert_non_null(set);
    assert_false(exact);
    assert_true(hdb_labelset_has(set, 1)); /* a superset: 2^60 > 2^60 is false, yet kept */
    assert_false(hdb_labelset_has(set, 2));
    hdb_labelset_free(set);
    /* Equality stays exact. */
    hdb_filter eq = {.op = HDB_FILTER_EQUALS, .name = "n", .values = &small[0].value, .nvalues = 1};
    hdb_attrindex_select(ai, &eq, &set, &exact);
    assert_true(exact);
    assert_int_equal(hdb_labelset_count(set), 1);
    int64_t got[4];
    assert_int_equal(hdb_labelset_read(set, 0, got, 4), 1);
    assert_int_equal(got[0], 2);
    hdb_labelset_free(set);
    /* A label past 2^32 makes the index give up rather than be wrong. */
    hdb_attrindex_put(ai, INT64_C(1) << 33, small, 1);
    hdb_attrindex_select(ai, &eq, &set, &exact);
    assert_null(set);
    assert_false(exact);
    hdb_attrindex_free(ai);
}

static void test_hmap_del(void **state) {
    (void)state;
    hdb_hmap *m = hdb_hmap_create();
    enum { N = 5000 };
    for (uint32_t i = 0; i < N; i++) hdb_hmap_put(m, &i, sizeof i, (void *)(uintptr_t)(i + 1));
    for (uint32_t i = 0; i < N; i += 3)
        assert_int_equal((uintptr_t)hdb_hmap_del(m, &i, sizeof i), i + 1);
    uint32_t absent = N + 7;
    assert_null(hdb_hmap_del(m, &absent, sizeof absent));
    for (uint32_t i = 0; i < N; i++) {
        void *v = hdb_hmap_get(m, &i, sizeof i);
        if (i % 3 == 0) assert_null(v);
        else assert_int_equal((uintptr_t)v, i + 1);
    }
    assert_int_equal(hdb_hmap_size(m), N - (N + 2) / 3);
    hdb_hmap_free(m);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_matches_brute_force),
        cmocka_unit_test(test_save_load),
        cmocka_unit_test(test_limits),
        cmocka_unit_test(test_hmap_del),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
