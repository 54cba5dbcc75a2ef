"""Every answer other than success is JSON, ``{"error": CODE, "detail": ...}``, without
internals: the API's own refusals (:class:`ApiError`), invalid requests, the framework's
404 and 405 (with ``Allow``), a store that does not answer (503 with ``Retry-After``: a
retry can fix it) or refuses a value (422: a retry cannot), and anything unexpected (500,
logged)."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from funnelprint.serve.store import STORE_FAILURES, STORE_REFUSALS

log = logging.getLogger("funnelprint.serve")

_HTTP_CODES = {400: "bad_request", 404: "not_found", 405: "method_not_allowed",
               408: "request_timeout", 413: "body_too_large"}


class ApiError(Exception):
    """An answer other than success: HTTP status, a stable code and a message."""

    def __init__(self, status: int, code: str, detail: Any,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(str(detail))
        self.status, self.code, self.detail, self.headers = status, code, detail, headers


def error(status: int, code: str, detail: Any, headers: dict[str, str] | None = None
          ) -> JSONResponse:
    return JSONResponse({"error": code, "detail": detail}, status_code=status, headers=headers)


def install_errors(app: FastAPI) -> None:
    """Answer every failure as JSON (see the module's docstring)."""
    async def api_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, ApiError)
        headers = dict(exc.headers or {})
        if exc.status == 401:
            headers["WWW-Authenticate"] = "Bearer"
        if exc.status == 503:
            headers.setdefault("Retry-After", "1")
        return error(exc.status, exc.code, exc.detail, headers or None)

    async def invalid(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        detail = [{"loc": [str(p) for p in e.get("loc", ())], "msg": str(e.get("msg", ""))}
                  for e in exc.errors()[:20]]
        return error(422, "invalid_request", detail)

    async def http_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        code = _HTTP_CODES.get(exc.status_code, "http_error")
        return error(exc.status_code, code, str(exc.detail), dict(exc.headers or {}) or None)

    async def store_down(request: Request, exc: Exception) -> JSONResponse:
        log.error("store unavailable: %s", " ".join(str(exc).split()))
        return error(503, "store_unavailable", "the event store did not answer; retry",
                     {"Retry-After": "1"})

    async def store_refused(request: Request, exc: Exception) -> JSONResponse:
        log.warning("store refused a value: %s", " ".join(str(exc).split()))
        return error(422, "not_storable", "the event store refused a value of this request; "
                     "a retry will not help")

    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.error("unexpected error", exc_info=exc)
        return error(500, "internal_error", "the server could not answer this request")

    app.add_exception_handler(ApiError, api_error)
    app.add_exception_handler(RequestValidationError, invalid)
    app.add_exception_handler(StarletteHTTPException, http_error)
    # Refusals first: some of them (a value over a limit) are also operational errors.
    for refusal in STORE_REFUSALS:
        app.add_exception_handler(refusal, store_refused)
    for failure in STORE_FAILURES:
        app.add_exception_handler(failure, store_down)
    app.add_exception_handler(Exception, unexpected)


__all__ = ["ApiError", "error", "install_errors"]
