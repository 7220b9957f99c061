"""Points.UploadStream: a stream of Upload batches on one call, each committed atomically on its
own and acknowledged in order once durable. The first bad batch ends the stream with its
status, naming batches[i]; the batches before it are written, the ones after it are not. A
clean stop ends a stream that waits for its client at once, without waiting out the grace.
The Python client's array upload goes through it.
"""
from __future__ import annotations

import signal
import threading
import time

import grpc
import numpy as np
import pytest

from helpers import TIMEOUT, create_source, ds_ref, expect_status, get_source, source_spec
from hilbert.v1 import points_pb2 as P, types_pb2 as T
from hilbertdb import InvalidArgument
from model_fixtures import client

DIM = 4


def batch(first: int, n: int, source: str = "s", bad_at: int = -1) -> P.UploadRequest:
    pts = []
    for i in range(first, first + n):
        dim = DIM - 1 if i == bad_at else DIM
        p = T.DataPoint(vector=T.Vector(dense=T.DenseVector(values=[float(i)] * dim)))
        p.attributes["id"].int64_value = i
        pts.append(p)
    return P.UploadRequest(data_source=ds_ref(source), points=pts)


def stream(server, requests, timeout=TIMEOUT):
    return list(server.points.UploadStream(iter(requests), timeout=timeout))


def test_batches_are_acknowledged_in_order(server):
    create_source(server, source_spec("s", DIM))
    acks = stream(server, [batch(i * 100, 100) for i in range(7)])
    assert [(a.first_seq, a.last_seq) for a in acks] == [(i * 100 + 1, i * 100 + 100)
                                                          for i in range(7)]
    assert get_source(server, "s").point_count == 700
    # An empty stream is a valid one: nothing written, no answer, OK.
    assert stream(server, []) == []
    assert get_source(server, "s").last_seq == 700


def test_the_first_bad_batch_ends_the_stream(server):
    create_source(server, source_spec("s", DIM))
    create_source(server, source_spec("other", DIM))
    got = []

    def requests():
        yield batch(0, 10)
        yield batch(10, 10, source="other")  # batches may name different sources
        yield batch(20, 10, bad_at=23)
        yield batch(30, 10)

    with expect_status(grpc.StatusCode.INVALID_ARGUMENT,
                       "batches[2].points[3].vector: has dimension 3"):
        for ack in server.points.UploadStream(requests(), timeout=TIMEOUT):
            got.append(ack.last_seq)
    assert got == [10, 10]
    assert get_source(server, "s").point_count == 10  # batches 2 and 3: nothing
    assert get_source(server, "other").point_count == 10
    with expect_status(grpc.StatusCode.NOT_FOUND, "batches[1].", "nope"):
        stream(server, [batch(40, 1), batch(41, 1, source="nope")])
    assert get_source(server, "s").point_count == 11


def test_garbage_in_a_stream_is_named(server):
    create_source(server, source_spec("s", DIM))
    raw = server.channel.stream_stream("/hilbert.v1.Points/UploadStream",
                                       request_serializer=None,
                                       response_deserializer=P.UploadResponse.FromString)
    with expect_status(grpc.StatusCode.INVALID_ARGUMENT, "batches[1].request: malformed"):
        list(raw(iter([batch(0, 5).SerializeToString(), b"\x0a\xff\xff\xff"]), timeout=TIMEOUT))
    with expect_status(grpc.StatusCode.INVALID_ARGUMENT,
                       "batches[0].points: at least one point is required"):
        stream(server, [P.UploadRequest(data_source=ds_ref("s"))])
    assert get_source(server, "s").point_count == 5


def test_a_stop_ends_a_waiting_stream_at_once(make_server, tmp_path):
    """SIGTERM while a stream waits for its client's next batch: the stream gets UNAVAILABLE at
    once, the server exits 0 long before its 10-minute grace, and the batch acknowledged
    before is there after a restart."""
    cfg = tmp_path / "hilbertd.yaml"
    cfg.write_text("server:\n  shutdown_grace_ms: 600000\n")
    s = make_server(config=cfg)
    create_source(s, source_spec("s", DIM))
    hold = threading.Event()
    acks, errors = [], []

    def requests():
        yield batch(0, 10)
        hold.wait(300)  # the client has more to send, later

    def consume():
        try:
            for ack in s.points.UploadStream(requests(), timeout=600):
                acks.append(ack)
        except grpc.RpcError as e:
            errors.append(e)

    t = threading.Thread(target=consume)
    t.start()
    deadline = time.monotonic() + 60
    while not acks and time.monotonic() < deadline:
        time.sleep(0.01)
    assert len(acks) == 1
    t0 = time.monotonic()
    s.proc.send_signal(signal.SIGTERM)
    assert s.proc.wait(timeout=120) == 0
    took = time.monotonic() - t0
    t.join(60)
    hold.set()
    assert errors and errors[0].code() == grpc.StatusCode.UNAVAILABLE, errors
    assert "shutting down" in errors[0].details()
    assert took < 120, took  # far under the 600 s grace: the stream did not hold the stop
    s.proc = None
    s.start()
    assert get_source(s, "s").point_count == 10


def test_client_array_upload_streams(server):
    """upload(ndarray) goes through UploadStream in batches; a bad row fails its batch, named,
    and `written` says how many points the batches before it wrote."""
    db = client(server)
    db.create_data_source("a", dimension=DIM, permanent_attributes={"id": "int64"},
                          id_attributes=["id"])
    x = np.random.default_rng(5).random((3500, DIM), dtype=np.float32)
    up = db.upload("a", x, attributes={"id": np.arange(3500)}, batch_size=1000)
    assert (up.first_seq, up.last_seq) == (1, 3500)
    assert db.count("a") == 3500
    x[2500, 1] = np.nan
    with pytest.raises(InvalidArgument,
                       match=r"batches\[2\]\.points\[500\]\.vector: component 1 is NaN") as e:
        db.upload("a", x, attributes={"id": np.arange(3500) + 10000}, batch_size=1000)
    assert e.value.written == 2000
    assert db.count("a") == 3500 + 2000
    db.close()
