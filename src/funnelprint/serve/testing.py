"""Servers for tests, benchmarks and the demo: a throwaway PostgreSQL server in a temporary
directory (initdb, pg_ctl start on a Unix socket only, removal on stop; as root it runs as an
unprivileged user, since PostgreSQL refuses to run as root), and ``funnelprint serve`` as a
child process, started and waited for until it is ready."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

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
        _run(self.run_as, [self.pg_ctl, "-D", str(self.directory / "data"), "-m", "fast",
                           "-w", "stop"], check=False)
        shutil.rmtree(self.directory, ignore_errors=True)


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
    return TempPostgres(directory, pg_ctl, port, run_as)


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


def _run(user: str | None, command: list[str], check: bool = True) -> None:
    if user is not None:
        command = ["runuser", "-u", user, "--", *command]
    subprocess.run(command, check=check, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                   timeout=120)


__all__ = ["TempPostgres", "find_binaries", "free_port", "start_postgres", "start_service"]
