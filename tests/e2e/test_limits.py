"""Cost limits, checked before the work (issue 9, items 2 and 7).

- limits.max_ef_search and limits.max_nprobe cap the per-request overrides (INVALID_ARGUMENT).
- limits.max_results caps query vectors x k of a Search, and k x model spaces of a find.
- The reply is estimated before the search (vectors and attributes included) and refused when
  it exceeds server.max_send_message_bytes; limits.max_call_memory_bytes caps the estimated
  working memory of a call. Both RESOURCE_EXHAUSTED, naming the key and its value.
- limits.max_indices caps the indices of a server (RESOURCE_EXHAUSTED past it).
- After a burst of large calls on several threads, RSS returns to within
  server.retain_freed_bytes of where it was (bytes from /proc, not times).
Every message names the limit key and its configured value.
"""
from __future__ import annotations

import concurrent.futures as cf
from pathlib import Path

import grpc
import numpy as np
import pytest

import helpers as H
from conftest import SANITIZED, Server
from hilbert.v1 import search_pb2
from model_fixtures import build_models, client, tensor_space, write_config

RNG = np.random.default_rng(9)
DIM = 32


def start(base: Path, name: str, yaml: str, models_dir=None, spaces=()) -> Server:
    cfg = write_config(base / f"{name}.yaml", list(spaces), models_dir=models_dir, extra=yaml)
    return Server(base / f"{name}-data", base / f"{name}.log", config=cfg).start()


def load(s: Server, n: int, source: str = "s", index: str = "i") -> np.ndarray:
    H.create_source(s, H.source_spec(source, DIM, permanent=(("id", H.INT64), ("tag", H.STRING))))
    H.create_index(s, H.index_spec(index, source))
    x = RNG.standard_normal((n, DIM)).astype(np.float32)
    H.upload_batches(s, source, [H.point(x[i], {"id": i, "tag": f"t{i % 7}"}) for i in range(n)],
                     1000)
    H.wait_ready(s, index)
    return x


def request(nq: int, k: int, vectors: bool = False, ef: int = 0, nprobe: int = 0):
    q = RNG.standard_normal((nq, DIM)).astype(np.float32)
    req = search_pb2.SearchRequest(index=H.ix_ref("i"), k=k, query_vectors=[H.vec(r) for r in q],
                                   retrieve_vectors=vectors)
    if ef or nprobe:
        req.params.ef_search = ef
        req.params.nprobe = nprobe
    return req


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    """Small limits: max_results 6000, a 512 KiB reply, 3 indices, ef 50, nprobe 8."""
    base = tmp_path_factory.mktemp("limits")
    models = build_models(tmp_path_factory.mktemp("torch_models"))
    s = start(base, "small", "server:\n  max_send_message_bytes: 512KiB\n"
              "limits:\n  max_results: 6000\n  max_indices: 3\n  max_ef_search: 50\n"
              "  max_nprobe: 8\n",
              models_dir=models["dir"],
              spaces=[tensor_space("va", models["dir"] / "tensor16.pt", [16], 8),
                      tensor_space("vb", models["dir"] / "tensor16.pt", [16], 8)])
    load(s, 2000)
    yield s
    assert s.stop() == 0, s.log_since_start()[-4000:]


def test_ef_search_and_nprobe_overrides_are_capped(small):
    with H.expect_status(grpc.StatusCode.INVALID_ARGUMENT, "params.ef_search: 51",
                         "limits.max_ef_search (50)"):
        small.search.Search(request(1, 5, ef=51), timeout=30)
    with H.expect_status(grpc.StatusCode.INVALID_ARGUMENT, "params.nprobe: 9",
                         "limits.max_nprobe (8)"):
        small.search.Search(request(1, 5, nprobe=9), timeout=30)
    r = small.search.Search(request(1, 5, ef=50, nprobe=8), timeout=30)
    assert len(r.results[0].hits) == 5


def test_query_vectors_times_k_is_capped(small):
    with H.expect_status(grpc.StatusCode.RESOURCE_EXHAUSTED, "= 6001 results",
                         "limits.max_results (6000)"):
        small.search.Search(request(6001, 1), timeout=30)
    assert len(small.search.Search(request(60, 100), timeout=30).results) == 60


def test_model_space_finds_count_k_per_space(small):
    with client(small) as db:
        seqs = db.add_tensor("a", np.ones(16), ["va", "vb"])
        with H.expect_status(grpc.StatusCode.RESOURCE_EXHAUSTED, "k: 3001 x 2 model spaces",
                             "limits.max_results (6000)"):
            try:
                db.find_similar_tensor(np.ones(16), ["va", "vb"], k=3001)
            except Exception as e:  # the client's error wraps the gRPC one
                raise e.rpc_error from None
        res = db.find_similar_tensor(np.ones(16), ["va", "vb"], k=3000, min_seq=seqs)
        assert len(res["va"]) == 1 and len(res["vb"]) == 1


def test_reply_size_is_refused_before_the_search(small):
    # 60 x 100 hits with 32-d vectors: about 1 MB packed, over the 512 KiB limit.
    with H.expect_status(grpc.StatusCode.RESOURCE_EXHAUSTED, "response: an estimated",
                         "server.max_send_message_bytes (524288)") as st:
        small.search.Search(request(60, 100, vectors=True), timeout=30)
    est = int(st.details.split("an estimated ")[1].split()[0])
    assert 60 * 100 * DIM * 4 < est < 2 * 60 * 100 * (DIM * 4 + 40), st.details
    # Without the vectors it fits, and so does a smaller request with them.
    assert len(small.search.Search(request(60, 100), timeout=30).results) == 60
    r = small.search.Search(request(10, 100, vectors=True), timeout=30)
    assert len(r.results[9].hits[99].vector.dense.values) == DIM
    # Get is estimated the same way: 10000 points x 32-d is over 512 KiB.
    with H.expect_status(grpc.StatusCode.RESOURCE_EXHAUSTED, "response: an estimated",
                         "server.max_send_message_bytes (524288)"):
        H.get_points(small, "s", [{"id": i} for i in range(10000)])
    assert len(H.get_points(small, "s", [{"id": i} for i in range(100)]).results) == 100


def test_max_indices(small):
    # The data source's index and the two model spaces' indices: 3, the limit.
    spec = H.index_spec("extra", "s")
    with H.expect_status(grpc.StatusCode.RESOURCE_EXHAUSTED, "limits.max_indices (3)"):
        H.create_index(small, spec)
    with client(small) as db:
        db.drop_model_space("vb")
    H.create_index(small, spec)
    with H.expect_status(grpc.StatusCode.RESOURCE_EXHAUSTED, "limits.max_indices (3)"):
        H.create_index(small, H.index_spec("extra2", "s"))
    names = [i.spec.name for i in small.catalog.ListIndices(
        H.C.ListIndicesRequest(), timeout=30).indices]
    assert "extra2" not in names and "extra" in names


def test_call_memory_is_capped(tmp_path):
    s = start(tmp_path, "mem", "limits:\n  max_call_memory_bytes: 1MiB\n")
    try:
        load(s, 300)
        # 10 x 300 results: a few MB of records, hits and reply structures.
        with H.expect_status(grpc.StatusCode.RESOURCE_EXHAUSTED, "working memory",
                             "limits.max_call_memory_bytes (1048576)"):
            s.search.Search(request(10, 300), timeout=30)
        # k is counted up to the points the index holds: k=10000 on 300 points, 1 query, fits.
        assert len(s.search.Search(request(1, 10000), timeout=30).results[0].hits) == 300
    finally:
        assert s.stop() == 0, s.log_since_start()[-4000:]


def status_bytes(pid: int, key: str) -> int:
    for line in open(f"/proc/{pid}/status"):
        if line.startswith(key + ":"):
            return int(line.split()[1]) * 1024
    raise AssertionError(key)


@pytest.mark.skipif(SANITIZED, reason="the sanitizer's allocator ignores malloc settings")
def test_rss_returns_after_a_burst(tmp_path):
    retain = 16 << 20
    s = start(tmp_path, "rss", f"server:\n  retain_freed_bytes: {retain}\n  threads: 4\n")
    try:
        load(s, 2000)
        s.search.Search(request(2, 10), timeout=30)
        pid = s.proc.pid
        before = status_bytes(pid, "VmRSS")
        # 8 calls, 4 at a time, of 50 x 2000 results with vectors (about 14 MB of reply each).
        reqs = [request(50, 2000, vectors=True) for _ in range(8)]
        with cf.ThreadPoolExecutor(4) as ex:
            for r in ex.map(lambda q: s.search.Search(q, timeout=120), reqs):
                assert len(r.results) == 50 and len(r.results[0].hits) == 2000
        peak = status_bytes(pid, "VmHWM")
        after = status_bytes(pid, "VmRSS")
        assert peak - before > 8 * retain, (before, peak)  # the burst did take memory
        print("rss MiB before, peak, after:", before >> 20, peak >> 20, after >> 20)
        # retain, plus 24 MiB for what is freed outside the calls' arenas and replies (gRPC's
        # buffers, RocksDB's reads), which the trimming does not count. Without the trimming
        # this burst leaves 100+ MiB.
        assert after - before <= retain + (24 << 20), (before >> 20, peak >> 20, after >> 20)
    finally:
        assert s.stop() == 0, s.log_since_start()[-4000:]
