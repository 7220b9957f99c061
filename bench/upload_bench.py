#!/usr/bin/python3
"""Upload benchmark: bulk loads of Fashion-MNIST train vectors (784-d float32, attributes id
int64 and label string) into a data source without indices, three ways, each on a fresh
hilbertd (storage.sync false) in the same run:

  raw stubs       the generated stubs: an UploadRequest of DataPoint messages built per point,
                  in batches of --batch (the baseline: what a gRPC client does by hand)
  client points   hilbertdb.Client.upload with a list of Point objects, batch_size --batch
  client array    hilbertdb.Client.upload(x, attributes={"id": ..., "label": ...}): the
                  request bytes written straight from the array, batches of about 4 MiB

Each prints points/s (client-side build time included) and the share of the raw-stub rate.

Usage:  /usr/bin/python3 bench/upload_bench.py [--points 60000] [--batch 1000]
Writes: bench/results/upload.json
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "clients" / "python"))
sys.path.insert(0, str(ROOT / "bench"))

import benchlib  # noqa: E402
import grpc  # noqa: E402
from hilbert.v1 import points_pb2 as P, points_pb2_grpc  # noqa: E402
from hilbert.v1 import types_pb2 as T  # noqa: E402
from hilbertdb import Client, Point  # noqa: E402
from hilbertdb.datasets import fashion_mnist_vectors  # noqa: E402

CONFIG = "server:\n  max_receive_message_bytes: 256MiB\nstorage:\n  sync: false\n"


def timed_load(load, x, labels, batch):
    """Seconds that load(srv, db, x, labels, batch) takes on a fresh hilbertd with an empty
    source "fm"; checks that every point went in."""
    srv = benchlib.Hilbertd(CONFIG, prefix=f"hdb-upload-{load.__name__}-")
    db = Client(srv.target)
    try:
        db.create_data_source("fm", dimension=784,
                              permanent_attributes={"id": "int64", "label": "string"},
                              id_attributes=["id"])
        t0 = time.perf_counter()
        load(srv, db, x, labels, batch)
        dt = time.perf_counter() - t0
        assert db.get_data_source("fm").point_count == len(x)
        return dt
    finally:
        db.close()
        srv.stop()


def raw_stubs(srv, db, x, labels, batch):
    ch = grpc.insecure_channel(srv.target, options=[("grpc.max_send_message_length", -1)])
    stub = points_pb2_grpc.PointsStub(ch)
    ref = T.DataSourceRef(name="fm", version="1")
    for lo in range(0, len(x), batch):
        pts = []
        for i in range(lo, min(len(x), lo + batch)):
            p = T.DataPoint(vector=T.Vector(dense=T.DenseVector(values=x[i])))
            p.attributes["id"].int64_value = i
            p.attributes["label"].string_value = labels[i]
            pts.append(p)
        stub.Upload(P.UploadRequest(data_source=ref, points=pts), timeout=600)
    ch.close()


def client_points(srv, db, x, labels, batch):
    pts = [Point(x[i], {"id": i, "label": labels[i]}) for i in range(len(x))]
    db.upload("fm", pts, batch_size=batch)


def client_array(srv, db, x, labels, batch):
    db.upload("fm", x, attributes={"id": np.arange(len(x)), "label": labels}, progress=False)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--points", type=int, default=60000)
    ap.add_argument("--batch", type=int, default=1000)
    args = ap.parse_args()
    x, y = fashion_mnist_vectors("train", args.points)
    x = np.ascontiguousarray(x, dtype=np.float32)
    labels = [f"class{int(v)}" for v in y]
    rows = []
    for name, fn in [("raw stubs", raw_stubs), ("client points", client_points),
                     ("client array", client_array)]:
        dt = timed_load(fn, x, labels, args.batch)
        rows.append({"way": name, "seconds": dt, "points_per_s": len(x) / dt})
    base = rows[0]["points_per_s"]
    print(f"\n{len(x)} x 784 points, batches of {args.batch} (array: ~4 MiB)")
    print(f"  {'way':14} {'seconds':>8} {'points/s':>10} {'of raw':>7}")
    for r in rows:
        r["share_of_raw"] = r["points_per_s"] / base
        print(f"  {r['way']:14} {r['seconds']:8.2f} {r['points_per_s']:10.0f} "
              f"{r['share_of_raw'] * 100:6.0f}%")
    benchlib.write_json(ROOT / "bench" / "results" / "upload.json",
                        {"args": vars(args), "rows": rows})


if __name__ == "__main__":
    main()
