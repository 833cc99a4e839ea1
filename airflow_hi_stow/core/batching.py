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
    within a group is kept. :meth:`add` returns the batches an item closed, :meth:`flush` the batches still open.

    A group that has had no item among the last ``max_instances`` is closed too: a listing walks a study's files
    together, so a study's last batch goes once the walk has moved past it, not at the end of the listing, while
    interleaved groups that keep getting items stay open and fill their batches."""

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
        self._open: dict[Hashable, tuple[list[T], int, int]] = {}
        """Per group: its open batch, the batch's bytes, and the number of the group's last item."""
        self._added = 0

    def add(self, item: T) -> list[list[T]]:
        key = self.group(item) if self.group else None
        batch, total, _ = self._open.get(key, ([], 0, 0))
        item_size = self.size(item)
        closed = []
        if batch and (len(batch) >= self.max_instances or total + item_size > self.max_bytes):
            closed.append(batch)
            batch, total = [], 0
            self.count += 1
        batch.append(item)
        self._open[key] = (batch, total + item_size, self._added)
        self._added += 1
        if self._added % self.max_instances == 0:
            closed += self._close_idle()
        return closed

    def _close_idle(self) -> list[list[T]]:
        """The batches of the groups that had no item among the last ``max_instances``."""
        idle = [key for key, (_, _, last) in self._open.items() if last < self._added - self.max_instances]
        self.count += len(idle)
        return [self._open.pop(key)[0] for key in idle]

    def flush(self) -> list[list[T]]:
        batches = [batch for batch, _, _ in self._open.values() if batch]
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
    done = [batch for item in items for batch in builder.add(item)]
    return done + builder.flush()
