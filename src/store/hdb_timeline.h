/*
 * hdb_timeline.h - the timeline contract: the ordered, durable log of one data source's
 * changes, which its indices follow.
 *
 * A timeline is what an index needs of its data source besides the points themselves. This
 * header is the whole contract; an implementation provides an hdb_timeline_ops table and embeds
 * struct hdb_timeline as the first member of its own object. The first implementation is the
 * RocksDB timeline of a source table (hdb_table.h); a replicated log (NATS JetStream, one
 * subject per shard) is meant to be the second. Callers use only the hdb_timeline_* functions
 * below.
 *
 * Entries. Each entry is an upsert (the point as written) or a delete (the deleted point's
 * permanent attributes, no vector), in the form of hdb_record.h's timeline entry, plus the pid
 * of the point it changes (0 for a delete that matched no point) and the wall-clock time of its
 * append.
 *
 * What every implementation guarantees:
 *  - Order. Seqs are strictly increasing and never reused; 0 is never a seq. Readers must not
 *    assume they are dense (the RocksDB timeline's are; a shard's view of a shared log is not).
 *  - Durability. An entry becomes visible (to read, last_seq and subscribers) only once it is
 *    durable in the implementation's sense (RocksDB: in the write-ahead log, fsynced when
 *    storage.sync is on; JetStream: acknowledged by the stream's replicas), and all entries of
 *    one append become visible together or not at all. A failed append leaves nothing behind.
 *  - Append. hdb_timeline_append(entries) takes n entries, gives them the next seqs, makes them
 *    durable as a unit, and returns the first seq. Implementations that own more than the log
 *    may do more in the same atomic step: the RocksDB table also applies each entry to the
 *    source's points (it is the write path of a source table, see hdb_table_commit).
 *  - Notification. After each durable group of appends, every subscriber's notify is called
 *    once, in order, on the appending thread. notify must be cheap and must not block (wake a
 *    thread); it must not call back into the timeline.
 *  - Retention. Each subscriber states, in keep_from, the lowest seq it may still read; 0 means
 *    "everything". The timeline deletes entries below the lowest keep_from of its subscribers
 *    (all but the newest entry when it has none), in the background, at a moment of its
 *    choosing; hdb_timeline_trim asks for it explicitly. The newest entry is always kept.
 *  - Reads. read(from_seq) returns the durable entries with seq >= from_seq, in seq order.
 *    Asking for entries that were trimmed (from_seq < first_seq) fails with HDB_ETRIMMED: a
 *    reader that finds its place gone rebuilds from the points instead.
 *
 * Thread-safety: every function may be called from any thread, concurrently with appends.
 * A subscriber struct must stay valid and unmoved until it is unsubscribed.
 */
#ifndef HDB_TIMELINE_H
#define HDB_TIMELINE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hdb_record.h"
#include "hdb_types.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct hdb_arena hdb_arena;
typedef struct hdb_timeline hdb_timeline;
typedef struct hdb_timeline_sub hdb_timeline_sub;

/* A follower of the timeline. The caller owns the struct; the timeline keeps a pointer to it
 * between subscribe and unsubscribe. */
struct hdb_timeline_sub {
    void (*notify)(void *arg); /* new durable entries; see "Notification" above */
    void *arg;
    _Atomic uint64_t keep_from; /* lowest seq still needed; 0: all. Set by the subscriber. */
    hdb_timeline_sub *_next;    /* private to the timeline */
};

/* One entry to append. */
typedef struct {
    int op;                 /* HDB_TL_UPSERT or HDB_TL_DELETE */
    const hdb_point *point; /* upsert: the point; delete: a tombstone with the id attributes */
} hdb_timeline_input;

/* What a timeline holds now. */
typedef struct {
    uint64_t first_seq; /* lowest retained seq; last_seq + 1 when none is retained */
    uint64_t last_seq;  /* newest durable seq; 0 when nothing was ever appended */
    uint64_t entries;   /* retained entries */
    uint64_t bytes;     /* approximate bytes they take, on disk and in memory */
    uint64_t keep_from; /* lowest keep_from of the subscribers (last_seq + 1 with none) */
    size_t subscribers;
} hdb_timeline_stats;

/* The operations of one implementation; see the contract above for each. */
typedef struct {
    const char *kind; /* e.g. "rocksdb", for logs */
    uint64_t (*last_seq)(hdb_timeline *tl);
    uint64_t (*first_seq)(hdb_timeline *tl);
    int (*read)(hdb_timeline *tl, uint64_t from_seq, size_t max, hdb_arena *arena,
                hdb_timeline_entry *out, size_t *n, char *err, size_t errlen);
    int (*entry_time)(hdb_timeline *tl, uint64_t seq, int64_t *time_us, char *err,
                      size_t errlen);
    int (*append)(hdb_timeline *tl, const hdb_timeline_input *in, size_t n, hdb_arena *arena,
                  uint64_t *first_seq, char *err, size_t errlen);
    int (*trim)(hdb_timeline *tl, char *err, size_t errlen);
    void (*subscribe)(hdb_timeline *tl, hdb_timeline_sub *sub);
    void (*unsubscribe)(hdb_timeline *tl, hdb_timeline_sub *sub);
    void (*stats)(hdb_timeline *tl, hdb_timeline_stats *st);
} hdb_timeline_ops;

/* The base of every implementation's object (its first member). */
struct hdb_timeline {
    const hdb_timeline_ops *ops;
};

/* The newest durable seq (0: none). */
uint64_t hdb_timeline_last_seq(hdb_timeline *tl);

/* The lowest seq still retained; last_seq + 1 when nothing is. */
uint64_t hdb_timeline_first_seq(hdb_timeline *tl);

/* Reads up to max durable entries with seq >= from_seq, in seq order, into out (max slots);
 * *n tells how many (0: none yet). Entry memory (records, attributes, vectors) comes from
 * arena and stays valid until the arena is reset. HDB_ETRIMMED when from_seq < first_seq;
 * HDB_ECORRUPT or HDB_EIO with a message when the log cannot be read. */
int hdb_timeline_read(hdb_timeline *tl, uint64_t from_seq, size_t max, hdb_arena *arena,
                      hdb_timeline_entry *out, size_t *n, char *err, size_t errlen);

/* The wall-clock time (µs since the Unix epoch) at which entry seq was appended.
 * HDB_ENOTFOUND when it is not retained. */
int hdb_timeline_entry_time(hdb_timeline *tl, uint64_t seq, int64_t *time_us, char *err,
                            size_t errlen);

/* Appends n entries as one durable unit (see "Append"); *first_seq receives the seq of in[0].
 * Scratch memory comes from arena. HDB_EINVAL naming in[i] for an entry the implementation
 * cannot take (e.g. without its id attributes); HDB_EFULL when the disk is full; HDB_EIO. */
int hdb_timeline_append(hdb_timeline *tl, const hdb_timeline_input *in, size_t n,
                        hdb_arena *arena, uint64_t *first_seq, char *err, size_t errlen);

/* Deletes now what retention allows (see "Retention"). HDB_OK when there was nothing to do. */
int hdb_timeline_trim(hdb_timeline *tl, char *err, size_t errlen);

/* Starts / stops notifying sub. Set sub->keep_from before subscribing: entries below it may go
 * from that moment. */
void hdb_timeline_subscribe(hdb_timeline *tl, hdb_timeline_sub *sub);
void hdb_timeline_unsubscribe(hdb_timeline *tl, hdb_timeline_sub *sub);

/* Tells the timeline that sub no longer needs entries below keep_from (it only ever rises; a
 * lower value is ignored). Trimming follows in the background. */
void hdb_timeline_keep_from(hdb_timeline *tl, hdb_timeline_sub *sub, uint64_t keep_from);

/* Fills st. */
void hdb_timeline_stats_get(hdb_timeline *tl, hdb_timeline_stats *st);

#ifdef __cplusplus
}
#endif

#endif /* HDB_TIMELINE_H */
