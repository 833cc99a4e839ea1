"""What identifies the content of a source file in the resume ledger, obtained without an extra read when sending.

- A local file is hashed while its bytes stream into the request body, so the digest of what was stored costs no
  extra read. On resume, a file named in the ledger is hashed again (a local read, only for those files) and
  skipped only if the digest still matches. The digest is XXH3's 128 bits (the ``xxhash`` package): it tells
  whether a file's bytes changed between tries, and runs at memory speed (0.04 s/GB here, where SHA-256 takes
  1.0 s/GB, longer than sending the bytes). It does not resist a forger, who would need write access to the source
  files and could change them before the first try anyway; the request body's integrity is SigV4's and TLS's
  (and the sha256 payload mode's) concern.
- An S3 object is identified by its ETag, which changes whenever the object is rewritten; every GET asks for that
  ETag (``IfMatch``), so what was sent is exactly the listed version. Resuming costs no read at all.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from typing import Any, BinaryIO, cast

import xxhash

from airflow_hi_stow.sources.instances import InstanceFile, LocalFile
from airflow_hi_stow.sources.s3 import S3Object

_READ_SIZE = 1024 * 1024
DIGEST = "xxh3-128"
"""How a local file's fingerprint names its digest (``xxh3-128:<32 hex digits>``)."""


@dataclass(frozen=True)
class HashingLocalFile(LocalFile):
    """A local file that hashes its bytes as they are read; ``sent_digest`` is the digest of the last read that
    reached the end of the file."""

    _sent: dict[str, str] = field(default_factory=dict, init=False, repr=False, compare=False)

    @property
    def sent_digest(self) -> str | None:
        return self._sent.get(DIGEST)

    def open(self) -> BinaryIO:
        return cast(BinaryIO, _HashingReader(self.path.open("rb", buffering=0), self._sent, self.size))

    def open_unhashed(self) -> BinaryIO:
        """A plain stream of the file, for a read whose bytes an earlier read of the same request hashed."""
        return super().open()

    def sending(self, content: bytes) -> None:
        """``content``, the whole file read earlier, is being sent: it is what the digest stands for."""
        self._sent[DIGEST] = xxhash.xxh3_128_hexdigest(content)


class _HashingReader(io.RawIOBase):
    def __init__(self, raw: io.RawIOBase, sent: dict[str, str], size: int) -> None:
        self.raw = raw
        self.sent = sent
        self.size = size
        self.digest = xxhash.xxh3_128()
        self.count = 0

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        data = self.raw.read(size)
        assert data is not None  # a regular file is never non-blocking
        self._hashed(data, size)
        return data

    def readinto(self, buffer: Any) -> int:
        count = self.raw.readinto(buffer) or 0
        self._hashed(memoryview(buffer)[:count], len(buffer))
        return count

    def _hashed(self, data: bytes | memoryview, asked: int) -> None:
        """Hash what was read; at the end of the file (a short read, so no extra read to meet it), keep the
        digest if exactly the file's size was read."""
        if data:
            self.digest.update(data)
            self.count += len(data)
        if asked and (asked < 0 or len(data) < asked) and self.count == self.size:
            self.sent[DIGEST] = self.digest.hexdigest()

    def close(self) -> None:
        if not self.closed:
            self.raw.close()
        super().close()


def sent_fingerprint(file: InstanceFile) -> str | None:
    """The identity of the content that was read for sending, or None when it is not known."""
    if isinstance(file, S3Object):
        return f"etag:{file.etag}"
    if isinstance(file, HashingLocalFile) and file.sent_digest:
        return f"{DIGEST}:{file.sent_digest}"
    return None


def current_fingerprint(file: InstanceFile, content: bytes | None = None) -> str | None:
    """The identity of the content as it is now (hashing a local file, or ``content`` when the whole file was just
    read; free for S3); None when it is unknown."""
    if isinstance(file, S3Object):
        return f"etag:{file.etag}"
    if not isinstance(file, HashingLocalFile):
        return None
    if content is not None:
        return f"{DIGEST}:{xxhash.xxh3_128_hexdigest(content)}"
    digest = xxhash.xxh3_128()
    try:
        with file.path.open("rb") as stream:
            while block := stream.read(_READ_SIZE):
                digest.update(block)
    except OSError:
        return None
    return f"{DIGEST}:{digest.hexdigest()}"
