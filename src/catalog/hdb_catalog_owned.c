/*
 * hdb_catalog_owned.c - owned pairs: a data source plus one index on it that an upper layer
 * (a model space) creates, adopts and drops as one object. The catalog knows only the owner's
 * kind and name, to refuse a plain DropDataSource or DropIndex of the pair.
 *
 * Nothing about owners is stored: the owner's own definition is (hdb_defs.h), and at every
 * start the owner claims its pair again through hdb_catalog_create_owned, which adopts it.
 */
#include "hdb_catalog_int.h"

#include "hdb_arena.h"
#include "hdb_err.h"
#include "hdb_log.h"
#include "hdb_mem.h"

#include <pthread.h>
#include <string.h>

static bool same_bytes(const ProtobufCMessage *want, const unsigned char *have, size_t len) {
    size_t n;
    unsigned char *w = hdb__catalog_pack(want, &n);
    bool same = n == len && memcmp(w, have, n) == 0;
    hdb_free(w);
    return same;
}

/* The index spec as create_index stores it: without unknown fields. */
static Hilbert__V1__IndexSpec index_norm(const Hilbert__V1__IndexSpec *spec) {
    Hilbert__V1__IndexSpec n = *spec;
    n.base.unknown_fields = NULL;
    n.base.n_unknown_fields = 0;
    return n;
}

static void set_owner(char **kind, char **name, const hdb_owned_spec *os) {
    *kind = hdb_strdup(os->owner_kind);
    *name = hdb_strdup(os->owner_name);
}

int hdb_catalog_check_owned(hdb_catalog *cat, const hdb_owned_spec *os, char *err,
                            size_t errlen) {
    hdb_schema schema;
    int rc = hdb__source_spec_check(os->source, cat->cfg, &schema, err, errlen);
    if (rc != HDB_OK) return rc;
    char *label = hdb__make_label(os->source->name, os->source->version);
    hdb_engine_spec es;
    rc = hdb__index_spec_check(os->index, &schema, label, os->algorithm, &es, err, errlen);
    hdb_free(label);
    hdb__schema_free(&schema);
    return rc;
}

/* hdb_catalog_create_owned; the caller holds ddl. */
static int create_owned_locked(hdb_catalog *cat, const hdb_owned_spec *os, hdb_source **src_out,
                               hdb_ixent **ix_out, char *err, size_t errlen) {
    const Hilbert__V1__DataSourceSpec *ds = os->source;
    const Hilbert__V1__IndexSpec *is = os->index;
    hdb_arena *a = hdb_arena_create(0);
    hdb_source *src = NULL;
    hdb_ixent *ix = NULL;
    bool created = false;
    int rc;
    /* Before anything is created (an existing index of the pair is adopted, not counted). */
    if (hdb_catalog_get_index(cat, is->name, is->version, &ix, NULL, 0) == HDB_OK) {
        hdb_ixent_unref(ix);
        ix = NULL;
    } else if ((rc = hdb__index_room_check(cat, err, errlen)) != HDB_OK) {
        goto fail;
    }
    if (hdb_catalog_get_source(cat, ds->name, ds->version, &src, NULL, 0) == HDB_OK) {
        /* A leftover of an interrupted create or drop: adopted only if it is what we need. */
        if (src->owner_kind != NULL) {
            rc = hdb_errf(err, errlen, HDB_EEXIST, "data source %s belongs to %s %s",
                          src->label, src->owner_kind, src->owner_name);
            goto fail;
        }
        if (!same_bytes(&hdb__source_spec_normalise(ds, a)->base, src->spec_bytes,
                        src->spec_len)) {
            rc = hdb_errf(err, errlen, HDB_EEXIST,
                          "data source %s exists with another definition; drop it first",
                          src->label);
            goto fail;
        }
    } else {
        hdb_schema schema;
        if ((rc = hdb__source_spec_check(ds, cat->cfg, &schema, err, errlen)) != HDB_OK)
            goto fail;
        rc = hdb__create_source_locked(cat, ds, &schema, &src, err, errlen);
        hdb__schema_free(&schema);
        if (rc != HDB_OK) goto fail;
        created = true;
    }
    if (hdb_catalog_get_index(cat, is->name, is->version, &ix, NULL, 0) == HDB_OK) {
        Hilbert__V1__IndexSpec n = index_norm(is);
        if (ix->source != src || ix->owner_kind != NULL ||
            !same_bytes(&n.base, ix->spec_bytes, ix->spec_len)) {
            rc = hdb_errf(err, errlen, HDB_EEXIST,
                          "index %s exists with another definition; drop it first", ix->label);
            goto fail;
        }
    } else if ((rc = hdb__create_index_locked(cat, is, os->algorithm, &ix, err, errlen)) !=
               HDB_OK) {
        goto fail;
    }
    set_owner(&src->owner_kind, &src->owner_name, os);
    set_owner(&ix->owner_kind, &ix->owner_name, os);
    *src_out = src;
    *ix_out = ix;
    hdb_arena_free(a);
    return HDB_OK;
fail:
    if (created && hdb__drop_source_locked(cat, src, NULL, 0) != HDB_OK)
        HDB_WARN("catalog", "data source %s is left over; drop it", src->label);
    hdb_ixent_unref(ix);
    hdb_source_unref(src);
    hdb_arena_free(a);
    return rc;
}

int hdb_catalog_create_owned(hdb_catalog *cat, const hdb_owned_spec *os, hdb_source **src,
                             hdb_ixent **ix, char *err, size_t errlen) {
    pthread_mutex_lock(&cat->ddl);
    int rc = create_owned_locked(cat, os, src, ix, err, errlen);
    pthread_mutex_unlock(&cat->ddl);
    return rc;
}

int hdb_catalog_drop_owned(hdb_catalog *cat, hdb_source *src, hdb_ixent *ix, char *err,
                           size_t errlen) {
    pthread_mutex_lock(&cat->ddl);
    HDB_ASSERT(ix->source == src && src->owner_kind != NULL && ix->owner_kind != NULL);
    int rc = atomic_load(&ix->dropped) ? HDB_OK : hdb__drop_index_locked(cat, ix, err, errlen);
    if (rc == HDB_OK && !atomic_load(&src->dropped))
        rc = hdb__drop_source_locked(cat, src, err, errlen);
    pthread_mutex_unlock(&cat->ddl);
    return rc;
}

hdb_defs *hdb_catalog_defs(hdb_catalog *cat) {
    return cat->defs;
}
