/*
 * hdb_sparse_int.h - what the two files of the sparse engine share (hdb_sparse.c: create and
 * free, upsert, remove, compaction and search; hdb_sparse_io.c: save and load): the engine
 * struct, its posting lists and its uint64 -> uint32 hash map. The data structures are described
 * at the top of hdb_sparse.c.
 *
 * Thread-safety: as hdb_sparse.h; functions marked "exclusive lock held" need s->lock taken for
 * writing, or an engine no other thread can see yet.
 */
#ifndef HDB_SPARSE_INT_H
#define HDB_SPARSE_INT_H

#include "hdb_sparse.h"

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#define MAP_EMPTY UINT64_MAX /* free hash map slot (labels and indices are below it) */

/* ---- uint64 -> uint32 hash map ------------------------------------------------------------ */

/* Open addressing with linear probing; backward-shift deletion (no tombstones); load factor
 * kept in (1/8, 1/2] except at the minimum size. The lookup is here, inline, because search and
 * load both use it; the rest of the map (init, insert, erase, rehash) is in hdb_sparse.c. */
typedef struct {
    uint64_t *keys; /* cap slots, MAP_EMPTY when free */
    uint32_t *vals;
    size_t cap; /* power of two */
    size_t n;
} imap;

static inline size_t imap_home(uint64_t z, size_t cap) {
    z ^= z >> 30; /* splitmix64 finaliser */
    z *= 0xbf58476d1ce4e5b9ull;
    z ^= z >> 27;
    z *= 0x94d049bb133111ebull;
    z ^= z >> 31;
    return (size_t)z & (cap - 1);
}

/* Returns the position of key, or SIZE_MAX. */
static inline size_t imap_find(const imap *m, uint64_t key) {
    size_t mask = m->cap - 1;
    for (size_t i = imap_home(key, m->cap);; i = (i + 1) & mask) {
        if (m->keys[i] == key) return i;
        if (m->keys[i] == MAP_EMPTY) return SIZE_MAX;
    }
}

/* ---- engine state ------------------------------------------------------------------------- */

typedef struct {
    uint32_t slot;
    float val;
} posting;

typedef struct {
    posting *p;
    uint32_t n, cap;
    uint32_t idx; /* the dimension index this list belongs to */
} plist;

/* Search scratch (accumulator, marks, touched list); defined in hdb_sparse.c. */
typedef struct scratch scratch;

struct hdb_sparse {
    pthread_rwlock_t lock;
    uint32_t dim;
    hdb_metric metric;

    /* slots 0..nslots-1; live ones have labels[s] >= 0 */
    size_t nslots, slot_cap, nlive, ndead;
    int64_t *labels;  /* -1: dead */
    float *inv_norms; /* 1/|x| (COSINE), 0 for a zero vector */
    uint32_t *nnz;    /* non-zeros */
    uint32_t **data;  /* nnz indices then nnz floats (bit copies); NULL when dead or nnz 0 */
    imap label_map;   /* label -> slot (live only) */

    /* posting lists 0..nlists-1, reached through dim_map (index -> list id) */
    plist *lists;
    size_t nlists, list_cap;
    imap dim_map;
    size_t npostings; /* including those of dead slots */

    pthread_mutex_t pool_mu;
    scratch *pool;
    size_t npool;

    uint64_t compactions; /* statistics, for tests */
    int mode_override;    /* tests: 0 automatic, 1 always sparse mode, 2 always dense mode */
};

/* The values of a live slot: they follow its nnz indices in data[slot]. */
static inline const float *slot_vals(const hdb_sparse *s, size_t slot) {
    return (const float *)(const void *)(s->data[slot] + s->nnz[slot]);
}

/* Checks create/load parameters: p non-NULL, dim >= 1, metric COSINE or JACCARD. Returns HDB_OK
 * or HDB_EINVAL with a message in err. */
int hdb__sparse_check_params(const hdb_sparse_params *p, char *err, size_t errlen);

/* Stores a copy of v under label, which must be absent, in a new slot and adds its postings. v
 * must be valid (indices strictly increasing and < dim; asserted). Exclusive lock held. */
void hdb__sparse_insert(hdb_sparse *s, int64_t label, const hdb_sparse_vec *v);

#endif /* HDB_SPARSE_INT_H */
