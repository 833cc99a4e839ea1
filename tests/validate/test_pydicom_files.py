"""Real-world files: every file of pydicom's bundled test set that pydicom itself reads without a warning passes the
default checks, unless this table names the checks it fails and why. And on every file of the set, the fast reading
of the common case (:mod:`airflow_hi_stow.validate.scan`) reads what pydicom reads."""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import pydicom.data
import pytest
from pydicom import Dataset, FileDataset, dcmread

from airflow_hi_stow.validate import Severity, ValidationSettings, check_instance, read_instance
from airflow_hi_stow.validate.reading import pydicom_silenced
from airflow_hi_stow.validate.scan import read_explicit_little, scan_meta

TEST_FILES = Path(pydicom.data.__file__).parent / "test_files"
_DICOMDIR = ({"container.dicomdir", "identity.required_uids"}, "a DICOMDIR: a media directory, not an instance")
_NO_STUDY = ({"identity.required_uids"}, "a bare image without StudyInstanceUID and SeriesInstanceUID")
_RT_DOSE = (
    {"container.media_storage_uids", "identity.uid_syntax"},
    "MediaStorageSOPInstanceUID differs from SOPInstanceUID; ReferencedRTPlanSequence holds a UID with a leading zero",
)
_RT_DOSE_RLE = ({"identity.uid_syntax"}, "ReferencedRTPlanSequence holds a UID with a leading zero")
_LIVER = ({"healthimaging.binary_segmentation"}, "a Binary Segmentation, which HealthImaging does not support")
_FRAGMENT = (
    {"container.file_meta", "identity.required_uids", "pixels.native_length", "pixels.photometric"},
    "a fragment for pydicom's own tests: no file meta UIDs, no SOP/Study/Series UIDs, 2 bytes of Pixel Data and no "
    "Image Pixel attributes",
)
FAILING: dict[str, tuple[set[str], str]] = {
    "JPEGLSNearLossless_08.dcm": _NO_STUDY,
    "JPEGLSNearLossless_16.dcm": _NO_STUDY,
    "SC_rgb_jls_lossy_line.dcm": _NO_STUDY,
    "SC_rgb_jls_lossy_sample.dcm": _NO_STUDY,
    "MR_small_padded.dcm": (
        {"pixels.native_length"},
        "128 bytes of Pixel Data beyond Rows x Columns x Samples x Bits Allocated (pydicom's padding test)",
    ),
    "MR_truncated.dcm": ({"container.integrity"}, "the file ends inside its Pixel Data"),
    "UN_sequence.dcm": ({"identity.required_uids"}, "one sequence encoded as UN, nothing else"),
    "badVR.dcm": (
        {"container.media_storage_uids", "identity.uid_syntax", "pixels.native_length"},
        "an RT Dose with the rtdose.dcm faults and a Number of Frames of '1A'",
    ),
    "dicomdirtests/DICOMDIR": _DICOMDIR,
    "dicomdirtests/DICOMDIR-bigEnd": _DICOMDIR,
    "dicomdirtests/DICOMDIR-empty.dcm": _DICOMDIR,
    "dicomdirtests/DICOMDIR-implicit": _DICOMDIR,
    "dicomdirtests/DICOMDIR-nooffset": _DICOMDIR,
    "dicomdirtests/DICOMDIR-nopatient": _DICOMDIR,
    "dicomdirtests/DICOMDIR-reordered": _DICOMDIR,
    "dicomdirtests/TINY_ALPHA/DICOMDIR": _DICOMDIR,
    "empty_charset_LEI.dcm": (
        {"container.file_meta", "identity.required_uids"},
        "a charset test: no Media Storage UIDs in the file meta, no SOP/Study/Series UIDs",
    ),
    "examples_overlay.dcm": ({"healthimaging.icon_image"}, "an Icon Image Sequence with pixel data"),
    "liver_1frame.dcm": _LIVER,
    "liver_expb_1frame.dcm": _LIVER,
    "meta_missing_tsyntax.dcm": _FRAGMENT,
    "nested_priv_SQ.dcm": _FRAGMENT,
    "no_meta_group_length.dcm": (
        {"container.file_meta", "identity.required_uids"},
        "no (0002,0000) group length, no SOP/Study/Series UIDs",
    ),
    "priv_SQ.dcm": ({"identity.required_uids"}, "a private sequence, nothing else"),
    "rtdose.dcm": _RT_DOSE,
    "rtdose_1frame.dcm": _RT_DOSE,
    "rtdose_expb.dcm": _RT_DOSE,
    "rtdose_expb_1frame.dcm": _RT_DOSE,
    "rtdose_rle.dcm": _RT_DOSE_RLE,
    "rtdose_rle_1frame.dcm": _RT_DOSE_RLE,
    "rtplan.dcm": ({"container.media_storage_uids"}, "MediaStorageSOPInstanceUID differs from SOPInstanceUID"),
    "rtplan_truncated.dcm": (
        {"container.integrity", "container.media_storage_uids"},
        "cut inside its BeamSequence; MediaStorageSOPInstanceUID differs from SOPInstanceUID",
    ),
}


def _read_by_pydicom_without_warnings(path: Path) -> bool:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            dcmread(path)
        except Exception:
            return False
    return not caught


FILES = sorted(
    str(path.relative_to(TEST_FILES))
    for path in TEST_FILES.rglob("*")
    if path.is_file() and _read_by_pydicom_without_warnings(path)
)


def test_the_set_is_the_one_the_table_was_made_for() -> None:
    assert len(FILES) > 150
    assert set(FAILING) <= set(FILES)


@pytest.mark.parametrize("name", FILES)
def test_each_file_passes_or_fails_as_the_table_says(name: str) -> None:
    data = (TEST_FILES / name).read_bytes()
    findings = check_instance(read_instance(io.BytesIO(data), len(data)), ValidationSettings.of())
    failed = {finding.check for finding in findings if finding.severity == Severity.ERROR}
    expected, why = FAILING.get(name, (set(), "passes"))
    assert failed == expected, why


EVERY_FILE = sorted(str(path.relative_to(TEST_FILES)) for path in TEST_FILES.rglob("*") if path.is_file())


def _elements(dataset: Dataset) -> list[tuple[int, str, object]]:
    return [(element.tag, element.VR, element.value) for element in dataset]


def _fast(name: str) -> FileDataset | None:
    data = (TEST_FILES / name).read_bytes()
    meta = scan_meta(data)
    with pydicom_silenced():
        return read_explicit_little(io.BytesIO(data), meta) if meta is not None else None


COMMON_CASE = [name for name in EVERY_FILE if _fast(name) is not None]


def test_the_fast_reading_takes_the_common_case_and_leaves_the_rest_to_pydicom() -> None:
    assert len(COMMON_CASE) > 100
    for other in ("MR_small_implicit.dcm", "MR_small_bigendian.dcm", "image_dfl.dcm", "no_meta.dcm", "README.txt"):
        assert other in EVERY_FILE
        assert other not in COMMON_CASE
    assert {"CT_small.dcm", "JPEG2000.dcm", "SC_rgb_rle.dcm", "examples_ybr_color.dcm"} <= set(COMMON_CASE)


@pytest.mark.parametrize("name", COMMON_CASE)
def test_the_fast_reading_reads_what_pydicom_reads(name: str) -> None:
    data = (TEST_FILES / name).read_bytes()
    with pydicom_silenced():
        fast_stream, slow_stream = io.BytesIO(data), io.BytesIO(data)
        meta = scan_meta(data)
        assert meta is not None
        fast = read_explicit_little(fast_stream, meta)
        slow = dcmread(slow_stream, stop_before_pixels=True)
        assert fast is not None
        assert fast_stream.tell() == slow_stream.tell()
        assert _elements(fast.file_meta) == _elements(slow.file_meta)
        assert _elements(fast) == _elements(slow)
        assert fast.original_encoding == slow.original_encoding
        assert fast.original_character_set == slow.original_character_set
        assert fast.preamble == slow.preamble


@pytest.mark.parametrize("name", EVERY_FILE)
def test_a_file_read_in_place_has_the_findings_of_one_read_into_memory(name: str) -> None:
    path = TEST_FILES / name
    settings = ValidationSettings.of({"deid": "warning"})
    in_memory = check_instance(read_instance(io.BytesIO(path.read_bytes()), path.stat().st_size), settings)
    with path.open("rb") as stream:  # pydicom reads an opened file itself
        in_place = check_instance(read_instance(stream, path.stat().st_size), settings)
    assert in_place == in_memory
