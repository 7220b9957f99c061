/*
 * hdb_clock.c - the monotonic clock.
 */
#include "hdb_clock.h"

int64_t hdb_mono_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

struct timespec hdb_mono_timespec(int64_t ns) {
    struct timespec ts = {ns / 1000000000, ns % 1000000000};
    return ts;
}
