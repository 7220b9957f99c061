/*
 * hdb_commit.h - the ordered group-commit queue of one data source.
 *
 * Every write to a data source is a job submitted here. Whichever submitting thread finds no
 * leader becomes the leader: it takes every queued job, lets each one add its writes to one
 * shared indexed batch (in arrival order, each at the next free seq), writes the batch once
 * (one fsync for the whole group when sync is on), then calls each accepted job's `applied`
 * hook in seq order and wakes the submitters. A job whose `prepare` fails is rolled back to its
 * save point and fails alone; the rest of its group is unaffected.
 *
 * So for one data source: seqs are dense and increasing, a job sees the effects of every job
 * before it (through hdb_batch_get), and `applied` hooks run one at a time in seq order. That is
 * what lets stateful validation (permanent attributes must not change) and index application
 * run without further locking.
 */
#ifndef HDB_COMMIT_H
#define HDB_COMMIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct hdb_store hdb_store;
typedef struct hdb_batch hdb_batch;
typedef struct hdb_commit hdb_commit;
typedef struct hdb_commit_job hdb_commit_job;

#define HDB_COMMIT_ERRLEN 512

struct hdb_commit_job {
    /* Adds the job's writes to batch, numbering its entries from first_seq, and stores how many
     * seqs it used in *nseq. Runs on the leader's thread with the queue held. Returns HDB_OK or
     * an error (with a message in err); on error its writes are rolled back. */
    int (*prepare)(hdb_commit_job *job, hdb_batch *batch, uint64_t first_seq, uint64_t *nseq,
                   char *err, size_t errlen);
    /* Called after the batch is durable, in seq order, on the leader's thread. May be NULL. */
    void (*applied)(hdb_commit_job *job);
    void *arg; /* for the callbacks */

    /* Filled in by the queue. */
    int rc;
    char err[HDB_COMMIT_ERRLEN];
    uint64_t first_seq, nseq;
    /* Private to the queue. */
    bool _done;
    hdb_commit_job *_next;
};

/* Called once after each durable group (and each hdb_commit_submit_all write), after the jobs'
 * applied hooks, on the leader's thread with the queue still held; last_seq is the newest seq
 * now durable. Must be quick: wake threads, do not wait for them. */
typedef void (*hdb_commit_group_fn)(void *arg, uint64_t last_seq);

/* Creates a queue writing to store, whose last used seq is last_seq. on_group (NULL allowed)
 * runs after every durable group. Free with hdb_commit_free (NULL allowed) once no thread uses
 * it. */
hdb_commit *hdb_commit_create(hdb_store *store, uint64_t last_seq, hdb_commit_group_fn on_group,
                              void *arg);
void hdb_commit_free(hdb_commit *q);

/* Submits job (caller-owned; it must stay valid until this returns) and blocks until it is
 * durable or has failed. Returns job->rc; job->first_seq and job->nseq give its seqs. */
int hdb_commit_submit(hdb_commit *q, hdb_commit_job *job);

/* Commits jobs[i] to queues qs[i] (distinct queues of one store) atomically: every job is
 * prepared into one batch, each at its queue's next seq, and the batch is written once. If any
 * prepare fails, nothing is written and every job fails (the failing one with its own error,
 * the others with HDB_EPRECOND "not written: ..."). applied hooks run after the write, in
 * array order. Queues are held in address order, so concurrent calls cannot deadlock. Returns
 * HDB_OK or the first error; err gets that job's message. */
int hdb_commit_submit_all(hdb_commit *const *qs, hdb_commit_job *const *jobs, size_t n,
                          char *err, size_t errlen);

/* Runs fn(arg) while no group is being committed and no other exclusive section runs; queued
 * jobs wait meanwhile. Returns fn's result. */
int hdb_commit_exclusive(hdb_commit *q, int (*fn)(void *arg), void *arg);

/* The last seq made durable. Safe from any thread. Every job's applied hook has run for seqs up
 * to it by the time hdb_commit_submit returns to that job's submitter, but a reader on another
 * thread may see it before the hooks of its group have run. */
uint64_t hdb_commit_last_seq(hdb_commit *q);

#ifdef __cplusplus
}
#endif

#endif /* HDB_COMMIT_H */
