"""API keys: one server with a read, a write and an admin key (made by hilbertd --new-key and
--hash-key, so their output is what the config accepts). Calls without a key, with an unknown
key or with a key of too low a role are refused before any work; Health stays open; each role
can do what it should on representative methods of every service. Bad auth: sections stop the
server at start with the key and line named."""
from __future__ import annotations

import re
import subprocess
from pathlib import Path

import grpc
import pytest

from conftest import HILBERTD, Server
from hilbert.v1 import catalog_pb2 as C
from hilbert.v1 import modelspaces_pb2 as M
from hilbert.v1 import modelspaces_pb2_grpc
from hilbert.v1 import points_pb2 as P
from hilbert.v1 import search_pb2 as S
from hdb_grpc_health.v1 import health_pb2
from helpers import (TIMEOUT, attrs, ds_ref, expect_status, index_spec, ix_ref, point,
                     source_spec, vec)

UNAUTH = grpc.StatusCode.UNAUTHENTICATED
DENIED = grpc.StatusCode.PERMISSION_DENIED
WRITE_KEY = "my-own-write-key-0123456789abcdef"


def key_tool(*args: str, stdin: str = "") -> str:
    out = subprocess.run([HILBERTD, *args], input=stdin, capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stderr
    return out.stdout


def entry_of(out: str) -> str:
    """The auth.keys entry line of the key tool's output."""
    lines = [ln for ln in out.splitlines() if ln.startswith("- {")]
    assert len(lines) == 1, out
    return lines[0]


@pytest.fixture(scope="module")
def keyed(tmp_path_factory):
    d = tmp_path_factory.mktemp("auth")
    out_read = key_tool("--new-key", "read")
    out_admin = key_tool("--new-key", "admin")
    out_write = key_tool("--hash-key", "write", stdin=WRITE_KEY + "\n")
    keys = {"read": [ln for ln in out_read.splitlines() if not ln.startswith("#")][0],
            "admin": [ln for ln in out_admin.splitlines() if not ln.startswith("#")][0],
            "write": WRITE_KEY}
    assert re.fullmatch(r"hdb_[0-9a-f]{64}", keys["read"])
    assert WRITE_KEY not in out_write  # --hash-key prints only the hash
    cfg = d / "auth.yaml"
    cfg.write_text("auth:\n  keys:\n" + "".join(
        f"    {entry_of(o)}\n" for o in (out_read, out_write, out_admin)))
    s = Server(d / "data", d / "hilbertd.log", config=cfg)
    s.start()
    s.keys = keys
    # The admin makes a source and an index for the others.
    md = bearer(keys["admin"])
    s.catalog.CreateDataSource(C.CreateDataSourceRequest(spec=source_spec("a", 2)), metadata=md,
                               timeout=TIMEOUT)
    s.catalog.CreateIndex(C.CreateIndexRequest(spec=index_spec("a-flat", "a")), metadata=md,
                          timeout=TIMEOUT)
    yield s
    log = s.log_since_start()
    assert s.stop() == 0, log[-4000:]
    for k in keys.values():  # keys never reach the log
        assert k not in log


def bearer(key: str):
    return (("authorization", f"Bearer {key}"),)


# -- calls, one per representative method: fn(server, metadata) ------------------------------

def list_sources(s, md):
    return s.catalog.ListDataSources(C.ListDataSourcesRequest(), metadata=md, timeout=TIMEOUT)


def get_index(s, md):
    return s.catalog.GetIndex(C.GetIndexRequest(index=ix_ref("a-flat")), metadata=md,
                              timeout=TIMEOUT)


def upload(s, md):
    return s.points.Upload(P.UploadRequest(data_source=ds_ref("a"),
                                           points=[point([1.0, 2.0], {"id": 1})]),
                           metadata=md, timeout=TIMEOUT)


def get_points(s, md):
    return s.points.Get(P.GetPointsRequest(data_source=ds_ref("a"), ids=[P.PointId(id_attributes=attrs({"id": 1}))]),
                        metadata=md, timeout=TIMEOUT)


def search(s, md):
    return s.search.Search(S.SearchRequest(index=ix_ref("a-flat"), k=1,
                                           query_vectors=[vec([1.0, 2.0])]),
                           metadata=md, timeout=TIMEOUT)


def create_drop_source(s, md):
    s.catalog.CreateDataSource(C.CreateDataSourceRequest(spec=source_spec("tmp", 2)), metadata=md,
                               timeout=TIMEOUT)
    s.catalog.DropDataSource(C.DropDataSourceRequest(data_source=ds_ref("tmp")), metadata=md,
                             timeout=TIMEOUT)


def find_by_id(s, md):
    """A model-space read; there is no such space, so an allowed call gets NOT_FOUND."""
    stub = modelspaces_pb2_grpc.ModelSpacesStub(s.channel)
    try:
        stub.FindSimilarById(M.FindSimilarByIdRequest(id="x", model_spaces=["none"], k=1),
                             metadata=md, timeout=TIMEOUT)
    except grpc.RpcError as e:
        if e.code() in (UNAUTH, DENIED):
            raise
        assert e.code() in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.INVALID_ARGUMENT), e


def add_tensor(s, md):
    """A model-space write, allowed or not; no such space (NOT_FOUND) when allowed."""
    stub = modelspaces_pb2_grpc.ModelSpacesStub(s.channel)
    try:
        stub.AddTensor(M.AddTensorRequest(id="x", model_spaces=["none"]), metadata=md, timeout=TIMEOUT)
    except grpc.RpcError as e:
        if e.code() in (UNAUTH, DENIED):
            raise
        assert e.code() in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.INVALID_ARGUMENT), e


def update_aliases(s, md):
    """An alias change (created and deleted again in one all-or-nothing call)."""
    alias = C.Alias(name="tmp-alias", index=ix_ref("a-flat"))
    s.catalog.UpdateAliases(C.UpdateAliasesRequest(actions=[
        C.AliasAction(create_alias=alias),
        C.AliasAction(delete_alias=C.Alias(name="tmp-alias", kind=C.ALIAS_KIND_INDEX))]),
        metadata=md, timeout=TIMEOUT)


def list_aliases(s, md):
    s.catalog.ListAliases(C.ListAliasesRequest(), metadata=md, timeout=TIMEOUT)


CALLS = [  # (call, method name in messages, role it needs)
    (list_sources, "hilbert.v1.Catalog/ListDataSources", "read"),
    (get_index, "hilbert.v1.Catalog/GetIndex", "read"),
    (get_points, "hilbert.v1.Points/Get", "read"),
    (search, "hilbert.v1.Search/Search", "read"),
    (find_by_id, "hilbert.v1.ModelSpaces/FindSimilarById", "read"),
    (upload, "hilbert.v1.Points/Upload", "write"),
    (add_tensor, "hilbert.v1.ModelSpaces/AddTensor", "write"),
    (create_drop_source, "hilbert.v1.Catalog/CreateDataSource", "admin"),
    (list_aliases, "hilbert.v1.Catalog/ListAliases", "read"),
    (update_aliases, "hilbert.v1.Catalog/UpdateAliases", "admin"),
]
RANK = {"read": 0, "write": 1, "admin": 2}


def test_health_is_open(keyed):
    resp = keyed.health.Check(health_pb2.HealthCheckRequest(), timeout=TIMEOUT)
    assert resp.status == health_pb2.HealthCheckResponse.SERVING
    # A wrong key does not matter to Health either.
    keyed.health.Check(health_pb2.HealthCheckRequest(), metadata=bearer("nope" * 5),
                       timeout=TIMEOUT)


@pytest.mark.parametrize("call,method,_role", CALLS, ids=[c[1] for c in CALLS])
def test_no_key(keyed, call, method, _role):
    with expect_status(UNAUTH, method, "authorization: Bearer KEY", "x-api-key"):
        call(keyed, None)


def test_unknown_and_malformed_keys(keyed):
    with expect_status(UNAUTH, "unknown API key") as st:
        list_sources(keyed, bearer("hdb_" + "0" * 64))
    assert "hdb_0000" not in st.details
    with expect_status(UNAUTH, "unknown API key"):  # a real key, one character off
        list_sources(keyed, bearer(keyed.keys["admin"][:-1] + "x"))
    with expect_status(UNAUTH, "unknown API key"):  # the hash is not the key
        list_sources(keyed, (("x-api-key", "sha256:00"),))
    with expect_status(UNAUTH, "Bearer KEY"):
        list_sources(keyed, (("authorization", f"Basic {keyed.keys['admin']}"),))


@pytest.mark.parametrize("role", ["read", "write", "admin"])
def test_roles(keyed, role):
    md = bearer(keyed.keys[role])
    for call, method, need in CALLS:
        if RANK[role] >= RANK[need]:
            call(keyed, md)
        else:
            with expect_status(DENIED, f"{method} needs the {need} role", f"the {role} role"):
                call(keyed, md)


def test_x_api_key(keyed):
    md = (("x-api-key", keyed.keys["write"]),)
    upload(keyed, md)
    with expect_status(DENIED, "needs the admin role"):
        create_drop_source(keyed, md)


def test_python_client_api_key(keyed):
    from hilbertdb import Client, HilbertError
    with Client(f"127.0.0.1:{keyed.port}", timeout=TIMEOUT, api_key=keyed.keys["read"]) as db:
        assert [s.name for s in db.list_data_sources()] == ["a"]
        with pytest.raises(HilbertError) as e:
            db.upload("a", [{"vector": [1.0, 2.0], "attributes": {"id": 2}}])
        assert e.value.code == DENIED
    with Client(f"127.0.0.1:{keyed.port}", timeout=TIMEOUT) as db:
        assert db.health() == "SERVING"
        with pytest.raises(HilbertError) as e:
            db.list_data_sources()
        assert e.value.code == UNAUTH


def test_start_log_counts_keys(keyed):
    assert "3 API key(s) configured" in keyed.log_since_start()


HASH = "sha256:00112233445566778899aabbccddeeff:" + "ab" * 32


@pytest.mark.parametrize("yaml,want", [
    (f"auth:\n  keys:\n    - {{name: a, role: root, hash: \"{HASH}\"}}\n",
     ":3: auth.keys[0].role: must be read, write or admin"),
    ("auth:\n  keys:\n    - {name: a, role: read, hash: \"sha256:abc\"}\n",
     ":3: auth.keys[0].hash: must be sha256:"),
    (f"auth:\n  keys:\n    - {{name: a, role: read, hash: \"{HASH}\"}}\n"
     f"    - {{name: a, role: admin, hash: \"{HASH[:-2]}cd\"}}\n",
     ":4: auth.keys[1].name: duplicate key name \"a\""),
    ("auth:\n  keys:\n    - {name: a, role: read}\n", ":3: auth.keys[0].hash: required key"),
    ("auth:\n  keys:\n    - plain-key-in-config\n", ":3: auth.keys[0]: must be a mapping"),
])
def test_bad_auth_config_refused(tmp_path: Path, yaml: str, want: str):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text(yaml)
    out = subprocess.run([HILBERTD, "--config", str(cfg), "--data-dir", str(tmp_path / "d"),
                          "--listen", "127.0.0.1:0"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 2, out.stderr
    assert f"{cfg}{want}" in out.stderr, out.stderr


def test_key_tool_refuses_bad_input():
    out = subprocess.run([HILBERTD, "--hash-key", "read"], input="short\n", capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 2 and "16 to 1024 characters" in out.stderr, out.stderr
    out = subprocess.run([HILBERTD, "--new-key", "superuser"], capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 2 and "--new-key: the role must be read, write or admin" in \
        out.stderr, out.stderr
