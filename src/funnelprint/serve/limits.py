"""What happens around every request: the body size limit (413), request counts and
latency per route, and one structured log line."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from fastapi import HTTPException

from funnelprint.serve.metrics import Metrics

log = logging.getLogger("funnelprint.serve")


class BodyTooLarge(HTTPException):
    """The request body passed the size limit while being read."""

    def __init__(self) -> None:
        super().__init__(413, "request body over the size limit")


class Limits:
    """Pure ASGI middleware: refuses bodies over the limit (413), times and counts every
    request by route, and writes one structured log line per request."""

    def __init__(self, app: Any, limit: int, metrics: Metrics) -> None:
        self.app, self.limit, self.metrics = app, limit, metrics

    async def __call__(self, scope: MutableMapping[str, Any], receive: Callable[[], Awaitable[
            Any]], send: Callable[[Any], Awaitable[None]]) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit
        start = time.perf_counter()
        status = {"code": 500}

        async def sending(message: MutableMapping[str, Any]) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        length = dict(scope.get("headers") or []).get(b"content-length")
        try:
            if length is not None and (not length.isdigit() or int(length) > limit):
                await _send_error(sending, 413, "body_too_large",
                                  f"request body over {limit} bytes")
            else:
                await self.app(scope, _counted(receive, limit), sending)
        finally:
            self._record(scope, status["code"], time.perf_counter() - start)

    def _record(self, scope: MutableMapping[str, Any], status: int, elapsed: float) -> None:
        route = getattr(scope.get("route"), "path", "unmatched")
        metrics = self.metrics
        metrics.requests.labels(scope["method"], route, str(status)).inc()
        metrics.latency.labels(scope["method"], route).observe(elapsed)
        if log.isEnabledFor(logging.INFO):
            log.info("request", extra={"fields": {
                "method": scope["method"], "route": route, "status": status,
                "ms": round(elapsed * 1000, 2)}})


def _counted(receive: Callable[[], Awaitable[Any]], limit: int
             ) -> Callable[[], Awaitable[Any]]:
    seen = 0

    async def receiving() -> Any:
        nonlocal seen
        message = await receive()
        seen += len(message.get("body", b""))
        if seen > limit:
            raise BodyTooLarge
        return message

    return receiving


async def _send_error(send: Callable[[Any], Awaitable[None]], status: int, code: str,
                      detail: str) -> None:
    body = json.dumps({"error": code, "detail": detail}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


__all__ = ["BodyTooLarge", "Limits"]
