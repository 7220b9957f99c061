/*
 * hdb_types.h - the domain types that flow between layers: attribute values, attributes,
 * data points and metrics, plus small helpers on them (names, comparison, identifier checks).
 *
 * These structs never own memory: strings, bytes and vectors point into memory that belongs to
 * someone else (usually the per-call arena or a decoded record), as documented where they are
 * produced.
 *
 * Thread-safety: no state; any thread.
 */
#ifndef HDB_TYPES_H
#define HDB_TYPES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Attribute types. The numbers equal hilbert.v1.AttributeType and are stored on disk. */
typedef enum {
    HDB_ATTR_STRING = 1,
    HDB_ATTR_INT64 = 2,
    HDB_ATTR_FLOAT64 = 3,
    HDB_ATTR_BOOL = 4,
    HDB_ATTR_BYTES = 5,
    HDB_ATTR_TIMESTAMP = 6 /* microseconds since the Unix epoch, UTC */
} hdb_attr_type;

#define HDB_ATTR_TYPE_MAX 6

/* Metrics. The numbers equal hilbert.v1.Metric and are stored on disk. JACCARD is for sparse
 * vectors only and treats them as sets of indices (values ignored). */
typedef enum {
    HDB_METRIC_L2 = 1,
    HDB_METRIC_IP = 2,
    HDB_METRIC_COSINE = 3,
    HDB_METRIC_JACCARD = 4
} hdb_metric;

/* A sparse vector: n (index, value) pairs, indices strictly increasing and below the data
 * source's dimension, values finite. The arrays are borrowed. */
typedef struct {
    const uint32_t *idx;
    const float *val;
    uint32_t n;
} hdb_sparse_vec;

/* A typed value. STRING and BYTES use `s` (not NUL-terminated in general); INT64 and TIMESTAMP
 * use `i`; FLOAT64 uses `f`; BOOL uses `b`. */
typedef struct {
    hdb_attr_type type;
    union {
        int64_t i;
        double f;
        bool b;
        struct {
            const char *p;
            size_t n;
        } s;
    } u;
} hdb_value;

/* A named attribute. `name` is NUL-terminated. */
typedef struct {
    const char *name;
    hdb_value value;
} hdb_attr;

/* A data point in domain form. A dense point has vec (dim floats); a sparse point has
 * sparse == true and its entries in sp (possibly none). A tombstone has neither (vec NULL,
 * sparse false) and attrs hold its id attributes. */
typedef struct {
    const float *vec; /* dense: dim floats; NULL otherwise */
    uint32_t dim;
    bool sparse;
    hdb_sparse_vec sp; /* when sparse */
    hdb_attr *attrs;   /* sorted by name (strcmp) once validated */
    uint32_t nattrs;
    bool deleted;
} hdb_point;

/* Returns "string", "int64", ... for a type, or "unknown". Never NULL. */
const char *hdb_attr_type_name(int type);

/* Parses a type name as written in configs ("string", "int64", "float64", "bool", "bytes",
 * "timestamp"; case-insensitive) into *out. Returns 0, or -1 when unknown. */
int hdb_attr_type_parse(const char *name, hdb_attr_type *out);

/* Returns "l2", "inner_product", "cosine", "jaccard", or "unknown". Never NULL. */
const char *hdb_metric_name(int metric);

/* Parses "l2", "inner_product" (or "ip"), "cosine", "jaccard" into *out. Returns 0, or -1
 * when unknown. */
int hdb_metric_parse(const char *name, hdb_metric *out);

/* Total order on values: first by type, then by value (bytes compared with memcmp, then by
 * length; doubles by IEEE total order). Returns <0, 0 or >0. */
int hdb_value_cmp(const hdb_value *a, const hdb_value *b);

/* Writes a short human-readable rendering of v into buf (always NUL-terminated when
 * buflen > 0; long strings are cut with "..."). Returns buf. */
char *hdb_value_format(const hdb_value *v, char *buf, size_t buflen);

/* Finds the attribute called name in attrs (sorted by name when sorted is true, else scanned).
 * Returns a pointer into attrs or NULL. */
const hdb_attr *hdb_attr_find(const hdb_attr *attrs, size_t n, const char *name, bool sorted);

/* Sorts attrs by name in place. */
void hdb_attrs_sort(hdb_attr *attrs, size_t n);

/* Returns 1 when every component is finite (no NaN or +-Inf), else 0; when 0 and bad_index is
 * not NULL, stores the index of the first bad component there. */
int hdb_all_finite(const float *a, size_t d, size_t *bad_index);

/* Checks a sparse vector: indices strictly increasing and below dim, values finite. On failure
 * returns HDB_EINVAL with a message naming vector.sparse.indices[j] (or .values[j]); the caller
 * prefixes the path of the vector's owner (e.g. "points[3]."). */
int hdb_sparse_check(const hdb_sparse_vec *v, uint32_t dim, char *err, size_t errlen);

#define HDB_NAME_MAX 128

/* Checks that s is a valid catalog name or version: 1..HDB_NAME_MAX characters from
 * [A-Za-z0-9_.-]. On failure writes "<what>: ..." into err and returns HDB_EINVAL. */
int hdb_name_check(const char *what, const char *s, char *err, size_t errlen);

#ifdef __cplusplus
}
#endif

#endif /* HDB_TYPES_H */
