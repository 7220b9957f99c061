/*
 * hdb_table_timeline.c - the timeline of a source table: the RocksDB implementation of the
 * contract in hdb_timeline.h (reads, entry times, append, retention and trimming, subscribers).
 */
#include "hdb_table_int.h"

#include "hdb_arena.h"
#include "hdb_commit.h"
#include "hdb_err.h"
#include "hdb_log.h"
#include "hdb_mem.h"
#include "hdb_store.h"

#include <inttypes.h>
#include <string.h>

/* ---------------------------------------------------------------- the timeline */

static hdb_table *of(hdb_timeline *tl) {
    return (hdb_table *)tl;
}

static uint64_t tl_last_seq(hdb_timeline *tl) {
    return hdb_commit_last_seq(of(tl)->commit);
}

static uint64_t tl_first_seq(hdb_timeline *tl) {
    return atomic_load(&of(tl)->first_seq);
}

static int trimmed_error(hdb_table *t, uint64_t from, char *err, size_t errlen) {
    return hdb_errf(err, errlen, HDB_ETRIMMED,
                    "timeline of %s: entries before %" PRIu64 " were trimmed (asked from %" PRIu64
                    ")",
                    t->label, atomic_load(&t->first_seq), from);
}

static int tl_read(hdb_timeline *tl, uint64_t from, size_t max, hdb_arena *arena,
                   hdb_timeline_entry *out, size_t *n, char *err, size_t errlen) {
    hdb_table *t = of(tl);
    uint64_t last = tl_last_seq(tl);
    if (from < atomic_load(&t->first_seq)) return trimmed_error(t, from, err, errlen);
    size_t cap = last - from + 1 < max ? (size_t)(last - from + 1) : max;
    unsigned char key[HDB_SEQ_KEY_LEN];
    hdb_seq_key(key, from);
    hdb_iter *it = hdb_iter_create(t->store, t->timeline, NULL);
    int rc = HDB_OK;
    for (hdb_iter_seek(it, key, sizeof key); *n < cap && hdb_iter_valid(it); hdb_iter_next(it)) {
        size_t klen, vlen;
        const unsigned char *k = hdb_iter_key(it, &klen);
        uint64_t seq = klen == HDB_SEQ_KEY_LEN ? hdb_get_be64(k) : 0;
        if (seq != from + *n) {
            /* A trim may have run since the check above. */
            if (from + *n < atomic_load(&t->first_seq))
                rc = trimmed_error(t, from + *n, err, errlen);
            else
                rc = hdb_errf(err, errlen, HDB_ECORRUPT,
                              "timeline of %s: entry %" PRIu64 " is missing (found %" PRIu64 ")",
                              t->label, from + *n, seq);
            break;
        }
        /* Entries are used after the iterator has moved on: decode a copy. */
        const unsigned char *v = hdb_iter_value(it, &vlen);
        v = hdb_arena_memdup(arena, v, vlen);
        if (hdb_timeline_decode(v, vlen, arena, &out[*n]) != HDB_OK) {
            rc = hdb_errf(err, errlen, HDB_ECORRUPT,
                          "timeline of %s: entry %" PRIu64 " is damaged", t->label, seq);
            break;
        }
        (*n)++;
    }
    if (rc == HDB_OK) rc = hdb_iter_status(it, err, errlen);
    hdb_iter_free(it);
    if (rc == HDB_OK && *n < cap) {
        if (from + *n < atomic_load(&t->first_seq))
            rc = trimmed_error(t, from + *n, err, errlen);
        else
            rc = hdb_errf(err, errlen, HDB_ECORRUPT,
                          "timeline of %s ends at %" PRIu64 ", before %" PRIu64, t->label,
                          from + *n - 1, from + cap - 1);
    }
    if (rc != HDB_OK) *n = 0;
    return rc;
}

static int tl_entry_time(hdb_timeline *tl, uint64_t seq, int64_t *time_us, char *err,
                         size_t errlen) {
    hdb_table *t = of(tl);
    unsigned char key[HDB_SEQ_KEY_LEN], *val;
    size_t vlen;
    hdb_seq_key(key, seq);
    hdb_arena *a = hdb_arena_create(1 << 12);
    int rc = hdb_store_get(t->store, t->timeline, NULL, key, sizeof key, a, &val, &vlen, err,
                           errlen);
    if (rc == HDB_ENOTFOUND)
        hdb_errf(err, errlen, rc, "timeline of %s: entry %" PRIu64 " is not retained", t->label,
                 seq);
    else if (rc == HDB_OK && hdb_timeline_peek(val, vlen, NULL, NULL, time_us) != HDB_OK)
        rc = hdb_errf(err, errlen, HDB_ECORRUPT, "timeline of %s: entry %" PRIu64 " is damaged",
                      t->label, seq);
    hdb_arena_free(a);
    return rc;
}

typedef struct {
    hdb_table_job job;
    const hdb_timeline_input *in;
    size_t n;
    hdb_arena *arena;
} append_job;

static int append_prepare(hdb_table_job *job, hdb_table_txn *tx, uint64_t first_seq,
                          uint64_t *nseq, char *err, size_t errlen) {
    append_job *a = (append_job *)job;
    for (size_t i = 0; i < a->n; i++) {
        hdb_row old;
        int rc = hdb_table_txn_find(tx, a->in[i].point, a->arena, &old, err, errlen);
        if (rc != HDB_OK) return hdb_err_prefix(err, errlen, rc, "entries[%zu].point.", i);
        if (a->in[i].op == HDB_TL_UPSERT)
            hdb_table_txn_upsert(tx, first_seq + i, a->in[i].point, &old);
        else
            hdb_table_txn_delete(tx, first_seq + i, a->in[i].point, &old);
    }
    *nseq = a->n;
    return HDB_OK;
}

/* The contract's append: the entries are applied to the points too, in the same write, as an
 * upload would (without an upload's checks, which are the writer's). */
static int tl_append(hdb_timeline *tl, const hdb_timeline_input *in, size_t n, hdb_arena *arena,
                     uint64_t *first_seq, char *err, size_t errlen) {
    append_job a = {.job = {.prepare = append_prepare}, .in = in, .n = n, .arena = arena};
    int rc = hdb_table_commit(of(tl), &a.job);
    if (rc != HDB_OK) return hdb_errf(err, errlen, rc, "%s", a.job.err);
    *first_seq = a.job.first_seq;
    return HDB_OK;
}

/* The lowest keep_from of the subscribers (0 counts as 1), or last + 1 without any; caller
 * holds sub_mu. */
static uint64_t keep_from_locked(hdb_table *t, uint64_t last) {
    uint64_t keep = last + 1;
    for (hdb_timeline_sub *s = t->subs; s; s = s->_next) {
        uint64_t k = atomic_load(&s->keep_from);
        if (k == 0) k = 1;
        if (k < keep) keep = k;
    }
    return keep;
}

/* Deletes entries below the lowest keep_from (never the newest entry); caller holds trim_mu. */
static int trim_locked(hdb_table *t, uint64_t min_entries, char *err, size_t errlen) {
    if (atomic_load(&t->trim_held) || atomic_load(&t->trim_pins) > 0) return HDB_OK;
    uint64_t last = tl_last_seq(&t->base);
    pthread_mutex_lock(&t->sub_mu);
    uint64_t keep = keep_from_locked(t, last);
    pthread_mutex_unlock(&t->sub_mu);
    if (keep > last) keep = last; /* the newest entry stays: it carries the last seq */
    uint64_t first = atomic_load(&t->first_seq);
    if (keep <= first || keep - first < min_entries) return HDB_OK;
    unsigned char from[HDB_SEQ_KEY_LEN], to[HDB_SEQ_KEY_LEN];
    hdb_seq_key(from, first);
    hdb_seq_key(to, keep);
    /* Readers check first_seq before they read: raise it first. */
    atomic_store(&t->first_seq, keep);
    int rc = hdb_store_delete_range(t->store, t->timeline, from, sizeof from, to, sizeof to, err,
                                    errlen);
    if (rc != HDB_OK) {
        atomic_store(&t->first_seq, first); /* nothing was deleted */
        return rc;
    }
    HDB_DEBUG("table", "%s: trimmed timeline entries %" PRIu64 "..%" PRIu64, t->label, first,
              keep - 1);
    return HDB_OK;
}

static int tl_trim(hdb_timeline *tl, char *err, size_t errlen) {
    hdb_table *t = of(tl);
    pthread_mutex_lock(&t->trim_mu);
    int rc = trim_locked(t, 1, err, errlen);
    pthread_mutex_unlock(&t->trim_mu);
    return rc;
}

static void tl_subscribe(hdb_timeline *tl, hdb_timeline_sub *sub) {
    hdb_table *t = of(tl);
    pthread_mutex_lock(&t->trim_mu);
    pthread_mutex_lock(&t->sub_mu);
    sub->_next = t->subs;
    t->subs = sub;
    t->nsubs++;
    pthread_mutex_unlock(&t->sub_mu);
    pthread_mutex_unlock(&t->trim_mu);
}

static void tl_unsubscribe(hdb_timeline *tl, hdb_timeline_sub *sub) {
    hdb_table *t = of(tl);
    pthread_mutex_lock(&t->sub_mu);
    for (hdb_timeline_sub **p = &t->subs; *p; p = &(*p)->_next) {
        if (*p == sub) {
            *p = sub->_next;
            t->nsubs--;
            break;
        }
    }
    sub->_next = NULL;
    pthread_mutex_unlock(&t->sub_mu);
}

static void tl_stats(hdb_timeline *tl, hdb_timeline_stats *st) {
    hdb_table *t = of(tl);
    memset(st, 0, sizeof *st);
    st->last_seq = tl_last_seq(tl);
    st->first_seq = atomic_load(&t->first_seq);
    if (st->first_seq > st->last_seq + 1) st->first_seq = st->last_seq + 1;
    st->entries = st->last_seq + 1 - st->first_seq;
    st->bytes = hdb_store_cf_bytes(t->store, t->timeline);
    pthread_mutex_lock(&t->sub_mu);
    st->keep_from = keep_from_locked(t, st->last_seq);
    st->subscribers = t->nsubs;
    pthread_mutex_unlock(&t->sub_mu);
}

/* After each durable group (the commit queue still held): wake the subscribers; with none,
 * trim now and then, since no one will ask. */
void hdb__table_group_done(void *arg, uint64_t last_seq) {
    hdb_table *t = arg;
    (void)last_seq;
    pthread_mutex_lock(&t->sub_mu);
    size_t nsubs = t->nsubs;
    for (hdb_timeline_sub *s = t->subs; s; s = s->_next) s->notify(s->arg);
    pthread_mutex_unlock(&t->sub_mu);
    if (nsubs == 0 && pthread_mutex_trylock(&t->trim_mu) == 0) {
        char err[256];
        if (trim_locked(t, TRIM_UNWATCHED, err, sizeof err) != HDB_OK)
            HDB_WARN("table", "%s: trim failed: %s", t->label, err);
        pthread_mutex_unlock(&t->trim_mu);
    }
}

const hdb_timeline_ops hdb__rocksdb_timeline_ops = {
    .kind = "rocksdb",
    .last_seq = tl_last_seq,
    .first_seq = tl_first_seq,
    .read = tl_read,
    .entry_time = tl_entry_time,
    .append = tl_append,
    .trim = tl_trim,
    .subscribe = tl_subscribe,
    .unsubscribe = tl_unsubscribe,
    .stats = tl_stats,
};
