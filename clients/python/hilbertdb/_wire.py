"""Protobuf wire bytes of an UploadRequest built straight from a numpy array of vectors and
columns of attributes, without a message object per point.

Building DataPoint messages one by one costs more than sending them (about 40% of a 60k x 784
upload went into it); the bytes here are the same protobuf encoding, written with numpy's
``tobytes`` for the packed float32 vectors, so the server sees an ordinary UploadRequest.

Field numbers (proto/hilbert/v1/types.proto, points.proto):
  UploadRequest   1 data_source (DataSourceRef), 2 points (DataPoint, repeated)
  DataPoint       1 vector (Vector), 2 attributes (map<string, AttributeValue>)
  Vector          1 dense (DenseVector)            DenseVector  1 values (packed float)
  map entry       1 key (string), 2 value (AttributeValue)
  AttributeValue  1 string, 2 int64, 3 double, 4 bool, 5 bytes, 6 timestamp_micros
"""
from __future__ import annotations

import struct
from typing import Any, List, Sequence, Tuple

import numpy as np

LEN, VARINT, I64 = 2, 0, 1

# AttributeValue fields by kind
STRING, INT64, FLOAT64, BOOL, BYTES, TIMESTAMP = 1, 2, 3, 4, 5, 6


def varint(n: int) -> bytes:
    """An unsigned varint; negative int64 values are taken as their 64-bit two's complement."""
    if n < 0:
        n += 1 << 64
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def key(field: int, wire: int) -> bytes:
    return varint(field << 3 | wire)


def ld(field: int, payload: bytes) -> bytes:
    """A length-delimited field."""
    return key(field, LEN) + varint(len(payload)) + payload


def value_bytes(kind: int, v: Any) -> bytes:
    """An AttributeValue message holding v as `kind`."""
    if kind == STRING:
        return ld(STRING, v.encode("utf-8") if isinstance(v, str) else bytes(v))
    if kind == BYTES:
        return ld(BYTES, bytes(v))
    if kind == FLOAT64:
        return key(FLOAT64, I64) + struct.pack("<d", float(v))
    if kind == BOOL:
        return key(BOOL, VARINT) + (b"\x01" if v else b"\x00")
    return key(kind, VARINT) + varint(int(v))  # INT64, TIMESTAMP


def column_kind(name: str, col: Any, schema_kind: int = 0) -> int:
    """The AttributeValue kind of a column: the source's declared type when known, else from
    the numpy dtype or the Python type of its first value."""
    if schema_kind:
        return schema_kind
    arr = np.asarray(col)
    if arr.dtype == np.bool_:
        return BOOL
    if np.issubdtype(arr.dtype, np.integer):
        return INT64
    if np.issubdtype(arr.dtype, np.floating):
        return FLOAT64
    first = col[0] if len(col) else ""
    if isinstance(first, (bytes, bytearray)):
        return BYTES
    if isinstance(first, str):
        return STRING
    raise TypeError(f"attributes[{name!r}]: cannot tell the type of a column of "
                    f"{type(first).__name__}; use ints, floats, bools, str or bytes")


def encoded_columns(columns: Sequence[Tuple[str, int, Any]], lo: int, hi: int
                    ) -> List[bytes]:
    """Per point in [lo, hi): its attribute map entries, as bytes of DataPoint field 2."""
    out = [b""] * (hi - lo)
    for name, kind, col in columns:
        kb = ld(1, name.encode("utf-8"))
        if kind in (INT64, TIMESTAMP):
            vals = [int(x) for x in np.asarray(col[lo:hi]).tolist()]
        elif kind == FLOAT64:
            vals = [float(x) for x in np.asarray(col[lo:hi], dtype=np.float64).tolist()]
        else:
            vals = list(col[lo:hi])
        for i, v in enumerate(vals):
            out[i] += ld(2, kb + ld(2, value_bytes(kind, v)))
    return out


def upload_request(source_ref: bytes, vectors: np.ndarray, columns: Sequence[Tuple[str, int, Any]],
                   lo: int, hi: int) -> bytes:
    """The UploadRequest of points [lo, hi): vectors (n x dim float32, C order) and columns
    [(name, kind, values)]; source_ref is the serialized DataSourceRef."""
    dim = vectors.shape[1]
    vb = vectors[lo:hi].tobytes()
    step = dim * 4
    dense_head = key(1, LEN) + varint(step)  # DenseVector.values, packed
    dense_len = len(dense_head) + step
    vector_head = key(1, LEN) + varint(dense_len) + dense_head  # Vector.dense
    vector_len = len(vector_head) + step
    point_vec_head = key(1, LEN) + varint(vector_len) + vector_head  # DataPoint.vector
    attrs = encoded_columns(columns, lo, hi)
    parts = [ld(1, source_ref)]
    point_key = key(2, LEN)
    for i in range(hi - lo):
        a = attrs[i]
        body_len = len(point_vec_head) + step + len(a)
        parts.append(point_key + varint(body_len) + point_vec_head + vb[i * step:(i + 1) * step]
                     + a)
    return b"".join(parts)
