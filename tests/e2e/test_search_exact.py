"""Exact (flat) search against a numpy float64 brute force on a Fashion-MNIST slice.

One server per module: a data source `fm` (permanent id and label as int64, id the identity, a
payload string per point), uploaded in batches of varied sizes. For each metric there are two
flat indices: `pre-*`, created before the first upload (fed point by point as uploads commit),
and `post-*`, created once every point is there (built from the stored points). Both must give
the brute-force answer, so they give the same answer.

Tolerances are explained in helpers.tolerance: the server computes in float32 (SIMD kernels for
one query, cblas_sgemm for batches, where L2 = ||q||^2 + ||x||^2 - 2<q,x>); the reference is
float64. Ids must match numpy's except where true distances tie within that tolerance
(Fashion-MNIST has a few duplicate images).
"""
import numpy as np
import pytest

from helpers import (COSINE, INT64, IP, L2, METRIC_NAMES, STRING, check_knn, create_index,
                     create_source, fmnist, fmnist_points, get_index, get_source, hit_dists,
                     hit_ids, index_spec, point, search, source_spec, true_distances,
                     upload, values_of, vec_of, wait_ready)

N_BASE = 8000
N_QUERIES = 100
METRICS = [L2, IP, COSINE]
SLUG = {L2: "l2", IP: "ip", COSINE: "cos"}
BATCHES = [1, 7, 992, 2000, 3000, 2000]  # sums to N_BASE


@pytest.fixture(scope="module")
def data():
    x, y = fmnist("train", N_BASE)
    q, _ = fmnist("test", N_QUERIES)
    return x, y, q


@pytest.fixture(scope="module")
def loaded(module_server, data):
    """The server with `fm` uploaded and the pre-/post- indices of every metric."""
    s = module_server
    x, y, _ = data
    create_source(s, source_spec("fm", 784, [("id", INT64), ("label", INT64)], ["id"]))
    for m in METRICS:
        create_index(s, index_spec(f"pre-{SLUG[m]}", "fm", m))
    pts = fmnist_points(x, y, range(N_BASE))
    assert sum(BATCHES) == N_BASE
    start, last = 0, 0
    for b in BATCHES:
        r = upload(s, "fm", pts[start:start + b])
        assert r.first_seq == last + 1 and r.last_seq == last + b, (r, last, b)
        last = r.last_seq
        start += b
    for m in METRICS:
        create_index(s, index_spec(f"post-{SLUG[m]}", "fm", m))
    info = get_source(s, "fm")
    assert info.point_count == N_BASE and info.last_seq == N_BASE
    for m in METRICS:
        for kind in ("pre", "post"):
            st = wait_ready(s, f"{kind}-{SLUG[m]}").status
            assert st.size == N_BASE and st.applied_seq == N_BASE and st.lag_entries == 0, st
    return s


IDS = np.arange(N_BASE)


@pytest.mark.parametrize("kind", ["pre", "post"])
@pytest.mark.parametrize("k", [1, 10, 100])
@pytest.mark.parametrize("metric", METRICS, ids=lambda m: METRIC_NAMES[m])
def test_single_query_requests(loaded, data, metric, k, kind):
    x, _, q = data
    for i in range(0, 10):
        resp = search(loaded, f"{kind}-{SLUG[metric]}", q[i], k)
        check_knn(resp, x, IDS, q[i:i + 1], metric, k)


@pytest.mark.parametrize("kind", ["pre", "post"])
@pytest.mark.parametrize("k", [1, 10, 100])
@pytest.mark.parametrize("metric", METRICS, ids=lambda m: METRIC_NAMES[m])
def test_batched_request(loaded, data, metric, k, kind):
    x, _, q = data
    resp = search(loaded, f"{kind}-{SLUG[metric]}", q, k)
    check_knn(resp, x, IDS, q, metric, k)


@pytest.mark.parametrize("nq", [2, 3, 9, 17])
def test_batch_sizes_around_path_switch(loaded, data, nq):
    """Small batches (per-query SIMD scan) and larger ones (GEMM) agree with brute force, and
    each query's answer does not depend on the batch it came in."""
    x, _, q = data
    for metric in METRICS:
        resp = search(loaded, f"post-{SLUG[metric]}", q[:nq], 10)
        check_knn(resp, x, IDS, q[:nq], metric, 10)
        alone = search(loaded, f"post-{SLUG[metric]}", q[nq - 1], 10)
        np.testing.assert_allclose(hit_dists(resp.results[nq - 1]), hit_dists(alone.results[0]),
                                   rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("metric", METRICS, ids=lambda m: METRIC_NAMES[m])
def test_pre_and_post_indices_agree(loaded, data, metric):
    _, _, q = data
    a = search(loaded, f"pre-{SLUG[metric]}", q[:50], 10)
    b = search(loaded, f"post-{SLUG[metric]}", q[:50], 10)
    for ra, rb in zip(a.results, b.results):
        da, db = hit_dists(ra), hit_dists(rb)
        np.testing.assert_allclose(da, db, rtol=1e-5, atol=1e-5)
        # Same ids, except among exactly tied distances (duplicate images).
        ia, ib = hit_ids(ra), hit_ids(rb)
        for r in range(len(ia)):
            if ia[r] != ib[r]:
                assert ib[r] in ia and abs(da[r] - da[ia.index(ib[r])]) <= 1e-5, (ia, ib, da)


@pytest.mark.parametrize("metric", METRICS, ids=lambda m: METRIC_NAMES[m])
def test_k_above_point_count_returns_everything(loaded, data, metric):
    """k = limits.max_k (10000) > 8000 points: every point comes back, in order."""
    x, _, q = data
    resp = search(loaded, f"post-{SLUG[metric]}", q[0], 10000)
    assert len(resp.results[0].hits) == N_BASE
    assert sorted(hit_ids(resp.results[0])) == list(range(N_BASE))
    check_knn(resp, x, IDS, q[:1], metric, 10000)


@pytest.mark.parametrize("metric", METRICS, ids=lambda m: METRIC_NAMES[m])
def test_batched_k_above_point_count(loaded, data, metric):
    """The batched (GEMM) path with k above the point count: everything, in order."""
    x, _, q = data
    resp = search(loaded, f"pre-{SLUG[metric]}", q[:8], 10000)
    for res in resp.results:
        assert len(res.hits) == N_BASE
    check_knn(resp, x, IDS, q[:8], metric, 10000)


def test_large_batch_crosses_query_blocks(loaded, data):
    """600 queries in one call: more than one block of queries on the GEMM path."""
    x, _, _ = data
    q, _ = fmnist("test", 600)
    for metric in METRICS:
        resp = search(loaded, f"post-{SLUG[metric]}", q, 5)
        check_knn(resp, x, IDS, q, metric, 5)


def test_retrieve_vectors_bit_exact(loaded, data):
    x, _, q = data
    for metric in METRICS:
        resp = search(loaded, f"pre-{SLUG[metric]}", q[:5], 20, retrieve_vectors=True)
        for res in resp.results:
            assert len(res.hits) == 20
            for h in res.hits:
                i = h.attributes["id"].int64_value
                assert h.HasField("vector")
                got = vec_of(h.vector)
                assert got.dtype == np.float32 and got.shape == (784,)
                assert got.tobytes() == x[i].tobytes(), f"vector of id {i} differs"
        # Without retrieve_vectors, no vector is attached.
        resp = search(loaded, f"pre-{SLUG[metric]}", q[:2], 5)
        assert all(not h.HasField("vector") for r in resp.results for h in r.hits)


def test_attributes_complete(loaded, data):
    _, y, q = data
    for metric in METRICS:
        resp = search(loaded, f"post-{SLUG[metric]}", q[:10], 30)
        for res in resp.results:
            for h in res.hits:
                a = values_of(h.attributes)
                i = a["id"]
                assert a == {"id": i, "label": int(y[i]),
                             "payload": f"item-{i}-class-{int(y[i])}"}, a
                assert h.attributes["id"].WhichOneof("value") == "int64_value"
                assert h.attributes["label"].WhichOneof("value") == "int64_value"
                assert h.attributes["payload"].WhichOneof("value") == "string_value"


def test_query_equal_to_stored_vector(loaded, data):
    """A stored vector as query: itself (or an identical duplicate) is the best hit, at L2
    distance ~0 and cosine distance ~0."""
    x, _, _ = data
    rows = [0, 1234, 7999]
    for metric in (L2, COSINE):
        resp = search(loaded, f"post-{SLUG[metric]}", x[rows], 3)
        for r, res in zip(rows, resp.results):
            assert abs(res.hits[0].distance) <= 1e-3, (METRIC_NAMES[metric], res.hits[0])
            top = res.hits[0].attributes["id"].int64_value
            assert top == r or np.array_equal(x[top], x[r])


def test_small_source_k_larger_than_points(module_server):
    """A 50-point source with a zero vector, integer-valued coordinates (exact in float32) and
    several duplicates; k=100 returns all 50 points for every metric, with exact distances;
    the stored zero vector has cosine distance exactly 1."""
    s = module_server
    rng = np.random.default_rng(7)
    dim = 16
    base = rng.integers(-3, 4, size=(50, dim)).astype(np.float32)
    base[0] = 0.0
    base[10] = base[11]  # duplicates
    ids = np.arange(100, 150)
    create_source(s, source_spec("small", dim, [("id", INT64), ("tag", STRING)], ["id"]))
    for m in METRICS:
        create_index(s, index_spec(f"small-{SLUG[m]}", "small", m))
    pts = [point(base[j], {"id": int(ids[j]), "tag": f"t{j % 3}"}) for j in range(50)]
    for b in range(0, 50, 20):
        upload(s, "small", pts[b:b + 20])
    q = rng.integers(-3, 4, size=(8, dim)).astype(np.float32)
    q[q.sum(1) == 0, 0] = 1.0
    for m in METRICS:
        resp = search(s, f"small-{SLUG[m]}", q, 100)
        check_knn(resp, base, ids, q, m, 100)
        d = true_distances(base, q, m)
        for qi, res in enumerate(resp.results):
            assert len(res.hits) == 50
            got = {h.attributes["id"].int64_value: h.distance for h in res.hits}
            if m != COSINE:
                # Integer data: float32 arithmetic is exact, so distances are exact.
                for j in range(50):
                    assert got[int(ids[j])] == d[qi, j], (METRIC_NAMES[m], qi, j)
            else:
                assert got[100] == pytest.approx(1.0, abs=1e-6), "zero vector under cosine"
        # One query at a time as well (the non-GEMM path).
        for qi in range(3):
            check_knn(search(s, f"small-{SLUG[m]}", q[qi], 100), base, ids, q[qi:qi + 1], m, 100)
