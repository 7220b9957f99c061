"""Catalog: create, get, list and drop data sources and indices, and the validation of their
definitions (INVALID_ARGUMENT naming the field; NOT_FOUND; ALREADY_EXISTS;
FAILED_PRECONDITION)."""
import grpc
import pytest

from hilbert.v1 import catalog_pb2 as C

from helpers import (BOOL, BYTES, COSINE, FLOAT64, INT64, IP, L2, STRING, TIMEOUT, TIMESTAMP,
                     UNSPECIFIED, Timestamp, assert_serving, create_index, create_source,
                     drop_index, drop_source, ds_ref, expect_status, get_index, get_points,
                     get_source, index_spec, point, search, source_spec, upload, values_of, wait_ready)

Code = grpc.StatusCode


def list_sources(server):
    return server.catalog.ListDataSources(C.ListDataSourcesRequest(), timeout=TIMEOUT)


def list_indices(server):
    return server.catalog.ListIndices(C.ListIndicesRequest(), timeout=TIMEOUT)


def refs(items):
    return [(i.spec.name, i.spec.version) for i in items]


def test_create_get_list_drop(server):
    assert list(list_sources(server).data_sources) == []
    assert list(list_indices(server).indices) == []
    spec = source_spec("docs", 4, [("id", STRING), ("lang", STRING), ("year", INT64)], ["id"])
    info = create_source(server, spec)
    assert info.spec == spec
    assert info.last_seq == 0 and info.point_count == 0 and list(info.indices) == []
    assert get_source(server, "docs") == info

    ispec = index_spec("docs-ix", "docs", COSINE, ["lang"])
    ix = create_index(server, ispec)
    assert ix.spec == ispec
    # On an empty source the build is instant: CreateIndex replies once the index is READY.
    assert ix.status.state == C.INDEX_STATE_READY
    assert ix.status.size == 0 and ix.status.applied_seq == 0 and ix.status.lag_entries == 0
    assert list(ix.status.splits) == []
    assert get_index(server, "docs-ix").spec == ispec

    upload(server, "docs", [point([1, 0, 0, 0], {"id": "a", "lang": "en", "year": 2001}),
                            point([0, 1, 0, 0], {"id": "b", "lang": "de", "year": 2002})])
    info = get_source(server, "docs")
    assert info.last_seq == 2 and info.point_count == 2
    assert [(r.name, r.version) for r in info.indices] == [("docs-ix", "1")]
    st = wait_ready(server, "docs-ix").status
    assert st.size == 2 and st.applied_seq == 2 and st.source_last_seq == 2

    assert refs(list_sources(server).data_sources) == [("docs", "1")]
    assert refs(list_indices(server).indices) == [("docs-ix", "1")]
    lst = list_indices(server).indices[0]
    assert lst.status.size == 2 and len(lst.status.splits) == 2

    drop_index(server, "docs-ix")
    assert list(get_source(server, "docs").indices) == []
    assert list(list_indices(server).indices) == []
    drop_source(server, "docs")
    assert list(list_sources(server).data_sources) == []


def test_versions_are_distinct_objects(server):
    create_source(server, source_spec("v", 2, version="1"))
    create_source(server, source_spec("v", 3, version="2"))
    assert get_source(server, "v", "1").spec.dimension == 2
    assert get_source(server, "v", "2").spec.dimension == 3
    upload(server, "v", [point([1, 2], {"id": 1})], version="1")
    assert get_source(server, "v", "1").point_count == 1
    assert get_source(server, "v", "2").point_count == 0
    create_index(server, index_spec("vi", "v", L2, version="a", source_version="2"))
    assert get_index(server, "vi", "a").spec.data_source == ds_ref("v", "2")
    with expect_status(Code.NOT_FOUND, "vi"):
        get_index(server, "vi", "1")


def test_list_ordered_by_name_then_version(server):
    names = [("beta", "2"), ("alpha", "3"), ("beta", "1"), ("alpha2", "1"), ("alpha", "1"),
             ("alpha", "2"), ("gamma", "1")]
    for n, v in names:
        create_source(server, source_spec(n, 2, version=v))
    want = sorted(names)
    assert refs(list_sources(server).data_sources) == want
    for n, v in reversed(names):
        create_index(server, index_spec(f"ix-{n}", n, L2, version=v, source_version=v))
    assert refs(list_indices(server).indices) == sorted((f"ix-{n}", v) for n, v in names)
    # Full infos in the list, equal to Get's.
    for info in list_sources(server).data_sources:
        assert info == get_source(server, info.spec.name, info.spec.version)


def test_get_data_source_lists_reading_indices(server):
    create_source(server, source_spec("s", 3, [("id", INT64), ("c", STRING)], ["id"]))
    create_source(server, source_spec("other", 3))
    create_index(server, index_spec("i2", "s", L2))
    create_index(server, index_spec("i1", "s", IP, ["c"]))
    create_index(server, index_spec("i1", "s", COSINE, version="2"))
    create_index(server, index_spec("o", "other", L2))
    r = upload(server, "s", [point([i, 1, 2], {"id": i, "c": "x" if i % 2 else "y"})
                             for i in range(7)])
    info = get_source(server, "s")
    assert info.last_seq == r.last_seq == 7 and info.point_count == 7
    assert sorted((x.name, x.version) for x in info.indices) == [("i1", "1"), ("i1", "2"),
                                                                  ("i2", "1")]
    assert [(x.name, x.version) for x in get_source(server, "other").indices] == [("o", "1")]


def test_drop_source_with_index_fails_precondition(server):
    create_source(server, source_spec("s", 3))
    create_index(server, index_spec("reader-ix", "s", L2))
    upload(server, "s", [point([1, 2, 3], {"id": 1})])
    with expect_status(Code.FAILED_PRECONDITION, "reader-ix"):
        drop_source(server, "s")
    # Nothing was dropped.
    assert get_source(server, "s").point_count == 1
    assert wait_ready(server, "reader-ix").status.size == 1
    assert len(search(server, "reader-ix", [1, 2, 3], 5).results[0].hits) == 1

    drop_index(server, "reader-ix")
    drop_source(server, "s")
    with expect_status(Code.NOT_FOUND, "s@1"):
        get_source(server, "s")
    with expect_status(Code.NOT_FOUND, "reader-ix"):
        get_index(server, "reader-ix")
    with expect_status(Code.NOT_FOUND, "reader-ix"):
        drop_index(server, "reader-ix")
    with expect_status(Code.NOT_FOUND, "s@1"):
        drop_source(server, "s")
    with expect_status(Code.NOT_FOUND, "reader-ix"):
        search(server, "reader-ix", [1, 2, 3], 1)
    with expect_status(Code.NOT_FOUND, "data_source"):
        upload(server, "s", [point([1, 2, 3], {"id": 2})])
    with expect_status(Code.NOT_FOUND, "data_source"):
        get_points(server, "s", [{"id": 1}])
    assert list(list_sources(server).data_sources) == []
    assert list(list_indices(server).indices) == []


def test_recreated_source_is_empty(server):
    create_source(server, source_spec("s", 3, [("id", INT64), ("tag", STRING)], ["id"]))
    upload(server, "s", [point([1, 2, 3], {"id": i, "tag": "t"}) for i in range(5)])
    create_index(server, index_spec("s-ix", "s", L2))
    drop_index(server, "s-ix")
    drop_source(server, "s")
    # Same name, different definition: the old points must not leak into it.
    info = create_source(server, source_spec("s", 3, [("id", INT64)], ["id"]))
    assert info.point_count == 0 and info.last_seq == 0 and list(info.indices) == []
    g = get_points(server, "s", [{"id": i} for i in range(5)])
    assert not any(r.found for r in g.results)
    ix = create_index(server, index_spec("s-ix", "s", L2))
    assert ix.status.state == C.INDEX_STATE_READY
    assert ix.status.size == 0 and ix.status.applied_seq == 0
    assert len(search(server, "s-ix", [1, 2, 3], 10).results[0].hits) == 0
    r = upload(server, "s", [point([0, 0, 1], {"id": 0})])
    assert r.first_seq == 1
    assert get_source(server, "s").point_count == 1


def test_duplicate_create_already_exists(server):
    create_source(server, source_spec("dup", 3))
    with expect_status(Code.ALREADY_EXISTS, "dup@1"):
        create_source(server, source_spec("dup", 3))
    with expect_status(Code.ALREADY_EXISTS, "dup@1"):
        create_source(server, source_spec("dup", 5))  # a different definition as well
    assert get_source(server, "dup").spec.dimension == 3
    create_index(server, index_spec("dup-ix", "dup", L2))
    with expect_status(Code.ALREADY_EXISTS, "dup-ix@1"):
        create_index(server, index_spec("dup-ix", "dup", L2))
    with expect_status(Code.ALREADY_EXISTS, "dup-ix@1"):
        create_index(server, index_spec("dup-ix", "dup", COSINE))
    assert get_index(server, "dup-ix").spec.metric == L2
    assert len(list_sources(server).data_sources) == 1
    assert len(list_indices(server).indices) == 1


def test_index_on_unknown_source_not_found(server):
    with expect_status(Code.NOT_FOUND, "spec.data_source", "nosuch"):
        create_index(server, index_spec("ix", "nosuch", L2))
    create_source(server, source_spec("s", 2))
    with expect_status(Code.NOT_FOUND, "spec.data_source"):
        create_index(server, index_spec("ix", "s", L2, source_version="2"))
    assert list(list_indices(server).indices) == []


def test_name_length_and_characters_accepted(server):
    long = "a" * 128
    create_source(server, source_spec(long, 2, version="v1.0-rc_2"))
    assert get_source(server, long, "v1.0-rc_2").spec.name == long
    create_source(server, source_spec("A.b-C_9", 1, [("x.y-Z_0", INT64)], ["x.y-Z_0"]))
    create_index(server, index_spec("I.x-_", "A.b-C_9", IP))
    create_source(server, source_spec("maxdim", 65536))
    assert get_source(server, "maxdim").spec.dimension == 65536


SOURCE_ERRORS = [
    # (id, spec, fields that the details must name)
    ("missing-name", source_spec("", 3), ["spec.name"]),
    ("missing-version", source_spec("s", 3, version=""), ["spec.version"]),
    ("space-in-name", source_spec("a b", 3), ["spec.name"]),
    ("slash-in-name", source_spec("a/b", 3), ["spec.name"]),
    ("at-in-name", source_spec("a@b", 3), ["spec.name"]),
    ("unicode-name", source_spec("caf\u00e9", 3), ["spec.name"]),
    ("name-too-long", source_spec("a" * 129, 3), ["spec.name"]),
    ("bad-version", source_spec("s", 3, version="1:0"), ["spec.version"]),
    ("dimension-0", source_spec("s", 0), ["spec.dimension"]),
    ("dimension-above-max", source_spec("s", 65537), ["spec.dimension", "65536"]),
    ("dimension-huge", source_spec("s", 2 ** 32 - 1), ["spec.dimension"]),
    ("duplicate-permanent", source_spec("s", 3, [("id", INT64), ("a", STRING), ("a", INT64)],
                                        ["id"]), ["spec.permanent_attributes", "\"a\""]),
    ("unspecified-type", source_spec("s", 3, [("id", INT64), ("a", UNSPECIFIED)], ["id"]),
     ["spec.permanent_attributes[1].type", "a"]),
    ("unknown-type", source_spec("s", 3, [("id", INT64), ("a", 42)], ["id"]),
     ["spec.permanent_attributes[1].type"]),
    ("bad-attribute-name", source_spec("s", 3, [("id", INT64), ("a b", INT64)], ["id"]),
     ["spec.permanent_attributes[1].name"]),
    ("empty-attribute-name", source_spec("s", 3, [("id", INT64), ("", INT64)], ["id"]),
     ["spec.permanent_attributes[1].name"]),
    ("no-id-attributes", source_spec("s", 3, [("id", INT64)], []), ["spec.id_attributes"]),
    ("id-not-permanent", source_spec("s", 3, [("id", INT64)], ["key"]),
     ["spec.id_attributes[0]", "key"]),
    ("id-duplicated", source_spec("s", 3, [("id", INT64), ("b", STRING)], ["id", "b", "id"]),
     ["spec.id_attributes[2]", "id"]),
    ("id-float64", source_spec("s", 3, [("id", INT64), ("f", FLOAT64)], ["id", "f"]),
     ["spec.id_attributes[1]", "f"]),
    ("too-many-attributes", source_spec("s", 3, [(f"a{i}", INT64) for i in range(65)],
                                        ["a0"]), ["spec.permanent_attributes"]),
    ("bad-vector-kind", source_spec("s", 3, vector_kind=9), ["spec.vector_kind"]),
]


@pytest.fixture(scope="module")
def validation_server(module_server):
    """A shared server for the validation tests, holding one valid source `s` (id, label,
    tag, score) and nothing else."""
    create_source(module_server, source_spec(
        "s", 3, [("id", INT64), ("label", INT64), ("tag", STRING), ("score", FLOAT64)], ["id"]))
    return module_server


@pytest.mark.parametrize("spec,fields", [(s, f) for _, s, f in SOURCE_ERRORS],
                         ids=[i for i, _, _ in SOURCE_ERRORS])
def test_source_spec_invalid(validation_server, spec, fields):
    server = validation_server
    with expect_status(Code.INVALID_ARGUMENT, *fields):
        create_source(server, spec)
    assert refs(list_sources(server).data_sources) == [("s", "1")]
    assert_serving(server)


def test_source_spec_missing(validation_server):
    server = validation_server
    with expect_status(Code.INVALID_ARGUMENT, "spec"):
        server.catalog.CreateDataSource(C.CreateDataSourceRequest(), timeout=TIMEOUT)
    with expect_status(Code.INVALID_ARGUMENT, "spec"):
        server.catalog.CreateIndex(C.CreateIndexRequest(), timeout=TIMEOUT)
    assert refs(list_sources(server).data_sources) == [("s", "1")]
    assert list(list_indices(server).indices) == []
    assert_serving(server)


def _ix(**kw):
    base = dict(name="ix", source="s", metric=L2)
    base.update(kw)
    return index_spec(**base)


def _no_source_ref():
    s = _ix()
    s.ClearField("data_source")
    return s


INDEX_ERRORS = [
    ("missing-name", _ix(name=""), ["spec.name"]),
    ("missing-version", _ix(version=""), ["spec.version"]),
    ("bad-name", _ix(name="ix#1"), ["spec.name"]),
    ("bad-version", _ix(version="1 0"), ["spec.version"]),
    ("no-algorithm", _ix(flat=False), ["spec.algorithm"]),
    ("no-metric", _ix(metric=C.METRIC_UNSPECIFIED), ["spec.metric"]),
    ("unknown-metric", _ix(metric=17), ["spec.metric"]),
    ("no-data-source", _no_source_ref(), ["spec.data_source"]),
    ("split-not-permanent", _ix(splits=["payload"]), ["spec.split_attributes[0]", "payload"]),
    ("split-float64", _ix(splits=["label", "score"]), ["spec.split_attributes[1]", "score"]),
    ("split-duplicate", _ix(splits=["label", "tag", "label"]),
     ["spec.split_attributes[2]", "label"]),
]


@pytest.mark.parametrize("spec,fields", [(s, f) for _, s, f in INDEX_ERRORS],
                         ids=[i for i, _, _ in INDEX_ERRORS])
def test_index_spec_invalid(validation_server, spec, fields):
    server = validation_server
    with expect_status(Code.INVALID_ARGUMENT, *fields):
        create_index(server, spec)
    assert list(list_indices(server).indices) == []
    assert list(get_source(server, "s").indices) == []
    assert_serving(server)


def test_source_droppable_after_rejected_indices(validation_server):
    """Runs after the index validation tests: no half-made index holds the source."""
    server = validation_server
    for _, spec, _ in INDEX_ERRORS:
        with pytest.raises(grpc.RpcError):
            create_index(server, spec)
    drop_source(server, "s")
    assert list(list_sources(server).data_sources) == []
    create_source(server, source_spec(
        "s", 3, [("id", INT64), ("label", INT64), ("tag", STRING), ("score", FLOAT64)], ["id"]))


def test_all_attribute_types_allowed_where_legal(server):
    """Every non-float type may be an id and a split attribute."""
    perm = [("s", STRING), ("i", INT64), ("b", BOOL), ("y", BYTES), ("t", TIMESTAMP),
            ("f", FLOAT64)]
    create_source(server, source_spec("all", 2, perm, ["s", "i", "b", "y", "t"]))
    ix = create_index(server, index_spec("all-ix", "all", L2, ["s", "i", "b", "y", "t"]))
    assert list(ix.spec.split_attributes) == ["s", "i", "b", "y", "t"]
    upload(server, "all", [point([1, 1], {"s": "x", "i": 1, "b": True, "y": b"\x01",
                                          "t": Timestamp(5), "f": 0.5})])
    st = wait_ready(server, "all-ix").status
    assert st.size == 1 and len(st.splits) == 1
    assert values_of(st.splits[0].split_values) == {"s": "x", "i": 1, "b": True, "y": b"\x01",
                                                    "t": Timestamp(5)}
    upload(server, "all", [point([2, 2], {"s": "x", "i": 1, "b": True, "y": b"\x02",
                                          "t": Timestamp(5), "f": 0.5}),
                           point([3, 3], {"s": "x", "i": 1, "b": True, "y": b"\x01",
                                          "t": Timestamp(6), "f": 0.5})])
    assert len(wait_ready(server, "all-ix").status.splits) == 3
    # Filters on bytes and timestamp values select the right splits.
    res = search(server, "all-ix", [0, 0], 10, split_filter={"y": b"\x01"}).results[0]
    assert sorted(h.attributes["t"].timestamp_micros for h in res.hits) == [5, 6]
    res = search(server, "all-ix", [0, 0], 10, split_filter={"t": Timestamp(5)}).results[0]
    assert sorted(h.attributes["y"].bytes_value for h in res.hits) == [b"\x01", b"\x02"]
    res = search(server, "all-ix", [0, 0], 10,
                 split_filter={"t": Timestamp(5), "y": b"\x02"}).results[0]
    assert [h.distance for h in res.hits] == [8.0]
    # A timestamp value is not an int64 value.
    with expect_status(Code.INVALID_ARGUMENT, 'split_filter["t"]'):
        search(server, "all-ix", [0, 0], 10, split_filter={"t": 5})
