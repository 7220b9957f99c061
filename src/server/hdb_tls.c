/*
 * hdb_tls.c - TLS certificates for the gRPC server, reloadable (see hdb_tls.h).
 *
 * The files are read into memory and checked here with OpenSSL before gRPC sees them, so a bad
 * file is reported with its config key instead of failing every handshake later. gRPC asks
 * fetch() for the certificate config at each handshake; it gets a new one when the generation
 * moved since the last one it took (after a successful reload), else "unchanged".
 */
#include "hdb_tls.h"

#include "hdb_err.h"
#include "hdb_log.h"
#include "hdb_mem.h"

#include <errno.h>
#include <openssl/bio.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#define MAX_PEM_BYTES (1 << 20)

/* The PEM texts of one load. */
typedef struct {
    char *cert, *key, *ca; /* ca NULL without tls.client_ca_file */
} pem_set;

struct hdb_tls {
    const hdb_config *cfg;
    pthread_mutex_t mu;
    pem_set cur;           /* guarded by mu */
    unsigned long gen;     /* bumped by each successful load; guarded by mu */
    unsigned long served;  /* the generation gRPC last took; guarded by mu */
};

static void pem_free(pem_set *p) {
    if (p->key != NULL) OPENSSL_cleanse(p->key, strlen(p->key));
    hdb_free(p->cert);
    hdb_free(p->key);
    hdb_free(p->ca);
    memset(p, 0, sizeof *p);
}

static int read_text(const char *key, const char *path, char **out, char *err, size_t errlen) {
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return hdb_errf(err, errlen, HDB_EIO, "%s: %s: cannot open: %s", key, path,
                        strerror(errno));
    char *buf = hdb_malloc(MAX_PEM_BYTES + 1);
    size_t n = fread(buf, 1, MAX_PEM_BYTES + 1, f);
    int bad = ferror(f);
    fclose(f);
    if (bad || n > MAX_PEM_BYTES) {
        hdb_free(buf);
        return hdb_errf(err, errlen, bad ? HDB_EIO : HDB_EINVAL, "%s: %s: %s", key, path,
                        bad ? "cannot read" : "larger than 1 MiB; not a PEM file?");
    }
    buf[n] = '\0';
    *out = buf;
    return HDB_OK;
}

/* The first OpenSSL error, for messages (or "no PEM data found"). */
static const char *ssl_reason(char *buf, size_t n) {
    unsigned long e = ERR_get_error();
    ERR_clear_error();
    if (e == 0) return "no PEM data found";
    ERR_error_string_n(e, buf, n);
    return buf;
}

/* Reads the three files and checks them: certificates parse, the key parses and matches the
 * first certificate. */
static int load(const hdb_config *cfg, pem_set *p, char *err, size_t errlen) {
    char why[256];
    X509 *cert = NULL, *extra = NULL;
    EVP_PKEY *pkey = NULL;
    BIO *bio = NULL;
    int rc;
    memset(p, 0, sizeof *p);
    bool has_ca = cfg->tls_client_ca_file[0] != '\0';
    if ((rc = read_text("tls.cert_file", cfg->tls_cert_file, &p->cert, err, errlen)) != HDB_OK ||
        (rc = read_text("tls.key_file", cfg->tls_key_file, &p->key, err, errlen)) != HDB_OK ||
        (has_ca && (rc = read_text("tls.client_ca_file", cfg->tls_client_ca_file, &p->ca, err,
                                   errlen)) != HDB_OK))
        goto fail;
    ERR_clear_error();
    bio = BIO_new_mem_buf(p->cert, -1);
    if (bio == NULL || (cert = PEM_read_bio_X509(bio, NULL, NULL, NULL)) == NULL) {
        rc = hdb_errf(err, errlen, HDB_EINVAL, "%s: %s: not a PEM certificate (%s)",
                      "tls.cert_file", cfg->tls_cert_file, ssl_reason(why, sizeof why));
        goto fail;
    }
    BIO_free(bio);
    bio = BIO_new_mem_buf(p->key, -1);
    if (bio == NULL || (pkey = PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL)) == NULL) {
        rc = hdb_errf(err, errlen, HDB_EINVAL,
                      "%s: %s: not a PEM private key, or one with a passphrase (%s)",
                      "tls.key_file", cfg->tls_key_file, ssl_reason(why, sizeof why));
        goto fail;
    }
    if (X509_check_private_key(cert, pkey) != 1) {
        ERR_clear_error();
        rc = hdb_errf(err, errlen, HDB_EINVAL,
                      "tls.key_file: %s: not the private key of the certificate in "
                      "tls.cert_file (%s)",
                      cfg->tls_key_file, cfg->tls_cert_file);
        goto fail;
    }
    if (has_ca) {
        BIO_free(bio);
        bio = BIO_new_mem_buf(p->ca, -1);
        if (bio == NULL || (extra = PEM_read_bio_X509(bio, NULL, NULL, NULL)) == NULL) {
            rc = hdb_errf(err, errlen, HDB_EINVAL, "%s: %s: not a PEM certificate (%s)",
                          "tls.client_ca_file", cfg->tls_client_ca_file,
                          ssl_reason(why, sizeof why));
            goto fail;
        }
    }
    rc = HDB_OK;
    goto done;
fail:
    pem_free(p);
done:
    ERR_clear_error();
    X509_free(extra);
    X509_free(cert);
    EVP_PKEY_free(pkey);
    BIO_free(bio);
    return rc;
}

int hdb_tls_create(hdb_tls **out, const hdb_config *cfg, char *err, size_t errlen) {
    *out = NULL;
    if (cfg->tls_cert_file[0] == '\0') return HDB_OK;
    pem_set p;
    int rc = load(cfg, &p, err, errlen);
    if (rc != HDB_OK) return rc;
    hdb_tls *t = hdb_calloc(1, sizeof *t);
    t->cfg = cfg;
    pthread_mutex_init(&t->mu, NULL);
    t->cur = p;
    t->gen = 1;
    *out = t;
    return HDB_OK;
}

/* gRPC's certificate config fetcher: called at each handshake, on gRPC's threads. */
static grpc_ssl_certificate_config_reload_status fetch(void *arg,
                                                       grpc_ssl_server_certificate_config **cfg) {
    hdb_tls *t = arg;
    grpc_ssl_certificate_config_reload_status st = GRPC_SSL_CERTIFICATE_CONFIG_RELOAD_UNCHANGED;
    pthread_mutex_lock(&t->mu);
    if (t->served != t->gen) {
        grpc_ssl_pem_key_cert_pair pair = {.private_key = t->cur.key, .cert_chain = t->cur.cert};
        /* gRPC copies the strings. gRPC 1.51 asserts that a fetched config has root
         * certificates (ssl_security_connector.cc:366) even when no client certificate is
         * asked for; then they are never used (no CertificateRequest is sent), so the server's
         * own chain stands in. */
        *cfg = grpc_ssl_server_certificate_config_create(t->cur.ca ? t->cur.ca : t->cur.cert,
                                                         &pair, 1);
        if (*cfg != NULL) {
            t->served = t->gen;
            st = GRPC_SSL_CERTIFICATE_CONFIG_RELOAD_NEW;
        } else {
            st = GRPC_SSL_CERTIFICATE_CONFIG_RELOAD_FAIL;
        }
    }
    pthread_mutex_unlock(&t->mu);
    return st;
}

grpc_server_credentials *hdb_tls_credentials(hdb_tls *t) {
    grpc_ssl_client_certificate_request_type req = GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE;
    if (strcmp(t->cfg->tls_client_auth, "request") == 0)
        req = GRPC_SSL_REQUEST_CLIENT_CERTIFICATE_AND_VERIFY;
    else if (strcmp(t->cfg->tls_client_auth, "require") == 0)
        req = GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY;
    grpc_ssl_server_credentials_options *o =
        grpc_ssl_server_credentials_create_options_using_config_fetcher(req, fetch, t);
    /* Takes over (and destroys) the options. */
    return grpc_ssl_server_credentials_create_with_options(o);
}

int hdb_tls_reload(hdb_tls *t, char *err, size_t errlen) {
    pem_set p, old;
    int rc = load(t->cfg, &p, err, errlen);
    if (rc != HDB_OK) return rc;
    pthread_mutex_lock(&t->mu);
    old = t->cur;
    t->cur = p;
    t->gen++;
    pthread_mutex_unlock(&t->mu);
    pem_free(&old);
    return HDB_OK;
}

void hdb_tls_free(hdb_tls *t) {
    if (t == NULL) return;
    pem_free(&t->cur);
    pthread_mutex_destroy(&t->mu);
    hdb_free(t);
}
