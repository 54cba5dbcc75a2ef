"""Range checks shared by every configuration, so that a value out of range reads the same
wherever it is set: ``NAME must be at least 1, not 0``."""

from __future__ import annotations


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
