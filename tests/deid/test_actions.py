"""Single actions of the profile on one dataset: overlays and curves, removed sequences, SR content, dummies."""

from __future__ import annotations

from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from airflow_hi_stow.deid import Deidentifier, ProfileOptions
from tests.deid import synthetic
from tests.deid.conftest import KEY, pydicom_file


def _ct() -> Dataset:
    ds = dcmread(pydicom_file("CT_small.dcm"))
    ds.PatientName, ds.PatientID = synthetic.PATIENT_NAME, synthetic.PATIENT_ID
    return ds


def _text_item(text: str) -> Dataset:
    item = Dataset()
    item.ValueType, item.TextValue = "TEXT", text
    return item


def test_overlays_and_curves_are_removed_whole() -> None:
    ds = dcmread(pydicom_file("examples_overlay.dcm"))
    assert any(elem.tag.group == 0x6000 for elem in ds)
    ds.add_new(0x50000010, "US", 1)  # a retired curve: Number of Points
    ds.add_new(0x50003000, "OW", b"\x00\x01")  # Curve Data
    result = Deidentifier(KEY).deidentify_dataset(ds)
    assert result.findings == ()
    assert [elem.tag for elem in result.dataset if elem.tag.group & 0xFF00 in (0x5000, 0x6000)] == []
    graphics = Deidentifier(KEY, ProfileOptions(clean_graphics=True)).deidentify_dataset(
        dcmread(pydicom_file("examples_overlay.dcm"))
    )
    assert [elem.tag for elem in graphics.dataset if elem.tag.group == 0x6000] == []  # no bitmap cleaner: still removed


def test_original_attributes_and_other_ids_are_removed_with_their_contents() -> None:
    ds = _ct()
    modified = Dataset()
    modified.PatientName = synthetic.PATIENT_NAME
    original = Dataset()
    original.ModifiedAttributesSequence = Sequence([modified])
    original.ModifyingSystem, original.ReasonForTheAttributeModification = "PACS", "CORRECT"
    ds.OriginalAttributesSequence = Sequence([original])
    result = Deidentifier(KEY).deidentify_dataset(ds)
    assert result.findings == ()
    assert "OriginalAttributesSequence" not in result.dataset


def test_sr_content_is_replaced_by_dummies_or_cleaned_under_the_option() -> None:
    def content() -> Dataset:
        ds = _ct()
        ds.ContentSequence = Sequence([_text_item("Findings for Quixote: no change")])
        return ds

    basic = Deidentifier(KEY).deidentify_dataset(content())
    assert basic.dataset.ContentSequence[0].TextValue == "ANONYMIZED"  # D: free text inside becomes a dummy
    cleaned = Deidentifier(KEY, ProfileOptions(clean_structured_content=True)).deidentify_dataset(content())
    assert cleaned.dataset.ContentSequence[0].TextValue == "Findings for ***: no change"
    assert cleaned.findings == ()


def test_compound_codes_keep_the_instance_valid() -> None:
    ds = _ct()
    ds.InstitutionName = synthetic.INSTITUTION  # X/Z/D, Type 3 in the CT IOD
    ds.ContentDate = synthetic.STUDY_DATE  # Z/D, Type 2C
    out = Deidentifier(KEY).deidentify_dataset(ds).dataset
    assert "InstitutionName" not in out
    assert "ContentDate" in out
    assert not out.ContentDate
    assert out.PatientID.startswith("P")  # Z/D, Type 2: a pseudonym (a non-empty Z)
    assert len(out.PatientID) == 16


def test_a_code_sequence_to_replace_gets_one_dummy_code() -> None:
    ds = _ct()
    code = Dataset()
    code.CodeValue, code.CodingSchemeDesignator, code.CodeMeaning = "BADGE-0042", "L", "badge"
    ds.PersonIdentificationCodeSequence = Sequence([code])  # D
    out = Deidentifier(KEY).deidentify_dataset(ds).dataset
    codes = out.PersonIdentificationCodeSequence
    assert [(c.CodeValue, c.CodingSchemeDesignator) for c in codes] == [("ANON", "99HISTOW")]


def test_a_uid_outside_the_table_follows_when_it_is_a_replaced_one() -> None:
    ds = _ct()
    ds.add_new(0x00081190, "UR", "http://example.org")  # Retrieve URL: not a UID, kept
    item = Dataset()
    item.ReferencedSOPClassUID = ds.SOPClassUID
    item.ReferencedSOPInstanceUID = ds.SOPInstanceUID
    ds.ReferencedInstanceSequence = Sequence([item])
    ds.add_new(0x00089123, "UI", ds.SOPInstanceUID)  # Creator-Version UID (not in the table): same value
    out = Deidentifier(KEY).deidentify_dataset(ds).dataset
    assert out[0x00089123].value == out.SOPInstanceUID
    assert out.ReferencedInstanceSequence[0].ReferencedSOPInstanceUID == out.SOPInstanceUID
    assert out.SOPClassUID == "1.2.840.10008.5.1.4.1.1.2"


def test_a_person_name_outside_the_table_is_removed() -> None:
    ds = _ct()
    ds.EvaluatorName = synthetic.OPERATOR  # (0014,2006), not in Table E.1-1
    assert "EvaluatorName" not in Deidentifier(KEY).deidentify_dataset(ds).dataset


def test_a_date_outside_the_table_is_removed_or_shifted() -> None:
    def with_expiry() -> Dataset:
        ds = _ct()
        ds.ExpiryDate = synthetic.STUDY_DATE  # (0014,1020), not in Table E.1-1
        return ds

    assert "ExpiryDate" not in Deidentifier(KEY).deidentify_dataset(with_expiry()).dataset
    modified = Deidentifier(KEY, ProfileOptions(retain_longitudinal_modified_dates=True))
    shifted = modified.deidentify_dataset(with_expiry()).dataset
    assert shifted.ExpiryDate not in ("", synthetic.STUDY_DATE)
    full = Deidentifier(KEY, ProfileOptions(retain_longitudinal_full_dates=True)).deidentify_dataset(with_expiry())
    assert full.dataset.ExpiryDate == synthetic.STUDY_DATE
