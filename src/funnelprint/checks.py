"""Checks shared by every configuration, so that a value out of range or of the wrong type
reads the same wherever it is set: ``NAME must be at least 1, not 0``.

:class:`Config` is the base of every frozen configuration (a model's, a profile's): each
field's value is checked against its annotation on construction, then :meth:`Config.validate`
checks ranges with :func:`at_least` and :func:`fraction`.
"""

from __future__ import annotations

import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any, ClassVar, Literal, get_type_hints

from typing_extensions import Self


def at_least(owner: object, minimum: float, *names: str) -> None:
    """Each named attribute of ``owner`` (None allowed) is at least ``minimum``."""
    for name in names:
        value = getattr(owner, name)
        if value is not None and value < minimum:
            raise ValueError(f"{name} must be at least {minimum:g}, not {value}")


def fraction(owner: object, name: str, zero: bool = False, one: bool = True) -> None:
    """Attribute ``name`` lies in the unit interval: (0, 1] by default; ``zero`` and
    ``one`` say whether each end is allowed."""
    value = getattr(owner, name)
    above = value >= 0 if zero else value > 0
    below = value <= 1 if one else value < 1
    if not (above and below):
        interval = f"{'[' if zero else '('}0, 1{']' if one else ')'}"
        raise ValueError(f"{name} must be in {interval}, not {value}")


@dataclass(frozen=True)
class Config:
    """Base of every configuration: frozen, validated on construction.

    Subclasses are frozen dataclasses whose fields are the parameters (JSON scalars), and
    extend :meth:`validate` with range checks. A value of the wrong type (``behaviour="no"``
    for a ``bool``) raises ``ValueError``; an int is accepted for a float and converted.
    ``PRESETS`` names complete alternative settings (e.g. one per validation protocol);
    :meth:`from_params` starts from a preset and applies the given parameters on top.
    """

    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {}

    def __post_init__(self) -> None:
        hints = get_type_hints(type(self))
        for f in fields(self):
            value = getattr(self, f.name)
            checked = _checked_value(type(self).__name__, f.name, hints[f.name], value)
            if checked is not value:
                object.__setattr__(self, f.name, checked)
        self.validate()

    def validate(self) -> None:
        """Raise ``ValueError`` for a value out of range (subclasses extend)."""

    def get_params(self) -> dict[str, Any]:
        """The parameters as a JSON-ready dict (what ``from_params`` takes back)."""
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def field_names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in fields(cls))

    @classmethod
    def from_params(cls, params: Mapping[str, Any] | None = None,
                    preset: str | None = None) -> Self:
        """Build from a parameter dict, optionally on top of a named preset; unknown names
        and wrongly typed values raise ``ValueError``."""
        params = dict(params or {})
        unknown = sorted(set(params) - set(cls.field_names()))
        if unknown:
            raise ValueError(f"{cls.__name__}: unknown parameter(s) {', '.join(unknown)}; "
                             f"expected some of {', '.join(cls.field_names())}")
        base: dict[str, Any] = {}
        if preset is not None:
            if preset not in cls.PRESETS:
                raise ValueError(f"{cls.__name__}: unknown preset {preset!r}; available: "
                                 f"{', '.join(cls.PRESETS) or 'none'}")
            base = dict(cls.PRESETS[preset])
        return cls(**{**base, **params})

    def replace(self, **changes: Any) -> Self:
        return type(self).from_params({**self.get_params(), **changes})


def _checked_value(owner: str, name: str, annotation: Any, value: Any) -> Any:
    """``value`` if it fits ``annotation`` (ints are accepted as floats and converted),
    else ``ValueError``."""
    allowed = _flatten(annotation)
    for kind in allowed:
        if kind is type(None) and value is None:
            return value
        if isinstance(kind, tuple) and kind[0] is Literal and value in kind[1]:
            return value
        if kind is bool and isinstance(value, bool):
            return value
        if kind is int and isinstance(value, int) and not isinstance(value, bool):
            return value
        if kind is float and isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if kind is str and isinstance(value, str):
            return value
        if kind is Any:
            return value
    expected = " or ".join(_kind_name(k) for k in allowed)
    raise ValueError(f"{owner}: {name} must be {expected}, not {value!r}")


def _flatten(annotation: Any) -> list[Any]:
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        return [k for arg in typing.get_args(annotation) for k in _flatten(arg)]
    if origin is Literal:
        return [(Literal, typing.get_args(annotation))]
    return [annotation]


def _kind_name(kind: Any) -> str:
    if isinstance(kind, tuple):
        return "one of " + ", ".join(repr(v) for v in kind[1])
    return "None" if kind is type(None) else getattr(kind, "__name__", str(kind))


__all__ = ["Config", "at_least", "fraction"]
