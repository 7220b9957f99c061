/*
 * hdb_engine.c - dispatch from the generic engine interface to flat, FAISS, HNSW and sparse.
 *
 * FAISS, HNSW and sparse engines are thread-safe by contract; the flat engine is not, so it is
 * wrapped here in a rwlock (searches shared, writes exclusive).
 */
#include "hdb_engine.h"

#include "hdb_err.h"
#include "hdb_faiss.h"
#include "hdb_flat.h"
#include "hdb_hnsw.h"
#include "hdb_log.h"
#include "hdb_mem.h"
#include "hdb_sparse.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>

struct hdb_engine {
    hdb_engine_spec spec;
    pthread_rwlock_t lock; /* flat only */
    union {
        hdb_flat *flat;
        hdb_faiss *faiss;
        hdb_hnsw *hnsw;
        hdb_sparse *sparse;
    } u;
};

const char *hdb_algo_name(hdb_algo algo) {
    switch (algo) {
    case HDB_ALGO_FLAT: return "flat";
    case HDB_ALGO_FAISS: return "faiss";
    case HDB_ALGO_HNSW: return "hnsw";
    case HDB_ALGO_SPARSE: return "sparse";
    }
    return "unknown";
}

static hdb_faiss_params faiss_params(const hdb_engine_spec *s) {
    return (hdb_faiss_params){.dim = s->dim,
                              .metric = s->metric,
                              .factory = s->factory,
                              .nprobe = s->nprobe,
                              .train_size = s->train_size};
}

static hdb_hnsw_params hnsw_params(const hdb_engine_spec *s) {
    return (hdb_hnsw_params){.dim = s->dim,
                             .metric = s->metric,
                             .m = s->m,
                             .ef_construction = s->ef_construction,
                             .ef_search = s->ef_search,
                             .storage = s->storage};
}

uint32_t hdb_engine_oversample(const hdb_engine_spec *s) {
    if (s->algo != HDB_ALGO_HNSW) return 1;
    if (s->oversample) return s->oversample;
    return s->storage == HDB_VEC_FLOAT32 ? 1 : 2;
}

static hdb_sparse_params sparse_params(const hdb_engine_spec *s) {
    return (hdb_sparse_params){.dim = s->dim, .metric = s->metric};
}

static bool dense_metric(hdb_metric m) {
    return m == HDB_METRIC_L2 || m == HDB_METRIC_IP || m == HDB_METRIC_COSINE;
}

int hdb_engine_check(const hdb_engine_spec *s, const char *algorithm, char *err, size_t errlen) {
    const char *alg = algorithm ? algorithm : "spec.algorithm";
    if (s->dim == 0) return hdb_errf(err, errlen, HDB_EINVAL, "spec: dimension must be >= 1");
    switch (s->algo) {
    case HDB_ALGO_FLAT:
    case HDB_ALGO_FAISS:
    case HDB_ALGO_HNSW:
        if (!dense_metric(s->metric))
            return hdb_errf(err, errlen, HDB_EINVAL,
                            "spec.metric: %s needs L2, INNER_PRODUCT or COSINE, not %s",
                            hdb_algo_name(s->algo), hdb_metric_name(s->metric));
        break;
    case HDB_ALGO_SPARSE:
        if (s->metric != HDB_METRIC_COSINE && s->metric != HDB_METRIC_JACCARD)
            return hdb_errf(err, errlen, HDB_EINVAL,
                            "spec.metric: sparse needs COSINE or JACCARD, not %s",
                            hdb_metric_name(s->metric));
        return HDB_OK;
    default: return hdb_errf(err, errlen, HDB_EINVAL, "%s: unknown algorithm", alg);
    }
    if (s->algo == HDB_ALGO_FAISS) {
        if (s->factory[0] == '\0')
            return hdb_errf(err, errlen, HDB_EINVAL,
                            "%s.faiss.factory: is required (e.g. \"IVF256,Flat\")", alg);
        hdb_faiss_params p = faiss_params(s);
        int rc = hdb_faiss_validate(&p, err, errlen);
        if (rc != HDB_OK) hdb_err_prefix(err, errlen, rc, "%s.faiss.factory: ", alg);
        return rc;
    }
    if (s->algo == HDB_ALGO_HNSW) {
        if (s->m != 0 && (s->m < 2 || s->m > 128))
            return hdb_errf(err, errlen, HDB_EINVAL,
                            "%s.hnsw.m: %u is outside 2..128", alg, s->m);
        if (s->ef_construction > 100000)
            return hdb_errf(err, errlen, HDB_EINVAL,
                            "%s.hnsw.ef_construction: %u is above 100000", alg,
                            s->ef_construction);
        if (s->ef_search > 100000)
            return hdb_errf(err, errlen, HDB_EINVAL,
                            "%s.hnsw.ef_search: %u is above 100000", alg, s->ef_search);
        if (s->storage != HDB_VEC_FLOAT32 && s->storage != HDB_VEC_FLOAT16 &&
            s->storage != HDB_VEC_INT8)
            return hdb_errf(err, errlen, HDB_EINVAL,
                            "%s.hnsw.storage: %d is not FLOAT32, FLOAT16 or INT8", alg,
                            (int)s->storage);
        if (s->oversample > 100)
            return hdb_errf(err, errlen, HDB_EINVAL,
                            "%s.hnsw.oversample: %u is above 100", alg, s->oversample);
    }
    return HDB_OK;
}

int hdb_engine_create(hdb_engine **out, const hdb_engine_spec *spec, char *err, size_t errlen) {
    int rc = hdb_engine_check(spec, NULL, err, errlen);
    if (rc != HDB_OK) return rc;
    hdb_engine *e = hdb_calloc(1, sizeof *e);
    e->spec = *spec;
    switch (spec->algo) {
    case HDB_ALGO_FLAT:
        pthread_rwlock_init(&e->lock, NULL);
        rc = hdb_flat_create(&e->u.flat, spec->dim, spec->metric, err, errlen);
        break;
    case HDB_ALGO_FAISS: {
        hdb_faiss_params p = faiss_params(spec);
        rc = hdb_faiss_create(&e->u.faiss, &p, err, errlen);
        break;
    }
    case HDB_ALGO_HNSW: {
        hdb_hnsw_params p = hnsw_params(spec);
        rc = hdb_hnsw_create(&e->u.hnsw, &p, err, errlen);
        break;
    }
    case HDB_ALGO_SPARSE: {
        hdb_sparse_params p = sparse_params(spec);
        rc = hdb_sparse_create(&e->u.sparse, &p, err, errlen);
        break;
    }
    }
    if (rc != HDB_OK) {
        if (spec->algo == HDB_ALGO_FLAT) pthread_rwlock_destroy(&e->lock);
        hdb_free(e);
        return rc;
    }
    *out = e;
    return HDB_OK;
}

void hdb_engine_free(hdb_engine *e) {
    if (e == NULL) return;
    switch (e->spec.algo) {
    case HDB_ALGO_FLAT:
        hdb_flat_free(e->u.flat);
        pthread_rwlock_destroy(&e->lock);
        break;
    case HDB_ALGO_FAISS: hdb_faiss_free(e->u.faiss); break;
    case HDB_ALGO_HNSW: hdb_hnsw_free(e->u.hnsw); break;
    case HDB_ALGO_SPARSE: hdb_sparse_free(e->u.sparse); break;
    }
    hdb_free(e);
}

static int kind_check(const hdb_engine *e, const hdb_vecs *v, char *err, size_t errlen) {
    bool sparse = e->spec.algo == HDB_ALGO_SPARSE;
    if (sparse ? v->sparse == NULL : v->dense == NULL)
        return hdb_errf(err, errlen, HDB_EINVAL, "%s engine given %s vectors",
                        hdb_algo_name(e->spec.algo), sparse ? "dense" : "sparse");
    return HDB_OK;
}

int hdb_engine_upsert(hdb_engine *e, size_t n, const int64_t *labels, const hdb_vecs *vecs,
                      char *err, size_t errlen) {
    if (n == 0) return HDB_OK;
    int rc = kind_check(e, vecs, err, errlen);
    if (rc != HDB_OK) return rc;
    switch (e->spec.algo) {
    case HDB_ALGO_FLAT:
        pthread_rwlock_wrlock(&e->lock);
        rc = hdb_flat_upsert(e->u.flat, n, labels, vecs->dense);
        pthread_rwlock_unlock(&e->lock);
        if (rc != HDB_OK) hdb_errf(err, errlen, rc, "flat: negative label");
        return rc;
    case HDB_ALGO_FAISS: return hdb_faiss_upsert(e->u.faiss, n, labels, vecs->dense, err, errlen);
    case HDB_ALGO_HNSW: return hdb_hnsw_upsert(e->u.hnsw, n, labels, vecs->dense, err, errlen);
    case HDB_ALGO_SPARSE:
        return hdb_sparse_upsert(e->u.sparse, n, labels, vecs->sparse, err, errlen);
    }
    return HDB_EINTERNAL;
}

size_t hdb_engine_remove(hdb_engine *e, size_t n, const int64_t *labels) {
    if (n == 0) return 0;
    switch (e->spec.algo) {
    case HDB_ALGO_FLAT: {
        pthread_rwlock_wrlock(&e->lock);
        size_t r = hdb_flat_remove(e->u.flat, n, labels);
        pthread_rwlock_unlock(&e->lock);
        return r;
    }
    case HDB_ALGO_FAISS: return hdb_faiss_remove(e->u.faiss, n, labels);
    case HDB_ALGO_HNSW: return hdb_hnsw_remove(e->u.hnsw, n, labels);
    case HDB_ALGO_SPARSE: return hdb_sparse_remove(e->u.sparse, n, labels);
    }
    return 0;
}

/* FAISS indexes can return fewer than k hits although more vectors exist (IVF lists holding
 * too few points, HNSW with a small efSearch). A result is only short when the engine is, so
 * short queries are searched again with a wider nprobe (efSearch for HNSW), doubling, and
 * finally with every list. */
static int faiss_search_full(hdb_engine *e, size_t nq, const float *q, size_t k,
                             const hdb_search_opts *opts, hdb_hit *out, char *err,
                             size_t errlen) {
    const hdb_accept *acc = opts->accept;
    int rc = hdb_faiss_search_accept(e->u.faiss, nq, q, k, opts->nprobe, acc, out, err, errlen);
    if (rc != HDB_OK) return rc;
    size_t want = hdb_faiss_size(e->u.faiss);
    if (want > k) want = k;
    if (acc != NULL && acc->max < want) want = (size_t)acc->max;
    uint32_t nprobe = opts->nprobe ? opts->nprobe : (e->spec.nprobe ? e->spec.nprobe : 8);
    size_t dim = e->spec.dim;
    for (int round = 0; round < 4; round++) {
        size_t nshort = 0;
        for (size_t i = 0; i < nq; i++)
            nshort += want > 0 && out[i * k + want - 1].label < 0;
        if (nshort == 0) return HDB_OK;
        /* Never past the number of vectors: FAISS's HNSW sizes its heaps by efSearch. */
        size_t size = hdb_faiss_size(e->u.faiss);
        size_t wider = round == 3 ? size : (size_t)nprobe * 4;
        if (wider > size) wider = size;
        if (wider > UINT32_MAX) wider = UINT32_MAX;
        if (wider <= nprobe) wider = size > UINT32_MAX ? UINT32_MAX : size;
        nprobe = (uint32_t)wider;
        float *sub = hdb_malloc(nshort * dim * sizeof *sub);
        hdb_hit *res = hdb_malloc(nshort * k * sizeof *res);
        size_t j = 0;
        for (size_t i = 0; i < nq; i++)
            if (out[i * k + want - 1].label < 0) memcpy(sub + j++ * dim, q + i * dim, dim * sizeof *sub);
        rc = hdb_faiss_search_accept(e->u.faiss, nshort, sub, k, nprobe, acc, res, err, errlen);
        j = 0;
        for (size_t i = 0; rc == HDB_OK && i < nq; i++)
            if (out[i * k + want - 1].label < 0) memcpy(out + i * k, res + j++ * k, k * sizeof *res);
        hdb_free(sub);
        hdb_free(res);
        if (rc != HDB_OK) return rc;
    }
    return HDB_OK;
}

/* Work (about multiply-adds) one chunk of queries may take between two looks at the stop
 * condition: a few ms. */
#define STOP_BUDGET ((uint64_t)1 << 24)

/* How many queries the engines that cannot look at the stop condition themselves (FAISS,
 * HNSW, sparse) search per call, so that a stopped call gives up within a few ms. The cost of
 * a query is taken as dim x the vectors it may visit: all of them for FAISS (exact until
 * trained, and IVF lists can be large), about 16 ef for HNSW (its neighbours per visited
 * node), and the vectors held for sparse (postings can span them). */
static size_t stop_chunk(const hdb_engine *e, size_t size, size_t k, const hdb_search_opts *o) {
    uint64_t visit = size;
    if (e->spec.algo == HDB_ALGO_HNSW) {
        uint64_t ef = o->ef_search ? o->ef_search : (e->spec.ef_search ? e->spec.ef_search : 64);
        if (ef < k) ef = k;
        if (16 * ef < visit) visit = 16 * ef;
    }
    uint64_t per = visit * (e->spec.dim ? e->spec.dim : 1) + 1;
    uint64_t n = STOP_BUDGET / per;
    return n < 1 ? 1 : (n > 4096 ? 4096 : (size_t)n);
}

static int engine_search_chunk(hdb_engine *e, size_t nq, const hdb_vecs *q, size_t k,
                               const hdb_search_opts *opts, hdb_hit *out, char *err,
                               size_t errlen) {
    switch (e->spec.algo) {
    case HDB_ALGO_FLAT: return HDB_EINTERNAL; /* searched whole, it looks at stop itself */
    case HDB_ALGO_FAISS: return faiss_search_full(e, nq, q->dense, k, opts, out, err, errlen);
    case HDB_ALGO_HNSW:
        return hdb_hnsw_search_accept(e->u.hnsw, nq, q->dense, k, opts->ef_search, opts->accept,
                                      out, err, errlen);
    case HDB_ALGO_SPARSE:
        return hdb_sparse_search_accept(e->u.sparse, nq, q->sparse, k, opts->accept, out, err,
                                        errlen);
    }
    return HDB_EINTERNAL;
}

int hdb_engine_search(hdb_engine *e, size_t nq, const hdb_vecs *queries, size_t k,
                      const hdb_search_opts *opts, hdb_hit *out, char *err, size_t errlen) {
    int rc = kind_check(e, queries, err, errlen);
    if (rc != HDB_OK) return rc;
    hdb_search_opts none = {0, 0, NULL, NULL};
    if (opts == NULL) opts = &none;
    if ((rc = hdb_stop_check(opts->stop, "search", err, errlen)) != HDB_OK) return rc;
    if (e->spec.algo == HDB_ALGO_FLAT) {
        pthread_rwlock_rdlock(&e->lock);
        rc = hdb_flat_search_accept(e->u.flat, nq, queries->dense, k, opts->stop, opts->accept,
                                    out);
        pthread_rwlock_unlock(&e->lock);
        if (rc == HDB_ETIMEOUT || rc == HDB_ECANCELLED)
            hdb_errf(err, errlen, rc, "search: %s", rc == HDB_ETIMEOUT
                                                        ? "the call's deadline passed"
                                                        : "the call was cancelled");
        return rc;
    }
    size_t chunk = opts->stop ? stop_chunk(e, hdb_engine_size(e), k, opts) : nq;
    if (chunk >= nq) return engine_search_chunk(e, nq, queries, k, opts, out, err, errlen);
    size_t dim = e->spec.dim;
    for (size_t q0 = 0; q0 < nq; q0 += chunk) {
        if (q0 > 0 && (rc = hdb_stop_check(opts->stop, "search", err, errlen)) != HDB_OK)
            return rc;
        size_t n = nq - q0 < chunk ? nq - q0 : chunk;
        hdb_vecs sub = {.dense = queries->dense ? queries->dense + q0 * dim : NULL,
                        .sparse = queries->sparse ? queries->sparse + q0 : NULL};
        if ((rc = engine_search_chunk(e, n, &sub, k, opts, out + q0 * k, err, errlen)) != HDB_OK)
            return rc;
    }
    return HDB_OK;
}

size_t hdb_engine_size(hdb_engine *e) {
    switch (e->spec.algo) {
    case HDB_ALGO_FLAT: {
        pthread_rwlock_rdlock(&e->lock);
        size_t n = hdb_flat_size(e->u.flat);
        pthread_rwlock_unlock(&e->lock);
        return n;
    }
    case HDB_ALGO_FAISS: return hdb_faiss_size(e->u.faiss);
    case HDB_ALGO_HNSW: return hdb_hnsw_size(e->u.hnsw);
    case HDB_ALGO_SPARSE: return hdb_sparse_size(e->u.sparse);
    }
    return 0;
}

void hdb_engine_mem(hdb_engine *e, hdb_engine_memory *out) {
    *out = (hdb_engine_memory){0, 0};
    switch (e->spec.algo) {
    case HDB_ALGO_FLAT:
        pthread_rwlock_rdlock(&e->lock);
        hdb_flat_mem(e->u.flat, &out->vector_bytes, &out->other_bytes);
        pthread_rwlock_unlock(&e->lock);
        break;
    case HDB_ALGO_FAISS: hdb_faiss_mem(e->u.faiss, &out->vector_bytes, &out->other_bytes); break;
    case HDB_ALGO_HNSW: {
        hdb_hnsw_memory m;
        hdb_hnsw_mem(e->u.hnsw, &m);
        out->vector_bytes = m.vector_bytes;
        out->other_bytes = m.graph_bytes;
        break;
    }
    case HDB_ALGO_SPARSE:
        hdb_sparse_mem(e->u.sparse, &out->vector_bytes, &out->other_bytes);
        break;
    }
}

int hdb_engine_save(hdb_engine *e, const char *path, char *err, size_t errlen) {
    switch (e->spec.algo) {
    case HDB_ALGO_FLAT: {
        pthread_rwlock_rdlock(&e->lock);
        int rc = hdb_flat_save(e->u.flat, path, err, errlen);
        pthread_rwlock_unlock(&e->lock);
        return rc;
    }
    case HDB_ALGO_FAISS: return hdb_faiss_save(e->u.faiss, path, err, errlen);
    case HDB_ALGO_HNSW: return hdb_hnsw_save(e->u.hnsw, path, err, errlen);
    case HDB_ALGO_SPARSE: return hdb_sparse_save(e->u.sparse, path, err, errlen);
    }
    return HDB_EINTERNAL;
}

int hdb_engine_load(hdb_engine **out, const hdb_engine_spec *spec, const char *path, char *err,
                    size_t errlen) {
    hdb_engine *e = hdb_calloc(1, sizeof *e);
    e->spec = *spec;
    int rc = HDB_EINVAL;
    switch (spec->algo) {
    case HDB_ALGO_FLAT:
        pthread_rwlock_init(&e->lock, NULL);
        rc = hdb_flat_load(&e->u.flat, spec->dim, spec->metric, path, err, errlen);
        if (rc != HDB_OK) pthread_rwlock_destroy(&e->lock);
        break;
    case HDB_ALGO_FAISS: {
        hdb_faiss_params p = faiss_params(spec);
        rc = hdb_faiss_load(&e->u.faiss, &p, path, err, errlen);
        break;
    }
    case HDB_ALGO_HNSW: {
        hdb_hnsw_params p = hnsw_params(spec);
        rc = hdb_hnsw_load(&e->u.hnsw, &p, path, err, errlen);
        break;
    }
    case HDB_ALGO_SPARSE: {
        hdb_sparse_params p = sparse_params(spec);
        rc = hdb_sparse_load(&e->u.sparse, &p, path, err, errlen);
        break;
    }
    }
    if (rc != HDB_OK) {
        hdb_free(e);
        return rc;
    }
    *out = e;
    return HDB_OK;
}

void hdb_engine_describe(hdb_engine *e, char *buf, size_t buflen) {
    if (buflen) buf[0] = '\0';
    if (e->spec.algo == HDB_ALGO_FAISS && !hdb_faiss_is_trained(e->u.faiss))
        snprintf(buf, buflen, "untrained: exact search until it holds enough points to train");
    if (e->spec.algo == HDB_ALGO_HNSW && !hdb_hnsw_trained(e->u.hnsw))
        snprintf(buf, buflen, "int8 untrained: exact search until a split holds 1000 points");
}
