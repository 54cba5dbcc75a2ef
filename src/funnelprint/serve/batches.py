"""An event batch from its raw body to the events worth validating: the body is parsed
element by element, so that the batch limit holds while parsing and no single call holds
the interpreter for long, and every element is screened for what no store keeps (a lone
surrogate, a NUL character, an over-long id or text) before the event checks of
:func:`funnelprint.data.records.check_records`.

A malformed *body* (not JSON, not ``{"events": [...]}``, over the batch limit) refuses the
batch; a malformed *element* is refused alone, by its index, and the rest is stored.

Nothing heavy is imported here: this runs in a worker thread on every batch.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from funnelprint.data.schema import ID_CHARS, TEXT_CHARS

#: Largest element of a batch, in characters of the body.
EVENT_CHARS = 64 * 1024


_DECODER = json.JSONDecoder()
_SPACE = re.compile(r"[ \t\n\r]*")
#: Strings (with their escapes) and the characters that open, close or separate values.
_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"|[{}\[\],]', re.DOTALL)
_NESTING = re.compile(r'"(?:[^"\\]|\\.)*"|[{}\[\]]', re.DOTALL)
#: An object whose values are all scalars: the usual event, measured in one call.
_FLAT = re.compile(r'\{(?:[^{}\[\]"]|"(?:[^"\\]|\\.)*")*\}', re.DOTALL)


class BatchError(ValueError):
    """A body that cannot be a batch: HTTP status, a stable code and a message."""

    def __init__(self, status: int, code: str, detail: str) -> None:
        super().__init__(detail)
        self.status, self.code, self.detail = status, code, detail


@dataclass(frozen=True)
class Refusal:
    """One element refused before the event checks."""

    index: int
    code: str
    reason: str


def parse_batch(body: bytes, max_batch: int, partial: bool = False) -> list[Any]:
    """The elements of ``{"events": [...]}``; ``BatchError`` for a body that is not such
    an object or that holds more than ``max_batch`` elements (found while parsing, before
    the rest is read). An element over :data:`EVENT_CHARS` is kept as ``TooLarge``.
    ``partial``: ``body`` is the start of a body (a character cut at its end is ignored).
    """
    try:
        text = body.decode("utf-8", errors="ignore" if partial else "strict")
    except UnicodeDecodeError as exc:
        raise BatchError(400, "invalid_json", f"the body is not UTF-8 (byte {exc.start})"
                         ) from None
    pos = _skip(text, 0)
    if not text.startswith("{", pos):
        raise BatchError(422, "invalid_batch", 'expected a JSON object {"events": [...]}')
    pos = _skip(text, pos + 1)
    events: list[Any] | None = None
    while not text.startswith("}", pos):
        if events is not None:
            pos = _expect(text, pos, ",")
        key, pos = _decode(text, pos)
        if key != "events" or events is not None:
            raise BatchError(422, "invalid_batch", 'a batch holds one field, "events"')
        pos = _expect(text, pos, ":")
        events, pos = _elements(text, pos, max_batch)
    if events is None:
        raise BatchError(422, "invalid_batch", 'missing field "events"')
    if _skip(text, pos + 1) != len(text):
        raise BatchError(400, "invalid_json", f"unexpected data after the batch at "
                         f"character {pos + 1}")
    return events


def over_batch_limit(prefix: bytes, max_batch: int) -> bool:
    """Whether the start of a body already holds more than ``max_batch`` elements: a
    check made while the body is still arriving, so that a flood of small elements is
    refused without reading the rest. Anything else (a body cut in the middle of an
    element, invalid JSON) is left to the full parse."""
    try:
        parse_batch(prefix, max_batch, partial=True)
    except BatchError as exc:
        return exc.status == 413
    return False


@dataclass(frozen=True)
class TooLarge:
    """An element longer than :data:`EVENT_CHARS` (skipped, never parsed)."""

    chars: int


def _elements(text: str, pos: int, max_batch: int) -> tuple[list[Any], int]:
    if not text.startswith("[", pos):
        raise BatchError(422, "invalid_batch", '"events" must be an array')
    pos = _skip(text, pos + 1)
    found: list[Any] = []
    if text.startswith("]", pos):
        return found, _skip(text, pos + 1)
    while True:
        if len(found) == max_batch:
            raise BatchError(413, "batch_too_large", f"more than {max_batch} events in one "
                             "batch")
        end = _extent(text, pos)
        if end - pos > EVENT_CHARS:
            found.append(TooLarge(end - pos))
            pos = _skip(text, end)
        else:
            value, pos = _decode(text, pos)
            found.append(value)
        if text.startswith("]", pos):
            return found, _skip(text, pos + 1)
        pos = _expect(text, pos, ",")


def _extent(text: str, pos: int) -> int:
    """Where the JSON value starting at ``pos`` ends. Up to :data:`EVENT_CHARS` the
    separators are followed; past it only brackets and strings, which skips the long runs
    of scalars a hostile element is made of."""
    flat = _FLAT.match(text, pos, pos + EVENT_CHARS)
    if flat is not None:
        return flat.end()
    depth = 0
    limit = pos + EVENT_CHARS
    tokens = _TOKEN.finditer(text, pos)
    for match in tokens:
        token = match.group()
        if token in "{[":
            depth += 1
        elif token in "}]":
            if depth == 0:
                return _trim(text, pos, match.start())
            depth -= 1
            if depth == 0:
                return match.end()
        elif token == "," and depth == 0:
            return _trim(text, pos, match.start())
        if match.end() > limit and depth > 0:
            return _close(text, match.end(), depth)
    raise BatchError(400, "invalid_json", "the body ends inside the events array")


def _close(text: str, pos: int, depth: int) -> int:
    for match in _NESTING.finditer(text, pos):
        token = match.group()
        if token in "{[":
            depth += 1
        elif token in "}]":
            depth -= 1
            if depth == 0:
                return match.end()
    raise BatchError(400, "invalid_json", "the body ends inside the events array")


def _trim(text: str, start: int, end: int) -> int:
    while end > start and text[end - 1] in " \t\n\r":
        end -= 1
    return end


def _skip(text: str, pos: int) -> int:
    match = _SPACE.match(text, pos)
    return match.end() if match else pos


def _expect(text: str, pos: int, char: str) -> int:
    if not text.startswith(char, pos):
        raise BatchError(400, "invalid_json", f"expected {char!r} at character {pos}")
    return _skip(text, pos + 1)


def _decode(text: str, pos: int) -> tuple[Any, int]:
    try:
        value, end = _DECODER.raw_decode(text, pos)
    except json.JSONDecodeError as exc:
        raise BatchError(400, "invalid_json", f"{exc.msg} at character {exc.pos}") from None
    except RecursionError:
        raise BatchError(400, "invalid_json", f"nested too deeply at character {pos}"
                         ) from None
    return value, _skip(text, end)


# ---------------------------------------------------------------------- screening


def screen(elements: list[Any]) -> tuple[list[int], list[Refusal]]:
    """Positions of the elements worth the event checks, and the refused ones: not an
    object, too large, or holding text no store keeps (a lone surrogate, which is not
    UTF-8; a NUL character) or a field over its length limit."""
    kept: list[int] = []
    refused: list[Refusal] = []
    for index, element in enumerate(elements):
        problem = _problem(element)
        if problem is None:
            kept.append(index)
        else:
            refused.append(Refusal(index, *problem))
    return kept, refused


def _problem(element: Any) -> tuple[str, str] | None:
    if isinstance(element, TooLarge):
        return "event_too_large", f"an event of {element.chars} characters; at most " \
                                  f"{EVENT_CHARS}"
    if not isinstance(element, dict):
        return "bad_record", f"expected a JSON object, got {_kind(element)}"
    if not element:
        return "missing_field", "missing field(s) customer_id, timestamp, action, product_id"
    for path, text in _strings(element, ""):
        if "\x00" in text:
            return "bad_value", f"{path or 'a field name'}: contains a NUL character"
        if not text.isascii() and not _utf8(text):
            return "bad_value", f"{path or 'a field name'}: a lone surrogate (not UTF-8)"
    for name, value in element.items():
        if isinstance(value, str) and len(value) > TEXT_CHARS:
            return "too_long", f"{name}: {len(value)} characters; at most {TEXT_CHARS}"
    return None


def _strings(value: Any, path: str) -> Iterator[tuple[str, str]]:
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield path, key
            yield from _strings(item, f"{path}.{key}" if path else key)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item, path)


def _utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _kind(value: Any) -> str:
    return {list: "an array", str: "a string", bool: "a boolean", type(None): "null"}.get(
        type(value), "a number")


__all__ = ["EVENT_CHARS", "ID_CHARS", "TEXT_CHARS", "BatchError", "Refusal",
           "TooLarge", "over_batch_limit", "parse_batch", "screen"]
