/*
 * hdb_hmap.c - linear-probing hash map over copied byte keys, grown at 50% load.
 */
#include "hdb_hmap.h"

#include "hdb_mem.h"

#include <stdbool.h>
#include <string.h>

typedef struct {
    unsigned char *key; /* NULL: empty slot */
    size_t klen;
    uint64_t hash;
    void *value;
} slot;

struct hdb_hmap {
    slot *slots;
    size_t cap; /* power of two */
    size_t n;
};

uint64_t hdb_hash_bytes(const void *p, size_t n) {
    const unsigned char *b = p;
    uint64_t h = UINT64_C(1469598103934665603);
    for (size_t i = 0; i < n; i++) {
        h ^= b[i];
        h *= UINT64_C(1099511628211);
    }
    return h;
}

hdb_hmap *hdb_hmap_create(void) {
    hdb_hmap *m = hdb_calloc(1, sizeof *m);
    m->cap = 16;
    m->slots = hdb_calloc(m->cap, sizeof *m->slots);
    return m;
}

void hdb_hmap_free(hdb_hmap *m) {
    if (m == NULL) return;
    for (size_t i = 0; i < m->cap; i++) hdb_free(m->slots[i].key);
    hdb_free(m->slots);
    hdb_free(m);
}

static slot *find(const hdb_hmap *m, const void *key, size_t klen, uint64_t h) {
    size_t mask = m->cap - 1;
    for (size_t i = h & mask;; i = (i + 1) & mask) {
        slot *s = &m->slots[i];
        if (s->key == NULL) return s;
        if (s->hash == h && s->klen == klen && memcmp(s->key, key, klen) == 0) return s;
    }
}

void *hdb_hmap_get(const hdb_hmap *m, const void *key, size_t klen) {
    slot *s = find(m, key, klen, hdb_hash_bytes(key, klen));
    return s->key ? s->value : NULL;
}

static void grow(hdb_hmap *m) {
    slot *old = m->slots;
    size_t oldcap = m->cap;
    m->cap *= 2;
    m->slots = hdb_calloc(m->cap, sizeof *m->slots);
    for (size_t i = 0; i < oldcap; i++) {
        if (old[i].key == NULL) continue;
        *find(m, old[i].key, old[i].klen, old[i].hash) = old[i];
    }
    hdb_free(old);
}

void hdb_hmap_put(hdb_hmap *m, const void *key, size_t klen, void *value) {
    uint64_t h = hdb_hash_bytes(key, klen);
    slot *s = find(m, key, klen, h);
    if (s->key == NULL) {
        if ((m->n + 1) * 2 > m->cap) {
            grow(m);
            s = find(m, key, klen, h);
        }
        s->key = hdb_malloc(klen ? klen : 1);
        if (klen) memcpy(s->key, key, klen);
        s->klen = klen;
        s->hash = h;
        m->n++;
    }
    s->value = value;
}

void *hdb_hmap_del(hdb_hmap *m, const void *key, size_t klen) {
    slot *s = find(m, key, klen, hdb_hash_bytes(key, klen));
    if (s->key == NULL) return NULL;
    void *value = s->value;
    hdb_free(s->key);
    s->key = NULL;
    m->n--;
    /* Backward shift: move later entries of the probe run into the hole when their home slot
     * does not lie (cyclically) between the hole and themselves, so lookups stay correct
     * without tombstones. */
    size_t mask = m->cap - 1, hole = (size_t)(s - m->slots);
    for (size_t i = (hole + 1) & mask; m->slots[i].key != NULL; i = (i + 1) & mask) {
        size_t home = m->slots[i].hash & mask;
        bool stays = hole <= i ? (hole < home && home <= i) : (hole < home || home <= i);
        if (stays) continue;
        m->slots[hole] = m->slots[i];
        m->slots[i].key = NULL;
        hole = i;
    }
    return value;
}

size_t hdb_hmap_size(const hdb_hmap *m) {
    return m->n;
}

void hdb_hmap_foreach(const hdb_hmap *m,
                      void (*fn)(const void *key, size_t klen, void *value, void *arg), void *arg) {
    for (size_t i = 0; i < m->cap; i++)
        if (m->slots[i].key) fn(m->slots[i].key, m->slots[i].klen, m->slots[i].value, arg);
}
