"""A full disk or a read-only destination, for the de-identified outputs, the quarantines and the records: a clear
error naming the place and why, nothing listed or reported that was not written or stored, no half-written file
left, and a retry that succeeds once there is room."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydicom import dcmread

from airflow_hi_stow.engine.deidentify import deidentify_source
from airflow_hi_stow.engine.importer import ImportSettings, run_import
from airflow_hi_stow.samples import write_bad_files
from airflow_hi_stow.sources.resolve import resolve_sources
from airflow_hi_stow.storage.files import Unwritable, is_partial
from airflow_hi_stow.storage.locations import LocalLocation
from airflow_hi_stow.testing import RunningEmulator, start_emulator
from airflow_hi_stow.validate import ValidationSettings, validate_files
from airflow_hi_stow.validate.runner import QuarantineFailed
from tests.emulator.conftest import stow_client
from tests.support.filesystems import fill, read_only_directory, small_filesystem
from tests.support.s3 import MotoS3
from tests.support.tiny_dicom import write_tiny_instances

KEY = "unwritable-test-key-" + "u" * 40
NO_SPACE = "No space left on device"
READ_ONLY = "Read-only file system"


@pytest.fixture
def source(tmp_path: Path) -> Path:
    files = write_tiny_instances(tmp_path / "in", 60, studies=2)
    write_bad_files(tmp_path / "in", files[0].path)
    return tmp_path / "in"


def partials(root: Path) -> list[Path]:
    return [path for path in root.rglob("*") if is_partial(path.name)]


def test_deidentified_outputs_on_a_full_disk_fail_the_run_naming_it_and_list_nothing(
    source: Path, tmp_path: Path
) -> None:
    records = tmp_path / "records"
    with small_filesystem(tmp_path / "full", "96k") as disk:
        destination = disk / "deidentified"
        with pytest.raises(Unwritable) as raised:
            deidentify_source(str(source), str(destination), KEY, records=LocalLocation(records),
                              quarantine=str(tmp_path / "held"), workers=1)  # fmt: skip
        message = str(raised.value)
        assert message.startswith(f"cannot write {destination}/")
        assert NO_SPACE in message
        assert message.endswith("no list of outputs was written")
        assert not (records / "deidentified.jsonl").exists()  # the next step has no source to take
        written = [path for path in destination.rglob("*.dcm")]
        assert written  # some fitted: each is whole
        assert all(dcmread(path).SOPInstanceUID for path in written)
        assert partials(disk) == []
    retried = deidentify_source(str(source), str(tmp_path / "roomy"), KEY, records=LocalLocation(records),
                                quarantine=str(tmp_path / "held"), workers=1)  # fmt: skip
    assert retried["counts"]["inputs"] == retried["counts"]["deidentified"] + retried["counts"]["quarantined"] == 63


def test_a_read_only_quarantine_fails_the_de_identification_naming_it(source: Path, tmp_path: Path) -> None:
    with read_only_directory(tmp_path / "read-only") as held, pytest.raises(Unwritable) as raised:
        deidentify_source(str(source), str(tmp_path / "out"), KEY, records=LocalLocation(tmp_path / "records"),
                          quarantine=str(held / "quarantine"), workers=1)  # fmt: skip
    assert str(raised.value).startswith(f"cannot write {held / 'quarantine'}")
    assert not (tmp_path / "records" / "deidentified.jsonl").exists()


def test_a_de_identification_into_a_bucket_that_takes_nothing_fails_naming_it(
    source: Path, tmp_path: Path, moto_s3: MotoS3
) -> None:
    with pytest.raises(OSError, match=r"could not be written to s3://no-such-bucket-here/out \(NoSuchBucket\)"):
        deidentify_source(str(source), "s3://no-such-bucket-here/out", KEY, records=LocalLocation(tmp_path / "r"),
                          quarantine=str(tmp_path / "held"), s3_client=moto_s3.client, workers=1)  # fmt: skip
    assert not (tmp_path / "r" / "deidentified.jsonl").exists()


def test_a_full_validation_quarantine_is_reported_after_the_run_and_nothing_bad_passes(
    source: Path, tmp_path: Path
) -> None:
    with small_filesystem(tmp_path / "full", "64k") as disk:
        fill(disk)
        with pytest.raises(QuarantineFailed) as raised:
            validate_files(resolve_sources(str(source)), quarantine=LocalLocation(disk / "quarantine"),
                           output=LocalLocation(tmp_path / "records"), settings=ValidationSettings.of({}))  # fmt: skip
        assert partials(disk) == []
    message = str(raised.value)
    assert f"could not be quarantined in {disk / 'quarantine'}" in message
    assert NO_SPACE in message
    run = raised.value.run
    good = (tmp_path / "records" / "good.jsonl").read_text()
    bad = {outcome.source for outcome in run.quarantined}
    assert len(bad) == 3
    assert not any(name in good for name in bad)  # the files it could not quarantine are not passed on either
    report = json.loads((tmp_path / "records" / "report.json").read_text())
    assert report["summary"]["quarantined"] == 3


@pytest.fixture
def emulator(tmp_path: Path) -> Iterator[RunningEmulator]:
    with start_emulator(tmp_path / "emulator") as running:
        yield running


def test_a_read_only_manifest_location_stops_the_store_before_anything_is_sent(
    source: Path, tmp_path: Path, emulator: RunningEmulator
) -> None:
    with read_only_directory(tmp_path / "read-only") as place, pytest.raises(Unwritable) as raised:
        run_import(str(source), client=stow_client(emulator), location=LocalLocation(place / "records"))
    assert str(raised.value) == f"cannot write {place / 'records'} ({READ_ONLY})"  # the manifest's folder
    assert emulator.stats().get("instances", {}).get("received", 0) == 0


def test_a_manifest_location_that_fills_up_mid_run_fails_the_task_and_its_retry_sends_everything(
    source: Path, tmp_path: Path, emulator: RunningEmulator, caplog: pytest.LogCaptureFixture
) -> None:
    """The ledger's appends fail (warned and counted: those files would be sent again), then the manifest: the
    task fails without a summary, so nothing is reported stored; once there is room, the retry stores everything
    again (HealthImaging keeps one copy)."""
    settings = ImportSettings(max_batch_instances=10)
    with small_filesystem(tmp_path / "full", "256k") as disk:
        records = LocalLocation(disk / "records")
        records.append_lines("tries", ["{}"])  # the try's first record fits...
        fill(disk)  # ...then nothing more
        with pytest.raises(Unwritable, match=rf"cannot write {disk / 'records'}/manifest.jsonl \({NO_SPACE}\)"):
            run_import(str(source), client=stow_client(emulator), location=records, settings=settings)
        assert "could not record" in caplog.text
        assert NO_SPACE in caplog.text
        assert emulator.stats()["instances"]["stored"] == 60
        assert partials(disk) == []
        (disk / "filler").unlink()
        summary = run_import(str(source), client=stow_client(emulator), location=records, settings=settings)
    assert (summary["counts"]["stored"], summary["counts"]["rejected"], summary["resumed"]) == (60, 3, 0)
    assert emulator.stats()["index"]["instances"] == 60
