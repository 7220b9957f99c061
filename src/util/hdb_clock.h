/*
 * hdb_clock.h - the monotonic clock that deadlines and waits are measured on.
 */
#ifndef HDB_CLOCK_H
#define HDB_CLOCK_H

#include <stdint.h>
#include <time.h>

#ifdef __cplusplus
extern "C" {
#endif

/* CLOCK_MONOTONIC in nanoseconds. Thread-safe; owns nothing. Deadlines (hdb_rpc.deadline_ns,
 * hdb_query_params.deadline_ns) are on this clock. */
int64_t hdb_mono_ns(void);

/* The instant ns (on hdb_mono_ns's clock) as a timespec, for pthread_cond_timedwait on a
 * condition variable created with pthread_condattr_setclock(CLOCK_MONOTONIC). */
struct timespec hdb_mono_timespec(int64_t ns);

#ifdef __cplusplus
}
#endif

#endif
