/*
 * hdb_rpc_euclides.h - EuclidesDB's Similar service (proto/euclidesproto/euclides.proto) on
 * hilbertd's port, so that clients written for EuclidesDB work unchanged: its calls map onto
 * the model spaces (hdb_spaces.h). They run on the server's model threads, like the
 * ModelSpaces calls.
 */
#ifndef HDB_RPC_EUCLIDES_H
#define HDB_RPC_EUCLIDES_H

#include <stddef.h>

#include "hdb_server.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Returns the static table of this service's methods and stores its length in *n. */
const hdb_rpc_method *hdb_rpc_euclides_methods(size_t *n);

#ifdef __cplusplus
}
#endif

#endif /* HDB_RPC_EUCLIDES_H */
