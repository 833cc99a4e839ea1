"""A synthetic study built from pydicom's CT_small.dcm, with patient data planted where de-identifiers miss it.

Two series of three CT instances: names, IDs, dates, institution and device identifiers at the top level; the same
values three sequence levels deep, in a vendor's private block (with a nested private sequence), in Other Patient IDs
and Request Attributes; and references between instances (Referenced Image, Source Image, Frame of Reference).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from pathlib import Path

from pydicom import dcmread
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.uid import UID

_NAMESPACE = uuid.UUID("6d0f7f0e-4a39-4c25-9c5e-3b8f6f1d2a10")

PATIENT_NAME = "Quixote^Alonso^Quijano"
PATIENT_ID = "MRN7734219"
OTHER_PATIENT_ID = "OLDMRN55120"
BIRTH_DATE = "19470312"
ACCESSION = "ACC88231977"
STUDY_ID = "STU4471"
STUDY_DATE = "20240305"
INSTITUTION = "Saint Wendelin Hospital"
ADDRESS = "12 Larkspur Lane, Springfield"
REFERRING = "Hawthorne^Beatrix"
OPERATOR = "Okonkwo^Chidi"
DEVICE_SERIAL = "SN99381XZ"
STATION = "CTSTATION7"
PRIVATE_CREATOR = "ACME PHI 1.0"

# Every value planted; none may remain in any output (searched by the tests, independently of the engine's scan).
PLANTED = (
    PATIENT_NAME,
    "Quixote",
    "Alonso",
    PATIENT_ID,
    OTHER_PATIENT_ID,
    BIRTH_DATE,
    ACCESSION,
    STUDY_ID,
    STUDY_DATE,
    INSTITUTION,
    ADDRESS,
    "Hawthorne",
    "Okonkwo",
    DEVICE_SERIAL,
    STATION,
)


def make_uid(label: str) -> str:
    return f"2.25.{uuid.uuid5(_NAMESPACE, label).int}"


@dataclass(frozen=True)
class Instance:
    series: int
    number: int
    sop_instance_uid: str
    series_instance_uid: str


TEMPLATE = str(get_testdata_file("CT_small.dcm"))  # a path: pydicom bundles it
STUDY_UID = make_uid("study")
FRAME_OF_REFERENCE_UID = make_uid("frame-of-reference")


def _item(**attributes: object) -> Dataset:
    item = Dataset()
    for keyword, value in attributes.items():
        setattr(item, keyword, value)
    return item


def _code(value: str, meaning: str) -> Dataset:
    return _item(CodeValue=value, CodingSchemeDesignator="99TEST", CodeMeaning=meaning)


def _plant(ds: Dataset, instance: Instance, previous: Instance | None, first_of_series_1: Instance) -> None:
    ds.SOPInstanceUID = instance.sop_instance_uid
    ds.file_meta.MediaStorageSOPInstanceUID = UID(instance.sop_instance_uid)
    ds.StudyInstanceUID = STUDY_UID
    ds.SeriesInstanceUID = instance.series_instance_uid
    ds.FrameOfReferenceUID = FRAME_OF_REFERENCE_UID
    ds.SeriesNumber = instance.series
    ds.InstanceNumber = instance.number
    ds.PatientName = PATIENT_NAME
    ds.PatientID = PATIENT_ID
    ds.PatientBirthDate = BIRTH_DATE
    ds.PatientAge = "076Y"
    ds.AccessionNumber = ACCESSION
    ds.StudyID = STUDY_ID
    ds.StudyDate = ds.SeriesDate = ds.AcquisitionDate = ds.ContentDate = STUDY_DATE
    ds.InstanceCreationDate = STUDY_DATE
    ds.AcquisitionDateTime = STUDY_DATE + "101520.000000"
    ds.InstitutionName = INSTITUTION
    ds.InstitutionAddress = ADDRESS
    ds.ReferringPhysicianName = REFERRING
    ds.OperatorsName = OPERATOR
    ds.DeviceSerialNumber = DEVICE_SERIAL
    ds.StationName = STATION
    ds.StudyDescription = "CT chest for Alonso Quixote"
    ds.OtherPatientIDsSequence = Sequence([_item(PatientID=OTHER_PATIENT_ID, TypeOfPatientID="TEXT")])
    ds.RequestAttributesSequence = Sequence(
        [_item(AccessionNumber=ACCESSION, StudyInstanceUID=STUDY_UID, RequestedProcedureID=STUDY_ID)]
    )
    # Three levels deep, in sequences the profile keeps: a name, a date and a reference to the study.
    level3 = [
        _item(ValueType="PNAME", ConceptNameCodeSequence=Sequence([_code("121008", "Observer")]), PersonName=OPERATOR),
        _item(ValueType="DATE", ConceptNameCodeSequence=Sequence([_code("111060", "Study Date")]), Date=STUDY_DATE),
        _item(ValueType="UIDREF", ConceptNameCodeSequence=Sequence([_code("110180", "Study UID")]), UID=STUDY_UID),
    ]
    level2 = _item(
        ValueType="CODE",
        ConceptNameCodeSequence=Sequence([_code("G-C0E8", "Protocol")]),
        ConceptCodeSequence=Sequence([_code("P5-0800", "CT chest")]),
        ContentItemModifierSequence=Sequence(level3),
    )
    protocol = _code("P5-0800", "CT chest")
    protocol.ProtocolContextSequence = Sequence([level2])
    ds.PerformedProtocolCodeSequence = Sequence([protocol])
    # A vendor's private block: a name, the MRN, a date and a nested private sequence holding a name.
    block = ds.private_block(0x0009, PRIVATE_CREATOR, create=True)
    block.add_new(0x10, "LO", PATIENT_NAME)
    block.add_new(0x11, "LO", PATIENT_ID)
    block.add_new(0x12, "DA", STUDY_DATE)
    nested = Dataset()
    nested.private_block(0x0009, PRIVATE_CREATOR, create=True).add_new(0x20, "PN", OPERATOR)
    block.add_new(0x13, "SQ", Sequence([nested]))
    # References between instances.
    if previous is not None:
        ds.ReferencedImageSequence = Sequence(
            [_item(ReferencedSOPClassUID=ds.SOPClassUID, ReferencedSOPInstanceUID=previous.sop_instance_uid)]
        )
    if instance.series == 2:
        ds.SourceImageSequence = Sequence(
            [_item(ReferencedSOPClassUID=ds.SOPClassUID, ReferencedSOPInstanceUID=first_of_series_1.sop_instance_uid)]
        )


def study_instances() -> list[Instance]:
    return [
        Instance(series, number, make_uid(f"sop-{series}-{number}"), make_uid(f"series-{series}"))
        for series in (1, 2)
        for number in (1, 2, 3)
    ]


def write_study(directory: Path) -> list[Path]:
    """Write the six instances to ``directory``; returns their paths in instance order."""
    directory.mkdir(parents=True, exist_ok=True)
    instances = study_instances()
    paths = []
    for index, instance in enumerate(instances):
        ds = dcmread(TEMPLATE)
        previous = instances[index - 1] if instance.number > 1 else None
        _plant(ds, instance, previous, instances[0])
        path = directory / f"{PATIENT_ID}_{instance.series}_{instance.number}.dcm"  # a name holding patient data
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths
