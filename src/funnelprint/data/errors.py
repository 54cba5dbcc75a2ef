"""Errors raised when event data cannot be read."""

from __future__ import annotations

from pathlib import Path

#: Longest value quoted in a message; longer ones (whole lines) are shortened.
MAX_VALUE_CHARS = 200


class EventDataError(ValueError):
    """Bad input: names the file and, where known, the line, the column and the value.

    The message is one line: ``path:line: column 'name': what is wrong (value 'v')``.
    ``code`` is the reason a skipped row is counted under (``"bad_timestamp"``, ...).
    """

    def __init__(
        self,
        message: str,
        *,
        path: str | None = None,
        line: int | None = None,
        column: str | None = None,
        value: object = None,
        code: str | None = None,
    ) -> None:
        self.path = path
        self.line = line
        self.column = column
        self.value = value
        self.reason = message
        self.code = code
        where = path or "<events>"
        if line is not None:
            where += f":{line}"
        detail = message
        if column is not None:
            detail = f"column '{column}': {detail}"
        if value is not None:
            detail += f" (value {_shorten(value)!r})"
        super().__init__(f"{where}: {detail}")


def _shorten(value: object) -> object:
    if isinstance(value, str) and len(value) > MAX_VALUE_CHARS:
        return value[:MAX_VALUE_CHARS] + "…"
    return value


def input_file(path: str | Path, on_error: str | None = None) -> Path:
    """``path`` as a :class:`Path` once it exists (else :class:`EventDataError`), and
    ``on_error``, where given, checked to be ``raise`` or ``skip``: what every reader
    checks before it opens a file."""
    if on_error is not None and on_error not in ("raise", "skip"):
        raise ValueError(f"on_error must be 'raise' or 'skip', not {on_error!r}")
    path = Path(path)
    if not path.exists():
        raise EventDataError("no such file", path=str(path))
    return path
