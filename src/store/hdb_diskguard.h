/*
 * hdb_diskguard.h - keeps the disk that holds the database from filling up.
 *
 * RocksDB cannot survive a write that finds the disk full: Debian's build aborts the process on
 * the next write to the same file, and a restart then needs room to replay its write-ahead log.
 * So hilbertd never lets it get there. The guard
 *  - refuses writes (HDB_EFULL, which clients see as RESOURCE_EXHAUSTED) while the file system
 *    would keep less than min_free_bytes free after them; data writes need the whole reserve,
 *    metadata writes (catalog changes, which are tiny) half of it, and the deletes of a drop,
 *    which free space, only 1 MiB;
 *  - keeps a ballast file of ballast_bytes next to the database as an emergency reserve: it is
 *    released when free space falls below half the reserve anyway (another program filled the
 *    disk, say), and at open when free space is short, so that RocksDB can still flush, compact
 *    and recover; it is recreated once the disk has room for it and the whole reserve again;
 *  - notices by itself when space comes back, so writes resume without a restart.
 * On a disk too small for the configured figures (a reserve of more than half the disk, a
 * ballast of more than a sixteenth) it keeps a quarter of the disk free and a thirty-second of
 * it as ballast instead, and logs that, so that a small disk still takes writes.
 *
 * A monitor thread re-reads the free space every interval and looks after the ballast; the
 * checks read the file system directly (one statvfs call), so they never act on stale figures.
 *
 * Thread-safety: every function may be called from any thread once open has returned.
 */
#ifndef HDB_DISKGUARD_H
#define HDB_DISKGUARD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct hdb_diskguard hdb_diskguard;

typedef struct {
    const char *path;         /* a directory on the watched file system (copied) */
    uint64_t min_free_bytes;  /* reserve that writes never use; 0 turns the checks off */
    const char *ballast_path; /* the ballast file (copied); NULL or ballast_bytes 0: none */
    uint64_t ballast_bytes;
    int interval_ms;          /* monitor period; 0 means 1000 */
} hdb_diskguard_options;

/* What a write is. */
typedef enum {
    HDB_WRITE_DATA = 0, /* points and timeline entries, index snapshots: the whole reserve */
    HDB_WRITE_META = 1, /* catalog entries, column family changes: half the reserve */
    HDB_WRITE_FREE = 2  /* deletes that free space (drops): 1 MiB, so that drops still work */
} hdb_write_kind;

/* Starts guarding o->path. Call before the database opens: when free space is below
 * min_free_bytes and a ballast exists, the ballast is released first, so the database has
 * room to recover. Starts the monitor thread. HDB_EIO when path cannot be inspected. Close with
 * hdb_diskguard_close (NULL allowed). */
int hdb_diskguard_open(hdb_diskguard **out, const hdb_diskguard_options *o, char *err,
                       size_t errlen);

/* Stops the monitor thread and frees the guard. The ballast stays on disk. NULL is allowed. */
void hdb_diskguard_close(hdb_diskguard *g);

/* HDB_OK when `bytes` more of this kind may be written, else HDB_EFULL with a message that
 * names the directory, the free space and the reserve, e.g. "storage: the disk holding
 * /var/lib/hilbertdb/db is full: 12.0 MiB free, storage.min_free_bytes keeps 256.0 MiB for the
 * database's flushes, compactions and recovery; writes resume once space is freed there". A
 * refusal after a period of accepted writes (and the first accepted write after refusals) is
 * logged once. */
int hdb_diskguard_check(hdb_diskguard *g, uint64_t bytes, hdb_write_kind kind, char *err,
                        size_t errlen);

typedef struct {
    uint64_t free_bytes;     /* available to an unprivileged writer (statvfs f_bavail) */
    uint64_t total_bytes;
    uint64_t min_free_bytes;
    bool writable;           /* a small data write would be accepted now */
    bool ballast_present;
} hdb_diskguard_state;

/* Reads the current state (one statvfs call). */
void hdb_diskguard_state_get(hdb_diskguard *g, hdb_diskguard_state *st);

/* The reserve in force: min_free_bytes, or less on a small disk (see above). */
uint64_t hdb_diskguard_min_free(const hdb_diskguard *g);

/* The watched directory, as given to open. */
const char *hdb_diskguard_path(const hdb_diskguard *g);

#ifdef __cplusplus
}
#endif

#endif /* HDB_DISKGUARD_H */
