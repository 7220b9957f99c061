#!/usr/bin/python3
"""Writes the TorchScript models that the model-space end-to-end tests load into hilbertd.

Run with Debian's interpreter (python3-torch); the tests do so once per session through
``model_fixtures.build_models``:

    /usr/bin/python3 tests/e2e/model_fixtures/make_models.py OUTDIR [--slow-ms 300]

The classes live in this file rather than in a ``python -c`` string because torch.jit.script
reads the source of the class, which ``-c`` code does not have.

Models written into OUTDIR (n is the batch size):

    pool_gray.pt   [n, 1, 28, 28] -> [n, 49]   4x4 average pooling, flattened, L2-normalised:
                   similar images give similar vectors, and the result is fully determined by
                   the pixels (no weights)
    pool_rgb.pt    [n, 3, 28, 28] -> [n, 147]  the same over three channels
    tensor16.pt    [n, 16] -> [n, 8]           fixed linear map (seeded), L2-normalised
    slow.pt        [n, 1, 28, 28] -> [n, 8]    a loop of 256x256 matmuls that takes about
                   --slow-ms milliseconds per forward pass whatever n (calibrated here, one
                   thread, as the server runs it), then a linear map of the input
    wrong_shape.pt [n, 1, 28, 28] -> [n, 5]    for a space that declares output_dim 8
    features.pt    [n, 16] -> ([n, 4] twice the first four values, [n, 3] the next three)

Prints one JSON line: {"slow_forward_ms": measured, "slow_iters": loop count}.
"""
import argparse
import json
import os
import sys
import time
from typing import Tuple

import torch
from torch import nn


class Pool(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.nn.functional.avg_pool2d(x, 4).flatten(1)
        return y / y.norm(p=2, dim=1, keepdim=True).clamp_min(1e-12)


class Linear16(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(16, 8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.fc(x)
        return y / y.norm(p=2, dim=1, keepdim=True).clamp_min(1e-12)


class Slow(nn.Module):
    def __init__(self, iters: int) -> None:
        super().__init__()
        self.iters = iters
        self.w = nn.Parameter(torch.randn(256, 256) / 16.0, requires_grad=False)
        self.fc = nn.Linear(784, 8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.w
        for _ in range(self.iters):
            h = torch.tanh(h @ self.w)
        y = self.fc(x.flatten(1)) + 1e-6 * h[0, :8]
        return y / y.norm(p=2, dim=1, keepdim=True).clamp_min(1e-12)


class Features(nn.Module):
    """EuclidesDB's model shape: (features, predictions) for a tensor input."""

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        return x[:, :4] * 2.0, x[:, 4:7]


class WrongShape(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(1)[:, :5]


def save(module: nn.Module, path: str) -> torch.jit.ScriptModule:
    scripted = torch.jit.script(module.eval())
    scripted.save(path)
    return scripted


def forward_ms(model: torch.jit.ScriptModule, runs: int = 3) -> float:
    x = torch.rand(1, 1, 28, 28)
    best = float("inf")
    with torch.no_grad():
        model(x)
        for _ in range(runs):
            t = time.perf_counter()
            model(x)
            best = min(best, time.perf_counter() - t)
    return best * 1000.0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("outdir")
    ap.add_argument("--slow-ms", type=float, default=300.0)
    args = ap.parse_args()
    os.makedirs(args.outdir, exist_ok=True)
    torch.manual_seed(20261121)
    torch.set_num_threads(1)  # as the server runs forwards (models.intra_op_threads: 1)

    def p(name: str) -> str:
        return os.path.join(args.outdir, name)

    save(Pool(), p("pool_gray.pt"))
    save(Pool(), p("pool_rgb.pt"))
    save(Linear16(), p("tensor16.pt"))
    save(WrongShape(), p("wrong_shape.pt"))
    save(Features(), p("features.pt"))

    # Calibrate the loop: time a short one, scale to the target, check.
    probe_iters = 20
    per_iter = forward_ms(torch.jit.script(Slow(probe_iters).eval())) / probe_iters
    iters = max(1, int(round(args.slow_ms / max(per_iter, 1e-3))))
    slow = save(Slow(iters), p("slow.pt"))
    measured = forward_ms(slow, runs=2)
    print(json.dumps({"slow_forward_ms": round(measured, 1), "slow_iters": iters}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
