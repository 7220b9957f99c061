/*
 * hdb_ingest.c - Upload (validate, then commit through the source's table) and Get.
 */
#include "hdb_ingest.h"

#include "hdb_arena.h"
#include "hdb_catalog.h"
#include "hdb_config.h"
#include "hdb_err.h"
#include "hdb_log.h"
#include "hdb_mem.h"
#include "hdb_table.h"

#include <stdio.h>
#include <string.h>

/* ---------------------------------------------------------------- stateless validation */

/* Messages below name the field within one point ("vector: ...", "attributes[\"x\"]: ...");
 * the caller prefixes the point's own path ("points[3].") when it has one. */

static int check_type(const hdb_attr *a, const hdb_attr_spec *spec, char *err, size_t errlen) {
    if (a->value.type == spec->type) return HDB_OK;
    return hdb_errf(err, errlen, HDB_EINVAL, "attributes[\"%s\"]: has type %s, the data source "
                    "declares %s", spec->name, hdb_attr_type_name(a->value.type),
                    hdb_attr_type_name(spec->type));
}

/* Every permanent attribute present with its declared type. */
static int check_permanent(const hdb_schema *s, const hdb_point *p, char *err, size_t errlen) {
    for (size_t j = 0; j < s->nperm; j++) {
        const hdb_attr *a = hdb_attr_find(p->attrs, p->nattrs, s->perm[j].name, true);
        if (a == NULL)
            return hdb_errf(err, errlen, HDB_EINVAL,
                            "attributes: permanent attribute \"%s\" (%s) is missing",
                            s->perm[j].name, hdb_attr_type_name(s->perm[j].type));
        int rc = check_type(a, &s->perm[j], err, errlen);
        if (rc != HDB_OK) return rc;
    }
    return HDB_OK;
}

/* Every id attribute present with its declared type; gathers their values in declared order.
 * field names the attributes in the message ("attributes", "id_attributes"). */
static int id_values(const hdb_schema *s, const hdb_attr *attrs, uint32_t nattrs,
                     const char *field, hdb_value *vals, char *err, size_t errlen) {
    for (size_t j = 0; j < s->nid; j++) {
        const hdb_attr *a = hdb_attr_find(attrs, nattrs, s->id[j]->name, true);
        if (a == NULL)
            return hdb_errf(err, errlen, HDB_EINVAL, "%s: id attribute \"%s\" (%s) is missing",
                            field, s->id[j]->name, hdb_attr_type_name(s->id[j]->type));
        if (a->value.type != s->id[j]->type)
            return hdb_errf(err, errlen, HDB_EINVAL,
                            "%s[\"%s\"]: has type %s, the data source declares %s", field,
                            s->id[j]->name, hdb_attr_type_name(a->value.type),
                            hdb_attr_type_name(s->id[j]->type));
        vals[j] = a->value;
    }
    return HDB_OK;
}

static int check_point(const hdb_schema *s, const hdb_point *p, char *err, size_t errlen) {
    if (p->deleted) return HDB_OK; /* a tombstone needs only its id attributes (job_init) */
    if (s->sparse) {
        if (!p->sparse)
            return hdb_errf(err, errlen, HDB_EINVAL,
                            "vector: the data source holds sparse vectors; set vector.sparse");
        int rc = hdb_sparse_check(&p->sp, s->dim, err, errlen);
        return rc != HDB_OK ? rc : check_permanent(s, p, err, errlen);
    }
    if (p->sparse)
        return hdb_errf(err, errlen, HDB_EINVAL,
                        "vector: the data source holds dense vectors; set vector.dense");
    if (p->vec == NULL)
        return hdb_errf(err, errlen, HDB_EINVAL, "vector: is required unless is_deleted is set");
    if (p->dim != s->dim)
        return hdb_errf(err, errlen, HDB_EINVAL,
                        "vector: has dimension %u, the data source expects %u", p->dim, s->dim);
    size_t bad;
    if (!hdb_all_finite(p->vec, p->dim, &bad))
        return hdb_errf(err, errlen, HDB_EINVAL,
                        "vector: component %zu is %s; vectors must be finite", bad,
                        p->vec[bad] != p->vec[bad] ? "NaN" : "infinite");
    return check_permanent(s, p, err, errlen);
}

/* Every id attribute of an identity (ids: nids attributes) is present with its type, and no
 * other attribute is there. */
static int check_ids(const hdb_source *src, const hdb_attr *ids, uint32_t nids, size_t i,
                     char *err, size_t errlen) {
    const hdb_schema *s = hdb_source_schema(src);
    for (uint32_t j = 0; j < nids; j++) {
        bool is_id = false;
        for (size_t k = 0; k < s->nid; k++) is_id |= strcmp(s->id[k]->name, ids[j].name) == 0;
        if (!is_id)
            return hdb_errf(err, errlen, HDB_EINVAL,
                            "ids[%zu].id_attributes[\"%s\"]: not an id attribute of %s", i,
                            ids[j].name, hdb_source_label(src));
    }
    hdb_value vals[s->nid ? s->nid : 1];
    int rc = id_values(s, ids, nids, "id_attributes", vals, err, errlen);
    return rc != HDB_OK ? hdb_err_prefix(err, errlen, rc, "ids[%zu].", i) : HDB_OK;
}

/* Between 1 and limits.max_points_per_upload identities, each checked with check_ids. */
static int check_id_list(const hdb_source *src, const hdb_config *cfg, hdb_attr *const *ids,
                         const uint32_t *nids, size_t n, char *err, size_t errlen) {
    if (n == 0) return hdb_errf(err, errlen, HDB_EINVAL, "ids: at least one id is required");
    if (n > cfg->max_points_per_upload)
        return hdb_errf(err, errlen, HDB_ELIMIT,
                        "ids: %zu ids exceed limits.max_points_per_upload (%u)", n,
                        cfg->max_points_per_upload);
    for (size_t i = 0; i < n; i++) {
        int rc = check_ids(src, ids[i], nids[i], i, err, errlen);
        if (rc != HDB_OK) return rc;
    }
    return HDB_OK;
}

/* ---------------------------------------------------------------- the commit job */

/* Inside a commit job: true (with the message in err) when src was dropped meanwhile. */
static bool source_gone(const hdb_source *src, char *err, size_t errlen) {
    if (!hdb_source_dropped(src)) return false;
    hdb_errf(err, errlen, HDB_ENOTFOUND, "data_source: %s does not exist", hdb_source_label(src));
    return true;
}

typedef struct {
    hdb_table_job job;
    hdb_source *src;
    const hdb_point *points;
    size_t n;
    bool batch; /* an Upload's batch: messages name the point as points[i] */
    hdb_arena *arena;
} upload_job;

static int compare_permanent(const hdb_schema *s, const hdb_point *stored, const hdb_point *p,
                             char *err, size_t errlen) {
    for (size_t j = 0; j < s->nperm; j++) {
        const hdb_attr *old = hdb_attr_find(stored->attrs, stored->nattrs, s->perm[j].name, true);
        const hdb_attr *neu = hdb_attr_find(p->attrs, p->nattrs, s->perm[j].name, true);
        if (old == NULL || neu == NULL) continue; /* neu is present: checked earlier */
        if (hdb_value_cmp(&old->value, &neu->value) != 0) {
            char a[64], b[64];
            return hdb_errf(err, errlen, HDB_EINVAL,
                            "attributes[\"%s\"]: permanent attribute cannot change (stored "
                            "%s, got %s)",
                            s->perm[j].name, hdb_value_format(&old->value, a, sizeof a),
                            hdb_value_format(&neu->value, b, sizeof b));
        }
    }
    return HDB_OK;
}

/* Runs on the commit leader's thread, in seq order: the stateful checks, then the writes. */
static int upload_prepare(hdb_table_job *job, hdb_table_txn *tx, uint64_t first_seq,
                          uint64_t *nseq, char *err, size_t errlen) {
    upload_job *u = (upload_job *)job;
    hdb_source *src = u->src;
    if (source_gone(src, err, errlen)) return HDB_ENOTFOUND;
    const hdb_schema *schema = hdb_source_schema(src);
    for (size_t i = 0; i < u->n; i++) {
        const hdb_point *p = &u->points[i];
        hdb_row old;
        int rc = hdb_table_txn_find(tx, p, u->arena, &old, err, errlen);
        if (rc != HDB_OK) return rc;
        if (p->deleted) {
            hdb_table_txn_delete(tx, first_seq + i, p, &old);
            continue;
        }
        if (old.found && (rc = compare_permanent(schema, &old.rec.point, p, err, errlen)))
            return u->batch ? hdb_err_prefix(err, errlen, rc, "points[%zu].", i) : rc;
        hdb_table_txn_upsert(tx, first_seq + i, p, &old);
    }
    *nseq = u->n;
    return HDB_OK;
}

/* Checks the points for src and builds their commit job in u. A batch (an Upload's) names its
 * points points[i] in messages; a single point is named by the caller. */
static int job_init(upload_job *u, hdb_source *src, const hdb_config *cfg,
                    const hdb_point *points, size_t n, bool batch, hdb_arena *arena, char *err,
                    size_t errlen) {
    if (n == 0) return hdb_errf(err, errlen, HDB_EINVAL, "points: at least one point is required");
    if (n > cfg->max_points_per_upload)
        return hdb_errf(err, errlen, HDB_ELIMIT,
                        "points: %zu points exceed limits.max_points_per_upload (%u); split the "
                        "batch",
                        n, cfg->max_points_per_upload);
    *u = (upload_job){.job = {.prepare = upload_prepare},
                      .src = src,
                      .points = points,
                      .n = n,
                      .batch = batch,
                      .arena = arena};
    const hdb_schema *s = hdb_source_schema(src);
    hdb_value vals[s->nid ? s->nid : 1];
    for (size_t i = 0; i < n; i++) {
        int rc = check_point(s, &points[i], err, errlen);
        if (rc == HDB_OK)
            rc = id_values(s, points[i].attrs, points[i].nattrs, "attributes", vals, err, errlen);
        if (rc != HDB_OK) return batch ? hdb_err_prefix(err, errlen, rc, "points[%zu].", i) : rc;
    }
    return HDB_OK;
}

int hdb_ingest_upload(hdb_catalog *cat, hdb_source *src, const hdb_config *cfg,
                      int64_t deadline_ns, const hdb_point *points, size_t n, hdb_arena *arena,
                      uint64_t *first_seq, uint64_t *last_seq, char *err, size_t errlen) {
    upload_job u;
    int rc = job_init(&u, src, cfg, points, n, true, arena, err, errlen);
    if (rc != HDB_OK) return rc;
    if ((rc = hdb_catalog_admit_write(cat, src, deadline_ns, err, errlen)) != HDB_OK) return rc;
    rc = hdb_table_commit(hdb_source_table(src), &u.job);
    if (rc != HDB_OK) return hdb_errf(err, errlen, rc, "%s", u.job.err);
    *first_seq = u.job.first_seq;
    *last_seq = u.job.first_seq + u.job.nseq - 1;
    return HDB_OK;
}

int hdb_ingest_upload_each(hdb_catalog *cat, hdb_source *const *srcs, const hdb_point *points,
                           size_t nsrc, const hdb_config *cfg, int64_t deadline_ns,
                           hdb_arena *arena, uint64_t *seqs, size_t *failed, char *err,
                           size_t errlen) {
    upload_job *jobs = hdb_arena_alloc(arena, (nsrc ? nsrc : 1) * sizeof *jobs);
    hdb_table **ts = hdb_arena_alloc(arena, (nsrc ? nsrc : 1) * sizeof *ts);
    hdb_table_job **js = hdb_arena_alloc(arena, (nsrc ? nsrc : 1) * sizeof *js);
    for (size_t i = 0; i < nsrc; i++) {
        int rc = job_init(&jobs[i], srcs[i], cfg, &points[i], 1, false, arena, err, errlen);
        if (rc != HDB_OK) {
            *failed = i;
            return rc;
        }
        ts[i] = hdb_source_table(srcs[i]);
        js[i] = &jobs[i].job;
    }
    for (size_t i = 0; i < nsrc; i++) {
        int rc = hdb_catalog_admit_write(cat, srcs[i], deadline_ns, err, errlen);
        if (rc != HDB_OK) {
            *failed = i;
            return rc;
        }
    }
    int rc = hdb_table_commit_all(ts, js, nsrc, err, errlen);
    if (rc != HDB_OK) {
        *failed = 0;
        for (size_t i = 0; i < nsrc; i++)
            if (js[i]->rc != HDB_EPRECOND || rc == HDB_EPRECOND) {
                *failed = i;
                break;
            }
        return rc;
    }
    for (size_t i = 0; i < nsrc; i++) seqs[i] = jobs[i].job.first_seq;
    return HDB_OK;
}

/* ---------------------------------------------------------------- payload changes */

typedef struct {
    hdb_table_job job;
    hdb_source *src;
    hdb_attr *const *ids;
    const uint32_t *nids;
    size_t n;
    const hdb_payload_change *ch;
    uint32_t max_attrs;
    hdb_arena *arena;
} payload_job;

static bool unset_has(const hdb_payload_change *ch, const char *name) {
    for (size_t i = 0; i < ch->nunset; i++)
        if (strcmp(ch->unset[i], name) == 0) return true;
    return false;
}

/* The stored attributes (sorted) with ch applied, into arena; sorted by name. */
static hdb_attr *merge_payload(const hdb_point *old, const hdb_payload_change *ch,
                               hdb_arena *arena, uint32_t *nout) {
    hdb_attr *out = hdb_arena_alloc(arena, (old->nattrs + ch->nset + 1) * sizeof *out);
    uint32_t i = 0, j = 0, n = 0;
    while (i < old->nattrs || j < ch->nset) {
        int c = i == old->nattrs ? 1 : j == ch->nset ? -1
                                                    : strcmp(old->attrs[i].name, ch->set[j].name);
        const hdb_attr *a = c < 0 ? &old->attrs[i++] : &ch->set[j++];
        if (c == 0) i++; /* replaced */
        if (!unset_has(ch, a->name)) out[n++] = *a;
    }
    *nout = n;
    return out;
}

static int payload_prepare(hdb_table_job *job, hdb_table_txn *tx, uint64_t first_seq,
                           uint64_t *nseq, char *err, size_t errlen) {
    payload_job *u = (payload_job *)job;
    if (source_gone(u->src, err, errlen)) return HDB_ENOTFOUND;
    for (size_t i = 0; i < u->n; i++) {
        hdb_point probe = {.attrs = u->ids[i], .nattrs = u->nids[i]};
        hdb_row old;
        int rc = hdb_table_txn_find(tx, &probe, u->arena, &old, err, errlen);
        if (rc != HDB_OK) return rc;
        if (!old.found)
            return hdb_errf(err, errlen, HDB_ENOTFOUND,
                            "ids[%zu]: no point of %s has these id attributes; nothing was "
                            "changed", i, hdb_source_label(u->src));
        hdb_point p = old.rec.point;
        p.attrs = merge_payload(&old.rec.point, u->ch, u->arena, &p.nattrs);
        if (p.nattrs > u->max_attrs)
            return hdb_errf(err, errlen, HDB_ELIMIT,
                            "payload: ids[%zu] would carry %u attributes, over "
                            "limits.max_attributes (%u)", i, p.nattrs, u->max_attrs);
        hdb_table_txn_upsert(tx, first_seq + i, &p, &old);
    }
    *nseq = u->n;
    return HDB_OK;
}

int hdb_ingest_change_payload(hdb_catalog *cat, hdb_source *src, const hdb_config *cfg,
                              int64_t deadline_ns, hdb_attr *const *ids, const uint32_t *nids,
                              size_t n, const hdb_payload_change *ch, hdb_arena *arena,
                              uint64_t *first_seq, uint64_t *last_seq, char *err,
                              size_t errlen) {
    int rc = check_id_list(src, cfg, ids, nids, n, err, errlen);
    if (rc != HDB_OK) return rc;
    const hdb_schema *s = hdb_source_schema(src);
    for (uint32_t j = 0; j < ch->nset; j++)
        for (size_t k = 0; k < s->nperm; k++)
            if (strcmp(ch->set[j].name, s->perm[k].name) == 0)
                return hdb_errf(err, errlen, HDB_EINVAL,
                                "payload[\"%s\"]: is a permanent attribute of %s; permanent "
                                "attributes never change",
                                ch->set[j].name, hdb_source_label(src));
    for (size_t j = 0; j < ch->nunset; j++) {
        if (ch->unset[j][0] == '\0')
            return hdb_errf(err, errlen, HDB_EINVAL, "keys[%zu]: an attribute name is required",
                            j);
        for (size_t k = 0; k < s->nperm; k++)
            if (strcmp(ch->unset[j], s->perm[k].name) == 0)
                return hdb_errf(err, errlen, HDB_EINVAL,
                                "keys[%zu]: \"%s\" is a permanent attribute of %s; permanent "
                                "attributes cannot be removed",
                                j, ch->unset[j], hdb_source_label(src));
    }
    if (ch->nset == 0 && ch->nunset == 0)
        return hdb_errf(err, errlen, HDB_EINVAL, "%s: at least one attribute is required",
                        ch->field);
    payload_job u = {.job = {.prepare = payload_prepare},
                     .src = src,
                     .ids = ids,
                     .nids = nids,
                     .n = n,
                     .ch = ch,
                     .max_attrs = cfg->max_attributes,
                     .arena = arena};
    rc = hdb_catalog_admit_write(cat, src, deadline_ns, err, errlen);
    if (rc != HDB_OK) return rc;
    rc = hdb_table_commit(hdb_source_table(src), &u.job);
    if (rc != HDB_OK) return hdb_errf(err, errlen, rc, "%s", u.job.err);
    *first_seq = u.job.first_seq;
    *last_seq = u.job.first_seq + u.job.nseq - 1;
    return HDB_OK;
}

/* ---------------------------------------------------------------- delete by filter */

typedef struct {
    hdb_table_job job;
    hdb_source *src;
    const hdb_filter *where;
    hdb_point *tombs; /* the id attributes of the points that passed in the snapshot */
    size_t n;
    hdb_arena *arena;
} delete_job;

static int delete_prepare(hdb_table_job *job, hdb_table_txn *tx, uint64_t first_seq,
                          uint64_t *nseq, char *err, size_t errlen) {
    delete_job *d = (delete_job *)job;
    if (source_gone(d->src, err, errlen)) return HDB_ENOTFOUND;
    uint64_t used = 0;
    for (size_t i = 0; i < d->n; i++) {
        hdb_row old;
        int rc = hdb_table_txn_find(tx, &d->tombs[i], d->arena, &old, err, errlen);
        if (rc != HDB_OK) return rc;
        /* Changed since the snapshot so that it no longer passes, or gone: left alone. */
        if (!old.found ||
            !hdb_filter_eval(d->where, old.rec.point.attrs, old.rec.point.nattrs))
            continue;
        hdb_table_txn_delete(tx, first_seq + used++, &d->tombs[i], &old);
    }
    *nseq = used;
    return HDB_OK;
}

/* Copies the id attributes of a stored point into a tombstone in arena. */
static void tomb_of(const hdb_schema *s, const hdb_point *p, hdb_arena *arena, hdb_point *out) {
    hdb_attr *ids = hdb_arena_alloc(arena, (s->nid ? s->nid : 1) * sizeof *ids);
    uint32_t n = 0;
    for (size_t j = 0; j < s->nid; j++) {
        const hdb_attr *a = hdb_attr_find(p->attrs, p->nattrs, s->id[j]->name, true);
        if (a == NULL) continue; /* cannot happen for a stored point */
        ids[n] = *a;
        ids[n].name = s->id[j]->name;
        if (a->value.type == HDB_ATTR_STRING || a->value.type == HDB_ATTR_BYTES)
            ids[n].value.u.s.p = hdb_arena_memdup(arena, a->value.u.s.p, a->value.u.s.n);
        n++;
    }
    hdb_attrs_sort(ids, n);
    *out = (hdb_point){.attrs = ids, .nattrs = n, .deleted = true};
}

int hdb_ingest_delete_by_filter(hdb_catalog *cat, hdb_source *src, const hdb_config *cfg,
                                int64_t deadline_ns, const hdb_filter *where,
                                const hdb_stop *stop, hdb_arena *arena, uint64_t *deleted,
                                uint64_t *first_seq, uint64_t *last_seq, char *err,
                                size_t errlen) {
    const hdb_schema *s = hdb_source_schema(src);
    hdb_table *t = hdb_source_table(src);
    *deleted = *first_seq = *last_seq = 0;
    /* The points that pass in a snapshot; their ids are kept, their records are not. */
    enum { CHUNK = 256 };
    hdb_row rows[CHUNK];
    size_t cap = 1024, n = 0, got;
    hdb_point *tombs = hdb_malloc(cap * sizeof *tombs);
    hdb_snap *snap = hdb_table_snapshot(t, NULL);
    hdb_arena *scratch = hdb_arena_create(1 << 16);
    uint64_t cursor = 0;
    int rc = HDB_OK;
    do {
        hdb_arena_reset(scratch);
        if ((rc = hdb_stop_check(stop, "delete", err, errlen)) != HDB_OK) break;
        rc = hdb_table_scan(t, snap, &cursor, CHUNK, scratch, rows, &got, err, errlen);
        for (size_t i = 0; rc == HDB_OK && i < got; i++) {
            const hdb_point *p = &rows[i].rec.point;
            if (!hdb_filter_eval(where, p->attrs, p->nattrs)) continue;
            if (n == cfg->max_points_per_delete) {
                rc = hdb_errf(err, errlen, HDB_ELIMIT,
                              "filter: more than limits.max_points_per_delete (%u) points "
                              "pass; nothing was deleted (narrow the filter and call again)",
                              cfg->max_points_per_delete);
                break;
            }
            if (n == cap) tombs = hdb_realloc(tombs, (cap *= 2) * sizeof *tombs);
            tomb_of(s, p, arena, &tombs[n++]);
        }
    } while (rc == HDB_OK && got > 0);
    hdb_arena_free(scratch);
    hdb_table_snapshot_release(t, snap);
    if (rc == HDB_OK && n > 0) rc = hdb_catalog_admit_write(cat, src, deadline_ns, err, errlen);
    if (rc == HDB_OK && n > 0) {
        delete_job d = {.job = {.prepare = delete_prepare},
                        .src = src,
                        .where = where,
                        .tombs = tombs,
                        .n = n,
                        .arena = arena};
        rc = hdb_table_commit(t, &d.job);
        if (rc != HDB_OK) {
            rc = hdb_errf(err, errlen, rc, "%s", d.job.err);
        } else if (d.job.nseq > 0) {
            *deleted = d.job.nseq;
            *first_seq = d.job.first_seq;
            *last_seq = d.job.first_seq + d.job.nseq - 1;
        }
    }
    hdb_free(tombs);
    return rc;
}

/* ---------------------------------------------------------------- reads */

int hdb_ingest_get(hdb_source *src, const hdb_config *cfg, hdb_attr *const *ids,
                   const uint32_t *nids, size_t n, hdb_arena *arena, hdb_row *out, char *err,
                   size_t errlen) {
    int rc = check_id_list(src, cfg, ids, nids, n, err, errlen);
    if (rc != HDB_OK) return rc;
    return hdb_table_get_ids(hdb_source_table(src), NULL, n, ids, nids, arena, out, err, errlen);
}
