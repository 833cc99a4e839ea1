"""Image set placement (primary / non-primary) and the metadata HealthImaging shows for an image set."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydicom import dcmread

from airflow_hi_stow.core.image_set_metadata import StoredInstance, image_set_metadata, split_levels, summary_tags
from airflow_hi_stow.core.image_sets import ExistingImageSet, Placement, normalise_grouping, place_instance
from airflow_hi_stow.samples import generate_dataset

GROUPING = normalise_grouping(
    {
        "StudyDate": "20240101",
        "AccessionNumber": "ACC1",
        "PatientID": "P1",
        "StudyInstanceUID": "1.2.3",
        "StudyID": "S1",
        "SeriesInstanceUID": "1.2.3.4",
        "SeriesNumber": 1,
    }
)


def existing(image_set_id: str, primary: bool = True, **changes: str) -> ExistingImageSet:
    grouping = {**GROUPING, **changes}
    return ExistingImageSet(image_set_id, grouping["SeriesInstanceUID"], primary, grouping)


def test_the_first_instance_of_a_series_creates_a_primary_image_set() -> None:
    assert place_instance(GROUPING, []) == Placement(None, is_primary=True)


def test_an_instance_agreeing_with_the_primary_joins_it() -> None:
    assert place_instance(GROUPING, [existing("a")]) == Placement("a", is_primary=True)


@pytest.mark.parametrize(
    ("keyword", "value"),
    [
        ("StudyDate", "20240102"),
        ("AccessionNumber", "ACC2"),
        ("PatientID", "P2"),
        ("StudyID", "S2"),
        ("SeriesNumber", "2"),
    ],
)
def test_each_grouping_element_in_conflict_makes_a_non_primary_image_set(keyword: str, value: str) -> None:
    placement = place_instance({**GROUPING, keyword: value}, [existing("a")])
    assert placement == Placement(None, is_primary=False, conflicts=(keyword,))


def test_a_non_primary_image_set_with_the_same_conflicting_values_is_reused() -> None:
    conflicting = {**GROUPING, "PatientID": "P2"}
    study = [existing("a"), existing("b", primary=False, PatientID="P2"), existing("c", primary=False, PatientID="P3")]
    assert place_instance(conflicting, study) == Placement("b", is_primary=False, conflicts=("PatientID",))


def test_a_new_series_is_checked_against_the_study_level_of_the_other_series() -> None:
    other_series = existing("a", SeriesInstanceUID="1.2.3.5", SeriesNumber="2")
    assert place_instance(GROUPING, [other_series]) == Placement(None, is_primary=True)
    placement = place_instance({**GROUPING, "AccessionNumber": "ACC9"}, [other_series])
    assert placement == Placement(None, is_primary=False, conflicts=("AccessionNumber",))


def test_values_are_compared_as_dicom_values() -> None:
    assert normalise_grouping({"SeriesNumber": " 01 ", "PatientID": "P1 "}) == {
        **{keyword: "" for keyword in GROUPING},
        "SeriesNumber": "1",
        "PatientID": "P1",
    }


@pytest.fixture(scope="module")
def series_datasets(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, object]]:
    sample = generate_dataset(
        tmp_path_factory.mktemp("meta") / "set",
        patients=1,
        studies_per_patient=(1, 1),
        series_per_study=(1, 1),
        instances_per_series=(2, 2),
        redeliver_one_study=False,
    )
    return [
        dcmread(Path(item.path), stop_before_pixels=True).to_json_dict(1024, lambda _: "") for item in sample.instances
    ]


def test_metadata_is_normalised_into_patient_study_series_and_instances(
    series_datasets: list[dict[str, object]],
) -> None:
    document = image_set_metadata(
        "d" * 32, "i" * 32, [StoredInstance(item, "1.2.840.10008.1.2.4.202") for item in series_datasets]
    )
    assert document["DatastoreID"] == "d" * 32
    assert document["ImageSetID"] == "i" * 32
    assert document["Patient"]["DICOM"]["PatientName"] == "DEMO^PATIENT01"
    assert document["Patient"]["DICOM"]["PatientID"] == "DEMO-0001"
    assert document["Study"]["DICOM"]["AccessionNumber"].startswith("ACC")
    ((series_uid, series),) = document["Study"]["Series"].items()
    assert series["DICOM"]["SeriesInstanceUID"] == series_uid
    assert series["DICOM"]["Modality"] in ("CT", "MR")
    assert len(series["Instances"]) == 2
    for sop_uid, instance in series["Instances"].items():
        assert instance["DICOM"]["SOPInstanceUID"] == sop_uid
        assert instance["StoredTransferSyntaxUID"] == "1.2.840.10008.1.2.4.202"
        assert "PatientID" not in instance["DICOM"]
        assert "PixelData" not in instance["DICOM"]
        assert not any(key.startswith("0002") or key == "TransferSyntaxUID" for key in instance["DICOM"])


def test_summary_tags_carry_patient_study_and_series_values(series_datasets: list[dict[str, object]]) -> None:
    tags = summary_tags(split_levels(series_datasets[0]))
    assert tags["DICOMPatientId"] == "DEMO-0001"
    assert tags["DICOMPatientName"] == "DEMO^PATIENT01"
    assert tags["DICOMStudyId"] == "S1"
    assert tags["DICOMSeriesNumber"] == 1
    assert tags["DICOMStudyDate"].startswith("202")
    assert set(tags) >= {
        "DICOMStudyInstanceUID",
        "DICOMSeriesInstanceUID",
        "DICOMSeriesModality",
        "DICOMAccessionNumber",
    }
