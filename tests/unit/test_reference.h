/*
 * test_reference.h - the brute-force reference that the engine tests (flat, FAISS, HNSW,
 * sparse) check search results against: exact dense scores in double, and reference hits
 * ordered by (score, label). Header-only, for the unit tests; owns nothing.
 */
#ifndef HDB_TEST_REFERENCE_H
#define HDB_TEST_REFERENCE_H

#include "hdb_distance.h"

#include <math.h>
#include <stddef.h>
#include <stdint.h>

/* The exact score of x for query q under metric (the engines' convention: smaller is better;
 * L2 squared, IP negated, cosine distance 1 - cos, 1 for a zero vector), in double. */
static inline double exact_score(hdb_metric metric, const float *q, const float *x, size_t d) {
    double l2 = 0, ip = 0, qq = 0, xx = 0;
    for (size_t i = 0; i < d; i++) {
        double a = q[i], b = x[i];
        l2 += (a - b) * (a - b);
        ip += a * b;
        qq += a * a;
        xx += b * b;
    }
    switch (metric) {
    case HDB_METRIC_L2:
        return l2;
    case HDB_METRIC_IP:
        return -ip;
    default:
        return (qq > 0 && xx > 0) ? 1.0 - ip / (sqrt(qq) * sqrt(xx)) : 1.0;
    }
}

/* A reference hit. */
typedef struct {
    double score;
    int64_t label;
} ref_hit;

/* qsort order of reference hits: by score, then by label. */
static inline int ref_cmp(const void *pa, const void *pb) {
    const ref_hit *a = pa, *b = pb;
    if (a->score < b->score) return -1;
    if (a->score > b->score) return 1;
    return (a->label > b->label) - (a->label < b->label);
}

#endif
