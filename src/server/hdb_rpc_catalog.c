/*
 * hdb_rpc_catalog.c - the Catalog service: thin handlers over hdb_catalog (data sources,
 * indices, aliases) and the model-space registry (hdb_space.h), plus the assembly of
 * DataSourceInfo, IndexInfo (with index status) and ModelSpaceInfo responses.
 */
#include "hdb_rpc_catalog.h"

#include "hdb_applier.h"
#include "hdb_arena.h"
#include "hdb_catalog.h"
#include "hdb_clock.h"
#include "hdb_codec.h"
#include "hdb_config.h"
#include "hdb_err.h"
#include "hdb_index.h"
#include "hdb_reembed.h"
#include "hdb_space.h"

#include <string.h>

/* ---------------------------------------------------------------- response builders */

static uint64_t point_count(hdb_source *src) {
    hdb_source_status st;
    hdb_source_status_get(src, &st);
    return st.point_count;
}

static void split_label(hdb_arena *a, const char *label, char **name, char **version) {
    const char *at = strchr(label, '@');
    size_t n = at ? (size_t)(at - label) : strlen(label);
    *name = hdb_arena_strndup(a, label, n);
    *version = hdb_arena_strndup(a, at ? at + 1 : "", at ? strlen(at + 1) : 0);
}

static Hilbert__V1__DataSourceInfo *source_info(hdb_rpc *rpc, hdb_source *src) {
    hdb_arena *a = rpc->arena;
    Hilbert__V1__DataSourceInfo *info = hdb_arena_alloc(a, sizeof *info);
    hilbert__v1__data_source_info__init(info);
    info->spec = hdb_source_spec(src, a);
    hdb_source_status st;
    hdb_source_status_get(src, &st);
    info->last_seq = st.last_seq;
    info->point_count = st.point_count;
    info->timeline_first_seq = st.timeline_first_seq;
    info->timeline_entries = st.timeline_entries;
    info->timeline_bytes = st.timeline_bytes;
    char **labels;
    size_t n = hdb_source_index_labels(rpc->catalog, src, a, &labels);
    info->n_indices = n;
    info->indices = hdb_arena_alloc(a, (n ? n : 1) * sizeof *info->indices);
    for (size_t i = 0; i < n; i++) {
        Hilbert__V1__IndexRef *r = hdb_arena_alloc(a, sizeof *r);
        hilbert__v1__index_ref__init(r);
        split_label(a, labels[i], &r->name, &r->version);
        info->indices[i] = r;
    }
    return info;
}

typedef struct {
    hdb_arena *arena;
    Hilbert__V1__IndexSpec *spec;
    Hilbert__V1__SplitInfo **out;
    size_t n, cap;
} splits_ctx;

static void add_split(const hdb_value *values, size_t n, uint64_t size, void *arg) {
    splits_ctx *c = arg;
    hdb_arena *a = c->arena;
    if (c->n == c->cap) return; /* splits created after the listing was sized */
    Hilbert__V1__SplitInfo *si = hdb_arena_alloc(a, sizeof *si);
    hilbert__v1__split_info__init(si);
    si->size = size;
    /* Copy the values: the index owns them only for the duration of this callback. */
    hdb_attr *attrs = hdb_arena_alloc(a, (n ? n : 1) * sizeof *attrs);
    for (size_t i = 0; i < n; i++) {
        attrs[i].name = c->spec->split_attributes[i];
        attrs[i].value = values[i];
        if (values[i].type == HDB_ATTR_STRING || values[i].type == HDB_ATTR_BYTES)
            attrs[i].value.u.s.p = hdb_arena_strndup(a, values[i].u.s.p, values[i].u.s.n);
    }
    HDB_ATTRS_OUT(a, attrs, n, Hilbert__V1__SplitInfo__SplitValuesEntry,
                  hilbert__v1__split_info__split_values_entry__init, si->split_values);
    si->n_split_values = n;
    c->out[c->n++] = si;
}

static Hilbert__V1__IndexInfo *index_info(hdb_rpc *rpc, hdb_ixent *ix) {
    hdb_arena *a = rpc->arena;
    Hilbert__V1__IndexInfo *info = hdb_arena_alloc(a, sizeof *info);
    hilbert__v1__index_info__init(info);
    info->spec = hdb_ixent_spec(ix, a);
    Hilbert__V1__IndexStatus *st = hdb_arena_alloc(a, sizeof *st);
    hilbert__v1__index_status__init(st);
    hdb_ixent_status is;
    hdb_ixent_status_get(ix, &is);
    st->state = (Hilbert__V1__IndexState)is.state; /* the numbers are equal by design */
    st->source_last_seq = is.source_last_seq;
    st->applied_seq = is.applied_seq;
    st->lag_entries = is.lag_entries;
    st->lag_seconds = is.lag_seconds;
    st->lagging = is.lagging;
    st->snapshot_seq = is.snapshot_seq;
    st->snapshot_time_micros = is.snapshot_time_us;
    st->timeline_entries = is.retained_entries;
    st->timeline_bytes = is.retained_bytes;
    st->detail = hdb_arena_strndup(a, is.detail, strlen(is.detail));
    hdb_index *index;
    if (hdb_applier_index(hdb_ixent_applier(ix), &index, NULL, 0) == HDB_OK) {
        st->size = hdb_index_size(index);
        /* Splits may appear between counting and listing; those are left for the next call. */
        size_t cap = hdb_index_nsplits(index);
        splits_ctx c = {a, info->spec, hdb_arena_alloc(a, (cap ? cap : 1) * sizeof *c.out), 0,
                        cap};
        hdb_index_foreach_split(index, add_split, &c);
        st->splits = c.out;
        st->n_splits = c.n;
        hdb_attrindex *ai = hdb_index_attrs(index);
        size_t na = ai ? hdb_attrindex_nattrs(ai) : 0;
        st->attribute_indexes = hdb_arena_alloc(a, (na ? na : 1) * sizeof *st->attribute_indexes);
        for (size_t i = 0; i < na; i++) {
            Hilbert__V1__AttributeIndexInfo *ii = hdb_arena_alloc(a, sizeof *ii);
            hilbert__v1__attribute_index_info__init(ii);
            const char *name = hdb_attrindex_name(ai, i);
            ii->name = hdb_arena_strndup(a, name, strlen(name));
            hdb_attrindex_stats(ai, i, &ii->points, &ii->distinct_values);
            st->attribute_indexes[i] = ii;
        }
        st->n_attribute_indexes = na;
        st->attribute_index_bytes = ai ? hdb_attrindex_bytes(ai) : 0;
        hdb_engine_memory mem;
        hdb_index_mem(index, &mem);
        st->vector_bytes = mem.vector_bytes;
        st->engine_other_bytes = mem.other_bytes;
    }
    info->status = st;
    return info;
}

/* ---------------------------------------------------------------- handlers */

static int ref_fields(const char *what, const Hilbert__V1__DataSourceRef *r, char *err,
                      size_t errlen) {
    if (r == NULL) return hdb_errf(err, errlen, HDB_EINVAL, "%s: is required", what);
    return HDB_OK;
}

static int create_data_source(hdb_rpc *rpc, const ProtobufCMessage *m, ProtobufCMessage **resp,
                              char *err, size_t errlen) {
    const Hilbert__V1__CreateDataSourceRequest *req = (const void *)m;
    hdb_source *src;
    int rc = hdb_catalog_create_source(rpc->catalog, req->spec, &src, err, errlen);
    if (rc != HDB_OK) return rc;
    *resp = &source_info(rpc, src)->base;
    hdb_source_unref(src);
    return HDB_OK;
}

static int get_data_source(hdb_rpc *rpc, const ProtobufCMessage *m, ProtobufCMessage **resp,
                           char *err, size_t errlen) {
    const Hilbert__V1__GetDataSourceRequest *req = (const void *)m;
    int rc = ref_fields("data_source", req->data_source, err, errlen);
    if (rc != HDB_OK) return rc;
    hdb_source *src;
    rc = hdb_catalog_get_source(rpc->catalog, req->data_source->name, req->data_source->version,
                                &src, err, errlen);
    if (rc != HDB_OK) return rc;
    *resp = &source_info(rpc, src)->base;
    hdb_source_unref(src);
    return HDB_OK;
}

static int list_data_sources(hdb_rpc *rpc, const ProtobufCMessage *m, ProtobufCMessage **resp,
                             char *err, size_t errlen) {
    (void)m, (void)err, (void)errlen;
    hdb_source **list;
    size_t n = hdb_catalog_list_sources(rpc->catalog, rpc->arena, &list);
    Hilbert__V1__ListDataSourcesResponse *r = hdb_arena_alloc(rpc->arena, sizeof *r);
    hilbert__v1__list_data_sources_response__init(r);
    r->data_sources = hdb_arena_alloc(rpc->arena, (n ? n : 1) * sizeof *r->data_sources);
    r->n_data_sources = n;
    for (size_t i = 0; i < n; i++) {
        r->data_sources[i] = source_info(rpc, list[i]);
        hdb_source_unref(list[i]);
    }
    *resp = &r->base;
    return HDB_OK;
}

static int drop_data_source(hdb_rpc *rpc, const ProtobufCMessage *m, ProtobufCMessage **resp,
                            char *err, size_t errlen) {
    const Hilbert__V1__DropDataSourceRequest *req = (const void *)m;
    int rc = ref_fields("data_source", req->data_source, err, errlen);
    if (rc != HDB_OK) return rc;
    rc = hdb_catalog_drop_source(rpc->catalog, req->data_source->name, req->data_source->version,
                                 err, errlen);
    if (rc != HDB_OK) return rc;
    Hilbert__V1__DropDataSourceResponse *r = hdb_arena_alloc(rpc->arena, sizeof *r);
    hilbert__v1__drop_data_source_response__init(r);
    *resp = &r->base;
    return HDB_OK;
}

/* An index on an empty source builds at once: wait for READY (up to the call's deadline and
 * limits.max_wait_ms) so that the client can search it as soon as the create returns. On a
 * non-empty source the build goes on in the background and the reply says BUILDING. */
static void await_empty_build(hdb_rpc *rpc, hdb_ixent *ix) {
    if (point_count(hdb_ixent_source(ix)) != 0) return;
    int64_t deadline = hdb_mono_ns() + (int64_t)rpc->config->max_wait_ms * 1000000;
    if (rpc->deadline_ns < deadline) deadline = rpc->deadline_ns;
    char werr[256];
    (void)hdb_applier_wait(hdb_ixent_applier(ix), 0, deadline, werr, sizeof werr); /* status */
}

static int create_index(hdb_rpc *rpc, const ProtobufCMessage *m, ProtobufCMessage **resp,
                        char *err, size_t errlen) {
    const Hilbert__V1__CreateIndexRequest *req = (const void *)m;
    hdb_ixent *ix;
    int rc = hdb_catalog_create_index(rpc->catalog, req->spec, &ix, err, errlen);
    if (rc != HDB_OK) return rc;
    await_empty_build(rpc, ix);
    *resp = &index_info(rpc, ix)->base;
    hdb_ixent_unref(ix);
    return HDB_OK;
}

static int get_index(hdb_rpc *rpc, const ProtobufCMessage *m, ProtobufCMessage **resp, char *err,
                     size_t errlen) {
    const Hilbert__V1__GetIndexRequest *req = (const void *)m;
    if (req->index == NULL) return hdb_errf(err, errlen, HDB_EINVAL, "index: is required");
    hdb_ixent *ix;
    int rc = hdb_catalog_get_index(rpc->catalog, req->index->name, req->index->version, &ix, err,
                                   errlen);
    if (rc != HDB_OK) return rc;
    *resp = &index_info(rpc, ix)->base;
    hdb_ixent_unref(ix);
    return HDB_OK;
}

static int list_indices(hdb_rpc *rpc, const ProtobufCMessage *m, ProtobufCMessage **resp,
                        char *err, size_t errlen) {
    (void)m, (void)err, (void)errlen;
    hdb_ixent **list;
    size_t n = hdb_catalog_list_indices(rpc->catalog, rpc->arena, &list);
    Hilbert__V1__ListIndicesResponse *r = hdb_arena_alloc(rpc->arena, sizeof *r);
    hilbert__v1__list_indices_response__init(r);
    r->indices = hdb_arena_alloc(rpc->arena, (n ? n : 1) * sizeof *r->indices);
    r->n_indices = n;
    for (size_t i = 0; i < n; i++) {
        r->indices[i] = index_info(rpc, list[i]);
        hdb_ixent_unref(list[i]);
    }
    *resp = &r->base;
    return HDB_OK;
}

static int drop_index(hdb_rpc *rpc, const ProtobufCMessage *m, ProtobufCMessage **resp,
                      char *err, size_t errlen) {
    const Hilbert__V1__DropIndexRequest *req = (const void *)m;
    if (req->index == NULL) return hdb_errf(err, errlen, HDB_EINVAL, "index: is required");
    int rc = hdb_catalog_drop_index(rpc->catalog, req->index->name, req->index->version, err,
                                    errlen);
    if (rc != HDB_OK) return rc;
    Hilbert__V1__DropIndexResponse *r = hdb_arena_alloc(rpc->arena, sizeof *r);
    hilbert__v1__drop_index_response__init(r);
    *resp = &r->base;
    return HDB_OK;
}

/* ---------------------------------------------------------------- model spaces */

static Hilbert__V1__ModelSpaceInfo *space_info(hdb_rpc *rpc, hdb_space *sp) {
    hdb_arena *a = rpc->arena;
    Hilbert__V1__ModelSpaceInfo *info = hdb_arena_alloc(a, sizeof *info);
    hilbert__v1__model_space_info__init(info);
    info->spec = hdb_space_spec(sp, a);
    info->model_state = hdb_space_model(sp) ? HILBERT__V1__MODEL_STATE__MODEL_STATE_LOADED
                                            : HILBERT__V1__MODEL_STATE__MODEL_STATE_FAILED;
    /* A copy: the response outlives the caller's reference. */
    info->detail = hdb_arena_strndup(a, hdb_space_detail(sp), strlen(hdb_space_detail(sp)));
    info->point_count = point_count(hdb_space_source(sp));
    info->index_status = index_info(rpc, hdb_space_index(sp))->status;
    hdb_reembed *r = hdb_space_reembed(sp);
    if (r) {
        hdb_reembed_status st;
        hdb_reembed_status_get(r, &st);
        Hilbert__V1__ReembedStatus *re = hdb_arena_alloc(a, sizeof *re);
        hilbert__v1__reembed_status__init(re);
        re->origin = hdb_arena_strndup(a, hdb_reembed_origin(r), strlen(hdb_reembed_origin(r)));
        re->state = (Hilbert__V1__ReembedState)st.state;
        re->copied = st.copied;
        re->total = st.total;
        re->skipped = st.skipped;
        re->applied_seq = st.applied_seq;
        re->origin_last_seq = st.origin_last_seq;
        re->detail = hdb_arena_strndup(a, st.detail, strlen(st.detail));
        info->reembed = re;
    }
    return info;
}

static int create_model_space(hdb_rpc *rpc, const ProtobufCMessage *m, ProtobufCMessage **resp,
                              char *err, size_t errlen) {
    const Hilbert__V1__CreateModelSpaceRequest *req = (const void *)m;
    hdb_space *sp;
    int rc = hdb_spaces_create(rpc->spaces, req->spec, &sp, err, errlen);
    if (rc != HDB_OK) return rc;
    await_empty_build(rpc, hdb_space_index(sp));
    *resp = &space_info(rpc, sp)->base;
    hdb_space_unref(sp);
    return HDB_OK;
}

static int get_model_space(hdb_rpc *rpc, const ProtobufCMessage *m, ProtobufCMessage **resp,
                           char *err, size_t errlen) {
    const Hilbert__V1__GetModelSpaceRequest *req = (const void *)m;
    hdb_space *sp;
    int rc = hdb_spaces_get(rpc->spaces, req->name, &sp, err, errlen);
    if (rc != HDB_OK) return hdb_err_prefix(err, errlen, rc, "name: ");
    *resp = &space_info(rpc, sp)->base;
    hdb_space_unref(sp);
    return HDB_OK;
}

static int list_model_spaces(hdb_rpc *rpc, const ProtobufCMessage *m, ProtobufCMessage **resp,
                             char *err, size_t errlen) {
    (void)m, (void)err, (void)errlen;
    hdb_space **list;
    size_t n = hdb_spaces_list(rpc->spaces, rpc->arena, &list);
    Hilbert__V1__ListModelSpacesResponse *r = hdb_arena_alloc(rpc->arena, sizeof *r);
    hilbert__v1__list_model_spaces_response__init(r);
    r->model_spaces = hdb_arena_alloc(rpc->arena, (n ? n : 1) * sizeof *r->model_spaces);
    r->n_model_spaces = n;
    for (size_t i = 0; i < n; i++) {
        r->model_spaces[i] = space_info(rpc, list[i]);
        hdb_space_unref(list[i]);
    }
    *resp = &r->base;
    return HDB_OK;
}

static int drop_model_space(hdb_rpc *rpc, const ProtobufCMessage *m, ProtobufCMessage **resp,
                            char *err, size_t errlen) {
    const Hilbert__V1__DropModelSpaceRequest *req = (const void *)m;
    int rc = hdb_spaces_drop(rpc->spaces, req->name, err, errlen);
    if (rc != HDB_OK) return hdb_err_prefix(err, errlen, rc, "name: ");
    Hilbert__V1__DropModelSpaceResponse *r = hdb_arena_alloc(rpc->arena, sizeof *r);
    hilbert__v1__drop_model_space_response__init(r);
    *resp = &r->base;
    return HDB_OK;
}

/* ---------------------------------------------------------------- aliases */

static int update_aliases(hdb_rpc *rpc, const ProtobufCMessage *m, ProtobufCMessage **resp,
                          char *err, size_t errlen) {
    const Hilbert__V1__UpdateAliasesRequest *req = (const void *)m;
    /* Through the registry: it holds its lock while the catalog checks model-space targets. */
    int rc = hdb_spaces_update_aliases(rpc->spaces, req->actions, req->n_actions, err, errlen);
    if (rc != HDB_OK) return rc;
    Hilbert__V1__UpdateAliasesResponse *r = hdb_arena_alloc(rpc->arena, sizeof *r);
    hilbert__v1__update_aliases_response__init(r);
    r->n_aliases = hdb_catalog_list_aliases(rpc->catalog, rpc->arena, &r->aliases);
    *resp = &r->base;
    return HDB_OK;
}

static int list_aliases(hdb_rpc *rpc, const ProtobufCMessage *m, ProtobufCMessage **resp,
                        char *err, size_t errlen) {
    (void)m, (void)err, (void)errlen;
    Hilbert__V1__ListAliasesResponse *r = hdb_arena_alloc(rpc->arena, sizeof *r);
    hilbert__v1__list_aliases_response__init(r);
    r->n_aliases = hdb_catalog_list_aliases(rpc->catalog, rpc->arena, &r->aliases);
    *resp = &r->base;
    return HDB_OK;
}

#define SVC "hilbert.v1.Catalog"

static const hdb_rpc_method methods[] = {
    /* Reads need the read role and are cheap (answered by the call threads); changes need the
     * admin role and go to the write pool (they take the DDL lock, may start or join
     * appliers). */
    {SVC, "CreateDataSource", &hilbert__v1__create_data_source_request__descriptor,
     create_data_source, HDB_ROLE_ADMIN, HDB_LANE_WRITE},
    {SVC, "GetDataSource", &hilbert__v1__get_data_source_request__descriptor, get_data_source,
     HDB_ROLE_READ},
    {SVC, "ListDataSources", &hilbert__v1__list_data_sources_request__descriptor,
     list_data_sources, HDB_ROLE_READ},
    {SVC, "DropDataSource", &hilbert__v1__drop_data_source_request__descriptor, drop_data_source,
     HDB_ROLE_ADMIN, HDB_LANE_WRITE},
    {SVC, "CreateIndex", &hilbert__v1__create_index_request__descriptor, create_index,
     HDB_ROLE_ADMIN, HDB_LANE_WRITE},
    {SVC, "GetIndex", &hilbert__v1__get_index_request__descriptor, get_index, HDB_ROLE_READ},
    {SVC, "ListIndices", &hilbert__v1__list_indices_request__descriptor, list_indices,
     HDB_ROLE_READ},
    {SVC, "DropIndex", &hilbert__v1__drop_index_request__descriptor, drop_index, HDB_ROLE_ADMIN,
     HDB_LANE_WRITE},
    /* Loading a model may take a while: model threads. */
    {SVC, "CreateModelSpace", &hilbert__v1__create_model_space_request__descriptor,
     create_model_space, HDB_ROLE_ADMIN, HDB_LANE_MODEL},
    {SVC, "GetModelSpace", &hilbert__v1__get_model_space_request__descriptor, get_model_space,
     HDB_ROLE_READ},
    {SVC, "ListModelSpaces", &hilbert__v1__list_model_spaces_request__descriptor,
     list_model_spaces, HDB_ROLE_READ},
    {SVC, "DropModelSpace", &hilbert__v1__drop_model_space_request__descriptor, drop_model_space,
     HDB_ROLE_ADMIN, HDB_LANE_WRITE},
    /* An alias change is a catalog change like CreateIndex (one definitions write under the
     * DDL locks); the listing a cheap read. */
    {SVC, "UpdateAliases", &hilbert__v1__update_aliases_request__descriptor, update_aliases,
     HDB_ROLE_ADMIN, HDB_LANE_WRITE},
    {SVC, "ListAliases", &hilbert__v1__list_aliases_request__descriptor, list_aliases,
     HDB_ROLE_READ},
};

const hdb_rpc_method *hdb_rpc_catalog_methods(size_t *n) {
    *n = sizeof methods / sizeof methods[0];
    return methods;
}
