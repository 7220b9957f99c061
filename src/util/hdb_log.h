/*
 * hdb_log.h - leveled, timestamped logging to stderr, and the assertion macros.
 *
 * One line per message: "2026-11-21T10:00:00.123Z INFO  [store] opened /data (3 sources)".
 * The level is a process-wide setting, written once at startup (before threads start) and read
 * with relaxed atomics afterwards. Lines are written with a single write(2) so that lines from
 * different threads never interleave.
 */
#ifndef HDB_LOG_H
#define HDB_LOG_H

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
    HDB_LOG_DEBUG = 0,
    HDB_LOG_INFO = 1,
    HDB_LOG_WARN = 2,
    HDB_LOG_ERROR = 3,
    HDB_LOG_OFF = 4
} hdb_log_level;

/* Sets the minimum level that is printed. Thread-safe. */
void hdb_log_set_level(hdb_log_level level);

/* Returns the current minimum level. */
hdb_log_level hdb_log_get_level(void);

/* Parses "debug", "info", "warn", "error" or "off" (case-insensitive) into *out.
 * Returns 0 on success, -1 for an unknown name (and leaves *out untouched). */
int hdb_log_parse_level(const char *name, hdb_log_level *out);

/* Writes one log line when level is enabled. `component` is a short tag such as "store". */
void hdb_log(hdb_log_level level, const char *component, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Logs "assertion failed: expr (file:line)" at ERROR and aborts. Used by HDB_ASSERT. */
#ifdef __cplusplus
[[noreturn]] void hdb__assert_fail(const char *expr, const char *file, int line);
#else
_Noreturn void hdb__assert_fail(const char *expr, const char *file, int line);
#endif

#define HDB_DEBUG(comp, ...) hdb_log(HDB_LOG_DEBUG, comp, __VA_ARGS__)
#define HDB_INFO(comp, ...) hdb_log(HDB_LOG_INFO, comp, __VA_ARGS__)
#define HDB_WARN(comp, ...) hdb_log(HDB_LOG_WARN, comp, __VA_ARGS__)
#define HDB_ERROR(comp, ...) hdb_log(HDB_LOG_ERROR, comp, __VA_ARGS__)

/* HDB_ASSERT checks a programming invariant in every build type; it never guards client input. */
#define HDB_ASSERT(e) ((e) ? (void)0 : hdb__assert_fail(#e, __FILE__, __LINE__))

/* Defensive branches for conditions believed impossible: HDB_NEVER(x) is x, but the condition is
 * logged when it does happen, so the surprise is visible without crashing a production server. */
#define HDB_NEVER(e)                                                                               \
    ((e) ? (hdb_log(HDB_LOG_ERROR, "assert", "unexpected: %s (%s:%d)", #e, __FILE__, __LINE__), 1) \
         : 0)
#define HDB_ALWAYS(e) (!HDB_NEVER(!(e)))

#ifdef __cplusplus
}
#endif

#endif /* HDB_LOG_H */
