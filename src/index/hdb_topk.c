/*
 * hdb_topk.c - bounded max-heap of the k best hits, and the m-way merge of sorted hit lists.
 *
 * Order: hit a is better than hit b when a.score < b.score, or the scores are equal and
 * a.label < b.label. A NaN score is treated as +INFINITY so that the order stays total (a NaN
 * would otherwise compare false with everything and corrupt the heap).
 *
 * The heap keeps the worst held hit at h[0], so a new hit is compared with one element and the
 * common "not good enough" case is a single comparison. finish() is an in-place heapsort.
 * merge() pops list heads through a min-heap of cursors (O(log m) per step) and removes
 * duplicate labels with a small open-addressing set of the labels already emitted.
 */
#include "hdb_topk.h"

#include "hdb_log.h"
#include "hdb_mem.h"

#include <math.h>
#include <string.h>

static inline float key(float s) {
    return s != s ? INFINITY : s;
}

/* 1 when a ranks strictly before b. */
static inline int better(float sa, int64_t la, float sb, int64_t lb) {
    return sa < sb || (sa == sb && la < lb);
}

static void sift_down(hdb_hit *h, size_t n, size_t i) {
    hdb_hit x = h[i];
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n) break;
        /* pick the worse child */
        if (c + 1 < n && better(h[c].score, h[c].label, h[c + 1].score, h[c + 1].label)) c++;
        if (!better(x.score, x.label, h[c].score, h[c].label)) break;
        h[i] = h[c];
        i = c;
    }
    h[i] = x;
}

void hdb_topk_init(hdb_topk *t, hdb_hit *storage, size_t k) {
    HDB_ASSERT(t != NULL);
    HDB_ASSERT(storage != NULL || k == 0);
    t->h = storage;
    t->k = k;
    t->n = 0;
}

void hdb_topk_push(hdb_topk *t, float score, int64_t label) {
    score = key(score);
    if (t->n < t->k) {
        size_t i = t->n++;
        while (i > 0) { /* sift up: parents are worse-or-equal */
            size_t p = (i - 1) / 2;
            if (!better(t->h[p].score, t->h[p].label, score, label)) break;
            t->h[i] = t->h[p];
            i = p;
        }
        t->h[i].score = score;
        t->h[i].label = label;
        return;
    }
    if (t->k == 0 || !better(score, label, t->h[0].score, t->h[0].label)) return;
    t->h[0].score = score;
    t->h[0].label = label;
    sift_down(t->h, t->n, 0);
}

float hdb_topk_threshold(const hdb_topk *t) {
    return t->n < t->k ? INFINITY : t->h[0].score;
}

size_t hdb_topk_finish(hdb_topk *t) {
    size_t n = t->n;
    /* Heapsort: moving the worst to the back each round leaves h[0..n) sorted best first. */
    for (size_t end = n; end > 1; end--) {
        hdb_hit tmp = t->h[0];
        t->h[0] = t->h[end - 1];
        t->h[end - 1] = tmp;
        sift_down(t->h, end - 1, 0);
    }
    for (size_t i = n; i < t->k; i++) {
        t->h[i].score = INFINITY;
        t->h[i].label = -1;
    }
    return n;
}

/* ---- merge -------------------------------------------------------------------------------- */

typedef struct {
    const hdb_hit *p; /* current head */
    const hdb_hit *end;
} cursor;

/* 1 when cursor a's head ranks strictly before cursor b's head. */
static inline int cur_better(const cursor *a, const cursor *b) {
    return better(key(a->p->score), a->p->label, key(b->p->score), b->p->label);
}

static void cur_sift_down(cursor *c, size_t n, size_t i) {
    cursor x = c[i];
    for (;;) {
        size_t ch = 2 * i + 1;
        if (ch >= n) break;
        if (ch + 1 < n && cur_better(&c[ch + 1], &c[ch])) ch++;
        if (!cur_better(&c[ch], &x)) break;
        c[i] = c[ch];
        i = ch;
    }
    c[i] = x;
}

static inline uint64_t mix64(uint64_t x) { /* splitmix64 finaliser */
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ull;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebull;
    x ^= x >> 31;
    return x;
}

/* Inserts label into the set (cap a power of two, never full). Returns 1 if it was new. */
static int set_add(int64_t *set, size_t cap, int64_t label) {
    size_t i = (size_t)mix64((uint64_t)label) & (cap - 1);
    while (set[i] != -1) {
        if (set[i] == label) return 0;
        i = (i + 1) & (cap - 1);
    }
    set[i] = label;
    return 1;
}

#define SMALL_CURSORS 16
#define SMALL_SET 128

size_t hdb_topk_merge(const hdb_hit *const *lists, const size_t *len, size_t m, size_t k,
                      hdb_hit *out) {
    cursor small_cur[SMALL_CURSORS];
    int64_t small_set[SMALL_SET];
    cursor *cur = small_cur;
    int64_t *set = small_set;
    size_t nc = 0, n = 0;

    HDB_ASSERT(out != NULL || k == 0);
    HDB_ASSERT(m == 0 || (lists != NULL && len != NULL));
    if (k == 0) return 0;

    size_t set_cap = 16; /* > 2k slots keep the probe chains short */
    while (set_cap < 2 * k + 1)
        set_cap *= 2;
    if (set_cap > SMALL_SET) set = hdb_malloc(set_cap * sizeof *set);
    for (size_t i = 0; i < set_cap; i++)
        set[i] = -1;
    if (m > SMALL_CURSORS) cur = hdb_malloc(m * sizeof *cur);

    for (size_t i = 0; i < m; i++) {
        /* Each list is sorted with its padding (label -1) last: the real hits are a prefix. */
        size_t real = 0;
        while (real < len[i] && lists[i][real].label >= 0)
            real++;
        if (real == 0) continue;
        cur[nc].p = lists[i];
        cur[nc].end = lists[i] + real;
        nc++;
    }
    for (size_t i = nc / 2; i-- > 0;)
        cur_sift_down(cur, nc, i);

    while (nc > 0 && n < k) {
        const hdb_hit *h = cur[0].p;
        if (set_add(set, set_cap, h->label)) {
            out[n].score = key(h->score);
            out[n].label = h->label;
            n++;
        }
        if (++cur[0].p == cur[0].end) cur[0] = cur[--nc];
        cur_sift_down(cur, nc, 0);
    }
    for (size_t i = n; i < k; i++) {
        out[i].score = INFINITY;
        out[i].label = -1;
    }

    if (cur != small_cur) hdb_free(cur);
    if (set != small_set) hdb_free(set);
    return n;
}
