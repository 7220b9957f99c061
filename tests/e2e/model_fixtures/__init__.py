"""Shared pieces of the model-space end-to-end tests (test_client*.py, test_models*.py).

- build_models(): the fixture TorchScript models of make_models.py, scripted once per test
  session (a subprocess of Debian's python3 with torch) into a temporary directory.
- write_config(): a hilbertd YAML config declaring model spaces (absolute model paths).
- client(): a hilbertdb.Client connected to a conftest Server; expect(): a call's error.
- Image helpers: PNG/JPEG bytes of Fashion-MNIST images and crafted bad images.
"""
from __future__ import annotations

import io
import json
import os
import struct
import subprocess
import threading
import zlib
from pathlib import Path
from typing import Any, Dict, Iterable, List, Mapping, Optional

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[2]
PYTHON = os.environ.get("HDB_PYTHON", "/usr/bin/python3")
SANITIZED = bool(os.environ.get("HDB_SANITIZE"))
#: Deadline of the tests' RPCs (the ASan build is several times slower).
TIMEOUT = 300.0 if SANITIZED else 60.0
#: Where the bundled models are (ctest sets HDB_MODELS_DIR to the source tree's models/).
MODELS_DIR = Path(os.environ.get("HDB_MODELS_DIR", str(ROOT / "models")))

#: Input of the bundled Fashion-MNIST models (models/train.py).
FMNIST_MEAN = 0.2860
FMNIST_STD = 0.3530

_lock = threading.Lock()
_built: Dict[str, Any] = {}


def build_models(base: Path) -> Dict[str, Any]:
    """Scripts the fixture models into base/ (once per process) and returns
    {"dir": Path, "slow_forward_ms": float, "slow_iters": int}."""
    with _lock:
        if not _built:
            out = Path(base)
            out.mkdir(parents=True, exist_ok=True)
            proc = subprocess.run([PYTHON, str(HERE / "make_models.py"), str(out)],
                                  capture_output=True, text=True, timeout=600)
            if proc.returncode != 0:
                raise RuntimeError(f"make_models.py failed ({proc.returncode}):\n"
                                   f"{proc.stdout}\n{proc.stderr}")
            info = json.loads(proc.stdout.strip().splitlines()[-1])
            _built.update(info)
            _built["dir"] = out
        return dict(_built)


# ------------------------------------------------------------------------ config

def image_space(name: str, model: Path, output_dim: int, width: int = 28, height: int = 28,
                channels: int = 1, metric: str = "cosine", mean: Optional[List[float]] = None,
                std: Optional[List[float]] = None, **extra: Any) -> Dict[str, Any]:
    image: Dict[str, Any] = {"width": width, "height": height, "channels": channels,
                             "resize": "stretch"}
    if mean is not None:
        image["mean"] = mean
    if std is not None:
        image["std"] = std
    d = {"name": name, "model": str(model), "input": {"image": image},
         "output_dim": output_dim, "metric": metric}
    d.update(extra)
    return d


def tensor_space(name: str, model: Path, shape: List[int], output_dim: int,
                 metric: str = "cosine", **extra: Any) -> Dict[str, Any]:
    d = {"name": name, "model": str(model), "input": {"tensor": {"shape": shape}},
         "output_dim": output_dim, "metric": metric}
    d.update(extra)
    return d


def fmnist_spaces(models_dir: Path = MODELS_DIR) -> List[Dict[str, Any]]:
    """The two bundled Fashion-MNIST model spaces (dims from models/train.py)."""
    kw = dict(mean=[FMNIST_MEAN], std=[FMNIST_STD])
    return [image_space("fmnist_cnn", models_dir / "fmnist_cnn.pt", 64, **kw),
            image_space("fmnist_mlp", models_dir / "fmnist_mlp.pt", 32, **kw)]


def fixture_models_dir() -> Path:
    """Where model files for a test server are: the scripted fixture models once built
    (build_models), else the bundled models/."""
    return Path(_built["dir"]) if _built else MODELS_DIR


def write_config(path: Path, spaces: Iterable[Mapping[str, Any]], models: Optional[
        Mapping[str, Any]] = None, sync: bool = False, extra: str = "",
                 models_dir: Optional[Path] = None) -> Path:
    """Writes a hilbertd config declaring `spaces` (YAML flow mappings, written as JSON, which
    YAML reads as is). `models` sets keys of the models section. models.dir (the only place
    hilbertd loads models from) is models_dir, else the directory that holds the spaces'
    models, else fixture_models_dir()."""
    spaces = list(spaces)
    if models_dir is None:
        dirs = {str(Path(s["model"]).parent) for s in spaces if "model" in s}
        models_dir = Path(dirs.pop()) if len(dirs) == 1 else fixture_models_dir()
    lines = ["storage:", f"  sync: {'true' if sync else 'false'}", "models:",
             f"  dir: {json.dumps(str(models_dir))}"]
    for k, v in (models or {}).items():
        lines.append(f"  {k}: {json.dumps(v)}")
    lines.append("model_spaces:")
    if not spaces:
        lines[-1] += " []"
    for s in spaces:
        lines.append(f"  - {json.dumps(dict(s))}")
    Path(path).write_text("\n".join(lines) + "\n" + extra)
    return Path(path)


def expect(exc, call, *fragments):
    """Runs call, which must raise exc (a hilbertdb error) whose message contains every
    fragment; returns the error."""
    import pytest
    with pytest.raises(exc) as info:
        call()
    for f in fragments:
        assert f in info.value.details, info.value.details
    return info.value


def client(server, timeout: float = TIMEOUT):
    """A hilbertdb.Client for a conftest Server (closed by the caller or at exit)."""
    from hilbertdb import Client
    return Client(f"127.0.0.1:{server.port}", timeout=timeout)


# ------------------------------------------------------------------------ images

def png_bytes(a: np.ndarray) -> bytes:
    from PIL import Image
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(a)).save(buf, format="PNG")
    return buf.getvalue()


def jpeg_bytes(a: np.ndarray, mode: Optional[str] = None, quality: int = 95) -> bytes:
    from PIL import Image
    im = Image.fromarray(np.ascontiguousarray(a))
    if mode is not None:
        im = im.convert(mode)
    buf = io.BytesIO()
    im.save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def _chunk(kind: bytes, data: bytes) -> bytes:
    return (struct.pack(">I", len(data)) + kind + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))


def png_declaring(width: int, height: int, color_type: int = 0, bit_depth: int = 8) -> bytes:
    """A PNG whose IHDR (with a correct CRC) declares width x height, followed by a tiny IDAT
    and IEND: the pixels are not there, only the header is plausible."""
    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, color_type, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 16)
    return (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", idat)
            + _chunk(b"IEND", b""))
