/*
 * test_config.c - unit tests of the configuration module (hdb_config.c): defaults, the YAML
 * file with every key, byte-size suffixes, each kind of error (with its key and line), declared
 * data sources, indices and model spaces as protobuf-c messages (and the schemas behind them
 * against the descriptors), command-line flags, and the shipped config/hilbertd.yaml.
 *
 * Each test gets a fresh temporary directory under $HDB_TEST_TMP (or /tmp), removed afterwards.
 */
#include "hdb_config.h"

#include "hdb_config_int.h" /* hdb__config_check_specs */
#include "hdb_arena.h"
#include "hdb_err.h"

#include <errno.h>
#include <ftw.h>
#include <limits.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <setjmp.h>
#include <cmocka.h>

#define MIB ((size_t)1 << 20)
#define GIB ((size_t)1 << 30)

typedef struct {
    char dir[PATH_MAX];
    char path[PATH_MAX]; /* the file written last */
    hdb_config cfg;
    char err[1024];
} fixture;

static int setup(void **state) {
    fixture *fx = calloc(1, sizeof *fx);
    const char *base = getenv("HDB_TEST_TMP");
    if (fx == NULL) return -1;
    if (base == NULL || base[0] == '\0') base = "/tmp";
    if (mkdir(base, 0700) != 0 && errno != EEXIST) return -1;
    snprintf(fx->dir, sizeof fx->dir, "%s/test_config.XXXXXX", base);
    if (mkdtemp(fx->dir) == NULL) return -1;
    hdb_config_init(&fx->cfg);
    *state = fx;
    return 0;
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static int teardown(void **state) {
    fixture *fx = *state;
    hdb_config_free(&fx->cfg);
    nftw(fx->dir, remove_entry, 8, FTW_DEPTH | FTW_PHYS);
    free(fx);
    return 0;
}

/* Writes text to <dir>/<name> and leaves the path in fx->path. */
static const char *write_file(fixture *fx, const char *name, const char *text) {
    int n = snprintf(fx->path, sizeof fx->path, "%s/%s", fx->dir, name);
    assert_true(n > 0 && (size_t)n < sizeof fx->path);
    FILE *f = fopen(fx->path, "w");
    assert_non_null(f);
    assert_int_equal(fputs(text, f) >= 0, 1);
    assert_int_equal(fclose(f), 0);
    return fx->path;
}

/* Writes text to x.yaml and loads it into fx->cfg. */
static int load_text(fixture *fx, const char *text) {
    fx->err[0] = '\0';
    return hdb_config_load_file(&fx->cfg, write_file(fx, "x.yaml", text), fx->err, sizeof fx->err);
}

static void assert_contains(const char *haystack, const char *needle) {
    if (strstr(haystack, needle) == NULL)
        fail_msg("expected \"%s\" to contain \"%s\"", haystack, needle);
}

/* Asserts that every field equals the built-in default. */
static void assert_defaults(const hdb_config *c) {
    assert_string_equal(c->listen, "127.0.0.1:50051");
    assert_int_equal(c->threads, 4);
    assert_int_equal(c->max_receive_message_bytes, 64 * MIB);
    assert_int_equal(c->max_send_message_bytes, 64 * MIB);
    assert_int_equal(c->shutdown_grace_ms, 10000);
    assert_int_equal(c->retain_freed_bytes, 256 * MIB);
    assert_int_equal(c->log_level, HDB_LOG_INFO);
    assert_string_equal(c->data_dir, "./data");
    assert_true(c->sync);
    assert_int_equal(c->max_lag_entries, 100000);
    assert_int_equal(c->max_lag_ms, 5000);
    assert_string_equal(c->lag_mode, "backpressure");
    assert_int_equal(c->applier_threads, 0);
    assert_int_equal(c->block_cache_bytes, 256 * MIB);
    assert_int_equal(c->write_buffer_bytes, 64 * MIB);
    assert_int_equal(c->min_free_bytes, 256 * MIB);
    assert_int_equal(c->ballast_bytes, 64 * MIB);
    assert_int_equal(c->max_dimension, 65536);
    assert_int_equal(c->max_points_per_upload, 10000);
    assert_int_equal(c->max_scan_points, 1000000);
    assert_int_equal(c->max_points_per_delete, 1000000);
    assert_int_equal(c->max_query_vectors, 10000);
    assert_int_equal(c->max_k, 10000);
    assert_int_equal(c->max_results, 1000000);
    assert_int_equal(c->max_attributes, 64);
    assert_int_equal(c->max_value_bytes, 65536);
    assert_int_equal(c->max_ef_search, 10000);
    assert_int_equal(c->max_nprobe, 65536);
    assert_int_equal(c->max_call_memory_bytes, GIB);
    assert_int_equal(c->max_indices, 1000);
    assert_int_equal(c->blas_threads, 1);
    assert_int_equal(c->n_data_sources, 0);
    assert_int_equal(c->n_indices, 0);
    assert_false(c->allow_insecure);
    assert_string_equal(c->tls_cert_file, "");
    assert_string_equal(c->backup_dir, "");
    assert_string_equal(c->tls_key_file, "");
    assert_string_equal(c->tls_client_ca_file, "");
    assert_string_equal(c->tls_client_auth, "none");
    assert_int_equal(c->n_api_keys, 0);
}

/* ---- defaults and a full file ------------------------------------------------------------- */

static void test_defaults(void **state) {
    fixture *fx = *state;
    assert_non_null(fx->cfg.arena);
    assert_defaults(&fx->cfg);
    assert_int_equal(hdb_config_validate(&fx->cfg, fx->err, sizeof fx->err), HDB_OK);
}

static void test_free_twice_and_null(void **state) {
    (void)state;
    hdb_config c;
    hdb_config_init(&c);
    hdb_config_free(&c);
    hdb_config_free(&c); /* a freed config is zeroed, so this is a no-op */
    hdb_config_free(NULL);
}

#define HASH64 "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

static const char full_yaml[] = "# every key, none at its default\n"
                                "server:\n"
                                "  listen: 0.0.0.0:6000\n"
                                "  threads: 16\n"
                                "  max_receive_message_bytes: 128MiB\n"
                                "  max_send_message_bytes: 32MiB\n"
                                "  shutdown_grace_ms: 2500\n"
                                "  retain_freed_bytes: 0\n"
                                "  allow_insecure: true\n"
                                "log:\n"
                                "  level: debug\n"
                                "storage:\n"
                                "  data_dir: /var/lib/hilbertdb\n"
                                "  sync: no\n"
                                "  block_cache_bytes: 1GiB\n"
                                "  write_buffer_bytes: 16MiB\n"
                                "  min_free_bytes: 1GiB\n"
                                "  ballast_bytes: 0\n"
                                "  backup_dir: /srv/backups\n"
                                "limits:\n"
                                "  max_dimension: 4096\n"
                                "  max_points_per_upload: 500\n"
                                "  max_query_vectors: 200\n"
                                "  max_k: 1000\n"
                                "  max_results: 5000\n"
                                "  max_attributes: 16\n"
                                "  max_value_bytes: 1024\n"
                                "search:\n"
                                "  blas_threads: 2\n"
                                "tls:\n"
                                "  cert_file: /etc/hdb/server.pem\n"
                                "  key_file: /etc/hdb/server.key\n"
                                "  client_ca_file: /etc/hdb/ca.pem\n"
                                "  client_auth: require\n"
                                "auth:\n"
                                "  keys:\n"
                                "    - {name: ro, role: read, hash: \"sha256:00112233445566778899"
                                "aabbccddeeff:" HASH64 "\"}\n"
                                "    - name: ops\n"
                                "      role: admin\n"
                                "      hash: sha256:FFEEDDCCBBAA99887766554433221100:" HASH64 "\n"
                                "data_sources: []\n"
                                "indices: []\n";

static void test_full_file(void **state) {
    fixture *fx = *state;
    hdb_config *c = &fx->cfg;
    assert_int_equal(load_text(fx, full_yaml), HDB_OK);
    assert_string_equal(c->listen, "0.0.0.0:6000");
    assert_int_equal(c->threads, 16);
    assert_int_equal(c->max_receive_message_bytes, 128 * MIB);
    assert_int_equal(c->max_send_message_bytes, 32 * MIB);
    assert_int_equal(c->shutdown_grace_ms, 2500);
    assert_int_equal(c->retain_freed_bytes, 0);
    assert_int_equal(c->log_level, HDB_LOG_DEBUG);
    assert_string_equal(c->data_dir, "/var/lib/hilbertdb");
    assert_false(c->sync);
    assert_int_equal(c->block_cache_bytes, GIB);
    assert_int_equal(c->write_buffer_bytes, 16 * MIB);
    assert_int_equal(c->min_free_bytes, GIB);
    assert_int_equal(c->ballast_bytes, 0);
    assert_string_equal(c->backup_dir, "/srv/backups");
    assert_int_equal(c->max_dimension, 4096);
    assert_int_equal(c->max_points_per_upload, 500);
    assert_int_equal(c->max_query_vectors, 200);
    assert_int_equal(c->max_k, 1000);
    assert_int_equal(c->max_results, 5000);
    assert_int_equal(c->max_attributes, 16);
    assert_int_equal(c->max_value_bytes, 1024);
    assert_int_equal(c->blas_threads, 2);
    assert_int_equal(c->n_data_sources, 0);
    assert_int_equal(c->n_indices, 0);
    assert_true(c->allow_insecure);
    assert_string_equal(c->tls_cert_file, "/etc/hdb/server.pem");
    assert_string_equal(c->tls_key_file, "/etc/hdb/server.key");
    assert_string_equal(c->tls_client_ca_file, "/etc/hdb/ca.pem");
    assert_string_equal(c->tls_client_auth, "require");
    assert_int_equal(c->n_api_keys, 2);
    assert_string_equal(c->api_keys[0].name, "ro");
    assert_int_equal(c->api_keys[0].role, HDB_ROLE_READ);
    assert_string_equal(c->api_keys[1].name, "ops");
    assert_int_equal(c->api_keys[1].role, HDB_ROLE_ADMIN);
    assert_int_equal(hdb_config_validate(c, fx->err, sizeof fx->err), HDB_OK);
    /* TLS and keys both configured: a non-loopback listen is fine without allow_insecure. */
    c->allow_insecure = false;
    assert_int_equal(hdb_config_validate(c, fx->err, sizeof fx->err), HDB_OK);
}

static void test_partial_file_keeps_defaults(void **state) {
    fixture *fx = *state;
    assert_int_equal(load_text(fx, "limits:\n  max_k: 7\n"), HDB_OK);
    assert_int_equal(fx->cfg.max_k, 7);
    fx->cfg.max_k = 10000;
    assert_defaults(&fx->cfg);
}

static void test_empty_and_comment_only_files(void **state) {
    fixture *fx = *state;
    assert_int_equal(load_text(fx, ""), HDB_OK);
    assert_defaults(&fx->cfg);
    assert_int_equal(load_text(fx, "# nothing here\n\n   # still nothing\n"), HDB_OK);
    assert_defaults(&fx->cfg);
    assert_int_equal(load_text(fx, "---\n...\n"), HDB_OK);
    assert_defaults(&fx->cfg);
    /* An empty section or list is the same as leaving it out. */
    assert_int_equal(load_text(fx, "server:\nlimits: ~\ndata_sources:\nindices: null\n"), HDB_OK);
    assert_defaults(&fx->cfg);
}

static void test_size_suffixes(void **state) {
    fixture *fx = *state;
    hdb_config *c = &fx->cfg;
    assert_int_equal(load_text(fx, "server:\n"
                                   "  max_receive_message_bytes: 1024\n"
                                   "  max_send_message_bytes: \"512 KiB\"\n"
                                   "storage:\n"
                                   "  block_cache_bytes: 1TiB\n"
                                   "  write_buffer_bytes: 2GiB\n"
                                   "limits:\n"
                                   "  max_value_bytes: 100B\n"),
                     HDB_OK);
    assert_int_equal(c->max_receive_message_bytes, 1024);
    assert_int_equal(c->max_send_message_bytes, 512 * 1024);
    assert_int_equal(c->block_cache_bytes, (size_t)1 << 40);
    assert_int_equal(c->write_buffer_bytes, 2 * GIB);
    assert_int_equal(c->max_value_bytes, 100);

    assert_int_equal(load_text(fx, "server:\n  max_receive_message_bytes: 2147483647\n"
                                   "limits:\n  max_value_bytes: 64MiB\n"),
                     HDB_OK);
    assert_int_equal(c->max_receive_message_bytes, 2147483647);
    assert_int_equal(c->max_value_bytes, 64 * MIB);
}

/* The free-space guard and its ballast file: byte sizes like the other *_bytes keys, down to 0
 * (off) and up to 1TiB and 64GiB. */
static void test_free_space_keys(void **state) {
    fixture *fx = *state;
    hdb_config *c = &fx->cfg;
    assert_int_equal(c->min_free_bytes, 256 * MIB);
    assert_int_equal(c->ballast_bytes, 64 * MIB);
    assert_int_equal(load_text(fx, "storage:\n  min_free_bytes: 32MiB\n  ballast_bytes: 32MiB\n"),
                     HDB_OK);
    assert_int_equal(c->min_free_bytes, 32 * MIB);
    assert_int_equal(c->ballast_bytes, 32 * MIB);
    assert_int_equal(
        load_text(fx, "storage:\n  min_free_bytes: \"512 KiB\"\n  ballast_bytes: 4096\n"), HDB_OK);
    assert_int_equal(c->min_free_bytes, 512 * 1024);
    assert_int_equal(c->ballast_bytes, 4096);
    assert_int_equal(load_text(fx, "storage:\n  min_free_bytes: 0\n  ballast_bytes: 0B\n"), HDB_OK);
    assert_int_equal(c->min_free_bytes, 0);
    assert_int_equal(c->ballast_bytes, 0);
    assert_int_equal(load_text(fx, "storage:\n  min_free_bytes: 1TiB\n  ballast_bytes: 64GiB\n"),
                     HDB_OK);
    assert_int_equal(c->min_free_bytes, (size_t)1 << 40);
    assert_int_equal(c->ballast_bytes, 64 * GIB);
    assert_int_equal(hdb_config_validate(c, fx->err, sizeof fx->err), HDB_OK);

    c->ballast_bytes = 64 * GIB + 1;
    assert_int_equal(hdb_config_validate(c, fx->err, sizeof fx->err), HDB_EINVAL);
    assert_contains(fx->err, "storage.ballast_bytes: must be a byte size between 0 and 64GiB");
    c->ballast_bytes = 64 * MIB;
    c->min_free_bytes = ((size_t)1 << 40) + 1;
    assert_int_equal(hdb_config_validate(c, fx->err, sizeof fx->err), HDB_EINVAL);
    assert_contains(fx->err, "storage.min_free_bytes: must be a byte size between 0 and 1TiB");
}

static void test_booleans(void **state) {
    fixture *fx = *state;
    static const struct {
        const char *text;
        bool value;
    } cases[] = {{"true", true}, {"false", false}, {"yes", true},
                 {"no", false},  {"True", true},   {"NO", false}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char yaml[64];
        snprintf(yaml, sizeof yaml, "storage:\n  sync: %s\n", cases[i].text);
        assert_int_equal(load_text(fx, yaml), HDB_OK);
        assert_int_equal(fx->cfg.sync, cases[i].value);
    }
}

static void test_listen_forms(void **state) {
    fixture *fx = *state;
    static const char *const ok[] = {"127.0.0.1:0", "localhost:50051", "\"[::1]:50051\"",
                                     "0.0.0.0:65535", "unix:/tmp/hilbertd.sock"};
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        char yaml[128];
        snprintf(yaml, sizeof yaml, "server:\n  listen: %s\n", ok[i]);
        if (load_text(fx, yaml) != HDB_OK) fail_msg("%s: %s", ok[i], fx->err);
    }
    assert_string_equal(fx->cfg.listen, "unix:/tmp/hilbertd.sock");
}

/* ---- errors ------------------------------------------------------------------------------- */

typedef struct {
    const char *yaml;
    int rc;
    const char *want[3]; /* substrings of the message, besides the file name */
} error_case;

static void run_error_cases(fixture *fx, const error_case *cases, size_t n) {
    for (size_t i = 0; i < n; i++) {
        hdb_config_free(&fx->cfg);
        hdb_config_init(&fx->cfg);
        int rc = load_text(fx, cases[i].yaml);
        if (rc != cases[i].rc)
            fail_msg("case %zu: rc %d, want %d (%s)\n%s", i, rc, cases[i].rc, fx->err,
                     cases[i].yaml);
        assert_contains(fx->err, fx->path);
        for (size_t j = 0; j < 3 && cases[i].want[j] != NULL; j++)
            assert_contains(fx->err, cases[i].want[j]);
        /* A rejected file changes nothing. */
        assert_defaults(&fx->cfg);
    }
}

static void test_unknown_keys(void **state) {
    static const error_case cases[] = {
        {"server:\n  listen: 127.0.0.1:1\n  thread: 4\n",
         HDB_EINVAL,
         {"x.yaml:3: server.thread: unknown key", "threads"}},
        {"\nserverr:\n  threads: 4\n",
         HDB_EINVAL,
         {"x.yaml:2: serverr: unknown key", "data_sources"}},
        {"limits:\n  max_k: 5\n  maxk: 5\n", HDB_EINVAL, {"x.yaml:3: limits.maxk: unknown key"}},
        {"search:\n  blas: 1\n", HDB_EINVAL, {"x.yaml:2: search.blas: unknown key"}},
        {"storage:\n  rocksdb_cache: 1MiB\n",
         HDB_EINVAL,
         {"x.yaml:2: storage.rocksdb_cache: unknown key", "block_cache_bytes"}},
    };
    run_error_cases(*state, cases, sizeof cases / sizeof cases[0]);
}

static void test_wrong_types(void **state) {
    static const error_case cases[] = {
        {"limits:\n  max_k: [1, 2]\n",
         HDB_EINVAL,
         {"x.yaml:2: limits.max_k: must be an integer between 1 and 1000000", "not a list"}},
        {"limits:\n  max_k: ten\n",
         HDB_EINVAL,
         {"x.yaml:2: limits.max_k: must be an integer", "\"ten\""}},
        {"server:\n  threads: \"4\"\n",
         HDB_EINVAL,
         {"x.yaml:2: server.threads: must be an integer", "quoted"}},
        {"server:\n  threads: 2.5\n", HDB_EINVAL, {"x.yaml:2: server.threads: must be an integer"}},
        {"server:\n  threads:\n", HDB_EINVAL, {"x.yaml:2: server.threads:", "null"}},
        {"server:\n  listen: {host: a}\n",
         HDB_EINVAL,
         {"x.yaml:2: server.listen: must be a non-empty string", "mapping"}},
        {"server:\n  listen: \"\"\n", HDB_EINVAL, {"x.yaml:2: server.listen: must be"}},
        {"storage:\n  data_dir: [a]\n", HDB_EINVAL, {"x.yaml:2: storage.data_dir", "list"}},
        {"server: 5\n", HDB_EINVAL, {"x.yaml:1: server: must be a mapping"}},
        {"limits:\n  - max_k\n", HDB_EINVAL, {"x.yaml:2: limits: must be a mapping", "list"}},
        {"hello\n", HDB_EINVAL, {"x.yaml:1: the top level must be a mapping"}},
        {"data_sources: {name: a}\n", HDB_EINVAL, {"x.yaml:1: data_sources: must be a list"}},
        {"indices: 3\n", HDB_EINVAL, {"x.yaml:1: indices: must be a list"}},
        {"log:\n  level: loud\n",
         HDB_EINVAL,
         {"x.yaml:2: log.level: must be one of debug, info, warn, error, off", "loud"}},
        {"[a, b]\n", HDB_EINVAL, {"x.yaml:1:", "top level"}},
        {"server:\n  ? [a]\n  : 1\n", HDB_EINVAL, {"x.yaml:2: server: keys must be plain names"}},
    };
    run_error_cases(*state, cases, sizeof cases / sizeof cases[0]);
}

static void test_out_of_range(void **state) {
    static const error_case cases[] = {
        {"\n\nlimits:\n  max_k: 1000001\n",
         HDB_EINVAL,
         {"x.yaml:4: limits.max_k: must be an integer between 1 and 1000000", "1000001"}},
        {"limits:\n  max_k: 0\n", HDB_EINVAL, {"x.yaml:2: limits.max_k: must be"}},
        {"server:\n  threads: 257\n",
         HDB_EINVAL,
         {"x.yaml:2: server.threads: must be an integer between 1 and 256"}},
        {"server:\n  threads: -1\n", HDB_EINVAL, {"x.yaml:2: server.threads:"}},
        {"server:\n  threads: 99999999999999999999999\n",
         HDB_EINVAL,
         {"x.yaml:2: server.threads:"}},
        {"server:\n  retain_freed_bytes: 2GiB\n",
         HDB_EINVAL,
         {"x.yaml:2: server.retain_freed_bytes: must be a byte size between 0 and 1GiB"}},
        {"server:\n  shutdown_grace_ms: 3600001\n",
         HDB_EINVAL,
         {"x.yaml:2: server.shutdown_grace_ms: must be an integer between 0 and 3600000"}},
        {"server:\n  max_receive_message_bytes: 2GiB\n",
         HDB_EINVAL,
         {"x.yaml:2: server.max_receive_message_bytes: must be a byte size between 1KiB and "
          "2147483647"}},
        {"server:\n  max_send_message_bytes: 1000\n",
         HDB_EINVAL,
         {"x.yaml:2: server.max_send_message_bytes:"}},
        {"storage:\n  min_free_bytes: 2TiB\n",
         HDB_EINVAL,
         {"x.yaml:2: storage.min_free_bytes: must be a byte size between 0 and 1TiB", "2TiB"}},
        {"storage:\n  ballast_bytes: 65GiB\n",
         HDB_EINVAL,
         {"x.yaml:2: storage.ballast_bytes: must be a byte size between 0 and 64GiB", "65GiB"}},
        {"storage:\n  min_free_bytes: 256MB\n",
         HDB_EINVAL,
         {"x.yaml:2: storage.min_free_bytes: must be a byte size", "\"256MB\""}},
        {"storage:\n  ballast_bytes: -1\n", HDB_EINVAL, {"x.yaml:2: storage.ballast_bytes:"}},
        {"storage:\n  block_cache_bytes: 2TiB\n",
         HDB_EINVAL,
         {"x.yaml:2: storage.block_cache_bytes: must be a byte size between 1MiB and 1TiB"}},
        {"limits:\n  max_dimension: 1048577\n", HDB_EINVAL, {"x.yaml:2: limits.max_dimension:"}},
        {"limits:\n  max_attributes: 1025\n", HDB_EINVAL, {"x.yaml:2: limits.max_attributes:"}},
        {"limits:\n  max_value_bytes: 0\n", HDB_EINVAL, {"x.yaml:2: limits.max_value_bytes:"}},
        {"search:\n  blas_threads: 0\n", HDB_EINVAL, {"x.yaml:2: search.blas_threads:"}},
        {"server:\n  listen: localhost\n",
         HDB_EINVAL,
         {"x.yaml:2: server.listen: must be host:port"}},
        {"server:\n  listen: host:70000\n", HDB_EINVAL, {"x.yaml:2: server.listen:", "port"}},
        {"index:\n  lag_mode: sideways\n",
         HDB_EINVAL,
         {"x.yaml:2: index.lag_mode: must be backpressure or fall_behind", "sideways"}},
        {"index:\n  max_lag_ms: 86400001\n",
         HDB_EINVAL,
         {"x.yaml:2: index.max_lag_ms: must be an integer between 0 and 86400000"}},
        {"index:\n  max_lag_entries: -1\n", HDB_EINVAL, {"x.yaml:2: index.max_lag_entries:"}},
        {"index:\n  applier_threads: 257\n",
         HDB_EINVAL,
         {"x.yaml:2: index.applier_threads: must be an integer between 0 and 256"}},
        {"server:\n  listen: \"::1:5000\"\n", HDB_EINVAL, {"x.yaml:2: server.listen:", "IPv6"}},
    };
    run_error_cases(*state, cases, sizeof cases / sizeof cases[0]);
}

static void test_bad_sizes(void **state) {
    static const error_case cases[] = {
        {"storage:\n  block_cache_bytes: 64MB\n",
         HDB_EINVAL,
         {"x.yaml:2: storage.block_cache_bytes: must be a byte size", "\"64MB\""}},
        {"storage:\n  block_cache_bytes: 64mib\n",
         HDB_EINVAL,
         {"x.yaml:2: storage.block_cache_bytes:"}},
        {"storage:\n  write_buffer_bytes: MiB\n",
         HDB_EINVAL,
         {"x.yaml:2: storage.write_buffer_bytes:"}},
        {"storage:\n  write_buffer_bytes: -1MiB\n",
         HDB_EINVAL,
         {"x.yaml:2: storage.write_buffer_bytes:"}},
        {"storage:\n  write_buffer_bytes: 1.5GiB\n",
         HDB_EINVAL,
         {"x.yaml:2: storage.write_buffer_bytes:"}},
        {"storage:\n  write_buffer_bytes: 64MiBs\n",
         HDB_EINVAL,
         {"x.yaml:2: storage.write_buffer_bytes:"}},
        {"storage:\n  block_cache_bytes: 99999999999999TiB\n",
         HDB_EINVAL,
         {"x.yaml:2: storage.block_cache_bytes:"}},
        {"server:\n  max_receive_message_bytes: \"\"\n",
         HDB_EINVAL,
         {"x.yaml:2: server.max_receive_message_bytes:"}},
    };
    run_error_cases(*state, cases, sizeof cases / sizeof cases[0]);
}

static void test_bad_bools(void **state) {
    static const error_case cases[] = {
        {"storage:\n  sync: maybe\n",
         HDB_EINVAL,
         {"x.yaml:2: storage.sync: must be a boolean: true, false, yes or no", "maybe"}},
        {"storage:\n  sync: 1\n", HDB_EINVAL, {"x.yaml:2: storage.sync: must be a boolean"}},
        {"storage:\n  sync: \"true\"\n", HDB_EINVAL, {"x.yaml:2: storage.sync:", "quoted"}},
        {"storage:\n  sync: on\n", HDB_EINVAL, {"x.yaml:2: storage.sync:"}},
    };
    run_error_cases(*state, cases, sizeof cases / sizeof cases[0]);
}

static void test_malformed_yaml(void **state) {
    static const error_case cases[] = {
        {"server:\n  threads: 4\n   listen: x\n", HDB_EINVAL, {"x.yaml:3: malformed YAML"}},
        {"limits: {max_k: 5\n", HDB_EINVAL, {"malformed YAML", "flow mapping", "line 1"}},
        {"server:\n\tthreads: 4\n", HDB_EINVAL, {"x.yaml:2: malformed YAML"}},
        {"server: *nothing\n", HDB_EINVAL, {"x.yaml:1: malformed YAML", "alias"}},
        {"server: {}\n---\nlog: {}\n", HDB_EINVAL, {"x.yaml:2:", "single document"}},
        {"server:\n  threads: 2\n  threads: 3\n",
         HDB_EINVAL,
         {"x.yaml:3: server.threads: duplicate key", "line 2"}},
        {"storage: {}\nstorage: {}\n", HDB_EINVAL, {"x.yaml:2: storage: duplicate key"}},
        {"server:\n  listen: \"a\xff\"\n", HDB_EINVAL, {"x.yaml:2: malformed YAML", "UTF-8"}},
    };
    run_error_cases(*state, cases, sizeof cases / sizeof cases[0]);
}

static void test_missing_file(void **state) {
    fixture *fx = *state;
    char path[PATH_MAX + 32];
    snprintf(path, sizeof path, "%s/does-not-exist.yaml", fx->dir);
    assert_int_equal(hdb_config_load_file(&fx->cfg, path, fx->err, sizeof fx->err), HDB_EIO);
    assert_contains(fx->err, path);
    assert_contains(fx->err, "No such file");
    /* A directory is not a file either. */
    assert_int_equal(hdb_config_load_file(&fx->cfg, fx->dir, fx->err, sizeof fx->err), HDB_EIO);
    assert_contains(fx->err, fx->dir);
    /* A NULL or short error buffer is fine. */
    assert_int_equal(hdb_config_load_file(&fx->cfg, path, NULL, 0), HDB_EIO);
    char tiny[8];
    assert_int_equal(hdb_config_load_file(&fx->cfg, path, tiny, sizeof tiny), HDB_EIO);
    assert_int_equal(strlen(tiny), sizeof tiny - 1);
    assert_defaults(&fx->cfg);
}

static void test_failed_load_changes_nothing(void **state) {
    fixture *fx = *state;
    /* listen and threads are valid and come before the error: they must not stick. */
    assert_int_equal(load_text(fx, "server:\n  listen: 0.0.0.0:1\n  threads: 9\n"
                                   "data_sources:\n  - {name: a, version: 1, dimension: 2,\n"
                                   "     permanent_attributes: [], id_attributes: []}\n"
                                   "limits:\n  max_k: 0\n"),
                     HDB_EINVAL);
    assert_contains(fx->err, "x.yaml:8: limits.max_k");
    assert_defaults(&fx->cfg);
}

/* ---- data sources and indices ------------------------------------------------------------- */

static const char catalog_yaml[] =
    "data_sources:\n"
    "  - name: products\n"
    "    version: \"1\"\n"
    "    vector_kind: dense          # optional\n"
    "    dimension: 784\n"
    "    permanent_attributes:\n"
    "      - {name: id, type: int64}\n"
    "      - {name: category, type: string}\n"
    "      - {name: price, type: float64}\n"
    "      - {name: in_stock, type: bool}\n"
    "      - {name: blob, type: bytes}\n"
    "      - name: created\n"
    "        type: TIMESTAMP\n"
    "    id_attributes: [id]\n"
    "  - name: images\n"
    "    version: 1.10\n"
    "    dimension: 3\n"
    "    permanent_attributes: [{name: a, type: string}, {name: b, type: int64}]\n"
    "    id_attributes:\n"
    "      - a\n"
    "      - b\n"
    "indices:\n"
    "  - name: products-flat\n"
    "    version: \"1\"\n"
    "    data_source: {name: products, version: \"1\"}\n"
    "    algorithm: flat\n"
    "    metric: l2\n"
    "    split_attributes: [category]\n"
    "  - name: images-ip\n"
    "    version: 2\n"
    "    data_source:\n"
    "      name: images\n"
    "      version: 1.10\n"
    "    algorithm: flat\n"
    "    metric: inner_product\n"
    "  - {name: images-cos, version: 3, data_source: {name: images, version: 1.10},\n"
    "     algorithm: flat, metric: cosine, split_attributes: []}\n";

/* Packs m and unpacks it again, which proves it is a well-formed protobuf-c message. */
static void assert_packs(const ProtobufCMessage *m) {
    assert_true(protobuf_c_message_check(m));
    size_t n = protobuf_c_message_get_packed_size(m);
    uint8_t *buf = malloc(n ? n : 1);
    assert_non_null(buf);
    assert_int_equal(protobuf_c_message_pack(m, buf), n);
    ProtobufCMessage *back = protobuf_c_message_unpack(m->descriptor, NULL, n, buf);
    assert_non_null(back);
    protobuf_c_message_free_unpacked(back, NULL);
    free(buf);
}

static void test_catalog_objects(void **state) {
    fixture *fx = *state;
    hdb_config *c = &fx->cfg;
    if (load_text(fx, catalog_yaml) != HDB_OK) fail_msg("%s", fx->err);

    assert_int_equal(c->n_data_sources, 2);
    const Hilbert__V1__DataSourceSpec *ds = c->data_sources[0];
    assert_ptr_equal(ds->base.descriptor, &hilbert__v1__data_source_spec__descriptor);
    assert_string_equal(ds->name, "products");
    assert_string_equal(ds->version, "1");
    assert_int_equal(ds->vector_kind, HILBERT__V1__VECTOR_KIND__VECTOR_KIND_DENSE);
    assert_int_equal(ds->dimension, 784);
    assert_int_equal(ds->n_permanent_attributes, 6);
    static const struct {
        const char *name;
        Hilbert__V1__AttributeType type;
    } attrs[] = {
        {"id", HILBERT__V1__ATTRIBUTE_TYPE__ATTRIBUTE_TYPE_INT64},
        {"category", HILBERT__V1__ATTRIBUTE_TYPE__ATTRIBUTE_TYPE_STRING},
        {"price", HILBERT__V1__ATTRIBUTE_TYPE__ATTRIBUTE_TYPE_FLOAT64},
        {"in_stock", HILBERT__V1__ATTRIBUTE_TYPE__ATTRIBUTE_TYPE_BOOL},
        {"blob", HILBERT__V1__ATTRIBUTE_TYPE__ATTRIBUTE_TYPE_BYTES},
        {"created", HILBERT__V1__ATTRIBUTE_TYPE__ATTRIBUTE_TYPE_TIMESTAMP},
    };
    for (size_t i = 0; i < 6; i++) {
        assert_string_equal(ds->permanent_attributes[i]->name, attrs[i].name);
        assert_int_equal(ds->permanent_attributes[i]->type, attrs[i].type);
    }
    assert_int_equal(ds->n_id_attributes, 1);
    assert_string_equal(ds->id_attributes[0], "id");
    assert_packs(&ds->base);

    ds = c->data_sources[1];
    assert_string_equal(ds->name, "images");
    assert_string_equal(ds->version, "1.10"); /* the scalar text, not the number 1.1 */
    assert_int_equal(ds->vector_kind, HILBERT__V1__VECTOR_KIND__VECTOR_KIND_DENSE);
    assert_int_equal(ds->dimension, 3);
    assert_int_equal(ds->n_permanent_attributes, 2);
    assert_int_equal(ds->n_id_attributes, 2);
    assert_string_equal(ds->id_attributes[1], "b");
    assert_packs(&ds->base);

    assert_int_equal(c->n_indices, 3);
    const Hilbert__V1__IndexSpec *ix = c->indices[0];
    assert_ptr_equal(ix->base.descriptor, &hilbert__v1__index_spec__descriptor);
    assert_string_equal(ix->name, "products-flat");
    assert_string_equal(ix->version, "1");
    assert_non_null(ix->data_source);
    assert_string_equal(ix->data_source->name, "products");
    assert_string_equal(ix->data_source->version, "1");
    assert_non_null(ix->algorithm);
    assert_int_equal(ix->algorithm->kind_case, HILBERT__V1__INDEX_ALGORITHM__KIND_FLAT);
    assert_non_null(ix->algorithm->flat);
    assert_int_equal(ix->metric, HILBERT__V1__METRIC__METRIC_L2);
    assert_int_equal(ix->n_split_attributes, 1);
    assert_string_equal(ix->split_attributes[0], "category");
    assert_packs(&ix->base);

    ix = c->indices[1];
    assert_string_equal(ix->version, "2");
    assert_string_equal(ix->data_source->version, "1.10");
    assert_int_equal(ix->metric, HILBERT__V1__METRIC__METRIC_INNER_PRODUCT);
    assert_int_equal(ix->n_split_attributes, 0);
    assert_packs(&ix->base);

    ix = c->indices[2];
    assert_string_equal(ix->name, "images-cos");
    assert_int_equal(ix->metric, HILBERT__V1__METRIC__METRIC_COSINE);
    assert_int_equal(ix->n_split_attributes, 0);
    assert_packs(&ix->base);

    /* Semantic checks belong to the catalog: an unknown split attribute passes here. */
    assert_int_equal(load_text(fx, "indices:\n  - {name: \"\", version: v, data_source: {name: "
                                   "nope, version: x}, algorithm: flat, metric: ip, "
                                   "split_attributes: [missing, missing]}\n"),
                     HDB_OK);
    assert_int_equal(c->n_indices, 1);
    assert_int_equal(c->indices[0]->metric, HILBERT__V1__METRIC__METRIC_INNER_PRODUCT);
    /* A list in the file replaces the previous one; data_sources was not mentioned. */
    assert_int_equal(c->n_data_sources, 2);
}

static void test_catalog_errors(void **state) {
    static const error_case cases[] = {
        {"data_sources:\n  - name: a\n    version: 1\n    permanent_attributes: []\n"
         "    id_attributes: []\n",
         HDB_EINVAL,
         {"x.yaml:2: data_sources[0].dimension: required key is missing"}},
        {"data_sources:\n  - {name: a, version: 1, dimension: 2, id_attributes: []}\n",
         HDB_EINVAL,
         {"x.yaml:2: data_sources[0].permanent_attributes: required key is missing"}},
        {"data_sources:\n  - name: a\n    version: 1\n    dimension: 2\n"
         "    permanent_attributes:\n      - {name: id, type: int64}\n"
         "      - {name: x, type: int32}\n    id_attributes: [id]\n",
         HDB_EINVAL,
         {"x.yaml:7: data_sources[0].permanent_attributes[1].type: unknown attribute type",
          "int32"}},
        {"data_sources:\n  - name: a\n    version: 1\n    dimension: 2\n"
         "    permanent_attributes:\n      - {name: id}\n    id_attributes: [id]\n",
         HDB_EINVAL,
         {"x.yaml:6: data_sources[0].permanent_attributes[0].type: required key is missing"}},
        {"data_sources:\n  - name: a\n    version: 1\n    dimension: 2\n"
         "    permanent_attributes: [id]\n    id_attributes: [id]\n",
         HDB_EINVAL,
         {"x.yaml:5: data_sources[0].permanent_attributes[0]: must be a mapping"}},
        {"data_sources:\n  - name: a\n    version: 1\n    dimension: many\n"
         "    permanent_attributes: []\n    id_attributes: []\n",
         HDB_EINVAL,
         {"x.yaml:4: data_sources[0].dimension: must be an integer", "many"}},
        {"data_sources:\n  - name: a\n    version: 1\n    dimension: 0\n"
         "    permanent_attributes: []\n    id_attributes: []\n",
         HDB_EINVAL,
         {"x.yaml:4: data_sources[0].dimension: must be an integer between 1 and"}},
        {"data_sources:\n  - name: a\n    version: 1\n    vector_kind: ragged\n    dimension: 2\n"
         "    permanent_attributes: []\n    id_attributes: []\n",
         HDB_EINVAL,
         {"x.yaml:4: data_sources[0].vector_kind: unknown vector kind", "ragged"}},
        {"data_sources:\n  - name: a\n    version: 1\n    dimension: 2\n"
         "    permanent_attributes: []\n    id_attributes: [{x: 1}]\n",
         HDB_EINVAL,
         {"x.yaml:6: data_sources[0].id_attributes[0]: must be a string", "mapping"}},
        {"data_sources:\n  - name: a\n    version: 1\n    dimension: 2\n"
         "    permanent_attributes: []\n    id_attributes: id\n",
         HDB_EINVAL,
         {"x.yaml:6: data_sources[0].id_attributes: must be a list"}},
        {"data_sources:\n  - name: a\n    version: 1\n    dimension: 2\n    dimensions: 2\n"
         "    permanent_attributes: []\n    id_attributes: []\n",
         HDB_EINVAL,
         {"x.yaml:5: data_sources[0].dimensions: unknown key"}},
        {"data_sources:\n  - {name: [a], version: 1}\n",
         HDB_EINVAL,
         {"x.yaml:2: data_sources[0].name: must be a string"}},
        {"data_sources:\n  - products\n",
         HDB_EINVAL,
         {"x.yaml:2: data_sources[0]: must be a mapping"}},
        {"indices:\n  - name: i\n    version: 1\n    data_source: {name: a, version: 1}\n"
         "    algorithm: flat\n    metric: hamming\n",
         HDB_EINVAL,
         {"x.yaml:6: indices[0].metric: unknown metric", "hamming"}},
        {"indices:\n  - name: i\n    version: 1\n    data_source: {name: a, version: 1}\n"
         "    algorithm: annoy\n    metric: l2\n",
         HDB_EINVAL,
         {"x.yaml:5: indices[0].algorithm: unknown algorithm", "annoy"}},
        {"indices:\n  - name: i\n    version: 1\n    data_source: {name: a, version: 1}\n"
         "    algorithm: faiss\n    metric: l2\n",
         HDB_EINVAL,
         {"indices[0].faiss: is required with algorithm faiss"}},
        {"indices:\n  - name: i\n    version: 1\n    data_source: {name: a, version: 1}\n"
         "    algorithm: hnsw\n    metric: l2\n    faiss: {factory: Flat}\n",
         HDB_EINVAL,
         {"x.yaml:7: indices[0].faiss: parameters of another algorithm (algorithm is hnsw)"}},
        {"indices:\n  - name: i\n    version: 1\n    data_source: {name: a, version: 1}\n"
         "    algorithm: hnsw\n    metric: l2\n    hnsw: {m: 16, efsearch: 3}\n",
         HDB_EINVAL,
         {"x.yaml:7: indices[0].hnsw.efsearch: unknown key"}},
        {"indices:\n  - name: i\n    version: 1\n    data_source: {name: a, version: 1}\n"
         "    algorithm: faiss\n    metric: l2\n    faiss: {nprobe: 4}\n",
         HDB_EINVAL,
         {"x.yaml:7: indices[0].faiss.factory: required key is missing"}},
        {"indices:\n  - name: i\n    version: 1\n    data_source: {name: a, version: 1}\n"
         "    metric: l2\n",
         HDB_EINVAL,
         {"x.yaml:2: indices[0].algorithm: required key is missing"}},
        {"indices:\n  - name: i\n    version: 1\n    data_source: a@1\n"
         "    algorithm: flat\n    metric: l2\n",
         HDB_EINVAL,
         {"x.yaml:4: indices[0].data_source: must be a mapping"}},
        {"indices:\n  - name: i\n    version: 1\n    data_source: {name: a}\n"
         "    algorithm: flat\n    metric: l2\n",
         HDB_EINVAL,
         {"x.yaml:4: indices[0].data_source.version: required key is missing"}},
        {"indices:\n  - name: i\n    version: 1\n    data_source: {name: a, version: 1, x: 2}\n"
         "    algorithm: flat\n    metric: l2\n",
         HDB_EINVAL,
         {"x.yaml:4: indices[0].data_source.x: unknown key"}},
        {"indices:\n  - name: i\n    version: 1\n    data_source: {name: a, version: 1}\n"
         "    algorithm: flat\n    metric: l2\n    split_attributes: category\n",
         HDB_EINVAL,
         {"x.yaml:7: indices[0].split_attributes: must be a list"}},
        {"indices:\n  - name: i\n    version: 1\n    data_source: {name: a, version: 1}\n"
         "    algorithm: flat\n    metric: l2\n    splits: [a]\n",
         HDB_EINVAL,
         {"x.yaml:7: indices[0].splits: unknown key", "split_attributes"}},
        {"indices:\n  - name: i\n    version: ~\n    data_source: {name: a, version: 1}\n"
         "    algorithm: flat\n    metric: l2\n",
         HDB_EINVAL,
         {"x.yaml:3: indices[0].version: must be a string", "null"}},
    };
    run_error_cases(*state, cases, sizeof cases / sizeof cases[0]);
}

/* The ANN algorithms and sparse sources map to their protobuf messages. */
static void test_ann_objects(void **state) {
    fixture *fx = *state;
    hdb_config *c = &fx->cfg;
    assert_int_equal(load_text(fx, "data_sources:\n"
                                   "  - {name: s, version: 1, vector_kind: sparse, dimension: 100000,\n"
                                   "     permanent_attributes: [{name: id, type: int64}],\n"
                                   "     id_attributes: [id]}\n"
                                   "indices:\n"
                                   "  - name: h\n    version: 1\n    data_source: {name: d, version: 1}\n"
                                   "    algorithm: hnsw\n    metric: cosine\n"
                                   "    hnsw: {m: 24, ef_construction: 300, ef_search: 80, storage: int8,\n"
                                   "           oversample: 3}\n"
                                   "  - name: f\n    version: 1\n    data_source: {name: d, version: 1}\n"
                                   "    algorithm: faiss\n    metric: l2\n"
                                   "    faiss: {factory: \"IVF64,PQ16\", nprobe: 4, train_size: 5000}\n"
                                   "  - name: sp\n    version: 1\n    data_source: {name: s, version: 1}\n"
                                   "    algorithm: sparse\n    metric: jaccard\n"),
                     HDB_OK);
    assert_int_equal(c->n_data_sources, 1);
    assert_int_equal(c->data_sources[0]->vector_kind, HILBERT__V1__VECTOR_KIND__VECTOR_KIND_SPARSE);
    assert_int_equal(c->n_indices, 3);
    const Hilbert__V1__IndexAlgorithm *h = c->indices[0]->algorithm;
    assert_int_equal(h->kind_case, HILBERT__V1__INDEX_ALGORITHM__KIND_HNSW);
    assert_int_equal(h->hnsw->m, 24);
    assert_int_equal(h->hnsw->ef_construction, 300);
    assert_int_equal(h->hnsw->ef_search, 80);
    assert_int_equal(h->hnsw->storage, HILBERT__V1__VECTOR_STORAGE__VECTOR_STORAGE_INT8);
    assert_int_equal(h->hnsw->oversample, 3);
    const Hilbert__V1__IndexAlgorithm *f = c->indices[1]->algorithm;
    assert_int_equal(f->kind_case, HILBERT__V1__INDEX_ALGORITHM__KIND_FAISS);
    assert_string_equal(f->faiss->factory, "IVF64,PQ16");
    assert_int_equal(f->faiss->nprobe, 4);
    assert_int_equal(f->faiss->train_size, 5000);
    assert_int_equal(c->indices[2]->algorithm->kind_case, HILBERT__V1__INDEX_ALGORITHM__KIND_SPARSE);
    assert_int_equal(c->indices[2]->metric, HILBERT__V1__METRIC__METRIC_JACCARD);
}

/* Model spaces: an image and a tensor input, an index given as a mapping, the YAML key model
 * for the field model_path, and the defaults of the optional keys. */
static void test_model_spaces(void **state) {
    fixture *fx = *state;
    hdb_config *c = &fx->cfg;
    int rc = load_text(fx, "model_spaces:\n"
                           "  - name: img\n"
                           "    model: m.pt\n"
                           "    input:\n"
                           "      image: {width: 28, height: 14, channels: 3, resize: CROP,\n"
                           "              mean: [0.5, 1e-3, 2], std: [0.25]}\n"
                           "    output_dim: 64\n"
                           "    metric: cosine\n"
                           "    index: {algorithm: faiss, faiss: {factory: Flat, nprobe: 3}}\n"
                           "    permanent_attributes: [{name: n, type: int64}]\n"
                           "    split_attributes: [n]\n"
                           "  - name: vec\n"
                           "    model: v.pt\n"
                           "    input: {tensor: {shape: [4, 4]}}\n"
                           "    output_dim: 16\n"
                           "    metric: ip\n"
                           "    keep_inputs: yes\n"
                           "    reembed_from: old-vec\n"
                           "  - name: plain\n"
                           "    model: p.pt\n"
                           "    input: {image: {width: 8, height: 8, channels: 1}}\n"
                           "    output_dim: 2\n"
                           "    metric: l2\n"
                           "    index: {algorithm: HNSW}\n");
    if (rc != HDB_OK) fail_msg("%s", fx->err);
    assert_int_equal(c->n_model_spaces, 3);

    const Hilbert__V1__ModelSpaceSpec *ms = c->model_spaces[0];
    assert_ptr_equal(ms->base.descriptor, &hilbert__v1__model_space_spec__descriptor);
    assert_string_equal(ms->name, "img");
    assert_string_equal(ms->model_path, "m.pt");
    assert_int_equal(ms->input->kind_case, HILBERT__V1__MODEL_INPUT__KIND_IMAGE);
    const Hilbert__V1__ImageInput *im = ms->input->image;
    assert_int_equal(im->width, 28);
    assert_int_equal(im->height, 14);
    assert_int_equal(im->channels, 3);
    assert_int_equal(im->resize, HILBERT__V1__RESIZE_MODE__RESIZE_MODE_CROP);
    assert_int_equal(im->n_mean, 3);
    assert_true(im->mean[0] == 0.5f && im->mean[1] == 1e-3f && im->mean[2] == 2.0f);
    assert_int_equal(im->n_std, 1);
    assert_true(im->std[0] == 0.25f);
    assert_int_equal(ms->output_dim, 64);
    assert_int_equal(ms->metric, HILBERT__V1__METRIC__METRIC_COSINE);
    assert_int_equal(ms->index->kind_case, HILBERT__V1__INDEX_ALGORITHM__KIND_FAISS);
    assert_string_equal(ms->index->faiss->factory, "Flat");
    assert_int_equal(ms->index->faiss->nprobe, 3);
    assert_int_equal(ms->n_permanent_attributes, 1);
    assert_int_equal(ms->permanent_attributes[0]->type,
                     HILBERT__V1__ATTRIBUTE_TYPE__ATTRIBUTE_TYPE_INT64);
    assert_int_equal(ms->n_split_attributes, 1);
    assert_packs(&ms->base);

    ms = c->model_spaces[1];
    assert_int_equal(ms->input->kind_case, HILBERT__V1__MODEL_INPUT__KIND_TENSOR);
    assert_int_equal(ms->input->tensor->n_shape, 2);
    assert_int_equal(ms->input->tensor->shape[1], 4);
    assert_int_equal(ms->metric, HILBERT__V1__METRIC__METRIC_INNER_PRODUCT);
    assert_null(ms->index); /* unset: the catalog indexes it flat */
    assert_int_equal(ms->n_permanent_attributes, 0);
    assert_true(ms->keep_inputs);
    assert_string_equal(ms->reembed_from, "old-vec");
    assert_packs(&ms->base);

    ms = c->model_spaces[2];
    assert_false(ms->keep_inputs); /* the default */
    assert_int_equal(ms->input->image->resize, HILBERT__V1__RESIZE_MODE__RESIZE_MODE_STRETCH);
    assert_int_equal(ms->input->image->n_mean, 0);
    assert_int_equal(ms->index->kind_case, HILBERT__V1__INDEX_ALGORITHM__KIND_HNSW);
    assert_non_null(ms->index->hnsw);
    assert_int_equal(ms->index->hnsw->m, 0);
    assert_packs(&ms->base);
}

static void test_model_space_errors(void **state) {
#define SPACE(rest) "model_spaces:\n  - name: s\n    model: m\n" rest
#define TENSOR "    input: {tensor: {shape: [2]}}\n"
    static const error_case cases[] = {
        {SPACE("    output_dim: 2\n    metric: l2\n"),
         HDB_EINVAL,
         {"x.yaml:2: model_spaces[0].input: required key is missing"}},
        {SPACE("    input: {image: {width: 1, height: 1, channels: 1}, tensor: {shape: [1]}}\n"
               "    output_dim: 2\n    metric: l2\n"),
         HDB_EINVAL,
         {"x.yaml:4: model_spaces[0].input: give image or tensor, not both"}},
        {SPACE("    input: {}\n    output_dim: 2\n    metric: l2\n"),
         HDB_EINVAL,
         {"x.yaml:4: model_spaces[0].input: needs image or tensor"}},
        {SPACE("    input: [tensor]\n    output_dim: 2\n    metric: l2\n"),
         HDB_EINVAL,
         {"model_spaces[0].input: must be a mapping {image: ...} or {tensor: ...}, not a list"}},
        {SPACE("    input: {image: {width: 1, height: 1}}\n    output_dim: 2\n    metric: l2\n"),
         HDB_EINVAL,
         {"model_spaces[0].input.image.channels: required key is missing"}},
        {SPACE("    input: {image: {width: 1, height: 1, channels: 1, resize: fill}}\n"
               "    output_dim: 2\n    metric: l2\n"),
         HDB_EINVAL,
         {"model_spaces[0].input.image.resize: unknown resize mode \"fill\" (stretch, fit or "
          "crop)"}},
        {SPACE("    input: {image: {width: 1, height: 1, channels: 1, mean: [a]}}\n"
               "    output_dim: 2\n    metric: l2\n"),
         HDB_EINVAL,
         {"model_spaces[0].input.image.mean[0]: must be a number"}},
        {SPACE("    input: {tensor: {shape: [2, 0]}}\n    output_dim: 2\n    metric: l2\n"),
         HDB_EINVAL,
         {"model_spaces[0].input.tensor.shape[1]: must be an integer between 1 and 1073741824"}},
        {SPACE("    input: {tensor: 3}\n    output_dim: 2\n    metric: l2\n"),
         HDB_EINVAL,
         {"model_spaces[0].input.tensor: must be a mapping {shape: [...]}, not a scalar"}},
        {SPACE(TENSOR "    output_dim: 65537\n    metric: l2\n"),
         HDB_EINVAL,
         {"x.yaml:5: model_spaces[0].output_dim: must be an integer between 1 and 65536"}},
        {SPACE(TENSOR "    output_dim: 2\n    metric: l2\n    output_index: 256\n"),
         HDB_EINVAL,
         {"model_spaces[0].output_index: must be an integer between 0 and 255"}},
        {SPACE(TENSOR "    output_dim: 2\n    metric: manhattan\n"),
         HDB_EINVAL,
         {"model_spaces[0].metric: unknown metric \"manhattan\" (expected l2, inner_product or "
          "cosine)"}},
        {SPACE(TENSOR "    output_dim: 2\n    metric: l2\n    index: flat\n"),
         HDB_EINVAL,
         {"x.yaml:7: model_spaces[0].index: must be a mapping {algorithm: ...}, not a scalar"}},
        {SPACE(TENSOR "    output_dim: 2\n    metric: l2\n"
                      "    index: {algorithm: flat, hnsw: {}}\n"),
         HDB_EINVAL,
         {"model_spaces[0].index.hnsw: parameters of another algorithm (algorithm is flat)"}},
        {SPACE(TENSOR "    output_dim: 2\n    metric: l2\n"
                      "    index: {algorithm: hnsw, hnsw: {storage: int4}}\n"),
         HDB_EINVAL,
         {"model_spaces[0].index.hnsw.storage: unknown vector storage \"int4\" (expected "
          "float32, float16 or int8)"}},
        {SPACE(TENSOR "    output_dim: 2\n    metric: l2\n"
                      "    index: {algorithm: hnsw, hnsw: {oversample: 101}}\n"),
         HDB_EINVAL,
         {"model_spaces[0].index.hnsw.oversample: must be an integer between 0 and 100"}},
        {SPACE(TENSOR "    output_dim: 2\n    metric: l2\n    index: {algorithm: faiss}\n"),
         HDB_EINVAL,
         {"model_spaces[0].index.faiss: is required with algorithm faiss (factory: ...)"}},
        {SPACE(TENSOR "    output_dim: 2\n    metric: l2\n    index: {algorithm: ivf}\n"),
         HDB_EINVAL,
         {"model_spaces[0].index.algorithm: unknown algorithm \"ivf\" (expected flat, faiss, "
          "hnsw or sparse)"}},
        {SPACE(TENSOR "    output_dim: 2\n    metric: l2\n    model_path: m\n"),
         HDB_EINVAL,
         {"model_spaces[0].model_path: unknown key (expected one of: name, model, input, "
          "output_dim, metric, index, permanent_attributes, split_attributes, model_sha256, "
          "output_index, keep_inputs, reembed_from, indexed_attributes)"}},
        {SPACE(TENSOR "    output_dim: 2\n    metric: l2\n    keep_inputs: maybe\n"),
         HDB_EINVAL,
         {"x.yaml:7: model_spaces[0].keep_inputs: must be true or false"}},
        {SPACE(TENSOR "    output_dim: 2\n    metric: l2\n    keep_inputs: \"true\"\n"),
         HDB_EINVAL,
         {"model_spaces[0].keep_inputs: must be true or false"}},
        {SPACE(TENSOR "    output_dim: 2\n    metric: l2\n    keep_inputs: [true]\n"),
         HDB_EINVAL,
         {"model_spaces[0].keep_inputs: must be true or false"}},
    };
#undef SPACE
#undef TENSOR
    run_error_cases(*state, cases, sizeof cases / sizeof cases[0]);
}

/* The YAML schemas of the spec messages cover every field of their descriptors, with loadable
 * types; a field added to the API without a config key fails here. */
static void test_spec_schemas_match_descriptors(void **state) {
    fixture *fx = *state;
    int rc = hdb__config_check_specs(fx->err, sizeof fx->err);
    if (rc != HDB_OK) fail_msg("%s", fx->err);
}

/* ---- validate ----------------------------------------------------------------------------- */

static void test_validate(void **state) {
    fixture *fx = *state;
    hdb_config *c = &fx->cfg;

    c->threads = 0;
    assert_int_equal(hdb_config_validate(c, fx->err, sizeof fx->err), HDB_EINVAL);
    assert_contains(fx->err, "server.threads: must be an integer between 1 and 256 (is 0)");
    c->threads = 4;

    c->max_value_bytes = 2048;
    c->max_receive_message_bytes = 1024;
    assert_int_equal(hdb_config_validate(c, fx->err, sizeof fx->err), HDB_EINVAL);
    assert_contains(fx->err, "limits.max_value_bytes");
    assert_contains(fx->err, "server.max_receive_message_bytes");
    c->max_receive_message_bytes = 64 * MIB;

    char *listen = c->listen;
    c->listen = "";
    assert_int_equal(hdb_config_validate(c, fx->err, sizeof fx->err), HDB_EINVAL);
    assert_contains(fx->err, "server.listen");
    c->listen = "nohost";
    assert_int_equal(hdb_config_validate(c, fx->err, sizeof fx->err), HDB_EINVAL);
    assert_contains(fx->err, "server.listen");
    c->listen = listen;

    c->data_dir = NULL;
    assert_int_equal(hdb_config_validate(c, fx->err, sizeof fx->err), HDB_EINVAL);
    assert_contains(fx->err, "storage.data_dir");
    c->data_dir = "./data";

    c->log_level = (hdb_log_level)9;
    assert_int_equal(hdb_config_validate(c, fx->err, sizeof fx->err), HDB_EINVAL);
    assert_contains(fx->err, "log.level");
    c->log_level = HDB_LOG_INFO;

    c->block_cache_bytes = 0;
    assert_int_equal(hdb_config_validate(c, NULL, 0), HDB_EINVAL);
    c->block_cache_bytes = 256 * MIB;

    assert_int_equal(hdb_config_validate(c, fx->err, sizeof fx->err), HDB_OK);
}

/* ---- flags -------------------------------------------------------------------------------- */

static int run_args(fixture *fx, FILE *out, hdb_config_action *action, int argc, ...) {
    char *argv[32];
    va_list ap;
    assert_true(argc < 32);
    argv[0] = "hilbertd";
    va_start(ap, argc);
    for (int i = 1; i < argc; i++)
        argv[i] = va_arg(ap, char *);
    va_end(ap);
    argv[argc] = NULL;
    fx->err[0] = '\0';
    return hdb_config_from_args(&fx->cfg, argc, argv, out, action, fx->err, sizeof fx->err);
}

static void test_args_none(void **state) {
    fixture *fx = *state;
    hdb_config_action action = HDB_CONFIG_EXIT;
    assert_int_equal(run_args(fx, NULL, &action, 1), HDB_OK);
    assert_int_equal(action, HDB_CONFIG_RUN);
    assert_defaults(&fx->cfg);
}

static void test_flags_override_file(void **state) {
    fixture *fx = *state;
    hdb_config_action action;
    const char *path = write_file(fx, "f.yaml",
                                  "server:\n  listen: 10.0.0.1:7000\n  threads: 8\n"
                                  "log: {level: error}\nstorage:\n  data_dir: /from/file\n"
                                  "limits: {max_k: 77}\n");
    char config[PATH_MAX];
    snprintf(config, sizeof config, "%s", path);

    /* The flags come before and after --config; they win either way. */
    int rc = run_args(fx, NULL, &action, 9, "--threads", "2", "--config", config, "--listen",
                      "127.0.0.1:9000", "--log-level", "warn");
    if (rc != HDB_OK) fail_msg("%s", fx->err);
    assert_int_equal(action, HDB_CONFIG_RUN);
    assert_int_equal(fx->cfg.threads, 2);
    assert_string_equal(fx->cfg.listen, "127.0.0.1:9000");
    assert_int_equal(fx->cfg.log_level, HDB_LOG_WARN);
    assert_string_equal(fx->cfg.data_dir, "/from/file"); /* not overridden */
    assert_int_equal(fx->cfg.max_k, 77);
}

static void test_flags_equals_form(void **state) {
    fixture *fx = *state;
    hdb_config_action action;
    char config[PATH_MAX + 16];
    snprintf(config, sizeof config, "--config=%s",
             write_file(fx, "f.yaml", "server: {threads: 8}\nstorage: {sync: false}\n"));
    int rc = run_args(fx, NULL, &action, 6, "--data-dir=/tmp/x y", config, "--threads=3",
                      "--log-level=DEBUG", "--listen=[::1]:0");
    if (rc != HDB_OK) fail_msg("%s", fx->err);
    assert_int_equal(action, HDB_CONFIG_RUN);
    assert_string_equal(fx->cfg.data_dir, "/tmp/x y");
    assert_int_equal(fx->cfg.threads, 3);
    assert_int_equal(fx->cfg.log_level, HDB_LOG_DEBUG);
    assert_string_equal(fx->cfg.listen, "[::1]:0");
    assert_false(fx->cfg.sync);
}

static void test_help(void **state) {
    fixture *fx = *state;
    hdb_config_action action = HDB_CONFIG_RUN;
    char *buf = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&buf, &len);
    assert_non_null(out);
    /* --help wins over the other flags, and nothing is loaded. */
    assert_int_equal(run_args(fx, out, &action, 4, "--threads", "9", "--help", "--config=/nope"),
                     HDB_OK);
    fclose(out);
    assert_int_equal(action, HDB_CONFIG_EXIT);
    static const char *const want[] = {"--config PATH", "--listen ADDR",        "--data-dir DIR",
                                       "--threads N",   "--log-level LEVEL",    "--help",
                                       "--version",     "config/hilbertd.yaml", "127.0.0.1:50051",
                                       "./data",        "default: 4",           "default: info",
                                       "--flag=value",  "--health-probe ADDR"};
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
        assert_contains(buf, want[i]);
    free(buf);
    assert_defaults(&fx->cfg);
}

static void test_version(void **state) {
    fixture *fx = *state;
    hdb_config_action action = HDB_CONFIG_RUN;
    char *buf = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&buf, &len);
    assert_non_null(out);
    assert_int_equal(run_args(fx, out, &action, 2, "--version"), HDB_OK);
    fclose(out);
    assert_int_equal(action, HDB_CONFIG_EXIT);
    assert_string_equal(buf, "hilbertd " HDB_VERSION "\n");
    assert_string_equal(hdb_version_string(), "hilbertd " HDB_VERSION);
    free(buf);
}

static void test_flag_errors(void **state) {
    fixture *fx = *state;
    hdb_config_action action;
    static const struct {
        int argc;
        const char *argv[4];
        int rc;
        const char *want[2];
    } cases[] = {
        {2, {"--bogus"}, HDB_EINVAL, {"unknown flag --bogus"}},
        {2, {"--bogus=1"}, HDB_EINVAL, {"unknown flag --bogus ", "--help"}},
        {2, {"-t"}, HDB_EINVAL, {"unexpected argument \"-t\""}},
        {2, {"serve"}, HDB_EINVAL, {"unexpected argument \"serve\""}},
        {2, {"--threads"}, HDB_EINVAL, {"--threads: missing value"}},
        {4, {"--listen", "--threads", "4"}, HDB_EINVAL, {"--listen: missing value"}},
        {2, {"--config="}, HDB_EINVAL, {"--config: missing value"}},
        {2, {"--help=yes"}, HDB_EINVAL, {"--help: takes no value"}},
        {3, {"--threads", "0"}, HDB_EINVAL, {"--threads: must be an integer between 1 and 256"}},
        {2, {"--threads=four"}, HDB_EINVAL, {"--threads:", "four"}},
        {3, {"--log-level", "loud"}, HDB_EINVAL, {"--log-level: must be one of"}},
        {2, {"--listen=nohost"}, HDB_EINVAL, {"--listen: must be host:port"}},
        {2, {"--data-dir="}, HDB_EINVAL, {"--data-dir: must be a non-empty string"}},
        {3,
         {"--config", "/nonexistent/hilbertd.yaml"},
         HDB_EIO,
         {"/nonexistent/hilbertd.yaml", "cannot open"}},
        {3, {"--bogus", "--help"}, HDB_EINVAL, {"unknown flag --bogus"}},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *argv[6] = {"hilbertd"};
        for (int j = 1; j < cases[i].argc; j++)
            argv[j] = (char *)cases[i].argv[j - 1];
        action = HDB_CONFIG_EXIT;
        fx->err[0] = '\0';
        int rc = hdb_config_from_args(&fx->cfg, cases[i].argc, argv, NULL, &action, fx->err,
                                      sizeof fx->err);
        if (rc != cases[i].rc)
            fail_msg("case %zu: rc %d, want %d (%s)", i, rc, cases[i].rc, fx->err);
        assert_int_equal(action, HDB_CONFIG_RUN);
        for (size_t j = 0; j < 2 && cases[i].want[j] != NULL; j++)
            assert_contains(fx->err, cases[i].want[j]);
        assert_defaults(&fx->cfg);
    }
}

static void test_args_bad_file_and_validate(void **state) {
    fixture *fx = *state;
    hdb_config_action action;
    char config[PATH_MAX + 16];

    snprintf(config, sizeof config, "--config=%s",
             write_file(fx, "bad.yaml", "limits:\n  max_k: -3\n"));
    assert_int_equal(run_args(fx, NULL, &action, 2, config), HDB_EINVAL);
    assert_contains(fx->err, "bad.yaml:2: limits.max_k");
    assert_defaults(&fx->cfg);

    /* Each key is in range, but together they break a cross-field rule. */
    snprintf(
        config, sizeof config, "--config=%s",
        write_file(fx, "cross.yaml",
                   "server: {max_receive_message_bytes: 1KiB}\nlimits: {max_value_bytes: 2KiB}\n"));
    assert_int_equal(run_args(fx, NULL, &action, 2, config), HDB_EINVAL);
    assert_contains(fx->err, "limits.max_value_bytes");
    assert_defaults(&fx->cfg);
}

/* ---- the shipped config ------------------------------------------------------------------- */

static void shipped_config_path(char *buf, size_t n) {
    const char *file = __FILE__;
    const char *slash = strrchr(file, '/');
    if (slash == NULL)
        snprintf(buf, n, "../../config/hilbertd.yaml");
    else
        snprintf(buf, n, "%.*s/../../config/hilbertd.yaml", (int)(slash - file), file);
}

/* ---- auth: and tls: ---------------------------------------------------------------------- */

#define KEY_OK "sha256:00112233445566778899aabbccddeeff:" HASH64

static void test_auth_errors(void **state) {
    static const error_case cases[] = {
        {"auth:\n  keys:\n    - {name: a, role: root, hash: \"" KEY_OK "\"}\n",
         HDB_EINVAL,
         {"x.yaml:3: auth.keys[0].role: must be read, write or admin", "root"}},
        {"auth:\n  keys:\n    - {name: a, role: read, hash: \"md5:00:11\"}\n",
         HDB_EINVAL,
         {"x.yaml:3: auth.keys[0].hash: must be sha256:", "sha256:"}},
        {"auth:\n  keys:\n    - {name: a, role: read, hash: \"sha256:0011:" HASH64 "\"}\n",
         HDB_EINVAL,
         {"x.yaml:3: auth.keys[0].hash:", "salt"}},
        {"auth:\n  keys:\n    - {name: a, role: read, hash: "
         "\"sha256:00112233445566778899aabbccddeeff:abc\"}\n",
         HDB_EINVAL,
         {"x.yaml:3: auth.keys[0].hash:", "64 hex"}},
        {"auth:\n  keys:\n    - {name: a, role: read, hash: \"sha256:0011223344556677gg:" HASH64
         "\"}\n",
         HDB_EINVAL,
         {"auth.keys[0].hash:", "salt"}},
        {"auth:\n  keys:\n    - {name: a, role: read, hash: \"" KEY_OK "\"}\n"
         "    - {name: a, role: write, hash: \"sha256:ffffffffffffffffffff:" HASH64 "\"}\n",
         HDB_EINVAL,
         {"x.yaml:4: auth.keys[1].name: duplicate key name \"a\"", "auth.keys[0]"}},
        {"auth:\n  keys:\n    - {name: a, role: read, hash: \"" KEY_OK "\"}\n"
         "    - {name: b, role: write, hash: \"" KEY_OK "\"}\n",
         HDB_EINVAL,
         {"x.yaml:4: auth.keys[1].hash: the same hash as auth.keys[0]"}},
        {"auth:\n  keys:\n    - {name: a, hash: \"" KEY_OK "\"}\n",
         HDB_EINVAL,
         {"x.yaml:3: auth.keys[0].role: required key is missing"}},
        {"auth:\n  keys:\n    - {name: a, role: read, hash: \"" KEY_OK "\", key: x}\n",
         HDB_EINVAL,
         {"x.yaml:3: auth.keys[0].key: unknown key"}},
        {"auth:\n  keys:\n    - just-a-key\n", HDB_EINVAL, {"x.yaml:3: auth.keys[0]: must be a "
                                                             "mapping"}},
        {"auth:\n  keys: {name: a}\n", HDB_EINVAL, {"x.yaml:2: auth.keys: must be a list"}},
        {"auth:\n  key: []\n", HDB_EINVAL, {"x.yaml:2: auth.key: unknown key"}},
        {"tls:\n  client_auth: always\n", HDB_EINVAL,
         {"x.yaml:2: tls.client_auth: must be none, request or require"}},
        {"tls:\n  cert: x\n", HDB_EINVAL, {"x.yaml:2: tls.cert: unknown key", "cert_file"}},
    };
    run_error_cases(*state, cases, sizeof cases / sizeof cases[0]);
}

static void test_security_validate(void **state) {
    fixture *fx = *state;
    static const struct {
        const char *yaml;
        const char *want; /* "" : valid */
    } cases[] = {
        {"tls:\n  cert_file: /c.pem\n", "tls.key_file: required when tls.cert_file"},
        {"tls:\n  key_file: /k.pem\n", "tls.key_file: set, but tls.cert_file is not"},
        {"tls:\n  cert_file: /c\n  key_file: /k\n  client_auth: require\n",
         "tls.client_auth: require needs tls.client_ca_file"},
        {"tls:\n  cert_file: /c\n  key_file: /k\n  client_ca_file: /ca\n",
         "tls.client_ca_file: set, but tls.client_auth is none"},
        {"tls:\n  cert_file: /c\n  key_file: /k\n  client_ca_file: /ca\n  client_auth: request\n",
         ""},
        {"server:\n  listen: 0.0.0.0:1\n", "server.listen: 0.0.0.0:1 is not a loopback address"},
        {"server:\n  listen: \"[::]:1\"\n", "no TLS, no API keys"},
        {"server:\n  listen: 10.1.2.3:1\ntls:\n  cert_file: /c\n  key_file: /k\n",
         "server.allow_insecure: true"},
        {"server:\n  listen: 0.0.0.0:1\nauth:\n  keys:\n    - {name: a, role: read, hash: \"" KEY_OK
         "\"}\n",
         "(no TLS)"},
        {"server:\n  listen: 0.0.0.0:1\n  allow_insecure: true\n", ""},
        {"server:\n  listen: 127.0.0.9:1\n", ""},
        {"server:\n  listen: localhost:1\n", ""},
        {"server:\n  listen: \"[::1]:1\"\n", ""},
        {"server:\n  listen: 127.evil.com:1\n", "not a loopback address"},
        {"server:\n  listen: unix:/tmp/x.sock\n", ""},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        hdb_config_free(&fx->cfg);
        hdb_config_init(&fx->cfg);
        if (load_text(fx, cases[i].yaml) != HDB_OK) fail_msg("case %zu: %s", i, fx->err);
        int rc = hdb_config_validate(&fx->cfg, fx->err, sizeof fx->err);
        if (cases[i].want[0] == '\0') {
            if (rc != HDB_OK) fail_msg("case %zu: %s", i, fx->err);
        } else {
            if (rc != HDB_EINVAL) fail_msg("case %zu: accepted, want %s", i, cases[i].want);
            assert_contains(fx->err, cases[i].want);
        }
    }
}

static void test_key_tool_flags(void **state) {
    fixture *fx = *state;
    hdb_config_action action;
    assert_int_equal(run_args(fx, NULL, &action, 3, "--new-key", "write"), HDB_OK);
    assert_int_equal(action, HDB_CONFIG_NEW_KEY);
    assert_int_equal(fx->cfg.key_tool_role, HDB_ROLE_WRITE);
    assert_int_equal(run_args(fx, NULL, &action, 2, "--hash-key=admin"), HDB_OK);
    assert_int_equal(action, HDB_CONFIG_HASH_KEY);
    assert_int_equal(fx->cfg.key_tool_role, HDB_ROLE_ADMIN);
    assert_int_equal(run_args(fx, NULL, &action, 3, "--new-key", "root"), HDB_EINVAL);
    assert_contains(fx->err, "--new-key: the role must be read, write or admin");
    assert_int_equal(run_args(fx, NULL, &action, 2, "--hash-key"), HDB_EINVAL);
    assert_contains(fx->err, "--hash-key: missing value");
}

static void test_health_probe_flag(void **state) {
    fixture *fx = *state;
    hdb_config_action action;
    /* The probe reads no config: a --config that does not exist is not opened. */
    int rc = run_args(fx, NULL, &action, 4, "--config=/nope", "--health-probe", "127.0.0.1:50051");
    assert_int_equal(rc, HDB_OK);
    assert_int_equal(action, HDB_CONFIG_HEALTH_PROBE);
    assert_string_equal(fx->cfg.probe_addr, "127.0.0.1:50051");
    assert_int_equal(run_args(fx, NULL, &action, 2, "--health-probe"), HDB_EINVAL);
    assert_contains(fx->err, "--health-probe: missing value (--health-probe ADDR)");
    assert_int_equal(run_args(fx, NULL, &action, 2, "--health-probe="), HDB_EINVAL);
    assert_contains(fx->err, "--health-probe: missing value");
}

static void test_shipped_config(void **state) {
    fixture *fx = *state;
    char path[PATH_MAX];
    shipped_config_path(path, sizeof path);
    int rc = hdb_config_load_file(&fx->cfg, path, fx->err, sizeof fx->err);
    if (rc != HDB_OK) fail_msg("%s: %s", path, fx->err);
    /* It documents the defaults, so loading it must change nothing. */
    assert_defaults(&fx->cfg);
    assert_int_equal(hdb_config_validate(&fx->cfg, fx->err, sizeof fx->err), HDB_OK);

    /* And through the flag parser, as hilbertd would read it. */
    hdb_config_action action;
    char flag[PATH_MAX + 16];
    snprintf(flag, sizeof flag, "--config=%s", path);
    assert_int_equal(run_args(fx, NULL, &action, 2, flag), HDB_OK);
    assert_defaults(&fx->cfg);
}

/* The commented-out examples in the shipped config must be valid when uncommented. */
static void test_shipped_config_examples(void **state) {
    fixture *fx = *state;
    char path[PATH_MAX];
    char line[512];
    shipped_config_path(path, sizeof path);
    FILE *in = fopen(path, "r");
    assert_non_null(in);
    char *text = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&text, &len);
    assert_non_null(out);
    bool in_example = false;
    while (fgets(line, sizeof line, in) != NULL) {
        /* An example starts at "# data_sources:" / "# indices:" and runs to the first line
         * that is not a commented YAML line. */
        if (strncmp(line, "# data_sources:", 15) == 0 || strncmp(line, "# indices:", 10) == 0)
            in_example = true;
        else if (strncmp(line, "#   ", 4) != 0)
            in_example = false;
        if (in_example) fputs(line + 2, out);
    }
    fclose(in);
    fclose(out);
    assert_contains(text, "data_sources:\n  - name: products");
    assert_contains(text, "indices:\n  - name: products-flat");
    int rc = load_text(fx, text);
    if (rc != HDB_OK) fail_msg("%s\n%s", fx->err, text);
    free(text);
    assert_int_equal(fx->cfg.n_data_sources, 1);
    assert_int_equal(fx->cfg.n_indices, 2);
    assert_string_equal(fx->cfg.data_sources[0]->name, "products");
    assert_int_equal(fx->cfg.data_sources[0]->dimension, 784);
    assert_int_equal(fx->cfg.indices[0]->metric, HILBERT__V1__METRIC__METRIC_L2);
    assert_int_equal(fx->cfg.indices[0]->n_split_attributes, 1);
    assert_int_equal(fx->cfg.indices[1]->algorithm->kind_case,
                     HILBERT__V1__INDEX_ALGORITHM__KIND_HNSW);
    assert_int_equal(fx->cfg.indices[1]->algorithm->hnsw->ef_search, 64);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_defaults, setup, teardown),
        cmocka_unit_test_setup_teardown(test_free_twice_and_null, setup, teardown),
        cmocka_unit_test_setup_teardown(test_full_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_partial_file_keeps_defaults, setup, teardown),
        cmocka_unit_test_setup_teardown(test_empty_and_comment_only_files, setup, teardown),
        cmocka_unit_test_setup_teardown(test_size_suffixes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_free_space_keys, setup, teardown),
        cmocka_unit_test_setup_teardown(test_booleans, setup, teardown),
        cmocka_unit_test_setup_teardown(test_listen_forms, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unknown_keys, setup, teardown),
        cmocka_unit_test_setup_teardown(test_wrong_types, setup, teardown),
        cmocka_unit_test_setup_teardown(test_out_of_range, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_sizes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_bools, setup, teardown),
        cmocka_unit_test_setup_teardown(test_malformed_yaml, setup, teardown),
        cmocka_unit_test_setup_teardown(test_missing_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_failed_load_changes_nothing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_catalog_objects, setup, teardown),
        cmocka_unit_test_setup_teardown(test_catalog_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ann_objects, setup, teardown),
        cmocka_unit_test_setup_teardown(test_model_spaces, setup, teardown),
        cmocka_unit_test_setup_teardown(test_model_space_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_spec_schemas_match_descriptors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_validate, setup, teardown),
        cmocka_unit_test_setup_teardown(test_auth_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_security_validate, setup, teardown),
        cmocka_unit_test_setup_teardown(test_key_tool_flags, setup, teardown),
        cmocka_unit_test_setup_teardown(test_health_probe_flag, setup, teardown),
        cmocka_unit_test_setup_teardown(test_args_none, setup, teardown),
        cmocka_unit_test_setup_teardown(test_flags_override_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_flags_equals_form, setup, teardown),
        cmocka_unit_test_setup_teardown(test_help, setup, teardown),
        cmocka_unit_test_setup_teardown(test_version, setup, teardown),
        cmocka_unit_test_setup_teardown(test_flag_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_args_bad_file_and_validate, setup, teardown),
        cmocka_unit_test_setup_teardown(test_shipped_config, setup, teardown),
        cmocka_unit_test_setup_teardown(test_shipped_config_examples, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
