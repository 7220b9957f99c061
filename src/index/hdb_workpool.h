/*
 * hdb_workpool.h - a fixed set of worker threads that run many owners' work items, so that the
 * number of threads does not grow with the number of owners (one applier per index uses it,
 * hdb_applier.h).
 *
 * A work item (hdb_work) is a struct the owner embeds in its own object: a run function that
 * does one bounded piece of work and returns. The owner submits it when there is something to
 * do; a submitted item is queued (once, however often it is submitted) and a worker runs it;
 * an item that is submitted while it runs runs again afterwards, queued behind every item
 * queued meanwhile. An item that wants to go on after one piece submits itself from its run
 * and so goes to the back of the queue: one owner with a long backlog shares the workers
 * fairly with the others. An item never runs on two workers at once.
 *
 * Timers: hdb_workpool_submit_at queues an item at a given time (the workers' waits time out
 * for it; there is no timer thread).
 *
 * Heavy items. Some pieces of work cannot be cut short (loading or saving a snapshot of a big
 * index). An item submitted as heavy runs with one of the pool's heavy slots: there are
 * threads - 1 of them (1 with a single thread), so with two threads or more one worker is
 * always left to the light items, and many indices loading or saving at once never hold up
 * the others' small steps. With one thread a heavy item holds it for its duration.
 *
 * Thread-safety: every function may be called from any thread, run functions included, except
 * as noted (hdb_workpool_free by the owner of the pool, after every item was cancelled).
 */
#ifndef HDB_WORKPOOL_H
#define HDB_WORKPOOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct hdb_workpool hdb_workpool;
typedef struct hdb_work hdb_work;

/* Does one piece of the owner's work on a worker thread and returns. heavy: this run holds a
 * heavy slot (it was submitted as heavy); a run that finds it needs one and was not given one
 * submits itself as heavy and returns. */
typedef void (*hdb_work_fn)(hdb_work *w, bool heavy);

/* One owner's work item. Initialise with hdb_work_init; the fields after arg belong to the
 * pool. It must stay valid and unmoved from the first submit until hdb_workpool_cancel
 * returned. */
struct hdb_work {
    hdb_work_fn run;
    void *arg;
    int _state;                 /* idle, queued, timed, running */
    bool _heavy;                /* queued as heavy */
    bool _again, _again_heavy;  /* submitted while running */
    bool _dead;                 /* cancelled: submits are ignored */
    int64_t _due, _again_due;   /* timers (CLOCK_MONOTONIC ns; 0: none) */
    hdb_work *_prev, *_next;    /* in the queue or the timer list */
};

/* Creates a pool of threads workers (at least 1; 0 means the online cores). `name` prefixes
 * the threads' names (at most 10 characters are used). HDB_EINTERNAL when a thread cannot be
 * started. Free with hdb_workpool_free. */
int hdb_workpool_create(hdb_workpool **out, int threads, const char *name, char *err,
                        size_t errlen);

/* The number of worker threads. */
int hdb_workpool_threads(const hdb_workpool *p);

/* Sets up w to call run(w, heavy) with w->arg = arg. Not while w is in a pool. */
void hdb_work_init(hdb_work *w, hdb_work_fn run, void *arg);

/* Queues w to run as soon as a worker is free (heavy: with a heavy slot). Queued already: it
 * runs once (heavy if either asked for it). Running: it runs again afterwards, at the back of
 * the queue. Timed: it runs now instead. Cancelled: nothing. Cheap and never blocks beyond the
 * pool's lock: a timeline's commit notification may call it. */
void hdb_workpool_submit(hdb_workpool *p, hdb_work *w, bool heavy);

/* Queues w (light) at due_ns (hdb_mono_ns's clock) unless it is queued or due earlier already;
 * running: once it returns. Cancelled: nothing. */
void hdb_workpool_submit_at(hdb_workpool *p, hdb_work *w, int64_t due_ns);

/* Takes w out of the pool for good: a queued or timed w will not run, a running w is waited
 * for, and later submits are ignored. Never from w's own run (it would wait for itself). */
void hdb_workpool_cancel(hdb_workpool *p, hdb_work *w);

/* Stops the workers (each finishes the run it is in) and releases the pool. Items still queued
 * do not run; their owners must not submit them again. NULL is allowed. */
void hdb_workpool_free(hdb_workpool *p);

#ifdef __cplusplus
}
#endif

#endif /* HDB_WORKPOOL_H */
