"""API keys: ``KEY:read`` or ``KEY:write`` entries (write implies read), from
``FUNNELPRINT_API_KEYS`` or a file, checked as bearer tokens in constant time."""

from __future__ import annotations

import hmac
import os
from pathlib import Path
from typing import Literal

Scope = Literal["read", "write"]
ENV = "FUNNELPRINT_API_KEYS"
_MIN_LENGTH = 16


class ApiKeyError(ValueError):
    """A key list that cannot be used (bad entry, unknown scope, short key)."""


def parse_keys(text: str, source: str) -> dict[str, Scope]:
    """``KEY:scope`` entries separated by commas or lines (``#`` starts a comment)."""
    keys: dict[str, Scope] = {}
    for raw in text.replace(",", "\n").splitlines():
        entry = raw.split("#", 1)[0].strip()
        if not entry:
            continue
        key, sep, scope = entry.rpartition(":")
        key, scope = key.strip(), scope.strip()
        if not sep or not key:
            raise ApiKeyError(f"{source}: expected KEY:read or KEY:write, got an entry "
                            "without a scope")
        if scope not in ("read", "write"):
            raise ApiKeyError(f"{source}: scope must be read or write, not {scope!r}")
        if len(key) < _MIN_LENGTH:
            raise ApiKeyError(f"{source}: keys must be at least {_MIN_LENGTH} characters")
        keys[key] = "write" if scope == "write" or keys.get(key) == "write" else "read"
    return keys


def check_key_file(path: Path) -> None:
    """Refuse a key file that other users may read or anyone but its owner may change."""
    try:
        mode = Path(path).stat().st_mode
    except OSError as exc:
        raise ApiKeyError(f"--api-keys {path}: {exc.strerror or exc}") from exc
    if mode & 0o022 or mode & 0o004:
        raise ApiKeyError(f"--api-keys {path}: readable or writable by other users (mode "
                          f"{mode & 0o777:o}); make it the service user's alone: chmod 600 "
                          f"{path}")


def load_keys(path: Path | None = None) -> dict[str, Scope]:
    """Keys from ``path`` (when given) and from the environment variable."""
    keys: dict[str, Scope] = {}
    if path is not None:
        try:
            text = Path(path).read_text()
        except OSError as exc:
            raise ApiKeyError(f"--api-keys {path}: {exc.strerror or exc}") from exc
        keys.update(parse_keys(text, f"--api-keys {path}"))
    env = os.environ.get(ENV, "")
    if env.strip():
        for key, scope in parse_keys(env, ENV).items():
            keys[key] = "write" if "write" in (scope, keys.get(key)) else "read"
    return keys


class KeyRing:
    """Which scope a presented key grants; None for no key or an unknown one."""

    def __init__(self, keys: dict[str, Scope]) -> None:
        self._keys = [(k.encode(), s) for k, s in keys.items()]

    def __bool__(self) -> bool:
        return bool(self._keys)

    def scope_of(self, presented: str) -> Scope | None:
        token = presented.encode()
        found: Scope | None = None
        for key, scope in self._keys:  # every key compared: the time does not depend on which
            if hmac.compare_digest(key, token):
                found = scope
        return found


def allows(granted: Scope, needed: Scope) -> bool:
    return granted == "write" or needed == "read"


__all__ = ["ENV", "ApiKeyError", "KeyRing", "Scope", "allows", "check_key_file", "load_keys",
           "parse_keys"]
