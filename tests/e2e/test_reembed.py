"""Re-embedding end to end: a model space that keeps its inputs (keep_inputs), a new space filled
from them through another model (reembed_from), and the switch of clients from one to the other.

The origin "v1" runs the bundled fmnist_mlp (32-d); the new space "v2" the bundled fmnist_cnn
(64-d), so every vector of v2 must be the CNN's embedding of the item's original image. While v2
is created, copies and catches up, a writer adds and removes items through the alias "live" and
a reader searches through it; the alias is then switched to v2 under the same load. No search
fails, and at the end v2 holds exactly the live items, each with the CNN's vector of its own
image, and its attributes. The re-embedding survives a kill -9 and goes on following; dropping
the origin ends it. Bad inputs get their status and the field they name.
"""
from __future__ import annotations

import json
import os
import subprocess
import threading
import time

import numpy as np
import pytest

from hilbertdb import FailedPrecondition, ImageInput, InvalidArgument, NotFound
from hilbertdb.datasets import load_fashion_mnist
from conftest import ROOT
from model_fixtures import (FMNIST_MEAN, FMNIST_STD, MODELS_DIR, PYTHON, client, expect,
                            png_bytes, write_config)

INPUT = ImageInput(28, 28, 1, mean=[FMNIST_MEAN], std=[FMNIST_STD])
FIRST = 150        # items in v1 before v2 is created
AFTER_SWITCH = 40  # adds through the alias once it points to v2


@pytest.fixture
def spaces(make_server, tmp_path):
    """A server with the bundled models and model space v1 (fmnist_mlp, keep_inputs)."""
    cfg = write_config(tmp_path / "hilbertd.yaml", [], models_dir=MODELS_DIR)
    s = make_server(config=cfg)
    db = client(s)
    db.create_model_space("v1", "fmnist_mlp.pt", input=INPUT, output_dim=32,
                          permanent_attributes={"label": "int64"}, keep_inputs=True)
    images, labels = load_fashion_mnist("test")
    pngs = [png_bytes(images[i]) for i in range(600)]
    yield s, db, pngs, labels
    db.close()


class Load:
    """A writer that adds (and now and then removes) items through the alias, and a reader that
    searches through it, until stopped. Errors are collected, never raised in the threads."""

    def __init__(self, db, pngs, labels, live):
        self.db, self.pngs, self.labels = db, pngs, labels
        self.live = dict(live)  # id -> image index, as the writer left it
        self.errors = []
        self.adds = self.searches = 0
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self.write), threading.Thread(target=self.read)]

    def write(self):
        n = FIRST
        while not self.stop.is_set():
            i = n % len(self.pngs)
            try:
                self.db.add_image(f"w{n}", self.pngs[i], "live",
                                  attributes={"label": int(self.labels[i])})
                with self.lock:
                    self.live[f"w{n}"] = i
                    self.adds += 1
                if n % 7 == 0:  # remove an item of the first batch
                    victim = f"w{(n // 7) % FIRST}"
                    self.db.remove_image(victim, "live")
                    with self.lock:
                        self.live.pop(victim, None)
            except Exception as e:  # noqa: BLE001 - collected for the test to report
                self.errors.append(("write", repr(e)))
            n += 1

    def read(self):
        q = 0
        while not self.stop.is_set():
            try:
                hits = self.db.find_similar_image(self.pngs[q % 50], "live", k=5)
                for hs in hits.values():
                    for h in hs:
                        assert "hilbert.input" not in h.attributes, h.attributes
                with self.lock:
                    self.searches += 1
            except Exception as e:  # noqa: BLE001
                self.errors.append(("search", repr(e)))
            q += 1

    def adds_now(self):
        with self.lock:
            return self.adds

    def __enter__(self):
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        for t in self.threads:
            t.join()


def status(s, *args):
    """`hilbert status` against s (the CLI as users run it); its stdout."""
    run = subprocess.run([PYTHON, "-m", "hilbertdb.cli", "--target", f"127.0.0.1:{s.port}",
                          "status", *args], capture_output=True, text=True, timeout=120,
                         env=dict(os.environ, PYTHONPATH=str(ROOT / "clients" / "python")))
    assert run.returncode == 0, run.stderr
    return run.stdout


def check_space(db, name, live, pngs, labels):
    """name holds exactly the items of live, each with its model's vector of its own image
    and its label."""
    info = db.get_model_space(name)
    assert info.point_count == len(live), (info.point_count, len(live))
    ids = sorted(live)
    got = db.get(f"{name}@space", ids)
    for id_, p in zip(ids, got):
        assert p is not None, id_
        i = live[id_]
        want = db.embed(image=pngs[i], model_spaces=name)[name]
        np.testing.assert_allclose(p.vector, want, rtol=1e-4, atol=1e-5, err_msg=id_)
        assert p.attributes["label"] == int(labels[i])
        assert p.attributes["hilbert.input"] == pngs[i]  # kept for the next upgrade


def test_reembed_under_load_then_switch(spaces):
    s, db, pngs, labels = spaces
    live = {}
    for n in range(FIRST):
        db.add_image(f"w{n}", pngs[n], "v1", attributes={"label": int(labels[n])})
        live[f"w{n}"] = n
    # The origin keeps each item's image as sent.
    assert db.get("v1@space", ["w3"])[0].attributes["hilbert.input"] == pngs[3]
    db.create_alias("live", model_space="v1")
    with Load(db, pngs, labels, live) as load:
        info = db.create_model_space("v2", "fmnist_cnn.pt", input=INPUT, output_dim=64,
                                     permanent_attributes={"label": "int64"},
                                     reembed_from="live")
        assert info.reembed_from == "v1" and info.keep_inputs  # the alias, resolved
        assert info.reembed.origin == "v1"
        db.wait_reembedded("v2")
        db.switch_alias("live", model_space="v2")
        switched_at = load.adds_now()
        while load.adds_now() < switched_at + AFTER_SWITCH and not load.errors:
            time.sleep(0.01)
    assert load.errors == [], load.errors[:5]
    assert load.searches > 0 and load.adds >= AFTER_SWITCH
    info = db.wait_reembedded("v2")
    assert info.reembed.state == "following" and info.reembed.skipped == 0
    check_space(db, "v2", load.live, pngs, labels)
    # Writes after the switch went to v2 only; v1 stopped where the switch left it.
    assert db.get_model_space("v1").point_count < len(load.live)

    # The origin can go now: the re-embedding is done, and v2 stands alone.
    db.drop_model_space("v1")
    info = db.get_model_space("v2")
    assert info.reembed.state == "done"
    check_space(db, "v2", load.live, pngs, labels)


def test_reembed_survives_kill9_and_follows(spaces):
    s, db, pngs, labels = spaces
    live = {}
    for n in range(40):
        db.add_image(f"w{n}", pngs[n], "v1", attributes={"label": int(labels[n])})
        live[f"w{n}"] = n
    db.create_model_space("v2", "fmnist_cnn.pt", input=INPUT, output_dim=64,
                          reembed_from="v1")
    db.wait_reembedded("v2")
    for n in range(40, 60):
        db.add_image(f"w{n}", pngs[n], "v1", attributes={"label": int(labels[n])})
        live[f"w{n}"] = n
    db.remove_image("w0", "v1")
    del live["w0"]
    s.kill9()
    s.start()
    db2 = client(s)
    info = db2.get_model_space("v2")
    assert info.reembed.state == "following", info.reembed
    for n in range(60, 70):  # after the restart, still followed
        db2.add_image(f"w{n}", pngs[n], "v1", attributes={"label": int(labels[n])})
        live[f"w{n}"] = n
    db2.remove_image("w1", "v1")
    del live["w1"]
    info = db2.wait_reembedded("v2")
    assert info.reembed.state == "following"
    assert info.point_count == len(live)
    # It went on from its stored position: the origin's timeline kept what followed it, so
    # nothing was copied again.
    assert "embedding the items" not in s.log_since_start(), s.log_since_start()[-3000:]
    check_space(db2, "v2", {k: v for k, v in live.items()}, pngs, labels)
    # hilbert status shows the progress.
    last = info.reembed.origin_last_seq
    assert f"v2: re-embedding from v1: following, {info.reembed.copied} items, seq {last} of " \
           f"{last}" in status(s)
    js = {m["name"]: m for m in json.loads(status(s, "--json"))["model_spaces"]}
    assert js["v2"]["reembed"]["state"] == "following" and js["v1"]["reembed"] is None
    # A clean restart keeps the state too.
    s.restart()
    db3 = client(s)
    assert db3.get_model_space("v2").reembed.state == "following"
    db3.close()
    db2.close()


def test_reembed_bad_inputs(spaces, tmp_path):
    s, db, pngs, labels = spaces
    db.add_image("a", pngs[0], "v1", attributes={"label": 1})
    db.create_model_space("plain", "fmnist_mlp.pt", input=INPUT, output_dim=32)

    def create(name="v2", **kw):
        args = dict(input=INPUT, output_dim=64)
        args.update(kw)
        return lambda: db.create_model_space(name, "fmnist_cnn.pt", **args)

    expect(InvalidArgument, create(reembed_from="nope"), "spec.reembed_from",
           'model space "nope" does not exist')
    expect(InvalidArgument, create(reembed_from="bad name!"), "spec.reembed_from")
    expect(InvalidArgument, create(name="v1x", reembed_from="v1x"), "spec.reembed_from",
           "itself")
    expect(FailedPrecondition, create(reembed_from="plain"), "spec.reembed_from",
           "does not keep its inputs")
    expect(InvalidArgument, create(reembed_from="v1", permanent_attributes={"color": "string"}),
           "spec.permanent_attributes[0]", '"color"')
    expect(InvalidArgument, create(reembed_from="v1", permanent_attributes={"label": "string"}),
           "spec.permanent_attributes[0]", '"label"')
    expect(InvalidArgument, create(reembed_from="v1", input=ImageInput(28, 28, 1),
                                   output_dim=0), "spec.output_dim")
    # None of these left a space behind.
    assert sorted(m.name for m in db.list_model_spaces()) == ["plain", "v1"]
    # The reserved attribute: refused in adds, whether the space keeps inputs or not.
    for space in ("v1", "plain"):
        expect(InvalidArgument, lambda: db.add_image("b", pngs[1], space,
                                                     attributes={"label": 1,
                                                                 "hilbert.input": b"x"}),
               'attributes["hilbert.input"]', "reserved")
    assert db.get("v1@space", ["b"]) == [None]
    # wait_reembedded on a space that does not re-embed says so.
    with pytest.raises(FailedPrecondition):
        db.wait_reembedded("plain")
    with pytest.raises(NotFound):
        db.wait_reembedded("nope")
