/*
 * hdb_auth.h - API keys: the set of configured keys (auth.keys), the check each call passes
 * before its handler runs, and the key tool behind hilbertd --hash-key and --new-key.
 *
 * A key is stored only as "sha256:<salt hex>:<hex of SHA-256(salt || key)>". A call presents its
 * key in the metadata `authorization: Bearer KEY` or `x-api-key: KEY`; the check hashes it with
 * the salt of every configured key and compares each result in constant time (CRYPTO_memcmp),
 * without stopping at a match, so neither timing nor an early exit tells which key matched or
 * how close a guess came. Keys should be long and random (--new-key makes 256-bit ones): a
 * plain salted hash is fast to check on every call, which is also why it would be weak for
 * short, human-chosen secrets.
 *
 * Threads: a key set is immutable after hdb_auth_create; any thread may check calls against it
 * concurrently.
 */
#ifndef HDB_AUTH_H
#define HDB_AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include <grpc/grpc.h>

#include "hdb_config.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct hdb_auth hdb_auth;

/* Builds the key set of cfg->api_keys (decoding each hash) into *out; with no keys configured
 * *out is NULL and every call is let in. cfg is only read during the call. Returns HDB_OK, or
 * HDB_EINVAL naming the key (auth.keys[i].hash) when a hash does not decode. Free with
 * hdb_auth_free. */
int hdb_auth_create(hdb_auth **out, const hdb_config *cfg, char *err, size_t errlen);

/* Frees a key set. NULL is allowed. */
void hdb_auth_free(hdb_auth *a);

/* The number of configured keys (0 for NULL). */
size_t hdb_auth_count(const hdb_auth *a);

/* Looks key (len bytes) up: on a match stores its role in *role and its configured name in
 * *name (valid as long as a) and returns HDB_OK; otherwise returns HDB_EUNAUTH. Every
 * configured key is compared, in constant time each. */
int hdb_auth_verify(const hdb_auth *a, const char *key, size_t len, hdb_role *role,
                    const char **name);

/* Checks a call's metadata (md, n entries) for a key that holds role `need`, for the method
 * service/method (they only appear in messages). HDB_ROLE_OPEN and a NULL key set let every
 * call in. Returns HDB_OK; HDB_EUNAUTH when the key is missing or unknown; HDB_EPERM when the
 * key's role is too low, with a message that names the method and the role it needs. */
int hdb_auth_check_call(const hdb_auth *a, const grpc_metadata *md, size_t n, hdb_role need,
                        const char *service, const char *method, char *err, size_t errlen);

/* Writes "sha256:<salt>:<hash>" of key (len bytes) with a fresh random 16-byte salt into out
 * (cap bytes; 128 are enough). Returns HDB_OK, or HDB_EINTERNAL when the random generator
 * fails. */
int hdb_auth_hash_key(const char *key, size_t len, char *out, size_t cap);

/* Writes a new random key, "hdb_" and 64 hex digits (256 bits from RAND_bytes), into out (cap
 * bytes; at least 69). Returns HDB_OK or HDB_EINTERNAL. */
int hdb_auth_new_key(char *out, size_t cap);

/* Checks that key (len bytes) can be used: 16..1024 printable ASCII characters without spaces
 * (it must fit in a metadata value). Returns HDB_OK or HDB_EINVAL with the reason in err. */
int hdb_auth_check_key_text(const char *key, size_t len, char *err, size_t errlen);

/* The key tool. new_key true (--new-key ROLE): makes a random key and prints it and its
 * auth.keys entry to out. Else (--hash-key ROLE): reads one line (the key) from in, and prints
 * its entry. Lines starting with '#' are comments; the entry is one YAML flow mapping
 * "- {name: key-XXXXXXXX, role: ROLE, hash: "sha256:..."}". Returns HDB_OK, or HDB_EINVAL with
 * the reason in err for a bad key. Main thread (it reads in). */
int hdb_auth_key_tool(bool new_key, hdb_role role, FILE *in, FILE *out, char *err,
                      size_t errlen);

#ifdef __cplusplus
}
#endif

#endif /* HDB_AUTH_H */
