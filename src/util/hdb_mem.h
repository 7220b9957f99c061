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

/* Sets how much freed heap malloc may keep for reuse (server.retain_freed_bytes; 0: glibc's
 * own policy, and no trimming here). Call once at start, before threads start. */
void hdb_mem_set_retain(size_t bytes);

/* Reports that `bytes` of large per-call memory (an arena's chunks, say) were just freed.
 * Once the bytes reported since the last trim exceed the retained amount, gives the free
 * pages of every malloc arena back to the kernel (malloc_trim): glibc keeps the free memory
 * of its per-thread arenas, and a burst of large calls on several threads would otherwise hold
 * their peak in RSS. Any thread; cheap (an atomic add) unless it trims. */
void hdb_mem_released(size_t bytes);

/* Replaces the OOM hook (called with the failed size; must not return). NULL restores the
 * default, which logs at ERROR and aborts. Not thread-safe: call before threads start. */
void hdb_mem_set_oom_hook(void (*hook)(size_t size));

#ifdef __cplusplus
}
#endif

#endif /* HDB_MEM_H */
