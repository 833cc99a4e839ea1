"""``python -m airflow_hi_stow.samples``, which the compose stack's init job runs at bring-up."""

from __future__ import annotations

from pathlib import Path

import pytest

from airflow_hi_stow.samples import main


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
