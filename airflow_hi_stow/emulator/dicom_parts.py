"""Reading a received part as a DICOM P10 instance: its identifiers, grouping elements and attributes.

A store reads what placing an instance needs, its identifiers and grouping elements, from the first bytes of the
part with the struct scanner of :mod:`airflow_hi_stow.core.dicom_header` (pydicom only when the scanner cannot read
them exactly: another encoding, a character set, several values): about 0.1 ms, where pydicom's reading and DICOM
JSON conversion of the public elements cost 3-5 ms an instance and made the emulator the bottleneck of every
test. Those attributes (what QIDO-RS matching and the image set summaries use) are read from the stored file by
:func:`public_attributes` when a read first needs them, and kept (see :mod:`.storage`); the metadata documents
read the stored file when they are asked for, private elements included.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydicom import dcmread
from pydicom.datadict import tag_for_keyword
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError

from airflow_hi_stow.core.dicom_header import TRANSFER_SYNTAX, scan_header
from airflow_hi_stow.core.image_set_metadata import split_levels, summary_tags
from airflow_hi_stow.core.image_sets import GROUPING_KEYWORDS, normalise_grouping
from airflow_hi_stow.core.uids import matches_healthimaging_pattern
from airflow_hi_stow.emulator.body import ReceivedPart

CANNOT_UNDERSTAND = 0xC000
BULK_DATA_THRESHOLD = 1024
"""Binary values larger than this are left out of the stored attributes (they stay in the stored file)."""
HEAD_BYTES = 64 * 1024
"""Bytes of a part read for its identifiers; a header longer than that is read by pydicom."""
_IDENTIFIERS = {
    "SOPClassUID": 0x00080016,
    "SOPInstanceUID": 0x00080018,
    "StudyInstanceUID": 0x0020000D,
    "SeriesInstanceUID": 0x0020000E,
}
_GROUPING_TAGS: dict[str, int] = {
    keyword: tag for keyword in GROUPING_KEYWORDS if (tag := tag_for_keyword(keyword)) is not None
}
_CHARACTER_SET = 0x00080005
_LATIN_1 = (b"", b"ISO_IR 6", b"ISO_IR 100")
"""Character sets whose text decodes as Latin-1 (the default repertoire and Latin alphabet No. 1)."""
_BEFORE_PIXELS = 0x7FE00007
"""No such element: asking for it makes the scan walk, and check the framing of, every element before the pixel
data, as pydicom's reading up to the pixel data did."""
_SCANNED = frozenset(
    {TRANSFER_SYNTAX, _CHARACTER_SET, _BEFORE_PIXELS, *_IDENTIFIERS.values(), *_GROUPING_TAGS.values()}
)


@dataclass(frozen=True)
class ParsedInstance:
    part: ReceivedPart
    sop_class_uid: str
    sop_instance_uid: str
    study_instance_uid: str
    series_instance_uid: str
    transfer_syntax_uid: str
    grouping: dict[str, str]


@dataclass(frozen=True)
class PartFailure:
    """A part that cannot be stored, with its PS3.18 failure reason. The reason text never quotes the data."""

    part: ReceivedPart
    reason: int
    detail: str
    sop_instance_uid: str | None = None
    sop_class_uid: str | None = None


def parse_part(part: ReceivedPart) -> ParsedInstance | PartFailure:
    """Read a part's identifiers and grouping elements; a part that is not a DICOM P10 instance with valid
    identifiers fails with C000."""
    values = _scanned(part)
    if values is None:
        read = _read_with_pydicom(part)
        if isinstance(read, PartFailure):
            return read
        values = read
    sop_class, sop_uid, study_uid, series_uid = (_uid(values.get(keyword)) for keyword in _IDENTIFIERS)
    transfer_syntax = values.get("TransferSyntaxUID", "")
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
    return ParsedInstance(
        part=part,
        sop_class_uid=sop_class,
        sop_instance_uid=sop_uid,
        study_instance_uid=study_uid,
        series_instance_uid=series_uid,
        transfer_syntax_uid=transfer_syntax,
        grouping=normalise_grouping({keyword: values.get(keyword) for keyword in GROUPING_KEYWORDS}),
    )


def _scanned(part: ReceivedPart) -> dict[str, str] | None:
    """The identifiers and grouping elements as text, from the part's first bytes; None when pydicom must read
    them (the scanner declines, a character set other than Latin-1's, a value with several values)."""
    try:
        with part.path.open("rb") as stream:
            head = stream.read(HEAD_BYTES)
    except OSError:
        return None
    found = scan_header(
        head, _SCANNED, complete=len(head) == part.size, required={TRANSFER_SYNTAX, *_IDENTIFIERS.values()}
    )
    if found is None or found.get(_CHARACTER_SET, b"").strip(b" \0") not in _LATIN_1:
        return None
    text = {}
    for keyword, tag in (("TransferSyntaxUID", TRANSFER_SYNTAX), *_IDENTIFIERS.items(), *_GROUPING_TAGS.items()):
        if tag in found:
            value = found[tag].decode("latin-1").strip(" \0")
            if "\\" in value:
                return None
            text[keyword] = value
    return text


def _read_with_pydicom(part: ReceivedPart) -> dict[str, str] | PartFailure:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            dataset = dcmread(part.path, stop_before_pixels=True)
            # converted here too: a value is read from its raw bytes only now (an unknown VR raises, say)
            values = {"TransferSyntaxUID": str(dataset.file_meta.get("TransferSyntaxUID", "") or "").strip()}
            for keyword in (*_IDENTIFIERS, *GROUPING_KEYWORDS):
                value = dataset.get(keyword)
                if value is not None:
                    values[keyword] = str(value).strip()
    except InvalidDicomError:
        return PartFailure(part, CANNOT_UNDERSTAND, "not a DICOM P10 file (no preamble and 'DICM' prefix)")
    except Exception as exc:  # pydicom raises many kinds on corrupt or truncated data
        return PartFailure(part, CANNOT_UNDERSTAND, f"unreadable DICOM data ({type(exc).__name__})")
    return values


def public_attributes(path: Path) -> dict[str, Any]:
    """A stored instance's public elements in DICOM JSON, without pixel data and large binary values: what the
    index keeps (converting the often numerous private elements would triple the cost). Raises what pydicom
    raises on a value it cannot convert."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dataset = dcmread(path, stop_before_pixels=True)
    public = Dataset()
    for tag in list(dataset.keys()):  # keys() does not decode the values: private ones are never converted
        if not tag.is_private:
            public[tag] = dataset[tag]
    return json_attributes(public)


def image_set_tags(attributes: dict[str, Any]) -> dict[str, Any]:
    """The ``DICOMTags`` of an image set summary, as an instance with these attributes sets them."""
    return summary_tags(split_levels(attributes))


def read_attributes(path: Path) -> dict[str, Any]:
    """All attributes of a stored instance (private ones included) in DICOM JSON, without bulk data."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return json_attributes(dcmread(path, stop_before_pixels=True))


def json_attributes(dataset: Dataset) -> dict[str, Any]:
    attributes = dataset.to_json_dict(BULK_DATA_THRESHOLD, _leave_out, suppress_invalid_tags=True)
    return {tag: element for tag, element in attributes.items() if "BulkDataURI" not in element}


def _uid(value: str | None) -> str | None:
    return value if value and matches_healthimaging_pattern(value) else None


def _leave_out(_element: Any) -> str:
    return ""
