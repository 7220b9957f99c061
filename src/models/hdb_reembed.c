/*
 * hdb_reembed.c - the re-embedding worker (see hdb_reembed.h): copy an origin space's items
 * through the target's model, then follow the origin's timeline.
 *
 * One thread per worker: re-embeddings are few (one per model upgrade under way) and each is
 * long, so a thread of its own keeps the index pool and the call threads free. The thread
 * sleeps on its condition variable when there is nothing to apply; the origin's timeline wakes
 * it (notify).
 */
#include "hdb_reembed.h"

#include "hdb_arena.h"
#include "hdb_catalog.h"
#include "hdb_clock.h"
#include "hdb_config.h"
#include "hdb_defs.h"
#include "hdb_err.h"
#include "hdb_infer.h"
#include "hdb_ingest.h"
#include "hdb_log.h"
#include "hdb_mem.h"
#include "hdb_record.h"
#include "hdb_table.h"
#include "hdb_timeline.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>

#define BATCH 64                /* items per forward pass and per write */
#define STORE_EVERY_NS 5000000000LL /* a store is a defs write and flush: not every step */
#define RETRY_NS 1000000000LL   /* after a transient error */
#define CALL_NS 60000000000LL   /* the deadline of one forward pass or one write */
#define STATE_LEN 26            /* format, state, seq, copied, skipped */

struct hdb_reembed {
    char *target, *origin;
    hdb_reembed_spec spec; /* target, origin point at the copies above; holds a reference to
                            * origin_src */
    hdb_infer *infer;
    pthread_t thread;
    bool running;
    hdb_timeline_sub sub; /* on the origin's timeline, from open to the end of the follow */
    bool subscribed;

    pthread_mutex_t mu;
    pthread_cond_t wake_cv;     /* the worker: new entries, or stop */
    pthread_cond_t progress_cv; /* waiting writes: the position moved, or stop */
    bool wake, stopping;
    hdb_reembed_state state;
    uint64_t seq; /* FOLLOWING: the origin's changes up to here are applied */
    uint64_t copied, total, skipped;
    char detail[512];
    int64_t stored_ns;              /* when the position was last stored */
    unsigned char stored[STATE_LEN]; /* what is stored now (under mu) */
};

/* ---------------------------------------------------------------- stored state */

/* Stores the state as it is now; with if_changed, only when it differs from what is stored.
 * Any thread; takes r->mu briefly. */
static int store_state(hdb_reembed *r, bool if_changed, char *err, size_t errlen) {
    unsigned char b[STATE_LEN];
    pthread_mutex_lock(&r->mu);
    b[0] = 1;
    b[1] = (unsigned char)r->state;
    hdb_put_be64(b + 2, r->state == HDB_REEMBED_COPYING ? 0 : r->seq);
    hdb_put_be64(b + 10, r->copied);
    hdb_put_be64(b + 18, r->skipped);
    bool same = memcmp(b, r->stored, sizeof b) == 0;
    pthread_mutex_unlock(&r->mu);
    if (if_changed && same) return HDB_OK;
    int rc =
        hdb_defs_put(r->spec.defs, HDB_DEF_REEMBED, r->target, 0, b, sizeof b, 0, err, errlen);
    if (rc == HDB_OK) {
        pthread_mutex_lock(&r->mu);
        memcpy(r->stored, b, sizeof b);
        pthread_mutex_unlock(&r->mu);
    }
    return rc;
}

/* The origin's timeline and its newest seq (0 when the origin is gone). */
static hdb_timeline *origin_timeline(const hdb_reembed *r) {
    return hdb_table_timeline(hdb_source_table(r->spec.origin_src));
}

static uint64_t origin_last_seq(const hdb_reembed *r) {
    return r->spec.origin_src == NULL || hdb_source_dropped(r->spec.origin_src)
               ? 0
               : hdb_timeline_last_seq(origin_timeline(r));
}

typedef struct {
    hdb_reembed *r;
    bool found;
} load_arg;

static int load_one(void *arg, const char *label, uint64_t id, const unsigned char *v,
                    size_t len, char *err, size_t errlen) {
    load_arg *la = arg;
    (void)id;
    if (strcmp(label, la->r->target) != 0) return HDB_OK;
    if (len != STATE_LEN || v[0] != 1 || v[1] < HDB_REEMBED_COPYING || v[1] > HDB_REEMBED_FAILED)
        return hdb_errf(err, errlen, HDB_ECORRUPT,
                        "model space %s: its re-embedding state does not decode", label);
    la->found = true;
    memcpy(la->r->stored, v, STATE_LEN);
    la->r->state = (hdb_reembed_state)v[1];
    la->r->seq = hdb_get_be64(v + 2);
    la->r->copied = hdb_get_be64(v + 10);
    la->r->skipped = hdb_get_be64(v + 18);
    return HDB_OK;
}

/* ---------------------------------------------------------------- life */

static void notify(void *arg) {
    hdb_reembed *r = arg;
    pthread_mutex_lock(&r->mu);
    r->wake = true;
    pthread_cond_signal(&r->wake_cv);
    pthread_mutex_unlock(&r->mu);
}

int hdb_reembed_open(hdb_reembed **out, const hdb_reembed_spec *spec, bool fresh, char *err,
                     size_t errlen) {
    hdb_reembed *r = hdb_calloc(1, sizeof *r);
    r->target = hdb_strdup(spec->target);
    r->origin = hdb_strdup(spec->origin);
    r->spec = *spec;
    r->spec.target = r->target;
    r->spec.origin = r->origin;
    if (spec->origin_src) hdb_source_ref(spec->origin_src);
    pthread_mutex_init(&r->mu, NULL);
    hdb_mono_cond_init(&r->wake_cv);
    hdb_mono_cond_init(&r->progress_cv);
    r->sub.notify = notify;
    r->sub.arg = r;
    r->state = HDB_REEMBED_COPYING;
    load_arg la = {r, false};
    int rc = fresh ? HDB_OK : hdb_defs_foreach(spec->defs, HDB_DEF_REEMBED, load_one, &la, err,
                                               errlen);
    if (rc == HDB_OK && !la.found) rc = store_state(r, false, err, errlen);
    if (rc == HDB_OK && r->spec.origin_src == NULL && r->state != HDB_REEMBED_DONE) {
        r->state = HDB_REEMBED_FAILED;
        snprintf(r->detail, sizeof r->detail, "model space %s, its origin, does not exist",
                 r->origin);
    } else if (rc == HDB_OK && spec->model == NULL && r->state != HDB_REEMBED_DONE) {
        r->state = HDB_REEMBED_FAILED;
        snprintf(r->detail, sizeof r->detail, "the model of model space %s did not load",
                 r->target);
    }
    if (rc != HDB_OK) {
        hdb_reembed_free(r, false);
        return rc;
    }
    /* Subscribed now, before the origin's timeline may trim (hdb_catalog_start_trimming): a
     * restart finds every entry after the stored position, and a copy the entries after its
     * snapshot. */
    if (r->state == HDB_REEMBED_COPYING || r->state == HDB_REEMBED_FOLLOWING) {
        hdb_timeline *tl = origin_timeline(r);
        atomic_store(&r->sub.keep_from, r->state == HDB_REEMBED_FOLLOWING
                                            ? r->seq + 1
                                            : hdb_timeline_last_seq(tl) + 1);
        hdb_timeline_subscribe(tl, &r->sub);
        r->subscribed = true;
    }
    *out = r;
    return HDB_OK;
}

/* Lets the origin's timeline go (the worker is done with it). The worker is not running. */
static void unsubscribe(hdb_reembed *r) {
    if (!r->subscribed) return;
    hdb_timeline_unsubscribe(origin_timeline(r), &r->sub);
    r->subscribed = false;
}

const char *hdb_reembed_origin(const hdb_reembed *r) {
    return r->origin;
}

void hdb_reembed_status_get(hdb_reembed *r, hdb_reembed_status *st) {
    pthread_mutex_lock(&r->mu);
    st->state = r->state;
    st->copied = r->copied;
    st->total = r->total;
    st->skipped = r->skipped;
    st->applied_seq = r->state == HDB_REEMBED_COPYING ? 0 : r->seq;
    snprintf(st->detail, sizeof st->detail, "%s", r->detail);
    pthread_mutex_unlock(&r->mu);
    st->origin_last_seq = origin_last_seq(r);
}

/* ---------------------------------------------------------------- applying items */

/* One change to make in the target: an item (attrs include "id" and the kept input) to embed
 * and write, or a delete of the item with the id attribute `id`. */
typedef struct {
    const hdb_attr *attrs;
    uint32_t nattrs;
    bool deleted;
} change;

static const hdb_attr *find_id(const change *c) {
    return hdb_attr_find(c->attrs, c->nattrs, "id", true);
}

static bool same_id(const change *a, const change *b) {
    const hdb_attr *x = find_id(a), *y = find_id(b);
    return x && y && x->value.u.s.n == y->value.u.s.n &&
           memcmp(x->value.u.s.p, y->value.u.s.p, x->value.u.s.n) == 0;
}

/* The model input of one item into out (input_size floats): HDB_OK, or HDB_EINVAL when the
 * item has no usable kept input (why in err). */
static int item_input(const hdb_reembed *r, const change *c, float *out, char *err,
                      size_t errlen) {
    const hdb_attr *in = hdb_attr_find(c->attrs, c->nattrs, HDB_INPUT_ATTR, true);
    if (in == NULL || in->value.type != HDB_ATTR_BYTES)
        return hdb_errf(err, errlen, HDB_EINVAL, "no kept input");
    const hdb_value *v = &in->value;
    if (r->spec.image == NULL) {
        if (v->u.s.n != (size_t)r->spec.input_size * sizeof(float))
            return hdb_errf(err, errlen, HDB_EINVAL, "a kept tensor of %zu bytes, not %lld",
                            v->u.s.n, (long long)r->spec.input_size * 4);
        memcpy(out, v->u.s.p, v->u.s.n);
        return HDB_OK;
    }
    const hdb_config *cfg = r->spec.cfg;
    hdb_image_limits lim = {cfg->max_image_bytes, cfg->max_image_side, cfg->max_image_pixels,
                            cfg->min_image_side};
    return hdb_image_to_tensor(v->u.s.p, v->u.s.n, &lim, r->spec.image, out, err, errlen);
}

/* The tombstone of change c's item, in arena memory. */
static hdb_point tombstone(hdb_arena *a, const change *c) {
    hdb_attr *id = hdb_arena_alloc(a, sizeof *id);
    *id = *find_id(c);
    return (hdb_point){.attrs = id, .nattrs = 1, .deleted = true};
}

/* Applies changes[0..n) (distinct ids) to the target in one write: the adds with a usable
 * input are embedded in one forward pass; the others become deletes. *written counts the
 * items embedded, *skipped those without a usable input. */
static int apply_changes(hdb_reembed *r, hdb_arena *a, const change *ch, size_t n,
                         uint64_t *written, uint64_t *skipped, char *err, size_t errlen) {
    size_t isz = (size_t)r->spec.input_size, dim = r->spec.output_dim;
    float *in = hdb_arena_alloc(a, (n ? n : 1) * isz * sizeof(float));
    size_t *row = hdb_arena_alloc(a, (n ? n : 1) * sizeof *row);
    size_t m = 0;
    *written = *skipped = 0;
    char why[256];
    const hdb_attr *first_skipped = NULL;
    for (size_t i = 0; i < n; i++) {
        row[i] = SIZE_MAX;
        if (ch[i].deleted) continue;
        char w[256];
        if (item_input(r, &ch[i], in + m * isz, w, sizeof w) != HDB_OK) {
            if ((*skipped)++ == 0) {
                first_skipped = find_id(&ch[i]);
                snprintf(why, sizeof why, "%s", w);
            }
            continue;
        }
        row[i] = m++;
    }
    if (first_skipped) /* once per batch: a source of uploaded vectors would flood the log */
        HDB_WARN("reembed", "model space %s: %llu items of %s left out (deleted here), e.g. "
                            "%.*s: %s",
                 r->target, (unsigned long long)*skipped, r->origin,
                 (int)first_skipped->value.u.s.n, first_skipped->value.u.s.p, why);
    float *out = hdb_arena_alloc(a, (m ? m : 1) * dim * sizeof(float));
    int rc = m ? hdb_infer_run(r->infer, r->spec.model, in, m, out, hdb_mono_ns() + CALL_NS, err,
                               errlen)
               : HDB_OK;
    if (rc != HDB_OK) return hdb_err_prefix(err, errlen, rc, "model: ");
    hdb_point *pts = hdb_arena_calloc(a, n ? n : 1, sizeof *pts);
    for (size_t i = 0; i < n; i++) {
        if (row[i] == SIZE_MAX) {
            pts[i] = tombstone(a, &ch[i]);
            continue;
        }
        pts[i] = (hdb_point){.vec = out + row[i] * dim,
                             .dim = (uint32_t)dim,
                             .attrs = (hdb_attr *)ch[i].attrs,
                             .nattrs = ch[i].nattrs};
    }
    uint64_t first, last;
    if (n) {
        rc = hdb_ingest_upload(r->spec.cat, r->spec.target_src, r->spec.cfg,
                               hdb_mono_ns() + CALL_NS, pts, n, a, &first, &last, err, errlen);
        if (rc != HDB_OK) return hdb_err_prefix(err, errlen, rc, "write to %s: ", r->target);
    }
    *written = m;
    return HDB_OK;
}

static bool stopping(hdb_reembed *r) {
    pthread_mutex_lock(&r->mu);
    bool s = r->stopping;
    pthread_mutex_unlock(&r->mu);
    return s;
}

static void count(hdb_reembed *r, uint64_t written, uint64_t skipped) {
    pthread_mutex_lock(&r->mu);
    r->copied += written;
    r->skipped += skipped;
    pthread_mutex_unlock(&r->mu);
}

/* Deletes from the target every item that snap (the origin at the copy's seq) does not hold. */
static int remove_extras(hdb_reembed *r, hdb_arena *a, hdb_table *origin, const hdb_snap *snap,
                         char *err, size_t errlen) {
    hdb_table *target = hdb_source_table(r->spec.target_src);
    uint64_t cursor = 0;
    hdb_row rows[BATCH], there[BATCH];
    for (;;) {
        hdb_arena_reset(a);
        size_t n;
        int rc = hdb_table_scan(target, NULL, &cursor, BATCH, a, rows, &n, err, errlen);
        if (rc != HDB_OK || n == 0) return rc;
        hdb_attr *ids[BATCH];
        uint32_t nids[BATCH];
        change ch[BATCH];
        for (size_t i = 0; i < n; i++) {
            ch[i] = (change){rows[i].rec.point.attrs, rows[i].rec.point.nattrs, true};
            ids[i] = (hdb_attr *)find_id(&ch[i]);
            nids[i] = 1;
        }
        if ((rc = hdb_table_get_ids(origin, snap, n, ids, nids, a, there, err, errlen)))
            return rc;
        size_t m = 0;
        for (size_t i = 0; i < n; i++)
            if (!there[i].found) ch[m++] = ch[i];
        uint64_t w, s;
        if (m && (rc = apply_changes(r, a, ch, m, &w, &s, err, errlen)) != HDB_OK) return rc;
        if (m) HDB_INFO("reembed", "model space %s: removed %zu items that %s no longer holds",
                        r->target, m, r->origin);
    }
}

/* COPYING: every item of a snapshot of the origin, then FOLLOWING from its seq. */
static int copy_all(hdb_reembed *r, hdb_arena *a, char *err, size_t errlen) {
    hdb_table *origin = hdb_source_table(r->spec.origin_src);
    uint64_t seq;
    hdb_snap *snap = hdb_table_snapshot(origin, &seq);
    pthread_mutex_lock(&r->mu);
    r->total = hdb_table_count(origin);
    r->copied = r->skipped = 0;
    pthread_mutex_unlock(&r->mu);
    HDB_INFO("reembed", "model space %s: embedding the items of %s (seq %llu) with its model",
             r->target, r->origin, (unsigned long long)seq);
    int64_t t0 = hdb_mono_ns();
    uint64_t cursor = 0;
    hdb_row rows[BATCH];
    change ch[BATCH];
    int rc = HDB_OK;
    for (;;) {
        if (stopping(r)) {
            rc = hdb_errf(err, errlen, HDB_EUNAVAIL, "stopping");
            break;
        }
        hdb_arena_reset(a);
        size_t n;
        if ((rc = hdb_table_scan(origin, snap, &cursor, BATCH, a, rows, &n, err, errlen)) ||
            n == 0)
            break;
        for (size_t i = 0; i < n; i++)
            ch[i] = (change){rows[i].rec.point.attrs, rows[i].rec.point.nattrs, false};
        uint64_t w, s;
        if ((rc = apply_changes(r, a, ch, n, &w, &s, err, errlen)) != HDB_OK) break;
        count(r, w, s);
    }
    if (rc == HDB_OK) rc = remove_extras(r, a, origin, snap, err, errlen);
    hdb_table_snapshot_release(origin, snap);
    if (rc != HDB_OK) return rc;
    pthread_mutex_lock(&r->mu);
    r->state = HDB_REEMBED_FOLLOWING;
    r->seq = seq;
    uint64_t copied = r->copied, skipped = r->skipped;
    pthread_cond_broadcast(&r->progress_cv);
    pthread_mutex_unlock(&r->mu);
    HDB_INFO("reembed", "model space %s: embedded %llu items of %s in %.1f s (%llu without a "
                        "kept input); following its changes from seq %llu",
             r->target, (unsigned long long)copied, r->origin,
             (double)(hdb_mono_ns() - t0) / 1e9, (unsigned long long)skipped,
             (unsigned long long)seq + 1);
    r->stored_ns = hdb_mono_ns();
    if ((rc = store_state(r, false, err, errlen)) == HDB_OK)
        hdb_timeline_keep_from(hdb_table_timeline(origin), &r->sub, seq + 1);
    return rc;
}

/* FOLLOWING: applies the next entries of the origin's timeline; *idle when there were none. */
static int follow_step(hdb_reembed *r, hdb_arena *a, bool *idle, char *err, size_t errlen) {
    hdb_timeline *tl = origin_timeline(r);
    hdb_timeline_entry e[BATCH];
    size_t n;
    hdb_arena_reset(a);
    pthread_mutex_lock(&r->mu);
    uint64_t from = r->seq + 1;
    pthread_mutex_unlock(&r->mu);
    int rc = hdb_timeline_read(tl, from, BATCH, a, e, &n, err, errlen);
    if (rc != HDB_OK) return rc;
    *idle = n == 0;
    if (n == 0) return HDB_OK;
    /* The last change of each id wins. */
    change ch[BATCH];
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        change c = {e[i].rec.point.attrs, e[i].rec.point.nattrs, e[i].op == HDB_TL_DELETE};
        if (find_id(&c) == NULL) continue;
        size_t j = 0;
        while (j < m && !same_id(&ch[j], &c)) j++;
        ch[j] = c;
        if (j == m) m++;
    }
    uint64_t w, s;
    if ((rc = apply_changes(r, a, ch, m, &w, &s, err, errlen)) != HDB_OK) return rc;
    count(r, w, s);
    pthread_mutex_lock(&r->mu);
    r->seq = e[n - 1].rec.seq;
    pthread_cond_broadcast(&r->progress_cv);
    pthread_mutex_unlock(&r->mu);
    return HDB_OK;
}

/* Stores the position if it moved, at most every STORE_EVERY_NS (or now, with force), and
 * lets the origin's timeline go below it. */
static void store_position(hdb_reembed *r, bool force) {
    int64_t now = hdb_mono_ns();
    if (!force && now - r->stored_ns < STORE_EVERY_NS) return;
    char err[256];
    pthread_mutex_lock(&r->mu);
    bool following = r->state == HDB_REEMBED_FOLLOWING;
    uint64_t seq = r->seq;
    pthread_mutex_unlock(&r->mu);
    r->stored_ns = now;
    if (store_state(r, true, err, sizeof err) != HDB_OK) {
        HDB_WARN("reembed", "model space %s: cannot store its position: %s", r->target, err);
        return;
    }
    if (following && !hdb_source_dropped(r->spec.origin_src))
        hdb_timeline_keep_from(origin_timeline(r), &r->sub, seq + 1);
}

/* Errors worth a retry: the disk, backpressure, a busy model, a deadline. */
static bool transient(int rc) {
    return rc == HDB_EFULL || rc == HDB_ELIMIT || rc == HDB_ETIMEOUT || rc == HDB_EIO ||
           rc == HDB_EUNAVAIL;
}

/* Sleeps until woken, stopped or `ns` passed. */
static void nap(hdb_reembed *r, int64_t ns) {
    struct timespec until = hdb_mono_timespec(hdb_mono_ns() + ns);
    pthread_mutex_lock(&r->mu);
    while (!r->wake && !r->stopping)
        if (pthread_cond_timedwait(&r->wake_cv, &r->mu, &until) != 0) break;
    r->wake = false;
    pthread_mutex_unlock(&r->mu);
}

static void set_detail(hdb_reembed *r, const char *text) {
    pthread_mutex_lock(&r->mu);
    snprintf(r->detail, sizeof r->detail, "%s", text);
    pthread_mutex_unlock(&r->mu);
}

static void *worker(void *arg) {
    hdb_reembed *r = arg;
    hdb_arena *a = hdb_arena_create(0);
    char err[sizeof r->detail];
    while (!stopping(r)) {
        bool idle = false;
        int rc = r->state == HDB_REEMBED_COPYING ? copy_all(r, a, err, sizeof err)
                                                 : follow_step(r, a, &idle, err, sizeof err);
        if (rc == HDB_ETRIMMED) {
            HDB_WARN("reembed", "model space %s: the changes of %s after seq %llu are gone "
                                "from its timeline; copying again",
                     r->target, r->origin, (unsigned long long)r->seq);
            pthread_mutex_lock(&r->mu);
            r->state = HDB_REEMBED_COPYING;
            pthread_mutex_unlock(&r->mu);
            continue;
        }
        if (rc != HDB_OK && stopping(r)) break;
        if (rc != HDB_OK && transient(rc)) {
            HDB_WARN("reembed", "model space %s: %s; retrying in a second", r->target, err);
            set_detail(r, err);
            nap(r, RETRY_NS);
            continue;
        }
        if (rc != HDB_OK) {
            HDB_ERROR("reembed", "model space %s: re-embedding from %s stopped: %s", r->target,
                      r->origin, err);
            pthread_mutex_lock(&r->mu);
            r->state = HDB_REEMBED_FAILED;
            snprintf(r->detail, sizeof r->detail, "%s", err);
            pthread_cond_broadcast(&r->progress_cv);
            pthread_mutex_unlock(&r->mu);
            break;
        }
        set_detail(r, "");
        store_position(r, false);
        if (idle) nap(r, STORE_EVERY_NS); /* until new entries, a stop, or the next store */
    }
    /* FAILED is not stored: the next start tries again from the last stored position. */
    if (r->state != HDB_REEMBED_FAILED) store_position(r, true);
    /* A failed worker would hold the origin's timeline back for good; a restart subscribes
     * again at the stored position (or copies again if that is gone). */
    if (r->state == HDB_REEMBED_FAILED) unsubscribe(r);
    hdb_arena_free(a);
    return NULL;
}

void hdb_reembed_start(hdb_reembed *r, hdb_infer *infer) {
    if (r->running || r->state == HDB_REEMBED_DONE || r->state == HDB_REEMBED_FAILED) return;
    r->infer = infer;
    r->stopping = false;
    r->stored_ns = hdb_mono_ns();
    pthread_mutex_lock(&r->mu);
    r->running = pthread_create(&r->thread, NULL, worker, r) == 0;
    pthread_mutex_unlock(&r->mu);
    if (!r->running) HDB_ERROR("reembed", "model space %s: cannot start a thread", r->target);
}

void hdb_reembed_stop(hdb_reembed *r) {
    if (r == NULL || !r->running) return;
    pthread_mutex_lock(&r->mu);
    r->stopping = true;
    pthread_cond_signal(&r->wake_cv);
    pthread_cond_broadcast(&r->progress_cv);
    pthread_mutex_unlock(&r->mu);
    pthread_join(r->thread, NULL);
    pthread_mutex_lock(&r->mu);
    r->running = false;
    pthread_mutex_unlock(&r->mu);
}

int hdb_reembed_finish(hdb_reembed *r, char *err, size_t errlen) {
    pthread_mutex_lock(&r->mu);
    bool copying = r->state == HDB_REEMBED_COPYING;
    uint64_t copied = r->copied, total = r->total;
    pthread_mutex_unlock(&r->mu);
    if (copying)
        return hdb_errf(err, errlen, HDB_EPRECOND,
                        "model space %s is re-embedding the items of %s (%llu of %llu done); "
                        "wait until it follows (GetModelSpace: reembed.state FOLLOWING), or drop "
                        "%s first",
                        r->target, r->origin, (unsigned long long)copied,
                        (unsigned long long)total, r->target);
    hdb_reembed_stop(r);
    unsubscribe(r);
    pthread_mutex_lock(&r->mu);
    r->state = HDB_REEMBED_DONE;
    r->detail[0] = '\0';
    pthread_cond_broadcast(&r->progress_cv);
    pthread_mutex_unlock(&r->mu);
    HDB_INFO("reembed", "model space %s: %s is dropped; the re-embedding is done", r->target,
             r->origin);
    return store_state(r, false, err, errlen);
}

void hdb_reembed_free(hdb_reembed *r, bool forget) {
    if (r == NULL) return;
    hdb_reembed_stop(r);
    unsubscribe(r);
    if (forget) hdb_defs_delete(r->spec.defs, HDB_DEF_REEMBED, r->target, NULL, 0);
    hdb_source_unref(r->spec.origin_src);
    pthread_cond_destroy(&r->wake_cv);
    pthread_cond_destroy(&r->progress_cv);
    pthread_mutex_destroy(&r->mu);
    hdb_free(r->target);
    hdb_free(r->origin);
    hdb_free(r);
}

int hdb_reembed_wait(hdb_reembed *r, int64_t deadline_ns, char *err, size_t errlen) {
    uint64_t want = origin_last_seq(r);
    struct timespec until = hdb_mono_timespec(deadline_ns);
    int rc = HDB_OK;
    pthread_mutex_lock(&r->mu);
    for (;;) {
        if (r->state == HDB_REEMBED_DONE || r->state == HDB_REEMBED_FAILED) break;
        if (r->state == HDB_REEMBED_FOLLOWING && r->seq >= want) break;
        if (r->stopping || !r->running) {
            rc = hdb_errf(err, errlen, HDB_EUNAVAIL, "model space %s is stopping", r->target);
            break;
        }
        if (deadline_ns != INT64_MAX &&
            pthread_cond_timedwait(&r->progress_cv, &r->mu, &until) != 0 &&
            hdb_mono_ns() >= deadline_ns) {
            rc = hdb_errf(err, errlen, HDB_ETIMEOUT,
                          "model space %s is re-embedding from %s (%s, %llu items done) and "
                          "writes to it wait until it has applied seq %llu of %s",
                          r->target, r->origin,
                          r->state == HDB_REEMBED_COPYING ? "copying" : "following",
                          (unsigned long long)r->copied, (unsigned long long)want, r->origin);
            break;
        }
        if (deadline_ns == INT64_MAX) pthread_cond_wait(&r->progress_cv, &r->mu);
    }
    pthread_mutex_unlock(&r->mu);
    return rc;
}
