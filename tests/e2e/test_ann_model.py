"""Model-based test: random rounds of uploads, replacements (new vectors), deletes, re-adds after
a delete, tombstones of unknown ids and several changes of one id inside one upload, applied to
a dense and a sparse data source, with a Python model of what must be live.

Dense source `d` (24-d Gaussian vectors, permanent id and grp = id % 3) has:
  hnsw        HNSW L2 (m 16, ef_construction 100)
  hnsw-grp    HNSW COSINE split by grp
  ivf         FAISS IVF16,Flat, train_size 256 (trained from the first round on), nprobe 16 =
              every list, so its answer must be exact
  fhnsw       FAISS HNSW16,Flat, which cannot remove: replaced and deleted vectors are hidden
              and the index is rebuilt when too many are
  flat        exact L2
Sparse source `sp` (dimension 3000, most indices from a 400-word vocabulary so that vectors
overlap; some empty vectors, some negative and zero values) has exact sparse indices under
COSINE and JACCARD.

After every round, each index is searched with min_seq = the source's last seq: no deleted id
ever comes back, every hit's returned vector is the model's current vector for that id (never
a stale one) and its distance is exact; flat, IVF (all lists) and sparse results equal the
brute force of the model; HNSW recall against the model stays >= 0.9 (FAISS HNSW >= 0.8);
status.size equals the number of live points.
"""
import numpy as np

from ann_helpers import (JACCARD, ann_spec, check_hits_exact, check_sparse_knn, create, recall,
                         run_search, sparse_point, sparse_vec)
from helpers import (COSINE, INT64, L2, C, check_knn, create_source, get_source, point,
                     source_spec, tombstone, upload, wait_ready)

DIM = 24
SPARSE_DIM = 3000
VOCAB = 400
ROUNDS = 6
K = 10
NQ = 30

DENSE = {
    "hnsw": (L2, "hnsw", (), dict(m=16, ef_construction=100)),
    "hnsw-grp": (COSINE, "hnsw", ("grp",), dict(m=16, ef_construction=100)),
    "ivf": (L2, "faiss", (), dict(factory="IVF16,Flat", train_size=256, nprobe=16)),
    "fhnsw": (L2, "faiss", (), dict(factory="HNSW16,Flat")),
    "flat": (L2, "flat", (), {}),
}
SPARSE = {"sp-cos": COSINE, "sp-jac": JACCARD}


class Model:
    """What the server must hold: live dense and sparse vectors per id, and each live id's
    internal order (the seq of the upload that created it: ties in sparse results go by it)."""

    def __init__(self):
        self.dense = {}
        self.sparse = {}
        self.created = {}
        self.deleted = set()
        self.next_id = 0


def random_sparse(rng):
    n = int(rng.integers(0, 25)) if rng.random() > 0.03 else 0
    idx = set(rng.choice(VOCAB, size=min(n, VOCAB), replace=False).tolist())
    if n and rng.random() < 0.2:
        idx.add(int(rng.integers(VOCAB, SPARSE_DIM)))
    idx = sorted(idx)
    vals = rng.standard_normal(len(idx)).astype(np.float32)
    vals[rng.random(len(idx)) < 0.05] = 0.0
    return idx, vals


def round_ops(rng, m: Model, first: bool):
    """A list of (id, kind) with kind "up" (new vector) or "del", in commit order."""
    live = sorted(m.dense)
    ops = []
    n_new = 600 if first else int(rng.integers(40, 120))
    for _ in range(n_new):
        ops.append((m.next_id, "up"))
        m.next_id += 1
    if not first:
        for i in rng.choice(live, size=min(80, len(live)), replace=False):
            ops.append((int(i), "up"))  # replacement
        for i in rng.choice(live, size=min(60, len(live)), replace=False):
            ops.append((int(i), "del"))
        dead = sorted(m.deleted)
        for i in rng.choice(dead, size=min(40, len(dead)), replace=False) if dead else []:
            ops.append((int(i), "up"))  # re-add
        for _ in range(10):
            ops.append((int(rng.integers(10 ** 6, 2 * 10 ** 6)), "del"))  # never existed
    order = rng.permutation(len(ops))
    ops = [ops[i] for i in order]
    if not first:
        # Several changes of one id next to each other, so that they usually share an upload
        # (and always an apply batch): replace then delete, delete then re-add.
        for i in rng.choice(live, size=10, replace=False):
            ops += [(int(i), "up"), (int(i), "del")]
        for i in rng.choice(live, size=10, replace=False):
            ops += [(int(i), "del"), (int(i), "up"), (int(i), "up")]
    return ops


def apply_round(s, rng, m: Model, ops):
    """Uploads ops in random-sized chunks to both sources and updates the model."""
    last = {}
    pos = 0
    while pos < len(ops):
        chunk = ops[pos:pos + int(rng.integers(1, 120))]
        dense_pts, sparse_pts, changes = [], [], []
        for i, kind in chunk:
            if kind == "del":
                dense_pts.append(tombstone({"id": i}))
                sparse_pts.append(tombstone({"id": i}))
                changes.append((i, None, None))
            else:
                v = rng.standard_normal(DIM).astype(np.float32)
                sv = random_sparse(rng)
                dense_pts.append(point(v, {"id": i, "grp": i % 3, "round": len(m.created)}))
                sparse_pts.append(sparse_point(sv[0], sv[1], {"id": i}))
                changes.append((i, v, sv))
        rd = upload(s, "d", dense_pts)
        rs = upload(s, "sp", sparse_pts)
        for n, (i, v, sv) in enumerate(changes):
            if v is None:
                if i in m.dense:
                    del m.dense[i], m.sparse[i], m.created[i]
                    m.deleted.add(i)
            else:
                if i not in m.dense:
                    m.created[i] = rs.first_seq + n
                m.dense[i], m.sparse[i] = v, sv
                m.deleted.discard(i)
        last = {"d": rd.last_seq, "sp": rs.last_seq}
        pos += len(chunk)
    return last


def check_round(s, rng, m: Model, last, rnd):
    q = rng.standard_normal((NQ, DIM)).astype(np.float32)
    ids = np.array(sorted(m.dense))
    base = np.stack([m.dense[i] for i in ids])
    assert get_source(s, "d").point_count == len(ids)
    assert get_source(s, "sp").point_count == len(ids)
    for name, (metric, _, splits, _) in DENSE.items():
        ctx = f"round {rnd} {name}"
        r = run_search(s, name, q, K, min_seq=last["d"], retrieve_vectors=True)
        assert r.applied_seq >= last["d"]
        check_hits_exact(r, q, metric, m.dense, K, ctx=ctx)
        if name in ("flat", "ivf"):
            check_knn(r, base, ids, q, metric, K)
        elif name == "hnsw-grp":
            sub = np.array([i for i in ids if i % 3 == 1])
            model_sub = {int(i): m.dense[int(i)] for i in sub}
            r1 = run_search(s, name, q, K, min_seq=last["d"], retrieve_vectors=True,
                            split_filter={"grp": 1})
            check_hits_exact(r1, q, metric, model_sub, K, ctx=ctx + " grp=1")
            assert recall(r1, base[np.isin(ids, sub)], sub, q, metric, K) >= 0.9, ctx
            assert recall(r, base, ids, q, metric, K) >= 0.9, ctx
        else:
            rec = recall(r, base, ids, q, metric, K)
            print(f"{ctx}: recall {rec:.3f} ({len(ids)} live)")
            assert rec >= (0.9 if name == "hnsw" else 0.8), f"{ctx}: recall {rec}"
        st = wait_ready(s, name).status
        assert st.size == len(ids), (ctx, st)
        if splits:
            sizes = {sp.split_values["grp"].int64_value: sp.size for sp in st.splits}
            want = {g: int((ids % 3 == g).sum()) for g in range(3)}
            # A split whose points were all deleted may stay listed with size 0.
            assert {g: n for g, n in sizes.items() if n} == {g: n for g, n in want.items() if n}
    queries = []
    while len(queries) < NQ:
        idx, vals = random_sparse(rng)
        if len(idx) and np.any(vals != 0):
            queries.append((idx, vals))
    qv = [sparse_vec(i, v) for i, v in queries]
    for name, metric in SPARSE.items():
        r = run_search(s, name, qv, K, min_seq=last["sp"], retrieve_vectors=True)
        check_sparse_knn(r, queries, metric, m.sparse, K, order_key=m.created,
                         ctx=f"round {rnd} {name}")
        for h in r.results[0].hits:
            i = h.attributes["id"].int64_value
            assert list(h.vector.sparse.indices) == list(m.sparse[i][0])
            assert np.array_equal(np.asarray(h.vector.sparse.values, np.float32), m.sparse[i][1])
        assert wait_ready(s, name).status.size == len(ids)


def test_random_rounds_against_a_model(server):
    s = server
    rng = np.random.default_rng(20261121)
    create_source(s, source_spec("d", DIM, [("id", INT64), ("grp", INT64)], ["id"]))
    create_source(s, source_spec("sp", SPARSE_DIM, [("id", INT64)], ["id"],
                                 vector_kind=C.VECTOR_KIND_SPARSE))
    for name, (metric, algo, splits, params) in DENSE.items():
        create(s, ann_spec(name, "d", metric, algo, splits=splits, **params))
    for name, metric in SPARSE.items():
        create(s, ann_spec(name, "sp", metric, "sparse"))
    m = Model()
    for rnd in range(ROUNDS):
        ops = round_ops(rng, m, rnd == 0)
        last = apply_round(s, rng, m, ops)
        check_round(s, rng, m, last, rnd)
    assert len(m.deleted) > 100 and len(m.dense) > 500, (len(m.deleted), len(m.dense))
    # The same answers after a restart from the snapshots written at the clean stop.
    s.restart()
    last = {"d": get_source(s, "d").last_seq, "sp": get_source(s, "sp").last_seq}
    check_round(s, rng, m, last, "after restart")
    log = s.log_since_start()
    for name in list(DENSE) + list(SPARSE):
        assert f"{name}@1: loaded snapshot at seq" in log, log[-3000:]
