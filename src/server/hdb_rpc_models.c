/*
 * hdb_rpc_models.c - the ModelSpaces service. Each call resolves its model spaces, runs the
 * models through the inference pool where it needs vectors, then writes through ingest (one
 * atomic write across all named spaces) or searches through query, one result per space.
 */
#include "hdb_rpc_models.h"

#include "hdb_arena.h"
#include "hdb_catalog.h"
#include "hdb_codec.h"
#include "hdb_config.h"
#include "hdb_distance.h"
#include "hdb_err.h"
#include "hdb_ingest.h"
#include "hdb_query.h"
#include "hdb_rpc_search.h"
#include "hdb_space.h"
#include "hdb_spaces.h"
#include "hilbert/v1/modelspaces.pb-c.h"

#include <stdio.h>
#include <string.h>

/* ---------------------------------------------------------------- shared pieces */

/* The name of sp copied into arena: the response outlives the call's references. */
static char *name_copy(hdb_arena *a, const hdb_space *sp) {
    const char *name = hdb_space_name(sp);
    return hdb_arena_strndup(a, name, strlen(name));
}

static int check_id(const hdb_config *cfg, const char *id, char *err, size_t errlen) {
    if (id == NULL || id[0] == '\0') return hdb_errf(err, errlen, HDB_EINVAL, "id: is required");
    if (strlen(id) > cfg->max_value_bytes)
        return hdb_errf(err, errlen, HDB_EINVAL, "id: longer than limits.max_value_bytes (%u)",
                        cfg->max_value_bytes);
    return HDB_OK;
}

static hdb_attr id_attr(const char *id) {
    hdb_attr a = {.name = "id", .value = {.type = HDB_ATTR_STRING}};
    a.value.u.s.p = id;
    a.value.u.s.n = strlen(id);
    return a;
}

/* The request's attributes plus {"id": id}, sorted. */
static int item_attrs(hdb_rpc *rpc, const char *id, hdb_kv *kv, size_t nkv, hdb_attr **out,
                      uint32_t *nout, char *err, size_t errlen) {
    const hdb_config *cfg = rpc->config;
    hdb_attr *attrs;
    uint32_t n;
    int rc = hdb_codec_attrs_in(kv, nkv, cfg->max_attributes, cfg->max_value_bytes, "attributes",
                                rpc->arena, &attrs, &n, err, errlen);
    if (rc != HDB_OK) return rc;
    if (hdb_attr_find(attrs, n, "id", true))
        return hdb_errf(err, errlen, HDB_EINVAL,
                        "attributes[\"id\"]: the item id goes in the id field");
    hdb_attr *all = hdb_arena_alloc(rpc->arena, (n + 1) * sizeof *all);
    memcpy(all, attrs, n * sizeof *all);
    all[n] = id_attr(id);
    hdb_attrs_sort(all, n + 1);
    *out = all;
    *nout = n + 1;
    return HDB_OK;
}

static int tensor_input(const Hilbert__V1__Tensor *t, hdb_model_input *in, char *err,
                        size_t errlen) {
    if (t == NULL) return hdb_errf(err, errlen, HDB_EINVAL, "tensor: is required");
    *in = (hdb_model_input){.is_image = false,
                            .tensor = t->values,
                            .tensor_len = t->n_values,
                            .shape = t->shape,
                            .ndim = t->n_shape};
    size_t bad;
    if (!hdb_all_finite(t->values, t->n_values, &bad))
        return hdb_errf(err, errlen, HDB_EINVAL, "tensor.values[%zu]: must be finite", bad);
    return HDB_OK;
}

static Hilbert__V1__SpaceWrite *space_write(hdb_arena *a, const hdb_space *sp, uint64_t seq,
                                            const float *vec) {
    Hilbert__V1__SpaceWrite *w = hdb_arena_alloc(a, sizeof *w);
    hilbert__v1__space_write__init(w);
    w->model_space = name_copy(a, sp);
    w->seq = seq;
    if (vec) {
        Hilbert__V1__DenseVector *d = hdb_arena_alloc(a, sizeof *d);
        hilbert__v1__dense_vector__init(d);
        d->values = (float *)vec;
        d->n_values = hdb_space_output_dim(sp);
        w->vector = d;
    }
    return w;
}

/* Writes one point per space (all or nothing) and fills the response. */
static int write_points(hdb_rpc *rpc, hdb_space **spaces, size_t n, hdb_point *points,
                        float **vecs, Hilbert__V1__SpaceWrite ***out, char *err, size_t errlen) {
    hdb_arena *a = rpc->arena;
    hdb_source **srcs = hdb_arena_alloc(a, n * sizeof *srcs);
    uint64_t *seqs = hdb_arena_alloc(a, n * sizeof *seqs);
    for (size_t i = 0; i < n; i++) srcs[i] = hdb_space_source(spaces[i]);
    size_t failed = 0;
    /* Ingest names the field within the point, which is the request's own. */
    int rc = hdb_ingest_upload_each(srcs, points, n, rpc->config, a, seqs, &failed, err, errlen);
    if (rc != HDB_OK)
        return hdb_err_prefix(err, errlen, rc, "model space %s: ", hdb_space_name(spaces[failed]));
    *out = hdb_arena_alloc(a, n * sizeof **out);
    for (size_t i = 0; i < n; i++) (*out)[i] = space_write(a, spaces[i], seqs[i], vecs ? vecs[i] : NULL);
    return HDB_OK;
}

/* ---------------------------------------------------------------- add */

typedef Hilbert__V1__AddResponse AddResponse_t;

static int add(hdb_rpc *rpc, const char *id, const hdb_model_input *in, char *const *names,
               size_t nnames, hdb_kv *kv, size_t nkv, bool return_vectors, AddResponse_t **resp,
               char *err, size_t errlen) {
    hdb_arena *a = rpc->arena;
    hdb_attr *attrs = NULL;
    uint32_t nattrs = 0;
    int rc = check_id(rpc->config, id, err, errlen);
    if (rc == HDB_OK) rc = item_attrs(rpc, id, kv, nkv, &attrs, &nattrs, err, errlen);
    if (rc != HDB_OK) return rc;
    hdb_space **spaces;
    size_t n;
    if ((rc = hdb_spaces_resolve(rpc->spaces, names, nnames, a, &spaces, &n, err, errlen)))
        return rc;
    float **vecs = hdb_arena_alloc(a, n * sizeof *vecs);
    rc = hdb_spaces_embed(spaces, n, in, rpc->config, rpc->infer, rpc->deadline_ns, a, vecs, err,
                          errlen);
    if (rc == HDB_OK) {
        hdb_point *points = hdb_arena_calloc(a, n, sizeof *points);
        for (size_t i = 0; i < n; i++)
            points[i] = (hdb_point){.vec = vecs[i], .dim = hdb_space_output_dim(spaces[i]), .attrs = attrs,
                                    .nattrs = nattrs};
        Hilbert__V1__AddResponse *r = hdb_arena_alloc(a, sizeof *r);
        hilbert__v1__add_response__init(r);
        rc = write_points(rpc, spaces, n, points, return_vectors ? vecs : NULL, &r->results, err,
                          errlen);
        r->n_results = n;
        *resp = r;
    }
    hdb_spaces_release(spaces, n);
    return rc;
}

static int add_image(hdb_rpc *rpc, const ProtobufCMessage *m, ProtobufCMessage **resp, char *err,
                     size_t errlen) {
    const Hilbert__V1__AddImageRequest *req = (const void *)m;
    hdb_model_input in = {.is_image = true, .image = req->image.data, .image_len = req->image.len};
    hdb_kv *kv;
    HDB_KV_VIEW(rpc->arena, req->attributes, req->n_attributes, kv);
    AddResponse_t *r = NULL;
    int rc = add(rpc, req->id, &in, req->model_spaces, req->n_model_spaces, kv, req->n_attributes,
                 req->return_vectors, &r, err, errlen);
    if (rc == HDB_OK) *resp = &r->base;
    return rc;
}

static int add_tensor(hdb_rpc *rpc, const ProtobufCMessage *m, ProtobufCMessage **resp,
                      char *err, size_t errlen) {
    const Hilbert__V1__AddTensorRequest *req = (const void *)m;
    hdb_model_input in;
    int rc = tensor_input(req->tensor, &in, err, errlen);
    if (rc != HDB_OK) return rc;
    hdb_kv *kv;
    HDB_KV_VIEW(rpc->arena, req->attributes, req->n_attributes, kv);
    AddResponse_t *r = NULL;
    rc = add(rpc, req->id, &in, req->model_spaces, req->n_model_spaces, kv, req->n_attributes,
             req->return_vectors, &r, err, errlen);
    if (rc == HDB_OK) *resp = &r->base;
    return rc;
}

/* ---------------------------------------------------------------- find */

/* One min_seq map entry. */
typedef struct {
    const char *key;
    uint64_t value;
} seq_kv;

/* Common parameters of the three Find calls. */
typedef struct {
    int32_t k;
    hdb_attr *filter;
    uint32_t nfilter;
    bool vectors;
    hdb_search_opts opts;
    seq_kv *min_seq;
    size_t nmin_seq;
} find_params;

static int find_params_in(hdb_rpc *rpc, int32_t k, const hdb_kv *kv, size_t nkv, bool vectors,
                          const Hilbert__V1__SearchParams *params, find_params *fp, char *err,
                          size_t errlen) {
    fp->k = k;
    fp->vectors = vectors;
    fp->opts = (hdb_search_opts){params ? params->ef_search : 0, params ? params->nprobe : 0};
    return hdb_codec_attrs_in(kv, nkv, rpc->config->max_attributes, rpc->config->max_value_bytes,
                              "split_filter", rpc->arena, &fp->filter, &fp->nfilter, err, errlen);
}

/* Decodes the Find parameters shared by the three Find requests (k, split_filter,
 * retrieve_vectors, params, min_seq) into fp; sets rc. The request types differ, hence a
 * macro. */
#define FIND_PARAMS(rpc, req, fp, rc)                                                              \
    do {                                                                                           \
        hdb_kv *kv_;                                                                               \
        HDB_KV_VIEW((rpc)->arena, (req)->split_filter, (req)->n_split_filter, kv_);                \
        (rc) = find_params_in((rpc), (req)->k, kv_, (req)->n_split_filter,                         \
                              (req)->retrieve_vectors, (req)->params, (fp), err, errlen);          \
        if ((rc) == HDB_OK) MIN_SEQ_VIEW((rpc)->arena, (req)->min_seq, (req)->n_min_seq, (fp));    \
    } while (0)

/* Copies a map<string, uint64> min_seq field into fp. */
#define MIN_SEQ_VIEW(arena, entries, n, fp)                                                        \
    do {                                                                                           \
        (fp)->min_seq = hdb_arena_alloc((arena), ((n) ? (n) : 1) * sizeof(seq_kv));                \
        for (size_t i_ = 0; i_ < (n); i_++)                                                        \
            (fp)->min_seq[i_] = (seq_kv){(entries)[i_]->key, (entries)[i_]->value};                \
        (fp)->nmin_seq = (n);                                                                      \
    } while (0)

/* min_seq entries must name requested spaces; returns the one for sp (0 if none). */
static int min_seq_check(const find_params *fp, hdb_space **spaces, size_t n, char *err,
                         size_t errlen) {
    for (size_t i = 0; i < fp->nmin_seq; i++) {
        bool known = false;
        for (size_t j = 0; j < n && !known; j++)
            known = strcmp(fp->min_seq[i].key, hdb_space_name(spaces[j])) == 0;
        if (!known)
            return hdb_errf(err, errlen, HDB_EINVAL,
                            "min_seq[\"%s\"]: not one of the requested model spaces",
                            fp->min_seq[i].key);
    }
    return HDB_OK;
}

static uint64_t min_seq_of(const find_params *fp, const hdb_space *sp) {
    for (size_t i = 0; i < fp->nmin_seq; i++)
        if (strcmp(fp->min_seq[i].key, hdb_space_name(sp)) == 0) return fp->min_seq[i].value;
    return 0;
}

/* Searches vec in sp's index; excludes pid `self` (0: none). */
static int find_in_space(hdb_rpc *rpc, hdb_space *sp, const float *vec, const find_params *fp,
                         uint64_t self, Hilbert__V1__SpaceHits *out, char *err, size_t errlen) {
    hdb_query_vec q = {.present = true, .vec = vec, .dim = hdb_space_output_dim(sp)};
    hdb_query_params qp = {.k = fp->k,
                           .min_seq = min_seq_of(fp, sp),
                           .opts = fp->opts,
                           .filter = fp->filter,
                           .nfilter = fp->nfilter,
                           .deadline_ns = rpc->deadline_ns};
    /* One more, to make room for the item itself; limits are judged on the client's k. */
    if (self && fp->k > 0 && (uint32_t)fp->k < rpc->config->max_k) qp.k = fp->k + 1;
    hdb_query_result res;
    uint64_t applied;
    int rc = hdb_query_search(hdb_space_index(sp), rpc->config, &q, 1, &qp, rpc->arena, &res, &applied, err,
                              errlen);
    if (rc != HDB_OK) return hdb_err_prefix(err, errlen, rc, "model space %s: ", hdb_space_name(sp));
    if (self) {
        size_t w = 0;
        for (size_t i = 0; i < res.n; i++)
            if (res.hits[i].pid != self) res.hits[w++] = res.hits[i];
        res.n = w > (size_t)fp->k ? (size_t)fp->k : w;
    }
    out->found = true;
    out->hits = hdb_rpc_hits_out(&res, fp->vectors, rpc->arena, &out->n_hits);
    return HDB_OK;
}

/* A FindSimilarResponse with n empty SpaceHits, each named after its space, in arena memory. */
static Hilbert__V1__FindSimilarResponse *find_response(hdb_arena *a, hdb_space **spaces,
                                                        size_t n) {
    Hilbert__V1__FindSimilarResponse *r = hdb_arena_alloc(a, sizeof *r);
    hilbert__v1__find_similar_response__init(r);
    r->results = hdb_arena_alloc(a, (n ? n : 1) * sizeof *r->results);
    r->n_results = n;
    for (size_t i = 0; i < n; i++) {
        r->results[i] = hdb_arena_alloc(a, sizeof **r->results);
        hilbert__v1__space_hits__init(r->results[i]);
        r->results[i]->model_space = name_copy(a, spaces[i]);
    }
    return r;
}

static int find_by_input(hdb_rpc *rpc, const hdb_model_input *in, char *const *names,
                         size_t nnames, find_params *fp, ProtobufCMessage **resp, char *err,
                         size_t errlen) {
    hdb_arena *a = rpc->arena;
    hdb_space **spaces;
    size_t n;
    int rc = hdb_spaces_resolve(rpc->spaces, names, nnames, a, &spaces, &n, err, errlen);
    if (rc != HDB_OK) return rc;
    float **vecs = hdb_arena_alloc(a, n * sizeof *vecs);
    if ((rc = min_seq_check(fp, spaces, n, err, errlen)) == HDB_OK)
        rc = hdb_spaces_embed(spaces, n, in, rpc->config, rpc->infer, rpc->deadline_ns, a, vecs,
                              err, errlen);
    Hilbert__V1__FindSimilarResponse *r = find_response(a, spaces, n);
    for (size_t i = 0; i < n && rc == HDB_OK; i++)
        rc = find_in_space(rpc, spaces[i], vecs[i], fp, 0, r->results[i], err, errlen);
    hdb_spaces_release(spaces, n);
    if (rc == HDB_OK) *resp = &r->base;
    return rc;
}

static int find_image(hdb_rpc *rpc, const ProtobufCMessage *m, ProtobufCMessage **resp,
                      char *err, size_t errlen) {
    const Hilbert__V1__FindSimilarImageRequest *req = (const void *)m;
    find_params fp = {0};
    int rc;
    FIND_PARAMS(rpc, req, &fp, rc);
    if (rc != HDB_OK) return rc;
    hdb_model_input in = {.is_image = true, .image = req->image.data, .image_len = req->image.len};
    return find_by_input(rpc, &in, req->model_spaces, req->n_model_spaces, &fp, resp, err,
                         errlen);
}

static int find_tensor(hdb_rpc *rpc, const ProtobufCMessage *m, ProtobufCMessage **resp,
                       char *err, size_t errlen) {
    const Hilbert__V1__FindSimilarTensorRequest *req = (const void *)m;
    find_params fp = {0};
    int rc;
    FIND_PARAMS(rpc, req, &fp, rc);
    if (rc != HDB_OK) return rc;
    hdb_model_input in;
    if ((rc = tensor_input(req->tensor, &in, err, errlen)) != HDB_OK) return rc;
    return find_by_input(rpc, &in, req->model_spaces, req->n_model_spaces, &fp, resp, err,
                         errlen);
}

static int find_by_id(hdb_rpc *rpc, const ProtobufCMessage *m, ProtobufCMessage **resp,
                      char *err, size_t errlen) {
    const Hilbert__V1__FindSimilarByIdRequest *req = (const void *)m;
    hdb_arena *a = rpc->arena;
    int rc = check_id(rpc->config, req->id, err, errlen);
    if (rc != HDB_OK) return rc;
    find_params fp = {0};
    FIND_PARAMS(rpc, req, &fp, rc);
    if (rc != HDB_OK) return rc;
    hdb_space **spaces;
    size_t n;
    if ((rc = hdb_spaces_resolve(rpc->spaces, req->model_spaces, req->n_model_spaces, a, &spaces,
                                 &n, err, errlen)))
        return rc;
    rc = min_seq_check(&fp, spaces, n, err, errlen);
    Hilbert__V1__FindSimilarResponse *r = find_response(a, spaces, n);
    hdb_attr id = id_attr(req->id);
    hdb_attr *ids[1] = {&id};
    uint32_t nids[1] = {1};
    for (size_t i = 0; i < n && rc == HDB_OK; i++) {
        Hilbert__V1__SpaceHits *sh = r->results[i];
        hdb_row g;
        rc = hdb_ingest_get(hdb_space_source(spaces[i]), rpc->config, ids, nids, 1, a, &g, err, errlen);
        if (rc != HDB_OK) {
            hdb_err_prefix(err, errlen, rc, "model space %s: ", hdb_space_name(spaces[i]));
            break;
        }
        if (!g.found) continue; /* found = false, no hits */
        rc = find_in_space(rpc, spaces[i], g.rec.point.vec, &fp, g.pid, sh, err, errlen);
    }
    hdb_spaces_release(spaces, n);
    if (rc == HDB_OK) *resp = &r->base;
    return rc;
}

/* ---------------------------------------------------------------- remove, embed */

static int remove_image(hdb_rpc *rpc, const ProtobufCMessage *m, ProtobufCMessage **resp,
                        char *err, size_t errlen) {
    const Hilbert__V1__RemoveImageRequest *req = (const void *)m;
    hdb_arena *a = rpc->arena;
    int rc = check_id(rpc->config, req->id, err, errlen);
    if (rc != HDB_OK) return rc;
    hdb_space **spaces;
    size_t n;
    if ((rc = hdb_spaces_resolve(rpc->spaces, req->model_spaces, req->n_model_spaces, a, &spaces,
                                 &n, err, errlen)))
        return rc;
    hdb_attr *id = hdb_arena_alloc(a, sizeof *id);
    *id = id_attr(req->id);
    hdb_point *points = hdb_arena_calloc(a, n, sizeof *points);
    for (size_t i = 0; i < n; i++)
        points[i] = (hdb_point){.attrs = id, .nattrs = 1, .deleted = true};
    Hilbert__V1__RemoveImageResponse *r = hdb_arena_alloc(a, sizeof *r);
    hilbert__v1__remove_image_response__init(r);
    rc = write_points(rpc, spaces, n, points, NULL, &r->results, err, errlen);
    r->n_results = n;
    hdb_spaces_release(spaces, n);
    if (rc == HDB_OK) *resp = &r->base;
    return rc;
}

static int embed(hdb_rpc *rpc, const ProtobufCMessage *m, ProtobufCMessage **resp, char *err,
                 size_t errlen) {
    const Hilbert__V1__EmbedRequest *req = (const void *)m;
    hdb_arena *a = rpc->arena;
    hdb_model_input in;
    int rc = HDB_OK;
    if (req->input_case == HILBERT__V1__EMBED_REQUEST__INPUT_IMAGE)
        in = (hdb_model_input){.is_image = true, .image = req->image.data,
                               .image_len = req->image.len};
    else if (req->input_case == HILBERT__V1__EMBED_REQUEST__INPUT_TENSOR)
        rc = tensor_input(req->tensor, &in, err, errlen);
    else
        return hdb_errf(err, errlen, HDB_EINVAL, "input: an image or a tensor is required");
    if (rc != HDB_OK) return rc;
    hdb_space **spaces;
    size_t n;
    if ((rc = hdb_spaces_resolve(rpc->spaces, req->model_spaces, req->n_model_spaces, a, &spaces,
                                 &n, err, errlen)))
        return rc;
    float **vecs = hdb_arena_alloc(a, n * sizeof *vecs);
    rc = hdb_spaces_embed(spaces, n, &in, rpc->config, rpc->infer, rpc->deadline_ns, a, vecs, err,
                          errlen);
    if (rc == HDB_OK) {
        Hilbert__V1__EmbedResponse *r = hdb_arena_alloc(a, sizeof *r);
        hilbert__v1__embed_response__init(r);
        r->vectors = hdb_arena_alloc(a, n * sizeof *r->vectors);
        r->n_vectors = n;
        for (size_t i = 0; i < n; i++) {
            Hilbert__V1__SpaceVector *sv = hdb_arena_alloc(a, sizeof *sv);
            hilbert__v1__space_vector__init(sv);
            sv->model_space = name_copy(a, spaces[i]);
            Hilbert__V1__DenseVector *d = hdb_arena_alloc(a, sizeof *d);
            hilbert__v1__dense_vector__init(d);
            d->values = vecs[i];
            d->n_values = hdb_space_output_dim(spaces[i]);
            sv->vector = d;
            r->vectors[i] = sv;
        }
        *resp = &r->base;
    }
    hdb_spaces_release(spaces, n);
    return rc;
}

#define SVC "hilbert.v1.ModelSpaces"

static const hdb_rpc_method methods[] = {
    {SVC, "AddImage", &hilbert__v1__add_image_request__descriptor, add_image, true},
    {SVC, "AddTensor", &hilbert__v1__add_tensor_request__descriptor, add_tensor, true},
    {SVC, "FindSimilarImage", &hilbert__v1__find_similar_image_request__descriptor, find_image,
     true},
    {SVC, "FindSimilarTensor", &hilbert__v1__find_similar_tensor_request__descriptor, find_tensor,
     true},
    {SVC, "FindSimilarById", &hilbert__v1__find_similar_by_id_request__descriptor, find_by_id,
     true},
    {SVC, "RemoveImage", &hilbert__v1__remove_image_request__descriptor, remove_image, true},
    {SVC, "Embed", &hilbert__v1__embed_request__descriptor, embed, true},
};

const hdb_rpc_method *hdb_rpc_models_methods(size_t *n) {
    *n = sizeof methods / sizeof methods[0];
    return methods;
}
