"""Preparing inputs ahead of their use, in threads: in order, and never more than a budget of bytes ahead.

The de-identification step copies S3 objects to a local staging directory this way, and the validation step reads
small ones into memory (their worker processes cannot take a boto3 client), so that downloads overlap with the work
on the files before them.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

from airflow_hi_stow.sources.instances import InstanceFile

T = TypeVar("T")
R = TypeVar("R")

DEFAULT_AHEAD_BYTES = 256 * 1024 * 1024
_COPY_BUFFER = 1024 * 1024


def read_ahead(
    items: Iterable[T],
    prepare: Callable[[T], R],
    *,
    cost: Callable[[T], int],
    threads: int = 8,
    max_cost: int = DEFAULT_AHEAD_BYTES,
    max_items: int | None = None,
) -> Iterator[R]:
    """``prepare(item)`` for each item, run in ``threads`` threads, yielded in the order of ``items``.

    Items are prepared ahead of the consumer while those prepared or being prepared, and not yet taken, number
    fewer than ``max_items`` (default: 4 per thread) and their ``cost`` (bytes, say) stays within ``max_cost``; an
    item costing more than that is prepared alone. ``items`` is consumed lazily. An exception of ``prepare`` is
    raised when its item's turn comes.
    """
    limit = max_items or 4 * max(1, threads)
    pending: deque[tuple[Future[R], int]] = deque()
    ahead = 0
    with ThreadPoolExecutor(max(1, threads), thread_name_prefix="hi-stow-read-ahead") as pool:
        try:
            for item in items:
                price = max(0, cost(item))
                while pending and (ahead + price > max_cost or len(pending) >= limit):
                    future, paid = pending.popleft()
                    ahead -= paid
                    yield future.result()
                pending.append((pool.submit(prepare, item), price))
                ahead += price
            while pending:
                future, paid = pending.popleft()
                ahead -= paid
                yield future.result()
        finally:
            for future, _ in pending:  # the consumer stopped early, or a preparation failed
                future.cancel()


class SourceReadError(OSError):
    """Reading the source failed (as opposed to writing the copy); ``strerror`` says why without naming it."""


def copy_to(file: InstanceFile, target: Path) -> Path:
    """The whole content of ``file`` (an S3 object, say) written to ``target``. Raises SourceReadError when the
    source cannot be read, any other OSError when the copy cannot be written."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with target.open("wb") as out:
        try:
            source = file.open()
        except OSError as exc:
            raise SourceReadError(exc.errno, exc.strerror or type(exc).__name__) from None
        with source:
            while True:
                try:
                    chunk = source.read(_COPY_BUFFER)
                except OSError as exc:
                    raise SourceReadError(exc.errno, exc.strerror or type(exc).__name__) from None
                if not chunk:
                    return target
                out.write(chunk)
