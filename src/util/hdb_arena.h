/*
 * hdb_arena.h - a bump allocator for per-call memory.
 *
 * One arena serves one RPC: the decoded request, scratch vectors and the response all come from
 * it, and hdb_arena_reset releases them together when the call completes. Individual blocks are
 * never freed. The arena also acts as a ProtobufCAllocator whose free is a no-op, so messages
 * unpacked into it need no protobuf_c_message_free_unpacked. An arena is not thread-safe; each
 * call owns its own.
 */
#ifndef HDB_ARENA_H
#define HDB_ARENA_H

#include <stddef.h>
#include <protobuf-c/protobuf-c.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct hdb_arena hdb_arena;

/* Creates an arena whose first chunk has chunk_size bytes (0 picks 16 KiB). Free with
 * hdb_arena_free. */
hdb_arena *hdb_arena_create(size_t chunk_size);

/* Releases every block handed out and all chunks except the first, which is kept for reuse. */
void hdb_arena_reset(hdb_arena *a);

/* Releases the arena and everything allocated from it. NULL is allowed. */
void hdb_arena_free(hdb_arena *a);

/* Returns size bytes aligned to 16, valid until the next reset or free. Never NULL (OOM
 * aborts through hdb_mem). */
void *hdb_arena_alloc(hdb_arena *a, size_t size);

/* As hdb_arena_alloc, but zeroed; aborts on n * size overflow. */
void *hdb_arena_calloc(hdb_arena *a, size_t n, size_t size);

/* Copies n bytes of s into the arena and NUL-terminates the copy. */
char *hdb_arena_strndup(hdb_arena *a, const char *s, size_t n);

/* Copies n bytes of p into the arena (16-byte aligned, like every allocation). */
void *hdb_arena_memdup(hdb_arena *a, const void *p, size_t n);

/* Formats into arena memory, like asprintf. */
char *hdb_arena_sprintf(hdb_arena *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Total bytes handed out since the last reset (for limits and tests). */
size_t hdb_arena_used(const hdb_arena *a);

/* Returns a ProtobufCAllocator that allocates from a and ignores frees. The pointer stays valid
 * as long as the arena exists. */
ProtobufCAllocator *hdb_arena_protobuf(hdb_arena *a);

#ifdef __cplusplus
}
#endif

#endif /* HDB_ARENA_H */
