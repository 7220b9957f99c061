/*
 * hdb_ingest.c - Upload (validate, group-commit, apply to indices) and Get.
 */
#include "hdb_ingest.h"

#include "hdb_applier.h"
#include "hdb_arena.h"
#include "hdb_catalog.h"
#include "hdb_commit.h"
#include "hdb_config.h"
#include "hdb_distance.h"
#include "hdb_err.h"
#include "hdb_log.h"
#include "hdb_store.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

/* ---------------------------------------------------------------- stateless validation */

static int check_type(const hdb_attr *a, const hdb_attr_spec *spec, const char *what,
                      size_t index, char *err, size_t errlen) {
    if (a->value.type == spec->type) return HDB_OK;
    return hdb_errf(err, errlen, HDB_EINVAL, "%s[%zu].attributes[\"%s\"]: has type %s, the data "
                    "source declares %s", what, index, spec->name,
                    hdb_attr_type_name(a->value.type), hdb_attr_type_name(spec->type));
}

/* Every permanent attribute present with its declared type. */
static int check_permanent(const hdb_schema *s, const hdb_point *p, size_t i, char *err,
                           size_t errlen) {
    for (size_t j = 0; j < s->nperm; j++) {
        const hdb_attr *a = hdb_attr_find(p->attrs, p->nattrs, s->perm[j].name, true);
        if (a == NULL)
            return hdb_errf(err, errlen, HDB_EINVAL,
                            "points[%zu].attributes: permanent attribute \"%s\" (%s) is missing",
                            i, s->perm[j].name, hdb_attr_type_name(s->perm[j].type));
        int rc = check_type(a, &s->perm[j], "points", i, err, errlen);
        if (rc != HDB_OK) return rc;
    }
    return HDB_OK;
}

/* Every id attribute present with its declared type; gathers their values in declared order. */
static int id_values(const hdb_schema *s, const hdb_attr *attrs, uint32_t nattrs,
                     const char *what, size_t i, const char *field, hdb_value *vals, char *err,
                     size_t errlen) {
    for (size_t j = 0; j < s->nid; j++) {
        const hdb_attr *a = hdb_attr_find(attrs, nattrs, s->id[j]->name, true);
        if (a == NULL)
            return hdb_errf(err, errlen, HDB_EINVAL,
                            "%s[%zu].%s: id attribute \"%s\" (%s) is missing", what, i, field,
                            s->id[j]->name, hdb_attr_type_name(s->id[j]->type));
        if (a->value.type != s->id[j]->type)
            return hdb_errf(err, errlen, HDB_EINVAL,
                            "%s[%zu].%s[\"%s\"]: has type %s, the data source declares %s", what,
                            i, field, s->id[j]->name, hdb_attr_type_name(a->value.type),
                            hdb_attr_type_name(s->id[j]->type));
        vals[j] = a->value;
    }
    return HDB_OK;
}

int hdb_ingest_check_sparse(const hdb_sparse_vec *v, uint32_t dim, const char *what, size_t i,
                            char *err, size_t errlen) {
    for (uint32_t j = 0; j < v->n; j++) {
        if (v->idx[j] >= dim)
            return hdb_errf(err, errlen, HDB_EINVAL,
                            "%s[%zu].vector.sparse.indices[%u]: %u is not below the dimension %u",
                            what, i, j, v->idx[j], dim);
        if (j > 0 && v->idx[j] <= v->idx[j - 1])
            return hdb_errf(err, errlen, HDB_EINVAL,
                            "%s[%zu].vector.sparse.indices[%u]: %u %s; indices must be strictly "
                            "increasing",
                            what, i, j, v->idx[j],
                            v->idx[j] == v->idx[j - 1] ? "is repeated" : "is out of order");
    }
    size_t bad;
    if (!hdb_all_finite(v->val, v->n, &bad))
        return hdb_errf(err, errlen, HDB_EINVAL,
                        "%s[%zu].vector.sparse.values[%zu]: is %s; values must be finite", what, i,
                        bad, v->val[bad] != v->val[bad] ? "NaN" : "infinite");
    return HDB_OK;
}

static int check_point(const hdb_schema *s, const hdb_point *p, size_t i, char *err,
                       size_t errlen) {
    if (p->deleted) return HDB_OK; /* id attributes are checked when the key is built */
    if (s->sparse) {
        if (!p->sparse)
            return hdb_errf(err, errlen, HDB_EINVAL,
                            "points[%zu].vector: the data source holds sparse vectors; set "
                            "vector.sparse",
                            i);
        int rc = hdb_ingest_check_sparse(&p->sp, s->dim, "points", i, err, errlen);
        return rc != HDB_OK ? rc : check_permanent(s, p, i, err, errlen);
    }
    if (p->sparse)
        return hdb_errf(err, errlen, HDB_EINVAL,
                        "points[%zu].vector: the data source holds dense vectors; set "
                        "vector.dense",
                        i);
    if (p->vec == NULL)
        return hdb_errf(err, errlen, HDB_EINVAL,
                        "points[%zu].vector: is required unless is_deleted is set", i);
    if (p->dim != s->dim)
        return hdb_errf(err, errlen, HDB_EINVAL,
                        "points[%zu].vector: has dimension %u, the data source expects %u", i,
                        p->dim, s->dim);
    size_t bad;
    if (!hdb_all_finite(p->vec, p->dim, &bad))
        return hdb_errf(err, errlen, HDB_EINVAL,
                        "points[%zu].vector: component %zu is %s; vectors must be finite", i, bad,
                        p->vec[bad] != p->vec[bad] ? "NaN" : "infinite");
    return check_permanent(s, p, i, err, errlen);
}

/* Builds 'I' + idkey for a point. */
static int build_id_key(const hdb_schema *s, const hdb_attr *attrs, uint32_t nattrs,
                        const char *what, size_t i, const char *field, hdb_arena *arena,
                        hdb_buf *key, char *err, size_t errlen) {
    hdb_value vals[s->nid];
    int rc = id_values(s, attrs, nattrs, what, i, field, vals, err, errlen);
    if (rc != HDB_OK) return rc;
    hdb_buf_init(key, arena, 32);
    hdb_buf_put(key, "I", 1);
    hdb_tuple_encode(key, vals, s->nid);
    return HDB_OK;
}

/* ---------------------------------------------------------------- the commit job */

typedef struct {
    hdb_commit_job job;
    hdb_source *src;
    const hdb_point *points;
    size_t n;
    hdb_buf *keys; /* 'I' + idkey per point */
    hdb_arena *arena;
    /* per point, filled by prepare for the applied hook */
    uint64_t *pids;        /* pid written (upsert) or removed (delete; 0 if none) */
    hdb_point *removed;    /* for deletes: the permanent attributes of the removed point */
    int64_t delta;         /* change in live points */
} upload_job;

static int64_t now_us(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* Keeps only the permanent attributes of a record (for delete entries). */
static void permanent_only(const hdb_schema *s, const hdb_point *in, hdb_arena *arena,
                           hdb_point *out) {
    memset(out, 0, sizeof *out);
    out->deleted = true;
    out->attrs = hdb_arena_alloc(arena, (in->nattrs ? in->nattrs : 1) * sizeof *out->attrs);
    for (uint32_t i = 0; i < in->nattrs; i++)
        if (hdb_schema_find(s, in->attrs[i].name)) out->attrs[out->nattrs++] = in->attrs[i];
}

static int compare_permanent(const hdb_schema *s, const hdb_point *stored, const hdb_point *p,
                             size_t i, char *err, size_t errlen) {
    for (size_t j = 0; j < s->nperm; j++) {
        const hdb_attr *old = hdb_attr_find(stored->attrs, stored->nattrs, s->perm[j].name, true);
        const hdb_attr *neu = hdb_attr_find(p->attrs, p->nattrs, s->perm[j].name, true);
        if (old == NULL || neu == NULL) continue; /* neu is present: checked earlier */
        if (hdb_value_cmp(&old->value, &neu->value) != 0) {
            char a[64], b[64];
            return hdb_errf(err, errlen, HDB_EINVAL,
                            "points[%zu].attributes[\"%s\"]: permanent attribute cannot change "
                            "(stored %s, got %s)",
                            i, s->perm[j].name, hdb_value_format(&old->value, a, sizeof a),
                            hdb_value_format(&neu->value, b, sizeof b));
        }
    }
    return HDB_OK;
}

static int upload_prepare(hdb_commit_job *job, hdb_batch *batch, uint64_t first_seq,
                          uint64_t *nseq, char *err, size_t errlen) {
    upload_job *u = (upload_job *)job;
    hdb_source *src = u->src;
    if (atomic_load(&src->dropped))
        return hdb_errf(err, errlen, HDB_ENOTFOUND, "data_source: %s does not exist", src->label);
    hdb_store *store = src->store;
    int64_t t = now_us();
    hdb_buf scratch;
    hdb_buf_init(&scratch, u->arena, 4096);
    u->delta = 0;
    for (size_t i = 0; i < u->n; i++) {
        const hdb_point *p = &u->points[i];
        uint64_t seq = first_seq + i;
        unsigned char *val, pkey[HDB_PID_KEY_LEN], tkey[HDB_SEQ_KEY_LEN];
        size_t vlen;
        uint64_t old_pid = 0;
        hdb_record old;
        bool have_old = false;

        int rc = hdb_batch_get(store, batch, src->points_cf, u->keys[i].p, u->keys[i].len,
                               u->arena, &val, &vlen, err, errlen);
        if (rc == HDB_OK) {
            if (vlen != 8)
                return hdb_errf(err, errlen, HDB_ECORRUPT, "%s: identity entry of %zu bytes",
                                src->label, vlen);
            old_pid = hdb_get_be64(val);
            hdb_pid_key(pkey, old_pid);
            rc = hdb_batch_get(store, batch, src->points_cf, pkey, sizeof pkey, u->arena, &val,
                               &vlen, err, errlen);
            if (rc == HDB_ENOTFOUND || (rc == HDB_OK && hdb_record_decode(val, vlen, u->arena,
                                                                          &old) != HDB_OK))
                return hdb_errf(err, errlen, HDB_ECORRUPT, "%s: point %llu is damaged",
                                src->label, (unsigned long long)old_pid);
            if (rc != HDB_OK) return rc;
            have_old = true;
        } else if (rc != HDB_ENOTFOUND) {
            return rc;
        }

        hdb_seq_key(tkey, seq);
        scratch.len = 0;
        if (!p->deleted) {
            uint64_t pid = seq;
            if (have_old) {
                rc = compare_permanent(&src->schema, &old.point, p, i, err, errlen);
                if (rc != HDB_OK) return rc;
                pid = old_pid;
            } else {
                unsigned char pidv[8];
                hdb_put_be64(pidv, pid);
                hdb_batch_put(batch, src->points_cf, u->keys[i].p, u->keys[i].len, pidv, 8);
                u->delta++;
            }
            hdb_pid_key(pkey, pid);
            hdb_record_encode(&scratch, p, seq);
            hdb_batch_put(batch, src->points_cf, pkey, sizeof pkey, scratch.p, scratch.len);
            scratch.len = 0;
            hdb_timeline_encode(&scratch, HDB_TL_UPSERT, pid, t, p, seq);
            hdb_batch_put(batch, src->timeline_cf, tkey, sizeof tkey, scratch.p, scratch.len);
            u->pids[i] = pid;
        } else if (have_old) {
            hdb_batch_delete(batch, src->points_cf, u->keys[i].p, u->keys[i].len);
            hdb_batch_delete(batch, src->points_cf, pkey, sizeof pkey);
            permanent_only(&src->schema, &old.point, u->arena, &u->removed[i]);
            hdb_timeline_encode(&scratch, HDB_TL_DELETE, old_pid, t, &u->removed[i], seq);
            hdb_batch_put(batch, src->timeline_cf, tkey, sizeof tkey, scratch.p, scratch.len);
            u->pids[i] = old_pid;
            u->delta--;
        } else {
            /* A tombstone for a point that does not exist still takes its seq, so that seqs
             * stay dense and survive a restart. */
            hdb_point none = {.attrs = p->attrs, .nattrs = p->nattrs, .deleted = true};
            hdb_timeline_encode(&scratch, HDB_TL_DELETE, 0, t, &none, seq);
            hdb_batch_put(batch, src->timeline_cf, tkey, sizeof tkey, scratch.p, scratch.len);
            u->pids[i] = 0;
        }
    }
    *nseq = u->n;
    return HDB_OK;
}

/* Runs in seq order once the batch is durable: counts points and wakes the source's appliers,
 * which read the new entries from the timeline. */
static void upload_applied(hdb_commit_job *job) {
    upload_job *u = (upload_job *)job;
    hdb_source *src = u->src;
    atomic_fetch_add(&src->point_count, u->delta);
    for (size_t x = 0; x < src->nindices; x++) hdb_applier_notify(src->indices[x]->applier);
}

/* Checks a batch for src and builds its commit job in u (arena memory). */
static int job_init(upload_job *u, hdb_source *src, const hdb_config *cfg,
                    const hdb_point *points, size_t n, hdb_arena *arena, char *err,
                    size_t errlen) {
    if (n == 0) return hdb_errf(err, errlen, HDB_EINVAL, "points: at least one point is required");
    if (n > cfg->max_points_per_upload)
        return hdb_errf(err, errlen, HDB_ELIMIT,
                        "points: %zu points exceed limits.max_points_per_upload (%u); split the "
                        "batch",
                        n, cfg->max_points_per_upload);
    *u = (upload_job){.src = src, .points = points, .n = n, .arena = arena};
    u->keys = hdb_arena_alloc(arena, n * sizeof *u->keys);
    u->pids = hdb_arena_calloc(arena, n, sizeof *u->pids);
    u->removed = hdb_arena_calloc(arena, n, sizeof *u->removed);
    for (size_t i = 0; i < n; i++) {
        int rc = check_point(&src->schema, &points[i], i, err, errlen);
        if (rc == HDB_OK)
            rc = build_id_key(&src->schema, points[i].attrs, points[i].nattrs, "points", i,
                              "attributes", arena, &u->keys[i], err, errlen);
        if (rc != HDB_OK) return rc;
    }
    u->job.prepare = upload_prepare;
    u->job.applied = upload_applied;
    return HDB_OK;
}

int hdb_ingest_upload(hdb_source *src, const hdb_config *cfg, const hdb_point *points, size_t n,
                      hdb_arena *arena, uint64_t *first_seq, uint64_t *last_seq, char *err,
                      size_t errlen) {
    upload_job u;
    int rc = job_init(&u, src, cfg, points, n, arena, err, errlen);
    if (rc != HDB_OK) return rc;
    rc = hdb_commit_submit(src->commit, &u.job);
    if (rc != HDB_OK) {
        hdb_errf(err, errlen, rc, "%s", u.job.err);
        return rc;
    }
    *first_seq = u.job.first_seq;
    *last_seq = u.job.first_seq + u.job.nseq - 1;
    return HDB_OK;
}

int hdb_ingest_upload_many(hdb_source *const *srcs, const hdb_point *const *points,
                           const size_t *npoints, size_t nsrc, const hdb_config *cfg,
                           hdb_arena *arena, uint64_t *first_seqs, size_t *failed, char *err,
                           size_t errlen) {
    upload_job *jobs = hdb_arena_alloc(arena, (nsrc ? nsrc : 1) * sizeof *jobs);
    hdb_commit **qs = hdb_arena_alloc(arena, (nsrc ? nsrc : 1) * sizeof *qs);
    hdb_commit_job **js = hdb_arena_alloc(arena, (nsrc ? nsrc : 1) * sizeof *js);
    for (size_t i = 0; i < nsrc; i++) {
        int rc = job_init(&jobs[i], srcs[i], cfg, points[i], npoints[i], arena, err, errlen);
        if (rc != HDB_OK) {
            *failed = i;
            return rc;
        }
        qs[i] = srcs[i]->commit;
        js[i] = &jobs[i].job;
    }
    int rc = hdb_commit_submit_all(qs, js, nsrc, err, errlen);
    if (rc != HDB_OK) {
        *failed = 0;
        for (size_t i = 0; i < nsrc; i++)
            if (js[i]->rc != HDB_EPRECOND || rc == HDB_EPRECOND) {
                *failed = i;
                break;
            }
        return rc;
    }
    for (size_t i = 0; i < nsrc; i++) first_seqs[i] = jobs[i].job.first_seq;
    return HDB_OK;
}

/* ---------------------------------------------------------------- reads */

/* Reads P records for pids (0 = absent) with one MultiGet. */
static int read_records(hdb_source *src, const hdb_snap *snap, const uint64_t *pids, size_t n,
                        hdb_arena *arena, hdb_get_result *out, char *err, size_t errlen) {
    const unsigned char **keys = hdb_arena_alloc(arena, (n ? n : 1) * sizeof *keys);
    size_t *klens = hdb_arena_alloc(arena, (n ? n : 1) * sizeof *klens);
    unsigned char **vals = hdb_arena_alloc(arena, (n ? n : 1) * sizeof *vals);
    size_t *vlens = hdb_arena_alloc(arena, (n ? n : 1) * sizeof *vlens);
    for (size_t i = 0; i < n; i++) {
        unsigned char *k = hdb_arena_alloc(arena, HDB_PID_KEY_LEN);
        hdb_pid_key(k, pids[i]);
        keys[i] = k;
        klens[i] = HDB_PID_KEY_LEN;
    }
    int rc = hdb_store_multi_get(src->store, src->points_cf, snap, n, keys, klens, arena, vals,
                                 vlens, err, errlen);
    if (rc != HDB_OK) return rc;
    for (size_t i = 0; i < n; i++) {
        out[i].found = pids[i] != 0 && vals[i] != NULL;
        out[i].pid = pids[i];
        if (!out[i].found) continue;
        if (hdb_record_decode(vals[i], vlens[i], arena, &out[i].rec) != HDB_OK)
            return hdb_errf(err, errlen, HDB_ECORRUPT, "%s: point %llu is damaged", src->label,
                            (unsigned long long)pids[i]);
    }
    return HDB_OK;
}

int hdb_ingest_get_pids(hdb_source *src, const uint64_t *pids, size_t n, hdb_arena *arena,
                        hdb_get_result *out, char *err, size_t errlen) {
    return read_records(src, NULL, pids, n, arena, out, err, errlen);
}

int hdb_ingest_get_pids_at(hdb_source *src, const hdb_snap *snap, const uint64_t *pids, size_t n,
                      hdb_arena *arena, hdb_get_result *out, char *err, size_t errlen) {
    return read_records(src, snap, pids, n, arena, out, err, errlen);
}

int hdb_ingest_get(hdb_source *src, const hdb_config *cfg, hdb_attr *const *ids,
                   const uint32_t *nids, size_t n, hdb_arena *arena, hdb_get_result *out,
                   char *err, size_t errlen) {
    const hdb_schema *s = &src->schema;
    if (n == 0) return hdb_errf(err, errlen, HDB_EINVAL, "ids: at least one id is required");
    if (n > cfg->max_points_per_upload)
        return hdb_errf(err, errlen, HDB_ELIMIT,
                        "ids: %zu ids exceed limits.max_points_per_upload (%u)", n,
                        cfg->max_points_per_upload);
    const unsigned char **keys = hdb_arena_alloc(arena, n * sizeof *keys);
    size_t *klens = hdb_arena_alloc(arena, n * sizeof *klens);
    for (size_t i = 0; i < n; i++) {
        for (uint32_t j = 0; j < nids[i]; j++) {
            bool is_id = false;
            for (size_t k = 0; k < s->nid; k++) is_id |= strcmp(s->id[k]->name, ids[i][j].name) == 0;
            if (!is_id)
                return hdb_errf(err, errlen, HDB_EINVAL,
                                "ids[%zu].id_attributes[\"%s\"]: not an id attribute of %s", i,
                                ids[i][j].name, src->label);
        }
        hdb_buf key;
        int rc = build_id_key(s, ids[i], nids[i], "ids", i, "id_attributes", arena, &key, err,
                              errlen);
        if (rc != HDB_OK) return rc;
        keys[i] = key.p;
        klens[i] = key.len;
    }
    unsigned char **vals = hdb_arena_alloc(arena, n * sizeof *vals);
    size_t *vlens = hdb_arena_alloc(arena, n * sizeof *vlens);
    uint64_t *pids = hdb_arena_alloc(arena, n * sizeof *pids);
    hdb_snap *snap = hdb_store_snapshot(src->store);
    int rc = hdb_store_multi_get(src->store, src->points_cf, snap, n, keys, klens, arena, vals,
                                 vlens, err, errlen);
    for (size_t i = 0; rc == HDB_OK && i < n; i++) {
        pids[i] = 0;
        if (vals[i] == NULL) continue;
        if (vlens[i] != 8)
            rc = hdb_errf(err, errlen, HDB_ECORRUPT, "%s: identity entry of %zu bytes",
                          src->label, vlens[i]);
        else
            pids[i] = hdb_get_be64(vals[i]);
    }
    if (rc == HDB_OK) rc = read_records(src, snap, pids, n, arena, out, err, errlen);
    hdb_snap_release(src->store, snap);
    return rc;
}
