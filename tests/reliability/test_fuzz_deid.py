"""Fuzzing the de-identifier on mutated instances (elements of any VR, length and nesting, private blocks, damaged
or cut bytes): each file is de-identified or quarantined with a reason, never an exception; what comes out reads
back and holds no planted patient value nor the original SOP Instance UID; a run over N such files accounts for N,
each quarantined one with its reason file."""

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

from airflow_hi_stow.deid import DeidentifiedFile, Deidentifier, Quarantined, deidentify_local
from tests.reliability.conftest import examples
from tests.reliability.dicom_fuzz import (
    EXPLICIT_LITTLE,
    ORIGINAL_SOP_UID,
    PLANTED,
    FuzzedFile,
    dicom_files,
    plain_file,
)

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")  # pydicom warns of the invalid values made here

KEY = b"fuzzing-de-identification-key-" + bytes(range(16))
REASONS = {"unreadable", "no-file-meta", "burned-in", "residue", "failed"}
DEIDENTIFIER = Deidentifier(KEY)


def assert_clean(data: bytes) -> None:
    """What a de-identification wrote holds no planted value, in any encoding a reader would show it in."""
    for value in PLANTED:
        for form in {value, value.replace("^", " ")}:
            assert form.encode() not in data, form
    assert ORIGINAL_SOP_UID.encode() not in data


@examples(150)
@given(file=dicom_files())
@example(file=plain_file(EXPLICIT_LITTLE, explicit=False)).via("an Implicit VR data set under an Explicit VR syntax")
def test_any_instance_is_deidentified_clean_or_quarantined_with_a_reason(file: FuzzedFile) -> None:
    result = DEIDENTIFIER.deidentify_bytes(file.data)
    if file.plain:
        assert isinstance(result, DeidentifiedFile), result
    if isinstance(result, Quarantined):
        assert result.finding.reason in REASONS
        assert result.finding.detail
        for value in PLANTED:  # the reason never quotes a value
            assert value not in result.finding.detail
        return
    assert isinstance(result, DeidentifiedFile)
    assert_clean(result.data)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        read = dcmread(io.BytesIO(result.data))
    assert str(read.SOPInstanceUID) == result.sop_instance_uid != ORIGINAL_SOP_UID
    assert "PatientName" not in read or str(read.PatientName) not in PLANTED


@examples(10, scratch=True)
@given(files=st.lists(dicom_files(), min_size=1, max_size=6))
def test_a_run_over_fuzzed_files_reports_one_outcome_per_file(files: list[FuzzedFile], tmp_path: Path) -> None:
    run = tmp_path / "run"
    shutil.rmtree(run, ignore_errors=True)
    for number, file in enumerate(files):
        (run / "in").mkdir(parents=True, exist_ok=True)
        (run / "in" / f"{number}.dcm").write_bytes(file.data)
    report = deidentify_local(run / "in", run / "out", KEY, workers=1)
    assert report.inputs == len(files)
    assert report.deidentified + report.quarantined == len(files)
    outputs = sorted((run / "out").rglob("*.dcm")) if (run / "out").exists() else []
    assert len(outputs) == report.deidentified - report.outputs_written_twice
    for output in outputs:
        assert_clean(output.read_bytes())
    held = sorted((run / "out-quarantine").iterdir()) if (run / "out-quarantine").exists() else []
    assert len(held) == report.quarantined
    for folder in held:
        reason = json.loads((folder / "reason.json").read_text())
        assert reason["reason"] in REASONS
        assert_clean((folder / "reason.json").read_bytes())
    assert_clean((run / "out-report.json").read_bytes())
