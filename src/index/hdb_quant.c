/*
 * hdb_quant.c - float16 and int8 codes and their distance kernels (hdb_quant.h).
 *
 * Each kernel has a scalar form and an AVX2+FMA+F16C form that takes eight dimensions a step
 * (F16C's vcvtph2ps widens eight halves, vpmovzxbd eight bytes) and finishes the rest with the
 * scalar loop, so no load reads past the end of a vector. The SIMD functions carry
 * __attribute__((target(...))), so this file builds with the baseline x86-64 flags; use_simd()
 * decides per call, from the CPU and from hdb_distance's selected family, so a test that forces
 * "scalar" there checks these scalar kernels too.
 *
 * The scalar float16 conversions are written out (round to nearest even, subnormals kept) so
 * that the scalar and F16C paths give the same bits; test_quant checks that on every finite
 * half.
 */
#include "hdb_quant.h"

#include "hdb_distance.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#if (defined(__x86_64__) || defined(__i386__)) && defined(__GNUC__)
#define HDB_X86 1
#include <immintrin.h>
#else
#define HDB_X86 0
#endif

const char *hdb_vec_storage_name(hdb_vec_storage s) {
    switch (s) {
    case HDB_VEC_FLOAT32: return "float32";
    case HDB_VEC_FLOAT16: return "float16";
    case HDB_VEC_INT8: return "int8";
    }
    return "unknown";
}

size_t hdb_vec_code_bytes(hdb_vec_storage s, size_t dim) {
    switch (s) {
    case HDB_VEC_FLOAT16: return dim * sizeof(uint16_t);
    case HDB_VEC_INT8: return dim;
    default: return dim * sizeof(float);
    }
}

/* True when the AVX2 kernels may run: the CPU has them and the distance family is not scalar. */
static bool use_simd(void) {
#if HDB_X86
    static int cpu = -1; /* racy first write of the same value: harmless */
    if (cpu < 0)
        cpu = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
              __builtin_cpu_supports("f16c");
    return cpu && strcmp(hdb_distance_isa(), "scalar") != 0;
#else
    return false;
#endif
}

/* ---- float16 conversions ------------------------------------------------------------------ */

static uint16_t f32_to_f16(float f) {
    if (f > HDB_F16_MAX) f = HDB_F16_MAX;
    if (f < -HDB_F16_MAX) f = -HDB_F16_MAX;
    uint32_t x;
    memcpy(&x, &f, sizeof x);
    uint16_t sign = (uint16_t)((x >> 16) & 0x8000u);
    uint32_t ax = x & 0x7fffffffu;
    if (ax > 0x7f800000u) return (uint16_t)(sign | 0x7e00u); /* NaN (never encoded here) */
    int32_t e = (int32_t)(ax >> 23) - 127 + 15;
    uint32_t mant = ax & 0x7fffffu;
    if (e >= 31) return (uint16_t)(sign | 0x7bffu); /* unreachable after the clamp */
    if (e <= 0) {                                   /* subnormal half, or zero */
        if (e < -10) return sign;
        mant |= 0x800000u;
        uint32_t shift = (uint32_t)(14 - e);
        uint32_t h = mant >> shift;
        uint32_t rem = mant & ((1u << shift) - 1u), half = 1u << (shift - 1);
        if (rem > half || (rem == half && (h & 1u))) h++;
        return (uint16_t)(sign | h);
    }
    uint32_t h = ((uint32_t)e << 10) | (mant >> 13);
    uint32_t rem = mant & 0x1fffu;
    if (rem > 0x1000u || (rem == 0x1000u && (h & 1u))) h++; /* may carry into the exponent */
    return (uint16_t)(sign | h);
}

static float f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t e = (h >> 10) & 0x1fu, mant = h & 0x3ffu, x;
    if (e == 0) {
        if (mant == 0) {
            x = sign;
        } else { /* subnormal: normalise */
            int s = 0;
            while (!(mant & 0x400u)) {
                mant <<= 1;
                s++;
            }
            mant &= 0x3ffu;
            x = sign | ((uint32_t)(127 - 15 + 1 - s) << 23) | (mant << 13);
        }
    } else if (e == 31) {
        x = sign | 0x7f800000u | (mant << 13);
    } else {
        x = sign | ((e - 15 + 127) << 23) | (mant << 13);
    }
    float f;
    memcpy(&f, &x, sizeof f);
    return f;
}

#if HDB_X86
#define SIMD __attribute__((target("avx2,fma,f16c")))

SIMD static float hsum8(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 0x55));
    return _mm_cvtss_f32(s);
}

SIMD static __m256 load_h8(const uint16_t *c) {
    return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)c));
}

SIMD static __m256 load_b8(const uint8_t *c) {
    __m128i b = _mm_loadl_epi64((const __m128i *)c);
    return _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(b));
}

SIMD static void f16_encode_simd(const float *x, size_t d, uint16_t *out) {
    const __m256 hi = _mm256_set1_ps(HDB_F16_MAX), lo = _mm256_set1_ps(-HDB_F16_MAX);
    size_t i = 0;
    for (; i + 8 <= d; i += 8) {
        __m256 v = _mm256_max_ps(_mm256_min_ps(_mm256_loadu_ps(x + i), hi), lo);
        _mm_storeu_si128((__m128i *)(out + i), _mm256_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT));
    }
    for (; i < d; i++)
        out[i] = f32_to_f16(x[i]);
}

SIMD static float f16_l2sq_simd(const float *q, const uint16_t *c, size_t d) {
    __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
    size_t i = 0;
    for (; i + 16 <= d; i += 16) {
        __m256 t0 = _mm256_sub_ps(_mm256_loadu_ps(q + i), load_h8(c + i));
        __m256 t1 = _mm256_sub_ps(_mm256_loadu_ps(q + i + 8), load_h8(c + i + 8));
        s0 = _mm256_fmadd_ps(t0, t0, s0);
        s1 = _mm256_fmadd_ps(t1, t1, s1);
    }
    for (; i + 8 <= d; i += 8) {
        __m256 t = _mm256_sub_ps(_mm256_loadu_ps(q + i), load_h8(c + i));
        s0 = _mm256_fmadd_ps(t, t, s0);
    }
    float s = hsum8(_mm256_add_ps(s0, s1));
    for (; i < d; i++) {
        float t = q[i] - f16_to_f32(c[i]);
        s += t * t;
    }
    return s;
}

SIMD static float f16_ip_simd(const float *q, const uint16_t *c, size_t d) {
    __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
    size_t i = 0;
    for (; i + 16 <= d; i += 16) {
        s0 = _mm256_fmadd_ps(_mm256_loadu_ps(q + i), load_h8(c + i), s0);
        s1 = _mm256_fmadd_ps(_mm256_loadu_ps(q + i + 8), load_h8(c + i + 8), s1);
    }
    for (; i + 8 <= d; i += 8)
        s0 = _mm256_fmadd_ps(_mm256_loadu_ps(q + i), load_h8(c + i), s0);
    float s = hsum8(_mm256_add_ps(s0, s1));
    for (; i < d; i++)
        s += q[i] * f16_to_f32(c[i]);
    return s;
}

SIMD static float f16_l2sq_cc_simd(const uint16_t *a, const uint16_t *b, size_t d) {
    __m256 s0 = _mm256_setzero_ps();
    size_t i = 0;
    for (; i + 8 <= d; i += 8) {
        __m256 t = _mm256_sub_ps(load_h8(a + i), load_h8(b + i));
        s0 = _mm256_fmadd_ps(t, t, s0);
    }
    float s = hsum8(s0);
    for (; i < d; i++) {
        float t = f16_to_f32(a[i]) - f16_to_f32(b[i]);
        s += t * t;
    }
    return s;
}

SIMD static float f16_ip_cc_simd(const uint16_t *a, const uint16_t *b, size_t d) {
    __m256 s0 = _mm256_setzero_ps();
    size_t i = 0;
    for (; i + 8 <= d; i += 8)
        s0 = _mm256_fmadd_ps(load_h8(a + i), load_h8(b + i), s0);
    float s = hsum8(s0);
    for (; i < d; i++)
        s += f16_to_f32(a[i]) * f16_to_f32(b[i]);
    return s;
}

SIMD static float sq8_l2sq_simd(const float *step, const float *qs, const uint8_t *c, size_t d) {
    __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
    size_t i = 0;
    for (; i + 16 <= d; i += 16) {
        __m256 t0 = _mm256_fnmadd_ps(_mm256_loadu_ps(step + i), load_b8(c + i),
                                     _mm256_loadu_ps(qs + i));
        __m256 t1 = _mm256_fnmadd_ps(_mm256_loadu_ps(step + i + 8), load_b8(c + i + 8),
                                     _mm256_loadu_ps(qs + i + 8));
        s0 = _mm256_fmadd_ps(t0, t0, s0);
        s1 = _mm256_fmadd_ps(t1, t1, s1);
    }
    for (; i + 8 <= d; i += 8) {
        __m256 t = _mm256_fnmadd_ps(_mm256_loadu_ps(step + i), load_b8(c + i),
                                    _mm256_loadu_ps(qs + i));
        s0 = _mm256_fmadd_ps(t, t, s0);
    }
    float s = hsum8(_mm256_add_ps(s0, s1));
    for (; i < d; i++) {
        float t = qs[i] - step[i] * (float)c[i];
        s += t * t;
    }
    return s;
}

SIMD static float sq8_dot_simd(const float *w, const uint8_t *c, size_t d) {
    __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
    size_t i = 0;
    for (; i + 16 <= d; i += 16) {
        s0 = _mm256_fmadd_ps(_mm256_loadu_ps(w + i), load_b8(c + i), s0);
        s1 = _mm256_fmadd_ps(_mm256_loadu_ps(w + i + 8), load_b8(c + i + 8), s1);
    }
    for (; i + 8 <= d; i += 8)
        s0 = _mm256_fmadd_ps(_mm256_loadu_ps(w + i), load_b8(c + i), s0);
    float s = hsum8(_mm256_add_ps(s0, s1));
    for (; i < d; i++)
        s += w[i] * (float)c[i];
    return s;
}

SIMD static float sq8_l2sq_cc_simd(const float *step2, const uint8_t *a, const uint8_t *b,
                                   size_t d) {
    __m256 s0 = _mm256_setzero_ps();
    size_t i = 0;
    for (; i + 8 <= d; i += 8) {
        __m256 t = _mm256_sub_ps(load_b8(a + i), load_b8(b + i));
        s0 = _mm256_fmadd_ps(_mm256_mul_ps(t, t), _mm256_loadu_ps(step2 + i), s0);
    }
    float s = hsum8(s0);
    for (; i < d; i++) {
        float t = (float)a[i] - (float)b[i];
        s += step2[i] * t * t;
    }
    return s;
}

SIMD static float sq8_ip_cc_simd(const float *lo, const float *step, const uint8_t *a,
                                 const uint8_t *b, size_t d) {
    __m256 s0 = _mm256_setzero_ps();
    size_t i = 0;
    for (; i + 8 <= d; i += 8) {
        __m256 l = _mm256_loadu_ps(lo + i), st = _mm256_loadu_ps(step + i);
        __m256 x = _mm256_fmadd_ps(st, load_b8(a + i), l);
        __m256 y = _mm256_fmadd_ps(st, load_b8(b + i), l);
        s0 = _mm256_fmadd_ps(x, y, s0);
    }
    float s = hsum8(s0);
    for (; i < d; i++)
        s += (lo[i] + step[i] * (float)a[i]) * (lo[i] + step[i] * (float)b[i]);
    return s;
}
#define SIMD_OR(call) \
    if (use_simd()) return call
#else
#define SIMD_OR(call) (void)0
#endif

/* ---- float16 ------------------------------------------------------------------------------ */

void hdb_f16_encode(const float *x, size_t d, uint16_t *out) {
#if HDB_X86
    if (use_simd()) {
        f16_encode_simd(x, d, out);
        return;
    }
#endif
    for (size_t i = 0; i < d; i++)
        out[i] = f32_to_f16(x[i]);
}

void hdb_f16_decode(const uint16_t *c, size_t d, float *out) {
    for (size_t i = 0; i < d; i++)
        out[i] = f16_to_f32(c[i]);
}

float hdb_f16_l2sq(const float *q, const uint16_t *c, size_t d) {
    SIMD_OR(f16_l2sq_simd(q, c, d));
    float s = 0;
    for (size_t i = 0; i < d; i++) {
        float t = q[i] - f16_to_f32(c[i]);
        s += t * t;
    }
    return s;
}

float hdb_f16_ip(const float *q, const uint16_t *c, size_t d) {
    SIMD_OR(f16_ip_simd(q, c, d));
    float s = 0;
    for (size_t i = 0; i < d; i++)
        s += q[i] * f16_to_f32(c[i]);
    return s;
}

float hdb_f16_l2sq_cc(const uint16_t *a, const uint16_t *b, size_t d) {
    SIMD_OR(f16_l2sq_cc_simd(a, b, d));
    float s = 0;
    for (size_t i = 0; i < d; i++) {
        float t = f16_to_f32(a[i]) - f16_to_f32(b[i]);
        s += t * t;
    }
    return s;
}

float hdb_f16_ip_cc(const uint16_t *a, const uint16_t *b, size_t d) {
    SIMD_OR(f16_ip_cc_simd(a, b, d));
    float s = 0;
    for (size_t i = 0; i < d; i++)
        s += f16_to_f32(a[i]) * f16_to_f32(b[i]);
    return s;
}

/* ---- int8 ---------------------------------------------------------------------------------- */

bool hdb_sq8_init(hdb_sq8 *q, size_t dim) {
    memset(q, 0, sizeof *q);
    size_t n = dim ? dim : 1;
    q->dim = dim;
    q->lo = malloc(n * sizeof(float));
    q->step = malloc(n * sizeof(float));
    q->step2 = malloc(n * sizeof(float));
    q->hi = malloc(n * sizeof(float));
    if (!q->lo || !q->step || !q->step2 || !q->hi) {
        hdb_sq8_destroy(q);
        return false;
    }
    for (size_t i = 0; i < dim; i++) {
        q->lo[i] = INFINITY;
        q->hi[i] = -INFINITY;
    }
    return true;
}

void hdb_sq8_destroy(hdb_sq8 *q) {
    free(q->lo);
    free(q->step);
    free(q->step2);
    free(q->hi);
    memset(q, 0, sizeof *q);
}

void hdb_sq8_observe(hdb_sq8 *q, const float *x) {
    for (size_t i = 0; i < q->dim; i++) {
        if (x[i] < q->lo[i]) q->lo[i] = x[i];
        if (x[i] > q->hi[i]) q->hi[i] = x[i];
    }
    q->seen++;
}

void hdb_sq8_finish(hdb_sq8 *q) {
    double wsum = 0;
    size_t wn = 0;
    for (size_t i = 0; i < q->dim && q->seen > 0; i++)
        if (q->hi[i] > q->lo[i]) {
            wsum += (double)q->hi[i] - q->lo[i];
            wn++;
        }
    float fallback = wn ? (float)(wsum / (double)wn) : 2.0f;
    for (size_t i = 0; i < q->dim; i++) {
        float lo = q->seen ? q->lo[i] : -1.0f, hi = q->seen ? q->hi[i] : 1.0f;
        float width = hi - lo;
        if (!(width > 0) || !isfinite(width)) { /* constant in training (or overflowing) */
            float mid = lo / 2 + hi / 2;
            width = isfinite(width) && width > 0 ? width : fallback;
            lo = mid - width / 2;
        }
        q->lo[i] = lo;
        q->step[i] = width / 255.0f;
        if (!(q->step[i] > 0)) q->step[i] = 1e-30f; /* width below float's resolution */
        q->step2[i] = q->step[i] * q->step[i];
    }
    q->trained = true;
}

bool hdb_sq8_set(hdb_sq8 *q, const float *lo, const float *step) {
    for (size_t i = 0; i < q->dim; i++)
        if (!isfinite(lo[i]) || !isfinite(step[i]) || !(step[i] > 0)) return false;
    memcpy(q->lo, lo, q->dim * sizeof(float));
    memcpy(q->step, step, q->dim * sizeof(float));
    for (size_t i = 0; i < q->dim; i++)
        q->step2[i] = step[i] * step[i];
    q->seen = 0;
    q->trained = true;
    return true;
}

void hdb_sq8_encode(const hdb_sq8 *q, const float *x, uint8_t *out) {
    for (size_t i = 0; i < q->dim; i++) {
        float v = (x[i] - q->lo[i]) / q->step[i];
        v = v < 0 ? 0 : v > 255 ? 255 : v;
        out[i] = (uint8_t)lrintf(v);
    }
}

void hdb_sq8_prep_l2(const hdb_sq8 *q, const float *query, float *qs) {
    for (size_t i = 0; i < q->dim; i++)
        qs[i] = query[i] - q->lo[i];
}

float hdb_sq8_l2sq(const hdb_sq8 *q, const float *qs, const uint8_t *c) {
    SIMD_OR(sq8_l2sq_simd(q->step, qs, c, q->dim));
    float s = 0;
    for (size_t i = 0; i < q->dim; i++) {
        float t = qs[i] - q->step[i] * (float)c[i];
        s += t * t;
    }
    return s;
}

float hdb_sq8_prep_ip(const hdb_sq8 *q, const float *query, float *w) {
    float base = 0;
    for (size_t i = 0; i < q->dim; i++) {
        w[i] = query[i] * q->step[i];
        base += query[i] * q->lo[i];
    }
    return base;
}

float hdb_sq8_dot(const float *w, const uint8_t *c, size_t d) {
    SIMD_OR(sq8_dot_simd(w, c, d));
    float s = 0;
    for (size_t i = 0; i < d; i++)
        s += w[i] * (float)c[i];
    return s;
}

float hdb_sq8_l2sq_cc(const hdb_sq8 *q, const uint8_t *a, const uint8_t *b) {
    SIMD_OR(sq8_l2sq_cc_simd(q->step2, a, b, q->dim));
    float s = 0;
    for (size_t i = 0; i < q->dim; i++) {
        float t = (float)a[i] - (float)b[i];
        s += q->step2[i] * t * t;
    }
    return s;
}

float hdb_sq8_ip_cc(const hdb_sq8 *q, const uint8_t *a, const uint8_t *b) {
    SIMD_OR(sq8_ip_cc_simd(q->lo, q->step, a, b, q->dim));
    float s = 0;
    for (size_t i = 0; i < q->dim; i++)
        s += (q->lo[i] + q->step[i] * (float)a[i]) * (q->lo[i] + q->step[i] * (float)b[i]);
    return s;
}
