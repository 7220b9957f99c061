"""Shared fixtures of the end-to-end suite: a real hilbertd on a free loopback port with its own
temporary data directory, driven through the Python stubs that the build generates from proto/.

Environment (set by ctest; see CMakeLists.txt):
  HILBERTD       path of the hilbertd binary (default: build/hilbertd)
  PYTHONPATH     clients/python, where the build generates the *_pb2 modules (conftest adds it)
  HDB_SANITIZE   non-empty when the binary is an ASan/UBSan build (longer timeouts)
"""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, Iterator, List, Optional

import grpc
import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "clients" / "python"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from hilbert.v1 import catalog_pb2_grpc, points_pb2_grpc, search_pb2_grpc  # noqa: E402
from hdb_grpc_health.v1 import health_pb2_grpc  # noqa: E402  (see CMakeLists.txt)

HILBERTD = os.environ.get("HILBERTD", str(ROOT / "build" / "hilbertd"))
SANITIZED = bool(os.environ.get("HDB_SANITIZE"))
START_TIMEOUT = 120.0 if SANITIZED else 30.0
READY = re.compile(r"listening on .*:(\d+)")


class Server:
    """One hilbertd process. Restartable on the same data directory."""

    def __init__(self, data_dir: Path, log_path: Path, extra_args: Optional[List[str]] = None,
                 config: Optional[Path] = None, cwd: Optional[Path] = None,
                 channel_fn: Optional[Callable[[int], grpc.Channel]] = None):
        """channel_fn(port) makes self.channel (e.g. a TLS channel); default: plaintext."""
        self.cwd = cwd
        self.channel_fn = channel_fn
        self.data_dir = data_dir
        self.log_path = log_path
        self.extra_args = list(extra_args or [])
        self.config = config
        self.proc: Optional[subprocess.Popen] = None
        self.port: Optional[int] = None
        self.channel: Optional[grpc.Channel] = None

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> "Server":
        args = [HILBERTD, "--listen", "127.0.0.1:0", "--data-dir", str(self.data_dir)]
        if self.config is not None:
            args += ["--config", str(self.config)]
        args += self.extra_args
        self._log_offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        log = open(self.log_path, "ab")
        env = dict(os.environ)
        # LeakSanitizer must see a clean exit; abort on the first UBSan report.
        env.setdefault("ASAN_OPTIONS", "abort_on_error=0:detect_leaks=1")
        env.setdefault("UBSAN_OPTIONS", "print_stacktrace=1:halt_on_error=1")
        self.proc = subprocess.Popen(args, stdout=log, stderr=log, env=env, cwd=self.cwd)
        log.close()
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            m = READY.search(self.log_since_start())
            if m:
                self.port = int(m.group(1))
                break
            if self.proc.poll() is not None:
                raise RuntimeError(f"hilbertd exited with {self.proc.returncode}:\n"
                                   f"{self.log_since_start()}")
            time.sleep(0.02)
        else:
            self.proc.kill()
            raise RuntimeError(f"hilbertd did not become ready:\n{self.log_since_start()}")
        self.channel = self.channel_fn(self.port) if self.channel_fn else grpc.insecure_channel(
            f"127.0.0.1:{self.port}",
            options=[("grpc.max_receive_message_length", 256 << 20),
                     ("grpc.max_send_message_length", 256 << 20)])
        grpc.channel_ready_future(self.channel).result(timeout=START_TIMEOUT)
        return self

    def log_since_start(self) -> str:
        with open(self.log_path, "rb") as f:
            f.seek(getattr(self, "_log_offset", 0))
            return f.read().decode("utf-8", "replace")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60.0) -> int:
        """Sends sig and waits; returns the exit code (0 after a clean shutdown)."""
        if self.channel is not None:
            self.channel.close()
            self.channel = None
        if self.proc is None:
            return 0
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise AssertionError(f"hilbertd did not stop within {timeout}s:\n"
                                     f"{self.log_since_start()}")
        code = self.proc.returncode
        self.proc = None
        return code

    def kill9(self) -> None:
        """SIGKILL: no shutdown code runs, as in a crash."""
        if self.channel is not None:
            self.channel.close()
            self.channel = None
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None

    def restart(self) -> "Server":
        assert self.stop() == 0, self.log_since_start()
        return self.start()

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    # -- stubs -------------------------------------------------------------------------------
    @property
    def catalog(self) -> catalog_pb2_grpc.CatalogStub:
        return catalog_pb2_grpc.CatalogStub(self.channel)

    @property
    def points(self) -> points_pb2_grpc.PointsStub:
        return points_pb2_grpc.PointsStub(self.channel)

    @property
    def search(self) -> search_pb2_grpc.SearchStub:
        return search_pb2_grpc.SearchStub(self.channel)

    @property
    def health(self) -> health_pb2_grpc.HealthStub:
        return health_pb2_grpc.HealthStub(self.channel)


@pytest.fixture
def make_server(tmp_path: Path) -> Iterator:
    """Factory: make_server(extra_args=[...], config=path, data_dir=..., cwd=...) -> started
    Server (cwd: the working directory, against which relative paths in a config resolve). Every
    server made
    is stopped at the end of the test, and must exit cleanly (code 0, so no sanitizer report)."""
    servers: List[Server] = []

    def factory(extra_args: Optional[List[str]] = None, config: Optional[Path] = None,
                data_dir: Optional[Path] = None, cwd: Optional[Path] = None) -> Server:
        n = len(servers)
        d = data_dir or (tmp_path / f"data{n}")
        s = Server(d, tmp_path / f"hilbertd{n}.log", extra_args, config, cwd)
        servers.append(s)
        return s.start()

    yield factory
    for s in servers:
        if s.proc is not None:
            code = s.stop()
            assert code == 0, f"hilbertd exited with {code}:\n{s.log_since_start()[-4000:]}"


@pytest.fixture
def server(make_server) -> Server:
    """A fresh server with default settings and an empty data directory."""
    return make_server()


@pytest.fixture
def patient(make_server, tmp_path):
    """A server whose shutdown grace (10 minutes) outlasts a long call on any machine, however
    busy: tests of a call that finishes during a stop check that it does, not how fast (with
    the default 10 s grace, a search slowed down by other load was cut off)."""
    cfg = tmp_path / "patient.yaml"
    cfg.write_text("server:\n  shutdown_grace_ms: 600000\n")
    return make_server(config=cfg)


@pytest.fixture(scope="module")
def module_server(tmp_path_factory) -> Iterator[Server]:
    """One server with default settings shared by all tests of a module (for tests that load a
    data set once and then only read it). Must exit cleanly at the end of the module."""
    d = tmp_path_factory.mktemp("module")
    s = Server(d / "data", d / "hilbertd.log")
    s.start()
    yield s
    if s.proc is not None:
        code = s.stop()
        assert code == 0, f"hilbertd exited with {code}:\n{s.log_since_start()[-4000:]}"
