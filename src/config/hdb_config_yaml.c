/*
 * hdb_config_yaml.c - reading the YAML config file: libyaml's document API, the node helpers
 * and mapping checks that every part of the file uses, the scalar sections (server:, limits:,
 * tls:, ...) and hdb_config_load_file. auth: goes to hdb_config_auth.c.
 *
 * Scalar keys are looked up in the key table (hdb_config.c) and parsed by it; the lists of
 * declared catalog objects go to hdb_config_specs.c. Every error names the file, the line and
 * the dotted key: "config.yaml:12: limits.max_k: must be between 1 and 1000000".
 *
 * Loading is all-or-nothing: the file is applied to a copy of the config, which is copied back
 * only when everything succeeded. Strings from a failed attempt stay in the arena until
 * hdb_config_free; that is a bounded, one-off cost at startup.
 */
#include "hdb_config_int.h"

#include "hdb_arena.h"
#include "hdb_err.h"
#include "hdb_mem.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <string.h>

#define MIB ((size_t)1 << 20)

/* A config file larger than this is certainly a mistake (e.g. --config pointing at data). */
#define MAX_FILE_BYTES (16 * MIB)

/* Top-level keys: the sections of the key table, then the lists of catalog objects
 * (hdb_config_specs.c). */
static const char *const top_keys[] = {"server",  "log",          "storage", "limits",
                                       "search",  "index",        "metrics", "models",
                                       "tls",     "auth",         "data_sources", "indices",
                                       "model_spaces"};
#define N_TOP (sizeof top_keys / sizeof top_keys[0])
#define N_SECTIONS 9 /* top_keys[0..8] are sections of scalar keys */
#define AUTH_SECTION 9 /* auth: has a list of keys (hdb_config_auth.c) */

typedef hdb__config_loader loader;

static unsigned long line_of(const yaml_node_t *n) {
    return (unsigned long)n->start_mark.line + 1;
}

/* Formats "file:line: key: message" into the error buffer and returns HDB_EINVAL. */
int hdb__config_fail(const loader *L, const yaml_node_t *n, const char *key, const char *fmt, ...) {
    char msg[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (key == NULL || key[0] == '\0')
        return hdb_errf(L->err, L->errlen, HDB_EINVAL, "%s:%lu: %s", L->file, line_of(n), msg);
    return hdb_errf(L->err, L->errlen, HDB_EINVAL, "%s:%lu: %s: %s", L->file, line_of(n), key, msg);
}

yaml_node_t *hdb__config_node(const loader *L, int id) {
    yaml_node_t *n = yaml_document_get_node(L->doc, id);
    HDB_ASSERT(n != NULL);
    return n;
}

const char *hdb__config_scalar_text(const yaml_node_t *n) {
    return (const char *)n->data.scalar.value;
}

bool hdb__config_is_quoted(const yaml_node_t *n) {
    return n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE;
}

/* An unquoted "", "~" or "null" (YAML's null), as in `indices:` with nothing after it. */
bool hdb__config_is_null(const yaml_node_t *n) {
    if (n->type != YAML_SCALAR_NODE || hdb__config_is_quoted(n)) return false;
    const char *s = hdb__config_scalar_text(n);
    return s[0] == '\0' || strcmp(s, "~") == 0 || strcmp(s, "null") == 0 ||
           strcmp(s, "Null") == 0 || strcmp(s, "NULL") == 0;
}

const char *hdb__config_kind_name(const yaml_node_t *n) {
    if (hdb__config_is_null(n)) return "null";
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
const char *hdb__config_path(char *buf, size_t n, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, n, fmt, ap);
    va_end(ap);
    return buf;
}

/* Writes "prefix.name" (or just name when prefix is empty) into buf. */
const char *hdb__config_join(char *buf, size_t n, const char *prefix, const char *name,
                             size_t len) {
    if (prefix[0] == '\0') return hdb__config_path(buf, n, "%.*s", (int)len, name);
    return hdb__config_path(buf, n, "%s.%.*s", prefix, (int)len, name);
}

static bool key_is(const yaml_node_t *k, const char *name) {
    return k->data.scalar.length == strlen(name) &&
           memcmp(k->data.scalar.value, name, k->data.scalar.length) == 0;
}

/* Checks that n is a mapping (null counts as an empty one) whose keys are distinct scalars from
 * known[]. Errors name the key at path ("" for the top level). */
int hdb__config_check_mapping(const loader *L, const yaml_node_t *n, const char *path,
                              const char *const *known, size_t nknown) {
    char key[256];
    if (hdb__config_is_null(n)) return HDB_OK;
    if (n->type != YAML_MAPPING_NODE) {
        if (path[0] == '\0')
            return hdb__config_fail(L, n, NULL,
                                    "the top level must be a mapping of sections, not %s",
                                    hdb__config_kind_name(n));
        return hdb__config_fail(L, n, path, "must be a mapping, not %s", hdb__config_kind_name(n));
    }
    for (yaml_node_pair_t *p = n->data.mapping.pairs.start; p < n->data.mapping.pairs.top; p++) {
        const yaml_node_t *k = hdb__config_node(L, p->key);
        if (k->type != YAML_SCALAR_NODE)
            return hdb__config_fail(L, k, path, "keys must be plain names, not %s",
                                    hdb__config_kind_name(k));
        const char *ks = hdb__config_scalar_text(k);
        size_t klen = k->data.scalar.length;
        hdb__config_join(key, sizeof key, path, ks, klen);
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
            return hdb__config_fail(L, k, key, "unknown key (expected one of: %s)", list);
        }
        for (yaml_node_pair_t *q = n->data.mapping.pairs.start; q < p; q++) {
            const yaml_node_t *prev = hdb__config_node(L, q->key);
            if (prev->type == YAML_SCALAR_NODE && prev->data.scalar.length == klen &&
                memcmp(prev->data.scalar.value, ks, klen) == 0)
                return hdb__config_fail(L, k, key, "duplicate key (first given at line %lu)",
                                        line_of(prev));
        }
    }
    return HDB_OK;
}

/* Returns the value of key name in a mapping checked by check_mapping, or NULL. */
yaml_node_t *hdb__config_lookup(const loader *L, const yaml_node_t *map, const char *name) {
    if (map->type != YAML_MAPPING_NODE) return NULL;
    for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top; p++)
        if (key_is(hdb__config_node(L, p->key), name)) return hdb__config_node(L, p->value);
    return NULL;
}

/* Looks up a key that must be present; errors name path.name at the mapping's line. */
int hdb__config_require(const loader *L, const yaml_node_t *map, const char *path, const char *name,
                        yaml_node_t **out) {
    char key[256];
    *out = hdb__config_lookup(L, map, name);
    if (*out == NULL)
        return hdb__config_fail(L, map, hdb__config_join(key, sizeof key, path, name, strlen(name)),
                                "required key is missing");
    return HDB_OK;
}

/* Copies a scalar into the arena. Numbers are kept as written ("1", "1.10"). */
int hdb__config_get_string(const loader *L, const yaml_node_t *n, const char *path, char **out) {
    if (n->type != YAML_SCALAR_NODE || hdb__config_is_null(n))
        return hdb__config_fail(L, n, path, "must be a string, not %s", hdb__config_kind_name(n));
    if (memchr(n->data.scalar.value, '\0', n->data.scalar.length) != NULL)
        return hdb__config_fail(L, n, path, "must not contain a NUL byte");
    *out = hdb_arena_strndup(L->c->arena, hdb__config_scalar_text(n), n->data.scalar.length);
    return HDB_OK;
}

int hdb__config_get_u32(const loader *L, const yaml_node_t *n, const char *path, uint32_t min,
                        uint32_t max, uint32_t *out) {
    uint64_t v;
    size_t pos = 0;
    if (n->type != YAML_SCALAR_NODE || hdb__config_is_null(n))
        return hdb__config_fail(L, n, path,
                                "must be an integer between %" PRIu32 " and %" PRIu32 ", not %s",
                                min, max, hdb__config_kind_name(n));
    const char *s = hdb__config_scalar_text(n);
    if (hdb__config_is_quoted(n) || hdb__config_parse_uint(s, &pos, &v) != 0 || s[pos] != '\0' ||
        v < min || v > max)
        return hdb__config_fail(
            L, n, path, "must be an integer between %" PRIu32 " and %" PRIu32 " (got %s\"%.60s\")",
            min, max, hdb__config_is_quoted(n) ? "a quoted string " : "", s);
    *out = (uint32_t)v;
    return HDB_OK;
}

/* Returns the items of a list (null counts as an empty list). */
int hdb__config_get_list(const loader *L, const yaml_node_t *n, const char *path,
                         yaml_node_item_t **items, size_t *count) {
    *items = NULL;
    *count = 0;
    if (hdb__config_is_null(n)) return HDB_OK;
    if (n->type != YAML_SEQUENCE_NODE)
        return hdb__config_fail(L, n, path, "must be a list, not %s", hdb__config_kind_name(n));
    *items = n->data.sequence.items.start;
    *count = (size_t)(n->data.sequence.items.top - n->data.sequence.items.start);
    return HDB_OK;
}

/* ---- the sections of scalar keys ---------------------------------------------------------- */

/* One section of scalar keys, e.g. server: {listen: ..., threads: ...}. */
static int load_section(const loader *L, const char *section, const yaml_node_t *n) {
    const char *known[HDB__CONFIG_MAX_KEYS];
    size_t nknown = hdb__config_section_keys(section, known);
    char msg[512];
    int rc = hdb__config_check_mapping(L, n, section, known, nknown);
    if (rc != HDB_OK || n->type != YAML_MAPPING_NODE) return rc;

    for (yaml_node_pair_t *p = n->data.mapping.pairs.start; p < n->data.mapping.pairs.top; p++) {
        const yaml_node_t *k = hdb__config_node(L, p->key);
        const yaml_node_t *v = hdb__config_node(L, p->value);
        const hdb__config_key *spec = hdb__config_find_section_key(
            section, hdb__config_scalar_text(k), k->data.scalar.length);
        HDB_ASSERT(spec != NULL); /* check_mapping accepted only known keys */
        const char *name = hdb__config_key_name(spec);
        if (v->type != YAML_SCALAR_NODE)
            return hdb__config_fail(L, v, name, "must be %s, not %s",
                                    hdb__config_describe(spec, msg, sizeof msg),
                                    hdb__config_kind_name(v));
        rc = hdb__config_set_value(
            L->c, spec, hdb__config_is_null(v) ? NULL : hdb__config_scalar_text(v),
            v->data.scalar.length, hdb__config_is_quoted(v), msg, sizeof msg);
        if (rc != HDB_OK) return hdb__config_fail(L, v, name, "%s", msg);
    }
    return HDB_OK;
}

static int load_root(const loader *L, const yaml_node_t *root) {
    int rc = hdb__config_check_mapping(L, root, "", top_keys, N_TOP);
    if (rc != HDB_OK || root->type != YAML_MAPPING_NODE) return rc;
    for (yaml_node_pair_t *p = root->data.mapping.pairs.start; p < root->data.mapping.pairs.top;
         p++) {
        const yaml_node_t *k = hdb__config_node(L, p->key);
        const yaml_node_t *v = hdb__config_node(L, p->value);
        size_t i = 0;
        while (!key_is(k, top_keys[i])) /* check_mapping accepted only top_keys */
            i++;
        if (i < N_SECTIONS)
            rc = load_section(L, top_keys[i], v);
        else if (i == AUTH_SECTION)
            rc = hdb__config_load_auth(L, v);
        else
            rc = hdb__config_load_spec_list(L, top_keys[i], v);
        if (rc != HDB_OK) return rc;
    }
    return HDB_OK;
}

/* ---- the file ------------------------------------------------------------------------------ */

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
