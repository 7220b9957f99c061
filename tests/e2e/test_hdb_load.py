"""bench/load/hdb_load, the benchmarks' C load client, against a real server: it makes exactly
the calls it is asked for, replays each request of its file in turn, counts failed calls by
their status, and refuses a bad command line or requests file with exit code 2 naming it."""
from __future__ import annotations

import json
import struct
import subprocess
from pathlib import Path

from conftest import HILBERTD

LOAD = str(Path(HILBERTD).parent / "hdb_load")
HEALTH = "/grpc.health.v1.Health/Check"


def requests_file(path: Path, bodies: list[bytes]) -> Path:
    path.write_bytes(b"".join(struct.pack("<I", len(b)) + b for b in bodies))
    return path


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([LOAD, *args], capture_output=True, text=True, timeout=300)


def result(p: subprocess.CompletedProcess) -> dict:
    return json.loads(p.stdout.strip().splitlines()[-1])


def test_health_calls_counted_and_requests_cycled(server, tmp_path):
    target = f"127.0.0.1:{server.port}"
    ok = requests_file(tmp_path / "h.req", [b""])
    p = run("--target", target, "--method", HEALTH, "--requests", str(ok), "--calls", "300",
            "--concurrency", "4", "--warmup", "20")
    assert p.returncode == 0, p.stderr
    r = result(p)
    assert (r["calls"], r["concurrency"], r["errors"], r["first_error"]) == (300, 4, 0, None)
    assert r["reply_bytes_mean"] == 2.0  # status: SERVING
    # Two requests in turn, the second for a service that does not exist: half the calls fail.
    unknown = b"\x0a\x04nope"  # HealthCheckRequest{service: "nope"}
    mixed = requests_file(tmp_path / "m.req", [b"", unknown])
    p = run("--target", target, "--method", HEALTH, "--requests", str(mixed), "--calls", "100",
            "--warmup", "0")
    assert p.returncode == 1
    r = result(p)
    assert r["errors"] == 50 and r["first_error"].startswith("NOT_FOUND"), r
    p = run("--target", target, "--method", "/grpc.health.v1.Health/Chek", "--requests",
            str(ok), "--calls", "10", "--warmup", "0")
    assert p.returncode == 1 and result(p)["errors"] == 10
    assert result(p)["first_error"].startswith("UNIMPLEMENTED"), p.stdout


def test_bad_command_lines_and_files_exit_2_naming_them(tmp_path):
    ok = requests_file(tmp_path / "h.req", [b""])
    truncated = tmp_path / "t.req"
    truncated.write_bytes(struct.pack("<I", 10) + b"abc")
    empty = tmp_path / "e.req"
    empty.write_bytes(b"")
    base = ["--target", "127.0.0.1:1", "--method", HEALTH]
    cases = [
        (base + ["--requests", str(ok), "--concurrency", "0"], "--concurrency"),
        (base + ["--requests", str(ok), "--calls", "ten"], "--calls"),
        (base + ["--requests", str(ok), "--deadline-ms", "5s"], "--deadline-ms"),
        (base + ["--requests", str(ok), "--bogus"], "--bogus"),
        (base, "--requests"),
        (["--method", HEALTH, "--requests", str(ok)], "--target"),
        (base + ["--requests", str(tmp_path / "missing.req")], "missing.req"),
        (base + ["--requests", str(truncated)], "t.req"),
        (base + ["--requests", str(empty)], "e.req"),
    ]
    for args, named in cases:
        p = run(*args)
        assert p.returncode == 2, (args, p.returncode, p.stderr)
        assert named in p.stderr, (args, p.stderr)
    assert run("--help").returncode == 0
