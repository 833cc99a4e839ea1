"""Pixel data as stored, never decoded: its presence, native length, encapsulated structure, and the Photometric
Interpretation against Samples per Pixel."""

from __future__ import annotations

import struct
from collections.abc import Iterator
from itertools import pairwise

from pydicom.pixels.utils import get_expected_length
from pydicom.uid import UID

from airflow_hi_stow.validate.check import file_check
from airflow_hi_stow.validate.findings import Problem, Severity
from airflow_hi_stow.validate.reading import Fragment, PixelLayout, ReadInstance
from airflow_hi_stow.validate.settings import ValidationSettings

SAMPLES_PER_PIXEL = {
    "MONOCHROME1": 1,
    "MONOCHROME2": 1,
    "PALETTE COLOR": 1,
    "RGB": 3,
    "YBR_FULL": 3,
    "YBR_FULL_422": 3,
    "YBR_PARTIAL_422": 3,
    "YBR_PARTIAL_420": 3,
    "YBR_ICT": 3,
    "YBR_RCT": 3,
    "XYB": 3,
    "HSV": 3,
    "ARGB": 4,
    "CMYK": 4,
}
"""PS3.3 C.7.6.3.1.2 (HSV, ARGB and CMYK are retired but still defined)."""
PIXEL_ATTRIBUTES = ("Rows", "Columns", "SamplesPerPixel", "BitsAllocated")
_JPEG = frozenset(
    {"1.2.840.10008.1.2.4.50", "1.2.840.10008.1.2.4.51", "1.2.840.10008.1.2.4.57", "1.2.840.10008.1.2.4.70"}
    | {"1.2.840.10008.1.2.4.80", "1.2.840.10008.1.2.4.81"}
)
_JPEG_2000 = frozenset(
    {"1.2.840.10008.1.2.4.90", "1.2.840.10008.1.2.4.91", "1.2.840.10008.1.2.4.92", "1.2.840.10008.1.2.4.93"}
    | {"1.2.840.10008.1.2.4.201", "1.2.840.10008.1.2.4.202", "1.2.840.10008.1.2.4.203"}
)
_RLE = "1.2.840.10008.1.2.5"
_J2K_CODESTREAM, _JP2_SIGNATURE = b"\xff\x4f\xff\x51", b"\x00\x00\x00\x0cjP  "


def _transfer_syntax(file: ReadInstance) -> UID:
    return UID(file.meta_text("TransferSyntaxUID"))


def _frames(file: ReadInstance) -> int | None:
    """Number of Frames (1 when absent); None when it is not a positive integer."""
    value = file.text("NumberOfFrames") or "1"
    return int(value) if value.isdigit() and int(value) > 0 else None


_BAD_FRAMES = Problem("cannot be checked: NumberOfFrames is not a positive integer", "NumberOfFrames")


@file_check(
    "pixels.present", Severity.ERROR, "Pixel Data present where the Image Pixel attributes say there is an image"
)
def present(file: ReadInstance, settings: ValidationSettings) -> Iterator[Problem]:
    assert file.dataset is not None
    dataset = file.dataset
    if file.pixels is None and "Rows" in dataset and "Columns" in dataset and "PixelDataProviderURL" not in dataset:
        yield Problem("Rows and Columns describe an image but there is no pixel data (a file cut short?)")


@file_check(
    "pixels.native_length",
    Severity.ERROR,
    "native pixel data holds Rows x Columns x Samples x Bits Allocated x Frames (bit-packed for 1 bit), padded to even",
)
def native_length(file: ReadInstance, settings: ValidationSettings) -> Iterator[Problem]:
    assert file.dataset is not None
    pixels, syntax = file.pixels, _transfer_syntax(file)
    if pixels is None or (syntax.is_transfer_syntax and syntax.is_encapsulated):
        return
    if pixels.encapsulated:
        yield Problem("encapsulated (undefined length) in a native transfer syntax", pixels.keyword)
        return
    missing = [keyword for keyword in PIXEL_ATTRIBUTES if not file.text(keyword).isdigit()]
    if missing:
        yield Problem(f"cannot be checked: {', '.join(missing)} missing or not a number", pixels.keyword)
        return
    if _frames(file) is None:
        yield _BAD_FRAMES
        return
    bits = int(file.dataset.BitsAllocated)
    if bits != 1 and bits % 8:
        yield Problem("is neither 1 nor a multiple of 8", "BitsAllocated")
        return
    expected = get_expected_length(file.dataset, "bytes")
    assert pixels.length is not None
    if pixels.length not in (expected, expected + expected % 2):
        packing = " (bit-packed)" if bits == 1 else ""
        yield Problem(
            f"holds {pixels.length} bytes; Rows x Columns x Samples x Bits Allocated x Frames{packing} makes "
            f"{expected}{' plus one byte of padding' if expected % 2 else ''}",
            pixels.keyword,
        )


@file_check(
    "pixels.encapsulated",
    Severity.ERROR,
    "encapsulated pixel data: a Basic Offset Table and fragments consistent with Number of Frames",
)
def encapsulated(file: ReadInstance, settings: ValidationSettings) -> Iterator[Problem]:
    pixels, syntax = file.pixels, _transfer_syntax(file)
    if pixels is None or not (syntax.is_transfer_syntax and syntax.is_encapsulated):
        return
    if not pixels.encapsulated:
        yield Problem("has a defined length (native) in an encapsulated transfer syntax", pixels.keyword)
        return
    frames = _frames(file)
    if frames is None:
        yield _BAD_FRAMES
        return
    fragments = pixels.fragments
    if len(fragments) < frames:
        yield Problem(f"{len(fragments)} fragment(s) for {frames} frame(s)", pixels.keyword)
        return
    yield from _offset_tables(file, pixels, frames)
    starts = _frame_starts(pixels, frames)
    bad = [number for number, fragment in enumerate(starts, start=1) if not _starts_like(syntax, fragment)]
    if bad:
        yield Problem(
            f"{len(bad)} of {len(starts)} frame(s) do not begin as {syntax.name} data does (first: frame {bad[0]})",
            pixels.keyword,
        )


def _offset_tables(file: ReadInstance, pixels: PixelLayout, frames: int) -> Iterator[Problem]:
    assert file.dataset is not None
    offsets = pixels.basic_offsets
    if offsets:
        starts = {fragment.offset for fragment in pixels.fragments}
        if len(offsets) != frames:
            yield Problem(
                f"the Basic Offset Table lists {len(offsets)} frame(s), Number of Frames is {frames}", pixels.keyword
            )
        elif offsets[0] != 0 or any(b <= a for a, b in pairwise(offsets)):
            yield Problem("the Basic Offset Table's offsets do not start at 0 and increase", pixels.keyword)
        elif not set(offsets) <= starts:
            yield Problem("a Basic Offset Table offset does not point at a fragment", pixels.keyword)
    extended = file.dataset.get("ExtendedOffsetTable")
    if extended:
        if offsets:
            yield Problem("both a Basic and an Extended Offset Table (the Basic one must be empty)", pixels.keyword)
        if len(extended) != 8 * frames:
            yield Problem(f"lists {len(extended) // 8} frame(s), Number of Frames is {frames}", "ExtendedOffsetTable")


def _frame_starts(pixels: PixelLayout, frames: int) -> list[Fragment]:
    """The fragments known to begin a frame: those the Basic Offset Table points at, every fragment when there is
    one per frame, or the first of a single frame."""
    if pixels.basic_offsets and len(pixels.basic_offsets) == frames:
        by_offset = {fragment.offset: fragment for fragment in pixels.fragments}
        return [by_offset[offset] for offset in pixels.basic_offsets if offset in by_offset]
    if len(pixels.fragments) == frames or frames == 1:
        return list(pixels.fragments[:frames])
    return []


def _starts_like(syntax: str, fragment: Fragment) -> bool:
    """Whether a frame's first bytes are those of its codec: a JPEG SOI marker, a JPEG 2000 codestream (or JP2
    signature box), an RLE header with 1 to 15 segments; other codecs are not looked at."""
    head = fragment.head
    if syntax in _JPEG:
        return head.startswith(b"\xff\xd8")
    if syntax in _JPEG_2000:
        return head.startswith((_J2K_CODESTREAM, _JP2_SIGNATURE))
    if syntax == _RLE:
        if len(head) < 8:
            return False
        segments, first = struct.unpack("<LL", head[:8])
        return 1 <= segments <= 15 and first == 64
    return True


@file_check(
    "pixels.photometric", Severity.ERROR, "Photometric Interpretation a defined term that fits Samples per Pixel"
)
def photometric(file: ReadInstance, settings: ValidationSettings) -> Iterator[Problem]:
    interpretation = file.text("PhotometricInterpretation")
    if not interpretation:
        if file.pixels is not None:
            yield Problem("missing, although there is pixel data", "PhotometricInterpretation")
        return
    expected = SAMPLES_PER_PIXEL.get(interpretation)
    if expected is None:
        yield Problem("not a defined term of PS3.3 C.7.6.3.1.2", "PhotometricInterpretation")
        return
    samples = file.text("SamplesPerPixel")
    if samples.isdigit() and int(samples) != expected:
        yield Problem(
            f"{interpretation} has {expected} sample(s) per pixel, SamplesPerPixel says {samples}", "SamplesPerPixel"
        )


CHECKS = (present, native_length, encapsulated, photometric)
