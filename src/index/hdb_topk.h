/*
 * hdb_topk.h - bounded selection of the k best (smallest-score) hits, and merging of sorted
 * hit lists from several engines or splits.
 *
 * Scores follow one convention everywhere inside the server: smaller is better. (The index
 * layer turns them into the API's distances.) Ties are broken by label, smaller first, so
 * results are deterministic. A label of -1 marks an empty slot, which sorts after every hit.
 *
 * Thread-safety: no shared state; one hdb_topk belongs to one thread.
 */
#ifndef HDB_TOPK_H
#define HDB_TOPK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Which labels a search may return (a filter's label set, say): fn(ctx, label) is true for
 * those. Engines walk through or skip the others; fn must be thread-safe and cheap, since it
 * runs for every candidate that would enter a result. At most `max` labels pass (UINT64_MAX
 * when unknown), so an engine that finds fewer than k knows whether to look further. */
typedef struct {
    bool (*fn)(const void *ctx, int64_t label);
    const void *ctx;
    uint64_t max;
} hdb_accept;

typedef struct {
    float score;   /* smaller is better */
    int64_t label; /* -1: no hit */
} hdb_hit;

/* A bounded max-heap of at most k hits over caller-owned storage. */
typedef struct {
    hdb_hit *h; /* k slots, owned by the caller */
    size_t k;
    size_t n; /* hits held so far */
} hdb_topk;

/* Prepares t to keep the k best hits in storage (k slots). k may be 0 (keeps nothing). */
void hdb_topk_init(hdb_topk *t, hdb_hit *storage, size_t k);

/* Offers one hit. Kept when fewer than k are held or when it beats the worst one held. */
void hdb_topk_push(hdb_topk *t, float score, int64_t label);

/* The score a new hit must beat to enter (the worst held), or +INFINITY while not full. A hit
 * whose score equals it still enters when its label is smaller than the worst one's, so a
 * caller that filters before pushing must keep scores <= the threshold. */
float hdb_topk_threshold(const hdb_topk *t);

/* Sorts the held hits best first into t->h[0..n), pads t->h[n..k) with {+INFINITY, -1}, and
 * returns n. The heap is unusable afterwards until hdb_topk_init. */
size_t hdb_topk_finish(hdb_topk *t);

/* Merges m lists, each sorted best first and padded with label -1 (lists[i] has len[i] slots),
 * into out (k slots, padded the same way). Duplicated labels are kept once, at their best
 * score. Returns the number of real hits in out. */
size_t hdb_topk_merge(const hdb_hit *const *lists, const size_t *len, size_t m, size_t k,
                      hdb_hit *out);

#ifdef __cplusplus
}
#endif

#endif /* HDB_TOPK_H */
