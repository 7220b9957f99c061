"""The HilbertDB client: one object for every service of the server (Catalog, Points, Search,
ModelSpaces, Admin and Health).

Example::

    import numpy as np
    from hilbertdb import Client, Hnsw, Point

    with Client("127.0.0.1:50051") as db:
        db.create_data_source("products", dimension=3,
                              permanent_attributes={"id": "int64", "category": "string"},
                              id_attributes=["id"])
        db.create_index("products-hnsw", data_source="products", algorithm=Hnsw(),
                        metric="cosine", split_attributes=["category"])
        up = db.upload("products", [
            Point([0.1, 0.2, 0.3], {"id": 1, "category": "shoes", "title": "trail runner"}),
            {"vector": np.array([0.3, 0.1, 0.0]), "attributes": {"id": 2, "category": "bags"}},
        ])
        hits = db.search("products-hnsw", np.array([0.1, 0.2, 0.25]), k=5, min_seq=up)
        for hit in hits[0]:
            print(hit.distance, hit.attributes["title"])

Names: a data source or index is named ``"name@version"``, ``("name", "version")``, or
``"name"`` with the ``version`` keyword (default ``"1"``). Model spaces have plain names. An
index alias is an index name with an empty version: ``"live@"`` (or ``("live", "")``); a
model-space alias is used as a model space's name (see :meth:`Client.update_aliases`).

Every call has the client's ``timeout`` (seconds) as its deadline, and raises a
:class:`hilbertdb.errors.HilbertError` subclass when it fails. A Client is thread-safe: share one
between threads.
"""
from __future__ import annotations

import os  # noqa: F401  (os.PathLike in annotations)
import time
from typing import (Any, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple, Union)

import grpc
import numpy as np

from hilbert.v1 import admin_pb2 as A
from hilbert.v1 import admin_pb2_grpc
from hilbert.v1 import catalog_pb2 as C
from hilbert.v1 import catalog_pb2_grpc
from hilbert.v1 import modelspaces_pb2 as M
from hilbert.v1 import modelspaces_pb2_grpc
from hilbert.v1 import points_pb2 as P
from hilbert.v1 import points_pb2_grpc
from hilbert.v1 import search_pb2 as S
from hilbert.v1 import search_pb2_grpc
from hilbert.v1 import types_pb2 as T
from hdb_grpc_health.v1 import health_pb2, health_pb2_grpc

from . import _convert as cv
from .filters import Filter, filter_in
from .errors import FailedPrecondition, HilbertError, Unavailable, from_rpc_error
from .types import (AddResult, AliasAction, AliasInfo, Algorithm, BackupInfo, CreateAlias,
                    DataSourceInfo, DeleteAlias, Flat, IndexInfo, ModelInput, ModelSpaceInfo,
                    Point, SearchResults, SimilarResults, SwitchAlias, Timestamp, UploadResult)

__all__ = ["Client", "DEFAULT_TARGET", "MAX_MESSAGE_BYTES"]

#: Where scripts/run.sh starts the server.
DEFAULT_TARGET = "127.0.0.1:50051"
#: The client's gRPC send and receive message limits (the server has its own, 64 MiB default).
MAX_MESSAGE_BYTES = 256 << 20

Ref = Union[str, Tuple[str, str]]
ImageLike = Any  # bytes | str | os.PathLike | PIL.Image.Image | np.ndarray (uint8)
SpaceNames = Optional[Union[str, Iterable[str]]]


def _pem(value: Any) -> Optional[bytes]:
    """PEM bytes as given, or read from a path; None stays None."""
    if value is None or isinstance(value, bytes):
        return value
    with open(value, "rb") as f:
        return f.read()


def _stderr_is_tty() -> bool:
    import sys
    return sys.stderr.isatty()


class Client:
    """A connection to one HilbertDB server.

    Args:
        target: ``host:port`` (or any gRPC target, e.g. ``unix:/path.sock``).
        timeout: deadline of every call, in seconds (None: no deadline).
        options: extra gRPC channel options, as ``[(key, value), ...]``; they override the
            defaults, which raise the send and receive message limits to 256 MiB.
        channel: an existing channel to use instead of creating one (``target``, ``options``
            and the TLS arguments are then ignored; :meth:`close` does not close it).
        api_key: the API key, sent as ``authorization: Bearer KEY`` metadata with every call
            (needed when the server has ``auth.keys``; Health works without one).
        root_certificates: connect with TLS, trusting these CA certificates (PEM ``bytes``, or
            the path of a PEM file). ``True`` trusts the system's default CAs. None (the
            default): plaintext.
        private_key, certificate_chain: the client's key and certificate (PEM ``bytes`` or
            paths), for servers that verify clients (``tls.client_auth``); only with TLS.

    Example::

        >>> from hilbertdb import Client
        >>> db = Client("127.0.0.1:50051", timeout=10)
        >>> db.health()
        'SERVING'
        >>> db.close()

    With TLS and an API key::

        >>> db = Client("db.example.com:50051", api_key=os.environ["HILBERTDB_KEY"],
        ...             root_certificates="/etc/hilbertdb/ca.pem")
    """

    def __init__(self, target: str = DEFAULT_TARGET, timeout: Optional[float] = 30.0,
                 options: Optional[Sequence[Tuple[str, Any]]] = None,
                 channel: Optional[grpc.Channel] = None, *, api_key: Optional[str] = None,
                 root_certificates: Union[None, bool, bytes, str, "os.PathLike[str]"] = None,
                 private_key: Union[None, bytes, str, "os.PathLike[str]"] = None,
                 certificate_chain: Union[None, bytes, str, "os.PathLike[str]"] = None) -> None:
        self.target = target
        self.timeout = timeout
        self._own_channel = channel is None
        self._metadata: Optional[Tuple[Tuple[str, str], ...]] = (
            (("authorization", f"Bearer {api_key}"),) if api_key else None)
        if root_certificates is None and (private_key is not None or certificate_chain is not None):
            raise ValueError("private_key and certificate_chain need TLS: pass root_certificates "
                             "too (True for the system's CAs)")
        if (private_key is None) != (certificate_chain is None):
            raise ValueError("private_key and certificate_chain go together")
        if channel is None:
            opts: Dict[str, Any] = {
                "grpc.max_receive_message_length": MAX_MESSAGE_BYTES,
                "grpc.max_send_message_length": MAX_MESSAGE_BYTES,
            }
            opts.update(dict(options or []))
            if root_certificates is None:
                channel = grpc.insecure_channel(target, options=list(opts.items()))
            else:
                creds = grpc.ssl_channel_credentials(
                    root_certificates=(None if root_certificates is True
                                       else _pem(root_certificates)),
                    private_key=_pem(private_key), certificate_chain=_pem(certificate_chain))
                channel = grpc.secure_channel(target, creds, options=list(opts.items()))
        self._channel = channel
        self._catalog = catalog_pb2_grpc.CatalogStub(channel)
        self._points = points_pb2_grpc.PointsStub(channel)
        self._search = search_pb2_grpc.SearchStub(channel)
        self._spaces = modelspaces_pb2_grpc.ModelSpacesStub(channel)
        self._health = health_pb2_grpc.HealthStub(channel)
        self._admin = admin_pb2_grpc.AdminStub(channel)
        # (name, version) -> [(id attribute name, AttributeType)], for delete/get by scalar id.
        self._id_cache: Dict[Tuple[str, str], List[Tuple[str, int]]] = {}

    # ------------------------------------------------------------------ lifecycle

    def close(self) -> None:
        """Closes the channel (if the client created it). Calls in flight are cancelled."""
        if self._own_channel and self._channel is not None:
            self._channel.close()
        self._channel = None

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Client({self.target!r}, timeout={self.timeout!r})"

    @property
    def channel(self) -> grpc.Channel:
        """The underlying gRPC channel (for the generated stubs in ``hilbert.v1``). Calls made
        on it directly do not carry ``api_key``: pass ``metadata=[("authorization", "Bearer
        KEY")]`` to them."""
        return self._channel

    def _call(self, method: Any, request: Any) -> Any:
        if self._channel is None:
            raise ValueError("the client is closed")
        try:
            return method(request, timeout=self.timeout, metadata=self._metadata)
        except grpc.RpcError as e:
            err = from_rpc_error(e)
            err.rpc_error = e  # type: ignore[attr-defined]
            raise err from None

    def wait_until_ready(self, timeout: float = 30.0) -> None:
        """Blocks until the channel is connected (e.g. while the server starts).

        Raises :class:`hilbertdb.errors.Unavailable` after ``timeout`` seconds."""
        try:
            grpc.channel_ready_future(self._channel).result(timeout=timeout)
        except grpc.FutureTimeoutError:
            raise Unavailable(f"{self.target}: not reachable within {timeout} s") from None

    def health(self) -> str:
        """The server's health status: ``"SERVING"`` when it answers normally."""
        resp = self._call(self._health.Check, health_pb2.HealthCheckRequest())
        return health_pb2.HealthCheckResponse.ServingStatus.Name(resp.status)

    # ------------------------------------------------------------------ data sources

    def create_data_source(self, name: str, version: Optional[str] = None, *, dimension: int,
                           permanent_attributes: Optional[Mapping[str, Any]] = None,
                           id_attributes: Optional[Sequence[str]] = None,
                           sparse: bool = False) -> DataSourceInfo:
        """Creates the data source ``name@version``.

        Args:
            name: the name, or ``"name@version"``.
            version: the version (default ``"1"``).
            dimension: dense: the vector length; sparse: the bound of the indices.
            permanent_attributes: name -> type, in order; types are "string", "int64",
                "float64", "bool", "bytes", "timestamp" (or the Python types str, int, float,
                bool, bytes, datetime).
            id_attributes: the permanent attributes that identify a point (not float64).
            sparse: True for a sparse data source (vectors are :class:`SparseVector`).

        Example::

            db.create_data_source("docs", "2", dimension=30000, sparse=True,
                                  permanent_attributes={"doc": "string"},
                                  id_attributes=["doc"])
        """
        n, v = cv.split_ref(name, version)
        spec = C.DataSourceSpec(
            name=n, version=v, dimension=int(dimension),
            vector_kind=C.VECTOR_KIND_SPARSE if sparse else C.VECTOR_KIND_DENSE,
            permanent_attributes=cv.attribute_specs_in(permanent_attributes),
            id_attributes=list(id_attributes or []))
        self._id_cache.pop((n, v), None)
        info = self._call(self._catalog.CreateDataSource, C.CreateDataSourceRequest(spec=spec))
        return cv.data_source_out(info)

    def get_data_source(self, source: Ref, version: Optional[str] = None) -> DataSourceInfo:
        """Returns the data source (definition, last seq, point count, indices)."""
        info = self._call(self._catalog.GetDataSource,
                          C.GetDataSourceRequest(data_source=cv.source_ref(source, version)))
        return cv.data_source_out(info)

    def list_data_sources(self) -> List[DataSourceInfo]:
        """Every data source (model spaces' ones included), ordered by name and version."""
        resp = self._call(self._catalog.ListDataSources, C.ListDataSourcesRequest())
        return [cv.data_source_out(i) for i in resp.data_sources]

    def drop_data_source(self, source: Ref, version: Optional[str] = None) -> None:
        """Drops a data source and its points (FailedPrecondition while an index reads it)."""
        ref = cv.source_ref(source, version)
        self._id_cache.pop((ref.name, ref.version), None)
        self._call(self._catalog.DropDataSource, C.DropDataSourceRequest(data_source=ref))

    # ------------------------------------------------------------------ indices

    def create_index(self, name: str, version: Optional[str] = None, *, data_source: Ref,
                     algorithm: Union[Algorithm, str, None] = None, metric: str = "l2",
                     split_attributes: Optional[Sequence[str]] = None,
                     indexed_attributes: Optional[Sequence[str]] = None) -> IndexInfo:
        """Creates the index ``name@version`` over a data source and starts building it.

        Args:
            name: the name, or ``"name@version"``.
            version: the version (default ``"1"``).
            data_source: the data source it reads (``"name@version"`` or ``"name"``).
            algorithm: :class:`Flat` (default), :class:`Hnsw`, :class:`Faiss` or
                :class:`Sparse`.
            metric: "l2", "inner_product", "cosine" (dense) or "cosine", "jaccard" (sparse).
            split_attributes: permanent attributes that divide the index into splits.
            indexed_attributes: attributes (permanent or payload, at most 32) to keep an
                attribute index on, so that filtered searches on them bound the passing
                points first (see ``search(filter=...)`` and ``explain``).

        Use :meth:`wait_for_index` to wait until it has caught up.
        """
        n, v = cv.split_ref(name, version)
        spec = C.IndexSpec(name=n, version=v, data_source=cv.source_ref(data_source),
                           algorithm=cv.algorithm_in(algorithm if algorithm is not None
                                                     else Flat()),
                           metric=cv.metric(metric), split_attributes=list(split_attributes or []),
                           indexed_attributes=list(indexed_attributes or []))
        return cv.index_out(self._call(self._catalog.CreateIndex, C.CreateIndexRequest(spec=spec)))

    def get_index(self, index: Ref, version: Optional[str] = None) -> IndexInfo:
        """Returns the index's definition and status."""
        return cv.index_out(self._call(self._catalog.GetIndex,
                                       C.GetIndexRequest(index=cv.index_ref(index, version))))

    def list_indices(self) -> List[IndexInfo]:
        """Every index with its status, ordered by name and version."""
        resp = self._call(self._catalog.ListIndices, C.ListIndicesRequest())
        return [cv.index_out(i) for i in resp.indices]

    def drop_index(self, index: Ref, version: Optional[str] = None) -> None:
        """Drops an index (its data source stays)."""
        self._call(self._catalog.DropIndex, C.DropIndexRequest(index=cv.index_ref(index, version)))

    def wait_for_index(self, index: Ref, version: Optional[str] = None, timeout: float = 60.0,
                       poll_interval: float = 0.02) -> IndexInfo:
        """Waits until the index is READY and has applied everything its data source had
        committed when the wait began or since (``status.caught_up``).

        Raises :class:`FailedPrecondition` if the index is FAILED, and TimeoutError after
        ``timeout`` seconds.
        """
        deadline = time.monotonic() + timeout
        while True:
            info = self.get_index(index, version)
            st = info.status
            if st.state == "FAILED":
                raise FailedPrecondition(f"index {info.ref} failed: {st.detail}")
            if st.caught_up:
                return info
            if time.monotonic() >= deadline:
                raise TimeoutError(f"index {info.ref} not ready after {timeout} s: state "
                                   f"{st.state}, applied {st.applied_seq} of "
                                   f"{st.source_last_seq} ({st.detail})")
            time.sleep(poll_interval)

    # ------------------------------------------------------------------ model spaces (catalog)

    def create_model_space(self, name: str, model_path: str, *, input: ModelInput,
                           output_dim: int, metric: str = "cosine",
                           index: Union[Algorithm, str, None] = None,
                           permanent_attributes: Optional[Mapping[str, Any]] = None,
                           split_attributes: Optional[Sequence[str]] = None,
                           model_sha256: Optional[str] = None,
                           output_index: int = 0, keep_inputs: bool = False,
                           reembed_from: Optional[str] = None,
                           indexed_attributes: Optional[Sequence[str]] = None) -> ModelSpaceInfo:
        """Creates a model space: a TorchScript model plus the data source and index (both
        ``name@space``) its vectors go to. The server loads the model and checks it with a
        trial forward pass; InvalidArgument says what is wrong (e.g. the output shape).

        Args:
            name: the model space's name.
            model_path: the TorchScript file on the server (relative: in its ``models.dir``).
            input: ``ImageInput(width, height, channels=1, resize="stretch", mean=[..],
                std=[..])`` or ``TensorInput(shape)``.
            output_dim: the model returns float32 ``[n, output_dim]``.
            metric: "l2", "inner_product" or "cosine".
            index: the index algorithm (default :class:`Flat`).
            permanent_attributes: further permanent attributes (besides the string ``id``).
            split_attributes: split attributes of the space's index.
            model_sha256: the model file's SHA-256 (hex), if the file must have it. The
                server records the file's SHA-256 either way (``ModelSpaceInfo.model_sha256``)
                and refuses to start if the file changes later.
            output_index: for a model whose forward returns a tuple or list of tensors, the
                element that is the embedding (default 0).
            keep_inputs: keep each item's input (image bytes or tensor) on the server, so that
                a space for a later version of the model can re-embed the items.
            reembed_from: fill this space, in the background, from the kept inputs of the
                items of that model space (name or alias), through this space's model; later
                adds and removes there follow until it is dropped. Implies ``keep_inputs``.
                Progress: ``get_model_space(name).reembed``; :meth:`wait_reembedded` waits
                until it has caught up. See the README's "Upgrading a model".
            indexed_attributes: attribute indexes of the space's index, for filtered finds
                (as in :meth:`create_index`).

        Example::

            db.create_model_space("fmnist_cnn", "fmnist_cnn.pt",
                                  input=ImageInput(28, 28, 1, mean=[0.2860], std=[0.3530]),
                                  output_dim=64, metric="cosine")
        """
        spec = C.ModelSpaceSpec(
            name=name, model_path=str(model_path), input=cv.model_input_in(input),
            output_dim=int(output_dim), metric=cv.metric(metric),
            permanent_attributes=cv.attribute_specs_in(permanent_attributes),
            split_attributes=list(split_attributes or []), model_sha256=model_sha256 or "",
            output_index=int(output_index), keep_inputs=bool(keep_inputs),
            reembed_from=reembed_from or "", indexed_attributes=list(indexed_attributes or []))
        if index is not None:
            spec.index.CopyFrom(cv.algorithm_in(index))
        info = self._call(self._catalog.CreateModelSpace, C.CreateModelSpaceRequest(spec=spec))
        return cv.model_space_out(info)

    def wait_reembedded(self, name: str, timeout: float = 600.0,
                        poll_interval: float = 0.1) -> ModelSpaceInfo:
        """Waits until model space ``name`` has re-embedded every item of its origin and
        applied every change made there so far (``reembed.caught_up``); returns its info.
        Raises FailedPrecondition if the re-embedding failed or the space does not re-embed,
        and TimeoutError after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            info = self.get_model_space(name)
            r = info.reembed
            if r is None:
                raise FailedPrecondition(f"model space {name} does not re-embed (reembed_from "
                                         "is not set)")
            if r.state == "failed":
                raise FailedPrecondition(f"model space {name}: re-embedding from {r.origin} "
                                         f"failed: {r.detail}")
            if r.caught_up:
                return info
            if time.monotonic() >= deadline:
                raise TimeoutError(f"model space {name}: still re-embedding from "
                                       f"{r.origin} after {timeout} s ({r.state}, {r.copied} "
                                       f"of {r.total} items, seq {r.applied_seq} of "
                                       f"{r.origin_last_seq})")
            time.sleep(poll_interval)

    def get_model_space(self, name: str) -> ModelSpaceInfo:
        """Returns the model space (definition, model state, item count, index status)."""
        return cv.model_space_out(self._call(self._catalog.GetModelSpace,
                                             C.GetModelSpaceRequest(name=name)))

    def list_model_spaces(self) -> List[ModelSpaceInfo]:
        """Every model space, ordered by name."""
        resp = self._call(self._catalog.ListModelSpaces, C.ListModelSpacesRequest())
        return [cv.model_space_out(i) for i in resp.model_spaces]

    def drop_model_space(self, name: str) -> None:
        """Drops a model space with its data source, items and index."""
        self._call(self._catalog.DropModelSpace, C.DropModelSpaceRequest(name=name))

    # ------------------------------------------------------------------ points

    def upload(self, source: Ref, points: Union[Iterable[Any], np.ndarray],
               version: Optional[str] = None, batch_size: Optional[int] = None,
               attributes: Optional[Mapping[str, Sequence[Any]]] = None,
               progress: Optional[bool] = None) -> UploadResult:
        """Writes points into a data source: each is a :class:`Point` or a dict
        ``{"vector": ..., "attributes": {...}, "deleted": False}``; vectors are numpy arrays,
        lists or :class:`SparseVector`.

        One call is one atomic write: every point is accepted or none is. With ``batch_size``
        the points are sent in several uploads of at most that many points (each atomic on its
        own), for loads above the server's ``limits.max_points_per_upload``.

        Bulk loads: ``points`` may be a 2-d numpy array of dense vectors (one row per point)
        with ``attributes`` as columns, e.g. ``db.upload("fm", x, attributes={"id":
        np.arange(len(x)), "label": y})``. The request bytes are then written straight from
        the array (no message per point), and the rows go in batches of ``batch_size``
        (default: about 4 MiB and at most 10,000 points each), each batch atomic, on one
        Points.UploadStream call (the next batches are built and sent while the server commits
        the earlier ones). If a batch fails, the error says which (``batches[i]``) and its
        ``written`` attribute how many points the batches before it wrote. Column types
        come from the source's permanent attributes, else from the values (ints, floats,
        bools, str, bytes). ``progress`` shows a progress bar (python3-tqdm) on stderr; the
        default shows it for loads of several batches when stderr is a terminal.

        Returns the seqs taken (``first_seq`` .. ``last_seq``); pass the result as ``min_seq``
        to :meth:`search` to read your writes.
        """
        ref = cv.source_ref(source, version)
        if isinstance(points, np.ndarray):
            return self._upload_array(ref, points, attributes or {}, batch_size, progress)
        if attributes is not None:
            raise TypeError("upload: attributes= goes with a numpy array of vectors; give each "
                            "Point its own attributes otherwise")
        pts = [cv.point_in(p) for p in points]
        if not pts:
            raise ValueError("upload: no points")
        step = batch_size or len(pts)
        first = last = None
        for i in range(0, len(pts), step):
            resp = self._call(self._points.Upload,
                              P.UploadRequest(data_source=ref, points=pts[i:i + step]))
            if first is None:
                first = resp.first_seq
            last = resp.last_seq
        return UploadResult(int(first), int(last))

    def _upload_array(self, ref: T.DataSourceRef, x: np.ndarray,
                      attributes: Mapping[str, Sequence[Any]], batch_size: Optional[int],
                      progress: Optional[bool]) -> UploadResult:
        from . import _wire
        if x.ndim != 2 or x.shape[0] == 0 or x.shape[1] == 0:
            raise ValueError(f"upload: an array of vectors must be 2-d with at least one row "
                             f"and column, got shape {x.shape}")
        x = np.ascontiguousarray(x, dtype=np.float32)
        n = x.shape[0]
        info = self._call(self._catalog.GetDataSource, C.GetDataSourceRequest(data_source=ref))
        declared = {a.name: a.type for a in info.spec.permanent_attributes}
        columns = []
        for name, col in attributes.items():
            if len(col) != n:
                raise ValueError(f"upload: attributes[{name!r}] has {len(col)} values for {n} "
                                 f"vectors")
            # AttributeType numbers are the AttributeValue field numbers (types.proto).
            columns.append((name, _wire.column_kind(name, col, declared.get(name, 0)), col))
        if batch_size is None:
            per_point = x.shape[1] * 4 + 16 + sum(24 + len(c[0]) for c in columns)
            batch_size = max(1, min(10000, (4 << 20) // per_point))
        stream = self._channel.stream_stream("/hilbert.v1.Points/UploadStream",
                                             request_serializer=None,
                                             response_deserializer=P.UploadResponse.FromString)
        ref_bytes = ref.SerializeToString()
        batches = range(0, n, batch_size)
        bar = None
        if progress or (progress is None and len(batches) > 1 and _stderr_is_tty()):
            try:
                from tqdm import tqdm
                bar = tqdm(total=n, unit="point", desc=f"upload {ref.name}@{ref.version}")
            except ImportError:
                bar = None
        first = last = None
        done = 0

        def requests():  # built while the server commits the batches before
            for lo in batches:
                yield _wire.upload_request(ref_bytes, x, columns, lo, min(n, lo + batch_size))

        # One stream: each batch is committed on its own and acknowledged once durable; the
        # client's timeout applies to each batch.
        timeout = None if self.timeout is None else self.timeout * len(batches)
        try:
            for resp in stream(requests(), timeout=timeout, metadata=self._metadata):
                if first is None:
                    first = resp.first_seq
                last = resp.last_seq
                step = int(resp.last_seq - resp.first_seq + 1)
                done += step
                if bar is not None:
                    bar.update(step)
        except grpc.RpcError as e:
            err = from_rpc_error(e)
            err.rpc_error = e  # type: ignore[attr-defined]
            err.written = done  # type: ignore[attr-defined]  (points of the answered batches)
            raise err from None
        finally:
            if bar is not None:
                bar.close()
        if done != n:
            raise HilbertError(f"upload: the server answered {done} of {n} points and ended the "
                               f"stream without an error")
        return UploadResult(int(first), int(last))

    def _id_attrs(self, ref: T.DataSourceRef) -> List[Tuple[str, int]]:
        key = (ref.name, ref.version)
        ids = self._id_cache.get(key)
        if ids is None:
            info = self._call(self._catalog.GetDataSource, C.GetDataSourceRequest(data_source=ref))
            types = {a.name: a.type for a in info.spec.permanent_attributes}
            ids = [(n, types.get(n, 0)) for n in info.spec.id_attributes]
            self._id_cache[key] = ids
        return ids

    def _point_ids(self, ref: T.DataSourceRef, ids: Iterable[Any]) -> List[Dict[str, Any]]:
        """Each id: a dict of id attributes, a scalar (single id attribute) or a tuple (values
        of the id attributes in order)."""
        out: List[Dict[str, Any]] = []
        schema: Optional[List[Tuple[str, int]]] = None
        for i in ids:
            if isinstance(i, Mapping):
                out.append(dict(i))
                continue
            if schema is None:
                schema = self._id_attrs(ref)
            vals = tuple(i) if isinstance(i, tuple) else (i,)
            if len(vals) != len(schema):
                names = ", ".join(n for n, _ in schema)
                raise ValueError(f"id {i!r}: {ref.name}@{ref.version} is identified by "
                                 f"({names}); give a dict or a tuple of {len(schema)} values")
            d = {}
            for (name, typ), v in zip(schema, vals):
                if typ == T.ATTRIBUTE_TYPE_TIMESTAMP and isinstance(v, (int, np.integer)) \
                        and not isinstance(v, bool):
                    v = Timestamp(int(v))
                d[name] = v
            out.append(d)
        return out

    def delete(self, source: Ref, ids: Iterable[Any], version: Optional[str] = None
               ) -> UploadResult:
        """Deletes points by id (writes tombstones; an unknown id is a no-op).

        ``ids``: dicts of the id attributes (``{"id": 7}``), or plain values when the data source
        has a single id attribute (``[7, 8]``), or tuples in ``id_attributes`` order.
        """
        ref = cv.source_ref(source, version)
        pts = []
        for d in self._point_ids(ref, ids):
            p = T.DataPoint(is_deleted=True)
            cv.attrs_in(d, p.attributes)
            pts.append(p)
        if not pts:
            raise ValueError("delete: no ids")
        resp = self._call(self._points.Upload, P.UploadRequest(data_source=ref, points=pts))
        return UploadResult(resp.first_seq, resp.last_seq)

    def get(self, source: Ref, ids: Iterable[Any], version: Optional[str] = None
            ) -> List[Optional[Point]]:
        """Reads points by id (ids as for :meth:`delete`). Returns one entry per id, in order:
        the :class:`Point` (vector as a float32 array or :class:`SparseVector`, ``seq`` of the
        upload that wrote it), or None when there is no such point."""
        ref = cv.source_ref(source, version)
        req = P.GetPointsRequest(data_source=ref)
        for d in self._point_ids(ref, ids):
            pid = req.ids.add()
            cv.attrs_in(d, pid.id_attributes)
        resp = self._call(self._points.Get, req)
        out: List[Optional[Point]] = []
        for r in resp.results:
            if not r.found:
                out.append(None)
                continue
            out.append(Point(cv.vector_out(r.point.vector), cv.attrs_out(r.point.attributes),
                             deleted=r.point.is_deleted, seq=r.seq))
        return out

    def set_payload(self, source: Ref, ids: Iterable[Any], payload: Mapping[str, Any],
                    version: Optional[str] = None) -> UploadResult:
        """Adds or replaces payload attributes of existing points (ids as for :meth:`delete`)
        without resending their vectors: one new version per point, all in one atomic write.
        Permanent attributes cannot be changed. Example:
        ``db.set_payload("products", [7, 8], {"price": 39.5})``."""
        ref = cv.source_ref(source, version)
        req = P.SetPayloadRequest(data_source=ref)
        for d in self._point_ids(ref, ids):
            cv.attrs_in(d, req.ids.add().id_attributes)
        cv.attrs_in(payload, req.payload)
        resp = self._call(self._points.SetPayload, req)
        return UploadResult(resp.first_seq, resp.last_seq)

    def delete_payload(self, source: Ref, ids: Iterable[Any], keys: Iterable[str],
                       version: Optional[str] = None) -> UploadResult:
        """Removes payload attributes (by name) of existing points, as :meth:`set_payload`."""
        ref = cv.source_ref(source, version)
        req = P.DeletePayloadRequest(data_source=ref, keys=list(keys))
        for d in self._point_ids(ref, ids):
            cv.attrs_in(d, req.ids.add().id_attributes)
        resp = self._call(self._points.DeletePayload, req)
        return UploadResult(resp.first_seq, resp.last_seq)

    def delete_by_filter(self, source: Ref, filter: Filter,
                         version: Optional[str] = None) -> Tuple[int, UploadResult]:
        """Deletes every point that passes ``filter``, in one atomic write. Returns (how many,
        the tombstones' seqs; pass the latter as ``min_seq``). Example:
        ``n, up = db.delete_by_filter("products", Attr("discontinued") == True)``."""
        f = filter_in(filter)
        if f is None:
            raise ValueError("delete_by_filter: a filter is required (drop the data source to "
                             "delete everything)")
        req = P.DeleteByFilterRequest(data_source=cv.source_ref(source, version), filter=f)
        resp = self._call(self._points.DeleteByFilter, req)
        return int(resp.deleted), UploadResult(resp.first_seq, resp.last_seq)

    def count(self, source: Optional[Ref] = None, filter: Optional[Filter] = None,
              version: Optional[str] = None, *, index: Optional[Ref] = None) -> int:
        """The number of points of a data source that pass ``filter`` (all points when None),
        exactly. Example: ``db.count("products", Attr("price") < 50)``.

        With ``index=`` instead of a source: the points of that index. When its attribute
        indexes decide the filter exactly, the count comes from them in memory, as of what
        the index has applied; otherwise the index's data source is read."""
        if (source is None) == (index is None):
            raise ValueError("count: give a data source or index=, not both")
        if index is not None:
            req = P.CountRequest(index=cv.index_ref(index, version))
        else:
            req = P.CountRequest(data_source=cv.source_ref(source, version))
        f = filter_in(filter)
        if f is not None:
            req.filter.CopyFrom(f)
        return int(self._call(self._points.Count, req).count)

    def scroll_page(self, source: Ref, cursor: bytes = b"", limit: int = 1000, *,
                    filter: Optional[Filter] = None, with_vectors: bool = False,
                    version: Optional[str] = None) -> Tuple[List[Point], bytes]:
        """One page of :meth:`scroll`: up to ``limit`` points from ``cursor`` on (b"": the
        start), and the cursor of the next page (b"" at the end). A page may be short while
        more follow; only an empty cursor means the end."""
        req = P.ScrollRequest(data_source=cv.source_ref(source, version), limit=int(limit),
                              cursor=bytes(cursor), with_vectors=with_vectors)
        f = filter_in(filter)
        if f is not None:
            req.filter.CopyFrom(f)
        resp = self._call(self._points.Scroll, req)
        pts = [Point(cv.vector_out(r.point.vector) if with_vectors else None,
                     cv.attrs_out(r.point.attributes), seq=r.seq) for r in resp.points]
        return pts, resp.next_cursor

    def scroll(self, source: Ref, filter: Optional[Filter] = None, *, page_size: int = 1000,
               with_vectors: bool = False, version: Optional[str] = None) -> Iterable[Point]:
        """Every point of a data source that passes ``filter`` (all when None), page by page
        in id order (numbers ascending; strings and bytes shorter first, then bytewise).
        Vectors are fetched only with ``with_vectors``.

        Example::

            for p in db.scroll("products", Attr("stock") == 0):
                print(p.attributes["sku"])
        """
        cursor = b""
        while True:
            pts, cursor = self.scroll_page(source, cursor, page_size, filter=filter,
                                           with_vectors=with_vectors, version=version)
            yield from pts
            if not cursor:
                return

    # ------------------------------------------------------------------ search

    def search(self, index: Ref, queries: Any, k: int = 10, *, version: Optional[str] = None,
               split_filter: Optional[Mapping[str, Any]] = None, min_seq: Any = None,
               retrieve_vectors: bool = False, ef_search: Optional[int] = None,
               nprobe: Optional[int] = None, filter: Optional[Filter] = None,
               explain: bool = False) -> SearchResults:
        """The ``k`` nearest neighbours of each query vector in an index.

        Args:
            index: ``"name@version"`` or ``"name"`` (version 1); ``"alias@"`` for an index
                alias.
            queries: one vector (1-D array or list), several (2-D array, one per row), or a
                :class:`SparseVector` / list of them for sparse indices.
            k: hits per query.
            split_filter: split attribute values; searches only the matching splits.
            min_seq: read-your-writes: wait until the index has applied this seq (an int or an
                :class:`UploadResult`), up to the call's deadline.
            retrieve_vectors: also return each hit's vector.
            ef_search: HNSW search breadth for this request.
            nprobe: FAISS IVF lists to visit for this request.
            filter: only points that pass it (:class:`hilbertdb.Attr`), e.g.
                ``(Attr("color") == "red") & (Attr("price") < 50)``. A query is short of k
                only when fewer than k points pass.
            explain: fill ``.plans`` with how each query was answered.

        Returns:
            One list of :class:`Hit` per query (always a list of lists, also for a single
            1-D query), best first; ``.applied_seq`` tells how far the index had applied,
            ``.plans`` (with explain) the plan of each query.

        Example::

            hits = db.search("products-flat", np.random.rand(3).astype("float32"), k=5)[0]
        """
        req = S.SearchRequest(index=cv.index_ref(index, version), k=int(k),
                              query_vectors=cv.queries_in(queries),
                              retrieve_vectors=retrieve_vectors, min_seq=cv.seq_of(min_seq),
                              explain=explain)
        cv.attrs_in(split_filter, req.split_filter)
        f = filter_in(filter)
        if f is not None:
            req.filter.CopyFrom(f)
        params = cv.search_params(ef_search, nprobe)
        if params is not None:
            req.params.CopyFrom(params)
        resp = self._call(self._search.Search, req)
        out = SearchResults([cv.hits_out(r.hits) for r in resp.results], resp.applied_seq)
        out.plans = list(resp.plan)
        return out

    # ------------------------------------------------------------------ aliases

    def update_aliases(self, actions: Iterable[AliasAction]) -> List[AliasInfo]:
        """Applies alias actions (:class:`CreateAlias`, :class:`SwitchAlias`,
        :class:`DeleteAlias`) all or none, and returns every alias afterwards.

        A bad action fails the whole call with an error naming it (``actions[1].create_alias.
        index: ...``): NotFound for a missing target or alias, AlreadyExists for an alias that
        exists or a model-space alias named like a model space, InvalidArgument otherwise.

        Example::

            db.update_aliases([SwitchAlias("live", index="products@2"),
                               DeleteAlias("staging")])
        """
        req = C.UpdateAliasesRequest(actions=[cv.alias_action_in(a) for a in actions])
        resp = self._call(self._catalog.UpdateAliases, req)
        return [cv.alias_out(a) for a in resp.aliases]

    def create_alias(self, alias: str, *, index: Optional[Ref] = None,
                     model_space: Optional[str] = None) -> List[AliasInfo]:
        """Creates an alias of an index (``"name@version"``) or of a model space; search the
        index through it as ``"alias@"``, or name the model space by it."""
        return self.update_aliases([CreateAlias(alias, index, model_space)])

    def switch_alias(self, alias: str, *, index: Optional[Ref] = None,
                     model_space: Optional[str] = None) -> List[AliasInfo]:
        """Repoints an existing alias; calls that start afterwards use the new target."""
        return self.update_aliases([SwitchAlias(alias, index, model_space)])

    def delete_alias(self, alias: str, kind: str = "index") -> List[AliasInfo]:
        """Deletes an alias of ``kind`` "index" or "model_space"."""
        return self.update_aliases([DeleteAlias(alias, kind)])

    def list_aliases(self) -> List[AliasInfo]:
        """Every alias, index aliases first, each kind ordered by name."""
        resp = self._call(self._catalog.ListAliases, C.ListAliasesRequest())
        return [cv.alias_out(a) for a in resp.aliases]

    # ------------------------------------------------------------------ model spaces (items)

    @staticmethod
    def _item_id(id: Any) -> str:
        if isinstance(id, str):
            return id
        if isinstance(id, (int, np.integer)) and not isinstance(id, bool):
            return str(int(id))
        raise TypeError(f"item ids are strings, not {type(id).__name__}")

    @staticmethod
    def _add_result(resp: Any) -> AddResult:
        seqs = {w.model_space: int(w.seq) for w in resp.results}
        vecs = {w.model_space: np.array(w.vector.values, dtype=np.float32)
                for w in resp.results if w.HasField("vector")}
        return AddResult(seqs, vecs)

    def add_image(self, id: str, image: ImageLike, model_spaces: SpaceNames = None,
                  attributes: Optional[Mapping[str, Any]] = None,
                  return_vectors: bool = False) -> AddResult:
        """Embeds an image with each model space's model and stores it under ``id``
        (replacing an earlier item with that id) in every one of them, atomically.

        Args:
            id: the item id (a string).
            image: PNG/JPEG bytes, a file path, a PIL image, or a uint8 numpy array (HxW gray
                or HxWx3 RGB), which the client encodes as PNG.
            model_spaces: one name or several; None means every model space.
            attributes: payload attributes, plus the spaces' permanent attributes.
            return_vectors: also return the vectors (in ``result.vectors``).

        Returns:
            model space -> seq of the item (usable as ``min_seq`` of ``find_similar_*``).

        Example::

            seqs = db.add_image("shoe-1", "shoe.png", attributes={"price": 49.0})
            db.find_similar_image("query.jpg", k=5, min_seq=seqs)
        """
        req = M.AddImageRequest(id=self._item_id(id), image=cv.image_bytes(image),
                                model_spaces=cv.names_in(model_spaces),
                                return_vectors=return_vectors)
        cv.attrs_in(attributes, req.attributes)
        return self._add_result(self._call(self._spaces.AddImage, req))

    def add_tensor(self, id: str, tensor: Any, model_spaces: SpaceNames = None,
                   attributes: Optional[Mapping[str, Any]] = None,
                   return_vectors: bool = False) -> AddResult:
        """As :meth:`add_image`, for model spaces with a tensor input: ``tensor`` is a numpy
        array of the model's input shape (without the batch dimension), sent as float32."""
        req = M.AddTensorRequest(id=self._item_id(id), tensor=cv.tensor_in(tensor),
                                 model_spaces=cv.names_in(model_spaces),
                                 return_vectors=return_vectors)
        cv.attrs_in(attributes, req.attributes)
        return self._add_result(self._call(self._spaces.AddTensor, req))

    @staticmethod
    def _find_fields(req: Any, model_spaces: SpaceNames, k: int,
                     split_filter: Optional[Mapping[str, Any]],
                     min_seq: Optional[Mapping[str, int]], retrieve_vectors: bool,
                     ef_search: Optional[int], nprobe: Optional[int],
                     filter: Optional[Filter] = None) -> None:
        req.model_spaces.extend(cv.names_in(model_spaces))
        f = filter_in(filter)
        if f is not None:
            req.filter.CopyFrom(f)
        req.k = int(k)
        req.retrieve_vectors = retrieve_vectors
        cv.attrs_in(split_filter, req.split_filter)
        if min_seq:
            if not isinstance(min_seq, Mapping):
                raise TypeError("min_seq: a mapping model space -> seq (e.g. what add_image "
                                "returned)")
            for name, seq in min_seq.items():
                req.min_seq[name] = int(seq)
        params = cv.search_params(ef_search, nprobe)
        if params is not None:
            req.params.CopyFrom(params)

    @staticmethod
    def _similar(resp: Any) -> SimilarResults:
        hits = {r.model_space: cv.hits_out(r.hits) for r in resp.results if r.found}
        missing = [r.model_space for r in resp.results if not r.found]
        return SimilarResults(hits, missing)

    def find_similar_image(self, image: ImageLike, model_spaces: SpaceNames = None, k: int = 10,
                           *, split_filter: Optional[Mapping[str, Any]] = None,
                           min_seq: Optional[Mapping[str, int]] = None,
                           retrieve_vectors: bool = False, ef_search: Optional[int] = None,
                           nprobe: Optional[int] = None,
                           filter: Optional[Filter] = None) -> SimilarResults:
        """The ``k`` items most similar to an image, in each model space.

        ``image`` as for :meth:`add_image`; ``min_seq`` maps model space -> seq to wait for
        (e.g. the result of :meth:`add_image`). Returns model space -> list of :class:`Hit`
        (``hit.id`` is the item id), best first.

        Example::

            for space, hits in db.find_similar_image("query.png", k=5).items():
                print(space, [(h.id, round(h.distance, 3)) for h in hits])
        """
        req = M.FindSimilarImageRequest(image=cv.image_bytes(image))
        self._find_fields(req, model_spaces, k, split_filter, min_seq, retrieve_vectors,
                          ef_search, nprobe, filter)
        return self._similar(self._call(self._spaces.FindSimilarImage, req))

    def find_similar_tensor(self, tensor: Any, model_spaces: SpaceNames = None, k: int = 10,
                            *, split_filter: Optional[Mapping[str, Any]] = None,
                            min_seq: Optional[Mapping[str, int]] = None,
                            retrieve_vectors: bool = False, ef_search: Optional[int] = None,
                            nprobe: Optional[int] = None,
                            filter: Optional[Filter] = None) -> SimilarResults:
        """As :meth:`find_similar_image`, for a tensor input (a numpy array of the model's
        input shape)."""
        req = M.FindSimilarTensorRequest(tensor=cv.tensor_in(tensor))
        self._find_fields(req, model_spaces, k, split_filter, min_seq, retrieve_vectors,
                          ef_search, nprobe, filter)
        return self._similar(self._call(self._spaces.FindSimilarTensor, req))

    def find_similar_by_id(self, id: str, model_spaces: SpaceNames = None, k: int = 10,
                           *, split_filter: Optional[Mapping[str, Any]] = None,
                           min_seq: Optional[Mapping[str, int]] = None,
                           retrieve_vectors: bool = False, ef_search: Optional[int] = None,
                           nprobe: Optional[int] = None,
                           filter: Optional[Filter] = None) -> SimilarResults:
        """The ``k`` items most similar to the stored item ``id`` (itself excluded), in each
        model space that holds it. Spaces that do not hold it are not in the result but in its
        ``missing`` list."""
        req = M.FindSimilarByIdRequest(id=self._item_id(id))
        self._find_fields(req, model_spaces, k, split_filter, min_seq, retrieve_vectors,
                          ef_search, nprobe, filter)
        return self._similar(self._call(self._spaces.FindSimilarById, req))

    def remove_image(self, id: str, model_spaces: SpaceNames = None) -> AddResult:
        """Removes an item from each named model space (None: every one; a no-op where it is
        absent). Returns model space -> seq of the removal."""
        req = M.RemoveImageRequest(id=self._item_id(id), model_spaces=cv.names_in(model_spaces))
        return self._add_result(self._call(self._spaces.RemoveImage, req))

    def embed(self, image: Optional[ImageLike] = None, tensor: Any = None,
              model_spaces: SpaceNames = None) -> Dict[str, np.ndarray]:
        """Runs the models on an image or a tensor (exactly one) and returns model space ->
        float32 vector, writing nothing.

        Example::

            vecs = db.embed(image="shoe.png", model_spaces=["fmnist_cnn"])
            vecs["fmnist_cnn"].shape   # (64,)
        """
        if (image is None) == (tensor is None):
            raise ValueError("embed: give either image or tensor")
        req = M.EmbedRequest(model_spaces=cv.names_in(model_spaces))
        if image is not None:
            req.image = cv.image_bytes(image)
        else:
            req.tensor.CopyFrom(cv.tensor_in(tensor))
        resp = self._call(self._spaces.Embed, req)
        return {v.model_space: np.array(v.vector.values, dtype=np.float32) for v in resp.vectors}

    # ------------------------------------------------------------------ admin

    def backup(self, path: str) -> BackupInfo:
        """Writes a consistent backup of the whole server into ``path``, a directory on the
        *server's* machine that must not exist yet (its parent must) or be empty, while uploads
        go on. Needs an admin key when the server has keys. Restore it with ``hilbertd --restore
        PATH --data-dir NEW_DIR``.

        Raises :class:`InvalidArgument` (relative path, no parent), :class:`AlreadyExists` (not
        empty) or a :class:`HilbertError` with code PERMISSION_DENIED (outside the server's
        ``storage.backup_dir``).
        """
        resp = self._call(self._admin.Backup, A.BackupRequest(path=str(path)))
        return BackupInfo(path=resp.path, bytes=resp.bytes, indices=resp.indices,
                          source_seqs=dict(resp.source_seqs), proto=resp)
