"""Errors raised when event data cannot be read."""

from __future__ import annotations

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
