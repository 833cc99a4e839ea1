"""``hi-stow store``: credentials from the standard AWS chain, a line per file, a summary, the exit status."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from airflow_hi_stow.cli import EXIT_NOT_ALL_STORED, EXIT_OK, EXIT_USAGE, main
from airflow_hi_stow.core.store_response import ReferencedInstance, build_store_response
from airflow_hi_stow.samples import SampleSet, generate_dataset
from tests.support.scripted_server import Reply, scripted_server

DATASTORE = "d9a2a515ab294163a2d2f4069eed584c"


@pytest.fixture
def sample(tmp_path: Path) -> SampleSet:
    return generate_dataset(tmp_path / "in", patients=1, studies_per_patient=(1, 1), series_per_study=(2, 2),
                            instances_per_series=(2, 2), redeliver_one_study=False)  # fmt: skip


@pytest.fixture(autouse=True)
def env_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDCLI")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "cli-secret")


def stored(sample: SampleSet) -> Reply:
    referenced = [ReferencedInstance(i.sop_instance_uid) for i in sample.instances]
    return Reply(200, build_store_response(retrieve_url=None, referenced=referenced))


def test_a_directory_is_stored_and_summarised(
    sample: SampleSet, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (sample.root / "README.txt").write_text("not DICOM")
    report = tmp_path / "report.json"
    with scripted_server(lambda _: stored(sample)) as server:
        status = main(["store", str(sample.root), "--datastore-id", DATASTORE, "--region", "us-east-1",
                       "--endpoint-url", server.url, "--json", str(report)])  # fmt: skip
    out = capsys.readouterr().out
    assert status == EXIT_NOT_ALL_STORED  # the README was not stored
    assert re.search(r"^rejected\s+\S*README.txt\s+not a DICOM P10 file", out, re.M)
    assert len(re.findall(r"^stored\s", out, re.M)) == 4
    assert "5 file(s): 4 stored, 0 stored with warning, 0 failed, 1 rejected, 0 unconfirmed" in out
    assert "in 1 request(s)" in out
    assert "AKIDCLI" in server.requests[0].headers["Authorization"]
    assert "cli-secret" not in out
    assert [item["outcome"] for item in json.loads(report.read_text())].count("stored") == 4


def test_all_stored_exits_zero(sample: SampleSet, capsys: pytest.CaptureFixture[str]) -> None:
    with scripted_server(lambda _: stored(sample)) as server:
        status = main(["store", *map(str, (i.path for i in sample.instances)), "--datastore-id", DATASTORE,
                       "--region", "us-east-1", "--endpoint-url", server.url, "--quiet",
                       "--study", sample.study_uids[0], "--payload-signing", "aws-chunked"])  # fmt: skip
    out = capsys.readouterr().out.splitlines()
    assert status == EXIT_OK
    assert out == [
        f"4 file(s): 4 stored, 0 stored with warning, 0 failed, 0 rejected, 0 unconfirmed; {out[0].split('; ')[1]}"
    ]
    assert server.requests[0].path == f"/datastore/{DATASTORE}/studies/{sample.study_uids[0]}"
    assert server.requests[0].headers["Content-Encoding"] == "aws-chunked"


def test_a_failed_request_is_reported_per_file(sample: SampleSet, capsys: pytest.CaptureFixture[str]) -> None:
    with scripted_server(lambda _: Reply(403, {"message": "User is not authorized"})) as server:
        status = main(["store", str(sample.root), "--datastore-id", DATASTORE, "--region", "us-east-1",
                       "--endpoint-url", server.url])  # fmt: skip
    out = capsys.readouterr().out
    assert status == EXIT_NOT_ALL_STORED
    assert len(re.findall(r"^failed\s+\S+\s+HTTP 403: User is not authorized$", out, re.M)) == 4


def test_missing_credentials_or_region_are_usage_errors(
    sample: SampleSet, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["store", str(sample.root), "--datastore-id", DATASTORE]) == EXIT_USAGE
    assert "no region" in capsys.readouterr().err
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    assert main(["store", str(sample.root), "--datastore-id", DATASTORE, "--region", "us-east-1"]) == EXIT_USAGE
    assert "no AWS credentials" in capsys.readouterr().err
