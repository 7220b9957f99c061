/*
 * hdb_query.h - the search path: validate a k-NN request against an index, search the splits
 * it selects, and attach each hit's attributes (and vector, on request) from the points column
 * family. Deleted points never come back: a hit whose point is gone by the time its attributes
 * are read is dropped.
 */
#ifndef HDB_QUERY_H
#define HDB_QUERY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

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
    const float *vec; /* NULL when the client sent no dense vector */
    size_t dim;
} hdb_query_vec;

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
 * limits.max_k, every query dense with the index's dimension and finite, non-zero under cosine,
 * and the split filter (attributes sorted, from hdb_codec_attrs_in). results (nq slots) and all
 * hit memory come from arena. */
int hdb_query_search(hdb_ixent *ix, const hdb_config *cfg, const hdb_query_vec *queries,
                     size_t nq, int64_t k, const hdb_attr *filter, size_t nfilter,
                     hdb_arena *arena, hdb_query_result *results, char *err, size_t errlen);

#ifdef __cplusplus
}
#endif

#endif /* HDB_QUERY_H */
