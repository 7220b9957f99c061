/*
 * hdb_backup.h - online backup of a whole server's data, and its restore into a new data dir.
 *
 * A backup is a directory:
 *   BACKUP            the manifest: format version, hilbertd version, time, and per data
 *                     source its seq, per index the seq of its snapshot (CRC-32C trailer)
 *   db/               a RocksDB checkpoint of the whole database (hdb_store_checkpoint)
 *   indices/<id>/     the durable snapshot of each index that had one (hdb_index_snapshot_copy)
 * which is, BACKUP aside, the layout of a data dir (<data_dir>/db, <data_dir>/indices/<id>).
 *
 * Consistency. Writes and index snapshots go on during a backup. The steps are: hold DDL (no
 * source or index is created or dropped meanwhile), pin every source's timeline against trims
 * (hdb_table_trim_pin), copy each index's current snapshot, then take the checkpoint, then
 * unpin. The checkpoint is later than every copied snapshot, and because no trim ran between
 * the copy and the checkpoint the checkpoint's timelines still hold every entry after each
 * copied snapshot (an applier lets entries go only after a newer durable snapshot, and that
 * newer one may not be the one copied). So after a restore each index loads its snapshot and
 * replays only the timeline's tail; an index that had no snapshot yet (still building)
 * rebuilds. The checkpoint holds every write acknowledged before the backup began.
 *
 * Thread-safety: hdb_backup_create may be called from any thread (backups are serialised with
 * each other and with DDL); hdb_backup_restore runs without a server, on the main thread.
 */
#ifndef HDB_BACKUP_H
#define HDB_BACKUP_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct hdb_arena hdb_arena;
typedef struct hdb_catalog hdb_catalog;

/* What one backup holds. Strings and arrays live in the arena given to hdb_backup_create. */
typedef struct {
    const char *path;         /* the backup directory, as resolved (absolute) */
    uint64_t bytes;           /* bytes of its files (hard-linked ones included) */
    uint32_t indices;         /* index snapshots in it */
    size_t nsources;
    const char **source_labels; /* "name@version" */
    uint64_t *source_seqs;    /* every write to that source with seq <= this is in the backup
                               * (the checkpoint may hold a few later ones too) */
} hdb_backup_result;

/* Writes a backup of everything cat holds into path: an absolute directory that does not exist
 * (its parent must) or is empty, outside storage.data_dir and, when storage.backup_dir is set,
 * under it. Errors name the field "path": HDB_EINVAL (empty, relative, no parent, inside the
 * data dir), HDB_EEXIST (exists and is not an empty directory), HDB_EPERM (outside
 * storage.backup_dir); HDB_EIO, HDB_EFULL from the copy, after which path is removed again
 * (or emptied, when it existed). */
int hdb_backup_create(hdb_catalog *cat, const char *path, hdb_arena *arena,
                      hdb_backup_result *out, char *err, size_t errlen);

/* Restores the backup in backup_dir into data_dir, which must not exist or be an empty
 * directory, by copying its files (the backup stays as it was). Prints what it restored to out
 * (NULL: nothing). HDB_EINVAL when backup_dir is not a backup (no valid BACKUP manifest, or a
 * format this hilbertd does not read), HDB_EEXIST when data_dir is not empty, HDB_EIO. */
int hdb_backup_restore(const char *backup_dir, const char *data_dir, FILE *out, char *err,
                       size_t errlen);

#ifdef __cplusplus
}
#endif

#endif /* HDB_BACKUP_H */
