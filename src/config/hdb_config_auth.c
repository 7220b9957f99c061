/*
 * hdb_config_auth.c - the auth: section of the config file: the API keys, each a name, a role
 * and the salted hash of the key (never the key itself):
 *
 *   auth:
 *     keys:
 *       - {name: ingest, role: write, hash: "sha256:<salt hex>:<hash hex>"}
 *
 * Only the shape is checked here (role names, the hash's syntax, distinct names); the server's
 * hdb_auth module decodes the hashes and checks the keys that calls present.
 */
#include "hdb_config_int.h"

#include "hdb_arena.h"
#include "hdb_err.h"

#include <string.h>

typedef hdb__config_loader loader;

static const char *const auth_keys[] = {"keys"};
static const char *const key_fields[] = {"name", "role", "hash"};

/* Loads auth.keys[i] from the mapping m into *k. */
static int load_key(const loader *L, const yaml_node_t *m, size_t i, hdb_config_api_key *k) {
    char path[64], key[96], msg[256];
    yaml_node_t *v;
    char *role;
    hdb__config_path(path, sizeof path, "auth.keys[%zu]", i);
    if (m->type != YAML_MAPPING_NODE)
        return hdb__config_fail(L, m, path, "must be a mapping {name, role, hash}, not %s",
                                hdb__config_kind_name(m));
    int rc = hdb__config_check_mapping(L, m, path, key_fields, 3);
    if (rc != HDB_OK) return rc;

    if ((rc = hdb__config_require(L, m, path, "name", &v)) != HDB_OK ||
        (rc = hdb__config_get_string(L, v, hdb__config_path(key, sizeof key, "%s.name", path),
                                     &k->name)) != HDB_OK)
        return rc;
    if (k->name[0] == '\0') return hdb__config_fail(L, v, key, "must not be empty");

    if ((rc = hdb__config_require(L, m, path, "role", &v)) != HDB_OK ||
        (rc = hdb__config_get_string(L, v, hdb__config_path(key, sizeof key, "%s.role", path),
                                     &role)) != HDB_OK)
        return rc;
    if (hdb_role_parse(role, &k->role) != HDB_OK)
        return hdb__config_fail(L, v, key, "must be read, write or admin (got \"%.40s\")", role);

    if ((rc = hdb__config_require(L, m, path, "hash", &v)) != HDB_OK ||
        (rc = hdb__config_get_string(L, v, hdb__config_path(key, sizeof key, "%s.hash", path),
                                     &k->hash)) != HDB_OK)
        return rc;
    if (hdb_config_parse_key_hash(k->hash, NULL, NULL, NULL, msg, sizeof msg) != HDB_OK)
        return hdb__config_fail(L, v, key, "%s", msg);
    return HDB_OK;
}

int hdb__config_load_auth(const loader *L, const yaml_node_t *n) {
    yaml_node_item_t *items;
    size_t count;
    int rc = hdb__config_check_mapping(L, n, "auth", auth_keys, 1);
    if (rc != HDB_OK) return rc;
    yaml_node_t *list = hdb__config_lookup(L, n, "keys");
    if (list == NULL) { /* auth: with nothing in it: no keys */
        L->c->api_keys = NULL;
        L->c->n_api_keys = 0;
        return HDB_OK;
    }
    if ((rc = hdb__config_get_list(L, list, "auth.keys", &items, &count)) != HDB_OK) return rc;
    hdb_config_api_key *keys = count ? hdb_arena_calloc(L->c->arena, count, sizeof *keys) : NULL;
    for (size_t i = 0; i < count; i++) {
        const yaml_node_t *m = hdb__config_node(L, items[i]);
        if ((rc = load_key(L, m, i, &keys[i])) != HDB_OK) return rc;
        for (size_t j = 0; j < i; j++)
            if (strcmp(keys[j].name, keys[i].name) == 0) {
                char path[64];
                return hdb__config_fail(L, hdb__config_lookup(L, m, "name"),
                                        hdb__config_path(path, sizeof path, "auth.keys[%zu].name",
                                                         i),
                                        "duplicate key name \"%.60s\" (also auth.keys[%zu])",
                                        keys[i].name, j);
            }
        for (size_t j = 0; j < i; j++)
            if (strcmp(keys[j].hash, keys[i].hash) == 0) {
                char path[64];
                return hdb__config_fail(L, hdb__config_lookup(L, m, "hash"),
                                        hdb__config_path(path, sizeof path, "auth.keys[%zu].hash",
                                                         i),
                                        "the same hash as auth.keys[%zu]", j);
            }
    }
    L->c->api_keys = keys;
    L->c->n_api_keys = count;
    return HDB_OK;
}
