"""Helpers of the ANN end-to-end tests (test_ann_*.py): index specs for every algorithm, sparse
vectors and their brute force, recall, the per-hit exactness check, waiting on index status and
on log lines, and the snapshot directories of indices.

Everything here builds on helpers.py (same conventions: plain Python attribute values, RPC
deadlines of helpers.TIMEOUT, float64 numpy references).
"""
from __future__ import annotations

import math
import re
import time
from pathlib import Path
from typing import List, Mapping, Optional, Sequence, Set, Tuple

import numpy as np

from hilbert.v1 import catalog_pb2, search_pb2, types_pb2

from helpers import (COSINE, METRIC_NAMES, SANITIZED, TIMEOUT, attrs, descending,
                     ds_ref, get_index, hit_dists, hit_ids, ix_ref, tolerance, true_distances,
                     vec)

C = catalog_pb2
T = types_pb2
JACCARD = C.METRIC_JACCARD
METRIC_NAMES = {**METRIC_NAMES, JACCARD: "JACCARD"}
READY = C.INDEX_STATE_READY
BUILDING = C.INDEX_STATE_BUILDING
FAILED = C.INDEX_STATE_FAILED
#: How much longer waits may take on the sanitizer build.
SLOW = 6.0 if SANITIZED else 1.0


# ------------------------------------------------------------------------ index specs

def ann_spec(name: str, source: str, metric: int, algo: str, splits: Sequence[str] = (),
             version: str = "1", source_version: str = "1", **params) -> C.IndexSpec:
    """An IndexSpec with algorithm `algo` ("flat", "hnsw", "faiss" or "sparse") and its
    parameters as keywords (hnsw: m, ef_construction, ef_search; faiss: factory, nprobe,
    train_size)."""
    spec = C.IndexSpec(name=name, version=version, data_source=ds_ref(source, source_version),
                       metric=metric, split_attributes=list(splits))
    if algo == "flat":
        spec.algorithm.flat.SetInParent()
    elif algo == "hnsw":
        spec.algorithm.hnsw.CopyFrom(C.HnswAlgorithm(**params))
    elif algo == "faiss":
        spec.algorithm.faiss.CopyFrom(C.FaissAlgorithm(**params))
    elif algo == "sparse":
        spec.algorithm.sparse.SetInParent()
    else:
        raise ValueError(algo)
    return spec


def create(server, spec: C.IndexSpec) -> C.IndexInfo:
    return server.catalog.CreateIndex(C.CreateIndexRequest(spec=spec), timeout=TIMEOUT)


# ------------------------------------------------------------------------ sparse vectors

def sparse_vec(indices: Sequence[int], values: Sequence[float]) -> T.Vector:
    return T.Vector(sparse=T.SparseVector(indices=[int(i) for i in indices],
                                          values=[float(v) for v in values]))


def sparse_point(indices, values, attributes: Mapping[str, object]) -> T.DataPoint:
    p = T.DataPoint(attributes=attrs(attributes))
    p.vector.CopyFrom(sparse_vec(indices, values))
    return p


def sparse_of(v: T.Vector) -> Tuple[List[int], np.ndarray]:
    assert v.WhichOneof("kind") == "sparse", v
    return list(v.sparse.indices), np.asarray(v.sparse.values, dtype=np.float32)


def sparse_distance(metric: int, q: Tuple[Sequence[int], Sequence[float]],
                    x: Tuple[Sequence[int], Sequence[float]]) -> float:
    """The API distance between two sparse vectors, in float64: COSINE 1 - cos (1 when either
    has no non-zero value), JACCARD 1 - |Q n X| / |Q u X| over the index sets."""
    qi, qv = q
    xi, xv = x
    if metric == JACCARD:
        a, b = set(qi), set(xi)
        union = len(a | b)
        return 1.0 if union == 0 else 1.0 - len(a & b) / union
    assert metric == COSINE
    qd = {int(i): float(v) for i, v in zip(qi, qv)}
    dot = sum(qd.get(int(i), 0.0) * float(v) for i, v in zip(xi, xv))
    qq = sum(float(v) * float(v) for v in qv)
    xx = sum(float(v) * float(v) for v in xv)
    if qq == 0 or xx == 0:
        return 1.0
    return 1.0 - dot / (math.sqrt(qq) * math.sqrt(xx))


def sparse_brute_force(metric: int, q, model: Mapping[int, tuple], order_key: Mapping[int, int],
                       k: int) -> List[Tuple[int, float]]:
    """Top-k (id, distance) of `model` ({id: (indices, values)}) for query q, ties broken by
    order_key[id] (the server breaks ties by its internal point id, i.e. by first upload)."""
    scored = [(sparse_distance(metric, q, v), order_key[i], i) for i, v in model.items()]
    scored.sort()
    return [(i, d) for d, _, i in scored[:k]]


# ------------------------------------------------------------------------ search

def search_req(index: str, queries, k: int, min_seq: int = 0, retrieve_vectors: bool = False,
               split_filter: Optional[Mapping] = None, ef_search: int = 0, nprobe: int = 0,
               version: str = "1", explain: bool = False) -> search_pb2.SearchRequest:
    """A SearchRequest; `queries` is a 2-d array of dense queries or a list of Vector."""
    if isinstance(queries, np.ndarray) or (len(queries) and not isinstance(queries[0], T.Vector)):
        qv = [vec(row) for row in np.atleast_2d(np.asarray(queries, dtype=np.float32))]
    else:
        qv = list(queries)
    req = search_pb2.SearchRequest(index=ix_ref(index, version), k=k, query_vectors=qv,
                                   min_seq=min_seq, retrieve_vectors=retrieve_vectors,
                                   split_filter=attrs(split_filter or {}), explain=explain)
    if ef_search or nprobe:
        req.params.CopyFrom(search_pb2.SearchParams(ef_search=ef_search, nprobe=nprobe))
    return req


def run_search(server, index: str, queries, k: int, min_seq: Optional[int] = None,
               timeout: float = TIMEOUT, **kw) -> search_pb2.SearchResponse:
    """Search; min_seq None = the source's last seq (read-your-writes, as helpers.search)."""
    if min_seq is None:
        min_seq = get_index(server, index, kw.get("version", "1")).status.source_last_seq
    return server.search.Search(search_req(index, queries, k, min_seq=min_seq, **kw),
                                timeout=timeout)


# ------------------------------------------------------------------------ checks

def true_topk_threshold(base: np.ndarray, queries: np.ndarray, metric: int, k: int
                        ) -> Tuple[np.ndarray, np.ndarray]:
    """(all true distances [nq, n], the true k-th best distance per query)."""
    d = true_distances(base, queries, metric)
    kk = min(k, d.shape[1])
    if descending(metric):
        kth = -np.partition(-d, kk - 1, axis=1)[:, kk - 1]
    else:
        kth = np.partition(d, kk - 1, axis=1)[:, kk - 1]
    return d, kth


def recall(response: search_pb2.SearchResponse, base: np.ndarray, base_ids: np.ndarray,
           queries: np.ndarray, metric: int, k: int) -> float:
    """Recall@k against float64 brute force, tie-aware: a returned id counts when its true
    distance is at least as good as the true k-th best (within helpers.tolerance), so exact
    duplicates in the data cannot lower the recall of an exact answer."""
    d, kth = true_topk_threshold(base, queries, metric, k)
    row = {int(i): r for r, i in enumerate(base_ids)}
    kk = min(k, len(base))
    good = 0
    for qi, res in enumerate(response.results):
        ids = hit_ids(res)
        assert len(set(ids)) == len(ids), f"query {qi}: duplicate ids {ids}"
        for i in ids[:kk]:
            td = d[qi, row[i]]
            tol = tolerance(metric, np.array([kth[qi]]))[0]
            if (td >= kth[qi] - tol) if descending(metric) else (td <= kth[qi] + tol):
                good += 1
    return good / (kk * len(response.results))


def check_hits_exact(response: search_pb2.SearchResponse, queries: np.ndarray, metric: int,
                     model: Mapping[int, np.ndarray], k: int, expect_n: Optional[int] = None,
                     ctx: str = "") -> None:
    """Every hit is a live point of `model` ({id: float32 vector}); its returned vector (the
    search must ask for retrieve_vectors) equals the model's bit for bit; its distance equals
    the float64 distance from that vector (helpers.tolerance); hits are best first, ids
    distinct, and there are min(k, len(model)) of them (or expect_n)."""
    queries = np.atleast_2d(queries)
    want_n = min(k, len(model)) if expect_n is None else expect_n
    assert len(response.results) == len(queries)
    sign = -1.0 if descending(metric) else 1.0
    for qi, res in enumerate(response.results):
        c = f"{ctx} {METRIC_NAMES[metric]} query {qi}"
        ids = hit_ids(res)
        assert len(ids) == want_n, f"{c}: {len(ids)} hits, expected {want_n}: {ids[:20]}..."
        assert len(set(ids)) == len(ids), f"{c}: duplicate ids {ids[:50]}"
        dead = [i for i in ids if i not in model]
        assert not dead, f"{c}: ids {dead[:20]} are deleted (or never existed) but were returned"
        if not ids:
            continue
        assert all(h.HasField("vector") for h in res.hits), f"{c}: hits without vectors"
        got_v = np.array([h.vector.dense.values for h in res.hits], dtype=np.float32)
        want_v = np.stack([model[i] for i in ids])
        stale = np.flatnonzero((got_v != want_v).any(axis=1))
        assert not len(stale), (f"{c}: ids {[ids[r] for r in stale[:10]]}: returned vector is "
                                f"not the current one (stale or wrong row)")
        got_d = hit_dists(res)
        td = true_distances(got_v, queries[qi], metric)[0]
        bad = np.flatnonzero(np.abs(got_d - td) > tolerance(metric, td))
        assert not len(bad), (f"{c}: ids {[ids[r] for r in bad[:10]]}: reported distances "
                              f"{got_d[bad][:10]}, exact distances of their vectors {td[bad][:10]}")
        steps = sign * np.diff(got_d)
        assert (steps >= -tolerance(metric, got_d[1:])).all(), f"{c}: not best first: {got_d}"


# ------------------------------------------------------------------------ waiting

def wait_status(server, index: str, pred, what: str, timeout: float = 60.0,
                version: str = "1") -> C.IndexInfo:
    """Polls GetIndex until pred(status) holds (timeout scaled for the sanitizer build)."""
    deadline = time.monotonic() + timeout * SLOW
    while True:
        info = get_index(server, index, version)
        if pred(info.status):
            return info
        assert info.status.state != FAILED, f"{index} FAILED: {info.status.detail}"
        assert time.monotonic() < deadline, f"{index}: timed out waiting for {what}: {info}"
        time.sleep(0.01)


def wait_log(server, pattern: str, timeout: float = 60.0) -> re.Match:
    """Waits until the log since the last start matches `pattern` (a regex)."""
    deadline = time.monotonic() + timeout * SLOW
    rx = re.compile(pattern)
    while True:
        m = rx.search(server.log_since_start())
        if m:
            return m
        assert time.monotonic() < deadline, (
            f"log never matched {pattern!r}:\n{server.log_since_start()[-3000:]}")
        time.sleep(0.02)


# ------------------------------------------------------------------------ snapshot dirs

def indices_root(server) -> Path:
    return Path(server.data_dir) / "indices"


def snapshot_dirs(server) -> Set[str]:
    root = indices_root(server)
    return {p.name for p in root.iterdir() if p.is_dir()} if root.exists() else set()


def new_snapshot_dir(server, before: Set[str], index: str) -> Path:
    """The one directory under indices/ that appeared since `before` once `index` has written
    a snapshot (snapshot_seq > 0): its snapshot directory."""
    wait_status(server, index, lambda st: st.snapshot_seq > 0, "a snapshot")
    new = snapshot_dirs(server) - before
    assert len(new) == 1, f"expected one new snapshot directory for {index}, found {new}"
    d = indices_root(server) / new.pop()
    assert (d / "MANIFEST").exists(), list(d.iterdir())
    assert re.fullmatch(r"\d+", d.name), d.name
    return d


def eng_files(d: Path) -> List[Path]:
    return sorted(p for p in d.iterdir() if p.suffix == ".eng")


def write_config(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


# ------------------------------------------------------------------------ sparse brute force

class SparseModel:
    """Sparse vectors {id: (indices, values)} with a vectorised brute force (numpy only): the
    distances of a query to every vector, computed as the server does (COSINE in float64 then
    rounded to float32; JACCARD as 1.0f - (float)inter / (float)union)."""

    def __init__(self, vectors: Mapping[int, tuple]):
        self.ids = np.array(sorted(vectors), dtype=np.int64)
        rows, cols, vals = [], [], []
        for r, i in enumerate(self.ids):
            idx, v = vectors[int(i)]
            rows.extend([r] * len(idx))
            cols.extend(idx)
            vals.extend(v)
        self.rows = np.array(rows, dtype=np.int64)
        self.cols = np.array(cols, dtype=np.int64)
        self.vals = np.array(vals, dtype=np.float32).astype(np.float64)
        n = len(self.ids)
        self.nnz = np.bincount(self.rows, minlength=n).astype(np.int64)
        self.sq = np.bincount(self.rows, weights=self.vals * self.vals, minlength=n)

    def distances(self, metric: int, q: Tuple[Sequence[int], Sequence[float]]) -> np.ndarray:
        qi = np.asarray(q[0], dtype=np.int64)
        qv = np.asarray(q[1], dtype=np.float32).astype(np.float64)
        n = len(self.ids)
        pos = np.searchsorted(qi, self.cols)
        pos = np.minimum(pos, max(len(qi) - 1, 0))
        hit = (qi[pos] == self.cols) if len(qi) else np.zeros(len(self.cols), bool)
        inter = np.bincount(self.rows[hit], minlength=n)
        if metric == JACCARD:
            union = (len(qi) + self.nnz - inter).astype(np.float32)
            with np.errstate(divide="ignore", invalid="ignore"):
                d = np.float32(1.0) - inter.astype(np.float32) / union
            return np.where(union == 0, np.float32(1.0), d).astype(np.float64)
        dot = np.bincount(self.rows[hit], weights=self.vals[hit] * qv[pos[hit]], minlength=n)
        qq = float((qv * qv).sum())
        with np.errstate(divide="ignore", invalid="ignore"):
            d = 1.0 - dot / (math.sqrt(qq) * np.sqrt(self.sq))
        d = np.where((self.sq == 0) | (qq == 0), 1.0, d)
        return d.astype(np.float32).astype(np.float64)


def check_sparse_knn(response: search_pb2.SearchResponse, queries: Sequence[tuple],
                     metric: int, model: Mapping[int, tuple], k: int,
                     order_key: Optional[Mapping[int, int]] = None, tol: float = 1e-6,
                     ctx: str = "") -> None:
    """Checks a sparse search against the brute force of `model` ({id: (indices, values)}):
    min(k, n) hits; rank by rank the distances equal the true top-k; every returned id is live
    and its distance is its true distance; every point better than the k-th by more than tol is
    returned; ids differ from the brute force's only within distance ties.

    Ties, with order_key ({id: tie rank}, i.e. first-upload order): hits with equal distances
    come in order_key order. JACCARD distances are exact rationals on both sides, so the ids
    must equal the brute force's exactly. COSINE distances of different vectors can tie in
    real arithmetic yet differ in their last float bit depending on how they are computed, so
    only the exact ties at distance 1 (no common non-zero index) are checked: the hits at 1 are
    the first-uploaded of all points at 1."""
    sm = SparseModel(model)
    kk = min(k, len(sm.ids))
    row = {int(i): r for r, i in enumerate(sm.ids)}
    assert len(response.results) == len(queries)
    for qi, (res, q) in enumerate(zip(response.results, queries)):
        c = f"{ctx} {METRIC_NAMES[metric]} query {qi}"
        d = sm.distances(metric, q)
        tie = np.array([order_key[int(i)] for i in sm.ids]) if order_key else sm.ids
        order = np.lexsort((tie, d))[:kk]
        want_ids = [int(sm.ids[r]) for r in order]
        want_d = d[order]
        ids = hit_ids(res)
        got_d = hit_dists(res)
        assert len(ids) == kk, f"{c}: {len(ids)} hits, expected {kk}"
        assert len(set(ids)) == kk, f"{c}: duplicate ids {ids}"
        dead = [i for i in ids if i not in row]
        assert not dead, f"{c}: ids {dead} are not live points"
        assert np.allclose(got_d, want_d, rtol=0, atol=tol), (
            f"{c}: distances {got_d} differ from brute force {want_d}")
        true_d = d[[row[i] for i in ids]]
        assert np.allclose(got_d, true_d, rtol=0, atol=tol), (
            f"{c}: ids {ids}: reported {got_d}, true {true_d}")
        if kk:
            must = set(int(sm.ids[r]) for r in np.flatnonzero(d < want_d[-1] - tol))
            assert must <= set(ids), f"{c}: ids {sorted(must - set(ids))} missing"
        if order_key is None:
            continue
        for a in range(len(ids) - 1):
            if got_d[a] == got_d[a + 1]:
                assert order_key[ids[a]] < order_key[ids[a + 1]], (
                    f"{c}: tied hits {ids[a]}, {ids[a + 1]} out of upload order")
        if metric == JACCARD:
            assert ids == want_ids, f"{c}: ids {ids}, brute force {want_ids} (distances {want_d})"
        else:
            ones = [i for i, gd in zip(ids, got_d) if gd == 1.0]
            all_ones = sorted((int(i) for i in sm.ids[d == 1.0]), key=lambda i: order_key[i])
            assert ones == all_ones[:len(ones)], (
                f"{c}: hits at distance 1 {ones[:10]}, first-uploaded points at 1 "
                f"{all_ones[:10]}")
