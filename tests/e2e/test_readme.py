"""The README's first-run example works as written: the command is read out of README.md (so
the README cannot drift from what is tested), run against a hilbertd started on the shipped
config with the bundled models, and must finish, print hits per model space and write its plot.
"""
from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

from conftest import ROOT, SANITIZED


def readme_example() -> str:
    """The shell command of the code block after "In a second terminal:" in README.md."""
    text = (ROOT / "README.md").read_text()
    m = re.search(r"In a second\s+terminal:\s*```sh\n(.*?)```", text, re.S)
    assert m, "README.md has no example block after 'In a second terminal:'"
    return m.group(1).replace("\\\n", " ").strip()


def test_readme_example_runs_as_written(make_server, tmp_path):
    cmd = readme_example()
    assert "fashion_mnist_search.py" in cmd and "--plot similar.png" in cmd, cmd
    # The server that scripts/run.sh starts: the shipped config, whose relative paths (models)
    # resolve against the checkout.
    s = make_server(config=ROOT / "config" / "hilbertd.yaml", cwd=ROOT)
    # The command's relative paths resolve in a directory that mirrors the checkout, so the plot
    # lands in the test's own directory.
    work = tmp_path / "work"
    work.mkdir()
    (work / "clients").symlink_to(ROOT / "clients")
    if SANITIZED:  # the ASan build embeds ~10x slower: fewer images, same command otherwise
        cmd = cmd.replace("--images 2000", "--images 200")
    run = subprocess.run(["bash", "-c", f"{cmd} --target 127.0.0.1:{s.port}"], cwd=work,
                         capture_output=True, text=True, timeout=1200,
                         env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"})
    assert run.returncode == 0, f"{cmd}\nstdout:\n{run.stdout}\nstderr:\n{run.stderr}"
    for space in ("fmnist_cnn", "fmnist_mlp"):
        assert space in run.stdout, run.stdout
    png = work / "similar.png"
    assert png.is_file() and png.stat().st_size > 10_000
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def readme_block(after: str, lang: str) -> str:
    """The first ```lang code block after the line `after` in README.md."""
    text = (ROOT / "README.md").read_text()
    m = re.search(re.escape(after) + r".*?```" + lang + r"\n(.*?)```", text, re.S)
    assert m, f"README.md has no {lang} block after {after!r}"
    return m.group(1)


def run_snippet(code: str, port: int, timeout: float = 120) -> str:
    """Runs a README Python snippet against the server at port (the snippet's 127.0.0.1:50051
    replaced, nothing else); it must exit 0. Returns what it printed."""
    assert "127.0.0.1:50051" in code
    code = code.replace("127.0.0.1:50051", f"127.0.0.1:{port}")
    env = dict(os.environ, PYTHONPATH=str(ROOT / "clients" / "python"))
    run = subprocess.run(["/usr/bin/python3", "-c", code], cwd=ROOT, capture_output=True,
                         text=True, timeout=timeout, env=env)
    assert run.returncode == 0, run.stderr
    return run.stdout


def test_readme_raw_grpc_example_runs_as_written(server):
    """The "Raw gRPC" snippet, as printed, against a server (only the port differs)."""
    out = run_snippet(readme_block("### Raw gRPC", "python"), server.port)
    # The one point it uploaded is the hit it prints, with its payload.
    assert "trail runner" in out, out


def test_readme_filter_examples_run_as_written(server):
    """The two "Filters, count and scroll" snippets, as printed, against one server: the
    Python one creates and fills "shop", the raw one counts with the same filter."""
    out = run_snippet(readme_block("### Filters, count and scroll", "python"), server.port)
    lines = out.splitlines()
    # 600 points, price i % 90 < 10 and i % 3 == 0: i % 90 in {0, 3, 6, 9}, 7 of each.
    # price and tag are indexed, sold_out is not: at most the 28 cheap red ones pass.
    assert lines[0].startswith("True 5 attribute indexes: at most 28 points pass"), out
    assert lines[1:] == ["28", "400", "26"], out
    raw = run_snippet(readme_block("The same filter in raw protobuf", "python"), server.port)
    assert raw.split() == ["26"], raw


def test_readme_aliases_example_runs_as_written(server):
    """The "Aliases" snippet, as printed, against a fresh server (only the port differs)."""
    code = readme_block("### Aliases", "python")
    assert "SwitchAlias" in code
    out = run_snippet(code, server.port)
    # The nearest point to point 7 is itself; the alias ends on the new index.
    assert out.split() == ["7", "articles@2"], out


def test_readme_upgrade_example_runs_as_written(make_server, tmp_path):
    """The "Upgrading a model" snippet, as printed, on the state it describes: fmnist_cnn with
    keep_inputs, items added through the alias "shop", fmnist_cnn_v2.pt in models.dir (here the
    same weights under the new name). Afterwards "shop" is the new space, with every item."""
    import shutil
    from model_fixtures import MODELS_DIR, client, fmnist_spaces, png_bytes, write_config
    from hilbertdb.datasets import load_fashion_mnist
    models = tmp_path / "models"
    models.mkdir()
    shutil.copy(MODELS_DIR / "fmnist_cnn.pt", models / "fmnist_cnn.pt")
    shutil.copy(MODELS_DIR / "fmnist_cnn.pt", models / "fmnist_cnn_v2.pt")
    space = dict(fmnist_spaces(models)[0], keep_inputs=True)
    s = make_server(config=write_config(tmp_path / "up.yaml", [space]))
    db = client(s)
    db.create_alias("shop", model_space="fmnist_cnn")
    images, _ = load_fashion_mnist("test")
    for i in range(30):
        db.add_image(f"item-{i}", png_bytes(images[i]), "shop")
    code = readme_block("**Upgrading a model.**", "python")
    assert "reembed_from" in code
    out = run_snippet(code, s.port, timeout=300)
    assert out.split() == ["done"], out
    info = db.get_model_space("shop")
    assert info.name == "fmnist_cnn_v2" and info.point_count == 30
    assert [m.name for m in db.list_model_spaces()] == ["fmnist_cnn_v2"]
    db.close()


def readme_commands(prefix: str):
    """The command lines of README sh blocks that start with prefix (comments cut off)."""
    text = (ROOT / "README.md").read_text()
    for block in re.findall(r"```sh\n(.*?)```", text, re.S):
        for line in block.replace("\\\n", " ").splitlines():
            line = line.split("  #")[0].strip()
            if line.startswith(prefix):
                yield line


def test_readme_key_commands_run_as_written(tmp_path, make_server):
    """The Security section's key commands (build/hilbertd = the binary under test) print
    entries that a server accepts."""
    from conftest import HILBERTD
    cmds = list(readme_commands("build/hilbertd --"))
    assert any("--new-key" in c for c in cmds) and any("--hash-key" in c for c in cmds), cmds
    (tmp_path / "my-key.txt").write_text("hdb_" + "ab12" * 16 + "\n")
    entries = []
    for c in cmds:
        run = subprocess.run(["bash", "-c", c.replace("build/hilbertd", HILBERTD, 1)],
                             cwd=tmp_path, capture_output=True, text=True, timeout=60)
        assert run.returncode == 0, f"{c}: {run.stderr}"
        entries += [ln.strip() for ln in run.stdout.splitlines()
                    if ln.strip().startswith("- {name:")]
    assert len(entries) == len(cmds), (cmds, entries)
    cfg = tmp_path / "keys.yaml"
    cfg.write_text("auth:\n  keys:\n" + "".join(f"    {e}\n" for e in entries))
    s = make_server(config=cfg)
    assert f"{len(entries)} API key(s) configured" in s.log_since_start()


def test_readme_usage_lists_real_flags():
    """Every flag of the README's usage lines is one that hilbertd --help knows."""
    from conftest import HILBERTD
    usage = readme_block("override the file:", "")
    helptext = subprocess.run([HILBERTD, "--help"], capture_output=True, text=True,
                              timeout=30).stdout
    flags = set(re.findall(r"--[a-z][a-z-]+", usage))
    assert {"--config", "--listen", "--new-key"} <= flags, flags
    missing = sorted(f for f in flags if f not in helptext)
    assert not missing, missing
