"""The thread count does not grow with the number of indices: every index's applier runs on one
fixed pool of index.applier_threads workers. 300 small indices over a few data sources all
become READY and serve read-your-writes searches, and the process keeps about the threads it
had with one index, after a restart too (when the indices load their snapshots on the pool).
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from helpers import create_index, create_source, index_spec, point, search, source_spec, upload

DIM = 4
SOURCES = 4
INDICES = 300
APPLIER_THREADS = 2
SLACK = 10  # threads that gRPC or RocksDB may add under a different load; far below INDICES


def threads_of(server) -> int:
    status = Path(f"/proc/{server.proc.pid}/status").read_text()
    return int(re.search(r"^Threads:\s+(\d+)", status, re.M).group(1))


def fill(server, src: str, first_id: int, n: int) -> int:
    """Uploads n points to src; returns the upload's last seq."""
    x = np.random.default_rng(first_id).random((n, DIM), dtype=np.float32)
    return upload(server, src, [point(x[i], {"id": first_id + i}) for i in range(n)]).last_seq


def serves(server, name: str, min_seq: int, want: int) -> None:
    """A search that waits for min_seq answers from an index that holds want points."""
    r = search(server, name, np.zeros(DIM, dtype=np.float32), want + 5, min_seq=min_seq)
    assert len(r.results[0].hits) == want, (name, r)


def test_threads_do_not_grow_with_indices(make_server, tmp_path):
    cfg = tmp_path / "hilbertd.yaml"
    cfg.write_text(f"index:\n  applier_threads: {APPLIER_THREADS}\n")
    s = make_server(config=cfg)
    assert f"({APPLIER_THREADS} applier threads)" in s.log_since_start()

    # One index, with uploads and searches done: the threads a server with one index has.
    sources = [f"s{i}" for i in range(SOURCES)]
    for src in sources:
        create_source(s, source_spec(src, DIM))
    last = {src: fill(s, src, 0, 3) for src in sources}
    create_index(s, index_spec("ix0", sources[0]))
    serves(s, "ix0", last[sources[0]], 3)
    one = threads_of(s)

    # 299 more, a quarter of them on each source; then more points for every source.
    names = {f"ix{i}": sources[i % SOURCES] for i in range(INDICES)}
    for name, src in names.items():
        if name != "ix0":
            create_index(s, index_spec(name, src))
    assert threads_of(s) <= one + SLACK
    last = {src: fill(s, src, 100, 2) for src in sources}
    for name, src in names.items():
        serves(s, name, last[src], 5)
    many = threads_of(s)
    assert many <= one + SLACK, (one, many)

    # A restart loads 300 snapshots on the pool; the count stays bounded the same way.
    s.restart()
    for name, src in names.items():
        serves(s, name, last[src], 5)
    loaded = re.findall(r"ix\d+@1: loaded snapshot at seq", s.log_since_start())
    assert len(loaded) == INDICES, s.log_since_start()[-3000:]
    after = threads_of(s)
    assert after <= one + SLACK, (one, after)
