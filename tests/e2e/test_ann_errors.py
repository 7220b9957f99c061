"""CreateIndex validation of the ANN algorithms: each bad spec gets INVALID_ARGUMENT naming the
field, nothing is created, and the server stays up and keeps serving."""
import grpc
import numpy as np
import pytest

from ann_helpers import ann_spec, create, run_search
from helpers import (INT64, IP, L2, C, T, TIMEOUT, assert_serving, create_source,
                     expect_status, get_source, hit_ids, point, source_spec, upload, wait_ready)

FACTORY = "spec.algorithm.faiss.factory"
JACCARD = C.METRIC_JACCARD

BAD = [
    # (algorithm, metric, params, field, more substrings)
    ("faiss", L2, dict(factory=""), FACTORY, ["required"]),
    ("faiss", L2, dict(factory="NotAnIndex"), FACTORY, ["NotAnIndex"]),
    # 784 = 2^4 * 7^2 is divisible by 7, so "PQ7" is valid for it: PQ5 and PQ9 are not.
    ("faiss", L2, dict(factory="PQ5"), FACTORY, ["PQ5"]),
    ("faiss", L2, dict(factory="IVF64,PQ9"), FACTORY, ["PQ9"]),
    ("faiss", L2, dict(factory="IVF0,Flat"), FACTORY, ["IVF0,Flat"]),
    ("faiss", L2, dict(factory="IVF99999999,Flat"), FACTORY, []),
    ("faiss", L2, dict(factory="PQ16x24"), FACTORY, []),            # 2^24-entry codebooks
    ("faiss", L2, dict(factory="IDMap,Flat"), FACTORY, ["IDMap"]),
    ("faiss", L2, dict(factory="x" * 300), FACTORY, []),
    ("faiss", L2, dict(factory="IVF64,Flat", train_size=10), "train_size", ["64"]),
    ("faiss", JACCARD, dict(factory="Flat"), "spec.metric", []),
    ("hnsw", L2, dict(m=1), "spec.algorithm.hnsw.m", []),
    ("hnsw", L2, dict(m=200), "spec.algorithm.hnsw.m", []),
    ("hnsw", L2, dict(ef_construction=10 ** 6), "spec.algorithm.hnsw.ef_construction", []),
    ("hnsw", L2, dict(ef_search=10 ** 6), "spec.algorithm.hnsw.ef_search", []),
    ("hnsw", L2, dict(storage=99), "spec.algorithm.hnsw.storage", ["99"]),
    ("hnsw", L2, dict(oversample=101), "spec.algorithm.hnsw.oversample", ["100"]),
    ("hnsw", JACCARD, {}, "spec.metric", []),
    ("flat", JACCARD, {}, "spec.metric", []),
    ("hnsw", C.METRIC_UNSPECIFIED, {}, "spec.metric", []),
]


@pytest.fixture(scope="module")
def src(module_server):
    s = module_server
    create_source(s, source_spec("fm", 784, [("id", INT64)], ["id"]))
    upload(s, "fm", [point(np.full(784, i / 10.0), {"id": i}) for i in range(10)])
    return s


@pytest.mark.parametrize("case", range(len(BAD)),
                         ids=[f"{b[0]}-{b[3].split('.')[-1]}-{i}" for i, b in enumerate(BAD)])
def test_bad_index_spec(src, case):
    s = src
    algo, metric, params, field, more = BAD[case]
    name = f"bad{case}"
    with expect_status(grpc.StatusCode.INVALID_ARGUMENT, field, *more):
        create(s, ann_spec(name, "fm", metric, algo, **params))
    with expect_status(grpc.StatusCode.NOT_FOUND, name):
        s.catalog.GetIndex(C.GetIndexRequest(index=T.IndexRef(name=name, version="1")),
                           timeout=TIMEOUT)
    assert not any(r.name == name for r in get_source(s, "fm").indices)
    assert_serving(s)


def test_missing_algorithm(src):
    spec = ann_spec("noalgo", "fm", L2, "flat")
    spec.ClearField("algorithm")
    with expect_status(grpc.StatusCode.INVALID_ARGUMENT, "spec.algorithm"):
        create(src, spec)


def test_server_still_serves_after_the_errors(src):
    """After every rejected spec, good indices of each algorithm can be created and used."""
    s = src
    for name, algo, params in (("ok-hnsw", "hnsw", dict(m=2)), ("ok-hnsw128", "hnsw",
                                                                 dict(m=128, ef_search=1)),
                               ("ok-pq", "faiss", dict(factory="PQ8")),
                               ("ok-ivf", "faiss", dict(factory="IVF2,Flat", train_size=2))):
        create(s, ann_spec(name, "fm", IP if name == "ok-hnsw" else L2, algo, **params))
        st = wait_ready(s, name).status
        assert st.size == 10, (name, st)
        res = run_search(s, name, np.full((1, 784), 0.31), 1).results[0]
        assert len(res.hits) == 1, name
        if name != "ok-hnsw":
            assert hit_ids(res) == [3], (name, hit_ids(res))
    assert_serving(s)
