"""Aliases end to end (Catalog.UpdateAliases / ListAliases), through the Python client.

Index aliases: two indices on one data source (L2 and inner product, so that their answers
differ), an alias on the first; four threads search through the alias while the test switches it
back and forth: no search fails and each answer is exactly one of the two indices' answers, and a
search that starts after a switch returns sees the new target. Aliases survive a restart. Every
bad action gets its status and the field it names (actions[i].create_alias.index, ...), and a
batch with one bad action changes nothing. An aliased index cannot be dropped.

Model-space aliases over the bundled Fashion-MNIST models: add, find (also with min_seq keyed by
the alias), embed and GetModelSpace through an alias; a switch moves them to the other model
while finds run in threads; collisions with model-space names both ways; an aliased space (or a
space whose index is aliased) cannot be dropped; the alias survives a restart.
"""
from __future__ import annotations

import threading

import numpy as np
import pytest

from hilbertdb import (AlreadyExists, CreateAlias, DeleteAlias, FailedPrecondition, Flat,
                       ImageInput, InvalidArgument, NotFound, Point, SwitchAlias)
from hilbertdb.datasets import load_fashion_mnist
from hilbert.v1 import catalog_pb2 as C
from hilbert.v1 import types_pb2 as T
from model_fixtures import (FMNIST_MEAN, FMNIST_STD, MODELS_DIR, client, expect,
                            fmnist_spaces, write_config)

SWITCHES = 40       # back-and-forth switches while the searches run
THREADS = 4
MIN_SEARCHES = 25   # each thread goes on until the switches are done and it made this many


def answer(hits):
    """A search's answer as comparable data: per query, the (id, distance) pairs."""
    return [[(h.attributes["id"], round(h.distance, 4)) for h in q] for q in hits]


# ------------------------------------------------------------------------ index aliases

@pytest.fixture
def two_indices(make_server):
    """A server with data source docs@1 (40 points of dim 4, of varied norms) and two flat
    indices on it: docs-l2@1 (L2) and docs-ip@1 (inner product)."""
    server = make_server()
    db = client(server)
    rng = np.random.default_rng(7)
    x = (rng.standard_normal((40, 4)) * rng.uniform(0.2, 3.0, (40, 1))).astype(np.float32)
    db.create_data_source("docs", dimension=4, permanent_attributes={"id": "int64"},
                          id_attributes=["id"])
    db.create_index("docs-l2", data_source="docs", algorithm=Flat(), metric="l2")
    db.create_index("docs-ip", data_source="docs", algorithm=Flat(), metric="inner_product")
    up = db.upload("docs", [Point(x[i], {"id": i}) for i in range(len(x))])
    for ix in ("docs-l2", "docs-ip"):
        db.wait_for_index(ix)
    queries = rng.standard_normal((3, 4)).astype(np.float32)
    yield server, db, queries, up
    db.close()


def test_index_alias_switch_under_concurrent_searches(two_indices):
    server, db, queries, up = two_indices
    want = {ix: answer(db.search(ix, queries, k=5, min_seq=up)) for ix in ("docs-l2", "docs-ip")}
    assert want["docs-l2"] != want["docs-ip"]  # else the test could not tell them apart
    aliases = db.create_alias("docs-live", index="docs-l2@1")
    assert [(a.name, a.kind, a.target) for a in aliases] == [("docs-live", "index", "docs-l2@1")]
    assert answer(db.search("docs-live@", queries, k=5)) == want["docs-l2"]
    assert db.get_index(("docs-live", "")).ref == "docs-l2@1"

    done = threading.Event()
    seen = [{"docs-l2": 0, "docs-ip": 0} for _ in range(THREADS)]
    failures = []

    def searcher(t):
        n = 0
        while not done.is_set() or n < MIN_SEARCHES:
            try:
                got = answer(db.search("docs-live@", queries, k=5))
            except Exception as e:  # noqa: BLE001 - every failure counts
                failures.append(repr(e))
                return
            match = [ix for ix, w in want.items() if w == got]
            if len(match) != 1:
                failures.append(f"an answer from neither index: {got}")
                return
            seen[t][match[0]] += 1
            n += 1

    threads = [threading.Thread(target=searcher, args=(t,)) for t in range(THREADS)]
    for t in threads:
        t.start()
    try:
        for i in range(SWITCHES):
            target = "docs-ip" if i % 2 == 0 else "docs-l2"
            db.switch_alias("docs-live", index=f"{target}@1")
            # A search that starts after the switch returned sees the new target.
            assert answer(db.search("docs-live@", queries, k=5)) == want[target]
    finally:
        done.set()
        for t in threads:
            t.join()
    assert failures == []
    assert all(sum(s.values()) >= MIN_SEARCHES for s in seen), seen
    # SWITCHES is even: the alias is back on docs-l2.
    assert [a.target for a in db.list_aliases()] == ["docs-l2@1"]

    # The aliases survive a restart.
    db.update_aliases([CreateAlias("docs-other", index="docs-ip@1")])
    server.restart()
    db2 = client(server)
    try:
        assert [(a.name, a.target) for a in db2.list_aliases()] == [
            ("docs-live", "docs-l2@1"), ("docs-other", "docs-ip@1")]
        assert answer(db2.search("docs-live@", queries, k=5, min_seq=up)) == want["docs-l2"]
        assert answer(db2.search("docs-other@", queries, k=5, min_seq=up)) == want["docs-ip"]
    finally:
        db2.close()


def test_index_alias_bad_inputs(two_indices):
    server, db, queries, up = two_indices
    db.create_alias("live", index="docs-l2@1")

    # Targets and aliases that do not exist.
    expect(NotFound, lambda: db.create_alias("x", index="missing@1"),
           "actions[0].create_alias.index:", "missing@1 does not exist")
    expect(NotFound, lambda: db.create_alias("x", index="docs-l2@2"),
           "actions[0].create_alias.index:")
    expect(NotFound, lambda: db.switch_alias("nope", index="docs-ip@1"),
           "actions[0].switch_alias.name:", '"nope" does not exist')
    expect(NotFound, lambda: db.switch_alias("live", index="gone@1"),
           "actions[0].switch_alias.index:")
    expect(NotFound, lambda: db.delete_alias("nope"), "actions[0].delete_alias.name:")
    expect(NotFound, lambda: db.delete_alias("live", kind="model_space"),
           "actions[0].delete_alias.name:", "model-space alias")
    expect(NotFound, lambda: db.search("nope@", queries, k=1), 'no index alias "nope"')
    expect(NotFound, lambda: db.get_index(("nope", "")), 'no index alias "nope"')
    # Malformed actions.
    expect(InvalidArgument, lambda: db.create_alias("", index="docs-l2@1"),
           "actions[0].create_alias.name:")
    expect(InvalidArgument, lambda: db.create_alias("a@b", index="docs-l2@1"),
           "actions[0].create_alias.name:")
    expect(InvalidArgument, lambda: db.create_alias("y", index=("docs-l2", "")),
           "actions[0].create_alias.index.version:")
    expect(InvalidArgument, lambda: db.create_alias("y"), "actions[0].create_alias.index:",
           "a target is required")
    expect(InvalidArgument, lambda: db.create_alias("y", index="docs-l2@1", model_space="m"),
           "actions[0].create_alias:", "not both")
    expect(InvalidArgument, lambda: db.update_aliases([]), "actions: at least one")
    expect(InvalidArgument, lambda: db.update_aliases([C.AliasAction()]), "actions[0]:")
    bad_kind = C.AliasAction(create_alias=C.Alias(name="y", kind=C.ALIAS_KIND_MODEL_SPACE,
                                                  index=T.IndexRef(name="docs-l2", version="1")))
    expect(InvalidArgument, lambda: db.update_aliases([bad_kind]), "actions[0].create_alias.kind:")
    no_kind = C.AliasAction(delete_alias=C.Alias(name="live"))
    expect(InvalidArgument, lambda: db.update_aliases([no_kind]), "actions[0].delete_alias.kind:")
    # Duplicates.
    expect(AlreadyExists, lambda: db.create_alias("live", index="docs-ip@1"),
           "actions[0].create_alias.name:", '"live" already exists')
    expect(AlreadyExists, lambda: db.update_aliases([CreateAlias("z", index="docs-ip@1"),
                                                     CreateAlias("z", index="docs-l2@1")]),
           "actions[1].create_alias.name:")

    # All or nothing: good actions before a bad one are not applied.
    expect(NotFound, lambda: db.update_aliases([SwitchAlias("live", index="docs-ip@1"),
                                                CreateAlias("w", index="docs-ip@1"),
                                                DeleteAlias("nope")]),
           "actions[2].delete_alias.name:")
    assert [(a.name, a.target) for a in db.list_aliases()] == [("live", "docs-l2@1")]
    assert answer(db.search("live@", queries, k=5)) == answer(db.search("docs-l2", queries, k=5))

    # Index alias names share nothing with index names: an alias may be called like an index.
    db.create_alias("docs-ip", index="docs-l2@1")
    assert db.get_index("docs-ip").ref == "docs-ip@1"
    assert db.get_index("docs-ip@").ref == "docs-l2@1"

    # The target of an alias cannot be dropped; free, it can.
    expect(FailedPrecondition, lambda: db.drop_index("docs-l2"), "index alias \"")
    expect(InvalidArgument, lambda: db.drop_index(("live", "")), "index.version")
    db.update_aliases([DeleteAlias("live"), DeleteAlias("docs-ip")])
    assert db.list_aliases() == []
    db.drop_index("docs-l2")
    expect(NotFound, lambda: db.search("live@", queries, k=1), 'no index alias "live"')


# ------------------------------------------------------------------------ model-space aliases

def require_bundled_models() -> None:
    missing = [n for n in ("fmnist_cnn.pt", "fmnist_mlp.pt") if not (MODELS_DIR / n).is_file()]
    if missing:
        pytest.fail(f"bundled model(s) {', '.join(missing)} missing from {MODELS_DIR}: train them "
                    f"with `/usr/bin/python3 models/train.py` (see models/README.md)",
                    pytrace=False)


def ids(hits):
    return [h.attributes["id"] for h in hits]


def test_model_space_alias(make_server, tmp_path):
    require_bundled_models()
    images, _ = load_fashion_mnist("test")
    server = make_server(config=write_config(tmp_path / "hilbertd.yaml", fmnist_spaces()))
    db = client(server)
    try:
        db.create_alias("fm", model_space="fmnist_cnn")
        # Writes and reads through the alias go to the target; replies name the target.
        seqs = {}
        for i in range(30):
            seqs = db.add_image(f"img-{i}", images[i], model_spaces="fm")
            assert list(seqs) == ["fmnist_cnn"]
        for i in range(30):
            mlp = db.add_image(f"img-{i}", images[i], model_spaces="fmnist_mlp")
        assert db.get_model_space("fm").name == "fmnist_cnn"
        assert db.embed(image=images[0], model_spaces="fm")["fmnist_cnn"].shape == (64,)
        query = images[100]
        want = {s: ids(db.find_similar_image(query, model_spaces=s, k=5,
                                             min_seq={"fm": seqs["fmnist_cnn"],
                                                      "fmnist_mlp": mlp["fmnist_mlp"]})[s])
                for s in ("fmnist_cnn", "fmnist_mlp")}
        got = db.find_similar_image(query, model_spaces="fm", k=5,
                                    min_seq={"fm": seqs["fmnist_cnn"]})
        assert list(got) == ["fmnist_cnn"] and ids(got["fmnist_cnn"]) == want["fmnist_cnn"]
        by_id = db.find_similar_by_id("img-3", model_spaces="fm", k=3)
        assert list(by_id) == ["fmnist_cnn"] and "img-3" not in ids(by_id["fmnist_cnn"])

        # Switches while finds run: each find answers from one space, none fails.
        done = threading.Event()
        failures, counts = [], [0] * THREADS

        def finder(t):
            while not done.is_set() or counts[t] < 5:
                try:
                    res = db.find_similar_image(query, model_spaces="fm", k=5)
                except Exception as e:  # noqa: BLE001
                    failures.append(repr(e))
                    return
                (name, hits), = res.items()
                if ids(hits) != want[name]:
                    failures.append(f"{name}: {ids(hits)} != {want[name]}")
                    return
                counts[t] += 1

        threads = [threading.Thread(target=finder, args=(t,)) for t in range(THREADS)]
        for t in threads:
            t.start()
        try:
            for i in range(10):
                target = "fmnist_mlp" if i % 2 == 0 else "fmnist_cnn"
                db.switch_alias("fm", model_space=target)
                assert list(db.find_similar_image(query, model_spaces="fm", k=5)) == [target]
        finally:
            done.set()
            for t in threads:
                t.join()
        assert failures == [] and min(counts) >= 5, (failures, counts)
        db.switch_alias("fm", model_space="fmnist_mlp")
        assert db.embed(image=images[0], model_spaces=["fm"])["fmnist_mlp"].shape == (32,)
        removed = db.remove_image("img-0", model_spaces="fm")
        assert list(removed) == ["fmnist_mlp"]

        # Bad inputs.
        expect(AlreadyExists, lambda: db.create_alias("fmnist_cnn", model_space="fmnist_mlp"),
               "actions[0].create_alias.name:", "is the name of a model space")
        expect(NotFound, lambda: db.create_alias("fm2", model_space="nope"),
               "actions[0].create_alias.model_space:", '"nope" does not exist')
        expect(NotFound, lambda: db.switch_alias("fm", model_space="nope"),
               "actions[0].switch_alias.model_space:")
        expect(NotFound, lambda: db.switch_alias("fm2", model_space="fmnist_cnn"),
               "actions[0].switch_alias.name:", 'model-space alias "fm2" does not exist')
        expect(AlreadyExists, lambda: db.create_alias("fm", model_space="fmnist_cnn"),
               "actions[0].create_alias.name:", "already exists")
        expect(InvalidArgument, lambda: db.create_alias("", model_space="fmnist_cnn"),
               "actions[0].create_alias.name:")
        expect(InvalidArgument, lambda: db.find_similar_image(
            query, model_spaces=["fmnist_mlp", "fm"], k=1), "model_spaces[1]:", "fmnist_mlp")
        expect(NotFound, lambda: db.find_similar_image(query, model_spaces="nope", k=1),
               "model_spaces[0]:")
        expect(AlreadyExists, lambda: db.create_model_space(
            "fm", "fmnist_cnn.pt", input=ImageInput(28, 28, 1, mean=[FMNIST_MEAN],
                                                    std=[FMNIST_STD]),
            output_dim=64), "spec.name:", "model-space alias")
        expect(FailedPrecondition, lambda: db.drop_model_space("fmnist_mlp"),
               'model-space alias "fm"')
        expect(NotFound, lambda: db.drop_model_space("fm"), '"fm" does not exist')
        # An index alias on a space's index holds the space too.
        db.create_alias("cnn-index", index="fmnist_cnn@space")
        expect(FailedPrecondition, lambda: db.drop_model_space("fmnist_cnn"),
               'index alias "cnn-index"')
        assert [(a.name, a.kind, a.target) for a in db.list_aliases()] == [
            ("cnn-index", "index", "fmnist_cnn@space"), ("fm", "model_space", "fmnist_mlp")]
    finally:
        db.close()

    # The aliases survive a restart.
    server.restart()
    db = client(server)
    try:
        assert [(a.name, a.target) for a in db.list_aliases()] == [
            ("cnn-index", "fmnist_cnn@space"), ("fm", "fmnist_mlp")]
        assert db.get_model_space("fm").name == "fmnist_mlp"
        db.update_aliases([DeleteAlias("fm", kind="model_space"), DeleteAlias("cnn-index")])
        expect(NotFound, lambda: db.get_model_space("fm"), '"fm" does not exist')
    finally:
        db.close()
