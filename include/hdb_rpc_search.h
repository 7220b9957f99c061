/*
 * hdb_rpc_search.h - handlers of the Search service: k nearest neighbours in one index.
 */
#ifndef HDB_RPC_SEARCH_H
#define HDB_RPC_SEARCH_H

#include <stddef.h>

#include "hdb_server.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Returns the static table of this service's methods and stores its length in *n. */
const hdb_rpc_method *hdb_rpc_search_methods(size_t *n);

#ifdef __cplusplus
}
#endif

#endif /* HDB_RPC_SEARCH_H */
