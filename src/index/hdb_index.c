/*
 * hdb_index.c - splits of an index, each with an engine; batched application of changes; the
 * merge of per-split results; snapshots of all splits with a manifest.
 *
 * Snapshot directory layout:
 *   MANIFEST            text, CRC-32C trailer (hdb_file): which seq, engine spec, split files
 *   s<seq>-<n>.eng      one engine file per split (the engine's own checked format)
 * MANIFEST lines:
 *   hilbertdb-index-snapshot 1
 *   seq <seq> time_us <t>
 *   engine <algo> dim <dim> metric <metric>
 *   splits <n>
 *   <split key in hex, or -> <file name>            (n lines)
 *   attrs <file name>                                (only with attribute indexes)
 * and, with attribute indexes, a<seq>.attrs (hdb_attrindex_save).
 */
#include "hdb_index.h"

#include "hdb_arena.h"
#include "hdb_err.h"
#include "hdb_file.h"
#include "hdb_hmap.h"
#include "hdb_log.h"
#include "hdb_mem.h"
#include "hdb_record.h"

#include <dirent.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

typedef struct split {
    hdb_engine *engine;
    hdb_value *values;  /* the split's values, deep-copied */
    unsigned char *key; /* tuple encoding of values */
    size_t klen;
} split;

struct hdb_index {
    hdb_engine_spec engine;
    size_t nsplit;
    char **split_names;
    hdb_attr_type *split_types;
    pthread_rwlock_t lock; /* guards `splits` and `list` (not the engines) */
    hdb_hmap *splits;      /* split key -> split */
    split **list;          /* in creation order */
    size_t nlist, caplist;
    _Atomic uint64_t applied_seq;
    hdb_attrindex *attrs; /* NULL: no attribute indexes */
};

int hdb_index_create(hdb_index **out, const hdb_index_params *p, char *err, size_t errlen) {
    int rc = hdb_engine_check(&p->engine, NULL, err, errlen);
    if (rc != HDB_OK) return rc;
    hdb_index *ix = hdb_calloc(1, sizeof *ix);
    ix->engine = p->engine;
    ix->nsplit = p->nsplit;
    if (p->nsplit) {
        ix->split_names = hdb_calloc(p->nsplit, sizeof *ix->split_names);
        ix->split_types = hdb_calloc(p->nsplit, sizeof *ix->split_types);
        for (size_t i = 0; i < p->nsplit; i++) {
            ix->split_names[i] = hdb_strdup(p->split_names[i]);
            ix->split_types[i] = p->split_types[i];
        }
    }
    if (p->nindexed > 0 &&
        (rc = hdb_attrindex_create(&ix->attrs, p->nindexed, p->indexed_names, err, errlen)) !=
            HDB_OK) {
        for (size_t i = 0; i < ix->nsplit; i++) hdb_free(ix->split_names[i]);
        hdb_free(ix->split_names);
        hdb_free(ix->split_types);
        hdb_free(ix);
        return rc;
    }
    pthread_rwlock_init(&ix->lock, NULL);
    ix->splits = hdb_hmap_create();
    *out = ix;
    return HDB_OK;
}

static void split_free(split *s) {
    if (s == NULL) return;
    hdb_engine_free(s->engine);
    hdb_free(s->values); /* the values point into key */
    hdb_free(s->key);
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
    hdb_attrindex_free(ix->attrs);
    pthread_rwlock_destroy(&ix->lock);
    hdb_free(ix);
}

const hdb_engine_spec *hdb_index_engine_spec(const hdb_index *ix) {
    return &ix->engine;
}

/* Gathers the split values of a point (attrs sorted by name) in declared order. */
static int split_values(const hdb_index *ix, const hdb_point *p, hdb_value *vals, char *err,
                        size_t errlen) {
    for (size_t i = 0; i < ix->nsplit; i++) {
        const hdb_attr *a = hdb_attr_find(p->attrs, p->nattrs, ix->split_names[i], true);
        if (a == NULL || a->value.type != ix->split_types[i])
            return hdb_errf(err, errlen, HDB_ECORRUPT, "point lacks split attribute %s of type %s",
                            ix->split_names[i], hdb_attr_type_name(ix->split_types[i]));
        vals[i] = a->value;
    }
    return HDB_OK;
}

/* Makes a split for a key whose values are decoded from (or point into) key itself. */
static split *split_new(const hdb_index *ix, const unsigned char *key, size_t klen,
                        hdb_engine *engine) {
    split *s = hdb_calloc(1, sizeof *s);
    s->key = hdb_malloc(klen ? klen : 1);
    if (klen) memcpy(s->key, key, klen);
    s->klen = klen;
    s->values = hdb_calloc(ix->nsplit ? ix->nsplit : 1, sizeof *s->values);
    /* Values point into the split's own copy of the key, so they live as long as it does. */
    int rc = hdb_tuple_decode(s->key, s->klen, s->values, ix->nsplit);
    HDB_ASSERT(rc == HDB_OK);
    s->engine = engine;
    return s;
}

static void split_add(hdb_index *ix, split *s) {
    hdb_hmap_put(ix->splits, s->key, s->klen, s);
    if (ix->nlist == ix->caplist) {
        ix->caplist = ix->caplist ? ix->caplist * 2 : 4;
        ix->list = hdb_realloc(ix->list, ix->caplist * sizeof *ix->list);
    }
    ix->list[ix->nlist++] = s;
}

/* Finds the split of a key; creates it (with an empty engine) when create is set. */
static int split_get(hdb_index *ix, const unsigned char *key, size_t klen, bool create,
                     split **out, char *err, size_t errlen) {
    pthread_rwlock_rdlock(&ix->lock);
    split *s = hdb_hmap_get(ix->splits, key, klen);
    pthread_rwlock_unlock(&ix->lock);
    if (s == NULL && create) {
        pthread_rwlock_wrlock(&ix->lock);
        s = hdb_hmap_get(ix->splits, key, klen);
        if (s == NULL) {
            hdb_engine *e;
            int rc = hdb_engine_create(&e, &ix->engine, err, errlen);
            if (rc != HDB_OK) {
                pthread_rwlock_unlock(&ix->lock);
                return rc;
            }
            s = split_new(ix, key, klen, e);
            split_add(ix, s);
        }
        pthread_rwlock_unlock(&ix->lock);
    }
    *out = s;
    return HDB_OK;
}

/* ---------------------------------------------------------------- apply */

typedef struct {
    unsigned char *key;
    size_t klen;
    size_t nup, nrm;
    int64_t *up_labels, *rm_labels;
    const hdb_point **up_points;
} group;

static bool is_sparse_engine(const hdb_index *ix) {
    return ix->engine.algo == HDB_ALGO_SPARSE;
}

static int apply_group(hdb_index *ix, group *g, hdb_arena *a, char *err, size_t errlen) {
    split *s;
    int rc = split_get(ix, g->key, g->klen, g->nup > 0, &s, err, errlen);
    if (rc != HDB_OK || s == NULL) return rc;
    if (g->nrm) hdb_engine_remove(s->engine, g->nrm, g->rm_labels);
    if (g->nup == 0) return HDB_OK;
    hdb_vecs v = {0};
    if (is_sparse_engine(ix)) {
        hdb_sparse_vec *sv = hdb_arena_alloc(a, g->nup * sizeof *sv);
        for (size_t i = 0; i < g->nup; i++) {
            if (!g->up_points[i]->sparse)
                return hdb_errf(err, errlen, HDB_ECORRUPT, "label %lld: dense vector for a "
                                "sparse index", (long long)g->up_labels[i]);
            sv[i] = g->up_points[i]->sp;
        }
        v.sparse = sv;
    } else {
        size_t dim = ix->engine.dim;
        float *rows = hdb_arena_alloc(a, g->nup * dim * sizeof *rows);
        for (size_t i = 0; i < g->nup; i++) {
            const hdb_point *p = g->up_points[i];
            if (p->vec == NULL || p->dim != dim)
                return hdb_errf(err, errlen, HDB_ECORRUPT,
                                "label %lld: vector does not fit the index (dimension %u)",
                                (long long)g->up_labels[i], ix->engine.dim);
            memcpy(rows + i * dim, p->vec, dim * sizeof *rows);
        }
        v.dense = rows;
    }
    return hdb_engine_upsert(s->engine, g->nup, g->up_labels, &v, err, errlen);
}

int hdb_index_apply(hdb_index *ix, size_t n, const hdb_index_op *ops, char *err, size_t errlen) {
    if (n == 0) return HDB_OK;
    int rc = HDB_OK;
    hdb_arena *a = hdb_arena_create(64 * 1024);
    hdb_hmap *last = hdb_hmap_create(); /* label -> 1 + index of its last op */
    hdb_hmap *gmap = hdb_hmap_create(); /* split key -> 1 + group index */
    for (size_t i = 0; i < n; i++)
        hdb_hmap_put(last, &ops[i].label, sizeof ops[i].label, (void *)(uintptr_t)(i + 1));

    group *groups = hdb_arena_calloc(a, n, sizeof *groups);
    size_t ngroups = 0;
    size_t *gidx = hdb_arena_alloc(a, n * sizeof *gidx);
    hdb_value vals[ix->nsplit ? ix->nsplit : 1];
    for (size_t i = 0; i < n; i++) {
        gidx[i] = SIZE_MAX;
        if ((uintptr_t)hdb_hmap_get(last, &ops[i].label, sizeof ops[i].label) != i + 1)
            continue; /* a later op for this label supersedes this one */
        if ((rc = split_values(ix, ops[i].point, vals, err, errlen)) != HDB_OK) {
            hdb_err_prefix(err, errlen, rc, "label %lld: ", (long long)ops[i].label);
            goto out;
        }
        hdb_buf key;
        hdb_buf_init(&key, a, 32);
        hdb_tuple_encode(&key, vals, ix->nsplit);
        size_t gi = (uintptr_t)hdb_hmap_get(gmap, key.p, key.len);
        if (gi == 0) {
            groups[ngroups].key = key.p;
            groups[ngroups].klen = key.len;
            hdb_hmap_put(gmap, key.p, key.len, (void *)(uintptr_t)(++ngroups));
            gi = ngroups;
        }
        gidx[i] = gi - 1;
        if (ops[i].remove) groups[gi - 1].nrm++;
        else groups[gi - 1].nup++;
        if (ix->attrs && ops[i].remove) hdb_attrindex_remove(ix->attrs, ops[i].label);
        else if (ix->attrs)
            hdb_attrindex_put(ix->attrs, ops[i].label, ops[i].point->attrs,
                              ops[i].point->nattrs);
    }
    for (size_t g = 0; g < ngroups; g++) {
        groups[g].up_labels = hdb_arena_alloc(a, (groups[g].nup + 1) * sizeof(int64_t));
        groups[g].up_points = hdb_arena_alloc(a, (groups[g].nup + 1) * sizeof(hdb_point *));
        groups[g].rm_labels = hdb_arena_alloc(a, (groups[g].nrm + 1) * sizeof(int64_t));
        groups[g].nup = groups[g].nrm = 0;
    }
    for (size_t i = 0; i < n; i++) {
        if (gidx[i] == SIZE_MAX) continue;
        group *g = &groups[gidx[i]];
        if (ops[i].remove) {
            g->rm_labels[g->nrm++] = ops[i].label;
        } else {
            g->up_labels[g->nup] = ops[i].label;
            g->up_points[g->nup++] = ops[i].point;
        }
    }
    for (size_t g = 0; g < ngroups && rc == HDB_OK; g++) rc = apply_group(ix, &groups[g], a, err, errlen);
out:
    hdb_hmap_free(gmap);
    hdb_hmap_free(last);
    hdb_arena_free(a);
    return rc;
}

int hdb_index_upsert(hdb_index *ix, int64_t label, const hdb_point *point, char *err,
                     size_t errlen) {
    hdb_index_op op = {.label = label, .remove = false, .point = point};
    return hdb_index_apply(ix, 1, &op, err, errlen);
}

int hdb_index_remove(hdb_index *ix, int64_t label, const hdb_point *point, char *err,
                     size_t errlen) {
    hdb_index_op op = {.label = label, .remove = true, .point = point};
    return hdb_index_apply(ix, 1, &op, err, errlen);
}

/* ---------------------------------------------------------------- search */

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

/* Searches one split into tmp (or straight into acc for the first) and merges into acc. */
static int search_split(split *s, size_t nq, const hdb_vecs *q, size_t k,
                        const hdb_search_opts *opts, hdb_hit *acc, hdb_hit *tmp, bool first,
                        char *err, size_t errlen) {
    int rc = hdb_engine_search(s->engine, nq, q, k, opts, first ? acc : tmp, err, errlen);
    if (rc != HDB_OK || first) return rc;
    hdb_hit *merged = tmp + nq * k; /* tmp has room for 2 x nq x k */
    for (size_t i = 0; i < nq; i++) {
        const hdb_hit *lists[2] = {acc + i * k, tmp + i * k};
        size_t lens[2] = {k, k};
        hdb_topk_merge(lists, lens, 2, k, merged);
        memcpy(acc + i * k, merged, k * sizeof *merged);
    }
    return HDB_OK;
}

int hdb_index_search(hdb_index *ix, size_t nq, const hdb_vecs *queries, size_t k,
                     const hdb_search_opts *opts, const hdb_attr *filter, size_t nfilter,
                     hdb_hit *out, char *err, size_t errlen) {
    int rc = hdb_index_check_filter(ix, filter, nfilter, err, errlen);
    if (rc != HDB_OK) return rc;
    for (size_t i = 0; i < nq * k; i++) out[i] = (hdb_hit){INFINITY, -1};

    if (ix->nsplit > 0 && nfilter == ix->nsplit) {
        /* A full filter names exactly one split. */
        hdb_value vals[ix->nsplit];
        for (size_t i = 0; i < nfilter; i++)
            vals[split_attr_pos(ix, filter[i].name)] = filter[i].value;
        hdb_arena *a = hdb_arena_create(256);
        hdb_buf key;
        hdb_buf_init(&key, a, 64);
        hdb_tuple_encode(&key, vals, ix->nsplit);
        split *s;
        split_get(ix, key.p, key.len, false, &s, NULL, 0);
        hdb_arena_free(a);
        if (s != NULL) rc = search_split(s, nq, queries, k, opts, out, NULL, true, err, errlen);
        return rc;
    }

    /* Splits are never removed, so a snapshot of the list stays valid without the lock. */
    pthread_rwlock_rdlock(&ix->lock);
    size_t n = ix->nlist;
    split **list = hdb_malloc((n ? n : 1) * sizeof *list);
    if (n) memcpy(list, ix->list, n * sizeof *list);
    pthread_rwlock_unlock(&ix->lock);
    hdb_hit *tmp = NULL;
    bool first = true;
    for (size_t i = 0; i < n && rc == HDB_OK; i++) {
        if (!split_matches(ix, list[i], filter, nfilter)) continue;
        if (!first && tmp == NULL) tmp = hdb_malloc(2 * nq * k * sizeof *tmp);
        rc = search_split(list[i], nq, queries, k, opts, out, tmp, first, err, errlen);
        first = false;
    }
    hdb_free(tmp);
    hdb_free(list);
    return rc;
}

void hdb_index_select(hdb_index *ix, const hdb_filter *f, hdb_labelset **out, bool *exact) {
    *out = NULL;
    *exact = false;
    if (ix->attrs != NULL) hdb_attrindex_select(ix->attrs, f, out, exact);
}

hdb_attrindex *hdb_index_attrs(hdb_index *ix) {
    return ix->attrs;
}

float hdb_index_distance(hdb_metric metric, float score) {
    return metric == HDB_METRIC_IP ? -score : score;
}

/* ---------------------------------------------------------------- status */

void hdb_index_set_applied(hdb_index *ix, uint64_t seq) {
    atomic_store(&ix->applied_seq, seq);
}

uint64_t hdb_index_applied(const hdb_index *ix) {
    return atomic_load(&((hdb_index *)ix)->applied_seq);
}

/* Copies the split list under the lock; engines are then used without it. */
static split **list_copy(hdb_index *ix, size_t *n) {
    pthread_rwlock_rdlock(&ix->lock);
    *n = ix->nlist;
    split **list = hdb_malloc((*n ? *n : 1) * sizeof *list);
    if (*n) memcpy(list, ix->list, *n * sizeof *list);
    pthread_rwlock_unlock(&ix->lock);
    return list;
}

uint64_t hdb_index_size(hdb_index *ix) {
    size_t n;
    split **list = list_copy(ix, &n);
    uint64_t total = 0;
    for (size_t i = 0; i < n; i++) total += hdb_engine_size(list[i]->engine);
    hdb_free(list);
    return total;
}

uint64_t hdb_index_size_matching(hdb_index *ix, const hdb_attr *filter, size_t nfilter) {
    size_t n;
    split **list = list_copy(ix, &n);
    uint64_t total = 0;
    for (size_t i = 0; i < n; i++)
        if (split_matches(ix, list[i], filter, nfilter)) total += hdb_engine_size(list[i]->engine);
    hdb_free(list);
    return total;
}

bool hdb_index_point_matches(const hdb_index *ix, const hdb_point *p, const hdb_attr *filter,
                             size_t nfilter) {
    for (size_t i = 0; i < nfilter; i++) {
        const hdb_attr *a = hdb_attr_find(p->attrs, p->nattrs, filter[i].name, true);
        if (a == NULL || hdb_value_cmp(&a->value, &filter[i].value) != 0) return false;
    }
    (void)ix;
    return true;
}

void hdb_index_mem(hdb_index *ix, hdb_engine_memory *out) {
    size_t n;
    split **list = list_copy(ix, &n);
    *out = (hdb_engine_memory){0, 0};
    for (size_t i = 0; i < n; i++) {
        hdb_engine_memory m;
        hdb_engine_mem(list[i]->engine, &m);
        out->vector_bytes += m.vector_bytes;
        out->other_bytes += m.other_bytes;
    }
    hdb_free(list);
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
    size_t n;
    split **list = list_copy(ix, &n);
    for (size_t i = 0; i < n; i++)
        fn(list[i]->values, ix->nsplit, hdb_engine_size(list[i]->engine), arg);
    hdb_free(list);
}

void hdb_index_describe(hdb_index *ix, char *buf, size_t buflen) {
    size_t n, noted = 0;
    char first[256] = "";
    split **list = list_copy(ix, &n);
    for (size_t i = 0; i < n; i++) {
        char d[256];
        hdb_engine_describe(list[i]->engine, d, sizeof d);
        if (d[0] && noted++ == 0) snprintf(first, sizeof first, "%s", d);
    }
    hdb_free(list);
    if (noted == 0) snprintf(buf, buflen, "%s", "");
    else snprintf(buf, buflen, "%zu of %zu splits %s", noted, n, first);
}

/* ---------------------------------------------------------------- snapshots */

#define MANIFEST "MANIFEST"
#define MANIFEST_MAGIC "hilbertdb-index-snapshot 1"

static void hex(const unsigned char *p, size_t n, char *out) {
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[p[i] >> 4];
        out[2 * i + 1] = digits[p[i] & 15];
    }
    out[2 * n] = '\0';
}

static int unhex(const char *s, size_t len, unsigned char *out) {
    if (len % 2) return -1;
    for (size_t i = 0; i < len / 2; i++) {
        int v = 0;
        for (int j = 0; j < 2; j++) {
            char c = s[2 * i + j];
            int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
            if (d < 0) return -1;
            v = v * 16 + d;
        }
        out[i] = (unsigned char)v;
    }
    return 0;
}

/* Removes files in dir that are neither MANIFEST nor named in keep (n names). */
static void remove_stale(const char *dir, char **keep, size_t n) {
    DIR *d = opendir(dir);
    if (d == NULL) return;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.' || strcmp(e->d_name, MANIFEST) == 0) continue;
        bool kept = false;
        for (size_t i = 0; i < n && !kept; i++) kept = strcmp(keep[i], e->d_name) == 0;
        if (kept) continue;
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        unlink(path);
    }
    closedir(d);
}

int hdb_index_save(hdb_index *ix, const char *dir, uint64_t seq, char *err, size_t errlen) {
    int rc = hdb_mkdir_p(dir, err, errlen);
    if (rc != HDB_OK) return rc;
    size_t n;
    split **list = list_copy(ix, &n);
    char **names = hdb_calloc(n + 1, sizeof *names); /* the splits' files, then attrs' */
    char path[4096], tmp[4096];
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    int64_t now_us = (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;

    for (size_t i = 0; i < n && rc == HDB_OK; i++) {
        char name[64];
        snprintf(name, sizeof name, "s%" PRIu64 "-%zu.eng", seq, i);
        names[i] = hdb_strdup(name);
        snprintf(tmp, sizeof tmp, "%s/%s.tmp", dir, name);
        snprintf(path, sizeof path, "%s/%s", dir, name);
        rc = hdb_engine_save(list[i]->engine, tmp, err, errlen);
        if (rc == HDB_OK) rc = hdb_file_fsync(tmp, err, errlen);
        if (rc == HDB_OK) rc = hdb_file_rename(tmp, path, err, errlen);
        if (rc != HDB_OK) unlink(tmp);
    }
    size_t nfiles = n;
    if (rc == HDB_OK && ix->attrs != NULL) {
        char name[64];
        snprintf(name, sizeof name, "a%" PRIu64 ".attrs", seq);
        names[nfiles++] = hdb_strdup(name);
        snprintf(tmp, sizeof tmp, "%s/%s.tmp", dir, name);
        snprintf(path, sizeof path, "%s/%s", dir, name);
        rc = hdb_attrindex_save(ix->attrs, tmp, err, errlen);
        if (rc == HDB_OK) rc = hdb_file_rename(tmp, path, err, errlen);
        if (rc != HDB_OK) unlink(tmp);
    }
    if (rc == HDB_OK) {
        hdb_fwriter w;
        snprintf(tmp, sizeof tmp, "%s/%s.tmp", dir, MANIFEST);
        snprintf(path, sizeof path, "%s/%s", dir, MANIFEST);
        rc = hdb_fwriter_open(&w, tmp, err, errlen);
        if (rc == HDB_OK) {
            char line[8192];
            int m = snprintf(line, sizeof line,
                             "%s\nseq %" PRIu64 " time_us %" PRId64 "\nengine %s dim %u metric %d\n"
                             "splits %zu\n",
                             MANIFEST_MAGIC, seq, now_us, hdb_algo_name(ix->engine.algo),
                             ix->engine.dim, (int)ix->engine.metric, n);
            hdb_fwriter_put(&w, line, (size_t)m);
            for (size_t i = 0; i < n; i++) {
                char *hk = hdb_malloc(2 * list[i]->klen + 2);
                if (list[i]->klen) hex(list[i]->key, list[i]->klen, hk);
                else strcpy(hk, "-");
                hdb_fwriter_put(&w, hk, strlen(hk));
                hdb_fwriter_put(&w, " ", 1);
                hdb_fwriter_put(&w, names[i], strlen(names[i]));
                hdb_fwriter_put(&w, "\n", 1);
                hdb_free(hk);
            }
            if (nfiles > n) {
                hdb_fwriter_put(&w, "attrs ", 6);
                hdb_fwriter_put(&w, names[n], strlen(names[n]));
                hdb_fwriter_put(&w, "\n", 1);
            }
            rc = hdb_fwriter_close(&w, err, errlen);
            if (rc == HDB_OK) rc = hdb_file_rename(tmp, path, err, errlen);
        }
    }
    if (rc == HDB_OK) remove_stale(dir, names, nfiles);
    for (size_t i = 0; i < nfiles; i++) hdb_free(names[i]);
    hdb_free(names);
    hdb_free(list);
    return rc;
}

/* Returns the next line of [*p, end) (NUL-terminating it in place) or NULL. */
static char *next_line(char **p, char *end) {
    if (*p >= end) return NULL;
    char *line = *p, *nl = memchr(line, '\n', (size_t)(end - line));
    if (nl == NULL) return NULL;
    *nl = '\0';
    *p = nl + 1;
    return line;
}

int hdb_index_load(hdb_index **out, const hdb_index_params *p, const char *dir, uint64_t *seq,
                   int64_t *time_us, char *err, size_t errlen) {
    char path[4096];
    unsigned char *data = NULL;
    size_t len;
    hdb_index *ix = NULL;
    snprintf(path, sizeof path, "%s/%s", dir, MANIFEST);
    if (access(path, F_OK) != 0)
        return hdb_errf(err, errlen, HDB_ENOTFOUND, "no snapshot in %s", dir);
    int rc = hdb_file_read_checked(path, &data, &len, err, errlen);
    if (rc != HDB_OK) return rc == HDB_EIO ? rc : HDB_ECORRUPT;
    char *cur = (char *)data, *end = (char *)data + len;
    char *line = next_line(&cur, end);
    char algo[32];
    unsigned dim;
    int metric;
    size_t nsplits;
    uint64_t s;
    int64_t t;
    if (line == NULL || strcmp(line, MANIFEST_MAGIC) != 0 ||
        (line = next_line(&cur, end)) == NULL ||
        sscanf(line, "seq %" SCNu64 " time_us %" SCNd64, &s, &t) != 2 ||
        (line = next_line(&cur, end)) == NULL ||
        sscanf(line, "engine %31s dim %u metric %d", algo, &dim, &metric) != 3 ||
        (line = next_line(&cur, end)) == NULL || sscanf(line, "splits %zu", &nsplits) != 1) {
        rc = hdb_errf(err, errlen, HDB_ECORRUPT, "%s: malformed manifest", path);
        goto out;
    }
    if (strcmp(algo, hdb_algo_name(p->engine.algo)) != 0 || dim != p->engine.dim ||
        metric != (int)p->engine.metric) {
        rc = hdb_errf(err, errlen, HDB_ECORRUPT,
                      "%s: snapshot of a %s/%u/%d engine, the index is %s/%u/%d", path, algo, dim,
                      metric, hdb_algo_name(p->engine.algo), p->engine.dim, (int)p->engine.metric);
        goto out;
    }
    if ((rc = hdb_index_create(&ix, p, err, errlen)) != HDB_OK) goto out;
    for (size_t i = 0; i < nsplits; i++) {
        char *sp;
        if ((line = next_line(&cur, end)) == NULL || (sp = strchr(line, ' ')) == NULL ||
            strchr(sp + 1, '/') != NULL || sp[1] == '\0') {
            rc = hdb_errf(err, errlen, HDB_ECORRUPT, "%s: malformed split line %zu", path, i);
            goto out;
        }
        *sp = '\0';
        size_t hlen = strlen(line);
        unsigned char *key = hdb_malloc(hlen / 2 + 1);
        size_t klen = strcmp(line, "-") == 0 ? 0 : hlen / 2;
        hdb_value vals[ix->nsplit ? ix->nsplit : 1];
        if ((klen && unhex(line, hlen, key) != 0) ||
            hdb_tuple_decode(key, klen, vals, ix->nsplit) != HDB_OK) {
            hdb_free(key);
            rc = hdb_errf(err, errlen, HDB_ECORRUPT, "%s: bad split key on line %zu", path, i);
            goto out;
        }
        for (size_t j = 0; j < ix->nsplit; j++) {
            if (vals[j].type != ix->split_types[j]) {
                hdb_free(key);
                rc = hdb_errf(err, errlen, HDB_ECORRUPT, "%s: split key of the wrong type", path);
                goto out;
            }
        }
        char epath[4096];
        snprintf(epath, sizeof epath, "%s/%s", dir, sp + 1);
        hdb_engine *e;
        rc = hdb_engine_load(&e, &p->engine, epath, err, errlen);
        if (rc != HDB_OK) {
            hdb_free(key);
            if (rc != HDB_EIO) rc = HDB_ECORRUPT;
            goto out;
        }
        split *spl = split_new(ix, key, klen, e);
        hdb_free(key);
        if (hdb_hmap_get(ix->splits, spl->key, spl->klen) != NULL) {
            split_free(spl);
            rc = hdb_errf(err, errlen, HDB_ECORRUPT, "%s: split listed twice", path);
            goto out;
        }
        split_add(ix, spl);
    }
    line = next_line(&cur, end);
    if (ix->attrs != NULL) {
        if (line == NULL || strncmp(line, "attrs ", 6) != 0 || strchr(line + 6, '/') != NULL ||
            line[6] == '\0') {
            rc = hdb_errf(err, errlen, HDB_ECORRUPT,
                          "%s: the snapshot holds no attribute indexes, the index declares %zu",
                          path, hdb_attrindex_nattrs(ix->attrs));
            goto out;
        }
        char apath[4096];
        snprintf(apath, sizeof apath, "%s/%s", dir, line + 6);
        if ((rc = hdb_attrindex_load(ix->attrs, apath, err, errlen)) != HDB_OK) {
            if (rc != HDB_EIO) rc = HDB_ECORRUPT;
            goto out;
        }
    }
    hdb_index_set_applied(ix, s);
    *seq = s;
    *time_us = t;
    *out = ix;
    ix = NULL;
out:
    hdb_index_free(ix);
    hdb_free(data);
    return rc;
}

/* Links the files the manifest dst/MANIFEST names from dir into dst. HDB_ENOTFOUND when one is
 * gone (a newer snapshot replaced it). */
static int copy_split_files(const char *dir, const char *dst, uint64_t *seq, uint64_t *bytes,
                            char *err, size_t errlen) {
    char path[4096], to[4096];
    unsigned char *data = NULL;
    size_t len, nsplits;
    snprintf(path, sizeof path, "%s/%s", dst, MANIFEST);
    int rc = hdb_file_read_checked(path, &data, &len, err, errlen);
    if (rc != HDB_OK) return rc == HDB_EIO ? rc : HDB_ECORRUPT;
    char *cur = (char *)data, *end = (char *)data + len, *line = next_line(&cur, end);
    int64_t t;
    if (line == NULL || strcmp(line, MANIFEST_MAGIC) != 0 ||
        (line = next_line(&cur, end)) == NULL ||
        sscanf(line, "seq %" SCNu64 " time_us %" SCNd64, seq, &t) != 2 ||
        next_line(&cur, end) == NULL || (line = next_line(&cur, end)) == NULL ||
        sscanf(line, "splits %zu", &nsplits) != 1) {
        rc = hdb_errf(err, errlen, HDB_ECORRUPT, "%s/%s: malformed manifest", dir, MANIFEST);
        goto out;
    }
    for (size_t i = 0; i < nsplits && rc == HDB_OK; i++) {
        char *sp;
        if ((line = next_line(&cur, end)) == NULL || (sp = strchr(line, ' ')) == NULL ||
            strchr(sp + 1, '/') != NULL || sp[1] == '\0') {
            rc = hdb_errf(err, errlen, HDB_ECORRUPT, "%s/%s: malformed split line %zu", dir,
                          MANIFEST, i);
            break;
        }
        snprintf(path, sizeof path, "%s/%s", dir, sp + 1);
        snprintf(to, sizeof to, "%s/%s", dst, sp + 1);
        rc = hdb_file_link_or_copy(path, to, bytes, err, errlen);
    }
    if (rc == HDB_OK && (line = next_line(&cur, end)) != NULL && strncmp(line, "attrs ", 6) == 0 &&
        line[6] != '\0' && strchr(line + 6, '/') == NULL) {
        snprintf(path, sizeof path, "%s/%s", dir, line + 6);
        snprintf(to, sizeof to, "%s/%s", dst, line + 6);
        rc = hdb_file_link_or_copy(path, to, bytes, err, errlen);
    }
out:
    hdb_free(data);
    return rc;
}

/* Removes the regular files of dst (a failed attempt). */
static void empty_dir(const char *dst) {
    DIR *d = opendir(dst);
    if (d == NULL) return;
    struct dirent *e;
    char path[4096];
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
        snprintf(path, sizeof path, "%s/%s", dst, e->d_name);
        unlink(path);
    }
    closedir(d);
}

int hdb_index_snapshot_copy(const char *dir, const char *dst, uint64_t *seq, uint64_t *bytes,
                            char *err, size_t errlen) {
    char from[4096], to[4096];
    snprintf(from, sizeof from, "%s/%s", dir, MANIFEST);
    snprintf(to, sizeof to, "%s/%s", dst, MANIFEST);
    int rc = HDB_ENOTFOUND;
    /* The manifest first: its link (or open file, for a copy) keeps the snapshot it names
     * readable even if a save renames a newer one over it meanwhile; a split file removed by
     * that save shows up as ENOENT, and then the newer snapshot is copied instead. */
    for (int attempt = 0; attempt < 20; attempt++) {
        uint64_t got = 0;
        rc = hdb_file_link_or_copy(from, to, &got, err, errlen);
        if (rc == HDB_ENOTFOUND)
            return hdb_errf(err, errlen, HDB_ENOTFOUND, "no snapshot in %s", dir);
        if (rc == HDB_OK) rc = copy_split_files(dir, dst, seq, &got, err, errlen);
        if (rc == HDB_OK) {
            if (bytes != NULL) *bytes += got;
            return HDB_OK;
        }
        empty_dir(dst);
        if (rc != HDB_ENOTFOUND) return rc;
    }
    return hdb_errf(err, errlen, HDB_EIO, "%s: snapshots are replaced faster than they copy", dir);
}
