/*
 * hdb_sparse.h - the exact engine for sparse vectors: an inverted index (index -> postings of
 * (label, value)) with a norm and a count per vector.
 *
 * COSINE: score 1 - <q,x>/(|q||x|) (a zero vector has score 1). JACCARD treats a vector as the
 * set of its indices (values ignored): score 1 - |q ∩ x| / |q ∪ x|. Only vectors that share at
 * least one index with the query are candidates; when fewer than k do, the remaining slots are
 * filled with other vectors at score 1 (cosine 0, no overlap), smallest labels first, so that k
 * hits come back whenever k vectors exist. Results are exact.
 *
 * Input vectors are valid (indices strictly increasing, below dim, values finite); the ingest
 * layer checks that before anything reaches the engine.
 *
 * Thread-safety: concurrent searches; upsert/remove/save take an exclusive lock inside.
 */
#ifndef HDB_SPARSE_H
#define HDB_SPARSE_H

#include <stddef.h>
#include <stdint.h>

#include "hdb_topk.h"
#include "hdb_types.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct hdb_sparse hdb_sparse;

typedef struct {
    uint32_t dim;      /* upper bound of indices (exclusive) */
    hdb_metric metric; /* COSINE or JACCARD */
} hdb_sparse_params;

int hdb_sparse_create(hdb_sparse **out, const hdb_sparse_params *p, char *err, size_t errlen);

/* Releases the engine. NULL is allowed. */
void hdb_sparse_free(hdb_sparse *s);

/* Inserts or replaces n vectors (copied) under labels (>= 0, distinct in the call). */
int hdb_sparse_upsert(hdb_sparse *s, size_t n, const int64_t *labels, const hdb_sparse_vec *vecs,
                      char *err, size_t errlen);

/* Removes these labels (absent ones ignored); returns how many were removed. */
size_t hdb_sparse_remove(hdb_sparse *s, size_t n, const int64_t *labels);

/* Searches nq queries; out gets k hits per query (best first; ties by smaller label), padded
 * with {+INFINITY, -1} only when fewer than k vectors exist. */
int hdb_sparse_search(hdb_sparse *s, size_t nq, const hdb_sparse_vec *queries, size_t k,
                      hdb_hit *out, char *err, size_t errlen);

/* As hdb_sparse_search, returning only labels that pass accepts (NULL: all). */
int hdb_sparse_search_accept(hdb_sparse *s, size_t nq, const hdb_sparse_vec *queries, size_t k,
                             const hdb_accept *pass, hdb_hit *out, char *err, size_t errlen);

/* Vectors held. */
size_t hdb_sparse_size(hdb_sparse *s);

/* Bytes of the stored non-zeros (vector_bytes: an index and a value each) and of the rest
 * (posting lists, per-slot arrays, the maps), approximately. Any thread. */
void hdb_sparse_mem(hdb_sparse *s, uint64_t *vector_bytes, uint64_t *other_bytes);

/* Writes / loads the engine (magic/version header, CRC-32C trailer; a damaged file gives
 * HDB_ECORRUPT; p must match the saved dim and metric, else HDB_EINVAL). */
int hdb_sparse_save(hdb_sparse *s, const char *path, char *err, size_t errlen);
int hdb_sparse_load(hdb_sparse **out, const hdb_sparse_params *p, const char *path, char *err,
                    size_t errlen);

#ifdef __cplusplus
}
#endif

#endif /* HDB_SPARSE_H */
