"""The timeline stays bounded: entries that every index of a source has in a durable snapshot
are deleted, so a source whose few points are replaced again and again does not grow; a new
index on a trimmed source builds from the points; the status reports what is retained.
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from helpers import (TIMEOUT, C, create_index, create_source, get_index, get_points,
                     get_source, index_spec, point, search, source_spec, upload, wait_ready)

DIM = 64
IDS = 200
# snapshot_min_entries 1: with a larger minimum, a periodic snapshot that lands inside the last
# catch-up could leave too few entries for another, and "a final snapshot" would never come.
CONFIG = """
storage:
  write_buffer_bytes: 2MiB
index:
  snapshot_interval_seconds: 1
  snapshot_min_entries: 1
"""


def dir_bytes(path: Path) -> int:
    """Bytes of the data dir, without the ballast file (a reserve of free space, not data)."""
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file() and f.name != "ballast")


def wait_for(cond, what: str, timeout: float = TIMEOUT):
    """Polls cond() until it returns something true; generous, since it waits for background
    work (snapshots every second, RocksDB compactions)."""
    deadline = time.monotonic() + timeout
    while True:
        v = cond()
        if v:
            return v
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def replace_many(s, rounds: int, rng: np.random.Generator) -> int:
    last = 0
    for r in range(rounds):
        vs = rng.random((IDS, DIM), dtype=np.float32)
        last = upload(s, "s", [point(vs[i], {"id": i, "round": r}) for i in range(IDS)]).last_seq
    return last


def test_replacements_keep_the_data_dir_bounded(make_server, tmp_path):
    cfg = tmp_path / "hilbertd.yaml"
    cfg.write_text(CONFIG)
    s = make_server(config=cfg)
    create_source(s, source_spec("s", DIM))
    create_index(s, index_spec("s-flat", "s"))
    rng = np.random.default_rng(3)
    rounds = 400  # 80,000 upserts of 200 points: about 25 MB of timeline if nothing went
    last = replace_many(s, rounds, rng)
    assert last == rounds * IDS

    # Once the index has a snapshot of everything, the timeline keeps only the newest entry.
    wait_ready(s, "s-flat")
    wait_for(lambda: get_index(s, "s-flat").status.snapshot_seq == last, "a final snapshot")
    wait_for(lambda: get_source(s, "s").timeline_entries == 1, "the trim")
    src = get_source(s, "s")
    assert src.timeline_first_seq == last and src.last_seq == last
    assert src.point_count == IDS
    st = get_index(s, "s-flat").status
    assert st.timeline_entries == 0  # nothing kept on its behalf after its snapshot

    # The data dir is a small multiple of what the live points need, not of all upserts.
    written = rounds * IDS * (DIM * 4 + 60) * 2  # point record + timeline entry, each upsert
    wait_for(lambda: dir_bytes(s.data_dir) < written / 4,
             f"the data dir to shrink below {written // 4} bytes")

    # A new index on the trimmed source builds from the points and then follows.
    create_index(s, index_spec("s-late", "s"))
    wait_ready(s, "s-late")
    assert get_index(s, "s-late").status.size == IDS
    vs = rng.random((1, DIM), dtype=np.float32)
    r = upload(s, "s", [point(vs[0], {"id": 0, "round": -1})])
    hit = search(s, "s-late", vs[0], 1, min_seq=r.last_seq).results[0].hits[0]
    assert hit.attributes["round"].int64_value == -1

    # A restart replays from the snapshots over the trimmed timeline and loses nothing.
    s.restart()
    wait_ready(s, "s-flat")
    wait_ready(s, "s-late")
    res = get_points(s, "s", [{"id": i} for i in range(IDS)]).results
    assert all(x.found for x in res)
    assert get_index(s, "s-flat").status.size == IDS


def test_no_index_trims_by_itself(make_server, tmp_path):
    cfg = tmp_path / "hilbertd.yaml"
    cfg.write_text(CONFIG)
    s = make_server(config=cfg)
    create_source(s, source_spec("s", DIM))
    rng = np.random.default_rng(4)
    last = replace_many(s, 60, rng)  # 12,000 entries, nobody to keep them for
    src = get_source(s, "s")
    assert src.last_seq == last
    assert src.timeline_entries < 5000, src
    assert src.timeline_first_seq > 1
    # An index created now builds from the points.
    info = create_index(s, index_spec("s-flat", "s"))
    assert info.status.state in (C.INDEX_STATE_BUILDING, C.INDEX_STATE_READY)
    wait_ready(s, "s-flat")
    assert get_index(s, "s-flat").status.size == IDS
