/*
 * hdb_rpc_euclides.c - EuclidesDB's Similar service, mapped onto model spaces.
 *
 * EuclidesDB names "models"; here each is a model space (none named: every space). Its int32
 * image ids are the items' ids as decimal strings, so an item added through either API is the
 * same item; its image_metadata is kept as the bytes payload attribute "image_metadata". A
 * find answers, per model, the ids and distances of the nearest items whose ids are int32
 * numbers (items added through ModelSpaces under other ids are passed over). AddImage answers
 * each model's features; predictions stay empty, as a model space keeps one output. Shutdown
 * needs an admin API key: a server without keys refuses it, since anyone could send it.
 */
#include "hdb_rpc_euclides.h"

#include "hdb_arena.h"
#include "hdb_config.h"
#include "hdb_err.h"
#include "hdb_log.h"
#include "hdb_rpc_models.h"
#include "hdb_spaces.h"
#include "euclidesproto/euclides.pb-c.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define META "image_metadata"

static const char *id_of(hdb_arena *a, int32_t id) {
    char *s = hdb_arena_alloc(a, 16);
    snprintf(s, 16, "%d", (int)id);
    return s;
}

/* The item id of a hit as an int32, when it is one. */
static bool hit_id(const hdb_query_hit *h, int32_t *out) {
    for (uint32_t i = 0; i < h->rec.point.nattrs; i++) {
        const hdb_attr *at = &h->rec.point.attrs[i];
        if (strcmp(at->name, "id") != 0 || at->value.type != HDB_ATTR_STRING) continue;
        char buf[16];
        size_t n = at->value.u.s.n;
        if (n == 0 || n >= sizeof buf) return false;
        memcpy(buf, at->value.u.s.p, n);
        buf[n] = '\0';
        char *end;
        errno = 0;
        long v = strtol(buf, &end, 10);
        if (errno || *end || v < INT32_MIN || v > INT32_MAX) return false;
        char again[16];
        snprintf(again, sizeof again, "%ld", v);
        if (strcmp(buf, again) != 0) return false; /* "007", "+7": not ids of ours */
        *out = (int32_t)v;
        return true;
    }
    return false;
}

static int top_k(int32_t k, char *err, size_t errlen) {
    if (k <= 0) return hdb_errf(err, errlen, HDB_EINVAL, "top_k: must be >= 1, got %d", (int)k);
    return HDB_OK;
}

static ProtobufCMessage *results_out(hdb_arena *a, const hdb_space_hits *h, size_t n) {
    Euclidesproto__FindSimilarImageReply *r = hdb_arena_alloc(a, sizeof *r);
    euclidesproto__find_similar_image_reply__init(r);
    r->results = hdb_arena_alloc(a, (n ? n : 1) * sizeof *r->results);
    r->n_results = n;
    for (size_t i = 0; i < n; i++) {
        Euclidesproto__SearchResults *sr = hdb_arena_alloc(a, sizeof *sr);
        euclidesproto__search_results__init(sr);
        sr->model = (char *)h[i].space;
        size_t m = h[i].found ? h[i].hits.n : 0;
        sr->top_k_ids = hdb_arena_alloc(a, (m ? m : 1) * sizeof *sr->top_k_ids);
        sr->distances = hdb_arena_alloc(a, (m ? m : 1) * sizeof *sr->distances);
        for (size_t j = 0; j < m; j++) {
            int32_t id;
            if (!hit_id(&h[i].hits.hits[j], &id)) continue;
            sr->top_k_ids[sr->n_top_k_ids++] = id;
            sr->distances[sr->n_distances++] = h[i].hits.hits[j].distance;
        }
        r->results[i] = sr;
    }
    return &r->base;
}

static int add_image(hdb_rpc *rpc, const ProtobufCMessage *m, ProtobufCMessage **resp, char *err,
                     size_t errlen) {
    const Euclidesproto__AddImageRequest *req = (const void *)m;
    hdb_spaces_call c = hdb_rpc_spaces_call(rpc);
    hdb_model_input in = {.is_image = true, .image = req->image_data.data,
                          .image_len = req->image_data.len};
    hdb_attr meta = {.name = META,
                     .value = {.type = HDB_ATTR_BYTES,
                               .u.s = {(const char *)req->image_metadata.data,
                                       req->image_metadata.len}}};
    if (req->image_metadata.len > rpc->config->max_value_bytes)
        return hdb_errf(err, errlen, HDB_ELIMIT,
                        "image_metadata: %zu bytes exceed limits.max_value_bytes (%u)",
                        req->image_metadata.len, rpc->config->max_value_bytes);
    hdb_space_vec *v;
    size_t n;
    int rc = hdb_spaces_add(&c, id_of(rpc->arena, req->image_id), &in, req->models,
                            req->n_models, req->image_metadata.len ? &meta : NULL,
                            req->image_metadata.len ? 1 : 0, true, &v, &n, err, errlen);
    if (rc != HDB_OK) return rc;
    Euclidesproto__AddImageReply *r = hdb_arena_alloc(rpc->arena, sizeof *r);
    euclidesproto__add_image_reply__init(r);
    r->vectors = hdb_arena_alloc(rpc->arena, (n ? n : 1) * sizeof *r->vectors);
    r->n_vectors = n;
    for (size_t i = 0; i < n; i++) {
        Euclidesproto__ItemVectors *iv = hdb_arena_alloc(rpc->arena, sizeof *iv);
        euclidesproto__item_vectors__init(iv);
        iv->model = (char *)v[i].space;
        iv->features = (float *)v[i].vec;
        iv->n_features = v[i].vec ? v[i].dim : 0;
        r->vectors[i] = iv;
    }
    *resp = &r->base;
    return HDB_OK;
}

static int find_image(hdb_rpc *rpc, const ProtobufCMessage *m, ProtobufCMessage **resp,
                      char *err, size_t errlen) {
    const Euclidesproto__FindSimilarImageRequest *req = (const void *)m;
    int rc = top_k(req->top_k, err, errlen);
    if (rc != HDB_OK) return rc;
    hdb_spaces_call c = hdb_rpc_spaces_call(rpc);
    hdb_model_input in = {.is_image = true, .image = req->image_data.data,
                          .image_len = req->image_data.len};
    hdb_spaces_find_params fp = {.k = req->top_k};
    hdb_space_hits *h;
    size_t n;
    rc = hdb_spaces_find(&c, &in, req->models, req->n_models, &fp, &h, &n, err, errlen);
    if (rc == HDB_OK) *resp = results_out(rpc->arena, h, n);
    return rc;
}

static int find_by_id(hdb_rpc *rpc, const ProtobufCMessage *m, ProtobufCMessage **resp,
                      char *err, size_t errlen) {
    const Euclidesproto__FindSimilarImageByIdRequest *req = (const void *)m;
    int rc = top_k(req->top_k, err, errlen);
    if (rc != HDB_OK) return rc;
    hdb_spaces_call c = hdb_rpc_spaces_call(rpc);
    hdb_spaces_find_params fp = {.k = req->top_k};
    hdb_space_hits *h;
    size_t n;
    rc = hdb_spaces_find_by_id(&c, id_of(rpc->arena, req->image_id), req->models,
                               req->n_models, &fp, &h, &n, err, errlen);
    if (rc != HDB_OK) return rc;
    bool anywhere = false;
    for (size_t i = 0; i < n; i++) anywhere |= h[i].found;
    if (!anywhere)
        return hdb_errf(err, errlen, HDB_ENOTFOUND, "image_id: %d is in none of the models",
                        (int)req->image_id);
    *resp = results_out(rpc->arena, h, n);
    return HDB_OK;
}

static int remove_image(hdb_rpc *rpc, const ProtobufCMessage *m, ProtobufCMessage **resp,
                        char *err, size_t errlen) {
    const Euclidesproto__RemoveImageRequest *req = (const void *)m;
    hdb_spaces_call c = hdb_rpc_spaces_call(rpc);
    hdb_space_vec *v;
    size_t n;
    int rc = hdb_spaces_remove(&c, id_of(rpc->arena, req->image_id), NULL, 0, &v, &n, err,
                               errlen);
    if (rc != HDB_OK) return rc;
    Euclidesproto__RemoveImageReply *r = hdb_arena_alloc(rpc->arena, sizeof *r);
    euclidesproto__remove_image_reply__init(r);
    r->image_id = req->image_id;
    *resp = &r->base;
    return HDB_OK;
}

static int shutdown_server(hdb_rpc *rpc, const ProtobufCMessage *m, ProtobufCMessage **resp,
                           char *err, size_t errlen) {
    (void)m;
    /* The role check (admin) ran before; without keys it lets everyone in, so refuse. */
    if (rpc->config->n_api_keys == 0)
        return hdb_errf(err, errlen, HDB_EPERM,
                        "Shutdown needs an admin API key, and this server has no keys "
                        "(auth.keys); stop it with SIGTERM instead");
    HDB_WARN("rpc", "euclidesproto.Similar/Shutdown: shutting down on an admin's request");
    kill(getpid(), SIGTERM); /* main's handler starts the clean shutdown */
    Euclidesproto__ShutdownReply *r = hdb_arena_alloc(rpc->arena, sizeof *r);
    euclidesproto__shutdown_reply__init(r);
    r->shutdown = true;
    *resp = &r->base;
    return HDB_OK;
}

#define SVC "euclidesproto.Similar"

static const hdb_rpc_method methods[] = {
    {SVC, "AddImage", &euclidesproto__add_image_request__descriptor, add_image, HDB_ROLE_WRITE,
     HDB_LANE_MODEL},
    {SVC, "FindSimilarImage", &euclidesproto__find_similar_image_request__descriptor, find_image,
     HDB_ROLE_READ, HDB_LANE_MODEL},
    {SVC, "FindSimilarImageById", &euclidesproto__find_similar_image_by_id_request__descriptor,
     find_by_id, HDB_ROLE_READ, HDB_LANE_MODEL},
    {SVC, "RemoveImage", &euclidesproto__remove_image_request__descriptor, remove_image,
     HDB_ROLE_WRITE, HDB_LANE_MODEL},
    {SVC, "Shutdown", &euclidesproto__shutdown_request__descriptor, shutdown_server,
     HDB_ROLE_ADMIN, HDB_LANE_CHEAP},
};

const hdb_rpc_method *hdb_rpc_euclides_methods(size_t *n) {
    *n = sizeof methods / sizeof methods[0];
    return methods;
}
