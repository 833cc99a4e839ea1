"""The deep IOD check through dciodvfy (Debian dicom3tools): passes, failures reduced to attribute and kind (no
value survives), and a crash or a timeout reported as unknown, never as a pass."""

from __future__ import annotations

import shutil
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import pydicom.config
import pytest

from airflow_hi_stow.sources.instances import LocalFile
from airflow_hi_stow.storage.locations import LocalLocation
from airflow_hi_stow.validate import Severity, ValidationSettings, inspect_file, validate_files
from airflow_hi_stow.validate.dciodvfy import WITHHELD, IodStatus, reduce_message, run_dciodvfy
from tests.validate.dicom_files import ct, pydicom_file, write

DCIODVFY = shutil.which("dciodvfy")
needs_dciodvfy = pytest.mark.skipif(
    DCIODVFY is None, reason="dciodvfy is not installed (Debian package 'dicom3tools'; .ci/run installs it)"
)
KEY = bytes(32)


@pytest.mark.parametrize(
    ("message", "kind", "attribute"),
    [
        (
            "Value invalid for this VR - (0x0008,0x0020) DA Study Date  DA [1] = <2026-13-45> - Character invalid",
            "Value invalid for this VR",
            "StudyDate",
        ),
        (
            "Missing attribute Type 2 Required Element=<PatientID> Module=<Patient>",
            "Missing attribute Type 2 Required Element",
            "PatientID",
        ),
        (
            'Illegal root for UID - "9.8.7.6" in (0x0008,0x1155) Referenced SOP Instance UID',
            "Illegal root for UID",
            "ReferencedSOPInstanceUID",
        ),
        (
            "Value dubious for this VR - (0x0010,0x0010) PN Patient's Name  PN [1] = <JANCT000> - Retired form",
            "Value dubious for this VR",
            "PatientName",
        ),
        (
            "Unrecognized defined term <TEST> for value 1 of attribute <Coding Scheme Designator>",
            "Unrecognized defined term",
            "CodingSchemeDesignator",
        ),
        (
            "CodingSchemeDesignator is deprecated - attribute <CodingSchemeDesignator> = <SRT>",
            "CodingSchemeDesignator is deprecated",
            "CodingSchemeDesignator",
        ),
        ("Value is zero for value 1 of attribute <Patient's Weight>", "Value is zero for value", "PatientWeight"),
        (
            "Number of items in PerFrameFunctionalGroupsSequence does not match NumberOfFrames - have 3 items",
            "Number of items in PerFrameFunctionalGroupsSequence does not match NumberOfFrames",
            None,
        ),
        ("Unexpected element <SMITH^JOHN> in (0x0009,0x1001)", "Unexpected element", "(0009,1001)"),
    ],
)
def test_messages_are_reduced_to_kind_and_attribute(message: str, kind: str, attribute: str | None) -> None:
    assert reduce_message(message) == (kind, attribute)


def test_a_message_still_holding_a_word_of_the_file_is_withheld() -> None:
    assert reduce_message("Referenced patient SMITH is unknown", frozenset({"SMITH", "JOHN"})) == (WITHHELD, None)
    assert reduce_message("Referenced patient is unknown", frozenset({"SMITH"})) == (
        "Referenced patient is unknown",
        None,
    )


@needs_dciodvfy
def test_a_valid_instance_passes_and_a_broken_one_fails_without_its_values(tmp_path: Path) -> None:
    assert DCIODVFY is not None
    good = write(ct(number=1), tmp_path / "good.dcm")
    with warnings.catch_warnings(), pydicom.config.disable_value_validation():
        warnings.simplefilter("ignore")
        dataset = ct(number=2, StudyDate="2026-13-45")
    del dataset.PatientID
    broken = write(dataset, tmp_path / "broken.dcm")

    passed = run_dciodvfy(DCIODVFY, good, 60)
    assert (passed.status, passed.iod, passed.problems) == (IodStatus.PASSED, "CTImage", ())
    failed = run_dciodvfy(DCIODVFY, broken, 60)
    assert failed.status == IodStatus.FAILED
    found = {(problem.message, problem.attribute) for problem in failed.problems}
    assert ("Missing attribute Type 2 Required Element", "PatientID") in found
    assert ("Value invalid for this VR (2 times)", "StudyDate") in found
    assert not any("2026" in message for message, _ in found)


@needs_dciodvfy
def test_a_crash_or_a_timeout_is_unknown_and_quarantines_at_error(tmp_path: Path) -> None:
    assert DCIODVFY is not None
    crashing = tmp_path / "rtdose.dcm"  # this build of dciodvfy aborts (SIGABRT) on it
    shutil.copy(pydicom_file("rtdose.dcm"), crashing)
    crash = run_dciodvfy(DCIODVFY, crashing, 60)
    assert (crash.status, [p.message for p in crash.problems]) == (
        IodStatus.UNKNOWN,
        ["dciodvfy crashed (signal 6): the IOD was not verified"],
    )
    good = write(ct(number=1), tmp_path / "good.dcm")
    late = run_dciodvfy(DCIODVFY, good, 0.000_001)
    assert (late.status, late.problems[0].message) == (IodStatus.UNKNOWN, "dciodvfy did not finish within 1e-06 s")

    only_iod = ValidationSettings.of({"container": "off", "identity": "off", "iod": "error"})
    run = validate_files(
        [LocalFile.at(good), LocalFile.at(crashing)],
        quarantine=LocalLocation(tmp_path / "q"),
        output=LocalLocation(tmp_path / "out"),
        settings=only_iod,
    )
    assert [outcome.source for outcome in run.good] == [str(good)]
    (quarantined,) = run.quarantined
    assert [(f.check, f.severity) for f in quarantined.findings] == [("iod.dciodvfy", Severity.ERROR)]
    assert run.dciodvfy == DCIODVFY


@needs_dciodvfy
def test_a_file_that_is_not_local_is_checked_through_a_temporary_copy(tmp_path: Path) -> None:
    path = write(ct(number=1), tmp_path / "good.dcm")

    @dataclass(frozen=True)
    class NotLocal:
        """An input known only by a URI, as an S3 object would be."""

        name: str
        size: int

        def open(self) -> BinaryIO:
            return path.open("rb")

        def read_range(self, start: int, end: int) -> bytes:
            return path.read_bytes()[start:end]

    remote = NotLocal("s3://bucket/good.dcm", path.stat().st_size)
    verdict = inspect_file(remote, ValidationSettings.of({"iod": "error"}), KEY)
    assert verdict.iod is not None
    assert (verdict.iod.status, verdict.findings) == (IodStatus.PASSED, ())


def test_without_dciodvfy_the_check_is_reported_as_not_run(tmp_path: Path) -> None:
    path = write(ct(number=1), tmp_path / "good.dcm")
    run = validate_files(
        [LocalFile.at(path)],
        quarantine=LocalLocation(tmp_path / "q"),
        output=LocalLocation(tmp_path / "out"),
        settings=ValidationSettings.of({"iod": "error"}, dciodvfy=None),
    )
    assert (run.dciodvfy, len(run.good)) == ("not installed", 1)
    missing = run_dciodvfy(str(tmp_path / "no-such-dciodvfy"), path, 60)
    assert (missing.status, missing.problems[0].message) == (
        IodStatus.UNKNOWN,
        "dciodvfy could not be run (FileNotFoundError)",
    )
