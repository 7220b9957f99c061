/*
 * hdb_workpool.c - fixed worker threads, one FIFO run queue, a sorted timer list, heavy slots.
 *
 * Concurrency: `mu` guards the queue, the timer list, every item's private fields and the
 * counters. `cv` wakes idle workers (an item queued, a timer added, a heavy slot freed, stop);
 * `done` wakes hdb_workpool_cancel when a run ends. A run function is called without `mu`.
 */
#include "hdb_workpool.h"

#include "hdb_clock.h"
#include "hdb_err.h"
#include "hdb_log.h"
#include "hdb_mem.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

enum { W_IDLE = 0, W_QUEUED, W_TIMED, W_RUNNING };

typedef struct {
    hdb_work *head, *tail;
} wlist;

struct hdb_workpool {
    pthread_mutex_t mu;
    pthread_cond_t cv, done;
    wlist queue;  /* runnable, in submit order */
    wlist timers; /* W_TIMED, by _due ascending */
    int nthreads, heavy_cap, heavy_running;
    bool stopping;
    pthread_t *threads;
    int started;
};

/* ---------------------------------------------------------------- lists */

static void list_remove(wlist *l, hdb_work *w) {
    if (w->_prev) w->_prev->_next = w->_next;
    else l->head = w->_next;
    if (w->_next) w->_next->_prev = w->_prev;
    else l->tail = w->_prev;
    w->_prev = w->_next = NULL;
}

static void list_push(wlist *l, hdb_work *w) {
    w->_next = NULL;
    w->_prev = l->tail;
    if (l->tail) l->tail->_next = w;
    else l->head = w;
    l->tail = w;
}

/* Inserts w before the first timer due later (equal dues keep their order). */
static void timer_insert(hdb_workpool *p, hdb_work *w) {
    hdb_work *at = p->timers.head;
    while (at && at->_due <= w->_due) at = at->_next;
    if (at == NULL) {
        list_push(&p->timers, w);
        return;
    }
    w->_next = at;
    w->_prev = at->_prev;
    if (at->_prev) at->_prev->_next = w;
    else p->timers.head = w;
    at->_prev = w;
}

static void enqueue(hdb_workpool *p, hdb_work *w, bool heavy) {
    w->_state = W_QUEUED;
    w->_heavy = heavy;
    list_push(&p->queue, w);
    pthread_cond_signal(&p->cv);
}

/* ---------------------------------------------------------------- workers */

/* Moves the timers that are due to the queue. */
static void promote_timers(hdb_workpool *p, int64_t now) {
    while (p->timers.head && p->timers.head->_due <= now) {
        hdb_work *w = p->timers.head;
        list_remove(&p->timers, w);
        w->_due = 0;
        enqueue(p, w, false);
    }
}

/* The first queued item that may run now: light, or heavy while a heavy slot is free. */
static hdb_work *pick(hdb_workpool *p) {
    for (hdb_work *w = p->queue.head; w; w = w->_next)
        if (!w->_heavy || p->heavy_running < p->heavy_cap) return w;
    return NULL;
}

static void *worker(void *arg) {
    hdb_workpool *p = arg;
    pthread_mutex_lock(&p->mu);
    while (!p->stopping) {
        promote_timers(p, hdb_mono_ns());
        hdb_work *w = pick(p);
        if (w == NULL) {
            if (p->timers.head) {
                struct timespec ts = hdb_mono_timespec(p->timers.head->_due);
                pthread_cond_timedwait(&p->cv, &p->mu, &ts);
            } else {
                pthread_cond_wait(&p->cv, &p->mu);
            }
            continue;
        }
        list_remove(&p->queue, w);
        bool heavy = w->_heavy;
        w->_state = W_RUNNING;
        w->_heavy = false;
        w->_again = w->_again_heavy = false;
        w->_again_due = 0;
        if (heavy) p->heavy_running++;
        pthread_mutex_unlock(&p->mu);

        w->run(w, heavy);

        pthread_mutex_lock(&p->mu);
        if (heavy) {
            p->heavy_running--;
            pthread_cond_broadcast(&p->cv); /* a heavy item may wait for the slot */
        }
        w->_state = W_IDLE;
        if (!w->_dead) {
            if (w->_again) {
                enqueue(p, w, w->_again_heavy);
            } else if (w->_again_due) {
                w->_state = W_TIMED;
                w->_due = w->_again_due;
                timer_insert(p, w);
                pthread_cond_signal(&p->cv); /* an idle worker times its wait by it */
            }
        }
        w->_again = w->_again_heavy = false;
        w->_again_due = 0;
        pthread_cond_broadcast(&p->done);
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

/* ---------------------------------------------------------------- public */

int hdb_workpool_create(hdb_workpool **out, int threads, const char *name, char *err,
                        size_t errlen) {
    if (threads <= 0) {
        long c = sysconf(_SC_NPROCESSORS_ONLN);
        threads = c > 0 ? (int)c : 1;
    }
    hdb_workpool *p = hdb_calloc(1, sizeof *p);
    p->nthreads = threads;
    p->heavy_cap = threads > 1 ? threads - 1 : 1;
    pthread_mutex_init(&p->mu, NULL);
    hdb_mono_cond_init(&p->cv);
    hdb_mono_cond_init(&p->done);
    p->threads = hdb_calloc((size_t)threads, sizeof *p->threads);
    for (int i = 0; i < threads; i++) {
        int e = pthread_create(&p->threads[i], NULL, worker, p);
        if (e != 0) {
            hdb_errf(err, errlen, HDB_EINTERNAL, "cannot start worker thread %d of %d: %s", i + 1,
                     threads, strerror(e));
            hdb_workpool_free(p);
            return HDB_EINTERNAL;
        }
        p->started++;
        char tn[24]; /* the kernel keeps 15 characters */
        snprintf(tn, sizeof tn, "%.10s-%d", name ? name : "work", i % 1000);
        tn[15] = '\0';
        pthread_setname_np(p->threads[i], tn);
    }
    *out = p;
    return HDB_OK;
}

int hdb_workpool_threads(const hdb_workpool *p) {
    return p->nthreads;
}

void hdb_work_init(hdb_work *w, hdb_work_fn run, void *arg) {
    memset(w, 0, sizeof *w);
    w->run = run;
    w->arg = arg;
}

void hdb_workpool_submit(hdb_workpool *p, hdb_work *w, bool heavy) {
    pthread_mutex_lock(&p->mu);
    if (!w->_dead) {
        switch (w->_state) {
        case W_IDLE:
            enqueue(p, w, heavy);
            break;
        case W_TIMED:
            list_remove(&p->timers, w);
            w->_due = 0;
            enqueue(p, w, heavy);
            break;
        case W_QUEUED:
            w->_heavy = w->_heavy || heavy;
            break;
        case W_RUNNING:
            w->_again = true;
            w->_again_heavy = w->_again_heavy || heavy;
            break;
        }
    }
    pthread_mutex_unlock(&p->mu);
}

void hdb_workpool_submit_at(hdb_workpool *p, hdb_work *w, int64_t due_ns) {
    if (due_ns <= 0) due_ns = 1;
    pthread_mutex_lock(&p->mu);
    if (!w->_dead) {
        switch (w->_state) {
        case W_IDLE:
            w->_state = W_TIMED;
            w->_due = due_ns;
            timer_insert(p, w);
            pthread_cond_signal(&p->cv);
            break;
        case W_TIMED:
            if (due_ns < w->_due) {
                list_remove(&p->timers, w);
                w->_due = due_ns;
                timer_insert(p, w);
                pthread_cond_signal(&p->cv);
            }
            break;
        case W_QUEUED:
            break;
        case W_RUNNING:
            if (w->_again_due == 0 || due_ns < w->_again_due) w->_again_due = due_ns;
            break;
        }
    }
    pthread_mutex_unlock(&p->mu);
}

void hdb_workpool_cancel(hdb_workpool *p, hdb_work *w) {
    pthread_mutex_lock(&p->mu);
    w->_dead = true;
    if (w->_state == W_QUEUED) list_remove(&p->queue, w);
    if (w->_state == W_TIMED) list_remove(&p->timers, w);
    while (w->_state == W_RUNNING) pthread_cond_wait(&p->done, &p->mu);
    w->_state = W_IDLE;
    w->_due = 0;
    pthread_mutex_unlock(&p->mu);
}

void hdb_workpool_free(hdb_workpool *p) {
    if (p == NULL) return;
    pthread_mutex_lock(&p->mu);
    p->stopping = true;
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
    for (int i = 0; i < p->started; i++) pthread_join(p->threads[i], NULL);
    /* What is still queued never runs. */
    for (hdb_work *w = p->queue.head, *next; w; w = next) {
        next = w->_next;
        w->_prev = w->_next = NULL;
        w->_state = W_IDLE;
    }
    for (hdb_work *w = p->timers.head, *next; w; w = next) {
        next = w->_next;
        w->_prev = w->_next = NULL;
        w->_state = W_IDLE;
    }
    hdb_free(p->threads);
    pthread_cond_destroy(&p->done);
    pthread_cond_destroy(&p->cv);
    pthread_mutex_destroy(&p->mu);
    hdb_free(p);
}
