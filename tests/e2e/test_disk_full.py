"""A full disk is an error, not a crash: hilbertd on a small file system of the test's own (a
tmpfs; mounting needs root, which CI has), filled by uploads until it refuses them.

At each stage: uploads get RESOURCE_EXHAUSTED naming the disk, change nothing, and the process
lives; reads, searches and Health go on, and Health's "hilbert.v1.Writes" says writes are off;
freeing space lets writes resume without a restart; a kill -9 while full and a restart on a
nearly full disk lose no acknowledged write, and the restarted server serves reads.
"""
from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path
from typing import List, Tuple

import grpc
import numpy as np
import pytest

from conftest import Server
from helpers import (TIMEOUT, C, create_index, create_source, drop_source, expect_status,
                     get_points, get_source, index_spec, point, search, source_spec, upload,
                     wait_ready)
from hdb_grpc_health.v1 import health_pb2

DIM = 256
BATCH = 200
FS_MIB = 96
CONFIG = """
storage:
  min_free_bytes: 24MiB
  ballast_bytes: 8MiB
  write_buffer_bytes: 2MiB
index:
  snapshot_interval_seconds: 1
  snapshot_min_entries: 1000
"""


def run(*args: str) -> None:
    subprocess.run(list(args), check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


@pytest.fixture
def small_fs(tmp_path: Path):
    """A FS_MIB tmpfs of the test's own, unmounted at the end."""
    if os.geteuid() != 0:
        pytest.skip("mounting a small file system needs root (CI runs as root)")
    mnt = tmp_path / "small"
    mnt.mkdir()
    run("mount", "-t", "tmpfs", "-o", f"size={FS_MIB}m,mode=0755", "tmpfs", str(mnt))
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def fill_file(path: Path, mib: float) -> None:
    """Writes a file of about `mib` MiB (or until the disk is full)."""
    chunk = b"\0" * (1 << 20)
    with open(path, "wb") as f:
        try:
            for _ in range(int(mib)):
                f.write(chunk)
            f.write(chunk[: int((mib - int(mib)) * (1 << 20))])
            f.flush()
        except OSError:
            pass


def free_mib(path: Path) -> float:
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize / (1 << 20)


def wait_for_log(server: Server, text: str, after: str = "", timeout: float = 60.0) -> None:
    """Waits until the server's log has `text` (after the first `after`, if given): the disk
    monitor looks once a second, so this polls with a wide margin."""
    deadline = time.monotonic() + timeout
    while True:
        log = server.log_since_start()
        if text in log[log.find(after) if after and after in log else 0:] and (
                not after or after in log):
            return
        assert time.monotonic() < deadline, f"{text!r} not logged within {timeout} s"
        time.sleep(0.05)


def health(server: Server, service: str = "") -> int:
    return server.health.Check(health_pb2.HealthCheckRequest(service=service),
                               timeout=TIMEOUT).status


def batch(rng: np.random.Generator, first_id: int) -> list:
    vs = rng.random((BATCH, DIM), dtype=np.float32)
    return [point(vs[i], {"id": first_id + i}) for i in range(BATCH)]


def fill(server: Server, rng: np.random.Generator, next_id: int, acked: List[int],
         data_dir: Path) -> Tuple[int, List[int]]:
    """Uploads batches until one is refused; returns the next free id and the refused ids."""
    for _ in range(100000):
        pts = batch(rng, next_id)
        ids = list(range(next_id, next_id + BATCH))
        next_id += BATCH
        try:
            upload(server, "s", pts)
        except grpc.RpcError as e:
            assert e.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, (e.code(), e.details())
            details = e.details()
            assert "disk" in details and "full" in details, details
            assert str(data_dir) in details, details
            assert "storage.min_free_bytes" in details, details
            return next_id, ids
        acked.extend(ids)
    raise AssertionError("the disk never filled")


def assert_found(server: Server, ids: List[int], found: bool) -> None:
    for i in range(0, len(ids), 1000):
        chunk = ids[i:i + 1000]
        res = get_points(server, "s", [{"id": j} for j in chunk]).results
        missing = [j for j, r in zip(chunk, res) if r.found != found]
        assert not missing, (f"{len(missing)} points {'lost' if found else 'written'}, "
                             f"e.g. {missing[:5]}")


def assert_reads_serve(server: Server, acked: List[int], rng: np.random.Generator) -> None:
    assert health(server) == health_pb2.HealthCheckResponse.SERVING
    assert health(server, "hilbert.v1.Search") == health_pb2.HealthCheckResponse.SERVING
    assert health(server, "hilbert.v1.Writes") == health_pb2.HealthCheckResponse.NOT_SERVING
    sample = [acked[i] for i in rng.choice(len(acked), 500, replace=False)]
    assert_found(server, sample, True)
    res = get_points(server, "s", [{"id": sample[0]}]).results[0]
    hits = search(server, "s-flat", np.asarray(res.point.vector.dense.values), 3).results[0].hits
    assert hits and hits[0].attributes["id"].int64_value == sample[0]
    assert hits[0].distance == pytest.approx(0.0, abs=1e-3)


def test_full_disk_is_survived(make_server, small_fs, tmp_path):
    cfg = tmp_path / "hilbertd.yaml"
    cfg.write_text(CONFIG)
    data_dir = small_fs / "data"
    filler = small_fs / "filler"
    fill_file(filler, 16)  # what the operator frees later
    s = make_server(config=cfg, data_dir=data_dir)
    create_source(s, source_spec("s", DIM))
    create_index(s, index_spec("s-flat", "s"))
    create_source(s, source_spec("junk", DIM))
    rng = np.random.default_rng(7)
    for i in range(5):
        upload(s, "junk", batch(rng, i * BATCH))
    acked: List[int] = []

    # 1. Full: refused with a message that says so, nothing of the refused batch is written,
    #    and everything else keeps serving.
    next_id, refused = fill(s, rng, 0, acked, data_dir / "db")
    assert len(acked) > 10 * BATCH
    assert s.alive()
    with expect_status(grpc.StatusCode.RESOURCE_EXHAUSTED, "full", "min_free_bytes"):
        upload(s, "s", batch(rng, next_id))
    assert_found(s, refused, False)
    assert_reads_serve(s, acked, rng)
    assert get_source(s, "s").point_count == len(acked)
    # Drops free space, so they still work.
    drop_source(s, "junk")
    assert [d.spec.name for d in s.catalog.ListDataSources(
        C.ListDataSourcesRequest(), timeout=TIMEOUT).data_sources] == ["s"]

    # 1b. Something else takes most of what is left: the ballast is given up so that RocksDB
    #     keeps room, and reads still serve.
    squeeze = small_fs / "squeeze"
    deadline = time.monotonic() + 60
    while "released the 8.0 MiB ballast" not in s.log_since_start():
        # RocksDB may free space meanwhile (obsolete files after a compaction): keep it short.
        if free_mib(small_fs) > 6.0:
            with open(squeeze, "ab") as f:
                f.write(b"\0" * int((free_mib(small_fs) - 6.0) * (1 << 20)))
        assert time.monotonic() < deadline, "the ballast was not released"
        time.sleep(0.05)
    assert not (data_dir / "ballast").exists()
    assert_reads_serve(s, acked, rng)
    squeeze.unlink()

    # 2. Space is freed: writes resume without a restart, and the ballast comes back.
    filler.unlink()
    r = upload(s, "s", batch(rng, next_id))
    acked.extend(range(next_id, next_id + BATCH))
    next_id += BATCH
    assert r.last_seq - r.first_seq + 1 == BATCH
    assert health(s, "hilbert.v1.Writes") == health_pb2.HealthCheckResponse.SERVING
    wait_for_log(s, "keeping a 8.0 MiB ballast", after="released the 8.0 MiB ballast")

    # 3. Full again, then killed: every acknowledged write survives.
    next_id, refused = fill(s, rng, next_id, acked, data_dir / "db")
    s.kill9()

    # 4. The disk fills up further while hilbertd is down: it still comes up, serves every
    #    acknowledged point, and refuses writes.
    fill_file(small_fs / "blocker", max(free_mib(small_fs) - 1.0, 0.0))
    assert free_mib(small_fs) < 2.0
    s.start()
    assert "released the 8.0 MiB ballast" in s.log_since_start()
    wait_ready(s, "s-flat", timeout=TIMEOUT)
    assert_found(s, acked, True)
    assert_found(s, refused, False)
    # Opening may have deleted files the killed process left behind: fill what that freed.
    fill_file(small_fs / "blocker2", max(free_mib(small_fs) - 1.0, 0.0))
    assert_reads_serve(s, acked, rng)
    with expect_status(grpc.StatusCode.RESOURCE_EXHAUSTED, "full"):
        upload(s, "s", batch(rng, next_id))
    assert get_source(s, "s").point_count == len(acked)

    # 5. Room again: writes resume, and the server stops cleanly.
    (small_fs / "blocker").unlink()
    (small_fs / "blocker2").unlink()
    upload(s, "s", batch(rng, next_id))
    assert get_source(s, "s").point_count == len(acked) + BATCH
    assert s.stop(signal.SIGTERM) == 0, s.log_since_start()[-4000:]
