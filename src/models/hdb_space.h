/*
 * hdb_space.h - model spaces: a TorchScript model plus the data source and index "name@space"
 * that its vectors go to, and the registry that holds every model space of the server.
 *
 * The registry is built on top of an open catalog. hdb_spaces_open loads each stored
 * definition (hdb_defs.h, kind HDB_DEF_SPACE: the normalised ModelSpaceSpec, packed), claims
 * its source and index from the catalog as an owned pair (hdb_catalog_create_owned) and loads
 * its model; hdb_spaces_close releases them all, before hdb_catalog_close.
 *
 * A space is a reference-counted, immutable object: lookups return a new reference that the
 * caller releases with hdb_space_unref. A dropped space disappears from lookups at once; its
 * model is freed when the last reference goes.
 *
 * Thread-safety: every function may be called from any thread. Creates and drops of spaces are
 * serialised by the registry's own lock, taken before the catalog's DDL lock (which the owned
 * pair calls take); loading a model therefore holds up no data source or index DDL. Lookups take
 * a read lock briefly.
 */
#ifndef HDB_SPACE_H
#define HDB_SPACE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hdb_image.h"
#include "hilbert/v1/catalog.pb-c.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct hdb_arena hdb_arena;
typedef struct hdb_catalog hdb_catalog;
typedef struct hdb_config hdb_config;
typedef struct hdb_infer hdb_infer;
typedef struct hdb_ixent hdb_ixent;
typedef struct hdb_model hdb_model;
typedef struct hdb_reembed hdb_reembed;
typedef struct hdb_source hdb_source;
typedef struct hdb_space hdb_space;
typedef struct hdb_space_registry hdb_space_registry;

/* The version of the data source and index that a model space owns: name@space. */
#define HDB_SPACE_VERSION "space"

/* Opens the registry over cat: loads every stored model space, adopting (or, after a crash in
 * the middle of a create, creating) its data source and index. A model that does not load
 * leaves its space in place without a model (hdb_space_model is NULL, hdb_space_detail says
 * why), so that its points can still be read and removed. cat and cfg (models_dir, limits) are
 * borrowed and must outlive the registry. Errors: HDB_ECORRUPT for a definition that does not
 * decode or check, and the catalog's errors. Called once, at startup, before any call is
 * served. */
int hdb_spaces_open(hdb_space_registry **out, hdb_catalog *cat, const hdb_config *cfg,
                    char *err, size_t errlen);

/* Creates the model spaces declared in cfg that do not exist yet. A declared space that exists
 * with a different definition, or whose model did not load, is HDB_EPRECOND. Messages start
 * with "model_spaces[i]: ". */
int hdb_spaces_ensure(hdb_space_registry *reg, const hdb_config *cfg, char *err,
                      size_t errlen);

/* Starts the background work of the spaces (re-embedding workers, hdb_reembed.h), which runs
 * models on infer; spaces created later start theirs at once. infer must stay alive until
 * hdb_spaces_stop_background returns. Any thread, once. */
void hdb_spaces_start_background(hdb_space_registry *reg, hdb_infer *infer);

/* Stops the background work and waits for it (positions are stored). Call before freeing the
 * inference pool. NULL is allowed. */
void hdb_spaces_stop_background(hdb_space_registry *reg);

/* Releases every space of the registry and frees it. Every reference handed out must have
 * been released. Call before hdb_catalog_close. NULL is allowed. */
void hdb_spaces_close(hdb_space_registry *reg);

/* The catalog the registry was opened on (borrowed). Any thread. */
hdb_catalog *hdb_spaces_catalog(hdb_space_registry *reg);

/* Creates a model space: checks the spec (messages name fields under "spec."; reembed_from must
 * name a space that keeps its inputs, see origin_check), checks its data
 * source and index definitions, loads the model (the file must exist, be TorchScript, and take
 * and return the declared shapes; messages name spec.model_path), stores the definition, then
 * creates its data source and index name@space. HDB_EEXIST if the name is taken (by a space
 * or a model-space alias). *out (optional) receives a reference. */
int hdb_spaces_create(hdb_space_registry *reg, const Hilbert__V1__ModelSpaceSpec *spec,
                      hdb_space **out, char *err, size_t errlen);

/* Looks up a model space: HDB_ENOTFOUND ("model space \"x\" does not exist") if absent. On
 * success *out holds a reference. A name that is no model space's is looked up as a model-space
 * alias (hdb_catalog.h), resolved under the registry lock: a concurrent switch gives the old or
 * the new target, never neither. */
int hdb_spaces_get(hdb_space_registry *reg, const char *name, hdb_space **out, char *err,
                   size_t errlen);

/* Drops a model space with its index, data source and points, named by its own name (not an
 * alias). HDB_ENOTFOUND if absent; HDB_EPRECOND while an alias points to the space or to its
 * index, or while a space that re-embeds from it is still copying (hdb_reembed_finish); the
 * spaces that follow it are done with it (state DONE). A space's own re-embedding stops. */
int hdb_spaces_drop(hdb_space_registry *reg, const char *name, char *err, size_t errlen);

/* hdb_catalog_update_aliases with the registry's spaces as the model spaces that exist, under
 * the registry's DDL lock: no space is created or dropped while the actions are checked and
 * stored. Any thread. */
int hdb_spaces_update_aliases(hdb_space_registry *reg, Hilbert__V1__AliasAction *const *actions,
                              size_t n, char *err, size_t errlen);

/* References to every model space, sorted by name, in an array allocated from arena; the
 * caller unrefs each element. */
size_t hdb_spaces_list(hdb_space_registry *reg, hdb_arena *arena, hdb_space ***out);

/* Reference counting. Unref of the last reference destroys the space. NULL is allowed. */
void hdb_space_ref(hdb_space *sp);
void hdb_space_unref(hdb_space *sp);

/* What never changes once a space exists; valid while the caller holds a reference. */
const char *hdb_space_name(const hdb_space *sp);
const hdb_image_spec *hdb_space_image(const hdb_space *sp); /* NULL for tensor input */
const int64_t *hdb_space_shape(const hdb_space *sp, size_t *ndim); /* without the batch dim */
int64_t hdb_space_input_size(const hdb_space *sp); /* floats per item */
uint32_t hdb_space_output_dim(const hdb_space *sp);
hdb_model *hdb_space_model(const hdb_space *sp); /* NULL when the model failed to load */
const char *hdb_space_detail(const hdb_space *sp); /* why it failed to load, or "" */
hdb_source *hdb_space_source(const hdb_space *sp); /* borrowed */
hdb_ixent *hdb_space_index(const hdb_space *sp);   /* borrowed */
bool hdb_space_keeps_inputs(const hdb_space *sp);  /* spec.keep_inputs (or reembed_from) */
/* The re-embedding worker of a space created with reembed_from (borrowed, valid while the
 * caller holds its reference), or NULL. */
hdb_reembed *hdb_space_reembed(const hdb_space *sp);

/* Unpacks the stored spec into arena memory (for responses). */
Hilbert__V1__ModelSpaceSpec *hdb_space_spec(const hdb_space *sp, hdb_arena *arena);

#ifdef __cplusplus
}
#endif

#endif /* HDB_SPACE_H */
