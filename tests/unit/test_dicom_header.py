"""The header scanner reads what pydicom reads: on every file of pydicom's test set, whatever it returns (it may
decline, leaving the file to pydicom) equals pydicom's values, read whole and read from the first block only."""

from __future__ import annotations

import struct
import warnings
from pathlib import Path

import pydicom.data
import pytest
from pydicom import dcmread

from airflow_hi_stow.core.dicom_header import TRANSFER_SYNTAX, scan_header
from airflow_hi_stow.sources.instances import HEADER_BLOCK

TEST_FILES = sorted(path for path in (Path(pydicom.data.__file__).parent / "test_files").rglob("*") if path.is_file())
WANTED = frozenset({TRANSFER_SYNTAX, 0x00080016, 0x00080018, 0x0020000D, 0x0020000E})


def pydicom_values(path: Path) -> dict[int, str] | None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            dataset = dcmread(path, stop_before_pixels=True)
        except Exception:
            return None
    found = {TRANSFER_SYNTAX: dataset.file_meta.get("TransferSyntaxUID")} if "file_meta" in dir(dataset) else {}
    found.update((tag, dataset[tag].value) for tag in WANTED - {TRANSFER_SYNTAX} if tag in dataset)
    return {tag: str(value).strip(" \0") for tag, value in found.items() if value is not None}


def scanned(data: bytes, complete: bool) -> dict[int, str] | None:
    values = scan_header(data, WANTED, complete=complete)
    if values is None:
        return None
    return {tag: value.decode("latin-1").strip(" \0") for tag, value in values.items()}


def test_reads_what_pydicom_reads_on_its_test_set() -> None:
    read = 0
    for path in TEST_FILES:
        data = path.read_bytes()
        for complete, head in ((True, data), (len(data) <= HEADER_BLOCK, data[:HEADER_BLOCK])):
            found = scanned(head, complete)
            if found is None:
                continue
            read += 1
            assert found == pydicom_values(path), path.name
    assert read > 100  # most files are in the common encodings, whole and from their first block


def element(group: int, number: int, vr: bytes, value: bytes) -> bytes:
    return struct.pack("<HH2sH", group, number, vr, len(value)) + value


EXPLICIT = b"1.2.840.10008.1.2.1\0"


def p10(data_set: bytes, syntax: bytes = EXPLICIT) -> bytes:
    return b"\0" * 128 + b"DICM" + element(2, 0x10, b"UI", syntax) + data_set


def test_implicit_vr_undefined_length_sequences_are_skipped_item_by_item() -> None:
    nested_uid = struct.pack("<HHL", 0x0008, 0x0018, 4) + b"9.9\0"  # a SOP Instance UID inside an item
    item = struct.pack("<HHL", 0xFFFE, 0xE000, 0xFFFFFFFF) + nested_uid + struct.pack("<HHL", 0xFFFE, 0xE00D, 0)
    sequence = struct.pack("<HHL", 0x0008, 0x0006, 0xFFFFFFFF) + item + struct.pack("<HHL", 0xFFFE, 0xE0DD, 0)
    top_uid = struct.pack("<HHL", 0x0008, 0x0018, 4) + b"1.2\0"
    found = scan_header(p10(sequence + top_uid, b"1.2.840.10008.1.2\0"), WANTED, complete=True)
    assert found == {TRANSFER_SYNTAX: b"1.2.840.10008.1.2\0", 0x00080018: b"1.2\0"}


def test_explicit_vr_reads_the_wanted_values() -> None:
    data = p10(element(8, 0x16, b"UI", b"1.2\0") + element(8, 0x18, b"UI", b"1.3\0") + element(0x20, 0x0E, b"UI", b"4"))
    assert scan_header(data, WANTED, complete=True) == {
        TRANSFER_SYNTAX: EXPLICIT,
        0x00080016: b"1.2\0",
        0x00080018: b"1.3\0",
        0x0020000E: b"4",
    }


@pytest.mark.parametrize(
    ("data", "complete"),
    [
        (b"\0" * 128 + b"DICX", True),  # no DICM prefix: pydicom explains
        (p10(element(8, 0x18, b"UI", b"1.2\0"), b"1.2.840.10008.1.2.2\0"), True),  # big endian
        (p10(element(8, 0x18, b"UI", b"1.2\0") + element(8, 0x16, b"UI", b"1.2\0")), True),  # out of order
        (p10(element(8, 0x18, b"UI", b"1.2\0")), False),  # the bytes end before the stop tag
        (p10(element(8, 0x18, b"UI", b"1.2\0"))[:-2], True),  # a value cut short
        (p10(element(8, 0x18, b"UI", b"1.2\0") + element(8, 0x20, b"DA", b"20261201")[:-2]), True),  # unwanted too
    ],
)
def test_declines_what_it_cannot_read_exactly(data: bytes, complete: bool) -> None:
    assert scan_header(data, WANTED, complete=complete) is None
