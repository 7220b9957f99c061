"""Builders and checks shared by the end-to-end tests.

Attribute values are written as plain Python values and converted by type:
  bool -> bool_value, int -> int64_value, float -> float64_value, str -> string_value,
  bytes -> bytes_value, Timestamp(us) -> timestamp_micros.
(bool is tested before int, since bool is a subclass of int.)
"""
from __future__ import annotations

import contextlib
import functools
import os
from dataclasses import dataclass
from typing import Dict, Iterable, Iterator, List, Mapping, Optional, Sequence, Tuple

import time

import grpc
import numpy as np

from hilbert.v1 import catalog_pb2, points_pb2, search_pb2, types_pb2
from hdb_grpc_health.v1 import health_pb2

SANITIZED = bool(os.environ.get("HDB_SANITIZE"))
#: Deadline of every RPC the tests make (generous: the ASan build is several times slower).
TIMEOUT = 300.0 if SANITIZED else 60.0

T = types_pb2
C = catalog_pb2
STRING = T.ATTRIBUTE_TYPE_STRING
INT64 = T.ATTRIBUTE_TYPE_INT64
FLOAT64 = T.ATTRIBUTE_TYPE_FLOAT64
BOOL = T.ATTRIBUTE_TYPE_BOOL
BYTES = T.ATTRIBUTE_TYPE_BYTES
TIMESTAMP = T.ATTRIBUTE_TYPE_TIMESTAMP
UNSPECIFIED = T.ATTRIBUTE_TYPE_UNSPECIFIED

L2 = C.METRIC_L2
IP = C.METRIC_INNER_PRODUCT
COSINE = C.METRIC_COSINE
METRIC_NAMES = {L2: "L2", IP: "INNER_PRODUCT", COSINE: "COSINE"}


@dataclass(frozen=True)
class Timestamp:
    micros: int


# ------------------------------------------------------------------------ attribute values

def attr(value) -> types_pb2.AttributeValue:
    """One Python value -> AttributeValue (see the module docstring for the mapping)."""
    if isinstance(value, types_pb2.AttributeValue):
        return value
    if isinstance(value, bool) or isinstance(value, np.bool_):
        return T.AttributeValue(bool_value=bool(value))
    if isinstance(value, (int, np.integer)):
        return T.AttributeValue(int64_value=int(value))
    if isinstance(value, (float, np.floating)):
        return T.AttributeValue(float64_value=float(value))
    if isinstance(value, str):
        return T.AttributeValue(string_value=value)
    if isinstance(value, (bytes, bytearray)):
        return T.AttributeValue(bytes_value=bytes(value))
    if isinstance(value, Timestamp):
        return T.AttributeValue(timestamp_micros=value.micros)
    raise TypeError(f"no attribute type for {value!r}")


def attrs(d: Mapping[str, object]) -> Dict[str, types_pb2.AttributeValue]:
    return {k: attr(v) for k, v in d.items()}


def value_of(av: types_pb2.AttributeValue):
    """AttributeValue -> Python value (inverse of attr); None when no member is set."""
    which = av.WhichOneof("value")
    if which is None:
        return None
    if which == "timestamp_micros":
        return Timestamp(av.timestamp_micros)
    return getattr(av, which)


def values_of(m) -> Dict[str, object]:
    """A map<string, AttributeValue> -> {name: Python value}."""
    return {k: value_of(v) for k, v in m.items()}


# ------------------------------------------------------------------------ vectors and points

def vec(values) -> types_pb2.Vector:
    return T.Vector(dense=T.DenseVector(values=np.asarray(values, dtype=np.float32).tolist()))


def vec_of(v: types_pb2.Vector) -> np.ndarray:
    assert v.WhichOneof("kind") == "dense", v
    return np.asarray(v.dense.values, dtype=np.float32)


def point(vector, attributes: Mapping[str, object], deleted: bool = False) -> types_pb2.DataPoint:
    p = T.DataPoint(attributes=attrs(attributes), is_deleted=deleted)
    if vector is not None:
        p.vector.CopyFrom(vec(vector))
    return p


def tombstone(id_attributes: Mapping[str, object]) -> types_pb2.DataPoint:
    return T.DataPoint(attributes=attrs(id_attributes), is_deleted=True)


# ------------------------------------------------------------------------ catalog specs

def ds_ref(name: str, version: str = "1") -> types_pb2.DataSourceRef:
    return T.DataSourceRef(name=name, version=version)


def ix_ref(name: str, version: str = "1") -> types_pb2.IndexRef:
    return T.IndexRef(name=name, version=version)


def source_spec(name: str, dim: int, permanent: Sequence[Tuple[str, int]] = (("id", INT64),),
                ids: Sequence[str] = ("id",), version: str = "1",
                vector_kind: int = C.VECTOR_KIND_DENSE) -> catalog_pb2.DataSourceSpec:
    return C.DataSourceSpec(
        name=name, version=version, vector_kind=vector_kind, dimension=dim,
        permanent_attributes=[C.AttributeSpec(name=n, type=t) for n, t in permanent],
        id_attributes=list(ids))


def index_spec(name: str, source: str, metric: int = L2, splits: Sequence[str] = (),
               version: str = "1", source_version: str = "1",
               flat: bool = True) -> catalog_pb2.IndexSpec:
    spec = C.IndexSpec(name=name, version=version, data_source=ds_ref(source, source_version),
                       metric=metric, split_attributes=list(splits))
    if flat:
        spec.algorithm.flat.SetInParent()
    return spec


def create_source(server, spec: catalog_pb2.DataSourceSpec) -> catalog_pb2.DataSourceInfo:
    return server.catalog.CreateDataSource(C.CreateDataSourceRequest(spec=spec), timeout=TIMEOUT)


def create_index(server, spec: catalog_pb2.IndexSpec) -> catalog_pb2.IndexInfo:
    return server.catalog.CreateIndex(C.CreateIndexRequest(spec=spec), timeout=TIMEOUT)


def get_source(server, name: str, version: str = "1") -> catalog_pb2.DataSourceInfo:
    return server.catalog.GetDataSource(C.GetDataSourceRequest(data_source=ds_ref(name, version)),
                                        timeout=TIMEOUT)


def get_index(server, name: str, version: str = "1") -> catalog_pb2.IndexInfo:
    return server.catalog.GetIndex(C.GetIndexRequest(index=ix_ref(name, version)),
                                   timeout=TIMEOUT)


def drop_source(server, name: str, version: str = "1"):
    return server.catalog.DropDataSource(
        C.DropDataSourceRequest(data_source=ds_ref(name, version)), timeout=TIMEOUT)


def drop_index(server, name: str, version: str = "1"):
    return server.catalog.DropIndex(C.DropIndexRequest(index=ix_ref(name, version)),
                                    timeout=TIMEOUT)


# ------------------------------------------------------------------------ points and search

def upload(server, source: str, points: Sequence[types_pb2.DataPoint], version: str = "1"
           ) -> points_pb2.UploadResponse:
    return server.points.Upload(points_pb2.UploadRequest(data_source=ds_ref(source, version),
                                                         points=list(points)), timeout=TIMEOUT)


def upload_batches(server, source: str, points: Sequence[types_pb2.DataPoint], batch: int,
                   version: str = "1") -> List[points_pb2.UploadResponse]:
    out = []
    for i in range(0, len(points), batch):
        chunk = points[i:i + batch]
        r = upload(server, source, chunk, version)
        assert r.last_seq - r.first_seq + 1 == len(chunk), r
        out.append(r)
    return out


def get_points(server, source: str, ids: Sequence[Mapping[str, object]], version: str = "1"
               ) -> points_pb2.GetPointsResponse:
    req = points_pb2.GetPointsRequest(
        data_source=ds_ref(source, version),
        ids=[points_pb2.PointId(id_attributes=attrs(i)) for i in ids])
    return server.points.Get(req, timeout=TIMEOUT)


def search(server, index: str, queries, k: int, split_filter: Optional[Mapping] = None,
           retrieve_vectors: bool = False, version: str = "1", min_seq: Optional[int] = None
           ) -> search_pb2.SearchResponse:
    """Searches like a client that wants its own writes: unless min_seq is given, the search
    waits until the index has applied everything its data source has committed (indices follow
    their source asynchronously)."""
    if min_seq is None:
        min_seq = get_index(server, index, version).status.source_last_seq
    q = np.atleast_2d(np.asarray(queries, dtype=np.float32))
    req = search_pb2.SearchRequest(index=ix_ref(index, version), k=k,
                                   query_vectors=[vec(row) for row in q],
                                   split_filter=attrs(split_filter or {}),
                                   retrieve_vectors=retrieve_vectors, min_seq=min_seq)
    return server.search.Search(req, timeout=TIMEOUT)


def wait_ready(server, index: str, version: str = "1", timeout: float = 60.0
               ) -> catalog_pb2.IndexInfo:
    """Polls GetIndex until the index is READY and has applied its source's last seq."""
    deadline = time.monotonic() + timeout
    while True:
        info = get_index(server, index, version)
        st = info.status
        if st.state == catalog_pb2.INDEX_STATE_READY and st.applied_seq == st.source_last_seq:
            return info
        assert st.state != catalog_pb2.INDEX_STATE_FAILED, st.detail
        assert time.monotonic() < deadline, f"index {index} not ready: {st}"
        time.sleep(0.01)


def hit_ids(result: search_pb2.SearchResult, key: str = "id") -> List[int]:
    return [h.attributes[key].int64_value for h in result.hits]


def hit_dists(result: search_pb2.SearchResult) -> np.ndarray:
    return np.array([h.distance for h in result.hits], dtype=np.float64)


def assert_serving(server) -> None:
    """The process is alive and answers a health check."""
    assert server.alive(), server.log_since_start()[-4000:]
    resp = server.health.Check(health_pb2.HealthCheckRequest(), timeout=TIMEOUT)
    assert resp.status == health_pb2.HealthCheckResponse.SERVING


# ------------------------------------------------------------------------ status checks

class StatusCheck:
    def __init__(self):
        self.error: Optional[grpc.RpcError] = None

    @property
    def details(self) -> str:
        return self.error.details() if self.error is not None else ""


@contextlib.contextmanager
def expect_status(code: grpc.StatusCode, *substrings: str) -> Iterator[StatusCheck]:
    """Asserts that the block raises grpc.RpcError with `code` and that its details contain
    every one of `substrings` (the field name, and whatever else identifies the problem)."""
    check = StatusCheck()
    try:
        yield check
    except grpc.RpcError as e:  # noqa: PERF203
        check.error = e
        details = e.details() or ""
        assert e.code() == code, f"expected {code}, got {e.code()}: {details!r}"
        for s in substrings:
            assert s in details, f"{s!r} not in details {details!r} ({code})"
    else:
        raise AssertionError(f"expected an RPC error {code} mentioning {substrings}, "
                             f"but the call succeeded")


# ------------------------------------------------------------------------ datasets

@functools.lru_cache(maxsize=None)
def fmnist(split: str, limit: int) -> Tuple[np.ndarray, np.ndarray]:
    """Fashion-MNIST float32 vectors (read-only) and int64 labels, cached per process."""
    from hilbertdb.datasets import fashion_mnist_vectors
    x, y = fashion_mnist_vectors(split, limit)
    x = np.ascontiguousarray(x, dtype=np.float32)
    y = y.astype(np.int64)
    x.setflags(write=False)
    y.setflags(write=False)
    return x, y


# ------------------------------------------------------------------------ brute force

_F64_CACHE: Dict[int, tuple] = {}


def _f64(base: np.ndarray):
    """(float64 copy, squared norms, norms) of base, cached for read-only arrays (the cached
    Fashion-MNIST slices), which are compared with many queries."""
    hit = _F64_CACHE.get(id(base))
    if hit is not None and hit[0] is base:
        return hit[1:]
    b = np.asarray(base, dtype=np.float64)
    sq = (b * b).sum(1)
    out = (b, sq, np.sqrt(sq))
    if isinstance(base, np.ndarray) and not base.flags.writeable:
        _F64_CACHE[id(base)] = (base,) + out
    return out


def true_distances(base: np.ndarray, queries: np.ndarray, metric: int) -> np.ndarray:
    """[nq, n] float64 distances with the API's meaning (see Metric in catalog.proto):
    L2 squared Euclidean, INNER_PRODUCT <q, x>, COSINE 1 - cos(q, x) (1 for a stored zero
    vector)."""
    b, bsq, bn = _f64(base)
    q = np.atleast_2d(np.asarray(queries, dtype=np.float64))
    ip = q @ b.T
    if metric == L2:
        # float64 expansion: ~1e-13 relative here; clamp tiny negatives from cancellation.
        return np.maximum((q * q).sum(1)[:, None] + bsq[None, :] - 2 * ip, 0.0)
    if metric == IP:
        return ip
    if metric == COSINE:
        qn = np.linalg.norm(q, axis=1)[:, None]
        safe = np.where(bn == 0, 1.0, bn)[None, :]
        cos = np.where(bn[None, :] == 0, 0.0, ip / (qn * safe))
        return 1.0 - cos
    raise ValueError(metric)


def descending(metric: int) -> bool:
    return metric == IP


def tolerance(metric: int, d: np.ndarray) -> np.ndarray:
    """Allowed |reported - true| for distances d (float64, API meaning).

    The server computes in float32: flat search uses SIMD kernels for small batches and
    cblas_sgemm for larger ones, where L2 is ||q||^2 + ||x||^2 - 2<q,x>. Each float32 dot
    product over 784 terms of values in [0, 1] has a rounding error of order
    sqrt(784) * 2^-24 * |<q,x>| (blocked/pairwise summation), i.e. ~1e-5 relative, plus the
    final rounding of the result to the proto's float (6e-8 relative). The squared norms of
    Fashion-MNIST vectors are ~50-300, so the cancellation in the GEMM form of L2 leaves an
    absolute error of a few 1e-4 (relative error up to ~3e-5 of the distance). rtol=1e-4 and
    atol=1e-4 cover this: on 8000 x 100 Fashion-MNIST pairs the worst measured error is 1/4 of
    the bound for L2 and under 1/100 of it for INNER_PRODUCT and COSINE. They are still tight
    enough that any real error in the arithmetic (a wrong norm, a missing term, float16
    truncation, a vector of the wrong row) is far outside them: neighbouring ranks differ by
    much more. COSINE values are in [0, 2] with unit-normalised operands, where the same bound
    is ~100x looser than needed but still far below any real mistake.
    """
    return 1e-4 + 1e-4 * np.abs(d)


def brute_force(base: np.ndarray, queries: np.ndarray, metric: int, k: int
                ) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Returns (top-k row indices [nq, k'], their distances [nq, k'], all distances [nq, n])
    with k' = min(k, n), best first (ascending; descending for INNER_PRODUCT)."""
    d = true_distances(base, queries, metric)
    key = -d if descending(metric) else d
    n = key.shape[1]
    if k < n:
        part = np.argpartition(key, k - 1, axis=1)[:, :k]
        pk = np.take_along_axis(key, part, axis=1)
        # Best first; ties broken by row, as a stable full sort would.
        order = np.take_along_axis(part, np.lexsort((part, pk), axis=1), axis=1)
    else:
        order = np.argsort(key, axis=1, kind="stable")
    return order, np.take_along_axis(d, order, axis=1), d


def _row_map(base_ids: np.ndarray) -> Dict[int, int]:
    key = (id(base_ids), len(base_ids))
    hit = _ROW_CACHE.get(key)
    if hit is not None and hit[0] is base_ids:
        return hit[1]
    m = {int(i): r for r, i in enumerate(base_ids)}
    _ROW_CACHE[key] = (base_ids, m)
    return m


_ROW_CACHE: Dict[tuple, tuple] = {}


def check_knn(response: search_pb2.SearchResponse, base: np.ndarray, base_ids: np.ndarray,
              queries: np.ndarray, metric: int, k: int, key: str = "id") -> None:
    """Checks a Search response against numpy float64 brute force over (base, base_ids).

    Per query: the number of hits is min(k, n); the reported distances equal the sorted true
    top-k distances within `tolerance`; each returned id's true distance matches its reported
    distance; the reported order is best first (within tolerance); ids are distinct; and every
    point that is better than the k-th true distance by more than the tolerance is returned
    (so ids differ from numpy's only where true distances tie within tolerance)."""
    queries = np.atleast_2d(queries)
    assert len(response.results) == len(queries), (len(response.results), len(queries))
    n = len(base)
    kk = min(k, n)
    order, top_d, all_d = brute_force(base, queries, metric, k)
    row_of = _row_map(base_ids)
    assert len(row_of) == n, "base ids must be unique"
    sign = -1.0 if descending(metric) else 1.0
    for qi, res in enumerate(response.results):
        ctx = f"{METRIC_NAMES[metric]} query {qi} k={k}"
        got_ids = hit_ids(res, key)
        got_d = hit_dists(res)
        assert len(got_ids) == kk, f"{ctx}: {len(got_ids)} hits, expected {kk}"
        assert len(set(got_ids)) == kk, f"{ctx}: duplicate ids in {got_ids}"
        want_d = top_d[qi]
        tol = tolerance(metric, want_d)
        bad = np.abs(got_d - want_d) > tol
        assert not bad.any(), (f"{ctx}: distances differ from brute force at ranks "
                               f"{np.flatnonzero(bad)[:10]}: got {got_d[bad][:5]}, "
                               f"want {want_d[bad][:5]}")
        rows = np.array([row_of[i] for i in got_ids]) if kk else np.zeros(0, dtype=int)
        true_d = all_d[qi, rows]
        bad = np.abs(got_d - true_d) > tolerance(metric, true_d)
        assert not bad.any(), (f"{ctx}: reported distance of ids {np.array(got_ids)[bad][:5]} is "
                               f"{got_d[bad][:5]}, their true distance {true_d[bad][:5]}")
        # Best first, allowing for the float32 noise of nearly equal distances.
        steps = sign * np.diff(got_d)
        assert (steps >= -tolerance(metric, got_d[1:])).all(), f"{ctx}: not sorted: {got_d}"
        # Every point strictly better than the k-th distance (beyond tolerance) is present.
        if kk:
            kth = want_d[-1]
            must = np.flatnonzero(sign * all_d[qi] < sign * kth - tolerance(metric, kth))
            missing = set(int(base_ids[r]) for r in must) - set(got_ids)
            assert not missing, f"{ctx}: ids {sorted(missing)[:10]} missing from results"
        # Where ids differ from numpy's order, the distances must tie within tolerance.
        np_ids = [int(base_ids[r]) for r in order[qi]]
        for rank, (g, w) in enumerate(zip(got_ids, np_ids)):
            if g != w:
                assert abs(all_d[qi, row_of[g]] - all_d[qi, row_of[w]]) <= 2 * tol[rank], (
                    f"{ctx}: rank {rank}: id {g} (true {all_d[qi, row_of[g]]}) instead of {w} "
                    f"(true {all_d[qi, row_of[w]]})")


def fmnist_points(x: np.ndarray, y: np.ndarray, ids: Iterable[int], payload: bool = True,
                  extra=None) -> List[types_pb2.DataPoint]:
    """DataPoints for rows of a Fashion-MNIST slice: id and label as int64, and a payload string
    (plus whatever extra(i) returns)."""
    out = []
    for i in ids:
        a = {"id": int(i), "label": int(y[i])}
        if payload:
            a["payload"] = f"item-{i}-class-{int(y[i])}"
        if extra is not None:
            a.update(extra(int(i)))
        out.append(point(x[i], a))
    return out
