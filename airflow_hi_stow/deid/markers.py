"""What a de-identified instance says about itself (PS3.15 E.1.1 items 6-8, PS3.3 C.7.1.1) and its new file meta."""

from __future__ import annotations

from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import UID

from airflow_hi_stow.deid.profile import ProfileOptions

# Our implementation's identity in the rebuilt file meta: 2.25 + uuid5(URL, "https://pypi.org/project/airflow-hi-stow/#deid").
IMPLEMENTATION_CLASS_UID = "2.25.230664386238463419374415198137848699894"
IMPLEMENTATION_VERSION_NAME = "HISTOW_DEID_1"
PREAMBLE = b"\x00" * 128

# PS3.16 CID 7050 De-identification Method: the profile and each option, with its code meaning.
BASIC_PROFILE_CODE = ("113100", "Basic Application Confidentiality Profile")
OPTION_CODES = {
    "clean_graphics": ("113103", "Clean Graphics Option"),
    "clean_structured_content": ("113104", "Clean Structured Content Option"),
    "clean_descriptors": ("113105", "Clean Descriptors Option"),
    "retain_longitudinal_full_dates": ("113106", "Retain Longitudinal Temporal Information Full Dates Option"),
    "retain_longitudinal_modified_dates": ("113107", "Retain Longitudinal Temporal Information Modified Dates Option"),
    "retain_patient_characteristics": ("113108", "Retain Patient Characteristics Option"),
    "retain_device_identity": ("113109", "Retain Device Identity Option"),
    "retain_uids": ("113110", "Retain UIDs Option"),
    "retain_safe_private": ("113111", "Retain Safe Private Option"),
    "retain_institution_identity": ("113112", "Retain Institution Identity Option"),
}


def method_codes(options: ProfileOptions) -> list[tuple[str, str]]:
    """The CID 7050 codes of the profile and the options used, in code order."""
    return [BASIC_PROFILE_CODE, *sorted(OPTION_CODES[name] for name in options.enabled())]


def set_markers(ds: Dataset, options: ProfileOptions, edition: str) -> None:
    """Patient Identity Removed, De-identification Method (text and codes), Longitudinal Temporal Information Modified."""
    codes = method_codes(options)
    ds.PatientIdentityRemoved = "YES"
    ds.DeidentificationMethod = [f"DICOM PS3.15 {edition} Table E.1-1", *(meaning for _, meaning in codes)]
    items = []
    for value, meaning in codes:
        item = Dataset()
        item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = value, "DCM", meaning
        items.append(item)
    ds.DeidentificationMethodCodeSequence = Sequence(items)
    if options.retain_longitudinal_full_dates:
        ds.LongitudinalTemporalInformationModified = "UNMODIFIED"
    elif options.retain_longitudinal_modified_dates:
        ds.LongitudinalTemporalInformationModified = "MODIFIED"
    else:
        ds.LongitudinalTemporalInformationModified = "REMOVED"


def rebuild_file_meta(ds: Dataset, transfer_syntax: UID) -> None:
    """New File Meta Information (E.1.1 items 7-8): it follows the new SOP Instance UID; the preamble is zeroed."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = ds.SOPClassUID
    meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    meta.TransferSyntaxUID = transfer_syntax
    meta.ImplementationClassUID = UID(IMPLEMENTATION_CLASS_UID)
    meta.ImplementationVersionName = IMPLEMENTATION_VERSION_NAME
    ds.file_meta = meta
    ds.preamble = PREAMBLE
