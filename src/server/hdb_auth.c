/*
 * hdb_auth.c - API keys: the decoded key set, the per-call check, the key tool (see hdb_auth.h).
 *
 * The per-call cost is one SHA-256 of (salt || presented key) per configured key, a few
 * microseconds for a handful of keys: cheaper than a cache keyed by the secret would be to get
 * right.
 */
#include "hdb_auth.h"

#include "hdb_err.h"
#include "hdb_log.h"
#include "hdb_mem.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <string.h>
#include <strings.h>

#define SALT_MAX 64
#define DIGEST 32
#define NEW_SALT 16
#define KEY_MIN 16
#define KEY_MAX 1024

typedef struct {
    char *name;
    hdb_role role;
    unsigned char salt[SALT_MAX];
    size_t saltlen;
    unsigned char digest[DIGEST];
} auth_key;

struct hdb_auth {
    auth_key *keys;
    size_t n;
};

/* SHA-256 of salt || key. Returns 0, or -1 when libcrypto fails. */
static int digest_of(const unsigned char *salt, size_t saltlen, const char *key, size_t len,
                     unsigned char out[DIGEST]) {
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    unsigned int n = 0;
    int ok = ctx != NULL && EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) == 1 &&
             EVP_DigestUpdate(ctx, salt, saltlen) == 1 && EVP_DigestUpdate(ctx, key, len) == 1 &&
             EVP_DigestFinal_ex(ctx, out, &n) == 1 && n == DIGEST;
    EVP_MD_CTX_free(ctx);
    return ok ? 0 : -1;
}

static void to_hex(const unsigned char *b, size_t n, char *out) {
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[b[i] >> 4];
        out[2 * i + 1] = digits[b[i] & 15];
    }
    out[2 * n] = '\0';
}

int hdb_auth_create(hdb_auth **out, const hdb_config *cfg, char *err, size_t errlen) {
    char msg[256];
    *out = NULL;
    if (cfg->n_api_keys == 0) return HDB_OK;
    hdb_auth *a = hdb_calloc(1, sizeof *a);
    a->keys = hdb_calloc(cfg->n_api_keys, sizeof *a->keys);
    for (size_t i = 0; i < cfg->n_api_keys; i++) {
        const hdb_config_api_key *c = &cfg->api_keys[i];
        auth_key *k = &a->keys[i];
        if (hdb_config_parse_key_hash(c->hash, k->salt, &k->saltlen, k->digest, msg,
                                      sizeof msg) != HDB_OK) {
            hdb_auth_free(a);
            return hdb_errf(err, errlen, HDB_EINVAL, "auth.keys[%zu].hash: %s", i, msg);
        }
        k->name = hdb_strdup(c->name);
        k->role = c->role;
        a->n++;
    }
    *out = a;
    return HDB_OK;
}

void hdb_auth_free(hdb_auth *a) {
    if (a == NULL) return;
    for (size_t i = 0; i < a->n; i++) hdb_free(a->keys[i].name);
    OPENSSL_cleanse(a->keys, a->n * sizeof *a->keys);
    hdb_free(a->keys);
    hdb_free(a);
}

size_t hdb_auth_count(const hdb_auth *a) {
    return a ? a->n : 0;
}

int hdb_auth_verify(const hdb_auth *a, const char *key, size_t len, hdb_role *role,
                    const char **name) {
    if (a == NULL) return HDB_EUNAUTH;
    size_t found = a->n; /* a->n: none */
    unsigned char d[DIGEST];
    for (size_t i = 0; i < a->n; i++) {
        const auth_key *k = &a->keys[i];
        if (digest_of(k->salt, k->saltlen, key, len, d) != 0) continue;
        /* No branch on the secret: keep the first match, look at every key. */
        size_t match = (size_t)(CRYPTO_memcmp(d, k->digest, DIGEST) == 0);
        size_t take = match & (size_t)(found == a->n);
        found = take ? i : found;
    }
    OPENSSL_cleanse(d, sizeof d);
    if (found == a->n) return HDB_EUNAUTH;
    *role = a->keys[found].role;
    if (name != NULL) *name = a->keys[found].name;
    return HDB_OK;
}

static bool slice_is(grpc_slice s, const char *lit) {
    size_t n = strlen(lit);
    return GRPC_SLICE_LENGTH(s) == n && memcmp(GRPC_SLICE_START_PTR(s), lit, n) == 0;
}

int hdb_auth_check_call(const hdb_auth *a, const grpc_metadata *md, size_t n, hdb_role need,
                        const char *service, const char *method, char *err, size_t errlen) {
    HDB_ASSERT(need != HDB_ROLE_UNSET);
    if (a == NULL || need == HDB_ROLE_OPEN) return HDB_OK;
    const char *key = NULL;
    size_t len = 0;
    bool bad_scheme = false;
    for (size_t i = 0; i < n && key == NULL; i++) {
        const char *v = (const char *)GRPC_SLICE_START_PTR(md[i].value);
        size_t vlen = GRPC_SLICE_LENGTH(md[i].value);
        if (slice_is(md[i].key, "authorization")) {
            if (vlen > 7 && strncasecmp(v, "bearer ", 7) == 0) {
                key = v + 7;
                len = vlen - 7;
                while (len > 0 && *key == ' ') key++, len--;
            } else {
                bad_scheme = true;
            }
        } else if (slice_is(md[i].key, "x-api-key")) {
            key = v;
            len = vlen;
        }
    }
    if (key == NULL || len == 0)
        return hdb_errf(err, errlen, HDB_EUNAUTH,
                        bad_scheme ? "%s/%s: the authorization metadata must be \"Bearer KEY\""
                                   : "%s/%s: this server needs an API key: send it as the "
                                     "metadata authorization: Bearer KEY, or x-api-key: KEY",
                        service, method);
    hdb_role role;
    const char *name;
    if (hdb_auth_verify(a, key, len, &role, &name) != HDB_OK)
        return hdb_errf(err, errlen, HDB_EUNAUTH, "%s/%s: unknown API key", service, method);
    if (role < need)
        return hdb_errf(err, errlen, HDB_EPERM,
                        "%s/%s needs the %s role; API key \"%s\" has the %s role", service, method,
                        hdb_role_name(need), name, hdb_role_name(role));
    return HDB_OK;
}

int hdb_auth_hash_key(const char *key, size_t len, char *out, size_t cap) {
    unsigned char salt[NEW_SALT], d[DIGEST];
    char hsalt[2 * NEW_SALT + 1], hd[2 * DIGEST + 1];
    if (RAND_bytes(salt, sizeof salt) != 1 || digest_of(salt, sizeof salt, key, len, d) != 0)
        return HDB_EINTERNAL;
    to_hex(salt, sizeof salt, hsalt);
    to_hex(d, sizeof d, hd);
    if ((size_t)snprintf(out, cap, "sha256:%s:%s", hsalt, hd) >= cap) return HDB_EINTERNAL;
    return HDB_OK;
}

int hdb_auth_new_key(char *out, size_t cap) {
    unsigned char b[32];
    char hex[65];
    if (cap < 4 + sizeof hex || RAND_bytes(b, sizeof b) != 1) return HDB_EINTERNAL;
    to_hex(b, sizeof b, hex);
    OPENSSL_cleanse(b, sizeof b);
    snprintf(out, cap, "hdb_%s", hex);
    OPENSSL_cleanse(hex, sizeof hex);
    return HDB_OK;
}

int hdb_auth_check_key_text(const char *key, size_t len, char *err, size_t errlen) {
    if (len < KEY_MIN || len > KEY_MAX)
        return hdb_errf(err, errlen, HDB_EINVAL,
                        "an API key must have %d to %d characters (got %zu); hilbertd --new-key "
                        "makes a random one",
                        KEY_MIN, KEY_MAX, len);
    for (size_t i = 0; i < len; i++)
        if (key[i] < 0x21 || key[i] > 0x7e)
            return hdb_errf(err, errlen, HDB_EINVAL,
                            "an API key must be printable ASCII without spaces (character %zu "
                            "is not)",
                            i + 1);
    return HDB_OK;
}

int hdb_auth_key_tool(bool new_key, hdb_role role, FILE *in, FILE *out, char *err,
                      size_t errlen) {
    char key[KEY_MAX + 2], hash[160];
    size_t len;
    int rc;
    if (new_key) {
        if ((rc = hdb_auth_new_key(key, sizeof key)) != HDB_OK)
            return hdb_errf(err, errlen, rc, "cannot make a random key (RAND_bytes failed)");
        len = strlen(key);
    } else {
        if (fgets(key, sizeof key, in) == NULL)
            return hdb_errf(err, errlen, HDB_EINVAL, "--hash-key: no key on stdin");
        len = strlen(key);
        if (len > 0 && key[len - 1] == '\n') key[--len] = '\0';
        if (len > 0 && key[len - 1] == '\r') key[--len] = '\0';
        if ((rc = hdb_auth_check_key_text(key, len, err, errlen)) != HDB_OK) goto done;
    }
    if ((rc = hdb_auth_hash_key(key, len, hash, sizeof hash)) != HDB_OK) {
        hdb_errf(err, errlen, rc, "cannot hash the key (libcrypto failed)");
        goto done;
    }
    if (new_key)
        fprintf(out, "# API key, role %s (give it to the client; hilbertd keeps only its hash):\n"
                     "%s\n",
                hdb_role_name(role), key);
    /* The hash after "sha256:" begins with the random salt: a name unique per entry. */
    fprintf(out,
            "# auth.keys entry (add it under auth: keys: in the config; rename it at will):\n"
            "- {name: key-%.8s, role: %s, hash: \"%s\"}\n",
            hash + 7, hdb_role_name(role), hash);
done:
    OPENSSL_cleanse(key, sizeof key);
    return rc;
}
