"""Conversions between the client's Python types and the protobuf messages (internal)."""
from __future__ import annotations

import datetime as _dt
import io
import os
from typing import Any, Dict, Iterable, List, Mapping, Optional, Tuple, Union

import numpy as np

from hilbert.v1 import catalog_pb2 as C
from hilbert.v1 import modelspaces_pb2 as M
from hilbert.v1 import search_pb2 as S
from hilbert.v1 import types_pb2 as T

from .types import (AliasInfo, Algorithm, CreateAlias, DataSourceInfo, DeleteAlias, Faiss, Flat,
                    Hit, Hnsw, ImageInput, IndexInfo, IndexStatus, ModelInput, ModelSpaceInfo,
                    Point, ReembedStatus, Sparse, SparseVector, Split, SwitchAlias, TensorInput,
                    Timestamp, _EPOCH)

# ------------------------------------------------------------------------ names

ATTRIBUTE_TYPES: Dict[str, int] = {
    "string": T.ATTRIBUTE_TYPE_STRING,
    "str": T.ATTRIBUTE_TYPE_STRING,
    "int64": T.ATTRIBUTE_TYPE_INT64,
    "int": T.ATTRIBUTE_TYPE_INT64,
    "float64": T.ATTRIBUTE_TYPE_FLOAT64,
    "float": T.ATTRIBUTE_TYPE_FLOAT64,
    "double": T.ATTRIBUTE_TYPE_FLOAT64,
    "bool": T.ATTRIBUTE_TYPE_BOOL,
    "bytes": T.ATTRIBUTE_TYPE_BYTES,
    "timestamp": T.ATTRIBUTE_TYPE_TIMESTAMP,
    "datetime": T.ATTRIBUTE_TYPE_TIMESTAMP,
}
_PY_TYPES = {str: "string", int: "int64", float: "float64", bool: "bool", bytes: "bytes",
             _dt.datetime: "timestamp", Timestamp: "timestamp"}
ATTRIBUTE_TYPE_NAMES: Dict[int, str] = {
    T.ATTRIBUTE_TYPE_STRING: "string", T.ATTRIBUTE_TYPE_INT64: "int64",
    T.ATTRIBUTE_TYPE_FLOAT64: "float64", T.ATTRIBUTE_TYPE_BOOL: "bool",
    T.ATTRIBUTE_TYPE_BYTES: "bytes", T.ATTRIBUTE_TYPE_TIMESTAMP: "timestamp",
    T.ATTRIBUTE_TYPE_UNSPECIFIED: "unspecified",
}

METRICS: Dict[str, int] = {
    "l2": C.METRIC_L2, "inner_product": C.METRIC_INNER_PRODUCT, "ip": C.METRIC_INNER_PRODUCT,
    "cosine": C.METRIC_COSINE, "jaccard": C.METRIC_JACCARD,
}
METRIC_NAMES: Dict[int, str] = {
    C.METRIC_L2: "l2", C.METRIC_INNER_PRODUCT: "inner_product", C.METRIC_COSINE: "cosine",
    C.METRIC_JACCARD: "jaccard", C.METRIC_UNSPECIFIED: "unspecified",
}
RESIZE_MODES: Dict[str, int] = {
    "stretch": C.RESIZE_MODE_STRETCH, "fit": C.RESIZE_MODE_FIT, "crop": C.RESIZE_MODE_CROP,
}
RESIZE_NAMES: Dict[int, str] = {v: k for k, v in RESIZE_MODES.items()}
RESIZE_NAMES[C.RESIZE_MODE_UNSPECIFIED] = "stretch"
INDEX_STATES = {C.INDEX_STATE_READY: "READY", C.INDEX_STATE_BUILDING: "BUILDING",
                C.INDEX_STATE_FAILED: "FAILED", C.INDEX_STATE_UNSPECIFIED: "UNSPECIFIED"}
MODEL_STATES = {C.MODEL_STATE_LOADED: "LOADED", C.MODEL_STATE_FAILED: "FAILED",
                C.MODEL_STATE_UNSPECIFIED: "UNSPECIFIED"}


def attribute_type(t: Any) -> int:
    """A type name ("int64", "string", ...), a Python type (int, str, ...) or an
    AttributeType enum value -> AttributeType."""
    if isinstance(t, str):
        try:
            return ATTRIBUTE_TYPES[t.lower()]
        except KeyError:
            raise ValueError(f"unknown attribute type {t!r}; expected one of string, int64, "
                             f"float64, bool, bytes, timestamp") from None
    if isinstance(t, type) and t in _PY_TYPES:
        return ATTRIBUTE_TYPES[_PY_TYPES[t]]
    if isinstance(t, int) and t in ATTRIBUTE_TYPE_NAMES:
        return t
    raise ValueError(f"unknown attribute type {t!r}")


def metric(m: Union[str, int]) -> int:
    if isinstance(m, str):
        try:
            return METRICS[m.lower()]
        except KeyError:
            raise ValueError(f"unknown metric {m!r}; expected l2, inner_product, cosine or "
                             f"jaccard") from None
    return int(m)


# ------------------------------------------------------------------------ refs

def split_ref(ref: Union[str, Tuple[str, str]], version: Optional[str] = None,
              default_version: str = "1") -> Tuple[str, str]:
    """"name@version", ("name", "version") or "name" (+ version) -> (name, version)."""
    if isinstance(ref, tuple):
        name, ver = ref
        return str(name), str(ver)
    if not isinstance(ref, str):
        raise TypeError(f"expected a name such as 'docs@1', not {ref!r}")
    if version is not None:
        return ref, str(version)
    if "@" in ref:
        name, _, ver = ref.rpartition("@")
        return name, ver
    return ref, default_version


def source_ref(ref: Any, version: Optional[str] = None) -> T.DataSourceRef:
    name, ver = split_ref(ref, version)
    return T.DataSourceRef(name=name, version=ver)


def index_ref(ref: Any, version: Optional[str] = None) -> T.IndexRef:
    name, ver = split_ref(ref, version)
    return T.IndexRef(name=name, version=ver)


# ------------------------------------------------------------------------ attribute values

def _datetime_micros(d: _dt.datetime) -> int:
    if d.tzinfo is None:
        d = d.replace(tzinfo=_dt.timezone.utc)
    return (d - _EPOCH) // _dt.timedelta(microseconds=1)


def attr_in(value: Any) -> T.AttributeValue:
    """Python value -> AttributeValue. bool is checked before int (bool is an int)."""
    if isinstance(value, T.AttributeValue):
        return value
    if isinstance(value, (bool, np.bool_)):
        return T.AttributeValue(bool_value=bool(value))
    if isinstance(value, (int, np.integer)):
        return T.AttributeValue(int64_value=int(value))
    if isinstance(value, (float, np.floating)):
        return T.AttributeValue(float64_value=float(value))
    if isinstance(value, str):
        return T.AttributeValue(string_value=value)
    if isinstance(value, (bytes, bytearray, memoryview)):
        return T.AttributeValue(bytes_value=bytes(value))
    if isinstance(value, _dt.datetime):
        return T.AttributeValue(timestamp_micros=_datetime_micros(value))
    if isinstance(value, Timestamp):
        return T.AttributeValue(timestamp_micros=int(value.micros))
    if isinstance(value, _dt.date):
        raise TypeError(f"attribute value {value!r}: a date has no time; use a datetime")
    raise TypeError(f"attribute value {value!r} of type {type(value).__name__}: expected str, "
                    f"int, float, bool, bytes or datetime")


def attrs_in(values: Optional[Mapping[str, Any]], target) -> None:
    """Fills a map<string, AttributeValue> field from a dict of Python values."""
    if not values:
        return
    for k, v in values.items():
        if not isinstance(k, str):
            raise TypeError(f"attribute names must be str, not {k!r}")
        try:
            target[k].CopyFrom(attr_in(v))
        except TypeError as e:
            raise TypeError(f"attributes[{k!r}]: {e}") from None


def attr_out(av: T.AttributeValue) -> Any:
    """AttributeValue -> Python value (timestamps as aware UTC datetimes)."""
    which = av.WhichOneof("value")
    if which is None:
        return None
    if which == "timestamp_micros":
        ts = Timestamp(av.timestamp_micros)
        try:
            return ts.to_datetime()
        except OverflowError:
            return ts
    return getattr(av, which)


def attrs_out(m) -> Dict[str, Any]:
    return {k: attr_out(v) for k, v in sorted(m.items())}


# ------------------------------------------------------------------------ vectors

def dense_values(values: Any) -> np.ndarray:
    a = np.asarray(values, dtype=np.float32)
    if a.ndim != 1:
        raise ValueError(f"expected a 1-D vector, got shape {a.shape}")
    return a


def vector_in(v: Any) -> T.Vector:
    if isinstance(v, T.Vector):
        return v
    if isinstance(v, SparseVector):
        return T.Vector(sparse=T.SparseVector(indices=v.indices.tolist(),
                                              values=v.values.tolist()))
    return T.Vector(dense=T.DenseVector(values=dense_values(v).tolist()))


def vector_out(v: T.Vector) -> Optional[Union[np.ndarray, SparseVector]]:
    kind = v.WhichOneof("kind")
    if kind == "dense":
        return np.array(v.dense.values, dtype=np.float32)
    if kind == "sparse":
        return SparseVector(np.array(v.sparse.indices, dtype=np.uint32),
                            np.array(v.sparse.values, dtype=np.float32))
    return None


def queries_in(queries: Any) -> List[T.Vector]:
    """A 1-D vector, a 2-D array (one query per row), a SparseVector or a list of vectors ->
    the query vectors of a SearchRequest."""
    if isinstance(queries, SparseVector):
        return [vector_in(queries)]
    if isinstance(queries, (list, tuple)) and queries and all(
            isinstance(q, SparseVector) for q in queries):
        return [vector_in(q) for q in queries]
    a = np.asarray(queries, dtype=np.float32)
    if a.ndim == 1:
        a = a[None, :]
    if a.ndim != 2:
        raise ValueError(f"queries must be a 1-D or 2-D array, got shape {a.shape}")
    return [T.Vector(dense=T.DenseVector(values=row.tolist())) for row in a]


def point_in(p: Any) -> T.DataPoint:
    """A Point, a dict {"vector", "attributes", "deleted"} or a DataPoint -> DataPoint."""
    if isinstance(p, T.DataPoint):
        return p
    if isinstance(p, Mapping):
        unknown = set(p) - {"vector", "attributes", "deleted"}
        if unknown:
            raise ValueError(f"point dict: unknown keys {sorted(unknown)}; expected 'vector', "
                             f"'attributes' and optionally 'deleted'")
        p = Point(p.get("vector"), dict(p.get("attributes") or {}), bool(p.get("deleted", False)))
    if not isinstance(p, Point):
        raise TypeError(f"expected a Point or a dict, not {type(p).__name__}")
    out = T.DataPoint(is_deleted=p.deleted)
    attrs_in(p.attributes, out.attributes)
    if p.vector is not None:
        out.vector.CopyFrom(vector_in(p.vector))
    return out


def hits_out(hits) -> List[Hit]:
    return [Hit(distance=float(h.distance), attributes=attrs_out(h.attributes),
                vector=vector_out(h.vector) if h.HasField("vector") else None) for h in hits]


# ------------------------------------------------------------------------ images and tensors

def image_bytes(image: Any) -> bytes:
    """bytes (PNG/JPEG, sent as is), a path (str or os.PathLike), a PIL image or a uint8 numpy
    array (HxW gray, HxWx3 RGB, HxWx4 RGBA) -> encoded image bytes (PNG for PIL and numpy)."""
    if isinstance(image, (bytes, bytearray, memoryview)):
        return bytes(image)
    if isinstance(image, (str, os.PathLike)):
        with open(image, "rb") as f:
            return f.read()
    if isinstance(image, np.ndarray):
        from PIL import Image
        a = image
        if a.dtype != np.uint8:
            raise TypeError(f"image arrays must be uint8 (0..255), not {a.dtype}; scale and "
                            f"convert them with .astype(np.uint8)")
        if a.ndim == 3 and a.shape[2] == 1:
            a = a[:, :, 0]
        if not (a.ndim == 2 or (a.ndim == 3 and a.shape[2] in (3, 4))):
            raise ValueError(f"image arrays must be HxW, HxWx3 or HxWx4, got shape {a.shape}")
        image = Image.fromarray(np.ascontiguousarray(a))
    try:
        from PIL import Image
    except ImportError:  # pragma: no cover - PIL is optional unless images are PIL or numpy
        Image = None
    if Image is not None and isinstance(image, Image.Image):
        buf = io.BytesIO()
        if image.mode not in ("1", "L", "LA", "I", "I;16", "P", "RGB", "RGBA"):
            image = image.convert("RGB")
        image.save(buf, format="PNG")
        return buf.getvalue()
    raise TypeError(f"unsupported image {type(image).__name__}: expected bytes, a path, a PIL "
                    f"image or a uint8 numpy array")


def tensor_in(tensor: Any) -> M.Tensor:
    """A numpy array (or nested sequence) -> Tensor with its shape and float32 values."""
    if isinstance(tensor, M.Tensor):
        return tensor
    a = np.asarray(tensor, dtype=np.float32)
    if a.ndim == 0:
        raise ValueError("a tensor needs at least one dimension")
    return M.Tensor(shape=list(a.shape), values=a.reshape(-1).tolist())


# ------------------------------------------------------------------------ catalog specs

_STORAGE_NAMES = {C.VECTOR_STORAGE_FLOAT32: "float32", C.VECTOR_STORAGE_FLOAT16: "float16",
                  C.VECTOR_STORAGE_INT8: "int8"}


def storage_in(storage: Any) -> int:
    """An HNSW storage name ("float32", "float16", "int8") as the proto enum value."""
    if isinstance(storage, int) and not isinstance(storage, bool):
        return storage
    for value, name in _STORAGE_NAMES.items():
        if isinstance(storage, str) and storage.lower() == name:
            return value
    raise ValueError(f"unknown HNSW storage {storage!r}; use 'float32', 'float16' or 'int8'")


def algorithm_in(alg: Any) -> C.IndexAlgorithm:
    if isinstance(alg, C.IndexAlgorithm):
        return alg
    if isinstance(alg, str):
        alg = {"flat": Flat(), "hnsw": Hnsw(), "sparse": Sparse()}.get(alg.lower(), alg)
        if isinstance(alg, str):
            raise ValueError(f"unknown algorithm {alg!r}; use Flat(), Hnsw(...), "
                             f"Faiss(factory, ...) or Sparse()")
    if isinstance(alg, Flat):
        return C.IndexAlgorithm(flat=C.FlatAlgorithm())
    if isinstance(alg, Hnsw):
        return C.IndexAlgorithm(hnsw=C.HnswAlgorithm(m=alg.m, ef_construction=alg.ef_construction,
                                                     ef_search=alg.ef_search,
                                                     storage=storage_in(alg.storage),
                                                     oversample=alg.oversample))
    if isinstance(alg, Faiss):
        return C.IndexAlgorithm(faiss=C.FaissAlgorithm(factory=alg.factory, nprobe=alg.nprobe,
                                                       train_size=alg.train_size))
    if isinstance(alg, Sparse):
        return C.IndexAlgorithm(sparse=C.SparseAlgorithm())
    raise TypeError(f"unknown index algorithm {alg!r}")


def algorithm_out(a: C.IndexAlgorithm) -> Algorithm:
    kind = a.WhichOneof("kind")
    if kind == "hnsw":
        return Hnsw(a.hnsw.m, a.hnsw.ef_construction, a.hnsw.ef_search,
                    _STORAGE_NAMES.get(a.hnsw.storage, "float32"), a.hnsw.oversample)
    if kind == "faiss":
        return Faiss(a.faiss.factory, a.faiss.nprobe, a.faiss.train_size)
    if kind == "sparse":
        return Sparse()
    return Flat()


def attribute_specs_in(attrs: Optional[Mapping[str, Any]]) -> List[C.AttributeSpec]:
    if not attrs:
        return []
    if not isinstance(attrs, Mapping):
        raise TypeError("permanent_attributes must be a dict name -> type name, e.g. "
                        "{'id': 'int64', 'category': 'string'}")
    return [C.AttributeSpec(name=k, type=attribute_type(t)) for k, t in attrs.items()]


def attribute_specs_out(specs) -> Dict[str, str]:
    return {s.name: ATTRIBUTE_TYPE_NAMES.get(s.type, str(s.type)) for s in specs}


def model_input_in(inp: Any) -> C.ModelInput:
    if isinstance(inp, C.ModelInput):
        return inp
    if isinstance(inp, ImageInput):
        resize = inp.resize
        if isinstance(resize, str):
            try:
                resize = RESIZE_MODES[resize.lower()]
            except KeyError:
                raise ValueError(f"unknown resize mode {inp.resize!r}; expected stretch, fit "
                                 f"or crop") from None
        return C.ModelInput(image=C.ImageInput(
            width=inp.width, height=inp.height, channels=inp.channels, resize=resize,
            mean=list(inp.mean or []), std=list(inp.std or [])))
    if isinstance(inp, TensorInput):
        return C.ModelInput(tensor=C.TensorInput(shape=[int(d) for d in inp.shape]))
    raise TypeError(f"model input must be ImageInput(...) or TensorInput(shape), not {inp!r}")


def model_input_out(m: C.ModelInput) -> ModelInput:
    if m.WhichOneof("kind") == "tensor":
        return TensorInput(tuple(m.tensor.shape))
    im = m.image
    return ImageInput(im.width, im.height, im.channels, RESIZE_NAMES.get(im.resize, "stretch"),
                      tuple(_f32(x) for x in im.mean) or None,
                      tuple(_f32(x) for x in im.std) or None)


def _f32(x: float) -> float:
    """A float32 value as the shortest decimal that round-trips it (0.286, not
    0.28600001335144043)."""
    return float(str(np.float32(x)))


def _micros_datetime(us: int) -> Optional[_dt.datetime]:
    if not us:
        return None
    try:
        return Timestamp(us).to_datetime()
    except OverflowError:
        return None


def index_status_out(s: C.IndexStatus) -> IndexStatus:
    return IndexStatus(
        state=INDEX_STATES.get(s.state, str(s.state)), applied_seq=s.applied_seq,
        source_last_seq=s.source_last_seq, lag_entries=s.lag_entries, lag_seconds=s.lag_seconds,
        size=s.size, splits=[Split(attrs_out(sp.split_values), sp.size) for sp in s.splits],
        snapshot_seq=s.snapshot_seq, snapshot_time=_micros_datetime(s.snapshot_time_micros),
        detail=s.detail, lagging=s.lagging,
        attribute_indexes={a.name: (a.points, a.distinct_values) for a in s.attribute_indexes},
        attribute_index_bytes=s.attribute_index_bytes, vector_bytes=s.vector_bytes,
        engine_other_bytes=s.engine_other_bytes)


def data_source_out(info: C.DataSourceInfo) -> DataSourceInfo:
    s = info.spec
    return DataSourceInfo(
        name=s.name, version=s.version, dimension=s.dimension,
        sparse=s.vector_kind == C.VECTOR_KIND_SPARSE,
        permanent_attributes=attribute_specs_out(s.permanent_attributes),
        id_attributes=list(s.id_attributes), last_seq=info.last_seq,
        point_count=info.point_count,
        indices=[f"{r.name}@{r.version}" for r in info.indices], proto=info)


def index_out(info: C.IndexInfo) -> IndexInfo:
    s = info.spec
    return IndexInfo(
        name=s.name, version=s.version,
        data_source=f"{s.data_source.name}@{s.data_source.version}",
        algorithm=algorithm_out(s.algorithm), metric=METRIC_NAMES.get(s.metric, str(s.metric)),
        split_attributes=list(s.split_attributes), status=index_status_out(info.status),
        indexed_attributes=list(s.indexed_attributes), proto=info)


def model_space_out(info: C.ModelSpaceInfo) -> ModelSpaceInfo:
    s = info.spec
    return ModelSpaceInfo(
        name=s.name, model_path=s.model_path, input=model_input_out(s.input),
        output_dim=s.output_dim, metric=METRIC_NAMES.get(s.metric, str(s.metric)),
        index=algorithm_out(s.index),
        permanent_attributes=attribute_specs_out(s.permanent_attributes),
        split_attributes=list(s.split_attributes),
        model_state=MODEL_STATES.get(info.model_state, str(info.model_state)),
        detail=info.detail, point_count=info.point_count,
        index_status=index_status_out(info.index_status) if info.HasField("index_status")
        else None,
        model_sha256=s.model_sha256, output_index=s.output_index, keep_inputs=s.keep_inputs,
        reembed_from=s.reembed_from, indexed_attributes=list(s.indexed_attributes),
        reembed=reembed_out(info.reembed) if info.HasField("reembed") else None, proto=info)


REEMBED_STATES = {C.REEMBED_STATE_COPYING: "copying", C.REEMBED_STATE_FOLLOWING: "following",
                  C.REEMBED_STATE_DONE: "done", C.REEMBED_STATE_FAILED: "failed"}


def reembed_out(r: C.ReembedStatus) -> ReembedStatus:
    return ReembedStatus(origin=r.origin, state=REEMBED_STATES.get(r.state, str(r.state)),
                         copied=r.copied, total=r.total, skipped=r.skipped,
                         applied_seq=r.applied_seq, origin_last_seq=r.origin_last_seq,
                         detail=r.detail)


def names_in(model_spaces: Optional[Union[str, Iterable[str]]]) -> List[str]:
    """None (every model space), one name, or several names -> a list of names."""
    if model_spaces is None:
        return []
    if isinstance(model_spaces, str):
        return [model_spaces]
    return [str(n) for n in model_spaces]


def search_params(ef_search: Optional[int], nprobe: Optional[int]) -> Optional[S.SearchParams]:
    if ef_search is None and nprobe is None:
        return None
    return S.SearchParams(ef_search=ef_search or 0, nprobe=nprobe or 0)


def seq_of(min_seq: Any) -> int:
    """An int, an UploadResult (its last_seq) or None -> the min_seq of a SearchRequest."""
    if min_seq is None:
        return 0
    last = getattr(min_seq, "last_seq", None)
    if last is not None:
        return int(last)
    return int(min_seq)


# ------------------------------------------------------------------------ aliases

_ALIAS_KINDS = {"index": C.ALIAS_KIND_INDEX, "model_space": C.ALIAS_KIND_MODEL_SPACE,
                "model-space": C.ALIAS_KIND_MODEL_SPACE}


def alias_kind(kind: str) -> int:
    try:
        return _ALIAS_KINDS[kind.lower()]
    except (KeyError, AttributeError):
        raise ValueError(f"alias kind {kind!r}: 'index' or 'model_space'") from None


def _alias_target(msg: Any, a: Any) -> None:
    if a.index is not None:
        msg.index.CopyFrom(index_ref(a.index))
    if a.model_space is not None:
        msg.model_space = a.model_space


def alias_action_in(a: Any) -> Any:
    """CreateAlias / SwitchAlias / DeleteAlias (or a ready AliasAction message) -> AliasAction."""
    if isinstance(a, C.AliasAction):
        return a
    act = C.AliasAction()
    if isinstance(a, CreateAlias):
        act.create_alias.name = a.alias
        _alias_target(act.create_alias, a)
    elif isinstance(a, SwitchAlias):
        act.switch_alias.name = a.alias
        _alias_target(act.switch_alias, a)
    elif isinstance(a, DeleteAlias):
        act.delete_alias.name = a.alias
        act.delete_alias.kind = alias_kind(a.kind)
    else:
        raise TypeError(f"expected CreateAlias, SwitchAlias or DeleteAlias, not {a!r}")
    return act


def alias_out(m: Any) -> AliasInfo:
    if m.kind == C.ALIAS_KIND_INDEX:
        return AliasInfo(m.name, "index", f"{m.index.name}@{m.index.version}", m)
    return AliasInfo(m.name, "model_space", m.model_space, m)
