/*
 * hdb_engine.h - one C interface over every search engine: flat (exact, dense), FAISS (any
 * index_factory string), HNSW (hnswlib) and sparse (exact inverted index).
 *
 * An engine holds the vectors of one split under int64 labels (point ids). Scores are "smaller
 * is better" (hdb_topk); the index layer turns them into API distances. Every engine is
 * thread-safe: searches run concurrently with each other and with the one writer (the index's
 * applier); engines that cannot do that lock inside.
 */
#ifndef HDB_ENGINE_H
#define HDB_ENGINE_H

#include <stddef.h>
#include <stdint.h>

#include "hdb_clock.h"
#include "hdb_quant.h"
#include "hdb_topk.h"
#include "hdb_types.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
    HDB_ALGO_FLAT = 1,
    HDB_ALGO_FAISS = 2,
    HDB_ALGO_HNSW = 3,
    HDB_ALGO_SPARSE = 4
} hdb_algo;

/* What an engine is: fixed for the life of an index. */
typedef struct {
    hdb_algo algo;
    uint32_t dim;
    hdb_metric metric;
    /* FAISS */
    char factory[256];
    uint32_t nprobe;
    uint64_t train_size;
    /* HNSW */
    uint32_t m, ef_construction, ef_search;
    hdb_vec_storage storage; /* how the graph keeps vectors (0 = float32) */
    uint32_t oversample;     /* candidates per result rescored exactly; 0 = automatic */
} hdb_engine_spec;

/* Candidates per result a search should take from the engine and rescore from the exact
 * vectors: spec->oversample, or by default 1 for exact codes (float32) and 2 for float16 and
 * int8 graphs. Any thread. */
uint32_t hdb_engine_oversample(const hdb_engine_spec *spec);

/* Per-search settings; 0 keeps the engine's default. */
typedef struct {
    uint32_t ef_search;
    uint32_t nprobe;
    /* When to give up (deadline, cancelled call); NULL: never. Engines look at it between
     * queries (in chunks sized to a few ms of work) and inside long exact scans, and then
     * return HDB_ETIMEOUT or HDB_ECANCELLED. */
    const hdb_stop *stop;
    /* Which labels may be returned (a filter's label set); NULL: all. Engines skip or walk
     * through the others (hdb_accept). */
    const hdb_accept *accept;
} hdb_search_opts;

/* A batch of n vectors of one kind: dense (n x dim, row-major) or sparse (n entries). */
typedef struct {
    const float *dense;
    const hdb_sparse_vec *sparse;
} hdb_vecs;

typedef struct hdb_engine hdb_engine;

/* Returns "flat", "faiss", "hnsw" or "sparse". */
const char *hdb_algo_name(hdb_algo algo);

/* Checks a spec (ranges, metric fits the algorithm, FAISS factory builds) without creating an
 * engine. Messages name the metric "spec.metric" and the algorithm's fields under `algorithm`,
 * the caller's name for the algorithm message (NULL: "spec.algorithm"; a model space says
 * "spec.index"). Any thread. */
int hdb_engine_check(const hdb_engine_spec *spec, const char *algorithm, char *err,
                     size_t errlen);

/* Creates an empty engine. Free with hdb_engine_free. */
int hdb_engine_create(hdb_engine **out, const hdb_engine_spec *spec, char *err, size_t errlen);

/* Releases the engine. NULL is allowed. */
void hdb_engine_free(hdb_engine *e);

/* Inserts or replaces n vectors under labels (>= 0, distinct within the call). */
int hdb_engine_upsert(hdb_engine *e, size_t n, const int64_t *labels, const hdb_vecs *vecs,
                      char *err, size_t errlen);

/* Removes labels (absent ones ignored); returns how many were removed. */
size_t hdb_engine_remove(hdb_engine *e, size_t n, const int64_t *labels);

/* Searches nq queries (same kind as the engine's vectors); out gets k hits per query, best
 * first, padded with {+INFINITY, -1}. opts may be NULL. Once opts->stop says so, returns
 * HDB_ETIMEOUT or HDB_ECANCELLED (out then holds nothing usable). */
int hdb_engine_search(hdb_engine *e, size_t nq, const hdb_vecs *queries, size_t k,
                      const hdb_search_opts *opts, hdb_hit *out, char *err, size_t errlen);

/* Vectors held. */
size_t hdb_engine_size(hdb_engine *e);

/* Memory an engine holds, approximately: its vectors as it keeps them (float32 rows, codes,
 * non-zeros) and the rest (graph links, posting lists, label maps). */
typedef struct {
    uint64_t vector_bytes, other_bytes;
} hdb_engine_memory;

/* Writes e's memory into out. Any thread, concurrently with searches and writes. */
void hdb_engine_mem(hdb_engine *e, hdb_engine_memory *out);

/* Writes the engine to path (the engine's own checked format). The caller fsyncs and renames. */
int hdb_engine_save(hdb_engine *e, const char *path, char *err, size_t errlen);

/* Loads an engine saved with the same spec. HDB_ECORRUPT for a damaged file, HDB_EINVAL when it
 * was saved with another spec, HDB_EIO when it cannot be read. */
int hdb_engine_load(hdb_engine **out, const hdb_engine_spec *spec, const char *path, char *err,
                    size_t errlen);

/* A short state note for index status (e.g. "exact until 1000 points, then trains"), written
 * into buf; empty when there is nothing to say. */
void hdb_engine_describe(hdb_engine *e, char *buf, size_t buflen);

#ifdef __cplusplus
}
#endif

#endif /* HDB_ENGINE_H */
