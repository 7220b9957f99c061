/*
 * hdb_spaces.c - the ModelSpaces calls (see hdb_spaces.h): name resolution, per-space
 * embedding of one input, the atomic write of one item across spaces, and searches that leave
 * a stored item out of its own neighbours.
 */
#include "hdb_spaces.h"

#include "hdb_arena.h"
#include "hdb_config.h"
#include "hdb_err.h"
#include "hdb_image.h"
#include "hdb_infer.h"
#include "hdb_ingest.h"
#include "hdb_reembed.h"
#include "hdb_space.h"

#include <stdio.h>
#include <string.h>

/* ---------------------------------------------------------------- spaces by name */

static void release(hdb_space **spaces, size_t n) {
    for (size_t i = 0; i < n; i++) hdb_space_unref(spaces[i]);
}

/* Resolves names[0..n) into references (in arena memory; released with release()). n == 0 means
 * every model space (HDB_ENOTFOUND when there is none). Errors name the entry:
 * model_spaces[1]: model space "x" does not exist, or: "x" is listed twice (HDB_EINVAL), also
 * through an alias. A name that is a model-space alias resolves to its target (hdb_spaces_get). */
static int resolve(hdb_space_registry *reg, char *const *names, size_t n, hdb_arena *arena,
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
                release(list, i);
                return hdb_errf(err, errlen, HDB_EINVAL, "model_spaces[%zu]: \"%s\" is listed twice",
                                i, names[i]);
            }
        }
        int rc = hdb_spaces_get(reg, names[i], &list[i], err, errlen);
        if (rc != HDB_OK) {
            release(list, i);
            return hdb_err_prefix(err, errlen, rc, "model_spaces[%zu]: ", i);
        }
        for (size_t j = 0; j < i; j++) {
            if (list[j] == list[i]) { /* a space and its alias, or two aliases of it */
                const char *sname = hdb_space_name(list[i]);
                rc = hdb_errf(err, errlen, HDB_EINVAL,
                              "model_spaces[%zu]: \"%s\" is model space \"%s\", which "
                              "model_spaces[%zu] names already",
                              i, names[i], sname, j);
                release(list, i + 1);
                return rc;
            }
        }
    }
    *out = list;
    *nout = n;
    return HDB_OK;
}

/* ---------------------------------------------------------------- model inputs */

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

/* Computes the vector of `in` in each space: vecs[i] gets the output_dim floats of spaces[i] in
 * arena memory. An image is decoded once and converted once per distinct input spec; the
 * spaces' models run in parallel on the inference pool. */
static int embed_all(const hdb_spaces_call *c, hdb_space *const *spaces, size_t n,
                     const hdb_model_input *in, float **vecs, char *err, size_t errlen) {
    const hdb_config *cfg = c->cfg;
    hdb_arena *arena = c->arena;
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
    float **inputs = hdb_arena_alloc(arena, (n ? n : 1) * sizeof *inputs);
    for (size_t i = 0; i < n && rc == HDB_OK; i++)
        rc = input_for(spaces, i, in, &img, inputs, arena, err, errlen);
    hdb_image_free(&img);
    if (rc != HDB_OK) return rc;
    /* All spaces at once: their models run in parallel on the pool's threads. */
    hdb_infer_job *jobs = hdb_arena_alloc(arena, (n ? n : 1) * sizeof *jobs);
    for (size_t i = 0; i < n; i++) {
        vecs[i] = hdb_arena_alloc(arena, hdb_space_output_dim(spaces[i]) * sizeof(float));
        jobs[i] = (hdb_infer_job){hdb_space_model(spaces[i]), inputs[i], 1, vecs[i]};
    }
    size_t failed = 0;
    rc = hdb_infer_run_jobs(c->infer, jobs, n, c->deadline_ns, &failed, err, errlen);
    if (rc != HDB_OK)
        hdb_err_prefix(err, errlen, rc, "model space %s: ", hdb_space_name(spaces[failed]));
    return rc;
}

/* ---------------------------------------------------------------- items and writes */

int hdb_spaces_check_id(const hdb_config *cfg, const char *id, char *err, size_t errlen) {
    if (id == NULL || id[0] == '\0') return hdb_errf(err, errlen, HDB_EINVAL, "id: is required");
    if (strlen(id) > cfg->max_value_bytes)
        return hdb_errf(err, errlen, HDB_EINVAL, "id: longer than limits.max_value_bytes (%u)",
                        cfg->max_value_bytes);
    return HDB_OK;
}

/* The attribute {"id": id}, whose value points at id. */
static hdb_attr id_attr(const char *id) {
    hdb_attr a = {.name = "id", .value = {.type = HDB_ATTR_STRING}};
    a.value.u.s.p = id;
    a.value.u.s.n = strlen(id);
    return a;
}

/* attrs plus {"id": id}, sorted, in arena memory. */
static int item_attrs(hdb_arena *arena, const char *id, const hdb_attr *attrs, uint32_t n,
                      hdb_attr **out, uint32_t *nout, char *err, size_t errlen) {
    if (hdb_attr_find(attrs, n, "id", true))
        return hdb_errf(err, errlen, HDB_EINVAL,
                        "attributes[\"id\"]: the item id goes in the id field");
    if (hdb_attr_find(attrs, n, HDB_INPUT_ATTR, true))
        return hdb_errf(err, errlen, HDB_EINVAL,
                        "attributes[\"" HDB_INPUT_ATTR "\"]: the name is reserved for the item's "
                        "kept input (keep_inputs)");
    hdb_attr *all = hdb_arena_alloc(arena, (n + 1) * sizeof *all);
    if (n) memcpy(all, attrs, n * sizeof *all); /* attrs may be NULL when n is 0 */
    all[n] = id_attr(id);
    hdb_attrs_sort(all, n + 1);
    *out = all;
    *nout = n + 1;
    return HDB_OK;
}

/* attrs (sorted, n) plus the kept input of `in` (HDB_INPUT_ATTR, bytes), sorted, in arena
 * memory. The value points into the request. */
static hdb_attr *with_input(hdb_arena *arena, const hdb_attr *attrs, uint32_t n,
                            const hdb_model_input *in) {
    hdb_attr *all = hdb_arena_alloc(arena, (n + 1) * sizeof *all);
    memcpy(all, attrs, n * sizeof *all);
    hdb_attr *a = &all[n];
    *a = (hdb_attr){.name = HDB_INPUT_ATTR, .value = {.type = HDB_ATTR_BYTES}};
    a->value.u.s.p = in->is_image ? in->image : (const char *)in->tensor;
    a->value.u.s.n = in->is_image ? in->image_len : in->tensor_len * sizeof(float);
    hdb_attrs_sort(all, n + 1);
    return all;
}

/* A client's write to spaces that re-embed from another waits until they have caught up with
 * it, so that it is not overtaken by an older change of the origin (hdb_reembed_wait). */
static int wait_reembeds(const hdb_spaces_call *c, hdb_space **spaces, size_t n, char *err,
                         size_t errlen) {
    for (size_t i = 0; i < n; i++) {
        hdb_reembed *r = hdb_space_reembed(spaces[i]);
        int rc = r ? hdb_reembed_wait(r, c->deadline_ns, err, errlen) : HDB_OK;
        if (rc != HDB_OK) return rc;
    }
    return HDB_OK;
}

static const char *name_copy(hdb_arena *a, const hdb_space *sp) {
    const char *name = hdb_space_name(sp);
    return hdb_arena_strndup(a, name, strlen(name));
}

/* Writes points[i] to spaces[i] for every i, all or nothing, and fills out[0..n). */
static int write_all(const hdb_spaces_call *c, hdb_space **spaces, size_t n,
                     const hdb_point *points, float **vecs, hdb_space_vec **out, char *err,
                     size_t errlen) {
    hdb_arena *a = c->arena;
    hdb_source **srcs = hdb_arena_alloc(a, (n ? n : 1) * sizeof *srcs);
    uint64_t *seqs = hdb_arena_alloc(a, (n ? n : 1) * sizeof *seqs);
    for (size_t i = 0; i < n; i++) srcs[i] = hdb_space_source(spaces[i]);
    size_t failed = 0;
    /* Ingest names the field within the point, which is the request's own item. */
    int rc = hdb_ingest_upload_each(hdb_spaces_catalog(c->reg), srcs, points, n, c->cfg,
                                    c->deadline_ns, a, seqs, &failed, err, errlen);
    if (rc != HDB_OK)
        return hdb_err_prefix(err, errlen, rc, "model space %s: ", hdb_space_name(spaces[failed]));
    hdb_space_vec *r = hdb_arena_alloc(a, (n ? n : 1) * sizeof *r);
    for (size_t i = 0; i < n; i++)
        r[i] = (hdb_space_vec){.space = name_copy(a, spaces[i]),
                               .seq = seqs[i],
                               .vec = vecs ? vecs[i] : NULL,
                               .dim = hdb_space_output_dim(spaces[i])};
    *out = r;
    return HDB_OK;
}

int hdb_spaces_add(const hdb_spaces_call *c, const char *id, const hdb_model_input *in,
                   char *const *names, size_t nnames, const hdb_attr *attrs, uint32_t nattrs,
                   bool want_vectors, hdb_space_vec **out, size_t *nout, char *err,
                   size_t errlen) {
    hdb_arena *a = c->arena;
    hdb_attr *all = NULL;
    uint32_t nall = 0;
    hdb_space **spaces = NULL;
    size_t n = 0;
    int rc = hdb_spaces_check_id(c->cfg, id, err, errlen);
    if (rc == HDB_OK) rc = item_attrs(a, id, attrs, nattrs, &all, &nall, err, errlen);
    if (rc == HDB_OK) rc = resolve(c->reg, names, nnames, a, &spaces, &n, err, errlen);
    if (rc != HDB_OK) return rc;
    float **vecs = hdb_arena_alloc(a, (n ? n : 1) * sizeof *vecs);
    if ((rc = embed_all(c, spaces, n, in, vecs, err, errlen)) == HDB_OK &&
        (rc = wait_reembeds(c, spaces, n, err, errlen)) == HDB_OK) {
        hdb_point *points = hdb_arena_calloc(a, n ? n : 1, sizeof *points);
        hdb_attr *kept = NULL;
        for (size_t i = 0; i < n; i++) {
            bool keep = hdb_space_keeps_inputs(spaces[i]);
            if (keep && kept == NULL) kept = with_input(a, all, nall, in);
            points[i] = (hdb_point){.vec = vecs[i],
                                    .dim = hdb_space_output_dim(spaces[i]),
                                    .attrs = keep ? kept : all,
                                    .nattrs = keep ? nall + 1 : nall};
        }
        rc = write_all(c, spaces, n, points, want_vectors ? vecs : NULL, out, err, errlen);
        *nout = n;
    }
    release(spaces, n);
    return rc;
}

int hdb_spaces_remove(const hdb_spaces_call *c, const char *id, char *const *names,
                      size_t nnames, hdb_space_vec **out, size_t *nout, char *err,
                      size_t errlen) {
    hdb_arena *a = c->arena;
    hdb_space **spaces = NULL;
    size_t n = 0;
    int rc = hdb_spaces_check_id(c->cfg, id, err, errlen);
    if (rc == HDB_OK) rc = resolve(c->reg, names, nnames, a, &spaces, &n, err, errlen);
    if (rc != HDB_OK) return rc;
    hdb_attr *ida = hdb_arena_alloc(a, sizeof *ida);
    *ida = id_attr(id);
    hdb_point *points = hdb_arena_calloc(a, n ? n : 1, sizeof *points);
    for (size_t i = 0; i < n; i++)
        points[i] = (hdb_point){.attrs = ida, .nattrs = 1, .deleted = true};
    rc = wait_reembeds(c, spaces, n, err, errlen);
    if (rc == HDB_OK) rc = write_all(c, spaces, n, points, NULL, out, err, errlen);
    *nout = n;
    release(spaces, n);
    return rc;
}

int hdb_spaces_embed(const hdb_spaces_call *c, const hdb_model_input *in, char *const *names,
                     size_t nnames, hdb_space_vec **out, size_t *nout, char *err,
                     size_t errlen) {
    hdb_arena *a = c->arena;
    hdb_space **spaces;
    size_t n;
    int rc = resolve(c->reg, names, nnames, a, &spaces, &n, err, errlen);
    if (rc != HDB_OK) return rc;
    float **vecs = hdb_arena_alloc(a, (n ? n : 1) * sizeof *vecs);
    if ((rc = embed_all(c, spaces, n, in, vecs, err, errlen)) == HDB_OK) {
        hdb_space_vec *r = hdb_arena_alloc(a, (n ? n : 1) * sizeof *r);
        for (size_t i = 0; i < n; i++)
            r[i] = (hdb_space_vec){.space = name_copy(a, spaces[i]),
                                   .vec = vecs[i],
                                   .dim = hdb_space_output_dim(spaces[i])};
        *out = r;
        *nout = n;
    }
    release(spaces, n);
    return rc;
}

/* ---------------------------------------------------------------- finds */

/* The min_seq of each of the n spaces into seqs[0..n). Entries must name model spaces that
 * exist, by name or by alias; an entry keyed by a name this find gave (names[j], an alias
 * perhaps) applies to the space that name resolved to when the find began. Entries for spaces
 * this find does not search are ignored, so that the seqs of a multi-space add serve a find
 * over any subset. Two entries for one space: the larger seq. */
static int min_seqs(const hdb_spaces_call *c, const hdb_spaces_find_params *fp,
                    char *const *names, size_t nnames, hdb_space **spaces, size_t n,
                    uint64_t *seqs, char *err, size_t errlen) {
    for (size_t j = 0; j < n; j++) seqs[j] = 0;
    for (size_t i = 0; i < fp->nmin_seq; i++) {
        const char *key = fp->min_seq[i].space;
        uint64_t seq = fp->min_seq[i].seq;
        bool known = false;
        for (size_t j = 0; j < n; j++) {
            if (strcmp(key, hdb_space_name(spaces[j])) == 0 ||
                (nnames == n && strcmp(key, names[j]) == 0)) {
                if (seq > seqs[j]) seqs[j] = seq;
                known = true;
            }
        }
        if (known) continue;
        hdb_space *other;
        char why[256];
        if (hdb_spaces_get(c->reg, key, &other, why, sizeof why) != HDB_OK)
            return hdb_errf(err, errlen, HDB_EINVAL, "min_seq[\"%s\"]: no such model space",
                            key);
        for (size_t j = 0; j < n; j++) /* an alias this find did not use */
            if (spaces[j] == other && seq > seqs[j]) seqs[j] = seq;
        hdb_space_unref(other);
    }
    return HDB_OK;
}

/* Searches vec in sp's index into out->hits, leaving out pid `self` (0: none). */
static int search_space(const hdb_spaces_call *c, hdb_space *sp, const float *vec,
                        const hdb_spaces_find_params *fp, uint64_t min_seq, uint64_t self,
                        hdb_space_hits *out, char *err, size_t errlen) {
    hdb_query_vec q = {.present = true, .vec = vec, .dim = hdb_space_output_dim(sp)};
    hdb_query_params qp = {.k = fp->k,
                           .min_seq = min_seq,
                           .opts = fp->opts,
                           .filter = fp->filter,
                           .nfilter = fp->nfilter,
                           .where = fp->where,
                           .deadline_ns = c->deadline_ns,
                           .stop = c->stop,
                           .vectors = fp->vectors};
    /* One more, to make room for the item itself; limits are judged on the client's k. */
    if (self && fp->k > 0 && (uint32_t)fp->k < c->cfg->max_k) qp.k = fp->k + 1;
    hdb_query_result res;
    uint64_t applied;
    int rc = hdb_query_search(hdb_space_index(sp), c->cfg, &q, 1, &qp, c->arena, &res, &applied,
                              err, errlen);
    if (rc != HDB_OK)
        return hdb_err_prefix(err, errlen, rc, "model space %s: ", hdb_space_name(sp));
    if (self) {
        size_t w = 0;
        for (size_t i = 0; i < res.n; i++)
            if (res.hits[i].pid != self) res.hits[w++] = res.hits[i];
        res.n = w > (size_t)fp->k ? (size_t)fp->k : w;
    }
    if (hdb_space_keeps_inputs(sp)) /* a kept input stays in the server */
        for (size_t i = 0; i < res.n; i++) {
            hdb_point *p = &res.hits[i].rec.point;
            uint32_t w = 0;
            for (uint32_t j = 0; j < p->nattrs; j++)
                if (strcmp(p->attrs[j].name, HDB_INPUT_ATTR) != 0) p->attrs[w++] = p->attrs[j];
            p->nattrs = w;
        }
    out->found = true;
    out->hits = res;
    return HDB_OK;
}

/* The limits of a find over n spaces, before any model runs: k x spaces results at most
 * limits.max_results, and the estimated cost (hdb_query_check_cost) of all its searches. */
static int find_cost_check(const hdb_spaces_call *c, const hdb_spaces_find_params *fp,
                           hdb_space **spaces, size_t n, char *err, size_t errlen) {
    uint64_t total = fp->k > 0 ? (uint64_t)fp->k * n : 0;
    if (total > c->cfg->max_results)
        return hdb_errf(err, errlen, HDB_ELIMIT,
                        "k: %d x %zu model spaces = %llu results exceed limits.max_results (%u); "
                        "ask fewer spaces per request or a smaller k",
                        (int)fp->k, n, (unsigned long long)total, c->cfg->max_results);
    hdb_query_cost cost = {0};
    hdb_query_params qp = {.k = fp->k,
                           .opts = fp->opts,
                           .filter = fp->filter,
                           .nfilter = fp->nfilter,
                           .where = fp->where,
                           .vectors = fp->vectors};
    for (size_t i = 0; i < n; i++) hdb_query_estimate(hdb_space_index(spaces[i]), 1, &qp, &cost);
    return hdb_query_check_cost(c->cfg, &cost, err, errlen);
}

/* n empty answers, each named after its space, in arena memory. */
static hdb_space_hits *hits_new(hdb_arena *a, hdb_space **spaces, size_t n) {
    hdb_space_hits *r = hdb_arena_calloc(a, n ? n : 1, sizeof *r);
    for (size_t i = 0; i < n; i++) r[i].space = name_copy(a, spaces[i]);
    return r;
}

int hdb_spaces_find(const hdb_spaces_call *c, const hdb_model_input *in, char *const *names,
                    size_t nnames, const hdb_spaces_find_params *fp, hdb_space_hits **out,
                    size_t *nout, char *err, size_t errlen) {
    hdb_arena *a = c->arena;
    hdb_space **spaces;
    size_t n;
    int rc = resolve(c->reg, names, nnames, a, &spaces, &n, err, errlen);
    if (rc != HDB_OK) return rc;
    float **vecs = hdb_arena_alloc(a, (n ? n : 1) * sizeof *vecs);
    uint64_t *seqs = hdb_arena_alloc(a, (n ? n : 1) * sizeof *seqs);
    if ((rc = min_seqs(c, fp, names, nnames, spaces, n, seqs, err, errlen)) == HDB_OK)
        rc = find_cost_check(c, fp, spaces, n, err, errlen);
    if (rc == HDB_OK) rc = embed_all(c, spaces, n, in, vecs, err, errlen);
    hdb_space_hits *r = hits_new(a, spaces, n);
    for (size_t i = 0; i < n && rc == HDB_OK; i++)
        rc = search_space(c, spaces[i], vecs[i], fp, seqs[i], 0, &r[i], err, errlen);
    release(spaces, n);
    if (rc == HDB_OK) {
        *out = r;
        *nout = n;
    }
    return rc;
}

int hdb_spaces_find_by_id(const hdb_spaces_call *c, const char *id, char *const *names,
                          size_t nnames, const hdb_spaces_find_params *fp, hdb_space_hits **out,
                          size_t *nout, char *err, size_t errlen) {
    hdb_arena *a = c->arena;
    hdb_space **spaces = NULL;
    size_t n = 0;
    int rc = hdb_spaces_check_id(c->cfg, id, err, errlen);
    if (rc == HDB_OK) rc = resolve(c->reg, names, nnames, a, &spaces, &n, err, errlen);
    if (rc != HDB_OK) return rc;
    uint64_t *seqs = hdb_arena_alloc(a, (n ? n : 1) * sizeof *seqs);
    rc = min_seqs(c, fp, names, nnames, spaces, n, seqs, err, errlen);
    if (rc == HDB_OK) rc = find_cost_check(c, fp, spaces, n, err, errlen);
    hdb_space_hits *r = hits_new(a, spaces, n);
    hdb_attr ida = id_attr(id);
    hdb_attr *ids[1] = {&ida};
    uint32_t nids[1] = {1};
    for (size_t i = 0; i < n && rc == HDB_OK; i++) {
        hdb_row g;
        rc = hdb_ingest_get(hdb_space_source(spaces[i]), c->cfg, ids, nids, 1, a, &g, err, errlen);
        if (rc != HDB_OK) {
            hdb_err_prefix(err, errlen, rc, "model space %s: ", hdb_space_name(spaces[i]));
            break;
        }
        if (!g.found) continue; /* found = false, no hits */
        rc = search_space(c, spaces[i], g.rec.point.vec, fp, seqs[i], g.pid, &r[i], err,
                          errlen);
    }
    release(spaces, n);
    if (rc == HDB_OK) {
        *out = r;
        *nout = n;
    }
    return rc;
}
