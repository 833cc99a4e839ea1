"""boto3's ``medical-imaging`` client against the emulator: data stores, and the image sets StoreDICOM made,
primary or not, as the client sees them on AWS."""

from __future__ import annotations

import gzip
import json
import time
from typing import Any

import pytest
from botocore.exceptions import ClientError
from pydicom import dcmread
from pydicom.data import get_testdata_file

from airflow_hi_stow.engine.importer import store_files
from airflow_hi_stow.hooks.healthimaging import HealthImagingStowHook
from airflow_hi_stow.samples import SampleSet
from airflow_hi_stow.testing import RunningEmulator
from airflow_hi_stow.transport.errors import StowNotFound
from tests.emulator.conftest import stow_client


def metadata(client: Any, datastore_id: str, image_set_id: str, **version: str) -> dict[str, Any]:
    response = client.get_image_set_metadata(datastoreId=datastore_id, imageSetId=image_set_id, **version)
    assert response["contentEncoding"] == "gzip"
    assert response["contentType"] == "application/json"
    document: dict[str, Any] = json.loads(gzip.decompress(response["imageSetMetadataBlob"].read()))
    return document


def search(client: Any, datastore_id: str, *filters: dict[str, Any]) -> list[dict[str, Any]]:
    criteria = {"filters": list(filters)} if filters else {}
    pages = client.get_paginator("search_image_sets").paginate(
        datastoreId=datastore_id, searchCriteria=criteria, PaginationConfig={"PageSize": 1}
    )
    return [summary for page in pages for summary in page["imageSetsMetadataSummaries"]]


def equal(name: str, value: Any) -> dict[str, Any]:
    return {"operator": "EQUAL", "values": [{name: value}]}


def test_boto3_creates_a_data_store_and_finds_the_image_sets_stored_into_it(
    healthimaging_emulator: RunningEmulator, sample: SampleSet
) -> None:
    emulator = healthimaging_emulator
    client = emulator.boto3_client()
    created = client.create_datastore(datastoreName="imports", clientToken="token-1")
    datastore_id = created["datastoreId"]
    assert created["datastoreStatus"] == "CREATING"
    assert client.create_datastore(datastoreName="imports", clientToken="token-1")["datastoreId"] == datastore_id
    other = client.create_datastore(datastoreName="other")["datastoreId"]  # boto3 fills in a clientToken
    assert other != datastore_id
    properties = client.get_datastore(datastoreId=datastore_id)["datastoreProperties"]
    assert properties["datastoreStatus"] == "ACTIVE"
    assert properties["datastoreName"] == "imports"
    assert properties["datastoreArn"].endswith(f":datastore/{datastore_id}")
    listed = [
        item["datastoreId"]
        for page in client.get_paginator("list_datastores").paginate(PaginationConfig={"PageSize": 1})
        for item in page["datastoreSummaries"]
    ]
    assert listed == [emulator.datastore_id, datastore_id, other]

    assert store_files(
        stow_client(emulator, datastore_id=datastore_id), [item.path for item in sample.instances]
    ).all_stored
    assert search(client, emulator.datastore_id) == []

    summaries = search(client, datastore_id, equal("DICOMStudyInstanceUID", sample.study_uids[0]))
    assert sorted(item["DICOMTags"]["DICOMSeriesInstanceUID"] for item in summaries) == sample.series_uids
    for summary in summaries:
        assert summary["isPrimary"] is True
        assert summary["version"] == 1
        tags = summary["DICOMTags"]
        assert tags["DICOMPatientId"] == "DEMO-0001"
        assert tags["DICOMPatientName"] == "DEMO^PATIENT01"
        assert tags["DICOMNumberOfStudyRelatedSeries"] == 2
        assert tags["DICOMNumberOfStudyRelatedInstances"] == len(sample.instances)
        image_set = client.get_image_set(datastoreId=datastore_id, imageSetId=summary["imageSetId"])
        assert image_set["isPrimary"] is True
        assert image_set["versionId"] == "1"
        assert image_set["imageSetState"] == "ACTIVE"
        document = metadata(client, datastore_id, summary["imageSetId"])
        ((series_uid, series),) = document["Study"]["Series"].items()
        assert series_uid == tags["DICOMSeriesInstanceUID"]
        expected = {item.sop_instance_uid for item in sample.instances if item.series_instance_uid == series_uid}
        assert set(series["Instances"]) == expected


def test_a_conflicting_second_upload_goes_to_non_primary_image_sets(
    healthimaging_emulator: RunningEmulator, sample: SampleSet
) -> None:
    emulator = healthimaging_emulator
    client = emulator.boto3_client()
    store_files(stow_client(emulator), [item.path for item in sample.instances])
    assert store_files(stow_client(emulator, "sha256"), [item.path for item in sample.redelivered]).all_stored

    non_primary = search(client, emulator.datastore_id, equal("isPrimary", False))
    primary = search(client, emulator.datastore_id, equal("isPrimary", True))
    assert len(non_primary) == len(primary) == 2
    assert {item["DICOMTags"]["DICOMPatientId"] for item in non_primary} == {"DEMO-0001-CORRECTED"}
    assert {item["DICOMTags"]["DICOMPatientId"] for item in primary} == {"DEMO-0001"}
    series = sample.redelivered[0].series_instance_uid
    both = search(client, emulator.datastore_id, equal("DICOMSeriesInstanceUID", series))
    assert sorted(item["isPrimary"] for item in both) == [False, True]
    by_primary = {item["isPrimary"]: item["imageSetId"] for item in both}
    assert client.get_image_set(datastoreId=emulator.datastore_id, imageSetId=by_primary[False])["isPrimary"] is False
    # What the demo compares to say which grouping element conflicted:
    patients = {
        flag: metadata(client, emulator.datastore_id, image_set_id)["Patient"]["DICOM"]["PatientID"]
        for flag, image_set_id in by_primary.items()
    }
    assert patients == {True: "DEMO-0001", False: "DEMO-0001-CORRECTED"}
    assert {tuple(item["conflicts"]) for item in emulator.image_sets() if not item["isPrimary"]} == {("PatientID",)}


def test_storing_an_instance_again_overwrites_it_and_makes_a_new_version(
    healthimaging_emulator: RunningEmulator, sample: SampleSet
) -> None:
    emulator = healthimaging_emulator
    client = emulator.boto3_client()
    first = sample.instances[0]
    store_files(stow_client(emulator), [first.path])
    store_files(stow_client(emulator), [first.path])
    (summary,) = search(client, emulator.datastore_id, equal("DICOMSeriesInstanceUID", first.series_instance_uid))
    image_set_id = summary["imageSetId"]
    assert summary["version"] == 2
    assert client.get_image_set(datastoreId=emulator.datastore_id, imageSetId=image_set_id)["versionId"] == "2"
    old = client.get_image_set(datastoreId=emulator.datastore_id, imageSetId=image_set_id, versionId="1")
    assert old["versionId"] == "1"
    versions = client.list_image_set_versions(datastoreId=emulator.datastore_id, imageSetId=image_set_id)
    assert [item["versionId"] for item in versions["imageSetPropertiesList"]] == ["2", "1"]
    document = metadata(client, emulator.datastore_id, image_set_id, versionId="2")
    assert list(document["Study"]["Series"][first.series_instance_uid]["Instances"]) == [first.sop_instance_uid]
    assert emulator.stats()["index"]["instances"] == 1


def test_metadata_keeps_private_attributes(healthimaging_emulator: RunningEmulator) -> None:
    ct_small = get_testdata_file("CT_small.dcm")
    assert ct_small is not None
    private = {
        f"{element.tag:08X}"
        for element in dcmread(ct_small, stop_before_pixels=True)
        if element.tag.is_private and element.VR not in ("OB", "OW", "UN")
    }
    assert len(private) > 100  # all but three binary values, which are left out of metadata documents
    assert store_files(stow_client(healthimaging_emulator), [ct_small]).all_stored
    client = healthimaging_emulator.boto3_client()
    (summary,) = search(client, healthimaging_emulator.datastore_id)
    document = metadata(client, healthimaging_emulator.datastore_id, summary["imageSetId"])
    ((instance,),) = [series["Instances"].values() for series in document["Study"]["Series"].values()]
    assert private <= set(instance["DICOM"])


def test_search_filters_sorting_and_dates(healthimaging_emulator: RunningEmulator, sample: SampleSet) -> None:
    emulator = healthimaging_emulator
    client = emulator.boto3_client()
    before = time.time() - 1
    store_files(stow_client(emulator), [item.path for item in sample.instances])
    found = search(
        client,
        emulator.datastore_id,
        equal("DICOMPatientId", "DEMO-0001"),
        {"operator": "BETWEEN", "values": [{"createdAt": before}, {"createdAt": time.time() + 1}]},
    )
    assert len(found) == 2
    assert search(client, emulator.datastore_id, equal("DICOMPatientId", "nobody")) == []
    study_date = found[0]["DICOMTags"]["DICOMStudyDate"]
    on_that_day = {
        "operator": "BETWEEN",
        "values": [{"DICOMStudyDateAndTime": {"DICOMStudyDate": study_date}}] * 2,
    }
    assert len(search(client, emulator.datastore_id, on_that_day)) == 2
    ascending = client.search_image_sets(
        datastoreId=emulator.datastore_id, searchCriteria={"sort": {"sortField": "createdAt", "sortOrder": "ASC"}}
    )
    created = [item["createdAt"] for item in ascending["imageSetsMetadataSummaries"]]
    assert created == sorted(created)
    with pytest.raises(ClientError) as raised:
        client.search_image_sets(
            datastoreId=emulator.datastore_id, searchCriteria={"filters": [equal("DICOMPatientId", "x")] * 3}
        )
    assert raised.value.response["Error"]["Code"] == "ValidationException"


def test_a_data_store_is_deleted_once_its_image_sets_are(
    healthimaging_emulator: RunningEmulator, sample: SampleSet
) -> None:
    emulator = healthimaging_emulator
    client = emulator.boto3_client()
    store_files(stow_client(emulator), [sample.instances[0].path])
    with pytest.raises(ClientError) as raised:
        client.delete_datastore(datastoreId=emulator.datastore_id)
    assert raised.value.response["Error"]["Code"] == "ConflictException"
    for summary in search(client, emulator.datastore_id):
        deleted = client.delete_image_set(datastoreId=emulator.datastore_id, imageSetId=summary["imageSetId"])
        assert deleted["imageSetWorkflowStatus"] == "DELETING"
    assert client.delete_datastore(datastoreId=emulator.datastore_id)["datastoreStatus"] == "DELETING"
    assert (
        client.get_datastore(datastoreId=emulator.datastore_id)["datastoreProperties"]["datastoreStatus"] == "DELETED"
    )
    assert client.list_datastores(datastoreStatus="ACTIVE")["datastoreSummaries"] == []
    with pytest.raises(StowNotFound):
        store_files(stow_client(emulator), [sample.instances[0].path])


def test_control_plane_requests_are_verified_too(healthimaging_emulator: RunningEmulator) -> None:
    emulator = healthimaging_emulator
    forged = RunningEmulator(emulator.data_dir, emulator.access_key, "not-the-secret", url=emulator.url)
    with pytest.raises(ClientError) as raised:
        forged.boto3_client().get_datastore(datastoreId=emulator.datastore_id)
    assert raised.value.response["Error"]["Code"] == "InvalidSignatureException"
    assert raised.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    with pytest.raises(ClientError) as raised:
        emulator.boto3_client().get_datastore(datastoreId="0" * 32)
    assert raised.value.response["Error"]["Code"] == "ResourceNotFoundException"
    with pytest.raises(ClientError) as raised:
        emulator.boto3_client().copy_image_set(
            datastoreId=emulator.datastore_id,
            sourceImageSetId="0" * 32,
            copyImageSetInformation={"sourceImageSet": {"latestVersionId": "1"}},
        )
    assert raised.value.response["Error"]["Code"] == "NotImplemented"


def test_the_hook_reaches_the_read_apis_through_the_same_connection(
    healthimaging_emulator: RunningEmulator, sample: SampleSet, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One ``endpoint_url`` serves the DICOMweb and the boto3 planes (no ``runtime-`` host prefix)."""
    monkeypatch.setenv("AIRFLOW_CONN_AHI", healthimaging_emulator.aws_connection_json())
    hook = HealthImagingStowHook(aws_conn_id="ahi", datastore_id=healthimaging_emulator.datastore_id)
    assert hook.store_instances([item.path for item in sample.instances]).all_stored
    found = hook.get_conn().search_image_sets(datastoreId=healthimaging_emulator.datastore_id)
    assert len(found["imageSetsMetadataSummaries"]) == 2
