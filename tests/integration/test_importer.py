"""The Airflow-free import engine against real servers: Orthanc (a third-party STOW-RS server) for the normal
paths, and a scripted loopback server for refusals and throttling."""

from __future__ import annotations

import email.parser
import email.policy
import io
import json
import logging
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from pydicom import dcmread

from airflow_hi_stow import cli
from airflow_hi_stow.core.results import InstanceResult, Outcome
from airflow_hi_stow.core.store_response import ReferencedInstance, build_store_response
from airflow_hi_stow.engine.importer import ImportSettings, run_import
from airflow_hi_stow.engine.ledger import read_manifest
from airflow_hi_stow.hooks.dicomweb import DicomWebStowHook
from airflow_hi_stow.samples import SampleSet, generate_dataset
from airflow_hi_stow.sources.instances import HEADER_BLOCK
from airflow_hi_stow.storage.locations import LocalLocation, open_location
from airflow_hi_stow.transport.client import StowClient
from airflow_hi_stow.transport.retry import RetryPolicy
from airflow_hi_stow.transport.session import HttpSettings
from tests.support.orthanc import Orthanc
from tests.support.s3 import MotoS3
from tests.support.scripted_server import Recorded, Reply, replying_server, scripted_server

FAST_RETRY = RetryPolicy(max_attempts=3, base_delay=0.01, max_delay=0.02)


@pytest.fixture
def sample(tmp_path: Path) -> SampleSet:
    return generate_dataset(
        tmp_path / "set",
        patients=3,
        studies_per_patient=(1, 1),
        series_per_study=(2, 2),
        instances_per_series=(4, 6),
        redeliver_one_study=False,
    )


def client_for(url: str, retry: RetryPolicy = FAST_RETRY) -> StowClient:
    return StowClient(url, http=HttpSettings(max_connections=4), retry=retry)


def manifest_of(summary: dict[str, Any]) -> dict[str, InstanceResult]:
    lines = Path(summary["manifest"]).read_text().splitlines()
    results = list(read_manifest(lines))
    assert len(results) == len(lines) == summary["files"]
    return {result.source: result for result in results}


def test_a_directory_of_studies_is_stored_with_summary_manifest_and_ledger(
    orthanc: Orthanc, sample: SampleSet, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    location = LocalLocation(tmp_path / "run")
    settings = ImportSettings(max_batch_instances=5, max_connections=3)
    with caplog.at_level(logging.INFO):
        summary = run_import(
            str(sample.root), client=client_for(orthanc.dicomweb_url), location=location, settings=settings
        )
    files = len(sample.instances)
    assert summary["counts"] == {
        "stored": files,
        "stored_with_warning": 0,
        "failed": 0,
        "rejected": 0,
        "unconfirmed": 0,
    }
    assert summary["bytes_stored"] == sample.total_bytes
    assert summary["bytes_sent"] > sample.total_bytes
    assert summary["studies"] == 3
    assert summary["resumed"] == 0
    series_sizes = {s: sum(i.series_instance_uid == s for i in sample.instances) for s in sample.series_uids}
    per_study = {
        study: sum(n for s, n in series_sizes.items() if any(i.series_instance_uid == s for i in sample.instances
                                                               if i.study_instance_uid == study))
        for study in sample.study_uids
    }  # fmt: skip
    assert summary["requests"] == sum(-(-n // 5) for n in per_study.values())  # batches never mix studies
    assert json.loads(json.dumps(summary)) == summary
    manifest = manifest_of(summary)
    assert set(manifest) == {str(i.path) for i in sample.instances}
    assert all(result.outcome is Outcome.STORED and result.retrieve_url for result in manifest.values())
    assert len(orthanc.instance_ids()) == files
    ledger = [json.loads(line) for line in location.read_lines("ledger")]
    assert len(ledger) == files
    assert all(entry["fingerprint"].startswith("xxh3-128:") for entry in ledger)
    assert len(list(location.read_lines("tries"))) == 1
    messages = [record.getMessage() for record in caplog.records]
    assert any(m.startswith("sending ") for m in messages)
    assert any(m.startswith("progress: ") for m in messages)
    assert not any("DEMO^" in m or "DEMO-0" in m for m in messages)  # no patient data in the log


def test_a_second_try_sends_only_what_is_not_confirmed(orthanc: Orthanc, sample: SampleSet, tmp_path: Path) -> None:
    location = LocalLocation(tmp_path / "run")
    first_half = [str(i.path) for i in sample.instances[: len(sample.instances) // 2]]
    first = run_import(first_half, client=client_for(orthanc.dicomweb_url), location=location)
    assert first["counts"]["stored"] == len(first_half)
    changed = sample.instances[0].path  # rewritten in place: same size and SOP Instance UID, other content
    data = bytearray(changed.read_bytes())
    data[-1] ^= 0xFF
    changed.write_bytes(bytes(data))

    second = run_import(str(sample.root), client=client_for(orthanc.dicomweb_url), location=location)
    assert second["counts"]["stored"] == len(sample.instances)
    assert second["resumed"] == len(first_half) - 1
    manifest = manifest_of(second)
    resumed = {line["source"] for line in map(json.loads, Path(second["manifest"]).read_text().splitlines())
               if line.get("resumed")}  # fmt: skip
    assert resumed == set(first_half) - {str(changed)}
    assert manifest[str(changed)].outcome is Outcome.STORED
    assert second["bytes_stored"] == sample.total_bytes
    assert second["bytes_sent"] < sample.total_bytes * 0.8  # the resumed half was not sent again

    third = run_import(
        str(sample.root), client=client_for(orthanc.dicomweb_url), location=location,
        settings=ImportSettings(resume=False),
    )  # fmt: skip
    assert third["resumed"] == 0
    assert third["bytes_sent"] > sample.total_bytes


def test_mixed_bad_input_is_reported_and_the_rest_stored(orthanc: Orthanc, sample: SampleSet, tmp_path: Path) -> None:
    study = sample.study_uids[0]
    not_dicom = sample.root / "notes.txt"
    not_dicom.write_text("not an image")
    truncated = sample.root / "truncated.dcm"
    truncated.write_bytes(sample.instances[0].path.read_bytes()[:300])
    empty = sample.root / "empty.dcm"
    empty.write_bytes(b"")
    summary = run_import(
        [str(sample.root), str(tmp_path / "absent.dcm")],
        client=client_for(orthanc.dicomweb_url),
        location=LocalLocation(tmp_path / "run"),
        settings=ImportSettings(study_instance_uid=study),
    )
    manifest = manifest_of(summary)
    in_study = [i for i in sample.instances if i.study_instance_uid == study]
    assert summary["counts"]["stored"] == len(in_study)
    assert summary["counts"]["rejected"] == len(sample.instances) - len(in_study) + 4
    reasons = {source: result.reason for source, result in manifest.items() if result.outcome is Outcome.REJECTED}
    assert reasons[str(not_dicom)] == "not a DICOM P10 file (no 128-byte preamble and 'DICM' prefix)"
    assert reasons[str(truncated)] == "missing (0008,0016) SOPClassUID"  # cut short within the header
    assert reasons[str(empty)] == "empty file"
    assert reasons[str(tmp_path / "absent.dcm")] == "no such file or directory"
    other = next(i for i in sample.instances if i.study_instance_uid != study)
    assert reasons[str(other.path)] == "StudyInstanceUID differs from the study of this StoreDICOMStudy request"
    assert len(orthanc.instance_ids()) == len(in_study)


def test_per_study_sends_store_dicom_study_requests(orthanc: Orthanc, sample: SampleSet, tmp_path: Path) -> None:
    summary = run_import(
        str(sample.root),
        client=client_for(orthanc.dicomweb_url),
        location=LocalLocation(tmp_path / "run"),
        settings=ImportSettings(per_study=True),
    )
    assert summary["counts"]["stored"] == len(sample.instances)
    urls = {result.retrieve_url for result in manifest_of(summary).values()}
    assert all(any(f"/studies/{study}/" in (url or "") for study in sample.study_uids) for url in urls)


def test_an_s3_source_and_an_s3_manifest(orthanc: Orthanc, sample: SampleSet, moto_s3: MotoS3) -> None:
    uris = moto_s3.upload_tree(sample.root, "incoming")
    base = f"s3://{moto_s3.bucket}/manifests"
    location = open_location(base, ["dag_id=d", "run_id=r", "task_id=t", "map_index=-1"], moto_s3.client)
    source_client = moto_s3.client()
    gets: list[str] = []
    source_client.meta.events.register("before-send.s3.GetObject", lambda request, **_: gets.append(request.url))
    summary = run_import(
        f"s3://{moto_s3.bucket}/incoming/",
        client=client_for(orthanc.dicomweb_url),
        location=location,
        s3_client=lambda: source_client,
    )
    assert summary["counts"]["stored"] == len(uris)
    # an object within one header block is fetched once: its header read is what is sent
    sizes = [instance.path.stat().st_size for instance in sample.instances]
    assert len(gets) == sum(1 if size <= HEADER_BLOCK else 2 for size in sizes)
    assert summary["manifest"] == f"{base}/dag_id=d/run_id=r/task_id=t/map_index=-1/manifest.jsonl"
    body = moto_s3.client().get_object(Bucket=moto_s3.bucket, Key=summary["manifest"].split("/", 3)[3])["Body"]
    assert {r.source for r in read_manifest(body.read().decode().splitlines())} == set(uris)
    ledger = [json.loads(line) for line in location.read_lines("ledger")]
    assert len(ledger) == len(uris)
    assert all(entry["fingerprint"].startswith("etag:") for entry in ledger)
    again = run_import(
        f"s3://{moto_s3.bucket}/incoming/",
        client=client_for(orthanc.dicomweb_url),
        location=open_location(base, ["dag_id=d", "run_id=r", "task_id=t", "map_index=-1"], moto_s3.client),
        s3_client=moto_s3.client,
    )
    assert (again["resumed"], again["requests"]) == (len(uris), 0)


def test_a_refused_data_store_stops_sending_and_reports_every_file(sample: SampleSet, tmp_path: Path) -> None:
    with scripted_server(lambda _: Reply(403, {"message": "no access"})) as server:
        summary = run_import(
            str(sample.root),
            client=client_for(server.url),
            location=LocalLocation(tmp_path / "run"),
            settings=ImportSettings(max_batch_instances=2, max_connections=1),
        )
        assert len(server.requests) == 1
    assert summary["counts"]["failed"] == len(sample.instances)
    reasons = {r["reason"]: r["count"] for r in summary["top_reasons"]}
    assert reasons["HTTP 403: no access"] == 2
    assert reasons["not sent: an earlier request failed with HTTP 403"] == len(sample.instances) - 2


def test_throttling_slows_the_sender_down(sample: SampleSet, tmp_path: Path) -> None:
    """The first six requests are answered 429: the controller cuts concurrency and paces; nothing is lost."""
    files = sample.instances[:12]

    def script(number: int) -> Reply:
        return Reply(429, headers={"Retry-After": "0"}) if number < 6 else Reply(200, {})

    # Seven attempts: even one batch that met all six 429s (its retries outrunning the next files' header reads
    # on a loaded machine) is stored, so the outcome does not depend on timing.
    with scripted_server(script) as server:
        summary = run_import(
            [str(i.path) for i in files],
            client=client_for(server.url, RetryPolicy(max_attempts=7, base_delay=0.01, max_delay=0.05)),
            location=LocalLocation(tmp_path / "run"),
            settings=ImportSettings(max_batch_instances=1, max_connections=4),
        )
    assert summary["files"] == len(files)
    assert summary["counts"]["unconfirmed"] == len(files), summary  # "{}" lists no instance: sent, not confirmed
    assert summary["throttled"] == 6
    assert summary["throttle_events"] >= 1


def test_headers_are_read_only_a_few_batches_ahead_of_sending(sample: SampleSet) -> None:
    """The header reader waits while twice max_connections batches are submitted and not done, so the content it
    keeps is sent soon: when it has read the last header, all but the last two batches are at the server."""
    received: list[int] = []

    class Plan:
        def info(self, msg: str, *args: Any) -> None:
            if msg.startswith("sending "):
                received.append(len(server.requests))

        warning = exception = info

    with replying_server(every_instance_stored) as server:
        summary = run_import(
            str(sample.root),
            client=client_for(server.url),
            settings=ImportSettings(max_batch_instances=1, max_connections=1),
            log=Plan(),
        )
    files = len(sample.instances)
    assert summary["counts"]["stored"] == files
    (at_plan,) = received
    assert at_plan >= files - 2


def every_instance_stored(request: Recorded) -> Reply:
    """A Store Instances Response listing every part of the request as stored."""
    head = f"Content-Type: {request.headers['Content-Type']}\r\n\r\n".encode()
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + request.body)
    uids = [
        str(dcmread(io.BytesIO(bytes(part.get_payload(decode=True)))).SOPInstanceUID) for part in message.iter_parts()
    ]
    return Reply(200, build_store_response(retrieve_url=None, referenced=[ReferencedInstance(u) for u in uids]))


def test_an_unwritable_ledger_never_aborts_the_import_and_the_manifest_is_written(
    sample: SampleSet, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    location = LocalLocation(tmp_path / "run")
    (tmp_path / "run" / "ledger.jsonl").mkdir(parents=True)  # every append to the ledger fails (IsADirectoryError)
    with replying_server(every_instance_stored) as server, caplog.at_level(logging.WARNING):
        summary = run_import(str(sample.root), client=client_for(server.url), location=location,
                             settings=ImportSettings(max_batch_instances=4))  # fmt: skip
    assert summary["counts"]["stored"] == len(sample.instances)
    assert summary["ledger_failures"] == summary["requests"]
    assert len(manifest_of(summary)) == len(sample.instances)
    assert "could not record" in caplog.text


def test_the_manifest_is_written_when_the_import_ends_in_an_error(sample: SampleSet, tmp_path: Path) -> None:
    def failing_lookup(studies: set[str]) -> dict[str, Any]:
        raise RuntimeError("the image set look-up broke")

    location = LocalLocation(tmp_path / "run")
    with replying_server(every_instance_stored) as server, pytest.raises(RuntimeError, match="look-up broke"):
        run_import(str(sample.root), client=client_for(server.url), location=location, image_sets=failing_lookup)
    lines = (tmp_path / "run" / "manifest.jsonl").read_text().splitlines()
    assert {r.outcome for r in read_manifest(lines)} == {Outcome.STORED}
    assert len(lines) == len(sample.instances)


def test_the_hook_path_runs_the_engine_in_parallel_one_study_per_request(
    sample: SampleSet, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``store_instances`` (hooks) and ``hi-stow store`` share the operator's engine: parallel connections, study
    grouping; the stage-1 hooks sent one request at a time and mixed studies."""
    in_flight, peak, lock = [0], [0], threading.Lock()

    def slow_reply(request: Recorded) -> Reply:
        with lock:
            in_flight[0] += 1
            peak[0] = max(peak[0], in_flight[0])
        time.sleep(0.2)
        with lock:
            in_flight[0] -= 1
        return every_instance_stored(request)

    monkeypatch.setenv("AIRFLOW_CONN_PACS", json.dumps({"conn_type": "dicomweb", "host": "http://placeholder"}))
    with replying_server(slow_reply) as server:
        monkeypatch.setenv("AIRFLOW_CONN_PACS", json.dumps({"conn_type": "dicomweb", "host": server.url}))
        result = DicomWebStowHook("pacs").store_instances(
            str(sample.root), settings=ImportSettings(max_batch_instances=5)
        )
        study_of = {str(i.path): i.study_instance_uid for i in sample.instances}
        assert result.all_stored
        assert [r.source for r in result.instances] == sorted(study_of)  # the source's order
        for request in server.requests:
            parts = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
                f"Content-Type: {request.headers['Content-Type']}\r\n\r\n".encode() + request.body
            )
            studies = {
                str(dcmread(io.BytesIO(bytes(p.get_payload(decode=True)))).StudyInstanceUID) for p in parts.iter_parts()
            }
            assert len(studies) == 1
    assert peak[0] > 1


def test_the_cli_resumes_from_its_manifest_directory(
    sample: SampleSet, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDCLI")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "cli-secret")
    args = ["store", str(sample.root), "--datastore-id", "d" * 32, "--region", "us-east-1", "--manifest-dir",
            str(tmp_path / "records"), "--quiet"]  # fmt: skip
    with replying_server(every_instance_stored) as server:
        assert cli.main([*args, "--endpoint-url", server.url]) == cli.EXIT_OK
        first = len(server.requests)
        assert cli.main([*args, "--endpoint-url", server.url]) == cli.EXIT_OK
        assert len(server.requests) == first  # everything was confirmed: nothing is sent again
    tries = (tmp_path / "records" / "tries.jsonl").read_text().splitlines()
    assert [json.loads(line)["in_ledger"] for line in tries] == [0, len(sample.instances)]
