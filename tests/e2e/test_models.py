"""Model spaces end to end, through the Python client.

With the bundled Fashion-MNIST models (models/fmnist_cnn.pt, 64-d, and models/fmnist_mlp.pt,
32-d, both L2-normalised, see models/train.py): 1000 test images are added to both spaces, and
the top 10 of FindSimilarImage for 50 other test images are mostly of the query's class;
FindSimilarById leaves the item itself out; RemoveImage removes it; Embed returns unit vectors
of the declared dims, equal to the vectors AddImage returns. These tests fail (they do not skip)
when the bundled models are missing.

With a fixture tensor model ([n, 16] -> [n, 8], model_fixtures/make_models.py): AddTensor,
FindSimilarTensor (exact against numpy over the returned vectors), Embed of tensors.
"""
from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from conftest import Server
from hilbertdb import Hit, ImageInput, InvalidArgument
from hilbertdb.datasets import FASHION_MNIST_CLASSES, load_fashion_mnist
from model_fixtures import (MODELS_DIR, ROOT, build_models, client, fmnist_spaces, tensor_space,
                            write_config)

N_ITEMS = 1000
QUERIES = list(range(1000, 2000, 20))  # 50 test images that are not stored
DIMS = {"fmnist_cnn": 64, "fmnist_mlp": 32}
MIN_PRECISION = 0.6  # the models reach about 0.8 precision@10 on the test set


@pytest.fixture(scope="module")
def fmnist():
    images, labels = load_fashion_mnist("test")
    return images, labels.astype(np.int64)


def require_bundled_models() -> None:
    missing = [n for n in ("fmnist_cnn.pt", "fmnist_mlp.pt") if not (MODELS_DIR / n).is_file()]
    if missing:
        pytest.fail(f"bundled model(s) {', '.join(missing)} missing from {MODELS_DIR}: train them "
                    f"with `/usr/bin/python3 models/train.py` (see models/README.md)",
                    pytrace=False)


def precision_at_10(db, images, labels, queries, min_seq=None):
    """Mean fraction of the top 10 of FindSimilarImage that has the query's label, per space."""
    def query(q: int):
        return q, db.find_similar_image(images[q], k=10, min_seq=min_seq)

    precision = {}
    with ThreadPoolExecutor(4) as ex:
        answers = list(ex.map(query, queries))
    for q, res in answers:
        for name, hits in res.items():
            precision.setdefault(name, []).append(
                np.mean([h.attributes["label"] == labels[q] for h in hits]))
    return answers, {name: float(np.mean(p)) for name, p in precision.items()}


@pytest.fixture(scope="module")
def fmnist_server(tmp_path_factory, fmnist):
    """A server with the two bundled model spaces (flat indices: exact answers), holding test
    images 0..999 with their label and class name as payload attributes."""
    require_bundled_models()
    d = tmp_path_factory.mktemp("fmnist")
    cfg = write_config(d / "hilbertd.yaml", fmnist_spaces())
    s = Server(d / "data", d / "hilbertd.log", config=cfg)
    s.start()
    images, labels = fmnist
    db = client(s)

    def add(i: int):
        return db.add_image(f"test-{i}", images[i],
                            attributes={"label": int(labels[i]),
                                        "name": FASHION_MNIST_CLASSES[labels[i]]})

    with ThreadPoolExecutor(8) as ex:
        results = list(ex.map(add, range(N_ITEMS)))
    last = {name: max(r[name] for r in results) for name in DIMS}
    assert all(list(r) == sorted(DIMS) for r in results)  # every space, in name order
    for name in DIMS:
        db.wait_for_index(f"{name}@space", timeout=300)
    yield s, db, last
    db.close()
    code = s.stop()
    assert code == 0, f"hilbertd exited with {code}:\n{s.log_since_start()[-4000:]}"


def test_bundled_spaces(fmnist_server):
    _, db, _ = fmnist_server
    infos = db.list_model_spaces()
    assert [i.name for i in infos] == ["fmnist_cnn", "fmnist_mlp"]
    for i in infos:
        assert i.model_state == "LOADED", i.detail
        assert i.output_dim == DIMS[i.name] and i.metric == "cosine"
        assert i.input == ImageInput(28, 28, 1, "stretch", (pytest.approx(0.2860),),
                                     (pytest.approx(0.3530),))
        assert i.point_count == N_ITEMS and i.index_status.size == N_ITEMS


def test_find_similar_image_finds_the_query_class(fmnist_server, fmnist):
    _, db, last = fmnist_server
    images, labels = fmnist
    answers, mean = precision_at_10(db, images, labels, QUERIES, last)
    for q, res in answers:
        assert list(res) == sorted(DIMS) and res.missing == []
        for name, hits in res.items():
            assert len(hits) == 10
            d = [h.distance for h in hits]
            assert d == sorted(d) and 0.0 <= d[0] and d[-1] <= 2.0, d
            for h in hits:
                assert h.attributes["name"] == FASHION_MNIST_CLASSES[h.attributes["label"]]
                assert h.id.startswith("test-") and int(h.id[5:]) < N_ITEMS
    print(f"precision@10 over {len(QUERIES)} queries: {mean}")
    for name, p in mean.items():
        assert p >= MIN_PRECISION, f"{name}: precision@10 {p:.3f} < {MIN_PRECISION} ({mean})"


def test_find_similar_by_id_excludes_the_item(fmnist_server, fmnist):
    _, db, last = fmnist_server
    images, labels = fmnist
    for i in (0, 17, 999):
        by_image = db.find_similar_image(images[i], k=11, min_seq=last)
        by_id = db.find_similar_by_id(f"test-{i}", k=10, min_seq=last)
        assert list(by_id) == sorted(DIMS) and by_id.missing == []
        for name in DIMS:
            img_hits = by_image[name]
            # The stored item is the image's nearest neighbour, at distance ~0.
            assert img_hits[0].id == f"test-{i}" and img_hits[0].distance < 1e-4
            ids = [h.id for h in by_id[name]]
            assert len(ids) == 10 and f"test-{i}" not in ids
            assert ids == [h.id for h in img_hits[1:]]
            np.testing.assert_allclose([h.distance for h in by_id[name]],
                                       [h.distance for h in img_hits[1:]], atol=1e-4)
    missing = db.find_similar_by_id("no-such-item", k=5)
    assert dict(missing) == {} and missing.missing == sorted(DIMS)


def test_remove_image_removes_it_from_results(fmnist_server, fmnist):
    _, db, _ = fmnist_server
    images, labels = fmnist
    q = 4321
    seqs = db.add_image("extra", images[q], attributes={"label": int(labels[q])})
    hits = db.find_similar_image(images[q], k=3, min_seq=seqs)
    assert all(h[0].id == "extra" for h in hits.values())
    assert set(db.find_similar_by_id("extra", k=3, min_seq=seqs)) == set(DIMS)
    removed = db.remove_image("extra")
    assert set(removed) == set(DIMS) and all(removed[n] > seqs[n] for n in DIMS)
    after = db.find_similar_image(images[q], k=10, min_seq=removed)
    for name, hits in after.items():
        assert "extra" not in [h.id for h in hits] and len(hits) == 10
    gone = db.find_similar_by_id("extra", k=3, min_seq=removed)
    assert dict(gone) == {} and gone.missing == sorted(DIMS)
    assert db.remove_image("extra", ["fmnist_cnn"])  # removing again is a no-op write
    for info in db.list_model_spaces():
        assert info.point_count == N_ITEMS


def test_embed_and_return_vectors(fmnist_server, fmnist):
    _, db, _ = fmnist_server
    images, _ = fmnist
    for q in (3000, 3001):
        emb = db.embed(image=images[q])
        assert list(emb) == sorted(DIMS)
        for name, v in emb.items():
            assert v.shape == (DIMS[name],) and v.dtype == np.float32
            assert np.linalg.norm(v) == pytest.approx(1.0, abs=1e-3)
        one = db.embed(image=images[q], model_spaces=["fmnist_mlp"])
        assert list(one) == ["fmnist_mlp"]
        np.testing.assert_array_equal(one["fmnist_mlp"], emb["fmnist_mlp"])
        added = db.add_image(f"rv-{q}", images[q], model_spaces=["fmnist_mlp", "fmnist_cnn"],
                             return_vectors=True)
        assert list(added) == ["fmnist_mlp", "fmnist_cnn"]  # request order
        for name in DIMS:
            np.testing.assert_array_equal(added.vectors[name], emb[name])
        # The stored vector is the one returned (retrieve_vectors of a search).
        hit = db.find_similar_image(images[q], k=1, min_seq=added, retrieve_vectors=True)
        for name in DIMS:
            assert hit[name][0].id == f"rv-{q}"
            np.testing.assert_array_equal(hit[name][0].vector, emb[name])
        db.remove_image(f"rv-{q}")
    # Different images give different vectors; the same image always the same one.
    a, b = db.embed(image=images[3000]), db.embed(image=images[3001])
    assert all(not np.array_equal(a[n], b[n]) for n in DIMS)


def test_batched_adds_match_single_embeds(fmnist_server, fmnist):
    """Concurrent calls are batched into one forward pass; a batch must give every item the
    vector it gets alone (no mix-up of rows)."""
    _, db, _ = fmnist_server
    images, _ = fmnist
    idx = list(range(6000, 6032))
    alone = {i: db.embed(image=images[i]) for i in idx}
    with ThreadPoolExecutor(16) as ex:
        together = dict(zip(idx, ex.map(lambda i: db.embed(image=images[i]), idx)))
    for i in idx:
        for name in DIMS:
            np.testing.assert_allclose(together[i][name], alone[i][name], atol=1e-5,
                                       err_msg=f"image {i}, {name}")


# ------------------------------------------------------------------------ tensor model space

def test_tensor_model_space(make_server, tmp_path_factory, tmp_path):
    models = build_models(tmp_path_factory.mktemp("torch_models"))
    cfg = write_config(tmp_path / "hilbertd.yaml", [
        tensor_space("vec16", models["dir"] / "tensor16.pt", [16], 8, metric="cosine")])
    s = make_server(config=cfg)
    rng = np.random.default_rng(3)
    x = rng.standard_normal((200, 16)).astype(np.float32)
    with client(s) as db:
        vecs = np.zeros((200, 8), dtype=np.float32)
        seqs = None
        for i in range(200):
            seqs = db.add_tensor(f"v{i}", x[i], model_spaces="vec16", attributes={"i": i},
                                 return_vectors=True)
            vecs[i] = seqs.vectors["vec16"]
        np.testing.assert_allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-5)
        # Embed gives the vector AddTensor returned.
        for i in (0, 199):
            np.testing.assert_array_equal(db.embed(tensor=x[i], model_spaces=["vec16"])["vec16"],
                                          vecs[i])
        with pytest.raises(InvalidArgument, match=r"tensor.shape: model space vec16 expects "
                                                  r"\[16\]"):
            db.embed(tensor=x[0].reshape(4, 4), model_spaces="vec16")
        # FindSimilarTensor is exact (flat index) against numpy over the returned vectors.
        q = rng.standard_normal((5, 16)).astype(np.float32)
        for qi in range(5):
            qv = db.embed(tensor=q[qi], model_spaces="vec16")["vec16"]
            res = db.find_similar_tensor(q[qi], model_spaces="vec16", k=5, min_seq=seqs)
            hits = res["vec16"]
            cos = 1.0 - vecs @ qv
            want = np.argsort(cos, kind="stable")[:5]
            assert [h.id for h in hits] == [f"v{i}" for i in want]
            np.testing.assert_allclose([h.distance for h in hits], cos[want], atol=1e-5)
            assert all(isinstance(h, Hit) and h.attributes["i"] == int(h.id[1:]) for h in hits)
        # The item itself comes first, and FindSimilarById leaves it out.
        first = db.find_similar_tensor(x[7], "vec16", k=2)["vec16"]
        assert first[0].id == "v7" and first[0].distance == pytest.approx(0, abs=1e-5)
        assert "v7" not in [h.id for h in db.find_similar_by_id("v7", "vec16", k=5)["vec16"]]


def test_shipped_config_serves_the_bundled_spaces(make_server, tmp_path, fmnist):
    """config/hilbertd.yaml as shipped (only models.dir made absolute, since the test server
    runs elsewhere): its model spaces load, and search them through their declared indices."""
    require_bundled_models()
    text = (ROOT / "config" / "hilbertd.yaml").read_text()
    assert "\n  dir: ./models\n" in text, "config/hilbertd.yaml: models.dir is not ./models"
    cfg = tmp_path / "shipped.yaml"
    cfg.write_text(text.replace("\n  dir: ./models\n", f"\n  dir: {json.dumps(str(MODELS_DIR))}\n"))
    s = make_server(config=cfg)
    images, labels = fmnist
    with client(s) as db:
        infos = {i.name: i for i in db.list_model_spaces()}
        assert set(DIMS) <= set(infos), list(infos)
        for name, dim in DIMS.items():
            assert infos[name].model_state == "LOADED" and infos[name].output_dim == dim
        with ThreadPoolExecutor(8) as ex:
            adds = list(ex.map(lambda i: db.add_image(f"s{i}", images[i], list(DIMS),
                                                      attributes={"label": int(labels[i])}),
                               range(300)))
        last = {n: max(a[n] for a in adds) for n in DIMS}
        _, mean = precision_at_10(db, images, labels, QUERIES[:20], last)
        print(f"shipped config, 300 items: precision@10 {mean}")
        for name in DIMS:
            assert mean[name] >= MIN_PRECISION, (name, mean)
