/*
 * hdb_codec.h - conversions between the API's protobuf-c messages and the domain types.
 *
 * Inbound conversions check what can be checked without a schema: a value is set, strings and
 * bytes are within limits.max_value_bytes, attribute names are well-formed and unique, vectors
 * are present. Every message names the offending field with the path given by the caller, e.g.
 * `points[3].attributes["color"]: value is not set`. Outbound conversions allocate the messages
 * from the per-call arena; they borrow string and byte contents from their inputs, which must
 * outlive the packed response.
 *
 * Thread-safety: pure conversions; any thread, each call on its own arena.
 */
#ifndef HDB_CODEC_H
#define HDB_CODEC_H

#include <stddef.h>
#include <stdint.h>

#include "hdb_filter.h"
#include "hdb_types.h"
#include "hilbert/v1/catalog.pb-c.h"
#include "hilbert/v1/points.pb-c.h"
#include "hilbert/v1/search.pb-c.h"
#include "hilbert/v1/types.pb-c.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct hdb_arena hdb_arena;

/* A key/value view of one protobuf map entry; every map<string, AttributeValue> entry type of
 * the API converts to this. */
typedef struct {
    const char *key;
    const Hilbert__V1__AttributeValue *value;
} hdb_kv;

/* Copies the key and value pointers of a map field (entries of any generated
 * *__AttributesEntry-like type) into an arena array of hdb_kv. */
#define HDB_KV_VIEW(arena, entries, n, out)                                                        \
    do {                                                                                           \
        (out) = hdb_arena_alloc((arena), ((n) ? (n) : 1) * sizeof(hdb_kv));                        \
        for (size_t hdb_kv_i_ = 0; hdb_kv_i_ < (n); hdb_kv_i_++) {                                 \
            (out)[hdb_kv_i_].key = (entries)[hdb_kv_i_]->key;                                      \
            (out)[hdb_kv_i_].value = (entries)[hdb_kv_i_]->value;                                  \
        }                                                                                          \
    } while (0)

/* Converts a Filter message (NULL: no filter, *out NULL) into a tree in arena, whose strings
 * point into the message. Checks the shape that needs no schema (a kind and a test set, range
 * ends not given twice, values set and within max_value_bytes, the sizes of
 * hdb_filter.h); hdb_filter_check does the rest. `what` names the field ("filter"). */
int hdb_codec_filter_in(const Hilbert__V1__Filter *in, uint32_t max_value_bytes,
                        const char *what, hdb_arena *arena, hdb_filter **out, char *err,
                        size_t errlen);

/* Converts one attribute value. `what` names the field for messages. */
int hdb_codec_value_in(const Hilbert__V1__AttributeValue *in, uint32_t max_value_bytes,
                       const char *what, hdb_value *out, char *err, size_t errlen);

/* Converts n map entries into an arena array of attributes sorted by name. Checks: at most
 * max_attrs entries (HDB_ELIMIT), names 1..128 bytes without control characters, no name
 * twice, every value set and within max_value_bytes. Strings point into the message. */
int hdb_codec_attrs_in(const hdb_kv *kv, size_t n, uint32_t max_attrs, uint32_t max_value_bytes,
                       const char *what, hdb_arena *arena, hdb_attr **out, uint32_t *nout,
                       char *err, size_t errlen);

/* Reads the vector of a point or query (dense or sparse) into out (vec/dim, or sparse/sp),
 * borrowing the message's arrays. A sparse vector needs as many values as indices. Messages
 * name it as <what>[index].vector. */
int hdb_codec_vector_in(const Hilbert__V1__Vector *v, const char *what, size_t index,
                        hdb_point *out, char *err, size_t errlen);

/* Converts a DataPoint into domain form (attributes sorted; the vector points into the
 * message). Schema checks (dimension, permanent attributes) come later, in ingest. */
int hdb_codec_point_in(const Hilbert__V1__DataPoint *in, uint32_t max_attrs,
                       uint32_t max_value_bytes, size_t index, hdb_arena *arena, hdb_point *out,
                       char *err, size_t errlen);

/* Builds an AttributeValue for v in arena memory. */
Hilbert__V1__AttributeValue *hdb_codec_value_out(const hdb_value *v, hdb_arena *arena);

/* Builds the entries of a map<string, AttributeValue> field of generated type EntryType
 * (initialised with init_fn) from n attributes, into `out` (EntryType **). Keys and values
 * borrow from attrs. */
#define HDB_ATTRS_OUT(arena, attrs, n, EntryType, init_fn, out)                                    \
    do {                                                                                           \
        EntryType **hdb_e_ = hdb_arena_alloc((arena), ((n) ? (n) : 1) * sizeof *hdb_e_);           \
        for (size_t hdb_i_ = 0; hdb_i_ < (n); hdb_i_++) {                                          \
            hdb_e_[hdb_i_] = hdb_arena_alloc((arena), sizeof(EntryType));                          \
            init_fn(hdb_e_[hdb_i_]);                                                               \
            hdb_e_[hdb_i_]->key = (char *)(attrs)[hdb_i_].name;                                    \
            hdb_e_[hdb_i_]->value = hdb_codec_value_out(&(attrs)[hdb_i_].value, (arena));          \
        }                                                                                          \
        (out) = hdb_e_;                                                                            \
    } while (0)

/* Builds the Vector message of a point (dense or sparse), borrowing its arrays. */
Hilbert__V1__Vector *hdb_codec_point_vector_out(const hdb_point *p, hdb_arena *arena);

/* Builds a dense Vector message borrowing vec (dim floats). */
Hilbert__V1__Vector *hdb_codec_vector_out(const float *vec, uint32_t dim, hdb_arena *arena);

#ifdef __cplusplus
}
#endif

#endif /* HDB_CODEC_H */
