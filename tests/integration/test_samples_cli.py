"""``python -m airflow_hi_stow.samples``, which the compose stack's init job runs at bring-up."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydicom import dcmread

from airflow_hi_stow.samples import CONFLICTING_PATIENT_ID, PLANTED, main


def test_writes_the_set_and_its_redelivery_and_says_how_many(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "dicom" / "incoming"
    assert main([str(target), "--patients", "1", "--seed", "3"]) == 0
    first, redelivered = capsys.readouterr().out.splitlines()
    written = len(list(target.rglob("*.dcm")))
    assert first.startswith(f"{written} instances in ")
    assert redelivered.startswith(f"{len(list((tmp_path / 'dicom' / 'incoming-redelivered').rglob('*.dcm')))} re-")
    assert written > 0


def test_refuses_a_folder_that_is_not_empty(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "mine.dcm").write_bytes(b"not mine to overwrite")
    with pytest.raises(SystemExit) as exited:
        main([str(tmp_path), "--no-redelivery"])
    assert exited.value.code == 2
    assert f"{tmp_path} is not empty" in capsys.readouterr().err
    assert [path.name for path in tmp_path.iterdir()] == ["mine.dcm"]


def test_the_demo_options_plant_phi_misfile_a_series_and_add_bad_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "set"
    assert (
        main([str(target), "--patients", "1", "--no-redelivery", "--plant-phi", "--conflicting-series", "--bad-files"])
        == 0
    )
    assert "3 files that are not valid DICOM: EXPORT-NOTES.txt, empty.dcm, truncated.dcm" in capsys.readouterr().out
    assert not (tmp_path / "set-redelivered").exists()
    headers = [dcmread(path, stop_before_pixels=True) for path in target.rglob("*/*.dcm")]
    assert all(header.OperatorsName == PLANTED["OperatorsName"] for header in headers)
    assert CONFLICTING_PATIENT_ID in {header.PatientID for header in headers}
