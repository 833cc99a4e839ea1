"""Independent judges from Debian's dicom3tools: dciodvfy (IOD conformance) and dcentvfy (entity consistency)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
from pydicom import dcmread

from tests.deid.conftest import Run

pytestmark = pytest.mark.skipif(shutil.which("dciodvfy") is None, reason="dicom3tools (dciodvfy) is not installed")
# The message of an error without the values, numbers and UIDs it quotes, to compare input and output.
_QUOTED = re.compile(r"<[^>]*>|\"[^\"]*\"|\[[0-9]+\]|[0-9][0-9.]*")


def _errors(path: Path) -> set[str]:
    result = subprocess.run(["dciodvfy", str(path)], capture_output=True, text=True, timeout=60, check=False)
    if result.returncode < 0:
        pytest.fail(f"dciodvfy crashed on {path.name}")
    lines = (result.stdout + result.stderr).splitlines()
    return {_QUOTED.sub("<>", line) for line in lines if line.startswith("Error")}


def test_dciodvfy_finds_no_error_the_input_did_not_have(basic_run: Run) -> None:
    inputs = sorted(basic_run.source.glob("*.dcm"))
    before = set().union(*(_errors(path) for path in inputs))
    for output in basic_run.outputs():
        assert _errors(output) - before == set(), output.name


def test_dciodvfy_judges_a_broken_output(basic_run: Run, tmp_path: Path) -> None:
    """The judge can fail: an output whose Type 1 SOP Instance UID is emptied is reported."""
    ds = dcmread(basic_run.outputs()[0])
    ds.SOPInstanceUID = ""
    ds.save_as(tmp_path / "broken.dcm")
    assert any("SOPInstanceUID" in error for error in _errors(tmp_path / "broken.dcm"))


def _dcentvfy(paths: list[Path]) -> str:
    result = subprocess.run(["dcentvfy", *map(str, paths)], capture_output=True, text=True, timeout=60, check=False)
    return result.stdout + result.stderr


def test_dcentvfy_finds_the_outputs_of_one_study_consistent(basic_run: Run, tmp_path: Path) -> None:
    outputs = basic_run.outputs()
    assert "Error" not in _dcentvfy(outputs)
    # and it would say so if one instance's pseudonym differed from the others'
    ds = dcmread(outputs[0])
    ds.PatientID = "SOMEONE-ELSE"
    ds.save_as(tmp_path / "odd.dcm")
    assert "Different PatientID" in _dcentvfy([tmp_path / "odd.dcm", *outputs[1:]])
