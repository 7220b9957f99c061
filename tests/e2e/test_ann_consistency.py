"""Consistency of indices that follow their data source asynchronously: read-your-writes with
Search.min_seq, min_seq validation and its time limit, building a new index while uploads go
on, several indices on one source, and concurrent uploads and searches (which, on the
sanitizer build, is also a race and leak check: the server must exit 0 at the end).
"""
import threading
import time

import grpc
import numpy as np

from ann_helpers import (BUILDING, READY, ann_spec, check_hits_exact, create, run_search,
                         search_req, wait_status, write_config)
from helpers import (INT64, L2, TIMEOUT, check_knn, create_source, expect_status, fmnist,
                     fmnist_points, get_index, get_source, hit_ids, point, source_spec,
                     tombstone, upload, upload_batches, wait_ready)

DIM = 16
K = 10

INDICES = {
    "flat": (L2, "flat", {}),
    "hnsw": (L2, "hnsw", dict(m=16, ef_construction=100)),
    "ivf": (L2, "faiss", dict(factory="IVF8,Flat", nprobe=8, train_size=200)),
    "fhnsw": (L2, "faiss", dict(factory="HNSW16,Flat")),
}


def rows(rng, n):
    return rng.standard_normal((n, DIM)).astype(np.float32)


def make_source(s, name):
    create_source(s, source_spec(name, DIM, [("id", INT64)], ["id"]))


# Tests share one server (module_server: it must still exit 0 at the end, which on the
# sanitizer build also checks for leaks); each test uses its own source and index names.


def test_read_your_writes(module_server):
    """Upload, then search with min_seq = that upload's last_seq: the new, replaced and deleted
    points are always already reflected, on every engine."""
    s = module_server
    rng = np.random.default_rng(7)
    make_source(s, "ryw")
    for name, (metric, algo, params) in INDICES.items():
        create(s, ann_spec("ryw-" + name, "ryw", metric, algo, **params))
    model = {i: v for i, v in enumerate(rows(rng, 300))}
    upload(s, "ryw", [point(v, {"id": i}) for i, v in model.items()])
    next_id = 300
    for it in range(40):
        new = rows(rng, 2)
        ids = [next_id, next_id + 1]
        next_id += 2
        victim = int(rng.choice(sorted(model)))
        replaced = int(rng.choice(sorted(set(model) - {victim})))
        rv = rows(rng, 1)[0]
        gone = model.pop(victim)
        model[replaced] = rv
        r = upload(s, "ryw", [point(new[0], {"id": ids[0]}), tombstone({"id": victim}),
                              point(rv, {"id": replaced}), point(new[1], {"id": ids[1]})])
        model[ids[0]], model[ids[1]] = new[0], new[1]
        q = np.stack([new[0], new[1], rv, gone])
        for name in INDICES:
            resp = run_search(s, "ryw-" + name, q, 1, min_seq=r.last_seq, retrieve_vectors=True)
            assert resp.applied_seq >= r.last_seq, (name, resp.applied_seq, r.last_seq)
            got = [hit_ids(res)[0] for res in resp.results]
            assert got[:3] == [ids[0], ids[1], replaced], (it, name, got)
            assert got[3] != victim, (it, name, "deleted point returned")
            check_hits_exact(resp, q, L2, model, 1, ctx=f"iteration {it} {name}")


def test_min_seq_past_the_last_seq_is_invalid(module_server):
    s = module_server
    make_source(s, "empty")
    create(s, ann_spec("e", "empty", L2, "hnsw"))
    make_source(s, "one")
    create(s, ann_spec("h", "one", L2, "hnsw"))
    r = upload(s, "one", [point(np.ones(DIM), {"id": 1})])
    for name, min_seq in (("h", r.last_seq + 1), ("h", 2 ** 63), ("e", 1)):
        with expect_status(grpc.StatusCode.INVALID_ARGUMENT, "min_seq", str(min_seq)):
            s.search.Search(search_req(name, np.ones((1, DIM)), 1, min_seq=min_seq),
                            timeout=TIMEOUT)
    # The last seq itself is fine, and so is 0 (search what is applied).
    for min_seq in (r.last_seq, 0):
        resp = s.search.Search(search_req("h", np.ones((1, DIM)), 1, min_seq=min_seq),
                               timeout=TIMEOUT)
        assert len(resp.results) == 1
    wait_ready(s, "h")
    resp = s.search.Search(search_req("e", np.ones((1, DIM)), 1, min_seq=0), timeout=TIMEOUT)
    assert len(resp.results[0].hits) == 0


def test_min_seq_wait_is_limited_by_max_wait_ms(make_server, tmp_path):
    """While a new HNSW index is still BUILDING (6000 Fashion-MNIST vectors, ef_construction
    400: a build of several seconds here, far longer on the sanitizer build, and well over the
    300 ms even on a much faster machine), a search without min_seq gets UNAVAILABLE and one
    with min_seq waits limits.max_wait_ms (300 ms here) and gets DEADLINE_EXCEEDED naming
    min_seq, although the client's own deadline is far longer. Once the index is READY the
    same search works."""
    # One build thread: the build's length does not shrink with the machine's cores.
    cfg = write_config(tmp_path / "wait.yaml",
                       "limits:\n  max_wait_ms: 300\nindex:\n  build_threads: 1\n")
    s = make_server(config=cfg)
    x, y = fmnist("train", 6000)
    create_source(s, source_spec("fm", 784, [("id", INT64), ("label", INT64)], ["id"]))
    upload_batches(s, "fm", fmnist_points(x, y, range(6000), payload=False), 3000)
    last = get_source(s, "fm").last_seq
    info = create(s, ann_spec("slow", "fm", L2, "hnsw", m=16, ef_construction=400))
    assert info.status.state == BUILDING, info.status
    with expect_status(grpc.StatusCode.UNAVAILABLE, "slow@1", "not ready"):
        s.search.Search(search_req("slow", x[:1], 1, min_seq=0), timeout=TIMEOUT)
    t = time.monotonic()
    with expect_status(grpc.StatusCode.DEADLINE_EXCEEDED, "min_seq", "slow@1"):
        s.search.Search(search_req("slow", x[:1], 1, min_seq=last), timeout=TIMEOUT)
    waited = time.monotonic() - t
    assert waited >= 0.25, f"gave up after {waited:.3f} s, before limits.max_wait_ms"
    assert waited < 0.3 + 10.0, waited
    wait_status(s, "slow", lambda st: st.state == READY, "READY", timeout=300)
    resp = s.search.Search(search_req("slow", x[:3], 1, min_seq=last), timeout=TIMEOUT)
    assert [hit_ids(r)[0] for r in resp.results] == [0, 1, 2]


def test_new_index_builds_while_uploads_continue(module_server):
    """CreateIndex on a non-empty source returns BUILDING; meanwhile a thread keeps uploading
    (new points, replacements, deletes). Searches during the build get UNAVAILABLE or correct
    results; in the end every index holds exactly the source's points."""
    s = module_server
    rng = np.random.default_rng(11)
    make_source(s, "bld")
    base = rows(rng, 6000)
    upload_batches(s, "bld", [point(v, {"id": i}) for i, v in enumerate(base)], 2000)
    model = {i: v for i, v in enumerate(base)}
    lock = threading.Lock()
    errors = []
    done = threading.Event()

    def uploader():
        try:
            wrng = np.random.default_rng(12)
            nid = 10 ** 5
            for _ in range(60):
                new = rows(wrng, 20)
                rep = rows(wrng, 5)
                with lock:
                    live = sorted(model)
                rep_ids = [int(i) for i in wrng.choice(live, 5, replace=False)]
                del_ids = [int(i) for i in wrng.choice(sorted(set(live) - set(rep_ids)), 5,
                                                       replace=False)]
                pts = [point(v, {"id": nid + j}) for j, v in enumerate(new)]
                pts += [point(v, {"id": i}) for i, v in zip(rep_ids, rep)]
                pts += [tombstone({"id": i}) for i in del_ids]
                upload(s, "bld", pts)
                with lock:
                    for j, v in enumerate(new):
                        model[nid + j] = v
                    for i, v in zip(rep_ids, rep):
                        model[i] = v
                    for i in del_ids:
                        del model[i]
                nid += 20
        except Exception as e:  # noqa: BLE001
            errors.append(e)
        finally:
            done.set()

    th = threading.Thread(target=uploader)
    th.start()
    try:
        states = {}
        for name in ("hnsw", "ivf", "flat"):
            metric, algo, params = INDICES[name]
            info = create(s, ann_spec("bld-" + name, "bld", metric, algo, **params))
            states[name] = info.status.state
            assert info.status.state in (BUILDING, READY), info.status
        assert states["hnsw"] == BUILDING, states  # 6000+ points to build from
        q = rows(rng, 5)
        served, unavailable = 0, 0
        while not done.is_set():
            for name in ("bld-hnsw", "bld-ivf", "bld-flat"):
                try:
                    resp = s.search.Search(search_req(name, q, K, retrieve_vectors=True),
                                           timeout=TIMEOUT)
                except grpc.RpcError as e:
                    assert e.code() == grpc.StatusCode.UNAVAILABLE, (name, e.code(), e.details())
                    assert "not ready" in e.details(), e.details()
                    unavailable += 1
                    continue
                served += 1
                for qi, res in enumerate(resp.results):
                    assert len(res.hits) == K
                    for h in res.hits:  # a consistent hit: its distance fits its vector
                        v = np.asarray(h.vector.dense.values, dtype=np.float64)
                        d = float(((v - q[qi].astype(np.float64)) ** 2).sum())
                        assert abs(h.distance - d) <= 1e-4 + 1e-4 * d, (name, h.distance, d)
            time.sleep(0.01)
    finally:
        th.join()
    assert not errors, errors
    print(f"\nduring the build: {served} searches served, {unavailable} UNAVAILABLE")
    src = get_source(s, "bld")
    assert src.point_count == len(model)
    ids = np.array(sorted(model))
    mat = np.stack([model[i] for i in ids])
    for name in ("bld-hnsw", "bld-ivf", "bld-flat"):
        r = run_search(s, name, q, K, min_seq=src.last_seq, retrieve_vectors=True)
        check_hits_exact(r, q, L2, model, K, ctx=name)
        st = wait_ready(s, name).status
        assert st.size == src.point_count and st.applied_seq == src.last_seq, (name, st)
        assert st.lag_entries == 0 and st.source_last_seq == src.last_seq, st
    check_knn(run_search(s, "bld-flat", q, K), mat, ids, q, L2, K)


def test_several_indices_on_one_source_agree_on_size(module_server):
    s = module_server
    rng = np.random.default_rng(5)
    make_source(s, "sev")
    for name, (metric, algo, params) in INDICES.items():
        create(s, ann_spec("sev-" + name, "sev", metric, algo, **params))
    live = set()
    for step in range(12):
        n = int(rng.integers(1, 200))
        start = step * 200
        pts = [point(v, {"id": start + j}) for j, v in enumerate(rows(rng, n))]
        live |= {start + j for j in range(n)}
        if live:
            dels = rng.choice(sorted(live), size=min(len(live) // 5, 40), replace=False)
            pts += [tombstone({"id": int(i)}) for i in dels]
            live -= {int(i) for i in dels}
            reps = rng.choice(sorted(live), size=min(len(live), 10), replace=False)
            pts += [point(v, {"id": int(i)}) for i, v in zip(reps, rows(rng, len(reps)))]
        upload(s, "sev", pts)
        if step == 5:
            # One more index joins half-way and must catch up like the others.
            create(s, ann_spec("sev-late", "sev", L2, "hnsw", m=8, ef_construction=32))
    src = get_source(s, "sev")
    assert src.point_count == len(live)
    names = ["sev-" + n for n in list(INDICES) + ["late"]]
    for name in names:
        st = wait_ready(s, name).status
        assert st.size == src.point_count, (name, st.size, src.point_count)
        assert st.applied_seq == src.last_seq == st.source_last_seq and st.lag_entries == 0, st
        assert st.lag_seconds == 0, st
    assert sorted(ref.name for ref in get_source(s, "sev").indices) == sorted(names)


def test_concurrent_uploads_and_searches(module_server):
    """Two uploader threads (one churning ids in and out, one replacing vectors) and three
    searcher threads (HNSW and flat, with and without min_seq) for a few seconds: no RPC fails,
    every hit is consistent (distance = exact distance of its returned vector) and results are
    never short (200 ids always exist, k = 20)."""
    s = module_server
    rng = np.random.default_rng(3)
    make_source(s, "cc")
    for name in ("hnsw", "flat"):
        metric, algo, params = INDICES[name]
        create(s, ann_spec("cc-" + name, "cc", metric, algo, **params))
    first = upload(s, "cc", [point(v, {"id": i}) for i, v in enumerate(rows(rng, 200))])
    # The searchers without min_seq rely on the first 200 points being applied: wait for them.
    for name in ("hnsw", "flat"):
        resp = s.search.Search(search_req("cc-" + name, rows(rng, 1), 20, min_seq=first.last_seq),
                               timeout=TIMEOUT)
        assert len(hit_ids(resp.results[0])) == 20, name
    stop = threading.Event()
    last_seq = [first.last_seq]
    problems = []
    counts = {"uploads": 0, "searches": 0}

    def guard(fn):
        def run(*a):
            try:
                fn(*a)
            except Exception as e:  # noqa: BLE001
                problems.append(f"{fn.__name__}{a}: {e!r}")
                stop.set()
        return run

    @guard
    def churn(seed):
        r = np.random.default_rng(seed)
        while not stop.is_set():
            ids = [int(i) for i in r.integers(1000, 1100, size=8)]
            pts = [point(v, {"id": i}) if r.random() < 0.6 else tombstone({"id": i})
                   for i, v in zip(ids, rows(r, 8))]
            res = upload(s, "cc", pts)
            last_seq[0] = max(last_seq[0], res.last_seq)
            counts["uploads"] += 1

    @guard
    def replace(seed):
        r = np.random.default_rng(seed)
        while not stop.is_set():
            ids = [int(i) for i in r.choice(200, size=10, replace=False)]
            res = upload(s, "cc", [point(v, {"id": i}) for i, v in zip(ids, rows(r, 10))])
            last_seq[0] = max(last_seq[0], res.last_seq)
            counts["uploads"] += 1

    @guard
    def searcher(name, seed, use_min_seq):
        r = np.random.default_rng(seed)
        while not stop.is_set():
            q = rows(r, 3)
            ms = last_seq[0] if use_min_seq else 0
            resp = s.search.Search(search_req("cc-" + name, q, 20, min_seq=ms,
                                              retrieve_vectors=True),
                                   timeout=TIMEOUT)
            assert resp.applied_seq >= ms
            for qi, res in enumerate(resp.results):
                ids = hit_ids(res)
                assert len(ids) == 20 and len(set(ids)) == 20, (name, ids)
                prev = -1.0
                for h in res.hits:
                    v = np.asarray(h.vector.dense.values, dtype=np.float64)
                    d = float(((v - q[qi].astype(np.float64)) ** 2).sum())
                    assert abs(h.distance - d) <= 1e-4 + 1e-4 * d, (name, h.distance, d)
                    assert h.distance >= prev - 1e-4
                    prev = h.distance
            counts["searches"] += 1

    threads = [threading.Thread(target=churn, args=(21,)),
               threading.Thread(target=replace, args=(22,)),
               threading.Thread(target=searcher, args=("hnsw", 23, True)),
               threading.Thread(target=searcher, args=("hnsw", 24, False)),
               threading.Thread(target=searcher, args=("flat", 25, True))]
    for t in threads:
        t.start()
    time.sleep(3.0)
    stop.set()
    for t in threads:
        t.join(timeout=120)
    assert not problems, problems[:5]
    assert counts["uploads"] > 5 and counts["searches"] > 5, counts
    src = get_source(s, "cc")
    for name in ("cc-hnsw", "cc-flat"):
        st = wait_ready(s, name).status
        assert st.size == src.point_count and st.applied_seq == src.last_seq, st
