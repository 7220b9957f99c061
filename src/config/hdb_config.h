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

/* What a caller may do. A call needs a role (each method's, in the server's method tables); an
 * API key has one (auth.keys[].role), and a key may call every method that needs its role or a
 * lower one: read < write < admin. HDB_ROLE_UNSET is never valid in a method table (the server
 * asserts it), so a method added without a role cannot be open by mistake. */
typedef enum {
    HDB_ROLE_UNSET = 0,
    HDB_ROLE_OPEN = 1,  /* no key needed (Health) */
    HDB_ROLE_READ = 2,  /* searches, gets, status and catalog reads */
    HDB_ROLE_WRITE = 3, /* plus uploads, deletes, images and tensors */
    HDB_ROLE_ADMIN = 4  /* plus catalog changes */
} hdb_role;

/* One configured API key (auth.keys[i]); strings owned by the config's arena. */
typedef struct {
    char *name; /* for logs and messages; unique */
    hdb_role role;
    char *hash; /* "sha256:<salt hex>:<sha256(salt || key) hex>"; checked by the loader */
} hdb_config_api_key;

typedef struct hdb_config {
    /* server: */
    char *listen;                     /* "host:port"; default "127.0.0.1:50051" */
    int poll_threads;                 /* threads that take calls, answer cheap ones; default 2 */
    int threads;                      /* the work pool: searches; default 4 */
    int write_threads;                /* the write pool: uploads, catalog changes; default 4 */
    size_t max_receive_message_bytes; /* default 64 MiB */
    size_t max_send_message_bytes;    /* default 64 MiB */
    int shutdown_grace_ms;            /* in-flight calls get this long on SIGTERM; default 10000 */
    size_t retain_freed_bytes;        /* freed heap kept for reuse (malloc); default 256 MiB */
    bool allow_insecure; /* serve a non-loopback listen without TLS and keys; default false */

    /* tls: (empty strings: not set) */
    char *tls_cert_file;      /* PEM server certificate chain; empty: no TLS (default) */
    char *tls_key_file;       /* PEM private key of that certificate */
    char *tls_client_ca_file; /* PEM CAs that sign client certificates (mTLS) */
    char *tls_client_auth;    /* "none" (default), "request" or "require" */

    /* auth: */
    size_t n_api_keys; /* 0: no authentication (default) */
    hdb_config_api_key *api_keys;
    hdb_role key_tool_role; /* the ROLE of --hash-key/--new-key; not a config key */
    char *restore_from;     /* the DIR of --restore; not a config key */
    char *probe_addr;       /* the ADDR of --health-probe; not a config key */

    /* log: */
    hdb_log_level log_level; /* default info */

    /* storage: */
    char *data_dir;           /* default "./data" */
    bool sync;                /* fsync the WAL per write batch (group commit); default true */
    size_t block_cache_bytes; /* RocksDB block cache; default 256 MiB */
    size_t write_buffer_bytes; /* RocksDB memtable size per column family; default 64 MiB */
    size_t min_free_bytes;     /* writes are refused below this much free disk; default 256 MiB */
    size_t ballast_bytes;      /* size of the <data_dir>/ballast reserve file; default 64 MiB */
    char *backup_dir;          /* Admin.Backup paths must lie under it; "": anywhere (default) */

    /* limits: */
    uint32_t max_dimension;         /* largest dense dimension; default 65536 */
    uint32_t max_points_per_upload; /* points per Upload and ids per Get; default 10000 */
    uint32_t max_scan_points;       /* stored points one Scroll call reads; default 1000000 */
    uint32_t max_points_per_delete; /* points one DeleteByFilter may delete; default 1000000 */
    uint32_t max_query_vectors;     /* query vectors per Search; default 10000 */
    uint32_t max_k;                 /* largest k; default 10000 */
    uint32_t max_results;           /* query vectors x k in one Search; default 1000000 */
    uint32_t max_attributes;        /* attributes per point (and permanent per source); default 64 */
    uint32_t max_value_bytes;       /* bytes in one string or bytes value; default 65536 */
    uint32_t max_ef_search;         /* largest per-request ef_search override; default 10000 */
    uint32_t max_nprobe;            /* largest per-request nprobe override; default 65536 */
    size_t max_call_memory_bytes;   /* working memory one call may take (estimated); 1 GiB */
    uint32_t max_indices;           /* indices per server (model spaces' included); 1000 */

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
    int applier_threads;                /* the appliers' worker pool; 0: all cores */

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

/* Outcome of hdb_config_from_args besides errors. HASH_KEY and NEW_KEY: the command line asked
 * for the key tool (--hash-key ROLE, --new-key ROLE), with the role in c->key_tool_role; the
 * caller (main) runs it and exits. HEALTH_PROBE: --health-probe ADDR, with the address in
 * c->probe_addr (no config file is read); main checks that server's health and exits. */
typedef enum {
    HDB_CONFIG_RUN = 0,
    HDB_CONFIG_EXIT = 1,
    HDB_CONFIG_HASH_KEY = 2,
    HDB_CONFIG_NEW_KEY = 3,
    /* --restore DIR: c->restore_from into c->data_dir, then exit */
    HDB_CONFIG_RESTORE = 4,
    /* --health-probe ADDR: one health check of c->probe_addr, then exit */
    HDB_CONFIG_HEALTH_PROBE = 5
} hdb_config_action;

/* The role names of the config: "read", "write", "admin" ("open" and "unset" for the others).
 * Returns a static string. Any thread. */
const char *hdb_role_name(hdb_role r);

/* Parses "read", "write" or "admin" (exactly). Returns HDB_OK or HDB_EINVAL. */
int hdb_role_parse(const char *s, hdb_role *out);

/* Parses an auth.keys[].hash, "sha256:<salt hex>:<64 hex digits>", where the salt is 8..64 bytes
 * (16..128 hex digits, either case). salt (room for 64 bytes) receives the salt and *saltlen its
 * length, digest (32 bytes) the hash; both may be NULL to only check. Returns HDB_OK, or
 * HDB_EINVAL with the reason (without the key) in msg. Any thread. */
int hdb_config_parse_key_hash(const char *s, unsigned char *salt, size_t *saltlen,
                              unsigned char *digest, char *msg, size_t msglen);

/* True when a listen address can only be reached from this machine: 127.x.x.x, localhost,
 * [::1], unix:PATH or unix-abstract:NAME. 0.0.0.0, [::] and every other host are not. */
bool hdb_config_listen_is_loopback(const char *listen);

/* Builds the configuration from argv: defaults, then the file named by --config (if any), then
 * the other flags (--listen --data-dir --threads --log-level). --help and --version print to out
 * and set *action to HDB_CONFIG_EXIT. Returns HDB_OK or HDB_EINVAL/HDB_EIO with a message that
 * names the flag or key. c must have been initialised with hdb_config_init. */
int hdb_config_from_args(hdb_config *c, int argc, char **argv, FILE *out,
                         hdb_config_action *action, char *err, size_t errlen);

/* Checks cross-field constraints (e.g. threads >= 1, a non-empty listen address; tls.cert_file
 * and tls.key_file together, client_auth with client_ca_file; a non-loopback listen only with
 * TLS and API keys, or server.allow_insecure). Called by hdb_config_from_args; exposed for
 * tests. */
int hdb_config_validate(const hdb_config *c, char *err, size_t errlen);

/* The version string printed by --version, e.g. "hilbertd 0.1.0". */
const char *hdb_version_string(void);

#ifdef __cplusplus
}
#endif

#endif /* HDB_CONFIG_H */
