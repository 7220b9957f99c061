#!/usr/bin/python3
"""Trains, exports and evaluates HilbertDB's bundled Fashion-MNIST embedding models.

Two TorchScript models are produced (both take the same preprocessed input, see README.md):

  fmnist_cnn.pt  small CNN, trained with cross-entropy through a linear classification head over
                 a 64-d embedding; exports only the L2-normalised 64-d embedding.
  fmnist_mlp.pt  MLP, trained with a supervised contrastive (SupCon) loss directly on its
                 L2-normalised 32-d output.

Input of both: float32 [n, 1, 28, 28], gray pixels scaled to [0, 1] then normalised as
(x - 0.2860) / 0.3530. Output: float32 [n, D], unit L2 norm (use cosine / inner product).

Usage (Debian's interpreter, which has python3-torch):
  nice -n 10 /usr/bin/python3 models/train.py                 # train both, export, evaluate
  /usr/bin/python3 models/train.py --eval-only                # evaluate the existing .pt files
  options: --epochs N (CNN, default 6), --mlp-epochs M (default 30), --out-dir DIR,
           --threads T (default 1), --seed S

Deterministic: fixed seeds, fixed thread count, no data-dependent randomness beyond the seeded
generators. Evaluation: precision@10 on the 10k test set (each test image queries the other
9,999 test images by cosine similarity, itself excluded).
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "clients", "python"))
from hilbertdb.datasets import FASHION_MNIST_CLASSES, load_fashion_mnist  # noqa: E402

MEAN = 0.2860
STD = 0.3530
CNN_FILE = "fmnist_cnn.pt"
MLP_FILE = "fmnist_mlp.pt"


# --------------------------------------------------------------------------------------------
# Models
# --------------------------------------------------------------------------------------------
class CnnEmbed(nn.Module):
    """[n,1,28,28] -> conv blocks 32/64/64 (each conv-BN-ReLU-maxpool) -> 64*3*3 -> 64-d, L2."""

    def __init__(self, dim: int = 64):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 32, 3, padding=1, bias=False), nn.BatchNorm2d(32), nn.ReLU(inplace=True),
            nn.MaxPool2d(2),                                                    # 32 x 14 x 14
            nn.Conv2d(32, 64, 3, padding=1, bias=False), nn.BatchNorm2d(64), nn.ReLU(inplace=True),
            nn.MaxPool2d(2),                                                    # 64 x 7 x 7
            nn.Conv2d(64, 64, 3, padding=1, bias=False), nn.BatchNorm2d(64), nn.ReLU(inplace=True),
            nn.MaxPool2d(2),                                                    # 64 x 3 x 3
        )
        self.fc = nn.Linear(64 * 3 * 3, dim)

    def raw(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(self.features(x), 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.raw(x), p=2.0, dim=1)


class MlpEmbed(nn.Module):
    """[n,1,28,28] -> flatten 784 -> 160 -> 128 (Linear-BN-ReLU) -> 32-d, L2."""

    def __init__(self, dim: int = 32):
        super().__init__()
        self.net = nn.Sequential(
            nn.Flatten(1),
            nn.Linear(784, 160, bias=False), nn.BatchNorm1d(160), nn.ReLU(inplace=True),
            nn.Linear(160, 128, bias=False), nn.BatchNorm1d(128), nn.ReLU(inplace=True),
            nn.Linear(128, dim),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.net(x), p=2.0, dim=1)


def supcon_loss(z: torch.Tensor, y: torch.Tensor, temperature: float) -> torch.Tensor:
    """Supervised contrastive loss (Khosla et al. 2020, L_out) on L2-normalised z."""
    n = z.shape[0]
    logits = z @ z.t() / temperature
    self_mask = torch.eye(n, dtype=torch.bool)
    logits = logits.masked_fill(self_mask, float("-inf"))
    log_prob = logits - torch.logsumexp(logits, dim=1, keepdim=True)
    pos = (y[:, None] == y[None, :]) & ~self_mask
    n_pos = pos.sum(1)
    keep = n_pos > 0
    per_anchor = -(log_prob.masked_fill(~pos, 0.0).sum(1)[keep] / n_pos[keep])
    return per_anchor.mean()


# --------------------------------------------------------------------------------------------
# Data
# --------------------------------------------------------------------------------------------
def to_input(images: np.ndarray) -> torch.Tensor:
    """uint8 [N,28,28] -> normalised float32 [N,1,28,28] (the server's preprocessing)."""
    x = torch.from_numpy(images.astype(np.float32) / 255.0)
    return ((x - MEAN) / STD).unsqueeze(1).contiguous()


def batches(n: int, batch_size: int, gen: torch.Generator):
    perm = torch.randperm(n, generator=gen)
    for i in range(0, n - batch_size + 1, batch_size):  # drop the last partial batch
        yield perm[i:i + batch_size]


def hflip_half(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Flips a random half of the batch left-right (label-preserving for Fashion-MNIST)."""
    flip = torch.rand(x.shape[0], generator=gen) < 0.5
    x = x.clone()
    x[flip] = x[flip].flip(-1)
    return x


# --------------------------------------------------------------------------------------------
# Training
# --------------------------------------------------------------------------------------------
def train_cnn(xtr, ytr, xte, yte, epochs: int, seed: int) -> tuple[CnnEmbed, float]:
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    model = CnnEmbed()
    head = nn.Linear(64, 10)
    params = list(model.parameters()) + list(head.parameters())
    opt = torch.optim.AdamW(params, lr=3e-3, weight_decay=5e-4)
    bs = 128
    steps = epochs * (len(xtr) // bs)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=3e-3, total_steps=steps,
                                                pct_start=0.15)
    for ep in range(epochs):
        model.train(); head.train()
        t0, tot, correct, seen = time.time(), 0.0, 0, 0
        for i, idx in enumerate(batches(len(xtr), bs, gen)):
            xb, yb = hflip_half(xtr[idx], gen), ytr[idx]
            logits = head(model.raw(xb))
            loss = F.cross_entropy(logits, yb, label_smoothing=0.1)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step(); sched.step()
            tot += loss.item() * len(idx); seen += len(idx)
            correct += (logits.argmax(1) == yb).sum().item()
            if i % 100 == 0:
                print(f"  cnn epoch {ep + 1}/{epochs} step {i}/{len(xtr) // bs} "
                      f"loss {tot / seen:.4f}", flush=True)
        acc = test_accuracy(model, head, xte, yte)
        print(f"cnn epoch {ep + 1}/{epochs}: loss {tot / seen:.4f} train-acc {correct / seen:.4f} "
              f"test-acc {acc:.4f} ({time.time() - t0:.0f} s)", flush=True)
    model.eval()
    return model, test_accuracy(model, head, xte, yte)


@torch.no_grad()
def test_accuracy(model: CnnEmbed, head: nn.Linear, x, y) -> float:
    model.eval(); head.eval()
    pred = torch.cat([head(model.raw(x[i:i + 1000])).argmax(1) for i in range(0, len(x), 1000)])
    return (pred == y).float().mean().item()


def train_mlp(xtr, ytr, epochs: int, seed: int) -> MlpEmbed:
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    model = MlpEmbed()
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=1e-4)
    bs = 512
    steps = epochs * (len(xtr) // bs)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=2e-3, total_steps=steps,
                                                pct_start=0.15)
    for ep in range(epochs):
        model.train()
        t0, tot, seen = time.time(), 0.0, 0
        for idx in batches(len(xtr), bs, gen):
            xb, yb = hflip_half(xtr[idx], gen), ytr[idx]
            loss = supcon_loss(model(xb), yb, temperature=0.1)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step(); sched.step()
            tot += loss.item() * len(idx); seen += len(idx)
        print(f"mlp epoch {ep + 1}/{epochs}: supcon loss {tot / seen:.4f} "
              f"({time.time() - t0:.0f} s)", flush=True)
    model.eval()
    return model


# --------------------------------------------------------------------------------------------
# Export, verification, evaluation
# --------------------------------------------------------------------------------------------
def export(model: nn.Module, path: str) -> None:
    model.eval()
    scripted = torch.jit.script(model)
    scripted = torch.jit.freeze(scripted)  # folds eval-mode BN/constants; forward only
    scripted.save(path)
    print(f"saved {path} ({os.path.getsize(path)} bytes)", flush=True)


VERIFY_CODE = r"""
import sys, torch
torch.set_num_threads(1)
torch.manual_seed(1)
for path, dim in zip(sys.argv[1::2], sys.argv[2::2]):
    m = torch.jit.load(path)
    m.eval()
    for n in (1, 7, 64):
        with torch.inference_mode():
            out = m(torch.randn(n, 1, 28, 28))
        assert isinstance(out, torch.Tensor), type(out)
        assert out.dtype == torch.float32 and tuple(out.shape) == (n, int(dim)), (out.dtype, out.shape)
        assert torch.isfinite(out).all()
        assert torch.allclose(out.norm(dim=1), torch.ones(n), atol=1e-4)
    with torch.inference_mode():  # the server checks a model with a forward pass on zeros
        z = m(torch.zeros(1, 1, 28, 28))
    assert z.shape == (1, int(dim)) and torch.isfinite(z).all()
    print(f"verify {path}: ok (batch 1/7/64 -> [n,{dim}] float32, unit norm; zero input finite)")
"""


def verify_fresh_process(paths_dims: list[tuple[str, int]]) -> None:
    """Reloads the exported files with torch.jit.load in a new interpreter process."""
    args = [a for p, d in paths_dims for a in (p, str(d))]
    subprocess.run([sys.executable, "-c", VERIFY_CODE, *args], check=True)


@torch.no_grad()
def embed(model, x: torch.Tensor) -> torch.Tensor:
    return torch.cat([model(x[i:i + 1000]) for i in range(0, len(x), 1000)])


@torch.no_grad()
def retrieval_metrics(e: torch.Tensor, y: torch.Tensor, k: int = 10):
    """precision@k (mean and per class) and k-NN majority-vote accuracy, cosine similarity."""
    e = F.normalize(e, dim=1)
    hits = torch.empty(len(e), dtype=torch.float64)
    knn_pred = torch.empty(len(e), dtype=torch.long)
    for i in range(0, len(e), 1000):
        s = e[i:i + 1000] @ e.t()
        rows = torch.arange(s.shape[0])
        s[rows, rows + i] = float("-inf")  # exclude the query itself
        nn_idx = s.topk(k, dim=1).indices
        nn_lab = y[nn_idx]
        hits[i:i + len(s)] = (nn_lab == y[i:i + len(s), None]).double().mean(1)
        knn_pred[i:i + len(s)] = F.one_hot(nn_lab, 10).sum(1).argmax(1)
    per_class = [hits[y == c].mean().item() for c in range(10)]
    return hits.mean().item(), per_class, (knn_pred == y).float().mean().item()


def report(name: str, path: str, e: torch.Tensor, y: torch.Tensor) -> float:
    p, per_class, knn = retrieval_metrics(e, y)
    print(f"\n== {name}: {os.path.basename(path)}  {os.path.getsize(path)} bytes  dim {e.shape[1]}")
    print(f"precision@10 (cosine, 10k test, self excluded): {p:.4f}")
    print(f"10-NN majority-vote accuracy: {knn:.4f}")
    for c, v in enumerate(per_class):
        print(f"  {c} {FASHION_MNIST_CLASSES[c]:<12} {v:.4f}")
    return p


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--epochs", type=int, default=6, help="CNN epochs (default 6)")
    ap.add_argument("--mlp-epochs", type=int, default=None,
                    help="MLP epochs (default 30; one MLP epoch costs ~2%% of a CNN epoch)")
    ap.add_argument("--out-dir", default=HERE, help="where the .pt files go (default: models/)")
    ap.add_argument("--eval-only", action="store_true", help="evaluate existing .pt files")
    ap.add_argument("--threads", type=int, default=1,
                    help="torch threads (default 1: on the busy 2-core dev machine 2 threads "
                         "trained ~3x slower than 1)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    mlp_epochs = args.mlp_epochs if args.mlp_epochs is not None else 30

    torch.set_num_threads(args.threads)
    torch.set_num_interop_threads(1)
    torch.use_deterministic_algorithms(True)
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)
    os.makedirs(args.out_dir, exist_ok=True)
    cnn_path = os.path.join(args.out_dir, CNN_FILE)
    mlp_path = os.path.join(args.out_dir, MLP_FILE)

    t_start = time.time()
    xtr_u8, ytr_u8 = load_fashion_mnist("train")
    xte_u8, yte_u8 = load_fashion_mnist("test")
    xtr, ytr = to_input(xtr_u8), torch.from_numpy(ytr_u8.astype(np.int64))
    xte, yte = to_input(xte_u8), torch.from_numpy(yte_u8.astype(np.int64))
    print(f"data: train {tuple(xtr.shape)}, test {tuple(xte.shape)}; torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads", flush=True)

    head_acc = None
    if not args.eval_only:
        t0 = time.time()
        cnn, head_acc = train_cnn(xtr, ytr, xte, yte, args.epochs, args.seed)
        print(f"cnn trained in {time.time() - t0:.0f} s; head test accuracy {head_acc:.4f}",
              flush=True)
        export(cnn, cnn_path)
        t0 = time.time()
        mlp = train_mlp(xtr, ytr, mlp_epochs, args.seed + 1)
        print(f"mlp trained in {time.time() - t0:.0f} s", flush=True)
        export(mlp, mlp_path)
        verify_fresh_process([(cnn_path, 64), (mlp_path, 32)])

    # Evaluate the exported files themselves (what the server will run).
    results = {}
    for name, path in (("CNN", cnn_path), ("MLP", mlp_path)):
        m = torch.jit.load(path)
        m.eval()
        results[name] = report(name, path, embed(m, xte), yte)
    if head_acc is not None:
        print(f"\nCNN classification head test accuracy (not exported): {head_acc:.4f}")
    print(f"total time {time.time() - t_start:.0f} s")


if __name__ == "__main__":
    main()
