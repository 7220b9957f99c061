"""A slow model must not hold up the rest of the server, and concurrent calls to one model are
batched.

The fixture model slow.pt (model_fixtures/make_models.py) spends about 300 ms in a loop of
matmuls per forward pass, whatever the batch size. More client threads than models.rpc_threads
call AddImage and Embed on it without pause, keeping the inference pool busy, while the main
thread searches and uploads on an ordinary data source: every call must succeed, and the median
search and upload latency must stay far below one forward pass. Batching is inferred from
timing only: N concurrent Embed calls finish in much less than N forward passes.

No bound is a fixed time: each is a multiple of what the test measures on the machine it runs
on (one forward pass alone, one cheap call), with wide margins, so a faster or a busier machine
changes the figures but not the verdict.
"""
from __future__ import annotations

import statistics
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from hilbertdb import Flat, Point
from model_fixtures import SANITIZED, build_models, client, image_space, png_bytes, write_config

RNG = np.random.default_rng(7)
IMAGES = [png_bytes((RNG.random((28, 28)) * 255).astype(np.uint8)) for _ in range(16)]
DIM = 32
LOAD_THREADS = 10          # more than models.rpc_threads (8)
LOAD_SECONDS = 4.0 if SANITIZED else 3.0


@pytest.fixture
def slow_server(make_server, tmp_path, tmp_path_factory):
    models = build_models(tmp_path_factory.mktemp("torch_models"))
    cfg = write_config(tmp_path / "slow.yaml",
                       [image_space("slow", models["dir"] / "slow.pt", 8)],
                       models={"rpc_threads": 8, "inference_threads": 2, "max_batch": 32,
                               "max_wait_us": 2000})
    s = make_server(config=cfg)
    db = client(s)
    db.create_data_source("plain", dimension=DIM, permanent_attributes={"id": "int64"},
                          id_attributes=["id"])
    db.create_index("plain-flat", data_source="plain", algorithm=Flat(), metric="l2")
    x = RNG.random((5000, DIM), dtype=np.float32)
    db.upload("plain", [Point(x[i], {"id": i}) for i in range(len(x))])
    db.wait_for_index("plain-flat", timeout=300)
    yield s, db, models
    db.close()


def single_forward_seconds(db) -> float:
    """Median wall time of one Embed on the slow model, alone (after a warm-up: TorchScript's
    profiling executor optimises the graph over the first runs)."""
    times = []
    for i in range(5):
        t = time.perf_counter()
        db.embed(image=IMAGES[i], model_spaces="slow")
        times.append(time.perf_counter() - t)
    return statistics.median(times[2:])


def cheap_call_seconds(db) -> float:
    """Median wall time of a call that does next to nothing (a catalog read): the overhead that
    every timing below carries."""
    times = []
    for _ in range(10):
        t = time.perf_counter()
        db.get_data_source("plain")
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def burst(db, n: int):
    """n Embed calls released at once from n threads: (wall time, per-call latencies, vectors)."""
    barrier = threading.Barrier(n)

    def call(i):
        barrier.wait()
        t = time.perf_counter()
        v = db.embed(image=IMAGES[i % len(IMAGES)], model_spaces="slow")["slow"]
        return time.perf_counter() - t, v

    t0 = time.perf_counter()
    with ThreadPoolExecutor(n) as ex:
        results = list(ex.map(call, range(n)))
    return time.perf_counter() - t0, [r[0] for r in results], [r[1] for r in results]


def test_concurrent_calls_are_batched(slow_server):
    """8 concurrent calls (= models.rpc_threads, so all are served at once) share one or two
    forward passes: a batch on each of the 2 inference threads at most. Unbatched they would
    take 4 rounds of 2 parallel passes. The bound, 3 forward times, sits between the two."""
    _, db, models = slow_server
    single = single_forward_seconds(db)
    cheap = cheap_call_seconds(db)
    # The argument below needs a forward pass that dwarfs a call's overhead.
    assert single > 10 * cheap, (f"the slow model is not slow next to a call "
                                 f"({single * 1000:.1f} ms vs {cheap * 1000:.1f} ms)")
    n = 8
    burst(db, n)  # warm-up: new batch sizes
    runs = [burst(db, n) for _ in range(2)]
    total, lat, vecs = min(runs, key=lambda r: r[0])
    print(f"single forward {single * 1000:.0f} ms (script measured "
          f"{models['slow_forward_ms']} ms); {n} concurrent calls in "
          f"{[round(r[0] * 1000) for r in runs]} ms; latencies of the best run "
          f"{sorted(round(x * 1000) for x in lat)} ms")
    assert total < 3.0 * single, (
        f"{n} concurrent Embed calls took {total:.2f} s = {total / single:.1f} forward passes "
        f"of {single:.2f} s: not batched (latencies {sorted(round(x, 2) for x in lat)})")
    # Batching gives every item its own result.
    for i, v in enumerate(vecs):
        alone = db.embed(image=IMAGES[i % len(IMAGES)], model_spaces="slow")["slow"]
        np.testing.assert_allclose(v, alone, atol=1e-5)


def test_slow_model_does_not_hold_up_searches_and_uploads(slow_server):
    _, db, _ = slow_server
    # Baseline latencies without load.
    q = RNG.random((1, DIM), dtype=np.float32)
    base = []
    for _ in range(20):
        t = time.perf_counter()
        db.search("plain-flat", q, k=10)
        base.append(time.perf_counter() - t)
    single = single_forward_seconds(db)

    stop = threading.Event()
    done = [0] * LOAD_THREADS
    errors = []

    def load(w: int):
        i = 0
        while not stop.is_set():
            try:
                if i % 2:
                    db.add_image(f"w{w}-{i}", IMAGES[(w + i) % len(IMAGES)], "slow")
                else:
                    db.embed(image=IMAGES[(w + i) % len(IMAGES)], model_spaces="slow")
                done[w] += 1
            except Exception as e:  # noqa: BLE001 - reported below
                errors.append(repr(e))
                return
            i += 1

    workers = [threading.Thread(target=load, args=(w,), daemon=True)
               for w in range(LOAD_THREADS)]
    for t in workers:
        t.start()
    time.sleep(single)  # the pool is busy now
    search_lat, upload_lat = [], []
    next_id = 100000
    deadline = time.monotonic() + LOAD_SECONDS
    try:
        while time.monotonic() < deadline:
            qs = RNG.random((1, DIM), dtype=np.float32)
            t = time.perf_counter()
            hits = db.search("plain-flat", qs, k=10)[0]
            search_lat.append(time.perf_counter() - t)
            assert len(hits) == 10
            if len(search_lat) % 4 == 0:
                t = time.perf_counter()
                up = db.upload("plain", [Point(RNG.random(DIM, dtype=np.float32),
                                               {"id": next_id + j}) for j in range(20)])
                upload_lat.append(time.perf_counter() - t)
                next_id += 20
                assert up.last_seq - up.first_seq == 19
            db.get_data_source("plain")
    finally:
        stop.set()
        for t in workers:
            t.join(timeout=120)
    assert not errors, errors[:5]
    calls = sum(done)
    med_s, med_u = statistics.median(search_lat), statistics.median(upload_lat)
    print(f"forward {single * 1000:.0f} ms; {calls} model calls by {LOAD_THREADS} threads; "
          f"{len(search_lat)} searches: median {med_s * 1000:.1f} ms (unloaded "
          f"{statistics.median(base) * 1000:.1f} ms), p90 "
          f"{np.percentile(search_lat, 90) * 1000:.1f} ms; {len(upload_lat)} uploads: median "
          f"{med_u * 1000:.1f} ms")
    # The model was really busy the whole time: at least one batch per forward time per thread
    # of the pool would be ~2 x LOAD_SECONDS / single; ask for a quarter of that.
    assert calls >= max(4, int(0.5 * LOAD_SECONDS / single)), (calls, single)
    # Far more searches ran than model batches could have allowed if they had waited for them.
    assert len(search_lat) >= 3 * LOAD_SECONDS / single, (len(search_lat), single)
    assert med_s < single / 2, (med_s, single)
    assert med_u < single / 2, (med_u, single)
    # Everything the writers added is there (the space's index followed).
    info = db.get_model_space("slow")
    assert info.point_count > 0 and db.wait_for_index("slow@space", timeout=300)
