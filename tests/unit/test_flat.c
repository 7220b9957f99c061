/*
 * test_flat.c - cmocka tests for hdb_flat: create arguments, upsert / replace / remove / get
 * against a reference model (including the swap-last move, hash map growth and shrinking, and
 * adversarial labels), and search results against a double-precision brute force for all three
 * metrics on both search paths (SIMD scan and blocked GEMM), with padding, empty engines,
 * remove-all and zero vectors under COSINE.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "hdb_distance.h"
#include "hdb_err.h"
#include "hdb_flat.h"
#include "test_reference.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- fixed-seed PRNG (xorshift64*) -------------------------------------------------------- */

static uint64_t rng_state = 0xD1B54A32D192ED03ull;

static uint64_t rng_next(void) {
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 2685821657736338717ull;
}

static uint64_t rng_below(uint64_t n) {
    return rng_next() % n;
}

/* Uniform in [-1, 1). */
static float rng_float(void) {
    return (float)((double)(rng_next() >> 40) / 16777216.0 * 2.0 - 1.0);
}

static float *rand_matrix(size_t n, size_t d) {
    float *x = malloc((n * d > 0 ? n * d : 1) * sizeof(float));
    assert_non_null(x);
    for (size_t i = 0; i < n * d; i++)
        x[i] = rng_float();
    return x;
}

static const hdb_metric metrics[] = {HDB_METRIC_L2, HDB_METRIC_IP, HDB_METRIC_COSINE};

/* ---- reference brute force ---------------------------------------------------------------- */


/* Rounding tolerance on a score: GEMM's ||q||^2 + ||x||^2 - 2<q,x> loses precision in
 * proportion to the norms, so the scale includes them. */
static double score_tol(hdb_metric metric, const float *q, size_t d) {
    double qq = 0;
    for (size_t i = 0; i < d; i++)
        qq += (double)q[i] * q[i];
    double xx = (double)d / 3.0; /* E||x||^2 for uniform [-1,1) */
    if (metric == HDB_METRIC_COSINE) return 1e-4;
    if (metric == HDB_METRIC_IP) return 1e-4 * (1.0 + sqrt(qq * xx)); /* Cauchy-Schwarz scale */
    return 1e-4 * (1.0 + qq + xx);
}

/*
 * Checks one query's k hits from the engine against the brute force over (labels, vecs):
 *  - sorted best first, labels distinct and present, padding exactly after min(k, n) hits;
 *  - each hit's score equals its label's exact score within tolerance;
 *  - position by position the scores equal the reference's within tolerance;
 *  - a label outside the reference top k is allowed only when it ties (within tolerance)
 *    with the reference's k-th score.
 */
static void check_query(hdb_metric metric, const float *q, size_t d, const int64_t *labels,
                        const float *vecs, size_t n, size_t k, const hdb_hit *got) {
    ref_hit *ref = malloc((n ? n : 1) * sizeof *ref);
    for (size_t j = 0; j < n; j++) {
        ref[j].score = exact_score(metric, q, vecs + j * d, d);
        ref[j].label = labels[j];
    }
    qsort(ref, n, sizeof *ref, ref_cmp);
    double tol = score_tol(metric, q, d);
    size_t want = n < k ? n : k;

    for (size_t i = 0; i < want; i++) {
        if (got[i].label < 0) fail_msg("slot %zu of %zu is empty", i, want);
        if (i > 0 && got[i].score < got[i - 1].score) fail_msg("slot %zu not sorted", i);
        for (size_t j = 0; j < i; j++)
            assert_true(got[j].label != got[i].label);
        /* find the label among the stored vectors */
        size_t row = SIZE_MAX;
        for (size_t j = 0; j < n; j++)
            if (labels[j] == got[i].label) row = j;
        if (row == SIZE_MAX) fail_msg("label %lld is not stored", (long long)got[i].label);
        double exact = exact_score(metric, q, vecs + row * d, d);
        if (!(fabs(got[i].score - exact) <= tol))
            fail_msg("slot %zu label %lld: score %.7g, exact %.7g (tol %.3g)", i,
                     (long long)got[i].label, (double)got[i].score, exact, tol);
        if (!(fabs(got[i].score - ref[i].score) <= tol))
            fail_msg("slot %zu: score %.7g, reference %.7g", i, (double)got[i].score, ref[i].score);
        int in_ref = 0;
        for (size_t j = 0; j < want; j++)
            in_ref |= ref[j].label == got[i].label;
        if (!in_ref && !(fabs(exact - ref[want - 1].score) <= 2 * tol))
            fail_msg("label %lld (score %.7g) is not among the true top %zu (k-th %.7g)",
                     (long long)got[i].label, exact, want, ref[want - 1].score);
    }
    for (size_t i = want; i < k; i++) {
        assert_int_equal(got[i].label, -1);
        assert_true(isinf(got[i].score) && got[i].score > 0);
    }
    free(ref);
}

static hdb_flat *make_flat(uint32_t d, hdb_metric metric, size_t n, const int64_t *labels,
                           const float *vecs) {
    hdb_flat *f = NULL;
    char err[128];
    assert_int_equal(hdb_flat_create(&f, d, metric, err, sizeof err), HDB_OK);
    assert_int_equal(hdb_flat_upsert(f, n, labels, vecs), HDB_OK);
    assert_int_equal(hdb_flat_size(f), n);
    return f;
}

/* Searches nq queries with the path forced by gemm_min_nq and checks every query. */
static void search_and_check(hdb_flat *f, size_t gemm_min_nq, const float *qs, size_t nq, size_t k,
                             const int64_t *labels, const float *vecs, size_t n) {
    size_t d = hdb_flat_dim(f);
    hdb_hit *out = malloc(nq * k * sizeof *out);
    hdb_flat_set_gemm_min_nq(f, gemm_min_nq);
    assert_int_equal(hdb_flat_search(f, nq, qs, k, out), HDB_OK);
    for (size_t i = 0; i < nq; i++)
        check_query(hdb_flat_metric(f), qs + i * d, d, labels, vecs, n, k, out + i * k);
    hdb_flat_set_gemm_min_nq(f, 0);
    free(out);
}

/* ---- create and bookkeeping --------------------------------------------------------------- */

static void test_create_arguments(void **state) {
    (void)state;
    hdb_flat *f = (hdb_flat *)(uintptr_t)1;
    char err[128] = "";
    assert_int_equal(hdb_flat_create(&f, 0, HDB_METRIC_L2, err, sizeof err), HDB_EINVAL);
    assert_null(f);
    assert_true(strstr(err, "dim") != NULL);
    err[0] = '\0';
    assert_int_equal(hdb_flat_create(&f, 4, (hdb_metric)9, err, sizeof err), HDB_EINVAL);
    assert_null(f);
    assert_true(strstr(err, "metric") != NULL);
    assert_int_equal(hdb_flat_create(&f, 4, (hdb_metric)0, NULL, 0), HDB_EINVAL);
    assert_int_equal(hdb_flat_create(NULL, 4, HDB_METRIC_L2, NULL, 0), HDB_EINVAL);

    assert_int_equal(hdb_flat_create(&f, 7, HDB_METRIC_COSINE, err, sizeof err), HDB_OK);
    assert_non_null(f);
    assert_int_equal(hdb_flat_dim(f), 7);
    assert_int_equal(hdb_flat_metric(f), HDB_METRIC_COSINE);
    assert_int_equal(hdb_flat_size(f), 0);
    hdb_flat_free(f);
    hdb_flat_free(NULL);
}

static void test_upsert_replace_remove_get(void **state) {
    (void)state;
    const size_t d = 5, n = 100;
    float *x = rand_matrix(n, d);
    int64_t labels[100];
    for (size_t i = 0; i < n; i++)
        labels[i] = (int64_t)(1000 + i * 3);
    hdb_flat *f = make_flat((uint32_t)d, HDB_METRIC_L2, n, labels, x);
    float v[5];

    for (size_t i = 0; i < n; i++) {
        assert_int_equal(hdb_flat_get(f, labels[i], v), 1);
        assert_memory_equal(v, x + i * d, d * sizeof(float));
    }
    assert_int_equal(hdb_flat_get(f, 999, v), 0);
    assert_int_equal(hdb_flat_get(f, -1, v), 0);

    /* replace 10 in place: the size stays, the vectors change */
    float *y = rand_matrix(10, d);
    int64_t rl[10];
    for (size_t i = 0; i < 10; i++)
        rl[i] = labels[i * 7];
    assert_int_equal(hdb_flat_upsert(f, 10, rl, y), HDB_OK);
    assert_int_equal(hdb_flat_size(f), n);
    for (size_t i = 0; i < 10; i++) {
        memcpy(x + i * 7 * d, y + i * d, d * sizeof(float));
        assert_int_equal(hdb_flat_get(f, rl[i], v), 1);
        assert_memory_equal(v, y + i * d, d * sizeof(float));
    }

    /* a negative label rejects the whole call */
    int64_t bad[2] = {5, -3};
    assert_int_equal(hdb_flat_upsert(f, 2, bad, y), HDB_EINVAL);
    assert_int_equal(hdb_flat_size(f), n);
    assert_int_equal(hdb_flat_get(f, 5, v), 0);

    /* remove the first row (the last row moves into it), absent labels and repeats */
    int64_t rm[5] = {labels[0], 42, labels[0], labels[50], -7};
    assert_int_equal(hdb_flat_remove(f, 5, rm), 2);
    assert_int_equal(hdb_flat_size(f), n - 2);
    assert_int_equal(hdb_flat_get(f, labels[0], v), 0);
    assert_int_equal(hdb_flat_get(f, labels[50], v), 0);
    for (size_t i = 1; i < n; i++) {
        if (i == 50) continue;
        assert_int_equal(hdb_flat_get(f, labels[i], v), 1);
        assert_memory_equal(v, x + i * d, d * sizeof(float));
    }
    assert_int_equal(hdb_flat_remove(f, 0, NULL), 0);

    /* re-insert a removed label */
    assert_int_equal(hdb_flat_upsert(f, 1, &labels[0], x), HDB_OK);
    assert_int_equal(hdb_flat_size(f), n - 1);
    assert_int_equal(hdb_flat_get(f, labels[0], v), 1);
    assert_memory_equal(v, x, d * sizeof(float));

    hdb_flat_free(f);
    free(x);
    free(y);
}

/* Random upserts and removes against a model; searches after the churn must match the brute
 * force over the model, which also proves the cached row norms follow the moved rows. */
static void test_churn_against_model(void **state) {
    (void)state;
    const size_t d = 9, universe = 3000, ops = 30000;
    static const int64_t spreads[] = {1, (int64_t)1 << 32, 1024}; /* dense, huge, colliding */
    for (size_t sp = 0; sp < 3; sp++) {
        float *model = calloc(universe * d, sizeof(float));
        char *present = calloc(universe, 1);
        size_t count = 0;
        hdb_flat *f = make_flat((uint32_t)d, HDB_METRIC_L2, 0, NULL, NULL);
        for (size_t op = 0; op < ops; op++) {
            /* phases: grow, shrink to nearly empty, grow again */
            int grow = op < ops / 3 || op >= 2 * ops / 3;
            size_t u = rng_below(universe);
            int64_t label = (int64_t)u * spreads[sp];
            if (rng_below(100) < (grow ? 70u : 10u)) {
                float v[9];
                for (size_t i = 0; i < d; i++)
                    v[i] = rng_float();
                assert_int_equal(hdb_flat_upsert(f, 1, &label, v), HDB_OK);
                memcpy(model + u * d, v, sizeof v);
                if (!present[u]) count++;
                present[u] = 1;
            } else {
                size_t r = hdb_flat_remove(f, 1, &label);
                assert_int_equal(r, present[u] ? 1 : 0);
                if (present[u]) count--;
                present[u] = 0;
            }
            assert_int_equal(hdb_flat_size(f), count);
            if (op % 5000 == 4999 || op == ops / 3 * 2 - 1) {
                float v[9];
                for (size_t i = 0; i < universe; i++) {
                    int got = hdb_flat_get(f, (int64_t)i * spreads[sp], v);
                    assert_int_equal(got, present[i]);
                    if (got) assert_memory_equal(v, model + i * d, d * sizeof(float));
                }
            }
        }
        /* brute force over the model, both paths */
        int64_t *labels = malloc(universe * sizeof *labels);
        float *vecs = malloc(universe * d * sizeof(float));
        size_t n = 0;
        for (size_t i = 0; i < universe; i++) {
            if (!present[i]) continue;
            labels[n] = (int64_t)i * spreads[sp];
            memcpy(vecs + n * d, model + i * d, d * sizeof(float));
            n++;
        }
        assert_int_equal(n, count);
        float *qs = rand_matrix(20, d);
        search_and_check(f, SIZE_MAX, qs, 20, 10, labels, vecs, n);
        search_and_check(f, 1, qs, 20, 10, labels, vecs, n);

        /* remove everything */
        assert_int_equal(hdb_flat_remove(f, n, labels), n);
        assert_int_equal(hdb_flat_size(f), 0);
        hdb_hit out[3];
        assert_int_equal(hdb_flat_search(f, 1, qs, 3, out), HDB_OK);
        for (int i = 0; i < 3; i++)
            assert_int_equal(out[i].label, -1);

        free(qs);
        free(labels);
        free(vecs);
        free(model);
        free(present);
        hdb_flat_free(f);
    }
}

/* ---- search ------------------------------------------------------------------------------- */

static void search_case(hdb_metric metric, size_t n, size_t d, size_t nq, size_t k) {
    float *x = rand_matrix(n, d);
    int64_t *labels = malloc((n ? n : 1) * sizeof *labels);
    for (size_t i = 0; i < n; i++)
        labels[i] = (int64_t)(n - i) * 5; /* not in row order */
    float *qs = rand_matrix(nq, d);
    /* one query is a stored vector: its own label must come first (distance 0 / cos 1); not
     * for d == 1 under COSINE, where half of all vectors share the same direction */
    int self = n > 0 && metric != HDB_METRIC_IP && !(metric == HDB_METRIC_COSINE && d == 1);
    if (self) memcpy(qs, x + (n / 2) * d, d * sizeof(float));
    hdb_flat *f = make_flat((uint32_t)d, metric, n, labels, x);

    if (d < 100) search_and_check(f, 0, qs, nq, k, labels, x, n); /* automatic choice */
    search_and_check(f, SIZE_MAX, qs, nq, k, labels, x, n);       /* SIMD scan */
    search_and_check(f, 1, qs, nq, k, labels, x, n);              /* GEMM */

    if (self) {
        hdb_hit *out = malloc(k * sizeof *out);
        hdb_flat_set_gemm_min_nq(f, 1);
        assert_int_equal(hdb_flat_search(f, 1, qs, k, out), HDB_OK);
        assert_int_equal(out[0].label, labels[n / 2]);
        hdb_flat_set_gemm_min_nq(f, SIZE_MAX);
        assert_int_equal(hdb_flat_search(f, 1, qs, k, out), HDB_OK);
        assert_int_equal(out[0].label, labels[n / 2]);
        assert_true(fabsf(out[0].score) <= 1e-5f);
        free(out);
    }
    hdb_flat_free(f);
    free(x);
    free(labels);
    free(qs);
}

static void test_search_single_query_784(void **state) {
    (void)state;
    for (size_t m = 0; m < 3; m++)
        search_case(metrics[m], 2000, 784, 1, 10);
}

static void test_search_batch_784(void **state) {
    (void)state;
    for (size_t m = 0; m < 3; m++)
        search_case(metrics[m], 2000, 784, 100, 10);
}

static void test_search_small_dims(void **state) {
    (void)state;
    static const size_t ds[] = {1, 3, 16, 17, 33};
    for (size_t m = 0; m < 3; m++) {
        for (size_t i = 0; i < sizeof ds / sizeof ds[0]; i++) {
            search_case(metrics[m], 2000, ds[i], 1, 10);
            search_case(metrics[m], 2000, ds[i], 100, 10);
        }
        /* several query blocks (> 512 queries) and row blocks (> 1024 rows) in GEMM */
        search_case(metrics[m], 2500, 17, 600, 7);
    }
}

/* Every kernel family gives the same search results (within rounding). */
static void test_search_every_isa(void **state) {
    (void)state;
    static const char *const isas[] = {"scalar", "avx2", "avx512"};
    const char *orig = hdb_distance_isa();
    for (size_t s = 0; s < 3; s++) {
        if (hdb_distance_force_isa(isas[s]) != 0) continue;
        for (size_t m = 0; m < 3; m++) {
            search_case(metrics[m], 500, 31, 3, 5);
            search_case(metrics[m], 500, 64, 3, 5);
        }
    }
    assert_int_equal(hdb_distance_force_isa(orig), 0);
}

static void test_search_padding_and_empty(void **state) {
    (void)state;
    for (size_t m = 0; m < 3; m++) {
        search_case(metrics[m], 5, 8, 1, 10);  /* k > size */
        search_case(metrics[m], 5, 8, 30, 10); /* k > size, batched */
        search_case(metrics[m], 0, 8, 1, 4);   /* empty engine */
        search_case(metrics[m], 0, 8, 30, 4);
        search_case(metrics[m], 1, 1, 2, 1);
    }
    hdb_flat *f = make_flat(4, HDB_METRIC_L2, 0, NULL, NULL);
    float q[4] = {0};
    hdb_hit out[2];
    assert_int_equal(hdb_flat_search(f, 0, q, 2, out), HDB_OK);
    assert_int_equal(hdb_flat_search(f, 1, q, 0, out), HDB_EINVAL);
    hdb_flat_free(f);
}

/* Equal scores come back in label order on both paths, across several row blocks. */
static void test_search_ties_by_label(void **state) {
    (void)state;
    const size_t n = 3000, d = 6;
    float *x = calloc(n * d, sizeof(float));
    int64_t *labels = malloc(n * sizeof *labels);
    for (size_t i = 0; i < n; i++) {
        labels[i] = (int64_t)((i * 7919) % 100000); /* distinct, scattered */
        x[i * d] = 1.0f;                            /* all vectors equal */
    }
    int64_t *sorted = malloc(n * sizeof *sorted);
    memcpy(sorted, labels, n * sizeof *sorted);
    for (size_t i = 1; i < n; i++) /* insertion sort; n is small */
        for (size_t j = i; j > 0 && sorted[j - 1] > sorted[j]; j--) {
            int64_t t = sorted[j];
            sorted[j] = sorted[j - 1];
            sorted[j - 1] = t;
        }
    for (size_t m = 0; m < 3; m++) {
        hdb_flat *f = make_flat((uint32_t)d, metrics[m], n, labels, x);
        float q[6 * 20] = {0};
        for (int i = 0; i < 20; i++)
            q[i * 6 + 1] = 2.0f;
        hdb_hit out[20 * 8];
        static const size_t paths[] = {SIZE_MAX, 1};
        for (int p = 0; p < 2; p++) {
            hdb_flat_set_gemm_min_nq(f, paths[p]);
            assert_int_equal(hdb_flat_search(f, 20, q, 8, out), HDB_OK);
            for (size_t i = 0; i < 20 * 8; i++)
                assert_int_equal(out[i].label, sorted[i % 8]);
        }
        hdb_flat_free(f);
    }
    free(x);
    free(labels);
    free(sorted);
}

static void test_cosine_zero_vectors(void **state) {
    (void)state;
    const size_t d = 5;
    float x[4 * 5] = {0};
    x[1 * 5 + 0] = 3.0f; /* label 11: (3,4,0,0,0) */
    x[1 * 5 + 1] = 4.0f;
    x[2 * 5 + 2] = -2.0f;                 /* label 12: (0,0,-2,0,0) */
    x[3 * 5 + 0] = -1.0f;                 /* label 13: (-1,0,...) */
    int64_t labels[4] = {10, 11, 12, 13}; /* label 10: the zero vector */
    hdb_flat *f = make_flat((uint32_t)d, HDB_METRIC_COSINE, 4, labels, x);

    float v[5];
    assert_int_equal(hdb_flat_get(f, 10, v), 1);
    for (size_t i = 0; i < d; i++)
        assert_true(v[i] == 0.0f);
    assert_int_equal(hdb_flat_get(f, 11, v), 1); /* stored normalised */
    assert_true(fabsf(v[0] - 0.6f) < 1e-6f && fabsf(v[1] - 0.8f) < 1e-6f);

    static const size_t paths[] = {SIZE_MAX, 1};
    for (int p = 0; p < 2; p++) {
        hdb_flat_set_gemm_min_nq(f, paths[p]);
        /* query along x: 11 -> 1-0.6, 10 and 12 -> 1 (tie: 10 first), 13 -> 2 */
        float q[5] = {7.0f, 0, 0, 0, 0};
        float qcopy[5];
        memcpy(qcopy, q, sizeof q);
        hdb_hit out[6];
        assert_int_equal(hdb_flat_search(f, 1, q, 6, out), HDB_OK);
        assert_memory_equal(q, qcopy, sizeof q); /* the query is not modified */
        assert_int_equal(out[0].label, 11);
        assert_true(fabsf(out[0].score - 0.4f) < 1e-6f);
        assert_int_equal(out[1].label, 10);
        assert_true(fabsf(out[1].score - 1.0f) < 1e-6f);
        assert_int_equal(out[2].label, 12);
        assert_true(fabsf(out[2].score - 1.0f) < 1e-6f);
        assert_int_equal(out[3].label, 13);
        assert_true(fabsf(out[3].score - 2.0f) < 1e-6f);
        assert_int_equal(out[4].label, -1);
        assert_int_equal(out[5].label, -1);

        /* a zero query scores 1 against everything: label order */
        float z[5] = {0};
        assert_int_equal(hdb_flat_search(f, 1, z, 3, out), HDB_OK);
        for (int i = 0; i < 3; i++) {
            assert_int_equal(out[i].label, 10 + i);
            assert_true(out[i].score == 1.0f);
        }
    }
    hdb_flat_free(f);
}

/* Querying stored vectors on the GEMM path: ||q||^2 + ||x||^2 - 2<q,x> rounds to tiny values of
 * either sign for the vector itself, and the engine must clamp them, never return a negative
 * squared distance. */
static void test_l2_gemm_self_match_not_negative(void **state) {
    (void)state;
    const size_t n = 400, d = 784, nq = 200;
    float *x = rand_matrix(n, d);
    for (size_t i = 0; i < n * d; i++)
        x[i] = x[i] * 100.0f + 3.0f;
    int64_t *labels = malloc(n * sizeof *labels);
    for (size_t i = 0; i < n; i++)
        labels[i] = (int64_t)i;
    hdb_flat *f = make_flat((uint32_t)d, HDB_METRIC_L2, n, labels, x);
    hdb_hit *out = malloc(nq * 3 * sizeof *out);
    hdb_flat_set_gemm_min_nq(f, 1);
    assert_int_equal(hdb_flat_search(f, nq, x, 3, out), HDB_OK); /* queries = rows 0..nq-1 */
    for (size_t i = 0; i < nq; i++) {
        assert_int_equal(out[i * 3].label, (int64_t)i);
        for (size_t j = 0; j < 3; j++)
            assert_true(out[i * 3 + j].score >= 0.0f);
        /* within the rounding of the GEMM form (scale 2||x||^2); other rows are ~5e6 away */
        double xx = 0;
        for (size_t j = 0; j < d; j++)
            xx += (double)x[i * d + j] * x[i * d + j];
        assert_true(out[i * 3].score <= 1e-5 * 2 * xx);
    }
    hdb_flat_free(f);
    free(out);
    free(labels);
    free(x);
}

static void test_remove_all_then_reuse(void **state) {
    (void)state;
    const size_t n = 5000, d = 3;
    float *x = rand_matrix(n, d);
    int64_t *labels = malloc(n * sizeof *labels);
    for (size_t i = 0; i < n; i++)
        labels[i] = (int64_t)i;
    for (size_t m = 0; m < 3; m++) {
        hdb_flat *f = make_flat((uint32_t)d, metrics[m], n, labels, x);
        /* remove in a scrambled order so that many rows move */
        for (size_t i = 0; i < n; i++) {
            int64_t l = (int64_t)((i * 2654435761u) % n);
            assert_int_equal(hdb_flat_remove(f, 1, &l), 1);
        }
        assert_int_equal(hdb_flat_size(f), 0);
        float v[3];
        assert_int_equal(hdb_flat_get(f, 0, v), 0);
        hdb_hit out[4];
        for (int p = 0; p < 2; p++) {
            hdb_flat_set_gemm_min_nq(f, p ? 1 : SIZE_MAX);
            assert_int_equal(hdb_flat_search(f, 1, x, 4, out), HDB_OK);
            for (int i = 0; i < 4; i++)
                assert_int_equal(out[i].label, -1);
        }
        hdb_flat_set_gemm_min_nq(f, 0);
        assert_int_equal(hdb_flat_upsert(f, 100, labels, x), HDB_OK);
        search_and_check(f, SIZE_MAX, x + 7 * d, 5, 4, labels, x, 100);
        search_and_check(f, 1, x + 7 * d, 5, 4, labels, x, 100);
        hdb_flat_free(f);
    }
    free(x);
    free(labels);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_create_arguments),
        cmocka_unit_test(test_upsert_replace_remove_get),
        cmocka_unit_test(test_churn_against_model),
        cmocka_unit_test(test_search_single_query_784),
        cmocka_unit_test(test_search_batch_784),
        cmocka_unit_test(test_search_small_dims),
        cmocka_unit_test(test_search_every_isa),
        cmocka_unit_test(test_search_padding_and_empty),
        cmocka_unit_test(test_search_ties_by_label),
        cmocka_unit_test(test_cosine_zero_vectors),
        cmocka_unit_test(test_l2_gemm_self_match_not_negative),
        cmocka_unit_test(test_remove_all_then_reuse),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
