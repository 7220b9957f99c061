/*
 * test_topk.c - cmocka tests for hdb_topk: the bounded heap against a fully sorted reference
 * (with many tied scores, so the label tie-break is exercised), thresholds, padding, NaN
 * handling, and the m-way merge with duplicated labels, padded inputs and large m and k.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "hdb_topk.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---- fixed-seed PRNG (xorshift64*) -------------------------------------------------------- */

static uint64_t rng_state = 0x2545F4914F6CDD1Dull;

static uint64_t rng_next(void) {
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 2685821657736338717ull;
}

static uint64_t rng_below(uint64_t n) {
    return rng_next() % n;
}

/* ---- reference ---------------------------------------------------------------------------- */

static int hit_cmp(const void *pa, const void *pb) {
    const hdb_hit *a = pa, *b = pb;
    if (a->score < b->score) return -1;
    if (a->score > b->score) return 1;
    return (a->label > b->label) - (a->label < b->label);
}

static void assert_hits_equal(const hdb_hit *got, const hdb_hit *want, size_t k) {
    for (size_t i = 0; i < k; i++) {
        if (got[i].label != want[i].label || !(got[i].score == want[i].score)) {
            fail_msg("slot %zu: got {%g, %lld}, want {%g, %lld}", i, (double)got[i].score,
                     (long long)got[i].label, (double)want[i].score, (long long)want[i].label);
        }
    }
}

static void assert_padded(const hdb_hit *h, size_t from, size_t k) {
    for (size_t i = from; i < k; i++) {
        assert_true(isinf(h[i].score) && h[i].score > 0);
        assert_int_equal(h[i].label, -1);
    }
}

/* ---- heap --------------------------------------------------------------------------------- */

static void test_heap_matches_sorted_reference(void **state) {
    (void)state;
    static const size_t ks[] = {1, 2, 3, 5, 10, 64, 100, 1000};
    static const size_t counts[] = {0, 1, 2, 9, 10, 11, 99, 100, 101, 5000};
    for (size_t ki = 0; ki < sizeof ks / sizeof ks[0]; ki++) {
        size_t k = ks[ki];
        for (size_t ci = 0; ci < sizeof counts / sizeof counts[0]; ci++) {
            size_t cnt = counts[ci];
            hdb_hit *all = malloc((cnt + 1) * sizeof *all);
            hdb_hit *store = malloc(k * sizeof *store);
            hdb_topk t;
            hdb_topk_init(&t, store, k);
            for (size_t i = 0; i < cnt; i++) {
                /* few distinct scores: lots of ties; labels distinct but in random order */
                all[i].score = (float)rng_below(7) * 0.5f - 1.0f;
                all[i].label = (int64_t)(i * 7919 % 100003);
                hdb_topk_push(&t, all[i].score, all[i].label);
                assert_true(t.n == (i + 1 < k ? i + 1 : k));
            }
            qsort(all, cnt, sizeof *all, hit_cmp);
            if (cnt < k) {
                assert_true(isinf(hdb_topk_threshold(&t)));
            } else {
                assert_true(hdb_topk_threshold(&t) == all[k - 1].score);
            }
            size_t n = hdb_topk_finish(&t);
            size_t want = cnt < k ? cnt : k;
            assert_int_equal(n, want);
            assert_hits_equal(store, all, want);
            assert_padded(store, want, k);
            free(all);
            free(store);
        }
    }
}

static void test_heap_tie_break_and_threshold(void **state) {
    (void)state;
    hdb_hit s[2];
    hdb_topk t;
    hdb_topk_init(&t, s, 2);
    assert_true(isinf(hdb_topk_threshold(&t)));
    hdb_topk_push(&t, 1.0f, 5);
    assert_true(isinf(hdb_topk_threshold(&t)));
    hdb_topk_push(&t, 1.0f, 9);
    assert_true(hdb_topk_threshold(&t) == 1.0f);
    hdb_topk_push(&t, 1.0f, 3); /* same score as the worst, smaller label: enters, 9 leaves */
    hdb_topk_push(&t, 1.0f, 7); /* same score, larger label than both: rejected */
    hdb_topk_push(&t, 2.0f, 0); /* worse score, even with the smallest label: rejected */
    assert_int_equal(hdb_topk_finish(&t), 2);
    assert_int_equal(s[0].label, 3);
    assert_int_equal(s[1].label, 5);
    assert_true(s[0].score == 1.0f && s[1].score == 1.0f);

    /* a better score always wins regardless of label */
    hdb_topk_init(&t, s, 2);
    hdb_topk_push(&t, 3.0f, 1);
    hdb_topk_push(&t, 2.0f, 2);
    hdb_topk_push(&t, -1.0f, 100);
    assert_int_equal(hdb_topk_finish(&t), 2);
    assert_int_equal(s[0].label, 100);
    assert_int_equal(s[1].label, 2);
    assert_true(s[0].score == -1.0f);
}

static void test_heap_k_zero_and_nan(void **state) {
    (void)state;
    hdb_topk t;
    hdb_topk_init(&t, NULL, 0);
    hdb_topk_push(&t, 1.0f, 1);
    assert_int_equal(t.n, 0);
    assert_int_equal(hdb_topk_finish(&t), 0);

    /* NaN ranks like +INFINITY: after every finite hit, before padding */
    hdb_hit s[4];
    hdb_topk_init(&t, s, 4);
    hdb_topk_push(&t, NAN, 1);
    hdb_topk_push(&t, 5.0f, 2);
    hdb_topk_push(&t, -INFINITY, 3);
    assert_int_equal(hdb_topk_finish(&t), 3);
    assert_int_equal(s[0].label, 3);
    assert_int_equal(s[1].label, 2);
    assert_int_equal(s[2].label, 1);
    assert_true(isinf(s[2].score) && s[2].score > 0);
    assert_padded(s, 3, 4);

    /* a full heap of NaNs still accepts a real hit */
    hdb_topk_init(&t, s, 2);
    hdb_topk_push(&t, NAN, 1);
    hdb_topk_push(&t, NAN, 2);
    hdb_topk_push(&t, 0.5f, 9);
    assert_int_equal(hdb_topk_finish(&t), 2);
    assert_int_equal(s[0].label, 9);
    assert_int_equal(s[1].label, 1);
}

/* ---- merge -------------------------------------------------------------------------------- */

/* Builds m sorted, padded lists from a pool of labels (duplicates across lists, each with a
 * random score), merges them, and compares with: best score per label, sorted, first k. */
static void merge_case(size_t m, size_t k, size_t pool, size_t maxlen) {
    hdb_hit **lists = calloc(m ? m : 1, sizeof *lists);
    size_t *len = calloc(m ? m : 1, sizeof *len);
    float *best = malloc(pool * sizeof *best);
    for (size_t l = 0; l < pool; l++)
        best[l] = INFINITY;
    size_t total = 0;

    for (size_t i = 0; i < m; i++) {
        size_t slots = 1 + rng_below(maxlen);
        size_t real = rng_below(slots + 1); /* some lists are all padding */
        if (real > pool) real = pool;
        lists[i] = malloc(slots * sizeof **lists);
        len[i] = slots;
        /* distinct labels within one list, as an engine produces */
        size_t start = rng_below(pool);
        for (size_t j = 0; j < real; j++) {
            int64_t label = (int64_t)((start + j * 7) % pool);
            if (pool % 7 == 0) label = (int64_t)((start + j) % pool);
            float score = (float)rng_below(20) * 0.25f;
            lists[i][j].label = label;
            lists[i][j].score = score;
            if (score < best[label]) best[label] = score;
        }
        qsort(lists[i], real, sizeof **lists, hit_cmp);
        for (size_t j = real; j < slots; j++) {
            lists[i][j].label = -1;
            lists[i][j].score = INFINITY;
        }
    }
    hdb_hit *ref = malloc((pool + 1) * sizeof *ref);
    for (size_t l = 0; l < pool; l++) {
        if (isinf(best[l])) continue;
        ref[total].label = (int64_t)l;
        ref[total].score = best[l];
        total++;
    }
    qsort(ref, total, sizeof *ref, hit_cmp);

    hdb_hit *out = malloc((k ? k : 1) * sizeof *out);
    size_t n = hdb_topk_merge((const hdb_hit *const *)lists, len, m, k, out);
    size_t want = total < k ? total : k;
    assert_int_equal(n, want);
    assert_hits_equal(out, ref, want);
    assert_padded(out, want, k);

    for (size_t i = 0; i < m; i++)
        free(lists[i]);
    free(lists);
    free(len);
    free(best);
    free(ref);
    free(out);
}

static void test_merge_random(void **state) {
    (void)state;
    static const size_t ms[] = {0, 1, 2, 3, 8, 16, 17, 40};
    static const size_t ks[] = {1, 3, 10, 64, 65, 200};
    static const size_t pools[] = {5, 50, 1000};
    for (size_t a = 0; a < sizeof ms / sizeof ms[0]; a++)
        for (size_t b = 0; b < sizeof ks / sizeof ks[0]; b++)
            for (size_t c = 0; c < sizeof pools / sizeof pools[0]; c++)
                for (int rep = 0; rep < 3; rep++)
                    merge_case(ms[a], ks[b], pools[c], 2 * ks[b]);
}

static void test_merge_duplicates_and_padding(void **state) {
    (void)state;
    const hdb_hit a[] = {{0.5f, 10}, {1.0f, 20}, {2.0f, 30}, {INFINITY, -1}};
    const hdb_hit b[] = {{0.1f, 20}, {1.0f, 5}, {3.0f, 10}};
    const hdb_hit c[] = {{INFINITY, -1}, {INFINITY, -1}};
    const hdb_hit *lists[] = {a, b, c};
    const size_t len[] = {4, 3, 2};
    hdb_hit out[6];
    size_t n = hdb_topk_merge(lists, len, 3, 6, out);
    assert_int_equal(n, 4);
    const hdb_hit want[] = {{0.1f, 20}, {0.5f, 10}, {1.0f, 5}, {2.0f, 30}};
    assert_hits_equal(out, want, 4);
    assert_padded(out, 4, 6);

    /* k smaller than the unique hits */
    n = hdb_topk_merge(lists, len, 3, 2, out);
    assert_int_equal(n, 2);
    assert_hits_equal(out, want, 2);

    /* nothing at all */
    n = hdb_topk_merge(lists + 2, len + 2, 1, 3, out);
    assert_int_equal(n, 0);
    assert_padded(out, 0, 3);
    n = hdb_topk_merge(NULL, NULL, 0, 3, out);
    assert_int_equal(n, 0);
    assert_padded(out, 0, 3);

    /* the same label at the same score in two lists is kept once */
    const hdb_hit d[] = {{1.0f, 7}};
    const hdb_hit *same[] = {d, d};
    const size_t len2[] = {1, 1};
    n = hdb_topk_merge(same, len2, 2, 3, out);
    assert_int_equal(n, 1);
    assert_int_equal(out[0].label, 7);
    assert_padded(out, 1, 3);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_heap_matches_sorted_reference),
        cmocka_unit_test(test_heap_tie_break_and_threshold),
        cmocka_unit_test(test_heap_k_zero_and_nan),
        cmocka_unit_test(test_merge_random),
        cmocka_unit_test(test_merge_duplicates_and_padding),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
