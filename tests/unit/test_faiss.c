/*
 * test_faiss.c - cmocka tests for the FAISS engine (hdb_faiss.h), written in plain C to prove
 * that the header is pure C.
 *
 * Covers: factory validation (good strings, bad strings that would abort FAISS 1.7.3), exact
 * results of "Flat" for L2 / IP / COSINE against a double-precision brute force, the untrained
 * exact phase and training of IVF and IVF-PQ, recall with nprobe (default and per call), HNSW
 * with hidden (removed / replaced) vectors and the rebuild past 30% hidden, LSH, replacing
 * vectors, save/load round trips and damaged files, and concurrent searches during writes.
 * Data comes from a fixed-seed xorshift generator, so every run sees the same vectors.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "hdb_err.h"
#include "hdb_faiss.h"
#include "test_reference.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* ---- fixed-seed PRNG (xorshift64*) ----------------------------------------------------------- */

static uint64_t rng_state = 0xD1B54A32D192ED03ull;

static uint64_t rng_next_r(uint64_t *s) {
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * 2685821657736338717ull;
}

static uint64_t rng_next(void) {
    return rng_next_r(&rng_state);
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

/* n points around 32 fixed centres, each coordinate centre + uniform [-1, 1): overlapping
 * clusters, so IVF16 with one probe finds most but not all neighbours (~0.9 recall@10). */
static float *clustered_matrix(size_t n, size_t d) {
    uint64_t s = 0x1234567ull;
    float *c = malloc(32 * d * sizeof(float));
    assert_non_null(c);
    for (size_t i = 0; i < 32 * d; i++)
        c[i] = (float)((double)(rng_next_r(&s) >> 40) / 16777216.0 * 2.0 - 1.0);
    float *x = rand_matrix(n, d);
    for (size_t i = 0; i < n; i++) {
        size_t ci = (size_t)(rng_next() % 32);
        for (size_t j = 0; j < d; j++)
            x[i * d + j] = c[ci * d + j] + x[i * d + j];
    }
    free(c);
    return x;
}

static int64_t *seq_labels(size_t n, int64_t mul, int64_t add) {
    int64_t *l = malloc((n ? n : 1) * sizeof *l);
    assert_non_null(l);
    for (size_t i = 0; i < n; i++)
        l[i] = (int64_t)i * mul + add;
    return l;
}

/* ---- reference brute force ------------------------------------------------------------------- */


/* A model of what the engine should hold: label i (0..cap) with a vector and an alive flag. */
typedef struct {
    size_t cap, d;
    float *vec;
    unsigned char *alive;
} model;

static model model_new(size_t cap, size_t d) {
    model m = {cap, d, calloc(cap * d, sizeof(float)), calloc(cap, 1)};
    assert_non_null(m.vec);
    assert_non_null(m.alive);
    return m;
}

static void model_free(model *m) {
    free(m->vec);
    free(m->alive);
}

static void model_set(model *m, size_t n, const int64_t *labels, const float *x) {
    for (size_t i = 0; i < n; i++) {
        memcpy(m->vec + (size_t)labels[i] * m->d, x + i * m->d, m->d * sizeof(float));
        m->alive[labels[i]] = 1;
    }
}

static size_t model_size(const model *m) {
    size_t n = 0;
    for (size_t i = 0; i < m->cap; i++)
        n += m->alive[i];
    return n;
}

/* Sorted exact hits of q over the live model; returns how many (all live). */
static size_t model_rank(const model *m, hdb_metric metric, const float *q, ref_hit *out) {
    size_t n = 0;
    for (size_t i = 0; i < m->cap; i++) {
        if (!m->alive[i]) continue;
        out[n].score = exact_score(metric, q, m->vec + i * m->d, m->d);
        out[n].label = (int64_t)i;
        n++;
    }
    qsort(out, n, sizeof *out, ref_cmp);
    return n;
}

static double score_tol(hdb_metric metric, const float *q, size_t d) {
    double qq = 0;
    for (size_t i = 0; i < d; i++)
        qq += (double)q[i] * q[i];
    double xx = (double)d / 3.0 + d; /* generous for clustered data */
    if (metric == HDB_METRIC_COSINE) return 1e-4;
    if (metric == HDB_METRIC_IP) return 1e-4 * (1.0 + sqrt(qq * xx));
    return 1e-4 * (1.0 + qq + xx);
}

/* Checks that got (k slots) is the exact answer for q over the model: sorted, distinct live
 * labels, scores equal to the reference position by position (ties may swap labels), padding
 * after min(k, live). */
static void check_exact(const model *m, hdb_metric metric, const float *q, size_t k,
                        const hdb_hit *got) {
    ref_hit *ref = malloc((m->cap ? m->cap : 1) * sizeof *ref);
    assert_non_null(ref);
    size_t n = model_rank(m, metric, q, ref);
    double tol = score_tol(metric, q, m->d);
    size_t want = n < k ? n : k;
    for (size_t i = 0; i < want; i++) {
        if (got[i].label < 0 || (size_t)got[i].label >= m->cap || !m->alive[got[i].label])
            fail_msg("slot %zu: label %lld is not live", i, (long long)got[i].label);
        if (i > 0 && got[i].score < got[i - 1].score) fail_msg("slot %zu not sorted", i);
        for (size_t j = 0; j < i; j++)
            assert_true(got[j].label != got[i].label);
        double exact = exact_score(metric, q, m->vec + (size_t)got[i].label * m->d, m->d);
        if (!(fabs(got[i].score - exact) <= tol))
            fail_msg("slot %zu label %lld: score %.7g, exact %.7g", i, (long long)got[i].label,
                     (double)got[i].score, exact);
        if (!(fabs(got[i].score - ref[i].score) <= tol))
            fail_msg("slot %zu: score %.7g, reference %.7g (label %lld vs %lld)", i,
                     (double)got[i].score, ref[i].score, (long long)got[i].label,
                     (long long)ref[i].label);
    }
    for (size_t i = want; i < k; i++) {
        assert_int_equal(got[i].label, -1);
        assert_true(isinf(got[i].score) && got[i].score > 0);
    }
    free(ref);
}

/* Checks the structural invariants of any result: sorted, distinct live labels, padding last. */
static void check_sane(const model *m, size_t k, const hdb_hit *got) {
    int padded = 0;
    for (size_t i = 0; i < k; i++) {
        if (got[i].label < 0) {
            assert_int_equal(got[i].label, -1);
            assert_true(isinf(got[i].score));
            padded = 1;
            continue;
        }
        assert_false(padded);
        assert_true((size_t)got[i].label < m->cap);
        if (!m->alive[got[i].label])
            fail_msg("slot %zu: label %lld was removed", i, (long long)got[i].label);
        if (i > 0) assert_true(got[i].score >= got[i - 1].score);
        for (size_t j = 0; j < i; j++)
            assert_true(got[j].label != got[i].label);
    }
}

/* Mean recall@k of the engine's answers against the model's exact top k. */
static double recall_at(const model *m, hdb_metric metric, const float *qs, size_t nq, size_t k,
                        const hdb_hit *got) {
    ref_hit *ref = malloc(m->cap * sizeof *ref);
    assert_non_null(ref);
    size_t found = 0, total = 0;
    for (size_t i = 0; i < nq; i++) {
        size_t n = model_rank(m, metric, qs + i * m->d, ref);
        size_t want = n < k ? n : k;
        for (size_t a = 0; a < want; a++)
            for (size_t b = 0; b < k; b++)
                if (got[i * k + b].label == ref[a].label) found++;
        total += want;
        check_sane(m, k, got + i * k);
    }
    free(ref);
    return total ? (double)found / (double)total : 1.0;
}

/* ---- engine helpers -------------------------------------------------------------------------- */

static hdb_faiss_params params(const char *factory, hdb_metric metric, uint32_t dim,
                               uint32_t nprobe, uint64_t train_size) {
    hdb_faiss_params p = {dim, metric, factory, nprobe, train_size};
    return p;
}

static hdb_faiss *make_engine(const hdb_faiss_params *p) {
    hdb_faiss *f = NULL;
    char err[512] = "";
    int rc = hdb_faiss_create(&f, p, err, sizeof err);
    if (rc != HDB_OK) fail_msg("create %s: %d %s", p->factory, rc, err);
    assert_non_null(f);
    return f;
}

static void upsert_ok(hdb_faiss *f, size_t n, const int64_t *labels, const float *x) {
    char err[512] = "";
    int rc = hdb_faiss_upsert(f, n, labels, x, err, sizeof err);
    if (rc != HDB_OK) fail_msg("upsert: %d %s", rc, err);
}

static hdb_hit *search_ok(hdb_faiss *f, size_t nq, const float *qs, size_t k, uint32_t nprobe) {
    hdb_hit *out = malloc(nq * k * sizeof *out);
    assert_non_null(out);
    char err[512] = "";
    int rc = hdb_faiss_search(f, nq, qs, k, nprobe, out, err, sizeof err);
    if (rc != HDB_OK) fail_msg("search: %d %s", rc, err);
    return out;
}

/* Upserts labels [from, to) with the model's vectors (rows of x indexed by label). */
static void upsert_range(hdb_faiss *f, model *m, const float *x, size_t from, size_t to) {
    int64_t *labels = seq_labels(to - from, 1, (int64_t)from);
    upsert_ok(f, to - from, labels, x + from * m->d);
    model_set(m, to - from, labels, x + from * m->d);
    free(labels);
}

static void check_all_exact(hdb_faiss *f, const model *m, hdb_metric metric, const float *qs,
                            size_t nq, size_t k, uint32_t nprobe) {
    hdb_hit *out = search_ok(f, nq, qs, k, nprobe);
    for (size_t i = 0; i < nq; i++)
        check_exact(m, metric, qs + i * m->d, k, out + i * k);
    free(out);
}

/* A per-test scratch directory under $HDB_TEST_TMP (or /tmp). */
static char tmpdir[512];

static void make_tmpdir(void) {
    const char *base = getenv("HDB_TEST_TMP") ? getenv("HDB_TEST_TMP") : "/tmp";
    mkdir(base, 0700);
    snprintf(tmpdir, sizeof tmpdir, "%s/test_faiss.XXXXXX", base);
    assert_non_null(mkdtemp(tmpdir));
}

static void tmp_path(char *buf, size_t len, const char *name) {
    snprintf(buf, len, "%s/%s", tmpdir, name);
}

static unsigned char *slurp(const char *path, size_t *len) {
    FILE *fp = fopen(path, "rb");
    assert_non_null(fp);
    fseek(fp, 0, SEEK_END);
    long n = ftell(fp);
    fseek(fp, 0, SEEK_SET);
    unsigned char *b = malloc((size_t)n + 1);
    assert_non_null(b);
    assert_int_equal(fread(b, 1, (size_t)n, fp), (size_t)n);
    fclose(fp);
    *len = (size_t)n;
    return b;
}

static void spit(const char *path, const unsigned char *b, size_t len) {
    FILE *fp = fopen(path, "wb");
    assert_non_null(fp);
    assert_int_equal(fwrite(b, 1, len, fp), len);
    fclose(fp);
}

static long file_size(const char *path) {
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    return (long)st.st_size;
}

/* ---- validation ------------------------------------------------------------------------------ */

static void expect_valid(const char *factory, hdb_metric metric, uint32_t dim) {
    hdb_faiss_params p = params(factory, metric, dim, 0, 0);
    char err[512] = "";
    int rc = hdb_faiss_validate(&p, err, sizeof err);
    if (rc != HDB_OK) fail_msg("\"%s\" dim %u metric %d: %d %s", factory, dim, metric, rc, err);
}

static void expect_invalid(const char *factory, hdb_metric metric, uint32_t dim,
                           uint64_t train_size) {
    hdb_faiss_params p = params(factory, metric, dim, 0, train_size);
    char err[512] = "";
    int rc = hdb_faiss_validate(&p, err, sizeof err);
    if (rc != HDB_EINVAL)
        fail_msg("\"%s\" dim %u: expected HDB_EINVAL, got %d (%s)", factory ? factory : "(null)",
                 dim, rc, err);
    if (err[0] == '\0') fail_msg("\"%s\": no message", factory ? factory : "(null)");
    /* create refuses the same parameters and leaves *out NULL */
    hdb_faiss *f = (hdb_faiss *)(uintptr_t)1;
    assert_int_equal(hdb_faiss_create(&f, &p, NULL, 0), HDB_EINVAL);
    assert_null(f);
}

static void test_validate(void **state) {
    (void)state;
    const char *good[] = {"Flat",
                          "IVF16,Flat",
                          "IVF16,PQ8",
                          "HNSW16,Flat",
                          "LSH",
                          "PQ8",
                          "SQ8",
                          "PCA16,IVF16,Flat",
                          "IVF16,Flat,RFlat",
                          "NSG16,Flat",
                          "PCA16,IVF16,PQ8",
                          "OPQ8_24,IVF16,PQ8",
                          "IVF16,PQ8x4fs"};
    for (size_t i = 0; i < sizeof good / sizeof *good; i++)
        expect_valid(good[i], HDB_METRIC_L2, 32);
    const char *good_ip[] = {"Flat", "IVF16,Flat", "IVF16,PQ8", "HNSW16,Flat", "PQ8"};
    for (size_t i = 0; i < sizeof good_ip / sizeof *good_ip; i++) {
        expect_valid(good_ip[i], HDB_METRIC_IP, 32);
        expect_valid(good_ip[i], HDB_METRIC_COSINE, 32);
    }
    expect_valid("PQ7", HDB_METRIC_L2, 784); /* 784 = 7 * 112 */

    const char *bad[] = {"IVF0,Flat",       "PQ7",
                         "garbage",         "",
                         "HNSW0,Flat",      "PQ0",
                         "PQ8x0",           "OPQ0,PQ8",
                         "IDMap,Flat",      "IDMap2,Flat",
                         "IVF16,PQ64",      "IVF2000000,Flat",
                         " Flat",           "Flat,Flat",
                         "PCA64,Flat",      "HNSW1000,Flat",
                         "PQ8x24",          "IVF16_HNSW32,PQ7",
                         "PCA16,IVF16,PQ7", "IVF16(PQ8),PQ7",
                         "IMI2x4,PQ7",      "IVF16,PQ8+7"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        expect_invalid(bad[i], HDB_METRIC_L2, 32, 0);
    expect_invalid(NULL, HDB_METRIC_L2, 32, 0);
    expect_invalid("LSH", HDB_METRIC_IP, 32, 0);        /* FAISS's LSH is L2-only */
    expect_invalid("HNSW16,PQ8", HDB_METRIC_IP, 32, 0); /* silently L2 in FAISS: refused */
    expect_invalid("Flat", HDB_METRIC_L2, 0, 0);        /* dim */
    expect_invalid("Flat", HDB_METRIC_JACCARD, 32, 0);  /* sparse-only metric */
    expect_invalid("Flat", (hdb_metric)0, 32, 0);
    expect_invalid("IVF16,Flat", HDB_METRIC_L2, 32, 8);  /* fewer training points than lists */
    expect_invalid("IVF16,PQ8", HDB_METRIC_L2, 32, 100); /* fewer than 256 PQ centroids */
    assert_int_equal(hdb_faiss_validate(NULL, NULL, 0), HDB_EINVAL);

    char err[512];
    hdb_faiss_params p = params("garbage", HDB_METRIC_L2, 32, 0, 0);
    assert_int_equal(hdb_faiss_validate(&p, err, sizeof err), HDB_EINVAL);
    assert_non_null(strstr(err, "garbage"));
    assert_true(strlen(err) < 400); /* FAISS's reason, not a backtrace */
}

/* ---- arguments and bookkeeping --------------------------------------------------------------- */

static void test_arguments(void **state) {
    (void)state;
    hdb_faiss_params p = params("Flat", HDB_METRIC_L2, 4, 0, 0);
    hdb_faiss *f = make_engine(&p);
    char err[256];
    float v[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    int64_t l2[2] = {1, 1}, neg = -5, ok2[2] = {1, 2};
    hdb_hit out[4];

    assert_int_equal(hdb_faiss_upsert(f, 2, l2, v, err, sizeof err), HDB_EINVAL);
    assert_non_null(strstr(err, "twice"));
    assert_int_equal(hdb_faiss_upsert(f, 1, &neg, v, err, sizeof err), HDB_EINVAL);
    assert_int_equal(hdb_faiss_upsert(f, 1, NULL, v, err, sizeof err), HDB_EINVAL);
    assert_int_equal(hdb_faiss_upsert(f, 1, ok2, NULL, err, sizeof err), HDB_EINVAL);
    assert_int_equal(hdb_faiss_upsert(NULL, 1, ok2, v, err, sizeof err), HDB_EINVAL);
    float nanv[4] = {1, NAN, 0, 0};
    assert_int_equal(hdb_faiss_upsert(f, 1, ok2, nanv, err, sizeof err), HDB_EINVAL);
    assert_int_equal(hdb_faiss_size(f), 0);
    assert_int_equal(hdb_faiss_upsert(f, 0, NULL, NULL, err, sizeof err), HDB_OK);
    assert_int_equal(hdb_faiss_upsert(f, 2, ok2, v, err, sizeof err), HDB_OK);
    assert_int_equal(hdb_faiss_size(f), 2);

    assert_int_equal(hdb_faiss_search(f, 1, v, 0, 0, out, err, sizeof err), HDB_EINVAL);
    assert_int_equal(hdb_faiss_search(f, 1, NULL, 2, 0, out, err, sizeof err), HDB_EINVAL);
    assert_int_equal(hdb_faiss_search(f, 1, v, 2, 0, NULL, err, sizeof err), HDB_EINVAL);
    assert_int_equal(hdb_faiss_search(f, 1, nanv, 2, 0, out, err, sizeof err), HDB_EINVAL);
    assert_int_equal(hdb_faiss_search(f, 0, NULL, 2, 0, NULL, err, sizeof err), HDB_OK);
    assert_int_equal(hdb_faiss_search(f, 1, v, 4, 0, out, err, sizeof err), HDB_OK);
    assert_int_equal(out[0].label, 1);
    assert_true(out[0].score == 0.0f);
    assert_int_equal(out[1].label, 2);
    assert_true(fabsf(out[1].score - 64.0f) < 1e-4f);
    assert_int_equal(out[2].label, -1);
    assert_int_equal(out[3].label, -1);

    assert_int_equal(hdb_faiss_remove(f, 0, NULL), 0);
    assert_int_equal(hdb_faiss_remove(NULL, 1, ok2), 0);
    int64_t rm[3] = {2, 2, 99};
    assert_int_equal(hdb_faiss_remove(f, 3, rm), 1);
    assert_int_equal(hdb_faiss_size(f), 1);
    assert_int_equal(hdb_faiss_is_trained(f), 1);
    assert_int_equal(hdb_faiss_size(NULL), 0);
    assert_int_equal(hdb_faiss_is_trained(NULL), 0);
    assert_int_equal(hdb_faiss_search(NULL, 1, v, 1, 0, out, err, sizeof err), HDB_EINVAL);
    assert_int_equal(hdb_faiss_save(NULL, "x", err, sizeof err), HDB_EINVAL);
    hdb_faiss *g = (hdb_faiss *)(uintptr_t)1;
    assert_int_equal(hdb_faiss_load(&g, &p, NULL, err, sizeof err), HDB_EINVAL);
    assert_null(g);
    hdb_faiss_free(f);
    hdb_faiss_free(NULL);
    hdb_faiss_set_threads(2);
    hdb_faiss_set_threads(1);
}

/* ---- Flat: exact for every metric ------------------------------------------------------------ */

static void test_flat_exact(void **state) {
    (void)state;
    const size_t d = 32, n = 2000, nq = 30, k = 10;
    const hdb_metric metrics[] = {HDB_METRIC_L2, HDB_METRIC_IP, HDB_METRIC_COSINE};
    for (size_t mi = 0; mi < 3; mi++) {
        hdb_metric metric = metrics[mi];
        hdb_faiss_params p = params("Flat", metric, d, 0, 0);
        hdb_faiss *f = make_engine(&p);
        model m = model_new(n, d);
        float *qs = rand_matrix(nq, d);

        /* empty engine: all padding */
        hdb_hit *out = search_ok(f, nq, qs, k, 0);
        for (size_t i = 0; i < nq * k; i++)
            assert_int_equal(out[i].label, -1);
        free(out);
        assert_int_equal(hdb_faiss_is_trained(f), 1);

        /* fewer vectors than k: padded */
        float *x = rand_matrix(n, d);
        if (metric == HDB_METRIC_COSINE) memset(x + 3 * d, 0, d * sizeof(float)); /* zero vector */
        upsert_range(f, &m, x, 0, 5);
        check_all_exact(f, &m, metric, qs, nq, k, 0);

        upsert_range(f, &m, x, 5, n);
        assert_int_equal(hdb_faiss_size(f), n);
        check_all_exact(f, &m, metric, qs, nq, k, 0);
        check_all_exact(f, &m, metric, qs, 1, k, 0);     /* single query path */
        check_all_exact(f, &m, metric, qs, nq, 3000, 0); /* k > size */

        free(x);
        free(qs);
        model_free(&m);
        hdb_faiss_free(f);
    }
}

/* ---- IVF: exact until trained, then approximate ---------------------------------------------- */

static void test_ivf_flat_training(void **state) {
    (void)state;
    const size_t d = 32, n = 5000, nq = 50, k = 10;
    float *x = clustered_matrix(n, d);
    float *qs = clustered_matrix(nq, d);
    const hdb_metric metrics[] = {HDB_METRIC_L2, HDB_METRIC_COSINE};
    for (size_t mi = 0; mi < 2; mi++) {
        hdb_metric metric = metrics[mi];
        hdb_faiss_params p = params("IVF16,Flat", metric, d, 1, 2000);
        hdb_faiss *f = make_engine(&p);
        model m = model_new(n, d);

        upsert_range(f, &m, x, 0, 1500);
        assert_int_equal(hdb_faiss_is_trained(f), 0);
        check_all_exact(f, &m, metric, qs, nq, k, 0);
        check_all_exact(f, &m, metric, qs, nq, k, 1); /* nprobe is moot while exact */

        /* remove and replace while buffered */
        int64_t rm[3] = {0, 7, 1499};
        assert_int_equal(hdb_faiss_remove(f, 3, rm), 3);
        for (int i = 0; i < 3; i++)
            m.alive[rm[i]] = 0;
        check_all_exact(f, &m, metric, qs, nq, k, 0);

        upsert_range(f, &m, x, 1500, 1999);
        assert_int_equal(hdb_faiss_is_trained(f), 0);
        upsert_range(f, &m, x, 1999, 2400); /* crosses 2000 (1997 + 401 live) */
        assert_int_equal(hdb_faiss_is_trained(f), 1);
        assert_int_equal(hdb_faiss_size(f), model_size(&m));
        for (size_t from = 2400; from < n; from += 700)
            upsert_range(f, &m, x, from, from + 700 < n ? from + 700 : n);
        assert_int_equal(hdb_faiss_size(f), n - 3);

        /* all 16 lists probed: exact */
        check_all_exact(f, &m, metric, qs, nq, k, 16);
        hdb_hit *all = search_ok(f, nq, qs, k, 16);
        double r16 = recall_at(&m, metric, qs, nq, k, all);
        hdb_hit *one = search_ok(f, nq, qs, k, 0); /* engine default: nprobe 1 */
        double r1 = recall_at(&m, metric, qs, nq, k, one);
        hdb_hit *four = search_ok(f, nq, qs, k, 4);
        double r4 = recall_at(&m, metric, qs, nq, k, four);
        print_message("IVF16,Flat %s recall@10: nprobe 1 %.3f, 4 %.3f, 16 %.3f\n",
                      metric == HDB_METRIC_L2 ? "L2" : "cosine", r1, r4, r16);
        assert_true(r16 == 1.0);
        assert_true(r1 > 0.3 && r1 < 1.0);
        assert_true(r4 >= r1);
        free(all);
        free(one);
        free(four);
        model_free(&m);
        hdb_faiss_free(f);
    }
    free(x);
    free(qs);
}

static void test_ivf_pq(void **state) {
    (void)state;
    const size_t d = 32, n = 10000, nq = 50, k = 10;
    float *x = clustered_matrix(n, d);
    float *qs = clustered_matrix(nq, d);
    hdb_faiss_params p = params("IVF16,PQ8", HDB_METRIC_L2, d, 16, 0); /* auto: 39 * 256 */
    hdb_faiss *f = make_engine(&p);
    model m = model_new(n, d);
    upsert_range(f, &m, x, 0, 9000);
    assert_int_equal(hdb_faiss_is_trained(f), 0);
    check_all_exact(f, &m, HDB_METRIC_L2, qs, 5, k, 0);
    upsert_range(f, &m, x, 9000, n);
    assert_int_equal(hdb_faiss_is_trained(f), 1);
    assert_int_equal(hdb_faiss_size(f), n);
    hdb_hit *out = search_ok(f, nq, qs, k, 0);
    double r = recall_at(&m, HDB_METRIC_L2, qs, nq, k, out);
    print_message("IVF16,PQ8 recall@10 (nprobe 16): %.3f\n", r);
    assert_true(r > 0.5);
    free(out);
    model_free(&m);
    free(x);
    free(qs);
    hdb_faiss_free(f);
}

/* ---- HNSW: hidden vectors, replacement, rebuild ---------------------------------------------- */

static void test_hnsw(void **state) {
    (void)state;
    const size_t d = 32, n = 5000, nq = 50, k = 10;
    float *x = clustered_matrix(n, d);
    float *qs = clustered_matrix(nq, d);
    hdb_faiss_params p = params("HNSW16,Flat", HDB_METRIC_L2, d, 64, 0);
    hdb_faiss *f = make_engine(&p);
    assert_int_equal(hdb_faiss_is_trained(f), 1);
    model m = model_new(n, d);
    upsert_range(f, &m, x, 0, n);

    hdb_hit *out = search_ok(f, nq, qs, k, 0);
    double r = recall_at(&m, HDB_METRIC_L2, qs, nq, k, out);
    free(out);
    out = search_ok(f, nq, qs, k, 16); /* per-call efSearch */
    double r16 = recall_at(&m, HDB_METRIC_L2, qs, nq, k, out);
    free(out);
    print_message("HNSW16,Flat recall@10: efSearch 64 %.3f, 16 %.3f\n", r, r16);
    assert_true(r > 0.9);

    /* remove every 10th label (10%): never returned, even when queried with their vectors */
    size_t nrm = 0;
    int64_t *rm = malloc(n * sizeof *rm);
    for (size_t i = 0; i < n; i += 10) {
        rm[nrm++] = (int64_t)i;
        m.alive[i] = 0;
    }
    assert_int_equal(hdb_faiss_remove(f, nrm, rm), nrm);
    assert_int_equal(hdb_faiss_remove(f, nrm, rm), 0);
    assert_int_equal(hdb_faiss_size(f), n - nrm);
    out = search_ok(f, 100, x, k, 0); /* rows 0..99 include 10 removed labels */
    for (size_t i = 0; i < 100; i++)
        check_sane(&m, k, out + i * k);
    free(out);

    /* replace 200 live labels with fresh vectors: found at ~0 with the new vector; the old
     * vector no longer matches them */
    const size_t nrep = 200;
    int64_t rep[200];
    float *fresh = rand_matrix(nrep, d);
    for (size_t i = 0; i < nrep; i++)
        rep[i] = (int64_t)(i * 20 + 1);
    float *oldv = malloc(nrep * d * sizeof(float));
    for (size_t i = 0; i < nrep; i++)
        memcpy(oldv + i * d, x + (size_t)rep[i] * d, d * sizeof(float));
    upsert_ok(f, nrep, rep, fresh);
    model_set(&m, nrep, rep, fresh);
    assert_int_equal(hdb_faiss_size(f), n - nrm);
    out = search_ok(f, nrep, fresh, k, 0);
    for (size_t i = 0; i < nrep; i++) {
        assert_int_equal(out[i * k].label, rep[i]);
        assert_true(out[i * k].score < 1e-4f);
        check_sane(&m, k, out + i * k);
    }
    free(out);
    out = search_ok(f, nrep, oldv, k, 0);
    for (size_t i = 0; i < nrep; i++)
        for (size_t j = 0; j < k; j++)
            if (out[i * k + j].label == rep[i]) assert_true(out[i * k + j].score > 1e-3f);
    free(out);

    /* hidden so far: 500 removed + 200 replaced of 5200 positions (13%). Remove up to 25% of
     * positions: still no rebuild, the file keeps every position. */
    char path[600];
    make_tmpdir();
    tmp_path(path, sizeof path, "hnsw.bin");
    char err[512];
    nrm = 0;
    for (size_t i = 5; i < n && nrm < 600; i += 10)
        if (m.alive[i]) {
            rm[nrm++] = (int64_t)i;
            m.alive[i] = 0;
        }
    assert_int_equal(hdb_faiss_remove(f, nrm, rm), nrm);
    assert_int_equal(hdb_faiss_save(f, path, err, sizeof err), HDB_OK);
    long before = file_size(path);
    out = search_ok(f, nq, qs, k, 0);
    r = recall_at(&m, HDB_METRIC_L2, qs, nq, k, out);
    print_message("HNSW16,Flat recall@10 with 25%% hidden: %.3f\n", r);
    assert_true(r > 0.9);
    free(out);

    /* past 30%: rebuilt from the live vectors; the file shrinks to the live positions */
    nrm = 0;
    for (size_t i = 3; i < n && nrm < 600; i += 7)
        if (m.alive[i]) {
            rm[nrm++] = (int64_t)i;
            m.alive[i] = 0;
        }
    assert_int_equal(hdb_faiss_remove(f, nrm, rm), nrm);
    assert_int_equal(hdb_faiss_size(f), model_size(&m));
    assert_int_equal(hdb_faiss_save(f, path, err, sizeof err), HDB_OK);
    long after = file_size(path);
    print_message("HNSW16,Flat file: %ld bytes at 25%% hidden, %ld after the rebuild (%zu live)\n",
                  before, after, model_size(&m));
    assert_true(after < before * 8 / 10);
    out = search_ok(f, nq, qs, k, 0);
    r = recall_at(&m, HDB_METRIC_L2, qs, nq, k, out);
    assert_true(r > 0.9);
    free(out);
    out = search_ok(f, nrep, fresh, k, 0); /* replaced vectors survive the rebuild */
    for (size_t i = 0; i < nrep; i++)
        if (m.alive[rep[i]]) assert_int_equal(out[i * k].label, rep[i]);
    free(out);
    unlink(path);
    rmdir(tmpdir);

    /* remove everything: searches are empty, inserts work again */
    int64_t *all = seq_labels(n, 1, 0);
    hdb_faiss_remove(f, n, all);
    memset(m.alive, 0, n);
    assert_int_equal(hdb_faiss_size(f), 0);
    out = search_ok(f, 3, qs, k, 0);
    for (size_t i = 0; i < 3 * k; i++)
        assert_int_equal(out[i].label, -1);
    free(out);
    upsert_range(f, &m, x, 0, 100);
    check_all_exact(f, &m, HDB_METRIC_L2, qs, 5, k, 200); /* ef 200 > 100 points: exact */

    free(all);
    free(fresh);
    free(oldv);
    free(rm);
    model_free(&m);
    free(x);
    free(qs);
    hdb_faiss_free(f);
}

static void test_hnsw_ip_cosine(void **state) {
    (void)state;
    const size_t d = 32, n = 2000, nq = 20, k = 10;
    float *x = clustered_matrix(n, d);
    float *qs = clustered_matrix(nq, d);
    const hdb_metric metrics[] = {HDB_METRIC_IP, HDB_METRIC_COSINE};
    for (size_t mi = 0; mi < 2; mi++) {
        hdb_faiss_params p = params("HNSW16,Flat", metrics[mi], d, 128, 0);
        hdb_faiss *f = make_engine(&p);
        model m = model_new(n, d);
        upsert_range(f, &m, x, 0, n);
        hdb_hit *out = search_ok(f, nq, qs, k, 0);
        double r = recall_at(&m, metrics[mi], qs, nq, k, out);
        print_message("HNSW16,Flat %s recall@10: %.3f\n", hdb_metric_name(metrics[mi]), r);
        assert_true(r > 0.9);
        /* scores are the metric's: check the first hit of each query */
        for (size_t i = 0; i < nq; i++) {
            double e = exact_score(metrics[mi], qs + i * d, x + (size_t)out[i * k].label * d, d);
            assert_true(fabs(e - out[i * k].score) < score_tol(metrics[mi], qs + i * d, d));
        }
        free(out);
        model_free(&m);
        hdb_faiss_free(f);
    }
    free(x);
    free(qs);
}

/* A per-call efSearch above the index's default must raise recall (FAISS 1.7.3 alone ignores
 * it: its candidate queue is sized from the index's efSearch). */
static void test_hnsw_efsearch(void **state) {
    (void)state;
    const size_t d = 32, n = 4000, nq = 50, k = 10;
    float *x = rand_matrix(n, d);
    float *qs = rand_matrix(nq, d);
    hdb_faiss_params p = params("HNSW8,Flat", HDB_METRIC_L2, d, 0, 0); /* efSearch 16 */
    hdb_faiss *f = make_engine(&p);
    model m = model_new(n, d);
    upsert_range(f, &m, x, 0, n);
    hdb_hit *out = search_ok(f, nq, qs, k, 0);
    double r16 = recall_at(&m, HDB_METRIC_L2, qs, nq, k, out);
    free(out);
    out = search_ok(f, nq, qs, k, 256);
    double r256 = recall_at(&m, HDB_METRIC_L2, qs, nq, k, out);
    free(out);
    out = search_ok(f, nq, qs, k, 4); /* below the default: no worse than a sane floor */
    double r4 = recall_at(&m, HDB_METRIC_L2, qs, nq, k, out);
    free(out);
    print_message("HNSW8,Flat uniform recall@10: efSearch 4 %.3f, 16 (default) %.3f, 256 %.3f\n",
                  r4, r16, r256);
    assert_true(r256 > 0.95);
    assert_true(r256 > r16 + 0.05);
    model_free(&m);
    free(x);
    free(qs);
    hdb_faiss_free(f);
}

/* ---- LSH ------------------------------------------------------------------------------------- */

static void test_lsh(void **state) {
    (void)state;
    const size_t d = 32, n = 1000, k = 5;
    float *x = rand_matrix(n, d);
    hdb_faiss_params p = params("LSH", HDB_METRIC_L2, d, 0, 0);
    hdb_faiss *f = make_engine(&p);
    model m = model_new(n, d);
    upsert_range(f, &m, x, 0, n);
    assert_int_equal(hdb_faiss_size(f), n);
    hdb_hit *out = search_ok(f, 50, x, k, 0);
    for (size_t i = 0; i < 50; i++) {
        /* a stored vector has Hamming distance 0 to itself (ties possible) */
        int found = 0;
        for (size_t j = 0; j < k; j++)
            found |= out[i * k + j].label == (int64_t)i && out[i * k + j].score == 0.0f;
        assert_true(found);
        check_sane(&m, k, out + i * k);
    }
    free(out);
    int64_t *rm = seq_labels(25, 2, 0); /* 0, 2, ..., 48 */
    assert_int_equal(hdb_faiss_remove(f, 25, rm), 25);
    for (size_t i = 0; i < 25; i++)
        m.alive[rm[i]] = 0;
    assert_int_equal(hdb_faiss_size(f), n - 25);
    out = search_ok(f, 50, x, k, 0);
    for (size_t i = 0; i < 50; i++) {
        check_sane(&m, k, out + i * k);
        if (i % 2) assert_int_equal(out[i * k].score, 0.0f);
    }
    free(out);
    /* replace: label 1 now has vector of row 999 */
    int64_t one = 1;
    upsert_ok(f, 1, &one, x + 999 * d);
    out = search_ok(f, 1, x + 999 * d, k, 0);
    int found = 0;
    for (size_t j = 0; j < k; j++)
        found |= out[j].label == 1 && out[j].score == 0.0f;
    assert_true(found);
    free(out);
    free(rm);
    model_free(&m);
    free(x);
    hdb_faiss_free(f);
}

/* ---- replacing vectors in Flat and trained IVF ----------------------------------------------- */

static void test_replace(void **state) {
    (void)state;
    const size_t d = 32, n = 3000, k = 5, nrep = 100;
    const char *factories[] = {"Flat", "IVF16,Flat", "SQ8", "PCA16,IVF16,Flat"};
    float *x = clustered_matrix(n, d);
    for (size_t fi = 0; fi < 4; fi++) {
        hdb_faiss_params p = params(factories[fi], HDB_METRIC_L2, d, 16, 2000);
        hdb_faiss *f = make_engine(&p);
        model m = model_new(n, d);
        upsert_range(f, &m, x, 0, n);
        assert_int_equal(hdb_faiss_is_trained(f), 1);
        int lossy = strstr(factories[fi], "SQ") || strstr(factories[fi], "PCA");
        float *fresh = rand_matrix(nrep, d);
        int64_t *rep = seq_labels(nrep, 29, 3);
        upsert_ok(f, nrep, rep, fresh);
        model_set(&m, nrep, rep, fresh);
        assert_int_equal(hdb_faiss_size(f), n);
        hdb_hit *out = search_ok(f, nrep, fresh, k, 0);
        for (size_t i = 0; i < nrep; i++) {
            check_sane(&m, k, out + i * k);
            if (lossy) { /* codes or projections: the label is among the first hits */
                int found = 0;
                for (size_t j = 0; j < k; j++)
                    found |= out[i * k + j].label == rep[i];
                assert_true(found);
            } else {
                assert_int_equal(out[i * k].label, rep[i]);
                assert_true(out[i * k].score < 1e-4f);
            }
        }
        free(out);
        if (!lossy) { /* the old vector no longer matches its label */
            out = search_ok(f, nrep, x, k, 0);
            for (size_t i = 0; i < nrep; i++)
                for (size_t j = 0; j < k; j++)
                    if (out[i * k + j].label == rep[i]) assert_true(out[i * k + j].score > 1e-3f);
            free(out);
        }
        free(rep);
        free(fresh);
        model_free(&m);
        hdb_faiss_free(f);
    }
    free(x);
}

/* ---- save / load ----------------------------------------------------------------------------- */

static void expect_same_results(hdb_faiss *a, hdb_faiss *b, const float *qs, size_t nq, size_t k,
                                uint32_t nprobe) {
    hdb_hit *ra = search_ok(a, nq, qs, k, nprobe);
    hdb_hit *rb = search_ok(b, nq, qs, k, nprobe);
    for (size_t i = 0; i < nq * k; i++) {
        if (ra[i].label != rb[i].label || memcmp(&ra[i].score, &rb[i].score, sizeof(float)) != 0)
            fail_msg("slot %zu: %lld/%g before, %lld/%g after load", i, (long long)ra[i].label,
                     (double)ra[i].score, (long long)rb[i].label, (double)rb[i].score);
    }
    free(ra);
    free(rb);
}

static hdb_faiss *round_trip(hdb_faiss *f, const hdb_faiss_params *p, const char *path) {
    char err[512] = "";
    int rc = hdb_faiss_save(f, path, err, sizeof err);
    if (rc != HDB_OK) fail_msg("save: %d %s", rc, err);
    hdb_faiss *g = NULL;
    rc = hdb_faiss_load(&g, p, path, err, sizeof err);
    if (rc != HDB_OK) fail_msg("load: %d %s", rc, err);
    assert_int_equal(hdb_faiss_size(g), hdb_faiss_size(f));
    assert_int_equal(hdb_faiss_is_trained(g), hdb_faiss_is_trained(f));
    return g;
}

static void expect_load_fails(const hdb_faiss_params *p, const char *path, int want,
                              const char *what) {
    char err[512] = "";
    hdb_faiss *g = (hdb_faiss *)(uintptr_t)1;
    int rc = hdb_faiss_load(&g, p, path, err, sizeof err);
    if (rc != want) fail_msg("%s: expected %d, got %d (%s)", what, want, rc, err);
    assert_null(g);
    assert_true(err[0] != '\0');
}

static void test_save_load(void **state) {
    (void)state;
    const size_t d = 32, nq = 40, k = 10;
    char path[600], bad[600];
    make_tmpdir();
    tmp_path(path, sizeof path, "engine.bin");
    tmp_path(bad, sizeof bad, "bad.bin");
    float *x = clustered_matrix(10000, d);
    float *qs = clustered_matrix(nq, d);
    int64_t *labels = seq_labels(10000, 3, 11);

    /* trained IVF-PQ */
    hdb_faiss_params p = params("IVF16,PQ8", HDB_METRIC_L2, d, 4, 0);
    hdb_faiss *f = make_engine(&p);
    upsert_ok(f, 10000, labels, x);
    assert_int_equal(hdb_faiss_is_trained(f), 1);
    hdb_faiss *g = round_trip(f, &p, path);
    expect_same_results(f, g, qs, nq, k, 0);
    expect_same_results(f, g, qs, nq, k, 16);
    hdb_faiss_free(g);

    /* mismatched parameters */
    hdb_faiss_params q = params("IVF32,PQ8", HDB_METRIC_L2, d, 4, 0);
    expect_load_fails(&q, path, HDB_EINVAL, "other factory");
    q = params("IVF16,PQ8", HDB_METRIC_IP, d, 4, 0);
    expect_load_fails(&q, path, HDB_EINVAL, "other metric");
    q = params("IVF16,PQ8", HDB_METRIC_L2, 64, 4, 0);
    expect_load_fails(&q, path, HDB_EINVAL, "other dim");
    q = params("IVF16,PQ8", HDB_METRIC_L2, d, 2, 0); /* nprobe may change */
    g = NULL;
    assert_int_equal(hdb_faiss_load(&g, &q, path, NULL, 0), HDB_OK);
    expect_same_results(f, g, qs, nq, k, 7);
    hdb_faiss_free(g);

    /* damaged files */
    size_t len;
    unsigned char *b = slurp(path, &len);
    const size_t cuts[] = {0, 3, 8, 12, 30, 60, len / 3, len / 2, len - 5, len - 1};
    for (size_t i = 0; i < sizeof cuts / sizeof *cuts; i++) {
        spit(bad, b, cuts[i]);
        expect_load_fails(&p, bad, HDB_ECORRUPT, "truncated");
    }
    const size_t flips[] = {0, 9, 20, 40, 100, len / 2, len - 100, len - 1};
    for (size_t i = 0; i < sizeof flips / sizeof *flips; i++) {
        b[flips[i]] ^= 0x40;
        spit(bad, b, len);
        expect_load_fails(&p, bad, HDB_ECORRUPT, "flipped byte");
        b[flips[i]] ^= 0x40;
    }
    unsigned char *junk = malloc(4096);
    for (size_t i = 0; i < 4096; i++)
        junk[i] = (unsigned char)rng_next();
    spit(bad, junk, 4096);
    expect_load_fails(&p, bad, HDB_ECORRUPT, "garbage");
    memcpy(junk, "HDBFAISS", 8); /* right magic, wrong everything else */
    spit(bad, junk, 4096);
    expect_load_fails(&p, bad, HDB_ECORRUPT, "garbage with magic");
    free(junk);
    free(b);
    tmp_path(bad, sizeof bad, "missing.bin");
    expect_load_fails(&p, bad, HDB_EIO, "missing file");
    tmp_path(bad, sizeof bad, "bad.bin");
    hdb_faiss_free(f);

    /* untrained IVF: the exact buffer round-trips and trains later */
    p = params("IVF16,Flat", HDB_METRIC_COSINE, d, 2, 3000);
    f = make_engine(&p);
    upsert_ok(f, 1000, labels, x);
    int64_t rm[2] = {labels[5], labels[6]};
    assert_int_equal(hdb_faiss_remove(f, 2, rm), 2);
    g = round_trip(f, &p, path);
    assert_int_equal(hdb_faiss_is_trained(g), 0);
    expect_same_results(f, g, qs, nq, k, 0);
    upsert_ok(g, 3000, labels + 1000, x + 1000 * d);
    assert_int_equal(hdb_faiss_is_trained(g), 1);
    assert_int_equal(hdb_faiss_size(g), 3998);
    hdb_faiss_free(g);
    hdb_faiss_free(f);

    /* HNSW with hidden positions (removed and replaced) */
    p = params("HNSW16,Flat", HDB_METRIC_L2, d, 32, 0);
    f = make_engine(&p);
    upsert_ok(f, 3000, labels, x);
    int64_t *rm2 = malloc(300 * sizeof *rm2);
    for (size_t i = 0; i < 300; i++)
        rm2[i] = labels[i * 7];
    assert_int_equal(hdb_faiss_remove(f, 300, rm2), 300);
    upsert_ok(f, 100, labels + 1, x + 5000 * d); /* replace labels[1..100] */
    g = round_trip(f, &p, path);
    expect_same_results(f, g, qs, nq, k, 0);
    expect_same_results(f, g, x + 5000 * d, 50, k, 0);
    /* both keep working the same after more writes */
    assert_int_equal(hdb_faiss_remove(f, 100, labels + 1), 100);
    assert_int_equal(hdb_faiss_remove(g, 100, labels + 1), 100);
    expect_same_results(f, g, qs, nq, k, 0);
    free(rm2);
    hdb_faiss_free(g);
    hdb_faiss_free(f);

    /* HNSW over lossy storage keeps raw vectors for rebuilds; they round-trip too */
    p = params("HNSW16,SQ8", HDB_METRIC_L2, d, 32, 1000);
    f = make_engine(&p);
    upsert_ok(f, 2000, labels, x);
    assert_int_equal(hdb_faiss_is_trained(f), 1);
    assert_int_equal(hdb_faiss_remove(f, 100, labels), 100);
    g = round_trip(f, &p, path);
    expect_same_results(f, g, qs, nq, k, 0);
    /* push both past 30% hidden: the rebuild (from the raw copies) gives the same answers */
    assert_int_equal(hdb_faiss_remove(f, 600, labels + 100), 600);
    assert_int_equal(hdb_faiss_remove(g, 600, labels + 100), 600);
    expect_same_results(f, g, qs, nq, k, 0);
    hdb_faiss_free(g);
    hdb_faiss_free(f);

    /* an unwritable path */
    p = params("Flat", HDB_METRIC_L2, d, 0, 0);
    f = make_engine(&p);
    char err[512];
    assert_int_equal(hdb_faiss_save(f, "/nonexistent-dir/x.bin", err, sizeof err), HDB_EIO);
    hdb_faiss_free(f);

    unlink(path);
    unlink(bad);
    rmdir(tmpdir);
    free(labels);
    free(x);
    free(qs);
}

/* ---- concurrency ----------------------------------------------------------------------------- */

enum { CONC_D = 32, CONC_LABELS = 4000 };

typedef struct {
    hdb_faiss *f;
    const float *x;
    volatile int stop;
    int failed;
    uint64_t seed;
    size_t ops;
} conc_ctx;

static void *conc_searcher(void *arg) {
    conc_ctx *c = arg;
    uint64_t s = c->seed;
    hdb_hit out[4 * 10];
    size_t ops = 0;
    while (!c->stop) {
        size_t row = (size_t)(rng_next_r(&s) % (CONC_LABELS - 4));
        char err[256];
        if (hdb_faiss_search(c->f, 4, c->x + row * CONC_D, 10, (uint32_t)(rng_next_r(&s) % 20), out,
                             err, sizeof err) != HDB_OK) {
            c->failed = 1;
            break;
        }
        for (size_t q = 0; q < 4; q++)
            for (size_t j = 0; j < 10; j++) {
                const hdb_hit *h = &out[q * 10 + j];
                if (h->label < -1 || h->label >= CONC_LABELS) c->failed = 1;
                if (j > 0 && h->label >= 0 && h->score < out[q * 10 + j - 1].score) c->failed = 1;
                if (j > 0 && h->label >= 0 && out[q * 10 + j - 1].label < 0) c->failed = 1;
            }
        ops++;
    }
    c->ops = ops;
    return NULL;
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void run_concurrent(const char *factory, uint64_t train_size, size_t initial,
                           double seconds) {
    float *x = clustered_matrix(CONC_LABELS, CONC_D);
    hdb_faiss_params p = params(factory, HDB_METRIC_L2, CONC_D, 4, train_size);
    hdb_faiss *f = make_engine(&p);
    int64_t *labels = seq_labels(CONC_LABELS, 1, 0);
    upsert_ok(f, initial, labels, x);
    conc_ctx c[4];
    pthread_t th[4];
    for (int i = 0; i < 4; i++) {
        c[i] = (conc_ctx){f, x, 0, 0, 0x9E3779B97F4A7C15ull * (uint64_t)(i + 1), 0};
        assert_int_equal(pthread_create(&th[i], NULL, conc_searcher, &c[i]), 0);
    }
    /* the writer: upserts batches of random labels (inserts and replacements), removes some */
    uint64_t s = 42;
    size_t writes = 0;
    double end = now_s() + seconds;
    int64_t batch[64];
    float bx[64 * CONC_D];
    while (now_s() < end) {
        size_t nb = 1 + (size_t)(rng_next_r(&s) % 64);
        size_t start = (size_t)(rng_next_r(&s) % (CONC_LABELS - nb));
        for (size_t i = 0; i < nb; i++) {
            batch[i] = (int64_t)(start + i);
            memcpy(bx + i * CONC_D, x + ((start + i * 7) % CONC_LABELS) * CONC_D,
                   CONC_D * sizeof(float));
        }
        upsert_ok(f, nb, batch, bx);
        size_t nr = (size_t)(rng_next_r(&s) % 32);
        start = (size_t)(rng_next_r(&s) % (CONC_LABELS - nr));
        for (size_t i = 0; i < nr; i++)
            batch[i] = (int64_t)(start + i);
        hdb_faiss_remove(f, nr, batch);
        writes++;
    }
    for (int i = 0; i < 4; i++) {
        c[i].stop = 1;
        pthread_join(th[i], NULL);
    }
    size_t searches = 0;
    for (int i = 0; i < 4; i++) {
        assert_false(c[i].failed);
        searches += c[i].ops;
    }
    print_message("%s concurrent: %zu write rounds, %zu searches, trained %d, size %zu\n", factory,
                  writes, searches, hdb_faiss_is_trained(f), hdb_faiss_size(f));
    assert_true(writes > 0 && searches > 0);
    assert_true(hdb_faiss_size(f) <= CONC_LABELS);
    free(labels);
    free(x);
    hdb_faiss_free(f);
}

static void test_concurrency(void **state) {
    (void)state;
    run_concurrent("HNSW16,Flat", 0, 2000, 0.5);
    run_concurrent("IVF16,Flat", 1500, 1000, 0.5); /* trains while searchers run */
}

int main(void) {
    hdb_faiss_set_threads(1);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_validate),
        cmocka_unit_test(test_arguments),
        cmocka_unit_test(test_flat_exact),
        cmocka_unit_test(test_ivf_flat_training),
        cmocka_unit_test(test_ivf_pq),
        cmocka_unit_test(test_hnsw),
        cmocka_unit_test(test_hnsw_ip_cosine),
        cmocka_unit_test(test_hnsw_efsearch),
        cmocka_unit_test(test_lsh),
        cmocka_unit_test(test_replace),
        cmocka_unit_test(test_save_load),
        cmocka_unit_test(test_concurrency),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
