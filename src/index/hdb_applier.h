/*
 * hdb_applier.h - the background work that keeps one index in step with its data source.
 *
 * At start it loads the index's newest snapshot and replays only the timeline after it; with
 * no usable snapshot (none, damaged, written for another spec, or older than what the timeline
 * still holds) it builds the index from the data source's points, read from one consistent
 * snapshot of the table taken together with the seq it holds, while uploads go on. Then it
 * follows the timeline as a subscriber (hdb_timeline.h): woken after each durable commit, it
 * reads the new entries in batches and applies them to the split engines in seq order, and
 * records the seq it has applied. It saves a snapshot when enough has changed and enough time
 * has passed (during a long catch-up too), after a build, and on a clean stop (of what it has
 * applied: a backlog is replayed at the next start, not drained at the stop); snapshots are
 * skipped
 * while the disk is full. After each durable snapshot (and after a build) it tells the
 * timeline that it no longer needs the entries before it, so that the timeline stays bounded.
 * A snapshot whose tail is longer than the source has live points is not replayed: building
 * from the points costs less.
 *
 * Threads. An applier has no thread of its own: its work runs as a task on a shared worker
 * pool (hdb_workpool.h, index.applier_threads), one piece at a time (the snapshot load, a
 * slice of a build, one apply step of about HDB_APPLIER_STEP_SECONDS, a snapshot save), each
 * piece queued behind the other appliers' pieces, so that a long backlog or a big build does
 * not starve the other indices. Snapshot loads and saves cannot be cut short: they are the
 * pool's heavy pieces, of which at most threads - 1 run at once (all of one thread's time with a
 * single thread), so with two pool threads or more the other indices' steps always go on.
 * Caught up, an applier holds no thread; a commit or a due periodic snapshot queues it.
 *
 * Thread-safety: every function may be called from any thread; start, stop and free by the
 * owner only.
 *
 * States (numbers equal hilbert.v1.IndexState): BUILDING until the index can serve, READY while
 * following, FAILED after an error it cannot get past (the reason is in the status detail).
 */
#ifndef HDB_APPLIER_H
#define HDB_APPLIER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hdb_index.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct hdb_applier hdb_applier;
typedef struct hdb_table hdb_table;
typedef struct hdb_timeline hdb_timeline;
typedef struct hdb_workpool hdb_workpool;

enum { HDB_INDEX_READY = 1, HDB_INDEX_BUILDING = 2, HDB_INDEX_FAILED = 3 };

/* How long one apply step takes at most, about: the applied seq moves between steps only. */
#define HDB_APPLIER_STEP_SECONDS 0.2

typedef struct {
    const char *label;           /* "name@version", for logs; copied */
    hdb_table *table;            /* the data source's points, for builds; borrowed, must
                                  * outlive the applier */
    hdb_timeline *timeline;      /* the changes to follow; borrowed, likewise */
    hdb_workpool *pool;          /* runs the applier's work; borrowed, must stay until
                                  * hdb_applier_stop returned */
    hdb_index_params params;     /* copied, split names included */
    const char *snapshot_dir;    /* this index's directory; copied */
    bool load_snapshot;          /* try the snapshot first (false for a new index) */
    uint32_t batch;              /* timeline entries per apply step, at most: steps are
                                  * sized to about HDB_APPLIER_STEP_SECONDS of work */
    int64_t snapshot_interval_ms; /* at most one periodic snapshot per interval; 0: none */
    uint64_t snapshot_min_entries; /* periodic snapshots need this many new entries */
    uint64_t snapshot_every_entries; /* ...and one is due whenever this many were applied; 0: off */
    int64_t snapshot_every_apply_ms; /* ...or after this much time spent applying; 0: off */
} hdb_applier_config;

/* Starts the applier: queues its first piece of work (loading or building) on c->pool. The
 * applier owns the index it loads or builds. Stop with hdb_applier_stop, then release with
 * hdb_applier_free. */
int hdb_applier_start(hdb_applier **out, const hdb_applier_config *c, char *err, size_t errlen);

/* Returns the index for searching when READY (valid until hdb_applier_free). Otherwise
 * HDB_EUNAVAIL with the state and progress in err. */
int hdb_applier_index(hdb_applier *a, hdb_index **out, char *err, size_t errlen);

/* Waits until the index has applied seq (and is READY), or until deadline_ns (CLOCK_MONOTONIC;
 * INT64_MAX for none). HDB_OK, HDB_ETIMEOUT (message gives the applied seq), or HDB_EUNAVAIL when
 * the index failed or is stopping. */
int hdb_applier_wait(hdb_applier *a, uint64_t seq, int64_t deadline_ns, char *err, size_t errlen);

typedef struct {
    int state;
    uint64_t applied_seq;
    uint64_t snapshot_seq;     /* 0 when no snapshot has been written or loaded */
    uint64_t keep_from;        /* the lowest timeline seq this index still needs */
    int64_t snapshot_time_us;
    char detail[256];          /* progress, engine notes or the failure reason */
} hdb_applier_status;

/* Fills st with the current state. Any thread. */
void hdb_applier_status_get(hdb_applier *a, hdb_applier_status *st);

/* Ends every hdb_applier_wait, now and later, with HDB_EUNAVAIL ("index ... is stopping"),
 * while the applier goes on applying until hdb_applier_stop: a shutdown's first step, so that
 * no call waits out the grace period. Any thread. */
void hdb_applier_interrupt(hdb_applier *a);

/* The state and applied seq alone, without the detail text: cheap enough for every upload's
 * lag check. With rate, also the entries per second its apply steps have been managing lately
 * (0 until a step large enough to tell has run); with pause, the seconds its last snapshot
 * save took (0 before the first), for which applying stops. Any thread. */
int hdb_applier_progress(hdb_applier *a, uint64_t *applied_seq, double *rate, double *pause);

/* Stops the applier: takes its task off the pool if it is queued, or waits for the piece it is
 * running (a build slice or a step ends early when stopped; a snapshot load or save does not).
 * With final_snapshot, then saves a snapshot of what it has applied, on the calling thread, if
 * that changed since the last one (it does not wait to apply a backlog first). After it
 * returns the applier never uses the pool again. Idempotent. */
void hdb_applier_stop(hdb_applier *a, bool final_snapshot);

/* Releases a stopped applier and its index. NULL is allowed. */
void hdb_applier_free(hdb_applier *a);

#ifdef __cplusplus
}
#endif

#endif /* HDB_APPLIER_H */
