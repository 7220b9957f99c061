"""Filtered search, Count and Scroll, checked against numpy on Fashion-MNIST vectors with
synthetic attributes.

4000 Fashion-MNIST training vectors (784-d, L2) get an int64 `bucket` (the point's id mod
1000: `bucket < n` selects n/1000 of the points), a string `color`, a float64 `price` that a
tenth of the points lack, and a timestamp `at`. Flat must return exactly the brute force over
the passing points at 50%, 10%, 1% and 0.1%; HNSW (m 16, ef_construction 100) reaches
recall@10 >= 0.95 at each. Both run with and without attribute indexes on the filtered
attributes (spec.indexed_attributes), and the plan each query reports says which way it went. A query is short of k only when fewer than k points pass. Count
and Scroll agree with numpy, and every bad filter, cursor and page size gets
INVALID_ARGUMENT naming the field.
"""
from __future__ import annotations

import datetime as dt

import grpc
import numpy as np
import pytest

from hilbert.v1 import search_pb2 as S, types_pb2 as T
from hilbertdb import Attr, Flat, Hnsw, InvalidArgument, Point
from helpers import TIMEOUT, expect_status, fmnist
from model_fixtures import client

N = 4000
K = 10
COLORS = ["red", "green", "blue", "black"]
EPOCH = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)


def attrs_of(i: int) -> dict:
    a = {"id": i, "bucket": i % 1000, "color": COLORS[i % 4],
         "at": EPOCH + dt.timedelta(hours=i)}
    if i % 10:
        a["price"] = float(i % 97) + 0.5
    return a


@pytest.fixture(scope="module")
def loaded(module_server):
    s = module_server
    db = client(s)
    x, _ = fmnist("train", N)
    db.create_data_source("fm", dimension=784, permanent_attributes={"id": "int64"},
                          id_attributes=["id"])
    db.create_index("fm-flat", data_source="fm", algorithm=Flat(), metric="l2")
    db.create_index("fm-hnsw", data_source="fm", algorithm=Hnsw(m=16, ef_construction=100),
                    metric="l2")
    indexed = ["bucket", "color", "price", "at"]
    db.create_index("fm-flat-ai", data_source="fm", algorithm=Flat(), metric="l2",
                    indexed_attributes=indexed)
    db.create_index("fm-hnsw-ai", data_source="fm", algorithm=Hnsw(m=16, ef_construction=100),
                    metric="l2", indexed_attributes=indexed)
    up = None
    for b in range(0, N, 1000):
        up = db.upload("fm", [Point(x[i], attrs_of(i)) for i in range(b, b + 1000)])
    for name in ("fm-flat", "fm-hnsw", "fm-flat-ai", "fm-hnsw-ai"):
        db.wait_for_index(name, timeout=300)
    q, _ = fmnist("test", 30)
    yield s, db, x, np.asarray(q), up
    db.close()


def brute(x, q, mask, k):
    """ids of the k nearest passing points per query, and their squared distances."""
    ids = np.flatnonzero(mask)
    d = ((q[:, None, :].astype(np.float64) - x[ids][None, :, :]) ** 2).sum(-1)
    order = np.argsort(d, axis=1, kind="stable")[:, :k]
    return ids[order], np.take_along_axis(d, order, axis=1)


SELECTIVITIES = [500, 100, 10, 1]  # bucket < n: 50%, 10%, 1%, 0.1%


@pytest.mark.parametrize("indexed", [False, True], ids=["candidates", "attribute-index"])
@pytest.mark.parametrize("n", SELECTIVITIES)
def test_filtered_search_matches_brute_force(loaded, n, indexed):
    s, db, x, q, up = loaded
    suffix = "-ai" if indexed else ""
    mask = (np.arange(N) % 1000) < n
    want, wd = brute(x, q, mask, K)
    f = Attr("bucket") < n
    flat = db.search("fm-flat" + suffix, q, k=K, filter=f, min_seq=up, explain=True)
    hnsw = db.search("fm-hnsw" + suffix, q, k=K, filter=f, min_seq=up, explain=True)
    hits = 0
    for i in range(len(q)):
        for h in flat[i] + hnsw[i]:
            assert h.attributes["bucket"] < n, h.attributes
        got = [h.attributes["id"] for h in flat[i]]
        assert len(got) == min(K, int(mask.sum())), (n, i, got)
        # Flat is exact: the same distances as numpy (ties may swap ids).
        np.testing.assert_allclose([h.distance for h in flat[i]], wd[i], rtol=2e-4, atol=1e-2)
        hits += len(set(h.attributes["id"] for h in hnsw[i]) & set(want[i]))
        # Every distance is exact, HNSW's too.
        for h in hnsw[i]:
            d = float(((x[h.attributes["id"]].astype(np.float64) - q[i]) ** 2).sum())
            assert abs(h.distance - d) <= 1e-2 + 2e-4 * d, (h.distance, d)
    rec = hits / (len(q) * min(K, int(mask.sum())))
    print(f"bucket < {n}{suffix}: hnsw recall@10 {rec:.3f}; plans {hnsw.plans[:1]} / "
          f"{flat.plans[:1]}")
    assert rec >= 0.95, rec
    assert len(hnsw.plans) == len(q) and all(hnsw.plans)
    if indexed:
        # The index names the passing points; few are read one by one, more are searched.
        npass = int(mask.sum())
        read = f"attribute indexes: exactly {npass} points pass, each read"
        for algo, r in (("hnsw", hnsw), ("flat", flat)):
            within = f"{algo} search within the attribute indexes' exactly {npass} points"
            assert all(p.startswith(read if n <= 10 else within) for p in r.plans), r.plans
    elif n == 1:  # 4 points pass: an exact scan answers
        assert all(p.startswith("exact scan") for p in hnsw.plans), hnsw.plans
    elif n == 500:  # half pass: the engine's first candidates hold enough
        assert all(p.startswith("hnsw: ") for p in hnsw.plans), hnsw.plans


@pytest.mark.parametrize("n", [750, 900])
def test_filtered_walk_with_attribute_index(loaded, n):
    """More points pass than are worth reading one by one (3000 and 3600 of 4000): the engine
    searches only the labels the attribute index names (HNSW walks through the others), and
    the result matches the brute force as before."""
    s, db, x, q, up = loaded
    mask = (np.arange(N) % 1000) < n
    want, wd = brute(x, q, mask, K)
    f = Attr("bucket") < n
    hits = 0
    for name in ("fm-flat-ai", "fm-hnsw-ai"):
        r = db.search(name, q, k=K, filter=f, min_seq=up, explain=True)
        algo = name.split("-")[1]
        assert all(p.startswith(f"{algo} search within the attribute indexes' exactly "
                                f"{int(mask.sum())} points") for p in r.plans), r.plans
        for i in range(len(q)):
            assert len(r[i]) == K and all(h.attributes["bucket"] < n for h in r[i])
            if algo == "flat":
                np.testing.assert_allclose([h.distance for h in r[i]], wd[i], rtol=2e-4,
                                           atol=1e-2)
            else:
                hits += len(set(h.attributes["id"] for h in r[i]) & set(want[i]))
    assert hits / (len(q) * K) >= 0.95
    # A condition on an attribute without an index: the set bounds the passing points from
    # above, and the candidates are checked (id is not indexed).
    f2 = (Attr("bucket") < n) & (Attr("id") >= 2000)
    mask2 = mask & (np.arange(N) >= 2000)
    want2, wd2 = brute(x, q, mask2, K)
    r = db.search("fm-flat-ai", q, k=K, filter=f2, min_seq=up, explain=True)
    assert all("at most" in p for p in r.plans), r.plans
    for i in range(len(q)):
        np.testing.assert_allclose([h.distance for h in r[i]], wd2[i], rtol=2e-4, atol=1e-2)


def test_tree_filters_match_python(loaded):
    """all / any / not, one_of, open and closed ranges, timestamps, exists and missing, on
    payload attributes, each against the same test in Python over every point."""
    s, db, x, q, up = loaded
    t0 = EPOCH + dt.timedelta(hours=1000)
    cases = [
        (Attr("color").one_of(["red", "blue"]) & (Attr("price") >= 40) & (Attr("price") < 41),
         lambda a: a["color"] in ("red", "blue") and 40 <= a.get("price", -1) < 41),
        ((Attr("bucket") == 7) | (Attr("bucket") == 8) | Attr("price").missing(),
         lambda a: a["bucket"] in (7, 8) or "price" not in a),
        (~Attr("price").exists() & (Attr("at") > t0),
         lambda a: "price" not in a and a["at"] > t0),
        (Attr("price").between(10, 12, include_high=False) & (Attr("color") != "red"),
         lambda a: "price" in a and 10 <= a["price"] < 12 and a["color"] != "red"),
        (Attr("id").between(100, 130) & (Attr("price") > 3),  # int64 bound vs float64 value
         lambda a: 100 <= a["id"] <= 130 and a.get("price", 0) > 3),
    ]
    for f, py in cases:
        mask = np.array([py(attrs_of(i)) for i in range(N)])
        assert 0 < mask.sum() < N, f
        assert db.count("fm", f) == mask.sum(), f
        want, wd = brute(x, q[:5], mask, K)
        r = db.search("fm-flat", q[:5], k=K, filter=f, min_seq=up)
        for i in range(5):
            assert len(r[i]) == min(K, int(mask.sum()))
            assert all(py(attrs_of(h.attributes["id"])) for h in r[i]), f
            np.testing.assert_allclose([h.distance for h in r[i]], wd[i], rtol=2e-4, atol=1e-2)


def test_never_short_when_enough_pass(loaded):
    s, db, x, q, up = loaded
    # exactly 7 points pass: 7 hits, whatever k; none pass: none.
    f = Attr("id").one_of([5, 50, 500, 1500, 2500, 3500, 3999])
    for ix in ("fm-flat", "fm-hnsw"):
        r = db.search(ix, q[:3], k=K, filter=f, min_seq=up)
        assert [len(h) for h in r] == [7, 7, 7]
        assert db.search(ix, q[:1], k=K, filter=Attr("color") == "purple")[0] == []


def test_count_and_scroll(loaded):
    s, db, x, q, up = loaded
    assert db.count("fm") == N
    f = (Attr("bucket") < 25) & (Attr("color") == "green")
    mask = np.array([a["bucket"] < 25 and a["color"] == "green"
                     for a in map(attrs_of, range(N))])
    assert db.count("fm", f) == mask.sum() > 0
    # Pages of 7: every passing point once, in id order.
    seen, cursor, pages = [], b"", 0
    while True:
        pts, cursor = db.scroll_page("fm", cursor, 7, filter=f)
        pages += 1
        assert len(pts) <= 7
        seen += [p.attributes["id"] for p in pts]
        if not cursor:
            break
    assert seen == list(np.flatnonzero(mask)) and pages >= len(seen) // 7
    # Without a filter, with vectors: the whole source, each vector as uploaded.
    all_pts = list(db.scroll("fm", page_size=999, with_vectors=True))
    assert [p.attributes["id"] for p in all_pts] == list(range(N))
    np.testing.assert_array_equal(all_pts[123].vector, x[123])
    assert list(db.scroll("fm", Attr("bucket") < 2))[0].vector is None


def raw_search(s, f: T.Filter, index="fm-flat", k=K):
    req = S.SearchRequest(index=T.IndexRef(name=index, version="1"), k=k,
                          query_vectors=[T.Vector(dense=T.DenseVector(values=[0.0] * 784))],
                          filter=f)
    return s.search.Search(req, timeout=TIMEOUT)


def cond(name, **test):
    return T.Filter(condition=T.Condition(attribute=name, **test))


def nested(depth: int) -> T.Filter:
    f = cond("bucket", exists=True)
    for _ in range(depth - 1):
        f = T.Filter(negate=f)
    return f


def test_bad_filters_are_named(loaded):
    s, db, x, q, up = loaded
    V = T.AttributeValue
    cases = [
        (T.Filter(), "filter: one of all, any, negate or condition"),
        (T.Filter(all=T.FilterList()), "filter.all.filters: needs at least one"),
        (cond("id", equals=V(string_value="7")),
         'filter.condition.equals: attribute "id" is a permanent attribute of type int64'),
        (cond("", exists=True), "filter.condition.attribute: is required"),
        (cond("bucket"), "filter.condition: one of equals, one_of, range or exists"),
        (cond("price", equals=V(float64_value=1.5)), "cannot be tested for equality"),
        (cond("color", range=T.Range(gt=V(string_value="a"))), "a range takes int64"),
        (cond("price", range=T.Range()), "filter.condition.range: needs gt, gte, lt or lte"),
        (cond("price", range=T.Range(gt=V(int64_value=1), gte=V(int64_value=2))),
         "give gt or gte, not both"),
        (cond("price", range=T.Range(gt=V(float64_value=float("nan")))), "a bound is NaN"),
        (cond("at", range=T.Range(gt=V(timestamp_micros=1), lt=V(int64_value=5))),
         "both must be timestamps or numbers"),
        (cond("color", one_of=T.ValueList()), "filter.condition.one_of.values: needs at least"),
        (cond("color", one_of=T.ValueList(values=[V(string_value="a"), V()])),
         "filter.condition.one_of.values[1]: value is not set"),
        (T.Filter(any=T.FilterList(filters=[cond("bucket", exists=True), T.Filter()])),
         "filter.any.filters[1]: one of all"),
        (nested(17), "nests deeper than 16 levels"),
        (T.Filter(all=T.FilterList(filters=[cond("bucket", exists=True)] * 257)), "257 filters"),
    ]
    for f, msg in cases:
        with expect_status(grpc.StatusCode.INVALID_ARGUMENT, msg):
            raw_search(s, f)
    # 16 levels are allowed: 15 negations of "exists" pass nothing, 14 pass everything.
    assert len(raw_search(s, nested(16)).results[0].hits) == 0
    assert len(raw_search(s, nested(15)).results[0].hits) == K
    # The Python client names the same field.
    with pytest.raises(InvalidArgument, match=r"filter\.condition\.equals"):
        db.count("fm", Attr("id") == "seven")
    with pytest.raises(TypeError, match="truth value"):
        db.search("fm-flat", q[0], filter=(Attr("bucket") < 5) and (Attr("id") > 3))


def test_nesting_bomb_is_refused_before_unpacking(loaded):
    """A request nested 100,000 deep (each level 2 bytes on the wire) gets INVALID_ARGUMENT:
    the server checks the depth before protobuf-c, which recurses without a limit, unpacks
    it; then it goes on serving."""
    s, db, x, q, up = loaded
    inner = cond("bucket", exists=True).SerializeToString()
    prefixes, size = [], len(inner)
    for _ in range(100000):  # Filter.negate = 3, from the inside out
        p = b"\x1a" + _varint(size)
        prefixes.append(p)
        size += len(p)
    inner = b"".join(reversed(prefixes)) + inner
    head = S.SearchRequest(index=T.IndexRef(name="fm-flat", version="1"), k=1,
                           query_vectors=[T.Vector(dense=T.DenseVector(values=[0.0] * 784))]
                           ).SerializeToString()
    body = head + b"\x42" + _varint(len(inner)) + inner  # SearchRequest.filter = 8
    call = s.channel.unary_unary("/hilbert.v1.Search/Search",
                                 request_serializer=lambda b: b,
                                 response_deserializer=S.SearchResponse.FromString)
    with expect_status(grpc.StatusCode.INVALID_ARGUMENT, "nested too deeply"):
        call(body, timeout=60)
    assert db.count("fm") == N


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def test_bad_scroll_and_count_inputs(loaded, tmp_path):
    s, db, x, q, up = loaded
    with pytest.raises(InvalidArgument, match=r"limit: must be 1 \.\. limits.max_points_per_upload"):
        db.scroll_page("fm", b"", 0)
    with pytest.raises(InvalidArgument, match="limit: must be 1"):
        db.scroll_page("fm", b"", 10001)
    with pytest.raises(InvalidArgument, match="cursor: not a cursor that Scroll returned"):
        db.scroll_page("fm", b"garbage", 10)
    db.create_data_source("other", dimension=784, permanent_attributes={"id": "int64"},
                          id_attributes=["id"])
    db.upload("other", [Point(x[i], {"id": i}) for i in range(30)])
    _, foreign = db.scroll_page("other", b"", 10)
    assert foreign
    with pytest.raises(InvalidArgument, match="cursor: it belongs to another data source than fm@1"):
        db.scroll_page("fm", foreign, 10)
    with pytest.raises(InvalidArgument, match=r'filter.condition.range: attribute "id" is a permanent'):
        db.count("other", Attr("id") > EPOCH)
    from hilbertdb import NotFound
    with pytest.raises(NotFound):
        db.count("nope")
    db.drop_data_source("other")


def test_find_similar_takes_a_filter(make_server, tmp_path):
    """The model-space finds take the same filter: hits of FindSimilarImage and
    FindSimilarById all pass it, and a bad one is named."""
    from hilbertdb import ImageInput
    from hilbertdb.datasets import load_fashion_mnist
    from model_fixtures import FMNIST_MEAN, FMNIST_STD, MODELS_DIR, png_bytes, write_config
    s = make_server(config=write_config(tmp_path / "hilbertd.yaml", [], models_dir=MODELS_DIR))
    db = client(s)
    db.create_model_space("mlp", "fmnist_mlp.pt", output_dim=32,
                          input=ImageInput(28, 28, 1, mean=[FMNIST_MEAN], std=[FMNIST_STD]),
                          permanent_attributes={"label": "int64"})
    images, labels = load_fashion_mnist("test")
    seq = None
    for i in range(60):
        seq = db.add_image(f"i{i}", png_bytes(images[i]), "mlp",
                           attributes={"label": int(labels[i]), "n": i})
    threes = {f"i{i}" for i in range(60) if labels[i] == 3}
    f = (Attr("label") == 3) & (Attr("n") >= 0)
    hits = db.find_similar_image(png_bytes(images[0]), "mlp", k=50, filter=f, min_seq=seq)["mlp"]
    assert {h.id for h in hits} == threes
    hits = db.find_similar_by_id("i1", "mlp", k=3, filter=~(Attr("label") == 3))["mlp"]
    assert len(hits) == 3 and not any(h.id in threes for h in hits)
    with pytest.raises(InvalidArgument, match=r'filter.condition.equals: attribute "label"'):
        db.find_similar_image(png_bytes(images[0]), "mlp", filter=Attr("label") == "three")
    db.close()


def test_set_and_delete_payload(loaded):
    """Payload changes by id, without the vectors: a new version of each point in one write,
    which the index follows; permanent attributes and unknown ids are refused, whole."""
    from hilbertdb import NotFound
    s, db, x, q, up = loaded
    db.create_data_source("pay", dimension=4, permanent_attributes={"id": "int64", "kind": "string"},
                          id_attributes=["id"])
    db.create_index("pay-flat", data_source="pay", algorithm=Flat(), metric="l2")
    v = np.random.default_rng(3).random((100, 4), dtype=np.float32)
    first = db.upload("pay", [Point(v[i], {"id": i, "kind": "k", "price": float(i)})
                              for i in range(100)])
    r = db.set_payload("pay", [1, 2, 3], {"price": 99.0, "tag": "new"})
    assert (r.first_seq, r.last_seq) == (first.last_seq + 1, first.last_seq + 3)
    got = db.get("pay", [1, 2, 3, 4])
    for p, i in zip(got[:3], (1, 2, 3)):
        np.testing.assert_array_equal(p.vector, v[i])
        assert p.attributes == {"id": i, "kind": "k", "price": 99.0, "tag": "new"}
        assert p.seq >= r.first_seq
    assert got[3].attributes == {"id": 4, "kind": "k", "price": 4.0}
    hits = db.search("pay-flat", v[0], k=10, filter=Attr("tag") == "new", min_seq=r)[0]
    assert sorted(h.id for h in hits) == [1, 2, 3]
    r2 = db.delete_payload("pay", [1], ["tag", "absent"])
    assert db.get("pay", [1])[0].attributes == {"id": 1, "kind": "k", "price": 99.0}
    hits = db.search("pay-flat", v[0], k=10, filter=Attr("tag").exists(), min_seq=r2)[0]
    assert sorted(h.id for h in hits) == [2, 3]
    # Refused whole: nothing of the call is written.
    last = db.get_data_source("pay").last_seq
    with pytest.raises(NotFound, match=r"ids\[1\]: no point of pay@1 has these id attributes"):
        db.set_payload("pay", [5, 1000], {"price": 1.0})
    with pytest.raises(InvalidArgument, match=r'payload\["kind"\]: is a permanent attribute'):
        db.set_payload("pay", [5], {"kind": "z"})
    with pytest.raises(InvalidArgument, match="payload: at least one attribute is required"):
        db.set_payload("pay", [5], {})
    with pytest.raises(InvalidArgument, match=r'keys\[0\]: "id" is a permanent attribute'):
        db.delete_payload("pay", [5], ["id"])
    with pytest.raises(InvalidArgument, match="keys: at least one attribute is required"):
        db.delete_payload("pay", [5], [])
    with pytest.raises(InvalidArgument, match=r'ids\[0\]\.id_attributes\["id"\]: has type string'):
        db.set_payload("pay", [{"id": "5"}], {"price": 1.0})
    assert db.get_data_source("pay").last_seq == last
    assert db.get("pay", [5])[0].attributes["price"] == 5.0


def test_delete_by_filter(loaded):
    s, db, x, q, up = loaded
    db.create_data_source("dbf", dimension=4, permanent_attributes={"id": "int64"},
                          id_attributes=["id"])
    db.create_index("dbf-flat", data_source="dbf", algorithm=Flat(), metric="l2")
    v = np.random.default_rng(4).random((300, 4), dtype=np.float32)
    db.upload("dbf", [Point(v[i], {"id": i, "b": i % 10}) for i in range(300)])
    n, r = db.delete_by_filter("dbf", (Attr("b") >= 7) | (Attr("id") < 5))
    # b in 7..9: 90 points; ids 0..4 (b 0..4) are not among them: 95.
    assert n == 95 and r.last_seq - r.first_seq + 1 == n
    assert db.count("dbf") == 300 - n
    assert db.count("dbf", Attr("b") >= 7) == 0
    hits = db.search("dbf-flat", v[:5], k=300, min_seq=r)
    assert all(len(h) == 300 - n for h in hits)
    assert all(hit.attributes["b"] < 7 and hit.id >= 5 for h in hits for hit in h)
    # Nothing passes: nothing written.
    last = db.get_data_source("dbf").last_seq
    assert db.delete_by_filter("dbf", Attr("b") == 8) == (0, type(r)(0, 0))
    assert db.get_data_source("dbf").last_seq == last
    with pytest.raises(InvalidArgument, match=r"filter.condition.range: a range takes int64"):
        db.delete_by_filter("dbf", Attr("id") > "x")
    assert db.count("dbf") == 300 - n
    from hilbert.v1 import points_pb2 as P
    with expect_status(grpc.StatusCode.INVALID_ARGUMENT, "filter: is required"):
        s.points.DeleteByFilter(P.DeleteByFilterRequest(
            data_source=T.DataSourceRef(name="dbf", version="1")), timeout=TIMEOUT)


def test_delete_by_filter_limit(make_server, tmp_path):
    cfg = tmp_path / "hilbertd.yaml"
    cfg.write_text("limits:\n  max_points_per_delete: 5\n")
    db = client(make_server(config=cfg))
    db.create_data_source("d", dimension=2, permanent_attributes={"id": "int64"},
                          id_attributes=["id"])
    db.upload("d", [Point([i, 0], {"id": i}) for i in range(10)])
    from hilbertdb import ResourceExhausted
    with pytest.raises(ResourceExhausted, match=r"more than limits.max_points_per_delete \(5\)"):
        db.delete_by_filter("d", Attr("id") >= 0)
    assert db.count("d") == 10
    assert db.delete_by_filter("d", Attr("id") < 5)[0] == 5
    assert db.count("d") == 5
    db.close()


def test_scroll_is_in_id_order(make_server):
    """Points uploaded in a shuffled order come back by id: int64 ids numerically (negative
    first), string ids shorter first, then bytewise; a cursor goes on after the last id it saw,
    so points written between pages appear when their id lies after it."""
    s = make_server()
    db = client(s)
    rng = np.random.default_rng(3)
    db.create_data_source("ints", dimension=2, permanent_attributes={"n": "int64"},
                          id_attributes=["n"])
    ids = rng.permutation(np.arange(-300, 300))
    db.upload("ints", [Point([float(i), 0.0], {"n": int(i)}) for i in ids])
    got = [p.attributes["n"] for p in db.scroll("ints", page_size=64)]
    assert got == list(range(-300, 300))
    evens = [p.attributes["n"] for p in db.scroll("ints", Attr("n") > 250, page_size=7)]
    assert evens == list(range(251, 300))
    # A page, then new points before and after the cursor, then the rest.
    first, cursor = db.scroll_page("ints", b"", 10)
    assert [p.attributes["n"] for p in first] == list(range(-300, -290))
    db.upload("ints", [Point([0.0, 0.0], {"n": n}) for n in (-1000, 1000)])
    rest = []
    while cursor:
        page, cursor = db.scroll_page("ints", cursor, 100)
        rest += [p.attributes["n"] for p in page]
    assert rest == list(range(-290, 300)) + [1000]

    db.create_data_source("strs", dimension=2, permanent_attributes={"key": "string"},
                          id_attributes=["key"])
    keys = ["b", "aa", "a", "ab", "ba", "c", "abc", "", "zz"]
    db.upload("strs", [Point([0.0, 0.0], {"key": k}) for k in rng.permutation(keys)])
    got = [p.attributes["key"] for p in db.scroll("strs", page_size=2)]
    assert got == sorted(keys, key=lambda k: (len(k), k.encode()))
