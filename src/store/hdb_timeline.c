/*
 * hdb_timeline.c - the calls of the timeline contract (hdb_timeline.h), dispatched to the
 * implementation, with the checks every implementation would otherwise repeat.
 */
#include "hdb_timeline.h"

#include "hdb_err.h"
#include "hdb_log.h"

uint64_t hdb_timeline_last_seq(hdb_timeline *tl) {
    return tl->ops->last_seq(tl);
}

uint64_t hdb_timeline_first_seq(hdb_timeline *tl) {
    return tl->ops->first_seq(tl);
}

int hdb_timeline_read(hdb_timeline *tl, uint64_t from_seq, size_t max, hdb_arena *arena,
                      hdb_timeline_entry *out, size_t *n, char *err, size_t errlen) {
    *n = 0;
    if (from_seq == 0) from_seq = 1;
    if (max == 0 || from_seq > tl->ops->last_seq(tl)) return HDB_OK;
    return tl->ops->read(tl, from_seq, max, arena, out, n, err, errlen);
}

int hdb_timeline_entry_time(hdb_timeline *tl, uint64_t seq, int64_t *time_us, char *err,
                            size_t errlen) {
    return tl->ops->entry_time(tl, seq, time_us, err, errlen);
}

int hdb_timeline_append(hdb_timeline *tl, const hdb_timeline_input *in, size_t n,
                        hdb_arena *arena, uint64_t *first_seq, char *err, size_t errlen) {
    if (n == 0) return hdb_errf(err, errlen, HDB_EINVAL, "entries: at least one is required");
    for (size_t i = 0; i < n; i++)
        if ((in[i].op != HDB_TL_UPSERT && in[i].op != HDB_TL_DELETE) || in[i].point == NULL)
            return hdb_errf(err, errlen, HDB_EINVAL, "entries[%zu]: needs an op and a point", i);
    return tl->ops->append(tl, in, n, arena, first_seq, err, errlen);
}

int hdb_timeline_trim(hdb_timeline *tl, char *err, size_t errlen) {
    return tl->ops->trim(tl, err, errlen);
}

void hdb_timeline_subscribe(hdb_timeline *tl, hdb_timeline_sub *sub) {
    tl->ops->subscribe(tl, sub);
}

void hdb_timeline_unsubscribe(hdb_timeline *tl, hdb_timeline_sub *sub) {
    tl->ops->unsubscribe(tl, sub);
}

void hdb_timeline_keep_from(hdb_timeline *tl, hdb_timeline_sub *sub, uint64_t keep_from) {
    uint64_t cur = atomic_load(&sub->keep_from);
    while (keep_from > cur && !atomic_compare_exchange_weak(&sub->keep_from, &cur, keep_from)) {
    }
    if (keep_from <= cur) return;
    char err[512];
    int rc = tl->ops->trim(tl, err, sizeof err);
    if (rc != HDB_OK) /* only space is at stake; the next call tries again */
        HDB_WARN("timeline", "trim failed: %s (%s)", err, hdb_strerror(rc));
}

void hdb_timeline_stats_get(hdb_timeline *tl, hdb_timeline_stats *st) {
    tl->ops->stats(tl, st);
}
