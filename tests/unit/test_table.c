/*
 * test_table.c - unit tests of the source table and of the timeline contract, on real RocksDB
 * files: table jobs write points, identity keys and timeline entries atomically; reads by id,
 * by pid and by scan see them; the timeline returns its entries in order, notifies its
 * subscribers, keeps what they still need and trims the rest, refuses to read trimmed entries,
 * and survives a reopen; leftover column families are dropped.
 *
 * The contract tests (contract_*) use only hdb_timeline.h, so that another implementation can
 * run them too.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "hdb_arena.h"
#include "hdb_err.h"
#include "hdb_store.h"
#include "hdb_table.h"
#include "hdb_timeline.h"
#include "test_support.h"

#include <stdatomic.h>
#include <string.h>
#include <time.h>

typedef struct {
    char dir[512];
    char db[600];
    hdb_store *store;
    hdb_table *table;
    hdb_arena *arena;
} fixture;

static const char *const id_names[] = {"id"};
static const char *const perm_names[] = {"kind", "id"};

static hdb_table_spec spec_of(uint64_t id) {
    return (hdb_table_spec){.id = id,
                            .label = "items@1",
                            .id_names = id_names,
                            .nid = 1,
                            .perm_names = perm_names,
                            .nperm = 2};
}

static void open_store(fixture *f) {
    char err[512];
    hdb_store_options o = {.path = f->db, .sync = false, .block_cache_bytes = 8 << 20,
                           .write_buffer_bytes = 4 << 20};
    assert_int_equal(hdb_store_open(&f->store, &o, err, sizeof err), HDB_OK);
}

static int setup(void **state) {
    fixture *f = calloc(1, sizeof *f);
    if (hdb_test_tmpdir(f->dir, sizeof f->dir, "test_table") != 0) return -1;
    snprintf(f->db, sizeof f->db, "%s/db", f->dir);
    f->arena = hdb_arena_create(0);
    open_store(f);
    char err[512];
    hdb_table_spec ts = spec_of(7);
    if (hdb_table_create(&f->table, f->store, &ts, err, sizeof err) != HDB_OK) return -1;
    *state = f;
    return 0;
}

static int teardown(void **state) {
    fixture *f = *state;
    hdb_table_close(f->table, false);
    hdb_store_close(f->store);
    hdb_arena_free(f->arena);
    hdb_test_rmdir(f->dir);
    free(f);
    return 0;
}

/* Closes the table and the store and opens both again (trimming started unless held). */
static void reopen(fixture *f, bool start_trim) {
    char err[512];
    hdb_table_close(f->table, false);
    hdb_store_close(f->store);
    open_store(f);
    hdb_table_spec ts = spec_of(7);
    assert_int_equal(hdb_table_open(&f->table, f->store, &ts, err, sizeof err), HDB_OK);
    if (start_trim) hdb_table_trim_start(f->table);
}

/* A point {id, kind, price} at (x, y); attributes sorted by name. */
static hdb_point point(hdb_arena *a, int64_t id, const char *kind, double price, float x,
                       float y) {
    hdb_attr *attrs = hdb_arena_alloc(a, 3 * sizeof *attrs);
    attrs[0] = (hdb_attr){"id", {.type = HDB_ATTR_INT64, .u.i = id}};
    attrs[1] = (hdb_attr){"kind", {.type = HDB_ATTR_STRING}};
    attrs[1].value.u.s.p = kind;
    attrs[1].value.u.s.n = strlen(kind);
    attrs[2] = (hdb_attr){"price", {.type = HDB_ATTR_FLOAT64, .u.f = price}};
    float *v = hdb_arena_alloc(a, 2 * sizeof *v);
    v[0] = x;
    v[1] = y;
    return (hdb_point){.vec = v, .dim = 2, .attrs = attrs, .nattrs = 3};
}

static hdb_point tombstone(hdb_arena *a, int64_t id) {
    hdb_attr *attrs = hdb_arena_alloc(a, sizeof *attrs);
    attrs[0] = (hdb_attr){"id", {.type = HDB_ATTR_INT64, .u.i = id}};
    return (hdb_point){.attrs = attrs, .nattrs = 1, .deleted = true};
}

static uint64_t append(hdb_timeline *tl, hdb_arena *a, const hdb_timeline_input *in, size_t n) {
    char err[512];
    uint64_t first = 0;
    int rc = hdb_timeline_append(tl, in, n, a, &first, err, sizeof err);
    if (rc != HDB_OK) fprintf(stderr, "append: %s\n", err);
    assert_int_equal(rc, HDB_OK);
    return first;
}

/* Appends `count` upserts of ids 0..ids-1 (cycling); returns the last seq. */
static uint64_t append_many(hdb_timeline *tl, hdb_arena *a, int count, int ids) {
    uint64_t last = 0;
    for (int i = 0; i < count; i += 100) {
        hdb_timeline_input in[100];
        int n = count - i < 100 ? count - i : 100;
        for (int j = 0; j < n; j++) {
            hdb_point *p = hdb_arena_alloc(a, sizeof *p);
            *p = point(a, (i + j) % ids, "k", (double)(i + j), (float)j, 1.0f);
            in[j] = (hdb_timeline_input){HDB_TL_UPSERT, p};
        }
        last = append(tl, a, in, (size_t)n) + (uint64_t)n - 1;
        hdb_arena_reset(a);
    }
    return last;
}

/* ---------------------------------------------------------------- the timeline contract */

typedef struct {
    _Atomic int calls;
} notify_count;

static void count_notify(void *arg) {
    atomic_fetch_add(&((notify_count *)arg)->calls, 1);
}

/* Order, content, durability and notification. */
static void contract_append_read_notify(hdb_timeline *tl, hdb_arena *a) {
    char err[512];
    notify_count nc = {0};
    hdb_timeline_sub sub = {.notify = count_notify, .arg = &nc};
    hdb_timeline_subscribe(tl, &sub);
    uint64_t before = hdb_timeline_last_seq(tl);

    hdb_point p1 = point(a, 1, "shoe", 10, 1, 0), p2 = point(a, 2, "bag", 20, 0, 1);
    hdb_point p1b = point(a, 1, "shoe", 11, 1, 1), t2 = tombstone(a, 2), t9 = tombstone(a, 9);
    hdb_timeline_input in[] = {{HDB_TL_UPSERT, &p1}, {HDB_TL_UPSERT, &p2}};
    uint64_t s1 = append(tl, a, in, 2);
    assert_true(s1 > before);
    assert_int_equal(atomic_load(&nc.calls), 1);
    hdb_timeline_input in2[] = {{HDB_TL_UPSERT, &p1b}, {HDB_TL_DELETE, &t2}, {HDB_TL_DELETE, &t9}};
    uint64_t s2 = append(tl, a, in2, 3);
    assert_true(s2 > s1 + 1);
    assert_int_equal(atomic_load(&nc.calls), 2);
    assert_int_equal(hdb_timeline_last_seq(tl), s2 + 2);

    hdb_timeline_entry out[8];
    size_t n;
    assert_int_equal(hdb_timeline_read(tl, s1, 8, a, out, &n, err, sizeof err), HDB_OK);
    assert_int_equal(n, 5);
    for (size_t i = 1; i < n; i++) assert_true(out[i].rec.seq > out[i - 1].rec.seq);
    assert_int_equal(out[0].op, HDB_TL_UPSERT);
    uint64_t pid1 = out[0].pid;
    assert_true(pid1 != 0);
    assert_int_equal(out[2].op, HDB_TL_UPSERT);
    assert_int_equal(out[2].pid, pid1); /* a replacement keeps its point's pid */
    assert_float_equal(out[2].rec.point.vec[1], 1.0f, 0.0f);
    assert_int_equal(out[3].op, HDB_TL_DELETE);
    assert_int_equal(out[3].pid, out[1].pid);
    /* The delete holds the deleted point's permanent attributes, not its payload. */
    assert_non_null(hdb_attr_find(out[3].rec.point.attrs, out[3].rec.point.nattrs, "kind", true));
    assert_null(hdb_attr_find(out[3].rec.point.attrs, out[3].rec.point.nattrs, "price", true));
    assert_int_equal(out[4].op, HDB_TL_DELETE);
    assert_int_equal(out[4].pid, 0); /* matched no point */

    /* max bounds a read; reading past the end returns nothing. */
    assert_int_equal(hdb_timeline_read(tl, s1 + 1, 2, a, out, &n, err, sizeof err), HDB_OK);
    assert_int_equal(n, 2);
    assert_int_equal(out[0].rec.seq, s1 + 1);
    assert_int_equal(hdb_timeline_read(tl, s2 + 3, 8, a, out, &n, err, sizeof err), HDB_OK);
    assert_int_equal(n, 0);

    /* Each entry has the time of its append. */
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    int64_t now = (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000, t;
    assert_int_equal(hdb_timeline_entry_time(tl, s1, &t, err, sizeof err), HDB_OK);
    assert_true(t <= now && t > now - 600 * 1000000LL);

    /* A bad entry is refused whole. */
    hdb_timeline_input bad[] = {{HDB_TL_UPSERT, &p1}, {0, &p2}};
    uint64_t first;
    assert_int_equal(hdb_timeline_append(tl, bad, 2, a, &first, err, sizeof err), HDB_EINVAL);
    assert_non_null(strstr(err, "entries[1]"));
    assert_int_equal(hdb_timeline_last_seq(tl), s2 + 2);
    hdb_timeline_unsubscribe(tl, &sub);
}

/* Retention: what subscribers still need stays, the rest goes, trimmed reads fail. */
static void contract_retention(hdb_timeline *tl, hdb_arena *a) {
    char err[512];
    hdb_timeline_sub x = {.notify = count_notify}, y = {.notify = count_notify};
    notify_count nc = {0};
    x.arg = y.arg = &nc;
    hdb_timeline_subscribe(tl, &x);
    hdb_timeline_subscribe(tl, &y);
    uint64_t base = hdb_timeline_last_seq(tl);
    uint64_t last = append_many(tl, a, 500, 10);
    assert_int_equal(last, base + 500);

    /* One subscriber moves on; the other still needs everything. */
    hdb_timeline_keep_from(tl, &x, base + 300);
    assert_int_equal(hdb_timeline_trim(tl, err, sizeof err), HDB_OK);
    assert_true(hdb_timeline_first_seq(tl) <= base + 1);
    /* Both have moved: entries below the lower mark go. */
    hdb_timeline_keep_from(tl, &y, base + 200);
    assert_int_equal(hdb_timeline_first_seq(tl), base + 200);
    hdb_timeline_entry out[4];
    size_t n;
    assert_int_equal(hdb_timeline_read(tl, base + 199, 4, a, out, &n, err, sizeof err),
                     HDB_ETRIMMED);
    assert_int_equal(n, 0);
    assert_non_null(strstr(err, "trimmed"));
    assert_int_equal(hdb_timeline_read(tl, base + 200, 4, a, out, &n, err, sizeof err), HDB_OK);
    assert_int_equal(n, 4);
    assert_int_equal(out[0].rec.seq, base + 200);
    /* keep_from only rises. */
    hdb_timeline_keep_from(tl, &y, base + 100);
    assert_int_equal(atomic_load(&y.keep_from), base + 200);

    hdb_timeline_stats st;
    hdb_timeline_stats_get(tl, &st);
    assert_int_equal(st.first_seq, base + 200);
    assert_int_equal(st.last_seq, last);
    assert_int_equal(st.entries, last - (base + 200) + 1);
    assert_int_equal(st.keep_from, base + 200);
    assert_int_equal(st.subscribers, 2);
    assert_true(st.bytes > 0);

    /* Everyone past the end: the newest entry is still kept. */
    hdb_timeline_keep_from(tl, &x, last + 10);
    hdb_timeline_keep_from(tl, &y, last + 10);
    assert_int_equal(hdb_timeline_first_seq(tl), last);
    assert_int_equal(hdb_timeline_read(tl, last, 4, a, out, &n, err, sizeof err), HDB_OK);
    assert_int_equal(n, 1);
    hdb_timeline_unsubscribe(tl, &x);
    hdb_timeline_unsubscribe(tl, &y);
    hdb_arena_reset(a);
}

static void test_contract_rocksdb(void **state) {
    fixture *f = *state;
    hdb_timeline *tl = hdb_table_timeline(f->table);
    assert_int_equal(hdb_timeline_last_seq(tl), 0);
    assert_int_equal(hdb_timeline_first_seq(tl), 1);
    contract_append_read_notify(tl, f->arena);
    contract_retention(tl, f->arena);
}

/* ---------------------------------------------------------------- the table */

typedef struct {
    hdb_table_job job;
    const hdb_point *points;
    size_t n;
    hdb_arena *arena;
    uint64_t pids[8];
} write_job;

/* Upserts or deletes each point in turn; later points of the job see the earlier ones. */
static int write_prepare(hdb_table_job *job, hdb_table_txn *tx, uint64_t first_seq,
                         uint64_t *nseq, char *err, size_t errlen) {
    write_job *w = (write_job *)job;
    for (size_t i = 0; i < w->n; i++) {
        hdb_row old;
        int rc = hdb_table_txn_find(tx, &w->points[i], w->arena, &old, err, errlen);
        if (rc != HDB_OK) return rc;
        w->pids[i] = w->points[i].deleted
                         ? hdb_table_txn_delete(tx, first_seq + i, &w->points[i], &old)
                         : hdb_table_txn_upsert(tx, first_seq + i, &w->points[i], &old);
    }
    *nseq = w->n;
    return HDB_OK;
}

static int refuse_prepare(hdb_table_job *job, hdb_table_txn *tx, uint64_t first_seq,
                          uint64_t *nseq, char *err, size_t errlen) {
    write_prepare(job, tx, first_seq, nseq, err, errlen);
    return hdb_errf(err, errlen, HDB_EINVAL, "points[0]: refused");
}

static void test_table_writes_and_reads(void **state) {
    fixture *f = *state;
    hdb_arena *a = f->arena;
    char err[512];
    hdb_point pts[] = {point(a, 1, "shoe", 10, 1, 0), point(a, 2, "bag", 20, 0, 1),
                       point(a, 1, "shoe", 12, 2, 2), point(a, 3, "hat", 30, 3, 3),
                       tombstone(a, 3)};
    write_job w = {.job = {.prepare = write_prepare}, .points = pts, .n = 5, .arena = a};
    assert_int_equal(hdb_table_commit(f->table, &w.job), HDB_OK);
    assert_int_equal(w.job.first_seq, 1);
    assert_int_equal(w.job.nseq, 5);
    assert_int_equal(w.pids[0], 1);
    assert_int_equal(w.pids[2], 1); /* the replacement within one job kept the pid */
    assert_int_equal(w.pids[4], 4); /* the delete removed the point created at seq 4 */
    assert_int_equal(hdb_table_count(f->table), 2);
    assert_int_equal(hdb_table_last_seq(f->table), 5);

    /* A refused job writes nothing and counts nothing. */
    hdb_point more[] = {point(a, 5, "cap", 5, 5, 5)};
    write_job r = {.job = {.prepare = refuse_prepare}, .points = more, .n = 1, .arena = a};
    assert_int_equal(hdb_table_commit(f->table, &r.job), HDB_EINVAL);
    assert_string_equal(r.job.err, "points[0]: refused");
    assert_int_equal(hdb_table_count(f->table), 2);
    assert_int_equal(hdb_table_last_seq(f->table), 5);

    /* By id: found, replaced, deleted, never existed. */
    hdb_attr *ids[4];
    uint32_t nids[4] = {1, 1, 1, 1};
    int64_t want[4] = {1, 2, 3, 5};
    for (int i = 0; i < 4; i++) ids[i] = tombstone(a, want[i]).attrs;
    hdb_row rows[4];
    assert_int_equal(hdb_table_get_ids(f->table, NULL, 4, ids, nids, a, rows, err, sizeof err),
                     HDB_OK);
    assert_true(rows[0].found && rows[1].found);
    assert_false(rows[2].found || rows[3].found);
    assert_int_equal(rows[0].pid, 1);
    assert_int_equal(rows[0].rec.seq, 3);
    assert_float_equal(rows[0].rec.point.vec[0], 2.0f, 0.0f);

    /* By pid, including a pid that is gone and 0. */
    uint64_t pids[3] = {2, 4, 0};
    assert_int_equal(hdb_table_get_pids(f->table, NULL, pids, 3, a, rows, err, sizeof err),
                     HDB_OK);
    assert_true(rows[0].found);
    assert_false(rows[1].found || rows[2].found);

    /* A scan walks every point in pid order, max at a time. */
    hdb_point extra[6];
    for (int i = 0; i < 6; i++) extra[i] = point(a, 10 + i, "x", i, (float)i, 0);
    write_job w2 = {.job = {.prepare = write_prepare}, .points = extra, .n = 6, .arena = a};
    assert_int_equal(hdb_table_commit(f->table, &w2.job), HDB_OK);
    uint64_t cursor = 0, prev = 0, total = 0;
    size_t n;
    do {
        assert_int_equal(hdb_table_scan(f->table, NULL, &cursor, 3, a, rows, &n, err, sizeof err),
                         HDB_OK);
        assert_true(n <= 3);
        for (size_t i = 0; i < n; i++) {
            assert_true(rows[i].pid > prev);
            prev = rows[i].pid;
        }
        total += n;
    } while (n > 0);
    assert_int_equal(total, 8);

    /* A snapshot holds the seq it reflects, and reads keep to it. */
    uint64_t snap_seq;
    hdb_snap *snap = hdb_table_snapshot(f->table, &snap_seq);
    assert_int_equal(snap_seq, 11);
    hdb_point gone[] = {tombstone(a, 1)};
    write_job w3 = {.job = {.prepare = write_prepare}, .points = gone, .n = 1, .arena = a};
    assert_int_equal(hdb_table_commit(f->table, &w3.job), HDB_OK);
    assert_int_equal(hdb_table_get_ids(f->table, snap, 1, ids, nids, a, rows, err, sizeof err),
                     HDB_OK);
    assert_true(rows[0].found);
    assert_int_equal(hdb_table_get_ids(f->table, NULL, 1, ids, nids, a, rows, err, sizeof err),
                     HDB_OK);
    assert_false(rows[0].found);
    hdb_table_snapshot_release(f->table, snap);
}

static void test_table_reopen_and_hold(void **state) {
    fixture *f = *state;
    char err[512];
    hdb_timeline *tl = hdb_table_timeline(f->table);
    uint64_t last = append_many(tl, f->arena, 300, 50);
    hdb_timeline_sub s = {.notify = count_notify};
    notify_count nc = {0};
    s.arg = &nc;
    hdb_timeline_subscribe(tl, &s);
    hdb_timeline_keep_from(tl, &s, 101);
    assert_int_equal(hdb_timeline_first_seq(tl), 101);
    hdb_timeline_unsubscribe(tl, &s);

    reopen(f, false);
    tl = hdb_table_timeline(f->table);
    assert_int_equal(hdb_table_last_seq(f->table), last);
    assert_int_equal(hdb_timeline_first_seq(tl), 101);
    assert_int_equal(hdb_table_count(f->table), 50);
    /* Held after an open: nothing goes until trimming starts, though no one subscribes. */
    hdb_timeline_sub s2 = {.notify = count_notify, .arg = &nc};
    atomic_store(&s2.keep_from, 201);
    hdb_timeline_subscribe(tl, &s2);
    assert_int_equal(hdb_timeline_trim(tl, err, sizeof err), HDB_OK);
    assert_int_equal(hdb_timeline_first_seq(tl), 101);
    hdb_table_trim_start(f->table);
    assert_int_equal(hdb_timeline_trim(tl, err, sizeof err), HDB_OK);
    assert_int_equal(hdb_timeline_first_seq(tl), 201);
    /* New appends continue the seqs. */
    assert_int_equal(append_many(tl, f->arena, 1, 50), last + 1);
    hdb_timeline_unsubscribe(tl, &s2);
}

static void test_trim_unwatched(void **state) {
    fixture *f = *state;
    hdb_timeline *tl = hdb_table_timeline(f->table);
    /* Nobody follows: the table trims by itself once enough entries could go. */
    uint64_t last = append_many(tl, f->arena, 5000, 100);
    uint64_t first = hdb_timeline_first_seq(tl);
    assert_true(first > 1 && first <= last);
    assert_true(last - first < 4096); /* never more than the threshold behind */
    assert_int_equal(hdb_table_count(f->table), 100);
}

/* A backup's pin: keep_from may rise, but nothing goes until the last unpin, which trims. */
static void test_trim_pin(void **state) {
    fixture *f = *state;
    char err[512];
    hdb_timeline *tl = hdb_table_timeline(f->table);
    append_many(tl, f->arena, 300, 50);
    notify_count nc = {0};
    hdb_timeline_sub s = {.notify = count_notify, .arg = &nc};
    hdb_timeline_subscribe(tl, &s);
    hdb_table_trim_pin(f->table);
    hdb_table_trim_pin(f->table); /* pins nest */
    hdb_timeline_keep_from(tl, &s, 101);
    assert_int_equal(hdb_timeline_trim(tl, err, sizeof err), HDB_OK);
    assert_int_equal(hdb_timeline_first_seq(tl), 1);
    hdb_table_trim_unpin(f->table);
    hdb_timeline_keep_from(tl, &s, 151);
    assert_int_equal(hdb_timeline_first_seq(tl), 1);
    hdb_table_trim_unpin(f->table);
    assert_int_equal(hdb_timeline_first_seq(tl), 151);
    hdb_timeline_unsubscribe(tl, &s);
}

static bool seven_lives(void *arg, uint64_t id) {
    (void)arg;
    return id == 7;
}

static void test_orphans(void **state) {
    fixture *f = *state;
    char err[512];
    hdb_table *other;
    hdb_table_spec ts = spec_of(8);
    assert_int_equal(hdb_table_create(&other, f->store, &ts, err, sizeof err), HDB_OK);
    assert_int_equal(hdb_table_create(&other, f->store, &ts, err, sizeof err) == HDB_OK, 0);
    hdb_table_close(other, false);
    assert_non_null(hdb_store_cf(f->store, "points.8"));
    assert_int_equal(hdb_table_drop_orphans(f->store, seven_lives, NULL), 2);
    assert_null(hdb_store_cf(f->store, "points.8"));
    assert_null(hdb_store_cf(f->store, "timeline.8"));
    assert_non_null(hdb_store_cf(f->store, "points.7"));
    /* A table whose families are gone does not open. */
    assert_int_equal(hdb_table_open(&other, f->store, &ts, err, sizeof err), HDB_ECORRUPT);
    assert_non_null(strstr(err, "points.8"));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_contract_rocksdb, setup, teardown),
        cmocka_unit_test_setup_teardown(test_table_writes_and_reads, setup, teardown),
        cmocka_unit_test_setup_teardown(test_table_reopen_and_hold, setup, teardown),
        cmocka_unit_test_setup_teardown(test_trim_unwatched, setup, teardown),
        cmocka_unit_test_setup_teardown(test_trim_pin, setup, teardown),
        cmocka_unit_test_setup_teardown(test_orphans, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
