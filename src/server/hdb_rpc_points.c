/*
 * hdb_rpc_points.c - the Points service: decode points and ids, call ingest, encode results.
 */
#include "hdb_rpc_points.h"

#include "hdb_arena.h"
#include "hdb_catalog.h"
#include "hdb_codec.h"
#include "hdb_config.h"
#include "hdb_err.h"
#include "hdb_ingest.h"

#include <stdio.h>
#include <string.h>

static int lookup_source(hdb_rpc *rpc, const Hilbert__V1__DataSourceRef *ref, hdb_source **out,
                         char *err, size_t errlen) {
    if (ref == NULL) return hdb_errf(err, errlen, HDB_EINVAL, "data_source: is required");
    return hdb_catalog_get_source(rpc->catalog, ref->name, ref->version, out, err, errlen);
}

static int upload(hdb_rpc *rpc, const ProtobufCMessage *m, ProtobufCMessage **resp, char *err,
                  size_t errlen) {
    const Hilbert__V1__UploadRequest *req = (const void *)m;
    const hdb_config *cfg = rpc->config;
    hdb_source *src;
    int rc = lookup_source(rpc, req->data_source, &src, err, errlen);
    if (rc != HDB_OK) return rc;
    if (req->n_points > cfg->max_points_per_upload) {
        rc = hdb_errf(err, errlen, HDB_ELIMIT,
                      "points: %zu points exceed limits.max_points_per_upload (%u); split the "
                      "batch",
                      req->n_points, cfg->max_points_per_upload);
        goto done;
    }
    hdb_point *points = hdb_arena_alloc(rpc->arena, (req->n_points ? req->n_points : 1) *
                                                        sizeof *points);
    for (size_t i = 0; i < req->n_points; i++) {
        rc = hdb_codec_point_in(req->points[i], cfg->max_attributes, cfg->max_value_bytes, i,
                                rpc->arena, &points[i], err, errlen);
        if (rc != HDB_OK) goto done;
    }
    uint64_t first, last;
    rc = hdb_ingest_upload(rpc->catalog, src, cfg, rpc->deadline_ns, points, req->n_points,
                           rpc->arena, &first, &last, err, errlen);
    if (rc != HDB_OK) goto done;
    Hilbert__V1__UploadResponse *r = hdb_arena_alloc(rpc->arena, sizeof *r);
    hilbert__v1__upload_response__init(r);
    r->first_seq = first;
    r->last_seq = last;
    *resp = &r->base;
done:
    hdb_source_unref(src);
    return rc;
}

/* Refuses a Get whose reply (n points with their vectors and permanent attributes, at their
 * smallest) could not be sent, or whose records would take more than
 * limits.max_call_memory_bytes, before reading anything. */
static int get_cost_check(const hdb_config *cfg, const hdb_schema *s, size_t n, char *err,
                          size_t errlen) {
    uint64_t point = 2 + 2 + 2 + 3 + (s->sparse ? 0 : (uint64_t)s->dim * 4), mem = 0;
    for (size_t i = 0; i < s->nperm; i++) {
        uint64_t name = strlen(s->perm[i].name);
        point += 2 + 2 + name + 2 + 2;
        mem += sizeof(hdb_attr) + 112 + 2 * name;
    }
    uint64_t reply = (uint64_t)n * point;
    mem = (uint64_t)n * (sizeof(hdb_row) + 256 + mem + 3 * point);
    if (reply > cfg->max_send_message_bytes)
        return hdb_errf(err, errlen, HDB_ELIMIT,
                        "response: an estimated %llu bytes (%zu points) exceed "
                        "server.max_send_message_bytes (%zu); ask for fewer ids per request",
                        (unsigned long long)reply, n, cfg->max_send_message_bytes);
    if (mem > cfg->max_call_memory_bytes)
        return hdb_errf(err, errlen, HDB_ELIMIT,
                        "request: an estimated %llu bytes of working memory (%zu points) exceed "
                        "limits.max_call_memory_bytes (%zu); ask for fewer ids per request",
                        (unsigned long long)mem, n, cfg->max_call_memory_bytes);
    return HDB_OK;
}

static int get(hdb_rpc *rpc, const ProtobufCMessage *m, ProtobufCMessage **resp, char *err,
               size_t errlen) {
    const Hilbert__V1__GetPointsRequest *req = (const void *)m;
    const hdb_config *cfg = rpc->config;
    hdb_arena *a = rpc->arena;
    hdb_source *src;
    int rc = lookup_source(rpc, req->data_source, &src, err, errlen);
    if (rc != HDB_OK) return rc;
    size_t n = req->n_ids;
    hdb_attr **ids = hdb_arena_alloc(a, (n ? n : 1) * sizeof *ids);
    uint32_t *nids = hdb_arena_alloc(a, (n ? n : 1) * sizeof *nids);
    hdb_row *res = hdb_arena_alloc(a, (n ? n : 1) * sizeof *res);
    if (n > cfg->max_points_per_upload) {
        rc = hdb_errf(err, errlen, HDB_ELIMIT,
                      "ids: %zu ids exceed limits.max_points_per_upload (%u)", n,
                      cfg->max_points_per_upload);
        goto done;
    }
    if ((rc = get_cost_check(cfg, hdb_source_schema(src), n, err, errlen)) != HDB_OK) goto done;
    for (size_t i = 0; i < n; i++) {
        char what[64];
        snprintf(what, sizeof what, "ids[%zu].id_attributes", i);
        const Hilbert__V1__PointId *pid = req->ids[i];
        hdb_kv *kv;
        HDB_KV_VIEW(a, pid->id_attributes, pid->n_id_attributes, kv);
        rc = hdb_codec_attrs_in(kv, pid->n_id_attributes, cfg->max_attributes,
                                cfg->max_value_bytes, what, a, &ids[i], &nids[i], err, errlen);
        if (rc != HDB_OK) goto done;
    }
    rc = hdb_ingest_get(src, cfg, ids, nids, n, a, res, err, errlen);
    if (rc != HDB_OK) goto done;

    Hilbert__V1__GetPointsResponse *r = hdb_arena_alloc(a, sizeof *r);
    hilbert__v1__get_points_response__init(r);
    r->n_results = n;
    r->results = hdb_arena_alloc(a, (n ? n : 1) * sizeof *r->results);
    for (size_t i = 0; i < n; i++) {
        Hilbert__V1__GetPointsResult *g = hdb_arena_alloc(a, sizeof *g);
        hilbert__v1__get_points_result__init(g);
        g->found = res[i].found;
        if (res[i].found) {
            const hdb_point *p = &res[i].rec.point;
            Hilbert__V1__DataPoint *dp = hdb_arena_alloc(a, sizeof *dp);
            hilbert__v1__data_point__init(dp);
            dp->vector = hdb_codec_point_vector_out(p, a);
            HDB_ATTRS_OUT(a, p->attrs, p->nattrs, Hilbert__V1__DataPoint__AttributesEntry,
                          hilbert__v1__data_point__attributes_entry__init, dp->attributes);
            dp->n_attributes = p->nattrs;
            g->point = dp;
            g->seq = res[i].rec.seq;
        }
        r->results[i] = g;
    }
    *resp = &r->base;
done:
    hdb_source_unref(src);
    return rc;
}

#define SVC "hilbert.v1.Points"

static const hdb_rpc_method methods[] = {
    {SVC, "Upload", &hilbert__v1__upload_request__descriptor, upload, HDB_ROLE_WRITE,
     HDB_LANE_WRITE},
    {SVC, "Get", &hilbert__v1__get_points_request__descriptor, get, HDB_ROLE_READ},
};

const hdb_rpc_method *hdb_rpc_points_methods(size_t *n) {
    *n = sizeof methods / sizeof methods[0];
    return methods;
}
