/*
 * hdb_record.c - encoding and bounds-checked decoding of keys, point records and timeline
 * entries (formats documented in hdb_record.h).
 */
#include "hdb_record.h"

#include "hdb_arena.h"
#include "hdb_err.h"
#include "hdb_log.h"

#include <stdint.h>
#include <string.h>

#define RECORD_FORMAT 1
#define RECORD_SPARSE 0x01 /* flags: the vector is sparse */
#define TIMELINE_FORMAT 1
#define RECORD_HEADER 16   /* format, flags, reserved, dim, seq */
#define TIMELINE_HEADER 24 /* format, op, reserved x2, pid, time_us */

void hdb_buf_init(hdb_buf *b, hdb_arena *arena, size_t cap) {
    b->arena = arena;
    b->cap = cap ? cap : 64;
    b->len = 0;
    b->p = hdb_arena_alloc(arena, b->cap);
}

static void buf_reserve(hdb_buf *b, size_t extra) {
    if (b->cap - b->len >= extra) return;
    size_t cap = b->cap * 2;
    while (cap - b->len < extra) cap *= 2;
    unsigned char *p = hdb_arena_alloc(b->arena, cap);
    memcpy(p, b->p, b->len);
    b->p = p;
    b->cap = cap;
}

void hdb_buf_put(hdb_buf *b, const void *data, size_t n) {
    buf_reserve(b, n);
    memcpy(b->p + b->len, data, n);
    b->len += n;
}

static void put_u8(hdb_buf *b, uint8_t v) {
    hdb_buf_put(b, &v, 1);
}

static void put_le16(hdb_buf *b, uint16_t v) {
    unsigned char x[2] = {(unsigned char)v, (unsigned char)(v >> 8)};
    hdb_buf_put(b, x, 2);
}

static void put_le32(hdb_buf *b, uint32_t v) {
    unsigned char x[4];
    for (int i = 0; i < 4; i++) x[i] = (unsigned char)(v >> (8 * i));
    hdb_buf_put(b, x, 4);
}

static void put_le64(hdb_buf *b, uint64_t v) {
    unsigned char x[8];
    for (int i = 0; i < 8; i++) x[i] = (unsigned char)(v >> (8 * i));
    hdb_buf_put(b, x, 8);
}

static void put_be32(hdb_buf *b, uint32_t v) {
    unsigned char x[4] = {(unsigned char)(v >> 24), (unsigned char)(v >> 16),
                          (unsigned char)(v >> 8), (unsigned char)v};
    hdb_buf_put(b, x, 4);
}

void hdb_put_be64(unsigned char *out, uint64_t v) {
    for (int i = 7; i >= 0; i--) {
        out[i] = (unsigned char)v;
        v >>= 8;
    }
}

uint64_t hdb_get_be64(const unsigned char *in) {
    uint64_t v = 0;
    for (int i = 0; i < 8; i++) v = (v << 8) | in[i];
    return v;
}

static uint64_t get_le(const unsigned char *in, int n) {
    uint64_t v = 0;
    for (int i = n - 1; i >= 0; i--) v = (v << 8) | in[i];
    return v;
}

void hdb_pid_key(unsigned char *key, uint64_t pid) {
    key[0] = 'P';
    hdb_put_be64(key + 1, pid);
}

void hdb_seq_key(unsigned char *key, uint64_t seq) {
    hdb_put_be64(key, seq);
}

void hdb_tuple_encode(hdb_buf *b, const hdb_value *vals, size_t n) {
    for (size_t i = 0; i < n; i++) {
        const hdb_value *v = &vals[i];
        put_u8(b, (uint8_t)v->type);
        switch (v->type) {
        case HDB_ATTR_STRING:
        case HDB_ATTR_BYTES:
            HDB_ASSERT(v->u.s.n <= UINT32_MAX);
            put_be32(b, (uint32_t)v->u.s.n);
            if (v->u.s.n) hdb_buf_put(b, v->u.s.p, v->u.s.n);
            break;
        case HDB_ATTR_INT64:
        case HDB_ATTR_TIMESTAMP: {
            unsigned char x[8];
            hdb_put_be64(x, (uint64_t)v->u.i ^ (UINT64_C(1) << 63));
            hdb_buf_put(b, x, 8);
            break;
        }
        case HDB_ATTR_BOOL: put_u8(b, v->u.b ? 1 : 0); break;
        default: HDB_ASSERT(!"tuple value of unsupported type");
        }
    }
}

/* A cursor over bytes that refuses to read past the end. */
typedef struct {
    const unsigned char *p;
    size_t left;
} cursor;

static bool take(cursor *c, size_t n, const unsigned char **out) {
    if (c->left < n) return false;
    *out = c->p;
    c->p += n;
    c->left -= n;
    return true;
}

int hdb_tuple_decode(const unsigned char *data, size_t len, hdb_value *vals, size_t n) {
    cursor c = {data, len};
    const unsigned char *q;
    for (size_t i = 0; i < n; i++) {
        if (!take(&c, 1, &q)) return HDB_ECORRUPT;
        hdb_value *v = &vals[i];
        v->type = (hdb_attr_type)q[0];
        switch (v->type) {
        case HDB_ATTR_STRING:
        case HDB_ATTR_BYTES: {
            if (!take(&c, 4, &q)) return HDB_ECORRUPT;
            uint32_t sl = (uint32_t)q[0] << 24 | (uint32_t)q[1] << 16 | (uint32_t)q[2] << 8 | q[3];
            if (!take(&c, sl, &q)) return HDB_ECORRUPT;
            v->u.s.p = (const char *)q;
            v->u.s.n = sl;
            break;
        }
        case HDB_ATTR_INT64:
        case HDB_ATTR_TIMESTAMP:
            if (!take(&c, 8, &q)) return HDB_ECORRUPT;
            v->u.i = (int64_t)(hdb_get_be64(q) ^ (UINT64_C(1) << 63));
            break;
        case HDB_ATTR_BOOL:
            if (!take(&c, 1, &q) || q[0] > 1) return HDB_ECORRUPT;
            v->u.b = q[0] != 0;
            break;
        default: return HDB_ECORRUPT;
        }
    }
    return c.left == 0 ? HDB_OK : HDB_ECORRUPT;
}

static void put_value(hdb_buf *b, const hdb_value *v) {
    put_u8(b, (uint8_t)v->type);
    switch (v->type) {
    case HDB_ATTR_STRING:
    case HDB_ATTR_BYTES:
        HDB_ASSERT(v->u.s.n <= UINT32_MAX);
        put_le32(b, (uint32_t)v->u.s.n);
        if (v->u.s.n) hdb_buf_put(b, v->u.s.p, v->u.s.n);
        break;
    case HDB_ATTR_INT64:
    case HDB_ATTR_TIMESTAMP: put_le64(b, (uint64_t)v->u.i); break;
    case HDB_ATTR_FLOAT64: {
        uint64_t u;
        memcpy(&u, &v->u.f, 8);
        put_le64(b, u);
        break;
    }
    case HDB_ATTR_BOOL: put_u8(b, v->u.b ? 1 : 0); break;
    default: HDB_ASSERT(!"record value of unknown type");
    }
}

void hdb_record_encode(hdb_buf *b, const hdb_point *p, uint64_t seq) {
    /* The header's count is the dimension of a dense vector or the entries of a sparse one. */
    uint32_t count = p->sparse ? p->sp.n : (p->vec ? p->dim : 0);
    size_t vbytes = (size_t)count * (p->sparse ? 8 : 4);
    buf_reserve(b, RECORD_HEADER + vbytes + 4 + (size_t)p->nattrs * 16);
    put_u8(b, RECORD_FORMAT);
    put_u8(b, p->sparse ? RECORD_SPARSE : 0);
    put_le16(b, 0);
    put_le32(b, count);
    put_le64(b, seq);
    /* Numbers are stored in host order; HilbertDB supports little-endian hosts only. */
    if (count && p->sparse) {
        hdb_buf_put(b, p->sp.idx, (size_t)count * sizeof(uint32_t));
        hdb_buf_put(b, p->sp.val, (size_t)count * sizeof(float));
    } else if (count) {
        hdb_buf_put(b, p->vec, (size_t)count * sizeof(float));
    }
    put_le32(b, p->nattrs);
    for (uint32_t i = 0; i < p->nattrs; i++) {
        const hdb_attr *a = &p->attrs[i];
        size_t nl = strlen(a->name);
        HDB_ASSERT(nl <= UINT16_MAX);
        put_le16(b, (uint16_t)nl);
        hdb_buf_put(b, a->name, nl);
        put_value(b, &a->value);
    }
}

static int get_value(cursor *c, hdb_value *v) {
    const unsigned char *q;
    if (!take(c, 1, &q)) return HDB_ECORRUPT;
    v->type = (hdb_attr_type)q[0];
    switch (v->type) {
    case HDB_ATTR_STRING:
    case HDB_ATTR_BYTES: {
        if (!take(c, 4, &q)) return HDB_ECORRUPT;
        uint32_t n = (uint32_t)get_le(q, 4);
        if (!take(c, n, &q)) return HDB_ECORRUPT;
        v->u.s.p = (const char *)q;
        v->u.s.n = n;
        return HDB_OK;
    }
    case HDB_ATTR_INT64:
    case HDB_ATTR_TIMESTAMP:
        if (!take(c, 8, &q)) return HDB_ECORRUPT;
        v->u.i = (int64_t)get_le(q, 8);
        return HDB_OK;
    case HDB_ATTR_FLOAT64: {
        if (!take(c, 8, &q)) return HDB_ECORRUPT;
        uint64_t u = get_le(q, 8);
        memcpy(&v->u.f, &u, 8);
        return HDB_OK;
    }
    case HDB_ATTR_BOOL:
        if (!take(c, 1, &q) || q[0] > 1) return HDB_ECORRUPT;
        v->u.b = q[0] != 0;
        return HDB_OK;
    default: return HDB_ECORRUPT;
    }
}

/* An array of 4-byte numbers inside a record: used where it lies when it is aligned (values
 * read into arena memory are, since the header is 16 bytes), copied into the arena otherwise. */
static const void *in_place(const unsigned char *q, size_t n, hdb_arena *arena) {
    if ((uintptr_t)q % sizeof(float) == 0) return q;
    return hdb_arena_memdup(arena, q, n);
}

static int record_decode(cursor *c, hdb_arena *arena, hdb_record *out) {
    const unsigned char *q;
    memset(out, 0, sizeof *out);
    if (!take(c, RECORD_HEADER, &q) || q[0] != RECORD_FORMAT || (q[1] & ~RECORD_SPARSE))
        return HDB_ECORRUPT;
    bool sparse = (q[1] & RECORD_SPARSE) != 0;
    uint32_t count = (uint32_t)get_le(q + 4, 4);
    out->seq = get_le(q + 8, 8);
    if (sparse) {
        if (c->left / 8 < count) return HDB_ECORRUPT;
        take(c, (size_t)count * sizeof(uint32_t), &q);
        const uint32_t *idx = in_place(q, (size_t)count * sizeof(uint32_t), arena);
        take(c, (size_t)count * sizeof(float), &q);
        const float *val = in_place(q, (size_t)count * sizeof(float), arena);
        out->point.sparse = true;
        out->point.sp = (hdb_sparse_vec){idx, val, count};
    } else if (count) {
        if (c->left / sizeof(float) < count) return HDB_ECORRUPT;
        take(c, (size_t)count * sizeof(float), &q);
        out->point.vec = in_place(q, (size_t)count * sizeof(float), arena);
        out->point.dim = count;
    }
    if (!take(c, 4, &q)) return HDB_ECORRUPT;
    uint32_t n = (uint32_t)get_le(q, 4);
    if (n > c->left / 4) return HDB_ECORRUPT; /* every attribute takes at least 4 bytes */
    hdb_attr *attrs = n ? hdb_arena_alloc(arena, (size_t)n * sizeof *attrs) : NULL;
    for (uint32_t i = 0; i < n; i++) {
        if (!take(c, 2, &q)) return HDB_ECORRUPT;
        uint16_t nl = (uint16_t)get_le(q, 2);
        if (!take(c, nl, &q)) return HDB_ECORRUPT;
        attrs[i].name = hdb_arena_strndup(arena, (const char *)q, nl);
        if (get_value(c, &attrs[i].value) != HDB_OK) return HDB_ECORRUPT;
    }
    out->point.attrs = attrs;
    out->point.nattrs = n;
    out->point.deleted = !sparse && out->point.vec == NULL;
    return HDB_OK;
}

int hdb_record_decode(const unsigned char *data, size_t len, hdb_arena *arena, hdb_record *out) {
    cursor c = {data, len};
    int rc = record_decode(&c, arena, out);
    if (rc == HDB_OK && c.left != 0) rc = HDB_ECORRUPT;
    return rc;
}

void hdb_timeline_encode(hdb_buf *b, int op, uint64_t pid, int64_t time_us,
                         const hdb_point *rec_point, uint64_t seq) {
    put_u8(b, TIMELINE_FORMAT);
    put_u8(b, (uint8_t)op);
    put_le16(b, 0);
    put_le32(b, 0);
    put_le64(b, pid);
    put_le64(b, (uint64_t)time_us);
    hdb_record_encode(b, rec_point, seq);
}

int hdb_timeline_peek(const unsigned char *data, size_t len, int *op, uint64_t *pid,
                      int64_t *time_us) {
    if (len < TIMELINE_HEADER || data[0] != TIMELINE_FORMAT) return HDB_ECORRUPT;
    if (data[1] != HDB_TL_UPSERT && data[1] != HDB_TL_DELETE) return HDB_ECORRUPT;
    if (op) *op = data[1];
    if (pid) *pid = get_le(data + 8, 8);
    if (time_us) *time_us = (int64_t)get_le(data + 16, 8);
    return HDB_OK;
}

int hdb_timeline_decode(const unsigned char *data, size_t len, hdb_arena *arena,
                        hdb_timeline_entry *out) {
    memset(out, 0, sizeof *out);
    int rc = hdb_timeline_peek(data, len, &out->op, &out->pid, &out->time_us);
    if (rc != HDB_OK) return rc;
    return hdb_record_decode(data + TIMELINE_HEADER, len - TIMELINE_HEADER, arena, &out->rec);
}
