/*
 * test_hnsw.c - cmocka tests for hdb_hnsw, the HNSW engine: parameter checks; recall@10 against
 * a double-precision brute force for L2, INNER_PRODUCT and COSINE on random and clustered data;
 * padding and empty graphs; the per-call ef override; updates in place; removal (removed labels
 * never come back, re-upsert revives them); churn with slot reuse (the graph stays bounded);
 * recall under churn against a fresh build (every point replaced many times, 10% deleted);
 * builds from two threads against one (recall, and a batch mixing updates, slot reuses and
 * appends);
 * save/load round trips and damaged files (truncated, flipped, garbage, structurally bad with a
 * valid checksum); float16 and int8 storage (recall after rescoring, memory, the int8 graph's
 * exact answers before training, training at train_size, save/load on both sides of it, a
 * storage mismatch, damaged storage sections); and searches running concurrently with upserts, updates, removes and a save
 * while the graph grows several times.
 *
 * All data comes from fixed-seed xorshift generators, so every run sees the same graphs.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "hdb_crc.h"
#include "hdb_distance.h"
#include "hdb_err.h"
#include "hdb_hnsw.h"
#include "test_reference.h"

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* ThreadSanitizer (-DHDB_SANITIZE=thread): hnswlib's addPoint takes its per-node locks and its
 * `global` lock in varying orders, which TSan reports as potential deadlocks (116 reports in
 * test_concurrency, all inside hnswlib's addPoint). hdb_hnsw runs hnswlib's write paths in one
 * thread at a time (writers are serialised), so they cannot deadlock. Suppressing them is not
 * enough: the lock-order bookkeeping over hnswlib's one-mutex-per-node makes the writer ~2.5x
 * slower still, too slow for test_concurrency, so the detector is off in this binary. Data
 * races are still reported. Other builds ignore the function. */
const char *__tsan_default_options(void);
const char *__tsan_default_options(void) {
    return "detect_deadlocks=0";
}

/* Parallel inserts (hdb_hnsw_set_build_threads > 1): hnswlib's addPoint draws each node's level
 * from one shared generator without a lock, as its own multi-threaded add_items does. The race
 * only perturbs the levels drawn; it is suppressed so that the rest stays checked. */
const char *__tsan_default_suppressions(void);
const char *__tsan_default_suppressions(void) {
    return "race:hnswlib::HierarchicalNSW<float>::getRandomLevel\n";
}

/* ---- fixed-seed PRNG (xorshift64*) -------------------------------------------------------- */

static uint64_t rng_next(uint64_t *s) {
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * 2685821657736338717ull;
}

static uint64_t rng_below(uint64_t *s, uint64_t n) {
    return rng_next(s) % n;
}

/* Uniform in [-1, 1). */
static float rng_float(uint64_t *s) {
    return (float)((double)(rng_next(s) >> 40) / 16777216.0 * 2.0 - 1.0);
}

static void fill_random(uint64_t *s, float *x, size_t n, size_t d) {
    for (size_t i = 0; i < n * d; i++)
        x[i] = rng_float(s);
}

/* n points around nc centres c (nc x d), each coordinate within +-spread of its centre. */
static void fill_clustered(uint64_t *s, const float *c, size_t nc, float *x, size_t n, size_t d,
                           float spread) {
    for (size_t i = 0; i < n; i++) {
        const float *ci = c + rng_below(s, nc) * d;
        for (size_t j = 0; j < d; j++)
            x[i * d + j] = ci[j] + spread * rng_float(s);
    }
}

static float *alloc_floats(size_t n) {
    float *x = malloc((n ? n : 1) * sizeof(float));
    assert_non_null(x);
    return x;
}

static int64_t *iota_labels(size_t n) {
    int64_t *l = malloc((n ? n : 1) * sizeof(int64_t));
    assert_non_null(l);
    for (size_t i = 0; i < n; i++)
        l[i] = (int64_t)i;
    return l;
}

/* A test's data: n random base vectors x (labels l = 0..n-1) and nq random queries q, all of
 * dimension d, drawn in that order from s. Free with data_free. */
typedef struct {
    float *x, *q;
    int64_t *l;
} test_data;

static test_data random_data(uint64_t *s, size_t n, size_t nq, size_t d) {
    test_data r = {alloc_floats(n * d), alloc_floats(nq * d), iota_labels(n)};
    fill_random(s, r.x, n, d);
    fill_random(s, r.q, nq, d);
    return r;
}

static void data_free(test_data *r) {
    free(r->x);
    free(r->q);
    free(r->l);
}

/* ---- reference model and brute force ------------------------------------------------------ */

/* What the engine should hold: vector and liveness of every label below cap. */
typedef struct {
    hdb_metric metric;
    size_t d, cap;
    float *x;            /* cap * d, the current vector of each label */
    unsigned char *live; /* cap */
} model;

static void model_init(model *m, hdb_metric metric, size_t d, size_t cap) {
    m->metric = metric;
    m->d = d;
    m->cap = cap;
    m->x = alloc_floats(cap * d);
    m->live = calloc(cap, 1);
    assert_non_null(m->live);
}

static void model_free(model *m) {
    free(m->x);
    free(m->live);
}

static void model_set(model *m, int64_t label, const float *v) {
    memcpy(m->x + (size_t)label * m->d, v, m->d * sizeof(float));
    m->live[label] = 1;
}

static size_t model_count(const model *m) {
    size_t n = 0;
    for (size_t i = 0; i < m->cap; i++)
        n += m->live[i];
    return n;
}

/* The labels of the k best live points for q, best first (fewer when fewer are live). */
static size_t brute_topk(const model *m, const float *q, size_t k, int64_t *out) {
    double best[64];
    size_t n = 0;
    assert_true(k <= 64);
    for (size_t l = 0; l < m->cap; l++) {
        if (!m->live[l]) continue;
        double s = exact_score(m->metric, q, m->x + l * m->d, m->d);
        if (n == k && s >= best[n - 1]) continue;
        size_t i = n < k ? n++ : k - 1;
        while (i > 0 && best[i - 1] > s) {
            best[i] = best[i - 1];
            out[i] = out[i - 1];
            i--;
        }
        best[i] = s;
        out[i] = (int64_t)l;
    }
    return n;
}

/* Searches nq queries and checks every hit: a live label, its exact score, best first, then
 * padding. Returns recall@k against the brute force (over min(k, live) per query). */
static double search_recall(hdb_hnsw *h, const model *m, const float *q, size_t nq, size_t k,
                            uint32_t ef) {
    hdb_hit *out = malloc(nq * k * sizeof *out);
    int64_t truth[64];
    char err[256] = "";
    assert_non_null(out);
    int rc = hdb_hnsw_search(h, nq, q, k, ef, out, err, sizeof err);
    if (rc != HDB_OK) fprintf(stderr, "search: %s\n", err);
    assert_int_equal(rc, HDB_OK);
    size_t found = 0, want = 0;
    for (size_t i = 0; i < nq; i++) {
        const float *qi = q + i * m->d;
        const hdb_hit *o = out + i * k;
        size_t nt = brute_topk(m, qi, k, truth);
        size_t j = 0;
        for (; j < k && o[j].label >= 0; j++) {
            assert_true((size_t)o[j].label < m->cap);
            assert_true(m->live[o[j].label]); /* never a removed or unknown label */
            double s = exact_score(m->metric, qi, m->x + (size_t)o[j].label * m->d, m->d);
            assert_true(fabs(o[j].score - s) <= 1e-3 * (1.0 + fabs(s)));
            if (j > 0) {
                assert_true(o[j - 1].score <= o[j].score);
                if (o[j - 1].score == o[j].score) assert_true(o[j - 1].label < o[j].label);
                for (size_t t = 0; t < j; t++)
                    assert_true(o[t].label != o[j].label);
            }
            for (size_t t = 0; t < nt; t++)
                if (truth[t] == o[j].label) {
                    found++;
                    break;
                }
        }
        assert_int_equal(j, nt); /* as many hits as live points allow */
        for (; j < k; j++) {
            assert_int_equal(o[j].label, -1);
            assert_true(isinf(o[j].score) && o[j].score > 0);
        }
        want += nt;
    }
    free(out);
    return want ? (double)found / (double)want : 1.0;
}

/* ---- engine helpers ----------------------------------------------------------------------- */

/* Field-wise equality of two result lists (hdb_hit has padding bytes). */
static void assert_hits_equal(const hdb_hit *a, const hdb_hit *b, size_t n) {
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(a[i].label, b[i].label);
        assert_true(memcmp(&a[i].score, &b[i].score, sizeof a[i].score) == 0);
    }
}

static hdb_hnsw *make(hdb_metric metric, uint32_t d, uint32_t m, uint32_t efc) {
    hdb_hnsw_params p = {.dim = d, .metric = metric, .m = m, .ef_construction = efc};
    hdb_hnsw *h = NULL;
    char err[256] = "";
    int rc = hdb_hnsw_create(&h, &p, err, sizeof err);
    if (rc != HDB_OK) fprintf(stderr, "create: %s\n", err);
    assert_int_equal(rc, HDB_OK);
    assert_non_null(h);
    return h;
}

static void upsert(hdb_hnsw *h, model *m, size_t n, const int64_t *labels, const float *x) {
    char err[256] = "";
    int rc = hdb_hnsw_upsert(h, n, labels, x, err, sizeof err);
    if (rc != HDB_OK) fprintf(stderr, "upsert: %s\n", err);
    assert_int_equal(rc, HDB_OK);
    if (m)
        for (size_t i = 0; i < n; i++)
            model_set(m, labels[i], x + i * m->d);
}

static void tmp_path(char *buf, size_t len, const char *name) {
    const char *base = getenv("HDB_TEST_TMP") ? getenv("HDB_TEST_TMP") : "/tmp";
    mkdir(base, 0755);
    snprintf(buf, len, "%s/test_hnsw.%ld.%s", base, (long)getpid(), name);
}

static long file_size(const char *path) {
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    return (long)st.st_size;
}

static unsigned char *read_all(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *b = malloc((size_t)n + 1);
    assert_non_null(b);
    assert_int_equal(fread(b, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    *len = (size_t)n;
    return b;
}

static void write_all(const char *path, const unsigned char *b, size_t len) {
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(b, 1, len, f), len);
    assert_int_equal(fclose(f), 0);
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* ---- tests -------------------------------------------------------------------------------- */

static void test_create_errors(void **state) {
    (void)state;
    hdb_hnsw *h = (hdb_hnsw *)1;
    char err[256];
    hdb_hnsw_params p = {.dim = 8, .metric = HDB_METRIC_L2};

    assert_int_equal(hdb_hnsw_create(NULL, &p, err, sizeof err), HDB_EINVAL);
    assert_int_equal(hdb_hnsw_create(&h, NULL, err, sizeof err), HDB_EINVAL);
    assert_null(h);
    p.dim = 0;
    assert_int_equal(hdb_hnsw_create(&h, &p, err, sizeof err), HDB_EINVAL);
    assert_non_null(strstr(err, "dim"));
    p.dim = (1u << 20) + 1;
    assert_int_equal(hdb_hnsw_create(&h, &p, err, sizeof err), HDB_EINVAL);
    p.dim = 8;
    const int bad_metrics[] = {0, HDB_METRIC_JACCARD, 99, -1};
    for (size_t i = 0; i < sizeof bad_metrics / sizeof *bad_metrics; i++) {
        p.metric = (hdb_metric)bad_metrics[i];
        assert_int_equal(hdb_hnsw_create(&h, &p, err, sizeof err), HDB_EINVAL);
        assert_null(h);
    }
    p.metric = HDB_METRIC_COSINE;
    p.m = 1; /* hnswlib divides by log(m) */
    assert_int_equal(hdb_hnsw_create(&h, &p, err, sizeof err), HDB_EINVAL);
    p.m = 5000;
    assert_int_equal(hdb_hnsw_create(&h, &p, err, sizeof err), HDB_EINVAL);
    p.m = 0;
    p.ef_construction = 1u << 30;
    assert_int_equal(hdb_hnsw_create(&h, &p, err, sizeof err), HDB_EINVAL);
    p.ef_construction = 0;
    assert_int_equal(hdb_hnsw_create(&h, &p, NULL, 0), HDB_OK); /* defaults */
    assert_non_null(h);
    assert_int_equal(hdb_hnsw_size(h), 0);
    hdb_hnsw_free(h);
    hdb_hnsw_free(NULL);
    assert_int_equal(hdb_hnsw_size(NULL), 0);
}

/* Bad arguments to upsert and search change nothing. */
static void test_bad_arguments(void **state) {
    (void)state;
    hdb_hnsw *h = make(HDB_METRIC_L2, 4, 0, 0);
    char err[256];
    float v[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    int64_t l[2] = {1, -5};
    hdb_hit out[4];

    assert_int_equal(hdb_hnsw_upsert(h, 2, l, v, err, sizeof err), HDB_EINVAL);
    assert_non_null(strstr(err, "negative"));
    l[1] = 2;
    v[6] = NAN;
    assert_int_equal(hdb_hnsw_upsert(h, 2, l, v, err, sizeof err), HDB_EINVAL);
    v[6] = INFINITY;
    assert_int_equal(hdb_hnsw_upsert(h, 2, l, v, err, sizeof err), HDB_EINVAL);
    assert_int_equal(hdb_hnsw_size(h), 0); /* the good first vector was not applied either */
    assert_int_equal(hdb_hnsw_upsert(h, 1, NULL, v, err, sizeof err), HDB_EINVAL);
    assert_int_equal(hdb_hnsw_upsert(NULL, 1, l, v, err, sizeof err), HDB_EINVAL);
    assert_int_equal(hdb_hnsw_upsert(h, 0, NULL, NULL, err, sizeof err), HDB_OK);
    v[6] = 7;
    assert_int_equal(hdb_hnsw_upsert(h, 2, l, v, err, sizeof err), HDB_OK);
    assert_int_equal(hdb_hnsw_size(h), 2);

    float q[4] = {1, 2, NAN, 4};
    assert_int_equal(hdb_hnsw_search(h, 1, q, 4, 0, out, err, sizeof err), HDB_EINVAL);
    assert_int_equal(hdb_hnsw_search(h, 1, NULL, 4, 0, out, err, sizeof err), HDB_EINVAL);
    assert_int_equal(hdb_hnsw_search(h, 1, v, 4, 0, NULL, err, sizeof err), HDB_EINVAL);
    assert_int_equal(hdb_hnsw_search(NULL, 1, v, 4, 0, out, err, sizeof err), HDB_EINVAL);
    assert_int_equal(hdb_hnsw_search(h, 0, NULL, 4, 0, NULL, err, sizeof err), HDB_OK);
    assert_int_equal(hdb_hnsw_search(h, 1, v, 0, 0, NULL, err, sizeof err), HDB_OK);
    assert_int_equal(hdb_hnsw_search(h, SIZE_MAX / 2, v, 4, 0, out, err, sizeof err), HDB_EINVAL);
    assert_int_equal(hdb_hnsw_remove(h, 1, NULL), 0);
    assert_int_equal(hdb_hnsw_remove(NULL, 1, l), 0);
    assert_int_equal(hdb_hnsw_save(h, NULL, err, sizeof err), HDB_EINVAL);
    hdb_hnsw_free(h);
}

static void check_recall(hdb_metric metric, int clustered) {
    enum { N = 5000, D = 32, NQ = 200, K = 10 };
    uint64_t s = 0x9E3779B97F4A7C15ull + (uint64_t)metric * 7 + (uint64_t)clustered;
    float *x = alloc_floats((size_t)N * D), *q = alloc_floats((size_t)NQ * D);
    if (clustered) { /* 50 clusters, ~1.4 across against ~4.6 between centres */
        float c[50 * D];
        fill_random(&s, c, 50, D);
        fill_clustered(&s, c, 50, x, N, D, 0.3f);
        fill_clustered(&s, c, 50, q, NQ, D, 0.3f);
    } else {
        fill_random(&s, x, N, D);
        fill_random(&s, q, NQ, D);
    }
    int64_t *l = iota_labels(N);
    model m;
    model_init(&m, metric, D, N);
    hdb_hnsw *h = make(metric, D, 0, 0);
    upsert(h, &m, N, l, x);
    assert_int_equal(hdb_hnsw_size(h), N);
    double r = search_recall(h, &m, q, NQ, K, 64);
    fprintf(stderr, "    recall@10 %-13s %-9s ef=64: %.4f\n", hdb_metric_name(metric),
            clustered ? "clustered" : "random", r);
    assert_true(r >= 0.95);
    hdb_hnsw_free(h);
    model_free(&m);
    free(l);
    free(x);
    free(q);
}

static void test_recall_random(void **state) {
    (void)state;
    check_recall(HDB_METRIC_L2, 0);
    check_recall(HDB_METRIC_IP, 0);
    check_recall(HDB_METRIC_COSINE, 0);
}

static void test_recall_clustered(void **state) {
    (void)state;
    check_recall(HDB_METRIC_L2, 1);
    check_recall(HDB_METRIC_IP, 1);
    check_recall(HDB_METRIC_COSINE, 1);
}

/* Empty graphs and k above the size give padding; a batch of one point behaves. */
static void test_padding_and_empty(void **state) {
    (void)state;
    enum { D = 8, K = 10 };
    uint64_t s = 42;
    float q[2 * D], x[5 * D];
    fill_random(&s, q, 2, D);
    fill_random(&s, x, 5, D);
    const hdb_metric metrics[] = {HDB_METRIC_L2, HDB_METRIC_IP, HDB_METRIC_COSINE};
    for (size_t mi = 0; mi < 3; mi++) {
        hdb_hnsw *h = make(metrics[mi], D, 0, 0);
        hdb_hit out[2 * K];
        char err[256];
        memset(out, 0x55, sizeof out);
        assert_int_equal(hdb_hnsw_search(h, 2, q, K, 0, out, err, sizeof err), HDB_OK);
        for (size_t i = 0; i < 2 * K; i++) {
            assert_int_equal(out[i].label, -1);
            assert_true(isinf(out[i].score) && out[i].score > 0);
        }
        model m;
        model_init(&m, metrics[mi], D, 5);
        int64_t one = 3;
        upsert(h, &m, 1, &one, x + 3 * D);
        assert_true(search_recall(h, &m, q, 2, K, 0) == 1.0); /* one hit, nine pads */
        int64_t l[4] = {0, 1, 2, 4};
        float x4[4 * D];
        memcpy(x4, x, 3 * D * sizeof(float));
        memcpy(x4 + 3 * D, x + 4 * D, D * sizeof(float));
        upsert(h, &m, 4, l, x4);
        assert_int_equal(hdb_hnsw_size(h), 5);
        assert_true(search_recall(h, &m, q, 2, K, 0) == 1.0); /* all five, then pads */
        assert_true(search_recall(h, &m, q, 2, 1, 1) == 1.0);
        hdb_hnsw_free(h);
        model_free(&m);
    }
}

/* A larger per-call ef finds at least as much; ef 0 keeps using the engine default. */
static void test_ef_override(void **state) {
    (void)state;
    enum { N = 5000, D = 32, NQ = 200, K = 10 };
    uint64_t s = 7;
    test_data td = random_data(&s, N, NQ, D);
    float *x = td.x, *q = td.q;
    int64_t *l = td.l;
    model m;
    model_init(&m, HDB_METRIC_L2, D, N);
    hdb_hnsw_params p = {
        .dim = D, .metric = HDB_METRIC_L2, .m = 8, .ef_construction = 40, .ef_search = 10};
    hdb_hnsw *h = NULL;
    assert_int_equal(hdb_hnsw_create(&h, &p, NULL, 0), HDB_OK);
    upsert(h, &m, N, l, x);

    hdb_hit *a = malloc(NQ * K * sizeof *a), *b = malloc(NQ * K * sizeof *b);
    assert_int_equal(hdb_hnsw_search(h, NQ, q, K, 0, a, NULL, 0), HDB_OK);
    double r_def = search_recall(h, &m, q, NQ, K, 0);
    double r_lo = search_recall(h, &m, q, NQ, K, 10);
    double r_mid = search_recall(h, &m, q, NQ, K, 40);
    double r_hi = search_recall(h, &m, q, NQ, K, 400);
    fprintf(stderr, "    recall@10 ef default(10) %.4f, 10 %.4f, 40 %.4f, 400 %.4f\n", r_def, r_lo,
            r_mid, r_hi);
    assert_true(r_def == r_lo);
    assert_true(r_mid >= r_lo);
    assert_true(r_hi >= r_mid);
    assert_true(r_hi > r_lo); /* the override really changes the search */
    assert_true(r_hi >= 0.99);
    /* ef below k is raised to k: ef 1 gives the same as ef 10 for k 10. */
    assert_true(search_recall(h, &m, q, NQ, K, 1) == r_lo);
    /* The overrides left the default alone. */
    assert_int_equal(hdb_hnsw_search(h, NQ, q, K, 0, b, NULL, 0), HDB_OK);
    assert_hits_equal(a, b, NQ * K);
    hdb_hnsw_free(h);
    model_free(&m);
    free(a);
    free(b);
    data_free(&td);
}

/* Replacing the vectors of 20% of the labels moves them: found at ~0 by their new vectors,
 * no longer at their old ones; the size does not change. */
static void test_update_in_place(void **state) {
    (void)state;
    enum { N = 5000, D = 32, NQ = 200, K = 10, NU = N / 5 };
    uint64_t s = 11;
    test_data td = random_data(&s, N, NQ, D);
    float *x = td.x, *q = td.q;
    int64_t *l = td.l, ul[NU];
    float *old = alloc_floats((size_t)NU * D), *nv = alloc_floats((size_t)NU * D);
    model m;
    model_init(&m, HDB_METRIC_L2, D, N);
    hdb_hnsw *h = make(HDB_METRIC_L2, D, 0, 0);
    upsert(h, &m, N, l, x);

    for (size_t i = 0; i < NU; i++) {
        ul[i] = (int64_t)(i * 5 + 2);
        memcpy(old + i * D, x + (size_t)ul[i] * D, D * sizeof(float));
    }
    fill_random(&s, nv, NU, D);
    upsert(h, &m, NU, ul, nv);
    assert_int_equal(hdb_hnsw_size(h), N);

    hdb_hit *out = malloc(NU * K * sizeof *out);
    assert_int_equal(hdb_hnsw_search(h, NU, nv, 1, 0, out, NULL, 0), HDB_OK);
    size_t self = 0;
    for (size_t i = 0; i < NU; i++)
        self += out[i].label == ul[i] && out[i].score < 1e-6f;
    fprintf(stderr, "    updated labels found at their new vectors: %zu / %d\n", self, NU);
    assert_int_equal(self, NU);
    assert_int_equal(hdb_hnsw_search(h, NU, old, K, 0, out, NULL, 0), HDB_OK);
    for (size_t i = 0; i < NU; i++)
        for (size_t j = 0; j < K; j++)
            if (out[i * K + j].label == ul[i]) assert_true(out[i * K + j].score > 1e-3f);
    double r = search_recall(h, &m, q, NQ, K, 64);
    fprintf(stderr, "    recall@10 after the update: %.4f\n", r);
    assert_true(r >= 0.95);
    /* Updating with the same vector again is harmless. */
    upsert(h, &m, NU / 5, ul, nv);
    assert_int_equal(hdb_hnsw_size(h), N);
    assert_true(search_recall(h, &m, q, NQ, K, 64) >= 0.95);
    hdb_hnsw_free(h);
    model_free(&m);
    free(out);
    free(old);
    free(nv);
    data_free(&td);
}

/* Removed labels never appear; a removed label comes back when upserted again. */
/* accept() for test_accept: labels whose value mod 1000 is below the bound in ctx. */
static bool below_mod(const void *ctx, int64_t label) {
    return label % 1000 < *(const int64_t *)ctx;
}

/* hdb_hnsw_search_accept returns only accepted labels, all of them when fewer than k pass
 * (the walk comes up short and the scan finds them), and keeps recall at 50%, 10% and 1%. */
static void test_accept(void **state) {
    (void)state;
    enum { N = 4000, D = 32, NQ = 100, K = 10 };
    uint64_t s = 29;
    test_data td = random_data(&s, N, NQ, D);
    model m, pass;
    model_init(&m, HDB_METRIC_L2, D, N);
    hdb_hnsw *h = make(HDB_METRIC_L2, D, 16, 100);
    upsert(h, &m, N, td.l, td.x);
    model_init(&pass, HDB_METRIC_L2, D, N);
    memcpy(pass.x, m.x, (size_t)N * D * sizeof *pass.x);
    hdb_hit *out = malloc(NQ * K * sizeof *out);
    assert_non_null(out);
    const int64_t bounds[] = {500, 100, 10, 1};
    for (size_t b = 0; b < 4; b++) {
        int64_t bound = bounds[b];
        size_t npass = 0;
        for (size_t l = 0; l < N; l++) npass += pass.live[l] = (int64_t)l % 1000 < bound;
        hdb_accept acc = {below_mod, &bound, npass};
        char err[256] = "";
        assert_int_equal(hdb_hnsw_search_accept(h, NQ, td.q, K, 64, &acc, out, err, sizeof err),
                         HDB_OK);
        size_t found = 0, want = 0;
        for (size_t i = 0; i < NQ; i++) {
            int64_t truth[K];
            size_t nt = brute_topk(&pass, td.q + i * D, K, truth);
            assert_int_equal(nt, npass < K ? npass : K);
            size_t j = 0;
            for (; j < K && out[i * K + j].label >= 0; j++) {
                assert_true(out[i * K + j].label % 1000 < bound);
                for (size_t t = 0; t < nt; t++) found += truth[t] == out[i * K + j].label;
            }
            assert_int_equal(j, nt); /* never short while enough pass */
            want += nt;
        }
        double r = (double)found / (double)want;
        fprintf(stderr, "    %zu of %d pass: recall@10 %.4f\n", npass, N, r);
        assert_true(r >= 0.95);
    }
    free(out);
    hdb_hnsw_free(h);
    model_free(&m);
    model_free(&pass);
    free(td.x);
    free(td.q);
    free(td.l);
}

static void test_remove(void **state) {
    (void)state;
    enum { N = 5000, D = 32, NQ = 300, K = 20 };
    uint64_t s = 13;
    test_data td = random_data(&s, N, NQ, D);
    float *x = td.x, *q = td.q;
    int64_t *l = td.l;
    model m;
    model_init(&m, HDB_METRIC_COSINE, D, N);
    hdb_hnsw *h = make(HDB_METRIC_COSINE, D, 0, 0);
    upsert(h, &m, N, l, x);

    int64_t *rl = malloc(N * sizeof *rl);
    size_t nr = 0;
    for (size_t i = 0; i < N; i += 3)
        rl[nr++] = (int64_t)i;
    assert_int_equal(hdb_hnsw_remove(h, nr / 2, rl), nr / 2);
    assert_int_equal(hdb_hnsw_remove(h, nr, rl), nr - nr / 2); /* the first half is gone */
    assert_int_equal(hdb_hnsw_remove(h, nr, rl), 0);
    int64_t absent[3] = {-7, N + 10, INT64_MAX};
    assert_int_equal(hdb_hnsw_remove(h, 3, absent), 0);
    for (size_t i = 0; i < nr; i++)
        m.live[rl[i]] = 0;
    assert_int_equal(hdb_hnsw_size(h), N - nr);
    double r = search_recall(h, &m, q, NQ, K, 64); /* asserts no removed label appears */
    fprintf(stderr, "    recall@20 with a third removed: %.4f\n", r);
    assert_true(r >= 0.95);

    /* Re-upsert 100 removed labels: they are back, found at their own vectors. */
    float *back = alloc_floats(100 * D);
    for (size_t i = 0; i < 100; i++)
        memcpy(back + i * D, x + (size_t)rl[i] * D, D * sizeof(float));
    upsert(h, &m, 100, rl, back);
    assert_int_equal(hdb_hnsw_size(h), N - nr + 100);
    hdb_hit out[100];
    assert_int_equal(hdb_hnsw_search(h, 100, back, 1, 0, out, NULL, 0), HDB_OK);
    for (size_t i = 0; i < 100; i++)
        assert_int_equal(out[i].label, rl[i]);
    assert_true(search_recall(h, &m, q, NQ, K, 64) >= 0.95);

    /* Keep five: exactly those five come back, whatever k. */
    int64_t *rest = malloc(N * sizeof *rest);
    size_t nrest = 0, kept = 0;
    for (size_t i = 0; i < N; i++)
        if (m.live[i] && (i % 97 != 5 || ++kept > 5)) rest[nrest++] = (int64_t)i;
    assert_int_equal(hdb_hnsw_remove(h, nrest, rest), nrest);
    for (size_t i = 0; i < nrest; i++)
        m.live[rest[i]] = 0;
    assert_int_equal(hdb_hnsw_size(h), 5);
    assert_int_equal(model_count(&m), 5);
    assert_true(search_recall(h, &m, q, 50, K, 0) == 1.0);
    assert_true(search_recall(h, &m, q, 50, 3, 3) == 1.0);

    /* Remove everything: only padding. */
    assert_int_equal(hdb_hnsw_remove(h, N, l), 5);
    memset(m.live, 0, N);
    assert_int_equal(hdb_hnsw_size(h), 0);
    assert_true(search_recall(h, &m, q, 20, K, 0) == 1.0);
    upsert(h, &m, 10, l, x); /* and back */
    assert_int_equal(hdb_hnsw_size(h), 10);
    assert_true(search_recall(h, &m, q, 20, K, 0) == 1.0);
    hdb_hnsw_free(h);
    model_free(&m);
    free(back);
    free(rest);
    free(rl);
    data_free(&td);
}

/* 20 rounds of removing 500 labels and adding 500 new ones: slots are reused, so the graph
 * (measured by its snapshot size) stays the size of 5000 points, and recall holds. */
static void test_churn(void **state) {
    (void)state;
    enum { N = 5000, D = 32, NQ = 200, K = 10, ROUNDS = 20, STEP = 500 };
    enum { CAP = N + ROUNDS * STEP };
    uint64_t s = 17;
    test_data td = random_data(&s, CAP, NQ, D);
    float *x = td.x, *q = td.q;
    int64_t *l = td.l;
    model m;
    model_init(&m, HDB_METRIC_L2, D, CAP);
    /* m 12 / ef_construction 100: a slot reuse re-selects the links of every old neighbour
     * from its two-hop neighbourhood, which costs ~(2m)^2 distances, so this keeps the test
     * fast under ASan. */
    hdb_hnsw *h = make(HDB_METRIC_L2, D, 12, 100);
    upsert(h, &m, N, l, x);
    double r0 = search_recall(h, &m, q, NQ, K, 64);
    char path[512];
    tmp_path(path, sizeof path, "churn");
    assert_int_equal(hdb_hnsw_save(h, path, NULL, 0), HDB_OK);
    long size0 = file_size(path);

    int64_t next = N, gone[STEP];
    for (int round = 0; round < ROUNDS; round++) {
        for (size_t i = 0; i < STEP; i++) {
            int64_t v;
            do
                v = (int64_t)rng_below(&s, (uint64_t)next);
            while (!m.live[v]);
            m.live[v] = 0; /* distinct within the round */
            gone[i] = v;
        }
        assert_int_equal(hdb_hnsw_remove(h, STEP, gone), STEP);
        upsert(h, &m, STEP, l + next, x + (size_t)next * D);
        next += STEP;
        assert_int_equal(hdb_hnsw_size(h), N);
    }
    assert_int_equal(hdb_hnsw_save(h, path, NULL, 0), HDB_OK);
    long size1 = file_size(path);
    double r = search_recall(h, &m, q, NQ, K, 64);
    fprintf(stderr, "    churn: snapshot %ld -> %ld bytes after %d x %d, recall@10 %.4f -> %.4f\n",
            size0, size1, ROUNDS, STEP, r0, r);
    assert_true(size1 <= size0 + size0 / 100); /* without reuse it would be 3x */
    assert_true(r >= 0.9);
    unlink(path);
    hdb_hnsw_free(h);
    model_free(&m);
    data_free(&td);
}

/* Sanitizer builds run several times slower; the churn-recall test scales its data set down
 * there (the assertions stay the same). */
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define HDB_TEST_SLOW_BUILD 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define HDB_TEST_SLOW_BUILD 1
#endif
#endif
#ifndef HDB_TEST_SLOW_BUILD
#define HDB_TEST_SLOW_BUILD 0
#endif

/* Self-recall@1 over every live label of m: the share of live vectors whose own search (ef)
 * returns that label first. */
static double self_recall(hdb_hnsw *h, const model *m, uint32_t ef) {
    size_t live = model_count(m), j = 0;
    float *q = alloc_floats(live * m->d);
    int64_t *want = malloc(live * sizeof *want);
    hdb_hit *out = malloc(live * sizeof *out);
    assert_non_null(want);
    assert_non_null(out);
    for (size_t l = 0; l < m->cap; l++)
        if (m->live[l]) {
            memcpy(q + j * m->d, m->x + l * m->d, m->d * sizeof(float));
            want[j++] = (int64_t)l;
        }
    assert_int_equal(hdb_hnsw_search(h, live, q, 1, ef, out, NULL, 0), HDB_OK);
    size_t hit = 0;
    for (size_t i = 0; i < live; i++)
        hit += out[i].label == want[i];
    free(q);
    free(want);
    free(out);
    return live ? (double)hit / (double)live : 1.0;
}

/* Issue 8 item 5: every point of a 5k set replaced 20 times (in batches, with fresh random
 * vectors; fewer rounds by default, see below), then 10% deleted. The churned graph must
 * answer like a fresh build of the same live vectors with the same parameters: self-recall@1
 * >= 0.98 and recall@10 against brute force within 0.01 of the fresh graph's. */
static void test_churn_recall(void **state) {
    (void)state;
    enum { D = 32, NQ = 300, K = 10, BATCH = 500, EF = 64 };
    /* The 20 rounds take ~65 s in release (an update costs ~6 inserts), so the suite
     * runs 3 (1 on 2000 points under sanitizers), which keeps the whole suite within its time
     * on two busy cores; HDB_TEST_CHURN_ROUNDS=20 runs the full test (recall@10 0.9870 against
     * 0.9873 fresh when measured). One build thread: both graphs are then the same on every
     * run (for one set of kernels). */
    const size_t n = HDB_TEST_SLOW_BUILD ? 2000 : 5000;
    const char *env_rounds = getenv("HDB_TEST_CHURN_ROUNDS");
    const int rounds = env_rounds && atoi(env_rounds) > 0 ? atoi(env_rounds)
                       : HDB_TEST_SLOW_BUILD             ? 1
                                                         : 3;
    const uint32_t pm = 16, efc = 200;
    uint64_t s = 23;
    float *x = alloc_floats(n * D), *q = alloc_floats(NQ * D);
    int64_t *l = iota_labels(n);
    fill_random(&s, q, NQ, D);
    model m;
    model_init(&m, HDB_METRIC_L2, D, n);
    hdb_hnsw_set_build_threads(1);
    hdb_hnsw *h = make(HDB_METRIC_L2, D, pm, efc);
    double t0 = now_s();
    for (int round = 0; round <= rounds; round++) { /* round 0 is the first build */
        fill_random(&s, x, n, D);
        for (size_t i = 0; i < n; i += BATCH)
            upsert(h, &m, n - i < BATCH ? n - i : BATCH, l + i, x + i * D);
    }
    size_t ndel = n / 10, del = 0;
    int64_t *gone = malloc(ndel * sizeof *gone);
    assert_non_null(gone);
    while (del < ndel) {
        int64_t v = (int64_t)rng_below(&s, n);
        if (!m.live[v]) continue;
        m.live[v] = 0;
        gone[del++] = v;
    }
    assert_int_equal(hdb_hnsw_remove(h, ndel, gone), ndel);
    assert_int_equal(hdb_hnsw_size(h), n - ndel);
    double t1 = now_s();

    /* A fresh graph of the same live vectors, same parameters. */
    hdb_hnsw *f = make(HDB_METRIC_L2, D, pm, efc);
    size_t live = 0;
    for (size_t i = 0; i < n; i++)
        if (m.live[i]) {
            memcpy(x + live * D, m.x + i * D, D * sizeof(float));
            l[live++] = (int64_t)i;
        }
    upsert(f, NULL, live, l, x);
    double t2 = now_s();

    double self_c = self_recall(h, &m, EF), self_f = self_recall(f, &m, EF);
    double rc = search_recall(h, &m, q, NQ, K, EF), rf = search_recall(f, &m, q, NQ, K, EF);
    fprintf(stderr,
            "    churn recall: %zu points x %d replacements, %zu deleted (%.1f s; fresh build "
            "%.1f s): self-recall@1 %.4f (fresh %.4f), recall@10 %.4f (fresh %.4f)\n",
            n, rounds, ndel, t1 - t0, t2 - t1, self_c, self_f, rc, rf);
    hdb_hnsw_set_build_threads(0);
    assert_true(self_c >= 0.98);
    assert_true(rc >= rf - 0.01);
    hdb_hnsw_free(f);
    hdb_hnsw_free(h);
    model_free(&m);
    free(gone);
    free(l);
    free(x);
    free(q);
}

/* Issue 8 item 6: a batch of new labels is inserted by several threads. The graph differs from
 * a one-thread build, but its recall must not: within 0.01 of it. A mixed batch (updates,
 * fresh labels that reuse free slots, and more fresh labels than free slots) then takes both
 * paths at once, for COSINE, whose vectors each inserting thread normalises itself. */
static void test_parallel_build(void **state) {
    (void)state;
    enum { D = 32, NQ = 200, K = 10, EF = 64, GONE = 100, MORE = 400, UPD = 50 };
    const size_t n = HDB_TEST_SLOW_BUILD ? 4000 : 20000;
    uint64_t s = 29;
    test_data td = random_data(&s, n + MORE, NQ, D);
    double r[2], t[2];
    model m[2];
    hdb_hnsw *h[2];
    for (int i = 0; i < 2; i++) {
        hdb_hnsw_set_build_threads(i == 0 ? 1 : 2);
        assert_int_equal(hdb_hnsw_build_threads(), i == 0 ? 1 : 2);
        model_init(&m[i], HDB_METRIC_COSINE, D, n + MORE);
        h[i] = make(HDB_METRIC_COSINE, D, 16, 100);
        double t0 = now_s();
        upsert(h[i], &m[i], n, td.l, td.x);
        t[i] = now_s() - t0;
        assert_int_equal(hdb_hnsw_size(h[i]), n);
        r[i] = search_recall(h[i], &m[i], td.q, NQ, K, EF);
    }
    fprintf(stderr, "    build of %zu: 1 thread %.2f s recall@10 %.4f; 2 threads %.2f s recall@10 %.4f\n",
            n, t[0], r[0], t[1], r[1]);
    assert_true(r[1] >= r[0] - 0.01);

    /* Mixed batch on the 2-thread graph: UPD updates, GONE slot reuses, MORE - GONE appends. */
    int64_t gone[GONE], lab[UPD + MORE];
    float *v = alloc_floats((UPD + MORE) * D);
    for (size_t i = 0; i < GONE; i++)
        gone[i] = (int64_t)(UPD + i);
    assert_int_equal(hdb_hnsw_remove(h[1], GONE, gone), GONE);
    for (size_t i = 0; i < GONE; i++)
        m[1].live[gone[i]] = 0;
    for (size_t i = 0; i < UPD + MORE; i++)
        lab[i] = i < UPD ? (int64_t)i : (int64_t)(n + i - UPD);
    fill_random(&s, v, UPD + MORE, D);
    upsert(h[1], &m[1], UPD + MORE, lab, v);
    assert_int_equal(hdb_hnsw_size(h[1]), n - GONE + MORE);
    double rm = search_recall(h[1], &m[1], td.q, NQ, K, EF);
    fprintf(stderr, "    after a mixed batch: recall@10 %.4f\n", rm);
    assert_true(rm >= r[0] - 0.02);
    hdb_hnsw_set_build_threads(0);
    assert_true(hdb_hnsw_build_threads() >= 1);
    for (int i = 0; i < 2; i++) {
        hdb_hnsw_free(h[i]);
        model_free(&m[i]);
    }
    free(v);
    data_free(&td);
}

/* Save and load give the same results, before and after further writes. */
static void test_save_load(void **state) {
    (void)state;
    enum { N = 3000, D = 24, NQ = 100, K = 10 };
    uint64_t s = 19;
    test_data td = random_data(&s, N + 200, NQ, D);
    float *x = td.x, *q = td.q;
    int64_t *l = td.l;
    hdb_hnsw_params p = {.dim = D, .metric = HDB_METRIC_IP, .m = 12, .ef_construction = 100};
    hdb_hnsw *a = NULL, *b = NULL;
    char err[256] = "", path[512];
    tmp_path(path, sizeof path, "saveload");
    assert_int_equal(hdb_hnsw_create(&a, &p, NULL, 0), HDB_OK);

    /* An empty graph round-trips. */
    assert_int_equal(hdb_hnsw_save(a, path, err, sizeof err), HDB_OK);
    assert_int_equal(hdb_hnsw_load(&b, &p, path, err, sizeof err), HDB_OK);
    assert_int_equal(hdb_hnsw_size(b), 0);
    hdb_hit ob[K];
    assert_int_equal(hdb_hnsw_search(b, 1, q, K, 0, ob, NULL, 0), HDB_OK);
    assert_int_equal(ob[0].label, -1);
    hdb_hnsw_free(b);

    upsert(a, NULL, N, l, x);
    int64_t rm[300];
    for (size_t i = 0; i < 300; i++)
        rm[i] = (int64_t)(i * 7);
    assert_int_equal(hdb_hnsw_remove(a, 300, rm), 300);
    assert_int_equal(hdb_hnsw_save(a, path, err, sizeof err), HDB_OK);
    hdb_hnsw_params p2 = p;
    p2.m = 0; /* m and ef_construction come from the file */
    p2.ef_construction = 0;
    int rc = hdb_hnsw_load(&b, &p2, path, err, sizeof err);
    if (rc != HDB_OK) fprintf(stderr, "load: %s\n", err);
    assert_int_equal(rc, HDB_OK);
    assert_int_equal(hdb_hnsw_size(b), N - 300);

    hdb_hit *ra = malloc(NQ * K * sizeof *ra), *rb = malloc(NQ * K * sizeof *rb);
    for (int round = 0; round < 2; round++) {
        for (uint32_t ef = 0; ef <= 100; ef += 100) {
            assert_int_equal(hdb_hnsw_search(a, NQ, q, K, ef, ra, NULL, 0), HDB_OK);
            assert_int_equal(hdb_hnsw_search(b, NQ, q, K, ef, rb, NULL, 0), HDB_OK);
            assert_hits_equal(ra, rb, NQ * K);
        }
        /* The free list came back in order: the same new labels reuse the same slots. */
        upsert(a, NULL, 200, l + N, x + (size_t)N * D);
        upsert(b, NULL, 200, l + N, x + (size_t)N * D);
        assert_int_equal(hdb_hnsw_size(a), hdb_hnsw_size(b));
    }
    hdb_hnsw_free(b);

    /* Parameters: dim and metric must match; ef_search may differ. */
    hdb_hnsw_params bad = p;
    bad.dim = D + 1;
    b = (hdb_hnsw *)1;
    assert_int_equal(hdb_hnsw_load(&b, &bad, path, err, sizeof err), HDB_EINVAL);
    assert_null(b);
    bad = p;
    bad.metric = HDB_METRIC_L2;
    assert_int_equal(hdb_hnsw_load(&b, &bad, path, err, sizeof err), HDB_EINVAL);
    assert_non_null(strstr(err, "metric"));
    bad.metric = HDB_METRIC_JACCARD;
    assert_int_equal(hdb_hnsw_load(&b, &bad, path, err, sizeof err), HDB_EINVAL);
    assert_int_equal(hdb_hnsw_load(&b, NULL, path, err, sizeof err), HDB_EINVAL);
    assert_int_equal(hdb_hnsw_load(NULL, &p, path, err, sizeof err), HDB_EINVAL);
    assert_int_equal(hdb_hnsw_load(&b, &p, NULL, err, sizeof err), HDB_EINVAL);
    bad = p;
    bad.ef_search = 300;
    assert_int_equal(hdb_hnsw_load(&b, &bad, path, err, sizeof err), HDB_OK);
    hdb_hnsw_free(b);

    /* Unwritable path. */
    char nodir[600];
    snprintf(nodir, sizeof nodir, "%s.missing-dir/x", path);
    assert_int_equal(hdb_hnsw_save(a, nodir, err, sizeof err), HDB_EIO);
    unlink(path);
    hdb_hnsw_free(a);
    free(ra);
    free(rb);
    data_free(&td);
}

/* Loads buf (written to path) and expects rc; nothing may crash. */
static void expect_load(const char *path, const hdb_hnsw_params *p, const unsigned char *buf,
                        size_t len, int want, const char *what) {
    hdb_hnsw *h = (hdb_hnsw *)1;
    char err[256] = "";
    write_all(path, buf, len);
    int rc = hdb_hnsw_load(&h, p, path, err, sizeof err);
    if (rc != want) fprintf(stderr, "%s: rc %d (%s), want %d\n", what, rc, err, want);
    assert_int_equal(rc, want);
    if (rc == HDB_OK)
        hdb_hnsw_free(h);
    else
        assert_null(h);
}

static uint32_t le32(const unsigned char *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void set_le32(unsigned char *p, uint32_t v) {
    for (int i = 0; i < 4; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

/* Rewrites the CRC trailer, so that only the structural checks can catch a change. */
static void fix_crc(unsigned char *b, size_t len) {
    set_le32(b + len - 4, hdb_crc32c(0, b, len - 4));
}

/* Truncated, flipped, garbage and structurally bad files give HDB_ECORRUPT; a missing one
 * HDB_EIO. Run under ASan, this also shows that no check reads out of bounds. */
static void test_load_damaged(void **state) {
    (void)state;
    enum { N = 600, D = 8 };
    uint64_t s = 23;
    float *x = alloc_floats((size_t)N * D);
    fill_random(&s, x, N, D);
    int64_t *l = iota_labels(N);
    hdb_hnsw_params p = {.dim = D, .metric = HDB_METRIC_L2, .m = 6, .ef_construction = 30};
    hdb_hnsw *a = NULL;
    char good[512], bad[512], err[256];
    tmp_path(good, sizeof good, "good");
    tmp_path(bad, sizeof bad, "bad");
    assert_int_equal(hdb_hnsw_create(&a, &p, NULL, 0), HDB_OK);
    upsert(a, NULL, N, l, x);
    int64_t rm[5] = {3, 30, 300, 301, 599};
    assert_int_equal(hdb_hnsw_remove(a, 5, rm), 5);
    assert_int_equal(hdb_hnsw_save(a, good, NULL, 0), HDB_OK);
    hdb_hnsw_free(a);
    size_t len;
    unsigned char *b = read_all(good, &len);
    unsigned char *c = malloc(len);
    expect_load(bad, &p, b, len, HDB_OK, "intact");

    hdb_hnsw *h = (hdb_hnsw *)1;
    unlink(bad);
    assert_int_equal(hdb_hnsw_load(&h, &p, bad, err, sizeof err), HDB_EIO);
    assert_null(h);

    const size_t nfree = 5, goff = 72 + 4 * nfree + 8, g0 = goff + 96; /* graph, level 0 */
    const size_t cuts[] = {0,        1,    7,         8,      11,      12,      40,      56,     60,
                           goff - 1, goff, goff + 50, g0 + 3, len / 2, len - 5, len - 4, len - 1};
    for (size_t i = 0; i < sizeof cuts / sizeof *cuts; i++)
        expect_load(bad, &p, b, cuts[i], HDB_ECORRUPT, "truncated");
    for (size_t i = 0; i < 64; i++) { /* flips across the whole file, CRC trailer included */
        size_t at = i < 8 ? i * 4 : (i < 60 ? (len - 1) * (i - 8) / 52 : len - 1 - (i - 60));
        memcpy(c, b, len);
        c[at] ^= (unsigned char)(1u << (i % 8));
        expect_load(bad, &p, c, len, HDB_ECORRUPT, "flipped");
    }
    for (size_t i = 0; i < len; i++) /* garbage of the right length */
        c[i] = (unsigned char)rng_next(&s);
    expect_load(bad, &p, c, len, HDB_ECORRUPT, "garbage");
    memcpy(c, b, 12); /* garbage behind a good magic and version */
    expect_load(bad, &p, c, len, HDB_ECORRUPT, "garbage body");
    memcpy(c, b, len); /* a future version, checksum fixed */
    set_le32(c + 8, 3);
    fix_crc(c, len);
    expect_load(bad, &p, c, len, HDB_ECORRUPT, "version");
    unsigned char *big = calloc(len + 64, 1); /* stray bytes before the trailer */
    memcpy(big, b, len - 4);
    fix_crc(big, len + 64);
    expect_load(bad, &p, big, len + 64, HDB_ECORRUPT, "stray bytes");
    free(big);

    /* Structurally bad with a valid checksum. Graph header fields: offsets in hnswlib's
     * saveIndex order (count at +16, maxlevel at +48, entry point at +52). */
    struct {
        size_t at;
        uint32_t v;
        const char *what;
    } edits[] = {
        {48, 4, "free-list length"},
        {72, 7, "free-list entry (live slot)"},
        {40, N, "live count"},
        {goff + 16, N + 1, "element count"},
        {goff + 52, N + 5, "entry point"},
        {goff + 48, 300, "max level"},
        {g0, 200, "level-0 link count"},
        {g0 + 4, N + 1000, "level-0 neighbour id"},
        {g0 + 3, 1, "level-0 header byte"},
        {goff + 24, 7, "element size"},
        {20, 7, "m"},
        {g0 + 4 * (1 + 12) + 4 * D, 9, "duplicate label"},
    };
    for (size_t i = 0; i < sizeof edits / sizeof *edits; i++) {
        memcpy(c, b, len);
        if (strcmp(edits[i].what, "level-0 header byte") == 0) {
            c[edits[i].at] = 1;
        } else if (strcmp(edits[i].what, "duplicate label") == 0) {
            /* node 0's label := label of node 1 (labels are 8 bytes; low half is enough) */
            uint32_t other = le32(c + edits[i].at + (4 * (1 + 12) + 4 * D + 8));
            set_le32(c + edits[i].at, other);
        } else {
            set_le32(c + edits[i].at, edits[i].v);
        }
        fix_crc(c, len);
        expect_load(bad, &p, c, len, HDB_ECORRUPT, edits[i].what);
    }
    /* Upper-level lists: find a node with one and break its size and a neighbour. */
    size_t sdpe = 4 * (1 + 12) + 4 * D + 8, pos = g0 + N * sdpe;
    int broke_size = 0, broke_id = 0;
    for (size_t i = 0; i < N && !(broke_size && broke_id); i++) {
        uint32_t sz = le32(b + pos);
        if (sz > 0) {
            memcpy(c, b, len);
            if (!broke_size) {
                set_le32(c + pos, sz + 4);
                broke_size = 1;
            } else if (le32(b + pos + 4) > 0) {
                set_le32(c + pos + 8, N + 3); /* first neighbour at level 1 */
                broke_id = 1;
            } else {
                pos += 4 + sz;
                continue;
            }
            fix_crc(c, len);
            expect_load(bad, &p, c, len, HDB_ECORRUPT, "upper links");
        }
        pos += 4 + sz;
    }
    assert_true(broke_size && broke_id);
    unlink(good);
    unlink(bad);
    free(b);
    free(c);
    free(l);
    free(x);
}

/* The storage section of int8 files, damaged: an untrained graph's pending points (cut at
 * every byte, bad count, a NaN component, a label twice) and a trained graph's quantizer (a
 * step of zero, below zero, or not finite) give HDB_ECORRUPT, never a crash. */
static void test_load_damaged_int8(void **state) {
    (void)state;
    enum { D = 8, P = 20, TRAIN = 50 };
    uint64_t s = 29;
    float *x = alloc_floats((size_t)TRAIN * 2 * D);
    fill_random(&s, x, TRAIN * 2, D);
    int64_t *l = iota_labels(TRAIN * 2);
    hdb_hnsw_params p = {.dim = D, .metric = HDB_METRIC_L2, .storage = HDB_VEC_INT8,
                         .train_size = TRAIN};
    char good[512], bad[512];
    tmp_path(good, sizeof good, "int8good");
    tmp_path(bad, sizeof bad, "int8bad");
    hdb_hnsw *a = NULL;
    assert_int_equal(hdb_hnsw_create(&a, &p, NULL, 0), HDB_OK);
    upsert(a, NULL, P, l, x);
    assert_int_equal(hdb_hnsw_save(a, good, NULL, 0), HDB_OK);
    size_t len;
    unsigned char *b = read_all(good, &len);
    unsigned char *c = malloc(len + 8);
    assert_non_null(c);
    expect_load(bad, &p, b, len, HDB_OK, "intact untrained");
    const size_t xs = 72, rec = 8 + 4 * D; /* the section; one pending point */
    assert_int_equal(le32(b + 60), 0);      /* untrained */
    assert_int_equal(le32(b + xs), P);
    for (size_t cut = 0; cut < len; cut++)
        expect_load(bad, &p, b, cut, HDB_ECORRUPT, "untrained, truncated");
    struct {
        size_t at;
        uint32_t v;
        const char *what;
    } edits[] = {
        {56, 9, "storage value"},
        {60, 2, "trained flag"},
        {60, 1, "trained flag with pending points"},
        {64, (uint32_t)(8 + (P + 1) * rec), "section length"},
        {xs, P + 1, "pending count"},
        {xs, P - 1, "pending count, short"},
        {xs + 8 + 3 * rec + 8 + 4, 0x7fc00000u, "NaN component"},
        {xs + 8 + 5 * rec, 0, "label twice (0)"},
        {xs + 8 + 5 * rec + 4, 0x80000000u, "negative label"},
    };
    for (size_t i = 0; i < sizeof edits / sizeof *edits; i++) {
        memcpy(c, b, len);
        set_le32(c + edits[i].at, edits[i].v);
        fix_crc(c, len);
        expect_load(bad, &p, c, len, HDB_ECORRUPT, edits[i].what);
    }
    free(b);

    /* Trained: lo[D] then step[D] at the section. */
    upsert(a, NULL, TRAIN * 2 - P, l + P, x + (size_t)P * D);
    assert_true(hdb_hnsw_trained(a));
    assert_int_equal(hdb_hnsw_save(a, good, NULL, 0), HDB_OK);
    b = read_all(good, &len);
    c = realloc(c, len);
    assert_non_null(c);
    expect_load(bad, &p, b, len, HDB_OK, "intact trained");
    const uint32_t steps[] = {0, 0xbf800000u /* -1 */, 0x7f800000u /* inf */, 0x7fc00000u};
    for (size_t i = 0; i < 4; i++) {
        memcpy(c, b, len);
        set_le32(c + xs + 4 * D + 4 * (i % D), steps[i]);
        fix_crc(c, len);
        expect_load(bad, &p, c, len, HDB_ECORRUPT, "quantizer step");
    }
    memcpy(c, b, len);
    set_le32(c + xs, 0x7f800000u);
    fix_crc(c, len);
    expect_load(bad, &p, c, len, HDB_ECORRUPT, "quantizer lo");
    for (size_t cut = xs - 1; cut < xs + 8 * D + 2; cut++)
        expect_load(bad, &p, b, cut, HDB_ECORRUPT, "trained, truncated");
    unlink(good);
    unlink(bad);
    hdb_hnsw_free(a);
    free(b);
    free(c);
    free(l);
    free(x);
}

/* ---- concurrency -------------------------------------------------------------------------- */

enum { CD = 16, C_START = 300, C_MIN_ADD = 4400, C_MAX = 20000, C_K = 10 };

typedef struct {
    hdb_hnsw *h;
    model m;               /* vectors by label; live[] for odd labels is the remover's */
    atomic_llong reserved; /* labels below this are live or about to be */
    atomic_llong done;     /* labels below this have been upserted */
    atomic_llong removed;  /* removes that hit a live label */
    atomic_int stop;
    atomic_int failures;
    atomic_llong searches;
    char path[512];
    int saved;
} cstate;

static void *searcher(void *arg) {
    cstate *cs = arg;
    uint64_t s = 0xABCDEF + (uint64_t)(uintptr_t)&s;
    float q[4 * CD];
    hdb_hit out[4 * C_K];
    const uint32_t efs[3] = {0, 16, 64};
    while (!atomic_load(&cs->stop)) {
        fill_random(&s, q, 4, CD);
        size_t nq = 1 + rng_below(&s, 4);
        char err[128];
        if (hdb_hnsw_search(cs->h, nq, q, C_K, efs[rng_below(&s, 3)], out, err, sizeof err) !=
            HDB_OK) {
            atomic_fetch_add(&cs->failures, 1);
            continue;
        }
        long long limit = atomic_load(&cs->reserved);
        for (size_t i = 0; i < nq; i++)
            for (size_t j = 0; j < C_K; j++) {
                const hdb_hit *o = out + i * C_K + j;
                int ok = o->label == -1 ? isinf(o->score)
                                        : o->label >= 0 && o->label < limit && !isinf(o->score);
                if (j > 0) ok = ok && out[i * C_K + j - 1].score <= o->score;
                if (!ok) atomic_fetch_add(&cs->failures, 1);
            }
        atomic_fetch_add(&cs->searches, 1);
    }
    return NULL;
}

/* Adds new labels in batches while it can, and updates even labels. */
static void *upserter(void *arg) {
    cstate *cs = arg;
    uint64_t s = 99;
    enum { B = 64, NU = 2 };
    int64_t l[B + NU];
    float v[(B + NU) * CD];
    /* At least 1.5 s, and until the graph has grown from 1024 slots to 8192 (3 resizes), but
     * not beyond 20 s (ThreadSanitizer is slow). */
    double t0 = now_s();
    while (now_s() < t0 + 20 && (now_s() < t0 + 1.5 || atomic_load(&cs->done) < C_MIN_ADD)) {
        long long next = atomic_load(&cs->done);
        size_t n = next + B <= C_MAX ? B : 0;
        for (size_t i = 0; i < n; i++)
            l[i] = next + (long long)i;
        size_t nu = NU; /* updates of distinct even labels, which are never removed */
        int64_t base = (int64_t)(2 * rng_below(&s, (uint64_t)next / 2 - NU));
        for (size_t i = 0; i < nu; i++)
            l[n + i] = base + 2 * (int64_t)i;
        fill_random(&s, v, n + nu, CD);
        atomic_store(&cs->reserved, next + (long long)n);
        for (size_t i = 0; i < n; i++)
            cs->m.live[l[i]] = 1; /* before publishing through done */
        if (hdb_hnsw_upsert(cs->h, n + nu, l, v, NULL, 0) != HDB_OK)
            atomic_fetch_add(&cs->failures, 1);
        for (size_t i = 0; i < n + nu; i++)
            memcpy(cs->m.x + (size_t)l[i] * CD, v + i * CD, CD * sizeof(float));
        atomic_store(&cs->done, next + (long long)n);
    }
    atomic_store(&cs->stop, 1);
    return NULL;
}

/* Removes odd labels and saves once in the middle. */
static void *remover(void *arg) {
    cstate *cs = arg;
    uint64_t s = 77;
    int64_t l[16];
    double t_save = now_s() + 0.7;
    while (!atomic_load(&cs->stop)) {
        long long done = atomic_load(&cs->done);
        for (size_t i = 0; i < 16; i++) {
            l[i] = (int64_t)(2 * rng_below(&s, (uint64_t)done / 2) + 1);
            cs->m.live[l[i]] = 0;
        }
        atomic_fetch_add(&cs->removed, (long long)hdb_hnsw_remove(cs->h, 16, l));
        if (!cs->saved && now_s() > t_save) {
            if (hdb_hnsw_save(cs->h, cs->path, NULL, 0) != HDB_OK)
                atomic_fetch_add(&cs->failures, 1);
            cs->saved = 1;
        }
        usleep(200);
    }
    return NULL;
}

static void test_concurrency(void **state) {
    (void)state;
    cstate *cs = calloc(1, sizeof *cs);
    assert_non_null(cs);
    uint64_t s = 31;
    model_init(&cs->m, HDB_METRIC_L2, CD, C_MAX);
    cs->h = make(HDB_METRIC_L2, CD, 8, 64);
    tmp_path(cs->path, sizeof cs->path, "concurrent");
    float *x = alloc_floats((size_t)C_START * CD);
    fill_random(&s, x, C_START, CD);
    int64_t *l = iota_labels(C_START);
    upsert(cs->h, &cs->m, C_START, l, x);
    atomic_store(&cs->reserved, C_START);
    atomic_store(&cs->done, C_START);

    pthread_t th[6];
    double t0 = now_s();
    for (int i = 0; i < 4; i++)
        assert_int_equal(pthread_create(&th[i], NULL, searcher, cs), 0);
    assert_int_equal(pthread_create(&th[4], NULL, upserter, cs), 0);
    assert_int_equal(pthread_create(&th[5], NULL, remover, cs), 0);
    /* A writer starved by the searchers (a reader-preferring lock) would block inside
     * hdb_hnsw_upsert forever: give it 60 s, then stop the searchers and fail. */
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += 60;
    int starved = pthread_timedjoin_np(th[4], NULL, &deadline) != 0;
    if (starved) {
        atomic_store(&cs->stop, 1);
        assert_int_equal(pthread_join(th[4], NULL), 0);
    }
    for (int i = 0; i < 6; i++)
        if (i != 4) assert_int_equal(pthread_join(th[i], NULL), 0);
    assert_false(starved);

    long long added = atomic_load(&cs->done), removed = atomic_load(&cs->removed);
    fprintf(stderr, "    concurrent: %.2f s, %lld searches, %lld labels, %lld removed, size %zu\n",
            now_s() - t0, (long long)atomic_load(&cs->searches), added, removed,
            hdb_hnsw_size(cs->h));
    assert_int_equal(atomic_load(&cs->failures), 0);
    assert_true(atomic_load(&cs->searches) > 100);
    /* The graph grew from 1024 slots at least twice under the searchers (three times unless a
     * slow sanitizer hit the 20 s cap). */
    assert_true(added > 2048);
    assert_true(cs->saved);
    /* Only odd labels were removed and even ones never, so the count is exact. */
    assert_int_equal(hdb_hnsw_size(cs->h), (size_t)(added - removed));
    assert_int_equal(model_count(&cs->m), (size_t)(added - removed));
    float q[50 * CD];
    fill_random(&s, q, 50, CD);
    double r = search_recall(cs->h, &cs->m, q, 50, C_K, 64);
    fprintf(stderr, "    recall@10 after the concurrent phase: %.4f\n", r);
    assert_true(r >= 0.9);
    hdb_hnsw *b = NULL;
    hdb_hnsw_params p = {.dim = CD, .metric = HDB_METRIC_L2};
    assert_int_equal(hdb_hnsw_load(&b, &p, cs->path, NULL, 0), HDB_OK); /* the mid-run save */
    assert_true(hdb_hnsw_size(b) > 0);
    hdb_hnsw_free(b);
    unlink(cs->path);
    hdb_hnsw_free(cs->h);
    model_free(&cs->m);
    free(cs);
    free(l);
    free(x);
}

/* ---- quantized storage -------------------------------------------------------------------- */

static hdb_hnsw *make_stored(hdb_metric metric, uint32_t d, hdb_vec_storage st, uint32_t train) {
    hdb_hnsw_params p = {.dim = d, .metric = metric, .storage = st, .train_size = train};
    hdb_hnsw *h = NULL;
    char err[256] = "";
    int rc = hdb_hnsw_create(&h, &p, err, sizeof err);
    if (rc != HDB_OK) fprintf(stderr, "create: %s\n", err);
    assert_int_equal(rc, HDB_OK);
    return h;
}

/* What the query layer does with a quantized graph: fetch k * os candidates by the codes'
 * scores, rescore them exactly from the vectors and keep the best k. Every hit must be a live
 * label, each query must get min(k * os, live) of them, and with float16 every approximate
 * score must lie close to the exact one. Returns recall@k of the rescored top k. */
static double rescored_recall(hdb_hnsw *h, const model *m, const float *q, size_t nq, size_t k,
                              size_t os, uint32_t ef, hdb_vec_storage st) {
    size_t kk = k * os;
    hdb_hit *out = malloc(nq * kk * sizeof *out);
    ref_hit *re = malloc(kk * sizeof *re);
    int64_t truth[64];
    assert_non_null(out);
    assert_non_null(re);
    char err[256] = "";
    int rc = hdb_hnsw_search(h, nq, q, kk, ef, out, err, sizeof err);
    if (rc != HDB_OK) fprintf(stderr, "search: %s\n", err);
    assert_int_equal(rc, HDB_OK);
    size_t found = 0, want = 0, live = model_count(m);
    for (size_t i = 0; i < nq; i++) {
        const float *qi = q + i * m->d;
        const hdb_hit *o = out + i * kk;
        size_t n = 0;
        for (; n < kk && o[n].label >= 0; n++) {
            assert_true((size_t)o[n].label < m->cap);
            assert_true(m->live[o[n].label]);
            double s = exact_score(m->metric, qi, m->x + (size_t)o[n].label * m->d, m->d);
            if (st == HDB_VEC_FLOAT16) assert_true(fabs(o[n].score - s) <= 1e-2 * (1 + fabs(s)));
            if (n > 0) assert_true(o[n - 1].score <= o[n].score);
            re[n] = (ref_hit){s, o[n].label};
        }
        assert_int_equal(n, kk < live ? kk : live);
        qsort(re, n, sizeof *re, ref_cmp);
        size_t nt = brute_topk(m, qi, k, truth);
        for (size_t j = 0; j < k && j < n; j++)
            for (size_t t = 0; t < nt; t++)
                if (truth[t] == re[j].label) {
                    found++;
                    break;
                }
        want += nt;
    }
    free(out);
    free(re);
    return want ? (double)found / (double)want : 1.0;
}

/* float16 and int8 graphs on clustered data, for each metric: the top 10 after rescoring the
 * codes' top 20 is nearly the exact top 10; the vectors take 2 and 1 bytes a dimension. */
static void test_quantized_recall(void **state) {
    (void)state;
    enum { N = 5000, D = 32, NQ = 200, K = 10 };
    const hdb_vec_storage sts[] = {HDB_VEC_FLOAT16, HDB_VEC_INT8};
    const hdb_metric metrics[] = {HDB_METRIC_L2, HDB_METRIC_IP, HDB_METRIC_COSINE};
    for (size_t si = 0; si < 2; si++)
        for (size_t mi = 0; mi < 3; mi++) {
            uint64_t s = 0xC0FFEEull + mi;
            float c[50 * D];
            float *x = alloc_floats((size_t)N * D), *q = alloc_floats((size_t)NQ * D);
            fill_random(&s, c, 50, D);
            fill_clustered(&s, c, 50, x, N, D, 0.3f);
            fill_clustered(&s, c, 50, q, NQ, D, 0.3f);
            int64_t *l = iota_labels(N);
            model m;
            model_init(&m, metrics[mi], D, N);
            hdb_hnsw *h = make_stored(metrics[mi], D, sts[si], 0);
            upsert(h, &m, N, l, x);
            assert_int_equal(hdb_hnsw_size(h), N);
            assert_true(hdb_hnsw_trained(h));
            hdb_hnsw_memory mem;
            hdb_hnsw_mem(h, &mem);
            assert_int_equal(mem.vector_bytes, (uint64_t)N * hdb_vec_code_bytes(sts[si], D));
            assert_true(mem.graph_bytes > 0);
            double r = rescored_recall(h, &m, q, NQ, K, 2, 64, sts[si]);
            fprintf(stderr, "    rescored recall@10 %-7s %-13s ef=64: %.4f\n",
                    hdb_vec_storage_name(sts[si]), hdb_metric_name(metrics[mi]), r);
            assert_true(r >= 0.95);
            hdb_hnsw_free(h);
            model_free(&m);
            free(l);
            free(x);
            free(q);
        }
}

/* An int8 graph before, at and after training: until train_size points it answers exactly
 * (scores equal the brute force's), updates and removes apply to the points held aside, and
 * a save/load keeps them; the upsert that reaches train_size trains and moves them into the
 * graph; a save/load after that keeps the quantizer; a load with another storage is refused. */
static void test_int8_training(void **state) {
    (void)state;
    enum { D = 16, TRAIN = 100, NQ = 50, K = 10 };
    uint64_t s = 0xABCDull;
    test_data td = random_data(&s, 400, NQ, D);
    model m;
    model_init(&m, HDB_METRIC_L2, D, 400);
    hdb_hnsw_params p = {.dim = D, .metric = HDB_METRIC_L2, .storage = HDB_VEC_INT8,
                         .train_size = TRAIN};
    hdb_hnsw *h = NULL, *b = NULL;
    char err[256] = "", path[512];
    assert_int_equal(hdb_hnsw_create(&h, &p, err, sizeof err), HDB_OK);
    assert_false(hdb_hnsw_trained(h));

    /* An empty untrained graph pads. */
    hdb_hit pad[K];
    assert_int_equal(hdb_hnsw_search(h, 1, td.q, K, 0, pad, NULL, 0), HDB_OK);
    assert_int_equal(pad[0].label, -1);

    /* 60 points, then 30 of them updated and 10 removed: exact answers throughout. */
    upsert(h, &m, 60, td.l, td.x);
    assert_false(hdb_hnsw_trained(h));
    assert_int_equal(hdb_hnsw_size(h), 60);
    assert_true(search_recall(h, &m, td.q, NQ, K, 0) == 1.0);
    upsert(h, &m, 30, td.l, td.x + (size_t)300 * D); /* labels 0..29 get new vectors */
    assert_int_equal(hdb_hnsw_size(h), 60);
    int64_t rm[10];
    for (size_t i = 0; i < 10; i++) {
        rm[i] = (int64_t)(i * 5);
        m.live[rm[i]] = 0;
    }
    assert_int_equal(hdb_hnsw_remove(h, 10, rm), 10);
    assert_int_equal(hdb_hnsw_remove(h, 10, rm), 0);
    assert_int_equal(hdb_hnsw_size(h), 50);
    assert_true(search_recall(h, &m, td.q, NQ, K, 0) == 1.0);
    hdb_hnsw_memory mem;
    hdb_hnsw_mem(h, &mem);
    assert_true(mem.vector_bytes >= 50 * D * sizeof(float));

    /* Save and load while untrained: the same points, the same exact answers. */
    tmp_path(path, sizeof path, "int8");
    assert_int_equal(hdb_hnsw_save(h, path, err, sizeof err), HDB_OK);
    int rc = hdb_hnsw_load(&b, &p, path, err, sizeof err);
    if (rc != HDB_OK) fprintf(stderr, "load: %s\n", err);
    assert_int_equal(rc, HDB_OK);
    assert_false(hdb_hnsw_trained(b));
    assert_int_equal(hdb_hnsw_size(b), 50);
    assert_true(search_recall(b, &m, td.q, NQ, K, 0) == 1.0);
    hdb_hnsw_free(b);

    /* 49 fresh points leave it one short; one more trains it (labels 60..109). */
    upsert(h, &m, 49, td.l + 60, td.x + (size_t)60 * D);
    assert_false(hdb_hnsw_trained(h));
    assert_int_equal(hdb_hnsw_size(h), 99);
    upsert(h, &m, 1, td.l + 109, td.x + (size_t)109 * D);
    assert_true(hdb_hnsw_trained(h));
    assert_int_equal(hdb_hnsw_size(h), 100);
    hdb_hnsw_mem(h, &mem);
    assert_int_equal(mem.vector_bytes, 100 * D);
    assert_true(rescored_recall(h, &m, td.q, NQ, K, 2, 64, HDB_VEC_INT8) >= 0.95);

    /* After training, more points go straight into the graph; a removed label stays gone. */
    upsert(h, &m, 200, td.l + 110, td.x + (size_t)110 * D);
    assert_int_equal(hdb_hnsw_size(h), 300);
    assert_true(rescored_recall(h, &m, td.q, NQ, K, 2, 64, HDB_VEC_INT8) >= 0.95);

    /* Save and load after training: the quantizer comes back, and so do the answers. */
    assert_int_equal(hdb_hnsw_save(h, path, err, sizeof err), HDB_OK);
    assert_int_equal(hdb_hnsw_load(&b, &p, path, err, sizeof err), HDB_OK);
    assert_true(hdb_hnsw_trained(b));
    hdb_hit *ra = malloc(NQ * K * sizeof *ra), *rb = malloc(NQ * K * sizeof *rb);
    assert_int_equal(hdb_hnsw_search(h, NQ, td.q, K, 0, ra, NULL, 0), HDB_OK);
    assert_int_equal(hdb_hnsw_search(b, NQ, td.q, K, 0, rb, NULL, 0), HDB_OK);
    assert_hits_equal(ra, rb, NQ * K);
    hdb_hnsw_free(b);

    /* Another storage than the file's is refused, naming it. */
    const hdb_vec_storage others[] = {HDB_VEC_FLOAT32, HDB_VEC_FLOAT16};
    for (size_t i = 0; i < 2; i++) {
        hdb_hnsw_params bad = p;
        bad.storage = others[i];
        b = (hdb_hnsw *)1;
        assert_int_equal(hdb_hnsw_load(&b, &bad, path, err, sizeof err), HDB_EINVAL);
        assert_null(b);
        assert_non_null(strstr(err, "storage"));
    }
    unlink(path);
    free(ra);
    free(rb);
    hdb_hnsw_free(h);
    model_free(&m);
    data_free(&td);
}

/* Bad storage parameters are refused at create. */
static void test_storage_params(void **state) {
    (void)state;
    char err[256] = "";
    hdb_hnsw *h = (hdb_hnsw *)1;
    hdb_hnsw_params p = {.dim = 4, .metric = HDB_METRIC_L2, .storage = (hdb_vec_storage)3};
    assert_int_equal(hdb_hnsw_create(&h, &p, err, sizeof err), HDB_EINVAL);
    assert_null(h);
    assert_non_null(strstr(err, "storage"));
    p.storage = HDB_VEC_INT8;
    p.train_size = (1u << 20) + 1;
    assert_int_equal(hdb_hnsw_create(&h, &p, err, sizeof err), HDB_EINVAL);
    assert_non_null(strstr(err, "train_size"));
    /* float16 and float32 graphs are trained from the start; int8 is not. */
    for (int st = 0; st < 3; st++) {
        p.storage = (hdb_vec_storage)st;
        p.train_size = 0;
        assert_int_equal(hdb_hnsw_create(&h, &p, err, sizeof err), HDB_OK);
        assert_true(hdb_hnsw_trained(h) == (st != HDB_VEC_INT8));
        hdb_hnsw_free(h);
    }
}

int main(void) {
    hdb_distance_init();
    fprintf(stderr, "distance kernels: %s\n", hdb_distance_isa());
    const char *filter = getenv("HDB_TEST_FILTER"); /* e.g. HDB_TEST_FILTER=test_churn */
    if (filter && *filter) cmocka_set_test_filter(filter);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_create_errors),
        cmocka_unit_test(test_bad_arguments),
        cmocka_unit_test(test_recall_random),
        cmocka_unit_test(test_recall_clustered),
        cmocka_unit_test(test_padding_and_empty),
        cmocka_unit_test(test_ef_override),
        cmocka_unit_test(test_update_in_place),
        cmocka_unit_test(test_accept),
        cmocka_unit_test(test_remove),
        cmocka_unit_test(test_churn),
        cmocka_unit_test(test_churn_recall),
        cmocka_unit_test(test_parallel_build),
        cmocka_unit_test(test_save_load),
        cmocka_unit_test(test_load_damaged),
        cmocka_unit_test(test_load_damaged_int8),
        cmocka_unit_test(test_concurrency),
        cmocka_unit_test(test_storage_params),
        cmocka_unit_test(test_quantized_recall),
        cmocka_unit_test(test_int8_training),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
