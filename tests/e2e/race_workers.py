"""Worker processes for test_search_consistency (a module of its own so that the 'spawn'
start method can import them without importing a test module). Separate processes, not
threads: the Python GIL would otherwise serialise the client so much that uploads and searches
hardly ever overlap on the server."""
from __future__ import annotations

import time

import grpc
import numpy as np

DIM = 16
STABLE = 200     # ids 0..199 always exist (some get new vectors)
CHURN = 50       # ids 1000..1049 are deleted and re-added in turn
K = 150          # < STABLE: every search must return exactly K hits


class Client:
    """The subset of conftest.Server that helpers' functions need."""

    def __init__(self, port: int):
        from hilbert.v1 import points_pb2_grpc, search_pb2_grpc
        self.channel = grpc.insecure_channel(f"127.0.0.1:{port}")
        self.points = points_pb2_grpc.PointsStub(self.channel)
        self.search = search_pb2_grpc.SearchStub(self.channel)


def writer(port: int, kind: str, seconds: float) -> int:
    from helpers import point, tombstone, upload
    c = Client(port)
    rng = np.random.default_rng(1 if kind == "churn" else 2)
    n = 0
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if kind == "churn":
            if n % 2:
                pts = [tombstone({"id": 1000 + i}) for i in range(CHURN)]
            else:
                pts = [point(rng.standard_normal(DIM) * 0.1, {"id": 1000 + i})
                       for i in range(CHURN)]
        else:  # replace: new vectors for a subset of the stable ids
            pts = [point(rng.standard_normal(DIM) * 0.1, {"id": i}) for i in range(0, STABLE, 7)]
        upload(c, "r", pts)
        n += 1
    c.channel.close()
    return n


def searcher(port: int, seed: int, seconds: float) -> dict:
    """Searches while the writers run; counts results with fewer than K hits, and hits whose
    reported distance is not the squared L2 distance to the vector returned with them."""
    from helpers import search, vec_of
    c = Client(port)
    rng = np.random.default_rng(seed)
    out = {"searches": 0, "short": 0, "inconsistent": 0, "short_example": None,
           "inconsistent_example": None}
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        q = (rng.standard_normal(DIM) * 0.1).astype(np.float32)
        # min_seq=0: search whatever the index has applied, while the writers go on.
        res = search(c, "r-l2", q, K, retrieve_vectors=True, min_seq=0).results[0]
        out["searches"] += 1
        if len(res.hits) != K:
            out["short"] += 1
            out["short_example"] = out["short_example"] or f"{len(res.hits)} hits for k={K}"
        for h in res.hits:
            v = vec_of(h.vector).astype(np.float64)
            d = float(((q - v) ** 2).sum())
            if abs(d - h.distance) > 1e-4 + 1e-4 * d:
                out["inconsistent"] += 1
                out["inconsistent_example"] = out["inconsistent_example"] or (
                    f"id {h.attributes['id'].int64_value}: distance {h.distance}, but "
                    f"|q - vector|^2 = {d}")
    c.channel.close()
    return out
