"""Durable places for the records of a task (an import's manifest and resume ledger, a validation run's good list
and report) and for a quarantine: a local directory or an S3 prefix.

S3 objects cannot be appended to, so appended lines become one object per call (a segment) and reading gathers
every segment; locally they are appended to one file and flushed to disk. Files are put whole or not at all.
"""

from __future__ import annotations

import errno
import itertools
import os
import threading
import uuid
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import BinaryIO, Protocol

from botocore.exceptions import BotoCoreError, ClientError

from airflow_hi_stow.sources.s3 import S3Client, is_s3_uri, split_s3_uri
from airflow_hi_stow.storage.files import Unwritable, append_lines_durably, is_partial, write_whole


class Location(Protocol):
    """A folder-like place (a local directory, an S3 prefix); safe to share between threads."""

    @property
    def uri(self) -> str: ...

    def append_lines(self, name: str, lines: Sequence[str]) -> None:
        """Durably add lines (without their newline) to the log ``name``."""
        ...

    def read_lines(self, name: str) -> Iterator[str]:
        """Every complete line of the log ``name`` (none when it does not exist)."""
        ...

    def put_file(self, name: str, stream: BinaryIO) -> str:
        """Store the rest of ``stream`` as ``name``, replacing it whole (never half-written); returns its URI."""
        ...

    def get_bytes(self, name: str) -> bytes | None:
        """The content of the file ``name`` (a small one), or None when there is none."""
        ...

    def names(self, suffix: str = "") -> Iterator[str]:
        """The names of the files directly in this location that end with ``suffix``, sorted."""
        ...

    def delete(self, name: str) -> None:
        """Remove the file ``name``; nothing happens when there is none."""
        ...


class LocalLocation:
    def __init__(self, root: Path) -> None:
        self.root = root
        self._append = threading.Lock()

    @property
    def uri(self) -> str:
        return str(self.root)

    def append_lines(self, name: str, lines: Sequence[str]) -> None:
        with self._append:
            append_lines_durably(self.root / f"{name}.jsonl", "".join(f"{line}\n" for line in lines).encode())

    def read_lines(self, name: str) -> Iterator[str]:
        path = self.root / f"{name}.jsonl"
        if not path.exists():
            return
        with path.open(encoding="utf-8", errors="replace") as log:
            for line in log:
                if line.endswith("\n"):  # a line cut short by a crash is not complete
                    yield line.rstrip("\n")

    def put_file(self, name: str, stream: BinaryIO) -> str:
        target = self.root / name
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
        except FileExistsError:  # a file where the folder should be
            raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), str(target.parent)) from None
        except OSError as exc:
            raise Unwritable.of(target.parent, exc) from None
        # on disk before it replaces anything (a move deletes the source next)
        return str(write_whole(target, stream, sync=True))

    def get_bytes(self, name: str) -> bytes | None:
        try:
            return (self.root / name).read_bytes()
        except FileNotFoundError:
            return None

    def names(self, suffix: str = "") -> Iterator[str]:
        if not self.root.is_dir():
            return
        found = (
            entry.name
            for entry in os.scandir(self.root)
            if entry.name.endswith(suffix) and not is_partial(entry.name) and entry.is_file()
        )
        yield from sorted(found)

    def delete(self, name: str) -> None:
        (self.root / name).unlink(missing_ok=True)


class S3Location:
    def __init__(self, client: S3Client, bucket: str, prefix: str) -> None:
        self.client = client
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self._writer = uuid.uuid4().hex[:12]
        self._segments = itertools.count(1)  # next() is atomic: parallel appenders get distinct segment names

    @property
    def uri(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"

    def _key(self, name: str) -> str:
        return f"{self.prefix}/{name}" if self.prefix else name

    def append_lines(self, name: str, lines: Sequence[str]) -> None:
        key = self._key(f"{name}/{self._writer}-{next(self._segments):06d}.jsonl")
        body = "".join(f"{line}\n" for line in lines).encode()
        try:
            self.client.put_object(Bucket=self.bucket, Key=key, Body=body)
        except (ClientError, BotoCoreError) as exc:
            raise OSError(f"cannot write s3://{self.bucket}/{key} ({_describe(exc)})") from None

    def read_lines(self, name: str) -> Iterator[str]:
        prefix = self._key(f"{name}/")
        try:
            for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix):
                for item in page.get("Contents", []):
                    body = self.client.get_object(Bucket=self.bucket, Key=item["Key"])["Body"]
                    with body:
                        yield from body.read().decode("utf-8", "replace").splitlines()
        except (ClientError, BotoCoreError) as exc:
            raise OSError(f"cannot read s3://{self.bucket}/{prefix} ({_describe(exc)})") from None

    def put_file(self, name: str, stream: BinaryIO) -> str:
        key = self._key(name)
        try:
            self.client.upload_fileobj(stream, self.bucket, key)
        except (ClientError, BotoCoreError) as exc:
            raise OSError(f"cannot write s3://{self.bucket}/{key} ({_describe(exc)})") from None
        return f"s3://{self.bucket}/{key}"

    def get_bytes(self, name: str) -> bytes | None:
        key = self._key(name)
        try:
            body = self.client.get_object(Bucket=self.bucket, Key=key)["Body"]
            with body:
                return bytes(body.read())
        except ClientError as exc:
            if _describe(exc) in ("NoSuchKey", "404"):
                return None
            raise OSError(f"cannot read s3://{self.bucket}/{key} ({_describe(exc)})") from None
        except BotoCoreError as exc:
            raise OSError(f"cannot read s3://{self.bucket}/{key} ({_describe(exc)})") from None

    def names(self, suffix: str = "") -> Iterator[str]:
        prefix = self._key("")
        found: list[str] = []
        try:
            pages = self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=prefix, Delimiter="/"
            )
            for page in pages:
                found.extend(item["Key"][len(prefix) :] for item in page.get("Contents", []))
        except (ClientError, BotoCoreError) as exc:
            raise OSError(f"cannot list s3://{self.bucket}/{prefix} ({_describe(exc)})") from None
        yield from sorted(name for name in found if name and name.endswith(suffix))

    def delete(self, name: str) -> None:
        key = self._key(name)
        try:
            self.client.delete_object(Bucket=self.bucket, Key=key)
        except (ClientError, BotoCoreError) as exc:
            raise OSError(f"cannot delete s3://{self.bucket}/{key} ({_describe(exc)})") from None


def _describe(exc: Exception) -> str:
    if isinstance(exc, ClientError):
        return str(exc.response.get("Error", {}).get("Code", "ClientError"))
    return type(exc).__name__


def open_location(base: str, parts: Sequence[str], s3_client: Callable[[], S3Client]) -> Location:
    """The location ``base/part/part...``: an ``s3://bucket/prefix`` or a local directory."""
    relative = "/".join(parts)
    if is_s3_uri(base):
        bucket, prefix = split_s3_uri(base)
        return S3Location(s3_client(), bucket, "/".join(p for p in (prefix.strip("/"), relative) if p))
    return LocalLocation(Path(base).expanduser() / relative)
