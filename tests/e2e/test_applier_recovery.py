"""An applier keeps its progress and never does more work than it must: snapshots are written
every so many applied entries (during a long catch-up too), a clean stop saves what was applied
instead of draining a backlog first, and a restart whose tail outnumbers the live points
rebuilds from the points instead of replaying the tail.
"""
from __future__ import annotations

import re
import signal
import time
from pathlib import Path

import numpy as np

from ann_helpers import ann_spec
from helpers import (L2, create_index, create_source, get_index, get_points, index_spec, point,
                     search, source_spec, upload, wait_ready)


def config(tmp_path: Path, **index_keys) -> Path:
    cfg = tmp_path / "hilbertd.yaml"
    cfg.write_text("index:\n" + "".join(f"  {k}: {v}\n" for k, v in index_keys.items()))
    return cfg


def wait_for_log(server, pattern: str, timeout: float = 120.0) -> None:
    """Polls the server's log for pattern (appliers load in the background after the start)."""
    deadline = time.monotonic() + timeout
    while not re.search(pattern, server.log_since_start()):
        assert time.monotonic() < deadline, server.log_since_start()[-3000:]
        time.sleep(0.05)


def snapshot_seqs(log: str, name: str):
    return [int(m) for m in re.findall(rf"{name}@1: snapshot at seq (\d+) ", log)]


def test_snapshots_every_so_many_entries(make_server, tmp_path):
    s = make_server(config=config(tmp_path, snapshot_interval_seconds=0,
                                  snapshot_every_entries=1000, apply_batch=500))
    create_source(s, source_spec("s", 32))
    create_index(s, index_spec("s-flat", "s"))
    x = np.random.default_rng(1).random((5000, 32), dtype=np.float32)
    for i in range(0, 5000, 500):
        last = upload(s, "s", [point(x[j], {"id": j}) for j in range(i, i + 500)]).last_seq
    wait_ready(s, "s-flat")
    seqs = snapshot_seqs(s.log_since_start(), "s-flat")
    # One at least every 1000 applied entries (the interval trigger is off), each newer.
    assert len(seqs) >= 4, seqs
    assert seqs == sorted(seqs) and seqs[-1] <= last
    assert all(b - a >= 1000 for a, b in zip(seqs, seqs[1:])), seqs


def test_snapshots_after_so_much_apply_work(make_server, tmp_path):
    """index.snapshot_every_apply_seconds: the time spent applying, not the entry count or the
    clock, makes a snapshot due, so a crash replays at most about that much work."""
    dim = 256
    s = make_server(config=config(tmp_path, snapshot_interval_seconds=0, snapshot_every_entries=0,
                                  snapshot_every_apply_seconds=1, lag_mode="fall_behind"))
    create_source(s, source_spec("s", dim))
    create_index(s, ann_spec("slow", "s", L2, "hnsw", m=16, ef_construction=400))
    rng = np.random.default_rng(4)
    nid, seqs = 0, []
    for _ in range(5):  # more points until applying them took over a second (on any machine)
        for _ in range(4):
            x = rng.random((1000, dim), dtype=np.float32)
            last = upload(s, "s", [point(x[j], {"id": nid + j}) for j in range(1000)]).last_seq
            nid += 1000
        search(s, "slow", x[0], 1, min_seq=last)
        seqs = snapshot_seqs(s.log_since_start(), "slow")
        if seqs:
            break
    assert seqs, s.log_since_start()[-3000:]
    assert seqs == sorted(seqs) and seqs[-1] <= last, seqs


def test_clean_stop_saves_what_was_applied_and_does_not_drain(make_server, tmp_path):
    """An index far behind its source: SIGTERM saves a snapshot at its applied seq at once, and
    the next start replays the rest."""
    dim, n0, n = 2048, 500, 6000
    s = make_server(config=config(tmp_path, snapshot_interval_seconds=0, snapshot_every_entries=0,
                                  snapshot_every_apply_seconds=0, apply_batch=64,
                                  lag_mode="fall_behind"))
    create_source(s, source_spec("s", dim))
    create_index(s, ann_spec("slow", "s", L2, "hnsw", m=32, ef_construction=2000))
    x = np.random.default_rng(2).random((n, dim), dtype=np.float32)
    first = upload(s, "s", [point(x[j], {"id": j}) for j in range(n0)]).last_seq
    search(s, "slow", x[0], 1, min_seq=first)  # the first points are in the graph
    for i in range(n0, n, 500):
        last = upload(s, "s", [point(x[j], {"id": j}) for j in range(i, i + 500)]).last_seq
    assert s.stop(signal.SIGTERM) == 0, s.log_since_start()[-3000:]
    saved = snapshot_seqs(s.log_since_start(), "slow")
    assert saved, s.log_since_start()[-3000:]
    at = saved[-1]
    # Inserting ~5,000 points into this graph takes seconds; the stop did not wait for them.
    assert first <= at < last, (first, at, last)

    s.start()
    wait_for_log(s, rf"slow@1: loaded snapshot at seq {at} .* replaying {last - at} timeline "
                    rf"entries")
    # A second stop is as quick: nothing of the replay is waited for either.
    assert s.stop(signal.SIGTERM) == 0, s.log_since_start()[-3000:]


def test_a_tail_longer_than_the_points_rebuilds(make_server, tmp_path):
    s = make_server(config=config(tmp_path, snapshot_interval_seconds=0,
                                  snapshot_every_entries=0))
    create_source(s, source_spec("s", 16))
    create_index(s, index_spec("s-flat", "s"))
    rng = np.random.default_rng(3)
    upload(s, "s", [point(rng.random(16, dtype=np.float32), {"id": i}) for i in range(100)])
    s.restart()  # a clean stop: a snapshot at seq 100
    wait_ready(s, "s-flat")
    for r in range(30):  # 3,000 replacements of the same 100 points
        vs = rng.random((100, 16), dtype=np.float32)
        last = upload(s, "s", [point(vs[i], {"id": i, "round": r}) for i in range(100)]).last_seq
    s.kill9()  # no snapshot of the tail
    s.start()
    wait_ready(s, "s-flat")
    log = s.log_since_start()
    assert re.search(r"s-flat@1: snapshot at seq 100 has 3000 entries to replay, more work than "
                     r"rebuilding its 100 points; rebuilding", log), log[-3000:]
    assert "s-flat@1: built from 100 points" in log, log[-3000:]
    assert get_index(s, "s-flat").status.applied_seq == last
    assert get_index(s, "s-flat").status.size == 100
    # The index holds the newest version of every point.
    res = get_points(s, "s", [{"id": i} for i in range(100)]).results
    for i in (0, 57, 99):
        v = np.asarray(res[i].point.vector.dense.values, dtype=np.float32)
        hit = search(s, "s-flat", v, 1).results[0].hits[0]
        assert hit.attributes["id"].int64_value == i
        assert hit.attributes["round"].int64_value == 29
