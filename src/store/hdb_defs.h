/*
 * hdb_defs.h - the durable store of catalog definitions: data sources, indices and model
 * spaces, each a packed spec message under its label, aliases, plus the next free object id.
 *
 * The catalog decides what a definition means; this module only keeps them, in the "catalog"
 * column family (layout in hdb_defs.c). Each put or delete is durable when it returns (fsynced
 * when storage.sync is on) and is a metadata write for the disk guard, so a nearly full disk
 * still takes drops.
 *
 * Thread-safety: every function may be called from any thread; callers serialise changes to
 * one label (the catalog's DDL lock does for sources and indices, the model-space registry's
 * lock for spaces).
 */
#ifndef HDB_DEFS_H
#define HDB_DEFS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct hdb_store hdb_store;
typedef struct hdb_defs hdb_defs;

typedef enum {
    HDB_DEF_SOURCE = 'S', /* label "name@version", with an object id */
    HDB_DEF_INDEX = 'X',  /* label "name@version", with an object id */
    HDB_DEF_SPACE = 'M',  /* label "name", no id */
    HDB_DEF_ALIAS = 'A',  /* label "<kind letter>/name" (the catalog's choice), no id */
    HDB_DEF_REEMBED = 'R' /* label "name" of a re-embedding model space: its progress */
} hdb_def_kind;

/* One change of hdb_defs_apply: a put of spec (len bytes) under label, or with spec NULL a
 * delete. Only for kinds without an id (spaces, aliases). */
typedef struct {
    hdb_def_kind kind;
    const char *label;
    const void *spec;
    size_t len;
} hdb_def_op;

/* Opens the definitions of store (creating their column family on first use) and reads the
 * next free object id (1 for a new store). Close with hdb_defs_close (NULL allowed). */
int hdb_defs_open(hdb_defs **out, hdb_store *store, char *err, size_t errlen);
void hdb_defs_close(hdb_defs *d);

/* Stores (or replaces) the definition of label. id is kept for sources and indices (ignored
 * for spaces). With next_id > 0 the next free object id is set to it in the same write. */
int hdb_defs_put(hdb_defs *d, hdb_def_kind kind, const char *label, uint64_t id,
                 const void *spec, size_t len, uint64_t next_id, char *err, size_t errlen);

/* Removes the definition of label (absent is fine). */
int hdb_defs_delete(hdb_defs *d, hdb_def_kind kind, const char *label, char *err,
                    size_t errlen);

/* Applies ops[0..n) in one atomic write: all of them are durable when it returns, or none is.
 * The disk guard judges it as a batch write (as a put that sets next_id). */
int hdb_defs_apply(hdb_defs *d, const hdb_def_op *ops, size_t n, char *err, size_t errlen);

/* Calls fn for every definition of kind, in label order; spec bytes are valid only during
 * the call. Stops at the first non-zero return of fn and returns it. HDB_ECORRUPT for a
 * malformed entry, HDB_EIO. */
int hdb_defs_foreach(hdb_defs *d, hdb_def_kind kind,
                     int (*fn)(void *arg, const char *label, uint64_t id,
                               const unsigned char *spec, size_t len, char *err, size_t errlen),
                     void *arg, char *err, size_t errlen);

/* The next free object id, as stored by the last put that set it. */
uint64_t hdb_defs_next_id(hdb_defs *d);

#ifdef __cplusplus
}
#endif

#endif /* HDB_DEFS_H */
