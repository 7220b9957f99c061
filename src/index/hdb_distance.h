/*
 * hdb_distance.h - float32 distance kernels with runtime CPU dispatch.
 *
 * The first call (or hdb_distance_init) picks the best implementation the CPU supports
 * (AVX-512F, AVX2+FMA, or portable scalar code) through __builtin_cpu_supports, so one binary
 * runs everywhere and uses the host's SIMD. Every function is thread-safe and allocation-free.
 * Dimensions may be any value >= 0 (remainders are handled); pointers need no alignment.
 */
#ifndef HDB_DISTANCE_H
#define HDB_DISTANCE_H

#include <stddef.h>
#include <stdint.h>

#include "hdb_types.h" /* hdb_all_finite, which lived here */

#ifdef __cplusplus
extern "C" {
#endif

/* Selects the kernels once. Safe to call many times and from many threads. */
void hdb_distance_init(void);

/* Name of the selected kernel family: "avx512", "avx2" or "scalar". */
const char *hdb_distance_isa(void);

/* Forces a kernel family for tests and benchmarks ("avx512", "avx2", "scalar"). Returns 0, or
 * -1 if the CPU lacks it or the name is unknown (selection unchanged). Not thread-safe. */
int hdb_distance_force_isa(const char *name);

/* Squared Euclidean distance sum((a[i]-b[i])^2). */
float hdb_l2sq(const float *a, const float *b, size_t d);

/* Inner product sum(a[i]*b[i]). */
float hdb_ip(const float *a, const float *b, size_t d);

/* Squared norm sum(a[i]^2). */
float hdb_norm_sq(const float *a, size_t d);

/* Scales a to unit length in place. A zero vector is left as it is. Returns the original norm. */
float hdb_normalize(float *a, size_t d);


/* One query against n base vectors stored row-major (n x d): out[j] = l2sq(q, base + j*d). */
void hdb_l2sq_ny(const float *q, const float *base, size_t n, size_t d, float *out);

/* One query against n base vectors: out[j] = ip(q, base + j*d). */
void hdb_ip_ny(const float *q, const float *base, size_t n, size_t d, float *out);

#ifdef __cplusplus
}
#endif

#endif /* HDB_DISTANCE_H */
