/*
 * test_sparse.c - cmocka tests for hdb_sparse: create arguments; hand-computed COSINE and
 * JACCARD results (fill with score 1, negative cosines ranking after the fill, empty vectors
 * and queries); search against a double-precision brute force on random sparse data for
 * several k (including k > size), with label tie-breaks; replace / remove against a reference
 * model and heavy churn that must trigger compaction and keep memory bounded; save / load
 * round trips, mismatched parameters, truncation at every cut point, flipped bytes, garbage,
 * hand-built files with a valid CRC but bad contents, missing files; and concurrent searches
 * while a writer churns.
 *
 * The engine's two .c files are included (STYLE.md §11): hdb_sparse.c to read its internal
 * counters, hdb_sparse_io.c for the file format's constants and byte helpers.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "../../src/index/hdb_sparse.c"
#include "../../src/index/hdb_sparse_io.c"

#include "hdb_crc.h" /* hand-built files with a valid CRC */

#include <stdatomic.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* ---- fixed-seed PRNG (xorshift64*) -------------------------------------------------------- */

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;

static uint64_t rng_next_s(uint64_t *st) {
    *st ^= *st >> 12;
    *st ^= *st << 25;
    *st ^= *st >> 27;
    return *st * 2685821657736338717ull;
}

static uint64_t rng_next(void) {
    return rng_next_s(&rng_state);
}

static uint64_t rng_below(uint64_t n) {
    return rng_next() % n;
}

/* Uniform in [-1, 1). */
static float rng_float(void) {
    return (float)((double)(rng_next() >> 40) / 16777216.0 * 2.0 - 1.0);
}

/* ---- owned vectors and a reference model -------------------------------------------------- */

typedef struct {
    uint32_t idx[64];
    float val[64];
    uint32_t n;
} vec;

static hdb_sparse_vec view(const vec *v) {
    hdb_sparse_vec s = {.idx = v->idx, .val = v->val, .n = v->n};
    return s;
}

static int cmp_u32(const void *a, const void *b) {
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return (x > y) - (x < y);
}

/* A vector of nnz distinct sorted indices in [lo, hi), values in [-1,1) (or (0,1] when
 * positive). */
static void rand_vec(vec *v, uint32_t nnz, uint32_t lo, uint32_t hi, int positive) {
    HDB_ASSERT(nnz <= 64 && nnz <= hi - lo);
    v->n = 0;
    while (v->n < nnz) {
        uint32_t x = lo + (uint32_t)rng_below(hi - lo);
        int dup = 0;
        for (uint32_t j = 0; j < v->n; j++)
            dup |= v->idx[j] == x;
        if (!dup) v->idx[v->n++] = x;
    }
    qsort(v->idx, v->n, sizeof v->idx[0], cmp_u32);
    for (uint32_t j = 0; j < v->n; j++) {
        float f = rng_float();
        v->val[j] = positive ? 1.0f - fabsf(f) : f;
    }
}

/* Reference: labels 0..maxlabel-1, present[label] says whether it is stored. */
typedef struct {
    size_t maxlabel;
    vec *v;
    uint8_t *present;
    size_t n;
} model;

static void model_init(model *m, size_t maxlabel) {
    m->maxlabel = maxlabel;
    m->v = calloc(maxlabel, sizeof *m->v);
    m->present = calloc(maxlabel, 1);
    m->n = 0;
    assert_non_null(m->v);
    assert_non_null(m->present);
}

static void model_free(model *m) {
    free(m->v);
    free(m->present);
}

static void model_put(model *m, hdb_sparse *s, int64_t label, const vec *v) {
    hdb_sparse_vec sv = view(v);
    char err[128];
    assert_int_equal(hdb_sparse_upsert(s, 1, &label, &sv, err, sizeof err), HDB_OK);
    m->n += !m->present[label];
    m->present[label] = 1;
    m->v[label] = *v;
}

static void model_del(model *m, hdb_sparse *s, int64_t label) {
    size_t want = m->present[label];
    assert_int_equal(hdb_sparse_remove(s, 1, &label), want);
    m->n -= want;
    m->present[label] = 0;
}

static double exact_score(hdb_metric metric, const vec *q, const vec *x) {
    double dot = 0, qq = 0, xx = 0;
    uint32_t inter = 0;
    for (uint32_t i = 0, j = 0; i < q->n && j < x->n;) {
        if (q->idx[i] < x->idx[j])
            i++;
        else if (q->idx[i] > x->idx[j])
            j++;
        else {
            dot += (double)q->val[i] * x->val[j];
            inter++;
            i++;
            j++;
        }
    }
    if (metric == HDB_METRIC_JACCARD) {
        double uni = (double)q->n + x->n - inter;
        return uni > 0 ? 1.0 - inter / uni : 1.0;
    }
    for (uint32_t i = 0; i < q->n; i++)
        qq += (double)q->val[i] * q->val[i];
    for (uint32_t j = 0; j < x->n; j++)
        xx += (double)x->val[j] * x->val[j];
    return (qq > 0 && xx > 0) ? 1.0 - dot / (sqrt(qq) * sqrt(xx)) : 1.0;
}

typedef struct {
    double score;
    int64_t label;
} ref_hit;

static int ref_cmp(const void *pa, const void *pb) {
    const ref_hit *a = pa, *b = pb;
    if (a->score < b->score) return -1;
    if (a->score > b->score) return 1;
    return (a->label > b->label) - (a->label < b->label);
}

/*
 * Checks one query's k hits against the brute force over the model:
 *  - exactly min(k, n) hits, sorted (score, then label), distinct, stored labels, then padding;
 *  - each hit's score equals its exact score (within 1e-4 for COSINE; JACCARD exactly);
 *  - JACCARD: the labels equal the reference's one for one (exact scores, exact ties);
 *  - COSINE: position by position the scores match the reference, and a label outside the
 *    reference top k is allowed only when it ties (within tolerance) with the k-th score.
 */
static void check_query(hdb_metric metric, const model *m, const vec *q, size_t k,
                        const hdb_hit *got) {
    ref_hit *ref = malloc((m->n ? m->n : 1) * sizeof *ref);
    size_t n = 0;
    for (size_t l = 0; l < m->maxlabel; l++) {
        if (!m->present[l]) continue;
        ref[n].score = exact_score(metric, q, &m->v[l]);
        ref[n].label = (int64_t)l;
        n++;
    }
    assert_int_equal(n, m->n);
    qsort(ref, n, sizeof *ref, ref_cmp);
    const double tol = metric == HDB_METRIC_JACCARD ? 0.0 : 1e-4;
    size_t want = n < k ? n : k;

    for (size_t i = 0; i < want; i++) {
        int64_t label = got[i].label;
        if (label < 0 || (size_t)label >= m->maxlabel || !m->present[label])
            fail_msg("slot %zu of %zu: label %lld is not stored", i, want, (long long)label);
        if (i > 0 && (got[i].score < got[i - 1].score ||
                      (got[i].score == got[i - 1].score && got[i].label <= got[i - 1].label)))
            fail_msg("slot %zu not sorted (%.9g/%lld after %.9g/%lld)", i, (double)got[i].score,
                     (long long)got[i].label, (double)got[i - 1].score,
                     (long long)got[i - 1].label);
        double exact = exact_score(metric, q, &m->v[label]);
        if (metric == HDB_METRIC_JACCARD) {
            if (got[i].score != (float)exact || label != ref[i].label)
                fail_msg("slot %zu: got %lld/%.9g, reference %lld/%.9g", i, (long long)label,
                         (double)got[i].score, (long long)ref[i].label, ref[i].score);
            continue;
        }
        if (!(fabs(got[i].score - exact) <= tol))
            fail_msg("slot %zu label %lld: score %.9g, exact %.9g", i, (long long)label,
                     (double)got[i].score, exact);
        if (!(fabs(got[i].score - ref[i].score) <= tol))
            fail_msg("slot %zu: score %.9g, reference %.9g", i, (double)got[i].score, ref[i].score);
        int in_ref = 0;
        for (size_t j = 0; j < want; j++)
            in_ref |= ref[j].label == label;
        if (!in_ref && !(fabs(exact - ref[want - 1].score) <= 2 * tol))
            fail_msg("label %lld (score %.9g) is not among the true top %zu (k-th %.9g)",
                     (long long)label, exact, want, ref[want - 1].score);
    }
    for (size_t i = 0; i < want; i++) /* labels distinct */
        for (size_t j = 0; j < i; j++)
            if (got[i].label == got[j].label) fail_msg("label %lld twice", (long long)got[i].label);
    for (size_t i = want; i < k; i++) {
        assert_int_equal(got[i].label, -1);
        assert_true(isinf(got[i].score) && got[i].score > 0);
    }
    free(ref);
}

/* Searches in the automatic, the sparse and the dense accumulation mode and checks each. */
static void search_check(hdb_sparse *s, const model *m, const vec *qs, size_t nq, size_t k) {
    hdb_sparse_vec *qv = malloc(nq * sizeof *qv);
    hdb_hit *out = malloc(nq * k * sizeof *out);
    char err[128];
    for (size_t i = 0; i < nq; i++)
        qv[i] = view(&qs[i]);
    for (int mode = 0; mode < 3; mode++) {
        s->mode_override = mode;
        assert_int_equal(hdb_sparse_search(s, nq, qv, k, out, err, sizeof err), HDB_OK);
        for (size_t i = 0; i < nq; i++)
            check_query(s->metric, m, &qs[i], k, out + i * k);
    }
    s->mode_override = 0;
    free(out);
    free(qv);
}

static hdb_sparse *make(uint32_t dim, hdb_metric metric) {
    hdb_sparse *s = NULL;
    hdb_sparse_params p = {.dim = dim, .metric = metric};
    char err[128];
    assert_int_equal(hdb_sparse_create(&s, &p, err, sizeof err), HDB_OK);
    assert_non_null(s);
    return s;
}

/* Checks the engine's internal bookkeeping against itself and the model. */
static void check_internals(const hdb_sparse *s, const model *m) {
    size_t live = 0, live_postings = 0;
    assert_int_equal(s->nlive, m->n);
    assert_int_equal(s->nslots, s->nlive + s->ndead);
    assert_true(s->ndead * 4 <= s->nslots); /* compaction keeps dead slots <= 25% */
    assert_true(s->slot_cap <= SLOT_INIT_CAP || s->slot_cap < 4 * s->nslots + 4);
    for (size_t i = 0; i < s->nslots; i++) {
        if (s->labels[i] < 0) continue;
        live++;
        live_postings += s->nnz[i];
        size_t pos = imap_find(&s->label_map, (uint64_t)s->labels[i]);
        assert_true(pos != SIZE_MAX && s->label_map.vals[pos] == i);
    }
    assert_int_equal(live, m->n);
    assert_int_equal(s->label_map.n, m->n);
    size_t np = 0;
    for (size_t li = 0; li < s->nlists; li++)
        np += s->lists[li].n;
    assert_int_equal(np, s->npostings);
    assert_true(s->npostings >= live_postings);
    assert_int_equal(s->dim_map.n, s->nlists);
}

/* ---- create ------------------------------------------------------------------------------- */

static void test_create_arguments(void **state) {
    (void)state;
    hdb_sparse *s = (hdb_sparse *)(uintptr_t)1;
    char err[128] = "";
    hdb_sparse_params p = {.dim = 10, .metric = HDB_METRIC_L2};
    assert_int_equal(hdb_sparse_create(&s, &p, err, sizeof err), HDB_EINVAL);
    assert_null(s);
    assert_non_null(strstr(err, "metric"));
    p.metric = HDB_METRIC_IP;
    assert_int_equal(hdb_sparse_create(&s, &p, NULL, 0), HDB_EINVAL);
    p.metric = (hdb_metric)0;
    assert_int_equal(hdb_sparse_create(&s, &p, NULL, 0), HDB_EINVAL);
    p.metric = HDB_METRIC_COSINE;
    p.dim = 0;
    err[0] = '\0';
    assert_int_equal(hdb_sparse_create(&s, &p, err, sizeof err), HDB_EINVAL);
    assert_null(s);
    assert_non_null(strstr(err, "dim"));
    assert_int_equal(hdb_sparse_create(&s, NULL, NULL, 0), HDB_EINVAL);
    p.dim = 10;
    assert_int_equal(hdb_sparse_create(NULL, &p, NULL, 0), HDB_EINVAL);

    p.metric = HDB_METRIC_JACCARD;
    assert_int_equal(hdb_sparse_create(&s, &p, err, sizeof err), HDB_OK);
    assert_int_equal(hdb_sparse_size(s), 0);
    /* bad upserts change nothing */
    int64_t labels[2] = {1, -5};
    uint32_t idx[1] = {3};
    float val[1] = {1};
    hdb_sparse_vec v[2] = {{idx, val, 1}, {idx, val, 1}};
    assert_int_equal(hdb_sparse_upsert(s, 2, labels, v, err, sizeof err), HDB_EINVAL);
    assert_int_equal(hdb_sparse_size(s), 0);
    assert_int_equal(hdb_sparse_upsert(s, 1, NULL, v, NULL, 0), HDB_EINVAL);
    hdb_hit out[2];
    hdb_sparse_vec q = {idx, val, 1};
    assert_int_equal(hdb_sparse_search(s, 1, &q, 0, out, err, sizeof err), HDB_EINVAL);
    assert_int_equal(hdb_sparse_search(s, 0, &q, 2, out, err, sizeof err), HDB_OK);
    hdb_sparse_free(s);
    hdb_sparse_free(NULL);
}

/* ---- hand-computed results ---------------------------------------------------------------- */

/* Expects exactly these hits (then padding) in all three accumulation modes. */
static void expect(hdb_sparse *s, const hdb_sparse_vec *q, size_t k, const int64_t *labels,
                   const float *scores, size_t n) {
    hdb_hit out[16];
    char err[128];
    assert_true(k <= 16);
    for (int mode = 0; mode < 3; mode++) {
        s->mode_override = mode;
        assert_int_equal(hdb_sparse_search(s, 1, q, k, out, err, sizeof err), HDB_OK);
        for (size_t i = 0; i < k; i++) {
            if (i < n) {
                if (out[i].label != labels[i] || fabsf(out[i].score - scores[i]) > 1e-6f)
                    fail_msg("mode %d hit %zu: got %lld/%.7g, want %lld/%.7g", mode, i,
                             (long long)out[i].label, (double)out[i].score, (long long)labels[i],
                             (double)scores[i]);
            } else {
                assert_int_equal(out[i].label, -1);
                assert_true(isinf(out[i].score));
            }
        }
    }
    s->mode_override = 0;
}

static void test_handmade_cosine(void **state) {
    (void)state;
    hdb_sparse *s = make(10, HDB_METRIC_COSINE);
    hdb_hit out[4];
    char err[128];
    uint32_t i12[] = {1, 2}, i2[] = {2}, i7[] = {7}, i9[] = {9};
    float v11[] = {1, 1}, v1[] = {1}, v2[] = {2}, vm1[] = {-1}, v0[] = {0};
    /* 5:{1:1,2:1}  3:{2:1}  9:{7:2}  1:{}  7:{2:-1}  8:{9:0} (a zero vector with an index) */
    int64_t labels[] = {5, 3, 9, 1, 7, 8};
    hdb_sparse_vec vs[] = {{i12, v11, 2},   {i2, v1, 1},  {i7, v2, 1},
                           {NULL, NULL, 0}, {i2, vm1, 1}, {i9, v0, 1}};

    /* empty engine: padding only */
    hdb_sparse_vec q = {i2, v1, 1};
    expect(s, &q, 3, NULL, NULL, 0);
    assert_int_equal(hdb_sparse_remove(s, 2, labels), 0);

    assert_int_equal(hdb_sparse_upsert(s, 6, labels, vs, err, sizeof err), HDB_OK);
    assert_int_equal(hdb_sparse_size(s), 6);
    const float r = (float)(1.0 - 1.0 / sqrt(2.0));
    /* query {2:1}: 3 -> 0, 5 -> 1-1/sqrt2, then the score-1 fill (1, 8, 9 by label), 7 -> 2 */
    expect(s, &q, 6, (int64_t[]){3, 5, 1, 8, 9, 7}, (float[]){0, r, 1, 1, 1, 2}, 6);
    expect(s, &q, 3, (int64_t[]){3, 5, 1}, (float[]){0, r, 1}, 3);
    expect(s, &q, 9, (int64_t[]){3, 5, 1, 8, 9, 7}, (float[]){0, r, 1, 1, 1, 2}, 6);
    /* query {2:-1}: 7 first, the fill, then 3 and 5 (negative cosine) */
    hdb_sparse_vec qn = {i2, vm1, 1};
    expect(s, &qn, 6, (int64_t[]){7, 1, 8, 9, 5, 3}, (float[]){0, 1, 1, 1, 2 - r, 2}, 6);
    expect(s, &qn, 2, (int64_t[]){7, 1}, (float[]){0, 1}, 2);
    /* an empty query and a zero query: everything scores 1, smallest labels first */
    hdb_sparse_vec qe = {NULL, NULL, 0};
    expect(s, &qe, 4, (int64_t[]){1, 3, 5, 7}, (float[]){1, 1, 1, 1}, 4);
    hdb_sparse_vec qz = {i2, v0, 1};
    expect(s, &qz, 7, (int64_t[]){1, 3, 5, 7, 8, 9}, (float[]){1, 1, 1, 1, 1, 1}, 6);
    /* an index nobody has */
    uint32_t i4[] = {4};
    hdb_sparse_vec q4 = {i4, v1, 1};
    expect(s, &q4, 2, (int64_t[]){1, 3}, (float[]){1, 1}, 2);
    /* {9:1} overlaps only the zero vector 8, a candidate at exactly 1: the fill with smaller
     * labels (same score) ranks before it */
    hdb_sparse_vec q9 = {i9, v1, 1};
    expect(s, &q9, 2, (int64_t[]){1, 3}, (float[]){1, 1}, 2);
    expect(s, &q9, 5, (int64_t[]){1, 3, 5, 7, 8}, (float[]){1, 1, 1, 1, 1}, 5);
    /* {1:1,2:-1} overlaps 5 with a dot product of exactly 0: it scores 1 and ranks among the
     * fill by label; 3 = {2:1} has a negative cosine */
    float v1m1[] = {1, -1};
    hdb_sparse_vec qc = {i12, v1m1, 2};
    expect(s, &qc, 6, (int64_t[]){7, 1, 5, 8, 9, 3}, (float[]){r, 1, 1, 1, 1, 2 - r}, 6);
    expect(s, &qc, 3, (int64_t[]){7, 1, 5}, (float[]){r, 1, 1}, 3);
    /* scaling does not matter for cosine */
    float v_big[] = {1000, 1000};
    hdb_sparse_vec q12 = {i12, v_big, 2};
    expect(s, &q12, 2, (int64_t[]){5, 3}, (float[]){0, r}, 2);

    /* replace 3 by {7:1}: now it ties with 9 for {7:...}; ties by label */
    int64_t l3 = 3;
    hdb_sparse_vec v3 = {i7, v1, 1};
    assert_int_equal(hdb_sparse_upsert(s, 1, &l3, &v3, err, sizeof err), HDB_OK);
    assert_int_equal(hdb_sparse_size(s), 6);
    hdb_sparse_vec q7 = {i7, v1, 1};
    expect(s, &q7, 3, (int64_t[]){3, 9, 1}, (float[]){0, 0, 1}, 3);
    expect(s, &q, 2, (int64_t[]){5, 1}, (float[]){r, 1}, 2);
    /* remove: gone from every result; absent labels ignored */
    int64_t rm[] = {9, 42, 9};
    assert_int_equal(hdb_sparse_remove(s, 3, rm), 1);
    assert_int_equal(hdb_sparse_size(s), 5);
    expect(s, &q7, 6, (int64_t[]){3, 1, 5, 7, 8}, (float[]){0, 1, 1, 1, 1}, 5);
    /* a batch of two queries */
    hdb_sparse_vec two[2] = {q7, q};
    assert_int_equal(hdb_sparse_search(s, 2, two, 2, out, err, sizeof err), HDB_OK);
    assert_int_equal(out[0].label, 3);
    assert_int_equal(out[1].label, 1);
    assert_int_equal(out[2].label, 5);
    assert_int_equal(out[3].label, 1);
    hdb_sparse_free(s);
}

static void test_handmade_jaccard(void **state) {
    (void)state;
    hdb_sparse *s = make(10, HDB_METRIC_JACCARD);
    char err[128];
    uint32_t i12[] = {1, 2}, i2[] = {2}, i7[] = {7}, i123[] = {1, 2, 3};
    float v11[] = {5, -3}, v1[] = {-1}, v2[] = {0}, v111[] = {1, 1, 1};
    int64_t labels[] = {5, 3, 9, 1, 6};
    hdb_sparse_vec vs[] = {
        {i12, v11, 2}, {i2, v1, 1}, {i7, v2, 1}, {NULL, NULL, 0}, {i123, v111, 3}};
    assert_int_equal(hdb_sparse_upsert(s, 5, labels, vs, err, sizeof err), HDB_OK);
    /* values are ignored: {2} -> 3: 0, 5: 1/2, 6: 2/3, then 1 and 9 at 1 */
    float val[] = {123};
    hdb_sparse_vec q = {i2, val, 1};
    expect(s, &q, 6, (int64_t[]){3, 5, 6, 1, 9}, (float[]){0, 0.5f, (float)(1.0 - 1.0 / 3), 1, 1},
           5);
    /* {1,2} -> 5: 0, 6: 1/3, 3: 1/2 */
    hdb_sparse_vec q12 = {i12, v11, 2};
    expect(s, &q12, 3, (int64_t[]){5, 6, 3}, (float[]){0, (float)(1.0 / 3), 0.5f}, 3);
    /* the empty query (and the empty vector 1: both empty scores 1) */
    hdb_sparse_vec qe = {NULL, NULL, 0};
    expect(s, &qe, 5, (int64_t[]){1, 3, 5, 6, 9}, (float[]){1, 1, 1, 1, 1}, 5);
    hdb_sparse_free(s);
}

/* ---- random data against the brute force -------------------------------------------------- */

#define BF_N 3000
#define BF_DIM 5000
#define BF_NQ 40

/* Fills the model with BF_N vectors under scattered labels; a few are exact duplicates of
 * others so that COSINE has exact ties. */
static void fill_random(model *m, hdb_sparse *s, int positive) {
    for (size_t i = 0; i < BF_N; i++) {
        vec v;
        int64_t label = (int64_t)((i * 7919) % (BF_N * 2));
        if (i % 50 == 49)
            v = m->v[(i - 10) * 7919 % (BF_N * 2)]; /* a duplicate */
        else
            rand_vec(&v, 5 + (uint32_t)rng_below(46), 0, BF_DIM, positive);
        model_put(m, s, label, &v);
    }
}

static void make_queries(const model *m, vec *qs, size_t nq) {
    for (size_t i = 0; i < nq; i++) {
        switch (i % 5) {
        case 0: { /* a stored vector (duplicated ones give exact ties) */
            size_t l;
            do
                l = rng_below(m->maxlabel);
            while (!m->present[l]);
            qs[i] = m->v[l];
            break;
        }
        case 1: /* one or two indices: few vectors overlap, the fill matters */
            rand_vec(&qs[i], 1 + (uint32_t)rng_below(2), 0, BF_DIM, 0);
            break;
        case 2: /* empty */
            qs[i].n = 0;
            break;
        default:
            rand_vec(&qs[i], 5 + (uint32_t)rng_below(46), 0, BF_DIM, 0);
            break;
        }
    }
}

static void brute_force_case(hdb_metric metric) {
    hdb_sparse *s = make(BF_DIM, metric);
    model m;
    vec *qs = malloc(BF_NQ * sizeof *qs);
    model_init(&m, BF_N * 2);
    fill_random(&m, s, 0);
    assert_int_equal(hdb_sparse_size(s), BF_N);
    make_queries(&m, qs, BF_NQ);
    const size_t ks[] = {1, 10, 100, BF_N + 500};
    for (size_t i = 0; i < sizeof ks / sizeof ks[0]; i++)
        search_check(s, &m, qs, ks[i] > 100 ? 6 : BF_NQ, ks[i]);
    /* a query equal to a duplicated vector returns both copies first, smaller label first */
    {
        int64_t a = (int64_t)((39 * 7919) % (BF_N * 2)), b = (int64_t)((49 * 7919) % (BF_N * 2));
        hdb_sparse_vec q = view(&m.v[a]);
        hdb_hit out[2];
        char err[64];
        assert_int_equal(hdb_sparse_search(s, 1, &q, 2, out, err, sizeof err), HDB_OK);
        assert_int_equal(out[0].label, a < b ? a : b);
        assert_int_equal(out[1].label, a < b ? b : a);
        assert_true(out[0].score == out[1].score);
    }
    check_internals(s, &m);
    free(qs);
    model_free(&m);
    hdb_sparse_free(s);
}

static void test_brute_force_cosine(void **state) {
    (void)state;
    brute_force_case(HDB_METRIC_COSINE);
}

static void test_brute_force_jaccard(void **state) {
    (void)state;
    brute_force_case(HDB_METRIC_JACCARD);
}

/* ---- replace, remove, churn --------------------------------------------------------------- */

static void replace_remove_case(hdb_metric metric) {
    hdb_sparse *s = make(800, metric);
    model m;
    vec qs[10];
    model_init(&m, 1000);
    for (int64_t l = 0; l < 500; l++) {
        vec v;
        rand_vec(&v, 3 + (uint32_t)rng_below(20), 0, 800, 0);
        model_put(&m, s, l * 2, &v);
    }
    /* replace 100 (batch), remove 100 (batch, with absent and repeated labels) */
    int64_t labels[100];
    vec nv[100];
    hdb_sparse_vec sv[100];
    for (size_t i = 0; i < 100; i++) {
        labels[i] = (int64_t)(i * 6);
        rand_vec(&nv[i], 3 + (uint32_t)rng_below(20), 0, 800, 0);
        sv[i] = view(&nv[i]);
        m.v[labels[i]] = nv[i];
    }
    char err[128];
    assert_int_equal(hdb_sparse_upsert(s, 100, labels, sv, err, sizeof err), HDB_OK);
    assert_int_equal(hdb_sparse_size(s), 500);
    size_t want = 0;
    for (size_t i = 0; i < 100; i++) /* odd labels are absent; the last one repeats */
        labels[i] = (int64_t)(i < 99 ? i * 5 : 98 * 5);
    for (size_t i = 0; i < 100; i++) {
        want += m.present[labels[i]];
        m.n -= m.present[labels[i]];
        m.present[labels[i]] = 0;
    }
    assert_int_equal(hdb_sparse_remove(s, 100, labels), want);
    assert_int_equal(hdb_sparse_size(s), m.n);
    check_internals(s, &m);
    /* the replaced vectors answer with their new values: a query equal to one finds it at 0 */
    for (size_t i = 1, nq = 0; nq < 10; i++)
        if (m.present[i * 6]) qs[nq++] = m.v[i * 6];
    search_check(s, &m, qs, 10, 5);
    search_check(s, &m, qs, 3, 600); /* k > size: every live label exactly once */
    for (size_t i = 0; i < 10; i++) {
        hdb_sparse_vec q = view(&qs[i]);
        hdb_hit out[1];
        assert_int_equal(hdb_sparse_search(s, 1, &q, 1, out, err, sizeof err), HDB_OK);
        assert_true(out[0].score <= 1e-6f);
    }
    model_free(&m);
    hdb_sparse_free(s);
}

static void test_replace_remove(void **state) {
    (void)state;
    replace_remove_case(HDB_METRIC_COSINE);
    replace_remove_case(HDB_METRIC_JACCARD);
}

static void churn_case(hdb_metric metric) {
    const uint32_t dim = 2000;
    const size_t maxlabel = 1500;
    hdb_sparse *s = make(dim, metric);
    model m;
    vec qs[8];
    size_t max_postings = 0, max_slot_cap = 0;
    model_init(&m, maxlabel);
    for (size_t i = 0; i < 600; i++) {
        vec v;
        rand_vec(&v, 5 + (uint32_t)rng_below(30), 0, dim, 0);
        model_put(&m, s, (int64_t)rng_below(maxlabel), &v);
    }
    for (int round = 0; round < 300; round++) {
        /* remove ~25 random labels (present or not) in one batch, add/replace ~25 */
        int64_t rm[25];
        size_t want = 0;
        for (size_t i = 0; i < 25; i++) {
            rm[i] = (int64_t)rng_below(maxlabel);
            for (size_t j = 0; j < i; j++)
                if (rm[j] == rm[i]) rm[i] = (int64_t)maxlabel + 7; /* absent */
            if (rm[i] < (int64_t)maxlabel && m.present[rm[i]]) {
                want++;
                m.present[rm[i]] = 0;
                m.n--;
            }
        }
        assert_int_equal(hdb_sparse_remove(s, 25, rm), want);
        for (size_t i = 0; i < 25; i++) {
            vec v;
            rand_vec(&v, (uint32_t)rng_below(35), 0, dim, 0); /* some empty */
            model_put(&m, s, (int64_t)rng_below(maxlabel), &v);
        }
        check_internals(s, &m);
        if (s->npostings > max_postings) max_postings = s->npostings;
        if (s->slot_cap > max_slot_cap) max_slot_cap = s->slot_cap;
        if (round % 30 == 29) {
            for (size_t i = 0; i < 8; i++)
                rand_vec(&qs[i], 1 + (uint32_t)rng_below(30), 0, dim, 0);
            search_check(s, &m, qs, 8, 10);
            search_check(s, &m, qs, 2, 700);
        }
    }
    /* 300 rounds put 7500 vectors through an engine of ~600-1500: without compaction the slots
     * would reach 8000+; with it they stay within 4/3 of the live count (plus doubling). */
    assert_true(s->compactions >= 5);
    assert_true(max_slot_cap <= 4096);
    assert_true(max_postings <= 2 * 1500 * 35);
    /* remove everything: the next compaction empties the slots and the directory */
    int64_t *all = malloc(maxlabel * sizeof *all);
    for (size_t l = 0; l < maxlabel; l++)
        all[l] = (int64_t)l;
    assert_int_equal(hdb_sparse_remove(s, maxlabel, all), m.n);
    memset(m.present, 0, maxlabel);
    m.n = 0;
    check_internals(s, &m);
    assert_int_equal(s->nslots, 0);
    assert_int_equal(s->npostings, 0);
    assert_int_equal(s->nlists, 0);
    assert_true(s->slot_cap == SLOT_INIT_CAP);
    search_check(s, &m, qs, 2, 3);
    free(all);
    model_free(&m);
    hdb_sparse_free(s);
}

static void test_churn(void **state) {
    (void)state;
    churn_case(HDB_METRIC_COSINE);
    churn_case(HDB_METRIC_JACCARD);
}

/* Replacing one label over and over must not grow anything. */
static void test_replace_same_label(void **state) {
    (void)state;
    hdb_sparse *s = make(100, HDB_METRIC_COSINE);
    model m;
    model_init(&m, 10);
    for (int i = 0; i < 2000; i++) {
        vec v;
        rand_vec(&v, 1 + (uint32_t)rng_below(20), 0, 100, 0);
        model_put(&m, s, i % 3, &v);
    }
    check_internals(s, &m);
    assert_true(s->nslots <= 4);
    assert_true(s->npostings <= 4 * 20);
    vec q;
    rand_vec(&q, 10, 0, 100, 0);
    search_check(s, &m, &q, 1, 5);
    model_free(&m);
    hdb_sparse_free(s);
}

/* ---- save / load -------------------------------------------------------------------------- */

typedef struct {
    char dir[256];
    char path[300];
} tmpdir;

static void tmp_make(tmpdir *t) {
    const char *base = getenv("HDB_TEST_TMP") ? getenv("HDB_TEST_TMP") : "/tmp";
    mkdir(base, 0755);
    snprintf(t->dir, sizeof t->dir, "%s/test_sparse.XXXXXX", base);
    assert_non_null(mkdtemp(t->dir));
    snprintf(t->path, sizeof t->path, "%s/engine.sprs", t->dir);
}

/* Fixture: a fresh directory per test, removed by the teardown even when the test failed. */
static int tmp_setup(void **state) {
    tmpdir *t = calloc(1, sizeof *t);
    if (t == NULL) return -1;
    tmp_make(t);
    *state = t;
    return 0;
}

static int tmp_teardown(void **state) {
    tmpdir *t = *state;
    unlink(t->path);
    int rc = rmdir(t->dir);
    free(t);
    return rc == 0 ? 0 : -1;
}

static unsigned char *slurp(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *b = malloc((size_t)n + 1);
    assert_int_equal(fread(b, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    *len = (size_t)n;
    return b;
}

static void spit(const char *path, const void *b, size_t len) {
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(b, 1, len, f), len);
    assert_int_equal(fclose(f), 0);
}

static int load_rc(const char *path, uint32_t dim, hdb_metric metric) {
    hdb_sparse *s = (hdb_sparse *)(uintptr_t)1;
    hdb_sparse_params p = {.dim = dim, .metric = metric};
    char err[256];
    int rc = hdb_sparse_load(&s, &p, path, err, sizeof err);
    if (rc == HDB_OK) {
        assert_non_null(s);
        hdb_sparse_free(s);
    } else {
        assert_null(s);
    }
    return rc;
}

static void roundtrip_case(const tmpdir *t, hdb_metric metric) {
    hdb_sparse *s = make(BF_DIM, metric), *l = NULL;
    model m;
    vec qs[BF_NQ];
    char err[256];
    model_init(&m, BF_N * 2);
    fill_random(&m, s, 0);
    /* leave dead slots behind (fewer than 25%: not compacted yet) and a replaced label */
    for (int64_t lab = 0; lab < 200; lab++)
        if (m.present[lab]) model_del(&m, s, lab);
    assert_true(s->ndead > 0);
    vec v;
    rand_vec(&v, 7, 0, BF_DIM, 0);
    model_put(&m, s, 1919, &v); /* replaces the vector of i = 1 */

    assert_int_equal(hdb_sparse_save(s, t->path, err, sizeof err), HDB_OK);
    hdb_sparse_params p = {.dim = BF_DIM, .metric = metric};
    assert_int_equal(hdb_sparse_load(&l, &p, t->path, err, sizeof err), HDB_OK);
    assert_int_equal(hdb_sparse_size(l), m.n);
    assert_int_equal(l->ndead, 0);
    check_internals(l, &m);

    make_queries(&m, qs, BF_NQ);
    hdb_sparse_vec qv[BF_NQ];
    for (size_t i = 0; i < BF_NQ; i++)
        qv[i] = view(&qs[i]);
    const size_t k = 50;
    hdb_hit *a = malloc(BF_NQ * k * sizeof *a), *b = malloc(BF_NQ * k * sizeof *b);
    assert_int_equal(hdb_sparse_search(s, BF_NQ, qv, k, a, err, sizeof err), HDB_OK);
    assert_int_equal(hdb_sparse_search(l, BF_NQ, qv, k, b, err, sizeof err), HDB_OK);
    for (size_t i = 0; i < BF_NQ * k; i++) { /* identical, bit for bit */
        assert_int_equal(a[i].label, b[i].label);
        assert_memory_equal(&a[i].score, &b[i].score, sizeof(float));
    }
    for (size_t i = 0; i < BF_NQ; i++)
        check_query(metric, &m, &qs[i], k, b + i * k);
    /* save of the loaded engine gives the same bytes (slot order is the save order) */
    size_t len1, len2;
    unsigned char *f1 = slurp(t->path, &len1);
    assert_int_equal(hdb_sparse_save(l, t->path, err, sizeof err), HDB_OK);
    unsigned char *f2 = slurp(t->path, &len2);
    assert_int_equal(len1, len2);
    assert_memory_equal(f1, f2, len1);
    /* the loaded engine is fully usable */
    model_del(&m, l, 1919);
    model_put(&m, l, 1, &v);
    search_check(l, &m, qs, 5, 10);

    /* parameters must match */
    assert_int_equal(load_rc(t->path, BF_DIM + 1, metric), HDB_EINVAL);
    assert_int_equal(load_rc(t->path, BF_DIM,
                             metric == HDB_METRIC_COSINE ? HDB_METRIC_JACCARD : HDB_METRIC_COSINE),
                     HDB_EINVAL);
    assert_int_equal(load_rc(t->path, BF_DIM, HDB_METRIC_L2), HDB_EINVAL);
    assert_int_equal(load_rc(t->path, 0, metric), HDB_EINVAL);
    assert_int_equal(load_rc(t->path, BF_DIM, metric), HDB_OK);

    free(f1);
    free(f2);
    free(a);
    free(b);
    model_free(&m);
    hdb_sparse_free(s);
    hdb_sparse_free(l);
}

static void test_save_load_roundtrip(void **state) {
    roundtrip_case(*state, HDB_METRIC_COSINE);
    roundtrip_case(*state, HDB_METRIC_JACCARD);
}

static void test_save_load_empty_and_io(void **state) {
    const tmpdir *t = *state;
    hdb_sparse *s = make(3, HDB_METRIC_JACCARD), *l = NULL;
    hdb_sparse_params p = {.dim = 3, .metric = HDB_METRIC_JACCARD};
    char err[256];
    assert_int_equal(hdb_sparse_save(s, t->path, err, sizeof err), HDB_OK);
    size_t len;
    free(slurp(t->path, &len));
    assert_int_equal(len, FILE_HEADER + FILE_TRAILER);
    assert_int_equal(hdb_sparse_load(&l, &p, t->path, err, sizeof err), HDB_OK);
    assert_int_equal(hdb_sparse_size(l), 0);
    hdb_sparse_free(l);

    char missing[400];
    snprintf(missing, sizeof missing, "%s/nope/engine.sprs", t->dir);
    err[0] = '\0';
    assert_int_equal(hdb_sparse_save(s, missing, err, sizeof err), HDB_EIO);
    assert_true(strlen(err) > 0);
    l = (hdb_sparse *)(uintptr_t)1;
    assert_int_equal(hdb_sparse_load(&l, &p, missing, err, sizeof err), HDB_EIO);
    assert_null(l);
    assert_int_equal(load_rc(t->dir, 3, HDB_METRIC_JACCARD) != HDB_OK, 1); /* a directory */
    hdb_sparse_free(s);
}

static void test_load_damaged(void **state) {
    const tmpdir *t = *state;
    hdb_sparse *s = make(50, HDB_METRIC_COSINE);
    model m;
    char err[256];
    model_init(&m, 10);
    for (int64_t l = 0; l < 5; l++) {
        vec v;
        rand_vec(&v, (uint32_t)l * 2, 0, 50, 0);
        model_put(&m, s, l * 2, &v);
    }
    assert_int_equal(hdb_sparse_save(s, t->path, err, sizeof err), HDB_OK);
    size_t len;
    unsigned char *good = slurp(t->path, &len);
    unsigned char *bad = malloc(len + 64);
    assert_int_equal(load_rc(t->path, 50, HDB_METRIC_COSINE), HDB_OK);

    /* every truncation */
    for (size_t cut = 0; cut < len; cut++) {
        spit(t->path, good, cut);
        if (load_rc(t->path, 50, HDB_METRIC_COSINE) != HDB_ECORRUPT)
            fail_msg("cut at %zu of %zu not detected", cut, len);
    }
    /* every byte flipped, and one bit of every byte */
    for (size_t i = 0; i < len; i++) {
        for (int mode = 0; mode < 2; mode++) {
            memcpy(bad, good, len);
            bad[i] ^= mode ? (unsigned char)(1u << (i % 8)) : 0xFF;
            spit(t->path, bad, len);
            if (load_rc(t->path, 50, HDB_METRIC_COSINE) != HDB_ECORRUPT)
                fail_msg("flip at %zu (mode %d) not detected", i, mode);
        }
    }
    /* trailing garbage */
    memcpy(bad, good, len);
    memset(bad + len, 0xAB, 64);
    spit(t->path, bad, len + 64);
    assert_int_equal(load_rc(t->path, 50, HDB_METRIC_COSINE), HDB_ECORRUPT);
    /* random garbage of several lengths, and garbage behind a valid magic */
    for (size_t n = 1; n < len + 64; n += 7) {
        for (size_t i = 0; i < n; i++)
            bad[i] = (unsigned char)rng_next();
        if (n >= 12 && (n % 2)) {
            memcpy(bad, FILE_MAGIC, 8);
            put_u32(bad + 8, FILE_VERSION);
        }
        spit(t->path, bad, n);
        assert_int_equal(load_rc(t->path, 50, HDB_METRIC_COSINE), HDB_ECORRUPT);
    }
    /* the good file still loads */
    spit(t->path, good, len);
    assert_int_equal(load_rc(t->path, 50, HDB_METRIC_COSINE), HDB_OK);
    free(good);
    free(bad);
    model_free(&m);
    hdb_sparse_free(s);
}

/* Files with a correct CRC but contents that must be rejected by the parser's own checks. */
typedef struct {
    unsigned char b[512];
    size_t n;
} fbuf;

static void fb_u32(fbuf *f, uint32_t v) {
    put_u32(f->b + f->n, v);
    f->n += 4;
}

static void fb_u64(fbuf *f, uint64_t v) {
    put_u64(f->b + f->n, v);
    f->n += 8;
}

static void fb_head(fbuf *f, uint32_t version, uint64_t count) {
    f->n = 0;
    memcpy(f->b, FILE_MAGIC, 8);
    f->n = 8;
    fb_u32(f, version);
    fb_u32(f, 20); /* dim */
    fb_u32(f, HDB_METRIC_COSINE);
    fb_u64(f, count);
}

static void fb_vec(fbuf *f, int64_t label, uint32_t n, const uint32_t *idx, const float *val) {
    fb_u64(f, (uint64_t)label);
    fb_u32(f, n);
    for (uint32_t j = 0; j < n; j++)
        fb_u32(f, idx[j]);
    for (uint32_t j = 0; j < n; j++) {
        uint32_t bits;
        memcpy(&bits, &val[j], 4);
        fb_u32(f, bits);
    }
}

static int fb_load(const tmpdir *t, fbuf *f) {
    fb_u32(f, hdb_crc32c(0, f->b, f->n));
    spit(t->path, f->b, f->n);
    return load_rc(t->path, 20, HDB_METRIC_COSINE);
}

static void test_load_bad_contents(void **state) {
    const tmpdir *t = *state;
    fbuf f;
    const uint32_t ok_idx[] = {1, 5}, unsorted[] = {5, 1}, dup_idx[] = {5, 5}, big[] = {1, 20};
    const float ok_val[] = {0.5f, -2}, nan_val[] = {1, NAN}, inf_val[] = {INFINITY, 1};

    fb_head(&f, FILE_VERSION, 2); /* the well-formed reference */
    fb_vec(&f, 3, 2, ok_idx, ok_val);
    fb_vec(&f, 4, 0, NULL, NULL);
    assert_int_equal(fb_load(t, &f), HDB_OK);

    fb_head(&f, FILE_VERSION + 1, 0); /* unknown version */
    assert_int_equal(fb_load(t, &f), HDB_ECORRUPT);
    fb_head(&f, FILE_VERSION, 3); /* count larger than the vectors present */
    fb_vec(&f, 3, 2, ok_idx, ok_val);
    assert_int_equal(fb_load(t, &f), HDB_ECORRUPT);
    fb_head(&f, FILE_VERSION, UINT64_MAX); /* absurd count */
    assert_int_equal(fb_load(t, &f), HDB_ECORRUPT);
    fb_head(&f, FILE_VERSION, 1); /* count smaller: trailing bytes */
    fb_vec(&f, 3, 2, ok_idx, ok_val);
    fb_vec(&f, 4, 2, ok_idx, ok_val);
    assert_int_equal(fb_load(t, &f), HDB_ECORRUPT);
    fb_head(&f, FILE_VERSION, 1); /* nnz beyond the file */
    fb_u64(&f, 3);
    fb_u32(&f, 2);
    fb_u32(&f, 1);
    assert_int_equal(fb_load(t, &f), HDB_ECORRUPT);
    fb_head(&f, FILE_VERSION, 1); /* huge nnz */
    fb_u64(&f, 3);
    fb_u32(&f, UINT32_MAX);
    assert_int_equal(fb_load(t, &f), HDB_ECORRUPT);
    fb_head(&f, FILE_VERSION, 1); /* negative label */
    fb_vec(&f, -3, 2, ok_idx, ok_val);
    assert_int_equal(fb_load(t, &f), HDB_ECORRUPT);
    fb_head(&f, FILE_VERSION, 2); /* duplicate label */
    fb_vec(&f, 3, 2, ok_idx, ok_val);
    fb_vec(&f, 3, 2, ok_idx, ok_val);
    assert_int_equal(fb_load(t, &f), HDB_ECORRUPT);
    const uint32_t *bad_idx[] = {unsorted, dup_idx, big};
    for (size_t i = 0; i < 3; i++) {
        fb_head(&f, FILE_VERSION, 1);
        fb_vec(&f, 3, 2, bad_idx[i], ok_val);
        assert_int_equal(fb_load(t, &f), HDB_ECORRUPT);
    }
    const float *bad_val[] = {nan_val, inf_val};
    for (size_t i = 0; i < 2; i++) {
        fb_head(&f, FILE_VERSION, 1);
        fb_vec(&f, 3, 2, ok_idx, bad_val[i]);
        assert_int_equal(fb_load(t, &f), HDB_ECORRUPT);
    }
}

/* ---- concurrency -------------------------------------------------------------------------- */

/* Stable vectors (labels 0..STABLE-1, indices < 200, positive values) never change; churned
 * ones (labels >= 10000, indices >= 200) come and go. A query over indices < 200 overlaps many
 * stable vectors with a positive cosine (< 1), so its top k is fixed whatever the churn does. */
#define STABLE 500
#define CQ 16
#define CK 5

typedef struct {
    hdb_sparse *s;
    hdb_sparse_vec q[CQ];
    hdb_hit expected[CQ * CK];
    atomic_int stop;
    atomic_long searches;
    atomic_long failures;
} conc;

static void *searcher(void *arg) {
    conc *c = arg;
    hdb_hit out[CQ * CK];
    char err[128];
    unsigned it = 0;
    while (!atomic_load(&c->stop)) {
        size_t q0 = it++ % (CQ - 1); /* batches of two queries */
        if (hdb_sparse_search(c->s, 2, c->q + q0, CK, out, err, sizeof err) != HDB_OK) {
            atomic_fetch_add(&c->failures, 1);
            continue;
        }
        for (size_t i = 0; i < 2 * CK; i++) /* field by field: hdb_hit has padding */
            if (out[i].label != c->expected[q0 * CK + i].label ||
                out[i].score != c->expected[q0 * CK + i].score)
                atomic_fetch_add(&c->failures, 1);
        size_t n = hdb_sparse_size(c->s);
        if (n < STABLE || n > STABLE + 1020) atomic_fetch_add(&c->failures, 1);
        atomic_fetch_add(&c->searches, 1);
    }
    return NULL;
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void test_concurrent_search_and_churn(void **state) {
    (void)state;
    conc c;
    vec *qv = malloc(CQ * sizeof *qv);
    char err[128];
    memset(&c, 0, sizeof c);
    c.s = make(5000, HDB_METRIC_COSINE);
    for (int64_t l = 0; l < STABLE; l++) {
        vec v;
        rand_vec(&v, 10 + (uint32_t)rng_below(10), 0, 200, 1);
        hdb_sparse_vec sv = view(&v);
        assert_int_equal(hdb_sparse_upsert(c.s, 1, &l, &sv, err, sizeof err), HDB_OK);
    }
    for (size_t i = 0; i < CQ; i++) {
        rand_vec(&qv[i], 5, 0, 200, 1);
        c.q[i] = view(&qv[i]);
    }
    assert_int_equal(hdb_sparse_search(c.s, CQ, c.q, CK, c.expected, err, sizeof err), HDB_OK);
    for (size_t i = 0; i < CQ * CK; i++)
        assert_true(c.expected[i].label >= 0 && c.expected[i].label < STABLE &&
                    c.expected[i].score < 1.0f);

    pthread_t th[4];
    for (int i = 0; i < 4; i++)
        assert_int_equal(pthread_create(&th[i], NULL, searcher, &c), 0);
    uint64_t wst = 0x1234567ull; /* the writer's own PRNG (the global one is not shared) */
    uint64_t compactions0 = c.s->compactions;
    long writes = 0;
    double t0 = now_s();
    while (now_s() - t0 < 1.0) {
        int64_t labels[20];
        vec v[20];
        hdb_sparse_vec sv[20];
        for (size_t i = 0; i < 20; i++) {
            labels[i] = 10000 + (int64_t)(rng_next_s(&wst) % 1000);
            for (size_t j = 0; j < i; j++)
                if (labels[j] == labels[i]) labels[i] = 11000 + (int64_t)i; /* keep distinct */
            v[i].n = 0;
            uint32_t nnz = 1 + (uint32_t)(rng_next_s(&wst) % 30);
            uint32_t x = 200 + (uint32_t)(rng_next_s(&wst) % 100);
            for (uint32_t j = 0; j < nnz && x < 5000; j++) {
                v[i].idx[v[i].n] = x;
                v[i].val[v[i].n] = (float)((int)(rng_next_s(&wst) % 200) - 100) / 50.0f;
                v[i].n++;
                x += 1 + (uint32_t)(rng_next_s(&wst) % 150);
            }
            sv[i] = view(&v[i]);
        }
        if (hdb_sparse_upsert(c.s, 20, labels, sv, err, sizeof err) != HDB_OK)
            atomic_fetch_add(&c.failures, 1);
        for (size_t i = 0; i < 20; i++)
            labels[i] = 10000 + (int64_t)(rng_next_s(&wst) % 1000);
        hdb_sparse_remove(c.s, 20, labels);
        writes++;
    }
    atomic_store(&c.stop, 1);
    for (int i = 0; i < 4; i++)
        pthread_join(th[i], NULL);
    print_message("      %ld write batches, %ld searches, %llu compactions\n", writes,
                  atomic_load(&c.searches), (unsigned long long)(c.s->compactions - compactions0));
    assert_int_equal(atomic_load(&c.failures), 0);
    assert_true(atomic_load(&c.searches) > 0 && writes > 0);
    assert_true(c.s->compactions > compactions0);
    hdb_sparse_free(c.s);
    free(qv);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_create_arguments),
        cmocka_unit_test(test_handmade_cosine),
        cmocka_unit_test(test_handmade_jaccard),
        cmocka_unit_test(test_brute_force_cosine),
        cmocka_unit_test(test_brute_force_jaccard),
        cmocka_unit_test(test_replace_remove),
        cmocka_unit_test(test_churn),
        cmocka_unit_test(test_replace_same_label),
        cmocka_unit_test_setup_teardown(test_save_load_roundtrip, tmp_setup, tmp_teardown),
        cmocka_unit_test_setup_teardown(test_save_load_empty_and_io, tmp_setup, tmp_teardown),
        cmocka_unit_test_setup_teardown(test_load_damaged, tmp_setup, tmp_teardown),
        cmocka_unit_test_setup_teardown(test_load_bad_contents, tmp_setup, tmp_teardown),
        cmocka_unit_test(test_concurrent_search_and_churn),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
