"""The file runner: quarantine with reasons, a report without patient data, linkage, reruns, processes, keys."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from airflow_hi_stow.deid import (
    FileOutcome,
    InputFile,
    InvalidKeyError,
    LocalDirectory,
    LocalInput,
    MissingInput,
    ProfileOptions,
    deidentify_local,
    local_inputs,
    run_deidentification,
    runner,
)
from tests.deid import synthetic
from tests.deid.conftest import KEY, OTHER_KEY, Run, pydicom_file

ROOT = Path(__file__).resolve().parents[2]


def _tree(directory: Path) -> dict[str, bytes]:
    return {p.relative_to(directory).as_posix(): p.read_bytes() for p in sorted(directory.rglob("*")) if p.is_file()}


@pytest.fixture
def mixed_source(study: list[Path], tmp_path: Path) -> Path:
    """The study plus bad inputs of each kind: not DICOM, no P10 meta, burned-in, PHI in free text off the table."""
    source = tmp_path / "source"
    shutil.copytree(study[0].parent, source)
    (source / "notes.txt").write_text(f"scan of {synthetic.PATIENT_NAME}\n")
    shutil.copy(pydicom_file("no_meta.dcm"), source / "no_meta.dcm")
    shutil.copy(pydicom_file("examples_ybr_color.dcm"), source / "ultrasound.dcm")
    leaky = dcmread(study[0])
    note = Dataset()
    note.ValueType, note.TextValue = "TEXT", f"seen by {synthetic.PATIENT_ID}"  # (0040,A160) is not in the table
    leaky.PerformedProtocolCodeSequence[0].ProtocolContextSequence[0].ContentItemModifierSequence.append(note)
    leaky.SOPInstanceUID = synthetic.make_uid("leaky")
    leaky.save_as(source / "leaky.dcm", enforce_file_format=True)
    return source


def test_bad_inputs_are_quarantined_with_reasons_and_nothing_is_lost(mixed_source: Path, tmp_path: Path) -> None:
    destination = tmp_path / "out"
    report = deidentify_local(mixed_source, destination, KEY, workers=1)
    assert (report.inputs, report.deidentified, report.quarantined) == (10, 6, 4)
    assert report.reasons == {"burned-in": 1, "residue": 1, "unreadable": 2}
    quarantine = tmp_path / "out-quarantine"
    folders = {json.loads((folder / "source.json").read_text())["source"]: folder for folder in quarantine.iterdir()}
    assert set(folders) == {"notes.txt", "no_meta.dcm", "ultrasound.dcm", "leaky.dcm"}
    reasons = {name: json.loads((folder / "reason.json").read_text()) for name, folder in folders.items()}
    assert reasons["leaky.dcm"]["reason"] == "residue"
    assert reasons["leaky.dcm"]["attribute"] == "PatientID"
    assert "TextValue" in reasons["leaky.dcm"]["detail"]
    assert reasons["ultrasound.dcm"]["detail"] == "Modality US is known to carry burned-in text"
    for name, folder in folders.items():  # the original bytes under its input id; no name derived from the source's
        assert folder.name == reasons[name]["input_id"]
        assert sorted(p.name for p in folder.iterdir()) == ["original", "reason.json", "source.json"]
        assert (folder / "original").read_bytes() == (mixed_source / name).read_bytes()
        assert name not in (folder / "reason.json").read_text()
    assert not any(p.suffix == ".json" or p.name in reasons for p in destination.rglob("*"))  # destination: output only


def test_the_report_holds_no_original_value(mixed_source: Path, tmp_path: Path) -> None:
    deidentify_local(mixed_source, tmp_path / "out", KEY, workers=1)
    text = (tmp_path / "out-report.json").read_text()
    report = json.loads(text)
    assert report["inputs"] == 10
    assert report["profile"]["edition"] == "2026c"
    leaked = [v for v in (*synthetic.PLANTED, synthetic.STUDY_UID, "notes.txt", "leaky") if v.lower() in text.lower()]
    assert leaked == []


def test_linkage_is_written_only_where_asked(study: list[Path], tmp_path: Path) -> None:
    deidentify_local(study[0].parent, tmp_path / "plain", KEY, workers=1)
    assert {p.name for p in tmp_path.iterdir()} == {"plain", "plain-report.json"}
    linkage = tmp_path / "private" / "linkage.csv"
    options = ProfileOptions(retain_longitudinal_modified_dates=True)
    deidentify_local(study[0].parent, tmp_path / "out", KEY, linkage=linkage, options=options, workers=1)
    rows = [line.split(",") for line in linkage.read_text().splitlines()[1:]]
    kinds = {kind: (original, new) for kind, original, new in rows}
    assert kinds["patient_id"][0] == synthetic.PATIENT_ID
    assert kinds["study_instance_uid"][0] == synthetic.STUDY_UID
    new_study = dcmread(next((tmp_path / "out").rglob("*.dcm"))).StudyInstanceUID
    assert kinds["study_instance_uid"][1] == new_study
    assert int(kinds["date_shift_days"][1]) < 0
    assert sum(1 for kind, _, _ in rows if kind == "sop_instance_uid") == 6
    assert linkage.stat().st_mode & 0o077 == 0


def test_a_rerun_rewrites_identical_files(basic_run: Run, tmp_path: Path) -> None:
    destination = tmp_path / "out"
    shutil.copytree(basic_run.destination, destination)
    before = _tree(destination)
    deidentify_local(basic_run.source, destination, KEY, workers=1)
    assert _tree(destination) == before


def _run_in_new_process(source: Path, destination: Path, key: bytes, workers: int) -> None:
    code = (
        "import os, sys; from airflow_hi_stow.deid import deidentify_local; "
        "deidentify_local(sys.argv[1], sys.argv[2], bytes.fromhex(os.environ['DEID_KEY']), workers=int(sys.argv[3]))"
    )
    environment = {**os.environ, "DEID_KEY": key.hex()}  # the key travels in the environment, never in argv
    subprocess.run([sys.executable, "-c", code, str(source), str(destination), str(workers)], env=environment, check=True, cwd=ROOT)  # fmt: skip


def test_separate_processes_with_one_key_write_identical_bytes(basic_run: Run, tmp_path: Path) -> None:
    _run_in_new_process(basic_run.source, tmp_path / "a", KEY, 1)
    _run_in_new_process(basic_run.source, tmp_path / "b", OTHER_KEY, 1)
    assert _tree(tmp_path / "a") == _tree(basic_run.destination)
    other = {dcmread(p).StudyInstanceUID for p in (tmp_path / "b").rglob("*.dcm")}
    assert len(other) == 1
    assert other != {dcmread(p).StudyInstanceUID for p in basic_run.outputs()}


def test_worker_processes_write_what_one_process_writes(basic_run: Run, tmp_path: Path) -> None:
    source = tmp_path / "many"
    for copy in range(11):  # 66 inputs: enough for the runner to start its two worker processes
        shutil.copytree(basic_run.source, source / f"copy{copy}")
    inputs = local_inputs(source)
    seen: list[FileOutcome] = []
    out = LocalDirectory(str(tmp_path / "out"))
    report = run_deidentification(
        inputs, out, LocalDirectory(str(tmp_path / "q")), KEY, workers=2, on_outcome=seen.append
    )
    assert (report.inputs, report.deidentified, report.studies, report.outputs_written_twice) == (66, 66, 1, 60)
    assert [outcome.output for outcome in seen[:6]] == [outcome.output for outcome in seen[6:12]]  # input order
    assert _tree(tmp_path / "out") == _tree(basic_run.destination)


@pytest.mark.parametrize("key", [None, b"", b"short key"])
def test_a_bad_key_fails_before_any_file_is_touched(study: list[Path], tmp_path: Path, key: bytes | None) -> None:
    with pytest.raises(InvalidKeyError):
        deidentify_local(study[0].parent, tmp_path / "out", key)
    assert list(tmp_path.iterdir()) == []


def test_a_destination_inside_the_source_is_refused(study: list[Path]) -> None:
    with pytest.raises(ValueError, match="inside the source"):
        deidentify_local(study[0].parent, study[0].parent / "out", KEY)
    assert not (study[0].parent / "out").exists()


def test_sequences_without_items_and_empty_values_pass(study: list[Path], tmp_path: Path) -> None:
    ds = dcmread(study[0])
    ds.ReferencedImageSequence = Sequence()
    ds.PatientName = ""
    source = tmp_path / "in"
    source.mkdir()
    ds.save_as(source / "empty.dcm", enforce_file_format=True)
    report = deidentify_local(source, tmp_path / "out", KEY, workers=1)
    assert report.deidentified == 1
    out = dcmread(next((tmp_path / "out").rglob("*.dcm")))
    assert out.PatientName == ""
    assert len(out.ReferencedImageSequence) == 0


def test_a_list_of_files_is_named_from_its_common_folder(study: list[Path], tmp_path: Path) -> None:
    nested = tmp_path / "a" / "b"
    nested.mkdir(parents=True)
    shutil.copy(study[0], nested / "one.dcm")
    shutil.copy(study[1], tmp_path / "a" / "two.dcm")
    inputs = local_inputs([nested / "one.dcm", tmp_path / "a" / "two.dcm"])
    assert [item.name for item in inputs] == ["b/one.dcm", "two.dcm"]
    report = deidentify_local([item.path for item in inputs], tmp_path / "out", KEY)
    assert report.deidentified == 2


def test_an_input_that_cannot_be_had_is_quarantined_with_its_reason(study: list[Path], tmp_path: Path) -> None:
    missing = MissingInput(f"/incoming/{synthetic.PATIENT_ID}/*.dcm", "no file matches the pattern")
    inputs: list[InputFile] = [*local_inputs(study[:2]), missing]
    report = run_deidentification(
        inputs, LocalDirectory(str(tmp_path / "out")), LocalDirectory(str(tmp_path / "q")), KEY
    )
    assert (report.inputs, report.deidentified, report.quarantined) == (3, 2, 1)
    (entry,) = report.quarantine
    assert entry["detail"] == "the input could not be read (no file matches the pattern)"
    (folder,) = (tmp_path / "q").iterdir()
    assert json.loads((folder / "source.json").read_text())["source"] == missing.name  # the quarantine names it
    assert json.loads((folder / "reason.json").read_text())["reason"] == "unreadable"  # the reason does not
    assert sorted(p.name for p in folder.iterdir()) == ["reason.json", "source.json"]  # nothing to copy
    assert synthetic.PATIENT_ID not in report.to_json().decode()


@pytest.mark.parametrize(("in_flight_files", "most_ahead"), [(None, 8 + 2 * 2 * 2), (3, 3 + 2)])
def test_worker_processes_take_a_lazy_source_a_bounded_number_ahead(
    basic_run: Run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, in_flight_files: int | None, most_ahead: int
) -> None:
    """The runner consumes an iterator as it goes (S3 copies are made a few ahead, not all at once): the first 8
    inputs (to choose processes), then 2 chunks of 2 per process; or, by size, what 3 inputs weigh. Small numbers
    (the parent's settings) keep the test short."""
    files = local_inputs(basic_run.source)
    monkeypatch.setattr(runner, "PARALLEL_FROM", 8)
    monkeypatch.setattr(runner, "CHUNK", 2)
    monkeypatch.setattr(runner, "IN_FLIGHT_CHUNKS", 2)
    if in_flight_files:
        monkeypatch.setattr(runner, "IN_FLIGHT_BYTES", in_flight_files * min(f.size for f in files))
    total = 24
    taken: list[int] = []
    ahead: list[int] = []

    def inputs() -> Iterator[LocalInput]:
        for number in range(total):
            taken.append(number)
            yield files[number % len(files)]

    def outcome(_: FileOutcome) -> None:
        ahead.append(len(taken) - len(ahead))

    out, held = LocalDirectory(str(tmp_path / "out")), LocalDirectory(str(tmp_path / "q"))
    report = run_deidentification(inputs(), out, held, KEY, workers=2, on_outcome=outcome)
    assert (report.inputs, report.deidentified) == (total, total)
    assert max(ahead) <= most_ahead < total
    assert _tree(tmp_path / "out") == _tree(basic_run.destination)
