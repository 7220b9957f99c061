"""hilbert: the command-line tool of HilbertDB, built on the Python client (hilbertdb.Client).

    hilbert [--target HOST:PORT] [--api-key KEY] [--ca FILE] [--timeout S] COMMAND ...

    status              data sources, indices (state, lag, size), model spaces and aliases
    import PATH         a .npy (N x dim) or a CSV into a data source, or a folder of images
                        into model spaces; batches, a progress bar, a summary
    search [INDEX]      by a vector (--vector, --npy) on an index, or by an image (--image)
                        on model spaces
    backup PATH         an online backup of the whole server (hilbert.v1.Admin/Backup)

Installed as the console script ``hilbert`` with the client (clients/python/pyproject.toml);
from a checkout: ``scripts/hilbert`` or ``PYTHONPATH=clients/python python3 -m hilbertdb.cli``.
``--target`` defaults to $HILBERT_TARGET, else 127.0.0.1:50051; ``--api-key`` to
$HILBERT_API_KEY.

Exit codes: 0 success; 1 a server or data error (an unknown data source, a wrong dimension, a
rejected batch, an unreachable server); 2 a usage error (bad arguments, a missing file). Errors
are one line on stderr, never a traceback.
"""
from __future__ import annotations

import argparse
import base64
import concurrent.futures
import csv
import dataclasses
import datetime as _dt
import json
import os
import re
import sys
import time
from pathlib import Path
from typing import Any, Dict, Iterator, List, Mapping, NoReturn, Optional, Sequence, Tuple

import numpy as np

from . import __version__

EXIT_OK, EXIT_ERROR, EXIT_USAGE = 0, 1, 2
DEFAULT_TARGET = "127.0.0.1:50051"
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
ATTRIBUTE_TYPES = ("string", "int64", "float64", "bool", "bytes", "timestamp")
#: Per-row or per-batch errors printed before the rest are only counted.
MAX_ERROR_LINES = 10


class UsageError(Exception):
    """Bad arguments or a missing input file: exit code 2."""


class DataError(Exception):
    """The input does not fit the server's data (dimension, schema, parse errors): exit 1."""


class _Parser(argparse.ArgumentParser):
    """argparse with one-line usage errors (exit 2) instead of usage plus error."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


# ------------------------------------------------------------------------ helpers

def _one_line(text: Any) -> str:
    return " ".join(str(text).split())


def _warn(msg: str) -> None:
    print(f"hilbert: {_one_line(msg)}", file=sys.stderr)


def _json_value(v: Any) -> Any:
    """Attribute values as JSON: datetimes in ISO 8601, bytes in base64."""
    if isinstance(v, _dt.datetime):
        return v.isoformat()
    if isinstance(v, (bytes, bytearray)):
        return base64.b64encode(bytes(v)).decode("ascii")
    if isinstance(v, np.ndarray):
        return v.tolist()
    if hasattr(v, "micros"):  # Timestamp outside datetime's range
        return int(v.micros)
    return v


def _json_attrs(attrs: Dict[str, Any]) -> Dict[str, Any]:
    return {k: _json_value(v) for k, v in attrs.items()}


def _print_json(obj: Any) -> None:
    print(json.dumps(obj, indent=2, default=_json_value))


def _table(headers: Sequence[str], rows: Sequence[Sequence[Any]], indent: str = "  ") -> str:
    cells = [[str(c) for c in headers]] + [[str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    return "\n".join(indent + "  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip()
                     for r in cells)


def _attrs_text(attrs: Dict[str, Any]) -> str:
    return " ".join(f"{k}={json.dumps(_json_value(v), ensure_ascii=False)}"
                    if isinstance(v, str) and (not v or " " in v)
                    else f"{k}={_json_value(v)}" for k, v in attrs.items())


def _existing_file(path: str, what: str = "file") -> Path:
    p = Path(path)
    if not p.exists():
        raise UsageError(f"{path}: no such {what}")
    if what == "file" and not p.is_file():
        raise UsageError(f"{path}: not a file")
    return p


def _split_names(values: Optional[List[str]]) -> List[str]:
    """Repeated options that may also hold comma-separated lists."""
    out: List[str] = []
    for v in values or []:
        out.extend(x.strip() for x in v.split(",") if x.strip())
    return out


def connect(args: argparse.Namespace):
    """A hilbertdb.Client from the global options (the client modules are imported here, so
    --help works without grpc or the generated stubs)."""
    try:
        from .client import Client
    except ImportError as e:
        raise DataError(f"the Python client cannot load ({e}); build the stubs with "
                        f"`cmake --build build --target python_stubs`") from None
    ca = None
    if args.ca:
        ca = str(_existing_file(args.ca))
    key = args.api_key or os.environ.get("HILBERT_API_KEY") or None
    return Client(args.target, timeout=args.timeout, api_key=key, root_certificates=ca)


class Progress:
    """A tqdm bar on stderr (Debian's python3-tqdm), or plain progress lines when tqdm is
    missing or --progress lines is given (at most one a second, plus the last), or nothing."""

    def __init__(self, mode: str, total: int, unit: str, label: str) -> None:
        self.total, self.unit, self.label = total, unit, label
        self.n = 0
        self.bar = None
        self._last = 0.0
        if mode in ("auto", "bar"):
            try:
                from tqdm import tqdm
            except ImportError:
                if mode == "bar":
                    _warn("tqdm is not installed (Debian: python3-tqdm); plain progress lines")
                mode = "lines"
            else:
                self.bar = tqdm(total=total, unit=unit, desc=label, file=sys.stderr,
                                dynamic_ncols=True, leave=True)
                mode = "bar"
        self.mode = mode

    def update(self, n: int) -> None:
        self.n += n
        if self.bar is not None:
            self.bar.update(n)
        elif self.mode == "lines":
            now = time.monotonic()
            if now - self._last >= 1.0 or self.n >= self.total:
                self._last = now
                self._line()

    def _line(self) -> None:
        pct = 100.0 * self.n / self.total if self.total else 100.0
        print(f"{self.label}: {self.n}/{self.total} {self.unit}s ({pct:.0f}%)", file=sys.stderr,
              flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
        elif self.mode == "lines" and self.n < self.total:
            self._line()


class Summary:
    """Counts of an import and its error lines (the first MAX_ERROR_LINES are printed)."""

    def __init__(self, into: str, unit: str) -> None:
        self.into, self.unit = into, unit
        self.points = 0
        self.errors = 0
        self.last_seq: Any = None
        self.start = time.monotonic()

    def error(self, msg: str, count: int = 1) -> None:
        self.errors += count
        if self.errors - count < MAX_ERROR_LINES:
            _warn(msg)

    def wait_searchable(self, db: Any, indices: Mapping[str, int], timeout: float) -> None:
        """Waits until each index (ref -> seq) is READY and has applied its seq, so that a
        search right after the import finds what it wrote; warns of those that have not
        after ``timeout`` seconds (the points are stored either way). The import's time and
        rate stop before the wait."""
        self.end = time.monotonic()
        pending = {ref: seq for ref, seq in indices.items() if seq}
        if timeout <= 0 or not pending:
            return
        deadline = self.end + timeout
        while pending:
            for ref in list(pending):
                st = db.get_index(ref).status
                if st.state == "FAILED":
                    _warn(f"index {ref} failed: {st.detail}")
                    del pending[ref]
                elif st.state == "READY" and st.applied_seq >= pending[ref]:
                    del pending[ref]
            if pending and time.monotonic() >= deadline:
                _warn(f"not yet searchable after --wait {timeout:g} s: " +
                      ", ".join(f"{r} (applied {db.get_index(r).status.applied_seq} of "
                                f"{q})" for r, q in pending.items()))
                return
            if pending:
                time.sleep(0.05)

    def report(self, as_json: bool) -> int:
        secs = getattr(self, "end", time.monotonic()) - self.start
        rate = self.points / secs if secs > 0 else 0.0
        if self.errors > MAX_ERROR_LINES:
            _warn(f"{self.errors - MAX_ERROR_LINES} more errors not shown")
        if as_json:
            _print_json({"into": self.into, "points": self.points, "seconds": round(secs, 3),
                         "points_per_second": round(rate, 1), "last_seq": self.last_seq,
                         "errors": self.errors})
        else:
            if isinstance(self.last_seq, dict):
                seq = " ".join(f"{k}={v}" for k, v in self.last_seq.items()) or "none"
            else:
                seq = "none" if self.last_seq is None else str(self.last_seq)
            print(f"imported {self.points} {self.unit}s into {self.into} in {secs:.2f} s "
                  f"({rate:.0f} {self.unit}s/s), last seq {seq}, {self.errors} errors")
        return EXIT_ERROR if self.errors else EXIT_OK


# ------------------------------------------------------------------------ status

def _source_json(s: Any) -> Dict[str, Any]:
    return {"name": s.name, "version": s.version, "ref": s.ref, "dimension": s.dimension,
            "sparse": s.sparse, "points": s.point_count, "last_seq": s.last_seq,
            "permanent_attributes": s.permanent_attributes, "id_attributes": s.id_attributes,
            "indices": s.indices}


def _status_json(st: Any) -> Dict[str, Any]:
    return {"state": st.state, "applied_seq": st.applied_seq,
            "source_last_seq": st.source_last_seq, "lag_entries": st.lag_entries,
            "lag_seconds": st.lag_seconds, "lagging": st.lagging, "size": st.size,
            "snapshot_seq": st.snapshot_seq, "detail": st.detail}


def _algorithm_name(a: Any) -> str:
    name = type(a).__name__.lower()
    factory = getattr(a, "factory", None)
    return f"{name}({factory})" if factory else name


def cmd_status(args: argparse.Namespace) -> int:
    with connect(args) as db:
        sources = db.list_data_sources()
        indices = db.list_indices()
        spaces = db.list_model_spaces()
        aliases = db.list_aliases()
    if args.json:
        _print_json({
            "data_sources": [_source_json(s) for s in sources],
            "indices": [dict({"name": i.name, "version": i.version, "ref": i.ref,
                              "data_source": i.data_source,
                              "algorithm": _algorithm_name(i.algorithm), "metric": i.metric},
                             **_status_json(i.status)) for i in indices],
            "model_spaces": [{"name": m.name, "model_path": m.model_path,
                              "output_dim": m.output_dim, "metric": m.metric,
                              "model_state": m.model_state, "detail": m.detail,
                              "items": m.point_count,
                              "index": (_status_json(m.index_status)
                                        if m.index_status is not None else None),
                              "reembed": (dataclasses.asdict(m.reembed)
                                          if m.reembed is not None else None)}
                             for m in spaces],
            "aliases": [{"name": a.name, "kind": a.kind, "target": a.target} for a in aliases],
        })
        return EXIT_OK
    print(f"server {args.target}")
    print(f"\ndata sources ({len(sources)})")
    if sources:
        print(_table(["name", "dim", "kind", "points", "last seq", "indices"],
                     [[s.ref, s.dimension, "sparse" if s.sparse else "dense", s.point_count,
                       s.last_seq, ", ".join(s.indices) or "-"] for s in sources]))
    print(f"\nindices ({len(indices)})")
    if indices:
        print(_table(["name", "source", "algorithm", "metric", "state", "applied", "lag",
                      "lag s", "lagging", "size"],
                     [[i.ref, i.data_source, _algorithm_name(i.algorithm), i.metric,
                       i.status.state, i.status.applied_seq, i.status.lag_entries,
                       f"{i.status.lag_seconds:.1f}", "yes" if i.status.lagging else "no",
                       i.status.size] for i in indices]))
        for i in indices:
            if i.status.state == "FAILED":
                print(f"  {i.ref}: {_one_line(i.status.detail)}")
    print(f"\nmodel spaces ({len(spaces)})")
    if spaces:
        print(_table(["name", "model", "dim", "metric", "model state", "items", "index",
                      "lag"],
                     [[m.name, m.model_path, m.output_dim, m.metric, m.model_state,
                       m.point_count, m.index_status.state if m.index_status else "-",
                       m.index_status.lag_entries if m.index_status else "-"]
                      for m in spaces]))
        for m in spaces:
            if m.model_state != "LOADED" and m.detail:
                print(f"  {m.name}: {_one_line(m.detail)}")
            r = m.reembed
            if r is not None:
                line = (f"  {m.name}: re-embedding from {r.origin}: {r.state}, {r.copied} items"
                        + (f" of {r.total}" if r.state == "copying" else "")
                        + (f", seq {r.applied_seq} of {r.origin_last_seq}"
                           if r.state == "following" else "")
                        + (f", {r.skipped} without a kept input" if r.skipped else ""))
                print(line + (f" ({_one_line(r.detail)})" if r.detail else ""))
    print(f"\naliases ({len(aliases)})")
    if aliases:
        print(_table(["name", "kind", "target"],
                     [[a.name + ("@" if a.kind == "index" else ""), a.kind.replace("_", " "),
                       a.target] for a in aliases]))
    return EXIT_OK


# ------------------------------------------------------------------------ import: values

_TRUE = {"true", "1", "yes", "y", "t"}
_FALSE = {"false", "0", "no", "n", "f"}


def _convert(cell: str, typ: Optional[str]) -> Any:
    """A CSV cell as an attribute value of `typ` (None: int, else float, else string)."""
    if typ is None:
        for conv in (int, float):
            try:
                return conv(cell)
            except ValueError:
                pass
        return cell
    if typ == "string":
        return cell
    if typ == "int64":
        return int(cell)
    if typ == "float64":
        return float(cell)
    if typ == "bool":
        low = cell.strip().lower()
        if low in _TRUE:
            return True
        if low in _FALSE:
            return False
        raise ValueError(f"{cell!r} is not a bool (true/false)")
    if typ == "bytes":
        return base64.b64decode(cell, validate=True)
    if typ == "timestamp":
        try:
            from .types import Timestamp
            return Timestamp(int(cell))
        except ValueError:
            d = _dt.datetime.fromisoformat(cell.strip().replace("Z", "+00:00"))
            return d if d.tzinfo else d.replace(tzinfo=_dt.timezone.utc)
    raise ValueError(f"unknown type {typ}")


def _parse_vector(text: str) -> np.ndarray:
    parts = [p for p in re.split(r"[\s,;]+", text.strip().strip("[]()")) if p]
    if not parts:
        raise ValueError("empty vector")
    return np.array([float(p) for p in parts], dtype=np.float32)


def _attribute_specs(values: Optional[List[str]]) -> List[Tuple[str, Optional[str]]]:
    specs = []
    for item in _split_names(values):
        name, _, typ = item.partition(":")
        typ = typ.strip() or None
        if typ is not None and typ not in ATTRIBUTE_TYPES:
            raise UsageError(f"--attribute {item}: type must be one of "
                             f"{', '.join(ATTRIBUTE_TYPES)}")
        specs.append((name.strip(), typ))
    return specs


# ------------------------------------------------------------------------ import: points

def _source_info(db: Any, ref: str, create_dim: Optional[int], args: argparse.Namespace,
                 id_type: str = "int64") -> Any:
    from .errors import NotFound
    try:
        return db.get_data_source(ref)
    except NotFound:
        if create_dim is None:
            raise DataError(f"data source {ref} does not exist (--create makes it, with an "
                            f"int64 id and a flat index of the same name)") from None
    db.create_data_source(ref, dimension=create_dim, permanent_attributes={"id": id_type},
                          id_attributes=["id"])
    db.create_index(ref, data_source=ref, algorithm="flat", metric=args.metric)
    print(f"created data source {ref} ({create_dim}-d, id: {id_type}) and its flat "
          f"{args.metric} index {ref}", file=sys.stderr)
    return db.get_data_source(ref)


class ArrayBatch:
    """A batch of rows of an array, with its attribute columns (Client.upload's array form)."""

    def __init__(self, vectors: np.ndarray, columns: Dict[str, Any]):
        self.vectors, self.columns = vectors, columns

    def __len__(self) -> int:
        return len(self.vectors)


def _upload_batches(db: Any, ref: str, batches: Iterator[Tuple[str, List[Any]]],
                    summary: Summary, progress: Progress) -> None:
    """Uploads each batch (one atomic write each). A batch the server rejects as invalid is
    counted as errors and the import goes on; any other server error ends it."""
    from .errors import InvalidArgument
    for label, pts in batches:
        if not len(pts):
            continue
        try:
            if isinstance(pts, ArrayBatch):
                up = db.upload(ref, pts.vectors, attributes=pts.columns, batch_size=len(pts),
                               progress=False)
            else:
                up = db.upload(ref, pts)
        except InvalidArgument as e:
            summary.error(f"{label}: rejected ({len(pts)} points): {e}", len(pts))
        else:
            summary.points += len(pts)
            summary.last_seq = up.last_seq
        progress.update(len(pts))


def _read_ids(path: str, n: int, typ: str) -> List[Any]:
    p = _existing_file(path)
    if p.suffix == ".npy":
        try:
            raw = np.load(p, allow_pickle=False)
        except Exception as e:
            raise DataError(f"{path}: not a readable .npy file: {e}") from None
        if raw.ndim != 1:
            raise DataError(f"{path}: ids must be a 1-D array, found shape {raw.shape}")
        values = raw.tolist()
    else:
        values = [line.strip() for line in p.read_text().splitlines() if line.strip()]
    if len(values) != n:
        raise DataError(f"{path}: {len(values)} ids for {n} vectors")
    out = []
    for i, v in enumerate(values):
        try:
            out.append(_convert(str(v), typ) if typ != "string" else str(v))
        except ValueError as e:
            raise DataError(f"{path}: id {i + 1}: {v!r} is not a {typ} ({e})") from None
    return out


def import_npy(db: Any, args: argparse.Namespace, path: Path) -> int:
    from .types import Point
    try:
        arr = np.load(path, allow_pickle=False, mmap_mode="r")
    except Exception as e:
        raise DataError(f"{path}: not a readable .npy file: {_one_line(e)}") from None
    if arr.ndim != 2:
        raise DataError(f"{path}: expected an N x dim array, found shape {arr.shape}")
    if arr.dtype not in (np.float32, np.float64):
        raise DataError(f"{path}: expected float32 or float64 values, found {arr.dtype}")
    n, dim = arr.shape
    ref = args.source
    info = _source_info(db, ref, dim if args.create else None, args)
    if info.sparse:
        raise DataError(f"data source {info.ref} is sparse; a .npy holds dense vectors")
    if dim != info.dimension:
        raise DataError(f"{path}: vectors have dimension {dim}, data source {info.ref} "
                        f"expects {info.dimension}")
    if len(info.id_attributes) != 1:
        raise DataError(f"data source {info.ref} is identified by "
                        f"({', '.join(info.id_attributes)}); import a CSV with those columns")
    id_name = info.id_attributes[0]
    others = [a for a in info.permanent_attributes if a != id_name]
    if others:
        raise DataError(f"data source {info.ref} has permanent attributes besides {id_name} "
                        f"({', '.join(others)}), which a .npy cannot give; import a CSV")
    id_type = info.permanent_attributes[id_name]
    if args.ids:
        ids = _read_ids(args.ids, n, id_type)
    else:
        if id_type not in ("int64", "string", "timestamp"):
            raise DataError(f"the id {id_name} of {info.ref} is {id_type}; give --ids")
        ids = [_convert(str(args.id_start + i), id_type) for i in range(n)]

    def batches() -> Iterator[Tuple[str, List[Any]]]:
        for lo in range(0, n, args.batch):
            hi = min(n, lo + args.batch)
            block = np.asarray(arr[lo:hi], dtype=np.float32)
            label = f"{path.name} rows {lo}..{hi - 1}"
            if id_type in ("int64", "string"):  # the client's array form: no Point objects
                yield label, ArrayBatch(block, {id_name: ids[lo:hi]})
            else:
                yield label, [Point(block[j], {id_name: ids[lo + j]}) for j in range(hi - lo)]

    summary = Summary(info.ref, "point")
    progress = Progress(args.progress, n, "point", f"import {path.name}")
    try:
        _upload_batches(db, info.ref, batches(), summary, progress)
    finally:
        progress.close()
    return _finish_source_import(db, args, summary)


def _finish_source_import(db: Any, args: argparse.Namespace, summary: Summary) -> int:
    """Waits (--wait) for the source's indices to apply the import, then reports it."""
    seq = summary.last_seq or 0
    indices = db.get_data_source(summary.into).indices if seq else []
    summary.wait_searchable(db, {ref: seq for ref in indices}, args.wait)
    return summary.report(args.json)


def import_csv(db: Any, args: argparse.Namespace, path: Path) -> int:
    from .types import Point
    try:
        f = open(path, newline="", encoding="utf-8-sig")
    except OSError as e:
        raise UsageError(f"{path}: {e.strerror}") from None
    with f:
        reader = csv.reader(f, delimiter=args.delimiter)
        try:
            header = [h.strip() for h in next(reader)]
        except StopIteration:
            raise DataError(f"{path}: empty file (no header row)") from None
        except csv.Error as e:
            raise DataError(f"{path}: {e}") from None
        col = {h: i for i, h in enumerate(header)}
        vcols = _split_names(args.vector_column)
        if not vcols:
            if "vector" not in col:
                raise UsageError(f"{path}: no column 'vector'; name the vector column(s) with "
                                 f"--vector-column (columns: {', '.join(header)})")
            vcols = ["vector"]
        for c in vcols:
            if c not in col:
                raise UsageError(f"--vector-column {c}: {path} has no such column "
                                 f"(columns: {', '.join(header)})")
        specs = _attribute_specs(args.attribute)
        if not specs:
            specs = [(h, None) for h in header if h not in vcols and h]
        for name, _ in specs:
            if name not in col:
                raise UsageError(f"--attribute {name}: {path} has no such column "
                                 f"(columns: {', '.join(header)})")
        # Count the rows first for the progress bar (cheap next to the upload).
        try:
            with open(path, newline="", encoding="utf-8-sig") as g:
                total = max(0, sum(1 for _ in csv.reader(g, delimiter=args.delimiter)) - 1)
        except csv.Error as e:
            raise DataError(f"{path}: {e}") from None

        id_type = dict(specs).get("id") or "int64"
        first_dim = len(vcols) if len(vcols) > 1 else None
        if args.create and first_dim is None:
            first_dim = _peek_dim(path, args.delimiter, col[vcols[0]])
        info = _source_info(db, args.source, first_dim if args.create else None, args,
                            id_type=id_type)
        schema = info.permanent_attributes
        missing = [a for a in schema if a not in dict(specs)]
        if missing:
            raise DataError(f"{path}: no column for the permanent attribute(s) "
                            f"{', '.join(missing)} of {info.ref}")
        types = {name: typ or schema.get(name) for name, typ in specs}
        summary = Summary(info.ref, "point")
        progress = Progress(args.progress, total, "point", f"import {path.name}")

        def rows() -> Iterator[Tuple[str, List[Any]]]:
            batch: List[Any] = []
            first_line = None
            for row in reader:
                line = reader.line_num
                if not any(c.strip() for c in row):
                    progress.update(1)
                    continue
                try:
                    if len(row) != len(header):
                        raise ValueError(f"{len(row)} fields, the header has {len(header)}")
                    if len(vcols) == 1:
                        vec = _parse_vector(row[col[vcols[0]]])
                    else:
                        vec = np.array([float(row[col[c]]) for c in vcols], dtype=np.float32)
                    if len(vec) != info.dimension:
                        raise ValueError(f"vector of dimension {len(vec)}, {info.ref} expects "
                                         f"{info.dimension}")
                    attrs = {}
                    for name, _ in specs:
                        cell = row[col[name]]
                        if cell == "":
                            continue
                        try:
                            attrs[name] = _convert(cell, types[name])
                        except (ValueError, TypeError) as e:
                            raise ValueError(f"column {name}: {cell!r} is not a "
                                             f"{types[name]} ({e})") from None
                except ValueError as e:
                    summary.error(f"{path}:{line}: {e}")
                    progress.update(1)
                    continue
                if first_line is None:
                    first_line = line
                batch.append(Point(vec, attrs))
                if len(batch) >= args.batch:
                    yield f"{path.name} lines {first_line}..{line}", batch
                    batch, first_line = [], None
            if batch:
                yield f"{path.name} lines {first_line}..{reader.line_num}", batch

        try:
            _upload_batches(db, info.ref, rows(), summary, progress)
        except csv.Error as e:
            raise DataError(f"{path}:{reader.line_num}: {e}") from None
        finally:
            progress.close()
    return _finish_source_import(db, args, summary)


def _peek_dim(path: Path, delimiter: str, index: int) -> int:
    with open(path, newline="", encoding="utf-8-sig") as f:
        reader = csv.reader(f, delimiter=delimiter)
        next(reader, None)
        for row in reader:
            if len(row) > index and row[index].strip():
                try:
                    return len(_parse_vector(row[index]))
                except ValueError as e:
                    raise DataError(f"{path}:{reader.line_num}: {e}") from None
    raise DataError(f"{path}: no rows")


def import_images(db: Any, args: argparse.Namespace, folder: Path) -> int:
    from .errors import InvalidArgument
    files = sorted(p for p in folder.iterdir()
                   if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise DataError(f"{folder}: no PNG or JPEG files ({', '.join(IMAGE_SUFFIXES)})")
    seen: Dict[str, Path] = {}
    for p in files:
        if p.stem in seen:
            raise DataError(f"{folder}: id {p.stem!r} from two files, {seen[p.stem].name} and "
                            f"{p.name}")
        seen[p.stem] = p
    spaces = _split_names(args.model_space)
    if not spaces:
        spaces = [m.name for m in db.list_model_spaces()]
        if not spaces:
            raise DataError(f"the server at {args.target} has no model spaces")
    else:
        for s in spaces:
            db.get_model_space(s)  # NotFound names the unknown space
    summary = Summary(", ".join(spaces), "image")
    summary.last_seq = {}
    progress = Progress(args.progress, len(files), "image", f"import {folder.name or folder}")

    def add(p: Path) -> Any:
        return db.add_image(p.stem, p.read_bytes(), model_spaces=spaces)

    pool = concurrent.futures.ThreadPoolExecutor(max_workers=max(1, args.threads))
    try:
        futures = {pool.submit(add, p): p for p in files}
        for fut in concurrent.futures.as_completed(futures):
            p = futures[fut]
            try:
                seqs = fut.result()
            except InvalidArgument as e:
                summary.error(f"{p}: {e}")
            except OSError as e:
                summary.error(f"{p}: {e.strerror}")
            else:
                summary.points += 1
                for space, seq in seqs.items():
                    summary.last_seq[space] = max(seq, summary.last_seq.get(space, 0))
            progress.update(1)
    except BaseException:
        for fut in futures:
            fut.cancel()
        raise
    finally:
        pool.shutdown(wait=True)
        progress.close()
    summary.wait_searchable(db, {f"{space}@space": seq
                                 for space, seq in summary.last_seq.items()}, args.wait)
    return summary.report(args.json)


def cmd_import(args: argparse.Namespace) -> int:
    if args.batch < 1:
        raise UsageError("--batch must be at least 1")
    if not args.wait >= 0:  # also NaN
        raise UsageError("--wait must be 0 or more seconds")
    path = Path(args.path)
    if not path.exists():
        raise UsageError(f"{args.path}: no such file or directory")
    kind = args.format
    if kind is None:
        if path.is_dir():
            kind = "images"
        elif path.suffix.lower() == ".npy":
            kind = "npy"
        elif path.suffix.lower() in (".csv", ".tsv", ".txt"):
            kind = "csv"
        else:
            raise UsageError(f"{args.path}: cannot tell the format from the name; give "
                             f"--format npy, csv or images")
    if kind == "images":
        if not path.is_dir():
            raise UsageError(f"{args.path}: --format images takes a folder")
        if args.source:
            raise UsageError("images go into model spaces (--model-space), not --source")
    else:
        if not path.is_file():
            raise UsageError(f"{args.path}: not a file")
        if not args.source:
            raise UsageError(f"importing a {kind} file needs --source NAME[@VERSION]")
        if args.model_space:
            raise UsageError("--model-space is for a folder of images")
    if args.ids and kind != "npy":
        raise UsageError("--ids is for .npy imports")
    with connect(args) as db:
        if kind == "npy":
            return import_npy(db, args, path)
        if kind == "csv":
            return import_csv(db, args, path)
        return import_images(db, args, path)


# ------------------------------------------------------------------------ search

def _query_vector(args: argparse.Namespace) -> np.ndarray:
    if args.vector is not None:
        try:
            return _parse_vector(args.vector)
        except ValueError as e:
            raise UsageError(f"--vector {args.vector!r}: not a list of numbers ({e})") from None
    p = _existing_file(args.npy)
    try:
        arr = np.load(p, allow_pickle=False)
    except Exception as e:
        raise DataError(f"{args.npy}: not a readable .npy file: {_one_line(e)}") from None
    if arr.ndim == 1:
        return arr.astype(np.float32)
    if arr.ndim != 2:
        raise DataError(f"{args.npy}: expected a vector or an N x dim array, found shape "
                        f"{arr.shape}")
    if not -arr.shape[0] <= args.row < arr.shape[0]:
        raise DataError(f"{args.npy}: --row {args.row} is out of range ({arr.shape[0]} rows)")
    return np.asarray(arr[args.row], dtype=np.float32)


def _hits_json(hits: Sequence[Any]) -> List[Dict[str, Any]]:
    return [{"distance": h.distance, "attributes": _json_attrs(h.attributes)} for h in hits]


def _print_hits(hits: Sequence[Any]) -> None:
    if not hits:
        print("  no hits")
        return
    print(_table(["#", "distance", "attributes"],
                 [[i + 1, f"{h.distance:.6g}", _attrs_text(h.attributes)]
                  for i, h in enumerate(hits)]))


def cmd_search(args: argparse.Namespace) -> int:
    if args.k < 1:
        raise UsageError("-k must be at least 1")
    if args.image is not None:
        if args.index or args.vector is not None or args.npy is not None:
            raise UsageError("--image searches model spaces: give no INDEX, --vector or --npy")
        image = _existing_file(args.image).read_bytes()
        with connect(args) as db:
            spaces = _split_names(args.model_space) or None
            min_seq = None
            if args.min_seq:
                names = spaces or [m.name for m in db.list_model_spaces()]
                min_seq = {n: args.min_seq for n in names}
            res = db.find_similar_image(image, model_spaces=spaces, k=args.k, min_seq=min_seq)
        if args.json:
            _print_json({"model_spaces": {s: _hits_json(h) for s, h in res.items()},
                         "missing": list(res.missing)})
            return EXIT_OK
        if not res:
            print("no model spaces")
        for space, hits in res.items():
            print(f"model space {space}: {len(hits)} hits")
            _print_hits(hits)
        return EXIT_OK
    if not args.index:
        raise UsageError("give an INDEX with --vector or --npy, or --image")
    if (args.vector is None) == (args.npy is None):
        raise UsageError("give the query as one of --vector or --npy")
    if args.model_space:
        raise UsageError("--model-space is for --image searches")
    q = _query_vector(args)
    with connect(args) as db:
        res = db.search(args.index, q, k=args.k, min_seq=args.min_seq or None,
                        ef_search=args.ef_search, nprobe=args.nprobe)
    hits = res[0] if len(res) else []
    if args.json:
        _print_json({"index": args.index, "applied_seq": res.applied_seq,
                     "hits": _hits_json(hits)})
        return EXIT_OK
    print(f"index {args.index}: {len(hits)} hits (applied seq {res.applied_seq})")
    _print_hits(hits)
    return EXIT_OK


# ------------------------------------------------------------------------ backup

NO_BACKUP = "this server/client has no backup support"


def cmd_backup(args: argparse.Namespace) -> int:
    from .errors import Unimplemented
    with connect(args) as db:
        try:
            r = db.backup(args.path)
        except Unimplemented as e:
            raise DataError(f"{NO_BACKUP} ({e})") from None
    if args.json:
        _print_json({"path": r.path, "bytes": r.bytes, "indices": r.indices,
                     "source_seqs": r.source_seqs})
        return EXIT_OK
    print(f"backup written to {r.path}: {r.bytes} bytes, {r.indices} index snapshots")
    for src, seq in sorted(r.source_seqs.items()):
        print(f"  {src}: up to seq {seq}")
    return EXIT_OK


# ------------------------------------------------------------------------ parser

def build_parser() -> argparse.ArgumentParser:
    fmt = argparse.RawDescriptionHelpFormatter
    p = _Parser(prog="hilbert", formatter_class=fmt,
                description="The HilbertDB command-line tool: status, import, search, backup.",
                epilog="Exit codes: 0 ok, 1 server or data error, 2 usage error. "
                       "`hilbert COMMAND --help` describes each command.")
    p.add_argument("--version", action="version", version=f"hilbert {__version__}")
    p.add_argument("--target", default=os.environ.get("HILBERT_TARGET") or DEFAULT_TARGET,
                   metavar="HOST:PORT",
                   help="the server (default: $HILBERT_TARGET, else %(default)s)")
    p.add_argument("--api-key", metavar="KEY",
                   help="API key for servers with auth.keys (default: $HILBERT_API_KEY)")
    p.add_argument("--ca", metavar="FILE",
                   help="connect with TLS, trusting this CA certificate (PEM)")
    p.add_argument("--timeout", type=float, default=60.0, metavar="S",
                   help="deadline of each call in seconds (default: %(default)s)")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True

    s = sub.add_parser("status", help="data sources, indices, model spaces and aliases",
                       description="Lists the data sources (points, last seq), the indices "
                       "(state, applied seq, lag in entries and seconds, lagging, size) and "
                       "the model spaces (model state, items, index state) and the aliases "
                       "(an index alias is shown as name@, as searches name it).")
    s.add_argument("--json", action="store_true", help="print JSON instead of tables")
    s.set_defaults(func=cmd_status)

    i = sub.add_parser(
        "import", formatter_class=fmt, help="import a .npy, a CSV or a folder of images",
        description="Imports vectors into a data source, or images into model spaces.\n\n"
        "  PATH.npy   an N x dim float32/float64 array; point i gets the id --id-start + i\n"
        "             (or the i-th line of --ids) in the source's one id attribute\n"
        "  PATH.csv   a header row; the vector in one column ('vector' by default, numbers\n"
        "             separated by commas, spaces or semicolons, brackets allowed) or in\n"
        "             several (--vector-column x,y,z); every other column (or those named\n"
        "             by --attribute) is an attribute, typed by the source's schema, by\n"
        "             --attribute NAME:TYPE, or else as int, float or string by its value\n"
        "  FOLDER     PNG/JPEG files, added to model spaces (AddImage), id = file name\n"
        "             without its extension\n\n"
        "Each batch is one atomic upload. A batch or an image the server rejects, and a CSV\n"
        "row that does not parse, are reported and counted; the import goes on and exits 1.",
        epilog="Example: hilbert import vectors.npy --source demo --create")
    i.add_argument("path", metavar="PATH", help="a .npy file, a .csv file or a folder")
    i.add_argument("--source", metavar="NAME[@VERSION]", help="the data source (.npy, CSV)")
    i.add_argument("--model-space", action="append", metavar="NAME",
                   help="model space(s) for images (repeat or comma-separate; default: all)")
    i.add_argument("--format", choices=["npy", "csv", "images"],
                   help="the input format (default: from PATH)")
    i.add_argument("--batch", type=int, default=1000, metavar="N",
                   help="points per upload (default: %(default)s; the server's "
                   "limits.max_points_per_upload caps it)")
    i.add_argument("--id-start", type=int, default=0, metavar="N",
                   help=".npy: the id of the first row (default: %(default)s)")
    i.add_argument("--ids", metavar="FILE",
                   help=".npy: the ids, one per line (or a 1-D .npy), one per row")
    i.add_argument("--vector-column", action="append", metavar="COL",
                   help="CSV: the vector column, or several scalar columns (repeat or "
                   "comma-separate; default: vector)")
    i.add_argument("--attribute", action="append", metavar="NAME[:TYPE]",
                   help="CSV: the attribute columns and optionally their types (" +
                   ", ".join(ATTRIBUTE_TYPES) + "); default: every other column")
    i.add_argument("--delimiter", default=",", metavar="C",
                   help="CSV: the field delimiter (default: ',')")
    i.add_argument("--create", action="store_true",
                   help="create a missing data source (the file's dimension, an id attribute "
                   "'id', int64 unless --attribute id:TYPE) and a flat index of the same name")
    i.add_argument("--metric", default="l2", choices=["l2", "inner_product", "cosine"],
                   help="--create: the index metric (default: %(default)s)")
    i.add_argument("--threads", type=int, default=4, metavar="N",
                   help="images: concurrent AddImage calls (default: %(default)s)")
    i.add_argument("--progress", default="auto", choices=["auto", "bar", "lines", "none"],
                   help="a tqdm bar (auto: when python3-tqdm is installed), plain lines on "
                   "stderr, or nothing")
    i.add_argument("--wait", type=float, default=300, metavar="SECONDS",
                   help="wait up to SECONDS for the indices to apply the import, so that a "
                   "search right after it finds every point (0: return at once; default: "
                   "%(default)s)")
    i.add_argument("--json", action="store_true", help="print the summary as JSON")
    i.set_defaults(func=cmd_import)

    q = sub.add_parser(
        "search", formatter_class=fmt, help="search an index by vector or model spaces by image",
        description="Searches an index with a vector (--vector or a row of --npy), or the "
        "model spaces with an image (--image). Prints the hits, best first, with their "
        "distances and attributes.",
        epilog="Examples:\n  hilbert search demo --vector 0.1,0.2,0.3 -k 5\n"
               "  hilbert search demo --npy vectors.npy --row 7\n"
               "  hilbert search --image shirt.png --model-space fmnist_cnn")
    q.add_argument("index", nargs="?", metavar="INDEX", help="the index (NAME[@VERSION])")
    q.add_argument("--vector", metavar="X,Y,...", help="the query vector")
    q.add_argument("--npy", metavar="FILE", help="a .npy holding the query (a vector, or rows)")
    q.add_argument("--row", type=int, default=0, metavar="N",
                   help="--npy: the row to search with (default: %(default)s)")
    q.add_argument("--image", metavar="FILE", help="a PNG/JPEG to search the model spaces with")
    q.add_argument("--model-space", action="append", metavar="NAME",
                   help="--image: the model space(s) (default: all)")
    q.add_argument("-k", type=int, default=10, help="hits to return (default: %(default)s)")
    q.add_argument("--min-seq", type=int, default=0, metavar="SEQ",
                   help="wait until the index (every model space searched) has applied SEQ")
    q.add_argument("--ef-search", type=int, metavar="N", help="HNSW search breadth")
    q.add_argument("--nprobe", type=int, metavar="N", help="FAISS IVF lists to visit")
    q.add_argument("--json", action="store_true", help="print JSON")
    q.set_defaults(func=cmd_search)

    b = sub.add_parser("backup", help="write an online backup of the server",
                       description="Writes a consistent backup of the whole server (a RocksDB "
                       "checkpoint plus the index snapshots it needs) into PATH, a directory "
                       "on the server's machine, while writes go on (hilbert.v1.Admin/Backup; "
                       "needs an admin key on servers with auth.keys).")
    b.add_argument("path", metavar="PATH", help="the backup directory, on the server")
    b.add_argument("--json", action="store_true", help="print JSON")
    b.set_defaults(func=cmd_backup)
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Runs the tool; returns its exit code (the console script exits with it)."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except UsageError as e:
        print(f"hilbert {args.command}: error: {_one_line(e)}", file=sys.stderr)
        return EXIT_USAGE
    except DataError as e:
        _warn(str(e))
        return EXIT_ERROR
    except KeyboardInterrupt:
        _warn("interrupted")
        return 130
    except BrokenPipeError:
        return EXIT_ERROR
    except Exception as e:  # noqa: BLE001 - one line, never a traceback
        from_client = type(e).__module__.startswith("hilbertdb")
        code = getattr(getattr(e, "code", None), "name", None)
        if from_client and code:
            _warn(f"{args.target}: {code}: {e}")
        elif isinstance(e, OSError):
            _warn(f"{getattr(e, 'filename', '') or ''}: {e.strerror or e}")
        else:
            _warn(f"{type(e).__name__}: {e}")
        if os.environ.get("HILBERT_DEBUG"):
            raise
        return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())
