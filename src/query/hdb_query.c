/*
 * hdb_query.c - request checks, the min_seq wait, index search, exact re-scoring and the
 * attachment of attributes for Search.
 */
#include "hdb_query.h"

#include "hdb_applier.h"
#include "hdb_arena.h"
#include "hdb_catalog.h"
#include "hdb_clock.h"
#include "hdb_config.h"
#include "hdb_distance.h"
#include "hdb_err.h"
#include "hdb_index.h"
#include "hdb_mem.h"
#include "hdb_table.h"
#include "hdb_topk.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* How many extra candidates a search may ask the engine for to replace points that were
 * deleted while it ran. */
#define MAX_REFILL 4096

/* Records read per batch between two looks at the stop condition. */
#define READ_BATCH 1024

/* Results (query vectors x candidates) searched, read and re-scored per chunk of queries; the
 * stop condition is looked at between chunks. */
#define CHUNK_HITS 4096

/* Filtered searches: the first engine fetch per query (at least 8 k), and the most candidates
 * a query is widened to before an exact scan of the splits answers it. */
#define FILTER_FETCH_MIN 64
#define FILTER_WIDEN_MAX 16384

/* The planner's cost model, in multiply-adds: reading and scoring one stored point costs
 * about READ_COST (a RocksDB read and decode, ~5 us, against ~0.1 ns per multiply-add). */
#define READ_COST 50000.0

static int check_queries(hdb_ixent *ix, const hdb_query_vec *q, size_t nq, char *err,
                         size_t errlen) {
    const hdb_schema *s = hdb_source_schema(hdb_ixent_source(ix));
    hdb_metric metric = hdb_ixent_metric(ix);
    for (size_t i = 0; i < nq; i++) {
        if (!q[i].present || q[i].sparse != s->sparse)
            return hdb_errf(err, errlen, HDB_EINVAL, "query_vectors[%zu]: a %s vector is required",
                            i, s->sparse ? "sparse" : "dense");
        if (s->sparse) {
            int rc = hdb_sparse_check(&q[i].sp, s->dim, err, errlen);
            if (rc != HDB_OK) return hdb_err_prefix(err, errlen, rc, "query_vectors[%zu].", i);
            bool nonzero = false;
            for (uint32_t j = 0; j < q[i].sp.n && !nonzero; j++) nonzero = q[i].sp.val[j] != 0.0f;
            if (q[i].sp.n == 0 || (metric == HDB_METRIC_COSINE && !nonzero))
                return hdb_errf(err, errlen, HDB_EINVAL,
                                "query_vectors[%zu]: an empty query matches nothing under the %s "
                                "metric",
                                i, hdb_metric_name(metric));
            continue;
        }
        if (q[i].dim != s->dim)
            return hdb_errf(err, errlen, HDB_EINVAL,
                            "query_vectors[%zu]: has dimension %zu, index %s expects %u", i,
                            q[i].dim, hdb_ixent_label(ix), s->dim);
        size_t bad;
        if (!hdb_all_finite(q[i].vec, s->dim, &bad))
            return hdb_errf(err, errlen, HDB_EINVAL,
                            "query_vectors[%zu]: component %zu is %s; vectors must be finite", i,
                            bad, q[i].vec[bad] != q[i].vec[bad] ? "NaN" : "infinite");
        if (metric == HDB_METRIC_COSINE && hdb_norm_sq(q[i].vec, s->dim) == 0.0f)
            return hdb_errf(err, errlen, HDB_EINVAL,
                            "query_vectors[%zu]: a zero vector has no direction under the cosine "
                            "metric",
                            i);
    }
    return HDB_OK;
}

/* ---------------------------------------------------------------- exact scores */

static float sparse_score(hdb_metric metric, const hdb_sparse_vec *q, const hdb_sparse_vec *x) {
    double dot = 0, qq = 0, xx = 0;
    uint32_t inter = 0, i = 0, j = 0;
    while (i < q->n && j < x->n) {
        if (q->idx[i] == x->idx[j]) {
            dot += (double)q->val[i] * x->val[j];
            inter++;
            i++;
            j++;
        } else if (q->idx[i] < x->idx[j]) {
            i++;
        } else {
            j++;
        }
    }
    if (metric == HDB_METRIC_JACCARD) {
        uint32_t uni = q->n + x->n - inter;
        return uni == 0 ? 1.0f : 1.0f - (float)inter / (float)uni;
    }
    for (uint32_t k = 0; k < q->n; k++) qq += (double)q->val[k] * q->val[k];
    for (uint32_t k = 0; k < x->n; k++) xx += (double)x->val[k] * x->val[k];
    if (qq == 0 || xx == 0) return 1.0f;
    double d = 1.0 - dot / (sqrt(qq) * sqrt(xx));
    return (float)(d < 0.0 ? 0.0 : (d > 2.0 ? 2.0 : d));
}

/* The score ("smaller is better") of a stored point for query qi, exactly; *ok is false when
 * the stored vector does not fit the index (which cannot happen for valid data). */
static float rescore(hdb_metric metric, const hdb_query_vec *q, float qnorm, const hdb_point *p,
                     size_t dim, bool *ok) {
    *ok = true;
    if (q->sparse) {
        if (!p->sparse) return *ok = false, 0.0f;
        return sparse_score(metric, &q->sp, &p->sp);
    }
    if (p->vec == NULL || p->dim != dim) return *ok = false, 0.0f;
    switch (metric) {
    case HDB_METRIC_L2: return hdb_l2sq(q->vec, p->vec, dim);
    case HDB_METRIC_IP: return -hdb_ip(q->vec, p->vec, dim);
    default: {
        float vn = sqrtf(hdb_norm_sq(p->vec, dim));
        if (vn == 0.0f) return 1.0f; /* a stored zero vector: cosine 0 by convention */
        /* Rounding can put the cosine a hair outside [-1, 1]; the distance stays in [0, 2]. */
        float d = 1.0f - hdb_ip(q->vec, p->vec, dim) / (qnorm * vn);
        return d < 0.0f ? 0.0f : (d > 2.0f ? 2.0f : d);
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
static int attach(hdb_ixent *ix, const hdb_query_vec *queries, size_t nq, size_t dim,
                  const hdb_hit *hits, size_t fetch, size_t kk, const hdb_stop *stop,
                  hdb_arena *arena, hdb_query_result *results, char *err, size_t errlen) {
    hdb_metric metric = hdb_ixent_metric(ix);
    size_t total = 0;
    for (size_t i = 0; i < nq * fetch; i++) total += hits[i].label >= 0;
    uint64_t *pids = hdb_arena_alloc(arena, (total ? total : 1) * sizeof *pids);
    hdb_row *recs = hdb_arena_alloc(arena, (total ? total : 1) * sizeof *recs);
    size_t t = 0;
    for (size_t i = 0; i < nq * fetch; i++)
        if (hits[i].label >= 0) pids[t++] = (uint64_t)hits[i].label;
    /* In batches, so that a stopped call stops reading within a few ms. */
    int rc = HDB_OK;
    for (size_t b = 0; rc == HDB_OK && b < total; b += READ_BATCH) {
        if ((rc = hdb_stop_check(stop, "search", err, errlen)) != HDB_OK) break;
        size_t n = total - b < READ_BATCH ? total - b : READ_BATCH;
        rc = hdb_table_get_pids(hdb_source_table(hdb_ixent_source(ix)), NULL, pids + b, n, arena,
                                recs + b, err, errlen);
    }
    if (rc != HDB_OK) return rc;
    t = 0;
    for (size_t q = 0; q < nq; q++) {
        const hdb_query_vec *qv = &queries[q];
        float qnorm =
            !qv->sparse && metric == HDB_METRIC_COSINE ? sqrtf(hdb_norm_sq(qv->vec, dim)) : 0.0f;
        hdb_query_result *r = &results[q];
        r->hits = hdb_arena_alloc(arena, fetch * sizeof *r->hits);
        r->n = 0;
        for (size_t j = 0; j < fetch; j++) {
            if (hits[q * fetch + j].label < 0) continue;
            const hdb_row *g = &recs[t++];
            if (!g->found) continue; /* deleted meanwhile */
            bool ok;
            float score = rescore(metric, qv, qnorm, &g->rec.point, dim, &ok);
            if (!ok) continue;
            hdb_query_hit *h = &r->hits[r->n++];
            h->distance = score;
            h->pid = g->pid;
            h->rec = g->rec;
        }
        qsort(r->hits, r->n, sizeof *r->hits, hit_cmp);
        if (r->n > kk) r->n = kk;
        for (size_t j = 0; j < r->n; j++)
            r->hits[j].distance = hdb_index_distance(metric, r->hits[j].distance);
    }
    return HDB_OK;
}

/* Engines may come back short of k (an HNSW graph that does not reach every point, say). When
 * the selected splits are small next to k, a short query is answered by re-scoring every
 * stored point of those splits: exact, and bounded by max(4 k, EXACT_FALLBACK_MAX) reads. */
#define EXACT_FALLBACK_MAX 10000

static int exact_fallback(hdb_ixent *ix, hdb_index *index, const hdb_query_vec *qv, size_t dim,
                          size_t kk, const hdb_query_params *qp, hdb_arena *arena,
                          hdb_query_result *r, uint64_t *scanned, char *err, size_t errlen) {
    hdb_table *table = hdb_source_table(hdb_ixent_source(ix));
    hdb_metric metric = hdb_ixent_metric(ix);
    float qnorm =
        !qv->sparse && metric == HDB_METRIC_COSINE ? sqrtf(hdb_norm_sq(qv->vec, dim)) : 0.0f;
    hdb_hit *heap = hdb_malloc(kk * sizeof *heap);
    hdb_topk top;
    hdb_topk_init(&top, heap, kk);
    hdb_snap *snap = hdb_table_snapshot(table, NULL);
    hdb_arena *scratch = hdb_arena_create(1 << 16);
    enum { CHUNK = 256 };
    hdb_row rows[CHUNK];
    uint64_t cursor = 0;
    size_t n;
    int rc;
    do {
        hdb_arena_reset(scratch);
        if ((rc = hdb_stop_check(qp->stop, "search", err, errlen)) != HDB_OK) break;
        rc = hdb_table_scan(table, snap, &cursor, CHUNK, scratch, rows, &n, err, errlen);
        *scanned += n;
        for (size_t i = 0; rc == HDB_OK && i < n; i++) {
            const hdb_point *p = &rows[i].rec.point;
            if (!hdb_index_point_matches(index, p, qp->filter, qp->nfilter)) continue;
            if (qp->where && !hdb_filter_eval(qp->where, p->attrs, p->nattrs)) continue;
            bool ok;
            float score = rescore(metric, qv, qnorm, p, dim, &ok);
            if (ok) hdb_topk_push(&top, score, (int64_t)rows[i].pid);
        }
    } while (rc == HDB_OK && n > 0);
    hdb_arena_free(scratch);
    size_t nt = hdb_topk_finish(&top);
    if (rc == HDB_OK) {
        uint64_t *pids = hdb_arena_alloc(arena, (nt ? nt : 1) * sizeof *pids);
        hdb_row *recs = hdb_arena_alloc(arena, (nt ? nt : 1) * sizeof *recs);
        for (size_t i = 0; i < nt; i++) pids[i] = (uint64_t)heap[i].label;
        rc = hdb_table_get_pids(table, snap, pids, nt, arena, recs, err, errlen);
        r->n = 0;
        for (size_t i = 0; rc == HDB_OK && i < nt; i++) {
            if (!recs[i].found) continue;
            r->hits[r->n++] = (hdb_query_hit){hdb_index_distance(metric, heap[i].score), pids[i],
                                              recs[i].rec};
        }
    }
    hdb_table_snapshot_release(table, snap);
    hdb_free(heap);
    return rc;
}

/* ---------------------------------------------------------------- cost */

/* The smallest packed AttributeValue of type t (its field tag and payload). */
static uint64_t value_min_bytes(hdb_attr_type t) {
    return t == HDB_ATTR_FLOAT64 ? 9 : 2;
}

/* Sizes the server's reply structures take per hit, attribute and vector (protobuf-c structs
 * and pointers, rounded up to the arena's alignment). */
#define REPLY_HIT_BYTES 96
#define REPLY_ATTR_BYTES 112
#define REPLY_VEC_BYTES 96
/* Entries a sparse vector is assumed to hold (its real size is unknown before reading it). */
#define SPARSE_GUESS 16

void hdb_query_estimate(hdb_ixent *ix, size_t nq, const hdb_query_params *qp,
                        hdb_query_cost *cost) {
    const hdb_schema *s = hdb_source_schema(hdb_ixent_source(ix));
    uint64_t per_query = qp->k > 0 ? (uint64_t)qp->k : 0;
    hdb_index *index;
    if (hdb_applier_index(hdb_ixent_applier(ix), &index, NULL, 0) == HDB_OK) {
        uint64_t avail = hdb_index_size_matching(index, qp->filter, qp->nfilter);
        if (avail < per_query) per_query = avail;
    }
    uint64_t hits = (uint64_t)nq * per_query;
    uint64_t vec = s->sparse ? (uint64_t)SPARSE_GUESS * 8 : (uint64_t)s->dim * 4;
    /* The packed reply: per hit its SearchHit (tag, length, distance), each permanent
     * attribute's map entry (tags, lengths, name, value), and the vector. */
    uint64_t reply_hit = 2 + 5, rec_attrs = 0, reply_attrs = 0;
    for (size_t i = 0; i < s->nperm; i++) {
        uint64_t name = strlen(s->perm[i].name);
        reply_hit += 2 + 2 + name + 2 + value_min_bytes(s->perm[i].type);
        rec_attrs += sizeof(hdb_attr) + name + 8;
        reply_attrs += REPLY_ATTR_BYTES;
    }
    if (qp->vectors) reply_hit += 2 + 2 + 3 + vec;
    uint64_t reply = (uint64_t)nq * 4 + hits * reply_hit;
    /* The memory: engine hits (and the merge buffers of several splits), the pid and row, the
     * record read (its bytes, the decoded attributes, the vector copy), the hit, the reply
     * structures and the packed reply; plus the query copy and the engines' ef lists. */
    uint64_t per_hit = 3 * sizeof(hdb_hit) + sizeof(uint64_t) + sizeof(hdb_row) +
                       sizeof(hdb_query_hit) + 2 * vec + 2 * rec_attrs + REPLY_HIT_BYTES +
                       reply_attrs + (qp->vectors ? REPLY_VEC_BYTES : 0) + reply_hit;
    uint64_t ef = qp->opts.ef_search > per_query ? qp->opts.ef_search : 0;
    uint64_t chunk = nq < CHUNK_HITS ? nq : CHUNK_HITS;
    cost->hits += hits;
    cost->reply_bytes += reply;
    cost->mem_bytes += hits * per_hit + (uint64_t)nq * vec + chunk * ef * 16;
}

int hdb_query_check_cost(const hdb_config *cfg, const hdb_query_cost *cost, char *err,
                         size_t errlen) {
    if (cost->reply_bytes > cfg->max_send_message_bytes)
        return hdb_errf(err, errlen, HDB_ELIMIT,
                        "response: an estimated %llu bytes (%llu results) exceed "
                        "server.max_send_message_bytes (%zu); ask for fewer results, or without "
                        "retrieve_vectors",
                        (unsigned long long)cost->reply_bytes, (unsigned long long)cost->hits,
                        cfg->max_send_message_bytes);
    if (cost->mem_bytes > cfg->max_call_memory_bytes)
        return hdb_errf(err, errlen, HDB_ELIMIT,
                        "request: an estimated %llu bytes of working memory (%llu results) "
                        "exceed limits.max_call_memory_bytes (%zu); send fewer queries per "
                        "request or a smaller k",
                        (unsigned long long)cost->mem_bytes, (unsigned long long)cost->hits,
                        cfg->max_call_memory_bytes);
    return HDB_OK;
}

/* ---------------------------------------------------------------- filtered search */

/* Reads the records of the best nt pids of heap (sorted) into r, from arena. */
static int keep_top(hdb_table *table, hdb_metric metric, const hdb_hit *heap, size_t nt,
                    hdb_arena *arena, hdb_query_result *r, char *err, size_t errlen) {
    uint64_t *pids = hdb_arena_alloc(arena, (nt ? nt : 1) * sizeof *pids);
    hdb_row *recs = hdb_arena_alloc(arena, (nt ? nt : 1) * sizeof *recs);
    for (size_t i = 0; i < nt; i++) pids[i] = (uint64_t)heap[i].label;
    int rc = hdb_table_get_pids(table, NULL, pids, nt, arena, recs, err, errlen);
    r->n = 0;
    for (size_t i = 0; rc == HDB_OK && i < nt; i++) {
        if (!recs[i].found) continue; /* deleted since it was checked */
        r->hits[r->n++] =
            (hdb_query_hit){hdb_index_distance(metric, heap[i].score), pids[i], recs[i].rec};
    }
    return rc;
}

/* Scores exactly the points of set (the labels an attribute index says may pass; exactly
 * those when exact_set), checking each against the split filter and the attribute filter, and
 * keeps the best kk in r. With explain, r->plan says so, with `why` (may be "") after it. */
static int set_exact(hdb_ixent *ix, hdb_index *index, const hdb_query_vec *qv, size_t kk,
                     const hdb_query_params *qp, const hdb_labelset *set, bool exact_set,
                     const char *why, hdb_arena *arena, hdb_query_result *r, char *err,
                     size_t errlen) {
    hdb_table *table = hdb_source_table(hdb_ixent_source(ix));
    hdb_metric metric = hdb_ixent_metric(ix);
    size_t dim = hdb_source_schema(hdb_ixent_source(ix))->dim;
    float qnorm =
        !qv->sparse && metric == HDB_METRIC_COSINE ? sqrtf(hdb_norm_sq(qv->vec, dim)) : 0.0f;
    hdb_hit *heap = hdb_malloc(kk * sizeof *heap);
    hdb_topk top;
    hdb_topk_init(&top, heap, kk);
    hdb_arena *scratch = hdb_arena_create(1 << 16);
    int64_t labels[READ_BATCH];
    uint64_t pids[READ_BATCH];
    hdb_row *recs = hdb_malloc(READ_BATCH * sizeof *recs);
    uint64_t passed = 0;
    int rc = HDB_OK;
    size_t n;
    for (uint64_t from = 0; rc == HDB_OK; from += n) {
        if ((n = hdb_labelset_read(set, from, labels, READ_BATCH)) == 0) break;
        if ((rc = hdb_stop_check(qp->stop, "search", err, errlen)) != HDB_OK) break;
        hdb_arena_reset(scratch);
        for (size_t i = 0; i < n; i++) pids[i] = (uint64_t)labels[i];
        rc = hdb_table_get_pids(table, NULL, pids, n, scratch, recs, err, errlen);
        for (size_t i = 0; rc == HDB_OK && i < n; i++) {
            const hdb_point *p = &recs[i].rec.point;
            if (!recs[i].found) continue;
            if (!hdb_index_point_matches(index, p, qp->filter, qp->nfilter) ||
                !hdb_filter_eval(qp->where, p->attrs, p->nattrs))
                continue;
            bool ok;
            float score = rescore(metric, qv, qnorm, p, dim, &ok);
            if (!ok) continue;
            hdb_topk_push(&top, score, (int64_t)recs[i].pid);
            passed++;
        }
    }
    hdb_free(recs);
    hdb_arena_free(scratch);
    size_t nt = hdb_topk_finish(&top);
    if (rc == HDB_OK) rc = keep_top(table, metric, heap, nt, arena, r, err, errlen);
    if (rc == HDB_OK && qp->explain)
        r->plan = hdb_arena_sprintf(arena,
                                   "attribute indexes: %s %llu points pass, each read and scored "
                                   "exactly%s; %llu passed the filter",
                                   exact_set ? "exactly" : "at most",
                                   (unsigned long long)hdb_labelset_count(set), why,
                                   (unsigned long long)passed);
    hdb_free(heap);
    return rc;
}

static bool set_accepts(const void *set, int64_t label) {
    return hdb_labelset_has(set, label);
}

/* True when reading and scoring the nset points of a label set one by one is estimated to
 * cost less than letting the engine search only them among the avail points of the splits:
 * an HNSW walk that returns ef passing points visits about ef x avail / nset nodes (at most
 * all of them), each with up to 2 m neighbours' distances; the other engines (flat and sparse
 * scans, FAISS, bounded by an exhaustive search) compute about avail distances. */
static bool read_set_directly(const hdb_engine_spec *es, uint32_t ef_override, size_t kk,
                              uint64_t nset, uint64_t avail) {
    double dim = es->dim ? (double)es->dim : 1.0;
    double walk = (double)avail * dim;
    if (es->algo == HDB_ALGO_HNSW) {
        double ef = ef_override ? ef_override : (es->ef_search ? es->ef_search : 64);
        if (ef < (double)kk) ef = (double)kk;
        double links = 2.0 * (es->m ? es->m : 16);
        double visits = ef * (double)avail / (double)(nset ? nset : 1);
        walk = (visits < (double)avail ? visits : (double)avail) * links * dim;
    }
    return (double)nset * READ_COST <= walk;
}

/* One query with an attribute filter (see hdb_query_search). The plan:
 *   - the attribute indexes bound the passing points to so few that reading them is estimated
 *     to beat searching (read_set_directly): those are read and scored exactly (set_exact);
 *   - they bound them to more: the engine searches only those labels (an HNSW walk steps
 *     through the others, FAISS skips them), and the candidates are checked and re-scored;
 *   - no attribute index narrows the filter: engine candidates are checked against it;
 * and in the last two the search widens (x4) until kk pass, or an exact pass over the bounded
 * set (or a scan of the splits) answers the query. */
static int filtered_one(hdb_ixent *ix, hdb_index *index, const hdb_query_vec *qv, size_t kk,
                        const hdb_query_params *qp, const hdb_labelset *set, bool exact_set,
                        hdb_arena *arena, hdb_query_result *r, char *err, size_t errlen) {
    const hdb_schema *s = hdb_source_schema(hdb_ixent_source(ix));
    hdb_table *table = hdb_source_table(hdb_ixent_source(ix));
    hdb_metric metric = hdb_ixent_metric(ix);
    const char *algo = hdb_algo_name(hdb_index_engine_spec(index)->algo);
    size_t dim = s->dim;
    float qnorm =
        !qv->sparse && metric == HDB_METRIC_COSINE ? sqrtf(hdb_norm_sq(qv->vec, dim)) : 0.0f;
    hdb_vecs vecs = {0};
    if (s->sparse)
        vecs.sparse = &qv->sp;
    else
        vecs.dense = qv->vec;
    hdb_search_opts opts = qp->opts;
    opts.stop = qp->stop;
    uint64_t avail = hdb_index_size_matching(index, qp->filter, qp->nfilter);
    r->hits = hdb_arena_alloc(arena, kk * sizeof *r->hits);
    r->n = 0;

    uint64_t nset = set ? hdb_labelset_count(set) : 0;
    const char *kind = exact_set ? "exactly" : "at most";
    int rc = HDB_OK;
    if (set && read_set_directly(hdb_index_engine_spec(index), qp->opts.ef_search, kk, nset,
                                 avail)) {
        return set_exact(ix, index, qv, kk, qp, set, exact_set, "", arena, r, err, errlen);
    }
    hdb_accept acc = {set_accepts, set, nset};
    if (set) {
        opts.accept = &acc;
        if (nset < avail) avail = nset;
    }

    hdb_hit *heap = hdb_malloc(kk * sizeof *heap);
    hdb_arena *scratch = hdb_arena_create(1 << 16);
    /* Candidates from an exact label set all pass (but for points changed since): few extra,
     * beyond the oversampling a quantized graph asks for. */
    size_t os = hdb_engine_oversample(hdb_index_engine_spec(index));
    size_t fetch =
        exact_set ? kk * os + 8 : (8 * kk > FILTER_FETCH_MIN ? 8 * kk : FILTER_FETCH_MIN);
    size_t got = 0, passed = 0, nt = 0;
    hdb_hit *hits = NULL;
    bool exact = false;
    for (;;) {
        if ((uint64_t)fetch * 2 >= avail || fetch > FILTER_WIDEN_MAX) {
            exact = true;
            break;
        }
        if ((rc = hdb_stop_check(qp->stop, "search", err, errlen)) != HDB_OK) break;
        hdb_free(hits);
        hits = hdb_malloc(fetch * sizeof *hits);
        rc = hdb_index_search(index, 1, &vecs, fetch, &opts, qp->filter, qp->nfilter, hits, err,
                              errlen);
        if (rc != HDB_OK) break;
        hdb_arena_reset(scratch);
        got = 0;
        for (size_t i = 0; i < fetch; i++)
            if (hits[i].label >= 0) hits[got++].label = hits[i].label;
        uint64_t *pids = hdb_arena_alloc(scratch, (got ? got : 1) * sizeof *pids);
        hdb_row *recs = hdb_arena_alloc(scratch, (got ? got : 1) * sizeof *recs);
        for (size_t i = 0; i < got; i++) pids[i] = (uint64_t)hits[i].label;
        for (size_t b = 0; rc == HDB_OK && b < got; b += READ_BATCH) {
            if ((rc = hdb_stop_check(qp->stop, "search", err, errlen)) != HDB_OK) break;
            size_t n = got - b < READ_BATCH ? got - b : READ_BATCH;
            rc = hdb_table_get_pids(table, NULL, pids + b, n, scratch, recs + b, err, errlen);
        }
        if (rc != HDB_OK) break;
        hdb_topk top;
        hdb_topk_init(&top, heap, kk);
        passed = 0;
        for (size_t i = 0; i < got; i++) {
            const hdb_point *p = &recs[i].rec.point;
            if (!recs[i].found || !hdb_filter_eval(qp->where, p->attrs, p->nattrs)) continue;
            bool ok;
            float score = rescore(metric, qv, qnorm, p, dim, &ok);
            if (!ok) continue;
            hdb_topk_push(&top, score, (int64_t)recs[i].pid);
            passed++;
        }
        nt = hdb_topk_finish(&top);
        if (nt >= kk) break;
        if (got < fetch) {
            /* Every point of the splits (or of the set) seen, or an engine that came back
             * short (an HNSW graph that does not reach every point): then the exact pass
             * decides. */
            exact = got < avail;
            break;
        }
        fetch *= 4;
    }
    bool searched = hits != NULL;
    hdb_free(hits);
    hits = NULL;
    hdb_arena_free(scratch);
    if (rc == HDB_OK && exact && set) {
        char why[96];
        snprintf(why, sizeof why, searched ? " (the %s search fell short)"
                                           : " (as many as a search would ask for)", algo);
        rc = set_exact(ix, index, qv, kk, qp, set, exact_set, why, arena, r, err, errlen);
    } else if (rc == HDB_OK && exact) {
        uint64_t scanned = 0;
        rc = exact_fallback(ix, index, qv, dim, kk, qp, arena, r, &scanned, err, errlen);
        if (rc == HDB_OK && qp->explain)
            r->plan = hdb_arena_sprintf(arena,
                                       "exact scan: %llu stored points read, the best %zu that "
                                       "pass the filter kept (the splits hold %llu points)",
                                       (unsigned long long)scanned, r->n,
                                       (unsigned long long)avail);
    } else if (rc == HDB_OK) {
        rc = keep_top(table, metric, heap, nt, arena, r, err, errlen);
        if (rc == HDB_OK && qp->explain && set)
            r->plan = hdb_arena_sprintf(
                arena,
                "%s search within the attribute indexes' %s %llu points: %zu candidates, %zu "
                "passed the filter",
                algo, kind, (unsigned long long)nset, got, passed);
        else if (rc == HDB_OK && qp->explain)
            r->plan = hdb_arena_sprintf(
                arena, "%s: %zu candidates checked against the filter, %zu passed%s", algo, got,
                passed, got < fetch ? " (every point of the splits)" : "");
    }
    hdb_free(heap);
    return rc;
}

/* ---------------------------------------------------------------- search */

/* Searches queries [0, nq) (one chunk) into results: engine candidates, records re-scored,
 * refills for deleted points, and the exact fallback for short queries. */
static int search_chunk(hdb_ixent *ix, hdb_index *index, const hdb_config *cfg,
                        const hdb_query_vec *queries, size_t nq, size_t kk,
                        const hdb_query_params *qp, hdb_arena *arena, hdb_query_result *results,
                        char *err, size_t errlen) {
    const hdb_schema *s = hdb_source_schema(hdb_ixent_source(ix));
    size_t dim = s->dim;
    hdb_vecs vecs = {0};
    float *mat = NULL;
    hdb_search_opts opts = qp->opts;
    opts.stop = qp->stop;
    if (s->sparse) {
        hdb_sparse_vec *sv = hdb_arena_alloc(arena, nq * sizeof *sv);
        for (size_t i = 0; i < nq; i++) sv[i] = queries[i].sp;
        vecs.sparse = sv;
    } else {
        mat = hdb_malloc(nq * dim * sizeof *mat);
        for (size_t i = 0; i < nq; i++) memcpy(mat + i * dim, queries[i].vec, dim * sizeof *mat);
        vecs.dense = mat;
    }

    int rc;
    /* A quantized graph ranks by its codes: take oversample x kk candidates to rescore, within
     * the results a request may hold. */
    size_t fetch = kk * hdb_engine_oversample(hdb_index_engine_spec(index));
    if ((uint64_t)nq * fetch > 2 * (uint64_t)cfg->max_results) {
        size_t cap = (size_t)(2 * (uint64_t)cfg->max_results / nq);
        fetch = cap > kk ? cap : kk;
    }
    hdb_hit *hits = NULL;
    for (int attempt = 0;; attempt++) {
        hdb_free(hits);
        hits = hdb_malloc(nq * fetch * sizeof *hits);
        rc = hdb_index_search(index, nq, &vecs, fetch, &opts, qp->filter, qp->nfilter, hits, err,
                              errlen);
        if (rc != HDB_OK) break;
        rc = attach(ix, queries, nq, dim, hits, fetch, kk, qp->stop, arena, results, err, errlen);
        if (rc != HDB_OK) break;
        bool short_and_more = false;
        for (size_t q = 0; q < nq && !short_and_more; q++)
            short_and_more = results[q].n < kk && hits[q * fetch + fetch - 1].label >= 0;
        size_t next = fetch * 2 < kk + MAX_REFILL ? fetch * 2 : kk + MAX_REFILL;
        if (!short_and_more || attempt == 3 || next <= fetch ||
            (uint64_t)nq * next > 2 * (uint64_t)cfg->max_results)
            break;
        fetch = next;
    }
    /* Still short of what the selected splits hold: exact, when that is affordable. */
    uint64_t avail = rc == HDB_OK ? hdb_index_size_matching(index, qp->filter, qp->nfilter) : 0;
    size_t want = avail < kk ? (size_t)avail : kk;
    if (avail <= (uint64_t)(4 * kk > EXACT_FALLBACK_MAX ? 4 * kk : EXACT_FALLBACK_MAX)) {
        for (size_t q = 0; rc == HDB_OK && q < nq; q++) {
            if (results[q].n >= want) continue;
            results[q].hits = hdb_arena_alloc(arena, kk * sizeof *results[q].hits);
            uint64_t scanned = 0;
            rc = exact_fallback(ix, index, &queries[q], dim, kk, qp, arena, &results[q],
                                &scanned, err, errlen);
            if (qp->explain)
                results[q].plan = hdb_arena_sprintf(
                    arena, "exact scan: the engine came back short; %llu points read",
                    (unsigned long long)scanned);
        }
    }
    for (size_t q = 0; qp->explain && q < nq; q++)
        if (results[q].plan == NULL)
            results[q].plan = hdb_arena_sprintf(arena, "%s: %zu candidates, no filter",
                                               hdb_algo_name(hdb_index_engine_spec(index)->algo),
                                               fetch);
    hdb_free(hits);
    hdb_free(mat);
    return rc;
}

int hdb_query_search(hdb_ixent *ix, const hdb_config *cfg, const hdb_query_vec *queries,
                     size_t nq, const hdb_query_params *qp, hdb_arena *arena,
                     hdb_query_result *results, uint64_t *applied_seq, char *err, size_t errlen) {
    hdb_source *src = hdb_ixent_source(ix);
    hdb_applier *applier = hdb_ixent_applier(ix);
    int64_t k = qp->k;
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
    if (qp->opts.ef_search > cfg->max_ef_search)
        return hdb_errf(err, errlen, HDB_EINVAL,
                        "params.ef_search: %u exceeds limits.max_ef_search (%u)",
                        qp->opts.ef_search, cfg->max_ef_search);
    if (qp->opts.nprobe > cfg->max_nprobe)
        return hdb_errf(err, errlen, HDB_EINVAL, "params.nprobe: %u exceeds limits.max_nprobe (%u)",
                        qp->opts.nprobe, cfg->max_nprobe);
    int rc = check_queries(ix, queries, nq, err, errlen);
    if (rc != HDB_OK) return rc;
    uint64_t last = hdb_table_last_seq(hdb_source_table(src));
    if (qp->min_seq > last)
        return hdb_errf(err, errlen, HDB_EINVAL,
                        "min_seq: %llu is past the last seq of data source %s (%llu)",
                        (unsigned long long)qp->min_seq, hdb_source_label(src),
                        (unsigned long long)last);

    if (qp->min_seq > 0) {
        int64_t deadline = hdb_query_wait_until(cfg, qp->wait_from_ns, qp->deadline_ns);
        rc = hdb_applier_wait(applier, qp->min_seq, qp->no_wait ? 0 : deadline, err, errlen);
        if (rc == HDB_ETIMEOUT && qp->no_wait && hdb_mono_ns() < deadline) return HDB_EAGAIN;
        if (rc != HDB_OK) return rc;
    }
    hdb_index *index;
    if ((rc = hdb_applier_index(applier, &index, err, errlen)) != HDB_OK) return rc;
    if ((rc = hdb_index_check_filter(index, qp->filter, qp->nfilter, err, errlen)) != HDB_OK)
        return rc;
    if (qp->where && (rc = hdb_query_check_where(src, qp->where, err, errlen)) != HDB_OK)
        return rc;
    hdb_query_cost cost = {0};
    hdb_query_estimate(ix, nq, qp, &cost);
    if ((rc = hdb_query_check_cost(cfg, &cost, err, errlen)) != HDB_OK) return rc;
    *applied_seq = hdb_index_applied(index);

    /* In chunks of queries, so that a stopped call gives up between them, and the engine hits
     * of only one chunk are held at a time. */
    size_t kk = (size_t)k;
    memset(results, 0, nq * sizeof *results);
    if (qp->where) {
        /* The attribute indexes' label set, once for every query of the request. */
        hdb_labelset *set;
        bool exact_set;
        hdb_index_select(index, qp->where, &set, &exact_set);
        for (size_t q = 0; rc == HDB_OK && q < nq; q++)
            rc = filtered_one(ix, index, &queries[q], kk, qp, set, exact_set, arena, &results[q],
                              err, errlen);
        hdb_labelset_free(set);
        return rc;
    }
    size_t chunk = CHUNK_HITS / kk ? CHUNK_HITS / kk : 1;
    for (size_t q0 = 0; rc == HDB_OK && q0 < nq; q0 += chunk) {
        if ((rc = hdb_stop_check(qp->stop, "search", err, errlen)) != HDB_OK) break;
        size_t n = nq - q0 < chunk ? nq - q0 : chunk;
        rc = search_chunk(ix, index, cfg, queries + q0, n, kk, qp, arena, results + q0, err,
                          errlen);
    }
    return rc;
}

int hdb_query_check_where(hdb_source *src, const hdb_filter *where, char *err, size_t errlen) {
    const hdb_schema *s = hdb_source_schema(src);
    hdb_filter_attr *perm = hdb_malloc((s->nperm ? s->nperm : 1) * sizeof *perm);
    for (size_t i = 0; i < s->nperm; i++)
        perm[i] = (hdb_filter_attr){s->perm[i].name, s->perm[i].type};
    int rc = hdb_filter_check(where, "filter", perm, s->nperm, err, errlen);
    hdb_free(perm);
    return rc;
}

int64_t hdb_query_wait_until(const hdb_config *cfg, int64_t from_ns, int64_t deadline_ns) {
    int64_t until = (from_ns ? from_ns : hdb_mono_ns()) + (int64_t)cfg->max_wait_ms * 1000000;
    return deadline_ns < until ? deadline_ns : until;
}

bool hdb_query_min_seq_reached(hdb_ixent *ix, uint64_t seq) {
    return hdb_applier_wait(hdb_ixent_applier(ix), seq, 0, NULL, 0) != HDB_ETIMEOUT;
}
