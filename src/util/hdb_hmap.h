/*
 * hdb_hmap.h - an open-addressing hash map from byte strings to pointers.
 *
 * Keys are copied into the map; values are borrowed pointers that the caller manages. Used for
 * the splits of an index (split key -> split). Not thread-safe; callers lock around it.
 */
#ifndef HDB_HMAP_H
#define HDB_HMAP_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct hdb_hmap hdb_hmap;

/* Creates an empty map. Free with hdb_hmap_free (NULL allowed); values are not freed. */
hdb_hmap *hdb_hmap_create(void);
void hdb_hmap_free(hdb_hmap *m);

/* Returns the value stored under key, or NULL. */
void *hdb_hmap_get(const hdb_hmap *m, const void *key, size_t klen);

/* Stores value (non-NULL) under key, replacing any previous value. */
void hdb_hmap_put(hdb_hmap *m, const void *key, size_t klen, void *value);

/* Removes key (and its copy); returns its value, or NULL when it was absent. */
void *hdb_hmap_del(hdb_hmap *m, const void *key, size_t klen);

/* Number of keys. */
size_t hdb_hmap_size(const hdb_hmap *m);

/* Calls fn(key, klen, value, arg) for every entry, in no particular order. The map must not
 * change during the walk. */
void hdb_hmap_foreach(const hdb_hmap *m,
                      void (*fn)(const void *key, size_t klen, void *value, void *arg), void *arg);

/* 64-bit FNV-1a hash of n bytes. */
uint64_t hdb_hash_bytes(const void *p, size_t n);

#ifdef __cplusplus
}
#endif

#endif /* HDB_HMAP_H */
