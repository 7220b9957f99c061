"""Exceptions raised by the HilbertDB client.

Every failed call raises a subclass of :class:`HilbertError` chosen by the gRPC status code the
server returned. The exception's message is the server's own message (``details``), which names
the offending field, e.g.
``points[3].attributes["category"]: permanent attribute cannot change``::

    >>> from hilbertdb import Client, NotFound
    >>> with Client("127.0.0.1:50051") as db:
    ...     try:
    ...         db.get_data_source("no-such-source")
    ...     except NotFound as e:
    ...         print(e.code.name, e.details)
    NOT_FOUND data_source: no-such-source@1 does not exist

Codes without a dedicated class (CANCELLED, UNKNOWN, PERMISSION_DENIED, ABORTED, OUT_OF_RANGE,
UNAUTHENTICATED) raise :class:`HilbertError` itself.
"""
from __future__ import annotations

from typing import Dict, Optional, Type

import grpc

__all__ = [
    "HilbertError", "InvalidArgument", "NotFound", "AlreadyExists", "FailedPrecondition",
    "ResourceExhausted", "DeadlineExceeded", "Unavailable", "Unimplemented", "Internal",
    "DataLoss", "from_rpc_error",
]


class HilbertError(Exception):
    """Base class of every error the client raises for a failed call.

    Attributes:
        code: the :class:`grpc.StatusCode` of the failed call.
        details: the server's message (also ``str(error)``).
    """

    #: The status code this class stands for (None for the base class).
    status_code: Optional[grpc.StatusCode] = None

    def __init__(self, details: str, code: Optional[grpc.StatusCode] = None) -> None:
        super().__init__(details)
        self.details: str = details
        self.code: grpc.StatusCode = code or self.status_code or grpc.StatusCode.UNKNOWN

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.details!r}, code={self.code.name})"


class InvalidArgument(HilbertError):
    """INVALID_ARGUMENT: the request is malformed or breaks a rule (the message names the
    field)."""
    status_code = grpc.StatusCode.INVALID_ARGUMENT


class NotFound(HilbertError):
    """NOT_FOUND: a data source, index or model space does not exist."""
    status_code = grpc.StatusCode.NOT_FOUND


class AlreadyExists(HilbertError):
    """ALREADY_EXISTS: a data source, index or model space of that name exists."""
    status_code = grpc.StatusCode.ALREADY_EXISTS


class FailedPrecondition(HilbertError):
    """FAILED_PRECONDITION: the operation is not allowed in the current state (e.g. dropping a
    data source that an index reads, or one that belongs to a model space)."""
    status_code = grpc.StatusCode.FAILED_PRECONDITION


class ResourceExhausted(HilbertError):
    """RESOURCE_EXHAUSTED: a configured limit was exceeded (message size, image size, k x
    queries, ...)."""
    status_code = grpc.StatusCode.RESOURCE_EXHAUSTED


class DeadlineExceeded(HilbertError):
    """DEADLINE_EXCEEDED: the call's deadline (the client's ``timeout``) or the server's wait
    limit ran out."""
    status_code = grpc.StatusCode.DEADLINE_EXCEEDED


class Unavailable(HilbertError):
    """UNAVAILABLE: the server cannot be reached or is shutting down, or an index is still
    building."""
    status_code = grpc.StatusCode.UNAVAILABLE


class Unimplemented(HilbertError):
    """UNIMPLEMENTED: the server does not know the method."""
    status_code = grpc.StatusCode.UNIMPLEMENTED


class Internal(HilbertError):
    """INTERNAL: a server-side failure (e.g. a model's forward pass raised)."""
    status_code = grpc.StatusCode.INTERNAL


class DataLoss(HilbertError):
    """DATA_LOSS: stored data was found damaged."""
    status_code = grpc.StatusCode.DATA_LOSS


_BY_CODE: Dict[grpc.StatusCode, Type[HilbertError]] = {
    cls.status_code: cls
    for cls in (InvalidArgument, NotFound, AlreadyExists, FailedPrecondition, ResourceExhausted,
                DeadlineExceeded, Unavailable, Unimplemented, Internal, DataLoss)
}


def from_rpc_error(error: grpc.RpcError) -> HilbertError:
    """Converts a :class:`grpc.RpcError` into the matching :class:`HilbertError` subclass."""
    code = error.code() if hasattr(error, "code") else grpc.StatusCode.UNKNOWN
    details = error.details() if hasattr(error, "details") else str(error)
    if details is None:
        details = ""
    cls = _BY_CODE.get(code, HilbertError)
    return cls(details, code)
