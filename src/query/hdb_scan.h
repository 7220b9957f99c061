/*
 * hdb_scan.h - reads over the stored points of a data source: Count and Scroll, each with an
 * optional attribute filter (hdb_filter.h).
 *
 * Both read one consistent snapshot of the source's points: Count in the table's pid order,
 * Scroll in id order (so that its pages come in an order users can predict). They look at
 * the stop condition between chunks, so a cancelled call or a passed deadline ends a long
 * scan within milliseconds.
 *
 * Thread-safety: any thread, concurrently with writes; the caller holds a reference to src.
 */
#ifndef HDB_SCAN_H
#define HDB_SCAN_H

#include <stddef.h>
#include <stdint.h>

#include "hdb_clock.h"
#include "hdb_filter.h"
#include "hdb_table.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct hdb_arena hdb_arena;
typedef struct hdb_source hdb_source;

/* Counts the points of src that pass where (NULL: every point, without reading them) into
 * *count, as of seq *seq. where must have passed hdb_query_check_where. Errors: the stop
 * condition's (HDB_ETIMEOUT, HDB_ECANCELLED), the storage's. */
int hdb_scan_count(hdb_source *src, const hdb_filter *where, const hdb_stop *stop,
                   uint64_t *count, uint64_t *seq, char *err, size_t errlen);

/* One page of Scroll, in id order (hdb_table_scan_ids): after the id key `after` (alen 0:
 * from the start), the first `limit` points that pass where (NULL: all), reading at most
 * max_scan stored points. out (limit slots) receives *n rows whose memory is in arena.
 * *next / *nlen receive the id key to go on after (arena memory), or *nlen 0 when the end of
 * the table was reached. */
int hdb_scan_page(hdb_source *src, const hdb_filter *where, const unsigned char *after,
                  size_t alen, size_t limit, size_t max_scan, const hdb_stop *stop,
                  hdb_arena *arena, hdb_row *out, size_t *n, const unsigned char **next,
                  size_t *nlen, char *err, size_t errlen);

#ifdef __cplusplus
}
#endif

#endif /* HDB_SCAN_H */
