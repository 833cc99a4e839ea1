"""DICOM P10 files, and the header facts the client needs before sending them (read in a few bounded reads)."""

from __future__ import annotations

import io
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, Protocol

from airflow_hi_stow.core.dicom_header import TRANSFER_SYNTAX, scan_header
from airflow_hi_stow.core.uids import is_valid_uid

if TYPE_CHECKING:
    from pydicom.tag import BaseTag

SOP_CLASS_UID, SOP_INSTANCE_UID, STUDY_INSTANCE_UID, SERIES_INSTANCE_UID = (
    0x00080016,
    0x00080018,
    0x0020000D,
    0x0020000E,
)
_IDENTIFIERS = frozenset({TRANSFER_SYNTAX, SOP_CLASS_UID, SOP_INSTANCE_UID, STUDY_INSTANCE_UID, SERIES_INSTANCE_UID})
HEADER_BLOCK = 64 * 1024
"""Bytes fetched per read of a header: the identifiers of almost every file lie in the first block."""


class InstanceFile(Protocol):
    """Something holding one DICOM P10 file: a local file, an S3 object, ..."""

    @property
    def name(self) -> str:
        """How the file is named in results and errors (a path or URI)."""
        ...

    @property
    def size(self) -> int: ...

    def open(self) -> BinaryIO:
        """A fresh stream of the whole file, from its first byte. Called again for every retry."""
        ...

    def read_range(self, start: int, end: int) -> bytes:
        """Bytes ``start`` to ``end - 1`` (fewer at the end of the file); raises OSError."""
        ...


@dataclass(frozen=True)
class LocalFile:
    path: Path
    size: int

    @classmethod
    def at(cls, path: str | os.PathLike[str]) -> LocalFile:
        """The file at ``path``, with its current size; raises OSError when it cannot be stat'ed."""
        resolved = Path(path)
        return cls(resolved, resolved.stat().st_size)

    @property
    def name(self) -> str:
        return str(self.path)

    def open(self) -> BinaryIO:
        return self.path.open("rb", buffering=0)  # one system call per read: the callers read in large blocks

    def read_range(self, start: int, end: int) -> bytes:
        descriptor = os.open(self.path, os.O_RDONLY)
        try:
            return os.pread(descriptor, max(0, end - start), start)
        finally:
            os.close(descriptor)


def header_workers(files: Iterable[InstanceFile], threads: int) -> int:
    """How many threads should read these files' headers: one (the caller's) for local files, whose header read is
    a pread and some Python, so more threads only contend for the GIL; ``threads`` when some are remote (S3), where
    each read waits on the network."""
    return threads if any(not isinstance(file, LocalFile) for file in files) else 1


class BlockReader(io.RawIOBase):
    """A seekable, read-only view of a file that fetches only the blocks that are read (one range read per run of
    missing blocks) and keeps them in memory: seeking over a value costs nothing, so reading a header never
    fetches the large values or the pixel data behind it."""

    def __init__(self, fetch: Callable[[int, int], bytes], size: int, block: int = HEADER_BLOCK) -> None:
        self.fetch = fetch
        self.size = size
        self.block = block
        self.blocks: dict[int, bytes] = {}
        self.position = 0
        self.fetched = 0
        """Bytes fetched so far."""

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self.position, io.SEEK_END: self.size}[whence]
        self.position = max(0, base + offset)
        return self.position

    def read(self, size: int | None = -1) -> bytes:
        end = self.size if size is None or size < 0 else min(self.size, self.position + size)
        if end <= self.position:
            return b""
        first, last = self.position // self.block, (end - 1) // self.block
        self._load(first, last)
        data = b"".join(self.blocks[index] for index in range(first, last + 1))
        offset = self.position - first * self.block
        chunk = data[offset : offset + end - self.position]
        self.position += len(chunk)
        return chunk

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        chunk = self.read(len(buffer))
        buffer[: len(chunk)] = chunk
        return len(chunk)

    def _load(self, first: int, last: int) -> None:
        index = first
        while index <= last:
            if index in self.blocks:
                index += 1
                continue
            run_end = index
            while run_end + 1 <= last and run_end + 1 not in self.blocks:
                run_end += 1
            start, stop = index * self.block, min(self.size, (run_end + 1) * self.block)
            data = self.fetch(start, stop)
            if len(data) != stop - start:
                raise OSError(f"short read: {len(data)} of {stop - start} bytes")
            self.fetched += len(data)
            for number in range(index, run_end + 1):
                offset = (number - index) * self.block
                self.blocks[number] = data[offset : offset + self.block]
            index = run_end + 1


class InvalidInstance(ValueError):
    """A file that cannot be stored, with the reason (which never quotes the file's content)."""

    def __init__(self, source: str, reason: str) -> None:
        super().__init__(f"{source}: {reason}")
        self.source = source
        self.reason = reason


@dataclass(frozen=True)
class DicomInstance:
    """A source file and the identifiers read from its header."""

    file: InstanceFile
    sop_class_uid: str
    sop_instance_uid: str
    study_instance_uid: str
    series_instance_uid: str
    transfer_syntax_uid: str
    content: bytes | None = field(default=None, repr=False, compare=False)
    """The whole file, when the header read took all of it (a file within one header block) and the reader keeps it
    (see :class:`~airflow_hi_stow.engine.kept_content.KeptContent`): sending it then needs no second read."""

    @property
    def name(self) -> str:
        return self.file.name

    @property
    def size(self) -> int:
        return self.file.size


def _required_uid(source: str, text: str, keyword: str, tag: str) -> str:
    if not text:
        raise InvalidInstance(source, f"missing {tag} {keyword}")
    if not is_valid_uid(text):
        raise InvalidInstance(source, f"{tag} {keyword} is not a valid UID")
    return text


def _past_header(tag: BaseTag, _vr: str | None, _length: int) -> bool:
    return int(tag) > SERIES_INSTANCE_UID


def read_instance(file: InstanceFile, *, with_content: bool = False) -> DicomInstance:
    """Read the identifiers from a DICOM P10 file's header, in one bounded read of its first block in the common
    case (see :mod:`~airflow_hi_stow.core.dicom_header`), else with pydicom, fetching only the blocks up to
    (0020,000E) that hold elements; raises InvalidInstance when it is not a DICOM P10 file. ``with_content``: a file
    that fits in the first block comes with its ``content`` (the bytes read anyway)."""
    if file.size == 0:
        raise InvalidInstance(file.name, "empty file")
    try:
        head = file.read_range(0, min(file.size, HEADER_BLOCK))
    except OSError as exc:
        raise InvalidInstance(file.name, f"cannot read the file ({exc.strerror or type(exc).__name__})") from None
    values = scan_header(head, _IDENTIFIERS, complete=len(head) == file.size, required=_IDENTIFIERS)
    if values is None:
        values = _read_with_pydicom(file, head)

    def text(tag: int) -> str:
        return values[tag].decode("latin-1").strip(" \0") if tag in values else ""

    transfer_syntax = text(TRANSFER_SYNTAX)
    if not transfer_syntax:
        raise InvalidInstance(file.name, "missing (0002,0010) TransferSyntaxUID in the file meta information")
    return DicomInstance(
        file=file,
        sop_class_uid=_required_uid(file.name, text(SOP_CLASS_UID), "SOPClassUID", "(0008,0016)"),
        sop_instance_uid=_required_uid(file.name, text(SOP_INSTANCE_UID), "SOPInstanceUID", "(0008,0018)"),
        study_instance_uid=_required_uid(file.name, text(STUDY_INSTANCE_UID), "StudyInstanceUID", "(0020,000D)"),
        series_instance_uid=_required_uid(file.name, text(SERIES_INSTANCE_UID), "SeriesInstanceUID", "(0020,000E)"),
        transfer_syntax_uid=transfer_syntax,
        content=head if with_content and len(head) == file.size else None,
    )


def _read_with_pydicom(file: InstanceFile, head: bytes) -> dict[int, bytes]:
    """The identifiers' values as pydicom reads them (any encoding it knows), starting from the block read."""
    from pydicom.errors import InvalidDicomError
    from pydicom.filereader import read_partial

    try:
        with BlockReader(file.read_range, file.size) as stream:
            if len(head) == min(file.size, stream.block):
                stream.blocks[0] = head
            dataset = read_partial(
                stream,  # type: ignore[arg-type]
                stop_when=_past_header,
                defer_size=1024,
                specific_tags=sorted(_IDENTIFIERS - {TRANSFER_SYNTAX}),
            )
            # converted here too: a value is read from its raw bytes only now (an unknown VR raises, say)
            found = {TRANSFER_SYNTAX: dataset.file_meta.get("TransferSyntaxUID")}
            found.update((tag, dataset[tag].value) for tag in _IDENTIFIERS if tag != TRANSFER_SYNTAX and tag in dataset)
    except InvalidDicomError:
        raise InvalidInstance(file.name, "not a DICOM P10 file (no 128-byte preamble and 'DICM' prefix)") from None
    except OSError as exc:
        raise InvalidInstance(file.name, f"cannot read the file ({exc.strerror or type(exc).__name__})") from None
    except Exception as exc:  # pydicom raises many kinds on corrupt or truncated data
        raise InvalidInstance(file.name, f"unreadable DICOM header ({type(exc).__name__})") from None
    values = {tag: str(value).encode("latin-1", "replace") for tag, value in found.items() if value is not None}
    return values


def to_instance(source: DicomInstance | InstanceFile | str | os.PathLike[str]) -> DicomInstance:
    """A source as a checked DicomInstance (reading its header); raises InvalidInstance."""
    if isinstance(source, DicomInstance):
        return source
    if isinstance(source, str | os.PathLike):
        try:
            source = LocalFile.at(source)
        except OSError as exc:
            raise InvalidInstance(str(source), f"cannot read the file ({exc.strerror})") from None
    return read_instance(source)
