"""The benchmark workloads, written fast: 40 KB instances (pydicom's CT_small with UIDs of their own), 5 MB and
~0.9 GB multi-frame CT instances (CT_small's header and its pixels tiled into 512 x 512 frames), and the same bytes
as pre-built multipart/related bodies for curl."""

from __future__ import annotations

import io
import os
import struct
from dataclasses import dataclass
from pathlib import Path

from pydicom import dcmread
from pydicom.data import get_testdata_file
from pydicom.uid import UID

from airflow_hi_stow.core import multipart

ROOT = "1.2.826.0.1.3680043.8.498."
"""pydicom's UID root, under which generate_uid makes UIDs too."""
FRAME = 512 * 512 * 2


def _uid(kind: int, number: int) -> str:
    """A valid UID of fixed length (no arc starts with 0), so that a template's values can be replaced in place."""
    return f"{ROOT}{kind}.1{number:019d}"


@dataclass(frozen=True)
class _Template:
    """CT_small's P10 bytes (up to its pixel data for multi-frame ones) with placeholder UIDs, and where they are."""

    data: bytes
    study_at: int
    series_at: int
    sop_at: tuple[int, ...]
    """SOPInstanceUID and MediaStorageSOPInstanceUID."""

    @classmethod
    def make(cls, frames: int) -> _Template:
        path = get_testdata_file("CT_small.dcm")
        assert path is not None
        dataset = dcmread(path)
        pixels = dataset.PixelData
        del dataset.PixelData
        if frames:
            dataset.Rows, dataset.Columns, dataset.NumberOfFrames = 512, 512, frames
        dataset.StudyInstanceUID = _uid(1, 0)
        dataset.SeriesInstanceUID = _uid(2, 0)
        dataset.SOPInstanceUID = dataset.file_meta.MediaStorageSOPInstanceUID = UID(_uid(3, 0))
        out = io.BytesIO()
        dataset.save_as(out, enforce_file_format=True)
        data = out.getvalue()
        sop = _uid(3, 0).encode()
        sop_at = tuple(at for at in range(len(data)) if data.startswith(sop, at))
        if not frames:
            data += struct.pack("<HH2sHI", 0x7FE0, 0x0010, b"OW", 0, len(pixels)) + pixels
        return cls(data, data.index(_uid(1, 0).encode()), data.index(_uid(2, 0).encode()), sop_at)

    def stamp(self, study: int, series: int, sop: int) -> bytearray:
        data = bytearray(self.data)
        for at, value in ((self.study_at, _uid(1, study)), (self.series_at, _uid(2, series))):
            data[at : at + len(value)] = value.encode()
        for at in self.sop_at:
            data[at : at + len(_uid(3, sop))] = _uid(3, sop).encode()
        return data


def small_instances(folder: Path, count: int, per_study: int = 100) -> list[Path]:
    """``count`` ~40 KB CT instances in studies of ``per_study`` (10 series each), a folder per study."""
    template = _Template.make(0)
    paths = []
    for number in range(count):
        study = number // per_study
        if number % per_study == 0:
            (folder / f"study-{study:05d}").mkdir(parents=True, exist_ok=True)
        path = folder / f"study-{study:05d}" / f"{number:06d}.dcm"
        path.write_bytes(template.stamp(study, study * 10 + number % 10, number))
        paths.append(path)
    return paths


def multiframe_instances(folder: Path, count: int, frames: int, name: str, per_study: int = 20) -> list[Path]:
    """``count`` CT instances of ``frames`` 512 x 512 16-bit frames (CT_small's pixels tiled; real bytes), in
    studies of ``per_study``."""
    template = _Template.make(frames)
    path = get_testdata_file("CT_small.dcm")
    assert path is not None
    tile = dcmread(path).PixelData
    frame = (tile * (FRAME // len(tile) + 1))[:FRAME]
    block = frame * max(1, (8 << 20) // FRAME)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for number in range(count):
        target = folder / f"{name}-{number:04d}.dcm"
        with target.open("wb") as out:
            study = 900_000 + number // per_study
            out.write(template.stamp(study, study, 900_000 + number))
            out.write(struct.pack("<HH2sHI", 0x7FE0, 0x0010, b"OW", 0, frames * FRAME))
            left = frames * FRAME
            while left:
                piece = block[: min(left, len(block))]
                out.write(piece)
                left -= len(piece)
        paths.append(target)
    return paths


@dataclass(frozen=True)
class Body:
    path: Path
    boundary: str
    length: int
    parts: int


def multipart_bodies(files: list[Path], per_body: int, max_bytes: int, folder: Path) -> list[Body]:
    """The files as multipart/related bodies of at most ``per_body`` parts and ``max_bytes`` of DICOM each, framed
    as the package's client frames them."""
    folder.mkdir(parents=True, exist_ok=True)
    groups: list[list[Path]] = [[]]
    size = 0
    for path in files:
        length = path.stat().st_size
        if groups[-1] and (len(groups[-1]) == per_body or size + length > max_bytes):
            groups.append([])
            size = 0
        groups[-1].append(path)
        size += length
    bodies = []
    for number, group in enumerate(groups):
        boundary = multipart.new_boundary()
        target = folder / f"body-{number:05d}.bin"
        with target.open("wb") as out:
            for path in group:
                out.write(multipart.part_opening(boundary))
                with path.open("rb") as source:
                    while block := source.read(8 << 20):
                        out.write(block)
                out.write(multipart.PART_CLOSING)
            out.write(multipart.closing_delimiter(boundary))
        bodies.append(Body(target, boundary, os.path.getsize(target), len(group)))
    return bodies
