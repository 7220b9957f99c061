/*
 * hdb_filter.h - attribute filters: a tree of all / any / not over conditions on a point's
 * attributes (equals, one of, ranges, exists), checked against a data source's permanent
 * attributes and evaluated on points.
 *
 * It sits in the index layer, below both readers of it: the server's codec builds a tree from
 * a hilbert.v1.Filter, the query layer checks it once per request (hdb_filter_check) and
 * evaluates it on every candidate point (hdb_filter_eval), and the ingest layer evaluates it
 * for DeleteByFilter. A tree and everything it points to belong to whoever built it (the request's arena); this
 * module never allocates.
 *
 * Semantics: a point that lacks an attribute fails every condition on it except
 * `exists: false`. A value of another type than the condition's fails (payload attributes
 * carry their type per point); int64 and float64 compare as numbers in ranges. Strings and
 * bytes compare bytewise.
 *
 * Thread-safety: pure functions over caller-owned data; any thread.
 */
#ifndef HDB_FILTER_H
#define HDB_FILTER_H

#include <stdbool.h>
#include <stddef.h>

#include "hdb_types.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Bounds on one filter, so that a request cannot make its evaluation arbitrarily costly. */
#define HDB_FILTER_MAX_CONDITIONS 256
#define HDB_FILTER_MAX_VALUES 4096 /* values in all one_of lists together */
#define HDB_FILTER_MAX_DEPTH 16

typedef enum {
    HDB_FILTER_ALL = 1, /* every kid passes */
    HDB_FILTER_ANY,     /* some kid passes */
    HDB_FILTER_NOT,     /* kids[0] fails */
    HDB_FILTER_EQUALS,  /* values[0] */
    HDB_FILTER_ONE_OF,  /* values[0 .. nvalues) */
    HDB_FILTER_RANGE,   /* lo / hi */
    HDB_FILTER_EXISTS   /* exists */
} hdb_filter_op;

typedef struct hdb_filter hdb_filter;

struct hdb_filter {
    hdb_filter_op op;
    /* ALL, ANY (1 or more), NOT (exactly 1) */
    const hdb_filter *kids;
    size_t nkids;
    /* conditions */
    const char *name; /* NUL-terminated attribute name */
    const hdb_value *values;
    size_t nvalues;
    bool has_lo, lo_incl, has_hi, hi_incl; /* RANGE: at least one end */
    hdb_value lo, hi;
    bool exists; /* EXISTS: true = has the attribute */
};

/* The permanent attributes a filter is checked against (a data source's, in any order). */
typedef struct {
    const char *name;
    hdb_attr_type type;
} hdb_filter_attr;

/* Checks the tree: its shape (lists not empty, the bounds above), each condition's value
 * types (equals / one_of: string, int64, bool, bytes or timestamp; range: int64, float64 or
 * timestamp, the ends of one range of one kind), and every condition on a permanent attribute
 * (perm[0..nperm)) against its declared type. Errors are HDB_EINVAL with the path of the
 * offending node below `path` (e.g. "filter.all.filters[2].condition.range: ..."). */
int hdb_filter_check(const hdb_filter *f, const char *path, const hdb_filter_attr *perm,
                     size_t nperm, char *err, size_t errlen);

/* True when a point with attrs (sorted by name) passes f. f must have passed
 * hdb_filter_check. */
bool hdb_filter_eval(const hdb_filter *f, const hdb_attr *attrs, size_t nattrs);

/* Counts the conditions in f (for plans and logs). */
size_t hdb_filter_conditions(const hdb_filter *f);

#ifdef __cplusplus
}
#endif

#endif /* HDB_FILTER_H */
