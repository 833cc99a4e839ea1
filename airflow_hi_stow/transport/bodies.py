"""Request bodies generated from the files as they are sent.

A body is re-iterable (every iteration re-opens its files, so a retry re-sends the whole body, never an empty
one) and sized (``len()`` is known before sending, so requests sets Content-Length). Memory use is one read
block, whatever the size or number of files. Small files are sent together: a multipart body yields pieces of
about one read block (a part's framing with its data, several small parts in one piece), so that sending costs a
system call per block rather than three per file.
"""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from functools import cached_property

from airflow_hi_stow.core import multipart, sigv4
from airflow_hi_stow.sources.fingerprints import HashingLocalFile
from airflow_hi_stow.sources.instances import InstanceFile
from airflow_hi_stow.transport.errors import SourceError

READ_SIZE = 256 * 1024


class Body(ABC):
    """A sized, re-iterable request body."""

    content_type: str

    @abstractmethod
    def __len__(self) -> int: ...

    @abstractmethod
    def __iter__(self) -> Iterator[bytes]: ...

    rehash = True
    """Whether reading the files again hashes them again (for their ledger fingerprints)."""

    @cached_property
    def sha256(self) -> str:
        """Hex SHA-256 of the whole body, computed once by streaming it (for the sha256 payload mode). The same read
        takes each file's own digest, so the reads that send the body do not hash the files again: if a file
        changed in between, the server refuses the body (its hash differs), so a stored body is the one hashed."""
        digest = hashlib.sha256()
        for block in self:
            digest.update(block)
        self.rehash = False
        return digest.hexdigest()


def read_blocks(
    file: InstanceFile, block_size: int = READ_SIZE, *, rehash: bool = True, content: bytes | None = None
) -> Iterator[bytes]:
    """The file's bytes in blocks; fails with SourceError if it cannot be read or its size has changed.

    Each read asks for at most one byte more than the file should still hold, so a file read to its end takes one
    read per block (no extra read to meet the end), and a file that grew is noticed. ``rehash`` False: a local
    file is read without hashing it (its digest was taken by an earlier read of the same body). ``content``: the
    whole file, read with its header, sent as it is (and hashed for the ledger) without reading the file again."""
    if content is not None:
        if rehash and isinstance(file, HashingLocalFile):
            file.sending(content)
        yield content
        return
    total = 0
    try:
        stream = file.open_unhashed() if not rehash and isinstance(file, HashingLocalFile) else file.open()
        with stream:
            while block := stream.read(asked := min(block_size, file.size - total + 1)):
                total += len(block)
                if total > file.size:
                    break
                yield block
                if total == file.size and len(block) < asked:
                    break  # the read asked for one byte more than was left and met the end
    except OSError as exc:
        raise SourceError(file.name, f"cannot read the file ({exc.strerror or type(exc).__name__})") from None
    if total != file.size:
        raise SourceError(file.name, f"the file changed while it was being sent (expected {file.size} bytes)")


class SinglePartBody(Body):
    """One instance as ``application/dicom`` (HealthImaging's documented single-file form)."""

    content_type = multipart.DICOM_MEDIA_TYPE

    def __init__(self, file: InstanceFile, content: bytes | None = None) -> None:
        self.file = file
        self.content = content

    def __len__(self) -> int:
        return self.file.size

    def __iter__(self) -> Iterator[bytes]:
        return read_blocks(self.file, rehash=self.rehash, content=self.content)


class MultipartBody(Body):
    """Instances as ``multipart/related; type="application/dicom"``, one part per instance.

    The boundary holds 128 random bits (:func:`~airflow_hi_stow.core.multipart.new_boundary`), drawn when the body
    is built, so no file can hold it but by a chance of about 2^-128 per position (the data is not searched for it,
    as urllib3 and curl do not: that search cost as much CPU as reading the files)."""

    def __init__(self, files: Sequence[InstanceFile], contents: Sequence[bytes | None] | None = None) -> None:
        """``contents``: per file, its whole content when it was read already (see :func:`read_blocks`)."""
        self.files = list(files)
        self.contents = list(contents) if contents is not None else [None] * len(self.files)
        self.boundary = multipart.new_boundary()
        self.content_type = multipart.multipart_content_type(self.boundary)
        self._length = multipart.multipart_length(self.boundary, [file.size for file in self.files])

    def __len__(self) -> int:
        return self._length

    def __iter__(self) -> Iterator[bytes]:
        opening = multipart.part_opening(self.boundary)
        pending = bytearray()
        for file, content in zip(self.files, self.contents, strict=True):
            pending += opening
            for block in read_blocks(file, rehash=self.rehash, content=content):
                if len(pending) + len(block) > READ_SIZE:
                    if pending:
                        yield bytes(pending)
                        pending.clear()
                    if len(block) >= READ_SIZE:
                        yield block  # a large file's blocks go as they are read, without a copy
                        continue
                pending += block
            pending += multipart.PART_CLOSING
        pending += multipart.closing_delimiter(self.boundary)
        yield bytes(pending)


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
