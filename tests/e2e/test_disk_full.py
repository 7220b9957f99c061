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
from helpers import (TIMEOUT, C, create_index, create_source, drop_source,
                     get_points, get_source, index_spec, point, search, source_spec, upload,
                     wait_ready)
from hdb_grpc_health.v1 import health_pb2

DIM = 256
BATCH = 200
FS_MIB = 96
RESERVE_MIB = 24  # storage.min_free_bytes below
CONFIG = """
storage:
  min_free_bytes: 24MiB
  ballast_bytes: 4MiB
  write_buffer_bytes: 2MiB
index:
  snapshot_interval_seconds: 1
  snapshot_min_entries: 1000
"""


@pytest.fixture
def mount_tmpfs(tmp_path: Path):
    """Factory: mount_tmpfs(mib) -> a tmpfs of that size of the test's own, unmounted at the
    end."""
    if os.geteuid() != 0:
        pytest.skip("mounting a small file system needs root (CI runs as root)")
    mounted: List[Path] = []

    def mount(mib: int) -> Path:
        mnt = tmp_path / f"small{len(mounted)}"
        mnt.mkdir()
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={mib}m,mode=0755", "tmpfs",
                            str(mnt)], capture_output=True, text=True)
        if r.returncode != 0:  # a container without CAP_SYS_ADMIN: say so, loudly
            pytest.skip(f"cannot mount a {mib} MiB tmpfs here: {r.stderr.strip()}")
        mounted.append(mnt)
        return mnt

    try:
        yield mount
    finally:
        for mnt in mounted:
            subprocess.run(["umount", "-l", str(mnt)], check=False)


@pytest.fixture
def small_fs(mount_tmpfs) -> Path:
    return mount_tmpfs(FS_MIB)


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


def pin_below(fs: Path, mib: float) -> None:
    """Grows fs/pin until less than `mib` MiB are free: RocksDB may free space at any moment
    (obsolete files after a compaction), so a check that the disk is full pins it first."""
    pin = fs / "pin"
    while free_mib(fs) >= mib:
        with open(pin, "ab") as f:
            f.write(b"\0" * int((free_mib(fs) - mib + 0.5) * (1 << 20)))


def assert_writes_off(server: Server, fs: Path, reserve_mib: float) -> None:
    """Health says writes are off whenever the disk stayed below the reserve during the call."""
    for _ in range(100):
        pin_below(fs, reserve_mib - 4)
        before = free_mib(fs)
        status = health(server, "hilbert.v1.Writes")
        if before < reserve_mib and free_mib(fs) < reserve_mib:
            assert status == health_pb2.HealthCheckResponse.NOT_SERVING
            return
    raise AssertionError("the disk never stayed below the reserve")


def assert_writes_on(server: Server, fs: Path, reserve_mib: float) -> None:
    """Health says writes are on whenever the disk stayed above the reserve during the call."""
    for _ in range(100):
        before = free_mib(fs)
        status = health(server, "hilbert.v1.Writes")
        if before > reserve_mib + 1 and free_mib(fs) > reserve_mib + 1:
            assert status == health_pb2.HealthCheckResponse.SERVING
            return
        time.sleep(0.05)
    raise AssertionError("the disk never stayed above the reserve")


def assert_upload_refused(server: Server, fs: Path, reserve_mib: float,
                          rng: np.random.Generator, next_id: int, acked: List[int]) -> int:
    """With the disk pinned well below the reserve, an upload is refused and writes nothing. (A
    batch that RocksDB made room for meanwhile is acknowledged, counted, and tried again.)"""
    for _ in range(20):
        pin_below(fs, reserve_mib - 8)
        ids = list(range(next_id, next_id + BATCH))
        next_id += BATCH
        try:
            upload(server, "s", batch(rng, ids[0]))
        except grpc.RpcError as e:
            assert e.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, (e.code(), e.details())
            assert "full" in e.details(), e.details()
            assert_found(server, ids, False)
            return next_id
        acked.extend(ids)
    raise AssertionError("uploads kept succeeding on a pinned disk")


def assert_reads_serve(server: Server, acked: List[int], rng: np.random.Generator, fs: Path,
                       reserve_mib: float) -> None:
    assert health(server) == health_pb2.HealthCheckResponse.SERVING
    assert health(server, "hilbert.v1.Search") == health_pb2.HealthCheckResponse.SERVING
    assert_writes_off(server, fs, reserve_mib)
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
    pin = small_fs / "pin"
    filler, filler2 = small_fs / "filler", small_fs / "filler2"
    fill_file(filler, 16)  # what the operator frees later, once...
    fill_file(filler2, 20)  # ...and again after the restart
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
    assert_found(s, refused, False)
    next_id = assert_upload_refused(s, small_fs, RESERVE_MIB, rng, next_id, acked)
    assert_reads_serve(s, acked, rng, small_fs, RESERVE_MIB)
    assert get_source(s, "s").point_count == len(acked)
    # Drops free space, so they still work.
    drop_source(s, "junk")
    assert [d.spec.name for d in s.catalog.ListDataSources(
        C.ListDataSourcesRequest(), timeout=TIMEOUT).data_sources] == ["s"]

    # 1b. Something else takes most of what is left: the ballast is given up so that RocksDB
    #     keeps room, and reads still serve.
    deadline = time.monotonic() + 60
    while "released the 4.0 MiB ballast" not in s.log_since_start():
        pin_below(small_fs, 6.0)
        assert time.monotonic() < deadline, "the ballast was not released"
        time.sleep(0.05)
    assert not (data_dir / "ballast").exists()
    assert_reads_serve(s, acked, rng, small_fs, RESERVE_MIB)

    # 2. Space is freed: writes resume without a restart, and the ballast comes back.
    pin.unlink()
    filler.unlink()
    assert free_mib(small_fs) > RESERVE_MIB + 4 + 2, free_mib(small_fs)
    r = upload(s, "s", batch(rng, next_id))
    acked.extend(range(next_id, next_id + BATCH))
    next_id += BATCH
    assert r.last_seq - r.first_seq + 1 == BATCH
    wait_for_log(s, "keeping a 4.0 MiB ballast", after="released the 4.0 MiB ballast")
    assert_writes_on(s, small_fs, RESERVE_MIB)

    # 3. Full again, then killed: every acknowledged write survives.
    next_id, refused = fill(s, rng, next_id, acked, data_dir / "db")
    s.kill9()

    # 4. The disk fills up further while hilbertd is down: it still comes up (releasing the
    #    ballast first), serves every acknowledged point, and refuses writes.
    pin_below(small_fs, 1.0)
    s.start()
    assert "released the 4.0 MiB ballast" in s.log_since_start()
    wait_ready(s, "s-flat", timeout=TIMEOUT)
    assert_found(s, acked, True)
    assert_found(s, refused, False)
    assert_reads_serve(s, acked, rng, small_fs, RESERVE_MIB)
    next_id = assert_upload_refused(s, small_fs, RESERVE_MIB, rng, next_id, acked)
    assert get_source(s, "s").point_count == len(acked)

    # 5. Room again: writes resume, and the server stops cleanly.
    pin.unlink()
    filler2.unlink()
    assert free_mib(small_fs) > RESERVE_MIB + 2, free_mib(small_fs)
    upload(s, "s", batch(rng, next_id))
    assert get_source(s, "s").point_count == len(acked) + BATCH
    assert s.stop(signal.SIGTERM) == 0, s.log_since_start()[-4000:]


def test_small_disk_with_the_defaults(make_server, mount_tmpfs):
    """The shipped defaults (a 256 MiB reserve, a 64 MiB ballast) would leave a 64 MiB disk no
    room at all: hilbertd keeps a quarter of it free instead, takes writes until that is
    reached, then refuses them, and loses nothing across a kill -9."""
    fs = mount_tmpfs(64)
    data_dir = fs / "data"
    s = make_server(data_dir=data_dir)
    assert "keeping 16.0 MiB free instead of storage.min_free_bytes" in s.log_since_start()
    create_source(s, source_spec("s", DIM))
    create_index(s, index_spec("s-flat", "s"))
    rng = np.random.default_rng(11)
    acked: List[int] = []
    next_id, refused = fill(s, rng, 0, acked, data_dir / "db")
    assert len(acked) > 10 * BATCH
    assert_reads_serve(s, acked, rng, fs, 16)
    s.kill9()
    s.start()
    wait_ready(s, "s-flat", timeout=TIMEOUT)
    assert_found(s, acked, True)
    assert_found(s, refused, False)
    assert s.stop(signal.SIGTERM) == 0, s.log_since_start()[-4000:]
