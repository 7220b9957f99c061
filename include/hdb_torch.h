/*
 * hdb_torch.h - TorchScript models through libtorch: the C face of hdb_torch_bridge.cpp, the
 * only file that includes libtorch headers.
 *
 * A model takes a float32 input of shape [n, d1, ..., dk] (the input shape without the batch
 * dimension is fixed when the model is loaded) and must return a float32 tensor of shape
 * [n, out_dim]. Loading runs one forward pass on a zero input to check that contract, so a
 * model with the wrong output shape or dtype is refused at load with a message that says what
 * it returned. Every C++ exception is caught at this boundary; messages carry no backtraces.
 *
 * Thread-safety: hdb_model_forward may run concurrently on one model (models are used in
 * inference mode and must not mutate state). hdb_torch_set_threads must be called once at
 * startup, before any model is loaded.
 */
#ifndef HDB_TORCH_H
#define HDB_TORCH_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct hdb_model hdb_model;

/* Sets libtorch's intra-op and inter-op thread counts (0 keeps libtorch's default). Call once,
 * before any other function here. */
void hdb_torch_set_threads(int intra_op, int inter_op);

/* Loads the TorchScript file at path for inputs of shape in_shape[0..in_ndim) (without the
 * batch dimension; 1..4 dimensions, each >= 1) and outputs of out_dim floats, and checks them
 * with a forward pass. HDB_EIO when the file cannot be read, HDB_EINVAL when it is not a
 * TorchScript module or its output does not match (message says what it returned). Free with
 * hdb_model_free. */
int hdb_model_load(hdb_model **out, const char *path, const int64_t *in_shape, size_t in_ndim,
                   int64_t out_dim, char *err, size_t errlen);

/* Releases the model. NULL is allowed. */
void hdb_model_free(hdb_model *m);

/* Runs the model on n inputs (n x prod(in_shape) floats, caller-owned, not modified) and writes
 * n x out_dim floats to out (caller-owned). HDB_EINTERNAL with the model's message when the
 * forward pass throws, HDB_EINVAL when its output has the wrong shape, dtype or non-finite
 * values. */
int hdb_model_forward(hdb_model *m, const float *in, int64_t n, float *out, char *err,
                      size_t errlen);

/* Input elements per item (product of in_shape) and output dimension. */
int64_t hdb_model_input_size(const hdb_model *m);
int64_t hdb_model_output_dim(const hdb_model *m);

#ifdef __cplusplus
}
#endif

#endif /* HDB_TORCH_H */
