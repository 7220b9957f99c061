/*
 * hdb_catalog.c - data source and index definitions: validation, persistence, lifecycle.
 *
 * Catalog column family layout:
 *   'S' + "name@version" -> u64 id (LE) + packed DataSourceSpec (normalised)
 *   'X' + "name@version" -> u64 id (LE) + packed IndexSpec (normalised)
 *   'N'                  -> u64 next id (LE)
 * A source with id n owns the column families "points.<n>" and "timeline.<n>".
 *
 * Locking order: ddl mutex -> a source's commit queue (exclusive) -> catalog rwlock.
 * The upload path takes only the commit queue (its lookup takes the rwlock briefly, before).
 */
#include "hdb_catalog.h"

#include "hdb_applier.h"
#include "hdb_arena.h"
#include "hdb_commit.h"
#include "hdb_config.h"
#include "hdb_engine.h"
#include "hdb_err.h"
#include "hdb_file.h"
#include "hdb_index.h"
#include "hdb_log.h"
#include "hdb_mem.h"
#include "hdb_record.h"
#include "hdb_store.h"

#include <dirent.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define CATALOG_CF "catalog"

struct hdb_catalog {
    hdb_store *store;
    const hdb_config *cfg;
    hdb_cf *cf;
    pthread_mutex_t ddl;   /* serialises create and drop */
    pthread_rwlock_t lock; /* guards the arrays below */
    hdb_source **sources;
    size_t nsources;
    hdb_ixent **indices;
    size_t nindices;
    uint64_t next_id; /* guarded by ddl */
};

/* ---------------------------------------------------------------- small helpers */

static unsigned char *pack_message(const ProtobufCMessage *m, size_t *len) {
    size_t n = protobuf_c_message_get_packed_size(m);
    unsigned char *p = hdb_malloc(n ? n : 1);
    protobuf_c_message_pack(m, p);
    *len = n;
    return p;
}

static void put_le64(unsigned char *out, uint64_t v) {
    for (int i = 0; i < 8; i++) out[i] = (unsigned char)(v >> (8 * i));
}

static uint64_t get_le64(const unsigned char *in) {
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = (v << 8) | in[i];
    return v;
}

static char *make_label(const char *name, const char *version) {
    size_t n = strlen(name) + strlen(version) + 2;
    char *l = hdb_malloc(n);
    snprintf(l, n, "%s@%s", name, version);
    return l;
}

/* Catalog key: kind byte + "name@version". */
static size_t catalog_key(char kind, const char *label, unsigned char *buf, size_t cap) {
    size_t n = strlen(label);
    HDB_ASSERT(n + 1 <= cap);
    buf[0] = (unsigned char)kind;
    memcpy(buf + 1, label, n);
    return n + 1;
}

static int persist_entry(hdb_catalog *cat, char kind, const char *label, uint64_t id,
                         const unsigned char *spec, size_t spec_len, bool bump_next_id,
                         char *err, size_t errlen) {
    unsigned char key[2 * HDB_NAME_MAX + 8];
    size_t klen = catalog_key(kind, label, key, sizeof key);
    unsigned char *val = hdb_malloc(8 + spec_len);
    put_le64(val, id);
    memcpy(val + 8, spec, spec_len);
    hdb_batch *b = hdb_batch_create();
    hdb_batch_put(b, cat->cf, key, klen, val, 8 + spec_len);
    if (bump_next_id) {
        unsigned char next[8];
        put_le64(next, cat->next_id);
        hdb_batch_put(b, cat->cf, "N", 1, next, 8);
    }
    int rc = hdb_store_write(cat->store, b, err, errlen);
    hdb_batch_free(b);
    hdb_free(val);
    return rc;
}

static int unpersist_entry(hdb_catalog *cat, char kind, const char *label, char *err,
                           size_t errlen) {
    unsigned char key[2 * HDB_NAME_MAX + 8];
    size_t klen = catalog_key(kind, label, key, sizeof key);
    return hdb_store_delete(cat->store, cat->cf, key, klen, err, errlen);
}

static void cf_names(uint64_t id, char *points, char *timeline, size_t cap) {
    snprintf(points, cap, "points.%llu", (unsigned long long)id);
    snprintf(timeline, cap, "timeline.%llu", (unsigned long long)id);
}

/* ---------------------------------------------------------------- validation */

const hdb_attr_spec *hdb_schema_find(const hdb_schema *s, const char *name) {
    size_t lo = 0, hi = s->nperm;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(s->perm[mid].name, name);
        if (c == 0) return &s->perm[mid];
        if (c < 0) lo = mid + 1;
        else hi = mid;
    }
    return NULL;
}

static int attr_spec_cmp(const void *a, const void *b) {
    return strcmp(((const hdb_attr_spec *)a)->name, ((const hdb_attr_spec *)b)->name);
}

static void schema_free(hdb_schema *s) {
    for (size_t i = 0; i < s->nperm; i++) hdb_free(s->perm[i].name);
    hdb_free(s->perm);
    hdb_free(s->id);
    memset(s, 0, sizeof *s);
}

/* Validates a data source spec and builds its schema. With limits, checks the configured
 * limits too (not done for stored definitions, which were checked when created). Messages
 * name the field under "spec.". */
static int source_spec_check(const Hilbert__V1__DataSourceSpec *spec, const hdb_config *limits,
                             hdb_schema *schema, char *err, size_t errlen) {
    int rc;
    memset(schema, 0, sizeof *schema);
    if (spec == NULL) return hdb_errf(err, errlen, HDB_EINVAL, "spec: is required");
    if ((rc = hdb_name_check("spec.name", spec->name, err, errlen)) != HDB_OK) return rc;
    if ((rc = hdb_name_check("spec.version", spec->version, err, errlen)) != HDB_OK) return rc;
    if (spec->vector_kind != HILBERT__V1__VECTOR_KIND__VECTOR_KIND_UNSPECIFIED &&
        spec->vector_kind != HILBERT__V1__VECTOR_KIND__VECTOR_KIND_DENSE &&
        spec->vector_kind != HILBERT__V1__VECTOR_KIND__VECTOR_KIND_SPARSE)
        return hdb_errf(err, errlen, HDB_EINVAL,
                        "spec.vector_kind: unknown value %d (DENSE or SPARSE)",
                        (int)spec->vector_kind);
    bool sparse = spec->vector_kind == HILBERT__V1__VECTOR_KIND__VECTOR_KIND_SPARSE;
    if (spec->dimension == 0)
        return hdb_errf(err, errlen, HDB_EINVAL, "spec.dimension: must be >= 1");
    if (limits && !sparse && spec->dimension > limits->max_dimension)
        return hdb_errf(err, errlen, HDB_EINVAL,
                        "spec.dimension: %u exceeds limits.max_dimension (%u)", spec->dimension,
                        limits->max_dimension);
    if (limits && spec->n_permanent_attributes > limits->max_attributes)
        return hdb_errf(err, errlen, HDB_EINVAL,
                        "spec.permanent_attributes: %zu attributes exceed limits.max_attributes "
                        "(%u)",
                        spec->n_permanent_attributes, limits->max_attributes);
    if (spec->n_id_attributes == 0)
        return hdb_errf(err, errlen, HDB_EINVAL,
                        "spec.id_attributes: at least one id attribute is required");

    schema->dim = spec->dimension;
    schema->sparse = sparse;
    schema->nperm = spec->n_permanent_attributes;
    schema->perm = hdb_calloc(schema->nperm ? schema->nperm : 1, sizeof *schema->perm);
    for (size_t i = 0; i < spec->n_permanent_attributes; i++) {
        const Hilbert__V1__AttributeSpec *a = spec->permanent_attributes[i];
        char what[64];
        snprintf(what, sizeof what, "spec.permanent_attributes[%zu].name", i);
        if ((rc = hdb_name_check(what, a->name, err, errlen)) != HDB_OK) goto fail;
        if ((int)a->type < 1 || (int)a->type > HDB_ATTR_TYPE_MAX) {
            rc = hdb_errf(err, errlen, HDB_EINVAL,
                          "spec.permanent_attributes[%zu].type: attribute \"%s\" needs a type "
                          "(string, int64, float64, bool, bytes or timestamp)",
                          i, a->name);
            goto fail;
        }
        schema->perm[i].name = hdb_strdup(a->name);
        schema->perm[i].type = (hdb_attr_type)a->type;
    }
    qsort(schema->perm, schema->nperm, sizeof *schema->perm, attr_spec_cmp);
    for (size_t i = 1; i < schema->nperm; i++) {
        if (strcmp(schema->perm[i - 1].name, schema->perm[i].name) == 0) {
            rc = hdb_errf(err, errlen, HDB_EINVAL,
                          "spec.permanent_attributes: \"%s\" is declared twice",
                          schema->perm[i].name);
            goto fail;
        }
    }
    schema->nid = spec->n_id_attributes;
    schema->id = hdb_calloc(schema->nid, sizeof *schema->id);
    for (size_t i = 0; i < spec->n_id_attributes; i++) {
        const char *name = spec->id_attributes[i];
        const hdb_attr_spec *a = hdb_schema_find(schema, name);
        if (a == NULL) {
            rc = hdb_errf(err, errlen, HDB_EINVAL,
                          "spec.id_attributes[%zu]: \"%s\" is not a permanent attribute", i, name);
            goto fail;
        }
        if (a->type == HDB_ATTR_FLOAT64) {
            rc = hdb_errf(err, errlen, HDB_EINVAL,
                          "spec.id_attributes[%zu]: \"%s\" is float64, which cannot identify a "
                          "point",
                          i, name);
            goto fail;
        }
        for (size_t j = 0; j < i; j++) {
            if (schema->id[j] == a) {
                rc = hdb_errf(err, errlen, HDB_EINVAL,
                              "spec.id_attributes[%zu]: \"%s\" is listed twice", i, name);
                goto fail;
            }
        }
        schema->id[i] = a;
    }
    return HDB_OK;
fail:
    schema_free(schema);
    return rc;
}

/* Copies spec with defaults filled in (an unspecified vector_kind becomes DENSE) into arena
 * memory. */
static Hilbert__V1__DataSourceSpec *source_spec_normalise(const Hilbert__V1__DataSourceSpec *spec,
                                                          hdb_arena *arena) {
    Hilbert__V1__DataSourceSpec *n = hdb_arena_alloc(arena, sizeof *n);
    *n = *spec;
    n->base.unknown_fields = NULL;
    n->base.n_unknown_fields = 0;
    if (n->vector_kind == HILBERT__V1__VECTOR_KIND__VECTOR_KIND_UNSPECIFIED)
        n->vector_kind = HILBERT__V1__VECTOR_KIND__VECTOR_KIND_DENSE;
    return n;
}

/* Validates an index spec against its source and derives the engine spec. Messages name the
 * field under "spec.". */
static int index_spec_check(const Hilbert__V1__IndexSpec *spec, const hdb_source *src,
                            hdb_engine_spec *es, char *err, size_t errlen) {
    const hdb_schema *s = &src->schema;
    const Hilbert__V1__IndexAlgorithm *alg = spec->algorithm;
    memset(es, 0, sizeof *es);
    if (alg == NULL || alg->kind_case == HILBERT__V1__INDEX_ALGORITHM__KIND__NOT_SET)
        return hdb_errf(err, errlen, HDB_EINVAL,
                        "spec.algorithm: is required (flat, faiss, hnsw or sparse)");
    switch (alg->kind_case) {
    case HILBERT__V1__INDEX_ALGORITHM__KIND_FLAT: es->algo = HDB_ALGO_FLAT; break;
    case HILBERT__V1__INDEX_ALGORITHM__KIND_FAISS:
        es->algo = HDB_ALGO_FAISS;
        if (alg->faiss->factory == NULL || strlen(alg->faiss->factory) >= sizeof es->factory)
            return hdb_errf(err, errlen, HDB_EINVAL,
                            "spec.algorithm.faiss.factory: must be 1 to %zu characters",
                            sizeof es->factory - 1);
        snprintf(es->factory, sizeof es->factory, "%s", alg->faiss->factory);
        es->nprobe = alg->faiss->nprobe;
        es->train_size = alg->faiss->train_size;
        break;
    case HILBERT__V1__INDEX_ALGORITHM__KIND_HNSW:
        es->algo = HDB_ALGO_HNSW;
        es->m = alg->hnsw->m;
        es->ef_construction = alg->hnsw->ef_construction;
        es->ef_search = alg->hnsw->ef_search;
        break;
    case HILBERT__V1__INDEX_ALGORITHM__KIND_SPARSE: es->algo = HDB_ALGO_SPARSE; break;
    default:
        return hdb_errf(err, errlen, HDB_EINVAL, "spec.algorithm: unknown algorithm %d",
                        (int)alg->kind_case);
    }
    if (s->sparse != (es->algo == HDB_ALGO_SPARSE))
        return hdb_errf(err, errlen, HDB_EINVAL,
                        s->sparse ? "spec.algorithm: data source %s holds sparse vectors; use "
                                    "the sparse algorithm"
                                  : "spec.algorithm: the sparse algorithm needs a sparse data "
                                    "source; %s is dense",
                        src->label);
    if ((int)spec->metric < HDB_METRIC_L2 || (int)spec->metric > HDB_METRIC_JACCARD)
        return hdb_errf(err, errlen, HDB_EINVAL,
                        "spec.metric: is required (L2, INNER_PRODUCT, COSINE or JACCARD)");
    es->metric = (hdb_metric)spec->metric;
    es->dim = s->dim;
    int rc = hdb_engine_check(es, err, errlen);
    if (rc != HDB_OK) return rc;
    for (size_t i = 0; i < spec->n_split_attributes; i++) {
        const char *name = spec->split_attributes[i];
        const hdb_attr_spec *a = hdb_schema_find(s, name);
        if (a == NULL)
            return hdb_errf(err, errlen, HDB_EINVAL,
                            "spec.split_attributes[%zu]: \"%s\" is not a permanent attribute of "
                            "data source %s",
                            i, name, src->label);
        if (a->type == HDB_ATTR_FLOAT64)
            return hdb_errf(err, errlen, HDB_EINVAL,
                            "spec.split_attributes[%zu]: \"%s\" is float64, which cannot name a "
                            "split",
                            i, name);
        for (size_t j = 0; j < i; j++)
            if (strcmp(spec->split_attributes[j], name) == 0)
                return hdb_errf(err, errlen, HDB_EINVAL,
                                "spec.split_attributes[%zu]: \"%s\" is listed twice", i, name);
    }
    return HDB_OK;
}

static int ref_check(const char *what, const char *name, const char *version, char *err,
                     size_t errlen) {
    char field[64];
    snprintf(field, sizeof field, "%s.name", what);
    int rc = hdb_name_check(field, name, err, errlen);
    if (rc != HDB_OK) return rc;
    snprintf(field, sizeof field, "%s.version", what);
    return hdb_name_check(field, version, err, errlen);
}

/* ---------------------------------------------------------------- objects */

static void source_destroy(hdb_source *src) {
    if (src->dropped) {
        char err[256];
        if (hdb_store_cf_drop(src->store, src->points_cf, err, sizeof err) != HDB_OK)
            HDB_ERROR("catalog", "drop of %s points failed: %s", src->label, err);
        if (hdb_store_cf_drop(src->store, src->timeline_cf, err, sizeof err) != HDB_OK)
            HDB_ERROR("catalog", "drop of %s timeline failed: %s", src->label, err);
        HDB_INFO("catalog", "data source %s dropped, storage released", src->label);
    }
    hdb_commit_free(src->commit);
    schema_free(&src->schema);
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

/* Reads the last seq of a timeline (0 when empty). */
static int timeline_last_seq(hdb_store *store, hdb_cf *cf, uint64_t *out, char *err,
                             size_t errlen) {
    hdb_iter *it = hdb_iter_create(store, cf, NULL);
    hdb_iter_seek_last(it);
    *out = 0;
    int rc = HDB_OK;
    if (hdb_iter_valid(it)) {
        size_t klen;
        const unsigned char *k = hdb_iter_key(it, &klen);
        if (klen != HDB_SEQ_KEY_LEN)
            rc = hdb_errf(err, errlen, HDB_ECORRUPT, "timeline key of %zu bytes", klen);
        else
            *out = hdb_get_be64(k);
    } else {
        rc = hdb_iter_status(it, err, errlen);
    }
    hdb_iter_free(it);
    return rc;
}

/* Counts the live points ('I' keys) of a source. */
static int count_points(hdb_store *store, hdb_cf *cf, int64_t *out, char *err, size_t errlen) {
    hdb_iter *it = hdb_iter_create(store, cf, NULL);
    int64_t n = 0;
    for (hdb_iter_seek(it, "I", 1); hdb_iter_valid(it); hdb_iter_next(it)) {
        size_t klen;
        const unsigned char *k = hdb_iter_key(it, &klen);
        if (klen == 0 || k[0] != 'I') break;
        n++;
    }
    int rc = hdb_iter_status(it, err, errlen);
    hdb_iter_free(it);
    *out = n;
    return rc;
}

/* Builds a source object around an existing or new pair of column families. Takes ownership
 * of schema and spec_bytes. The object starts with one reference (the registry's). */
static hdb_source *source_new(hdb_catalog *cat, uint64_t id, const char *name,
                              const char *version, hdb_schema *schema, unsigned char *spec_bytes,
                              size_t spec_len, hdb_cf *points, hdb_cf *timeline,
                              uint64_t last_seq, int64_t count) {
    hdb_source *src = hdb_calloc(1, sizeof *src);
    src->id = id;
    src->name = hdb_strdup(name);
    src->version = hdb_strdup(version);
    src->label = make_label(name, version);
    src->schema = *schema;
    memset(schema, 0, sizeof *schema);
    src->spec_bytes = spec_bytes;
    src->spec_len = spec_len;
    src->store = cat->store;
    src->points_cf = points;
    src->timeline_cf = timeline;
    src->commit = hdb_commit_create(cat->store, last_seq);
    atomic_store(&src->point_count, count);
    atomic_store(&src->refs, 1);
    return src;
}

/* Creates the index object for a validated spec; its applier is started separately. */
static hdb_ixent *ixent_new(hdb_catalog *cat, uint64_t id, const Hilbert__V1__IndexSpec *spec,
                            hdb_source *src, unsigned char *spec_bytes, size_t spec_len) {
    hdb_ixent *ix = hdb_calloc(1, sizeof *ix);
    ix->id = id;
    ix->name = hdb_strdup(spec->name);
    ix->version = hdb_strdup(spec->version);
    ix->label = make_label(spec->name, spec->version);
    ix->spec_bytes = spec_bytes;
    ix->spec_len = spec_len;
    ix->metric = (hdb_metric)spec->metric;
    hdb_source_ref(src);
    ix->source = src;
    ix->dir = hdb_malloc(strlen(cat->cfg->data_dir) + 48);
    sprintf(ix->dir, "%s/indices/%" PRIu64, cat->cfg->data_dir, id);
    atomic_store(&ix->refs, 1);
    return ix;
}

/* Starts the applier of ix (spec validated, es derived from it). */
static int ixent_start(hdb_catalog *cat, hdb_ixent *ix, const Hilbert__V1__IndexSpec *spec,
                       const hdb_engine_spec *es, bool load_snapshot, char *err, size_t errlen) {
    hdb_source *src = ix->source;
    size_t ns = spec->n_split_attributes;
    hdb_attr_type types[ns ? ns : 1];
    for (size_t i = 0; i < ns; i++)
        types[i] = hdb_schema_find(&src->schema, spec->split_attributes[i])->type;
    const hdb_config *cfg = cat->cfg;
    hdb_applier_config ac = {
        .label = ix->label,
        .store = cat->store,
        .points_cf = src->points_cf,
        .timeline_cf = src->timeline_cf,
        .commit = src->commit,
        .params = {.engine = *es,
                   .nsplit = ns,
                   .split_names = (const char *const *)spec->split_attributes,
                   .split_types = types},
        .snapshot_dir = ix->dir,
        .load_snapshot = load_snapshot,
        .batch = cfg->apply_batch,
        .snapshot_interval_ms = (int64_t)cfg->snapshot_interval_seconds * 1000,
        .snapshot_min_entries = cfg->snapshot_min_entries,
    };
    return hdb_applier_start(&ix->applier, &ac, err, errlen);
}

static void source_attach_index(hdb_source *src, hdb_ixent *ix) {
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

static void registry_add_source(hdb_catalog *cat, hdb_source *src) {
    size_t i = 0;
    while (i < cat->nsources &&
           label_cmp(cat->sources[i]->name, cat->sources[i]->version, src->name, src->version) < 0)
        i++;
    cat->sources = hdb_realloc(cat->sources, (cat->nsources + 1) * sizeof *cat->sources);
    memmove(&cat->sources[i + 1], &cat->sources[i], (cat->nsources - i) * sizeof *cat->sources);
    cat->sources[i] = src;
    cat->nsources++;
}

static void registry_add_index(hdb_catalog *cat, hdb_ixent *ix) {
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
static hdb_source *find_source(hdb_catalog *cat, const char *name, const char *version) {
    for (size_t i = 0; i < cat->nsources; i++)
        if (strcmp(cat->sources[i]->name, name) == 0 &&
            strcmp(cat->sources[i]->version, version) == 0)
            return cat->sources[i];
    return NULL;
}

static hdb_ixent *find_index(hdb_catalog *cat, const char *name, const char *version) {
    for (size_t i = 0; i < cat->nindices; i++)
        if (strcmp(cat->indices[i]->name, name) == 0 &&
            strcmp(cat->indices[i]->version, version) == 0)
            return cat->indices[i];
    return NULL;
}

/* ---------------------------------------------------------------- open / close */

typedef struct {
    hdb_catalog *cat;
    size_t dropped;
} orphan_ctx;

static bool cf_is_referenced(hdb_catalog *cat, const char *name) {
    if (strcmp(name, "default") == 0 || strcmp(name, CATALOG_CF) == 0) return true;
    for (size_t i = 0; i < cat->nsources; i++) {
        if (strcmp(hdb_cf_name(cat->sources[i]->points_cf), name) == 0 ||
            strcmp(hdb_cf_name(cat->sources[i]->timeline_cf), name) == 0)
            return true;
    }
    return false;
}

static void drop_orphan(const char *name, void *arg) {
    orphan_ctx *o = arg;
    if (cf_is_referenced(o->cat, name)) return;
    hdb_cf *cf = hdb_store_cf(o->cat->store, name);
    char err[256];
    if (cf && hdb_store_cf_drop(o->cat->store, cf, err, sizeof err) == HDB_OK) {
        HDB_WARN("catalog", "dropped column family %s, which no definition references (left "
                            "by an interrupted create or drop)",
                 name);
        o->dropped++;
    }
}

static int load_source(hdb_catalog *cat, const unsigned char *k, size_t klen,
                       const unsigned char *v, size_t vlen, hdb_arena *arena, char *err,
                       size_t errlen) {
    int rc;
    hdb_schema schema = {0};
    if (vlen < 8) return hdb_errf(err, errlen, HDB_ECORRUPT, "catalog entry too short");
    uint64_t id = get_le64(v);
    Hilbert__V1__DataSourceSpec *spec =
        hilbert__v1__data_source_spec__unpack(hdb_arena_protobuf(arena), vlen - 8, v + 8);
    if (spec == NULL)
        return hdb_errf(err, errlen, HDB_ECORRUPT, "catalog entry %.*s cannot be decoded",
                        (int)klen - 1, k + 1);
    if ((rc = source_spec_check(spec, NULL, &schema, err, errlen)) != HDB_OK) return rc;
    char pn[64], tn[64];
    cf_names(id, pn, tn, sizeof pn);
    hdb_cf *points = hdb_store_cf(cat->store, pn), *timeline = hdb_store_cf(cat->store, tn);
    if (points == NULL || timeline == NULL) {
        schema_free(&schema);
        return hdb_errf(err, errlen, HDB_ECORRUPT, "data source %s: column family %s is missing",
                        spec->name, points ? tn : pn);
    }
    uint64_t last_seq;
    int64_t count;
    if ((rc = timeline_last_seq(cat->store, timeline, &last_seq, err, errlen)) != HDB_OK ||
        (rc = count_points(cat->store, points, &count, err, errlen)) != HDB_OK) {
        schema_free(&schema);
        return rc;
    }
    unsigned char *bytes = hdb_malloc(vlen - 8);
    memcpy(bytes, v + 8, vlen - 8);
    hdb_source *src = source_new(cat, id, spec->name, spec->version, &schema, bytes, vlen - 8,
                                 points, timeline, last_seq, count);
    registry_add_source(cat, src);
    HDB_INFO("catalog", "data source %s: %lld points, last seq %llu", src->label,
             (long long)count, (unsigned long long)last_seq);
    return HDB_OK;
}

static int load_index(hdb_catalog *cat, const unsigned char *v, size_t vlen, hdb_arena *arena,
                      char *err, size_t errlen) {
    if (vlen < 8) return hdb_errf(err, errlen, HDB_ECORRUPT, "catalog entry too short");
    uint64_t id = get_le64(v);
    Hilbert__V1__IndexSpec *spec =
        hilbert__v1__index_spec__unpack(hdb_arena_protobuf(arena), vlen - 8, v + 8);
    if (spec == NULL || spec->data_source == NULL)
        return hdb_errf(err, errlen, HDB_ECORRUPT, "index catalog entry cannot be decoded");
    hdb_source *src = find_source(cat, spec->data_source->name, spec->data_source->version);
    if (src == NULL)
        return hdb_errf(err, errlen, HDB_ECORRUPT, "index %s@%s reads missing data source %s@%s",
                        spec->name, spec->version, spec->data_source->name,
                        spec->data_source->version);
    hdb_engine_spec es;
    int rc = index_spec_check(spec, src, &es, err, errlen);
    if (rc != HDB_OK) return rc;
    unsigned char *bytes = hdb_malloc(vlen - 8);
    memcpy(bytes, v + 8, vlen - 8);
    hdb_ixent *ix = ixent_new(cat, id, spec, src, bytes, vlen - 8);
    if ((rc = ixent_start(cat, ix, spec, &es, true, err, errlen)) != HDB_OK) {
        hdb_ixent_unref(ix);
        return rc;
    }
    source_attach_index(src, ix);
    registry_add_index(cat, ix);
    return HDB_OK;
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

int hdb_catalog_open(hdb_catalog **out, hdb_store *store, const hdb_config *cfg, char *err,
                     size_t errlen) {
    int rc = HDB_OK;
    hdb_arena *arena = hdb_arena_create(0);
    hdb_iter *it = NULL;
    hdb_catalog *cat = hdb_calloc(1, sizeof *cat);
    cat->store = store;
    cat->cfg = cfg;
    cat->next_id = 1;
    pthread_mutex_init(&cat->ddl, NULL);
    pthread_rwlock_init(&cat->lock, NULL);

    cat->cf = hdb_store_cf(store, CATALOG_CF);
    if (cat->cf == NULL && (rc = hdb_store_cf_create(store, CATALOG_CF, &cat->cf, err, errlen)))
        goto fail;

    /* Sources first ('S' < 'X'), so indices find theirs. */
    it = hdb_iter_create(store, cat->cf, NULL);
    for (hdb_iter_seek_first(it); hdb_iter_valid(it); hdb_iter_next(it)) {
        size_t klen, vlen;
        const unsigned char *k = hdb_iter_key(it, &klen);
        const unsigned char *v = hdb_iter_value(it, &vlen);
        hdb_arena_reset(arena);
        if (klen == 1 && k[0] == 'N') {
            if (vlen != 8) {
                rc = hdb_errf(err, errlen, HDB_ECORRUPT, "catalog: bad next-id entry");
                goto fail;
            }
            cat->next_id = get_le64(v);
        } else if (klen > 1 && k[0] == 'S') {
            if ((rc = load_source(cat, k, klen, v, vlen, arena, err, errlen)) != HDB_OK) goto fail;
        } else if (klen > 1 && k[0] == 'X') {
            if ((rc = load_index(cat, v, vlen, arena, err, errlen)) != HDB_OK) goto fail;
        } else {
            rc = hdb_errf(err, errlen, HDB_ECORRUPT, "catalog: unknown entry of %zu bytes", klen);
            goto fail;
        }
    }
    if ((rc = hdb_iter_status(it, err, errlen)) != HDB_OK) goto fail;
    hdb_iter_free(it);
    it = NULL;

    orphan_ctx o = {cat, 0};
    hdb_store_cf_foreach(store, drop_orphan, &o);
    drop_orphan_dirs(cat);
    HDB_INFO("catalog", "%zu data sources, %zu indices", cat->nsources, cat->nindices);
    *out = cat;
    cat = NULL;
fail:
    hdb_iter_free(it);
    hdb_arena_free(arena);
    if (cat) {
        if (rc != HDB_OK) hdb_err_prefix(err, errlen, rc, "catalog: ");
        hdb_catalog_close(cat);
    }
    return rc;
}

void hdb_catalog_close(hdb_catalog *cat) {
    if (cat == NULL) return;
    /* No calls are running any more: each applier catches up and saves a final snapshot. */
    for (size_t i = 0; i < cat->nindices; i++) hdb_applier_stop(cat->indices[i]->applier, true);
    for (size_t i = 0; i < cat->nindices; i++) hdb_ixent_unref(cat->indices[i]);
    for (size_t i = 0; i < cat->nsources; i++) hdb_source_unref(cat->sources[i]);
    hdb_free(cat->indices);
    hdb_free(cat->sources);
    pthread_rwlock_destroy(&cat->lock);
    pthread_mutex_destroy(&cat->ddl);
    hdb_free(cat);
}

/* ---------------------------------------------------------------- data sources */

/* Creates a source from a spec that passed source_spec_check; caller holds ddl. */
static int create_source_locked(hdb_catalog *cat, const Hilbert__V1__DataSourceSpec *spec,
                                hdb_schema *schema, hdb_source **out, char *err, size_t errlen) {
    int rc;
    hdb_arena *arena = hdb_arena_create(0);
    hdb_cf *points = NULL, *timeline = NULL;
    unsigned char *bytes = NULL;
    size_t len = 0;
    uint64_t id = cat->next_id;
    char pn[64], tn[64];
    char *label = make_label(spec->name, spec->version);
    cf_names(id, pn, tn, sizeof pn);

    if ((rc = hdb_store_cf_create(cat->store, pn, &points, err, errlen)) != HDB_OK) goto fail;
    if ((rc = hdb_store_cf_create(cat->store, tn, &timeline, err, errlen)) != HDB_OK) goto fail;
    bytes = pack_message(&source_spec_normalise(spec, arena)->base, &len);
    cat->next_id = id + 1;
    if ((rc = persist_entry(cat, 'S', label, id, bytes, len, true, err, errlen)) != HDB_OK) {
        cat->next_id = id;
        goto fail;
    }
    hdb_source *src = source_new(cat, id, spec->name, spec->version, schema, bytes, len, points,
                                 timeline, 0, 0);
    bytes = NULL;
    points = timeline = NULL;
    pthread_rwlock_wrlock(&cat->lock);
    registry_add_source(cat, src);
    if (out) {
        hdb_source_ref(src);
        *out = src;
    }
    pthread_rwlock_unlock(&cat->lock);
    HDB_INFO("catalog", "created data source %s (dimension %u, %zu permanent attributes)",
             src->label, src->schema.dim, src->schema.nperm);
fail:
    if (points) hdb_store_cf_drop(cat->store, points, NULL, 0);
    if (timeline) hdb_store_cf_drop(cat->store, timeline, NULL, 0);
    hdb_free(bytes);
    hdb_free(label);
    hdb_arena_free(arena);
    return rc;
}

int hdb_catalog_create_source(hdb_catalog *cat, const Hilbert__V1__DataSourceSpec *spec,
                              hdb_source **out, char *err, size_t errlen) {
    hdb_schema schema;
    int rc = source_spec_check(spec, cat->cfg, &schema, err, errlen);
    if (rc != HDB_OK) return rc;
    pthread_mutex_lock(&cat->ddl);
    pthread_rwlock_rdlock(&cat->lock);
    bool exists = find_source(cat, spec->name, spec->version) != NULL;
    pthread_rwlock_unlock(&cat->lock);
    if (exists)
        rc = hdb_errf(err, errlen, HDB_EEXIST, "data source %s@%s already exists", spec->name,
                      spec->version);
    else
        rc = create_source_locked(cat, spec, &schema, out, err, errlen);
    pthread_mutex_unlock(&cat->ddl);
    schema_free(&schema); /* no-op when create_source_locked took it */
    return rc;
}

int hdb_catalog_get_source(hdb_catalog *cat, const char *name, const char *version,
                           hdb_source **out, char *err, size_t errlen) {
    int rc = ref_check("data_source", name, version, err, errlen);
    if (rc != HDB_OK) return rc;
    pthread_rwlock_rdlock(&cat->lock);
    hdb_source *src = find_source(cat, name, version);
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
    int rc = unpersist_entry(cat, 'S', src->label, d->err, d->errlen);
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

int hdb_catalog_drop_source(hdb_catalog *cat, const char *name, const char *version, char *err,
                            size_t errlen) {
    hdb_source *src;
    int rc = hdb_catalog_get_source(cat, name, version, &src, err, errlen);
    if (rc != HDB_OK) return rc;
    pthread_mutex_lock(&cat->ddl);
    if (atomic_load(&src->dropped)) {
        rc = hdb_errf(err, errlen, HDB_ENOTFOUND, "data_source: %s does not exist", src->label);
    } else {
        drop_source_ctx d = {cat, src, err, errlen};
        rc = hdb_commit_exclusive(src->commit, drop_source_excl, &d);
        if (rc == HDB_OK) {
            HDB_INFO("catalog", "dropped data source %s", src->label);
            hdb_source_unref(src); /* the registry's reference */
        }
    }
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
    cat->next_id = ix->id + 1;
    int rc = persist_entry(cat, 'X', ix->label, ix->id, ix->spec_bytes, ix->spec_len, true, c->err,
                           c->errlen);
    if (rc != HDB_OK) {
        cat->next_id = ix->id;
        return rc;
    }
    pthread_rwlock_wrlock(&cat->lock);
    registry_add_index(cat, ix);
    source_attach_index(ix->source, ix);
    pthread_rwlock_unlock(&cat->lock);
    return HDB_OK;
}

/* Creates an index; caller holds ddl. */
static int create_index_locked(hdb_catalog *cat, const Hilbert__V1__IndexSpec *spec,
                               hdb_ixent **out, char *err, size_t errlen) {
    int rc;
    hdb_source *src = NULL;
    pthread_rwlock_rdlock(&cat->lock);
    bool exists = find_index(cat, spec->name, spec->version) != NULL;
    pthread_rwlock_unlock(&cat->lock);
    if (exists)
        return hdb_errf(err, errlen, HDB_EEXIST, "index %s@%s already exists", spec->name,
                        spec->version);
    if ((rc = hdb_catalog_get_source(cat, spec->data_source->name, spec->data_source->version,
                                     &src, err, errlen)) != HDB_OK) {
        hdb_err_prefix(err, errlen, rc, "spec.");
        return rc;
    }
    hdb_engine_spec es;
    if ((rc = index_spec_check(spec, src, &es, err, errlen)) != HDB_OK) {
        hdb_source_unref(src);
        return rc;
    }
    /* Normalise: the stored spec carries no unknown fields. */
    Hilbert__V1__IndexSpec norm = *spec;
    norm.base.unknown_fields = NULL;
    norm.base.n_unknown_fields = 0;
    size_t len;
    unsigned char *bytes = pack_message(&norm.base, &len);
    hdb_ixent *ix = ixent_new(cat, cat->next_id, spec, src, bytes, len);
    hdb_source_unref(src); /* ix holds its own reference */
    /* A directory with this id can only be a leftover; start clean. */
    hdb_rmtree(ix->dir, NULL, 0);
    if ((rc = ixent_start(cat, ix, spec, &es, false, err, errlen)) != HDB_OK) {
        hdb_ixent_unref(ix);
        return rc;
    }
    index_excl_ctx c = {cat, ix, err, errlen};
    rc = hdb_commit_exclusive(ix->source->commit, create_index_excl, &c);
    if (rc != HDB_OK) {
        hdb_ixent_unref(ix);
        return rc;
    }
    /* Entries committed before the index was attached are read by its build. */
    hdb_applier_notify(ix->applier);
    HDB_INFO("catalog", "created index %s on %s (%s, %s); building in the background", ix->label,
             ix->source->label, hdb_algo_name(es.algo), hdb_metric_name(ix->metric));
    if (out) {
        hdb_ixent_ref(ix);
        *out = ix;
    }
    return HDB_OK;
}

static int index_spec_basic_check(const Hilbert__V1__IndexSpec *spec, char *err, size_t errlen) {
    if (spec == NULL) return hdb_errf(err, errlen, HDB_EINVAL, "spec: is required");
    int rc = hdb_name_check("spec.name", spec->name, err, errlen);
    if (rc == HDB_OK) rc = hdb_name_check("spec.version", spec->version, err, errlen);
    if (rc != HDB_OK) return rc;
    if (spec->data_source == NULL)
        return hdb_errf(err, errlen, HDB_EINVAL, "spec.data_source: is required");
    return ref_check("spec.data_source", spec->data_source->name, spec->data_source->version, err,
                     errlen);
}

int hdb_catalog_create_index(hdb_catalog *cat, const Hilbert__V1__IndexSpec *spec,
                             hdb_ixent **out, char *err, size_t errlen) {
    int rc = index_spec_basic_check(spec, err, errlen);
    if (rc != HDB_OK) return rc;
    pthread_mutex_lock(&cat->ddl);
    rc = create_index_locked(cat, spec, out, err, errlen);
    pthread_mutex_unlock(&cat->ddl);
    return rc;
}

int hdb_catalog_get_index(hdb_catalog *cat, const char *name, const char *version,
                          hdb_ixent **out, char *err, size_t errlen) {
    int rc = ref_check("index", name, version, err, errlen);
    if (rc != HDB_OK) return rc;
    pthread_rwlock_rdlock(&cat->lock);
    hdb_ixent *ix = find_index(cat, name, version);
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
    int rc = unpersist_entry(cat, 'X', ix->label, c->err, c->errlen);
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

int hdb_catalog_drop_index(hdb_catalog *cat, const char *name, const char *version, char *err,
                           size_t errlen) {
    hdb_ixent *ix;
    int rc = hdb_catalog_get_index(cat, name, version, &ix, err, errlen);
    if (rc != HDB_OK) return rc;
    pthread_mutex_lock(&cat->ddl);
    if (atomic_load(&ix->dropped)) {
        rc = hdb_errf(err, errlen, HDB_ENOTFOUND, "index: %s does not exist", ix->label);
    } else {
        index_excl_ctx c = {cat, ix, err, errlen};
        rc = hdb_commit_exclusive(ix->source->commit, drop_index_excl, &c);
        if (rc == HDB_OK) {
            hdb_applier_stop(ix->applier, false);
            char rmerr[256];
            if (hdb_rmtree(ix->dir, rmerr, sizeof rmerr) != HDB_OK)
                HDB_WARN("catalog", "index %s: %s (removed at the next start)", ix->label, rmerr);
            HDB_INFO("catalog", "dropped index %s", ix->label);
            hdb_ixent_unref(ix); /* the registry's reference */
        }
    }
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
            unsigned char *want = pack_message(&source_spec_normalise(spec, arena)->base, &len);
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
            unsigned char *want = pack_message(&norm.base, &len);
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
