/*
 * hdb_rpc_search.h - handlers of the Search service: k nearest neighbours in one index.
 *
 * Thread-safety: handlers run on any call thread, concurrently.
 */
#ifndef HDB_RPC_SEARCH_H
#define HDB_RPC_SEARCH_H

#include <stdbool.h>
#include <stddef.h>

#include "hdb_query.h"
#include "hdb_server.h"
#include "hilbert/v1/search.pb-c.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Builds the SearchHit messages of one query's results (in arena memory), with vectors when
 * asked; *n receives their number. Shared with the ModelSpaces calls. */
Hilbert__V1__SearchHit **hdb_rpc_hits_out(const hdb_query_result *r, bool vectors,
                                          hdb_arena *a, size_t *n);

/* The call's stop condition for the work it hands down: rpc->stop, its deadline filled from
 * rpc->deadline_ns when the server left it 0. Valid as long as rpc. Shared with the other
 * services. */
const hdb_stop *hdb_rpc_stop(hdb_rpc *rpc);

/* Returns the static table of this service's methods and stores its length in *n. */
const hdb_rpc_method *hdb_rpc_search_methods(size_t *n);

#ifdef __cplusplus
}
#endif

#endif /* HDB_RPC_SEARCH_H */
