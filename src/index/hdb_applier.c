/*
 * hdb_applier.c - load or build an index, then follow the timeline and snapshot, as a task on
 * the shared worker pool (hdb_workpool.h).
 *
 * The task is a small state machine (phase): START loads the snapshot (a heavy piece) or
 * begins a build; BUILD inserts the points slice by slice; FOLLOW applies one step of timeline
 * entries per run, or saves a snapshot (heavy) when one is due. Each run does one piece of
 * about HDB_APPLIER_STEP_SECONDS and submits the task again while there is more, so it goes
 * behind the other indices' tasks; caught up, it holds no thread until a commit (on_commit)
 * or a snapshot timer submits it.
 *
 * Concurrency: the running task is the only writer of its index, and only one run of it is
 * under way at a time, so the task's own fields (marked "task") need no lock; after
 * hdb_workpool_cancel returns (in hdb_applier_stop) the stopping thread owns them. `mu`
 * guards the state, detail, snapshot fields and the stop flag; `cv` wakes the min_seq waiters
 * (progress, state changes, stop). applied_seq lives in the index (atomic).
 */
#include "hdb_applier.h"

#include "hdb_arena.h"
#include "hdb_clock.h"
#include "hdb_err.h"
#include "hdb_log.h"
#include "hdb_mem.h"
#include "hdb_table.h"
#include "hdb_timeline.h"
#include "hdb_workpool.h"

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
    char **indexed_names;
    hdb_attr_type *split_types;
    hdb_work work; /* the task on cfg.pool */
    bool stopped;  /* hdb_applier_stop is done (owner only) */

    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool stop;
    bool interrupted; /* hdb_applier_interrupt: waiters return, the task goes on */
    double rate;      /* entries per second that apply steps have managed (EWMA); 0: unknown */
    double last_rate; /* ...in the last step that could tell */
    int state;
    char detail[256];
    uint64_t snapshot_seq;
    int64_t snapshot_time_us;
    int64_t last_snapshot_ns; /* CLOCK_MONOTONIC of the last save or load */
    bool snapshot_waits;      /* the last save was refused for lack of disk space */
    int64_t work_ns;          /* time spent in apply steps since the last save or load */
    int64_t last_save_ns;     /* how long the last save took */

    /* The task's own (see Concurrency above). */
    int phase;                  /* PH_* */
    int64_t t0;                 /* when the applier started */
    bool ready;                 /* READY was reached */
    bool save_due;              /* the next piece is a snapshot */
    bool backlog;               /* the last step left entries behind it */
    bool trim_rebuilt;          /* rebuilt once because the timeline had dropped its place */
    int64_t mark_ns;            /* end of the last step (rate tracking) */
    hdb_snap *snap;             /* a build's table snapshot, until the build ends */
    uint64_t snap_seq, build_cursor, build_done;
    int64_t build_t0;
    size_t window;              /* entries per apply step: cfg.batch at most, fewer when an
                                 * engine is slow (see apply_batch) */
    _Atomic(hdb_index *) index; /* set when created or loaded; replaced only by a rebuild
                                 * before the state becomes READY */
    hdb_timeline_sub sub;       /* subscribed from start to free */
    bool subscribed;
};

enum { PH_START, PH_BUILD, PH_FOLLOW, PH_FAILED };

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

/* A generous guess of a snapshot's size, for the free-space check. */
static uint64_t snapshot_bytes(hdb_index *ix) {
    const hdb_engine_spec *es = hdb_index_engine_spec(ix);
    uint64_t per_point = 64 + (es->algo == HDB_ALGO_SPARSE ? 256 : 4 * (uint64_t)es->dim);
    if (es->algo == HDB_ALGO_HNSW) per_point += 8 * 2 * (uint64_t)(es->m ? es->m : 16);
    return hdb_index_size(ix) * per_point;
}

static int save_snapshot(hdb_applier *a, hdb_index *ix) {
    char err[512];
    uint64_t seq = hdb_index_applied(ix);
    int64_t t0 = hdb_mono_ns();
    int rc = hdb_table_space_check(a->cfg.table, snapshot_bytes(ix), err, sizeof err);
    if (rc == HDB_OK) rc = hdb_index_save(ix, a->dir, seq, err, sizeof err);
    if (rc != HDB_OK) {
        /* A full disk is said once (until a snapshot succeeds again); other failures always. */
        if (rc != HDB_EFULL)
            HDB_ERROR("applier", "%s: snapshot at seq %" PRIu64 " failed: %s", a->label, seq, err);
        else if (!a->snapshot_waits)
            HDB_WARN("applier", "%s: snapshots wait until the disk has room: %s", a->label, err);
        pthread_mutex_lock(&a->mu);
        a->snapshot_waits = rc == HDB_EFULL;
        a->last_snapshot_ns = hdb_mono_ns(); /* retry after another interval, not in a loop */
        a->work_ns = 0;
        pthread_mutex_unlock(&a->mu);
        return rc;
    }
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    pthread_mutex_lock(&a->mu);
    a->snapshot_seq = seq;
    a->snapshot_waits = false;
    a->work_ns = 0;
    a->last_save_ns = hdb_mono_ns() - t0;
    a->snapshot_time_us = (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
    a->last_snapshot_ns = hdb_mono_ns();
    pthread_mutex_unlock(&a->mu);
    HDB_INFO("applier", "%s: snapshot at seq %" PRIu64 " (%" PRIu64 " points) in %.1f ms",
             a->label, seq, hdb_index_size(ix), (double)(hdb_mono_ns() - t0) / 1e6);
    /* Durable now: a restart replays from seq + 1 at the earliest. */
    hdb_timeline_keep_from(a->cfg.timeline, &a->sub, seq + 1);
    return HDB_OK;
}

static bool snapshot_due(hdb_applier *a, hdb_index *ix) {
    uint64_t applied = hdb_index_applied(ix);
    pthread_mutex_lock(&a->mu);
    uint64_t fresh = applied > a->snapshot_seq ? applied - a->snapshot_seq : 0;
    int64_t since = hdb_mono_ns() - a->last_snapshot_ns;
    bool due = (a->cfg.snapshot_interval_ms > 0 && fresh > 0 &&
                fresh >= a->cfg.snapshot_min_entries &&
                since >= a->cfg.snapshot_interval_ms * 1000000) ||
               (a->cfg.snapshot_every_entries > 0 && fresh >= a->cfg.snapshot_every_entries &&
                !a->snapshot_waits) ||
               (a->cfg.snapshot_every_apply_ms > 0 && fresh > 0 && !a->snapshot_waits &&
                a->work_ns >= a->cfg.snapshot_every_apply_ms * 1000000 &&
                a->work_ns >= 4 * a->last_save_ns);
    pthread_mutex_unlock(&a->mu);
    return due;
}

/* ---------------------------------------------------------------- build */

/* How long one apply step (and one slice of a build) should take at most. The applied seq
 * moves (and min_seq waiters, lag bounds and a stop see progress) only between steps, so a
 * step of 4,096 HNSW updates of large vectors, which can take tens of seconds, would hold all
 * of them up that long; and a task that keeps a pool thread longer keeps other indices from
 * it. */
#define STEP_TARGET_NS ((int64_t)(HDB_APPLIER_STEP_SECONDS * 1e9))

/* Releases the table snapshot of a build that ended or was cut short. */
static void build_end(hdb_applier *a) {
    if (a->snap) hdb_table_snapshot_release(a->cfg.table, a->snap);
    a->snap = NULL;
}

/* Replaces the applier's index by a new, empty one and starts filling it from one consistent
 * snapshot of the data source's points (build_step goes on with it). */
static int build_begin(hdb_applier *a, char *err, size_t errlen) {
    hdb_index *ix = NULL;
    set_state(a, HDB_INDEX_BUILDING, "building: 0 points loaded");
    int rc = hdb_index_create(&ix, &a->cfg.params, err, errlen);
    if (rc != HDB_OK) return rc;
    /* Searches never got the old index (it was not READY yet); status readers look at it
     * under mu. */
    pthread_mutex_lock(&a->mu);
    hdb_index *old = atomic_exchange(&a->index, ix);
    hdb_index_free(old);
    pthread_mutex_unlock(&a->mu);
    build_end(a);
    a->snap = hdb_table_snapshot(a->cfg.table, &a->snap_seq);
    /* Entries up to snap_seq are in the points: the timeline may drop them. */
    hdb_timeline_keep_from(a->cfg.timeline, &a->sub, a->snap_seq + 1);
    a->build_cursor = 0;
    a->build_done = 0;
    a->build_t0 = hdb_mono_ns();
    return HDB_OK;
}

/* One slice of a build: scans and inserts batches of points for about STEP_TARGET_NS (one
 * batch at least). *finished once every point is in; the index's applied seq is then the seq
 * the points reflect. HDB_EUNAVAIL when stopped meanwhile. */
static int build_step(hdb_applier *a, hdb_index *ix, bool *finished, char *err, size_t errlen) {
    hdb_arena *arena = hdb_arena_create(1 << 20);
    size_t cap = a->cfg.batch ? a->cfg.batch : 1024;
    hdb_index_op *ops = hdb_malloc(cap * sizeof *ops);
    hdb_row *rows = hdb_malloc(cap * sizeof *rows);
    int rc = HDB_OK;
    int64_t t0 = hdb_mono_ns();
    *finished = false;
    for (;;) {
        size_t n;
        hdb_arena_reset(arena);
        rc = hdb_table_scan(a->cfg.table, a->snap, &a->build_cursor, cap, arena, rows, &n, err,
                            errlen);
        if (rc != HDB_OK) break;
        if (n == 0) {
            *finished = true;
            break;
        }
        for (size_t i = 0; i < n; i++)
            ops[i] = (hdb_index_op){.label = (int64_t)rows[i].pid, .remove = false,
                                    .point = &rows[i].rec.point};
        if ((rc = hdb_index_apply(ix, n, ops, err, errlen)) != HDB_OK) break;
        a->build_done += n;
        set_state(a, HDB_INDEX_BUILDING, "building: %" PRIu64 " points loaded", a->build_done);
        if (stopping(a)) {
            rc = hdb_errf(err, errlen, HDB_EUNAVAIL, "stopped while building");
            break;
        }
        if (hdb_mono_ns() - t0 >= STEP_TARGET_NS) break; /* the rest after the others' turn */
    }
    hdb_free(ops);
    hdb_free(rows);
    hdb_arena_free(arena);
    if (rc == HDB_OK && *finished) {
        build_end(a);
        hdb_index_set_applied(ix, a->snap_seq);
        HDB_INFO("applier", "%s: built from %" PRIu64 " points (seq %" PRIu64 ") in %.2f s",
                 a->label, a->build_done, a->snap_seq,
                 (double)(hdb_mono_ns() - a->build_t0) / 1e9);
    }
    return rc;
}

/* ---------------------------------------------------------------- follow */

#define MIN_WINDOW 16
#define FIRST_WINDOW 64 /* the first steps are small, so that the rate is known early */

/* Sizes the next step from the last one: as many entries as fit in STEP_TARGET_NS at the
 * rate just measured, between MIN_WINDOW and cfg.batch. */
static void adapt_window(hdb_applier *a, size_t n, int64_t ns) {
    size_t cap = a->cfg.batch ? a->cfg.batch : 1024;
    if (ns <= 0 || n == 0) return;
    double fit = (double)n * (double)STEP_TARGET_NS / (double)ns;
    size_t w = fit >= (double)cap ? cap : (size_t)fit;
    /* Grow gently (a fast step after a slow one may be luck), shrink at once. */
    if (w > a->window) w = a->window * 2 < w ? a->window * 2 : w;
    a->window = w < MIN_WINDOW ? (cap < MIN_WINDOW ? cap : MIN_WINDOW) : w;
}

/* Applies committed entries after the index's applied seq, at most one step (a->window
 * entries; each label's last change in the step wins). Returns the number applied (0 when
 * caught up) or a negative rc (HDB_ETRIMMED when the timeline no longer holds them). */
static long apply_batch(hdb_applier *a, hdb_index *ix, hdb_arena *arena, char *err,
                        size_t errlen) {
    uint64_t applied = hdb_index_applied(ix);
    size_t cap = a->window;
    hdb_timeline_entry *ents = hdb_arena_alloc(arena, cap * sizeof *ents);
    size_t n;
    int rc = hdb_timeline_read(a->cfg.timeline, applied + 1, cap, arena, ents, &n, err, errlen);
    if (rc != HDB_OK) return rc;
    if (n == 0) return 0;
    hdb_index_op *ops = hdb_arena_alloc(arena, n * sizeof *ops);
    size_t nops = 0;
    for (size_t i = 0; i < n; i++) {
        const hdb_timeline_entry *e = &ents[i];
        if (e->op == HDB_TL_DELETE && e->pid == 0) continue; /* matched no point */
        ops[nops++] = (hdb_index_op){.label = (int64_t)e->pid, .remove = e->op == HDB_TL_DELETE,
                                     .point = &e->rec.point};
    }
    int64_t t0 = hdb_mono_ns();
    if ((rc = hdb_index_apply(ix, nops, ops, err, errlen)) != HDB_OK) return rc;
    /* Full steps measure the rate; a partial one only says when it was too slow. */
    int64_t took = hdb_mono_ns() - t0;
    if (n == cap || took > STEP_TARGET_NS) adapt_window(a, n, took);
    pthread_mutex_lock(&a->mu);
    a->work_ns += took;
    pthread_mutex_unlock(&a->mu);
    hdb_index_set_applied(ix, ents[n - 1].rec.seq);
    pthread_mutex_lock(&a->mu);
    pthread_cond_broadcast(&a->cv); /* min_seq waiters */
    pthread_mutex_unlock(&a->mu);
    return (long)n;
}

static void fail(hdb_applier *a, int rc, const char *err) {
    HDB_ERROR("applier", "%s: stopped following its data source: %s (%s)", a->label, err,
              hdb_strerror(rc));
    a->phase = PH_FAILED; /* the task ends here: nothing holds a thread while FAILED */
    set_state(a, HDB_INDEX_FAILED, "%s", err);
}

/* Loads the snapshot; NULL (logged) when there is none or it cannot serve. */
static hdb_index *load(hdb_applier *a, int64_t t0) {
    char err[512];
    hdb_index *ix = NULL;
    uint64_t seq;
    int64_t t_us;
    int rc = hdb_index_load(&ix, &a->cfg.params, a->dir, &seq, &t_us, err, sizeof err);
    if (rc == HDB_ENOTFOUND) {
        HDB_INFO("applier", "%s: no snapshot; building from the data source", a->label);
        return NULL;
    }
    if (rc != HDB_OK) {
        HDB_WARN("applier", "%s: snapshot unusable (%s); rebuilding from the data source",
                 a->label, err);
        return NULL;
    }
    uint64_t last = hdb_timeline_last_seq(a->cfg.timeline);
    uint64_t first = hdb_timeline_first_seq(a->cfg.timeline);
    if (seq > last) {
        /* The snapshot claims more than the timeline holds: not ours to trust. */
        HDB_WARN("applier", "%s: snapshot seq %" PRIu64 " is past the timeline (%" PRIu64 "); "
                 "rebuilding from the data source", a->label, seq, last);
        hdb_index_free(ix);
        return NULL;
    }
    if (seq + 1 < first) {
        HDB_WARN("applier", "%s: snapshot seq %" PRIu64 " is older than the timeline holds "
                 "(from %" PRIu64 "); rebuilding from the data source", a->label, seq, first);
        hdb_index_free(ix);
        return NULL;
    }
    /* Replaying costs one engine change per entry, a rebuild one insert per live point. (An
     * HNSW update costs several inserts, but an insert is just one: without knowing the mix,
     * a tail no longer than the live points is replayed, and index.snapshot_every_apply_seconds
     * bounds the work a tail can hold.) */
    uint64_t live = hdb_table_count(a->cfg.table);
    if (last - seq > live && last - seq > 1000) {
        HDB_INFO("applier", "%s: snapshot at seq %" PRIu64 " has %" PRIu64 " entries to replay, "
                 "more work than rebuilding its %" PRIu64 " points; rebuilding from the data "
                 "source", a->label, seq, last - seq, live);
        hdb_index_free(ix);
        return NULL;
    }
    char range[64] = "";
    if (last > seq) snprintf(range, sizeof range, " (%" PRIu64 "..%" PRIu64 ")", seq + 1, last);
    HDB_INFO("applier", "%s: loaded snapshot at seq %" PRIu64 " (%" PRIu64 " points) in "
             "%.1f ms; replaying %" PRIu64 " timeline entries%s",
             a->label, seq, hdb_index_size(ix), (double)(hdb_mono_ns() - t0) / 1e6,
             last - seq, range);
    pthread_mutex_lock(&a->mu);
    a->snapshot_seq = seq;
    a->snapshot_time_us = t_us;
    a->last_snapshot_ns = hdb_mono_ns();
    pthread_mutex_unlock(&a->mu);
    hdb_timeline_keep_from(a->cfg.timeline, &a->sub, seq + 1);
    return ix;
}

/* ---------------------------------------------------------------- the task */

/* Queues the applier's next piece of work behind the others' (heavy: a load or a save). */
static void again(hdb_applier *a, bool heavy) {
    hdb_workpool_submit(a->cfg.pool, &a->work, heavy);
}

/* Caught up and nothing due: the task ends, holding no thread. A commit wakes it
 * (on_commit); a periodic snapshot that will be due once its interval has passed sets a
 * timer. But first a last look at the timeline: a commit whose wake-up was merged into a
 * submission already queued (a heavy one for a save, say) has no wake-up of its own left, so
 * entries that arrived since the last step must be applied now. A commit after this look
 * finds the task running, and the pool runs it again. */
static void go_idle(hdb_applier *a, hdb_index *ix) {
    if (hdb_index_applied(ix) < hdb_timeline_last_seq(a->cfg.timeline)) {
        again(a, false);
        return;
    }
    if (a->cfg.snapshot_interval_ms <= 0) return;
    uint64_t applied = hdb_index_applied(ix);
    int64_t due = 0;
    pthread_mutex_lock(&a->mu);
    uint64_t fresh = applied > a->snapshot_seq ? applied - a->snapshot_seq : 0;
    if (fresh > 0 && fresh >= a->cfg.snapshot_min_entries)
        due = a->last_snapshot_ns + a->cfg.snapshot_interval_ms * 1000000;
    pthread_mutex_unlock(&a->mu);
    if (due) hdb_workpool_submit_at(a->cfg.pool, &a->work, due);
}

/* The index follows the timeline: one step of entries, or a due snapshot. */
static void follow_step(hdb_applier *a, bool heavy) {
    char err[512];
    hdb_index *ix = atomic_load(&a->index);
    if (a->save_due) {
        if (!heavy) {
            again(a, true);
            return;
        }
        a->save_due = false;
        save_snapshot(a, ix);
        if (a->backlog || !a->ready) again(a, false);
        else go_idle(a, ix);
        return;
    }
    if (!a->backlog) a->mark_ns = hdb_mono_ns();
    hdb_arena *arena = hdb_arena_create(1 << 20);
    long n = apply_batch(a, ix, arena, err, sizeof err);
    hdb_arena_free(arena);
    if (n < 0) {
        if (n == HDB_ETRIMMED && !a->ready && !a->trim_rebuilt) {
            HDB_WARN("applier", "%s: %s; rebuilding from the data source", a->label, err);
            a->trim_rebuilt = true;
            int rc = build_begin(a, err, sizeof err);
            if (rc != HDB_OK) {
                fail(a, rc, err);
                return;
            }
            a->backlog = false;
            a->phase = PH_BUILD;
            again(a, false);
            return;
        }
        fail(a, (int)n, err);
        return;
    }
    /* The rate a backlog drains at, for the lag bounds: wall time from one step to the next
     * (reads, snapshots and the turns of other indices on the pool included), from steps
     * large or slow enough to tell. The first step after an idle spell counts from its own
     * start. */
    int64_t now = hdb_mono_ns(), span = now - a->mark_ns;
    if (n > 0 && (n >= 64 || span > STEP_TARGET_NS) && span > 0) {
        double r = (double)n * 1e9 / (double)span;
        pthread_mutex_lock(&a->mu);
        a->rate = a->rate > 0 ? 0.7 * a->rate + 0.3 * r : r;
        a->last_rate = r;
        pthread_mutex_unlock(&a->mu);
    }
    a->mark_ns = now; /* a snapshot's time counts in the next step's span */
    a->backlog = n > 0 && hdb_index_applied(ix) < hdb_timeline_last_seq(a->cfg.timeline);
    /* A long catch-up saves snapshots on the way (when one is due, as in the steady state),
     * so an index that lags keeps its progress across a crash. */
    if (n > 0 && snapshot_due(a, ix)) a->save_due = true;
    if (!a->backlog && !a->ready) {
        /* The tail is replayed before serving, so a restart serves what it served before. */
        a->ready = true;
        set_state(a, HDB_INDEX_READY, "%s", "");
        HDB_INFO("applier", "%s: ready at seq %" PRIu64 " after %.2f s", a->label,
                 hdb_index_applied(ix), (double)(hdb_mono_ns() - a->t0) / 1e9);
    }
    if (a->backlog || a->save_due) {
        again(a, a->save_due);
        return;
    }
    if (n == 0 && snapshot_due(a, ix)) { /* a timer's wake-up: the periodic snapshot */
        a->save_due = true;
        again(a, true);
        return;
    }
    go_idle(a, ix);
}

/* One piece of the applier's work on a pool thread (hdb_workpool.h): load the snapshot, a
 * slice of a build, a step of timeline entries or a snapshot. Only one runs at a time, so the
 * task's fields need no lock; it submits itself again while there is more to do. */
static void run(hdb_work *w, bool heavy) {
    hdb_applier *a = w->arg;
    char err[512];
    int rc;
    if (stopping(a)) return;
    switch (a->phase) {
    case PH_START:
        if (a->cfg.load_snapshot) {
            if (!heavy) {
                again(a, true);
                return;
            }
            hdb_index *ix = load(a, a->t0);
            if (ix != NULL) {
                atomic_store(&a->index, ix);
                a->phase = PH_FOLLOW;
                again(a, false);
                return;
            }
        }
        if ((rc = build_begin(a, err, sizeof err)) != HDB_OK) {
            fail(a, rc, err);
            return;
        }
        a->phase = PH_BUILD;
        /* A first slice now: an empty source is READY after this one run. */
        /* fall through */
    case PH_BUILD: {
        bool finished;
        hdb_index *ix = atomic_load(&a->index);
        rc = build_step(a, ix, &finished, err, sizeof err);
        if (rc == HDB_EUNAVAIL) return; /* stopped: hdb_applier_stop releases the build */
        if (rc != HDB_OK) {
            build_end(a);
            fail(a, rc, err);
            return;
        }
        if (!finished) {
            again(a, false);
            return;
        }
        a->phase = PH_FOLLOW;
        if ((a->save_due = a->snap_seq > 0)) { /* a snapshot of the build first */
            again(a, true);
            return;
        }
        follow_step(a, heavy);
        return;
    }
    case PH_FOLLOW:
        follow_step(a, heavy);
        return;
    default: /* PH_FAILED: nothing more to do */
        return;
    }
}

/* ---------------------------------------------------------------- public */

/* The timeline's notification: new durable entries. The task runs (again, if it is running).
 * Under mu, so that no submit reaches the pool once hdb_applier_stop set stop. */
static void on_commit(void *arg) {
    hdb_applier *a = arg;
    pthread_mutex_lock(&a->mu);
    if (!a->stop) hdb_workpool_submit(a->cfg.pool, &a->work, false);
    pthread_mutex_unlock(&a->mu);
}

int hdb_applier_start(hdb_applier **out, const hdb_applier_config *c, char *err, size_t errlen) {
    (void)err;
    (void)errlen;
    HDB_ASSERT(c->pool != NULL);
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
    if (c->params.nindexed) {
        a->indexed_names = hdb_calloc(c->params.nindexed, sizeof *a->indexed_names);
        for (size_t i = 0; i < c->params.nindexed; i++)
            a->indexed_names[i] = hdb_strdup(c->params.indexed_names[i]);
    }
    a->cfg.params.indexed_names = (const char *const *)a->indexed_names;
    a->cfg.params.split_names = (const char *const *)a->split_names;
    a->cfg.params.split_types = a->split_types;
    a->cfg.label = a->label;
    a->cfg.snapshot_dir = a->dir;
    a->state = HDB_INDEX_BUILDING;
    a->window = c->batch && c->batch < FIRST_WINDOW ? c->batch : FIRST_WINDOW;
    snprintf(a->detail, sizeof a->detail, "starting");
    a->last_snapshot_ns = hdb_mono_ns();
    pthread_mutex_init(&a->mu, NULL);
    hdb_mono_cond_init(&a->cv);
    a->t0 = hdb_mono_ns();
    a->phase = PH_START;
    hdb_work_init(&a->work, run, a);
    /* Subscribe before the task runs: until it knows better, the index needs everything. */
    a->sub.notify = on_commit;
    a->sub.arg = a;
    atomic_store(&a->sub.keep_from, 0);
    hdb_timeline_subscribe(a->cfg.timeline, &a->sub);
    a->subscribed = true;
    hdb_workpool_submit(a->cfg.pool, &a->work, a->cfg.load_snapshot); /* a load is heavy */
    *out = a;
    return HDB_OK;
}

static void describe_unavailable(hdb_applier *a, char *err, size_t errlen) {
    if (a->state == HDB_INDEX_FAILED)
        hdb_errf(err, errlen, HDB_EUNAVAIL, "index %s failed: %s", a->label, a->detail);
    else if (a->stop || a->interrupted)
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
        if (a->state == HDB_INDEX_FAILED || a->stop || a->interrupted) {
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
    st->keep_from = atomic_load(&a->sub.keep_from);
    st->snapshot_time_us = a->snapshot_time_us;
    snprintf(st->detail, sizeof st->detail, "%s", a->detail);
    pthread_mutex_unlock(&a->mu);
    if (st->state == HDB_INDEX_READY && ix) hdb_index_describe(ix, st->detail, sizeof st->detail);
}

void hdb_applier_interrupt(hdb_applier *a) {
    pthread_mutex_lock(&a->mu);
    a->interrupted = true;
    pthread_cond_broadcast(&a->cv);
    pthread_mutex_unlock(&a->mu);
}

int hdb_applier_progress(hdb_applier *a, uint64_t *applied_seq, double *rate, double *pause) {
    pthread_mutex_lock(&a->mu);
    hdb_index *ix = atomic_load(&a->index);
    int state = a->state;
    *applied_seq = ix ? hdb_index_applied(ix) : 0;
    /* The lower of the average and the latest: a slowdown (contention, a snapshot) counts at
     * once, a speedup only as it lasts. */
    if (rate) *rate = a->last_rate > 0 && a->last_rate < a->rate ? a->last_rate : a->rate;
    if (pause) *pause = (double)a->last_save_ns / 1e9;
    pthread_mutex_unlock(&a->mu);
    return state;
}

void hdb_applier_stop(hdb_applier *a, bool final_snapshot) {
    if (a == NULL || a->stopped) return;
    pthread_mutex_lock(&a->mu);
    a->stop = true;
    pthread_cond_broadcast(&a->cv);
    pthread_mutex_unlock(&a->mu);
    /* A queued task goes, a running one ends its piece (a build slice or a step: it checks
     * stop) and is waited for. From here this thread owns the task's fields. */
    hdb_workpool_cancel(a->cfg.pool, &a->work);
    if (final_snapshot && a->phase == PH_FOLLOW) {
        /* What was applied goes into a snapshot; a backlog is not drained here (a stop must
         * not wait for it) but replayed at the next start. */
        hdb_index *ix = atomic_load(&a->index);
        pthread_mutex_lock(&a->mu);
        bool changed = hdb_index_applied(ix) != a->snapshot_seq;
        pthread_mutex_unlock(&a->mu);
        if (changed) save_snapshot(a, ix);
    }
    build_end(a);
    a->stopped = true;
}

void hdb_applier_free(hdb_applier *a) {
    if (a == NULL) return;
    HDB_ASSERT(a->stopped);
    if (a->subscribed) hdb_timeline_unsubscribe(a->cfg.timeline, &a->sub);
    hdb_index_free(atomic_load(&a->index));
    for (size_t i = 0; i < a->cfg.params.nsplit; i++) hdb_free(a->split_names[i]);
    hdb_free(a->split_names);
    hdb_free(a->split_types);
    for (size_t i = 0; i < a->cfg.params.nindexed; i++) hdb_free(a->indexed_names[i]);
    hdb_free(a->indexed_names);
    pthread_cond_destroy(&a->cv);
    pthread_mutex_destroy(&a->mu);
    hdb_free(a->label);
    hdb_free(a->dir);
    hdb_free(a);
}
