/*
 * hdb_store.h - the storage layer: one RocksDB database with named column families, point
 * reads, consistent snapshots, iterators, and indexed write batches.
 *
 * Only this module includes rocksdb/c.h. Column families are created and dropped at run time
 * (one points CF and one timeline CF per data source, plus "catalog"). Writes go through the
 * write-ahead log; with sync on, each hdb_store_write fsyncs it before returning, and RocksDB
 * merges concurrent writers into one fsync.
 *
 * A full disk is refused, not met: writes go through a disk guard (hdb_diskguard.h) that keeps
 * storage.min_free_bytes free for RocksDB's own flushes, compactions and recovery, and fails
 * writes with HDB_EFULL below it. Reads never stop.
 *
 * Thread-safety: all functions may be called from any thread, except that one hdb_batch or
 * hdb_iter must not be used by two threads at once. Creating and dropping column families is
 * serialised inside the store.
 */
#ifndef HDB_STORE_H
#define HDB_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct hdb_arena hdb_arena;
typedef struct hdb_store hdb_store;
typedef struct hdb_cf hdb_cf;
typedef struct hdb_snap hdb_snap;
typedef struct hdb_batch hdb_batch;
typedef struct hdb_iter hdb_iter;

typedef struct {
    const char *path;          /* database directory; created (with parents) when missing */
    bool sync;                 /* fsync the WAL on every hdb_store_write */
    size_t block_cache_bytes;  /* shared LRU block cache */
    size_t write_buffer_bytes; /* memtable size per column family */
    uint64_t min_free_bytes;   /* disk reserve that writes never use (hdb_diskguard.h); 0: off */
    const char *ballast_path;  /* emergency reserve file; NULL: none */
    uint64_t ballast_bytes;
} hdb_store_options;

/* Opens (or creates) the database at o->path with every column family it has. The disk guard
 * starts first, so that a nearly full disk releases its ballast before RocksDB replays its log
 * (which then stays in memory rather than being flushed at once). Fails with HDB_EIO and
 * RocksDB's message when the directory is locked by another process or unreadable. Close with
 * hdb_store_close. */
int hdb_store_open(hdb_store **out, const hdb_store_options *o, char *err, size_t errlen);

/* Flushes nothing extra (the WAL already holds every acknowledged write), releases every column
 * family handle and closes the database. NULL is allowed. */
void hdb_store_close(hdb_store *s);

/* Returns the open column family called name, or NULL. The handle stays valid until it is
 * dropped or the store is closed. */
hdb_cf *hdb_store_cf(hdb_store *s, const char *name);

/* Creates a column family; HDB_EEXIST if one with that name is open. */
int hdb_store_cf_create(hdb_store *s, const char *name, hdb_cf **out, char *err, size_t errlen);

/* Drops the column family and releases its handle; cf is invalid afterwards. The caller makes
 * sure nobody else uses the handle any more. */
int hdb_store_cf_drop(hdb_store *s, hdb_cf *cf, char *err, size_t errlen);

/* Calls fn(name, arg) for every open column family (including "default"). */
void hdb_store_cf_foreach(hdb_store *s, void (*fn)(const char *name, void *arg), void *arg);

/* The name a column family was created with. Valid while cf is. */
const char *hdb_cf_name(const hdb_cf *cf);

/* Takes a consistent read snapshot; release with hdb_snap_release (NULL allowed). */
hdb_snap *hdb_store_snapshot(hdb_store *s);
void hdb_snap_release(hdb_store *s, hdb_snap *snap);

/* Reads key from cf (as of snap, or the latest state when snap is NULL). On success copies the
 * value into arena memory and returns HDB_OK; returns HDB_ENOTFOUND when the key is absent, or
 * HDB_EIO with a message. */
int hdb_store_get(hdb_store *s, hdb_cf *cf, const hdb_snap *snap, const void *key, size_t klen,
                  hdb_arena *arena, unsigned char **val, size_t *vlen, char *err, size_t errlen);

/* Reads n keys of one column family in one call. vals[i] is NULL (vlens[i] 0) when key i is
 * absent; values are copied into arena memory. Returns HDB_OK or HDB_EIO (first error). */
int hdb_store_multi_get(hdb_store *s, hdb_cf *cf, const hdb_snap *snap, size_t n,
                        const unsigned char *const *keys, const size_t *klens, hdb_arena *arena,
                        unsigned char **vals, size_t *vlens, char *err, size_t errlen);

/* Writes one key/value pair on its own (used for catalog entries), fsynced when sync is on.
 * Like hdb_store_cf_create, a metadata write: refused (HDB_EFULL) only when free space is below
 * half the reserve. */
int hdb_store_put(hdb_store *s, hdb_cf *cf, const void *key, size_t klen, const void *val,
                  size_t vlen, char *err, size_t errlen);

/* Deletes one key on its own, fsynced when sync is on. Deletes make room, so they are refused
 * only with less than 1 MiB free. */
int hdb_store_delete(hdb_store *s, hdb_cf *cf, const void *key, size_t klen, char *err,
                     size_t errlen);

/* --- indexed write batches: reads see the batch's own writes on top of the database --- */

/* Creates an empty batch. Free with hdb_batch_free (NULL allowed). */
hdb_batch *hdb_batch_create(void);
void hdb_batch_free(hdb_batch *b);

/* Queues a put / delete; the bytes are copied. */
void hdb_batch_put(hdb_batch *b, hdb_cf *cf, const void *key, size_t klen, const void *val,
                   size_t vlen);
void hdb_batch_delete(hdb_batch *b, hdb_cf *cf, const void *key, size_t klen);

/* Reads key as the database would see it after the batch: the batch's latest write to key if
 * any, else the database. Same return convention as hdb_store_get. */
int hdb_batch_get(hdb_store *s, hdb_batch *b, hdb_cf *cf, const void *key, size_t klen,
                  hdb_arena *arena, unsigned char **val, size_t *vlen, char *err, size_t errlen);

/* Marks a save point / undoes every write since the most recent save point (and removes it). */
void hdb_batch_savepoint(hdb_batch *b);
void hdb_batch_rollback(hdb_batch *b);

/* Number of queued operations. */
size_t hdb_batch_count(hdb_batch *b);

/* Applies the batch atomically (fsynced when sync is on). The batch may be freed afterwards.
 * HDB_EFULL (nothing written) when the batch would leave less than the disk reserve free. */
int hdb_store_write(hdb_store *s, hdb_batch *b, char *err, size_t errlen);

/* Bytes the batch would write (its serialised size). */
size_t hdb_batch_bytes(hdb_batch *b);

/* --- range deletion, sizes, free space --- */

/* Deletes every key of cf in [start, end): a durable range tombstone, then the table files that
 * lie wholly inside the range are removed at once and compaction is asked to reclaim the rest
 * in the background. Any iterator or snapshot must not read that range any more. HDB_EFULL
 * (nothing done) when the disk guard refuses deletes (HDB_WRITE_FREE). */
int hdb_store_delete_range(hdb_store *s, hdb_cf *cf, const void *start, size_t slen,
                           const void *end, size_t elen, char *err, size_t errlen);

/* Writes cf's memtable out to a table file and waits for it (for column families written
 * rarely, which would otherwise keep old write-ahead log files alive). HDB_EFULL (nothing
 * done) when the disk guard refuses metadata writes (HDB_WRITE_META). */
int hdb_store_flush(hdb_store *s, hdb_cf *cf, char *err, size_t errlen);

/* Approximate bytes cf holds: its table files plus its memtables. */
uint64_t hdb_store_cf_bytes(hdb_store *s, hdb_cf *cf);

/* HDB_OK when `bytes` more may be written (meta: a metadata write), else HDB_EFULL with the
 * message clients get. For writes outside RocksDB that share its disk (index snapshots). */
int hdb_store_space_check(hdb_store *s, uint64_t bytes, bool meta, char *err, size_t errlen);

/* Free-space figures of the disk under the database. */
typedef struct {
    uint64_t free_bytes, total_bytes, min_free_bytes;
    bool writable; /* data writes are accepted now */
    bool ballast_present;
    const char *path; /* the database directory; valid while the store is open */
} hdb_store_space;

void hdb_store_space_get(hdb_store *s, hdb_store_space *out);

/* A RocksDB integer property: of the database ("rocksdb.is-write-stopped", read on the default
 * column family) or, with sum, summed over every column family
 * ("rocksdb.estimate-pending-compaction-bytes"). false when RocksDB does not know it. Any
 * thread. */
bool hdb_store_property(hdb_store *s, const char *name, bool sum, uint64_t *out);

/* Writes a consistent copy of the whole database (every column family) into dir, which must
 * not exist yet (its parent must): a RocksDB checkpoint. Memtables are flushed first; table
 * files are hard-linked when dir is on the same file system and copied otherwise, and the live
 * write-ahead log is copied, so the copy holds every write acknowledged before the call.
 * Writes go on meanwhile. Opening dir with hdb_store_open gives the database as of one instant
 * during the call. HDB_EEXIST when dir exists, HDB_EIO with RocksDB's message otherwise. Any
 * thread. */
int hdb_store_checkpoint(hdb_store *s, const char *dir, char *err, size_t errlen);

/* --- iterators --- */

/* Creates an iterator over cf as of snap (or the latest state). Free with hdb_iter_free. */
hdb_iter *hdb_iter_create(hdb_store *s, hdb_cf *cf, const hdb_snap *snap);
void hdb_iter_free(hdb_iter *it);
void hdb_iter_seek(hdb_iter *it, const void *key, size_t klen); /* first key >= key */
void hdb_iter_seek_first(hdb_iter *it);
void hdb_iter_seek_last(hdb_iter *it);
bool hdb_iter_valid(const hdb_iter *it);
void hdb_iter_next(hdb_iter *it);
/* Key and value of the current entry; valid until the iterator moves. */
const unsigned char *hdb_iter_key(const hdb_iter *it, size_t *klen);
const unsigned char *hdb_iter_value(const hdb_iter *it, size_t *vlen);
/* HDB_OK, or HDB_EIO with a message when iteration stopped because of an error. */
int hdb_iter_status(const hdb_iter *it, char *err, size_t errlen);

#ifdef __cplusplus
}
#endif

#endif /* HDB_STORE_H */
