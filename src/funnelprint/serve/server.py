"""The server processes around the application (uvicorn): connection limits and timeouts
that uvicorn does not have, and the process model of ``--workers N``.

* **Connections** (:class:`GuardedHttpTools`, uvicorn's httptools protocol): a request's
  headers must arrive within ``header_timeout_s`` of its first byte (or of the connection's
  opening), and hold at most :data:`MAX_HEADER_BYTES`; a worker keeps at most
  ``max_connections`` connections open and closes any beyond at once; an idle keep-alive
  connection is closed after ``keep_alive_s``; malformed HTTP gets a JSON 400.
* **Workers** (:class:`Supervisor`, uvicorn's multiprocess supervisor): SIGHUP reloads the
  models *inside* every worker (each swaps its model set once loaded, so no connection is
  closed and no request dropped), a worker that dies is replaced and its metrics marked
  dead, and every worker watches its parent: when the main process dies (even by SIGKILL)
  the workers stop within :data:`ORPHAN_EXIT_S` seconds, freeing the port, and remove the
  run directory (metrics files, the reload hand-over).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import resource
import shutil
import signal
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.supervisors.multiprocess import Multiprocess

log = logging.getLogger("funnelprint.serve")

#: Environment variable naming the run directory shared by the workers of one server.
RUN_DIR_ENV = "FUNNELPRINT_RUN_DIR"
RUN_DIR_PREFIX = "funnelprint-run-"
#: The file in the run directory that tells every worker which models to serve.
MODELS_FILE = "models.json"
MAX_HEADER_BYTES = 64 * 1024
#: After an answer sent before its request's body arrived, the connection reads (and drops)
#: the rest of the body for at most this long, and at most this much, before it closes: a
#: close with unread bytes resets the connection, and a reset can destroy the answer before
#: the client has read it.
LINGER_S = 2.0
LINGER_BYTES = 8 * 1024 * 1024
#: Seconds an orphaned worker may take to finish its running requests.
ORPHAN_EXIT_S = 3.0


class GuardedHttpTools(HttpToolsProtocol):
    """uvicorn's HTTP protocol with a header deadline, a header size limit, a connection
    cap and JSON answers to malformed requests (limits set by :func:`configure`)."""

    header_timeout_s: float = 5.0
    max_connections: int = 1000

    def connection_made(self, transport: Any) -> None:
        super().connection_made(transport)
        # Every later close (uvicorn's too) goes through the lingering transport.
        self._linger = _LingeringTransport(transport, self)
        self.transport = self._linger  # type: ignore[assignment]
        self._header_bytes = 0
        self._reading_headers = True
        #: Whether the current request's body is still arriving (read by the transport).
        self.body_pending = False
        self._header_timer: asyncio.TimerHandle | None = None
        if len(self.connections) > self.max_connections:
            log.warning("connection refused: %d open, at most %d", len(self.connections) - 1,
                        self.max_connections)
            transport.abort()
            return
        self._arm_header_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_header_timer()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._linger.lingering:
            self._linger.discard(len(data))
            return
        super().data_received(data)
        if self._reading_headers:  # the next request's headers are not complete
            self._header_bytes += len(data)
            if self._header_bytes > MAX_HEADER_BYTES:
                self._refuse(431, "request_headers_too_large",
                             f"request headers over {MAX_HEADER_BYTES} bytes")

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._reading_headers = True
        self._header_bytes = 0
        if self._header_timer is None:
            self._arm_header_timer()

    def on_headers_complete(self) -> None:
        self._reading_headers = False
        self.body_pending = True
        self._cancel_header_timer()
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self.body_pending = False
        super().on_message_complete()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if self.body_pending:
            # Answered before its body arrived: the rest of the body is not the next
            # request's headers, and reading it unbounded would let a client hold the
            # connection, so it closes (lingering).
            self.transport.close()
        else:
            self._expect_next_request()

    def _expect_next_request(self) -> None:
        self._reading_headers = True  # the next request's headers (keep-alive)
        self._header_bytes = 0

    def send_400_response(self, msg: str) -> None:
        self._refuse(400, "bad_request", msg)

    def _arm_header_timer(self) -> None:
        self._header_timer = self.loop.call_later(self.header_timeout_s, self._headers_late)

    def _cancel_header_timer(self) -> None:
        timer = getattr(self, "_header_timer", None)
        if timer is not None:
            timer.cancel()
            self._header_timer = None

    def _headers_late(self) -> None:
        self._header_timer = None
        if not self._reading_headers or self.transport.is_closing():
            return
        if self.cycle is not None and not self.cycle.response_complete:
            return  # a response is on its way; the keep-alive timer takes over after it
        if self._header_bytes:
            self._refuse(408, "request_timeout", f"request headers did not arrive within "
                         f"{self.header_timeout_s:g} s")
        else:
            self.transport.close()

    def _refuse(self, status: int, code: str, detail: str) -> None:
        body = json.dumps({"error": code, "detail": detail}).encode()
        reason = {400: b"Bad Request", 408: b"Request Timeout",
                  431: b"Request Header Fields Too Large"}[status]
        head = (b"HTTP/1.1 %d %s\r\ncontent-type: application/json\r\ncontent-length: %d\r\n"
                b"connection: close\r\n\r\n" % (status, reason, len(body)))
        if not self.transport.is_closing():
            self.transport.write(head + body)
            self.transport.close()


class _LingeringTransport:
    """A connection's transport whose ``close`` lingers while a request answered early is
    still arriving: it sends the end of the stream, keeps reading (and dropping) for at most
    :data:`LINGER_S` and :data:`LINGER_BYTES`, then closes. Everything else is the
    transport's own."""

    def __init__(self, transport: asyncio.Transport, protocol: GuardedHttpTools) -> None:
        self._transport, self._protocol = transport, protocol
        self.lingering = False
        self._dropped = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)

    def is_closing(self) -> bool:
        return self.lingering or self._transport.is_closing()

    def close(self) -> None:
        transport = self._transport
        if self.is_closing():
            return
        if not self._protocol.body_pending or not transport.can_write_eof():
            transport.close()
            return
        self.lingering = True
        transport.write_eof()  # after the answer already buffered
        transport.resume_reading()
        self._protocol.loop.call_later(LINGER_S, transport.close)

    def discard(self, size: int) -> None:
        self._dropped += size
        if self._dropped > LINGER_BYTES:
            self._transport.close()


def configure(header_timeout_s: float, max_connections: int) -> None:
    """Set the connection limits of this process's server (before it serves)."""
    GuardedHttpTools.header_timeout_s = header_timeout_s
    GuardedHttpTools.max_connections = max_connections
    _raise_open_file_limit(max_connections)


def _raise_open_file_limit(connections: int) -> None:
    """Room for ``connections`` sockets and the files of the process itself."""
    with contextlib.suppress(ValueError, OSError):
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        wanted = connections + 256
        if soft != resource.RLIM_INFINITY and soft < wanted:
            target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))


# ---------------------------------------------------------------------- workers


class Supervisor(Multiprocess):
    """uvicorn's supervisor of worker processes; SIGHUP is passed on to every worker
    (each reloads its models in place) instead of restarting them, and a dead worker's
    live gauges are dropped from the metrics."""

    def handle_hup(self) -> None:
        log.info("SIGHUP: every worker reloads its models")
        for process in self.processes:
            if process.pid is not None and process.exitcode is None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(process.pid, signal.SIGHUP)

    def keep_subprocess_alive(self) -> None:
        # Marked once uvicorn has replaced them: a worker that dies while uvicorn pings it
        # (not yet dead when looked at before) is replaced all the same.
        before = {process.pid for process in self.processes if process.pid is not None}
        super().keep_subprocess_alive()
        for pid in before - {process.pid for process in self.processes}:
            _mark_dead(pid)


def _mark_dead(pid: int) -> None:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        with contextlib.suppress(OSError):
            multiprocess.mark_process_dead(pid)


def make_run_dir() -> Path:
    """A fresh run directory (named after this process) after removing those of servers
    that died without cleaning up."""
    root = Path(tempfile.gettempdir())
    for stale in root.glob(f"{RUN_DIR_PREFIX}*"):
        pid = stale.name[len(RUN_DIR_PREFIX):].split("-", 1)[0]
        if pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(stale, ignore_errors=True)
    return Path(tempfile.mkdtemp(prefix=f"{RUN_DIR_PREFIX}{os.getpid()}-"))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def watch_parent(run_dir: str | None, interval_s: float = 0.2) -> None:
    """In a worker: stop when the main process goes away (its SIGTERM never comes when it
    was killed): stop accepting at once, give running requests :data:`ORPHAN_EXIT_S`
    seconds, then exit, removing the run directory."""
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(interval_s)
        log.warning("the main process %d is gone; this worker stops", parent)
        if run_dir:  # nobody else will: files open in the workers stay usable until they end
            shutil.rmtree(run_dir, ignore_errors=True)
        with contextlib.suppress(OSError):
            os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(ORPHAN_EXIT_S)
        os._exit(0)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def run_workers(config: Any) -> None:
    """Serve ``config`` (a uvicorn ``Config`` with ``workers > 1``) under the supervisor."""
    sock = config.bind_socket()
    try:
        Supervisor(config, sockets=[sock]).run()
    finally:
        sock.close()


def announce_models(run_dir: str, paths: list[str]) -> None:
    """Tell every worker which model directories to serve (read on their next SIGHUP)."""
    target = Path(run_dir) / MODELS_FILE
    temporary = target.with_suffix(".tmp")
    temporary.write_text(json.dumps({"models": paths}))
    os.replace(temporary, target)


def announced_models(run_dir: str | None) -> list[str] | None:
    if not run_dir:
        return None
    with contextlib.suppress(OSError, ValueError, KeyError):
        return [str(p) for p in json.loads((Path(run_dir) / MODELS_FILE).read_text())[
            "models"]]
    return None


__all__ = ["MODELS_FILE", "RUN_DIR_ENV", "GuardedHttpTools", "Supervisor", "announce_models",
           "announced_models", "configure", "make_run_dir", "run_workers", "watch_parent"]
