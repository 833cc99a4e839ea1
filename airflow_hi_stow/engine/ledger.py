"""The resume ledger and the manifest of an import.

- The ledger lists the instances confirmed stored, written after every confirmed request, so a try that is
  killed loses at most the requests in flight; the next try of the same task instance skips what it lists
  (same file, same SOP Instance UID, same content fingerprint).
- The manifest holds one JSON line per input (its :class:`~airflow_hi_stow.core.results.InstanceResult`), written
  once at the end of a try; while the try runs, its lines are spooled to a local temporary file.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import cached_property
from typing import Any, BinaryIO, cast

from airflow_hi_stow.core.results import InstanceResult, Outcome
from airflow_hi_stow.storage.locations import Location

LEDGER = "ledger"
MANIFEST = "manifest.jsonl"


@dataclass(frozen=True)
class LedgerEntry:
    result: InstanceResult
    fingerprint: str

    @cached_property
    def line(self) -> str:
        """The entry's JSON line, which is also the result's line in the manifest."""
        return result_line(self.result, fingerprint=self.fingerprint)


def result_line(result: InstanceResult, **extra: Any) -> str:
    """A result as one JSON line of the manifest or the ledger (without its newline)."""
    return json.dumps({**result.to_dict(), **extra}, separators=(",", ":"))


def result_from_dict(data: dict[str, Any]) -> InstanceResult:
    """The inverse of ``InstanceResult.to_dict()``; raises ValueError/TypeError on a malformed record."""
    fields = {key: data[key] for key in InstanceResult.__dataclass_fields__ if key in data}
    fields["outcome"] = Outcome(fields["outcome"])
    return InstanceResult(**fields)


class Ledger:
    """The confirmed instances of one task instance (every try) at a location. Safe to share between threads."""

    def __init__(self, location: Location) -> None:
        self.location = location

    def load(self) -> dict[str, LedgerEntry]:
        """The confirmed entries by source name (a later entry for a name wins). Unreadable lines are ignored:
        at worst their file is sent again."""
        entries: dict[str, LedgerEntry] = {}
        for line in self.location.read_lines(LEDGER):
            try:
                data = json.loads(line)
                entry = LedgerEntry(result_from_dict(data), str(data["fingerprint"]))
            except (ValueError, TypeError, KeyError):
                continue
            if entry.result.outcome.is_stored:
                entries[entry.result.source] = entry
        return entries

    def record(self, entries: Iterable[LedgerEntry]) -> None:
        lines = [entry.line for entry in entries]
        if lines:
            self.location.append_lines(LEDGER, lines)


class ManifestSpool:
    """Manifest lines spooled to an anonymous local temporary file (gone even after a kill), then published."""

    def __init__(self) -> None:
        self._file = cast(BinaryIO, tempfile.TemporaryFile(prefix="hi-stow-manifest-"))  # noqa: SIM115 (see close())

    def write(self, result: InstanceResult, **extra: Any) -> None:
        self.write_line(result_line(result, **extra))

    def write_line(self, line: str) -> None:
        """Spool a line made by :func:`result_line` (a ledger entry's own, for a confirmed instance)."""
        self._file.write(line.encode() + b"\n")

    def publish(self, location: Location) -> str:
        """Store the manifest at ``location``; returns its URI."""
        self._file.seek(0)
        return location.put_file(MANIFEST, self._file)

    def close(self) -> None:
        self._file.close()


def read_manifest(lines: Iterable[str]) -> Iterator[InstanceResult]:
    """Results back from manifest lines (for tests and follow-up tasks)."""
    for line in lines:
        if line.strip():
            yield result_from_dict(json.loads(line))
