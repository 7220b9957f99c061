/*
 * hdb_config_int.h - internals shared by the files of the configuration module. Not installed
 * and not for other modules: everything outside src/config uses hdb_config.h.
 *
 *   hdb_config.c        the key table, defaults, reading and writing fields, value parsing and
 *                       formatting, validation
 *   hdb_config_yaml.c   the YAML file: libyaml, node helpers, mapping checks, the scalar
 *                       sections, hdb_config_load_file
 *   hdb_config_specs.c  the declared catalog objects: YAML mappings -> protobuf-c spec messages
 *   hdb_config_auth.c   the auth: section, the API keys (their hashes)
 *   hdb_flags.c         command-line flags, the --help text, hdb_config_from_args
 *
 * Threads: the key table is immutable, so the functions that only read it may be called from
 * any thread. Everything that takes an hdb_config or a loader works on memory the caller owns;
 * the caller must not use the same config from two threads at once. In practice all of this
 * runs once, at startup, on the main thread.
 */
#ifndef HDB_CONFIG_INT_H
#define HDB_CONFIG_INT_H

#include "hdb_config.h"

#include <yaml.h>

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- the key table (hdb_config.c) ---------------------------------------------------------- */

/* Upper bound on the number of scalar keys; hdb_config.c checks it at compile time, so callers
 * may size arrays of key names with it. */
#define HDB__CONFIG_MAX_KEYS 64

/* One row of the key table: a dotted key, its syntax, its field and its range. Opaque; rows
 * are static and live as long as the program. */
typedef struct hdb__config_key hdb__config_key;

/* Sets every scalar field of c to its built-in default and everything else to zero. The string
 * defaults point at string literals and no arena is created; hdb_config_init then copies
 * listen and data_dir into a new arena. Used directly by --help, which prints the defaults. */
void hdb__config_fill_defaults(hdb_config *c);

/* Returns the row of a full dotted key ("server.threads"), or NULL when there is none. */
const hdb__config_key *hdb__config_find_key(const char *key);

/* Returns the row of section.name, where name is len bytes and need not be NUL-terminated (a
 * YAML scalar), or NULL when there is none. */
const hdb__config_key *hdb__config_find_section_key(const char *section, const char *name,
                                                    size_t len);

/* Stores into names[] the short names ("threads") of the keys of one section, in table order,
 * and returns how many there are (at most HDB__CONFIG_MAX_KEYS). names must have room for
 * HDB__CONFIG_MAX_KEYS entries; they point into the static table. */
size_t hdb__config_section_keys(const char *section, const char **names);

/* Returns the full dotted name of k ("server.threads"), a static string. */
const char *hdb__config_key_name(const hdb__config_key *k);

/* Writes what k accepts, for "must be ..." messages, into buf (n bytes, always terminated) and
 * returns buf: e.g. "an integer between 1 and 256". */
const char *hdb__config_describe(const hdb__config_key *k, char *buf, size_t n);

/* Writes the value of k in c as it would be written in the file ("64MiB", "true") into buf
 * (n bytes, always terminated) and returns buf. */
const char *hdb__config_format_value(const hdb_config *c, const hdb__config_key *k, char *buf,
                                     size_t n);

/* Parses text (len bytes, NUL-terminated; NULL for a YAML null) as the value of k and stores
 * it in c; strings are copied into c->arena. quoted says the YAML scalar was quoted (flags pass
 * false); integers and booleans must not be. On failure writes the reason, without the key,
 * into msg (msglen bytes; NULL allowed), returns HDB_EINVAL and leaves c unchanged. */
int hdb__config_set_value(hdb_config *c, const hdb__config_key *k, const char *text, size_t len,
                          bool quoted, char *msg, size_t msglen);

/* Parses an unsigned decimal integer (digits only) at s + *pos; on success advances *pos past
 * the digits, stores the value and returns 0. Returns -1 on no digits or overflow. */
int hdb__config_parse_uint(const char *s, size_t *pos, uint64_t *out);

/* A boolean as the config writes it: true, false, yes or no (any case). 0, or -1. */
int hdb__config_parse_bool(const char *s, bool *out);

/* ---- the YAML document (hdb_config_yaml.c) ------------------------------------------------- */

/* State of one hdb_config_load_file call. Borrowed pointers, all owned by that call. */
typedef struct {
    yaml_document_t *doc;
    const char *file; /* the path, for messages */
    hdb_config *c;    /* the working copy; strings and messages go to c->arena */
    char *err;        /* the caller's error buffer (NULL allowed) */
    size_t errlen;
} hdb__config_loader;

/* Formats "file:line: key: message" (or "file:line: message" when key is NULL or empty), with
 * n's line, into L's error buffer and returns HDB_EINVAL. */
int hdb__config_fail(const hdb__config_loader *L, const yaml_node_t *n, const char *key,
                     const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/* Returns node id of L's document. The node belongs to the document. Asserts that it exists. */
yaml_node_t *hdb__config_node(const hdb__config_loader *L, int id);

/* The text of a scalar node, NUL-terminated (it may contain further NULs; see its length). */
const char *hdb__config_scalar_text(const yaml_node_t *n);

/* True when the scalar n was written in quotes (or as a block scalar). */
bool hdb__config_is_quoted(const yaml_node_t *n);

/* True for YAML's null: an unquoted "", "~", "null", "Null" or "NULL". */
bool hdb__config_is_null(const yaml_node_t *n);

/* Names the kind of n for messages: "a mapping", "a list", "a scalar", "null". Static. */
const char *hdb__config_kind_name(const yaml_node_t *n);

/* snprintf into buf (n bytes) that returns buf. Paths that do not fit are cut; they only
 * appear in messages. */
const char *hdb__config_path(char *buf, size_t n, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Writes "prefix.name" (or just name when prefix is empty) into buf and returns buf. name is
 * len bytes and need not be NUL-terminated. */
const char *hdb__config_join(char *buf, size_t n, const char *prefix, const char *name, size_t len);

/* Checks that n is a mapping (null counts as an empty one) whose keys are distinct scalars from
 * known[] (nknown names). Errors name the key under path ("" for the top level) and list the
 * known keys. Returns HDB_OK or HDB_EINVAL. */
int hdb__config_check_mapping(const hdb__config_loader *L, const yaml_node_t *n, const char *path,
                              const char *const *known, size_t nknown);

/* Returns the value of key name in a mapping checked by hdb__config_check_mapping, or NULL
 * when it is absent (or map is not a mapping). The node belongs to the document. */
yaml_node_t *hdb__config_lookup(const hdb__config_loader *L, const yaml_node_t *map,
                                const char *name);

/* Like hdb__config_lookup for a key that must be present: when it is absent, fails with
 * "path.name: required key is missing" at the mapping's line. */
int hdb__config_require(const hdb__config_loader *L, const yaml_node_t *map, const char *path,
                        const char *name, yaml_node_t **out);

/* Copies a non-null scalar into L->c->arena (numbers are kept as written: "1.10"). Errors name
 * path. */
int hdb__config_get_string(const hdb__config_loader *L, const yaml_node_t *n, const char *path,
                           char **out);

/* Reads an unquoted decimal integer in min..max. Errors name path and the range. */
int hdb__config_get_u32(const hdb__config_loader *L, const yaml_node_t *n, const char *path,
                        uint32_t min, uint32_t max, uint32_t *out);

/* Returns the items of a list (null counts as an empty one: *items NULL, *count 0). The items
 * belong to the document. Errors name path. */
int hdb__config_get_list(const hdb__config_loader *L, const yaml_node_t *n, const char *path,
                         yaml_node_item_t **items, size_t *count);

/* ---- the API keys (hdb_config_auth.c) ------------------------------------------------------ */

/* Loads the auth: section (a mapping with keys:, a list of {name, role, hash}) from n into L->c,
 * replacing the keys there; strings go to L->c->arena. Checks each role and hash, and that
 * names are distinct. Returns HDB_OK or HDB_EINVAL with "file:line: auth.keys[i].field: reason". */
int hdb__config_load_auth(const hdb__config_loader *L, const yaml_node_t *n);

/* ---- the declared catalog objects (hdb_config_specs.c) ------------------------------------- */

/* Loads the top-level list `key` (data_sources, indices or model_spaces; the caller has checked
 * the name) from n into L->c, replacing the list there. Messages and strings are allocated from
 * L->c->arena. Returns HDB_OK or HDB_EINVAL with "file:line: key[i].field: reason". */
int hdb__config_load_spec_list(const hdb__config_loader *L, const char *key, const yaml_node_t *n);

/* Checks the YAML schemas of the spec messages against their protobuf-c descriptors: every
 * field is read by exactly one key, each key names a field of a type it can load (an enum with
 * its spelling, a message with its schema, an integer with a range), and every algorithm with
 * parameters has their schema. Returns HDB_OK, or HDB_EINTERNAL with the first mismatch in err.
 * A mismatch is a programming error; the unit tests call this so that it is caught there. */
int hdb__config_check_specs(char *err, size_t errlen);

#endif /* HDB_CONFIG_INT_H */
