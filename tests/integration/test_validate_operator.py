"""ValidateDicomOperator -> StoreDicomOperator in real DAG runs (``dag.test()`` on SQLite) against the HealthImaging
emulator, over the bad-input corpus of tests/validate: only the good files are sent, and the store's summary and the
quarantine together account for every input; the same from S3 into an S3 quarantine, moving; a retry of the same
run quarantines nothing twice; max_failures fails the task once everything was checked."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from airflow_hi_stow.engine.ledger import read_manifest
from airflow_hi_stow.sources.resolve import read_file_list
from airflow_hi_stow.testing import RunningEmulator
from airflow_hi_stow.validate.quarantine import REASON_SUFFIX
from tests.support import airflow_dags
from tests.support.s3 import MotoS3
from tests.validate.test_corpus import Corpus, build_corpus

pytestmark = pytest.mark.airflow
DAG_ID = "hi_stow_test_validate_store"
CONN_ID = "hi_emulator"


@pytest.fixture(scope="module", autouse=True)
def airflow_database() -> None:
    airflow_dags.migrate_database()


@pytest.fixture
def emulator(healthimaging_emulator: RunningEmulator, monkeypatch: pytest.MonkeyPatch) -> RunningEmulator:
    """The emulator as the Airflow connection ``hi_emulator``, with the test DAGs visible to ``dag.test()``."""
    monkeypatch.setenv(f"AIRFLOW_CONN_{CONN_ID.upper()}", healthimaging_emulator.aws_connection_json())
    for name, value in airflow_dags.ENVIRONMENT.items():
        monkeypatch.setenv(name, value)
    return healthimaging_emulator


@pytest.fixture
def corpus(tmp_path: Path) -> Corpus:
    return build_corpus(tmp_path / "incoming")


def dag_args(
    monkeypatch: pytest.MonkeyPatch, emulator: RunningEmulator, validate: dict[str, Any], **store: Any
) -> None:
    store = {"aws_conn_id": CONN_ID, "datastore_id": emulator.datastore_id, "progress_interval": 1.0, **store}
    monkeypatch.setenv("HI_STOW_VALIDATE_TEST_ARGS", json.dumps({"validate": validate, "store": store}))


def a_moment() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def xcom(run: Any, task_id: str) -> Any:
    return airflow_dags.xcom_values(DAG_ID, run.run_id, task_id).get(-1)


def task_folder(base: str, run: Any) -> str:
    return f"{base}/dag_id={DAG_ID}/run_id={run.run_id}/task_id=validate/map_index=-1"


def good_names(corpus: Corpus) -> list[str]:
    return sorted(name for name, caught in corpus.errors.items() if not caught)


def files_per_check(corpus: Corpus) -> dict[str, dict[str, int]]:
    """What the XCom's ``checks`` must hold: the files each check caught, by severity."""
    counts: dict[str, dict[str, int]] = {}
    for severity, table in (("error", corpus.errors), ("warning", corpus.warnings)):
        for checks in table.values():
            for check in checks:
                counts.setdefault(check, {}).setdefault(severity, 0)
                counts[check][severity] += 1
    return counts


def assert_no_patient_value(corpus: Corpus, texts: list[str]) -> None:
    assert texts
    assert {value for value in corpus.values for text in texts if value in text} == set()


@pytest.mark.compat
def test_only_the_good_files_are_stored_and_the_quarantine_holds_the_rest_even_after_a_retry(
    emulator: RunningEmulator, corpus: Corpus, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    gone, no_match = str(tmp_path / "gone.dcm"), str(tmp_path / "nowhere" / "*.dcm")
    records = str(tmp_path / "records")
    validate = {"source": [str(corpus.root), gone, no_match], "quarantine": str(tmp_path / "quarantine")}
    dag_args(monkeypatch, emulator, {**validate, "report_location": records}, manifest_location=records)
    run_after = a_moment()
    run = airflow_dags.run_dag(DAG_ID, run_after)
    assert run.state == "success"

    validated, stored = xcom(run, "validate"), xcom(run, "store")
    good = [str(corpus.root / name) for name in good_names(corpus)]
    inputs = len(corpus.errors) + 2
    folder = Path(task_folder(str(tmp_path / "quarantine"), run))
    assert validated == {
        "manifest": f"{task_folder(records, run)}/good.jsonl",
        "files": len(good),
        "inputs": inputs,
        "quarantined": inputs - len(good),
        "with_warnings": sum(bool(corpus.warnings[Path(name).name]) for name in good),
        "quarantined_earlier": 0,
        "taken_out_of_quarantine": 0,
        "checks": {
            **files_per_check(corpus),
            "container.readable": {"error": 2},  # the path that does not exist, the glob matching nothing
        },
        "conflicts": 1,
        "quarantine": str(folder),
        "report": f"{task_folder(records, run)}/report.json",
    }
    assert len(json.dumps(validated)) < 4000
    assert read_file_list(Path(validated["manifest"]).read_bytes()) == good

    # only the good files were sent; the store's summary and the quarantine account for every input, once
    assert emulator.stats()["instances"]["received"] == len(good)
    assert stored["counts"]["stored"] == stored["files"] == len(good)
    sent = {result.source for result in read_manifest(Path(stored["manifest"]).read_text().splitlines())}
    reasons = [json.loads(path.read_text()) for path in sorted(folder.glob("*" + REASON_SUFFIX))]
    quarantined = {reason["source"] for reason in reasons}
    every_input = {str(corpus.root / name) for name in corpus.errors} | {gone, no_match}
    assert sent == set(good)
    assert (sent | quarantined, sent & quarantined) == (every_input, set())
    assert len(reasons) == validated["quarantined"]
    copies = {reason["quarantined_as"] for reason in reasons} - {None}
    assert {str(path) for path in folder.iterdir() if not path.name.endswith(REASON_SUFFIX)} == copies
    assert len(copies) == validated["quarantined"] - 2  # the entries naming nothing have a reason file alone
    report = Path(validated["report"]).read_text()
    assert_no_patient_value(corpus, [json.dumps(validated), json.dumps(stored), report, *map(json.dumps, reasons)])

    # a retry of the same run: the same split, nothing written into the quarantine again, nothing sent again
    before = {path.name: (path.stat().st_mtime_ns, path.read_bytes()) for path in folder.iterdir()}
    again = airflow_dags.run_dag(DAG_ID, run_after)
    assert (again.state, again.run_id) == ("success", run.run_id)
    assert xcom(again, "validate") == validated
    assert {path.name: (path.stat().st_mtime_ns, path.read_bytes()) for path in folder.iterdir()} == before
    restored = xcom(again, "store")
    assert (restored["counts"]["stored"], restored["resumed"]) == (len(good), len(good))
    assert emulator.stats()["instances"]["received"] == len(good)


def test_from_s3_into_an_s3_quarantine_moving_and_retried(
    emulator: RunningEmulator, corpus: Corpus, monkeypatch: pytest.MonkeyPatch, moto_s3: MotoS3
) -> None:
    uris = moto_s3.upload_tree(corpus.root, "incoming")
    monkeypatch.setenv("AIRFLOW_CONN_MOTO_S3", moto_s3.connection_json())
    bucket = moto_s3.bucket
    validate = {
        "source": f"s3://{bucket}/incoming/",
        "quarantine": f"s3://{bucket}/quarantine",
        "report_location": f"s3://{bucket}/records",
        "aws_conn_id": "moto_s3",
        "move": True,
    }
    dag_args(monkeypatch, emulator, validate, s3_conn_id="moto_s3", manifest_location=f"s3://{bucket}/records")
    run_after = a_moment()
    run = airflow_dags.run_dag(DAG_ID, run_after)
    assert run.state == "success"

    validated, stored = xcom(run, "validate"), xcom(run, "store")
    good = [f"s3://{bucket}/incoming/{name}" for name in good_names(corpus)]
    bad = len(uris) - len(good)
    assert (validated["inputs"], validated["files"], validated["quarantined"]) == (len(uris), len(good), bad)
    assert validated["checks"] == files_per_check(corpus)
    assert validated["manifest"] == f"{task_folder(f's3://{bucket}/records', run)}/good.jsonl"
    assert validated["quarantine"] == task_folder(f"s3://{bucket}/quarantine", run)
    assert emulator.stats()["instances"]["received"] == stored["counts"]["stored"] == len(good)

    client = moto_s3.client()

    def keys(prefix: str) -> dict[str, str]:
        listed = client.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", [])
        return {item["Key"]: f"{item['ETag']} {item['LastModified']}" for item in listed}

    assert sorted(keys("incoming/")) == sorted(uri.split("/", 3)[3] for uri in good)  # the bad ones were moved
    prefix = validated["quarantine"].split("/", 3)[3] + "/"
    quarantine = keys(prefix)
    reasons = [
        json.loads(client.get_object(Bucket=bucket, Key=key)["Body"].read())
        for key in quarantine
        if key.endswith(REASON_SUFFIX)
    ]
    assert sorted(reason["source"] for reason in reasons) == sorted(set(uris) - set(good))
    assert len(quarantine) == 2 * bad  # each copy beside its reason file
    report = client.get_object(Bucket=bucket, Key=validated["report"].split("/", 3)[3])["Body"].read().decode()
    assert_no_patient_value(corpus, [json.dumps(validated), json.dumps(stored), report, *map(json.dumps, reasons)])

    again = airflow_dags.run_dag(DAG_ID, run_after)  # the sources of the quarantined files are gone now
    assert again.state == "success"
    retried = xcom(again, "validate")
    assert retried == {**validated, "quarantined_earlier": bad}
    assert keys(prefix) == quarantine
    assert emulator.stats()["instances"]["received"] == len(good)


def test_max_failures_fails_the_task_after_everything_was_checked_and_nothing_is_stored(
    emulator: RunningEmulator, corpus: Corpus, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    records = str(tmp_path / "records")
    validate = {
        "source": str(corpus.root),
        "quarantine": str(tmp_path / "quarantine"),
        "report_location": records,
        "max_failures": 0.25,
        "retries": 1,
        "retry_delay": 0,
    }
    dag_args(monkeypatch, emulator, validate, manifest_location=records)
    run = airflow_dags.run_dag(DAG_ID, a_moment())
    assert run.state == "failed"
    states = {ti.task_id: (ti.state, ti.try_number) for ti in run.get_task_instances()}
    assert states == {"validate": ("failed", 1), "store": ("upstream_failed", 0)}  # no retry: it would split the same
    assert xcom(run, "validate") is None
    assert emulator.stats().get("instances", {}).get("received", 0) == 0  # nothing was sent

    report = json.loads(Path(task_folder(records, run), "report.json").read_text())
    bad = sum(bool(caught) for caught in corpus.errors.values())
    assert report["summary"]["inputs"] == len(corpus.errors)
    assert report["summary"]["failure"] == (
        f"{bad} of {len(corpus.errors)} file(s) quarantined, more than the {len(corpus.errors) // 4} allowed "
        "(max_failures)"
    )
    folder = Path(task_folder(str(tmp_path / "quarantine"), run))
    assert len(list(folder.glob("*" + REASON_SUFFIX))) == bad  # everything was checked and quarantined first
    assert os.path.exists(Path(task_folder(records, run), "good.jsonl"))
