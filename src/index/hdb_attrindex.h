/*
 * hdb_attrindex.h - the attribute indexes of one index: for each attribute the index declares
 * (spec.indexed_attributes), a posting bitmap (CRoaring) per value for equality conditions and
 * the values in sorted chunks for range conditions, over the labels (point ids) of the index.
 *
 * The index keeps it current as it applies changes (hdb_attrindex_put / _remove, in seq order),
 * snapshots save it next to the engines, and filtered searches ask it which labels may pass a
 * filter (hdb_attrindex_select). The answer is a label set that holds every label that passes;
 * it is exact when every condition that matters is on an indexed attribute, and otherwise a
 * superset that the caller narrows by evaluating the filter on the points. So an index never
 * makes a search wrong, only faster.
 *
 * What is indexed: string, int64, bool, bytes and timestamp values get postings (equals,
 * one_of); int64 and float64 values are kept sorted as numbers, timestamps as timestamps
 * (range); `exists` uses the labels that carry the attribute, and `negate` the labels of the
 * whole index. A value's type is the point's own (payload attributes differ per point).
 *
 * Labels must lie in [0, 2^32). One outside that range makes the index give up for good
 * (select then answers "no narrowing"), so it is never wrong.
 *
 * Thread-safety: one writer (put, remove, load) and any number of concurrent readers (select,
 * stats, save), under a reader-writer lock inside. Label sets are immutable and owned by
 * whoever got them; any thread may read one.
 */
#ifndef HDB_ATTRINDEX_H
#define HDB_ATTRINDEX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hdb_filter.h"
#include "hdb_types.h"

#ifdef __cplusplus
extern "C" {
#endif

/* At most this many indexed attributes per index. */
#define HDB_ATTRINDEX_MAX 32

typedef struct hdb_attrindex hdb_attrindex;
typedef struct hdb_labelset hdb_labelset;

/* Creates empty indexes on n attributes (names copied; 1 <= n <= HDB_ATTRINDEX_MAX, distinct).
 * Free with hdb_attrindex_free. HDB_EINVAL for a bad list. */
int hdb_attrindex_create(hdb_attrindex **out, size_t n, const char *const *names, char *err,
                         size_t errlen);

/* Releases everything. NULL is allowed. */
void hdb_attrindex_free(hdb_attrindex *ai);

/* The number of indexed attributes, and the name of attribute i (owned by ai). */
size_t hdb_attrindex_nattrs(const hdb_attrindex *ai);
const char *hdb_attrindex_name(const hdb_attrindex *ai, size_t i);

/* Records that label now has attrs (sorted by name; only the indexed ones are kept, copied),
 * replacing whatever it had. The writer only. */
void hdb_attrindex_put(hdb_attrindex *ai, int64_t label, const hdb_attr *attrs, size_t nattrs);

/* Forgets label (absent labels are ignored). The writer only. */
void hdb_attrindex_remove(hdb_attrindex *ai, int64_t label);

/* The labels that may pass f (checked with hdb_filter_check), as a new set in *out, or NULL
 * when the indexes cannot narrow f (no condition that bounds it is on an indexed attribute,
 * or the index gave up). *exact is true when the set is exactly the labels that pass. Any
 * thread. */
void hdb_attrindex_select(hdb_attrindex *ai, const hdb_filter *f, hdb_labelset **out,
                          bool *exact);

/* Labels held (every label put and not removed). */
uint64_t hdb_attrindex_size(hdb_attrindex *ai);

/* For index status: how many labels carry attribute i, its distinct equality values, and the
 * memory the index takes in all (bytes, approximate). */
void hdb_attrindex_stats(hdb_attrindex *ai, size_t i, uint64_t *labels, uint64_t *distinct);
uint64_t hdb_attrindex_bytes(hdb_attrindex *ai);

/* Writes the indexed values of every label to path (hdb_fwriter: CRC-32C trailer). The caller
 * renames it into place. Readers go on meanwhile; the writer waits. */
int hdb_attrindex_save(hdb_attrindex *ai, const char *path, char *err, size_t errlen);

/* Fills an empty ai (created with the same names) from a file of hdb_attrindex_save.
 * HDB_ECORRUPT for a damaged file or one of other attributes, HDB_EIO when unreadable. The
 * writer only. */
int hdb_attrindex_load(hdb_attrindex *ai, const char *path, char *err, size_t errlen);

/* ---- label sets ---- */

/* True when label is in s. Any thread, without locks: fast enough for every node an engine
 * visits. */
bool hdb_labelset_has(const hdb_labelset *s, int64_t label);

/* The labels in s. */
uint64_t hdb_labelset_count(const hdb_labelset *s);

/* Copies up to max labels of s, in increasing order, starting at rank `from`, into out;
 * returns how many. */
size_t hdb_labelset_read(const hdb_labelset *s, uint64_t from, int64_t *out, size_t max);

/* Releases s. NULL is allowed. */
void hdb_labelset_free(hdb_labelset *s);

#ifdef __cplusplus
}
#endif

#endif /* HDB_ATTRINDEX_H */
