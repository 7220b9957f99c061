"""The Python client (clients/python/hilbertdb) against a real hilbertd: every method of
hilbertdb.Client for data sources, indices, points, search (flat, HNSW, FAISS, sparse) and model
spaces, the round trip of every attribute type, the accepted image inputs (bytes, paths, PIL
images, numpy arrays) and the mapping of gRPC status codes to exceptions, with the server's
message.

The model spaces here use the fixture models of model_fixtures/make_models.py (scripted at test
time), created through Catalog.CreateModelSpace, so this module does not need the bundled
models.
"""
from __future__ import annotations

import datetime as dt
import io
from pathlib import Path

import grpc
import numpy as np
import pytest
from PIL import Image

import hilbertdb
from hilbertdb import (AddResult, AlreadyExists, Client, DataSourceInfo, DeadlineExceeded, Faiss,
                       FailedPrecondition, Flat, HilbertError, Hit, Hnsw, ImageInput, IndexInfo,
                       InvalidArgument, NotFound, Point, ResourceExhausted, SearchResults,
                       SimilarResults, Sparse, SparseVector, TensorInput, Timestamp, Unavailable,
                       UploadResult)
from hilbertdb.errors import from_rpc_error
from conftest import Server
from model_fixtures import TIMEOUT, build_models, client, jpeg_bytes, png_bytes, write_config

RNG = np.random.default_rng(11)
UTC = dt.timezone.utc


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    return build_models(tmp_path_factory.mktemp("torch_models"))


@pytest.fixture(scope="module")
def module_server(tmp_path_factory, models):
    """This module's one server: default settings, but models.dir where the fixture models are
    (hilbertd loads models only from under it)."""
    d = tmp_path_factory.mktemp("module")
    cfg = write_config(d / "hilbertd.yaml", [], models_dir=models["dir"])
    s = Server(d / "data", d / "hilbertd.log", config=cfg)
    s.start()
    yield s
    if s.proc is not None:
        code = s.stop()
        assert code == 0, f"hilbertd exited with {code}:\n{s.log_since_start()[-4000:]}"


@pytest.fixture(scope="module")
def db(module_server):
    c = client(module_server)
    yield c
    c.close()


def brute_l2(base: np.ndarray, q: np.ndarray, k: int) -> np.ndarray:
    d = ((base.astype(np.float64) - q.astype(np.float64)) ** 2).sum(1)
    return np.argsort(d, kind="stable")[:k]


# ------------------------------------------------------------------------ connection

def test_health_context_manager_and_closed_client(module_server):
    with client(module_server) as c:
        assert c.health() == "SERVING"
        assert "127.0.0.1" in repr(c)
        assert isinstance(c.channel, grpc.Channel)
        c.wait_until_ready(timeout=TIMEOUT)
    with pytest.raises(ValueError, match="closed"):
        c.health()


def test_unreachable_server_is_unavailable(tmp_path):
    sock = tmp_path / "nobody.sock"
    with Client(f"unix:{sock}", timeout=5) as c:
        with pytest.raises(Unavailable) as e:
            c.health()
        assert e.value.code == grpc.StatusCode.UNAVAILABLE
        with pytest.raises(Unavailable, match="not reachable"):
            c.wait_until_ready(timeout=0.2)


# ------------------------------------------------------------------------ data sources

def test_data_source_create_get_list_drop(db):
    info = db.create_data_source("cl-ds", "3", dimension=5,
                                 permanent_attributes={"id": "int64", "cat": str, "t": "timestamp"},
                                 id_attributes=["id"])
    assert isinstance(info, DataSourceInfo)
    assert (info.name, info.version, info.dimension, info.sparse) == ("cl-ds", "3", 5, False)
    assert info.permanent_attributes == {"id": "int64", "cat": "string", "t": "timestamp"}
    assert info.id_attributes == ["id"] and info.ref == "cl-ds@3"
    assert (info.last_seq, info.point_count, info.indices) == (0, 0, [])
    # Every way of naming it.
    for got in (db.get_data_source("cl-ds@3"), db.get_data_source("cl-ds", "3"),
                db.get_data_source(("cl-ds", "3"))):
        assert got.ref == "cl-ds@3" and got.permanent_attributes == info.permanent_attributes
    assert "cl-ds@3" in [d.ref for d in db.list_data_sources()]

    with pytest.raises(AlreadyExists) as e:
        db.create_data_source("cl-ds@3", dimension=5, permanent_attributes={"id": "int64"},
                              id_attributes=["id"])
    assert e.value.details == "data source cl-ds@3 already exists" == str(e.value)
    assert e.value.code == grpc.StatusCode.ALREADY_EXISTS

    db.drop_data_source("cl-ds@3")
    with pytest.raises(NotFound) as e:
        db.get_data_source("cl-ds", "3")
    assert e.value.details == "data_source: cl-ds@3 does not exist"
    assert "cl-ds@3" not in [d.ref for d in db.list_data_sources()]


def test_bad_definitions_are_invalid_argument_naming_the_field(db):
    with pytest.raises(InvalidArgument) as e:
        db.create_data_source("cl-bad", dimension=0, permanent_attributes={"id": "int64"},
                              id_attributes=["id"])
    assert "dimension" in e.value.details
    with pytest.raises(InvalidArgument) as e:
        db.create_data_source("cl-bad", dimension=4, permanent_attributes={"id": "int64"},
                              id_attributes=["nope"])
    assert "id_attributes" in e.value.details and "nope" in e.value.details
    with pytest.raises(ValueError, match="unknown attribute type"):
        db.create_data_source("cl-bad", dimension=4, permanent_attributes={"id": "integer"},
                              id_attributes=["id"])
    with pytest.raises(ValueError, match="unknown metric"):
        db.create_index("cl-bad-ix", data_source="x", metric="manhattan")


# ------------------------------------------------------------------------ dense: flat, hnsw, faiss

@pytest.fixture(scope="module")
def dense(db):
    """Source cl-dense@1 (16-d, id int64, grp string) with 300 points, and indices flat (L2, split
    by grp) and faiss IVF (L2)."""
    db.create_data_source("cl-dense", dimension=16,
                          permanent_attributes={"id": "int64", "grp": "string"},
                          id_attributes=["id"])
    x = RNG.random((300, 16), dtype=np.float32)
    grp = np.array(["a", "b", "c"])[np.arange(300) % 3]
    pts = []
    for i in range(300):
        attrs = {"id": i, "grp": str(grp[i]), "payload": f"p{i}"}
        if i % 2:  # both accepted forms, and vectors as lists or arrays
            pts.append(Point(x[i], attrs))
        else:
            pts.append({"vector": x[i].tolist(), "attributes": attrs})
    up = db.upload("cl-dense", pts[:100])
    up2 = db.upload("cl-dense", pts[100:], batch_size=64)  # 4 uploads
    assert isinstance(up, UploadResult) and (up.first_seq, up.last_seq) == (1, 100)
    assert (up2.first_seq, up2.last_seq) == (101, 300)
    flat = db.create_index("cl-flat", data_source="cl-dense", algorithm=Flat(), metric="l2",
                           split_attributes=["grp"])
    assert isinstance(flat, IndexInfo) and flat.split_attributes == ["grp"]
    db.create_index("cl-ivf", data_source=("cl-dense", "1"),
                    algorithm=Faiss("IVF4,Flat", nprobe=4, train_size=100), metric="l2")
    for ix in ("cl-flat", "cl-ivf"):
        db.wait_for_index(ix, timeout=TIMEOUT)
    return x, grp


def test_index_get_list_and_status(db, dense):
    info = db.get_index("cl-ivf", "1")
    assert info.algorithm == Faiss("IVF4,Flat", 4, 100)
    assert (info.metric, info.data_source, info.ref) == ("l2", "cl-dense@1", "cl-ivf@1")
    st = info.status
    assert st.state == "READY" and st.caught_up and st.size == 300 and st.applied_seq == 300
    flat = db.get_index("cl-flat@1")
    assert flat.algorithm == Flat() and flat.metric == "l2"
    assert sorted((tuple(s.values.items()), s.size) for s in flat.status.splits) == [
        ((("grp", "a"),), 100), ((("grp", "b"),), 100), ((("grp", "c"),), 100)]
    refs = [i.ref for i in db.list_indices()]
    assert {"cl-flat@1", "cl-ivf@1"} <= set(refs)
    src = db.get_data_source("cl-dense")
    assert src.point_count == 300 and src.last_seq == 300
    assert {"cl-flat@1", "cl-ivf@1"} <= set(src.indices)


def test_search_flat_matches_brute_force(db, dense):
    x, grp = dense
    q = RNG.random((5, 16), dtype=np.float32)
    res = db.search("cl-flat", q, k=7)
    assert isinstance(res, SearchResults) and len(res) == 5 and res.applied_seq >= 300
    for qi, hits in enumerate(res):
        assert all(isinstance(h, Hit) for h in hits)
        assert [h.id for h in hits] == brute_l2(x, q[qi], 7).tolist()
        want = ((x[[h.id for h in hits]] - q[qi]) ** 2).sum(1)
        np.testing.assert_allclose([h.distance for h in hits], want, rtol=1e-4, atol=1e-4)
        assert all(h.vector is None for h in hits)
        assert hits[0].attributes["payload"] == f"p{hits[0].id}"
    # A single 1-D query (a list, even) still gives a list of one list of hits.
    one = db.search("cl-flat", q[0].tolist(), k=3)
    assert len(one) == 1 and [h.id for h in one[0]] == [h.id for h in res[0][:3]]
    # split_filter: only group "b"; retrieve_vectors returns the stored vectors.
    hits = db.search("cl-flat", q[1], k=5, split_filter={"grp": "b"}, retrieve_vectors=True)[0]
    mask = grp == "b"
    ids_b = np.flatnonzero(mask)
    assert [h.id for h in hits] == ids_b[brute_l2(x[mask], q[1], 5)].tolist()
    for h in hits:
        assert h.attributes["grp"] == "b"
        assert h.vector.dtype == np.float32
        np.testing.assert_array_equal(h.vector, x[h.id])


def test_search_faiss_with_nprobe(db, dense):
    x, _ = dense
    q = RNG.random(16, dtype=np.float32)
    iv = db.search("cl-ivf", q, k=5, nprobe=4)[0]  # every list: exact
    assert [h.id for h in iv] == brute_l2(x, q, 5).tolist()


def test_hnsw_index(make_server):
    """On a server of its own: HNSW with explicit parameters, a per-request ef_search."""
    with client(make_server()) as db:
        db.create_data_source("h", dimension=16, permanent_attributes={"id": "int64"},
                              id_attributes=["id"])
        x = RNG.random((300, 16), dtype=np.float32)
        up = db.upload("h", [Point(x[i], {"id": i}) for i in range(300)])
        db.create_index("h-hnsw@2", data_source="h@1",
                        algorithm=Hnsw(m=8, ef_construction=100, ef_search=50), metric="cosine")
        info = db.wait_for_index("h-hnsw", "2", timeout=TIMEOUT)
        assert info.algorithm == Hnsw(m=8, ef_construction=100, ef_search=50)
        assert (info.metric, info.data_source, info.ref) == ("cosine", "h@1", "h-hnsw@2")
        st = info.status
        assert st.state == "READY" and st.caught_up and st.size == 300 and st.applied_seq == 300
        q = RNG.random(16, dtype=np.float32)
        hits = db.search("h-hnsw@2", q, k=5, ef_search=200, min_seq=up)[0]
        xn = x / np.linalg.norm(x, axis=1, keepdims=True)
        cos = 1 - xn @ (q / np.linalg.norm(q))
        assert [h.id for h in hits] == np.argsort(cos, kind="stable")[:5].tolist()
        np.testing.assert_allclose([h.distance for h in hits], np.sort(cos)[:5], atol=1e-5)


def test_hnsw_quantized_storage(make_server):
    """Hnsw(storage=...) through the client: int8 and float16 graphs give the exact top 5 with
    exact distances (the hits are rescored from the stored vectors), the spec reads back with
    its storage, and a bad storage name fails in the client before any call."""
    with client(make_server()) as db:
        db.create_data_source("q", dimension=16, permanent_attributes={"id": "int64"},
                              id_attributes=["id"])
        x = RNG.random((1500, 16), dtype=np.float32)  # past int8's 1000 training points
        up = db.upload("q", [Point(x[i], {"id": i}) for i in range(1500)])
        for name, st in (("q8", "int8"), ("q16", "float16")):
            db.create_index(name, data_source="q", metric="l2",
                            algorithm=Hnsw(m=16, ef_construction=200, storage=st))
            info = db.wait_for_index(name, timeout=TIMEOUT)
            assert info.algorithm == Hnsw(16, 200, 64, st, 0), info.algorithm
            for q in RNG.random((5, 16), dtype=np.float32):
                hits = db.search(name, q, k=5, ef_search=200, min_seq=up)[0]
                d = ((x - q) ** 2).sum(axis=1)
                assert [h.id for h in hits] == np.argsort(d, kind="stable")[:5].tolist(), name
                np.testing.assert_allclose([h.distance for h in hits], np.sort(d)[:5],
                                           rtol=1e-5, atol=1e-5)
        with pytest.raises(ValueError, match="storage"):
            db.create_index("qbad", data_source="q", algorithm=Hnsw(storage="int4"))
        assert "qbad" not in [i.name for i in db.list_indices()]


def test_upload_get_delete_and_read_your_writes(db, dense):
    x, _ = dense
    v = np.full(16, 5.0, dtype=np.float32)
    up = db.upload("cl-dense", [Point(v, {"id": 1000, "grp": "a", "payload": "new"})])
    assert up.first_seq == up.last_seq
    hits = db.search("cl-flat", v, k=1, min_seq=up)[0]  # UploadResult as min_seq
    assert hits[0].id == 1000 and hits[0].distance == pytest.approx(0.0, abs=1e-4)
    got = db.get("cl-dense", [1000, 3, 99999, {"id": 4}])
    assert got[2] is None
    p = got[0]
    assert isinstance(p, Point) and p.seq == up.last_seq and not p.deleted
    np.testing.assert_array_equal(p.vector, v)
    assert p.attributes == {"id": 1000, "grp": "a", "payload": "new"}
    np.testing.assert_array_equal(got[1].vector, x[3])
    assert got[3].attributes["id"] == 4
    # Replace: same id, new payload; then delete by plain id.
    up = db.upload("cl-dense", [Point(v * 2, {"id": 1000, "grp": "a", "payload": "newer"})])
    assert db.get("cl-dense", [1000])[0].attributes["payload"] == "newer"
    dl = db.delete("cl-dense", [1000])
    assert dl.first_seq == up.last_seq + 1
    assert db.get("cl-dense", [1000]) == [None]
    hits = db.search("cl-flat", v * 2, k=1, min_seq=dl.last_seq)[0]
    assert hits[0].id != 1000
    # A tombstone through upload() as well.
    db.upload("cl-dense", [Point(None, {"id": 1001}, deleted=True)])
    with pytest.raises(ValueError, match="identified by"):
        db.get("cl-dense", [(1, 2)])


def test_composite_ids_and_tuple_keys(db):
    db.create_data_source("cl-comp", dimension=2,
                          permanent_attributes={"user": "string", "n": "int64"},
                          id_attributes=["user", "n"])
    db.upload("cl-comp", [Point([1, 2], {"user": "ann", "n": 1}),
                          Point([3, 4], {"user": "bob", "n": 1})])
    got = db.get("cl-comp", [("bob", 1), {"user": "ann", "n": 1}, ("ann", 2)])
    assert [g.attributes["user"] if g else None for g in got] == ["bob", "ann", None]
    db.delete("cl-comp", [("bob", 1)])
    assert db.get("cl-comp", [("bob", 1)]) == [None]
    db.drop_data_source("cl-comp")


def test_drop_index_then_source(db):
    db.create_data_source("cl-drop", dimension=2, permanent_attributes={"id": "int64"},
                          id_attributes=["id"])
    db.create_index("cl-drop-ix", data_source="cl-drop", metric="inner_product")
    with pytest.raises(FailedPrecondition) as e:
        db.drop_data_source("cl-drop")
    assert e.value.details == "data_source: cl-drop@1 is read by index cl-drop-ix@1; drop its " \
                              "indices first"
    db.drop_index("cl-drop-ix")
    with pytest.raises(NotFound, match="index: cl-drop-ix@1 does not exist"):
        db.get_index("cl-drop-ix")
    with pytest.raises(NotFound):
        db.search("cl-drop-ix", [1.0, 0.0])
    db.drop_data_source("cl-drop")


# ------------------------------------------------------------------------ sparse

def test_sparse_source_and_indices(db):
    info = db.create_data_source("cl-sparse", dimension=1000, sparse=True,
                                 permanent_attributes={"doc": "string"}, id_attributes=["doc"])
    assert info.sparse and info.dimension == 1000
    vecs = {
        "d1": SparseVector([1, 5, 9], [1.0, 2.0, 3.0]),
        "d2": SparseVector([5, 9, 700], [1.0, 1.0, 1.0]),
        "d3": SparseVector([2, 3], [4.0, 4.0]),
        "empty": SparseVector([], []),
    }
    up = db.upload("cl-sparse", [Point(v, {"doc": k}) for k, v in vecs.items()])
    db.create_index("cl-sp-cos", data_source="cl-sparse", algorithm=Sparse(), metric="cosine")
    db.create_index("cl-sp-jac", data_source="cl-sparse", algorithm="sparse", metric="jaccard")
    q = SparseVector([5, 9], [1.0, 1.0])
    res = db.search("cl-sp-jac", q, k=3, min_seq=up, retrieve_vectors=True)
    assert len(res) == 1
    hits = res[0]
    # Jaccard: d1 {1,5,9} -> 1 - 2/3; d2 {5,9,700} -> 1 - 2/3; d3 -> 1.
    assert sorted(h.attributes["doc"] for h in hits[:2]) == ["d1", "d2"]
    assert hits[0].distance == pytest.approx(1 / 3, abs=1e-6)
    assert isinstance(hits[0].vector, SparseVector)
    assert hits[0].vector == vecs[hits[0].attributes["doc"]]
    cos = db.search("cl-sp-cos", [q, SparseVector([2], [1.0])], k=2, min_seq=up)
    assert [h.attributes["doc"] for h in cos[1]][:1] == ["d3"]
    d1 = vecs["d1"].to_dense(1000)
    want = 1 - (d1[5] + d1[9]) / (np.linalg.norm(d1) * np.sqrt(2))
    got = {h.attributes["doc"]: h.distance for h in cos[0]}
    assert got["d1"] == pytest.approx(want, abs=1e-5)
    p = db.get("cl-sparse", ["empty", "d2"])
    assert p[0].vector == SparseVector([], []) and p[1].vector == vecs["d2"]
    with pytest.raises(InvalidArgument) as e:
        db.upload("cl-sparse", [Point(SparseVector([9, 5], [1, 1]), {"doc": "bad"})])
    assert "points[0].vector" in e.value.details


# ------------------------------------------------------------------------ attributes

def test_attribute_types_round_trip(db):
    db.create_data_source("cl-attrs", dimension=2,
                          permanent_attributes={"id": "string", "n": "int64", "x": "float64",
                                                "flag": "bool", "blob": "bytes",
                                                "when": "timestamp"},
                          id_attributes=["id"])
    aware = dt.datetime(2024, 2, 29, 23, 59, 58, 123456, tzinfo=UTC)
    plus2 = dt.datetime(2024, 3, 1, 1, 59, 58, 123456, tzinfo=dt.timezone(dt.timedelta(hours=2)))
    naive = dt.datetime(1969, 7, 20, 20, 17, 40)  # naive = UTC; before the epoch
    values = [
        {"id": "ünïcødé ✓", "n": -(2 ** 63), "x": -1.5e300, "flag": True,
         "blob": b"\x00\xff\x00", "when": aware, "pay_s": "", "pay_i": 2 ** 63 - 1, "pay_f": float("inf"),
         "pay_b": False, "pay_bytes": b"", "pay_t": Timestamp(0)},
        {"id": "numpy", "n": np.int32(-7), "x": np.float32(0.25), "flag": np.bool_(False),
         "blob": bytearray(b"ab"), "when": plus2, "pay_t": naive},
        {"id": "far", "n": 0, "x": 0.0, "flag": False, "blob": b"", "when": Timestamp(-2 ** 62)},
    ]
    up = db.upload("cl-attrs", [Point([1.0, float(i)], v) for i, v in enumerate(values)])
    got = db.get("cl-attrs", ["ünïcødé ✓", "numpy", "far"])
    a0, a1, a2 = (g.attributes for g in got)
    assert a0 == {"id": "ünïcødé ✓", "n": -(2 ** 63), "x": -1.5e300, "flag": True,
                  "blob": b"\x00\xff\x00", "when": aware, "pay_s": "", "pay_i": 2 ** 63 - 1,
                  "pay_f": float("inf"), "pay_b": False, "pay_bytes": b"",
                  "pay_t": dt.datetime(1970, 1, 1, tzinfo=UTC)}
    assert isinstance(a0["n"], int) and isinstance(a0["flag"], bool)
    assert a0["when"].tzinfo is not None and a0["when"].utcoffset() == dt.timedelta(0)
    assert a1["n"] == -7 and a1["x"] == 0.25 and a1["flag"] is False and a1["blob"] == b"ab"
    assert a1["when"] == plus2 == aware  # the same instant
    assert a1["pay_t"] == naive.replace(tzinfo=UTC)
    assert a2["when"] == Timestamp(-2 ** 62)  # outside datetime's range: kept as micros
    # The same values come back in search hits, and work as split filters.
    db.create_index("cl-attrs-ix", data_source="cl-attrs", metric="l2",
                    split_attributes=["when", "flag"])
    hits = db.search("cl-attrs-ix", [1.0, 0.0], k=5, min_seq=up,
                     split_filter={"when": aware, "flag": True})[0]
    assert [h.id for h in hits] == ["ünïcødé ✓"] and hits[0].attributes == a0
    hits = db.search("cl-attrs-ix", [1.0, 0.0], k=5, split_filter={"when": plus2})[0]
    assert [h.id for h in hits] == ["ünïcødé ✓", "numpy"]
    # A timestamp id given as plain micros is typed by the schema.
    db.create_data_source("cl-tsid", dimension=1, permanent_attributes={"t": "timestamp"},
                          id_attributes=["t"])
    db.upload("cl-tsid", [Point([1.0], {"t": Timestamp(42)})])
    assert db.get("cl-tsid", [42])[0].attributes["t"] == Timestamp(42).to_datetime()
    # Retyping a permanent attribute is refused with the server's message.
    with pytest.raises(InvalidArgument) as e:
        db.upload("cl-attrs", [Point([0, 0], dict(values[2], n="zero"))])
    assert e.value.details.startswith('points[0].attributes["n"]')
    with pytest.raises(TypeError, match="attributes\\['bad'\\]"):
        db.upload("cl-attrs", [Point([0, 0], dict(values[2], bad=object()))])
    with pytest.raises(TypeError, match="a date has no time"):
        db.upload("cl-attrs", [Point([0, 0], dict(values[2], bad=dt.date(2020, 1, 1)))])


# ------------------------------------------------------------------------ model spaces

@pytest.fixture(scope="module")
def spaces(db, models):
    d = models["dir"]
    g = db.create_model_space("cl-gray", str(d / "pool_gray.pt"), input=ImageInput(28, 28),
                              output_dim=49, metric="cosine")
    # A new model space's index is empty, so the create returns it READY: searchable at once.
    assert g.model_state == "LOADED" and g.detail == "" and g.index_status.state == "READY"
    r = db.create_model_space("cl-rgb", d / "pool_rgb.pt",
                              input=ImageInput(28, 28, channels=3, resize="fit",
                                               mean=[0.5, 0.5, 0.5], std=[0.25, 0.25, 0.25]),
                              output_dim=147, metric="l2", index=Hnsw(m=8),
                              permanent_attributes={"owner": "string"},
                              split_attributes=["owner"])
    assert r.index_status.state == "READY"
    db.create_model_space("cl-vec", str(d / "tensor16.pt"), input=TensorInput([16]),
                          output_dim=8, metric="inner_product")
    return d


def test_model_space_catalog(db, spaces):
    g = db.get_model_space("cl-gray")
    assert (g.name, g.output_dim, g.metric, g.index) == ("cl-gray", 49, "cosine", Flat())
    assert g.input == ImageInput(28, 28, 1, "stretch", (0.0,), (1.0,))
    assert g.model_path.endswith("pool_gray.pt") and g.index_status.state == "READY"
    r = db.get_model_space("cl-rgb")
    assert r.input == ImageInput(28, 28, 3, "fit", (0.5, 0.5, 0.5), (0.25, 0.25, 0.25))
    assert r.index == Hnsw(8, 200, 64) and r.metric == "l2"
    assert r.permanent_attributes == {"owner": "string"} and r.split_attributes == ["owner"]
    assert db.get_model_space("cl-vec").input == TensorInput((16,))
    names = [s.name for s in db.list_model_spaces()]
    assert names == sorted(names) and {"cl-gray", "cl-rgb", "cl-vec"} <= set(names)
    src = db.get_data_source("cl-rgb@space")
    assert src.permanent_attributes == {"owner": "string", "id": "string"}
    assert src.dimension == 147 and "cl-rgb@space" in src.indices
    assert db.get_index("cl-rgb", "space").algorithm == Hnsw(8, 200, 64)
    with pytest.raises(AlreadyExists, match="model space cl-gray already exists"):
        db.create_model_space("cl-gray", str(spaces / "pool_gray.pt"), input=ImageInput(28, 28),
                              output_dim=49)
    with pytest.raises(NotFound) as e:
        db.get_model_space("cl-nope")
    assert e.value.details == 'name: model space "cl-nope" does not exist'


def test_image_inputs_are_equivalent(db, spaces, tmp_path):
    gray = (RNG.random((28, 28)) * 255).astype(np.uint8)
    png = png_bytes(gray)
    path = tmp_path / "gray.png"
    path.write_bytes(png)
    pil = Image.open(io.BytesIO(png))
    ref = db.embed(image=png, model_spaces="cl-gray")["cl-gray"]
    assert ref.shape == (49,) and ref.dtype == np.float32
    assert np.linalg.norm(ref) == pytest.approx(1.0, abs=1e-5)
    # The pooled pixels, normalised: what the fixture model computes.
    pooled = gray.astype(np.float64).reshape(7, 4, 7, 4).mean(axis=(1, 3)).ravel() / 255.0
    np.testing.assert_allclose(ref, pooled / np.linalg.norm(pooled), atol=1e-5)
    for form in (png, bytearray(png), str(path), path, pil, gray, gray[:, :, None]):
        got = db.embed(image=form, model_spaces=["cl-gray"])["cl-gray"]
        np.testing.assert_array_equal(got, ref, err_msg=type(form).__name__)
    # JPEG is lossy: close, not equal.
    jpg = db.embed(image=jpeg_bytes(gray, quality=95), model_spaces=["cl-gray"])["cl-gray"]
    assert float(jpg @ ref) > 0.99
    # RGB: an HxWx3 array and the PIL image of it give the same vector; a gray PIL image is
    # converted by the server (gray -> R = G = B).
    rgb = (RNG.random((28, 28, 3)) * 255).astype(np.uint8)
    a = db.embed(image=rgb, model_spaces="cl-rgb")["cl-rgb"]
    b = db.embed(image=Image.fromarray(rgb), model_spaces="cl-rgb")["cl-rgb"]
    assert a.shape == (147,)
    np.testing.assert_array_equal(a, b)
    c = db.embed(image=Image.fromarray(gray).convert("RGB"), model_spaces="cl-rgb")["cl-rgb"]
    d = db.embed(image=pil, model_spaces="cl-rgb")["cl-rgb"]
    np.testing.assert_allclose(c, d, atol=1e-5)
    with pytest.raises(TypeError, match="uint8"):
        db.embed(image=gray.astype(np.float32))
    with pytest.raises(TypeError, match="unsupported image"):
        db.embed(image=12345)
    with pytest.raises(ValueError, match="either image or tensor"):
        db.embed()


def test_model_space_items(db, spaces):
    imgs = [(RNG.random((28, 28)) * 255).astype(np.uint8) for _ in range(6)]
    seqs = {}
    for i, im in enumerate(imgs):
        r = db.add_image(f"img{i}", im, model_spaces=["cl-gray"], attributes={"n": i},
                         return_vectors=(i == 0))
        assert isinstance(r, AddResult) and list(r) == ["cl-gray"]
        seqs = r
        if i == 0:
            np.testing.assert_array_equal(r.vectors["cl-gray"],
                                          db.embed(image=im, model_spaces="cl-gray")["cl-gray"])
        else:
            assert r.vectors == {}
    res = db.find_similar_image(imgs[3], "cl-gray", k=3, min_seq=seqs, retrieve_vectors=True)
    assert isinstance(res, SimilarResults) and list(res) == ["cl-gray"] and res.missing == []
    top = res["cl-gray"][0]
    assert top.id == "img3" and top.attributes == {"id": "img3", "n": 3}
    assert top.distance == pytest.approx(0.0, abs=1e-5) and top.vector.shape == (49,)
    by_id = db.find_similar_by_id("img3", ["cl-gray", "cl-rgb"], k=10)
    assert list(by_id) == ["cl-gray"] and by_id.missing == ["cl-rgb"]
    assert "img3" not in [h.id for h in by_id["cl-gray"]] and len(by_id["cl-gray"]) == 5
    rm = db.remove_image("img3", model_spaces="cl-gray")
    assert rm["cl-gray"] > seqs["cl-gray"]
    after = db.find_similar_image(imgs[3], "cl-gray", k=10, min_seq=rm)["cl-gray"]
    assert "img3" not in [h.id for h in after] and len(after) == 5
    # Permanent attributes and splits of a space.
    rgb = (RNG.random((28, 28, 3)) * 255).astype(np.uint8)
    w = db.add_image(7, rgb, "cl-rgb", attributes={"owner": "ann"})  # int ids become strings
    db.add_image("x8", rgb[::-1], "cl-rgb", attributes={"owner": "bob"})
    hit = db.find_similar_image(rgb, "cl-rgb", k=2, split_filter={"owner": "bob"},
                                min_seq={"cl-rgb": w["cl-rgb"] + 1}, ef_search=32)["cl-rgb"]
    assert [h.id for h in hit] == ["x8"]
    with pytest.raises(InvalidArgument, match="owner"):
        db.add_image("x9", rgb, "cl-rgb")
    # Tensors.
    t = RNG.standard_normal(16).astype(np.float32)
    e = db.embed(tensor=t, model_spaces="cl-vec")["cl-vec"]
    assert e.shape == (8,) and np.linalg.norm(e) == pytest.approx(1, abs=1e-5)
    w = db.add_tensor("t1", t, "cl-vec", return_vectors=True)
    np.testing.assert_array_equal(w.vectors["cl-vec"], e)
    db.add_tensor("t2", -t, "cl-vec", attributes={"sign": -1})
    hits = db.find_similar_tensor(t.tolist(), "cl-vec", k=2, min_seq={"cl-vec": w["cl-vec"] + 1})
    assert [h.id for h in hits["cl-vec"]] == ["t1", "t2"]
    assert hits["cl-vec"][0].distance == pytest.approx(1.0, abs=1e-5)  # inner product, unit
    assert hits["cl-vec"][1].attributes == {"id": "t2", "sign": -1}
    assert db.remove_image("t2", ["cl-vec"]) == {"cl-vec": w["cl-vec"] + 2}
    # A space's own data source and index are read-only through the catalog.
    with pytest.raises(FailedPrecondition, match="belongs to model space cl-vec"):
        db.drop_data_source("cl-vec@space")
    with pytest.raises(TypeError, match="item ids are strings"):
        db.add_tensor(1.5, t, "cl-vec")


def test_drop_model_space(db, spaces):
    db.create_model_space("cl-tmp", str(spaces / "tensor16.pt"), input=TensorInput([16]),
                          output_dim=8, metric="cosine")
    db.add_tensor("a", np.ones(16), "cl-tmp")
    db.drop_model_space("cl-tmp")
    with pytest.raises(NotFound, match='model space "cl-tmp" does not exist'):
        db.drop_model_space("cl-tmp")
    with pytest.raises(NotFound, match='model_spaces\\[0\\]: model space "cl-tmp" does not'):
        db.add_tensor("a", np.ones(16), "cl-tmp")
    assert "cl-tmp@space" not in [d.ref for d in db.list_data_sources()]


# ------------------------------------------------------------------------ errors

def test_status_codes_map_to_exceptions_with_server_message(db, dense):
    with pytest.raises(InvalidArgument) as e:
        db.upload("cl-dense", [Point([1.0, 2.0], {"id": 1, "grp": "a"})])
    err = e.value
    assert isinstance(err, HilbertError) and err.code == grpc.StatusCode.INVALID_ARGUMENT
    assert str(err) == err.details == \
        "points[0].vector: has dimension 2, the data source expects 16"
    assert "InvalidArgument" in repr(err) and "INVALID_ARGUMENT" in repr(err)
    with pytest.raises(InvalidArgument, match="k: must be >= 1, got 0"):
        db.search("cl-flat", np.zeros(16), k=0)
    with pytest.raises(InvalidArgument, match="min_seq: .* is past the last seq"):
        db.search("cl-flat", np.zeros(16), k=1, min_seq=10 ** 9)
    with pytest.raises(ResourceExhausted, match="limits.max_results"):
        db.search("cl-flat", np.zeros((101, 16)), k=10000)
    with pytest.raises(NotFound, match="index: nope@7 does not exist"):
        db.search("nope@7", np.zeros(16))
    # A deadline shorter than a min_seq wait can be.
    with client_with_timeout(db, 1e-4) as fast:
        with pytest.raises(DeadlineExceeded) as e:
            fast.search("cl-flat", np.zeros((50, 16)), k=300)
        assert e.value.code == grpc.StatusCode.DEADLINE_EXCEEDED


def client_with_timeout(db: Client, timeout: float) -> Client:
    return Client(db.target, timeout=timeout)


class _FakeRpcError(grpc.RpcError):
    def __init__(self, code, details):
        self._code, self._details = code, details

    def code(self):
        return self._code

    def details(self):
        return self._details


@pytest.mark.parametrize("code, cls", [
    (grpc.StatusCode.INVALID_ARGUMENT, hilbertdb.InvalidArgument),
    (grpc.StatusCode.NOT_FOUND, hilbertdb.NotFound),
    (grpc.StatusCode.ALREADY_EXISTS, hilbertdb.AlreadyExists),
    (grpc.StatusCode.FAILED_PRECONDITION, hilbertdb.FailedPrecondition),
    (grpc.StatusCode.RESOURCE_EXHAUSTED, hilbertdb.ResourceExhausted),
    (grpc.StatusCode.DEADLINE_EXCEEDED, hilbertdb.DeadlineExceeded),
    (grpc.StatusCode.UNAVAILABLE, hilbertdb.Unavailable),
    (grpc.StatusCode.UNIMPLEMENTED, hilbertdb.Unimplemented),
    (grpc.StatusCode.INTERNAL, hilbertdb.Internal),
    (grpc.StatusCode.DATA_LOSS, hilbertdb.DataLoss),
    (grpc.StatusCode.PERMISSION_DENIED, hilbertdb.HilbertError),
    (grpc.StatusCode.CANCELLED, hilbertdb.HilbertError),
])
def test_error_classes(code, cls):
    err = from_rpc_error(_FakeRpcError(code, "field: what went wrong"))
    assert type(err) is cls and err.code == code and str(err) == "field: what went wrong"
    assert isinstance(err, HilbertError)


def test_unimplemented_method_from_the_real_server(module_server):
    """The server answers UNIMPLEMENTED for a method it does not know; the client's mapping
    turns it into Unimplemented."""
    with client(module_server) as c:
        call = c.channel.unary_unary("/hilbert.v1.Search/NoSuchMethod",
                                     request_serializer=lambda b: b,
                                     response_deserializer=lambda b: b)
        with pytest.raises(hilbertdb.Unimplemented):
            c._call(call, b"")


def test_public_names():
    for name in hilbertdb.__all__:
        assert getattr(hilbertdb, name) is not None
    with pytest.raises(AttributeError):
        hilbertdb.NoSuchThing  # noqa: B018
    assert Path(hilbertdb.__file__).parent.joinpath("py.typed").exists()


def test_upload_of_an_array_with_attribute_columns(db):
    """A numpy array plus columns goes in batches, written straight to wire bytes: what Get
    returns is exactly what was sent, every type of column included."""
    db.create_data_source("cl-bulk", dimension=12,
                          permanent_attributes={"id": "int64", "grp": "string",
                                                "at": "timestamp"},
                          id_attributes=["id"])
    n = 250
    x = RNG.standard_normal((n, 12)).astype(np.float64)  # converted to float32
    cols = {"id": np.arange(n) - 100, "grp": [f"g{i % 4}" for i in range(n)],
            "at": np.arange(n) * 1_000_000, "price": np.linspace(-1, 1, n),
            "ok": np.arange(n) % 3 == 0, "raw": [bytes([i % 256, 0]) for i in range(n)],
            "title": ["ünïcode ✓"] * n}
    up = db.upload("cl-bulk", x, attributes=cols, batch_size=100)  # 3 uploads
    assert (up.first_seq, up.last_seq) == (1, n)
    got = db.get("cl-bulk", [-100, 0, 149])
    for p, i in zip(got, [0, 100, 249]):
        np.testing.assert_array_equal(p.vector, x[i].astype(np.float32))
        assert p.attributes["id"] == i - 100 and p.attributes["grp"] == f"g{i % 4}"
        assert p.attributes["at"] == dt.datetime.fromtimestamp(i, tz=dt.timezone.utc)
        assert p.attributes["price"] == pytest.approx(cols["price"][i], abs=0)
        assert p.attributes["ok"] == (i % 3 == 0) and p.attributes["raw"] == bytes([i % 256, 0])
        assert p.attributes["title"] == "ünïcode ✓"
    # Default batching: one call here (small), the source has every point once.
    db.upload("cl-bulk", x[:10], attributes={"id": np.arange(10) + 1000, "grp": ["g"] * 10,
                                             "at": np.zeros(10, np.int64)})
    assert db.get_data_source("cl-bulk").point_count == n + 10


def test_upload_of_an_array_refuses_bad_input(db):
    db.create_data_source("cl-bulk-bad", dimension=4, permanent_attributes={"id": "int64"},
                          id_attributes=["id"])
    x = np.zeros((3, 4), np.float32)
    with pytest.raises(ValueError, match="must be 2-d"):
        db.upload("cl-bulk-bad", np.zeros(4, np.float32), attributes={"id": [1]})
    with pytest.raises(ValueError, match=r"attributes\['id'\] has 2 values for 3 vectors"):
        db.upload("cl-bulk-bad", x, attributes={"id": [1, 2]})
    with pytest.raises(TypeError, match=r"attributes\['o'\]: cannot tell the type"):
        db.upload("cl-bulk-bad", x, attributes={"id": [1, 2, 3], "o": [object()] * 3})
    with pytest.raises(TypeError, match="attributes= goes with a numpy array"):
        db.upload("cl-bulk-bad", [Point(x[0], {"id": 1})], attributes={"id": [1]})
    # What the server checks it still checks, naming the field: the dimension, the ids.
    with pytest.raises(InvalidArgument, match=r"points\[0\]\.vector"):
        db.upload("cl-bulk-bad", np.zeros((2, 5), np.float32), attributes={"id": [1, 2]})
    with pytest.raises(InvalidArgument, match=r"points\[0\].*id"):
        db.upload("cl-bulk-bad", x)
    assert db.get_data_source("cl-bulk-bad").point_count == 0
