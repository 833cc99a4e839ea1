"""Request bodies generated from the files as they are sent.

A body is re-iterable (every iteration re-opens its files, so a retry re-sends the whole body, never an empty
one) and sized (``len()`` is known before sending, so requests sets Content-Length). Memory use is one read
block, whatever the size or number of files.
"""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from functools import cached_property

from airflow_hi_stow.core import multipart, sigv4
from airflow_hi_stow.sources.instances import InstanceFile
from airflow_hi_stow.transport.errors import BoundaryCollision, SourceError

READ_SIZE = 256 * 1024


class Body(ABC):
    """A sized, re-iterable request body."""

    content_type: str

    @abstractmethod
    def __len__(self) -> int: ...

    @abstractmethod
    def __iter__(self) -> Iterator[bytes]: ...

    @cached_property
    def sha256(self) -> str:
        """Hex SHA-256 of the whole body, computed once by streaming it (for the sha256 payload mode)."""
        digest = hashlib.sha256()
        for block in self:
            digest.update(block)
        return digest.hexdigest()


def read_blocks(file: InstanceFile, block_size: int = READ_SIZE) -> Iterator[bytes]:
    """The file's bytes in blocks; fails with SourceError if it cannot be read or its size has changed."""
    total = 0
    try:
        with file.open() as stream:
            while block := stream.read(block_size):
                total += len(block)
                if total > file.size:
                    break
                yield block
    except OSError as exc:
        raise SourceError(file.name, f"cannot read the file ({exc.strerror or type(exc).__name__})") from None
    if total != file.size:
        raise SourceError(file.name, f"the file changed while it was being sent (expected {file.size} bytes)")


class SinglePartBody(Body):
    """One instance as ``application/dicom`` (HealthImaging's documented single-file form)."""

    content_type = multipart.DICOM_MEDIA_TYPE

    def __init__(self, file: InstanceFile) -> None:
        self.file = file

    def __len__(self) -> int:
        return self.file.size

    def __iter__(self) -> Iterator[bytes]:
        return read_blocks(self.file)


class MultipartBody(Body):
    """Instances as ``multipart/related; type="application/dicom"``, one part per instance."""

    def __init__(self, files: Sequence[InstanceFile], boundary: str | None = None) -> None:
        self.files = list(files)
        self.boundary = boundary or multipart.new_boundary()
        self.content_type = multipart.multipart_content_type(self.boundary)
        self._length = multipart.multipart_length(self.boundary, [file.size for file in self.files])

    def __len__(self) -> int:
        return self._length

    def __iter__(self) -> Iterator[bytes]:
        opening = multipart.part_opening(self.boundary)
        for file in self.files:
            yield opening
            scanner = multipart.DelimiterScanner(self.boundary)
            for block in read_blocks(file):
                if scanner.feed(block):
                    raise BoundaryCollision(f"{file.name} contains the multipart boundary")
                yield block
            yield multipart.PART_CLOSING
        yield multipart.closing_delimiter(self.boundary)


class AwsChunkedBody(Body):
    """A body re-framed as signed aws-chunked chunks, chained from the request's seed signature."""

    def __init__(self, inner: Body, seed: sigv4.Signature, chunk_size: int = sigv4.DEFAULT_CHUNK_SIZE) -> None:
        self.inner = inner
        self.content_type = inner.content_type
        self.seed = seed
        self.chunk_size = chunk_size

    def __len__(self) -> int:
        return sigv4.aws_chunked_length(len(self.inner), self.chunk_size)

    def __iter__(self) -> Iterator[bytes]:
        return sigv4.aws_chunks(iter(self.inner), sigv4.ChunkSigner(self.seed), self.chunk_size)
