/*
 * test_torch.c - unit tests of the libtorch bridge (hdb_torch.h), written in plain C to prove
 * that the header is C: loading checks the output contract with the message naming what the
 * model returned, forward results match reference numbers for a normalizing model and an
 * image-like model at batch sizes 1..64, every load and forward error maps to its code with a
 * one-line message, concurrent forwards on one model agree with sequential ones, and
 * hdb_torch_set_threads may be called more than once. Forward times of the image-like model are
 * printed, not asserted.
 *
 * The fixture models come from tests/unit/fixtures/make_torch_models.py, which ctest runs first
 * (fixture torch_models) into the directory named by $HDB_TORCH_MODELS.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "hdb_err.h"
#include "hdb_torch.h"
#include "test_torch_models.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char *models_dir;
static char errbuf[1024];

static uint64_t rng = 88172645463325252ULL;
static float frand(void) {
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (float)(rng >> 40) / (float)(1 << 24) * 4.0f - 2.0f; /* [-2, 2) */
}

static const char *model_path(const char *name) {
    static char path[4096];
    snprintf(path, sizeof path, "%s/%s", models_dir, name);
    return path;
}

/* Every message must be one short line: no C++ backtrace, no TorchScript traceback. */
static void assert_clean_message(const char *msg) {
    assert_true(strlen(msg) > 0);
    assert_true(strlen(msg) < 600);
    assert_null(strchr(msg, '\n'));
    assert_null(strstr(msg, "Exception raised from"));
    assert_null(strstr(msg, "Traceback"));
}

static int load(hdb_model **m, const char *name, const int64_t *shape, size_t ndim,
                int64_t out_dim) {
    errbuf[0] = '\0';
    int rc = hdb_model_load(m, model_path(name), shape, ndim, out_dim, errbuf, sizeof errbuf);
    if (rc != HDB_OK) {
        printf("    load %s: %s: %s\n", name, hdb_strerror(rc), errbuf);
        assert_clean_message(errbuf);
        assert_null(*m);
    }
    return rc;
}

static void normalize_ref(const float *x, int64_t n, int64_t d, float *y) {
    for (int64_t i = 0; i < n; i++) {
        double s = 0;
        for (int64_t j = 0; j < d; j++)
            s += (double)x[i * d + j] * x[i * d + j];
        double norm = sqrt(s) < 1e-12 ? 1e-12 : sqrt(s);
        for (int64_t j = 0; j < d; j++)
            y[i * d + j] = (float)(x[i * d + j] / norm);
    }
}

static double now_sec(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* ---- image reference data (written by make_torch_models.py) ------------------------------- */

typedef struct {
    int32_t n, c, h, w, out_dim;
    float *x, *y;
} image_ref;

static void read_image_ref(image_ref *r) {
    FILE *f = fopen(model_path("image_ref.bin"), "rb");
    assert_non_null(f);
    int32_t hdr[5];
    assert_int_equal(fread(hdr, sizeof hdr, 1, f), 1);
    r->n = hdr[0], r->c = hdr[1], r->h = hdr[2], r->w = hdr[3], r->out_dim = hdr[4];
    size_t nx = (size_t)r->n * r->c * r->h * r->w, ny = (size_t)r->n * r->out_dim;
    r->x = malloc(nx * sizeof(float));
    r->y = malloc(ny * sizeof(float));
    assert_non_null(r->x);
    assert_non_null(r->y);
    assert_int_equal(fread(r->x, sizeof(float), nx, f), nx);
    assert_int_equal(fread(r->y, sizeof(float), ny, f), ny);
    fclose(f);
}

static void free_image_ref(image_ref *r) {
    free(r->x);
    free(r->y);
}

/* ---- tests ------------------------------------------------------------------------------- */

static void test_set_threads_twice(void **state) {
    (void)state;
    /* The group setup already set (2, 1); again with the same values is a no-op, a new intra-op
     * count is applied, a different inter-op count only warns once. */
    hdb_torch_set_threads(2, 1);
    hdb_torch_set_threads(1, 1);
    hdb_torch_set_threads(2, 3);
    hdb_torch_set_threads(2, 4);
    hdb_torch_set_threads(0, 0);
    hdb_torch_set_threads(-1, -1);
}

static void test_normalize_values(void **state) {
    (void)state;
    hdb_model *m = NULL;
    int64_t shape[] = {4};
    assert_int_equal(load(&m, "normalize.pt", shape, 1, 4), HDB_OK);
    assert_int_equal(hdb_model_input_size(m), 4);
    assert_int_equal(hdb_model_output_dim(m), 4);

    const float in[] = {3, 4, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, -2, 0, 0, 0};
    float copy[16], out[16];
    memcpy(copy, in, sizeof in);
    const float want[] = {0.6f, 0.8f, 0, 0, 0, 0, 0, 0, 0.5f, 0.5f, 0.5f, 0.5f, -1, 0, 0, 0};
    assert_int_equal(hdb_model_forward(m, in, 4, out, errbuf, sizeof errbuf), HDB_OK);
    for (int i = 0; i < 16; i++)
        assert_float_equal(out[i], want[i], 1e-6);
    assert_memory_equal(in, copy, sizeof in); /* the input is not written */
    hdb_model_free(m);
    hdb_model_free(NULL);
}

static void test_batch_sizes(void **state) {
    (void)state;
    hdb_model *m = NULL;
    int64_t shape[] = {4};
    assert_int_equal(load(&m, "normalize.pt", shape, 1, 4), HDB_OK);
    float in[64 * 4], out[64 * 4], want[64 * 4];
    for (int64_t n = 1; n <= 64; n++) {
        for (int64_t i = 0; i < n * 4; i++)
            in[i] = frand();
        out[n * 4 - 1] = NAN;
        assert_int_equal(hdb_model_forward(m, in, n, out, errbuf, sizeof errbuf), HDB_OK);
        normalize_ref(in, n, 4, want);
        for (int64_t i = 0; i < n * 4; i++)
            assert_float_equal(out[i], want[i], 1e-6);
    }
    hdb_model_free(m);
}

static void test_image_model(void **state) {
    (void)state;
    image_ref r;
    read_image_ref(&r);
    hdb_model *m = NULL;
    int64_t shape[] = {r.c, r.h, r.w};
    assert_int_equal(load(&m, "image.pt", shape, 3, r.out_dim), HDB_OK);
    assert_int_equal(hdb_model_input_size(m), r.c * r.h * r.w);
    assert_int_equal(hdb_model_output_dim(m), 8);

    float out[3 * 8];
    assert_int_equal(hdb_model_forward(m, r.x, r.n, out, errbuf, sizeof errbuf), HDB_OK);
    for (int i = 0; i < r.n * r.out_dim; i++)
        assert_float_equal(out[i], r.y[i], 1e-4);
    /* One item at a time gives the same rows. */
    size_t item = (size_t)r.c * r.h * r.w;
    for (int i = 0; i < r.n; i++) {
        float one[8];
        assert_int_equal(hdb_model_forward(m, r.x + i * item, 1, one, errbuf, sizeof errbuf),
                         HDB_OK);
        for (int j = 0; j < 8; j++)
            assert_float_equal(one[j], r.y[i * 8 + j], 1e-4);
    }
    hdb_model_free(m);

    /* The same file configured with the wrong output width or input shape is refused. */
    m = NULL;
    assert_int_equal(load(&m, "image.pt", shape, 3, 16), HDB_EINVAL);
    assert_non_null(strstr(errbuf, "[2, 8]"));
    int64_t flat[] = {784};
    assert_int_equal(load(&m, "image.pt", flat, 1, 8), HDB_EINVAL);
    assert_non_null(strstr(errbuf, "zero input of shape [2, 784]"));
    int64_t four[] = {1, 1, 28, 28};
    assert_int_equal(load(&m, "image.pt", four, 4, 8), HDB_EINVAL);
    free_image_ref(&r);
}

static void test_load_missing(void **state) {
    (void)state;
    hdb_model *m = (hdb_model *)&m; /* must be reset to NULL on failure */
    int64_t shape[] = {4};
    assert_int_equal(load(&m, "no_such_model.pt", shape, 1, 4), HDB_EIO);
    assert_non_null(strstr(errbuf, "cannot read model file"));
    assert_non_null(strstr(errbuf, "no_such_model.pt"));
    assert_non_null(strstr(errbuf, "No such file or directory"));
    m = (hdb_model *)&m;
    assert_int_equal(load(&m, ".", shape, 1, 4), HDB_EIO); /* the models directory itself */
    assert_non_null(strstr(errbuf, "not a regular file"));
}

static void test_load_not_torchscript(void **state) {
    (void)state;
    hdb_model *m = NULL;
    int64_t shape[] = {4};
    assert_int_equal(load(&m, "garbage.pt", shape, 1, 4), HDB_EINVAL);
    assert_non_null(strstr(errbuf, "not a TorchScript model"));
    assert_int_equal(load(&m, "state_dict.pt", shape, 1, 4), HDB_EINVAL);
    assert_non_null(strstr(errbuf, "not a TorchScript model"));
    assert_int_equal(load(&m, "image_ref.bin", shape, 1, 4), HDB_EINVAL);
}

static void test_load_wrong_shape(void **state) {
    (void)state;
    hdb_model *m = NULL;
    int64_t shape[] = {4};
    assert_int_equal(load(&m, "wrong_shape.pt", shape, 1, 4), HDB_EINVAL);
    assert_non_null(strstr(errbuf, "shape [2, 3]"));
    assert_non_null(strstr(errbuf, "expected [2, 4]"));
    assert_int_equal(load(&m, "rank3.pt", shape, 1, 4), HDB_EINVAL);
    assert_non_null(strstr(errbuf, "shape [2, 1, 4]"));
    /* wrong_shape.pt is fine when 3 is what the caller expects. */
    assert_int_equal(load(&m, "wrong_shape.pt", shape, 1, 3), HDB_OK);
    float in[4] = {1, 2, 3, 4}, out[3];
    assert_int_equal(hdb_model_forward(m, in, 1, out, errbuf, sizeof errbuf), HDB_OK);
    assert_float_equal(out[2], 6.0f, 0);
    hdb_model_free(m);
}

static void test_load_wrong_dtype(void **state) {
    (void)state;
    hdb_model *m = NULL;
    int64_t shape[] = {4};
    assert_int_equal(load(&m, "int64.pt", shape, 1, 4), HDB_EINVAL);
    assert_non_null(strstr(errbuf, "dtype int64"));
    assert_int_equal(load(&m, "float64.pt", shape, 1, 4), HDB_EINVAL);
    assert_non_null(strstr(errbuf, "dtype float64"));
}

static void test_load_not_a_tensor(void **state) {
    (void)state;
    hdb_model *m = NULL;
    int64_t shape[] = {4};
    assert_int_equal(load(&m, "dict.pt", shape, 1, 4), HDB_EINVAL);
    assert_string_equal(errbuf,
                        "model output is a dict, expected a float32 tensor of shape [n, 4]");
}

/* A tuple output: element output_index is the embedding (0 by default); an index past the
 * tuple, or other than 0 for a single tensor, is refused at load saying what came back. */
static void test_load_tuple_output_index(void **state) {
    (void)state;
    hdb_model *m = NULL;
    int64_t shape[] = {4};
    const float in[8] = {1, 2, 3, 4, -1, -2, -3, -4};
    float out[8];
    /* Element 0 of tuple2.pt: the input doubled, [n, 4]. */
    assert_int_equal(load(&m, "tuple2.pt", shape, 1, 4), HDB_OK);
    assert_int_equal(hdb_model_forward(m, in, 2, out, errbuf, sizeof errbuf), HDB_OK);
    for (int i = 0; i < 8; i++) assert_true(out[i] == 2.0f * in[i]);
    hdb_model_free(m);
    /* Element 1: the first two columns, [n, 2]. */
    errbuf[0] = '\0';
    assert_int_equal(hdb_model_load_output(&m, model_path("tuple2.pt"), shape, 1, 2, 1, errbuf,
                                           sizeof errbuf),
                     HDB_OK);
    assert_int_equal(hdb_model_forward(m, in, 2, out, errbuf, sizeof errbuf), HDB_OK);
    assert_true(out[0] == 1 && out[1] == 2 && out[2] == -1 && out[3] == -2);
    hdb_model_free(m);
    m = NULL;
    /* Element 1 is [n, 2]: asking it for 4 columns says so. */
    assert_int_equal(hdb_model_load_output(&m, model_path("tuple2.pt"), shape, 1, 4, 1, errbuf,
                                           sizeof errbuf),
                     HDB_EINVAL);
    assert_non_null(strstr(errbuf, "expected [2, 4]"));
    assert_int_equal(hdb_model_load_output(&m, model_path("tuple2.pt"), shape, 1, 4, 2, errbuf,
                                           sizeof errbuf),
                     HDB_EINVAL);
    assert_string_equal(errbuf, "output_index 2: the model returns a tuple of 2 elements");
    assert_int_equal(hdb_model_load_output(&m, model_path("normalize.pt"), shape, 1, 4, 1, errbuf,
                                           sizeof errbuf),
                     HDB_EINVAL);
    assert_string_equal(errbuf, "output_index 1: the model returns a single tensor, not a tuple "
                                "or list");
    assert_null(m);
}

static void test_load_bad_args(void **state) {
    (void)state;
    hdb_model *m = NULL;
    const char *p = model_path("normalize.pt");
    int64_t s4[] = {4}, s0[] = {0}, sneg[] = {-3}, s5[] = {1, 1, 1, 1, 1};
    int64_t huge[] = {1 << 20, 1 << 20}, edge[] = {1, 1, 1, 1};

    assert_int_equal(hdb_model_load(NULL, p, s4, 1, 4, errbuf, sizeof errbuf), HDB_EINVAL);
    assert_int_equal(hdb_model_load(&m, NULL, s4, 1, 4, errbuf, sizeof errbuf), HDB_EINVAL);
    assert_int_equal(hdb_model_load(&m, "", s4, 1, 4, errbuf, sizeof errbuf), HDB_EINVAL);
    assert_int_equal(hdb_model_load(&m, p, NULL, 1, 4, errbuf, sizeof errbuf), HDB_EINVAL);
    assert_int_equal(hdb_model_load(&m, p, s4, 0, 4, errbuf, sizeof errbuf), HDB_EINVAL);
    assert_int_equal(hdb_model_load(&m, p, s5, 5, 4, errbuf, sizeof errbuf), HDB_EINVAL);
    assert_non_null(strstr(errbuf, "got 5"));
    assert_int_equal(hdb_model_load(&m, p, s0, 1, 4, errbuf, sizeof errbuf), HDB_EINVAL);
    assert_int_equal(hdb_model_load(&m, p, sneg, 1, 4, errbuf, sizeof errbuf), HDB_EINVAL);
    assert_non_null(strstr(errbuf, "is -3"));
    assert_int_equal(hdb_model_load(&m, p, huge, 2, 4, errbuf, sizeof errbuf), HDB_EINVAL);
    assert_non_null(strstr(errbuf, "elements per item"));
    assert_int_equal(hdb_model_load(&m, p, s4, 1, 0, errbuf, sizeof errbuf), HDB_EINVAL);
    assert_int_equal(hdb_model_load(&m, p, s4, 1, -1, errbuf, sizeof errbuf), HDB_EINVAL);
    assert_int_equal(hdb_model_load(&m, p, s4, 1, INT64_MAX, errbuf, sizeof errbuf), HDB_EINVAL);
    assert_null(m);
    /* A NULL error buffer is allowed. */
    assert_int_equal(hdb_model_load(&m, p, s0, 1, 4, NULL, 0), HDB_EINVAL);
    assert_int_equal(hdb_model_load(&m, model_path("dict.pt"), s4, 1, 4, NULL, 0), HDB_EINVAL);
    /* Four trailing dimensions of 1 are a valid shape that this model rejects by its output. */
    assert_int_equal(load(&m, "normalize.pt", edge, 4, 4), HDB_EINVAL);
    assert_non_null(strstr(errbuf, "shape [2, 1, 1, 1, 1]"));
}

static void test_forward_throws(void **state) {
    (void)state;
    hdb_model *m = NULL;
    int64_t shape[] = {4};
    assert_int_equal(load(&m, "throws.pt", shape, 1, 4), HDB_OK); /* checked at batch 2 */
    float in[5 * 4] = {0}, out[5 * 4];
    assert_int_equal(hdb_model_forward(m, in, 3, out, errbuf, sizeof errbuf), HDB_OK);
    assert_float_equal(out[11], 1.0f, 0);
    errbuf[0] = '\0';
    assert_int_equal(hdb_model_forward(m, in, 4, out, errbuf, sizeof errbuf), HDB_EINTERNAL);
    printf("    forward throws.pt n=4: %s\n", errbuf);
    assert_clean_message(errbuf);
    assert_non_null(strstr(errbuf, "batch of 4 is larger than 3"));
    assert_non_null(strstr(errbuf, "ValueError"));
    /* The model keeps working after an exception. */
    assert_int_equal(hdb_model_forward(m, in, 2, out, NULL, 0), HDB_OK);
    assert_int_equal(hdb_model_forward(m, in, 5, out, NULL, 0), HDB_EINTERNAL);
    hdb_model_free(m);
}

static void test_forward_non_finite(void **state) {
    (void)state;
    hdb_model *m = NULL;
    int64_t shape[] = {4};
    float ok[2 * 4] = {0, 0.5f, 1, 0.25f, 1, 1, 1, 1}, out[2 * 4];
    float neg[2 * 4] = {0, 0.5f, 1, 0.25f, 1, 1, -1, 1};
    float big[2 * 4] = {0, 0.5f, 1, 0.25f, 1, 1, 1, 3};

    /* The zero input at load is finite, so both models load; non-finite output is a forward
     * error (a normalizing model may legitimately produce NaN for an all-zero input). */
    assert_int_equal(load(&m, "nan.pt", shape, 1, 4), HDB_OK);
    assert_int_equal(hdb_model_forward(m, ok, 2, out, errbuf, sizeof errbuf), HDB_OK);
    assert_int_equal(hdb_model_forward(m, neg, 2, out, errbuf, sizeof errbuf), HDB_EINVAL);
    printf("    forward nan.pt: %s\n", errbuf);
    assert_non_null(strstr(errbuf, "model output has non-finite values"));
    assert_non_null(strstr(errbuf, "NaN at row 1, column 2"));
    hdb_model_free(m);

    m = NULL;
    assert_int_equal(load(&m, "inf.pt", shape, 1, 4), HDB_OK);
    assert_int_equal(hdb_model_forward(m, ok, 2, out, errbuf, sizeof errbuf), HDB_OK);
    assert_int_equal(hdb_model_forward(m, big, 2, out, errbuf, sizeof errbuf), HDB_EINVAL);
    assert_non_null(strstr(errbuf, "Inf at row 1, column 3"));
    hdb_model_free(m);
}

static void test_forward_bad_args(void **state) {
    (void)state;
    hdb_model *m = NULL;
    int64_t shape[] = {4};
    assert_int_equal(load(&m, "normalize.pt", shape, 1, 4), HDB_OK);
    float in[4] = {1, 0, 0, 0}, out[4];
    assert_int_equal(hdb_model_forward(NULL, in, 1, out, errbuf, sizeof errbuf), HDB_EINVAL);
    assert_int_equal(hdb_model_forward(m, NULL, 1, out, errbuf, sizeof errbuf), HDB_EINVAL);
    assert_int_equal(hdb_model_forward(m, in, 1, NULL, errbuf, sizeof errbuf), HDB_EINVAL);
    assert_int_equal(hdb_model_forward(m, in, 0, out, errbuf, sizeof errbuf), HDB_EINVAL);
    assert_int_equal(hdb_model_forward(m, in, -1, out, errbuf, sizeof errbuf), HDB_EINVAL);
    assert_int_equal(hdb_model_forward(m, in, INT64_MAX / 2, out, errbuf, sizeof errbuf),
                     HDB_EINVAL);
    assert_non_null(strstr(errbuf, "out of range"));
    assert_int_equal(hdb_model_input_size(NULL), 0);
    assert_int_equal(hdb_model_output_dim(NULL), 0);
    hdb_model_free(m);
}

/* ---- concurrency --------------------------------------------------------------------------- */

#define NTHREADS 4
#define ROUNDS 40

typedef struct {
    hdb_model *norm, *image;
    int64_t norm_n;                  /* this thread's normalize batch: 2..5 */
    const float *norm_in, *image_in; /* norm_n normalize rows, 2 images */
    const float *norm_want, *image_want;
    int failures;
} worker_arg;

static void *worker(void *p) {
    worker_arg *a = p;
    char err[256];
    float out[5 * 8];
    for (int r = 0; r < ROUNDS; r++) {
        if (hdb_model_forward(a->norm, a->norm_in, a->norm_n, out, err, sizeof err) != HDB_OK ||
            memcmp(out, a->norm_want, (size_t)a->norm_n * 4 * sizeof(float)) != 0)
            a->failures++;
        if (hdb_model_forward(a->image, a->image_in, 2, out, err, sizeof err) != HDB_OK)
            a->failures++;
        for (int i = 0; i < 2 * 8; i++)
            if (fabsf(out[i] - a->image_want[i]) > 1e-5f) a->failures++;
    }
    return NULL;
}

/* Four threads share one freshly loaded model of each kind, so they also race through the
 * graph executor's first runs (profiling, then optimizing), with different batch sizes. The
 * expected results come from separate, sequentially used instances of the same files. */
static void test_concurrent_forward(void **state) {
    (void)state;
    hdb_model *norm = NULL, *image = NULL, *norm_seq = NULL, *image_seq = NULL;
    int64_t s4[] = {4}, simg[] = {1, 28, 28};
    assert_int_equal(load(&norm_seq, "normalize.pt", s4, 1, 4), HDB_OK);
    assert_int_equal(load(&image_seq, "image.pt", simg, 3, 8), HDB_OK);

    enum { IMG = 28 * 28 };
    static float norm_in[NTHREADS][5 * 4], norm_want[NTHREADS][5 * 4];
    static float image_in[NTHREADS][2 * IMG], image_want[NTHREADS][2 * 8];
    for (int t = 0; t < NTHREADS; t++) {
        for (int i = 0; i < 5 * 4; i++)
            norm_in[t][i] = frand();
        for (int i = 0; i < 2 * IMG; i++)
            image_in[t][i] = frand();
        assert_int_equal(hdb_model_forward(norm_seq, norm_in[t], 2 + t, norm_want[t], NULL, 0),
                         HDB_OK);
        assert_int_equal(hdb_model_forward(image_seq, image_in[t], 2, image_want[t], NULL, 0),
                         HDB_OK);
    }
    assert_int_equal(load(&norm, "normalize.pt", s4, 1, 4), HDB_OK);
    assert_int_equal(load(&image, "image.pt", simg, 3, 8), HDB_OK);
    pthread_t th[NTHREADS];
    worker_arg args[NTHREADS];
    for (int t = 0; t < NTHREADS; t++) {
        args[t] = (worker_arg){norm,        image,        2 + t,         norm_in[t],
                               image_in[t], norm_want[t], image_want[t], 0};
        assert_int_equal(pthread_create(&th[t], NULL, worker, &args[t]), 0);
    }
    for (int t = 0; t < NTHREADS; t++) {
        assert_int_equal(pthread_join(th[t], NULL), 0);
        assert_int_equal(args[t].failures, 0);
    }
    hdb_model_free(norm);
    hdb_model_free(image);
    hdb_model_free(norm_seq);
    hdb_model_free(image_seq);
}

/* ---- timing (printed, not asserted) ---------------------------------------------------------- */

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Median and 90th percentile per call: the CI machine is shared, and a mean over a busy stretch
 * says more about the neighbours than about the model. */
static void time_batch(hdb_model *m, int64_t n, int iters, int threads) {
    size_t nin = (size_t)n * 28 * 28;
    float *in = malloc(nin * sizeof(float)), *out = malloc((size_t)n * 8 * sizeof(float));
    double *t = malloc((size_t)iters * sizeof(double));
    assert_non_null(in);
    assert_non_null(out);
    assert_non_null(t);
    for (size_t i = 0; i < nin; i++)
        in[i] = frand();
    for (int i = 0; i < 5; i++) /* warm-up: the profiling executor optimizes after a few runs */
        assert_int_equal(hdb_model_forward(m, in, n, out, errbuf, sizeof errbuf), HDB_OK);
    for (int i = 0; i < iters; i++) {
        double t0 = now_sec();
        assert_int_equal(hdb_model_forward(m, in, n, out, errbuf, sizeof errbuf), HDB_OK);
        t[i] = now_sec() - t0;
    }
    qsort(t, (size_t)iters, sizeof *t, cmp_double);
    double med = t[iters / 2], p90 = t[iters * 9 / 10];
    printf("    image.pt forward, %d intra-op thread%s, batch %2lld: median %7.3f ms "
           "(%6.1f us/item), p90 %7.3f ms, %d calls\n",
           threads, threads == 1 ? " " : "s", (long long)n, med * 1e3, med * 1e6 / (double)n,
           p90 * 1e3, iters);
    free(in);
    free(out);
    free(t);
}

static void test_forward_timing(void **state) {
    (void)state;
    hdb_model *m = NULL;
    int64_t simg[] = {1, 28, 28};
    assert_int_equal(load(&m, "image.pt", simg, 3, 8), HDB_OK);
    for (int threads = 1; threads <= 2; threads++) {
        hdb_torch_set_threads(threads, 0);
        time_batch(m, 1, 200, threads);
        time_batch(m, 64, 50, threads);
    }
    hdb_model_free(m);
}

static int group_setup(void **state) {
    (void)state;
    if ((models_dir = torch_models_dir()) == NULL) return -1;
    hdb_torch_set_threads(2, 1);
    return 0;
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_set_threads_twice), cmocka_unit_test(test_normalize_values),
        cmocka_unit_test(test_batch_sizes),       cmocka_unit_test(test_image_model),
        cmocka_unit_test(test_load_missing),      cmocka_unit_test(test_load_not_torchscript),
        cmocka_unit_test(test_load_wrong_shape),  cmocka_unit_test(test_load_wrong_dtype),
        cmocka_unit_test(test_load_not_a_tensor), cmocka_unit_test(test_load_tuple_output_index),
        cmocka_unit_test(test_load_bad_args),
        cmocka_unit_test(test_forward_throws),    cmocka_unit_test(test_forward_non_finite),
        cmocka_unit_test(test_forward_bad_args),  cmocka_unit_test(test_concurrent_forward),
        cmocka_unit_test(test_forward_timing),
    };
    return cmocka_run_group_tests(tests, group_setup, NULL);
}
