"""The quarantine: each failing file copied under a name derived from its source name, with a JSON reason file
beside it (the findings, the source's size and SHA-256; never a value from the file). Putting a file that is already
there, with the same content and reason, writes nothing: a retried run does not quarantine anything twice. A file an
earlier try quarantined that passes now is taken out again (its source is there), so the quarantine holds what the
last try quarantined."""

from __future__ import annotations

import hashlib
import io
import json
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from typing import Any, BinaryIO, cast

from airflow_hi_stow.sources.instances import InstanceFile
from airflow_hi_stow.storage.locations import Location
from airflow_hi_stow.validate.findings import Finding

REASON_SUFFIX = ".reason.json"
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
_CHUNK = 1024 * 1024


def quarantine_name(source: str) -> str:
    """``<16 hex digits of the source name's SHA-256>-<its last part>``: one name per source, whatever its folder."""
    digest = hashlib.sha256(source.encode("utf-8", "surrogateescape")).hexdigest()[:16]
    base = _UNSAFE.sub("_", source.rstrip("/").rsplit("/", 1)[-1])[-100:] or "file"
    return f"{digest}-{base}"


@dataclass(frozen=True)
class Quarantined:
    copy: str | None
    """The URI of the copy; None when the source could not be read (the reason file says so)."""
    reason_file: str


class SourceReadError(OSError):
    """The source failed while being copied (as opposed to the quarantine failing to take it). Any error of the
    source's stream becomes one: an S3 body raises botocore's own."""


class _Hashing:
    """Reads a source stream through, hashing what passes."""

    def __init__(self, stream: BinaryIO) -> None:
        self.stream = stream
        self.sha256 = hashlib.sha256()

    def read(self, size: int = -1) -> bytes:
        try:
            data = self.stream.read(size)
        except Exception as exc:
            raise _source_error(exc) from exc
        self.sha256.update(data)
        return data


@contextmanager
def _opened(file: InstanceFile) -> Iterator[_Hashing]:
    try:
        stream = file.open()
    except Exception as exc:
        raise _source_error(exc) from exc
    try:
        yield _Hashing(stream)
    finally:
        with suppress(Exception):  # a source that fails to close has been read (or has failed) already
            stream.close()


class Quarantine:
    """The quarantine of one run, in a location of its own. What it held when the run began (its file names and
    reason files) is read once, here: a first run costs one listing."""

    def __init__(self, location: Location) -> None:
        self.location = location
        self._names = set(location.names())
        self._reasons = {
            name: data
            for name in sorted(self._names)
            if name.endswith(REASON_SUFFIX) and (data := location.get_bytes(name)) is not None
        }

    @property
    def uri(self) -> str:
        return self.location.uri

    def put(self, file: InstanceFile, findings: Sequence[Finding]) -> Quarantined:
        """Copy ``file`` and write its reason file, unless an earlier try did. A source that cannot be read gets
        its reason file alone; raises OSError when the quarantine cannot be written."""
        name = quarantine_name(file.name)
        reason_name = name + REASON_SUFFIX
        earlier_bytes = self._reasons.get(reason_name)
        earlier = _parse(earlier_bytes)
        record: dict[str, Any] = {"source": file.name, "size": file.size, "findings": [f.to_dict() for f in findings]}
        try:
            digest = file_sha256(file) if earlier.get("sha256") else None
            if digest is not None and digest == earlier["sha256"] and earlier.get("quarantined_as"):
                record.update(sha256=digest, quarantined_as=earlier["quarantined_as"])
            else:
                with _opened(file) as source:
                    copy = self.location.put_file(name, cast(BinaryIO, source))
                record.update(sha256=source.sha256.hexdigest(), quarantined_as=copy)
        except SourceReadError as exc:
            record.update(sha256=None, quarantined_as=None, copy_error=f"cannot read the source ({_describe(exc)})")
        record_bytes = json.dumps(record, indent=2, sort_keys=True).encode() + b"\n"
        if record_bytes == earlier_bytes:  # an earlier try put the same file with the same reason
            return Quarantined(record["quarantined_as"], _uri(self.location, reason_name))
        return Quarantined(record["quarantined_as"], self.location.put_file(reason_name, io.BytesIO(record_bytes)))

    def earlier(self, source: str) -> dict[str, Any] | None:
        """The record an earlier try wrote for ``source``, if any."""
        name = quarantine_name(source) + REASON_SUFFIX
        record = _parse(self._reasons.get(name))
        return {**record, "reason_file": _uri(self.location, name)} if record.get("source") == source else None

    def records(self) -> Iterator[dict[str, Any]]:
        """Every record the quarantine held when the run began."""
        for name, data in self._reasons.items():
            record = _parse(data)
            if record.get("source"):
                yield {**record, "reason_file": _uri(self.location, name)}

    def take_out(self, source: str) -> bool:
        """Remove what an earlier try quarantined for ``source`` (the reason file first, so that no reason is ever
        left without its copy); whether there was anything. Raises OSError."""
        name = quarantine_name(source)
        held = [n for n in (name + REASON_SUFFIX, name) if n in self._names]
        for held_name in held:
            self.location.delete(held_name)
            self._names.discard(held_name)
            self._reasons.pop(held_name, None)
        return bool(held)


def _source_error(exc: Exception) -> SourceReadError:
    if isinstance(exc, OSError):
        return SourceReadError(exc.errno, exc.strerror or type(exc).__name__)
    return SourceReadError(None, type(exc).__name__)


def file_sha256(file: InstanceFile) -> str:
    with _opened(file) as source:
        while source.read(_CHUNK):
            pass
    return source.sha256.hexdigest()


def _parse(data: bytes | None) -> dict[str, Any]:
    if not data:
        return {}
    try:
        parsed = json.loads(data)
    except ValueError:
        return {}
    return parsed if isinstance(parsed, dict) else {}


def _uri(location: Location, name: str) -> str:
    return f"{location.uri.rstrip('/')}/{name}"


def _describe(exc: OSError) -> str:
    return exc.strerror or type(exc).__name__
