/*
 * hdb_rpc_models.c - the ModelSpaces service: decodes each request into a call of
 * hdb_spaces.h (which resolves the spaces, runs their models and writes or searches), and
 * encodes its per-space results.
 */
#include "hdb_rpc_models.h"

#include "hdb_arena.h"
#include "hdb_codec.h"
#include "hdb_config.h"
#include "hdb_distance.h"
#include "hdb_err.h"
#include "hdb_rpc_search.h"
#include "hdb_spaces.h"
#include "hilbert/v1/modelspaces.pb-c.h"

#include <string.h>

/* ---------------------------------------------------------------- decoding */

hdb_spaces_call hdb_rpc_spaces_call(hdb_rpc *rpc) {
    return (hdb_spaces_call){.reg = rpc->spaces,
                             .cfg = rpc->config,
                             .infer = rpc->infer,
                             .arena = rpc->arena,
                             .deadline_ns = rpc->deadline_ns,
                             .stop = hdb_rpc_stop(rpc)};
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

static hdb_model_input image_input(ProtobufCBinaryData image) {
    return (hdb_model_input){.is_image = true, .image = image.data, .image_len = image.len};
}

/* The request's attributes, sorted (hdb_codec_attrs_in). */
static int attrs_in(hdb_rpc *rpc, hdb_kv *kv, size_t nkv, hdb_attr **out, uint32_t *nout,
                    char *err, size_t errlen) {
    const hdb_config *cfg = rpc->config;
    return hdb_codec_attrs_in(kv, nkv, cfg->max_attributes, cfg->max_value_bytes, "attributes",
                              rpc->arena, out, nout, err, errlen);
}

/* Decodes the Find parameters shared by the three Find requests (k, split_filter, params,
 * min_seq) into fp, and retrieve_vectors into *vectors; sets rc. The request types differ,
 * hence a macro. */
#define FIND_PARAMS(rpc, req, fp, vectors, rc)                                                     \
    do {                                                                                           \
        hdb_kv *kv_;                                                                               \
        HDB_KV_VIEW((rpc)->arena, (req)->split_filter, (req)->n_split_filter, kv_);                \
        *(vectors) = (req)->retrieve_vectors;                                                      \
        want_vectors((fp), (req)->retrieve_vectors);                                               \
        (rc) = find_params_in((rpc), (req)->k, kv_, (req)->n_split_filter, (req)->params, (fp),   \
                              err, errlen);                                                        \
        if ((rc) == HDB_OK) (rc) = where_in((rpc), (req)->filter, (fp), err, errlen);              \
        if ((rc) == HDB_OK) MIN_SEQ_VIEW((rpc)->arena, (req)->min_seq, (req)->n_min_seq, (fp));    \
    } while (0)

static int where_in(hdb_rpc *rpc, const Hilbert__V1__Filter *f, hdb_spaces_find_params *fp,
                    char *err, size_t errlen) {
    hdb_filter *where;
    int rc = hdb_codec_filter_in(f, rpc->config->max_value_bytes, "filter", rpc->arena, &where,
                                 err, errlen);
    fp->where = where;
    return rc;
}

static void want_vectors(hdb_spaces_find_params *fp, bool yes) {
    fp->vectors = yes;
}

/* Copies a map<string, uint64> min_seq field into fp. */
#define MIN_SEQ_VIEW(arena, entries, n, fp)                                                        \
    do {                                                                                           \
        hdb_space_seq *ms_ = hdb_arena_alloc((arena), ((n) ? (n) : 1) * sizeof(hdb_space_seq));    \
        for (size_t i_ = 0; i_ < (n); i_++)                                                        \
            ms_[i_] = (hdb_space_seq){(entries)[i_]->key, (entries)[i_]->value};                   \
        (fp)->min_seq = ms_;                                                                       \
        (fp)->nmin_seq = (n);                                                                      \
    } while (0)

static int find_params_in(hdb_rpc *rpc, int32_t k, const hdb_kv *kv, size_t nkv,
                          const Hilbert__V1__SearchParams *params, hdb_spaces_find_params *fp,
                          char *err, size_t errlen) {
    hdb_attr *filter;
    fp->k = k;
    fp->opts = (hdb_search_opts){params ? params->ef_search : 0, params ? params->nprobe : 0};
    int rc = hdb_codec_attrs_in(kv, nkv, rpc->config->max_attributes,
                                rpc->config->max_value_bytes, "split_filter", rpc->arena, &filter,
                                &fp->nfilter, err, errlen);
    fp->filter = filter;
    return rc;
}

/* ---------------------------------------------------------------- encoding */

static Hilbert__V1__SpaceWrite **writes_out(hdb_arena *a, const hdb_space_vec *v, size_t n) {
    Hilbert__V1__SpaceWrite **out = hdb_arena_alloc(a, (n ? n : 1) * sizeof *out);
    for (size_t i = 0; i < n; i++) {
        Hilbert__V1__SpaceWrite *w = hdb_arena_alloc(a, sizeof *w);
        hilbert__v1__space_write__init(w);
        w->model_space = (char *)v[i].space;
        w->seq = v[i].seq;
        if (v[i].vec) {
            Hilbert__V1__DenseVector *d = hdb_arena_alloc(a, sizeof *d);
            hilbert__v1__dense_vector__init(d);
            d->values = (float *)v[i].vec;
            d->n_values = v[i].dim;
            w->vector = d;
        }
        out[i] = w;
    }
    return out;
}

static ProtobufCMessage *find_out(hdb_arena *a, const hdb_space_hits *h, size_t n, bool vectors) {
    Hilbert__V1__FindSimilarResponse *r = hdb_arena_alloc(a, sizeof *r);
    hilbert__v1__find_similar_response__init(r);
    r->results = hdb_arena_alloc(a, (n ? n : 1) * sizeof *r->results);
    r->n_results = n;
    for (size_t i = 0; i < n; i++) {
        Hilbert__V1__SpaceHits *sh = hdb_arena_alloc(a, sizeof *sh);
        hilbert__v1__space_hits__init(sh);
        sh->model_space = (char *)h[i].space;
        sh->found = h[i].found;
        if (h[i].found) sh->hits = hdb_rpc_hits_out(&h[i].hits, vectors, a, &sh->n_hits);
        r->results[i] = sh;
    }
    return &r->base;
}

/* ---------------------------------------------------------------- add, remove */

static int add(hdb_rpc *rpc, const char *id, const hdb_model_input *in, char *const *names,
               size_t nnames, hdb_kv *kv, size_t nkv, bool return_vectors,
               ProtobufCMessage **resp, char *err, size_t errlen) {
    hdb_spaces_call c = hdb_rpc_spaces_call(rpc);
    hdb_attr *attrs;
    uint32_t nattrs;
    hdb_space_vec *v;
    size_t n;
    int rc = hdb_spaces_check_id(rpc->config, id, err, errlen);
    if (rc == HDB_OK) rc = attrs_in(rpc, kv, nkv, &attrs, &nattrs, err, errlen);
    if (rc == HDB_OK)
        rc = hdb_spaces_add(&c, id, in, names, nnames, attrs, nattrs, return_vectors, &v, &n, err,
                            errlen);
    if (rc != HDB_OK) return rc;
    Hilbert__V1__AddResponse *r = hdb_arena_alloc(rpc->arena, sizeof *r);
    hilbert__v1__add_response__init(r);
    r->results = writes_out(rpc->arena, v, n);
    r->n_results = n;
    *resp = &r->base;
    return HDB_OK;
}

static int add_image(hdb_rpc *rpc, const ProtobufCMessage *m, ProtobufCMessage **resp, char *err,
                     size_t errlen) {
    const Hilbert__V1__AddImageRequest *req = (const void *)m;
    hdb_model_input in = image_input(req->image);
    hdb_kv *kv;
    HDB_KV_VIEW(rpc->arena, req->attributes, req->n_attributes, kv);
    return add(rpc, req->id, &in, req->model_spaces, req->n_model_spaces, kv, req->n_attributes,
               req->return_vectors, resp, err, errlen);
}

static int add_tensor(hdb_rpc *rpc, const ProtobufCMessage *m, ProtobufCMessage **resp,
                      char *err, size_t errlen) {
    const Hilbert__V1__AddTensorRequest *req = (const void *)m;
    hdb_model_input in;
    int rc = tensor_input(req->tensor, &in, err, errlen);
    if (rc != HDB_OK) return rc;
    hdb_kv *kv;
    HDB_KV_VIEW(rpc->arena, req->attributes, req->n_attributes, kv);
    return add(rpc, req->id, &in, req->model_spaces, req->n_model_spaces, kv, req->n_attributes,
               req->return_vectors, resp, err, errlen);
}

static int remove_image(hdb_rpc *rpc, const ProtobufCMessage *m, ProtobufCMessage **resp,
                        char *err, size_t errlen) {
    const Hilbert__V1__RemoveImageRequest *req = (const void *)m;
    hdb_spaces_call c = hdb_rpc_spaces_call(rpc);
    hdb_space_vec *v;
    size_t n;
    int rc = hdb_spaces_remove(&c, req->id, req->model_spaces, req->n_model_spaces, &v, &n, err,
                               errlen);
    if (rc != HDB_OK) return rc;
    Hilbert__V1__RemoveImageResponse *r = hdb_arena_alloc(rpc->arena, sizeof *r);
    hilbert__v1__remove_image_response__init(r);
    r->results = writes_out(rpc->arena, v, n);
    r->n_results = n;
    *resp = &r->base;
    return HDB_OK;
}

/* ---------------------------------------------------------------- find */

static int find_by_input(hdb_rpc *rpc, const hdb_model_input *in, char *const *names,
                         size_t nnames, const hdb_spaces_find_params *fp, bool vectors,
                         ProtobufCMessage **resp, char *err, size_t errlen) {
    hdb_spaces_call c = hdb_rpc_spaces_call(rpc);
    hdb_space_hits *h;
    size_t n;
    int rc = hdb_spaces_find(&c, in, names, nnames, fp, &h, &n, err, errlen);
    if (rc == HDB_OK) *resp = find_out(rpc->arena, h, n, vectors);
    return rc;
}

static int find_image(hdb_rpc *rpc, const ProtobufCMessage *m, ProtobufCMessage **resp,
                      char *err, size_t errlen) {
    const Hilbert__V1__FindSimilarImageRequest *req = (const void *)m;
    hdb_spaces_find_params fp = {0};
    bool vectors;
    int rc;
    FIND_PARAMS(rpc, req, &fp, &vectors, rc);
    if (rc != HDB_OK) return rc;
    hdb_model_input in = image_input(req->image);
    return find_by_input(rpc, &in, req->model_spaces, req->n_model_spaces, &fp, vectors, resp,
                         err, errlen);
}

static int find_tensor(hdb_rpc *rpc, const ProtobufCMessage *m, ProtobufCMessage **resp,
                       char *err, size_t errlen) {
    const Hilbert__V1__FindSimilarTensorRequest *req = (const void *)m;
    hdb_spaces_find_params fp = {0};
    bool vectors;
    int rc;
    FIND_PARAMS(rpc, req, &fp, &vectors, rc);
    if (rc != HDB_OK) return rc;
    hdb_model_input in;
    if ((rc = tensor_input(req->tensor, &in, err, errlen)) != HDB_OK) return rc;
    return find_by_input(rpc, &in, req->model_spaces, req->n_model_spaces, &fp, vectors, resp,
                         err, errlen);
}

static int find_by_id(hdb_rpc *rpc, const ProtobufCMessage *m, ProtobufCMessage **resp,
                      char *err, size_t errlen) {
    const Hilbert__V1__FindSimilarByIdRequest *req = (const void *)m;
    int rc = hdb_spaces_check_id(rpc->config, req->id, err, errlen);
    if (rc != HDB_OK) return rc;
    hdb_spaces_find_params fp = {0};
    bool vectors;
    FIND_PARAMS(rpc, req, &fp, &vectors, rc);
    if (rc != HDB_OK) return rc;
    hdb_spaces_call c = hdb_rpc_spaces_call(rpc);
    hdb_space_hits *h;
    size_t n;
    rc = hdb_spaces_find_by_id(&c, req->id, req->model_spaces, req->n_model_spaces, &fp, &h, &n,
                               err, errlen);
    if (rc == HDB_OK) *resp = find_out(rpc->arena, h, n, vectors);
    return rc;
}

/* ---------------------------------------------------------------- embed */

static int embed(hdb_rpc *rpc, const ProtobufCMessage *m, ProtobufCMessage **resp, char *err,
                 size_t errlen) {
    const Hilbert__V1__EmbedRequest *req = (const void *)m;
    hdb_arena *a = rpc->arena;
    hdb_model_input in;
    int rc = HDB_OK;
    if (req->input_case == HILBERT__V1__EMBED_REQUEST__INPUT_IMAGE)
        in = image_input(req->image);
    else if (req->input_case == HILBERT__V1__EMBED_REQUEST__INPUT_TENSOR)
        rc = tensor_input(req->tensor, &in, err, errlen);
    else
        return hdb_errf(err, errlen, HDB_EINVAL, "input: an image or a tensor is required");
    if (rc != HDB_OK) return rc;
    hdb_spaces_call c = hdb_rpc_spaces_call(rpc);
    hdb_space_vec *v;
    size_t n;
    if ((rc = hdb_spaces_embed(&c, &in, req->model_spaces, req->n_model_spaces, &v, &n, err,
                               errlen)) != HDB_OK)
        return rc;
    Hilbert__V1__EmbedResponse *r = hdb_arena_alloc(a, sizeof *r);
    hilbert__v1__embed_response__init(r);
    r->vectors = hdb_arena_alloc(a, (n ? n : 1) * sizeof *r->vectors);
    r->n_vectors = n;
    for (size_t i = 0; i < n; i++) {
        Hilbert__V1__SpaceVector *sv = hdb_arena_alloc(a, sizeof *sv);
        hilbert__v1__space_vector__init(sv);
        sv->model_space = (char *)v[i].space;
        Hilbert__V1__DenseVector *d = hdb_arena_alloc(a, sizeof *d);
        hilbert__v1__dense_vector__init(d);
        d->values = (float *)v[i].vec;
        d->n_values = v[i].dim;
        sv->vector = d;
        r->vectors[i] = sv;
    }
    *resp = &r->base;
    return HDB_OK;
}

#define SVC "hilbert.v1.ModelSpaces"

static const hdb_rpc_method methods[] = {
    /* Adding and removing write; finding and embedding only read. */
    {SVC, "AddImage", &hilbert__v1__add_image_request__descriptor, add_image, HDB_ROLE_WRITE,
     HDB_LANE_MODEL},
    {SVC, "AddTensor", &hilbert__v1__add_tensor_request__descriptor, add_tensor, HDB_ROLE_WRITE,
     HDB_LANE_MODEL},
    {SVC, "FindSimilarImage", &hilbert__v1__find_similar_image_request__descriptor, find_image,
     HDB_ROLE_READ, HDB_LANE_MODEL},
    {SVC, "FindSimilarTensor", &hilbert__v1__find_similar_tensor_request__descriptor, find_tensor,
     HDB_ROLE_READ, HDB_LANE_MODEL},
    {SVC, "FindSimilarById", &hilbert__v1__find_similar_by_id_request__descriptor, find_by_id,
     HDB_ROLE_READ, HDB_LANE_MODEL},
    {SVC, "RemoveImage", &hilbert__v1__remove_image_request__descriptor, remove_image,
     HDB_ROLE_WRITE, HDB_LANE_MODEL},
    {SVC, "Embed", &hilbert__v1__embed_request__descriptor, embed, HDB_ROLE_READ,
     HDB_LANE_MODEL},
};

const hdb_rpc_method *hdb_rpc_models_methods(size_t *n) {
    *n = sizeof methods / sizeof methods[0];
    return methods;
}
