"""Helpers shared by the benchmark scripts."""

from __future__ import annotations

import os
import resource
import sys
from collections.abc import Iterable


def peak_rss_mb() -> float:
    """Peak resident memory of this process in MiB."""
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / (1024 * 1024) if sys.platform == "darwin" else rss / 1024


def customers_for(events: int) -> int:
    """Simulated customers giving about this many events (the simulator averages ~75)."""
    return max(100, events // 75)


def chosen_keys(variable: str, allowed: Iterable[str]) -> list[str]:
    """The comma-separated keys of the environment ``variable``, each once, in the order
    given; every allowed key when it is unset or empty. Exits naming any unknown key."""
    allowed = list(allowed)
    chosen = list(dict.fromkeys(s.strip() for s in os.environ.get(variable, "").split(",")
                                if s.strip()))
    unknown = sorted(set(chosen) - set(allowed))
    if unknown:
        raise SystemExit(f"{variable}: unknown {', '.join(unknown)}; choose from "
                         f"{', '.join(allowed)}")
    return chosen or allowed
