"""A simulated shop of any size, drawn and written block by block.

:func:`write_blocks` writes the files of :func:`~funnelprint.data.simulate.simulate` (the
mixed scenarios) for shops too large to hold in memory: the catalogue is drawn once, then
customers are drawn in blocks of ``block_customers``, each block from its own seeded
generator, and appended to ``events.csv`` (or ``events.parquet``) and ``truth.csv`` as it is
made. Memory is set by the block, not by the shop (about 1 GB for a block of 100,000
customers), and blocks are drawn on ``workers`` processes side by side.

Every block follows the same distributions as a whole-shop simulation (a customer's draws
never depend on other customers), but not the same random stream: a shop written in blocks
is a different draw from the same shop simulated at once, and a different block size gives
a different draw. Events are time-ordered within each block; blocks follow one another
(readers sort journeys themselves). Bots of the ``noisy`` scenario are numbered after every
customer, block by block.
"""

from __future__ import annotations

import contextlib
import json
import logging
import multiprocessing
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np
import polars as pl

from funnelprint.data.simulate import (
    SCENARIOS,
    Simulation,
    SimulationConfig,
    _catalogue,
    _id_width,
    _mixed_block,
    _products_frame,
)

log = logging.getLogger(__name__)

EventFormat = Literal["csv", "parquet"]
TIME_FORMAT = "%Y-%m-%d %H:%M:%S"


@dataclass(frozen=True)
class BlockSummary:
    """What :func:`write_blocks` wrote."""

    events: int
    customers: int
    bots: int
    blocks: int
    paths: dict[str, Path]


def _block_sizes(customers: int, block: int) -> list[int]:
    full, rest = divmod(customers, block)
    return [block] * full + ([rest] if rest else [])


def _draw_block(config: SimulationConfig, index: int, first: int, size: int, first_bot: int,
                width: int) -> Simulation:
    scenario = SCENARIOS[config.scenario]
    catalogue = _catalogue(config, np.random.default_rng(config.seed))
    rng = np.random.default_rng([config.seed, index])
    return _mixed_block(replace(config, customers=size), scenario, catalogue, rng, first=first,
                        first_bot=first_bot, width=width)


def simulate_blocks(config: SimulationConfig, block_customers: int, workers: int = 1
                    ) -> Iterator[Simulation]:
    """The shop of ``config`` as consecutive blocks of at most ``block_customers`` customers
    (each a :class:`~funnelprint.data.simulate.Simulation` of its own customers and bots)."""
    if config.scenario == "bundled":
        raise ValueError("the bundled scenario is simulated whole; blocks need a mixed "
                         "scenario (independent, sparse, many, noisy)")
    if block_customers < 1:
        raise ValueError(f"block_customers must be at least 1, not {block_customers}")
    scenario = SCENARIOS[config.scenario]
    sizes = _block_sizes(config.customers, block_customers)
    firsts = np.r_[0, np.cumsum(sizes)[:-1]].astype(int)
    bots = [round(scenario.bot_share * s) for s in sizes]
    first_bots = config.customers + np.r_[0, np.cumsum(bots)[:-1]].astype(int)
    width = _id_width(config.customers + sum(bots) - 1)
    jobs = [(config, i, int(f), s, int(b), width)
            for i, (f, s, b) in enumerate(zip(firsts, sizes, first_bots, strict=True))]
    if workers <= 1 or len(jobs) == 1:
        for job in jobs:
            yield _draw_block(*job)
        return
    # Spawned, not forked: a fork of a process whose polars threads are running can hang.
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        # At most ``workers`` blocks ahead of the writer, so memory stays a few blocks.
        pending = [pool.submit(_draw_block, *job) for job in jobs[:workers]]
        for position in range(len(jobs)):
            block = pending[position].result()
            pending[position] = None  # type: ignore[call-overload]
            ahead = position + workers
            if ahead < len(jobs):
                pending.append(pool.submit(_draw_block, *jobs[ahead]))
            yield block


def write_blocks(config: SimulationConfig, out: str | Path, block_customers: int = 100_000,
                 event_format: EventFormat = "csv", workers: int = 1) -> BlockSummary:
    """Simulate ``config`` block by block into ``out``: ``events.csv`` (or
    ``events.parquet``), ``products.csv``, ``truth.csv`` and ``archetypes.json``."""
    if event_format not in ("csv", "parquet"):
        raise ValueError(f"event format must be csv or parquet, not {event_format!r}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"events": out / f"events.{event_format}", "products": out / "products.csv",
             "truth": out / "truth.csv", "archetypes": out / "archetypes.json"}
    events = customers = bots = blocks = 0
    first: Simulation | None = None
    all_bots: list[str] = []
    with contextlib.ExitStack() as stack:
        truth_file = stack.enter_context(open(paths["truth"], "wb"))
        events_file = (stack.enter_context(open(paths["events"], "wb"))
                       if event_format == "csv" else None)
        parquet = _ParquetAppender(paths["events"])
        stack.callback(parquet.close)
        for block in simulate_blocks(config, block_customers, workers):
            if events_file is not None:
                block.events.with_columns(pl.col("timestamp").dt.strftime(TIME_FORMAT)).write_csv(
                    events_file, include_header=blocks == 0)
            else:
                parquet.append(block.events)
            block.truth.write_csv(truth_file, include_header=blocks == 0, float_precision=4)
            events += block.events.height
            customers += block.truth.height
            bots += len(block.bots)
            all_bots.extend(block.bots)
            blocks += 1
            if first is None:
                first = block
            log.info("simulated block %d: %d events so far", blocks, events)
    assert first is not None  # at least one customer
    _products_frame(config, _catalogue(config, np.random.default_rng(config.seed))).write_csv(
        paths["products"])
    description = replace(first, config=config, bots=tuple(all_bots)).describe()
    description["blocks"] = {"block_customers": block_customers, "blocks": blocks,
                             "event_format": event_format}
    paths["archetypes"].write_text(json.dumps(description, indent=2))
    return BlockSummary(events, customers, bots, blocks, paths)


class _ParquetAppender:
    """Row groups appended to one Parquet file, opened at the first."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.writer: Any = None

    def append(self, frame: pl.DataFrame) -> None:
        import pyarrow.parquet as pq

        table = frame.to_arrow()
        if self.writer is None:
            self.writer = pq.ParquetWriter(self.path, table.schema, compression="zstd")
        self.writer.write_table(table)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


__all__ = ["BlockSummary", "EventFormat", "simulate_blocks", "write_blocks"]
