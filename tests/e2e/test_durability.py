"""Durability: a clean restart keeps everything; kill -9 during a stream of uploads loses
nothing that was acknowledged (storage.sync true and false); uploads are atomic across a crash;
the data directory lock and the listen port keep a second hilbertd out."""
import re
import signal
import threading
import time

import grpc
import numpy as np
import pytest

from conftest import Server
from hilbert.v1 import catalog_pb2 as C
from hilbert.v1 import points_pb2

from helpers import (BOOL, COSINE, INT64, IP, L2, STRING, TIMEOUT, assert_serving, check_knn,
                     create_index, create_source, drop_index, drop_source, ds_ref,
                     expect_status, fmnist, fmnist_points, get_index, get_points, get_source,
                     hit_ids, index_spec, point, search, source_spec, tombstone, upload,
                     upload_batches, values_of, vec_of, wait_ready)


def snapshot(s, queries):
    """Everything observable: catalog listings with status, every point, search results."""
    sources = s.catalog.ListDataSources(C.ListDataSourcesRequest(), timeout=TIMEOUT)
    for src in sources.data_sources:  # the order of `indices` is not part of the contract
        refs = sorted(src.indices, key=lambda r: (r.name, r.version))
        del src.indices[:]
        src.indices.extend(refs)
        # What the timeline retains depends on when snapshots ran (a clean stop takes one and
        # trims) and its byte count on when RocksDB flushed: check it is sane, compare the rest.
        assert 1 <= src.timeline_first_seq <= src.last_seq + 1
        assert src.timeline_entries == src.last_seq + 1 - src.timeline_first_seq
        src.timeline_first_seq = src.timeline_entries = src.timeline_bytes = 0
    # Indices load (or rebuild) in the background after a start: wait until they have caught up.
    for ix in s.catalog.ListIndices(C.ListIndicesRequest(), timeout=TIMEOUT).indices:
        wait_ready(s, ix.spec.name, ix.spec.version)
    indices = s.catalog.ListIndices(C.ListIndicesRequest(), timeout=TIMEOUT)
    for ix in indices.indices:
        # lag_seconds is a clock reading, and the snapshot fields depend on when snapshots ran;
        # compare the rest
        ix.status.lag_seconds = 0
        ix.status.snapshot_seq = 0
        ix.status.snapshot_time_micros = 0
        ix.status.timeline_entries = ix.status.timeline_bytes = 0
        # split order is not part of the contract
        splits = sorted(ix.status.splits, key=lambda sp: sp.SerializeToString(deterministic=True))
        del ix.status.splits[:]
        ix.status.splits.extend(splits)
    pts = get_points(s, "fm", [{"id": i} for i in range(2100)])
    res = {}
    for name, flt in (("fm-l2", None), ("fm-ip", {"label": 3}), ("fm-cos", None)):
        r = search(s, name, queries, 10, split_filter=flt, retrieve_vectors=True)
        res[name] = r
    return sources, indices, pts, res


def test_restart_keeps_everything(server):
    x, y = fmnist("train", 2000)
    q, _ = fmnist("test", 20)
    s = server
    create_source(s, source_spec("fm", 784, [("id", INT64), ("label", INT64)], ["id"]))
    create_source(s, source_spec("other", 3, [("k", STRING), ("b", BOOL)], ["k", "b"]))
    create_index(s, index_spec("fm-l2", "fm", L2))
    upload_batches(s, "fm", fmnist_points(x, y, range(2000)), 500)
    create_index(s, index_spec("fm-ip", "fm", IP, ["label"]))
    create_index(s, index_spec("fm-cos", "fm", COSINE))
    # Replace some points (new vector and payload), delete some, add a few more.
    upload(s, "fm", [point(x[(i + 1) % 2000], {"id": i, "label": int(y[i]), "v": 2})
                     for i in range(0, 100, 10)])
    upload(s, "fm", [tombstone({"id": i}) for i in range(5, 100, 10)] +
           [tombstone({"id": 99999})])
    upload(s, "other", [point([1, 2, 3], {"k": "a", "b": True})])
    before = snapshot(s, q)
    last = get_source(s, "fm").last_seq
    assert get_source(s, "fm").point_count == 1990

    assert s.stop(signal.SIGTERM) == 0, s.log_since_start()[-3000:]
    s.start()
    after = snapshot(s, q)
    assert after[0] == before[0], (f"data sources differ after restart:\n{before[0]}\n"
                                   f"-- after --\n{after[0]}")
    assert after[1] == before[1], "indices differ after restart"
    assert after[2] == before[2], "points differ after restart"
    for name in before[3]:
        assert after[3][name] == before[3][name], f"search of {name} differs after restart"
    # Seqs continue after the last one.
    r = upload(s, "fm", [point(x[0], {"id": 5000, "label": 0})])
    assert r.first_seq == last + 1
    r = upload(s, "other", [point([0, 0, 1], {"k": "b", "b": False})])
    assert r.first_seq == 2
    # Indices keep being fed after the restart.
    st = wait_ready(s, "fm-l2").status
    assert st.size == 1991 and st.applied_seq == last + 1 and st.lag_entries == 0
    res = search(s, "fm-cos", x[0], 3).results[0]
    assert 5000 in hit_ids(res)
    # And results are still exact after the restart.
    live = np.array([i for i in range(2000) if not (i < 100 and i % 10 == 5)] + [5000])
    base = np.array([x[(i + 1) % 2000] if (i < 100 and i % 10 == 0) else
                     (x[0] if i == 5000 else x[i]) for i in live])
    check_knn(search(s, "fm-l2", q, 10), base, live, q, L2, 10)
    # Second restart (SIGINT this time), after more writes, still fine.
    assert s.stop(signal.SIGINT) == 0, s.log_since_start()[-3000:]
    s.start()
    assert get_source(s, "fm").last_seq == last + 1
    assert get_source(s, "other").point_count == 2


def test_drops_survive_restart(server):
    s = server
    create_source(s, source_spec("gone", 2, [("id", INT64)], ["id"]))
    create_source(s, source_spec("kept", 2, [("id", INT64)], ["id"]))
    create_index(s, index_spec("gone-ix", "gone", L2))
    create_index(s, index_spec("kept-ix", "kept", L2))
    create_index(s, index_spec("kept-ix2", "kept", IP))
    upload(s, "gone", [point([i, 1], {"id": i}) for i in range(20)])
    upload(s, "kept", [point([i, 2], {"id": i}) for i in range(7)])
    drop_index(s, "gone-ix")
    drop_index(s, "kept-ix2")
    drop_source(s, "gone")
    s.restart()
    with expect_status(grpc.StatusCode.NOT_FOUND, "gone"):
        get_source(s, "gone")
    with expect_status(grpc.StatusCode.NOT_FOUND, "gone-ix"):
        get_index(s, "gone-ix")
    with expect_status(grpc.StatusCode.NOT_FOUND, "kept-ix2"):
        get_index(s, "kept-ix2")
    assert [(r.name, r.version) for r in get_source(s, "kept").indices] == [("kept-ix", "1")]
    assert wait_ready(s, "kept-ix").status.size == 7
    # Recreated after the restart: empty, seqs from 1, none of the old points.
    create_source(s, source_spec("gone", 2, [("id", INT64)], ["id"]))
    info = get_source(s, "gone")
    assert info.point_count == 0 and info.last_seq == 0
    assert not any(r.found for r in get_points(s, "gone", [{"id": i} for i in range(20)]).results)
    create_index(s, index_spec("gone-ix", "gone", L2))
    assert wait_ready(s, "gone-ix").status.size == 0
    assert upload(s, "gone", [point([0, 0], {"id": 100})]).first_seq == 1
    s.restart()
    assert get_source(s, "gone").point_count == 1
    assert wait_ready(s, "gone-ix").status.size == 1
    assert not get_points(s, "gone", [{"id": 3}]).results[0].found


SYNC_FALSE = "storage:\n  sync: false\n"


@pytest.mark.parametrize("sync", [True, False], ids=["sync", "nosync"])
def test_kill9_during_uploads_loses_nothing_acknowledged(make_server, tmp_path, sync):
    cfg = None
    if not sync:
        cfg = tmp_path / "nosync.yaml"
        cfg.write_text(SYNC_FALSE)
    s = make_server(config=cfg)
    dim = 16
    create_source(s, source_spec("k", dim, [("id", INT64), ("w", INT64)], ["id"]))
    create_index(s, index_spec("k-l2", "k", L2, ["w"]))
    rng = np.random.default_rng(11)
    acked = {}      # id -> (vector, seq)
    attempted = []  # (ids, acknowledged?)
    stop = threading.Event()
    errors = []
    stub = s.points  # bound to the channel that kill9 closes

    def writer(w):
        n = 0
        while not stop.is_set():
            ids = [w * 1_000_000 + n + j for j in range(5)]
            n += 5
            vs = rng.standard_normal((5, dim)).astype(np.float32) if w == 0 else \
                np.random.default_rng(n + w).standard_normal((5, dim)).astype(np.float32)
            req = points_pb2.UploadRequest(
                data_source=ds_ref("k"),
                points=[point(v, {"id": i, "w": w, "pay": f"{i}"}) for i, v in zip(ids, vs)])
            entry = [ids, False]
            attempted.append(entry)
            try:
                r = stub.Upload(req, timeout=TIMEOUT)
            except Exception as e:  # noqa: BLE001  (the server was killed)
                errors.append(e)
                return
            assert r.last_seq - r.first_seq == 4
            for j, (i, v) in enumerate(zip(ids, vs)):
                acked[i] = (v, r.first_seq + j)
            entry[1] = True

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(3)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 60
    while len(acked) < 600 and time.monotonic() < deadline and not errors:
        time.sleep(0.005)
    assert not errors, errors
    s.kill9()
    stop.set()
    for t in threads:
        t.join(timeout=60)
    assert len(acked) >= 600
    max_seq = max(seq for _, seq in acked.values())

    s.start()
    info = get_source(s, "k")
    assert info.last_seq >= max_seq
    ids = sorted(acked)
    got = []
    for b in range(0, len(ids), 1000):
        got += list(get_points(s, "k", [{"id": i} for i in ids[b:b + 1000]]).results)
    missing = [i for i, g in zip(ids, got) if not g.found]
    assert not missing, f"{len(missing)} acknowledged points lost, e.g. {missing[:5]}"
    for i, g in zip(ids, got):
        v, seq = acked[i]
        assert vec_of(g.point.vector).tobytes() == v.tobytes(), f"vector of {i} differs"
        assert g.seq == seq, (i, g.seq, seq)
        assert values_of(g.point.attributes) == {"id": i, "w": i // 1_000_000, "pay": str(i)}
    # Atomicity: a batch that was in flight is there completely or not at all.
    present_total = 0
    for bids, ok in attempted:
        found = [r.found for r in get_points(s, "k", [{"id": i} for i in bids]).results]
        assert all(found) or not any(found), f"batch {bids} partly written: {found}"
        assert all(found) or not ok
        present_total += len(bids) if all(found) else 0
    assert info.point_count == present_total
    assert info.last_seq == present_total  # every seq was an upload of a new id
    # The index was rebuilt/recovered with every point, and searches find them.
    st = wait_ready(s, "k-l2").status
    assert st.size == info.point_count and st.applied_seq == info.last_seq
    assert st.lag_entries == 0
    sample = ids[:: max(1, len(ids) // 50)]
    for i in sample:
        v, _ = acked[i]
        res = search(s, "k-l2", v, 1, split_filter={"w": i // 1_000_000}).results[0]
        assert hit_ids(res) == [i] and res.hits[0].distance == pytest.approx(0, abs=1e-4)
    # Writes continue after the last seq.
    r = upload(s, "k", [point(np.ones(dim), {"id": -1, "w": 9})])
    assert r.first_seq == info.last_seq + 1
    assert_serving(s)


def test_second_server_on_same_data_dir_fails(server, tmp_path):
    create_source(server, source_spec("s", 2))
    upload(server, "s", [point([1, 2], {"id": 1})])
    other = Server(server.data_dir, tmp_path / "second.log")
    with pytest.raises(RuntimeError):
        other.start()
    code = other.proc.returncode
    other.proc = None
    assert code != 0
    log = other.log_since_start()
    assert re.search(r"lock", log, re.I), log
    # The first server is unaffected.
    assert_serving(server)
    assert get_source(server, "s").point_count == 1
    upload(server, "s", [point([3, 4], {"id": 2})])
    assert get_source(server, "s").point_count == 2


def test_second_server_on_same_port_fails(server, tmp_path):
    port = server.port
    other = Server(tmp_path / "other-data", tmp_path / "port.log",
                   extra_args=["--listen", f"127.0.0.1:{port}"])
    with pytest.raises(RuntimeError):
        other.start()
    code = other.proc.returncode
    other.proc = None
    assert code != 0
    log = other.log_since_start()
    assert f"127.0.0.1:{port}" in log, log
    assert re.search(r"in use|bind|listen", log, re.I), log
    assert_serving(server)
