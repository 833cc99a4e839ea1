"""The I/O around the de-identification library, without Airflow: S3 inputs copied ahead for worker processes,
an S3 destination that fails, places that overlap, and the ordered, bounded read-ahead."""

from __future__ import annotations

import tempfile
import threading
import time
from pathlib import Path

import pytest

from airflow_hi_stow.deid import runner
from airflow_hi_stow.engine.deidentify import deidentify_source
from airflow_hi_stow.sources.read_ahead import read_ahead
from airflow_hi_stow.storage.locations import LocalLocation
from tests.deid import synthetic
from tests.support.s3 import MotoS3

KEY = b"a de-identification key for the engine tests"


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("incoming")
    synthetic.write_study(root)
    return root


def test_s3_inputs_reach_worker_processes_as_staged_copies(
    study: Path, tmp_path: Path, moto_s3: MotoS3, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two deliveries of the study in S3, run by two worker processes (from 8 inputs, for the test): each object is
    copied locally ahead of its turn, de-identified by a worker, its output uploaded; no staged copy is left."""
    monkeypatch.setattr(runner, "PARALLEL_FROM", 8)
    moto_s3.upload_tree(study, "first")
    moto_s3.upload_tree(study, "again")
    staging = tmp_path / "staging"
    staging.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(staging))  # the documented override of the temporary directory
    bucket = f"s3://{moto_s3.bucket}"
    summary = deidentify_source(
        [f"{bucket}/first/", f"{bucket}/again/"],
        f"{bucket}/out",
        KEY,
        records=LocalLocation(tmp_path / "records"),
        s3_client=moto_s3.client,
        workers=2,
    )
    assert summary["counts"] == {"inputs": 12, "deidentified": 12, "quarantined": 0}
    assert (summary["files"], summary["outputs_written_twice"]) == (6, 6)  # one study, delivered twice
    listed = moto_s3.client().list_objects_v2(Bucket=moto_s3.bucket, Prefix="out/")["Contents"]
    assert sorted(f"{bucket}/{item['Key']}" for item in listed) == sorted(
        (tmp_path / "records" / "deidentified.jsonl").read_text().replace('"', "").split()
    )
    assert list(staging.iterdir()) == []  # the staging directory went with its copies


def test_an_s3_destination_that_cannot_be_written_fails_the_run_without_records(
    study: Path, tmp_path: Path, moto_s3: MotoS3
) -> None:
    records = tmp_path / "records"
    with pytest.raises(OSError, match=r"6 file\(s\) could not be written to s3://no-such-bucket/out \(NoSuchBucket\)"):
        deidentify_source(
            str(study),
            "s3://no-such-bucket/out",
            KEY,
            quarantine=str(tmp_path / "held"),
            records=LocalLocation(records),
            s3_client=moto_s3.client,
        )
    assert not records.exists()  # no file list naming outputs that are not there


@pytest.mark.parametrize(
    ("destination", "quarantine", "complaint"),
    [
        ("{src}/out", None, "the destination .* lies inside the source"),
        ("{tmp}/out", "{tmp}/out/held", "must not lie inside one another"),
        ("{tmp}/out", "{src}/held", "the quarantine .* lies inside the source"),
        ("{tmp}/records/out", None, "report_location must lie outside the destination"),
        ("s3://bucket", None, "whole bucket"),
    ],
)
def test_overlapping_places_are_refused_before_anything_is_written(
    study: Path, tmp_path: Path, destination: str, quarantine: str | None, complaint: str
) -> None:
    places = {"src": str(study), "tmp": str(tmp_path)}
    before = sorted(study.iterdir())
    with pytest.raises(ValueError, match=complaint):
        deidentify_source(
            [str(study / "*.dcm")],
            destination.format(**places),
            KEY,
            quarantine=quarantine.format(**places) if quarantine else None,
            records=LocalLocation(tmp_path / "records"),
        )
    assert sorted(study.iterdir()) == before
    assert list(tmp_path.iterdir()) == []


def test_read_ahead_keeps_order_and_its_budget() -> None:
    """Items are prepared in threads, yielded in order, never more than the budget of cost ahead."""
    lock = threading.Lock()
    started: list[int] = []
    consumed: list[int] = []
    ahead: list[int] = []

    def prepare(item: int) -> int:
        with lock:
            started.append(item)
            ahead.append(sum(1 for s in started if s not in consumed) * 10)
        time.sleep(0.002 * (item % 3))  # out-of-order completion
        return item * 2

    results = []
    for value in read_ahead(range(40), prepare, cost=lambda _: 10, threads=4, max_cost=50):
        consumed.append(value // 2)
        results.append(value)
    assert results == [item * 2 for item in range(40)]
    assert max(ahead) <= 50  # 5 items of cost 10 at most between preparation and consumption


def test_read_ahead_raises_a_failure_in_its_turn() -> None:
    def prepare(item: int) -> int:
        if item == 3:
            raise OSError("broken")
        return item

    results = read_ahead(range(10), prepare, cost=lambda _: 1)
    assert [next(results) for _ in range(3)] == [0, 1, 2]
    with pytest.raises(OSError, match="broken"):
        next(results)
