/*
 * hdb_config.h - the server configuration: built-in defaults, the YAML file, and command-line
 * flags, applied in that order (flags win).
 *
 * Every key is documented in config/hilbertd.yaml. Data sources and indices declared in the file
 * are kept as protobuf-c messages (the same types the Catalog API takes), so that "ensure at
 * start" goes through exactly the validation that CreateDataSource and CreateIndex use.
 */
#ifndef HDB_CONFIG_H
#define HDB_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "hdb_log.h"
#include "hilbert/v1/catalog.pb-c.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct hdb_arena hdb_arena;

typedef struct hdb_config {
    /* server: */
    char *listen;                     /* "host:port"; default "127.0.0.1:50051" */
    int threads;                      /* threads that handle (non-model) calls; default 4 */
    size_t max_receive_message_bytes; /* default 64 MiB */
    size_t max_send_message_bytes;    /* default 64 MiB */
    int shutdown_grace_ms;            /* in-flight calls get this long on SIGTERM; default 10000 */
    size_t retain_freed_bytes;        /* freed heap kept for reuse (malloc); default 256 MiB */

    /* log: */
    hdb_log_level log_level; /* default info */

    /* storage: */
    char *data_dir;           /* default "./data" */
    bool sync;                /* fsync the WAL per write batch (group commit); default true */
    size_t block_cache_bytes; /* RocksDB block cache; default 256 MiB */
    size_t write_buffer_bytes; /* RocksDB memtable size per column family; default 64 MiB */
    size_t min_free_bytes;     /* writes are refused below this much free disk; default 256 MiB */
    size_t ballast_bytes;      /* size of the <data_dir>/ballast reserve file; default 64 MiB */

    /* limits: */
    uint32_t max_dimension;         /* largest dense dimension; default 65536 */
    uint32_t max_points_per_upload; /* points per Upload and ids per Get; default 10000 */
    uint32_t max_query_vectors;     /* query vectors per Search; default 10000 */
    uint32_t max_k;                 /* largest k; default 10000 */
    uint32_t max_results;           /* query vectors x k in one Search; default 1000000 */
    uint32_t max_attributes;        /* attributes per point (and permanent per source); default 64 */
    uint32_t max_value_bytes;       /* bytes in one string or bytes value; default 65536 */

    uint32_t max_wait_ms;           /* longest min_seq wait of a Search; default 30000 */

    /* search: */
    int blas_threads;  /* OpenBLAS threads used by one exact search; default 1 */
    int faiss_threads; /* OpenMP threads FAISS uses (process-wide); default 1 */

    /* index: */
    uint32_t snapshot_interval_seconds; /* periodic snapshots at most this often; 0: never */
    uint32_t snapshot_min_entries;      /* ...and only after this many new entries */
    uint32_t snapshot_every_entries;    /* ...or whenever this many were applied; 0: never */
    uint32_t snapshot_every_apply_seconds; /* ...or after this much applying; 0: never */
    uint32_t apply_batch;               /* timeline entries an applier applies per step */
    uint32_t max_lag_entries;           /* a READY index this far behind is lagging; 0: no bound */
    uint32_t max_lag_ms;                /* ...or whose oldest unapplied entry is this old */
    char *lag_mode;                     /* "backpressure" (uploads wait) or "fall_behind" */
    int build_threads;                  /* threads inserting new HNSW points; 0: all cores */

    /* metrics: */
    char *metrics_listen; /* loopback host:port of the Prometheus endpoint, or "off" */

    /* models: */
    char *models_dir;            /* where relative model paths are found; default "./models" */
    int model_rpc_threads;       /* threads serving ModelSpaces calls; default 8 */
    int inference_threads;       /* threads running model forward passes; default 2 */
    int torch_intra_threads;     /* libtorch intra-op threads; default 1 */
    int torch_inter_threads;     /* libtorch inter-op threads; default 1 */
    uint32_t max_batch;          /* most items in one forward pass; default 32 */
    uint32_t max_wait_us;        /* how long a forward pass waits to fill a batch; default 2000 */
    size_t max_image_bytes;      /* default 8 MiB */
    uint32_t max_image_side;     /* default 8192 */
    uint32_t max_image_pixels;   /* default 40000000 */
    uint32_t min_image_side;     /* default 8 */

    /* Declared catalog objects, ensured at start. Owned by `arena`. */
    size_t n_data_sources;
    Hilbert__V1__DataSourceSpec **data_sources;
    size_t n_indices;
    Hilbert__V1__IndexSpec **indices;
    size_t n_model_spaces;
    Hilbert__V1__ModelSpaceSpec **model_spaces;

    /* Owns every string and message above. */
    hdb_arena *arena;
} hdb_config;

/* Fills c with the built-in defaults and creates its arena. Release with hdb_config_free. */
void hdb_config_init(hdb_config *c);

/* Releases everything c owns (the arena and what came from it). c itself is not freed. */
void hdb_config_free(hdb_config *c);

/* Reads a YAML file and overlays its keys onto c. Unknown keys, wrong types and out-of-range
 * values are errors that name the key and the line, e.g. "config.yaml:12: limits.max_k: must be
 * between 1 and 1000000". Returns HDB_OK, HDB_EINVAL, or HDB_EIO when the file cannot be read. */
int hdb_config_load_file(hdb_config *c, const char *path, char *err, size_t errlen);

/* Outcome of hdb_config_from_args besides errors. */
typedef enum { HDB_CONFIG_RUN = 0, HDB_CONFIG_EXIT = 1 } hdb_config_action;

/* Builds the configuration from argv: defaults, then the file named by --config (if any), then
 * the other flags (--listen --data-dir --threads --log-level). --help and --version print to out
 * and set *action to HDB_CONFIG_EXIT. Returns HDB_OK or HDB_EINVAL/HDB_EIO with a message that
 * names the flag or key. c must have been initialised with hdb_config_init. */
int hdb_config_from_args(hdb_config *c, int argc, char **argv, FILE *out,
                         hdb_config_action *action, char *err, size_t errlen);

/* Checks cross-field constraints (e.g. threads >= 1, a non-empty listen address). Called by
 * hdb_config_from_args; exposed for tests. */
int hdb_config_validate(const hdb_config *c, char *err, size_t errlen);

/* The version string printed by --version, e.g. "hilbertd 0.1.0". */
const char *hdb_version_string(void);

#ifdef __cplusplus
}
#endif

#endif /* HDB_CONFIG_H */
