"""Top-level element values of a DICOM P10 file, read from its first bytes without pydicom.

The sender needs four UIDs and the transfer syntax of every file, and pydicom's reader costs about 0.4 ms a file
even from memory (a Python call per element, a dataset built), which made header reading most of the client's time
on small instances. :func:`scan_header` walks the elements with ``struct`` only, skipping every value it does not
want (sequences included, item by item when their length is undefined), and stops past the last tag asked for.

It reads the common encodings only, exactly: a 128-byte preamble and ``DICM``, an Explicit VR Little Endian file
meta group, then an Implicit or Explicit VR Little Endian data set (the latter also for every encapsulated syntax).
For anything else (Big Endian, Deflate, an unknown VR, a tag or value cut short before the stop, elements out of
order) it returns None, and the caller reads the file with pydicom, which decides and explains.
"""

from __future__ import annotations

import struct
from collections.abc import Collection
from functools import cache

PREAMBLE = 128
_MAGIC = b"DICM"
TRANSFER_SYNTAX = 0x00020010
IMPLICIT_VR_LITTLE_ENDIAN = "1.2.840.10008.1.2"
_NOT_LITTLE_ENDIAN_EXPLICIT = frozenset({IMPLICIT_VR_LITTLE_ENDIAN, "1.2.840.10008.1.2.2", "1.2.840.10008.1.2.1.99"})
"""Data set encodings other than Explicit VR Little Endian (implicit, big endian, deflated)."""
_LONG_LENGTH_VRS = frozenset(
    {b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UN", b"UR", b"UT", b"UV"}
)
_SHORT_LENGTH_VRS = frozenset(
    {b"AE", b"AS", b"AT", b"CS", b"DA", b"DS", b"DT", b"FD", b"FL", b"IS", b"LO", b"LT", b"PN", b"SH", b"SL"}
    | {b"SS", b"ST", b"TM", b"UI", b"UL", b"US"}
)
_EXPLICIT = struct.Struct("<HH2sH")
_IMPLICIT = struct.Struct("<HHL")
_LENGTH = struct.Struct("<L")
UNDEFINED_LENGTH = 0xFFFFFFFF
_ITEM = 0xFFFEE000
_ITEM_END = 0xFFFEE00D
_SEQUENCE_END = 0xFFFEE0DD
_MAX_DEPTH = 16


class _Unreadable(Exception):
    """Not readable here (cut short, or an encoding this scanner leaves to pydicom)."""


def scan_header(
    data: bytes, wanted: Collection[int], *, complete: bool = False, required: Collection[int] = ()
) -> dict[int, bytes] | None:
    """The raw values of the ``wanted`` top-level tags (file meta tags included) found before the first top-level
    tag greater than all of them; a wanted tag that is absent is absent from the result.

    ``data`` is the start of the file, or all of it when ``complete`` (then reaching its end settles what is
    absent). A ``required`` tag found missing where the scan stops, before the end, gives None: only the elements'
    order said it was absent, and an element out of order later (a damaged file) may be it. None: this scanner
    cannot tell (see the module docstring).
    """
    if len(data) < PREAMBLE + 4 or data[PREAMBLE : PREAMBLE + 4] != _MAGIC:
        return None
    wanted = frozenset(wanted)
    stop = max(wanted)
    found: dict[int, bytes] = {}
    try:
        position = _meta(data, wanted, found)
        syntax = found.get(TRANSFER_SYNTAX)
        if syntax is None and TRANSFER_SYNTAX not in wanted:
            syntax = _meta_value(data, TRANSFER_SYNTAX)
        if syntax is None:
            return None
        text = syntax.rstrip(b"\0 ").decode("ascii")
        if text in _NOT_LITTLE_ENDIAN_EXPLICIT and text != IMPLICIT_VR_LITTLE_ENDIAN:
            return None
        explicit = text != IMPLICIT_VR_LITTLE_ENDIAN
        ended = stop <= TRANSFER_SYNTAX or _data_set(data, position, explicit, wanted, stop, found, complete)
        if not ended and not set(required) <= found.keys():
            return None
    except (_Unreadable, struct.error, UnicodeDecodeError):
        return None
    return found


def _meta(data: bytes, wanted: Collection[int], found: dict[int, bytes]) -> int:
    """Read the file meta group (Explicit VR Little Endian, PS3.10 §7.1); returns where the data set starts."""
    position = PREAMBLE + 4
    end = len(data)
    while position + 8 <= end:
        group, element, vr, length = _EXPLICIT.unpack_from(data, position)
        if group != 0x0002:
            return position
        position, value_at, length = _explicit_value(data, position, vr, length)
        if length == UNDEFINED_LENGTH:
            raise _Unreadable
        tag = group << 16 | element
        if tag in wanted:
            found[tag] = data[value_at : value_at + length]
        position = value_at + length
    raise _Unreadable  # the file meta group ends beyond the bytes read


def _meta_value(data: bytes, tag: int) -> bytes | None:
    found: dict[int, bytes] = {}
    _meta(data, (tag,), found)
    return found.get(tag)


def _explicit_value(data: bytes, position: int, vr: bytes, length: int) -> tuple[int, int, int]:
    """(element start, value start, value length) of an explicit VR element at ``position``."""
    if vr in _SHORT_LENGTH_VRS:
        return position, position + 8, length
    if vr in _LONG_LENGTH_VRS:
        if position + 12 > len(data):
            raise _Unreadable
        return position, position + 12, _LENGTH.unpack_from(data, position + 8)[0]
    raise _Unreadable


def _element(data: bytes, position: int, explicit: bool) -> tuple[int, int, int]:
    """(tag, value start, value length) of the element at ``position``."""
    if position + 8 > len(data):
        raise _Unreadable
    if not explicit:
        group, element, length = _IMPLICIT.unpack_from(data, position)
        return group << 16 | element, position + 8, length
    group, element, vr, length = _EXPLICIT.unpack_from(data, position)
    tag = group << 16 | element
    if group == 0xFFFE:  # item and delimiter tags carry no VR, in any encoding
        return tag, position + 8, _LENGTH.unpack_from(data, position + 4)[0]
    _, value_at, length = _explicit_value(data, position, vr, length)
    return tag, value_at, length


def _data_set(
    data: bytes,
    position: int,
    explicit: bool,
    wanted: Collection[int],
    stop: int,
    found: dict[int, bytes],
    complete: bool,
) -> bool:
    """Read the data set's elements up to the first beyond ``stop``; True when the data ended first."""
    end = len(data)
    previous = -1
    # Locals, not globals, in the loop that runs once per element.
    explicit_header, implicit_header, length_at = _EXPLICIT.unpack_from, _IMPLICIT.unpack_from, _LENGTH.unpack_from
    short_vrs, long_vrs = _SHORT_LENGTH_VRS, _LONG_LENGTH_VRS
    while position < end:
        if explicit:
            # Most elements before the identifiers have a short VR: walk runs of them with the fewest steps. An
            # element this loop does not take (long VR, out of order, past the stop, an item) is read below.
            while position + 8 <= end:
                group, element, vr, length = explicit_header(data, position)
                tag = group << 16 | element
                if tag <= previous or tag > stop or vr not in short_vrs:
                    break
                previous = tag
                if tag in wanted:
                    if position + 8 + length > end:
                        raise _Unreadable
                    found[tag] = data[position + 8 : position + 8 + length]
                position += 8 + length
            if position >= end:
                break
        if position + 8 > end:
            raise _Unreadable
        if explicit:
            group, element, vr, length = explicit_header(data, position)
        else:
            group, element, length = implicit_header(data, position)
        tag = group << 16 | element
        if tag <= previous or group == 0xFFFE:
            raise _Unreadable  # out of order, or an item where an element should be: pydicom says what it is
        if tag > stop:
            return False
        previous = tag
        if not explicit or vr in short_vrs:
            value_at = position + 8
        elif vr in long_vrs and position + 12 <= end:
            length = length_at(data, position + 8)[0]
            value_at = position + 12
        else:
            raise _Unreadable
        if length == UNDEFINED_LENGTH:
            if not explicit and not _may_be_sequence(tag):
                raise _Unreadable  # pydicom reads it up to a delimiter, not as items: let it decide
            position = _skip_undefined(data, value_at, explicit, 0)
            continue
        if value_at + length > end:
            raise _Unreadable
        if tag in wanted:
            found[tag] = data[value_at : value_at + length]
        position = value_at + length
    if position > end or not complete:
        raise _Unreadable  # the bytes ended before the stop tag, or within a value: more of the file is needed
    return True


@cache
def _may_be_sequence(tag: int) -> bool:
    """An Implicit VR element of undefined length is read as a sequence (as pydicom reads it) unless the data
    dictionary gives its tag another VR. pydicom's dictionary is imported only when such an element is met."""
    from pydicom.datadict import dictionary_has_tag, dictionary_VR

    return not dictionary_has_tag(tag) or dictionary_VR(tag) in ("SQ", "UN")


def _skip_undefined(data: bytes, position: int, explicit: bool, depth: int) -> int:
    """Where an undefined-length value ends: a sequence's items (even ``depth``) up to its delimiter, or an
    undefined-length item's elements (odd ``depth``) up to the item's delimiter."""
    if depth > _MAX_DEPTH:
        raise _Unreadable
    in_item = depth % 2 == 1
    while True:
        tag, value_at, length = _element(data, position, explicit)
        if tag == (_ITEM_END if in_item else _SEQUENCE_END):
            return value_at
        if (tag == _ITEM) == in_item or tag in (_ITEM_END, _SEQUENCE_END):
            raise _Unreadable  # an item among elements, an element among items, or a stray delimiter
        if length == UNDEFINED_LENGTH:
            if in_item and not explicit and not _may_be_sequence(tag):
                raise _Unreadable
            position = _skip_undefined(data, value_at, explicit, depth + 1)
        elif value_at + length > len(data):
            raise _Unreadable
        else:
            position = value_at + length
