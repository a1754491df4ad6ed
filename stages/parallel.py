"""One way to run a function over many items at once (each item is a few AWS requests)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")

# requests in flight at once: enough for a tier's services, within botocore's connection pool
MAX_WORKERS = 32


def each(fn: Callable[[T], R], items: Iterable[T], workers: int = MAX_WORKERS) -> list[R]:
    """``fn`` over ``items``, at most ``workers`` at a time; the answers in the items' order.

    The first error raises, as a plain loop would (after the items already started finish).
    """
    jobs = list(items)
    if len(jobs) <= 1:
        return [fn(j) for j in jobs]
    with ThreadPoolExecutor(max_workers=max(1, min(workers, len(jobs)))) as pool:
        return list(pool.map(fn, jobs))
