"""A STOW-RS request body, taken in as it arrives and split into one temporary file per instance.

The pipeline is push-style and synchronous (``feed`` each piece, then ``finish``): aws-chunked decoding with chunk
signature checks, the size limit, hashing for the sha256 and deferred payload modes, then either one file (a
single-part ``application/dicom`` body) or one file per part (``multipart/related``, split by python-multipart).
Memory use is one received piece, whatever the body size. Nothing here is final: the caller moves the files into
storage only after ``finish`` succeeded, and removes them otherwise.
"""

from __future__ import annotations

import hashlib
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser

from airflow_hi_stow.emulator.auth import PayloadCheck, SignedRequest
from airflow_hi_stow.emulator.aws_chunked import AwsChunkedDecoder
from airflow_hi_stow.emulator.errors import AwsError, invalid


@dataclass(frozen=True)
class ReceivedPart:
    """One instance's bytes as received, in a temporary file."""

    path: Path
    size: int


class _PartFiles:
    """Numbered files in the request's temporary directory."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.parts: list[ReceivedPart] = []
        self._file: BinaryIO | None = None
        self._size = 0

    def open(self) -> None:
        if not self.parts:
            self.directory.mkdir(parents=True, exist_ok=True)
        self._file = (self.directory / f"part-{len(self.parts) + 1:05d}.dcm").open("wb")
        self._size = 0

    def write(self, data: bytes | memoryview) -> None:
        assert self._file is not None
        self._file.write(data)
        self._size += len(data)

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self.parts.append(ReceivedPart(Path(self._file.name), self._size))
            self._file = None

    def discard(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        shutil.rmtree(self.directory, ignore_errors=True)


class SinglePartSink:
    """An ``application/dicom`` body: the whole body is one instance."""

    def __init__(self, directory: Path) -> None:
        self.files = _PartFiles(directory)
        self.files.open()

    def write(self, data: bytes | memoryview) -> None:
        self.files.write(data)

    def finish(self) -> list[ReceivedPart]:
        self.files.close()
        return self.files.parts


class MultipartSink:
    """A ``multipart/related`` body: each part is one instance (part headers are not used)."""

    def __init__(self, directory: Path, boundary: str) -> None:
        self.files = _PartFiles(directory)
        self._ended = False
        try:
            self._parser = MultipartParser(
                boundary.encode("latin-1"),
                {
                    "on_part_begin": self.files.open,
                    "on_part_data": lambda data, start, end: self.files.write(memoryview(data)[start:end]),
                    "on_part_end": self.files.close,
                    "on_end": self._end,
                },
            )
        except Exception as exc:  # python-multipart rejects over-long boundaries
            raise invalid(f"unusable multipart boundary ({exc})") from None

    def _end(self) -> None:
        self._ended = True

    def write(self, data: bytes | memoryview) -> None:
        try:
            self._parser.write(bytes(data))
        except MultipartParseError as exc:
            raise invalid(f"malformed multipart body: {exc}") from None

    def finish(self) -> list[ReceivedPart]:
        self._parser.finalize()
        if not self._ended:
            raise invalid("malformed multipart body: it ends before the closing delimiter")
        return self.files.parts


class RequestBody:
    """Takes in one request body: decode, limit, hash, split (see the module docstring)."""

    def __init__(
        self,
        sink: SinglePartSink | MultipartSink,
        *,
        signed: SignedRequest | None,
        aws_chunked: bool,
        declared_length: int | None,
        max_bytes: int,
    ) -> None:
        self.sink = sink
        self.signed = signed
        self.decoder = AwsChunkedDecoder(signed.seed if signed else None) if aws_chunked else None
        self.declared_length = declared_length
        """x-amz-decoded-content-length, when sent: the decoded body must have exactly this many bytes."""
        self.max_bytes = max_bytes
        self.length = 0
        needs_hash = signed is not None and signed.check in (PayloadCheck.SHA256, PayloadCheck.DEFERRED)
        self._digest = hashlib.sha256() if needs_hash else None

    def feed(self, data: bytes) -> None:
        pieces = self.decoder.feed(data) if self.decoder else (memoryview(data),)
        for piece in pieces:
            self.length += len(piece)
            if self.length > self.max_bytes:
                raise AwsError(
                    "RequestEntityTooLargeException",
                    f"the request body is larger than {self.max_bytes} bytes (StoreDICOM accepts up to 1 GB)",
                )
            if self._digest is not None:
                self._digest.update(piece)
            self.sink.write(piece)

    def feed_all(self, pieces: list[bytes]) -> None:
        for piece in pieces:
            self.feed(piece)

    def finish(self, last: list[bytes] | None = None) -> list[ReceivedPart]:
        """Take the ``last`` pieces, check the body as a whole (signature first), then return its instances'
        files."""
        self.feed_all(last or [])
        if self.decoder is not None:
            self.decoder.finish()
        if self.signed is not None and self._digest is not None:
            self.signed.verify_payload(self._digest.hexdigest())
        if self.declared_length is not None and self.length != self.declared_length:
            raise invalid(
                f"x-amz-decoded-content-length is {self.declared_length} but the body has {self.length} bytes"
            )
        return self.sink.finish()

    def discard(self) -> None:
        self.sink.files.discard()
