/*
 * hdb_spaces.h - what the ModelSpaces calls do, on domain values: add an item to several model
 * spaces (its vectors from their models, one atomic write across them), remove it, find
 * similar items by an input or by a stored item (which is not its own neighbour), and embed.
 *
 * Each call names its spaces (none: every space of the registry), by name or by model-space
 * alias, resolves them once when it starts and holds their references until it returns (a
 * concurrent alias switch does not move a running call); results name the spaces themselves,
 * not the aliases; results live in the call's arena and do not point into the
 * spaces. The server decodes requests into these calls and encodes their results; it adds no
 * logic of its own. Errors name the request's fields ("model_spaces[1]: ...", "tensor.shape:
 * ...", "model space rgb: attributes: ...").
 *
 * Thread-safety: every function may be called from any thread; calls that run models block on
 * the inference pool until it answers or the call's deadline passes.
 */
#ifndef HDB_SPACES_H
#define HDB_SPACES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hdb_engine.h"
#include "hdb_query.h"
#include "hdb_types.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct hdb_arena hdb_arena;
typedef struct hdb_config hdb_config;
typedef struct hdb_infer hdb_infer;
typedef struct hdb_space_registry hdb_space_registry;

/* What every call works with; all borrowed for the duration of the call. */
typedef struct {
    hdb_space_registry *reg;
    const hdb_config *cfg;  /* limits, image limits */
    hdb_infer *infer;       /* the inference pool */
    hdb_arena *arena;       /* scratch and results */
    int64_t deadline_ns;    /* CLOCK_MONOTONIC; INT64_MAX for none */
    const hdb_stop *stop;   /* when searches give up (deadline, cancelled call); NULL: never */
} hdb_spaces_call;

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

/* One space's part of an add, remove or embed, in the order the spaces were named. */
typedef struct {
    const char *space; /* its name */
    uint64_t seq;      /* add, remove: the seq of the write in the space */
    const float *vec;  /* add (when asked), embed: the item's vector; else NULL */
    uint32_t dim;      /* the space's output dimension */
} hdb_space_vec;

/* One space's answer to a find. */
typedef struct {
    const char *space;
    bool found;            /* false: the item of a find by id is not in this space */
    hdb_query_result hits; /* best first */
} hdb_space_hits;

/* A min_seq entry of a find: wait until the space's index has applied seq. */
typedef struct {
    const char *space;
    uint64_t seq;
} hdb_space_seq;

/* What a find asks for besides its input. */
typedef struct {
    int32_t k;
    const hdb_attr *filter; /* split filter, sorted by name (hdb_codec_attrs_in) */
    uint32_t nfilter;
    const hdb_filter *where; /* attribute filter (hdb_filter.h); NULL: none */
    hdb_search_opts opts;
    const hdb_space_seq *min_seq; /* each must name a requested space */
    size_t nmin_seq;
    bool vectors; /* the reply carries each hit's vector (for the reply size estimate) */
} hdb_spaces_find_params;

/* Checks an item id: present and within limits.max_value_bytes ("id: ..."). A caller that
 * decodes more of the request checks the id first, so that a missing id is the error a client
 * sees before any other. */
int hdb_spaces_check_id(const hdb_config *cfg, const char *id, char *err, size_t errlen);

/* Adds item `id` with attrs (sorted by name, without "id"; NULL allowed when nattrs is 0) to
 * the named spaces: computes its vector in each (their models run in parallel on the pool) and
 * writes one point per space, all in one atomic write or nothing. *out receives nout results
 * (with vectors when want_vectors). Errors: those of hdb_spaces_check_id; HDB_EINVAL
 * 'attributes["id"]: ...'; the names' (model_spaces[i]: ..., HDB_ENOTFOUND or HDB_EINVAL);
 * HDB_EPRECOND when a space's model did not load; the input's (image: ..., tensor.shape: ...,
 * HDB_ELIMIT for an image over the limits); the write's, prefixed "model space <name>: " and
 * naming the field within the item (attributes: permanent attribute "owner" (string) is
 * missing). */
int hdb_spaces_add(const hdb_spaces_call *c, const char *id, const hdb_model_input *in,
                   char *const *names, size_t nnames, const hdb_attr *attrs, uint32_t nattrs,
                   bool want_vectors, hdb_space_vec **out, size_t *nout, char *err,
                   size_t errlen);

/* Removes item `id` from the named spaces in one atomic write (no model runs). */
int hdb_spaces_remove(const hdb_spaces_call *c, const char *id, char *const *names,
                      size_t nnames, hdb_space_vec **out, size_t *nout, char *err,
                      size_t errlen);

/* Finds the items nearest to the vector of `in` in each named space, each search waiting for
 * its space's min_seq entry (entries for other existing spaces are ignored: the seqs of one
 * add serve a find over any subset of its spaces). Errors as for add, plus min_seq["x"]: no
 * such model space, and the search's (prefixed "model space <name>: "). */
int hdb_spaces_find(const hdb_spaces_call *c, const hdb_model_input *in, char *const *names,
                    size_t nnames, const hdb_spaces_find_params *fp, hdb_space_hits **out,
                    size_t *nout, char *err, size_t errlen);

/* Finds the items nearest to stored item `id` in each named space, by the vector stored there,
 * leaving the item itself out (k results when there are k others). A space that does not hold
 * the item answers found = false. No model runs. */
int hdb_spaces_find_by_id(const hdb_spaces_call *c, const char *id, char *const *names,
                          size_t nnames, const hdb_spaces_find_params *fp, hdb_space_hits **out,
                          size_t *nout, char *err, size_t errlen);

/* Computes the vector of `in` in each named space, writing nothing. */
int hdb_spaces_embed(const hdb_spaces_call *c, const hdb_model_input *in, char *const *names,
                     size_t nnames, hdb_space_vec **out, size_t *nout, char *err,
                     size_t errlen);

#ifdef __cplusplus
}
#endif

#endif /* HDB_SPACES_H */
