"""Scanning Explicit VR Little Endian elements from a P10 file's bytes: the file meta group of every file, and the
data set in the common case, a file in memory whose data set is Explicit VR Little Endian (that syntax, and every
encapsulated one). Its file meta and top-level elements up to the pixel data become the same ``RawDataElement``
objects, in the same ``FileDataset``, that ``pydicom.dcmread(..., stop_before_pixels=True)`` makes, and pydicom
converts them as usual when a check reads a value.

Written by hand for speed: pydicom's element generator costs about 5 µs an element in pure Python, which made it
most of the time of a file; this loop over ``struct.unpack_from`` costs about a third of that. It covers only what
it can read exactly as pydicom would; anything else (another transfer syntax, an unknown VR, an undefined length
other than a sequence's, a value or a tag cut short, items or file meta out of place) returns None and pydicom reads
the file. Undefined-length sequences are read by pydicom's own ``read_sequence``. Equivalence with ``dcmread`` is
tested on every file of pydicom's test set (tests/validate/test_pydicom_files.py).
"""

from __future__ import annotations

import io
import struct
from collections.abc import MutableSequence
from typing import cast

from pydicom.charset import convert_encodings, default_encoding
from pydicom.dataelem import DataElement, RawDataElement, convert_raw_data_element, empty_value_for_VR
from pydicom.dataset import Dataset, FileDataset, FileMetaDataset
from pydicom.filereader import read_sequence
from pydicom.tag import BaseTag
from pydicom.uid import UID, ExplicitVRLittleEndian
from pydicom.values import convert_string

LONG_LENGTH_VRS = frozenset({b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UN", b"UR", b"UT", b"UV"})
"""The VRs whose explicit encoding has a 4-byte length (PS3.5 §7.1.2)."""
_VRS = LONG_LENGTH_VRS | frozenset(
    {b"AE", b"AS", b"AT", b"CS", b"DA", b"DS", b"DT", b"FD", b"FL", b"IS", b"LO", b"LT", b"PN", b"SH", b"SL"}
    | {b"SS", b"ST", b"TM", b"UI", b"UL", b"US"}
)
_HEADER = struct.Struct("<HH2sH")
_LENGTH = struct.Struct("<L")
PIXEL_TAGS = {0x7FE00008: "FloatPixelData", 0x7FE00009: "DoubleFloatPixelData", 0x7FE00010: "PixelData"}
"""The top-level elements where the header ends (``stop_before_pixels`` stops at the first)."""
UNDEFINED_LENGTH = 0xFFFFFFFF
_SEQUENCE_DELIMITER = b"\xfe\xff\xdd\xe0\x00\x00\x00\x00"
_CHARACTER_SET = 0x00080005
P10_HEADER = 132

Elements = dict[BaseTag, RawDataElement | DataElement]
MetaScan = tuple[Elements, int]
"""The file meta elements and where the group ends."""


def scan_meta(data: bytes) -> MetaScan | None:
    """The file meta group at the start of ``data`` (the file, or enough of its beginning); None when it cannot be
    read as the Explicit VR Little Endian group PS3.10 §7.1 requires."""
    return _scan(data, P10_HEADER, meta=True)


def meta_length(meta: MetaScan) -> int:
    """Bytes of the file meta elements after (0002,0000) (all of them without it), as (0002,0000) should count."""
    elements, end = meta
    return end - P10_HEADER - (12 if BaseTag(0x00020000) in elements else 0)


def read_explicit_little(stream: io.BytesIO, meta: MetaScan) -> FileDataset | None:
    """The file in ``stream`` (its file meta already scanned) read as ``dcmread(stream, stop_before_pixels=True)``
    would read it, with the stream left where pydicom would leave it (at the pixel data, or the end); None when it
    is not the common case."""
    data = stream.getvalue()
    meta_elements, position = meta
    syntax = meta_elements.get(BaseTag(0x00020010))
    if not isinstance(syntax, RawDataElement) or not _explicit_little(syntax.value):
        return None
    body = _scan(data, position, meta=False)
    if body is None:
        return None
    elements, stop = body
    file_meta = FileMetaDataset(Dataset(dict(meta_elements)))
    file_meta.set_original_encoding(False, True, default_encoding)
    dataset = Dataset(elements, parent_encoding=default_encoding)
    dataset.set_original_encoding(False, True, _encoding(elements) or default_encoding)
    stream.seek(stop)
    read = FileDataset(stream, dataset, data[:128], file_meta, is_implicit_VR=False, is_little_endian=True)
    read.set_original_encoding(False, True, dataset._character_set)
    return read


def _explicit_little(value: bytes | None) -> bool:
    uid = UID((value or b"").rstrip(b"\0 ").decode("ascii", "replace"))
    return uid == ExplicitVRLittleEndian or (uid.is_transfer_syntax and uid.is_encapsulated and uid.is_little_endian)


def _encoding(elements: Elements) -> str | MutableSequence[str] | None:
    element = elements.get(BaseTag(_CHARACTER_SET))
    if not isinstance(element, RawDataElement):
        return None
    return convert_encodings(convert_raw_data_element(element).value)


def _scan(data: bytes, position: int, *, meta: bool) -> tuple[Elements, int] | None:
    """Elements from ``position`` to the end of the file meta group (``meta``) or to the pixel data or the end."""
    elements: Elements = {}
    end = len(data)
    encoding: str | MutableSequence[str] = default_encoding
    while position < end:
        if position + 8 > end:  # a tag cut short: after the file meta, what follows is not the meta's business
            return (elements, position) if meta else None
        group, element, vr, length = _HEADER.unpack_from(data, position)
        if meta and group != 0x0002:
            break
        tag = group << 16 | element
        if tag in PIXEL_TAGS:
            break
        if vr not in _VRS or group == 0xFFFE or (group == 0x0002) != meta:
            return None
        if vr in LONG_LENGTH_VRS:
            if position + 12 > end:
                return None
            length = _LENGTH.unpack_from(data, position + 8)[0]
            value_at = position + 12
        else:
            value_at = position + 8
        base = BaseTag(tag)
        text_vr = vr.decode()
        if length == UNDEFINED_LENGTH:
            if vr != b"SQ":
                return None
            read = _sequence(data, value_at, encoding)
            if read is None:
                return None
            elements[base], position = DataElement(base, text_vr, read[0], value_at, is_undefined_length=True), read[1]
            continue
        if value_at + length > end:
            return None
        value = (
            data[value_at : value_at + length] if length else cast(bytes | None, empty_value_for_VR(text_vr, raw=True))
        )
        if tag == _CHARACTER_SET:
            encoding = convert_encodings(convert_string(value or b"", True))
        elements[base] = RawDataElement(base, text_vr, length, value, value_at, False, True)
        position = value_at + length
    return elements, position


def _sequence(data: bytes, at: int, encoding: str | MutableSequence[str]) -> tuple[object, int] | None:
    """An undefined-length sequence read by pydicom, and where it ends; None unless it ends with its delimiter."""
    stream = io.BytesIO(data)
    stream.seek(at)
    try:
        sequence = read_sequence(stream, False, True, UNDEFINED_LENGTH, encoding)
    except Exception:  # a damaged or truncated sequence: pydicom reads the whole file and says so
        return None
    end = stream.tell()
    if data[end - 8 : end] != _SEQUENCE_DELIMITER:
        return None
    return sequence, end
