/*
 * hdb_tls.h - the server's TLS: the certificate files of the tls: section, checked with OpenSSL
 * and handed to gRPC through a certificate-config fetcher, so that a reload (SIGHUP) applies
 * to the next TLS handshake without a restart. Connections already open keep the certificate
 * they were made with.
 *
 * Threads: hdb_tls_reload runs on the main thread; gRPC calls the fetcher from its own threads
 * at each handshake. A mutex guards the PEM texts they share.
 */
#ifndef HDB_TLS_H
#define HDB_TLS_H

#include <stddef.h>

#include <grpc/grpc_security.h>

#include "hdb_config.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct hdb_tls hdb_tls;

/* Reads and checks tls.cert_file, tls.key_file and tls.client_ca_file of cfg (the key must
 * match the certificate; each file must hold PEM of the right kind) into *out. cfg is borrowed
 * and must outlive the object (reloads read the same paths). Returns HDB_OK; HDB_EIO or
 * HDB_EINVAL with a message that names the config key and the file. *out is NULL when cfg has no
 * tls.cert_file (TLS off); free with hdb_tls_free. */
int hdb_tls_create(hdb_tls **out, const hdb_config *cfg, char *err, size_t errlen);

/* New server credentials that serve t's certificates, for grpc_server_add_http2_port; the
 * caller releases them (grpc_server_credentials_release). t must outlive the grpc_server they
 * are added to. */
grpc_server_credentials *hdb_tls_credentials(hdb_tls *t);

/* Reads and checks the files again. On success the next handshake uses them; on failure (a
 * file missing or bad) nothing changes and err names the key and the file. Returns HDB_OK,
 * HDB_EIO or HDB_EINVAL. */
int hdb_tls_reload(hdb_tls *t, char *err, size_t errlen);

/* Frees t. Only after the grpc_server that uses its credentials has been destroyed. NULL is
 * allowed. */
void hdb_tls_free(hdb_tls *t);

#ifdef __cplusplus
}
#endif

#endif /* HDB_TLS_H */
