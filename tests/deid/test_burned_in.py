"""Burned-in text: the gate on what instances declare, and the opt-in OCR check (Debian tesseract-ocr)."""

from __future__ import annotations

import logging
import shutil
from io import BytesIO
from pathlib import Path

import pytest
from PIL import Image, ImageDraw, ImageFont
from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.uid import ExplicitVRLittleEndian

from airflow_hi_stow.deid import BurnedInPolicy, DeidentifiedFile, Deidentifier, Quarantined
from tests.deid.conftest import KEY, pydicom_file

needs_tesseract = pytest.mark.skipif(shutil.which("tesseract") is None, reason="tesseract-ocr is not installed")


def _image(text: str, bits: int = 8) -> bytes:
    """A CT instance whose pixels are a grey field with ``text`` drawn into them (no text when empty)."""
    picture = Image.new("L", (320, 96), color=20)
    if text:
        ImageDraw.Draw(picture).text((12, 24), text, fill=235, font=ImageFont.load_default(size=36))
    ds = dcmread(pydicom_file("CT_small.dcm"))
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.Rows, ds.Columns, ds.BitsAllocated, ds.BitsStored, ds.HighBit = 96, 320, bits, bits, bits - 1
    ds.PixelRepresentation = 0
    pixels = picture.tobytes()
    ds.PixelData = pixels if bits == 8 else b"".join(bytes((0, p >> 4)) for p in pixels)  # 16-bit little endian
    buffer = BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def _with_annotation(value: str, modality: str = "CT") -> bytes:
    ds = dcmread(pydicom_file("CT_small.dcm"))
    ds.BurnedInAnnotation, ds.Modality = value, modality
    buffer = BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def test_declared_burned_in_text_is_quarantined_unless_allowed() -> None:
    result = Deidentifier(KEY).deidentify_bytes(_with_annotation("YES"))
    assert isinstance(result, Quarantined)
    assert (result.finding.reason, result.finding.detail) == ("burned-in", "BurnedInAnnotation is YES")
    assert isinstance(Deidentifier(KEY).deidentify_bytes(_with_annotation("NO")), DeidentifiedFile)
    allowed = Deidentifier(KEY, burned_in=BurnedInPolicy(allow=True)).deidentify_bytes(_with_annotation("YES"))
    assert isinstance(allowed, DeidentifiedFile)


@pytest.mark.parametrize("modality", ["US", "SC", "DOC"])
def test_modalities_known_to_carry_text_are_quarantined(modality: str) -> None:
    result = Deidentifier(KEY).deidentify_bytes(_with_annotation("NO", modality))
    assert isinstance(result, Quarantined)
    assert result.finding.detail == f"Modality {modality} is known to carry burned-in text"


def test_a_screen_capture_is_quarantined() -> None:
    ds = dcmread(pydicom_file("CT_small.dcm"))
    ds.ImageType = ["DERIVED", "SECONDARY", "SCREEN SAVE"]
    buffer = BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    result = Deidentifier(KEY).deidentify_bytes(buffer.getvalue())
    assert isinstance(result, Quarantined)
    assert (result.finding.attribute, result.finding.detail) == ("ImageType", "ImageType names a screen capture")


def test_secondary_capture_sop_class_is_quarantined() -> None:
    data = Path(pydicom_file("SC_rgb_rle.dcm")).read_bytes()
    result = Deidentifier(KEY).deidentify_bytes(data)
    assert isinstance(result, Quarantined)
    assert result.finding.reason == "burned-in"


@needs_tesseract
@pytest.mark.parametrize("bits", [8, 16])
def test_ocr_flags_a_frame_with_text_drawn_into_its_pixels(bits: int) -> None:
    ocr = Deidentifier(KEY, burned_in=BurnedInPolicy(ocr=True))
    flagged = ocr.deidentify_bytes(_image("DOE JOHN 1947", bits))
    assert isinstance(flagged, Quarantined)
    assert (flagged.finding.reason, flagged.finding.detail) == ("ocr-text", "OCR read text in frame(s) 1")
    assert isinstance(ocr.deidentify_bytes(_image("", bits)), DeidentifiedFile)


@needs_tesseract
def test_ocr_quarantines_pixels_it_cannot_read() -> None:
    data = Path(pydicom_file("JPEG2000.dcm")).read_bytes()  # JPEG 2000: no decoder without extra packages
    result = Deidentifier(KEY, burned_in=BurnedInPolicy(allow=True, ocr=True)).deidentify_bytes(data)
    assert isinstance(result, Quarantined)
    assert result.finding.reason == "ocr-unreadable"


def test_without_tesseract_the_ocr_check_is_skipped_with_a_warning(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # a PATH on which no tesseract is found
    with caplog.at_level(logging.WARNING, logger="airflow_hi_stow.deid"):
        deidentifier = Deidentifier(KEY, burned_in=BurnedInPolicy(ocr=True))
    assert "tesseract is not installed" in caplog.text
    result = deidentifier.deidentify_bytes(_image("DOE JOHN 1947"))
    assert isinstance(result, DeidentifiedFile)
    assert result.notes == ("OCR check skipped: tesseract is not installed",)


def test_icon_images_are_removed() -> None:
    ds = dcmread(pydicom_file("CT_small.dcm"))
    icon = Dataset()
    icon.Rows = icon.Columns = 1
    ds.IconImageSequence = [icon]
    buffer = BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    result = Deidentifier(KEY).deidentify_bytes(buffer.getvalue())
    assert isinstance(result, DeidentifiedFile)
    assert "IconImageSequence" not in dcmread(BytesIO(result.data))
