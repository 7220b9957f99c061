/*
 * hdb_catalog.h - the registry of data sources and indices: validation of their definitions,
 * their durable storage (hdb_defs.h), creation and removal of each source's table
 * (hdb_table.h), and the start of every index's applier. Model spaces (hdb_space.h, one layer
 * up) build on it through owned pairs of a source and an index.
 *
 * Data sources and indices are reference-counted objects. Lookups return a new reference that
 * the caller releases with hdb_source_unref / hdb_ixent_unref; a dropped object disappears from
 * lookups at once and is destroyed (its column families dropped, its engines freed) when the
 * last reference goes.
 *
 * Definitions arrive as the API's protobuf-c spec messages, from the Catalog service or from
 * the config file, and both go through the same validation.
 *
 * Thread-safety: every function may be called from any thread. Creates and drops are
 * serialised by one DDL lock; lookups take a read lock briefly and never wait for DDL. Lock
 * order: DDL lock -> a source's commit queue (hdb_table_exclusive) -> the registry lock.
 */
#ifndef HDB_CATALOG_H
#define HDB_CATALOG_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hdb_types.h"
#include "hilbert/v1/catalog.pb-c.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct hdb_arena hdb_arena;
typedef struct hdb_catalog hdb_catalog;
typedef struct hdb_config hdb_config;
typedef struct hdb_defs hdb_defs;
typedef struct hdb_applier hdb_applier;
typedef struct hdb_index hdb_index;
typedef struct hdb_store hdb_store;
typedef struct hdb_ixent hdb_ixent;

/* A declared attribute. */
typedef struct {
    char *name;
    hdb_attr_type type;
} hdb_attr_spec;

/* The validated schema of a data source. Immutable once the source exists. */
typedef struct {
    uint32_t dim; /* dense: vector length; sparse: bound of the indices */
    bool sparse;
    size_t nperm;
    hdb_attr_spec *perm; /* permanent attributes, sorted by name */
    size_t nid;
    const hdb_attr_spec **id; /* id attributes in declared order; point into perm */
} hdb_schema;

typedef struct hdb_source hdb_source;
typedef struct hdb_table hdb_table;

/* A data source and an index are opaque; these accessors read what never changes after
 * creation (valid while the caller holds a reference). */
const char *hdb_source_label(const hdb_source *src); /* "name@version" */
const char *hdb_source_name(const hdb_source *src);
const char *hdb_source_version(const hdb_source *src);
const hdb_schema *hdb_source_schema(const hdb_source *src);
hdb_table *hdb_source_table(hdb_source *src); /* its storage (hdb_table.h) */
bool hdb_source_dropped(const hdb_source *src);   /* dropped since the lookup */

const char *hdb_ixent_label(const hdb_ixent *ix);
hdb_metric hdb_ixent_metric(const hdb_ixent *ix);
hdb_source *hdb_ixent_source(hdb_ixent *ix);      /* borrowed: valid while ix is */
hdb_applier *hdb_ixent_applier(hdb_ixent *ix);    /* borrowed: valid while ix is */

/* The state of a data source, read now. */
typedef struct {
    uint64_t last_seq;          /* newest durable seq */
    uint64_t point_count;       /* live points */
    uint64_t timeline_first_seq; /* oldest entry the timeline retains */
    uint64_t timeline_entries;  /* entries it retains */
    uint64_t timeline_bytes;    /* approximate bytes they take */
} hdb_source_status;

void hdb_source_status_get(hdb_source *src, hdb_source_status *st);

/* The state of an index, read now. */
typedef struct {
    int state;                 /* HDB_INDEX_READY, _BUILDING or _FAILED */
    uint64_t applied_seq, source_last_seq, lag_entries;
    double lag_seconds;        /* age of the oldest entry not applied yet; 0 when caught up */
    uint64_t snapshot_seq;
    int64_t snapshot_time_us;
    uint64_t retained_entries; /* timeline entries kept for this index (after its snapshot) */
    uint64_t retained_bytes;   /* their approximate size */
    bool lagging;              /* READY and past index.max_lag_entries or index.max_lag_ms */
    char detail[256];
} hdb_ixent_status;

void hdb_ixent_status_get(hdb_ixent *ix, hdb_ixent_status *st);

/* Opens the catalog stored in store: loads every definition, reopens the column families,
 * recovers each source's last seq and point count, starts one applier per index (which loads
 * the index's snapshot from cfg->data_dir/indices/<id>, or rebuilds it, in the background), and
 * removes column families and snapshot directories that no definition references (left by a
 * crash during a create or drop). cfg provides the limits and must outlive the catalog. The
 * sources' timelines keep every entry until hdb_catalog_start_trimming. */
int hdb_catalog_open(hdb_catalog **out, hdb_store *store, const hdb_config *cfg, char *err,
                     size_t errlen);

/* Lets the sources' timelines trim what their subscribers no longer need (and trims it now).
 * Call once every follower of a timeline has subscribed: the indices have when
 * hdb_catalog_open returns, model spaces that re-embed another when hdb_spaces_open does.
 * Until then nothing is trimmed. Idempotent; the thread that opened the catalog. */
void hdb_catalog_start_trimming(hdb_catalog *cat);

/* True while the disk under the store has room for data writes (hdb_diskguard.h). */
bool hdb_catalog_writable(hdb_catalog *cat);

/* Stops every applier (each saves a snapshot of what it applied), closes the catalog and
 * releases its references. Every reference handed out must have been released. NULL is
 * allowed. */
void hdb_catalog_close(hdb_catalog *cat);

/* Creates the data sources and indices declared in cfg that do not exist yet. A declared object
 * that exists with a different definition is an error (HDB_EPRECOND) naming it. */
int hdb_catalog_ensure(hdb_catalog *cat, const hdb_config *cfg, char *err, size_t errlen);

/* Creates a data source from spec. HDB_EEXIST if name@version exists; HDB_EINVAL naming the
 * field (prefixed "spec.") for a bad definition. *out (optional) receives a reference. */
int hdb_catalog_create_source(hdb_catalog *cat, const Hilbert__V1__DataSourceSpec *spec,
                              hdb_source **out, char *err, size_t errlen);

/* Looks up a data source; HDB_ENOTFOUND if absent. On success *out holds a reference. */
int hdb_catalog_get_source(hdb_catalog *cat, const char *name, const char *version,
                           hdb_source **out, char *err, size_t errlen);

/* Drops a data source and its points. HDB_EPRECOND while an index reads it. */
int hdb_catalog_drop_source(hdb_catalog *cat, const char *name, const char *version, char *err,
                            size_t errlen);

/* Returns references to every data source, sorted by name then version, in an array allocated
 * from arena. The caller unrefs each element. */
size_t hdb_catalog_list_sources(hdb_catalog *cat, hdb_arena *arena, hdb_source ***out);

/* Creates an index from spec. Its applier builds it from the points already in its data source
 * in the background (state BUILDING) while uploads go on. */
int hdb_catalog_create_index(hdb_catalog *cat, const Hilbert__V1__IndexSpec *spec,
                             hdb_ixent **out, char *err, size_t errlen);

/* Looks up an index; HDB_ENOTFOUND if absent. On success *out holds a reference. An empty
 * version makes name an index alias, resolved to its target under the registry lock, so that a
 * concurrent switch gives the old or the new target, never neither (HDB_ENOTFOUND "index: no
 * index alias \"a\"" when there is no such alias). */
int hdb_catalog_get_index(hdb_catalog *cat, const char *name, const char *version,
                          hdb_ixent **out, char *err, size_t errlen);

/* Drops an index: stops its applier and removes its snapshot files. Its data source stays.
 * HDB_EPRECOND ("index: x@v is the target of index alias \"a\"; ...") while an alias points
 * to it. version must be given: an alias is never resolved here. */
int hdb_catalog_drop_index(hdb_catalog *cat, const char *name, const char *version, char *err,
                           size_t errlen);

/* As hdb_catalog_list_sources, for indices. */
size_t hdb_catalog_list_indices(hdb_catalog *cat, hdb_arena *arena, hdb_ixent ***out);

/* An owned pair: a data source plus one index on it, created, adopted and dropped as one by an
 * upper layer (a model space). The strings and messages are the caller's. */
typedef struct {
    const Hilbert__V1__DataSourceSpec *source;
    const Hilbert__V1__IndexSpec *index; /* reads source */
    const char *algorithm;  /* how messages name index->algorithm (NULL: "spec.algorithm") */
    const char *owner_kind; /* named when a plain drop is refused: "model space" */
    const char *owner_name; /* e.g. "gray" */
} hdb_owned_spec;

/* Validates os->source and os->index (with the configured limits) without creating anything:
 * the checks hdb_catalog_create_source and _create_index would make. Messages name the fields
 * under "spec.", the algorithm as os->algorithm. Any thread. */
int hdb_catalog_check_owned(hdb_catalog *cat, const hdb_owned_spec *os, char *err,
                            size_t errlen);

/* Creates the pair of os, or adopts a pair left by an interrupted create or drop when the
 * stored definitions of both equal the requested ones (HDB_EEXIST naming the object when not),
 * and marks both as owned: a plain hdb_catalog_drop_source / _drop_index of either is refused
 * with HDB_EPRECOND ("data_source: x@v belongs to <kind> <name>; drop the <kind>"). Atomic as
 * seen from other DDL (it holds the DDL lock); a pair it created is removed again on failure.
 * On success *src and *ix hold references, which the caller releases (after
 * hdb_catalog_drop_owned, or at shutdown before hdb_catalog_close). The ownership lasts while
 * the catalog is open; an owner claims its pair again after each hdb_catalog_open. Any
 * thread. */
int hdb_catalog_create_owned(hdb_catalog *cat, const hdb_owned_spec *os, hdb_source **src,
                             hdb_ixent **ix, char *err, size_t errlen);

/* Drops an owned pair from hdb_catalog_create_owned: the index, then the source with its
 * points, under the DDL lock. A part dropped already (by an earlier failed call) is skipped.
 * The caller keeps its references. Any thread. */
int hdb_catalog_drop_owned(hdb_catalog *cat, hdb_source *src, hdb_ixent *ix, char *err,
                           size_t errlen);

/* Admits a write to src under index.lag_mode. In backpressure mode, while a READY index reading
 * src is past index.max_lag_entries or index.max_lag_ms, waits for it to catch up, up to
 * deadline_ns (CLOCK_MONOTONIC; INT64_MAX for none) and limits.max_wait_ms; returns HDB_ELIMIT,
 * naming the index and its lag, when the wait ends first or when server.write_threads - 1 writes
 * wait already; HDB_EUNAVAIL when the server stops meanwhile. In fall_behind mode, and when no
 * index lags, returns HDB_OK at once. Either mode logs when an index passes a bound and when it
 * is back. Holds no lock while it waits. Any thread. */
int hdb_catalog_admit_write(hdb_catalog *cat, hdb_source *src, int64_t deadline_ns, char *err,
                            size_t errlen);

/* The first step of a shutdown: every wait on an index (a search's min_seq, a write held back
 * by a lagging index) ends now with HDB_EUNAVAIL, and later ones at once; the appliers go on
 * until hdb_catalog_close. Any thread. */
void hdb_catalog_interrupt_waits(hdb_catalog *cat);

/* The catalog's definition store (hdb_defs.h), for upper layers that keep definitions of
 * their own (model spaces, kind HDB_DEF_SPACE). Borrowed: valid until hdb_catalog_close.
 * Writers serialise changes to one label themselves. */
hdb_defs *hdb_catalog_defs(hdb_catalog *cat);

/* Labels ("name@version") of the indices reading src, copied into arena. */
size_t hdb_source_index_labels(hdb_catalog *cat, hdb_source *src, hdb_arena *arena,
                               char ***out);

/* ---- aliases (hdb_catalog_alias.c) ----
 * An alias is a second name for an index ("name@version") or for a model space (a name),
 * stored with the definitions (kind HDB_DEF_ALIAS) and loaded at open. Index aliases are
 * resolved by hdb_catalog_get_index; model-space aliases by the model-space registry (one layer
 * up), through hdb_catalog_space_alias. Changes hold the DDL lock, so that no index is dropped
 * while an action that names it is checked. */

/* The numbers of the API's AliasKind. */
typedef enum { HDB_ALIAS_INDEX = 1, HDB_ALIAS_SPACE = 2 } hdb_alias_kind;

/* How the catalog learns, while it checks model-space alias actions, which model spaces exist
 * (it knows none itself). The model-space layer calls hdb_catalog_update_aliases with its own
 * lock held, so that the answer stays true until the call returns. */
typedef struct {
    bool (*exists)(void *arg, const char *name);
    void *arg;
} hdb_alias_spaces;

/* Applies actions[0..n) (create, switch, delete) in order, all or none, in one write of the
 * definitions, then makes the new aliases visible at once. Each action is checked against the
 * aliases as the earlier actions of the call left them. Errors name the first bad action's
 * field, "actions[i].create_alias.index: ...": HDB_EINVAL for a malformed action (no action,
 * bad name, no or two targets, a kind that does not fit), HDB_ENOTFOUND for a missing target
 * or a switch/delete of an alias that does not exist, HDB_EEXIST for a create of an existing
 * alias or of a model-space alias named like a model space. spaces may be NULL: then every
 * model-space target is missing. Any thread. */
int hdb_catalog_update_aliases(hdb_catalog *cat, Hilbert__V1__AliasAction *const *actions,
                               size_t n, const hdb_alias_spaces *spaces, char *err,
                               size_t errlen);

/* Every alias as an API message, index aliases first, each kind sorted by name, in arena
 * memory. Any thread. */
size_t hdb_catalog_list_aliases(hdb_catalog *cat, hdb_arena *arena, Hilbert__V1__Alias ***out);

/* The target of model-space alias `name`, copied into buf (HDB_NAME_MAX + 1 bytes). False when
 * there is no such alias. Any thread; takes the registry lock briefly (callers may hold their
 * own locks: it takes no other). */
bool hdb_catalog_space_alias(hdb_catalog *cat, const char *name, char *buf);

/* The name of an alias of kind that points to target (an index's "name@version", a model
 * space's name), copied into buf (HDB_NAME_MAX + 1 bytes); false when none does. Any thread. */
bool hdb_catalog_alias_pointing(hdb_catalog *cat, hdb_alias_kind kind, const char *target,
                                char *buf);

/* Reference counting. Unref of the last reference destroys the object. NULL is allowed. */
void hdb_source_ref(hdb_source *src);
void hdb_source_unref(hdb_source *src);
void hdb_ixent_ref(hdb_ixent *ix);
void hdb_ixent_unref(hdb_ixent *ix);

/* Finds a permanent attribute of the schema by name, or NULL. */
const hdb_attr_spec *hdb_schema_find(const hdb_schema *s, const char *name);

/* Unpacks a stored spec into arena memory (for responses). Returns NULL only on corruption. */
Hilbert__V1__DataSourceSpec *hdb_source_spec(const hdb_source *src, hdb_arena *arena);
Hilbert__V1__IndexSpec *hdb_ixent_spec(const hdb_ixent *ix, hdb_arena *arena);

#ifdef __cplusplus
}
#endif

#endif /* HDB_CATALOG_H */
