"""The durable event store: one schema, versioned migrations and one small interface over
SQLite (embedded, WAL, the default) and PostgreSQL.

Every write is one transaction that has committed when the call returns. Events carry an
optional client ``event_id``, unique where given, so that a retried batch is stored once.
Times are kept as integer microseconds since the epoch (UTC).
"""

from __future__ import annotations

import heapq
import itertools
import os
import queue
import select
import socket
import sqlite3
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import polars as pl
import psycopg

from funnelprint.data.timestamps import TIMESTAMP_DTYPE

#: Columns of ``events`` besides the surrogate key, in insert order.
COLUMNS = ("event_id", "customer_id", "ts", "action", "product_id", "session_id", "category",
           "brand", "price", "quantity", "received_at")
#: Optional canonical event columns stored as they are.
OPTIONAL = ("session_id", "category", "brand", "price", "quantity")

# Each migration: (version, statements). ``{id}`` is the dialect's auto-increment key.
MIGRATIONS: tuple[tuple[int, tuple[str, ...]], ...] = (
    (1, (
        """CREATE TABLE events (
            id {id},
            event_id TEXT UNIQUE,
            customer_id TEXT NOT NULL,
            ts BIGINT NOT NULL,
            action TEXT NOT NULL,
            product_id TEXT NOT NULL,
            session_id TEXT,
            category TEXT,
            brand TEXT,
            price DOUBLE PRECISION,
            quantity DOUBLE PRECISION,
            received_at BIGINT NOT NULL
        )""",
        "CREATE INDEX events_customer ON events (customer_id, ts, id)",
    )),
)
SCHEMA_VERSION = MIGRATIONS[-1][0]
_ID_COLUMN = {"sqlite": "INTEGER PRIMARY KEY AUTOINCREMENT",
              "postgresql": "BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY"}
_LOOKUP_CHUNK = 500
_PG_LOCK = 0x66756E6C  # advisory lock held while migrating


#: Seconds a store call may take (connection, statements, waiting for a pooled connection)
#: before it fails as unavailable.
DEFAULT_TIMEOUT_S = 5.0


class StoreError(RuntimeError):
    """The store cannot be opened or used (bad URL, unreachable server, newer schema)."""


class StoreTimeout(StoreError):
    """A store call ran past its time limit and was abandoned."""


#: What a store that is down or busy raises (answered 503: the client should retry).
STORE_FAILURES: tuple[type[Exception], ...] = (StoreError, sqlite3.OperationalError,
                                               psycopg.OperationalError)
#: What a retry cannot fix (a value the database refuses): answered 4xx. Checked first.
STORE_REFUSALS: tuple[type[Exception], ...] = (psycopg.errors.ProgramLimitExceeded,
                                               psycopg.DataError, psycopg.IntegrityError,
                                               sqlite3.DataError, sqlite3.IntegrityError)


class Watchdog:
    """Abandons store calls that pass their deadline, from one background thread: the
    call's connection is cut (PostgreSQL: its socket is shut down, which a server that
    does not answer at all cannot prevent; SQLite: the statement is interrupted), so the
    blocked call fails at once instead of waiting for a server that may never answer."""

    def __init__(self) -> None:
        self._deadlines: list[tuple[float, int, Any]] = []
        self._cancelled: set[int] = set()
        self._expired: set[int] = set()
        self._ids = itertools.count()
        self._wake = threading.Condition()
        self._thread: threading.Thread | None = None

    def arm(self, seconds: float, cut: Any) -> int:
        token = next(self._ids)
        with self._wake:
            heapq.heappush(self._deadlines, (time.monotonic() + seconds, token, cut))
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="store-watchdog",
                                                daemon=True)
                self._thread.start()
            self._wake.notify()
        return token

    def disarm(self, token: int) -> bool:
        """Stop watching; False when the deadline had already passed (the call was cut)."""
        with self._wake:
            if token in self._expired:
                self._expired.discard(token)
                return False
            self._cancelled.add(token)
            return True

    def _run(self) -> None:
        while True:
            with self._wake:
                while not self._deadlines:
                    self._wake.wait()
                when, token, cut = self._deadlines[0]
                wait = when - time.monotonic()
                if wait > 0:
                    self._wake.wait(wait)
                    continue
                heapq.heappop(self._deadlines)
                if token in self._cancelled:
                    self._cancelled.discard(token)
                    continue
                self._expired.add(token)
                # Cut under the lock: the call's owner cannot close the connection (and
                # free its socket for another) between the decision and the cut.
                with suppress(Exception):
                    cut()


@dataclass(frozen=True)
class Added:
    """What one write did: events stored, and events skipped as already stored (their
    ``event_id`` was seen before, or twice in the batch)."""

    stored: int
    duplicates: int


class Store(ABC):
    """Events in, one customer's events out. Thread-safe: connections come from a pool."""

    dialect: str = ""

    def __init__(self, url: str, pool_size: int = 8,
                 timeout_s: float = DEFAULT_TIMEOUT_S) -> None:
        self.url = url
        self.timeout_s = timeout_s
        self._pool: queue.LifoQueue[Any] = queue.LifoQueue()
        self._size = pool_size
        self._opened = 0
        self._lock = threading.Lock()
        self._closed = False
        self._watchdog = Watchdog()

    # ------------------------------------------------------------------ connections

    @abstractmethod
    def _connect(self, timeout_s: float) -> Any:
        """A new connection in autocommit mode (transactions are explicit), opened within
        ``timeout_s``."""

    @abstractmethod
    def _begin_write(self, conn: Any) -> None:
        """Start a write transaction."""

    @abstractmethod
    def _cutter(self, conn: Any) -> Any:
        """A function that makes a call blocked on ``conn`` fail at once."""

    def _stale(self, conn: Any) -> bool:
        """Whether a pooled connection is known dead before use (the server went away)."""
        return False

    def _bound(self, conn: Any, seconds: float) -> None:  # noqa: B027  (PostgreSQL: fixed)
        """Make waits inside the database end within ``seconds`` (where it has such a
        setting per use)."""

    @contextmanager
    def connection(self, timeout_s: float | None = None) -> Iterator[Any]:
        """A pooled connection, returned to the pool afterwards (closed if it failed). The
        whole block, waiting for the connection included, is bounded by ``timeout_s``
        (default: the store's): past it the blocked call fails with :class:`StoreTimeout`."""
        if self._closed:
            raise StoreError("the store is closed")
        limit = self.timeout_s if timeout_s is None else timeout_s
        deadline = time.monotonic() + limit
        conn = self._checkout(deadline)
        healthy = True
        try:
            self._bound(conn, max(deadline - time.monotonic(), 0.001))
        except BaseException:
            self._checkin(conn, healthy=False)
            raise
        token = self._watchdog.arm(max(deadline - time.monotonic(), 0.0), self._cutter(conn))
        try:
            yield conn
        except BaseException as exc:
            healthy = False
            if not self._watchdog.disarm(token):
                raise StoreTimeout(f"the store did not answer within {limit:g} s") from exc
            raise
        finally:
            if healthy and not self._watchdog.disarm(token):
                healthy = False  # cut just as it finished: the connection is unusable
            self._checkin(conn, healthy)

    def _checkout(self, deadline: float) -> Any:
        while True:
            try:
                conn = self._pool.get_nowait()
            except queue.Empty:
                break
            if not self._stale(conn):
                return conn
            self._checkin(conn, healthy=False)  # a restarted server: open a fresh one
        with self._lock:
            grow = self._opened < self._size
            if grow:
                self._opened += 1
        if grow:
            try:
                return self._connect(max(deadline - time.monotonic(), 0.1))
            except Exception:
                with self._lock:
                    self._opened -= 1
                raise
        try:
            return self._pool.get(timeout=max(deadline - time.monotonic(), 0.0))
        except queue.Empty:
            raise StoreTimeout("every store connection is busy") from None

    def _checkin(self, conn: Any, healthy: bool) -> None:
        if healthy and not self._closed:
            self._pool.put(conn)
            return
        with self._lock:
            self._opened -= 1
        _close_quietly(conn)

    @contextmanager
    def transaction(self, timeout_s: float | None = None) -> Iterator[Any]:
        """A write transaction: committed when the block ends, rolled back on error."""
        with self.connection(timeout_s) as conn:
            self._begin_write(conn)
            try:
                yield conn
            except BaseException:
                _rollback_quietly(conn)
                raise
            conn.execute("COMMIT")

    def close(self) -> None:
        """Close every pooled connection; later calls fail."""
        self._closed = True
        while True:
            try:
                _close_quietly(self._pool.get_nowait())
            except queue.Empty:
                return

    # ------------------------------------------------------------------ schema

    def migrate(self) -> int:
        """Apply the migrations not yet applied; returns the schema version."""
        with self.transaction(max(self.timeout_s, 60.0)) as conn:
            self._lock_schema(conn)
            conn.execute("CREATE TABLE IF NOT EXISTS schema_migrations ("
                         "version INTEGER PRIMARY KEY, applied_at BIGINT NOT NULL)")
            done = {row[0] for row in conn.execute("SELECT version FROM schema_migrations")}
            if done and max(done) > SCHEMA_VERSION:
                raise StoreError(f"the store's schema is version {max(done)}, newer than this "
                                 f"funnelprint's {SCHEMA_VERSION}; upgrade funnelprint")
            for version, statements in MIGRATIONS:
                if version in done:
                    continue
                for statement in statements:
                    conn.execute(statement.format(id=_ID_COLUMN[self.dialect]))
                conn.execute(self._sql("INSERT INTO schema_migrations VALUES (?, ?)"),
                             (version, _now_us()))
        return SCHEMA_VERSION

    def _lock_schema(self, conn: Any) -> None:  # noqa: B027  (SQLite: BEGIN IMMEDIATE does it)
        """Serialise concurrent migrations (several workers starting at once)."""

    def schema_version(self) -> int:
        with self.connection() as conn:
            try:
                row = conn.execute("SELECT max(version) FROM schema_migrations").fetchone()
            except Exception as exc:
                raise StoreError("the store has no schema; it is created on first start") from exc
        return int(row[0] or 0)

    # ------------------------------------------------------------------ events

    def add(self, events: pl.DataFrame, event_ids: Sequence[str | None] | None = None) -> Added:
        """Store canonical events (one transaction). ``event_ids``: one per event or None;
        an id already stored, or repeated in the batch, is skipped and counted."""
        rows = _rows(events, event_ids)
        with self.transaction() as conn:
            fresh, _ = self._new_rows(conn, rows)
            # What the insert really added: a concurrent batch with the same ids may have
            # committed between the look-up and the insert (ON CONFLICT skips those rows).
            stored = self._insert(conn, fresh) if fresh else 0
        return Added(stored, len(rows) - stored)

    def _new_rows(self, conn: Any, rows: list[tuple[Any, ...]]
                  ) -> tuple[list[tuple[Any, ...]], int]:
        ids = [r[0] for r in rows if r[0] is not None]
        if not ids:
            return rows, 0
        known: set[str] = set()
        for start in range(0, len(ids), _LOOKUP_CHUNK):
            chunk = ids[start:start + _LOOKUP_CHUNK]
            marks = ", ".join("?" * len(chunk))
            known.update(r[0] for r in conn.execute(
                self._sql(f"SELECT event_id FROM events WHERE event_id IN ({marks})"), chunk))
        fresh = []
        for row in rows:
            if row[0] is not None:
                if row[0] in known:
                    continue
                known.add(row[0])
            fresh.append(row)
        return fresh, len(rows) - len(fresh)

    def _insert(self, conn: Any, rows: list[tuple[Any, ...]]) -> int:
        """Insert ``rows``, skipping event ids already stored; returns how many were added."""
        marks = ", ".join("?" * len(COLUMNS))
        sql = (f"INSERT INTO events ({', '.join(COLUMNS)}) VALUES ({marks}) "
               "ON CONFLICT (event_id) DO NOTHING")
        cursor = conn.cursor()
        cursor.executemany(self._sql(sql), rows)
        return int(cursor.rowcount)

    #: Events per transaction of a bulk load.
    bulk_chunk = 100_000

    def bulk_load(self, events: pl.DataFrame, chunk: int | None = None,
                  timeout_s: float = 600.0) -> int:
        """Store a whole validated event table (no event ids), a chunk per transaction of
        at most ``timeout_s`` seconds."""
        total = 0
        chunk = chunk or self.bulk_chunk
        for start in range(0, events.height, chunk):
            part = events.slice(start, chunk)
            with self.transaction(timeout_s) as conn:
                self._bulk(conn, _rows(part, None))
            total += part.height
        return total

    def _bulk(self, conn: Any, rows: list[tuple[Any, ...]]) -> None:
        self._insert(conn, rows)

    def customer_events(self, customer_id: str, limit: int = 1000,
                        after_us: int | None = None) -> pl.DataFrame:
        """The customer's ``limit`` most recent events (those later than ``after_us``
        microseconds since the epoch, when given), oldest first, as a canonical event table
        (``customer_id, timestamp, action, product_id`` and the optional columns)."""
        later = "" if after_us is None else "AND ts > ? "
        sql = self._sql("SELECT customer_id, ts, action, product_id, session_id, category, "
                        f"brand, price, quantity FROM events WHERE customer_id = ? {later}"
                        "ORDER BY ts DESC, id DESC LIMIT ?")
        params = (customer_id, limit) if after_us is None else (customer_id, after_us, limit)
        with self.connection() as conn:
            rows = conn.execute(sql, params).fetchall()
        return _frame(rows[::-1])

    def count(self) -> int:
        with self.connection() as conn:
            return int(conn.execute("SELECT count(*) FROM events").fetchone()[0])

    def event_ids(self) -> list[str]:
        """Every stored client event id (for checks and tests)."""
        with self.connection() as conn:
            return [r[0] for r in conn.execute(
                "SELECT event_id FROM events WHERE event_id IS NOT NULL").fetchall()]

    def ping(self, timeout_s: float | None = None) -> None:
        with self.connection(timeout_s) as conn:
            conn.execute("SELECT 1").fetchone()

    def _sql(self, text: str) -> str:
        return text


class SQLiteStore(Store):
    """A SQLite file in WAL mode; ``synchronous=FULL`` so a committed write survives a crash
    of the process or of the machine."""

    dialect = "sqlite"
    # A bulk load beside a live service: the service's writes wait for each chunk's lock.
    bulk_chunk = 10_000

    def __init__(self, url: str, path: Path, pool_size: int = 8,
                 timeout_s: float = DEFAULT_TIMEOUT_S) -> None:
        super().__init__(url, pool_size, timeout_s)
        self.path = path
        if not path.parent.exists():
            raise StoreError(f"{url}: the directory {path.parent} does not exist")

    def _connect(self, timeout_s: float) -> sqlite3.Connection:
        try:
            # The busy timeout: how long a write waits for another's lock.
            conn = sqlite3.connect(self.path, timeout=timeout_s, isolation_level=None,
                                   check_same_thread=False)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")
        except sqlite3.Error as exc:
            raise StoreError(f"{self.url}: {exc}") from exc
        return conn

    def _begin_write(self, conn: Any) -> None:
        conn.execute("BEGIN IMMEDIATE")

    def _cutter(self, conn: Any) -> Any:
        return conn.interrupt

    def _bound(self, conn: Any, seconds: float) -> None:
        # A wait for another writer's lock is not interrupted by the watchdog: the busy
        # timeout must end it, and it depends on this call's own limit.
        conn.execute(f"PRAGMA busy_timeout = {max(int(seconds * 1000), 1)}")


class PostgresStore(Store):
    """A PostgreSQL database (psycopg 3); batches are pipelined, bulk loads use COPY."""

    dialect = "postgresql"

    def _connect(self, timeout_s: float) -> Any:
        # The server ends a statement past the time limit itself; the client-side deadline
        # (the watchdog) covers a server that does not answer at all.
        millis = int(self.timeout_s * 1000)
        try:
            return psycopg.connect(
                self.url, autocommit=True, connect_timeout=max(round(timeout_s), 1),
                options=f"-c statement_timeout={millis} -c lock_timeout={millis} "
                        f"-c idle_in_transaction_session_timeout={max(millis * 4, 10_000)}",
                keepalives=1, keepalives_idle=5, keepalives_interval=2, keepalives_count=3,
                tcp_user_timeout=millis)
        except psycopg.Error as exc:
            raise StoreError(f"cannot connect to the PostgreSQL store: "
                             f"{' '.join(str(exc).split())}") from exc

    def _begin_write(self, conn: Any) -> None:
        conn.execute("BEGIN")

    def _cutter(self, conn: Any) -> Any:
        fd = conn.pgconn.socket

        def cut() -> None:
            # shutdown() on a duplicate reaches the shared socket: the blocked read ends.
            with socket.socket(fileno=os.dup(fd)) as sock:
                sock.shutdown(socket.SHUT_RDWR)
        return cut

    def _stale(self, conn: Any) -> bool:
        # An idle connection has nothing to read; data or end-of-file on it means the
        # server closed it (a restart, an administrator's kill) while it sat in the pool.
        if conn.closed or conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
            return True
        try:
            readable, _, _ = select.select([conn.pgconn.socket], [], [], 0)
        except (OSError, ValueError, psycopg.Error):
            return True
        return bool(readable)

    def _lock_schema(self, conn: Any) -> None:
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_PG_LOCK,))

    def _bulk(self, conn: Any, rows: list[tuple[Any, ...]]) -> None:
        conn.execute("SET LOCAL statement_timeout = 0")  # the transaction's own deadline
        with conn.cursor().copy(f"COPY events ({', '.join(COLUMNS)}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)

    def _sql(self, text: str) -> str:
        return text.replace("?", "%s")


def open_store(url: str, pool_size: int = 8, timeout_s: float = DEFAULT_TIMEOUT_S) -> Store:
    """The store at ``url``: ``sqlite:///PATH`` (or a plain file path) or
    ``postgresql://user@host/db``. Nothing is created until :meth:`Store.migrate`."""
    url = str(url).strip()
    if not url:
        raise StoreError("--store is empty; give sqlite:///PATH or postgresql://...")
    scheme = urlparse(url).scheme.lower()
    if scheme in ("postgresql", "postgres"):
        return PostgresStore(url, pool_size, timeout_s)
    if scheme == "sqlite":
        path = url[len("sqlite://"):]
        if path.startswith("/"):
            path = path[1:]  # sqlite:///rel.db is relative, sqlite:////abs.db absolute
        if not path:
            raise StoreError(f"{url}: no file name; give sqlite:///PATH")
        return SQLiteStore(url, Path(path).expanduser(), pool_size, timeout_s)
    if "://" in url:
        raise StoreError(f"{url}: unknown store; give sqlite:///PATH or postgresql://...")
    return SQLiteStore(f"sqlite:///{url}", Path(url).expanduser(), pool_size, timeout_s)


# ---------------------------------------------------------------------- conversions


def _rows(events: pl.DataFrame, event_ids: Sequence[str | None] | None
          ) -> list[tuple[Any, ...]]:
    n = events.height
    ids = list(event_ids) if event_ids is not None else [None] * n
    if len(ids) != n:
        raise ValueError("one event id (or None) per event")
    received = _now_us()
    columns: list[list[Any]] = [
        ids,
        events["customer_id"].cast(pl.String).to_list(),
        events["timestamp"].dt.epoch("us").to_list(),
        events["action"].cast(pl.String).to_list(),
        events["product_id"].cast(pl.String).to_list(),
    ]
    for name in OPTIONAL:
        if name not in events.columns:
            columns.append([None] * n)
            continue
        kind = pl.Float64 if name in ("price", "quantity") else pl.String
        columns.append(events[name].cast(kind).to_list())
    columns.append([received] * n)
    return list(zip(*columns, strict=True))


_FRAME_SCHEMA = {"customer_id": pl.String, "timestamp": pl.Int64, "action": pl.String,
                 "product_id": pl.String, "session_id": pl.String, "category": pl.String,
                 "brand": pl.String, "price": pl.Float64, "quantity": pl.Float64}


def _frame(rows: list[tuple[Any, ...]]) -> pl.DataFrame:
    """Rows of ``customer_events`` as a canonical event table, built eagerly column by
    column: this runs on every request, where a lazy query's planning cost more than the
    few rows it converts (and most requests read none)."""
    columns = list(zip(*rows, strict=True)) if rows else [()] * len(_FRAME_SCHEMA)
    series = []
    for (name, dtype), values in zip(_FRAME_SCHEMA.items(), columns, strict=True):
        if name in OPTIONAL and all(v is None for v in values):
            continue  # an optional column no stored event has
        column = pl.Series(name, values, dtype=dtype)
        if name == "timestamp":
            column = column.cast(pl.Datetime("us", "UTC")).cast(TIMESTAMP_DTYPE)
        series.append(column)
    return pl.DataFrame(series)


def _now_us() -> int:
    return time.time_ns() // 1000


def _close_quietly(conn: Any) -> None:
    with suppress(Exception):
        conn.close()


def _rollback_quietly(conn: Any) -> None:
    with suppress(Exception):
        conn.execute("ROLLBACK")


__all__ = ["DEFAULT_TIMEOUT_S", "SCHEMA_VERSION", "STORE_FAILURES", "STORE_REFUSALS", "Added",
           "PostgresStore", "SQLiteStore", "Store", "StoreError", "StoreTimeout", "Watchdog",
           "open_store"]
