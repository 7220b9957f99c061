/*
 * hdb_clock.c - the monotonic clock.
 */
#include "hdb_clock.h"

#include "hdb_err.h"

int64_t hdb_mono_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

struct timespec hdb_mono_timespec(int64_t ns) {
    struct timespec ts = {ns / 1000000000, ns % 1000000000};
    return ts;
}

void hdb_mono_cond_init(pthread_cond_t *cv) {
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(cv, &ca);
    pthread_condattr_destroy(&ca);
}

bool hdb_stop_now(const hdb_stop *s) {
    if (s == NULL) return false;
    if (s->cancelled != NULL && s->cancelled(s->arg)) return true;
    return s->deadline_ns != 0 && s->deadline_ns != INT64_MAX && hdb_mono_ns() > s->deadline_ns;
}

int hdb_stop_check(const hdb_stop *s, const char *what, char *err, size_t errlen) {
    if (s == NULL) return HDB_OK;
    if (s->cancelled != NULL && s->cancelled(s->arg))
        return hdb_errf(err, errlen, HDB_ECANCELLED, "%s: the call was cancelled", what);
    if (s->deadline_ns != 0 && s->deadline_ns != INT64_MAX && hdb_mono_ns() > s->deadline_ns)
        return hdb_errf(err, errlen, HDB_ETIMEOUT, "%s: the call's deadline passed", what);
    return HDB_OK;
}
