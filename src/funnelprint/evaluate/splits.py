"""Splits that never leak the future.

``loo``: last interaction is the test target, the one before it the validation target (SASRec).
``temporal``: one global time cut for test and an earlier one for validation; training holds
only interactions strictly before the validation cut. ``user``: a random share of customers is
held out whole; their last interaction is the target and the rest their history.
``purchase``: each customer's last purchase is the test target and the purchase before it the
validation target; histories hold every step (any action) before the target.
``last-new``: each customer's last step to an item new to them is the test target and the
new-item step before it the validation target (what a shop wants recommended: a product the
customer has not touched yet); histories hold every step before the target.

:func:`split` (what the leaderboard uses) also makes the catalogue leak-free: a model may
score only the items of the training interactions, plus the items of a products file when
one is given. Everything is re-indexed onto that catalogue; held-out targets outside it are
counted in ``Split.info`` and not scored, and history steps outside it are dropped (a
service skips events of products its model does not know in the same way).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from funnelprint.data.dataset import Dataset
from funnelprint.data.sequences import Sequences, row_of

SPLITS = ("loo", "temporal", "user", "purchase", "last-new")


@dataclass
class EvalSet:
    """Customers to evaluate, the history each model may read, and the targets to rank."""

    customers: np.ndarray  # dataset customer index per evaluated row
    history: Sequences  # inputs, all strictly before the targets
    target_offsets: np.ndarray  # row r's targets: target_items[target_offsets[r]:...[r + 1]]
    target_items: np.ndarray

    @property
    def n_rows(self) -> int:
        return self.customers.size

    def target_rows(self) -> np.ndarray:
        return row_of(self.target_offsets)

    def subset(self, rows: np.ndarray) -> EvalSet:
        targets = Sequences(self.target_offsets, self.target_items,
                            np.zeros_like(self.target_items, dtype=np.int8),
                            np.zeros_like(self.target_items, dtype=np.int64)).select(rows)
        return EvalSet(self.customers[rows], self.history.select(rows), targets.offsets,
                       targets.items)


@dataclass
class Split:
    train: Dataset
    valid: EvalSet
    test: EvalSet
    kind: str
    info: dict


def split(dataset: Dataset, kind: str = "loo", seed: int = 0,
          listed: np.ndarray | None = None) -> Split:
    """The split ``kind`` of ``dataset`` (``seed`` draws the held-out customers of ``user``)
    on its leak-free catalogue: the items of the training interactions, plus those flagged
    in ``listed`` (a boolean mask over the dataset's items: the products file's items)."""
    return on_catalogue(raw_split(dataset, kind, seed), listed)


def raw_split(dataset: Dataset, kind: str = "loo", seed: int = 0) -> Split:
    """The split ``kind`` of ``dataset`` on the dataset's own item index (every item of
    every part; see :func:`split` for the leak-free catalogue)."""
    if kind == "loo":
        raw = loo_split(dataset)
    elif kind == "temporal":
        raw = temporal_split(dataset)
    elif kind == "user":
        raw = user_split(dataset, seed=seed)
    elif kind == "purchase":
        raw = purchase_split(dataset)
    elif kind == "last-new":
        raw = last_new_split(dataset)
    else:
        raise ValueError(f"split must be one of {SPLITS}, not {kind!r}")
    return raw


def with_catalogue(dataset: Dataset, products: pl.DataFrame) -> tuple[Dataset, np.ndarray]:
    """``dataset`` with every product of a products table among its items (described by
    the table), and which of its items the table lists: with it, the catalogue every model
    may rank (see :func:`split`)."""
    extended = dataset.with_items(products["product_id"]).with_products(products)
    ids = products["product_id"].cast(pl.String).to_numpy().astype(str)
    return extended, np.isin(extended.item_ids.astype(str), ids)


def training_catalogue(train: Dataset, listed: np.ndarray | None = None) -> np.ndarray:
    """Boolean mask of the items a model trained on ``train`` may score: those of its
    interactions, and those ``listed`` (a products file's)."""
    known = np.bincount(train.sequences.items, minlength=train.n_items) > 0
    if listed is not None:
        if listed.shape != known.shape:
            raise ValueError(f"listed flags {listed.size} items, the dataset has {known.size}")
        known |= listed.astype(bool)
    return known


def on_catalogue(raw: Split, listed: np.ndarray | None = None) -> Split:
    """``raw`` re-indexed onto its training catalogue (:func:`training_catalogue`):
    targets outside it are dropped and counted (``*_targets_outside_catalogue``), as are
    history steps (``*_history_steps_outside_catalogue``); rows left without a target go."""
    keep = training_catalogue(raw.train, listed)
    codes = np.where(keep, np.cumsum(keep) - 1, -1)
    train = raw.train.aligned_to(raw.train.item_ids[keep]).dataset if not keep.all() \
        else raw.train
    info = {**raw.info, "catalogue_items": int(keep.sum()),
            "items_outside_catalogue": int((~keep).sum())}
    parts = {}
    for name, part in (("valid", raw.valid), ("test", raw.test)):
        mapped, outside, dropped = mapped_eval_set(part, codes)
        parts[name] = mapped
        info[f"{name}_targets_outside_catalogue"] = outside
        info[f"{name}_history_steps_outside_catalogue"] = dropped
    return Split(train, parts["valid"], parts["test"], raw.kind, info)


def mapped_eval_set(part: EvalSet, codes: np.ndarray) -> tuple[EvalSet, int, int]:
    """``part`` with its items recoded by ``codes`` (-1: outside the catalogue): the eval
    set without the targets and history steps outside, and how many of each there were."""
    history = part.history
    inside = codes[history.items] >= 0
    history = history.mask(inside)
    history.items = codes[history.items].astype(np.int32)
    targets = Sequences(part.target_offsets, part.target_items.astype(np.int32),
                        np.zeros(part.target_items.size, dtype=np.int8),
                        np.zeros(part.target_items.size, dtype=np.int64))
    scored = codes[targets.items] >= 0
    targets = targets.mask(scored)
    rows = np.flatnonzero(targets.lengths > 0)
    targets = targets.select(rows)
    out = EvalSet(part.customers[rows], history.select(rows), targets.offsets,
                  codes[targets.items].astype(np.int64))
    return out, int((~scored).sum()), int((~inside).sum())


def _single_targets(seq: Sequences, customers: np.ndarray, drop: int) -> EvalSet:
    """Row ends as targets: history is each row without its last ``drop`` elements."""
    rows = seq.select(customers)
    history = rows.drop_last(drop)
    target_pos = rows.offsets[1:] - drop
    targets = rows.items[target_pos]
    return EvalSet(customers, history, np.arange(customers.size + 1, dtype=np.int64), targets)


def loo_split(dataset: Dataset, min_length: int = 3) -> Split:
    """Customers with at least ``min_length`` interactions are evaluated; shorter ones only
    train (the SASRec protocol)."""
    seq = dataset.sequences
    evaluated = np.flatnonzero(seq.lengths >= min_length)
    drop = np.zeros(seq.n_rows, dtype=np.int64)
    drop[evaluated] = 2
    train = dataset.with_sequences(seq.mask(seq.from_end() > np.repeat(drop, seq.lengths)))
    valid = _single_targets(seq.drop_last(1), evaluated, 1)
    test = _single_targets(seq, evaluated, 1)
    return Split(train, valid, test, "loo", {"evaluated_customers": int(evaluated.size)})


def temporal_split(dataset: Dataset, test_share: float = 0.1, valid_share: float = 0.1) -> Split:
    """Cut times at the quantiles that leave ``test_share`` of interactions for test and
    ``valid_share`` for validation. Targets are the distinct items a customer touches in the
    window that are not in their history."""
    if dataset.synthetic_time:
        raise ValueError(f"{dataset.name} has no real timestamps; use the loo split")
    seq = dataset.sequences
    t_test = float(np.quantile(seq.times, 1.0 - test_share))
    t_valid = float(np.quantile(seq.times, 1.0 - test_share - valid_share))
    train = dataset.with_sequences(seq.mask(seq.times < t_valid))
    valid = _window(seq, t_valid, t_test)
    test = _window(seq, t_test, np.inf)
    return Split(train, valid, test, "temporal",
                 {"valid_cut_us": t_valid, "test_cut_us": t_test})


def _window(seq: Sequences, start: float, end: float) -> EvalSet:
    before = seq.mask(seq.times < start)
    inside = seq.mask((seq.times >= start) & (seq.times < end))
    owner = row_of(inside.offsets)
    # Drop repeats of history items and duplicates inside the window.
    seen_key = row_of(before.offsets).astype(np.int64) * (1 << 32) + before.items
    key = owner.astype(np.int64) * (1 << 32) + inside.items
    fresh = ~np.isin(key, seen_key)
    _, first = np.unique(key, return_index=True)
    unique = np.zeros(key.size, dtype=bool)
    unique[first] = True
    keep = fresh & unique
    targets = inside.mask(keep)
    customers = np.flatnonzero((targets.lengths > 0) & (before.lengths > 0))
    chosen = targets.select(customers)
    return EvalSet(customers, before.select(customers), chosen.offsets, chosen.items)


def user_split(dataset: Dataset, test_share: float = 0.1, valid_share: float = 0.1,
               seed: int = 0) -> Split:
    seq = dataset.sequences
    eligible = np.flatnonzero(seq.lengths >= 2)
    rng = np.random.default_rng(seed)
    shuffled = rng.permutation(eligible)
    n_test = round(test_share * eligible.size)
    n_valid = round(valid_share * eligible.size)
    test_users = np.sort(shuffled[:n_test])
    valid_users = np.sort(shuffled[n_test: n_test + n_valid])
    held = np.zeros(seq.n_rows, dtype=bool)
    held[test_users] = held[valid_users] = True
    train = dataset.with_sequences(seq.mask(~np.repeat(held, seq.lengths)))
    return Split(train, _single_targets(seq, valid_users, 1), _single_targets(seq, test_users, 1),
                 "user", {"test_customers": int(n_test), "valid_customers": int(n_valid)})


def purchase_split(dataset: Dataset) -> Split:
    """Next-purchase evaluation. Customers with a purchase after their first step are tested
    on their last one; those with two are also validated on the one before. Training holds
    each customer's steps before their earliest held-out purchase."""
    if "purchase" not in dataset.action_names:
        raise ValueError(f"{dataset.name} has no purchase action")
    seq = dataset.sequences
    rows = row_of(seq.offsets)
    index = np.arange(seq.items.size)
    buys = index[(seq.actions == dataset.action_names.index("purchase")) & (seq.positions() >= 1)]
    last = np.full(seq.n_rows, -1)
    np.maximum.at(last, rows[buys], buys)
    earlier = buys[buys != last[rows[buys]]]
    previous = np.full(seq.n_rows, -1)
    np.maximum.at(previous, rows[earlier], earlier)
    cut = np.where(previous >= 0, previous, np.where(last >= 0, last, seq.offsets[1:]))
    train = dataset.with_sequences(seq.mask(index < cut[rows]))
    if not buys.size:
        raise ValueError(f"{dataset.name} has no purchase after a customer's first step")
    return Split(train, _before(seq, rows, index, previous), _before(seq, rows, index, last),
                 "purchase", {"evaluated_customers": int((last >= 0).sum())})


def _before(seq: Sequences, rows: np.ndarray, index: np.ndarray, target: np.ndarray) -> EvalSet:
    """Customers with a target step: history = their steps before it."""
    customers = np.flatnonzero(target >= 0)
    history = seq.mask(index < np.where(target >= 0, target, 0)[rows]).select(customers)
    return EvalSet(customers, history, np.arange(customers.size + 1, dtype=np.int64),
                   seq.items[target[customers]])


def last_new_split(dataset: Dataset) -> Split:
    """Each customer's last step to an item not in their earlier steps (never the first
    step) is the test target; their new-item step before it, where there is one, the
    validation target. Training holds each customer's steps before their validation target
    (before the test target where there is none; every step where there is neither)."""
    seq = dataset.sequences
    test_at, valid_at = _new_item_targets(seq)
    cut = np.where(valid_at >= 0, valid_at, np.where(test_at >= 0, test_at, seq.lengths))
    position = seq.positions()
    train = dataset.with_sequences(seq.mask(position < np.repeat(cut, seq.lengths)))
    return Split(train, _at(seq, valid_at), _at(seq, test_at), "last-new",
                 {"evaluated_customers": int((test_at >= 0).sum()),
                  "validated_customers": int((valid_at >= 0).sum())})


def _new_item_targets(seq: Sequences) -> tuple[np.ndarray, np.ndarray]:
    """Per row: the position of the last step to an item new to the row (not position 0),
    and of the one before it; -1 where there is none."""
    rows = row_of(seq.offsets)
    key = rows.astype(np.int64) * (int(seq.items.max(initial=0)) + 1) + seq.items
    _, first = np.unique(key, return_index=True)
    new = np.zeros(key.size, dtype=bool)
    new[first] = True
    position = seq.positions()
    new &= position >= 1
    last = np.full(seq.n_rows, -1, dtype=np.int64)
    np.maximum.at(last, rows[new], position[new])
    earlier = new & (position < last[rows])
    before = np.full(seq.n_rows, -1, dtype=np.int64)
    np.maximum.at(before, rows[earlier], position[earlier])
    return last, before


def _at(seq: Sequences, at: np.ndarray) -> EvalSet:
    """Rows with a target position: history = their steps before it."""
    customers = np.flatnonzero(at >= 0)
    history = seq.mask(seq.positions() < np.repeat(np.where(at >= 0, at, 0), seq.lengths))
    targets = seq.items[seq.offsets[customers] + at[customers]].astype(np.int64)
    return EvalSet(customers, history.select(customers),
                   np.arange(customers.size + 1, dtype=np.int64), targets)
