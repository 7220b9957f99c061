/*
 * hdb_hnsw_bridge.cpp - the HNSW engine of hdb_hnsw.h: hnswlib 0.6.2's graph (Debian's
 * header-only libhnswlib-dev) behind a C interface, with HilbertDB's distance kernels.
 *
 * Distances. hnswlib picks its SIMD at compile time from __AVX__ / __AVX512F__, which our
 * baseline x86-64 flags do not define, so its own spaces would run SSE code. Space below is a
 * hnswlib::SpaceInterface whose distance calls hdb_l2sq / hdb_ip, which dispatch at run time
 * (AVX-512, AVX2 or scalar). The internal distance is made equal to our score, so no mapping is
 * needed and no precision is lost: L2 -> squared distance; INNER_PRODUCT -> -ip (hnswlib's own
 * InnerProductSpace uses 1 - ip; a constant shift changes no comparison in the graph code, and
 * nothing in hnswlib assumes distances >= 0, while 1 - ip would round away small differences
 * between large inner products); COSINE -> vectors stored normalised, 1 - ip.
 *
 * Search. hdb_hnsw_search does not call hnswlib's searchKnn. searchKnn reads the member ef_
 * (a per-call ef would need a racy setEf) and, run concurrently with addPoint, it can read a
 * new maxlevel_ together with an old enterpoint_node_ and then index past the end of that
 * node's upper-level link lists; right after the first insert it can also see
 * cur_element_count == 1 while enterpoint_node_ is still -1. search_one() below is the same
 * algorithm (greedy descent through the upper layers, then searchBaseLayerST's beam search at
 * level 0, skipping deleted nodes but walking through them) over hnswlib's public members,
 * with the effective ef = max(ef, k) of each call, direct calls of our kernels, and deeper
 * prefetching (a node's unvisited neighbours are gathered first, then the first 512 bytes of
 * each vector are prefetched two ahead of its distance). It returns exactly what searchKnn
 * returns on the same graph (checked on Fashion-MNIST). The k best are ranked by hdb_topk (ties by
 * smaller label, padding {+INFINITY, -1}). When the beam finds fewer than min(k, live) live nodes
 * (many deletions can cut live nodes off from the entry point), the query falls back to an exact
 * scan of all slots, so results are never short.
 *
 * Locking. hnswlib 0.6.2 is not safe for updates concurrent with searches: besides the
 * entry-point race above, readers take no per-node locks in searchBaseLayerST, while
 * updatePoint rewrites link lists (repairConnectionsForUpdate -> mutuallyConnectNewElement
 * writes the updated node's own list without its lock) and vectors in place, and markDelete
 * flips a byte that readers test, all unsynchronised. So writes never overlap searches here:
 *   - rw is a writer-preferring pthread rwlock (std::shared_mutex is reader-preferring in
 *     glibc, so four busy searchers could starve the writer forever). A search takes it
 *     shared for one query at a time; every mutation of the graph, the free list and the
 *     counters runs under it exclusively. hnswlib's own locks are then uncontended.
 *   - wmu serialises writer calls (upsert, remove, save) as wholes. A writer holds rw only for
 *     slices of about WRITE_SLICE_US of work and releases it in between, so a long upsert batch
 *     delays searches by at most one slice instead of the whole batch.
 *   - save holds wmu only: no mutation can happen without wmu, so the graph is stable for the
 *     snapshot while searches go on.
 *
 * Parallel inserts. Within one upsert call, the labels new to the graph beyond its free slots
 * (all of them when an index is built from a full source) go to hnswlib's addPoint from
 * hdb_hnsw_build_threads() threads (process-wide, index.build_threads; 0 = online cores) when
 * there are at least PAR_MIN of them. The calling thread holds rw exclusively for one write
 * slice and runs the slice's inserts together with nt - 1 threads started for it, which take
 * labels from a shared cursor until the slice's time is up; then all are joined and rw is
 * released, so searches still wait at most about one slice (plus the longest insert in
 * flight). addPoint is safe among concurrent inserters (hnswlib's per-node, global and
 * label-lookup locks, uncontended by searches here); the one unsynchronised access is its level
 * draw from the shared generator, as in hnswlib's own multi-threaded add_items. The graph then
 * depends on thread timing: same recall (test_parallel_build), not the same links, so tests
 * that compare two graphs link for link set one thread. Updates, revivals and slot reuses run
 * on the calling thread (update_node is not safe to run concurrently). The per-slice start and
 * join cost little against inserts of hundreds of dimensions, but a thread that the OS
 * deschedules stalls its slice's join: on a busy host two threads gain less than hnswlib's
 * add_items, whose threads never wait for each other (bench/build_bench.py).
 *
 * Slot reuse. hnswlib 0.6.2 has no replace_deleted, so removed slots are recycled here, as
 * hnswlib 0.7 does it: free_ids is a stack of deleted internal ids (free_pos[id] is the index
 * of id in it, for O(1) removal when a removed label is upserted again and its own slot is
 * revived). A new label takes the top slot: label_lookup_ maps the new label to the slot and
 * forgets the old one, the stored external label is overwritten, the mark is cleared, and
 * update_node() (hnswlib's updatePoint(vec, id, 1.0), restated to avoid a UBSan error) moves
 * the node and repairs the links of its old and new neighbourhoods. All of it runs under the
 * exclusive lock. The repair re-selects the links of every old neighbour from its two-hop
 * neighbourhood, so a reuse or an update costs several inserts; cheaper probabilities were
 * measured and lose recall under churn (0.98 -> 0.95 at probability 0). The graph thus holds at
 * most the peak number of live labels; a periodic rebuild was the alternative, but it would stall
 * writes for a full rebuild and double the memory while it runs. The repair keeps recall at a
 * fresh build's level (issue 8 item 5, test_churn_recall: 5k points of dim 32, m 16 /
 * ef_construction 200, every point replaced 20 times and 10% deleted: self-recall@1 1.0000,
 * recall@10 0.9870 against 0.9873 for a fresh build of the same live points), so no compaction
 * is done; its price is time: an update costs about seven fresh inserts. Capacity grows by doubling
 * (grow(): allocate everything first, then commit, so a failed allocation leaves the graph
 * intact; hnswlib's resizeIndex frees the visited-list pool before allocating the new one).
 *
 * Failures. Every exported function catches all exceptions (std::bad_alloc -> HDB_ENOMEM,
 * anything else -> HDB_EINTERNAL with what()). An exception from inside hnswlib's graph
 * mutation (addPoint, update_node) may leave a node half linked, so it marks the engine
 * broken: later upserts, searches and saves return HDB_EINTERNAL until it is reloaded.
 *
 * File format (integers little-endian):
 *   0        8   magic "HDBHNSW1"
 *   8        4   version (1)
 *   12       4   dim          16  4  metric       20  4  m
 *   24       4   ef_construction                  28  4  ef_search
 *   32       8   seed         40  8  live count   48  8  F = free-list length
 *   56       4F  free list (internal ids, bottom of the stack first)
 *   56+4F    8   G = length of the graph section
 *   64+4F    G   the graph in hnswlib 0.6.2's saveIndex layout (native byte order; written
 *                and read here, so hnswlib's loadIndex, which trusts its input, never runs)
 *   64+4F+G  4   CRC-32C of every byte before it
 * Load checks the length, magic, version and CRC first, then dim/metric against the caller's
 * parameters, then every structural field of the graph (sizes, levels, link counts, neighbour
 * ids and their levels, labels, the free list against the deletion marks) before anything is
 * built, so a damaged file gives HDB_ECORRUPT rather than a crash.
 */
#include "hdb_hnsw.h"

#include "hdb_crc.h"
#include "hdb_distance.h"
#include "hdb_err.h"
#include "hdb_rwlock_bridge.hpp"

/* hnswlib's SSE path only adds _mm_prefetch calls, and those read one id past a full
 * upper-layer link list (hnswalg.h:214 in searchBaseLayer, :941 in repairConnectionsForUpdate):
 * a heap over-read that ASan reports. Without them hnswlib is plain C++; our search loop does
 * its own prefetching, within bounds. */
#define NO_MANUAL_VECTORIZATION
#include <hnswlib/hnswlib.h>

#include <pthread.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <functional>
#include <limits>
#include <memory>
#include <mutex>
#include <new>
#include <queue>
#include <shared_mutex>
#include <stdexcept>
#include <system_error>
#include <thread>
#include <unordered_set>
#include <utility>
#include <vector>

static_assert(sizeof(hnswlib::labeltype) == sizeof(int64_t), "labels are 64-bit");
static_assert(sizeof(hnswlib::tableint) == sizeof(uint32_t), "internal ids are 32-bit");

namespace {

using hnswlib::labeltype;
using hnswlib::tableint;
using Graph = hnswlib::HierarchicalNSW<float>;

constexpr uint32_t DEFAULT_M = 16;
constexpr uint32_t DEFAULT_EFC = 200;
constexpr uint32_t DEFAULT_EF = 64;
constexpr uint64_t DEFAULT_SEED = 100;
constexpr uint32_t MAX_DIM = 1u << 20; /* limits.max_dimension's ceiling */
constexpr uint32_t MAX_M = 1024;       /* maxM0 = 2M must fit hnswlib's 16-bit counts */
constexpr uint32_t MAX_EFC = 1u << 20;
constexpr size_t INIT_CAP = 1024;           /* slots allocated by create */
constexpr size_t MAX_ELEMENTS = 0x7fffffff; /* VisitedListPool counts with int */
constexpr uint32_t NOT_FREE = 0xffffffffu;  /* free_pos of a slot that is not on free_ids */
constexpr long WRITE_SLICE_US = 1000;       /* exclusive hold of a writer between releases */
constexpr size_t REMOVE_SLICE = 4096;       /* labels removed per exclusive hold */
constexpr int MAX_BUILD_THREADS = 256;      /* hdb_hnsw_set_build_threads' ceiling */
constexpr size_t REPAIR_KEEP_PER_M0 = 2;    /* update_node: candidates kept per link slot */
constexpr size_t PAR_MIN = 64;              /* fewer fresh labels are inserted by one thread */
constexpr unsigned PREFETCH_AHEAD = 2;      /* search: vectors prefetched ahead of use, */
constexpr size_t PREFETCH_BYTES = 512;      /* their first bytes; the hardware streams the rest */
constexpr uint32_t DEFAULT_TRAIN = 1000;    /* int8: points the quantizer trains on */
constexpr uint32_t MAX_TRAIN = 1u << 20;

constexpr char MAGIC[8] = {'H', 'D', 'B', 'H', 'N', 'S', 'W', '1'};
constexpr uint32_t VERSION = 2;            /* 1: float32 only, no storage section */
constexpr size_t FIXED_HDR_V1 = 56;         /* version 1: bytes before the free list */
constexpr size_t FIXED_HDR = 72;            /* version 2: bytes before the storage section */
constexpr size_t GRAPH_HDR = 96;            /* hnswlib's 13 PODs in saveIndex */
constexpr unsigned char DELETE_MARK = 0x01; /* hnswlib's mark, byte 2 of the level-0 header */

/* ---- distance ------------------------------------------------------------------------------ */

/* A metric: d() between float32 vectors; for the other storages, is_l2 says whether the
 * score is a squared distance, else from_ip() turns an inner product into the score. */
struct DistL2 {
    static constexpr bool is_l2 = true;
    static float d(const float *a, const float *b, size_t n) {
        return hdb_l2sq(a, b, n);
    }
    static float from_ip(float) {
        return 0.0f; /* unused */
    }
};
struct DistNegIP {
    static constexpr bool is_l2 = false;
    static float d(const float *a, const float *b, size_t n) {
        return -hdb_ip(a, b, n);
    }
    static float from_ip(float ip) {
        return -ip;
    }
};
struct DistCos {
    static constexpr bool is_l2 = false;
    static float d(const float *a, const float *b, size_t n) {
        return 1.0f - hdb_ip(a, b, n);
    }
    static float from_ip(float ip) {
        return 1.0f - ip;
    }
};

template <class D> float hnsw_dist(const void *a, const void *b, const void *param) {
    return D::d(static_cast<const float *>(a), static_cast<const float *>(b),
                *static_cast<const size_t *>(param));
}

/* What the code-to-code distances of float16 and int8 graphs read (graph construction and
 * update_node compare stored codes). */
struct CodeParam {
    size_t dim;
    const hdb_sq8 *sq;
};

inline const CodeParam &code_param(const void *p) {
    return *static_cast<const CodeParam *>(p);
}
inline const uint16_t *h16(const void *p) {
    return static_cast<const uint16_t *>(p);
}
inline const uint8_t *u8(const void *p) {
    return static_cast<const uint8_t *>(p);
}

float f16_l2_cc(const void *a, const void *b, const void *p) {
    return hdb_f16_l2sq_cc(h16(a), h16(b), code_param(p).dim);
}
float f16_negip_cc(const void *a, const void *b, const void *p) {
    return -hdb_f16_ip_cc(h16(a), h16(b), code_param(p).dim);
}
float f16_cos_cc(const void *a, const void *b, const void *p) {
    return 1.0f - hdb_f16_ip_cc(h16(a), h16(b), code_param(p).dim);
}
float sq8_l2_cc(const void *a, const void *b, const void *p) {
    return hdb_sq8_l2sq_cc(code_param(p).sq, u8(a), u8(b));
}
float sq8_negip_cc(const void *a, const void *b, const void *p) {
    return -hdb_sq8_ip_cc(code_param(p).sq, u8(a), u8(b));
}
float sq8_cos_cc(const void *a, const void *b, const void *p) {
    return 1.0f - hdb_sq8_ip_cc(code_param(p).sq, u8(a), u8(b));
}

/* The hnswlib space: our kernels over the graph's codes, with CodeParam as the distance
 * parameter (hnswlib keeps a pointer to it, so a Space must outlive its graph and never move).
 * sq is the engine's quantizer (int8), trained before the first code is compared. */
class Space final : public hnswlib::SpaceInterface<float> {
  public:
    Space(size_t dim, hdb_metric metric, hdb_vec_storage storage, const hdb_sq8 *sq)
        : param_{dim, sq}, bytes_(hdb_vec_code_bytes(storage, dim)) {
        const bool l2 = metric == HDB_METRIC_L2, ip = metric == HDB_METRIC_IP;
        switch (storage) {
        case HDB_VEC_FLOAT16: fn_ = l2 ? f16_l2_cc : ip ? f16_negip_cc : f16_cos_cc; break;
        case HDB_VEC_INT8: fn_ = l2 ? sq8_l2_cc : ip ? sq8_negip_cc : sq8_cos_cc; break;
        default:
            fn_ = l2 ? hnsw_dist<DistL2> : ip ? hnsw_dist<DistNegIP> : hnsw_dist<DistCos>;
            break;
        }
    }
    size_t get_data_size() override {
        return bytes_;
    }
    hnswlib::DISTFUNC<float> get_dist_func() override {
        return fn_;
    }
    void *get_dist_func_param() override {
        return &param_; /* float32's functions read its first member, dim */
    }

  private:
    CodeParam param_;
    size_t bytes_;
    hnswlib::DISTFUNC<float> fn_;
};

using hdb_bridge::RwLock; /* hdb_rwlock_bridge.hpp */

/* Threads that insert a batch of fresh labels (hdb_hnsw_set_build_threads); 0: online cores. */
std::atomic<int> g_build_threads{0};

int build_threads() {
    int n = g_build_threads.load(std::memory_order_relaxed);
    if (n <= 0) {
        long c = sysconf(_SC_NPROCESSORS_ONLN);
        n = c > 0 ? (int)std::min<long>(c, MAX_BUILD_THREADS) : 1;
    }
    return n;
}

/* Returns the exception being handled as an HDB_E* code with its message in err. Call only
 * from a catch block. */
int from_exception(char *err, size_t errlen) {
    try {
        throw;
    } catch (const std::bad_alloc &) {
        return hdb_errf(err, errlen, HDB_ENOMEM, "hnsw: out of memory");
    } catch (const std::exception &e) {
        return hdb_errf(err, errlen, HDB_EINTERNAL, "hnsw: %s", e.what());
    } catch (...) {
        return hdb_errf(err, errlen, HDB_EINTERNAL, "hnsw: unknown exception");
    }
}

/* Returns the visited list to hnswlib's pool on every exit path of a search. */
struct VisitedGuard {
    hnswlib::VisitedListPool *pool;
    hnswlib::VisitedList *vl;
    explicit VisitedGuard(hnswlib::VisitedListPool *p) : pool(p), vl(p->getFreeVisitedList()) {}
    ~VisitedGuard() {
        pool->releaseVisitedList(vl);
    }
    VisitedGuard(const VisitedGuard &) = delete;
    VisitedGuard &operator=(const VisitedGuard &) = delete;
};

/* Per-call search scratch, reused across the queries of one call. */
struct Scratch {
    std::vector<std::pair<float, tableint>> top;  /* max-heap: the ef best live nodes */
    std::vector<std::pair<float, tableint>> cand; /* min-heap: nodes still to expand */
    std::vector<float> q;                         /* normalised query (COSINE) */
    std::vector<float> prep;                      /* the query prepared for int8 codes */
    std::vector<tableint> ids;                    /* unvisited neighbours of one node */
};

} // namespace

struct hdb_hnsw {
    uint32_t dim = 0;
    hdb_metric metric = HDB_METRIC_L2;
    uint32_t m = 0, ef_construction = 0, ef_search = 0;
    uint64_t seed = 0;
    hdb_vec_storage storage = HDB_VEC_FLOAT32;
    uint32_t train_size = 0;         /* int8: points the quantizer trains on */
    size_t code_bytes = 0;           /* bytes of one stored vector */
    hdb_sq8 sq{};                    /* int8: the quantizer; space points at it */
    std::atomic<bool> trained{true}; /* false: an int8 graph still collecting pending */
    /* int8 before training: the points as float32 (normalised for COSINE), by label. */
    std::unordered_map<int64_t, std::vector<float>> pending;
    std::unique_ptr<Space> space;
    std::unique_ptr<Graph> g;        /* destroyed before space (declared after it) */
    RwLock rw;                       /* shared: one query; exclusive: any mutation */
    std::mutex wmu;                  /* serialises upsert, remove and save */
    std::atomic<size_t> live{0};     /* labels not deleted */
    std::atomic<bool> broken{false}; /* a graph mutation failed half way */
    std::vector<tableint> free_ids;  /* deleted slots, reused from the back */
    std::vector<uint32_t> free_pos;  /* slot -> index in free_ids, or NOT_FREE; capacity long */
    ~hdb_hnsw() {
        g.reset();
        space.reset();
        hdb_sq8_destroy(&sq);
    }
};

namespace {

/* ---- parameters ---------------------------------------------------------------------------- */

struct Params {
    uint32_t dim, m, efc, ef;
    hdb_metric metric;
    uint64_t seed;
    hdb_vec_storage storage;
    uint32_t train;
};

/* True for the storages a graph supports (an int, as metric_ok). */
bool storage_ok(int64_t s) {
    return s == HDB_VEC_FLOAT32 || s == HDB_VEC_FLOAT16 || s == HDB_VEC_INT8;
}

/* True for the metrics a graph supports. Takes an int: a C caller (or a file) may hold any
 * value, and loading an out-of-range hdb_metric is undefined behaviour in C++. */
bool metric_ok(int64_t m) {
    return m == HDB_METRIC_L2 || m == HDB_METRIC_IP || m == HDB_METRIC_COSINE;
}

int check_params(const hdb_hnsw_params *p, Params *out, char *err, size_t errlen) {
    static_assert(sizeof(hdb_metric) == sizeof(int), "hdb_metric is an int");
    if (p == NULL) return hdb_errf(err, errlen, HDB_EINVAL, "hnsw: params must not be NULL");
    int metric;
    memcpy(&metric, &p->metric, sizeof metric);
    if (p->dim < 1 || p->dim > MAX_DIM)
        return hdb_errf(err, errlen, HDB_EINVAL, "hnsw: dim %u must be in 1..%u", p->dim, MAX_DIM);
    if (!metric_ok(metric))
        return hdb_errf(err, errlen, HDB_EINVAL, "hnsw: metric %d is not l2, ip or cosine", metric);
    out->dim = p->dim;
    out->metric = (hdb_metric)metric;
    out->m = p->m ? p->m : DEFAULT_M;
    out->efc = p->ef_construction ? p->ef_construction : DEFAULT_EFC;
    out->ef = p->ef_search ? p->ef_search : DEFAULT_EF;
    out->seed = p->seed ? p->seed : DEFAULT_SEED;
    int storage;
    static_assert(sizeof(hdb_vec_storage) == sizeof(int), "hdb_vec_storage is an int");
    memcpy(&storage, &p->storage, sizeof storage);
    if (!storage_ok(storage))
        return hdb_errf(err, errlen, HDB_EINVAL,
                        "hnsw: storage %d is not float32, float16 or int8", storage);
    out->storage = (hdb_vec_storage)storage;
    out->train = p->train_size ? p->train_size : DEFAULT_TRAIN;
    if (out->train > MAX_TRAIN)
        return hdb_errf(err, errlen, HDB_EINVAL, "hnsw: train_size %u exceeds %u", out->train,
                        MAX_TRAIN);
    if (out->m < 2 || out->m > MAX_M)
        return hdb_errf(err, errlen, HDB_EINVAL, "hnsw: m %u must be in 2..%u", out->m, MAX_M);
    if (out->efc > MAX_EFC)
        return hdb_errf(err, errlen, HDB_EINVAL, "hnsw: ef_construction %u exceeds %u", out->efc,
                        MAX_EFC);
    return HDB_OK;
}

/* Builds an empty engine with cap slots (throws on allocation failure). */
std::unique_ptr<hdb_hnsw> make_engine(const Params &p, size_t cap) {
    std::unique_ptr<hdb_hnsw> h(new hdb_hnsw);
    h->dim = p.dim;
    h->metric = p.metric;
    h->m = p.m;
    h->ef_construction = p.efc;
    h->ef_search = p.ef;
    h->seed = p.seed;
    h->storage = p.storage;
    h->train_size = p.train;
    h->code_bytes = hdb_vec_code_bytes(p.storage, p.dim);
    if (p.storage == HDB_VEC_INT8) {
        if (!hdb_sq8_init(&h->sq, p.dim)) throw std::bad_alloc();
        h->trained = false;
    }
    h->space.reset(new Space(p.dim, p.metric, p.storage, &h->sq));
    h->g.reset(new Graph(h->space.get(), cap, p.m, p.efc, p.seed));
    /* hnswlib leaves the upper-layer pointers uninitialised; its destructor frees the ones of
     * levels > 0 only, but zeroed pointers make a half-built node harmless. */
    memset(h->g->linkLists_, 0, cap * sizeof(char *));
    h->free_ids.reserve(cap);
    h->free_pos.assign(cap, NOT_FREE);
    return h;
}

/* ---- graph access -------------------------------------------------------------------------- */

inline const void *code_of(const Graph &g, tableint id) {
    return g.getDataByInternalId(id);
}

/* The 16-bit link count at the head of a link list. */
inline unsigned list_count(const void *ll) {
    uint16_t c;
    memcpy(&c, ll, sizeof c);
    return c;
}

/* hnswlib's deletion mark: bit 0 of byte 2 of the level-0 list header. */
inline bool is_deleted(const Graph &g, tableint id) {
    return (reinterpret_cast<const unsigned char *>(g.get_linklist0(id))[2] & DELETE_MARK) != 0;
}

/* ---- capacity ------------------------------------------------------------------------------ */

/* Makes room for at least need slots (doubling). Allocates everything before committing, so a
 * failure leaves the graph as it was. Caller holds rw exclusively. */
void grow(hdb_hnsw *h, size_t need) {
    Graph &g = *h->g;
    size_t cap = g.max_elements_;
    if (need <= cap) return;
    if (need > MAX_ELEMENTS) throw std::length_error("more than 2^31-1 vectors in one graph");
    size_t ncap = std::max(need, std::min(cap * 2, MAX_ELEMENTS));
    if (ncap > SIZE_MAX / g.size_data_per_element_) throw std::bad_alloc();

    std::unique_ptr<hnswlib::VisitedListPool> pool(new hnswlib::VisitedListPool(1, (int)ncap));
    std::vector<std::mutex> locks(ncap);
    g.element_levels_.resize(ncap);
    h->free_ids.reserve(ncap);
    h->free_pos.resize(ncap, NOT_FREE);
    char *data = (char *)realloc(g.data_level0_memory_, ncap * g.size_data_per_element_);
    if (data == nullptr) throw std::bad_alloc();
    g.data_level0_memory_ = data;
    char **ll = (char **)realloc(g.linkLists_, ncap * sizeof(char *));
    if (ll == nullptr) throw std::bad_alloc();
    memset(ll + cap, 0, (ncap - cap) * sizeof(char *));
    g.linkLists_ = ll;

    g.link_list_locks_.swap(locks);
    delete g.visited_list_pool_;
    g.visited_list_pool_ = pool.release();
    g.max_elements_ = ncap;
}

/* ---- free list ----------------------------------------------------------------------------- */

void free_push(hdb_hnsw *h, tableint id) {
    h->free_pos[id] = (uint32_t)h->free_ids.size();
    h->free_ids.push_back(id); /* never reallocates: reserved to capacity */
}

void free_remove(hdb_hnsw *h, tableint id) {
    uint32_t pos = h->free_pos[id];
    if (pos == NOT_FREE) return;
    tableint last = h->free_ids.back();
    h->free_ids[pos] = last;
    h->free_pos[last] = pos;
    h->free_ids.pop_back();
    h->free_pos[id] = NOT_FREE;
}

/* ---- writes -------------------------------------------------------------------------------- */

/* A copy of the node's links at one level. */
std::vector<tableint> connections(const Graph &g, tableint id, int level) {
    const tableint *ll = reinterpret_cast<const tableint *>(g.get_linklist_at_level(id, level));
    unsigned n = list_count(ll);
    return std::vector<tableint>(ll + 1, ll + 1 + n);
}

/* Moves node id to vector v and repairs the graph around it: hnswlib's updatePoint(v, id, 1.0)
 * (every old neighbour gets its links re-selected from the two-hop neighbourhood, then the node
 * is linked in at its new place by repairConnectionsForUpdate), restated because its
 * getConnectionsWithLock hands memcpy a NULL pointer for an empty list, which UBSan rejects.
 * The random draw against the probability is gone: at 1.0 it never skips a neighbour. Each
 * neighbour's heuristic runs over its 2 * maxM0 nearest candidates rather than hnswlib's
 * ef_construction nearest: with m 16 / ef_construction 200 that halves the cost of an update
 * and kept recall (test_churn_recall, 5k x 20 replacements: recall@10 0.9867 against 0.9863
 * with 200 candidates, fresh build 0.9870); maxM0 candidates alone lost recall (0.9763).
 * Caller holds rw exclusively. */
void update_node(Graph &g, const void *v, tableint id) {
    memcpy(g.getDataByInternalId(id), v, g.data_size_);
    const int max_level = g.maxlevel_;
    const tableint ep = g.enterpoint_node_;
    if (ep == id && g.cur_element_count == 1) return;
    const int level = g.element_levels_[id];
    using Cand = std::pair<float, tableint>;
    for (int layer = 0; layer <= level; layer++) {
        std::vector<tableint> one_hop = connections(g, id, layer);
        if (one_hop.empty()) continue;
        std::unordered_set<tableint> cand_set, neigh_set;
        cand_set.insert(id);
        for (tableint e1 : one_hop) {
            cand_set.insert(e1);
            neigh_set.insert(e1);
            for (tableint e2 : connections(g, e1, layer))
                cand_set.insert(e2);
        }
        for (tableint neigh : neigh_set) {
            std::priority_queue<Cand, std::vector<Cand>, Graph::CompareByFirst> cands;
            size_t size = cand_set.count(neigh) ? cand_set.size() - 1 : cand_set.size();
            size_t keep = std::min({g.ef_construction_, size, REPAIR_KEEP_PER_M0 * g.maxM0_});
            const void *nv = g.getDataByInternalId(neigh);
            for (tableint c : cand_set) {
                if (c == neigh) continue;
                float d = g.fstdistfunc_(nv, g.getDataByInternalId(c), g.dist_func_param_);
                if (cands.size() < keep) {
                    cands.emplace(d, c);
                } else if (d < cands.top().first) {
                    cands.pop();
                    cands.emplace(d, c);
                }
            }
            g.getNeighborsByHeuristic2(cands, layer == 0 ? g.maxM0_ : g.maxM_);
            hnswlib::linklistsizeint *ll = g.get_linklist_at_level(neigh, layer);
            g.setListCount(ll, (unsigned short)cands.size());
            tableint *data = reinterpret_cast<tableint *>(ll + 1);
            for (size_t i = 0; !cands.empty(); i++) {
                data[i] = cands.top().second;
                cands.pop();
            }
        }
    }
    g.repairConnectionsForUpdate(v, ep, id, level, max_level);
}

/* Writes the graph's code of v (already normalised for COSINE) to out (code_bytes). An int8
 * graph must be trained. */
void encode(const hdb_hnsw *h, const float *v, void *out) {
    switch (h->storage) {
    case HDB_VEC_FLOAT16: hdb_f16_encode(v, h->dim, static_cast<uint16_t *>(out)); break;
    case HDB_VEC_INT8: hdb_sq8_encode(&h->sq, v, static_cast<uint8_t *>(out)); break;
    default: memcpy(out, v, h->dim * sizeof(float)); break;
    }
}

/* The vector as the graph stores it: v itself for float32 (when no normalising copy is
 * needed), else its normalised copy in tmp and/or its code in code. */
const void *to_code(const hdb_hnsw *h, const float *v, std::vector<float> &tmp,
                    std::vector<unsigned char> &code) {
    if (h->metric == HDB_METRIC_COSINE) {
        tmp.resize(h->dim);
        memcpy(tmp.data(), v, h->dim * sizeof(float));
        hdb_normalize(tmp.data(), h->dim);
        v = tmp.data();
    }
    if (h->storage == HDB_VEC_FLOAT32) return v;
    code.resize(h->code_bytes);
    encode(h, v, code.data());
    return code.data();
}

/* Inserts or updates one vector, given as its code. Caller holds wmu and rw exclusively. */
void upsert_one(hdb_hnsw *h, labeltype label, const void *v) {
    Graph &g = *h->g;
    auto it = g.label_lookup_.find(label);
    if (it != g.label_lookup_.end()) { /* update in place, reviving a removed label */
        tableint id = it->second;
        if (g.isMarkedDeleted(id)) {
            free_remove(h, id);
            g.unmarkDeletedInternal(id);
            h->live.fetch_add(1, std::memory_order_relaxed);
        }
        h->broken = true; /* until update_node returns */
        update_node(g, v, id);
        h->broken = false;
        return;
    }
    if (!h->free_ids.empty()) { /* recycle a removed label's slot */
        tableint id = h->free_ids.back();
        labeltype old = g.getExternalLabel(id);
        g.label_lookup_[label] = id; /* may throw; nothing changed yet */
        g.label_lookup_.erase(old);
        free_remove(h, id);
        g.setExternalLabel(id, label);
        g.unmarkDeletedInternal(id);
        h->live.fetch_add(1, std::memory_order_relaxed);
        h->broken = true;
        update_node(g, v, id);
        h->broken = false;
        return;
    }
    if (g.cur_element_count >= g.max_elements_) grow(h, g.cur_element_count + 1);
    h->broken = true;
    g.addPoint(v, label);
    h->broken = false;
    h->live.fetch_add(1, std::memory_order_relaxed);
}

/* An untrained int8 graph: keeps the batch aside as float32 while the pending points stay
 * below train_size and returns true; else trains the quantizer on the pending points and the
 * batch, moves the pending points that the batch does not replace into the graph (one
 * exclusive hold), and returns false: the caller then inserts the batch. Caller holds wmu. */
bool hold_pending(hdb_hnsw *h, size_t n, const int64_t *labels, const float *vecs) {
    const size_t dim = h->dim;
    size_t fresh = 0;
    for (size_t i = 0; i < n; i++)
        fresh += h->pending.count(labels[i]) == 0;
    std::vector<float> tmp;
    auto normalised = [&](const float *v) -> const float * {
        if (h->metric != HDB_METRIC_COSINE) return v;
        tmp.assign(v, v + dim);
        hdb_normalize(tmp.data(), dim);
        return tmp.data();
    };
    if (h->pending.size() + fresh < h->train_size) {
        std::vector<std::pair<int64_t, std::vector<float>>> add; /* allocate before locking */
        add.reserve(n);
        for (size_t i = 0; i < n; i++) {
            const float *v = normalised(vecs + i * dim);
            add.emplace_back(labels[i], std::vector<float>(v, v + dim));
        }
        std::unique_lock<RwLock> xl(h->rw); /* searches read pending: rehash under the hold */
        h->pending.reserve(h->pending.size() + fresh);
        for (auto &a : add)
            h->pending.insert_or_assign(a.first, std::move(a.second));
        h->live.fetch_add(fresh, std::memory_order_relaxed);
        return true;
    }
    std::unique_lock<RwLock> xl(h->rw);
    h->broken = true; /* until every pending point is in the graph */
    for (const auto &p : h->pending)
        hdb_sq8_observe(&h->sq, p.second.data());
    for (size_t i = 0; i < n; i++)
        hdb_sq8_observe(&h->sq, normalised(vecs + i * dim));
    hdb_sq8_finish(&h->sq);
    std::unordered_set<int64_t> replaced(labels, labels + n);
    std::vector<unsigned char> code(h->code_bytes);
    h->live.store(0, std::memory_order_relaxed);
    for (const auto &p : h->pending) {
        if (replaced.count(p.first)) continue;
        encode(h, p.second.data(), code.data());
        upsert_one(h, (labeltype)p.first, code.data());
    }
    h->broken = false;
    h->pending.clear();
    h->trained = true;
    return false;
}

/* Inserts the fresh labels idx[*next..] (absent from the graph; the free list is empty) with
 * hnswlib's addPoint from nt threads at once, for about one write slice, and advances *next
 * past those inserted. addPoint is safe among concurrent inserters (per-node locks, a global
 * lock for a new top level, a lock around label_lookup_ and the element count); its level draw
 * reads the shared generator unlocked, as in hnswlib's own parallel add_items, which only
 * perturbs the levels drawn. The slots must already exist (grow). Caller holds wmu and rw
 * exclusively, so no search sees a half-inserted node. */
void insert_parallel(hdb_hnsw *h, const std::vector<size_t> &idx, size_t *next,
                     const int64_t *labels, const float *vecs, int nt) {
    Graph &g = *h->g;
    const size_t dim = h->dim;
    const auto until = std::chrono::steady_clock::now() + std::chrono::microseconds(WRITE_SLICE_US);
    std::atomic<size_t> cursor{*next};
    std::exception_ptr failure;
    std::mutex fmu;
    auto work = [&]() {
        try {
            std::vector<float> tmp;
            std::vector<unsigned char> code;
            for (;;) {
                size_t j = cursor.fetch_add(1, std::memory_order_relaxed);
                if (j >= idx.size()) break;
                g.addPoint(to_code(h, vecs + idx[j] * dim, tmp, code), (labeltype)labels[idx[j]]);
                h->live.fetch_add(1, std::memory_order_relaxed);
                if (std::chrono::steady_clock::now() >= until) break;
            }
        } catch (...) {
            std::lock_guard<std::mutex> fl(fmu);
            if (!failure) failure = std::current_exception();
            cursor.store(idx.size()); /* the others stop at their next label */
        }
    };
    h->broken = true; /* until every thread is back without an error */
    std::vector<std::thread> pool;
    try {
        for (int t = 1; t < nt; t++)
            pool.emplace_back(work);
    } catch (const std::system_error &) { /* fewer threads then */
    }
    work();
    for (auto &t : pool)
        t.join();
    if (failure) std::rethrow_exception(failure);
    h->broken = false;
    *next = std::min(cursor.load(), idx.size());
}

/* ---- search -------------------------------------------------------------------------------- */

/* True when acc (NULL: every label) lets node id into results. */
inline bool accepted(const Graph &g, const hdb_accept *acc, tableint id) {
    return acc == nullptr || acc->fn(acc->ctx, (int64_t)g.getExternalLabel(id));
}

/* A query's score against stored codes (smaller is better), one kind per storage; D is the
 * metric. Built once per query: the int8 one prepares the query in s.prep. */
template <class D> struct F32Score {
    const float *q;
    size_t dim;
    F32Score(const hdb_hnsw *h, const float *q_, Scratch &) : q(q_), dim(h->dim) {}
    float operator()(const void *c) const {
        return D::d(q, static_cast<const float *>(c), dim);
    }
};
template <class D> struct F16Score {
    const float *q;
    size_t dim;
    F16Score(const hdb_hnsw *h, const float *q_, Scratch &) : q(q_), dim(h->dim) {}
    float operator()(const void *c) const {
        if constexpr (D::is_l2) return hdb_f16_l2sq(q, h16(c), dim);
        return D::from_ip(hdb_f16_ip(q, h16(c), dim));
    }
};
template <class D> struct SQ8Score {
    const hdb_sq8 *sq;
    const float *w;
    float base = 0;
    SQ8Score(const hdb_hnsw *h, const float *q, Scratch &s) : sq(&h->sq) {
        s.prep.resize(h->dim);
        if constexpr (D::is_l2)
            hdb_sq8_prep_l2(sq, q, s.prep.data());
        else
            base = hdb_sq8_prep_ip(sq, q, s.prep.data());
        w = s.prep.data();
    }
    float operator()(const void *c) const {
        if constexpr (D::is_l2) return hdb_sq8_l2sq(sq, w, u8(c));
        return D::from_ip(base + hdb_sq8_dot(w, u8(c), sq->dim));
    }
};

/* Exact scan of every live, accepted slot into t (the fallback when the graph walk comes up
 * short). */
template <class S> void scan_all(const hdb_hnsw *h, const S &score, const hdb_accept *acc,
                                 hdb_topk *t) {
    const Graph &g = *h->g;
    for (tableint id = 0; id < g.cur_element_count; id++)
        if (!is_deleted(g, id) && accepted(g, acc, id))
            hdb_topk_push(t, score(code_of(g, id)), (int64_t)g.getExternalLabel(id));
}

/* An int8 graph before training: an exact scan of its pending float32 points. */
template <class D> void scan_pending(const hdb_hnsw *h, const float *q, size_t k,
                                     const hdb_accept *acc, hdb_hit *out) {
    hdb_topk t;
    hdb_topk_init(&t, out, k);
    for (const auto &p : h->pending)
        if (acc == nullptr || acc->fn(acc->ctx, p.first))
            hdb_topk_push(&t, D::d(q, p.second.data(), h->dim), p.first);
    hdb_topk_finish(&t);
}

/* Prefetches the first bytes of a vector, one cache line at a time. */
inline void prefetch_vec(const void *v, size_t bytes) {
    const char *p = reinterpret_cast<const char *>(v);
    for (size_t off = 0; off < bytes; off += 64)
        __builtin_prefetch(p + off);
}

/* One query: out gets k hits, best first, padded. Nodes that acc (NULL: none) refuses are
 * walked through like deleted ones but never returned. Caller holds rw shared. */
template <class S>
void search_one(const hdb_hnsw *h, const S &score, size_t k, size_t ef, const hdb_accept *acc,
                Scratch &s, hdb_hit *out) {
    const Graph &g = *h->g;
    hdb_topk t;
    hdb_topk_init(&t, out, k);
    size_t live = h->live.load(std::memory_order_relaxed);
    if (g.cur_element_count == 0 || live == 0) {
        hdb_topk_finish(&t);
        return;
    }

    /* Greedy descent through the upper layers. */
    tableint cur = g.enterpoint_node_;
    float curd = score(code_of(g, cur));
    for (int level = g.maxlevel_; level > 0; level--) {
        bool changed = true;
        while (changed) {
            changed = false;
            const tableint *ll = reinterpret_cast<const tableint *>(g.get_linklist(cur, level));
            unsigned n = list_count(ll);
            const tableint *nb = ll + 1;
            for (unsigned i = 0; i < n; i++) {
                float d = score(code_of(g, nb[i]));
                if (d < curd) {
                    curd = d;
                    cur = nb[i];
                    changed = true;
                }
            }
        }
    }

    /* Beam search at level 0 (searchBaseLayerST): cand holds nodes to expand (closest
     * first), top the ef closest live nodes seen (farthest first). Deleted nodes, and those
     * acc refuses, are walked through but never enter top: so the walk goes on until ef
     * returnable nodes are found, which widens it as fewer nodes pass. */
    const bool has_del = g.num_deleted_ != 0 || acc != nullptr;
    const size_t pf_bytes = std::min(h->code_bytes, PREFETCH_BYTES);
    auto &top = s.top;
    auto &cand = s.cand;
    top.clear();
    cand.clear();
    const auto cand_cmp = std::greater<std::pair<float, tableint>>();
    {
        VisitedGuard vg(g.visited_list_pool_);
        hnswlib::vl_type *visited = vg.vl->mass;
        const hnswlib::vl_type tag = vg.vl->curV;
        float bound;
        if (!has_del || (!is_deleted(g, cur) && accepted(g, acc, cur))) {
            top.emplace_back(curd, cur);
            cand.emplace_back(curd, cur);
            bound = curd;
        } else {
            bound = std::numeric_limits<float>::max();
            cand.emplace_back(bound, cur);
        }
        visited[cur] = tag;

        while (!cand.empty()) {
            std::pair<float, tableint> c = cand.front();
            if (c.first > bound && (top.size() == ef || !has_del)) break;
            std::pop_heap(cand.begin(), cand.end(), cand_cmp);
            cand.pop_back();

            const tableint *ll = reinterpret_cast<const tableint *>(g.get_linklist0(c.second));
            unsigned n = list_count(ll);
            const tableint *nb = ll + 1;
            /* Unvisited neighbours first, with their vectors prefetched, then their distances:
             * the loads of the next vectors overlap the arithmetic on this one. */
            unsigned m = 0;
            for (unsigned j = 0; j < n; j++) {
                tableint id = nb[j];
                if (visited[id] == tag) continue;
                visited[id] = tag;
                s.ids[m++] = id;
            }
            for (unsigned j = 0; j < m && j < PREFETCH_AHEAD; j++)
                prefetch_vec(code_of(g, s.ids[j]), pf_bytes);
            for (unsigned j = 0; j < m; j++) {
                tableint id = s.ids[j];
                if (j + PREFETCH_AHEAD < m)
                    prefetch_vec(code_of(g, s.ids[j + PREFETCH_AHEAD]), pf_bytes);
                float d = score(code_of(g, id));
                if (top.size() < ef || d < bound) {
                    cand.emplace_back(d, id);
                    std::push_heap(cand.begin(), cand.end(), cand_cmp);
                    if (!has_del || (!is_deleted(g, id) && accepted(g, acc, id))) {
                        top.emplace_back(d, id);
                        std::push_heap(top.begin(), top.end());
                        if (top.size() > ef) {
                            std::pop_heap(top.begin(), top.end());
                            top.pop_back();
                        }
                    }
                    if (!top.empty()) bound = top.front().first;
                }
            }
            if (!cand.empty()) __builtin_prefetch(g.get_linklist0(cand.front().second));
        }
    }

    for (const auto &p : top)
        hdb_topk_push(&t, p.first, (int64_t)g.getExternalLabel(p.second));
    size_t want = std::min(k, live);
    if (acc != nullptr && acc->max < want) want = size_t(acc->max);
    if (t.n < want) { /* live nodes cut off from the entry point, or too few accepted found */
        hdb_topk_init(&t, out, k);
        scan_all(h, score, acc, &t);
    }
    hdb_topk_finish(&t);
}

template <class D>
void search_all(hdb_hnsw *h, size_t nq, const float *queries, size_t k, size_t ef,
                const hdb_accept *acc, hdb_hit *out) {
    Scratch s;
    s.ids.resize(h->g->maxM0_);
    if (h->metric == HDB_METRIC_COSINE) s.q.resize(h->dim);
    for (size_t i = 0; i < nq; i++) {
        const float *q = queries + i * h->dim;
        if (h->metric == HDB_METRIC_COSINE) {
            memcpy(s.q.data(), q, h->dim * sizeof(float));
            hdb_normalize(s.q.data(), h->dim);
            q = s.q.data();
        }
        std::shared_lock<RwLock> rl(h->rw);
        if (h->broken.load(std::memory_order_relaxed))
            throw std::runtime_error("the graph was damaged by an earlier failure; reload it");
        hdb_hit *o = out + i * k;
        if (!h->trained.load(std::memory_order_relaxed)) {
            scan_pending<D>(h, q, k, acc, o);
            continue;
        }
        switch (h->storage) {
        case HDB_VEC_FLOAT16: search_one(h, F16Score<D>(h, q, s), k, ef, acc, s, o); break;
        case HDB_VEC_INT8: search_one(h, SQ8Score<D>(h, q, s), k, ef, acc, s, o); break;
        default: search_one(h, F32Score<D>(h, q, s), k, ef, acc, s, o); break;
        }
    }
}

/* ---- save ---------------------------------------------------------------------------------- */

void put_le(unsigned char *p, uint64_t v, size_t n) {
    for (size_t i = 0; i < n; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

uint64_t get_le(const unsigned char *p, size_t n) {
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++)
        v |= (uint64_t)p[i] << (8 * i);
    return v;
}

/* A FILE with a running CRC-32C over everything written. */
struct Out {
    FILE *f = nullptr;
    uint32_t crc = 0;
    bool ok = true;
    void put(const void *p, size_t n) {
        if (!ok || n == 0) return;
        crc = hdb_crc32c(crc, p, n);
        ok = fwrite(p, 1, n, f) == n;
    }
    template <class T> void pod(const T &v) {
        put(&v, sizeof v);
    }
};

size_t upper_bytes(const Graph &g, tableint i) {
    return g.element_levels_[i] > 0 ? g.size_links_per_element_ * (size_t)g.element_levels_[i] : 0;
}

/* Writes the graph exactly as hnswlib 0.6.2's saveIndex does. */
void write_graph(const Graph &g, Out &o) {
    o.pod(g.offsetLevel0_);
    o.pod(g.max_elements_);
    o.pod(g.cur_element_count);
    o.pod(g.size_data_per_element_);
    o.pod(g.label_offset_);
    o.pod(g.offsetData_);
    o.pod(g.maxlevel_);
    o.pod(g.enterpoint_node_);
    o.pod(g.maxM_);
    o.pod(g.maxM0_);
    o.pod(g.M_);
    o.pod(g.mult_);
    o.pod(g.ef_construction_);
    o.put(g.data_level0_memory_, g.cur_element_count * g.size_data_per_element_);
    for (tableint i = 0; i < g.cur_element_count; i++) {
        unsigned int sz = (unsigned int)upper_bytes(g, i);
        o.pod(sz);
        o.put(g.linkLists_[i], sz);
    }
}

size_t graph_bytes(const Graph &g) {
    size_t n = GRAPH_HDR + g.cur_element_count * g.size_data_per_element_;
    for (tableint i = 0; i < g.cur_element_count; i++)
        n += sizeof(unsigned int) + upper_bytes(g, i);
    return n;
}

int save_locked(hdb_hnsw *h, const char *path, char *err, size_t errlen) {
    const Graph &g = *h->g;
    Out o;
    o.f = fopen(path, "wb");
    if (o.f == nullptr)
        return hdb_errf(err, errlen, HDB_EIO, "hnsw: cannot create %s: %s", path, strerror(errno));
    setvbuf(o.f, nullptr, _IOFBF, 1 << 20);

    unsigned char hdr[FIXED_HDR];
    memcpy(hdr, MAGIC, 8);
    put_le(hdr + 8, VERSION, 4);
    put_le(hdr + 12, h->dim, 4);
    put_le(hdr + 16, (uint32_t)h->metric, 4);
    put_le(hdr + 20, h->m, 4);
    put_le(hdr + 24, h->ef_construction, 4);
    put_le(hdr + 28, h->ef_search, 4);
    put_le(hdr + 32, h->seed, 8);
    put_le(hdr + 40, h->live.load(), 8);
    put_le(hdr + 48, h->free_ids.size(), 8);
    /* The storage section: the quantizer (int8, trained) or the pending points (int8, not). */
    const size_t dim = h->dim;
    const bool trained = h->trained.load();
    uint64_t ext = 0;
    if (h->storage == HDB_VEC_INT8)
        ext = trained ? 8 * (uint64_t)dim : 8 + h->pending.size() * (8 + 4 * (uint64_t)dim);
    put_le(hdr + 56, (uint32_t)h->storage, 4);
    put_le(hdr + 60, trained ? 1 : 0, 4);
    put_le(hdr + 64, ext, 8);
    o.put(hdr, sizeof hdr);
    if (h->storage == HDB_VEC_INT8 && trained) {
        o.put(h->sq.lo, dim * sizeof(float)); /* native floats: IEEE little-endian here */
        o.put(h->sq.step, dim * sizeof(float));
    } else if (h->storage == HDB_VEC_INT8) {
        unsigned char b8p[8];
        put_le(b8p, h->pending.size(), 8);
        o.put(b8p, 8);
        for (const auto &p : h->pending) {
            put_le(b8p, (uint64_t)p.first, 8);
            o.put(b8p, 8);
            o.put(p.second.data(), dim * sizeof(float));
        }
    }
    for (tableint id : h->free_ids) {
        unsigned char b[4];
        put_le(b, id, 4);
        o.put(b, 4);
    }
    unsigned char b8[8];
    put_le(b8, graph_bytes(g), 8);
    o.put(b8, 8);
    write_graph(g, o);
    unsigned char b4[4];
    put_le(b4, o.crc, 4);
    bool ok = o.ok && fwrite(b4, 1, 4, o.f) == 4;
    ok = (fclose(o.f) == 0) && ok;
    if (!ok) {
        int e = errno;
        remove(path);
        return hdb_errf(err, errlen, HDB_EIO, "hnsw: cannot write %s: %s", path, strerror(e));
    }
    return HDB_OK;
}

/* ---- load ---------------------------------------------------------------------------------- */

/* Bounds-checked reading of the graph section. */
struct In {
    const unsigned char *p;
    size_t n, pos = 0;
    In(const unsigned char *p_, size_t n_) : p(p_), n(n_) {}
    bool get(void *dst, size_t len) {
        if (len > n - pos) return false;
        memcpy(dst, p + pos, len);
        pos += len;
        return true;
    }
    bool skip(size_t len) {
        if (len > n - pos) return false;
        pos += len;
        return true;
    }
};

struct GraphHdr {
    size_t offsetLevel0, max_elements, count, size_data, label_offset, offset_data;
    int maxlevel;
    tableint ep;
    size_t maxM, maxM0, M;
    double mult;
    size_t efc;
};

/* What validate_graph learnt: where each node's upper lists are, and its level. */
struct Layout {
    std::vector<int> levels;
    std::vector<size_t> upper_off; /* offset of the node's upper lists in the section */
    size_t level0_off = 0;
    size_t deleted = 0;
};

#define CORRUPT(...) return hdb_errf(err, errlen, HDB_ECORRUPT, "hnsw: " __VA_ARGS__)

/* Checks that the graph section describes a graph of dim/m/efc that hnswlib can walk without
 * leaving its buffers: sizes, levels, counts, neighbour ids and their levels, labels. */
int validate_graph(const unsigned char *sec, size_t len, const Graph &ref, GraphHdr &gh,
                   Layout &lay, char *err, size_t errlen) {
    In in(sec, len);
    bool ok = in.get(&gh.offsetLevel0, 8) && in.get(&gh.max_elements, 8) && in.get(&gh.count, 8) &&
              in.get(&gh.size_data, 8) && in.get(&gh.label_offset, 8) &&
              in.get(&gh.offset_data, 8) && in.get(&gh.maxlevel, 4) && in.get(&gh.ep, 4) &&
              in.get(&gh.maxM, 8) && in.get(&gh.maxM0, 8) && in.get(&gh.M, 8) &&
              in.get(&gh.mult, 8) && in.get(&gh.efc, 8);
    if (!ok) CORRUPT("graph header truncated");
    if (gh.offsetLevel0 != ref.offsetLevel0_ || gh.size_data != ref.size_data_per_element_ ||
        gh.label_offset != ref.label_offset_ || gh.offset_data != ref.offsetData_ ||
        gh.maxM != ref.maxM_ || gh.maxM0 != ref.maxM0_ || gh.M != ref.M_ ||
        gh.efc != ref.ef_construction_ || !(gh.mult > 0 && std::isfinite(gh.mult)))
        CORRUPT("graph layout does not match its parameters");
    if (gh.count > MAX_ELEMENTS || gh.max_elements < gh.count)
        CORRUPT("bad element count %zu", gh.count);
    if (gh.count == 0) {
        if (gh.maxlevel != -1 || gh.ep != (tableint)-1) CORRUPT("bad entry point of empty graph");
    } else if (gh.maxlevel < 0 || gh.maxlevel > 255 || gh.ep >= gh.count) {
        CORRUPT("bad entry point %u / level %d", gh.ep, gh.maxlevel);
    }
    const size_t n = gh.count;
    lay.level0_off = in.pos;
    if (n > (len - in.pos) / gh.size_data) CORRUPT("level-0 block truncated");
    in.skip(n * gh.size_data);

    /* Pass 1: the upper-list sizes give each node's level. */
    lay.levels.assign(n, 0);
    lay.upper_off.assign(n, 0);
    const size_t per_level = ref.size_links_per_element_;
    for (size_t i = 0; i < n; i++) {
        unsigned int sz;
        if (!in.get(&sz, 4)) CORRUPT("upper links of node %zu truncated", i);
        if (sz % per_level != 0 || sz / per_level > (size_t)gh.maxlevel)
            CORRUPT("bad upper-link size %u of node %zu", sz, i);
        lay.levels[i] = (int)(sz / per_level);
        lay.upper_off[i] = in.pos;
        if (!in.skip(sz)) CORRUPT("upper links of node %zu truncated", i);
    }
    if (in.pos != len) CORRUPT("%zu stray bytes after the graph", len - in.pos);
    if (n > 0 && lay.levels[gh.ep] != gh.maxlevel) CORRUPT("entry point is not on the top level");

    /* Pass 2: every list within its bounds, every neighbour an existing node of that level. */
    auto check_list = [&](const unsigned char *ll, size_t maxc, int level) -> bool {
        if (list_count(ll) > maxc) return false;
        if (level == 0 && ((ll[2] & ~DELETE_MARK) != 0 || ll[3] != 0)) return false;
        if (level > 0 && (ll[2] != 0 || ll[3] != 0)) return false;
        for (unsigned j = 0; j < list_count(ll); j++) {
            tableint id;
            memcpy(&id, ll + 4 + 4 * (size_t)j, 4);
            if (id >= n || lay.levels[id] < level) return false;
        }
        return true;
    };
    std::vector<labeltype> labels(n);
    for (size_t i = 0; i < n; i++) {
        const unsigned char *node = sec + lay.level0_off + i * gh.size_data;
        if (!check_list(node + gh.offsetLevel0, gh.maxM0, 0))
            CORRUPT("bad level-0 links of node %zu", i);
        if (node[gh.offsetLevel0 + 2] & DELETE_MARK) lay.deleted++;
        memcpy(&labels[i], node + gh.label_offset, sizeof(labeltype));
        if (labels[i] > (labeltype)INT64_MAX) CORRUPT("bad label of node %zu", i);
        for (int l = 1; l <= lay.levels[i]; l++)
            if (!check_list(sec + lay.upper_off[i] + (size_t)(l - 1) * per_level, gh.maxM, l))
                CORRUPT("bad level-%d links of node %zu", l, i);
    }
    std::sort(labels.begin(), labels.end());
    if (std::adjacent_find(labels.begin(), labels.end()) != labels.end())
        CORRUPT("a label appears twice");
    return HDB_OK;
}

/* Reads the whole file into buf. */
int read_file(const char *path, std::vector<unsigned char> &buf, char *err, size_t errlen) {
    FILE *f = fopen(path, "rb");
    if (f == nullptr)
        return hdb_errf(err, errlen, HDB_EIO, "hnsw: cannot open %s: %s", path, strerror(errno));
    int rc = HDB_OK;
    long end = -1;
    if (fseek(f, 0, SEEK_END) == 0) end = ftell(f);
    if (end < 0 || fseek(f, 0, SEEK_SET) != 0) {
        rc = hdb_errf(err, errlen, HDB_EIO, "hnsw: cannot size %s: %s", path, strerror(errno));
    } else {
        buf.resize((size_t)end);
        if (end > 0 && fread(buf.data(), 1, buf.size(), f) != buf.size())
            rc = hdb_errf(err, errlen, HDB_EIO, "hnsw: cannot read %s", path);
    }
    fclose(f);
    return rc;
}

int load_impl(hdb_hnsw **out, const hdb_hnsw_params *p, const char *path, char *err,
              size_t errlen) {
    Params want;
    int rc = check_params(p, &want, err, errlen);
    if (rc != HDB_OK) return rc;
    if (path == NULL) return hdb_errf(err, errlen, HDB_EINVAL, "hnsw: path must not be NULL");

    std::vector<unsigned char> buf;
    rc = read_file(path, buf, err, errlen);
    if (rc != HDB_OK) return rc;
    const unsigned char *b = buf.data();
    const size_t len = buf.size();

    /* Envelope: length, magic, version, CRC. */
    if (len < FIXED_HDR_V1 + 8 + 4) CORRUPT("%s: truncated (%zu bytes)", path, len);
    if (memcmp(b, MAGIC, 8) != 0) CORRUPT("%s: not an HNSW snapshot", path);
    const uint64_t version = get_le(b + 8, 4);
    if (version != 1 && version != VERSION)
        CORRUPT("%s: unsupported version %u", path, (unsigned)version);
    const size_t hdr = version == 1 ? FIXED_HDR_V1 : FIXED_HDR;
    if (len < hdr + 8 + 4) CORRUPT("%s: truncated (%zu bytes)", path, len);
    if (hdb_crc32c(0, b, len - 4) != (uint32_t)get_le(b + len - 4, 4))
        CORRUPT("%s: checksum mismatch", path);
    /* Version 2's storage section: which storage, trained or not, and its bytes. */
    uint64_t fstorage = HDB_VEC_FLOAT32, ftrained = 1, ext = 0;
    if (version >= 2) {
        fstorage = get_le(b + 56, 4);
        ftrained = get_le(b + 60, 4);
        ext = get_le(b + 64, 8);
        if (!storage_ok((int64_t)fstorage) || ftrained > 1 || ext > len - hdr - 12)
            CORRUPT("%s: bad storage section", path);
    }
    const unsigned char *xsec = b + hdr;
    const size_t fl_off = hdr + ext; /* the free list */
    uint64_t nfree = get_le(b + 48, 8);
    if (nfree > (len - fl_off - 12) / 4) CORRUPT("%s: bad free-list length", path);
    size_t goff = fl_off + 4 * nfree + 8;
    uint64_t glen = get_le(b + goff - 8, 8);
    if (glen != len - goff - 4) CORRUPT("%s: bad graph length", path);

    /* Parameters: dim and metric must be the caller's; m and ef_construction are the file's. */
    Params fp;
    fp.dim = (uint32_t)get_le(b + 12, 4);
    uint64_t fmetric = get_le(b + 16, 4);
    fp.metric = metric_ok((int64_t)fmetric) ? (hdb_metric)fmetric : HDB_METRIC_JACCARD;
    fp.m = (uint32_t)get_le(b + 20, 4);
    fp.efc = (uint32_t)get_le(b + 24, 4);
    fp.ef = (uint32_t)get_le(b + 28, 4);
    fp.seed = get_le(b + 32, 8);
    fp.storage = HDB_VEC_FLOAT32;
    fp.train = want.train;
    if (fp.dim != want.dim || fp.metric != want.metric)
        return hdb_errf(err, errlen, HDB_EINVAL,
                        "hnsw: %s holds dim %u metric %s, not dim %u metric %s", path, fp.dim,
                        hdb_metric_name(fp.metric), want.dim, hdb_metric_name(want.metric));
    if (fstorage != (uint64_t)want.storage)
        return hdb_errf(err, errlen, HDB_EINVAL, "hnsw: %s holds storage %s, not %s", path,
                        hdb_vec_storage_name((hdb_vec_storage)fstorage),
                        hdb_vec_storage_name(want.storage));
    if (fp.m < 2 || fp.m > MAX_M || fp.efc < 1 || fp.efc > MAX_EFC || fp.ef < 1 || fp.seed == 0)
        CORRUPT("%s: bad parameters", path);
    fp.storage = want.storage;
    fp.train = want.train;
    const size_t dim = fp.dim;
    if (fp.storage == HDB_VEC_INT8
            ? ext != (ftrained ? 8 * (uint64_t)dim
                               : (ext >= 8 ? 8 + get_le(xsec, 8) * (8 + 4 * (uint64_t)dim) : 8))
            : ext != 0 || !ftrained)
        CORRUPT("%s: bad storage section length", path);
    if (p->ef_search) fp.ef = p->ef_search;
    if (p->seed) fp.seed = p->seed;

    /* A reference graph gives the layout the file must have; then the file is checked. */
    auto h = make_engine(fp, 16);
    GraphHdr gh;
    Layout lay;
    rc = validate_graph(b + goff, glen, *h->g, gh, lay, err, errlen);
    if (rc != HDB_OK) return rc;
    uint64_t live = get_le(b + 40, 8);
    const uint64_t npending = ftrained ? 0 : get_le(xsec, 8);
    if (nfree != lay.deleted || live != gh.count - lay.deleted + npending)
        CORRUPT("%s: counts disagree with the deletion marks", path);
    if (npending > 0 && gh.count > 0) CORRUPT("%s: pending points next to a graph", path);

    /* The quantizer, or the pending points of an untrained int8 graph. */
    if (fp.storage == HDB_VEC_INT8 && ftrained) {
        std::vector<float> lo(dim), step(dim);
        memcpy(lo.data(), xsec, dim * sizeof(float));
        memcpy(step.data(), xsec + dim * sizeof(float), dim * sizeof(float));
        if (!hdb_sq8_set(&h->sq, lo.data(), step.data())) CORRUPT("%s: bad quantizer", path);
        h->trained = true;
    } else if (fp.storage == HDB_VEC_INT8) {
        h->pending.reserve(npending);
        const unsigned char *pp = xsec + 8;
        for (uint64_t i = 0; i < npending; i++, pp += 8 + 4 * dim) {
            uint64_t label = get_le(pp, 8);
            std::vector<float> v(dim);
            memcpy(v.data(), pp + 8, dim * sizeof(float));
            size_t bad;
            if (label > (uint64_t)INT64_MAX || !hdb_all_finite(v.data(), dim, &bad))
                CORRUPT("%s: bad pending point %llu", path, (unsigned long long)i);
            if (!h->pending.emplace((int64_t)label, std::move(v)).second)
                CORRUPT("%s: a pending label appears twice", path);
        }
    }

    /* Build. */
    Graph &g = *h->g;
    grow(h.get(), std::max(gh.count, (size_t)16));
    const unsigned char *sec = b + goff;
    memcpy(g.data_level0_memory_, sec + lay.level0_off, gh.count * gh.size_data);
    for (size_t i = 0; i < gh.count; i++) {
        size_t sz = lay.levels[i] * g.size_links_per_element_;
        if (sz > 0) {
            char *ll = (char *)malloc(sz);
            if (ll == nullptr) throw std::bad_alloc();
            memcpy(ll, sec + lay.upper_off[i], sz);
            g.linkLists_[i] = ll;
        }
        g.element_levels_[i] = lay.levels[i];
        g.label_lookup_[g.getExternalLabel((tableint)i)] = (tableint)i;
        g.cur_element_count = i + 1; /* so the destructor frees what is built so far */
    }
    g.maxlevel_ = gh.maxlevel;
    g.enterpoint_node_ = gh.ep;
    g.num_deleted_ = lay.deleted;
    for (uint64_t i = 0; i < nfree; i++) {
        tableint id = (tableint)get_le(b + fl_off + 4 * i, 4);
        if (id >= gh.count || !is_deleted(g, id) || h->free_pos[id] != NOT_FREE)
            CORRUPT("%s: bad free list", path);
        free_push(h.get(), id);
    }
    h->live = live;
    *out = h.release();
    return HDB_OK;
}

#undef CORRUPT

} // namespace

/* ---- the C interface ----------------------------------------------------------------------- */

extern "C" {

int hdb_hnsw_create(hdb_hnsw **out, const hdb_hnsw_params *p, char *err, size_t errlen) {
    if (out == NULL) return hdb_errf(err, errlen, HDB_EINVAL, "hnsw: out must not be NULL");
    *out = NULL;
    Params pp;
    int rc = check_params(p, &pp, err, errlen);
    if (rc != HDB_OK) return rc;
    try {
        hdb_distance_init();
        *out = make_engine(pp, INIT_CAP).release();
        return HDB_OK;
    } catch (...) {
        return from_exception(err, errlen);
    }
}

void hdb_hnsw_free(hdb_hnsw *h) {
    delete h;
}

int hdb_hnsw_upsert(hdb_hnsw *h, size_t n, const int64_t *labels, const float *vecs, char *err,
                    size_t errlen) {
    if (h == NULL) return hdb_errf(err, errlen, HDB_EINVAL, "hnsw: engine must not be NULL");
    if (n == 0) return HDB_OK;
    if (labels == NULL || vecs == NULL)
        return hdb_errf(err, errlen, HDB_EINVAL, "hnsw: labels and vecs must not be NULL");
    const size_t dim = h->dim;
    if (n > SIZE_MAX / dim / sizeof(float))
        return hdb_errf(err, errlen, HDB_EINVAL, "hnsw: %zu vectors is too many", n);
    for (size_t i = 0; i < n; i++) { /* check everything before changing anything */
        if (labels[i] < 0)
            return hdb_errf(err, errlen, HDB_EINVAL, "hnsw: labels[%zu] = %lld is negative", i,
                            (long long)labels[i]);
        size_t bad;
        if (!hdb_all_finite(vecs + i * dim, dim, &bad))
            return hdb_errf(err, errlen, HDB_EINVAL, "hnsw: vecs[%zu][%zu] is not finite", i, bad);
    }
    try {
        std::lock_guard<std::mutex> wl(h->wmu);
        if (h->broken)
            return hdb_errf(err, errlen, HDB_EINTERNAL,
                            "hnsw: the graph was damaged by an earlier failure; reload it");
        if (!h->trained && hold_pending(h, n, labels, vecs)) return HDB_OK;
        /* Reserve the slots this batch may need at once (only writers touch label_lookup_). */
        Graph &g = *h->g;
        size_t fresh = 0, revived = 0;
        for (size_t i = 0; i < n; i++) {
            auto it = g.label_lookup_.find((labeltype)labels[i]);
            if (it == g.label_lookup_.end())
                fresh++;
            else if (is_deleted(g, it->second))
                revived++; /* takes its own slot off the free list */
        }
        size_t reusable = h->free_ids.size() - std::min(revived, h->free_ids.size());
        size_t need = g.cur_element_count + (fresh > reusable ? fresh - reusable : 0);
        if (need > MAX_ELEMENTS)
            return hdb_errf(err, errlen, HDB_ELIMIT, "hnsw: more than %zu vectors in one graph",
                            MAX_ELEMENTS);

        /* Updates, revivals and the fresh labels that take free slots run one at a time (in
         * call order); the fresh labels beyond the free slots go to addPoint, from several
         * threads when there are enough of them. Labels are distinct, so order is free. */
        std::vector<size_t> seq, par;
        const int nt = build_threads();
        if (nt > 1 && fresh > reusable && fresh - reusable >= PAR_MIN) {
            size_t taken = 0;
            for (size_t i = 0; i < n; i++) {
                if (g.label_lookup_.count((labeltype)labels[i]) || taken++ < reusable)
                    seq.push_back(i);
                else
                    par.push_back(i);
            }
        }
        const bool split = !par.empty();
        const size_t nseq = split ? seq.size() : n;

        std::vector<float> tmp;
        std::vector<unsigned char> code;
        size_t i = 0;
        while (i < nseq) {
            std::unique_lock<RwLock> xl(h->rw);
            grow(h, need); /* no-op once done; upsert_one grows too, should need be short */
            auto until =
                std::chrono::steady_clock::now() + std::chrono::microseconds(WRITE_SLICE_US);
            do {
                const size_t at = split ? seq[i] : i;
                upsert_one(h, (labeltype)labels[at], to_code(h, vecs + at * dim, tmp, code));
                i++;
            } while (i < nseq && std::chrono::steady_clock::now() < until);
        }
        for (size_t next = 0; next < par.size();) {
            std::unique_lock<RwLock> xl(h->rw);
            /* Exact room for what is left (a revived label whose slot an earlier fresh label
             * of the batch took was appended, beyond need): addPoint cannot grow. */
            grow(h, g.cur_element_count + (par.size() - next));
            insert_parallel(h, par, &next, labels, vecs, nt);
        }
        return HDB_OK;
    } catch (...) {
        return from_exception(err, errlen);
    }
}

size_t hdb_hnsw_remove(hdb_hnsw *h, size_t n, const int64_t *labels) {
    if (h == NULL || labels == NULL) return 0;
    size_t removed = 0;
    try {
        std::lock_guard<std::mutex> wl(h->wmu);
        Graph &g = *h->g;
        if (!h->trained) {
            std::unique_lock<RwLock> xl(h->rw);
            for (size_t i = 0; i < n; i++)
                removed += h->pending.erase(labels[i]);
            h->live.fetch_sub(removed, std::memory_order_relaxed);
            return removed;
        }
        for (size_t i = 0; i < n;) {
            std::unique_lock<RwLock> xl(h->rw);
            for (size_t end = std::min(n, i + REMOVE_SLICE); i < end; i++) {
                if (labels[i] < 0) continue;
                auto it = g.label_lookup_.find((labeltype)labels[i]);
                if (it == g.label_lookup_.end() || is_deleted(g, it->second)) continue;
                g.markDeletedInternal(it->second);
                free_push(h, it->second);
                h->live.fetch_sub(1, std::memory_order_relaxed);
                removed++;
            }
        }
    } catch (...) { /* only the locks can throw; the count stays right */
    }
    return removed;
}

int hdb_hnsw_search(hdb_hnsw *h, size_t nq, const float *queries, size_t k, uint32_t ef_search,
                    hdb_hit *out, char *err, size_t errlen) {
    return hdb_hnsw_search_accept(h, nq, queries, k, ef_search, nullptr, out, err, errlen);
}

int hdb_hnsw_search_accept(hdb_hnsw *h, size_t nq, const float *queries, size_t k,
                           uint32_t ef_search, const hdb_accept *acc, hdb_hit *out, char *err,
                           size_t errlen) {
    if (acc != nullptr && acc->fn == nullptr) acc = nullptr;
    if (h == NULL) return hdb_errf(err, errlen, HDB_EINVAL, "hnsw: engine must not be NULL");
    if (nq == 0 || k == 0) return HDB_OK;
    if (queries == NULL || out == NULL)
        return hdb_errf(err, errlen, HDB_EINVAL, "hnsw: queries and out must not be NULL");
    const size_t dim = h->dim;
    if (nq > SIZE_MAX / sizeof(hdb_hit) / k || nq > SIZE_MAX / sizeof(float) / dim)
        return hdb_errf(err, errlen, HDB_EINVAL, "hnsw: %zu x %zu results is too many", nq, k);
    for (size_t i = 0; i < nq; i++) {
        size_t bad;
        if (!hdb_all_finite(queries + i * dim, dim, &bad))
            return hdb_errf(err, errlen, HDB_EINVAL, "hnsw: queries[%zu][%zu] is not finite", i,
                            bad);
    }
    size_t ef = std::max<size_t>(ef_search ? ef_search : h->ef_search, k);
    try {
        switch (h->metric) {
        case HDB_METRIC_L2:
            search_all<DistL2>(h, nq, queries, k, ef, acc, out);
            break;
        case HDB_METRIC_IP:
            search_all<DistNegIP>(h, nq, queries, k, ef, acc, out);
            break;
        default:
            search_all<DistCos>(h, nq, queries, k, ef, acc, out);
            break;
        }
        return HDB_OK;
    } catch (...) {
        return from_exception(err, errlen);
    }
}

size_t hdb_hnsw_size(hdb_hnsw *h) {
    return h ? h->live.load(std::memory_order_relaxed) : 0;
}

void hdb_hnsw_mem(hdb_hnsw *h, hdb_hnsw_memory *out) {
    *out = hdb_hnsw_memory{0, 0};
    if (h == NULL) return;
    try {
        std::shared_lock<RwLock> rl(h->rw);
        const Graph &g = *h->g;
        const size_t n = g.cur_element_count;
        out->vector_bytes = (uint64_t)n * h->code_bytes +
                            (uint64_t)h->pending.size() * (h->dim * sizeof(float) + 64);
        /* Every allocated slot (links, label, code) less the codes of the slots in use, which
         * vector_bytes counts: what is left includes the codes of slots allocated ahead. */
        uint64_t graph = (uint64_t)g.max_elements_ * g.size_data_per_element_ -
                         (uint64_t)n * h->code_bytes;
        for (tableint i = 0; i < n; i++)
            graph += upper_bytes(g, i);
        graph += (uint64_t)g.max_elements_ * (sizeof(int) + sizeof(void *) + sizeof(std::mutex) +
                                              sizeof(uint32_t) + sizeof(hnswlib::vl_type));
        graph += (uint64_t)g.label_lookup_.size() * 32; /* an unordered_map node, about */
        out->graph_bytes = graph;
    } catch (...) { /* only the lock can throw: report nothing */
    }
}

bool hdb_hnsw_trained(hdb_hnsw *h) {
    return h != NULL && h->trained.load(std::memory_order_relaxed);
}

int hdb_hnsw_save(hdb_hnsw *h, const char *path, char *err, size_t errlen) {
    if (h == NULL || path == NULL)
        return hdb_errf(err, errlen, HDB_EINVAL, "hnsw: engine and path must not be NULL");
    try {
        std::lock_guard<std::mutex> wl(h->wmu); /* no mutation without wmu: a stable graph */
        if (h->broken)
            return hdb_errf(err, errlen, HDB_EINTERNAL,
                            "hnsw: the graph was damaged by an earlier failure; not saved");
        return save_locked(h, path, err, errlen);
    } catch (...) {
        return from_exception(err, errlen);
    }
}

int hdb_hnsw_load(hdb_hnsw **out, const hdb_hnsw_params *p, const char *path, char *err,
                  size_t errlen) {
    if (out == NULL) return hdb_errf(err, errlen, HDB_EINVAL, "hnsw: out must not be NULL");
    *out = NULL;
    try {
        hdb_distance_init();
        return load_impl(out, p, path, err, errlen);
    } catch (...) {
        return from_exception(err, errlen);
    }
}

void hdb_hnsw_set_build_threads(int n) {
    g_build_threads.store(n < 0 ? 0 : std::min(n, MAX_BUILD_THREADS), std::memory_order_relaxed);
}

int hdb_hnsw_build_threads(void) {
    return build_threads();
}

} // extern "C"
