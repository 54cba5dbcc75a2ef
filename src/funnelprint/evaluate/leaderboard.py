"""Fit and evaluate several models on one dataset and protocol; a table and a JSON record."""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np

from funnelprint.data.dataset import Dataset
from funnelprint.evaluate.metrics import Ties
from funnelprint.evaluate.protocol import Protocol, evaluate_model, validator
from funnelprint.evaluate.splits import mapped_eval_set, raw_split, training_catalogue
from funnelprint.evaluate.splits import split as make_split
from funnelprint.models.contract import Recommender
from funnelprint.models.registry import make_model, model_class, preset_for

log = logging.getLogger(__name__)
HEADLINE = ("HR@10", "NDCG@10", "MRR", "Recall@10", "Coverage@10", "Novelty@10", "TailShare@10")


def run_leaderboard(
    dataset: Dataset, models: Sequence[str], protocol: str | Protocol = "loo-full",
    ks: tuple[int, ...] = (5, 10, 20), keep_seen: bool = False, ties: Ties = "pessimistic",
    seed: int = 0, part: str = "test", progress: bool = False,
    model_params: dict[str, dict] | None = None, listed: np.ndarray | None = None,
) -> dict:
    """Evaluate each model key; returns ``{"protocol", "dataset", "split", "models"}``.

    Every model scores the split's leak-free catalogue (see
    :func:`~funnelprint.evaluate.splits.split`): the items of the training interactions,
    plus the ``listed`` ones (a products file's, as a mask over the dataset's items)."""
    protocol = Protocol.parse(protocol) if isinstance(protocol, str) else protocol
    data_split = make_split(dataset, protocol.split, seed, listed)
    eval_set = data_split.test if part == "test" else data_split.valid
    record: dict = {
        "protocol": str(protocol),
        "part": part,
        "ties": ties,
        "keep_seen": keep_seen,
        "seed": seed,
        "dataset": dataset.stats(),
        "split": {"kind": data_split.kind, "train_interactions": data_split.train.n_interactions,
                  "evaluated": eval_set.n_rows, **data_split.info},
        "models": {},
    }
    # select checkpoints on the validation split under the protocol (and keep-seen rule)
    # being reported; when the validation split is what gets reported, nothing may be
    # selected on it
    valid = (validator(data_split.valid, data_split.train, protocol, seed=seed,
                       keep_seen=keep_seen) if part == "test" else None)
    for key in models:
        model = build_model(key, protocol, seed, progress, (model_params or {}).get(key, {}))
        with peak_memory() as peak:
            start = time.perf_counter()
            try:
                model.fit(data_split.train, valid)
            except (ValueError, RuntimeError) as exc:
                # One model that cannot learn from this data must not cost the others.
                log.warning("%s could not be fitted: %s", key, exc)
                record["models"][key] = {"error": f"cannot fit: {exc}"}
                continue
            fit_seconds = time.perf_counter() - start
            result = evaluate_model(model, eval_set, data_split.train, protocol, ks, keep_seen,
                                    ties, seed, progress)
        result["fit_seconds"] = round(fit_seconds, 3)
        if "best_epoch" in model.fit_report_:
            result["best_epoch"] = model.fit_report_["best_epoch"]
            result["best_valid_NDCG@10"] = round(model.fit_report_["best_valid"], 4)
            result |= training_outcome(model)
        result["peak_rss_mb"] = round(peak(), 1)
        record["models"][key] = result
        log.info("%s: HR@10 %.4f NDCG@10 %.4f (fit %.1fs, score %.1fs)", key,
                 result.get("HR@10", 0.0), result.get("NDCG@10", 0.0), fit_seconds,
                 result["score_seconds"])
    return record


def training_outcome(model: Recommender[Any]) -> dict[str, Any]:
    """How a model trained under validation stopped: ``epochs`` run, ``stopped_by`` (``time
    budget``, ``patience`` or ``epochs``), and ``still_improving`` when the time budget
    ended training while its last validation was its best (under-trained: a longer budget
    would likely score higher), with a ``note`` saying so."""
    report = model.fit_report_
    epochs = report.get("epochs") or []
    params = model.get_params()
    budget, limit = params.get("time_budget_s"), params.get("epochs")
    if budget is not None and report.get("train_seconds", 0.0) > budget:
        stopped = "time budget"
    elif limit is not None and len(epochs) >= limit:
        stopped = "epochs"
    else:
        stopped = "patience"
    validated = [e["epoch"] for e in epochs if "valid" in e]
    rising = stopped == "time budget" and bool(validated) and \
        report.get("best_epoch") == validated[-1]
    out: dict[str, Any] = {"epochs": len(epochs), "stopped_by": stopped,
                           "still_improving": rising}
    if rising:
        curve = " -> ".join([str(round(e["valid"], 4)) for e in epochs if "valid" in e][-3:])
        out["note"] = (f"stopped by its {budget:g} s time budget after {len(epochs)} epochs "
                       f"while validation NDCG@10 was still rising ({curve}): under-trained; "
                       "a longer time_budget_s would likely score higher")
    return out


def build_model(key: str, protocol: Protocol, seed: int = 0, progress: bool = False,
                params: dict[str, Any] | None = None) -> Recommender[Any]:
    """Model ``key`` on the preset tuned for ``protocol`` (where it has one), with the run's
    seed and progress setting unless ``params`` sets them."""
    config_class = model_class(key).config_class
    defaults = {name: value for name, value in (("seed", seed), ("progress", progress))
                if name in config_class.field_names()}
    return make_model(key, preset_for(key, protocol.preset), **{**defaults, **(params or {})})


def evaluate_fitted(
    model: Recommender[Any], dataset: Dataset, protocol: str | Protocol = "loo-full",
    ks: tuple[int, ...] = (5, 10, 20), keep_seen: bool = False, ties: Ties = "pessimistic",
    seed: int = 0, part: str = "test", progress: bool = False,
) -> dict:
    """Evaluate an already fitted model (e.g. loaded from disk) on ``dataset``'s split; the
    caller vouches that the model never trained on the evaluated targets."""
    protocol = Protocol.parse(protocol) if isinstance(protocol, str) else protocol
    data_split = raw_split(dataset, protocol.split, seed)
    # The model indexes every item of its dataset; it may rank only those it trained on.
    inside = training_catalogue(data_split.train)
    codes = np.where(inside, np.arange(inside.size), -1)
    eval_set, outside, _ = mapped_eval_set(
        data_split.test if part == "test" else data_split.valid, codes)
    data_split.info.update({"catalogue_items": int(inside.sum()),
                            f"{part}_targets_outside_catalogue": outside})
    with peak_memory() as peak:
        result = evaluate_model(model, eval_set, data_split.train, protocol, ks, keep_seen,
                                ties, seed, progress, catalogue=inside)
    result["fit_seconds"] = 0.0
    result["peak_rss_mb"] = round(peak(), 1)
    return {"protocol": str(protocol), "part": part, "ties": ties, "keep_seen": keep_seen,
            "seed": seed, "dataset": dataset.stats(),
            "split": {"kind": data_split.kind, "evaluated": eval_set.n_rows, **data_split.info},
            "models": {model.key: result}}


def _rss_mb() -> float:
    try:
        with open(f"/proc/{os.getpid()}/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except OSError:
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


@contextmanager
def peak_memory(interval: float = 0.05) -> Iterator:
    """Sample resident memory while the block runs; yields a function giving the peak (MiB)."""
    peak = [_rss_mb()]
    done = threading.Event()

    def sample() -> None:
        while not done.wait(interval):
            peak[0] = max(peak[0], _rss_mb())

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    try:
        yield lambda: peak[0]
    finally:
        done.set()
        thread.join()
        peak[0] = max(peak[0], _rss_mb())


def format_markdown(record: dict, columns: Sequence[str] = HEADLINE) -> str:
    ds = record["dataset"]
    lines = [
        f"### {ds['name']} · {record['protocol']} ({record['part']}, ties: {record['ties']})",
        "",
        f"{ds['customers']:,} customers, {ds['items']:,} items, {ds['interactions']:,} "
        f"interactions; {record['split']['evaluated']:,} evaluated.",
        "",
        "| model | " + " | ".join(columns) + " | fit s | score s | peak MiB |",
        "|---" * (len(columns) + 4) + "|",
    ]
    notes = []
    for key, result in record["models"].items():
        if "error" in result:
            lines.append(f"| {key} | {result['error']} |" + " |" * (len(columns) + 2))
            continue
        if "note" in result:
            notes.append(f"- {key}: {result['note']}")
        cells = [f"{result.get(c, float('nan')):.4f}" for c in columns]
        lines.append(f"| {key} | " + " | ".join(cells) +
                     f" | {result['fit_seconds']:.1f} | {result['score_seconds']:.1f} | "
                     f"{result['peak_rss_mb']:.0f} |")
    return "\n".join(lines + (["", *notes] if notes else [])) + "\n"
