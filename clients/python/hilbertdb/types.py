"""Plain Python types of the HilbertDB client: points, vectors, search hits, index algorithms,
model inputs and the catalog descriptions the server returns.

They are ordinary dataclasses; the client converts them to and from the protobuf messages of
``proto/hilbert/v1/``::

    >>> import numpy as np
    >>> from hilbertdb import Point, SparseVector, Hnsw
    >>> p = Point([0.1, 0.2, 0.3], {"id": 1, "category": "shoes"})
    >>> p.vector.dtype, p.attributes["category"]
    (dtype('float32'), 'shoes')
    >>> SparseVector([2, 7], [0.5, 1.0]).indices
    array([2, 7], dtype=uint32)
    >>> Hnsw(m=32).ef_search
    64
"""
from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

__all__ = [
    "Timestamp", "SparseVector", "Point", "UploadResult", "Hit", "SearchResults",
    "AddResult", "SimilarResults", "Flat", "Hnsw", "Faiss", "Sparse", "Algorithm",
    "ImageInput", "TensorInput", "ModelInput", "Split", "IndexStatus", "DataSourceInfo",
    "IndexInfo", "ModelSpaceInfo", "AttributeValue", "VectorLike", "AliasInfo", "CreateAlias",
    "SwitchAlias", "DeleteAlias", "AliasAction",
]


@dataclass(frozen=True)
class Timestamp:
    """A timestamp attribute given as microseconds since the Unix epoch (UTC).

    ``datetime`` values are converted to timestamps automatically; use this class to give the
    microseconds directly. The client also returns it for stored timestamps outside the range
    of :class:`datetime.datetime` (years 1..9999).
    """

    micros: int

    def to_datetime(self) -> _dt.datetime:
        """The timestamp as an aware UTC datetime (OverflowError outside years 1..9999)."""
        return _EPOCH + _dt.timedelta(microseconds=self.micros)


_EPOCH = _dt.datetime(1970, 1, 1, tzinfo=_dt.timezone.utc)

#: Python values an attribute can hold: str, int, float, bool, bytes, datetime (or Timestamp).
AttributeValue = Union[str, int, float, bool, bytes, _dt.datetime, Timestamp]


@dataclass
class SparseVector:
    """A sparse vector: ``indices`` strictly increasing (each below the data source's
    dimension), one finite value per index. Converted to numpy uint32 / float32 arrays."""

    indices: np.ndarray
    values: np.ndarray

    def __post_init__(self) -> None:
        self.indices = np.asarray(self.indices, dtype=np.uint32).reshape(-1)
        self.values = np.asarray(self.values, dtype=np.float32).reshape(-1)
        if self.indices.shape != self.values.shape:
            raise ValueError(f"SparseVector: {len(self.indices)} indices but "
                             f"{len(self.values)} values")

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SparseVector):
            return NotImplemented
        return (np.array_equal(self.indices, other.indices)
                and np.array_equal(self.values, other.values))

    def to_dense(self, dimension: int) -> np.ndarray:
        """The vector as a dense float32 array of length ``dimension``."""
        out = np.zeros(dimension, dtype=np.float32)
        out[self.indices] = self.values
        return out


#: What the client accepts as a vector: a numpy array, a sequence of numbers, or a SparseVector.
VectorLike = Union[np.ndarray, Sequence[float], SparseVector]


@dataclass
class Point:
    """A data point: a vector plus attributes.

    ``attributes`` must hold every permanent attribute of the data source; other keys are
    payload. ``deleted=True`` makes a tombstone, which needs only the id attributes (the
    vector may be None). ``seq`` is set on points returned by :meth:`Client.get`: the seq of
    the upload that wrote them.
    """

    vector: Optional[Union[np.ndarray, SparseVector]]
    attributes: Dict[str, Any] = field(default_factory=dict)
    deleted: bool = False
    seq: Optional[int] = None

    def __post_init__(self) -> None:
        if self.vector is not None and not isinstance(self.vector, SparseVector):
            self.vector = np.asarray(self.vector, dtype=np.float32)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Point):
            return NotImplemented
        a, b = self.vector, other.vector
        if isinstance(a, np.ndarray) and isinstance(b, np.ndarray):
            same_vec = np.array_equal(a, b)
        else:
            same_vec = a == b
        return (bool(same_vec) and self.attributes == other.attributes
                and self.deleted == other.deleted and self.seq == other.seq)


@dataclass(frozen=True)
class UploadResult:
    """The seqs an upload took: ``points[i]`` got ``first_seq + i``. Pass ``last_seq`` (or
    the result itself) as ``min_seq`` of a search to read your writes."""

    first_seq: int
    last_seq: int


@dataclass
class Hit:
    """One search result: the distance (meaning per metric, see the README), all attributes of
    the point, and its vector when ``retrieve_vectors`` was set."""

    distance: float
    attributes: Dict[str, Any]
    vector: Optional[Union[np.ndarray, SparseVector]] = None

    @property
    def id(self) -> Any:
        """The ``id`` attribute (the item id in model spaces), or None if there is none."""
        return self.attributes.get("id")


class SearchResults(List[List[Hit]]):
    """The hits of a search, one list per query vector, best first. ``applied_seq`` is the
    seq the index had applied when it was searched; ``plans`` (with ``explain=True``) says
    per query how it was answered."""

    def __init__(self, results: Sequence[List[Hit]] = (), applied_seq: int = 0,
                 plans: Sequence[str] = ()) -> None:
        super().__init__(results)
        self.applied_seq = applied_seq
        self.plans: List[str] = list(plans)


class AddResult(Dict[str, int]):
    """What :meth:`Client.add_image`, :meth:`Client.add_tensor` and
    :meth:`Client.remove_image` wrote: model space name -> seq of the item in that space's
    timeline. The mapping can be passed as ``min_seq`` to the ``find_similar_*`` calls.
    ``vectors`` holds space -> vector when ``return_vectors`` was set (empty otherwise)."""

    def __init__(self, seqs: Optional[Mapping[str, int]] = None,
                 vectors: Optional[Dict[str, np.ndarray]] = None) -> None:
        super().__init__(seqs or {})
        self.vectors: Dict[str, np.ndarray] = dict(vectors or {})


class SimilarResults(Dict[str, List[Hit]]):
    """Hits per model space (name -> hits, best first), in request order. For
    :meth:`Client.find_similar_by_id`, spaces that do not hold the item are left out of the
    mapping and listed in ``missing``."""

    def __init__(self, hits: Optional[Mapping[str, List[Hit]]] = None,
                 missing: Sequence[str] = ()) -> None:
        super().__init__(hits or {})
        self.missing: List[str] = list(missing)


# ------------------------------------------------------------------------ index algorithms

@dataclass(frozen=True)
class Flat:
    """Exact search over dense vectors."""


@dataclass(frozen=True)
class Hnsw:
    """HNSW graph (hnswlib): ``m`` links per node (2..128), ``ef_construction``, and the default
    ``ef_search`` (a search may override it).

    ``storage`` is how the graph keeps vectors in memory: ``"float32"`` (4 bytes a dimension),
    ``"float16"`` (2) or ``"int8"`` (1; per-dimension ranges trained on a split's first 1000
    points, searched exactly until then). Distances are exact whatever the storage: the graph's
    hits are rescored from the stored vectors. ``oversample``: candidates per result taken from
    the graph for that rescoring (0 = automatic: 1 for float32, 2 otherwise)."""

    m: int = 16
    ef_construction: int = 200
    ef_search: int = 64
    storage: str = "float32"
    oversample: int = 0


@dataclass(frozen=True)
class Faiss:
    """Any FAISS ``index_factory`` string, e.g. ``"IVF256,Flat"``, ``"IVF256,PQ16"``,
    ``"HNSW32,Flat"``. ``nprobe``: IVF lists searched per query (0 = 8). ``train_size``: points
    a split must hold before the index trains (0 = automatic)."""

    factory: str
    nprobe: int = 8
    train_size: int = 0


@dataclass(frozen=True)
class Sparse:
    """Exact search over sparse vectors (cosine or Jaccard)."""


Algorithm = Union[Flat, Hnsw, Faiss, Sparse]


# ------------------------------------------------------------------------ model inputs

@dataclass(frozen=True)
class ImageInput:
    """An image model input: PNG/JPEG converted to ``channels`` (1 gray, 3 RGB), resized to
    ``width`` x ``height`` (``resize``: "stretch", "fit" or "crop"), scaled to [0, 1] and
    normalised per channel as ``(x - mean[c]) / std[c]``. The model gets float32
    ``[n, channels, height, width]``."""

    width: int
    height: int
    channels: int = 1
    resize: str = "stretch"
    mean: Optional[Sequence[float]] = None
    std: Optional[Sequence[float]] = None


@dataclass(frozen=True)
class TensorInput:
    """A raw float32 tensor input of ``shape`` (without the batch dimension, 1 to 4 dims)."""

    shape: Sequence[int]


ModelInput = Union[ImageInput, TensorInput]


# ------------------------------------------------------------------------ catalog descriptions

@dataclass(frozen=True)
class Split:
    """One split of an index: its split attribute values and the number of points in it."""

    values: Dict[str, Any]
    size: int


@dataclass(frozen=True)
class IndexStatus:
    """How far an index has caught up with its data source.

    ``state`` is "READY", "BUILDING" or "FAILED" (reason in ``detail``)."""

    state: str
    applied_seq: int
    source_last_seq: int
    lag_entries: int
    lag_seconds: float
    size: int
    splits: List[Split]
    snapshot_seq: int
    snapshot_time: Optional[_dt.datetime]
    detail: str
    lagging: bool = False  # READY and past index.max_lag_entries or index.max_lag_ms
    # name -> (points that carry the attribute, distinct equality values), for each attribute
    # index (IndexSpec.indexed_attributes), and the memory they take (bytes, approximately)
    attribute_indexes: Dict[str, Tuple[int, int]] = field(default_factory=dict)
    attribute_index_bytes: int = 0
    # memory the engines take, approximately: the vectors as they keep them (float32, HNSW
    # float16/int8 codes, FAISS codes, sparse non-zeros), and the rest (links, maps)
    vector_bytes: int = 0
    engine_other_bytes: int = 0

    @property
    def caught_up(self) -> bool:
        """READY and every committed entry of the data source applied."""
        return self.state == "READY" and self.applied_seq == self.source_last_seq


@dataclass(frozen=True)
class DataSourceInfo:
    """A data source: its definition (``permanent_attributes`` maps name -> type name), the
    newest seq of its timeline, its live point count and the indices (``name@version``) that
    read it."""

    name: str
    version: str
    dimension: int
    sparse: bool
    permanent_attributes: Dict[str, str]
    id_attributes: List[str]
    last_seq: int
    point_count: int
    indices: List[str]
    proto: Any = field(default=None, repr=False, compare=False)

    @property
    def ref(self) -> str:
        """``name@version``."""
        return f"{self.name}@{self.version}"


@dataclass(frozen=True)
class IndexInfo:
    """An index: its definition (``data_source`` as ``name@version``, ``metric`` as a name such
    as "l2") and status."""

    name: str
    version: str
    data_source: str
    algorithm: Algorithm
    metric: str
    split_attributes: List[str]
    status: IndexStatus
    indexed_attributes: List[str] = field(default_factory=list)
    proto: Any = field(default=None, repr=False, compare=False)

    @property
    def ref(self) -> str:
        """``name@version``."""
        return f"{self.name}@{self.version}"


@dataclass(frozen=True)
class ModelSpaceInfo:
    """A model space: its definition, whether its model runs (``model_state`` "LOADED" or
    "FAILED", reason in ``detail``), its item count and its index's status. Its data source
    and index are both called ``name@space``."""

    name: str
    model_path: str
    input: ModelInput
    output_dim: int
    metric: str
    index: Algorithm
    permanent_attributes: Dict[str, str]
    split_attributes: List[str]
    model_state: str
    detail: str
    point_count: int
    index_status: Optional[IndexStatus]
    model_sha256: str = ""  # of the model file, recorded when the space was created
    output_index: int = 0  # the element of a tuple/list model output that is the embedding
    keep_inputs: bool = False  # each item's input is kept, for re-embedding
    reembed_from: str = ""  # the model space this one is re-embedded from
    reembed: Optional["ReembedStatus"] = None  # its progress, when reembed_from is set
    indexed_attributes: List[str] = field(default_factory=list)  # of the space's index
    proto: Any = field(default=None, repr=False, compare=False)


@dataclass(frozen=True)
class ReembedStatus:
    """The progress of a model space that re-embeds the items of another (``origin``).

    ``state`` is "copying" (embedding the origin's items), "following" (copied; later adds
    and removes of the origin follow), "done" (the origin was dropped) or "failed"
    (``detail`` says why). ``applied_seq`` is the origin's seq up to which its changes are
    here; the space has caught up when it equals ``origin_last_seq``."""

    origin: str
    state: str
    copied: int
    total: int
    skipped: int
    applied_seq: int
    origin_last_seq: int
    detail: str

    @property
    def caught_up(self) -> bool:
        return self.state in ("following", "done") and self.applied_seq >= self.origin_last_seq


@dataclass(frozen=True)
class AliasInfo:
    """An alias: ``kind`` "index" (``target`` is ``name@version``) or "model_space" (``target``
    is the space's name)."""

    name: str
    kind: str
    target: str
    proto: Any = field(default=None, repr=False, compare=False)


@dataclass(frozen=True)
class CreateAlias:
    """An action of :meth:`hilbertdb.Client.update_aliases`: a new alias of an index
    (``"name@version"``) or of a model space. Give exactly one of them."""

    alias: str
    index: Optional[Any] = None
    model_space: Optional[str] = None


@dataclass(frozen=True)
class SwitchAlias:
    """An action of :meth:`hilbertdb.Client.update_aliases`: repoint an existing alias."""

    alias: str
    index: Optional[Any] = None
    model_space: Optional[str] = None


@dataclass(frozen=True)
class DeleteAlias:
    """An action of :meth:`hilbertdb.Client.update_aliases`: delete an alias of ``kind``
    "index" or "model_space"."""

    alias: str
    kind: str = "index"


AliasAction = Union[CreateAlias, SwitchAlias, DeleteAlias]


@dataclass(frozen=True)
class BackupInfo:
    """A backup written by :meth:`hilbertdb.Client.backup`: its directory on the server's
    machine, the bytes of its files, how many index snapshots it holds, and per data source
    (``name@version``) the seq up to which every write is in it."""

    path: str
    bytes: int
    indices: int
    source_seqs: Dict[str, int]
    proto: Any = field(default=None, repr=False, compare=False)
