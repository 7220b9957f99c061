"""The Prometheus endpoint (metrics.listen): a real scrape, parsed with the Prometheus client's
own text-format parser, counts exactly the calls made, and shows the index, the data source,
RocksDB, the disk and the process."""
from __future__ import annotations

import re
import urllib.error
import urllib.request
from pathlib import Path

import grpc
import numpy as np
from prometheus_client.parser import text_string_to_metric_families

from helpers import (create_index, create_source, expect_status, index_spec, point, search,
                     source_spec, upload)
from ann_helpers import wait_log


def scrape(port: int) -> dict:
    """{(name, frozenset(labels)): value} of every sample on the page."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=30) as r:
        assert r.status == 200
        assert r.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        text = r.read().decode()
    out = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def value(samples: dict, name: str, **labels) -> float:
    return samples[(name, frozenset(labels.items()))]


def test_a_scrape_counts_the_calls_and_shows_the_state(make_server, tmp_path):
    cfg = tmp_path / "m.yaml"
    cfg.write_text("metrics:\n  listen: 127.0.0.1:0\n")
    s = make_server(config=cfg)
    port = int(wait_log(s, r"metrics served at http://127\.0\.0\.1:(\d+)/metrics").group(1))
    create_source(s, source_spec("m", 4))
    create_index(s, index_spec("m-flat", "m"))
    x = np.random.default_rng(0).random((30, 4), dtype=np.float32)
    for i in range(0, 30, 10):
        upload(s, "m", [point(x[j], {"id": j}) for j in range(i, i + 10)])
    search(s, "m-flat", x[0], 3)
    with expect_status(grpc.StatusCode.INVALID_ARGUMENT, "k"):
        search(s, "m-flat", x[0], 0)
    m = scrape(port)
    up = "hilbert.v1.Points/Upload"
    se = "hilbert.v1.Search/Search"
    assert value(m, "hilbert_rpc_calls_total", method=up, code="OK") == 3
    assert value(m, "hilbert_rpc_calls_total", method=se, code="INVALID_ARGUMENT") == 1
    assert value(m, "hilbert_rpc_calls_total", method=se, code="OK") == 1
    # The histogram has every call, in cumulative buckets.
    assert value(m, "hilbert_rpc_duration_seconds_count", method=up) == 3
    assert value(m, "hilbert_rpc_duration_seconds_bucket", method=up, le="+Inf") == 3
    les = sorted((float(dict(k[1])["le"]), v) for k, v in m.items()
                 if k[0] == "hilbert_rpc_duration_seconds_bucket" and
                 dict(k[1])["method"] == up)
    assert [v for _, v in les] == sorted(v for _, v in les)
    assert value(m, "hilbert_rpc_duration_seconds_sum", method=up) > 0
    assert value(m, "hilbert_index_ready", index="m-flat@1") == 1
    assert value(m, "hilbert_index_lag_entries", index="m-flat@1") == 0
    assert value(m, "hilbert_index_applied_seq", index="m-flat@1") == 30
    assert value(m, "hilbert_index_lagging", index="m-flat@1") == 0
    assert value(m, "hilbert_source_points", source="m@1") == 30
    assert value(m, "hilbert_source_last_seq", source="m@1") == 30
    assert value(m, "hilbert_rocksdb_write_stopped") == 0
    assert value(m, "hilbert_writes_accepted") == 1
    assert value(m, "hilbert_disk_free_bytes") > 0
    assert value(m, "process_resident_memory_bytes") > 1 << 20
    # Memory, accounted for: the flat engine's rows (at least 30 x 4 floats), the resident
    # set split into anonymous and file-backed pages, malloc's heap, RocksDB's memtables.
    assert value(m, "hilbert_index_vector_bytes", index="m-flat@1") >= 30 * 4 * 4
    assert value(m, "hilbert_index_engine_other_bytes", index="m-flat@1") > 0
    assert value(m, "hilbert_index_attribute_bytes", index="m-flat@1") == 0
    rss = value(m, "process_resident_memory_bytes")
    anon, files = value(m, "hilbert_process_anon_bytes"), value(m, "hilbert_process_file_bytes")
    assert anon > 0 and files > 0 and abs(anon + files - rss) <= 0.25 * rss, (anon, files, rss)
    # malloc's figures come from glibc's arenas; a server on another malloc (a sanitizer's, or
    # one preloaded) leaves both gauges out rather than report an empty heap.
    if ("hilbert_heap_bytes", frozenset()) in m:
        assert 0 < value(m, "hilbert_heap_in_use_bytes") <= value(m, "hilbert_heap_bytes")
    else:
        assert ("hilbert_heap_in_use_bytes", frozenset()) not in m
    assert value(m, "hilbert_rocksdb_memtable_bytes") > 0
    assert value(m, "hilbert_rocksdb_block_cache_bytes") >= 0
    # The scrapes themselves are not gRPC calls; a second one sees the same counts.
    assert value(scrape(port), "hilbert_rpc_calls_total", method=up, code="OK") == 3


def test_only_get_metrics_is_served(make_server, tmp_path):
    cfg = tmp_path / "m.yaml"
    cfg.write_text("metrics:\n  listen: 127.0.0.1:0\n")
    s = make_server(config=cfg)
    port = int(wait_log(s, r"metrics served at http://127\.0\.0\.1:(\d+)/metrics").group(1))
    for url, method, code in ((f"http://127.0.0.1:{port}/", "GET", 404),
                              (f"http://127.0.0.1:{port}/metrics", "POST", 405)):
        req = urllib.request.Request(url, method=method, data=b"x" if method == "POST" else None)
        try:
            urllib.request.urlopen(req, timeout=30)
            raise AssertionError(f"{method} {url} answered 200")
        except urllib.error.HTTPError as e:
            assert e.code == code, (url, e.code)


def test_metrics_are_off_by_default(server):
    assert not re.search(r"metrics served at", server.log_since_start())
