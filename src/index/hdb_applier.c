/*
 * hdb_applier.c - load or build an index, then follow the timeline and snapshot.
 *
 * Concurrency: the applier thread is the only writer of its index. `mu` guards the state,
 * detail, snapshot fields and the stop flag; `cv` wakes the thread (commits, stop) and the
 * min_seq waiters (progress). applied_seq lives in the index (atomic).
 */
#include "hdb_applier.h"

#include "hdb_arena.h"
#include "hdb_clock.h"
#include "hdb_commit.h"
#include "hdb_err.h"
#include "hdb_log.h"
#include "hdb_mem.h"
#include "hdb_record.h"
#include "hdb_store.h"

#include <inttypes.h>
#include <stdarg.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

struct hdb_applier {
    hdb_applier_config cfg;
    char *label, *dir;
    char **split_names;
    hdb_attr_type *split_types;
    pthread_t thread;
    bool started, joined;

    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool stop, final_snapshot, notified;
    int state;
    char detail[256];
    uint64_t snapshot_seq;
    int64_t snapshot_time_us;
    int64_t last_snapshot_ns; /* CLOCK_MONOTONIC of the last save or load */

    _Atomic(hdb_index *) index; /* set once, before the state becomes READY */
};

static void set_state(hdb_applier *a, int state, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void set_state(hdb_applier *a, int state, const char *fmt, ...) {
    pthread_mutex_lock(&a->mu);
    a->state = state;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(a->detail, sizeof a->detail, fmt, ap);
    va_end(ap);
    pthread_cond_broadcast(&a->cv);
    pthread_mutex_unlock(&a->mu);
}

static bool stopping(hdb_applier *a) {
    pthread_mutex_lock(&a->mu);
    bool s = a->stop;
    pthread_mutex_unlock(&a->mu);
    return s;
}

/* ---------------------------------------------------------------- snapshots */

static int save_snapshot(hdb_applier *a, hdb_index *ix) {
    char err[512];
    uint64_t seq = hdb_index_applied(ix);
    int64_t t0 = hdb_mono_ns();
    int rc = hdb_index_save(ix, a->dir, seq, err, sizeof err);
    if (rc != HDB_OK) {
        HDB_ERROR("applier", "%s: snapshot at seq %" PRIu64 " failed: %s", a->label, seq, err);
        pthread_mutex_lock(&a->mu);
        a->last_snapshot_ns = hdb_mono_ns(); /* retry after another interval, not in a loop */
        pthread_mutex_unlock(&a->mu);
        return rc;
    }
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    pthread_mutex_lock(&a->mu);
    a->snapshot_seq = seq;
    a->snapshot_time_us = (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
    a->last_snapshot_ns = hdb_mono_ns();
    pthread_mutex_unlock(&a->mu);
    HDB_INFO("applier", "%s: snapshot at seq %" PRIu64 " (%" PRIu64 " points) in %.1f ms",
             a->label, seq, hdb_index_size(ix), (double)(hdb_mono_ns() - t0) / 1e6);
    return HDB_OK;
}

static bool snapshot_due(hdb_applier *a, hdb_index *ix) {
    uint64_t applied = hdb_index_applied(ix);
    pthread_mutex_lock(&a->mu);
    bool due = a->cfg.snapshot_interval_ms > 0 && applied > a->snapshot_seq &&
               applied - a->snapshot_seq >= a->cfg.snapshot_min_entries &&
               hdb_mono_ns() - a->last_snapshot_ns >= a->cfg.snapshot_interval_ms * 1000000;
    pthread_mutex_unlock(&a->mu);
    return due;
}

/* ---------------------------------------------------------------- build */

typedef struct {
    hdb_applier *a;
    hdb_snap *snap;
    uint64_t seq;
} snap_ctx;

/* Runs with the commit queue held: a store snapshot and the seq it contains, together. */
static int take_snapshot(void *arg) {
    snap_ctx *c = arg;
    c->snap = hdb_store_snapshot(c->a->cfg.store);
    c->seq = hdb_commit_last_seq(c->a->cfg.commit);
    return HDB_OK;
}

/* Fills ix with every point of the data source; returns the seq the points reflect. */
static int build(hdb_applier *a, hdb_index *ix, uint64_t *seq, char *err, size_t errlen) {
    snap_ctx c = {a, NULL, 0};
    hdb_commit_exclusive(a->cfg.commit, take_snapshot, &c);
    hdb_arena *arena = hdb_arena_create(1 << 20);
    size_t cap = a->cfg.batch ? a->cfg.batch : 1024;
    hdb_index_op *ops = hdb_malloc(cap * sizeof *ops);
    hdb_record *recs = hdb_malloc(cap * sizeof *recs);
    hdb_iter *it = hdb_iter_create(a->cfg.store, a->cfg.points_cf, c.snap);
    uint64_t done = 0;
    size_t n = 0;
    int rc = HDB_OK;
    int64_t t0 = hdb_mono_ns();
    for (hdb_iter_seek(it, "P", 1);; hdb_iter_next(it)) {
        bool valid = hdb_iter_valid(it);
        size_t klen = 0, vlen;
        const unsigned char *k = valid ? hdb_iter_key(it, &klen) : NULL;
        valid = valid && klen > 0 && k[0] == 'P';
        if (valid) {
            if (klen != HDB_PID_KEY_LEN) {
                rc = hdb_errf(err, errlen, HDB_ECORRUPT, "point key of %zu bytes", klen);
                break;
            }
            /* The record is applied after the iterator has moved on: decode a copy. */
            const unsigned char *v = hdb_iter_value(it, &vlen);
            v = hdb_arena_memdup(arena, v, vlen);
            if (hdb_record_decode(v, vlen, arena, &recs[n]) != HDB_OK) {
                rc = hdb_errf(err, errlen, HDB_ECORRUPT, "point %" PRIu64 " cannot be decoded",
                              hdb_get_be64(k + 1));
                break;
            }
            ops[n] = (hdb_index_op){.label = (int64_t)hdb_get_be64(k + 1), .remove = false,
                                    .point = &recs[n].point};
            n++;
        }
        if (n == cap || (!valid && n > 0)) {
            if ((rc = hdb_index_apply(ix, n, ops, err, errlen)) != HDB_OK) break;
            done += n;
            n = 0;
            hdb_arena_reset(arena);
            set_state(a, HDB_INDEX_BUILDING, "building: %" PRIu64 " points loaded", done);
            if (stopping(a)) {
                rc = hdb_errf(err, errlen, HDB_EUNAVAIL, "stopped while building");
                break;
            }
        }
        if (!valid) break;
    }
    if (rc == HDB_OK) rc = hdb_iter_status(it, err, errlen);
    hdb_iter_free(it);
    hdb_snap_release(a->cfg.store, c.snap);
    hdb_free(ops);
    hdb_free(recs);
    hdb_arena_free(arena);
    if (rc == HDB_OK) {
        *seq = c.seq;
        HDB_INFO("applier", "%s: built from %" PRIu64 " points (seq %" PRIu64 ") in %.2f s",
                 a->label, done, c.seq, (double)(hdb_mono_ns() - t0) / 1e9);
    }
    return rc;
}

/* ---------------------------------------------------------------- follow */

/* Applies committed entries after the index's applied seq, at most one batch. Returns the
 * number applied (0 when caught up) or a negative rc. */
static long apply_batch(hdb_applier *a, hdb_index *ix, hdb_arena *arena, char *err,
                        size_t errlen) {
    uint64_t applied = hdb_index_applied(ix);
    uint64_t last = hdb_commit_last_seq(a->cfg.commit);
    if (applied >= last) return 0;
    size_t cap = a->cfg.batch ? a->cfg.batch : 1024;
    if (last - applied < cap) cap = (size_t)(last - applied);
    hdb_index_op *ops = hdb_arena_alloc(arena, cap * sizeof *ops);
    hdb_timeline_entry *ents = hdb_arena_alloc(arena, cap * sizeof *ents);
    size_t n = 0, nops = 0;
    unsigned char key[HDB_SEQ_KEY_LEN];
    hdb_seq_key(key, applied + 1);
    hdb_iter *it = hdb_iter_create(a->cfg.store, a->cfg.timeline_cf, NULL);
    int rc = HDB_OK;
    for (hdb_iter_seek(it, key, sizeof key); n < cap && hdb_iter_valid(it); hdb_iter_next(it)) {
        size_t klen, vlen;
        const unsigned char *k = hdb_iter_key(it, &klen);
        uint64_t seq = klen == HDB_SEQ_KEY_LEN ? hdb_get_be64(k) : 0;
        if (seq != applied + 1 + n) {
            rc = hdb_errf(err, errlen, HDB_ECORRUPT,
                          "timeline entry %" PRIu64 " is missing (found %" PRIu64 ")",
                          applied + 1 + n, seq);
            break;
        }
        /* Entries are applied after the iterator has moved on: decode a copy. */
        const unsigned char *v = hdb_iter_value(it, &vlen);
        v = hdb_arena_memdup(arena, v, vlen);
        hdb_timeline_entry *e = &ents[n];
        if (hdb_timeline_decode(v, vlen, arena, e) != HDB_OK) {
            rc = hdb_errf(err, errlen, HDB_ECORRUPT, "timeline entry %" PRIu64 " is damaged", seq);
            break;
        }
        n++;
        if (e->op == HDB_TL_DELETE && e->pid == 0) continue; /* matched no point */
        ops[nops++] = (hdb_index_op){.label = (int64_t)e->pid, .remove = e->op == HDB_TL_DELETE,
                                     .point = &e->rec.point};
    }
    if (rc == HDB_OK) rc = hdb_iter_status(it, err, errlen);
    hdb_iter_free(it);
    if (rc == HDB_OK && n < cap)
        rc = hdb_errf(err, errlen, HDB_ECORRUPT, "timeline ends at %" PRIu64 ", before %" PRIu64,
                      applied + n, applied + cap);
    if (rc == HDB_OK) rc = hdb_index_apply(ix, nops, ops, err, errlen);
    if (rc != HDB_OK) return rc;
    hdb_index_set_applied(ix, applied + n);
    pthread_mutex_lock(&a->mu);
    pthread_cond_broadcast(&a->cv); /* min_seq waiters */
    pthread_mutex_unlock(&a->mu);
    return (long)n;
}

/* Applies until caught up (or stopped, unless `drain`). */
static int catch_up(hdb_applier *a, hdb_index *ix, bool drain, char *err, size_t errlen) {
    hdb_arena *arena = hdb_arena_create(1 << 20);
    long n;
    do {
        hdb_arena_reset(arena);
        n = apply_batch(a, ix, arena, err, errlen);
    } while (n > 0 && (drain || !stopping(a)));
    hdb_arena_free(arena);
    return n < 0 ? (int)n : HDB_OK;
}

static void fail(hdb_applier *a, int rc, const char *err) {
    HDB_ERROR("applier", "%s: stopped following its data source: %s (%s)", a->label, err,
              hdb_strerror(rc));
    set_state(a, HDB_INDEX_FAILED, "%s", err);
}

static void *run(void *arg) {
    hdb_applier *a = arg;
    char err[512];
    hdb_index *ix = NULL;
    int rc;
    uint64_t seq;
    int64_t t0 = hdb_mono_ns();

    if (a->cfg.load_snapshot) {
        int64_t t_us;
        rc = hdb_index_load(&ix, &a->cfg.params, a->dir, &seq, &t_us, err, sizeof err);
        if (rc == HDB_OK) {
            uint64_t last = hdb_commit_last_seq(a->cfg.commit);
            char range[64] = "";
            if (last > seq)
                snprintf(range, sizeof range, " (%" PRIu64 "..%" PRIu64 ")", seq + 1, last);
            HDB_INFO("applier", "%s: loaded snapshot at seq %" PRIu64 " (%" PRIu64 " points) in "
                     "%.1f ms; replaying %" PRIu64 " timeline entries%s",
                     a->label, seq, hdb_index_size(ix), (double)(hdb_mono_ns() - t0) / 1e6,
                     last > seq ? last - seq : 0, range);
            pthread_mutex_lock(&a->mu);
            a->snapshot_seq = seq;
            a->snapshot_time_us = t_us;
            a->last_snapshot_ns = hdb_mono_ns();
            pthread_mutex_unlock(&a->mu);
            if (seq > last) {
                /* The snapshot claims more than the timeline holds: not ours to trust. */
                HDB_WARN("applier", "%s: snapshot seq %" PRIu64 " is past the timeline (%" PRIu64
                         "); rebuilding from the data source", a->label, seq, last);
                hdb_index_free(ix);
                ix = NULL;
            }
        } else if (rc == HDB_ENOTFOUND) {
            HDB_INFO("applier", "%s: no snapshot; building from the data source", a->label);
        } else {
            HDB_WARN("applier", "%s: snapshot unusable (%s); rebuilding from the data source",
                     a->label, err);
        }
    }
    if (ix == NULL) {
        set_state(a, HDB_INDEX_BUILDING, "building: 0 points loaded");
        if ((rc = hdb_index_create(&ix, &a->cfg.params, err, sizeof err)) != HDB_OK) {
            fail(a, rc, err);
            goto idle;
        }
        atomic_store(&a->index, ix); /* owned from here on, though not yet searchable */
        if ((rc = build(a, ix, &seq, err, sizeof err)) != HDB_OK) {
            if (rc != HDB_EUNAVAIL) fail(a, rc, err);
            goto idle;
        }
        hdb_index_set_applied(ix, seq);
        if (seq > 0) save_snapshot(a, ix);
    } else {
        atomic_store(&a->index, ix);
    }
    /* Replay the tail before serving, so a restart serves what it served before it stopped. */
    if ((rc = catch_up(a, ix, false, err, sizeof err)) != HDB_OK) {
        fail(a, rc, err);
        goto idle;
    }
    set_state(a, HDB_INDEX_READY, "%s", "");
    HDB_INFO("applier", "%s: ready at seq %" PRIu64 " after %.2f s", a->label,
             hdb_index_applied(ix), (double)(hdb_mono_ns() - t0) / 1e9);

    for (;;) {
        pthread_mutex_lock(&a->mu);
        while (!a->stop && !a->notified &&
               hdb_index_applied(ix) >= hdb_commit_last_seq(a->cfg.commit)) {
            /* Wake up now and then for periodic snapshots. */
            struct timespec ts = hdb_mono_timespec(hdb_mono_ns() + 1000000000);
            pthread_cond_timedwait(&a->cv, &a->mu, &ts);
            if (a->cfg.snapshot_interval_ms > 0) break;
        }
        a->notified = false;
        bool stop = a->stop;
        pthread_mutex_unlock(&a->mu);
        if (stop) break;
        if ((rc = catch_up(a, ix, false, err, sizeof err)) != HDB_OK) {
            fail(a, rc, err);
            goto idle;
        }
        if (snapshot_due(a, ix)) save_snapshot(a, ix);
    }
    pthread_mutex_lock(&a->mu);
    bool final = a->final_snapshot;
    pthread_mutex_unlock(&a->mu);
    if (final) {
        if ((rc = catch_up(a, ix, true, err, sizeof err)) != HDB_OK) {
            fail(a, rc, err);
            return NULL;
        }
        pthread_mutex_lock(&a->mu);
        bool changed = hdb_index_applied(ix) != a->snapshot_seq;
        pthread_mutex_unlock(&a->mu);
        if (changed) save_snapshot(a, ix);
    }
    return NULL;
idle:
    /* Failed or stopped early: wait for stop without spinning. */
    pthread_mutex_lock(&a->mu);
    while (!a->stop) pthread_cond_wait(&a->cv, &a->mu);
    pthread_mutex_unlock(&a->mu);
    return NULL;
}

/* ---------------------------------------------------------------- public */

int hdb_applier_start(hdb_applier **out, const hdb_applier_config *c, char *err, size_t errlen) {
    hdb_applier *a = hdb_calloc(1, sizeof *a);
    a->cfg = *c;
    a->label = hdb_strdup(c->label);
    a->dir = hdb_strdup(c->snapshot_dir);
    size_t ns = c->params.nsplit;
    if (ns) {
        a->split_names = hdb_calloc(ns, sizeof *a->split_names);
        a->split_types = hdb_calloc(ns, sizeof *a->split_types);
        for (size_t i = 0; i < ns; i++) {
            a->split_names[i] = hdb_strdup(c->params.split_names[i]);
            a->split_types[i] = c->params.split_types[i];
        }
    }
    a->cfg.params.split_names = (const char *const *)a->split_names;
    a->cfg.params.split_types = a->split_types;
    a->cfg.label = a->label;
    a->cfg.snapshot_dir = a->dir;
    a->state = HDB_INDEX_BUILDING;
    snprintf(a->detail, sizeof a->detail, "starting");
    a->last_snapshot_ns = hdb_mono_ns();
    pthread_mutex_init(&a->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&a->cv, &ca);
    pthread_condattr_destroy(&ca);
    int e = pthread_create(&a->thread, NULL, run, a);
    if (e != 0) {
        hdb_errf(err, errlen, HDB_EINTERNAL, "cannot start the applier thread: %s", strerror(e));
        a->joined = true;
        hdb_applier_free(a);
        return HDB_EINTERNAL;
    }
    a->started = true;
    *out = a;
    return HDB_OK;
}

void hdb_applier_notify(hdb_applier *a) {
    pthread_mutex_lock(&a->mu);
    a->notified = true;
    pthread_cond_broadcast(&a->cv);
    pthread_mutex_unlock(&a->mu);
}

static void describe_unavailable(hdb_applier *a, char *err, size_t errlen) {
    if (a->state == HDB_INDEX_FAILED)
        hdb_errf(err, errlen, HDB_EUNAVAIL, "index %s failed: %s", a->label, a->detail);
    else if (a->stop)
        hdb_errf(err, errlen, HDB_EUNAVAIL, "index %s is stopping", a->label);
    else
        hdb_errf(err, errlen, HDB_EUNAVAIL, "index %s is not ready yet (%s)", a->label,
                 a->detail);
}

int hdb_applier_index(hdb_applier *a, hdb_index **out, char *err, size_t errlen) {
    pthread_mutex_lock(&a->mu);
    int rc = HDB_OK;
    if (a->state != HDB_INDEX_READY) {
        describe_unavailable(a, err, errlen);
        rc = HDB_EUNAVAIL;
    } else {
        *out = atomic_load(&a->index);
    }
    pthread_mutex_unlock(&a->mu);
    return rc;
}

int hdb_applier_wait(hdb_applier *a, uint64_t seq, int64_t deadline_ns, char *err,
                     size_t errlen) {
    int rc = HDB_OK;
    pthread_mutex_lock(&a->mu);
    for (;;) {
        hdb_index *ix = atomic_load(&a->index);
        if (a->state == HDB_INDEX_READY && ix && hdb_index_applied(ix) >= seq) break;
        if (a->state == HDB_INDEX_FAILED || a->stop) {
            describe_unavailable(a, err, errlen);
            rc = HDB_EUNAVAIL;
            break;
        }
        if (hdb_mono_ns() >= deadline_ns) {
            rc = hdb_errf(err, errlen, HDB_ETIMEOUT,
                          "min_seq: index %s had applied seq %" PRIu64 " of %" PRIu64
                          " when the wait ended",
                          a->label, ix ? hdb_index_applied(ix) : 0, seq);
            break;
        }
        int64_t now = hdb_mono_ns(), until = deadline_ns;
        if (until - now > 100000000) until = now + 100000000; /* re-check at least every 100 ms */
        struct timespec ts = hdb_mono_timespec(until);
        pthread_cond_timedwait(&a->cv, &a->mu, &ts);
    }
    pthread_mutex_unlock(&a->mu);
    return rc;
}

void hdb_applier_status_get(hdb_applier *a, hdb_applier_status *st) {
    pthread_mutex_lock(&a->mu);
    hdb_index *ix = atomic_load(&a->index);
    st->state = a->state;
    st->applied_seq = ix ? hdb_index_applied(ix) : 0;
    st->snapshot_seq = a->snapshot_seq;
    st->snapshot_time_us = a->snapshot_time_us;
    snprintf(st->detail, sizeof st->detail, "%s", a->detail);
    pthread_mutex_unlock(&a->mu);
    if (st->state == HDB_INDEX_READY && ix) hdb_index_describe(ix, st->detail, sizeof st->detail);
}

void hdb_applier_stop(hdb_applier *a, bool final_snapshot) {
    if (a == NULL || a->joined) return;
    pthread_mutex_lock(&a->mu);
    a->stop = true;
    a->final_snapshot = final_snapshot;
    pthread_cond_broadcast(&a->cv);
    pthread_mutex_unlock(&a->mu);
    pthread_join(a->thread, NULL);
    a->joined = true;
}

void hdb_applier_free(hdb_applier *a) {
    if (a == NULL) return;
    HDB_ASSERT(a->joined);
    hdb_index_free(atomic_load(&a->index));
    for (size_t i = 0; i < a->cfg.params.nsplit; i++) hdb_free(a->split_names[i]);
    hdb_free(a->split_names);
    hdb_free(a->split_types);
    pthread_cond_destroy(&a->cv);
    pthread_mutex_destroy(&a->mu);
    hdb_free(a->label);
    hdb_free(a->dir);
    hdb_free(a);
}
