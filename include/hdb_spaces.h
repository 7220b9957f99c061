/*
 * hdb_spaces.h - what the ModelSpaces calls share: turning a request's list of model-space
 * names into spaces, and turning an image or tensor into one vector per space through the
 * inference pool.
 */
#ifndef HDB_SPACES_H
#define HDB_SPACES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct hdb_arena hdb_arena;
typedef struct hdb_config hdb_config;
typedef struct hdb_infer hdb_infer;
typedef struct hdb_space hdb_space;
typedef struct hdb_space_registry hdb_space_registry;

/* Resolves names[0..n) into references (in arena memory; release with hdb_spaces_release).
 * n == 0 means every model space (HDB_ENOTFOUND when there is none). Errors name the entry:
 * model_spaces[1]: model space "x" does not exist (HDB_ENOTFOUND), or: "x" is listed twice
 * (HDB_EINVAL). */
int hdb_spaces_resolve(hdb_space_registry *reg, char *const *names, size_t n, hdb_arena *arena,
                       hdb_space ***out, size_t *nout, char *err, size_t errlen);

/* Releases the references of hdb_spaces_resolve. */
void hdb_spaces_release(hdb_space **spaces, size_t n);

/* One item's model input: encoded image bytes, or a tensor with its shape. */
typedef struct {
    bool is_image;
    const void *image;
    size_t image_len;
    const float *tensor;
    size_t tensor_len;     /* values */
    const uint32_t *shape; /* the tensor's shape, without a batch dimension */
    size_t ndim;
} hdb_model_input;

/* Computes the vector of `in` in each space: vecs[i] gets hdb_space_output_dim(spaces[i]) floats in arena
 * memory. An image is decoded once and converted once per distinct input spec; the spaces'
 * models run in parallel on the inference pool. Errors:
 * HDB_EPRECOND when a space's model did not load; HDB_EINVAL for an image of the wrong input
 * kind, an undecodable image ("image: ...") or a tensor whose shape differs from the space's
 * ("tensor.shape: ..."); HDB_ELIMIT for an image over the limits; the model's errors. */
int hdb_spaces_embed(hdb_space *const *spaces, size_t n, const hdb_model_input *in,
                     const hdb_config *cfg, hdb_infer *infer, int64_t deadline_ns,
                     hdb_arena *arena, float **vecs, char *err, size_t errlen);

#ifdef __cplusplus
}
#endif

#endif /* HDB_SPACES_H */
