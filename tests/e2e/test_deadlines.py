"""Deadlines reach the engines (issue 9, item 3).

A search of many query vectors whose client deadline passes mid-call stops using CPU: the
server's CPU time (utime + stime from /proc/<pid>/stat) is read when the client sees
DEADLINE_EXCEEDED and again a little later, and the extra is compared with what the whole call
costs, measured first on the same server. Nothing here compares wall-clock times with fixed
limits: the deadline is calibrated from a measured call, and only CPU amounts are compared,
with wide margins.
"""
from __future__ import annotations

import os
import time

import grpc
import numpy as np
import pytest

import helpers as H
from conftest import Server
from hilbert.v1 import search_pb2

RNG = np.random.default_rng(5)
DIM = 16
TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def request(index: str, nq: int, k: int) -> search_pb2.SearchRequest:
    q = RNG.standard_normal((nq, DIM)).astype(np.float32)
    return search_pb2.SearchRequest(index=H.ix_ref(index), k=k,
                                    query_vectors=[H.vec(r) for r in q])


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    d = tmp_path_factory.mktemp("deadlines")
    s = Server(d / "data", d / "hilbertd.log").start()
    H.create_source(s, H.source_spec("s", DIM))
    H.create_index(s, H.index_spec("flat", "s"))
    hnsw = H.index_spec("hnsw", "s", flat=False)
    hnsw.algorithm.hnsw.m = 8
    H.create_index(s, hnsw)
    x = RNG.standard_normal((100, DIM)).astype(np.float32)
    H.upload(s, "s", [H.point(x[i], {"id": i}) for i in range(100)])
    H.wait_ready(s, "flat")
    H.wait_ready(s, "hnsw")
    yield s
    assert s.stop() == 0, s.log_since_start()[-4000:]


@pytest.mark.parametrize("index", ["flat", "hnsw"])
def test_expired_search_stops_using_cpu(srv, index):
    pid = srv.proc.pid
    # Calibrate: the CPU of a full call of 2000 queries, and its wall time for the deadline.
    small = request(index, 2000, 100)
    c0, t0 = cpu_seconds(pid), time.monotonic()
    r = srv.search.Search(small, timeout=300)
    wall, cpu_small = time.monotonic() - t0, cpu_seconds(pid) - c0
    assert len(r.results) == 2000 and len(r.results[0].hits) == 100
    cpu_full = 5 * cpu_small  # the 10,000-query call below, had it run to the end

    # 10,000 queries with a deadline of about a fifth of the call: it expires mid-call.
    big = request(index, 10000, 100)
    c0 = cpu_seconds(pid)
    with H.expect_status(grpc.StatusCode.DEADLINE_EXCEEDED):
        srv.search.Search(big, timeout=max(wall, 0.05))
    c1 = cpu_seconds(pid)
    # Without the stop the server would go on for about 4 x wall more; look for 3 x wall.
    time.sleep(max(1.0, 3 * wall))
    c2 = cpu_seconds(pid)
    extra = c2 - c1
    assert extra < 0.25 * cpu_full, (extra, cpu_full, c1 - c0)
    print(f"{index}: full call ~{cpu_full:.2f} s CPU, until the deadline {c1 - c0:.2f} s, "
          f"after it {extra:.2f} s")
    H.assert_serving(srv)


@pytest.mark.parametrize("index", ["flat", "hnsw"])
def test_cancelled_search_stops_using_cpu(srv, index):
    """A client that cancels (its deadline still far away) is noticed by the server through
    the call's close, and the search stops as for an expired deadline."""
    pid = srv.proc.pid
    small = request(index, 2000, 100)
    c0, t0 = cpu_seconds(pid), time.monotonic()
    srv.search.Search(small, timeout=300)
    wall, cpu_small = time.monotonic() - t0, cpu_seconds(pid) - c0
    cpu_full = 5 * cpu_small

    fut = srv.search.Search.future(request(index, 10000, 100), timeout=300)
    time.sleep(max(wall, 0.05))
    assert fut.cancel(), "the call ended before it could be cancelled"
    c1 = cpu_seconds(pid)
    time.sleep(max(1.0, 3 * wall))
    extra = cpu_seconds(pid) - c1
    assert extra < 0.25 * cpu_full, (extra, cpu_full)
    print(f"{index}: full call ~{cpu_full:.2f} s CPU, after the cancel {extra:.2f} s")
    H.assert_serving(srv)
