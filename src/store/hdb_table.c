/*
 * hdb_table.c - one data source's storage: points, identity keys and timeline entries in two
 * column families, written through the source's group-commit queue, and read by id, by pid and
 * by scan (see hdb_table.h). The timeline side is in hdb_table_timeline.c.
 */
#include "hdb_table_int.h"

#include "hdb_arena.h"
#include "hdb_commit.h"
#include "hdb_err.h"
#include "hdb_log.h"
#include "hdb_mem.h"
#include "hdb_store.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>


/* ---------------------------------------------------------------- names and keys */

static void cf_names(uint64_t id, char *points, char *timeline, size_t cap) {
    snprintf(points, cap, "points.%" PRIu64, id);
    snprintf(timeline, cap, "timeline.%" PRIu64, id);
}

static int str_cmp(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static bool is_permanent(const hdb_table *t, const char *name) {
    return bsearch(&name, t->perm_names, t->nperm, sizeof *t->perm_names, str_cmp) != NULL;
}

/* 'I' + the tuple of p's id attribute values in declared order. */
static int id_key(const hdb_table *t, const hdb_attr *attrs, uint32_t nattrs, hdb_arena *arena,
                  hdb_buf *key, char *err, size_t errlen) {
    hdb_value vals[t->nid ? t->nid : 1];
    for (size_t j = 0; j < t->nid; j++) {
        const hdb_attr *a = hdb_attr_find(attrs, nattrs, t->id_names[j], true);
        if (a == NULL)
            return hdb_errf(err, errlen, HDB_EINVAL, "attributes: id attribute \"%s\" is missing",
                            t->id_names[j]);
        vals[j] = a->value;
    }
    hdb_buf_init(key, arena, 32);
    hdb_buf_put(key, "I", 1);
    hdb_tuple_encode(key, vals, t->nid);
    return HDB_OK;
}

static int64_t now_us(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* ---------------------------------------------------------------- open, close */

static hdb_table *table_new(hdb_store *store, const hdb_table_spec *spec) {
    hdb_table *t = hdb_calloc(1, sizeof *t);
    t->base.ops = &hdb__rocksdb_timeline_ops;
    t->store = store;
    t->id = spec->id;
    t->label = hdb_strdup(spec->label);
    t->nid = spec->nid;
    t->id_names = hdb_calloc(t->nid ? t->nid : 1, sizeof *t->id_names);
    for (size_t i = 0; i < t->nid; i++) t->id_names[i] = hdb_strdup(spec->id_names[i]);
    t->nperm = spec->nperm;
    t->perm_names = hdb_calloc(t->nperm ? t->nperm : 1, sizeof *t->perm_names);
    for (size_t i = 0; i < t->nperm; i++) t->perm_names[i] = hdb_strdup(spec->perm_names[i]);
    qsort(t->perm_names, t->nperm, sizeof *t->perm_names, str_cmp);
    atomic_store(&t->first_seq, 1);
    pthread_mutex_init(&t->trim_mu, NULL);
    pthread_mutex_init(&t->sub_mu, NULL);
    return t;
}

static void table_free(hdb_table *t) {
    hdb_commit_free(t->commit);
    for (size_t i = 0; i < t->nid; i++) hdb_free(t->id_names[i]);
    for (size_t i = 0; i < t->nperm; i++) hdb_free(t->perm_names[i]);
    hdb_free(t->id_names);
    hdb_free(t->perm_names);
    pthread_mutex_destroy(&t->trim_mu);
    pthread_mutex_destroy(&t->sub_mu);
    hdb_free(t->label);
    hdb_free(t);
}

int hdb_table_create(hdb_table **out, hdb_store *store, const hdb_table_spec *spec, char *err,
                     size_t errlen) {
    char pn[64], tn[64];
    cf_names(spec->id, pn, tn, sizeof pn);
    hdb_table *t = table_new(store, spec);
    int rc = hdb_store_cf_create(store, pn, &t->points, err, errlen);
    if (rc == HDB_OK && (rc = hdb_store_cf_create(store, tn, &t->timeline, err, errlen)) != HDB_OK) {
        hdb_store_cf_drop(store, t->points, NULL, 0);
        t->points = NULL;
    }
    if (rc != HDB_OK) {
        table_free(t);
        return rc;
    }
    t->commit = hdb_commit_create(store, 0, hdb__table_group_done, t);
    *out = t;
    return HDB_OK;
}

/* The first and last seq of the timeline (first = last + 1 = 1 when empty). */
static int timeline_bounds(hdb_table *t, uint64_t *first, uint64_t *last, char *err,
                           size_t errlen) {
    hdb_iter *it = hdb_iter_create(t->store, t->timeline, NULL);
    int rc = HDB_OK;
    *first = 1;
    *last = 0;
    for (int end = 0; end < 2 && rc == HDB_OK; end++) {
        if (end == 0) hdb_iter_seek_first(it);
        else hdb_iter_seek_last(it);
        if (!hdb_iter_valid(it)) {
            rc = hdb_iter_status(it, err, errlen);
            break;
        }
        size_t klen;
        const unsigned char *k = hdb_iter_key(it, &klen);
        if (klen != HDB_SEQ_KEY_LEN) {
            rc = hdb_errf(err, errlen, HDB_ECORRUPT, "%s: timeline key of %zu bytes", t->label,
                          klen);
            break;
        }
        if (end == 0) *first = hdb_get_be64(k);
        else *last = hdb_get_be64(k);
    }
    hdb_iter_free(it);
    return rc;
}

/* Counts the live points ('I' keys). */
static int count_points(hdb_table *t, int64_t *out, char *err, size_t errlen) {
    hdb_iter *it = hdb_iter_create(t->store, t->points, NULL);
    int64_t n = 0;
    for (hdb_iter_seek(it, "I", 1); hdb_iter_valid(it); hdb_iter_next(it)) {
        size_t klen;
        const unsigned char *k = hdb_iter_key(it, &klen);
        if (klen == 0 || k[0] != 'I') break;
        n++;
    }
    int rc = hdb_iter_status(it, err, errlen);
    hdb_iter_free(it);
    *out = n;
    return rc;
}

int hdb_table_open(hdb_table **out, hdb_store *store, const hdb_table_spec *spec, char *err,
                   size_t errlen) {
    char pn[64], tn[64];
    cf_names(spec->id, pn, tn, sizeof pn);
    hdb_cf *points = hdb_store_cf(store, pn), *timeline = hdb_store_cf(store, tn);
    if (points == NULL || timeline == NULL)
        return hdb_errf(err, errlen, HDB_ECORRUPT, "%s: column family %s is missing",
                        spec->label, points ? tn : pn);
    hdb_table *t = table_new(store, spec);
    t->points = points;
    t->timeline = timeline;
    uint64_t first, last;
    int64_t count;
    int rc = timeline_bounds(t, &first, &last, err, errlen);
    if (rc == HDB_OK) rc = count_points(t, &count, err, errlen);
    if (rc != HDB_OK) {
        t->points = t->timeline = NULL;
        table_free(t);
        return rc;
    }
    atomic_store(&t->first_seq, first);
    atomic_store(&t->count, count);
    atomic_store(&t->trim_held, true);
    t->commit = hdb_commit_create(store, last, hdb__table_group_done, t);
    *out = t;
    return HDB_OK;
}

void hdb_table_trim_start(hdb_table *t) {
    atomic_store(&t->trim_held, false);
    /* What every subscriber already let go of (a timeline written before trimming existed,
     * say) goes now rather than at the next snapshot. */
    char err[512];
    if (hdb_timeline_trim(&t->base, err, sizeof err) != HDB_OK)
        HDB_WARN("table", "%s: trim failed: %s", t->label, err);
}

void hdb_table_trim_pin(hdb_table *t) {
    pthread_mutex_lock(&t->trim_mu); /* a trim in progress holds it */
    atomic_fetch_add(&t->trim_pins, 1);
    pthread_mutex_unlock(&t->trim_mu);
}

void hdb_table_trim_unpin(hdb_table *t) {
    int was = atomic_fetch_sub(&t->trim_pins, 1);
    HDB_ASSERT(was > 0);
    if (was > 1) return;
    char err[512];
    if (hdb_timeline_trim(&t->base, err, sizeof err) != HDB_OK)
        HDB_WARN("table", "%s: trim failed: %s", t->label, err);
}

void hdb_table_close(hdb_table *t, bool drop) {
    if (t == NULL) return;
    HDB_ASSERT(t->nsubs == 0);
    if (drop) {
        char err[256];
        if (hdb_store_cf_drop(t->store, t->points, err, sizeof err) != HDB_OK)
            HDB_ERROR("table", "drop of %s points failed: %s", t->label, err);
        if (hdb_store_cf_drop(t->store, t->timeline, err, sizeof err) != HDB_OK)
            HDB_ERROR("table", "drop of %s timeline failed: %s", t->label, err);
    }
    table_free(t);
}

typedef struct {
    hdb_store *store;
    bool (*live)(void *arg, uint64_t id);
    void *arg;
    size_t dropped;
} orphan_ctx;

static void drop_if_orphan(const char *name, void *arg) {
    orphan_ctx *o = arg;
    const char *num = strncmp(name, "points.", 7) == 0     ? name + 7
                      : strncmp(name, "timeline.", 9) == 0 ? name + 9
                                                           : NULL;
    if (num == NULL || *num < '0' || *num > '9') return;
    char *end;
    unsigned long long id = strtoull(num, &end, 10);
    if (*end != '\0' || o->live(o->arg, id)) return;
    hdb_cf *cf = hdb_store_cf(o->store, name);
    char err[256];
    if (cf && hdb_store_cf_drop(o->store, cf, err, sizeof err) == HDB_OK) {
        HDB_WARN("table", "dropped column family %s, which no definition references (left by an "
                          "interrupted create or drop)",
                 name);
        o->dropped++;
    }
}

size_t hdb_table_drop_orphans(hdb_store *store, bool (*live)(void *arg, uint64_t id),
                              void *arg) {
    orphan_ctx o = {store, live, arg, 0};
    hdb_store_cf_foreach(store, drop_if_orphan, &o);
    return o.dropped;
}

const char *hdb_table_label(const hdb_table *t) {
    return t->label;
}

uint64_t hdb_table_id(const hdb_table *t) {
    return t->id;
}

uint64_t hdb_table_count(hdb_table *t) {
    int64_t n = atomic_load(&t->count);
    return n > 0 ? (uint64_t)n : 0;
}

uint64_t hdb_table_last_seq(hdb_table *t) {
    return hdb_commit_last_seq(t->commit);
}

hdb_timeline *hdb_table_timeline(hdb_table *t) {
    return &t->base;
}

int hdb_table_space_check(hdb_table *t, uint64_t bytes, char *err, size_t errlen) {
    return hdb_store_space_check(t->store, bytes, false, err, errlen);
}

/* ---------------------------------------------------------------- writes */

static int job_prepare(hdb_commit_job *cj, hdb_batch *b, uint64_t first_seq, uint64_t *nseq,
                       char *err, size_t errlen) {
    hdb_table_job *job = cj->arg;
    hdb_table_txn tx = {job->_t, b, job, hdb_arena_create(1 << 14)};
    job->_delta = 0;
    job->_time_us = now_us();
    int rc = job->prepare(job, &tx, first_seq, nseq, err, errlen);
    hdb_arena_free(tx.scratch);
    return rc;
}

static void job_applied(hdb_commit_job *cj) {
    hdb_table_job *job = cj->arg;
    atomic_fetch_add(&job->_t->count, job->_delta);
    if (job->applied) job->applied(job);
}

static void job_bind(hdb_table *t, hdb_table_job *job) {
    job->_t = t;
    job->_cj = (hdb_commit_job){.prepare = job_prepare, .applied = job_applied, .arg = job};
}

static void job_result(hdb_table_job *job) {
    job->rc = job->_cj.rc;
    job->err = job->_cj.err;
    job->first_seq = job->_cj.first_seq;
    job->nseq = job->_cj.nseq;
}

int hdb_table_commit(hdb_table *t, hdb_table_job *job) {
    job_bind(t, job);
    hdb_commit_submit(t->commit, &job->_cj);
    job_result(job);
    return job->rc;
}

int hdb_table_commit_all(hdb_table *const *ts, hdb_table_job *const *jobs, size_t n, char *err,
                         size_t errlen) {
    hdb_commit **qs = hdb_malloc((n ? n : 1) * sizeof *qs);
    hdb_commit_job **cjs = hdb_malloc((n ? n : 1) * sizeof *cjs);
    for (size_t i = 0; i < n; i++) {
        job_bind(ts[i], jobs[i]);
        qs[i] = ts[i]->commit;
        cjs[i] = &jobs[i]->_cj;
    }
    int rc = hdb_commit_submit_all(qs, cjs, n, err, errlen);
    for (size_t i = 0; i < n; i++) job_result(jobs[i]);
    hdb_free(qs);
    hdb_free(cjs);
    return rc;
}

int hdb_table_exclusive(hdb_table *t, int (*fn)(void *arg), void *arg) {
    return hdb_commit_exclusive(t->commit, fn, arg);
}

int hdb_table_txn_find(hdb_table_txn *tx, const hdb_point *p, hdb_arena *arena, hdb_row *out,
                       char *err, size_t errlen) {
    hdb_table *t = tx->t;
    hdb_buf key;
    memset(out, 0, sizeof *out);
    int rc = id_key(t, p->attrs, p->nattrs, arena, &key, err, errlen);
    if (rc != HDB_OK) return rc;
    unsigned char *val;
    size_t vlen;
    rc = hdb_batch_get(t->store, tx->b, t->points, key.p, key.len, arena, &val, &vlen, err,
                       errlen);
    if (rc == HDB_ENOTFOUND) return HDB_OK;
    if (rc != HDB_OK) return rc;
    if (vlen != 8)
        return hdb_errf(err, errlen, HDB_ECORRUPT, "%s: identity entry of %zu bytes", t->label,
                        vlen);
    uint64_t pid = hdb_get_be64(val);
    unsigned char pkey[HDB_PID_KEY_LEN];
    hdb_pid_key(pkey, pid);
    rc = hdb_batch_get(t->store, tx->b, t->points, pkey, sizeof pkey, arena, &val, &vlen, err,
                       errlen);
    if (rc == HDB_ENOTFOUND ||
        (rc == HDB_OK && hdb_record_decode(val, vlen, arena, &out->rec) != HDB_OK))
        return hdb_errf(err, errlen, HDB_ECORRUPT, "%s: point %" PRIu64 " is damaged", t->label,
                        pid);
    if (rc != HDB_OK) return rc;
    out->found = true;
    out->pid = pid;
    return HDB_OK;
}

static void put_entry(hdb_table_txn *tx, uint64_t seq, int op, uint64_t pid,
                      const hdb_point *p) {
    hdb_buf e;
    hdb_buf_init(&e, tx->scratch, 256);
    hdb_timeline_encode(&e, op, pid, tx->job->_time_us, p, seq);
    unsigned char tkey[HDB_SEQ_KEY_LEN];
    hdb_seq_key(tkey, seq);
    hdb_batch_put(tx->b, tx->t->timeline, tkey, sizeof tkey, e.p, e.len);
}

uint64_t hdb_table_txn_upsert(hdb_table_txn *tx, uint64_t seq, const hdb_point *p,
                              const hdb_row *old) {
    hdb_table *t = tx->t;
    uint64_t pid = seq;
    if (old->found) {
        pid = old->pid;
    } else {
        hdb_buf key;
        /* The caller found p's id attributes present (hdb_table_txn_find). */
        int rc = id_key(t, p->attrs, p->nattrs, tx->scratch, &key, NULL, 0);
        HDB_ASSERT(rc == HDB_OK);
        unsigned char pidv[8];
        hdb_put_be64(pidv, pid);
        hdb_batch_put(tx->b, t->points, key.p, key.len, pidv, 8);
        tx->job->_delta++;
    }
    unsigned char pkey[HDB_PID_KEY_LEN];
    hdb_pid_key(pkey, pid);
    hdb_buf rec;
    hdb_buf_init(&rec, tx->scratch, 256);
    hdb_record_encode(&rec, p, seq);
    hdb_batch_put(tx->b, t->points, pkey, sizeof pkey, rec.p, rec.len);
    put_entry(tx, seq, HDB_TL_UPSERT, pid, p);
    return pid;
}

uint64_t hdb_table_txn_delete(hdb_table_txn *tx, uint64_t seq, const hdb_point *tomb,
                              const hdb_row *old) {
    hdb_table *t = tx->t;
    if (!old->found) {
        /* A tombstone that matched nothing still takes its seq: seqs stay dense. */
        hdb_point none = {.attrs = tomb->attrs, .nattrs = tomb->nattrs, .deleted = true};
        put_entry(tx, seq, HDB_TL_DELETE, 0, &none);
        return 0;
    }
    const hdb_point *stored = &old->rec.point;
    hdb_buf key;
    int rc = id_key(t, stored->attrs, stored->nattrs, tx->scratch, &key, NULL, 0);
    HDB_ASSERT(rc == HDB_OK);
    unsigned char pkey[HDB_PID_KEY_LEN];
    hdb_pid_key(pkey, old->pid);
    hdb_batch_delete(tx->b, t->points, key.p, key.len);
    hdb_batch_delete(tx->b, t->points, pkey, sizeof pkey);
    /* The entry keeps the permanent attributes, so appliers find the point's split. */
    hdb_point perm = {.deleted = true};
    perm.attrs = hdb_arena_alloc(tx->scratch, (stored->nattrs ? stored->nattrs : 1) *
                                                  sizeof *perm.attrs);
    for (uint32_t i = 0; i < stored->nattrs; i++)
        if (is_permanent(t, stored->attrs[i].name)) perm.attrs[perm.nattrs++] = stored->attrs[i];
    put_entry(tx, seq, HDB_TL_DELETE, old->pid, &perm);
    tx->job->_delta--;
    return old->pid;
}

/* ---------------------------------------------------------------- reads */

typedef struct {
    hdb_table *t;
    hdb_snap *snap;
    uint64_t seq;
} snap_ctx;

static int take_snapshot(void *arg) {
    snap_ctx *c = arg;
    c->snap = hdb_store_snapshot(c->t->store);
    c->seq = hdb_commit_last_seq(c->t->commit);
    return HDB_OK;
}

hdb_snap *hdb_table_snapshot(hdb_table *t, uint64_t *seq) {
    if (seq == NULL) return hdb_store_snapshot(t->store); /* no seq: no need to wait */
    snap_ctx c = {t, NULL, 0};
    hdb_commit_exclusive(t->commit, take_snapshot, &c);
    *seq = c.seq;
    return c.snap;
}

void hdb_table_snapshot_release(hdb_table *t, hdb_snap *snap) {
    hdb_snap_release(t->store, snap);
}

int hdb_table_get_pids(hdb_table *t, const hdb_snap *snap, const uint64_t *pids, size_t n,
                       hdb_arena *arena, hdb_row *out, char *err, size_t errlen) {
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
    int rc = hdb_store_multi_get(t->store, t->points, snap, n, keys, klens, arena, vals, vlens,
                                 err, errlen);
    if (rc != HDB_OK) return rc;
    for (size_t i = 0; i < n; i++) {
        out[i].found = pids[i] != 0 && vals[i] != NULL;
        out[i].pid = pids[i];
        if (!out[i].found) continue;
        if (hdb_record_decode(vals[i], vlens[i], arena, &out[i].rec) != HDB_OK)
            return hdb_errf(err, errlen, HDB_ECORRUPT, "%s: point %" PRIu64 " is damaged",
                            t->label, pids[i]);
    }
    return HDB_OK;
}

int hdb_table_get_ids(hdb_table *t, const hdb_snap *snap, size_t n, hdb_attr *const *ids,
                      const uint32_t *nids, hdb_arena *arena, hdb_row *out, char *err,
                      size_t errlen) {
    const unsigned char **keys = hdb_arena_alloc(arena, (n ? n : 1) * sizeof *keys);
    size_t *klens = hdb_arena_alloc(arena, (n ? n : 1) * sizeof *klens);
    for (size_t i = 0; i < n; i++) {
        hdb_buf key;
        int rc = id_key(t, ids[i], nids[i], arena, &key, err, errlen);
        if (rc != HDB_OK) return hdb_err_prefix(err, errlen, rc, "ids[%zu].", i);
        keys[i] = key.p;
        klens[i] = key.len;
    }
    unsigned char **vals = hdb_arena_alloc(arena, (n ? n : 1) * sizeof *vals);
    size_t *vlens = hdb_arena_alloc(arena, (n ? n : 1) * sizeof *vlens);
    uint64_t *pids = hdb_arena_alloc(arena, (n ? n : 1) * sizeof *pids);
    hdb_snap *own = snap ? NULL : hdb_store_snapshot(t->store);
    const hdb_snap *s = snap ? snap : own;
    int rc = hdb_store_multi_get(t->store, t->points, s, n, keys, klens, arena, vals, vlens, err,
                                 errlen);
    for (size_t i = 0; rc == HDB_OK && i < n; i++) {
        pids[i] = 0;
        if (vals[i] == NULL) continue;
        if (vlens[i] != 8)
            rc = hdb_errf(err, errlen, HDB_ECORRUPT, "%s: identity entry of %zu bytes", t->label,
                          vlens[i]);
        else
            pids[i] = hdb_get_be64(vals[i]);
    }
    if (rc == HDB_OK) rc = hdb_table_get_pids(t, s, pids, n, arena, out, err, errlen);
    hdb_snap_release(t->store, own);
    return rc;
}

int hdb_table_scan(hdb_table *t, const hdb_snap *snap, uint64_t *cursor, size_t max,
                   hdb_arena *arena, hdb_row *out, size_t *n, char *err, size_t errlen) {
    *n = 0;
    if (max == 0) return HDB_OK;
    unsigned char start[HDB_PID_KEY_LEN];
    hdb_pid_key(start, *cursor);
    hdb_iter *it = hdb_iter_create(t->store, t->points, snap);
    int rc = HDB_OK;
    for (hdb_iter_seek(it, start, sizeof start); *n < max && hdb_iter_valid(it);
         hdb_iter_next(it)) {
        size_t klen, vlen;
        const unsigned char *k = hdb_iter_key(it, &klen);
        if (klen == 0 || k[0] != 'P') break;
        if (klen != HDB_PID_KEY_LEN) {
            rc = hdb_errf(err, errlen, HDB_ECORRUPT, "%s: point key of %zu bytes", t->label, klen);
            break;
        }
        uint64_t pid = hdb_get_be64(k + 1);
        /* The record outlives the iterator's position: decode a copy. */
        const unsigned char *v = hdb_iter_value(it, &vlen);
        v = hdb_arena_memdup(arena, v, vlen);
        hdb_row *r = &out[*n];
        if (hdb_record_decode(v, vlen, arena, &r->rec) != HDB_OK) {
            rc = hdb_errf(err, errlen, HDB_ECORRUPT, "%s: point %" PRIu64 " cannot be decoded",
                          t->label, pid);
            break;
        }
        r->found = true;
        r->pid = pid;
        (*n)++;
        *cursor = pid + 1;
    }
    if (rc == HDB_OK) rc = hdb_iter_status(it, err, errlen);
    hdb_iter_free(it);
    return rc;
}

int hdb_table_scan_ids(hdb_table *t, const hdb_snap *snap, const unsigned char *after,
                       size_t alen, size_t max, hdb_arena *arena, hdb_row *out,
                       const unsigned char **keys, size_t *klens, size_t *n, char *err,
                       size_t errlen) {
    *n = 0;
    if (max == 0) return HDB_OK;
    hdb_snap *own = snap ? NULL : hdb_store_snapshot(t->store);
    const hdb_snap *s = snap ? snap : own;
    unsigned char *start = hdb_arena_alloc(arena, alen + 1);
    start[0] = 'I';
    if (alen) memcpy(start + 1, after, alen);
    uint64_t *pids = hdb_arena_alloc(arena, max * sizeof *pids);
    size_t np = 0;
    hdb_iter *it = hdb_iter_create(t->store, t->points, s);
    int rc = HDB_OK;
    for (hdb_iter_seek(it, start, alen + 1); np < max && hdb_iter_valid(it); hdb_iter_next(it)) {
        size_t klen, vlen;
        const unsigned char *k = hdb_iter_key(it, &klen);
        if (klen == 0 || k[0] != 'I') break;
        if (alen && klen == alen + 1 && memcmp(k + 1, after, alen) == 0) continue; /* after */
        const unsigned char *v = hdb_iter_value(it, &vlen);
        if (vlen != 8) {
            rc = hdb_errf(err, errlen, HDB_ECORRUPT, "%s: id entry of %zu bytes", t->label, vlen);
            break;
        }
        keys[np] = hdb_arena_memdup(arena, k + 1, klen - 1);
        klens[np] = klen - 1;
        pids[np++] = hdb_get_be64(v);
    }
    if (rc == HDB_OK) rc = hdb_iter_status(it, err, errlen);
    hdb_iter_free(it);
    if (rc == HDB_OK) rc = hdb_table_get_pids(t, s, pids, np, arena, out, err, errlen);
    for (size_t i = 0; rc == HDB_OK && i < np; i++)
        if (!out[i].found)
            rc = hdb_errf(err, errlen, HDB_ECORRUPT,
                          "%s: an id entry names point %" PRIu64 ", which is missing", t->label,
                          pids[i]);
    hdb_snap_release(t->store, own);
    if (rc == HDB_OK) *n = np;
    return rc;
}
