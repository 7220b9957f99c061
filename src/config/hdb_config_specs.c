/*
 * hdb_config_specs.c - the catalog objects declared in the config file (data_sources:,
 * indices:, model_spaces:), turned from YAML mappings into the protobuf-c spec messages that the
 * Catalog API takes.
 *
 * They are only checked for shape here (required keys present, the right YAML types, known enum
 * names) and allocated from the config's arena. Their meaning (valid names, subsets, duplicates,
 * dimension limits) is checked by the catalog when it ensures them at start, with the same code
 * that serves CreateDataSource, CreateIndex and CreateModelSpace.
 */
#include "hdb_config_int.h"

#include "hdb_arena.h"
#include "hdb_err.h"
#include "hdb_types.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <string.h>
#include <strings.h>

typedef hdb__config_loader loader;

/* A list of strings, e.g. id_attributes: [id]. */
static int get_string_list(const loader *L, const yaml_node_t *n, const char *path, char ***out,
                           size_t *count) {
    yaml_node_item_t *items;
    char key[256];
    int rc = hdb__config_get_list(L, n, path, &items, count);
    if (rc != HDB_OK) return rc;
    *out = *count ? hdb_arena_calloc(L->c->arena, *count, sizeof **out) : NULL;
    for (size_t i = 0; i < *count; i++) {
        hdb__config_path(key, sizeof key, "%s[%zu]", path, i);
        rc = hdb__config_get_string(L, hdb__config_node(L, items[i]), key, &(*out)[i]);
        if (rc != HDB_OK) return rc;
    }
    return HDB_OK;
}

/* One permanent attribute: {name: id, type: int64}. */
static int load_attribute(const loader *L, const yaml_node_t *n, const char *path,
                          Hilbert__V1__AttributeSpec **out) {
    static const char *const keys[] = {"name", "type"};
    char key[256];
    yaml_node_t *v;
    char *type = NULL;
    hdb_attr_type t;
    Hilbert__V1__AttributeSpec *a = hdb_arena_alloc(L->c->arena, sizeof *a);
    hilbert__v1__attribute_spec__init(a);

    if (n->type != YAML_MAPPING_NODE)
        return hdb__config_fail(L, n, path, "must be a mapping {name: ..., type: ...}, not %s",
                                hdb__config_kind_name(n));
    int rc = hdb__config_check_mapping(L, n, path, keys, 2);
    if (rc == HDB_OK) rc = hdb__config_require(L, n, path, "name", &v);
    if (rc == HDB_OK)
        rc = hdb__config_get_string(L, v, hdb__config_join(key, sizeof key, path, "name", 4),
                                    &a->name);
    if (rc == HDB_OK) rc = hdb__config_require(L, n, path, "type", &v);
    if (rc == HDB_OK)
        rc =
            hdb__config_get_string(L, v, hdb__config_join(key, sizeof key, path, "type", 4), &type);
    if (rc != HDB_OK) return rc;
    if (hdb_attr_type_parse(type, &t) != 0)
        return hdb__config_fail(
            L, v, key,
            "unknown attribute type \"%.60s\" (expected string, int64, float64, bool, "
            "bytes or timestamp)",
            type);
    a->type = (Hilbert__V1__AttributeType)t; /* the numbers are equal by design */
    *out = a;
    return HDB_OK;
}

/* A list of permanent attributes: [{name: id, type: int64}, ...]. */
static int load_attribute_list(const loader *L, const yaml_node_t *v, const char *key,
                               Hilbert__V1__AttributeSpec ***out, size_t *count) {
    yaml_node_item_t *items;
    int rc = hdb__config_get_list(L, v, key, &items, count);
    if (rc != HDB_OK) return rc;
    *out = *count ? hdb_arena_calloc(L->c->arena, *count, sizeof **out) : NULL;
    for (size_t i = 0; i < *count; i++) {
        char item[300];
        hdb__config_path(item, sizeof item, "%s[%zu]", key, i);
        if ((rc = load_attribute(L, hdb__config_node(L, items[i]), item, &(*out)[i])) != HDB_OK)
            return rc;
    }
    return HDB_OK;
}

static int load_data_source(const loader *L, const yaml_node_t *n, const char *path,
                            Hilbert__V1__DataSourceSpec **out) {
    static const char *const keys[] = {
        "name", "version", "vector_kind", "dimension", "permanent_attributes", "id_attributes"};
    char key[256];
    yaml_node_t *v;
    int rc;
    Hilbert__V1__DataSourceSpec *ds = hdb_arena_alloc(L->c->arena, sizeof *ds);
    hilbert__v1__data_source_spec__init(ds);

    if (n->type != YAML_MAPPING_NODE)
        return hdb__config_fail(L, n, path, "must be a mapping, not %s", hdb__config_kind_name(n));
    if ((rc = hdb__config_check_mapping(L, n, path, keys, sizeof keys / sizeof keys[0])) != HDB_OK)
        return rc;

    if ((rc = hdb__config_require(L, n, path, "name", &v)) != HDB_OK) return rc;
    if ((rc = hdb__config_get_string(L, v, hdb__config_join(key, sizeof key, path, "name", 4),
                                     &ds->name)) != HDB_OK)
        return rc;
    if ((rc = hdb__config_require(L, n, path, "version", &v)) != HDB_OK) return rc;
    if ((rc = hdb__config_get_string(L, v, hdb__config_join(key, sizeof key, path, "version", 7),
                                     &ds->version)) != HDB_OK)
        return rc;

    ds->vector_kind = HILBERT__V1__VECTOR_KIND__VECTOR_KIND_DENSE;
    if ((v = hdb__config_lookup(L, n, "vector_kind")) != NULL) {
        char *kind;
        hdb__config_join(key, sizeof key, path, "vector_kind", 11);
        if ((rc = hdb__config_get_string(L, v, key, &kind)) != HDB_OK) return rc;
        if (strcasecmp(kind, "sparse") == 0)
            ds->vector_kind = HILBERT__V1__VECTOR_KIND__VECTOR_KIND_SPARSE;
        else if (strcasecmp(kind, "dense") != 0)
            return hdb__config_fail(
                L, v, key, "unknown vector kind \"%.60s\" (expected dense or sparse)", kind);
    }

    if ((rc = hdb__config_require(L, n, path, "dimension", &v)) != HDB_OK) return rc;
    rc = hdb__config_get_u32(L, v, hdb__config_join(key, sizeof key, path, "dimension", 9), 1,
                             UINT32_MAX, &ds->dimension);
    if (rc != HDB_OK) return rc;

    if ((rc = hdb__config_require(L, n, path, "permanent_attributes", &v)) != HDB_OK) return rc;
    rc = load_attribute_list(L, v,
                             hdb__config_join(key, sizeof key, path, "permanent_attributes", 20),
                             &ds->permanent_attributes, &ds->n_permanent_attributes);
    if (rc != HDB_OK) return rc;

    if ((rc = hdb__config_require(L, n, path, "id_attributes", &v)) != HDB_OK) return rc;
    rc = get_string_list(L, v, hdb__config_join(key, sizeof key, path, "id_attributes", 13),
                         &ds->id_attributes, &ds->n_id_attributes);
    if (rc != HDB_OK) return rc;
    *out = ds;
    return HDB_OK;
}

/* algorithm: flat | faiss | hnsw | sparse, with the optional parameter mappings
 *   faiss: {factory: "IVF256,Flat", nprobe: 8, train_size: 0}   (factory required)
 *   hnsw: {m: 16, ef_construction: 200, ef_search: 64}
 * of the chosen algorithm next to it. */
static int load_algorithm(const loader *L, const yaml_node_t *n, const yaml_node_t *v,
                          const char *path, const char *name, Hilbert__V1__IndexAlgorithm **out) {
    static const char *const faiss_keys[] = {"factory", "nprobe", "train_size"};
    static const char *const hnsw_keys[] = {"m", "ef_construction", "ef_search"};
    char key[256], sub[256];
    yaml_node_t *p, *w;
    int rc;
    hdb_arena *a = L->c->arena;
    Hilbert__V1__IndexAlgorithm *alg = hdb_arena_alloc(a, sizeof *alg);
    hilbert__v1__index_algorithm__init(alg);
    yaml_node_t *faiss = hdb__config_lookup(L, n, "faiss"),
                *hnsw = hdb__config_lookup(L, n, "hnsw");
    if (strcasecmp(name, "flat") == 0 || strcasecmp(name, "sparse") == 0) {
        if (faiss || hnsw)
            return hdb__config_fail(
                L, faiss ? faiss : hnsw,
                hdb__config_join(key, sizeof key, path, faiss ? "faiss" : "hnsw", faiss ? 5 : 4),
                "parameters of another algorithm (algorithm is %s)", name);
        if (strcasecmp(name, "flat") == 0) {
            alg->kind_case = HILBERT__V1__INDEX_ALGORITHM__KIND_FLAT;
            alg->flat = hdb_arena_alloc(a, sizeof *alg->flat);
            hilbert__v1__flat_algorithm__init(alg->flat);
        } else {
            alg->kind_case = HILBERT__V1__INDEX_ALGORITHM__KIND_SPARSE;
            alg->sparse = hdb_arena_alloc(a, sizeof *alg->sparse);
            hilbert__v1__sparse_algorithm__init(alg->sparse);
        }
    } else if (strcasecmp(name, "faiss") == 0) {
        if (hnsw)
            return hdb__config_fail(L, hnsw, hdb__config_join(key, sizeof key, path, "hnsw", 4),
                                    "parameters of another algorithm (algorithm is faiss)");
        alg->kind_case = HILBERT__V1__INDEX_ALGORITHM__KIND_FAISS;
        alg->faiss = hdb_arena_alloc(a, sizeof *alg->faiss);
        hilbert__v1__faiss_algorithm__init(alg->faiss);
        hdb__config_join(key, sizeof key, path, "faiss", 5);
        if (faiss == NULL)
            return hdb__config_fail(L, n, key, "is required with algorithm faiss (factory: ...)");
        if (faiss->type != YAML_MAPPING_NODE)
            return hdb__config_fail(L, faiss, key, "must be a mapping, not %s",
                                    hdb__config_kind_name(faiss));
        if ((rc = hdb__config_check_mapping(L, faiss, key, faiss_keys, 3)) != HDB_OK) return rc;
        if ((rc = hdb__config_require(L, faiss, key, "factory", &p)) != HDB_OK) return rc;
        if ((rc = hdb__config_get_string(L, p, hdb__config_join(sub, sizeof sub, key, "factory", 7),
                                         &alg->faiss->factory)))
            return rc;
        if ((w = hdb__config_lookup(L, faiss, "nprobe")) != NULL &&
            (rc = hdb__config_get_u32(L, w, hdb__config_join(sub, sizeof sub, key, "nprobe", 6), 0,
                                      1000000, &alg->faiss->nprobe)) != HDB_OK)
            return rc;
        uint32_t ts = 0;
        if ((w = hdb__config_lookup(L, faiss, "train_size")) != NULL &&
            (rc =
                 hdb__config_get_u32(L, w, hdb__config_join(sub, sizeof sub, key, "train_size", 10),
                                     0, UINT32_MAX, &ts)) != HDB_OK)
            return rc;
        alg->faiss->train_size = ts;
    } else if (strcasecmp(name, "hnsw") == 0) {
        if (faiss)
            return hdb__config_fail(L, faiss, hdb__config_join(key, sizeof key, path, "faiss", 5),
                                    "parameters of another algorithm (algorithm is hnsw)");
        alg->kind_case = HILBERT__V1__INDEX_ALGORITHM__KIND_HNSW;
        alg->hnsw = hdb_arena_alloc(a, sizeof *alg->hnsw);
        hilbert__v1__hnsw_algorithm__init(alg->hnsw);
        if (hnsw != NULL) {
            hdb__config_join(key, sizeof key, path, "hnsw", 4);
            if (hnsw->type != YAML_MAPPING_NODE)
                return hdb__config_fail(L, hnsw, key, "must be a mapping, not %s",
                                        hdb__config_kind_name(hnsw));
            if ((rc = hdb__config_check_mapping(L, hnsw, key, hnsw_keys, 3)) != HDB_OK) return rc;
            uint32_t *dst[3] = {&alg->hnsw->m, &alg->hnsw->ef_construction, &alg->hnsw->ef_search};
            for (int i = 0; i < 3; i++) {
                if ((w = hdb__config_lookup(L, hnsw, hnsw_keys[i])) == NULL) continue;
                rc = hdb__config_get_u32(
                    L, w,
                    hdb__config_join(sub, sizeof sub, key, hnsw_keys[i], strlen(hnsw_keys[i])), 0,
                    1000000, dst[i]);
                if (rc != HDB_OK) return rc;
            }
        }
    } else {
        return hdb__config_fail(
            L, v, hdb__config_join(key, sizeof key, path, "algorithm", 9),
            "unknown algorithm \"%.60s\" (expected flat, faiss, hnsw or sparse)", name);
    }
    *out = alg;
    return HDB_OK;
}

static int load_index(const loader *L, const yaml_node_t *n, const char *path,
                      Hilbert__V1__IndexSpec **out) {
    static const char *const keys[] = {"name",   "version",          "data_source", "algorithm",
                                       "metric", "split_attributes", "faiss",       "hnsw"};
    static const char *const ref_keys[] = {"name", "version"};
    char key[256], sub[256];
    yaml_node_t *v, *w;
    char *s;
    hdb_metric metric;
    int rc;
    Hilbert__V1__IndexSpec *ix = hdb_arena_alloc(L->c->arena, sizeof *ix);
    hilbert__v1__index_spec__init(ix);

    if (n->type != YAML_MAPPING_NODE)
        return hdb__config_fail(L, n, path, "must be a mapping, not %s", hdb__config_kind_name(n));
    if ((rc = hdb__config_check_mapping(L, n, path, keys, sizeof keys / sizeof keys[0])) != HDB_OK)
        return rc;

    if ((rc = hdb__config_require(L, n, path, "name", &v)) != HDB_OK) return rc;
    if ((rc = hdb__config_get_string(L, v, hdb__config_join(key, sizeof key, path, "name", 4),
                                     &ix->name)) != HDB_OK)
        return rc;
    if ((rc = hdb__config_require(L, n, path, "version", &v)) != HDB_OK) return rc;
    if ((rc = hdb__config_get_string(L, v, hdb__config_join(key, sizeof key, path, "version", 7),
                                     &ix->version)) != HDB_OK)
        return rc;

    if ((rc = hdb__config_require(L, n, path, "data_source", &v)) != HDB_OK) return rc;
    hdb__config_join(key, sizeof key, path, "data_source", 11);
    if (v->type != YAML_MAPPING_NODE)
        return hdb__config_fail(L, v, key, "must be a mapping {name: ..., version: ...}, not %s",
                                hdb__config_kind_name(v));
    if ((rc = hdb__config_check_mapping(L, v, key, ref_keys, 2)) != HDB_OK) return rc;
    ix->data_source = hdb_arena_alloc(L->c->arena, sizeof *ix->data_source);
    hilbert__v1__data_source_ref__init(ix->data_source);
    if ((rc = hdb__config_require(L, v, key, "name", &w)) != HDB_OK) return rc;
    if ((rc = hdb__config_get_string(L, w, hdb__config_join(sub, sizeof sub, key, "name", 4),
                                     &ix->data_source->name)))
        return rc;
    if ((rc = hdb__config_require(L, v, key, "version", &w)) != HDB_OK) return rc;
    if ((rc = hdb__config_get_string(L, w, hdb__config_join(sub, sizeof sub, key, "version", 7),
                                     &ix->data_source->version)))
        return rc;

    if ((rc = hdb__config_require(L, n, path, "algorithm", &v)) != HDB_OK) return rc;
    hdb__config_join(key, sizeof key, path, "algorithm", 9);
    if ((rc = hdb__config_get_string(L, v, key, &s)) != HDB_OK) return rc;
    if ((rc = load_algorithm(L, n, v, path, s, &ix->algorithm)) != HDB_OK) return rc;

    if ((rc = hdb__config_require(L, n, path, "metric", &v)) != HDB_OK) return rc;
    hdb__config_join(key, sizeof key, path, "metric", 6);
    if ((rc = hdb__config_get_string(L, v, key, &s)) != HDB_OK) return rc;
    if (hdb_metric_parse(s, &metric) != 0)
        return hdb__config_fail(
            L, v, key, "unknown metric \"%.60s\" (expected l2, inner_product, cosine or jaccard)",
            s);
    ix->metric = (Hilbert__V1__Metric)metric; /* the numbers are equal by design */

    if ((v = hdb__config_lookup(L, n, "split_attributes")) != NULL) {
        rc = get_string_list(L, v, hdb__config_join(key, sizeof key, path, "split_attributes", 16),
                             &ix->split_attributes, &ix->n_split_attributes);
        if (rc != HDB_OK) return rc;
    }
    *out = ix;
    return HDB_OK;
}

/* A list of floats, e.g. mean: [0.2860]. */
static int get_float_list(const loader *L, const yaml_node_t *n, const char *path, float **out,
                          size_t *count) {
    yaml_node_item_t *items;
    char key[256];
    int rc = hdb__config_get_list(L, n, path, &items, count);
    if (rc != HDB_OK) return rc;
    *out = *count ? hdb_arena_calloc(L->c->arena, *count, sizeof **out) : NULL;
    for (size_t i = 0; i < *count; i++) {
        const yaml_node_t *v = hdb__config_node(L, items[i]);
        hdb__config_path(key, sizeof key, "%s[%zu]", path, i);
        char *end = NULL;
        const char *txt = v->type == YAML_SCALAR_NODE ? hdb__config_scalar_text(v) : "";
        errno = 0;
        double d = v->type == YAML_SCALAR_NODE && !hdb__config_is_quoted(v) ? strtod(txt, &end) : 0;
        if (v->type != YAML_SCALAR_NODE || hdb__config_is_quoted(v) || end == txt || *end != '\0' ||
            errno != 0 || !isfinite(d))
            return hdb__config_fail(L, v, key, "must be a number");
        (*out)[i] = (float)d;
    }
    return HDB_OK;
}

/* input: {image: {width, height, channels, resize, mean, std}} or {tensor: {shape: [...]}}. */
static int load_model_input(const loader *L, const yaml_node_t *n, const char *path,
                            Hilbert__V1__ModelInput **out) {
    static const char *const kinds[] = {"image", "tensor"};
    static const char *const image_keys[] = {"width",  "height", "channels",
                                             "resize", "mean",   "std"};
    static const char *const tensor_keys[] = {"shape"};
    char key[256], sub[256];
    yaml_node_t *v, *w;
    int rc;
    hdb_arena *a = L->c->arena;
    Hilbert__V1__ModelInput *in = hdb_arena_alloc(a, sizeof *in);
    hilbert__v1__model_input__init(in);
    if (n->type != YAML_MAPPING_NODE)
        return hdb__config_fail(L, n, path,
                                "must be a mapping {image: ...} or {tensor: ...}, not %s",
                                hdb__config_kind_name(n));
    if ((rc = hdb__config_check_mapping(L, n, path, kinds, 2)) != HDB_OK) return rc;
    if ((v = hdb__config_lookup(L, n, "image")) != NULL) {
        if (hdb__config_lookup(L, n, "tensor") != NULL)
            return hdb__config_fail(L, n, path, "give image or tensor, not both");
        hdb__config_join(key, sizeof key, path, "image", 5);
        if (v->type != YAML_MAPPING_NODE)
            return hdb__config_fail(L, v, key, "must be a mapping, not %s",
                                    hdb__config_kind_name(v));
        if ((rc = hdb__config_check_mapping(L, v, key, image_keys, 6)) != HDB_OK) return rc;
        Hilbert__V1__ImageInput *im = hdb_arena_alloc(a, sizeof *im);
        hilbert__v1__image_input__init(im);
        uint32_t *dst[3] = {&im->width, &im->height, &im->channels};
        for (int i = 0; i < 3; i++) {
            if ((rc = hdb__config_require(L, v, key, image_keys[i], &w)) != HDB_OK) return rc;
            rc = hdb__config_get_u32(
                L, w, hdb__config_join(sub, sizeof sub, key, image_keys[i], strlen(image_keys[i])),
                1, 4096, dst[i]);
            if (rc != HDB_OK) return rc;
        }
        im->resize = HILBERT__V1__RESIZE_MODE__RESIZE_MODE_STRETCH;
        if ((w = hdb__config_lookup(L, v, "resize")) != NULL) {
            char *mode;
            hdb__config_join(sub, sizeof sub, key, "resize", 6);
            if ((rc = hdb__config_get_string(L, w, sub, &mode)) != HDB_OK) return rc;
            if (strcasecmp(mode, "stretch") == 0)
                im->resize = HILBERT__V1__RESIZE_MODE__RESIZE_MODE_STRETCH;
            else if (strcasecmp(mode, "fit") == 0)
                im->resize = HILBERT__V1__RESIZE_MODE__RESIZE_MODE_FIT;
            else if (strcasecmp(mode, "crop") == 0)
                im->resize = HILBERT__V1__RESIZE_MODE__RESIZE_MODE_CROP;
            else
                return hdb__config_fail(
                    L, w, sub, "unknown resize mode \"%.40s\" (stretch, fit or crop)", mode);
        }
        if ((w = hdb__config_lookup(L, v, "mean")) != NULL &&
            (rc = get_float_list(L, w, hdb__config_join(sub, sizeof sub, key, "mean", 4), &im->mean,
                                 &im->n_mean)) != HDB_OK)
            return rc;
        if ((w = hdb__config_lookup(L, v, "std")) != NULL &&
            (rc = get_float_list(L, w, hdb__config_join(sub, sizeof sub, key, "std", 3), &im->std,
                                 &im->n_std)) != HDB_OK)
            return rc;
        in->kind_case = HILBERT__V1__MODEL_INPUT__KIND_IMAGE;
        in->image = im;
    } else if ((v = hdb__config_lookup(L, n, "tensor")) != NULL) {
        hdb__config_join(key, sizeof key, path, "tensor", 6);
        if (v->type != YAML_MAPPING_NODE)
            return hdb__config_fail(L, v, key, "must be a mapping {shape: [...]}, not %s",
                                    hdb__config_kind_name(v));
        if ((rc = hdb__config_check_mapping(L, v, key, tensor_keys, 1)) != HDB_OK) return rc;
        if ((rc = hdb__config_require(L, v, key, "shape", &w)) != HDB_OK) return rc;
        yaml_node_item_t *items;
        size_t count;
        hdb__config_join(sub, sizeof sub, key, "shape", 5);
        if ((rc = hdb__config_get_list(L, w, sub, &items, &count)) != HDB_OK) return rc;
        Hilbert__V1__TensorInput *t = hdb_arena_alloc(a, sizeof *t);
        hilbert__v1__tensor_input__init(t);
        t->n_shape = count;
        t->shape = count ? hdb_arena_calloc(a, count, sizeof *t->shape) : NULL;
        for (size_t i = 0; i < count; i++) {
            char item[300];
            hdb__config_path(item, sizeof item, "%s[%zu]", sub, i);
            if ((rc = hdb__config_get_u32(L, hdb__config_node(L, items[i]), item, 1, 1u << 30,
                                          &t->shape[i])))
                return rc;
        }
        in->kind_case = HILBERT__V1__MODEL_INPUT__KIND_TENSOR;
        in->tensor = t;
    } else {
        return hdb__config_fail(L, n, path, "needs image or tensor");
    }
    *out = in;
    return HDB_OK;
}

static int load_model_space(const loader *L, const yaml_node_t *n, const char *path,
                            Hilbert__V1__ModelSpaceSpec **out) {
    static const char *const keys[] = {"name",
                                       "model",
                                       "input",
                                       "output_dim",
                                       "metric",
                                       "index",
                                       "permanent_attributes",
                                       "split_attributes"};
    static const char *const index_keys[] = {"algorithm", "faiss", "hnsw"};
    char key[256];
    yaml_node_t *v, *w;
    char *s;
    hdb_metric metric;
    int rc;
    hdb_arena *a = L->c->arena;
    Hilbert__V1__ModelSpaceSpec *ms = hdb_arena_alloc(a, sizeof *ms);
    hilbert__v1__model_space_spec__init(ms);
    if (n->type != YAML_MAPPING_NODE)
        return hdb__config_fail(L, n, path, "must be a mapping, not %s", hdb__config_kind_name(n));
    if ((rc = hdb__config_check_mapping(L, n, path, keys, sizeof keys / sizeof keys[0])) != HDB_OK)
        return rc;
    if ((rc = hdb__config_require(L, n, path, "name", &v)) != HDB_OK) return rc;
    if ((rc = hdb__config_get_string(L, v, hdb__config_join(key, sizeof key, path, "name", 4),
                                     &ms->name)))
        return rc;
    if ((rc = hdb__config_require(L, n, path, "model", &v)) != HDB_OK) return rc;
    if ((rc = hdb__config_get_string(L, v, hdb__config_join(key, sizeof key, path, "model", 5),
                                     &ms->model_path)))
        return rc;
    if ((rc = hdb__config_require(L, n, path, "input", &v)) != HDB_OK) return rc;
    if ((rc = load_model_input(L, v, hdb__config_join(key, sizeof key, path, "input", 5),
                               &ms->input)))
        return rc;
    if ((rc = hdb__config_require(L, n, path, "output_dim", &v)) != HDB_OK) return rc;
    if ((rc = hdb__config_get_u32(L, v, hdb__config_join(key, sizeof key, path, "output_dim", 10),
                                  1, 65536, &ms->output_dim)))
        return rc;
    if ((rc = hdb__config_require(L, n, path, "metric", &v)) != HDB_OK) return rc;
    hdb__config_join(key, sizeof key, path, "metric", 6);
    if ((rc = hdb__config_get_string(L, v, key, &s)) != HDB_OK) return rc;
    if (hdb_metric_parse(s, &metric) != 0)
        return hdb__config_fail(
            L, v, key, "unknown metric \"%.60s\" (expected l2, inner_product or cosine)", s);
    ms->metric = (Hilbert__V1__Metric)metric;
    if ((v = hdb__config_lookup(L, n, "index")) != NULL) {
        hdb__config_join(key, sizeof key, path, "index", 5);
        if (v->type != YAML_MAPPING_NODE)
            return hdb__config_fail(L, v, key, "must be a mapping {algorithm: ...}, not %s",
                                    hdb__config_kind_name(v));
        if ((rc = hdb__config_check_mapping(L, v, key, index_keys, 3)) != HDB_OK) return rc;
        if ((rc = hdb__config_require(L, v, key, "algorithm", &w)) != HDB_OK) return rc;
        char sub[256];
        if ((rc = hdb__config_get_string(
                 L, w, hdb__config_join(sub, sizeof sub, key, "algorithm", 9), &s)))
            return rc;
        if ((rc = load_algorithm(L, v, w, key, s, &ms->index)) != HDB_OK) return rc;
    }
    if ((v = hdb__config_lookup(L, n, "permanent_attributes")) != NULL) {
        rc = load_attribute_list(
            L, v, hdb__config_join(key, sizeof key, path, "permanent_attributes", 20),
            &ms->permanent_attributes, &ms->n_permanent_attributes);
        if (rc != HDB_OK) return rc;
    }
    if ((v = hdb__config_lookup(L, n, "split_attributes")) != NULL) {
        rc = get_string_list(L, v, hdb__config_join(key, sizeof key, path, "split_attributes", 16),
                             &ms->split_attributes, &ms->n_split_attributes);
        if (rc != HDB_OK) return rc;
    }
    *out = ms;
    return HDB_OK;
}

/* Defines fn(L, n): loads the list `key` of the config (data_sources, indices, model_spaces)
 * into c->field and c->n_field, one item at a time with one(L, node, "key[i]", &item). */
#define LIST_LOADER(fn, key, type, one, field)                                                     \
    static int fn(const loader *L, const yaml_node_t *n) {                                         \
        yaml_node_item_t *items;                                                                   \
        size_t count;                                                                              \
        char path[64];                                                                             \
        int rc = hdb__config_get_list(L, n, key, &items, &count);                                  \
        if (rc != HDB_OK) return rc;                                                               \
        type **arr = count ? hdb_arena_calloc(L->c->arena, count, sizeof *arr) : NULL;             \
        for (size_t i = 0; i < count; i++) {                                                       \
            hdb__config_path(path, sizeof path, key "[%zu]", i);                                   \
            if ((rc = one(L, hdb__config_node(L, items[i]), path, &arr[i])) != HDB_OK) return rc;  \
        }                                                                                          \
        L->c->field = arr;                                                                         \
        L->c->n_##field = count;                                                                   \
        return HDB_OK;                                                                             \
    }

LIST_LOADER(load_data_sources, "data_sources", Hilbert__V1__DataSourceSpec, load_data_source,
            data_sources)
LIST_LOADER(load_indices, "indices", Hilbert__V1__IndexSpec, load_index, indices)
LIST_LOADER(load_model_spaces, "model_spaces", Hilbert__V1__ModelSpaceSpec, load_model_space,
            model_spaces)

int hdb__config_load_spec_list(const loader *L, const char *key, const yaml_node_t *n) {
    if (strcmp(key, "data_sources") == 0) return load_data_sources(L, n);
    if (strcmp(key, "indices") == 0) return load_indices(L, n);
    HDB_ASSERT(strcmp(key, "model_spaces") == 0);
    return load_model_spaces(L, n);
}
