/*
 * hdb_faiss_bridge.cpp - the FAISS engine behind hdb_faiss.h: all of its C++ lives here.
 *
 * One engine holds one FAISS index built by index_factory plus our own label bookkeeping. The
 * way labels reach FAISS depends on what the index can do (see enum Ids):
 *
 *   LABELS   IVF indexes with ordinary inverted lists: our labels are the FAISS ids
 *            (add_with_ids), and remove_ids deletes them without renumbering anything.
 *   COMPACT  flat-code indexes (Flat, PQ, SQ, LSH, RQ): FAISS numbers vectors by position and
 *            remove_ids closes the gaps, so we keep position -> label (i2l) and renumber it the
 *            same way after each removal.
 *   HIDDEN   everything else (HNSW, NSG, IVF fast-scan, Refine): these cannot remove, so a
 *            removed or replaced vector stays in FAISS but its position is marked hidden
 *            (i2l[pos] = -1) and filtered out of results; searches over-fetch to make up for it.
 *            When more than 30% of the positions are hidden the index is rebuilt from the live
 *            vectors (read back from flat storage, or from a raw copy we keep when the storage
 *            is lossy, because we never rebuild from decoded codes).
 *
 * Untrained phase: an index that needs training (IVF, PQ, SQ, ...) is not built until the engine
 * holds train_size vectors. Until then the vectors sit in a faiss::IndexFlat (COMPACT layout)
 * and searches are exact. Reaching train_size trains the real index on a deterministic sample of
 * what is held, adds everything, and swaps it in; positions carry over unchanged.
 *
 * Scores: L2 -> squared distance; INNER_PRODUCT -> -ip; COSINE -> 1 - ip over normalised copies
 * (zero vectors stay zero). Indexes whose search does not compute the metric return their own
 * distance (LSH: Hamming distance between codes); the order is still best first. Each query's
 * hits are re-sorted by (score, label) so ties prefer the smaller label.
 *
 * nprobe: for IVF indexes (optionally under transforms) it is the IVF nprobe; for HNSW indexes
 * the same knob is efSearch. A per-call value travels in a SearchParameters object, so nothing
 * shared is written during a search. Other layouts (IndexRefine over IVF, fast-scan IVF) use
 * the engine's default, set on the index when it is built.
 *
 * Locking: one writer-preferring reader/writer lock per engine (RwLock). search, size, is_trained
 * and save take it shared (they only read); upsert and remove take it exclusive (training and
 * rebuilds happen inside them).
 *
 * No exception leaves this file: every exported body is wrapped in try/catch (HDB_FAISS_CATCH).
 */
#include "hdb_faiss.h"

#include "hdb_crc.h"
#include "hdb_distance.h"
#include "hdb_err.h"
#include "hdb_rwlock_bridge.hpp"

#include <faiss/IVFlib.h>
#include <faiss/IndexAdditiveQuantizer.h>
#include <faiss/IndexFlat.h>
#include <faiss/IndexHNSW.h>
#include <faiss/IndexIVF.h>
#include <faiss/IndexIVFPQ.h>
#include <faiss/IndexIVFPQFastScan.h>
#include <faiss/IndexIDMap.h>
#include <faiss/IndexLSH.h>
#include <faiss/IndexNSG.h>
#include <faiss/IndexPQ.h>
#include <faiss/IndexPQFastScan.h>
#include <faiss/IndexPreTransform.h>
#include <faiss/IndexRefine.h>
#include <faiss/VectorTransform.h>
#include <faiss/impl/FaissException.h>
#include <faiss/impl/IDSelector.h>
#include <faiss/impl/io.h>
#include <faiss/index_factory.h>
#include <faiss/index_io.h>
#include <faiss/invlists/InvertedLists.h>

#include <omp.h>
#include <pthread.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <climits>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <memory>
#include <mutex>
#include <new>
#include <shared_mutex> /* std::shared_lock */
#include <system_error>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "hdb_faiss_bridge.cpp writes little-endian files with memcpy; port the codec first"
#endif

using fidx = faiss::Index::idx_t; /* faiss::idx_t only exists after 1.7.3 */
static_assert(sizeof(fidx) == sizeof(int64_t), "FAISS ids must be 64-bit labels");
static_assert(sizeof(float) == 4, "float must be IEEE single precision");

/* Converts any C++ exception into an error code and a message in err. FaissException::what()
 * is "Error in <function> at <file>:<line>: <reason>", short enough to keep whole (errlen
 * truncates the rare aggregated multi-thread message). */
#define HDB_FAISS_CATCH(err, errlen, op)                                                           \
    catch (const faiss::FaissException &e) {                                                       \
        return hdb_errf(err, errlen, HDB_EINTERNAL, "%s: faiss: %s", op, e.what());                \
    }                                                                                              \
    catch (const std::bad_alloc &) {                                                               \
        return hdb_errf(err, errlen, HDB_ENOMEM, "%s: out of memory", op);                         \
    }                                                                                              \
    catch (const std::exception &e) {                                                              \
        return hdb_errf(err, errlen, HDB_EINTERNAL, "%s: %s", op, e.what());                       \
    }                                                                                              \
    catch (...) {                                                                                  \
        return hdb_errf(err, errlen, HDB_EINTERNAL, "%s: unknown C++ exception", op);              \
    }

namespace {

/* ---- limits and tunables --------------------------------------------------------------------- */

constexpr uint32_t kMaxDim = 1u << 16;
constexpr size_t kMaxFactoryLen = 256;
/* Every number in a factory string must lie in [1, kMaxFactoryNumber]: zeros crash FAISS 1.7.3
 * ("PQ0", "PQ8x0", "OPQ0" divide by zero; "IVF0" asserts on add; "HNSW0" segfaults), and huge
 * values allocate before anything can be checked ("IVF1000000000" sizes its lists at once). */
constexpr uint64_t kMaxFactoryNumber = 1u << 20;
constexpr int kMaxGraphDegree = 1024; /* HNSW level-0 degree (2*M) and NSG R */
constexpr size_t kMaxPqBits = 16;
/* Rebuild a HIDDEN index once hidden * 10 > positions * 3 (30%). */
constexpr size_t kHiddenNum = 3, kHiddenDen = 10;
/* Bounds the temporary distance/id buffers of one FAISS search call. */
constexpr size_t kSearchBlockEntries = 1u << 20;
constexpr uint64_t kTrainSeed = 0x9E3779B97F4A7C15ull;

/* ---- file format ----------------------------------------------------------------------------- */

constexpr char kMagic[8] = {'H', 'D', 'B', 'F', 'A', 'I', 'S', 'S'};
constexpr uint32_t kFormatVersion = 1;

/* ---- process-wide OpenMP thread count -------------------------------------------------------- */

/* libgomp keeps nthreads per host thread: omp_set_num_threads() in main() does not reach the
 * gRPC worker threads that later call FAISS. So the wanted value lives here and every entry
 * point applies it to its own thread (cheap when already equal). 0 = leave OpenMP alone. */
std::atomic<int> g_omp_threads{0};

void apply_threads() {
    int n = g_omp_threads.load(std::memory_order_relaxed);
    if (n > 0 && omp_get_max_threads() != n) omp_set_num_threads(n);
}

/* Upserts (adds and trainings, which hold the engine's lock exclusively) use their own count,
 * hdb_faiss_set_build_threads: 0 = the online cores. */
std::atomic<int> g_build_threads{0};

void apply_build_threads() {
    int n = g_build_threads.load(std::memory_order_relaxed);
    if (n <= 0) n = omp_get_num_procs();
    if (n > 0 && omp_get_max_threads() != n) omp_set_num_threads(n);
}

/* ---- a writer-preferring reader/writer lock -------------------------------------------------- */

using hdb_bridge::RwLock; /* hdb_rwlock_bridge.hpp */

/* ---- what a factory index needs -------------------------------------------------------------- */

enum class Ids : uint8_t { LABELS = 0, COMPACT = 1, HIDDEN = 2 };

struct Layout {
    Ids ids = Ids::HIDDEN;
    bool ivf_params = false;  /* search takes SearchParametersIVF (nprobe) */
    bool hnsw_params = false; /* search takes SearchParametersHNSW (efSearch) */
    bool keep_raw = false;    /* HIDDEN with lossy storage: keep raw vectors for rebuilds */
};

const faiss::Index *strip_transforms(const faiss::Index *ix, bool *had) {
    *had = false;
    while (auto pt = dynamic_cast<const faiss::IndexPreTransform *>(ix)) {
        ix = pt->index;
        *had = true;
    }
    return ix;
}

/* Decides how labels reach this index (see the file comment). */
Layout classify(const faiss::Index *top) {
    Layout l;
    bool pre = false;
    const faiss::Index *in = strip_transforms(top, &pre);
    if (auto ivf = dynamic_cast<const faiss::IndexIVF *>(in)) {
        /* Only ArrayInvertedLists removes safely: BlockInvertedLists (fast-scan) throws from
         * inside an OpenMP region in remove_ids, which terminates the process. */
        if (dynamic_cast<const faiss::ArrayInvertedLists *>(ivf->invlists) &&
            !dynamic_cast<const faiss::IndexIVFFastScan *>(ivf)) {
            l.ids = Ids::LABELS;
            l.ivf_params = true;
        } else {
            l.ids = Ids::HIDDEN;
            l.keep_raw = true;
        }
        return l;
    }
    if (dynamic_cast<const faiss::IndexFlatCodes *>(in)) {
        l.ids = Ids::COMPACT;
        return l;
    }
    l.ids = Ids::HIDDEN;
    l.keep_raw = true;
    if (auto h = dynamic_cast<const faiss::IndexHNSW *>(in)) {
        l.hnsw_params = !dynamic_cast<const faiss::IndexHNSW2Level *>(in);
        l.keep_raw = pre || !dynamic_cast<const faiss::IndexFlat *>(h->storage);
    } else if (auto g = dynamic_cast<const faiss::IndexNSG *>(in)) {
        l.keep_raw = pre || !dynamic_cast<const faiss::IndexFlat *>(g->storage);
    }
    return l;
}

struct Needs {
    size_t nlist = 0; /* largest IVF list count */
    size_t ksub = 0;  /* largest codebook size of a PQ / additive quantizer */
};

bool check_pq(const faiss::ProductQuantizer &pq, Needs &nd, std::string &why) {
    if (pq.M < 1 || pq.nbits < 1 || pq.nbits > kMaxPqBits) {
        why = "product quantizer needs 1.." + std::to_string(kMaxPqBits) + " bits per code";
        return false;
    }
    nd.ksub = std::max(nd.ksub, pq.ksub);
    return true;
}

/* Walks the built index for parameters that would make FAISS abort or allocate absurdly later,
 * and collects what training will need. Returns false with a reason. */
bool check_structure(const faiss::Index *ix, Needs &nd, std::string &why) {
    if (!ix) return true;
    if (dynamic_cast<const faiss::IndexIDMap *>(ix)) {
        why = "IDMap wrappers are not supported: HilbertDB manages the labels itself";
        return false;
    }
    if (auto pt = dynamic_cast<const faiss::IndexPreTransform *>(ix)) {
        for (const faiss::VectorTransform *vt : pt->chain) {
            if (vt->d_out < 1) {
                why = "a vector transform outputs no dimensions";
                return false;
            }
            if (dynamic_cast<const faiss::PCAMatrix *>(vt) && vt->d_out > vt->d_in) {
                why = "PCA cannot output " + std::to_string(vt->d_out) + " dimensions from " +
                      std::to_string(vt->d_in);
                return false;
            }
            if (dynamic_cast<const faiss::OPQMatrix *>(vt))
                nd.ksub = std::max<size_t>(nd.ksub, 256);
        }
        return check_structure(pt->index, nd, why);
    }
    if (auto ivf = dynamic_cast<const faiss::IndexIVF *>(ix)) {
        if (ivf->nlist < 1 || ivf->nlist > kMaxFactoryNumber) {
            why = "IVF needs 1.." + std::to_string(kMaxFactoryNumber) + " lists";
            return false;
        }
        nd.nlist = std::max(nd.nlist, ivf->nlist);
        if (auto p = dynamic_cast<const faiss::IndexIVFPQ *>(ix))
            if (!check_pq(p->pq, nd, why)) return false;
        if (auto p = dynamic_cast<const faiss::IndexIVFPQFastScan *>(ix))
            if (!check_pq(p->pq, nd, why)) return false;
        Needs q; /* the coarse quantizer is trained by IVF's own k-means */
        return check_structure(ivf->quantizer, q, why);
    }
    if (auto p = dynamic_cast<const faiss::IndexPQ *>(ix)) return check_pq(p->pq, nd, why);
    if (auto p = dynamic_cast<const faiss::IndexPQFastScan *>(ix)) return check_pq(p->pq, nd, why);
    if (auto p = dynamic_cast<const faiss::MultiIndexQuantizer *>(ix))
        return check_pq(p->pq, nd, why);
    if (auto a = dynamic_cast<const faiss::IndexAdditiveQuantizer *>(ix)) {
        if (a->aq) {
            for (size_t b : a->aq->nbits) {
                if (b < 1 || b > kMaxPqBits) {
                    why = "additive quantizer needs 1.." + std::to_string(kMaxPqBits) + " bits";
                    return false;
                }
                nd.ksub = std::max(nd.ksub, size_t(1) << b);
            }
        }
        return true;
    }
    if (auto l = dynamic_cast<const faiss::IndexLSH *>(ix)) {
        if (l->nbits < 1) {
            why = "LSH needs at least one bit";
            return false;
        }
        return true;
    }
    if (auto h = dynamic_cast<const faiss::IndexHNSW *>(ix)) {
        int deg = h->hnsw.nb_neighbors(0);
        if (deg < 2 || deg > kMaxGraphDegree) {
            why = "HNSW M must be 1.." + std::to_string(kMaxGraphDegree / 2);
            return false;
        }
        return check_structure(h->storage, nd, why);
    }
    if (auto g = dynamic_cast<const faiss::IndexNSG *>(ix)) {
        if (g->nsg.R < 1 || g->nsg.R > kMaxGraphDegree) {
            why = "NSG R must be 1.." + std::to_string(kMaxGraphDegree);
            return false;
        }
        return check_structure(g->storage, nd, why);
    }
    if (auto r = dynamic_cast<const faiss::IndexRefine *>(ix))
        return check_structure(r->base_index, nd, why) && check_structure(r->refine_index, nd, why);
    return true;
}

/* Checks every maximal digit run of s against [1, kMaxFactoryNumber], and bit counts ("PQ8x10",
 * "IMI2x8", "RQ1x8": a number after 'x') against [1, kMaxPqBits]: "PQ8x24" would make FAISS
 * allocate a 2^24-entry codebook inside index_factory, before any check can run. */
bool check_factory_numbers(const char *s, std::string &why) {
    for (const char *c = s; *c;) {
        if (*c < '0' || *c > '9') {
            c++;
            continue;
        }
        bool bits = c > s && c[-1] == 'x';
        uint64_t v = 0;
        bool big = false;
        for (; *c >= '0' && *c <= '9'; c++) {
            v = v * 10 + uint64_t(*c - '0');
            if (v > kMaxFactoryNumber) big = true;
        }
        if (v == 0 || big) {
            why = "numbers in the factory string must be 1.." + std::to_string(kMaxFactoryNumber);
            return false;
        }
        if (bits && v > kMaxPqBits) {
            why = "codes have at most " + std::to_string(kMaxPqBits) + " bits";
            return false;
        }
    }
    return true;
}

/* Reads the decimal number at *c (advancing c); 0 when there is none. */
uint64_t read_number(const char *&c) {
    uint64_t v = 0;
    for (; *c >= '0' && *c <= '9'; c++)
        v = v * 10 + uint64_t(*c - '0');
    return v;
}

/* FAISS 1.7.3 leaks the coarse quantizer (72 bytes to tens of KB) when index_factory builds an
 * IVF/IMI quantizer and then the code part throws, typically "IVF1024,PQ48" where 48 does not
 * divide the dimension. That mistake is checked here on the string, tracking the dimension
 * through the usual transforms (PCA*, OPQm_n, RR, Pad, L2norm); any other component before the
 * IVF stops the check and FAISS decides. Returns false with a reason. */
bool check_ivf_pq_split(const char *s, uint32_t dim, std::string &why) {
    std::vector<std::string> parts;
    int depth = 0;
    std::string cur;
    for (const char *c = s; *c; c++) {
        if (*c == '(') depth++;
        if (*c == ')') depth--;
        if (*c == ',' && depth == 0) {
            parts.push_back(cur);
            cur.clear();
        } else {
            cur += *c;
        }
    }
    parts.push_back(cur);
    uint64_t d = dim;
    for (size_t i = 0; i < parts.size(); i++) {
        const std::string &t = parts[i];
        const char *c = t.c_str();
        if (t.rfind("IVF", 0) == 0 || t.rfind("IMI", 0) == 0) {
            if (i + 1 >= parts.size() || parts[i + 1].rfind("PQ", 0) != 0) return true;
            const char *m = parts[i + 1].c_str() + 2;
            for (;;) { /* "PQm", "PQmxb...", and IVFPQR's "PQm+m2" */
                uint64_t M = read_number(m);
                if (M > 0 && d % M != 0) {
                    why = "PQ" + std::to_string(M) + " needs a dimension divisible by " +
                          std::to_string(M) + ", the IVF sees " + std::to_string(d);
                    return false;
                }
                m = strchr(m, '+');
                if (!m) return true;
                m++;
            }
        }
        if (t.rfind("PCA", 0) == 0) {
            c += 3;
            while (*c == 'W' || *c == 'R')
                c++;
        } else if (t.rfind("OPQ", 0) == 0) {
            c += 3;
            read_number(c);
            if (*c != '_') continue; /* OPQm keeps the dimension */
            c++;
        } else if (t.rfind("RR", 0) == 0) {
            c += 2;
        } else if (t.rfind("Pad", 0) == 0) {
            c += 3;
        } else if (t == "L2norm") {
            continue;
        } else {
            return true; /* not a transform we know: leave it to FAISS */
        }
        uint64_t v = read_number(c);
        if (v == 0 || *c != '\0') return true;
        d = v;
    }
    return true;
}

faiss::MetricType faiss_metric(hdb_metric m) {
    return m == HDB_METRIC_L2 ? faiss::METRIC_L2 : faiss::METRIC_INNER_PRODUCT;
}

/* Everything validate finds out about a parameter set. */
struct Plan {
    faiss::MetricType fmetric = faiss::METRIC_L2;
    bool needs_training = false;
    uint64_t train_size = 0; /* effective (automatic when p->train_size is 0) */
    size_t train_cap = 0;    /* at most this many vectors are used for training */
};

/* Sets the default nprobe (IVF) or efSearch (HNSW) of ix; 0 restores FAISS's defaults (a
 * loaded index would otherwise keep whatever was saved). Only done while nobody searches. */
void apply_nprobe(faiss::Index *ix, uint32_t nprobe) {
    if (faiss::IndexIVF *ivf = faiss::ivflib::try_extract_index_ivf(ix))
        ivf->nprobe = nprobe ? nprobe : faiss::SearchParametersIVF().nprobe;
    bool pre;
    if (auto h = dynamic_cast<faiss::IndexHNSW *>(
            const_cast<faiss::Index *>(strip_transforms(ix, &pre))))
        h->hnsw.efSearch = nprobe ? int(std::min<uint32_t>(nprobe, INT_MAX))
                                  : faiss::SearchParametersHNSW().efSearch;
}

/* index_factory turns on polysemous training for "PQ<m>" codes (unless written "PQ<m>np"). It
 * only serves polysemous_ht filtering, which we never enable, and it is slow: IVF16,PQ8 on
 * 10k x 32 trained in ~90 s instead of ~2 s, all under the engine's exclusive lock. */
void disable_polysemous(faiss::Index *ix) {
    if (!ix) return;
    if (auto pt = dynamic_cast<faiss::IndexPreTransform *>(ix))
        return disable_polysemous(pt->index);
    if (auto p = dynamic_cast<faiss::IndexIVFPQ *>(ix)) p->do_polysemous_training = false;
    if (auto p = dynamic_cast<faiss::IndexPQ *>(ix)) p->do_polysemous_training = false;
    if (auto h = dynamic_cast<faiss::IndexHNSW *>(ix)) disable_polysemous(h->storage);
    if (auto g = dynamic_cast<faiss::IndexNSG *>(ix)) disable_polysemous(g->storage);
    if (auto r = dynamic_cast<faiss::IndexRefine *>(ix)) {
        disable_polysemous(r->base_index);
        disable_polysemous(r->refine_index);
    }
}

/* Builds the factory index with the default nprobe / efSearch. Throws on FAISS errors. */
std::unique_ptr<faiss::Index> build_index(uint32_t dim, const std::string &factory,
                                          faiss::MetricType fm, uint32_t nprobe) {
    std::unique_ptr<faiss::Index> ix(faiss::index_factory(int(dim), factory.c_str(), fm));
    disable_polysemous(ix.get());
    apply_nprobe(ix.get(), nprobe);
    return ix;
}

/* Validates p and fills plan. Returns HDB_OK or HDB_EINVAL (FAISS's reason in err). */
int make_plan(const hdb_faiss_params *p, Plan *plan, char *err, size_t errlen) {
    if (!p) return hdb_errf(err, errlen, HDB_EINVAL, "params: NULL");
    if (p->dim < 1 || p->dim > kMaxDim)
        return hdb_errf(err, errlen, HDB_EINVAL, "dim: must be 1..%u, got %u", kMaxDim, p->dim);
    if (p->metric != HDB_METRIC_L2 && p->metric != HDB_METRIC_IP && p->metric != HDB_METRIC_COSINE)
        return hdb_errf(err, errlen, HDB_EINVAL, "metric: %s is not supported by FAISS indexes",
                        hdb_metric_name(p->metric));
    if (!p->factory || !p->factory[0])
        return hdb_errf(err, errlen, HDB_EINVAL, "factory: empty index description");
    if (strlen(p->factory) > kMaxFactoryLen)
        return hdb_errf(err, errlen, HDB_EINVAL, "factory: longer than %zu characters",
                        kMaxFactoryLen);
    std::string why;
    if (!check_factory_numbers(p->factory, why) || !check_ivf_pq_split(p->factory, p->dim, why))
        return hdb_errf(err, errlen, HDB_EINVAL, "factory \"%s\": %s", p->factory, why.c_str());
    plan->fmetric = faiss_metric(p->metric);
    std::unique_ptr<faiss::Index> ix;
    try {
        ix = build_index(p->dim, p->factory, plan->fmetric, 0);
    } catch (const faiss::FaissException &e) {
        return hdb_errf(err, errlen, HDB_EINVAL, "factory \"%s\": faiss: %s", p->factory, e.what());
    }
    Needs nd;
    if (!check_structure(ix.get(), nd, why))
        return hdb_errf(err, errlen, HDB_EINVAL, "factory \"%s\": %s", p->factory, why.c_str());
    if (ix->d != int(p->dim))
        return hdb_errf(err, errlen, HDB_EINVAL, "factory \"%s\": index dimension %d != %u",
                        p->factory, ix->d, p->dim);
    if (ix->metric_type != plan->fmetric)
        return hdb_errf(err, errlen, HDB_EINVAL,
                        "factory \"%s\": this index type does not support metric %s", p->factory,
                        hdb_metric_name(p->metric));
    plan->needs_training = !ix->is_trained;
    uint64_t minimum = std::max<uint64_t>({1, nd.nlist, nd.ksub});
    /* 39 points per centroid is where FAISS's k-means stops warning. */
    uint64_t automatic =
        std::max<uint64_t>({1000, 39 * uint64_t(nd.nlist), 39 * uint64_t(nd.ksub)});
    if (plan->needs_training && p->train_size != 0 && p->train_size < minimum)
        return hdb_errf(err, errlen, HDB_EINVAL,
                        "train_size: %s needs at least %llu training vectors, got %llu", p->factory,
                        (unsigned long long)minimum, (unsigned long long)p->train_size);
    plan->train_size = p->train_size ? p->train_size : automatic;
    /* FAISS's k-means samples 256 points per centroid anyway; PCA/SQ need far fewer. */
    plan->train_cap = std::max<size_t>(10000, 256 * std::max(nd.nlist, nd.ksub));
    return HDB_OK;
}

/* xorshift64* for the deterministic training sample. */
uint64_t next_rand(uint64_t &s) {
    s ^= s >> 12;
    s ^= s << 25;
    s ^= s >> 27;
    return s * 2685821657736338717ull;
}

} // namespace

/* ---- the engine ------------------------------------------------------------------------------ */

struct hdb_faiss {
    /* fixed at creation */
    uint32_t dim = 0;
    hdb_metric metric = HDB_METRIC_L2;
    std::string factory;
    uint32_t nprobe = 0;
    uint64_t train_size_param = 0;
    Plan plan;

    /* guarded by mu */
    mutable RwLock mu;
    std::unique_ptr<faiss::Index> index;      /* the factory index, or the exact buffer */
    bool trained = false;                     /* index is the factory index */
    Layout layout;                            /* of index */
    std::unordered_map<int64_t, int64_t> l2i; /* label -> FAISS id (LABELS: the label) */
    std::vector<int64_t> i2l;                 /* COMPACT/HIDDEN: position -> label, -1 hidden */
    size_t hidden = 0;
    std::vector<float> raw; /* keep_raw: the vector of every position */
};

namespace {

/* Normalised (COSINE) or plain copy of n vectors. */
std::vector<float> prepare(const hdb_faiss *f, size_t n, const float *x) {
    std::vector<float> v(x, x + n * f->dim);
    if (f->metric == HDB_METRIC_COSINE)
        for (size_t i = 0; i < n; i++)
            hdb_normalize(v.data() + i * f->dim, f->dim);
    return v;
}

/* A fresh exact buffer for the untrained phase. */
std::unique_ptr<faiss::Index> make_buffer(const hdb_faiss *f) {
    return std::unique_ptr<faiss::Index>(new faiss::IndexFlat(int(f->dim), f->plan.fmetric));
}

Layout buffer_layout() {
    Layout l;
    l.ids = Ids::COMPACT;
    return l;
}

/* Trains ix on (up to train_cap of) the n vectors x: a fixed-seed partial Fisher-Yates sample. */
void train_on(const hdb_faiss *f, faiss::Index *ix, size_t n, const float *x) {
    size_t cap = f->plan.train_cap;
    if (n <= cap) {
        ix->train(fidx(n), x);
        return;
    }
    std::vector<size_t> perm(n);
    for (size_t i = 0; i < n; i++)
        perm[i] = i;
    uint64_t s = kTrainSeed;
    std::vector<float> sample(cap * f->dim);
    for (size_t i = 0; i < cap; i++) {
        size_t j = i + size_t(next_rand(s) % (n - i));
        std::swap(perm[i], perm[j]);
        memcpy(sample.data() + i * f->dim, x + perm[i] * f->dim, f->dim * sizeof(float));
    }
    ix->train(fidx(cap), sample.data());
}

/* The new state of an engine, built aside and swapped in only when complete (so a FAISS error
 * or bad_alloc leaves the engine as it was). */
struct State {
    std::unique_ptr<faiss::Index> index;
    bool trained = false;
    Layout layout;
    std::unordered_map<int64_t, int64_t> l2i;
    std::vector<int64_t> i2l;
    size_t hidden = 0;
    std::vector<float> raw;
};

void install(hdb_faiss *f, State &s) {
    f->index = std::move(s.index);
    f->trained = s.trained;
    f->layout = s.layout;
    f->l2i.swap(s.l2i);
    f->i2l.swap(s.i2l);
    f->hidden = s.hidden;
    f->raw.swap(s.raw);
}

/* Builds a state holding n vectors x (already prepared) under labels lab: the trained factory
 * index when training is not needed or n >= train_size, else the exact buffer. */
void build_state(const hdb_faiss *f, size_t n, const float *x, const int64_t *lab, State &s) {
    bool factory = !f->plan.needs_training || n >= f->plan.train_size;
    if (factory) {
        s.index = build_index(f->dim, f->factory, f->plan.fmetric, f->nprobe);
        if (!s.index->is_trained) train_on(f, s.index.get(), n, x);
        s.layout = classify(s.index.get());
        s.trained = true;
    } else {
        s.index = make_buffer(f);
        s.layout = buffer_layout();
        s.trained = false;
    }
    s.l2i.reserve(n);
    if (s.layout.ids == Ids::LABELS) {
        if (n) s.index->add_with_ids(fidx(n), x, lab);
        for (size_t i = 0; i < n; i++)
            s.l2i.emplace(lab[i], lab[i]);
    } else {
        if (n) s.index->add(fidx(n), x);
        s.i2l.assign(lab, lab + n);
        for (size_t i = 0; i < n; i++)
            s.l2i.emplace(lab[i], int64_t(i));
        if (s.layout.keep_raw) s.raw.assign(x, x + n * f->dim);
    }
    s.hidden = 0;
}

/* Gathers the live vectors (in position order) and their labels. */
void live_vectors(const hdb_faiss *f, std::vector<float> &x, std::vector<int64_t> &lab) {
    size_t d = f->dim, n = f->l2i.size();
    x.resize(n * d);
    lab.resize(n);
    if (f->layout.ids == Ids::LABELS) {
        /* IVF: reconstruct needs a direct map we do not keep; never needed (no rebuilds). */
        throw std::logic_error("live_vectors: not available for the LABELS layout");
    }
    size_t j = 0;
    for (size_t pos = 0; pos < f->i2l.size(); pos++) {
        if (f->i2l[pos] < 0) continue;
        if (f->layout.keep_raw)
            memcpy(&x[j * d], &f->raw[pos * d], d * sizeof(float));
        else
            f->index->reconstruct(fidx(pos), &x[j * d]);
        lab[j++] = f->i2l[pos];
    }
    if (j != n) throw std::logic_error("live_vectors: label maps out of sync");
}

/* Trains when an untrained engine reached train_size. */
void maybe_train(hdb_faiss *f) {
    if (f->trained || f->l2i.size() < f->plan.train_size) return;
    auto *buf = dynamic_cast<faiss::IndexFlat *>(f->index.get());
    if (!buf || size_t(buf->ntotal) != f->i2l.size()) throw std::logic_error("buffer out of sync");
    State s;
    build_state(f, f->i2l.size(), buf->get_xb(), f->i2l.data(), s);
    install(f, s);
}

/* Rebuilds a HIDDEN index from its live vectors when more than 30% of it is hidden. */
void maybe_rebuild(hdb_faiss *f) {
    if (!f->trained || f->layout.ids != Ids::HIDDEN || f->hidden == 0) return;
    if (f->hidden * kHiddenDen <= f->i2l.size() * kHiddenNum) return;
    std::vector<float> x;
    std::vector<int64_t> lab;
    live_vectors(f, x, lab);
    State s;
    build_state(f, lab.size(), x.data(), lab.data(), s);
    install(f, s);
}

/* Rebuild failures (bad_alloc, FAISS errors) leave the engine consistent, only slower; the next
 * write tries again. */
void try_rebuild(hdb_faiss *f) {
    try {
        maybe_rebuild(f);
    } catch (...) {
    }
}

/* Removes positions pos (sorted, distinct) from a COMPACT index and renumbers i2l/l2i as FAISS
 * does (stable compaction). The selector is built before FAISS is touched. */
void compact_remove(hdb_faiss *f, const std::vector<int64_t> &pos) {
    if (pos.empty()) return;
    faiss::IDSelectorBatch sel(pos.size(), pos.data());
    size_t removed = f->index->remove_ids(sel);
    if (removed != pos.size()) throw std::logic_error("remove_ids removed an unexpected count");
    size_t w = 0, r = 0;
    for (size_t i = 0; i < f->i2l.size(); i++) {
        if (r < pos.size() && pos[r] == int64_t(i)) {
            r++;
            continue;
        }
        f->i2l[w] = f->i2l[i];
        if (w != i) f->l2i[f->i2l[w]] = int64_t(w);
        w++;
    }
    f->i2l.resize(w);
}

int check_vectors(const hdb_faiss *f, size_t n, const float *x, const char *what, char *err,
                  size_t errlen) {
    for (size_t i = 0; i < n; i++) {
        size_t bad;
        if (!hdb_all_finite(x + i * f->dim, f->dim, &bad))
            return hdb_errf(err, errlen, HDB_EINVAL, "%s[%zu][%zu]: not a finite number", what, i,
                            bad);
    }
    return HDB_OK;
}

int upsert_locked(hdb_faiss *f, size_t n, const int64_t *labels, const float *vecs, char *err,
                  size_t errlen) {
    std::vector<float> x = prepare(f, n, vecs);
    Layout &lay = f->layout;
    if (lay.ids == Ids::HIDDEN && f->i2l.size() + n > size_t(INT32_MAX))
        return hdb_errf(err, errlen, HDB_ELIMIT, "upsert: a %s index holds at most %d vectors",
                        f->factory.c_str(), INT32_MAX);
    if (lay.ids == Ids::LABELS) {
        std::vector<int64_t> old;
        for (size_t i = 0; i < n; i++)
            if (f->l2i.count(labels[i])) old.push_back(labels[i]);
        f->l2i.reserve(f->l2i.size() + n);
        if (!old.empty()) {
            faiss::IDSelectorBatch sel(old.size(), old.data());
            f->index->remove_ids(sel);
            for (int64_t l : old)
                f->l2i.erase(l);
        }
        f->index->add_with_ids(fidx(n), x.data(), labels);
        for (size_t i = 0; i < n; i++)
            f->l2i.emplace(labels[i], labels[i]);
    } else {
        /* Positional layouts: add at the end first, then drop (COMPACT) or hide (HIDDEN) the
         * replaced positions. Everything that allocates happens before FAISS changes. */
        size_t base = f->i2l.size();
        std::vector<int64_t> old;
        for (size_t i = 0; i < n; i++) {
            auto it = f->l2i.find(labels[i]);
            if (it != f->l2i.end()) old.push_back(it->second);
        }
        std::sort(old.begin(), old.end());
        f->l2i.reserve(f->l2i.size() + n);
        f->i2l.reserve(base + n);
        if (lay.keep_raw) f->raw.reserve((base + n) * f->dim);
        if (size_t(f->index->ntotal) != base) throw std::logic_error("position map out of sync");
        f->index->add(fidx(n), x.data());
        f->i2l.insert(f->i2l.end(), labels, labels + n);
        if (lay.keep_raw) f->raw.insert(f->raw.end(), x.begin(), x.end());
        if (lay.ids == Ids::HIDDEN) {
            for (int64_t p : old)
                f->i2l[size_t(p)] = -1;
            f->hidden += old.size();
        }
        for (size_t i = 0; i < n; i++)
            f->l2i[labels[i]] = int64_t(base + i);
        if (lay.ids == Ids::COMPACT) compact_remove(f, old);
    }
    if (!f->trained) {
        try {
            maybe_train(f);
        } catch (const std::bad_alloc &) {
            throw;
        } catch (const std::exception &e) {
            return hdb_errf(err, errlen, HDB_EINTERNAL,
                            "upsert: vectors stored (searched exactly), but training failed: %s",
                            e.what());
        }
    }
    try_rebuild(f);
    return HDB_OK;
}

size_t remove_locked(hdb_faiss *f, size_t n, const int64_t *labels) {
    std::vector<int64_t> present; /* FAISS ids: labels (LABELS) or positions */
    std::vector<int64_t> gone;
    std::unordered_set<int64_t> seen;
    for (size_t i = 0; i < n; i++) {
        auto it = f->l2i.find(labels[i]);
        if (it == f->l2i.end() || !seen.insert(labels[i]).second) continue;
        present.push_back(it->second);
        gone.push_back(labels[i]);
    }
    if (present.empty()) return 0;
    switch (f->layout.ids) {
    case Ids::LABELS: {
        faiss::IDSelectorBatch sel(present.size(), present.data());
        f->index->remove_ids(sel);
        for (int64_t l : gone)
            f->l2i.erase(l);
        break;
    }
    case Ids::COMPACT:
        std::sort(present.begin(), present.end());
        compact_remove(f, present); /* renumbers only the kept labels */
        for (int64_t l : gone)
            f->l2i.erase(l);
        break;
    case Ids::HIDDEN:
        for (int64_t p : present)
            f->i2l[size_t(p)] = -1;
        f->hidden += present.size();
        for (int64_t l : gone)
            f->l2i.erase(l);
        try_rebuild(f);
        break;
    }
    return gone.size();
}

inline float to_score(faiss::MetricType fm, hdb_metric m, float d) {
    float s = fm == faiss::METRIC_INNER_PRODUCT ? (m == HDB_METRIC_COSINE ? 1.0f - d : -d) : d;
    return std::isnan(s) ? INFINITY : s;
}

inline bool hit_less(const hdb_hit &a, const hdb_hit &b) {
    if (a.score != b.score) return a.score < b.score;
    return a.label < b.label;
}

void pad(hdb_hit *out, size_t from, size_t k) {
    for (size_t i = from; i < k; i++) {
        out[i].score = INFINITY;
        out[i].label = -1;
    }
}

/* One FAISS search of nq queries for k1 neighbours, mapped to labels and scores. Writes up to
 * k best live hits per query to out (sorted, padded) and the live-hit counts to got. */
void search_block(const hdb_faiss *f, size_t nq, const float *q, size_t k1, size_t k,
                  const faiss::SearchParameters *sp, const hdb_accept *acc, hdb_hit *out,
                  size_t *got) {
    std::vector<float> D(nq * k1);
    std::vector<fidx> I(nq * k1);
    f->index->search(fidx(nq), q, fidx(k1), D.data(), I.data(), sp);
    std::vector<hdb_hit> hits;
    hits.reserve(k1);
    faiss::MetricType fm = f->index->metric_type;
    for (size_t i = 0; i < nq; i++) {
        hits.clear();
        for (size_t j = 0; j < k1; j++) {
            fidx id = I[i * k1 + j];
            if (id < 0) continue;
            int64_t label;
            if (f->layout.ids == Ids::LABELS) {
                label = id;
            } else {
                if (size_t(id) >= f->i2l.size()) continue; /* never expected */
                label = f->i2l[size_t(id)];
                if (label < 0) continue; /* hidden */
            }
            if (acc != nullptr && !acc->fn(acc->ctx, label)) continue; /* no selector here */
            hits.push_back(hdb_hit{to_score(fm, f->metric, D[i * k1 + j]), label});
        }
        size_t m = std::min(hits.size(), k);
        std::partial_sort(hits.begin(), hits.begin() + ptrdiff_t(m), hits.end(), hit_less);
        std::copy(hits.begin(), hits.begin() + ptrdiff_t(m), out + i * k);
        pad(out + i * k, m, k);
        got[i] = m;
    }
}

/* Lets FAISS skip the vectors of labels that acc refuses, translating FAISS ids to labels. */
struct AcceptSelector : faiss::IDSelector {
    const hdb_faiss *f;
    const hdb_accept *acc;
    AcceptSelector(const hdb_faiss *f_, const hdb_accept *a) : f(f_), acc(a) {}
    bool is_member(fidx id) const override {
        int64_t label;
        if (f->layout.ids == Ids::LABELS) label = id;
        else label = id >= 0 && size_t(id) < f->i2l.size() ? f->i2l[size_t(id)] : -1;
        return label >= 0 && acc->fn(acc->ctx, label);
    }
};

/* True when FAISS 1.7.3 applies SearchParameters::sel for this index: exact flat storage, IVF
 * and HNSW at the top level. Others are filtered after the search (search_block). */
bool takes_selector(const faiss::Index *ix) {
    return dynamic_cast<const faiss::IndexFlat *>(ix) || dynamic_cast<const faiss::IndexIVF *>(ix) ||
           dynamic_cast<const faiss::IndexHNSW *>(ix);
}

void search_locked(const hdb_faiss *f, size_t nq, const float *queries, size_t k, uint32_t nprobe,
                   const hdb_accept *acc, hdb_hit *out) {
    size_t live = f->l2i.size();
    if (live == 0) {
        pad(out, 0, nq * k);
        return;
    }
    std::vector<float> qn;
    if (f->metric == HDB_METRIC_COSINE) {
        qn = prepare(f, nq, queries);
        queries = qn.data();
    }
    faiss::SearchParametersIVF pivf;
    faiss::SearchParametersHNSW phnsw;
    const faiss::SearchParameters *sp = nullptr;
    size_t ef = 0;
    if (f->trained && f->layout.ivf_params) {
        const faiss::IndexIVF *ivf = faiss::ivflib::try_extract_index_ivf(f->index.get());
        pivf.nprobe = nprobe ? nprobe : (ivf ? ivf->nprobe : 1);
        sp = &pivf;
    } else if (f->trained && f->layout.hnsw_params) {
        bool pre;
        auto h = dynamic_cast<const faiss::IndexHNSW *>(strip_transforms(f->index.get(), &pre));
        phnsw.efSearch = nprobe ? int(std::min<uint32_t>(nprobe, INT_MAX))
                                : (h ? h->hnsw.efSearch : phnsw.efSearch);
        ef = size_t(phnsw.efSearch);
        sp = &phnsw;
    }
    faiss::SearchParameters pplain;
    AcceptSelector selector(f, acc);
    bool post = acc != nullptr && !takes_selector(f->index.get()); /* filtered after FAISS */
    if (acc != nullptr && !post) {
        if (sp == nullptr) sp = &pplain;
        const_cast<faiss::SearchParameters *>(sp)->sel = &selector;
    }
    size_t ntotal = size_t(f->index->ntotal);
    size_t want = std::min(k, live);
    if (acc != nullptr && acc->max < want) want = size_t(acc->max);
    if (want == 0) {
        pad(out, 0, nq * k);
        return;
    }
    size_t k1 = want;
    if (f->hidden) {
        /* Over-fetch in proportion to the hidden share (at most ~43% of live after the 30%
         * rebuild rule), twice over, plus slack; short queries are retried below. */
        size_t extra = (want * f->hidden + live - 1) / live;
        k1 = want + 2 * extra + 8;
    }
    /* FAISS 1.7.3's HNSW::search sizes its candidate queue max(index efSearch, k) and uses
     * params->efSearch only to stop early, so a per-call efSearch above the index's would do
     * nothing. Asking for ef results makes the queue ef long; the best k are kept. */
    k1 = std::min(ntotal, std::max(k1, ef));
    size_t block = std::max<size_t>(1, kSearchBlockEntries / std::max<size_t>(k1, 1));
    std::vector<size_t> got(std::min(nq, block));
    for (size_t q0 = 0; q0 < nq; q0 += block) {
        size_t nb = std::min(block, nq - q0);
        search_block(f, nb, queries + q0 * f->dim, k1, k, sp, acc, out + q0 * k, got.data());
        if (!f->hidden && !post) continue;
        for (size_t i = 0; i < nb; i++) {
            /* Too many hidden vectors among this query's neighbours: ask for more. */
            size_t kk = k1;
            size_t g = got[i];
            while (g < want && kk < ntotal) {
                kk = std::min(ntotal, kk * 2);
                search_block(f, 1, queries + (q0 + i) * f->dim, kk, k, sp, acc, out + (q0 + i) * k,
                             &g);
            }
        }
    }
}

/* ---- save / load helpers --------------------------------------------------------------------- */

struct Writer {
    FILE *fp;
    uint32_t crc = 0;
    bool ok = true;
    void put(const void *p, size_t n) {
        if (!ok || n == 0) return;
        crc = hdb_crc32c(crc, p, n);
        if (fwrite(p, 1, n, fp) != n) ok = false;
    }
    void u8(uint8_t v) {
        put(&v, 1);
    }
    void u32(uint32_t v) {
        put(&v, 4);
    }
    void u64(uint64_t v) {
        put(&v, 8);
    }
};

struct Reader {
    const uint8_t *p;
    size_t n, pos = 0;
    bool get(void *dst, size_t len) {
        if (len > n - pos) return false;
        if (len) memcpy(dst, p + pos, len); /* dst may be NULL (empty vector) when len is 0 */
        pos += len;
        return true;
    }
    bool u8(uint8_t *v) {
        return get(v, 1);
    }
    bool u32(uint32_t *v) {
        return get(v, 4);
    }
    bool u64(uint64_t *v) {
        return get(v, 8);
    }
    size_t left() const {
        return n - pos;
    }
};

int read_file(const char *path, std::vector<uint8_t> &data, char *err, size_t errlen) {
    FILE *fp = fopen(path, "rb");
    if (!fp) return hdb_errf(err, errlen, HDB_EIO, "load: open %s: %s", path, strerror(errno));
    int rc = HDB_OK;
    long size = -1;
    if (fseek(fp, 0, SEEK_END) != 0 || (size = ftell(fp)) < 0 || fseek(fp, 0, SEEK_SET) != 0) {
        rc = hdb_errf(err, errlen, HDB_EIO, "load: seek %s: %s", path, strerror(errno));
    } else {
        data.resize(size_t(size));
        if (size > 0 && fread(data.data(), 1, data.size(), fp) != data.size())
            rc = hdb_errf(err, errlen, HDB_EIO, "load: read %s: %s", path,
                          ferror(fp) ? strerror(errno) : "file shrank while reading");
    }
    fclose(fp);
    return rc;
}

#define CORRUPT(...) hdb_errf(err, errlen, HDB_ECORRUPT, "load: " __VA_ARGS__)

/* Parses a verified file body into a state. Returns HDB_OK, HDB_EINVAL (params differ) or
 * HDB_ECORRUPT. */
int parse_file(const hdb_faiss *f, const std::vector<uint8_t> &data, State &s, char *err,
               size_t errlen) {
    Reader r{data.data(), data.size() - 4};
    r.pos = sizeof kMagic + 4; /* magic and version were checked */
    uint32_t dim, metric, nprobe, flen;
    uint64_t train_size;
    if (!r.u32(&dim) || !r.u32(&metric) || !r.u32(&nprobe) || !r.u64(&train_size) ||
        !r.u32(&flen) || flen > r.left())
        return CORRUPT("truncated header");
    std::string factory(reinterpret_cast<const char *>(r.p + r.pos), flen);
    r.pos += flen;
    if (dim != f->dim || metric != uint32_t(f->metric) || factory != f->factory)
        return hdb_errf(err, errlen, HDB_EINVAL,
                        "load: file holds dim %u, metric %s, factory \"%s\"; asked for dim %u, "
                        "metric %s, factory \"%s\"",
                        dim, hdb_metric_name(int(metric)), factory.c_str(), f->dim,
                        hdb_metric_name(f->metric), f->factory.c_str());
    uint8_t trained, ids;
    uint64_t blen;
    if (!r.u8(&trained) || !r.u8(&ids) || !r.u64(&blen)) return CORRUPT("truncated header");
    if (trained > 1 || ids > uint8_t(Ids::HIDDEN)) return CORRUPT("bad state bytes");
    if (blen > r.left())
        return CORRUPT("index length %llu exceeds the file", (unsigned long long)blen);
    faiss::VectorIOReader vr;
    vr.data.assign(r.p + r.pos, r.p + r.pos + blen);
    r.pos += blen;
    try {
        s.index.reset(faiss::read_index(&vr));
    } catch (const faiss::FaissException &e) {
        return CORRUPT("faiss could not read the index: %s", e.what());
    }
    if (vr.rp != vr.data.size()) return CORRUPT("trailing bytes after the FAISS index");
    faiss::Index *ix = s.index.get();
    if (ix->d != int(f->dim) || ix->metric_type != f->plan.fmetric || !ix->is_trained)
        return CORRUPT("the FAISS index does not match its header");
    s.trained = trained != 0;
    if (s.trained) {
        s.layout = classify(ix);
    } else {
        if (!dynamic_cast<faiss::IndexFlat *>(ix)) return CORRUPT("untrained state is not flat");
        s.layout = buffer_layout();
    }
    if (uint8_t(s.layout.ids) != ids) return CORRUPT("label layout does not match the index");

    uint64_t count;
    if (!r.u64(&count) || count > r.left() / 8) return CORRUPT("truncated label table");
    std::vector<int64_t> tab(count);
    r.get(tab.data(), count * 8);
    size_t ntotal = size_t(ix->ntotal);
    if (s.layout.ids == Ids::LABELS) {
        if (count != ntotal)
            return CORRUPT("%llu labels for %zu vectors", (unsigned long long)count, ntotal);
        s.l2i.reserve(count);
        for (int64_t l : tab)
            if (l < 0 || !s.l2i.emplace(l, l).second)
                return CORRUPT("bad label %lld", (long long)l);
    } else {
        if (count != ntotal)
            return CORRUPT("%llu positions for %zu vectors", (unsigned long long)count, ntotal);
        s.l2i.reserve(count);
        for (size_t i = 0; i < count; i++) {
            int64_t l = tab[i];
            if (l == -1 && s.layout.ids == Ids::HIDDEN) {
                s.hidden++;
                continue;
            }
            if (l < 0 || !s.l2i.emplace(l, int64_t(i)).second)
                return CORRUPT("bad label %lld", (long long)l);
        }
        s.i2l.swap(tab);
    }
    uint64_t rows;
    if (!r.u64(&rows)) return CORRUPT("truncated raw vectors");
    if (rows != (s.layout.keep_raw ? ntotal : 0)) return CORRUPT("raw vector count mismatch");
    if (rows > r.left() / (size_t(f->dim) * 4)) return CORRUPT("truncated raw vectors");
    s.raw.resize(rows * f->dim);
    r.get(s.raw.data(), s.raw.size() * 4);
    if (r.left() != 0) return CORRUPT("%zu unexpected bytes before the checksum", r.left());
    /* This process's nprobe wins over the saved one. */
    if (s.trained) apply_nprobe(ix, f->nprobe);
    return HDB_OK;
}

#undef CORRUPT

int create_engine(hdb_faiss **out, const hdb_faiss_params *p, char *err, size_t errlen) {
    Plan plan;
    int rc = make_plan(p, &plan, err, errlen);
    if (rc != HDB_OK) return rc;
    std::unique_ptr<hdb_faiss> f(new hdb_faiss);
    f->dim = p->dim;
    f->metric = p->metric;
    f->factory = p->factory;
    f->nprobe = p->nprobe;
    f->train_size_param = p->train_size;
    f->plan = plan;
    *out = f.release();
    return HDB_OK;
}

} // namespace

/* ---- exported functions ---------------------------------------------------------------------- */

extern "C" {

int hdb_faiss_validate(const hdb_faiss_params *p, char *err, size_t errlen) {
    try {
        apply_threads();
        Plan plan;
        return make_plan(p, &plan, err, errlen);
    }
    HDB_FAISS_CATCH(err, errlen, "validate")
}

int hdb_faiss_create(hdb_faiss **out, const hdb_faiss_params *p, char *err, size_t errlen) {
    if (!out) return hdb_errf(err, errlen, HDB_EINVAL, "create: out is NULL");
    *out = nullptr;
    try {
        apply_threads();
        hdb_faiss *raw = nullptr;
        int rc = create_engine(&raw, p, err, errlen);
        if (rc != HDB_OK) return rc;
        std::unique_ptr<hdb_faiss> f(raw);
        State s;
        build_state(f.get(), 0, nullptr, nullptr, s);
        install(f.get(), s);
        *out = f.release();
        return HDB_OK;
    }
    HDB_FAISS_CATCH(err, errlen, "create")
}

void hdb_faiss_free(hdb_faiss *f) {
    try {
        delete f;
    } catch (...) {
        /* destructors of FAISS indexes do not throw; nothing to report anyway */
    }
}

int hdb_faiss_upsert(hdb_faiss *f, size_t n, const int64_t *labels, const float *vecs, char *err,
                     size_t errlen) {
    if (!f) return hdb_errf(err, errlen, HDB_EINVAL, "upsert: engine is NULL");
    if (n == 0) return HDB_OK;
    if (!labels || !vecs)
        return hdb_errf(err, errlen, HDB_EINVAL, "upsert: NULL labels or vectors");
    if (n > SIZE_MAX / sizeof(float) / f->dim)
        return hdb_errf(err, errlen, HDB_EINVAL, "upsert: too many vectors");
    try {
        apply_build_threads();
        std::unordered_set<int64_t> seen;
        seen.reserve(n);
        for (size_t i = 0; i < n; i++) {
            if (labels[i] < 0)
                return hdb_errf(err, errlen, HDB_EINVAL, "labels[%zu]: must be >= 0, got %lld", i,
                                (long long)labels[i]);
            if (!seen.insert(labels[i]).second)
                return hdb_errf(err, errlen, HDB_EINVAL,
                                "labels[%zu]: %lld appears twice in one upsert", i,
                                (long long)labels[i]);
        }
        int rc = check_vectors(f, n, vecs, "vectors", err, errlen);
        if (rc != HDB_OK) return rc;
        std::unique_lock<RwLock> lock(f->mu);
        return upsert_locked(f, n, labels, vecs, err, errlen);
    }
    HDB_FAISS_CATCH(err, errlen, "upsert")
}

size_t hdb_faiss_remove(hdb_faiss *f, size_t n, const int64_t *labels) {
    if (!f || n == 0 || !labels) return 0;
    try {
        apply_threads();
        std::unique_lock<RwLock> lock(f->mu);
        return remove_locked(f, n, labels);
    } catch (...) {
        /* Only bad_alloc before FAISS is touched is expected here; nothing was removed. */
        return 0;
    }
}

int hdb_faiss_search(hdb_faiss *f, size_t nq, const float *queries, size_t k, uint32_t nprobe,
                     hdb_hit *out, char *err, size_t errlen) {
    return hdb_faiss_search_accept(f, nq, queries, k, nprobe, nullptr, out, err, errlen);
}

int hdb_faiss_search_accept(hdb_faiss *f, size_t nq, const float *queries, size_t k,
                            uint32_t nprobe, const hdb_accept *acc, hdb_hit *out, char *err,
                            size_t errlen) {
    if (acc != nullptr && acc->fn == nullptr) acc = nullptr;
    if (!f) return hdb_errf(err, errlen, HDB_EINVAL, "search: engine is NULL");
    if (k == 0) return hdb_errf(err, errlen, HDB_EINVAL, "search: k must be >= 1");
    if (nq == 0) return HDB_OK;
    if (!queries || !out) return hdb_errf(err, errlen, HDB_EINVAL, "search: NULL queries or out");
    if (nq > SIZE_MAX / sizeof(hdb_hit) / k || nq > SIZE_MAX / sizeof(float) / f->dim)
        return hdb_errf(err, errlen, HDB_EINVAL, "search: nq * k too large");
    try {
        apply_threads();
        int rc = check_vectors(f, nq, queries, "queries", err, errlen);
        if (rc != HDB_OK) return rc;
        std::shared_lock<RwLock> lock(f->mu);
        search_locked(f, nq, queries, k, nprobe, acc, out);
        return HDB_OK;
    }
    HDB_FAISS_CATCH(err, errlen, "search")
}

size_t hdb_faiss_size(hdb_faiss *f) {
    if (!f) return 0;
    try {
        std::shared_lock<RwLock> lock(f->mu);
        return f->l2i.size();
    } catch (...) {
        return 0; /* lock failure (system_error): not expected */
    }
}

void hdb_faiss_mem(hdb_faiss *f, uint64_t *vector_bytes, uint64_t *other_bytes) {
    *vector_bytes = *other_bytes = 0;
    if (!f) return;
    try {
        std::shared_lock<RwLock> lock(f->mu);
        uint64_t code = (uint64_t)f->dim * sizeof(float);
        try {
            if (f->index) code = f->index->sa_code_size();
        } catch (...) { /* an index type without standalone codes: count float32 */
        }
        const uint64_t ntotal = f->index ? (uint64_t)f->index->ntotal : 0;
        *vector_bytes = ntotal * code;
        *other_bytes = (uint64_t)f->l2i.size() * 32 + f->i2l.size() * sizeof(int64_t) +
                       f->raw.size() * sizeof(float);
    } catch (...) { /* lock failure (system_error): report nothing */
    }
}

int hdb_faiss_is_trained(hdb_faiss *f) {
    if (!f) return 0;
    try {
        std::shared_lock<RwLock> lock(f->mu);
        return f->trained ? 1 : 0;
    } catch (...) {
        return 0;
    }
}

int hdb_faiss_save(hdb_faiss *f, const char *path, char *err, size_t errlen) {
    if (!f || !path) return hdb_errf(err, errlen, HDB_EINVAL, "save: NULL engine or path");
    try {
        apply_threads();
        std::shared_lock<RwLock> lock(f->mu);
        faiss::VectorIOWriter vw;
        faiss::write_index(f->index.get(), &vw);
        std::vector<int64_t> tab;
        if (f->layout.ids == Ids::LABELS) {
            tab.reserve(f->l2i.size());
            for (const auto &kv : f->l2i)
                tab.push_back(kv.first);
            std::sort(tab.begin(), tab.end());
        }
        const std::vector<int64_t> &labels = f->layout.ids == Ids::LABELS ? tab : f->i2l;

        std::unique_ptr<FILE, int (*)(FILE *)> fp(fopen(path, "wb"), fclose);
        if (!fp) return hdb_errf(err, errlen, HDB_EIO, "save: open %s: %s", path, strerror(errno));
        Writer w{fp.get()};
        w.put(kMagic, sizeof kMagic);
        w.u32(kFormatVersion);
        w.u32(f->dim);
        w.u32(uint32_t(f->metric));
        w.u32(f->nprobe);
        w.u64(f->train_size_param);
        w.u32(uint32_t(f->factory.size()));
        w.put(f->factory.data(), f->factory.size());
        w.u8(f->trained ? 1 : 0);
        w.u8(uint8_t(f->layout.ids));
        w.u64(vw.data.size());
        w.put(vw.data.data(), vw.data.size());
        w.u64(labels.size());
        w.put(labels.data(), labels.size() * 8);
        w.u64(f->layout.keep_raw ? f->i2l.size() : 0);
        w.put(f->raw.data(), f->raw.size() * 4);
        uint32_t crc = w.crc;
        w.u32(crc);
        int rc = HDB_OK;
        if (!w.ok || fflush(fp.get()) != 0)
            rc = hdb_errf(err, errlen, HDB_EIO, "save: write %s: %s", path, strerror(errno));
        if (fclose(fp.release()) != 0 && rc == HDB_OK)
            rc = hdb_errf(err, errlen, HDB_EIO, "save: close %s: %s", path, strerror(errno));
        return rc;
    }
    HDB_FAISS_CATCH(err, errlen, "save")
}

int hdb_faiss_load(hdb_faiss **out, const hdb_faiss_params *p, const char *path, char *err,
                   size_t errlen) {
    if (!out) return hdb_errf(err, errlen, HDB_EINVAL, "load: out is NULL");
    *out = nullptr;
    if (!path) return hdb_errf(err, errlen, HDB_EINVAL, "load: path is NULL");
    try {
        apply_threads();
        hdb_faiss *f = nullptr;
        int rc = create_engine(&f, p, err, errlen);
        if (rc != HDB_OK) return rc;
        std::unique_ptr<hdb_faiss> guard(f);
        std::vector<uint8_t> data;
        rc = read_file(path, data, err, errlen);
        if (rc != HDB_OK) return rc;
        /* Nothing reaches FAISS before magic, version and checksum hold. */
        if (data.size() < sizeof kMagic + 4 + 4)
            return hdb_errf(err, errlen, HDB_ECORRUPT, "load: %s: too short (%zu bytes)", path,
                            data.size());
        if (memcmp(data.data(), kMagic, sizeof kMagic) != 0)
            return hdb_errf(err, errlen, HDB_ECORRUPT, "load: %s: not a FAISS engine file", path);
        uint32_t stored, version;
        memcpy(&stored, data.data() + data.size() - 4, 4);
        if (hdb_crc32c(0, data.data(), data.size() - 4) != stored)
            return hdb_errf(err, errlen, HDB_ECORRUPT, "load: %s: checksum mismatch", path);
        memcpy(&version, data.data() + sizeof kMagic, 4);
        if (version != kFormatVersion)
            return hdb_errf(err, errlen, HDB_ECORRUPT, "load: %s: unsupported format version %u",
                            path, version);
        State s;
        rc = parse_file(f, data, s, err, errlen);
        if (rc != HDB_OK) return rc;
        install(f, s);
        /* An engine saved untrained trains on its next upsert if train_size now allows. */
        *out = guard.release();
        return HDB_OK;
    }
    HDB_FAISS_CATCH(err, errlen, "load")
}

void hdb_faiss_set_build_threads(int n) {
    g_build_threads.store(n < 0 ? 0 : n, std::memory_order_relaxed);
}

void hdb_faiss_set_threads(int n) {
    if (n < 1) n = 1;
    g_omp_threads.store(n, std::memory_order_relaxed);
    omp_set_num_threads(n);
}

} /* extern "C" */
