/*
 * test_infer.c - unit tests of the inference pool (hdb_infer.h) on real TorchScript models:
 * a request gets its own rows back, concurrent requests for one model share forward passes
 * (and each still gets its own rows), a request larger than max_batch runs alone, jobs of two
 * models in one hdb_infer_run_jobs call both complete, a failing job is reported by index with
 * the model's message while the pool keeps working, and a request whose deadline has passed
 * gives up without running.
 *
 * The fixture models come from tests/unit/fixtures/make_torch_models.py, which ctest runs first
 * (fixture torch_models) into the directory named by $HDB_TORCH_MODELS.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "hdb_clock.h"
#include "hdb_err.h"
#include "hdb_infer.h"
#include "hdb_torch.h"
#include "test_torch_models.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *models_dir;
static char errbuf[1024];

static hdb_model *load(const char *name, const int64_t *shape, size_t ndim, int64_t out_dim) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", models_dir, name);
    hdb_model *m = NULL;
    int rc = hdb_model_load(&m, path, shape, ndim, out_dim, errbuf, sizeof errbuf);
    if (rc != HDB_OK) printf("    load %s: %s\n", name, errbuf);
    assert_int_equal(rc, HDB_OK);
    return m;
}

static hdb_model *load_normalize(void) {
    int64_t shape[] = {4};
    return load("normalize.pt", shape, 1, 4);
}

static hdb_infer *pool(int threads, uint32_t max_batch, uint32_t max_wait_us) {
    hdb_infer *p = NULL;
    assert_int_equal(hdb_infer_create(&p, threads, max_batch, max_wait_us, errbuf, sizeof errbuf),
                     HDB_OK);
    return p;
}

/* Row i of the test input: distinct rows, none of zero norm. */
static void fill_rows(float *x, size_t n, unsigned seed) {
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < 4; j++)
            x[i * 4 + j] = (float)((seed * 31u + (unsigned)i * 7u + (unsigned)j * 3u) % 17u) - 8.5f;
}

static void check_normalized(const float *x, const float *y, size_t n) {
    for (size_t i = 0; i < n; i++) {
        double s = 0;
        for (size_t j = 0; j < 4; j++) s += (double)x[i * 4 + j] * x[i * 4 + j];
        for (size_t j = 0; j < 4; j++)
            assert_float_equal(y[i * 4 + j], x[i * 4 + j] / sqrt(s), 1e-6);
    }
}

/* ---- tests ------------------------------------------------------------------------------- */

static void test_create_bad_args(void **state) {
    (void)state;
    hdb_infer *p = NULL;
    assert_int_equal(hdb_infer_create(&p, 0, 8, 0, errbuf, sizeof errbuf), HDB_EINVAL);
    assert_int_equal(hdb_infer_create(&p, 1, 0, 0, errbuf, sizeof errbuf), HDB_EINVAL);
    assert_null(p);
    hdb_infer_free(NULL);
}

static void test_run_returns_own_rows(void **state) {
    (void)state;
    hdb_model *m = load_normalize();
    hdb_infer *p = pool(2, 8, 1000);
    float x[5 * 4], y[5 * 4];
    fill_rows(x, 5, 1);
    assert_int_equal(hdb_infer_run(p, m, x, 5, y, INT64_MAX, errbuf, sizeof errbuf), HDB_OK);
    check_normalized(x, y, 5);
    /* No items: nothing runs. */
    assert_int_equal(hdb_infer_run(p, m, x, 0, y, INT64_MAX, errbuf, sizeof errbuf), HDB_OK);
    /* More than max_batch items: the request runs alone, whole. */
    float bx[40 * 4], by[40 * 4];
    fill_rows(bx, 40, 2);
    assert_int_equal(hdb_infer_run(p, m, bx, 40, by, INT64_MAX, errbuf, sizeof errbuf), HDB_OK);
    check_normalized(bx, by, 40);
    hdb_infer_stats st;
    hdb_infer_stats_get(p, &st);
    assert_int_equal(st.requests, 2);
    assert_int_equal(st.passes, 2);
    assert_int_equal(st.items, 45);
    hdb_infer_free(p);
    hdb_model_free(m);
}

enum { CALLERS = 12, CALLS = 20 };

typedef struct {
    hdb_infer *p;
    hdb_model *m;
    unsigned seed;
    int failures;
} caller_arg;

static void *caller(void *arg) {
    caller_arg *a = arg;
    for (int c = 0; c < CALLS; c++) {
        float x[4], y[4];
        fill_rows(x, 1, a->seed * 1000u + (unsigned)c);
        char err[256];
        if (hdb_infer_run(a->p, a->m, x, 1, y, INT64_MAX, err, sizeof err) != HDB_OK) {
            a->failures++;
            continue;
        }
        double s = 0;
        for (int j = 0; j < 4; j++) s += (double)x[j] * x[j];
        for (int j = 0; j < 4; j++)
            if (fabs(y[j] - x[j] / sqrt(s)) > 1e-6) a->failures++;
    }
    return NULL;
}

static void test_concurrent_requests_share_passes(void **state) {
    (void)state;
    hdb_model *m = load_normalize();
    hdb_infer *p = pool(1, 16, 20000);
    pthread_t th[CALLERS];
    caller_arg args[CALLERS];
    for (int i = 0; i < CALLERS; i++) {
        args[i] = (caller_arg){p, m, (unsigned)i + 1, 0};
        assert_int_equal(pthread_create(&th[i], NULL, caller, &args[i]), 0);
    }
    for (int i = 0; i < CALLERS; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(args[i].failures, 0); /* every caller got its own rows */
    }
    hdb_infer_stats st;
    hdb_infer_stats_get(p, &st);
    printf("    %d concurrent single-item requests: %llu passes\n", CALLERS * CALLS,
           (unsigned long long)st.passes);
    assert_int_equal(st.requests, CALLERS * CALLS);
    assert_int_equal(st.items, CALLERS * CALLS);
    /* One pool thread and twelve callers: requests queue while a pass runs and share the next. */
    assert_true(st.passes < st.requests);
    hdb_infer_free(p);
    hdb_model_free(m);
}

static void test_jobs_of_two_models(void **state) {
    (void)state;
    hdb_model *norm = load_normalize();
    int64_t shape[] = {1, 28, 28};
    hdb_model *img = load("image.pt", shape, 3, 8);
    hdb_infer *p = pool(2, 32, 0);

    float x[3 * 4], y[3 * 4];
    fill_rows(x, 3, 3);
    float *pix = calloc(2 * 28 * 28, sizeof(float)), ya[2 * 8], yb[2 * 8];
    assert_non_null(pix);
    for (size_t i = 0; i < 2 * 28 * 28; i++) pix[i] = (float)(i % 13) / 13.0f;
    /* The image model's reference: the same input through the model directly. */
    assert_int_equal(hdb_model_forward(img, pix, 2, ya, errbuf, sizeof errbuf), HDB_OK);

    hdb_infer_job jobs[] = {{norm, x, 3, y}, {img, pix, 2, yb}, {norm, x, 0, NULL}};
    size_t failed = 99;
    assert_int_equal(hdb_infer_run_jobs(p, jobs, 3, INT64_MAX, &failed, errbuf, sizeof errbuf),
                     HDB_OK);
    assert_int_equal(failed, 99); /* untouched on success */
    check_normalized(x, y, 3);
    for (int i = 0; i < 16; i++) assert_float_equal(yb[i], ya[i], 1e-5);
    hdb_infer_stats st;
    hdb_infer_stats_get(p, &st);
    assert_int_equal(st.requests, 2);
    free(pix);
    hdb_infer_free(p);
    hdb_model_free(img);
    hdb_model_free(norm);
}

static void test_failed_job_is_named(void **state) {
    (void)state;
    hdb_model *norm = load_normalize();
    int64_t shape[] = {4};
    hdb_model *throws = load("throws.pt", shape, 1, 4); /* raises for batches over 3 */
    hdb_infer *p = pool(2, 32, 0);
    float x[4 * 4] = {0}, y0[2 * 4], y1[4 * 4], y2[1 * 4];
    fill_rows(x, 4, 4);
    hdb_infer_job jobs[] = {{norm, x, 2, y0}, {throws, x, 4, y1}, {norm, x, 1, y2}};
    size_t failed = 99;
    errbuf[0] = '\0';
    assert_int_equal(hdb_infer_run_jobs(p, jobs, 3, INT64_MAX, &failed, errbuf, sizeof errbuf),
                     HDB_EINTERNAL);
    assert_int_equal(failed, 1);
    printf("    failed job: %s\n", errbuf);
    assert_non_null(strstr(errbuf, "batch of 4 is larger than 3"));
    /* Every job ran to its end before the call returned. */
    hdb_infer_stats st;
    hdb_infer_stats_get(p, &st);
    assert_int_equal(st.requests, 3);
    /* The pool goes on serving. */
    assert_int_equal(hdb_infer_run(p, throws, x, 3, y1, INT64_MAX, errbuf, sizeof errbuf), HDB_OK);
    assert_int_equal(hdb_infer_run(p, norm, x, 4, y1, INT64_MAX, errbuf, sizeof errbuf), HDB_OK);
    check_normalized(x, y1, 4);
    hdb_infer_free(p);
    hdb_model_free(throws);
    hdb_model_free(norm);
}

static void test_passed_deadline_gives_up(void **state) {
    (void)state;
    hdb_model *m = load_normalize();
    hdb_infer *p = pool(1, 8, 0);
    float x[2 * 4], y[2 * 4];
    fill_rows(x, 2, 5);
    int64_t past = hdb_mono_ns() - 1;
    errbuf[0] = '\0';
    assert_int_equal(hdb_infer_run(p, m, x, 2, y, past, errbuf, sizeof errbuf), HDB_ETIMEOUT);
    assert_non_null(strstr(errbuf, "deadline passed while waiting for the model"));
    hdb_infer_job jobs[] = {{m, x, 1, y}, {m, x + 4, 1, y + 4}};
    size_t failed = 99;
    assert_int_equal(hdb_infer_run_jobs(p, jobs, 2, past, &failed, errbuf, sizeof errbuf),
                     HDB_ETIMEOUT);
    assert_int_equal(failed, 0);
    hdb_infer_stats st;
    hdb_infer_stats_get(p, &st);
    assert_int_equal(st.requests, 0); /* nothing ran */
    /* A deadline ahead is met. */
    assert_int_equal(hdb_infer_run(p, m, x, 2, y, hdb_mono_ns() + 60 * 1000000000LL, errbuf,
                                   sizeof errbuf),
                     HDB_OK);
    check_normalized(x, y, 2);
    hdb_infer_free(p);
    hdb_model_free(m);
}

static int group_setup(void **state) {
    (void)state;
    if ((models_dir = torch_models_dir()) == NULL) return -1;
    hdb_torch_set_threads(1, 1);
    return 0;
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_create_bad_args),
        cmocka_unit_test(test_run_returns_own_rows),
        cmocka_unit_test(test_concurrent_requests_share_passes),
        cmocka_unit_test(test_jobs_of_two_models),
        cmocka_unit_test(test_failed_job_is_named),
        cmocka_unit_test(test_passed_deadline_gives_up),
    };
    return cmocka_run_group_tests(tests, group_setup, NULL);
}
