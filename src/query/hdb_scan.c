/*
 * hdb_scan.c - Count and Scroll over a data source's stored points (see hdb_scan.h).
 */
#include "hdb_scan.h"

#include "hdb_arena.h"
#include "hdb_catalog.h"
#include "hdb_err.h"
#include "hdb_mem.h"

#include <string.h>

/* Stored points read per chunk between two looks at the stop condition. */
#define SCAN_CHUNK 256

int hdb_scan_count(hdb_source *src, const hdb_filter *where, const hdb_stop *stop,
                   uint64_t *count, uint64_t *seq, char *err, size_t errlen) {
    hdb_table *t = hdb_source_table(src);
    hdb_snap *snap = hdb_table_snapshot(t, seq);
    int rc = HDB_OK;
    if (where == NULL) {
        /* Taken while no group commits, so the live count matches the snapshot's seq. */
        *count = hdb_table_count(t);
        hdb_table_snapshot_release(t, snap);
        return rc;
    }
    hdb_arena *scratch = hdb_arena_create(1 << 16);
    hdb_row rows[SCAN_CHUNK];
    uint64_t cursor = 0, passed = 0;
    size_t n;
    do {
        hdb_arena_reset(scratch);
        if ((rc = hdb_stop_check(stop, "count", err, errlen)) != HDB_OK) break;
        rc = hdb_table_scan(t, snap, &cursor, SCAN_CHUNK, scratch, rows, &n, err, errlen);
        for (size_t i = 0; rc == HDB_OK && i < n; i++)
            passed += hdb_filter_eval(where, rows[i].rec.point.attrs, rows[i].rec.point.nattrs);
    } while (rc == HDB_OK && n > 0);
    hdb_arena_free(scratch);
    hdb_table_snapshot_release(t, snap);
    *count = passed;
    return rc;
}

int hdb_scan_page(hdb_source *src, const hdb_filter *where, const unsigned char *after,
                  size_t alen, size_t limit, size_t max_scan, const hdb_stop *stop,
                  hdb_arena *arena, hdb_row *out, size_t *n, const unsigned char **next,
                  size_t *nlen, char *err, size_t errlen) {
    hdb_table *t = hdb_source_table(src);
    hdb_snap *snap = hdb_table_snapshot(t, NULL);
    hdb_arena *scratch = hdb_arena_create(1 << 16);
    uint64_t *pids = hdb_malloc((limit ? limit : 1) * sizeof *pids);
    hdb_row rows[SCAN_CHUNK];
    const unsigned char *keys[SCAN_CHUNK];
    size_t klens[SCAN_CHUNK];
    /* The id key to go on after, copied out of each chunk's scratch memory. */
    unsigned char *at = hdb_malloc(alen ? alen : 1);
    size_t atlen = alen;
    if (alen) memcpy(at, after, alen);
    uint64_t scanned = 0;
    size_t kept = 0, got;
    bool end = false;
    int rc = HDB_OK;
    while (kept < limit && scanned < max_scan) {
        hdb_arena_reset(scratch);
        if ((rc = hdb_stop_check(stop, "scroll", err, errlen)) != HDB_OK) break;
        size_t want = max_scan - scanned < SCAN_CHUNK ? (size_t)(max_scan - scanned) : SCAN_CHUNK;
        if (where == NULL && limit - kept < want) want = limit - kept;
        rc = hdb_table_scan_ids(t, snap, at, atlen, want, scratch, rows, keys, klens, &got, err,
                                errlen);
        if (rc != HDB_OK) break;
        if (got == 0) {
            end = true;
            break;
        }
        size_t i = 0;
        for (; i < got && kept < limit; i++) {
            const hdb_point *p = &rows[i].rec.point;
            if (where == NULL || hdb_filter_eval(where, p->attrs, p->nattrs))
                pids[kept++] = rows[i].pid;
        }
        scanned += i;
        /* Go on after the last row looked at: the page may have filled mid-chunk. */
        at = hdb_realloc(at, klens[i - 1] ? klens[i - 1] : 1);
        memcpy(at, keys[i - 1], klens[i - 1]);
        atlen = klens[i - 1];
    }
    hdb_arena_free(scratch);
    /* The kept points, from the same snapshot, into the caller's arena. */
    if (rc == HDB_OK) rc = hdb_table_get_pids(t, snap, pids, kept, arena, out, err, errlen);
    hdb_table_snapshot_release(t, snap);
    hdb_free(pids);
    if (rc == HDB_OK) {
        *n = kept;
        *nlen = end ? 0 : atlen;
        *next = end || atlen == 0 ? NULL : hdb_arena_memdup(arena, at, atlen);
    }
    hdb_free(at);
    return rc;
}
