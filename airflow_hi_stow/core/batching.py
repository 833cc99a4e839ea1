"""Grouping instances into STOW-RS requests under a byte budget and an instance cap."""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable
from typing import TypeVar

T = TypeVar("T")

DEFAULT_MAX_BATCH_BYTES = 100 * 1024**2
DEFAULT_MAX_BATCH_INSTANCES = 200


def plan_batches(
    items: Iterable[T],
    size: Callable[[T], int],
    *,
    max_bytes: int = DEFAULT_MAX_BATCH_BYTES,
    max_instances: int = DEFAULT_MAX_BATCH_INSTANCES,
    group: Callable[[T], Hashable] | None = None,
) -> list[list[T]]:
    """Cut ``items`` into batches of at most ``max_instances`` and ``max_bytes`` (a larger single item gets a
    batch of its own). With ``group``, items of different groups (e.g. studies) never share a batch. Order
    within a group is kept.
    """
    if max_bytes <= 0 or max_instances <= 0:
        raise ValueError("max_bytes and max_instances must be positive")
    open_batches: dict[Hashable, tuple[list[T], int]] = {}
    done: list[list[T]] = []
    for item in items:
        key = group(item) if group else None
        batch, total = open_batches.get(key, ([], 0))
        item_size = size(item)
        if batch and (len(batch) >= max_instances or total + item_size > max_bytes):
            done.append(batch)
            batch, total = [], 0
        batch.append(item)
        open_batches[key] = (batch, total + item_size)
    done.extend(batch for batch, _ in open_batches.values() if batch)
    return done
