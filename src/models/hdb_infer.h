/*
 * hdb_infer.h - the inference pool: its own threads run model forward passes, batching the
 * concurrent requests for one model into one pass.
 *
 * A request waits in its model's queue. A free pool thread takes a model's queue at once when
 * no forward pass of that model is running (a lone request pays no batching delay); while one
 * runs, requests pile up, and the queue is taken when it holds max_batch items or its oldest
 * request has waited max_wait_us. The thread concatenates the waiting requests (up to
 * max_batch items; a larger request runs alone), runs one forward pass and hands each request
 * its rows. Queues of different models are served oldest first, so one
 * busy model delays another by at most the passes already running.
 *
 * The pool keeps the model threads apart from the gRPC workers that serve searches and
 * uploads: model calls are served by their own RPC threads, and a slow model only makes those
 * wait.
 */
#ifndef HDB_INFER_H
#define HDB_INFER_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct hdb_infer hdb_infer;
typedef struct hdb_model hdb_model;

/* Starts `threads` pool threads. Free with hdb_infer_free. */
int hdb_infer_create(hdb_infer **out, int threads, uint32_t max_batch, uint32_t max_wait_us,
                     char *err, size_t errlen);

/* Stops the threads; requests still queued fail with HDB_EUNAVAIL. NULL is allowed. */
void hdb_infer_free(hdb_infer *p);

/* Runs model m on n items (n x hdb_model_input_size(m) floats, caller-owned, read until this
 * returns) and writes n x hdb_model_output_dim(m) floats to out. Blocks until done. m must stay
 * alive until this returns. deadline_ns (CLOCK_MONOTONIC, INT64_MAX for none) bounds the time
 * spent waiting in the queue: a request not started by then fails with HDB_ETIMEOUT. */
int hdb_infer_run(hdb_infer *p, hdb_model *m, const float *in, size_t n, float *out,
                  int64_t deadline_ns, char *err, size_t errlen);

/* One forward request of hdb_infer_run_jobs: model m on n items read from `in` (n x
 * hdb_model_input_size(m) floats), written to `out` (n x hdb_model_output_dim(m) floats). The
 * caller owns every pointer; they must stay valid until hdb_infer_run_jobs returns. */
typedef struct {
    hdb_model *model;
    const float *in;
    size_t n;
    float *out;
} hdb_infer_job;
/* Queues every job at once, so that jobs of different models run in parallel on the pool's
 * threads, and returns when all are finished (a job that has started always runs to the end,
 * even after another failed). deadline_ns bounds each job's wait in the queue as in
 * hdb_infer_run. Returns HDB_OK, or the error of the first failed job in array order, whose
 * index goes to *failed (when failed is not NULL); outputs of the other jobs are then
 * unspecified. */
int hdb_infer_run_jobs(hdb_infer *p, const hdb_infer_job *jobs, size_t njobs, int64_t deadline_ns,
                       size_t *failed, char *err, size_t errlen);
typedef struct {
    uint64_t passes;   /* forward passes run */
    uint64_t items;    /* items they covered */
    uint64_t requests; /* requests served */
    uint64_t queued_requests, queued_items; /* waiting for a pass now */
} hdb_infer_stats;

/* Counters since creation (batching efficiency = items / passes). */
void hdb_infer_stats_get(hdb_infer *p, hdb_infer_stats *st);

#ifdef __cplusplus
}
#endif

#endif /* HDB_INFER_H */
