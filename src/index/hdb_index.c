/*
 * hdb_index.c - splits of an index, each with a flat engine, and the merge of their results.
 */
#include "hdb_index.h"

#include "hdb_arena.h"
#include "hdb_err.h"
#include "hdb_flat.h"
#include "hdb_hmap.h"
#include "hdb_log.h"
#include "hdb_mem.h"
#include "hdb_record.h"

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/types.h>

typedef struct split {
    pthread_rwlock_t lock; /* shared for search, exclusive for upsert/remove */
    hdb_flat *engine;
    hdb_value *values; /* the split's values, deep-copied */
    size_t nvalues;
} split;

struct hdb_index {
    uint32_t dim;
    hdb_metric metric;
    size_t nsplit;
    char **split_names;
    hdb_attr_type *split_types;
    pthread_rwlock_t lock; /* guards `splits` and `list` */
    hdb_hmap *splits;      /* split key -> split */
    split **list;
    size_t nlist, caplist;
    _Atomic uint64_t applied_seq;
};

int hdb_index_create(hdb_index **out, const hdb_index_params *p, char *err, size_t errlen) {
    if (p->dim == 0) return hdb_errf(err, errlen, HDB_EINVAL, "index: dimension must be >= 1");
    if (p->metric < HDB_METRIC_L2 || p->metric > HDB_METRIC_COSINE)
        return hdb_errf(err, errlen, HDB_EINVAL, "index: unknown metric %d", (int)p->metric);
    hdb_index *ix = hdb_calloc(1, sizeof *ix);
    ix->dim = p->dim;
    ix->metric = p->metric;
    ix->nsplit = p->nsplit;
    if (p->nsplit) {
        ix->split_names = hdb_calloc(p->nsplit, sizeof *ix->split_names);
        ix->split_types = hdb_calloc(p->nsplit, sizeof *ix->split_types);
        for (size_t i = 0; i < p->nsplit; i++) {
            ix->split_names[i] = hdb_strdup(p->split_names[i]);
            ix->split_types[i] = p->split_types[i];
        }
    }
    pthread_rwlock_init(&ix->lock, NULL);
    ix->splits = hdb_hmap_create();
    *out = ix;
    return HDB_OK;
}

static void split_free(split *s) {
    hdb_flat_free(s->engine);
    for (size_t i = 0; i < s->nvalues; i++) {
        hdb_attr_type t = s->values[i].type;
        if (t == HDB_ATTR_STRING || t == HDB_ATTR_BYTES) hdb_free((void *)s->values[i].u.s.p);
    }
    hdb_free(s->values);
    pthread_rwlock_destroy(&s->lock);
    hdb_free(s);
}

void hdb_index_free(hdb_index *ix) {
    if (ix == NULL) return;
    for (size_t i = 0; i < ix->nlist; i++) split_free(ix->list[i]);
    hdb_free(ix->list);
    hdb_hmap_free(ix->splits);
    for (size_t i = 0; i < ix->nsplit; i++) hdb_free(ix->split_names[i]);
    hdb_free(ix->split_names);
    hdb_free(ix->split_types);
    pthread_rwlock_destroy(&ix->lock);
    hdb_free(ix);
}

/* Gathers the split values of a point (attrs sorted by name) in declared order. */
static int split_values(const hdb_index *ix, const hdb_attr *attrs, size_t nattrs,
                        hdb_value *vals, char *err, size_t errlen) {
    for (size_t i = 0; i < ix->nsplit; i++) {
        const hdb_attr *a = hdb_attr_find(attrs, nattrs, ix->split_names[i], true);
        if (a == NULL || a->value.type != ix->split_types[i])
            return hdb_errf(err, errlen, HDB_ECORRUPT, "point lacks split attribute %s of type %s",
                            ix->split_names[i], hdb_attr_type_name(ix->split_types[i]));
        vals[i] = a->value;
    }
    return HDB_OK;
}

/* Encodes split values into a key; small keys use the stack buffer via the arena. */
static void split_key(const hdb_index *ix, const hdb_value *vals, hdb_arena *arena, hdb_buf *key) {
    hdb_buf_init(key, arena, 64);
    hdb_tuple_encode(key, vals, ix->nsplit);
}

static split *split_new(hdb_index *ix, const hdb_value *vals) {
    split *s = hdb_calloc(1, sizeof *s);
    pthread_rwlock_init(&s->lock, NULL);
    char err[256];
    int rc = hdb_flat_create(&s->engine, ix->dim, ix->metric, err, sizeof err);
    HDB_ASSERT(rc == HDB_OK); /* dim and metric were checked at index creation */
    s->nvalues = ix->nsplit;
    if (ix->nsplit) {
        s->values = hdb_calloc(ix->nsplit, sizeof *s->values);
        for (size_t i = 0; i < ix->nsplit; i++) {
            s->values[i] = vals[i];
            if (vals[i].type == HDB_ATTR_STRING || vals[i].type == HDB_ATTR_BYTES)
                s->values[i].u.s.p = hdb_strndup(vals[i].u.s.p, vals[i].u.s.n);
        }
    }
    return s;
}

/* Finds the split of these values; creates it when create is set. */
static split *split_get(hdb_index *ix, const hdb_value *vals, bool create) {
    hdb_arena *arena = hdb_arena_create(256);
    hdb_buf key;
    split_key(ix, vals, arena, &key);
    pthread_rwlock_rdlock(&ix->lock);
    split *s = hdb_hmap_get(ix->splits, key.p, key.len);
    pthread_rwlock_unlock(&ix->lock);
    if (s == NULL && create) {
        pthread_rwlock_wrlock(&ix->lock);
        s = hdb_hmap_get(ix->splits, key.p, key.len);
        if (s == NULL) {
            s = split_new(ix, vals);
            hdb_hmap_put(ix->splits, key.p, key.len, s);
            if (ix->nlist == ix->caplist) {
                ix->caplist = ix->caplist ? ix->caplist * 2 : 4;
                ix->list = hdb_realloc(ix->list, ix->caplist * sizeof *ix->list);
            }
            ix->list[ix->nlist++] = s;
        }
        pthread_rwlock_unlock(&ix->lock);
    }
    hdb_arena_free(arena);
    return s;
}

int hdb_index_upsert(hdb_index *ix, int64_t label, const float *vec, const hdb_attr *attrs,
                     size_t nattrs, char *err, size_t errlen) {
    hdb_value vals[ix->nsplit ? ix->nsplit : 1];
    int rc = split_values(ix, attrs, nattrs, vals, err, errlen);
    if (rc != HDB_OK) return rc;
    split *s = split_get(ix, vals, true);
    pthread_rwlock_wrlock(&s->lock);
    rc = hdb_flat_upsert(s->engine, 1, &label, vec);
    pthread_rwlock_unlock(&s->lock);
    return rc;
}

int hdb_index_remove(hdb_index *ix, int64_t label, const hdb_attr *attrs, size_t nattrs,
                     char *err, size_t errlen) {
    hdb_value vals[ix->nsplit ? ix->nsplit : 1];
    int rc = split_values(ix, attrs, nattrs, vals, err, errlen);
    if (rc != HDB_OK) return rc;
    split *s = split_get(ix, vals, false);
    if (s == NULL) return HDB_OK;
    pthread_rwlock_wrlock(&s->lock);
    hdb_flat_remove(s->engine, 1, &label);
    pthread_rwlock_unlock(&s->lock);
    return HDB_OK;
}

static ssize_t split_attr_pos(const hdb_index *ix, const char *name) {
    for (size_t i = 0; i < ix->nsplit; i++)
        if (strcmp(ix->split_names[i], name) == 0) return (ssize_t)i;
    return -1;
}

int hdb_index_check_filter(const hdb_index *ix, const hdb_attr *filter, size_t nfilter,
                           char *err, size_t errlen) {
    for (size_t i = 0; i < nfilter; i++) {
        ssize_t pos = split_attr_pos(ix, filter[i].name);
        if (pos < 0) {
            if (ix->nsplit == 0)
                return hdb_errf(err, errlen, HDB_EINVAL,
                                "split_filter[\"%s\"]: the index has no split attributes",
                                filter[i].name);
            char names[512];
            size_t off = 0;
            names[0] = '\0';
            for (size_t j = 0; j < ix->nsplit && off < sizeof names; j++)
                off += (size_t)snprintf(names + off, sizeof names - off, "%s%s", j ? ", " : "",
                                        ix->split_names[j]);
            return hdb_errf(err, errlen, HDB_EINVAL,
                            "split_filter[\"%s\"]: not a split attribute of this index "
                            "(split attributes: %s)",
                            filter[i].name, names);
        }
        if (filter[i].value.type != ix->split_types[pos])
            return hdb_errf(err, errlen, HDB_EINVAL,
                            "split_filter[\"%s\"]: has type %s, the split attribute is %s",
                            filter[i].name, hdb_attr_type_name(filter[i].value.type),
                            hdb_attr_type_name(ix->split_types[pos]));
        for (size_t j = 0; j < i; j++)
            if (strcmp(filter[j].name, filter[i].name) == 0)
                return hdb_errf(err, errlen, HDB_EINVAL, "split_filter[\"%s\"]: given twice",
                                filter[i].name);
    }
    return HDB_OK;
}

static bool split_matches(const hdb_index *ix, const split *s, const hdb_attr *filter,
                          size_t nfilter) {
    for (size_t i = 0; i < nfilter; i++) {
        ssize_t pos = split_attr_pos(ix, filter[i].name);
        if (pos < 0 || hdb_value_cmp(&s->values[pos], &filter[i].value) != 0) return false;
    }
    return true;
}

/* Searches one split into tmp and merges tmp into acc (both nq x k). */
static void search_split(split *s, size_t nq, const float *queries, size_t k, hdb_hit *acc,
                         hdb_hit *tmp, bool first) {
    pthread_rwlock_rdlock(&s->lock);
    hdb_flat_search(s->engine, nq, queries, k, first ? acc : tmp);
    pthread_rwlock_unlock(&s->lock);
    if (first) return;
    hdb_hit *merged = tmp + nq * k; /* tmp has room for 2 x nq x k */
    for (size_t q = 0; q < nq; q++) {
        const hdb_hit *lists[2] = {acc + q * k, tmp + q * k};
        size_t lens[2] = {k, k};
        hdb_topk_merge(lists, lens, 2, k, merged);
        memcpy(acc + q * k, merged, k * sizeof *merged);
    }
}

int hdb_index_search(hdb_index *ix, size_t nq, const float *queries, size_t k,
                     const hdb_attr *filter, size_t nfilter, hdb_hit *out, char *err,
                     size_t errlen) {
    int rc = hdb_index_check_filter(ix, filter, nfilter, err, errlen);
    if (rc != HDB_OK) return rc;
    for (size_t i = 0; i < nq * k; i++) out[i] = (hdb_hit){INFINITY, -1};

    if (ix->nsplit > 0 && nfilter == ix->nsplit) {
        /* A full filter names exactly one split. */
        hdb_value vals[ix->nsplit];
        for (size_t i = 0; i < nfilter; i++) vals[split_attr_pos(ix, filter[i].name)] = filter[i].value;
        split *s = split_get(ix, vals, false);
        if (s != NULL) search_split(s, nq, queries, k, out, NULL, true);
        return HDB_OK;
    }

    hdb_hit *tmp = NULL;
    bool first = true;
    pthread_rwlock_rdlock(&ix->lock);
    for (size_t i = 0; i < ix->nlist; i++) {
        split *s = ix->list[i];
        if (!split_matches(ix, s, filter, nfilter)) continue;
        if (!first && tmp == NULL) tmp = hdb_malloc(2 * nq * k * sizeof *tmp);
        search_split(s, nq, queries, k, out, tmp, first);
        first = false;
    }
    pthread_rwlock_unlock(&ix->lock);
    hdb_free(tmp);
    return HDB_OK;
}

float hdb_index_distance(hdb_metric metric, float score) {
    return metric == HDB_METRIC_IP ? -score : score;
}

void hdb_index_set_applied(hdb_index *ix, uint64_t seq) {
    atomic_store(&ix->applied_seq, seq);
}

uint64_t hdb_index_applied(const hdb_index *ix) {
    return atomic_load(&((hdb_index *)ix)->applied_seq);
}

uint64_t hdb_index_size(hdb_index *ix) {
    uint64_t n = 0;
    pthread_rwlock_rdlock(&ix->lock);
    for (size_t i = 0; i < ix->nlist; i++) {
        pthread_rwlock_rdlock(&ix->list[i]->lock);
        n += hdb_flat_size(ix->list[i]->engine);
        pthread_rwlock_unlock(&ix->list[i]->lock);
    }
    pthread_rwlock_unlock(&ix->lock);
    return n;
}

size_t hdb_index_nsplits(hdb_index *ix) {
    pthread_rwlock_rdlock(&ix->lock);
    size_t n = ix->nlist;
    pthread_rwlock_unlock(&ix->lock);
    return n;
}

void hdb_index_foreach_split(hdb_index *ix,
                             void (*fn)(const hdb_value *values, size_t n, uint64_t size,
                                        void *arg),
                             void *arg) {
    pthread_rwlock_rdlock(&ix->lock);
    for (size_t i = 0; i < ix->nlist; i++) {
        split *s = ix->list[i];
        pthread_rwlock_rdlock(&s->lock);
        uint64_t size = hdb_flat_size(s->engine);
        pthread_rwlock_unlock(&s->lock);
        fn(s->values, s->nvalues, size, arg);
    }
    pthread_rwlock_unlock(&ix->lock);
}
