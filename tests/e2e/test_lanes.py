"""Serving while the server is busy: waiting holds no thread, and cheap calls never queue behind
expensive ones (issue 9, item 1).

- A search whose min_seq the index has not applied yet is parked: it holds no work thread, so
  64 such waiters leave the server's 2 search threads free for other searches.
- Health, Get and catalog reads are answered by the call threads themselves, and uploads have
  their own pool, so none of them waits behind heavy searches.

The waiters wait on an HNSW index with a high ef_construction, in lag_mode fall_behind, given a
backlog: inserting into it costs far more than uploading, on any machine. Where a test needs the
backlog to last, it checks afterwards that it did (the index had still not applied the waiters'
seq), doubling the backlog otherwise, instead of assuming the machine's speed. No assertion is
about how long something took; the latencies are printed for the record.
"""
from __future__ import annotations

import concurrent.futures as cf
import signal
import time
from pathlib import Path

import grpc
import numpy as np

from ann_helpers import ann_spec, search_req, wait_status
from helpers import (L2, attrs, create_index, create_source, ds_ref, get_index, index_spec,
                     ix_ref, point, source_spec, upload_batches)
from hdb_grpc_health.v1 import health_pb2, health_pb2_grpc
from hilbert.v1 import (catalog_pb2, catalog_pb2_grpc, points_pb2, points_pb2_grpc,
                        search_pb2_grpc)

DIM = 256
WAITERS = 64
HEAVY = 8
LONG = 300.0  # client deadline of calls that must not end by timing out


def config(tmp_path: Path) -> Path:
    cfg = tmp_path / "hilbertd.yaml"
    cfg.write_text("storage:\n  sync: false\n"
                   "server:\n  threads: 2\n  poll_threads: 2\n  write_threads: 2\n"
                   "index:\n  lag_mode: fall_behind\n  build_threads: 1\n"
                   "limits:\n  max_wait_ms: 600000\n")
    return cfg


def points(rng, first: int, n: int, dim: int = DIM):
    x = rng.random((n, dim), dtype=np.float32)
    return [point(x[i], {"id": first + i}) for i in range(n)]


def threads_of(server) -> int:
    for line in Path(f"/proc/{server.proc.pid}/status").read_text().splitlines():
        if line.startswith("Threads:"):
            return int(line.split()[1])
    raise AssertionError("no Threads: line")


def slow_index(s) -> None:
    """The index that waiters wait for (empty, so READY at once): inserting into it costs far
    more than uploading."""
    create_source(s, source_spec("slow_src", DIM))
    create_index(s, ann_spec("slow", "slow_src", L2, "hnsw", m=16, ef_construction=400))
    wait_status(s, "slow", lambda st: st.state == 1, "READY")


def make_indices(s, rng):
    """A slow HNSW index (waiters), a flat index on a bigger source (heavy searches) and a
    third source for small uploads."""
    slow_index(s)
    create_source(s, source_spec("big_src", DIM))
    create_index(s, index_spec("big", "big_src"))
    create_source(s, source_spec("other", 8))
    upload_batches(s, "big_src", points(rng, 0, 6000), 1000)
    wait_status(s, "big", lambda st: st.applied_seq == 6000, "big loaded")


def backlog(s, rng, n: int, first: int) -> int:
    """Uploads n points to the slow index's source; returns the last seq."""
    return upload_batches(s, "slow_src", points(rng, first, n), 500)[-1].last_seq


def heavy_request(nq: int):
    q = np.random.default_rng(3).random((nq, DIM), dtype=np.float32)
    return search_req("big", q, 10)


def test_parked_waiters_hold_no_thread_and_cheap_calls_stay_quick(make_server, tmp_path):
    s = make_server(config=config(tmp_path))
    rng = np.random.default_rng(1)
    make_indices(s, rng)
    # A heavy search: big enough that 8 of them on 2 search threads keep the pool busy for a
    # while, measured here rather than assumed.
    nq = 50
    while True:
        t0 = time.monotonic()
        s.search.Search(heavy_request(nq), timeout=LONG)
        one = time.monotonic() - t0
        if one >= 0.5 or nq >= 3200:
            break
        nq *= 2
    idle = []
    for _ in range(5):
        t0 = time.monotonic()
        s.health.Check(health_pb2.HealthCheckRequest(), timeout=LONG)
        idle.append(time.monotonic() - t0)
    base_threads = threads_of(s)

    n, first = 2000, 10**6
    pool = cf.ThreadPoolExecutor(max_workers=HEAVY + 4)
    for attempt in range(4):
        last = backlog(s, rng, n, first)
        first += n
        q = np.zeros((1, DIM), np.float32)
        waiters = [s.search.Search.future(search_req("slow", q, 1, min_seq=last), timeout=LONG)
                   for _ in range(WAITERS)]
        heavy = [pool.submit(s.search.Search, heavy_request(nq), timeout=LONG)
                 for _ in range(HEAVY)]
        lat = {}
        # The cheap calls go on a connection of their own, as another client's would: on the
        # shared one they would queue behind the heavy requests' bytes in the client.
        ch = grpc.insecure_channel(f"127.0.0.1:{s.port}")
        health = health_pb2_grpc.HealthStub(ch)
        pts = points_pb2_grpc.PointsStub(ch)
        cat = catalog_pb2_grpc.CatalogStub(ch)
        srch = search_pb2_grpc.SearchStub(ch)
        grpc.channel_ready_future(ch).result(timeout=LONG)

        def timed(name, fn):
            t0 = time.monotonic()
            fn()
            lat[name] = time.monotonic() - t0

        timed("health", lambda: health.Check(health_pb2.HealthCheckRequest(), timeout=LONG))
        timed("get", lambda: pts.Get(points_pb2.GetPointsRequest(
            data_source=ds_ref("big_src"),
            ids=[points_pb2.PointId(id_attributes=attrs({"id": 5}))]), timeout=LONG))
        timed("get_index", lambda: cat.GetIndex(catalog_pb2.GetIndexRequest(
            index=ix_ref("big")), timeout=LONG))
        timed("upload", lambda: pts.Upload(points_pb2.UploadRequest(
            data_source=ds_ref("other"), points=points(rng, attempt, 1, dim=8)), timeout=LONG))
        # A search that does not wait gets a search thread although 64 waiters are there.
        timed("search", lambda: srch.Search(search_req("big", q, 1), timeout=LONG))
        heavy_left = sum(not f.done() for f in heavy)
        waiting = sum(not f.done() for f in waiters)
        threads_now = threads_of(s)
        applied = get_index(s, "slow").status.applied_seq
        ch.close()
        for f in heavy:
            assert len(f.result().results) == nq
        for f in waiters:
            r = f.result()
            assert r.applied_seq >= last, r.applied_seq
        if applied < last and waiting == WAITERS:
            break  # the premise held: every waiter was parked the whole time
        n *= 2  # the index caught up too soon: a longer backlog
    else:
        raise AssertionError("the slow index kept up with every backlog")
    pool.shutdown()
    print(f"\none heavy search ({nq} queries): {one * 1000:.0f} ms; idle Health "
          f"{min(idle) * 1000:.2f} ms; with {WAITERS} parked waiters and {HEAVY} heavy searches: "
          + ", ".join(f"{k} {v * 1000:.1f} ms" for k, v in lat.items())
          + f"; heavy searches still running after them: {heavy_left}; threads {base_threads}"
          f" -> {threads_now}")
    # The waiters held no thread: the process did not grow a thread per waiter.
    assert threads_now < base_threads + 8, (base_threads, threads_now)


def test_parked_waiter_times_out_cancels_and_stops(make_server, tmp_path):
    s = make_server(config=config(tmp_path))
    rng = np.random.default_rng(2)
    slow_index(s)
    q = np.zeros((1, DIM), np.float32)
    n = 2000
    for _ in range(4):
        last = backlog(s, rng, n, 10**6 * n)
        # Its own deadline ends a parked search: DEADLINE_EXCEEDED (from gRPC or from the
        # server, whichever is first).
        try:
            s.search.Search(search_req("slow", q, 1, min_seq=last), timeout=0.3)
        except grpc.RpcError as e:
            assert e.code() == grpc.StatusCode.DEADLINE_EXCEEDED, e
        else:
            n *= 2
            continue
        # A cancelled one goes away; the server keeps serving the others.
        f = s.search.Search.future(search_req("slow", q, 1, min_seq=last), timeout=LONG)
        f.cancel()
        stuck = [s.search.Search.future(search_req("slow", q, 1, min_seq=last), timeout=LONG)
                 for _ in range(WAITERS)]
        if get_index(s, "slow").status.applied_seq < last:
            break
        for w in stuck:
            w.result()
        n *= 2
    else:
        raise AssertionError("the slow index kept up with every backlog")
    assert f.cancelled() or f.exception() is not None
    # SIGTERM with 64 parked waiters: they are answered (UNAVAILABLE, the index or the server
    # is stopping) and the server exits cleanly, without draining the backlog.
    s.proc.send_signal(signal.SIGTERM)
    codes = set()
    for w in stuck:
        try:
            w.result()
            codes.add(grpc.StatusCode.OK)
        except grpc.RpcError as e:
            codes.add(e.code())
            if e.code() == grpc.StatusCode.UNAVAILABLE:
                assert "stopping" in e.details() or "shutting down" in e.details(), e.details()
    assert codes <= {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.OK}, codes
    assert grpc.StatusCode.UNAVAILABLE in codes, codes
    assert s.stop(timeout=LONG) == 0, s.log_since_start()[-3000:]


def test_server_side_wait_limit_answers_parked_search(make_server, tmp_path):
    """limits.max_wait_ms ends a parked wait with the server's own message."""
    cfg = tmp_path / "hilbertd.yaml"
    cfg.write_text("storage:\n  sync: false\nindex:\n  lag_mode: fall_behind\n"
                   "limits:\n  max_wait_ms: 100\n")
    s = make_server(config=cfg)
    rng = np.random.default_rng(4)
    slow_index(s)
    q = np.zeros((1, DIM), np.float32)
    n = 2000
    for _ in range(4):
        last = backlog(s, rng, n, 10**7 * n)
        try:
            s.search.Search(search_req("slow", q, 1, min_seq=last), timeout=LONG)
        except grpc.RpcError as e:
            assert e.code() == grpc.StatusCode.DEADLINE_EXCEEDED, e
            assert "min_seq: index slow@1 had applied seq" in e.details(), e.details()
            assert f"of {last} when the wait ended" in e.details(), e.details()
            return
        n *= 2
    raise AssertionError("the slow index kept up with every backlog")
