/*
 * test_space.c - unit tests of the model-space registry (hdb_space.h) and its calls
 * (hdb_spaces.h) on a real catalog: a space is created with its owned source and index, refused
 * when its model or index definition is bad without leaving anything behind, survives a
 * reopen, keeps its points when its model file disappears, is adopted again after an
 * interrupted drop, and leaves an item out of its own neighbours; a space that re-embeds
 * another holds the other's drop back while it copies, and writes to it wait for it. Uses the TorchScript fixtures
 * of test_torch (normalize.pt: [n, 4] -> [n, 4]).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "hdb_arena.h"
#include "hdb_catalog.h"
#include "hdb_config.h"
#include "hdb_defs.h"
#include "hdb_err.h"
#include "hdb_infer.h"
#include "hdb_reembed.h"
#include "hdb_space.h"
#include "hdb_spaces.h"
#include "hdb_store.h"
#include "test_torch_models.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

typedef struct {
    char dir[512];
    char dbpath[600];
    char model[700]; /* a copy of normalize.pt that a test may delete */
    hdb_config cfg;
    hdb_store *store;
    hdb_catalog *cat;
    hdb_space_registry *reg;
    hdb_infer *infer;
    hdb_arena *arena;
} fixture;

static void open_all(fixture *f) {
    char err[512];
    hdb_store_options o = {.path = f->dbpath, .block_cache_bytes = 8 << 20,
                           .write_buffer_bytes = 4 << 20};
    assert_int_equal(hdb_store_open(&f->store, &o, err, sizeof err), HDB_OK);
    assert_int_equal(hdb_catalog_open(&f->cat, f->store, &f->cfg, err, sizeof err), HDB_OK);
    int rc = hdb_spaces_open(&f->reg, f->cat, &f->cfg, err, sizeof err);
    if (rc != HDB_OK) fprintf(stderr, "spaces: %s\n", err);
    assert_int_equal(rc, HDB_OK);
}

static void close_all(fixture *f) {
    hdb_spaces_close(f->reg);
    hdb_catalog_close(f->cat);
    hdb_store_close(f->store);
    f->reg = NULL;
    f->cat = NULL;
    f->store = NULL;
}

static int copy_file(const char *from, const char *to) {
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "cp '%s' '%s'", from, to);
    return system(cmd);
}

static int setup(void **state) {
    const char *models = torch_models_dir();
    if (models == NULL) return -1;
    fixture *f = calloc(1, sizeof *f);
    const char *base = getenv("HDB_TEST_TMP") ? getenv("HDB_TEST_TMP") : "/tmp";
    mkdir(base, 0755);
    snprintf(f->dir, sizeof f->dir, "%s/test_space.XXXXXX", base);
    if (mkdtemp(f->dir) == NULL) return -1;
    char abs[PATH_MAX];
    if (realpath(f->dir, abs) == NULL || strlen(abs) >= sizeof f->dir) return -1;
    snprintf(f->dir, sizeof f->dir, "%s", abs); /* model paths must be absolute */
    snprintf(f->dbpath, sizeof f->dbpath, "%s/db", f->dir);
    snprintf(f->model, sizeof f->model, "%s/normalize.pt", f->dir);
    char src[1024];
    snprintf(src, sizeof src, "%s/normalize.pt", models);
    if (copy_file(src, f->model) != 0) return -1;
    char to[1024];
    snprintf(src, sizeof src, "%s/wrong_shape.pt", models);
    snprintf(to, sizeof to, "%s/wrong_shape.pt", f->dir);
    if (copy_file(src, to) != 0) return -1;
    hdb_config_init(&f->cfg);
    f->cfg.data_dir = f->dir;
    /* Models load only from under models.dir; relative paths resolve there. */
    f->cfg.models_dir = f->dir;
    f->arena = hdb_arena_create(0);
    char err[256];
    if (hdb_infer_create(&f->infer, 1, 8, 0, err, sizeof err) != HDB_OK) return -1;
    open_all(f);
    *state = f;
    return 0;
}

static int teardown(void **state) {
    fixture *f = *state;
    close_all(f);
    hdb_infer_free(f->infer);
    hdb_config_free(&f->cfg);
    hdb_arena_free(f->arena);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", f->dir);
    int rc = system(cmd);
    free(f);
    return rc == 0 ? 0 : -1;
}

/* A tensor space over `model`: input [4], output 4, cosine, flat, with an optional split. */
static Hilbert__V1__ModelSpaceSpec *vec_spec(hdb_arena *a, const char *name, const char *model,
                                             uint32_t out, char *split) {
    Hilbert__V1__ModelSpaceSpec *s = hdb_arena_alloc(a, sizeof *s);
    hilbert__v1__model_space_spec__init(s);
    s->name = (char *)name;
    s->model_path = (char *)model;
    Hilbert__V1__ModelInput *in = hdb_arena_alloc(a, sizeof *in);
    hilbert__v1__model_input__init(in);
    Hilbert__V1__TensorInput *t = hdb_arena_alloc(a, sizeof *t);
    hilbert__v1__tensor_input__init(t);
    t->shape = hdb_arena_alloc(a, sizeof *t->shape);
    t->shape[0] = 4;
    t->n_shape = 1;
    in->kind_case = HILBERT__V1__MODEL_INPUT__KIND_TENSOR;
    in->tensor = t;
    s->input = in;
    s->output_dim = out;
    s->metric = HILBERT__V1__METRIC__METRIC_COSINE;
    if (split) {
        s->split_attributes = hdb_arena_alloc(a, sizeof *s->split_attributes);
        s->split_attributes[0] = split;
        s->n_split_attributes = 1;
    }
    return s;
}

static hdb_spaces_call call(fixture *f) {
    return (hdb_spaces_call){.reg = f->reg, .cfg = &f->cfg, .infer = f->infer,
                             .arena = f->arena, .deadline_ns = INT64_MAX};
}

static void add(fixture *f, const char *id, float x, int want) {
    static const uint32_t shape[1] = {4};
    float v[4] = {x, 1, 0, 0};
    hdb_model_input in = {.tensor = v, .tensor_len = 4, .shape = shape, .ndim = 1};
    char *names[1] = {"vec"};
    hdb_spaces_call c = call(f);
    hdb_space_vec *out;
    size_t n;
    char err[512];
    int rc = hdb_spaces_add(&c, id, &in, names, 1, NULL, 0, true, &out, &n, err, sizeof err);
    if (rc != want) fprintf(stderr, "add: %s\n", err);
    assert_int_equal(rc, want);
    if (rc == HDB_OK) {
        assert_int_equal(n, 1);
        assert_string_equal(out[0].space, "vec");
        assert_non_null(out[0].vec);
    }
}

static uint64_t points(fixture *f) {
    hdb_space *sp;
    assert_int_equal(hdb_spaces_get(f->reg, "vec", &sp, NULL, 0), HDB_OK);
    hdb_source_status st;
    hdb_source_status_get(hdb_space_source(sp), &st);
    hdb_space_unref(sp);
    return st.point_count;
}

static hdb_reembed_status reembed_status(fixture *f, const char *name) {
    hdb_space *sp;
    assert_int_equal(hdb_spaces_get(f->reg, name, &sp, NULL, 0), HDB_OK);
    assert_non_null(hdb_space_reembed(sp));
    hdb_reembed_status st;
    hdb_reembed_status_get(hdb_space_reembed(sp), &st);
    hdb_space_unref(sp);
    return st;
}

/* The fixture never starts the background work (hdb_spaces_start_background), so a new
 * re-embedding space stays COPYING until the test starts it: the states are the test's to
 * choose, not the machine's speed. */
static void test_reembed_states(void **state) {
    fixture *f = *state;
    char err[512];
    Hilbert__V1__ModelSpaceSpec *spec = vec_spec(f->arena, "vec", f->model, 4, NULL);
    spec->keep_inputs = 1;
    assert_int_equal(hdb_spaces_create(f->reg, spec, NULL, err, sizeof err), HDB_OK);
    add(f, "a", 1, HDB_OK);
    add(f, "b", 2, HDB_OK);
    spec = vec_spec(f->arena, "vec2", f->model, 4, NULL);
    spec->reembed_from = "vec";
    assert_int_equal(hdb_spaces_create(f->reg, spec, NULL, err, sizeof err), HDB_OK);
    hdb_reembed_status st = reembed_status(f, "vec2");
    assert_int_equal(st.state, HDB_REEMBED_COPYING);
    assert_int_equal(st.applied_seq, 0);

    /* The origin cannot go while the copy is under way. */
    assert_int_equal(hdb_spaces_drop(f->reg, "vec", err, sizeof err), HDB_EPRECOND);
    assert_non_null(strstr(err, "model space vec2 is re-embedding the items of vec"));
    /* A write to the copy waits for it; with no worker running it is refused at once. */
    static const uint32_t shape[1] = {4};
    float v[4] = {3, 1, 0, 0};
    hdb_model_input in = {.tensor = v, .tensor_len = 4, .shape = shape, .ndim = 1};
    char *names[1] = {"vec2"};
    hdb_spaces_call c = call(f);
    hdb_space_vec *out;
    size_t n;
    assert_int_equal(hdb_spaces_add(&c, "c", &in, names, 1, NULL, 0, false, &out, &n, err,
                                    sizeof err),
                     HDB_EUNAVAIL);

    /* Started: it copies, then follows. */
    hdb_spaces_start_background(f->reg, f->infer);
    for (int i = 0; i < 6000 && reembed_status(f, "vec2").state == HDB_REEMBED_COPYING; i++)
        usleep(10000);
    st = reembed_status(f, "vec2");
    assert_int_equal(st.state, HDB_REEMBED_FOLLOWING);
    assert_int_equal(st.copied, 2);
    assert_int_equal(st.skipped, 0);
    assert_int_equal(hdb_spaces_add(&c, "c", &in, names, 1, NULL, 0, false, &out, &n, err,
                                    sizeof err),
                     HDB_OK);
    hdb_spaces_stop_background(f->reg);

    /* Dropping the origin now ends the re-embedding, for good. */
    assert_int_equal(hdb_spaces_drop(f->reg, "vec", err, sizeof err), HDB_OK);
    assert_int_equal(reembed_status(f, "vec2").state, HDB_REEMBED_DONE);
    close_all(f);
    open_all(f);
    st = reembed_status(f, "vec2");
    assert_int_equal(st.state, HDB_REEMBED_DONE);
    assert_int_equal(st.copied, 2);
    hdb_space *sp;
    assert_int_equal(hdb_spaces_get(f->reg, "vec2", &sp, NULL, 0), HDB_OK);
    hdb_source_status ss;
    hdb_source_status_get(hdb_space_source(sp), &ss);
    assert_int_equal(ss.point_count, 3); /* a and b copied, c written directly */
    hdb_space_unref(sp);
}

static void test_refusals_leave_nothing(void **state) {
    fixture *f = *state;
    char err[512];
    hdb_source *src;
    /* A model with the wrong output shape. */
    assert_int_equal(hdb_spaces_create(f->reg, vec_spec(f->arena, "bad", "wrong_shape.pt", 4,
                                                        NULL),
                                       NULL, err, sizeof err),
                     HDB_EINVAL);
    assert_memory_equal(err, "spec.model_path: ", 17);
    /* Paths that leave models.dir, existing or not: one answer that says nothing of the file. */
    const char *outside[] = {"/etc/passwd", "/nonexistent/model.pt", "../normalize.pt",
                             "sub/../../x.pt"};
    for (size_t i = 0; i < sizeof outside / sizeof outside[0]; i++) {
        assert_int_equal(hdb_spaces_create(f->reg, vec_spec(f->arena, "bad", outside[i], 4, NULL),
                                           NULL, err, sizeof err),
                         HDB_EPERM);
        assert_string_equal(err, "spec.model_path: must name a model file under models.dir");
    }
    /* An index definition that cannot work: checked before the model loads. */
    assert_int_equal(hdb_spaces_create(f->reg, vec_spec(f->arena, "bad", f->model, 4, "nope"),
                                       NULL, err, sizeof err),
                     HDB_EINVAL);
    assert_string_equal(err, "spec.split_attributes[0]: \"nope\" is not a permanent attribute "
                             "of data source bad@space");
    assert_int_equal(hdb_catalog_get_source(f->cat, "bad", HDB_SPACE_VERSION, &src, NULL, 0),
                     HDB_ENOTFOUND);
    hdb_space **list;
    assert_int_equal(hdb_spaces_list(f->reg, f->arena, &list), 0);
    close_all(f);
    open_all(f);
    assert_int_equal(hdb_spaces_list(f->reg, f->arena, &list), 0);
}

static void test_lifecycle(void **state) {
    fixture *f = *state;
    char err[512];
    hdb_space *sp;
    assert_int_equal(hdb_spaces_create(f->reg, vec_spec(f->arena, "vec", f->model, 4, NULL), &sp,
                                       err, sizeof err),
                     HDB_OK);
    assert_string_equal(hdb_space_name(sp), "vec");
    assert_null(hdb_space_image(sp));
    assert_int_equal(hdb_space_input_size(sp), 4);
    assert_int_equal(hdb_space_output_dim(sp), 4);
    assert_non_null(hdb_space_model(sp));
    assert_string_equal(hdb_space_detail(sp), "");
    hdb_space_unref(sp);
    assert_int_equal(hdb_spaces_create(f->reg, vec_spec(f->arena, "vec", f->model, 4, NULL), NULL,
                                       err, sizeof err),
                     HDB_EEXIST);
    assert_string_equal(err, "model space vec already exists");
    assert_int_equal(hdb_catalog_drop_source(f->cat, "vec", "space", err, sizeof err),
                     HDB_EPRECOND);
    assert_string_equal(err, "data_source: vec@space belongs to model space vec; drop the model "
                             "space");

    add(f, "a", 1, HDB_OK);
    add(f, "b", 2, HDB_OK);
    add(f, "c", -1, HDB_OK);
    /* An item is not its own neighbour: the two others come back. */
    char *names[1] = {"vec"};
    hdb_space_seq ms = {"vec", 3};
    hdb_spaces_find_params fp = {.k = 5, .min_seq = &ms, .nmin_seq = 1};
    hdb_spaces_call c = call(f);
    hdb_space_hits *h;
    size_t n;
    assert_int_equal(hdb_spaces_find_by_id(&c, "a", names, 1, &fp, &h, &n, err, sizeof err),
                     HDB_OK);
    assert_int_equal(n, 1);
    assert_true(h[0].found);
    assert_int_equal(h[0].hits.n, 2);
    assert_int_equal(hdb_spaces_find_by_id(&c, "zz", names, 1, &fp, &h, &n, err, sizeof err),
                     HDB_OK);
    assert_false(h[0].found);
    ms.space = "other";
    assert_int_equal(hdb_spaces_find_by_id(&c, "a", names, 1, &fp, &h, &n, err, sizeof err),
                     HDB_EINVAL);
    assert_string_equal(err, "min_seq[\"other\"]: no such model space");
    hdb_space_vec *w;
    assert_int_equal(hdb_spaces_remove(&c, "c", names, 1, &w, &n, err, sizeof err), HDB_OK);
    assert_int_equal(w[0].seq, 4);

    /* A reopen loads the space and its model again. */
    close_all(f);
    open_all(f);
    assert_int_equal(points(f), 2);
    /* Without its model file the space still opens; its points stay readable. */
    close_all(f);
    assert_int_equal(remove(f->model), 0);
    open_all(f);
    assert_int_equal(hdb_spaces_get(f->reg, "vec", &sp, err, sizeof err), HDB_OK);
    assert_null(hdb_space_model(sp));
    assert_non_null(strstr(hdb_space_detail(sp), "normalize.pt"));
    hdb_space_unref(sp);
    c = call(f);
    ms.space = "vec";
    assert_int_equal(hdb_spaces_find_by_id(&c, "a", names, 1, &fp, &h, &n, err, sizeof err),
                     HDB_OK);
    assert_int_equal(h[0].hits.n, 1);
    add(f, "d", 3, HDB_EPRECOND);

    assert_int_equal(hdb_spaces_drop(f->reg, "vec", err, sizeof err), HDB_OK);
    assert_int_equal(hdb_spaces_drop(f->reg, "vec", err, sizeof err), HDB_ENOTFOUND);
    assert_string_equal(err, "model space \"vec\" does not exist");
    hdb_source *src;
    assert_int_equal(hdb_catalog_get_source(f->cat, "vec", "space", &src, NULL, 0),
                     HDB_ENOTFOUND);
}

/* A drop interrupted after its definition went leaves a plain source and index, which a new
 * space of that name and definition adopts with their points. */
static void test_interrupted_drop_adopted(void **state) {
    fixture *f = *state;
    char err[512];
    assert_int_equal(hdb_spaces_create(f->reg, vec_spec(f->arena, "vec", f->model, 4, NULL), NULL,
                                       err, sizeof err),
                     HDB_OK);
    add(f, "a", 1, HDB_OK);
    assert_int_equal(hdb_defs_delete(hdb_catalog_defs(f->cat), HDB_DEF_SPACE, "vec", err,
                                     sizeof err),
                     HDB_OK);
    close_all(f);
    open_all(f);
    hdb_space *sp;
    assert_int_equal(hdb_spaces_get(f->reg, "vec", &sp, NULL, 0), HDB_ENOTFOUND);
    /* Another metric: the leftover index does not fit; it stays, and the space is not made. */
    Hilbert__V1__ModelSpaceSpec *l2 = vec_spec(f->arena, "vec", f->model, 4, NULL);
    l2->metric = HILBERT__V1__METRIC__METRIC_L2;
    assert_int_equal(hdb_spaces_create(f->reg, l2, NULL, err, sizeof err), HDB_EEXIST);
    assert_string_equal(err, "index vec@space exists with another definition; drop it first");
    close_all(f);
    open_all(f);
    assert_int_equal(hdb_spaces_get(f->reg, "vec", &sp, NULL, 0), HDB_ENOTFOUND);
    assert_int_equal(hdb_spaces_create(f->reg, vec_spec(f->arena, "vec", f->model, 4, NULL), NULL,
                                       err, sizeof err),
                     HDB_OK);
    assert_int_equal(points(f), 1);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_refusals_leave_nothing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lifecycle, setup, teardown),
        cmocka_unit_test_setup_teardown(test_interrupted_drop_adopted, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reembed_states, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
