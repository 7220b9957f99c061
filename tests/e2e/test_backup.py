"""Online backup (hilbert.v1.Admin/Backup) and restore (hilbertd --restore): a backup taken while
writers keep uploading holds every upload acknowledged before the call began; restored into a
new data dir, the server's indices load their snapshots (no rebuild) and answer searches. Bad
paths get INVALID_ARGUMENT / ALREADY_EXISTS / PERMISSION_DENIED naming the field; a restore
into a non-empty dir, or from a directory that is not a backup, exits 2.

One server for the module (storage.backup_dir set, snapshots every 100 entries so that the
appliers replace their snapshots while a backup copies them); small 8-d data.
"""
import re
import subprocess
import threading

import grpc
import numpy as np
import pytest

from conftest import HILBERTD, Server
from helpers import (INT64, L2, create_index, create_source, expect_status, get_index,
                     get_points, get_source, hit_ids, index_spec, point, search, source_spec,
                     upload, vec_of, wait_ready)
from ann_helpers import ann_spec, create
from hilbert.v1 import admin_pb2, admin_pb2_grpc
from hilbertdb import Client

DIM = 8
BASE = 400


def vecs(ids):
    """A fixed vector per id, so that a Get can check the restored vector too."""
    return np.stack([np.random.default_rng(i).standard_normal(DIM).astype(np.float32)
                     for i in ids])


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    d = tmp_path_factory.mktemp("backup")
    (d / "backups").mkdir()
    cfg = d / "hilbertd.yaml"
    cfg.write_text(f"storage:\n  backup_dir: {d / 'backups'}\n"
                   "index:\n  snapshot_every_entries: 100\n")
    s = Server(d / "data", d / "hilbertd.log", config=cfg)
    s.start()
    create_source(s, source_spec("b", DIM, [("id", INT64)], ["id"]))
    upload(s, "b", [point(v, {"id": i}) for i, v in zip(range(BASE), vecs(range(BASE)))])
    create_index(s, index_spec("flat", "b", L2))
    create(s, ann_spec("hnsw", "b", L2, "hnsw", m=8, ef_construction=64))
    wait_ready(s, "flat")
    wait_ready(s, "hnsw")
    yield d, s
    code = s.stop()
    assert code == 0, f"hilbertd exited with {code}:\n{s.log_since_start()[-4000:]}"


def admin(s):
    return admin_pb2_grpc.AdminStub(s.channel)


def restore(backup, data_dir):
    return subprocess.run([HILBERTD, "--restore", str(backup), "--data-dir", str(data_dir)],
                          capture_output=True, text=True, timeout=300)


def test_backup_under_writes_restores_everything_acknowledged(env, make_server):
    d, s = env
    acked, lock, stop = [], threading.Lock(), threading.Event()
    errors = []

    def writer(w):
        n = 0
        try:
            while not stop.is_set() or n < 3:  # at least a few batches after the backup, too
                ids = [100000 * (w + 1) + n * 10 + j for j in range(10)]
                upload(s, "b", [point(v, {"id": i}) for i, v in zip(ids, vecs(ids))])
                with lock:
                    acked.extend(ids)
                n += 1
        except Exception as e:  # noqa: BLE001  (reported below)
            errors.append(e)

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(3)]
    for t in threads:
        t.start()
    # Let the writers get going (and the appliers write a few snapshots) before the backup.
    while True:
        with lock:
            if len(acked) >= 300 or errors:
                break
        threading.Event().wait(0.01)
    with lock:
        before = list(acked)
    seq_before = get_source(s, "b").last_seq
    with Client(f"127.0.0.1:{s.port}") as db:
        info = db.backup(str(d / "backups" / "b1"))
    stop.set()
    for t in threads:
        t.join()
    assert not errors, errors
    assert info.path == str((d / "backups" / "b1").resolve())
    assert info.indices == 2 and info.bytes > 0
    assert info.source_seqs["b@1"] >= seq_before
    assert (d / "backups" / "b1" / "BACKUP").is_file()
    assert len(acked) > len(before)  # writes went on around the backup

    out = restore(d / "backups" / "b1", d / "restored")
    assert out.returncode == 0, out.stderr
    assert "restored" in out.stdout and "2 index snapshots" in out.stdout, out.stdout
    assert "data source b@1" in out.stdout, out.stdout

    r = make_server(data_dir=d / "restored")
    for name in ("flat", "hnsw"):
        st = wait_ready(r, name).status
        assert st.applied_seq >= info.source_seqs["b@1"]
    log = r.log_since_start()
    for name in ("flat", "hnsw"):
        lines = [l for l in log.splitlines() if f"[applier] {name}@1:" in l]
        assert any("loaded snapshot at seq" in l for l in lines), lines
        assert not any("building" in l or "rebuilding" in l for l in lines), lines
    # Every upload acknowledged before the backup began, with its vector.
    ids = list(range(0, BASE, 37)) + before
    got = get_points(r, "b", [{"id": i} for i in ids])
    missing = [i for i, res in zip(ids, got.results) if not res.found]
    assert not missing, f"{len(missing)} acknowledged uploads missing, e.g. {missing[:5]}"
    for res, v in zip(got.results, vecs(ids)):
        np.testing.assert_array_equal(vec_of(res.point.vector), v)
    assert get_source(r, "b").point_count >= BASE + len(before)
    # Searches work on both indices: a stored vector finds itself first.
    q = vecs([before[-1]])
    for name in ("flat", "hnsw"):
        res = search(r, name, q, 5)
        assert hit_ids(res.results[0])[0] == before[-1]
    # The original server still serves; its backup left nothing pinned.
    wait_ready(s, "flat")


def test_bad_paths_name_the_field(env, tmp_path):
    d, s = env
    a = admin(s)
    with expect_status(grpc.StatusCode.INVALID_ARGUMENT, "path", "required"):
        a.Backup(admin_pb2.BackupRequest(path=""))
    with expect_status(grpc.StatusCode.INVALID_ARGUMENT, "path", "absolute"):
        a.Backup(admin_pb2.BackupRequest(path="backups/rel"))
    full = d / "backups" / "full"
    full.mkdir()
    (full / "x").write_text("x")
    with expect_status(grpc.StatusCode.ALREADY_EXISTS, "path", "not empty"):
        a.Backup(admin_pb2.BackupRequest(path=str(full)))
    assert sorted(p.name for p in full.iterdir()) == ["x"]  # left as it was
    with expect_status(grpc.StatusCode.PERMISSION_DENIED, "path", "storage.backup_dir"):
        a.Backup(admin_pb2.BackupRequest(path=str(tmp_path / "elsewhere")))
    assert not (tmp_path / "elsewhere").exists()
    with expect_status(grpc.StatusCode.PERMISSION_DENIED, "path", "storage.backup_dir"):
        a.Backup(admin_pb2.BackupRequest(path=str(d / "backups" / ".." / "escape")))
    with expect_status(grpc.StatusCode.INVALID_ARGUMENT, "path", "parent"):
        a.Backup(admin_pb2.BackupRequest(path=str(d / "backups" / "no" / "such")))
    # An existing empty directory is fine.
    (d / "backups" / "empty").mkdir()
    r = a.Backup(admin_pb2.BackupRequest(path=str(d / "backups" / "empty")))
    assert r.indices == 2 and r.source_seqs["b@1"] > 0


def test_restore_refuses_non_empty_target_and_non_backups(env, tmp_path):
    d, s = env
    a = admin(s)
    a.Backup(admin_pb2.BackupRequest(path=str(d / "backups" / "b3")))
    target = tmp_path / "busy"
    target.mkdir()
    (target / "keep").write_text("mine")
    out = restore(d / "backups" / "b3", target)
    assert out.returncode == 2, out
    assert "not empty" in out.stderr, out.stderr
    assert sorted(p.name for p in target.iterdir()) == ["keep"]
    out = restore(tmp_path, tmp_path / "new")  # a directory without a BACKUP manifest
    assert out.returncode == 2, out
    assert "not a hilbertd backup" in out.stderr, out.stderr
    assert not (tmp_path / "new").exists()
