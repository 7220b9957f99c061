/*
 * hdb_catalog_space.c - model spaces: a TorchScript model plus the data source and index
 * "name@space" that its vectors go to. Checks and normalises the definition, loads the model,
 * creates or adopts the source and index, and keeps the spaces' registry.
 */
#include "hdb_catalog_int.h"

#include "hdb_arena.h"
#include "hdb_config.h"
#include "hdb_defs.h"
#include "hdb_err.h"
#include "hdb_image.h"
#include "hdb_log.h"
#include "hdb_mem.h"
#include "hdb_torch.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

/* The owned pair of a space, built in arena memory. */
static hdb_owned_spec space_owned(const Hilbert__V1__ModelSpaceSpec *n, hdb_arena *a) {
    return (hdb_owned_spec){.source = space_source_spec(n, a),
                            .index = space_index_spec(n, a),
                            .algorithm = "spec.index", /* the space's own field */
                            .owner_kind = "model space",
                            .owner_name = n->name};
}

/* Finds or creates the data source and index of a space (a leftover of an interrupted create
 * or drop is adopted when its definition matches) and marks them as owned. Caller holds ddl. */
static int space_attach(hdb_catalog *cat, hdb_space *sp, const Hilbert__V1__ModelSpaceSpec *n,
                        hdb_arena *a, char *err, size_t errlen) {
    hdb_owned_spec os = space_owned(n, a);
    return hdb__create_owned_locked(cat, &os, &sp->source, &sp->index, err, errlen);
}

/* Checks a space's index definition against its data source's schema before anything exists. */
static int space_index_check(hdb_catalog *cat, const Hilbert__V1__ModelSpaceSpec *n,
                             hdb_arena *a, char *err, size_t errlen) {
    hdb_owned_spec os = space_owned(n, a);
    return hdb_catalog_check_owned(cat, &os, err, errlen);
}

int hdb__space_load(hdb_catalog *cat, const unsigned char *v, size_t vlen, hdb_arena *arena,
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
        sp->spec_bytes = hdb__catalog_pack(&n->base, &sp->spec_len);
        /* The definition first: a crash in the middle is finished at the next start. */
        rc = hdb_defs_put(cat->defs, HDB_DEF_SPACE, sp->name, 0, sp->spec_bytes, sp->spec_len, 0,
                          err, errlen);
        if (rc == HDB_OK && (rc = space_attach(cat, sp, n, a, err, errlen)) != HDB_OK)
            hdb_defs_delete(cat->defs, HDB_DEF_SPACE, sp->name, NULL, 0);
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
    /* The definition first: what is left after a crash is a plain source and index. */
    if ((rc = hdb_defs_delete(cat->defs, HDB_DEF_SPACE, sp->name, err, errlen)) != HDB_OK)
        goto out;
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
    rc = hdb__drop_owned_locked(cat, sp->source, sp->index, err, errlen);
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

int hdb__space_ensure(hdb_catalog *cat, const Hilbert__V1__ModelSpaceSpec *spec, size_t i,
                      hdb_arena *arena, char *err, size_t errlen) {
    hdb_space *sp = NULL;
    int rc;
    if (spec->name && hdb_catalog_get_space(cat, spec->name, &sp, NULL, 0) == HDB_OK) {
        hdb_space tmp = {0};
        if ((rc = space_check(spec, cat->cfg, &tmp, err, errlen)) == HDB_OK) {
            size_t len;
            unsigned char *want = hdb__catalog_pack(&space_normalise(spec, &tmp, arena)->base, &len);
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
