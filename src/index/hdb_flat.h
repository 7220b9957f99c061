/*
 * hdb_flat.h - the exact ("flat") search engine: every query is compared with every vector.
 *
 * Vectors live in one contiguous row-major matrix with a label per row; a hash map finds the
 * row of a label, so upsert and remove are O(1) per vector (remove moves the last row into the
 * hole). Single queries use the SIMD kernels of hdb_distance; batches of queries use blocked
 * cblas_sgemm (OpenBLAS), as FAISS's IndexFlat does.
 *
 * Scores are "smaller is better" (hdb_topk): L2 gives the squared distance, INNER_PRODUCT gives
 * -<q,x>, COSINE gives 1 - <q/|q|, x/|x|> (vectors are normalised on insert, queries on
 * search; zero vectors stay zero).
 *
 * Thread-safety: none inside. Searches may run concurrently with each other; upsert and remove
 * need exclusive access (the index layer holds a rwlock per split).
 */
#ifndef HDB_FLAT_H
#define HDB_FLAT_H

#include <stddef.h>
#include <stdint.h>

#include "hdb_clock.h"
#include "hdb_topk.h"
#include "hdb_types.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct hdb_flat hdb_flat;

/* Creates an empty engine for vectors of dimension dim (>= 1) under metric. Returns HDB_OK and
 * *out, or HDB_EINVAL with a message. Free with hdb_flat_free. */
int hdb_flat_create(hdb_flat **out, uint32_t dim, hdb_metric metric, char *err, size_t errlen);

/* Releases the engine. NULL is allowed. */
void hdb_flat_free(hdb_flat *f);

/* Inserts n vectors (row-major, n x dim, copied) under labels (>= 0). A label that is already
 * present has its vector replaced. Labels within one call must be distinct. Returns HDB_OK, or
 * HDB_EINVAL without changing anything when a label is negative or a pointer is NULL (n > 0). */
int hdb_flat_upsert(hdb_flat *f, size_t n, const int64_t *labels, const float *vecs);

/* Removes the vectors with these labels; absent labels are ignored. Returns how many were
 * removed. */
size_t hdb_flat_remove(hdb_flat *f, size_t n, const int64_t *labels);

/* Number of vectors held. */
size_t hdb_flat_size(const hdb_flat *f);

/* Bytes the rows take (vector_bytes: the float32 vectors of the allocated rows) and the rest
 * (norms, labels, the label map). Same threads as hdb_flat_size. */
void hdb_flat_mem(const hdb_flat *f, uint64_t *vector_bytes, uint64_t *other_bytes);

/* Dimension and metric given at creation. */
uint32_t hdb_flat_dim(const hdb_flat *f);
hdb_metric hdb_flat_metric(const hdb_flat *f);

/* Returns 1 and copies the stored (for COSINE: normalised) vector of label into out (dim
 * floats) if present, else returns 0. */
int hdb_flat_get(const hdb_flat *f, int64_t label, float *out);

/* Searches nq queries (row-major, nq x dim; not modified). For query i, out[i*k .. i*k+k) gets
 * the k best hits sorted best first, padded with {+INFINITY, -1} when fewer than k vectors
 * exist. k >= 1. Scratch memory is allocated internally and freed before returning. Returns
 * HDB_OK, or HDB_EINVAL when k is 0 or a pointer is NULL (nq > 0). */
int hdb_flat_search(const hdb_flat *f, size_t nq, const float *queries, size_t k, hdb_hit *out);

/* As hdb_flat_search, but gives up once stop says so (checked between queries, between GEMM
 * blocks and every 64Ki rows of a scan): returns HDB_ETIMEOUT or HDB_ECANCELLED then, and out
 * holds nothing usable. stop may be NULL (never stops). */
int hdb_flat_search_stop(const hdb_flat *f, size_t nq, const float *queries, size_t k,
                         const hdb_stop *stop, hdb_hit *out);

/* As hdb_flat_search_stop, returning only labels that acc accepts (NULL: all); the rows it
 * refuses are skipped (the scan path then serves every batch size). */
int hdb_flat_search_accept(const hdb_flat *f, size_t nq, const float *queries, size_t k,
                           const hdb_stop *stop, const hdb_accept *acc, hdb_hit *out);

/* Makes searches of nq or more queries use the GEMM path (1: always; SIZE_MAX: never; 0: the
 * automatic choice, which is the default: GEMM from 8 queries, or from 4 once the matrix is
 * larger than a typical last-level cache). Meant for tests and benchmarks. Not thread-safe:
 * must not run concurrently with a search on f. */
void hdb_flat_set_gemm_min_nq(hdb_flat *f, size_t nq);

/* Writes the engine to path: "HDBFLAT1", version, dim, metric, count, labels, rows, and a
 * CRC-32C trailer (hdb_file). The file is fsynced; the caller renames it into place. */
int hdb_flat_save(const hdb_flat *f, const char *path, char *err, size_t errlen);

/* Loads an engine saved by hdb_flat_save. dim and metric must match the file (HDB_EINVAL
 * otherwise); a damaged file gives HDB_ECORRUPT; an unreadable one HDB_EIO. */
int hdb_flat_load(hdb_flat **out, uint32_t dim, hdb_metric metric, const char *path, char *err,
                  size_t errlen);

#ifdef __cplusplus
}
#endif

#endif /* HDB_FLAT_H */
