/*
 * hdb_spaces.c - model-space name resolution and per-space embedding of one input.
 */
#include "hdb_spaces.h"

#include "hdb_arena.h"
#include "hdb_space.h"
#include "hdb_config.h"
#include "hdb_err.h"
#include "hdb_image.h"
#include "hdb_infer.h"

#include <stdio.h>
#include <string.h>

int hdb_spaces_resolve(hdb_space_registry *reg, char *const *names, size_t n, hdb_arena *arena,
                       hdb_space ***out, size_t *nout, char *err, size_t errlen) {
    if (n == 0) {
        *nout = hdb_spaces_list(reg, arena, out);
        if (*nout == 0)
            return hdb_errf(err, errlen, HDB_ENOTFOUND,
                            "model_spaces: the server has no model spaces");
        return HDB_OK;
    }
    hdb_space **list = hdb_arena_alloc(arena, n * sizeof *list);
    for (size_t i = 0; i < n; i++) {
        for (size_t j = 0; j < i; j++) {
            if (strcmp(names[i], names[j]) == 0) {
                hdb_spaces_release(list, i);
                return hdb_errf(err, errlen, HDB_EINVAL, "model_spaces[%zu]: \"%s\" is listed twice",
                                i, names[i]);
            }
        }
        int rc = hdb_spaces_get(reg, names[i], &list[i], err, errlen);
        if (rc != HDB_OK) {
            hdb_spaces_release(list, i);
            return hdb_err_prefix(err, errlen, rc, "model_spaces[%zu]: ", i);
        }
    }
    *out = list;
    *nout = n;
    return HDB_OK;
}

void hdb_spaces_release(hdb_space **spaces, size_t n) {
    for (size_t i = 0; i < n; i++) hdb_space_unref(spaces[i]);
}

static bool same_image_spec(const hdb_image_spec *a, const hdb_image_spec *b) {
    return a->width == b->width && a->height == b->height && a->channels == b->channels &&
           a->resize == b->resize && memcmp(a->mean, b->mean, sizeof a->mean) == 0 &&
           memcmp(a->std, b->std, sizeof a->std) == 0;
}

static void shape_text(const int64_t *shape, size_t ndim, char *buf, size_t len) {
    size_t off = 0;
    off += (size_t)snprintf(buf + off, len - off, "[");
    for (size_t d = 0; d < ndim && off < len; d++)
        off += (size_t)snprintf(buf + off, len - off, "%s%lld", d ? ", " : "", (long long)shape[d]);
    if (off < len) snprintf(buf + off, len - off, "]");
}

/* The model input of `in` for space sp: the tensor itself, or the image converted with sp's
 * spec (reusing an earlier conversion for an identical spec). */
static int input_for(hdb_space *const *spaces, size_t i, const hdb_model_input *in,
                     const hdb_image *img, float **inputs, hdb_arena *arena, char *err,
                     size_t errlen) {
    const hdb_space *sp = spaces[i];
    const hdb_image_spec *is = hdb_space_image(sp);
    int64_t size = hdb_space_input_size(sp);
    if (!in->is_image) {
        if (is)
            return hdb_errf(err, errlen, HDB_EINVAL,
                            "tensor: model space %s takes images, not tensors", hdb_space_name(sp));
        size_t ndim;
        const int64_t *shape = hdb_space_shape(sp, &ndim);
        bool ok = in->ndim == ndim;
        for (size_t d = 0; ok && d < ndim; d++) ok = in->shape[d] == (uint64_t)shape[d];
        char want[96];
        shape_text(shape, ndim, want, sizeof want);
        if (!ok)
            return hdb_errf(err, errlen, HDB_EINVAL,
                            "tensor.shape: model space %s expects %s", hdb_space_name(sp), want);
        if (in->tensor_len != (size_t)size)
            return hdb_errf(err, errlen, HDB_EINVAL,
                            "tensor.values: %zu values, shape %s needs %lld", in->tensor_len,
                            want, (long long)size);
        inputs[i] = (float *)in->tensor;
        return HDB_OK;
    }
    if (is == NULL)
        return hdb_errf(err, errlen, HDB_EINVAL,
                        "image: model space %s takes tensors, not images", hdb_space_name(sp));
    for (size_t j = 0; j < i; j++) {
        const hdb_image_spec *other = hdb_space_image(spaces[j]);
        if (other && same_image_spec(other, is)) {
            inputs[i] = inputs[j];
            return HDB_OK;
        }
    }
    inputs[i] = hdb_arena_alloc(arena, (size_t)size * sizeof(float));
    return hdb_image_to_input(img, is, inputs[i], err, errlen);
}

int hdb_spaces_embed(hdb_space *const *spaces, size_t n, const hdb_model_input *in,
                     const hdb_config *cfg, hdb_infer *infer, int64_t deadline_ns,
                     hdb_arena *arena, float **vecs, char *err, size_t errlen) {
    int rc = HDB_OK;
    hdb_image img = {0};
    for (size_t i = 0; i < n; i++)
        if (hdb_space_model(spaces[i]) == NULL)
            return hdb_errf(err, errlen, HDB_EPRECOND, "model_spaces[%zu]: model space %s: %s", i,
                            hdb_space_name(spaces[i]), hdb_space_detail(spaces[i]));
    if (in->is_image) {
        if (in->image_len == 0) return hdb_errf(err, errlen, HDB_EINVAL, "image: is empty");
        hdb_image_limits lim = {cfg->max_image_bytes, cfg->max_image_side, cfg->max_image_pixels,
                                cfg->min_image_side};
        if ((rc = hdb_image_decode(in->image, in->image_len, &lim, &img, err, errlen)) != HDB_OK)
            return rc;
    }
    float **inputs = hdb_arena_alloc(arena, n * sizeof *inputs);
    for (size_t i = 0; i < n && rc == HDB_OK; i++)
        rc = input_for(spaces, i, in, &img, inputs, arena, err, errlen);
    hdb_image_free(&img);
    if (rc != HDB_OK) return rc;
    /* All spaces at once: their models run in parallel on the pool's threads. */
    hdb_infer_job *jobs = hdb_arena_alloc(arena, n * sizeof *jobs);
    for (size_t i = 0; i < n; i++) {
        vecs[i] = hdb_arena_alloc(arena, hdb_space_output_dim(spaces[i]) * sizeof(float));
        jobs[i] = (hdb_infer_job){hdb_space_model(spaces[i]), inputs[i], 1, vecs[i]};
    }
    size_t failed = 0;
    rc = hdb_infer_run_jobs(infer, jobs, n, deadline_ns, &failed, err, errlen);
    if (rc != HDB_OK) hdb_err_prefix(err, errlen, rc, "model space %s: ",
                                      hdb_space_name(spaces[failed]));
    return rc;
}
