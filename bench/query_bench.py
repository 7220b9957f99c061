#!/usr/bin/python3
"""One query at a time: the server's search QPS next to in-process hnswlib on the same graph
parameters and the gRPC health-check round trip, with one, 4 and 16 requests in flight; and,
with --perf, where the server's CPU goes per query.

One hilbertd (the defaults, storage.sync false) holds Fashion-MNIST train (60,000 x 784,
pixels / 255) and an HNSW index (m 16, ef_construction 200, float32, L2). Queries: the first
--queries of the test set, k 10, ground truth from FAISS IndexFlatL2. hnswlib (Debian's
python3-hnswlib, M 16, ef_construction 200) runs in this process, one thread, one query per
knn_query call: the in-process baseline.

The load comes from bench/load/hdb_load (built with the tests: build/hdb_load), a C client on
the gRPC core API that replays pre-serialized requests with N calls in flight on one channel,
so what it measures is the server plus loopback, not a Python client; the Python client's own
one-in-flight figure is printed beside it for scale. The health check (an empty request, the
cheapest call there is) measured the same way gives the floor that gRPC itself puts under any
call.

Per ef in --efs: recall@10 of the server's answers, and QPS and p50/p99 latency at each
concurrency in --concurrency; hnswlib's recall and QPS at the same ef.

--perf SECONDS records the server with `perf record -g` (Debian's linux-perf) while hdb_load
keeps one search in flight at the first ef, and prints the server's CPU split into where it
goes: the graph search and distance kernels, the hit fetch from RocksDB, gRPC core, the
protobuf codec, malloc and copies, the kernel (sockets, futex wake-ups, scheduling), the rest.

    /usr/bin/python3 bench/query_bench.py [--points 60000] [--queries 2000]
        [--efs 16,32,64] [--concurrency 1,4,16] [--perf 10] [--compare OLD_HILBERTD]
        [--out FILE]
    --compare OLD_HILBERTD runs a second server from another build (e.g. the one before a
    change) on the same points, and every figure is measured on both in turn, in one run.

Needs python3-hnswlib, python3-faiss and linux-perf (--perf). Writes bench/results/query.json.
"""
from __future__ import annotations

import argparse
import json
import os
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# FAISS's OpenMP threads would otherwise spin for a while after the ground truth, beside the
# server being measured.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "clients" / "python"))
sys.path.insert(0, str(ROOT / "bench"))
import benchlib  # noqa: E402
import grpc  # noqa: E402
from hilbert.v1 import search_pb2 as S, types_pb2 as T  # noqa: E402
from hilbertdb import Client, Hnsw  # noqa: E402
from hilbertdb.datasets import fashion_mnist_vectors  # noqa: E402

K = 10
ROUNDS = 2  # each figure: the best of this many runs, the servers taking turns
LOAD = os.environ.get("HDB_LOAD", str(ROOT / "build" / "hdb_load"))

# Where a sampled frame's time goes, by the first rule that matches its symbol or its DSO.
# Order matters: the engine's symbols are checked before the catch-all of the binary.
BUCKETS = [
    ("graph search + distances", ("hnsw", "search_one", "search_all", "searchBaseLayer",
                                  "l2sq", "ip_avx", "ip_scalar", "_cc", "hdb_dist", "hdb_quant",
                                  "hdb_topk", "hdb_flat", "getDistance", "faiss", "push_heap",
                                  "pop_heap", "VisitedList")),
    ("hit fetch (RocksDB)", ("rocksdb", "librocksdb", "hdb_table", "hdb_store", "hdb_record",
                             "snappy", "lz4", "zstd")),
    ("protobuf codec", ("protobuf_c", "libprotobuf-c", "hdb_codec", "hdb_wire")),
    ("gRPC core + TLS-free transport", ("grpc", "libgrpc", "libgpr", "absl", "libabsl",
                                        "libaddress_sorting", "libupb", "libre2", "libcares")),
    ("malloc + copies", ("malloc", "free", "memcpy", "memmove", "memset", "calloc", "realloc",
                         "_int_", "tcache", "cfree")),
    ("kernel (sockets, futex, scheduling)", ("[kernel", "kernel.kallsyms", "[k]")),
]


def write_requests(path: Path, bodies: list[bytes]) -> None:
    with open(path, "wb") as f:
        for b in bodies:
            f.write(struct.pack("<I", len(b)))
            f.write(b)


def hdb_load(target: str, method: str, reqs: Path, conc: int, calls: int,
             label: str) -> dict:
    """Runs build/hdb_load and returns its JSON line."""
    out = subprocess.run([LOAD, "--target", target, "--method", method, "--requests", str(reqs),
                          "--concurrency", str(conc), "--calls", str(calls),
                          "--warmup", str(min(500, calls)), "--label", label],
                         capture_output=True, text=True, timeout=3600)
    if out.returncode != 0:
        raise RuntimeError(f"hdb_load failed ({out.returncode}): {out.stdout}\n{out.stderr}")
    lines = out.stdout.strip().splitlines()
    print("  " + lines[0], flush=True)
    return json.loads(lines[-1])


def cpu_seconds(pid: int) -> float:
    """The process's user + system CPU time so far (/proc/PID/stat)."""
    f = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")


def recall(ids, gt) -> float:
    return float(np.mean([len(set(a) & set(b)) / K for a, b in zip(ids, gt)]))


def server_ids(channel, head: bytes, bodies: list[bytes]) -> list[list[int]]:
    call = channel.unary_unary("/hilbert.v1.Search/Search")
    ids = []
    for b in bodies:
        res = S.SearchResponse.FromString(call(head + b, timeout=60)).results[0]
        ids.append([h.attributes["id"].int64_value for h in res.hits][:K])
    return ids


def python_one_in_flight(channel, reqs: list[bytes]) -> float:
    call = channel.unary_unary("/hilbert.v1.Search/Search")
    for r in reqs[:50]:
        call(r, timeout=60)
    t = time.perf_counter()
    for r in reqs:
        call(r, timeout=60)
    return len(reqs) / (time.perf_counter() - t)


def bucket_of(sym: str, dso: str) -> str:
    text = f"{dso} {sym}"
    for name, keys in BUCKETS:
        if any(k in text for k in keys):
            return name
    return "the rest (hilbertd's own, libc, threads)"


def profile(pid: int, seconds: int, run_load) -> dict:
    """perf record -g of pid while run_load() runs; returns {bucket: share of samples} (self
    time) and the top symbols."""
    data = Path(tempfile.mkdtemp(prefix="hdb-perf-")) / "perf.data"
    rec = subprocess.Popen(["perf", "record", "-F", "2999", "-g", "-p", str(pid), "-o",
                            str(data), "--", "sleep", str(seconds)],
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    time.sleep(0.5)
    load = run_load()
    rec.wait(timeout=seconds + 120)
    rep = subprocess.run(["perf", "report", "-i", str(data), "--no-children", "--stdio",
                          "--sort", "dso,sym", "-g", "none", "--percent-limit", "0.01"],
                         capture_output=True, text=True, timeout=600).stdout
    shares, top = {}, []
    for line in rep.splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "%" not in line.split()[0]:
            continue
        parts = line.split(None, 2)
        if len(parts) < 3:
            continue
        pct = float(parts[0].rstrip("%"))
        dso, sym = parts[1], parts[2]
        b = bucket_of(sym, dso)
        shares[b] = shares.get(b, 0.0) + pct
        if len(top) < 25:
            top.append((pct, dso, sym))
    return {"shares": shares, "top": top, "load": load}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--points", type=int, default=60000)
    ap.add_argument("--queries", type=int, default=2000)
    ap.add_argument("--efs", default="16,32,64")
    ap.add_argument("--concurrency", default="1,4,16")
    ap.add_argument("--perf", type=int, default=0, help="seconds of perf record (0: none)")
    ap.add_argument("--config", default="", help="extra YAML for the server (appended)")
    ap.add_argument("--compare", default="",
                    help="another hilbertd binary, measured in turn with this build's")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "query.json"))
    args = ap.parse_args()
    efs = [int(e) for e in args.efs.split(",")]
    concs = [int(c) for c in args.concurrency.split(",")]
    if not os.access(LOAD, os.X_OK):
        sys.exit(f"{LOAD} is missing: build it (cmake --build build --target hdb_load)")
    out = {"load_start": os.getloadavg()[0], "points": args.points, "queries": args.queries,
           "rows": []}
    print(f"load average at start {out['load_start']:.2f}", flush=True)
    x, _ = fashion_mnist_vectors("train", args.points)
    q, _ = fashion_mnist_vectors("test", args.queries)
    x = np.ascontiguousarray(x, np.float32)
    q = np.ascontiguousarray(q, np.float32)
    import faiss
    flat = faiss.IndexFlatL2(x.shape[1])
    flat.add(x)
    gt = flat.search(q, K)[1]

    import hnswlib
    hl = hnswlib.Index(space="l2", dim=x.shape[1])
    hl.init_index(max_elements=len(x), M=16, ef_construction=200, random_seed=100)
    hl.add_items(x, np.arange(len(x)), num_threads=2)

    builds = [("this build", benchlib.HILBERTD)]
    if args.compare:
        builds.append(("compared", args.compare))
    servers = []
    tmp = Path(tempfile.mkdtemp(prefix="hdb-query-reqs-"))
    try:
        for name, binary in builds:
            srv = benchlib.Hilbertd("storage:\n  sync: false\n" + args.config,
                                    prefix="hdb-query-", binary=binary, private_copy=True)
            servers.append((name, srv))
            db = Client(srv.target, timeout=3600)
            db.wait_until_ready()
            db.create_data_source("f", dimension=x.shape[1],
                                  permanent_attributes={"id": "int64"}, id_attributes=["id"])
            db.upload("f", x, attributes={"id": np.arange(len(x))}, batch_size=2000)
            db.create_index("f-hnsw", data_source="f", metric="l2",
                            algorithm=Hnsw(m=16, ef_construction=200))
            db.wait_for_index("f-hnsw", timeout=7200)
            db.close()
            print(f"{name}: {binary}, loaded and indexed", flush=True)
        bodies = [S.SearchRequest(query_vectors=[T.Vector(dense=T.DenseVector(values=v))]
                                  ).SerializeToString() for v in q]
        health = tmp / "health.req"
        write_requests(health, [b""])

        def measure(method: str, path: Path, c: int, calls: int, label: str) -> dict:
            """Each server in turn, ROUNDS times; per server its best round, with the server's
            CPU per call over that round (its warmup calls included)."""
            best = {}
            for _ in range(ROUNDS):
                for name, srv in servers:
                    cpu = cpu_seconds(srv.proc.pid)
                    r = hdb_load(srv.target, method, path, c, calls, f"{name}: {label}")
                    r["server_cpu_us_per_call"] = ((cpu_seconds(srv.proc.pid) - cpu) * 1e6 /
                                                   (r["calls"] + min(500, r["calls"])))
                    if name not in best or r["qps"] > best[name]["qps"]:
                        best[name] = r
            for name, r in best.items():
                print(f"    {name}: best {r['qps']:,.0f} calls/s, server CPU "
                      f"{r['server_cpu_us_per_call']:.0f} us a call", flush=True)
            return best

        print("gRPC health check (the floor under any call):", flush=True)
        for c in concs:
            out["rows"].append({"system": "health", "concurrency": c,
                                "servers": measure("/grpc.health.v1.Health/Check", health, c,
                                                   max(5000, 2 * args.queries),
                                                   f"health c={c}")})
        for ef in efs:
            head = S.SearchRequest(index=T.IndexRef(name="f-hnsw", version="1"), k=K,
                                   params=S.SearchParams(ef_search=ef)).SerializeToString()
            reqs = [head + b for b in bodies]
            channel = grpc.insecure_channel(servers[0][1].target)
            rec = recall(server_ids(channel, head, bodies), gt)
            py = python_one_in_flight(channel, reqs)
            channel.close()
            hl.set_ef(ef)
            hl.knn_query(q[:50], k=K, num_threads=1)
            hqps = 0.0
            for _ in range(ROUNDS):
                t = time.perf_counter()
                hids = [hl.knn_query(v, k=K, num_threads=1)[0][0] for v in q]
                hqps = max(hqps, len(q) / (time.perf_counter() - t))
            hrec = recall(hids, gt)
            print(f"ef {ef}: hilbertd recall@{K} {rec:.4f}, hnswlib recall@{K} {hrec:.4f} at "
                  f"{hqps:,.0f} QPS (in-process, one thread, best of {ROUNDS}); Python client "
                  f"one in flight {py:,.0f} QPS", flush=True)
            path = tmp / f"search-ef{ef}.req"
            write_requests(path, reqs)
            row = {"ef": ef, "recall": rec, "hnswlib_recall": hrec, "hnswlib_qps": hqps,
                   "python_qps": py, "load": {}}
            for c in concs:
                best = measure("/hilbert.v1.Search/Search", path, c, max(4000, 2 * args.queries),
                               f"search ef={ef} c={c}")
                row["load"][c] = best
                print("    = " + ", ".join(f"{n} {r['qps'] / hqps:.2f}x" for n, r in best.items())
                      + " in-process hnswlib", flush=True)
            out["rows"].append({"system": "search", **row})
        if args.perf:
            ef = efs[0]
            path = tmp / f"search-ef{ef}.req"
            out["perf"] = {}
            for name, srv in servers:
                print(f"perf record -g of {name} for {args.perf} s, one search in flight "
                      f"(ef {ef}):", flush=True)

                def run_load(srv=srv):
                    # As many calls as the recording lasts: a calibration run gives the rate.
                    rate = hdb_load(srv.target, "/hilbert.v1.Search/Search", path, 1, 2000,
                                    "calibration")["qps"]
                    n = max(1000, int(rate * (args.perf - 1)))
                    return hdb_load(srv.target, "/hilbert.v1.Search/Search", path, 1, n,
                                    f"search ef={ef} c=1 under perf")
                prof = profile(srv.proc.pid, args.perf + 2, run_load)
                total = sum(prof["shares"].values()) or 1.0
                for b, pct in sorted(prof["shares"].items(), key=lambda kv: -kv[1]):
                    print(f"  {pct / total * 100:5.1f}%  {b}")
                print("  top symbols (self):")
                for pct, dso, sym in prof["top"]:
                    print(f"  {pct:6.2f}%  {dso:28.28s} {sym[:90]}")
                out["perf"][name] = {"ef": ef, "shares": prof["shares"], "top": prof["top"],
                                     "qps": prof["load"]["qps"]}
    finally:
        for _, srv in servers:
            srv.stop()
    out["load_end"] = os.getloadavg()[0]
    print(f"load average at end {out['load_end']:.2f}", flush=True)
    benchlib.write_json(args.out, out)


if __name__ == "__main__":
    main()
