/*
 * hdb_store.c - RocksDB behind the hdb_store interface (see hdb_store.h).
 */
#include "hdb_store.h"

#include "hdb_arena.h"
#include "hdb_diskguard.h"
#include "hdb_err.h"
#include "hdb_file.h"
#include "hdb_log.h"
#include "hdb_mem.h"

#include <errno.h>
#include <pthread.h>
#include <rocksdb/c.h>
#include <string.h>
#include <sys/stat.h>

struct hdb_cf {
    char *name;
    rocksdb_column_family_handle_t *h;
};

struct hdb_store {
    char *path;
    hdb_diskguard *guard;
    rocksdb_t *db;
    rocksdb_options_t *opts;
    rocksdb_block_based_table_options_t *table;
    rocksdb_cache_t *cache;
    rocksdb_writeoptions_t *wopts;
    rocksdb_readoptions_t *ropts;
    pthread_mutex_t cf_mu; /* guards cfs/ncfs */
    hdb_cf **cfs;
    size_t ncfs;
};

struct hdb_snap {
    const rocksdb_snapshot_t *s;
    rocksdb_readoptions_t *ro;
};

struct hdb_batch {
    rocksdb_writebatch_wi_t *wb;
};

struct hdb_iter {
    rocksdb_iterator_t *it;
    rocksdb_readoptions_t *ro;
};

/* Copies a RocksDB error into err, frees it, and returns rc. */
static int take_err(char *rerr, int rc, char *err, size_t errlen, const char *what) {
    hdb_errf(err, errlen, rc, "%s: %s", what, rerr ? rerr : "unknown error");
    rocksdb_free(rerr);
    return rc;
}

static hdb_cf *cf_new(const char *name, rocksdb_column_family_handle_t *h) {
    hdb_cf *cf = hdb_malloc(sizeof *cf);
    cf->name = hdb_strdup(name);
    cf->h = h;
    return cf;
}

static void cf_add(hdb_store *s, hdb_cf *cf) {
    s->cfs = hdb_realloc(s->cfs, (s->ncfs + 1) * sizeof *s->cfs);
    s->cfs[s->ncfs++] = cf;
}

int hdb_store_open(hdb_store **out, const hdb_store_options *o, char *err, size_t errlen) {
    int rc = HDB_OK;
    char *rerr = NULL;
    char **names = NULL;
    size_t nnames = 0;
    const rocksdb_options_t **cfopts = NULL;
    rocksdb_column_family_handle_t **handles = NULL;
    hdb_store *s = hdb_calloc(1, sizeof *s);
    pthread_mutex_init(&s->cf_mu, NULL);

    if ((rc = hdb_mkdir_p(o->path, err, errlen)) != HDB_OK) goto fail;
    s->path = hdb_strdup(o->path);
    hdb_diskguard_options go = {.path = o->path,
                                .min_free_bytes = o->min_free_bytes,
                                .ballast_path = o->ballast_path,
                                .ballast_bytes = o->ballast_bytes};
    if ((rc = hdb_diskguard_open(&s->guard, &go, err, errlen)) != HDB_OK) goto fail;

    s->cache = rocksdb_cache_create_lru(o->block_cache_bytes);
    s->table = rocksdb_block_based_options_create();
    rocksdb_block_based_options_set_block_cache(s->table, s->cache);
    rocksdb_block_based_options_set_filter_policy(s->table,
                                                  rocksdb_filterpolicy_create_bloom_full(10));
    s->opts = rocksdb_options_create();
    rocksdb_options_set_create_if_missing(s->opts, 1);
    rocksdb_options_set_create_missing_column_families(s->opts, 1);
    rocksdb_options_set_block_based_table_factory(s->opts, s->table);
    /* A memtable flush must fit in the reserve, with room for a few at once. */
    size_t write_buffer = o->write_buffer_bytes;
    uint64_t reserve = hdb_diskguard_min_free(s->guard);
    if (reserve > 0 && write_buffer > reserve / 4) {
        write_buffer = reserve / 4 > (1u << 20) ? (size_t)(reserve / 4) : 1u << 20;
        HDB_INFO("store", "memtables of %.1f MiB (storage.write_buffer_bytes is %.1f MiB): the "
                          "disk reserve of %.1f MiB must hold their flushes",
                 (double)write_buffer / 1048576.0, (double)o->write_buffer_bytes / 1048576.0,
                 (double)reserve / 1048576.0);
    }
    rocksdb_options_set_write_buffer_size(s->opts, write_buffer);
    rocksdb_options_set_max_background_jobs(s->opts, 2);
    /* Float vectors barely compress; LZ4 is cheap and still helps attribute text. */
    rocksdb_options_set_compression(s->opts, rocksdb_lz4_compression);
    /* A write-ahead log file goes only once every column family with data in it has flushed,
     * so column families with little traffic would pin old log files. Past this total RocksDB
     * flushes them: the log stays within a few memtables' worth. */
    uint64_t wal_cap = 4 * (uint64_t)write_buffer;
    rocksdb_options_set_max_total_wal_size(s->opts, wal_cap < (16u << 20) ? 16u << 20 : wal_cap);
    /* RocksDB's own LOG file: warnings only, a few small files (it shares the data disk). */
    rocksdb_options_set_info_log_level(s->opts, 2 /* WARN_LEVEL */);
    rocksdb_options_set_keep_log_file_num(s->opts, 3);
    rocksdb_options_set_max_log_file_size(s->opts, 4u << 20);
    /* Replaying the WAL at open keeps what it recovers in memory instead of writing it out as
     * new table files first: a restart then needs next to no free space. The C API has no
     * setter for this option, hence the options string. */
    {
        rocksdb_options_t *o2 = rocksdb_options_create();
        rocksdb_get_options_from_string(s->opts, "avoid_flush_during_recovery=true", o2, &rerr);
        if (rerr != NULL) {
            rocksdb_options_destroy(o2);
            rc = take_err(rerr, HDB_EINTERNAL, err, errlen, "database options");
            rerr = NULL;
            goto fail;
        }
        rocksdb_options_destroy(s->opts);
        s->opts = o2;
    }

    names = rocksdb_list_column_families(s->opts, o->path, &nnames, &rerr);
    if (rerr != NULL) {
        /* A new database has no CURRENT file yet; anything else is a real error. */
        rocksdb_free(rerr);
        rerr = NULL;
        if (names) rocksdb_list_column_families_destroy(names, nnames);
        names = NULL;
        nnames = 0;
    }
    static const char *default_name[] = {"default"};
    const char *const *open_names = nnames ? (const char *const *)names : default_name;
    size_t nopen = nnames ? nnames : 1;
    cfopts = hdb_calloc(nopen, sizeof *cfopts);
    handles = hdb_calloc(nopen, sizeof *handles);
    for (size_t i = 0; i < nopen; i++) cfopts[i] = s->opts;
    s->db = rocksdb_open_column_families(s->opts, o->path, (int)nopen, open_names, cfopts, handles,
                                         &rerr);
    if (rerr != NULL) {
        rc = take_err(rerr, HDB_EIO, err, errlen, "cannot open the database");
        rerr = NULL;
        goto fail;
    }
    for (size_t i = 0; i < nopen; i++) cf_add(s, cf_new(open_names[i], handles[i]));

    s->wopts = rocksdb_writeoptions_create();
    rocksdb_writeoptions_set_sync(s->wopts, o->sync ? 1 : 0);
    s->ropts = rocksdb_readoptions_create();
    HDB_INFO("store", "opened %s (%zu column families, sync %s)", o->path, nopen,
             o->sync ? "on" : "off");
    *out = s;
    s = NULL;
fail:
    if (names) rocksdb_list_column_families_destroy(names, nnames);
    hdb_free(cfopts);
    hdb_free(handles);
    hdb_store_close(s);
    return rc;
}

void hdb_store_close(hdb_store *s) {
    if (s == NULL) return;
    for (size_t i = 0; i < s->ncfs; i++) {
        rocksdb_column_family_handle_destroy(s->cfs[i]->h);
        hdb_free(s->cfs[i]->name);
        hdb_free(s->cfs[i]);
    }
    hdb_free(s->cfs);
    if (s->db) rocksdb_close(s->db);
    if (s->wopts) rocksdb_writeoptions_destroy(s->wopts);
    if (s->ropts) rocksdb_readoptions_destroy(s->ropts);
    if (s->opts) rocksdb_options_destroy(s->opts);
    if (s->table) rocksdb_block_based_options_destroy(s->table);
    if (s->cache) rocksdb_cache_destroy(s->cache);
    hdb_diskguard_close(s->guard);
    hdb_free(s->path);
    pthread_mutex_destroy(&s->cf_mu);
    hdb_free(s);
}

hdb_cf *hdb_store_cf(hdb_store *s, const char *name) {
    hdb_cf *found = NULL;
    pthread_mutex_lock(&s->cf_mu);
    for (size_t i = 0; i < s->ncfs; i++) {
        if (strcmp(s->cfs[i]->name, name) == 0) {
            found = s->cfs[i];
            break;
        }
    }
    pthread_mutex_unlock(&s->cf_mu);
    return found;
}

int hdb_store_cf_create(hdb_store *s, const char *name, hdb_cf **out, char *err, size_t errlen) {
    if (hdb_store_cf(s, name) != NULL)
        return hdb_errf(err, errlen, HDB_EEXIST, "column family %s already exists", name);
    int grc = hdb_diskguard_check(s->guard, 0, HDB_WRITE_META, err, errlen);
    if (grc != HDB_OK) return grc;
    char *rerr = NULL;
    pthread_mutex_lock(&s->cf_mu);
    rocksdb_column_family_handle_t *h = rocksdb_create_column_family(s->db, s->opts, name, &rerr);
    if (rerr == NULL) {
        *out = cf_new(name, h);
        cf_add(s, *out);
    }
    pthread_mutex_unlock(&s->cf_mu);
    if (rerr != NULL) return take_err(rerr, HDB_EIO, err, errlen, "create column family");
    return HDB_OK;
}

int hdb_store_cf_drop(hdb_store *s, hdb_cf *cf, char *err, size_t errlen) {
    char *rerr = NULL;
    pthread_mutex_lock(&s->cf_mu);
    rocksdb_drop_column_family(s->db, cf->h, &rerr);
    if (rerr == NULL) {
        for (size_t i = 0; i < s->ncfs; i++) {
            if (s->cfs[i] == cf) {
                s->cfs[i] = s->cfs[--s->ncfs];
                break;
            }
        }
    }
    pthread_mutex_unlock(&s->cf_mu);
    if (rerr != NULL) return take_err(rerr, HDB_EIO, err, errlen, "drop column family");
    rocksdb_column_family_handle_destroy(cf->h);
    hdb_free(cf->name);
    hdb_free(cf);
    return HDB_OK;
}

bool hdb_store_property(hdb_store *s, const char *name, bool sum, uint64_t *out) {
    if (!sum) return rocksdb_property_int(s->db, name, out) == 0;
    uint64_t total = 0, v;
    bool any = false;
    pthread_mutex_lock(&s->cf_mu); /* the handles stay valid while it is held */
    for (size_t i = 0; i < s->ncfs; i++)
        if (rocksdb_property_int_cf(s->db, s->cfs[i]->h, name, &v) == 0) {
            total += v;
            any = true;
        }
    pthread_mutex_unlock(&s->cf_mu);
    *out = total;
    return any;
}

void hdb_store_cf_foreach(hdb_store *s, void (*fn)(const char *name, void *arg), void *arg) {
    /* Copy the names first so fn may create or drop column families. */
    pthread_mutex_lock(&s->cf_mu);
    size_t n = s->ncfs;
    char **names = hdb_calloc(n, sizeof *names);
    for (size_t i = 0; i < n; i++) names[i] = hdb_strdup(s->cfs[i]->name);
    pthread_mutex_unlock(&s->cf_mu);
    for (size_t i = 0; i < n; i++) {
        fn(names[i], arg);
        hdb_free(names[i]);
    }
    hdb_free(names);
}

const char *hdb_cf_name(const hdb_cf *cf) {
    return cf->name;
}

hdb_snap *hdb_store_snapshot(hdb_store *s) {
    hdb_snap *snap = hdb_malloc(sizeof *snap);
    snap->s = rocksdb_create_snapshot(s->db);
    snap->ro = rocksdb_readoptions_create();
    rocksdb_readoptions_set_snapshot(snap->ro, snap->s);
    return snap;
}

void hdb_snap_release(hdb_store *s, hdb_snap *snap) {
    if (snap == NULL) return;
    rocksdb_readoptions_destroy(snap->ro);
    rocksdb_release_snapshot(s->db, snap->s);
    hdb_free(snap);
}

static const rocksdb_readoptions_t *ro_of(const hdb_store *s, const hdb_snap *snap) {
    return snap ? snap->ro : s->ropts;
}

/* Moves a malloc'ed RocksDB value into the arena. */
/* Moves a value RocksDB allocated into the arena. */
static unsigned char *to_arena(hdb_arena *arena, char *v, size_t n) {
    unsigned char *p = hdb_arena_memdup(arena, v, n);
    rocksdb_free(v);
    return p;
}

int hdb_store_get(hdb_store *s, hdb_cf *cf, const hdb_snap *snap, const void *key, size_t klen,
                  hdb_arena *arena, unsigned char **val, size_t *vlen, char *err, size_t errlen) {
    char *rerr = NULL;
    size_t n = 0;
    char *v = rocksdb_get_cf(s->db, ro_of(s, snap), cf->h, key, klen, &n, &rerr);
    if (rerr != NULL) return take_err(rerr, HDB_EIO, err, errlen, "read");
    if (v == NULL) return HDB_ENOTFOUND;
    *val = to_arena(arena, v, n);
    *vlen = n;
    return HDB_OK;
}

int hdb_store_multi_get(hdb_store *s, hdb_cf *cf, const hdb_snap *snap, size_t n,
                        const unsigned char *const *keys, const size_t *klens, hdb_arena *arena,
                        unsigned char **vals, size_t *vlens, char *err, size_t errlen) {
    if (n == 0) return HDB_OK;
    int rc = HDB_OK;
    /* The batched form reads values in place (pinned in the block cache or memtable), so each
     * is copied once, into the arena; the older rocksdb_multi_get_cf copies three times. */
    rocksdb_pinnableslice_t **pinned = hdb_calloc(n, sizeof *pinned);
    char **errs = hdb_calloc(n, sizeof *errs);
    rocksdb_batched_multi_get_cf(s->db, ro_of(s, snap), cf->h, n, (const char *const *)keys,
                                 klens, pinned, errs, false);
    for (size_t i = 0; i < n; i++) {
        if (errs[i] != NULL) {
            if (rc == HDB_OK) rc = take_err(errs[i], HDB_EIO, err, errlen, "read");
            else rocksdb_free(errs[i]);
        }
        vals[i] = NULL;
        vlens[i] = 0;
        if (pinned[i] == NULL) continue;
        size_t len;
        const char *v = rocksdb_pinnableslice_value(pinned[i], &len);
        vals[i] = hdb_arena_memdup(arena, v, len);
        vlens[i] = len;
        rocksdb_pinnableslice_destroy(pinned[i]);
    }
    hdb_free(pinned);
    hdb_free(errs);
    return rc;
}

int hdb_store_put(hdb_store *s, hdb_cf *cf, const void *key, size_t klen, const void *val,
                  size_t vlen, char *err, size_t errlen) {
    int rc = hdb_diskguard_check(s->guard, klen + vlen, HDB_WRITE_META, err, errlen);
    if (rc != HDB_OK) return rc;
    char *rerr = NULL;
    rocksdb_put_cf(s->db, s->wopts, cf->h, key, klen, val, vlen, &rerr);
    if (rerr != NULL) return take_err(rerr, HDB_EIO, err, errlen, "write");
    return HDB_OK;
}

int hdb_store_delete(hdb_store *s, hdb_cf *cf, const void *key, size_t klen, char *err,
                     size_t errlen) {
    int rc = hdb_diskguard_check(s->guard, klen, HDB_WRITE_FREE, err, errlen);
    if (rc != HDB_OK) return rc;
    char *rerr = NULL;
    rocksdb_delete_cf(s->db, s->wopts, cf->h, key, klen, &rerr);
    if (rerr != NULL) return take_err(rerr, HDB_EIO, err, errlen, "delete");
    return HDB_OK;
}

hdb_batch *hdb_batch_create(void) {
    hdb_batch *b = hdb_malloc(sizeof *b);
    b->wb = rocksdb_writebatch_wi_create(0, 1);
    return b;
}

void hdb_batch_free(hdb_batch *b) {
    if (b == NULL) return;
    rocksdb_writebatch_wi_destroy(b->wb);
    hdb_free(b);
}

void hdb_batch_put(hdb_batch *b, hdb_cf *cf, const void *key, size_t klen, const void *val,
                   size_t vlen) {
    rocksdb_writebatch_wi_put_cf(b->wb, cf->h, key, klen, val, vlen);
}

void hdb_batch_delete(hdb_batch *b, hdb_cf *cf, const void *key, size_t klen) {
    rocksdb_writebatch_wi_delete_cf(b->wb, cf->h, key, klen);
}

int hdb_batch_get(hdb_store *s, hdb_batch *b, hdb_cf *cf, const void *key, size_t klen,
                  hdb_arena *arena, unsigned char **val, size_t *vlen, char *err, size_t errlen) {
    char *rerr = NULL;
    size_t n = 0;
    char *v = rocksdb_writebatch_wi_get_from_batch_and_db_cf(b->wb, s->db, s->ropts, cf->h, key,
                                                              klen, &n, &rerr);
    if (rerr != NULL) return take_err(rerr, HDB_EIO, err, errlen, "read");
    if (v == NULL) return HDB_ENOTFOUND;
    *val = to_arena(arena, v, n);
    *vlen = n;
    return HDB_OK;
}

void hdb_batch_savepoint(hdb_batch *b) {
    rocksdb_writebatch_wi_set_save_point(b->wb);
}

void hdb_batch_rollback(hdb_batch *b) {
    char *rerr = NULL;
    rocksdb_writebatch_wi_rollback_to_save_point(b->wb, &rerr);
    /* Only fails without a save point, which is a bug in the caller. */
    if (rerr != NULL) {
        HDB_ERROR("store", "rollback to save point: %s", rerr);
        rocksdb_free(rerr);
        HDB_ASSERT(!"rollback without a save point");
    }
}

size_t hdb_batch_count(hdb_batch *b) {
    return (size_t)rocksdb_writebatch_wi_count(b->wb);
}

size_t hdb_batch_bytes(hdb_batch *b) {
    size_t n = 0;
    rocksdb_writebatch_wi_data(b->wb, &n);
    return n;
}

int hdb_store_write(hdb_store *s, hdb_batch *b, char *err, size_t errlen) {
    int rc = hdb_diskguard_check(s->guard, hdb_batch_bytes(b), HDB_WRITE_DATA, err, errlen);
    if (rc != HDB_OK) return rc;
    char *rerr = NULL;
    rocksdb_write_writebatch_wi(s->db, s->wopts, b->wb, &rerr);
    if (rerr != NULL) return take_err(rerr, HDB_EIO, err, errlen, "write");
    return HDB_OK;
}

hdb_iter *hdb_iter_create(hdb_store *s, hdb_cf *cf, const hdb_snap *snap) {
    hdb_iter *it = hdb_malloc(sizeof *it);
    it->ro = rocksdb_readoptions_create();
    if (snap) rocksdb_readoptions_set_snapshot(it->ro, snap->s);
    /* Scans (index builds, startup) should not evict the hot working set. */
    rocksdb_readoptions_set_fill_cache(it->ro, 0);
    it->it = rocksdb_create_iterator_cf(s->db, it->ro, cf->h);
    return it;
}

void hdb_iter_free(hdb_iter *it) {
    if (it == NULL) return;
    rocksdb_iter_destroy(it->it);
    rocksdb_readoptions_destroy(it->ro);
    hdb_free(it);
}

void hdb_iter_seek(hdb_iter *it, const void *key, size_t klen) {
    rocksdb_iter_seek(it->it, key, klen);
}

void hdb_iter_seek_first(hdb_iter *it) {
    rocksdb_iter_seek_to_first(it->it);
}

void hdb_iter_seek_last(hdb_iter *it) {
    rocksdb_iter_seek_to_last(it->it);
}

bool hdb_iter_valid(const hdb_iter *it) {
    return rocksdb_iter_valid(it->it) != 0;
}

void hdb_iter_next(hdb_iter *it) {
    rocksdb_iter_next(it->it);
}

const unsigned char *hdb_iter_key(const hdb_iter *it, size_t *klen) {
    return (const unsigned char *)rocksdb_iter_key(it->it, klen);
}

const unsigned char *hdb_iter_value(const hdb_iter *it, size_t *vlen) {
    return (const unsigned char *)rocksdb_iter_value(it->it, vlen);
}

int hdb_iter_status(const hdb_iter *it, char *err, size_t errlen) {
    char *rerr = NULL;
    rocksdb_iter_get_error(it->it, &rerr);
    if (rerr != NULL) return take_err(rerr, HDB_EIO, err, errlen, "iterate");
    return HDB_OK;
}

/* ---------------------------------------------------------------- ranges, sizes, space */

int hdb_store_delete_range(hdb_store *s, hdb_cf *cf, const void *start, size_t slen,
                           const void *end, size_t elen, char *err, size_t errlen) {
    /* The range tombstone goes through the write-ahead log like any write: on a disk without
     * room, RocksDB would fail it and then refuse every later write until a restart. */
    int rc = hdb_diskguard_check(s->guard, slen + elen, HDB_WRITE_FREE, err, errlen);
    if (rc != HDB_OK) return rc;
    char *rerr = NULL;
    rocksdb_delete_range_cf(s->db, s->wopts, cf->h, start, slen, end, elen, &rerr);
    if (rerr != NULL) return take_err(rerr, HDB_EIO, err, errlen, "delete range");
    /* The tombstone hides the keys; whole files under it can go now, the rest with the
     * compaction that is suggested here (both only reclaim space, so failures are logged). */
    rocksdb_delete_file_in_range_cf(s->db, cf->h, start, slen, end, elen, &rerr);
    if (rerr != NULL) {
        HDB_WARN("store", "%s: removing files of a deleted range: %s", cf->name, rerr);
        rocksdb_free(rerr);
        rerr = NULL;
    }
    rocksdb_suggest_compact_range_cf(s->db, cf->h, start, slen, end, elen, &rerr);
    if (rerr != NULL) {
        HDB_WARN("store", "%s: compaction of a deleted range: %s", cf->name, rerr);
        rocksdb_free(rerr);
    }
    return HDB_OK;
}

int hdb_store_flush(hdb_store *s, hdb_cf *cf, char *err, size_t errlen) {
    /* A flush writes a table file; one that fails for want of space stops RocksDB's writes. */
    int rc = hdb_diskguard_check(s->guard, 0, HDB_WRITE_META, err, errlen);
    if (rc != HDB_OK) return rc;
    char *rerr = NULL;
    rocksdb_flushoptions_t *fo = rocksdb_flushoptions_create();
    rocksdb_flushoptions_set_wait(fo, 1);
    rocksdb_flush_cf(s->db, fo, cf->h, &rerr);
    rocksdb_flushoptions_destroy(fo);
    if (rerr != NULL) return take_err(rerr, HDB_EIO, err, errlen, "flush");
    return HDB_OK;
}

int hdb_store_checkpoint(hdb_store *s, const char *dir, char *err, size_t errlen) {
    struct stat st;
    if (lstat(dir, &st) == 0)
        return hdb_errf(err, errlen, HDB_EEXIST, "checkpoint: %s exists already", dir);
    char *rerr = NULL;
    rocksdb_checkpoint_t *cp = rocksdb_checkpoint_object_create(s->db, &rerr);
    if (rerr != NULL) return take_err(rerr, HDB_EIO, err, errlen, "checkpoint");
    /* log_size_for_flush 0: always flush the memtables first (a restore replays less). */
    rocksdb_checkpoint_create(cp, dir, 0, &rerr);
    rocksdb_checkpoint_object_destroy(cp);
    if (rerr != NULL) return take_err(rerr, HDB_EIO, err, errlen, "checkpoint");
    return HDB_OK;
}

uint64_t hdb_store_cf_bytes(hdb_store *s, hdb_cf *cf) {
    uint64_t sst = 0, mem = 0;
    if (rocksdb_property_int_cf(s->db, cf->h, "rocksdb.total-sst-files-size", &sst) != 0) sst = 0;
    if (rocksdb_property_int_cf(s->db, cf->h, "rocksdb.cur-size-all-mem-tables", &mem) != 0)
        mem = 0;
    return sst + mem;
}

int hdb_store_space_check(hdb_store *s, uint64_t bytes, bool meta, char *err, size_t errlen) {
    return hdb_diskguard_check(s->guard, bytes, meta ? HDB_WRITE_META : HDB_WRITE_DATA, err,
                               errlen);
}

void hdb_store_space_get(hdb_store *s, hdb_store_space *out) {
    hdb_diskguard_state st;
    hdb_diskguard_state_get(s->guard, &st);
    *out = (hdb_store_space){.free_bytes = st.free_bytes,
                             .total_bytes = st.total_bytes,
                             .min_free_bytes = st.min_free_bytes,
                             .writable = st.writable,
                             .ballast_present = st.ballast_present,
                             .path = s->path};
}
