/*
 * hdb_sparse_io.c - snapshots of the sparse engine (hdb_sparse.h): save and load.
 *
 * File format (all integers little-endian, floats as their IEEE-754 bits):
 *   "HDBSPRS1" | u32 version (1) | u32 dim | u32 metric | u64 count |
 *   count x { i64 label | u32 nnz | nnz x u32 idx | nnz x f32 val } | u32 CRC-32C of all
 *   preceding bytes.
 * Only live vectors are written, in slot order. save() writes through hdb_fwriter (hdb_file.h),
 * which keeps the CRC-32C and appends it as the trailer (little-endian, as the rest) on close.
 * load() reads the whole file with hdb_file_read_checked, which checks the CRC; then it checks
 * length, magic and version before parsing anything, then dim and metric against the
 * caller's parameters (HDB_EINVAL on mismatch), and bounds-checks every count and every vector
 * (labels >= 0 and distinct, indices strictly increasing and < dim, values finite) against the
 * remaining bytes, so even a file with a valid CRC cannot make it read out of bounds.
 */
#include "hdb_sparse_int.h"

#include "hdb_err.h"
#include "hdb_file.h"
#include "hdb_log.h"
#include "hdb_mem.h"

#include <math.h>
#include <pthread.h>
#include <string.h>

#define FILE_MAGIC "HDBSPRS1"
#define FILE_VERSION 1u
#define FILE_HEADER (8 + 4 + 4 + 4 + 8)
#define FILE_TRAILER 4 /* the CRC-32C that hdb_fwriter_close appends */
#define FILE_VEC_HEAD (8 + 4)

/* ---- byte order --------------------------------------------------------------------------- */

static void put_u32(unsigned char *b, uint32_t v) {
    for (int i = 0; i < 4; i++)
        b[i] = (unsigned char)(v >> (8 * i));
}

static void put_u64(unsigned char *b, uint64_t v) {
    for (int i = 0; i < 8; i++)
        b[i] = (unsigned char)(v >> (8 * i));
}

static uint32_t get_u32(const unsigned char *b) {
    return (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
}

static uint64_t get_u64(const unsigned char *b) {
    return (uint64_t)get_u32(b) | (uint64_t)get_u32(b + 4) << 32;
}

/* ---- save --------------------------------------------------------------------------------- */

int hdb_sparse_save(hdb_sparse *s, const char *path, char *err, size_t errlen) {
    hdb_fwriter w;
    unsigned char head[FILE_HEADER];
    unsigned char *rec = NULL; /* one encoded vector, handed to the writer in one piece */
    size_t rec_cap = 0;

    HDB_ASSERT(s != NULL);
    if (path == NULL) return hdb_errf(err, errlen, HDB_EINVAL, "sparse: path must not be NULL");
    int rc = hdb_fwriter_open(&w, path, err, errlen);
    if (rc != HDB_OK) return rc;
    pthread_rwlock_wrlock(&s->lock);
    memcpy(head, FILE_MAGIC, 8);
    put_u32(head + 8, FILE_VERSION);
    put_u32(head + 12, s->dim);
    put_u32(head + 16, (uint32_t)s->metric);
    put_u64(head + 20, s->nlive);
    hdb_fwriter_put(&w, head, sizeof head);
    for (size_t slot = 0; slot < s->nslots; slot++) {
        if (s->labels[slot] < 0) continue;
        uint32_t n = s->nnz[slot];
        const float *val = slot_vals(s, slot);
        size_t len = FILE_VEC_HEAD + 8 * (size_t)n;
        if (len > rec_cap) {
            rec_cap = len > 2 * rec_cap ? len : 2 * rec_cap;
            rec = hdb_realloc(rec, rec_cap);
        }
        put_u64(rec, (uint64_t)s->labels[slot]);
        put_u32(rec + 8, n);
        unsigned char *q = rec + FILE_VEC_HEAD;
        for (uint32_t j = 0; j < n; j++, q += 4)
            put_u32(q, s->data[slot][j]);
        for (uint32_t j = 0; j < n; j++, q += 4) {
            uint32_t bits;
            memcpy(&bits, &val[j], 4);
            put_u32(q, bits);
        }
        hdb_fwriter_put(&w, rec, len);
    }
    pthread_rwlock_unlock(&s->lock);
    hdb_free(rec);
    return hdb_fwriter_close(&w, err, errlen);
}

/* ---- load --------------------------------------------------------------------------------- */

int hdb_sparse_load(hdb_sparse **out, const hdb_sparse_params *p, const char *path, char *err,
                    size_t errlen) {
    unsigned char *buf = NULL;
    size_t body = 0; /* the bytes before the CRC trailer */
    hdb_sparse *s = NULL;
    uint32_t *idx = NULL;
    float *val = NULL;
    int rc;

    if (out == NULL) return hdb_errf(err, errlen, HDB_EINVAL, "sparse: out must not be NULL");
    *out = NULL;
    rc = hdb__sparse_check_params(p, err, errlen);
    if (rc != HDB_OK) return rc;
    if (path == NULL) return hdb_errf(err, errlen, HDB_EINVAL, "sparse: path must not be NULL");

    /* Checks the CRC-32C trailer (HDB_ECORRUPT when it is missing or wrong) and leaves it out
     * of body. */
    rc = hdb_file_read_checked(path, &buf, &body, err, errlen);
    if (rc != HDB_OK) goto done;
    if (body < FILE_HEADER) {
        rc = hdb_errf(err, errlen, HDB_ECORRUPT, "sparse: %s: truncated (%zu bytes)", path,
                      body + FILE_TRAILER);
        goto done;
    }
    if (memcmp(buf, FILE_MAGIC, 8) != 0) {
        rc = hdb_errf(err, errlen, HDB_ECORRUPT, "sparse: %s: bad magic", path);
        goto done;
    }
    if (get_u32(buf + 8) != FILE_VERSION) {
        rc = hdb_errf(err, errlen, HDB_ECORRUPT, "sparse: %s: unsupported version %u", path,
                      get_u32(buf + 8));
        goto done;
    }
    uint32_t dim = get_u32(buf + 12), metric = get_u32(buf + 16);
    if (dim != p->dim || metric != (uint32_t)p->metric) {
        rc = hdb_errf(err, errlen, HDB_EINVAL,
                      "sparse: %s holds dim %u metric %u, expected dim %u metric %d", path, dim,
                      metric, p->dim, (int)p->metric);
        goto done;
    }
    uint64_t count = get_u64(buf + 20);
    size_t off = FILE_HEADER;
    if (count > (body - off) / FILE_VEC_HEAD) {
        rc = hdb_errf(err, errlen, HDB_ECORRUPT, "sparse: %s: count %llu exceeds the file", path,
                      (unsigned long long)count);
        goto done;
    }

    rc = hdb_sparse_create(&s, p, err, errlen);
    if (rc != HDB_OK) goto done;
    idx = hdb_malloc((size_t)(dim < 1024 ? dim : 1024) * sizeof *idx);
    val = hdb_malloc((size_t)(dim < 1024 ? dim : 1024) * sizeof *val);
    size_t vcap = dim < 1024 ? dim : 1024;
    for (uint64_t i = 0; i < count; i++) {
        if (body - off < FILE_VEC_HEAD) goto corrupt;
        int64_t label = (int64_t)get_u64(buf + off);
        uint32_t n = get_u32(buf + off + 8);
        off += FILE_VEC_HEAD;
        if (label < 0 || n > dim || (size_t)n > (body - off) / 8) goto corrupt;
        if (imap_find(&s->label_map, (uint64_t)label) != SIZE_MAX) goto corrupt;
        if (n > vcap) {
            vcap = n;
            idx = hdb_realloc(idx, vcap * sizeof *idx);
            val = hdb_realloc(val, vcap * sizeof *val);
        }
        for (uint32_t j = 0; j < n; j++) {
            idx[j] = get_u32(buf + off + 4 * (size_t)j);
            uint32_t bits = get_u32(buf + off + 4 * ((size_t)n + j));
            memcpy(&val[j], &bits, 4);
            if (idx[j] >= dim || (j > 0 && idx[j] <= idx[j - 1]) || !isfinite(val[j])) goto corrupt;
        }
        off += 8 * (size_t)n;
        hdb_sparse_vec v = {.idx = idx, .val = val, .n = n};
        hdb__sparse_insert(s, label, &v);
    }
    if (off != body) goto corrupt;
    *out = s;
    s = NULL;
    rc = HDB_OK;
    goto done;

corrupt:
    rc = hdb_errf(err, errlen, HDB_ECORRUPT, "sparse: %s: malformed vector at byte %zu", path, off);
done:
    hdb_sparse_free(s);
    hdb_free(idx);
    hdb_free(val);
    hdb_free(buf);
    return rc;
}
