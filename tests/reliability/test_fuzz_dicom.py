"""Fuzzing the DICOM header reading: the sender's scanner (core.dicom_header, also the emulator's), the validation
step's fast reader (validate.scan) and its whole reading and checks of a file. On generated files of any VR, length,
nesting and private blocks, damaged or cut: a scanner that answers answers what pydicom reads, the validation never
raises (a damaged file is a finding), and a validation run over N such files accounts for N."""

from __future__ import annotations

import io
import json
import shutil
import warnings
from pathlib import Path

import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from pydicom import dcmread
from pydicom.dataset import Dataset

from airflow_hi_stow.core.dicom_header import TRANSFER_SYNTAX, scan_header
from airflow_hi_stow.sources.instances import HEADER_BLOCK, InvalidInstance, LocalFile, read_instance
from airflow_hi_stow.storage.locations import LocalLocation
from airflow_hi_stow.validate import Severity, ValidationSettings, check_instance, validate_files
from airflow_hi_stow.validate import read_instance as read_for_validation
from airflow_hi_stow.validate.reading import pydicom_silenced
from airflow_hi_stow.validate.scan import read_explicit_little, scan_meta
from tests.reliability.conftest import examples
from tests.reliability.dicom_fuzz import (
    EXPLICIT_LITTLE,
    REFERENCED_IMAGE_SEQUENCE_TAG,
    SOP_INSTANCE_UID_HEADER,
    FuzzedFile,
    damaged,
    dicom_files,
    plain_file,
    undefined_length_non_sequence,
)

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")  # pydicom warns of the invalid values made here

WANTED = frozenset({TRANSFER_SYNTAX, 0x00080016, 0x00080018, 0x0020000D, 0x0020000E})


def pydicom_values(data: bytes) -> dict[int, str] | None:
    """The wanted values as pydicom reads them, or None when it cannot read the file."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            dataset = dcmread(io.BytesIO(data), stop_before_pixels=True)
            found = {TRANSFER_SYNTAX: dataset.file_meta.get("TransferSyntaxUID")}
            found.update((tag, dataset[tag].value) for tag in WANTED - {TRANSFER_SYNTAX} if tag in dataset)
        except Exception:
            return None
    return {tag: str(value).strip(" \0") for tag, value in found.items() if value is not None}


@examples(150)
@given(file=dicom_files())
@example(file=damaged(plain_file(EXPLICIT_LITTLE, True), REFERENCED_IMAGE_SEQUENCE_TAG, b"\x20\x00\x40\x11SQ")).via(
    "an element out of order (0020,1140) before the Study and Series UIDs: not taken for their absence"
)
@example(file=undefined_length_non_sequence()).via("an Implicit VR UL of undefined length: pydicom's reading differs")
def test_the_header_scanner_answers_what_pydicom_reads_or_leaves_the_file_to_it(file: FuzzedFile) -> None:
    for complete, head in ((True, file.data), (len(file.data) <= HEADER_BLOCK, file.data[:HEADER_BLOCK])):
        found = scan_header(head, WANTED, complete=complete, required=WANTED)  # as the sender reads
        if found is None:
            continue
        expected = pydicom_values(file.data)
        if expected is not None:
            assert {tag: value.decode("latin-1").strip(" \0") for tag, value in found.items()} == expected


class InMemory:
    def __init__(self, name: str, data: bytes) -> None:
        self.name, self.data, self.size = name, data, len(data)

    def open(self) -> io.BytesIO:
        return io.BytesIO(self.data)

    def read_range(self, start: int, end: int) -> bytes:
        return self.data[start:end]


@examples(150)
@given(file=dicom_files())
@example(file=damaged(plain_file(EXPLICIT_LITTLE, True), SOP_INSTANCE_UID_HEADER, b"\x08\x00\x18\x00\x55\x00")).via(
    "an unknown VR for SOP Instance UID: pydicom raises when the value is converted"
)
def test_the_senders_header_reading_is_an_instance_or_a_clear_error(file: FuzzedFile) -> None:
    try:
        instance = read_instance(InMemory("fuzzed.dcm", file.data))
    except InvalidInstance as error:
        refused: InvalidInstance | None = error
    else:
        refused = None
        assert instance.sop_instance_uid
        assert instance.transfer_syntax_uid
    if refused is not None:
        assert refused.source == "fuzzed.dcm"
        assert refused.reason


def _elements(dataset: Dataset) -> list[tuple[object, ...]]:
    """Each element as pydicom converts it (sequences item by item), or the kind of error converting it raises."""
    found: list[tuple[object, ...]] = []
    for tag in dataset.keys():  # noqa: SIM118 (iterating a Dataset converts its elements)
        try:
            element = dataset[tag]
            value = [_elements(item) for item in element.value] if element.VR == "SQ" else element.value
        except Exception as error:
            found.append((tag, type(error).__name__))
        else:
            found.append((tag, element.VR, value))
    return found


@examples(150)
@given(file=dicom_files())
def test_the_fast_reading_of_the_validation_reads_what_pydicom_reads(file: FuzzedFile) -> None:
    meta = scan_meta(file.data)
    if meta is None:
        return
    with pydicom_silenced():
        fast_stream, slow_stream = io.BytesIO(file.data), io.BytesIO(file.data)
        fast = read_explicit_little(fast_stream, meta)
        if fast is None:
            return
        slow = dcmread(slow_stream, stop_before_pixels=True)  # what the fast reading takes, pydicom reads
        assert fast_stream.tell() == slow_stream.tell()
        assert _elements(fast.file_meta) == _elements(slow.file_meta)
        assert _elements(fast) == _elements(slow)
        assert fast.original_encoding == slow.original_encoding


@examples(150)
@given(file=dicom_files())
def test_the_validation_reads_and_checks_any_file_without_raising(file: FuzzedFile) -> None:
    """Not through ``inspect_file``, whose last resort turns any exception into a finding: a reader's exception
    here is a bug."""
    read = read_for_validation(io.BytesIO(file.data), len(file.data))
    findings = check_instance(read, ValidationSettings.of())
    if read.dataset is None:  # unreadable: an error says why
        assert any(finding.severity is Severity.ERROR and finding.message for finding in findings)


@examples(15, scratch=True)
@given(files=st.lists(dicom_files(), min_size=1, max_size=4))
def test_a_validation_run_over_fuzzed_files_accounts_for_each(files: list[FuzzedFile], tmp_path: Path) -> None:
    """Each input good (and listed for the store) or quarantined with a reason file, none twice, none missing."""
    shutil.rmtree(tmp_path / "run", ignore_errors=True)
    sources = []
    for number, file in enumerate(files):
        path = tmp_path / "run" / "in" / f"{number}.dcm"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(file.data)
        sources.append(LocalFile.at(path))
    run = validate_files(
        sources,
        quarantine=LocalLocation(tmp_path / "run" / "q"),
        output=LocalLocation(tmp_path / "run" / "out"),
        workers=1,
    )
    assert sorted(outcome.source for outcome in run.outcomes) == sorted(source.name for source in sources)
    listed = (tmp_path / "run" / "out" / "good.jsonl").read_text().splitlines()
    assert sorted(json.loads(line)["source"] for line in listed) == sorted(outcome.source for outcome in run.good)
    for outcome in run.quarantined:
        assert outcome.reason_file is not None
        reason = json.loads(Path(outcome.reason_file).read_text())
        assert reason["findings"], outcome
        assert any(finding.severity is Severity.ERROR for finding in outcome.findings)
