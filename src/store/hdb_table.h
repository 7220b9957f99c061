/*
 * hdb_table.h - the source table: everything one data source keeps in storage.
 *
 * A table owns a data source's two column families, their key layout (hdb_record.h), its
 * group-commit queue and its timeline. No module outside src/store/ builds or parses a key of
 * them: writers go through table jobs, readers through the get/scan calls, indices through the
 * timeline (hdb_timeline.h), of which the table is the RocksDB implementation.
 *
 * Writing. A writer submits a table job (hdb_table_commit). Its prepare runs on the commit
 * leader's thread, in seq order with the other jobs of its group, and uses the txn calls to
 * look up the points it changes (as the group sees them, earlier jobs included) and to write
 * upserts and deletes; each of those appends its timeline entry in the same atomic write. Once
 * the group is durable the table counts the points, runs the jobs' applied hooks and notifies
 * the timeline's subscribers.
 *
 * Retention. The timeline keeps what its subscribers (the appliers of the source's indices)
 * still need: entries below the lowest keep_from are deleted with a range delete, and their
 * files reclaimed. A table opened at start holds trimming until hdb_table_trim_start, so that
 * every index of the source has subscribed before anything goes.
 *
 * Thread-safety: every function may be called from any thread; the txn calls only inside a
 * job's prepare.
 */
#ifndef HDB_TABLE_H
#define HDB_TABLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hdb_commit.h"
#include "hdb_record.h"
#include "hdb_timeline.h"
#include "hdb_types.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct hdb_arena hdb_arena;
typedef struct hdb_store hdb_store;
typedef struct hdb_snap hdb_snap;
typedef struct hdb_table hdb_table;
typedef struct hdb_table_txn hdb_table_txn;
typedef struct hdb_table_job hdb_table_job;

/* What the table needs to know of its source's schema. */
typedef struct {
    uint64_t id;                   /* unique per store; names the column families */
    const char *label;             /* "name@version", for messages; copied */
    const char *const *id_names;   /* id attributes in declared order; copied */
    size_t nid;
    const char *const *perm_names; /* permanent attributes, any order; copied */
    size_t nperm;
} hdb_table_spec;

/* Creates the column families of a new table. HDB_EEXIST when they exist already (a leftover
 * that hdb_table_drop_orphans removes), HDB_EFULL, HDB_EIO. Close with hdb_table_close. */
int hdb_table_create(hdb_table **out, hdb_store *store, const hdb_table_spec *spec, char *err,
                     size_t errlen);

/* Opens the existing table spec->id: recovers its last seq, its retained range and its point
 * count. Trimming is held until hdb_table_trim_start. HDB_ECORRUPT when a column family is
 * missing or a key is malformed. */
int hdb_table_open(hdb_table **out, hdb_store *store, const hdb_table_spec *spec, char *err,
                   size_t errlen);

/* Lets an opened table trim its timeline (see "Retention"), and trims what it may at once.
 * Idempotent. */
void hdb_table_trim_start(hdb_table *t);

/* Pins the timeline's retained range: until the matching hdb_table_trim_unpin, nothing is
 * trimmed, whatever the subscribers' keep_from say (a backup copies index snapshots and then
 * the database, and the timeline must still hold every entry after the copied snapshots).
 * Waits for a trim in progress to end, so that first_seq does not move after it returns. Pins
 * nest. Any thread. */
void hdb_table_trim_pin(hdb_table *t);

/* Ends one hdb_table_trim_pin and trims what the subscribers have let go of meanwhile. */
void hdb_table_trim_unpin(hdb_table *t);

/* Releases the table; with drop, deletes its column families and so all its data. No job may
 * be running and no one may use the table any more. NULL is allowed. */
void hdb_table_close(hdb_table *t, bool drop);

/* Drops the column families of tables that live() says do not exist (left over by a crash
 * during a create or drop). Returns how many tables were removed. */
size_t hdb_table_drop_orphans(hdb_store *store, bool (*live)(void *arg, uint64_t id), void *arg);

/* "name@version", as given at create/open. */
const char *hdb_table_label(const hdb_table *t);

/* The table's id (hdb_table_spec.id): unique per store. Any thread. */
uint64_t hdb_table_id(const hdb_table *t);

/* Live points (tombstoned ones are not counted), as of the last durable group. */
uint64_t hdb_table_count(hdb_table *t);

/* The newest durable seq (0: none yet). */
uint64_t hdb_table_last_seq(hdb_table *t);

/* The table's timeline (the RocksDB implementation of hdb_timeline.h); valid while t is. */
hdb_timeline *hdb_table_timeline(hdb_table *t);

/* HDB_OK when `bytes` more may be written on the disk of the table (for index snapshots that
 * share it), else HDB_EFULL with the message clients get. */
int hdb_table_space_check(hdb_table *t, uint64_t bytes, char *err, size_t errlen);

/* ---------------------------------------------------------------- writes */

/* A job: a unit of writes that commits atomically with its own seqs. The caller owns the
 * struct, which must stay valid until hdb_table_commit returns. */
struct hdb_table_job {
    /* Adds the job's writes through tx, numbering them from first_seq, and stores how many
     * seqs it used in *nseq. On error (a message in err) its writes are undone and it fails
     * alone. */
    int (*prepare)(hdb_table_job *job, hdb_table_txn *tx, uint64_t first_seq, uint64_t *nseq,
                   char *err, size_t errlen);
    /* After the write is durable, in seq order, on the leader's thread. May be NULL. */
    void (*applied)(hdb_table_job *job);
    void *arg;

    /* Filled in by the table. */
    int rc;
    const char *err; /* the message when rc != HDB_OK; valid while the job is */
    uint64_t first_seq, nseq;

    /* Private to the table. */
    hdb_commit_job _cj;
    hdb_table *_t;
    int64_t _delta;
    int64_t _time_us;
};

/* Submits job and blocks until it is durable or has failed; returns job->rc. HDB_EFULL when the
 * disk is full, HDB_EIO for storage failures (every job of the group fails then). */
int hdb_table_commit(hdb_table *t, hdb_table_job *job);

/* Commits jobs[i] to tables ts[i] (distinct tables of one store) atomically: one write, or
 * none; see hdb_commit_submit_all for the error rules. */
int hdb_table_commit_all(hdb_table *const *ts, hdb_table_job *const *jobs, size_t n, char *err,
                         size_t errlen);

/* Runs fn(arg) while no job of t commits (for catalog changes that must not interleave with
 * writes). Returns fn's result. */
int hdb_table_exclusive(hdb_table *t, int (*fn)(void *arg), void *arg);

/* One point read back. */
typedef struct {
    bool found;
    uint64_t pid;   /* the point's label in the engines: the seq that first created it */
    hdb_record rec; /* when found: the point as stored, its seq; memory in the caller's arena */
} hdb_row;

/* Inside prepare: finds the live point with the id attributes of p (attrs sorted by name,
 * every id attribute present), as the group sees it. out->found false when there is none.
 * HDB_EINVAL when p lacks an id attribute, HDB_ECORRUPT, HDB_EIO. Memory from arena. */
int hdb_table_txn_find(hdb_table_txn *tx, const hdb_point *p, hdb_arena *arena, hdb_row *out,
                       char *err, size_t errlen);

/* Inside prepare: writes p (validated; attrs sorted) at seq, replacing old when old->found (the
 * pid stays) or creating a point whose pid is seq, and appends its UPSERT entry. Returns the
 * pid. */
uint64_t hdb_table_txn_upsert(hdb_table_txn *tx, uint64_t seq, const hdb_point *p,
                              const hdb_row *old);

/* Inside prepare: deletes old when old->found and appends a DELETE entry holding its permanent
 * attributes; otherwise appends a DELETE that matched nothing (pid 0), holding tomb's
 * attributes, so that seqs stay dense. Returns the removed pid, or 0. */
uint64_t hdb_table_txn_delete(hdb_table_txn *tx, uint64_t seq, const hdb_point *tomb,
                              const hdb_row *old);

/* ---------------------------------------------------------------- reads */

/* Takes a consistent snapshot of the points together with the seq it reflects (*seq), taken
 * while no group commits (seq NULL: any moment, without waiting for the queue). Release with
 * hdb_table_snapshot_release. */
hdb_snap *hdb_table_snapshot(hdb_table *t, uint64_t *seq);
void hdb_table_snapshot_release(hdb_table *t, hdb_snap *snap);

/* Reads n points by id attributes (ids[i]: nids[i] attributes sorted by name, holding every
 * id attribute) from snap (NULL: a fresh snapshot), into out (n slots, memory in arena). */
int hdb_table_get_ids(hdb_table *t, const hdb_snap *snap, size_t n, hdb_attr *const *ids,
                      const uint32_t *nids, hdb_arena *arena, hdb_row *out, char *err,
                      size_t errlen);

/* Reads points by pid with one batched read from snap (NULL: the latest state); out[i].found
 * is false for a pid that no longer exists (or is 0). */
int hdb_table_get_pids(hdb_table *t, const hdb_snap *snap, const uint64_t *pids, size_t n,
                       hdb_arena *arena, hdb_row *out, char *err, size_t errlen);

/* Reads up to max points in pid order, starting at pid *cursor (0 or 1: the first), from snap
 * (NULL: the latest state), into out; *n tells how many, 0 at the end. *cursor moves past the
 * last point read, so repeated calls walk the whole table. Memory in arena. */
int hdb_table_scan(hdb_table *t, const hdb_snap *snap, uint64_t *cursor, size_t max,
                   hdb_arena *arena, hdb_row *out, size_t *n, char *err, size_t errlen);

/* Reads up to max points in id order (the order of their id keys, see hdb_record.h: numbers
 * ascending, strings and bytes by length, then bytewise, attribute by attribute in declared
 * order), starting after the id key `after` (alen 0: from the first), from snap (NULL: a fresh
 * snapshot), into out; *n tells how many, 0 at the end. keys[i] / klens[i] (max slots each)
 * receive the id key of out[i], to pass as `after` to go on after it. Memory in arena. */
int hdb_table_scan_ids(hdb_table *t, const hdb_snap *snap, const unsigned char *after,
                       size_t alen, size_t max, hdb_arena *arena, hdb_row *out,
                       const unsigned char **keys, size_t *klens, size_t *n, char *err,
                       size_t errlen);

#ifdef __cplusplus
}
#endif

#endif /* HDB_TABLE_H */
