"""Where a de-identification run reads its inputs and writes its outputs: small protocols, local implementations.

A runner only calls ``InputFile.read()`` and ``OutputStore.write()``, so an S3 source or destination plugs in with two
small classes. Objects handed to worker processes must be picklable (plain dataclasses of names and paths are).
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from airflow_hi_stow.deid.errors import UnavailableInput
from airflow_hi_stow.deid.transform import LinkageRecord
from airflow_hi_stow.storage.files import process_owner, write_whole


class InputFile(Protocol):
    """One input. ``name`` is how its source names it (it may hold patient data: it goes only to the quarantine).

    An input may also have a ``size`` (bytes), by which the runner bounds what it takes ahead of its outcomes.
    """

    @property
    def name(self) -> str: ...

    def read(self) -> bytes: ...


class OutputStore(Protocol):
    """Somewhere to write files by relative path; a write replaces a file of the same name whole, or not at all."""

    def write(self, relative: str, data: bytes) -> None: ...


class LinkageSink(Protocol):
    """Where the optional linkage export (original -> replacement) goes. It holds patient data."""

    def write(self, records: Sequence[LinkageRecord]) -> None: ...


@dataclass(frozen=True)
class LocalInput:
    path: str
    name: str
    size: int = 0

    def read(self) -> bytes:
        return Path(self.path).read_bytes()


@dataclass(frozen=True)
class MissingInput:
    """An input that a source names but that cannot be had (a missing path, a glob without match): it is quarantined
    with ``reason`` (which must name neither the input nor a value of the patient)."""

    name: str
    reason: str

    def read(self) -> bytes:
        raise UnavailableInput(self.reason)


def local_inputs(source: str | os.PathLike[str] | Iterable[str | os.PathLike[str]]) -> list[LocalInput]:
    """Every file under a directory (recursively, sorted), or the files of a list, named relative to their root."""
    if isinstance(source, str | os.PathLike) and Path(source).is_dir():
        root = Path(source)
        paths = sorted(p for p in root.rglob("*") if p.is_file())
    else:
        paths = [Path(p) for p in ([source] if isinstance(source, str | os.PathLike) else source)]
        parents = [str(p.resolve().parent) for p in paths]
        root = Path(os.path.commonpath(parents)) if parents else Path()
    return [LocalInput(str(p), str(p.resolve().relative_to(root.resolve())), _size(p)) for p in paths]


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:  # reported when the runner reads it
        return 0


@dataclass(frozen=True)
class LocalDirectory:
    """A local directory; files are written to a temporary name beside the target, then renamed over it (see
    :mod:`airflow_hi_stow.storage.files`; not synced to disk one by one: a killed process leaves no half file, a
    machine crash may lose the last ones written, which a rerun writes again)."""

    root: str

    def write(self, relative: str, data: bytes) -> None:
        target = Path(self.root, relative)
        if Path(self.root).resolve() not in target.resolve().parents:
            raise ValueError("an output path must stay inside its directory")
        write_whole(target, data, owner=process_owner(), sync=False)


@dataclass(frozen=True)
class LinkageFile:
    """The linkage export as CSV (kind, original, replacement), readable by its owner only."""

    path: str

    def write(self, records: Sequence[LinkageRecord]) -> None:
        write_whole(Path(self.path), linkage_csv(records), owner=process_owner(), mode=0o600)


def linkage_csv(records: Sequence[LinkageRecord]) -> bytes:
    """The linkage export's content: a CSV of kind, original, replacement (patient data)."""
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(["kind", "original", "replacement"])
    writer.writerows((r.kind, r.original, r.replacement) for r in records)
    return text.getvalue().encode("utf-8")
