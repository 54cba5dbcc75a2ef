"""What is checked before a request reaches its route, without reading its body: the API
key of the routes that take a body (so that a client without a key never makes the server
parse anything), the number of writes one key has running at once, and the customer id of
a path (strict UTF-8, within the id limit: an id a batch could not store cannot be asked
for either, and two different byte strings never name one customer)."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import unquote_to_bytes

from funnelprint.serve.auth import KeyRing, Scope, allows
from funnelprint.serve.batches import ID_CHARS

#: Routes with a body, and the scope each needs.
BODY_ROUTES: dict[tuple[str, str], Scope] = {("POST", "/v1/events"): "write",
                                             ("POST", "/v1/admin/reload"): "write"}
CUSTOMER_PREFIX = b"/v1/customers/"


class Guard:
    """Pure ASGI middleware run before routing (see the module's docstring). Answers in
    JSON, ``{"error", "detail"}``, as the routes do."""

    def __init__(self, app: Any, keys: KeyRing, writes_per_key: int) -> None:
        self.app, self.keys, self.writes_per_key = app, keys, writes_per_key
        self._writing: dict[str, int] = {}

    async def __call__(self, scope: MutableMapping[str, Any],
                       receive: Callable[[], Awaitable[Any]],
                       send: Callable[[Any], Awaitable[None]]) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        raw = scope.get("raw_path") or scope["path"].encode()
        if raw.startswith(CUSTOMER_PREFIX):
            bad_id = _customer_refusal(raw)
            if bad_id is not None:
                await send_error(send, 422, "invalid_customer_id", bad_id, CLOSE)
                return
        needed = BODY_ROUTES.get((scope["method"], scope["path"]))
        if needed is None or not self.keys:
            await self.app(scope, receive, send)
            return
        key, refusal = self._check(scope, needed)
        if refusal is not None:
            status, code, detail = refusal
            headers = [(b"www-authenticate", b"Bearer")] if status == 401 else []
            await send_error(send, status, code, detail, [*headers, *CLOSE])
            return
        if needed == "write":
            assert key is not None
            if self._writing.get(key, 0) >= self.writes_per_key:
                await send_error(send, 429, "too_many_writes",
                                 f"this key has {self.writes_per_key} writes running; retry "
                                 "when one has been answered", [(b"retry-after", b"1"), *CLOSE])
                return
            self._writing[key] = self._writing.get(key, 0) + 1
            try:
                await self.app(scope, receive, send)
            finally:
                self._writing[key] -= 1
                if not self._writing[key]:
                    del self._writing[key]
            return
        await self.app(scope, receive, send)

    def _check(self, scope: MutableMapping[str, Any], needed: Scope
               ) -> tuple[str | None, tuple[int, str, str] | None]:
        header = dict(scope.get("headers") or []).get(b"authorization", b"")
        scheme, _, token = header.decode("latin-1").partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            return None, (401, "unauthorized", "missing API key (Authorization: Bearer KEY)")
        granted = self.keys.scope_of(token)
        if granted is None:
            return None, (401, "unauthorized", "unknown API key")
        if not allows(granted, needed):
            return None, (403, "forbidden", f"this key has {granted} scope; {needed} needed")
        return token, None


def _customer_refusal(raw_path: bytes) -> str | None:
    """Why the customer id of ``/v1/customers/{id}/...`` cannot name a stored customer."""
    rest = raw_path[len(CUSTOMER_PREFIX):]
    raw_id, sep, _ = rest.rpartition(b"/")
    if not sep:
        return None  # no route matches; the router answers 404
    try:
        customer = unquote_to_bytes(raw_id).decode("utf-8")
    except UnicodeDecodeError:
        return "the customer id is not UTF-8"
    if not customer:
        return "the customer id is empty"
    if len(customer) > ID_CHARS:
        return f"the customer id has {len(customer)} characters; at most {ID_CHARS}"
    if "\x00" in customer:
        return "the customer id contains a NUL character"
    return None


# A refusal answered before the body was read closes the connection: the unread body would
# otherwise be parsed as the client's next request (seen as a 431 on a reused connection).
CLOSE = [(b"connection", b"close")]


async def send_error(send: Callable[[Any], Awaitable[None]], status: int, code: str,
                     detail: str, headers: list[tuple[bytes, bytes]] | None = None) -> None:
    """A JSON error answer, ``{"error": code, "detail": detail}``."""
    body = json.dumps({"error": code, "detail": detail}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode()), *(headers or [])]})
    await send({"type": "http.response.body", "body": body})


__all__ = ["BODY_ROUTES", "Guard", "send_error"]
