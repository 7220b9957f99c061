/*
 * test_auth.c - unit tests of hdb_auth: hashing a key and verifying it against configured
 * hashes (the right key, wrong keys, keys that differ in one byte, several keys of different
 * roles), the per-call check on gRPC metadata (Bearer, x-api-key, missing, wrong role), the
 * random keys of --new-key and the key tool's output, which must load back as a config.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "hdb_arena.h"
#include "hdb_auth.h"
#include "hdb_config.h"
#include "hdb_err.h"
#include "test_support.h"

#include <grpc/grpc.h>
#include <stdio.h>
#include <string.h>

#define K_READ "reader-key-0123456789"
#define K_WRITE "writer-key-0123456789"
#define K_ADMIN "admin-key-01234567890"

typedef struct {
    hdb_config cfg;
    char hashes[3][160];
    hdb_auth *auth;
} fixture;

static int setup(void **state) {
    fixture *fx = calloc(1, sizeof *fx);
    static const char *const keys[] = {K_READ, K_WRITE, K_ADMIN};
    static const char *const names[] = {"r", "w", "a"};
    hdb_config_init(&fx->cfg);
    fx->cfg.api_keys = hdb_arena_calloc(fx->cfg.arena, 3, sizeof *fx->cfg.api_keys);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(hdb_auth_hash_key(keys[i], strlen(keys[i]), fx->hashes[i], 160), HDB_OK);
        fx->cfg.api_keys[i] = (hdb_config_api_key){(char *)names[i], HDB_ROLE_READ + i,
                                                   fx->hashes[i]};
    }
    fx->cfg.n_api_keys = 3;
    char err[256];
    assert_int_equal(hdb_auth_create(&fx->auth, &fx->cfg, err, sizeof err), HDB_OK);
    *state = fx;
    return 0;
}

static int teardown(void **state) {
    fixture *fx = *state;
    hdb_auth_free(fx->auth);
    hdb_config_free(&fx->cfg);
    free(fx);
    return 0;
}

static void test_hash_format(void **state) {
    fixture *fx = *state;
    unsigned char salt[64], digest[32];
    size_t saltlen = 0;
    char msg[256];
    for (int i = 0; i < 3; i++) {
        assert_int_equal(strncmp(fx->hashes[i], "sha256:", 7), 0);
        assert_int_equal(strlen(fx->hashes[i]), 7 + 32 + 1 + 64);
        assert_int_equal(
            hdb_config_parse_key_hash(fx->hashes[i], salt, &saltlen, digest, msg, sizeof msg),
            HDB_OK);
        assert_int_equal(saltlen, 16);
        /* The key itself appears nowhere in its hash. */
        assert_null(strstr(fx->hashes[i], "key"));
    }
    /* Salted: the same key hashes differently each time. */
    char again[160];
    assert_int_equal(hdb_auth_hash_key(K_READ, strlen(K_READ), again, sizeof again), HDB_OK);
    assert_string_not_equal(again, fx->hashes[0]);
}

static void test_verify(void **state) {
    fixture *fx = *state;
    hdb_role role;
    const char *name;
    static const struct {
        const char *key;
        hdb_role role;
        const char *name;
    } good[] = {{K_READ, HDB_ROLE_READ, "r"}, {K_WRITE, HDB_ROLE_WRITE, "w"},
                {K_ADMIN, HDB_ROLE_ADMIN, "a"}};
    for (size_t i = 0; i < 3; i++) {
        assert_int_equal(hdb_auth_verify(fx->auth, good[i].key, strlen(good[i].key), &role, &name),
                         HDB_OK);
        assert_int_equal(role, good[i].role);
        assert_string_equal(name, good[i].name);
    }
    /* Wrong keys: one byte off at the start, in the middle, at the end; a prefix; longer. */
    static const char *const bad[] = {"Xeader-key-0123456789", "reader-kez-0123456789",
                                      "reader-key-012345678X", "reader-key-012345678",
                                      "reader-key-01234567890", "", "sha256"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(hdb_auth_verify(fx->auth, bad[i], strlen(bad[i]), &role, &name),
                         HDB_EUNAUTH);
    /* The hash is not the key. */
    assert_int_equal(hdb_auth_verify(fx->auth, fx->hashes[0], strlen(fx->hashes[0]), &role, NULL),
                     HDB_EUNAUTH);
    assert_int_equal(hdb_auth_verify(NULL, K_READ, strlen(K_READ), &role, NULL), HDB_EUNAUTH);
    assert_int_equal(hdb_auth_count(fx->auth), 3);
    assert_int_equal(hdb_auth_count(NULL), 0);
}

/* One metadata entry; the slices are static, nothing to unref. */
static grpc_metadata md(const char *k, const char *v) {
    grpc_metadata m;
    memset(&m, 0, sizeof m);
    m.key = grpc_slice_from_static_string(k);
    m.value = grpc_slice_from_static_string(v);
    return m;
}

static void test_check_call(void **state) {
    fixture *fx = *state;
    char err[512];
    grpc_metadata m[2];
    m[0] = md("user-agent", "test");

    /* No key at all. */
    assert_int_equal(hdb_auth_check_call(fx->auth, m, 1, HDB_ROLE_READ, "S", "M", err, sizeof err),
                     HDB_EUNAUTH);
    assert_non_null(strstr(err, "authorization: Bearer KEY"));
    /* Open methods and a server without keys let everything in. */
    assert_int_equal(hdb_auth_check_call(fx->auth, m, 1, HDB_ROLE_OPEN, "S", "M", err, sizeof err),
                     HDB_OK);
    assert_int_equal(hdb_auth_check_call(NULL, m, 1, HDB_ROLE_ADMIN, "S", "M", err, sizeof err),
                     HDB_OK);

    m[1] = md("authorization", "Bearer " K_READ);
    assert_int_equal(hdb_auth_check_call(fx->auth, m, 2, HDB_ROLE_READ, "S", "M", err, sizeof err),
                     HDB_OK);
    assert_int_equal(hdb_auth_check_call(fx->auth, m, 2, HDB_ROLE_WRITE, "hilbert.v1.Points",
                                         "Upload", err, sizeof err),
                     HDB_EPERM);
    assert_non_null(strstr(err, "hilbert.v1.Points/Upload needs the write role"));
    assert_non_null(strstr(err, "\"r\" has the read role"));

    m[1] = md("authorization", "bearer " K_ADMIN); /* the scheme in any case */
    assert_int_equal(hdb_auth_check_call(fx->auth, m, 2, HDB_ROLE_ADMIN, "S", "M", err, sizeof err),
                     HDB_OK);
    m[1] = md("x-api-key", K_WRITE);
    assert_int_equal(hdb_auth_check_call(fx->auth, m, 2, HDB_ROLE_WRITE, "S", "M", err, sizeof err),
                     HDB_OK);
    assert_int_equal(hdb_auth_check_call(fx->auth, m, 2, HDB_ROLE_ADMIN, "S", "M", err, sizeof err),
                     HDB_EPERM);
    m[1] = md("x-api-key", "not-a-key-at-all-000");
    assert_int_equal(hdb_auth_check_call(fx->auth, m, 2, HDB_ROLE_READ, "S", "M", err, sizeof err),
                     HDB_EUNAUTH);
    assert_non_null(strstr(err, "unknown API key"));
    assert_null(strstr(err, "not-a-key")); /* a key is never echoed */
    m[1] = md("authorization", "Basic " K_ADMIN);
    assert_int_equal(hdb_auth_check_call(fx->auth, m, 2, HDB_ROLE_READ, "S", "M", err, sizeof err),
                     HDB_EUNAUTH);
    assert_non_null(strstr(err, "Bearer KEY"));
}

static void test_new_key_and_text(void **state) {
    (void)state;
    char a[80], b[80], err[256];
    assert_int_equal(hdb_auth_new_key(a, sizeof a), HDB_OK);
    assert_int_equal(hdb_auth_new_key(b, sizeof b), HDB_OK);
    assert_int_equal(strlen(a), 4 + 64);
    assert_int_equal(strncmp(a, "hdb_", 4), 0);
    assert_string_not_equal(a, b);
    assert_int_equal(hdb_auth_check_key_text(a, strlen(a), err, sizeof err), HDB_OK);
    assert_int_equal(hdb_auth_check_key_text("short", 5, err, sizeof err), HDB_EINVAL);
    assert_int_equal(hdb_auth_check_key_text("has a space in it!", 18, err, sizeof err),
                     HDB_EINVAL);
    assert_int_equal(hdb_auth_new_key(a, 10), HDB_EINTERNAL);
}

/* The key tool's entry, pasted under auth: keys:, loads and lets the key in. */
static void test_key_tool_roundtrip(void **state) {
    (void)state;
    char dir[512], path[600], err[512], *out = NULL;
    size_t outlen = 0;
    assert_int_equal(hdb_test_tmpdir(dir, sizeof dir, "test_auth"), 0);
    FILE *o = open_memstream(&out, &outlen);
    assert_int_equal(hdb_auth_key_tool(true, HDB_ROLE_WRITE, NULL, o, err, sizeof err), HDB_OK);
    fclose(o);
    /* Line 2 is the key; the line starting with "- " is the entry. */
    char key[128] = "", *entry = strstr(out, "\n- {name: key-");
    assert_non_null(entry);
    assert_int_equal(sscanf(strchr(out, '\n') + 1, "%127s", key), 1);
    snprintf(path, sizeof path, "%s/c.yaml", dir);
    FILE *f = fopen(path, "w");
    fprintf(f, "auth:\n  keys:\n    %s", entry + 1);
    fclose(f);

    hdb_config cfg;
    hdb_config_init(&cfg);
    if (hdb_config_load_file(&cfg, path, err, sizeof err) != HDB_OK) fail_msg("%s", err);
    assert_int_equal(cfg.n_api_keys, 1);
    assert_int_equal(cfg.api_keys[0].role, HDB_ROLE_WRITE);
    hdb_auth *a;
    assert_int_equal(hdb_auth_create(&a, &cfg, err, sizeof err), HDB_OK);
    hdb_role role;
    assert_int_equal(hdb_auth_verify(a, key, strlen(key), &role, NULL), HDB_OK);
    assert_int_equal(role, HDB_ROLE_WRITE);
    hdb_auth_free(a);
    hdb_config_free(&cfg);
    free(out);

    /* --hash-key reads the key from a stream, newline and all. */
    FILE *in = fmemopen((void *)"my-own-key-with-16+chars\n", 25, "r");
    out = NULL;
    o = open_memstream(&out, &outlen);
    assert_int_equal(hdb_auth_key_tool(false, HDB_ROLE_READ, in, o, err, sizeof err), HDB_OK);
    fclose(o);
    fclose(in);
    assert_null(strstr(out, "my-own-key")); /* only its hash is printed */
    assert_non_null(strstr(out, "role: read, hash: \"sha256:"));
    free(out);
    in = fmemopen((void *)"tiny\n", 5, "r");
    o = open_memstream(&out, &outlen);
    assert_int_equal(hdb_auth_key_tool(false, HDB_ROLE_READ, in, o, err, sizeof err), HDB_EINVAL);
    assert_non_null(strstr(err, "16 to 1024 characters"));
    fclose(o);
    fclose(in);
    free(out);
    hdb_test_rmdir(dir);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_hash_format, setup, teardown),
        cmocka_unit_test_setup_teardown(test_verify, setup, teardown),
        cmocka_unit_test_setup_teardown(test_check_call, setup, teardown),
        cmocka_unit_test(test_new_key_and_text),
        cmocka_unit_test(test_key_tool_roundtrip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
