#!/usr/bin/python3
"""Abuse benchmark: what a client sees in the cases of issue 9's "Why", on one hilbertd binary
(--compare runs another, e.g. an older build, the same way):

  waiters   8 searches with min_seq on an HNSW index that is still building (20k x 256, m 16,
            ef_construction 400), then Health, a Get and a 1-point Upload to another source,
            each with a 5 s deadline
  big k     100 queries x k=10000 on a 20k x 64 flat index (RSS before and after), and the
            same with retrieve_vectors (refused: when, and after how long)
  deadline  10,000 queries x k=100 with a 2 s deadline: the server's CPU until the deadline
            and in the 5 s after it
  paths     CreateModelSpace with model_path /etc/passwd and /root/.ssh/id_rsa
  ef        a Search with ef_search 10^8

Usage:  /usr/bin/python3 bench/abuse_bench.py [--compare OLD_HILBERTD]
Writes: bench/results/abuse.json
"""
from __future__ import annotations

import argparse
import os
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

CONFIG = ("server:\n  max_receive_message_bytes: 256MiB\nstorage:\n  sync: false\n"
          "index:\n  build_threads: 1\nlimits:\n  max_wait_ms: 120000\n")
RNG = np.random.default_rng(0)


def rss_mb(pid):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS"):
            return int(line.split()[1]) // 1024
    return -1


def cpu_s(pid):
    f = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")


class Db:
    def __init__(self, target):
        self.ch = grpc.insecure_channel(target, options=[
            ("grpc.max_receive_message_length", 1 << 30)])
        self.cat = catalog_pb2_grpc.CatalogStub(self.ch)
        self.pt = points_pb2_grpc.PointsStub(self.ch)
        self.se = search_pb2_grpc.SearchStub(self.ch)

    def source(self, name, dim, n=0):
        self.cat.CreateDataSource(C.CreateDataSourceRequest(spec=C.DataSourceSpec(
            name=name, version="1", vector_kind=C.VECTOR_KIND_DENSE, dimension=dim,
            permanent_attributes=[C.AttributeSpec(name="id", type=T.ATTRIBUTE_TYPE_INT64)],
            id_attributes=["id"])))
        last, x = 0, RNG.random((n, dim), dtype=np.float32)
        for i in range(0, n, 5000):
            last = self.pt.Upload(P.UploadRequest(data_source=ref(name),
                                                  points=pts(x[i:i + 5000], i))).last_seq
        return last

    def index(self, name, src, hnsw=False):
        spec = C.IndexSpec(name=name, version="1", data_source=ref(src), metric=C.METRIC_L2)
        if hnsw:
            spec.algorithm.hnsw.m, spec.algorithm.hnsw.ef_construction = 16, 400
        else:
            spec.algorithm.flat.SetInParent()
        self.cat.CreateIndex(C.CreateIndexRequest(spec=spec))


def ref(name):
    return T.DataSourceRef(name=name, version="1")


def pts(x, first=0):
    return [T.DataPoint(vector=T.Vector(dense=T.DenseVector(values=r)),
                        attributes={"id": T.AttributeValue(int64_value=first + i)})
            for i, r in enumerate(x)]


def queries(n, dim):
    return [T.Vector(dense=T.DenseVector(values=r)) for r in RNG.random((n, dim),
                                                                         dtype=np.float32)]


def outcome(fn):
    t0 = time.perf_counter()
    try:
        fn()
        return f"OK in {(time.perf_counter() - t0) * 1000:.1f} ms"
    except grpc.RpcError as e:
        return (f"{e.code().name} after {(time.perf_counter() - t0) * 1000:.0f} ms: "
                f"{(e.details() or '')[:160]}")


def waiters(binary):
    srv = benchlib.Hilbertd(CONFIG, prefix="hdb-abuse-", binary=binary)
    try:
        db = Db(srv.target)
        last = db.source("big", 256, 20000)
        db.source("other", 4)
        db.index("h", "big", hnsw=True)
        q = queries(1, 256)
        ws = [db.se.Search.future(S.SearchRequest(index=T.IndexRef(name="h", version="1"), k=1,
                                                  query_vectors=q, min_seq=last), timeout=120)
              for _ in range(8)]
        time.sleep(0.5)
        other = Db(srv.target)
        get = P.GetPointsRequest(data_source=ref("big"), ids=[
            P.PointId(id_attributes={"id": T.AttributeValue(int64_value=5)})])
        up = P.UploadRequest(data_source=ref("other"), points=pts(np.ones((1, 4), np.float32)))
        out = {"health": outcome(lambda: health_pb2_grpc.HealthStub(other.ch).Check(
                   health_pb2.HealthCheckRequest(), timeout=5)),
               "get": outcome(lambda: other.pt.Get(get, timeout=5)),
               "upload_other_source": outcome(lambda: other.pt.Upload(up, timeout=5))}
        st = db.cat.GetIndex(C.GetIndexRequest(index=T.IndexRef(name="h", version="1"))).status
        out["index_state_then"] = C.IndexState.Name(st.state)
        for w in ws:
            try:
                w.result()
            except grpc.RpcError:
                pass
        return out
    finally:
        srv.stop()


def limits(binary):
    srv = benchlib.Hilbertd(CONFIG, prefix="hdb-abuse-", binary=binary)
    try:
        db = Db(srv.target)
        db.source("s", 64, 20000)
        db.index("f", "s")
        fi = T.IndexRef(name="f", version="1")
        db.se.Search(S.SearchRequest(index=fi, k=1, query_vectors=queries(1, 64), min_seq=20000),
                     timeout=60)
        pid = srv.proc.pid
        out = {}
        r0 = rss_mb(pid)
        out["k10000_x100"] = outcome(lambda: db.se.Search(S.SearchRequest(
            index=fi, k=10000, query_vectors=queries(100, 64)), timeout=120))
        out["k10000_x100_vectors"] = outcome(lambda: db.se.Search(S.SearchRequest(
            index=fi, k=10000, query_vectors=queries(100, 64), retrieve_vectors=True),
            timeout=120))
        time.sleep(1)
        out["rss_mb_before_after"] = [r0, rss_mb(pid)]
        c0 = cpu_s(pid)
        out["x10000_k100_2s"] = outcome(lambda: db.se.Search(S.SearchRequest(
            index=fi, k=100, query_vectors=queries(10000, 64)), timeout=2))
        c1 = cpu_s(pid)
        time.sleep(5)
        out["cpu_s_until_deadline_and_5s_after"] = [round(c1 - c0, 2), round(cpu_s(pid) - c1, 2)]
        for path in ("/etc/passwd", "/root/.ssh/id_rsa"):
            out[f"model_path {path}"] = outcome(lambda: db.cat.CreateModelSpace(
                C.CreateModelSpaceRequest(spec=C.ModelSpaceSpec(
                    name="m", model_path=path, output_dim=8, metric=C.METRIC_L2,
                    input=C.ModelInput(tensor=C.TensorInput(shape=[4]))))))
        out["ef_search_1e8"] = outcome(lambda: db.se.Search(S.SearchRequest(
            index=fi, k=10, query_vectors=queries(1, 64),
            params=S.SearchParams(ef_search=100000000)), timeout=60))
        return out
    finally:
        srv.stop()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--compare", help="another hilbertd binary to run the same against")
    args = ap.parse_args()
    runs = {}
    for b in [benchlib.HILBERTD] + ([args.compare] if args.compare else []):
        runs[b] = {**waiters(b), **limits(b)}
        print(f"\n{b}")
        for k, v in runs[b].items():
            print(f"  {k}: {v}")
    benchlib.write_json(ROOT / "bench" / "results" / "abuse.json", runs)


if __name__ == "__main__":
    main()
