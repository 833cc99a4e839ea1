"""Conformance against a real third-party STOW-RS server: Orthanc with its DICOMweb plugin."""

from __future__ import annotations

import json
import warnings
from collections import Counter
from pathlib import Path

import pytest
from pydicom import dcmread

from airflow_hi_stow.core.results import Outcome
from airflow_hi_stow.engine.importer import ImportSettings, store_files
from airflow_hi_stow.hooks.dicomweb import DicomWebStowHook
from airflow_hi_stow.samples import generate_dataset
from airflow_hi_stow.sources.instances import to_instance
from airflow_hi_stow.transport.client import StowClient
from airflow_hi_stow.transport.errors import StowHTTPError
from tests.support.orthanc import Orthanc

pytestmark = pytest.mark.orthanc


def hook_for(orthanc: Orthanc, monkeypatch: pytest.MonkeyPatch, **extra: object) -> DicomWebStowHook:
    monkeypatch.setenv(
        "AIRFLOW_CONN_ORTHANC", json.dumps({"conn_type": "http", "host": orthanc.dicomweb_url, "extra": extra})
    )
    return DicomWebStowHook(http_conn_id="orthanc")


def test_pydicom_test_files_arrive_byte_identical(
    orthanc: Orthanc, pydicom_p10_files: list[Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    result = hook_for(orthanc, monkeypatch).store_instances(
        pydicom_p10_files, settings=ImportSettings(max_batch_instances=8)
    )
    assert result.counts()["stored"] == len(pydicom_p10_files)
    assert {request.status_code for request in result.requests} == {200}
    per_study = Counter(to_instance(path).study_instance_uid for path in pydicom_p10_files)
    assert len(result.requests) == sum(-(-count // 8) for count in per_study.values())  # requests never mix studies
    for item in result.instances:
        assert item.sop_instance_uid is not None
        instance_id = orthanc.instance_id(item.sop_instance_uid)
        assert instance_id is not None, item.source
        assert orthanc.instance_file(instance_id) == Path(item.source).read_bytes(), item.source
        assert item.retrieve_url
        assert item.sop_instance_uid in item.retrieve_url


def test_a_generated_study_is_stored_through_store_dicom_study(
    orthanc: Orthanc, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sample = generate_dataset(tmp_path / "set", patients=1, studies_per_patient=(1, 1), redeliver_one_study=False)
    study = sample.study_uids[0]
    result = hook_for(orthanc, monkeypatch).store_instances([i.path for i in sample.instances], study)
    assert result.all_stored
    assert len(result.instances) == len(sample.instances)
    series = orthanc.get(f"/dicom-web/studies/{study}/series")
    assert sorted(item["0020000E"]["Value"][0] for item in series) == sample.series_uids


def test_mixed_bad_input_is_reported_per_file(
    orthanc: Orthanc, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sample = generate_dataset(tmp_path / "set", patients=2, studies_per_patient=(1, 1), redeliver_one_study=False)
    first_study = sample.instances[0].study_instance_uid
    of_first = [i.path for i in sample.instances if i.study_instance_uid == first_study]
    other = next(i.path for i in sample.instances if i.study_instance_uid != first_study)
    not_dicom = tmp_path / "notes.txt"
    not_dicom.write_text("not an image")
    truncated = tmp_path / "truncated.dcm"
    truncated.write_bytes(of_first[0].read_bytes()[:200])
    result = hook_for(orthanc, monkeypatch).store_instances([*of_first, other, not_dicom, truncated], first_study)
    by_source = {item.source: item for item in result.instances}
    assert all(by_source[str(path)].outcome is Outcome.STORED for path in of_first)
    assert by_source[str(other)].outcome is Outcome.REJECTED
    assert "StudyInstanceUID differs" in (by_source[str(other)].reason or "")
    assert by_source[str(not_dicom)].outcome is Outcome.REJECTED
    assert "not a DICOM P10 file" in (by_source[str(not_dicom)].reason or "")
    assert by_source[str(truncated)].outcome is Outcome.REJECTED
    assert orthanc.instance_id(sample.instances[0].sop_instance_uid) is not None
    assert len(orthanc.instance_ids()) == len(of_first)


def test_orthanc_refuses_single_part_and_the_client_falls_back_to_multipart(
    orthanc: Orthanc, pydicom_p10_files: list[Path]
) -> None:
    client = StowClient(orthanc.dicomweb_url, single_part=True)
    result = store_files(client, pydicom_p10_files[:1])
    assert result.all_stored
    assert client.sends_single_part is False


def test_a_study_conflict_answered_409_is_parsed_not_raised(orthanc: Orthanc, tmp_path: Path) -> None:
    """Orthanc answers 409 (with FailureReason 0110) for an instance posted to another study's URL. The client's
    own pre-send check would reject it, so this sends through store_batch, which trusts its caller."""
    sample = generate_dataset(tmp_path / "set", patients=2, studies_per_patient=(1, 1), redeliver_one_study=False)
    client = StowClient(orthanc.dicomweb_url)
    wrong_target = next(uid for uid in sample.study_uids if uid != sample.instances[0].study_instance_uid)
    result = client.store_batch([to_instance(sample.instances[0].path)], wrong_target)
    assert result.status_code == 409
    (item,) = result.instances
    assert item.outcome is Outcome.FAILED
    assert item.reason_code == 0x0110
    assert item.reason == "0110 (Processing failure)"


def test_http_errors_name_the_files(orthanc: Orthanc, pydicom_p10_files: list[Path]) -> None:
    client = StowClient(f"{orthanc.url}/no-such-root")
    with pytest.raises(StowHTTPError) as raised:
        store_files(client, pydicom_p10_files[:2])
    assert raised.value.status_code == 404
    # the two files are of two studies, so of two requests: the first refused one is raised, naming its file
    assert any(path.name in str(raised.value) for path in pydicom_p10_files[:2])


@pytest.fixture
def pydicom_p10_files() -> list[Path]:
    """pydicom's bundled test files that are well-formed DICOM P10 instances (pydicom reads them without a warning)
    with distinct SOP Instance UIDs."""
    import pydicom.data

    chosen: dict[str, Path] = {}
    for name in sorted((Path(pydicom.data.__file__).parent / "test_files").glob("*.dcm")):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error")
                dataset = dcmread(name, stop_before_pixels=True)
        except Exception:  # noqa: S112 - some test files are deliberately broken
            continue
        if not dataset.preamble or "StudyInstanceUID" not in dataset or "SeriesInstanceUID" not in dataset:
            continue
        uid = str(dataset.get("SOPInstanceUID", ""))
        if uid and uid not in chosen:
            chosen[uid] = name
    return sorted(chosen.values())
