"""The small files' content that the import engine keeps in memory from their header read until they are sent."""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import replace

from airflow_hi_stow.sources.instances import DicomInstance

KEPT_CONTENT_BYTES = 64 * 1024**2
"""At most this many bytes of content are kept at a time, whatever the batches and connections."""


class KeptContent:
    """Keeps the content that came with a header read (a file within one header block, see
    :func:`~airflow_hi_stow.sources.instances.read_instance`) while the budget allows, so that such a file is read
    once rather than again to send it; a file whose content is not kept is read when it is sent. Thread-safe."""

    def __init__(self, limit: int = KEPT_CONTENT_BYTES) -> None:
        self.limit = limit
        self.held = 0
        self._lock = threading.Lock()

    def keep(self, instance: DicomInstance) -> DicomInstance:
        """``instance`` with its content if the budget has room for it, else without."""
        if instance.content is None:
            return instance
        with self._lock:
            if self.held + len(instance.content) <= self.limit:
                self.held += len(instance.content)
                return instance
        return replace(instance, content=None)

    def release(self, instances: Iterable[DicomInstance]) -> None:
        """Give back what these kept instances hold: they are sent, or settled without sending."""
        freed = sum(len(instance.content) for instance in instances if instance.content is not None)
        if freed:
            with self._lock:
                self.held -= freed
