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
    hdb_hit *hits = hdb_malloc(nq * kk * sizeof *hits);
    rc = hdb_index_search(ix->index, nq, mat, kk, filter, nfilter, hits, err, errlen);
    hdb_free(mat);
    if (rc != HDB_OK) goto done;

    /* One MultiGet for every hit of every query. */
    size_t total = 0;
    for (size_t i = 0; i < nq * kk; i++) total += hits[i].label >= 0;
    uint64_t *pids = hdb_arena_alloc(arena, (total ? total : 1) * sizeof *pids);
    hdb_get_result *recs = hdb_arena_alloc(arena, (total ? total : 1) * sizeof *recs);
    size_t t = 0;
    for (size_t i = 0; i < nq * kk; i++)
        if (hits[i].label >= 0) pids[t++] = (uint64_t)hits[i].label;
    rc = hdb_ingest_get_pids(ix->source, pids, total, arena, recs, err, errlen);
    if (rc != HDB_OK) goto done;

    t = 0;
    for (size_t q = 0; q < nq; q++) {
        hdb_query_result *r = &results[q];
        r->hits = hdb_arena_alloc(arena, kk * sizeof *r->hits);
        r->n = 0;
        for (size_t j = 0; j < kk; j++) {
            const hdb_hit *h = &hits[q * kk + j];
            if (h->label < 0) continue;
            const hdb_get_result *g = &recs[t++];
            if (!g->found) continue; /* deleted after the engine saw it */
            hdb_query_hit *out = &r->hits[r->n++];
            out->distance = hdb_index_distance(ix->metric, h->score);
            out->pid = g->pid;
            out->rec = g->rec;
        }
    }
done:
    hdb_free(hits);
    return rc;
}
