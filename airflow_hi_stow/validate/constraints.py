"""What HealthImaging rejects or does not support, kept as data with the page and the date it was read from.

The supported transfer syntaxes and the 1 GB request limit are the client's own facts
(:mod:`airflow_hi_stow.core.healthimaging`); this module adds what only validation needs. Check the pages again
before relying on a number: the element constraints page has changed over time (older translations show smaller
limits for StudyID and StudyDescription).
"""

from __future__ import annotations

from dataclasses import dataclass

from airflow_hi_stow.core.healthimaging import MAX_REQUEST_BYTES, accepted_transfer_syntaxes

DEVGUIDE = "https://docs.aws.amazon.com/healthimaging/latest/devguide/"
ELEMENT_CONSTRAINTS_PAGE = DEVGUIDE + "dicom-element-constraints.html"
DICOM_SUPPORT_PAGE = DEVGUIDE + "reference-dicom.html"
TRANSFER_SYNTAXES_PAGE = DEVGUIDE + "supported-transfer-syntaxes.html"
STORING_PAGE = DEVGUIDE + "dicomweb-storing.html"
API_MODEL = "botocore medical-imaging 2023-07-19 service-2.json (DICOMTags)"
READ_ON = "2026-12"
"""When the pages above were read for these tables."""


@dataclass(frozen=True)
class ElementLimit:
    """The longest value HealthImaging imports for one element: characters of its text, or the largest number."""

    keyword: str
    max_length: int | None = None
    max_value: int | None = None
    source: str = ELEMENT_CONSTRAINTS_PAGE


ELEMENT_LIMITS: tuple[ElementLimit, ...] = (
    ElementLimit("PatientName", max_length=256),
    ElementLimit("PatientID", max_length=256),
    ElementLimit("PatientBirthDate", max_length=18),
    ElementLimit("PatientSex", max_length=16),
    ElementLimit("StudyInstanceUID", max_length=256),
    ElementLimit("StudyID", max_length=256),
    ElementLimit("StudyDescription", max_length=256),
    ElementLimit("AccessionNumber", max_length=256),
    ElementLimit("StudyDate", max_length=18),
    ElementLimit("StudyTime", max_length=28),
    ElementLimit("SeriesInstanceUID", max_length=256),
    ElementLimit("SOPInstanceUID", max_length=256),
    ElementLimit("NumberOfStudyRelatedSeries", max_value=1_000_000),
    ElementLimit("NumberOfStudyRelatedInstances", max_value=1_000_000),
    ElementLimit("Modality", max_length=16, source=API_MODEL + " SeriesModality"),
    ElementLimit("BodyPartExamined", max_length=64, source=API_MODEL + " SeriesBodyPart"),
    ElementLimit("SeriesNumber", max_value=2**31 - 1, source=API_MODEL + " SeriesNumber (int32)"),
)
"""From the current English "DICOM element constraints" page (import fails above these), and the API's DICOMTags
shapes for the series elements HealthImaging indexes."""

SUPPORTED_TRANSFER_SYNTAXES: frozenset[str] = accepted_transfer_syntaxes()
"""The "Supported transfer syntaxes" table (see :data:`airflow_hi_stow.core.healthimaging.IMPORT_TRANSFER_SYNTAXES`
for which rows were verified)."""

MAX_INSTANCE_BYTES = MAX_REQUEST_BYTES
"""StoreDICOM takes "up to 1GB of DICOM data per request": a larger instance cannot be sent at all."""

SEGMENTATION_STORAGE = "1.2.840.10008.5.1.4.1.1.66.4"
ICON_IMAGE_SEQUENCE = 0x00880200
UNSUPPORTED_CONTENT = (
    '"AWS HealthImaging does not currently support Binary Segmentation Images or Icon Image Sequence pixel data" '
    f"({DICOM_SUPPORT_PAGE}, read {READ_ON})"
)
