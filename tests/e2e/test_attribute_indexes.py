"""Attribute indexes (IndexSpec.indexed_attributes): kept current through uploads, payload
changes and deletes, saved in snapshots and loaded after a restart, declared in a config file,
used by FAISS (an IDSelector) and the sparse engine, and refused with the field named when the
declaration is bad. Results are checked against numpy over the points that pass.
"""
from __future__ import annotations

import grpc
import numpy as np
import pytest

from hilbert.v1 import points_pb2 as P, types_pb2 as T
from hilbertdb import Attr, Faiss, Hnsw, InvalidArgument, Point, Sparse, SparseVector
from hilbertdb.filters import filter_in
from ann_helpers import wait_log
from helpers import TIMEOUT, expect_status, fmnist
from model_fixtures import client

N = 3000
K = 10
TAGS = ["a", "b", "c"]


def attrs_of(i: int) -> dict:
    return {"id": i, "tag": TAGS[i % 3], "score": float(i % 500)}


def brute(x, q, ids, k):
    d = ((q[:, None, :].astype(np.float64) - x[ids][None, :, :]) ** 2).sum(-1)
    order = np.argsort(d, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(d, order, axis=1)


def check(db, index, x, q, f, passing, plan_prefix, up):
    """Every query: min(K, len(passing)) hits that pass, and (flat) the exact distances."""
    r = db.search(index, q, k=K, filter=f, min_seq=up, explain=True)
    assert all(p.startswith(plan_prefix) for p in r.plans), (plan_prefix, r.plans)
    for i in range(len(q)):
        assert len(r[i]) == min(K, len(passing)), (index, i)
        assert {h.attributes["id"] for h in r[i]} <= set(passing)
    return r


def test_changes_snapshots_and_restart(make_server):
    s = make_server()
    db = client(s)
    x, _ = fmnist("train", N)
    q = np.asarray(fmnist("test", 12)[0])
    db.create_data_source("ai", dimension=784, permanent_attributes={"id": "int64"},
                          id_attributes=["id"])
    db.create_index("ai-hnsw", data_source="ai", algorithm=Hnsw(m=16, ef_construction=100),
                    metric="l2", indexed_attributes=["tag", "score"])
    up = db.upload("ai", [Point(x[i], attrs_of(i)) for i in range(N)])
    db.wait_for_index("ai-hnsw", timeout=300)
    st = db.get_index("ai-hnsw").status
    assert st.attribute_indexes == {"tag": (N, 3), "score": (N, 0)}, st.attribute_indexes
    assert st.attribute_index_bytes > 0
    assert db.get_index("ai-hnsw").indexed_attributes == ["tag", "score"]

    ids = np.arange(N)
    f = (Attr("tag") == "a") & (Attr("score") < 100)
    passing = list(ids[(ids % 3 == 0) & (ids % 500 < 100)])
    r = check(db, "ai-hnsw", x, q, f, passing, "attribute indexes: exactly", up)
    np.testing.assert_allclose([[h.distance for h in hits] for hits in r],
                               brute(x, q, passing, K), rtol=2e-4, atol=1e-2)

    # A payload change moves points between postings; a delete takes them out.
    moved = [int(i) for i in passing[:40]]
    seq = db.set_payload("ai", [{"id": i} for i in moved], {"tag": "z"})
    st = db.wait_for_index("ai-hnsw", timeout=120).status
    assert st.attribute_indexes["tag"] == (N, 4)
    r = check(db, "ai-hnsw", x, q, Attr("tag") == "z", moved, "attribute indexes: exactly 40",
              seq)
    n_gone, seq = db.delete_by_filter("ai", Attr("tag") == "z")
    assert n_gone == 40
    st = db.wait_for_index("ai-hnsw", timeout=120).status
    assert st.attribute_indexes == {"tag": (N - 40, 3), "score": (N - 40, 0)}
    assert db.search("ai-hnsw", q[:2], k=K, filter=Attr("tag") == "z", min_seq=seq)[0] == []
    rest = [i for i in passing if i not in set(moved)]
    before = check(db, "ai-hnsw", x, q, f, rest, f"attribute indexes: exactly {len(rest)}", seq)

    # A clean stop writes a snapshot with the attribute index; the restart loads it.
    s.restart()
    db = client(s)
    st = db.wait_for_index("ai-hnsw", timeout=120).status
    wait_log(s, r"ai-hnsw@1: loaded snapshot at seq")  # not rebuilt from the data source
    assert st.attribute_indexes == {"tag": (N - 40, 3), "score": (N - 40, 0)}
    after = check(db, "ai-hnsw", x, q, f, rest, f"attribute indexes: exactly {len(rest)}", seq)
    assert [[h.attributes["id"] for h in hits] for hits in after] == \
        [[h.attributes["id"] for h in hits] for hits in before]


def test_faiss_and_sparse_search_only_passing_labels(make_server):
    s = make_server()
    db = client(s)
    x, _ = fmnist("train", N)
    q = np.asarray(fmnist("test", 8)[0])
    db.create_data_source("fa", dimension=784, permanent_attributes={"id": "int64"},
                          id_attributes=["id"])
    db.create_index("fa-ivf", data_source="fa", algorithm=Faiss("IVF16,Flat", nprobe=16,
                                                                train_size=1000),
                    metric="l2", indexed_attributes=["score"])
    up = db.upload("fa", [Point(x[i], attrs_of(i)) for i in range(N)])
    db.wait_for_index("fa-ivf", timeout=300)
    ids = np.arange(N)
    f = Attr("score") >= 100  # 80% pass: the IVF search takes the label set as an IDSelector
    passing = list(ids[ids % 500 >= 100])
    r = check(db, "fa-ivf", x, q, f, passing, "faiss search within the attribute indexes'", up)
    # nprobe 16 of 16 lists: the IVF search is exact over the passing points.
    np.testing.assert_allclose([[h.distance for h in hits] for hits in r],
                               brute(x, q, passing, K), rtol=2e-4, atol=1e-2)

    db.create_data_source("sp", dimension=100, sparse=True,
                          permanent_attributes={"id": "int64"}, id_attributes=["id"])
    db.create_index("sp-ix", data_source="sp", algorithm=Sparse(), metric="cosine",
                    indexed_attributes=["tag"])
    rng = np.random.default_rng(7)
    pts = []
    for i in range(4500):
        idx = np.sort(rng.choice(100, 5, replace=False))
        pts.append(Point(SparseVector(idx.tolist(), rng.random(5).tolist()), attrs_of(i)))
    up = db.upload("sp", pts)
    db.wait_for_index("sp-ix", timeout=300)
    sq = SparseVector([1, 2, 3], [1.0, 1.0, 1.0])
    f = Attr("tag").one_of(["a", "b"])  # 3000 of 4500 pass: the sparse engine skips "c"
    r = db.search("sp-ix", sq, k=K, filter=f, min_seq=up, explain=True)
    assert r.plans[0].startswith("sparse search within the attribute indexes' exactly 3000")
    assert len(r[0]) == K and all(h.attributes["tag"] in ("a", "b") for h in r[0])
    unfiltered = db.search("sp-ix", sq, k=3 * K, min_seq=up)[0]
    want = [h.distance for h in unfiltered if h.attributes["tag"] in ("a", "b")][:K]
    np.testing.assert_allclose([h.distance for h in r[0]], want, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("attrs, field, words", [
    (["tag", "tag"], "spec.indexed_attributes[1]", "listed twice"),
    ([""], "spec.indexed_attributes[0]", ""),
    (["bad name!"], "spec.indexed_attributes[0]", ""),
    ([f"a{i}" for i in range(33)], "spec.indexed_attributes", "limit of 32"),
])
def test_bad_declarations_are_named(make_server, attrs, field, words):
    s = make_server()
    db = client(s)
    db.create_data_source("bd", dimension=4, permanent_attributes={"id": "int64"},
                          id_attributes=["id"])
    with pytest.raises(InvalidArgument) as e:
        db.create_index("bd-ix", data_source="bd", metric="l2", indexed_attributes=attrs)
    assert field in str(e.value) and words in str(e.value), str(e.value)
    assert [i.name for i in db.list_indices()] == []


def test_declared_in_a_config_file(make_server, tmp_path):
    cfg = tmp_path / "ai.yaml"
    cfg.write_text("data_sources:\n  - name: cf\n    version: '1'\n    dimension: 2\n"
                   "    permanent_attributes: [{name: id, type: int64}]\n"
                   "    id_attributes: [id]\n"
                   "indices:\n  - name: cf-ix\n    version: '1'\n"
                   "    data_source: {name: cf, version: '1'}\n"
                   "    algorithm: flat\n    metric: l2\n"
                   "    indexed_attributes: [color]\n")
    s = make_server(config=cfg)
    db = client(s)
    up = db.upload("cf", [Point([float(i), 0.0], {"id": i, "color": "red" if i % 2 else "blue"})
                          for i in range(20)])
    st = db.wait_for_index("cf-ix", timeout=60).status
    assert st.attribute_indexes == {"color": (20, 2)}
    r = db.search("cf-ix", [0.0, 0.0], k=3, filter=Attr("color") == "red", explain=True)
    assert [h.attributes["id"] for h in r[0]] == [1, 3, 5]
    # 10 of 20 points pass: a search would ask for as many, so they are read one by one.
    assert r.plans[0].startswith("attribute indexes: exactly 10 points pass, each read"), r.plans


def test_count_on_an_index(make_server):
    """Count with an index: from its attribute indexes when they decide the filter (in memory,
    as of the index's applied seq), else over its data source; both exact."""
    s = make_server()
    db = client(s)
    db.create_data_source("cn", dimension=2, permanent_attributes={"id": "int64"},
                          id_attributes=["id"])
    db.create_index("cn-ix", data_source="cn", metric="l2", indexed_attributes=["tag", "score"])
    db.create_index("cn-plain", data_source="cn", metric="l2")
    db.upload("cn", [Point([float(i), 0.0], attrs_of(i)) for i in range(N)])
    db.wait_for_index("cn-ix", timeout=120)
    db.wait_for_index("cn-plain", timeout=120)  # a building index answers UNAVAILABLE
    ids = np.arange(N)
    f = Attr("tag").one_of(["a", "c"]) & ~(Attr("score") >= 250)
    want = int(((ids % 3 != 1) & (ids % 500 < 250)).sum())
    r = s.points.Count(P.CountRequest(index=T.IndexRef(name="cn-ix", version="1"),
                                      filter=filter_in(f)), timeout=TIMEOUT)
    assert (r.count, r.from_index) == (want, True)
    assert db.count(index="cn-ix", filter=f) == db.count("cn", f) == want
    # Not decided by the index (id has none), or an index without any: read from the source.
    g = f & (Attr("id") < 1000)
    want_g = int(((ids % 3 != 1) & (ids % 500 < 250) & (ids < 1000)).sum())
    for name, flt, n in (("cn-ix", g, want_g), ("cn-plain", f, want)):
        r = s.points.Count(P.CountRequest(index=T.IndexRef(name=name, version="1"),
                                          filter=filter_in(flt)), timeout=TIMEOUT)
        assert (r.count, r.from_index) == (n, False)
    with expect_status(grpc.StatusCode.INVALID_ARGUMENT, "give data_source or index, not both"):
        s.points.Count(P.CountRequest(index=T.IndexRef(name="cn-ix", version="1"),
                                      data_source=T.DataSourceRef(name="cn", version="1")),
                       timeout=TIMEOUT)
    with expect_status(grpc.StatusCode.NOT_FOUND, "nope"):
        s.points.Count(P.CountRequest(index=T.IndexRef(name="nope", version="1")),
                       timeout=TIMEOUT)
    with pytest.raises(ValueError):
        db.count()
