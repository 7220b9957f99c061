#!/usr/bin/python3
"""Lag benchmark: how far an HNSW index falls behind its data source under a mixed load of many
clients, with index.lag_mode backpressure (the default) and fall_behind, and how long a clean
stop (SIGTERM) takes under that load.

For each mode, one hilbertd with one HNSW index (m 16, ef_construction 200) on --points
Fashion-MNIST train vectors (784-d, L2):
  1. upload the points, create the index, wait until READY;
  2. run --clients client threads for --seconds: each call is a search (k 10, 50%), an upload
     replacing 10 random points (30%), a delete of one random point followed by its
     re-upload (10%), or a Get of 10 random points (10%);
  3. sample GetIndex every 0.25 s: lag in entries and seconds, and the `lagging` flag;
  4. count the calls of each kind and their outcomes (RESOURCE_EXHAUSTED: backpressure);
  5. send SIGTERM while the load still runs and time the exit (server.shutdown_grace_ms 10 s).
The baseline is the same load without any index (nothing can lag): the upload throughput the
source alone takes.

Usage:  /usr/bin/python3 bench/lag_bench.py [--points 50000] [--clients 64] [--seconds 60]
Writes: bench/results/lag.json
"""
from __future__ import annotations

import argparse
import os
import random
import signal
import sys
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

SRC = T.DataSourceRef(name="fm", version="1")
IDX = T.IndexRef(name="fm-hnsw", version="1")


def config(mode: str) -> str:
    return ("server:\n  max_receive_message_bytes: 256MiB\n"
            "storage:\n  sync: false\n"
            f"index:\n  lag_mode: {mode}\n")


def dp(row: np.ndarray, pid: int) -> T.DataPoint:
    p = T.DataPoint(vector=T.Vector(dense=T.DenseVector(values=row)))
    p.attributes["id"].int64_value = pid
    return p


def pid_of(pid: int) -> P.PointId:
    r = P.PointId()
    r.id_attributes["id"].int64_value = pid
    return r


def run(mode: str | None, x: np.ndarray, clients: int, seconds: float) -> dict:
    """One run; mode None: no index (the baseline)."""
    hdb = benchlib.Hilbertd(config(mode or "backpressure"), prefix="hdb-lag-")
    ch = grpc.insecure_channel(hdb.target, options=[("grpc.max_send_message_length", 256 << 20)])
    cat = catalog_pb2_grpc.CatalogStub(ch)
    pts = points_pb2_grpc.PointsStub(ch)
    srch = search_pb2_grpc.SearchStub(ch)
    n = len(x)
    spec = C.DataSourceSpec(name="fm", version="1", vector_kind=C.VECTOR_KIND_DENSE,
                            dimension=x.shape[1],
                            permanent_attributes=[C.AttributeSpec(name="id", type=T.ATTRIBUTE_TYPE_INT64)],
                            id_attributes=["id"])
    cat.CreateDataSource(C.CreateDataSourceRequest(spec=spec), timeout=30)
    for s in range(0, n, 1000):
        pts.Upload(P.UploadRequest(data_source=SRC, points=[dp(x[i], i) for i in
                                                            range(s, min(n, s + 1000))]),
                   timeout=300)
    build_s = 0.0
    if mode is not None:
        t0 = time.perf_counter()
        cat.CreateIndex(C.CreateIndexRequest(spec=C.IndexSpec(
            name="fm-hnsw", version="1", data_source=SRC, metric=C.METRIC_L2,
            algorithm=C.IndexAlgorithm(hnsw=C.HnswAlgorithm(m=16, ef_construction=200)))),
            timeout=60)
        while True:
            st = cat.GetIndex(C.GetIndexRequest(index=IDX), timeout=30).status
            if st.state == C.INDEX_STATE_READY and st.applied_seq == st.source_last_seq:
                break
            time.sleep(0.05)
        build_s = time.perf_counter() - t0
        print(f"   [{mode}] index built in {build_s:.1f} s", flush=True)

    stop = threading.Event()
    lock = threading.Lock()
    counts: dict = {}
    samples = []

    def count(kind: str, outcome: str) -> None:
        with lock:
            counts.setdefault(kind, {}).setdefault(outcome, 0)
            counts[kind][outcome] += 1

    def call(kind: str, fn) -> None:
        try:
            fn()
            count(kind, "OK")
        except grpc.RpcError as e:
            count(kind, e.code().name)

    def client(c: int) -> None:
        rng = random.Random(c)
        while not stop.is_set():
            r = rng.random()
            if r < 0.5:
                if mode is None:
                    continue  # the baseline has no index to search
                q = x[rng.randrange(n)]
                call("search", lambda: srch.Search(S.SearchRequest(
                    index=IDX, k=10, query_vectors=[T.Vector(dense=T.DenseVector(values=q))]),
                    timeout=30))
            elif r < 0.8:
                ids = [rng.randrange(n) for _ in range(10)]
                call("upload", lambda: pts.Upload(P.UploadRequest(data_source=SRC, points=[
                    dp(x[rng.randrange(n)], i) for i in set(ids)]), timeout=30))
            elif r < 0.9:
                i = rng.randrange(n)
                tomb = T.DataPoint(is_deleted=True)
                tomb.attributes["id"].int64_value = i
                call("delete", lambda: pts.Upload(P.UploadRequest(data_source=SRC,
                                                                  points=[tomb]), timeout=30))
                call("upload", lambda: pts.Upload(P.UploadRequest(data_source=SRC,
                                                                  points=[dp(x[i], i)]),
                                                  timeout=30))
            else:
                call("get", lambda: pts.Get(P.GetPointsRequest(
                    data_source=SRC, ids=[pid_of(rng.randrange(n)) for _ in range(10)]),
                    timeout=30))

    def sampler() -> None:
        t0 = time.perf_counter()
        while not stop.is_set():
            if mode is not None:
                try:
                    st = cat.GetIndex(C.GetIndexRequest(index=IDX), timeout=10).status
                    samples.append((time.perf_counter() - t0, st.lag_entries, st.lag_seconds,
                                    st.lagging))
                except grpc.RpcError:
                    pass
            time.sleep(0.25)

    threads = [threading.Thread(target=client, args=(c,), daemon=True) for c in range(clients)]
    smp = threading.Thread(target=sampler, daemon=True)
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    smp.start()
    time.sleep(seconds)
    elapsed = time.perf_counter() - t0
    with lock:
        snap = {k: dict(v) for k, v in counts.items()}
    # SIGTERM while the clients still run.
    ts = time.perf_counter()
    hdb.proc.send_signal(signal.SIGTERM)
    code = hdb.proc.wait(timeout=300)
    exit_s = time.perf_counter() - ts
    stop.set()
    for t in threads:
        t.join(timeout=60)
    smp.join(timeout=10)
    ch.close()
    log = hdb.log_text()
    hdb.stop()
    ups = snap.get("upload", {}).get("OK", 0)
    res = {
        "mode": mode or "no index",
        "index_build_seconds": round(build_s, 2),
        "seconds": round(elapsed, 1),
        "calls": snap,
        "uploads_ok_per_s": round(ups / elapsed, 1),
        "lag_entries_max": max((s[1] for s in samples), default=0),
        "lag_entries_p50": int(np.median([s[1] for s in samples])) if samples else 0,
        "lag_seconds_max": round(max((s[2] for s in samples), default=0.0), 2),
        "samples_lagging": sum(1 for s in samples if s[3]),
        "samples": len(samples),
        "sigterm_exit_seconds": round(exit_s, 2),
        "exit_code": code,
        "lagging_log_lines": sum(1 for ln in log.splitlines() if " is lagging: " in ln),
        "timeline": [[round(t, 2), e, round(sec, 2), bool(lg)] for t, e, sec, lg in samples],
    }
    brief = {k: v for k, v in res.items() if k != "timeline"}
    print(f"   [{res['mode']}] {brief}", flush=True)
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--points", type=int, default=50000)
    ap.add_argument("--clients", type=int, default=64)
    ap.add_argument("--seconds", type=float, default=60)
    ap.add_argument("--modes", default="none,backpressure,fall_behind")
    args = ap.parse_args()
    x, _ = fashion_mnist_vectors("train", limit=args.points)
    x = np.ascontiguousarray(x, dtype=np.float32)
    print(f"== lag benchmark: HNSW m16 efc200 on {len(x)} x {x.shape[1]}, {args.clients} clients "
          f"for {args.seconds:.0f} s; load {os.getloadavg()[0]:.2f}", flush=True)
    rows = []
    for m in args.modes.split(","):
        rows.append(run(None if m == "none" else m, x, args.clients, args.seconds))
    print("\n| mode | uploads ok/s | upload RESOURCE_EXHAUSTED | searches ok | max lag (entries) "
          "| median lag | max lag (s) | SIGTERM exit (s) |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        up = r["calls"].get("upload", {})
        print(f"| {r['mode']} | {r['uploads_ok_per_s']} | {up.get('RESOURCE_EXHAUSTED', 0)} | "
              f"{r['calls'].get('search', {}).get('OK', 0)} | {r['lag_entries_max']} | "
              f"{r['lag_entries_p50']} | {r['lag_seconds_max']} | {r['sigterm_exit_seconds']} |")
    benchlib.write_json(ROOT / "bench" / "results" / "lag.json",
                        {"points": len(x), "clients": args.clients, "seconds": args.seconds,
                         "runs": rows})


if __name__ == "__main__":
    main()
