/*
 * hdb_query.h - the search path: validate a k-NN request against an index, wait for min_seq if
 * asked, search the splits it selects, and attach each hit's attributes (and vector, on
 * request) from the points column family.
 *
 * Engine hits are candidates: each is re-scored exactly against the vector of the record that
 * is returned with it, so a distance always matches its point, approximate engine distances
 * become exact, and a point replaced since the engine saw it is scored as it is now. A point
 * deleted meanwhile is dropped, and the engine is asked for more candidates when that leaves a
 * query short. So deleted and stale points never come back.
 *
 * Thread-safety: any thread, concurrently; the index's applier is the only writer of what a
 * search reads, and a search holds references to the index entry it was given.
 */
#ifndef HDB_QUERY_H
#define HDB_QUERY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hdb_engine.h"
#include "hdb_record.h"
#include "hdb_types.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct hdb_arena hdb_arena;
typedef struct hdb_config hdb_config;
typedef struct hdb_ixent hdb_ixent;

/* One query vector as it came from the client (not yet checked). */
typedef struct {
    bool present;     /* false when the client sent no vector */
    bool sparse;
    const float *vec; /* dense */
    size_t dim;
    hdb_sparse_vec sp; /* sparse */
} hdb_query_vec;

typedef struct {
    int64_t k;
    uint64_t min_seq;       /* 0: no wait */
    hdb_search_opts opts;   /* ef_search / nprobe overrides */
    const hdb_attr *filter; /* sorted by name, from hdb_codec_attrs_in */
    size_t nfilter;
    int64_t deadline_ns;    /* CLOCK_MONOTONIC; INT64_MAX for none */
} hdb_query_params;

typedef struct {
    float distance; /* API distance (see catalog.proto, Metric) */
    uint64_t pid;
    hdb_record rec; /* the point: attributes, and its vector */
} hdb_query_hit;

typedef struct {
    hdb_query_hit *hits; /* best first */
    size_t n;
} hdb_query_result;

/* Runs a search. Checks: 1 <= nq <= limits.max_query_vectors (HDB_ELIMIT above), 1 <= k <=
 * limits.max_k, nq x k <= limits.max_results (HDB_ELIMIT), every query of the source's kind and
 * dimension, finite, non-empty and (cosine) non-zero, min_seq not past the source's last seq,
 * and the split filter. Waits for min_seq up to the deadline and limits.max_wait_ms
 * (HDB_ETIMEOUT). HDB_EUNAVAIL while the index is building or after it failed. results (nq
 * slots) and all hit memory come from arena; *applied_seq receives the seq the index had
 * applied when it was searched. */
int hdb_query_search(hdb_ixent *ix, const hdb_config *cfg, const hdb_query_vec *queries,
                     size_t nq, const hdb_query_params *qp, hdb_arena *arena,
                     hdb_query_result *results, uint64_t *applied_seq, char *err, size_t errlen);

#ifdef __cplusplus
}
#endif

#endif /* HDB_QUERY_H */
