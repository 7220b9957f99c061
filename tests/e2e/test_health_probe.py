"""`hilbertd --health-probe ADDR`, the container health check (docker/compose.yaml): the binary
sends one grpc.health.v1.Health/Check to ADDR and exits 0 with "SERVING" against a running
server; against a closed port, and against a server that is draining after SIGTERM, it exits 1
with the reason; a missing address is a command-line error (exit 2). It reads no config file."""
import signal
import socket
import subprocess

from conftest import HILBERTD
from test_shutdown import check_long_search, start_long_search


def probe(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([HILBERTD, *args], capture_output=True, text=True, timeout=60)


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released without listening)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_probe_serving(server):
    r = probe("--health-probe", f"127.0.0.1:{server.port}")
    assert r.returncode == 0, r
    assert r.stdout == "SERVING\n"
    # The --flag=value form, and a --config that does not exist: the probe reads no config.
    r = probe("--config", "/nonexistent.yaml", f"--health-probe=127.0.0.1:{server.port}")
    assert r.returncode == 0, r
    assert r.stdout == "SERVING\n"


def test_probe_closed_port():
    port = closed_port()
    r = probe("--health-probe", f"127.0.0.1:{port}")
    assert r.returncode == 1, r
    assert r.stdout.startswith("UNAVAILABLE: "), r.stdout
    assert str(port) in r.stdout


def test_probe_draining_server(patient):
    """After SIGTERM, while a call in flight holds the shutdown up, the server is not healthy
    any more: the probe exits 1 (NOT_SERVING, or UNAVAILABLE when the new connection is
    refused)."""
    server = patient  # a grace that outlasts the search however busy the machine is
    future = start_long_search(server)
    proc = server.proc
    proc.send_signal(signal.SIGTERM)
    # (Were the search done before the probe connects, the server would be gone: UNAVAILABLE,
    # exit 1 all the same; nothing here depends on how fast the machine is.)
    r = probe("--health-probe", f"127.0.0.1:{server.port}")
    assert r.returncode == 1, r
    assert r.stdout.startswith(("NOT_SERVING", "UNAVAILABLE: ")), r.stdout
    check_long_search(future)
    assert proc.wait(timeout=120) == 0
    server.proc = None


def test_probe_missing_address():
    r = probe("--health-probe")
    assert r.returncode == 2
    assert "--health-probe: missing value (--health-probe ADDR)" in r.stderr
    r = probe("--health-probe=")
    assert r.returncode == 2
    assert "--health-probe: missing value" in r.stderr
