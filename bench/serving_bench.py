#!/usr/bin/python3
"""Serving benchmark: how quickly cheap calls (Health, Points.Get, Catalog.GetIndex) and a small
upload to another source are answered while the server is busy with 64 searches waiting for
their min_seq and 8 heavy exact searches, next to the same calls on the idle server (the
baseline, in the same run).

One hilbertd (server.threads 4, the defaults otherwise, lag_mode fall_behind) with:
  - "slow": an HNSW index (m 16, ef_construction 400) on 256-d random vectors, given a backlog
    of --backlog points, which the waiters wait for (min_seq = the backlog's last seq);
  - "big": a flat index on --big 256-d points, for heavy searches of --heavy-queries queries;
  - "other": a source without index, for the small uploads.
Each cheap call is made --repeats times on its own connection, idle and then under the load;
the medians and maxima are printed. --compare BINARY runs the same with another hilbertd (e.g.
an older build) and prints both.

Usage:  /usr/bin/python3 bench/serving_bench.py [--backlog 4000] [--big 6000]
            [--heavy-queries 3200] [--repeats 20] [--compare OLD_HILBERTD]
Writes: bench/results/serving.json
"""
from __future__ import annotations

import argparse
import concurrent.futures as cf
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "clients" / "python"))
sys.path.insert(0, str(ROOT / "bench"))

import benchlib  # noqa: E402
import grpc  # noqa: E402
from hdb_grpc_health.v1 import health_pb2, health_pb2_grpc  # noqa: E402
from hilbert.v1 import catalog_pb2 as C, catalog_pb2_grpc  # noqa: E402
from hilbert.v1 import points_pb2 as P, points_pb2_grpc  # noqa: E402
from hilbert.v1 import search_pb2 as S, search_pb2_grpc  # noqa: E402
from hilbert.v1 import types_pb2 as T  # noqa: E402

DIM = 256
WAITERS, HEAVY = 64, 8
LONG = 600.0
CONFIG = ("server:\n  max_receive_message_bytes: 256MiB\nstorage:\n  sync: false\n"
          "index:\n  lag_mode: fall_behind\nlimits:\n  max_wait_ms: 600000\n")


def ref(name):
    return T.DataSourceRef(name=name, version="1")


def iref(name):
    return T.IndexRef(name=name, version="1")


def pts(x, first):
    return [T.DataPoint(vector=T.Vector(dense=T.DenseVector(values=row)),
                        attributes={"id": T.AttributeValue(int64_value=first + i)})
            for i, row in enumerate(x)]


def source(cat, name, dim):
    cat.CreateDataSource(C.CreateDataSourceRequest(spec=C.DataSourceSpec(
        name=name, version="1", vector_kind=C.VECTOR_KIND_DENSE, dimension=dim,
        permanent_attributes=[C.AttributeSpec(name="id", type=T.ATTRIBUTE_TYPE_INT64)],
        id_attributes=["id"])), timeout=LONG)


def index(cat, name, src, hnsw):
    spec = C.IndexSpec(name=name, version="1", data_source=ref(src), metric=C.METRIC_L2)
    if hnsw:
        spec.algorithm.hnsw.m = 16
        spec.algorithm.hnsw.ef_construction = 400
    else:
        spec.algorithm.flat.SetInParent()
    cat.CreateIndex(C.CreateIndexRequest(spec=spec), timeout=LONG)


def upload(pt, src, points, batch=500):
    last = 0
    for i in range(0, len(points), batch):
        last = pt.Upload(P.UploadRequest(data_source=ref(src), points=points[i:i + batch]),
                         timeout=LONG).last_seq
    return last


def wait_applied(cat, name, seq):
    while cat.GetIndex(C.GetIndexRequest(index=iref(name)), timeout=LONG).status.applied_seq < seq:
        time.sleep(0.05)


def cheap_calls(target, repeats, rng):
    """Latencies (ms) of each cheap call, each made `repeats` times on a fresh connection."""
    ch = grpc.insecure_channel(target)
    grpc.channel_ready_future(ch).result(timeout=LONG)
    h, pt = health_pb2_grpc.HealthStub(ch), points_pb2_grpc.PointsStub(ch)
    cat = catalog_pb2_grpc.CatalogStub(ch)
    get = P.GetPointsRequest(data_source=ref("big"), ids=[
        P.PointId(id_attributes={"id": T.AttributeValue(int64_value=5)})])
    calls = {
        "health": lambda: h.Check(health_pb2.HealthCheckRequest(), timeout=LONG),
        "get": lambda: pt.Get(get, timeout=LONG),
        "get_index": lambda: cat.GetIndex(C.GetIndexRequest(index=iref("big")), timeout=LONG),
        "upload_1": lambda: pt.Upload(P.UploadRequest(
            data_source=ref("other"), points=pts(rng.random((1, 8), dtype=np.float32), 0)),
            timeout=LONG),
    }
    out = {k: [] for k in calls}
    for _ in range(repeats):
        for k, fn in calls.items():
            t0 = time.perf_counter()
            fn()
            out[k].append((time.perf_counter() - t0) * 1000)
    ch.close()
    return {k: {"median_ms": statistics.median(v), "max_ms": max(v)} for k, v in out.items()}


def threads_of(pid):
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Threads:"):
            return int(line.split()[1])
    return -1


def run(binary, args):
    srv = benchlib.Hilbertd(CONFIG, prefix="hdb-serving-", binary=binary)
    try:
        ch = grpc.insecure_channel(srv.target, options=[
            ("grpc.max_send_message_length", 256 << 20),
            ("grpc.max_receive_message_length", 256 << 20)])
        cat, pt = catalog_pb2_grpc.CatalogStub(ch), points_pb2_grpc.PointsStub(ch)
        se = search_pb2_grpc.SearchStub(ch)
        rng = np.random.default_rng(1)
        source(cat, "slow_src", DIM)
        index(cat, "slow", "slow_src", True)
        source(cat, "big", DIM)
        index(cat, "big", "big", False)
        source(cat, "other", 8)
        wait_applied(cat, "big", upload(pt, "big", pts(rng.random((args.big, DIM),
                                                                  dtype=np.float32), 0)))
        idle = cheap_calls(srv.target, args.repeats, rng)
        threads_idle = threads_of(srv.proc.pid)
        last = upload(pt, "slow_src", pts(rng.random((args.backlog, DIM), dtype=np.float32), 0))
        q1 = [T.Vector(dense=T.DenseVector(values=np.zeros(DIM, np.float32)))]
        qh = [T.Vector(dense=T.DenseVector(values=r))
              for r in rng.random((args.heavy_queries, DIM), dtype=np.float32)]
        waiters = [se.Search.future(S.SearchRequest(index=iref("slow"), k=1, query_vectors=q1,
                                                    min_seq=last), timeout=LONG)
                   for _ in range(WAITERS)]
        pool = cf.ThreadPoolExecutor(HEAVY)
        heavy = [pool.submit(se.Search, S.SearchRequest(index=iref("big"), k=10,
                                                        query_vectors=qh), timeout=LONG)
                 for _ in range(HEAVY)]
        time.sleep(0.2)
        busy = cheap_calls(srv.target, args.repeats, rng)
        threads_busy = threads_of(srv.proc.pid)
        still = cat.GetIndex(C.GetIndexRequest(index=iref("slow")), timeout=LONG).status
        parked_throughout = still.applied_seq < last
        heavy_left = sum(not f.done() for f in heavy)
        for f in heavy + waiters:
            f.result()
        pool.shutdown()
        ch.close()
        return {"binary": binary, "idle": idle, "busy": busy,
                "threads_idle": threads_idle, "threads_busy": threads_busy,
                "waiters_still_waiting_at_the_end": parked_throughout,
                "heavy_searches_left_at_the_end": heavy_left}
    finally:
        srv.stop()


def show(r):
    print(f"\n{r['binary']}")
    print(f"  {'call':10} {'idle median':>12} {'idle max':>10} {'busy median':>12} "
          f"{'busy max':>10}")
    for k in r["idle"]:
        i, b = r["idle"][k], r["busy"][k]
        print(f"  {k:10} {i['median_ms']:10.2f}ms {i['max_ms']:8.2f}ms "
              f"{b['median_ms']:10.2f}ms {b['max_ms']:8.2f}ms")
    print(f"  threads idle {r['threads_idle']}, busy {r['threads_busy']}; waiters still waiting "
          f"when the calls were done: {r['waiters_still_waiting_at_the_end']}; heavy searches "
          f"left: {r['heavy_searches_left_at_the_end']}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--backlog", type=int, default=4000)
    ap.add_argument("--big", type=int, default=6000)
    ap.add_argument("--heavy-queries", type=int, default=3200)
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--compare", help="another hilbertd binary to run the same against")
    args = ap.parse_args()
    results = [run(benchlib.HILBERTD, args)]
    if args.compare:
        results.append(run(args.compare, args))
    for r in results:
        show(r)
    benchlib.write_json(ROOT / "bench" / "results" / "serving.json",
                        {"args": vars(args), "runs": results})


if __name__ == "__main__":
    main()
