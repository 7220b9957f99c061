/*
 * hdb_metrics.c - the call counters and the /metrics endpoint (see hdb_metrics.h).
 *
 * Counters are plain relaxed atomics, one array per method: calls by status code, and a
 * latency histogram with fixed buckets plus its sum in nanoseconds. A scrape formats them and
 * reads everything else fresh; it allocates its page with open_memstream and hands it to
 * libmicrohttpd, which frees it.
 */
#include "hdb_metrics.h"

#include "hdb_applier.h"
#include "hdb_arena.h"
#include "hdb_catalog.h"
#include "hdb_err.h"
#include "hdb_infer.h"
#include "hdb_log.h"
#include "hdb_mem.h"
#include "hdb_space.h"
#include "hdb_store.h"
#include "hdb_torch.h"

#include <arpa/inet.h>
#include <malloc.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define NCODES 17 /* gRPC status codes 0..16 */

static const double bucket_s[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                  0.1,    0.25,  0.5,    1,     2.5,  5,     10};
#define NBUCKETS (sizeof bucket_s / sizeof bucket_s[0])

typedef struct {
    char *name;
    _Atomic uint64_t calls[NCODES];
    _Atomic uint64_t buckets[NBUCKETS]; /* not cumulative; the scrape sums them */
    _Atomic uint64_t count;
    _Atomic uint64_t sum_ns;
} method_counters;

struct hdb_metrics {
    method_counters *m;
    size_t n;
};

hdb_metrics *hdb_metrics_create(const char *const *names, size_t n) {
    hdb_metrics *m = hdb_calloc(1, sizeof *m);
    m->m = hdb_calloc(n ? n : 1, sizeof *m->m);
    m->n = n;
    for (size_t i = 0; i < n; i++) m->m[i].name = hdb_strdup(names[i]);
    return m;
}

void hdb_metrics_free(hdb_metrics *m) {
    if (m == NULL) return;
    for (size_t i = 0; i < m->n; i++) hdb_free(m->m[i].name);
    hdb_free(m->m);
    hdb_free(m);
}

void hdb_metrics_observe(hdb_metrics *m, size_t i, int code, int64_t ns) {
    if (m == NULL || i >= m->n) return;
    method_counters *c = &m->m[i];
    if (code < 0 || code >= NCODES) code = 2; /* UNKNOWN */
    atomic_fetch_add_explicit(&c->calls[code], 1, memory_order_relaxed);
    if (ns < 0) ns = 0;
    double s = (double)ns / 1e9;
    size_t b = 0;
    while (b < NBUCKETS && s > bucket_s[b]) b++;
    if (b < NBUCKETS) atomic_fetch_add_explicit(&c->buckets[b], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&c->count, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&c->sum_ns, (uint64_t)ns, memory_order_relaxed);
}

/* ---------------------------------------------------------------- the page */

/* A label value in the text format: backslash, double quote and newline escaped. */
static void put_label(FILE *f, const char *v) {
    for (; *v; v++) {
        if (*v == '\\' || *v == '"') fputc('\\', f), fputc(*v, f);
        else if (*v == '\n') fputs("\\n", f);
        else fputc(*v, f);
    }
}

static void help(FILE *f, const char *name, const char *type, const char *text) {
    fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", name, text, name, type);
}

static void write_calls(FILE *f, const hdb_metrics *m) {
    help(f, "hilbert_rpc_calls_total", "counter", "gRPC calls finished, by method and status.");
    for (size_t i = 0; i < m->n; i++)
        for (int c = 0; c < NCODES; c++) {
            uint64_t v = atomic_load_explicit(&m->m[i].calls[c], memory_order_relaxed);
            if (v == 0 && c != 0) continue;
            fputs("hilbert_rpc_calls_total{method=\"", f);
            put_label(f, m->m[i].name);
            fprintf(f, "\",code=\"%s\"} %llu\n", hdb_status_name(c), (unsigned long long)v);
        }
    help(f, "hilbert_rpc_duration_seconds", "histogram",
         "Time from a call's arrival to its reply, by method.");
    for (size_t i = 0; i < m->n; i++) {
        const method_counters *c = &m->m[i];
        uint64_t count = atomic_load_explicit(&c->count, memory_order_relaxed);
        uint64_t cum = 0;
        for (size_t b = 0; b < NBUCKETS; b++) {
            cum += atomic_load_explicit(&c->buckets[b], memory_order_relaxed);
            if (cum > count) cum = count; /* read while moving: keep it monotonic */
            fputs("hilbert_rpc_duration_seconds_bucket{method=\"", f);
            put_label(f, c->name);
            fprintf(f, "\",le=\"%g\"} %llu\n", bucket_s[b], (unsigned long long)cum);
        }
        fputs("hilbert_rpc_duration_seconds_bucket{method=\"", f);
        put_label(f, c->name);
        fprintf(f, "\",le=\"+Inf\"} %llu\n", (unsigned long long)count);
        fputs("hilbert_rpc_duration_seconds_sum{method=\"", f);
        put_label(f, c->name);
        fprintf(f, "\"} %.9f\n",
                (double)atomic_load_explicit(&c->sum_ns, memory_order_relaxed) / 1e9);
        fputs("hilbert_rpc_duration_seconds_count{method=\"", f);
        put_label(f, c->name);
        fprintf(f, "\"} %llu\n", (unsigned long long)count);
    }
}

/* One gauge per index or source: name{label="value"} v. */
static void gauge_line(FILE *f, const char *name, const char *label, const char *value,
                       double v) {
    fprintf(f, "%s{%s=\"", name, label);
    put_label(f, value);
    fprintf(f, "\"} %.17g\n", v);
}

static void write_indices(FILE *f, hdb_catalog *cat) {
    hdb_arena *a = hdb_arena_create(0);
    hdb_ixent **ixs;
    size_t n = hdb_catalog_list_indices(cat, a, &ixs);
    hdb_ixent_status *st = hdb_arena_alloc(a, (n ? n : 1) * sizeof *st);
    for (size_t i = 0; i < n; i++) hdb_ixent_status_get(ixs[i], &st[i]);
    static const struct {
        const char *name, *type, *help;
    } g[] = {
        {"hilbert_index_ready", "gauge", "1 when the index serves searches (READY), else 0."},
        {"hilbert_index_failed", "gauge", "1 when the index has FAILED (see GetIndex detail)."},
        {"hilbert_index_lag_entries", "gauge", "Timeline entries not applied yet."},
        {"hilbert_index_lag_seconds", "gauge", "Age of the oldest entry not applied yet."},
        {"hilbert_index_lagging", "gauge", "1 when past index.max_lag_entries or max_lag_ms."},
        {"hilbert_index_applied_seq", "gauge", "Newest timeline seq the index has applied."},
        {"hilbert_index_snapshot_seq", "gauge", "Seq held by the newest snapshot on disk."},
        {"hilbert_index_timeline_entries", "gauge", "Timeline entries kept for the index."},
        {"hilbert_index_vector_bytes", "gauge",
         "Memory of the engines' vectors, as kept (float32, float16/int8 codes, ...)."},
        {"hilbert_index_engine_other_bytes", "gauge",
         "Memory of the engines' links, posting lists and label maps, approximately."},
        {"hilbert_index_attribute_bytes", "gauge", "Memory of the attribute indexes."},
    };
    hdb_engine_memory *mem = hdb_arena_alloc(a, (n ? n : 1) * sizeof *mem);
    uint64_t *attr = hdb_arena_alloc(a, (n ? n : 1) * sizeof *attr);
    for (size_t i = 0; i < n; i++) {
        hdb_index *index;
        mem[i] = (hdb_engine_memory){0, 0};
        attr[i] = 0;
        if (hdb_applier_index(hdb_ixent_applier(ixs[i]), &index, NULL, 0) != HDB_OK) continue;
        hdb_index_mem(index, &mem[i]);
        hdb_attrindex *ai = hdb_index_attrs(index);
        attr[i] = ai ? hdb_attrindex_bytes(ai) : 0;
    }
    for (size_t k = 0; k < sizeof g / sizeof g[0]; k++) {
        help(f, g[k].name, g[k].type, g[k].help);
        for (size_t i = 0; i < n; i++) {
            const hdb_ixent_status *s = &st[i];
            double v = 0;
            switch (k) {
            case 0: v = s->state == 1; break; /* HDB_INDEX_READY */
            case 1: v = s->state == 3; break; /* HDB_INDEX_FAILED */
            case 2: v = (double)s->lag_entries; break;
            case 3: v = s->lag_seconds; break;
            case 4: v = s->lagging; break;
            case 5: v = (double)s->applied_seq; break;
            case 6: v = (double)s->snapshot_seq; break;
            case 7: v = (double)s->retained_entries; break;
            case 8: v = (double)mem[i].vector_bytes; break;
            case 9: v = (double)mem[i].other_bytes; break;
            default: v = (double)attr[i]; break;
            }
            gauge_line(f, g[k].name, "index", hdb_ixent_label(ixs[i]), v);
        }
    }
    for (size_t i = 0; i < n; i++) hdb_ixent_unref(ixs[i]);
    hdb_arena_free(a);
}

static void write_sources(FILE *f, hdb_catalog *cat) {
    hdb_arena *a = hdb_arena_create(0);
    hdb_source **srcs;
    size_t n = hdb_catalog_list_sources(cat, a, &srcs);
    hdb_source_status *st = hdb_arena_alloc(a, (n ? n : 1) * sizeof *st);
    for (size_t i = 0; i < n; i++) hdb_source_status_get(srcs[i], &st[i]);
    static const struct {
        const char *name, *help;
        size_t off; /* of the uint64_t field in hdb_source_status */
    } g[] = {
        {"hilbert_source_points", "Live points of the data source.",
         offsetof(hdb_source_status, point_count)},
        {"hilbert_source_last_seq", "Newest durable timeline seq of the source.",
         offsetof(hdb_source_status, last_seq)},
        {"hilbert_source_timeline_bytes", "Approximate bytes its timeline keeps.",
         offsetof(hdb_source_status, timeline_bytes)},
    };
    for (size_t k = 0; k < sizeof g / sizeof g[0]; k++) {
        help(f, g[k].name, "gauge", g[k].help);
        for (size_t i = 0; i < n; i++) {
            uint64_t v;
            memcpy(&v, (const char *)&st[i] + g[k].off, sizeof v);
            gauge_line(f, g[k].name, "source", hdb_source_label(srcs[i]), (double)v);
        }
    }
    for (size_t i = 0; i < n; i++) hdb_source_unref(srcs[i]);
    hdb_arena_free(a);
}

static void write_store(FILE *f, hdb_store *store) {
    static const struct {
        const char *metric, *prop, *help;
        bool sum;
    } p[] = {
        {"hilbert_rocksdb_write_stopped", "rocksdb.is-write-stopped",
         "1 while RocksDB stops writes (too many memtables or level-0 files).", false},
        {"hilbert_rocksdb_delayed_write_rate_bytes", "rocksdb.actual-delayed-write-rate",
         "The rate RocksDB slows writes to (bytes/s); 0 when writes are not delayed.", false},
        {"hilbert_rocksdb_running_compactions", "rocksdb.num-running-compactions",
         "Compactions running now.", false},
        {"hilbert_rocksdb_running_flushes", "rocksdb.num-running-flushes",
         "Memtable flushes running now.", false},
        {"hilbert_rocksdb_pending_compaction_bytes", "rocksdb.estimate-pending-compaction-bytes",
         "Bytes compaction still has to rewrite, all column families.", true},
        {"hilbert_rocksdb_memtable_bytes", "rocksdb.cur-size-all-mem-tables",
         "Bytes in memtables, all column families.", true},
        {"hilbert_rocksdb_sst_bytes", "rocksdb.total-sst-files-size",
         "Bytes of table files, all column families.", true},
        {"hilbert_rocksdb_block_cache_bytes", "rocksdb.block-cache-usage",
         "Bytes in the block cache (one cache for every column family).", false},
        {"hilbert_rocksdb_table_readers_bytes", "rocksdb.estimate-table-readers-mem",
         "Bytes of open table files' index and filter blocks outside the block cache.", true},
    };
    for (size_t i = 0; i < sizeof p / sizeof p[0]; i++) {
        uint64_t v;
        if (!hdb_store_property(store, p[i].prop, p[i].sum, &v)) continue;
        help(f, p[i].metric, "gauge", p[i].help);
        fprintf(f, "%s %llu\n", p[i].metric, (unsigned long long)v);
    }
    hdb_store_space sp;
    hdb_store_space_get(store, &sp);
    help(f, "hilbert_disk_free_bytes", "gauge", "Free bytes on the disk under the database.");
    fprintf(f, "hilbert_disk_free_bytes %llu\n", (unsigned long long)sp.free_bytes);
    help(f, "hilbert_disk_min_free_bytes", "gauge", "The reserve writes leave free.");
    fprintf(f, "hilbert_disk_min_free_bytes %llu\n", (unsigned long long)sp.min_free_bytes);
    help(f, "hilbert_writes_accepted", "gauge", "0 while writes are refused for lack of space.");
    fprintf(f, "hilbert_writes_accepted %d\n", sp.writable ? 1 : 0);
}

/* The batch sizes of each model space's forward passes, as a histogram. */
static void write_models(FILE *f, hdb_space_registry *spaces) {
    if (spaces == NULL) return;
    hdb_arena *a = hdb_arena_create(0);
    hdb_space **list;
    size_t n = hdb_spaces_list(spaces, a, &list);
    help(f, "hilbert_inference_batch_size", "histogram",
         "Items per forward pass of each model space's model.");
    for (size_t i = 0; i < n; i++) {
        hdb_model_counts mc;
        hdb_model_counts_get(hdb_space_model(list[i]), &mc);
        const char *name = hdb_space_name(list[i]);
        unsigned long long cum = 0;
        for (int b = 0; b < HDB_MODEL_BATCH_BUCKETS - 1; b++) {
            cum += mc.batches[b];
            fprintf(f, "hilbert_inference_batch_size_bucket{model_space=\"%s\",le=\"%d\"} %llu\n",
                    name, 1 << b, cum);
        }
        fprintf(f, "hilbert_inference_batch_size_bucket{model_space=\"%s\",le=\"+Inf\"} %llu\n",
                name, (unsigned long long)mc.passes);
        fprintf(f, "hilbert_inference_batch_size_sum{model_space=\"%s\"} %llu\n", name,
                (unsigned long long)mc.items);
        fprintf(f, "hilbert_inference_batch_size_count{model_space=\"%s\"} %llu\n", name,
                (unsigned long long)mc.passes);
        hdb_space_unref(list[i]);
    }
    hdb_arena_free(a);
}

/* The resident memory split by kind (/proc/self/smaps_rollup): anonymous pages (heap, thread
 * stacks, the engines, RocksDB's memtables and cache) and file-backed ones (the binary, shared
 * libraries such as libtorch, mapped files); and what malloc holds in use and in all. */
static void write_rss_parts(FILE *f) {
    FILE *sm = fopen("/proc/self/smaps_rollup", "r");
    unsigned long long rss = 0, anon = 0;
    if (sm) {
        char line[256];
        unsigned long long kb;
        while (fgets(line, sizeof line, sm)) {
            if (sscanf(line, "Rss: %llu kB", &kb) == 1) rss = kb * 1024;
            else if (sscanf(line, "Anonymous: %llu kB", &kb) == 1) anon = kb * 1024;
        }
        fclose(sm);
        help(f, "hilbert_process_anon_bytes", "gauge",
             "Resident anonymous memory: heap, stacks, engines, RocksDB memtables and cache.");
        fprintf(f, "hilbert_process_anon_bytes %llu\n", anon);
        help(f, "hilbert_process_file_bytes", "gauge",
             "Resident file-backed memory: the binary, shared libraries, mapped files.");
        fprintf(f, "hilbert_process_file_bytes %llu\n", rss > anon ? rss - anon : 0);
    }
    /* A malloc other than glibc's (a sanitizer's, or one preloaded) leaves glibc's arenas empty:
     * then there is no figure to give, and a 0 would read as "no heap". */
    struct mallinfo2 mi = mallinfo2();
    if (mi.arena + mi.hblkhd == 0) return;
    help(f, "hilbert_heap_in_use_bytes", "gauge", "Bytes malloc has handed out and not freed.");
    fprintf(f, "hilbert_heap_in_use_bytes %llu\n",
            (unsigned long long)(mi.uordblks + mi.hblkhd));
    help(f, "hilbert_heap_bytes", "gauge", "Bytes malloc holds from the system, in use or free.");
    fprintf(f, "hilbert_heap_bytes %llu\n", (unsigned long long)(mi.arena + mi.hblkhd));
}

static void write_process(FILE *f, hdb_infer *infer) {
    if (infer) {
        hdb_infer_stats is;
        hdb_infer_stats_get(infer, &is);
        help(f, "hilbert_inference_passes_total", "counter", "Model forward passes run.");
        fprintf(f, "hilbert_inference_passes_total %llu\n", (unsigned long long)is.passes);
        help(f, "hilbert_inference_items_total", "counter",
             "Items those passes covered (items / passes: the mean batch).");
        fprintf(f, "hilbert_inference_items_total %llu\n", (unsigned long long)is.items);
        help(f, "hilbert_inference_requests_total", "counter", "Inference requests served.");
        fprintf(f, "hilbert_inference_requests_total %llu\n", (unsigned long long)is.requests);
        help(f, "hilbert_inference_queued_requests", "gauge",
             "Inference requests waiting for a forward pass now.");
        fprintf(f, "hilbert_inference_queued_requests %llu\n",
                (unsigned long long)is.queued_requests);
        help(f, "hilbert_inference_queued_items", "gauge",
             "Items of the requests waiting for a forward pass now.");
        fprintf(f, "hilbert_inference_queued_items %llu\n", (unsigned long long)is.queued_items);
    }
    FILE *sm = fopen("/proc/self/statm", "r");
    unsigned long long pages = 0, rss = 0;
    if (sm) {
        if (fscanf(sm, "%llu %llu", &pages, &rss) != 2) pages = rss = 0;
        fclose(sm);
    }
    long pg = sysconf(_SC_PAGESIZE);
    help(f, "process_resident_memory_bytes", "gauge", "Resident memory size in bytes.");
    fprintf(f, "process_resident_memory_bytes %llu\n", rss * (unsigned long long)pg);
    help(f, "process_virtual_memory_bytes", "gauge", "Virtual memory size in bytes.");
    fprintf(f, "process_virtual_memory_bytes %llu\n", pages * (unsigned long long)pg);
    write_rss_parts(f);
}

/* ---------------------------------------------------------------- HTTP */

struct hdb_metrics_http {
    struct MHD_Daemon *d;
    hdb_metrics_sources src;
};

static enum MHD_Result reply(struct MHD_Connection *conn, unsigned status, const char *text,
                             size_t len, bool owned, const char *type) {
    struct MHD_Response *r = MHD_create_response_from_buffer(
        len, (void *)text, owned ? MHD_RESPMEM_MUST_FREE : MHD_RESPMEM_PERSISTENT);
    if (r == NULL) {
        if (owned) free((void *)text);
        return MHD_NO;
    }
    MHD_add_response_header(r, "Content-Type", type);
    enum MHD_Result ok = MHD_queue_response(conn, status, r);
    MHD_destroy_response(r);
    return ok;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version,
                                  const char *upload_data, size_t *upload_data_size,
                                  void **con_cls) {
    (void)version;
    (void)upload_data;
    (void)con_cls;
    hdb_metrics_http *h = cls;
    if (*upload_data_size != 0) return MHD_NO; /* no request bodies */
    static const char text_plain[] = "text/plain; charset=utf-8";
    if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0) {
        static const char m[] = "only GET /metrics\n";
        return reply(conn, MHD_HTTP_METHOD_NOT_ALLOWED, m, sizeof m - 1, false, text_plain);
    }
    if (strcmp(url, "/metrics") != 0) {
        static const char m[] = "not found: the metrics are at /metrics\n";
        return reply(conn, MHD_HTTP_NOT_FOUND, m, sizeof m - 1, false, text_plain);
    }
    char *page = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&page, &len);
    if (f == NULL) return MHD_NO;
    write_calls(f, h->src.metrics);
    write_indices(f, h->src.catalog);
    write_sources(f, h->src.catalog);
    write_store(f, h->src.store);
    write_process(f, h->src.infer);
    write_models(f, h->src.spaces);
    if (fclose(f) != 0) {
        free(page);
        return MHD_NO;
    }
    return reply(conn, MHD_HTTP_OK, page, len, true, "text/plain; version=0.0.4; charset=utf-8");
}

/* Parses a loopback "host:port" into addr. */
static int parse_listen(const char *listen, struct sockaddr_storage *addr, char *err,
                        size_t errlen) {
    const char *colon = strrchr(listen, ':');
    if (colon == NULL)
        return hdb_errf(err, errlen, HDB_EINVAL, "metrics.listen: must be host:port, got \"%s\"",
                        listen);
    char *end;
    long port = strtol(colon + 1, &end, 10);
    if (*end != '\0' || colon[1] == '\0' || port < 0 || port > 65535)
        return hdb_errf(err, errlen, HDB_EINVAL, "metrics.listen: bad port in \"%s\"", listen);
    size_t hl = (size_t)(colon - listen);
    memset(addr, 0, sizeof *addr);
    if ((hl == 9 && strncmp(listen, "127.0.0.1", 9) == 0) ||
        (hl == 9 && strncmp(listen, "localhost", 9) == 0)) {
        struct sockaddr_in *a4 = (struct sockaddr_in *)addr;
        a4->sin_family = AF_INET;
        a4->sin_port = htons((uint16_t)port);
        a4->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        return HDB_OK;
    }
    if (hl == 5 && strncmp(listen, "[::1]", 5) == 0) {
        struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)addr;
        a6->sin6_family = AF_INET6;
        a6->sin6_port = htons((uint16_t)port);
        a6->sin6_addr = in6addr_loopback;
        return HDB_OK;
    }
    return hdb_errf(err, errlen, HDB_EINVAL,
                    "metrics.listen: \"%s\" is not a loopback address (127.0.0.1, localhost or "
                    "[::1]); the metrics endpoint has no TLS and no keys, so it is served on "
                    "this machine only",
                    listen);
}

int hdb_metrics_http_start(hdb_metrics_http **out, const char *listen,
                           const hdb_metrics_sources *src, int *port, char *err, size_t errlen) {
    struct sockaddr_storage addr;
    int rc = parse_listen(listen, &addr, err, errlen);
    if (rc != HDB_OK) return rc;
    hdb_metrics_http *h = hdb_calloc(1, sizeof *h);
    h->src = *src;
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD;
    if (addr.ss_family == AF_INET6) flags |= MHD_USE_IPv6;
    h->d = MHD_start_daemon(flags, 0, NULL, NULL, on_request, h, MHD_OPTION_SOCK_ADDR,
                            (struct sockaddr *)&addr, MHD_OPTION_CONNECTION_LIMIT, 16u,
                            MHD_OPTION_CONNECTION_TIMEOUT, 10u, MHD_OPTION_END);
    if (h->d == NULL) {
        hdb_free(h);
        return hdb_errf(err, errlen, HDB_EIO, "metrics.listen: cannot listen on %s", listen);
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(h->d, MHD_DAEMON_INFO_BIND_PORT);
    *port = info ? (int)info->port : 0;
    *out = h;
    return HDB_OK;
}

void hdb_metrics_http_stop(hdb_metrics_http *h) {
    if (h == NULL) return;
    MHD_stop_daemon(h->d);
    hdb_free(h);
}
