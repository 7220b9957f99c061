"""Shared by the benchmarks: run one hilbertd on a free loopback port with a fresh data dir.

    srv = benchlib.Hilbertd(config_yaml, prefix="hdb-bench-")
    ... srv.target ("127.0.0.1:PORT"), srv.dir, srv.log_text() ...
    srv.stop()

HILBERTD (environment) names the binary; the default is build/hilbertd of this checkout.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HILBERTD = os.environ.get("HILBERTD", str(ROOT / "build" / "hilbertd"))


class Hilbertd:
    """A hilbertd process in its own temp dir (config, data, log), removed by stop().

    private_copy runs a copy of the binary, so that a rebuild replacing build/hilbertd during a
    long run neither changes what is measured nor hides the symbols from perf; while the binary
    is missing (mid-link) it waits up to 10 minutes for it.

    workdir reuses a directory (and its data) from an earlier process, to measure a restart; it
    is then the caller's to remove. self.started is the perf_counter() just before the spawn."""

    def __init__(self, config_yaml: str, prefix: str = "hdb-bench-", binary: str | None = None,
                 private_copy: bool = False, workdir: Path | None = None):
        self.keep = workdir is not None
        self.dir = Path(workdir) if workdir is not None else Path(tempfile.mkdtemp(prefix=prefix))
        self.binary = binary or HILBERTD
        if private_copy:
            copy = str(self.dir / "hilbertd")
            for attempt in range(600):
                try:
                    shutil.copy2(self.binary, copy)
                    break
                except OSError:
                    if attempt == 599:
                        raise
                    time.sleep(1)
            self.binary = copy
        cfg = self.dir / "bench.yaml"
        cfg.write_text(config_yaml)
        self.log_path = self.dir / "hilbertd.log"
        self.log = open(self.log_path, "wb+")
        self.started = time.perf_counter()
        self.proc = subprocess.Popen([self.binary, "--config", str(cfg), "--listen", "127.0.0.1:0",
                                      "--data-dir", str(self.dir / "data")],
                                     stdout=self.log, stderr=self.log)
        port = None
        for _ in range(3000):
            m = re.search(r"listening on .*:(\d+)", self.log_text())
            if m:
                port = int(m.group(1))
                break
            if self.proc.poll() is not None:
                raise RuntimeError("hilbertd exited during startup:\n" + self.log_text())
            time.sleep(0.01)
        if port is None:
            self.stop()
            raise RuntimeError("hilbertd did not start listening within 30 s")
        self.target = f"127.0.0.1:{port}"

    def log_text(self) -> str:
        self.log.flush()
        return self.log_path.read_text(errors="replace")

    def stop(self, kill: bool = False) -> None:
        """SIGTERM (a clean shutdown; SIGKILL after 120 s), or SIGKILL at once with kill (a
        crash); then removes the temp dir unless it was given as workdir."""
        if kill:
            self.proc.kill()
        else:
            self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=120)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()
        if not self.keep:
            shutil.rmtree(self.dir, ignore_errors=True)


def write_json(path, data) -> None:
    """Writes the results `data` to `path` as indented JSON (creating its folder) and says so."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2) + "\n")
    print(f"results written to {path}", flush=True)


def run_clients(clients: int, work) -> float:
    """Runs work(c) for c in 0..clients-1, each on its own thread, all released at once; returns
    the seconds from the release until the last finishes. The first exception is re-raised."""
    barrier = threading.Barrier(clients + 1)
    errors = []

    def run(c):
        barrier.wait()
        try:
            work(c)
        except Exception as e:  # noqa: BLE001 - re-raised below
            errors.append(e)

    threads = [threading.Thread(target=run, args=(c,)) for c in range(clients)]
    for t in threads:
        t.start()
    barrier.wait()
    t0 = time.perf_counter()
    for t in threads:
        t.join()
    dt = time.perf_counter() - t0
    if errors:
        raise errors[0]
    return dt
