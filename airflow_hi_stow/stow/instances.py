"""DICOM P10 sources and the header facts the client needs before sending them."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Protocol

from pydicom import dcmread
from pydicom.errors import InvalidDicomError
from pydicom.tag import Tag

from airflow_hi_stow.core.uids import is_valid_uid

_HEADER_TAGS = [Tag(0x0008, 0x0016), Tag(0x0008, 0x0018), Tag(0x0020, 0x000D), Tag(0x0020, 0x000E)]


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

    def open_header(self) -> BinaryIO:
        """A seekable stream holding at least the DICOM header (everything before the pixel data)."""
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
        return self.path.open("rb")

    def open_header(self) -> BinaryIO:
        return self.path.open("rb")


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

    @property
    def name(self) -> str:
        return self.file.name

    @property
    def size(self) -> int:
        return self.file.size


def _required_uid(source: str, value: object, keyword: str, tag: str) -> str:
    text = str(value).strip() if value is not None else ""
    if not text:
        raise InvalidInstance(source, f"missing {tag} {keyword}")
    if not is_valid_uid(text):
        raise InvalidInstance(source, f"{tag} {keyword} is not a valid UID")
    return text


def read_instance(file: InstanceFile) -> DicomInstance:
    """Read the identifiers from a DICOM P10 file's header; raises InvalidInstance when it is not one."""
    if file.size == 0:
        raise InvalidInstance(file.name, "empty file")
    try:
        with file.open_header() as stream:
            dataset = dcmread(stream, stop_before_pixels=True, specific_tags=_HEADER_TAGS)
    except InvalidDicomError:
        raise InvalidInstance(file.name, "not a DICOM P10 file (no 128-byte preamble and 'DICM' prefix)") from None
    except OSError as exc:
        raise InvalidInstance(file.name, f"cannot read the file ({exc.strerror or type(exc).__name__})") from None
    except Exception as exc:  # pydicom raises many kinds on corrupt or truncated data
        raise InvalidInstance(file.name, f"unreadable DICOM header ({type(exc).__name__})") from None
    meta = dataset.file_meta
    transfer_syntax = str(meta.get("TransferSyntaxUID", "") or "").strip()
    if not transfer_syntax:
        raise InvalidInstance(file.name, "missing (0002,0010) TransferSyntaxUID in the file meta information")
    return DicomInstance(
        file=file,
        sop_class_uid=_required_uid(file.name, dataset.get("SOPClassUID"), "SOPClassUID", "(0008,0016)"),
        sop_instance_uid=_required_uid(file.name, dataset.get("SOPInstanceUID"), "SOPInstanceUID", "(0008,0018)"),
        study_instance_uid=_required_uid(file.name, dataset.get("StudyInstanceUID"), "StudyInstanceUID", "(0020,000D)"),
        series_instance_uid=_required_uid(
            file.name, dataset.get("SeriesInstanceUID"), "SeriesInstanceUID", "(0020,000E)"
        ),
        transfer_syntax_uid=transfer_syntax,
    )
