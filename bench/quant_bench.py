"""Quantized HNSW: memory per point, recall@10 and one-in-flight QPS of float32, float16 and
int8 graphs in one server, next to in-process hnswlib on the same points, in one run; and the
server's resident memory broken down (engines, RocksDB, heap, libraries).

Two data sets, each in a server of its own (storage.sync false, server.threads 2):
- Fashion-MNIST train, 60,000 x 784 (pixels / 255), queries from its test set;
- synthetic, 1,000,000 x 96 by default: points on a 24-dimensional random linear subspace of
  R^96 plus small noise (real embeddings have a low intrinsic dimension; uniform noise in 96-d
  has no neighbours worth finding), queries drawn the same way.

Per data set, three indices on one source (HNSW m 16, ef_construction 200; storage float32,
float16, int8; oversample at its default: 1 for float32, 2 for the quantized ones), built one
after another. hnswlib (Debian's python3-hnswlib 0.6.2, M 16, ef_construction 200, float32,
one thread at search) in this process is the baseline. Ground truth: FAISS IndexFlatL2.

Per ef (16, 32, 64, 128): recall@10 and QPS, one request in flight, with one query per request
(single: the per-call cost dominates) and 100 (batch100: the engine's own speed shows);
pre-serialized requests on one channel. The server's distances are exact in every storage:
it rescores the graph's candidates from the stored records. hnswlib runs one thread, a query
at a time or 100 per knn_query call.

Memory: IndexStatus.vector_bytes and engine_other_bytes per index (per point; the graph is
hnswlib's own, so float32's figures are hnswlib's), and the server's /metrics before and after
the builds: RSS, anonymous and file-backed pages, malloc's heap in use, RocksDB memtables,
block cache and table readers, and the engines' bytes summed.

    /usr/bin/python3 bench/quant_bench.py [--fmnist 60000] [--synthetic 1000000]
                                          [--queries 1000] [--efs 16,32,64,128]

Needs python3-hnswlib and python3-faiss. Writes bench/results/quant.json.
"""
from __future__ import annotations

import argparse
import os
import re
import sys
import time
import urllib.request

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "clients", "python"))
import benchlib  # noqa: E402
import grpc  # noqa: E402
from hilbert.v1 import search_pb2 as S, types_pb2 as T  # noqa: E402
from hilbertdb import Client, Hnsw  # noqa: E402
from hilbertdb.datasets import fashion_mnist_vectors  # noqa: E402

K = 10
BATCH = 100  # queries per request in the batched mode
STORAGES = ("float32", "float16", "int8")


def synthetic(n: int, nq: int, dim: int = 96, intrinsic: int = 24, seed: int = 7):
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((intrinsic, dim)).astype(np.float32) / np.sqrt(intrinsic)

    def draw(m):
        out = np.empty((m, dim), dtype=np.float32)
        for s in range(0, m, 100000):
            e = min(m, s + 100000)
            z = rng.standard_normal((e - s, intrinsic)).astype(np.float32)
            out[s:e] = z @ a + 0.05 * rng.standard_normal((e - s, dim)).astype(np.float32)
        return out
    return draw(n), draw(nq)


def truth(x: np.ndarray, q: np.ndarray) -> np.ndarray:
    import faiss
    ix = faiss.IndexFlatL2(x.shape[1])
    ix.add(x)
    return ix.search(q, K)[1]


def recall(ids, gt) -> float:
    return float(np.mean([len(set(a) & set(b)) / K for a, b in zip(ids, gt)]))


def scrape(port: int) -> dict:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=30) as r:
        text = r.read().decode()
    out = {}
    for line in text.splitlines():
        m = re.match(r"^([a-z_]+)(\{[^}]*\})? (\S+)$", line)
        if m:
            key = m.group(1)
            out[key] = out.get(key, 0.0) + float(m.group(3))  # summed over labels
    return out


def memory_row(port: int) -> dict:
    m = scrape(port)
    keys = ["process_resident_memory_bytes", "hilbert_process_anon_bytes",
            "hilbert_process_file_bytes", "hilbert_heap_in_use_bytes", "hilbert_heap_bytes",
            "hilbert_rocksdb_memtable_bytes", "hilbert_rocksdb_block_cache_bytes",
            "hilbert_rocksdb_table_readers_bytes", "hilbert_index_vector_bytes",
            "hilbert_index_engine_other_bytes", "hilbert_index_attribute_bytes"]
    return {k: int(m.get(k, 0)) for k in keys}


def print_memory(what: str, r: dict) -> None:
    mib = lambda k: r[k] / 2 ** 20  # noqa: E731
    print(f"  server memory {what}: RSS {mib('process_resident_memory_bytes'):.1f} MiB = "
          f"anonymous {mib('hilbert_process_anon_bytes'):.1f} + file-backed "
          f"{mib('hilbert_process_file_bytes'):.1f}; heap in use {mib('hilbert_heap_in_use_bytes'):.1f}"
          f" (of {mib('hilbert_heap_bytes'):.1f} held); engines: vectors "
          f"{mib('hilbert_index_vector_bytes'):.1f} + links/maps "
          f"{mib('hilbert_index_engine_other_bytes'):.1f}; RocksDB: memtables "
          f"{mib('hilbert_rocksdb_memtable_bytes'):.1f}, block cache "
          f"{mib('hilbert_rocksdb_block_cache_bytes'):.1f}, table readers "
          f"{mib('hilbert_rocksdb_table_readers_bytes'):.1f}", flush=True)


def one_in_flight(call, head: bytes, bodies: list) -> tuple[np.ndarray, float]:
    """Sends head + body for each body, one at a time; returns (ids, queries per second)."""
    reqs = [head + b for b in bodies]
    raw = []
    t0 = time.perf_counter()
    for r in reqs:
        raw.append(call(r, timeout=600))
    dt = time.perf_counter() - t0
    ids = []
    for b in raw:
        for res in S.SearchResponse.FromString(b).results:
            row = [h.attributes["id"].int64_value for h in res.hits][:K]
            ids.append(row + [-1] * (K - len(row)))
    return np.asarray(ids), len(ids) / dt


def run_set(name: str, x: np.ndarray, q: np.ndarray, efs: list) -> dict:
    n, dim = x.shape
    print(f"\n== {name}: {n} x {dim}, {len(q)} queries; load average "
          f"{os.getloadavg()[0]:.2f}", flush=True)
    gt = truth(x, q)
    srv = benchlib.Hilbertd("server:\n  threads: 2\nstorage:\n  sync: false\n"
                            "metrics:\n  listen: 127.0.0.1:0\n", prefix="hdb-quant-",
                            private_copy=True)
    out = {"set": name, "points": n, "dim": dim, "queries": len(q), "rows": [], "indices": {}}
    try:
        port = None
        for _ in range(500):
            m = re.search(r"metrics served at http://127\.0\.0\.1:(\d+)/", srv.log_text())
            if m:
                port = int(m.group(1))
                break
            time.sleep(0.01)
        db = Client(srv.target, timeout=3600)
        db.wait_until_ready()
        out["memory_empty"] = memory_row(port)
        print_memory("empty", out["memory_empty"])
        db.create_data_source("v", dimension=dim, permanent_attributes={"id": "int64"},
                              id_attributes=["id"])
        t = time.perf_counter()
        up = db.upload("v", x, attributes={"id": np.arange(n)}, batch_size=5000)
        print(f"  uploaded in {time.perf_counter() - t:.1f} s", flush=True)
        out["memory_loaded"] = memory_row(port)
        print_memory("with the points, no index", out["memory_loaded"])
        for st in STORAGES:
            t = time.perf_counter()
            db.create_index(f"v-{st}", data_source="v", metric="l2",
                            algorithm=Hnsw(m=16, ef_construction=200, storage=st))
            info = db.wait_for_index(f"v-{st}", timeout=7200)
            build = time.perf_counter() - t
            s = info.status
            out["indices"][st] = {"build_s": build, "vector_bytes": s.vector_bytes,
                                  "other_bytes": s.engine_other_bytes}
            print(f"  {st}: built in {build:.1f} s; vectors {s.vector_bytes / n:.0f} B/point, "
                  f"links and maps {s.engine_other_bytes / n:.0f} B/point", flush=True)
        out["memory_indexed"] = memory_row(port)
        print_memory("with the three indices", out["memory_indexed"])

        import hnswlib
        t = time.perf_counter()
        hl = hnswlib.Index(space="l2", dim=dim)
        hl.init_index(max_elements=n, M=16, ef_construction=200, random_seed=100)
        hl.add_items(x, np.arange(n), num_threads=2)
        out["hnswlib"] = {"build_s": time.perf_counter() - t}
        print(f"  hnswlib: built in {out['hnswlib']['build_s']:.1f} s (2 threads)", flush=True)

        channel = grpc.insecure_channel(srv.target)
        call = channel.unary_unary("/hilbert.v1.Search/Search")
        vecs = [T.Vector(dense=T.DenseVector(values=v)) for v in q]
        single = [S.SearchRequest(query_vectors=[v]).SerializeToString() for v in vecs]
        batched = [S.SearchRequest(query_vectors=vecs[b:b + BATCH]).SerializeToString()
                   for b in range(0, len(vecs), BATCH)]
        health = channel.unary_unary("/grpc.health.v1.Health/Check")
        t = time.perf_counter()
        for _ in range(len(q)):
            health(b"", timeout=30)
        out["health_qps"] = len(q) / (time.perf_counter() - t)
        print(f"  gRPC health check, one in flight: {out['health_qps']:,.0f} calls/s")
        for mode, bodies in (("single", single), (f"batch{BATCH}", batched)):
            print(f"  {mode}:\n  {'ef':>4} | " +
                  " | ".join(f"{s:>7} rec   QPS" for s in STORAGES) + " | hnswlib rec   QPS",
                  flush=True)
            for ef in efs:
                cells = []
                for st in STORAGES:
                    head = S.SearchRequest(index=T.IndexRef(name=f"v-{st}", version="1"), k=K,
                                           params=S.SearchParams(ef_search=ef)
                                           ).SerializeToString()
                    one_in_flight(call, head, bodies[:5])  # warm
                    best = None
                    for _ in range(2):
                        ids, qps = one_in_flight(call, head, bodies)
                        best = qps if best is None or qps > best else best
                    rec = recall(ids, gt)
                    out["rows"].append({"system": "hilbertd", "storage": st, "mode": mode,
                                        "ef": ef, "recall": rec, "qps": best})
                    cells.append(f"{rec:.4f} {best:>6,.0f}")
                hl.set_ef(ef)
                best, ids = None, None
                for _ in range(2):
                    t = time.perf_counter()
                    if mode == "single":
                        ids = [hl.knn_query(v, k=K, num_threads=1)[0][0] for v in q]
                    else:
                        ids = np.concatenate([hl.knn_query(q[b:b + BATCH], k=K, num_threads=1)[0]
                                              for b in range(0, len(q), BATCH)])
                    qps = len(q) / (time.perf_counter() - t)
                    best = qps if best is None or qps > best else best
                rec = recall(ids, gt)
                out["rows"].append({"system": "hnswlib", "storage": "float32", "mode": mode,
                                    "ef": ef, "recall": rec, "qps": best})
                cells.append(f"{rec:.4f} {best:>6,.0f}")
                print(f"  {ef:>4} | " + " | ".join(cells), flush=True)
        channel.close()
        db.close()
    finally:
        srv.stop()
    out["load_end"] = os.getloadavg()[0]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--fmnist", type=int, default=60000, help="Fashion-MNIST points (0: skip)")
    ap.add_argument("--synthetic", type=int, default=1000000, help="synthetic points (0: skip)")
    ap.add_argument("--queries", type=int, default=1000)
    ap.add_argument("--efs", default="16,32,64,128")
    args = ap.parse_args()
    efs = [int(e) for e in args.efs.split(",")]
    results = {"load_start": os.getloadavg()[0], "sets": []}
    if args.fmnist:
        x, _ = fashion_mnist_vectors("train", args.fmnist)
        q, _ = fashion_mnist_vectors("test", args.queries)
        results["sets"].append(run_set("fashion-mnist", np.ascontiguousarray(x, np.float32),
                                       np.ascontiguousarray(q, np.float32), efs))
    if args.synthetic:
        x, q = synthetic(args.synthetic, args.queries)
        results["sets"].append(run_set("synthetic-96", x, q, efs))
    results["load_end"] = os.getloadavg()[0]
    benchlib.write_json(os.path.join(os.path.dirname(__file__), "results", "quant.json"),
                        results)


if __name__ == "__main__":
    main()
