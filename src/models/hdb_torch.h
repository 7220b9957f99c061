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
 * inference mode and must not mutate state). Call hdb_torch_set_threads at startup, before
 * any model is loaded.
 */
#ifndef HDB_TORCH_H
#define HDB_TORCH_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct hdb_model hdb_model;

/* Sets libtorch's intra-op and inter-op thread counts (0 or less keeps libtorch's default). Call
 * it at startup, before any other function here. Calling it again is safe: a new intra-op count
 * takes effect, but libtorch fixes the inter-op count once it is set or inference has started,
 * so a later, different inter-op count is ignored (with one warning per process). */
void hdb_torch_set_threads(int intra_op, int inter_op);

/* Loads the TorchScript file at path for inputs of shape in_shape[0..in_ndim) (without the
 * batch dimension; 1..4 dimensions, each >= 1, at most 2^31-1 elements per item) and outputs
 * of out_dim floats (1..2^31-1), and checks them with a forward pass on a zero input of batch 2.
 * Returns HDB_EIO when the file cannot be read (missing, unreadable, not a regular file);
 * HDB_EINVAL for bad arguments, when the file is not a TorchScript module, when the check pass
 * throws (for example because in_shape does not fit the model), or when its output is not a
 * float32 tensor of shape [2, out_dim] (the message says what it returned); HDB_ENOMEM when
 * libtorch runs out of memory. The check does not look at the values, since a zero input may
 * legitimately give NaN. On success *out owns the model: free it with hdb_model_free. On
 * failure *out is NULL. */
int hdb_model_load(hdb_model **out, const char *path, const int64_t *in_shape, size_t in_ndim,
                   int64_t out_dim, char *err, size_t errlen);

/* As hdb_model_load, for models whose forward returns a tuple or list: the embedding is its
 * element output_index (which must then be a float32 [n, out_dim] tensor). A model that
 * returns a single tensor takes only output_index 0, which is what hdb_model_load passes.
 * HDB_EINVAL "output_index 2: the model returns a tuple of 2 elements" otherwise. */
int hdb_model_load_output(hdb_model **out, const char *path, const int64_t *in_shape,
                          size_t in_ndim, int64_t out_dim, uint32_t output_index, char *err,
                          size_t errlen);

/* Releases the model. NULL is allowed. */
void hdb_model_free(hdb_model *m);

/* Runs the model on n >= 1 inputs (n x prod(in_shape) floats, caller-owned, read in place
 * without a copy and not modified; the model must not write to its input) and writes
 * n x out_dim floats to out (caller-owned, not overlapping in). Returns HDB_EINTERNAL with the
 * model's own message (e.g. "builtins.ValueError: ...") when the forward pass throws;
 * HDB_EINVAL for bad arguments or when the output has the wrong shape or dtype or holds NaN or
 * Inf (out is then unspecified); HDB_ENOMEM when libtorch runs out of memory. Safe to call from
 * several threads at once on one model. */
int hdb_model_forward(hdb_model *m, const float *in, int64_t n, float *out, char *err,
                      size_t errlen);

/* Batch sizes of a model's forward passes: bucket i counts the passes of at most 2^i items
 * (the last bucket: any more). */
#define HDB_MODEL_BATCH_BUCKETS 12
typedef struct {
    uint64_t passes, items;
    uint64_t batches[HDB_MODEL_BATCH_BUCKETS];
} hdb_model_counts;

/* Counts one forward pass of n items (the inference pool does, per batch). Any thread. */
void hdb_model_count_pass(hdb_model *m, int64_t n);

/* The counts since the model was loaded. Any thread; the fields are each read atomically. */
void hdb_model_counts_get(const hdb_model *m, hdb_model_counts *out);

/* Input elements per item (product of in_shape) and output dimension; 0 for NULL. */
int64_t hdb_model_input_size(const hdb_model *m);
int64_t hdb_model_output_dim(const hdb_model *m);

#ifdef __cplusplus
}
#endif

#endif /* HDB_TORCH_H */
