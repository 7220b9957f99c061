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
#include "hdb_reembed.h"
#include "hdb_torch.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <openssl/evp.h>

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
    uint32_t output_index;     /* the element of a tuple or list output that is the embedding */
    bool keep_inputs;          /* each item's input is kept with it (HDB_INPUT_ATTR) */
    char *reembed_from;        /* the origin of a re-embedding space, or NULL */
    hdb_reembed *reembed;      /* its worker (owned); set under the registry's DDL lock */
    hdb_model *model;          /* NULL when it failed to load */
    char sha256[65];           /* of the model file as loaded; "" when it could not be read */
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
    hdb_infer *infer;      /* for re-embedding workers, once started; under ddl */
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

static bool is_sha256_hex(const char *s) {
    size_t n = 0;
    for (; s[n]; n++)
        if (!((s[n] >= '0' && s[n] <= '9') || (s[n] >= 'a' && s[n] <= 'f'))) return false;
    return n == 64;
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
    if (spec->model_sha256 && spec->model_sha256[0] != '\0' && !is_sha256_hex(spec->model_sha256))
        return hdb_errf(err, errlen, HDB_EINVAL,
                        "spec.model_sha256: must be 64 lowercase hex digits (as sha256sum "
                        "prints them), or empty");
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
    if (spec->output_index > 255)
        return hdb_errf(err, errlen, HDB_EINVAL, "spec.output_index: %u is not in 0..255",
                        spec->output_index);
    sp->output_index = spec->output_index;
    if (spec->reembed_from && spec->reembed_from[0] != '\0') {
        if ((rc = hdb_name_check("spec.reembed_from", spec->reembed_from, err, errlen)) != HDB_OK)
            return rc;
        if (strcmp(spec->reembed_from, spec->name) == 0)
            return hdb_errf(err, errlen, HDB_EINVAL,
                            "spec.reembed_from: a model space cannot re-embed from itself");
    }
    sp->keep_inputs = spec->keep_inputs || (spec->reembed_from && spec->reembed_from[0]);
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
    n->keep_inputs = sp->keep_inputs;
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
    ix->indexed_attributes = n->indexed_attributes;
    ix->n_indexed_attributes = n->n_indexed_attributes;
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

/* The one answer to a model path outside models.dir: it says nothing about the file. */
#define CONFINED_MSG "spec.model_path: must name a model file under models.dir"

/* True when path (resolved) is dir (resolved) or lies below it. */
static bool path_inside(const char *path, const char *dir) {
    size_t n = strlen(dir);
    if (n == 1 && dir[0] == '/') return true;
    return strncmp(path, dir, n) == 0 && (path[n] == '/' || path[n] == '\0');
}

/* True when the path suffix s (components after an existing directory) has a ".." part. */
static bool has_dotdot(const char *s) {
    for (const char *p = s; (p = strstr(p, "..")) != NULL; p += 2)
        if ((p == s || p[-1] == '/') && (p[2] == '/' || p[2] == '\0')) return true;
    return false;
}

/* Confines a model path to models.dir: joins a relative model_path to it, resolves the result
 * with realpath (symlinks included) into out, and requires it to lie inside
 * realpath(models.dir). HDB_EPERM (CONFINED_MSG) for anything else, including a path outside
 * that does not exist. A path inside that does not exist (its deepest existing directory is
 * inside, and what follows holds no ".." and no dangling link) gives HDB_OK with the joined
 * path in out, so that loading it reports the missing file. */
static int confine_model_path(const char *models_dir, const char *model_path, char *out,
                              size_t outlen, char *err, size_t errlen) {
    char dir[PATH_MAX], joined[PATH_MAX + 2048], real[PATH_MAX];
    if (realpath(models_dir, dir) == NULL) {
        HDB_WARN("spaces", "models.dir %s cannot be resolved (%s): no model can be loaded",
                 models_dir, strerror(errno));
        return hdb_errf(err, errlen, HDB_EPERM, CONFINED_MSG);
    }
    if (model_path[0] == '/')
        snprintf(joined, sizeof joined, "%s", model_path);
    else
        snprintf(joined, sizeof joined, "%s/%s", dir, model_path);
    if (realpath(joined, real) != NULL) {
        if (!path_inside(real, dir) || strlen(real) >= outlen)
            return hdb_errf(err, errlen, HDB_EPERM, CONFINED_MSG);
        snprintf(out, outlen, "%s", real);
        return HDB_OK;
    }
    if (errno != ENOENT && errno != ENOTDIR) return hdb_errf(err, errlen, HDB_EPERM, CONFINED_MSG);
    /* Missing: find the deepest existing ancestor. */
    char anc[sizeof joined];
    snprintf(anc, sizeof anc, "%s", joined);
    for (;;) {
        char *slash = strrchr(anc, '/');
        if (slash == NULL || slash == anc) return hdb_errf(err, errlen, HDB_EPERM, CONFINED_MSG);
        *slash = '\0';
        if (realpath(anc, real) == NULL) continue;
        const char *rest = joined + (slash - anc) + 1;
        /* The first missing component, which must not even be a (dangling) link. */
        char first[sizeof joined];
        memcpy(first, joined, sizeof first);
        first[(size_t)(rest - joined) + strcspn(rest, "/")] = '\0';
        struct stat st;
        if (!path_inside(real, dir) || has_dotdot(rest) || lstat(first, &st) == 0 ||
            strlen(joined) >= outlen)
            return hdb_errf(err, errlen, HDB_EPERM, CONFINED_MSG);
        snprintf(out, outlen, "%s", joined);
        return HDB_OK;
    }
}

/* The SHA-256 of the file at path, as 64 lowercase hex digits, into hex; "" when it cannot be
 * read (loading it then reports why). */
static void file_sha256(const char *path, char hex[65]) {
    hex[0] = '\0';
    FILE *f = fopen(path, "rb");
    if (f == NULL) return;
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    unsigned char buf[65536], out[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    bool ok = md != NULL && EVP_DigestInit_ex(md, EVP_sha256(), NULL) == 1;
    size_t got;
    while (ok && (got = fread(buf, 1, sizeof buf, f)) > 0) ok = EVP_DigestUpdate(md, buf, got) == 1;
    ok = ok && !ferror(f) && EVP_DigestFinal_ex(md, out, &n) == 1 && n == 32;
    EVP_MD_CTX_free(md);
    fclose(f);
    if (!ok) return;
    for (unsigned int i = 0; i < n; i++) snprintf(hex + 2 * i, 3, "%02x", out[i]);
}

/* Loads the model of sp from under cfg->models_dir (confine_model_path), after taking the
 * file's SHA-256 into sp->sha256; on failure leaves sp->model NULL and returns the error. */
static int space_load_model(const hdb_config *cfg, hdb_space *sp, const char *model_path,
                            char *err, size_t errlen) {
    char path[PATH_MAX + 2048];
    sp->model = NULL;
    sp->sha256[0] = '\0';
    int rc = confine_model_path(cfg->models_dir, model_path, path, sizeof path, err, errlen);
    if (rc != HDB_OK) return rc;
    file_sha256(path, sp->sha256);
    rc = hdb_model_load_output(&sp->model, path, sp->shape, sp->ndim, sp->output_dim,
                               sp->output_index, err, errlen);
    if (rc != HDB_OK) {
        sp->model = NULL;
        /* "output_index 2: the model returns a tuple of 2 elements" is about that field. */
        bool about_index = strncmp(err, "output_index ", 13) == 0;
        return hdb_err_prefix(err, errlen, rc == HDB_EIO ? HDB_EINVAL : rc,
                              about_index ? "spec." : "spec.model_path: ");
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
    hdb_reembed_free(sp->reembed, sp->dropped); /* stopped by the drop or the close */
    hdb_free(sp->reembed_from);
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

bool hdb_space_keeps_inputs(const hdb_space *sp) {
    return sp->keep_inputs;
}

hdb_reembed *hdb_space_reembed(const hdb_space *sp) {
    return sp->reembed;
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

static hdb_space *get_exact(hdb_space_registry *reg, const char *name);

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

/* At start: the model file of a stored space must be the one its vectors came from. A space
 * stored before checksums were recorded gets the current file's recorded now. */
static int check_model_unchanged(hdb_space_registry *reg, hdb_space *sp,
                                 Hilbert__V1__ModelSpaceSpec *spec, char *err, size_t errlen) {
    if (sp->sha256[0] == '\0') return HDB_OK; /* unreadable: the load failed and says why */
    const char *was = spec->model_sha256 ? spec->model_sha256 : "";
    if (was[0] != '\0') {
        if (strcmp(was, sp->sha256) == 0) return HDB_OK;
        return hdb_errf(err, errlen, HDB_EPRECOND,
                        "model space %s: its model file %s has changed since the space was "
                        "created (SHA-256 %.12s..., now %.12s...), and the space's stored vectors "
                        "came from the old model. Put the old file back; or create a new model "
                        "space for the new model and move clients to it (or drop this one and "
                        "create it again, losing its items)",
                        sp->name, spec->model_path, was, sp->sha256);
    }
    spec->model_sha256 = sp->sha256;
    size_t len;
    unsigned char *bytes = pack(&spec->base, &len);
    char derr[256];
    int rc = hdb_defs_put(reg->defs, HDB_DEF_SPACE, sp->name, 0, bytes, len, 0, derr,
                          sizeof derr);
    if (rc == HDB_OK) {
        hdb_free(sp->spec_bytes);
        sp->spec_bytes = bytes;
        sp->spec_len = len;
        HDB_INFO("spaces", "model space %s: recorded the SHA-256 of its model file (%s)",
                 sp->name, sp->sha256);
    } else {
        hdb_free(bytes);
        HDB_WARN("spaces", "model space %s: cannot record its model's SHA-256: %s", sp->name,
                 derr);
    }
    return HDB_OK;
}

/* ---------------------------------------------------------------- re-embedding */

/* Checks that sp (being created from the normalised spec n) can re-embed from the space that
 * n->reembed_from names (its name, or a model-space alias), and makes n->reembed_from that
 * space's own name (arena memory). The caller holds reg->ddl. */
static int origin_check(hdb_space_registry *reg, hdb_space *sp, Hilbert__V1__ModelSpaceSpec *n,
                        hdb_arena *a, char *err, size_t errlen) {
    hdb_space *o = NULL;
    int rc = hdb_spaces_get(reg, n->reembed_from, &o, err, errlen);
    if (rc != HDB_OK) return hdb_err_prefix(err, errlen, HDB_EINVAL, "spec.reembed_from: ");
    const char *oname = o->name;
    Hilbert__V1__ModelSpaceSpec *os = hdb_space_spec(o, a);
    if (!o->keep_inputs)
        rc = hdb_errf(err, errlen, HDB_EPRECOND,
                      "spec.reembed_from: model space %s does not keep its inputs "
                      "(keep_inputs), so there is nothing to re-embed",
                      oname);
    else if (o->image != sp->image)
        rc = hdb_errf(err, errlen, HDB_EINVAL,
                      "spec.input: model space %s takes %s; a space that re-embeds its items "
                      "must take them too",
                      oname, o->image ? "images" : "tensors");
    else if (!o->image && (o->ndim != sp->ndim ||
                           memcmp(o->shape, sp->shape, sp->ndim * sizeof sp->shape[0]) != 0))
        rc = hdb_errf(err, errlen, HDB_EINVAL,
                      "spec.input.tensor.shape: must be that of model space %s, whose items are "
                      "re-embedded",
                      oname);
    for (size_t i = 0; rc == HDB_OK && os && i < n->n_permanent_attributes; i++) {
        const Hilbert__V1__AttributeSpec *want = n->permanent_attributes[i];
        bool same = false;
        for (size_t j = 0; j < os->n_permanent_attributes && !same; j++)
            same = want->name && os->permanent_attributes[j]->name &&
                   strcmp(want->name, os->permanent_attributes[j]->name) == 0 &&
                   want->type == os->permanent_attributes[j]->type;
        if (!same)
            rc = hdb_errf(err, errlen, HDB_EINVAL,
                          "spec.permanent_attributes[%zu]: \"%s\" is not a permanent attribute "
                          "of model space %s with this type; the items re-embedded from it "
                          "carry only its attributes",
                          i, want->name ? want->name : "", oname);
    }
    if (rc == HDB_OK) n->reembed_from = hdb_arena_strndup(a, oname, strlen(oname));
    hdb_space_unref(o);
    return rc;
}

/* Opens the re-embedding worker of sp from origin (NULL: gone) into sp->reembed, and starts it
 * once the registry has its inference pool. The caller holds reg->ddl, or is the only thread. */
static int worker_open(hdb_space_registry *reg, hdb_space *sp, hdb_space *origin, bool fresh,
                       char *err, size_t errlen) {
    hdb_reembed_spec rs = {.target = sp->name,
                           .origin = sp->reembed_from,
                           .origin_src = origin ? origin->source : NULL,
                           .target_src = sp->source,
                           .model = sp->model,
                           .image = sp->image ? &sp->is : NULL,
                           .input_size = sp->input_size,
                           .output_dim = sp->output_dim,
                           .cat = reg->cat,
                           .defs = reg->defs,
                           .cfg = reg->cfg};
    int rc = hdb_reembed_open(&sp->reembed, &rs, fresh, err, errlen);
    if (rc != HDB_OK) return hdb_err_prefix(err, errlen, rc, "model space %s: ", sp->name);
    if (reg->infer) hdb_reembed_start(sp->reembed, reg->infer);
    return HDB_OK;
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
    if (spec->reembed_from && spec->reembed_from[0])
        sp->reembed_from = hdb_strdup(spec->reembed_from);
    sp->spec_bytes = hdb_malloc(vlen ? vlen : 1);
    memcpy(sp->spec_bytes, v, vlen);
    sp->spec_len = vlen;
    os = space_owned(spec, a);
    if ((rc = hdb_catalog_create_owned(reg->cat, &os, &sp->source, &sp->index, err, errlen)))
        goto fail;
    if (space_load_model(reg->cfg, sp, spec->model_path, lerr, sizeof lerr) == HDB_OK &&
        (rc = check_model_unchanged(reg, sp, spec, err, errlen)) != HDB_OK) {
        goto fail;
    }
    if (sp->model == NULL) {
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
    /* Workers once every space is there: an origin may sort after its target. */
    for (size_t i = 0; i < reg->n && rc == HDB_OK; i++) {
        hdb_space *sp = reg->spaces[i];
        if (sp->reembed_from)
            rc = worker_open(reg, sp, find_space(reg, sp->reembed_from), false, err, errlen);
    }
    if (rc != HDB_OK) {
        hdb_spaces_close(reg);
        return hdb_err_prefix(err, errlen, rc, "model spaces: ");
    }
    HDB_INFO("spaces", "%zu model spaces", reg->n);
    *out = reg;
    return HDB_OK;
}

void hdb_spaces_start_background(hdb_space_registry *reg, hdb_infer *infer) {
    pthread_mutex_lock(&reg->ddl);
    reg->infer = infer;
    for (size_t i = 0; i < reg->n; i++)
        if (reg->spaces[i]->reembed) hdb_reembed_start(reg->spaces[i]->reembed, infer);
    pthread_mutex_unlock(&reg->ddl);
}

void hdb_spaces_stop_background(hdb_space_registry *reg) {
    if (reg == NULL) return;
    pthread_mutex_lock(&reg->ddl);
    reg->infer = NULL;
    for (size_t i = 0; i < reg->n; i++) hdb_reembed_stop(reg->spaces[i]->reembed);
    pthread_mutex_unlock(&reg->ddl);
}

void hdb_spaces_close(hdb_space_registry *reg) {
    if (reg == NULL) return;
    for (size_t i = 0; i < reg->n; i++) hdb_reembed_stop(reg->spaces[i]->reembed);
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
    char target[HDB_NAME_MAX + 1];
    if (hdb_catalog_space_alias(reg->cat, spec->name, target)) {
        rc = hdb_errf(err, errlen, HDB_EEXIST,
                      "spec.name: \"%s\" is a model-space alias (of \"%s\"); a model space "
                      "needs a name of its own",
                      spec->name, target);
        goto fail;
    }
    if ((rc = space_load_model(reg->cfg, sp, n->model_path, err, errlen)) != HDB_OK) goto fail;
    if (n->model_sha256 && n->model_sha256[0] && strcmp(n->model_sha256, sp->sha256) != 0) {
        rc = hdb_errf(err, errlen, HDB_EINVAL,
                      "spec.model_sha256: the model file %s has SHA-256 %s, not %s",
                      n->model_path, sp->sha256, n->model_sha256);
        goto fail;
    }
    n->model_sha256 = sp->sha256;
    if (n->reembed_from && n->reembed_from[0]) {
        if ((rc = origin_check(reg, sp, n, a, err, errlen)) != HDB_OK) goto fail;
        sp->reembed_from = hdb_strdup(n->reembed_from);
    } else {
        n->reembed_from = ""; /* one normal form */
    }
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
    if (sp->reembed_from) {
        hdb_space *origin = get_exact(reg, sp->reembed_from);
        rc = worker_open(reg, sp, origin, true, err, errlen);
        hdb_space_unref(origin);
        if (rc != HDB_OK) {
            char derr[256];
            hdb_defs_delete(reg->defs, HDB_DEF_SPACE, sp->name, NULL, 0);
            if (hdb_catalog_drop_owned(reg->cat, sp->source, sp->index, derr, sizeof derr))
                HDB_WARN("spaces", "model space %s: %s", sp->name, derr);
            goto fail;
        }
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

/* The space of exactly this name (no alias), referenced, or NULL. */
static hdb_space *get_exact(hdb_space_registry *reg, const char *name) {
    pthread_rwlock_rdlock(&reg->lock);
    hdb_space *sp = name ? find_space(reg, name) : NULL;
    if (sp) hdb_space_ref(sp);
    pthread_rwlock_unlock(&reg->lock);
    return sp;
}

int hdb_spaces_get(hdb_space_registry *reg, const char *name, hdb_space **out, char *err,
                   size_t errlen) {
    char target[HDB_NAME_MAX + 1] = "";
    /* The alias is read under our read lock: a space it names cannot leave the array (a drop
     * takes the write lock) between the reading and the lookup. */
    pthread_rwlock_rdlock(&reg->lock);
    hdb_space *sp = name ? find_space(reg, name) : NULL;
    if (sp == NULL && name && hdb_catalog_space_alias(reg->cat, name, target))
        sp = find_space(reg, target);
    if (sp) hdb_space_ref(sp);
    pthread_rwlock_unlock(&reg->lock);
    if (sp == NULL && target[0])
        return hdb_errf(err, errlen, HDB_ENOTFOUND,
                        "model-space alias \"%s\" points to model space \"%s\", which does not "
                        "exist",
                        name, target);
    if (sp == NULL)
        return hdb_errf(err, errlen, HDB_ENOTFOUND, "model space \"%s\" does not exist",
                        name ? name : "");
    *out = sp;
    return HDB_OK;
}

static bool space_exists(void *arg, const char *name) {
    hdb_space_registry *reg = arg;
    pthread_rwlock_rdlock(&reg->lock);
    bool found = find_space(reg, name) != NULL;
    pthread_rwlock_unlock(&reg->lock);
    return found;
}

int hdb_spaces_update_aliases(hdb_space_registry *reg, Hilbert__V1__AliasAction *const *actions,
                              size_t n, char *err, size_t errlen) {
    hdb_alias_spaces spaces = {space_exists, reg};
    pthread_mutex_lock(&reg->ddl);
    int rc = hdb_catalog_update_aliases(reg->cat, actions, n, &spaces, err, errlen);
    pthread_mutex_unlock(&reg->ddl);
    return rc;
}

int hdb_spaces_drop(hdb_space_registry *reg, const char *name, char *err, size_t errlen) {
    /* By its own name only: dropping through an alias is not a thing. */
    hdb_space *sp = get_exact(reg, name);
    if (sp == NULL)
        return hdb_errf(err, errlen, HDB_ENOTFOUND, "model space \"%s\" does not exist",
                        name ? name : "");
    int rc = HDB_OK;
    char alias[HDB_NAME_MAX + 1];
    pthread_mutex_lock(&reg->ddl);
    if (atomic_load(&sp->dropped)) {
        rc = hdb_errf(err, errlen, HDB_ENOTFOUND, "model space \"%s\" does not exist", name);
        goto out;
    }
    /* Aliases change under reg->ddl too: none can appear before the drop is done. */
    if (hdb_catalog_alias_pointing(reg->cat, HDB_ALIAS_SPACE, sp->name, alias)) {
        rc = hdb_errf(err, errlen, HDB_EPRECOND,
                      "model space \"%s\" is the target of model-space alias \"%s\"; switch or "
                      "delete the alias first",
                      sp->name, alias);
        goto out;
    }
    if (hdb_catalog_alias_pointing(reg->cat, HDB_ALIAS_INDEX, hdb_ixent_label(sp->index),
                                   alias)) {
        rc = hdb_errf(err, errlen, HDB_EPRECOND,
                      "model space \"%s\": its index %s is the target of index alias \"%s\"; "
                      "switch or delete the alias first",
                      sp->name, hdb_ixent_label(sp->index), alias);
        goto out;
    }
    /* Spaces that re-embed from this one must have copied it all; they then stand alone. */
    for (int pass = 0; pass < 2; pass++) {
        for (size_t i = 0; i < reg->n; i++) {
            hdb_reembed *r = reg->spaces[i]->reembed;
            if (r == NULL || strcmp(hdb_reembed_origin(r), sp->name) != 0) continue;
            hdb_reembed_status st;
            hdb_reembed_status_get(r, &st);
            if (st.state == HDB_REEMBED_DONE || (pass == 0 && st.state != HDB_REEMBED_COPYING))
                continue;
            if ((rc = hdb_reembed_finish(r, err, errlen)) != HDB_OK) goto out;
        }
    }
    /* The definition first: what is left after a crash is a plain source and index. */
    if ((rc = hdb_defs_delete(reg->defs, HDB_DEF_SPACE, sp->name, err, errlen)) != HDB_OK)
        goto out;
    hdb_reembed_stop(sp->reembed); /* it writes to the storage dropped below */
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
        if (spec->name && (sp = get_exact(reg, spec->name)) != NULL) {
            hdb_space tmp = {0};
            if ((rc = space_check(spec, reg->cfg, &tmp, err, errlen)) == HDB_OK) {
                size_t len;
                Hilbert__V1__ModelSpaceSpec *n = space_normalise(spec, &tmp, arena);
                /* A config that names no checksum takes the recorded one. */
                if (n->model_sha256 == NULL || n->model_sha256[0] == '\0')
                    n->model_sha256 = sp->sha256;
                unsigned char *want = pack(&n->base, &len);
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
