"""Servers and clients for tests, benchmarks and the demo: a throwaway PostgreSQL server in a
temporary directory (initdb, pg_ctl start on a Unix socket only, removal on stop; as root it
runs as an unprivileged user, since PostgreSQL refuses to run as root), ``funnelprint serve``
as a child process, started and waited for until it is ready, and two clients of a running
service on the loopback: one that measures the latency of steady reads (:class:`Prober`),
one that streams numbered event batches and retries what was not acknowledged
(:class:`Streamer`). Every loop is bounded in requests and in time."""

from __future__ import annotations

import math
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: Where PostgreSQL binaries are looked for besides PATH.
SEARCH = ("/usr/local/bin", "/usr/lib/postgresql/15/bin", "/usr/lib/postgresql/16/bin")
DEFAULT_USER = "nobody"


def find_binaries() -> tuple[str, str] | None:
    """Paths of ``initdb`` and ``pg_ctl``, or None when PostgreSQL is not installed."""
    path = os.pathsep.join([os.environ.get("PATH", ""), *SEARCH])
    initdb, pg_ctl = shutil.which("initdb", path=path), shutil.which("pg_ctl", path=path)
    return (initdb, pg_ctl) if initdb and pg_ctl else None


@dataclass
class TempPostgres:
    """A running server; :attr:`url` connects over its socket as the ``postgres`` user."""

    directory: Path
    pg_ctl: str
    port: int
    run_as: str | None
    options: str = ""

    @property
    def url(self) -> str:
        return f"postgresql://postgres@/postgres?host={self.directory}&port={self.port}"

    def create_database(self, name: str) -> str:
        """A new empty database; returns its URL."""
        import psycopg

        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url.replace("/postgres?", f"/{name}?")

    def stop(self) -> None:
        self.resume()
        _run(self.run_as, [self.pg_ctl, "-D", str(self.directory / "data"), "-m", "fast",
                           "-w", "stop"], check=False)
        shutil.rmtree(self.directory, ignore_errors=True)

    def pid(self) -> int:
        """The postmaster's process id."""
        return int((self.directory / "data" / "postmaster.pid").read_text().split()[0])

    def freeze(self) -> None:
        """Stop every server process (SIGSTOP): connections stay open, nothing answers."""
        for pid in self._processes():
            os.kill(pid, signal.SIGSTOP)

    def resume(self) -> None:
        for pid in self._processes():
            os.kill(pid, signal.SIGCONT)

    def kill(self) -> None:
        """SIGKILL the postmaster (its backends end with it)."""
        os.kill(self.pid(), signal.SIGKILL)
        deadline = time.monotonic() + 30
        while self._processes() and time.monotonic() < deadline:
            time.sleep(0.05)

    def restart(self, mode: str = "fast") -> None:
        """Stop (``fast``: sessions are ended) and start again on the same port."""
        data = str(self.directory / "data")
        _run(self.run_as, [self.pg_ctl, "-D", data, "-m", mode, "-w", "stop"], check=False)
        self.start()

    def start(self) -> None:
        """Start the stopped (or killed) server again on its port."""
        _run(self.run_as, [self.pg_ctl, "-D", str(self.directory / "data"), "-l",
                           str(self.directory / "log"), "-w", "-t", "60", "-o", self.options,
                           "start"])

    def _processes(self) -> list[int]:
        """The postmaster and its children."""
        try:
            root = self.pid()
        except (OSError, ValueError, IndexError):
            return []
        found, pending = [], [root]
        while pending:
            pid = pending.pop()
            try:
                children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
            except OSError:
                continue
            found.append(pid)
            pending += [int(c) for c in children]
        return found


def start_postgres(port: int = 55432, run_as: str | None = None,
                   settings: dict[str, str] | None = None) -> TempPostgres:
    """Start a server; ``run_as`` defaults to ``nobody`` when running as root; ``settings``
    are server settings (``{"fsync": "off"}`` where only crashes of clients matter).
    ``RuntimeError`` when the binaries are missing or the server does not start."""
    binaries = find_binaries()
    if binaries is None:
        raise RuntimeError("PostgreSQL binaries (initdb, pg_ctl) not found")
    initdb, pg_ctl = binaries
    if run_as is None and hasattr(os, "geteuid") and os.geteuid() == 0:
        run_as = DEFAULT_USER
    directory = Path(tempfile.mkdtemp(prefix="funnelprint-pg-"))
    if run_as is not None:
        shutil.chown(directory, user=run_as)
    data = directory / "data"
    try:
        _run(run_as, [initdb, "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8",
                      "--no-sync"])
        options = f"-k {directory} -p {port} -c listen_addresses='' -c max_connections=200"
        options += "".join(f" -c {k}={v}" for k, v in (settings or {}).items())
        _run(run_as, [pg_ctl, "-D", str(data), "-l", str(directory / "log"), "-w", "-t", "60",
                      "-o", options, "start"])
    except (OSError, subprocess.CalledProcessError) as exc:
        log_file = directory / "log"
        tail = log_file.read_text()[-2000:] if log_file.exists() else ""
        shutil.rmtree(directory, ignore_errors=True)
        raise RuntimeError(f"PostgreSQL did not start: {exc}\n{tail}") from exc
    return TempPostgres(directory, pg_ctl, port, run_as, options)


def free_port() -> int:
    """A TCP port on the loopback that nothing listens on now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_service(args: list[str], port: int, log: Path, env: dict[str, str] | None = None,
                  timeout_s: float = 90.0) -> subprocess.Popen:
    """``funnelprint serve ARGS --port PORT`` as a child process writing to ``log``,
    returned once ``/readyz`` answers 200. ``RuntimeError`` with the log's tail when it
    exits or is not ready within ``timeout_s`` (it is killed then)."""
    import httpx

    with log.open("ab") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "funnelprint.cli", "serve", *args, "--port", str(port)],
            stdout=out, stderr=out, env=env)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the service exited: {log.read_text()[-2000:]}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                return process
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    process.kill()
    raise RuntimeError(f"the service was not ready in {timeout_s:.0f} s: "
                       f"{log.read_text()[-2000:]}")


def children(pid: int) -> list[int]:
    """Process ids of ``pid``'s children (Linux)."""
    try:
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def alive(pid: int) -> bool:
    """Whether a process runs (a zombie does not)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


@dataclass
class Prober:
    """Reads a customer's profile at a steady rate from its own thread and records each
    request's latency (from the moment it was due) and status; at most ``limit`` requests
    and ``seconds`` seconds."""

    port: int
    headers: dict[str, str] = field(default_factory=dict)
    rate: float = 50.0
    seconds: float = 60.0
    limit: int = 20_000
    path: str = "/v1/customers/u0001/profile"
    samples: list[tuple[float, float, int]] = field(default_factory=list)  # start, s, status

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Prober:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def mark(self) -> float:
        return time.monotonic()

    def wait_until_answering(self, timeout_s: float = 120.0) -> None:
        """Block until the first answer came back (the server's first request may be
        slow: lazy initialisation; it is not part of what is measured)."""
        deadline = time.monotonic() + timeout_s
        while not self.samples and time.monotonic() < deadline:
            time.sleep(0.05)

    def between(self, start: float, end: float) -> list[tuple[float, float, int]]:
        return [s for s in self.samples if start <= s[0] < end]

    def _run(self) -> None:
        import httpx

        begin = time.monotonic()
        with httpx.Client(base_url=f"http://127.0.0.1:{self.port}", headers=self.headers,
                          timeout=30) as client:
            for i in range(self.limit):
                due = begin + i / self.rate
                if self._stop.is_set() or due - begin > self.seconds:
                    return
                time.sleep(max(due - time.monotonic(), 0))
                try:
                    status = client.get(self.path).status_code
                except httpx.HTTPError:
                    status = 0
                self.samples.append((due, time.monotonic() - due, status))


def percentile(values: list[float], q: float) -> float:
    """The ``q``-th percentile (nearest rank) of ``values``; 0 for none."""
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q / 100 * len(ordered)) - 1))]


@dataclass
class Streamer:
    """Posts numbered batches of events with ids from its own thread, retrying a batch
    until it is answered 200 (what a client following the API does); remembers which
    events were acknowledged and the longest wait for an acknowledgement. At most
    ``batches`` batches and ``seconds`` seconds."""

    port: int
    name: str
    headers: dict[str, str] = field(default_factory=dict)
    batch: int = 10
    batches: int = 10_000
    seconds: float = 60.0
    pause_s: float = 0.01
    acknowledged: set[str] = field(default_factory=set)
    sent: set[str] = field(default_factory=set)
    statuses: dict[int, int] = field(default_factory=dict)
    longest_wait_s: float = 0.0

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Streamer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=60)

    def events(self, number: int) -> list[dict[str, Any]]:
        return [{"event_id": f"{self.name}-{number}-{i}", "customer_id": f"s-{self.name}",
                 "timestamp": 1_772_000_000 + number * 60 + i, "action": "view",
                 "product_id": f"p{(number + i) % 100:04d}"} for i in range(self.batch)]

    def _run(self) -> None:
        import httpx

        end = time.monotonic() + self.seconds
        with httpx.Client(base_url=f"http://127.0.0.1:{self.port}", headers=self.headers,
                          timeout=30) as client:
            for number in range(self.batches):
                if self._stop.is_set() or time.monotonic() > end:
                    return
                events = self.events(number)
                self.sent.update(e["event_id"] for e in events)
                started = time.monotonic()
                while time.monotonic() < end + 30:  # a batch sent is retried to the end
                    try:
                        status = client.post("/v1/events", json={"events": events}).status_code
                    except httpx.HTTPError:
                        status = 0
                    self.statuses[status] = self.statuses.get(status, 0) + 1
                    if status == 200:
                        self.acknowledged.update(e["event_id"] for e in events)
                        break
                    time.sleep(0.1)
                self.longest_wait_s = max(self.longest_wait_s, time.monotonic() - started)
                time.sleep(self.pause_s)


def _run(user: str | None, command: list[str], check: bool = True) -> None:
    if user is not None:
        command = ["runuser", "-u", user, "--", *command]
    subprocess.run(command, check=check, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                   timeout=120)


__all__ = ["Prober", "Streamer", "TempPostgres", "alive", "children", "find_binaries",
           "free_port", "percentile", "start_postgres", "start_service"]
