/*
 * hdb_sparse_io.c - snapshots of the sparse engine (hdb_sparse.h): save and load.
 *
 * File format (all integers little-endian, floats as their IEEE-754 bits):
 *   "HDBSPRS1" | u32 version (1) | u32 dim | u32 metric | u64 count |
 *   count x { i64 label | u32 nnz | nnz x u32 idx | nnz x f32 val } | u32 CRC-32C of all
 *   preceding bytes.
 * Only live vectors are written, in slot order. load() reads the whole file and checks length,
 * magic, version and CRC before parsing anything, then checks dim and metric against the
 * caller's parameters (HDB_EINVAL on mismatch), and bounds-checks every count and every vector
 * (labels >= 0 and distinct, indices strictly increasing and < dim, values finite) against the
 * remaining bytes, so even a file with a valid CRC cannot make it read out of bounds.
 */
#include "hdb_sparse_int.h"

#include "hdb_crc.h"
#include "hdb_err.h"
#include "hdb_log.h"
#include "hdb_mem.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#define FILE_MAGIC "HDBSPRS1"
#define FILE_VERSION 1u
#define FILE_HEADER (8 + 4 + 4 + 4 + 8)
#define FILE_TRAILER 4
#define FILE_VEC_HEAD (8 + 4)

/* ---- save --------------------------------------------------------------------------------- */

typedef struct {
    FILE *f;
    uint32_t crc;
    size_t n;
    int failed;
    unsigned char buf[1 << 16];
} writer;

static void w_flush(writer *w) {
    if (w->n == 0) return;
    w->crc = hdb_crc32c(w->crc, w->buf, w->n);
    if (!w->failed && fwrite(w->buf, 1, w->n, w->f) != w->n) w->failed = 1;
    w->n = 0;
}

static void w_bytes(writer *w, const void *p, size_t n) {
    const unsigned char *b = p;
    while (n > 0) {
        if (w->n == sizeof w->buf) w_flush(w);
        size_t c = sizeof w->buf - w->n;
        if (c > n) c = n;
        memcpy(w->buf + w->n, b, c);
        w->n += c;
        b += c;
        n -= c;
    }
}

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

static void w_u32(writer *w, uint32_t v) {
    unsigned char b[4];
    put_u32(b, v);
    w_bytes(w, b, 4);
}

static void w_u64(writer *w, uint64_t v) {
    unsigned char b[8];
    put_u64(b, v);
    w_bytes(w, b, 8);
}

int hdb_sparse_save(hdb_sparse *s, const char *path, char *err, size_t errlen) {
    writer *w = NULL;
    int rc = HDB_OK;
    int locked = 0;

    HDB_ASSERT(s != NULL);
    if (path == NULL) return hdb_errf(err, errlen, HDB_EINVAL, "sparse: path must not be NULL");
    w = hdb_calloc(1, sizeof *w);
    w->f = fopen(path, "wb");
    if (w->f == NULL) {
        rc = hdb_errf(err, errlen, HDB_EIO, "sparse: cannot create %s: %s", path, strerror(errno));
        goto done;
    }
    pthread_rwlock_wrlock(&s->lock);
    locked = 1;
    w_bytes(w, FILE_MAGIC, 8);
    w_u32(w, FILE_VERSION);
    w_u32(w, s->dim);
    w_u32(w, (uint32_t)s->metric);
    w_u64(w, s->nlive);
    for (size_t slot = 0; slot < s->nslots; slot++) {
        if (s->labels[slot] < 0) continue;
        uint32_t n = s->nnz[slot];
        const float *val = slot_vals(s, slot);
        w_u64(w, (uint64_t)s->labels[slot]);
        w_u32(w, n);
        for (uint32_t j = 0; j < n; j++)
            w_u32(w, s->data[slot][j]);
        for (uint32_t j = 0; j < n; j++) {
            uint32_t bits;
            memcpy(&bits, &val[j], 4);
            w_u32(w, bits);
        }
    }
    pthread_rwlock_unlock(&s->lock);
    locked = 0;
    w_flush(w);
    unsigned char trailer[4];
    put_u32(trailer, w->crc);
    if (!w->failed && fwrite(trailer, 1, 4, w->f) != 4) w->failed = 1;
    if (!w->failed && fflush(w->f) != 0) w->failed = 1;
    if (w->failed)
        rc = hdb_errf(err, errlen, HDB_EIO, "sparse: cannot write %s: %s", path, strerror(errno));

done:
    if (locked) pthread_rwlock_unlock(&s->lock);
    if (w && w->f && fclose(w->f) != 0 && rc == HDB_OK)
        rc = hdb_errf(err, errlen, HDB_EIO, "sparse: cannot close %s: %s", path, strerror(errno));
    hdb_free(w);
    return rc;
}

/* ---- load --------------------------------------------------------------------------------- */

/* Reads the whole file into *buf (hdb_free) and its length into *len. */
static int read_file(const char *path, unsigned char **buf, size_t *len, char *err, size_t errlen) {
    FILE *f = NULL;
    unsigned char *b = NULL;
    size_t cap = 1 << 16, n = 0;
    int rc = HDB_OK;

    *buf = NULL;
    *len = 0;
    f = fopen(path, "rb");
    if (f == NULL) {
        rc = hdb_errf(err, errlen, HDB_EIO, "sparse: cannot open %s: %s", path, strerror(errno));
        goto done;
    }
    /* Read to EOF with a growing buffer rather than trusting a size from fseek/ftell. */
    b = hdb_malloc(cap);
    for (;;) {
        if (n == cap) {
            cap *= 2;
            b = hdb_realloc(b, cap);
        }
        size_t got = fread(b + n, 1, cap - n, f);
        n += got;
        if (got == 0) break;
    }
    if (ferror(f)) {
        rc = hdb_errf(err, errlen, HDB_EIO, "sparse: cannot read %s: %s", path, strerror(errno));
        goto done;
    }
    *buf = b;
    *len = n;
    b = NULL;

done:
    if (f) fclose(f);
    hdb_free(b);
    return rc;
}

int hdb_sparse_load(hdb_sparse **out, const hdb_sparse_params *p, const char *path, char *err,
                    size_t errlen) {
    unsigned char *buf = NULL;
    size_t len = 0;
    hdb_sparse *s = NULL;
    uint32_t *idx = NULL;
    float *val = NULL;
    int rc;

    if (out == NULL) return hdb_errf(err, errlen, HDB_EINVAL, "sparse: out must not be NULL");
    *out = NULL;
    rc = hdb__sparse_check_params(p, err, errlen);
    if (rc != HDB_OK) return rc;
    if (path == NULL) return hdb_errf(err, errlen, HDB_EINVAL, "sparse: path must not be NULL");

    rc = read_file(path, &buf, &len, err, errlen);
    if (rc != HDB_OK) goto done;
    if (len < FILE_HEADER + FILE_TRAILER) {
        rc = hdb_errf(err, errlen, HDB_ECORRUPT, "sparse: %s: truncated (%zu bytes)", path, len);
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
    size_t body = len - FILE_TRAILER;
    if (hdb_crc32c(0, buf, body) != get_u32(buf + body)) {
        rc = hdb_errf(err, errlen, HDB_ECORRUPT, "sparse: %s: checksum mismatch", path);
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
