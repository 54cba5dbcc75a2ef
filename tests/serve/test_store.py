"""The event store, against SQLite and a real PostgreSQL server."""

from __future__ import annotations

import threading
import time
from datetime import datetime, timezone

import polars as pl
import pytest

from funnelprint.data.records import check_records
from funnelprint.serve.store import SCHEMA_VERSION, StoreError, open_store
from tests.serve.conftest import event


def events(*records: dict) -> pl.DataFrame:
    return check_records(list(records)).events.drop("index")


def test_migrations_apply_once_and_record_the_version(store_url):
    store = open_store(store_url)
    assert store.migrate() == SCHEMA_VERSION
    assert store.migrate() == SCHEMA_VERSION  # again: nothing to do, no error
    assert store.schema_version() == SCHEMA_VERSION
    assert store.count() == 0
    store.close()


def test_events_round_trip_in_time_order_with_optional_fields(store_url):
    store = open_store(store_url)
    store.migrate()
    added = store.add(events(event("c1", 5, "buy", "p2", price=9.5, brand="acme"),
                             event("c1", 1, "view", "p1"), event("c2", 2, "view", "p1")))
    assert (added.stored, added.duplicates) == (3, 0)
    got = store.customer_events("c1")
    assert got["product_id"].to_list() == ["p1", "p2"]
    assert got["action"].to_list() == ["view", "purchase"]
    assert got["timestamp"][0] == datetime(2026, 3, 1, 10, 1, tzinfo=timezone.utc)
    assert got["price"].to_list() == [None, 9.5]
    assert store.customer_events("nobody").height == 0
    assert store.customer_events("c1", limit=1)["product_id"].to_list() == ["p2"]
    after = int(got["timestamp"].dt.epoch("us")[0])
    assert store.customer_events("c1", after_us=after)["product_id"].to_list() == ["p2"]
    store.close()


def test_event_ids_make_retries_count_once(store_url):
    store = open_store(store_url)
    store.migrate()
    batch = events(event("c1", 1, "view", "p1"), event("c1", 2, "view", "p2"),
                   event("c1", 3, "view", "p3"))
    first = store.add(batch, ["a", "b", None])
    again = store.add(batch, ["a", "b", None])
    inside = store.add(events(event("c9", 1, "view", "p1"), event("c9", 1, "view", "p1")),
                       ["z", "z"])
    assert (first.stored, first.duplicates) == (3, 0)
    assert (again.stored, again.duplicates) == (1, 2)  # the id-less event is stored again
    assert (inside.stored, inside.duplicates) == (1, 1)
    assert sorted(store.event_ids()) == ["a", "b", "z"]
    store.close()


def test_concurrent_writers_all_commit(store_url):
    store = open_store(store_url, pool_size=4)
    store.migrate()

    def write(worker: int) -> None:
        for i in range(10):
            store.add(events(event(f"w{worker}", i, "view", f"p{i}")), [f"{worker}-{i}"])

    threads = [threading.Thread(target=write, args=(w,)) for w in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert store.count() == 40 and len(set(store.event_ids())) == 40
    store.close()


def test_concurrent_retries_of_one_batch_count_each_event_once(store_url):
    """A client retries a batch while the first attempt is still committing: across the
    answers every event is stored once and counted as stored once."""
    store = open_store(store_url, pool_size=4)
    store.migrate()
    batch = events(*(event("c1", i, "view", f"p{i}") for i in range(20)))
    ids = [f"r-{i}" for i in range(20)]
    answers = []
    start = threading.Barrier(4)

    def retry() -> None:
        start.wait(5)
        answers.append(store.add(batch, ids))

    threads = [threading.Thread(target=retry) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(a.stored for a in answers) == 20 == store.count()
    assert sum(a.duplicates for a in answers) == 60
    store.close()


def test_bulk_load(store_url):
    store = open_store(store_url)
    store.migrate()
    frame = events(*[event(f"c{i % 7}", i % 60, "view", f"p{i}") for i in range(500)])
    assert store.bulk_load(frame, chunk=128) == 500
    assert store.count() == 500
    assert store.customer_events("c3").height == len(range(3, 500, 7))
    store.close()


def test_bad_urls_are_refused(tmp_path):
    with pytest.raises(StoreError, match="unknown store"):
        open_store("mysql://x/y")
    with pytest.raises(StoreError, match="does not exist"):
        open_store(f"sqlite:///{tmp_path}/missing/dir/e.sqlite")
    store = open_store("postgresql://nobody@/nodb?host=/nonexistent&port=1")
    with pytest.raises(StoreError, match="cannot connect"):
        store.migrate()


def test_sqlite_urls(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert open_store("sqlite:///rel.sqlite").path.name == "rel.sqlite"  # type: ignore[attr-defined]
    absolute = open_store(f"sqlite:///{tmp_path}/abs.sqlite")
    assert absolute.path == tmp_path / "abs.sqlite"  # type: ignore[attr-defined]
    assert open_store("plain.sqlite").dialect == "sqlite"


def test_sqlite_commits_reach_the_disk_before_they_are_acknowledged(tmp_path):
    """WAL with synchronous=FULL: a commit survives a crash of the machine, not only of the
    process (the durability test's SIGKILL cannot tell the two apart)."""
    store = open_store(f"sqlite:///{tmp_path / 'events.sqlite'}")
    store.migrate()
    with store.transaction() as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    store.close()


def test_a_call_that_waits_past_the_time_limit_fails_as_unavailable(tmp_path):
    """Another writer holds the lock: the write gives up after the store's limit with a
    failure the service answers 503 (retry), instead of waiting for as long as it takes."""
    from funnelprint.serve.store import STORE_FAILURES

    url = f"sqlite:///{tmp_path / 'events.sqlite'}"
    holder, store = open_store(url), open_store(url, timeout_s=0.3)
    store.migrate()
    with holder.transaction():  # the lock is held until the block ends
        started = time.monotonic()
        with pytest.raises(STORE_FAILURES):
            store.add(events(event("c1", 1, "view", "p1")))
        waited = time.monotonic() - started
    assert waited < 5  # the limit is 0.3 s; the holder's own would be 5 s
    assert store.add(events(event("c1", 1, "view", "p1"))).stored == 1  # usable again
    holder.close()
    store.close()
