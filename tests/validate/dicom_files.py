"""DICOM files for the validation tests, made here from pydicom's CT_small.dcm with invented patient values and
name-based UIDs (``2.25.<uuid5>``: deterministic, never a ``1.2.3`` test root)."""

from __future__ import annotations

import copy
import uuid
from collections.abc import Iterator
from functools import cache
from io import BytesIO
from pathlib import Path

from pydicom import Dataset, dcmread
from pydicom.data import get_testdata_file
from pydicom.uid import UID

PATIENT = {
    "PatientName": "VALIDATOR^TESTPATIENT",
    "PatientID": "VAL-PATIENT-0042",
    "PatientBirthDate": "19610203",
    "AccessionNumber": "VALACC7788",
    "StudyID": "VALSTUDY9",
    "StudyDate": "20250314",
    "InstitutionName": "VALIDATION TEST HOSPITAL",
    "ReferringPhysicianName": "REFERRER^INVENTED",
}
"""Invented values that no report may ever show."""
IDENTIFYING = (
    "PatientName",
    "PatientID",
    "OtherPatientIDs",
    "PatientBirthDate",
    "AccessionNumber",
    "StudyID",
    "StudyDate",
    "InstitutionName",
    "InstitutionAddress",
    "StationName",
)


def uid(*parts: object) -> str:
    return "2.25." + str(uuid.uuid5(uuid.NAMESPACE_OID, "/".join(str(p) for p in parts)).int)


@cache
def _template() -> Dataset:
    path = get_testdata_file("CT_small.dcm", download=False)
    assert path is not None
    return dcmread(path)


def pydicom_file(name: str) -> Path:
    """A file of pydicom's bundled test set."""
    path = get_testdata_file(name, download=False)
    assert path is not None, name
    return Path(path)


def ct(study: str = "study", series: str = "series", number: int = 1, **values: object) -> Dataset:
    """A valid CT instance (CT_small's pixels) of ``study``/``series``; ``values`` set keywords."""
    dataset = copy.deepcopy(_template())
    for keyword, value in PATIENT.items():
        setattr(dataset, keyword, value)
    del dataset.OtherPatientIDsSequence
    dataset.StudyInstanceUID = uid(study)
    dataset.SeriesInstanceUID = uid(study, series)
    dataset.FrameOfReferenceUID = uid(study, "frame")
    dataset.SOPInstanceUID = dataset.file_meta.MediaStorageSOPInstanceUID = UID(uid(study, series, number))
    dataset.InstanceNumber = number
    for keyword, given in values.items():
        setattr(dataset, keyword, given)
    return dataset


def write(dataset: Dataset, path: Path, *, as_is: bool = False) -> Path:
    """Write a P10 file; ``as_is`` keeps the file meta as set (pydicom would otherwise make it agree)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    dataset.save_as(path, enforce_file_format=not as_is)
    return path


def p10_bytes(dataset: Dataset) -> bytes:
    buffer = BytesIO()
    dataset.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def patient_values(dataset: Dataset) -> Iterator[str]:
    """The values a report must never quote: every person name anywhere in the data set, and the identifying
    attributes of :data:`IDENTIFYING`."""
    for element in dataset.iterall():
        if element.VR == "PN" and element.value:
            yield str(element.value)
    for keyword in IDENTIFYING:
        if dataset.get(keyword):
            yield str(dataset.get(keyword))
