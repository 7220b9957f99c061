/*
 * hdb_log.c - stderr logging with UTC millisecond timestamps and one write(2) per line.
 */
#include "hdb_log.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

static _Atomic int log_level = HDB_LOG_INFO;

void hdb_log_set_level(hdb_log_level level) {
    atomic_store_explicit(&log_level, (int)level, memory_order_relaxed);
}

hdb_log_level hdb_log_get_level(void) {
    return (hdb_log_level)atomic_load_explicit(&log_level, memory_order_relaxed);
}

int hdb_log_parse_level(const char *name, hdb_log_level *out) {
    static const struct {
        const char *name;
        hdb_log_level level;
    } names[] = {{"debug", HDB_LOG_DEBUG},  {"info", HDB_LOG_INFO},   {"warn", HDB_LOG_WARN},
                 {"warning", HDB_LOG_WARN}, {"error", HDB_LOG_ERROR}, {"off", HDB_LOG_OFF}};
    if (name == NULL) return -1;
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        if (strcasecmp(name, names[i].name) == 0) {
            *out = names[i].level;
            return 0;
        }
    }
    return -1;
}

static const char *level_name(hdb_log_level level) {
    switch (level) {
    case HDB_LOG_DEBUG: return "DEBUG";
    case HDB_LOG_INFO: return "INFO ";
    case HDB_LOG_WARN: return "WARN ";
    case HDB_LOG_ERROR: return "ERROR";
    default: return "?????";
    }
}

void hdb_log(hdb_log_level level, const char *component, const char *fmt, ...) {
    if ((int)level < atomic_load_explicit(&log_level, memory_order_relaxed)) return;
    char line[2048];
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    int n = snprintf(line, sizeof line, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %s [%s] ",
                     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
                     tm.tm_sec, ts.tv_nsec / 1000000L, level_name(level),
                     component ? component : "-");
    if (n < 0) return;
    size_t len = (size_t)n < sizeof line ? (size_t)n : sizeof line - 1;
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(line + len, sizeof line - len, fmt, ap);
    va_end(ap);
    if (m > 0) len += (size_t)m < sizeof line - len ? (size_t)m : sizeof line - len - 1;
    if (len >= sizeof line - 1) len = sizeof line - 2; /* leave room for the newline */
    line[len++] = '\n';
    ssize_t w = write(STDERR_FILENO, line, len);
    (void)w;
}

_Noreturn void hdb__assert_fail(const char *expr, const char *file, int line) {
    hdb_log(HDB_LOG_ERROR, "assert", "assertion failed: %s (%s:%d)", expr, file, line);
    abort();
}
