"""Drop-in for EuclidesDB clients: euclidesproto.Similar on hilbertd's port, driven with stubs
generated from its wire interface (proto/euclidesproto/euclides.proto), on the bundled
Fashion-MNIST model spaces. EuclidesDB's models are HilbertDB's model spaces, its int32 image
ids the items' ids, its image_metadata a bytes attribute."""
from __future__ import annotations

import subprocess

import grpc
import numpy as np
import pytest

from conftest import HILBERTD, Server
from euclidesproto import euclides_pb2 as E, euclides_pb2_grpc
from helpers import expect_status
from hilbertdb.datasets import load_fashion_mnist
from model_fixtures import client, fmnist_spaces, png_bytes, write_config

SPACES = ["fmnist_cnn", "fmnist_mlp"]
TIMEOUT = 120


@pytest.fixture(scope="module")
def images():
    x, y = load_fashion_mnist("test")
    return x[:60], y[:60]


def admin_key(tmp_path):
    out = subprocess.run([HILBERTD, "--new-key", "admin"], capture_output=True, text=True,
                         timeout=60, check=True).stdout.splitlines()
    key = next(ln for ln in out if ln.startswith("hdb_"))
    entry = next(ln.strip() for ln in out if ln.strip().startswith("- {name:"))
    return key, entry


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    d = tmp_path_factory.mktemp("euclides")
    s = Server(d / "data", d / "hilbertd.log",
               config=write_config(d / "hilbertd.yaml", fmnist_spaces())).start()
    yield s
    assert s.stop() == 0, s.log_since_start()[-3000:]


def stub(s):
    return euclides_pb2_grpc.SimilarStub(s.channel)


def test_add_find_by_image_and_by_id_remove(srv, images):
    x, y = images
    sim = stub(srv)
    for i in range(40):
        r = sim.AddImage(E.AddImageRequest(image_id=i + 1, image_data=png_bytes(x[i]),
                                           image_metadata=f"meta-{i}".encode(), models=SPACES),
                         timeout=TIMEOUT)
        assert [v.model for v in r.vectors] == SPACES
        assert [len(v.features) for v in r.vectors] == [64, 32] and not r.vectors[0].predictions
    # The items are model-space items: the metadata is their bytes attribute.
    with client(srv) as db:
        for space in SPACES:
            db.wait_for_index(f"{space}@space", timeout=TIMEOUT)
        p = db.get(f"{SPACES[0]}@space", ["7"])[0]
        assert p.attributes["image_metadata"] == b"meta-6"
    # By image: the image itself comes first in each model, at distance ~0.
    r = sim.FindSimilarImage(E.FindSimilarImageRequest(top_k=5, image_data=png_bytes(x[3]),
                                                       models=SPACES[::-1]), timeout=TIMEOUT)
    assert [res.model for res in r.results] == SPACES[::-1]
    for res in r.results:
        assert len(res.top_k_ids) == 5 == len(res.distances)
        assert res.top_k_ids[0] == 4 and res.distances[0] == pytest.approx(0, abs=1e-4)
        assert list(res.distances) == sorted(res.distances)
    # No models named: every model space.
    r = sim.FindSimilarImage(E.FindSimilarImageRequest(top_k=3, image_data=png_bytes(x[3])),
                             timeout=TIMEOUT)
    assert sorted(res.model for res in r.results) == SPACES
    # By id: the item itself is left out, its neighbours agree with a find by its image.
    r = sim.FindSimilarImageById(E.FindSimilarImageByIdRequest(top_k=4, image_id=4,
                                                               models=SPACES), timeout=TIMEOUT)
    by_image = sim.FindSimilarImage(E.FindSimilarImageRequest(
        top_k=5, image_data=png_bytes(x[3]), models=SPACES), timeout=TIMEOUT)
    for res, ref in zip(r.results, by_image.results):
        assert 4 not in res.top_k_ids and len(res.top_k_ids) == 4
        assert list(res.top_k_ids) == list(ref.top_k_ids[1:]), (res, ref)
    # Remove: gone from every model.
    assert sim.RemoveImage(E.RemoveImageRequest(image_id=4), timeout=TIMEOUT).image_id == 4
    with expect_status(grpc.StatusCode.NOT_FOUND, "image_id: 4 is in none of the models"):
        sim.FindSimilarImageById(E.FindSimilarImageByIdRequest(top_k=4, image_id=4),
                                 timeout=TIMEOUT)
    with client(srv) as db:
        assert db.get_model_space(SPACES[0]).point_count == 39


def test_bad_requests_get_grpc_errors(srv, images):
    x, _ = images
    sim = stub(srv)
    good = png_bytes(x[0])
    cases = [
        (lambda: sim.FindSimilarImage(E.FindSimilarImageRequest(top_k=0, image_data=good)),
         grpc.StatusCode.INVALID_ARGUMENT, "top_k: must be >= 1"),
        (lambda: sim.FindSimilarImageById(E.FindSimilarImageByIdRequest(top_k=-3, image_id=1)),
         grpc.StatusCode.INVALID_ARGUMENT, "top_k"),
        (lambda: sim.FindSimilarImage(E.FindSimilarImageRequest(top_k=3, image_data=b"junk")),
         grpc.StatusCode.INVALID_ARGUMENT, "image"),
        (lambda: sim.AddImage(E.AddImageRequest(image_id=999, models=SPACES)),
         grpc.StatusCode.INVALID_ARGUMENT, "image"),
        (lambda: sim.AddImage(E.AddImageRequest(image_id=999, image_data=good, models=["nope"])),
         grpc.StatusCode.NOT_FOUND, "nope"),
        (lambda: sim.FindSimilarImageById(E.FindSimilarImageByIdRequest(top_k=3,
                                                                         image_id=123456)),
         grpc.StatusCode.NOT_FOUND, "image_id: 123456"),
        # A server without API keys does not let anyone shut it down.
        (lambda: sim.Shutdown(E.ShutdownRequest()), grpc.StatusCode.PERMISSION_DENIED,
         "Shutdown needs an admin API key"),
    ]
    for call, code, text in cases:
        with expect_status(code, text):
            call()
    with client(srv) as db:  # nothing was written by the refused adds
        assert db.get("fmnist_cnn@space", ["999"])[0] is None


def test_shutdown_needs_an_admin_key(tmp_path):
    key, entry = admin_key(tmp_path)
    cfg = write_config(tmp_path / "hilbertd.yaml", fmnist_spaces(),
                       extra=f"auth:\n  keys:\n    {entry}\n")
    s = Server(tmp_path / "data", tmp_path / "hilbertd.log", config=cfg).start()
    sim = stub(s)
    with expect_status(grpc.StatusCode.UNAUTHENTICATED):
        sim.Shutdown(E.ShutdownRequest(), timeout=TIMEOUT)
    r = sim.Shutdown(E.ShutdownRequest(), timeout=TIMEOUT,
                     metadata=[("authorization", f"Bearer {key}")])
    assert r.shutdown
    s.proc.wait(timeout=TIMEOUT)
    assert s.proc.returncode == 0, s.log_since_start()[-3000:]
    assert "shutting down on an admin's request" in s.log_since_start()
