#!/usr/bin/python3
"""Model upgrade benchmark: re-embed the fmnist_cnn space into a retrained model and switch.

Starts the real server (build/hilbertd) with the bundled fmnist_cnn space declared with
keep_inputs, adds the 10,000 Fashion-MNIST test images through the alias "shop" (label as a
permanent attribute), and measures precision@10 the way models/README.md does (each query
image's 10 nearest other items, the share with its own label; --queries of them, through
FindSimilarById) three times:
  * before: the space as it is (the bundled model);
  * swapped: what a silent upgrade gives, the new model's query vectors against the stored
    vectors of the old model (Embed with the new space's model, then Search on the old index);
  * after: the new space fmnist_cnn_v2 (reembed_from "shop"), once it has caught up and the
    alias points to it.
While the new space copies and catches up, one client keeps adding (and removing again) train
images through the alias and another keeps searching through it; the alias is switched under
that load, and the items end as they began. Reported: the copy
rate (items/s) next to the raw TorchScript forward of the new model at batch 64 in this process
(the baseline), and the number of failed searches and adds (must be 0).

The retrained model is a models/train.py run with another seed and epoch count, e.g.
  nice /usr/bin/python3 models/train.py --epochs 3 --mlp-epochs 1 --seed 5 --out-dir /tmp/v2
Usage:  /usr/bin/python3 bench/reembed_bench.py --new-model /tmp/v2/fmnist_cnn.pt
            [--items 10000] [--queries 1000]
Writes: bench/results/reembed.json
"""
from __future__ import annotations

import argparse
import io
import os
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "clients" / "python"))
sys.path.insert(0, str(ROOT / "bench"))

import benchlib  # noqa: E402
from PIL import Image  # noqa: E402
from hilbertdb import Client, ImageInput  # noqa: E402
from hilbertdb.datasets import load_fashion_mnist  # noqa: E402

MEAN, STD = 0.2860, 0.3530
INPUT = ImageInput(28, 28, 1, mean=[MEAN], std=[STD])


def png(a: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(a).save(buf, format="PNG")
    return buf.getvalue()


def config(models_dir: Path) -> str:
    return (f"storage:\n  sync: false\nmodels:\n  dir: {models_dir}\n"
            "model_spaces:\n"
            "  - name: fmnist_cnn\n    model: fmnist_cnn.pt\n"
            f"    input: {{image: {{width: 28, height: 28, channels: 1, mean: [{MEAN}], "
            f"std: [{STD}]}}}}\n"
            "    output_dim: 64\n    metric: cosine\n"
            "    index: {algorithm: hnsw, hnsw: {m: 16, ef_construction: 200, ef_search: 64}}\n"
            "    permanent_attributes: [{name: label, type: int64}]\n"
            "    keep_inputs: true\n")


def precision_by_id(db, space, ids, labels) -> float:
    """Mean share of same-label items among the 10 nearest others of each id."""
    good = 0
    for i in ids:
        hs = next(iter(db.find_similar_by_id(f"t{i}", space, k=10).values()))
        good += sum(1 for h in hs if h.attributes["label"] == labels[i])
    return good / (10 * len(ids))


def precision_swapped(db, old_index, new_space, ids, pngs, labels) -> float:
    """The new model's query vectors against the old model's stored vectors."""
    good = 0
    for i in ids:
        q = db.embed(image=pngs[i], model_spaces=new_space)[new_space]
        hs = [h for h in db.search(old_index, q, k=11)[0] if h.attributes["id"] != f"t{i}"][:10]
        good += sum(1 for h in hs if h.attributes["label"] == labels[i])
    return good / (10 * len(ids))


def raw_forward_rate(model_path: Path, images: np.ndarray) -> float:
    """Items/s of the TorchScript forward alone, batch 64, one thread, preprocessed input."""
    import torch
    torch.set_num_threads(1)
    m = torch.jit.load(str(model_path)).eval()
    x = torch.from_numpy(((images.astype(np.float32) / 255.0 - MEAN) / STD)[:, None])
    with torch.no_grad():
        m(x[:64])
        t0 = time.perf_counter()
        for s in range(0, len(x), 64):
            m(x[s:s + 64])
    return len(x) / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--new-model", required=True, help="the retrained fmnist_cnn.pt")
    ap.add_argument("--items", type=int, default=10000)
    ap.add_argument("--queries", type=int, default=1000)
    args = ap.parse_args()

    images, labels = load_fashion_mnist("test")
    n = min(args.items, len(images))
    pngs = [png(images[i]) for i in range(n)]
    labels = [int(v) for v in labels[:n]]
    queries = list(range(0, n, max(1, n // args.queries)))[:args.queries]
    models = Path(tempfile.mkdtemp(prefix="hdb-reembed-models-"))
    shutil.copy(ROOT / "models" / "fmnist_cnn.pt", models / "fmnist_cnn.pt")
    shutil.copy(args.new_model, models / "fmnist_cnn_v2.pt")
    hdb = benchlib.Hilbertd(config(models), prefix="hdb-reembed-")
    res = {"items": n, "queries": len(queries)}
    try:
        db = Client(hdb.target, timeout=600)
        db.create_alias("shop", model_space="fmnist_cnn")
        t0 = time.perf_counter()
        for i in range(n):
            db.add_image(f"t{i}", pngs[i], "shop", attributes={"label": labels[i]})
        res["load_s"] = time.perf_counter() - t0
        db.wait_for_index("fmnist_cnn@space")
        res["precision_before"] = precision_by_id(db, "shop", queries, labels)
        print(f"precision@10 before (bundled fmnist_cnn): {res['precision_before']:.4f}",
              flush=True)

        stop = threading.Event()
        failures = {"add": 0, "search": 0}
        counts = {"add": 0, "search": 0}

        extra, extra_labels = load_fashion_mnist("train")

        def writer():
            """Adds train images and removes each again after the next add: the items end as
            they began, so that the precisions compare the same population."""
            k = 0
            while not stop.is_set():
                try:
                    db.add_image(f"new{k}", png(extra[k]), "shop",
                                 attributes={"label": int(extra_labels[k])})
                    counts["add"] += 1
                    if k:
                        db.remove_image(f"new{k - 1}", "shop")
                except Exception:  # noqa: BLE001 - counted
                    failures["add"] += 1
                k += 1
            if k:
                db.remove_image(f"new{k - 1}", "shop")

        def reader():
            k = 0
            while not stop.is_set():
                try:
                    db.find_similar_image(pngs[k % n], "shop", k=10)
                    counts["search"] += 1
                except Exception:  # noqa: BLE001 - counted
                    failures["search"] += 1
                k += 1

        threads = [threading.Thread(target=writer), threading.Thread(target=reader)]
        for t in threads:
            t.start()
        t0 = time.perf_counter()
        db.create_model_space("fmnist_cnn_v2", "fmnist_cnn_v2.pt", input=INPUT, output_dim=64,
                              metric="cosine", permanent_attributes={"label": "int64"},
                              index="hnsw", reembed_from="shop")
        info = db.wait_reembedded("fmnist_cnn_v2", timeout=3600)
        res["reembed_s"] = time.perf_counter() - t0
        res["reembed_items"] = info.reembed.copied
        res["reembed_items_per_s"] = info.reembed.copied / res["reembed_s"]
        db.switch_alias("shop", model_space="fmnist_cnn_v2")
        time.sleep(1.0)  # load on the new space for a moment
        stop.set()
        for t in threads:
            t.join()
        res["adds_during"], res["searches_during"] = counts["add"], counts["search"]
        res["failed_adds"], res["failed_searches"] = failures["add"], failures["search"]
        db.wait_reembedded("fmnist_cnn_v2")
        db.wait_for_index("fmnist_cnn_v2@space")
        res["precision_swapped"] = precision_swapped(db, "fmnist_cnn@space", "fmnist_cnn_v2",
                                                     queries, pngs, labels)
        res["precision_after"] = precision_by_id(db, "shop", queries, labels)
        res["raw_forward_items_per_s"] = raw_forward_rate(models / "fmnist_cnn_v2.pt", images[:n])
        db.close()
    finally:
        hdb.stop()
        shutil.rmtree(models, ignore_errors=True)
    print(f"precision@10 with new query vectors on the old vectors (a silent swap): "
          f"{res['precision_swapped']:.4f}")
    print(f"precision@10 after the re-embed and switch (retrained model): "
          f"{res['precision_after']:.4f}")
    print(f"re-embedded {res['reembed_items']} items in {res['reembed_s']:.1f} s "
          f"({res['reembed_items_per_s']:.0f} items/s; raw forward at batch 64: "
          f"{res['raw_forward_items_per_s']:.0f} items/s) under {res['adds_during']} adds and "
          f"{res['searches_during']} searches; failed: {res['failed_adds']} adds, "
          f"{res['failed_searches']} searches")
    benchlib.write_json(ROOT / "bench" / "results" / "reembed.json", res)


if __name__ == "__main__":
    main()
