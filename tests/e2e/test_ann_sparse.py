"""Sparse data sources and the exact sparse engine (COSINE and JACCARD), against a numpy brute
force: distances as the API defines them (cosine: 1 - cos, 1 when either side has no non-zero
value; jaccard: 1 - |A n B| / |A u B| over the index sets, values ignored), ties broken by the
order in which points were first uploaded (the server's internal point id). Also split
filters, Get and retrieve_vectors round trips, validation errors, and a restart.
"""
import math

import grpc
import numpy as np
import pytest

from ann_helpers import (JACCARD, SparseModel, ann_spec, check_sparse_knn, create, run_search,
                         search_req, sparse_of, sparse_point, sparse_vec)
from helpers import (COSINE, INT64, IP, L2, STRING, TIMEOUT, C, T, assert_serving,
                     create_source, expect_status, get_points, get_source, point, source_spec,
                     tombstone, upload, wait_ready)

DIM = 50000
VOCAB = 2000
N = 1500
LANGS = ("en", "de", "fr")


def random_sparse(rng, lo=0, hi=40):
    n = int(rng.integers(lo, hi))
    # Zipf-like vocabulary, so that vectors overlap; now and then a rare index anywhere.
    words = np.minimum((rng.pareto(1.2, size=n) * 40).astype(np.int64), VOCAB - 1)
    idx = set(int(w) for w in words)
    if rng.random() < 0.3:
        idx.add(int(rng.integers(VOCAB, DIM)))
    idx = sorted(idx)
    vals = rng.gamma(2.0, 1.0, size=len(idx)).astype(np.float32)
    neg = rng.random(len(idx)) < 0.1
    vals[neg] = -vals[neg]
    vals[rng.random(len(idx)) < 0.03] = 0.0
    return idx, vals


@pytest.fixture(scope="module")
def loaded(module_server):
    s = module_server
    rng = np.random.default_rng(99)
    create_source(s, source_spec("sp", DIM, [("id", INT64), ("lang", STRING)], ["id"],
                                 vector_kind=C.VECTOR_KIND_SPARSE))
    create(s, ann_spec("cos", "sp", COSINE, "sparse"))
    create(s, ann_spec("jac", "sp", JACCARD, "sparse"))
    vecs = {i: random_sparse(rng) for i in range(N)}
    vecs[0] = ([], np.zeros(0, np.float32))                   # empty
    vecs[1] = ([0, 7, DIM - 1], np.array([1, 2, 3], np.float32))  # the extreme indices
    vecs[2] = ([3, 5], np.array([0, 0], np.float32))           # only zero values
    vecs[3] = list(vecs[4][0]), vecs[4][1].copy()              # a duplicate of 4
    lang = {i: LANGS[i % 3] for i in range(N)}
    order = {}
    for start in range(0, N, 500):
        r = upload(s, "sp", [sparse_point(*vecs[i], {"id": i, "lang": lang[i]})
                             for i in range(start, min(start + 500, N))])
        for j in range(start, min(start + 500, N)):
            order[j] = r.first_seq + (j - start)
    # Indices created on the loaded source are built from it.
    create(s, ann_spec("cos-lang", "sp", COSINE, "sparse", splits=["lang"]))
    create(s, ann_spec("jac-lang", "sp", JACCARD, "sparse", splits=["lang"]))
    for name in ("cos", "jac", "cos-lang", "jac-lang"):
        st = wait_ready(s, name).status
        assert st.size == N, st
    qrng = np.random.default_rng(100)
    queries = []
    while len(queries) < 40:
        q = random_sparse(qrng, 1, 20)
        if np.any(q[1] != 0):
            queries.append(q)
    queries.append((list(vecs[10][0]), vecs[10][1]))      # a stored vector: distance 0
    queries.append(([DIM - 2], np.array([1.0], np.float32)))  # matches nothing: all ties at 1
    return s, vecs, lang, order, queries


METRIC = {"cos": COSINE, "jac": JACCARD, "cos-lang": COSINE, "jac-lang": JACCARD}


@pytest.mark.parametrize("name", ["cos", "jac", "cos-lang", "jac-lang"])
@pytest.mark.parametrize("k", [1, 10, 100])
def test_results_equal_brute_force(loaded, name, k):
    s, vecs, _, order, queries = loaded
    r = run_search(s, name, [sparse_vec(*q) for q in queries], k)
    check_sparse_knn(r, queries, METRIC[name], vecs, k, order_key=order, ctx=name)


def test_ties_and_special_vectors(loaded):
    s, vecs, _, order, queries = loaded
    # Nothing overlaps: every distance is 1; the first-uploaded points come first.
    for name in ("cos", "jac"):
        res = run_search(s, name, [sparse_vec([DIM - 2], [1.0])], 5).results[0]
        assert [h.attributes["id"].int64_value for h in res.hits] == [0, 1, 2, 3, 4]
        assert all(h.distance == 1.0 for h in res.hits)
    # A stored vector finds itself (and its duplicate) at distance 0.
    res = run_search(s, "cos", [sparse_vec(*vecs[4])], 2).results[0]
    assert sorted(h.attributes["id"].int64_value for h in res.hits) == [3, 4]
    assert all(abs(h.distance) < 1e-6 for h in res.hits)
    # Jaccard ignores values: a query of zeros is fine and matches id 2 ({3, 5}) exactly.
    res = run_search(s, "jac", [sparse_vec([3, 5], [0.0, 0.0])], 1).results[0]
    assert res.hits[0].attributes["id"].int64_value == 2 and res.hits[0].distance == 0.0
    # Cosine: id 2 has no non-zero value, so its distance is 1 to anything.
    sm = SparseModel({2: vecs[2]})
    assert sm.distances(COSINE, ([3, 5], [1.0, 1.0]))[0] == 1.0
    # The extreme indices 0 and DIM - 1 are searchable.
    res = run_search(s, "jac", [sparse_vec([0, DIM - 1], [1, 1])], 1).results[0]
    assert res.hits[0].attributes["id"].int64_value == 1
    assert res.hits[0].distance == pytest.approx(1 - 2 / 3, abs=1e-6)
    # k above the number of points returns every point once.
    for name in ("cos", "jac"):
        res = run_search(s, name, [sparse_vec(*queries[0])], N + 10).results[0]
        assert len(res.hits) == N
        assert len({h.attributes["id"].int64_value for h in res.hits}) == N


def test_split_filters(loaded):
    s, vecs, lang, order, queries = loaded
    for name, metric in (("cos-lang", COSINE), ("jac-lang", JACCARD)):
        for lg in LANGS:
            sub = {i: v for i, v in vecs.items() if lang[i] == lg}
            r = run_search(s, name, [sparse_vec(*q) for q in queries[:10]], 10,
                           split_filter={"lang": lg})
            check_sparse_knn(r, queries[:10], metric, sub, 10, order_key=order,
                             ctx=f"{name} lang={lg}")
            for res in r.results:
                assert all(h.attributes["lang"].string_value == lg for h in res.hits)
        r = run_search(s, name, [sparse_vec(*queries[0])], 10, split_filter={"lang": "xx"})
        assert len(r.results[0].hits) == 0
        with expect_status(grpc.StatusCode.INVALID_ARGUMENT, "split_filter", "lang"):
            run_search(s, name, [sparse_vec(*queries[0])], 10, split_filter={"lang": 3})


def test_get_and_retrieve_vectors_round_trip(loaded):
    s, vecs, _, _, queries = loaded
    ids = [0, 1, 2, 3, 17, 1499]
    resp = get_points(s, "sp", [{"id": i} for i in ids])
    for i, g in zip(ids, resp.results):
        assert g.found
        idx, vals = sparse_of(g.point.vector)
        assert idx == list(vecs[i][0]) and np.array_equal(vals, vecs[i][1]), i
    for name in ("cos", "jac-lang"):
        r = run_search(s, name, [sparse_vec(*q) for q in queries[:5]], 10, retrieve_vectors=True)
        for res in r.results:
            for h in res.hits:
                i = h.attributes["id"].int64_value
                idx, vals = sparse_of(h.vector)
                assert idx == list(vecs[i][0]) and np.array_equal(vals, vecs[i][1]), i


def test_validation_errors(loaded):
    s = loaded[0]
    create_source(s, source_spec("dense", 4, [("id", INT64)], ["id"]))
    inval = grpc.StatusCode.INVALID_ARGUMENT

    def up(src, v):
        p = T.DataPoint(vector=v)
        p.attributes["id"].int64_value = 10 ** 6
        p.attributes["lang"].string_value = "en"
        if src == "dense":
            del p.attributes["lang"]
        return upload(s, src, [point(None, {"id": 10 ** 6 + 1, "lang": "en"},
                                     deleted=True), p]) if src == "sp" else upload(s, src, [p])

    cases = [
        ([5, 3], [1, 1], "points[1].vector.sparse.indices[1]", "out of order"),
        ([3, 3], [1, 1], "points[1].vector.sparse.indices[1]", "repeated"),
        ([1, DIM], [1, 1], "points[1].vector.sparse.indices[1]", "dimension"),
        ([1, 2], [1, float("nan")], "points[1].vector.sparse.values[1]", "NaN"),
        ([1, 2], [1, float("inf")], "points[1].vector.sparse.values[1]", "infinite"),
    ]
    for idx, vals, field, what in cases:
        with expect_status(inval, field, what):
            up("sp", sparse_vec(idx, vals))
    with expect_status(inval, "points[1].vector.sparse", "2 indices but 3 values"):
        up("sp", T.Vector(sparse=T.SparseVector(indices=[1, 2], values=[1, 2, 3])))
    with expect_status(inval, "points[1].vector", "sparse"):
        up("sp", T.Vector(dense=T.DenseVector(values=[1, 2, 3, 4])))
    with expect_status(inval, "points[0].vector", "dense"):
        up("dense", sparse_vec([1], [1.0]))
    assert get_source(s, "sp").point_count == N  # nothing was written
    # Queries.
    for name in ("cos", "jac"):
        with expect_status(inval, "query_vectors[0]", "empty"):
            s.search.Search(search_req(name, [sparse_vec([], [])], 1), timeout=TIMEOUT)
        with expect_status(inval, "query_vectors[0]", "sparse"):
            s.search.Search(search_req(name, np.ones((1, 4)), 1), timeout=TIMEOUT)
        with expect_status(inval, "query_vectors[1]", "out of order"):
            s.search.Search(search_req(name, [sparse_vec([1], [1]), sparse_vec([4, 2], [1, 1])],
                                       1), timeout=TIMEOUT)
        with expect_status(inval, "query_vectors[0]", "dimension"):
            s.search.Search(search_req(name, [sparse_vec([DIM], [1])], 1), timeout=TIMEOUT)
    with expect_status(inval, "query_vectors[0]", "empty"):  # cosine: no non-zero value
        s.search.Search(search_req("cos", [sparse_vec([1, 2], [0, 0])], 1), timeout=TIMEOUT)
    # CreateIndex: algorithm and metric must fit the source.
    bad = [
        (ann_spec("x1", "dense", COSINE, "sparse"), "spec.algorithm"),
        (ann_spec("x2", "sp", L2, "flat"), "spec.algorithm"),
        (ann_spec("x3", "sp", COSINE, "hnsw"), "spec.algorithm"),
        (ann_spec("x4", "sp", COSINE, "faiss", factory="Flat"), "spec.algorithm"),
        (ann_spec("x5", "dense", JACCARD, "flat"), "spec.metric"),
        (ann_spec("x6", "dense", JACCARD, "faiss", factory="Flat"), "spec.metric"),
        (ann_spec("x7", "sp", L2, "sparse"), "spec.metric"),
        (ann_spec("x8", "sp", IP, "sparse"), "spec.metric"),
    ]
    for spec, field in bad:
        with expect_status(inval, field):
            create(s, spec)
    with expect_status(grpc.StatusCode.NOT_FOUND, "x1"):
        s.catalog.GetIndex(C.GetIndexRequest(index=T.IndexRef(name="x1", version="1")),
                           timeout=TIMEOUT)
    assert_serving(s)


def test_largest_sparse_dimension(module_server):
    """A sparse source may declare dimension 2^32 - 1: the largest index is 2^32 - 2."""
    s = module_server
    big = 2 ** 32 - 1
    create_source(s, source_spec("huge", big, [("id", INT64)], ["id"],
                                 vector_kind=C.VECTOR_KIND_SPARSE))
    create(s, ann_spec("huge-cos", "huge", COSINE, "sparse"))
    upload(s, "huge", [sparse_point([0, big - 1], [1, 1], {"id": 1}),
                       sparse_point([big - 1], [2], {"id": 2}),
                       sparse_point([5], [1], {"id": 3})])
    with expect_status(grpc.StatusCode.INVALID_ARGUMENT, "points[0].vector.sparse.indices[0]"):
        upload(s, "huge", [sparse_point([big], [1], {"id": 4})])
    res = run_search(s, "huge-cos", [sparse_vec([big - 1], [1])], 3).results[0]
    assert [h.attributes["id"].int64_value for h in res.hits] == [2, 1, 3]
    assert res.hits[0].distance == pytest.approx(0, abs=1e-6)
    assert res.hits[1].distance == pytest.approx(1 - 1 / math.sqrt(2), abs=1e-6)
    assert res.hits[2].distance == 1.0


def test_changes_and_restart(loaded):
    """Deletes, replacements and re-adds are reflected exactly, and the same answers come back
    after a restart (sparse snapshots). It changes the shared server's data, so it must stay
    the last test of this module."""
    s, vecs, lang, order, queries = loaded
    vecs, order = dict(vecs), dict(order)
    rng = np.random.default_rng(5)
    dels = [20, 21, 22, 500, 501]
    upload(s, "sp", [tombstone({"id": i}) for i in dels])
    for i in dels:
        del vecs[i]
    reps = {30: random_sparse(rng), 31: random_sparse(rng), 600: ([9], np.ones(1, np.float32))}
    upload(s, "sp", [sparse_point(*v, {"id": i, "lang": lang[i]}) for i, v in reps.items()])
    vecs.update(reps)  # a replacement keeps its place in the tie order
    r = upload(s, "sp", [sparse_point(*random_sparse(rng), {"id": 21, "lang": lang[21]})])
    vecs[21] = sparse_of(get_points(s, "sp", [{"id": 21}]).results[0].point.vector)
    order[21] = r.first_seq  # a re-added point is a new point: it ties after the others
    qv = [sparse_vec(*q) for q in queries]
    before = {}
    for name in ("cos", "jac", "cos-lang", "jac-lang"):
        resp = run_search(s, name, qv, 10)
        check_sparse_knn(resp, queries, METRIC[name], vecs, 10, order_key=order, ctx=name)
        before[name] = resp
        assert wait_ready(s, name).status.size == len(vecs)
    last = get_source(s, "sp").last_seq
    s.restart()
    for name in before:
        wait_ready(s, name)
        assert f"{name}@1: loaded snapshot at seq {last} " in s.log_since_start()
        assert run_search(s, name, qv, 10) == before[name], name
