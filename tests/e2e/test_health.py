"""Health checking: the server reports SERVING for itself and its services, NOT_FOUND for
unknown service names, and UNIMPLEMENTED for Watch and for methods it does not have."""
import grpc
import pytest
from hdb_grpc_health.v1 import health_pb2

SERVING = health_pb2.HealthCheckResponse.SERVING


@pytest.mark.parametrize("service", ["", "hilbert.v1.Catalog", "hilbert.v1.Points",
                                     "hilbert.v1.Search"])
def test_check_serving(server, service):
    resp = server.health.Check(health_pb2.HealthCheckRequest(service=service), timeout=10)
    assert resp.status == SERVING


def test_check_unknown_service(server):
    with pytest.raises(grpc.RpcError) as e:
        server.health.Check(health_pb2.HealthCheckRequest(service="no.such.Service"), timeout=10)
    assert e.value.code() == grpc.StatusCode.NOT_FOUND
    assert "no.such.Service" in e.value.details()


def test_watch_is_unimplemented(server):
    stream = server.health.Watch(health_pb2.HealthCheckRequest(service=""), timeout=10)
    with pytest.raises(grpc.RpcError) as e:
        next(stream)
    assert e.value.code() == grpc.StatusCode.UNIMPLEMENTED


def test_unknown_method(server):
    call = server.channel.unary_unary("/hilbert.v1.Nope/Missing")
    with pytest.raises(grpc.RpcError) as e:
        call(b"", timeout=10)
    assert e.value.code() == grpc.StatusCode.UNIMPLEMENTED
    assert "/hilbert.v1.Nope/Missing" in e.value.details()
    # The server stays up and keeps answering.
    assert server.health.Check(health_pb2.HealthCheckRequest(), timeout=10).status == SERVING
