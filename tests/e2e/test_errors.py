"""Bad input: each gets the right status and a message naming the field; the server stays up
(health check after each); a rejected upload writes nothing (last_seq, point_count and the
index status unchanged, the batch's other points absent, the existing points untouched)."""
import grpc
import numpy as np
import pytest

from hilbert.v1 import points_pb2, search_pb2
from hilbert.v1 import types_pb2 as T

from helpers import (COSINE, INT64, L2, STRING, TIMEOUT, assert_serving, attrs,
                     create_index, create_source, ds_ref, expect_status, get_index,
                     get_points, get_source, index_spec, ix_ref, point, search, source_spec,
                     tombstone, upload, values_of, vec, vec_of, wait_ready)

Code = grpc.StatusCode
DIM = 4
EXISTING = {1: [1, 0, 0, 0], 2: [0, 1, 0, 0], 3: [0, 0, 1, 0]}
NAN, INF = float("nan"), float("inf")


@pytest.fixture(scope="module")
def srv(module_server):
    s = module_server
    create_source(s, source_spec("e", DIM, [("id", INT64), ("label", INT64), ("name", STRING)],
                                 ["id"]))
    create_index(s, index_spec("e-l2", "e", L2, ["label"]))
    create_index(s, index_spec("e-cos", "e", COSINE))
    upload(s, "e", [point(v, {"id": i, "label": 0, "name": f"n{i}", "pay": i})
                    for i, v in EXISTING.items()])
    return s


def good(i, **over):
    a = {"id": i, "label": 1, "name": "new"}
    a.update(over)
    return point([0.5, 0.5, 0.5, 0.5], a)


def state(s):
    info = get_source(s, "e")
    ix = [wait_ready(s, n).status for n in ("e-l2", "e-cos")]
    return (info.last_seq, info.point_count,
            [(x.size, x.applied_seq, len(x.splits)) for x in ix])


def assert_nothing_written(s, before, fresh_ids):
    assert state(s) == before
    g = get_points(s, "e", [{"id": i} for i in list(fresh_ids) + list(EXISTING)]).results
    for i, r in zip(fresh_ids, g):
        assert not r.found, f"id {i} of a rejected batch was written"
    for (i, v), r in zip(EXISTING.items(), g[len(fresh_ids):]):
        assert r.found and vec_of(r.point.vector).tolist() == v
        assert values_of(r.point.attributes) == {"id": i, "label": 0, "name": f"n{i}", "pay": i}


def raw_point(vector=None, deleted=False, **attributes):
    """A DataPoint with raw AttributeValues (for unset values)."""
    p = T.DataPoint(is_deleted=deleted)
    if vector is not None:
        p.vector.CopyFrom(vector)
    for k, v in attributes.items():
        p.attributes[k].CopyFrom(v)
    return p


BAD_UPLOADS = [
    # (id, bad point at index 1 (index 0 is a good new point 1000), code, fields in details)
    ("wrong-dimension", point([1, 2, 3], {"id": 1001, "label": 1, "name": "x"}),
     ["points[1].vector", "dimension"]),
    ("too-long-vector", point([1, 2, 3, 4, 5], {"id": 1001, "label": 1, "name": "x"}),
     ["points[1].vector", "dimension"]),
    ("empty-vector", point([], {"id": 1001, "label": 1, "name": "x"}),
     ["points[1].vector"]),
    ("nan", point([0, 1, NAN, 0], {"id": 1001, "label": 1, "name": "x"}),
     ["points[1].vector", "component 2", "NaN"]),
    ("plus-inf", point([INF, 1, 0, 0], {"id": 1001, "label": 1, "name": "x"}),
     ["points[1].vector", "component 0"]),
    ("minus-inf", point([0, 1, 0, -INF], {"id": 1001, "label": 1, "name": "x"}),
     ["points[1].vector", "component 3"]),
    ("missing-vector", point(None, {"id": 1001, "label": 1, "name": "x"}),
     ["points[1].vector"]),
    ("vector-without-kind", raw_point(T.Vector(), **attrs({"id": 1001, "label": 1,
                                                           "name": "x"})),
     ["points[1].vector"]),
    ("mistyped-permanent", point([1, 1, 1, 1], {"id": 1001, "label": "1", "name": "x"}),
     ['points[1].attributes["label"]']),
    ("mistyped-id", point([1, 1, 1, 1], {"id": "1001", "label": 1, "name": "x"}),
     ['points[1].attributes["id"]']),
    ("missing-permanent", point([1, 1, 1, 1], {"id": 1001, "name": "x"}),
     ["points[1].attributes", "label"]),
    ("missing-id", point([1, 1, 1, 1], {"label": 1, "name": "x"}),
     ["points[1].attributes", "id"]),
    ("tombstone-missing-id", tombstone({"label": 1}), ["points[1].attributes", "id"]),
    ("tombstone-mistyped-id", tombstone({"id": 1.0}), ['points[1].attributes["id"]']),
    ("unset-payload-value", raw_point(vec([1, 1, 1, 1]), **attrs({"id": 1001, "label": 1,
                                                                  "name": "x"}),
                                      extra=T.AttributeValue()),
     ['points[1].attributes["extra"]']),
    ("unset-permanent-value", raw_point(vec([1, 1, 1, 1]), **attrs({"id": 1001, "name": "x"}),
                                        label=T.AttributeValue()),
     ['points[1].attributes["label"]']),
    ("unset-id-in-tombstone", raw_point(None, deleted=True, id=T.AttributeValue()),
     ['points[1].attributes["id"]']),
    ("changed-permanent", point([1, 1, 1, 1], {"id": 2, "label": 7, "name": "n2"}),
     ['points[1].attributes["label"]']),
    ("changed-permanent-string", point([1, 1, 1, 1], {"id": 3, "label": 0, "name": "other"}),
     ['points[1].attributes["name"]']),
    ("empty-attribute-name", point([1, 1, 1, 1], {"id": 1001, "label": 1, "name": "x",
                                                  "": 1}),
     ["points[1].attributes"]),
    ("value-too-long", point([1, 1, 1, 1], {"id": 1001, "label": 1, "name": "x",
                                            "big": "x" * 65537}),
     ['points[1].attributes["big"]']),
]


@pytest.mark.parametrize("bad,fields", [(p, f) for _, p, f in BAD_UPLOADS],
                         ids=[i for i, _, _ in BAD_UPLOADS])
def test_rejected_upload_writes_nothing(srv, bad, fields):
    before = state(srv)
    with expect_status(Code.INVALID_ARGUMENT, *fields):
        upload(srv, "e", [good(1000), bad, good(1002)])
    assert_serving(srv)
    assert_nothing_written(srv, before, [1000, 1001, 1002])


def test_changed_permanent_within_one_batch(srv):
    """The second upload of a new id in the same batch changes a permanent attribute."""
    before = state(srv)
    with expect_status(Code.INVALID_ARGUMENT, 'points[2].attributes["label"]'):
        upload(srv, "e", [good(1000), good(1005, label=1), good(1005, label=2)])
    assert_serving(srv)
    assert_nothing_written(srv, before, [1000, 1005])


def test_too_many_attributes(srv):
    before = state(srv)
    many = {"id": 1001, "label": 1, "name": "x"}
    many.update({f"p{i}": i for i in range(62)})  # 65 > limits.max_attributes (64)
    with pytest.raises(grpc.RpcError) as e:
        upload(srv, "e", [good(1000), point([1, 1, 1, 1], many)])
    assert e.value.code() in (Code.INVALID_ARGUMENT, Code.RESOURCE_EXHAUSTED), e.value
    assert "points[1].attributes" in e.value.details()
    assert_serving(srv)
    assert_nothing_written(srv, before, [1000, 1001])
    # 64 attributes are fine.
    many.pop("p61")
    r = upload(srv, "e", [point([1, 1, 1, 1], dict(many, id=2000))])
    assert get_points(srv, "e", [{"id": 2000}]).results[0].seq == r.first_seq
    upload(srv, "e", [tombstone({"id": 2000})])


def test_empty_upload(srv):
    before = state(srv)
    with expect_status(Code.INVALID_ARGUMENT, "points"):
        upload(srv, "e", [])
    assert_serving(srv)
    assert state(srv) == before


def test_upload_unknown_or_missing_source(srv):
    before = state(srv)
    with expect_status(Code.NOT_FOUND, "data_source", "nosuch"):
        upload(srv, "nosuch", [good(1000)])
    with expect_status(Code.NOT_FOUND, "data_source"):
        upload(srv, "e", [good(1000)], version="2")
    with expect_status(Code.INVALID_ARGUMENT, "data_source"):
        srv.points.Upload(points_pb2.UploadRequest(points=[good(1000)]), timeout=TIMEOUT)
    with expect_status(Code.INVALID_ARGUMENT, "data_source.name"):
        upload(srv, "bad name", [good(1000)])
    assert_serving(srv)
    assert_nothing_written(srv, before, [1000])


def raw_get(srv, ids, source=None):
    req = points_pb2.GetPointsRequest(data_source=source or ds_ref("e"))
    for i in ids:
        pid = req.ids.add()
        for k, v in i.items():
            pid.id_attributes[k].CopyFrom(v)
    return srv.points.Get(req, timeout=TIMEOUT)


BAD_GETS = [
    ("missing-id", [{"id": 1}, {}], ["ids[1].id_attributes", "id"]),
    ("non-id-attribute", [{"id": 1, "label": 0}], ['ids[0].id_attributes["label"]']),
    ("only-non-id-attribute", [{"name": "n1"}], ['ids[0].id_attributes["name"]']),
    ("mistyped-id", [{"id": "1"}], ['ids[0].id_attributes["id"]']),
    ("unset-id", [{"id": T.AttributeValue()}], ['ids[0].id_attributes["id"]']),
]


@pytest.mark.parametrize("ids,fields", [(i, f) for _, i, f in BAD_GETS],
                         ids=[i for i, _, _ in BAD_GETS])
def test_bad_get(srv, ids, fields):
    with expect_status(Code.INVALID_ARGUMENT, *fields):
        raw_get(srv, [attrs(i) for i in ids])
    assert_serving(srv)


def test_get_empty_and_unknown_source(srv):
    with expect_status(Code.INVALID_ARGUMENT, "ids"):
        raw_get(srv, [])
    with expect_status(Code.NOT_FOUND, "data_source", "nosuch"):
        get_points(srv, "nosuch", [{"id": 1}])
    with expect_status(Code.INVALID_ARGUMENT, "data_source"):
        srv.points.Get(points_pb2.GetPointsRequest(
            ids=[points_pb2.PointId(id_attributes=attrs({"id": 1}))]), timeout=TIMEOUT)
    assert_serving(srv)


Q = np.array([[1, 2, 3, 4]], dtype=np.float32)


def raw_search(srv, index="e-l2", queries=None, k=5, split_filter=None):
    req = search_pb2.SearchRequest(k=k)
    if index is not None:
        req.index.CopyFrom(ix_ref(index))
    for q in (queries if queries is not None else [vec(Q[0])]):
        req.query_vectors.add().CopyFrom(q)
    for kk, v in (split_filter or {}).items():
        req.split_filter[kk].CopyFrom(v)
    return srv.search.Search(req, timeout=TIMEOUT)


BAD_SEARCHES = [
    ("k-0", dict(k=0), Code.INVALID_ARGUMENT, ["k"]),
    ("k-negative", dict(k=-1), Code.INVALID_ARGUMENT, ["k"]),
    ("k-int32-min", dict(k=-2 ** 31), Code.INVALID_ARGUMENT, ["k"]),
    ("k-above-max", dict(k=10001), Code.INVALID_ARGUMENT, ["k", "max_k"]),
    ("k-int32-max", dict(k=2 ** 31 - 1), Code.INVALID_ARGUMENT, ["k"]),
    ("no-queries", dict(queries=[]), Code.INVALID_ARGUMENT, ["query_vectors"]),
    ("query-wrong-dimension", dict(queries=[vec(Q[0]), vec([1, 2, 3])]),
     Code.INVALID_ARGUMENT, ["query_vectors[1]", "dimension"]),
    ("query-nan", dict(queries=[vec([1, NAN, 0, 0])]), Code.INVALID_ARGUMENT,
     ["query_vectors[0]", "component 1"]),
    ("query-inf", dict(queries=[vec(Q[0]), vec([1, 0, 0, -INF])]), Code.INVALID_ARGUMENT,
     ["query_vectors[1]", "component 3"]),
    ("query-without-kind", dict(queries=[T.Vector()]), Code.INVALID_ARGUMENT,
     ["query_vectors[0]"]),
    ("zero-query-cosine", dict(index="e-cos", queries=[vec(Q[0]), vec([0, 0, 0, 0])]),
     Code.INVALID_ARGUMENT, ["query_vectors[1]"]),
    ("filter-key-not-split", dict(split_filter=attrs({"name": "n1"})), Code.INVALID_ARGUMENT,
     ["split_filter", "name"]),
    ("filter-key-id", dict(split_filter=attrs({"label": 0, "id": 1})), Code.INVALID_ARGUMENT,
     ["split_filter", "id"]),
    ("filter-on-unsplit-index", dict(index="e-cos", split_filter=attrs({"label": 0})),
     Code.INVALID_ARGUMENT, ["split_filter", "label"]),
    ("filter-unknown-key", dict(split_filter=attrs({"nope": 0})), Code.INVALID_ARGUMENT,
     ["split_filter", "nope"]),
    ("filter-wrong-type", dict(split_filter=attrs({"label": "0"})), Code.INVALID_ARGUMENT,
     ['split_filter["label"]']),
    ("filter-wrong-type-bool", dict(split_filter=attrs({"label": True})),
     Code.INVALID_ARGUMENT, ['split_filter["label"]']),
    ("filter-unset-value", dict(split_filter={"label": T.AttributeValue()}),
     Code.INVALID_ARGUMENT, ['split_filter["label"]']),
    ("unknown-index", dict(index="nosuch"), Code.NOT_FOUND, ["index", "nosuch"]),
    ("missing-index", dict(index=None), Code.INVALID_ARGUMENT, ["index"]),
    ("bad-index-name", dict(index="a/b"), Code.INVALID_ARGUMENT, ["index.name"]),
]


@pytest.mark.parametrize("kw,code,fields", [(k, c, f) for _, k, c, f in BAD_SEARCHES],
                         ids=[i for i, _, _, _ in BAD_SEARCHES])
def test_bad_search(srv, kw, code, fields):
    with expect_status(code, *fields):
        raw_search(srv, **kw)
    assert_serving(srv)
    # A good search still works.
    assert len(search(srv, "e-l2", Q, 10).results[0].hits) == 3


def test_zero_query_allowed_under_l2(srv):
    res = search(srv, "e-l2", np.zeros(DIM), 10).results[0]
    assert sorted(h.distance for h in res.hits) == [1.0, 1.0, 1.0]


def test_k_at_max_is_fine(srv):
    res = search(srv, "e-l2", Q, 10000).results[0]
    assert len(res.hits) == 3


# ------------------------------------------------------------------ lowered limits via config

LIMITS_YAML = """
server:
  max_receive_message_bytes: 64KiB
  max_send_message_bytes: 16KiB
limits:
  max_points_per_upload: 10
  max_query_vectors: 5
  max_k: 50
  max_value_bytes: 100
  max_attributes: 4
  max_dimension: 300
"""


@pytest.fixture
def limited(make_server, tmp_path):
    cfg = tmp_path / "limits.yaml"
    cfg.write_text(LIMITS_YAML)
    s = make_server(config=cfg)
    create_source(s, source_spec("e", 256, [("id", INT64)], ["id"]))
    create_index(s, index_spec("e-ix", "e", L2))
    return s


def pts256(ids, **extra):
    rng = np.random.default_rng(0)
    return [point(rng.random(256), dict({"id": i}, **extra)) for i in ids]


def test_limit_points_per_upload(limited):
    s = limited
    with expect_status(Code.RESOURCE_EXHAUSTED, "points", "max_points_per_upload"):
        upload(s, "e", pts256(range(11)))
    assert_serving(s)
    info = get_source(s, "e")
    assert info.last_seq == 0 and info.point_count == 0
    r = upload(s, "e", pts256(range(10)))
    assert (r.first_seq, r.last_seq) == (1, 10)
    with expect_status(Code.RESOURCE_EXHAUSTED, "ids", "max_points_per_upload"):
        get_points(s, "e", [{"id": i} for i in range(11)])
    assert all(x.found for x in get_points(s, "e", [{"id": i} for i in range(10)]).results)
    assert_serving(s)


def test_limit_query_vectors_and_k(limited):
    s = limited
    upload(s, "e", pts256(range(10)))
    q = np.random.default_rng(1).random((6, 256))
    with expect_status(Code.RESOURCE_EXHAUSTED, "query_vectors", "max_query_vectors"):
        search(s, "e-ix", q, 3)
    assert len(search(s, "e-ix", q[:5], 3).results) == 5
    with expect_status(Code.INVALID_ARGUMENT, "k", "max_k"):
        search(s, "e-ix", q[:1], 51)
    assert len(search(s, "e-ix", q[:1], 50).results[0].hits) == 10
    assert_serving(s)


def test_limit_dimension_value_bytes_and_attributes(limited):
    s = limited
    with expect_status(Code.INVALID_ARGUMENT, "spec.dimension", "300"):
        create_source(s, source_spec("big", 301))
    create_source(s, source_spec("big", 300))
    with expect_status(Code.INVALID_ARGUMENT, 'points[0].attributes["s"]'):
        upload(s, "e", pts256([1], s="x" * 101))
    with expect_status(Code.INVALID_ARGUMENT, 'points[0].attributes["b"]'):
        upload(s, "e", pts256([1], b=b"x" * 101))
    upload(s, "e", pts256([1], s="x" * 100, b=b"y" * 100))
    with pytest.raises(grpc.RpcError) as e:
        upload(s, "e", pts256([2], a=1, b=2, c=3, d=4))
    assert e.value.code() in (Code.INVALID_ARGUMENT, Code.RESOURCE_EXHAUSTED)
    assert "points[0].attributes" in e.value.details()
    assert get_source(s, "e").point_count == 1
    assert_serving(s)


def test_oversize_request_message(limited):
    s = limited
    # ~80 KiB: above server.max_receive_message_bytes (64 KiB) but far below the client's.
    q = np.random.default_rng(2).random((1, 256)).astype(np.float32)
    big = search_pb2.SearchRequest(index=ix_ref("e-ix"), k=1,
                                   query_vectors=[vec(q[0])] * 80)
    assert big.ByteSize() > 64 * 1024
    with expect_status(Code.RESOURCE_EXHAUSTED):
        s.search.Search(big, timeout=TIMEOUT)
    up = points_pb2.UploadRequest(data_source=ds_ref("e"), points=pts256(range(10)))
    up.points[0].attributes["pad"].bytes_value = b"z" * (70 * 1024)
    with expect_status(Code.RESOURCE_EXHAUSTED):
        s.points.Upload(up, timeout=TIMEOUT)
    assert_serving(s)
    info = get_source(s, "e")
    assert info.last_seq == 0 and info.point_count == 0


def test_oversize_response_message(limited):
    s = limited
    upload(s, "e", pts256(range(10)))
    q = np.random.default_rng(3).random((5, 256))
    # 5 queries x 10 hits x 256 floats = 50 KiB of vectors > max_send_message_bytes (16 KiB).
    with expect_status(Code.RESOURCE_EXHAUSTED, "max_send_message_bytes"):
        search(s, "e-ix", q, 10, retrieve_vectors=True)
    # Without the vectors the same search fits.
    assert len(search(s, "e-ix", q, 10).results) == 5
    assert_serving(s)


# ------------------------------------------------------------------ invalid UTF-8 in strings

def _with_invalid_utf8(req, marker: bytes) -> bytes:
    """Serialises req, then turns the one bytes_value (field 5) holding `marker` into a
    string_value (field 1) with the same payload: a string field with invalid UTF-8."""
    raw = req.SerializeToString()
    old = b"\x2a" + bytes([len(marker)]) + marker
    assert raw.count(old) == 1
    return raw.replace(old, b"\x0a" + bytes([len(marker)]) + marker)


def _utf8_source(server):
    create_source(server, source_spec("u", DIM, [("id", STRING), ("label", STRING)], ["id"]))
    create_index(server, index_spec("u-ix", "u", L2, ["label"]))
    upload(server, "u", [point([1, 0, 0, 0], {"id": "a", "label": "x"})])


def test_invalid_utf8_string_attribute_rejected(server):
    """proto3 string fields must hold valid UTF-8. A string attribute value with invalid UTF-8
    must be rejected (INVALID_ARGUMENT, like any undecodable request), not stored: once stored,
    every Get or Search response carrying it is unparseable for conforming clients."""
    _utf8_source(server)
    bad = b"\xff\xfe\xfd"
    call = server.channel.unary_unary("/hilbert.v1.Points/Upload")
    for where in ("payload", "id", "permanent"):
        a = {"id": "b", "label": "x", "p": "ok"}
        a[{"payload": "p", "id": "id", "permanent": "label"}[where]] = bad
        req = points_pb2.UploadRequest(data_source=ds_ref("u"),
                                       points=[point([1, 1, 1, 1], a)])
        with expect_status(Code.INVALID_ARGUMENT):
            call(_with_invalid_utf8(req, bad), timeout=TIMEOUT)
        assert_serving(server)
        info = get_source(server, "u")
        assert (info.last_seq, info.point_count) == (1, 1), f"{where}: the upload was stored"
    # Reading back gives parseable responses.
    assert not get_points(server, "u", [{"id": "b"}]).results[0].found
    assert len(search(server, "u-ix", [1, 1, 1, 1], 10).results[0].hits) == 1


def test_invalid_utf8_get_id_and_split_filter_rejected(server):
    _utf8_source(server)
    bad = b"\xc3\x28"
    req = points_pb2.GetPointsRequest(data_source=ds_ref("u"), ids=[
        points_pb2.PointId(id_attributes=attrs({"id": bad}))])
    with expect_status(Code.INVALID_ARGUMENT):
        server.channel.unary_unary("/hilbert.v1.Points/Get")(_with_invalid_utf8(req, bad),
                                                             timeout=TIMEOUT)
    req = search_pb2.SearchRequest(index=ix_ref("u-ix"), k=1, query_vectors=[vec(Q[0])],
                                   split_filter=attrs({"label": bad}))
    with expect_status(Code.INVALID_ARGUMENT):
        server.channel.unary_unary("/hilbert.v1.Search/Search")(_with_invalid_utf8(req, bad),
                                                                timeout=TIMEOUT)
    assert_serving(server)


# ------------------------------------------------------------------ garbage instead of protobuf

METHODS = ["/hilbert.v1.Catalog/" + m for m in (
    "CreateDataSource", "GetDataSource", "ListDataSources", "DropDataSource", "CreateIndex",
    "GetIndex", "ListIndices", "DropIndex")] + ["/hilbert.v1.Points/Upload",
                                                "/hilbert.v1.Points/Get",
                                                "/hilbert.v1.Search/Search"]
GARBAGE = [
    b"\x0a\x05ab",          # field 1, length 5, only 2 bytes follow
    b"\xff" * 11,           # a varint tag longer than 10 bytes
    b"\x0f\x00",            # wire type 7 does not exist
    b"\x12\xff\xff\xff\xff\x0f" + b"x" * 8,  # length 2^32-1
]


@pytest.mark.parametrize("method", METHODS)
def test_garbage_bytes(srv, method):
    call = srv.channel.unary_unary(method)  # raw bytes in, raw bytes out
    for g in GARBAGE:
        with expect_status(Code.INVALID_ARGUMENT):
            call(g, timeout=TIMEOUT)
        assert_serving(srv)
    # Nothing happened to the data.
    assert get_source(srv, "e").point_count >= 3
