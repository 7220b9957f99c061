"""The `hilbert` command-line tool (clients/python/hilbertdb/cli.py), end to end: the tool runs
as a subprocess (`python3 -m hilbertdb.cli`, and scripts/hilbert) against one real hilbertd
per module that declares the bundled fmnist_cnn model space.

Covered: --help of the tool and every command; status as a table and as JSON; import of a .npy
(--create, --id-start, --ids, batches, progress bar and plain lines without tqdm, the
summary), of a CSV with typed attribute columns (a bad row counted, not fatal), and of a folder
of Fashion-MNIST images into the model space; search by vector (--vector, --npy row) and by
image finds what was imported; backup (when the Admin stubs are built); bad inputs exit 2
(usage) or 1 (server/data) with one line on stderr and no traceback; the README's "Command
line" block runs as written.
"""
from __future__ import annotations

import csv
import importlib.util
import json
import os
import re
import subprocess
from pathlib import Path
from typing import List, Optional

import numpy as np
import pytest

from conftest import ROOT, Server
from model_fixtures import (FMNIST_MEAN, FMNIST_STD, MODELS_DIR, PYTHON, TIMEOUT, client,
                            image_space, write_config)

CLIENT_DIR = ROOT / "clients" / "python"
RUN_TIMEOUT = 600 if os.environ.get("HDB_SANITIZE") else 120
SHIRTS = [4, 7, 26, 40, 44, 73, 89, 92]  # Fashion-MNIST test images of class 6 (Shirt) < 100


@pytest.fixture(scope="module")
def module_server(tmp_path_factory):
    """One server for the module: default settings plus the bundled fmnist_cnn model space."""
    if not (MODELS_DIR / "fmnist_cnn.pt").is_file():
        pytest.fail(f"{MODELS_DIR}/fmnist_cnn.pt is missing (models/ is part of the checkout)")
    d = tmp_path_factory.mktemp("cli")
    spaces = [image_space("fmnist_cnn", MODELS_DIR / "fmnist_cnn.pt", 64, mean=[FMNIST_MEAN],
                          std=[FMNIST_STD])]
    cfg = write_config(d / "hilbertd.yaml", spaces, models_dir=MODELS_DIR)
    s = Server(d / "data", d / "hilbertd.log", config=cfg)
    s.start()
    yield s
    if s.proc is not None:
        code = s.stop()
        assert code == 0, f"hilbertd exited with {code}:\n{s.log_since_start()[-4000:]}"


@pytest.fixture(scope="module")
def target(module_server) -> str:
    return f"127.0.0.1:{module_server.port}"


def env(extra: Optional[dict] = None) -> dict:
    e = {k: v for k, v in os.environ.items() if not k.startswith("HILBERT_")}
    e["PYTHONPATH"] = str(CLIENT_DIR)
    e.update(extra or {})
    return e


def hilbert(*args: str, target: Optional[str] = None, cwd: Optional[Path] = None,
            prelude: str = "") -> subprocess.CompletedProcess:
    """Runs the tool; `prelude` is Python run before main() in the same process."""
    argv: List[str] = (["--target", target] if target else []) + ["--timeout", str(TIMEOUT)]
    argv += list(args)
    if prelude:
        cmd = [PYTHON, "-c", f"{prelude}\nimport sys\nfrom hilbertdb.cli import main\n"
               f"sys.exit(main(sys.argv[1:]))", *argv]
    else:
        cmd = [PYTHON, "-m", "hilbertdb.cli", *argv]
    return subprocess.run(cmd, capture_output=True, text=True, env=env(), cwd=cwd,
                          timeout=RUN_TIMEOUT)


def ok(run: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert run.returncode == 0, f"exit {run.returncode}\nstdout:\n{run.stdout}\n" \
                                f"stderr:\n{run.stderr}"
    assert "Traceback" not in run.stderr, run.stderr
    return run


def one_line_error(run: subprocess.CompletedProcess, code: int, text: str) -> str:
    assert run.returncode == code, f"exit {run.returncode} (wanted {code})\n" \
                                   f"stdout:\n{run.stdout}\nstderr:\n{run.stderr}"
    assert "Traceback" not in run.stderr, run.stderr
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1, run.stderr
    assert text in lines[0], lines[0]
    return lines[0]


def fmnist_pngs(folder: Path, indices: List[int]) -> None:
    from PIL import Image

    from hilbertdb.datasets import load_fashion_mnist
    images, _ = load_fashion_mnist("test")
    folder.mkdir(parents=True, exist_ok=True)
    for i in indices:
        Image.fromarray(images[i]).save(folder / f"fmnist-{i}.png")


# ------------------------------------------------------------------------ help

@pytest.mark.parametrize("command", [[], ["status"], ["import"], ["search"], ["backup"]])
def test_help_of_the_tool_and_every_command(command):
    run = ok(hilbert(*command, "--help"))
    assert run.stdout.startswith("usage: hilbert"), run.stdout
    assert " ".join(["hilbert"] + command) in run.stdout.splitlines()[0]


def test_wrapper_script_runs_the_tool(target):
    run = subprocess.run([str(ROOT / "scripts" / "hilbert"), "--target", target, "status",
                          "--json"], capture_output=True, text=True, timeout=RUN_TIMEOUT,
                         env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"})
    ok(run)
    assert "data_sources" in json.loads(run.stdout)


# ------------------------------------------------------------------------ .npy

def test_npy_import_status_and_search(target, module_server, tmp_path):
    rng = np.random.default_rng(5)
    vecs = rng.random((300, 8), dtype=np.float32)
    np.save(tmp_path / "v.npy", vecs)
    run = ok(hilbert("import", str(tmp_path / "v.npy"), "--source", "cli_npy", "--create",
                     "--batch", "64", "--id-start", "1000", "--json", "--progress", "lines",
                     target=target))
    summary = json.loads(run.stdout)
    assert summary["points"] == 300 and summary["errors"] == 0, summary
    assert summary["into"] == "cli_npy@1"
    last = summary["last_seq"]
    assert last == 300  # a new data source: seqs 1..300
    assert "300/300 points (100%)" in run.stderr, run.stderr
    assert "created data source cli_npy" in run.stderr
    # import waits (--wait) for the indices: once it returns, a search sees every point.
    st = client(module_server).get_index("cli_npy@1").status
    assert st.state == "READY" and st.applied_seq >= last and st.size == 300, st

    # float64 rows and ids from a file (one per line) replace points 1000..1004
    ids = tmp_path / "ids.txt"
    ids.write_text("".join(f"{1000 + i}\n" for i in range(5)))
    np.save(tmp_path / "v64.npy", (vecs[:5] + 10).astype(np.float64))
    run = ok(hilbert("import", str(tmp_path / "v64.npy"), "--source", "cli_npy", "--ids",
                     str(ids), target=target))
    m = re.search(r"imported 5 points into cli_npy@1 in [\d.]+ s \(\d+ points/s\), "
                  r"last seq (\d+), 0 errors", run.stdout)
    assert m, run.stdout
    last = int(m.group(1))
    assert last == 305

    run = ok(hilbert("search", "cli_npy", "--npy", str(tmp_path / "v.npy"), "--row", "17",
                     "-k", "3", "--min-seq", str(last), "--json", target=target))
    res = json.loads(run.stdout)
    assert res["applied_seq"] >= last
    assert len(res["hits"]) == 3
    assert res["hits"][0]["attributes"] == {"id": 1017}
    assert res["hits"][0]["distance"] == pytest.approx(0.0, abs=1e-5)

    q = ",".join(str(float(x)) for x in vecs[2] + 10)
    run = ok(hilbert("search", "cli_npy", "--vector", q, "-k", "2", target=target))
    lines = run.stdout.splitlines()
    assert lines[0].startswith("index cli_npy: 2 hits"), run.stdout
    assert re.match(r"\s+1\s+\S+\s+id=1002$", lines[2]), run.stdout

    # status: the table and JSON agree with what was imported
    st = json.loads(ok(hilbert("status", "--json", target=target)).stdout)
    src = {s["ref"]: s for s in st["data_sources"]}["cli_npy@1"]
    assert src["points"] == 300 and src["last_seq"] == 305 and src["dimension"] == 8
    idx = {i["ref"]: i for i in st["indices"]}["cli_npy@1"]
    assert idx["state"] == "READY" and idx["applied_seq"] == 305 and idx["size"] == 300
    assert idx["lag_entries"] == 0 and idx["lagging"] is False
    assert isinstance(idx["lag_seconds"], float)
    space = {m["name"]: m for m in st["model_spaces"]}["fmnist_cnn"]
    assert space["model_state"] == "LOADED" and space["output_dim"] == 64
    table = ok(hilbert("status", target=target)).stdout
    row = next(line for line in table.splitlines() if line.strip().startswith("cli_npy@1  "))
    assert row.split()[:6] == ["cli_npy@1", "8", "dense", "300", "305", "cli_npy@1"], row
    irow = [line for line in table.splitlines() if line.strip().startswith("cli_npy@1")][1]
    assert irow.split() == ["cli_npy@1", "cli_npy@1", "flat", "l2", "READY", "305", "0",
                            "0.0", "no", "300"], irow
    assert re.search(r"^\s+fmnist_cnn\s+\S*fmnist_cnn\.pt\s+64\s+cosine\s+LOADED", table,
                     re.M), table


def test_progress_bar_and_its_fallback_without_tqdm(target, tmp_path):
    np.save(tmp_path / "p.npy", np.ones((40, 8), dtype=np.float32))
    args = ["import", str(tmp_path / "p.npy"), "--source", "cli_npy", "--create",
            "--id-start", "5000", "--batch", "10"]
    if importlib.util.find_spec("tqdm") is not None:
        bar = ok(hilbert(*args, "--progress", "bar", target=target))
        assert "40/40" in bar.stderr and "point/s" in bar.stderr, bar.stderr
    # tqdm made unimportable in the tool's process: plain progress lines instead
    run = ok(hilbert(*args, target=target, prelude="import sys; sys.modules['tqdm'] = None"))
    assert "import p.npy: 40/40 points (100%)" in run.stderr, run.stderr
    assert "imported 40 points into cli_npy@1" in run.stdout and "0 errors" in run.stdout


# ------------------------------------------------------------------------ CSV

def test_csv_import_with_typed_attributes(target, module_server, tmp_path):
    db = client(module_server)
    db.create_data_source("cli_csv", dimension=3,
                          permanent_attributes={"sku": "string", "cat": "string"},
                          id_attributes=["sku"])
    db.create_index("cli_csv", data_source="cli_csv", algorithm="flat", metric="l2")
    path = tmp_path / "items.csv"
    rng = np.random.default_rng(9)
    vecs = rng.random((60, 3), dtype=np.float32)
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["sku", "x", "y", "z", "cat", "price", "in_stock", "note"])
        for i, v in enumerate(vecs):
            w.writerow([f"s{i:03d}", *map(repr, map(float, v)), "shoes" if i % 2 else "bags",
                        f"{i * 1.5}", "true" if i % 3 else "false", f"note {i}"])
        w.writerow(["s999", "1", "2", "3", "bags", "cheap", "true", "bad price"])  # line 62
    run = hilbert("import", str(path), "--source", "cli_csv", "--vector-column", "x,y,z",
                  "--attribute", "sku,cat,price:float64,in_stock:bool,note", "--batch", "25",
                  "--json", "--progress", "none", target=target)
    assert run.returncode == 1, run.stderr  # one bad row: reported, counted, the rest imported
    assert "Traceback" not in run.stderr
    assert f"{path}:62: column price: 'cheap' is not a float64" in run.stderr, run.stderr
    summary = json.loads(run.stdout)
    assert summary["points"] == 60 and summary["errors"] == 1
    info = db.get_data_source("cli_csv")
    assert info.point_count == 60 and info.last_seq == summary["last_seq"]

    run = ok(hilbert("search", "cli_csv", "--vector", ",".join(map(str, vecs[7])), "-k", "1",
                     "--min-seq", str(summary["last_seq"]), "--json", target=target))
    hit = json.loads(run.stdout)["hits"][0]
    assert hit["attributes"] == {"sku": "s007", "cat": "shoes", "price": 10.5,
                                 "in_stock": True, "note": "note 7"}
    # without --attribute every other column is an attribute: types from the schema, else
    # inferred from the value (here price is an int, in_stock a string)
    path2 = tmp_path / "more.csv"
    path2.write_text("sku,vector,cat,price,in_stock\ns100,[0.5 0.5 0.5],bags,3,yes\n")
    ok(hilbert("import", str(path2), "--source", "cli_csv", target=target))
    got = db.get("cli_csv", ["s100"])[0]
    assert got.attributes == {"sku": "s100", "cat": "bags", "price": 3, "in_stock": "yes"}
    np.testing.assert_allclose(got.vector, [0.5, 0.5, 0.5])
    db.close()


# ------------------------------------------------------------------------ images

def test_image_folder_import_and_search_by_image(target, tmp_path):
    folder = tmp_path / "shirts"
    fmnist_pngs(folder, SHIRTS)
    (folder / "README.txt").write_text("not an image: skipped\n")
    run = ok(hilbert("import", str(folder), "--model-space", "fmnist_cnn", "--json",
                     target=target))
    summary = json.loads(run.stdout)
    assert summary["points"] == len(SHIRTS) and summary["errors"] == 0, summary
    seq = summary["last_seq"]["fmnist_cnn"]
    assert seq >= len(SHIRTS)

    run = ok(hilbert("search", "--image", str(folder / "fmnist-26.png"), "-k", "3",
                     "--min-seq", str(seq), "--json", target=target))
    res = json.loads(run.stdout)
    hits = res["model_spaces"]["fmnist_cnn"]
    assert len(hits) == 3
    assert hits[0]["attributes"]["id"] == "fmnist-26"
    assert hits[0]["distance"] == pytest.approx(0.0, abs=1e-4)
    assert all(h["attributes"]["id"] in {f"fmnist-{i}" for i in SHIRTS} for h in hits)
    table = ok(hilbert("search", "--image", str(folder / "fmnist-26.png"), "-k", "2",
                       target=target)).stdout
    assert "model space fmnist_cnn: 2 hits" in table and "id=fmnist-26" in table, table

    # a file the server cannot decode is counted as an error; the others go in
    bad = tmp_path / "mixed"
    fmnist_pngs(bad, [0, 1])
    (bad / "broken.png").write_bytes(b"not a png")
    run = hilbert("import", str(bad), "--progress", "none", target=target)
    assert run.returncode == 1 and "Traceback" not in run.stderr, run.stderr
    assert "broken.png" in run.stderr
    assert re.search(r"imported 2 images into fmnist_cnn .* 1 errors", run.stdout), run.stdout


# ------------------------------------------------------------------------ backup

def test_backup_writes_a_backup(target, tmp_path):
    np.save(tmp_path / "b.npy", np.ones((10, 8), dtype=np.float32))
    ok(hilbert("import", str(tmp_path / "b.npy"), "--source", "cli_npy", "--create",
               "--id-start", "9000", target=target))
    dest = tmp_path / "backup"
    res = json.loads(ok(hilbert("backup", str(dest), "--json", target=target)).stdout)
    # (indices: the index snapshots it holds; these indices may have none yet, so they are
    # built again after a restore: test_backup.py covers that part.)
    assert res["bytes"] > 0 and isinstance(res["indices"], int), res
    assert res["source_seqs"].get("cli_npy@1", 0) >= 10, res
    assert dest.is_dir() and any(dest.iterdir())


# ------------------------------------------------------------------------ bad input

@pytest.fixture(scope="module")
def files(tmp_path_factory, target):
    d = tmp_path_factory.mktemp("bad")
    np.save(d / "v5.npy", np.zeros((4, 5), dtype=np.float32))
    np.save(d / "ints.npy", np.zeros((4, 8), dtype=np.int32))
    (d / "junk.npy").write_bytes(b"not numpy")
    (d / "empty").mkdir()
    (d / "novec.csv").write_text("id,title\n1,x\n")
    (d / "data.bin").write_bytes(b"x")
    np.save(d / "v8.npy", np.zeros((4, 8), dtype=np.float32))
    ok(hilbert("import", str(d / "v8.npy"), "--source", "cli_bad", "--create", target=target))
    return d


BAD = [
    # (args, exit code, text in the one line); {d} is the files' directory
    (["import", "{d}/missing.npy", "--source", "cli_bad"], 2, "no such file"),
    (["import", "{d}/v5.npy", "--source", "cli_bad"], 1,
     "vectors have dimension 5, data source cli_bad@1 expects 8"),
    (["import", "{d}/v8.npy", "--source", "no_such_source"], 1,
     "data source no_such_source does not exist"),
    (["import", "{d}/ints.npy", "--source", "cli_bad"], 1, "expected float32 or float64"),
    (["import", "{d}/junk.npy", "--source", "cli_bad"], 1, "not a readable .npy file"),
    (["import", "{d}/v8.npy"], 2, "needs --source"),
    (["import", "{d}/data.bin", "--source", "cli_bad"], 2, "--format"),
    (["import", "{d}/novec.csv", "--source", "cli_bad"], 2, "--vector-column"),
    (["import", "{d}/empty"], 1, "no PNG or JPEG files"),
    (["import", "{d}/empty", "--format", "images", "--batch", "0"], 2, "--batch"),
    (["import", "{d}/v8.npy", "--source", "cli_bad", "--wait", "-1"], 2, "--wait must be"),
    (["import", "{d}/v8.npy", "--source", "cli_bad", "--wait", "soon"], 2, "--wait"),
    (["import", "{d}/v8.npy", "--source", "cli_bad", "--bogus"], 2, "unrecognized arguments"),
    (["search", "cli_bad", "--vector", "0.1,abc"], 2, "not a list of numbers"),
    (["search", "cli_bad", "--vector", "0.1,0.2"], 1, "INVALID_ARGUMENT"),
    (["search", "no_such_index", "--vector", "0.1,0.2"], 1, "NOT_FOUND"),
    (["search", "cli_bad"], 2, "one of --vector or --npy"),
    (["search", "--image", "{d}/missing.png"], 2, "no such file"),
    (["search", "--image", "{d}/v8.npy", "--model-space", "no_such_space"], 1, "NOT_FOUND"),
    (["search", "cli_bad", "--npy", "{d}/v8.npy", "--row", "9"], 1, "out of range"),
    (["frobnicate"], 2, "invalid choice"),
    (["--ca", "{d}/missing.pem", "status"], 2, "no such file"),
]


@pytest.mark.parametrize("args,code,text", BAD, ids=[" ".join(a[:2]) + f" {i}"
                                                     for i, (a, _, _) in enumerate(BAD)])
def test_bad_input_is_one_line_and_an_exit_code(target, files, args, code, text):
    one_line_error(hilbert(*[a.format(d=files) for a in args], target=target), code, text)


def test_unreachable_server_is_one_line(files):
    one_line_error(hilbert("status", target="127.0.0.1:1"), 1, "UNAVAILABLE")


# ------------------------------------------------------------------------ README

def readme_block() -> str:
    text = (ROOT / "README.md").read_text()
    m = re.search(r"### Command line\n.*?```sh\n(.*?)```", text, re.S)
    assert m, "README.md has no ```sh block under '### Command line'"
    return m.group(1)


def test_readme_command_line_block_runs_as_written(target, tmp_path):
    """The block is written for scripts/run.sh's server (127.0.0.1:50051); here
    HILBERT_TARGET points the same commands at the test server."""
    block = readme_block()
    assert "scripts/hilbert import" in block and "scripts/hilbert search" in block
    for name in ("scripts", "clients"):
        (tmp_path / name).symlink_to(ROOT / name)
    run = subprocess.run(["bash", "-euo", "pipefail", "-c", block], cwd=tmp_path,
                         capture_output=True, text=True, timeout=RUN_TIMEOUT,
                         env=env({"HILBERT_TARGET": target}))
    ok(run)
    assert "imported 1000 points into demo@1" in run.stdout, run.stdout
    assert re.search(r"^\s+1\s+0\s+id=42$", run.stdout, re.M), run.stdout
    assert "imported 8 images into fmnist_cnn" in run.stdout, run.stdout
    assert "id=fmnist-26" in run.stdout, run.stdout
