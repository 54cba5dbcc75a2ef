"""Block scaling and the bi-cross-validated choice of traits and block balance."""

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from funnelprint.profile.joint import (
    BALANCE_GRID,
    ELBOW,
    _elbow,
    block_scale,
    held_out_error,
    merge_groups,
    select,
)


def low_rank(rows: int, cols: int, rank: int, noise: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    w = rng.gamma(0.5, size=(rows, rank))
    h = rng.gamma(0.5, size=(rank, cols))
    return np.clip(w @ h + noise * rng.normal(size=(rows, cols)), 0.0, None)


def test_block_scale_is_the_leading_singular_value_after_centring():
    x = low_rank(50, 8, 2, 0.0, 0)
    centred = x - x.mean(axis=0)
    assert block_scale(x) == pytest.approx(np.linalg.svd(centred, compute_uv=False)[0])
    assert block_scale(np.ones((5, 3))) == 1.0 and block_scale(np.zeros((0, 0))) == 1.0
    assert block_scale(3 * x) == pytest.approx(3 * block_scale(x))


def test_held_out_error_is_lowest_near_the_true_rank():
    x = low_rank(600, 40, 4, 0.05, 1)
    labels = np.zeros(40, dtype=np.int64)
    errors = {k: held_out_error(x, labels, k, seed=0) for k in (1, 4, 12)}
    assert errors[4] < errors[1] and errors[4] < errors[12]


def test_side_by_side_splits_give_the_sequential_result():
    x = low_rank(300, 30, 3, 0.05, 2)
    labels = np.repeat([0, 1], 15)
    with ThreadPoolExecutor(2) as pool:
        parallel = held_out_error(x, labels, 3, seed=5, pool=pool)
    assert parallel == held_out_error(x, labels, 3, seed=5)


def test_select_finds_the_rank_and_is_reproducible():
    x = low_rank(800, 30, 4, 0.05, 3)
    blocks = [x[:, :20], x[:, 20:]]
    scaled = [b / block_scale(b) for b in blocks]
    chosen = select(scaled, None, seed=0, trait_grid=(2, 4, 8))
    assert chosen.traits == 4
    assert chosen.balance in BALANCE_GRID and chosen.balance_scores[chosen.balance] <= (
        1 + ELBOW) * min(chosen.balance_scores.values())
    assert select(scaled, None, seed=0, trait_grid=(2, 4, 8)) == chosen


def test_balance_leans_towards_the_block_with_structure():
    """When the behaviour block is the structured one and taste is noise, the criterion
    prefers weighting behaviour up; in the mirror case, down."""
    rng = np.random.default_rng(4)
    signal = low_rank(800, 20, 3, 0.02, 4)
    noise = rng.gamma(2.0, size=(800, 20))
    up = select([noise / block_scale(noise), signal / block_scale(signal)], 3, seed=0)
    down = select([signal / block_scale(signal), noise / block_scale(noise)], 3, seed=0)
    assert up.balance > down.balance
    assert up.traits_scores == {}  # traits given: only the balance is searched


def test_the_elbow_stops_where_a_larger_basis_splits_hairs():
    """On data of rank 4 with a slow fall past it, the walk stops at 4 and scores only the
    candidates it needed."""
    x = low_rank(800, 30, 4, 0.05, 3)
    blocks = [x[:, :20], x[:, 20:]]
    scaled = [b / block_scale(b) for b in blocks]
    chosen = select(scaled, None, seed=0, trait_grid=(2, 4, 6, 8, 10, 12, 14, 16))
    assert chosen.traits == 4
    assert max(chosen.traits_scores) <= 8


def test_elbow_stops_only_where_the_splits_agree_the_gain_is_small():
    flat = {4: np.array([2.0, 2.1, 2.0]), 6: np.array([1.6, 1.7, 1.6]),
            8: np.array([1.59, 1.69, 1.59]), 10: np.array([1.585, 1.68, 1.585]),
            12: np.array([1.2, 1.3, 1.2])}
    assert _elbow(flat, final=True) == 6  # neither 8 nor 10 gains 2% on 6
    later = {4: np.array([2.0, 2.1, 2.0]), 6: np.array([1.6, 1.7, 1.6]),
             8: np.array([1.59, 1.69, 1.59]), 10: np.array([1.2, 1.3, 1.2]),
             12: np.array([1.19, 1.29, 1.19]), 14: np.array([1.185, 1.28, 1.185])}
    assert _elbow(later, final=True) == 10  # a flat step at 8, then a quarter lower at 10
    assert _elbow({k: v for k, v in flat.items() if k <= 10}) == 6
    assert _elbow({k: v for k, v in flat.items() if k <= 8}) is None  # one step seen
    noisy = {**flat, 8: np.array([1.59, 1.2, 1.65])}  # one split gains 30%
    assert _elbow(noisy, final=True) == 12  # no step is confidently small: the largest
    assert _elbow({4: np.array([2.0]), 6: np.array([1.0])}, final=True) == 6
    assert ELBOW > 0


def test_merge_groups_joins_traits_the_same_customers_lean_on():
    rng = np.random.default_rng(0)
    a, b = rng.gamma(1.0, size=(2, 500))
    split_a = np.column_stack([a * 0.6 + 0.1 * rng.random(500), a * 0.4 + 0.1 * rng.random(500)])
    weights = np.column_stack([split_a[:, 0], b, split_a[:, 1]])
    assert merge_groups(weights).tolist() == [0, 1, 0]
    assert merge_groups(np.column_stack([a, b])).tolist() == [0, 1]
    assert merge_groups(np.ones((10, 1))).tolist() == [0]
    assert merge_groups(np.column_stack([a, np.ones(500)])).tolist() == [0, 1]  # constant


def test_one_thread_limits_hold_across_overlapping_calls_and_are_restored(monkeypatch):
    """Calls on two threads overlap, the first leaving while the second is still inside:
    the limit is set once, still in force for the second, and restored once both are out
    (setting and restoring per call would lift it under the second). The libraries' limits
    are process-wide and, for OpenMP builds, read per thread, so the bookkeeping is checked
    on a recording controller rather than through them."""
    import threading

    from funnelprint.profile import threads as module

    events: list[str] = []

    class Limiter:
        def restore_original_limits(self) -> None:
            events.append("restore")

    class Controller:
        def limit(self, limits: int) -> Limiter:
            events.append(f"limit {limits}")
            return Limiter()

    monkeypatch.setattr(module, "_THREADS", Controller())
    first_in, second_in, first_out = threading.Event(), threading.Event(), threading.Event()

    @module.one_thread
    def first() -> None:
        first_in.set()
        assert second_in.wait(60)

    @module.one_thread
    def second() -> None:
        second_in.set()
        assert first_out.wait(60)
        events.append("second still inside")

    def run_first() -> None:
        first()
        first_out.set()

    def run_second() -> None:
        assert first_in.wait(60)
        second()

    workers = [threading.Thread(target=run_first), threading.Thread(target=run_second)]
    for t in workers:
        t.start()
    for t in workers:
        t.join(120)
    assert events == ["limit 1", "second still inside", "restore"]
    assert not module._users


def test_one_thread_sets_one_blas_thread_and_restores_it():
    """The real libraries, on one thread: one BLAS thread inside, the process's own after."""
    from threadpoolctl import threadpool_info

    from funnelprint.profile.model import one_thread

    def blas_threads() -> list[int]:
        return [i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"]

    before = blas_threads()
    inside = one_thread(blas_threads)()
    assert set(inside) <= {1}
    assert blas_threads() == before
