"""Reading one DICOM P10 file for validation: the header through pydicom (or :mod:`.scan` in the common case), the
pixel data never decoded nor copied out, the layout of the pixel data element walked item by item, the elements after it, and every sign of a
truncated or damaged file noted on the way. pydicom's warnings and log records quote values, so they are caught here
and turned into value-free facts; nothing it says while reading reaches a log.
"""

from __future__ import annotations

import io
import logging
import struct
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cache
from typing import BinaryIO, cast

from pydicom import config, dcmread
from pydicom.datadict import tag_for_keyword
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset, FileDataset
from pydicom.filereader import read_dataset
from pydicom.multival import MultiValue

from airflow_hi_stow.validate.findings import Problem
from airflow_hi_stow.validate.index import DatasetIndex, attribute_name, element_vr, index_dataset
from airflow_hi_stow.validate.scan import (
    LONG_LENGTH_VRS,
    P10_HEADER,
    PIXEL_TAGS,
    UNDEFINED_LENGTH,
    meta_length,
    read_explicit_little,
    scan_meta,
)

PREAMBLE_LENGTH = 128
META_READ = 64 * 1024
"""Bytes read to scan the file meta group of a file read in place (the group is far smaller)."""
_ITEM, _SEQUENCE_DELIMITER = 0xFFFEE000, 0xFFFEE0DD
FRAGMENT_HEAD = 16
"""Bytes kept from the start of each fragment, enough to recognise a codestream's first marker."""
_SWITCHED_VR = ("Expected explicit VR, but found implicit VR", "Expected implicit VR, but found explicit VR")
_TRUNCATED = "End of file reached before delimiter"


class _DropRecords(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return False


_pydicom_loggers: tuple[int, list[logging.Logger]] = (-1, [])


def _loggers() -> list[logging.Logger]:
    """pydicom's logger and its children (a parent's filters do not see records its children log)."""
    global _pydicom_loggers
    known = logging.Logger.manager.loggerDict
    if _pydicom_loggers[0] != len(known):
        names = [name for name in list(known) if name == "pydicom" or name.startswith("pydicom.")]
        _pydicom_loggers = (len(known), [logging.getLogger(name) for name in names])
    return _pydicom_loggers[1]


@contextmanager
def pydicom_silenced() -> Iterator[list[str]]:
    """Within the block, pydicom's warnings are collected (their texts, for classification only: they may quote
    values), its log records dropped, and its value validation off (the checks judge values; pydicom's would only
    warn, slowly). Not thread-safe (``warnings.catch_warnings`` and pydicom's settings are process-wide):
    validation reads files in one thread per process."""
    loggers, drop = _loggers(), _DropRecords()
    for logger in loggers:
        logger.addFilter(drop)
    texts: list[str] = []
    try:
        with warnings.catch_warnings(record=True) as caught, config.disable_value_validation():
            warnings.simplefilter("always")
            yield texts
            texts.extend(str(warning.message) for warning in caught)
    finally:
        for logger in loggers:
            logger.removeFilter(drop)


@dataclass(frozen=True)
class Fragment:
    offset: int
    """From the first byte of the first fragment's item tag, as Basic Offset Table offsets count."""
    length: int
    head: bytes


@dataclass(frozen=True)
class PixelLayout:
    """The top-level pixel data element as stored, without its value."""

    keyword: str
    length: int | None
    """The declared length, or None when undefined (encapsulated)."""
    basic_offsets: tuple[int, ...] = ()
    """The Basic Offset Table of encapsulated data (empty when the table item is empty)."""
    fragments: tuple[Fragment, ...] = ()

    @property
    def encapsulated(self) -> bool:
        return self.length is None


_TEXT_VRS = frozenset(
    {"AE", "AS", "CS", "DA", "DS", "DT", "IS", "LO", "LT", "PN", "SH", "ST", "TM", "UC", "UI", "UR", "UT"}
)


@cache
def _tag(keyword: str) -> int:
    tag = tag_for_keyword(keyword)
    assert tag is not None, keyword
    return tag


def element_text(dataset: Dataset, keyword: str) -> str:
    """A top-level element's value as stripped text (values joined with backslashes); empty when absent or empty.

    ASCII text is decoded from the raw bytes: converting an element through pydicom costs far more, and most values
    the checks read are ASCII. Other text (a character set, ISO 2022 escapes) and binary values go through pydicom.
    """
    element = dataset.get_item(_tag(keyword))
    if element is None:
        return ""
    if isinstance(element, RawDataElement):
        raw = element.value
        if isinstance(raw, bytes) and element_vr(element) in _TEXT_VRS and raw.isascii() and b"\x1b" not in raw:
            return raw.decode("ascii").strip(" \0")
        element = dataset[element.tag]
    value = element.value
    if value is None:
        return ""
    if isinstance(value, MultiValue):
        return "\\".join(str(part) for part in value).strip()
    return str(value).strip()


@dataclass
class ReadInstance:
    """Everything validation needs from one file. ``dataset`` holds the header and any elements after the pixel
    data, with the pixel data itself left out."""

    size: int
    p10_problem: Problem | None = None
    dataset: FileDataset | None = None
    pixels: PixelLayout | None = None
    index: DatasetIndex = field(default_factory=DatasetIndex)
    damage: list[Problem] = field(default_factory=list)
    """Signs of a truncated or damaged file (for ``container.integrity``)."""
    switched_vr: bool = False
    """The data set is not encoded with the VR encoding its transfer syntax declares."""
    meta_length: int | None = None
    """Bytes of the file meta elements after (0002,0000), as walked; None when the group is not Explicit VR LE."""
    _texts: dict[tuple[bool, str], str] = field(default_factory=dict, repr=False)

    def text(self, keyword: str) -> str:
        """A top-level element's value as text (see :func:`element_text`), read once."""
        return self._text(False, keyword)

    def meta_text(self, keyword: str) -> str:
        """A file meta element's value as text."""
        return self._text(True, keyword)

    def _text(self, meta: bool, keyword: str) -> str:
        found = self._texts.get((meta, keyword))
        if found is None:
            if self.dataset is None:
                return ""
            found = element_text(self.dataset.file_meta if meta else self.dataset, keyword)
            self._texts[meta, keyword] = found
        return found


def read_instance(stream: BinaryIO, size: int, *, private: bool = True) -> ReadInstance:
    """Read a seekable stream holding a whole P10 file of ``size`` bytes (see :class:`ReadInstance`);
    ``private=False`` leaves private elements out of the index (when no check looks at them)."""
    result = ReadInstance(size)
    head = stream.read(P10_HEADER)
    if not head:
        result.p10_problem = Problem("empty file (0 bytes)")
        return result
    if len(head) < P10_HEADER or head[PREAMBLE_LENGTH:] != b"DICM":
        result.p10_problem = Problem("not a DICOM P10 file (no 128-byte preamble and 'DICM' prefix)")
        return result
    in_memory = stream if isinstance(stream, io.BytesIO) else None
    stream.seek(0)
    meta = scan_meta(in_memory.getvalue() if in_memory is not None else stream.read(META_READ))
    result.meta_length = meta_length(meta) if meta is not None else None
    stream.seek(0)
    with pydicom_silenced() as said:
        try:
            fast = read_explicit_little(in_memory, meta) if in_memory is not None and meta is not None else None
            dataset = fast if fast is not None else dcmread(stream, stop_before_pixels=True)
        except Exception as exc:  # pydicom raises many kinds on damaged data
            result.damage.append(Problem(f"the header cannot be read ({type(exc).__name__})"))
            return result
        result.dataset = dataset
        implicit, little = (bool(flag) for flag in dataset.original_encoding)
        _check_values(dataset, result.damage)
        # where pydicom stopped: the stream given, or the inflated copy of a deflated data set
        rest = cast(BinaryIO, dataset.buffer) if dataset.buffer is not None else stream
        _read_rest(rest, dataset, implicit, little, result)
        result.index = index_dataset(dataset, dataset.file_meta, private=private)
        result.damage.extend(result.index.damage)
    for text in said:
        if text.startswith(_SWITCHED_VR):
            result.switched_vr = True
        elif text.startswith(_TRUNCATED):
            result.damage.append(Problem("the file ends inside a sequence or encapsulated data (truncated)"))
    if len(dataset) == 0:
        result.damage.append(Problem("no data set after the file meta information"))
    return result


def _last_read(dataset: Dataset) -> RawDataElement | None:
    """The last element read, when it is raw and of a defined length: the only one a file's end can cut short."""
    element = list(dataset.values())[-1] if len(dataset) else None
    if isinstance(element, RawDataElement) and element.length != UNDEFINED_LENGTH and element.value is not None:
        return element
    return None


def _check_values(dataset: Dataset, damage: list[Problem]) -> None:
    """A value shorter than its length (pydicom reads what there is and stops at the file's end)."""
    last = _last_read(dataset)
    if last is not None and last.value is not None and len(last.value) < last.length:
        damage.append(Problem("the file ends inside this element (truncated)", attribute_name(last.tag)))


def _read_rest(buffer: BinaryIO, dataset: FileDataset, implicit: bool, little: bool, result: ReadInstance) -> None:
    """Walk the pixel data element where the header stopped, then read the elements after it."""
    position = buffer.tell()
    end = buffer.seek(0, 2)
    buffer.seek(position)
    if end - position == 0:
        _check_last_element(dataset, end, result.damage)
        return
    header = buffer.read(8)
    if len(header) < 8:
        result.damage.append(Problem("the file ends inside an element's tag (truncated)"))
        return
    endian = "<" if little else ">"
    group, element = struct.unpack(f"{endian}HH", header[:4])
    tag = group << 16 | element
    if tag not in PIXEL_TAGS:
        result.damage.append(Problem("unexpected data where the data set should go on", attribute_name(tag)))
        return
    keyword = PIXEL_TAGS[tag]
    vr = header[4:6]
    if vr in LONG_LENGTH_VRS and header[6:8] == b"\0\0":  # explicit VR, whatever the transfer syntax declares
        extra = buffer.read(4)
        if len(extra) < 4:
            result.damage.append(Problem("the file ends inside the element's header (truncated)", keyword))
            return
        length = struct.unpack(f"{endian}L", extra)[0]
    elif not implicit and vr.isalpha() and vr.isupper():
        length = struct.unpack(f"{endian}H", header[6:8])[0]
    else:
        length = struct.unpack(f"{endian}L", header[4:8])[0]
    if length == UNDEFINED_LENGTH:
        result.pixels = _walk_fragments(buffer, end, keyword, result.damage)
        if result.pixels is None:
            return
    else:
        result.pixels = PixelLayout(keyword, length)
        if buffer.tell() + length > end:
            result.damage.append(Problem("the file ends inside the pixel data (truncated)", keyword))
            return
        buffer.seek(length, 1)
    if buffer.tell() < end:
        try:
            trailing = read_dataset(buffer, implicit, little)
        except Exception as exc:
            result.damage.append(Problem(f"the elements after the pixel data cannot be read ({type(exc).__name__})"))
            return
        _check_values(trailing, result.damage)
        for element in trailing.elements():
            if element.tag not in dataset:
                dataset[element.tag] = element
        if buffer.tell() < end:
            result.damage.append(Problem("unreadable data after the pixel data"))


def _walk_fragments(buffer: BinaryIO, end: int, keyword: str, damage: list[Problem]) -> PixelLayout | None:
    """The items of encapsulated pixel data (PS3.5 A.4), each skipped after its first bytes; None (and the damage
    noted) when they do not end with the sequence delimiter."""
    offsets: tuple[int, ...] = ()
    fragments: list[Fragment] = []
    first_fragment: int | None = None
    items = 0
    while True:
        start = buffer.tell()
        header = buffer.read(8)
        if len(header) < 8:
            damage.append(Problem("the pixel data ends without its sequence delimiter (truncated)", keyword))
            return None
        group, element, length = struct.unpack("<HHL", header)
        tag = group << 16 | element
        if tag == _SEQUENCE_DELIMITER:
            break
        if tag != _ITEM:
            damage.append(Problem("encapsulated pixel data holds something other than items", keyword))
            return None
        if length == UNDEFINED_LENGTH or start + 8 + length > end:
            damage.append(Problem("an item of the encapsulated pixel data is cut short or has no length", keyword))
            return None
        if items == 0:
            table = buffer.read(length)
            offsets = struct.unpack(f"<{length // 4}L", table[: length - length % 4])
            if length % 4:
                damage.append(Problem("the Basic Offset Table's length is not a multiple of 4", keyword))
        else:
            first_fragment = start if first_fragment is None else first_fragment
            head = buffer.read(min(length, FRAGMENT_HEAD))
            fragments.append(Fragment(start - first_fragment, length, head))
            buffer.seek(start + 8 + length)
        items += 1
    return PixelLayout(keyword, None, offsets, tuple(fragments))


def _check_last_element(dataset: Dataset, end: int, damage: list[Problem]) -> None:
    """A file that stops less than one element header after its last complete element was cut inside a tag."""
    last = _last_read(dataset)
    if last is not None and 0 < end - (last.value_tell + last.length) < 8:
        damage.append(Problem("the file ends inside an element's tag (truncated)"))
