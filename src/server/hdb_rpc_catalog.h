/*
 * hdb_rpc_catalog.h - handlers of the Catalog service: create, get, list and drop data sources and indices, with index status.
 *
 * Thread-safety: handlers run on any call thread, concurrently (the catalog serialises DDL).
 */
#ifndef HDB_RPC_CATALOG_H
#define HDB_RPC_CATALOG_H

#include <stddef.h>

#include "hdb_server.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Returns the static table of this service's methods and stores its length in *n. */
const hdb_rpc_method *hdb_rpc_catalog_methods(size_t *n);

#ifdef __cplusplus
}
#endif

#endif /* HDB_RPC_CATALOG_H */
