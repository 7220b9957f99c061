/*
 * hdb_quant.h - compact codes for dense vectors, and distances on them: float16 (2 bytes a
 * dimension) and an int8 scalar quantizer (1 byte a dimension, per-dimension ranges trained on
 * points). The HNSW engine keeps its graph's vectors in these codes when an index asks for it;
 * the query layer rescores every hit from the stored float32 record, so a code only steers the
 * walk and never shows in a returned distance.
 *
 * Distances come in two kinds: query-to-code (a float32 query against a stored code: what a
 * search computes) and code-to-code (two stored codes: what graph construction computes).
 * Scores follow hdb_distance: l2sq is the squared distance, ip the inner product.
 *
 * Kernels are scalar, or AVX2+FMA+F16C when the CPU has them and hdb_distance's family is not
 * forced to "scalar" (hdb_distance_force_isa), chosen at each call from that selection.
 *
 * Thread-safety: every function is safe from any thread; an hdb_sq8 is read-only once trained,
 * and its training calls need one caller at a time.
 */
#ifndef HDB_QUANT_H
#define HDB_QUANT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* How an engine keeps its vectors. The values are stored in snapshot files: never renumber. */
typedef enum {
    HDB_VEC_FLOAT32 = 0,
    HDB_VEC_FLOAT16 = 1,
    HDB_VEC_INT8 = 2
} hdb_vec_storage;

/* "float32", "float16", "int8" or "unknown". */
const char *hdb_vec_storage_name(hdb_vec_storage s);

/* Bytes one vector of dim dimensions takes in storage s. */
size_t hdb_vec_code_bytes(hdb_vec_storage s, size_t dim);

/* ---- float16 ------------------------------------------------------------------------------ */

/* The largest finite float16; encoding clamps larger magnitudes to it (never to infinity). */
#define HDB_F16_MAX 65504.0f

/* Encodes x[0..d) as IEEE binary16, rounded to nearest even, clamped to +-HDB_F16_MAX. */
void hdb_f16_encode(const float *x, size_t d, uint16_t *out);

/* Decodes d float16 values. */
void hdb_f16_decode(const uint16_t *c, size_t d, float *out);

/* Query-to-code: sum((q[i] - c[i])^2) and sum(q[i] * c[i]). */
float hdb_f16_l2sq(const float *q, const uint16_t *c, size_t d);
float hdb_f16_ip(const float *q, const uint16_t *c, size_t d);

/* Code-to-code. */
float hdb_f16_l2sq_cc(const uint16_t *a, const uint16_t *b, size_t d);
float hdb_f16_ip_cc(const uint16_t *a, const uint16_t *b, size_t d);

/* ---- int8 scalar quantizer ------------------------------------------------------------------ */

/* Dimension i of a code c holds lo[i] + step[i] * c[i], c[i] in 0..255. Trained on points as
 * the range [min, max] of each dimension; a dimension that did not vary in training gets the
 * mean width of the others (or 2), centred on its one value, so that later points that do vary
 * there are not all folded onto it. Values outside the trained range clamp to its ends. */
typedef struct {
    size_t dim;
    float *lo, *step;
    float *step2;  /* step[i]^2, for code-to-code l2sq */
    float *hi;     /* training: the running maximum */
    uint64_t seen; /* training: points observed */
    bool trained;
} hdb_sq8;

/* Starts training for dim dimensions. Returns false when out of memory (nothing to free). */
bool hdb_sq8_init(hdb_sq8 *q, size_t dim);

/* Releases the arrays; q may then be initialised again. */
void hdb_sq8_destroy(hdb_sq8 *q);

/* Widens the ranges to take x (finite values). Before hdb_sq8_finish only. */
void hdb_sq8_observe(hdb_sq8 *q, const float *x);

/* Fixes the ranges. With no point observed every dimension gets [-1, 1]. */
void hdb_sq8_finish(hdb_sq8 *q);

/* Sets a trained quantizer from stored lo and step arrays (dim each, copied). Returns false
 * when a value is not finite or a step is not positive. q must be freshly initialised. */
bool hdb_sq8_set(hdb_sq8 *q, const float *lo, const float *step);

/* Encodes x (dim values) into dim codes. q must be trained. */
void hdb_sq8_encode(const hdb_sq8 *q, const float *x, uint8_t *out);

/* Query-to-code, with a query prepared once for many codes:
 *   l2sq: hdb_sq8_prep_l2 writes qs[i] = q[i] - lo[i]; then hdb_sq8_l2sq(sq, qs, c) is
 *         sum((qs[i] - step[i] c[i])^2);
 *   ip:   hdb_sq8_prep_ip writes w[i] = q[i] step[i] and returns sum(q[i] lo[i]); then the
 *         inner product is that sum plus hdb_sq8_dot(w, c, dim). */
void hdb_sq8_prep_l2(const hdb_sq8 *q, const float *query, float *qs);
float hdb_sq8_l2sq(const hdb_sq8 *q, const float *qs, const uint8_t *c);
float hdb_sq8_prep_ip(const hdb_sq8 *q, const float *query, float *w);
float hdb_sq8_dot(const float *w, const uint8_t *c, size_t d);

/* Code-to-code: the squared distance and the inner product of the decoded vectors. */
float hdb_sq8_l2sq_cc(const hdb_sq8 *q, const uint8_t *a, const uint8_t *b);
float hdb_sq8_ip_cc(const hdb_sq8 *q, const uint8_t *a, const uint8_t *b);

#ifdef __cplusplus
}
#endif

#endif /* HDB_QUANT_H */
