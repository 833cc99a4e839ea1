"""Grouping instances into STOW-RS requests under a byte budget and an instance cap."""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable
from typing import Generic, TypeVar

T = TypeVar("T")

DEFAULT_MAX_BATCH_BYTES = 100 * 1024**2
DEFAULT_MAX_BATCH_INSTANCES = 200


class BatchBuilder(Generic[T]):
    """Cuts items into batches as they come: at most ``max_instances`` and ``max_bytes`` each (a larger single item
    gets a batch of its own); with ``group``, items of different groups (e.g. studies) never share a batch. Order
    within a group is kept. :meth:`add` returns the batch an item closed, :meth:`flush` the batches still open."""

    def __init__(
        self,
        size: Callable[[T], int],
        *,
        max_bytes: int = DEFAULT_MAX_BATCH_BYTES,
        max_instances: int = DEFAULT_MAX_BATCH_INSTANCES,
        group: Callable[[T], Hashable] | None = None,
    ) -> None:
        if max_bytes <= 0 or max_instances <= 0:
            raise ValueError("max_bytes and max_instances must be positive")
        self.size = size
        self.max_bytes = max_bytes
        self.max_instances = max_instances
        self.group = group
        self.count = 0
        """Batches made so far (closed and flushed)."""
        self._open: dict[Hashable, tuple[list[T], int]] = {}

    def add(self, item: T) -> list[T] | None:
        key = self.group(item) if self.group else None
        batch, total = self._open.get(key, ([], 0))
        item_size = self.size(item)
        closed = None
        if batch and (len(batch) >= self.max_instances or total + item_size > self.max_bytes):
            closed, batch, total = batch, [], 0
            self.count += 1
        batch.append(item)
        self._open[key] = (batch, total + item_size)
        return closed

    def flush(self) -> list[list[T]]:
        batches = [batch for batch, _ in self._open.values() if batch]
        self._open.clear()
        self.count += len(batches)
        return batches


def plan_batches(
    items: Iterable[T],
    size: Callable[[T], int],
    *,
    max_bytes: int = DEFAULT_MAX_BATCH_BYTES,
    max_instances: int = DEFAULT_MAX_BATCH_INSTANCES,
    group: Callable[[T], Hashable] | None = None,
) -> list[list[T]]:
    """Every batch of ``items`` at once (see :class:`BatchBuilder`)."""
    builder = BatchBuilder(size, max_bytes=max_bytes, max_instances=max_instances, group=group)
    done = [batch for item in items if (batch := builder.add(item)) is not None]
    return done + builder.flush()
