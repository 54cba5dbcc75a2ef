"""One ``Dataset``: external ids mapped to contiguous indices once, sequences per customer,
and what is known about each item (category, brand, price). Every model reads it: the
sequential recommenders and the trait profiles alike. :meth:`Dataset.aligned_to` maps a new
log onto a fitted item index.

Loaders are selected by a prefix: ``events:PATH`` (any event file), ``sasrec:PATH``
(``user item`` per line), ``s3rec:PATH`` (``user item item ...`` per line) and
``recbole:PATH.inter`` (RecBole atomic files, with ``.item`` metadata when present).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from funnelprint.data.errors import EventDataError, input_file
from funnelprint.data.load import check_events_left
from funnelprint.data.pipeline import EventLog, prepare_events
from funnelprint.data.schema import CANONICAL_ACTIONS, ColumnMapping
from funnelprint.data.sequences import Sequences

log = logging.getLogger(__name__)

LOADERS = ("events", "sasrec", "s3rec", "recbole")


@dataclass
class Dataset:
    """Customers' time-ordered interactions with contiguous customer and item indices.

    Attributes
    ----------
    customer_ids, item_ids : arrays of str
        External id of each index.
    sequences : Sequences
        Row ``u`` holds customer ``u``'s interactions in time order.
    action_names : tuple of str
        Name of each action index.
    item_categories, item_brands : arrays of str or None
        Category and brand of each item ("" where unknown); None when nothing is known.
    item_prices : float array or None
        Price of each item (NaN where unknown).
    """

    customer_ids: np.ndarray
    item_ids: np.ndarray
    sequences: Sequences
    action_names: tuple[str, ...] = CANONICAL_ACTIONS
    item_categories: np.ndarray | None = None
    name: str = "dataset"
    synthetic_time: bool = False  # True where timestamps are positions, not times
    item_brands: np.ndarray | None = None
    item_prices: np.ndarray | None = None

    @property
    def n_customers(self) -> int:
        return self.customer_ids.size

    @property
    def n_items(self) -> int:
        return self.item_ids.size

    @property
    def n_interactions(self) -> int:
        return self.sequences.items.size

    def customer_index(self) -> dict[str, int]:
        """External customer id -> row. Built once per id array (a service asks for it on
        every request); a dataset given other ``customer_ids`` builds its own."""
        cached = self.__dict__.get("_customer_index")
        if cached is None or cached[0] is not self.customer_ids:
            cached = (self.customer_ids, {str(c): i for i, c in enumerate(self.customer_ids)})
            self.__dict__["_customer_index"] = cached
        index: dict[str, int] = cached[1]
        return index

    def with_sequences(self, sequences: Sequences, **changes: Any) -> Dataset:
        """The same id maps with other sequences (a split's training part, say)."""
        return replace(self, sequences=sequences, **changes)

    def item_counts(self) -> np.ndarray:
        return np.bincount(self.sequences.items, minlength=self.n_items)

    def stats(self) -> dict:
        lengths = self.sequences.lengths
        return {
            "name": self.name,
            "customers": self.n_customers,
            "items": self.n_items,
            "interactions": self.n_interactions,
            "density": round(self.n_interactions / max(1, self.n_customers * self.n_items), 6),
            "mean_length": round(float(lengths.mean()), 2) if lengths.size else 0.0,
            "actions": {
                name: int(n)
                for name, n in zip(
                    self.action_names,
                    np.bincount(self.sequences.actions, minlength=len(self.action_names)),
                    strict=True,
                )
                if n
            },
        }

    # ------------------------------------------------------------------ storage

    def to_arrays(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """Arrays and JSON metadata that :meth:`from_arrays` rebuilds the dataset from."""
        seq = self.sequences
        arrays = {"offsets": seq.offsets, "items": seq.items, "actions": seq.actions,
                  "times": seq.times}
        if seq.sessions is not None:
            arrays["sessions"] = seq.sessions
        if self.item_prices is not None:
            arrays["item_prices"] = self.item_prices
        meta = {
            "customer_ids": self.customer_ids.tolist(),
            "item_ids": self.item_ids.tolist(),
            "action_names": list(self.action_names),
            "item_categories": _strings(self.item_categories),
            "item_brands": _strings(self.item_brands),
            "name": self.name,
            "synthetic_time": self.synthetic_time,
        }
        return arrays, meta

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> Dataset:
        """Rebuild a dataset written by :meth:`to_arrays`; inconsistent input raises
        ``ValueError``."""
        try:
            sessions = arrays.get("sessions")
            prices = arrays.get("item_prices")
            sequences = Sequences(np.asarray(arrays["offsets"], dtype=np.int64),
                                  np.asarray(arrays["items"], dtype=np.int32),
                                  np.asarray(arrays["actions"], dtype=np.int8),
                                  np.asarray(arrays["times"], dtype=np.int64),
                                  None if sessions is None else np.asarray(sessions, np.int64))
            customer_ids = np.asarray(meta["customer_ids"], dtype=str)
            item_ids = np.asarray(meta["item_ids"], dtype=str)
            action_names = tuple(str(a) for a in meta["action_names"])
            dataset = cls(customer_ids, item_ids, sequences, action_names,
                          _objects(meta["item_categories"]), str(meta["name"]),
                          bool(meta["synthetic_time"]), _objects(meta.get("item_brands")),
                          None if prices is None else np.asarray(prices, dtype=np.float64))
        except (KeyError, TypeError) as exc:
            raise ValueError(f"incomplete dataset ({exc})") from exc
        dataset.check()
        return dataset

    def check(self) -> None:
        """Raise ``ValueError`` unless the id maps and sequences agree."""
        seq = self.sequences
        if seq.n_rows != self.n_customers:
            raise ValueError(f"{seq.n_rows} sequences for {self.n_customers} customers")
        if seq.offsets.size and (seq.offsets[0] != 0 or np.any(np.diff(seq.offsets) < 0)):
            raise ValueError("sequence offsets are not increasing from 0")
        if seq.items.size and (seq.items.min() < 0 or seq.items.max() >= self.n_items):
            raise ValueError(f"item indices outside 0..{self.n_items - 1}")
        if seq.actions.size and (seq.actions.min() < 0
                                 or seq.actions.max() >= len(self.action_names)):
            raise ValueError("action indices outside the action names")
        for label, values in (("categories", self.item_categories),
                              ("brands", self.item_brands), ("prices", self.item_prices)):
            if values is not None and values.size != self.n_items:
                raise ValueError(f"{values.size} {label} for {self.n_items} items")

    # ------------------------------------------------------------------ items

    def with_products(self, products: pl.DataFrame) -> Dataset:
        """This dataset with item metadata from a products table (``product_id`` and any of
        ``category, brand, price``): its non-null values replace what the dataset knew."""
        meta = _item_meta(self.item_ids, products)
        matched = int(meta.pop("_matched").sum())
        if matched == 0 and self.n_items and products.height:
            sample = ", ".join(map(repr, products["product_id"].head(3).to_list()))
            raise ValueError(f"the products table describes none of the {self.n_items:,} "
                             f"items of the events (its ids begin {sample}; the events' "
                             f"{self.item_ids[0]!r}): is it the products file of this shop?")
        # Under half described usually means the ids are written differently in the two files.
        (log.warning if matched < self.n_items / 2 else log.info)(
            "products table describes %d of %d items", matched, self.n_items)
        return replace(
            self,
            item_categories=_overlay(self.item_categories, meta.get("category"), ""),
            item_brands=_overlay(self.item_brands, meta.get("brand"), ""),
            item_prices=_overlay(self.item_prices, meta.get("price"), np.nan),
        )

    def with_items(self, product_ids: Any) -> Dataset:
        """This dataset with the products of ``product_ids`` it does not index yet appended
        to its items, without interactions (a products file's catalogue)."""
        ids = pl.Series(product_ids).cast(pl.String).unique(maintain_order=True)
        new = ids.filter(~ids.is_in(pl.Series(self.item_ids.astype(str)).implode()))
        if not new.len():
            return self
        n = new.len()

        def grown(values: np.ndarray | None, empty: object) -> np.ndarray | None:
            return None if values is None else np.concatenate(
                [values, np.full(n, empty, dtype=values.dtype)])

        return replace(self, item_ids=np.concatenate([self.item_ids.astype(str),
                                                      new.to_numpy().astype(str)]),
                       item_categories=grown(self.item_categories, ""),
                       item_brands=grown(self.item_brands, ""),
                       item_prices=grown(self.item_prices, np.nan))

    def item_table(self) -> pl.DataFrame:
        """``item`` (index), ``product_id`` and whichever of ``category, brand, price`` the
        dataset knows."""
        columns: dict[str, Any] = {"item": np.arange(self.n_items), "product_id": self.item_ids}
        for name, values in (("category", self.item_categories), ("brand", self.item_brands)):
            if values is not None:
                columns[name] = pl.Series(values, dtype=pl.String).replace("", None)
        if self.item_prices is not None:
            columns["price"] = pl.Series(self.item_prices).fill_nan(None)
        return pl.DataFrame(columns)

    def aligned_to(self, item_ids: np.ndarray) -> Alignment:
        """The same customers and events re-indexed onto ``item_ids`` (a fitted model's
        items); events of products outside it are dropped and counted. Customers keep their
        rows even when none of their events remain."""
        item_ids = np.asarray(item_ids).astype(str)
        codes = _codes(pl.Series(self.item_ids), pl.Series(item_ids))
        missing = np.isnan(codes) if codes.dtype.kind == "f" else np.zeros(codes.size, bool)
        codes = np.where(missing, -1, codes).astype(np.int64)
        seq = self.sequences
        keep = codes[seq.items] >= 0
        kept = seq.mask(keep)
        kept.items = codes[kept.items].astype(np.int32)
        unknown_items = int(np.unique(seq.items[~keep]).size)
        if unknown_items:
            log.info("%d event(s) of %d product(s) outside the fitted items skipped",
                     int((~keep).sum()), unknown_items)
        present = np.flatnonzero(~missing)

        def moved(values: np.ndarray | None, empty: object) -> np.ndarray | None:
            if values is None:
                return None
            out = np.full(item_ids.size, empty, dtype=values.dtype)
            out[codes[present]] = values[present]
            return out

        dataset = Dataset(self.customer_ids, item_ids, kept, self.action_names,
                          moved(self.item_categories, ""), self.name, self.synthetic_time,
                          moved(self.item_brands, ""), moved(self.item_prices, np.nan))
        return Alignment(dataset, int((~keep).sum()), unknown_items)

    # ------------------------------------------------------------------ building

    @classmethod
    def from_frame(
        cls, frame: pl.DataFrame, name: str = "dataset", synthetic_time: bool = False,
        item_categories: dict[str, str] | None = None, products: pl.DataFrame | None = None,
    ) -> Dataset:
        """Build from a frame with ``customer_id, item_id, action, time`` (and optionally
        ``session``) sorted by customer then time. Customer and item indices follow first
        appearance. ``products`` (``product_id`` and any of ``category, brand, price``)
        describes the items."""
        customers = frame["customer_id"].cast(pl.String)
        items = frame["item_id"].cast(pl.String)
        customer_ids = customers.unique(maintain_order=True)
        item_ids = items.unique(maintain_order=True)
        rows = _codes(customers, customer_ids)
        if not np.all(np.diff(rows) >= 0):
            raise ValueError("frame must be sorted by customer (contiguous journeys)")
        item_codes = _codes(items, item_ids)
        extra = sorted(set(frame["action"].unique().to_list()) - set(CANONICAL_ACTIONS))
        action_names = (*CANONICAL_ACTIONS, *extra)
        action_codes = _codes(frame["action"], pl.Series(action_names))
        times = frame["time"].to_numpy().astype(np.int64)
        sessions = frame["session"].to_numpy() if "session" in frame.columns else None
        sequences = Sequences.from_rows(rows, item_codes, action_codes, times,
                                        customer_ids.len(), sessions)
        categories = None
        if item_categories:
            categories = np.array([item_categories.get(i, "") for i in item_ids.to_list()],
                                  dtype=object)
        dataset = cls(customer_ids.to_numpy().astype(str), item_ids.to_numpy().astype(str),
                      sequences, action_names, categories, name, synthetic_time)
        return dataset if products is None else dataset.with_products(products)

    @classmethod
    def from_events(cls, log: EventLog | pl.DataFrame, name: str = "events",
                    collapse_repeats: bool = True, products: pl.DataFrame | None = None
                    ) -> Dataset:
        """From a prepared event log (or its event table). ``collapse_repeats`` merges
        consecutive events of one customer on the same product (view → cart → buy of one
        item) into one step at the first event's time whose action is the run's last
        non-view action (its funnel outcome: bought, carted, removed), or view when there
        is none. The log's sessions are kept (a merged step keeps its first event's). Its
        ``category, brand, price`` columns describe the items (each product's latest non-null
        value), and a ``products`` table (``product_id`` and any of those columns) on top of
        them (see :meth:`with_products`)."""
        events = log if isinstance(log, pl.DataFrame) else log.events
        frame = events.select(
            "customer_id",
            pl.col("product_id").alias("item_id"),
            "action",
            pl.col("timestamp").dt.epoch("us").alias("time"),
            *(["session"] if "session" in events.columns else []),
        )
        if collapse_repeats:
            frame = _collapse_runs(frame)
        dataset = cls.from_frame(frame, name=name, products=_event_products(events))
        return dataset if products is None else dataset.with_products(products)


def _collapse_runs(frame: pl.DataFrame) -> pl.DataFrame:
    repeat = ((pl.col("customer_id") == pl.col("customer_id").shift(1))
              & (pl.col("item_id") == pl.col("item_id").shift(1))).fill_null(False)
    runs = frame.with_columns((~repeat).cum_sum().alias("_run"))
    if runs.height == runs["_run"].n_unique():
        return frame
    outcome = pl.when(pl.col("action") != "view").then(pl.col("action"))
    firsts = [pl.col(c).first() for c in frame.columns if c != "action"]
    return (
        runs.group_by("_run", maintain_order=True)
        .agg(*firsts, outcome.drop_nulls().last().fill_null("view").alias("action"))
        .select(frame.columns)
    )


@dataclass(frozen=True)
class Alignment:
    """A dataset re-indexed onto another item index (:meth:`Dataset.aligned_to`), and how
    many events and distinct products fell outside it."""

    dataset: Dataset
    unknown_events: int
    unknown_items: int


META_COLUMNS = ("category", "brand", "price")


def _event_products(events: pl.DataFrame) -> pl.DataFrame | None:
    """Each product's latest non-null category, brand and price among the events (by time:
    the log is sorted by customer, so its last row on a product need not be the latest)."""
    table: pl.DataFrame | None = None
    for column in META_COLUMNS:
        if column not in events.columns:
            continue
        pairs = (events.select("product_id", column, "timestamp").drop_nulls()
                 .sort("timestamp", maintain_order=True)
                 .unique("product_id", keep="last", maintain_order=True).drop("timestamp"))
        table = pairs if table is None else table.join(pairs, on="product_id", how="full",
                                                      coalesce=True)
    return table


def _item_meta(item_ids: np.ndarray, products: pl.DataFrame) -> dict[str, np.ndarray]:
    """Per item (in ``item_ids`` order): the products table's category, brand (str, ""
    where missing) and price (float, NaN where missing), for the columns it has; and
    ``_matched``, whether the table lists the item."""
    table = products.with_columns(pl.col("product_id").cast(pl.String)).unique(
        "product_id", keep="first", maintain_order=True)
    joined = pl.DataFrame({"product_id": np.asarray(item_ids).astype(str)}).join(
        table, on="product_id", how="left", maintain_order="left")
    out: dict[str, np.ndarray] = {"_matched": joined.select(
        pl.col("product_id").is_in(table["product_id"].implode())).to_series().to_numpy()}
    for column in ("category", "brand"):
        if column in joined.columns:
            out[column] = joined[column].cast(pl.String).fill_null("").to_numpy().astype(object)
    if "price" in joined.columns:
        price = joined["price"].cast(pl.Float64, strict=False)
        out["price"] = price.fill_null(np.nan).to_numpy().astype(np.float64)
    return out


def _overlay(base: np.ndarray | None, new: np.ndarray | None, empty: object
             ) -> np.ndarray | None:
    """``new`` where it knows a value, else ``base``."""
    if new is None:
        return base
    if base is None:
        return new
    unknown = np.isnan(new) if new.dtype.kind == "f" else new == empty
    return np.where(unknown, base, new).astype(new.dtype)


def _strings(values: np.ndarray | None) -> list[str] | None:
    return None if values is None else [str(v) for v in values]


def _objects(values: list[str] | None) -> np.ndarray | None:
    return None if values is None else np.asarray(values, dtype=object)


def _codes(values: pl.Series, vocabulary: pl.Series) -> np.ndarray:
    lookup = pl.DataFrame({"v": vocabulary, "code": np.arange(vocabulary.len())})
    joined = pl.DataFrame({"v": values}).join(lookup, on="v", how="left", maintain_order="left")
    return joined["code"].to_numpy()


# ---------------------------------------------------------------------- loaders


def load_dataset(
    spec: str, mapping: ColumnMapping | None = None, kcore: int = 0, **event_options: Any
) -> Dataset:
    """Load ``PREFIX:PATH`` (see module docstring); ``kcore`` > 0 applies k-core filtering."""
    prefix, sep, path_text = spec.partition(":")
    if not sep or prefix not in LOADERS:
        raise ValueError(f"dataset must be PREFIX:PATH with PREFIX one of {', '.join(LOADERS)}; "
                         f"got {spec!r}")
    path = input_file(path_text)
    if prefix == "events":
        event_log = prepare_events(path, mapping, **event_options)
        check_events_left(event_log.load_report, event_log.events.height, event_log.dropped)
        dataset = Dataset.from_events(event_log, name=path.stem)
    elif path.is_dir():
        raise EventDataError(f"is a directory; {prefix}: reads one file", path=str(path))
    else:
        try:
            if prefix == "sasrec":
                dataset = _read_user_item_lines(path, one_pair_per_line=True)
            elif prefix == "s3rec":
                dataset = _read_user_item_lines(path, one_pair_per_line=False)
            else:
                dataset = _read_recbole(path)
        except pl.exceptions.PolarsError as exc:
            raise EventDataError(f"cannot read as {prefix}: {' '.join(str(exc).split())[:200]}",
                                 path=str(path)) from None
    if not dataset.n_interactions:
        raise EventDataError("no interactions to use (no rows, or every row dropped)",
                             path=str(path))
    if kcore > 0:
        dataset = kcore_filter(dataset, kcore)
        if not dataset.n_interactions:
            raise EventDataError(f"the {kcore}-core filter leaves no interactions; lower "
                                 "--kcore", path=str(path))
    return dataset


def _read_user_item_lines(path: Path, one_pair_per_line: bool) -> Dataset:
    """SASRec ``user item`` lines or S3-Rec ``user item item ...`` lines, chronological."""
    text = pl.read_csv(path, has_header=False, new_columns=["line"], separator="\x1f",
                       quote_char=None, infer_schema=False)
    first = text["line"].head(1).to_list()
    if first and first[0] is not None and ("," in first[0] or "\t" in first[0]):
        raise EventDataError("expected space-separated 'user item ...' lines, found a comma "
                             "or tab separated line; read an event file as events:PATH",
                             path=str(path), line=1, value=first[0][:60])
    tokens = text.select(pl.col("line").str.strip_chars().str.split(" ").alias("t")).filter(
        pl.col("t").list.len() >= 2
    )
    skipped = text.height - tokens.height
    if skipped:
        log.warning("%s: skipped %d line(s) without a user and an item", path, skipped)
    frame = tokens.select(
        pl.col("t").list.first().alias("customer_id"),
        pl.col("t").list.slice(1).alias("item_id"),
    ).explode("item_id")
    if one_pair_per_line and tokens.select(pl.col("t").list.len().max()).item() > 2:
        raise EventDataError("expected 'user item' per line", path=str(path))
    # Keep the file's order within each customer; customers may interleave (SASRec files do not).
    frame = _contiguous(frame.with_row_index("pos"), "pos")
    frame = frame.with_columns(
        pl.lit("purchase").alias("action"),
        pl.int_range(pl.len()).over("customer_id").cast(pl.Int64).alias("time"),
    )
    return Dataset.from_frame(frame, name=path.stem, synthetic_time=True)


def _contiguous(frame: pl.DataFrame, *order: str) -> pl.DataFrame:
    """Each customer's rows together, customers in order of first appearance (``pos``),
    rows ordered by ``order`` within a customer."""
    first = pl.col("pos").min().over("customer_id").alias("first")
    return frame.with_columns(first).sort("first", *order).drop("first", "pos")


def _read_recbole(path: Path) -> Dataset:
    frame = pl.read_csv(path, separator="\t", infer_schema=False, quote_char=None)
    names = {c.split(":")[0]: c for c in frame.columns}
    for needed in ("user_id", "item_id"):
        if needed not in names:
            raise EventDataError(f"RecBole file lacks a {needed} column", path=str(path))
    has_time = "timestamp" in names
    frame = frame.select(
        pl.col(names["user_id"]).alias("customer_id"),
        pl.col(names["item_id"]).alias("item_id"),
        (pl.col(names["timestamp"]).cast(pl.Float64) if has_time else pl.lit(0.0)).alias("ts"),
    ).with_row_index("pos")
    frame = _contiguous(frame, "ts", "pos")
    # Timestamps: RecBole stores epoch seconds.
    frame = frame.with_columns(
        pl.lit("purchase").alias("action"),
        (pl.col("ts") * 1_000_000).cast(pl.Int64).alias("time"),
    )
    categories = _recbole_categories(path.with_suffix(".item"))
    return Dataset.from_frame(frame, name=path.stem, synthetic_time=not has_time,
                              item_categories=categories)


def _recbole_categories(path: Path) -> dict[str, str] | None:
    if not path.exists():
        return None
    items = pl.read_csv(path, separator="\t", infer_schema=False, quote_char=None)
    names = {c.split(":")[0]: c for c in items.columns}
    category = next((c for c in items.columns if c.endswith(":token_seq") or
                     c.split(":")[0] in ("class", "category", "genre")), None)
    if "item_id" not in names or category is None:
        return None
    first = items[category].str.split(" ").list.first()
    return dict(zip(items[names["item_id"]].to_list(), first.to_list(), strict=True))


def kcore_filter(dataset: Dataset, k: int) -> Dataset:
    """Repeatedly drop customers and items with fewer than ``k`` interactions."""
    seq = dataset.sequences
    keep = np.ones(seq.items.size, dtype=bool)
    rows = np.repeat(np.arange(seq.n_rows), seq.lengths)
    while True:
        user_n = np.bincount(rows[keep], minlength=seq.n_rows)
        item_n = np.bincount(seq.items[keep], minlength=dataset.n_items)
        bad = keep & ((user_n[rows] < k) | (item_n[seq.items] < k))
        if not bad.any():
            break
        keep &= ~bad
    kept = seq.mask(keep)
    users = np.flatnonzero(kept.lengths > 0)
    items_used = np.unique(kept.items)
    remap = np.full(dataset.n_items, -1, dtype=np.int64)
    remap[items_used] = np.arange(items_used.size)
    kept = kept.select(users)
    kept.items = remap[kept.items].astype(np.int32)
    log.info("%d-core: %d of %d interactions kept", k, kept.items.size, seq.items.size)

    def used(values: np.ndarray | None) -> np.ndarray | None:
        return None if values is None else values[items_used]

    return replace(dataset, customer_ids=dataset.customer_ids[users],
                   item_ids=dataset.item_ids[items_used], sequences=kept,
                   item_categories=used(dataset.item_categories),
                   item_brands=used(dataset.item_brands), item_prices=used(dataset.item_prices))
