"""The files a validation run reads: the package's sources, as :func:`~airflow_hi_stow.sources.resolve.resolve_sources`
lists them (local files, S3 objects, or any other :class:`~airflow_hi_stow.sources.instances.InstanceFile`).

This module is the one place that adapts them to what a run needs: the entries of a source that name nothing kept
as inputs that cannot be read (so they are counted and reported, never dropped); a seekable stream for the checks;
the bytes of files that do not pickle (an S3 object holds its client), read in this process, ahead of their turn,
for the checks in worker processes; and the removal of a source once it is quarantined, when a run moves. (The
refusal of a quarantine inside the source is :func:`~airflow_hi_stow.sources.resolve.refuse_overlap`.)
"""

from __future__ import annotations

import errno
import io
import logging
import os
import pickle
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import BinaryIO, cast

from airflow_hi_stow.core.results import InstanceResult
from airflow_hi_stow.sources.instances import BlockReader, InstanceFile, LocalFile
from airflow_hi_stow.sources.read_ahead import read_ahead
from airflow_hi_stow.sources.s3 import S3Object, delete_s3_object

log = logging.getLogger(__name__)

FETCH_THREADS = 8
FETCH_AHEAD_BYTES = 256 * 1024**2
"""Bytes of fetched files held, at most, ahead of the checks (a file larger than that is fetched alone)."""


@dataclass(frozen=True)
class Unlisted:
    """An entry of a source that names no file (a missing path, a glob or prefix without matches, a file list that
    cannot be read): an input whose every read fails with the reason, so that the run reports and counts it."""

    name: str
    reason: str
    size: int = 0

    def open(self) -> BinaryIO:
        raise FileNotFoundError(errno.ENOENT, self.reason)

    def read_range(self, start: int, end: int) -> bytes:
        raise FileNotFoundError(errno.ENOENT, self.reason)


@dataclass(frozen=True)
class FetchedFile:
    """The bytes of a file, read in this process: what a worker process checks in place of a file that does not
    pickle. Reports name it as its source is named."""

    name: str
    size: int
    data: bytes = field(repr=False)

    def open(self) -> BinaryIO:
        return io.BytesIO(self.data)

    def read_range(self, start: int, end: int) -> bytes:
        return self.data[start:end]


def as_inputs(items: Iterable[InstanceFile | InstanceResult]) -> Iterator[InstanceFile]:
    """The files of a resolved source, each REJECTED entry (``resolve_sources`` yields them) as :class:`Unlisted`."""
    for item in items:
        if isinstance(item, InstanceResult):
            yield Unlisted(item.source, item.reason or "names no file")
        else:
            yield item


def open_seekable(file: InstanceFile) -> BinaryIO:
    """A seekable stream of the whole file: a local file opened as it is, bytes in memory, else a reader that
    fetches only the ranges read (one ranged GET of an S3 object read whole)."""
    if isinstance(file, LocalFile):
        return file.path.open("rb")
    if isinstance(file, FetchedFile | Unlisted):
        return file.open()
    return cast(BinaryIO, BlockReader(file.read_range, file.size))


def remove_input(file: InstanceFile) -> None:
    """Delete a source once it is safely quarantined (``remove_source`` of a run that moves): a local file or an
    S3 object. Raises OSError, also for a kind of file it cannot delete."""
    if isinstance(file, LocalFile):
        os.unlink(file.path)
    elif isinstance(file, S3Object):
        delete_s3_object(file.client, file.bucket, file.key)
    else:
        raise OSError(errno.ENOTSUP, f"cannot remove a {type(file).__name__}")


def _in_memory(file: InstanceFile) -> bool:
    return isinstance(file, LocalFile | FetchedFile | Unlisted)


def fetched_ahead(files: Iterable[InstanceFile], limit: int) -> Iterator[InstanceFile]:
    """The files in order, each one that is neither local nor in memory and holds at most ``limit`` bytes read whole
    (as a :class:`FetchedFile`) in threads, ahead of its turn (:func:`~airflow_hi_stow.sources.read_ahead.read_ahead`).
    A file whose read fails is passed on as it is: its check reads it again and reports why it cannot be read."""

    def fetches(file: InstanceFile) -> bool:
        return not _in_memory(file) and file.size <= limit

    return read_ahead(
        files,
        lambda file: _fetch(file) if fetches(file) else file,
        cost=lambda file: file.size if fetches(file) else 0,
        threads=FETCH_THREADS,
        max_cost=FETCH_AHEAD_BYTES,
    )


def _fetch(file: InstanceFile) -> InstanceFile:
    try:
        data = file.read_range(0, file.size)
    except Exception:  # any failure of a source's reader: the check reads it again and names it
        return file
    return FetchedFile(file.name, file.size, data) if len(data) == file.size else file


_PICKLES: dict[type, bool] = {}


def portable(file: InstanceFile) -> bool:
    """Whether the file can be sent to a worker process (decided once per type)."""
    if _in_memory(file):
        return True
    kind = type(file)
    if kind not in _PICKLES:
        try:
            pickle.dumps(file)
            _PICKLES[kind] = True
        except Exception:  # pickling fails with many kinds (TypeError, PicklingError, AttributeError)
            _PICKLES[kind] = False
            log.info("%s inputs cannot be sent to worker processes (they do not pickle): checked here", kind.__name__)
    return _PICKLES[kind]
