/*
 * test_store.c - unit tests of the storage layer on real RocksDB files: column families,
 * reads and writes that survive a reopen, indexed batches with save points, snapshots,
 * iterators, and the group-commit queue (dense seqs under concurrency, failed jobs rolled back
 * alone, exclusive sections).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "hdb_arena.h"
#include "hdb_commit.h"
#include "hdb_err.h"
#include "hdb_log.h"
#include "hdb_record.h"
#include "hdb_store.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

typedef struct {
    char dir[512];
    hdb_store *store;
    hdb_arena *arena;
} fixture;

static int open_store(fixture *f) {
    char err[512];
    hdb_store_options o = {.path = f->dir,
                           .sync = true,
                           .block_cache_bytes = 8 << 20,
                           .write_buffer_bytes = 4 << 20};
    int rc = hdb_store_open(&f->store, &o, err, sizeof err);
    if (rc != HDB_OK) fprintf(stderr, "open: %s\n", err);
    return rc;
}

static int setup(void **state) {
    fixture *f = calloc(1, sizeof *f);
    const char *base = getenv("HDB_TEST_TMP") ? getenv("HDB_TEST_TMP") : "/tmp";
    mkdir(base, 0755);
    snprintf(f->dir, sizeof f->dir, "%s/test_store.XXXXXX", base);
    if (mkdtemp(f->dir) == NULL) return -1;
    strncat(f->dir, "/db", sizeof f->dir - strlen(f->dir) - 1);
    f->arena = hdb_arena_create(0);
    *state = f;
    return open_store(f);
}

static int teardown(void **state) {
    fixture *f = *state;
    hdb_store_close(f->store);
    hdb_arena_free(f->arena);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%.*s'", (int)(strlen(f->dir) - 3), f->dir);
    int rc = system(cmd);
    (void)rc;
    free(f);
    return 0;
}

static void reopen(fixture *f) {
    hdb_store_close(f->store);
    f->store = NULL;
    assert_int_equal(open_store(f), HDB_OK);
}

static void test_put_get_reopen(void **state) {
    fixture *f = *state;
    char err[256];
    hdb_cf *cf;
    assert_int_equal(hdb_store_cf_create(f->store, "things", &cf, err, sizeof err), HDB_OK);
    assert_int_equal(hdb_store_cf_create(f->store, "things", &cf, err, sizeof err), HDB_EEXIST);
    assert_int_equal(hdb_store_put(f->store, cf, "k1", 2, "v1", 2, err, sizeof err), HDB_OK);
    assert_int_equal(hdb_store_put(f->store, cf, "k2", 2, "value-2", 7, err, sizeof err), HDB_OK);
    assert_int_equal(hdb_store_delete(f->store, cf, "k1", 2, err, sizeof err), HDB_OK);
    reopen(f);
    cf = hdb_store_cf(f->store, "things");
    assert_non_null(cf);
    assert_string_equal(hdb_cf_name(cf), "things");
    unsigned char *v;
    size_t vlen;
    assert_int_equal(hdb_store_get(f->store, cf, NULL, "k1", 2, f->arena, &v, &vlen, err,
                                   sizeof err),
                     HDB_ENOTFOUND);
    assert_int_equal(hdb_store_get(f->store, cf, NULL, "k2", 2, f->arena, &v, &vlen, err,
                                   sizeof err),
                     HDB_OK);
    assert_int_equal(vlen, 7);
    assert_memory_equal(v, "value-2", 7);
}

static void count_cf(const char *name, void *arg) {
    (void)name;
    (*(int *)arg)++;
}

static void test_cf_drop(void **state) {
    fixture *f = *state;
    char err[256];
    hdb_cf *a, *b;
    assert_int_equal(hdb_store_cf_create(f->store, "a", &a, err, sizeof err), HDB_OK);
    assert_int_equal(hdb_store_cf_create(f->store, "b", &b, err, sizeof err), HDB_OK);
    assert_int_equal(hdb_store_put(f->store, a, "x", 1, "1", 1, err, sizeof err), HDB_OK);
    int n = 0;
    hdb_store_cf_foreach(f->store, count_cf, &n);
    assert_int_equal(n, 3); /* default, a, b */
    assert_int_equal(hdb_store_cf_drop(f->store, a, err, sizeof err), HDB_OK);
    assert_null(hdb_store_cf(f->store, "a"));
    reopen(f);
    assert_null(hdb_store_cf(f->store, "a"));
    assert_non_null(hdb_store_cf(f->store, "b"));
    /* A dropped name can be created again, empty. */
    assert_int_equal(hdb_store_cf_create(f->store, "a", &a, err, sizeof err), HDB_OK);
    unsigned char *v;
    size_t vlen;
    assert_int_equal(hdb_store_get(f->store, a, NULL, "x", 1, f->arena, &v, &vlen, err,
                                   sizeof err),
                     HDB_ENOTFOUND);
}

static void test_batch_savepoints(void **state) {
    fixture *f = *state;
    char err[256];
    hdb_cf *cf;
    assert_int_equal(hdb_store_cf_create(f->store, "p", &cf, err, sizeof err), HDB_OK);
    assert_int_equal(hdb_store_put(f->store, cf, "old", 3, "db", 2, err, sizeof err), HDB_OK);
    hdb_batch *b = hdb_batch_create();
    unsigned char *v;
    size_t vlen;
    hdb_batch_put(b, cf, "a", 1, "1", 1);
    /* Reads see the batch first, then the database. */
    assert_int_equal(hdb_batch_get(f->store, b, cf, "a", 1, f->arena, &v, &vlen, err, sizeof err),
                     HDB_OK);
    assert_memory_equal(v, "1", 1);
    assert_int_equal(
        hdb_batch_get(f->store, b, cf, "old", 3, f->arena, &v, &vlen, err, sizeof err), HDB_OK);
    hdb_batch_savepoint(b);
    hdb_batch_put(b, cf, "a", 1, "2", 1);
    hdb_batch_delete(b, cf, "old", 3);
    assert_int_equal(
        hdb_batch_get(f->store, b, cf, "old", 3, f->arena, &v, &vlen, err, sizeof err),
        HDB_ENOTFOUND);
    hdb_batch_rollback(b);
    assert_int_equal(hdb_batch_get(f->store, b, cf, "a", 1, f->arena, &v, &vlen, err, sizeof err),
                     HDB_OK);
    assert_memory_equal(v, "1", 1);
    assert_int_equal(
        hdb_batch_get(f->store, b, cf, "old", 3, f->arena, &v, &vlen, err, sizeof err), HDB_OK);
    assert_int_equal(hdb_batch_count(b), 1);
    /* Nothing reaches the database before the write. */
    assert_int_equal(hdb_store_get(f->store, cf, NULL, "a", 1, f->arena, &v, &vlen, err,
                                   sizeof err),
                     HDB_ENOTFOUND);
    assert_int_equal(hdb_store_write(f->store, b, err, sizeof err), HDB_OK);
    hdb_batch_free(b);
    assert_int_equal(hdb_store_get(f->store, cf, NULL, "a", 1, f->arena, &v, &vlen, err,
                                   sizeof err),
                     HDB_OK);
}

static void test_snapshot_multiget_iter(void **state) {
    fixture *f = *state;
    char err[256];
    hdb_cf *cf;
    assert_int_equal(hdb_store_cf_create(f->store, "s", &cf, err, sizeof err), HDB_OK);
    for (int i = 0; i < 10; i++) {
        unsigned char k[8];
        hdb_seq_key(k, (uint64_t)i);
        assert_int_equal(hdb_store_put(f->store, cf, k, 8, &i, sizeof i, err, sizeof err), HDB_OK);
    }
    hdb_snap *snap = hdb_store_snapshot(f->store);
    unsigned char k5[8];
    hdb_seq_key(k5, 5);
    assert_int_equal(hdb_store_delete(f->store, cf, k5, 8, err, sizeof err), HDB_OK);

    unsigned char *v;
    size_t vlen;
    assert_int_equal(hdb_store_get(f->store, cf, snap, k5, 8, f->arena, &v, &vlen, err,
                                   sizeof err),
                     HDB_OK);
    assert_int_equal(hdb_store_get(f->store, cf, NULL, k5, 8, f->arena, &v, &vlen, err,
                                   sizeof err),
                     HDB_ENOTFOUND);

    unsigned char keys[3][8];
    const unsigned char *kp[3] = {keys[0], keys[1], keys[2]};
    size_t klens[3] = {8, 8, 8};
    hdb_seq_key(keys[0], 1);
    hdb_seq_key(keys[1], 5);
    hdb_seq_key(keys[2], 99);
    unsigned char *vals[3];
    size_t vlens[3];
    assert_int_equal(hdb_store_multi_get(f->store, cf, NULL, 3, kp, klens, f->arena, vals, vlens,
                                         err, sizeof err),
                     HDB_OK);
    assert_non_null(vals[0]);
    assert_int_equal(*(int *)vals[0], 1);
    assert_null(vals[1]);
    assert_null(vals[2]);
    assert_int_equal(hdb_store_multi_get(f->store, cf, snap, 3, kp, klens, f->arena, vals, vlens,
                                         err, sizeof err),
                     HDB_OK);
    assert_non_null(vals[1]);

    /* The snapshot iterator sees all ten, in key order; the live one nine. */
    hdb_iter *it = hdb_iter_create(f->store, cf, snap);
    int n = 0;
    for (hdb_iter_seek_first(it); hdb_iter_valid(it); hdb_iter_next(it)) {
        size_t klen;
        const unsigned char *k = hdb_iter_key(it, &klen);
        assert_int_equal(hdb_get_be64(k), (uint64_t)n);
        n++;
    }
    assert_int_equal(n, 10);
    assert_int_equal(hdb_iter_status(it, err, sizeof err), HDB_OK);
    hdb_iter_free(it);
    it = hdb_iter_create(f->store, cf, NULL);
    hdb_iter_seek_last(it);
    assert_true(hdb_iter_valid(it));
    size_t klen;
    assert_int_equal(hdb_get_be64(hdb_iter_key(it, &klen)), 9);
    hdb_iter_seek(it, k5, 8);
    assert_int_equal(hdb_get_be64(hdb_iter_key(it, &klen)), 6);
    n = 0;
    for (hdb_iter_seek_first(it); hdb_iter_valid(it); hdb_iter_next(it)) n++;
    assert_int_equal(n, 9);
    hdb_iter_free(it);
    hdb_snap_release(f->store, snap);
}

static void test_locked_by_other_open(void **state) {
    fixture *f = *state;
    char err[512];
    hdb_store *second = NULL;
    hdb_store_options o = {.path = f->dir, .sync = true, .block_cache_bytes = 1 << 20,
                           .write_buffer_bytes = 1 << 20};
    assert_int_equal(hdb_store_open(&second, &o, err, sizeof err), HDB_EIO);
    assert_null(second);
    assert_non_null(strstr(err, "lock"));
}

/* ---------------------------------------------------------------- commit queue */

typedef struct {
    hdb_commit_job job;
    hdb_cf *cf;
    int n;          /* entries to write */
    int fail;       /* prepare fails after writing */
    int applied;    /* set by the applied hook */
    uint64_t *order; /* global record of applied first_seqs */
    size_t *norder;
    pthread_mutex_t *mu;
} test_job;

static int job_prepare(hdb_commit_job *job, hdb_batch *batch, uint64_t first_seq, uint64_t *nseq,
                       char *err, size_t errlen) {
    test_job *t = (test_job *)job;
    for (int i = 0; i < t->n; i++) {
        unsigned char k[8];
        hdb_seq_key(k, first_seq + (uint64_t)i);
        hdb_batch_put(batch, t->cf, k, 8, "e", 1);
    }
    if (t->fail) return hdb_errf(err, errlen, HDB_EINVAL, "job refused");
    *nseq = (uint64_t)t->n;
    return HDB_OK;
}

static void job_applied(hdb_commit_job *job) {
    test_job *t = (test_job *)job;
    t->applied = 1;
    pthread_mutex_lock(t->mu);
    t->order[(*t->norder)++] = job->first_seq;
    pthread_mutex_unlock(t->mu);
}

typedef struct {
    hdb_commit *q;
    test_job *jobs;
    int count;
} worker_arg;

static void *submitter(void *arg) {
    worker_arg *w = arg;
    for (int i = 0; i < w->count; i++) hdb_commit_submit(w->q, &w->jobs[i].job);
    return NULL;
}

/* The group hook's record: how often it ran, and whether the seqs it saw only rose. */
typedef struct {
    int calls;
    uint64_t last;
    bool rising;
} group_log;

static void on_group(void *arg, uint64_t last_seq) {
    group_log *g = arg; /* runs with the queue held: no lock needed */
    g->rising &= last_seq > g->last;
    g->last = last_seq;
    g->calls++;
}

static void test_commit_concurrent(void **state) {
    fixture *f = *state;
    char err[256];
    hdb_cf *cf;
    assert_int_equal(hdb_store_cf_create(f->store, "timeline", &cf, err, sizeof err), HDB_OK);
    group_log groups = {0, 100, true};
    hdb_commit *q = hdb_commit_create(f->store, 100, on_group, &groups);
    enum { THREADS = 6, PER = 40 };
    static test_job jobs[THREADS][PER];
    static uint64_t order[THREADS * PER];
    size_t norder = 0;
    pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
    pthread_t th[THREADS];
    worker_arg args[THREADS];
    uint64_t expected_total = 0;
    for (int t = 0; t < THREADS; t++) {
        for (int i = 0; i < PER; i++) {
            test_job *j = &jobs[t][i];
            memset(j, 0, sizeof *j);
            j->job.prepare = job_prepare;
            j->job.applied = job_applied;
            j->cf = cf;
            j->n = 1 + (t + i) % 5;
            j->fail = (i % 7 == 3);
            j->order = order;
            j->norder = &norder;
            j->mu = &mu;
            if (!j->fail) expected_total += (uint64_t)j->n;
        }
        args[t] = (worker_arg){q, jobs[t], PER};
        pthread_create(&th[t], NULL, submitter, &args[t]);
    }
    for (int t = 0; t < THREADS; t++) pthread_join(th[t], NULL);

    /* Accepted jobs own disjoint ranges that tile 101..100+total; refused jobs own nothing. */
    assert_int_equal(hdb_commit_last_seq(q), 100 + expected_total);
    unsigned char *seen = calloc(expected_total + 1, 1);
    for (int t = 0; t < THREADS; t++) {
        for (int i = 0; i < PER; i++) {
            test_job *j = &jobs[t][i];
            if (j->fail) {
                assert_int_equal(j->job.rc, HDB_EINVAL);
                assert_string_equal(j->job.err, "job refused");
                assert_int_equal(j->job.nseq, 0);
                assert_false(j->applied);
                continue;
            }
            assert_int_equal(j->job.rc, HDB_OK);
            assert_true(j->applied);
            assert_int_equal(j->job.nseq, (uint64_t)j->n);
            for (uint64_t s = j->job.first_seq; s < j->job.first_seq + j->job.nseq; s++) {
                assert_true(s > 100 && s <= 100 + expected_total);
                assert_false(seen[s - 100]);
                seen[s - 100] = 1;
            }
        }
    }
    free(seen);
    /* Applied hooks ran in seq order; the group hook once per durable group, after its jobs. */
    for (size_t i = 1; i < norder; i++) assert_true(order[i - 1] < order[i]);
    assert_true(groups.rising);
    assert_int_equal(groups.last, 100 + expected_total);
    assert_true(groups.calls >= 1 && (size_t)groups.calls <= norder);

    /* The database holds exactly the accepted entries: refused writes were rolled back. */
    hdb_iter *it = hdb_iter_create(f->store, cf, NULL);
    uint64_t n = 0, prev = 100;
    for (hdb_iter_seek_first(it); hdb_iter_valid(it); hdb_iter_next(it)) {
        size_t klen;
        uint64_t s = hdb_get_be64(hdb_iter_key(it, &klen));
        assert_int_equal(s, prev + 1);
        prev = s;
        n++;
    }
    hdb_iter_free(it);
    assert_int_equal(n, expected_total);
    hdb_commit_free(q);
}

typedef struct {
    hdb_commit *q;
    int *inside;
    int max_inside;
} excl_arg;

static int excl_fn(void *arg) {
    excl_arg *e = arg;
    int now = __atomic_add_fetch(e->inside, 1, __ATOMIC_SEQ_CST);
    if (now > e->max_inside) e->max_inside = now;
    usleep(2000);
    __atomic_sub_fetch(e->inside, 1, __ATOMIC_SEQ_CST);
    return 42;
}

static void *excl_thread(void *arg) {
    excl_arg *e = arg;
    for (int i = 0; i < 5; i++) assert_int_equal(hdb_commit_exclusive(e->q, excl_fn, e), 42);
    return NULL;
}

static void test_commit_exclusive(void **state) {
    fixture *f = *state;
    hdb_commit *q = hdb_commit_create(f->store, 0, NULL, NULL);
    int inside = 0;
    excl_arg args[3];
    pthread_t th[3];
    for (int i = 0; i < 3; i++) {
        args[i] = (excl_arg){q, &inside, 0};
        pthread_create(&th[i], NULL, excl_thread, &args[i]);
    }
    for (int i = 0; i < 3; i++) pthread_join(th[i], NULL);
    for (int i = 0; i < 3; i++) assert_int_equal(args[i].max_inside, 1);
    assert_int_equal(hdb_commit_last_seq(q), 0);
    hdb_commit_free(q);
}

int main(void) {
    hdb_log_set_level(HDB_LOG_WARN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_put_get_reopen, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cf_drop, setup, teardown),
        cmocka_unit_test_setup_teardown(test_batch_savepoints, setup, teardown),
        cmocka_unit_test_setup_teardown(test_snapshot_multiget_iter, setup, teardown),
        cmocka_unit_test_setup_teardown(test_locked_by_other_open, setup, teardown),
        cmocka_unit_test_setup_teardown(test_commit_concurrent, setup, teardown),
        cmocka_unit_test_setup_teardown(test_commit_exclusive, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
