"""Hypothesis strategies for DICOM P10 files that pydicom's writer would never make: elements of any VR, value and
length, sequences nested a few deep (defined and undefined lengths), private blocks with their creators, pixel data
native or encapsulated, an Explicit or Implicit VR data set whatever the transfer syntax says; then the bytes
damaged or cut. Encoded here, element by element, because pydicom's writer refuses or repairs most of these.

Every file carries planted patient values (``PLANTED``) where the Basic Profile removes them: Patient's Name and ID,
a private element, a nested sequence item, Other Patient IDs; the tests check none survives a de-identification."""

from __future__ import annotations

import struct
from dataclasses import dataclass

from hypothesis import strategies as st
from pydicom.datadict import DicomDictionary

PLANTED_NAME = "FUZZPLANTED^PATIENTNAME"
PLANTED_ID = "FZPID-73519"
PLANTED = (PLANTED_NAME, PLANTED_ID)
ORIGINAL_SOP_UID = "1.2.826.0.1.3680043.8.498.90000000000000000000000000001"
STUDY_UID = "1.2.826.0.1.3680043.8.498.90000000000000000000000000002"
SERIES_UID = "1.2.826.0.1.3680043.8.498.90000000000000000000000000003"
CT_IMAGE = "1.2.840.10008.5.1.4.1.1.2"
EXPLICIT_LITTLE = "1.2.840.10008.1.2.1"
IMPLICIT_LITTLE = "1.2.840.10008.1.2"
JPEG_BASELINE = "1.2.840.10008.1.2.4.50"
SYNTAXES = (EXPLICIT_LITTLE, IMPLICIT_LITTLE, JPEG_BASELINE, "1.2.840.10008.1.2.2", "1.2.840.10008.1.2.1.99", "1.2.3")

LONG_VRS = ("OB", "OD", "OF", "OL", "OV", "OW", "SQ", "SV", "UC", "UN", "UR", "UT", "UV")
SHORT_VRS = ("AE", "AS", "AT", "CS", "DA", "DS", "DT", "FD", "FL", "IS", "LO", "LT", "PN", "SH", "SL", "SS",
             "ST", "TM", "UI", "UL", "US")  # fmt: skip
UNDEFINED = 0xFFFFFFFF
PUBLIC_TAGS = sorted(
    tag for tag, entry in DicomDictionary.items() if 0x0008 <= tag >> 16 < 0x7FE0 and entry[0] and "x" not in entry[4]
)


@dataclass(frozen=True)
class Element:
    tag: int
    vr: str
    value: bytes | tuple[tuple[Element, ...], ...]
    """The raw value, or the items of a sequence."""
    undefined: bool = False
    """An undefined length (sequences and their items; the pixel data of an encapsulated syntax)."""


def _text(value: str) -> bytes:
    data = value.encode("latin-1")
    return data + b" " if len(data) % 2 else data


VALUES = st.one_of(
    st.binary(max_size=24),
    st.sampled_from([_text(PLANTED_NAME), _text(PLANTED_ID), b"20260101", b"1.2.3\0", b"", b"\x1b$B", b"A\\B\\"]),
    st.text(max_size=12).map(lambda text: text.encode("utf-8")),
)


def _elements(depth: int) -> st.SearchStrategy[list[Element]]:
    leaf = st.builds(
        Element,
        st.one_of(st.sampled_from(PUBLIC_TAGS), st.integers(0x00080000, 0x7FDFFFFF)),
        st.sampled_from(SHORT_VRS + LONG_VRS[:-7] + ("UN", "UR", "UT", "XX")),
        VALUES,
    )
    if depth == 0:
        return st.lists(leaf, max_size=4)
    sequence = st.builds(
        Element,
        st.one_of(st.sampled_from(PUBLIC_TAGS), st.integers(0x00090000, 0x7FDFFFFF)),
        st.just("SQ"),
        st.lists(_elements(depth - 1).map(lambda items: tuple(sorted(items, key=_key))), max_size=3).map(tuple),
        st.booleans(),
    )
    return st.lists(st.one_of(leaf, sequence), max_size=4)


def _key(element: Element) -> int:
    return element.tag


@st.composite
def private_block(draw: st.DrawFn) -> list[Element]:
    """A private creator and elements of its block, one planted (PS3.5 §7.8.1)."""
    group = draw(st.integers(0x0004, 0x3FEF)) * 2 + 1
    block = draw(st.integers(0x10, 0xFF))
    creator = Element(group << 16 | block, "LO", _text(draw(st.sampled_from(["FUZZ CREATOR", "SIEMENS CSA HEADER"]))))
    offsets = draw(st.lists(st.integers(0, 0xFF), min_size=1, max_size=4, unique=True))
    vrs = st.sampled_from(("LO", "SH", "UN", "OB", "DS", "SQ"))
    elements = [creator]
    for number, offset in enumerate(sorted(offsets)):
        tag = group << 16 | block << 8 | offset
        vr = draw(vrs)
        if vr == "SQ":
            item = (Element(0x00100020, "LO", _text(PLANTED_ID)),)
            elements.append(Element(tag, "SQ", (item,), draw(st.booleans())))
        else:
            elements.append(Element(tag, vr, _text(PLANTED_NAME) if number == 0 else draw(VALUES)))
    return elements


def _uid(value: str) -> bytes:
    return (value + "\0").encode() if len(value) % 2 else value.encode()


def _base(rows: int) -> list[Element]:
    nested = ((Element(0x00100010, "PN", _text(PLANTED_NAME)), Element(0x00100020, "LO", _text(PLANTED_ID))),)
    return [
        Element(0x00080016, "UI", _uid(CT_IMAGE)),
        Element(0x00080018, "UI", _uid(ORIGINAL_SOP_UID)),
        Element(0x00080020, "DA", b"20260101"),
        Element(0x00080060, "CS", b"CT"),
        Element(0x00081140, "SQ", nested),  # Referenced Image Sequence, holding what does not belong there
        Element(0x00100010, "PN", _text(PLANTED_NAME)),
        Element(0x00100020, "LO", _text(PLANTED_ID)),
        Element(0x00101000, "LO", _text(PLANTED_ID)),  # Other Patient IDs (retired, still removed)
        Element(0x0020000D, "UI", _uid(STUDY_UID)),
        Element(0x0020000E, "UI", _uid(SERIES_UID)),
        Element(0x00280002, "US", struct.pack("<H", 1)),
        Element(0x00280004, "CS", b"MONOCHROME2 "),
        Element(0x00280010, "US", struct.pack("<H", rows)),
        Element(0x00280011, "US", struct.pack("<H", 4)),
        Element(0x00280100, "US", struct.pack("<H", 8)),
        Element(0x00280101, "US", struct.pack("<H", 8)),
        Element(0x00280102, "US", struct.pack("<H", 7)),
        Element(0x00280103, "US", struct.pack("<H", 0)),
    ]


@dataclass(frozen=True)
class FuzzedFile:
    data: bytes
    syntax: str
    explicit: bool
    plain: bool = False
    """Only the base instance, private blocks and pixel data, undamaged, in a syntax pydicom writes (its data set
    encoded explicitly or not, whatever the syntax says): a de-identification must succeed."""


@st.composite
def dicom_files(draw: st.DrawFn, *, damaged: bool = True) -> FuzzedFile:
    """A P10 file: the base instance, random elements and private blocks (unique tags, in order), pixel data;
    its bytes then damaged (overwritten, inserted, cut) when ``damaged`` (not always)."""
    syntax = draw(st.sampled_from(SYNTAXES))
    explicit = draw(st.booleans()) if syntax != IMPLICIT_LITTLE else draw(st.sampled_from([False, False, True]))
    rows = draw(st.integers(1, 4))
    elements: dict[int, Element] = {}
    extra = draw(_elements(2))
    for element in [*extra, *(e for block in draw(st.lists(private_block(), max_size=2)) for e in block)]:
        elements.setdefault(element.tag, element)
    for element in _base(rows):  # the base's elements win
        elements[element.tag] = element
    pixels: Element | None = None
    if draw(st.booleans()):
        if syntax == JPEG_BASELINE and explicit:
            fragments = draw(st.lists(st.binary(min_size=1, max_size=40), min_size=1, max_size=3))
            items = b"".join(struct.pack("<HHL", 0xFFFE, 0xE000, len(f)) + f for f in [b"", *fragments])
            pixels = Element(0x7FE00010, "OB", items + struct.pack("<HHL", 0xFFFE, 0xE0DD, 0), True)
        else:
            pixels = Element(0x7FE00010, "OW" if draw(st.booleans()) else "OB", bytes(rows * 4))
    body = b"".join(encode(e, explicit) for e in sorted(elements.values(), key=_key))
    if pixels is not None:
        body += encode(pixels, explicit)
    data = bytearray(p10(syntax) + body)
    damage = damaged and draw(st.booleans())
    if damage:
        for offset, replacement in draw(st.lists(st.tuples(st.integers(0, 4000), st.binary(max_size=6)), max_size=3)):
            at = 132 + offset % (len(data) - 131)
            if draw(st.booleans()):
                data[at : at + len(replacement)] = replacement
            else:
                data[at:at] = replacement
        cut = draw(st.one_of(st.none(), st.integers(0, 4000)))
        if cut is not None:
            del data[132 + cut % (len(data) - 131) :]
    writable = syntax in (EXPLICIT_LITTLE, IMPLICIT_LITTLE) or (explicit and syntax == JPEG_BASELINE)
    plain = not extra and not damage and writable  # (native pixel data under JPEG is no valid file)
    return FuzzedFile(bytes(data), syntax, explicit, plain)


def plain_file(syntax: str, explicit: bool) -> FuzzedFile:
    """The base instance alone, its data set encoded explicitly or not, under ``syntax``."""
    body = b"".join(encode(element, explicit) for element in _base(2))
    return FuzzedFile(p10(syntax) + body, syntax, explicit, plain=True)


def p10(syntax: str) -> bytes:
    """The preamble, ``DICM`` and an Explicit VR Little Endian file meta group (with its group length)."""
    meta = b"".join(
        encode(element, True)
        for element in (
            Element(0x00020001, "OB", b"\0\1"),
            Element(0x00020002, "UI", _uid(CT_IMAGE)),
            Element(0x00020003, "UI", _uid(ORIGINAL_SOP_UID)),
            Element(0x00020010, "UI", _uid(syntax)),
            Element(0x00020012, "UI", _uid("1.2.826.0.1.3680043.8.498.1")),
        )
    )
    length = encode(Element(0x00020000, "UL", struct.pack("<L", len(meta))), True)
    return bytes(128) + b"DICM" + length + meta


def encode(element: Element, explicit: bool) -> bytes:
    """One element, Little Endian, Explicit or Implicit VR (an undefined length with raw bytes: the value holds
    the items and their delimiter, as encapsulated pixel data)."""
    group, number = element.tag >> 16, element.tag & 0xFFFF
    if isinstance(element.value, tuple):
        items = b"".join(_item(item, explicit, element.undefined) for item in element.value)
        value = items + (struct.pack("<HHL", 0xFFFE, 0xE0DD, 0) if element.undefined else b"")
    else:
        value = element.value
    length = UNDEFINED if element.undefined else len(value)
    if not explicit:
        return struct.pack("<HHL", group, number, length) + value
    vr = element.vr.encode()
    if element.vr in LONG_VRS or (element.vr not in SHORT_VRS and length > 0xFFFF):
        return struct.pack("<HH2s2xL", group, number, vr, length) + value
    return struct.pack("<HH2sH", group, number, vr, length & 0xFFFF) + value


def _item(item: tuple[Element, ...], explicit: bool, undefined: bool) -> bytes:
    content = b"".join(encode(element, explicit) for element in item)
    if undefined:
        return struct.pack("<HHL", 0xFFFE, 0xE000, UNDEFINED) + content + struct.pack("<HHL", 0xFFFE, 0xE00D, 0)
    return struct.pack("<HHL", 0xFFFE, 0xE000, len(content)) + content


def damaged(file: FuzzedFile, old: bytes, new: bytes) -> FuzzedFile:
    """``file`` with the first ``old`` bytes replaced by ``new`` (not plain any more)."""
    assert old in file.data
    return FuzzedFile(file.data.replace(old, new, 1), file.syntax, file.explicit)


SOP_INSTANCE_UID_HEADER = b"\x08\x00\x18\x00UI"
REFERENCED_IMAGE_SEQUENCE_TAG = b"\x08\x00\x40\x11SQ"


def undefined_length_non_sequence() -> FuzzedFile:
    """An Implicit VR file whose first element, (0008,0001) (UL in the dictionary), has an undefined length and
    an item holding another such element: pydicom reads it up to the first delimiter, not as a sequence."""
    inner = Element(0x00080001, "UL", ((Element(0x00080001, "UL", bytes(4)),),), undefined=True)
    odd = Element(0x00080001, "UL", ((inner,),), undefined=True)
    body = encode(odd, False) + b"".join(encode(element, False) for element in _base(2))
    return FuzzedFile(p10(IMPLICIT_LITTLE) + body, IMPLICIT_LITTLE, False)
