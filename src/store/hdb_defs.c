/*
 * hdb_defs.c - catalog definitions in the "catalog" column family (see hdb_defs.h).
 *
 * Definitions change rarely, so each change is flushed at once: the column family then never
 * keeps old write-ahead log files alive (hdb_store_flush).
 *
 * Layout (integers little-endian):
 *   'S' + "name@version" -> u64 id + packed DataSourceSpec
 *   'X' + "name@version" -> u64 id + packed IndexSpec
 *   'M' + "name"         -> packed ModelSpaceSpec
 *   'A' + "i/name"       -> packed Alias (an index alias; "m/name" a model-space alias)
 *   'N'                  -> u64 next free object id
 */
#include "hdb_defs.h"

#include "hdb_arena.h"
#include "hdb_err.h"
#include "hdb_log.h"
#include "hdb_mem.h"
#include "hdb_store.h"
#include "hdb_types.h"

#include <stdatomic.h>
#include <string.h>

#define CATALOG_CF "catalog"

struct hdb_defs {
    hdb_store *store;
    hdb_cf *cf;
    _Atomic uint64_t next_id;
};

static void put_le64(unsigned char *out, uint64_t v) {
    for (int i = 0; i < 8; i++) out[i] = (unsigned char)(v >> (8 * i));
}

static uint64_t get_le64(const unsigned char *in) {
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = (v << 8) | in[i];
    return v;
}

static bool has_id(hdb_def_kind kind) {
    return kind == HDB_DEF_SOURCE || kind == HDB_DEF_INDEX;
}

/* Key: kind byte + label. */
static size_t def_key(hdb_def_kind kind, const char *label, unsigned char *buf, size_t cap) {
    size_t n = strlen(label);
    HDB_ASSERT(n + 1 <= cap);
    buf[0] = (unsigned char)kind;
    memcpy(buf + 1, label, n);
    return n + 1;
}

/* After a durable change: flush it out of the memtable (best effort; only space is at stake). */
static int settle(hdb_defs *d) {
    char err[256];
    if (hdb_store_flush(d->store, d->cf, err, sizeof err) != HDB_OK)
        HDB_WARN("catalog", "flush of the definitions: %s", err);
    return HDB_OK;
}

int hdb_defs_open(hdb_defs **out, hdb_store *store, char *err, size_t errlen) {
    hdb_defs *d = hdb_calloc(1, sizeof *d);
    d->store = store;
    atomic_store(&d->next_id, 1);
    int rc = HDB_OK;
    d->cf = hdb_store_cf(store, CATALOG_CF);
    if (d->cf == NULL && (rc = hdb_store_cf_create(store, CATALOG_CF, &d->cf, err, errlen)))
        goto fail;
    hdb_arena *a = hdb_arena_create(256);
    unsigned char *v;
    size_t vlen;
    rc = hdb_store_get(store, d->cf, NULL, "N", 1, a, &v, &vlen, err, errlen);
    if (rc == HDB_OK && vlen != 8)
        rc = hdb_errf(err, errlen, HDB_ECORRUPT, "catalog: bad next-id entry");
    if (rc == HDB_OK) atomic_store(&d->next_id, get_le64(v));
    if (rc == HDB_ENOTFOUND) rc = HDB_OK;
    hdb_arena_free(a);
    if (rc != HDB_OK) goto fail;
    *out = d;
    return HDB_OK;
fail:
    hdb_free(d);
    return rc;
}

void hdb_defs_close(hdb_defs *d) {
    hdb_free(d);
}

int hdb_defs_put(hdb_defs *d, hdb_def_kind kind, const char *label, uint64_t id,
                 const void *spec, size_t len, uint64_t next_id, char *err, size_t errlen) {
    unsigned char key[2 * HDB_NAME_MAX + 8];
    size_t klen = def_key(kind, label, key, sizeof key);
    size_t off = has_id(kind) ? 8 : 0;
    unsigned char *val = hdb_malloc(off + len + 1);
    if (off) put_le64(val, id);
    memcpy(val + off, spec, len);
    int rc;
    if (next_id == 0) {
        rc = hdb_store_put(d->store, d->cf, key, klen, val, off + len, err, errlen);
    } else {
        /* The definition and the id it used, in one write. */
        rc = hdb_store_space_check(d->store, klen + off + len, true, err, errlen);
        if (rc == HDB_OK) {
            unsigned char next[8];
            put_le64(next, next_id);
            hdb_batch *b = hdb_batch_create();
            hdb_batch_put(b, d->cf, key, klen, val, off + len);
            hdb_batch_put(b, d->cf, "N", 1, next, 8);
            rc = hdb_store_write(d->store, b, err, errlen);
            hdb_batch_free(b);
        }
        if (rc == HDB_OK) atomic_store(&d->next_id, next_id);
    }
    hdb_free(val);
    return rc == HDB_OK ? settle(d) : rc;
}

int hdb_defs_delete(hdb_defs *d, hdb_def_kind kind, const char *label, char *err,
                    size_t errlen) {
    unsigned char key[2 * HDB_NAME_MAX + 8];
    size_t klen = def_key(kind, label, key, sizeof key);
    int rc = hdb_store_delete(d->store, d->cf, key, klen, err, errlen);
    return rc == HDB_OK ? settle(d) : rc;
}

int hdb_defs_apply(hdb_defs *d, const hdb_def_op *ops, size_t n, char *err, size_t errlen) {
    hdb_batch *b = hdb_batch_create();
    for (size_t i = 0; i < n; i++) {
        HDB_ASSERT(!has_id(ops[i].kind));
        unsigned char key[2 * HDB_NAME_MAX + 8];
        size_t klen = def_key(ops[i].kind, ops[i].label, key, sizeof key);
        if (ops[i].spec) hdb_batch_put(b, d->cf, key, klen, ops[i].spec, ops[i].len);
        else hdb_batch_delete(b, d->cf, key, klen);
    }
    int rc = hdb_store_write(d->store, b, err, errlen);
    hdb_batch_free(b);
    return rc == HDB_OK ? settle(d) : rc;
}

int hdb_defs_foreach(hdb_defs *d, hdb_def_kind kind,
                     int (*fn)(void *arg, const char *label, uint64_t id,
                               const unsigned char *spec, size_t len, char *err, size_t errlen),
                     void *arg, char *err, size_t errlen) {
    unsigned char prefix = (unsigned char)kind;
    size_t off = has_id(kind) ? 8 : 0;
    hdb_iter *it = hdb_iter_create(d->store, d->cf, NULL);
    int rc = HDB_OK;
    for (hdb_iter_seek(it, &prefix, 1); hdb_iter_valid(it); hdb_iter_next(it)) {
        size_t klen, vlen;
        const unsigned char *k = hdb_iter_key(it, &klen);
        if (klen < 1 || k[0] != prefix) break;
        const unsigned char *v = hdb_iter_value(it, &vlen);
        if (klen < 2 || klen > 2 * HDB_NAME_MAX + 2 || vlen < off) {
            rc = hdb_errf(err, errlen, HDB_ECORRUPT, "catalog: malformed '%c' entry of %zu bytes",
                          prefix, klen);
            break;
        }
        char label[2 * HDB_NAME_MAX + 4];
        memcpy(label, k + 1, klen - 1);
        label[klen - 1] = '\0';
        rc = fn(arg, label, off ? get_le64(v) : 0, v + off, vlen - off, err, errlen);
        if (rc != HDB_OK) break;
    }
    if (rc == HDB_OK) rc = hdb_iter_status(it, err, errlen);
    hdb_iter_free(it);
    return rc;
}

uint64_t hdb_defs_next_id(hdb_defs *d) {
    return atomic_load(&d->next_id);
}
