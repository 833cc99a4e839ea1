"""Counters the admin endpoint reports, so that tests can assert what reached the emulator ("stored once")."""

from __future__ import annotations

import threading
from collections import Counter
from typing import Any


class Stats:
    """Thread-safe counters: responses per status and per operation, instances and bytes, injected faults."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counters: dict[str, Counter[str]] = {}

    def add(self, group: str, key: str | int, amount: int = 1) -> None:
        with self._lock:
            self._counters.setdefault(group, Counter())[str(key)] += amount

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {group: dict(counter) for group, counter in self._counters.items()}

    def reset(self) -> None:
        with self._lock:
            self._counters.clear()
