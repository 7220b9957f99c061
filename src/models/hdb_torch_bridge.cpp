/*
 * hdb_torch_bridge.cpp - TorchScript models behind hdb_torch.h: the only file that includes
 * libtorch headers.
 *
 * A model is a torch::jit::Module in eval mode plus the input shape (without the batch
 * dimension) and the output width that the caller configured. Loading runs one forward pass on
 * a zero batch of 2 and refuses a model whose output is not a float32 tensor of shape
 * [2, out_dim], so misconfigured models fail at load with a message that says what they
 * returned instead of failing on the first request.
 *
 * Forward wraps the caller's input with torch::from_blob (no copy, no ownership; the buffer is
 * never written by us), runs under c10::InferenceMode, checks the output again (shape, dtype,
 * finite values) and copies it into the caller's buffer. Concurrent forward calls on one module
 * are safe for models that do not mutate their state (pytorch/pytorch#51452): the graph
 * executor compiles under its own lock and we write nothing shared.
 *
 * Errors: no exception leaves this file. c10::Error is reported with what_without_backtrace()
 * (what() carries a multi-KB C++ backtrace); errors raised inside TorchScript arrive as
 * "The following operation failed in the TorchScript interpreter." plus a TorchScript traceback,
 * from which we keep only the final "<Class>: <message>" line (see clean_message).
 */
#include "hdb_torch.h"

#include "hdb_err.h"
#include "hdb_log.h"

#include <ATen/Parallel.h>
#include <c10/core/InferenceMode.h>
#include <c10/util/Exception.h>
#include <torch/csrc/jit/runtime/jit_exception.h>
#include <torch/script.h>

#include <sys/stat.h>

#include <atomic>
#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <memory>
#include <mutex>
#include <new>
#include <string>
#include <vector>

struct hdb_model {
    torch::jit::Module mod;
    std::vector<int64_t> in_shape; /* without the batch dimension */
    int64_t in_size;               /* product of in_shape */
    int64_t out_dim;
    uint32_t output_index;         /* the element of a tuple or list output that is used */
    std::atomic<uint64_t> passes{0}, items{0}; /* hdb_model_count_pass */
    std::atomic<uint64_t> batches[HDB_MODEL_BATCH_BUCKETS] = {};
};

namespace {

constexpr size_t kMaxInDims = 4;
/* Per-item limits: an input item or an output row may hold at most 2^31-1 floats, so every
 * size below fits in int64_t and size_t with room for the batch factor. */
constexpr int64_t kMaxItemElems = INT32_MAX;
/* The batch used for the check at load: 2 rather than 1, so a model that squeezes or reduces
 * over the batch dimension is caught. */
constexpr int64_t kCheckBatch = 2;
/* Longest message we take from an exception; the caller's errlen truncates further. */
constexpr size_t kMaxMessage = 400;

/* ---- messages ------------------------------------------------------------------------------ */

/* A slice of an exception text; the catch handlers format it without allocating. */
struct Line {
    const char *p;
    int len;
};

Line first_line(const char *s) {
    size_t n = std::strcspn(s, "\n");
    if (n > kMaxMessage) n = kMaxMessage;
    if (n == 0) return Line{"(no message)", 12};
    return Line{s, (int)n};
}

/* Picks one short line out of an exception text. Errors raised inside TorchScript look like
 *
 *   The following operation failed in the TorchScript interpreter.
 *   Traceback of TorchScript (most recent call last):
 *     File "code/__torch__.py", line 10, in forward
 *       ...                        (indented source lines and "~~~ <--- HERE" markers)
 *   builtins.ValueError: batch of 4 is larger than 3
 *
 * and we keep the first line after the indented traceback. Anything else is cut at its first
 * newline (c10 messages sometimes append hints on further lines). */
Line clean_message(const char *what) {
    static const char kInterp[] = "The following operation failed in the TorchScript interpreter.";
    if (std::strncmp(what, kInterp, sizeof kInterp - 1) == 0) {
        for (const char *nl = std::strchr(what, '\n'); nl != NULL; nl = std::strchr(nl + 1, '\n')) {
            const char *line = nl + 1;
            if (*line == '\0') break;
            if (*line == ' ' || *line == '\t' || *line == '\n' ||
                std::strncmp(line, "Traceback", 9) == 0)
                continue;
            return first_line(line);
        }
    }
    return first_line(what);
}

/* Catches everything at the boundary; op is a short prefix such as "model forward failed". The
 * handlers do not allocate, so nothing can escape from them either. */
#define HDB_TORCH_CATCH(err, errlen, code, op)                                                     \
    catch (const c10::Error &e) {                                                                  \
        Line l_ = clean_message(e.what_without_backtrace());                                       \
        return hdb_errf(err, errlen, code, "%s: %.*s", op, l_.len, l_.p);                          \
    }                                                                                              \
    catch (const std::bad_alloc &) {                                                               \
        return hdb_errf(err, errlen, HDB_ENOMEM, "%s: out of memory", op);                         \
    }                                                                                              \
    catch (const std::exception &e) {                                                              \
        Line l_ = clean_message(e.what());                                                         \
        return hdb_errf(err, errlen, code, "%s: %.*s", op, l_.len, l_.p);                          \
    }                                                                                              \
    catch (...) {                                                                                  \
        return hdb_errf(err, errlen, code, "%s: unknown C++ exception", op);                       \
    }

/* Writes "[a, b, c]" into buf (always NUL-terminated, truncated if needed). */
const char *shape_str(const int64_t *d, size_t nd, char *buf, size_t len) {
    size_t used = 0;
    buf[0] = '\0';
    for (size_t i = 0; i <= nd && used < len; i++) {
        int w = i == nd ? std::snprintf(buf + used, len - used, "]")
                        : std::snprintf(buf + used, len - used, "%s%lld", i ? ", " : "[",
                                        (long long)d[i]);
        if (w < 0) break;
        used += (size_t)w;
    }
    return buf;
}

const char *dtype_name(c10::ScalarType t) {
    switch (t) {
    case c10::ScalarType::Float:
        return "float32";
    case c10::ScalarType::Double:
        return "float64";
    case c10::ScalarType::Half:
        return "float16";
    case c10::ScalarType::BFloat16:
        return "bfloat16";
    case c10::ScalarType::Long:
        return "int64";
    case c10::ScalarType::Int:
        return "int32";
    case c10::ScalarType::Short:
        return "int16";
    case c10::ScalarType::Char:
        return "int8";
    case c10::ScalarType::Byte:
        return "uint8";
    case c10::ScalarType::Bool:
        return "bool";
    default:
        return c10::toString(t);
    }
}

const char *ivalue_kind(const c10::IValue &v) {
    if (v.isTuple()) return "a tuple";
    if (v.isGenericDict()) return "a dict";
    if (v.isList()) return "a list";
    if (v.isNone()) return "None";
    if (v.isInt()) return "an int";
    if (v.isDouble()) return "a float";
    if (v.isBool()) return "a bool";
    if (v.isString()) return "a string";
    return "an unsupported value";
}

/* Picks element `index` of a tuple or list output into *out; a single value is its own
 * element 0. Returns 0 or HDB_EINVAL saying what the model returned. */
int select_output(const c10::IValue &v, uint32_t index, c10::IValue *out, char *err,
                  size_t errlen) {
    if (v.isTuple() || v.isList()) {
        size_t n = v.isTuple() ? v.toTupleRef().elements().size() : v.toListRef().size();
        if (index >= n)
            return hdb_errf(err, errlen, HDB_EINVAL,
                            "output_index %u: the model returns %s of %zu elements", index,
                            ivalue_kind(v), n);
        *out = v.isTuple() ? v.toTupleRef().elements()[index] : v.toListRef()[index];
        return HDB_OK;
    }
    if (index != 0)
        return hdb_errf(err, errlen, HDB_EINVAL,
                        "output_index %u: the model returns %s, not a tuple or list", index,
                        v.isTensor() ? "a single tensor" : ivalue_kind(v));
    *out = v;
    return HDB_OK;
}

/* Checks that a forward output (after select_output) is a float32 tensor of shape
 * [n, out_dim]. On success *y holds it, made contiguous. Returns 0 or HDB_EINVAL with a
 * message that says what came back. */
int check_output(const c10::IValue &v, int64_t n, int64_t out_dim, at::Tensor *y, char *err,
                 size_t errlen) {
    if (!v.isTensor())
        return hdb_errf(err, errlen, HDB_EINVAL,
                        "model output is %s, expected a float32 tensor of shape [n, %lld]",
                        ivalue_kind(v), (long long)out_dim);
    const at::Tensor &t = v.toTensor();
    if (t.scalar_type() != at::kFloat)
        return hdb_errf(err, errlen, HDB_EINVAL,
                        "model output has dtype %s, expected float32 (shape [n, %lld])",
                        dtype_name(t.scalar_type()), (long long)out_dim);
    if (t.dim() != 2 || t.size(0) != n || t.size(1) != out_dim) {
        char shape[128];
        return hdb_errf(err, errlen, HDB_EINVAL,
                        "model output has shape %s for a batch of %lld, expected [%lld, %lld]",
                        shape_str(t.sizes().data(), t.sizes().size(), shape, sizeof shape),
                        (long long)n, (long long)n, (long long)out_dim);
    }
    if (t.device().type() != c10::DeviceType::CPU)
        return hdb_errf(err, errlen, HDB_EINVAL, "model output is on device %s, expected cpu",
                        t.device().str().c_str());
    *y = t.contiguous();
    return HDB_OK;
}

/* Overflow-checked a * b for non-negative values, capped at limit. */
bool mul_within(int64_t a, int64_t b, int64_t limit, int64_t *out) {
    if (a < 0 || b < 0) return false;
    if (b != 0 && a > limit / b) return false;
    *out = a * b;
    return true;
}

/* ---- threads ------------------------------------------------------------------------------- */

std::mutex g_threads_mu;
std::atomic<bool> g_interop_warned{false};

} // namespace

extern "C" void hdb_torch_set_threads(int intra_op, int inter_op) {
    std::lock_guard<std::mutex> lock(g_threads_mu);
    try {
        /* ATen keeps the intra-op count in a global and applies it lazily to every thread that
         * reaches a parallel region, so gRPC worker threads pick it up too. Changing it later
         * is allowed. */
        if (intra_op > 0 && at::get_num_threads() != intra_op) at::set_num_threads(intra_op);
    } catch (const c10::Error &e) {
        Line l = clean_message(e.what_without_backtrace());
        HDB_WARN("torch", "cannot set %d intra-op threads: %.*s", intra_op, l.len, l.p);
    } catch (const std::exception &e) {
        Line l = clean_message(e.what());
        HDB_WARN("torch", "cannot set %d intra-op threads: %.*s", intra_op, l.len, l.p);
    } catch (...) {
        HDB_WARN("torch", "cannot set %d intra-op threads: unknown C++ exception", intra_op);
    }
    if (inter_op <= 0) return;
    try {
        /* The inter-op pool size can be set only once, before the pool starts; a second,
         * different request throws. Asking for the value it already has is a no-op. */
        if (at::get_num_interop_threads() != inter_op) at::set_num_interop_threads(inter_op);
    } catch (const std::exception &e) {
        if (!g_interop_warned.exchange(true)) {
            const c10::Error *ce = dynamic_cast<const c10::Error *>(&e);
            Line l = clean_message(ce ? ce->what_without_backtrace() : e.what());
            HDB_WARN("torch", "keeping %d inter-op threads, cannot set %d: %.*s",
                     at::get_num_interop_threads(), inter_op, l.len, l.p);
        }
    } catch (...) {
        if (!g_interop_warned.exchange(true))
            HDB_WARN("torch", "cannot set %d inter-op threads: unknown C++ exception", inter_op);
    }
}

extern "C" int hdb_model_load(hdb_model **out, const char *path, const int64_t *in_shape,
                              size_t in_ndim, int64_t out_dim, char *err, size_t errlen) {
    return hdb_model_load_output(out, path, in_shape, in_ndim, out_dim, 0, err, errlen);
}

extern "C" int hdb_model_load_output(hdb_model **out, const char *path, const int64_t *in_shape,
                                     size_t in_ndim, int64_t out_dim, uint32_t output_index,
                                     char *err, size_t errlen) {
    if (out == NULL) return hdb_errf(err, errlen, HDB_EINVAL, "model load: out is NULL");
    *out = NULL;
    if (path == NULL || path[0] == '\0')
        return hdb_errf(err, errlen, HDB_EINVAL, "model load: path is empty");
    if (in_shape == NULL || in_ndim < 1 || in_ndim > kMaxInDims)
        return hdb_errf(err, errlen, HDB_EINVAL,
                        "model input shape must have 1 to %zu dimensions (without the batch), "
                        "got %zu",
                        kMaxInDims, in_shape ? in_ndim : (size_t)0);
    int64_t in_size = 1;
    for (size_t i = 0; i < in_ndim; i++) {
        if (in_shape[i] < 1)
            return hdb_errf(err, errlen, HDB_EINVAL,
                            "model input shape: dimension %zu is %lld, must be >= 1", i,
                            (long long)in_shape[i]);
        if (!mul_within(in_size, in_shape[i], kMaxItemElems, &in_size))
            return hdb_errf(err, errlen, HDB_EINVAL,
                            "model input shape: more than %lld elements per item",
                            (long long)kMaxItemElems);
    }
    if (out_dim < 1 || out_dim > kMaxItemElems)
        return hdb_errf(err, errlen, HDB_EINVAL, "model output dimension %lld is not in [1, %lld]",
                        (long long)out_dim, (long long)kMaxItemElems);

    /* Tell "cannot read" (HDB_EIO) apart from "not a TorchScript file" (HDB_EINVAL) before
     * libtorch sees the path: its own open error is a c10::Error like any parse error. */
    struct stat st;
    if (stat(path, &st) != 0)
        return hdb_errf(err, errlen, HDB_EIO, "cannot read model file %s: %s", path,
                        strerror(errno));
    if (!S_ISREG(st.st_mode))
        return hdb_errf(err, errlen, HDB_EIO, "cannot read model file %s: not a regular file",
                        path);

    char what[512];
    std::snprintf(what, sizeof what, "not a TorchScript model: %.400s", path);
    std::unique_ptr<hdb_model> m;
    try {
        m.reset(new hdb_model{torch::jit::load(std::string(path)), {}, in_size, out_dim,
                              output_index});
        m->in_shape.assign(in_shape, in_shape + in_ndim);
        m->mod.eval();
    }
    HDB_TORCH_CATCH(err, errlen, HDB_EINVAL, what)

    int64_t shape[1 + kMaxInDims] = {kCheckBatch};
    std::memcpy(shape + 1, in_shape, in_ndim * sizeof(int64_t));
    std::snprintf(what, sizeof what, "model forward failed on a zero input of shape ");
    size_t used = std::strlen(what);
    shape_str(shape, 1 + in_ndim, what + used, sizeof what - used);
    try {
        c10::InferenceMode guard;
        at::Tensor x = torch::zeros(c10::IntArrayRef(shape, 1 + in_ndim), torch::kFloat32);
        at::Tensor y;
        c10::IValue v;
        int rc = select_output(m->mod.forward({x}), output_index, &v, err, errlen);
        if (rc == HDB_OK) rc = check_output(v, kCheckBatch, out_dim, &y, err, errlen);
        if (rc != HDB_OK) return rc;
    }
    HDB_TORCH_CATCH(err, errlen, HDB_EINVAL, what)
    *out = m.release();
    return HDB_OK;
}

extern "C" void hdb_model_free(hdb_model *m) {
    /* Destroying a Module only drops references; nothing in it throws. */
    delete m;
}

extern "C" int hdb_model_forward(hdb_model *m, const float *in, int64_t n, float *out, char *err,
                                 size_t errlen) {
    if (m == NULL || in == NULL || out == NULL)
        return hdb_errf(err, errlen, HDB_EINVAL, "model forward: NULL argument");
    int64_t in_elems, out_elems;
    if (n < 1 || !mul_within(n, m->in_size, INT64_MAX / (int64_t)sizeof(float), &in_elems) ||
        !mul_within(n, m->out_dim, INT64_MAX / (int64_t)sizeof(float), &out_elems) ||
        (uint64_t)in_elems > SIZE_MAX / sizeof(float) ||
        (uint64_t)out_elems > SIZE_MAX / sizeof(float))
        return hdb_errf(err, errlen, HDB_EINVAL, "model forward: batch size %lld is out of range",
                        (long long)n);
    try {
        std::vector<int64_t> shape{n};
        shape.insert(shape.end(), m->in_shape.begin(), m->in_shape.end());
        c10::InferenceMode guard;
        /* No copy and no ownership: the tensor views the caller's buffer for this call only.
         * const_cast is sound because nothing here writes to x (a model that writes to its
         * input in place breaks the hdb_torch.h contract). */
        at::Tensor x = torch::from_blob(const_cast<float *>(in), shape, torch::kFloat32);
        c10::IValue v;
        try {
            v = m->mod.forward({x});
        }
        HDB_TORCH_CATCH(err, errlen, HDB_EINTERNAL, "model forward failed")
        at::Tensor y;
        c10::IValue e;
        int rc = select_output(v, m->output_index, &e, err, errlen);
        if (rc == HDB_OK) rc = check_output(e, n, m->out_dim, &y, err, errlen);
        if (rc != HDB_OK) return rc;
        const float *p = y.data_ptr<float>();
        for (int64_t i = 0; i < out_elems; i++) {
            if (!std::isfinite(p[i]))
                return hdb_errf(err, errlen, HDB_EINVAL,
                                "model output has non-finite values (%s at row %lld, column %lld)",
                                std::isnan(p[i]) ? "NaN" : "Inf", (long long)(i / m->out_dim),
                                (long long)(i % m->out_dim));
        }
        std::memcpy(out, p, (size_t)out_elems * sizeof(float));
        return HDB_OK;
    }
    HDB_TORCH_CATCH(err, errlen, HDB_EINTERNAL, "model forward")
}

extern "C" int64_t hdb_model_input_size(const hdb_model *m) {
    return m ? m->in_size : 0;
}

extern "C" void hdb_model_count_pass(hdb_model *m, int64_t n) {
    if (m == NULL || n < 1) return;
    m->passes.fetch_add(1, std::memory_order_relaxed);
    m->items.fetch_add((uint64_t)n, std::memory_order_relaxed);
    int b = 0;
    while (b < HDB_MODEL_BATCH_BUCKETS - 1 && (int64_t{1} << b) < n) b++;
    m->batches[b].fetch_add(1, std::memory_order_relaxed);
}

extern "C" void hdb_model_counts_get(const hdb_model *m, hdb_model_counts *out) {
    *out = hdb_model_counts{};
    if (m == NULL) return;
    out->passes = m->passes.load(std::memory_order_relaxed);
    out->items = m->items.load(std::memory_order_relaxed);
    for (int b = 0; b < HDB_MODEL_BATCH_BUCKETS; b++)
        out->batches[b] = m->batches[b].load(std::memory_order_relaxed);
}

extern "C" int64_t hdb_model_output_dim(const hdb_model *m) {
    return m ? m->out_dim : 0;
}
