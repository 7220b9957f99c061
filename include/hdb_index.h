/*
 * hdb_index.h - one index of a data source: a set of splits, each with its own engine.
 *
 * A split holds the points that share one tuple of split-attribute values; it is created on
 * its first point. Searches pick splits by a split filter, search each picked engine and merge
 * the per-split top-k. This module knows nothing of storage or the catalog: the ingest path
 * feeds it upserts and removals in seq order, and records the seq it has applied.
 *
 * Thread-safety: upsert/remove/search/status may be called from any threads. Searches run in
 * parallel with each other; an upsert or removal locks only the split it touches.
 */
#ifndef HDB_INDEX_H
#define HDB_INDEX_H

#include <stddef.h>
#include <stdint.h>

#include "hdb_topk.h"
#include "hdb_types.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct hdb_index hdb_index;

typedef struct {
    uint32_t dim;
    hdb_metric metric;
    size_t nsplit;                   /* number of split attributes (0: one split) */
    const char *const *split_names;  /* in declared order; copied */
    const hdb_attr_type *split_types;
} hdb_index_params;

/* Creates an empty index. Returns HDB_OK and *out, or HDB_EINVAL. Free with hdb_index_free. */
int hdb_index_create(hdb_index **out, const hdb_index_params *p, char *err, size_t errlen);

/* Releases the index and its engines. NULL is allowed. */
void hdb_index_free(hdb_index *ix);

/* Inserts or replaces the vector (dim floats) of label in the split named by the point's
 * attributes (attrs sorted by name; they must hold every split attribute). Returns HDB_OK, or
 * HDB_ECORRUPT when a split attribute is missing or mistyped. */
int hdb_index_upsert(hdb_index *ix, int64_t label, const float *vec, const hdb_attr *attrs,
                     size_t nattrs, char *err, size_t errlen);

/* Removes label from the split named by attrs (sorted by name). Absent labels are ignored. */
int hdb_index_remove(hdb_index *ix, int64_t label, const hdb_attr *attrs, size_t nattrs,
                     char *err, size_t errlen);

/* Checks a split filter against the index's split attributes: every key must be a split
 * attribute, with its declared type. Errors name the key: split_filter["color"]: .... */
int hdb_index_check_filter(const hdb_index *ix, const hdb_attr *filter, size_t nfilter,
                           char *err, size_t errlen);

/* Searches nq queries (nq x dim, row-major) in the splits selected by filter (checked with
 * hdb_index_check_filter; nfilter 0 selects all). out gets nq x k hits, best first per query,
 * padded with {+INFINITY, -1}. Scores are "smaller is better"; hdb_index_distance turns them
 * into API distances. Returns HDB_OK or HDB_EINVAL (bad filter). */
int hdb_index_search(hdb_index *ix, size_t nq, const float *queries, size_t k,
                     const hdb_attr *filter, size_t nfilter, hdb_hit *out, char *err,
                     size_t errlen);

/* Converts an internal score of this metric into the API's distance (see catalog.proto). */
float hdb_index_distance(hdb_metric metric, float score);

/* Records that every timeline entry up to seq has been applied. */
void hdb_index_set_applied(hdb_index *ix, uint64_t seq);
uint64_t hdb_index_applied(const hdb_index *ix);

/* Points in all splits. */
uint64_t hdb_index_size(hdb_index *ix);

/* Number of splits. */
size_t hdb_index_nsplits(hdb_index *ix);

/* Calls fn once per split with its split values (nsplit values in declared order; valid only
 * during the call) and its size. Splits are visited in no particular order. */
void hdb_index_foreach_split(hdb_index *ix,
                             void (*fn)(const hdb_value *values, size_t n, uint64_t size,
                                        void *arg),
                             void *arg);

#ifdef __cplusplus
}
#endif

#endif /* HDB_INDEX_H */
