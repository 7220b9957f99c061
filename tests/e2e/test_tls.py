"""TLS: the tests make their own CAs and certificates with the openssl command. A client that
trusts the CA connects; plaintext and untrusted clients fail; with tls.client_auth: require only
clients with a certificate from tls.client_ca_file get in. SIGHUP reloads the certificate
files: new connections see the new certificate, and a broken file keeps the old one. A
non-loopback listen needs TLS and keys, or server.allow_insecure."""
from __future__ import annotations

import os
import signal
import socket
import ssl
import subprocess
import time
from pathlib import Path

import grpc
import pytest

from conftest import HILBERTD, Server
from hilbert.v1 import catalog_pb2 as C
from hilbert.v1 import catalog_pb2_grpc
from hdb_grpc_health.v1 import health_pb2, health_pb2_grpc
from helpers import TIMEOUT

HEALTH = health_pb2.HealthCheckRequest()
FAIL_FAST = 30.0  # only bounds a call that must fail at once (handshake refused)


def openssl(*args: str, cwd: Path) -> None:
    out = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr


def make_ca(d: Path, name: str) -> None:
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
            "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.pem", "-days", "2", "-subj",
            f"/CN={name}", cwd=d)


def make_cert(d: Path, ca: str, name: str, server: bool = True) -> None:
    """<name>.pem / <name>.key signed by ca; server certificates name 127.0.0.1 and localhost."""
    openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
            "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN={name}", cwd=d)
    ext = d / f"{name}.ext"
    ext.write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n" if server
                   else "extendedKeyUsage=clientAuth\n")
    openssl("x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.pem", "-CAkey", f"{ca}.key",
            "-CAcreateserial", "-out", f"{name}.pem", "-days", "2", "-extfile", ext.name, cwd=d)


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("pki")
    for ca in ("ca1", "ca2", "evil"):
        make_ca(d, ca)
    make_cert(d, "ca1", "srv1")
    make_cert(d, "ca2", "srv2")
    make_cert(d, "ca1", "client1", server=False)
    make_cert(d, "evil", "client_evil", server=False)
    return d


def tls_channel(port: int, ca: Path, key: Path = None, cert: Path = None) -> grpc.Channel:
    creds = grpc.ssl_channel_credentials(
        root_certificates=ca.read_bytes(),
        private_key=key.read_bytes() if key else None,
        certificate_chain=cert.read_bytes() if cert else None)
    return grpc.secure_channel(f"127.0.0.1:{port}", creds)


def served_cert(port: int, ca: Path) -> bytes:
    """The DER certificate a new TLS connection gets, verified against ca."""
    ctx = ssl.create_default_context(cafile=str(ca))
    ctx.set_alpn_protocols(["h2"])
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as raw:
        with ctx.wrap_socket(raw, server_hostname="127.0.0.1") as s:
            return s.getpeercert(binary_form=True)


def der_of(pem: Path) -> bytes:
    return ssl.PEM_cert_to_DER_cert(pem.read_text())


def wait_log(server: Server, text: str, since: int) -> None:
    """Waits for text to appear in the log after offset since (the server logs each reload)."""
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        if text in server.log_since_start()[since:]:
            return
        time.sleep(0.02)
    raise AssertionError(f"{text!r} not logged:\n{server.log_since_start()[since:]}")


@pytest.fixture(scope="module")
def tls_server(pki, tmp_path_factory):
    """Serves srv.pem/srv.key, at first copies of srv1 (CA ca1); tests replace them."""
    d = tmp_path_factory.mktemp("tls")
    (d / "srv.pem").write_bytes((pki / "srv1.pem").read_bytes())
    (d / "srv.key").write_bytes((pki / "srv1.key").read_bytes())
    cfg = d / "tls.yaml"
    cfg.write_text(f"tls:\n  cert_file: {d / 'srv.pem'}\n  key_file: {d / 'srv.key'}\n")
    s = Server(d / "data", d / "hilbertd.log", config=cfg,
               channel_fn=lambda port: tls_channel(port, pki / "ca1.pem"))
    s.start()
    s.dir = d
    yield s
    assert s.stop() == 0, s.log_since_start()[-4000:]


def test_trusted_client_connects(tls_server, pki):
    assert tls_server.health.Check(HEALTH, timeout=TIMEOUT).status == \
        health_pb2.HealthCheckResponse.SERVING
    tls_server.catalog.ListDataSources(C.ListDataSourcesRequest(), timeout=TIMEOUT)
    assert "TLS on" in tls_server.log_since_start()


def test_python_client_tls(tls_server, pki):
    from hilbertdb import Client
    with Client(f"127.0.0.1:{tls_server.port}", timeout=TIMEOUT,
                root_certificates=str(pki / "ca1.pem")) as db:
        assert db.health() == "SERVING"
    with Client(f"127.0.0.1:{tls_server.port}", timeout=TIMEOUT,
                root_certificates=(pki / "ca1.pem").read_bytes()) as db:
        assert db.list_data_sources() == []


def test_plaintext_client_fails(tls_server):
    with grpc.insecure_channel(f"127.0.0.1:{tls_server.port}") as ch:
        with pytest.raises(grpc.RpcError) as e:
            health_pb2_grpc.HealthStub(ch).Check(HEALTH, timeout=FAIL_FAST)
    assert e.value.code() == grpc.StatusCode.UNAVAILABLE


def test_untrusted_ca_fails(tls_server, pki):
    with tls_channel(tls_server.port, pki / "ca2.pem") as ch:
        with pytest.raises(grpc.RpcError) as e:
            health_pb2_grpc.HealthStub(ch).Check(HEALTH, timeout=FAIL_FAST)
    assert e.value.code() == grpc.StatusCode.UNAVAILABLE
    with pytest.raises(ssl.SSLCertVerificationError):
        served_cert(tls_server.port, pki / "ca2.pem")


def test_sighup_reload(tls_server, pki):
    """Runs after the tests above (module order): swaps srv1 for srv2, then breaks the file."""
    d, port = tls_server.dir, tls_server.port
    assert served_cert(port, pki / "ca1.pem") == der_of(pki / "srv1.pem")
    # A new certificate from another CA: new connections get it once SIGHUP is handled.
    (d / "srv.pem").write_bytes((pki / "srv2.pem").read_bytes())
    (d / "srv.key").write_bytes((pki / "srv2.key").read_bytes())
    since = len(tls_server.log_since_start())
    tls_server.proc.send_signal(signal.SIGHUP)
    wait_log(tls_server, "SIGHUP: reloaded the TLS certificate files", since)
    assert served_cert(port, pki / "ca2.pem") == der_of(pki / "srv2.pem")
    with tls_channel(port, pki / "ca2.pem") as ch:
        health_pb2_grpc.HealthStub(ch).Check(HEALTH, timeout=TIMEOUT)
    with tls_channel(port, pki / "ca1.pem") as ch:  # the old CA no longer fits
        with pytest.raises(grpc.RpcError):
            health_pb2_grpc.HealthStub(ch).Check(HEALTH, timeout=FAIL_FAST)

    # A broken certificate file: the reload fails, naming key and file; srv2 stays.
    (d / "srv.pem").write_text("-----BEGIN CERTIFICATE-----\nnot base64 at all\n")
    since = len(tls_server.log_since_start())
    tls_server.proc.send_signal(signal.SIGHUP)
    wait_log(tls_server, "TLS reload failed", since)
    assert f"tls.cert_file: {d / 'srv.pem'}" in tls_server.log_since_start()[since:]
    assert served_cert(port, pki / "ca2.pem") == der_of(pki / "srv2.pem")
    # A missing key file too.
    (d / "srv.pem").write_bytes((pki / "srv2.pem").read_bytes())
    os.rename(d / "srv.key", d / "srv.key.gone")
    since = len(tls_server.log_since_start())
    tls_server.proc.send_signal(signal.SIGHUP)
    wait_log(tls_server, "TLS reload failed", since)
    assert f"tls.key_file: {d / 'srv.key'}: cannot open" in tls_server.log_since_start()[since:]
    with tls_channel(port, pki / "ca2.pem") as ch:
        health_pb2_grpc.HealthStub(ch).Check(HEALTH, timeout=TIMEOUT)
    os.rename(d / "srv.key.gone", d / "srv.key")
    assert tls_server.alive()


def test_mtls_with_keys_on_any_address(pki, tmp_path):
    """client_auth: require; TLS and an API key together allow a non-loopback listen without
    allow_insecure, and no INSECURE warning."""
    key = "mtls-test-key-0123456789abcdef"
    out = subprocess.run([HILBERTD, "--hash-key", "admin"], input=key, capture_output=True,
                         text=True, timeout=60)
    entry = [ln for ln in out.stdout.splitlines() if ln.startswith("- {")][0]
    cfg = tmp_path / "mtls.yaml"
    cfg.write_text(f"server:\n  listen: 0.0.0.0:0\n"
                   f"tls:\n  cert_file: {pki / 'srv1.pem'}\n  key_file: {pki / 'srv1.key'}\n"
                   f"  client_ca_file: {pki / 'ca1.pem'}\n  client_auth: require\n"
                   f"auth:\n  keys:\n    {entry}\n")
    s = Server(tmp_path / "data", tmp_path / "hilbertd.log", config=cfg,
               extra_args=["--listen", "0.0.0.0:0"],
               channel_fn=lambda port: tls_channel(port, pki / "ca1.pem", pki / "client1.key",
                                                   pki / "client1.pem"))
    try:
        s.start()
        md = (("authorization", f"Bearer {key}"),)
        s.catalog.ListDataSources(C.ListDataSourcesRequest(), metadata=md, timeout=TIMEOUT)
        assert "INSECURE" not in s.log_since_start()
        # No client certificate, or one from another CA: the handshake fails.
        for k, c in ((None, None), (pki / "client_evil.key", pki / "client_evil.pem")):
            with tls_channel(s.port, pki / "ca1.pem", k, c) as ch:
                with pytest.raises(grpc.RpcError) as e:
                    catalog_pb2_grpc.CatalogStub(ch).ListDataSources(
                        C.ListDataSourcesRequest(), metadata=md, timeout=FAIL_FAST)
                assert e.value.code() == grpc.StatusCode.UNAVAILABLE
        from hilbertdb import Client
        with Client(f"127.0.0.1:{s.port}", timeout=TIMEOUT, api_key=key,
                    root_certificates=pki / "ca1.pem", private_key=pki / "client1.key",
                    certificate_chain=pki / "client1.pem") as db:
            assert db.list_data_sources() == []
    finally:
        assert s.stop() == 0, s.log_since_start()[-4000:]


def run_refused(args, want: str, code: int = 2) -> None:
    out = subprocess.run([HILBERTD, *args], capture_output=True, text=True, timeout=120)
    assert out.returncode == code, out.stdout + out.stderr
    assert want in out.stdout + out.stderr, out.stdout + out.stderr


def test_non_loopback_listen_needs_allow_insecure(tmp_path):
    run_refused(["--listen", "0.0.0.0:0", "--data-dir", str(tmp_path / "d")],
                "server.listen: 0.0.0.0:0 is not a loopback address")
    # As the Docker image runs it (server.allow_insecure in a file: test_config.c).
    s = Server(tmp_path / "data", tmp_path / "hilbertd.log",
               extra_args=["--listen", "0.0.0.0:0", "--allow-insecure", "true"])
    try:
        s.start()
        log = s.log_since_start()
        assert "WARN" in log and "INSECURE: serving 0.0.0.0:0" in log
        assert "without TLS and API keys" in log
        s.health.Check(HEALTH, timeout=TIMEOUT)
    finally:
        assert s.stop() == 0, s.log_since_start()[-4000:]


def test_bad_tls_files_refused_at_start(pki, tmp_path):
    d = tmp_path / "d"

    def cfg(text: str) -> str:
        p = tmp_path / "c.yaml"
        p.write_text(text)
        return str(p)
    run_refused(["--config", cfg(f"tls:\n  cert_file: {tmp_path / 'none.pem'}\n"
                                 f"  key_file: {pki / 'srv1.key'}\n"), "--data-dir", str(d)],
                f"tls.cert_file: {tmp_path / 'none.pem'}: cannot open", code=1)
    run_refused(["--config", cfg(f"tls:\n  cert_file: {pki / 'srv1.pem'}\n"
                                 f"  key_file: {pki / 'srv2.key'}\n"), "--data-dir", str(d)],
                f"tls.key_file: {pki / 'srv2.key'}: not the private key of the certificate",
                code=1)
    run_refused(["--config", cfg(f"tls:\n  cert_file: {pki / 'srv1.key'}\n"
                                 f"  key_file: {pki / 'srv1.key'}\n"), "--data-dir", str(d)],
                f"tls.cert_file: {pki / 'srv1.key'}: not a PEM certificate", code=1)
    run_refused(["--config", cfg(f"tls:\n  cert_file: {pki / 'srv1.pem'}\n"
                                 f"  key_file: {pki / 'srv1.key'}\n"
                                 f"  client_ca_file: {pki / 'srv1.key'}\n"
                                 f"  client_auth: request\n"), "--data-dir", str(d)],
                f"tls.client_ca_file: {pki / 'srv1.key'}: not a PEM certificate", code=1)
    run_refused(["--config", cfg(f"tls:\n  cert_file: {pki / 'srv1.pem'}\n"), "--data-dir",
                 str(d)], "tls.key_file: required when tls.cert_file is set")
