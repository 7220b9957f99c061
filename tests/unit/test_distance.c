/*
 * test_distance.c - cmocka tests for hdb_distance: every kernel family the CPU supports is
 * forced in turn and compared with a double-precision reference over many dimensions
 * (remainder paths), unaligned pointers and NaN guards placed right after each vector (a kernel
 * that reads past the end picks up the NaN and fails); plus hdb_normalize and hdb_all_finite.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "hdb_distance.h"

#include <float.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- fixed-seed PRNG (xorshift64*) -------------------------------------------------------- */

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;

static uint64_t rng_next(void) {
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 2685821657736338717ull;
}

/* Uniform in [-1, 1). */
static float rng_float(void) {
    return (float)((double)(rng_next() >> 40) / 16777216.0 * 2.0 - 1.0);
}

static const size_t dims[] = {0,  1,  2,  3,  4,  5,  7,   8,   9,   15,  16,  17,  31,   32,
                              33, 47, 48, 63, 64, 65, 100, 127, 128, 129, 255, 784, 1000, 1023};
#define NDIMS (sizeof dims / sizeof dims[0])

static const char *const isas[] = {"scalar", "avx2", "avx512"};

/* Reference sums in double; *abs_sum gets sum |term| (the scale of the rounding error). */
static double ref_l2(const float *a, const float *b, size_t d, double *abs_sum) {
    double s = 0;
    for (size_t i = 0; i < d; i++) {
        double t = (double)a[i] - (double)b[i];
        s += t * t;
    }
    *abs_sum = s;
    return s;
}

static double ref_ip(const float *a, const float *b, size_t d, double *abs_sum) {
    double s = 0, as = 0;
    for (size_t i = 0; i < d; i++) {
        s += (double)a[i] * (double)b[i];
        as += fabs((double)a[i] * (double)b[i]);
    }
    *abs_sum = as;
    return s;
}

/* Float accumulation over d <= 1023 terms stays far inside 2e-5 of the absolute sum, while a
 * dropped or doubled element (about 1/d of it) is far outside. */
static void check_close(double got, double ref, double abs_sum, const char *what, const char *isa,
                        size_t d) {
    double tol = 2e-5 * abs_sum + 1e-30;
    if (!(fabs(got - ref) <= tol)) {
        fail_msg("%s [%s] d=%zu: got %.9g, want %.9g (tol %.3g)", what, isa, d, got, ref, tol);
    }
}

/* A vector of d floats that starts `off` floats into a buffer and is followed by NaN guards. */
typedef struct {
    float *buf;
    float *v;
} guarded;

static guarded guarded_new(size_t d, size_t off) {
    guarded g;
    g.buf = malloc((d + off + 16) * sizeof(float));
    assert_non_null(g.buf);
    for (size_t i = 0; i < d + off + 16; i++)
        g.buf[i] = NAN;
    g.v = g.buf + off;
    for (size_t i = 0; i < d; i++)
        g.v[i] = rng_float();
    return g;
}

/* ---- tests -------------------------------------------------------------------------------- */

static void test_dispatch_picks_best(void **state) {
    (void)state;
    hdb_distance_init();
    const char *isa = hdb_distance_isa();
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f"))
        assert_string_equal(isa, "avx512");
    else if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
        assert_string_equal(isa, "avx2");
    else
        assert_string_equal(isa, "scalar");

    assert_int_equal(hdb_distance_force_isa("sse9"), -1);
    assert_int_equal(hdb_distance_force_isa(NULL), -1);
    assert_string_equal(hdb_distance_isa(), isa); /* unchanged */
    assert_int_equal(hdb_distance_force_isa("scalar"), 0);
    assert_string_equal(hdb_distance_isa(), "scalar");
    assert_int_equal(hdb_distance_force_isa(isa), 0);
    assert_string_equal(hdb_distance_isa(), isa);
}

static void test_pairwise_kernels(void **state) {
    (void)state;
    const char *orig = hdb_distance_isa();
    int tested = 0;
    for (size_t s = 0; s < sizeof isas / sizeof isas[0]; s++) {
        if (hdb_distance_force_isa(isas[s]) != 0) {
            print_message("skipping %s: not supported by this CPU\n", isas[s]);
            continue;
        }
        tested++;
        for (size_t di = 0; di < NDIMS; di++) {
            size_t d = dims[di];
            for (size_t off = 0; off < 4; off++) {
                guarded a = guarded_new(d, off);
                guarded b = guarded_new(d, 3 - off);
                double as;
                double r = ref_l2(a.v, b.v, d, &as);
                check_close(hdb_l2sq(a.v, b.v, d), r, as, "l2sq", isas[s], d);
                r = ref_ip(a.v, b.v, d, &as);
                check_close(hdb_ip(a.v, b.v, d), r, as, "ip", isas[s], d);
                r = ref_ip(a.v, a.v, d, &as);
                check_close(hdb_norm_sq(a.v, d), r, as, "norm_sq", isas[s], d);
                /* identical vectors are exactly 0 apart in every family */
                assert_true(hdb_l2sq(a.v, a.v, d) == 0.0f);
                free(a.buf);
                free(b.buf);
            }
        }
    }
    assert_int_equal(hdb_distance_force_isa(orig), 0);
    assert_true(tested >= 2); /* scalar plus at least one SIMD family on x86-64 hosts */
}

static void test_ny_kernels(void **state) {
    (void)state;
    static const size_t ns[] = {0, 1, 2, 3, 4, 5, 7, 8, 9, 33};
    const char *orig = hdb_distance_isa();
    for (size_t s = 0; s < sizeof isas / sizeof isas[0]; s++) {
        if (hdb_distance_force_isa(isas[s]) != 0) continue;
        for (size_t di = 0; di < NDIMS; di++) {
            size_t d = dims[di];
            for (size_t ni = 0; ni < sizeof ns / sizeof ns[0]; ni++) {
                size_t n = ns[ni];
                size_t off = (d + ni) % 4;
                guarded q = guarded_new(d, off);
                guarded base = guarded_new(n * d, 3 - off);
                float *out = malloc((n + 1) * sizeof(float));
                assert_non_null(out);
                out[n] = 12345.0f; /* must stay untouched */

                hdb_l2sq_ny(q.v, base.v, n, d, out);
                for (size_t j = 0; j < n; j++) {
                    double as, r = ref_l2(q.v, base.v + j * d, d, &as);
                    check_close(out[j], r, as, "l2sq_ny", isas[s], d);
                }
                assert_true(out[n] == 12345.0f);

                hdb_ip_ny(q.v, base.v, n, d, out);
                for (size_t j = 0; j < n; j++) {
                    double as, r = ref_ip(q.v, base.v + j * d, d, &as);
                    check_close(out[j], r, as, "ip_ny", isas[s], d);
                }
                assert_true(out[n] == 12345.0f);
                free(out);
                free(q.buf);
                free(base.buf);
            }
        }
    }
    assert_int_equal(hdb_distance_force_isa(orig), 0);
}

/* Families must agree with each other too (same data, tiny rounding differences only). */
static void test_families_agree_on_large_input(void **state) {
    (void)state;
    const char *orig = hdb_distance_isa();
    const size_t n = 300, d = 784;
    float *q = malloc(d * sizeof(float));
    float *x = malloc(n * d * sizeof(float));
    float *ref = malloc(n * sizeof(float));
    float *out = malloc(n * sizeof(float));
    for (size_t i = 0; i < d; i++)
        q[i] = rng_float() * 100.0f;
    for (size_t i = 0; i < n * d; i++)
        x[i] = rng_float() * 100.0f;
    assert_int_equal(hdb_distance_force_isa("scalar"), 0);
    hdb_l2sq_ny(q, x, n, d, ref);
    for (size_t s = 1; s < sizeof isas / sizeof isas[0]; s++) {
        if (hdb_distance_force_isa(isas[s]) != 0) continue;
        hdb_l2sq_ny(q, x, n, d, out);
        for (size_t j = 0; j < n; j++)
            assert_true(fabsf(out[j] - ref[j]) <= 1e-5f * ref[j]);
    }
    assert_int_equal(hdb_distance_force_isa(orig), 0);
    free(q);
    free(x);
    free(ref);
    free(out);
}

static void test_normalize(void **state) {
    (void)state;
    const char *orig = hdb_distance_isa();
    for (size_t s = 0; s < sizeof isas / sizeof isas[0]; s++) {
        if (hdb_distance_force_isa(isas[s]) != 0) continue;
        for (size_t di = 1; di < NDIMS; di++) {
            size_t d = dims[di];
            guarded a = guarded_new(d, di % 4);
            a.v[0] = 0.75f; /* never all zero */
            double as, nref = sqrt(ref_ip(a.v, a.v, d, &as));
            float *copy = malloc(d * sizeof(float));
            memcpy(copy, a.v, d * sizeof(float));
            float got = hdb_normalize(a.v, d);
            assert_true(fabs(got - nref) <= 1e-5 * nref);
            double n2 = ref_ip(a.v, a.v, d, &as);
            assert_true(fabs(n2 - 1.0) <= 1e-5);
            for (size_t i = 0; i < d; i++)
                assert_true(fabs(a.v[i] - copy[i] / nref) <= 1e-6);
            assert_true(isnan(a.v[d])); /* nothing written past the end */
            free(copy);
            free(a.buf);
        }
    }
    assert_int_equal(hdb_distance_force_isa(orig), 0);

    /* zero vectors stay zero and report norm 0 */
    float z[17] = {0};
    assert_true(hdb_normalize(z, 17) == 0.0f);
    for (int i = 0; i < 17; i++)
        assert_true(z[i] == 0.0f && !signbit(z[i]));
    assert_true(hdb_normalize(z, 0) == 0.0f);

    /* ranges where a float sum of squares under- or overflows still normalise correctly */
    float tiny[3] = {3e-30f, 4e-30f, 0.0f};
    float t = hdb_normalize(tiny, 3);
    assert_true(fabs(t - 5e-30) <= 1e-35);
    assert_true(fabsf(tiny[0] - 0.6f) < 1e-6f && fabsf(tiny[1] - 0.8f) < 1e-6f);
    float huge[2] = {3e30f, 4e30f};
    float h = hdb_normalize(huge, 2);
    assert_true(fabs(h - 5e30) <= 1e25);
    assert_true(fabsf(huge[0] - 0.6f) < 1e-6f && fabsf(huge[1] - 0.8f) < 1e-6f);
}

static void test_all_finite(void **state) {
    (void)state;
    const float bads[] = {NAN, -NAN, INFINITY, -INFINITY};
    size_t idx = 999;
    assert_int_equal(hdb_all_finite(NULL, 0, &idx), 1);
    assert_int_equal(idx, 999);

    for (size_t di = 1; di < NDIMS; di++) {
        size_t d = dims[di];
        float *a = malloc(d * sizeof(float));
        for (size_t i = 0; i < d; i++)
            a[i] = rng_float() * 1e30f;
        a[0] = FLT_MAX;
        a[d - 1] = -FLT_MAX;
        if (d > 2) a[1] = FLT_MIN / 4; /* subnormal: finite */
        assert_int_equal(hdb_all_finite(a, d, &idx), 1);
        assert_int_equal(hdb_all_finite(a, d, NULL), 1);

        size_t pos[4] = {0, d / 2, d - 1, d > 70 ? 70 : d - 1};
        for (size_t p = 0; p < 4; p++) {
            for (size_t b = 0; b < 4; b++) {
                float saved = a[pos[p]];
                a[pos[p]] = bads[b];
                idx = 999;
                assert_int_equal(hdb_all_finite(a, d, &idx), 0);
                assert_int_equal(idx, pos[p]);
                assert_int_equal(hdb_all_finite(a, d, NULL), 0);
                a[pos[p]] = saved;
            }
        }
        /* two bad values: the first one is reported */
        if (d >= 3) {
            a[d - 1] = NAN;
            a[1] = INFINITY;
            assert_int_equal(hdb_all_finite(a, d, &idx), 0);
            assert_int_equal(idx, 1);
        }
        free(a);
    }
}

static void *isa_reader(void *arg) {
    (void)arg;
    const char *isa = hdb_distance_isa();
    float a[5] = {1, 2, 3, 4, 5}, b[5] = {0};
    if (hdb_l2sq(a, b, 5) != 55.0f) return NULL;
    return (void *)isa;
}

static void test_concurrent_first_use(void **state) {
    (void)state;
    pthread_t th[8];
    void *res[8];
    for (int i = 0; i < 8; i++)
        assert_int_equal(pthread_create(&th[i], NULL, isa_reader, NULL), 0);
    for (int i = 0; i < 8; i++)
        assert_int_equal(pthread_join(th[i], &res[i]), 0);
    for (int i = 0; i < 8; i++) {
        assert_non_null(res[i]);
        assert_string_equal((const char *)res[i], hdb_distance_isa());
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        /* first, so that the threads race on the very first selection */
        cmocka_unit_test(test_concurrent_first_use),
        cmocka_unit_test(test_dispatch_picks_best),
        cmocka_unit_test(test_pairwise_kernels),
        cmocka_unit_test(test_ny_kernels),
        cmocka_unit_test(test_families_agree_on_large_input),
        cmocka_unit_test(test_normalize),
        cmocka_unit_test(test_all_finite),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
