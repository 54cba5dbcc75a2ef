"""What happens around every request: the body size limit (413, from the declared length
before anything is read, then counted as a streamed body arrives), the time the body may take
to arrive (408), request counts and latency per route, and one structured log line."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from fastapi import HTTPException

from funnelprint.serve.guard import CLOSE, send_error
from funnelprint.serve.metrics import Metrics

log = logging.getLogger("funnelprint.serve")


class BodyTooLarge(HTTPException):
    """The request body passed the size limit while being read."""

    def __init__(self) -> None:
        super().__init__(413, "request body over the size limit",
                         headers={"Connection": "close"})


class BodyTimeout(HTTPException):
    """The request body did not arrive within its time limit."""

    def __init__(self, seconds: float) -> None:
        super().__init__(408, f"the request body did not arrive within {seconds:g} s",
                         headers={"Connection": "close"})


class Limits:
    """Pure ASGI middleware: refuses bodies over the limit (413) or slower than
    ``body_timeout_s`` (408), times and counts every request by route, and writes one
    structured log line per request."""

    def __init__(self, app: Any, limit: int, metrics: Metrics,
                 body_timeout_s: float = 10.0) -> None:
        self.app, self.limit, self.metrics = app, limit, metrics
        self.body_timeout_s = body_timeout_s

    async def __call__(self, scope: MutableMapping[str, Any], receive: Callable[[], Awaitable[
            Any]], send: Callable[[Any], Awaitable[None]]) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit
        start = time.perf_counter()
        status = {"code": 500}
        headers = dict(scope.get("headers") or [])
        length = headers.get(b"content-length")
        body = {"read": b"transfer-encoding" not in headers and length in (None, b"0")}

        async def sending(message: MutableMapping[str, Any]) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
                sent = list(message.get("headers", []))
                if not body["read"] and all(k.lower() != b"connection" for k, _ in sent):
                    # Answered before the body was read: the rest of it is not a next
                    # request, so the connection ends with this answer.
                    message = {**message, "headers": [*sent, *CLOSE]}
            await send(message)

        try:
            if length is not None and (not length.isdigit() or int(length) > limit):
                await send_error(sending, 413, "body_too_large",
                                 f"request body over {limit} bytes")
            else:
                await self.app(scope, _counted(receive, limit, self.body_timeout_s, body),
                               sending)
        finally:
            self._record(scope, status["code"], time.perf_counter() - start)

    def _record(self, scope: MutableMapping[str, Any], status: int, elapsed: float) -> None:
        route = getattr(scope.get("route"), "path_format", "unmatched")
        metrics = self.metrics
        metrics.requests.labels(scope["method"], route, str(status)).inc()
        metrics.latency.labels(scope["method"], route).observe(elapsed)
        if log.isEnabledFor(logging.INFO):
            log.info("request", extra={"fields": {
                "method": scope["method"], "route": route, "status": status,
                "ms": round(elapsed * 1000, 2)}})


def _counted(receive: Callable[[], Awaitable[Any]], limit: int, seconds: float,
             body: dict[str, bool]) -> Callable[[], Awaitable[Any]]:
    """``receive`` that counts the body and bounds the time it takes, from the request's
    start (a client trickling a byte at a time does not reset the clock); ``body["read"]``
    turns true once the last part of the body has been read."""
    seen = 0
    deadline = time.monotonic() + seconds

    async def receiving() -> Any:
        nonlocal seen
        try:
            message = await asyncio.wait_for(receive(), max(deadline - time.monotonic(),
                                                            0.001))
        except asyncio.TimeoutError:
            raise BodyTimeout(seconds) from None
        seen += len(message.get("body", b""))
        if seen > limit:
            raise BodyTooLarge
        if message["type"] == "http.request" and not message.get("more_body", False):
            body["read"] = True
        return message

    return receiving


__all__ = ["BodyTimeout", "BodyTooLarge", "Limits"]
