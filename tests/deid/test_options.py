"""The profile options (PS3.15 E.3) on the synthetic study, one instance at a time."""

from __future__ import annotations

import datetime as dt
from io import BytesIO
from pathlib import Path

import pytest
from pydicom import dcmread
from pydicom.dataset import Dataset

from airflow_hi_stow.deid import DeidentifiedFile, Deidentifier, ProfileOptions, SafePrivate
from airflow_hi_stow.deid.profile import standard_safe_private
from tests.deid import synthetic
from tests.deid.conftest import KEY


def _deidentify(path: Path, options: ProfileOptions) -> Dataset:
    result = Deidentifier(KEY, options).deidentify_bytes(path.read_bytes())
    assert isinstance(result, DeidentifiedFile), result
    return dcmread(BytesIO(result.data))


def _date(value: str) -> dt.date:
    return dt.date(int(value[:4]), int(value[4:6]), int(value[6:8]))


def test_modified_dates_shift_every_date_of_a_patient_by_the_same_days(study: list[Path]) -> None:
    options = ProfileOptions(retain_longitudinal_modified_dates=True, retain_patient_characteristics=True)
    outputs = [_deidentify(path, options) for path in study]
    original = _date(synthetic.STUDY_DATE)
    shifts = set()
    for ds in outputs:
        nested = ds.PerformedProtocolCodeSequence[0].ProtocolContextSequence[0].ContentItemModifierSequence[1]
        for value in (ds.StudyDate, ds.SeriesDate, ds.ContentDate, ds.InstanceCreationDate, nested.Date):
            shifts.add((_date(value) - original).days)
        shifts.add((_date(ds.AcquisitionDateTime[:8]) - original).days)
        assert ds.AcquisitionDateTime[8:] == "101520.000000"  # the time of day is kept
        assert ds.LongitudinalTemporalInformationModified == "MODIFIED"
        assert ds.PatientAge == "076Y"  # whole-day shifts keep every interval, so the age stays true
        assert "113107" in [item.CodeValue for item in ds.DeidentificationMethodCodeSequence]
    assert len(shifts) == 1
    assert shifts.pop() <= -364


def test_full_dates_keep_dates(study: list[Path]) -> None:
    ds = _deidentify(study[0], ProfileOptions(retain_longitudinal_full_dates=True))
    assert ds.StudyDate == synthetic.STUDY_DATE
    assert ds.LongitudinalTemporalInformationModified == "UNMODIFIED"


def test_both_date_options_at_once_are_refused() -> None:
    with pytest.raises(ValueError, match="Full Dates or Modified Dates"):
        ProfileOptions(retain_longitudinal_full_dates=True, retain_longitudinal_modified_dates=True)


def test_retain_device_and_institution_identity(study: list[Path]) -> None:
    ds = _deidentify(study[0], ProfileOptions(retain_device_identity=True, retain_institution_identity=True))
    assert ds.DeviceSerialNumber == synthetic.DEVICE_SERIAL
    assert ds.StationName == synthetic.STATION
    assert ds.InstitutionName == synthetic.INSTITUTION
    basic = _deidentify(study[0], ProfileOptions())
    assert "DeviceSerialNumber" not in basic
    assert "InstitutionName" not in basic


def test_retain_uids_keeps_the_original_uids(study: list[Path]) -> None:
    ds = _deidentify(study[1], ProfileOptions(retain_uids=True))
    assert ds.StudyInstanceUID == synthetic.STUDY_UID
    assert ds.SOPInstanceUID == synthetic.study_instances()[1].sop_instance_uid
    assert ds.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID


def test_retain_safe_private_keeps_only_allow_listed_private_attributes(study: list[Path]) -> None:
    # CT_small's GE blocks hold attributes of the standard's list; the planted block is not in it.
    plain = _deidentify(study[0], ProfileOptions(retain_safe_private=True))
    allowed = {(s.creator, s.group, s.element) for s in standard_safe_private()}
    kept = [elem.tag for elem in plain if elem.tag.is_private and elem.tag.element >= 0x1000]
    assert kept, "CT_small holds safe private attributes"
    for tag in kept:
        creator = plain[tag.group << 16 | tag.element >> 8].value
        assert (creator, tag.group, tag.element & 0xFF) in allowed
    creators = [elem.value for elem in plain if elem.tag.is_private and elem.tag.element <= 0xFF]
    assert synthetic.PRIVATE_CREATOR not in creators
    # The user extends the list with the block's date: that one stays (shifted under Modified Dates), nothing else.
    extra = (SafePrivate(synthetic.PRIVATE_CREATOR, 0x0009, 0x12, "DA"),)
    options = ProfileOptions(
        retain_safe_private=True, safe_private_extra=extra, retain_longitudinal_modified_dates=True
    )
    ds = _deidentify(study[0], options)
    block = ds.private_block(0x0009, synthetic.PRIVATE_CREATOR)
    assert [offset for offset in (0x10, 0x11, 0x12, 0x13) if block.get_tag(offset) in ds] == [0x12]
    assert block[0x12].value == ds.StudyDate != synthetic.STUDY_DATE  # shifted like the standard dates
    assert "113111" in [item.CodeValue for item in ds.DeidentificationMethodCodeSequence]


@pytest.mark.parametrize(
    "entry",
    [
        {"creator": " ACME PHI 1.0 ", "group": "0009", "element": "12", "vr": "da"},
        {"creator": "ACME PHI 1.0", "group": 0x0009, "element": 0x1012, "vr": "DA"},
        ["ACME PHI 1.0", "0x0009", "0x12", "DA"],
    ],
)
def test_a_safe_private_attribute_from_a_users_argument(entry: object) -> None:
    assert SafePrivate.of(entry) == SafePrivate("ACME PHI 1.0", 0x0009, 0x12, "DA")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("entry", "complaint"),
    [
        ({"group": "0009", "element": "12"}, "private creator"),
        ({"creator": "X", "group": "0008", "element": "12"}, "odd"),
        ({"creator": "X", "group": "zz", "element": "12"}, "group"),
        (["X", 9], "mapping or a list"),
        ("X,0009,12", "mapping or a list"),
    ],
)
def test_a_bad_safe_private_attribute_is_refused(entry: object, complaint: str) -> None:
    with pytest.raises(ValueError, match=complaint):
        SafePrivate.of(entry)  # type: ignore[arg-type]


def test_clean_descriptors_keeps_descriptions_without_the_identifying_words(study: list[Path]) -> None:
    ds = _deidentify(study[0], ProfileOptions(clean_descriptors=True))
    assert ds.StudyDescription == "CT chest for *** ***"
    assert "StudyDescription" not in _deidentify(study[0], ProfileOptions())


def test_patient_characteristics(study: list[Path]) -> None:
    ds = _deidentify(study[0], ProfileOptions(retain_patient_characteristics=True))
    assert ds.PatientAge == "076Y"
    assert ds.PatientSex == "O"
    assert "PatientAge" not in _deidentify(study[0], ProfileOptions())


def test_known_private_dates_are_kept_shifted_under_safe_private_and_modified_dates(study: list[Path]) -> None:
    ds = dcmread(study[0])
    block = ds.private_block(0x0071, "SIEMENS MED PT", create=True)
    block.add_new(0x22, "DT", synthetic.STUDY_DATE + "101520.000000")  # Decay Correction DateTime (PET SUV)
    buffer = BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    options = ProfileOptions(retain_safe_private=True, retain_longitudinal_modified_dates=True)
    result = Deidentifier(KEY, options).deidentify_bytes(buffer.getvalue())
    assert isinstance(result, DeidentifiedFile)
    out = dcmread(BytesIO(result.data))
    decay = out.private_block(0x0071, "SIEMENS MED PT")[0x22].value
    assert decay == out.StudyDate + "101520.000000"  # the same shift as the standard dates
    without_dates = Deidentifier(KEY, ProfileOptions(retain_safe_private=True)).deidentify_bytes(buffer.getvalue())
    assert isinstance(without_dates, DeidentifiedFile)
    assert not any(elem.tag.group == 0x0071 for elem in dcmread(BytesIO(without_dates.data)))
