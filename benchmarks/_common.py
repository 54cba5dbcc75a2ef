"""Helpers shared by the benchmark scripts."""

from __future__ import annotations

import resource
import sys


def peak_rss_mb() -> float:
    """Peak resident memory of this process in MiB."""
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / (1024 * 1024) if sys.platform == "darwin" else rss / 1024


def customers_for(events: int) -> int:
    """Simulated customers giving about this many events (the simulator averages ~75)."""
    return max(100, events // 75)
