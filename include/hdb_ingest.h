/*
 * hdb_ingest.h - the write path of a data source (Upload) and its point reads (Get).
 *
 * Upload validates a batch against the source's schema (dimension, finite components,
 * permanent and id attributes with their types), then commits it through the source's
 * group-commit queue as one atomic write: for every point the new record, its identity key and
 * a timeline entry with a fresh seq. Inside the queue it checks what needs the stored state
 * (a permanent attribute must not change) and, once durable, applies the batch to every index
 * of the source. A batch is accepted whole or rejected whole.
 */
#ifndef HDB_INGEST_H
#define HDB_INGEST_H

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
typedef struct hdb_source hdb_source;
typedef struct hdb_snap hdb_snap;

/* Writes n points (domain form, attributes sorted, from hdb_codec_point_in) to src. Points and
 * their memory belong to the caller (arena); this function allocates scratch from arena too.
 * On success *first_seq..*last_seq are the seqs of points[0..n). Errors: HDB_EINVAL naming the
 * field (points[i]...), HDB_ELIMIT for too many points, HDB_ENOTFOUND if the source was dropped,
 * HDB_EIO for storage failures. Nothing is written unless HDB_OK is returned. */
int hdb_ingest_upload(hdb_source *src, const hdb_config *cfg, const hdb_point *points, size_t n,
                      hdb_arena *arena, uint64_t *first_seq, uint64_t *last_seq, char *err,
                      size_t errlen);

/* Writes points[i] (npoints[i] of them) to srcs[i] for every i, atomically: all of them in one
 * write, or nothing. The sources must be distinct. On success first_seqs[i] is the seq of
 * points[i][0] in srcs[i]. On failure *failed is the index of the source whose points were
 * refused (the message is that source's, e.g. points[0].attributes["color"]: ...). */
int hdb_ingest_upload_many(hdb_source *const *srcs, const hdb_point *const *points,
                           const size_t *npoints, size_t nsrc, const hdb_config *cfg,
                           hdb_arena *arena, uint64_t *first_seqs, size_t *failed, char *err,
                           size_t errlen);

/* Checks a sparse vector: indices strictly increasing and below dim, values finite. Messages
 * name it as <what>[i].vector.sparse.indices[j] (or .values[j]). */
int hdb_ingest_check_sparse(const hdb_sparse_vec *v, uint32_t dim, const char *what, size_t i,
                            char *err, size_t errlen);

/* The result of reading one point. */
typedef struct {
    bool found;
    uint64_t pid;
    hdb_record rec; /* when found; memory in the caller's arena */
} hdb_get_result;

/* Reads n points by id attributes from one consistent snapshot. ids[i] (nids[i] attributes,
 * sorted by name) must hold exactly the source's id attributes with their types; errors name
 * them as ids[i].id_attributes["name"]. out has n slots. */
int hdb_ingest_get(hdb_source *src, const hdb_config *cfg, hdb_attr *const *ids,
                   const uint32_t *nids, size_t n, hdb_arena *arena, hdb_get_result *out,
                   char *err, size_t errlen);

/* Reads points by pid (the labels that engines return) from one snapshot, for attaching
 * attributes to search hits. out[i].found is false for a pid that no longer exists. */
int hdb_ingest_get_pids(hdb_source *src, const uint64_t *pids, size_t n, hdb_arena *arena,
                        hdb_get_result *out, char *err, size_t errlen);

/* As hdb_ingest_get_pids, reading from the store snapshot snap (or the latest state when
 * NULL). */
int hdb_ingest_get_pids_at(hdb_source *src, const hdb_snap *snap, const uint64_t *pids,
                           size_t n, hdb_arena *arena, hdb_get_result *out, char *err,
                           size_t errlen);

#ifdef __cplusplus
}
#endif

#endif /* HDB_INGEST_H */
