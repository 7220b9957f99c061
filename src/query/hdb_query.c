/*
 * hdb_query.c - request checks, index search and attribute attachment for Search.
 */
#include "hdb_query.h"

#include "hdb_arena.h"
#include "hdb_catalog.h"
#include "hdb_config.h"
#include "hdb_distance.h"
#include "hdb_err.h"
#include "hdb_index.h"
#include "hdb_ingest.h"
#include "hdb_mem.h"
#include "hdb_topk.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static int check_queries(const hdb_ixent *ix, const hdb_query_vec *q, size_t nq, uint32_t dim,
                         char *err, size_t errlen) {
    for (size_t i = 0; i < nq; i++) {
        if (q[i].vec == NULL)
            return hdb_errf(err, errlen, HDB_EINVAL,
                            "query_vectors[%zu]: a dense vector is required", i);
        if (q[i].dim != dim)
            return hdb_errf(err, errlen, HDB_EINVAL,
                            "query_vectors[%zu]: has dimension %zu, index %s expects %u", i,
                            q[i].dim, ix->label, dim);
        size_t bad;
        if (!hdb_all_finite(q[i].vec, dim, &bad))
            return hdb_errf(err, errlen, HDB_EINVAL,
                            "query_vectors[%zu]: component %zu is %s; vectors must be finite", i,
                            bad, q[i].vec[bad] != q[i].vec[bad] ? "NaN" : "infinite");
        if (ix->metric == HDB_METRIC_COSINE && hdb_norm_sq(q[i].vec, dim) == 0.0f)
            return hdb_errf(err, errlen, HDB_EINVAL,
                            "query_vectors[%zu]: a zero vector has no direction under the cosine "
                            "metric",
                            i);
    }
    return HDB_OK;
}

/* How many extra candidates a search may ask the engine for to replace points that were
 * deleted while it ran. */
#define MAX_REFILL 4096

/* The score ("smaller is better") of stored vector v for query q, exactly. */
static float rescore(hdb_metric metric, const float *q, float qnorm, const float *v, size_t dim) {
    switch (metric) {
    case HDB_METRIC_L2: return hdb_l2sq(q, v, dim);
    case HDB_METRIC_IP: return -hdb_ip(q, v, dim);
    default: {
        float vn = sqrtf(hdb_norm_sq(v, dim));
        if (vn == 0.0f) return 1.0f; /* a stored zero vector: cosine 0 by convention */
        return 1.0f - hdb_ip(q, v, dim) / (qnorm * vn);
    }
    }
}

static int hit_cmp(const void *a, const void *b) {
    const hdb_query_hit *x = a, *y = b;
    if (x->distance != y->distance) return x->distance < y->distance ? -1 : 1;
    return x->pid < y->pid ? -1 : (x->pid > y->pid);
}

/* Reads the records of the engine's hits (nq x fetch), re-scores them, drops points that are
 * gone, and keeps the best kk per query, sorted, in results. */
static int attach(hdb_ixent *ix, const float *mat, size_t nq, size_t dim, const hdb_hit *hits,
                  size_t fetch, size_t kk, hdb_arena *arena, hdb_query_result *results,
                  char *err, size_t errlen) {
    size_t total = 0;
    for (size_t i = 0; i < nq * fetch; i++) total += hits[i].label >= 0;
    uint64_t *pids = hdb_arena_alloc(arena, (total ? total : 1) * sizeof *pids);
    hdb_get_result *recs = hdb_arena_alloc(arena, (total ? total : 1) * sizeof *recs);
    size_t t = 0;
    for (size_t i = 0; i < nq * fetch; i++)
        if (hits[i].label >= 0) pids[t++] = (uint64_t)hits[i].label;
    int rc = hdb_ingest_get_pids(ix->source, pids, total, arena, recs, err, errlen);
    if (rc != HDB_OK) return rc;
    t = 0;
    for (size_t q = 0; q < nq; q++) {
        const float *qv = mat + q * dim;
        float qnorm = ix->metric == HDB_METRIC_COSINE ? sqrtf(hdb_norm_sq(qv, dim)) : 0.0f;
        hdb_query_result *r = &results[q];
        r->hits = hdb_arena_alloc(arena, fetch * sizeof *r->hits);
        r->n = 0;
        for (size_t j = 0; j < fetch; j++) {
            if (hits[q * fetch + j].label < 0) continue;
            const hdb_get_result *g = &recs[t++];
            if (!g->found || g->rec.point.dim != dim) continue; /* deleted meanwhile */
            hdb_query_hit *h = &r->hits[r->n++];
            h->distance = rescore(ix->metric, qv, qnorm, g->rec.point.vec, dim);
            h->pid = g->pid;
            h->rec = g->rec;
        }
        qsort(r->hits, r->n, sizeof *r->hits, hit_cmp);
        if (r->n > kk) r->n = kk;
        for (size_t j = 0; j < r->n; j++)
            r->hits[j].distance = hdb_index_distance(ix->metric, r->hits[j].distance);
    }
    return HDB_OK;
}

int hdb_query_search(hdb_ixent *ix, const hdb_config *cfg, const hdb_query_vec *queries,
                     size_t nq, int64_t k, const hdb_attr *filter, size_t nfilter,
                     hdb_arena *arena, hdb_query_result *results, char *err, size_t errlen) {
    uint32_t dim = ix->source->schema.dim;
    if (nq == 0)
        return hdb_errf(err, errlen, HDB_EINVAL,
                        "query_vectors: at least one query vector is required");
    if (nq > cfg->max_query_vectors)
        return hdb_errf(err, errlen, HDB_ELIMIT,
                        "query_vectors: %zu queries exceed limits.max_query_vectors (%u)", nq,
                        cfg->max_query_vectors);
    if (k <= 0) return hdb_errf(err, errlen, HDB_EINVAL, "k: must be >= 1, got %lld", (long long)k);
    if (k > (int64_t)cfg->max_k)
        return hdb_errf(err, errlen, HDB_EINVAL, "k: %lld exceeds limits.max_k (%u)",
                        (long long)k, cfg->max_k);
    if ((uint64_t)nq * (uint64_t)k > cfg->max_results)
        return hdb_errf(err, errlen, HDB_ELIMIT,
                        "k: %zu query vectors x k %lld = %llu results exceed limits.max_results "
                        "(%u); send fewer queries per request or a smaller k",
                        nq, (long long)k, (unsigned long long)nq * (unsigned long long)k,
                        cfg->max_results);
    int rc = check_queries(ix, queries, nq, dim, err, errlen);
    if (rc == HDB_OK) rc = hdb_index_check_filter(ix->index, filter, nfilter, err, errlen);
    if (rc != HDB_OK) return rc;

    /* Gather the queries into one row-major matrix for the engines. */
    size_t kk = (size_t)k;
    float *mat = hdb_malloc(nq * dim * sizeof *mat);
    for (size_t i = 0; i < nq; i++) memcpy(mat + i * dim, queries[i].vec, dim * sizeof *mat);

    /* The engine's hits are candidates: each is re-scored against the vector of the record
     * that is returned with it, so a distance always matches its point even when the point was
     * replaced after the engine saw it (and approximate engine distances become exact). A point
     * deleted in the meantime is dropped; when that leaves a query short, the engine is asked
     * again for more candidates. */
    size_t fetch = kk;
    hdb_hit *hits = NULL;
    for (int attempt = 0;; attempt++) {
        hdb_free(hits);
        hits = hdb_malloc(nq * fetch * sizeof *hits);
        rc = hdb_index_search(ix->index, nq, mat, fetch, filter, nfilter, hits, err, errlen);
        if (rc != HDB_OK) break;
        rc = attach(ix, mat, nq, dim, hits, fetch, kk, arena, results, err, errlen);
        if (rc != HDB_OK) break;
        bool short_and_more = false;
        for (size_t q = 0; q < nq && !short_and_more; q++)
            short_and_more = results[q].n < kk && hits[q * fetch + fetch - 1].label >= 0;
        size_t next = fetch * 2 < kk + MAX_REFILL ? fetch * 2 : kk + MAX_REFILL;
        if (!short_and_more || attempt == 3 || next == fetch ||
            (uint64_t)nq * next > 2 * (uint64_t)cfg->max_results)
            break;
        fetch = next;
    }
    hdb_free(hits);
    hdb_free(mat);
    return rc;
}
