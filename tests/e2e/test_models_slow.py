"""A slow model must not hold up the rest of the server, and concurrent calls to one model are
batched.

The fixture model slow.pt (model_fixtures/make_models.py) spends about 300 ms in a loop of
matmuls per forward pass, whatever the batch size. More client threads than models.rpc_threads
call AddImage and Embed on it without pause, keeping the inference pool busy, while the main
thread searches and uploads on an ordinary data source: every call must succeed, and the median
search and upload latency must stay far below one forward pass. Batching is counted: the
server's metrics say how many forward passes ran for how many items.

No bound is a fixed time: the latency bound is a multiple of one forward pass as the test
measures it on the machine it runs on, with a wide margin, so a faster or a busier machine
changes the figures but not the verdict.
"""
from __future__ import annotations

import statistics
import threading
import time
import urllib.request
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
                               "max_wait_us": 2000},
                       extra="metrics:\n  listen: 127.0.0.1:0\n")
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


def inference_counts(server) -> tuple:
    """(forward passes, items) the server has run, from its metrics page."""
    from prometheus_client.parser import text_string_to_metric_families
    from ann_helpers import wait_log
    port = int(wait_log(server, r"metrics served at http://127\.0\.0\.1:(\d+)/").group(1))
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=60) as r:
        text = r.read().decode()
    got, buckets = {}, []
    for fam in text_string_to_metric_families(text):
        for smp in fam.samples:
            if smp.labels.get("model_space") == "slow":
                if smp.name.endswith("_bucket"):
                    buckets.append((float(smp.labels["le"]), smp.value))
                got["slow" + smp.name[len("hilbert_inference_batch_size"):]] = smp.value
            else:
                got[smp.name] = smp.value
    # The slow space is the only model in use: its batch-size histogram has every pass, in
    # cumulative buckets, and its sum is the items; nothing is queued between bursts.
    assert got["slow_count"] == got["hilbert_inference_passes_total"], got
    assert got["slow_sum"] == got["hilbert_inference_items_total"], got
    buckets.sort()
    assert [v for _, v in buckets] == sorted(v for _, v in buckets), buckets
    assert buckets[-1] == (float("inf"), got["slow_count"]), buckets
    assert got["hilbert_inference_queued_requests"] == 0, got
    return got["hilbert_inference_passes_total"], got["hilbert_inference_items_total"]


def test_concurrent_calls_are_batched(slow_server):
    """8 concurrent calls (= models.rpc_threads, so all are served at once) share forward passes:
    while the 2 inference threads run a pass of the slow model, the calls that arrive meanwhile
    queue and go into the next pass together. Counted, not timed: the server's own counters
    (forward passes, items) must show fewer passes than items. A burst whose calls happen to
    arrive one after another (a very busy machine) proves nothing, so up to 5 are tried."""
    s, db, models = slow_server
    n = 8
    burst(db, n)  # warm-up: new batch sizes
    tries = []
    for _ in range(5):
        p0, i0 = inference_counts(s)
        total, lat, vecs = burst(db, n)
        p1, i1 = inference_counts(s)
        tries.append((p1 - p0, i1 - i0))
        if p1 - p0 < i1 - i0:
            break
    print(f"(passes, items) per burst of {n}: {tries}; latencies of the last "
          f"{sorted(round(x * 1000) for x in lat)} ms")
    passes, items = tries[-1]
    assert items == n, tries  # one item per call, each counted once
    assert passes < items, f"no burst of {n} concurrent Embed calls was batched: {tries}"
    # Batching gives every item its own result.
    for i, v in enumerate(vecs):
        alone = db.embed(image=IMAGES[i % len(IMAGES)], model_spaces="slow")["slow"]
        # (a batch may take other kernels than a single item: equal up to float rounding)
        np.testing.assert_allclose(v, alone, rtol=1e-4, atol=1e-4)


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
