/*
 * hdb_clock.h - the monotonic clock that deadlines and waits are measured on, and the stop
 * condition (deadline or cancellation) that long work checks between its steps.
 */
#ifndef HDB_CLOCK_H
#define HDB_CLOCK_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#ifdef __cplusplus
extern "C" {
#endif

/* CLOCK_MONOTONIC in nanoseconds. Thread-safe; owns nothing. Deadlines (hdb_rpc.deadline_ns,
 * hdb_query_params.deadline_ns) are on this clock. */
int64_t hdb_mono_ns(void);

/* The instant ns (on hdb_mono_ns's clock) as a timespec, for pthread_cond_timedwait on a
 * condition variable made by hdb_mono_cond_init. */
struct timespec hdb_mono_timespec(int64_t ns);

/* Initialises cv (the caller's, destroyed by it with pthread_cond_destroy) so that its timed
 * waits run on hdb_mono_ns's clock. Any thread. */
void hdb_mono_cond_init(pthread_cond_t *cv);

/* When a piece of work must give up: its deadline passed, or its caller went away. Long
 * loops (many query vectors, long scans) check it between steps with hdb_stop_now. A zeroed
 * or NULL hdb_stop never stops. */
typedef struct {
    int64_t deadline_ns; /* on hdb_mono_ns's clock; 0 or INT64_MAX: none */
    /* True once the caller is gone (e.g. a cancelled gRPC call); NULL: never. Must be cheap
     * and callable from any thread while the work runs. */
    bool (*cancelled)(const void *arg);
    const void *arg;
} hdb_stop;

/* True when s's deadline has passed or its caller cancelled. s may be NULL. Any thread. */
bool hdb_stop_now(const hdb_stop *s);

/* HDB_OK while s has not stopped; else HDB_ECANCELLED (the caller went away) or HDB_ETIMEOUT
 * (the deadline passed), with a message in err saying which, during `what` (e.g. "search").
 * s may be NULL. Any thread. */
int hdb_stop_check(const hdb_stop *s, const char *what, char *err, size_t errlen);

#ifdef __cplusplus
}
#endif

#endif
