/*
 * hdb_catalog_load.c - the catalog at start and stop: every stored definition becomes an object
 * again (sources with their tables, indices with their appliers, aliases), storage that no
 * definition references is removed, and the config's data sources and indices are ensured.
 */
#include "hdb_catalog_int.h"

#include "hdb_applier.h"
#include "hdb_arena.h"
#include "hdb_config.h"
#include "hdb_defs.h"
#include "hdb_err.h"
#include "hdb_file.h"
#include "hdb_log.h"
#include "hdb_mem.h"
#include "hdb_store.h"
#include "hdb_table.h"
#include "hdb_workpool.h"

#include <dirent.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    hdb_catalog *cat;
    hdb_arena *arena;
} load_ctx;

static int load_source(void *arg, const char *label, uint64_t id, const unsigned char *v,
                       size_t vlen, char *err, size_t errlen) {
    load_ctx *l = arg;
    hdb_catalog *cat = l->cat;
    hdb_arena_reset(l->arena);
    Hilbert__V1__DataSourceSpec *spec =
        hilbert__v1__data_source_spec__unpack(hdb_arena_protobuf(l->arena), vlen, v);
    if (spec == NULL)
        return hdb_errf(err, errlen, HDB_ECORRUPT, "catalog entry %s cannot be decoded", label);
    hdb_schema schema = {0};
    int rc = hdb__source_spec_check(spec, NULL, &schema, err, errlen);
    if (rc != HDB_OK) return rc;
    const char *names[schema.nid + schema.nperm + 1];
    hdb_table_spec ts;
    hdb__table_spec(id, label, &schema, names, &ts);
    hdb_table *table;
    if ((rc = hdb_table_open(&table, cat->store, &ts, err, errlen)) != HDB_OK) {
        hdb__schema_free(&schema);
        return hdb_err_prefix(err, errlen, rc, "data source %s: ", spec->name);
    }
    unsigned char *bytes = hdb_malloc(vlen ? vlen : 1);
    memcpy(bytes, v, vlen);
    hdb_source *src = hdb__source_new(id, spec->name, spec->version, &schema, bytes, vlen, table);
    hdb__registry_add_source(cat, src);
    HDB_INFO("catalog", "data source %s: %" PRIu64 " points, last seq %" PRIu64, src->label,
             hdb_table_count(table), hdb_table_last_seq(table));
    return HDB_OK;
}

static int load_index(void *arg, const char *label, uint64_t id, const unsigned char *v,
                      size_t vlen, char *err, size_t errlen) {
    load_ctx *l = arg;
    hdb_catalog *cat = l->cat;
    hdb_arena_reset(l->arena);
    Hilbert__V1__IndexSpec *spec =
        hilbert__v1__index_spec__unpack(hdb_arena_protobuf(l->arena), vlen, v);
    if (spec == NULL || spec->data_source == NULL)
        return hdb_errf(err, errlen, HDB_ECORRUPT, "index catalog entry %s cannot be decoded",
                        label);
    hdb_source *src = hdb__find_source(cat, spec->data_source->name, spec->data_source->version);
    if (src == NULL)
        return hdb_errf(err, errlen, HDB_ECORRUPT, "index %s reads missing data source %s@%s",
                        label, spec->data_source->name, spec->data_source->version);
    hdb_engine_spec es;
    int rc = hdb__index_spec_check(spec, &src->schema, src->label, NULL, &es, err, errlen);
    if (rc != HDB_OK) return rc;
    unsigned char *bytes = hdb_malloc(vlen ? vlen : 1);
    memcpy(bytes, v, vlen);
    hdb_ixent *ix;
    if ((rc = hdb__ixent_start(cat, id, spec, src, &es, true, bytes, vlen, &ix, err, errlen)) !=
        HDB_OK)
        return rc;
    hdb__source_attach_index(src, ix);
    hdb__registry_add_index(cat, ix);
    return HDB_OK;
}

static bool source_exists(void *arg, uint64_t id) {
    hdb_catalog *cat = arg;
    for (size_t i = 0; i < cat->nsources; i++)
        if (cat->sources[i]->id == id) return true;
    return false;
}

/* Removes snapshot directories under data_dir/indices that belong to no index. */
static void drop_orphan_dirs(hdb_catalog *cat) {
    char root[4096];
    snprintf(root, sizeof root, "%s/indices", cat->cfg->data_dir);
    DIR *d = opendir(root);
    if (d == NULL) return;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.') continue;
        char *endp;
        unsigned long long id = strtoull(e->d_name, &endp, 10);
        bool live = false;
        for (size_t i = 0; *endp == '\0' && i < cat->nindices && !live; i++)
            live = cat->indices[i]->id == id;
        if (live) continue;
        char path[4096 + 256];
        snprintf(path, sizeof path, "%s/%s", root, e->d_name);
        char err[256];
        if (hdb_rmtree(path, err, sizeof err) == HDB_OK)
            HDB_WARN("catalog", "removed %s, which belongs to no index (left by an interrupted "
                                "drop)", path);
    }
    closedir(d);
}

void hdb_catalog_start_trimming(hdb_catalog *cat) {
    pthread_rwlock_rdlock(&cat->lock);
    for (size_t i = 0; i < cat->nsources; i++) hdb_table_trim_start(cat->sources[i]->table);
    pthread_rwlock_unlock(&cat->lock);
}

int hdb_catalog_open(hdb_catalog **out, hdb_store *store, const hdb_config *cfg, char *err,
                     size_t errlen) {
    int rc = HDB_OK;
    hdb_catalog *cat = hdb_calloc(1, sizeof *cat);
    cat->store = store;
    cat->cfg = cfg;
    pthread_mutex_init(&cat->ddl, NULL);
    pthread_rwlock_init(&cat->lock, NULL);
    load_ctx l = {cat, hdb_arena_create(0)};
    /* One pool for all appliers, so that the thread count does not grow with the indices. */
    if ((rc = hdb_workpool_create(&cat->appliers, cfg->applier_threads, "hdb-apply", err,
                                  errlen)) != HDB_OK)
        goto fail;
    if ((rc = hdb_defs_open(&cat->defs, store, err, errlen)) != HDB_OK) goto fail;
    /* Sources first, so indices find theirs. (Model spaces claim their pairs after open.) */
    if ((rc = hdb_defs_foreach(cat->defs, HDB_DEF_SOURCE, load_source, &l, err, errlen)) ||
        (rc = hdb_defs_foreach(cat->defs, HDB_DEF_INDEX, load_index, &l, err, errlen)) ||
        (rc = hdb__aliases_load(cat, err, errlen)))
        goto fail;
    hdb_table_drop_orphans(store, source_exists, cat);
    drop_orphan_dirs(cat);
    HDB_INFO("catalog", "%zu data sources, %zu indices, %zu aliases (%d applier threads)",
             cat->nsources, cat->nindices, cat->naliases, hdb_workpool_threads(cat->appliers));
    *out = cat;
    cat = NULL;
fail:
    hdb_arena_free(l.arena);
    if (cat) {
        if (rc != HDB_OK) hdb_err_prefix(err, errlen, rc, "catalog: ");
        hdb_catalog_close(cat);
    }
    return rc;
}

bool hdb_catalog_writable(hdb_catalog *cat) {
    hdb_store_space sp;
    hdb_store_space_get(cat->store, &sp);
    return sp.writable;
}

void hdb_catalog_close(hdb_catalog *cat) {
    if (cat == NULL) return;
    /* No calls are running any more: each applier saves a final snapshot of what it applied. */
    for (size_t i = 0; i < cat->nindices; i++) hdb_applier_stop(cat->indices[i]->applier, true);
    for (size_t i = 0; i < cat->nindices; i++) hdb_ixent_unref(cat->indices[i]);
    for (size_t i = 0; i < cat->nsources; i++) hdb_source_unref(cat->sources[i]);
    /* Every applier has stopped (a dropped index's at its drop): none uses the pool now. */
    hdb_workpool_free(cat->appliers);
    hdb_free(cat->indices);
    hdb_free(cat->sources);
    hdb__aliases_free(cat);
    hdb_defs_close(cat->defs);
    pthread_rwlock_destroy(&cat->lock);
    pthread_mutex_destroy(&cat->ddl);
    hdb_free(cat);
}

/* ---------------------------------------------------------------- ensure at start */

int hdb_catalog_ensure(hdb_catalog *cat, const hdb_config *cfg, char *err, size_t errlen) {
    int rc = HDB_OK;
    hdb_arena *arena = hdb_arena_create(0);
    for (size_t i = 0; i < cfg->n_data_sources && rc == HDB_OK; i++) {
        const Hilbert__V1__DataSourceSpec *spec = cfg->data_sources[i];
        hdb_source *src = NULL;
        if (spec->name && spec->version &&
            hdb_catalog_get_source(cat, spec->name, spec->version, &src, NULL, 0) == HDB_OK) {
            size_t len;
            unsigned char *want = hdb__catalog_pack(&hdb__source_spec_normalise(spec, arena)->base, &len);
            if (len != src->spec_len || memcmp(want, src->spec_bytes, len) != 0)
                rc = hdb_errf(err, errlen, HDB_EPRECOND,
                              "data_sources[%zu]: %s exists with a different definition; drop it "
                              "or make the config match",
                              i, src->label);
            hdb_free(want);
            hdb_source_unref(src);
        } else {
            rc = hdb_catalog_create_source(cat, spec, NULL, err, errlen);
            if (rc != HDB_OK) hdb_err_prefix(err, errlen, rc, "data_sources[%zu]: ", i);
        }
    }
    for (size_t i = 0; i < cfg->n_indices && rc == HDB_OK; i++) {
        const Hilbert__V1__IndexSpec *spec = cfg->indices[i];
        hdb_ixent *ix = NULL;
        if (spec->name && spec->version &&
            hdb_catalog_get_index(cat, spec->name, spec->version, &ix, NULL, 0) == HDB_OK) {
            Hilbert__V1__IndexSpec norm = *spec;
            norm.base.unknown_fields = NULL;
            norm.base.n_unknown_fields = 0;
            size_t len;
            unsigned char *want = hdb__catalog_pack(&norm.base, &len);
            if (len != ix->spec_len || memcmp(want, ix->spec_bytes, len) != 0)
                rc = hdb_errf(err, errlen, HDB_EPRECOND,
                              "indices[%zu]: %s exists with a different definition; drop it or "
                              "make the config match",
                              i, ix->label);
            hdb_free(want);
            hdb_ixent_unref(ix);
        } else {
            rc = hdb_catalog_create_index(cat, spec, NULL, err, errlen);
            if (rc != HDB_OK) hdb_err_prefix(err, errlen, rc, "indices[%zu]: ", i);
        }
    }
    hdb_arena_free(arena);
    return rc;
}
