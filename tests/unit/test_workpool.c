/*
 * test_workpool.c - the appliers' worker pool (hdb_workpool.h): coalesced submits, requeue
 * behind the others, a long run not holding up a short one on two workers, heavy slots,
 * timers, cancel of queued, timed and running items, and free with items still waiting.
 *
 * Run functions only record (under one mutex); every assertion is made on the test's thread.
 * Waits are for states, with a generous cap; no assertion depends on the machine's speed.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "hdb_clock.h"
#include "hdb_workpool.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <string.h>
#include <time.h>

#define WAIT_CAP_NS (30LL * 1000000000) /* a wait for a state gives up after this */

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static bool gate_open;
static int order[256]; /* ids of the runs, in run order */
static int norder;

typedef struct {
    hdb_work w;
    hdb_workpool *pool;
    int id;
    int runs;           /* runs so far */
    bool blocks;        /* each run waits for the gate */
    bool running;       /* inside run now */
    bool finished;      /* a run returned */
    int resubmit_until; /* submit itself again while runs < this */
    int64_t ran_at;     /* hdb_mono_ns of the first run */
    bool heavy_seen;    /* a run was given a heavy slot */
    void *spawn;        /* another item to submit on run `spawn_at` */
    int spawn_at;
    _Atomic int inside; /* concurrent runs (must stay <= 1) */
    _Atomic bool overlap;
} item;

static void reset(void) {
    pthread_mutex_lock(&mu);
    gate_open = false;
    norder = 0;
    pthread_mutex_unlock(&mu);
}

static void run(hdb_work *w, bool heavy) {
    item *it = w->arg;
    if (atomic_fetch_add(&it->inside, 1) != 0) atomic_store(&it->overlap, true);
    pthread_mutex_lock(&mu);
    it->runs++;
    it->running = true;
    if (it->runs == 1) it->ran_at = hdb_mono_ns();
    if (heavy) it->heavy_seen = true;
    if (norder < (int)(sizeof order / sizeof order[0])) order[norder++] = it->id;
    pthread_cond_broadcast(&cv);
    while (it->blocks && !gate_open) pthread_cond_wait(&cv, &mu);
    int runs = it->runs;
    pthread_mutex_unlock(&mu);
    if (it->spawn && runs == it->spawn_at) {
        item *s = it->spawn;
        hdb_workpool_submit(s->pool, &s->w, false);
    }
    if (runs < it->resubmit_until) hdb_workpool_submit(it->pool, &it->w, false);
    atomic_fetch_sub(&it->inside, 1);
    pthread_mutex_lock(&mu);
    it->running = false;
    it->finished = true;
    pthread_cond_broadcast(&cv);
    pthread_mutex_unlock(&mu);
}

static void item_init(item *it, hdb_workpool *p, int id) {
    memset(it, 0, sizeof *it);
    it->pool = p;
    it->id = id;
    hdb_work_init(&it->w, run, it);
}

/* Waits until *counter >= n (under mu); false after WAIT_CAP_NS. */
static bool wait_runs(const int *counter, int n) {
    int64_t until = hdb_mono_ns() + WAIT_CAP_NS;
    pthread_mutex_lock(&mu);
    while (*counter < n && hdb_mono_ns() < until) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 50000000;
        if (ts.tv_nsec >= 1000000000) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000;
        }
        pthread_cond_timedwait(&cv, &mu, &ts);
    }
    bool ok = *counter >= n;
    pthread_mutex_unlock(&mu);
    return ok;
}

static int runs_of(item *it) {
    pthread_mutex_lock(&mu);
    int r = it->runs;
    pthread_mutex_unlock(&mu);
    return r;
}

static void open_gate(void) {
    pthread_mutex_lock(&mu);
    gate_open = true;
    pthread_cond_broadcast(&cv);
    pthread_mutex_unlock(&mu);
}

/* After this, every item submitted before it on a one-thread pool has run (FIFO). */
static void drain(hdb_workpool *p) {
    item m;
    item_init(&m, p, 99);
    hdb_workpool_submit(p, &m.w, false);
    assert_true(wait_runs(&m.runs, 1));
    hdb_workpool_cancel(p, &m.w);
}

static hdb_workpool *pool(int threads) {
    hdb_workpool *p = NULL;
    char err[256];
    assert_int_equal(hdb_workpool_create(&p, threads, "test", err, sizeof err), 0);
    assert_int_equal(hdb_workpool_threads(p), threads);
    reset();
    return p;
}

static void test_submits_coalesce(void **state) {
    (void)state;
    hdb_workpool *p = pool(1);
    item b, a;
    item_init(&b, p, 1);
    item_init(&a, p, 2);
    b.blocks = true;
    hdb_workpool_submit(p, &b.w, false);
    assert_true(wait_runs(&b.runs, 1));
    /* Queued three times while the only worker is busy: runs once. Submitted while it runs:
     * runs once more afterwards. */
    for (int i = 0; i < 3; i++) hdb_workpool_submit(p, &a.w, false);
    hdb_workpool_submit(p, &b.w, false);
    hdb_workpool_submit(p, &b.w, false);
    open_gate();
    assert_true(wait_runs(&b.runs, 2));
    drain(p);
    assert_int_equal(runs_of(&a), 1);
    assert_int_equal(runs_of(&b), 2);
    hdb_workpool_cancel(p, &a.w);
    hdb_workpool_cancel(p, &b.w);
    hdb_workpool_free(p);
}

static void test_requeue_goes_behind_others(void **state) {
    (void)state;
    hdb_workpool *p = pool(1);
    item l, s;
    item_init(&l, p, 1);
    item_init(&s, p, 2);
    l.resubmit_until = 20; /* a long backlog, one piece per run */
    l.spawn = &s;          /* a commit to another index arrives during piece 5 */
    l.spawn_at = 5;
    hdb_workpool_submit(p, &l.w, false);
    assert_true(wait_runs(&l.runs, 20));
    drain(p);
    /* s ran right after the piece it arrived in, not after the whole backlog. */
    pthread_mutex_lock(&mu);
    int pos = -1;
    for (int i = 0; i < norder; i++)
        if (order[i] == 2) pos = i;
    pthread_mutex_unlock(&mu);
    assert_int_equal(pos, 5);
    assert_int_equal(runs_of(&s), 1);
    hdb_workpool_cancel(p, &l.w);
    hdb_workpool_cancel(p, &s.w);
    hdb_workpool_free(p);
}

static void test_long_run_leaves_a_worker(void **state) {
    (void)state;
    hdb_workpool *p = pool(2);
    item l, s;
    item_init(&l, p, 1);
    item_init(&s, p, 2);
    l.blocks = true; /* holds its worker until the gate opens */
    hdb_workpool_submit(p, &l.w, false);
    assert_true(wait_runs(&l.runs, 1));
    hdb_workpool_submit(p, &s.w, false);
    assert_true(wait_runs(&s.runs, 1));
    pthread_mutex_lock(&mu);
    bool l_done = l.finished;
    pthread_mutex_unlock(&mu);
    assert_false(l_done); /* s ran while l still held the other worker */
    open_gate();
    hdb_workpool_cancel(p, &l.w);
    hdb_workpool_cancel(p, &s.w);
    hdb_workpool_free(p);
}

static void test_heavy_slots(void **state) {
    (void)state;
    /* Two workers: one heavy slot, the other worker stays free for light items. */
    hdb_workpool *p = pool(2);
    item h1, h2, s;
    item_init(&h1, p, 1);
    item_init(&h2, p, 2);
    item_init(&s, p, 3);
    h1.blocks = true;
    hdb_workpool_submit(p, &h1.w, true);
    assert_true(wait_runs(&h1.runs, 1));
    hdb_workpool_submit(p, &h2.w, true);
    hdb_workpool_submit(p, &s.w, false);
    assert_true(wait_runs(&s.runs, 1)); /* behind h2 in the queue, yet it ran */
    assert_int_equal(runs_of(&h2), 0);  /* the heavy slot is h1's */
    open_gate();
    assert_true(wait_runs(&h2.runs, 1));
    pthread_mutex_lock(&mu);
    assert_true(h1.heavy_seen && h2.heavy_seen && !s.heavy_seen);
    pthread_mutex_unlock(&mu);
    hdb_workpool_cancel(p, &h1.w);
    hdb_workpool_cancel(p, &h2.w);
    hdb_workpool_cancel(p, &s.w);
    hdb_workpool_free(p);

    /* One worker: a heavy item still runs (it takes the only thread). */
    p = pool(1);
    item_init(&h1, p, 1);
    hdb_workpool_submit(p, &h1.w, true);
    assert_true(wait_runs(&h1.runs, 1));
    hdb_workpool_cancel(p, &h1.w);
    hdb_workpool_free(p);
}

static void test_timers(void **state) {
    (void)state;
    hdb_workpool *p = pool(1);
    item t, u;
    item_init(&t, p, 1);
    item_init(&u, p, 2);
    /* Due at a time: not before it. The earlier of two dues wins. */
    int64_t due = hdb_mono_ns() + 100000000;
    hdb_workpool_submit_at(p, &t.w, due + 60LL * 1000000000);
    hdb_workpool_submit_at(p, &t.w, due);
    assert_true(wait_runs(&t.runs, 1));
    assert_true(t.ran_at >= due);
    assert_true(t.ran_at < due + 60LL * 1000000000);
    /* A submit makes a timed item run now, and only once. */
    int64_t later = hdb_mono_ns() + 200000000;
    hdb_workpool_submit_at(p, &u.w, later);
    hdb_workpool_submit(p, &u.w, false);
    assert_true(wait_runs(&u.runs, 1));
    while (hdb_mono_ns() < later + 200000000) {
        struct timespec ts = {0, 20000000};
        nanosleep(&ts, NULL);
    }
    drain(p);
    assert_int_equal(runs_of(&u), 1);
    hdb_workpool_cancel(p, &t.w);
    hdb_workpool_cancel(p, &u.w);
    hdb_workpool_free(p);
}

static void test_cancel_queued_and_timed(void **state) {
    (void)state;
    hdb_workpool *p = pool(1);
    item b, q, t;
    item_init(&b, p, 1);
    item_init(&q, p, 2);
    item_init(&t, p, 3);
    b.blocks = true;
    hdb_workpool_submit(p, &b.w, false);
    assert_true(wait_runs(&b.runs, 1));
    hdb_workpool_submit(p, &q.w, false);
    int64_t due = hdb_mono_ns() + 50000000;
    hdb_workpool_submit_at(p, &t.w, due);
    hdb_workpool_cancel(p, &q.w); /* queued: removed */
    hdb_workpool_cancel(p, &t.w); /* timed: removed */
    hdb_workpool_submit(p, &q.w, false); /* after a cancel: ignored */
    hdb_workpool_submit_at(p, &t.w, due);
    open_gate();
    while (hdb_mono_ns() < due + 200000000) {
        struct timespec ts = {0, 20000000};
        nanosleep(&ts, NULL);
    }
    drain(p);
    assert_int_equal(runs_of(&q), 0);
    assert_int_equal(runs_of(&t), 0);
    hdb_workpool_cancel(p, &b.w);
    hdb_workpool_free(p);
}

typedef struct {
    hdb_workpool *p;
    item *it;
    bool finished_seen; /* it->finished when cancel returned */
    _Atomic bool returned;
} canceller;

static void *cancel_thread(void *arg) {
    canceller *c = arg;
    hdb_workpool_cancel(c->p, &c->it->w);
    pthread_mutex_lock(&mu);
    c->finished_seen = c->it->finished;
    pthread_mutex_unlock(&mu);
    atomic_store(&c->returned, true);
    return NULL;
}

static void test_cancel_waits_for_a_running_item(void **state) {
    (void)state;
    hdb_workpool *p = pool(2);
    item l;
    item_init(&l, p, 1);
    l.blocks = true;
    l.resubmit_until = 100; /* it would go on, but the cancel ends it */
    hdb_workpool_submit(p, &l.w, false);
    assert_true(wait_runs(&l.runs, 1));
    canceller c = {.p = p, .it = &l};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, cancel_thread, &c), 0);
    struct timespec ts = {0, 100000000};
    nanosleep(&ts, NULL);
    assert_false(atomic_load(&c.returned)); /* l is still inside its run */
    open_gate();
    pthread_join(th, NULL);
    assert_true(c.finished_seen);
    item m;
    item_init(&m, p, 2);
    hdb_workpool_submit(p, &m.w, false);
    assert_true(wait_runs(&m.runs, 1));
    hdb_workpool_cancel(p, &m.w);
    hdb_workpool_free(p);
    assert_int_equal(l.runs, 1); /* its own submit during the run did not bring it back */
}

static void test_same_item_never_runs_twice_at_once(void **state) {
    (void)state;
    hdb_workpool *p = pool(2);
    item t;
    item_init(&t, p, 1);
    for (int i = 0; i < 2000; i++) {
        hdb_workpool_submit(p, &t.w, i % 3 == 0);
        if (i % 200 == 199) assert_true(wait_runs(&t.runs, i / 200 + 1));
    }
    hdb_workpool_cancel(p, &t.w);
    assert_false(atomic_load(&t.overlap));
    assert_true(t.runs >= 10);
    hdb_workpool_free(p);
}

static void *free_thread(void *arg) {
    hdb_workpool_free(arg);
    return NULL;
}

static void test_free_with_waiting_items(void **state) {
    (void)state;
    /* Free waits for the run under way, not for a timer far ahead, which never runs. */
    hdb_workpool *p = pool(2);
    item b, t;
    item_init(&b, p, 1);
    item_init(&t, p, 2);
    b.blocks = true;
    hdb_workpool_submit_at(p, &t.w, hdb_mono_ns() + 3600LL * 1000000000);
    hdb_workpool_submit(p, &b.w, false);
    assert_true(wait_runs(&b.runs, 1));
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, free_thread, p), 0);
    open_gate();
    pthread_join(th, NULL);
    assert_true(b.finished);
    assert_int_equal(t.runs, 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_submits_coalesce),
        cmocka_unit_test(test_requeue_goes_behind_others),
        cmocka_unit_test(test_long_run_leaves_a_worker),
        cmocka_unit_test(test_heavy_slots),
        cmocka_unit_test(test_timers),
        cmocka_unit_test(test_cancel_queued_and_timed),
        cmocka_unit_test(test_cancel_waits_for_a_running_item),
        cmocka_unit_test(test_same_item_never_runs_twice_at_once),
        cmocka_unit_test(test_free_with_waiting_items),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
