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
