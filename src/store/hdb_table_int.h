/*
 * hdb_table_int.h - what the two files of the source table share (hdb_table.c: storage,
 * writes and reads; hdb_table_timeline.c: the RocksDB implementation of hdb_timeline.h).
 *
 * Column families of table n (key layout in hdb_record.h):
 *   "points.<n>"    'I' + idkey -> pid, and 'P' + pid -> point record
 *   "timeline.<n>"  seq -> timeline entry; dense from first_seq to last_seq
 *
 * Locking: trim_mu serialises trims with subscribes (so that a new subscriber's keep_from is
 * seen by every later trim); sub_mu guards the subscriber list and is taken inside trim_mu and
 * inside the commit queue (notification). Neither is held while waiting for the queue.
 */
#ifndef HDB_TABLE_INT_H
#define HDB_TABLE_INT_H

#include "hdb_table.h"

#include <pthread.h>
#include <stdatomic.h>

typedef struct hdb_batch hdb_batch;
typedef struct hdb_cf hdb_cf;

/* With no subscriber, the timeline is trimmed once this many entries could go. */
#define TRIM_UNWATCHED 4096

struct hdb_table {
    hdb_timeline base; /* first: the timeline handle is the table */
    hdb_store *store;
    uint64_t id;
    char *label;
    char **id_names;
    size_t nid;
    char **perm_names; /* sorted */
    size_t nperm;
    hdb_cf *points, *timeline;
    hdb_commit *commit;
    _Atomic int64_t count;
    _Atomic uint64_t first_seq;
    _Atomic bool trim_held;
    _Atomic int trim_pins; /* hdb_table_trim_pin: no trims while > 0 */
    pthread_mutex_t trim_mu;
    pthread_mutex_t sub_mu;
    hdb_timeline_sub *subs;
    size_t nsubs;
};

struct hdb_table_txn {
    hdb_table *t;
    hdb_batch *b;
    hdb_table_job *job;
    hdb_arena *scratch;
};

/* The timeline operations of every table. */
extern const hdb_timeline_ops hdb__rocksdb_timeline_ops;

/* The commit queue's group hook: notifies the subscribers (and trims when there are none). */
void hdb__table_group_done(void *arg, uint64_t last_seq);

#endif /* HDB_TABLE_INT_H */
