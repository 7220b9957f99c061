/*
 * hdb_catalog_lag.c - how far each index is behind its data source, and what that does to the
 * source's writers (index.max_lag_entries, index.max_lag_ms, index.lag_mode).
 *
 * An index's lag is read from its applier (state, applied seq) and the source's timeline (last
 * seq, and the append time of the oldest entry not applied yet). A READY index past either bound
 * is lagging; one that is still building, or has failed, is not bounded. In backpressure mode a
 * write to the source waits on the index's applier (no lock held) while it is over the entries
 * bound or over 3/4 of the time bound (so that the time bound itself holds), until its wait
 * ends; at most server.write_threads - 1 writers wait at once, so
 * that waiting writers never take the last call thread from the reads.
 *
 * Each index remembers whether it was last reported lagging, only so that the log says once when
 * it passes a bound and once when it is back well within them.
 */
#include "hdb_catalog_int.h"

#include "hdb_applier.h"
#include "hdb_clock.h"
#include "hdb_config.h"
#include "hdb_err.h"
#include "hdb_log.h"
#include "hdb_timeline.h"

#include <inttypes.h>
#include <string.h>
#include <time.h>

#define HOLD_SHARE 0.75 /* of index.max_lag_ms, where writers start to wait */

static int64_t wall_us(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

void hdb__ixent_lag(hdb_ixent *ix, hdb__lag *lag) {
    hdb_timeline *tl = hdb_table_timeline(ix->source->table);
    memset(lag, 0, sizeof *lag);
    double rate, pause;
    lag->state = hdb_applier_progress(ix->applier, &lag->applied, &rate, &pause);
    lag->last = hdb_timeline_last_seq(tl);
    lag->entries = lag->last > lag->applied ? lag->last - lag->applied : 0;
    int64_t t;
    if (lag->entries > 0 && hdb_timeline_entry_time(tl, lag->applied + 1, &t, NULL, 0) == HDB_OK) {
        double age = (double)(wall_us() - t) / 1e6;
        lag->seconds = age > 0 ? age : 0.0;
    }
    /* The time bound looks ahead: the newest entry will be about entries / rate old when the
     * applier reaches it, so a backlog that takes longer than the bound to apply is over it
     * already (otherwise writers would be let in until the oldest entry is max_lag_ms old, and
     * the index would then need several times that to catch up). A snapshot save stops the
     * applying for as long as the last one took, and one may start at any step (under a steady
     * load one is due every index.snapshot_every_apply_seconds), so its pause counts too: the
     * backlog that writers are let in to must still be applied within the bound when a save
     * comes first. */
    lag->catch_up_seconds = rate > 0 && lag->entries > 0
                                ? (double)lag->entries / rate + HDB_APPLIER_STEP_SECONDS + pause
                                : 0.0;
    double worst = lag->seconds > lag->catch_up_seconds ? lag->seconds : lag->catch_up_seconds;
    bool ready = lag->state == HDB_INDEX_READY;
    lag->over_entries = ix->max_lag_entries > 0 && lag->entries > ix->max_lag_entries;
    lag->over_time = ix->max_lag_ms > 0 && worst * 1000.0 > (double)ix->max_lag_ms;
    lag->lagging = ready && (lag->over_entries || lag->over_time);
    /* Writers are held back a little before the time bound: under a steady overload the lag
     * settles where they are let in again, and the drain rate wavers around its estimate
     * (searches contend for the graph, snapshots pause it), so a limit at the bound itself
     * would be passed about half the time. */
    lag->hold_time = ix->max_lag_ms > 0 && worst * 1000.0 > HOLD_SHARE * (double)ix->max_lag_ms;
    lag->hold = ready && (lag->over_entries || lag->hold_time);

    /* Say when the index passes a bound, and when it is back well within them (under half of
     * each), so that an index hovering at a bound under backpressure is not logged at every
     * crossing. */
    bool calm = lag->state != HDB_INDEX_READY ||
                ((ix->max_lag_entries == 0 || lag->entries * 2 <= ix->max_lag_entries) &&
                 (ix->max_lag_ms == 0 || worst * 2000.0 <= (double)ix->max_lag_ms));
    bool no = false, yes = true; /* compare-exchange: one thread logs each transition */
    if (lag->lagging && atomic_compare_exchange_strong(&ix->lagging, &no, true))
        HDB_WARN("catalog", "index %s is lagging: %" PRIu64 " entries (%.1f s) behind data "
                 "source %s (%.1f s to apply), above index.max_lag_entries (%u) or "
                 "index.max_lag_ms (%u); %s",
                 ix->label, lag->entries, lag->seconds, ix->source->label,
                 lag->catch_up_seconds, ix->max_lag_entries,
                 ix->max_lag_ms,
                 ix->backpressure ? "uploads to the source wait for it (index.lag_mode: "
                                    "backpressure)"
                                  : "uploads go on and searches without min_seq miss the newest "
                                    "writes (index.lag_mode: fall_behind)");
    else if (calm && atomic_compare_exchange_strong(&ix->lagging, &yes, false))
        HDB_INFO("catalog", "index %s is back within its lag bounds (%" PRIu64 " entries, %.1f s "
                 "behind)", ix->label, lag->entries, lag->seconds);
}

static int lag_error(const hdb_ixent *ix, const hdb__lag *lag, const char *why, char *err,
                     size_t errlen) {
    return hdb_errf(err, errlen, HDB_ELIMIT,
                    "index %s is behind data source %s by %" PRIu64 " entries (%.1f s; %.1f s "
                    "to apply): uploads to the source wait while an index is over "
                    "index.max_lag_entries (%u) or over 3/4 of index.max_lag_ms (%u) "
                    "(index.lag_mode: backpressure); %s",
                    ix->label, ix->source->label, lag->entries, lag->seconds,
                    lag->catch_up_seconds, ix->max_lag_entries, ix->max_lag_ms, why);
}

/* The first index of src that holds writers back, with a reference, and its lag; NULL when
 * none does. */
static hdb_ixent *first_lagging(hdb_catalog *cat, hdb_source *src, hdb__lag *lag) {
    hdb_ixent *over = NULL;
    pthread_rwlock_rdlock(&cat->lock);
    for (size_t i = 0; i < src->nindices && over == NULL; i++) {
        hdb_ixent *ix = src->indices[i];
        if (atomic_load(&ix->dropped)) continue;
        hdb__ixent_lag(ix, lag);
        if (lag->hold) {
            hdb_ixent_ref(ix);
            over = ix;
        }
    }
    pthread_rwlock_unlock(&cat->lock);
    return over;
}

int hdb_catalog_admit_write(hdb_catalog *cat, hdb_source *src, int64_t deadline_ns, char *err,
                            size_t errlen) {
    const hdb_config *cfg = cat->cfg;
    if (cfg->max_lag_entries == 0 && cfg->max_lag_ms == 0) return HDB_OK;
    bool backpressure = strcmp(cfg->lag_mode, "backpressure") == 0;
    int64_t start = hdb_mono_ns();
    int64_t until = start + (int64_t)cfg->max_wait_ms * 1000000;
    if (deadline_ns < until) {
        /* End a little before the caller's deadline, so that it gets the reason, not a bare
         * DEADLINE_EXCEEDED. */
        int64_t margin = (deadline_ns - start) / 10;
        until = deadline_ns - (margin < 200000000 ? margin : 200000000);
    }
    int cap = cfg->write_threads - 1; /* waiters; one write thread stays free */
    bool waiting = false;
    int rc = HDB_OK;
    for (;;) {
        hdb__lag lag;
        hdb_ixent *ix = first_lagging(cat, src, &lag);
        if (ix == NULL) break;
        if (!backpressure) {
            hdb_ixent_unref(ix);
            break;
        }
        if (!waiting) {
            if (atomic_fetch_add(&cat->lag_waiters, 1) >= cap) {
                atomic_fetch_sub(&cat->lag_waiters, 1);
                char why[160];
                snprintf(why, sizeof why,
                         "%d other writes wait already (server.write_threads - 1); retry later",
                         cap);
                rc = lag_error(ix, &lag, why, err, errlen);
                hdb_ixent_unref(ix);
                break;
            }
            waiting = true;
        }
        int64_t now = hdb_mono_ns();
        if (now >= until) {
            char why[160];
            snprintf(why, sizeof why, "this write waited %.1f s (up to the call's deadline and "
                     "limits.max_wait_ms) and was not applied; retry later",
                     (double)(now - start) / 1e9);
            rc = lag_error(ix, &lag, why, err, errlen);
            hdb_ixent_unref(ix);
            break;
        }
        /* Wait for enough progress to lift the entries bound, or for any progress (the next
         * entry's age decides the time bound); re-check at least every 100 ms. */
        uint64_t target = lag.over_entries ? lag.last - ix->max_lag_entries : lag.applied + 1;
        int64_t wake = now + 100000000 < until ? now + 100000000 : until;
        char werr[256];
        int wrc = hdb_applier_wait(ix->applier, target, wake, werr, sizeof werr);
        if (wrc == HDB_EUNAVAIL) { /* failed or stopping: it bounds nothing any more */
            uint64_t applied;
            if (hdb_applier_progress(ix->applier, &applied, NULL, NULL) == HDB_INDEX_READY)
                rc = hdb_errf(err, errlen, HDB_EUNAVAIL, "%s", werr); /* the server stops */
        }
        hdb_ixent_unref(ix);
        if (rc != HDB_OK) break;
    }
    if (waiting) atomic_fetch_sub(&cat->lag_waiters, 1);
    return rc;
}

void hdb_catalog_interrupt_waits(hdb_catalog *cat) {
    pthread_rwlock_rdlock(&cat->lock);
    for (size_t i = 0; i < cat->nindices; i++) hdb_applier_interrupt(cat->indices[i]->applier);
    pthread_rwlock_unlock(&cat->lock);
}
