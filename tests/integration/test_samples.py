"""The generated sample set that the demo, the tests and the benchmarks store, judged by an independent DICOM
validator: dciodvfy (Debian ``dicom3tools``) must find no error in any instance, first copy or re-delivery."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from pydicom import dcmread

from airflow_hi_stow.samples import generate_dataset

pytestmark = pytest.mark.skipif(
    shutil.which("dciodvfy") is None, reason="dciodvfy is not installed (Debian package 'dicom3tools'; .ci/run does)"
)


def dciodvfy_errors(path: Path) -> list[str]:
    done = subprocess.run(["dciodvfy", str(path)], capture_output=True, text=True, timeout=60)
    lines = (done.stdout + done.stderr).splitlines()
    assert lines, f"dciodvfy said nothing about {path}"
    return [line for line in lines if line.startswith("Error") or "read failed" in line]


def test_every_generated_instance_passes_dciodvfy(tmp_path: Path) -> None:
    sample = generate_dataset(tmp_path / "set", patients=2, instances_per_series=(2, 3))
    files = [i.path for i in sample.instances + sample.redelivered]
    assert len(files) > 20
    assert sample.redelivered
    assert {dcmread(path, stop_before_pixels=True).Modality for path in files} == {"CT", "MR"}
    errors = {str(path.relative_to(tmp_path)): found for path in files if (found := dciodvfy_errors(path))}
    assert errors == {}


def test_dciodvfy_does_report_a_broken_instance(tmp_path: Path) -> None:
    """The judge is not silent: an instance with an invalid date and no SOP Instance UID has errors."""
    sample = generate_dataset(tmp_path / "set", patients=1, redeliver_one_study=False)
    dataset = dcmread(sample.instances[0].path)
    with pytest.warns(UserWarning, match="Invalid value for VR DA"):
        dataset.StudyDate = "2026-13-45"
    del dataset.SOPInstanceUID
    broken = tmp_path / "broken.dcm"
    dataset.save_as(broken)
    assert dciodvfy_errors(broken)
