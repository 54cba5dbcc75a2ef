"""Check recommendation reasons against the raw event log they were fitted on.

Reads a batch of recommendations (``funnelprint recommend --customers all --out F``), samples
reasons, splits each into its phrases and checks every phrase's claim in the raw log, with
Polars and nothing of funnelprint: counts of interactions, shared visits, shared customers and
transitions, the customer's category shares, price percentiles, carts and repeats. Phrases
about the model itself (traits, embeddings) cannot be checked in a log and are counted apart.

    python benchmarks/check_reasons.py --events log.csv --recs recs.parquet [--sample 200]

Conventions: a visit is the log's session column (``user_session``/``session_id``), else a
customer's run of events with gaps of at most 30 minutes; a transition is a customer's step
followed by a step on another product; "often", "similar" and "rarely" hold with at least
:data:`OFTEN` (at most ``OFTEN - 1``) shared visits, customers or transitions; a stated count
must equal the log's; a stated share or percentile must be within one point; "priced like"
holds within :data:`PRICE_ALIKE` percentile points of the mean of the customer's products
(carts: both on the same side of 50), "unlike" where it does not.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import polars as pl

OFTEN = 3
#: Percentile points within which a product is priced like the customer's products.
PRICE_ALIKE = 25
LAST_N = 5
GAP_S = 30 * 60
ACTIONS = {"pv": "view", "view": "view", "cart": "add_to_cart", "add_to_cart": "add_to_cart",
           "remove_from_cart": "remove_from_cart", "buy": "purchase", "pay": "purchase",
           "purchase": "purchase", "fav": "favorite"}


def load(path: Path) -> pl.DataFrame:
    """customer, product, action, time (s), visit, category, price: one row per event in
    each customer's time order (the file's order among equal times)."""
    raw = pl.read_csv(path, infer_schema_length=0)
    cols = raw.columns
    # As the loader does: a cut-short last line and exact duplicate rows are dropped.
    raw = raw.filter(pl.all_horizontal(pl.col(c).is_not_null() for c in cols[-2:])
                     if not path.read_bytes().endswith(b"\n") else pl.lit(True))
    raw = raw.unique(maintain_order=True)
    customer = "user_id"
    product = "product_id" if "product_id" in cols else "item_id"
    action = "event_type"
    if "event_time" in cols:
        time = pl.col("event_time").str.strptime(pl.Datetime, "%Y-%m-%d %H:%M:%S UTC"
                                                 ).dt.epoch("s")
    else:
        time = pl.col("timestamp").cast(pl.Int64)
    category = (pl.coalesce(pl.col("category_code").replace("", None), pl.col("category_id"))
                if "category_code" in cols else pl.col("category_id"))
    price = pl.col("price").cast(pl.Float64) if "price" in cols else pl.lit(None, pl.Float64)
    frame = raw.with_row_index("line").select(
        pl.col(customer).alias("customer"), pl.col(product).alias("product"),
        pl.col(action).replace_strict(ACTIONS, default=pl.col(action)).alias("action"),
        time.alias("time"), category.alias("category"), price.alias("price"),
        pl.col("user_session").alias("session") if "user_session" in cols
        else pl.lit(None, pl.String).alias("session"), "line",
    ).sort(["customer", "time", "line"])
    if "user_session" in cols:
        visit = pl.struct("customer", "session").rank("dense")
    else:
        gap = pl.col("time").diff().over("customer")
        visit = ((pl.col("customer") != pl.col("customer").shift()) | (gap > GAP_S)
                 ).fill_null(True).cum_sum()
    return frame.with_columns(visit.alias("visit")).with_columns(
        pl.col("category").last().over("product").alias("category"))


@dataclass
class Log:
    """What the checks read of the log."""

    events: pl.DataFrame
    counts: dict[str, int] = field(default_factory=dict)
    head: set[str] = field(default_factory=set)
    median: float = 0.0
    category: dict[str, str] = field(default_factory=dict)
    position: dict[str, float] = field(default_factory=dict)
    history: dict[str, list[str]] = field(default_factory=dict)
    customers: dict[str, set[str]] = field(default_factory=dict)
    visits: dict[str, set[int]] = field(default_factory=dict)
    own_visits: dict[str, set[int]] = field(default_factory=dict)
    transitions: Counter[tuple[str, str]] = field(default_factory=Counter)
    left: set[tuple[str, str]] = field(default_factory=set)

    @classmethod
    def of(cls, events: pl.DataFrame) -> Log:
        out = cls(events)
        counts = events["product"].value_counts()
        out.counts = dict(zip(counts["product"], counts["count"], strict=True))
        values = np.sort(np.array(list(out.counts.values())))[::-1]
        size = int(np.searchsorted(np.cumsum(values), 0.25 * values.sum()) + 1)
        out.head = {p for p, c in out.counts.items() if c >= values[size - 1]}
        out.median = float(np.median(values))
        # the latest price by time (the rows are in customer order)
        meta = events.group_by("product").agg(pl.col("category").last(),
                                              pl.col("price").sort_by("time").drop_nulls().last())
        out.category = dict(zip(meta["product"], meta["category"], strict=True))
        priced = meta.filter(pl.col("price").is_not_null() & pl.col("category").is_not_null())
        priced = priced.with_columns(((pl.col("price").rank("average").over("category") - 0.5)
                                      / pl.len().over("category")).alias("position"))
        out.position = dict(zip(priced["product"], priced["position"], strict=True))
        for c, group in events.group_by("customer", maintain_order=True):
            out.history[str(c[0])] = group["product"].to_list()
            out.own_visits[str(c[0])] = set(group["visit"].to_list())
        for p, group in events.group_by("product"):
            out.customers[str(p[0])] = set(group["customer"].to_list())
            out.visits[str(p[0])] = set(group["visit"].to_list())
        moved = events.with_columns(pl.col("product").shift(-1).over("customer").alias("next")
                                    ).filter(pl.col("next").is_not_null()
                                             & (pl.col("next") != pl.col("product")))
        out.transitions = Counter(zip(moved["product"], moved["next"], strict=True))
        cart = events.filter(pl.col("action").is_in(["add_to_cart", "remove_from_cart",
                                                     "purchase"]))
        last = cart.group_by(["customer", "product"]).agg(pl.col("action").last())
        out.left = {(c, p) for c, p, a in last.iter_rows() if a == "add_to_cart"}
        return out

    def shared_customers(self, a: str, b: str) -> int:
        return len(self.customers.get(a, set()) & self.customers.get(b, set()))

    def shared_visits(self, a: str, b: str) -> int:
        return len(self.visits.get(a, set()) & self.visits.get(b, set()))


def number(text: str) -> int:
    return int(text.replace(",", ""))


def close(stated: str, value: float) -> bool:
    return abs(int(stated) - 100 * value) <= 1.0


def category_of(label: str) -> str:
    return label.removeprefix("category ")


def check(phrase: str, customer: str, item: str, log: Log) -> bool | None:
    """Whether the phrase holds in the log (None: a claim about the model, not the log)."""
    history = log.history.get(customer, [])
    recent = history[-LAST_N:]
    count = log.counts.get(item, 0)
    if m := re.fullmatch(r"one of the shop's most popular products \(([\d,]+) interactions\)",
                         phrase):
        return number(m[1]) == count and item in log.head
    if m := re.fullmatch(r"chosen more often than most products \(([\d,]+) interactions\)",
                         phrase):
        return number(m[1]) == count and count > log.median
    if m := re.fullmatch(r"a less common product \(([\d,]+) interactions\)", phrase):
        return number(m[1]) == count and count <= log.median
    if m := re.fullmatch(r"in (.+), like (\d+)% of their (last )?steps"
                         r"(?: and (\d+)% of all their steps)?", phrase):
        if log.category.get(item) != category_of(m[1]):
            return False
        span = recent if m[3] else history
        share = np.mean([log.category.get(p) == log.category[item] for p in span])
        ok = close(m[2], float(share))
        if m[4] is not None:
            ok &= close(m[4], float(np.mean([log.category.get(p) == log.category[item]
                                             for p in history])))
        return ok
    if m := re.fullmatch(r"outside the categories of their (last )?steps", phrase):
        span = recent if m[1] else history
        return all(log.category.get(p) != log.category.get(item) for p in span)
    if m := re.fullmatch(r"similar to recent (\S+)(?: \((\d+) customers? looked at both\))?",
                         phrase):
        shared = log.shared_customers(m[1], item)
        return m[1] in recent and (shared == int(m[2]) if m[2] else shared >= OFTEN)
    if m := re.fullmatch(r"in the same category as recent (\S+)", phrase):
        return m[1] in recent and log.category.get(m[1]) == log.category.get(item)
    if m := re.fullmatch(r"often the next product after (\S+)(?: \((\d+) times\))?", phrase):
        n = log.transitions[(m[1], item)]
        return (history[-1:] == [m[1]] and n >= OFTEN and (m[2] is None or n == int(m[2])))
    if m := re.fullmatch(r"the next product after (\S+) (once|twice|(\d+) times)", phrase):
        n = log.transitions[(m[1], item)]
        stated = {"once": 1, "twice": 2}.get(m[2]) or int(m[3])
        return history[-1:] == [m[1]] and n == stated
    if m := re.fullmatch(r"often in the same visits as (\S+)(?: \((\d+) visits\))?", phrase):
        n = log.shared_visits(m[1], item)
        return m[1] in recent and n >= OFTEN and (m[2] is None or n == int(m[2]))
    if m := re.fullmatch(r"in (\d+) visits? with (\S+)", phrase):
        return m[2] in recent and log.shared_visits(m[2], item) == int(m[1])
    if m := re.fullmatch(r"customers who looked at (\S+) looked at it too", phrase):
        return m[1] in history and log.shared_customers(m[1], item) >= 2  # "customers"
    if m := re.fullmatch(r"(\d+) customers? who looked at (\S+) looked at it too", phrase):
        return m[2] in history and log.shared_customers(m[2], item) == int(m[1])
    if phrase == "rarely the next product after the customer's last one":
        return not history or log.transitions[(history[-1], item)] < OFTEN
    if phrase == "rarely in the same visits as the customer's last products":
        return all(log.shared_visits(p, item) < OFTEN for p in recent)
    if phrase == "rarely chosen by the customers of their products":
        return all(log.shared_customers(p, item) < OFTEN for p in set(history))
    if phrase == "left in the cart":
        return (customer, item) in log.left
    if phrase == "not waiting in the cart":
        return (customer, item) not in log.left
    if phrase == "new to the customer":
        return item not in history
    if m := re.fullmatch(r"the customer came back to it in (\d+) visits \((\d+) steps? on "
                         r"it\)", phrase):
        visits = len(log.visits.get(item, set()) & log.own_visits.get(customer, set()))
        return visits == int(m[1]) >= 2 and history.count(item) == int(m[2])
    if m := re.fullmatch(r"already in the customer's history \((\d+) steps? on it\)", phrase):
        visits = len(log.visits.get(item, set()) & log.own_visits.get(customer, set()))
        return history.count(item) == int(m[1]) and visits < 2
    if m := re.fullmatch(r"priced (like|unlike) the customer's (products|carts)"
                         r"(?: \(percentile (\d+)% of its category(?:, theirs (\d+)%)?\))?",
                         phrase):
        return check_price(m, customer, item, log)
    if m := re.fullmatch(r"priced at percentile (\d+)% of its category, the customer's "
                         r"(products|carts) at (\d+)%", phrase):
        mine, theirs = price_positions(customer, item, m[2], log)
        return mine is not None and close(m[1], mine) and close(m[3], theirs)
    if phrase.startswith("its price is unknown"):
        return item not in log.position
    return None


def price_positions(customer: str, item: str, whose: str, log: Log
                    ) -> tuple[float | None, float]:
    """The item's price percentile in its category and the mean of the customer's products
    (``whose`` = "carts": carted and bought ones); None where either is unknown."""
    events = log.events.filter(pl.col("customer") == customer)
    if whose == "carts":
        events = events.filter(pl.col("action").is_in(["add_to_cart", "purchase"]))
    positions = [log.position[p] for p in events["product"].to_list() if p in log.position]
    if item not in log.position or not positions:
        return None, float("nan")
    return log.position[item], float(np.mean(positions))


def check_price(m: re.Match[str], customer: str, item: str, log: Log) -> bool:
    mine, theirs = price_positions(customer, item, m[2], log)
    if mine is None:
        return False
    ok = m[3] is None or close(m[3], mine)
    ok &= m[4] is None or close(m[4], theirs)
    # the rule is judged on the stated whole points where both are stated (a reader's check)
    a, b = ((int(m[3]), int(m[4])) if m[3] and m[4] else (100 * mine, 100 * theirs))
    like = abs(a - b) <= PRICE_ALIKE if m[2] == "products" else (a - 50) * (b - 50) > 0
    return ok and (like if m[1] == "like" else not like)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=Path, required=True)
    parser.add_argument("--recs", type=Path, required=True)
    parser.add_argument("--sample", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--show", type=int, default=0, help="print this many false phrases")
    args = parser.parse_args(argv)
    log = Log.of(load(args.events))
    recs = pl.read_parquet(args.recs).sample(args.sample, seed=args.seed)
    tally: Counter[str] = Counter()
    kinds: Counter[tuple[str, bool | None]] = Counter()
    false: list[str] = []
    for customer, item, reason in recs.select("customer_id", "product_id", "reason").iter_rows():
        verdicts = []
        for phrase in reason.split("; "):
            verdict = check(phrase, customer, item, log)
            verdicts.append(verdict)
            kind = re.sub(r"'.*'|[\d,.%]+|\S*\d\S*", "#", phrase)[:50]
            kinds[(kind, verdict)] += 1
            if verdict is False:
                false.append(f"{customer} {item}: {phrase}")
        checked = [v for v in verdicts if v is not None]
        tally["reasons"] += 1
        tally["reasons_all_true"] += all(checked)
        tally["phrases"] += len(verdicts)
        tally["checked"] += len(checked)
        tally["true"] += sum(checked)
        tally["bare_id"] += bool(re.search(r"(^|; )in \d+,", reason))
        tally["repeated_category"] += len(re.findall(r"(?:^|; )in ([^,;]+), like", reason)) > \
            len(set(re.findall(r"(?:^|; )in ([^,;]+), like", reason)))
    summary = {"phrases_true_share": round(tally["true"] / max(tally["checked"], 1), 4),
               "reasons_all_true_share": round(tally["reasons_all_true"] / tally["reasons"], 4),
               **tally,
               "by_kind": {f"{k} [{v}]": n for (k, v), n in sorted(
                   kinds.items(), key=lambda kv: -kv[1])}}
    print(json.dumps(summary, indent=1))
    for line in false[:args.show]:
        print("FALSE", line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
