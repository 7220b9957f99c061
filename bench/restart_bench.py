#!/usr/bin/python3
"""Restart benchmark: how long until an HNSW index serves again after a restart, loading its
snapshot and replaying the timeline's tail, next to rebuilding it from the data source.

On Fashion-MNIST train (60,000 x 784, L2), one hilbertd with one HNSW index (m 16,
ef_construction 200):
  1. upload the 60k points, create the index, wait until READY, stop cleanly (SIGTERM: the
     applier saves a final snapshot at seq 60,000);
  2. start, upload --tail more points (the test images), kill the process (SIGKILL: no final
     snapshot, so the snapshot stays at seq 60,000 and the tail must be replayed);
  3. start and time until the index is READY with applied_seq == the source's last seq:
     "snapshot + tail replay";
  4. stop cleanly, delete the index's snapshot directory, start and time again: "full rebuild"
     (the log says the snapshot is missing and the index is rebuilt from the points);
  5. stop cleanly (a final snapshot at the last seq), start and time again: "snapshot, no
     tail";
  6. each time, check that a search answers and that the first test image finds itself.
Times are from spawning the process: to listening (process start: RocksDB open, catalog load)
and to READY. The log lines of the applier are printed as evidence of what it did.

With --under-load SECONDS, step 2 is a kill under write load instead: 4 writers replace
random points (new vectors for existing ids, batches of 100) for that long and the process is
killed while they write. The data dir is then copied, and the two restarts (snapshot + tail
replay, and a rebuild with the snapshot removed) start from the same files; each checks that
the last acknowledged vector of a sample of replaced ids finds its id.

Usage:  /usr/bin/python3 bench/restart_bench.py [--tail 2000] [--under-load 20]
Writes: bench/results/restart.json (restart_load.json with --under-load)
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "build" / "python"))
sys.path.insert(0, str(ROOT / "clients" / "python"))
sys.path.insert(0, str(ROOT / "bench"))

import benchlib  # noqa: E402
import grpc  # noqa: E402
from hilbert.v1 import catalog_pb2 as C, catalog_pb2_grpc  # noqa: E402
from hilbert.v1 import points_pb2 as P, points_pb2_grpc  # noqa: E402
from hilbert.v1 import search_pb2 as S, search_pb2_grpc  # noqa: E402
from hilbert.v1 import types_pb2 as T  # noqa: E402
from hilbertdb.datasets import fashion_mnist_vectors  # noqa: E402

CONFIG = ("server:\n  threads: 2\n  max_receive_message_bytes: 256MiB\n"
          "storage:\n  sync: false\n")
SRC = T.DataSourceRef(name="fmnist", version="1")
IDX = T.IndexRef(name="fmnist-hnsw", version="1")


class Node:
    """hilbertd on workdir, with stubs."""

    def __init__(self, workdir: Path):
        self.hdb = benchlib.Hilbertd(CONFIG, workdir=workdir)
        self.listening = time.perf_counter() - self.hdb.started
        self.channel = grpc.insecure_channel(
            self.hdb.target, options=[("grpc.max_send_message_length", 256 << 20)])
        grpc.channel_ready_future(self.channel).result(timeout=30)
        self.catalog = catalog_pb2_grpc.CatalogStub(self.channel)
        self.points = points_pb2_grpc.PointsStub(self.channel)
        self.search = search_pb2_grpc.SearchStub(self.channel)

    def wait_ready(self, timeout: float = 1800) -> float:
        """Seconds from the spawn until the index is READY and caught up."""
        deadline = time.perf_counter() + timeout
        while True:
            st = self.catalog.GetIndex(C.GetIndexRequest(index=IDX), timeout=30).status
            if st.state == C.INDEX_STATE_READY and st.applied_seq == st.source_last_seq:
                return time.perf_counter() - self.hdb.started
            if st.state == C.INDEX_STATE_FAILED:
                raise RuntimeError(f"index failed: {st.detail}")
            if time.perf_counter() > deadline:
                raise RuntimeError(f"index not ready: {st}")
            time.sleep(0.005)

    def upload(self, x: np.ndarray, first_id: int) -> int:
        last = 0
        for s in range(0, len(x), 1000):
            pts = []
            for i, row in enumerate(x[s:s + 1000]):
                p = T.DataPoint(vector=T.Vector(dense=T.DenseVector(values=row)))
                p.attributes["id"].int64_value = first_id + s + i
                pts.append(p)
            last = self.points.Upload(P.UploadRequest(data_source=SRC, points=pts),
                                      timeout=300).last_seq
        return last

    def nearest_id(self, q: np.ndarray) -> int:
        r = self.search.Search(S.SearchRequest(
            index=IDX, k=1, query_vectors=[T.Vector(dense=T.DenseVector(values=q))]), timeout=60)
        return r.results[0].hits[0].attributes["id"].int64_value

    def applier_log(self) -> list[str]:
        return [ln for ln in self.hdb.log_text().splitlines()
                if "applier" in ln and "fmnist-hnsw" in ln]

    def stop(self, kill: bool = False) -> None:
        self.channel.close()
        self.hdb.stop(kill=kill)


def under_load(args, work: Path, x: np.ndarray, q: np.ndarray, rows: dict) -> None:
    """A kill while 4 writers replace points; then replay and rebuild from the same files."""
    n = Node(work)
    n.wait_ready()
    writers, stop, acked, lock = 4, threading.Event(), {}, threading.Lock()
    counts = [0] * writers

    def writer(w: int) -> None:
        rng = np.random.default_rng(w)
        while not stop.is_set():
            ids = rng.choice(np.arange(w, len(x), writers), 100, replace=False)
            # A test image plus a little noise: every vector written is unique, so it must
            # find its own id first.
            vecs = (q[rng.integers(0, len(q), 100)] +
                    rng.random((100, q.shape[1]), dtype=np.float32) * 0.01)
            pts = []
            for pid, v in zip(ids, vecs):
                p = T.DataPoint(vector=T.Vector(dense=T.DenseVector(values=v)))
                p.attributes["id"].int64_value = int(pid)
                pts.append(p)
            try:
                n.points.Upload(P.UploadRequest(data_source=SRC, points=pts), timeout=300)
            except grpc.RpcError as e:
                if e.code() == grpc.StatusCode.RESOURCE_EXHAUSTED:
                    time.sleep(0.05)  # backpressure: the index lags; retry
                    continue
                return  # the kill
            with lock:
                acked.update(zip(ids.tolist(), vecs))
            counts[w] += 100

    threads = [threading.Thread(target=writer, args=(w,), daemon=True) for w in range(writers)]
    for t in threads:
        t.start()
    time.sleep(args.under_load)
    st = n.catalog.GetIndex(C.GetIndexRequest(index=IDX), timeout=30).status
    n.hdb.proc.kill()
    stop.set()
    for t in threads:
        t.join(timeout=60)
    n.stop(kill=True)
    with lock:
        sample = list(acked.items())[-200:]
    print(f"  {sum(counts)} replacements acknowledged in {args.under_load} s, lag at the kill "
          f"{st.lag_entries} entries ({st.lag_seconds:.1f} s); SIGKILL", flush=True)
    copy = Path(str(work) + "-rebuild")
    shutil.copytree(work, copy)
    try:
        dirs = [d for d in (copy / "data" / "indices").iterdir() if d.is_dir()]
        shutil.rmtree(dirs[0])
        for what, wd in (("snapshot", work), ("rebuild", copy)):
            m = Node(wd)
            ready = m.wait_ready()
            hits = sum(m.nearest_id(v) == pid for pid, v in sample)
            rows[what] = {"listening_s": round(m.listening, 3), "ready_s": round(ready, 3),
                          "self_hits": f"{hits}/{len(sample)}"}
            print(f"  restart ({what}): index READY after {ready:.2f} s; {hits}/{len(sample)} "
                  f"replaced vectors find their id", flush=True)
            for ln in m.applier_log():
                print("    log: " + ln.split("applier", 1)[1].strip(" ]:"), flush=True)
            m.stop()
    finally:
        shutil.rmtree(copy, ignore_errors=True)
    rows.update({"points": len(x), "replacements": sum(counts), "seconds": args.under_load,
                 "lag_at_kill": st.lag_entries, "loadavg": os.getloadavg()})
    print(f"  serving again after a kill under load: {rows['snapshot']['ready_s']:.2f} s from "
          f"the snapshot and its tail, {rows['rebuild']['ready_s']:.2f} s rebuilding", flush=True)
    benchlib.write_json(ROOT / "bench" / "results" / "restart_load.json", rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tail", type=int, default=2000,
                    help="points uploaded after the snapshot, replayed at the restart")
    ap.add_argument("--under-load", type=float, default=0, metavar="SECONDS",
                    help="kill while 4 writers replace points for this long (see above)")
    args = ap.parse_args()
    x, _ = fashion_mnist_vectors("train")
    q, _ = fashion_mnist_vectors("test", limit=max(args.tail, 1))
    work = Path(tempfile.mkdtemp(prefix="hdb-restart-"))
    rows = {}
    try:
        print(f"== restart benchmark: HNSW m16 efc200 on {len(x)} x {x.shape[1]}, tail "
              f"{args.tail}; load {os.getloadavg()[0]:.2f}", flush=True)
        n = Node(work)
        n.catalog.CreateDataSource(C.CreateDataSourceRequest(spec=C.DataSourceSpec(
            name=SRC.name, version=SRC.version, dimension=x.shape[1],
            permanent_attributes=[C.AttributeSpec(name="id", type=T.ATTRIBUTE_TYPE_INT64)],
            id_attributes=["id"])), timeout=30)
        last = n.upload(x, 0)
        t0 = time.perf_counter()
        n.catalog.CreateIndex(C.CreateIndexRequest(spec=C.IndexSpec(
            name=IDX.name, version=IDX.version, data_source=SRC, metric=C.METRIC_L2,
            algorithm=C.IndexAlgorithm(hnsw=C.HnswAlgorithm(m=16, ef_construction=200)))),
            timeout=60)
        n.wait_ready()
        rows["first_build_s"] = round(time.perf_counter() - t0, 2)
        print(f"  first build: {rows['first_build_s']} s (seq {last})", flush=True)
        n.stop()

        if args.under_load:
            under_load(args, work, x, q, rows)
            return
        n = Node(work)
        n.wait_ready()
        tail_last = n.upload(q[:args.tail], len(x)) if args.tail else last
        n.stop(kill=True)
        print(f"  uploaded a tail of {args.tail} points (last seq {tail_last}), then SIGKILL",
              flush=True)

        for what in ("snapshot", "rebuild", "clean"):
            if what == "rebuild":
                dirs = [d for d in (work / "data" / "indices").iterdir() if d.is_dir()]
                assert len(dirs) == 1, dirs
                shutil.rmtree(dirs[0])
            n = Node(work)
            ready = n.wait_ready()
            found = n.nearest_id(q[0])
            assert found == len(x), f"test image 0 should find itself (id {len(x)}), got {found}"
            rows[what] = {"listening_s": round(n.listening, 3), "ready_s": round(ready, 3)}
            print(f"  restart ({what}): listening after {n.listening:.3f} s, index READY "
                  f"after {ready:.3f} s", flush=True)
            for ln in n.applier_log():
                print("    log: " + ln.split("applier", 1)[1].strip(" ]:"), flush=True)
            n.stop()
        rows.update({"points": len(x), "tail": args.tail, "loadavg": os.getloadavg()})
        ratio = rows["rebuild"]["ready_s"] / rows["snapshot"]["ready_s"]
        print(f"  serving again: {rows['snapshot']['ready_s']:.2f} s with the snapshot and a "
              f"{args.tail}-entry tail, {rows['clean']['ready_s']:.2f} s with the snapshot "
              f"alone, vs {rows['rebuild']['ready_s']:.2f} s rebuilding ({ratio:.0f}x)",
              flush=True)
        benchlib.write_json(ROOT / "bench" / "results" / "restart.json", rows)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
