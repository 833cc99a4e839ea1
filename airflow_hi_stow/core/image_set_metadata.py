"""Image set metadata as HealthImaging's GetImageSetMetadata and SearchImageSets present it.

HealthImaging normalises an image set's metadata into Patient, Study and Series levels plus the attributes of each
instance, keyed by DICOM keyword (``{"Patient": {"DICOM": {"PatientID": ...}}, "Study": {"DICOM": {...}, "Series":
{uid: {"DICOM": {...}, "Instances": {uid: {"DICOM": {...}, "StoredTransferSyntaxUID": ...}}}}}}``). The level lists
below follow the DICOM Patient, General Study, Patient Study and General Series modules; HealthImaging's own lists
("DICOM support" page) are longer and were not copied element by element.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pydicom.datadict import keyword_for_tag

from airflow_hi_stow.core.image_sets import normalise_grouping

PATIENT_LEVEL = frozenset(
    {
        "PatientName",
        "PatientID",
        "IssuerOfPatientID",
        "TypeOfPatientID",
        "IssuerOfPatientIDQualifiersSequence",
        "PatientBirthDate",
        "PatientBirthTime",
        "PatientSex",
        "OtherPatientIDsSequence",
        "OtherPatientNames",
        "EthnicGroup",
        "PatientComments",
        "PatientSpeciesDescription",
        "PatientBreedDescription",
        "ResponsiblePerson",
        "PatientIdentityRemoved",
        "DeidentificationMethod",
    }
)
STUDY_LEVEL = frozenset(
    {
        "StudyInstanceUID",
        "StudyDate",
        "StudyTime",
        "ReferringPhysicianName",
        "StudyID",
        "AccessionNumber",
        "IssuerOfAccessionNumberSequence",
        "StudyDescription",
        "PhysiciansOfRecord",
        "NameOfPhysiciansReadingStudy",
        "ProcedureCodeSequence",
        "AdmittingDiagnosesDescription",
        "PatientAge",
        "PatientSize",
        "PatientWeight",
        "Occupation",
        "AdditionalPatientHistory",
    }
)
SERIES_LEVEL = frozenset(
    {
        "Modality",
        "SeriesInstanceUID",
        "SeriesNumber",
        "Laterality",
        "SeriesDate",
        "SeriesTime",
        "PerformingPhysicianName",
        "ProtocolName",
        "SeriesDescription",
        "OperatorsName",
        "BodyPartExamined",
        "PatientPosition",
        "FrameOfReferenceUID",
        "PositionReferenceIndicator",
        "Manufacturer",
        "InstitutionName",
        "StationName",
    }
)
SCHEMA_VERSION = "1.1"

JsonDataset = Mapping[str, Any]
"""A dataset in DICOM JSON (PS3.18 Annex F): ``{"00100020": {"vr": "LO", "Value": [...]}}``."""


def element_value(element: Mapping[str, Any]) -> Any:
    """A DICOM JSON element as a plain value: one value as itself, several as a list, none as None; person names
    as their alphabetic form, sequences as lists of keyword dictionaries. Binary values are dropped (None)."""
    raw = element.get("Value")
    if not isinstance(raw, list) or not raw:
        return None
    if element.get("vr") == "SQ":
        return [keyword_form(item) for item in raw if isinstance(item, Mapping)]
    if element.get("vr") == "PN":
        raw = [item.get("Alphabetic", "") if isinstance(item, Mapping) else item for item in raw]
    return raw[0] if len(raw) == 1 else list(raw)


def keyword_form(dataset: JsonDataset) -> dict[str, Any]:
    """A dataset keyed by keyword (private or unknown elements by their tag), without file meta, bulk data or
    pixel data."""
    result: dict[str, Any] = {}
    for tag, element in dataset.items():
        if tag.startswith("0002") or tag.upper() == "7FE00010" or not isinstance(element, Mapping):
            continue
        if "InlineBinary" in element or "BulkDataURI" in element:
            continue
        result[keyword_for_tag(int(tag, 16)) or tag.upper()] = element_value(element)
    return result


@dataclass(frozen=True)
class Levels:
    """An instance's attributes split into the levels HealthImaging normalises."""

    patient: dict[str, Any]
    study: dict[str, Any]
    series: dict[str, Any]
    instance: dict[str, Any]


def split_levels(dataset: JsonDataset) -> Levels:
    levels = Levels({}, {}, {}, {})
    for keyword, value in keyword_form(dataset).items():
        if keyword in PATIENT_LEVEL:
            levels.patient[keyword] = value
        elif keyword in STUDY_LEVEL:
            levels.study[keyword] = value
        elif keyword in SERIES_LEVEL:
            levels.series[keyword] = value
        else:
            levels.instance[keyword] = value
    return levels


@dataclass(frozen=True)
class StoredInstance:
    """One instance of an image set, as the metadata document needs it."""

    attributes: JsonDataset
    stored_transfer_syntax_uid: str


def image_set_metadata(datastore_id: str, image_set_id: str, instances: Iterable[StoredInstance]) -> dict[str, Any]:
    """The document GetImageSetMetadata returns (before gzip). Patient, Study and Series values come from the
    instance stored last, as HealthImaging keeps one normalised set of values per level."""
    patient: dict[str, Any] = {}
    study: dict[str, Any] = {}
    series: dict[str, dict[str, Any]] = {}
    for stored in instances:
        levels = split_levels(stored.attributes)
        patient.update(levels.patient)
        study.update(levels.study)
        series_uid = str(levels.series.get("SeriesInstanceUID", ""))
        entry = series.setdefault(series_uid, {"DICOM": {}, "Instances": {}})
        entry["DICOM"].update(levels.series)
        sop_uid = str(levels.instance.get("SOPInstanceUID", ""))
        entry["Instances"][sop_uid] = {
            "DICOM": levels.instance,
            "StoredTransferSyntaxUID": stored.stored_transfer_syntax_uid,
        }
    return {
        "SchemaVersion": SCHEMA_VERSION,
        "DatastoreID": datastore_id,
        "ImageSetID": image_set_id,
        "Patient": {"DICOM": patient},
        "Study": {"DICOM": study, "Series": series},
    }


_SUMMARY_TAGS: Sequence[tuple[str, str, str]] = (
    ("DICOMPatientId", "patient", "PatientID"),
    ("DICOMPatientName", "patient", "PatientName"),
    ("DICOMPatientBirthDate", "patient", "PatientBirthDate"),
    ("DICOMPatientSex", "patient", "PatientSex"),
    ("DICOMStudyInstanceUID", "study", "StudyInstanceUID"),
    ("DICOMStudyId", "study", "StudyID"),
    ("DICOMStudyDescription", "study", "StudyDescription"),
    ("DICOMAccessionNumber", "study", "AccessionNumber"),
    ("DICOMStudyDate", "study", "StudyDate"),
    ("DICOMStudyTime", "study", "StudyTime"),
    ("DICOMSeriesInstanceUID", "series", "SeriesInstanceUID"),
    ("DICOMSeriesModality", "series", "Modality"),
    ("DICOMSeriesBodyPart", "series", "BodyPartExamined"),
    ("DICOMSeriesNumber", "series", "SeriesNumber"),
)


def summary_tags(levels: Levels) -> dict[str, Any]:
    """The ``DICOMTags`` of a SearchImageSets summary (without the study counts), from an instance's levels."""
    tags: dict[str, Any] = {}
    for name, level, keyword in _SUMMARY_TAGS:
        value = getattr(levels, level).get(keyword)
        if value is None or isinstance(value, list):
            continue
        if name == "DICOMSeriesNumber":
            try:
                tags[name] = int(value)
            except (TypeError, ValueError):
                continue
        else:
            tags[name] = str(value)
    return tags


def grouping_from_summary_tags(tags: Mapping[str, Any]) -> dict[str, str]:
    """The grouping elements of an image set, read back from a SearchImageSets summary's ``DICOMTags``."""
    by_keyword = {keyword: tags.get(name) for name, _, keyword in _SUMMARY_TAGS}
    return normalise_grouping(by_keyword)
