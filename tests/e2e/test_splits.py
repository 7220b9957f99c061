"""Split indices: one sub-index per distinct tuple of split attribute values; split_filter
selects splits (all split attributes: one split; some: the matching splits merged; none: all).

Data: 5000 Fashion-MNIST train vectors with permanent id (int64), label (int64), even (bool,
id % 2 == 0) and shade (string, "dark"/"light" by mean intensity); a payload string.
Indices: `by-label` (L2, split [label], created before the uploads), `by-label-even` (COSINE,
split [label, even], created after), `by-shade-label` (INNER_PRODUCT, split [shade, label]).
"""
import numpy as np
import pytest

from helpers import (BOOL, COSINE, INT64, IP, L2, STRING, check_knn, create_index,
                     create_source, fmnist, get_index, get_source, hit_ids, index_spec, point,
                     search, source_spec, tombstone, upload, upload_batches, value_of,
                     values_of, wait_ready)

N = 5000
NQ = 40


@pytest.fixture(scope="module")
def data():
    x, y = fmnist("train", N)
    q, _ = fmnist("test", NQ)
    ids = np.arange(N, dtype=np.int64)
    even = ids % 2 == 0
    shade = np.where(x.mean(1) > np.median(x.mean(1)), "light", "dark")
    return x, y, even, shade, ids, q


@pytest.fixture(scope="module")
def loaded(module_server, data):
    s = module_server
    x, y, even, shade, ids, _ = data
    create_source(s, source_spec("sp", 784, [("id", INT64), ("label", INT64), ("even", BOOL),
                                             ("shade", STRING)], ["id"]))
    create_index(s, index_spec("by-label", "sp", L2, ["label"]))
    pts = [point(x[i], {"id": int(i), "label": int(y[i]), "even": bool(even[i]),
                        "shade": str(shade[i]), "payload": f"p{i}"}) for i in range(N)]
    upload_batches(s, "sp", pts, 1250)
    create_index(s, index_spec("by-label-even", "sp", COSINE, ["label", "even"]))
    create_index(s, index_spec("by-shade-label", "sp", IP, ["shade", "label"]))
    return s


def test_full_filter_searches_one_split(loaded, data):
    x, y, even, shade, ids, q = data
    for c in (0, 3, 9):
        sel = y == c
        resp = search(loaded, "by-label", q, 10, split_filter={"label": c})
        check_knn(resp, x[sel], ids[sel], q, L2, 10)
        for res in resp.results:
            assert all(h.attributes["label"].int64_value == c for h in res.hits)


def test_full_filter_two_attributes(loaded, data):
    x, y, even, shade, ids, q = data
    for c, e in ((1, True), (1, False), (7, True)):
        sel = (y == c) & (even == e)
        resp = search(loaded, "by-label-even", q, 10, split_filter={"label": c, "even": e})
        check_knn(resp, x[sel], ids[sel], q, COSINE, 10)
        for res in resp.results:
            for h in res.hits:
                a = values_of(h.attributes)
                assert a["label"] == c and a["even"] is e, a
    sel = (shade == "dark") & (y == 4)
    resp = search(loaded, "by-shade-label", q, 10, split_filter={"shade": "dark", "label": 4})
    check_knn(resp, x[sel], ids[sel], q, IP, 10)


def test_partial_filter_merges_matching_splits(loaded, data):
    x, y, even, shade, ids, q = data
    # Only label given on a (label, even) index: both parity splits of that label merged.
    for c in (2, 5):
        sel = y == c
        resp = search(loaded, "by-label-even", q, 25, split_filter={"label": c})
        check_knn(resp, x[sel], ids[sel], q, COSINE, 25)
        # The merge really spans both splits.
        parities = {h.attributes["even"].bool_value for r in resp.results for h in r.hits}
        assert parities == {True, False}
    # Only even given: one split per label merged (10 splits).
    resp = search(loaded, "by-label-even", q, 30, split_filter={"even": False})
    check_knn(resp, x[~even], ids[~even], q, COSINE, 30)
    # The second split attribute alone on the other index.
    sel = shade == "light"
    resp = search(loaded, "by-shade-label", q, 20, split_filter={"shade": "light"})
    check_knn(resp, x[sel], ids[sel], q, IP, 20)


@pytest.mark.parametrize("index,metric", [("by-label", L2), ("by-label-even", COSINE),
                                          ("by-shade-label", IP)])
def test_no_filter_searches_all_splits(loaded, data, index, metric):
    x, y, even, shade, ids, q = data
    resp = search(loaded, index, q, 20)
    check_knn(resp, x, ids, q, metric, 20)
    # Single query requests as well (the per-query scan path).
    for i in range(3):
        check_knn(search(loaded, index, q[i], 20), x, ids, q[i:i + 1], metric, 20)


def test_k_above_split_size_returns_whole_split(loaded, data):
    x, y, even, shade, ids, q = data
    sel = (y == 6) & even
    n = int(sel.sum())
    resp = search(loaded, "by-label-even", q[:3], 1000, split_filter={"label": 6, "even": True})
    for res in resp.results:
        assert len(res.hits) == n
        assert sorted(hit_ids(res)) == sorted(ids[sel].tolist())
    check_knn(resp, x[sel], ids[sel], q[:3], COSINE, 1000)


@pytest.mark.parametrize("flt", [{"label": 42}, {"label": -1, "even": True},
                                 {"shade": "medium"}, {"shade": "dark", "label": 10}])
def test_filter_matching_no_split_is_empty(loaded, data, flt):
    q = data[-1]
    index = "by-shade-label" if "shade" in flt else (
        "by-label-even" if "even" in flt else "by-label")
    resp = search(loaded, index, q[:4], 10, split_filter=flt)
    assert len(resp.results) == 4
    assert all(len(r.hits) == 0 for r in resp.results), resp


def split_table(info):
    """{tuple(sorted(split_values as python)): size}"""
    out = {}
    for sp in info.status.splits:
        key = tuple(sorted((k, value_of(v)) for k, v in sp.split_values.items()))
        assert key not in out, f"split {key} listed twice"
        out[key] = sp.size
    return out


def test_index_status_lists_splits(loaded, data):
    x, y, even, shade, ids, q = data
    src = get_source(loaded, "sp")
    assert src.point_count == N and src.last_seq == N
    want = {
        "by-label": {(("label", c),): int((y == c).sum()) for c in range(10)},
        "by-label-even": {(("even", e), ("label", c)): int(((y == c) & (even == e)).sum())
                          for c in range(10) for e in (False, True)},
        "by-shade-label": {(("label", c), ("shade", sh)): int(((y == c) & (shade == sh)).sum())
                           for c in range(10) for sh in ("dark", "light")},
    }
    for name, splits in want.items():
        splits = {k: v for k, v in splits.items() if v > 0}
        info = wait_ready(loaded, name)
        st = info.status
        assert st.state == 1  # INDEX_STATE_READY
        assert st.size == N == src.point_count
        assert st.applied_seq == src.last_seq
        assert st.source_last_seq == src.last_seq
        assert st.lag_entries == 0
        assert st.lag_seconds == 0
        assert split_table(info) == splits
        # Typed split values: label int64, even bool, shade string.
        typed = {"label": "int64_value", "even": "bool_value", "shade": "string_value"}
        for sp in st.splits:
            for k, v in sp.split_values.items():
                assert v.WhichOneof("value") == typed[k], (name, k, v)
        assert sorted(info.spec.split_attributes) == sorted(
            {"by-label": ["label"], "by-label-even": ["label", "even"],
             "by-shade-label": ["shade", "label"]}[name])


def test_split_sizes_follow_deletes_and_inserts(server):
    """Function-scoped server: deleting and adding points moves the split sizes and the
    searches of each split."""
    rng = np.random.default_rng(3)
    dim = 8
    create_source(server, source_spec("t", dim, [("id", INT64), ("g", STRING)], ["id"]))
    create_index(server, index_spec("t-g", "t", L2, ["g"]))
    base = rng.standard_normal((60, dim)).astype(np.float32)
    groups = ["a" if i < 20 else "b" for i in range(60)]
    upload(server, "t", [point(base[i], {"id": i, "g": groups[i]}) for i in range(60)])
    info = wait_ready(server, "t-g")
    assert split_table(info) == {(("g", "a"),): 20, (("g", "b"),): 40}
    # Delete 5 of group a, add 3 to a new group c.
    r = upload(server, "t", [tombstone({"id": i}) for i in range(5)] +
               [point(base[i], {"id": 100 + i, "g": "c"}) for i in range(3)])
    info = wait_ready(server, "t-g")
    tab = split_table(info)
    assert tab[(("g", "a"),)] == 15 and tab[(("g", "b"),)] == 40 and tab[(("g", "c"),)] == 3
    assert info.status.size == 58 and info.status.applied_seq == r.last_seq
    assert get_source(server, "t").point_count == 58
    resp = search(server, "t-g", base[0], 100, split_filter={"g": "a"})
    assert sorted(hit_ids(resp.results[0])) == list(range(5, 20))
    resp = search(server, "t-g", base[0], 100, split_filter={"g": "c"})
    assert sorted(hit_ids(resp.results[0])) == [100, 101, 102]
    check_knn(resp, base[:3], np.array([100, 101, 102]), base[:1], L2, 100)
