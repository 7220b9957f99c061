/*
 * hdb_rpc_models.h - handlers of the ModelSpaces service: AddImage, AddTensor,
 * FindSimilarImage, FindSimilarTensor, FindSimilarById, RemoveImage and Embed. They run on the
 * server's model threads.
 */
#ifndef HDB_RPC_MODELS_H
#define HDB_RPC_MODELS_H

#include <stddef.h>

#include "hdb_server.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Returns the static table of this service's methods and stores its length in *n. */
const hdb_rpc_method *hdb_rpc_models_methods(size_t *n);

#ifdef __cplusplus
}
#endif

#endif /* HDB_RPC_MODELS_H */
