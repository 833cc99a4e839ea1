"""The sample DAG ``hi_stow_import_only`` and the demo that runs it (``make demo``), against the emulator."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from pydicom import dcmread
from pydicom.errors import InvalidDicomError

from airflow_hi_stow.samples import PLANTED, PLANTED_NESTED, PLANTED_PRIVATE, SampleSet, generate_dataset
from airflow_hi_stow.testing import RunningEmulator
from tests.support import airflow_dags

pytestmark = pytest.mark.airflow
ROOT = Path(__file__).resolve().parents[2]
DAG_ID = "hi_stow_import_only"


@pytest.fixture(scope="module", autouse=True)
def airflow_database() -> None:
    airflow_dags.migrate_database()


@pytest.fixture
def emulator(
    healthimaging_emulator: RunningEmulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> RunningEmulator:
    """The emulator as the sample DAG's connection (only through the environment), manifests under tmp_path."""
    connection = healthimaging_emulator.aws_connection_json(datastore_id=healthimaging_emulator.datastore_id)
    monkeypatch.setenv("AIRFLOW_CONN_AWS_HEALTHIMAGING", connection)
    monkeypatch.setenv("AIRFLOW__HI_STOW__MANIFEST_LOCATION", str(tmp_path / "manifests"))
    return healthimaging_emulator


def one_small_study(root: Path) -> SampleSet:
    return generate_dataset(root, patients=1, studies_per_patient=(1, 1), series_per_study=(1, 1),
                            instances_per_series=(2, 2), redeliver_one_study=False)  # fmt: skip


def sample_dag():  # type: ignore[no-untyped-def]
    from tests.support.airflow_compat import DagBag

    bag = DagBag(dag_folder=str(ROOT / "dags"))
    assert bag.import_errors == {}
    return bag.get_dag(DAG_ID)


@pytest.mark.compat
def test_the_dag_file_imports_cleanly() -> None:
    dag = sample_dag()
    assert dag is not None
    assert {task.task_id for task in dag.tasks} == {
        "validate", "find_studies", "store_study", "later_deliveries", "validate_resend", "store_resend", "report",
        "fail_run",
    }  # fmt: skip
    assert set(dag.params.keys()) == {"source", "resend_source", "quarantine", "report_path"}


@pytest.mark.compat
def test_a_run_stores_the_set_and_reports_the_non_primary_study(emulator: RunningEmulator, tmp_path: Path) -> None:
    sample = generate_dataset(tmp_path / "dicom", patients=2, studies_per_patient=(1, 1), series_per_study=(2, 2),
                              instances_per_series=(3, 4))  # fmt: skip
    assert sample.redelivered_root is not None
    (sample.root / "notes.txt").write_text("not DICOM")
    report_path = tmp_path / "report.json"
    conf = {"source": str(sample.root), "resend_source": str(sample.redelivered_root), "report_path": str(report_path),
            "quarantine": str(tmp_path / "quarantine")}  # fmt: skip
    run = sample_dag().test(run_conf=conf)
    assert run.state == "success"

    report = json.loads(report_path.read_text())
    originals, resent = len(sample.instances), len(sample.redelivered)
    assert (report["validation"]["inputs"], report["validation"]["quarantined"]) == (originals + 1, 1)  # the text file
    assert list((tmp_path / "quarantine").rglob("*notes.txt.reason.json"))
    assert report["files"] == originals + resent
    assert report["counts"] == {
        "stored": originals + resent, "stored_with_warning": 0, "failed": 0, "rejected": 0, "unconfirmed": 0,
    }  # fmt: skip
    series_resent = len({i.series_instance_uid for i in sample.redelivered})
    assert report["image_sets"] == {
        "total": len(sample.series_uids) + series_resent,
        "primary": len(sample.series_uids),
        "non_primary": series_resent,
    }
    assert {item["study_instance_uid"] for item in report["non_primary_image_sets"]} == {sample.conflicting_study_uid}
    assert all(item["conflicts"] == ["PatientID"] for item in report["non_primary_image_sets"])

    # The report read DICOMTags back through boto3; the emulator recorded what it compared when it placed them.
    in_emulator = {item["imageSetId"]: item for item in emulator.image_sets()}
    assert sum(item["isPrimary"] for item in in_emulator.values()) == len(sample.series_uids)
    for item in report["non_primary_image_sets"]:
        assert in_emulator[item["image_set_id"]]["isPrimary"] is False
        assert in_emulator[item["image_set_id"]]["conflicts"] == item["conflicts"]


def test_without_a_resend_the_second_store_is_skipped(emulator: RunningEmulator, tmp_path: Path) -> None:
    sample = one_small_study(tmp_path / "dicom")
    run = sample_dag().test(run_conf={"source": str(sample.root), "report_path": str(tmp_path / "report.json"),
                                      "quarantine": str(tmp_path / "quarantine")})  # fmt: skip
    assert run.state == "success"
    states = {ti.task_id: ti.state for ti in run.get_task_instances()}
    assert states["validate_resend"] == "skipped"
    assert states["store_resend"] == "skipped"
    assert states["fail_run"] == "skipped"
    assert json.loads((tmp_path / "report.json").read_text())["counts"]["stored"] == 2


def test_a_failed_store_fails_the_run_although_the_report_runs(
    emulator: RunningEmulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sample = one_small_study(tmp_path / "dicom")
    wrong_secret = json.loads(emulator.aws_connection_json(datastore_id=emulator.datastore_id))
    wrong_secret["password"] = "not-the-secret"
    monkeypatch.setenv("AIRFLOW_CONN_AWS_HEALTHIMAGING", json.dumps(wrong_secret))
    run = sample_dag().test(run_conf={"source": str(sample.root), "report_path": str(tmp_path / "report.json"),
                                      "quarantine": str(tmp_path / "quarantine")})  # fmt: skip
    assert run.state == "failed"
    states = {ti.task_id: ti.state for ti in run.get_task_instances()}
    assert states["store_study"] == "failed"
    assert states["fail_run"] == "failed"
    assert states["report"] in ("success", "failed")  # it runs either way (the read-back is refused too)


@pytest.mark.compat
def test_the_demo_runs_end_to_end(tmp_path: Path) -> None:
    """``make demo`` in small: the emulator, a set with planted PHI and bad files, ``airflow dags test`` of the local
    pipeline with its steps printed, the summary, and a residue scan of what was stored read back from the emulator."""
    done = subprocess.run(
        [sys.executable, "-m", "airflow_hi_stow.demo", "--output", str(tmp_path / "out"), "--patients", "1",
         "--dags-folder", str(ROOT / "dags")],
        capture_output=True, text=True, cwd=tmp_path, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    out = done.stdout
    assert re.search(r"^hi-stow demo:   deidentify started$", out, re.M)  # progress while it runs
    assert re.search(r"^hi-stow demo:   store_study\[0\] started$", out, re.M)
    assert re.search(r"^hi-stow demo:     done: \d+ stored; ", out, re.M)
    assert re.search(r"^  quarantined    3  \(2 x not a DICOM P10 file .*; 1 x no StudyInstanceUID\)$", out, re.M)
    assert re.search(r"^  good           (\d+) of \1  \(warnings: \d+ x consistency.study\)$", out, re.M)
    assert re.search(r"^  failed         0$", out, re.M)
    assert re.search(r"^  image sets     \d+ in 1 study: \d+ primary, [1-9]\d* non-primary$", out, re.M)
    assert re.search(r"non-primary image set\(s\), conflicting PatientID$", out, re.M)
    scan = re.search(r"^Residue scan of what was stored: (\d+) instance\(s\) read back .* (\d+) planted identifying "
                     r"values searched, 0 found$", out, re.M)  # fmt: skip
    assert scan is not None
    assert int(scan[1]) > 0
    assert int(scan[2]) >= 10
    assert "the pipeline succeeded" in out
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["counts"]["stored"] == report["validation"]["files"] == report["deidentification"]["files"]

    # No patient data and no signature in anything the demo printed or logged (Airflow's, the emulator's)
    logs = [out, done.stderr] + [
        path.read_text(errors="replace") for path in (tmp_path / "out").rglob("*.log") if path.is_file()
    ]
    assert len(logs) >= 4  # the demo's output and errors, airflow dags test's log (with the task logs), the emulator's
    patient_data = patient_values(tmp_path / "out" / "dicom")
    assert len(patient_data) >= 4
    for text in logs:
        assert not [value for value in patient_data if value in text]
        assert "Signature=" not in text
        assert "Credential=" not in text


def patient_values(root: Path) -> set[str]:
    """The planted identifying values and the patient name, ID, birth date and accession numbers of a generated set
    (its bad files left out)."""
    values = {*PLANTED.values(), PLANTED_NESTED, PLANTED_PRIVATE}
    for path in root.rglob("*.dcm"):
        try:
            dataset = dcmread(path, stop_before_pixels=True)
        except (InvalidDicomError, OSError, EOFError):
            continue
        for keyword in ("PatientName", "PatientID", "PatientBirthDate", "AccessionNumber"):
            if value := dataset.get(keyword):
                values.add(str(value))
    return values
