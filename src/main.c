/*
 * main.c - hilbertd: parse the configuration, open the store, the catalog and the model spaces
 * on top of it, serve gRPC until SIGINT or SIGTERM, then shut down cleanly (calls in flight
 * finish, the store is closed). SIGHUP reloads the TLS certificate files. --hash-key and
 * --new-key run the API-key tool instead (hdb_auth.h); --restore restores a backup into the
 * data dir and exits (hdb_backup.h); --health-probe ADDR checks another server's health and
 * exits (hdb_probe.h).
 *
 * Exit codes: 0 after a clean shutdown, --help/--version or a restore, 2 for a bad command line
 * or config or a failed restore, 1 when startup fails (store, catalog, model spaces, listen address).
 * --health-probe: 0 when the server answers SERVING, 1 otherwise.
 */
#include "hdb_auth.h"
#include "hdb_backup.h"
#include "hdb_catalog.h"
#include "hdb_config.h"
#include "hdb_distance.h"
#include "hdb_err.h"
#include "hdb_faiss.h"
#include "hdb_metrics.h"
#include "hdb_hnsw.h"
#include "hdb_probe.h"
#include "hdb_infer.h"
#include "hdb_log.h"
#include "hdb_mem.h"
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
static volatile sig_atomic_t reload_pending; /* SIGHUP: posts stop_sem too, main reloads TLS */

static void on_stop_signal(int sig) {
    if (sig == SIGHUP)
        reload_pending = 1;
    else
        stop_signal = sig;
    sem_post(&stop_sem); /* async-signal-safe */
}

/* SIGHUP: the TLS files again. A failed reload keeps the certificates served so far. */
static void reload_tls(hdb_server *server) {
    char err[1024];
    int rc = hdb_server_reload_tls(server, err, sizeof err);
    if (rc == HDB_OK)
        HDB_INFO("main", "SIGHUP: reloaded the TLS certificate files");
    else if (rc == HDB_EPRECOND)
        HDB_INFO("main", "SIGHUP: nothing to reload (%s)", err);
    else
        HDB_ERROR("main", "SIGHUP: TLS reload failed, still serving the previous certificates: %s",
                  err);
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
    if (action == HDB_CONFIG_HASH_KEY || action == HDB_CONFIG_NEW_KEY) {
        rc = hdb_auth_key_tool(action == HDB_CONFIG_NEW_KEY, cfg.key_tool_role, stdin, stdout,
                               err, sizeof err);
        hdb_config_free(&cfg);
        if (rc != HDB_OK) fprintf(stderr, "hilbertd: %s\n", err);
        return rc == HDB_OK ? 0 : 2;
    }
    if (action == HDB_CONFIG_HEALTH_PROBE) {
        rc = hdb_probe_health(cfg.probe_addr, 3000, stdout);
        hdb_config_free(&cfg);
        return rc;
    }
    if (action == HDB_CONFIG_RESTORE) {
        rc = hdb_backup_restore(cfg.restore_from, cfg.data_dir, stdout, err, sizeof err);
        if (rc != HDB_OK) fprintf(stderr, "hilbertd: restore failed: %s\n", err);
        hdb_config_free(&cfg);
        return rc == HDB_OK ? 0 : 2;
    }
    hdb_log_set_level(cfg.log_level);
    retain_freed_memory(cfg.retain_freed_bytes);
    hdb_mem_set_retain(cfg.retain_freed_bytes);

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
    sigaction(SIGHUP, &sa, NULL);
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGHUP);
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
    hdb_catalog_start_trimming(catalog); /* every timeline's followers have subscribed */
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
    hdb_spaces_start_background(spaces, infer); /* re-embedding workers */
    int port = 0;
    if ((rc = hdb_server_start(&server, &cfg, catalog, spaces, infer, &port, err,
                               sizeof err)) != HDB_OK) {
        HDB_ERROR("main", "%s", err);
        goto out;
    }
    const char *colon = strrchr(cfg.listen, ':');
    int hostlen = colon ? (int)(colon - cfg.listen) : (int)strlen(cfg.listen);
    if (!hdb_config_listen_is_loopback(cfg.listen) &&
        (cfg.tls_cert_file[0] == '\0' || cfg.n_api_keys == 0))
        HDB_WARN("main",
                 "INSECURE: serving %s to other machines without %s%s%s, because "
                 "server.allow_insecure is true; configure tls: and auth.keys for real use",
                 cfg.listen, cfg.tls_cert_file[0] == '\0' ? "TLS" : "",
                 cfg.tls_cert_file[0] == '\0' && cfg.n_api_keys == 0 ? " and " : "",
                 cfg.n_api_keys == 0 ? "API keys" : "");
    HDB_INFO("main", "hilbertd ready, listening on %.*s:%d", hostlen, cfg.listen, port);
    if (strcmp(cfg.metrics_listen, "off") != 0) {
        hdb_metrics_sources ms = {.metrics = hdb_server_metrics(server),
                                  .catalog = catalog,
                                  .infer = infer,
                                  .store = store,
                                  .spaces = spaces};
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
    for (;;) {
        while (sem_wait(&stop_sem) != 0 && errno == EINTR) {
        }
        if (stop_signal != 0) break;
        if (reload_pending) {
            reload_pending = 0;
            reload_tls(server);
        }
    }
    HDB_INFO("main", "%s received, shutting down (grace %d ms)",
             stop_signal == SIGINT ? "SIGINT" : "SIGTERM", cfg.shutdown_grace_ms);
    /* Calls that wait on an index (min_seq, a lagging index) answer UNAVAILABLE now rather than
     * hold the drain up; the others finish within the grace. */
    hdb_catalog_interrupt_waits(catalog);
    hdb_spaces_stop_background(spaces); /* writes waiting for a re-embedding end too */
    hdb_metrics_http_stop(metrics);
    metrics = NULL;
    hdb_server_stop(server);
    server = NULL;
    exit_code = 0;
out:
    hdb_metrics_http_stop(metrics);
    hdb_server_stop(server);
    hdb_spaces_stop_background(spaces);
    hdb_infer_free(infer);
    hdb_spaces_close(spaces);
    hdb_catalog_close(catalog);
    hdb_store_close(store);
    grpc_shutdown();
    if (exit_code == 0) HDB_INFO("main", "stopped cleanly");
    hdb_config_free(&cfg);
    return exit_code;
}
