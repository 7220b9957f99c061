/*
 * hdb_attrindex.c - posting bitmaps and sorted value chunks per indexed attribute, the
 * per-label record of indexed values that updates and removals need, filter selection over
 * them, and the snapshot file.
 *
 * Structures, per attribute:
 *   postings  equality key (type byte + value bytes) -> roaring bitmap of labels
 *   nums      (order-preserving key of the value as a double, label), sorted, in chunks
 *   stamps    (order-preserving key of the timestamp, label), sorted, in chunks
 *   has       roaring bitmap of the labels that carry the attribute
 * and for the whole index `all` (every label) and recs[label], the indexed values of a label
 * (one allocation; NULL when the label is absent).
 *
 * Snapshot file (little-endian, hdb_fwriter CRC-32C trailer):
 *   "HDBATTR1"  u32 nattrs  { u16 len, name } x nattrs  u64 nlabels
 *   { u32 label  { u8 type (0: absent), value } x nattrs } x nlabels
 *   value: int64 / timestamp / float64 8 bytes; bool 1 byte; string / bytes u32 len + bytes.
 */
#include "hdb_attrindex.h"

#include "hdb_err.h"
#include "hdb_file.h"
#include "hdb_hmap.h"
#include "hdb_mem.h"

#include <math.h>
#include <pthread.h>
#include <roaring/roaring.h>
#include <stdio.h>
#include <string.h>

#define CHUNK_CAP 512
/* A posting's fixed cost: its map slots and an empty roaring bitmap. */
#define POSTING_OVERHEAD 96
#define FILE_MAGIC "HDBATTR1"
/* Integers beyond this magnitude do not all have their own double. */
#define EXACT_INT (INT64_C(1) << 53)

typedef struct {
    uint64_t key;
    uint32_t label;
} entry;

typedef struct {
    uint32_t n;
    entry e[CHUNK_CAP];
} chunk;

/* Entries sorted by (key, label), cut into chunks of at most CHUNK_CAP (none empty). */
typedef struct {
    chunk **c;
    size_t n, cap;
} run;

typedef struct {
    char *name;
    hdb_hmap *postings;
    run nums, stamps;
    roaring_bitmap_t *has;
    bool lossy; /* an int64 beyond 2^53 went into nums: number ranges are then supersets */
} attr_ix;

struct hdb_labelset {
    roaring_bitmap_t *bm;
};

struct hdb_attrindex {
    pthread_rwlock_t lock;
    attr_ix *attrs;
    size_t nattrs;
    hdb_value **recs; /* label -> nattrs values (type 0: absent), or NULL */
    size_t nrecs;
    roaring_bitmap_t *all;
    bool gave_up; /* a label outside [0, 2^32) was put */
    uint64_t rec_bytes;
    /* For hdb_attrindex_bytes without walking the postings: their keys and map slots, and
     * the (label, posting) pairs they hold (about 2 bytes each in roaring's containers). */
    uint64_t posting_key_bytes, posting_labels;
};

/* roaring_bitmap_free of CRoaring 0.2 does not take NULL. */
static void bm_free(const roaring_bitmap_t *bm) {
    if (bm != NULL) roaring_bitmap_free(bm);
}

/* ---------------------------------------------------------------- keys */

static uint64_t double_key(double d) {
    if (d == 0.0) d = 0.0; /* -0 and +0 are one value */
    uint64_t u;
    memcpy(&u, &d, sizeof u);
    return (u >> 63) ? ~u : u | (UINT64_C(1) << 63);
}

static uint64_t stamp_key(int64_t t) {
    return (uint64_t)t ^ (UINT64_C(1) << 63);
}

static bool posting_kind(hdb_attr_type t) {
    return t == HDB_ATTR_STRING || t == HDB_ATTR_INT64 || t == HDB_ATTR_BOOL ||
           t == HDB_ATTR_BYTES || t == HDB_ATTR_TIMESTAMP;
}

/* The equality key of v (a posting kind) in buf (at least 9 bytes) or, for strings and bytes,
 * in a new allocation *heap; returns its length and sets *key. */
static size_t posting_key(const hdb_value *v, unsigned char *buf, unsigned char **heap,
                          const unsigned char **key) {
    *heap = NULL;
    buf[0] = (unsigned char)v->type;
    switch (v->type) {
    case HDB_ATTR_STRING:
    case HDB_ATTR_BYTES:
        *heap = hdb_malloc(1 + v->u.s.n);
        (*heap)[0] = buf[0];
        if (v->u.s.n) memcpy(*heap + 1, v->u.s.p, v->u.s.n);
        *key = *heap;
        return 1 + v->u.s.n;
    case HDB_ATTR_BOOL: buf[1] = v->u.b; *key = buf; return 2;
    default: memcpy(buf + 1, &v->u.i, 8); *key = buf; return 9;
    }
}

/* ---------------------------------------------------------------- sorted runs */

static int entry_cmp(uint64_t ka, uint32_t la, const entry *b) {
    if (ka != b->key) return ka < b->key ? -1 : 1;
    return la == b->label ? 0 : (la < b->label ? -1 : 1);
}

/* The first chunk whose last entry is >= (key, label), or r->n. */
static size_t chunk_find(const run *r, uint64_t key, uint32_t label) {
    size_t lo = 0, hi = r->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const chunk *c = r->c[mid];
        if (entry_cmp(key, label, &c->e[c->n - 1]) > 0) lo = mid + 1;
        else hi = mid;
    }
    return lo;
}

/* The first position in c whose entry is >= (key, label). */
static uint32_t entry_find(const chunk *c, uint64_t key, uint32_t label) {
    uint32_t lo = 0, hi = c->n;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (entry_cmp(key, label, &c->e[mid]) > 0) lo = mid + 1;
        else hi = mid;
    }
    return lo;
}

static void run_insert(run *r, uint64_t key, uint32_t label) {
    if (r->n == 0) { /* the first entry: a chunk of one (chunks are never empty) */
        if (r->cap == 0) {
            r->cap = 8;
            r->c = hdb_malloc(r->cap * sizeof *r->c);
        }
        r->c[0] = hdb_malloc(sizeof(chunk));
        r->c[0]->n = 1;
        r->c[0]->e[0] = (entry){key, label};
        r->n = 1;
        return;
    }
    size_t ci = chunk_find(r, key, label);
    if (ci == r->n) ci = r->n - 1; /* past every entry: append to the last chunk */
    chunk *c = r->c[ci];
    if (c->n == CHUNK_CAP) { /* split in halves, then insert into the right one */
        if (r->n == r->cap) {
            r->cap *= 2;
            r->c = hdb_realloc(r->c, r->cap * sizeof *r->c);
        }
        chunk *d = hdb_malloc(sizeof(chunk));
        d->n = CHUNK_CAP / 2;
        memcpy(d->e, c->e + CHUNK_CAP / 2, (CHUNK_CAP / 2) * sizeof(entry));
        c->n = CHUNK_CAP / 2;
        memmove(r->c + ci + 2, r->c + ci + 1, (r->n - ci - 1) * sizeof *r->c);
        r->c[ci + 1] = d;
        r->n++;
        if (entry_cmp(key, label, &c->e[c->n - 1]) > 0) c = d;
    }
    uint32_t pos = entry_find(c, key, label);
    memmove(c->e + pos + 1, c->e + pos, (c->n - pos) * sizeof(entry));
    c->e[pos] = (entry){key, label};
    c->n++;
}

static void run_remove(run *r, uint64_t key, uint32_t label) {
    size_t ci = chunk_find(r, key, label);
    if (ci == r->n) return;
    chunk *c = r->c[ci];
    uint32_t pos = entry_find(c, key, label);
    if (pos == c->n || entry_cmp(key, label, &c->e[pos]) != 0) return;
    memmove(c->e + pos, c->e + pos + 1, (c->n - pos - 1) * sizeof(entry));
    if (--c->n == 0) {
        hdb_free(c);
        memmove(r->c + ci, r->c + ci + 1, (r->n - ci - 1) * sizeof *r->c);
        r->n--;
    }
}

/* Adds to bm the labels whose key lies in [lo, hi]. */
static void run_range(const run *r, uint64_t lo, uint64_t hi, roaring_bitmap_t *bm) {
    uint32_t batch[256];
    size_t nb = 0;
    for (size_t ci = chunk_find(r, lo, 0); ci < r->n; ci++) {
        const chunk *c = r->c[ci];
        for (uint32_t i = entry_find(c, lo, 0); i < c->n; i++) {
            if (c->e[i].key > hi) goto done;
            batch[nb++] = c->e[i].label;
            if (nb == 256) {
                roaring_bitmap_add_many(bm, nb, batch);
                nb = 0;
            }
        }
    }
done:
    roaring_bitmap_add_many(bm, nb, batch);
}

static void run_free(run *r) {
    for (size_t i = 0; i < r->n; i++) hdb_free(r->c[i]);
    hdb_free(r->c);
    memset(r, 0, sizeof *r);
}

/* ---------------------------------------------------------------- life */

int hdb_attrindex_create(hdb_attrindex **out, size_t n, const char *const *names, char *err,
                         size_t errlen) {
    if (n == 0 || n > HDB_ATTRINDEX_MAX)
        return hdb_errf(err, errlen, HDB_EINVAL, "between 1 and %d indexed attributes, got %zu",
                        HDB_ATTRINDEX_MAX, n);
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < i; j++)
            if (strcmp(names[i], names[j]) == 0)
                return hdb_errf(err, errlen, HDB_EINVAL, "\"%s\" is listed twice", names[i]);
    hdb_attrindex *ai = hdb_calloc(1, sizeof *ai);
    pthread_rwlock_init(&ai->lock, NULL);
    ai->nattrs = n;
    ai->attrs = hdb_calloc(n, sizeof *ai->attrs);
    for (size_t i = 0; i < n; i++) {
        ai->attrs[i].name = hdb_strdup(names[i]);
        ai->attrs[i].postings = hdb_hmap_create();
        ai->attrs[i].has = roaring_bitmap_create();
    }
    ai->all = roaring_bitmap_create();
    *out = ai;
    return HDB_OK;
}

static void free_posting(const void *key, size_t klen, void *value, void *arg) {
    (void)key, (void)klen, (void)arg;
    bm_free(value);
}

void hdb_attrindex_free(hdb_attrindex *ai) {
    if (ai == NULL) return;
    for (size_t i = 0; i < ai->nattrs; i++) {
        attr_ix *a = &ai->attrs[i];
        hdb_hmap_foreach(a->postings, free_posting, NULL);
        hdb_hmap_free(a->postings);
        run_free(&a->nums);
        run_free(&a->stamps);
        bm_free(a->has);
        hdb_free(a->name);
    }
    for (size_t i = 0; i < ai->nrecs; i++) hdb_free(ai->recs[i]);
    hdb_free(ai->recs);
    hdb_free(ai->attrs);
    bm_free(ai->all);
    pthread_rwlock_destroy(&ai->lock);
    hdb_free(ai);
}

size_t hdb_attrindex_nattrs(const hdb_attrindex *ai) {
    return ai->nattrs;
}

const char *hdb_attrindex_name(const hdb_attrindex *ai, size_t i) {
    return ai->attrs[i].name;
}

/* ---------------------------------------------------------------- changes (writer, locked) */

static void index_value(hdb_attrindex *ai, attr_ix *a, uint32_t label, const hdb_value *v,
                        bool add) {
    if (posting_kind(v->type)) {
        unsigned char buf[16], *heap;
        const unsigned char *key;
        size_t klen = posting_key(v, buf, &heap, &key);
        roaring_bitmap_t *bm = hdb_hmap_get(a->postings, key, klen);
        if (add) {
            if (bm == NULL) {
                bm = roaring_bitmap_create();
                hdb_hmap_put(a->postings, key, klen, bm);
                ai->posting_key_bytes += klen + POSTING_OVERHEAD;
            }
            ai->posting_labels += roaring_bitmap_add_checked(bm, label);
        } else if (bm != NULL) {
            ai->posting_labels -= roaring_bitmap_remove_checked(bm, label);
            if (roaring_bitmap_is_empty(bm)) {
                bm_free(hdb_hmap_del(a->postings, key, klen));
                ai->posting_key_bytes -= klen + POSTING_OVERHEAD;
            }
        }
        hdb_free(heap);
    }
    if (v->type == HDB_ATTR_INT64 || (v->type == HDB_ATTR_FLOAT64 && !isnan(v->u.f))) {
        double d = v->type == HDB_ATTR_INT64 ? (double)v->u.i : v->u.f;
        if (add) run_insert(&a->nums, double_key(d), label);
        else run_remove(&a->nums, double_key(d), label);
        if (add && v->type == HDB_ATTR_INT64 && (v->u.i > EXACT_INT || v->u.i < -EXACT_INT))
            a->lossy = true;
    }
    if (v->type == HDB_ATTR_TIMESTAMP) {
        if (add) run_insert(&a->stamps, stamp_key(v->u.i), label);
        else run_remove(&a->stamps, stamp_key(v->u.i), label);
    }
    if (add) roaring_bitmap_add(a->has, label);
    else roaring_bitmap_remove(a->has, label);
}

static void unindex(hdb_attrindex *ai, uint32_t label) {
    hdb_value *rec = label < ai->nrecs ? ai->recs[label] : NULL;
    if (rec == NULL) return;
    for (size_t i = 0; i < ai->nattrs; i++)
        if (rec[i].type != 0) index_value(ai, &ai->attrs[i], label, &rec[i], false);
    for (size_t i = 0; i < ai->nattrs; i++)
        if (rec[i].type == HDB_ATTR_STRING || rec[i].type == HDB_ATTR_BYTES)
            ai->rec_bytes -= rec[i].u.s.n;
    ai->rec_bytes -= ai->nattrs * sizeof *rec;
    hdb_free(rec);
    ai->recs[label] = NULL;
    roaring_bitmap_remove(ai->all, label);
}

/* Stores vals (nattrs, type 0: absent) as label's record, copying strings into one block. */
static void store_rec(hdb_attrindex *ai, uint32_t label, const hdb_value *vals) {
    size_t extra = 0;
    for (size_t i = 0; i < ai->nattrs; i++)
        if (vals[i].type == HDB_ATTR_STRING || vals[i].type == HDB_ATTR_BYTES)
            extra += vals[i].u.s.n;
    hdb_value *rec = hdb_malloc(ai->nattrs * sizeof *rec + extra + 1);
    char *data = (char *)(rec + ai->nattrs);
    for (size_t i = 0; i < ai->nattrs; i++) {
        rec[i] = vals[i];
        if (vals[i].type == HDB_ATTR_STRING || vals[i].type == HDB_ATTR_BYTES) {
            if (vals[i].u.s.n) memcpy(data, vals[i].u.s.p, vals[i].u.s.n);
            rec[i].u.s.p = data;
            data += vals[i].u.s.n;
        }
        if (rec[i].type != 0) index_value(ai, &ai->attrs[i], label, &rec[i], true);
    }
    if (label >= ai->nrecs) {
        size_t n = ai->nrecs ? ai->nrecs : 1024;
        while (n <= label) n *= 2;
        ai->recs = hdb_realloc(ai->recs, n * sizeof *ai->recs);
        memset(ai->recs + ai->nrecs, 0, (n - ai->nrecs) * sizeof *ai->recs);
        ai->nrecs = n;
    }
    ai->recs[label] = rec;
    ai->rec_bytes += ai->nattrs * sizeof *rec + extra;
    roaring_bitmap_add(ai->all, label);
}

void hdb_attrindex_put(hdb_attrindex *ai, int64_t label, const hdb_attr *attrs, size_t nattrs) {
    pthread_rwlock_wrlock(&ai->lock);
    if (label < 0 || label > (int64_t)UINT32_MAX) {
        ai->gave_up = true;
    } else if (!ai->gave_up) {
        hdb_value vals[HDB_ATTRINDEX_MAX];
        for (size_t i = 0; i < ai->nattrs; i++) {
            const hdb_attr *a = hdb_attr_find(attrs, nattrs, ai->attrs[i].name, true);
            if (a != NULL) vals[i] = a->value;
            else vals[i].type = 0;
        }
        unindex(ai, (uint32_t)label);
        store_rec(ai, (uint32_t)label, vals);
    }
    pthread_rwlock_unlock(&ai->lock);
}

void hdb_attrindex_remove(hdb_attrindex *ai, int64_t label) {
    pthread_rwlock_wrlock(&ai->lock);
    if (label >= 0 && label <= (int64_t)UINT32_MAX && !ai->gave_up) unindex(ai, (uint32_t)label);
    pthread_rwlock_unlock(&ai->lock);
}

/* ---------------------------------------------------------------- selection (readers) */

static attr_ix *attr_find(hdb_attrindex *ai, const char *name) {
    for (size_t i = 0; i < ai->nattrs; i++)
        if (strcmp(ai->attrs[i].name, name) == 0) return &ai->attrs[i];
    return NULL;
}

static bool big_int(const hdb_value *v) {
    return v->type == HDB_ATTR_INT64 && (v->u.i > EXACT_INT || v->u.i < -EXACT_INT);
}

/* A range condition over the sorted runs. The ends are widened to inclusive when doubles
 * cannot tell values apart (integers beyond 2^53): the set is then a superset. */
static roaring_bitmap_t *select_range(const attr_ix *a, const hdb_filter *f, bool *exact) {
    roaring_bitmap_t *bm = roaring_bitmap_create();
    const hdb_value *end = f->has_lo ? &f->lo : &f->hi;
    bool stamps = end->type == HDB_ATTR_TIMESTAMP;
    bool lossy = !stamps && (a->lossy || (f->has_lo && big_int(&f->lo)) ||
                             (f->has_hi && big_int(&f->hi)));
    uint64_t lo = 0, hi = UINT64_MAX;
    if (f->has_lo) {
        if (!stamps && f->lo.type == HDB_ATTR_FLOAT64 && isnan(f->lo.u.f)) return *exact = true, bm;
        lo = stamps ? stamp_key(f->lo.u.i)
                    : double_key(f->lo.type == HDB_ATTR_INT64 ? (double)f->lo.u.i : f->lo.u.f);
        if (!f->lo_incl && !lossy) {
            if (lo == UINT64_MAX) return *exact = true, bm;
            lo++;
        }
    }
    if (f->has_hi) {
        if (!stamps && f->hi.type == HDB_ATTR_FLOAT64 && isnan(f->hi.u.f)) return *exact = true, bm;
        hi = stamps ? stamp_key(f->hi.u.i)
                    : double_key(f->hi.type == HDB_ATTR_INT64 ? (double)f->hi.u.i : f->hi.u.f);
        if (!f->hi_incl && !lossy) {
            if (hi == 0) return *exact = true, bm;
            hi--;
        }
    }
    /* Keys of doubles: -0 was folded into +0, and the one key between two adjacent doubles
     * does not exist, so stepping a key by one skips exactly the end value. */
    if (lo <= hi) run_range(stamps ? &a->stamps : &a->nums, lo, hi, bm);
    *exact = !lossy;
    return bm;
}

/* The labels that may pass f, or NULL (no narrowing); *exact as in hdb_attrindex_select. */
static roaring_bitmap_t *select_node(hdb_attrindex *ai, const hdb_filter *f, bool *exact) {
    switch (f->op) {
    case HDB_FILTER_ALL: {
        roaring_bitmap_t *acc = NULL;
        bool ex = true;
        for (size_t i = 0; i < f->nkids; i++) {
            bool e;
            roaring_bitmap_t *b = select_node(ai, &f->kids[i], &e);
            if (b == NULL) {
                ex = false;
                continue;
            }
            ex = ex && e;
            if (acc == NULL) {
                acc = b;
            } else {
                roaring_bitmap_and_inplace(acc, b);
                bm_free(b);
            }
        }
        *exact = acc != NULL && ex;
        return acc;
    }
    case HDB_FILTER_ANY: {
        roaring_bitmap_t *acc = roaring_bitmap_create();
        bool ex = true;
        for (size_t i = 0; i < f->nkids; i++) {
            bool e;
            roaring_bitmap_t *b = select_node(ai, &f->kids[i], &e);
            if (b == NULL) {
                bm_free(acc);
                return NULL;
            }
            ex = ex && e;
            roaring_bitmap_or_inplace(acc, b);
            bm_free(b);
        }
        *exact = ex;
        return acc;
    }
    case HDB_FILTER_NOT: {
        bool e;
        roaring_bitmap_t *b = select_node(ai, &f->kids[0], &e);
        if (b == NULL || !e) { /* the complement of a superset bounds nothing */
            bm_free(b);
            return NULL;
        }
        roaring_bitmap_t *r = roaring_bitmap_andnot(ai->all, b);
        bm_free(b);
        *exact = true;
        return r;
    }
    default: break;
    }
    attr_ix *a = attr_find(ai, f->name);
    if (a == NULL) return NULL;
    *exact = true;
    switch (f->op) {
    case HDB_FILTER_EQUALS:
    case HDB_FILTER_ONE_OF: {
        roaring_bitmap_t *acc = roaring_bitmap_create();
        for (size_t i = 0; i < f->nvalues; i++) {
            if (!posting_kind(f->values[i].type)) continue; /* matches no point */
            unsigned char buf[16], *heap;
            const unsigned char *key;
            size_t klen = posting_key(&f->values[i], buf, &heap, &key);
            roaring_bitmap_t *bm = hdb_hmap_get(a->postings, key, klen);
            if (bm != NULL) roaring_bitmap_or_inplace(acc, bm);
            hdb_free(heap);
        }
        return acc;
    }
    case HDB_FILTER_RANGE: return select_range(a, f, exact);
    case HDB_FILTER_EXISTS:
        return f->exists ? roaring_bitmap_copy(a->has) : roaring_bitmap_andnot(ai->all, a->has);
    default: return NULL;
    }
}

void hdb_attrindex_select(hdb_attrindex *ai, const hdb_filter *f, hdb_labelset **out,
                          bool *exact) {
    *out = NULL;
    *exact = false;
    pthread_rwlock_rdlock(&ai->lock);
    roaring_bitmap_t *bm = ai->gave_up ? NULL : select_node(ai, f, exact);
    pthread_rwlock_unlock(&ai->lock);
    if (bm == NULL) {
        *exact = false;
        return;
    }
    hdb_labelset *s = hdb_malloc(sizeof *s);
    s->bm = bm;
    *out = s;
}

uint64_t hdb_attrindex_size(hdb_attrindex *ai) {
    pthread_rwlock_rdlock(&ai->lock);
    uint64_t n = roaring_bitmap_get_cardinality(ai->all);
    pthread_rwlock_unlock(&ai->lock);
    return n;
}

void hdb_attrindex_stats(hdb_attrindex *ai, size_t i, uint64_t *labels, uint64_t *distinct) {
    pthread_rwlock_rdlock(&ai->lock);
    *labels = roaring_bitmap_get_cardinality(ai->attrs[i].has);
    *distinct = hdb_hmap_size(ai->attrs[i].postings);
    pthread_rwlock_unlock(&ai->lock);
}

uint64_t hdb_attrindex_bytes(hdb_attrindex *ai) {
    pthread_rwlock_rdlock(&ai->lock);
    uint64_t b = ai->nrecs * sizeof *ai->recs + ai->rec_bytes + ai->posting_key_bytes +
                 2 * ai->posting_labels + roaring_bitmap_size_in_bytes(ai->all);
    for (size_t i = 0; i < ai->nattrs; i++) {
        const attr_ix *a = &ai->attrs[i];
        b += (a->nums.n + a->stamps.n) * sizeof(chunk) + roaring_bitmap_size_in_bytes(a->has);
    }
    pthread_rwlock_unlock(&ai->lock);
    return b;
}

/* ---------------------------------------------------------------- label sets */

bool hdb_labelset_has(const hdb_labelset *s, int64_t label) {
    return label >= 0 && label <= (int64_t)UINT32_MAX &&
           roaring_bitmap_contains(s->bm, (uint32_t)label);
}

uint64_t hdb_labelset_count(const hdb_labelset *s) {
    return roaring_bitmap_get_cardinality(s->bm);
}

size_t hdb_labelset_read(const hdb_labelset *s, uint64_t from, int64_t *out, size_t max) {
    uint64_t n = roaring_bitmap_get_cardinality(s->bm);
    if (from >= n || max == 0) return 0;
    size_t take = n - from < max ? (size_t)(n - from) : max;
    uint32_t *tmp = hdb_malloc(take * sizeof *tmp);
    roaring_bitmap_range_uint32_array(s->bm, (size_t)from, take, tmp);
    for (size_t i = 0; i < take; i++) out[i] = tmp[i];
    hdb_free(tmp);
    return take;
}

void hdb_labelset_free(hdb_labelset *s) {
    if (s == NULL) return;
    bm_free(s->bm);
    hdb_free(s);
}

/* ---------------------------------------------------------------- snapshot file */

int hdb_attrindex_save(hdb_attrindex *ai, const char *path, char *err, size_t errlen) {
    hdb_fwriter w;
    pthread_rwlock_rdlock(&ai->lock);
    int rc = hdb_fwriter_open(&w, path, err, errlen);
    if (rc != HDB_OK) goto out;
    hdb_fwriter_put(&w, FILE_MAGIC, 8);
    uint32_t n32 = (uint32_t)ai->nattrs;
    hdb_fwriter_put(&w, &n32, 4);
    for (size_t i = 0; i < ai->nattrs; i++) {
        uint16_t len = (uint16_t)strlen(ai->attrs[i].name);
        hdb_fwriter_put(&w, &len, 2);
        hdb_fwriter_put(&w, ai->attrs[i].name, len);
    }
    uint64_t nl = ai->gave_up ? 0 : roaring_bitmap_get_cardinality(ai->all);
    unsigned char gave_up = ai->gave_up;
    hdb_fwriter_put(&w, &gave_up, 1);
    hdb_fwriter_put(&w, &nl, 8);
    for (size_t l = 0; nl && l < ai->nrecs; l++) {
        const hdb_value *rec = ai->recs[l];
        if (rec == NULL) continue;
        uint32_t label = (uint32_t)l;
        hdb_fwriter_put(&w, &label, 4);
        for (size_t i = 0; i < ai->nattrs; i++) {
            unsigned char t = (unsigned char)rec[i].type;
            hdb_fwriter_put(&w, &t, 1);
            switch ((int)rec[i].type) {
            case 0: break;
            case HDB_ATTR_STRING:
            case HDB_ATTR_BYTES: {
                uint32_t len = (uint32_t)rec[i].u.s.n;
                hdb_fwriter_put(&w, &len, 4);
                hdb_fwriter_put(&w, rec[i].u.s.p, len);
                break;
            }
            case HDB_ATTR_BOOL: {
                unsigned char b = rec[i].u.b;
                hdb_fwriter_put(&w, &b, 1);
                break;
            }
            case HDB_ATTR_FLOAT64: hdb_fwriter_put(&w, &rec[i].u.f, 8); break;
            default: hdb_fwriter_put(&w, &rec[i].u.i, 8); break;
            }
        }
    }
    rc = hdb_fwriter_close(&w, err, errlen);
out:
    pthread_rwlock_unlock(&ai->lock);
    return rc;
}

/* A bounds-checked reader over a file's bytes. */
typedef struct {
    const unsigned char *p, *end;
    bool bad;
} reader;

static const void *take(reader *r, size_t n) {
    if (r->bad || (size_t)(r->end - r->p) < n) {
        r->bad = true;
        return NULL;
    }
    const void *at = r->p;
    r->p += n;
    return at;
}

static bool take_into(reader *r, void *dst, size_t n) {
    const void *s = take(r, n);
    if (s) memcpy(dst, s, n);
    return s != NULL;
}

int hdb_attrindex_load(hdb_attrindex *ai, const char *path, char *err, size_t errlen) {
    unsigned char *data;
    size_t len;
    int rc = hdb_file_read_checked(path, &data, &len, err, errlen);
    if (rc != HDB_OK) return rc == HDB_EIO ? rc : HDB_ECORRUPT;
    reader r = {data, data + len, false};
    const void *magic = take(&r, 8);
    uint32_t n32 = 0;
    take_into(&r, &n32, 4);
    if (magic == NULL || memcmp(magic, FILE_MAGIC, 8) != 0 || n32 != ai->nattrs) {
        rc = hdb_errf(err, errlen, HDB_ECORRUPT, "%s: not an attribute index of %zu attributes",
                      path, ai->nattrs);
        goto out;
    }
    for (size_t i = 0; i < ai->nattrs; i++) {
        uint16_t nl = 0;
        take_into(&r, &nl, 2);
        const char *name = take(&r, nl);
        if (name == NULL || strlen(ai->attrs[i].name) != nl ||
            memcmp(name, ai->attrs[i].name, nl) != 0) {
            rc = hdb_errf(err, errlen, HDB_ECORRUPT, "%s: indexes other attributes than the spec",
                          path);
            goto out;
        }
    }
    unsigned char gave_up = 0;
    uint64_t nlabels = 0;
    take_into(&r, &gave_up, 1);
    take_into(&r, &nlabels, 8);
    pthread_rwlock_wrlock(&ai->lock);
    ai->gave_up = gave_up != 0;
    hdb_value vals[HDB_ATTRINDEX_MAX];
    for (uint64_t l = 0; !r.bad && l < nlabels; l++) {
        uint32_t label = 0;
        take_into(&r, &label, 4);
        for (size_t i = 0; !r.bad && i < ai->nattrs; i++) {
            unsigned char t = 0;
            take_into(&r, &t, 1);
            vals[i].type = (hdb_attr_type)t;
            switch (t) {
            case 0: break;
            case HDB_ATTR_STRING:
            case HDB_ATTR_BYTES: {
                uint32_t sl = 0;
                take_into(&r, &sl, 4);
                vals[i].u.s.n = sl;
                vals[i].u.s.p = take(&r, sl);
                break;
            }
            case HDB_ATTR_BOOL: {
                unsigned char b = 0;
                take_into(&r, &b, 1);
                vals[i].u.b = b != 0;
                break;
            }
            case HDB_ATTR_FLOAT64: take_into(&r, &vals[i].u.f, 8); break;
            case HDB_ATTR_INT64:
            case HDB_ATTR_TIMESTAMP: take_into(&r, &vals[i].u.i, 8); break;
            default: r.bad = true;
            }
        }
        if (!r.bad && label < ai->nrecs && ai->recs[label] != NULL) r.bad = true; /* twice */
        if (!r.bad) store_rec(ai, label, vals);
    }
    pthread_rwlock_unlock(&ai->lock);
    if (r.bad || r.p != r.end)
        rc = hdb_errf(err, errlen, HDB_ECORRUPT, "%s: malformed attribute index", path);
out:
    hdb_free(data);
    return rc;
}
