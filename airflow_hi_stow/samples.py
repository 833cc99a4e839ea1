"""Realistic synthetic DICOM studies for the demo, tests and benchmarks, built from pydicom's bundled test files.

Every patient gets studies of 2-3 series (CT or MR), each series a stack of instances with their own UIDs,
positions and numbers. The names and identifiers are invented ("DEMO^PATIENT01"), never real patient data.
Optionally one study is written a second time, as a PACS would re-deliver it after a correction, with another
Patient ID: HealthImaging puts those instances into a non-primary image set.

    python -m airflow_hi_stow.samples DIRECTORY [--patients 6] [--seed 0] [--no-redelivery]

writes the set into DIRECTORY (which must be absent or empty) and the re-delivery beside it, ``DIRECTORY-redelivered``.
"""

from __future__ import annotations

import argparse
import copy
import random
import struct
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path

from pydicom import Dataset, dcmread
from pydicom.data import get_testdata_file
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
) -> SampleSet:
    """Write ``root/<patient>/<study>/<series>/<n>.dcm`` (sizes are inclusive ranges, drawn with ``seed``).

    With ``redeliver_one_study``, the first patient's first study is written again under
    ``root.parent / (root.name + "-redelivered")`` with the same UIDs but another Patient ID.
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
            for series_number in range(1, rng.randint(*series_per_study) + 1):
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
                for number in range(1, rng.randint(*instances_per_series) + 1):
                    dataset = copy.deepcopy(templates[modality])  # Dataset.copy() shares the elements
                    for keyword, value in {**patient, **study, **series}.items():
                        setattr(dataset, keyword, value)
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
                            patient["PatientID"],
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


def main(argv: Sequence[str] | None = None) -> int:
    """Write a sample set where the command line says (the compose stack's init job does, at bring-up)."""
    parser = argparse.ArgumentParser(prog="python -m airflow_hi_stow.samples", description=__doc__.splitlines()[0])
    parser.add_argument("directory", type=Path, help="where the set goes (absent or empty)")
    parser.add_argument("--patients", type=int, default=6, help="number of patients (default: 6)")
    parser.add_argument("--seed", type=int, default=0, help="the same seed writes the same set (default: 0)")
    parser.add_argument(
        "--no-redelivery", action="store_true", help="leave out the re-delivered study with another Patient ID"
    )
    args = parser.parse_args(argv)
    if args.directory.exists() and any(args.directory.iterdir()):
        parser.error(f"{args.directory} is not empty")
    sample = generate_dataset(
        args.directory, patients=args.patients, redeliver_one_study=not args.no_redelivery, seed=args.seed
    )
    print(
        f"{len(sample.instances)} instances in {len(sample.study_uids)} studies ({sample.total_bytes / 1e6:.1f} MB) "
        f"under {sample.root}"
    )
    if sample.redelivered:
        print(f"{len(sample.redelivered)} re-delivered with another Patient ID under {sample.redelivered_root}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
