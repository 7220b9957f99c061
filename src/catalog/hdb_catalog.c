/*
 * hdb_catalog.c - the catalog's objects and registry: data sources (each around its table)
 * and indices (each with its applier), their creation, lookup, listing, drop and status.
 *
 * Definitions are stored through hdb_defs before an object becomes visible, and removed before
 * it disappears, so a crash in between leaves storage that the next open adopts or removes
 * (hdb_catalog_load.c).
 */
#include "hdb_catalog_int.h"

#include "hdb_applier.h"
#include "hdb_arena.h"
#include "hdb_config.h"
#include "hdb_defs.h"
#include "hdb_err.h"
#include "hdb_file.h"
#include "hdb_index.h"
#include "hdb_log.h"
#include "hdb_mem.h"
#include "hdb_table.h"
#include "hdb_timeline.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ---------------------------------------------------------------- objects */

static void source_destroy(hdb_source *src) {
    bool dropped = atomic_load(&src->dropped);
    hdb_table_close(src->table, dropped);
    if (dropped) HDB_INFO("catalog", "data source %s dropped, storage released", src->label);
    hdb__schema_free(&src->schema);
    hdb_free(src->owner_kind);
    hdb_free(src->owner_name);
    hdb_free(src->indices);
    hdb_free(src->spec_bytes);
    hdb_free(src->label);
    hdb_free(src->name);
    hdb_free(src->version);
    hdb_free(src);
}

void hdb_source_ref(hdb_source *src) {
    atomic_fetch_add(&src->refs, 1);
}

void hdb_source_unref(hdb_source *src) {
    if (src && atomic_fetch_sub(&src->refs, 1) == 1) source_destroy(src);
}

static void ixent_destroy(hdb_ixent *ix) {
    if (ix->dropped) HDB_INFO("catalog", "index %s dropped, memory released", ix->label);
    hdb_applier_stop(ix->applier, false); /* already stopped unless startup failed midway */
    hdb_applier_free(ix->applier);
    hdb_free(ix->dir);
    hdb_free(ix->owner_kind);
    hdb_free(ix->owner_name);
    hdb_source_unref(ix->source);
    hdb_free(ix->spec_bytes);
    hdb_free(ix->label);
    hdb_free(ix->name);
    hdb_free(ix->version);
    hdb_free(ix);
}

void hdb_ixent_ref(hdb_ixent *ix) {
    atomic_fetch_add(&ix->refs, 1);
}

void hdb_ixent_unref(hdb_ixent *ix) {
    if (ix && atomic_fetch_sub(&ix->refs, 1) == 1) ixent_destroy(ix);
}

Hilbert__V1__DataSourceSpec *hdb_source_spec(const hdb_source *src, hdb_arena *arena) {
    return hilbert__v1__data_source_spec__unpack(hdb_arena_protobuf(arena), src->spec_len,
                                                 src->spec_bytes);
}

Hilbert__V1__IndexSpec *hdb_ixent_spec(const hdb_ixent *ix, hdb_arena *arena) {
    return hilbert__v1__index_spec__unpack(hdb_arena_protobuf(arena), ix->spec_len,
                                           ix->spec_bytes);
}


/* ---------------------------------------------------------------- accessors, status */

const char *hdb_source_label(const hdb_source *src) {
    return src->label;
}

const char *hdb_source_name(const hdb_source *src) {
    return src->name;
}

const char *hdb_source_version(const hdb_source *src) {
    return src->version;
}

const hdb_schema *hdb_source_schema(const hdb_source *src) {
    return &src->schema;
}

hdb_table *hdb_source_table(hdb_source *src) {
    return src->table;
}

bool hdb_source_dropped(const hdb_source *src) {
    return atomic_load(&((hdb_source *)src)->dropped);
}

const char *hdb_ixent_label(const hdb_ixent *ix) {
    return ix->label;
}

hdb_metric hdb_ixent_metric(const hdb_ixent *ix) {
    return ix->metric;
}

hdb_source *hdb_ixent_source(hdb_ixent *ix) {
    return ix->source;
}

hdb_applier *hdb_ixent_applier(hdb_ixent *ix) {
    return ix->applier;
}

void hdb_source_status_get(hdb_source *src, hdb_source_status *st) {
    hdb_timeline_stats ts;
    hdb_timeline_stats_get(hdb_table_timeline(src->table), &ts);
    *st = (hdb_source_status){.last_seq = ts.last_seq,
                              .point_count = hdb_table_count(src->table),
                              .timeline_first_seq = ts.first_seq,
                              .timeline_entries = ts.entries,
                              .timeline_bytes = ts.bytes};
}

void hdb_ixent_status_get(hdb_ixent *ix, hdb_ixent_status *st) {
    hdb_timeline *tl = hdb_table_timeline(ix->source->table);
    hdb_applier_status as;
    hdb_applier_status_get(ix->applier, &as);
    memset(st, 0, sizeof *st);
    st->state = as.state;
    st->snapshot_seq = as.snapshot_seq;
    st->snapshot_time_us = as.snapshot_time_us;
    snprintf(st->detail, sizeof st->detail, "%s", as.detail);
    hdb_timeline_stats ts;
    hdb_timeline_stats_get(tl, &ts);
    hdb__lag lag; /* read after as: the applied seq and the lag come from one reading */
    hdb__ixent_lag(ix, &lag);
    st->applied_seq = lag.applied;
    st->source_last_seq = lag.last;
    st->lag_entries = lag.entries;
    st->lag_seconds = lag.seconds;
    st->lagging = lag.lagging;
    /* What the timeline keeps on this index's behalf: from its keep_from on. */
    uint64_t keep = as.keep_from > ts.first_seq ? as.keep_from : ts.first_seq;
    st->retained_entries = ts.last_seq >= keep ? ts.last_seq - keep + 1 : 0;
    st->retained_bytes = ts.entries ? (uint64_t)((double)ts.bytes * (double)st->retained_entries /
                                                 (double)ts.entries)
                                    : 0;
}

/* ---------------------------------------------------------------- construction */

hdb_source *hdb__source_new(uint64_t id, const char *name, const char *version,
                            hdb_schema *schema, unsigned char *spec_bytes, size_t spec_len,
                            hdb_table *table) {
    hdb_source *src = hdb_calloc(1, sizeof *src);
    src->id = id;
    src->name = hdb_strdup(name);
    src->version = hdb_strdup(version);
    src->label = hdb__make_label(name, version);
    src->schema = *schema;
    memset(schema, 0, sizeof *schema);
    src->spec_bytes = spec_bytes;
    src->spec_len = spec_len;
    src->table = table;
    atomic_store(&src->refs, 1);
    return src;
}

void hdb__table_spec(uint64_t id, const char *label, const hdb_schema *schema,
                     const char **names, hdb_table_spec *out) {
    /* names: nid + nperm slots, id attributes first. */
    for (size_t i = 0; i < schema->nid; i++) names[i] = schema->id[i]->name;
    for (size_t i = 0; i < schema->nperm; i++) names[schema->nid + i] = schema->perm[i].name;
    *out = (hdb_table_spec){.id = id,
                            .label = label,
                            .id_names = names,
                            .nid = schema->nid,
                            .perm_names = names + schema->nid,
                            .nperm = schema->nperm};
}

int hdb__ixent_start(hdb_catalog *cat, uint64_t id, const Hilbert__V1__IndexSpec *spec,
                     hdb_source *src, const hdb_engine_spec *es, bool load_snapshot,
                     unsigned char *spec_bytes, size_t spec_len, hdb_ixent **out, char *err,
                     size_t errlen) {
    hdb_ixent *ix = hdb_calloc(1, sizeof *ix);
    ix->id = id;
    ix->name = hdb_strdup(spec->name);
    ix->version = hdb_strdup(spec->version);
    ix->label = hdb__make_label(spec->name, spec->version);
    ix->spec_bytes = spec_bytes;
    ix->spec_len = spec_len;
    ix->metric = (hdb_metric)spec->metric;
    hdb_source_ref(src);
    ix->source = src;
    ix->dir = hdb_malloc(strlen(cat->cfg->data_dir) + 48);
    sprintf(ix->dir, "%s/indices/%" PRIu64, cat->cfg->data_dir, id);
    ix->max_lag_entries = cat->cfg->max_lag_entries;
    ix->max_lag_ms = cat->cfg->max_lag_ms;
    ix->backpressure = strcmp(cat->cfg->lag_mode, "backpressure") == 0;
    atomic_store(&ix->refs, 1);
    if (!load_snapshot) hdb_rmtree(ix->dir, NULL, 0); /* a directory of a new id is a leftover */

    size_t ns = spec->n_split_attributes;
    hdb_attr_type types[ns ? ns : 1];
    for (size_t i = 0; i < ns; i++)
        types[i] = hdb_schema_find(&src->schema, spec->split_attributes[i])->type;
    const hdb_config *cfg = cat->cfg;
    hdb_applier_config ac = {
        .label = ix->label,
        .table = src->table,
        .timeline = hdb_table_timeline(src->table),
        .pool = cat->appliers,
        .params = {.engine = *es,
                   .nsplit = ns,
                   .split_names = (const char *const *)spec->split_attributes,
                   .split_types = types,
                   .nindexed = spec->n_indexed_attributes,
                   .indexed_names = (const char *const *)spec->indexed_attributes},
        .snapshot_dir = ix->dir,
        .load_snapshot = load_snapshot,
        .batch = cfg->apply_batch,
        .snapshot_interval_ms = (int64_t)cfg->snapshot_interval_seconds * 1000,
        .snapshot_min_entries = cfg->snapshot_min_entries,
        .snapshot_every_entries = cfg->snapshot_every_entries,
        .snapshot_every_apply_ms = (int64_t)cfg->snapshot_every_apply_seconds * 1000,
    };
    int rc = hdb_applier_start(&ix->applier, &ac, err, errlen);
    if (rc != HDB_OK) {
        hdb_ixent_unref(ix);
        return rc;
    }
    *out = ix;
    return HDB_OK;
}

void hdb__source_attach_index(hdb_source *src, hdb_ixent *ix) {
    src->indices = hdb_realloc(src->indices, (src->nindices + 1) * sizeof *src->indices);
    src->indices[src->nindices++] = ix;
}

static void source_detach_index(hdb_source *src, hdb_ixent *ix) {
    for (size_t i = 0; i < src->nindices; i++) {
        if (src->indices[i] == ix) {
            memmove(&src->indices[i], &src->indices[i + 1],
                    (src->nindices - i - 1) * sizeof *src->indices);
            src->nindices--;
            return;
        }
    }
}

/* Sorted insertion keeps listings ordered by name, then version. */
static int label_cmp(const char *an, const char *av, const char *bn, const char *bv) {
    int c = strcmp(an, bn);
    return c ? c : strcmp(av, bv);
}

void hdb__registry_add_source(hdb_catalog *cat, hdb_source *src) {
    size_t i = 0;
    while (i < cat->nsources &&
           label_cmp(cat->sources[i]->name, cat->sources[i]->version, src->name, src->version) < 0)
        i++;
    cat->sources = hdb_realloc(cat->sources, (cat->nsources + 1) * sizeof *cat->sources);
    memmove(&cat->sources[i + 1], &cat->sources[i], (cat->nsources - i) * sizeof *cat->sources);
    cat->sources[i] = src;
    cat->nsources++;
}

void hdb__registry_add_index(hdb_catalog *cat, hdb_ixent *ix) {
    size_t i = 0;
    while (i < cat->nindices &&
           label_cmp(cat->indices[i]->name, cat->indices[i]->version, ix->name, ix->version) < 0)
        i++;
    cat->indices = hdb_realloc(cat->indices, (cat->nindices + 1) * sizeof *cat->indices);
    memmove(&cat->indices[i + 1], &cat->indices[i], (cat->nindices - i) * sizeof *cat->indices);
    cat->indices[i] = ix;
    cat->nindices++;
}

/* Looks up under the caller's lock; no reference taken. */
hdb_source *hdb__find_source(hdb_catalog *cat, const char *name, const char *version) {
    for (size_t i = 0; i < cat->nsources; i++)
        if (strcmp(cat->sources[i]->name, name) == 0 &&
            strcmp(cat->sources[i]->version, version) == 0)
            return cat->sources[i];
    return NULL;
}

hdb_ixent *hdb__find_index(hdb_catalog *cat, const char *name, const char *version) {
    for (size_t i = 0; i < cat->nindices; i++)
        if (strcmp(cat->indices[i]->name, name) == 0 &&
            strcmp(cat->indices[i]->version, version) == 0)
            return cat->indices[i];
    return NULL;
}

/* ---------------------------------------------------------------- data sources */

/* Creates a source from a spec that passed hdb__source_spec_check; caller holds ddl. */
int hdb__create_source_locked(hdb_catalog *cat, const Hilbert__V1__DataSourceSpec *spec,
                              hdb_schema *schema, hdb_source **out, char *err, size_t errlen) {
    int rc;
    hdb_arena *arena = hdb_arena_create(0);
    hdb_table *table = NULL;
    unsigned char *bytes = NULL;
    size_t len = 0;
    uint64_t id = hdb_defs_next_id(cat->defs);
    char *label = hdb__make_label(spec->name, spec->version);
    const char *names[schema->nid + schema->nperm + 1];
    hdb_table_spec ts;
    hdb__table_spec(id, label, schema, names, &ts);

    if ((rc = hdb_table_create(&table, cat->store, &ts, err, errlen)) != HDB_OK) goto fail;
    bytes = hdb__catalog_pack(&hdb__source_spec_normalise(spec, arena)->base, &len);
    if ((rc = hdb_defs_put(cat->defs, HDB_DEF_SOURCE, label, id, bytes, len, id + 1, err,
                           errlen)) != HDB_OK)
        goto fail;
    hdb_source *src = hdb__source_new(id, spec->name, spec->version, schema, bytes, len, table);
    bytes = NULL;
    table = NULL;
    pthread_rwlock_wrlock(&cat->lock);
    hdb__registry_add_source(cat, src);
    if (out) {
        hdb_source_ref(src);
        *out = src;
    }
    pthread_rwlock_unlock(&cat->lock);
    HDB_INFO("catalog", "created data source %s (dimension %u, %zu permanent attributes)",
             src->label, src->schema.dim, src->schema.nperm);
fail:
    hdb_table_close(table, true);
    hdb_free(bytes);
    hdb_free(label);
    hdb_arena_free(arena);
    return rc;
}

int hdb_catalog_create_source(hdb_catalog *cat, const Hilbert__V1__DataSourceSpec *spec,
                              hdb_source **out, char *err, size_t errlen) {
    hdb_schema schema;
    int rc = hdb__source_spec_check(spec, cat->cfg, &schema, err, errlen);
    if (rc != HDB_OK) return rc;
    pthread_mutex_lock(&cat->ddl);
    pthread_rwlock_rdlock(&cat->lock);
    bool exists = hdb__find_source(cat, spec->name, spec->version) != NULL;
    pthread_rwlock_unlock(&cat->lock);
    if (exists)
        rc = hdb_errf(err, errlen, HDB_EEXIST, "data source %s@%s already exists", spec->name,
                      spec->version);
    else
        rc = hdb__create_source_locked(cat, spec, &schema, out, err, errlen);
    pthread_mutex_unlock(&cat->ddl);
    hdb__schema_free(&schema); /* no-op when hdb__create_source_locked took it */
    return rc;
}

int hdb_catalog_get_source(hdb_catalog *cat, const char *name, const char *version,
                           hdb_source **out, char *err, size_t errlen) {
    int rc = hdb__ref_check("data_source", name, version, err, errlen);
    if (rc != HDB_OK) return rc;
    pthread_rwlock_rdlock(&cat->lock);
    hdb_source *src = hdb__find_source(cat, name, version);
    if (src) hdb_source_ref(src);
    pthread_rwlock_unlock(&cat->lock);
    if (src == NULL)
        return hdb_errf(err, errlen, HDB_ENOTFOUND, "data_source: %s@%s does not exist", name,
                        version);
    *out = src;
    return HDB_OK;
}

typedef struct {
    hdb_catalog *cat;
    hdb_source *src;
    char *err;
    size_t errlen;
} drop_source_ctx;

static int drop_source_excl(void *arg) {
    drop_source_ctx *d = arg;
    hdb_catalog *cat = d->cat;
    hdb_source *src = d->src;
    if (src->nindices > 0)
        return hdb_errf(d->err, d->errlen, HDB_EPRECOND,
                        "data_source: %s is read by index %s; drop its indices first", src->label,
                        src->indices[0]->label);
    int rc = hdb_defs_delete(cat->defs, HDB_DEF_SOURCE, src->label, d->err, d->errlen);
    if (rc != HDB_OK) return rc;
    pthread_rwlock_wrlock(&cat->lock);
    for (size_t i = 0; i < cat->nsources; i++) {
        if (cat->sources[i] == src) {
            memmove(&cat->sources[i], &cat->sources[i + 1],
                    (cat->nsources - i - 1) * sizeof *cat->sources);
            cat->nsources--;
            break;
        }
    }
    pthread_rwlock_unlock(&cat->lock);
    atomic_store(&src->dropped, true);
    return HDB_OK;
}

/* Drops src; the caller holds ddl and a reference. */
int hdb__drop_source_locked(hdb_catalog *cat, hdb_source *src, char *err, size_t errlen) {
    if (atomic_load(&src->dropped))
        return hdb_errf(err, errlen, HDB_ENOTFOUND, "data_source: %s does not exist", src->label);
    drop_source_ctx d = {cat, src, err, errlen};
    int rc = hdb_table_exclusive(src->table, drop_source_excl, &d);
    if (rc == HDB_OK) {
        HDB_INFO("catalog", "dropped data source %s", src->label);
        hdb_source_unref(src); /* the registry's reference */
    }
    return rc;
}

int hdb_catalog_drop_source(hdb_catalog *cat, const char *name, const char *version, char *err,
                            size_t errlen) {
    hdb_source *src;
    int rc = hdb_catalog_get_source(cat, name, version, &src, err, errlen);
    if (rc != HDB_OK) return rc;
    pthread_mutex_lock(&cat->ddl);
    if (src->owner_kind)
        rc = hdb_errf(err, errlen, HDB_EPRECOND, "data_source: %s belongs to %s %s; drop the %s",
                      src->label, src->owner_kind, src->owner_name, src->owner_kind);
    else
        rc = hdb__drop_source_locked(cat, src, err, errlen);
    pthread_mutex_unlock(&cat->ddl);
    hdb_source_unref(src);
    return rc;
}

size_t hdb_catalog_list_sources(hdb_catalog *cat, hdb_arena *arena, hdb_source ***out) {
    pthread_rwlock_rdlock(&cat->lock);
    size_t n = cat->nsources;
    hdb_source **list = hdb_arena_alloc(arena, (n ? n : 1) * sizeof *list);
    for (size_t i = 0; i < n; i++) {
        list[i] = cat->sources[i];
        hdb_source_ref(list[i]);
    }
    pthread_rwlock_unlock(&cat->lock);
    *out = list;
    return n;
}

size_t hdb_source_index_labels(hdb_catalog *cat, hdb_source *src, hdb_arena *arena,
                               char ***out) {
    pthread_rwlock_rdlock(&cat->lock);
    size_t n = src->nindices;
    char **labels = hdb_arena_alloc(arena, (n ? n : 1) * sizeof *labels);
    for (size_t i = 0; i < n; i++)
        labels[i] = hdb_arena_strndup(arena, src->indices[i]->label, strlen(src->indices[i]->label));
    pthread_rwlock_unlock(&cat->lock);
    *out = labels;
    return n;
}

/* ---------------------------------------------------------------- indices */

typedef struct {
    hdb_catalog *cat;
    hdb_ixent *ix;
    char *err;
    size_t errlen;
} index_excl_ctx;

static int create_index_excl(void *arg) {
    index_excl_ctx *c = arg;
    hdb_catalog *cat = c->cat;
    hdb_ixent *ix = c->ix;
    if (atomic_load(&ix->source->dropped))
        return hdb_errf(c->err, c->errlen, HDB_ENOTFOUND, "spec.data_source: %s does not exist",
                        ix->source->label);
    int rc = hdb_defs_put(cat->defs, HDB_DEF_INDEX, ix->label, ix->id, ix->spec_bytes,
                          ix->spec_len, ix->id + 1, c->err, c->errlen);
    if (rc != HDB_OK) return rc;
    pthread_rwlock_wrlock(&cat->lock);
    hdb__registry_add_index(cat, ix);
    hdb__source_attach_index(ix->source, ix);
    pthread_rwlock_unlock(&cat->lock);
    return HDB_OK;
}

/* Creates an index; caller holds ddl. Messages name the algorithm `algorithm` (NULL:
 * "spec.algorithm"). */
int hdb__index_room_check(hdb_catalog *cat, char *err, size_t errlen) {
    pthread_rwlock_rdlock(&cat->lock);
    size_t n = cat->nindices;
    pthread_rwlock_unlock(&cat->lock);
    if (n >= cat->cfg->max_indices)
        return hdb_errf(err, errlen, HDB_ELIMIT,
                        "index: this server holds %zu indices, limits.max_indices (%u); drop one "
                        "first",
                        n, cat->cfg->max_indices);
    return HDB_OK;
}

int hdb__create_index_locked(hdb_catalog *cat, const Hilbert__V1__IndexSpec *spec,
                             const char *algorithm, hdb_ixent **out, char *err, size_t errlen) {
    int rc;
    hdb_source *src = NULL;
    pthread_rwlock_rdlock(&cat->lock);
    bool exists = hdb__find_index(cat, spec->name, spec->version) != NULL;
    pthread_rwlock_unlock(&cat->lock);
    if (exists)
        return hdb_errf(err, errlen, HDB_EEXIST, "index %s@%s already exists", spec->name,
                        spec->version);
    if ((rc = hdb__index_room_check(cat, err, errlen)) != HDB_OK) return rc;
    if ((rc = hdb_catalog_get_source(cat, spec->data_source->name, spec->data_source->version,
                                     &src, err, errlen)) != HDB_OK) {
        hdb_err_prefix(err, errlen, rc, "spec.");
        return rc;
    }
    hdb_engine_spec es;
    if ((rc = hdb__index_spec_check(spec, &src->schema, src->label, algorithm, &es, err,
                                    errlen)) != HDB_OK) {
        hdb_source_unref(src);
        return rc;
    }
    /* Normalise: the stored spec carries no unknown fields. */
    Hilbert__V1__IndexSpec norm = *spec;
    norm.base.unknown_fields = NULL;
    norm.base.n_unknown_fields = 0;
    size_t len;
    unsigned char *bytes = hdb__catalog_pack(&norm.base, &len);
    hdb_ixent *ix;
    rc = hdb__ixent_start(cat, hdb_defs_next_id(cat->defs), spec, src, &es, false, bytes, len,
                          &ix, err, errlen);
    hdb_source_unref(src); /* ix holds its own reference */
    if (rc != HDB_OK) return rc;
    index_excl_ctx c = {cat, ix, err, errlen};
    rc = hdb_table_exclusive(ix->source->table, create_index_excl, &c);
    if (rc != HDB_OK) {
        hdb_applier_stop(ix->applier, false);
        hdb_rmtree(ix->dir, NULL, 0);
        hdb_ixent_unref(ix);
        return rc;
    }
    HDB_INFO("catalog", "created index %s on %s (%s, %s); building in the background", ix->label,
             ix->source->label, hdb_algo_name(es.algo), hdb_metric_name(ix->metric));
    if (out) {
        hdb_ixent_ref(ix);
        *out = ix;
    }
    return HDB_OK;
}

int hdb_catalog_create_index(hdb_catalog *cat, const Hilbert__V1__IndexSpec *spec,
                             hdb_ixent **out, char *err, size_t errlen) {
    int rc = hdb__index_spec_basic_check(spec, err, errlen);
    if (rc != HDB_OK) return rc;
    pthread_mutex_lock(&cat->ddl);
    rc = hdb__create_index_locked(cat, spec, NULL, out, err, errlen);
    pthread_mutex_unlock(&cat->ddl);
    return rc;
}

/* An index alias resolved to a reference, in one critical section: the alias and its target
 * are read under the same registry lock that a switch takes to replace the aliases. */
static int get_index_by_alias(hdb_catalog *cat, const char *name, hdb_ixent **out, char *err,
                              size_t errlen) {
    int rc = hdb_name_check("index.name", name, err, errlen);
    if (rc != HDB_OK) return rc;
    char target[2 * HDB_NAME_MAX + 2] = "";
    pthread_rwlock_rdlock(&cat->lock);
    const hdb__alias *al = hdb__alias_find(cat, HDB_ALIAS_INDEX, name);
    hdb_ixent *ix = al ? hdb__find_index(cat, al->tname, al->tversion) : NULL;
    if (ix) hdb_ixent_ref(ix);
    if (al) snprintf(target, sizeof target, "%s", al->target);
    pthread_rwlock_unlock(&cat->lock);
    if (ix == NULL && target[0] == '\0')
        return hdb_errf(err, errlen, HDB_ENOTFOUND,
                        "index: no index alias \"%s\" (an empty index.version names an alias)",
                        name);
    if (ix == NULL)
        return hdb_errf(err, errlen, HDB_ENOTFOUND,
                        "index: alias \"%s\" points to index %s, which does not exist", name,
                        target);
    *out = ix;
    return HDB_OK;
}

int hdb_catalog_get_index(hdb_catalog *cat, const char *name, const char *version,
                          hdb_ixent **out, char *err, size_t errlen) {
    if (version != NULL && version[0] == '\0') return get_index_by_alias(cat, name, out, err, errlen);
    int rc = hdb__ref_check("index", name, version, err, errlen);
    if (rc != HDB_OK) return rc;
    pthread_rwlock_rdlock(&cat->lock);
    hdb_ixent *ix = hdb__find_index(cat, name, version);
    if (ix) hdb_ixent_ref(ix);
    pthread_rwlock_unlock(&cat->lock);
    if (ix == NULL)
        return hdb_errf(err, errlen, HDB_ENOTFOUND, "index: %s@%s does not exist", name, version);
    *out = ix;
    return HDB_OK;
}

static int drop_index_excl(void *arg) {
    index_excl_ctx *c = arg;
    hdb_catalog *cat = c->cat;
    hdb_ixent *ix = c->ix;
    int rc = hdb_defs_delete(cat->defs, HDB_DEF_INDEX, ix->label, c->err, c->errlen);
    if (rc != HDB_OK) return rc;
    pthread_rwlock_wrlock(&cat->lock);
    for (size_t i = 0; i < cat->nindices; i++) {
        if (cat->indices[i] == ix) {
            memmove(&cat->indices[i], &cat->indices[i + 1],
                    (cat->nindices - i - 1) * sizeof *cat->indices);
            cat->nindices--;
            break;
        }
    }
    source_detach_index(ix->source, ix);
    pthread_rwlock_unlock(&cat->lock);
    atomic_store(&ix->dropped, true);
    return HDB_OK;
}

/* Drops ix; the caller holds ddl and a reference. */
int hdb__drop_index_locked(hdb_catalog *cat, hdb_ixent *ix, char *err, size_t errlen) {
    if (atomic_load(&ix->dropped))
        return hdb_errf(err, errlen, HDB_ENOTFOUND, "index: %s does not exist", ix->label);
    index_excl_ctx c = {cat, ix, err, errlen};
    int rc = hdb_table_exclusive(ix->source->table, drop_index_excl, &c);
    if (rc == HDB_OK) {
        hdb_applier_stop(ix->applier, false);
        char rmerr[256];
        if (hdb_rmtree(ix->dir, rmerr, sizeof rmerr) != HDB_OK)
            HDB_WARN("catalog", "index %s: %s (removed at the next start)", ix->label, rmerr);
        HDB_INFO("catalog", "dropped index %s", ix->label);
        hdb_ixent_unref(ix); /* the registry's reference */
    }
    return rc;
}

int hdb_catalog_drop_index(hdb_catalog *cat, const char *name, const char *version, char *err,
                           size_t errlen) {
    hdb_ixent *ix;
    char alias[HDB_NAME_MAX + 1];
    /* The version first: an empty one would name an alias, which a drop does not resolve. */
    int rc = hdb__ref_check("index", name, version, err, errlen);
    if (rc == HDB_OK) rc = hdb_catalog_get_index(cat, name, version, &ix, err, errlen);
    if (rc != HDB_OK) return rc;
    pthread_mutex_lock(&cat->ddl);
    if (hdb_catalog_alias_pointing(cat, HDB_ALIAS_INDEX, ix->label, alias))
        rc = hdb_errf(err, errlen, HDB_EPRECOND,
                      "index: %s is the target of index alias \"%s\"; switch or delete the "
                      "alias first",
                      ix->label, alias);
    else if (ix->owner_kind)
        rc = hdb_errf(err, errlen, HDB_EPRECOND, "index: %s belongs to %s %s; drop the %s",
                      ix->label, ix->owner_kind, ix->owner_name, ix->owner_kind);
    else
        rc = hdb__drop_index_locked(cat, ix, err, errlen);
    pthread_mutex_unlock(&cat->ddl);
    hdb_ixent_unref(ix);
    return rc;
}

size_t hdb_catalog_list_indices(hdb_catalog *cat, hdb_arena *arena, hdb_ixent ***out) {
    pthread_rwlock_rdlock(&cat->lock);
    size_t n = cat->nindices;
    hdb_ixent **list = hdb_arena_alloc(arena, (n ? n : 1) * sizeof *list);
    for (size_t i = 0; i < n; i++) {
        list[i] = cat->indices[i];
        hdb_ixent_ref(list[i]);
    }
    pthread_rwlock_unlock(&cat->lock);
    *out = list;
    return n;
}

