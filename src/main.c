/*
 * main.c - hilbertd: parse the configuration, open the store, the catalog and the model spaces
 * on top of it, serve gRPC until SIGINT or SIGTERM, then shut down cleanly (calls in flight
 * finish, the store is closed).
 *
 * Exit codes: 0 after a clean shutdown or --help/--version, 2 for a bad command line or config,
 * 1 when startup fails (store, catalog, model spaces, listen address).
 */
#include "hdb_catalog.h"
#include "hdb_config.h"
#include "hdb_distance.h"
#include "hdb_err.h"
#include "hdb_faiss.h"
#include "hdb_metrics.h"
#include "hdb_hnsw.h"
#include "hdb_infer.h"
#include "hdb_log.h"
#include "hdb_server.h"
#include "hdb_space.h"
#include "hdb_store.h"
#include "hdb_torch.h"

#include <cblas.h>
#include <errno.h>
#include <grpc/grpc.h>
#include <limits.h>
#include <malloc.h>
#include <pthread.h>
#include <semaphore.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

/* SIGINT and SIGTERM post stop_sem. Our own threads block both, but a library may have started
 * threads before main (OpenBLAS starts its pool from a constructor), and the kernel may hand a
 * process-wide signal to any thread that does not block it. With a handler, wherever the signal
 * lands it only posts the semaphore; without one, it would kill the process in the middle of
 * its shutdown. A second signal during the shutdown is therefore ignored (the grace period
 * bounds the wait). */
static sem_t stop_sem;
static volatile sig_atomic_t stop_signal;

static void on_stop_signal(int sig) {
    stop_signal = sig;
    sem_post(&stop_sem); /* async-signal-safe */
}

/* Lets malloc keep up to `bytes` of freed memory for reuse (server.retain_freed_bytes): batched
 * calls allocate and free tens of MiB each, and without this glibc hands that memory back to the
 * kernel after every call, so the next call pays a page fault per 4 KiB. Chunks up to 32 MiB
 * (glibc's largest mmap threshold) then come from the heap. 0 keeps glibc's adaptive default. */
static void retain_freed_memory(size_t bytes) {
    if (bytes == 0) return;
    if (bytes > INT_MAX) bytes = INT_MAX;
    if (!mallopt(M_MMAP_THRESHOLD, 32 << 20) || !mallopt(M_TRIM_THRESHOLD, (int)bytes))
        HDB_INFO("main", "this malloc (a sanitizer's?) ignores server.retain_freed_bytes");
}

/* Joins data_dir and "db". */
static void db_path(const char *data_dir, char *out, size_t cap) {
    size_t n = strlen(data_dir);
    while (n > 1 && data_dir[n - 1] == '/') n--;
    snprintf(out, cap, "%.*s/db", (int)n, data_dir);
}

int main(int argc, char **argv) {
    int exit_code = 1;
    char err[1024];
    hdb_config cfg;
    hdb_config_action action;
    hdb_store *store = NULL;
    hdb_catalog *catalog = NULL;
    hdb_space_registry *spaces = NULL;
    hdb_infer *infer = NULL;
    hdb_server *server = NULL;
    hdb_metrics_http *metrics = NULL;

    hdb_config_init(&cfg);
    int rc = hdb_config_from_args(&cfg, argc, argv, stdout, &action, err, sizeof err);
    if (rc != HDB_OK) {
        fprintf(stderr, "hilbertd: %s\nTry 'hilbertd --help'.\n", err);
        hdb_config_free(&cfg);
        return 2;
    }
    if (action == HDB_CONFIG_EXIT) {
        hdb_config_free(&cfg);
        return 0;
    }
    hdb_log_set_level(cfg.log_level);
    retain_freed_memory(cfg.retain_freed_bytes);

    /* Every thread started from here on inherits a mask that blocks SIGINT and SIGTERM, so they
     * never interrupt a worker; main unblocks them once the server runs. */
    sem_init(&stop_sem, 0, 0);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);

    HDB_INFO("main", "%s starting (data dir %s, %d threads, kernels %s)", hdb_version_string(),
             cfg.data_dir, cfg.threads, (hdb_distance_init(), hdb_distance_isa()));
    openblas_set_num_threads(cfg.blas_threads);
    hdb_faiss_set_threads(cfg.faiss_threads);
    hdb_hnsw_set_build_threads(cfg.build_threads);
    hdb_faiss_set_build_threads(cfg.build_threads);
    hdb_torch_set_threads(cfg.torch_intra_threads, cfg.torch_inter_threads);
    grpc_init();

    char path[4096], ballast[4200];
    db_path(cfg.data_dir, path, sizeof path);
    snprintf(ballast, sizeof ballast, "%.*s/ballast", (int)(strlen(path) - 3), path);
    hdb_store_options so = {.path = path,
                            .sync = cfg.sync,
                            .block_cache_bytes = cfg.block_cache_bytes,
                            .write_buffer_bytes = cfg.write_buffer_bytes,
                            .min_free_bytes = cfg.min_free_bytes,
                            .ballast_path = ballast,
                            .ballast_bytes = cfg.ballast_bytes};
    if ((rc = hdb_store_open(&store, &so, err, sizeof err)) != HDB_OK) {
        HDB_ERROR("main", "storage: %s", err);
        goto out;
    }
    if ((rc = hdb_catalog_open(&catalog, store, &cfg, err, sizeof err)) != HDB_OK) {
        HDB_ERROR("main", "%s", err);
        goto out;
    }
    /* Model spaces live on top of the catalog: opened after it, closed before it. */
    if ((rc = hdb_spaces_open(&spaces, catalog, &cfg, err, sizeof err)) != HDB_OK) {
        HDB_ERROR("main", "%s", err);
        goto out;
    }
    if ((rc = hdb_catalog_ensure(catalog, &cfg, err, sizeof err)) != HDB_OK ||
        (rc = hdb_spaces_ensure(spaces, &cfg, err, sizeof err)) != HDB_OK) {
        HDB_ERROR("main", "config: %s", err);
        exit_code = 2;
        goto out;
    }
    if ((rc = hdb_infer_create(&infer, cfg.inference_threads, cfg.max_batch, cfg.max_wait_us, err,
                               sizeof err)) != HDB_OK) {
        HDB_ERROR("main", "%s", err);
        goto out;
    }
    int port = 0;
    if ((rc = hdb_server_start(&server, &cfg, catalog, spaces, infer, &port, err,
                               sizeof err)) != HDB_OK) {
        HDB_ERROR("main", "%s", err);
        goto out;
    }
    const char *colon = strrchr(cfg.listen, ':');
    int hostlen = colon ? (int)(colon - cfg.listen) : (int)strlen(cfg.listen);
    HDB_INFO("main", "hilbertd ready, listening on %.*s:%d", hostlen, cfg.listen, port);
    if (strcmp(cfg.metrics_listen, "off") != 0) {
        hdb_metrics_sources ms = {.metrics = hdb_server_metrics(server),
                                  .catalog = catalog,
                                  .infer = infer,
                                  .store = store};
        int mport;
        if ((rc = hdb_metrics_http_start(&metrics, cfg.metrics_listen, &ms, &mport, err,
                                         sizeof err)) != HDB_OK) {
            HDB_ERROR("main", "%s", err);
            goto out;
        }
        colon = strrchr(cfg.metrics_listen, ':');
        HDB_INFO("main", "metrics served at http://%.*s:%d/metrics",
                 (int)(colon - cfg.metrics_listen), cfg.metrics_listen, mport);
    }

    pthread_sigmask(SIG_UNBLOCK, &sigs, NULL);
    while (sem_wait(&stop_sem) != 0 && errno == EINTR) {
    }
    HDB_INFO("main", "%s received, shutting down (grace %d ms)",
             stop_signal == SIGINT ? "SIGINT" : "SIGTERM", cfg.shutdown_grace_ms);
    /* Calls that wait on an index (min_seq, a lagging index) answer UNAVAILABLE now rather than
     * hold the drain up; the others finish within the grace. */
    hdb_catalog_interrupt_waits(catalog);
    hdb_metrics_http_stop(metrics);
    metrics = NULL;
    hdb_server_stop(server);
    server = NULL;
    exit_code = 0;
out:
    hdb_metrics_http_stop(metrics);
    hdb_server_stop(server);
    hdb_infer_free(infer);
    hdb_spaces_close(spaces);
    hdb_catalog_close(catalog);
    hdb_store_close(store);
    grpc_shutdown();
    if (exit_code == 0) HDB_INFO("main", "stopped cleanly");
    hdb_config_free(&cfg);
    return exit_code;
}
