#!/usr/bin/python3
"""Core benchmark: upload rate and exact-search QPS of hilbertd on Fashion-MNIST (784-d).

Starts the real server (build/hilbertd) on a free port with a temporary data directory and
measures, through gRPC from this process:
  * upload rate in points/s with storage.sync on and off: one client sending batches, and
    several concurrent clients (which exercises group commit);
  * exact (flat, L2) search over the 60k train vectors with the 10k test images as queries:
    one query per request (QPS and p50/p99 latency) and batched requests;
and, side by side in the same process, the same searches on an in-process FAISS IndexFlatL2 with
the same number of threads (1), as a baseline.

Usage:  /usr/bin/python3 bench/core_bench.py [--queries N] [--out bench/results/core.json]
Needs:  scripts/install-deps.sh bench, and a build (cmake --build build).
"""
from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

# One BLAS thread in this process too, so the in-process baseline matches the server's
# search.blas_threads: 1. Must be set before numpy/faiss load OpenBLAS.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "clients" / "python"))

sys.path.insert(0, str(ROOT / "bench"))

import benchlib  # noqa: E402
import grpc  # noqa: E402
from hilbert.v1 import catalog_pb2 as C, catalog_pb2_grpc  # noqa: E402
from hilbert.v1 import points_pb2 as P, points_pb2_grpc  # noqa: E402
from hilbert.v1 import search_pb2 as S, search_pb2_grpc  # noqa: E402
from hilbert.v1 import types_pb2 as T  # noqa: E402
from hilbertdb.datasets import fashion_mnist_vectors  # noqa: E402

SRC = T.DataSourceRef(name="fmnist", version="1")
IDX = T.IndexRef(name="fmnist-flat", version="1")


class Server:
    def __init__(self, sync: bool, threads: int = 4):
        self.hdb = benchlib.Hilbertd(f"storage:\n  sync: {'true' if sync else 'false'}\n"
                                     f"server:\n  threads: {threads}\n"
                                     f"  max_receive_message_bytes: 256MiB\n"
                                     f"  max_send_message_bytes: 256MiB\n")
        self.target = self.hdb.target
        self.channel = self.new_channel()

    def new_channel(self) -> grpc.Channel:
        opts = [("grpc.max_send_message_length", 256 << 20),
                ("grpc.max_receive_message_length", 256 << 20)]
        ch = grpc.insecure_channel(self.target, options=opts)
        grpc.channel_ready_future(ch).result(timeout=30)
        return ch

    def close(self):
        self.channel.close()
        self.hdb.stop()


def create_source(ch):
    cat = catalog_pb2_grpc.CatalogStub(ch)
    cat.CreateDataSource(C.CreateDataSourceRequest(spec=C.DataSourceSpec(
        name=SRC.name, version=SRC.version, dimension=784,
        permanent_attributes=[C.AttributeSpec(name="id", type=T.ATTRIBUTE_TYPE_INT64),
                              C.AttributeSpec(name="label", type=T.ATTRIBUTE_TYPE_INT64)],
        id_attributes=["id"])))
    cat.CreateIndex(C.CreateIndexRequest(spec=C.IndexSpec(
        name=IDX.name, version=IDX.version, data_source=SRC,
        algorithm=C.IndexAlgorithm(flat=C.FlatAlgorithm()), metric=C.METRIC_L2)))


def make_requests(x: np.ndarray, y: np.ndarray, batch: int, id_offset: int = 0):
    reqs = []
    for start in range(0, len(x), batch):
        pts = []
        for i in range(start, min(start + batch, len(x))):
            p = T.DataPoint(vector=T.Vector(dense=T.DenseVector(values=x[i])))
            p.attributes["id"].int64_value = id_offset + i
            p.attributes["label"].int64_value = int(y[i])
            pts.append(p)
        reqs.append(P.UploadRequest(data_source=SRC, points=pts))
    return reqs


def upload_rate(server: Server, x, y, batch: int, clients: int) -> float:
    """Points/s for `clients` threads, each with its own channel, sending pre-built batches."""
    per = len(x) // clients
    work_reqs = [make_requests(x[c * per:(c + 1) * per], y[c * per:(c + 1) * per], batch,
                               id_offset=10_000_000 * (batch + clients) + c * per)
                 for c in range(clients)]
    channels = [server.new_channel() for _ in range(clients)]
    stubs = [points_pb2_grpc.PointsStub(ch) for ch in channels]

    def work(c):
        for r in work_reqs[c]:
            stubs[c].Upload(r, timeout=120)

    try:
        return per * clients / benchlib.run_clients(clients, work)
    finally:
        for ch in channels:
            ch.close()


def search_server(stub, queries: np.ndarray, k: int, batch: int):
    """Returns (QPS, per-request latencies in ms)."""
    lat = []
    t0 = time.perf_counter()
    for start in range(0, len(queries), batch):
        req = S.SearchRequest(index=IDX, k=k, query_vectors=[
            T.Vector(dense=T.DenseVector(values=q)) for q in queries[start:start + batch]])
        t = time.perf_counter()
        resp = stub.Search(req, timeout=600)
        lat.append((time.perf_counter() - t) * 1e3)
        assert len(resp.results) == min(batch, len(queries) - start)
    return len(queries) / (time.perf_counter() - t0), lat


def search_faiss(index, queries: np.ndarray, k: int, batch: int):
    lat = []
    t0 = time.perf_counter()
    for start in range(0, len(queries), batch):
        t = time.perf_counter()
        index.search(queries[start:start + batch], k)
        lat.append((time.perf_counter() - t) * 1e3)
    return len(queries) / (time.perf_counter() - t0), lat


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--queries", type=int, default=1000, help="test images used as queries")
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "core.json"))
    args = ap.parse_args()

    x, y = fashion_mnist_vectors("train")
    q, _ = fashion_mnist_vectors("test", limit=args.queries)
    results = {"machine": {"cpu": platform.processor() or platform.machine(),
                           "cores": os.cpu_count()},
               "dataset": "fashion-mnist train 60000 x 784, float32 in [0,1]",
               "upload": [], "search": []}

    print("== upload rate (784-d, 60k points per configuration)")
    for sync in (True, False):
        for batch, clients in ((1000, 1), (100, 1), (100, 4), (1, 4)):
            n = len(x) if batch >= 100 else 4000
            s = Server(sync=sync)
            try:
                create_source(s.channel)
                rate = upload_rate(s, x[:n], y[:n], batch, clients)
            finally:
                s.close()
            row = {"sync": sync, "batch": batch, "clients": clients, "points": n,
                   "points_per_s": round(rate)}
            results["upload"].append(row)
            print(f"  sync={'on ' if sync else 'off'} batch={batch:5d} clients={clients}: "
                  f"{rate:10.0f} points/s")

    print(f"== exact search, 60000 x 784, k={args.k}, {len(q)} queries, 1 thread per request")
    import faiss  # python3-faiss, the in-process baseline
    faiss.omp_set_num_threads(1)
    fx = faiss.IndexFlatL2(784)
    fx.add(x)
    s = Server(sync=False)
    try:
        create_source(s.channel)
        t0 = time.perf_counter()
        for r in make_requests(x, y, 2000):
            points_pb2_grpc.PointsStub(s.channel).Upload(r, timeout=120)
        print(f"  loaded in {time.perf_counter() - t0:.1f} s")
        stub = search_pb2_grpc.SearchStub(s.channel)
        search_server(stub, q[:20], args.k, 1)  # warm up
        for batch in (1, 10, 100, 1000):
            for name, fn in (("hilbertd", lambda b: search_server(stub, q, args.k, b)),
                             ("faiss-inproc", lambda b: search_faiss(fx, q, args.k, b))):
                qps, lat = fn(batch)
                row = {"engine": name, "batch": batch, "qps": round(qps, 1),
                       "p50_ms": round(float(np.percentile(lat, 50)), 3),
                       "p99_ms": round(float(np.percentile(lat, 99)), 3)}
                results["search"].append(row)
                print(f"  {name:13s} batch={batch:5d}: {qps:9.1f} QPS   "
                      f"p50 {row['p50_ms']:8.3f} ms   p99 {row['p99_ms']:8.3f} ms per request")
    finally:
        s.close()

    benchlib.write_json(args.out, results)


if __name__ == "__main__":
    main()
