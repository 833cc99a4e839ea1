"""The quarantine: each failing file copied under a name derived from its source name, with a JSON reason file
beside it (the findings, the source's size and SHA-256; never a value from the file). Putting a file that is already
there, with the same content and reason, writes nothing: a retried run does not quarantine anything twice."""

from __future__ import annotations

import hashlib
import io
import json
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from typing import Any, BinaryIO, cast

from airflow_hi_stow.validate.findings import Finding
from airflow_hi_stow.validate.storage import Folder, InputFile

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
def _opened(file: InputFile) -> Iterator[_Hashing]:
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
    def __init__(self, folder: Folder) -> None:
        self.folder = folder

    @property
    def uri(self) -> str:
        return self.folder.uri

    def put(self, file: InputFile, findings: Sequence[Finding]) -> Quarantined:
        """Copy ``file`` and write its reason file, unless an earlier try did. A source that cannot be read gets
        its reason file alone; raises OSError when the quarantine cannot be written."""
        name = quarantine_name(file.name)
        reason_name = name + REASON_SUFFIX
        earlier_bytes = self.folder.get_bytes(reason_name)
        earlier = _parse(earlier_bytes)
        record: dict[str, Any] = {"source": file.name, "size": file.size, "findings": [f.to_dict() for f in findings]}
        try:
            digest = file_sha256(file) if earlier.get("sha256") else None
            if digest is not None and digest == earlier["sha256"] and earlier.get("quarantined_as"):
                record.update(sha256=digest, quarantined_as=earlier["quarantined_as"])
            else:
                with _opened(file) as source:
                    copy = self.folder.put_file(name, cast(BinaryIO, source))
                record.update(sha256=source.sha256.hexdigest(), quarantined_as=copy)
        except SourceReadError as exc:
            record.update(sha256=None, quarantined_as=None, copy_error=f"cannot read the source ({_describe(exc)})")
        record_bytes = json.dumps(record, indent=2, sort_keys=True).encode() + b"\n"
        if record_bytes == earlier_bytes:  # an earlier try put the same file with the same reason
            return Quarantined(record["quarantined_as"], _uri(self.folder, reason_name))
        return Quarantined(record["quarantined_as"], self.folder.put_file(reason_name, io.BytesIO(record_bytes)))

    def records(self) -> Iterator[dict[str, Any]]:
        """Every reason file in the quarantine."""
        for name in self.folder.names(REASON_SUFFIX):
            record = _parse(self.folder.get_bytes(name))
            if record.get("source"):
                yield {**record, "reason_file": _uri(self.folder, name)}


def _source_error(exc: Exception) -> SourceReadError:
    if isinstance(exc, OSError):
        return SourceReadError(exc.errno, exc.strerror or type(exc).__name__)
    return SourceReadError(None, type(exc).__name__)


def file_sha256(file: InputFile) -> str:
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


def _uri(folder: Folder, name: str) -> str:
    return f"{folder.uri.rstrip('/')}/{name}"


def _describe(exc: OSError) -> str:
    return exc.strerror or type(exc).__name__
