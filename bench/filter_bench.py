"""Filtered search: the server's planner next to post-filtering and an exact scan, in one run.

Fashion-MNIST 60k x 784 (L2) with an int64 payload `bucket` = id mod 1000, so `bucket < n`
selects n/1000 of the points. For each selectivity (50%, 10%, 1%, 0.1%), one query in flight:

- planner:     Search with filter, no attribute index (the server checks candidates,
               widens, or scans exactly);
- attr index:  the same on an index that declares `bucket` in indexed_attributes (the server
               reads the few passing points directly, or the HNSW walk skips the others);
- post-filter: Search without filter for k x 1/selectivity x 2 candidates (at most 10,000),
               dropped client-side to the first k that pass (what a client does without
               server filters; it can come back short);
- exact scan:  numpy over the passing points only, in process (the lower bound a perfect
               attribute index would give the distance work).

Each prints QPS and recall@10 against the numpy truth, and writes bench/results/filter.json.

    /usr/bin/python3 bench/filter_bench.py [--points 60000] [--queries 200]
"""
from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "clients", "python"))
import benchlib  # noqa: E402
from hilbertdb import Attr, Client, Hnsw, Point  # noqa: E402
from hilbertdb.datasets import fashion_mnist_vectors  # noqa: E402

K = 10


def truth(x, q, mask):
    ids = np.flatnonzero(mask)
    xs = x[ids].astype(np.float32)
    d = (q ** 2).sum(1)[:, None] - 2 * q @ xs.T + (xs ** 2).sum(1)[None, :]
    return ids[np.argsort(d, axis=1)[:, :K]]


def recall(got, want):
    return float(np.mean([len(set(g) & set(w)) / max(1, len(w)) for g, w in zip(got, want)]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--points", type=int, default=60000)
    ap.add_argument("--queries", type=int, default=200)
    args = ap.parse_args()
    x, _ = fashion_mnist_vectors("train", args.points)
    x = np.ascontiguousarray(x, dtype=np.float32)
    q, _ = fashion_mnist_vectors("test", args.queries)
    q = np.ascontiguousarray(q, dtype=np.float32)
    n = len(x)
    bucket = np.arange(n) % 1000
    srv = benchlib.Hilbertd("storage:\n  sync: false\n", prefix="hdb-filter-")
    rows = []
    try:
        db = Client(srv.target, timeout=600)
        db.wait_until_ready()
        db.create_data_source("fm", dimension=784, permanent_attributes={"id": "int64"},
                              id_attributes=["id"])
        db.create_index("fm-hnsw", data_source="fm", algorithm=Hnsw(m=16, ef_construction=200),
                        metric="l2")
        db.create_index("fm-hnsw-ai", data_source="fm",
                        algorithm=Hnsw(m=16, ef_construction=200), metric="l2",
                        indexed_attributes=["bucket"])
        for b in range(0, n, 2000):
            up = db.upload("fm", [Point(x[i], {"id": i, "bucket": int(bucket[i])})
                                  for i in range(b, min(n, b + 2000))])
        db.wait_for_index("fm-hnsw", timeout=3600)
        db.wait_for_index("fm-hnsw-ai", timeout=3600)
        db.search("fm-hnsw", q[:1], k=K, min_seq=up)
        db.search("fm-hnsw-ai", q[:1], k=K, min_seq=up)
        print(f"{n} points, {len(q)} queries, one in flight, HNSW m16 efc200, k={K}; "
              f"load average {os.getloadavg()[0]:.2f}")
        print(f"{'passing':>8} | {'planner QPS':>11} {'recall':>6} | {'attr-ix QPS':>11} "
              f"{'recall':>6} | {'post-filter QPS':>15} {'recall':>6} | {'exact scan QPS':>14} "
              f"| plans of query 0")
        for sel in (500, 100, 10, 1):
            mask = bucket < sel
            want = truth(x, q, mask)
            f = Attr("bucket") < sel
            def planner(index):
                t = time.perf_counter()
                got, plan = [], ""
                for i in range(len(q)):
                    r = db.search(index, q[i], k=K, filter=f, explain=(i == 0))
                    got.append([h.attributes["id"] for h in r[0]])
                    plan = plan or r.plans[0]
                return len(q) / (time.perf_counter() - t), got, plan
            qps_p, got, plan = planner("fm-hnsw")
            qps_ai, got_ai, plan_ai = planner("fm-hnsw-ai")
            wide = min(10000, int(K * 1000 / sel * 2))
            t = time.perf_counter()
            post = []
            for i in range(len(q)):
                hits = db.search("fm-hnsw", q[i], k=wide)[0]
                post.append([h.attributes["id"] for h in hits if h.attributes["bucket"] < sel][:K])
            qps_post = len(q) / (time.perf_counter() - t)
            t = time.perf_counter()
            for i in range(len(q)):
                truth(x, q[i:i + 1], mask)
            qps_exact = len(q) / (time.perf_counter() - t)
            row = {"selectivity": sel / 1000, "planner_qps": qps_p, "planner_recall": recall(got, want),
                   "attr_index_qps": qps_ai, "attr_index_recall": recall(got_ai, want),
                   "attr_index_plan": plan_ai,
                   "postfilter_qps": qps_post, "postfilter_recall": recall(post, want),
                   "postfilter_candidates": wide, "exact_scan_qps": qps_exact, "plan": plan}
            rows.append(row)
            print(f"{sel / 10:>7.1f}% | {qps_p:>11.0f} {row['planner_recall']:>6.3f} | "
                  f"{qps_ai:>11.0f} {row['attr_index_recall']:>6.3f} | "
                  f"{qps_post:>15.0f} {row['postfilter_recall']:>6.3f} | {qps_exact:>14.0f} | "
                  f"{plan} / {plan_ai}")
        db.close()
    finally:
        srv.stop()
    out = os.path.join(os.path.dirname(__file__), "results", "filter.json")
    benchlib.write_json(out, {"points": n, "queries": len(q), "k": K, "rows": rows,
                              "load_end": os.getloadavg()[0]})


if __name__ == "__main__":
    main()
