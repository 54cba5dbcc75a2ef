"""Errors raised when event data cannot be read."""

from __future__ import annotations


class EventDataError(ValueError):
    """Bad input: names the file and, where known, the line, the column and the value."""

    def __init__(
        self,
        message: str,
        *,
        path: str | None = None,
        line: int | None = None,
        column: str | None = None,
        value: object = None,
    ) -> None:
        self.path = path
        self.line = line
        self.column = column
        self.value = value
        self.reason = message
        where = path or "<events>"
        if line is not None:
            where += f":{line}"
        detail = message
        if column is not None:
            detail = f"column '{column}': {detail}"
        if value is not None:
            detail += f" (value {value!r})"
        super().__init__(f"{where}: {detail}")
