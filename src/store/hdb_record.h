/*
 * hdb_record.h - the on-disk formats of HilbertDB: keys of the points and timeline column
 * families, point records, and timeline entries. Pure functions over bytes; no I/O.
 *
 * Points column family of a data source (one per source):
 *   'I' + idkey        -> pid (8 bytes, big-endian)      identity of a live point
 *   'P' + pid (8B BE)  -> point record                   the current version of that point
 * A pid is the seq of the upload that first created the point; it stays when the point is
 * replaced and is never reused (a deleted-then-re-uploaded point gets a new pid). Engines use
 * pids as labels.
 *
 * Timeline column family: seq (8 bytes, big-endian) -> timeline entry. Append-only; every
 * seq from the oldest retained one to the source's last_seq has an entry (older entries are
 * trimmed once every index has them in a snapshot; the newest is always kept).
 *
 * Point record (all integers little-endian):
 *   u8 format (=1) | u8 flags | u16 reserved | u32 count | u64 seq | vector |
 *   u32 nattrs | nattrs x { u16 name_len | name | u8 type | value }
 *   flags bit 0 set: sparse vector, count entries: count x u32 index, then count x f32 value.
 *   flags 0: dense vector of count x f32; count 0 means no vector (tombstone records).
 *   value: STRING/BYTES u32 len + bytes; INT64/TIMESTAMP i64; FLOAT64 f64; BOOL u8.
 *   Attributes are stored sorted by name.
 * Timeline entry:
 *   u8 format (=1) | u8 op | u16 reserved | u32 reserved | u64 pid | i64 time_us | record
 *   op UPSERT: the record is the point as written. op DELETE: the record has no vector and holds
 *   the permanent attributes of the deleted point (so appliers can find its split); pid 0 means
 *   the tombstone matched no live point.
 *
 * idkey: the id attributes in the source's declared order, each as u8 type followed by
 *   STRING/BYTES u32 BE len + bytes; INT64/TIMESTAMP u64 BE of (value ^ sign bit); BOOL u8.
 *   The same encoding of split attributes is a split key.
 *
 * Only the store (src/store/) uses the key builders: no other layer knows the layout.
 *
 * Thread-safety: pure functions over bytes; any thread.
 */
#ifndef HDB_RECORD_H
#define HDB_RECORD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hdb_types.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct hdb_arena hdb_arena;

enum { HDB_TL_UPSERT = 1, HDB_TL_DELETE = 2 };

#define HDB_PID_KEY_LEN 9 /* 'P' + 8 bytes */
#define HDB_SEQ_KEY_LEN 8

/* A growable byte buffer in an arena. */
typedef struct {
    unsigned char *p;
    size_t len, cap;
    hdb_arena *arena;
} hdb_buf;

/* Starts an empty buffer that grows inside arena. */
void hdb_buf_init(hdb_buf *b, hdb_arena *arena, size_t cap);

/* Appends n bytes. */
void hdb_buf_put(hdb_buf *b, const void *data, size_t n);

/* Writes a big-endian u64 into 8 bytes at out / reads one. */
void hdb_put_be64(unsigned char *out, uint64_t v);
uint64_t hdb_get_be64(const unsigned char *in);

/* Appends the tuple encoding (see above) of the given values, in order. Used for id keys and
 * split keys. FLOAT64 values are not allowed here (callers reject them earlier). */
void hdb_tuple_encode(hdb_buf *b, const hdb_value *vals, size_t n);

/* Decodes a tuple of exactly n values from data[0..len). String and bytes values point into
 * data. Returns HDB_OK or HDB_ECORRUPT. */
int hdb_tuple_decode(const unsigned char *data, size_t len, hdb_value *vals, size_t n);

/* Fills key (HDB_PID_KEY_LEN bytes) with 'P' + pid. */
void hdb_pid_key(unsigned char *key, uint64_t pid);

/* Fills key (HDB_SEQ_KEY_LEN bytes) with the big-endian seq. */
void hdb_seq_key(unsigned char *key, uint64_t seq);

/* Appends a point record for p (attrs must already be sorted by name) written at seq. A point
 * without a vector (a tombstone) is written with count 0 and no sparse flag. */
void hdb_record_encode(hdb_buf *b, const hdb_point *p, uint64_t seq);

/* A decoded record: the point's fields point into the record bytes (strings, names) and into
 * arena memory (the attribute array and the vector copy, which is aligned). */
typedef struct {
    hdb_point point;
    uint64_t seq;
} hdb_record;

/* Decodes a record of len bytes. Allocates the attribute array in arena; strings, and the
 * vector (dense, or sparse indices and values) when data places it 4-byte aligned, keep
 * pointing into data (a copy in arena otherwise), so data must outlive *out. Checks every
 * length against len. Returns HDB_OK or HDB_ECORRUPT. */
int hdb_record_decode(const unsigned char *data, size_t len, hdb_arena *arena, hdb_record *out);

/* Appends a timeline entry. rec_point is the point as written (UPSERT), or a point without a
 * vector holding the deleted point's permanent attributes (DELETE). */
void hdb_timeline_encode(hdb_buf *b, int op, uint64_t pid, int64_t time_us,
                         const hdb_point *rec_point, uint64_t seq);

typedef struct {
    int op;
    uint64_t pid;
    int64_t time_us;
    hdb_record rec;
} hdb_timeline_entry;

/* Decodes a timeline entry (same ownership rules as hdb_record_decode). */
int hdb_timeline_decode(const unsigned char *data, size_t len, hdb_arena *arena,
                        hdb_timeline_entry *out);

/* Reads only the header fields (op, pid, time_us) of a timeline entry without decoding the
 * record. Returns HDB_OK or HDB_ECORRUPT. */
int hdb_timeline_peek(const unsigned char *data, size_t len, int *op, uint64_t *pid,
                      int64_t *time_us);

#ifdef __cplusplus
}
#endif

#endif /* HDB_RECORD_H */
