"""Reading a received part as a DICOM P10 instance: its identifiers, grouping elements and attributes.

Two views of an instance's attributes: the index keeps its public elements (all that searches, grouping and
summaries use; converting the often numerous private elements would triple the cost of a store), and the
metadata documents are read from the stored file when they are asked for, private elements included.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError

from airflow_hi_stow.core.image_set_metadata import split_levels, summary_tags
from airflow_hi_stow.core.image_sets import GROUPING_KEYWORDS, normalise_grouping
from airflow_hi_stow.core.uids import matches_healthimaging_pattern
from airflow_hi_stow.emulator.body import ReceivedPart

CANNOT_UNDERSTAND = 0xC000
BULK_DATA_THRESHOLD = 1024
"""Binary values larger than this are left out of the stored attributes (they stay in the stored file)."""


@dataclass(frozen=True)
class ParsedInstance:
    part: ReceivedPart
    sop_class_uid: str
    sop_instance_uid: str
    study_instance_uid: str
    series_instance_uid: str
    transfer_syntax_uid: str
    grouping: dict[str, str]
    attributes: dict[str, Any]
    """The public elements in DICOM JSON, without pixel data and large binary values."""
    summary_tags: dict[str, Any]
    """The ``DICOMTags`` of the image set summary, as this instance would set them."""


@dataclass(frozen=True)
class PartFailure:
    """A part that cannot be stored, with its PS3.18 failure reason. The reason text never quotes the data."""

    part: ReceivedPart
    reason: int
    detail: str
    sop_instance_uid: str | None = None
    sop_class_uid: str | None = None


def parse_part(part: ReceivedPart) -> ParsedInstance | PartFailure:
    """Read a part's header; a part that is not a DICOM P10 instance with valid identifiers fails with C000."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            dataset = dcmread(part.path, stop_before_pixels=True)
    except InvalidDicomError:
        return PartFailure(part, CANNOT_UNDERSTAND, "not a DICOM P10 file (no preamble and 'DICM' prefix)")
    except Exception as exc:  # pydicom raises many kinds on corrupt or truncated data
        return PartFailure(part, CANNOT_UNDERSTAND, f"unreadable DICOM data ({type(exc).__name__})")
    sop_uid = _uid(dataset, "SOPInstanceUID")
    sop_class = _uid(dataset, "SOPClassUID")
    study_uid = _uid(dataset, "StudyInstanceUID")
    series_uid = _uid(dataset, "SeriesInstanceUID")
    transfer_syntax = str(dataset.file_meta.get("TransferSyntaxUID", "") or "").strip()
    missing = [
        name
        for name, value in (
            ("SOPInstanceUID", sop_uid),
            ("SOPClassUID", sop_class),
            ("StudyInstanceUID", study_uid),
            ("SeriesInstanceUID", series_uid),
            ("TransferSyntaxUID", transfer_syntax),
        )
        if not value
    ]
    if missing or sop_uid is None or sop_class is None or study_uid is None or series_uid is None:
        return PartFailure(part, CANNOT_UNDERSTAND, f"missing or invalid {', '.join(missing)}", sop_uid, sop_class)
    public = Dataset()
    for tag in list(dataset.keys()):  # keys() does not decode the values: private ones are never converted
        if not tag.is_private:
            public[tag] = dataset[tag]
    try:
        attributes = json_attributes(public)
    except Exception as exc:  # a value pydicom cannot encode in JSON
        return PartFailure(part, CANNOT_UNDERSTAND, f"unreadable DICOM data ({type(exc).__name__})", sop_uid, sop_class)
    return ParsedInstance(
        part=part,
        sop_class_uid=sop_class,
        sop_instance_uid=sop_uid,
        study_instance_uid=study_uid,
        series_instance_uid=series_uid,
        transfer_syntax_uid=transfer_syntax,
        grouping=normalise_grouping({keyword: dataset.get(keyword) for keyword in GROUPING_KEYWORDS}),
        attributes=attributes,
        summary_tags=summary_tags(split_levels(attributes)),
    )


def read_attributes(path: Path) -> dict[str, Any]:
    """All attributes of a stored instance (private ones included) in DICOM JSON, without bulk data."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return json_attributes(dcmread(path, stop_before_pixels=True))


def json_attributes(dataset: Dataset) -> dict[str, Any]:
    attributes = dataset.to_json_dict(BULK_DATA_THRESHOLD, _leave_out, suppress_invalid_tags=True)
    return {tag: element for tag, element in attributes.items() if "BulkDataURI" not in element}


def _uid(dataset: Dataset, keyword: str) -> str | None:
    value = str(dataset.get(keyword, "") or "").strip()
    return value if matches_healthimaging_pattern(value) else None


def _leave_out(_element: Any) -> str:
    return ""
