/*
 * hdb_infer.c - per-model queues and the threads that batch them into forward passes.
 *
 * One mutex guards every queue and request state; forward passes run without it. A request
 * is QUEUED, then TAKEN by a pool thread (it can no longer time out), then DONE.
 */
#include "hdb_infer.h"

#include "hdb_clock.h"
#include "hdb_err.h"
#include "hdb_log.h"
#include "hdb_mem.h"
#include "hdb_torch.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

enum { QUEUED = 0, TAKEN = 1, DONE = 2 };

typedef struct request {
    hdb_model *model;
    const float *in;
    float *out;
    size_t n;
    int64_t enqueued_ns;
    int state;
    int rc;
    char err[512];
    struct request *next; /* in its model's queue */
} request;

typedef struct queue {
    hdb_model *model;
    request *head, *tail;
    size_t items;  /* queued */
    int running;   /* forward passes of this model in progress */
    struct queue *next;
} queue;

struct hdb_infer {
    pthread_mutex_t mu;
    pthread_cond_t work; /* pool threads: something was queued, or stop */
    pthread_cond_t done; /* callers: some request finished */
    queue *queues;       /* models with queued requests */
    bool stop;
    uint32_t max_batch;
    int64_t max_wait_ns;
    pthread_t *threads;
    int nthreads;
    hdb_infer_stats stats;
};

static queue *queue_of(hdb_infer *p, hdb_model *m, bool create) {
    for (queue *q = p->queues; q; q = q->next)
        if (q->model == m) return q;
    if (!create) return NULL;
    queue *q = hdb_calloc(1, sizeof *q);
    q->model = m;
    q->next = p->queues;
    p->queues = q;
    return q;
}

static void queue_remove_request(queue *q, request *r) {
    request **pp = &q->head;
    while (*pp && *pp != r) pp = &(*pp)->next;
    if (*pp == NULL) return;
    *pp = r->next;
    if (q->tail == r) {
        q->tail = NULL;
        for (request *x = q->head; x; x = x->next) q->tail = x;
    }
    q->items -= r->n;
}

static void queue_drop_if_empty(hdb_infer *p, queue *q) {
    if (q->head || q->running) return;
    queue **pp = &p->queues;
    while (*pp != q) pp = &(*pp)->next;
    *pp = q->next;
    hdb_free(q);
}

/* The queue whose oldest request is oldest, or NULL (queues with no request are skipped). */
static queue *oldest_queue(hdb_infer *p) {
    queue *best = NULL;
    for (queue *q = p->queues; q; q = q->next)
        if (q->head && (best == NULL || q->head->enqueued_ns < best->head->enqueued_ns)) best = q;
    return best;
}

/* Runs one batch (requests linked through `next`, all TAKEN) without the lock held. */
static void run_batch(hdb_infer *p, queue *q, request *batch, size_t items) {
    hdb_model *m = q->model;
    int64_t in_size = hdb_model_input_size(m), out_dim = hdb_model_output_dim(m);
    const float *in = batch->in;
    float *out = batch->out;
    float *inbuf = NULL, *outbuf = NULL;
    if (batch->next != NULL) { /* several requests: gather them */
        inbuf = hdb_malloc(items * (size_t)in_size * sizeof(float));
        outbuf = hdb_malloc(items * (size_t)out_dim * sizeof(float));
        size_t off = 0;
        for (request *r = batch; r; r = r->next) {
            memcpy(inbuf + off * in_size, r->in, r->n * (size_t)in_size * sizeof(float));
            off += r->n;
        }
        in = inbuf;
        out = outbuf;
    }
    char err[512];
    err[0] = '\0';
    int rc = hdb_model_forward(m, in, (int64_t)items, out, err, sizeof err);
    if (rc == HDB_OK && outbuf) {
        size_t off = 0;
        for (request *r = batch; r; r = r->next) {
            memcpy(r->out, outbuf + off * out_dim, r->n * (size_t)out_dim * sizeof(float));
            off += r->n;
        }
    }
    hdb_free(inbuf);
    hdb_free(outbuf);
    pthread_mutex_lock(&p->mu);
    q->running--;
    queue_drop_if_empty(p, q);
    pthread_cond_broadcast(&p->work); /* a waiting batch may go now */
    p->stats.passes++;
    p->stats.items += items;
    hdb_model_count_pass(m, (int64_t)items);
    for (request *r = batch, *next; r; r = next) {
        next = r->next;
        r->rc = rc;
        if (rc != HDB_OK) snprintf(r->err, sizeof r->err, "%s", err);
        r->state = DONE;
        p->stats.requests++;
    }
    pthread_cond_broadcast(&p->done);
    pthread_mutex_unlock(&p->mu);
}

static void *worker(void *arg) {
    hdb_infer *p = arg;
    pthread_mutex_lock(&p->mu);
    for (;;) {
        queue *q = oldest_queue(p);
        if (p->stop) break;
        if (q == NULL) {
            pthread_cond_wait(&p->work, &p->mu);
            continue;
        }
        /* While a pass of this model runs, more requests are likely to arrive: wait for a
         * fuller batch, up to max_wait after the oldest request. Otherwise go at once, so a
         * lone request pays no batching delay. */
        int64_t ready_at = q->head->enqueued_ns + p->max_wait_ns;
        if (q->running > 0 && q->items < p->max_batch && hdb_mono_ns() < ready_at) {
            struct timespec ts = hdb_mono_timespec(ready_at);
            pthread_cond_timedwait(&p->work, &p->mu, &ts);
            continue; /* re-evaluate: another thread may have taken it */
        }
        /* Take whole requests up to max_batch items (a larger first request runs alone). */
        request *batch = NULL, **tail = &batch;
        size_t items = 0;
        while (q->head && (items == 0 || items + q->head->n <= p->max_batch)) {
            request *r = q->head;
            queue_remove_request(q, r);
            r->state = TAKEN;
            r->next = NULL;
            *tail = r;
            tail = &r->next;
            items += r->n;
        }
        q->running++;
        pthread_mutex_unlock(&p->mu);
        run_batch(p, q, batch, items);
        pthread_mutex_lock(&p->mu);
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

int hdb_infer_create(hdb_infer **out, int threads, uint32_t max_batch, uint32_t max_wait_us,
                     char *err, size_t errlen) {
    if (threads < 1 || max_batch < 1)
        return hdb_errf(err, errlen, HDB_EINVAL, "inference pool: threads and max_batch >= 1");
    hdb_infer *p = hdb_calloc(1, sizeof *p);
    pthread_mutex_init(&p->mu, NULL);
    hdb_mono_cond_init(&p->work);
    hdb_mono_cond_init(&p->done);
    p->max_batch = max_batch;
    p->max_wait_ns = (int64_t)max_wait_us * 1000;
    p->threads = hdb_calloc((size_t)threads, sizeof *p->threads);
    for (int i = 0; i < threads; i++) {
        int e = pthread_create(&p->threads[i], NULL, worker, p);
        if (e != 0) {
            hdb_errf(err, errlen, HDB_EINTERNAL, "inference pool: cannot start a thread: %s",
                     strerror(e));
            hdb_infer_free(p);
            return HDB_EINTERNAL;
        }
        p->nthreads++;
    }
    *out = p;
    return HDB_OK;
}

void hdb_infer_free(hdb_infer *p) {
    if (p == NULL) return;
    pthread_mutex_lock(&p->mu);
    p->stop = true;
    pthread_cond_broadcast(&p->work);
    pthread_mutex_unlock(&p->mu);
    for (int i = 0; i < p->nthreads; i++) pthread_join(p->threads[i], NULL);
    /* Requests still queued: fail them, so their callers return. */
    pthread_mutex_lock(&p->mu);
    for (queue *q = p->queues, *nq; q; q = nq) {
        nq = q->next;
        for (request *r = q->head; r; r = r->next) {
            r->state = DONE;
            r->rc = HDB_EUNAVAIL;
            snprintf(r->err, sizeof r->err, "the server is shutting down");
        }
        hdb_free(q);
    }
    p->queues = NULL;
    pthread_cond_broadcast(&p->done);
    pthread_mutex_unlock(&p->mu);
    hdb_free(p->threads);
    pthread_cond_destroy(&p->work);
    pthread_cond_destroy(&p->done);
    pthread_mutex_destroy(&p->mu);
    hdb_free(p);
}

int hdb_infer_run(hdb_infer *p, hdb_model *m, const float *in, size_t n, float *out,
                  int64_t deadline_ns, char *err, size_t errlen) {
    hdb_infer_job job = {m, in, n, out};
    return hdb_infer_run_jobs(p, &job, 1, deadline_ns, NULL, err, errlen);
}

/* Takes a request that is still QUEUED out of its queue (under p->mu). A queued request stays
 * in the queue it joined, which exists while it is not empty. */
static void withdraw(hdb_infer *p, request *r) {
    queue *q = queue_of(p, r->model, false);
    queue_remove_request(q, r);
    queue_drop_if_empty(p, q);
}

int hdb_infer_run_jobs(hdb_infer *p, const hdb_infer_job *jobs, size_t njobs, int64_t deadline_ns,
                       size_t *failed, char *err, size_t errlen) {
    request one, *reqs = njobs > 1 ? hdb_calloc(njobs, sizeof *reqs) : &one;
    int64_t now = hdb_mono_ns();
    size_t pending = 0;
    pthread_mutex_lock(&p->mu);
    for (size_t i = 0; i < njobs; i++) {
        request *r = &reqs[i];
        *r = (request){.model = jobs[i].model, .in = jobs[i].in, .out = jobs[i].out,
                       .n = jobs[i].n, .enqueued_ns = now};
        if (r->n == 0 || p->stop) { /* nothing to run, or no one left to run it */
            r->state = DONE;
            if (r->n > 0) {
                r->rc = HDB_EUNAVAIL;
                snprintf(r->err, sizeof r->err, "the server is shutting down");
            }
            continue;
        }
        queue *q = queue_of(p, r->model, true);
        if (q->tail) q->tail->next = r;
        else q->head = r;
        q->tail = r;
        q->items += r->n;
        pending++;
    }
    if (pending) pthread_cond_broadcast(&p->work);
    while (pending > 0) {
        /* Jobs still queued at the deadline give up; the ones running finish. */
        bool queued = false;
        bool late = deadline_ns != INT64_MAX && hdb_mono_ns() >= deadline_ns;
        pending = 0;
        for (size_t i = 0; i < njobs; i++) {
            request *r = &reqs[i];
            if (r->state == QUEUED && late) {
                withdraw(p, r);
                r->state = DONE;
                r->rc = HDB_ETIMEOUT;
                snprintf(r->err, sizeof r->err, "deadline passed while waiting for the model");
            }
            queued |= r->state == QUEUED;
            pending += r->state != DONE;
        }
        if (pending == 0) break;
        if (queued && deadline_ns != INT64_MAX) {
            struct timespec ts = hdb_mono_timespec(deadline_ns);
            pthread_cond_timedwait(&p->done, &p->mu, &ts);
        } else {
            pthread_cond_wait(&p->done, &p->mu);
        }
    }
    pthread_mutex_unlock(&p->mu);
    int rc = HDB_OK;
    for (size_t i = 0; i < njobs && rc == HDB_OK; i++) {
        if (reqs[i].rc == HDB_OK) continue;
        rc = hdb_errf(err, errlen, reqs[i].rc, "%s", reqs[i].err);
        if (failed) *failed = i;
    }
    if (reqs != &one) hdb_free(reqs);
    return rc;
}

void hdb_infer_stats_get(hdb_infer *p, hdb_infer_stats *st) {
    pthread_mutex_lock(&p->mu);
    *st = p->stats;
    st->queued_requests = st->queued_items = 0;
    for (queue *q = p->queues; q; q = q->next) {
        for (request *r = q->head; r; r = r->next) st->queued_requests++;
        st->queued_items += q->items;
    }
    pthread_mutex_unlock(&p->mu);
}
