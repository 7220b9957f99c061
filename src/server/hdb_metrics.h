/*
 * hdb_metrics.h - Prometheus metrics: per-method call counters and latency histograms, kept by
 * the gRPC server, and an HTTP endpoint (libmicrohttpd, GET /metrics, text format 0.0.4) that
 * adds what it reads at each scrape: every index's state, size and lag, every data source's
 * points and timeline, the inference pool's counters, RocksDB's compaction and write-stall
 * figures, the disk guard and the process's memory.
 *
 * The endpoint listens on loopback only (metrics.listen): with no TLS and no keys in front of
 * it, it must not be reachable from other machines.
 *
 * Thread-safety: hdb_metrics_observe may be called from any thread at any time (relaxed
 * atomics); the HTTP thread reads the counters while they move, so one scrape's figures are
 * each exact but not one instant's. Start and stop from one thread.
 */
#ifndef HDB_METRICS_H
#define HDB_METRICS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct hdb_catalog hdb_catalog;
typedef struct hdb_infer hdb_infer;
typedef struct hdb_metrics hdb_metrics;
typedef struct hdb_metrics_http hdb_metrics_http;
typedef struct hdb_store hdb_store;
typedef struct hdb_space_registry hdb_space_registry;

/* Counters for n methods named "service/method" (copied). Free with hdb_metrics_free. */
hdb_metrics *hdb_metrics_create(const char *const *names, size_t n);
void hdb_metrics_free(hdb_metrics *m);

/* Records one finished call of method i (< n) with gRPC status code (0..16) after ns. */
void hdb_metrics_observe(hdb_metrics *m, size_t i, int code, int64_t ns);

/* What a scrape reads besides the counters; all borrowed, and must outlive the endpoint. */
typedef struct {
    hdb_metrics *metrics;
    hdb_catalog *catalog;
    hdb_infer *infer; /* may be NULL */
    hdb_store *store;
    hdb_space_registry *spaces; /* may be NULL: per-model figures */
} hdb_metrics_sources;

/* Starts the endpoint on listen ("host:port", host 127.0.0.1, localhost or [::1]; port 0 picks
 * a free one, reported in *port). HDB_EINVAL for a non-loopback host, HDB_EIO when it cannot
 * bind. Stop with hdb_metrics_http_stop (NULL allowed). */
int hdb_metrics_http_start(hdb_metrics_http **out, const char *listen,
                           const hdb_metrics_sources *src, int *port, char *err, size_t errlen);
void hdb_metrics_http_stop(hdb_metrics_http *h);

#ifdef __cplusplus
}
#endif

#endif /* HDB_METRICS_H */
