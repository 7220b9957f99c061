/*
 * test_quant.c - cmocka tests for hdb_quant, the compact vector codes of the HNSW engine:
 * float16 encoding (known values, the clamp to +-65504, round-to-nearest-even at exact halves,
 * subnormals, and the same bits from the scalar and the F16C encoder); every float16 and int8
 * kernel against a double-precision reference over the decoded vectors, under each kernel
 * family the CPU has, over many dimensions (remainder paths) with a NaN guard right after each
 * vector; and the int8 quantizer's training (reconstruction within half a step, constant
 * dimensions, no points at all, clamping outside the trained range, and stored ranges that
 * hdb_sq8_set must refuse).
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "hdb_distance.h"
#include "hdb_quant.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- fixed-seed PRNG (xorshift64*) -------------------------------------------------------- */

static uint64_t rng_state = 0x2545F4914F6CDD1Dull;

static uint64_t rng_next(void) {
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 2685821657736338717ull;
}

/* Uniform in [lo, hi). */
static float rng_range(float lo, float hi) {
    return lo + (hi - lo) * (float)((double)(rng_next() >> 40) / 16777216.0);
}

static const size_t dims[] = {1, 2, 3, 7, 8, 9, 15, 16, 17, 23, 24, 31, 32, 33, 40, 96, 784};
#define NDIMS (sizeof dims / sizeof dims[0])

static const char *const isas[] = {"scalar", "avx2", "avx512"};
#define NISAS (sizeof isas / sizeof isas[0])

/* Forces kernel family s; false when the CPU lacks it. */
static bool force(size_t s) {
    return hdb_distance_force_isa(isas[s]) == 0;
}

/* |got - want| within a relative tolerance of the magnitude of the terms summed. */
static void assert_close(double got, double want, double scale, const char *what, size_t d) {
    double tol = 1e-4 * (scale > 1 ? scale : 1);
    if (fabs(got - want) > tol) {
        fprintf(stderr, "%s d=%zu: got %.9g want %.9g (tol %.3g)\n", what, d, got, want, tol);
        fail();
    }
}

/* ---- float16 ------------------------------------------------------------------------------ */

static uint16_t enc1(float x) {
    uint16_t h;
    hdb_f16_encode(&x, 1, &h);
    return h;
}

static float dec1(uint16_t h) {
    float f;
    hdb_f16_decode(&h, 1, &f);
    return f;
}

/* Known encodings, under each family (one value at a time goes through the scalar tail; eight
 * at a time through the SIMD body when there is one). */
static void test_f16_known_values(void **state) {
    (void)state;
    const char *orig = hdb_distance_isa();
    const struct {
        float in;
        uint16_t bits;
    } cases[] = {
        {0.0f, 0x0000},     {-0.0f, 0x8000},          {1.0f, 0x3c00},
        {-2.0f, 0xc000},    {0.5f, 0x3800},           {65504.0f, 0x7bff},
        {1e6f, 0x7bff},     {-1e30f, 0xfbff},         {INFINITY, 0x7bff},
        {5.9604645e-8f, 0x0001}, /* the smallest subnormal */
        {1e-10f, 0x0000},        /* below half of it: zero */
        {1.00048828125f, 0x3c00}, /* 1 + 2^-11, an exact half: to even (down) */
        {1.00146484375f, 0x3c02}, /* 1 + 3*2^-11, an exact half: to even (up) */
        {6.1035156e-5f, 0x0400},  /* the smallest normal */
    };
    size_t n = sizeof cases / sizeof cases[0];
    for (size_t s = 0; s < NISAS; s++) {
        if (!force(s)) continue;
        for (size_t i = 0; i < n; i++) {
            uint16_t one = enc1(cases[i].in);
            if (one != cases[i].bits) {
                fprintf(stderr, "%s: %g -> 0x%04x, want 0x%04x\n", isas[s], (double)cases[i].in,
                        one, cases[i].bits);
                fail();
            }
            float eight[8];
            uint16_t out[8];
            for (int k = 0; k < 8; k++)
                eight[k] = cases[i].in;
            hdb_f16_encode(eight, 8, out);
            for (int k = 0; k < 8; k++)
                assert_int_equal(out[k], cases[i].bits);
        }
    }
    assert_true(dec1(0x7bff) == 65504.0f);
    assert_true(dec1(0x0001) == 5.9604645e-8f);
    assert_true(dec1(0xc000) == -2.0f);
    assert_true(isinf(dec1(0x7c00)));
    assert_int_equal(hdb_distance_force_isa(orig), 0);
}

/* Random values: every family encodes the same bits, and decoding is within half an ulp. */
static void test_f16_round_trip(void **state) {
    (void)state;
    const char *orig = hdb_distance_isa();
    enum { N = 4099 };
    float *x = malloc(N * sizeof *x), *back = malloc(N * sizeof *back);
    uint16_t *ref = malloc(N * sizeof *ref), *got = malloc(N * sizeof *got);
    assert_non_null(x);
    assert_non_null(back);
    assert_non_null(ref);
    assert_non_null(got);
    for (size_t i = 0; i < N; i++) {
        float mag = powf(10.0f, rng_range(-6.0f, 4.8f));
        x[i] = (rng_next() & 1) ? mag : -mag;
    }
    assert_true(force(0));
    hdb_f16_encode(x, N, ref);
    hdb_f16_decode(ref, N, back);
    for (size_t i = 0; i < N; i++) {
        double ax = fabs((double)x[i]);
        /* Half an ulp: 2^-11 relative for normals, 2^-25 absolute for subnormals. */
        double tol = ax >= 6.103515625e-5 ? ax * 0x1p-11 : 0x1p-25;
        if (fabs((double)back[i] - (double)x[i]) > tol) {
            fprintf(stderr, "%.9g -> %.9g\n", (double)x[i], (double)back[i]);
            fail();
        }
    }
    for (size_t s = 1; s < NISAS; s++) {
        if (!force(s)) continue;
        hdb_f16_encode(x, N, got);
        assert_memory_equal(got, ref, N * sizeof *ref);
    }
    free(x);
    free(back);
    free(ref);
    free(got);
    assert_int_equal(hdb_distance_force_isa(orig), 0);
}

/* A buffer of d values followed by a NaN guard (as float or as a float16 NaN). */
static float *fbuf(size_t d) {
    float *p = malloc((d + 8) * sizeof *p);
    assert_non_null(p);
    for (size_t i = d; i < d + 8; i++)
        p[i] = NAN;
    return p;
}

static uint16_t *hbuf(size_t d) {
    uint16_t *p = malloc((d + 8) * sizeof *p);
    assert_non_null(p);
    for (size_t i = d; i < d + 8; i++)
        p[i] = 0x7e00;
    return p;
}

static void test_f16_kernels(void **state) {
    (void)state;
    const char *orig = hdb_distance_isa();
    for (size_t s = 0; s < NISAS; s++) {
        if (!force(s)) continue;
        for (size_t di = 0; di < NDIMS; di++) {
            size_t d = dims[di];
            float *q = fbuf(d), *a = fbuf(d), *b = fbuf(d), *da = fbuf(d), *db = fbuf(d);
            uint16_t *ca = hbuf(d), *cb = hbuf(d);
            for (size_t i = 0; i < d; i++) {
                q[i] = rng_range(-3, 3);
                a[i] = rng_range(-3, 3);
                b[i] = rng_range(-3, 3);
            }
            hdb_f16_encode(a, d, ca);
            hdb_f16_encode(b, d, cb);
            hdb_f16_decode(ca, d, da);
            hdb_f16_decode(cb, d, db);
            double l2 = 0, ip = 0, l2cc = 0, ipcc = 0, scale = 0;
            for (size_t i = 0; i < d; i++) {
                double t = (double)q[i] - da[i], u = (double)da[i] - db[i];
                l2 += t * t;
                ip += (double)q[i] * da[i];
                l2cc += u * u;
                ipcc += (double)da[i] * db[i];
                scale += 9;
            }
            assert_close(hdb_f16_l2sq(q, ca, d), l2, scale, "f16_l2sq", d);
            assert_close(hdb_f16_ip(q, ca, d), ip, scale, "f16_ip", d);
            assert_close(hdb_f16_l2sq_cc(ca, cb, d), l2cc, scale, "f16_l2sq_cc", d);
            assert_close(hdb_f16_ip_cc(ca, cb, d), ipcc, scale, "f16_ip_cc", d);
            free(q);
            free(a);
            free(b);
            free(da);
            free(db);
            free(ca);
            free(cb);
        }
    }
    assert_int_equal(hdb_distance_force_isa(orig), 0);
}

/* ---- int8 ---------------------------------------------------------------------------------- */

static float sq8_value(const hdb_sq8 *q, size_t i, uint8_t c) {
    return q->lo[i] + q->step[i] * (float)c;
}

static void test_sq8_reconstruction(void **state) {
    (void)state;
    enum { D = 33, N = 500 };
    hdb_sq8 q;
    assert_true(hdb_sq8_init(&q, D));
    assert_false(q.trained);
    float *pts = malloc((size_t)N * D * sizeof *pts);
    assert_non_null(pts);
    for (size_t p = 0; p < N; p++)
        for (size_t i = 0; i < D; i++) /* each dimension its own range */
            pts[p * D + i] = rng_range(-(float)i, 2.0f * (float)i + 1.0f);
    for (size_t p = 0; p < N; p++)
        hdb_sq8_observe(&q, pts + p * D);
    hdb_sq8_finish(&q);
    assert_true(q.trained);
    uint8_t code[D];
    for (size_t p = 0; p < N; p++) {
        hdb_sq8_encode(&q, pts + p * D, code);
        for (size_t i = 0; i < D; i++) {
            float back = sq8_value(&q, i, code[i]);
            assert_true(fabsf(back - pts[p * D + i]) <= q.step[i] * 0.5f * 1.001f + 1e-6f);
        }
    }
    /* The trained range covers exactly the points: the minimum and maximum map to 0 and 255. */
    for (size_t i = 0; i < D; i++) {
        float mn = INFINITY, mx = -INFINITY;
        for (size_t p = 0; p < N; p++) {
            mn = fminf(mn, pts[p * D + i]);
            mx = fmaxf(mx, pts[p * D + i]);
        }
        assert_true(q.lo[i] == mn);
        assert_true(fabsf(q.lo[i] + 255 * q.step[i] - mx) <= 1e-4f * (1 + fabsf(mx)));
    }
    /* Outside the range: clamps to the ends. */
    float out[D];
    for (size_t i = 0; i < D; i++)
        out[i] = (i & 1) ? 1e9f : -1e9f;
    hdb_sq8_encode(&q, out, code);
    for (size_t i = 0; i < D; i++)
        assert_int_equal(code[i], (i & 1) ? 255 : 0);
    free(pts);
    hdb_sq8_destroy(&q);
}

/* A dimension that never varied gets the mean width of the others, centred on its value, so a
 * later point that does vary there is not folded onto it; with no varying dimension at all, or
 * no point at all, the width is 2. */
static void test_sq8_constant_dimensions(void **state) {
    (void)state;
    hdb_sq8 q;
    assert_true(hdb_sq8_init(&q, 3));
    const float a[3] = {0, 5, 7}, b[3] = {10, 5, 27};
    hdb_sq8_observe(&q, a);
    hdb_sq8_observe(&q, b);
    hdb_sq8_finish(&q);
    assert_true(fabsf(q.step[1] * 255 - 15.0f) < 1e-4f); /* mean of 10 and 20 */
    assert_true(fabsf(q.lo[1] - (5.0f - 7.5f)) < 1e-4f);
    uint8_t c[3];
    const float later[3] = {0, 6, 7};
    hdb_sq8_encode(&q, later, c);
    assert_true(fabsf(sq8_value(&q, 1, c[1]) - 6.0f) <= q.step[1]);
    const float five[3] = {0, 5, 7};
    hdb_sq8_encode(&q, five, c);
    assert_true(fabsf(sq8_value(&q, 1, c[1]) - 5.0f) <= q.step[1] * 0.5f + 1e-6f);
    hdb_sq8_destroy(&q);

    assert_true(hdb_sq8_init(&q, 2));
    const float same[2] = {3, -4};
    hdb_sq8_observe(&q, same);
    hdb_sq8_observe(&q, same);
    hdb_sq8_finish(&q);
    for (size_t i = 0; i < 2; i++) {
        assert_true(fabsf(q.step[i] * 255 - 2.0f) < 1e-5f);
        assert_true(fabsf(q.lo[i] - (same[i] - 1.0f)) < 1e-5f);
    }
    hdb_sq8_destroy(&q);

    assert_true(hdb_sq8_init(&q, 4));
    hdb_sq8_finish(&q); /* nothing observed */
    for (size_t i = 0; i < 4; i++) {
        assert_true(q.lo[i] == -1.0f);
        assert_true(fabsf(q.step[i] * 255 - 2.0f) < 1e-5f);
    }
    hdb_sq8_destroy(&q);
}

static void test_sq8_set(void **state) {
    (void)state;
    hdb_sq8 q;
    const float lo[2] = {-1, 0}, step[2] = {0.5f, 0.25f};
    assert_true(hdb_sq8_init(&q, 2));
    assert_true(hdb_sq8_set(&q, lo, step));
    assert_true(q.trained);
    assert_true(q.step2[1] == 0.0625f);
    uint8_t c[2];
    const float x[2] = {0, 1};
    hdb_sq8_encode(&q, x, c);
    assert_int_equal(c[0], 2);
    assert_int_equal(c[1], 4);
    hdb_sq8_destroy(&q);

    const float bad_steps[][2] = {{0.5f, 0.0f}, {0.5f, -1.0f}, {NAN, 1.0f}, {INFINITY, 1.0f}};
    for (size_t k = 0; k < 4; k++) {
        assert_true(hdb_sq8_init(&q, 2));
        assert_false(hdb_sq8_set(&q, lo, bad_steps[k]));
        assert_false(q.trained);
        hdb_sq8_destroy(&q);
    }
    const float bad_lo[2] = {NAN, 0};
    assert_true(hdb_sq8_init(&q, 2));
    assert_false(hdb_sq8_set(&q, bad_lo, step));
    hdb_sq8_destroy(&q);
}

static uint8_t *bbuf(size_t d) {
    uint8_t *p = malloc(d + 8);
    assert_non_null(p);
    memset(p + d, 0xff, 8);
    return p;
}

static void test_sq8_kernels(void **state) {
    (void)state;
    const char *orig = hdb_distance_isa();
    for (size_t s = 0; s < NISAS; s++) {
        if (!force(s)) continue;
        for (size_t di = 0; di < NDIMS; di++) {
            size_t d = dims[di];
            hdb_sq8 q;
            assert_true(hdb_sq8_init(&q, d));
            float *x = fbuf(d), *y = fbuf(d), *qv = fbuf(d), *prep = fbuf(d);
            for (int p = 0; p < 20; p++) {
                for (size_t i = 0; i < d; i++)
                    x[i] = rng_range(-2, 4);
                hdb_sq8_observe(&q, x);
            }
            hdb_sq8_finish(&q);
            uint8_t *ca = bbuf(d), *cb = bbuf(d);
            for (size_t i = 0; i < d; i++) {
                x[i] = rng_range(-2, 4);
                y[i] = rng_range(-2, 4);
                qv[i] = rng_range(-2, 4);
            }
            hdb_sq8_encode(&q, x, ca);
            hdb_sq8_encode(&q, y, cb);
            double l2 = 0, ip = 0, l2cc = 0, ipcc = 0, scale = 0;
            for (size_t i = 0; i < d; i++) {
                double a = sq8_value(&q, i, ca[i]), b = sq8_value(&q, i, cb[i]);
                l2 += ((double)qv[i] - a) * ((double)qv[i] - a);
                ip += (double)qv[i] * a;
                l2cc += (a - b) * (a - b);
                ipcc += a * b;
                scale += 36;
            }
            hdb_sq8_prep_l2(&q, qv, prep);
            assert_close(hdb_sq8_l2sq(&q, prep, ca), l2, scale, "sq8_l2sq", d);
            float base = hdb_sq8_prep_ip(&q, qv, prep);
            assert_close(base + hdb_sq8_dot(prep, ca, d), ip, scale, "sq8_ip", d);
            assert_close(hdb_sq8_l2sq_cc(&q, ca, cb), l2cc, scale, "sq8_l2sq_cc", d);
            assert_close(hdb_sq8_ip_cc(&q, ca, cb), ipcc, scale, "sq8_ip_cc", d);
            free(x);
            free(y);
            free(qv);
            free(prep);
            free(ca);
            free(cb);
            hdb_sq8_destroy(&q);
        }
    }
    assert_int_equal(hdb_distance_force_isa(orig), 0);
}

static void test_names_and_sizes(void **state) {
    (void)state;
    assert_string_equal(hdb_vec_storage_name(HDB_VEC_FLOAT32), "float32");
    assert_string_equal(hdb_vec_storage_name(HDB_VEC_FLOAT16), "float16");
    assert_string_equal(hdb_vec_storage_name(HDB_VEC_INT8), "int8");
    assert_string_equal(hdb_vec_storage_name((hdb_vec_storage)7), "unknown");
    assert_int_equal(hdb_vec_code_bytes(HDB_VEC_FLOAT32, 784), 3136);
    assert_int_equal(hdb_vec_code_bytes(HDB_VEC_FLOAT16, 784), 1568);
    assert_int_equal(hdb_vec_code_bytes(HDB_VEC_INT8, 784), 784);
}

int main(void) {
    hdb_distance_init();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_names_and_sizes),
        cmocka_unit_test(test_f16_known_values),
        cmocka_unit_test(test_f16_round_trip),
        cmocka_unit_test(test_f16_kernels),
        cmocka_unit_test(test_sq8_reconstruction),
        cmocka_unit_test(test_sq8_constant_dimensions),
        cmocka_unit_test(test_sq8_set),
        cmocka_unit_test(test_sq8_kernels),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
