"""Model files load only from under models.dir (issue 9, item 6).

CreateModelSpace.model_path, and model spaces declared in the config, are resolved with
realpath (symlinks included) and must lie inside realpath(models.dir). Anything else gets
PERMISSION_DENIED with one message, the same whether the file exists or not, so that a client
cannot probe the server's file system: /etc/passwd, a missing path outside, ../ escapes, and a
symlink inside models.dir that points out. A relative path inside works; a missing file inside
may say it is missing.
"""
from __future__ import annotations

import shutil
import subprocess

import grpc
import pytest

from conftest import HILBERTD, START_TIMEOUT, Server
from helpers import expect_status
from hilbertdb import ImageInput
from model_fixtures import build_models, client, image_space, write_config

DENIED = "spec.model_path: must name a model file under models.dir"


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    """A server whose models.dir holds one fixture model, a subdirectory, and symlinks: one to
    a file outside, one to a directory outside, one to the model inside."""
    models = build_models(tmp_path_factory.mktemp("torch_models"))
    base = tmp_path_factory.mktemp("paths")
    mdir = base / "models"
    (mdir / "sub").mkdir(parents=True)
    shutil.copy(models["dir"] / "pool_gray.pt", mdir / "gray.pt")
    outside = base / "outside"
    outside.mkdir()
    shutil.copy(models["dir"] / "pool_gray.pt", outside / "gray.pt")  # a valid model, outside
    (mdir / "out.pt").symlink_to(outside / "gray.pt")
    (mdir / "outdir").symlink_to(outside)
    (mdir / "in.pt").symlink_to(mdir / "gray.pt")
    cfg = write_config(base / "hilbertd.yaml", [], models_dir=mdir)
    s = Server(base / "data", base / "hilbertd.log", config=cfg).start()
    with client(s) as db:
        yield s, db, mdir, outside
    assert s.stop() == 0, s.log_since_start()[-4000:]


def create(db, name, path):
    return db.create_model_space(name, str(path), input=ImageInput(28, 28), output_dim=49)


def raw_create(s, name, path):
    """The same call through the raw stub, to see the gRPC status itself."""
    from hilbert.v1 import catalog_pb2 as C
    from hilbert.v1 import catalog_pb2_grpc
    spec = C.ModelSpaceSpec(name=name, model_path=str(path), output_dim=49,
                            metric=C.METRIC_COSINE)
    spec.input.image.width = spec.input.image.height = 28
    spec.input.image.channels = 1
    return catalog_pb2_grpc.CatalogStub(s.channel).CreateModelSpace(
        C.CreateModelSpaceRequest(spec=spec), timeout=30)


def test_paths_outside_models_dir_are_denied_alike(env):
    s, db, mdir, outside = env
    bad = ["/etc/passwd",                      # exists, outside
           "/root/.ssh/id_rsa",                # whatever it is, outside
           str(outside / "missing.pt"),        # missing, outside
           "/nonexistent/dir/model.pt",
           "../outside/gray.pt",               # relative escape to a valid model
           "sub/../../outside/gray.pt",
           "../outside/missing.pt",            # escape to a missing file
           str(mdir / ".." / "outside" / "gray.pt"),
           "out.pt",                           # symlink inside, pointing out
           "outdir/gray.pt",                   # through a symlinked directory
           "outdir/missing.pt"]
    for i, path in enumerate(bad):
        with expect_status(grpc.StatusCode.PERMISSION_DENIED) as st:
            raw_create(s, f"bad{i}", path)
        assert st.details == DENIED, (path, st.details)
    assert db.list_model_spaces() == []
    refs = [d.ref for d in db.list_data_sources()]
    assert not any(r.startswith("bad") for r in refs), refs


def test_paths_inside_models_dir_work(env):
    s, db, mdir, outside = env
    assert create(db, "rel", "gray.pt").model_state == "LOADED"
    assert create(db, "abs", mdir / "gray.pt").model_state == "LOADED"
    assert create(db, "dotted", "sub/../gray.pt").model_state == "LOADED"
    assert create(db, "link", "in.pt").model_state == "LOADED"  # a symlink that stays inside
    with expect_status(grpc.StatusCode.INVALID_ARGUMENT, "spec.model_path: cannot read model "
                       "file", "missing.pt"):
        raw_create(s, "nf", "sub/missing.pt")
    for name in ("rel", "abs", "dotted", "link"):
        db.drop_model_space(name)


def test_declared_space_outside_models_dir_stops_startup(tmp_path, env):
    _, _, mdir, outside = env
    cfg = write_config(tmp_path / "c.yaml", [image_space("sp", outside / "gray.pt", 49)],
                       models_dir=mdir)
    p = subprocess.run([HILBERTD, "--config", str(cfg), "--listen", "127.0.0.1:0",
                        "--data-dir", str(tmp_path / "data")],
                       capture_output=True, text=True, timeout=START_TIMEOUT)
    assert p.returncode != 0
    assert DENIED in p.stderr, p.stderr[-3000:]
    assert "outside" not in p.stderr.split(DENIED)[0].splitlines()[-1], p.stderr[-3000:]
