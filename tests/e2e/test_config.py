"""Configuration: declared data sources and indices are ensured at start (created, or checked
against the stored definition); bad config files and command lines exit with code 2 and name
the problem; --help and --version."""
import re
import subprocess

import pytest

from conftest import HILBERTD, ROOT, Server
from hilbert.v1 import catalog_pb2 as C

from helpers import (BOOL, COSINE, INT64, L2, STRING, TIMEOUT, assert_serving, create_source,
                     ds_ref, get_index, get_source, hit_ids, point, search, source_spec,
                     upload, wait_ready)

DECLARED = """
server:
  threads: 2
storage:
  sync: false
data_sources:
  - name: products
    version: 1.10
    vector_kind: dense
    dimension: 4
    permanent_attributes:
      - {name: id, type: int64}
      - {name: category, type: string}
      - name: in_stock
        type: bool
    id_attributes: [id]
  - name: notes
    version: "v2"
    dimension: 2
    permanent_attributes: [{name: key, type: string}, {name: n, type: int64}]
    id_attributes: [key, n]
indices:
  - name: products-flat
    version: "1"
    data_source: {name: products, version: "1.10"}
    algorithm: flat
    metric: l2
    split_attributes: [category]
  - name: products-cos
    version: 7
    data_source: {name: products, version: "1.10"}
    algorithm: flat
    metric: cosine
  - name: notes-ip
    version: "1"
    data_source: {name: notes, version: v2}
    algorithm: flat
    metric: inner_product
"""


def start_fails(data_dir, log, config=None, extra_args=None):
    """Starts hilbertd expecting it to exit during startup; returns (exit code, log)."""
    s = Server(data_dir, log, extra_args=extra_args, config=config)
    with pytest.raises(RuntimeError):
        s.start()
    code = s.proc.returncode
    s.proc = None
    return code, s.log_since_start()


def run(*args, timeout=60):
    return subprocess.run([HILBERTD, *args], capture_output=True, text=True, timeout=timeout)


def test_declared_objects_created_at_start(make_server, tmp_path):
    cfg = tmp_path / "hilbertd.yaml"
    cfg.write_text(DECLARED)
    s = make_server(config=cfg)
    src = get_source(s, "products", "1.10")  # the version is kept as written, not 1.1
    assert src.spec.dimension == 4
    assert [(a.name, a.type) for a in src.spec.permanent_attributes] == [
        ("id", INT64), ("category", STRING), ("in_stock", BOOL)]
    assert list(src.spec.id_attributes) == ["id"]
    assert src.spec.vector_kind == C.VECTOR_KIND_DENSE
    assert sorted((r.name, r.version) for r in src.indices) == [("products-cos", "7"),
                                                                 ("products-flat", "1")]
    notes = get_source(s, "notes", "v2")
    assert list(notes.spec.id_attributes) == ["key", "n"]
    ix = wait_ready(s, "products-flat")
    assert ix.spec.data_source == ds_ref("products", "1.10")
    assert ix.spec.metric == L2 and list(ix.spec.split_attributes) == ["category"]
    assert ix.spec.algorithm.WhichOneof("kind") == "flat"
    assert get_index(s, "products-cos", "7").spec.metric == COSINE
    assert get_index(s, "notes-ip").spec.metric == C.METRIC_INNER_PRODUCT
    # They work.
    upload(s, "products", [point([1, 0, 0, 0], {"id": 1, "category": "a", "in_stock": True}),
                           point([0, 1, 0, 0], {"id": 2, "category": "b", "in_stock": False})],
           version="1.10")
    res = search(s, "products-flat", [1, 0, 0, 0], 5, split_filter={"category": "b"})
    assert hit_ids(res.results[0]) == [2]
    upload(s, "notes", [point([1, 1], {"key": "x", "n": 1})], version="v2")
    assert wait_ready(s, "notes-ip").status.size == 1


def test_restart_with_same_config_is_idempotent(make_server, tmp_path):
    cfg = tmp_path / "hilbertd.yaml"
    cfg.write_text(DECLARED)
    s = make_server(config=cfg)
    r = upload(s, "products", [point([1, 2, 3, 4], {"id": i, "category": "c",
                                                     "in_stock": True}) for i in range(5)],
               version="1.10")
    assert s.stop() == 0
    s.start()
    s.restart()  # twice
    info = get_source(s, "products", "1.10")
    assert info.point_count == 5 and info.last_seq == r.last_seq
    lst = s.catalog.ListDataSources(C.ListDataSourcesRequest(), timeout=TIMEOUT)
    assert sorted((d.spec.name, d.spec.version) for d in lst.data_sources) == [
        ("notes", "v2"), ("products", "1.10")]
    lst = s.catalog.ListIndices(C.ListIndicesRequest(), timeout=TIMEOUT)
    assert len(lst.indices) == 3
    assert wait_ready(s, "products-flat").status.size == 5
    assert "exists with a different definition" not in s.log_since_start()


@pytest.mark.parametrize("change,named", [
    (("dimension: 4", "dimension: 5"), ["products@1.10"]),
    (("- {name: category, type: string}", "- {name: category, type: bytes}"),
     ["products@1.10"]),
    (("id_attributes: [key, n]", "id_attributes: [n, key]"), ["notes@v2"]),
    (("metric: cosine", "metric: inner_product"), ["products-cos@7"]),
    (("split_attributes: [category]", "split_attributes: [category, in_stock]"),
     ["products-flat@1"]),
], ids=["dimension", "attribute-type", "id-order", "index-metric", "index-splits"])
def test_restart_with_conflicting_definition_fails(make_server, tmp_path, change, named):
    cfg = tmp_path / "hilbertd.yaml"
    cfg.write_text(DECLARED)
    s = make_server(config=cfg)
    upload(s, "products", [point([1, 2, 3, 4], {"id": 1, "category": "c", "in_stock": True})],
           version="1.10")
    assert s.stop() == 0
    assert change[0] in DECLARED
    bad = tmp_path / "changed.yaml"
    bad.write_text(DECLARED.replace(change[0], change[1]))
    code, log = start_fails(s.data_dir, tmp_path / "changed.log", config=bad)
    assert code == 2, log
    lines = [ln for ln in log.splitlines() if all(n in ln for n in named)]
    assert lines, f"no log line names {named}:\n{log}"
    # The stored definitions were not touched: the old config still starts and serves.
    s.start()
    assert get_source(s, "products", "1.10").spec.dimension == 4
    assert get_source(s, "products", "1.10").point_count == 1
    assert get_index(s, "products-cos", "7").spec.metric == COSINE


def test_declared_index_over_source_created_through_api(make_server, tmp_path):
    s = make_server()
    create_source(s, source_spec("api", 3, [("id", INT64)], ["id"]))
    upload(s, "api", [point([i, 0, 0], {"id": i}) for i in range(10)])
    assert s.stop() == 0
    cfg = tmp_path / "ix.yaml"
    cfg.write_text("indices:\n  - name: api-ix\n    version: '1'\n"
                   "    data_source: {name: api, version: '1'}\n"
                   "    algorithm: flat\n    metric: l2\n")
    s.config = cfg
    s.start()
    st = wait_ready(s, "api-ix").status
    assert st.size == 10 and st.applied_seq == 10
    assert hit_ids(search(s, "api-ix", [3, 0, 0], 1).results[0]) == [3]


def test_flags_override_config(make_server, tmp_path):
    """The harness passes --listen 127.0.0.1:0 and --data-dir; with --threads they win over the
    file."""
    cfg = tmp_path / "flags.yaml"
    cfg.write_text(f"server:\n  listen: 127.0.0.1:1\n  threads: 1\nstorage:\n"
                   f"  data_dir: {tmp_path}/ignored\n")
    s = make_server(config=cfg, extra_args=["--threads", "3"])
    assert s.port != 1
    assert_serving(s)
    create_source(s, source_spec("x", 2))
    assert (s.data_dir / "db").exists()
    assert not (tmp_path / "ignored").exists()
    assert "3 threads" in s.log_since_start(), s.log_since_start()


@pytest.mark.parametrize("text,named", [
    ("server:\n  threads: 2\n  bogus_key: 1\n", ["bogus_key", ":3"]),
    ("limits:\n  max_k: 10\nfrobnicate: true\n", ["frobnicate", ":3"]),
    ("storage:\n  sync: maybe\n", ["storage.sync"]),
    ("server:\n  threads: 0\n", ["server.threads"]),
    ("server:\n  max_receive_message_bytes: 12 parsecs\n",
     ["server.max_receive_message_bytes"]),
    ("log:\n  level: loud\n", ["log.level"]),
    ("data_sources:\n  - name: a\n    version: '1'\n    dimension: 0\n"
     "    permanent_attributes: [{name: id, type: int64}]\n    id_attributes: [id]\n",
     ["data_sources[0]", "dimension"]),
    ("data_sources:\n  - name: a\n    version: '1'\n    dimension: 3\n"
     "    permanent_attributes: [{name: id, type: int65}]\n    id_attributes: [id]\n",
     ["data_sources[0]", "int65"]),
    ("indices:\n  - name: i\n    version: '1'\n    data_source: {name: a, version: '1'}\n"
     "    algorithm: annoy\n    metric: l2\n", ["indices[0]", "annoy"]),
    ("indices:\n  - name: i\n    version: '1'\n    data_source: {name: a, version: '1'}\n"
     "    algorithm: flat\n    metric: l2\n    colour: red\n", ["indices[0]", "colour"]),
    ("server: [1, 2\n", ["hilbertd"]),
    ("metrics:\n  listen: 0.0.0.0:9464\n", ["metrics.listen", "0.0.0.0:9464", "no TLS"]),
    ("index:\n  lag_mode: sideways\n", ["index.lag_mode", "backpressure or fall_behind"]),
    ("index:\n  applier_threads: -1\n", ["index.applier_threads", "between 0 and 256"]),
])
def test_bad_config_file_exits_2(tmp_path, text, named):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text(text)
    p = run("--config", str(cfg), "--data-dir", str(tmp_path / "d"), "--listen", "127.0.0.1:0")
    assert p.returncode == 2, (p.returncode, p.stderr)
    for n in named:
        assert n in p.stderr, f"{n!r} not in stderr: {p.stderr!r}"
    assert str(cfg) in p.stderr


@pytest.mark.parametrize("text,named", [
    # Valid YAML, but the declared objects are invalid: found when they are ensured.
    ("data_sources:\n  - name: a\n    version: '1'\n    dimension: 70000\n"
     "    permanent_attributes: [{name: id, type: int64}]\n    id_attributes: [id]\n",
     ["data_sources[0]", "dimension", "max_dimension"]),
    ("data_sources:\n  - name: a\n    version: '1'\n    dimension: 3\n"
     "    permanent_attributes: [{name: f, type: float64}]\n    id_attributes: [f]\n",
     ["data_sources[0]", "id_attributes"]),
    ("indices:\n  - name: i\n    version: '1'\n    data_source: {name: zz, version: '1'}\n"
     "    algorithm: flat\n    metric: l2\n", ["indices[0]", "zz@1"]),
])
def test_invalid_declared_objects_exit_2(tmp_path, text, named):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text(text)
    code, log = start_fails(tmp_path / "d", tmp_path / "bad.log", config=cfg)
    assert code == 2, log
    for n in named:
        assert n in log, f"{n!r} not in log: {log!r}"


def test_missing_config_file_exits_2(tmp_path):
    p = run("--config", str(tmp_path / "nope.yaml"))
    assert p.returncode == 2
    assert "nope.yaml" in p.stderr


def test_empty_config_is_all_defaults(make_server, tmp_path):
    cfg = tmp_path / "empty.yaml"
    cfg.write_text("# nothing here\n")
    s = make_server(config=cfg)
    assert_serving(s)


def test_shipped_default_config_is_valid(make_server):
    # As scripts/run.sh starts it: from the repository root, so ./models resolves.
    s = make_server(config=ROOT / "config" / "hilbertd.yaml", cwd=ROOT)
    assert_serving(s)


def test_help_and_version():
    p = run("--help")
    assert p.returncode == 0
    assert p.stdout.startswith("Usage: hilbertd")
    for flag in ("--config", "--listen", "--data-dir", "--threads", "--log-level", "--help",
                 "--version"):
        assert flag in p.stdout
    p = run("--version")
    assert p.returncode == 0
    assert re.fullmatch(r"hilbertd \d+\.\d+\.\d+\S*\n", p.stdout), p.stdout


@pytest.mark.parametrize("args,named", [
    (["--bogus"], "--bogus"),
    (["--threads", "0"], "--threads"),
    (["--threads"], "--threads"),
    (["--log-level=shouty"], "--log-level"),
    (["extra-positional"], "extra-positional"),
])
def test_bad_command_line_exits_2(args, named):
    p = run(*args)
    assert p.returncode == 2, (args, p.returncode, p.stderr)
    assert named in p.stderr, p.stderr
