"""Realistic synthetic DICOM studies for the demo, tests and benchmarks, built from pydicom's bundled test files.

Every patient gets studies of 2-3 series (CT or MR), each series a stack of instances with their own UIDs,
positions and numbers. The names and identifiers are invented ("DEMO^PATIENT01"), never real patient data.
Optionally one study is written a second time, as a PACS would re-deliver it after a correction, with another
Patient ID: HealthImaging puts those instances into a non-primary image set. For the de-identification pipeline,
identifying values can be planted where real files hide them (:data:`PLANTED`: top level, three sequence levels deep,
a vendor's private block), one series of a study can carry another Patient ID, and :func:`write_bad_files` adds what
real exports contain besides DICOM.

    python -m airflow_hi_stow.samples DIRECTORY [--patients 6] [--seed 0] [--no-redelivery]
                                      [--plant-phi] [--conflicting-series] [--bad-files]

writes the set into DIRECTORY (which must be absent or empty) and the re-delivery beside it, ``DIRECTORY-redelivered``.
"""

from __future__ import annotations

import argparse
import copy
import random
import struct
import sys
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path

from pydicom import Dataset, dcmread
from pydicom.data import get_testdata_file
from pydicom.sequence import Sequence
from pydicom.uid import UID, generate_uid

TEMPLATES = {"CT": "CT_small.dcm", "MR": "MR_small.dcm"}
"""Modality -> pydicom test file used as the template (both Explicit VR Little Endian)."""


@dataclass(frozen=True)
class SampleInstance:
    path: Path
    patient_id: str
    study_instance_uid: str
    series_instance_uid: str
    sop_instance_uid: str
    size: int


@dataclass
class SampleSet:
    """What :func:`generate_dataset` wrote."""

    root: Path
    instances: list[SampleInstance] = field(default_factory=list)
    redelivered: list[SampleInstance] = field(default_factory=list)
    """The conflicting second copy of one study (under ``redelivered_root``), if asked for."""
    redelivered_root: Path | None = None
    conflicting_study_uid: str | None = None

    @property
    def study_uids(self) -> list[str]:
        return sorted({instance.study_instance_uid for instance in self.instances})

    @property
    def series_uids(self) -> list[str]:
        return sorted({instance.series_instance_uid for instance in self.instances})

    @property
    def total_bytes(self) -> int:
        return sum(instance.size for instance in self.instances)


PLANTED = {
    "OperatorsName": "DEMO^OPERATOR^KELLY",
    "PerformingPhysicianName": "DEMO^PERFORMER^LEE",
    "InstitutionAddress": "12 Demo Street, Demotown",
    "StationName": "DEMO-CT-STN-7",
    "DeviceSerialNumber": "SN-DEMO-904711",
    "PatientAddress": "34 Sample Road, Demoville",
    "AdditionalPatientHistory": "Seen by Dr Demohouse after a fall",
}
"""Identifying values planted at the top level (and, below, in sequences and a private block) by ``plant_phi``."""
PLANTED_NESTED = "DEMO-FACILITY-MRN-ISSUER"
"""Planted three levels deep: Other Patient IDs > Issuer Qualifiers > Assigning Facility > Local Namespace."""
PLANTED_PRIVATE = "DEMO^PRIVATE^TECHNOLOGIST"
"""Planted in a private block, as vendors keep an operator's name."""
CONFLICTING_PATIENT_ID = "DEMO-0001-MISFILED"


def _plant(dataset: Dataset, patient_id: str) -> None:
    for keyword, value in PLANTED.items():
        setattr(dataset, keyword, value)
    facility = Dataset()
    facility.LocalNamespaceEntityID = PLANTED_NESTED
    qualifiers = Dataset()
    qualifiers.AssigningFacilitySequence = Sequence([facility])
    other = Dataset()
    other.PatientID = f"MRN-{patient_id}"
    other.TypeOfPatientID = "TEXT"
    other.IssuerOfPatientIDQualifiersSequence = Sequence([qualifiers])
    dataset.OtherPatientIDsSequence = Sequence([other])
    block = dataset.private_block(0x0011, "DEMO VENDOR PRIVATE", create=True)
    block.add_new(0x10, "PN", PLANTED_PRIVATE)
    block.add_new(0x11, "DA", "20240102")


def planted_values(sample: SampleSet) -> set[str]:
    """Every identifying value a set carries that must never survive de-identification: the planted ones and the
    patients' names, IDs, birth dates and accession numbers."""
    values = {*PLANTED.values(), PLANTED_NESTED, PLANTED_PRIVATE}
    for instance in sample.instances:
        dataset = dcmread(instance.path, stop_before_pixels=True)
        for keyword in ("PatientName", "PatientID", "PatientBirthDate", "AccessionNumber"):
            if value := dataset.get(keyword):
                values.add(str(value))
    return values


def write_bad_files(root: str | Path, good: Path) -> dict[str, Path]:
    """What real exports hold besides DICOM: a text file, an empty file and a truncated copy of ``good``."""
    root = Path(root)
    bad = {
        "text": root / "EXPORT-NOTES.txt",
        "empty": root / "empty.dcm",
        "truncated": root / "truncated.dcm",
    }
    bad["text"].write_text("Exported from the demo PACS; not a DICOM file.\n")
    bad["empty"].write_bytes(b"")
    bad["truncated"].write_bytes(good.read_bytes()[:600])
    return bad


def _uid(rng: random.Random) -> str:
    return str(generate_uid(entropy_srcs=[str(rng.random())]))


def _template(modality: str) -> Dataset:
    path = get_testdata_file(TEMPLATES[modality])
    if path is None:
        raise FileNotFoundError(f"pydicom's test file {TEMPLATES[modality]} is missing")
    return dcmread(path)


def generate_dataset(
    root: str | Path,
    *,
    patients: int = 4,
    studies_per_patient: tuple[int, int] = (1, 2),
    series_per_study: tuple[int, int] = (2, 3),
    instances_per_series: tuple[int, int] = (10, 30),
    redeliver_one_study: bool = True,
    seed: int = 0,
    plant_phi: bool = False,
    conflicting_series: bool = False,
) -> SampleSet:
    """Write ``root/<patient>/<study>/<series>/<n>.dcm`` (sizes are inclusive ranges, drawn with ``seed``).

    With ``redeliver_one_study``, the first patient's first study is written again under
    ``root.parent / (root.name + "-redelivered")`` with the same UIDs but another Patient ID. With ``plant_phi``,
    every instance carries identifying values in the places de-identifiers miss (see :data:`PLANTED`). With
    ``conflicting_series``, the last series of the first patient's first study carries another Patient ID
    (:data:`CONFLICTING_PATIENT_ID`), as a misfiled series does.
    """
    rng = random.Random(seed)
    root = Path(root)
    templates = {modality: _template(modality) for modality in TEMPLATES}
    result = SampleSet(root)
    first_study: list[tuple[Dataset, Path]] = []
    for patient_number in range(1, patients + 1):
        patient = {
            "PatientName": f"DEMO^PATIENT{patient_number:02d}",
            "PatientID": f"DEMO-{patient_number:04d}",
            "PatientBirthDate": (date(1950, 1, 1) + timedelta(days=rng.randrange(20000))).strftime("%Y%m%d"),
            "PatientSex": rng.choice("FM"),
        }
        for study_number in range(1, rng.randint(*studies_per_patient) + 1):
            study_uid = _uid(rng)
            study_date = (date(2024, 1, 1) + timedelta(days=rng.randrange(600))).strftime("%Y%m%d")
            study = {
                "StudyInstanceUID": study_uid,
                "StudyDate": study_date,
                "StudyTime": f"{rng.randrange(7, 19):02d}{rng.randrange(60):02d}00",
                "StudyID": f"S{study_number}",
                "AccessionNumber": f"ACC{rng.randrange(10**6):06d}",
                "StudyDescription": "DEMO STUDY",
            }
            series_count = rng.randint(*series_per_study)
            for series_number in range(1, series_count + 1):
                modality = rng.choice(sorted(TEMPLATES))
                series_uid = _uid(rng)
                series = {
                    "SeriesInstanceUID": series_uid,
                    "SeriesNumber": series_number,
                    "SeriesDescription": f"DEMO {modality} SERIES {series_number}",
                    "FrameOfReferenceUID": _uid(rng),
                }
                folder = root / patient["PatientID"] / study_uid / series_uid
                folder.mkdir(parents=True, exist_ok=True)
                misfiled = conflicting_series and patient_number == 1 and study_number == 1 and series_number > 1
                misfiled = misfiled and series_number == series_count
                for number in range(1, rng.randint(*instances_per_series) + 1):
                    dataset = copy.deepcopy(templates[modality])  # Dataset.copy() shares the elements
                    for keyword, value in {**patient, **study, **series}.items():
                        setattr(dataset, keyword, value)
                    if misfiled:
                        dataset.PatientID = CONFLICTING_PATIENT_ID
                    if plant_phi:
                        _plant(dataset, str(dataset.PatientID))
                    sop_uid = _uid(rng)
                    dataset.SOPInstanceUID = dataset.file_meta.MediaStorageSOPInstanceUID = UID(sop_uid)
                    dataset.InstanceNumber = number
                    dataset.ImagePositionPatient = [0.0, 0.0, float(number) * 2.5]
                    dataset.SliceLocation = float(number) * 2.5
                    dataset.InstitutionName = "DEMO HOSPITAL"
                    dataset.ReferringPhysicianName = "DEMO^REFERRER"
                    path = folder / f"{number:04d}.dcm"
                    dataset.save_as(path, enforce_file_format=True)
                    result.instances.append(
                        SampleInstance(
                            path,
                            str(dataset.PatientID),
                            study_uid,
                            series_uid,
                            sop_uid,
                            path.stat().st_size,
                        )
                    )
                    if patient_number == 1 and study_number == 1:
                        first_study.append((dataset, path.relative_to(root)))
    if redeliver_one_study and first_study:
        result.redelivered_root = root.parent / f"{root.name}-redelivered"
        result.conflicting_study_uid = str(first_study[0][0].StudyInstanceUID)
        for dataset, relative in first_study:
            dataset.PatientID = "DEMO-0001-CORRECTED"
            path = result.redelivered_root / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            dataset.save_as(path, enforce_file_format=True)
            result.redelivered.append(
                SampleInstance(
                    path,
                    "DEMO-0001-CORRECTED",
                    str(dataset.StudyInstanceUID),
                    str(dataset.SeriesInstanceUID),
                    str(dataset.SOPInstanceUID),
                    path.stat().st_size,
                )
            )
    return result


def large_instance(path: str | Path, pixel_bytes: int) -> SampleInstance:
    """A valid CT instance (pydicom's CT_small with new UIDs) whose pixel data is ``pixel_bytes`` zero bytes: a
    sparse hole in the file, so that large instances cost neither memory nor disk to make."""
    path = Path(path)
    dataset = _template("CT")
    del dataset.PixelData
    frames, rest = divmod(pixel_bytes, 512 * 512 * 2)
    if rest or not frames:
        raise ValueError("pixel_bytes must be a positive multiple of 512 KiB (frames of 512x512 16-bit pixels)")
    dataset.Rows, dataset.Columns, dataset.NumberOfFrames = 512, 512, frames
    dataset.StudyInstanceUID, dataset.SeriesInstanceUID = generate_uid(), generate_uid()
    dataset.SOPInstanceUID = dataset.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    dataset.save_as(path, enforce_file_format=True)
    with path.open("r+b") as out:
        out.seek(0, 2)
        out.write(struct.pack("<HH2sHI", 0x7FE0, 0x0010, b"OW", 0, pixel_bytes))  # Pixel Data, Explicit VR LE
        out.truncate(out.tell() + pixel_bytes)
    return SampleInstance(
        path,
        str(dataset.PatientID),
        str(dataset.StudyInstanceUID),
        str(dataset.SeriesInstanceUID),
        str(dataset.SOPInstanceUID),
        path.stat().st_size,
    )


def main(argv: list[str] | None = None) -> int:
    """Write a sample set where the command line says (the compose stack's init job does, at bring-up)."""
    parser = argparse.ArgumentParser(prog="python -m airflow_hi_stow.samples", description=__doc__.splitlines()[0])
    parser.add_argument("directory", type=Path, help="where the set goes (absent or empty)")
    parser.add_argument("--patients", type=int, default=6, help="number of patients (default: 6)")
    parser.add_argument("--seed", type=int, default=0, help="the same seed writes the same set (default: 0)")
    parser.add_argument(
        "--no-redelivery", action="store_true", help="leave out the re-delivered study with another Patient ID"
    )
    parser.add_argument(
        "--plant-phi", action="store_true", help="plant identifying values where de-identifiers miss them"
    )
    parser.add_argument(
        "--conflicting-series", action="store_true", help="one series misfiled under another Patient ID"
    )
    parser.add_argument("--bad-files", action="store_true", help="add a text file, an empty file and a truncated one")
    args = parser.parse_args(argv)
    if args.directory.exists() and any(args.directory.iterdir()):
        parser.error(f"{args.directory} is not empty")
    sample = generate_dataset(
        args.directory,
        patients=args.patients,
        redeliver_one_study=not args.no_redelivery,
        seed=args.seed,
        plant_phi=args.plant_phi,
        conflicting_series=args.conflicting_series,
    )
    print(
        f"{len(sample.instances)} instances in {len(sample.study_uids)} studies ({sample.total_bytes / 1e6:.1f} MB) "
        f"under {sample.root}"
    )
    if sample.redelivered:
        print(f"{len(sample.redelivered)} re-delivered with another Patient ID under {sample.redelivered_root}")
    if args.bad_files:
        bad = write_bad_files(args.directory, sample.instances[0].path)
        print(f"{len(bad)} files that are not valid DICOM: {', '.join(sorted(path.name for path in bad.values()))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
