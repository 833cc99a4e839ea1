"""The synthetic study through the Basic Profile: nothing planted remains, references hold, one study stays one."""

from __future__ import annotations

from collections.abc import Iterator

from pydicom import dcmread
from pydicom.dataset import Dataset

from tests.deid import synthetic
from tests.deid.conftest import Run


def _walk(ds: Dataset) -> Iterator[tuple[str, object]]:
    for elem in ds:
        if elem.VR == "SQ":
            for item in elem.value:
                yield from _walk(item)
        else:
            yield elem.keyword or str(elem.tag), elem.value


def test_every_input_is_accounted_for(basic_run: Run) -> None:
    report = basic_run.report
    assert (report.inputs, report.deidentified, report.quarantined) == (6, 6, 0)
    assert (report.studies, report.series) == (1, 2)
    assert len(basic_run.outputs()) == 6


def test_no_planted_value_remains_in_any_element_or_byte(basic_run: Run) -> None:
    for path in basic_run.outputs():
        data = path.read_bytes().lower()
        assert [v for v in synthetic.PLANTED if v.lower().encode() in data] == []
        texts = [str(value).lower() for _, value in _walk(dcmread(path))]
        assert [v for v in synthetic.PLANTED if any(v.lower() in text for text in texts)] == []
        uids = {str(value) for keyword, value in _walk(dcmread(path)) if "UID" in keyword}
        originals = {synthetic.STUDY_UID, synthetic.FRAME_OF_REFERENCE_UID}
        originals |= {i.sop_instance_uid for i in synthetic.study_instances()}
        assert uids & originals == set()


def test_private_data_and_original_attributes_are_gone(basic_run: Run) -> None:
    for ds in basic_run.datasets():
        assert [keyword for keyword, _ in _walk(ds) if keyword.startswith("(")] == []  # no private tag, any depth
        for keyword in ("OtherPatientIDsSequence", "RequestAttributesSequence", "InstitutionName", "StationName"):
            assert keyword not in ds
        assert ds.preamble == b"\x00" * 128


def test_markers_and_file_meta(basic_run: Run) -> None:
    for ds in basic_run.datasets():
        assert ds.PatientIdentityRemoved == "YES"
        assert [item.CodeValue for item in ds.DeidentificationMethodCodeSequence] == ["113100"]
        assert ds.DeidentificationMethodCodeSequence[0].CodingSchemeDesignator == "DCM"
        assert ds.DeidentificationMethod[0] == "DICOM PS3.15 2026c Table E.1-1"
        assert ds.LongitudinalTemporalInformationModified == "REMOVED"
        assert ds.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID
        assert ds.file_meta.MediaStorageSOPClassUID == ds.SOPClassUID == "1.2.840.10008.5.1.4.1.1.2"
        assert "SourceApplicationEntityTitle" not in ds.file_meta


def test_references_between_instances_stay_intact(basic_run: Run) -> None:
    datasets = basic_run.datasets()
    by_position = {(int(ds.SeriesNumber), int(ds.InstanceNumber)): ds for ds in datasets}
    for (series, number), ds in by_position.items():
        if number > 1:
            referenced = ds.ReferencedImageSequence[0].ReferencedSOPInstanceUID
            assert referenced == by_position[(series, number - 1)].SOPInstanceUID
        if series == 2:
            assert ds.SourceImageSequence[0].ReferencedSOPInstanceUID == by_position[(1, 1)].SOPInstanceUID
        nested_uid = ds.PerformedProtocolCodeSequence[0].ProtocolContextSequence[0].ContentItemModifierSequence[2]
        assert ds.StudyInstanceUID == nested_uid.UID  # three levels deep, the same replacement
    assert len({ds.FrameOfReferenceUID for ds in datasets}) == 1


def test_one_study_in_one_study_out_with_consistent_pseudonyms(basic_run: Run) -> None:
    datasets = basic_run.datasets()
    for keyword in ("StudyInstanceUID", "PatientID", "PatientName", "AccessionNumber", "StudyID"):
        values = {str(ds[keyword].value) for ds in datasets}
        assert len(values) == 1, keyword
        assert values != {""}, keyword
    assert len({ds.SeriesInstanceUID for ds in datasets}) == 2
    assert len({ds.SOPInstanceUID for ds in datasets}) == 6


def test_nested_values_three_levels_deep_are_replaced(basic_run: Run) -> None:
    ds = basic_run.datasets()[0]
    name, date, _ = ds.PerformedProtocolCodeSequence[0].ProtocolContextSequence[0].ContentItemModifierSequence
    assert name.PersonName == "ANONYMIZED"  # D: a dummy
    assert date.Date == "19000101"
    assert name.ConceptNameCodeSequence[0].CodeMeaning == "Observer"  # what is not identifying stays


def test_outputs_are_laid_out_by_new_uids(basic_run: Run) -> None:
    for path in basic_run.outputs():
        ds = dcmread(path)
        relative = path.relative_to(basic_run.destination).as_posix()
        assert relative == f"{ds.StudyInstanceUID}/{ds.SeriesInstanceUID}/{ds.SOPInstanceUID}.dcm"
