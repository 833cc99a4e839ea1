"""Facts about AWS HealthImaging's DICOMweb STOW-RS service that both the client and the emulator use.

Sources: the HealthImaging developer guide pages "Storing instances with STOW-RS", "Understanding import jobs"
and "Supported transfer syntaxes" (see docs/healthimaging.md for what is and is not publicly confirmed).
"""

from __future__ import annotations

SERVICE = "medical-imaging"
MAX_REQUEST_BYTES = 10**9
"""StoreDICOM/StoreDICOMStudy accept "up to 1GB of DICOM data per request" (taken as the smaller, decimal GB)."""

STUDY_GROUPING_ELEMENTS: tuple[tuple[str, str], ...] = (
    ("00080020", "StudyDate"),
    ("00080050", "AccessionNumber"),
    ("00100020", "PatientID"),
    ("0020000D", "StudyInstanceUID"),
    ("00200010", "StudyID"),
)
SERIES_GROUPING_ELEMENTS: tuple[tuple[str, str], ...] = (
    ("0020000E", "SeriesInstanceUID"),
    ("00200011", "SeriesNumber"),
)
"""The elements HealthImaging compares when it groups instances into image sets; a conflict with the existing
primary image set puts the new instance into a non-primary image set."""


def dicomweb_endpoint(region: str) -> str:
    """The public DICOMweb host of a region."""
    return f"https://dicom-medical-imaging.{region}.amazonaws.com"


def datastore_console_url(region: str, datastore_id: str) -> str:
    """The data store's page in the AWS console."""
    return f"https://{region}.console.aws.amazon.com/medical-imaging/home?region={region}#/data-stores/{datastore_id}"
