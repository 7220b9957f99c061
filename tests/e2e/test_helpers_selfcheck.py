"""Self-check of the brute-force comparison in helpers.check_knn (no server): it accepts the
exact answer and float32-level noise, and rejects the mistakes it is meant to catch."""
import numpy as np
import pytest

from hilbert.v1 import search_pb2

from helpers import COSINE, IP, L2, attrs, brute_force, check_knn, vec

RNG = np.random.default_rng(5)
BASE = RNG.random((300, 32)).astype(np.float32)
IDS = np.arange(1000, 1300)
Q = RNG.random((4, 32)).astype(np.float32)


def response(metric, k, mutate=None):
    order, dists, _ = brute_force(BASE, Q, metric, k)
    resp = search_pb2.SearchResponse()
    for qi in range(len(Q)):
        res = resp.results.add()
        rows = list(order[qi])
        d = [float(np.float32(x)) for x in dists[qi]]
        if mutate:
            rows, d = mutate(rows, d)
        for r, dist in zip(rows, d):
            h = res.hits.add(distance=dist)
            for kk, v in attrs({"id": int(IDS[r])}).items():
                h.attributes[kk].CopyFrom(v)
            h.vector.CopyFrom(vec(BASE[r]))
    return resp


@pytest.mark.parametrize("metric", [L2, IP, COSINE])
def test_accepts_exact_and_float32_noise(metric):
    check_knn(response(metric, 10), BASE, IDS, Q, metric, 10)
    check_knn(response(metric, 500), BASE, IDS, Q, metric, 500)
    noisy = response(metric, 10, lambda r, d: (r, [x * (1 + 3e-6) for x in d]))
    check_knn(noisy, BASE, IDS, Q, metric, 10)


MUTATIONS = {
    "dropped-hit": lambda r, d: (r[:-1], d[:-1]),
    "extra-hit": lambda r, d: (r + [r[0]], d + [d[0]]),
    "wrong-distance": lambda r, d: (r, [d[0] + 0.05] + d[1:]),
    "wrong-id": lambda r, d: ([r[0] + 1 if r[0] + 1 not in r else r[0] - 1] + r[1:], d),
    "swapped-far-ids": lambda r, d: ([r[-1]] + r[1:-1] + [r[0]], d),
    "reversed": lambda r, d: (r[::-1], d[::-1]),
    "ip-sign": lambda r, d: (r, [-x for x in d]),
}


@pytest.mark.parametrize("metric", [L2, IP, COSINE])
@pytest.mark.parametrize("name", sorted(MUTATIONS))
def test_rejects_mistakes(metric, name):
    with pytest.raises(AssertionError):
        check_knn(response(metric, 10, MUTATIONS[name]), BASE, IDS, Q, metric, 10)
