/*
 * hdb_config.c - the server configuration: built-in defaults, the YAML file (read with libyaml's
 * document API) and the command-line flags, plus the checks that tie them together.
 *
 * One table (key_table) describes every scalar key: its dotted name, its syntax, where it lives
 * in hdb_config and its allowed range. The file loader, the flag parser, hdb_config_validate and
 * the --help text all read that table, so a default or a range is written down exactly once.
 *
 * Declared data sources and indices are only checked for shape here (required keys present, the
 * right YAML types, known enum names) and turned into protobuf-c messages allocated from the
 * config's arena. Their meaning (valid names, subsets, duplicates, dimension limits) is checked by
 * the catalog when it ensures them at start, with the same code that serves CreateDataSource and
 * CreateIndex.
 *
 * Loading is all-or-nothing: the file and the flags are applied to a copy of the config, which is
 * copied back only when everything succeeded. Strings from a failed attempt stay in the arena
 * until hdb_config_free; that is a bounded, one-off cost at startup.
 */
#include "hdb_config.h"

#include "hdb_arena.h"
#include "hdb_err.h"
#include "hdb_mem.h"
#include "hdb_types.h"

#include <yaml.h>

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
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

/* A config file larger than this is certainly a mistake (e.g. --config pointing at data). */
#define MAX_FILE_BYTES (16 * MIB)

/* ---- the key table ------------------------------------------------------------------------ */

/* How a value is written. */
typedef enum {
    SYN_STRING,  /* any non-empty scalar */
    SYN_INTEGER, /* an unquoted decimal integer */
    SYN_BYTES,   /* an integer, optionally with a B/KiB/MiB/GiB/TiB suffix; may be quoted */
    SYN_BOOL,    /* unquoted true/false/yes/no */
    SYN_LEVEL    /* a log level name */
} key_syntax;

/* How a value is stored in hdb_config. */
typedef enum { ST_STR, ST_INT, ST_U32, ST_SIZE, ST_BOOL, ST_LEVEL } key_storage;

typedef struct {
    const char *key; /* full dotted key, "section.name" */
    key_syntax syn;
    key_storage st;
    size_t off;       /* offsetof(hdb_config, field) */
    int64_t min, max; /* inclusive range for SYN_INTEGER and SYN_BYTES */
    /* Extra check for strings; writes the reason (without the key) into msg. */
    int (*check)(const char *s, char *msg, size_t msglen);
} key_spec;

static int check_listen(const char *s, char *msg, size_t msglen);

#define OFF(field) offsetof(hdb_config, field)

static const key_spec key_table[] = {
    {"server.listen", SYN_STRING, ST_STR, OFF(listen), 0, 0, check_listen},
    {"server.threads", SYN_INTEGER, ST_INT, OFF(threads), 1, 256, NULL},
    /* gRPC takes these limits as an int channel argument. */
    {"server.max_receive_message_bytes", SYN_BYTES, ST_SIZE, OFF(max_receive_message_bytes), KIB,
     INT_MAX, NULL},
    {"server.max_send_message_bytes", SYN_BYTES, ST_SIZE, OFF(max_send_message_bytes), KIB, INT_MAX,
     NULL},
    {"server.shutdown_grace_ms", SYN_INTEGER, ST_INT, OFF(shutdown_grace_ms), 0, 3600000, NULL},
    /* mallopt takes an int. */
    {"server.retain_freed_bytes", SYN_BYTES, ST_SIZE, OFF(retain_freed_bytes), 0, GIB, NULL},
    {"log.level", SYN_LEVEL, ST_LEVEL, OFF(log_level), 0, 0, NULL},
    {"storage.data_dir", SYN_STRING, ST_STR, OFF(data_dir), 0, 0, NULL},
    {"storage.sync", SYN_BOOL, ST_BOOL, OFF(sync), 0, 0, NULL},
    {"storage.block_cache_bytes", SYN_BYTES, ST_SIZE, OFF(block_cache_bytes), MIB, TIB, NULL},
    {"storage.write_buffer_bytes", SYN_BYTES, ST_SIZE, OFF(write_buffer_bytes), MIB, 16 * GIB,
     NULL},
    {"limits.max_dimension", SYN_INTEGER, ST_U32, OFF(max_dimension), 1, 1048576, NULL},
    {"limits.max_points_per_upload", SYN_INTEGER, ST_U32, OFF(max_points_per_upload), 1, 1000000,
     NULL},
    {"limits.max_query_vectors", SYN_INTEGER, ST_U32, OFF(max_query_vectors), 1, 1000000, NULL},
    {"limits.max_k", SYN_INTEGER, ST_U32, OFF(max_k), 1, 1000000, NULL},
    {"limits.max_results", SYN_INTEGER, ST_U32, OFF(max_results), 1, 100000000, NULL},
    {"limits.max_attributes", SYN_INTEGER, ST_U32, OFF(max_attributes), 1, 1024, NULL},
    {"limits.max_value_bytes", SYN_BYTES, ST_U32, OFF(max_value_bytes), 1, 64 * MIB, NULL},
    {"search.blas_threads", SYN_INTEGER, ST_INT, OFF(blas_threads), 1, 256, NULL},
    {"search.faiss_threads", SYN_INTEGER, ST_INT, OFF(faiss_threads), 1, 256, NULL},
    {"limits.max_wait_ms", SYN_INTEGER, ST_U32, OFF(max_wait_ms), 0, 3600000, NULL},
    {"index.snapshot_interval_seconds", SYN_INTEGER, ST_U32, OFF(snapshot_interval_seconds), 0,
     86400, NULL},
    {"index.snapshot_min_entries", SYN_INTEGER, ST_U32, OFF(snapshot_min_entries), 1, 1000000000,
     NULL},
    {"index.apply_batch", SYN_INTEGER, ST_U32, OFF(apply_batch), 1, 1000000, NULL},
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

/* Top-level keys: the sections of key_table, then the two lists of catalog objects. */
static const char *const top_keys[] = {"server",       "log",     "storage", "limits",
                                       "search",       "index",   "models",  "data_sources",
                                       "indices",      "model_spaces"};
#define N_TOP (sizeof top_keys / sizeof top_keys[0])

static const char *const level_names[] = {"debug", "info", "warn", "error", "off"};

/* Sets every scalar field to its built-in default. Strings point at literals; hdb_config_init
 * copies them into the arena. */
static void fill_defaults(hdb_config *c) {
    memset(c, 0, sizeof *c);
    c->listen = DEFAULT_LISTEN;
    c->threads = 4;
    c->max_receive_message_bytes = 64 * MIB;
    c->max_send_message_bytes = 64 * MIB;
    c->shutdown_grace_ms = 10000;
    c->retain_freed_bytes = 256 * MIB;
    c->log_level = HDB_LOG_INFO;
    c->data_dir = DEFAULT_DATA_DIR;
    c->sync = true;
    c->block_cache_bytes = 256 * MIB;
    c->write_buffer_bytes = 64 * MIB;
    c->max_dimension = 65536;
    c->max_points_per_upload = 10000;
    c->max_query_vectors = 10000;
    c->max_k = 10000;
    c->max_results = 1000000;
    c->max_attributes = 64;
    c->max_value_bytes = 65536;
    c->blas_threads = 1;
    c->faiss_threads = 1;
    c->max_wait_ms = 30000;
    c->snapshot_interval_seconds = 60;
    c->snapshot_min_entries = 1000;
    c->apply_batch = 4096;
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

static const key_spec *find_key(const char *key) {
    for (size_t i = 0; i < N_KEYS; i++)
        if (strcmp(key_table[i].key, key) == 0) return &key_table[i];
    return NULL;
}

/* Finds section.name where name is len bytes (not NUL-terminated). */
static const key_spec *find_section_key(const char *section, const char *name, size_t len) {
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
static const char *describe_expected(const key_spec *k, char *buf, size_t n) {
    char lo[32], hi[32];
    switch (k->syn) {
    case SYN_STRING:
        snprintf(buf, n, "a non-empty string");
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
static const char *format_value(const hdb_config *c, const key_spec *k, char *buf, size_t n) {
    switch (k->syn) {
    case SYN_STRING: {
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
static int parse_uint(const char *s, size_t *pos, uint64_t *out) {
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
    if (parse_uint(s, &i, &v) != 0) return -1;
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

static int parse_bool(const char *s, bool *out) {
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
    if (parse_uint(p, &pos, &port) != 0 || p[pos] != '\0' || port > 65535)
        return hdb_errf(msg, msglen, HDB_EINVAL, "%s; the port must be 0..65535", hint);
    return HDB_OK;
}

/* Parses the scalar text (len bytes, NUL-terminated; NULL for a YAML null) for key k and stores
 * it in c, copying strings into c->arena. quoted says the YAML scalar was quoted (flags count as
 * unquoted); integers and booleans must not be. On failure writes the reason, without the key,
 * into msg and returns HDB_EINVAL; c is unchanged then. */
static int set_value(hdb_config *c, const key_spec *k, const char *text, size_t len, bool quoted,
                     char *msg, size_t msglen) {
    char expect[192];
    describe_expected(k, expect, sizeof expect);
    if (text == NULL) return hdb_errf(msg, msglen, HDB_EINVAL, "must be %s (got null)", expect);
    if (memchr(text, '\0', len) != NULL)
        return hdb_errf(msg, msglen, HDB_EINVAL, "must be %s (got a value with a NUL byte)",
                        expect);
    int shown = len > 60 ? 57 : (int)len;
    const char *more = len > 60 ? "..." : "";
    const char *q = quoted ? "a quoted string " : "";

    switch (k->syn) {
    case SYN_STRING:
        if (len == 0) return hdb_errf(msg, msglen, HDB_EINVAL, "must be %s", expect);
        if (k->check != NULL && k->check(text, msg, msglen) != HDB_OK) return HDB_EINVAL;
        *field_str(c, k) = hdb_arena_strndup(c->arena, text, len);
        return HDB_OK;
    case SYN_INTEGER: {
        uint64_t v;
        size_t pos = 0;
        if (quoted || parse_uint(text, &pos, &v) != 0 || text[pos] != '\0' ||
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
        if (quoted || parse_bool(text, &b) != 0) break;
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

/* ---- the YAML file ------------------------------------------------------------------------- */

typedef struct {
    yaml_document_t *doc;
    const char *file;
    hdb_config *c; /* the working copy */
    char *err;
    size_t errlen;
} loader;

static unsigned long line_of(const yaml_node_t *n) {
    return (unsigned long)n->start_mark.line + 1;
}

/* Formats "file:line: key: message" into the error buffer and returns HDB_EINVAL. */
static int fail(const loader *L, const yaml_node_t *n, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int fail(const loader *L, const yaml_node_t *n, const char *key, const char *fmt, ...) {
    char msg[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (key == NULL || key[0] == '\0')
        return hdb_errf(L->err, L->errlen, HDB_EINVAL, "%s:%lu: %s", L->file, line_of(n), msg);
    return hdb_errf(L->err, L->errlen, HDB_EINVAL, "%s:%lu: %s: %s", L->file, line_of(n), key, msg);
}

static yaml_node_t *node_at(const loader *L, int id) {
    yaml_node_t *n = yaml_document_get_node(L->doc, id);
    HDB_ASSERT(n != NULL);
    return n;
}

static const char *scalar_text(const yaml_node_t *n) {
    return (const char *)n->data.scalar.value;
}

static bool is_quoted(const yaml_node_t *n) {
    return n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE;
}

/* An unquoted "", "~" or "null" (YAML's null), as in `indices:` with nothing after it. */
static bool is_null(const yaml_node_t *n) {
    if (n->type != YAML_SCALAR_NODE || is_quoted(n)) return false;
    const char *s = scalar_text(n);
    return s[0] == '\0' || strcmp(s, "~") == 0 || strcmp(s, "null") == 0 ||
           strcmp(s, "Null") == 0 || strcmp(s, "NULL") == 0;
}

static const char *kind_name(const yaml_node_t *n) {
    if (is_null(n)) return "null";
    switch (n->type) {
    case YAML_MAPPING_NODE:
        return "a mapping";
    case YAML_SEQUENCE_NODE:
        return "a list";
    case YAML_SCALAR_NODE:
        return "a scalar";
    default:
        return "an empty node";
    }
}

/* Formats a key path into buf. Paths that do not fit are cut; they only appear in messages. */
static const char *path_printf(char *buf, size_t n, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static const char *path_printf(char *buf, size_t n, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, n, fmt, ap);
    va_end(ap);
    return buf;
}

/* Writes "prefix.name" (or just name when prefix is empty) into buf. */
static const char *join(char *buf, size_t n, const char *prefix, const char *name, size_t len) {
    if (prefix[0] == '\0') return path_printf(buf, n, "%.*s", (int)len, name);
    return path_printf(buf, n, "%s.%.*s", prefix, (int)len, name);
}

static bool key_is(const yaml_node_t *k, const char *name) {
    return k->data.scalar.length == strlen(name) &&
           memcmp(k->data.scalar.value, name, k->data.scalar.length) == 0;
}

/* Checks that n is a mapping (null counts as an empty one) whose keys are distinct scalars from
 * known[]. Errors name the key at path ("" for the top level). */
static int check_mapping(const loader *L, const yaml_node_t *n, const char *path,
                         const char *const *known, size_t nknown) {
    char key[256];
    if (is_null(n)) return HDB_OK;
    if (n->type != YAML_MAPPING_NODE) {
        if (path[0] == '\0')
            return fail(L, n, NULL, "the top level must be a mapping of sections, not %s",
                        kind_name(n));
        return fail(L, n, path, "must be a mapping, not %s", kind_name(n));
    }
    for (yaml_node_pair_t *p = n->data.mapping.pairs.start; p < n->data.mapping.pairs.top; p++) {
        const yaml_node_t *k = node_at(L, p->key);
        if (k->type != YAML_SCALAR_NODE)
            return fail(L, k, path, "keys must be plain names, not %s", kind_name(k));
        const char *ks = scalar_text(k);
        size_t klen = k->data.scalar.length;
        join(key, sizeof key, path, ks, klen);
        bool found = false;
        for (size_t i = 0; i < nknown && !found; i++)
            found = key_is(k, known[i]);
        if (!found) {
            char list[512];
            size_t used = 0;
            list[0] = '\0';
            for (size_t i = 0; i < nknown && used < sizeof list; i++)
                used += (size_t)snprintf(list + used, sizeof list - used, "%s%s", i ? ", " : "",
                                         known[i]);
            return fail(L, k, key, "unknown key (expected one of: %s)", list);
        }
        for (yaml_node_pair_t *q = n->data.mapping.pairs.start; q < p; q++) {
            const yaml_node_t *prev = node_at(L, q->key);
            if (prev->type == YAML_SCALAR_NODE && prev->data.scalar.length == klen &&
                memcmp(prev->data.scalar.value, ks, klen) == 0)
                return fail(L, k, key, "duplicate key (first given at line %lu)", line_of(prev));
        }
    }
    return HDB_OK;
}

/* Returns the value of key name in a mapping checked by check_mapping, or NULL. */
static yaml_node_t *lookup(const loader *L, const yaml_node_t *map, const char *name) {
    if (map->type != YAML_MAPPING_NODE) return NULL;
    for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top; p++)
        if (key_is(node_at(L, p->key), name)) return node_at(L, p->value);
    return NULL;
}

/* Looks up a key that must be present; errors name path.name at the mapping's line. */
static int require(const loader *L, const yaml_node_t *map, const char *path, const char *name,
                   yaml_node_t **out) {
    char key[256];
    *out = lookup(L, map, name);
    if (*out == NULL)
        return fail(L, map, join(key, sizeof key, path, name, strlen(name)),
                    "required key is missing");
    return HDB_OK;
}

/* Copies a scalar into the arena. Numbers are kept as written ("1", "1.10"). */
static int get_string(const loader *L, const yaml_node_t *n, const char *path, char **out) {
    if (n->type != YAML_SCALAR_NODE || is_null(n))
        return fail(L, n, path, "must be a string, not %s", kind_name(n));
    if (memchr(n->data.scalar.value, '\0', n->data.scalar.length) != NULL)
        return fail(L, n, path, "must not contain a NUL byte");
    *out = hdb_arena_strndup(L->c->arena, scalar_text(n), n->data.scalar.length);
    return HDB_OK;
}

static int get_u32(const loader *L, const yaml_node_t *n, const char *path, uint32_t min,
                   uint32_t max, uint32_t *out) {
    uint64_t v;
    size_t pos = 0;
    if (n->type != YAML_SCALAR_NODE || is_null(n))
        return fail(L, n, path, "must be an integer between %" PRIu32 " and %" PRIu32 ", not %s",
                    min, max, kind_name(n));
    const char *s = scalar_text(n);
    if (is_quoted(n) || parse_uint(s, &pos, &v) != 0 || s[pos] != '\0' || v < min || v > max)
        return fail(L, n, path,
                    "must be an integer between %" PRIu32 " and %" PRIu32 " (got %s\"%.60s\")", min,
                    max, is_quoted(n) ? "a quoted string " : "", s);
    *out = (uint32_t)v;
    return HDB_OK;
}

/* Returns the items of a list (null counts as an empty list). */
static int get_list(const loader *L, const yaml_node_t *n, const char *path,
                    yaml_node_item_t **items, size_t *count) {
    *items = NULL;
    *count = 0;
    if (is_null(n)) return HDB_OK;
    if (n->type != YAML_SEQUENCE_NODE)
        return fail(L, n, path, "must be a list, not %s", kind_name(n));
    *items = n->data.sequence.items.start;
    *count = (size_t)(n->data.sequence.items.top - n->data.sequence.items.start);
    return HDB_OK;
}

/* A list of strings, e.g. id_attributes: [id]. */
static int get_string_list(const loader *L, const yaml_node_t *n, const char *path, char ***out,
                           size_t *count) {
    yaml_node_item_t *items;
    char key[256];
    int rc = get_list(L, n, path, &items, count);
    if (rc != HDB_OK) return rc;
    *out = *count ? hdb_arena_calloc(L->c->arena, *count, sizeof **out) : NULL;
    for (size_t i = 0; i < *count; i++) {
        path_printf(key, sizeof key, "%s[%zu]", path, i);
        rc = get_string(L, node_at(L, items[i]), key, &(*out)[i]);
        if (rc != HDB_OK) return rc;
    }
    return HDB_OK;
}

/* One permanent attribute: {name: id, type: int64}. */
static int load_attribute(const loader *L, const yaml_node_t *n, const char *path,
                          Hilbert__V1__AttributeSpec **out) {
    static const char *const keys[] = {"name", "type"};
    char key[256];
    yaml_node_t *v;
    char *type = NULL;
    hdb_attr_type t;
    Hilbert__V1__AttributeSpec *a = hdb_arena_alloc(L->c->arena, sizeof *a);
    hilbert__v1__attribute_spec__init(a);

    if (n->type != YAML_MAPPING_NODE)
        return fail(L, n, path, "must be a mapping {name: ..., type: ...}, not %s", kind_name(n));
    int rc = check_mapping(L, n, path, keys, 2);
    if (rc == HDB_OK) rc = require(L, n, path, "name", &v);
    if (rc == HDB_OK) rc = get_string(L, v, join(key, sizeof key, path, "name", 4), &a->name);
    if (rc == HDB_OK) rc = require(L, n, path, "type", &v);
    if (rc == HDB_OK) rc = get_string(L, v, join(key, sizeof key, path, "type", 4), &type);
    if (rc != HDB_OK) return rc;
    if (hdb_attr_type_parse(type, &t) != 0)
        return fail(L, v, key,
                    "unknown attribute type \"%.60s\" (expected string, int64, float64, bool, "
                    "bytes or timestamp)",
                    type);
    a->type = (Hilbert__V1__AttributeType)t; /* the numbers are equal by design */
    *out = a;
    return HDB_OK;
}

/* A list of permanent attributes: [{name: id, type: int64}, ...]. */
static int load_attribute_list(const loader *L, const yaml_node_t *v, const char *key,
                               Hilbert__V1__AttributeSpec ***out, size_t *count) {
    yaml_node_item_t *items;
    int rc = get_list(L, v, key, &items, count);
    if (rc != HDB_OK) return rc;
    *out = *count ? hdb_arena_calloc(L->c->arena, *count, sizeof **out) : NULL;
    for (size_t i = 0; i < *count; i++) {
        char item[300];
        path_printf(item, sizeof item, "%s[%zu]", key, i);
        if ((rc = load_attribute(L, node_at(L, items[i]), item, &(*out)[i])) != HDB_OK) return rc;
    }
    return HDB_OK;
}

static int load_data_source(const loader *L, const yaml_node_t *n, const char *path,
                            Hilbert__V1__DataSourceSpec **out) {
    static const char *const keys[] = {
        "name", "version", "vector_kind", "dimension", "permanent_attributes", "id_attributes"};
    char key[256];
    yaml_node_t *v;
    int rc;
    Hilbert__V1__DataSourceSpec *ds = hdb_arena_alloc(L->c->arena, sizeof *ds);
    hilbert__v1__data_source_spec__init(ds);

    if (n->type != YAML_MAPPING_NODE)
        return fail(L, n, path, "must be a mapping, not %s", kind_name(n));
    if ((rc = check_mapping(L, n, path, keys, sizeof keys / sizeof keys[0])) != HDB_OK) return rc;

    if ((rc = require(L, n, path, "name", &v)) != HDB_OK) return rc;
    if ((rc = get_string(L, v, join(key, sizeof key, path, "name", 4), &ds->name)) != HDB_OK)
        return rc;
    if ((rc = require(L, n, path, "version", &v)) != HDB_OK) return rc;
    if ((rc = get_string(L, v, join(key, sizeof key, path, "version", 7), &ds->version)) != HDB_OK)
        return rc;

    ds->vector_kind = HILBERT__V1__VECTOR_KIND__VECTOR_KIND_DENSE;
    if ((v = lookup(L, n, "vector_kind")) != NULL) {
        char *kind;
        join(key, sizeof key, path, "vector_kind", 11);
        if ((rc = get_string(L, v, key, &kind)) != HDB_OK) return rc;
        if (strcasecmp(kind, "sparse") == 0)
            ds->vector_kind = HILBERT__V1__VECTOR_KIND__VECTOR_KIND_SPARSE;
        else if (strcasecmp(kind, "dense") != 0)
            return fail(L, v, key, "unknown vector kind \"%.60s\" (expected dense or sparse)",
                        kind);
    }

    if ((rc = require(L, n, path, "dimension", &v)) != HDB_OK) return rc;
    rc = get_u32(L, v, join(key, sizeof key, path, "dimension", 9), 1, UINT32_MAX, &ds->dimension);
    if (rc != HDB_OK) return rc;

    if ((rc = require(L, n, path, "permanent_attributes", &v)) != HDB_OK) return rc;
    rc = load_attribute_list(L, v, join(key, sizeof key, path, "permanent_attributes", 20),
                             &ds->permanent_attributes, &ds->n_permanent_attributes);
    if (rc != HDB_OK) return rc;

    if ((rc = require(L, n, path, "id_attributes", &v)) != HDB_OK) return rc;
    rc = get_string_list(L, v, join(key, sizeof key, path, "id_attributes", 13), &ds->id_attributes,
                         &ds->n_id_attributes);
    if (rc != HDB_OK) return rc;
    *out = ds;
    return HDB_OK;
}

/* algorithm: flat | faiss | hnsw | sparse, with the optional parameter mappings
 *   faiss: {factory: "IVF256,Flat", nprobe: 8, train_size: 0}   (factory required)
 *   hnsw: {m: 16, ef_construction: 200, ef_search: 64}
 * of the chosen algorithm next to it. */
static int load_algorithm(const loader *L, const yaml_node_t *n, const yaml_node_t *v,
                          const char *path, const char *name, Hilbert__V1__IndexAlgorithm **out) {
    static const char *const faiss_keys[] = {"factory", "nprobe", "train_size"};
    static const char *const hnsw_keys[] = {"m", "ef_construction", "ef_search"};
    char key[256], sub[256];
    yaml_node_t *p, *w;
    int rc;
    hdb_arena *a = L->c->arena;
    Hilbert__V1__IndexAlgorithm *alg = hdb_arena_alloc(a, sizeof *alg);
    hilbert__v1__index_algorithm__init(alg);
    yaml_node_t *faiss = lookup(L, n, "faiss"), *hnsw = lookup(L, n, "hnsw");
    if (strcasecmp(name, "flat") == 0 || strcasecmp(name, "sparse") == 0) {
        if (faiss || hnsw)
            return fail(L, faiss ? faiss : hnsw, join(key, sizeof key, path, faiss ? "faiss" : "hnsw",
                                                      faiss ? 5 : 4),
                        "parameters of another algorithm (algorithm is %s)", name);
        if (strcasecmp(name, "flat") == 0) {
            alg->kind_case = HILBERT__V1__INDEX_ALGORITHM__KIND_FLAT;
            alg->flat = hdb_arena_alloc(a, sizeof *alg->flat);
            hilbert__v1__flat_algorithm__init(alg->flat);
        } else {
            alg->kind_case = HILBERT__V1__INDEX_ALGORITHM__KIND_SPARSE;
            alg->sparse = hdb_arena_alloc(a, sizeof *alg->sparse);
            hilbert__v1__sparse_algorithm__init(alg->sparse);
        }
    } else if (strcasecmp(name, "faiss") == 0) {
        if (hnsw) return fail(L, hnsw, join(key, sizeof key, path, "hnsw", 4),
                              "parameters of another algorithm (algorithm is faiss)");
        alg->kind_case = HILBERT__V1__INDEX_ALGORITHM__KIND_FAISS;
        alg->faiss = hdb_arena_alloc(a, sizeof *alg->faiss);
        hilbert__v1__faiss_algorithm__init(alg->faiss);
        join(key, sizeof key, path, "faiss", 5);
        if (faiss == NULL) return fail(L, n, key, "is required with algorithm faiss (factory: ...)");
        if (faiss->type != YAML_MAPPING_NODE)
            return fail(L, faiss, key, "must be a mapping, not %s", kind_name(faiss));
        if ((rc = check_mapping(L, faiss, key, faiss_keys, 3)) != HDB_OK) return rc;
        if ((rc = require(L, faiss, key, "factory", &p)) != HDB_OK) return rc;
        if ((rc = get_string(L, p, join(sub, sizeof sub, key, "factory", 7), &alg->faiss->factory)))
            return rc;
        if ((w = lookup(L, faiss, "nprobe")) != NULL &&
            (rc = get_u32(L, w, join(sub, sizeof sub, key, "nprobe", 6), 0, 1000000,
                          &alg->faiss->nprobe)) != HDB_OK)
            return rc;
        uint32_t ts = 0;
        if ((w = lookup(L, faiss, "train_size")) != NULL &&
            (rc = get_u32(L, w, join(sub, sizeof sub, key, "train_size", 10), 0, UINT32_MAX,
                          &ts)) != HDB_OK)
            return rc;
        alg->faiss->train_size = ts;
    } else if (strcasecmp(name, "hnsw") == 0) {
        if (faiss) return fail(L, faiss, join(key, sizeof key, path, "faiss", 5),
                               "parameters of another algorithm (algorithm is hnsw)");
        alg->kind_case = HILBERT__V1__INDEX_ALGORITHM__KIND_HNSW;
        alg->hnsw = hdb_arena_alloc(a, sizeof *alg->hnsw);
        hilbert__v1__hnsw_algorithm__init(alg->hnsw);
        if (hnsw != NULL) {
            join(key, sizeof key, path, "hnsw", 4);
            if (hnsw->type != YAML_MAPPING_NODE)
                return fail(L, hnsw, key, "must be a mapping, not %s", kind_name(hnsw));
            if ((rc = check_mapping(L, hnsw, key, hnsw_keys, 3)) != HDB_OK) return rc;
            uint32_t *dst[3] = {&alg->hnsw->m, &alg->hnsw->ef_construction,
                                &alg->hnsw->ef_search};
            for (int i = 0; i < 3; i++) {
                if ((w = lookup(L, hnsw, hnsw_keys[i])) == NULL) continue;
                rc = get_u32(L, w, join(sub, sizeof sub, key, hnsw_keys[i], strlen(hnsw_keys[i])),
                             0, 1000000, dst[i]);
                if (rc != HDB_OK) return rc;
            }
        }
    } else {
        return fail(L, v, join(key, sizeof key, path, "algorithm", 9),
                    "unknown algorithm \"%.60s\" (expected flat, faiss, hnsw or sparse)", name);
    }
    *out = alg;
    return HDB_OK;
}

static int load_index(const loader *L, const yaml_node_t *n, const char *path,
                      Hilbert__V1__IndexSpec **out) {
    static const char *const keys[] = {"name",   "version",          "data_source", "algorithm",
                                       "metric", "split_attributes", "faiss",       "hnsw"};
    static const char *const ref_keys[] = {"name", "version"};
    char key[256], sub[256];
    yaml_node_t *v, *w;
    char *s;
    hdb_metric metric;
    int rc;
    Hilbert__V1__IndexSpec *ix = hdb_arena_alloc(L->c->arena, sizeof *ix);
    hilbert__v1__index_spec__init(ix);

    if (n->type != YAML_MAPPING_NODE)
        return fail(L, n, path, "must be a mapping, not %s", kind_name(n));
    if ((rc = check_mapping(L, n, path, keys, sizeof keys / sizeof keys[0])) != HDB_OK) return rc;

    if ((rc = require(L, n, path, "name", &v)) != HDB_OK) return rc;
    if ((rc = get_string(L, v, join(key, sizeof key, path, "name", 4), &ix->name)) != HDB_OK)
        return rc;
    if ((rc = require(L, n, path, "version", &v)) != HDB_OK) return rc;
    if ((rc = get_string(L, v, join(key, sizeof key, path, "version", 7), &ix->version)) != HDB_OK)
        return rc;

    if ((rc = require(L, n, path, "data_source", &v)) != HDB_OK) return rc;
    join(key, sizeof key, path, "data_source", 11);
    if (v->type != YAML_MAPPING_NODE)
        return fail(L, v, key, "must be a mapping {name: ..., version: ...}, not %s", kind_name(v));
    if ((rc = check_mapping(L, v, key, ref_keys, 2)) != HDB_OK) return rc;
    ix->data_source = hdb_arena_alloc(L->c->arena, sizeof *ix->data_source);
    hilbert__v1__data_source_ref__init(ix->data_source);
    if ((rc = require(L, v, key, "name", &w)) != HDB_OK) return rc;
    if ((rc = get_string(L, w, join(sub, sizeof sub, key, "name", 4), &ix->data_source->name)))
        return rc;
    if ((rc = require(L, v, key, "version", &w)) != HDB_OK) return rc;
    if ((rc =
             get_string(L, w, join(sub, sizeof sub, key, "version", 7), &ix->data_source->version)))
        return rc;

    if ((rc = require(L, n, path, "algorithm", &v)) != HDB_OK) return rc;
    join(key, sizeof key, path, "algorithm", 9);
    if ((rc = get_string(L, v, key, &s)) != HDB_OK) return rc;
    if ((rc = load_algorithm(L, n, v, path, s, &ix->algorithm)) != HDB_OK) return rc;

    if ((rc = require(L, n, path, "metric", &v)) != HDB_OK) return rc;
    join(key, sizeof key, path, "metric", 6);
    if ((rc = get_string(L, v, key, &s)) != HDB_OK) return rc;
    if (hdb_metric_parse(s, &metric) != 0)
        return fail(L, v, key,
                    "unknown metric \"%.60s\" (expected l2, inner_product, cosine or jaccard)", s);
    ix->metric = (Hilbert__V1__Metric)metric; /* the numbers are equal by design */

    if ((v = lookup(L, n, "split_attributes")) != NULL) {
        rc = get_string_list(L, v, join(key, sizeof key, path, "split_attributes", 16),
                             &ix->split_attributes, &ix->n_split_attributes);
        if (rc != HDB_OK) return rc;
    }
    *out = ix;
    return HDB_OK;
}

/* A list of floats, e.g. mean: [0.2860]. */
static int get_float_list(const loader *L, const yaml_node_t *n, const char *path, float **out,
                          size_t *count) {
    yaml_node_item_t *items;
    char key[256];
    int rc = get_list(L, n, path, &items, count);
    if (rc != HDB_OK) return rc;
    *out = *count ? hdb_arena_calloc(L->c->arena, *count, sizeof **out) : NULL;
    for (size_t i = 0; i < *count; i++) {
        const yaml_node_t *v = node_at(L, items[i]);
        path_printf(key, sizeof key, "%s[%zu]", path, i);
        char *end = NULL;
        const char *txt = v->type == YAML_SCALAR_NODE ? scalar_text(v) : "";
        errno = 0;
        double d = v->type == YAML_SCALAR_NODE && !is_quoted(v) ? strtod(txt, &end) : 0;
        if (v->type != YAML_SCALAR_NODE || is_quoted(v) || end == txt || *end != '\0' ||
            errno != 0 || !isfinite(d))
            return fail(L, v, key, "must be a number");
        (*out)[i] = (float)d;
    }
    return HDB_OK;
}

/* input: {image: {width, height, channels, resize, mean, std}} or {tensor: {shape: [...]}}. */
static int load_model_input(const loader *L, const yaml_node_t *n, const char *path,
                            Hilbert__V1__ModelInput **out) {
    static const char *const kinds[] = {"image", "tensor"};
    static const char *const image_keys[] = {"width", "height", "channels",
                                             "resize", "mean",  "std"};
    static const char *const tensor_keys[] = {"shape"};
    char key[256], sub[256];
    yaml_node_t *v, *w;
    int rc;
    hdb_arena *a = L->c->arena;
    Hilbert__V1__ModelInput *in = hdb_arena_alloc(a, sizeof *in);
    hilbert__v1__model_input__init(in);
    if (n->type != YAML_MAPPING_NODE)
        return fail(L, n, path, "must be a mapping {image: ...} or {tensor: ...}, not %s",
                    kind_name(n));
    if ((rc = check_mapping(L, n, path, kinds, 2)) != HDB_OK) return rc;
    if ((v = lookup(L, n, "image")) != NULL) {
        if (lookup(L, n, "tensor") != NULL) return fail(L, n, path, "give image or tensor, not both");
        join(key, sizeof key, path, "image", 5);
        if (v->type != YAML_MAPPING_NODE)
            return fail(L, v, key, "must be a mapping, not %s", kind_name(v));
        if ((rc = check_mapping(L, v, key, image_keys, 6)) != HDB_OK) return rc;
        Hilbert__V1__ImageInput *im = hdb_arena_alloc(a, sizeof *im);
        hilbert__v1__image_input__init(im);
        uint32_t *dst[3] = {&im->width, &im->height, &im->channels};
        for (int i = 0; i < 3; i++) {
            if ((rc = require(L, v, key, image_keys[i], &w)) != HDB_OK) return rc;
            rc = get_u32(L, w, join(sub, sizeof sub, key, image_keys[i], strlen(image_keys[i])), 1,
                         4096, dst[i]);
            if (rc != HDB_OK) return rc;
        }
        im->resize = HILBERT__V1__RESIZE_MODE__RESIZE_MODE_STRETCH;
        if ((w = lookup(L, v, "resize")) != NULL) {
            char *mode;
            join(sub, sizeof sub, key, "resize", 6);
            if ((rc = get_string(L, w, sub, &mode)) != HDB_OK) return rc;
            if (strcasecmp(mode, "stretch") == 0)
                im->resize = HILBERT__V1__RESIZE_MODE__RESIZE_MODE_STRETCH;
            else if (strcasecmp(mode, "fit") == 0)
                im->resize = HILBERT__V1__RESIZE_MODE__RESIZE_MODE_FIT;
            else if (strcasecmp(mode, "crop") == 0)
                im->resize = HILBERT__V1__RESIZE_MODE__RESIZE_MODE_CROP;
            else
                return fail(L, w, sub, "unknown resize mode \"%.40s\" (stretch, fit or crop)",
                            mode);
        }
        if ((w = lookup(L, v, "mean")) != NULL &&
            (rc = get_float_list(L, w, join(sub, sizeof sub, key, "mean", 4), &im->mean,
                                 &im->n_mean)) != HDB_OK)
            return rc;
        if ((w = lookup(L, v, "std")) != NULL &&
            (rc = get_float_list(L, w, join(sub, sizeof sub, key, "std", 3), &im->std,
                                 &im->n_std)) != HDB_OK)
            return rc;
        in->kind_case = HILBERT__V1__MODEL_INPUT__KIND_IMAGE;
        in->image = im;
    } else if ((v = lookup(L, n, "tensor")) != NULL) {
        join(key, sizeof key, path, "tensor", 6);
        if (v->type != YAML_MAPPING_NODE)
            return fail(L, v, key, "must be a mapping {shape: [...]}, not %s", kind_name(v));
        if ((rc = check_mapping(L, v, key, tensor_keys, 1)) != HDB_OK) return rc;
        if ((rc = require(L, v, key, "shape", &w)) != HDB_OK) return rc;
        yaml_node_item_t *items;
        size_t count;
        join(sub, sizeof sub, key, "shape", 5);
        if ((rc = get_list(L, w, sub, &items, &count)) != HDB_OK) return rc;
        Hilbert__V1__TensorInput *t = hdb_arena_alloc(a, sizeof *t);
        hilbert__v1__tensor_input__init(t);
        t->n_shape = count;
        t->shape = count ? hdb_arena_calloc(a, count, sizeof *t->shape) : NULL;
        for (size_t i = 0; i < count; i++) {
            char item[300];
            path_printf(item, sizeof item, "%s[%zu]", sub, i);
            if ((rc = get_u32(L, node_at(L, items[i]), item, 1, 1u << 30, &t->shape[i])))
                return rc;
        }
        in->kind_case = HILBERT__V1__MODEL_INPUT__KIND_TENSOR;
        in->tensor = t;
    } else {
        return fail(L, n, path, "needs image or tensor");
    }
    *out = in;
    return HDB_OK;
}

static int load_model_space(const loader *L, const yaml_node_t *n, const char *path,
                            Hilbert__V1__ModelSpaceSpec **out) {
    static const char *const keys[] = {"name",   "model", "input",
                                       "output_dim", "metric", "index",
                                       "permanent_attributes", "split_attributes"};
    static const char *const index_keys[] = {"algorithm", "faiss", "hnsw"};
    char key[256];
    yaml_node_t *v, *w;
    char *s;
    hdb_metric metric;
    int rc;
    hdb_arena *a = L->c->arena;
    Hilbert__V1__ModelSpaceSpec *ms = hdb_arena_alloc(a, sizeof *ms);
    hilbert__v1__model_space_spec__init(ms);
    if (n->type != YAML_MAPPING_NODE)
        return fail(L, n, path, "must be a mapping, not %s", kind_name(n));
    if ((rc = check_mapping(L, n, path, keys, sizeof keys / sizeof keys[0])) != HDB_OK) return rc;
    if ((rc = require(L, n, path, "name", &v)) != HDB_OK) return rc;
    if ((rc = get_string(L, v, join(key, sizeof key, path, "name", 4), &ms->name))) return rc;
    if ((rc = require(L, n, path, "model", &v)) != HDB_OK) return rc;
    if ((rc = get_string(L, v, join(key, sizeof key, path, "model", 5), &ms->model_path))) return rc;
    if ((rc = require(L, n, path, "input", &v)) != HDB_OK) return rc;
    if ((rc = load_model_input(L, v, join(key, sizeof key, path, "input", 5), &ms->input))) return rc;
    if ((rc = require(L, n, path, "output_dim", &v)) != HDB_OK) return rc;
    if ((rc = get_u32(L, v, join(key, sizeof key, path, "output_dim", 10), 1, 65536,
                      &ms->output_dim)))
        return rc;
    if ((rc = require(L, n, path, "metric", &v)) != HDB_OK) return rc;
    join(key, sizeof key, path, "metric", 6);
    if ((rc = get_string(L, v, key, &s)) != HDB_OK) return rc;
    if (hdb_metric_parse(s, &metric) != 0)
        return fail(L, v, key, "unknown metric \"%.60s\" (expected l2, inner_product or cosine)", s);
    ms->metric = (Hilbert__V1__Metric)metric;
    if ((v = lookup(L, n, "index")) != NULL) {
        join(key, sizeof key, path, "index", 5);
        if (v->type != YAML_MAPPING_NODE)
            return fail(L, v, key, "must be a mapping {algorithm: ...}, not %s", kind_name(v));
        if ((rc = check_mapping(L, v, key, index_keys, 3)) != HDB_OK) return rc;
        if ((rc = require(L, v, key, "algorithm", &w)) != HDB_OK) return rc;
        char sub[256];
        if ((rc = get_string(L, w, join(sub, sizeof sub, key, "algorithm", 9), &s))) return rc;
        if ((rc = load_algorithm(L, v, w, key, s, &ms->index)) != HDB_OK) return rc;
    }
    if ((v = lookup(L, n, "permanent_attributes")) != NULL) {
        rc = load_attribute_list(L, v, join(key, sizeof key, path, "permanent_attributes", 20),
                                 &ms->permanent_attributes, &ms->n_permanent_attributes);
        if (rc != HDB_OK) return rc;
    }
    if ((v = lookup(L, n, "split_attributes")) != NULL) {
        rc = get_string_list(L, v, join(key, sizeof key, path, "split_attributes", 16),
                             &ms->split_attributes, &ms->n_split_attributes);
        if (rc != HDB_OK) return rc;
    }
    *out = ms;
    return HDB_OK;
}

/* Defines fn(L, n): loads the list `key` of the config (data_sources, indices, model_spaces)
 * into c->field and c->n_field, one item at a time with one(L, node, "key[i]", &item). */
#define LIST_LOADER(fn, key, type, one, field)                                                     \
    static int fn(const loader *L, const yaml_node_t *n) {                                         \
        yaml_node_item_t *items;                                                                   \
        size_t count;                                                                              \
        char path[64];                                                                             \
        int rc = get_list(L, n, key, &items, &count);                                              \
        if (rc != HDB_OK) return rc;                                                               \
        type **arr = count ? hdb_arena_calloc(L->c->arena, count, sizeof *arr) : NULL;             \
        for (size_t i = 0; i < count; i++) {                                                       \
            path_printf(path, sizeof path, key "[%zu]", i);                                        \
            if ((rc = one(L, node_at(L, items[i]), path, &arr[i])) != HDB_OK) return rc;           \
        }                                                                                          \
        L->c->field = arr;                                                                         \
        L->c->n_##field = count;                                                                   \
        return HDB_OK;                                                                             \
    }

LIST_LOADER(load_data_sources, "data_sources", Hilbert__V1__DataSourceSpec, load_data_source,
            data_sources)
LIST_LOADER(load_indices, "indices", Hilbert__V1__IndexSpec, load_index, indices)
LIST_LOADER(load_model_spaces, "model_spaces", Hilbert__V1__ModelSpaceSpec, load_model_space,
            model_spaces)

/* One section of scalar keys, e.g. server: {listen: ..., threads: ...}. */
static int load_section(const loader *L, const char *section, const yaml_node_t *n) {
    const char *known[N_KEYS];
    size_t nknown = 0, slen = strlen(section);
    char msg[512];
    for (size_t i = 0; i < N_KEYS; i++)
        if (strncmp(key_table[i].key, section, slen) == 0 && key_table[i].key[slen] == '.')
            known[nknown++] = key_table[i].key + slen + 1;
    int rc = check_mapping(L, n, section, known, nknown);
    if (rc != HDB_OK || n->type != YAML_MAPPING_NODE) return rc;

    for (yaml_node_pair_t *p = n->data.mapping.pairs.start; p < n->data.mapping.pairs.top; p++) {
        const yaml_node_t *k = node_at(L, p->key);
        const yaml_node_t *v = node_at(L, p->value);
        const key_spec *spec = find_section_key(section, scalar_text(k), k->data.scalar.length);
        HDB_ASSERT(spec != NULL); /* check_mapping accepted only known keys */
        if (v->type != YAML_SCALAR_NODE)
            return fail(L, v, spec->key, "must be %s, not %s",
                        describe_expected(spec, msg, sizeof msg), kind_name(v));
        rc = set_value(L->c, spec, is_null(v) ? NULL : scalar_text(v), v->data.scalar.length,
                       is_quoted(v), msg, sizeof msg);
        if (rc != HDB_OK) return fail(L, v, spec->key, "%s", msg);
    }
    return HDB_OK;
}

static int load_root(const loader *L, const yaml_node_t *root) {
    int rc = check_mapping(L, root, "", top_keys, N_TOP);
    if (rc != HDB_OK || root->type != YAML_MAPPING_NODE) return rc;
    for (yaml_node_pair_t *p = root->data.mapping.pairs.start; p < root->data.mapping.pairs.top;
         p++) {
        const yaml_node_t *k = node_at(L, p->key);
        const yaml_node_t *v = node_at(L, p->value);
        if (key_is(k, "data_sources"))
            rc = load_data_sources(L, v);
        else if (key_is(k, "indices"))
            rc = load_indices(L, v);
        else if (key_is(k, "model_spaces"))
            rc = load_model_spaces(L, v);
        else
            rc = load_section(L, scalar_text(k), v);
        if (rc != HDB_OK) return rc;
    }
    return HDB_OK;
}

/* Reads the whole file into a hdb_malloc'ed buffer. */
static int read_file(const char *path, char **out, size_t *outlen, char *err, size_t errlen) {
    FILE *f = NULL;
    char *buf = NULL;
    size_t len = 0, cap = 0;
    int rc = HDB_OK;

    f = fopen(path, "rb");
    if (f == NULL) {
        rc = hdb_errf(err, errlen, HDB_EIO, "%s: cannot open: %s", path, strerror(errno));
        goto fail;
    }
    for (;;) {
        if (len == cap) {
            if (cap >= (size_t)MAX_FILE_BYTES) {
                rc = hdb_errf(err, errlen, HDB_EINVAL, "%s: larger than 16MiB; not a config file?",
                              path);
                goto fail;
            }
            cap = cap ? cap * 2 : 4096;
            buf = hdb_realloc(buf, cap);
        }
        size_t n = fread(buf + len, 1, cap - len, f);
        len += n;
        if (n == 0) {
            if (ferror(f)) {
                rc = hdb_errf(err, errlen, HDB_EIO, "%s: cannot read: %s", path, strerror(errno));
                goto fail;
            }
            break;
        }
    }
    fclose(f);
    *out = buf;
    *outlen = len;
    return HDB_OK;

fail:
    if (f != NULL) fclose(f);
    hdb_free(buf);
    return rc;
}

/* Reports a libyaml failure with its line. buf/len is the file, for reader errors (bad
 * encoding), which libyaml reports as a byte offset only. */
static int yaml_error(const char *path, const yaml_parser_t *p, const char *buf, size_t len,
                      char *err, size_t errlen) {
    const char *problem = p->problem ? p->problem : "unknown error";
    switch (p->error) {
    case YAML_MEMORY_ERROR:
        return hdb_errf(err, errlen, HDB_ENOMEM, "%s: out of memory while parsing YAML", path);
    case YAML_READER_ERROR: {
        unsigned long line = 1;
        for (size_t i = 0; i < p->problem_offset && i < len; i++)
            line += buf[i] == '\n';
        return hdb_errf(err, errlen, HDB_EINVAL, "%s:%lu: malformed YAML: %s (byte %zu)", path,
                        line, problem, p->problem_offset);
    }
    default:
        if (p->context != NULL)
            return hdb_errf(err, errlen, HDB_EINVAL, "%s:%lu: malformed YAML: %s (%s at line %lu)",
                            path, (unsigned long)p->problem_mark.line + 1, problem, p->context,
                            (unsigned long)p->context_mark.line + 1);
        return hdb_errf(err, errlen, HDB_EINVAL, "%s:%lu: malformed YAML: %s", path,
                        (unsigned long)p->problem_mark.line + 1, problem);
    }
}

/* ---- public API ---------------------------------------------------------------------------- */

/* Fills c with the built-in defaults and creates its arena; the default strings are copied into
 * the arena. c must not hold an arena already (that one would leak). */
void hdb_config_init(hdb_config *c) {
    HDB_ASSERT(c != NULL);
    fill_defaults(c);
    c->arena = hdb_arena_create(0);
    c->listen = hdb_arena_strndup(c->arena, DEFAULT_LISTEN, strlen(DEFAULT_LISTEN));
    c->data_dir = hdb_arena_strndup(c->arena, DEFAULT_DATA_DIR, strlen(DEFAULT_DATA_DIR));
}

/* Frees the arena, and with it every string and message of c, then clears c. NULL is allowed,
 * and so is a zeroed or already freed config. */
void hdb_config_free(hdb_config *c) {
    if (c == NULL) return;
    hdb_arena_free(c->arena);
    memset(c, 0, sizeof *c);
}

/* Overlays the keys of a YAML file onto c. Keys absent from the file keep their value; a
 * data_sources or indices list in the file replaces the one in c. All or nothing: on error c is
 * unchanged. Returns HDB_OK; HDB_EINVAL for bad content ("file:line: key: reason"); HDB_EIO when
 * the file cannot be read; HDB_ENOMEM only if libyaml runs out of memory. */
int hdb_config_load_file(hdb_config *c, const char *path, char *err, size_t errlen) {
    char *buf = NULL;
    size_t len = 0;
    yaml_parser_t parser;
    yaml_document_t doc, extra;
    bool parser_ok = false, doc_ok = false, extra_ok = false;
    hdb_config work;
    loader L;
    int rc;

    HDB_ASSERT(c != NULL && c->arena != NULL && path != NULL);
    work = *c;
    L = (loader){.doc = &doc, .file = path, .c = &work, .err = err, .errlen = errlen};

    if ((rc = read_file(path, &buf, &len, err, errlen)) != HDB_OK) goto done;
    if (!yaml_parser_initialize(&parser)) {
        rc = hdb_errf(err, errlen, HDB_ENOMEM, "%s: cannot initialise the YAML parser", path);
        goto done;
    }
    parser_ok = true;
    yaml_parser_set_input_string(&parser, (const unsigned char *)buf, len);
    if (!yaml_parser_load(&parser, &doc)) {
        rc = yaml_error(path, &parser, buf, len, err, errlen);
        goto done;
    }
    doc_ok = true;

    yaml_node_t *root = yaml_document_get_root_node(&doc);
    if (root != NULL) { /* NULL: an empty file, or only comments: all defaults */
        if (!yaml_parser_load(&parser, &extra)) {
            rc = yaml_error(path, &parser, buf, len, err, errlen);
            goto done;
        }
        extra_ok = true;
        yaml_node_t *next = yaml_document_get_root_node(&extra);
        if (next != NULL) {
            rc = hdb_errf(err, errlen, HDB_EINVAL,
                          "%s:%lu: a second YAML document; the config must be a single document",
                          path, (unsigned long)extra.start_mark.line + 1);
            goto done;
        }
        if ((rc = load_root(&L, root)) != HDB_OK) goto done;
    }
    *c = work;

done:
    if (extra_ok) yaml_document_delete(&extra);
    if (doc_ok) yaml_document_delete(&doc);
    if (parser_ok) yaml_parser_delete(&parser);
    hdb_free(buf);
    return rc;
}

/* ---- command-line flags -------------------------------------------------------------------- */

typedef struct {
    const char *name;    /* "--threads" */
    const char *metavar; /* "N"; NULL for flags without a value */
    const char *key;     /* the config key it sets; NULL for --config, --help, --version */
    const char *help;
} flag_spec;

static const flag_spec flag_table[] = {
    {"--config", "PATH", NULL, "YAML config file, keys as in config/hilbertd.yaml"},
    {"--listen", "ADDR", "server.listen", "gRPC address, host:port or unix:PATH"},
    {"--data-dir", "DIR", "storage.data_dir", "where RocksDB and index snapshots live"},
    {"--threads", "N", "server.threads", "threads that handle calls, 1..256"},
    {"--log-level", "LEVEL", "log.level", "debug, info, warn, error or off"},
    {"--help", NULL, NULL, "print this help and exit"},
    {"--version", NULL, NULL, "print the version and exit"},
};

#define N_FLAGS (sizeof flag_table / sizeof flag_table[0])

static const flag_spec *find_flag(const char *arg, size_t len) {
    for (size_t i = 0; i < N_FLAGS; i++)
        if (strlen(flag_table[i].name) == len && memcmp(flag_table[i].name, arg, len) == 0)
            return &flag_table[i];
    return NULL;
}

static void print_usage(FILE *out) {
    hdb_config defaults;
    char val[128], left[40];
    fill_defaults(&defaults);
    fprintf(out, "Usage: hilbertd [--config PATH] [--listen ADDR] [--data-dir DIR] [--threads N]\n"
                 "                [--log-level LEVEL]\n"
                 "\n"
                 "HilbertDB, a vector database server speaking gRPC.\n"
                 "\n"
                 "Settings are applied in this order: built-in defaults, then the --config file,\n"
                 "then the other flags (flags win). config/hilbertd.yaml lists every key of the\n"
                 "file with its meaning, type, default and range.\n"
                 "\n"
                 "Flags (each also accepts the --flag=value form):\n");
    for (size_t i = 0; i < N_FLAGS; i++) {
        const flag_spec *f = &flag_table[i];
        snprintf(left, sizeof left, "%s%s%s", f->name, f->metavar ? " " : "",
                 f->metavar ? f->metavar : "");
        if (f->key != NULL)
            fprintf(out, "  %-18s %s (%s; default: %s)\n", left, f->help, f->key,
                    format_value(&defaults, find_key(f->key), val, sizeof val));
        else if (f->metavar != NULL)
            fprintf(out, "  %-18s %s (default: none)\n", left, f->help);
        else
            fprintf(out, "  %-18s %s\n", left, f->help);
    }
}

/* Builds c from argv (see hdb_config.h). A flag given twice takes its last value; that includes
 * --config (only the last file is read). Syntax errors in argv (unknown flags, missing values)
 * are reported before --help and --version are honoured. All or nothing: on error c is
 * unchanged. out NULL means stdout. */
int hdb_config_from_args(hdb_config *c, int argc, char **argv, FILE *out, hdb_config_action *action,
                         char *err, size_t errlen) {
    typedef struct {
        const flag_spec *flag;
        const char *value;
    } setting;
    setting *sets = NULL;
    size_t nsets = 0;
    const char *config_path = NULL;
    bool help = false, version = false;
    char msg[512];
    hdb_config work;
    int rc = HDB_OK;

    HDB_ASSERT(c != NULL && c->arena != NULL && action != NULL);
    HDB_ASSERT(argc == 0 || argv != NULL);
    *action = HDB_CONFIG_RUN;
    if (out == NULL) out = stdout;
    sets = hdb_calloc(argc > 0 ? (size_t)argc : 1, sizeof *sets);

    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        if (strncmp(arg, "--", 2) != 0 || arg[2] == '\0' || arg[2] == '=') {
            rc = hdb_errf(err, errlen, HDB_EINVAL,
                          "unexpected argument \"%s\" (hilbertd takes only --flags; see --help)",
                          arg);
            goto done;
        }
        const char *eq = strchr(arg, '=');
        size_t namelen = eq ? (size_t)(eq - arg) : strlen(arg);
        const flag_spec *f = find_flag(arg, namelen);
        if (f == NULL) {
            rc = hdb_errf(err, errlen, HDB_EINVAL, "unknown flag %.*s (see --help)", (int)namelen,
                          arg);
            goto done;
        }
        if (f->metavar == NULL) {
            if (eq != NULL) {
                rc = hdb_errf(err, errlen, HDB_EINVAL, "%s: takes no value", f->name);
                goto done;
            }
            if (strcmp(f->name, "--help") == 0)
                help = true;
            else
                version = true;
            continue;
        }
        const char *value;
        if (eq != NULL) {
            value = eq + 1;
        } else if (i + 1 < argc && strncmp(argv[i + 1], "--", 2) != 0) {
            value = argv[++i];
        } else {
            rc = hdb_errf(err, errlen, HDB_EINVAL, "%s: missing value (%s %s)", f->name, f->name,
                          f->metavar);
            goto done;
        }
        if (f->key == NULL) {
            if (value[0] == '\0') {
                rc = hdb_errf(err, errlen, HDB_EINVAL, "%s: missing value (%s %s)", f->name,
                              f->name, f->metavar);
                goto done;
            }
            config_path = value;
        } else {
            sets[nsets++] = (setting){f, value};
        }
    }

    if (help) {
        print_usage(out);
        *action = HDB_CONFIG_EXIT;
        goto done;
    }
    if (version) {
        fprintf(out, "%s\n", hdb_version_string());
        *action = HDB_CONFIG_EXIT;
        goto done;
    }

    work = *c;
    if (config_path != NULL &&
        (rc = hdb_config_load_file(&work, config_path, err, errlen)) != HDB_OK)
        goto done;
    for (size_t i = 0; i < nsets; i++) {
        const key_spec *k = find_key(sets[i].flag->key);
        HDB_ASSERT(k != NULL);
        rc = set_value(&work, k, sets[i].value, strlen(sets[i].value), false, msg, sizeof msg);
        if (rc != HDB_OK) {
            rc = hdb_errf(err, errlen, rc, "%s: %s", sets[i].flag->name, msg);
            goto done;
        }
    }
    if ((rc = hdb_config_validate(&work, err, errlen)) != HDB_OK) goto done;
    *c = work;

done:
    hdb_free(sets);
    return rc;
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
                                describe_expected(k, expect, sizeof expect), v);
            break;
        }
        case SYN_LEVEL: {
            int64_t v = field_int(c, k);
            if (v < HDB_LOG_DEBUG || v > HDB_LOG_OFF)
                return hdb_errf(err, errlen, HDB_EINVAL, "%s: must be %s (is %" PRId64 ")", k->key,
                                describe_expected(k, expect, sizeof expect), v);
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
    return HDB_OK;
}

/* Returns a static string; HDB_VERSION comes from the build (CMake's project version). */
const char *hdb_version_string(void) {
    return "hilbertd " HDB_VERSION;
}
