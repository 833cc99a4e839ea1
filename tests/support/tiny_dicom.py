"""Small but complete DICOM P10 instances (a CT image of 4x4 pixels, about 700 bytes each), for runs that need
thousands of files quickly: the fault matrix, the crash and load tests. The identifiers are invented."""

from __future__ import annotations

import io
import random
from dataclasses import dataclass
from pathlib import Path

from pydicom import Dataset, dcmwrite
from pydicom.dataset import FileMetaDataset
from pydicom.uid import UID, CTImageStorage, ExplicitVRLittleEndian


@dataclass(frozen=True)
class TinyInstance:
    path: Path
    study_instance_uid: str
    series_instance_uid: str
    sop_instance_uid: str


_ROOT = "1.2.826.0.1.3680043.8.498."
_PLACEHOLDERS = {name: _ROOT + digit * 20 for name, digit in (("study", "1"), ("series", "2"), ("sop", "3"))}
"""UIDs of one fixed length (46 characters: even, so never padded), replaced in the encoded template."""


def _uid(rng: random.Random) -> str:
    return _ROOT + str(rng.randrange(10**19, 10**20))


def _template() -> bytes:
    dataset = Dataset()
    dataset.file_meta = FileMetaDataset()
    dataset.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    dataset.file_meta.MediaStorageSOPClassUID = CTImageStorage
    dataset.file_meta.MediaStorageSOPInstanceUID = UID(_PLACEHOLDERS["sop"])
    dataset.SOPClassUID = CTImageStorage
    dataset.SOPInstanceUID = _PLACEHOLDERS["sop"]
    dataset.Modality = "CT"
    dataset.PatientName = "TINY^PATIENT"
    dataset.PatientID = "TINY-0000"
    dataset.StudyDate = "20260101"
    dataset.StudyInstanceUID = _PLACEHOLDERS["study"]
    dataset.SeriesInstanceUID = _PLACEHOLDERS["series"]
    dataset.SeriesNumber = 1
    dataset.Rows = dataset.Columns = 4
    dataset.SamplesPerPixel = 1
    dataset.PhotometricInterpretation = "MONOCHROME2"
    dataset.BitsAllocated = dataset.BitsStored = 16
    dataset.HighBit = 15
    dataset.PixelRepresentation = 0
    dataset.PixelData = bytes(32)
    encoded = io.BytesIO()
    dcmwrite(encoded, dataset, enforce_file_format=True)
    return encoded.getvalue()


def write_tiny_instances(
    root: Path, count: int, *, studies: int = 10, series_per_study: int = 2, seed: int = 0
) -> list[TinyInstance]:
    """``count`` instances spread over ``studies`` studies of ``series_per_study`` series, as
    ``root/<study>/<series>/<n>.dcm``; the same seed writes the same set."""
    rng = random.Random(seed)
    template = _template()
    series = [
        (study_uid, _uid(rng), study_number)
        for study_number, study_uid in enumerate(_uid(rng) for _ in range(studies))
        for _ in range(series_per_study)
    ]
    written = []
    for number in range(count):
        study_uid, series_uid, study_number = series[number % len(series)]
        sop_uid = _uid(rng)
        data = (
            template.replace(_PLACEHOLDERS["study"].encode(), study_uid.encode())
            .replace(_PLACEHOLDERS["series"].encode(), series_uid.encode())
            .replace(_PLACEHOLDERS["sop"].encode(), sop_uid.encode())
            .replace(b"TINY-0000", f"TINY-{study_number % 10000:04d}".encode())
        )
        path = root / study_uid / series_uid / f"{number:06d}.dcm"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        written.append(TinyInstance(path, study_uid, series_uid, sop_uid))
    return written
