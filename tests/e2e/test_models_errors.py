"""Model spaces: what the server refuses, with which status and message, and that it stays up.

Bad images (truncated, random bytes, too small, huge declared dimensions, CMYK JPEG, empty) and
bad tensors (wrong shape, wrong number of values, NaN) on every call that takes them; unknown or
repeated model space names; missing ids; CreateModelSpace with a model that does not fit its
declaration or does not exist; a config declaring a bad model (exit 2); the catalog rules of a
space's own data source and index; DropModelSpace; and a space's survival across a restart,
also when its model file has gone.

Fixture models: model_fixtures/make_models.py (pool_gray [n,1,28,28]->[n,49], pool_rgb
[n,3,28,28]->[n,147], tensor16 [n,16]->[n,8], wrong_shape [n,1,28,28]->[n,5]).
"""
from __future__ import annotations

import io
import shutil
import subprocess

import grpc
import numpy as np
import pytest
from PIL import Image

from conftest import HILBERTD, START_TIMEOUT, Server
from helpers import expect_status
from hilbert.v1 import modelspaces_pb2 as M
from hilbert.v1 import modelspaces_pb2_grpc
from hilbertdb import (FailedPrecondition, Hnsw, ImageInput, InvalidArgument, NotFound,
                       ResourceExhausted, TensorInput)
from model_fixtures import (TIMEOUT, build_models, client, image_space, jpeg_bytes, png_bytes,
                            png_declaring, tensor_space, write_config)

RNG = np.random.default_rng(99)
NOISE = (RNG.random((28, 28)) * 255).astype(np.uint8)
GOOD_PNG = png_bytes(NOISE)


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    return build_models(tmp_path_factory.mktemp("torch_models"))


@pytest.fixture(scope="module")
def srv(tmp_path_factory, models):
    """A server with spaces gray (pool_gray), rgb (pool_rgb, permanent attribute owner) and
    vec16 (tensor16), default limits. Must exit 0 at the end: no bad input may crash it."""
    d = tmp_path_factory.mktemp("errors")
    m = models["dir"]
    cfg = write_config(d / "hilbertd.yaml", [
        image_space("gray", m / "pool_gray.pt", 49),
        image_space("rgb", m / "pool_rgb.pt", 147, channels=3,
                    permanent_attributes=[{"name": "owner", "type": "string"}]),
        tensor_space("vec16", m / "tensor16.pt", [16], 8)])
    s = Server(d / "data", d / "hilbertd.log", config=cfg)
    s.start()
    yield s
    code = s.stop()
    assert code == 0, f"hilbertd exited with {code}:\n{s.log_since_start()[-4000:]}"


@pytest.fixture
def db(srv):
    c = client(srv)
    yield c
    # The server is still up and still answers model calls correctly.
    assert srv.alive(), srv.log_since_start()[-4000:]
    assert c.health() == "SERVING"
    v = c.embed(image=GOOD_PNG, model_spaces="gray")["gray"]
    assert v.shape == (49,) and np.isfinite(v).all()
    c.close()


def count(db, space: str) -> int:
    return db.get_model_space(space).point_count


# ------------------------------------------------------------------------ images

def truncated_png() -> bytes:
    return GOOD_PNG[: len(GOOD_PNG) // 2]


def corrupt_crc_png() -> bytes:
    b = bytearray(GOOD_PNG)
    b[29] ^= 0xFF  # inside IHDR's CRC (bytes 29..32)
    return bytes(b)


def cmyk_jpeg() -> bytes:
    return jpeg_bytes(np.stack([NOISE] * 3, axis=2), mode="CMYK")


def truncated_jpeg() -> bytes:
    j = jpeg_bytes(NOISE)
    return j[: len(j) // 2]


def one_pixel_png() -> bytes:
    return png_bytes(np.zeros((1, 1), dtype=np.uint8))


BAD_IMAGES = [
    # (name, bytes factory, code, substrings of the message)
    ("truncated-png", truncated_png, grpc.StatusCode.INVALID_ARGUMENT,
     ["image: damaged or truncated PNG"]),
    ("bad-crc-png", corrupt_crc_png, grpc.StatusCode.INVALID_ARGUMENT, ["image:", "PNG"]),
    ("random-bytes", lambda: RNG.bytes(3000), grpc.StatusCode.INVALID_ARGUMENT,
     ["image: not a PNG or JPEG file"]),
    ("png-magic-then-garbage", lambda: GOOD_PNG[:8] + RNG.bytes(500),
     grpc.StatusCode.INVALID_ARGUMENT, ["image: damaged or truncated PNG"]),
    ("1x1-png", one_pixel_png, grpc.StatusCode.INVALID_ARGUMENT,
     ["image: 1x1 is smaller than the minimum of 8x8"]),
    ("empty", lambda: b"", grpc.StatusCode.INVALID_ARGUMENT, ["image: is empty"]),
    ("cmyk-jpeg", cmyk_jpeg, grpc.StatusCode.INVALID_ARGUMENT, ["image: CMYK JPEG"]),
    ("truncated-jpeg", truncated_jpeg, grpc.StatusCode.INVALID_ARGUMENT,
     ["image: damaged or truncated JPEG"]),
    ("huge-ihdr", lambda: png_declaring(100000, 100000), grpc.StatusCode.RESOURCE_EXHAUSTED,
     ["image: 100000x100000 exceeds the limit of 8192 pixels per side"]),
    ("too-many-pixels", lambda: png_declaring(8000, 6000, color_type=2),
     grpc.StatusCode.RESOURCE_EXHAUSTED,
     ["image: 8000x6000 has 48000000 pixels, above the limit of 40000000"]),
]


@pytest.mark.parametrize("name, make, code, subs", BAD_IMAGES, ids=[b[0] for b in BAD_IMAGES])
def test_bad_images(db, name, make, code, subs):
    data = make()
    before = count(db, "gray")
    calls = {
        "add_image": lambda: db.add_image(f"bad-{name}", data, ["gray", "rgb"],
                                          attributes={"owner": "x"}),
        "find_similar_image": lambda: db.find_similar_image(data, ["gray"], k=3),
        "embed": lambda: db.embed(image=data),
    }
    for call, fn in calls.items():
        with pytest.raises(Exception) as e:
            fn()
        err = e.value
        assert getattr(err, "code", None) == code, f"{call}: {err!r}"
        for s in subs:
            assert s in err.details, f"{call}: {s!r} not in {err.details!r}"
    assert count(db, "gray") == before  # nothing written


def test_valid_image_variants_are_accepted(db):
    """Whatever PNG/JPEG flavour: gray, gray+alpha, RGB, RGBA, palette, 16-bit, non-square
    (stretched), grayscale and progressive JPEG."""
    rgb = (RNG.random((30, 50, 3)) * 255).astype(np.uint8)
    variants = {}
    for mode in ("L", "LA", "RGB", "RGBA", "P", "I;16"):
        im = Image.fromarray(rgb).convert(mode) if mode != "I;16" else \
            Image.fromarray((NOISE.astype(np.uint16) * 257), mode="I;16")
        buf = io.BytesIO()
        im.save(buf, format="PNG")
        variants[f"png-{mode}"] = buf.getvalue()
    variants["jpeg-gray"] = jpeg_bytes(NOISE)
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="JPEG", progressive=True, quality=90)
    variants["jpeg-progressive"] = buf.getvalue()
    for name, data in variants.items():
        out = db.embed(image=data, model_spaces=["gray", "rgb"])
        assert out["gray"].shape == (49,) and out["rgb"].shape == (147,), name
        assert np.isfinite(out["gray"]).all() and np.isfinite(out["rgb"]).all(), name


def test_image_limits_from_config(make_server, tmp_path, models):
    cfg = write_config(tmp_path / "limits.yaml",
                       [image_space("gray", models["dir"] / "pool_gray.pt", 49)],
                       models={"max_image_bytes": "2KiB", "max_image_side": 64,
                               "max_image_pixels": 2000, "min_image_side": 16})
    s = make_server(config=cfg)
    with client(s) as db:
        big = png_bytes((RNG.random((60, 60)) * 255).astype(np.uint8))
        assert len(big) > 2048
        with pytest.raises(ResourceExhausted, match=f"image: {len(big)} bytes exceeds the limit "
                                                    f"of 2048"):
            db.embed(image=big)
        with pytest.raises(ResourceExhausted, match="image: 65x20 exceeds the limit of 64"):
            db.embed(image=png_declaring(65, 20))
        with pytest.raises(ResourceExhausted, match="image: 60x40 has 2400 pixels, above the "
                                                    "limit of 2000"):
            db.embed(image=png_declaring(60, 40))
        with pytest.raises(InvalidArgument, match="image: 28x15 is smaller than the minimum of "
                                                  "16x16"):
            db.embed(image=png_bytes(np.zeros((15, 28), dtype=np.uint8)))
        assert db.embed(image=png_bytes(np.zeros((16, 16), dtype=np.uint8)))["gray"].shape == (49,)


# ------------------------------------------------------------------------ tensors

def test_bad_tensors(db, srv):
    t = RNG.standard_normal(16).astype(np.float32)
    with pytest.raises(InvalidArgument, match=r"tensor.shape: model space vec16 expects \[16\]"):
        db.embed(tensor=t.reshape(4, 4), model_spaces="vec16")
    with pytest.raises(InvalidArgument, match=r"tensor.shape: model space vec16 expects \[16\]"):
        db.add_tensor("x", np.zeros(17), "vec16")
    short = M.Tensor(shape=[16], values=t[:15].tolist())
    with pytest.raises(InvalidArgument, match=r"tensor.values: 15 values, shape \[16\] needs 16"):
        db.add_tensor("x", short, "vec16")
    with pytest.raises(InvalidArgument, match=r"tensor.values: 15 values"):
        db.find_similar_tensor(short, "vec16")
    bad = t.copy()
    bad[3] = np.nan
    with pytest.raises(InvalidArgument, match=r"tensor.values\[3\]: must be finite"):
        db.add_tensor("x", bad, "vec16")
    bad[3] = np.inf
    with pytest.raises(InvalidArgument, match=r"tensor.values\[3\]: must be finite"):
        db.embed(tensor=bad, model_spaces="vec16")
    with pytest.raises(InvalidArgument, match="tensor: model space gray takes images, not "
                                              "tensors"):
        db.embed(tensor=t, model_spaces=["vec16", "gray"])
    with pytest.raises(InvalidArgument, match="image: model space vec16 takes tensors, not "
                                              "images"):
        db.add_image("x", GOOD_PNG)  # every space, vec16 among them
    stub = modelspaces_pb2_grpc.ModelSpacesStub(db.channel)
    with expect_status(grpc.StatusCode.INVALID_ARGUMENT, "input: an image or a tensor is "
                                                         "required"):
        stub.Embed(M.EmbedRequest(model_spaces=["vec16"]), timeout=TIMEOUT)
    with expect_status(grpc.StatusCode.INVALID_ARGUMENT, "tensor: is required"):
        stub.AddTensor(M.AddTensorRequest(id="x", model_spaces=["vec16"]), timeout=TIMEOUT)
    assert count(db, "vec16") == 0


# ------------------------------------------------------------------------ names, ids, options

def test_unknown_and_repeated_model_spaces(db):
    img = GOOD_PNG
    t = np.zeros(16, dtype=np.float32)
    unknown = 'model_spaces[1]: model space "nope" does not exist'
    for fn in (lambda: db.add_image("u", img, ["gray", "nope"]),
               lambda: db.find_similar_image(img, ["gray", "nope"]),
               lambda: db.find_similar_by_id("u", ["gray", "nope"]),
               lambda: db.remove_image("u", ["gray", "nope"]),
               lambda: db.embed(image=img, model_spaces=["gray", "nope"]),
               lambda: db.add_tensor("u", t, ["vec16", "nope"]),
               lambda: db.find_similar_tensor(t, ["vec16", "nope"])):
        with pytest.raises(NotFound) as e:
            fn()
        assert e.value.details == unknown
    twice = 'model_spaces[2]: "gray" is listed twice'
    for fn in (lambda: db.add_image("u", img, ["gray", "rgb", "gray"],
                                    attributes={"owner": "a"}),
               lambda: db.find_similar_image(img, ["gray", "rgb", "gray"]),
               lambda: db.embed(image=img, model_spaces=["gray", "rgb", "gray"]),
               lambda: db.remove_image("u", ["gray", "rgb", "gray"])):
        with pytest.raises(InvalidArgument) as e:
            fn()
        assert e.value.details == twice
    assert count(db, "gray") == 0 and count(db, "rgb") == 0


def test_ids_attributes_and_options(db):
    stub = modelspaces_pb2_grpc.ModelSpacesStub(db.channel)
    with expect_status(grpc.StatusCode.INVALID_ARGUMENT, "id: is required"):
        stub.AddImage(M.AddImageRequest(image=GOOD_PNG, model_spaces=["gray"]), timeout=TIMEOUT)
    for fn in (lambda: db.add_image("", GOOD_PNG, "gray"),
               lambda: db.add_tensor("", np.zeros(16), "vec16"),
               lambda: db.find_similar_by_id("", "gray"),
               lambda: db.remove_image("", "gray")):
        with pytest.raises(InvalidArgument, match="^id: is required$"):
            fn()
    with pytest.raises(InvalidArgument, match=r'attributes\["id"\]: the item id goes in the id '
                                              r'field'):
        db.add_image("a", GOOD_PNG, "gray", attributes={"id": "b"})
    with pytest.raises(InvalidArgument, match=r'min_seq\["nope"\]: no such model space'):
        db.find_similar_image(GOOD_PNG, "gray", min_seq={"nope": 1})
    # An entry for another existing space (the seqs of a multi-space add) is ignored.
    db.find_similar_image(GOOD_PNG, "gray", min_seq={"rgb": 10**9})
    with pytest.raises(InvalidArgument, match="k: must be >= 1, got 0"):
        db.find_similar_image(GOOD_PNG, "gray", k=0)
    with pytest.raises(InvalidArgument, match="split_filter"):
        db.find_similar_image(GOOD_PNG, "gray", split_filter={"owner": "a"})
    # Everything is checked before anything is written: a failure in the second space leaves
    # the first untouched.
    with pytest.raises(InvalidArgument) as e:
        db.add_image("atomic", GOOD_PNG, ["gray", "rgb"])
    assert "model space rgb" in e.value.details and '"owner"' in e.value.details
    assert db.find_similar_by_id("atomic", ["gray", "rgb"]).missing == ["gray", "rgb"]
    assert count(db, "gray") == 0


# ------------------------------------------------------------------------ catalog

def test_create_model_space_refusals(db, models, tmp_path):
    m = models["dir"]
    before = [s.name for s in db.list_model_spaces()]
    with pytest.raises(InvalidArgument) as e:
        db.create_model_space("ws", str(m / "wrong_shape.pt"), input=ImageInput(28, 28),
                              output_dim=8)
    assert e.value.details.startswith("spec.model_path: model output has shape [2, 5]")
    assert "expected [2, 8]" in e.value.details
    # A missing file inside models.dir says so (outside it: test_model_paths.py).
    with pytest.raises(InvalidArgument) as e:
        db.create_model_space("nf", str(m / "missing.pt"), input=ImageInput(28, 28),
                              output_dim=8)
    assert e.value.details == (f"spec.model_path: cannot read model file "
                               f"{m / 'missing.pt'}: No such file or directory")
    garbage = m / "garbage.pt"
    garbage.write_bytes(RNG.bytes(2000))
    with pytest.raises(InvalidArgument, match="spec.model_path: not a TorchScript model"):
        db.create_model_space("gb", str(garbage), input=TensorInput([16]), output_dim=8)
    with pytest.raises(InvalidArgument, match="spec.model_path: model forward failed"):
        db.create_model_space("mis", str(m / "pool_gray.pt"), input=TensorInput([16]),
                              output_dim=49)
    bad_specs = [
        (dict(name="bad name!"), "spec.name"),
        (dict(output_dim=0), "spec.output_dim"),
        (dict(metric="jaccard"), "spec.metric"),
        (dict(input=ImageInput(28, 28, channels=2)), "spec.input.image.channels"),
        (dict(input=ImageInput(28, 28, mean=[0.1, 0.2])), "spec.input.image.mean"),
        (dict(input=TensorInput([])), "spec.input.tensor.shape"),
        (dict(permanent_attributes={"id": "string"}), "spec.permanent_attributes[0].name"),
    ]
    for change, field in bad_specs:
        kw = dict(name="ok", model_path=str(m / "pool_gray.pt"), input=ImageInput(28, 28),
                  output_dim=49, metric="cosine")
        kw.update(change)
        with pytest.raises(InvalidArgument) as e:
            db.create_model_space(**kw)
        assert field in e.value.details, (change, e.value.details)
    assert [s.name for s in db.list_model_spaces()] == before
    refs = [d.ref for d in db.list_data_sources()]
    assert not any(r.startswith(("ws@", "nf@", "gb@", "mis@", "ok@")) for r in refs), refs


def test_refused_create_model_space_leaves_nothing_behind(db, models):
    """A CreateModelSpace refused because of its index definition (an unknown split attribute)
    must not leave its data source behind; and a later space of that name, with another output
    dimension, must get a data source of its own dimension."""
    m = models["dir"]
    with pytest.raises(InvalidArgument) as e:
        db.create_model_space("left", str(m / "pool_gray.pt"), input=ImageInput(28, 28),
                              output_dim=49, split_attributes=["nope"])
    assert e.value.details == ('spec.split_attributes[0]: "nope" is not a permanent attribute '
                               'of data source left@space')
    assert "left" not in [s.name for s in db.list_model_spaces()]
    refs = [d.ref for d in db.list_data_sources()]
    try:
        assert "left@space" not in refs, f"refused CreateModelSpace left its data source: {refs}"
    finally:
        # The same name with another model and dimension must work.
        db.create_model_space("left", str(m / "tensor16.pt"), input=TensorInput([16]),
                              output_dim=8)
        try:
            assert db.get_data_source("left@space").dimension == 8
            assert db.add_tensor("a", np.ones(16), "left")["left"] >= 1
        finally:
            db.drop_model_space("left")


def test_output_index_takes_one_element_of_a_tuple_output(db, models):
    """features.pt returns (x[:, :4] * 2, x[:, 4:7]), as EuclidesDB's models return features
    and predictions: output_index picks the embedding; a wrong one is refused at create."""
    m = models["dir"]
    x = np.arange(16, dtype=np.float32) / 16
    for index, dim, want in ((0, 4, x[:4] * 2), (1, 3, x[4:7])):
        name = f"tuple{index}"
        info = db.create_model_space(name, str(m / "features.pt"), input=TensorInput([16]),
                                     output_dim=dim, metric="l2", output_index=index)
        try:
            assert info.output_index == index and db.get_model_space(name).output_index == index
            np.testing.assert_allclose(db.embed(tensor=x, model_spaces=name)[name], want,
                                       rtol=1e-6)
            seqs = db.add_tensor("a", x, name)
            hits = db.find_similar_tensor(x, name, k=1, min_seq=seqs)[name]
            assert [h.id for h in hits] == ["a"]
        finally:
            db.drop_model_space(name)
    bad = [
        (dict(output_dim=4, output_index=2),
         "spec.output_index 2: the model returns a tuple of 2 elements"),
        (dict(output_dim=3, output_index=0), "expected [2, 3]"),
        (dict(output_dim=4, output_index=256), "spec.output_index: 256 is not in 0..255"),
    ]
    for kw, text in bad:
        with pytest.raises(InvalidArgument) as e:
            db.create_model_space("tuplebad", str(m / "features.pt"), input=TensorInput([16]),
                                  **kw)
        assert text in e.value.details, e.value.details
    with pytest.raises(InvalidArgument) as e:
        db.create_model_space("tuplebad", str(m / "tensor16.pt"), input=TensorInput([16]),
                              output_dim=8, output_index=1)
    assert ("spec.output_index 1: the model returns a single tensor, not a tuple or list"
            in e.value.details), e.value.details
    assert "tuplebad" not in [s.name for s in db.list_model_spaces()]


def test_space_source_and_index_belong_to_the_space(db, models):
    with pytest.raises(FailedPrecondition) as e:
        db.drop_data_source("gray@space")
    assert e.value.details == ("data_source: gray@space belongs to model space gray; drop the "
                               "model space")
    with pytest.raises(FailedPrecondition) as e:
        db.drop_index("gray", "space")
    assert e.value.details == "index: gray@space belongs to model space gray; drop the model space"
    # DropModelSpace: gone, then NOT_FOUND everywhere; the name can be used again.
    m = models["dir"]
    db.create_model_space("tmp", str(m / "pool_gray.pt"), input=ImageInput(28, 28),
                          output_dim=49, index=Hnsw())
    db.add_image("a", GOOD_PNG, "tmp")
    db.drop_model_space("tmp")
    for fn in (lambda: db.get_model_space("tmp"), lambda: db.drop_model_space("tmp")):
        with pytest.raises(NotFound, match='model space "tmp" does not exist'):
            fn()
    with pytest.raises(NotFound, match='model_spaces\\[0\\]: model space "tmp" does not exist'):
        db.find_similar_by_id("a", "tmp")
    with pytest.raises(NotFound):
        db.get_data_source("tmp@space")
    with pytest.raises(NotFound):
        db.get_index("tmp@space")
    db.create_model_space("tmp", str(m / "tensor16.pt"), input=TensorInput([16]), output_dim=8)
    assert db.get_model_space("tmp").point_count == 0
    db.drop_model_space("tmp")


def run_hilbertd(args, timeout=START_TIMEOUT):
    return subprocess.run([HILBERTD] + args, capture_output=True, text=True, timeout=timeout)


def test_config_with_a_bad_model_exits_2(tmp_path, models):
    m = models["dir"]
    for spaces, want in [
        ([image_space("good", m / "pool_gray.pt", 49),
          image_space("ws", m / "wrong_shape.pt", 8)],
         ["model_spaces[1]", "model output has shape [2, 5]", "expected [2, 8]"]),
        ([image_space("nf", tmp_path / "nope.pt", 8)],
         ["model_spaces[0]", "nope.pt", "No such file or directory"]),
    ]:
        cfg = write_config(tmp_path / "bad.yaml", spaces)
        p = run_hilbertd(["--config", str(cfg), "--listen", "127.0.0.1:0", "--data-dir",
                          str(tmp_path / "data")])
        assert p.returncode == 2, (p.returncode, p.stderr[-3000:])
        for s in want:
            assert s in p.stderr, (s, p.stderr[-3000:])
        assert "listening" not in p.stderr


# ------------------------------------------------------------------------ restarts

def test_space_survives_a_restart(make_server, tmp_path, models):
    mdir = tmp_path / "models"  # this server's models.dir, where the copy can be deleted
    mdir.mkdir()
    model = mdir / "copy_of_pool_gray.pt"
    shutil.copy(models["dir"] / "pool_gray.pt", model)
    shutil.copy(models["dir"] / "tensor16.pt", mdir / "tensor16.pt")
    cfg = write_config(tmp_path / "cfg.yaml",
                       [tensor_space("vec16", mdir / "tensor16.pt", [16], 8)])
    s = make_server(config=cfg)
    imgs = [(RNG.random((28, 28)) * 255).astype(np.uint8) for _ in range(40)]
    with client(s) as db:
        db.create_model_space("api", str(model), input=ImageInput(28, 28), output_dim=49,
                              metric="l2", index=Hnsw(m=8), permanent_attributes={"n": "int64"},
                              split_attributes=["n"])
        for i, im in enumerate(imgs):
            seqs = db.add_image(f"i{i}", im, "api", attributes={"n": i % 2})
        db.add_tensor("t", np.ones(16), "vec16")
        db.remove_image("i0", "api")
        db.wait_for_index("api@space", timeout=TIMEOUT)
        spec = db.get_model_space("api")
        before = db.find_similar_by_id("i1", "api", k=5, split_filter={"n": 1}, min_seq=seqs)
        vec = db.embed(image=imgs[5], model_spaces="api")["api"]
    s.restart()
    with client(s) as db:
        after = db.get_model_space("api")
        assert after.model_state == "LOADED"
        assert (after.input, after.index, after.metric, after.permanent_attributes,
                after.split_attributes) == (spec.input, spec.index, spec.metric,
                                            spec.permanent_attributes, spec.split_attributes)
        assert after.point_count == 39
        st = db.wait_for_index("api@space", timeout=TIMEOUT).status
        assert st.size == 39 and st.snapshot_seq > 0
        res = db.find_similar_by_id("i1", "api", k=5, split_filter={"n": 1})
        assert [h.id for h in res["api"]] == [h.id for h in before["api"]]
        assert db.find_similar_by_id("i0", "api").missing == ["api"]
        np.testing.assert_array_equal(db.embed(image=imgs[5], model_spaces="api")["api"], vec)
        assert db.get_model_space("vec16").point_count == 1
        assert [x.name for x in db.list_model_spaces()] == ["api", "vec16"]
    # Without its model file the space still starts: its model is FAILED (with the reason),
    # FindSimilarById still works, and calls that need the model fail with FAILED_PRECONDITION.
    s.stop()
    model.unlink()
    s.start()
    assert "does not load" in s.log_since_start()
    with client(s) as db:
        info = db.get_model_space("api")
        assert info.model_state == "FAILED" and "copy_of_pool_gray.pt" in info.detail
        res = db.find_similar_by_id("i1", "api", k=5, split_filter={"n": 1})
        assert [h.id for h in res["api"]] == [h.id for h in before["api"]]
        with pytest.raises(FailedPrecondition) as e:
            db.embed(image=imgs[5], model_spaces="api")
        assert "model space api" in e.value.details and "copy_of_pool_gray.pt" in e.value.details
        with pytest.raises(FailedPrecondition):
            db.add_image("new", imgs[5], "api", attributes={"n": 0})
        db.remove_image("i1", "api")  # removing needs no model
        assert db.get_model_space("api").point_count == 38
        db.drop_model_space("api")
        assert [x.name for x in db.list_model_spaces()] == ["vec16"]


def test_config_space_with_a_changed_definition_stops_startup(tmp_path, models):
    m = models["dir"]
    data = tmp_path / "data"
    cfg = write_config(tmp_path / "a.yaml", [image_space("sp", m / "pool_gray.pt", 49)])
    s = Server(data, tmp_path / "a.log", config=cfg).start()
    assert s.stop() == 0
    cfg2 = write_config(tmp_path / "b.yaml", [image_space("sp", m / "pool_gray.pt", 49,
                                                          metric="l2")])
    p = run_hilbertd(["--config", str(cfg2), "--listen", "127.0.0.1:0", "--data-dir", str(data)])
    assert p.returncode != 0
    assert "model space sp exists with a different definition" in p.stderr, p.stderr[-3000:]
    # The original definition still starts.
    s = Server(data, tmp_path / "a.log", config=cfg).start()
    try:
        with client(s) as db:
            assert db.get_model_space("sp").metric == "cosine"
    finally:
        assert s.stop() == 0


# ------------------------------------------------------------------------ model checksums

LINEAR = """
import sys, torch
class M(torch.nn.Module):
    def __init__(self, seed: int):
        super().__init__()
        torch.manual_seed(seed)
        self.l = torch.nn.Linear(784, 49)
    def forward(self, x):
        return self.l(x.reshape(x.shape[0], -1))
for i, path in enumerate(sys.argv[1:]):
    torch.jit.trace(M(i + 1), torch.zeros(2, 1, 28, 28)).save(path)
"""


def linear_models(*paths) -> list:
    """TorchScript models for gray 28x28 images with 49 outputs, each with other weights;
    returns the files' SHA-256s."""
    import hashlib
    subprocess.run(["/usr/bin/python3", "-c", LINEAR] + [str(p) for p in paths], check=True,
                   timeout=300)
    return [hashlib.sha256(p.read_bytes()).hexdigest() for p in paths]


def test_a_changed_model_file_stops_startup(tmp_path):
    from hilbert.v1 import catalog_pb2 as C, catalog_pb2_grpc
    mdir = tmp_path / "models"
    mdir.mkdir()
    old_sha, new_sha = linear_models(mdir / "v1.pt", tmp_path / "v2.pt")
    assert old_sha != new_sha
    shutil.copy(mdir / "v1.pt", mdir / "m.pt")
    data = tmp_path / "data"
    cfg = write_config(tmp_path / "a.yaml", [image_space("sp", mdir / "m.pt", 49)])
    s = Server(data, tmp_path / "a.log", config=cfg).start()
    info = catalog_pb2_grpc.CatalogStub(s.channel).GetModelSpace(
        C.GetModelSpaceRequest(name="sp"), timeout=TIMEOUT)
    assert info.spec.model_sha256 == old_sha, info.spec
    with client(s) as db:
        assert db.get_model_space("sp").model_sha256 == old_sha
    # Given in CreateModelSpace, the checksum must match the file; a malformed one is refused.
    with client(s) as db:
        for sha, want in [(new_sha, f"spec.model_sha256: the model file {mdir / 'v1.pt'} has "
                                    f"SHA-256 {old_sha}, not {new_sha}"),
                          ("abc", "spec.model_sha256: must be 64 lowercase hex digits")]:
            with expect_status(grpc.StatusCode.INVALID_ARGUMENT, want):
                catalog_pb2_grpc.CatalogStub(s.channel).CreateModelSpace(
                    C.CreateModelSpaceRequest(spec=C.ModelSpaceSpec(
                        name="pinned", model_path=str(mdir / "v1.pt"), output_dim=49,
                        metric=C.METRIC_L2, model_sha256=sha,
                        input=C.ModelInput(image=C.ImageInput(width=28, height=28,
                                                              channels=1)))),
                    timeout=TIMEOUT)
        assert [x.name for x in db.list_model_spaces()] == ["sp"]
    assert s.stop() == 0
    # New weights copied over the file: the server refuses to start, and says what to do.
    shutil.copy(tmp_path / "v2.pt", mdir / "m.pt")
    p = run_hilbertd(["--config", str(cfg), "--listen", "127.0.0.1:0", "--data-dir", str(data)])
    assert p.returncode != 0
    for want in ["model space sp: its model file", "has changed since the space was created",
                 f"SHA-256 {old_sha[:12]}..., now {new_sha[:12]}...", "Put the old file back",
                 "create a new model space for the new model"]:
        assert want in p.stderr, (want, p.stderr[-3000:])
    assert "listening" not in p.stderr
    # A config that pins the checksum it was created with agrees with the stored space; the
    # old file back, it starts again.
    shutil.copy(mdir / "v1.pt", mdir / "m.pt")
    cfg2 = write_config(tmp_path / "b.yaml", [image_space("sp", mdir / "m.pt", 49,
                                                          model_sha256=old_sha)])
    s = Server(data, tmp_path / "b.log", config=cfg2).start()
    assert s.stop() == 0
