#!/usr/bin/python3
"""Timeline benchmark: the on-disk size of a data source whose points are replaced over and over.

Every upsert writes the point record and a timeline entry of the same size. Without timeline
trimming the entries are never deleted, so a source that keeps replacing the same K points
grows without bound; with trimming (entries older than every index's snapshot are deleted) it
should stay near the size of K points. This benchmark starts the real server (HILBERTD, default
build/hilbertd) on a free port with a fresh data directory, frequent index snapshots
(index.snapshot_interval_seconds: 2, index.snapshot_min_entries: 1000) and otherwise the default
configuration (storage.sync on), and measures through gRPC:
  1. "replace": one dense data source (--dim, int64 id) with a flat L2 index; --upserts random
     float32 points over --ids distinct ids, in Upload batches of --batch from --clients
     threads; the ids cycle, so every point after the first --ids replaces one already there.
     The size of the data directory (all files under it, recursively) is sampled every
     --sample seconds during the upload;
  2. "reference": a second fresh server with the same source and index, and exactly --ids
     points uploaded once;
and, for both, once the upload is done: waits until the index has applied everything
(GetIndex applied_seq == GetDataSource last_seq), then samples the size each second until it
has not shrunk for --quiet seconds, or --settle seconds have passed. Reported: upsert rate
(points/s, from the release of the clients until the last Upload returned), peak and final size
of the data directory, and final / reference. The dir size is also split into RocksDB SST
files, RocksDB write-ahead logs (*.log), index snapshots (indices/) and the rest. (The WAL keeps
every write not yet flushed from a memtable, up to storage.write_buffer_bytes per column family,
so even a trimmed timeline leaves some WAL behind until the next flush.) The CPU seconds of
hilbertd and of this client during the upload are reported too.

Fields of IndexStatus and DataSourceInfo about timeline retention (any field whose name
contains "timeline", "retain", "retention" or "trim", e.g. timeline_entries, timeline_bytes)
are printed and recorded when the stubs and the server have them; older builds have none and
the benchmark simply skips them.

The vectors are written straight into a serialized UploadRequest (built once per id with the
generated stubs, checked against them at the start), so that building 1,000,000 points in Python
does not take the server's CPU away on a small machine.

Usage:
    cmake --build build -j2 --target hilbertd python_stubs
    /usr/bin/python3 bench/timeline_bench.py [--upserts 1000000] [--ids 1000] [--batch 1000]
        [--clients 2] [--dim 128] [--settle 30] [--label before] [--out FILE]
    HILBERTD=/path/to/hilbertd /usr/bin/python3 bench/timeline_bench.py ...   # another binary
A quick check that it works end to end: --upserts 100000 (about a minute).
Writes: bench/results/timeline.json (or --out). Needs: python3-grpcio, python3-protobuf,
python3-numpy, and the stubs under clients/python (target python_stubs).
"""
from __future__ import annotations

import argparse
import math
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "clients" / "python"))
sys.path.insert(0, str(ROOT / "bench"))

import benchlib  # noqa: E402
import grpc  # noqa: E402
from google.protobuf import json_format  # noqa: E402
from hilbert.v1 import catalog_pb2 as C, catalog_pb2_grpc  # noqa: E402
from hilbert.v1 import points_pb2 as P  # noqa: E402
from hilbert.v1 import types_pb2 as T  # noqa: E402

SRC = T.DataSourceRef(name="timeline", version="1")
IDX = T.IndexRef(name="timeline-flat", version="1")
CONFIG = ("index:\n"
          "  snapshot_interval_seconds: 2\n"
          "  snapshot_min_entries: 1000\n")
RETENTION_WORDS = ("timeline", "retain", "retention", "trim")
MIB = 1 << 20


# ------------------------------------------------------------------------------ dir size

def dir_size(path: Path) -> dict:
    """Bytes of every file under path, recursively, in total and split into RocksDB SST files,
    write-ahead logs (*.log), index snapshots (indices/) and the rest. The ballast file (a
    reserve of free space that newer builds keep in the data dir, storage.ballast_bytes) is
    reported on its own and not counted in the total. Files that RocksDB deletes while we walk
    are skipped."""
    out = {"total": 0, "sst": 0, "wal": 0, "snapshots": 0, "other": 0, "files": 0, "ballast": 0}
    for dirpath, _dirs, files in os.walk(path):
        in_indices = "indices" in Path(dirpath).relative_to(path).parts
        for f in files:
            try:
                n = os.lstat(os.path.join(dirpath, f)).st_size
            except FileNotFoundError:
                continue
            if f == "ballast" and Path(dirpath) == Path(path):
                out["ballast"] += n
                continue
            if in_indices:
                kind = "snapshots"
            elif f.endswith(".sst"):
                kind = "sst"
            elif f.endswith(".log") and f[:-4].isdigit():
                kind = "wal"
            else:
                kind = "other"
            out[kind] += n
            out["total"] += n
            out["files"] += 1
    return out


def mib(n: int) -> float:
    return n / MIB


# ------------------------------------------------------------------------------ requests

class BatchEncoder:
    """Builds serialized UploadRequests for ids[...] with fresh vectors, fast: one serialized
    point per id (zero vector) is made once with the stubs; a request is the header (the data
    source) followed by the points of its ids (concatenated messages merge, and repeated fields
    append), and the vectors are written over the zero runs with numpy."""

    def __init__(self, ids: int, dim: int):
        self.dim = dim
        self.vbytes = 4 * dim
        self.header = P.UploadRequest(data_source=SRC).SerializeToString()
        zero = np.zeros(dim, np.float32)
        zrun = bytes(self.vbytes)
        self.pieces, inner = [], []
        for i in range(ids):
            p = T.DataPoint(vector=T.Vector(dense=T.DenseVector(values=zero)))
            p.attributes["id"].int64_value = i
            piece = P.UploadRequest(points=[p]).SerializeToString()
            off = piece.find(zrun)
            if off < 0:
                raise RuntimeError("cannot find the vector in a serialized point")
            self.pieces.append(piece)
            inner.append(off)
        self.lens = np.array([len(p) for p in self.pieces], np.int64)
        self.inner = np.array(inner, np.int64)
        self.span = np.arange(self.vbytes, dtype=np.int64)

    def encode(self, ids: np.ndarray, vectors: np.ndarray) -> bytes:
        buf = bytearray(self.header + b"".join(self.pieces[i] for i in ids))
        view = np.frombuffer(buf, np.uint8)
        lens = self.lens[ids]
        starts = len(self.header) + np.cumsum(lens) - lens + self.inner[ids]
        view[starts[:, None] + self.span] = \
            np.ascontiguousarray(vectors, np.float32).view(np.uint8).reshape(len(ids), -1)
        return bytes(buf)

    def self_check(self, rng: np.random.Generator) -> None:
        """The encoded bytes parse, through the stubs, to the same ids and vectors."""
        ids = np.array([len(self.pieces) - 1, 0, min(1, len(self.pieces) - 1)])
        vec = rng.random((len(ids), self.dim), dtype=np.float32)
        req = P.UploadRequest.FromString(self.encode(ids, vec))
        if req.data_source != SRC or len(req.points) != len(ids):
            raise RuntimeError("self-check: bad request header or point count")
        for j, p in enumerate(req.points):
            if (p.attributes["id"].int64_value != int(ids[j])
                    or not np.array_equal(np.array(p.vector.dense.values, np.float32), vec[j])):
                raise RuntimeError(f"self-check: point {j} does not round-trip")


# ------------------------------------------------------------------------------ server

class Run:
    """One hilbertd in its own temp dir, with the source and the index created."""

    def __init__(self, dim: int, label: str):
        self.label = label
        self.work = Path(tempfile.mkdtemp(prefix=f"hdb-timeline-{label}-"))
        self.hdb = benchlib.Hilbertd(CONFIG, workdir=self.work)
        self.data = self.work / "data"
        self.channel = None
        try:
            self.setup(dim)
        except BaseException:
            self.stop()
            raise
        self.samples: list[dict] = []
        self.t0 = time.perf_counter()

    def setup(self, dim: int) -> None:
        self.channel = self.new_channel()
        self.catalog = catalog_pb2_grpc.CatalogStub(self.channel)
        self.catalog.CreateDataSource(C.CreateDataSourceRequest(spec=C.DataSourceSpec(
            name=SRC.name, version=SRC.version, vector_kind=C.VECTOR_KIND_DENSE, dimension=dim,
            permanent_attributes=[C.AttributeSpec(name="id", type=T.ATTRIBUTE_TYPE_INT64)],
            id_attributes=["id"])), timeout=30)
        self.catalog.CreateIndex(C.CreateIndexRequest(spec=C.IndexSpec(
            name=IDX.name, version=IDX.version, data_source=SRC, metric=C.METRIC_L2,
            algorithm=C.IndexAlgorithm(flat=C.FlatAlgorithm()))), timeout=60)

    def new_channel(self) -> grpc.Channel:
        ch = grpc.insecure_channel(self.hdb.target,
                                   options=[("grpc.max_send_message_length", 256 << 20)])
        grpc.channel_ready_future(ch).result(timeout=30)
        return ch

    def server_cpu(self) -> float | None:
        """CPU seconds (user + system) hilbertd has used so far; None where /proc is missing."""
        try:
            f = Path(f"/proc/{self.hdb.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
            return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")
        except (OSError, ValueError, IndexError):
            return None

    def sample(self, phase: str) -> dict:
        s = dir_size(self.data)
        s.update(t=round(time.perf_counter() - self.t0, 2), phase=phase)
        self.samples.append(s)
        return s

    def status(self):
        return (self.catalog.GetDataSource(C.GetDataSourceRequest(data_source=SRC), timeout=30),
                self.catalog.GetIndex(C.GetIndexRequest(index=IDX), timeout=30).status)

    def wait_applied(self, timeout: float) -> float | None:
        """Seconds until the index is READY and has applied the source's last seq; None if it
        has not within timeout (reported, not fatal)."""
        t = time.perf_counter()
        while True:
            src, st = self.status()
            if st.state == C.INDEX_STATE_READY and st.applied_seq >= src.last_seq:
                return time.perf_counter() - t
            if st.state == C.INDEX_STATE_FAILED:
                print(f"  ! index FAILED: {st.detail}", flush=True)
                return None
            if time.perf_counter() - t > timeout:
                print(f"  ! index not caught up after {timeout:.0f} s: applied {st.applied_seq}"
                      f" of {src.last_seq}", flush=True)
                return None
            time.sleep(0.2)

    def settle(self, settle: float, quiet: float) -> dict:
        """Samples the size each second until it has not gone below its minimum for `quiet`
        seconds, or `settle` seconds have passed; returns the last sample."""
        t = time.perf_counter()
        low = self.sample("settle")["total"]
        low_t = t
        while True:
            time.sleep(1)
            s = self.sample("settle")
            now = time.perf_counter()
            if s["total"] < low:
                low, low_t = s["total"], now
            if now - low_t >= quiet or now - t >= settle:
                s["settle_s"] = round(now - t, 1)
                return s

    def stop(self) -> dict:
        """SIGTERM and wait; returns the exit code, the log's last lines if it was not 0, and the
        dir size after the stop; removes the temp dir."""
        if self.channel is not None:
            self.channel.close()
        self.hdb.stop()
        code = self.hdb.proc.returncode
        out = {"exit_code": code, "after_stop": dir_size(self.data)}
        if code != 0:
            tail = self.hdb.log_path.read_text(errors="replace").splitlines()[-20:]
            out["log_tail"] = tail
            print(f"  ! {self.label}: hilbertd exited with {code}; last log lines:", flush=True)
            for ln in tail:
                print("    " + ln, flush=True)
        shutil.rmtree(self.work, ignore_errors=True)
        return out


def retention_fields(src, st) -> dict:
    """Fields about timeline retention in DataSourceInfo and IndexStatus, if the stubs have any
    (scalars always, messages when set)."""
    out = {}
    for where, msg in (("data_source", src), ("index_status", st)):
        for name, fd in msg.DESCRIPTOR.fields_by_name.items():
            if not any(w in name for w in RETENTION_WORDS):
                continue
            if fd.label == fd.LABEL_REPEATED:
                val = [json_format.MessageToDict(v, preserving_proto_field_name=True)
                       if fd.message_type else v for v in getattr(msg, name)]
            elif fd.message_type is not None:
                if not msg.HasField(name):
                    continue
                val = json_format.MessageToDict(getattr(msg, name),
                                                preserving_proto_field_name=True)
            else:
                val = getattr(msg, name)
            out[f"{where}.{name}"] = val
    return out


def has_retention_fields() -> bool:
    return bool(retention_fields(C.DataSourceInfo(), C.IndexStatus()))


# ------------------------------------------------------------------------------ runs

def upload(run: Run, enc: BatchEncoder, upserts: int, ids: int, batch: int, clients: int,
           sample_every: float, seed: int) -> float:
    """Upserts `upserts` points over ids 0..ids-1 (cycling) in batches from `clients` threads,
    each on its own channel; the dir size is sampled every `sample_every` s meanwhile. Returns
    the wall seconds of the upload."""
    nbatches = math.ceil(upserts / batch)
    channels = [run.new_channel() for _ in range(clients)]
    calls = [ch.unary_unary("/hilbert.v1.Points/Upload", request_serializer=None,
                            response_deserializer=P.UploadResponse.FromString)
             for ch in channels]
    done = threading.Event()
    show_retention = has_retention_fields()

    def sampler():
        last_print = 0.0
        while not done.wait(sample_every):
            s = run.sample("upload")
            if show_retention:
                try:
                    s["retention"] = retention_fields(*run.status())
                except grpc.RpcError:
                    pass
            if s["t"] - last_print >= 10:
                last_print = s["t"]
                print(f"    t={s['t']:6.1f} s  dir {mib(s['total']):8.1f} MiB", flush=True)

    def work(c):
        rng = np.random.default_rng(seed + 1 + c)
        for b in range(c, nbatches, clients):
            first = b * batch
            n = min(batch, upserts - first)
            pid = (np.arange(first, first + n, dtype=np.int64) % ids)
            req = enc.encode(pid, rng.random((n, enc.dim), dtype=np.float32))
            calls[c](req, timeout=120)

    th = threading.Thread(target=sampler, daemon=True)
    run.sample("upload")
    th.start()
    try:
        return benchlib.run_clients(clients, work)
    finally:
        done.set()
        th.join()
        for ch in channels:
            ch.close()
        run.sample("upload")


def measure(label: str, args, enc: BatchEncoder, upserts: int, clients: int) -> dict:
    print(f"== {label}: {upserts} upserts over {args.ids} ids, batch {args.batch}, "
          f"{clients} client(s), dim {args.dim}; load {os.getloadavg()[0]:.2f}", flush=True)
    run = Run(args.dim, label)
    row = {"run": label, "upserts": upserts, "ids": args.ids, "batch": args.batch,
           "clients": clients, "dim": args.dim}
    try:
        cpu0, srv0 = time.process_time(), run.server_cpu()
        secs = upload(run, enc, upserts, args.ids, args.batch, clients, args.sample, args.seed)
        cpu, srv = time.process_time() - cpu0, run.server_cpu()
        row["upload_s"] = round(secs, 2)
        row["points_per_s"] = round(upserts / secs)
        row["client_cpu_s"] = round(cpu, 2)
        row["server_cpu_s"] = None if srv is None or srv0 is None else round(srv - srv0, 2)
        print(f"  uploaded in {secs:.1f} s: {upserts / secs:.0f} points/s; dir "
              f"{mib(run.samples[-1]['total']):.1f} MiB; CPU: hilbertd {row['server_cpu_s']} s, "
              f"this client {cpu:.1f} s", flush=True)
        caught = run.wait_applied(args.apply_timeout)
        row["apply_wait_s"] = None if caught is None else round(caught, 2)
        if caught is not None:
            print(f"  index caught up {caught:.1f} s after the upload", flush=True)
        final = run.settle(args.settle, args.quiet)
        src, st = run.status()
        row.update(last_seq=src.last_seq, point_count=src.point_count,
                   applied_seq=st.applied_seq, snapshot_seq=st.snapshot_seq,
                   index_size=st.size)
        row["peak_bytes"] = max(s["total"] for s in run.samples)
        row["final_bytes"] = final["total"]
        row["peak_mib"] = round(mib(row["peak_bytes"]), 1)
        row["final_mib"] = round(mib(row["final_bytes"]), 1)
        row["settle_s"] = final["settle_s"]
        row["final_breakdown"] = {k: final[k] for k in
                                  ("sst", "wal", "snapshots", "other", "files", "ballast")}
        print(f"  settled after {final['settle_s']:.0f} s: final {row['final_mib']:.1f} MiB "
              f"(sst {mib(final['sst']):.1f}, wal {mib(final['wal']):.1f}, snapshots "
              f"{mib(final['snapshots']):.1f}, other {mib(final['other']):.1f}; "
              f"{final['files']} files; ballast {mib(final['ballast']):.1f} not counted), "
              f"peak {row['peak_mib']:.1f} MiB", flush=True)
        print(f"  source last_seq {src.last_seq}, points {src.point_count}; index applied "
              f"{st.applied_seq}, snapshot_seq {st.snapshot_seq}, size {st.size}", flush=True)
        ret = retention_fields(src, st)
        if ret:
            row["retention"] = ret
            for k, v in ret.items():
                print(f"  {k}: {v}", flush=True)
        row["samples"] = run.samples
    finally:
        stopped = run.stop()
    row["exit_code"] = stopped["exit_code"]
    row["after_stop_bytes"] = stopped["after_stop"]["total"]
    if "log_tail" in stopped:
        row["log_tail"] = stopped["log_tail"]
    print(f"  stopped (exit code {stopped['exit_code']}); dir after the stop "
          f"{mib(stopped['after_stop']['total']):.1f} MiB", flush=True)
    return row


def binary_info() -> dict:
    info = {"path": benchlib.HILBERTD}  # and the commit of this checkout (not necessarily
    # the binary's)
    try:
        info["checkout_commit"] = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
                                        capture_output=True, text=True,
                                        timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        pass
    return info


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--upserts", type=int, default=1_000_000, help="points upserted in all")
    ap.add_argument("--ids", type=int, default=1000, help="distinct ids (K); ids cycle")
    ap.add_argument("--batch", type=int, default=1000, help="points per Upload (at most --ids)")
    ap.add_argument("--clients", type=int, default=2, help="client threads")
    ap.add_argument("--dim", type=int, default=128, help="vector dimension")
    ap.add_argument("--sample", type=float, default=2.0,
                    help="seconds between dir-size samples during the upload")
    ap.add_argument("--settle", type=float, default=30.0,
                    help="most seconds to wait for the dir size to stop shrinking")
    ap.add_argument("--quiet", type=float, default=10.0,
                    help="the size has stopped shrinking once it has not for this many seconds")
    ap.add_argument("--apply-timeout", type=float, default=600.0,
                    help="most seconds to wait for the index to apply everything")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--label", default="hilbertd", help="name of the run in the table and JSON")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "timeline.json"))
    args = ap.parse_args()
    if args.ids < 1 or args.upserts < args.ids or args.batch < 1 or args.clients < 1:
        ap.error("need 1 <= --ids <= --upserts, --batch >= 1 and --clients >= 1")
    if args.batch > args.ids:
        print(f"note: --batch {args.batch} > --ids {args.ids}; using batches of {args.ids} so "
              f"that no batch holds an id twice", flush=True)
        args.batch = args.ids

    enc = BatchEncoder(args.ids, args.dim)
    enc.self_check(np.random.default_rng(args.seed))
    print(f"binary {benchlib.HILBERTD}; point record ~{enc.lens.mean():.0f} bytes on the wire",
          flush=True)
    rows = [measure(args.label, args, enc, args.upserts, args.clients),
            measure("reference", args, enc, args.ids, 1)]
    main_row, ref = rows
    ratio = main_row["final_bytes"] / ref["final_bytes"] if ref["final_bytes"] else float("nan")
    main_row["ratio_final_to_reference"] = round(ratio, 2)
    ref["ratio_final_to_reference"] = 1.0

    print()
    head = (f"{'run':<12} | {'upserts':>9} | {'ids':>6} | {'rate (pt/s)':>11} | "
            f"{'peak MiB':>9} | {'final MiB':>9} | {'ref MiB':>8} | {'final/ref':>9}")
    print(head)
    print("-" * len(head))
    for r in rows:
        print(f"{r['run']:<12} | {r['upserts']:>9} | {r['ids']:>6} | {r['points_per_s']:>11} | "
              f"{r['peak_mib']:>9.1f} | {r['final_mib']:>9.1f} | {mib(ref['final_bytes']):>8.1f}"
              f" | {r['ratio_final_to_reference']:>9.2f}")
    bad = [r["run"] for r in rows if r["exit_code"] != 0]
    if bad:
        print(f"! unclean stop (non-zero exit code) in: {', '.join(bad)}")

    benchlib.write_json(args.out, {
        "machine": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count()},
        "binary": binary_info(),
        "config": CONFIG,
        "args": vars(args),
        "reference_bytes": ref["final_bytes"],
        "runs": rows,
    })


if __name__ == "__main__":
    main()
