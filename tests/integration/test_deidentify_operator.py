"""DeidentifyDicomOperator in real DAG runs (``dag.test()`` on SQLite): de-identify -> validate -> store into the
HealthImaging emulator from a local folder, de-identify -> store from S3 to S3 (moto) with botocore at DEBUG, a retry
of the same run, mapped instances over one study, the quarantine limit, a missing or short key, the key's masking.

The input is the synthetic study of tests/deid (patient data planted at the top level, three sequence levels deep
and in a private block; file names holding the MRN) plus bad inputs: a text file, a file without P10 meta, an
ultrasound image (burned-in text suspect), a missing path and a glob without a match.
"""

from __future__ import annotations

import io
import json
import logging
import os
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from pydicom import dcmread

from airflow_hi_stow.core import redaction
from airflow_hi_stow.deid import deidentify_local
from airflow_hi_stow.hooks.deidentification import DeidentificationKeyHook
from airflow_hi_stow.operators.deidentify import DeidentifyDicomOperator, flag
from airflow_hi_stow.sources.resolve import read_file_list
from airflow_hi_stow.testing import RunningEmulator
from tests.deid import synthetic
from tests.deid.conftest import pydicom_file
from tests.support import airflow_dags
from tests.support.s3 import SECRET_KEY, MotoS3

pytestmark = pytest.mark.airflow
KEY = "a de-identification key for tests, 48 bytes long"
KEY_CONN = "hi_stow_deid_key"
EMULATOR_CONN = "hi_emulator"
BAD_FILES = ("notes.txt", "no_meta.dcm", "ultrasound.dcm")
REASONS = {"unreadable": 4, "burned-in": 1}  # the text file, the file without meta, the missing path, the glob
FILES, QUARANTINED = 6, 5
SECRETS = (*synthetic.PLANTED, synthetic.STUDY_UID, KEY)
PIPELINE = "hi_stow_test_deid_validate_store"


@pytest.fixture(scope="module", autouse=True)
def airflow_database() -> None:
    airflow_dags.migrate_database()


@pytest.fixture(autouse=True)
def airflow_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """The test DAGs visible to ``dag.test()``; the key in a generic connection's password."""
    for name, value in airflow_dags.ENVIRONMENT.items():
        monkeypatch.setenv(name, value)
    key_connection(monkeypatch, {"password": KEY})


def key_connection(monkeypatch: pytest.MonkeyPatch, fields: dict[str, Any]) -> None:
    monkeypatch.setenv(f"AIRFLOW_CONN_{KEY_CONN.upper()}", json.dumps({"conn_type": "generic", **fields}))


@dataclass(frozen=True)
class Incoming:
    root: Path
    study: list[Path]

    def source(self) -> list[str]:
        """The folder, a missing file and a glob without a match: 9 files, 2 entries naming nothing."""
        return [str(self.root), str(self.root.parent / "missing.dcm"), str(self.root.parent / "lost" / "*.dcm")]


@pytest.fixture
def incoming(tmp_path: Path) -> Incoming:
    root = tmp_path / "incoming"
    study = synthetic.write_study(root)
    (root / "notes.txt").write_text(f"scan of {synthetic.PATIENT_NAME}\n")
    shutil.copy(pydicom_file("no_meta.dcm"), root / "no_meta.dcm")
    shutil.copy(pydicom_file("examples_ybr_color.dcm"), root / "ultrasound.dcm")
    return Incoming(root, study)


def deid_args(monkeypatch: pytest.MonkeyPatch, **args: Any) -> None:
    monkeypatch.setenv("HI_STOW_DEID_TEST_ARGS", json.dumps(args))


def a_moment() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def leaked(text: str) -> list[str]:
    """The planted values (and the key) found in ``text``."""
    return [value for value in SECRETS if value.lower() in text.lower()]


def assert_clean_instance(data: bytes) -> None:
    """No planted value in the bytes, nor in any element (nested and private ones included) of the instance."""
    assert leaked(data.decode("latin-1")) == []
    ds = dcmread(io.BytesIO(data))
    assert leaked(repr(ds)) == []
    assert ds.PatientIdentityRemoved == "YES"


@pytest.fixture
def emulator(healthimaging_emulator: RunningEmulator, monkeypatch: pytest.MonkeyPatch) -> RunningEmulator:
    monkeypatch.setenv(f"AIRFLOW_CONN_{EMULATOR_CONN.upper()}", healthimaging_emulator.aws_connection_json())
    return healthimaging_emulator


def store_args(emulator: RunningEmulator, **extra: Any) -> dict[str, Any]:
    return {"aws_conn_id": EMULATOR_CONN, "datastore_id": emulator.datastore_id, "image_set_studies": 0, **extra}


def stored_objects(emulator: RunningEmulator) -> list[bytes]:
    """What the emulator keeps of each stored instance, exactly as received."""
    return [p.read_bytes() for p in sorted((emulator.data_dir / "objects").rglob("*.dcm"))]


@pytest.mark.compat
def test_a_local_folder_is_deidentified_validated_and_stored(
    emulator: RunningEmulator,
    incoming: Incoming,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
) -> None:
    """De-identify -> validate (the validation's de-identification gate as an error) -> store."""
    destination = tmp_path / "deidentified"
    deid_args(
        monkeypatch,
        deidentify={"source": incoming.source(), "destination": str(destination), "key_conn_id": KEY_CONN},
        validate={"quarantine": str(tmp_path / "invalid"), "severities": {"deid": "error"}},
        store=store_args(emulator),
    )
    run = airflow_dags.run_dag(PIPELINE, a_moment())
    assert run.state == "success"
    summary = airflow_dags.xcom_values(PIPELINE, run.run_id, "deidentify")[-1]
    assert summary["counts"] == {"inputs": FILES + QUARANTINED, "deidentified": FILES, "quarantined": QUARANTINED}
    assert summary["reasons"] == REASONS
    assert (summary["files"], summary["studies"], summary["series"]) == (FILES, 1, 2)
    assert summary["destination"] == str(destination)
    assert summary["quarantine"] == f"{destination}-quarantine"
    records = Path(os.environ["AIRFLOW_HOME"], "hi_stow", "manifests", f"dag_id={PIPELINE}")
    records /= f"run_id={run.run_id}/task_id=deidentify/map_index=-1"
    assert summary["manifest"] == str(records / "deidentified.jsonl")
    assert summary["report"] == str(records / "report.json")
    assert len(json.dumps(summary)) < 2000

    # the destination holds the de-identified instances only, laid out by the new UIDs, and the file list names them
    outputs = sorted(destination.rglob("*"))
    written = [p for p in outputs if p.is_file()]
    assert sorted(read_file_list(Path(summary["manifest"]).read_bytes())) == sorted(map(str, written))
    for path in written:
        ds = dcmread(path)
        assert path.relative_to(destination).as_posix() == (
            f"{ds.StudyInstanceUID}/{ds.SeriesInstanceUID}/{ds.SOPInstanceUID}.dcm"
        )
        assert_clean_instance(path.read_bytes())

    # every bad input is in the quarantine: the original, its source's name and its reason, under its input id
    quarantine = Path(summary["quarantine"])
    reasons = [json.loads(p.read_text()) for p in quarantine.glob("*/reason.json")]
    sources = {p.parent.name: Path(json.loads(p.read_text())["source"]) for p in quarantine.glob("*/source.json")}
    assert sorted(path.name for path in sources.values()) == sorted([*BAD_FILES, "missing.dcm", "*.dcm"])
    for input_id, source in sources.items():
        copy = quarantine / input_id / "original"
        assert copy.read_bytes() == source.read_bytes() if source.exists() else not copy.exists()

    # the report says what was done and why, without any original value or file name
    report_text = Path(summary["report"]).read_text()
    report = json.loads(report_text)
    assert (report["inputs"], report["deidentified"], report["quarantined"]) == (11, 6, 5)
    assert {entry["input_id"] for entry in report["quarantine"]} == {r["input_id"] for r in reasons}
    assert leaked(report_text) == []
    assert "notes.txt" not in report_text
    assert "ultrasound" not in report_text

    # every output passes validation; the store stored exactly them, and what the emulator keeps is clean
    validated = airflow_dags.xcom_values(PIPELINE, run.run_id, "validate")[-1]
    assert (validated["inputs"], validated["files"], validated["quarantined"]) == (FILES, FILES, 0)
    stored = airflow_dags.xcom_values(PIPELINE, run.run_id, "store")[-1]
    assert stored["counts"]["stored"] == FILES
    assert stored["files"] == FILES
    kept = stored_objects(emulator)
    assert sorted(kept) == sorted(p.read_bytes() for p in written)
    for data in kept:
        assert_clean_instance(data)
    (study,) = {image_set["studyInstanceUID"] for image_set in emulator.image_sets()}
    assert study == dcmread(written[0]).StudyInstanceUID != synthetic.STUDY_UID

    # neither the task logs nor any XCom of the run show the key or a planted value
    logs = capfd.readouterr()
    assert "de-identifying into" in logs.out + logs.err  # the task log was captured
    # Airflow 3.0.6's dag.test() harness (InProcessSupervisorComms, not a real task) logs each message to its
    # supervisor at DEBUG, connection passwords and masked secrets included: those lines are Airflow's, not ours.
    lines = [line for line in (logs.out + logs.err).splitlines() if "msg=MaskSecret(" not in line]
    assert leaked("\n".join(lines)) == []
    xcoms = [airflow_dags.xcom_values(PIPELINE, run.run_id, task) for task in ("deidentify", "validate", "store")]
    assert leaked(json.dumps(xcoms)) == []


def test_the_key_hook_registers_the_key_with_the_secrets_masker(monkeypatch: pytest.MonkeyPatch) -> None:
    """In the extra ``key``, a name Airflow does not mask by itself: the hook registers it as it reads it."""
    from airflow.sdk.log import _secrets_masker  # Airflow's own masker, as task logs apply it

    secret = "the key of the masking test, 32 bytes or more"
    key_connection(monkeypatch, {"extra": {"key": secret}})
    assert _secrets_masker().redact(f"key: {secret}") == f"key: {secret}"
    key = DeidentificationKeyHook(KEY_CONN).get_key()
    assert _secrets_masker().redact(f"key: {secret}") == "key: ***"
    assert secret not in repr(key)


@pytest.fixture
def debug_log() -> Iterator[io.StringIO]:
    """Everything logged at DEBUG or above while the test runs, as Airflow's ``logging_level = DEBUG`` would show."""
    for name in list(logging.Logger.manager.loggerDict):  # as in a fresh worker: no earlier task installed it
        logger = logging.getLogger(name)
        for found in [f for f in logger.filters if isinstance(f, redaction.RedactingFilter)]:
            logger.removeFilter(found)
    captured = io.StringIO()
    handler = logging.StreamHandler(captured)
    root = logging.getLogger()
    loggers = [root, *(logging.getLogger(name) for name in ("botocore", "boto3", "urllib3", "s3transfer"))]
    levels = [logger.level for logger in loggers]
    root.addHandler(handler)
    for logger in loggers:
        logger.setLevel(logging.DEBUG)
    yield captured
    root.removeHandler(handler)
    for logger, level in zip(loggers, levels, strict=True):
        logger.setLevel(level)


def s3_tree(s3: MotoS3, prefix: str) -> dict[str, bytes]:
    client = s3.client()
    listed = client.list_objects_v2(Bucket=s3.bucket, Prefix=prefix).get("Contents", [])
    return {
        item["Key"][len(prefix) :]: client.get_object(Bucket=s3.bucket, Key=item["Key"])["Body"].read()
        for item in listed
    }


@pytest.mark.compat
def test_an_s3_prefix_is_deidentified_to_s3_then_stored(
    emulator: RunningEmulator,
    incoming: Incoming,
    monkeypatch: pytest.MonkeyPatch,
    moto_s3: MotoS3,
    debug_log: io.StringIO,
) -> None:
    """With botocore at DEBUG, as Airflow's ``logging_level = DEBUG`` sets it: no signature or secret in the log."""
    moto_s3.upload_tree(incoming.root, "incoming")
    debug_log.seek(0)
    debug_log.truncate()  # the set-up's own requests are not the task's
    monkeypatch.setenv("AIRFLOW_CONN_MOTO_S3", moto_s3.connection_json())
    bucket = f"s3://{moto_s3.bucket}"
    deid_args(
        monkeypatch,
        deidentify={
            "source": [f"{bucket}/incoming/", f"{bucket}/missing.dcm", f"{bucket}/lost/*.dcm"],
            "destination": f"{bucket}/deidentified/",
            "key_conn_id": KEY_CONN,
            "aws_conn_id": "moto_s3",
            "report_location": f"{bucket}/records",
        },
        store=store_args(emulator, s3_conn_id="moto_s3"),
    )
    run = airflow_dags.run_dag("hi_stow_test_deid_store", a_moment())
    assert run.state == "success"
    summary = airflow_dags.xcom_values("hi_stow_test_deid_store", run.run_id, "deidentify")[-1]
    assert summary["counts"] == {"inputs": FILES + QUARANTINED, "deidentified": FILES, "quarantined": QUARANTINED}
    assert summary["reasons"] == REASONS
    assert (summary["destination"], summary["quarantine"]) == (
        f"{bucket}/deidentified",
        f"{bucket}/deidentified-quarantine",
    )
    records = f"records/dag_id=hi_stow_test_deid_store/run_id={run.run_id}/task_id=deidentify/map_index=-1"
    assert summary["manifest"] == f"{bucket}/{records}/deidentified.jsonl"

    outputs = s3_tree(moto_s3, "deidentified/")
    assert len(outputs) == FILES
    assert all(name.count("/") == 2 and name.endswith(".dcm") for name in outputs)
    for data in outputs.values():
        assert_clean_instance(data)
    head = moto_s3.client().head_object(Bucket=moto_s3.bucket, Key=f"deidentified/{next(iter(outputs))}")
    assert head["ContentType"] == "application/dicom"
    listed = read_file_list(s3_tree(moto_s3, records + "/")["deidentified.jsonl"])
    assert sorted(listed) == sorted(f"{bucket}/deidentified/{name}" for name in outputs)
    held = s3_tree(moto_s3, "deidentified-quarantine/")
    sources = {
        name.split("/")[0]: json.loads(data)["source"] for name, data in held.items() if name.endswith("/source.json")
    }
    assert sorted(s.rsplit("/", 1)[-1] for s in sources.values()) == sorted([*BAD_FILES, "missing.dcm", "*.dcm"])
    assert {name.split("/")[0] for name in held if name.endswith("/reason.json")} == set(sources)
    originals = {
        sources[name.split("/")[0]].rsplit("/", 1)[-1]: data
        for name, data in held.items()
        if name.endswith("/original")
    }
    assert originals == {name: (incoming.root / name).read_bytes() for name in BAD_FILES}
    assert leaked(json.dumps(json.loads(s3_tree(moto_s3, records + "/")["report.json"]))) == []

    stored = airflow_dags.xcom_values("hi_stow_test_deid_store", run.run_id, "store")[-1]
    assert stored["counts"]["stored"] == FILES
    assert sorted(stored_objects(emulator)) == sorted(outputs.values())

    text = debug_log.getvalue()
    assert "'Authorization': [redacted]" in text  # botocore's DEBUG lines of the task's requests, redacted
    assert re.findall(r"Signature=[0-9a-f]{16,}", text) == []
    assert SECRET_KEY not in text


def test_a_retry_rewrites_identical_outputs_and_quarantines_nothing_twice(
    incoming: Incoming, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two tries of one task instance (the same run id): the same files, byte for byte, in the destination and the
    quarantine, the same summary; the linkage export is written where it was asked for, readable by its owner."""
    destination, linkage = tmp_path / "deidentified", tmp_path / "linkage"
    deid_args(
        monkeypatch,
        deidentify={
            "source": incoming.source(),
            "destination": str(destination),
            "key_conn_id": KEY_CONN,
            "retain_longitudinal_modified_dates": True,
            "linkage_location": str(linkage),
        },
    )
    run_after = a_moment()
    first = airflow_dags.run_dag("hi_stow_test_deid", run_after)
    assert first.state == "success"
    before = airflow_dags.xcom_values("hi_stow_test_deid", first.run_id, "deidentify")[-1]
    outputs, held = tree(destination), tree(tmp_path / "deidentified-quarantine")
    assert len(outputs) == FILES
    assert len(held) == len(BAD_FILES) + 2 * QUARANTINED  # the originals, and a source and a reason for each

    again = airflow_dags.run_dag("hi_stow_test_deid", run_after)
    assert (again.state, again.run_id) == ("success", first.run_id)
    after = airflow_dags.xcom_values("hi_stow_test_deid", again.run_id, "deidentify")[-1]
    assert tree(destination) == outputs
    assert tree(tmp_path / "deidentified-quarantine") == held
    assert {**after, "duration_seconds": 0} == {**before, "duration_seconds": 0}

    (export,) = linkage.rglob("linkage.csv")
    assert (
        export.parent
        == linkage / "dag_id=hi_stow_test_deid" / f"run_id={first.run_id}" / "task_id=deidentify" / "map_index=-1"
    )
    assert export.stat().st_mode & 0o077 == 0
    rows = [line.split(",") for line in export.read_text().splitlines()[1:]]
    assert [original for kind, original, _ in rows if kind == "patient_id"] == [synthetic.PATIENT_ID]
    assert leaked(json.dumps(after)) == []


def test_mapped_instances_over_one_study_agree_on_its_replacements(
    incoming: Incoming, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each series in its own mapped instance, the key in the connection's extra: one study comes out, its
    references between the halves intact, byte for byte what the library writes for the whole study at once."""
    key_connection(monkeypatch, {"extra": {"key": KEY}})
    destination = tmp_path / "deidentified"
    halves = [[str(p) for p in incoming.study[:3]], [str(p) for p in incoming.study[3:]]]
    deid_args(monkeypatch, deidentify={"destination": str(destination), "key_conn_id": KEY_CONN}, sources=halves)
    run = airflow_dags.run_dag("hi_stow_test_deid_mapped", a_moment())
    assert run.state == "success"
    summaries = airflow_dags.xcom_values("hi_stow_test_deid_mapped", run.run_id, "deidentify")
    assert sorted(summaries) == [0, 1]
    assert [s["counts"]["deidentified"] for s in summaries.values()] == [3, 3]
    assert len({s["manifest"] for s in summaries.values()}) == 2  # each mapped instance its own records

    datasets = {str(p): dcmread(p) for p in destination.rglob("*.dcm")}
    assert len({ds.StudyInstanceUID for ds in datasets.values()}) == 1
    assert len({(ds.PatientID, str(ds.PatientName), ds.AccessionNumber) for ds in datasets.values()}) == 1
    new_uids = {ds.SOPInstanceUID for ds in datasets.values()}
    for ds in datasets.values():
        if ds.SeriesNumber == 2:  # series 2 refers to the first instance of series 1, in the other mapped instance
            assert ds.SourceImageSequence[0].ReferencedSOPInstanceUID in new_uids
    whole = tmp_path / "whole"
    deidentify_local(incoming.study, whole, KEY, workers=1)
    assert tree(destination) == tree(whole)


def test_too_many_quarantined_inputs_fail_the_task_once_everything_is_done(
    incoming: Incoming, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    destination = tmp_path / "deidentified"
    records = tmp_path / "records"
    deid_args(
        monkeypatch,
        deidentify={
            "source": incoming.source(),
            "destination": str(destination),
            "key_conn_id": KEY_CONN,
            "max_quarantined": 0.25,  # 5 of 11 is more than the 2 allowed
            "report_location": str(records),
        },
    )
    run = airflow_dags.run_dag("hi_stow_test_deid", a_moment())
    assert run.state == "failed"
    assert airflow_dags.xcom_values("hi_stow_test_deid", run.run_id, "deidentify") == {}
    assert len(tree(destination)) == FILES  # everything was processed before the task failed
    (report,) = records.rglob("report.json")
    assert json.loads(report.read_text())["quarantined"] == QUARANTINED


@pytest.mark.parametrize(
    ("fields", "complaint"),
    [
        ({"login": "deid"}, "the de-identification key is missing"),
        ({"extra": {"key": "short"}}, "the de-identification key is 5 bytes"),
    ],
)
def test_a_missing_or_short_key_fails_before_any_file_is_written(
    incoming: Incoming,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
    fields: dict[str, Any],
    complaint: str,
) -> None:
    key_connection(monkeypatch, fields)
    deid_args(
        monkeypatch,
        deidentify={
            "source": incoming.source(),
            "destination": str(tmp_path / "deidentified"),
            "key_conn_id": KEY_CONN,
            "report_location": str(tmp_path / "records"),
            "retries": 2,
            "retry_delay": 0,
        },
    )
    run = airflow_dags.run_dag("hi_stow_test_deid", a_moment())
    assert run.state == "failed"
    (task,) = run.get_task_instances()
    assert task.try_number == 1  # a key does not get better with retries
    assert sorted(p.name for p in tmp_path.iterdir()) == ["incoming"]  # nothing written anywhere
    logs = capfd.readouterr()
    assert f"connection '{KEY_CONN}': {complaint}" in logs.out + logs.err


def test_the_operator_is_registered_and_stores_its_arguments() -> None:
    from airflow_hi_stow import get_provider_info

    info = get_provider_info()
    assert "DICOM de-identification" in {i["integration-name"] for i in info["integrations"]}
    assert {
        "integration-name": "DICOM de-identification",
        "python-modules": ["airflow_hi_stow.operators.deidentify"],
    } in info["operators"]
    operator = DeidentifyDicomOperator(
        task_id="deidentify", source="{{ params.incoming }}", destination="{{ params.out }}", key_conn_id=KEY_CONN
    )
    assert (operator.source, operator.destination, operator.quarantine) == (
        "{{ params.incoming }}",
        "{{ params.out }}",
        None,
    )
    assert set(operator.template_fields) >= {
        "source",
        "destination",
        "quarantine",
        "key_conn_id",
        "report_location",
        "linkage_location",
        "aws_conn_id",
    }
    assert (operator.max_quarantined, operator.linkage_location, operator.allow_burned_in) == (None, None, False)


@pytest.mark.parametrize(
    ("value", "expected"), [(True, True), (False, False), ("True", True), ("false", False), ("", False), ("on", True)]
)
def test_templated_profile_options_read_as_booleans(value: object, expected: bool) -> None:
    """``"{{ params.retain_uids }}"`` renders to the text "False" without native rendering: never taken as on."""
    assert flag("retain_uids", value) is expected


def test_a_profile_option_that_is_neither_on_nor_off_is_refused() -> None:
    with pytest.raises(ValueError, match="retain_uids must be true or false"):
        flag("retain_uids", "maybe")
