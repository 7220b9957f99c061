/*
 * hdb_rpc_admin.h - handlers of the hilbert.v1.Admin service: Backup.
 *
 * Thread-safety: handlers run on any write-pool thread, concurrently (backups are serialised
 * inside hdb_backup_create).
 */
#ifndef HDB_RPC_ADMIN_H
#define HDB_RPC_ADMIN_H

#include <stddef.h>

#include "hdb_server.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Returns the static table of this service's methods and stores its length in *n. */
const hdb_rpc_method *hdb_rpc_admin_methods(size_t *n);

#ifdef __cplusplus
}
#endif

#endif /* HDB_RPC_ADMIN_H */
