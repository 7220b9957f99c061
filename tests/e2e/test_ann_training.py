"""FAISS indexes that need training (IVF) answer exactly until a split holds train_size points,
then train once, each split on its own.

Fashion-MNIST rows, two parts: "a" (ids 0..2499) and "b" (ids 2500..2799, later up to 4499).
Two indices, IVF64,Flat with train_size 2000 and nprobe 16: `ivf` (one split) and `ivf-split`
(split by part). Exactness is checked with SearchParams.nprobe 1 as well: an untrained split
ignores it (it is a flat buffer), while a trained IVF searched with nprobe 1 visits one list of
64 and must miss neighbours, which shows that training really happened.
"""
import numpy as np

from ann_helpers import ann_spec, create, recall, run_search
from helpers import (INT64, L2, STRING, check_knn, create_source, fmnist, get_index, point,
                     source_spec, upload_batches, wait_ready)

TRAIN = 2000
K = 10


def pts(x, y, ids, part):
    return [point(x[i], {"id": int(i), "label": int(y[i]), "part": part}) for i in ids]


def detail(s, name):
    return get_index(s, name).status.detail


def test_untrained_splits_are_exact_until_train_size(server):
    s = server
    x, y = fmnist("train", 4500)
    q, _ = fmnist("test", 50)
    create_source(s, source_spec("fm", 784, [("id", INT64), ("label", INT64), ("part", STRING)],
                                 ["id"]))
    for name, splits in (("ivf", ()), ("ivf-split", ("part",))):
        create(s, ann_spec(name, "fm", L2, "faiss", splits=splits, factory="IVF64,Flat",
                           nprobe=16, train_size=TRAIN))
    a_ids, b_ids = np.arange(0, 2500), np.arange(2500, 2800)

    # 1500 + 300 points: below train_size everywhere.
    upload_batches(s, "fm", pts(x, y, a_ids[:1500], "a") + pts(x, y, b_ids, "b"), 600)
    for name in ("ivf", "ivf-split"):
        st = wait_ready(s, name).status
        assert st.size == 1800, st
        assert "untrained" in st.detail and "exact" in st.detail, st.detail
    live = np.concatenate([a_ids[:1500], b_ids])
    for name in ("ivf", "ivf-split"):
        for nprobe in (0, 1):
            check_knn(run_search(s, name, q, K, nprobe=nprobe), x[live], live, q, L2, K)

    # Part a crosses train_size: `ivf` (2800 points) and split a of `ivf-split` (2500) train;
    # split b (300) stays exact.
    upload_batches(s, "fm", pts(x, y, a_ids[1500:], "a"), 1000)
    live = np.concatenate([a_ids, b_ids])
    st = wait_ready(s, "ivf").status
    assert st.size == 2800 and "untrained" not in st.detail, st
    st = wait_ready(s, "ivf-split").status
    assert st.size == 2800, st
    assert "1 of 2 splits untrained" in st.detail, st.detail
    sizes = {sp.split_values["part"].string_value: sp.size for sp in st.splits}
    assert sizes == {"a": 2500, "b": 300}, sizes

    rec = recall(run_search(s, "ivf", q, K), x[live], live, q, L2, K)
    rec1 = recall(run_search(s, "ivf", q, K, nprobe=1), x[live], live, q, L2, K)
    print(f"\nivf trained at 2800 points: recall@{K} nprobe 16 {rec:.3f}, nprobe 1 {rec1:.3f}")
    assert rec >= 0.95 and rec1 < rec
    rec_a = recall(run_search(s, "ivf-split", q, K, split_filter={"part": "a"}), x[a_ids],
                   a_ids, q, L2, K)
    rec_a1 = recall(run_search(s, "ivf-split", q, K, split_filter={"part": "a"}, nprobe=1),
                    x[a_ids], a_ids, q, L2, K)
    assert rec_a >= 0.95 and rec_a1 < rec_a, (rec_a, rec_a1)
    for nprobe in (0, 1):
        check_knn(run_search(s, "ivf-split", q, K, split_filter={"part": "b"}, nprobe=nprobe),
                  x[b_ids], b_ids, q, L2, K)

    # The untrained split survives a restart (snapshot) untrained, and trains once it crosses
    # train_size after the restart.
    s.restart()
    st = wait_ready(s, "ivf-split").status
    assert "1 of 2 splits untrained" in st.detail, st.detail
    assert "ivf-split@1: loaded snapshot at seq 2800" in s.log_since_start()
    check_knn(run_search(s, "ivf-split", q, K, split_filter={"part": "b"}, nprobe=1),
              x[b_ids], b_ids, q, L2, K)
    b2 = np.arange(2800, 4500)
    upload_batches(s, "fm", pts(x, y, b2, "b"), 1700)
    b_all = np.concatenate([b_ids, b2])
    st = wait_ready(s, "ivf-split").status
    assert "untrained" not in st.detail and st.size == 4500, st
    rec_b = recall(run_search(s, "ivf-split", q, K, split_filter={"part": "b"}), x[b_all], b_all,
                   q, L2, K)
    rec_b1 = recall(run_search(s, "ivf-split", q, K, split_filter={"part": "b"}, nprobe=1),
                    x[b_all], b_all, q, L2, K)
    assert rec_b >= 0.95 and rec_b1 < rec_b, (rec_b, rec_b1)
    # Searching every split merges them.
    live = np.arange(4500)
    assert recall(run_search(s, "ivf-split", q, K), x, live, q, L2, K) >= 0.95
