/*
 * hdb_config.c - the server configuration's keys: the key table, the built-in defaults, reading
 * and writing fields, parsing and formatting values, and hdb_config_validate.
 *
 * One table (key_table) describes every scalar key: its dotted name, its syntax, where it lives
 * in hdb_config and its allowed range. The file loader (hdb_config_yaml.c), the flag parser and
 * the --help text (hdb_flags.c) and hdb_config_validate all read that table, so a default or a
 * range is written down exactly once. The other files reach it through hdb_config_int.h.
 */
#include "hdb_config_int.h"

#include "hdb_arena.h"
#include "hdb_err.h"

#include <inttypes.h>
#include <limits.h>
#include <string.h>
#include <strings.h>

#ifndef HDB_VERSION
#define HDB_VERSION "0.0.0-unknown"
#endif

_Static_assert(sizeof(size_t) >= 8, "HilbertDB targets 64-bit platforms (sizes up to 1 TiB)");

#define KIB ((int64_t)1 << 10)
#define MIB ((int64_t)1 << 20)
#define GIB ((int64_t)1 << 30)
#define TIB ((int64_t)1 << 40)

#define DEFAULT_LISTEN "127.0.0.1:50051"
#define DEFAULT_DATA_DIR "./data"
#define DEFAULT_MODELS_DIR "./models"
#define DEFAULT_LAG_MODE "backpressure"

/* ---- the key table ------------------------------------------------------------------------ */

/* How a value is written. */
typedef enum {
    SYN_STRING,  /* any non-empty scalar */
    SYN_OPTSTR,  /* any scalar; empty means "not set" */
    SYN_INTEGER, /* an unquoted decimal integer */
    SYN_BYTES,   /* an integer, optionally with a B/KiB/MiB/GiB/TiB suffix; may be quoted */
    SYN_BOOL,    /* unquoted true/false/yes/no */
    SYN_LEVEL    /* a log level name */
} key_syntax;

/* How a value is stored in hdb_config. */
typedef enum { ST_STR, ST_INT, ST_U32, ST_SIZE, ST_BOOL, ST_LEVEL } key_storage;

struct hdb__config_key {
    const char *key; /* full dotted key, "section.name" */
    key_syntax syn;
    key_storage st;
    size_t off;       /* offsetof(hdb_config, field) */
    int64_t min, max; /* inclusive range for SYN_INTEGER and SYN_BYTES */
    /* Extra check for strings; writes the reason (without the key) into msg. */
    int (*check)(const char *s, char *msg, size_t msglen);
};

typedef struct hdb__config_key key_spec;

static int check_listen(const char *s, char *msg, size_t msglen);
static int check_lag_mode(const char *s, char *msg, size_t msglen);
static int check_metrics_listen(const char *s, char *msg, size_t msglen);
static int check_client_auth(const char *s, char *msg, size_t msglen);

#define OFF(field) offsetof(hdb_config, field)

static const key_spec key_table[] = {
    {"server.listen", SYN_STRING, ST_STR, OFF(listen), 0, 0, check_listen},
    {"server.threads", SYN_INTEGER, ST_INT, OFF(threads), 1, 256, NULL},
    {"server.poll_threads", SYN_INTEGER, ST_INT, OFF(poll_threads), 1, 64, NULL},
    {"server.write_threads", SYN_INTEGER, ST_INT, OFF(write_threads), 1, 256, NULL},
    /* gRPC takes these limits as an int channel argument. */
    {"server.max_receive_message_bytes", SYN_BYTES, ST_SIZE, OFF(max_receive_message_bytes), KIB,
     INT_MAX, NULL},
    {"server.max_send_message_bytes", SYN_BYTES, ST_SIZE, OFF(max_send_message_bytes), KIB, INT_MAX,
     NULL},
    {"server.shutdown_grace_ms", SYN_INTEGER, ST_INT, OFF(shutdown_grace_ms), 0, 3600000, NULL},
    /* mallopt takes an int. */
    {"server.retain_freed_bytes", SYN_BYTES, ST_SIZE, OFF(retain_freed_bytes), 0, GIB, NULL},
    {"server.allow_insecure", SYN_BOOL, ST_BOOL, OFF(allow_insecure), 0, 0, NULL},
    {"tls.cert_file", SYN_OPTSTR, ST_STR, OFF(tls_cert_file), 0, 0, NULL},
    {"tls.key_file", SYN_OPTSTR, ST_STR, OFF(tls_key_file), 0, 0, NULL},
    {"tls.client_ca_file", SYN_OPTSTR, ST_STR, OFF(tls_client_ca_file), 0, 0, NULL},
    {"tls.client_auth", SYN_STRING, ST_STR, OFF(tls_client_auth), 0, 0, check_client_auth},
    {"log.level", SYN_LEVEL, ST_LEVEL, OFF(log_level), 0, 0, NULL},
    {"storage.data_dir", SYN_STRING, ST_STR, OFF(data_dir), 0, 0, NULL},
    {"storage.sync", SYN_BOOL, ST_BOOL, OFF(sync), 0, 0, NULL},
    {"storage.block_cache_bytes", SYN_BYTES, ST_SIZE, OFF(block_cache_bytes), MIB, TIB, NULL},
    {"storage.write_buffer_bytes", SYN_BYTES, ST_SIZE, OFF(write_buffer_bytes), MIB, 16 * GIB,
     NULL},
    {"storage.min_free_bytes", SYN_BYTES, ST_SIZE, OFF(min_free_bytes), 0, TIB, NULL},
    {"storage.ballast_bytes", SYN_BYTES, ST_SIZE, OFF(ballast_bytes), 0, 64 * GIB, NULL},
    {"storage.backup_dir", SYN_OPTSTR, ST_STR, OFF(backup_dir), 0, 0, NULL},
    {"limits.max_dimension", SYN_INTEGER, ST_U32, OFF(max_dimension), 1, 1048576, NULL},
    {"limits.max_points_per_upload", SYN_INTEGER, ST_U32, OFF(max_points_per_upload), 1, 1000000,
     NULL},
    {"limits.max_points_per_delete", SYN_INTEGER, ST_U32, OFF(max_points_per_delete), 1,
     100000000, NULL},
    {"limits.max_scan_points", SYN_INTEGER, ST_U32, OFF(max_scan_points), 1, 1000000000, NULL},
    {"limits.max_query_vectors", SYN_INTEGER, ST_U32, OFF(max_query_vectors), 1, 1000000, NULL},
    {"limits.max_k", SYN_INTEGER, ST_U32, OFF(max_k), 1, 1000000, NULL},
    {"limits.max_results", SYN_INTEGER, ST_U32, OFF(max_results), 1, 100000000, NULL},
    {"limits.max_attributes", SYN_INTEGER, ST_U32, OFF(max_attributes), 1, 1024, NULL},
    {"limits.max_value_bytes", SYN_BYTES, ST_U32, OFF(max_value_bytes), 1, 64 * MIB, NULL},
    {"limits.max_ef_search", SYN_INTEGER, ST_U32, OFF(max_ef_search), 1, 100000, NULL},
    {"limits.max_nprobe", SYN_INTEGER, ST_U32, OFF(max_nprobe), 1, 1000000000, NULL},
    {"limits.max_call_memory_bytes", SYN_BYTES, ST_SIZE, OFF(max_call_memory_bytes), MIB, TIB,
     NULL},
    {"limits.max_indices", SYN_INTEGER, ST_U32, OFF(max_indices), 1, 1000000, NULL},
    {"search.blas_threads", SYN_INTEGER, ST_INT, OFF(blas_threads), 1, 256, NULL},
    {"search.faiss_threads", SYN_INTEGER, ST_INT, OFF(faiss_threads), 1, 256, NULL},
    {"limits.max_wait_ms", SYN_INTEGER, ST_U32, OFF(max_wait_ms), 0, 3600000, NULL},
    {"index.snapshot_interval_seconds", SYN_INTEGER, ST_U32, OFF(snapshot_interval_seconds), 0,
     86400, NULL},
    {"index.snapshot_min_entries", SYN_INTEGER, ST_U32, OFF(snapshot_min_entries), 1, 1000000000,
     NULL},
    {"index.snapshot_every_entries", SYN_INTEGER, ST_U32, OFF(snapshot_every_entries), 0,
     1000000000, NULL},
    {"index.snapshot_every_apply_seconds", SYN_INTEGER, ST_U32, OFF(snapshot_every_apply_seconds),
     0, 86400, NULL},
    {"index.apply_batch", SYN_INTEGER, ST_U32, OFF(apply_batch), 1, 1000000, NULL},
    {"index.max_lag_entries", SYN_INTEGER, ST_U32, OFF(max_lag_entries), 0, 1000000000, NULL},
    {"index.max_lag_ms", SYN_INTEGER, ST_U32, OFF(max_lag_ms), 0, 86400000, NULL},
    {"index.lag_mode", SYN_STRING, ST_STR, OFF(lag_mode), 0, 0, check_lag_mode},
    {"index.build_threads", SYN_INTEGER, ST_INT, OFF(build_threads), 0, 256, NULL},
    {"index.applier_threads", SYN_INTEGER, ST_INT, OFF(applier_threads), 0, 256, NULL},
    {"metrics.listen", SYN_STRING, ST_STR, OFF(metrics_listen), 0, 0, check_metrics_listen},
    {"models.dir", SYN_STRING, ST_STR, OFF(models_dir), 0, 0, NULL},
    {"models.rpc_threads", SYN_INTEGER, ST_INT, OFF(model_rpc_threads), 1, 256, NULL},
    {"models.inference_threads", SYN_INTEGER, ST_INT, OFF(inference_threads), 1, 64, NULL},
    {"models.intra_op_threads", SYN_INTEGER, ST_INT, OFF(torch_intra_threads), 1, 256, NULL},
    {"models.inter_op_threads", SYN_INTEGER, ST_INT, OFF(torch_inter_threads), 1, 256, NULL},
    {"models.max_batch", SYN_INTEGER, ST_U32, OFF(max_batch), 1, 4096, NULL},
    {"models.max_wait_us", SYN_INTEGER, ST_U32, OFF(max_wait_us), 0, 1000000, NULL},
    {"models.max_image_bytes", SYN_BYTES, ST_SIZE, OFF(max_image_bytes), 1024, 256 * MIB, NULL},
    {"models.max_image_side", SYN_INTEGER, ST_U32, OFF(max_image_side), 1, 65535, NULL},
    {"models.max_image_pixels", SYN_INTEGER, ST_U32, OFF(max_image_pixels), 1, 1000000000, NULL},
    {"models.min_image_side", SYN_INTEGER, ST_U32, OFF(min_image_side), 1, 4096, NULL},
};

#define N_KEYS (sizeof key_table / sizeof key_table[0])
_Static_assert(N_KEYS <= HDB__CONFIG_MAX_KEYS, "raise HDB__CONFIG_MAX_KEYS");

static const char *const level_names[] = {"debug", "info", "warn", "error", "off"};

/* Sets every scalar field to its built-in default. Strings point at literals; hdb_config_init
 * copies them into the arena. */
void hdb__config_fill_defaults(hdb_config *c) {
    memset(c, 0, sizeof *c);
    c->listen = DEFAULT_LISTEN;
    c->threads = 4;
    c->poll_threads = 2;
    c->write_threads = 4;
    c->max_receive_message_bytes = 64 * MIB;
    c->max_send_message_bytes = 64 * MIB;
    c->shutdown_grace_ms = 10000;
    c->retain_freed_bytes = 256 * MIB;
    c->allow_insecure = false;
    c->tls_cert_file = "";
    c->tls_key_file = "";
    c->tls_client_ca_file = "";
    c->tls_client_auth = "none";
    c->log_level = HDB_LOG_INFO;
    c->data_dir = DEFAULT_DATA_DIR;
    c->sync = true;
    c->block_cache_bytes = 256 * MIB;
    c->write_buffer_bytes = 64 * MIB;
    c->min_free_bytes = 256 * MIB;
    c->ballast_bytes = 64 * MIB;
    c->backup_dir = "";
    c->max_dimension = 65536;
    c->max_points_per_upload = 10000;
    c->max_scan_points = 1000000;
    c->max_points_per_delete = 1000000;
    c->max_query_vectors = 10000;
    c->max_k = 10000;
    c->max_results = 1000000;
    c->max_attributes = 64;
    c->max_value_bytes = 65536;
    c->max_ef_search = 10000;
    c->max_nprobe = 65536;
    c->max_call_memory_bytes = GIB;
    c->max_indices = 1000;
    c->blas_threads = 1;
    c->faiss_threads = 1;
    c->max_wait_ms = 30000;
    c->snapshot_interval_seconds = 60;
    c->snapshot_min_entries = 1000;
    c->snapshot_every_entries = 1000000;
    c->snapshot_every_apply_seconds = 10;
    c->apply_batch = 4096;
    c->max_lag_entries = 100000;
    c->max_lag_ms = 5000;
    c->lag_mode = DEFAULT_LAG_MODE;
    c->build_threads = 0;
    c->applier_threads = 0;
    c->metrics_listen = "off";
    c->models_dir = DEFAULT_MODELS_DIR;
    c->model_rpc_threads = 8;
    c->inference_threads = 2;
    c->torch_intra_threads = 1;
    c->torch_inter_threads = 1;
    c->max_batch = 32;
    c->max_wait_us = 2000;
    c->max_image_bytes = 8 * MIB;
    c->max_image_side = 8192;
    c->max_image_pixels = 40000000;
    c->min_image_side = 8;
}

const key_spec *hdb__config_find_key(const char *key) {
    for (size_t i = 0; i < N_KEYS; i++)
        if (strcmp(key_table[i].key, key) == 0) return &key_table[i];
    return NULL;
}

/* Finds section.name where name is len bytes (not NUL-terminated). */
const key_spec *hdb__config_find_section_key(const char *section, const char *name, size_t len) {
    size_t slen = strlen(section);
    for (size_t i = 0; i < N_KEYS; i++) {
        const char *k = key_table[i].key;
        if (strncmp(k, section, slen) == 0 && k[slen] == '.' && strlen(k + slen + 1) == len &&
            memcmp(k + slen + 1, name, len) == 0)
            return &key_table[i];
    }
    return NULL;
}

/* ---- reading and writing fields ------------------------------------------------------------ */

static int64_t field_int(const hdb_config *c, const key_spec *k) {
    const char *p = (const char *)c + k->off;
    switch (k->st) {
    case ST_INT:
        return *(const int *)(const void *)p;
    case ST_U32:
        return *(const uint32_t *)(const void *)p;
    case ST_SIZE: {
        size_t v = *(const size_t *)(const void *)p;
        return v > (size_t)INT64_MAX ? INT64_MAX : (int64_t)v;
    }
    case ST_BOOL:
        return *(const bool *)(const void *)p;
    case ST_LEVEL:
        return *(const hdb_log_level *)(const void *)p;
    case ST_STR:
        break;
    }
    HDB_ASSERT(!"field_int on a string key");
    return 0;
}

static void set_field_int(hdb_config *c, const key_spec *k, int64_t v) {
    char *p = (char *)c + k->off;
    switch (k->st) {
    case ST_INT:
        *(int *)(void *)p = (int)v;
        return;
    case ST_U32:
        *(uint32_t *)(void *)p = (uint32_t)v;
        return;
    case ST_SIZE:
        *(size_t *)(void *)p = (size_t)v;
        return;
    case ST_BOOL:
        *(bool *)(void *)p = v != 0;
        return;
    case ST_LEVEL:
        *(hdb_log_level *)(void *)p = (hdb_log_level)v;
        return;
    case ST_STR:
        break;
    }
    HDB_ASSERT(!"set_field_int on a string key");
}

static char **field_str(hdb_config *c, const key_spec *k) {
    HDB_ASSERT(k->st == ST_STR);
    return (char **)(void *)((char *)c + k->off);
}

/* Writes v as "64MiB" when it is a whole number of KiB/MiB/GiB/TiB, else as plain bytes. */
static const char *fmt_bytes(int64_t v, char *buf, size_t n) {
    static const struct {
        int64_t unit;
        const char *suffix;
    } units[] = {{TIB, "TiB"}, {GIB, "GiB"}, {MIB, "MiB"}, {KIB, "KiB"}};
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
        if (v > 0 && v % units[i].unit == 0) {
            snprintf(buf, n, "%" PRId64 "%s", v / units[i].unit, units[i].suffix);
            return buf;
        }
    }
    snprintf(buf, n, "%" PRId64, v);
    return buf;
}

/* Describes what k accepts, for "must be <...>" messages. */
const char *hdb__config_describe(const key_spec *k, char *buf, size_t n) {
    char lo[32], hi[32];
    switch (k->syn) {
    case SYN_STRING:
        snprintf(buf, n, "a non-empty string");
        break;
    case SYN_OPTSTR:
        snprintf(buf, n, "a string (\"\" for none)");
        break;
    case SYN_INTEGER:
        snprintf(buf, n, "an integer between %" PRId64 " and %" PRId64, k->min, k->max);
        break;
    case SYN_BYTES:
        snprintf(buf, n,
                 "a byte size between %s and %s, written as an integer optionally followed by "
                 "KiB, MiB, GiB or TiB (e.g. 64MiB)",
                 fmt_bytes(k->min, lo, sizeof lo), fmt_bytes(k->max, hi, sizeof hi));
        break;
    case SYN_BOOL:
        snprintf(buf, n, "a boolean: true, false, yes or no");
        break;
    case SYN_LEVEL:
        snprintf(buf, n, "one of debug, info, warn, error, off");
        break;
    }
    return buf;
}

/* Renders the current value of k in c as it would be written in the file. */
const char *hdb__config_format_value(const hdb_config *c, const key_spec *k, char *buf, size_t n) {
    switch (k->syn) {
    case SYN_STRING:
    case SYN_OPTSTR: {
        const char *s = *(char *const *)(const void *)((const char *)c + k->off);
        snprintf(buf, n, "%s", s ? s : "");
        break;
    }
    case SYN_INTEGER:
        snprintf(buf, n, "%" PRId64, field_int(c, k));
        break;
    case SYN_BYTES:
        fmt_bytes(field_int(c, k), buf, n);
        break;
    case SYN_BOOL:
        snprintf(buf, n, "%s", field_int(c, k) ? "true" : "false");
        break;
    case SYN_LEVEL: {
        int64_t l = field_int(c, k);
        snprintf(buf, n, "%s", l >= 0 && l <= HDB_LOG_OFF ? level_names[l] : "unknown");
        break;
    }
    }
    return buf;
}

/* Parses an unsigned decimal integer (digits only). Returns 0, or -1 on syntax or overflow. */
int hdb__config_parse_uint(const char *s, size_t *pos, uint64_t *out) {
    size_t i = *pos;
    uint64_t v = 0;
    if (s[i] < '0' || s[i] > '9') return -1;
    for (; s[i] >= '0' && s[i] <= '9'; i++) {
        unsigned d = (unsigned)(s[i] - '0');
        if (v > (UINT64_MAX - d) / 10) return -1;
        v = v * 10 + d;
    }
    *pos = i;
    *out = v;
    return 0;
}

/* Parses "123", "64MiB", "64 MiB", "512B". Returns 0, or -1 on syntax or overflow. */
static int parse_bytes(const char *s, uint64_t *out) {
    static const struct {
        const char *suffix;
        uint64_t mult;
    } suffixes[] = {{"", 1}, {"B", 1}, {"KiB", KIB}, {"MiB", MIB}, {"GiB", GIB}, {"TiB", TIB}};
    size_t i = 0;
    uint64_t v;
    if (hdb__config_parse_uint(s, &i, &v) != 0) return -1;
    while (s[i] == ' ')
        i++;
    for (size_t j = 0; j < sizeof suffixes / sizeof suffixes[0]; j++) {
        if (strcmp(s + i, suffixes[j].suffix) == 0) {
            if (v > UINT64_MAX / suffixes[j].mult) return -1;
            *out = v * suffixes[j].mult;
            return 0;
        }
    }
    return -1;
}

int hdb__config_parse_bool(const char *s, bool *out) {
    if (strcasecmp(s, "true") == 0 || strcasecmp(s, "yes") == 0) {
        *out = true;
    } else if (strcasecmp(s, "false") == 0 || strcasecmp(s, "no") == 0) {
        *out = false;
    } else {
        return -1;
    }
    return 0;
}

/* Checks a gRPC listen address: "host:port" (port 0..65535, 0 = any free port), "[v6]:port",
 * "unix:PATH" or "unix-abstract:NAME". */
static int check_listen(const char *s, char *msg, size_t msglen) {
    static const char *const hint =
        "must be host:port (e.g. 127.0.0.1:50051, 0.0.0.0:50051, [::1]:50051) or unix:PATH";
    if (strncmp(s, "unix:", 5) == 0 || strncmp(s, "unix-abstract:", 14) == 0) {
        if (strchr(s, ':')[1] == '\0') return hdb_errf(msg, msglen, HDB_EINVAL, "%s", hint);
        return HDB_OK;
    }
    const char *colon = strrchr(s, ':');
    if (colon == NULL || colon == s) return hdb_errf(msg, msglen, HDB_EINVAL, "%s", hint);
    size_t hostlen = (size_t)(colon - s);
    if (memchr(s, ':', hostlen) != NULL && !(s[0] == '[' && s[hostlen - 1] == ']'))
        return hdb_errf(msg, msglen, HDB_EINVAL, "%s; an IPv6 host needs brackets", hint);
    size_t pos = 0;
    uint64_t port;
    const char *p = colon + 1;
    if (hdb__config_parse_uint(p, &pos, &port) != 0 || p[pos] != '\0' || port > 65535)
        return hdb_errf(msg, msglen, HDB_EINVAL, "%s; the port must be 0..65535", hint);
    return HDB_OK;
}

static int check_metrics_listen(const char *s, char *msg, size_t msglen) {
    if (strcmp(s, "off") == 0) return HDB_OK;
    static const char *const hosts[] = {"127.0.0.1:", "localhost:", "[::1]:"};
    for (size_t i = 0; i < sizeof hosts / sizeof hosts[0]; i++) {
        size_t hl = strlen(hosts[i]);
        if (strncmp(s, hosts[i], hl) != 0) continue;
        size_t pos = 0;
        uint64_t port;
        if (hdb__config_parse_uint(s + hl, &pos, &port) == 0 && s[hl + pos] == '\0' &&
            port <= 65535)
            return HDB_OK;
        return hdb_errf(msg, msglen, HDB_EINVAL, "the port must be 0..65535 (got \"%s\")", s);
    }
    return hdb_errf(msg, msglen, HDB_EINVAL,
                    "must be off or 127.0.0.1:PORT, localhost:PORT or [::1]:PORT (got \"%s\"): "
                    "the endpoint has no TLS and no keys, so it serves this machine only",
                    s);
}

static int check_client_auth(const char *s, char *msg, size_t msglen) {
    if (strcmp(s, "none") == 0 || strcmp(s, "request") == 0 || strcmp(s, "require") == 0)
        return HDB_OK;
    return hdb_errf(msg, msglen, HDB_EINVAL, "must be none, request or require (got \"%.60s\")",
                    s);
}

bool hdb_config_listen_is_loopback(const char *s) {
    if (strncmp(s, "unix:", 5) == 0 || strncmp(s, "unix-abstract:", 14) == 0) return true;
    const char *colon = strrchr(s, ':');
    if (colon == NULL) return false;
    size_t hostlen = (size_t)(colon - s);
    if (hostlen == 9 && strncasecmp(s, "localhost", 9) == 0) return true;
    if (hostlen == 5 && memcmp(s, "[::1]", 5) == 0) return true;
    /* 127.0.0.0/8: four dotted decimal bytes, the first 127. */
    if (hostlen < 4 || memcmp(s, "127.", 4) != 0) return false;
    int dots = 0, digits = 0;
    for (size_t i = 4; i < hostlen; i++) {
        if (s[i] == '.') {
            if (digits == 0) return false;
            dots++;
            digits = 0;
        } else if (s[i] >= '0' && s[i] <= '9' && digits < 3) {
            digits++;
        } else {
            return false;
        }
    }
    return dots == 2 && digits > 0;
}

static const char *const role_names[] = {"unset", "open", "read", "write", "admin"};

const char *hdb_role_name(hdb_role r) {
    return (unsigned)r < sizeof role_names / sizeof role_names[0] ? role_names[r] : "unknown";
}

int hdb_role_parse(const char *s, hdb_role *out) {
    for (hdb_role r = HDB_ROLE_READ; r <= HDB_ROLE_ADMIN; r++)
        if (strcmp(s, role_names[r]) == 0) {
            *out = r;
            return HDB_OK;
        }
    return HDB_EINVAL;
}

static int hex_value(char ch) {
    if (ch >= '0' && ch <= '9') return ch - '0';
    if (ch >= 'a' && ch <= 'f') return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F') return ch - 'A' + 10;
    return -1;
}

/* Decodes n hex digits at s into out (n/2 bytes; NULL: only check). Returns 0 or -1. */
static int decode_hex(const char *s, size_t n, unsigned char *out) {
    if (n % 2 != 0) return -1;
    for (size_t i = 0; i < n; i += 2) {
        int hi = hex_value(s[i]), lo = hex_value(s[i + 1]);
        if (hi < 0 || lo < 0) return -1;
        if (out != NULL) out[i / 2] = (unsigned char)(hi << 4 | lo);
    }
    return 0;
}

int hdb_config_parse_key_hash(const char *s, unsigned char *salt, size_t *saltlen,
                              unsigned char *digest, char *msg, size_t msglen) {
    static const char *const shape = "must be sha256:<salt hex>:<64 hex digits>, as printed by "
                                     "hilbertd --hash-key or --new-key";
    if (strncmp(s, "sha256:", 7) != 0)
        return hdb_errf(msg, msglen, HDB_EINVAL, "%s (it does not start with sha256:)", shape);
    const char *p = s + 7, *colon = strchr(p, ':');
    if (colon == NULL) return hdb_errf(msg, msglen, HDB_EINVAL, "%s (no salt)", shape);
    size_t nsalt = (size_t)(colon - p), ndigest = strlen(colon + 1);
    if (nsalt < 16 || nsalt > 128 || decode_hex(p, nsalt, salt) != 0)
        return hdb_errf(msg, msglen, HDB_EINVAL,
                        "%s (the salt must be 16 to 128 hex digits, an even number)", shape);
    if (ndigest != 64 || decode_hex(colon + 1, 64, digest) != 0)
        return hdb_errf(msg, msglen, HDB_EINVAL, "%s (the hash must be 64 hex digits)", shape);
    if (saltlen != NULL) *saltlen = nsalt / 2;
    return HDB_OK;
}

static int check_lag_mode(const char *s, char *msg, size_t msglen) {
    if (strcmp(s, "backpressure") == 0 || strcmp(s, "fall_behind") == 0) return HDB_OK;
    return hdb_errf(msg, msglen, HDB_EINVAL, "must be backpressure or fall_behind (got \"%s\")",
                    s);
}

/* Parses the scalar text (len bytes, NUL-terminated; NULL for a YAML null) for key k and stores
 * it in c, copying strings into c->arena. quoted says the YAML scalar was quoted (flags count as
 * unquoted); integers and booleans must not be. On failure writes the reason, without the key,
 * into msg and returns HDB_EINVAL; c is unchanged then. */
int hdb__config_set_value(hdb_config *c, const key_spec *k, const char *text, size_t len,
                          bool quoted, char *msg, size_t msglen) {
    char expect[192];
    hdb__config_describe(k, expect, sizeof expect);
    if (text == NULL) return hdb_errf(msg, msglen, HDB_EINVAL, "must be %s (got null)", expect);
    if (memchr(text, '\0', len) != NULL)
        return hdb_errf(msg, msglen, HDB_EINVAL, "must be %s (got a value with a NUL byte)",
                        expect);
    int shown = len > 60 ? 57 : (int)len;
    const char *more = len > 60 ? "..." : "";
    const char *q = quoted ? "a quoted string " : "";

    switch (k->syn) {
    case SYN_OPTSTR:
        *field_str(c, k) = hdb_arena_strndup(c->arena, text, len);
        return HDB_OK;
    case SYN_STRING:
        if (len == 0) return hdb_errf(msg, msglen, HDB_EINVAL, "must be %s", expect);
        if (k->check != NULL && k->check(text, msg, msglen) != HDB_OK) return HDB_EINVAL;
        *field_str(c, k) = hdb_arena_strndup(c->arena, text, len);
        return HDB_OK;
    case SYN_INTEGER: {
        uint64_t v;
        size_t pos = 0;
        if (quoted || hdb__config_parse_uint(text, &pos, &v) != 0 || text[pos] != '\0' ||
            v < (uint64_t)k->min || v > (uint64_t)k->max)
            break;
        set_field_int(c, k, (int64_t)v);
        return HDB_OK;
    }
    case SYN_BYTES: {
        uint64_t v;
        if (parse_bytes(text, &v) != 0 || v < (uint64_t)k->min || v > (uint64_t)k->max) break;
        set_field_int(c, k, (int64_t)v);
        return HDB_OK;
    }
    case SYN_BOOL: {
        bool b;
        if (quoted || hdb__config_parse_bool(text, &b) != 0) break;
        set_field_int(c, k, b);
        return HDB_OK;
    }
    case SYN_LEVEL: {
        hdb_log_level l;
        if (hdb_log_parse_level(text, &l) != 0) break;
        set_field_int(c, k, l);
        return HDB_OK;
    }
    }
    return hdb_errf(msg, msglen, HDB_EINVAL, "must be %s (got %s\"%.*s%s\")", expect, q, shown,
                    text, more);
}

/* ---- lookups for the other files of the module ------------------------------------------- */

size_t hdb__config_section_keys(const char *section, const char **names) {
    size_t n = 0, slen = strlen(section);
    for (size_t i = 0; i < N_KEYS; i++)
        if (strncmp(key_table[i].key, section, slen) == 0 && key_table[i].key[slen] == '.')
            names[n++] = key_table[i].key + slen + 1;
    return n;
}

const char *hdb__config_key_name(const key_spec *k) {
    return k->key;
}

/* ---- public API ---------------------------------------------------------------------------- */

/* Fills c with the built-in defaults and creates its arena; the default strings are copied into
 * the arena. c must not hold an arena already (that one would leak). */
void hdb_config_init(hdb_config *c) {
    HDB_ASSERT(c != NULL);
    hdb__config_fill_defaults(c);
    c->arena = hdb_arena_create(0);
    c->listen = hdb_arena_strndup(c->arena, DEFAULT_LISTEN, strlen(DEFAULT_LISTEN));
    c->data_dir = hdb_arena_strndup(c->arena, DEFAULT_DATA_DIR, strlen(DEFAULT_DATA_DIR));
}

/* The cross-field rules of tls:, auth: and server.listen (see hdb_config_validate). */
static int validate_security(const hdb_config *c, char *err, size_t errlen) {
    char msg[256];
    bool tls = c->tls_cert_file != NULL && c->tls_cert_file[0] != '\0';
    bool has_key = c->tls_key_file != NULL && c->tls_key_file[0] != '\0';
    bool has_ca = c->tls_client_ca_file != NULL && c->tls_client_ca_file[0] != '\0';
    if (tls && !has_key)
        return hdb_errf(err, errlen, HDB_EINVAL,
                        "tls.key_file: required when tls.cert_file is set (the certificate's "
                        "private key)");
    if (!tls && (has_key || has_ca))
        return hdb_errf(err, errlen, HDB_EINVAL, "%s: set, but tls.cert_file is not (TLS is off)",
                        has_key ? "tls.key_file" : "tls.client_ca_file");
    if (strcmp(c->tls_client_auth, "none") != 0 && !has_ca)
        return hdb_errf(err, errlen, HDB_EINVAL,
                        "tls.client_auth: %s needs tls.client_ca_file (the CAs that sign the "
                        "client certificates)",
                        c->tls_client_auth);
    if (has_ca && strcmp(c->tls_client_auth, "none") == 0)
        return hdb_errf(err, errlen, HDB_EINVAL,
                        "tls.client_ca_file: set, but tls.client_auth is none (use request or "
                        "require to verify client certificates)");
    for (size_t i = 0; i < c->n_api_keys; i++) {
        const hdb_config_api_key *k = &c->api_keys[i];
        if (k->role < HDB_ROLE_READ || k->role > HDB_ROLE_ADMIN)
            return hdb_errf(err, errlen, HDB_EINVAL, "auth.keys[%zu].role: must be read, write or "
                            "admin", i);
        if (hdb_config_parse_key_hash(k->hash, NULL, NULL, NULL, msg, sizeof msg) != HDB_OK)
            return hdb_errf(err, errlen, HDB_EINVAL, "auth.keys[%zu].hash: %s", i, msg);
    }
    if (!hdb_config_listen_is_loopback(c->listen) && !c->allow_insecure &&
        !(tls && c->n_api_keys > 0))
        return hdb_errf(err, errlen, HDB_EINVAL,
                        "server.listen: %s is not a loopback address, and hilbertd serves other "
                        "machines only with TLS (tls.cert_file) and API keys (auth.keys) both "
                        "configured; set server.allow_insecure: true to serve it without them "
                        "(%s%s%s)",
                        c->listen, tls ? "" : "no TLS", !tls && c->n_api_keys == 0 ? ", " : "",
                        c->n_api_keys == 0 ? "no API keys" : "");
    return HDB_OK;
}

/* Frees the arena, and with it every string and message of c, then clears c. NULL is allowed,
 * and so is a zeroed or already freed config. */
void hdb_config_free(hdb_config *c) {
    if (c == NULL) return;
    hdb_arena_free(c->arena);
    memset(c, 0, sizeof *c);
}

/* Re-checks every key against the ranges in key_table (fields may have been set directly), the
 * listen address, and the cross-field constraint max_value_bytes <= max_receive_message_bytes.
 * Messages name the key, e.g. "server.threads: must be an integer between 1 and 256 (is 0)". */
int hdb_config_validate(const hdb_config *c, char *err, size_t errlen) {
    char expect[192], msg[256];
    HDB_ASSERT(c != NULL);
    for (size_t i = 0; i < N_KEYS; i++) {
        const key_spec *k = &key_table[i];
        switch (k->syn) {
        case SYN_OPTSTR:
            if (*(char *const *)(const void *)((const char *)c + k->off) == NULL)
                return hdb_errf(err, errlen, HDB_EINVAL, "%s: must be a string", k->key);
            break;
        case SYN_STRING: {
            const char *s = *(char *const *)(const void *)((const char *)c + k->off);
            if (s == NULL || s[0] == '\0')
                return hdb_errf(err, errlen, HDB_EINVAL, "%s: must be a non-empty string", k->key);
            if (k->check != NULL && k->check(s, msg, sizeof msg) != HDB_OK)
                return hdb_errf(err, errlen, HDB_EINVAL, "%s: %s", k->key, msg);
            break;
        }
        case SYN_INTEGER:
        case SYN_BYTES: {
            int64_t v = field_int(c, k);
            if (v < k->min || v > k->max)
                return hdb_errf(err, errlen, HDB_EINVAL, "%s: must be %s (is %" PRId64 ")", k->key,
                                hdb__config_describe(k, expect, sizeof expect), v);
            break;
        }
        case SYN_LEVEL: {
            int64_t v = field_int(c, k);
            if (v < HDB_LOG_DEBUG || v > HDB_LOG_OFF)
                return hdb_errf(err, errlen, HDB_EINVAL, "%s: must be %s (is %" PRId64 ")", k->key,
                                hdb__config_describe(k, expect, sizeof expect), v);
            break;
        }
        case SYN_BOOL:
            break;
        }
    }
    if ((size_t)c->max_value_bytes > c->max_receive_message_bytes)
        return hdb_errf(err, errlen, HDB_EINVAL,
                        "limits.max_value_bytes: must not exceed server.max_receive_message_bytes "
                        "(%" PRIu32 " > %zu)",
                        c->max_value_bytes, c->max_receive_message_bytes);
    if ((c->n_data_sources > 0 && c->data_sources == NULL) ||
        (c->n_indices > 0 && c->indices == NULL))
        return hdb_errf(err, errlen, HDB_EINVAL, "data_sources/indices: count without a list");
    if (c->n_api_keys > 0 && c->api_keys == NULL)
        return hdb_errf(err, errlen, HDB_EINVAL, "auth.keys: count without a list");
    return validate_security(c, err, errlen);
}

/* Returns a static string; HDB_VERSION comes from the build (CMake's project version). */
const char *hdb_version_string(void) {
    return "hilbertd " HDB_VERSION;
}
