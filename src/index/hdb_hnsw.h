/*
 * hdb_hnsw.h - an HNSW graph as a HilbertDB engine: the C face of hdb_hnsw_bridge.cpp, built on
 * the header-only hnswlib (Debian's libhnswlib-dev) with HilbertDB's own distance kernels, so the
 * host's SIMD (AVX-512, AVX2 or scalar) is chosen at run time.
 *
 * Upsert of an existing label updates its vector in place (and its graph links); remove marks it
 * deleted, so it never appears in results; a later upsert of that label revives the slot. Slots
 * of deleted labels are reused for new labels, so a churning workload does not grow the graph
 * without bound. The capacity grows as needed.
 *
 * Scores follow hdb_topk: smaller is better. L2: squared distance; INNER_PRODUCT: -<q,x>;
 * COSINE: 1 - cos over normalised vectors.
 *
 * Storage. The graph keeps each vector as float32 (the default), float16 or int8 codes
 * (hdb_quant.h): the walk then ranks by the codes' distances, so scores are approximate and
 * the caller rescores its hits from the exact vectors. An int8 graph trains its quantizer on
 * its first train_size points: until then it holds them as float32 aside and answers by an
 * exact scan of them; the upsert that reaches train_size trains and moves them into the graph
 * (under one exclusive hold, once in the graph's life).
 *
 * Thread-safety: any number of concurrent searches, concurrently with one writer (upsert or
 * remove); writers are serialised inside. No C++ exception crosses this interface.
 */
#ifndef HDB_HNSW_H
#define HDB_HNSW_H

#include <stddef.h>
#include <stdint.h>

#include "hdb_quant.h"
#include "hdb_topk.h"
#include "hdb_types.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct hdb_hnsw hdb_hnsw;

typedef struct {
    uint32_t dim;
    hdb_metric metric;        /* L2, IP or COSINE */
    uint32_t m;               /* links per node; 0 = 16 */
    uint32_t ef_construction; /* 0 = 200 */
    uint32_t ef_search;       /* default ef at search time; 0 = 64 */
    uint64_t seed;            /* level generator seed; 0 = 100 */
    hdb_vec_storage storage;  /* how the graph keeps vectors; 0 = float32 */
    uint32_t train_size;      /* int8: points the quantizer trains on; 0 = 1000 */
} hdb_hnsw_params;

/* Creates an empty graph. Returns HDB_EINVAL for bad parameters. Free with hdb_hnsw_free. */
int hdb_hnsw_create(hdb_hnsw **out, const hdb_hnsw_params *p, char *err, size_t errlen);

/* Releases the graph. NULL is allowed. */
void hdb_hnsw_free(hdb_hnsw *h);

/* Inserts or updates n vectors (n x dim, copied) under labels (>= 0, distinct in the call).
 * A negative label or a non-finite component gives HDB_EINVAL before anything changes; more
 * than 2^31-1 slots give HDB_ELIMIT. Labels new to the graph beyond its free slots (a build)
 * are inserted by hdb_hnsw_build_threads() threads at once when there are at least 64 of
 * them; the graph then depends on thread timing (same recall, not the same links).
 * Updates and slot reuses run on the calling thread. Any thread may call it; writers are
 * serialised. */
int hdb_hnsw_upsert(hdb_hnsw *h, size_t n, const int64_t *labels, const float *vecs, char *err,
                    size_t errlen);

/* Marks these labels deleted (absent ones ignored); returns how many were live. */
size_t hdb_hnsw_remove(hdb_hnsw *h, size_t n, const int64_t *labels);

/* Searches nq queries (finite, else HDB_EINVAL); out gets k hits per query, best first, padded
 * with {+INFINITY, -1}. ef_search 0 uses the engine's default; the effective ef is at least k. */
int hdb_hnsw_search(hdb_hnsw *h, size_t nq, const float *queries, size_t k, uint32_t ef_search,
                    hdb_hit *out, char *err, size_t errlen);

/* As hdb_hnsw_search, returning only labels that acc accepts (NULL: all). The walk goes
 * through refused nodes without returning them, so it widens by itself as fewer pass; when
 * it still finds fewer than min(k, acc->max) it scans every accepted node. */
int hdb_hnsw_search_accept(hdb_hnsw *h, size_t nq, const float *queries, size_t k,
                           uint32_t ef_search, const hdb_accept *acc, hdb_hit *out, char *err,
                           size_t errlen);

/* Live (not deleted) vectors. */
size_t hdb_hnsw_size(hdb_hnsw *h);

/* Bytes of the vectors as the graph keeps them (codes, or float32 while an int8 graph waits
 * for training), for the slots in use (live and free); and of the rest: links, labels and
 * bookkeeping, and the slots allocated ahead of use. Any thread. */
typedef struct {
    uint64_t vector_bytes, graph_bytes;
} hdb_hnsw_memory;
void hdb_hnsw_mem(hdb_hnsw *h, hdb_hnsw_memory *out);

/* True once an int8 graph's quantizer is trained; always true for float32 and float16. */
bool hdb_hnsw_trained(hdb_hnsw *h);

/* Writes the graph with its parameters, a magic/version header and a CRC-32C trailer. path is
 * truncated and written in place (removed on failure, HDB_EIO); the caller fsyncs and renames.
 * Searches go on meanwhile; writers wait. */
int hdb_hnsw_save(hdb_hnsw *h, const char *path, char *err, size_t errlen);

/* Loads a graph saved by hdb_hnsw_save; p must match dim, metric and storage (else HDB_EINVAL;
 * files written before storage existed hold float32). A damaged file gives HDB_ECORRUPT, never
 * a crash, and an unreadable one HDB_EIO. m and ef_construction come from the file; ef_search,
 * seed and train_size from p when non-zero, else the file's (train_size: the default). */
int hdb_hnsw_load(hdb_hnsw **out, const hdb_hnsw_params *p, const char *path, char *err,
                  size_t errlen);

/* Sets the threads one upsert call uses to insert new labels, for every graph of the process:
 * n >= 1 threads, 0 (the default) = the online cores, capped at 256; negative counts as 0.
 * Takes effect at the next upsert call. Any thread may call it, at any time. */
void hdb_hnsw_set_build_threads(int n);

/* The thread count upserts currently use (0 resolved to the online cores). Any thread. */
int hdb_hnsw_build_threads(void);

#ifdef __cplusplus
}
#endif

#endif /* HDB_HNSW_H */
