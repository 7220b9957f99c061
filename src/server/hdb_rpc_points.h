/*
 * hdb_rpc_points.h - handlers of the Points service: Upload and Get.
 *
 * Thread-safety: handlers run on any call thread, concurrently.
 */
#ifndef HDB_RPC_POINTS_H
#define HDB_RPC_POINTS_H

#include <stddef.h>

#include "hdb_server.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Returns the static table of this service's methods and stores its length in *n. */
const hdb_rpc_method *hdb_rpc_points_methods(size_t *n);

#ifdef __cplusplus
}
#endif

#endif /* HDB_RPC_POINTS_H */
