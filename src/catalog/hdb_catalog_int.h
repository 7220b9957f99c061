/*
 * hdb_catalog_int.h - what the catalog's files share: the objects behind the opaque handles of
 * hdb_catalog.h, and the internal steps one file offers another.
 *
 *   hdb_catalog_spec.c   validation and normalisation of definitions (no storage)
 *   hdb_catalog.c        objects, the registry, creates, drops, lookups, status
 *   hdb_catalog_load.c   open and close: recovery of definitions, orphans, ensure
 *   hdb_catalog_owned.c  owned pairs of a source and an index (model spaces build on them)
 *   hdb_catalog_lag.c    index lag, its bounds, and backpressure on the writers
 *   hdb_catalog_alias.c  aliases of indices and model spaces
 *
 * Locking as in hdb_catalog.h. Fields marked (immutable) never change after creation.
 */
#ifndef HDB_CATALOG_INT_H
#define HDB_CATALOG_INT_H

#include "hdb_catalog.h"
#include "hdb_engine.h"
#include "hdb_table.h"

#include <pthread.h>
#include <stdatomic.h>

typedef struct hdb_defs hdb_defs;
typedef struct hdb_workpool hdb_workpool;

/* An alias (hdb_catalog_alias.c). */
typedef struct {
    hdb_alias_kind kind;
    char *name;
    char *target;  /* index: "name@version"; model space: its name */
    char *tname;   /* index: the target's name and version; model space: target, NULL */
    char *tversion;
} hdb__alias;

struct hdb_catalog {
    hdb_store *store;
    hdb_defs *defs;
    const hdb_config *cfg;
    hdb_workpool *appliers; /* runs every index's applier (index.applier_threads) */
    pthread_mutex_t ddl;   /* serialises create and drop */
    pthread_rwlock_t lock; /* guards the arrays below */
    hdb_source **sources;  /* sorted by name, then version */
    size_t nsources;
    hdb_ixent **indices;   /* likewise */
    size_t nindices;
    hdb__alias *aliases;   /* sorted by kind, then name; replaced whole by each update */
    size_t naliases;
    _Atomic int lag_waiters; /* writes waiting for lagging indices (hdb_catalog_lag.c) */
};

struct hdb_source {
    uint64_t id;               /* (immutable) internal id; names its table */
    char *label;               /* (immutable) "name@version" */
    char *name, *version;      /* (immutable) */
    hdb_schema schema;         /* (immutable) */
    unsigned char *spec_bytes; /* (immutable) the normalised DataSourceSpec, packed */
    size_t spec_len;
    hdb_table *table;          /* (immutable) its storage */
    /* Indices reading this source, each without a reference of its own. Changed only inside
     * hdb_table_exclusive while holding the registry lock for writing; readable under either. */
    hdb_ixent **indices;
    size_t nindices;
    /* The owner of an owned pair (hdb_catalog_create_owned), or NULL; set and read under ddl. */
    char *owner_kind, *owner_name;
    _Atomic bool dropped;
    _Atomic int refs;
};

struct hdb_ixent {
    uint64_t id;               /* (immutable) */
    char *label;               /* (immutable) "name@version" */
    char *name, *version;      /* (immutable) */
    unsigned char *spec_bytes; /* (immutable) the normalised IndexSpec, packed */
    size_t spec_len;
    hdb_metric metric;         /* (immutable) */
    hdb_source *source;        /* (immutable) holds a reference */
    hdb_applier *applier;      /* (immutable) keeps the split engines in step; owns the index */
    char *dir;                 /* (immutable) snapshot directory */
    char *owner_kind, *owner_name; /* as in hdb_source */
    uint32_t max_lag_entries, max_lag_ms; /* (immutable) index.max_lag_*; 0: unbounded */
    bool backpressure;         /* (immutable) index.lag_mode is backpressure */
    _Atomic bool lagging;      /* reported lagging in the log, not yet back (hdb_catalog_lag.c) */
    _Atomic bool dropped;
    _Atomic int refs;
};

/* ---- hdb_catalog_spec.c ---- */

/* Packs m into hdb_malloc'ed bytes (caller frees). */
unsigned char *hdb__catalog_pack(const ProtobufCMessage *m, size_t *len);

/* Validates a data source spec and builds its schema (released with hdb__schema_free). With
 * limits, checks the configured limits too (not for stored definitions). Fields are named
 * under "spec.". */
int hdb__source_spec_check(const Hilbert__V1__DataSourceSpec *spec, const hdb_config *limits,
                           hdb_schema *schema, char *err, size_t errlen);
void hdb__schema_free(hdb_schema *s);

/* spec with defaults filled in, in arena memory. */
Hilbert__V1__DataSourceSpec *hdb__source_spec_normalise(const Hilbert__V1__DataSourceSpec *spec,
                                                        hdb_arena *arena);

/* Validates an index spec against the schema of source `label` and derives the engine spec.
 * Messages name the algorithm's fields under `algorithm` (NULL: "spec.algorithm"). */
int hdb__index_spec_check(const Hilbert__V1__IndexSpec *spec, const hdb_schema *s,
                          const char *label, const char *algorithm, hdb_engine_spec *es,
                          char *err, size_t errlen);

/* The checks of an index spec that need no source: names and the data source reference. */
int hdb__index_spec_basic_check(const Hilbert__V1__IndexSpec *spec, char *err, size_t errlen);

/* Checks a "what.name" / "what.version" pair. */
int hdb__ref_check(const char *what, const char *name, const char *version, char *err,
                   size_t errlen);

/* "name@version" in hdb_malloc'ed memory. */
char *hdb__make_label(const char *name, const char *version);

/* ---- hdb_catalog_lag.c ---- */

/* An index's lag, read now. */
typedef struct {
    int state;             /* HDB_INDEX_* */
    uint64_t applied, last, entries;
    double seconds;        /* age of the oldest entry not applied yet */
    double catch_up_seconds; /* entries / the applier's recent rate: how long they will take */
    bool over_entries, over_time; /* past index.max_lag_entries / index.max_lag_ms */
    bool lagging;          /* READY and past a bound */
    bool hold_time;        /* past 3/4 of index.max_lag_ms (with the look-ahead) */
    bool hold;             /* READY and past the entries bound or hold_time: writers wait */
} hdb__lag;

/* Reads ix's lag into *lag, and logs when ix passes a bound or comes back. Any thread. */
void hdb__ixent_lag(hdb_ixent *ix, hdb__lag *lag);

/* ---- hdb_catalog_alias.c ---- */

/* Loads the stored aliases (at open, single-threaded); frees them (at close). */
int hdb__aliases_load(hdb_catalog *cat, char *err, size_t errlen);
void hdb__aliases_free(hdb_catalog *cat);

/* The alias of kind and name, under the caller's registry lock, or NULL. */
const hdb__alias *hdb__alias_find(hdb_catalog *cat, hdb_alias_kind kind, const char *name);

/* ---- hdb_catalog.c ---- */

/* Builds a source object around its table. Takes ownership of schema, spec_bytes and table.
 * The object starts with one reference (the registry's). */
hdb_source *hdb__source_new(uint64_t id, const char *name, const char *version,
                            hdb_schema *schema, unsigned char *spec_bytes, size_t spec_len,
                            hdb_table *table);

/* The table spec of a source with this schema (names point into schema). */
void hdb__table_spec(uint64_t id, const char *label, const hdb_schema *schema,
                     const char **names, hdb_table_spec *out);

/* Creates the index object for a validated spec and starts its applier (which loads its
 * snapshot when load_snapshot). One reference (the registry's) on success. */
int hdb__ixent_start(hdb_catalog *cat, uint64_t id, const Hilbert__V1__IndexSpec *spec,
                     hdb_source *src, const hdb_engine_spec *es, bool load_snapshot,
                     unsigned char *spec_bytes, size_t spec_len, hdb_ixent **out, char *err,
                     size_t errlen);

void hdb__registry_add_source(hdb_catalog *cat, hdb_source *src);
void hdb__registry_add_index(hdb_catalog *cat, hdb_ixent *ix);
void hdb__source_attach_index(hdb_source *src, hdb_ixent *ix);

/* Unlocked lookups (the caller holds the registry lock or is the only thread). */
hdb_source *hdb__find_source(hdb_catalog *cat, const char *name, const char *version);
hdb_ixent *hdb__find_index(hdb_catalog *cat, const char *name, const char *version);

/* Creates, drops: the caller holds ddl. */
int hdb__create_source_locked(hdb_catalog *cat, const Hilbert__V1__DataSourceSpec *spec,
                              hdb_schema *schema, hdb_source **out, char *err, size_t errlen);
int hdb__drop_source_locked(hdb_catalog *cat, hdb_source *src, char *err, size_t errlen);
/* HDB_ELIMIT once the catalog holds limits.max_indices indices (model spaces' included). */
int hdb__index_room_check(hdb_catalog *cat, char *err, size_t errlen);
int hdb__create_index_locked(hdb_catalog *cat, const Hilbert__V1__IndexSpec *spec,
                             const char *algorithm, hdb_ixent **out, char *err, size_t errlen);
int hdb__drop_index_locked(hdb_catalog *cat, hdb_ixent *ix, char *err, size_t errlen);

#endif /* HDB_CATALOG_INT_H */
