"""StoreDicomOperator in real DAG runs (``dag.test()`` on SQLite) against the HealthImaging emulator: a directory
of studies, a throttled service, faults, a run killed mid-way and retried, mixed bad input from an upstream XCom,
the failure policy, a mapped import from S3."""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import requests

from airflow_hi_stow.core.results import InstanceResult, Outcome
from airflow_hi_stow.engine.ledger import read_manifest
from airflow_hi_stow.samples import SampleSet, generate_dataset
from airflow_hi_stow.sources.resolve import read_file_list
from airflow_hi_stow.testing import RunningEmulator
from airflow_hi_stow.transport.retry import RetryPolicy
from tests.support import airflow_dags
from tests.support.s3 import MotoS3

pytestmark = pytest.mark.airflow
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
def sample(tmp_path: Path) -> SampleSet:
    return generate_dataset(
        tmp_path / "studies",
        patients=3,
        studies_per_patient=(1, 2),
        series_per_study=(1, 2),
        instances_per_series=(3, 6),
        redeliver_one_study=False,
    )


def operator_args(monkeypatch: pytest.MonkeyPatch, emulator: RunningEmulator, **args: Any) -> Path:
    """Pass StoreDicomOperator arguments to the test DAGs; returns the manifest location."""
    location = Path(args.setdefault("manifest_location", str(Path(os.environ["AIRFLOW_HOME"]) / "manifests")))
    args = {"aws_conn_id": CONN_ID, "datastore_id": emulator.datastore_id, "progress_interval": 1.0, **args}
    monkeypatch.setenv("HI_STOW_TEST_ARGS", json.dumps(args))
    return location


def a_moment() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def manifest_at(uri: str) -> dict[str, InstanceResult]:
    results = {result.source: result for result in read_manifest(Path(uri).read_text().splitlines())}
    assert len(results) == len(Path(uri).read_text().splitlines())
    return results


@pytest.mark.compat
def test_a_directory_of_studies_is_stored(
    emulator: RunningEmulator, sample: SampleSet, monkeypatch: pytest.MonkeyPatch
) -> None:
    location = operator_args(monkeypatch, emulator, source=[str(sample.root)], max_batch_instances=7)
    run = airflow_dags.run_dag("hi_stow_test_store", a_moment())
    assert run.state == "success"
    summary = airflow_dags.xcom_values("hi_stow_test_store", run.run_id, "store")[-1]
    files = len(sample.instances)
    assert summary["counts"] == {
        "stored": files,
        "stored_with_warning": 0,
        "failed": 0,
        "rejected": 0,
        "unconfirmed": 0,
    }
    assert summary["datastore_id"] == emulator.datastore_id
    assert summary["files"] == files
    assert summary["bytes_stored"] == sample.total_bytes
    assert summary["studies"] == len(sample.study_uids)
    assert summary["resumed"] == 0
    assert summary["manifest"] == str(
        location / "dag_id=hi_stow_test_store" / f"run_id={run.run_id}" / "task_id=store" / "map_index=-1"
        / "manifest.jsonl"
    )  # fmt: skip
    assert len(json.dumps(summary)) < 4000

    manifest = manifest_at(summary["manifest"])
    assert set(manifest) == {str(i.path) for i in sample.instances}
    assert all(r.outcome is Outcome.STORED and r.retrieve_url for r in manifest.values())
    assert emulator.stats()["instances"] == {"received": files, "stored": files, "failed": 0}

    # the per-study image sets of the summary are the emulator's (one per series here: no conflicts)
    image_sets = emulator.image_sets()
    assert sorted(summary["image_sets"]) == sample.study_uids
    assert sorted(i for ids in summary["image_sets"].values() for i in ids) == sorted(
        s["imageSetId"] for s in image_sets
    )
    assert summary["non_primary_image_sets"] == []
    study_of = {s["imageSetId"]: s["studyInstanceUID"] for s in image_sets}
    for study, ids in summary["image_sets"].items():
        assert {study_of[image_set_id] for image_set_id in ids} == {study}
    link = airflow_dags.xcom_values("hi_stow_test_store", run.run_id, "store", "_link_HealthImagingDatastoreLink")
    # against the emulator, the link opens the emulator's page of the data store (its image sets)
    assert link[-1] == f"{emulator.url}/_emulator/datastores/{emulator.datastore_id}"
    page = requests.get(link[-1], timeout=30).text
    assert emulator.datastore_id in page
    assert f"{len(image_sets)} image set(s), {len(image_sets)} primary" in page


def test_a_throttled_service_gets_every_instance_once(
    emulator: RunningEmulator, sample: SampleSet, monkeypatch: pytest.MonkeyPatch
) -> None:
    """HealthImaging-like throttle: 3 requests/s answered 429 beyond (no Retry-After). The AIMD controller
    slows the task down to the quota; the run succeeds and each instance reached the service once."""
    emulator.set_faults(throttle_rps=3)
    operator_args(monkeypatch, emulator, source=[str(sample.root)], max_batch_instances=2, max_connections=4)
    run = airflow_dags.run_dag("hi_stow_test_store", a_moment())
    assert run.state == "success"
    summary = airflow_dags.xcom_values("hi_stow_test_store", run.run_id, "store")[-1]
    files = len(sample.instances)
    assert summary["counts"]["stored"] == files
    stats = emulator.stats()
    assert stats["instances"] == {"received": files, "stored": files, "failed": 0}
    assert stats["index"]["instances"] == files
    assert stats["responses"]["429"] == summary["throttled"] > 0
    assert summary["throttle_events"] >= 1
    assert summary["requests"] == stats["operations"]["StoreDICOM"]  # the 429s are counted as faults


def test_dropped_connections_and_server_errors_are_retried(
    emulator: RunningEmulator, sample: SampleSet, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A quarter of the requests answered 429/503 with Retry-After, a fifth of them cut off mid-body: every
    instance is still stored, and none twice."""
    emulator.set_faults(error_rate=0.25, drop_rate=0.2)
    operator_args(monkeypatch, emulator, source=[str(sample.root)], max_batch_instances=4)
    run = airflow_dags.run_dag("hi_stow_test_store", a_moment())
    assert run.state == "success"
    summary = airflow_dags.xcom_values("hi_stow_test_store", run.run_id, "store")[-1]
    files = len(sample.instances)
    assert summary["counts"]["stored"] == files
    stats = emulator.stats()
    assert stats["faults"]["error"] >= 1
    assert stats["faults"]["drop"] >= 1
    assert stats["instances"] == {"received": files, "stored": files, "failed": 0}
    assert stats["index"]["instances"] == files


def wait_for(condition: Any, what: str, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def settled_count(emulator: RunningEmulator, quiet: float = 1.0) -> int:
    """The emulator's count of received instances, once it has not changed for ``quiet`` seconds."""
    count = emulator.stats()["instances"]["received"]
    while True:
        time.sleep(quiet)
        again = emulator.stats()["instances"]["received"]
        if again == count:
            return int(count)
        count = again


@pytest.fixture
def killable() -> Iterator[list[Any]]:
    processes: list[Any] = []
    yield processes
    for process in processes:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def test_a_run_killed_mid_way_and_retried_uploads_only_what_was_not_confirmed(
    emulator: RunningEmulator,
    sample: SampleSet,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    killable: list[Any],
) -> None:
    batch, connections = 3, 2
    location = operator_args(
        monkeypatch,
        emulator,
        source=[str(sample.root)],
        manifest_location=str(tmp_path / "manifests"),
        max_batch_instances=batch,
        max_connections=connections,
    )
    emulator.set_faults(slow_rate=1.0, slow_seconds=0.4)  # every response is held back: requests stay in flight
    run_after = a_moment()
    worker = airflow_dags.child_process("hi_stow_test_store", run_after, tmp_path / "worker.log")
    killable.append(worker)

    def confirmed() -> int:
        found = list(location.glob("dag_id=*/run_id=*/task_id=store/map_index=-1/ledger.jsonl"))
        return len(found[0].read_text().splitlines()) if found else 0

    wait_for(lambda: confirmed() >= 2 * batch, "two confirmed requests")
    os.killpg(worker.pid, signal.SIGKILL)  # the worker dies mid-run, as on an OOM kill or a lost node
    worker.wait()
    emulator.clear_faults()
    files = len(sample.instances)
    confirmed_before = confirmed()
    received_before = settled_count(emulator)  # requests whose bodies arrived before the kill may still be stored
    assert 2 * batch <= confirmed_before < files
    # re-uploads are bounded by the requests in flight at the kill
    assert received_before - confirmed_before <= connections * batch
    (records,) = location.glob("dag_id=*/run_id=*/task_id=store/map_index=-1")
    assert not (records / "manifest.jsonl").exists()  # the killed try never finished

    run = airflow_dags.run_dag("hi_stow_test_store", run_after)  # the same run id: a retry of the killed try
    assert run.state == "success"
    summary = airflow_dags.xcom_values("hi_stow_test_store", run.run_id, "store")[-1]
    assert summary["counts"]["stored"] == files
    assert summary["resumed"] == confirmed_before
    received_after = emulator.stats()["instances"]["received"]
    assert received_after - received_before == files - confirmed_before  # only what was not confirmed
    assert emulator.stats()["index"]["instances"] == files
    stored = {s.sop_instance_uid for s in sample.instances}
    listed = {r.sop_instance_uid for r in manifest_at(summary["manifest"]).values() if r.outcome.is_stored}
    assert listed == stored
    assert len((records / "tries.jsonl").read_text().splitlines()) == 2


def test_airflow_retries_a_failed_try_and_the_retry_sends_only_what_was_not_confirmed(
    emulator: RunningEmulator, sample: SampleSet, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Airflow's own retry (``retries=1``): the first request of the first try meets 503 on every attempt, so its
    files end unconfirmed and the try fails after storing the rest; the scheduler's retry (try 2, same run and
    ledger) sends only those files."""
    batch = 4
    location = operator_args(
        monkeypatch,
        emulator,
        source=[str(sample.root)],
        manifest_location=str(tmp_path / "manifests"),
        max_batch_instances=batch,
        max_connections=1,
        retries=1,
        retry_delay=0,
    )
    attempts = RetryPolicy().max_attempts
    emulator.set_faults(error_rate=1.0, error_statuses=[503], retry_after=0, max_faults=attempts)
    run = airflow_dags.run_dag("hi_stow_test_store", a_moment())
    assert run.state == "success"
    (store,) = run.get_task_instances()
    assert store.try_number == 2
    files = len(sample.instances)
    summary = airflow_dags.xcom_values("hi_stow_test_store", run.run_id, "store")[-1]
    assert summary["counts"]["stored"] == files
    assert summary["resumed"] == files - batch  # the retry found everything else confirmed by the failed try
    stats = emulator.stats()
    assert stats["faults"]["error"] == attempts
    assert stats["instances"] == {"received": files, "stored": files, "failed": 0}  # none sent twice
    (records,) = location.glob(f"dag_id=hi_stow_test_store/run_id={run.run_id}/task_id=store/map_index=-1")
    first, second = (json.loads(line) for line in (records / "tries.jsonl").read_text().splitlines())
    assert (first["files"], first["in_ledger"]) == (files, 0)
    assert (second["files"], second["in_ledger"]) == (files, files - batch)


def mixed_input(sample: SampleSet) -> dict[str, Path]:
    bad = {
        "not_dicom": sample.root / "notes.txt",
        "truncated": sample.root / "truncated.dcm",
    }
    bad["not_dicom"].write_text("not an image")
    bad["truncated"].write_bytes(sample.instances[0].path.read_bytes()[:400])
    return bad


def test_mixed_bad_input_is_reported_and_the_rest_stored(
    emulator: RunningEmulator, sample: SampleSet, monkeypatch: pytest.MonkeyPatch
) -> None:
    study = sample.study_uids[0]
    bad = mixed_input(sample)
    files = [str(path) for path in sorted(sample.root.rglob("*")) if path.is_file()]  # an upstream task's list
    operator_args(monkeypatch, emulator, source=files, study_instance_uid=study)
    run = airflow_dags.run_dag("hi_stow_test_xcom", a_moment())
    assert run.state == "success"  # rejected inputs are reported; by default they do not fail the task
    summary = airflow_dags.xcom_values("hi_stow_test_xcom", run.run_id, "store")[-1]
    in_study = [i for i in sample.instances if i.study_instance_uid == study]
    other = [i for i in sample.instances if i.study_instance_uid != study]
    assert summary["counts"]["stored"] == len(in_study)
    assert summary["counts"]["rejected"] == len(other) + 2
    manifest = manifest_at(summary["manifest"])
    assert manifest[str(bad["not_dicom"])].reason == "not a DICOM P10 file (no 128-byte preamble and 'DICM' prefix)"
    assert manifest[str(bad["truncated"])].outcome is Outcome.REJECTED
    assert manifest[str(bad["truncated"])].reason
    for instance in other:
        assert manifest[str(instance.path)].reason == (
            "StudyInstanceUID differs from the study of this StoreDICOMStudy request"
        )
    reasons = {(r["outcome"], r["reason"]): r["count"] for r in summary["top_reasons"]}
    assert reasons[("rejected", "StudyInstanceUID differs from the study of this StoreDICOMStudy request")] == len(
        other
    )
    assert emulator.stats()["instances"] == {"received": len(in_study), "stored": len(in_study), "failed": 0}


def test_the_failure_policy_fails_the_task_after_storing_what_it_could(
    emulator: RunningEmulator, sample: SampleSet, monkeypatch: pytest.MonkeyPatch
) -> None:
    mixed_input(sample)
    location = operator_args(monkeypatch, emulator, source=[str(sample.root)], fail_on=["failed", "rejected"])
    run = airflow_dags.run_dag("hi_stow_test_store", a_moment())
    assert run.state == "failed"
    assert airflow_dags.xcom_values("hi_stow_test_store", run.run_id, "store") == {}
    files = len(sample.instances)
    assert emulator.stats()["instances"]["stored"] == files  # every good file was stored before failing
    (manifest,) = location.glob(
        f"dag_id=hi_stow_test_store/run_id={run.run_id}/task_id=store/map_index=-1/manifest.jsonl"
    )
    outcomes = [r.outcome for r in manifest_at(str(manifest)).values()]
    assert outcomes.count(Outcome.STORED) == files
    assert outcomes.count(Outcome.REJECTED) == 2


@pytest.mark.compat
def test_a_mapped_import_from_s3(
    emulator: RunningEmulator, sample: SampleSet, monkeypatch: pytest.MonkeyPatch, moto_s3: MotoS3
) -> None:
    """PartitionDicomOperator splits an S3 prefix into shards of whole studies; StoreDicomOperator is mapped over
    them, streams the objects from S3, and keeps each mapped instance's manifest and ledger in S3."""
    uris = moto_s3.upload_tree(sample.root, "incoming")
    monkeypatch.setenv("AIRFLOW_CONN_AWS_DEFAULT", moto_s3.connection_json())  # PartitionDicomOperator's S3
    monkeypatch.setenv("AIRFLOW_CONN_MOTO_S3", moto_s3.connection_json())
    base = f"s3://{moto_s3.bucket}/records"
    operator_args(
        monkeypatch,
        emulator,
        source=f"s3://{moto_s3.bucket}/incoming/",
        max_shards=3,
        s3_conn_id="moto_s3",
        manifest_location=base,
        per_study=True,
    )
    run = airflow_dags.run_dag("hi_stow_test_mapped", a_moment())
    assert run.state == "success"
    listed = airflow_dags.xcom_values("hi_stow_test_mapped", run.run_id, "partition")[-1]
    assert len(listed) == 3
    assert len(json.dumps(listed)) < 1000  # file lists, not the files: the XCom does not grow with the file count
    shards = [read_file_list(Path(item["manifest"]).read_bytes()) for item in listed]
    assert [item["files"] for item in listed] == [len(shard) for shard in shards]
    assert sorted(uri for shard in shards for uri in shard) == sorted(uris)
    summaries = airflow_dags.xcom_values("hi_stow_test_mapped", run.run_id, "store")
    assert sorted(summaries) == [0, 1, 2]
    assert sum(s["counts"]["stored"] for s in summaries.values()) == len(uris)
    assert sum(s["studies"] for s in summaries.values()) == len(sample.study_uids)  # no study in two shards
    client = moto_s3.client()
    for index, summary in summaries.items():
        prefix = f"records/dag_id=hi_stow_test_mapped/run_id={run.run_id}/task_id=store/map_index={index}"
        assert summary["manifest"] == f"s3://{moto_s3.bucket}/{prefix}/manifest.jsonl"
        body = client.get_object(Bucket=moto_s3.bucket, Key=f"{prefix}/manifest.jsonl")["Body"].read()
        assert {r.source for r in read_manifest(body.decode().splitlines())} == set(shards[index])
    assert emulator.stats()["instances"]["received"] == len(uris)
    assert emulator.stats()["operations"]["StoreDICOMStudy"] >= len(sample.study_uids)
