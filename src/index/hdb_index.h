/*
 * hdb_index.h - one index of a data source: a set of splits, each with its own engine.
 *
 * A split holds the points that share one tuple of split-attribute values; it is created on
 * its first point and searched only when a search selects it. Searches pick splits by a split
 * filter, search each picked engine and merge the per-split top-k. This module knows nothing of
 * storage or the catalog: the index's applier feeds it batches of changes in seq order and
 * records the seq it has applied; snapshots save and load all splits at once.
 *
 * Thread-safety: apply, search, status and save may run concurrently; the engines are
 * thread-safe and the split table has its own lock. There is one writer (the applier).
 */
#ifndef HDB_INDEX_H
#define HDB_INDEX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hdb_attrindex.h"
#include "hdb_engine.h"
#include "hdb_filter.h"
#include "hdb_topk.h"
#include "hdb_types.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct hdb_index hdb_index;

typedef struct {
    hdb_engine_spec engine;          /* the engine of every split */
    size_t nsplit;                   /* number of split attributes (0: one split) */
    const char *const *split_names;  /* in declared order; copied */
    const hdb_attr_type *split_types;
    size_t nindexed;                  /* attributes with an attribute index (0: none) */
    const char *const *indexed_names; /* copied */
} hdb_index_params;

/* Creates an empty index. Returns HDB_OK and *out, or HDB_EINVAL. Free with hdb_index_free. */
int hdb_index_create(hdb_index **out, const hdb_index_params *p, char *err, size_t errlen);

/* Releases the index and its engines. NULL is allowed. */
void hdb_index_free(hdb_index *ix);

/* One change. For an upsert, point holds the vector (dense or sparse, matching the engine) and
 * the attributes (sorted by name, including every split attribute). For a removal, point holds
 * at least the split attributes; its vector is ignored. */
typedef struct {
    int64_t label;
    bool remove;
    const hdb_point *point;
} hdb_index_op;

/* Applies n changes in order: when a label occurs more than once, its last change wins. Changes
 * are grouped per split and passed to the engines in batches. Returns HDB_OK, HDB_ECORRUPT when
 * a point lacks a split attribute, or an engine error. */
int hdb_index_apply(hdb_index *ix, size_t n, const hdb_index_op *ops, char *err, size_t errlen);

/* Single-change conveniences over hdb_index_apply. */
int hdb_index_upsert(hdb_index *ix, int64_t label, const hdb_point *point, char *err,
                     size_t errlen);
int hdb_index_remove(hdb_index *ix, int64_t label, const hdb_point *point, char *err,
                     size_t errlen);

/* Checks a split filter against the index's split attributes: every key must be a split
 * attribute, with its declared type. Errors name the key: split_filter["color"]: .... */
int hdb_index_check_filter(const hdb_index *ix, const hdb_attr *filter, size_t nfilter,
                           char *err, size_t errlen);

/* Searches nq queries in the splits selected by filter (checked with hdb_index_check_filter;
 * nfilter 0 selects all). out gets nq x k hits, best first per query, padded with
 * {+INFINITY, -1}. Scores are "smaller is better"; hdb_index_distance turns them into API
 * distances. opts may be NULL. */
int hdb_index_search(hdb_index *ix, size_t nq, const hdb_vecs *queries, size_t k,
                     const hdb_search_opts *opts, const hdb_attr *filter, size_t nfilter,
                     hdb_hit *out, char *err, size_t errlen);

/* The labels that may pass the attribute filter f according to the index's attribute
 * indexes (hdb_attrindex_select): a new set in *out (free with hdb_labelset_free) and whether
 * it is exact, or *out NULL when there are no attribute indexes or they cannot narrow f. Any
 * thread. */
void hdb_index_select(hdb_index *ix, const hdb_filter *f, hdb_labelset **out, bool *exact);

/* The index's attribute indexes, or NULL when it declares none (for status). */
hdb_attrindex *hdb_index_attrs(hdb_index *ix);

/* Converts an internal score of this metric into the API's distance (see catalog.proto). */
float hdb_index_distance(hdb_metric metric, float score);

/* The spec every split's engine was created with. */
const hdb_engine_spec *hdb_index_engine_spec(const hdb_index *ix);

/* Records that every timeline entry up to seq has been applied. */
void hdb_index_set_applied(hdb_index *ix, uint64_t seq);
uint64_t hdb_index_applied(const hdb_index *ix);

/* Points in all splits. */
uint64_t hdb_index_size(hdb_index *ix);

/* Points in the splits that filter selects (all splits when nfilter is 0). */
uint64_t hdb_index_size_matching(hdb_index *ix, const hdb_attr *filter, size_t nfilter);

/* True when a point with these attributes (sorted by name) belongs to a split that filter
 * selects. */
bool hdb_index_point_matches(const hdb_index *ix, const hdb_point *p, const hdb_attr *filter,
                             size_t nfilter);

/* Number of splits. */
size_t hdb_index_nsplits(hdb_index *ix);

/* The engines' memory, all splits together (hdb_engine_mem). Any thread. */
void hdb_index_mem(hdb_index *ix, hdb_engine_memory *out);

/* Calls fn once per split with its split values (nsplit values in declared order; valid only
 * during the call) and its size. Splits are visited in creation order. */
void hdb_index_foreach_split(hdb_index *ix,
                             void (*fn)(const hdb_value *values, size_t n, uint64_t size,
                                        void *arg),
                             void *arg);

/* A one-line note on the engines' state for index status (e.g. untrained FAISS splits). */
void hdb_index_describe(hdb_index *ix, char *buf, size_t buflen);

/* Writes a snapshot of every split into dir (created if needed) as holding seq: one engine
 * file per split, then a MANIFEST that names them, each written to a temporary name, fsynced
 * and renamed; files of older snapshots are removed afterwards. A crash at any point leaves
 * either the old snapshot or the new one. The attribute indexes, if any, go into a file of
 * their own that the MANIFEST names. The caller must not apply changes meanwhile. */
int hdb_index_save(hdb_index *ix, const char *dir, uint64_t seq, char *err, size_t errlen);

/* Loads the snapshot in dir for params p. On success *out is a new index with its applied seq
 * set, and *seq / *time_us tell which seq it holds and when it was written. HDB_ENOTFOUND when
 * dir holds no snapshot; HDB_ECORRUPT (with the reason) when it is damaged, was written for
 * another engine spec, or lacks attribute indexes that p declares (the caller rebuilds). */
int hdb_index_load(hdb_index **out, const hdb_index_params *p, const char *dir, uint64_t *seq,
                   int64_t *time_us, char *err, size_t errlen);

/* Copies the durable snapshot in dir into dst (which must exist and be empty) while the index
 * goes on applying and saving: hard links where the file system allows (snapshot files are
 * never changed once written), copies otherwise. When a newer snapshot replaces the one being
 * copied, the copy starts over with the newer one. *seq receives the seq of the copied
 * snapshot, and *bytes (not NULL) grows by the bytes it holds. HDB_ENOTFOUND when dir holds no
 * snapshot; HDB_ECORRUPT, HDB_EIO. Any thread. */
int hdb_index_snapshot_copy(const char *dir, const char *dst, uint64_t *seq, uint64_t *bytes,
                            char *err, size_t errlen);

#ifdef __cplusplus
}
#endif

#endif /* HDB_INDEX_H */
