#!/usr/bin/python3
"""Image similarity search over Fashion-MNIST with HilbertDB's model spaces.

Connects to a running hilbertd (e.g. ``scripts/run.sh``, whose default config declares the
bundled model spaces ``fmnist_cnn`` and ``fmnist_mlp``), adds N test images to every image model
space with AddImage (the server runs the models; label and class name go along as payload
attributes), then queries a few other test images with FindSimilarImage and prints the top k
per model space. With ``--plot`` it draws each query next to its hits, one row per model space.

    PYTHONPATH=clients/python /usr/bin/python3 clients/python/examples/fashion_mnist_search.py \\
        --target 127.0.0.1:50051 --images 2000 --queries 4 -k 8 --plot fmnist_hits.png

Needs Debian's dataset-fashion-mnist (``/usr/share/datasets/fashion-mnist``), numpy, Pillow,
and matplotlib for ``--plot``. Item ids are ``fmnist-test-<index>``: running it again replaces
the same items instead of adding duplicates.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Dict, List

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from hilbertdb import Client, HilbertError, Hit, ImageInput  # noqa: E402
from hilbertdb.datasets import FASHION_MNIST_CLASSES, load_fashion_mnist  # noqa: E402


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--target", default="127.0.0.1:50051", help="hilbertd address")
    ap.add_argument("-n", "--images", "--num-images", dest="num_images", type=int, default=2000,
                    help="test images to add (default 2000)")
    ap.add_argument("--queries", type=int, default=4, help="query images (default 4)")
    ap.add_argument("-k", type=int, default=8, help="hits per model space (default 8)")
    ap.add_argument("--threads", type=int, default=8, help="concurrent AddImage calls")
    ap.add_argument("--seed", type=int, default=0, help="picks the query images")
    ap.add_argument("--model-spaces", nargs="*", default=None,
                    help="model spaces to use (default: every image model space)")
    ap.add_argument("--plot", metavar="PNG", help="write a grid of queries and hits here")
    return ap.parse_args()


def image_spaces(db: Client, wanted) -> List[str]:
    spaces = [s for s in db.list_model_spaces()
              if isinstance(s.input, ImageInput) and s.model_state == "LOADED"]
    names = [s.name for s in spaces]
    if wanted:
        missing = sorted(set(wanted) - set(names))
        if missing:
            sys.exit(f"no loaded image model space named {', '.join(missing)} "
                     f"(the server has: {', '.join(names) or 'none'})")
        names = list(wanted)
    if not names:
        sys.exit("the server has no image model spaces: start it with scripts/run.sh (the "
                 "default config declares fmnist_cnn and fmnist_mlp) or create one with "
                 "Client.create_model_space")
    for s in spaces:
        if s.name in names:
            print(f"model space {s.name}: {s.model_path}, {s.output_dim}-d, {s.metric}, "
                  f"{s.point_count} items")
    return names


def load(db: Client, spaces: List[str], images: np.ndarray, labels: np.ndarray, n: int,
         threads: int) -> Dict[str, int]:
    """Adds test images 0..n-1 to every space; returns space -> highest seq written."""
    def add(i: int) -> Dict[str, int]:
        label = int(labels[i])
        return db.add_image(f"fmnist-test-{i}", images[i], model_spaces=spaces,
                            attributes={"label": label, "name": FASHION_MNIST_CLASSES[label]})

    t = time.perf_counter()
    last: Dict[str, int] = {}
    with ThreadPoolExecutor(threads) as ex:
        for done, seqs in enumerate(ex.map(add, range(n)), 1):
            for space, seq in seqs.items():
                last[space] = max(last.get(space, 0), seq)
            if sys.stdout.isatty() and (done % 250 == 0 or done == n):
                print(f"  added {done}/{n} images", end="\r", flush=True)
    dt = time.perf_counter() - t
    print(f"added {n} images to {len(spaces)} model space(s) in {dt:.1f} s "
          f"({n / dt:.0f} images/s)")
    return last


def show(q: int, label: int, results: Dict[str, List[Hit]]) -> None:
    print(f"\nquery: test image {q} ({FASHION_MNIST_CLASSES[label]})")
    for space, hits in results.items():
        same = sum(h.attributes.get("label") == label for h in hits)
        print(f"  {space}: {same}/{len(hits)} of the same class")
        for rank, h in enumerate(hits, 1):
            print(f"    {rank:2d}. {h.id:<18} {h.attributes.get('name', '?'):<12} "
                  f"distance {h.distance:.4f}")


def plot(path: str, images: np.ndarray, labels: np.ndarray, queries: List[int],
         answers: List[Dict[str, List[Hit]]], spaces: List[str], k: int) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = len(queries) * len(spaces)
    fig, axes = plt.subplots(rows, k + 1, figsize=(1.3 * (k + 1), 1.55 * rows), squeeze=False)
    for qi, (q, res) in enumerate(zip(queries, answers)):
        for si, space in enumerate(spaces):
            r = qi * len(spaces) + si
            ax = axes[r][0]
            ax.imshow(images[q], cmap="gray_r")
            ax.set_title(f"query {q}\n{FASHION_MNIST_CLASSES[labels[q]]}", fontsize=7)
            ax.set_ylabel(space, fontsize=7)
            hits = res.get(space, [])
            for j in range(k):
                ax = axes[r][j + 1]
                if j < len(hits):
                    h = hits[j]
                    idx = int(str(h.id).rsplit("-", 1)[-1])
                    ok = h.attributes.get("label") == labels[q]
                    ax.imshow(images[idx], cmap="gray_r")
                    ax.set_title(f"{h.attributes.get('name', '?')}\n{h.distance:.3f}",
                                 fontsize=6, color="black" if ok else "red")
            for ax in axes[r]:
                ax.set_xticks([])
                ax.set_yticks([])
    fig.suptitle("HilbertDB FindSimilarImage on Fashion-MNIST (red: another class)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    print(f"\nwrote {path}")


def main() -> int:
    args = parse_args()
    images, labels = load_fashion_mnist("test")
    n = min(args.num_images, len(images) - args.queries)
    rng = np.random.default_rng(args.seed)
    queries = sorted(int(q) for q in rng.choice(np.arange(n, len(images)), args.queries,
                                                replace=False))
    with Client(args.target, timeout=120) as db:
        try:
            db.wait_until_ready(timeout=10)
            spaces = image_spaces(db, args.model_spaces)
            last = load(db, spaces, images, labels, n, args.threads)
            answers = []
            for q in queries:
                res = db.find_similar_image(images[q], model_spaces=spaces, k=args.k,
                                            min_seq=last)
                show(q, int(labels[q]), res)
                answers.append(res)
        except HilbertError as e:
            print(f"error: {e.code.name}: {e.details}", file=sys.stderr)
            return 1
    precision = {s: np.mean([np.mean([h.attributes.get("label") == labels[q] for h in a[s]])
                             for q, a in zip(queries, answers)]) for s in spaces}
    print("\nprecision@%d over %d queries: %s" % (
        args.k, len(queries), ", ".join(f"{s} {p:.2f}" for s, p in precision.items())))
    if args.plot:
        plot(args.plot, images, labels, queries, answers, spaces, args.k)
    return 0


if __name__ == "__main__":
    sys.exit(main())
