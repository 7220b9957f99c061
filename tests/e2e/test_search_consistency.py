"""Search under concurrent writes: every hit must be self-consistent (its distance is the
distance to the vector and attributes returned with it) and a result has fewer than k hits only
when the splits hold fewer points. Here 200 points always exist while other points are deleted,
re-added and replaced, so a k=150 search must always return exactly 150 consistent hits.

A correct server passes this every time; a server that reads the hit records after releasing
the index (so that a commit can land between the two) fails it with high probability within a
few seconds of two writer and two searcher processes."""
import multiprocessing as mp

import numpy as np

import race_workers as rw
from helpers import INT64, L2, create_index, create_source, get_source, index_spec, point, \
    source_spec, upload

SECONDS = 4.0


def test_search_consistent_under_concurrent_writes(make_server, tmp_path):
    cfg = tmp_path / "nosync.yaml"
    cfg.write_text("storage:\n  sync: false\n")  # more commits per second: more overlap
    s = make_server(config=cfg)
    rng = np.random.default_rng(0)
    create_source(s, source_spec("r", rw.DIM, [("id", INT64)], ["id"]))
    create_index(s, index_spec("r-l2", "r", L2))
    upload(s, "r", [point(rng.standard_normal(rw.DIM), {"id": i}) for i in range(rw.STABLE)])
    upload(s, "r", [point(rng.standard_normal(rw.DIM), {"id": 1000 + i})
                    for i in range(rw.CHURN)])
    ctx = mp.get_context("spawn")
    with ctx.Pool(4) as pool:
        writers = [pool.apply_async(rw.writer, (s.port, kind, SECONDS))
                   for kind in ("churn", "replace")]
        searchers = [pool.apply_async(rw.searcher, (s.port, seed, SECONDS))
                     for seed in (10, 11)]
        uploads = [w.get(timeout=300) for w in writers]
        found = [x.get(timeout=300) for x in searchers]
    assert all(u > 0 for u in uploads), uploads
    searches = sum(f["searches"] for f in found)
    short = sum(f["short"] for f in found)
    inconsistent = sum(f["inconsistent"] for f in found)
    assert searches > 0
    examples = [f[k] for k in ("short_example", "inconsistent_example") for f in found
                if f[k]]
    assert short == 0 and inconsistent == 0, (
        f"{searches} searches during {sum(uploads)} uploads: {short} results with fewer than "
        f"k={rw.K} hits (>= {rw.STABLE} points always exist), {inconsistent} hits whose "
        f"distance does not match their returned vector; e.g. {examples[:4]}")
    # The writers are done: the final state is consistent.
    assert get_source(s, "r").point_count in (rw.STABLE, rw.STABLE + rw.CHURN)
