/*
 * hdb_space.c - model spaces and their registry (see hdb_space.h): checks and normalises a
 * definition, loads the model, keeps the definition in hdb_defs and the data source and index
 * as an owned pair of the catalog.
 *
 * Create order: the definition first, then the pair, so that a crash in the middle leaves a
 * definition that the next start completes. Drop order: the definition first, then the pair, so
 * that a crash in the middle leaves a plain source and index (which the user may drop, or a new
 * space of that name adopt).
 */
#include "hdb_space.h"

#include "hdb_arena.h"
#include "hdb_catalog.h"
#include "hdb_config.h"
#include "hdb_defs.h"
#include "hdb_err.h"
#include "hdb_log.h"
#include "hdb_mem.h"
#include "hdb_torch.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

struct hdb_space {
    char *name;                /* (immutable) */
    unsigned char *spec_bytes; /* (immutable) the normalised ModelSpaceSpec, packed */
    size_t spec_len;
    bool image;                /* image input (else tensor) */
    hdb_image_spec is;         /* image input */
    int64_t shape[4];          /* model input without the batch dimension */
    size_t ndim;
    int64_t input_size;        /* floats per item */
    uint32_t output_dim;
    hdb_model *model;          /* NULL when it failed to load */
    char *detail;              /* why it failed to load, or "" */
    hdb_source *source;        /* holds a reference; owned pair with index */
    hdb_ixent *index;          /* holds a reference */
    _Atomic bool dropped;
    _Atomic int refs;
};

struct hdb_space_registry {
    hdb_catalog *cat;
    hdb_defs *defs; /* the catalog's */
    const hdb_config *cfg;
    pthread_mutex_t ddl;   /* serialises creates and drops of spaces; before the catalog's */
    pthread_rwlock_t lock; /* guards the array */
    hdb_space **spaces;    /* sorted by name */
    size_t n;
};

/* ---------------------------------------------------------------- definitions */

static unsigned char *pack(const ProtobufCMessage *m, size_t *len) {
    size_t n = protobuf_c_message_get_packed_size(m);
    unsigned char *p = hdb_malloc(n ? n : 1);
    protobuf_c_message_pack(m, p);
    *len = n;
    return p;
}

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
        hdb_image_spec *is = &sp->is;
        sp->image = true;
        is->width = im->width;
        is->height = im->height;
        is->channels = im->channels;
        is->resize = im->resize == HILBERT__V1__RESIZE_MODE__RESIZE_MODE_UNSPECIFIED
                         ? HDB_RESIZE_STRETCH
                         : (hdb_resize_mode)im->resize;
        if (im->n_mean != 0 && im->n_mean != im->channels)
            return hdb_errf(err, errlen, HDB_EINVAL,
                            "spec.input.image.mean: needs one value per channel (%u), got %zu",
                            im->channels, im->n_mean);
        if (im->n_std != 0 && im->n_std != im->channels)
            return hdb_errf(err, errlen, HDB_EINVAL,
                            "spec.input.image.std: needs one value per channel (%u), got %zu",
                            im->channels, im->n_std);
        for (uint32_t c = 0; c < 3; c++) {
            is->mean[c] = c < im->n_mean ? im->mean[c] : 0.0f;
            is->std[c] = c < im->n_std ? im->std[c] : 1.0f;
        }
        if ((rc = hdb_image_spec_check(is, err, errlen)) != HDB_OK) return rc;
        sp->shape[0] = is->channels;
        sp->shape[1] = is->height;
        sp->shape[2] = is->width;
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
        im->width = sp->is.width;
        im->height = sp->is.height;
        im->channels = sp->is.channels;
        im->resize = (Hilbert__V1__ResizeMode)sp->is.resize;
        im->n_mean = im->n_std = sp->is.channels;
        im->mean = hdb_arena_alloc(a, 3 * sizeof(float));
        im->std = hdb_arena_alloc(a, 3 * sizeof(float));
        memcpy(im->mean, sp->is.mean, 3 * sizeof(float));
        memcpy(im->std, sp->is.std, 3 * sizeof(float));
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

/* The owned pair of a normalised space spec, in arena memory. */
static hdb_owned_spec space_owned(const Hilbert__V1__ModelSpaceSpec *n, hdb_arena *a) {
    return (hdb_owned_spec){.source = space_source_spec(n, a),
                            .index = space_index_spec(n, a),
                            .algorithm = "spec.index", /* the space's own field */
                            .owner_kind = "model space",
                            .owner_name = n->name};
}

/* ---------------------------------------------------------------- objects */

/* Loads the model of sp; on failure leaves sp->model NULL and returns the error. */
static int space_load_model(const hdb_config *cfg, hdb_space *sp, const char *model_path,
                            char *err, size_t errlen) {
    char path[4096 + 2048];
    if (model_path[0] == '/')
        snprintf(path, sizeof path, "%s", model_path);
    else
        snprintf(path, sizeof path, "%s/%s", cfg->models_dir, model_path);
    int rc = hdb_model_load(&sp->model, path, sp->shape, sp->ndim, sp->output_dim, err, errlen);
    if (rc != HDB_OK) {
        sp->model = NULL;
        return hdb_err_prefix(err, errlen, rc == HDB_EIO ? HDB_EINVAL : rc, "spec.model_path: ");
    }
    return HDB_OK;
}

static hdb_space *space_new(void) {
    hdb_space *sp = hdb_calloc(1, sizeof *sp);
    atomic_store(&sp->refs, 1);
    return sp;
}

static void space_destroy(hdb_space *sp) {
    if (sp->dropped) HDB_INFO("spaces", "model space %s dropped, model released", sp->name);
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

const char *hdb_space_name(const hdb_space *sp) {
    return sp->name;
}

const hdb_image_spec *hdb_space_image(const hdb_space *sp) {
    return sp->image ? &sp->is : NULL;
}

const int64_t *hdb_space_shape(const hdb_space *sp, size_t *ndim) {
    *ndim = sp->ndim;
    return sp->shape;
}

int64_t hdb_space_input_size(const hdb_space *sp) {
    return sp->input_size;
}

uint32_t hdb_space_output_dim(const hdb_space *sp) {
    return sp->output_dim;
}

hdb_model *hdb_space_model(const hdb_space *sp) {
    return sp->model;
}

const char *hdb_space_detail(const hdb_space *sp) {
    return sp->detail;
}

hdb_source *hdb_space_source(const hdb_space *sp) {
    return sp->source;
}

hdb_ixent *hdb_space_index(const hdb_space *sp) {
    return sp->index;
}

Hilbert__V1__ModelSpaceSpec *hdb_space_spec(const hdb_space *sp, hdb_arena *arena) {
    return hilbert__v1__model_space_spec__unpack(hdb_arena_protobuf(arena), sp->spec_len,
                                                 sp->spec_bytes);
}

/* ---------------------------------------------------------------- the registry */

/* Unlocked lookup (the caller holds reg->lock or is the only thread); no reference taken. */
static hdb_space *find_space(hdb_space_registry *reg, const char *name) {
    for (size_t i = 0; i < reg->n; i++)
        if (strcmp(reg->spaces[i]->name, name) == 0) return reg->spaces[i];
    return NULL;
}

/* Adds sp (taking its reference) in name order; the caller holds reg->lock for writing. */
static void registry_add(hdb_space_registry *reg, hdb_space *sp) {
    size_t i = 0;
    while (i < reg->n && strcmp(reg->spaces[i]->name, sp->name) < 0) i++;
    reg->spaces = hdb_realloc(reg->spaces, (reg->n + 1) * sizeof *reg->spaces);
    memmove(&reg->spaces[i + 1], &reg->spaces[i], (reg->n - i) * sizeof *reg->spaces);
    reg->spaces[i] = sp;
    reg->n++;
}

static void registry_remove(hdb_space_registry *reg, hdb_space *sp) {
    for (size_t i = 0; i < reg->n; i++) {
        if (reg->spaces[i] == sp) {
            memmove(&reg->spaces[i], &reg->spaces[i + 1], (reg->n - i - 1) * sizeof *reg->spaces);
            reg->n--;
            return;
        }
    }
}

/* Loads one stored definition (hdb_defs_foreach callback): only at open, single-threaded. */
static int load_space(void *arg, const char *label, uint64_t id, const unsigned char *v,
                      size_t vlen, char *err, size_t errlen) {
    hdb_space_registry *reg = arg;
    (void)label, (void)id;
    hdb_arena *a = hdb_arena_create(0);
    hdb_space *sp = space_new();
    hdb_owned_spec os;
    char lerr[1024];
    int rc;
    Hilbert__V1__ModelSpaceSpec *spec =
        hilbert__v1__model_space_spec__unpack(hdb_arena_protobuf(a), vlen, v);
    if (spec == NULL) {
        rc = hdb_errf(err, errlen, HDB_ECORRUPT, "model space catalog entry cannot be decoded");
        goto fail;
    }
    if ((rc = space_check(spec, NULL, sp, err, errlen)) != HDB_OK) {
        rc = hdb_err_prefix(err, errlen, HDB_ECORRUPT, "model space: ");
        goto fail;
    }
    sp->name = hdb_strdup(spec->name);
    sp->spec_bytes = hdb_malloc(vlen ? vlen : 1);
    memcpy(sp->spec_bytes, v, vlen);
    sp->spec_len = vlen;
    os = space_owned(spec, a);
    if ((rc = hdb_catalog_create_owned(reg->cat, &os, &sp->source, &sp->index, err, errlen)))
        goto fail;
    if (space_load_model(reg->cfg, sp, spec->model_path, lerr, sizeof lerr) != HDB_OK) {
        sp->detail = hdb_strdup(lerr);
        HDB_ERROR("spaces", "model space %s: the model does not load (%s); its image and tensor "
                            "calls fail until it is fixed and hilbertd restarted",
                  sp->name, lerr);
    } else {
        sp->detail = hdb_strdup("");
    }
    registry_add(reg, sp);
    sp = NULL;
fail:
    hdb_space_unref(sp);
    hdb_arena_free(a);
    return rc;
}

hdb_catalog *hdb_spaces_catalog(hdb_space_registry *reg) {
    return reg->cat;
}

int hdb_spaces_open(hdb_space_registry **out, hdb_catalog *cat, const hdb_config *cfg,
                    char *err, size_t errlen) {
    hdb_space_registry *reg = hdb_calloc(1, sizeof *reg);
    reg->cat = cat;
    reg->defs = hdb_catalog_defs(cat);
    reg->cfg = cfg;
    pthread_mutex_init(&reg->ddl, NULL);
    pthread_rwlock_init(&reg->lock, NULL);
    int rc = hdb_defs_foreach(reg->defs, HDB_DEF_SPACE, load_space, reg, err, errlen);
    if (rc != HDB_OK) {
        hdb_spaces_close(reg);
        return hdb_err_prefix(err, errlen, rc, "model spaces: ");
    }
    HDB_INFO("spaces", "%zu model spaces", reg->n);
    *out = reg;
    return HDB_OK;
}

void hdb_spaces_close(hdb_space_registry *reg) {
    if (reg == NULL) return;
    for (size_t i = 0; i < reg->n; i++) hdb_space_unref(reg->spaces[i]);
    hdb_free(reg->spaces);
    pthread_rwlock_destroy(&reg->lock);
    pthread_mutex_destroy(&reg->ddl);
    hdb_free(reg);
}

int hdb_spaces_create(hdb_space_registry *reg, const Hilbert__V1__ModelSpaceSpec *spec,
                      hdb_space **out, char *err, size_t errlen) {
    hdb_arena *a = hdb_arena_create(0);
    hdb_space *sp = space_new();
    Hilbert__V1__ModelSpaceSpec *n;
    hdb_owned_spec os;
    bool locked = false, exists;
    int rc = space_check(spec, reg->cfg, sp, err, errlen);
    if (rc != HDB_OK) goto fail;
    n = space_normalise(spec, sp, a);
    os = space_owned(n, a);
    /* Check the data source and index definitions before loading or creating anything. */
    if ((rc = hdb_catalog_check_owned(reg->cat, &os, err, errlen)) != HDB_OK) goto fail;
    sp->name = hdb_strdup(spec->name);

    pthread_mutex_lock(&reg->ddl);
    locked = true;
    pthread_rwlock_rdlock(&reg->lock);
    exists = find_space(reg, spec->name) != NULL;
    pthread_rwlock_unlock(&reg->lock);
    if (exists) {
        rc = hdb_errf(err, errlen, HDB_EEXIST, "model space %s already exists", spec->name);
        goto fail;
    }
    if ((rc = space_load_model(reg->cfg, sp, n->model_path, err, errlen)) != HDB_OK) goto fail;
    sp->detail = hdb_strdup("");
    sp->spec_bytes = pack(&n->base, &sp->spec_len);
    /* The definition first: a crash in the middle is finished at the next start. */
    if ((rc = hdb_defs_put(reg->defs, HDB_DEF_SPACE, sp->name, 0, sp->spec_bytes, sp->spec_len, 0,
                           err, errlen)) != HDB_OK)
        goto fail;
    if ((rc = hdb_catalog_create_owned(reg->cat, &os, &sp->source, &sp->index, err, errlen))) {
        hdb_defs_delete(reg->defs, HDB_DEF_SPACE, sp->name, NULL, 0);
        goto fail;
    }
    pthread_rwlock_wrlock(&reg->lock);
    registry_add(reg, sp);
    pthread_rwlock_unlock(&reg->lock);
    HDB_INFO("spaces", "created model space %s (%s, output %u)", sp->name, n->model_path,
             sp->output_dim);
    if (out) {
        hdb_space_ref(sp);
        *out = sp;
    }
    sp = NULL;
fail:
    if (locked) pthread_mutex_unlock(&reg->ddl);
    hdb_space_unref(sp);
    hdb_arena_free(a);
    return rc;
}

int hdb_spaces_get(hdb_space_registry *reg, const char *name, hdb_space **out, char *err,
                   size_t errlen) {
    pthread_rwlock_rdlock(&reg->lock);
    hdb_space *sp = name ? find_space(reg, name) : NULL;
    if (sp) hdb_space_ref(sp);
    pthread_rwlock_unlock(&reg->lock);
    if (sp == NULL)
        return hdb_errf(err, errlen, HDB_ENOTFOUND, "model space \"%s\" does not exist",
                        name ? name : "");
    *out = sp;
    return HDB_OK;
}

int hdb_spaces_drop(hdb_space_registry *reg, const char *name, char *err, size_t errlen) {
    hdb_space *sp;
    int rc = hdb_spaces_get(reg, name, &sp, err, errlen);
    if (rc != HDB_OK) return rc;
    pthread_mutex_lock(&reg->ddl);
    if (atomic_load(&sp->dropped)) {
        rc = hdb_errf(err, errlen, HDB_ENOTFOUND, "model space \"%s\" does not exist", name);
        goto out;
    }
    /* The definition first: what is left after a crash is a plain source and index. */
    if ((rc = hdb_defs_delete(reg->defs, HDB_DEF_SPACE, sp->name, err, errlen)) != HDB_OK)
        goto out;
    pthread_rwlock_wrlock(&reg->lock);
    registry_remove(reg, sp);
    pthread_rwlock_unlock(&reg->lock);
    atomic_store(&sp->dropped, true);
    rc = hdb_catalog_drop_owned(reg->cat, sp->source, sp->index, err, errlen);
    if (rc != HDB_OK)
        HDB_WARN("spaces", "model space %s dropped, but its storage was not: %s", name, err);
    hdb_space_unref(sp); /* the registry's reference */
out:
    pthread_mutex_unlock(&reg->ddl);
    hdb_space_unref(sp);
    return rc;
}

size_t hdb_spaces_list(hdb_space_registry *reg, hdb_arena *arena, hdb_space ***out) {
    pthread_rwlock_rdlock(&reg->lock);
    size_t n = reg->n;
    hdb_space **list = hdb_arena_alloc(arena, (n ? n : 1) * sizeof *list);
    for (size_t i = 0; i < n; i++) {
        list[i] = reg->spaces[i];
        hdb_space_ref(list[i]);
    }
    pthread_rwlock_unlock(&reg->lock);
    *out = list;
    return n;
}

int hdb_spaces_ensure(hdb_space_registry *reg, const hdb_config *cfg, char *err,
                      size_t errlen) {
    int rc = HDB_OK;
    hdb_arena *arena = hdb_arena_create(0);
    for (size_t i = 0; i < cfg->n_model_spaces && rc == HDB_OK; i++) {
        const Hilbert__V1__ModelSpaceSpec *spec = cfg->model_spaces[i];
        hdb_space *sp = NULL;
        if (spec->name && hdb_spaces_get(reg, spec->name, &sp, NULL, 0) == HDB_OK) {
            hdb_space tmp = {0};
            if ((rc = space_check(spec, reg->cfg, &tmp, err, errlen)) == HDB_OK) {
                size_t len;
                unsigned char *want = pack(&space_normalise(spec, &tmp, arena)->base, &len);
                if (len != sp->spec_len || memcmp(want, sp->spec_bytes, len) != 0)
                    rc = hdb_errf(err, errlen, HDB_EPRECOND,
                                  "model space %s exists with a different definition; drop it "
                                  "or make the config match",
                                  sp->name);
                else if (sp->model == NULL)
                    rc = hdb_errf(err, errlen, HDB_EPRECOND, "model space %s: %s", sp->name,
                                  sp->detail);
                hdb_free(want);
            }
            hdb_space_unref(sp);
        } else {
            rc = hdb_spaces_create(reg, spec, NULL, err, errlen);
        }
        if (rc != HDB_OK) hdb_err_prefix(err, errlen, rc, "model_spaces[%zu]: ", i);
    }
    hdb_arena_free(arena);
    return rc;
}
