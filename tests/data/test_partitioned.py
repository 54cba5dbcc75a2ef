"""Logs read in chunks into partitions of whole customers give what the in-memory reader
gives: the same errors (file, line, column, value), the same counts, the same journeys."""

from __future__ import annotations

import json
import zlib

import numpy as np
import polars as pl
import pytest
from safetensors.numpy import load_file

from funnelprint.cli import run
from funnelprint.data import EventDataError, prepare_events, read_events
from funnelprint.data.partitioned import (
    in_sample,
    parse_memory,
    partition_events,
    partitions_for,
    sample_journeys,
)
from funnelprint.data.simulate import SimulationConfig, simulate

BAD = """user_id,timestamp,action,product_id,price
u1,2024-01-01 10:00:00,view,p1,3.5
u2,2024-01-01 10:00:05,view,p2,4
u1,2024-01-01 10:01:00,add_to_cart,p1,3.5
u3,2024-01-01 10:02:00,view,p1,cheap
u1,2024-01-01 10:01:00,add_to_cart,p1,3.5

u4,not a time,view,p3,1
u5,2024-01-01 10:03:00,view,p3,1,extra
u5,2024-01-01 10:04:00,purchase,,1
u6,2024-01-01 10:05:00,view,p4,"2
u7,2024-01-01 10:06:00,view,p5,2
"""


@pytest.fixture(scope="module")
def shop(tmp_path_factory):
    sim = simulate(SimulationConfig(customers=240, products=80, seed=6, scenario="noisy"))
    return sim.write(tmp_path_factory.mktemp("shop"))


@pytest.mark.parametrize("chunk_bytes", [40, 1 << 20])
def test_errors_and_counts_match_the_reader(write, tmp_path, chunk_bytes):
    path = write("bad.csv", BAD)
    with pytest.raises(EventDataError) as whole:
        read_events(path)
    with pytest.raises(EventDataError) as parts:
        partition_events(path, chunk_bytes=chunk_bytes, work=tmp_path)
    assert str(parts.value) == str(whole.value)
    assert ("bad.csv:5: column 'price': not a finite, non-negative number (value 'cheap')"
            in str(parts.value))
    events, report = read_events(path, on_error="skip")
    log = partition_events(path, on_error="skip", partitions=3, chunk_bytes=chunk_bytes,
                           work=tmp_path)
    read = sum(log.journeys(i).load_report.dropped["duplicate"] for i in range(3))
    assert {**log.report.dropped, "duplicate": read} == dict(report.dropped)
    assert log.report.rows_read == report.rows_read
    kept = pl.concat([log.journeys(i).events for i in range(3)])
    assert sorted(kept["customer_id"]) == sorted(events["customer_id"])
    log.remove()
    assert not log.directory.exists()


def test_partitions_hold_whole_customers_and_the_local_journeys(shop, tmp_path):
    whole = prepare_events(shop["events"]).events
    log = partition_events(shop["events"], partitions=5, chunk_bytes=50_000, work=tmp_path)
    parts = [log.journeys(i).events for i in range(5)]
    owners = [set(p["customer_id"]) for p in parts]
    assert sum(len(o) for o in owners) == len(set().union(*owners))  # whole customers
    columns = ["customer_id", "timestamp", "action", "product_id"]
    joined = pl.concat(parts).select(columns)
    assert joined.sort(columns).equals(whole.select(columns).sort(columns))
    # Sessions split the same events apart (numbering may differ).
    def sizes(frame: pl.DataFrame) -> list[int]:
        return sorted(frame.group_by("customer_id", "session").len()["len"].to_list())
    assert sizes(pl.concat(parts)) == sizes(whole)


def test_the_customer_sample_is_the_crc32_rule(shop, tmp_path):
    log = partition_events(shop["events"], partitions=3, work=tmp_path)
    sample = sample_journeys(log, 0.3, seed=4)
    chosen = set(sample.events["customer_id"])
    expected = {c for c in prepare_events(shop["events"]).events["customer_id"].unique()
                if zlib.crc32(f"4:{c}".encode()) < int(0.3 * 2**32)}
    assert chosen == expected and 0.2 < len(chosen) / 240 < 0.4
    ids = pl.Series(["a", "b", "c"])
    assert in_sample(ids, 1, 1.0).all() and not in_sample(ids, 1, 0.0).any()


def test_fit_and_profile_within_a_memory_budget_match_the_in_memory_commands(shop, tmp_path):
    common = [str(shop["events"]), "--products", str(shop["products"]), "--traits", "4",
              "--seed", "1"]
    assert run(["fit", *common, "--out", str(tmp_path / "whole")]) == 0
    assert run(["fit", *common, "--out", str(tmp_path / "parts"), "--memory", "1GB"]) == 0
    whole = load_file(tmp_path / "whole" / "arrays.safetensors")
    parts = load_file(tmp_path / "parts" / "arrays.safetensors")
    assert all(np.array_equal(v, parts[k]) for k, v in whole.items())
    model = str(tmp_path / "whole")
    for name, extra in (("a.parquet", []), ("b.parquet", ["--memory", "300MB"]),
                        ("c.csv", ["--memory", "300MB"])):
        assert run(["profile", str(shop["events"]), "--model", model,
                    "--out", str(tmp_path / name), *extra]) == 0
    a = pl.read_parquet(tmp_path / "a.parquet").sort("customer_id")
    for other in (pl.read_parquet(tmp_path / "b.parquet"),
                  pl.read_csv(tmp_path / "c.csv", schema_overrides={"customer_id": pl.String})):
        other = other.sort("customer_id")
        assert other["customer_id"].equals(a["customer_id"])
        traits = [c for c in a.columns if c.startswith("trait_")]
        assert np.abs(a.select(traits).to_numpy() - other.select(traits).to_numpy()).max() < 1e-9
    # A sample: fewer customers, the same command.
    assert run(["fit", *common, "--out", str(tmp_path / "sample"), "--memory", "1GB",
                "--sample-events", "5000"]) == 0
    assert run(["fit", str(shop["events"]), "--out", str(tmp_path / "x"),
                "--sample-events", "5000"]) == 2


def test_memory_and_partition_sizes():
    assert parse_memory("6GB") == 6 * 2**30 and parse_memory("512mb") == 512 * 2**20
    with pytest.raises(ValueError, match="at least"):
        parse_memory("10MB")
    with pytest.raises(ValueError, match="expected a size"):
        parse_memory("lots")
    assert partitions_for(4_000_000_000, 6 * 2**30) > partitions_for(400_000_000, 6 * 2**30)
    assert partitions_for(1_000, 6 * 2**30) == 1


def test_inspect_within_a_memory_budget_gives_the_same_summary(shop, capsys):
    summaries = []
    for extra in ([], ["--memory", "300MB"]):
        capsys.readouterr()
        assert run(["inspect", str(shop["events"]), "--json", *extra]) == 0
        summaries.append(json.loads(capsys.readouterr().out))
    assert summaries[0] == summaries[1]
    assert summaries[1]["dropped"]["duplicate"] > 0 and summaries[1]["dropped"]["bot_rate"] > 0
