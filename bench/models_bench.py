#!/usr/bin/python3
"""Model benchmark: images/s through AddImage, next to a raw libtorch forward of the same model.

Starts the real server (build/hilbertd) with one model space per bundled model (models/*.pt,
exact flat index so indexing costs stay small) and measures, through gRPC from this process:
  * AddImage, one client sending one image at a time (single);
  * AddImage from N concurrent clients, which the server's inference pool batches (batched);
  * Embed the same way (the model without storage);
  * both of the above with every model space in each request (the models run side by side);
and, in the same run, the raw TorchScript forward of the same model file through Debian's
python3-torch (libtorch underneath) with one thread: batch 1 and batch 32, on the same images
already preprocessed. The server runs libtorch with the same thread settings.

Usage:  /usr/bin/python3 bench/models_bench.py [--images 2000] [--clients 8]
Writes: bench/results/models.json
"""
from __future__ import annotations

import argparse
import io
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "clients" / "python"))

sys.path.insert(0, str(ROOT / "bench"))

import benchlib  # noqa: E402
import grpc  # noqa: E402
from PIL import Image  # noqa: E402
from hilbert.v1 import modelspaces_pb2 as M, modelspaces_pb2_grpc  # noqa: E402
from hilbertdb.datasets import load_fashion_mnist  # noqa: E402

MODELS = {"fmnist_cnn": ("fmnist_cnn.pt", 64), "fmnist_mlp": ("fmnist_mlp.pt", 32)}
MEAN, STD = 0.2860, 0.3530


def config(max_batch: int) -> str:
    spaces = "".join(
        f"  - name: {name}\n    model: {file}\n"
        f"    input: {{image: {{width: 28, height: 28, channels: 1, mean: [{MEAN}], std: [{STD}]}}}}\n"
        f"    output_dim: {dim}\n    metric: cosine\n"
        for name, (file, dim) in MODELS.items())
    return (f"storage:\n  sync: false\nmodels:\n  dir: {ROOT / 'models'}\n"
            f"  rpc_threads: 16\n  inference_threads: 2\n  intra_op_threads: 1\n"
            f"  max_batch: {max_batch}\n  max_wait_us: 2000\n"
            f"model_spaces:\n{spaces}")


class Server:
    def __init__(self, max_batch: int):
        self.hdb = benchlib.Hilbertd(config(max_batch), prefix="hdb-mbench-")
        self.target = self.hdb.target

    def close(self):
        self.hdb.stop()


def pngs(n: int):
    x, y = load_fashion_mnist("test")
    out = []
    for i in range(n):
        b = io.BytesIO()
        Image.fromarray(x[i]).save(b, "PNG")
        out.append(b.getvalue())
    return out, x[:n]


def rate(target: str, calls, clients: int) -> float:
    """Items/s for `calls` (functions of a stub) spread over `clients` threads."""
    chunks = [calls[i::clients] for i in range(clients)]
    channels = [grpc.insecure_channel(target) for _ in range(clients)]
    stubs = [modelspaces_pb2_grpc.ModelSpacesStub(ch) for ch in channels]

    def work(i):
        for call in chunks[i]:
            call(stubs[i])

    try:
        return len(calls) / benchlib.run_clients(clients, work)
    finally:
        for ch in channels:
            ch.close()


def raw_torch(file: str, images: np.ndarray):
    import torch
    torch.set_num_threads(1)
    m = torch.jit.load(str(ROOT / "models" / file)).eval()
    x = torch.from_numpy(((images.astype(np.float32) / 255.0 - MEAN) / STD)[:, None])
    res = {}
    with torch.inference_mode():
        m(x[:32])  # warm up
        for batch in (1, 32):
            t0 = time.perf_counter()
            for i in range(0, len(x), batch):
                m(x[i:i + batch])
            res[batch] = len(x) / (time.perf_counter() - t0)
    return res


def through_server(target: str, data, spaces, tag: str, clients_batched: int):
    """[(what, images/s)] of AddImage and Embed of every image into `spaces`, from one client
    and from clients_batched clients (ids of the added images start with `tag`)."""
    rows = []
    for label, clients in (("single", 1), ("batched", clients_batched)):
        who = f"{label} ({clients} client{'s' if clients > 1 else ''})"
        adds = [lambda st, i=i, b=b: st.AddImage(M.AddImageRequest(
            id=f"{tag}-{label}-{i}", image=b, model_spaces=spaces)) for i, b in enumerate(data)]
        rows.append((f"AddImage, {who}", rate(target, adds, clients)))
        embeds = [lambda st, b=b: st.Embed(M.EmbedRequest(image=b, model_spaces=spaces))
                  for b in data]
        rows.append((f"Embed, {who}", rate(target, embeds, clients)))
    return rows


def report(results, title: str, model: str, rows, images: int) -> None:
    print(f"== {title}, {images} Fashion-MNIST test images")
    for what, r in rows:
        print(f"  {what:42s} {r:10.0f} images/s")
        results["rows"].append({"model": model, "what": what, "images_per_s": round(r)})


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--images", type=int, default=2000)
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "models.json"))
    args = ap.parse_args()
    data, raw = pngs(args.images)
    results = {"images": args.images, "clients": args.clients, "rows": []}
    s = Server(max_batch=32)
    try:
        warm = [lambda st, b=b: st.Embed(M.EmbedRequest(image=b)) for b in data[:50]]
        rate(s.target, warm, 4)
        for space, (file, dim) in MODELS.items():
            torch_rates = raw_torch(file, raw)
            rows = [("raw libtorch forward, batch 1", torch_rates[1]),
                    ("raw libtorch forward, batch 32", torch_rates[32])]
            rows += through_server(s.target, data, [space], space, args.clients)
            report(results, f"{space} ({file}, {dim}-d)", space, rows, args.images)
        # One request for every space: the server runs the models side by side on its pool.
        both = list(MODELS)
        rows = through_server(s.target, data, both, "all", args.clients)
        report(results, "both spaces in each request", "+".join(both), rows, args.images)
    finally:
        s.close()
    benchlib.write_json(args.out, results)


if __name__ == "__main__":
    main()
