/*
 * hdb_arena.c - chunked bump allocator. Large requests get a chunk of their own so that a big
 * vector does not waste the rest of a small chunk.
 */
#include "hdb_arena.h"

#include "hdb_log.h"
#include "hdb_mem.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#define ALIGN 16u

typedef struct chunk {
    struct chunk *next;
    size_t size; /* usable bytes after the header */
    size_t used;
    _Alignas(16) unsigned char data[];
} chunk;

struct hdb_arena {
    chunk *head;  /* current chunk; the first chunk is the tail of this list */
    chunk *first; /* kept across resets */
    chunk *big;   /* dedicated chunks for large requests, freed on reset */
    size_t chunk_size;
    size_t used;
    ProtobufCAllocator pb;
};

static chunk *chunk_new(size_t size) {
    chunk *c = hdb_malloc(sizeof(chunk) + size);
    c->next = NULL;
    c->size = size;
    c->used = 0;
    return c;
}

static void *pb_alloc(void *data, size_t size) {
    return hdb_arena_alloc(data, size);
}

static void pb_free(void *data, void *p) {
    (void)data;
    (void)p;
}

hdb_arena *hdb_arena_create(size_t chunk_size) {
    hdb_arena *a = hdb_calloc(1, sizeof *a);
    a->chunk_size = chunk_size ? chunk_size : 16384;
    a->first = a->head = chunk_new(a->chunk_size);
    a->pb.alloc = pb_alloc;
    a->pb.free = pb_free;
    a->pb.allocator_data = a;
    return a;
}

/* Arenas that free at least this much report it to hdb_mem_released (large calls). */
#define RELEASE_REPORT_BYTES ((size_t)1 << 20)

/* Frees the chunks from c up to (not including) stop; returns their bytes. */
static size_t free_list(chunk *c, const chunk *stop) {
    size_t bytes = 0;
    while (c != stop) {
        chunk *next = c->next;
        bytes += sizeof *c + c->size;
        hdb_free(c);
        c = next;
    }
    return bytes;
}

static void report(size_t bytes) {
    if (bytes >= RELEASE_REPORT_BYTES) hdb_mem_released(bytes);
}

void hdb_arena_reset(hdb_arena *a) {
    report(free_list(a->head, a->first) + free_list(a->big, NULL));
    a->big = NULL;
    a->first->used = 0;
    a->head = a->first;
    a->used = 0;
}

void hdb_arena_free(hdb_arena *a) {
    if (a == NULL) return;
    report(free_list(a->head, NULL) + free_list(a->big, NULL));
    hdb_free(a);
}

void *hdb_arena_alloc(hdb_arena *a, size_t size) {
    if (size > SIZE_MAX - ALIGN) hdb_malloc(SIZE_MAX); /* reaches the OOM hook */
    size_t need = (size + ALIGN - 1) & ~(size_t)(ALIGN - 1);
    if (need == 0) need = ALIGN;
    chunk *c = a->head;
    if (c->size - c->used < need) {
        if (need > a->chunk_size / 4) {
            chunk *big = chunk_new(need);
            big->used = need;
            big->next = a->big;
            a->big = big;
            a->used += need;
            return big->data;
        }
        chunk *fresh = chunk_new(a->chunk_size);
        fresh->next = c;
        a->head = c = fresh;
    }
    void *p = c->data + c->used;
    c->used += need;
    a->used += need;
    return p;
}

void *hdb_arena_calloc(hdb_arena *a, size_t n, size_t size) {
    if (size != 0 && n > SIZE_MAX / size) hdb_malloc(SIZE_MAX);
    void *p = hdb_arena_alloc(a, n * size);
    memset(p, 0, n * size);
    return p;
}

char *hdb_arena_strndup(hdb_arena *a, const char *s, size_t n) {
    char *p = hdb_arena_alloc(a, n + 1);
    if (n) memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

void *hdb_arena_memdup(hdb_arena *a, const void *p, size_t n) {
    void *q = hdb_arena_alloc(a, n ? n : 1);
    if (n) memcpy(q, p, n);
    return q;
}

char *hdb_arena_sprintf(hdb_arena *a, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    HDB_ASSERT(n >= 0);
    char *p = hdb_arena_alloc(a, (size_t)n + 1);
    va_start(ap, fmt);
    vsnprintf(p, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return p;
}

size_t hdb_arena_used(const hdb_arena *a) {
    return a->used;
}

ProtobufCAllocator *hdb_arena_protobuf(hdb_arena *a) {
    return &a->pb;
}
