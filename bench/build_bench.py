#!/usr/bin/python3
"""Build benchmark: how long a new HNSW index on a full source takes to build, with
index.build_threads 1 and 2, next to in-process hnswlib (Python) with num_threads 1 and 2, in
the same run.

On Fashion-MNIST train (60,000 x 784, L2), HNSW m 16, ef_construction 200:
  1. for each --threads value T: start one hilbertd with index.build_threads T, upload the 60k
     points (not timed), create the index and time until it is READY and caught up (the
     applier builds it in batches of index.apply_batch, each batch of new points inserted by T
     threads); then recall@10 of --queries test images (ef 64) against brute force;
  2. hnswlib.Index(space="l2", dim=784).init_index(60000, M=16, ef_construction=200,
     random_seed=100), add_items(x, num_threads=T) timed, the same recall at set_ef(64).
The machine's load average is printed first: on a shared 2-core host another process halves
what 2 threads can gain.

Usage:  /usr/bin/python3 bench/build_bench.py [--threads 1,2] [--queries 200] [--limit N]
Writes: bench/results/build.json
"""
from __future__ import annotations

import argparse
import os
import sys
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
import hnswlib  # noqa: E402
from hilbert.v1 import catalog_pb2 as C, catalog_pb2_grpc  # noqa: E402
from hilbert.v1 import points_pb2 as P, points_pb2_grpc  # noqa: E402
from hilbert.v1 import search_pb2 as S, search_pb2_grpc  # noqa: E402
from hilbert.v1 import types_pb2 as T  # noqa: E402
from hilbertdb.datasets import fashion_mnist_vectors  # noqa: E402

SRC = T.DataSourceRef(name="fmnist", version="1")
IDX = T.IndexRef(name="fmnist-hnsw", version="1")
M, EFC, EF, K = 16, 200, 64, 10


def truth_topk(x: np.ndarray, q: np.ndarray, k: int) -> np.ndarray:
    """Exact L2 top-k ids of each query (float64)."""
    xx = (x.astype(np.float64) ** 2).sum(1)
    d = xx[None, :] - 2.0 * q.astype(np.float64) @ x.astype(np.float64).T
    return np.argsort(d, axis=1, kind="stable")[:, :k]


def recall(found: list[list[int]], truth: np.ndarray) -> float:
    return sum(len(set(f) & set(t)) for f, t in zip(found, truth.tolist())) / truth.size


def server_build(x: np.ndarray, q: np.ndarray, threads: int) -> tuple[float, list[list[int]]]:
    """Seconds from CreateIndex until READY with index.build_threads = threads, and the top-k
    ids of q."""
    cfg = ("server:\n  threads: 2\n  max_receive_message_bytes: 256MiB\n"
           f"storage:\n  sync: false\nindex:\n  build_threads: {threads}\n")
    hdb = benchlib.Hilbertd(cfg, prefix="hdb-build-")
    ch = grpc.insecure_channel(hdb.target, options=[("grpc.max_send_message_length", 256 << 20)])
    try:
        grpc.channel_ready_future(ch).result(timeout=30)
        catalog = catalog_pb2_grpc.CatalogStub(ch)
        points = points_pb2_grpc.PointsStub(ch)
        search = search_pb2_grpc.SearchStub(ch)
        catalog.CreateDataSource(C.CreateDataSourceRequest(spec=C.DataSourceSpec(
            name=SRC.name, version=SRC.version, dimension=x.shape[1],
            permanent_attributes=[C.AttributeSpec(name="id", type=T.ATTRIBUTE_TYPE_INT64)],
            id_attributes=["id"])), timeout=30)
        for s in range(0, len(x), 1000):
            pts = []
            for i, row in enumerate(x[s:s + 1000]):
                p = T.DataPoint(vector=T.Vector(dense=T.DenseVector(values=row)))
                p.attributes["id"].int64_value = s + i
                pts.append(p)
            points.Upload(P.UploadRequest(data_source=SRC, points=pts), timeout=300)
        t0 = time.perf_counter()
        catalog.CreateIndex(C.CreateIndexRequest(spec=C.IndexSpec(
            name=IDX.name, version=IDX.version, data_source=SRC, metric=C.METRIC_L2,
            algorithm=C.IndexAlgorithm(hnsw=C.HnswAlgorithm(m=M, ef_construction=EFC)))),
            timeout=60)
        while True:
            st = catalog.GetIndex(C.GetIndexRequest(index=IDX), timeout=30).status
            if st.state == C.INDEX_STATE_READY and st.applied_seq == st.source_last_seq:
                break
            if st.state == C.INDEX_STATE_FAILED:
                raise RuntimeError(f"index failed: {st.detail}")
            time.sleep(0.01)
        secs = time.perf_counter() - t0
        r = search.Search(S.SearchRequest(
            index=IDX, k=K, query_vectors=[T.Vector(dense=T.DenseVector(values=v)) for v in q]),
            timeout=300)
        found = [[h.attributes["id"].int64_value for h in res.hits] for res in r.results]
        return secs, found
    finally:
        ch.close()
        hdb.stop()


def hnswlib_build(x: np.ndarray, q: np.ndarray, threads: int) -> tuple[float, list[list[int]]]:
    """Seconds of hnswlib's add_items with num_threads = threads, and the top-k ids of q."""
    idx = hnswlib.Index(space="l2", dim=x.shape[1])
    idx.init_index(max_elements=len(x), M=M, ef_construction=EFC, random_seed=100)
    t0 = time.perf_counter()
    idx.add_items(x, np.arange(len(x)), num_threads=threads)
    secs = time.perf_counter() - t0
    idx.set_ef(EF)
    labels, _ = idx.knn_query(q, k=K, num_threads=1)
    return secs, labels.tolist()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--threads", default="1,2", help="comma-separated thread counts")
    ap.add_argument("--queries", type=int, default=200, help="test images for recall@10")
    ap.add_argument("--limit", type=int, default=0, help="use only the first N train images")
    args = ap.parse_args()
    x, _ = fashion_mnist_vectors("train", limit=args.limit or None)
    q, _ = fashion_mnist_vectors("test", limit=args.queries)
    x = np.ascontiguousarray(x, dtype=np.float32)
    q = np.ascontiguousarray(q, dtype=np.float32)
    truth = truth_topk(x, q, K)
    threads = [int(t) for t in args.threads.split(",")]
    print(f"== build benchmark: HNSW m{M} efc{EFC} on {len(x)} x {x.shape[1]} (L2); "
          f"{os.cpu_count()} cores, load {os.getloadavg()[0]:.2f}", flush=True)
    rows = []
    for who, fn in (("hilbertd", server_build), ("hnswlib", hnswlib_build)):
        for t in threads:
            secs, found = fn(x, q, t)
            rec = recall(found, truth)
            rows.append({"engine": who, "threads": t, "build_s": round(secs, 2),
                         "recall_at_10": round(rec, 4), "loadavg": os.getloadavg()[0]})
            print(f"  {who:9s} threads {t}: build {secs:7.2f} s  recall@10 (ef {EF}) {rec:.4f}"
                  f"  load {os.getloadavg()[0]:.2f}", flush=True)
    print("\n  engine     threads  build s  recall@10")
    for r in rows:
        print(f"  {r['engine']:9s} {r['threads']:7d} {r['build_s']:8.2f}  {r['recall_at_10']:.4f}")
    benchlib.write_json(ROOT / "bench" / "results" / "build.json",
                        {"points": len(x), "dim": int(x.shape[1]), "m": M,
                         "ef_construction": EFC, "ef_search": EF, "rows": rows})


if __name__ == "__main__":
    main()
