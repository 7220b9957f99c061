/*
 * hdb_mem.h - the one allocation wrapper of HilbertDB and its out-of-memory policy.
 *
 * hdb_malloc and friends never return NULL for a non-zero size: on failure they call the OOM
 * hook, which logs and aborts (as Redis and h2o do). Memory from these functions is released
 * with hdb_free. Client-controlled sizes must be checked against configured limits before they
 * reach an allocation, so that a hostile request gets RESOURCE_EXHAUSTED instead of an abort.
 */
#ifndef HDB_MEM_H
#define HDB_MEM_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Allocates size bytes (uninitialised). size 0 returns a unique pointer for hdb_free. */
void *hdb_malloc(size_t size);

/* Allocates n * size zeroed bytes; aborts on multiplication overflow. */
void *hdb_calloc(size_t n, size_t size);

/* Resizes p (which may be NULL) to size bytes. */
void *hdb_realloc(void *p, size_t size);

/* Returns a hdb_malloc'ed copy of the NUL-terminated string s; s must not be NULL. */
char *hdb_strdup(const char *s);

/* Returns a hdb_malloc'ed, NUL-terminated copy of the first n bytes of s. */
char *hdb_strndup(const char *s, size_t n);

/* Releases memory from the functions above. NULL is allowed. */
void hdb_free(void *p);

/* Replaces the OOM hook (called with the failed size; must not return). NULL restores the
 * default, which logs at ERROR and aborts. Not thread-safe: call before threads start. */
void hdb_mem_set_oom_hook(void (*hook)(size_t size));

#ifdef __cplusplus
}
#endif

#endif /* HDB_MEM_H */
