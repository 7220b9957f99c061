/*
 * hdb_rpc_models.h - handlers of the ModelSpaces service: AddImage, AddTensor,
 * FindSimilarImage, FindSimilarTensor, FindSimilarById, RemoveImage and Embed. They run on the
 * server's model threads.
 */
#ifndef HDB_RPC_MODELS_H
#define HDB_RPC_MODELS_H

#include <stddef.h>

#include "hdb_server.h"
#include "hdb_spaces.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The model-space call of an RPC: its registry, config, inference pool, arena, deadline and
 * stop condition, all borrowed from rpc for the call's duration. Shared with the EuclidesDB
 * service. Any call thread. */
hdb_spaces_call hdb_rpc_spaces_call(hdb_rpc *rpc);

/* Returns the static table of this service's methods and stores its length in *n. */
const hdb_rpc_method *hdb_rpc_models_methods(size_t *n);

#ifdef __cplusplus
}
#endif

#endif /* HDB_RPC_MODELS_H */
