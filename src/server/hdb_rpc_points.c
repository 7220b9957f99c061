/*
 * hdb_rpc_points.c - the Points service: decode points and ids, call ingest, encode results.
 */
#include "hdb_rpc_points.h"

#include "hdb_applier.h"
#include "hdb_arena.h"
#include "hdb_catalog.h"
#include "hdb_codec.h"
#include "hdb_config.h"
#include "hdb_err.h"
#include "hdb_index.h"
#include "hdb_ingest.h"
#include "hdb_query.h"
#include "hdb_record.h"
#include "hdb_rpc_search.h"
#include "hdb_scan.h"

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

/* Decodes n PointIds into ids/nids (arena arrays of n). */
static int ids_in(hdb_rpc *rpc, Hilbert__V1__PointId *const *in, size_t n, hdb_attr **ids,
                  uint32_t *nids, char *err, size_t errlen) {
    const hdb_config *cfg = rpc->config;
    for (size_t i = 0; i < n; i++) {
        char what[64];
        snprintf(what, sizeof what, "ids[%zu].id_attributes", i);
        hdb_kv *kv;
        HDB_KV_VIEW(rpc->arena, in[i]->id_attributes, in[i]->n_id_attributes, kv);
        int rc = hdb_codec_attrs_in(kv, in[i]->n_id_attributes, cfg->max_attributes,
                                    cfg->max_value_bytes, what, rpc->arena, &ids[i], &nids[i],
                                    err, errlen);
        if (rc != HDB_OK) return rc;
    }
    return HDB_OK;
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

/* A row as a GetPointsResult, with the point's vector when vectors. */
static Hilbert__V1__GetPointsResult *row_out(const hdb_row *row, bool vectors, hdb_arena *a) {
    Hilbert__V1__GetPointsResult *g = hdb_arena_alloc(a, sizeof *g);
    hilbert__v1__get_points_result__init(g);
    g->found = row->found;
    if (row->found) {
        const hdb_point *p = &row->rec.point;
        Hilbert__V1__DataPoint *dp = hdb_arena_alloc(a, sizeof *dp);
        hilbert__v1__data_point__init(dp);
        if (vectors) dp->vector = hdb_codec_point_vector_out(p, a);
        HDB_ATTRS_OUT(a, p->attrs, p->nattrs, Hilbert__V1__DataPoint__AttributesEntry,
                      hilbert__v1__data_point__attributes_entry__init, dp->attributes);
        dp->n_attributes = p->nattrs;
        g->point = dp;
        g->seq = row->rec.seq;
    }
    return g;
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
    if ((rc = ids_in(rpc, req->ids, n, ids, nids, err, errlen)) != HDB_OK) goto done;
    rc = hdb_ingest_get(src, cfg, ids, nids, n, a, res, err, errlen);
    if (rc != HDB_OK) goto done;

    Hilbert__V1__GetPointsResponse *r = hdb_arena_alloc(a, sizeof *r);
    hilbert__v1__get_points_response__init(r);
    r->n_results = n;
    r->results = hdb_arena_alloc(a, (n ? n : 1) * sizeof *r->results);
    for (size_t i = 0; i < n; i++) r->results[i] = row_out(&res[i], true, a);
    *resp = &r->base;
done:
    hdb_source_unref(src);
    return rc;
}

/* Decodes and checks a request's filter against src (NULL when none was sent). */
static int where_in(hdb_rpc *rpc, hdb_source *src, const Hilbert__V1__Filter *f,
                    const hdb_filter **out, char *err, size_t errlen) {
    hdb_filter *where;
    int rc = hdb_codec_filter_in(f, rpc->config->max_value_bytes, "filter", rpc->arena, &where,
                                 err, errlen);
    if (rc == HDB_OK && where) rc = hdb_query_check_where(src, where, err, errlen);
    *out = where;
    return rc;
}

/* Count of an index's points (CountRequest.index): from its attribute indexes when they
 * decide the filter exactly, else over its data source's points. */
static int count_index(hdb_rpc *rpc, const Hilbert__V1__IndexRef *ref,
                       const Hilbert__V1__Filter *filter, uint64_t *n, uint64_t *seq,
                       bool *from_index, char *err, size_t errlen) {
    hdb_ixent *ix;
    int rc = hdb_catalog_get_index(rpc->catalog, ref->name, ref->version, &ix, err, errlen);
    if (rc != HDB_OK) return rc;
    hdb_source *src = hdb_ixent_source(ix);
    const hdb_filter *where;
    hdb_index *index;
    if ((rc = where_in(rpc, src, filter, &where, err, errlen)) == HDB_OK &&
        (rc = hdb_applier_index(hdb_ixent_applier(ix), &index, err, errlen)) == HDB_OK) {
        hdb_labelset *set = NULL;
        bool exact = false;
        if (where != NULL) hdb_index_select(index, where, &set, &exact);
        if (set != NULL && exact) {
            *seq = hdb_index_applied(index);
            *n = hdb_labelset_count(set);
            *from_index = true;
        } else {
            rc = hdb_scan_count(src, where, hdb_rpc_stop(rpc), n, seq, err, errlen);
        }
        hdb_labelset_free(set);
    }
    hdb_ixent_unref(ix);
    return rc;
}

static int count(hdb_rpc *rpc, const ProtobufCMessage *m, ProtobufCMessage **resp, char *err,
                 size_t errlen) {
    const Hilbert__V1__CountRequest *req = (const void *)m;
    uint64_t n = 0, seq = 0;
    bool from_index = false;
    int rc;
    if (req->index != NULL && req->data_source != NULL) {
        return hdb_errf(err, errlen, HDB_EINVAL,
                        "index: give data_source or index, not both");
    } else if (req->index != NULL) {
        rc = count_index(rpc, req->index, req->filter, &n, &seq, &from_index, err, errlen);
    } else {
        hdb_source *src;
        if ((rc = lookup_source(rpc, req->data_source, &src, err, errlen)) != HDB_OK) return rc;
        const hdb_filter *where;
        if ((rc = where_in(rpc, src, req->filter, &where, err, errlen)) == HDB_OK)
            rc = hdb_scan_count(src, where, hdb_rpc_stop(rpc), &n, &seq, err, errlen);
        hdb_source_unref(src);
    }
    if (rc == HDB_OK) {
        Hilbert__V1__CountResponse *r = hdb_arena_alloc(rpc->arena, sizeof *r);
        hilbert__v1__count_response__init(r);
        r->count = n;
        r->seq = seq;
        r->from_index = from_index;
        *resp = &r->base;
    }
    return rc;
}

/* A Scroll cursor: a version byte, the table's id (so that a cursor of another data source,
 * or of a data source dropped and created again, is refused) and the id key of the last point
 * the page looked at (the page goes on after it). Version 1 cursors held a pid (storage
 * order); they are refused like any foreign bytes. */
#define CURSOR_HEAD 9
#define CURSOR_VERSION 2

static int cursor_in(const ProtobufCBinaryData *c, hdb_source *src, const unsigned char **key,
                     size_t *klen, char *err, size_t errlen) {
    *key = NULL;
    *klen = 0;
    if (c->len == 0) return HDB_OK;
    if (c->len <= CURSOR_HEAD || c->data[0] != CURSOR_VERSION)
        return hdb_errf(err, errlen, HDB_EINVAL,
                        "cursor: not a cursor that Scroll returned (send the next_cursor of the "
                        "previous page as it came, or none to start)");
    if (hdb_get_be64(c->data + 1) != hdb_table_id(hdb_source_table(src)))
        return hdb_errf(err, errlen, HDB_EINVAL,
                        "cursor: it belongs to another data source than %s (or to a data source "
                        "of that name that was dropped since)",
                        hdb_source_label(src));
    *key = c->data + CURSOR_HEAD;
    *klen = c->len - CURSOR_HEAD;
    return HDB_OK;
}

static int scroll(hdb_rpc *rpc, const ProtobufCMessage *m, ProtobufCMessage **resp, char *err,
                  size_t errlen) {
    const Hilbert__V1__ScrollRequest *req = (const void *)m;
    const hdb_config *cfg = rpc->config;
    hdb_arena *a = rpc->arena;
    hdb_source *src;
    int rc = lookup_source(rpc, req->data_source, &src, err, errlen);
    if (rc != HDB_OK) return rc;
    const hdb_filter *where;
    const unsigned char *after = NULL, *next = NULL;
    size_t alen = 0, nlen = 0;
    size_t n = 0;
    hdb_row *rows = NULL;
    if (req->limit == 0 || req->limit > cfg->max_points_per_upload)
        rc = hdb_errf(err, errlen, HDB_EINVAL,
                      "limit: must be 1 .. limits.max_points_per_upload (%u), got %u",
                      cfg->max_points_per_upload, req->limit);
    if (rc == HDB_OK) rc = cursor_in(&req->cursor, src, &after, &alen, err, errlen);
    if (rc == HDB_OK) rc = where_in(rpc, src, req->filter, &where, err, errlen);
    if (rc == HDB_OK)
        rc = get_cost_check(cfg, hdb_source_schema(src), req->limit, err, errlen);
    if (rc == HDB_OK) {
        rows = hdb_arena_alloc(a, req->limit * sizeof *rows);
        rc = hdb_scan_page(src, where, after, alen, req->limit, cfg->max_scan_points,
                           hdb_rpc_stop(rpc), a, rows, &n, &next, &nlen, err, errlen);
    }
    if (rc == HDB_OK) {
        Hilbert__V1__ScrollResponse *r = hdb_arena_alloc(a, sizeof *r);
        hilbert__v1__scroll_response__init(r);
        r->points = hdb_arena_alloc(a, (n ? n : 1) * sizeof *r->points);
        for (size_t i = 0; i < n; i++)
            if (rows[i].found) r->points[r->n_points++] = row_out(&rows[i], req->with_vectors, a);
        if (nlen != 0) {
            unsigned char *c = hdb_arena_alloc(a, CURSOR_HEAD + nlen);
            c[0] = CURSOR_VERSION;
            hdb_put_be64(c + 1, hdb_table_id(hdb_source_table(src)));
            memcpy(c + CURSOR_HEAD, next, nlen);
            r->next_cursor = (ProtobufCBinaryData){CURSOR_HEAD + nlen, c};
        }
        *resp = &r->base;
    }
    hdb_source_unref(src);
    return rc;
}

/* SetPayload and DeletePayload: the ids, then the change; answers with the seqs. */
static int change_payload(hdb_rpc *rpc, const Hilbert__V1__DataSourceRef *ref,
                          Hilbert__V1__PointId *const *in, size_t n, hdb_payload_change *ch,
                          ProtobufCMessage **resp, char *err, size_t errlen) {
    const hdb_config *cfg = rpc->config;
    hdb_source *src;
    int rc = lookup_source(rpc, ref, &src, err, errlen);
    if (rc != HDB_OK) return rc;
    hdb_attr **ids = hdb_arena_alloc(rpc->arena, (n ? n : 1) * sizeof *ids);
    uint32_t *nids = hdb_arena_alloc(rpc->arena, (n ? n : 1) * sizeof *nids);
    uint64_t first, last;
    if (n > cfg->max_points_per_upload)
        rc = hdb_errf(err, errlen, HDB_ELIMIT,
                      "ids: %zu ids exceed limits.max_points_per_upload (%u)", n,
                      cfg->max_points_per_upload);
    if (rc == HDB_OK) rc = ids_in(rpc, in, n, ids, nids, err, errlen);
    if (rc == HDB_OK)
        rc = hdb_ingest_change_payload(rpc->catalog, src, cfg, rpc->deadline_ns, ids, nids, n, ch,
                                       rpc->arena, &first, &last, err, errlen);
    if (rc == HDB_OK) {
        Hilbert__V1__UploadResponse *r = hdb_arena_alloc(rpc->arena, sizeof *r);
        hilbert__v1__upload_response__init(r);
        r->first_seq = first;
        r->last_seq = last;
        *resp = &r->base;
    }
    hdb_source_unref(src);
    return rc;
}

static int set_payload(hdb_rpc *rpc, const ProtobufCMessage *m, ProtobufCMessage **resp,
                       char *err, size_t errlen) {
    const Hilbert__V1__SetPayloadRequest *req = (const void *)m;
    const hdb_config *cfg = rpc->config;
    hdb_kv *kv;
    hdb_attr *set;
    hdb_payload_change ch = {.field = "payload"};
    HDB_KV_VIEW(rpc->arena, req->payload, req->n_payload, kv);
    int rc = hdb_codec_attrs_in(kv, req->n_payload, cfg->max_attributes, cfg->max_value_bytes,
                                "payload", rpc->arena, &set, &ch.nset, err, errlen);
    if (rc != HDB_OK) return rc;
    ch.set = set;
    return change_payload(rpc, req->data_source, req->ids, req->n_ids, &ch, resp, err, errlen);
}

static int delete_payload(hdb_rpc *rpc, const ProtobufCMessage *m, ProtobufCMessage **resp,
                          char *err, size_t errlen) {
    const Hilbert__V1__DeletePayloadRequest *req = (const void *)m;
    hdb_payload_change ch = {
        .unset = (const char *const *)req->keys, .nunset = req->n_keys, .field = "keys"};
    if (req->n_keys > rpc->config->max_attributes)
        return hdb_errf(err, errlen, HDB_EINVAL, "keys: %zu names exceed limits.max_attributes "
                        "(%u)", req->n_keys, rpc->config->max_attributes);
    return change_payload(rpc, req->data_source, req->ids, req->n_ids, &ch, resp, err, errlen);
}

static int delete_by_filter(hdb_rpc *rpc, const ProtobufCMessage *m, ProtobufCMessage **resp,
                            char *err, size_t errlen) {
    const Hilbert__V1__DeleteByFilterRequest *req = (const void *)m;
    hdb_source *src;
    int rc = lookup_source(rpc, req->data_source, &src, err, errlen);
    if (rc != HDB_OK) return rc;
    const hdb_filter *where = NULL;
    uint64_t n = 0, first = 0, last = 0;
    if (req->filter == NULL)
        rc = hdb_errf(err, errlen, HDB_EINVAL,
                      "filter: is required (to delete every point, drop the data source)");
    if (rc == HDB_OK) rc = where_in(rpc, src, req->filter, &where, err, errlen);
    if (rc == HDB_OK)
        rc = hdb_ingest_delete_by_filter(rpc->catalog, src, rpc->config, rpc->deadline_ns, where,
                                         hdb_rpc_stop(rpc), rpc->arena, &n, &first, &last, err,
                                         errlen);
    if (rc == HDB_OK) {
        Hilbert__V1__DeleteByFilterResponse *r = hdb_arena_alloc(rpc->arena, sizeof *r);
        hilbert__v1__delete_by_filter_response__init(r);
        r->deleted = n;
        r->first_seq = first;
        r->last_seq = last;
        *resp = &r->base;
    }
    hdb_source_unref(src);
    return rc;
}

#define SVC "hilbert.v1.Points"

static const hdb_rpc_method methods[] = {
    {SVC, "Upload", &hilbert__v1__upload_request__descriptor, upload, HDB_ROLE_WRITE,
     HDB_LANE_WRITE},
    {SVC, "UploadStream", &hilbert__v1__upload_request__descriptor, upload, HDB_ROLE_WRITE,
     HDB_LANE_WRITE, .stream = true},
    {SVC, "Get", &hilbert__v1__get_points_request__descriptor, get, HDB_ROLE_READ},
    {SVC, "Scroll", &hilbert__v1__scroll_request__descriptor, scroll, HDB_ROLE_READ,
     HDB_LANE_WORK},
    {SVC, "Count", &hilbert__v1__count_request__descriptor, count, HDB_ROLE_READ, HDB_LANE_WORK},
    {SVC, "SetPayload", &hilbert__v1__set_payload_request__descriptor, set_payload,
     HDB_ROLE_WRITE, HDB_LANE_WRITE},
    {SVC, "DeletePayload", &hilbert__v1__delete_payload_request__descriptor, delete_payload,
     HDB_ROLE_WRITE, HDB_LANE_WRITE},
    {SVC, "DeleteByFilter", &hilbert__v1__delete_by_filter_request__descriptor,
     delete_by_filter, HDB_ROLE_WRITE, HDB_LANE_WRITE},
};

const hdb_rpc_method *hdb_rpc_points_methods(size_t *n) {
    *n = sizeof methods / sizeof methods[0];
    return methods;
}
