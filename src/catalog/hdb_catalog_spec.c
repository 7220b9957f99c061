/*
 * hdb_catalog_spec.c - validation and normalisation of data source and index definitions.
 * Pure functions over the API's spec messages: no storage, no registry. Messages name the
 * field as the request does ("spec.dimension: ...").
 */
#include "hdb_catalog_int.h"

#include "hdb_arena.h"
#include "hdb_attrindex.h"
#include "hdb_config.h"
#include "hdb_err.h"
#include "hdb_mem.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

unsigned char *hdb__catalog_pack(const ProtobufCMessage *m, size_t *len) {
    size_t n = protobuf_c_message_get_packed_size(m);
    unsigned char *p = hdb_malloc(n ? n : 1);
    protobuf_c_message_pack(m, p);
    *len = n;
    return p;
}

char *hdb__make_label(const char *name, const char *version) {
    size_t n = strlen(name) + strlen(version) + 2;
    char *l = hdb_malloc(n);
    snprintf(l, n, "%s@%s", name, version);
    return l;
}

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

void hdb__schema_free(hdb_schema *s) {
    for (size_t i = 0; i < s->nperm; i++) hdb_free(s->perm[i].name);
    hdb_free(s->perm);
    hdb_free(s->id);
    memset(s, 0, sizeof *s);
}

/* Validates a data source spec and builds its schema. With limits, checks the configured
 * limits too (not done for stored definitions, which were checked when created). Messages
 * name the field under "spec.". */
int hdb__source_spec_check(const Hilbert__V1__DataSourceSpec *spec, const hdb_config *limits,
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
    hdb__schema_free(schema);
    return rc;
}

/* Copies spec with defaults filled in (an unspecified vector_kind becomes DENSE) into arena
 * memory. */
Hilbert__V1__DataSourceSpec *hdb__source_spec_normalise(const Hilbert__V1__DataSourceSpec *spec,
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
 * field under "spec.", the algorithm as `algorithm` (NULL: "spec.algorithm"). */
int hdb__index_spec_check(const Hilbert__V1__IndexSpec *spec, const hdb_schema *s,
                          const char *label, const char *algorithm, hdb_engine_spec *es,
                          char *err, size_t errlen) {
    const Hilbert__V1__IndexAlgorithm *alg = spec->algorithm;
    const char *af = algorithm ? algorithm : "spec.algorithm";
    memset(es, 0, sizeof *es);
    if (alg == NULL || alg->kind_case == HILBERT__V1__INDEX_ALGORITHM__KIND__NOT_SET)
        return hdb_errf(err, errlen, HDB_EINVAL,
                        "%s: is required (flat, faiss, hnsw or sparse)", af);
    switch (alg->kind_case) {
    case HILBERT__V1__INDEX_ALGORITHM__KIND_FLAT: es->algo = HDB_ALGO_FLAT; break;
    case HILBERT__V1__INDEX_ALGORITHM__KIND_FAISS:
        es->algo = HDB_ALGO_FAISS;
        if (alg->faiss->factory == NULL || strlen(alg->faiss->factory) >= sizeof es->factory)
            return hdb_errf(err, errlen, HDB_EINVAL,
                            "%s.faiss.factory: must be 1 to %zu characters", af,
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
        es->oversample = alg->hnsw->oversample;
        switch (alg->hnsw->storage) {
        case HILBERT__V1__VECTOR_STORAGE__VECTOR_STORAGE_UNSPECIFIED:
        case HILBERT__V1__VECTOR_STORAGE__VECTOR_STORAGE_FLOAT32:
            es->storage = HDB_VEC_FLOAT32;
            break;
        case HILBERT__V1__VECTOR_STORAGE__VECTOR_STORAGE_FLOAT16:
            es->storage = HDB_VEC_FLOAT16;
            break;
        case HILBERT__V1__VECTOR_STORAGE__VECTOR_STORAGE_INT8: es->storage = HDB_VEC_INT8; break;
        default:
            return hdb_errf(err, errlen, HDB_EINVAL,
                            "%s.hnsw.storage: unknown value %d (FLOAT32, FLOAT16 or INT8)", af,
                            (int)alg->hnsw->storage);
        }
        if (es->oversample > 100)
            return hdb_errf(err, errlen, HDB_EINVAL, "%s.hnsw.oversample: %u is above 100", af,
                            es->oversample);
        break;
    case HILBERT__V1__INDEX_ALGORITHM__KIND_SPARSE: es->algo = HDB_ALGO_SPARSE; break;
    default:
        return hdb_errf(err, errlen, HDB_EINVAL, "%s: unknown algorithm %d", af,
                        (int)alg->kind_case);
    }
    if (s->sparse != (es->algo == HDB_ALGO_SPARSE))
        return hdb_errf(err, errlen, HDB_EINVAL,
                        s->sparse ? "%s: data source %s holds sparse vectors; use the sparse "
                                    "algorithm"
                                  : "%s: the sparse algorithm needs a sparse data source; %s is "
                                    "dense",
                        af, label);
    if ((int)spec->metric < HDB_METRIC_L2 || (int)spec->metric > HDB_METRIC_JACCARD)
        return hdb_errf(err, errlen, HDB_EINVAL,
                        "spec.metric: is required (L2, INNER_PRODUCT, COSINE or JACCARD)");
    es->metric = (hdb_metric)spec->metric;
    es->dim = s->dim;
    int rc = hdb_engine_check(es, af, err, errlen);
    if (rc != HDB_OK) return rc;
    for (size_t i = 0; i < spec->n_split_attributes; i++) {
        const char *name = spec->split_attributes[i];
        const hdb_attr_spec *a = hdb_schema_find(s, name);
        if (a == NULL)
            return hdb_errf(err, errlen, HDB_EINVAL,
                            "spec.split_attributes[%zu]: \"%s\" is not a permanent attribute of "
                            "data source %s",
                            i, name, label);
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
    if (spec->n_indexed_attributes > HDB_ATTRINDEX_MAX)
        return hdb_errf(err, errlen, HDB_EINVAL,
                        "spec.indexed_attributes: %zu attributes exceed the limit of %d",
                        spec->n_indexed_attributes, HDB_ATTRINDEX_MAX);
    for (size_t i = 0; i < spec->n_indexed_attributes; i++) {
        const char *name = spec->indexed_attributes[i];
        char what[64];
        snprintf(what, sizeof what, "spec.indexed_attributes[%zu]", i);
        int rc2 = hdb_name_check(what, name, err, errlen);
        if (rc2 != HDB_OK) return rc2;
        for (size_t j = 0; j < i; j++)
            if (strcmp(spec->indexed_attributes[j], name) == 0)
                return hdb_errf(err, errlen, HDB_EINVAL,
                                "spec.indexed_attributes[%zu]: \"%s\" is listed twice", i, name);
    }
    return HDB_OK;
}

int hdb__ref_check(const char *what, const char *name, const char *version, char *err,
                     size_t errlen) {
    char field[64];
    snprintf(field, sizeof field, "%s.name", what);
    int rc = hdb_name_check(field, name, err, errlen);
    if (rc != HDB_OK) return rc;
    snprintf(field, sizeof field, "%s.version", what);
    return hdb_name_check(field, version, err, errlen);
}


int hdb__index_spec_basic_check(const Hilbert__V1__IndexSpec *spec, char *err, size_t errlen) {
    if (spec == NULL) return hdb_errf(err, errlen, HDB_EINVAL, "spec: is required");
    int rc = hdb_name_check("spec.name", spec->name, err, errlen);
    if (rc == HDB_OK) rc = hdb_name_check("spec.version", spec->version, err, errlen);
    if (rc != HDB_OK) return rc;
    if (spec->data_source == NULL)
        return hdb_errf(err, errlen, HDB_EINVAL, "spec.data_source: is required");
    return hdb__ref_check("spec.data_source", spec->data_source->name, spec->data_source->version, err,
                     errlen);
}

