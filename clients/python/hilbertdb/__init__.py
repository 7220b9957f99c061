"""HilbertDB Python client.

A typed client for the HilbertDB vector database server (gRPC): data sources, indices, points,
search, and model spaces (TorchScript models that run inside the server)::

    import numpy as np
    from hilbertdb import Client, Flat, Point

    with Client("127.0.0.1:50051") as db:
        db.create_data_source("items", dimension=4, permanent_attributes={"id": "int64"},
                              id_attributes=["id"])
        db.create_index("items-flat", data_source="items", algorithm=Flat(), metric="l2")
        up = db.upload("items", [Point(np.random.rand(4), {"id": i}) for i in range(100)])
        hits = db.search("items-flat", np.random.rand(4), k=3, min_seq=up)[0]
        print([(h.attributes["id"], h.distance) for h in hits])

        # model spaces (declared in the server's config or with create_model_space):
        db.add_image("img-1", "photo.png", attributes={"label": 3})
        print(db.find_similar_image("query.png", k=5))

The client modules import ``grpc`` and the stubs generated from ``proto/`` (``hilbert.v1``);
they are loaded on first use, so ``hilbertdb.datasets`` works without them.
"""
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.2.0"

_EXPORTS = {
    "client": ["Client", "DEFAULT_TARGET", "MAX_MESSAGE_BYTES"],
    "filters": ["Attr", "Filter"],
    "errors": ["HilbertError", "InvalidArgument", "NotFound", "AlreadyExists",
               "FailedPrecondition", "ResourceExhausted", "DeadlineExceeded", "Unavailable",
               "Unimplemented", "Internal", "DataLoss"],
    "types": ["Timestamp", "SparseVector", "Point", "UploadResult", "Hit", "SearchResults",
              "AddResult", "SimilarResults", "Flat", "Hnsw", "Faiss", "Sparse", "ImageInput",
              "TensorInput", "Split", "IndexStatus", "DataSourceInfo", "IndexInfo",
              "ModelSpaceInfo", "ReembedStatus", "BackupInfo", "AliasInfo", "CreateAlias",
              "SwitchAlias", "DeleteAlias"],
}
_WHERE = {name: mod for mod, names in _EXPORTS.items() for name in names}

__all__ = sorted(_WHERE)

if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs
    from .client import DEFAULT_TARGET, MAX_MESSAGE_BYTES, Client
    from .filters import Attr, Filter
    from .errors import (AlreadyExists, DataLoss, DeadlineExceeded, FailedPrecondition,
                         HilbertError, Internal, InvalidArgument, NotFound, ResourceExhausted,
                         Unavailable, Unimplemented)
    from .types import (AddResult, AliasInfo, BackupInfo, CreateAlias, DataSourceInfo,
                        DeleteAlias, Faiss, Flat, Hit, Hnsw, ImageInput, IndexInfo, IndexStatus,
                        ModelSpaceInfo, Point, ReembedStatus, SearchResults, SimilarResults, Sparse,
                        SparseVector, Split, SwitchAlias, TensorInput, Timestamp, UploadResult)


def __getattr__(name: str) -> Any:
    mod = _WHERE.get(name)
    if mod is None:
        raise AttributeError(f"module 'hilbertdb' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{mod}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list:
    return sorted(list(globals()) + __all__)
