/*
 * hdb_commit.c - leader/follower group commit over an indexed write batch (see hdb_commit.h).
 */
#include "hdb_commit.h"

#include "hdb_err.h"
#include "hdb_log.h"
#include "hdb_mem.h"
#include "hdb_store.h"

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

struct hdb_commit {
    hdb_store *store;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool busy;                      /* a leader or an exclusive section holds the queue */
    hdb_commit_job *head, *tail;    /* waiting jobs, in arrival order */
    _Atomic uint64_t last_seq;      /* written only by the holder of `busy` */
    hdb_commit_group_fn on_group;
    void *on_group_arg;
};

hdb_commit *hdb_commit_create(hdb_store *store, uint64_t last_seq, hdb_commit_group_fn on_group,
                              void *arg) {
    hdb_commit *q = hdb_calloc(1, sizeof *q);
    q->store = store;
    q->on_group = on_group;
    q->on_group_arg = arg;
    pthread_mutex_init(&q->mu, NULL);
    pthread_cond_init(&q->cv, NULL);
    atomic_store(&q->last_seq, last_seq);
    return q;
}

void hdb_commit_free(hdb_commit *q) {
    if (q == NULL) return;
    HDB_ASSERT(q->head == NULL && !q->busy);
    pthread_cond_destroy(&q->cv);
    pthread_mutex_destroy(&q->mu);
    hdb_free(q);
}

uint64_t hdb_commit_last_seq(hdb_commit *q) {
    return atomic_load(&q->last_seq);
}

/* Runs one group as leader. Called without q->mu held. */
static void run_group(hdb_commit *q, hdb_commit_job *group) {
    hdb_batch *batch = hdb_batch_create();
    uint64_t seq = atomic_load(&q->last_seq) + 1;
    size_t accepted = 0;
    for (hdb_commit_job *j = group; j; j = j->_next) {
        uint64_t n = 0;
        j->err[0] = '\0';
        hdb_batch_savepoint(batch);
        j->rc = j->prepare(j, batch, seq, &n, j->err, sizeof j->err);
        if (j->rc != HDB_OK) {
            hdb_batch_rollback(batch);
            j->nseq = 0;
            continue;
        }
        j->first_seq = seq;
        j->nseq = n;
        seq += n;
        accepted++;
    }
    if (accepted > 0) {
        char err[HDB_COMMIT_ERRLEN];
        int rc = hdb_store_write(q->store, batch, err, sizeof err);
        if (rc != HDB_OK) {
            /* A full disk is the disk guard's to report (once); anything else is news. */
            if (rc == HDB_EFULL)
                HDB_DEBUG("commit", "group refused, %zu jobs: %s", accepted, err);
            else
                HDB_ERROR("commit", "group write failed, %zu jobs rejected: %s", accepted, err);
            for (hdb_commit_job *j = group; j; j = j->_next) {
                if (j->rc != HDB_OK) continue;
                j->rc = rc;
                /* The disk guard's message names the storage itself. */
                snprintf(j->err, sizeof j->err, "%s%.400s", rc == HDB_EFULL ? "" : "storage: ",
                         err);
                j->nseq = 0;
            }
        } else {
            atomic_store(&q->last_seq, seq - 1);
            for (hdb_commit_job *j = group; j; j = j->_next)
                if (j->rc == HDB_OK && j->applied) j->applied(j);
            if (q->on_group) q->on_group(q->on_group_arg, seq - 1);
        }
    }
    hdb_batch_free(batch);
}

int hdb_commit_submit(hdb_commit *q, hdb_commit_job *job) {
    job->_done = false;
    job->_next = NULL;
    pthread_mutex_lock(&q->mu);
    if (q->tail) q->tail->_next = job;
    else q->head = job;
    q->tail = job;
    while (!job->_done && q->busy) pthread_cond_wait(&q->cv, &q->mu);
    if (job->_done) {
        pthread_mutex_unlock(&q->mu);
        return job->rc;
    }
    /* Lead: take everything queued so far, our own job included. */
    hdb_commit_job *group = q->head;
    q->head = q->tail = NULL;
    q->busy = true;
    pthread_mutex_unlock(&q->mu);

    run_group(q, group);

    pthread_mutex_lock(&q->mu);
    for (hdb_commit_job *j = group, *next; j; j = next) {
        next = j->_next; /* read before _done: the owner may free the job right after */
        j->_next = NULL;
        j->_done = true;
    }
    q->busy = false;
    pthread_cond_broadcast(&q->cv);
    pthread_mutex_unlock(&q->mu);
    return job->rc;
}

int hdb_commit_exclusive(hdb_commit *q, int (*fn)(void *arg), void *arg) {
    pthread_mutex_lock(&q->mu);
    while (q->busy) pthread_cond_wait(&q->cv, &q->mu);
    q->busy = true;
    pthread_mutex_unlock(&q->mu);

    int rc = fn(arg);

    pthread_mutex_lock(&q->mu);
    q->busy = false;
    pthread_cond_broadcast(&q->cv);
    pthread_mutex_unlock(&q->mu);
    return rc;
}

static void queue_hold(hdb_commit *q) {
    pthread_mutex_lock(&q->mu);
    while (q->busy) pthread_cond_wait(&q->cv, &q->mu);
    q->busy = true;
    pthread_mutex_unlock(&q->mu);
}

static void queue_release(hdb_commit *q) {
    pthread_mutex_lock(&q->mu);
    q->busy = false;
    pthread_cond_broadcast(&q->cv);
    pthread_mutex_unlock(&q->mu);
}

static int ptr_cmp(const void *a, const void *b) {
    uintptr_t x = (uintptr_t)*(hdb_commit *const *)a, y = (uintptr_t)*(hdb_commit *const *)b;
    return x < y ? -1 : x > y;
}

int hdb_commit_submit_all(hdb_commit *const *qs, hdb_commit_job *const *jobs, size_t n,
                          char *err, size_t errlen) {
    if (n == 0) return HDB_OK;
    if (n == 1) {
        int rc = hdb_commit_submit(qs[0], jobs[0]);
        if (rc != HDB_OK) hdb_errf(err, errlen, rc, "%s", jobs[0]->err);
        return rc;
    }
    hdb_commit **order = hdb_malloc(n * sizeof *order);
    memcpy(order, qs, n * sizeof *order);
    qsort(order, n, sizeof *order, ptr_cmp);
    for (size_t i = 0; i < n; i++) {
        HDB_ASSERT(i == 0 || order[i] != order[i - 1]);
        HDB_ASSERT(qs[i]->store == qs[0]->store);
        queue_hold(order[i]);
    }
    hdb_batch *batch = hdb_batch_create();
    int rc = HDB_OK;
    size_t failed = n;
    for (size_t i = 0; i < n && rc == HDB_OK; i++) {
        hdb_commit_job *j = jobs[i];
        uint64_t nseq = 0;
        j->err[0] = '\0';
        j->first_seq = atomic_load(&qs[i]->last_seq) + 1;
        rc = j->prepare(j, batch, j->first_seq, &nseq, j->err, sizeof j->err);
        j->nseq = nseq;
        if (rc != HDB_OK) failed = i;
    }
    if (rc == HDB_OK) {
        char werr[HDB_COMMIT_ERRLEN];
        rc = hdb_store_write(qs[0]->store, batch, werr, sizeof werr);
        if (rc != HDB_OK) {
            if (rc == HDB_EFULL) HDB_DEBUG("commit", "multi-source write refused: %s", werr);
            else HDB_ERROR("commit", "multi-source write failed: %s", werr);
            hdb_errf(err, errlen, rc, "%s%.400s", rc == HDB_EFULL ? "" : "storage: ", werr);
        }
    } else {
        hdb_errf(err, errlen, rc, "%s", jobs[failed]->err);
    }
    for (size_t i = 0; i < n; i++) {
        hdb_commit_job *j = jobs[i];
        if (rc == HDB_OK) {
            j->rc = HDB_OK;
            atomic_store(&qs[i]->last_seq, j->first_seq + j->nseq - 1);
        } else {
            j->rc = i == failed ? rc : HDB_EPRECOND;
            if (i != failed) snprintf(j->err, sizeof j->err, "not written: another part failed");
            j->nseq = 0;
        }
    }
    if (rc == HDB_OK) {
        for (size_t i = 0; i < n; i++)
            if (jobs[i]->applied) jobs[i]->applied(jobs[i]);
        for (size_t i = 0; i < n; i++)
            if (qs[i]->on_group) qs[i]->on_group(qs[i]->on_group_arg, atomic_load(&qs[i]->last_seq));
    }
    hdb_batch_free(batch);
    for (size_t i = 0; i < n; i++) queue_release(order[i]);
    hdb_free(order);
    return rc;
}
