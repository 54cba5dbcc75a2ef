from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from funnelprint.data.dataset import Dataset, kcore_filter, load_dataset
from funnelprint.evaluate import metrics
from funnelprint.evaluate.leaderboard import run_leaderboard
from funnelprint.evaluate.protocol import Protocol, evaluate_model
from funnelprint.evaluate.splits import (
    last_new_split,
    loo_split,
    temporal_split,
    user_split,
    with_catalogue,
)
from funnelprint.evaluate.splits import split as make_split
from funnelprint.models import make_model


def tiny(rows: list[tuple[str, str, int]], name: str = "tiny") -> Dataset:
    """rows: (customer, item, time) in customer-then-time order."""
    frame = pl.DataFrame(
        {"customer_id": [r[0] for r in rows], "item_id": [r[1] for r in rows],
         "action": ["view"] * len(rows), "time": [r[2] for r in rows]}
    )
    return Dataset.from_frame(frame, name=name)


def random_dataset(customers: int = 60, items: int = 30, seed: int = 0) -> Dataset:
    rng = np.random.default_rng(seed)
    rows = []
    for c in range(customers):
        start = rng.integers(0, items)
        for t in range(int(rng.integers(3, 12))):
            rows.append((f"c{c}", f"i{(start + t) % items}", 1_000_000 * (c + 100 * t)))
    rows.sort(key=lambda r: (int(r[0][1:]), r[2]))
    return tiny(rows, "random")


# ------------------------------------------------------------------ metrics


def test_ranks_ties_and_non_finite_scores():
    scores = np.array([[0.9, 0.5, 0.5, 0.1],
                       [np.nan, 0.2, 0.3, 0.4]])
    targets = np.array([1, 0])
    miss = metrics.MISS  # a target without a finite score is never a hit
    assert metrics.target_ranks(scores, targets, ties="pessimistic").tolist() == [2, miss]
    assert metrics.target_ranks(scores, targets, ties="optimistic").tolist() == [1, miss]


def test_single_target_metrics_by_hand():
    ranks = np.array([0, 1, 4, 10])
    assert metrics.hit_rate(ranks, 5).mean() == pytest.approx(0.75)
    expected = (1.0 + 1 / np.log2(3) + 1 / np.log2(6) + 0.0) / 4
    assert metrics.ndcg(ranks, 5).mean() == pytest.approx(expected)
    assert metrics.mrr(ranks).mean() == pytest.approx((1 + 1 / 2 + 1 / 5 + 1 / 11) / 4)
    assert metrics.mrr(ranks, 5).mean() == pytest.approx((1 + 1 / 2 + 1 / 5) / 4)


def test_set_metrics_by_hand():
    # customer 0: relevant items ranked 0 and 3; customer 1: one relevant ranked 7
    ranks = np.array([0, 3, 7])
    owner = np.array([0, 0, 1])
    m = metrics.set_metrics(ranks, owner, 2, k=5)
    assert m["HR@5"] == pytest.approx(0.5)
    assert m["Recall@5"] == pytest.approx(0.5)
    idcg = 1 + 1 / np.log2(3)
    assert m["NDCG@5"] == pytest.approx(((1 + 1 / np.log2(5)) / idcg) / 2)
    assert m["MRR@5"] == pytest.approx(0.5)
    single = metrics.set_metrics(ranks[2:], np.array([0]), 1, k=10)
    assert single["NDCG@10"] == pytest.approx(1 / np.log2(9))


def test_coverage_novelty_tail():
    recs = np.array([[0, 1], [0, 2], [0, -1]])
    assert metrics.coverage(recs, 10) == pytest.approx(0.3)
    counts = np.array([8, 4, 2, 0])
    assert metrics.novelty(np.array([[0, 1]]), counts, 8) == pytest.approx(0.5)
    tail = metrics.tail_items(np.array([70, 20, 5, 5]))
    assert tail.tolist() == [False, False, True, True]  # items 0+1 hold 90% >= 80%
    assert metrics.tail_share(np.array([[0, 2]]), tail) == pytest.approx(0.5)


# -------------------------------------------------------------------- splits


def test_loo_split_holds_out_last_two():
    data = tiny([("a", "1", 1), ("a", "2", 2), ("a", "3", 3), ("a", "4", 4),
                 ("b", "1", 1), ("b", "5", 2)])
    split = loo_split(data)
    item = data.item_ids
    assert item[split.train.sequences.row(0)].tolist() == ["1", "2"]
    assert item[split.train.sequences.row(1)].tolist() == ["1", "5"]  # too short: train only
    assert item[split.valid.target_items].tolist() == ["3"]
    assert item[split.valid.history.row(0)].tolist() == ["1", "2"]
    assert item[split.test.target_items].tolist() == ["4"]
    assert item[split.test.history.row(0)].tolist() == ["1", "2", "3"]


def test_last_new_split_holds_out_the_last_product_new_to_the_customer():
    # a: 1 2 1 3 2 -> the last new product is 3 (position 3), the one before it 2.
    data = tiny([("a", "1", 1), ("a", "2", 2), ("a", "1", 3), ("a", "3", 4), ("a", "2", 5),
                 ("b", "1", 1), ("b", "1", 2), ("c", "4", 1), ("c", "1", 2)])
    split = last_new_split(data)
    item = data.item_ids
    assert split.test.customers.tolist() == [0, 2] and split.valid.customers.tolist() == [0]
    assert item[split.test.target_items].tolist() == ["3", "1"]
    assert item[split.test.history.row(0)].tolist() == ["1", "2", "1"]
    assert item[split.valid.target_items].tolist() == ["2"]
    assert item[split.valid.history.row(0)].tolist() == ["1"]
    assert item[split.train.sequences.row(0)].tolist() == ["1"]  # before its validation target
    assert item[split.train.sequences.row(1)].tolist() == ["1", "1"]  # nothing new: all
    assert item[split.train.sequences.row(2)].tolist() == ["4"]  # before its test target


def test_a_product_seen_only_in_held_out_steps_can_never_be_recommended():
    # "x" is only ever customer a's held-out last step; "y" only a validation target.
    rows = [("a", "1", 1), ("a", "2", 2), ("a", "y", 3), ("a", "x", 4)]
    rows += [(f"c{i}", str(1 + i % 2), 1) for i in range(5)]
    rows += [("b", "2", 1), ("b", "1", 2), ("b", "3", 3), ("d", "3", 1), ("d", "1", 2)]
    rows.sort(key=lambda r: (r[0], r[2]))
    data = tiny(rows)
    for kind in ("loo", "last-new"):
        split = make_split(data, kind)
        assert not {"x", "y"} & set(split.train.item_ids.tolist())
        assert split.info["test_targets_outside_catalogue"] >= 1
        assert split.info["catalogue_items"] == split.train.n_items
        assert split.test.target_items.max() < split.train.n_items
        model = make_model("pop").fit(split.train)
        shown = split.train.item_ids[model.recommend(k=100, exclude_seen=False)[0]]
        assert "x" not in shown and "y" not in shown
    record = run_leaderboard(data, ["pop", "markov"], "loo-full", ks=(10,))
    assert record["split"]["test_targets_outside_catalogue"] == 1  # x: counted, not scored
    assert record["split"]["evaluated"] == 1  # b's target 3 is in the catalogue; a's is not


def test_a_products_file_joins_the_catalogue_of_every_model():
    data = tiny([("a", "1", 1), ("a", "2", 2), ("a", "3", 3), ("b", "2", 1), ("b", "1", 2),
                 ("b", "4", 3)])
    products = pl.DataFrame({"product_id": ["1", "2", "3", "9"], "category": ["k"] * 4})
    extended, listed = with_catalogue(data, products)
    assert extended.item_ids.tolist() == ["1", "2", "3", "4", "9"]
    assert listed.tolist() == [True, True, True, False, True]
    split = make_split(extended, "loo", listed=listed)
    assert set(split.train.item_ids.tolist()) == {"1", "2", "3", "9"}  # 3: listed; 4: not
    assert split.info["test_targets_outside_catalogue"] == 1  # b's 4
    assert split.train.item_categories.tolist()[-1] == "k"


def test_temporal_split_never_trains_at_or_after_the_cut():
    data = random_dataset(customers=80, items=40, seed=1)
    split = temporal_split(data, test_share=0.2, valid_share=0.2)
    assert split.train.sequences.times.max() < split.info["valid_cut_us"]
    assert split.valid.history.times.max() < split.info["valid_cut_us"]
    assert split.test.history.times.max() < split.info["test_cut_us"]
    # every target is an interaction at or after its window start, never one in the history
    times = data.sequences.times
    assert times[times >= split.info["test_cut_us"]].size > 0
    assert split.test.n_rows > 0 and split.valid.n_rows > 0
    for part in (split.valid, split.test):
        for r in range(part.n_rows):
            history = set(part.history.row(r).tolist())
            targets = part.target_items[part.target_offsets[r]: part.target_offsets[r + 1]]
            assert not history & set(targets.tolist())
    # models fitted on the training part cannot see the future: pop counts match train only
    pop = make_model("pop").fit(split.train)
    assert pop.weights_.sum() == split.train.n_interactions < data.n_interactions


def test_temporal_split_refuses_synthetic_time(tmp_path):
    path = tmp_path / "v.txt"
    path.write_text("1 1\n1 2\n1 3\n")
    with pytest.raises(ValueError, match="no real timestamps"):
        temporal_split(load_dataset(f"sasrec:{path}"))


def test_user_split_holds_out_whole_customers():
    data = random_dataset()
    split = user_split(data, test_share=0.2, valid_share=0.1, seed=0)
    train_lengths = split.train.sequences.lengths
    assert (train_lengths[split.test.customers] == 0).all()
    assert (train_lengths[split.valid.customers] == 0).all()
    assert not set(split.test.customers) & set(split.valid.customers)


# ------------------------------------------------------------------- loaders


def test_loaders(tmp_path):
    sasrec = tmp_path / "v.txt"
    sasrec.write_text("1 10\n1 11\n2 11\n1 12\n2 13\n")
    data = load_dataset(f"sasrec:{sasrec}")
    assert data.n_customers == 2 and data.n_items == 4
    assert data.item_ids[data.sequences.row(0)].tolist() == ["10", "11", "12"]
    s3rec = tmp_path / "b.txt"
    s3rec.write_text("1 10 11 12\n2 11 13\n")
    data3 = load_dataset(f"s3rec:{s3rec}")
    assert data3.item_ids[data3.sequences.row(1)].tolist() == ["11", "13"]
    inter = tmp_path / "m.inter"
    inter.write_text("user_id:token\titem_id:token\trating:float\ttimestamp:float\n"
                     "1\t5\t3\t200\n1\t6\t4\t100\n2\t5\t1\t50\n")
    (tmp_path / "m.item").write_text("item_id:token\tclass:token_seq\n5\tDrama Comedy\n6\tWar\n")
    rb = load_dataset(f"recbole:{inter}")
    assert rb.item_ids[rb.sequences.row(0)].tolist() == ["6", "5"]  # by timestamp
    assert dict(zip(rb.item_ids, rb.item_categories, strict=True)) == {"5": "Drama", "6": "War"}
    with pytest.raises(ValueError, match="PREFIX:PATH"):
        load_dataset(f"csv:{sasrec}")


def test_kcore_filter():
    data = tiny([("a", "1", 1), ("a", "2", 2), ("b", "1", 1), ("b", "2", 2), ("c", "3", 1),
                 ("c", "1", 2)])
    core = kcore_filter(data, 2)
    assert core.n_customers == 2 and sorted(core.item_ids.tolist()) == ["1", "2"]
    assert core.n_interactions == 4


class NaNModel:
    key = "nan"

    def score(self, history, customers=None):
        return np.full((history.n_rows, self.n_items), np.nan, dtype=np.float32)


@pytest.mark.parametrize("protocol", ["loo-full", "loo-sampled100"])
def test_nan_scores_never_count_as_hits(protocol):
    data = random_dataset(items=300)
    split = loo_split(data)
    model = NaNModel()
    model.n_items = data.n_items
    result = evaluate_model(model, split.test, split.train, Protocol.parse(protocol))
    assert result["HR@10"] == 0.0 and result["NDCG@10"] == 0.0


class ConstantModel(NaNModel):
    key = "constant"

    def score(self, history, customers=None):
        return np.ones((history.n_rows, self.n_items), dtype=np.float32)


def test_tie_rules_on_constant_scores():
    data = random_dataset(items=300)
    split = loo_split(data)
    model = ConstantModel()
    model.n_items = data.n_items
    sampled = Protocol.parse("loo-sampled100")
    optimistic = evaluate_model(model, split.test, split.train, sampled, ties="optimistic")
    pessimistic = evaluate_model(model, split.test, split.train, sampled, ties="pessimistic")
    assert optimistic["HR@5"] == 1.0 and optimistic["MRR"] == 1.0
    assert pessimistic["HR@20"] == 0.0
    assert pessimistic["MRR"] == pytest.approx(1 / 101)


def test_sampled_negatives_avoid_history_and_target():
    from funnelprint.evaluate.protocol import _draw_negatives

    n_items = 12
    rows = np.array([0, 1])
    excluded = np.array([0 * n_items + i for i in range(10)] + [1 * n_items + 3])
    draws = _draw_negatives(rows, 500, np.arange(n_items), n_items, excluded,
                            np.random.default_rng(0))
    assert set(draws[0].tolist()) == {10, 11}
    assert 3 not in set(draws[1].tolist())


def test_protocol_parse():
    assert Protocol.parse("loo-sampled100").negatives == 100
    assert str(Protocol.parse("temporal-full")) == "temporal-full"
    with pytest.raises(ValueError):
        Protocol.parse("random-full")


def test_collapsed_runs_keep_the_funnel_outcome():
    from funnelprint.data.dataset import _collapse_runs

    frame = pl.DataFrame({
        "customer_id": ["a", "a", "a", "a", "b", "b"], "item_id": ["x", "x", "x", "y", "y", "y"],
        "action": ["view", "add_to_cart", "view", "view", "view", "purchase"],
        "time": [1, 2, 3, 4, 5, 6]})
    out = _collapse_runs(frame)
    assert out.rows() == [("a", "x", "add_to_cart", 1), ("a", "y", "view", 4),
                          ("b", "y", "purchase", 5)]


def test_purchase_split_targets_last_purchases_without_leaking():
    from funnelprint.evaluate.splits import purchase_split

    frame = pl.DataFrame({
        "customer_id": ["a"] * 6 + ["b"] * 3 + ["c"] * 2,
        "item_id": ["x", "y", "z", "w", "v", "u", "x", "y", "z", "x", "y"],
        "action": ["view", "purchase", "view", "add_to_cart", "purchase", "view",
                   "view", "view", "purchase", "purchase", "view"],
        "time": list(range(11))})
    data = Dataset.from_frame(frame)
    split = purchase_split(data)
    a, b = data.customer_index()["a"], data.customer_index()["b"]
    items = data.item_ids
    # a: test = last purchase (v), validation = the one before (y); b: test only (z)
    assert split.test.customers.tolist() == sorted([a, b])
    test = dict(zip(split.test.customers.tolist(), items[split.test.target_items], strict=True))
    assert test == {a: "v", b: "z"}
    assert items[split.valid.target_items].tolist() == ["y"]
    row_a = split.test.customers.tolist().index(a)
    assert items[split.test.history.row(row_a)].tolist() == ["x", "y", "z", "w"]
    # training stops before each customer's earliest held-out purchase; c's first-step
    # purchase is not a target and c trains on everything
    assert items[split.train.sequences.row(a)].tolist() == ["x"]
    assert items[split.train.sequences.row(b)].tolist() == ["x", "y"]
    assert split.train.sequences.lengths[data.customer_index()["c"]] == 2


def test_a_masked_target_is_a_miss_at_every_cut_off():
    scores = np.array([[0.5, -np.inf, 0.1], [0.2, 0.9, 0.4]], dtype=np.float32)
    ranks = metrics.target_ranks(scores, np.array([1, 0]))
    assert ranks[0] == metrics.MISS and ranks[1] == 2
    assert metrics.set_metrics(ranks, np.arange(2), 2, 1000)["HR@1000"] == 0.5
    assert metrics.owner_mrr(ranks, np.arange(2), 2) == pytest.approx(1 / 3 / 2)


def test_the_record_says_when_a_time_budget_cut_training_short():
    from funnelprint.evaluate.leaderboard import training_outcome

    class Trained:
        def __init__(self, report, **params):
            self.fit_report_, self.params = report, params

        def get_params(self):
            return self.params

    rising = [{"epoch": 1}, {"epoch": 2, "valid": 0.02}, {"epoch": 3}, {"epoch": 4, "valid": 0.03}]
    cut = training_outcome(Trained({"epochs": rising, "best_epoch": 4, "train_seconds": 61.0},
                                   time_budget_s=60.0, epochs=200))
    assert cut["stopped_by"] == "time budget" and cut["still_improving"]
    assert "0.02 -> 0.03" in cut["note"] and cut["epochs"] == 4
    settled = training_outcome(Trained({"epochs": rising, "best_epoch": 2, "train_seconds": 9.0},
                                       time_budget_s=60.0, epochs=200))
    assert settled["stopped_by"] == "patience" and "note" not in settled
