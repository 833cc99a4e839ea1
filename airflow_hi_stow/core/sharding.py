"""Splitting a large import into balanced shards for Airflow's dynamic task mapping."""

from __future__ import annotations

import heapq
import math
from collections.abc import Callable, Hashable, Iterable
from typing import TypeVar

T = TypeVar("T")

MAX_MAP_LENGTH = 1024
"""Airflow's default ``[core] max_map_length``: a longer list fails the mapping."""


def partition(
    items: Iterable[T],
    size: Callable[[T], int],
    group: Callable[[T], Hashable],
    *,
    max_shards: int,
    shard_bytes: int | None = None,
) -> list[list[T]]:
    """Cut ``items`` into shards of about equal bytes, never splitting a group (e.g. a study).

    The number of shards is ``max_shards`` (capped at :data:`MAX_MAP_LENGTH`), or fewer when there are fewer groups,
    or when ``shard_bytes`` asks for shards of about that size. Groups are placed largest first on the lightest
    shard (greedy LPT, within 4/3 of the best balance); a group larger than a shard makes a shard of its own. Items
    keep their input order inside a shard; empty shards are never returned.
    """
    if max_shards < 1:
        raise ValueError("max_shards must be at least 1")
    if shard_bytes is not None and shard_bytes <= 0:
        raise ValueError("shard_bytes must be positive")
    groups: dict[Hashable, list[tuple[int, T]]] = {}
    group_bytes: dict[Hashable, int] = {}
    for position, item in enumerate(items):
        key = group(item)
        groups.setdefault(key, []).append((position, item))
        group_bytes[key] = group_bytes.get(key, 0) + size(item)
    if not groups:
        return []
    count = min(max_shards, MAX_MAP_LENGTH, len(groups))
    if shard_bytes is not None:
        count = min(count, max(1, math.ceil(sum(group_bytes.values()) / shard_bytes)))
    heap = [(0, index) for index in range(count)]
    members: list[list[tuple[int, T]]] = [[] for _ in range(count)]
    for key in sorted(groups, key=lambda k: (-group_bytes[k], groups[k][0][0])):
        load, index = heapq.heappop(heap)
        members[index].extend(groups[key])
        heapq.heappush(heap, (load + group_bytes[key], index))
    return [[item for _, item in sorted(shard, key=lambda pair: pair[0])] for shard in members if shard]
