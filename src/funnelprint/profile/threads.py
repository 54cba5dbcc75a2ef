"""One BLAS and one OpenMP thread while a profile is fitted or solved (:func:`one_thread`)."""

from __future__ import annotations

import contextlib
import functools
import threading
from collections.abc import Callable, Iterator
from typing import Any, ParamSpec, TypeVar

from threadpoolctl import ThreadpoolController

P = ParamSpec("P")
T = TypeVar("T")


def one_thread(method: Callable[P, T]) -> Callable[P, T]:
    """Run ``method`` with one BLAS and one OpenMP thread.

    A profile's work is many small matrix products, NMF sweeps and k-means runs, where
    handing work to a second thread costs more than it saves, and where a second thread
    that waits for a busy core stalls the first: a fit on 250k events took 10.5 s with two
    threads beside another busy process and 4.0 s with one (k-means alone: 5.9 s against
    0.07 s). One thread also makes a seeded fit's sums the same on any machine. The
    selection still runs its independent fits side by side (``profile.joint``)."""
    @functools.wraps(method)
    def run(*args: P.args, **kwargs: P.kwargs) -> T:
        with _single_threaded():
            return method(*args, **kwargs)
    return run


#: The numerical libraries loaded with this module, found once (finding them costs 2 ms,
#: too much for a request that profiles one customer).
_THREADS = ThreadpoolController()
_users_lock = threading.Lock()
_users: list[Any] = []  # the limiter in force while calls are inside, one entry per call


@contextlib.contextmanager
def _single_threaded() -> Iterator[None]:
    """One thread in the libraries while any call is inside. Their limits are global to
    the process: the first call in sets them and the last one out restores them, so calls
    on several threads neither lift each other's limit early nor leave it on for good."""
    with _users_lock:
        _users.append(_THREADS.limit(limits=1) if not _users else _users[0])
    try:
        yield
    finally:
        with _users_lock:
            limiter = _users.pop()
            if not _users:
                limiter.restore_original_limits()


__all__ = ["one_thread"]
