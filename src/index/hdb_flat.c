/*
 * hdb_flat.c - the exact search engine: a row-major float matrix, a label per row, a label->row
 * hash map, a cached squared norm per row, and two search paths.
 *
 * Storage: rows 0..n-1 of x are live, with labels[i] and norms[i] (= ||x_i||^2) beside them.
 * Capacity doubles on growth and halves when a quarter or less is used. remove() moves the last
 * row into the hole, so the rows stay dense and a scan never skips anything.
 *
 * Label map: open addressing with linear probing over int64 keys (-1 = empty slot; labels are
 * >= 0), hashed with the splitmix64 finaliser. Deletion shifts later entries of the probe chain
 * back (no tombstones), so lookups never degrade after many removals. The load factor stays
 * between 1/8 and 1/2: the table doubles when it would pass 1/2 and halves below 1/8.
 *
 * Search paths (the choice is made in gemm_threshold, tuned by measurement):
 *  - small batches: each query streams over the matrix with the SIMD hdb_l2sq_ny / hdb_ip_ny
 *    kernels, SCAN_BLOCK rows at a time into a small buffer that stays in L1, and feeds a
 *    hdb_topk heap that lives in the caller's output.
 *  - larger batches: FAISS IndexFlat's exhaustive_*_blas scheme. For a block of up to GEMM_QB
 *    queries and GEMM_YB rows, cblas_sgemm computes all inner products <q,x> at once; L2 is
 *    then ||q||^2 + ||x||^2 - 2<q,x> (clamped at 0) with the cached row norms. Scratch is at
 *    most GEMM_QB * GEMM_YB floats (2 MiB), whatever nq and n are. This is less precise than
 *    the direct difference for near-identical vectors, as in FAISS.
 * COSINE rows are stored normalised and each query is normalised into a scratch copy, so the
 * cosine similarity is the inner product and the score is 1 - ip.
 */
#include "hdb_flat.h"

#include "hdb_clock.h"

#include "hdb_distance.h"
#include "hdb_err.h"
#include "hdb_file.h"
#include "hdb_log.h"
#include "hdb_mem.h"

#include <cblas.h>
#include <limits.h>
#include <math.h>
#include <string.h>

#define INIT_CAP 16       /* rows, and map slots */
#define SCAN_BLOCK 1024   /* rows per distance block on the single-query path (4 KiB buffer) */
#define GEMM_QB 512       /* queries per GEMM block */
#define GEMM_YB 1024      /* base rows per GEMM block: GEMM_QB * GEMM_YB floats = 2 MiB */
#define GEMM_MIN_NQ 8     /* automatic path choice: GEMM from this many queries, */
#define GEMM_MIN_NQ_BIG 4 /* or from this many once the matrix exceeds GEMM_BIG_BYTES */
#define GEMM_BIG_BYTES ((size_t)32 << 20)
#define MAP_EMPTY (-1)

struct hdb_flat {
    uint32_t dim;
    hdb_metric metric;
    size_t n;           /* live rows */
    size_t cap;         /* allocated rows */
    float *x;           /* cap * dim, row-major */
    float *norms;       /* cap: squared norm of each stored (normalised for COSINE) row */
    int64_t *labels;    /* cap */
    int64_t *mkeys;     /* mcap slots; MAP_EMPTY marks a free slot */
    size_t *mrows;      /* mcap slots: row of mkeys[i] */
    size_t mcap;        /* power of two; holds n entries */
    size_t gemm_min_nq; /* 0: automatic (gemm_threshold) */
};

/* ---- label -> row map --------------------------------------------------------------------- */

static inline size_t map_home(int64_t label, size_t mcap) {
    uint64_t z = (uint64_t)label;
    z ^= z >> 30;
    z *= 0xbf58476d1ce4e5b9ull;
    z ^= z >> 27;
    z *= 0x94d049bb133111ebull;
    z ^= z >> 31;
    return (size_t)z & (mcap - 1);
}

/* Returns the slot holding label, or SIZE_MAX. */
static size_t map_find(const hdb_flat *f, int64_t label) {
    size_t mask = f->mcap - 1;
    for (size_t i = map_home(label, f->mcap);; i = (i + 1) & mask) {
        if (f->mkeys[i] == label) return i;
        if (f->mkeys[i] == MAP_EMPTY) return SIZE_MAX;
    }
}

/* Places label (absent, table not full) without growing. */
static void map_place(int64_t *keys, size_t *rows, size_t mcap, int64_t label, size_t row) {
    size_t i = map_home(label, mcap);
    while (keys[i] != MAP_EMPTY)
        i = (i + 1) & (mcap - 1);
    keys[i] = label;
    rows[i] = row;
}

static void map_rehash(hdb_flat *f, size_t mcap) {
    int64_t *keys = hdb_malloc(mcap * sizeof *keys);
    size_t *rows = hdb_malloc(mcap * sizeof *rows);
    for (size_t i = 0; i < mcap; i++)
        keys[i] = MAP_EMPTY;
    for (size_t i = 0; i < f->mcap; i++)
        if (f->mkeys[i] != MAP_EMPTY) map_place(keys, rows, mcap, f->mkeys[i], f->mrows[i]);
    hdb_free(f->mkeys);
    hdb_free(f->mrows);
    f->mkeys = keys;
    f->mrows = rows;
    f->mcap = mcap;
}

/* Adds label -> row; the caller has checked that label is absent and that f->n counts it. */
static void map_insert(hdb_flat *f, int64_t label, size_t row) {
    if (f->n * 2 > f->mcap) map_rehash(f, f->mcap * 2);
    map_place(f->mkeys, f->mrows, f->mcap, label, row);
}

/* Empties slot i and shifts the rest of its probe chain back (backward-shift deletion). */
static void map_erase(hdb_flat *f, size_t i) {
    size_t mask = f->mcap - 1;
    size_t j = i;
    for (;;) {
        j = (j + 1) & mask;
        if (f->mkeys[j] == MAP_EMPTY) break;
        size_t h = map_home(f->mkeys[j], f->mcap);
        /* The entry at j may stay when its home lies cyclically in (i, j]. */
        int stays = i <= j ? (i < h && h <= j) : (i < h || h <= j);
        if (stays) continue;
        f->mkeys[i] = f->mkeys[j];
        f->mrows[i] = f->mrows[j];
        i = j;
    }
    f->mkeys[i] = MAP_EMPTY;
}

/* ---- storage ------------------------------------------------------------------------------ */

static void set_cap(hdb_flat *f, size_t cap) {
    HDB_ASSERT(cap >= f->n);
    HDB_ASSERT(cap <= SIZE_MAX / sizeof(float) / f->dim);
    f->x = hdb_realloc(f->x, cap * f->dim * sizeof(float));
    f->norms = hdb_realloc(f->norms, cap * sizeof(float));
    f->labels = hdb_realloc(f->labels, cap * sizeof(int64_t));
    f->cap = cap;
}

/* Writes vec into row r (normalising for COSINE) and refreshes the row's cached norm. */
static void store_row(hdb_flat *f, size_t r, const float *vec) {
    float *row = f->x + r * f->dim;
    memcpy(row, vec, f->dim * sizeof(float));
    if (f->metric == HDB_METRIC_COSINE) hdb_normalize(row, f->dim);
    f->norms[r] = hdb_norm_sq(row, f->dim);
}

int hdb_flat_create(hdb_flat **out, uint32_t dim, hdb_metric metric, char *err, size_t errlen) {
    hdb_flat *f = NULL;
    int rc = HDB_OK;

    if (out == NULL) return hdb_errf(err, errlen, HDB_EINVAL, "flat: out must not be NULL");
    *out = NULL;
    if (dim < 1 || dim > INT_MAX) {
        rc = hdb_errf(err, errlen, HDB_EINVAL, "flat: dim %u must be in 1..%d", dim, INT_MAX);
        goto fail;
    }
    if (metric != HDB_METRIC_L2 && metric != HDB_METRIC_IP && metric != HDB_METRIC_COSINE) {
        rc = hdb_errf(err, errlen, HDB_EINVAL, "flat: unknown metric %d", (int)metric);
        goto fail;
    }
    hdb_distance_init();
    f = hdb_calloc(1, sizeof *f);
    f->dim = dim;
    f->metric = metric;
    set_cap(f, INIT_CAP);
    f->mcap = INIT_CAP;
    f->mkeys = hdb_malloc(f->mcap * sizeof *f->mkeys);
    f->mrows = hdb_malloc(f->mcap * sizeof *f->mrows);
    for (size_t i = 0; i < f->mcap; i++)
        f->mkeys[i] = MAP_EMPTY;
    *out = f;
    return HDB_OK;

fail:
    hdb_flat_free(f);
    return rc;
}

void hdb_flat_free(hdb_flat *f) {
    if (f == NULL) return;
    hdb_free(f->x);
    hdb_free(f->norms);
    hdb_free(f->labels);
    hdb_free(f->mkeys);
    hdb_free(f->mrows);
    hdb_free(f);
}

int hdb_flat_upsert(hdb_flat *f, size_t n, const int64_t *labels, const float *vecs) {
    HDB_ASSERT(f != NULL);
    if (n == 0) return HDB_OK;
    if (labels == NULL || vecs == NULL) return HDB_EINVAL;
    for (size_t i = 0; i < n; i++) /* check everything before changing anything */
        if (labels[i] < 0) return HDB_EINVAL;

    for (size_t i = 0; i < n; i++) {
        const float *vec = vecs + i * f->dim;
        size_t slot = map_find(f, labels[i]);
        if (slot != SIZE_MAX) {
            store_row(f, f->mrows[slot], vec);
            continue;
        }
        if (f->n == f->cap) set_cap(f, f->cap * 2);
        size_t r = f->n++;
        store_row(f, r, vec);
        f->labels[r] = labels[i];
        map_insert(f, labels[i], r);
    }
    return HDB_OK;
}

size_t hdb_flat_remove(hdb_flat *f, size_t n, const int64_t *labels) {
    size_t removed = 0;
    HDB_ASSERT(f != NULL);
    HDB_ASSERT(labels != NULL || n == 0);
    for (size_t i = 0; i < n; i++) {
        if (labels[i] < 0) continue;
        size_t slot = map_find(f, labels[i]);
        if (slot == SIZE_MAX) continue;
        size_t r = f->mrows[slot];
        size_t last = f->n - 1;
        map_erase(f, slot);
        if (r != last) {
            memcpy(f->x + r * f->dim, f->x + last * f->dim, f->dim * sizeof(float));
            f->norms[r] = f->norms[last];
            f->labels[r] = f->labels[last];
            size_t moved = map_find(f, f->labels[r]);
            HDB_ASSERT(moved != SIZE_MAX);
            f->mrows[moved] = r;
        }
        f->n--;
        removed++;
    }
    if (removed) {
        size_t cap = f->cap;
        while (cap > INIT_CAP && f->n <= cap / 4)
            cap /= 2;
        if (cap != f->cap) set_cap(f, cap);
        size_t mcap = f->mcap;
        while (mcap > INIT_CAP && f->n * 8 < mcap)
            mcap /= 2;
        if (mcap != f->mcap) map_rehash(f, mcap);
    }
    return removed;
}

size_t hdb_flat_size(const hdb_flat *f) {
    return f->n;
}

void hdb_flat_mem(const hdb_flat *f, uint64_t *vector_bytes, uint64_t *other_bytes) {
    *vector_bytes = (uint64_t)f->cap * f->dim * sizeof(float);
    *other_bytes = (uint64_t)f->cap * (sizeof(float) + sizeof(int64_t)) +
                   (uint64_t)f->mcap * (sizeof(int64_t) + sizeof(size_t));
}

uint32_t hdb_flat_dim(const hdb_flat *f) {
    return f->dim;
}

hdb_metric hdb_flat_metric(const hdb_flat *f) {
    return f->metric;
}

int hdb_flat_get(const hdb_flat *f, int64_t label, float *out) {
    if (label < 0) return 0;
    size_t slot = map_find(f, label);
    if (slot == SIZE_MAX) return 0;
    memcpy(out, f->x + f->mrows[slot] * f->dim, f->dim * sizeof(float));
    return 1;
}

void hdb_flat_set_gemm_min_nq(hdb_flat *f, size_t nq) {
    f->gemm_min_nq = nq;
}

/* ---- search ------------------------------------------------------------------------------- */

/* Smallest batch for the GEMM path. Measured on AVX-512 with OpenBLAS 0.3.21, one BLAS thread:
 * for a matrix that stays in cache (2000 x 784) one SIMD scan per query costs 0.1 ms and GEMM
 * overtakes it from about 8 queries (packing and call overhead dominate below); for a matrix
 * streamed from DRAM (60000 x 784, 188 MB) a scan is memory-bound at ~7.2 ms per query, while
 * GEMM reads the matrix once per block of queries: 3 queries cost 22 ms either way, 4 queries
 * 21 ms with GEMM against 29 ms with scans. */
static size_t gemm_threshold(const hdb_flat *f) {
    if (f->gemm_min_nq) return f->gemm_min_nq;
    size_t bytes = f->n * f->dim * sizeof(float);
    return bytes > GEMM_BIG_BYTES ? GEMM_MIN_NQ_BIG : GEMM_MIN_NQ;
}

static void pad_all(size_t nq, size_t k, hdb_hit *out) {
    for (size_t i = 0; i < nq * k; i++) {
        out[i].score = INFINITY;
        out[i].label = -1;
    }
}

/* Row blocks between two looks at the stop condition inside one query's scan (64Ki rows). */
#define STOP_EVERY_BLOCKS 64

/* One query at a time through the SIMD ny kernels. Looks at stop between queries and every
 * STOP_EVERY_BLOCKS row blocks; returns its rc once stopped (out is then unspecified). */
static int search_scan(const hdb_flat *f, size_t nq, const float *queries, size_t k,
                       const hdb_stop *stop, const hdb_accept *acc, hdb_hit *out) {
    int rc = HDB_OK;
    const size_t d = f->dim;
    const hdb_metric metric = f->metric;
    float *dist = hdb_malloc(SCAN_BLOCK * sizeof *dist);
    float *qbuf = metric == HDB_METRIC_COSINE ? hdb_malloc(d * sizeof *qbuf) : NULL;

    for (size_t qi = 0; qi < nq; qi++) {
        const float *q = queries + qi * d;
        if (qbuf) {
            memcpy(qbuf, q, d * sizeof *qbuf);
            hdb_normalize(qbuf, d);
            q = qbuf;
        }
        hdb_topk t;
        hdb_topk_init(&t, out + qi * k, k);
        for (size_t r0 = 0, blk = 0; r0 < f->n; r0 += SCAN_BLOCK, blk++) {
            if (blk % STOP_EVERY_BLOCKS == 0 &&
                (rc = hdb_stop_check(stop, "search", NULL, 0)) != HDB_OK)
                goto done;
            size_t nb = f->n - r0 < SCAN_BLOCK ? f->n - r0 : SCAN_BLOCK;
            const float *xb = f->x + r0 * d;
            const int64_t *lb = f->labels + r0;
            float thr = hdb_topk_threshold(&t);
            /* "<= thr" rather than "<": a tie with a smaller label still enters. */
            if (metric == HDB_METRIC_L2) {
                hdb_l2sq_ny(q, xb, nb, d, dist);
                for (size_t j = 0; j < nb; j++) {
                    if (dist[j] <= thr && (acc == NULL || acc->fn(acc->ctx, lb[j]))) {
                        hdb_topk_push(&t, dist[j], lb[j]);
                        thr = hdb_topk_threshold(&t);
                    }
                }
            } else {
                const float base = metric == HDB_METRIC_COSINE ? 1.0f : 0.0f;
                hdb_ip_ny(q, xb, nb, d, dist);
                for (size_t j = 0; j < nb; j++) {
                    float s = base - dist[j];
                    if (s <= thr && (acc == NULL || acc->fn(acc->ctx, lb[j]))) {
                        hdb_topk_push(&t, s, lb[j]);
                        thr = hdb_topk_threshold(&t);
                    }
                }
            }
        }
        hdb_topk_finish(&t);
    }
done:
    hdb_free(qbuf);
    hdb_free(dist);
    return rc;
}

/* Query blocks x row blocks through cblas_sgemm; heaps persist across row blocks. Looks at
 * stop before each block product; returns its rc once stopped (out is then unspecified). */
static int search_gemm(const hdb_flat *f, size_t nq, const float *queries, size_t k,
                       const hdb_stop *stop, hdb_hit *out) {
    int rc = HDB_OK;
    const size_t d = f->dim;
    const hdb_metric metric = f->metric;
    const size_t qb = nq < GEMM_QB ? nq : GEMM_QB;
    const size_t yb = f->n < GEMM_YB ? f->n : GEMM_YB;
    float *ip = hdb_malloc(qb * yb * sizeof *ip);
    float *qn = hdb_malloc(qb * sizeof *qn);
    hdb_topk *heaps = hdb_malloc(qb * sizeof *heaps);
    float *qbuf = metric == HDB_METRIC_COSINE ? hdb_malloc(qb * d * sizeof *qbuf) : NULL;

    for (size_t q0 = 0; q0 < nq; q0 += qb) {
        const size_t mq = nq - q0 < qb ? nq - q0 : qb;
        const float *qs = queries + q0 * d;
        if (qbuf) {
            memcpy(qbuf, qs, mq * d * sizeof *qbuf);
            for (size_t i = 0; i < mq; i++)
                hdb_normalize(qbuf + i * d, d);
            qs = qbuf;
        }
        for (size_t i = 0; i < mq; i++) {
            if (metric == HDB_METRIC_L2) qn[i] = hdb_norm_sq(qs + i * d, d);
            hdb_topk_init(&heaps[i], out + (q0 + i) * k, k);
        }
        for (size_t y0 = 0; y0 < f->n; y0 += yb) {
            if ((rc = hdb_stop_check(stop, "search", NULL, 0)) != HDB_OK) goto done;
            const size_t my = f->n - y0 < yb ? f->n - y0 : yb;
            const float *xn = f->norms + y0;
            const int64_t *lb = f->labels + y0;
            /* ip[i*my + j] = <q_i, x_j> */
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)mq, (int)my, (int)d, 1.0f, qs,
                        (int)d, f->x + y0 * d, (int)d, 0.0f, ip, (int)my);
            for (size_t i = 0; i < mq; i++) {
                const float *row = ip + i * my;
                hdb_topk *t = &heaps[i];
                float thr = hdb_topk_threshold(t);
                if (metric == HDB_METRIC_L2) {
                    const float qq = qn[i];
                    for (size_t j = 0; j < my; j++) {
                        float s = qq + xn[j] - 2.0f * row[j];
                        if (s < 0.0f) s = 0.0f;
                        if (s <= thr) {
                            hdb_topk_push(t, s, lb[j]);
                            thr = hdb_topk_threshold(t);
                        }
                    }
                } else {
                    const float base = metric == HDB_METRIC_COSINE ? 1.0f : 0.0f;
                    for (size_t j = 0; j < my; j++) {
                        float s = base - row[j];
                        if (s <= thr) {
                            hdb_topk_push(t, s, lb[j]);
                            thr = hdb_topk_threshold(t);
                        }
                    }
                }
            }
        }
        for (size_t i = 0; i < mq; i++)
            hdb_topk_finish(&heaps[i]);
    }
done:
    hdb_free(qbuf);
    hdb_free(heaps);
    hdb_free(qn);
    hdb_free(ip);
    return rc;
}

int hdb_flat_search(const hdb_flat *f, size_t nq, const float *queries, size_t k, hdb_hit *out) {
    return hdb_flat_search_stop(f, nq, queries, k, NULL, out);
}

int hdb_flat_search_stop(const hdb_flat *f, size_t nq, const float *queries, size_t k,
                         const hdb_stop *stop, hdb_hit *out) {
    return hdb_flat_search_accept(f, nq, queries, k, stop, NULL, out);
}

int hdb_flat_search_accept(const hdb_flat *f, size_t nq, const float *queries, size_t k,
                           const hdb_stop *stop, const hdb_accept *acc, hdb_hit *out) {
    HDB_ASSERT(f != NULL);
    if (acc != NULL && acc->fn == NULL) acc = NULL;
    if (nq == 0) return HDB_OK;
    if (k == 0 || queries == NULL || out == NULL) return HDB_EINVAL;
    if (f->n == 0) {
        pad_all(nq, k, out);
        return HDB_OK;
    }
    if (acc != NULL || nq < gemm_threshold(f)) return search_scan(f, nq, queries, k, stop, acc, out);
    return search_gemm(f, nq, queries, k, stop, out);
}

/* ---- snapshots ---------------------------------------------------------------------------- */

#define FLAT_MAGIC "HDBFLAT1"
#define FLAT_VERSION 1u

int hdb_flat_save(const hdb_flat *f, const char *path, char *err, size_t errlen) {
    hdb_fwriter w;
    int rc = hdb_fwriter_open(&w, path, err, errlen);
    if (rc != HDB_OK) return rc;
    uint32_t hdr[3] = {FLAT_VERSION, f->dim, (uint32_t)f->metric};
    uint64_t n = f->n;
    hdb_fwriter_put(&w, FLAT_MAGIC, 8);
    hdb_fwriter_put(&w, hdr, sizeof hdr);
    hdb_fwriter_put(&w, &n, sizeof n);
    hdb_fwriter_put(&w, f->labels, f->n * sizeof *f->labels);
    /* Rows as stored (normalised for COSINE); loading normalises again, which keeps them. */
    hdb_fwriter_put(&w, f->x, f->n * f->dim * sizeof(float));
    return hdb_fwriter_close(&w, err, errlen);
}

int hdb_flat_load(hdb_flat **out, uint32_t dim, hdb_metric metric, const char *path, char *err,
                  size_t errlen) {
    unsigned char *data = NULL;
    size_t len;
    hdb_flat *f = NULL;
    int rc = hdb_file_read_checked(path, &data, &len, err, errlen);
    if (rc != HDB_OK) return rc;
    uint32_t hdr[3];
    uint64_t n;
    const size_t head = 8 + sizeof hdr + sizeof n;
    if (len < head || memcmp(data, FLAT_MAGIC, 8) != 0) {
        rc = hdb_errf(err, errlen, HDB_ECORRUPT, "%s: not a flat engine file", path);
        goto out;
    }
    memcpy(hdr, data + 8, sizeof hdr);
    memcpy(&n, data + 8 + sizeof hdr, sizeof n);
    if (hdr[0] != FLAT_VERSION) {
        rc = hdb_errf(err, errlen, HDB_ECORRUPT, "%s: unknown version %u", path, hdr[0]);
        goto out;
    }
    if (hdr[1] != dim || hdr[2] != (uint32_t)metric) {
        rc = hdb_errf(err, errlen, HDB_EINVAL, "%s: saved for dim %u metric %u, not %u/%d", path,
                      hdr[1], hdr[2], dim, (int)metric);
        goto out;
    }
    size_t row = (size_t)dim * sizeof(float) + sizeof(int64_t);
    if (n > (len - head) / row || (len - head) != n * row) {
        rc = hdb_errf(err, errlen, HDB_ECORRUPT, "%s: length does not match %llu vectors", path,
                      (unsigned long long)n);
        goto out;
    }
    if ((rc = hdb_flat_create(&f, dim, metric, err, errlen)) != HDB_OK) goto out;
    const unsigned char *labels = data + head;
    const unsigned char *rows = labels + n * sizeof(int64_t);
    /* Copy out of the byte buffer: it has no alignment guarantee for the labels and rows. */
    enum { CHUNK = 1024 };
    int64_t lab[CHUNK];
    float *vec = hdb_malloc((size_t)CHUNK * dim * sizeof(float));
    for (uint64_t i = 0; i < n && rc == HDB_OK; i += CHUNK) {
        size_t m = n - i < CHUNK ? (size_t)(n - i) : CHUNK;
        memcpy(lab, labels + i * sizeof(int64_t), m * sizeof(int64_t));
        memcpy(vec, rows + i * dim * sizeof(float), m * dim * sizeof(float));
        for (size_t j = 0; j < m; j++) {
            if (lab[j] < 0 || map_find(f, lab[j]) != SIZE_MAX) {
                rc = hdb_errf(err, errlen, HDB_ECORRUPT, "%s: bad or repeated label %lld", path,
                              (long long)lab[j]);
                break;
            }
            hdb_flat_upsert(f, 1, &lab[j], vec + j * dim);
        }
    }
    hdb_free(vec);
    if (rc == HDB_OK) {
        *out = f;
        f = NULL;
    }
out:
    hdb_flat_free(f);
    hdb_free(data);
    return rc;
}
