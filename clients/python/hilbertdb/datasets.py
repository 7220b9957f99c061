"""Loaders for the datasets that HilbertDB's tests, benchmarks and examples use.

Fashion-MNIST comes from Debian's ``dataset-fashion-mnist`` package, which installs the original
idx files under ``/usr/share/datasets/fashion-mnist/``::

    >>> from hilbertdb.datasets import load_fashion_mnist
    >>> images, labels = load_fashion_mnist("test")
    >>> images.shape, images.dtype, labels[:3]
    ((10000, 28, 28), dtype('uint8'), array([9, 2, 1], dtype=uint8))
"""
from __future__ import annotations

import gzip
import os
import struct
from typing import Tuple

import numpy as np

FASHION_MNIST_DIR = os.environ.get("HDB_FASHION_MNIST_DIR", "/usr/share/datasets/fashion-mnist")

#: Class names of Fashion-MNIST, indexed by label.
FASHION_MNIST_CLASSES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)


def _read_idx(path: str) -> np.ndarray:
    """Reads one (optionally gzipped) idx file into a numpy array of its declared shape."""
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        data = f.read()
    zero, dtype_code, ndim = struct.unpack(">HBB", data[:4])
    if zero != 0 or dtype_code != 0x08:
        raise ValueError(f"{path}: not an unsigned-byte idx file")
    dims = struct.unpack(">" + "I" * ndim, data[4:4 + 4 * ndim])
    arr = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
    if arr.size != int(np.prod(dims)):
        raise ValueError(f"{path}: expected {int(np.prod(dims))} values, found {arr.size}")
    return arr.reshape(dims)


def load_fashion_mnist(split: str = "train", directory: str = FASHION_MNIST_DIR
                       ) -> Tuple[np.ndarray, np.ndarray]:
    """Returns ``(images, labels)`` of the ``"train"`` (60k) or ``"test"`` (10k) split.

    ``images`` is uint8 with shape (N, 28, 28); ``labels`` is uint8 with shape (N,).
    Raises FileNotFoundError when the Debian package is not installed.
    """
    prefix = {"train": "train", "test": "t10k"}.get(split)
    if prefix is None:
        raise ValueError(f"split must be 'train' or 'test', not {split!r}")
    images = _read_idx(os.path.join(directory, f"{prefix}-images-idx3-ubyte.gz"))
    labels = _read_idx(os.path.join(directory, f"{prefix}-labels-idx1-ubyte.gz"))
    if images.shape[0] != labels.shape[0]:
        raise ValueError("image and label counts differ")
    return images, labels


def fashion_mnist_vectors(split: str = "train", limit: int | None = None
                          ) -> Tuple[np.ndarray, np.ndarray]:
    """Returns Fashion-MNIST images as float32 vectors of 784 values in [0, 1], and labels."""
    images, labels = load_fashion_mnist(split)
    if limit is not None:
        images, labels = images[:limit], labels[:limit]
    return images.reshape(len(images), -1).astype(np.float32) / 255.0, labels
