/*
 * hdb_faiss.h - a FAISS index as a HilbertDB engine: the C face of hdb_faiss_bridge.cpp.
 *
 * Any index_factory string is accepted ("IVF1024,Flat", "IVF256,PQ16", "HNSW32,Flat", "LSH",
 * "Flat", ...). Labels are our int64 point ids. Indexes that need training (IVF, PQ) buffer
 * their vectors and answer exact searches until they hold `train_size` vectors; then they are
 * trained once on what they hold and serve from the FAISS index from then on. Upsert of an
 * existing label replaces its vector. Indexes that cannot remove vectors (FAISS's HNSW) hide
 * removed labels from results and are rebuilt from their live vectors when too many are hidden.
 *
 * Scores follow hdb_topk: smaller is better. L2: squared distance; INNER_PRODUCT: -<q,x>;
 * COSINE: 1 - cos, done as inner product over normalised vectors. Indexes whose FAISS search
 * does not compute the metric return their own distance (LSH: Hamming distance between codes;
 * LSH is L2-only), still best first. Ties are ordered by smaller label.
 *
 * Factory strings that FAISS 1.7.3 would abort, crash or leak on ("IVF0", "PQ0", "HNSW0", bit
 * counts above 16, PQ sizes that do not divide the dimension, ...) and IDMap wrappers are
 * refused with HDB_EINVAL before FAISS sees them; so are indexes that ignore the metric.
 *
 * Thread-safety: every function may be called from any thread. Searches, size, is_trained and
 * save run concurrently (shared lock); upsert and remove take an exclusive lock inside, which
 * waiting searches do not starve. No C++ exception crosses this interface:
 * FAISS errors come back as HDB_EINTERNAL (or HDB_EINVAL for bad parameters) with FAISS's
 * message, without a backtrace.
 */
#ifndef HDB_FAISS_H
#define HDB_FAISS_H

#include <stddef.h>
#include <stdint.h>

#include "hdb_topk.h"
#include "hdb_types.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct hdb_faiss hdb_faiss;

typedef struct {
    uint32_t dim;
    hdb_metric metric;   /* L2, IP or COSINE */
    const char *factory; /* FAISS index_factory string; copied */
    uint32_t nprobe;     /* default nprobe of IVF indexes, efSearch of HNSW ones; 0 = FAISS's
                            default (nprobe 1, efSearch 16) */
    uint64_t train_size; /* train once this many vectors are held; 0 = automatic: the most of
                            1000, 39 * nlist and 39 * PQ centroids (FAISS's k-means minimum).
                            When set it must be at least nlist and the PQ centroid count. */
} hdb_faiss_params;

/* Checks that the factory string builds an index for dim and metric, without keeping it.
 * Returns HDB_OK or HDB_EINVAL with FAISS's reason. */
int hdb_faiss_validate(const hdb_faiss_params *p, char *err, size_t errlen);

/* Creates an empty engine. Free with hdb_faiss_free. */
int hdb_faiss_create(hdb_faiss **out, const hdb_faiss_params *p, char *err, size_t errlen);

/* Releases the engine. NULL is allowed. */
void hdb_faiss_free(hdb_faiss *f);

/* Inserts or replaces n vectors (n x dim, finite, copied) under labels (>= 0, distinct within
 * the call; else HDB_EINVAL and nothing changes). May train the index when it reaches
 * train_size (on at most max(10000, 256 * centroids) of the held vectors, a fixed-seed sample);
 * if that training fails the vectors stay stored and searched exactly, and HDB_EINTERNAL says
 * so. */
int hdb_faiss_upsert(hdb_faiss *f, size_t n, const int64_t *labels, const float *vecs, char *err,
                     size_t errlen);

/* Removes these labels (absent ones are ignored); returns how many were removed. */
size_t hdb_faiss_remove(hdb_faiss *f, size_t n, const int64_t *labels);

/* Searches nq queries (nq x dim, not modified): out[i*k .. i*k+k) gets the k best hits of query
 * i, best first, padded with {+INFINITY, -1}. k must be >= 1. nprobe 0 uses the engine's
 * default; otherwise it is this call's IVF nprobe or HNSW efSearch (other index types, e.g.
 * IVF under Refine, always use the default). */
int hdb_faiss_search(hdb_faiss *f, size_t nq, const float *queries, size_t k, uint32_t nprobe,
                     hdb_hit *out, char *err, size_t errlen);

/* As hdb_faiss_search, returning only labels that acc accepts (NULL: all). Flat, IVF and HNSW
 * indexes skip refused vectors inside FAISS (an IDSelector); other kinds drop them from what
 * FAISS returns and search wider while a query is short of min(k, acc->max). */
int hdb_faiss_search_accept(hdb_faiss *f, size_t nq, const float *queries, size_t k,
                            uint32_t nprobe, const hdb_accept *acc, hdb_hit *out, char *err,
                            size_t errlen);

/* Live vectors held. */
size_t hdb_faiss_size(hdb_faiss *f);

/* Bytes of the FAISS index's codes (vector_bytes: ntotal x its code size; float32 while
 * untrained) and of what this engine keeps beside it (label maps, raw vectors kept for
 * rebuilds), approximately: a graph's or an inverted file's own links are not counted. Any
 * thread. */
void hdb_faiss_mem(hdb_faiss *f, uint64_t *vector_bytes, uint64_t *other_bytes);

/* 1 once searches are served by the trained FAISS index, 0 while still exact (untrained). An
 * index that cannot remove vectors (HNSW over SQ/PQ codes) and needs training can return to 0
 * when its rebuild finds fewer than train_size live vectors. */
int hdb_faiss_is_trained(hdb_faiss *f);

/* Writes the whole engine (FAISS index, labels, buffered vectors, hidden labels) to path, with a
 * magic/version header and a CRC-32C trailer. The caller fsyncs and renames. */
int hdb_faiss_save(hdb_faiss *f, const char *path, char *err, size_t errlen);

/* Loads an engine saved by hdb_faiss_save. p must match the saved dim, metric and factory
 * (else HDB_EINVAL); p's nprobe and train_size replace the saved ones. A damaged file gives
 * HDB_ECORRUPT and an unreadable one HDB_EIO, never a crash: nothing reaches FAISS before the
 * magic, version and checksum hold. */
int hdb_faiss_load(hdb_faiss **out, const hdb_faiss_params *p, const char *path, char *err,
                   size_t errlen);

/* Sets the number of OpenMP threads FAISS uses (process-wide; values < 1 mean 1). Call once at
 * startup. libgomp keeps this setting per thread, so every hdb_faiss call applies it to its
 * calling thread. */
void hdb_faiss_set_threads(int n);

/* Sets the OpenMP threads an upsert (its add and any training) uses, process-wide: n >= 1, or
 * 0 (the default) for the online cores; negative counts as 0. Upserts hold the engine's lock
 * exclusively, so more threads also shorten the searches' wait. Any thread, at any time. */
void hdb_faiss_set_build_threads(int n);

#ifdef __cplusplus
}
#endif

#endif /* HDB_FAISS_H */
