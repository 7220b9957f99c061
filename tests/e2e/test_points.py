"""Points: seq ranges of Upload, replace, tombstones, batches that touch one id several times,
Get in request order, typed attribute round trips, and concurrent uploads."""
import threading

import grpc
import numpy as np
import pytest

from helpers import (BOOL, BYTES, COSINE, FLOAT64, INT64, L2, STRING, TIMESTAMP, Timestamp,
                     check_knn, create_index, create_source, expect_status, get_index,
                     get_points, get_source, hit_dists, hit_ids, index_spec, point, search,
                     source_spec, tombstone, upload, values_of, vec_of, wait_ready)

DIM = 8


def setup_source(server, index=True):
    create_source(server, source_spec("p", DIM, [("id", INT64), ("label", INT64)], ["id"]))
    if index:
        create_index(server, index_spec("p-l2", "p", L2))
        create_index(server, index_spec("p-split", "p", L2, ["label"]))


def split_sizes(server, index="p-split"):
    return {sp.split_values["label"].int64_value: sp.size
            for sp in wait_ready(server, index).status.splits if sp.size}


def vecs(n, seed=0):
    return np.random.default_rng(seed).standard_normal((n, DIM)).astype(np.float32)


def all_ids(server, index="p-l2"):
    """Every id in the index, by a k = everything search."""
    resp = search(server, index, np.ones(DIM, dtype=np.float32), 10000)
    return hit_ids(resp.results[0])


def test_seq_ranges_are_contiguous(server):
    setup_source(server)
    assert get_source(server, "p").last_seq == 0
    v = vecs(40)
    last = 0
    sizes = [1, 5, 3, 10, 1, 20]
    start = 0
    for n in sizes:
        r = upload(server, "p", [point(v[(start + j) % 40], {"id": start + j, "label": 0})
                                 for j in range(n)])
        assert r.first_seq == last + 1, (r, last)
        assert r.last_seq == r.first_seq + n - 1
        last = r.last_seq
        start += n
    assert last == sum(sizes)
    info = get_source(server, "p")
    assert info.last_seq == last and info.point_count == sum(sizes)
    # points[i] has seq first_seq + i: Get shows it.
    g = get_points(server, "p", [{"id": i} for i in range(sum(sizes))])
    assert [r.seq for r in g.results] == list(range(1, sum(sizes) + 1))


def test_reupload_replaces_point(server):
    setup_source(server)
    a, b = vecs(2, seed=1)
    others = vecs(10, seed=2)
    upload(server, "p", [point(others[i], {"id": 100 + i, "label": 1}) for i in range(10)])
    r1 = upload(server, "p", [point(a, {"id": 1, "label": 5, "color": "red", "n": 3})])
    count = get_source(server, "p").point_count
    assert count == 11
    r2 = upload(server, "p", [point(b, {"id": 1, "label": 5, "shape": b"\x00\x01"})])
    assert r2.first_seq == r1.last_seq + 1
    info = get_source(server, "p")
    assert info.point_count == count
    g = get_points(server, "p", [{"id": 1}]).results[0]
    assert g.found and g.seq == r2.first_seq
    assert vec_of(g.point.vector).tobytes() == b.tobytes()
    # Payload attributes are replaced as a whole: "color" and "n" are gone.
    assert values_of(g.point.attributes) == {"id": 1, "label": 5, "shape": b"\x00\x01"}
    assert not g.point.is_deleted
    # The index serves the new vector: query b finds id 1 at distance 0 ...
    res = search(server, "p-l2", b, 3, retrieve_vectors=True).results[0]
    assert hit_ids(res)[0] == 1 and res.hits[0].distance == pytest.approx(0.0, abs=1e-5)
    assert vec_of(res.hits[0].vector).tobytes() == b.tobytes()
    assert values_of(res.hits[0].attributes) == {"id": 1, "label": 5, "shape": b"\x00\x01"}
    # ... and query a sees it at |a - b|^2, not 0; id 1 is in the index once.
    res = search(server, "p-l2", a, 11).results[0]
    d = dict(zip(hit_ids(res), hit_dists(res)))
    assert d[1] == pytest.approx(float(((a.astype(np.float64) - b) ** 2).sum()), rel=1e-4)
    assert sorted(all_ids(server)) == [1] + list(range(100, 110))
    assert wait_ready(server, "p-l2").status.size == 11
    assert split_sizes(server) == {1: 10, 5: 1}
    res = search(server, "p-split", b, 5, split_filter={"label": 5},
                 retrieve_vectors=True).results[0]
    assert hit_ids(res) == [1] and vec_of(res.hits[0].vector).tobytes() == b.tobytes()
    # A payload attribute may change its type between uploads.
    upload(server, "p", [point(b, {"id": 1, "label": 5, "shape": 3.5})])
    g = get_points(server, "p", [{"id": 1}]).results[0]
    assert g.point.attributes["shape"].WhichOneof("value") == "float64_value"
    assert g.point.attributes["shape"].float64_value == 3.5


def test_tombstone_removes_point(server):
    setup_source(server)
    v = vecs(10, seed=3)
    upload(server, "p", [point(v[i], {"id": i, "label": i % 2, "x": "y"}) for i in range(10)])
    # A tombstone needs only the id attributes.
    r = upload(server, "p", [tombstone({"id": 4})])
    assert r.first_seq == r.last_seq == 11
    info = get_source(server, "p")
    assert info.point_count == 9 and info.last_seq == 11
    g = get_points(server, "p", [{"id": 4}]).results[0]
    assert not g.found and not g.HasField("point")
    res = search(server, "p-l2", v[4], 10).results[0]
    assert 4 not in hit_ids(res) and len(res.hits) == 9
    st = wait_ready(server, "p-l2").status
    assert st.size == 9 and st.applied_seq == 11
    # A tombstone with a vector and extra attributes: those are ignored.
    upload(server, "p", [point([float("nan")] * (DIM + 3), {"id": 5, "label": 99, "z": 1},
                               deleted=True)])
    assert get_source(server, "p").point_count == 8
    assert sorted(all_ids(server)) == [0, 1, 2, 3, 6, 7, 8, 9]
    assert split_sizes(server) == {0: 4, 1: 4}
    assert sorted(all_ids(server, "p-split")) == [0, 1, 2, 3, 6, 7, 8, 9]


def test_delete_of_missing_id_succeeds_and_takes_a_seq(server):
    setup_source(server)
    v = vecs(3)
    upload(server, "p", [point(v[i], {"id": i, "label": 0}) for i in range(3)])
    r = upload(server, "p", [tombstone({"id": 77})])
    assert r.first_seq == r.last_seq == 4
    info = get_source(server, "p")
    assert info.last_seq == 4 and info.point_count == 3
    st = wait_ready(server, "p-l2").status
    assert st.applied_seq == 4 and st.lag_entries == 0 and st.size == 3
    r = upload(server, "p", [tombstone({"id": 77}), tombstone({"id": 78})])
    assert (r.first_seq, r.last_seq) == (5, 6)
    # Still usable afterwards; the next real upload continues the seqs.
    r = upload(server, "p", [point(v[0], {"id": 77, "label": 0})])
    assert r.first_seq == 7
    assert get_source(server, "p").point_count == 4


def test_same_id_twice_in_one_batch_last_wins(server):
    setup_source(server)
    a, b, c = vecs(3, seed=4)
    r = upload(server, "p", [point(a, {"id": 5, "label": 1, "v": "first"}),
                             point(c, {"id": 6, "label": 1}),
                             point(b, {"id": 5, "label": 1, "v": "second"})])
    assert (r.first_seq, r.last_seq) == (1, 3)
    assert get_source(server, "p").point_count == 2
    g = get_points(server, "p", [{"id": 5}]).results[0]
    assert g.found and g.seq == 3
    assert vec_of(g.point.vector).tobytes() == b.tobytes()
    assert values_of(g.point.attributes)["v"] == "second"
    assert sorted(all_ids(server)) == [5, 6]
    assert split_sizes(server) == {1: 2}
    res = search(server, "p-l2", b, 2, retrieve_vectors=True).results[0]
    assert hit_ids(res)[0] == 5 and vec_of(res.hits[0].vector).tobytes() == b.tobytes()
    assert wait_ready(server, "p-l2").status.size == 2


def test_delete_then_reupload_in_one_batch(server):
    setup_source(server)
    a, b, c = vecs(3, seed=5)
    upload(server, "p", [point(a, {"id": 7, "label": 2, "old": True}),
                         point(c, {"id": 9, "label": 2})])
    r = upload(server, "p", [tombstone({"id": 7}), point(b, {"id": 7, "label": 2, "new": 1})])
    assert (r.first_seq, r.last_seq) == (3, 4)
    # After a delete, the id is a new point: its permanent attributes may differ.
    r2 = upload(server, "p", [tombstone({"id": 9}), point(c, {"id": 9, "label": 3})])
    assert get_source(server, "p").point_count == 2
    g = get_points(server, "p", [{"id": 7}, {"id": 9}]).results
    assert g[0].found and g[0].seq == 4
    assert vec_of(g[0].point.vector).tobytes() == b.tobytes()
    assert values_of(g[0].point.attributes) == {"id": 7, "label": 2, "new": 1}
    assert g[1].found and g[1].seq == r2.last_seq
    assert values_of(g[1].point.attributes) == {"id": 9, "label": 3}
    assert sorted(all_ids(server)) == [7, 9]
    # id 9 moved from split label=2 to label=3.
    assert split_sizes(server) == {2: 1, 3: 1}
    res = search(server, "p-split", c, 5, split_filter={"label": 3}).results[0]
    assert hit_ids(res) == [9]
    res = search(server, "p-l2", b, 1).results[0]
    assert hit_ids(res) == [7] and res.hits[0].distance == pytest.approx(0, abs=1e-5)
    # Upload then delete in one batch: gone, and never counted.
    upload(server, "p", [point(a, {"id": 8, "label": 2}), tombstone({"id": 8})])
    assert not get_points(server, "p", [{"id": 8}]).results[0].found
    assert get_source(server, "p").point_count == 2
    assert sorted(all_ids(server)) == [7, 9]
    assert wait_ready(server, "p-l2").status.size == 2
    assert split_sizes(server) == {2: 1, 3: 1}
    assert sorted(all_ids(server, "p-split")) == [7, 9]


def test_get_multiple_ids_in_request_order(server):
    setup_source(server, index=False)
    v = vecs(5, seed=6)
    r = upload(server, "p", [point(v[i], {"id": 10 * i, "label": i}) for i in range(5)])
    order = [40, 3, 0, 20, 40, 999, 10]
    res = get_points(server, "p", [{"id": i} for i in order]).results
    assert len(res) == len(order)
    assert [x.found for x in res] == [True, False, True, True, True, False, True]
    for want, got in zip(order, res):
        if got.found:
            i = want // 10
            assert got.point.attributes["id"].int64_value == want
            assert got.point.attributes["label"].int64_value == i
            assert vec_of(got.point.vector).tobytes() == v[i].tobytes()
            assert got.seq == r.first_seq + i
        else:
            assert not got.HasField("point") and got.seq == 0


def test_attribute_types_round_trip(server):
    """Every attribute type, permanent and payload, comes back with its type and value; a
    composite id (string, int64, bool, bytes, timestamp) identifies points."""
    perm = [("tenant", STRING), ("n", INT64), ("flag", BOOL), ("blob", BYTES),
            ("ts", TIMESTAMP), ("score", FLOAT64)]
    ids = ["tenant", "n", "flag", "blob", "ts"]
    create_source(server, source_spec("typed", 3, perm, ids))
    create_index(server, index_spec("typed-ix", "typed", L2))
    p1 = {"tenant": "ä-ü €", "n": -(2 ** 63), "flag": True, "blob": b"\x00\xff\x00",
          "ts": Timestamp(1_700_000_000_123_456), "score": -1.5e300,
          "p_str": "", "p_int": 2 ** 63 - 1, "p_f": float("-0.0"), "p_bool": False,
          "p_bytes": b"", "p_ts": Timestamp(-1)}
    p2 = dict(p1, n=1)  # same except one id attribute: a different point
    upload(server, "typed", [point([1, 2, 3], p1), point([4, 5, 6], p2)])
    assert get_source(server, "typed").point_count == 2
    key1 = {k: p1[k] for k in ids}
    key2 = {k: p2[k] for k in ids}
    g = get_points(server, "typed", [key2, key1]).results
    assert g[0].found and g[1].found
    assert values_of(g[1].point.attributes) == p1
    assert values_of(g[0].point.attributes) == p2
    assert vec_of(g[0].point.vector).tolist() == [4, 5, 6]
    kinds = {k: v.WhichOneof("value") for k, v in g[1].point.attributes.items()}
    assert kinds == {"tenant": "string_value", "n": "int64_value", "flag": "bool_value",
                     "blob": "bytes_value", "ts": "timestamp_micros",
                     "score": "float64_value", "p_str": "string_value",
                     "p_int": "int64_value", "p_f": "float64_value", "p_bool": "bool_value",
                     "p_bytes": "bytes_value", "p_ts": "timestamp_micros"}
    # Same id values with one of them of another type does not match (ts as int64 is a
    # type error, not a miss) -- see test_errors for that; here a near miss is simply absent.
    miss = get_points(server, "typed", [dict(key1, tenant="ä-ü")]).results[0]
    assert not miss.found
    hit = search(server, "typed-ix", [1, 2, 3], 1).results[0].hits[0]
    assert values_of(hit.attributes) == p1


def test_concurrent_uploads(server):
    setup_source(server)
    threads_n, uploads_n, batch = 6, 15, 20
    v = vecs(threads_n * uploads_n * batch, seed=8)  # distinct vectors: no ties
    results = {t: [] for t in range(threads_n)}
    errors = []
    barrier = threading.Barrier(threads_n)

    def work(t):
        try:
            barrier.wait()
            for u in range(uploads_n):
                base = (t * uploads_n + u) * batch
                pts = [point(v[base + j], {"id": base + j, "label": t})
                       for j in range(batch)]
                r = upload(server, "p", pts)
                results[t].append((r.first_seq, r.last_seq, base))
        except Exception as e:  # noqa: BLE001
            errors.append(e)

    ts = [threading.Thread(target=work, args=(t,)) for t in range(threads_n)]
    for t in ts:
        t.start()
    # An index created while the uploads run: built from the points already there, then fed.
    while sum(len(r) for r in results.values()) < threads_n * uploads_n // 3 and not errors:
        threading.Event().wait(0.002)
    create_index(server, index_spec("p-late", "p", L2, ["label"]))
    for t in ts:
        t.join(timeout=300)
    assert not errors, errors
    total = threads_n * uploads_n * batch
    ranges = sorted((f, l) for t in results for f, l, _ in results[t])
    assert len(ranges) == threads_n * uploads_n
    for f, l in ranges:
        assert l - f + 1 == batch
    # Dense and non-overlapping: consecutive ranges touch, and they cover 1..total.
    assert ranges[0][0] == 1 and ranges[-1][1] == total
    for (f0, l0), (f1, _) in zip(ranges, ranges[1:]):
        assert f1 == l0 + 1, (l0, f1)
    info = get_source(server, "p")
    assert info.point_count == total and info.last_seq == total
    st = wait_ready(server, "p-l2").status
    assert st.size == total and st.applied_seq == total and st.lag_entries == 0
    # Each point carries the seq of its upload position.
    want = {}
    for t in results:
        for f, _, base in results[t]:
            for j in range(batch):
                want[base + j] = f + j
    ids = sorted(want)
    got = get_points(server, "p", [{"id": i} for i in ids]).results
    assert all(g.found for g in got)
    assert [g.seq for g in got] == [want[i] for i in ids]
    assert sorted(all_ids(server)) == ids
    st = wait_ready(server, "p-late").status
    assert st.size == total and st.applied_seq == total and st.lag_entries == 0
    assert sorted(all_ids(server, "p-late")) == ids
    assert split_sizes(server, "p-late") == {t: uploads_n * batch for t in range(threads_n)}
    assert split_sizes(server) == {t: uploads_n * batch for t in range(threads_n)}
    # Searches of the late index equal those of the index that saw every upload.
    q = vecs(5, seed=9)
    for qi in q:
        a = search(server, "p-l2", qi, 20).results[0]
        b = search(server, "p-late", qi, 20).results[0]
        assert hit_ids(a) == hit_ids(b)
        np.testing.assert_allclose(hit_dists(a), hit_dists(b), rtol=1e-5, atol=1e-5)


def test_vector_bits_round_trip(server):
    """Signed zeros, subnormals and extreme finite values are stored bit-exactly."""
    create_source(server, source_spec("bits", 6, [("id", INT64)], ["id"]))
    v = np.array([-0.0, 1e-45, -1.17549435e-38, 3.4028235e38, -3.4028235e38, 0.1],
                 dtype=np.float32)
    upload(server, "bits", [point(v, {"id": 1})])
    g = get_points(server, "bits", [{"id": 1}]).results[0]
    assert vec_of(g.point.vector).tobytes() == v.tobytes()


def test_upload_and_get_at_max_batch_size(server):
    """limits.max_points_per_upload (default 10000) points in one call, and as many ids in
    one Get; one more is RESOURCE_EXHAUSTED."""
    create_source(server, source_spec("big", 2, [("id", INT64)], ["id"]))
    create_index(server, index_spec("big-ix", "big", L2))
    pts = [point([i, -i], {"id": i}) for i in range(10001)]
    with expect_status(grpc.StatusCode.RESOURCE_EXHAUSTED, "points"):
        upload(server, "big", pts)
    r = upload(server, "big", pts[:10000])
    assert (r.first_seq, r.last_seq) == (1, 10000)
    g = get_points(server, "big", [{"id": i} for i in range(10000)]).results
    assert all(x.found for x in g) and [x.seq for x in g] == list(range(1, 10001))
    with expect_status(grpc.StatusCode.RESOURCE_EXHAUSTED, "ids"):
        get_points(server, "big", [{"id": i} for i in range(10001)])
    assert wait_ready(server, "big-ix").status.size == 10000
    res = search(server, "big-ix", [5000, -5000], 3).results[0]
    assert hit_ids(res)[0] == 5000 and res.hits[0].distance == 0.0


def test_mass_delete_and_reinsert_stay_exact(server):
    """Deleting most points (the engine compacts rows and shrinks) and adding them back keeps
    searches exact, also after a restart."""
    dim = 32
    n = 3000
    rng = np.random.default_rng(21)
    base = rng.standard_normal((n, dim)).astype(np.float32)
    create_source(server, source_spec("m", dim, [("id", INT64), ("label", INT64)], ["id"]))
    create_index(server, index_spec("m-l2", "m", L2))
    create_index(server, index_spec("m-cos", "m", COSINE, ["label"]))
    for b in range(0, n, 1000):
        upload(server, "m", [point(base[i], {"id": i, "label": i % 3})
                             for i in range(b, b + 1000)])
    q = rng.standard_normal((10, dim)).astype(np.float32)
    doomed = rng.permutation(n)[:2950]
    for b in range(0, len(doomed), 500):
        upload(server, "m", [tombstone({"id": int(i)}) for i in doomed[b:b + 500]])
    live = np.setdiff1d(np.arange(n), doomed)
    assert get_source(server, "m").point_count == len(live) == 50
    # An index built now, from a source whose timeline is mostly deletes.
    create_index(server, index_spec("m-late", "m", L2, ["label"]))

    def check():
        for k in (10, 100):
            check_knn(search(server, "m-l2", q, k), base[live], live, q, L2, k)
            check_knn(search(server, "m-late", q, k), base[live], live, q, L2, k)
            check_knn(search(server, "m-l2", q[0], k), base[live], live, q[:1], L2, k)
            sel = live[live % 3 == 1]
            check_knn(search(server, "m-cos", q, k, split_filter={"label": 1}), base[sel], sel,
                      q, COSINE, k)
        assert wait_ready(server, "m-l2").status.size == len(live)
        assert wait_ready(server, "m-cos").status.size == len(live)
        st = wait_ready(server, "m-late").status
        assert st.size == len(live) and st.applied_seq == get_source(server, "m").last_seq
        assert sum(sp.size for sp in st.splits) == len(live)

    check()
    server.restart()
    check()
    # Add the deleted points back (new seqs), with the same vectors.
    back = np.sort(doomed[:1500])
    for b in range(0, len(back), 750):
        upload(server, "m", [point(base[i], {"id": int(i), "label": int(i) % 3})
                             for i in back[b:b + 750]])
    live = np.union1d(live, back)
    check()
    server.restart()
    check()


def test_string_with_nul_is_kept_or_rejected(server):
    """U+0000 is valid UTF-8, so a string attribute may contain it. The server must either
    store such strings exactly or reject them (INVALID_ARGUMENT naming the attribute); it must
    never cut them at the NUL, which would merge the distinct ids "a\\0b" and "a\\0c"."""
    create_source(server, source_spec("nul", 2, [("k", STRING)], ["k"]))
    try:
        r = upload(server, "nul", [point([1, 2], {"k": "a\x00b", "p": "x\x00y"}),
                                   point([3, 4], {"k": "a\x00c"})])
    except grpc.RpcError as e:
        assert e.code() == grpc.StatusCode.INVALID_ARGUMENT, e
        # Both "k" and "p" of point 0 hold a NUL; either may be reported first.
        assert ('points[0].attributes["k"]' in e.details()
                or 'points[0].attributes["p"]' in e.details()), e.details()
        assert "NUL" in e.details(), e.details()
        info = get_source(server, "nul")
        assert info.point_count == 0 and info.last_seq == 0
        return
    assert (r.first_seq, r.last_seq) == (1, 2)
    assert get_source(server, "nul").point_count == 2, "distinct ids a\\0b and a\\0c merged"
    g = get_points(server, "nul", [{"k": "a\x00b"}, {"k": "a\x00c"}, {"k": "a"}]).results
    assert g[0].found and values_of(g[0].point.attributes) == {"k": "a\x00b", "p": "x\x00y"}
    assert vec_of(g[0].point.vector).tolist() == [1, 2]
    assert g[1].found and values_of(g[1].point.attributes) == {"k": "a\x00c"}
    assert vec_of(g[1].point.vector).tolist() == [3, 4]
    assert not g[2].found
