/*
 * hdb_query.h - the search path: validate a k-NN request against an index, wait for min_seq if
 * asked, search the splits it selects, and attach each hit's attributes (and vector, on
 * request) from the points column family.
 *
 * Engine hits are candidates: each is re-scored exactly against the vector of the record that
 * is returned with it, so a distance always matches its point, approximate engine distances
 * become exact, and a point replaced since the engine saw it is scored as it is now. A point
 * deleted meanwhile is dropped, and the engine is asked for more candidates when that leaves a
 * query short. So deleted and stale points never come back.
 *
 * Thread-safety: any thread, concurrently; the index's applier is the only writer of what a
 * search reads, and a search holds references to the index entry it was given.
 */
#ifndef HDB_QUERY_H
#define HDB_QUERY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hdb_clock.h"
#include "hdb_engine.h"
#include "hdb_filter.h"
#include "hdb_record.h"
#include "hdb_types.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct hdb_arena hdb_arena;
typedef struct hdb_config hdb_config;
typedef struct hdb_ixent hdb_ixent;
typedef struct hdb_source hdb_source;

/* One query vector as it came from the client (not yet checked). */
typedef struct {
    bool present;     /* false when the client sent no vector */
    bool sparse;
    const float *vec; /* dense */
    size_t dim;
    hdb_sparse_vec sp; /* sparse */
} hdb_query_vec;

typedef struct {
    int64_t k;
    uint64_t min_seq;       /* 0: no wait */
    hdb_search_opts opts;   /* ef_search / nprobe overrides */
    const hdb_attr *filter; /* split filter: sorted by name, from hdb_codec_attrs_in */
    size_t nfilter;
    const hdb_filter *where; /* attribute filter (hdb_filter.h); NULL: none */
    bool explain;            /* set each result's plan */
    int64_t deadline_ns;    /* CLOCK_MONOTONIC; INT64_MAX for none */
    const hdb_stop *stop;   /* when to give up (deadline, cancelled call); NULL: never */
    bool vectors;           /* the reply will carry each hit's vector (retrieve_vectors) */
    /* Parking (hdb_server.h): with no_wait, a min_seq not yet applied returns HDB_EAGAIN at
     * once instead of waiting; the caller runs the search again once
     * hdb_query_min_seq_reached says so. wait_from_ns is when the call's first attempt began
     * (0: now): limits.max_wait_ms counts from it. */
    bool no_wait;
    int64_t wait_from_ns;
} hdb_query_params;

/* What a search is expected to cost, estimated before it runs (hdb_query_estimate). */
typedef struct {
    uint64_t hits;        /* results: query vectors x min(k, points the splits hold) */
    uint64_t mem_bytes;   /* working memory of the call: engine hits, records, reply */
    uint64_t reply_bytes; /* the packed reply, at least (vectors and attributes included) */
} hdb_query_cost;

typedef struct {
    float distance; /* API distance (see catalog.proto, Metric) */
    uint64_t pid;
    hdb_record rec; /* the point: attributes, and its vector */
} hdb_query_hit;

typedef struct {
    hdb_query_hit *hits; /* best first */
    size_t n;
    const char *plan; /* with explain: how the query was answered (arena string); else NULL */
} hdb_query_result;

/* Adds to *cost what nq queries of qp cost on ix: the results are nq x min(k, points of the
 * selected splits), each with its record (vector and the permanent attributes every point
 * carries, at their smallest), and the reply holds their attributes and (qp->vectors) vectors.
 * The reply estimate is a lower bound; the memory estimate counts what the search path keeps
 * per hit. Any thread. */
void hdb_query_estimate(hdb_ixent *ix, size_t nq, const hdb_query_params *qp,
                        hdb_query_cost *cost);

/* Refuses a cost above the configured limits, before any work: HDB_ELIMIT naming
 * server.max_send_message_bytes (the reply) or limits.max_call_memory_bytes (the memory), with
 * the estimate and the limit in the message. */
int hdb_query_check_cost(const hdb_config *cfg, const hdb_query_cost *cost, char *err,
                         size_t errlen);

/* Runs a search. Checks: 1 <= nq <= limits.max_query_vectors (HDB_ELIMIT above), 1 <= k <=
 * limits.max_k, nq x k <= limits.max_results (HDB_ELIMIT), the ef_search and nprobe overrides
 * within limits.max_ef_search and limits.max_nprobe (HDB_EINVAL), the estimated cost within
 * hdb_query_check_cost's limits (HDB_ELIMIT), every query of the source's kind and
 * dimension, finite, non-empty and (cosine) non-zero, min_seq not past the source's last seq,
 * the split filter, and the attribute filter (hdb_filter_check against the source's permanent
 * attributes; errors name "filter..."). With an attribute filter each query is answered on
 * its own. When the index's attribute indexes bound the passing points (hdb_index_select, once
 * per request), those points are either read and scored one by one (when a cost estimate says
 * that beats searching) or the only labels the engine may return; otherwise the engine's
 * candidates are checked against the filter. Either search widens (x4) until k pass, and when
 * that would read about as many points as could pass, or past 16384 candidates, an exact pass
 * over the bounded points (or a scan of the splits' stored points) takes over. So a query is
 * short of k only when fewer than k points pass. Waits for min_seq up to the deadline and limits.max_wait_ms
 * (HDB_ETIMEOUT). Once qp->stop says so (checked between chunks of queries, inside the engines
 * and while records are read), returns HDB_ETIMEOUT or HDB_ECANCELLED and nothing else.
 * HDB_EUNAVAIL while the index is building or after it failed. results (nq
 * slots) and all hit memory come from arena; *applied_seq receives the seq the index had
 * applied when it was searched. */
int hdb_query_search(hdb_ixent *ix, const hdb_config *cfg, const hdb_query_vec *queries,
                     size_t nq, const hdb_query_params *qp, hdb_arena *arena,
                     hdb_query_result *results, uint64_t *applied_seq, char *err, size_t errlen);

/* Checks an attribute filter against src's permanent attributes (hdb_filter_check, errors
 * naming "filter..."). Any thread; src referenced by the caller. */
int hdb_query_check_where(hdb_source *src, const hdb_filter *where, char *err, size_t errlen);

/* The latest instant a min_seq wait that began at from_ns may last: from_ns (0: now) plus
 * limits.max_wait_ms, or deadline_ns when that comes first. Any thread. */
int64_t hdb_query_wait_until(const hdb_config *cfg, int64_t from_ns, int64_t deadline_ns);

/* True when a search of ix with min_seq would not wait any more: the index has applied seq and
 * is READY, or it failed or is stopping (the search then reports that). Never blocks; cheap
 * enough to ask every millisecond. Any thread; ix must be referenced by the caller. */
bool hdb_query_min_seq_reached(hdb_ixent *ix, uint64_t seq);

#ifdef __cplusplus
}
#endif

#endif /* HDB_QUERY_H */
