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
#include "hdb_image.h"
#include "hdb_index.h"
#include "hdb_log.h"
#include "hdb_mem.h"
#include "hdb_record.h"
#include "hdb_store.h"
#include "hdb_torch.h"

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
    hdb_space **spaces; /* sorted by name */
    size_t nspaces;
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

static int load_space(hdb_catalog *cat, const unsigned char *v, size_t vlen, hdb_arena *arena,
                      char *err, size_t errlen);

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
        } else if (klen > 1 && k[0] == 'M') {
            continue; /* model spaces come after their sources and indices, below */
        } else {
            rc = hdb_errf(err, errlen, HDB_ECORRUPT, "catalog: unknown entry of %zu bytes", klen);
            goto fail;
        }
    }
    if ((rc = hdb_iter_status(it, err, errlen)) != HDB_OK) goto fail;
    for (hdb_iter_seek(it, "M", 1); hdb_iter_valid(it); hdb_iter_next(it)) {
        size_t klen, vlen;
        const unsigned char *k = hdb_iter_key(it, &klen);
        if (klen < 2 || k[0] != 'M') break;
        const unsigned char *v = hdb_iter_value(it, &vlen);
        hdb_arena_reset(arena);
        if ((rc = load_space(cat, v, vlen, arena, err, errlen)) != HDB_OK) goto fail;
    }
    if ((rc = hdb_iter_status(it, err, errlen)) != HDB_OK) goto fail;
    hdb_iter_free(it);
    it = NULL;

    orphan_ctx o = {cat, 0};
    hdb_store_cf_foreach(store, drop_orphan, &o);
    drop_orphan_dirs(cat);
    HDB_INFO("catalog", "%zu data sources, %zu indices, %zu model spaces", cat->nsources,
             cat->nindices, cat->nspaces);
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
    for (size_t i = 0; i < cat->nspaces; i++) hdb_space_unref(cat->spaces[i]);
    hdb_free(cat->spaces);
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

/* Drops src; the caller holds ddl and a reference. */
static int drop_source_locked(hdb_catalog *cat, hdb_source *src, char *err, size_t errlen) {
    if (atomic_load(&src->dropped))
        return hdb_errf(err, errlen, HDB_ENOTFOUND, "data_source: %s does not exist", src->label);
    drop_source_ctx d = {cat, src, err, errlen};
    int rc = hdb_commit_exclusive(src->commit, drop_source_excl, &d);
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
    if (src->owned_by_space)
        rc = hdb_errf(err, errlen, HDB_EPRECOND,
                      "data_source: %s belongs to model space %s; drop the model space", src->label,
                      src->name);
    else
        rc = drop_source_locked(cat, src, err, errlen);
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

/* Drops ix; the caller holds ddl and a reference. */
static int drop_index_locked(hdb_catalog *cat, hdb_ixent *ix, char *err, size_t errlen) {
    if (atomic_load(&ix->dropped))
        return hdb_errf(err, errlen, HDB_ENOTFOUND, "index: %s does not exist", ix->label);
    index_excl_ctx c = {cat, ix, err, errlen};
    int rc = hdb_commit_exclusive(ix->source->commit, drop_index_excl, &c);
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
    int rc = hdb_catalog_get_index(cat, name, version, &ix, err, errlen);
    if (rc != HDB_OK) return rc;
    pthread_mutex_lock(&cat->ddl);
    if (ix->owned_by_space)
        rc = hdb_errf(err, errlen, HDB_EPRECOND,
                      "index: %s belongs to model space %s; drop the model space", ix->label,
                      ix->name);
    else
        rc = drop_index_locked(cat, ix, err, errlen);
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

static int ensure_space(hdb_catalog *cat, const Hilbert__V1__ModelSpaceSpec *spec, size_t i,
                        hdb_arena *arena, char *err, size_t errlen);

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
    for (size_t i = 0; i < cfg->n_model_spaces && rc == HDB_OK; i++)
        rc = ensure_space(cat, cfg->model_spaces[i], i, arena, err, errlen);
    hdb_arena_free(arena);
    return rc;
}

/* ---------------------------------------------------------------- model spaces */

/* Checks a model-space spec and fills the input description of sp. With limits, checks the
 * configured limits too. Messages name the field under "spec.". */
static int space_check(const Hilbert__V1__ModelSpaceSpec *spec, const hdb_config *limits,
                       hdb_space *sp, char *err, size_t errlen) {
    if (spec == NULL) return hdb_errf(err, errlen, HDB_EINVAL, "spec: is required");
    int rc = hdb_name_check("spec.name", spec->name, err, errlen);
    if (rc != HDB_OK) return rc;
    if (spec->model_path == NULL || spec->model_path[0] == '\0')
        return hdb_errf(err, errlen, HDB_EINVAL, "spec.model_path: is required");
    if (strlen(spec->model_path) > 2048)
        return hdb_errf(err, errlen, HDB_EINVAL, "spec.model_path: longer than 2048 characters");
    const Hilbert__V1__ModelInput *in = spec->input;
    if (in == NULL || in->kind_case == HILBERT__V1__MODEL_INPUT__KIND__NOT_SET)
        return hdb_errf(err, errlen, HDB_EINVAL, "spec.input: is required (image or tensor)");
    if (in->kind_case == HILBERT__V1__MODEL_INPUT__KIND_IMAGE) {
        const Hilbert__V1__ImageInput *im = in->image;
        sp->image = true;
        sp->width = im->width;
        sp->height = im->height;
        sp->channels = im->channels;
        sp->resize = im->resize == HILBERT__V1__RESIZE_MODE__RESIZE_MODE_UNSPECIFIED
                         ? HDB_RESIZE_STRETCH
                         : (int)im->resize;
        if (im->n_mean != 0 && im->n_mean != im->channels)
            return hdb_errf(err, errlen, HDB_EINVAL,
                            "spec.input.image.mean: needs one value per channel (%u), got %zu",
                            im->channels, im->n_mean);
        if (im->n_std != 0 && im->n_std != im->channels)
            return hdb_errf(err, errlen, HDB_EINVAL,
                            "spec.input.image.std: needs one value per channel (%u), got %zu",
                            im->channels, im->n_std);
        for (uint32_t c = 0; c < 3; c++) {
            sp->mean[c] = c < im->n_mean ? im->mean[c] : 0.0f;
            sp->std[c] = c < im->n_std ? im->std[c] : 1.0f;
        }
        hdb_image_spec is = {sp->width, sp->height, sp->channels, (hdb_resize_mode)sp->resize,
                             {sp->mean[0], sp->mean[1], sp->mean[2]},
                             {sp->std[0], sp->std[1], sp->std[2]}};
        if ((rc = hdb_image_spec_check(&is, err, errlen)) != HDB_OK) return rc;
        sp->shape[0] = sp->channels;
        sp->shape[1] = sp->height;
        sp->shape[2] = sp->width;
        sp->ndim = 3;
    } else {
        const Hilbert__V1__TensorInput *t = in->tensor;
        if (t->n_shape < 1 || t->n_shape > 4)
            return hdb_errf(err, errlen, HDB_EINVAL,
                            "spec.input.tensor.shape: needs 1 to 4 dimensions, got %zu",
                            t->n_shape);
        sp->ndim = t->n_shape;
        for (size_t d = 0; d < t->n_shape; d++) {
            if (t->shape[d] < 1)
                return hdb_errf(err, errlen, HDB_EINVAL,
                                "spec.input.tensor.shape[%zu]: must be >= 1", d);
            sp->shape[d] = t->shape[d];
        }
    }
    sp->input_size = 1;
    for (size_t d = 0; d < sp->ndim; d++) {
        sp->input_size *= sp->shape[d];
        if (sp->input_size > (1 << 24))
            return hdb_errf(err, errlen, HDB_EINVAL,
                            "spec.input: more than 16777216 values per item");
    }
    if (spec->output_dim == 0 || (limits && spec->output_dim > limits->max_dimension))
        return hdb_errf(err, errlen, HDB_EINVAL, "spec.output_dim: must be 1..%u",
                        limits ? limits->max_dimension : 65536u);
    sp->output_dim = spec->output_dim;
    if ((int)spec->metric < HDB_METRIC_L2 || (int)spec->metric > HDB_METRIC_COSINE)
        return hdb_errf(err, errlen, HDB_EINVAL,
                        "spec.metric: is required (L2, INNER_PRODUCT or COSINE)");
    for (size_t i = 0; i < spec->n_permanent_attributes; i++) {
        const char *name = spec->permanent_attributes[i]->name;
        if (name && strcmp(name, "id") == 0)
            return hdb_errf(err, errlen, HDB_EINVAL,
                            "spec.permanent_attributes[%zu].name: \"id\" is the item id, which "
                            "every model space has; choose another name",
                            i);
    }
    return HDB_OK;
}

/* Copies spec with defaults made explicit (resize, mean, std, index) into arena memory. */
static Hilbert__V1__ModelSpaceSpec *space_normalise(const Hilbert__V1__ModelSpaceSpec *spec,
                                                    const hdb_space *sp, hdb_arena *a) {
    Hilbert__V1__ModelSpaceSpec *n = hdb_arena_alloc(a, sizeof *n);
    *n = *spec;
    n->base.unknown_fields = NULL;
    n->base.n_unknown_fields = 0;
    if (sp->image) {
        Hilbert__V1__ModelInput *in = hdb_arena_alloc(a, sizeof *in);
        hilbert__v1__model_input__init(in);
        Hilbert__V1__ImageInput *im = hdb_arena_alloc(a, sizeof *im);
        hilbert__v1__image_input__init(im);
        im->width = sp->width;
        im->height = sp->height;
        im->channels = sp->channels;
        im->resize = (Hilbert__V1__ResizeMode)sp->resize;
        im->n_mean = im->n_std = sp->channels;
        im->mean = hdb_arena_alloc(a, 3 * sizeof(float));
        im->std = hdb_arena_alloc(a, 3 * sizeof(float));
        memcpy(im->mean, sp->mean, 3 * sizeof(float));
        memcpy(im->std, sp->std, 3 * sizeof(float));
        in->kind_case = HILBERT__V1__MODEL_INPUT__KIND_IMAGE;
        in->image = im;
        n->input = in;
    }
    if (n->index == NULL || n->index->kind_case == HILBERT__V1__INDEX_ALGORITHM__KIND__NOT_SET) {
        Hilbert__V1__IndexAlgorithm *alg = hdb_arena_alloc(a, sizeof *alg);
        hilbert__v1__index_algorithm__init(alg);
        alg->kind_case = HILBERT__V1__INDEX_ALGORITHM__KIND_FLAT;
        alg->flat = hdb_arena_alloc(a, sizeof *alg->flat);
        hilbert__v1__flat_algorithm__init(alg->flat);
        n->index = alg;
    }
    return n;
}

/* The data source of a space: the item id (string) plus its permanent attributes. */
static Hilbert__V1__DataSourceSpec *space_source_spec(const Hilbert__V1__ModelSpaceSpec *n,
                                                      hdb_arena *a) {
    Hilbert__V1__DataSourceSpec *ds = hdb_arena_alloc(a, sizeof *ds);
    hilbert__v1__data_source_spec__init(ds);
    ds->name = n->name;
    ds->version = HDB_SPACE_VERSION;
    ds->vector_kind = HILBERT__V1__VECTOR_KIND__VECTOR_KIND_DENSE;
    ds->dimension = n->output_dim;
    size_t np = n->n_permanent_attributes;
    ds->permanent_attributes = hdb_arena_alloc(a, (np + 1) * sizeof *ds->permanent_attributes);
    /* The user's attributes first, so their positions in error messages match the request. */
    for (size_t i = 0; i < np; i++) ds->permanent_attributes[i] = n->permanent_attributes[i];
    Hilbert__V1__AttributeSpec *id = hdb_arena_alloc(a, sizeof *id);
    hilbert__v1__attribute_spec__init(id);
    id->name = "id";
    id->type = HILBERT__V1__ATTRIBUTE_TYPE__ATTRIBUTE_TYPE_STRING;
    ds->permanent_attributes[np] = id;
    ds->n_permanent_attributes = np + 1;
    ds->id_attributes = hdb_arena_alloc(a, sizeof *ds->id_attributes);
    ds->id_attributes[0] = "id";
    ds->n_id_attributes = 1;
    return ds;
}

static Hilbert__V1__IndexSpec *space_index_spec(const Hilbert__V1__ModelSpaceSpec *n,
                                                hdb_arena *a) {
    Hilbert__V1__IndexSpec *ix = hdb_arena_alloc(a, sizeof *ix);
    hilbert__v1__index_spec__init(ix);
    ix->name = n->name;
    ix->version = HDB_SPACE_VERSION;
    Hilbert__V1__DataSourceRef *ref = hdb_arena_alloc(a, sizeof *ref);
    hilbert__v1__data_source_ref__init(ref);
    ref->name = n->name;
    ref->version = HDB_SPACE_VERSION;
    ix->data_source = ref;
    ix->algorithm = n->index;
    ix->metric = n->metric;
    ix->split_attributes = n->split_attributes;
    ix->n_split_attributes = n->n_split_attributes;
    return ix;
}

/* Loads the model of sp; on failure leaves sp->model NULL and returns the error. */
static int space_load_model(hdb_catalog *cat, hdb_space *sp, const char *model_path, char *err,
                            size_t errlen) {
    char path[4096 + 2048];
    if (model_path[0] == '/')
        snprintf(path, sizeof path, "%s", model_path);
    else
        snprintf(path, sizeof path, "%s/%s", cat->cfg->models_dir, model_path);
    int rc = hdb_model_load(&sp->model, path, sp->shape, sp->ndim, sp->output_dim, err, errlen);
    if (rc != HDB_OK) {
        sp->model = NULL;
        return hdb_err_prefix(err, errlen, rc == HDB_EIO ? HDB_EINVAL : rc, "spec.model_path: ");
    }
    return HDB_OK;
}

static void space_destroy(hdb_space *sp) {
    if (sp->dropped) HDB_INFO("catalog", "model space %s dropped, model released", sp->name);
    hdb_model_free(sp->model);
    hdb_ixent_unref(sp->index);
    hdb_source_unref(sp->source);
    hdb_free(sp->detail);
    hdb_free(sp->spec_bytes);
    hdb_free(sp->name);
    hdb_free(sp);
}

void hdb_space_ref(hdb_space *sp) {
    atomic_fetch_add(&sp->refs, 1);
}

void hdb_space_unref(hdb_space *sp) {
    if (sp && atomic_fetch_sub(&sp->refs, 1) == 1) space_destroy(sp);
}

Hilbert__V1__ModelSpaceSpec *hdb_space_spec(const hdb_space *sp, hdb_arena *arena) {
    return hilbert__v1__model_space_spec__unpack(hdb_arena_protobuf(arena), sp->spec_len,
                                                 sp->spec_bytes);
}

static hdb_space *find_space(hdb_catalog *cat, const char *name) {
    for (size_t i = 0; i < cat->nspaces; i++)
        if (strcmp(cat->spaces[i]->name, name) == 0) return cat->spaces[i];
    return NULL;
}

static void registry_add_space(hdb_catalog *cat, hdb_space *sp) {
    size_t i = 0;
    while (i < cat->nspaces && strcmp(cat->spaces[i]->name, sp->name) < 0) i++;
    cat->spaces = hdb_realloc(cat->spaces, (cat->nspaces + 1) * sizeof *cat->spaces);
    memmove(&cat->spaces[i + 1], &cat->spaces[i], (cat->nspaces - i) * sizeof *cat->spaces);
    cat->spaces[i] = sp;
    cat->nspaces++;
}

/* Finds or creates the data source and index of a space (a leftover of an interrupted create
 * or drop is adopted when its definition matches) and marks them as owned. Caller holds ddl. */
static int space_attach(hdb_catalog *cat, hdb_space *sp, const Hilbert__V1__ModelSpaceSpec *n,
                        hdb_arena *a, char *err, size_t errlen) {
    Hilbert__V1__DataSourceSpec *ds = space_source_spec(n, a);
    Hilbert__V1__IndexSpec *is = space_index_spec(n, a);
    bool created = false;
    int rc;
    if (hdb_catalog_get_source(cat, n->name, HDB_SPACE_VERSION, &sp->source, NULL, 0) == HDB_OK) {
        /* A leftover of an interrupted create or drop: adopted only if it is what we need. */
        size_t len;
        unsigned char *want = pack_message(&source_spec_normalise(ds, a)->base, &len);
        bool same = len == sp->source->spec_len && memcmp(want, sp->source->spec_bytes, len) == 0;
        hdb_free(want);
        if (!same)
            return hdb_errf(err, errlen, HDB_EEXIST,
                            "data source %s exists with another definition; drop it first",
                            sp->source->label);
    } else {
        hdb_schema schema;
        if ((rc = source_spec_check(ds, cat->cfg, &schema, err, errlen)) != HDB_OK) return rc;
        rc = create_source_locked(cat, ds, &schema, &sp->source, err, errlen);
        schema_free(&schema);
        if (rc != HDB_OK) return rc;
        created = true;
    }
    if (hdb_catalog_get_index(cat, n->name, HDB_SPACE_VERSION, &sp->index, NULL, 0) != HDB_OK &&
        (rc = create_index_locked(cat, is, &sp->index, err, errlen)) != HDB_OK) {
        if (created && drop_source_locked(cat, sp->source, NULL, 0) != HDB_OK)
            HDB_WARN("catalog", "data source %s is left over; drop it", sp->source->label);
        hdb_source_unref(sp->source);
        sp->source = NULL;
        return rc;
    }
    sp->source->owned_by_space = true;
    sp->index->owned_by_space = true;
    return HDB_OK;
}

/* Checks a space's index definition against its data source's schema before anything exists. */
static int space_index_check(hdb_catalog *cat, const Hilbert__V1__ModelSpaceSpec *n,
                             hdb_arena *a, char *err, size_t errlen) {
    hdb_source tmp;
    memset(&tmp, 0, sizeof tmp);
    int rc = source_spec_check(space_source_spec(n, a), cat->cfg, &tmp.schema, err, errlen);
    if (rc != HDB_OK) return rc;
    tmp.label = hdb_arena_sprintf(a, "%s@%s", n->name, HDB_SPACE_VERSION);
    hdb_engine_spec es;
    rc = index_spec_check(space_index_spec(n, a), &tmp, &es, err, errlen);
    schema_free(&tmp.schema);
    if (rc != HDB_OK && err) {
        /* The index spec's fields are the space's own: spec.algorithm -> spec.index. */
        static const char alg[] = "spec.algorithm";
        if (strncmp(err, alg, sizeof alg - 1) == 0) {
            char rest[1024];
            snprintf(rest, sizeof rest, "%s", err + sizeof alg - 1);
            snprintf(err, errlen, "spec.index%s", rest);
        }
    }
    return rc;
}

static int load_space(hdb_catalog *cat, const unsigned char *v, size_t vlen, hdb_arena *arena,
                      char *err, size_t errlen) {
    Hilbert__V1__ModelSpaceSpec *spec =
        hilbert__v1__model_space_spec__unpack(hdb_arena_protobuf(arena), vlen, v);
    if (spec == NULL)
        return hdb_errf(err, errlen, HDB_ECORRUPT, "model space catalog entry cannot be decoded");
    hdb_space *sp = hdb_calloc(1, sizeof *sp);
    atomic_store(&sp->refs, 1);
    int rc = space_check(spec, NULL, sp, err, errlen);
    if (rc != HDB_OK) {
        hdb_free(sp);
        return hdb_err_prefix(err, errlen, HDB_ECORRUPT, "model space: ");
    }
    sp->name = hdb_strdup(spec->name);
    sp->spec_bytes = hdb_malloc(vlen ? vlen : 1);
    memcpy(sp->spec_bytes, v, vlen);
    sp->spec_len = vlen;
    if ((rc = space_attach(cat, sp, spec, arena, err, errlen)) != HDB_OK) {
        hdb_space_unref(sp);
        return rc;
    }
    char lerr[1024];
    if (space_load_model(cat, sp, spec->model_path, lerr, sizeof lerr) != HDB_OK) {
        sp->detail = hdb_strdup(lerr);
        HDB_ERROR("catalog", "model space %s: the model does not load (%s); its image and tensor "
                             "calls fail until it is fixed and hilbertd restarted",
                  sp->name, lerr);
    } else {
        sp->detail = hdb_strdup("");
    }
    registry_add_space(cat, sp);
    return HDB_OK;
}

int hdb_catalog_create_space(hdb_catalog *cat, const Hilbert__V1__ModelSpaceSpec *spec,
                             hdb_space **out, char *err, size_t errlen) {
    hdb_arena *a = hdb_arena_create(0);
    hdb_space *sp = hdb_calloc(1, sizeof *sp);
    atomic_store(&sp->refs, 1);
    int rc = space_check(spec, cat->cfg, sp, err, errlen);
    if (rc != HDB_OK) goto fail;
    Hilbert__V1__ModelSpaceSpec *n = space_normalise(spec, sp, a);
    /* Check the data source and index definitions before loading or creating anything. */
    if ((rc = space_index_check(cat, n, a, err, errlen)) != HDB_OK) goto fail;
    sp->name = hdb_strdup(spec->name);

    pthread_mutex_lock(&cat->ddl);
    pthread_rwlock_rdlock(&cat->lock);
    bool exists = find_space(cat, spec->name) != NULL;
    pthread_rwlock_unlock(&cat->lock);
    if (exists) {
        rc = hdb_errf(err, errlen, HDB_EEXIST, "model space %s already exists", spec->name);
    } else if ((rc = space_load_model(cat, sp, n->model_path, err, errlen)) == HDB_OK) {
        sp->detail = hdb_strdup("");
        sp->spec_bytes = pack_message(&n->base, &sp->spec_len);
        unsigned char key[HDB_NAME_MAX + 8];
        size_t klen = catalog_key('M', sp->name, key, sizeof key);
        /* The definition first: a crash in the middle is finished at the next start. */
        rc = hdb_store_put(cat->store, cat->cf, key, klen, sp->spec_bytes, sp->spec_len, err,
                           errlen);
        if (rc == HDB_OK && (rc = space_attach(cat, sp, n, a, err, errlen)) != HDB_OK)
            hdb_store_delete(cat->store, cat->cf, key, klen, NULL, 0);
    }
    if (rc == HDB_OK) {
        pthread_rwlock_wrlock(&cat->lock);
        registry_add_space(cat, sp);
        pthread_rwlock_unlock(&cat->lock);
        HDB_INFO("catalog", "created model space %s (%s, output %u)", sp->name, n->model_path,
                 sp->output_dim);
        if (out) {
            hdb_space_ref(sp);
            *out = sp;
        }
        sp = NULL;
    }
    pthread_mutex_unlock(&cat->ddl);
fail:
    hdb_space_unref(sp);
    hdb_arena_free(a);
    return rc;
}

int hdb_catalog_get_space(hdb_catalog *cat, const char *name, hdb_space **out, char *err,
                          size_t errlen) {
    pthread_rwlock_rdlock(&cat->lock);
    hdb_space *sp = name ? find_space(cat, name) : NULL;
    if (sp) hdb_space_ref(sp);
    pthread_rwlock_unlock(&cat->lock);
    if (sp == NULL)
        return hdb_errf(err, errlen, HDB_ENOTFOUND, "model space \"%s\" does not exist",
                        name ? name : "");
    *out = sp;
    return HDB_OK;
}

int hdb_catalog_drop_space(hdb_catalog *cat, const char *name, char *err, size_t errlen) {
    hdb_space *sp;
    int rc = hdb_catalog_get_space(cat, name, &sp, err, errlen);
    if (rc != HDB_OK) return rc;
    pthread_mutex_lock(&cat->ddl);
    if (atomic_load(&sp->dropped)) {
        rc = hdb_errf(err, errlen, HDB_ENOTFOUND, "model space \"%s\" does not exist", name);
        goto out;
    }
    unsigned char key[HDB_NAME_MAX + 8];
    size_t klen = catalog_key('M', sp->name, key, sizeof key);
    /* The definition first: what is left after a crash is a plain source and index. */
    if ((rc = hdb_store_delete(cat->store, cat->cf, key, klen, err, errlen)) != HDB_OK) goto out;
    pthread_rwlock_wrlock(&cat->lock);
    for (size_t i = 0; i < cat->nspaces; i++) {
        if (cat->spaces[i] == sp) {
            memmove(&cat->spaces[i], &cat->spaces[i + 1],
                    (cat->nspaces - i - 1) * sizeof *cat->spaces);
            cat->nspaces--;
            break;
        }
    }
    pthread_rwlock_unlock(&cat->lock);
    atomic_store(&sp->dropped, true);
    if ((rc = drop_index_locked(cat, sp->index, err, errlen)) == HDB_OK)
        rc = drop_source_locked(cat, sp->source, err, errlen);
    if (rc != HDB_OK)
        HDB_WARN("catalog", "model space %s dropped, but its storage was not: %s", name, err);
    hdb_space_unref(sp); /* the registry's reference */
out:
    pthread_mutex_unlock(&cat->ddl);
    hdb_space_unref(sp);
    return rc;
}

size_t hdb_catalog_list_spaces(hdb_catalog *cat, hdb_arena *arena, hdb_space ***out) {
    pthread_rwlock_rdlock(&cat->lock);
    size_t n = cat->nspaces;
    hdb_space **list = hdb_arena_alloc(arena, (n ? n : 1) * sizeof *list);
    for (size_t i = 0; i < n; i++) {
        list[i] = cat->spaces[i];
        hdb_space_ref(list[i]);
    }
    pthread_rwlock_unlock(&cat->lock);
    *out = list;
    return n;
}

static int ensure_space(hdb_catalog *cat, const Hilbert__V1__ModelSpaceSpec *spec, size_t i,
                        hdb_arena *arena, char *err, size_t errlen) {
    hdb_space *sp = NULL;
    int rc;
    if (spec->name && hdb_catalog_get_space(cat, spec->name, &sp, NULL, 0) == HDB_OK) {
        hdb_space tmp = {0};
        if ((rc = space_check(spec, cat->cfg, &tmp, err, errlen)) == HDB_OK) {
            size_t len;
            unsigned char *want = pack_message(&space_normalise(spec, &tmp, arena)->base, &len);
            if (len != sp->spec_len || memcmp(want, sp->spec_bytes, len) != 0)
                rc = hdb_errf(err, errlen, HDB_EPRECOND,
                              "model space %s exists with a different definition; drop it or "
                              "make the config match",
                              sp->name);
            else if (sp->model == NULL)
                rc = hdb_errf(err, errlen, HDB_EPRECOND, "model space %s: %s", sp->name,
                              sp->detail);
            hdb_free(want);
        }
        hdb_space_unref(sp);
    } else {
        rc = hdb_catalog_create_space(cat, spec, NULL, err, errlen);
    }
    if (rc != HDB_OK) hdb_err_prefix(err, errlen, rc, "model_spaces[%zu]: ", i);
    return rc;
}
