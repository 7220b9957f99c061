/*
 * hdb_ingest.h - the write path of a data source (Upload) and its point reads (Get).
 *
 * Upload validates a batch against the source's schema (dimension, finite components,
 * permanent and id attributes with their types), then commits it to the source's table as one
 * atomic job: for every point its new record, its identity key and a timeline entry with a
 * fresh seq (hdb_table.h). Inside the job it checks what needs the stored state (a permanent
 * attribute must not change). A batch is accepted whole or rejected whole; the table wakes the
 * source's indices once it is durable.
 *
 * Thread-safety: every function may be called from any thread; uploads to one source are
 * ordered by its commit queue.
 */
#ifndef HDB_INGEST_H
#define HDB_INGEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hdb_clock.h"
#include "hdb_filter.h"
#include "hdb_table.h"
#include "hdb_types.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct hdb_arena hdb_arena;
typedef struct hdb_catalog hdb_catalog;
typedef struct hdb_config hdb_config;
typedef struct hdb_source hdb_source;

/* Writes n points (domain form, attributes sorted, from hdb_codec_point_in) to src, a source of
 * cat. Points and their memory belong to the caller (arena); this function allocates scratch
 * from arena too. The points are validated first, then the write is admitted under
 * index.lag_mode (hdb_catalog_admit_write: it may wait for a lagging index up to deadline_ns,
 * CLOCK_MONOTONIC, INT64_MAX for none), then committed. On success *first_seq..*last_seq are
 * the seqs of points[0..n). Errors: HDB_EINVAL naming the field (points[i]...), HDB_ELIMIT for
 * too many points or a lagging index, HDB_ENOTFOUND if the source was dropped, HDB_EFULL when
 * the disk is full, HDB_EIO for storage failures. Nothing is written unless HDB_OK is
 * returned. */
int hdb_ingest_upload(hdb_catalog *cat, hdb_source *src, const hdb_config *cfg,
                      int64_t deadline_ns, const hdb_point *points, size_t n, hdb_arena *arena,
                      uint64_t *first_seq, uint64_t *last_seq, char *err, size_t errlen);

/* Writes points[i], one point, to srcs[i] for every i, atomically: all of them in one write,
 * or nothing. The sources must be distinct, and each is admitted as in hdb_ingest_upload. On
 * success seqs[i] is the seq of points[i] in srcs[i]. On failure *failed is the index of the
 * source whose point was refused, and the message names the field within that point
 * ("vector: ...", "attributes[\"color\"]: ..."): the caller prefixes its own path. Same errors
 * as hdb_ingest_upload otherwise. */
int hdb_ingest_upload_each(hdb_catalog *cat, hdb_source *const *srcs, const hdb_point *points,
                           size_t nsrc, const hdb_config *cfg, int64_t deadline_ns,
                           hdb_arena *arena, uint64_t *seqs, size_t *failed, char *err,
                           size_t errlen);

/* A payload change (SetPayload, DeletePayload): the attributes to set (sorted by name, none
 * permanent), then the names to remove. */
typedef struct {
    const hdb_attr *set;
    uint32_t nset;
    const char *const *unset;
    size_t nunset;
    const char *field; /* the request field messages name when both are empty */
} hdb_payload_change;

/* Applies ch to the n points named by ids (as for hdb_ingest_get): each gets a new version,
 * its stored vector and permanent attributes with the payload changed, one seq each, all in
 * one atomic write after admission (as for hdb_ingest_upload). Errors: those of the ids'
 * checks; HDB_EINVAL 'payload["x"]: ... permanent attribute' or 'keys[j]: ...'; HDB_ENOTFOUND
 * 'ids[i]: no point ...' (nothing written); HDB_ELIMIT when a point would carry more than
 * limits.max_attributes attributes; the write's. */
int hdb_ingest_change_payload(hdb_catalog *cat, hdb_source *src, const hdb_config *cfg,
                              int64_t deadline_ns, hdb_attr *const *ids, const uint32_t *nids,
                              size_t n, const hdb_payload_change *ch, hdb_arena *arena,
                              uint64_t *first_seq, uint64_t *last_seq, char *err,
                              size_t errlen);

/* Deletes the points of src that pass where (checked by the caller against the schema): the
 * ones that pass in a snapshot taken first, and still pass when the write commits, as
 * tombstones with consecutive seqs in one atomic write. *deleted is how many; *first_seq ..
 * *last_seq their seqs (0 and 0 when none). More than limits.max_points_per_delete passing:
 * HDB_ELIMIT and nothing is deleted. stop ends the scan (HDB_ETIMEOUT, HDB_ECANCELLED). */
int hdb_ingest_delete_by_filter(hdb_catalog *cat, hdb_source *src, const hdb_config *cfg,
                                int64_t deadline_ns, const hdb_filter *where,
                                const hdb_stop *stop, hdb_arena *arena, uint64_t *deleted,
                                uint64_t *first_seq, uint64_t *last_seq, char *err,
                                size_t errlen);

/* Reads n points by id attributes from one consistent snapshot. ids[i] (nids[i] attributes,
 * sorted by name) must hold exactly the source's id attributes with their types; errors name
 * them as ids[i].id_attributes["name"]. out has n slots; memory from arena. */
int hdb_ingest_get(hdb_source *src, const hdb_config *cfg, hdb_attr *const *ids,
                   const uint32_t *nids, size_t n, hdb_arena *arena, hdb_row *out, char *err,
                   size_t errlen);

#ifdef __cplusplus
}
#endif

#endif /* HDB_INGEST_H */
