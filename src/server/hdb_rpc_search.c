/*
 * hdb_rpc_search.c - the Search service: decode queries and the split filter, run the query,
 * encode hits with their attributes (and vectors on request).
 */
#include "hdb_rpc_search.h"

#include "hdb_arena.h"
#include "hdb_catalog.h"
#include "hdb_codec.h"
#include "hdb_config.h"
#include "hdb_err.h"
#include "hdb_query.h"

Hilbert__V1__SearchHit **hdb_rpc_hits_out(const hdb_query_result *r, bool vectors,
                                          hdb_arena *a, size_t *n) {
    Hilbert__V1__SearchHit **hits = hdb_arena_alloc(a, (r->n ? r->n : 1) * sizeof *hits);
    for (size_t j = 0; j < r->n; j++) {
        const hdb_query_hit *h = &r->hits[j];
        Hilbert__V1__SearchHit *hit = hdb_arena_alloc(a, sizeof *hit);
        hilbert__v1__search_hit__init(hit);
        hit->distance = h->distance;
        HDB_ATTRS_OUT(a, h->rec.point.attrs, h->rec.point.nattrs,
                      Hilbert__V1__SearchHit__AttributesEntry,
                      hilbert__v1__search_hit__attributes_entry__init, hit->attributes);
        hit->n_attributes = h->rec.point.nattrs;
        if (vectors) hit->vector = hdb_codec_point_vector_out(&h->rec.point, a);
        hits[j] = hit;
    }
    *n = r->n;
    return hits;
}

/* A search parked until its min_seq is applied (hdb_server.h, parking). */
typedef struct {
    hdb_ixent *ix; /* referenced until park_release */
    uint64_t seq;
} park_arg;

static bool park_ready(void *arg) {
    const park_arg *pa = arg;
    return hdb_query_min_seq_reached(pa->ix, pa->seq);
}

static void park_release(void *arg) {
    park_arg *pa = arg;
    hdb_ixent_unref(pa->ix);
}

const hdb_stop *hdb_rpc_stop(hdb_rpc *rpc) {
    if (rpc->stop.deadline_ns == 0) rpc->stop.deadline_ns = rpc->deadline_ns;
    return &rpc->stop;
}

static int search(hdb_rpc *rpc, const ProtobufCMessage *m, ProtobufCMessage **resp, char *err,
                  size_t errlen) {
    const Hilbert__V1__SearchRequest *req = (const void *)m;
    const hdb_config *cfg = rpc->config;
    hdb_arena *a = rpc->arena;
    if (req->index == NULL) return hdb_errf(err, errlen, HDB_EINVAL, "index: is required");
    hdb_ixent *ix;
    int rc = hdb_catalog_get_index(rpc->catalog, req->index->name, req->index->version, &ix, err,
                                   errlen);
    if (rc != HDB_OK) return rc;
    hdb_kv *kv;
    hdb_attr *filter;
    uint32_t nfilter;

    size_t nq = req->n_query_vectors;
    hdb_query_vec *qv = hdb_arena_calloc(a, nq ? nq : 1, sizeof *qv);
    for (size_t i = 0; i < nq; i++) {
        hdb_point p = {0};
        const Hilbert__V1__Vector *v = req->query_vectors[i];
        if (v == NULL || v->kind_case == HILBERT__V1__VECTOR__KIND__NOT_SET) continue;
        if ((rc = hdb_codec_vector_in(v, "query_vectors", i, &p, err, errlen)) != HDB_OK) goto done;
        qv[i] = (hdb_query_vec){.present = true, .sparse = p.sparse, .vec = p.vec, .dim = p.dim,
                                .sp = p.sp};
    }
    HDB_KV_VIEW(a, req->split_filter, req->n_split_filter, kv);
    rc = hdb_codec_attrs_in(kv, req->n_split_filter, cfg->max_attributes, cfg->max_value_bytes,
                            "split_filter", a, &filter, &nfilter, err, errlen);
    if (rc != HDB_OK) goto done;
    hdb_filter *where;
    rc = hdb_codec_filter_in(req->filter, cfg->max_value_bytes, "filter", a, &where, err, errlen);
    if (rc != HDB_OK) goto done;

    hdb_query_result *results = hdb_arena_alloc(a, (nq ? nq : 1) * sizeof *results);
    hdb_query_params qp = {.k = req->k,
                           .min_seq = req->min_seq,
                           .opts = {req->params ? req->params->ef_search : 0,
                                    req->params ? req->params->nprobe : 0},
                           .filter = filter,
                           .nfilter = nfilter,
                           .where = where,
                           .explain = req->explain,
                           .deadline_ns = rpc->deadline_ns,
                           .stop = hdb_rpc_stop(rpc),
                           .vectors = req->retrieve_vectors,
                           .no_wait = rpc->may_park,
                           .wait_from_ns = rpc->first_ns};
    uint64_t applied;
    rc = hdb_query_search(ix, cfg, qv, nq, &qp, a, results, &applied, err, errlen);
    if (rc == HDB_EAGAIN) {
        /* min_seq is not applied yet: park the call, keeping the index referenced. */
        park_arg *pa = hdb_arena_alloc(a, sizeof *pa);
        *pa = (park_arg){.ix = ix, .seq = req->min_seq};
        rpc->park = (hdb_park){.ready = park_ready,
                               .release = park_release,
                               .arg = pa,
                               .until_ns = hdb_query_wait_until(cfg, rpc->first_ns,
                                                                rpc->deadline_ns)};
        return rc;
    }
    if (rc != HDB_OK) goto done;

    Hilbert__V1__SearchResponse *r = hdb_arena_alloc(a, sizeof *r);
    hilbert__v1__search_response__init(r);
    r->applied_seq = applied;
    r->n_results = nq;
    r->results = hdb_arena_alloc(a, nq * sizeof *r->results);
    if (req->explain) {
        r->n_plan = nq;
        r->plan = hdb_arena_alloc(a, nq * sizeof *r->plan);
        for (size_t q = 0; q < nq; q++) r->plan[q] = (char *)(results[q].plan ? results[q].plan : "");
    }
    for (size_t q = 0; q < nq; q++) {
        if (q % 256 == 0 && (rc = hdb_stop_check(qp.stop, "search", err, errlen)) != HDB_OK)
            goto done;
        Hilbert__V1__SearchResult *sr = hdb_arena_alloc(a, sizeof *sr);
        hilbert__v1__search_result__init(sr);
        sr->hits = hdb_rpc_hits_out(&results[q], req->retrieve_vectors, a, &sr->n_hits);
        r->results[q] = sr;
    }
    *resp = &r->base;
done:
    hdb_ixent_unref(ix);
    return rc;
}

static const hdb_rpc_method methods[] = {
    {"hilbert.v1.Search", "Search", &hilbert__v1__search_request__descriptor, search,
     HDB_ROLE_READ, HDB_LANE_WORK},
};

const hdb_rpc_method *hdb_rpc_search_methods(size_t *n) {
    *n = sizeof methods / sizeof methods[0];
    return methods;
}
