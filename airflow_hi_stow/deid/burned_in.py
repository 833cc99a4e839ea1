"""Burned-in text: the gate on what an instance says about itself, and an opt-in OCR check of its frames.

The gate quarantines an instance with Burned In Annotation YES, or of a modality or SOP Class known to carry text in
its pixels (ultrasound, secondary and screen captures, document images), unless the caller opts in. The OCR check
runs Debian's ``tesseract`` offline as a subprocess on each frame of native (uncompressed) pixel data.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from array import array
from dataclasses import dataclass

from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.uid import UID

_MODALITIES = frozenset({"US", "SC", "XC", "DOC", "OT", "ES"})
_SOP_CLASS_PREFIXES = (
    "1.2.840.10008.5.1.4.1.1.7",  # Secondary Capture, and its multi-frame variants
    "1.2.840.10008.5.1.4.1.1.6.",  # Ultrasound Image, Enhanced US Volume
    "1.2.840.10008.5.1.4.1.1.3.1",  # Ultrasound Multi-frame Image
    "1.2.840.10008.5.1.4.1.1.104.",  # Encapsulated PDF, CDA, STL...
    "1.2.840.10008.5.1.4.1.1.77.1.4",  # VL Photographic Image
)
_SCREEN_CAPTURE_CONVERSIONS = frozenset({"WSD", "SD", "SI", "DRW"})
OCR_MIN_CONFIDENCE = 60  # tesseract's word confidence (0-100)
OCR_MIN_WORD = 3
OCR_TIMEOUT = 60


@dataclass(frozen=True)
class BurnedInPolicy:
    """What to do about text in pixels: quarantine suspects unless ``allow``; OCR the frames when ``ocr``."""

    allow: bool = False
    ocr: bool = False
    ocr_languages: str = "eng"


def burned_in_reason(ds: Dataset) -> tuple[str, str] | None:
    """The attribute that makes this instance a suspect of burned-in text, and why; None when none does.

    Only standard codes are quoted (modality, SOP Class), never a value of the patient.
    """
    if str(ds.get("BurnedInAnnotation", "")).upper() == "YES":
        return "BurnedInAnnotation", "BurnedInAnnotation is YES"
    modality = str(ds.get("Modality", "")).upper()
    if modality in _MODALITIES:
        return "Modality", f"Modality {modality} is known to carry burned-in text"
    sop_class = str(ds.get("SOPClassUID", ""))
    if sop_class.startswith(_SOP_CLASS_PREFIXES):
        return "SOPClassUID", f"SOP Class {UID(sop_class).name or sop_class} is known to carry burned-in text"
    if str(ds.get("ConversionType", "")).upper() in _SCREEN_CAPTURE_CONVERSIONS:
        return "ConversionType", "ConversionType names a screen or document capture"
    image_type = ds.get("ImageType") or []
    values = image_type if isinstance(image_type, MultiValue | list) else [image_type]
    if any("SCREEN" in str(value).upper() for value in values):
        return "ImageType", "ImageType names a screen capture"
    return None


def tesseract_path() -> str | None:
    return shutil.which("tesseract")


def frames_as_pgm(ds: Dataset) -> list[bytes]:
    """Each frame of native grey or colour pixel data as an 8-bit PGM, its range stretched for OCR.

    Raises ValueError for pixel data it cannot read (compressed transfer syntaxes, unusual layouts).
    """
    if ds.file_meta.TransferSyntaxUID.is_compressed or "PixelData" not in ds:
        raise ValueError("pixel data is compressed or absent")
    rows, columns = int(ds.Rows), int(ds.Columns)
    samples, bits = int(ds.get("SamplesPerPixel", 1)), int(ds.BitsAllocated)
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    if bits not in (8, 16) or samples not in (1, 3) or int(ds.get("PlanarConfiguration", 0)) != 0:
        raise ValueError("pixel layout not supported by the OCR check")
    values = array("B" if bits == 8 else ("h" if int(ds.get("PixelRepresentation", 0)) else "H"))
    raw = bytes(ds.PixelData)
    per_frame = rows * columns * samples
    values.frombytes(raw[: per_frame * frames * values.itemsize])
    big_endian_data = ds.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.2"
    if bits == 16 and big_endian_data != (sys.byteorder == "big"):
        values.byteswap()
    pgms = []
    for frame in range(frames):
        pixels = values[frame * per_frame : (frame + 1) * per_frame]
        if samples == 3:  # luminance of interleaved RGB is close enough for text
            pixels = array("i", (sum(pixels[i : i + 3]) // 3 for i in range(0, len(pixels), 3)))
        low, high = min(pixels), max(pixels)
        span = max(high - low, 1)
        grey = bytes((value - low) * 255 // span for value in pixels)
        pgms.append(b"P5 %d %d 255\n" % (columns, rows) + grey)
    return pgms


def frames_with_text(pgms: list[bytes], tesseract: str, languages: str = "eng") -> list[int]:
    """Numbers (from 1) of the frames in which tesseract reads at least one confident word."""
    flagged = []
    for number, pgm in enumerate(pgms, start=1):
        result = subprocess.run(
            [tesseract, "stdin", "stdout", "-l", languages, "--psm", "11", "tsv"],
            input=pgm,
            capture_output=True,
            timeout=OCR_TIMEOUT,
            check=False,
            env={**os.environ, "OMP_THREAD_LIMIT": "1"},
        )
        if result.returncode != 0:
            raise RuntimeError(f"tesseract exited with {result.returncode}")
        if _confident_words(result.stdout.decode("utf-8", "replace")):
            flagged.append(number)
    return flagged


def _confident_words(tsv: str) -> int:
    count = 0
    for line in tsv.splitlines()[1:]:
        columns = line.split("\t")
        if len(columns) < 12:
            continue
        word = "".join(c for c in columns[11] if c.isalnum())
        try:
            confidence = float(columns[10])
        except ValueError:
            continue
        if confidence >= OCR_MIN_CONFIDENCE and len(word) >= OCR_MIN_WORD:
            count += 1
    return count
