"""Bounded index lag: while a READY index is further behind its data source than
index.max_lag_entries (or index.max_lag_ms), uploads to the source wait for it
(index.lag_mode: backpressure, the default) and fail with RESOURCE_EXHAUSTED naming the index
when their wait ends; with index.lag_mode: fall_behind they go on and the index's status and the
log say that it lags.

The indices here are HNSW graphs with a high ef_construction on 256-d vectors: inserting into
them costs far more than uploading, on any machine, so an index falls behind whenever the
uploads are not held back. Where a test needs a lag, it makes one and checks that it got it
(doubling the load otherwise) instead of assuming the machine's speed.
"""
from __future__ import annotations

import re
import signal
import threading
import time
from pathlib import Path

import grpc
import numpy as np

from ann_helpers import ann_spec, wait_log, wait_status
from helpers import (L2, SANITIZED, create_index, create_source, ds_ref, expect_status,
                     get_index, get_points, get_source, ix_ref, point, search, source_spec,
                     upload, vec)
from hilbert.v1 import points_pb2, points_pb2_grpc, search_pb2, search_pb2_grpc

DIM = 256


def config(tmp_path: Path, index: dict, limits: dict | None = None) -> Path:
    text = "storage:\n  sync: false\nindex:\n" + "".join(f"  {k}: {v}\n" for k, v in index.items())
    if limits:
        text += "limits:\n" + "".join(f"  {k}: {v}\n" for k, v in limits.items())
    cfg = tmp_path / "hilbertd.yaml"
    cfg.write_text(text)
    return cfg


def slow_index(server, name: str = "slow") -> None:
    create_source(server, source_spec("s", DIM))
    create_index(server, ann_spec(name, "s", L2, "hnsw", m=16, ef_construction=400))
    wait_status(server, name, lambda st: st.state == 1, "READY")  # empty: ready at once


def points(rng, first: int, n: int):
    x = rng.random((n, DIM), dtype=np.float32)
    return [point(x[i], {"id": first + i}) for i in range(n)]


def test_uploads_wait_for_a_lagging_index(make_server, tmp_path):
    bound, writers, batch = 400, 3, 40
    rounds = 10 if SANITIZED else 30
    s = make_server(config=config(tmp_path, dict(max_lag_entries=bound, max_lag_ms=0,
                                                 apply_batch=64)))
    slow_index(s)
    errors, worst = [], [0]
    done = threading.Event()

    def writer(w: int) -> None:
        rng = np.random.default_rng(w)
        try:
            for r in range(rounds):
                upload(s, "s", points(rng, (w * rounds + r) * batch, batch))
        except grpc.RpcError as e:  # recorded, then asserted below
            errors.append(f"writer {w}: {e.code()}: {e.details()}")

    def monitor() -> None:
        while not done.is_set():
            worst[0] = max(worst[0], get_index(s, "slow").status.lag_entries)

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(writers)]
    mon = threading.Thread(target=monitor)
    mon.start()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    done.set()
    mon.join()
    assert not errors, errors
    # The bound held the writers back: it was passed (the log says so) ...
    wait_log(s, r"index slow@1 is lagging: \d+ entries .* uploads to the source wait for it")
    # ... and the lag never got past it by more than the uploads admitted just before it was
    # (each writer has at most one batch in flight).
    print(f"\nworst lag seen: {worst[0]} entries (bound {bound})")
    assert worst[0] <= bound + writers * batch, worst[0]
    total = writers * rounds * batch
    assert get_source(s, "s").last_seq == total
    st = wait_status(s, "slow", lambda st: st.applied_seq == total, "caught up").status
    assert st.size == total and not st.lagging, st


def lag_of_at_least(server, bound: int, rng, first_id: int, n: int = 1000):
    """Uploads ever larger batches (from n points) until the index is found more than `bound`
    entries behind right after one; returns (next free id, the last batch's last seq)."""
    nid = first_id
    for _ in range(4):
        last = upload(server, "s", points(rng, nid, n)).last_seq
        nid += n
        st = get_index(server, "slow").status
        if st.lag_entries > bound:
            assert st.lagging, st
            return nid, last
        n *= 2
    raise AssertionError(f"the index kept up with batches of {n // 2} points")


def test_a_wait_that_ends_fails_naming_the_index(make_server, tmp_path):
    bound = 100
    s = make_server(config=config(tmp_path, dict(max_lag_entries=bound, max_lag_ms=0),
                                  limits=dict(max_wait_ms=200)))
    slow_index(s)
    rng = np.random.default_rng(7)
    refused = None
    nid, n = 0, 1000
    for _ in range(5):
        nid, last = lag_of_at_least(s, bound, rng, nid, n)
        n *= 2  # the next backlog, if this one is applied within the wait, is longer
        try:
            upload(s, "s", points(rng, 10**6, 1))
        except grpc.RpcError as e:
            refused = e
            break
        # The index caught up within the 200 ms wait; make a longer backlog.
        search(s, "slow", np.zeros(DIM, np.float32), 1, min_seq=last + 1)
        get_points(s, "s", [{"id": 10**6}])
    assert refused is not None, "every upload was admitted within 200 ms"
    assert refused.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, refused
    d = refused.details()
    assert re.search(r"index slow@1 is behind data source s@1 by \d+ entries \(.* s", d), d
    assert "index.max_lag_entries (100)" in d and "limits.max_wait_ms" in d, d
    # Nothing of the refused upload was written.
    assert get_source(s, "s").last_seq == last
    # Once the index has caught up, uploads go through again.
    wait_status(s, "slow", lambda st: st.applied_seq == last, "caught up")
    r = upload(s, "s", points(rng, 10**6 + 1, 1))
    assert r.first_seq == last + 1
    assert not get_index(s, "slow").status.lagging


def test_fall_behind_lets_uploads_go_on_and_says_so(make_server, tmp_path):
    bound = 100
    s = make_server(config=config(tmp_path, dict(max_lag_entries=bound, max_lag_ms=0,
                                                 lag_mode="fall_behind"),
                                  limits=dict(max_wait_ms=0)))
    slow_index(s)
    rng = np.random.default_rng(8)
    # max_wait_ms 0 would refuse any upload that had to wait: none does in this mode.
    nid, last = lag_of_at_least(s, bound, rng, 0)
    r = upload(s, "s", points(rng, nid, 10))
    assert r.first_seq == last + 1
    wait_log(s, r"index slow@1 is lagging: .* uploads go on and searches without min_seq miss "
                r"the newest writes \(index.lag_mode: fall_behind\)")
    # The status said so while it lagged (lag_of_at_least), and stops once it has caught up.
    wait_status(s, "slow", lambda st: st.applied_seq == r.last_seq, "caught up")
    assert not get_index(s, "slow").status.lagging
    wait_log(s, r"index slow@1 is back within its lag bounds")


def test_a_time_bound_holds_uploads_back_too(make_server, tmp_path):
    """max_lag_ms alone: an upload waits while the oldest unapplied entry is older than it."""
    s = make_server(config=config(tmp_path, dict(max_lag_entries=0, max_lag_ms=1),
                                  limits=dict(max_wait_ms=100)))
    slow_index(s)
    rng = np.random.default_rng(9)
    with expect_status(grpc.StatusCode.RESOURCE_EXHAUSTED, "index slow@1 is behind",
                       "index.max_lag_ms (1)"):
        for i in range(8):  # a backlog older than 1 ms; the index cannot apply 1000s in 100 ms
            upload(s, "s", points(rng, i * 4000, 4000))


def test_a_stop_ends_the_waits_at_once(make_server, tmp_path):
    """SIGTERM while an upload waits for a lagging index and a search waits for a min_seq that
    never comes: both answer UNAVAILABLE at once (their own waits would last 10 minutes, and so
    would the grace), nothing of the upload is written, and the server exits 0."""
    bound = 100
    # One build thread: how long the backlog takes does not shrink with the machine's cores.
    s = make_server(config=config(tmp_path, dict(max_lag_entries=bound, max_lag_ms=0,
                                                 build_threads=1),
                                  limits=dict(max_wait_ms=600000)))
    (tmp_path / "hilbertd.yaml").write_text((tmp_path / "hilbertd.yaml").read_text() +
                                            "server:\n  shutdown_grace_ms: 600000\n")
    s.stop()
    s.start()
    slow_index(s)
    rng = np.random.default_rng(10)
    ch = grpc.insecure_channel(f"127.0.0.1:{s.port}")
    pts = points_pb2_grpc.PointsStub(ch)
    srch = search_pb2_grpc.SearchStub(ch)
    outcome: dict = {}

    def call(name, fn):
        try:
            fn()
            outcome[name] = "OK"
        except grpc.RpcError as e:
            outcome[name] = (e.code(), e.details())

    # A backlog of 4000+ entries takes this index (256-d, ef_construction 400, one thread)
    # seconds to apply, on any machine.
    nid, last = lag_of_at_least(s, 4000, rng, 0, n=4000)
    one = points(rng, 10**6, 1)
    up = threading.Thread(target=call, args=("upload", lambda: pts.Upload(
        points_pb2.UploadRequest(data_source=ds_ref("s"), points=one), timeout=900)))
    q = search_pb2.SearchRequest(index=ix_ref("slow"), k=1, min_seq=last,
                                 query_vectors=[vec(np.zeros(DIM, np.float32))])
    sr = threading.Thread(target=call, args=("search", lambda: srch.Search(q, timeout=900)))
    up.start()
    sr.start()
    time.sleep(0.3)  # for the two calls to reach the server
    st = get_index(s, "slow").status
    assert st.lag_entries > 500, st  # still far behind: the upload and the search still wait
    before = get_source(s, "s").last_seq
    s.proc.send_signal(signal.SIGTERM)
    up.join(120)
    sr.join(120)
    assert not up.is_alive() and not sr.is_alive(), "the waits outlived the stop"
    for name in ("upload", "search"):
        code, details = outcome[name]
        # "is stopping": the wait was ended; "shutting down": the call came after the SIGTERM.
        assert code == grpc.StatusCode.UNAVAILABLE and (
            "index slow@1 is stopping" in details or "shutting down" in details), (
            name, outcome[name])
    ch.close()
    assert s.stop(timeout=120) == 0, s.log_since_start()[-3000:]
    s.start()
    assert get_source(s, "s").last_seq == before  # the waiting upload wrote nothing
