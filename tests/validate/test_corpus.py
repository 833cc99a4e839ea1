"""A bad-input corpus made here, through the whole run: each bad file is quarantined by the check that should
catch it (and no other), the good files pass, every input ends good or quarantined with its reason file, and no
report, reason file, manifest or log line holds a patient value."""

from __future__ import annotations

import copy
import json
import logging
import shutil
import warnings
from dataclasses import dataclass
from pathlib import Path

import pydicom.config
import pytest
from pydicom import Dataset, dcmread
from pydicom.encaps import encapsulate
from pydicom.uid import UID

from airflow_hi_stow.sources.instances import LocalFile
from airflow_hi_stow.sources.resolve import read_file_list, resolve_sources
from airflow_hi_stow.storage.locations import LocalLocation
from airflow_hi_stow.validate import Severity, ValidationRun, ValidationSettings, validate_files
from airflow_hi_stow.validate.quarantine import REASON_SUFFIX, quarantine_name
from tests.validate.dicom_files import PATIENT, ct, p10_bytes, patient_values, pydicom_file, uid, write

DAMAGE_HIDES = {"identity.required_uids", "healthimaging.element_length"}
"""What else fails in damaged.dcm: its Study Date runs to the end of the file, swallowing every later element."""


@dataclass
class Corpus:
    root: Path
    errors: dict[str, set[str]]
    """File name -> the checks that must quarantine it (empty: the file must pass)."""
    warnings: dict[str, set[str]]
    values: set[str]
    """The patient values written into the corpus."""


def _encapsulated(dataset: Dataset, syntax: str) -> Dataset:
    dataset.PixelData = encapsulate([b"\x00\x00\x01\xb3" + bytes(60)])
    dataset.file_meta.TransferSyntaxUID = UID(syntax)
    return dataset


def build_corpus(root: Path) -> Corpus:
    """The corpus, written without pydicom's warnings about the invalid values it is meant to hold."""
    with warnings.catch_warnings(), pydicom.config.disable_value_validation():
        warnings.simplefilter("ignore")
        return _build_corpus(root)


def _build_corpus(root: Path) -> Corpus:
    errors: dict[str, set[str]] = {}
    warned: dict[str, set[str]] = {}
    values: set[str] = set(PATIENT.values())
    root.mkdir(parents=True)

    def put(name: str, dataset: Dataset, caught: set[str], warns: set[str] | None = None, as_is: bool = False) -> None:
        values.update(v for v in patient_values(dataset) if len(v) >= 6)
        errors[name] = caught
        warned[name] = warns or set()
        write(dataset, root / name, as_is=as_is)

    def put_bytes(name: str, data: bytes, caught: set[str]) -> None:
        (root / name).write_bytes(data)
        errors[name] = caught
        warned[name] = set()

    for number in (1, 2, 3):
        put(f"good-{number}.dcm", ct(number=number), set())
    put("good-other-series.dcm", ct(series="other", number=1, SeriesNumber=2), set())
    good = p10_bytes(ct(number=1))

    put_bytes("truncated.dcm", good[: len(good) // 2], {"container.integrity"})
    put_bytes("zero-byte.dcm", b"", {"container.p10"})
    put_bytes("notes.dcm", b"Patient scanned twice, see the paper file.\n" * 20, {"container.p10"})
    broken = bytearray(p10_bytes(ct(number=50)))
    at = broken.index(b"\x08\x00\x20\x00DA")  # (0008,0020) StudyDate: a length running past the file's end
    broken[at + 6 : at + 8] = (0xFFF0).to_bytes(2, "little")
    put_bytes("damaged.dcm", bytes(broken), {"container.integrity", *DAMAGE_HIDES})

    no_meta = ct(number=60)
    body = p10_bytes(no_meta)
    meta_end = 132 + 12 + int.from_bytes(body[140:144], "little")
    put_bytes("missing-meta.dcm", body[:132] + body[meta_end:], {"container.file_meta"})

    bad_uid = ct(number=70)
    bad_uid.SOPInstanceUID = bad_uid.file_meta.MediaStorageSOPInstanceUID = UID("2.25.0123.45")
    put("bad-uid.dcm", bad_uid, {"identity.uid_syntax"})
    nested = ct(number=71)
    item = Dataset()
    item.ReferencedSOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
    item.ReferencedSOPInstanceUID = "2.25.12.x7"
    nested.ReferencedImageSequence = [item]
    put("bad-nested-uid.dcm", nested, {"identity.uid_syntax"})
    put(
        "unregistered-root.dcm",
        ct(number=72, FrameOfReferenceUID="999.1.2.3"),
        set(),
        {"identity.uid_root"},
    )
    missing = ct(number=73)
    del missing.SeriesInstanceUID
    put("missing-series-uid.dcm", missing, {"identity.required_uids"})

    mismatched = ct(number=80)
    mismatched.file_meta.MediaStorageSOPInstanceUID = UID(uid("somewhere", "else"))
    put("mismatched-media-storage.dcm", mismatched, {"container.media_storage_uids"}, as_is=True)
    put(
        "mpeg2.dcm",
        _encapsulated(ct(number=90), "1.2.840.10008.1.2.4.100"),
        {"healthimaging.transfer_syntax"},
    )
    short = ct(number=100)
    short.PixelData = short.PixelData[:-100]
    put("short-pixels.dcm", short, {"pixels.native_length"})
    jpeg = _encapsulated(ct(number=101), "1.2.840.10008.1.2.4.50")
    jpeg.NumberOfFrames = 2
    put("fragments-for-one-of-two-frames.dcm", jpeg, {"pixels.encapsulated"})
    colour = ct(number=102, PhotometricInterpretation="RGB")
    put("rgb-with-one-sample.dcm", colour, {"pixels.photometric"})

    shutil.copy(root / "good-1.dcm", root / "resent-good-1.dcm")
    errors["resent-good-1.dcm"], warned["resent-good-1.dcm"] = {"identity.duplicate_sop_instance"}, set()
    put("resent-good-1-edited.dcm", ct(number=1, SeriesDescription="EDITED"), {"identity.duplicate_sop_instance"})

    segmentation = root / "binary-segmentation.dcm"
    shutil.copy(pydicom_file("liver_1frame.dcm"), segmentation)
    values.update(v for v in patient_values(dcmread(segmentation)) if len(v) >= 6)
    errors[segmentation.name], warned[segmentation.name] = {"healthimaging.binary_segmentation"}, set()
    icon = ct(number=110)
    thumbnail = copy.deepcopy(ct(number=111))
    for keyword in list(thumbnail.dir()):
        if keyword not in ("Rows", "Columns", "SamplesPerPixel", "PhotometricInterpretation", "PixelData"):
            delattr(thumbnail, keyword)
    thumbnail.BitsAllocated, thumbnail.BitsStored, thumbnail.HighBit, thumbnail.PixelRepresentation = 16, 16, 15, 1
    icon.IconImageSequence = [thumbnail]
    put("icon-image.dcm", icon, {"healthimaging.icon_image"})

    put("conflict-1.dcm", ct(study="conflict", number=1), set())
    put("conflict-2.dcm", ct(study="conflict", number=2), set())
    put(
        "conflict-3.dcm",
        ct(study="conflict", number=3, PatientID="VAL-OTHER-PATIENT"),
        set(),
        {"consistency.study"},
    )
    return Corpus(root, errors, warned, values)


def run_corpus(corpus: Corpus, out: Path, settings: ValidationSettings | None = None) -> ValidationRun:
    return validate_files(
        resolve_sources([corpus.root]),
        quarantine=LocalLocation(out / "quarantine"),
        output=LocalLocation(out / "reports"),
        settings=settings,
    )


def checks_by_file(run: ValidationRun, severity: Severity) -> dict[str, set[str]]:
    return {
        Path(outcome.source).name: {finding.check for finding in outcome.findings if finding.severity == severity}
        for outcome in run.outcomes
    }


@pytest.fixture
def corpus(tmp_path: Path) -> Corpus:
    return build_corpus(tmp_path / "incoming")


def test_each_bad_file_is_caught_by_its_check_and_the_good_files_pass(corpus: Corpus, tmp_path: Path) -> None:
    run = run_corpus(corpus, tmp_path / "run")
    assert checks_by_file(run, Severity.ERROR) == corpus.errors
    assert checks_by_file(run, Severity.WARNING) == corpus.warnings
    good = {name for name, caught in corpus.errors.items() if not caught}
    assert {Path(outcome.source).name for outcome in run.good} == good
    assert len(run.outcomes) == len(corpus.errors) == len(run.good) + len(run.quarantined)
    manifest = read_file_list(Path(run.store_source["manifest"]).read_bytes())
    assert manifest == [str(corpus.root / name) for name in sorted(good)]


def test_every_quarantined_file_has_its_copy_and_reason_file_beside_it(corpus: Corpus, tmp_path: Path) -> None:
    run = run_corpus(corpus, tmp_path / "run")
    quarantine = tmp_path / "run" / "quarantine"
    for outcome in run.quarantined:
        name = quarantine_name(outcome.source)
        reason = json.loads((quarantine / (name + REASON_SUFFIX)).read_text())
        assert reason["source"] == outcome.source
        assert {f["check"] for f in reason["findings"] if f["severity"] == "error"} == corpus.errors[
            Path(outcome.source).name
        ]
        assert (quarantine / name).read_bytes() == Path(outcome.source).read_bytes()
        assert len(reason["sha256"]) == 64
        assert reason["quarantined_as"] == str(quarantine / name)
    assert len(list(quarantine.glob("*" + REASON_SUFFIX))) == len(run.quarantined)
    report = json.loads((tmp_path / "run" / "reports" / "report.json").read_text())
    assert report["summary"]["inputs"] == len(corpus.errors)
    assert {Path(q["source"]).name for q in report["quarantined"]} == {n for n, c in corpus.errors.items() if c}
    duplicate = next(q for q in report["quarantined"] if q["source"].endswith("resent-good-1.dcm"))
    assert duplicate["findings"][0]["message"] == (
        f"the same SOP Instance UID as {corpus.root / 'good-1.dcm'} (byte-identical)"
    )
    conflict = report["conflicts"][0]
    assert (conflict["level"], conflict["attributes"], conflict["instances"]) == ("study", ["PatientID"], 3)
    assert conflict["minority"] == [str(corpus.root / "conflict-3.dcm")]


def test_a_study_conflict_quarantines_the_minority_under_the_error_policy(corpus: Corpus, tmp_path: Path) -> None:
    run = run_corpus(corpus, tmp_path / "run", ValidationSettings.of({"consistency": "error"}))
    errors = checks_by_file(run, Severity.ERROR)
    assert errors["conflict-3.dcm"] == {"consistency.study"}
    assert errors["conflict-1.dcm"] == errors["conflict-2.dcm"] == set()


def test_no_patient_value_reaches_a_report_a_reason_file_a_log_or_a_warning(
    corpus: Corpus, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    pydicom.config.debug(True, default_handler=False)  # pydicom then logs every element it reads, values included
    try:
        with caplog.at_level(logging.DEBUG), warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            run = run_corpus(corpus, tmp_path / "run", ValidationSettings.of({"deid": "error", "consistency": "error"}))
    finally:
        pydicom.config.debug(False, default_handler=False)
    assert run.quarantined
    assert caplog.records
    written = [p.read_text(errors="replace") for p in (tmp_path / "run").rglob("*") if p.suffix in (".json", ".jsonl")]
    texts = [*written, caplog.text, *(str(w.message) for w in caught), json.dumps(run.summary())]
    leaks = {value for value in corpus.values for text in texts if value in text}
    assert leaks == set()
    assert PATIENT["PatientName"] in corpus.values  # the search looked for the right things


def test_an_input_that_cannot_be_read_is_quarantined_with_its_reason(tmp_path: Path) -> None:
    vanished = LocalFile(tmp_path / "gone.dcm", 1234)
    run = validate_files(
        [vanished], quarantine=LocalLocation(tmp_path / "q"), output=LocalLocation(tmp_path / "out"), max_failures=1
    )
    (outcome,) = run.quarantined
    assert [(f.check, f.message) for f in outcome.findings] == [
        ("container.readable", "cannot be read (No such file or directory)")
    ]
    assert outcome.quarantined_as is None
    reason = json.loads(Path(str(outcome.reason_file)).read_text())
    assert reason["copy_error"] == "cannot read the source (No such file or directory)"
