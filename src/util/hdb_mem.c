/*
 * hdb_mem.c - allocation wrappers that abort through one hook on out-of-memory.
 */
#include "hdb_mem.h"

#include "hdb_log.h"

#include <malloc.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

/* Set once at start (hdb_mem_set_retain); 0: no trimming. */
static size_t retain_bytes;
static _Atomic size_t released_bytes; /* reported since the last trim */

void hdb_mem_set_retain(size_t bytes) {
    retain_bytes = bytes;
}

void hdb_mem_released(size_t bytes) {
    if (retain_bytes == 0 || bytes == 0) return;
    size_t total = atomic_fetch_add(&released_bytes, bytes) + bytes;
    if (total <= retain_bytes) return;
    /* One thread trims; the others go on. */
    if (!atomic_compare_exchange_strong(&released_bytes, &total, 0)) return;
    malloc_trim(0);
}

static void default_oom(size_t size) {
    hdb_log(HDB_LOG_ERROR, "mem", "out of memory allocating %zu bytes", size);
    abort();
}

static void (*oom_hook)(size_t) = default_oom;

void hdb_mem_set_oom_hook(void (*hook)(size_t size)) {
    oom_hook = hook ? hook : default_oom;
}

static _Noreturn void oom(size_t size) {
    oom_hook(size);
    abort(); /* the hook must not return */
}

void *hdb_malloc(size_t size) {
    void *p = malloc(size ? size : 1);
    if (p == NULL) oom(size);
    return p;
}

void *hdb_calloc(size_t n, size_t size) {
    if (size != 0 && n > (size_t)-1 / size) oom((size_t)-1);
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (p == NULL) oom(n * size);
    return p;
}

void *hdb_realloc(void *p, size_t size) {
    void *q = realloc(p, size ? size : 1);
    if (q == NULL) oom(size);
    return q;
}

char *hdb_strdup(const char *s) {
    return hdb_strndup(s, strlen(s));
}

char *hdb_strndup(const char *s, size_t n) {
    char *p = hdb_malloc(n + 1);
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

void hdb_free(void *p) {
    free(p);
}
