"""A request body is streamed to disk, never held in memory: the emulator's peak RSS stays flat during a
several-hundred-megabyte upload."""

from __future__ import annotations

import hashlib
import struct
from pathlib import Path

import pytest
from pydicom import dcmread
from pydicom.data import get_testdata_file

from airflow_hi_stow.samples import SampleInstance
from airflow_hi_stow.testing import RunningEmulator
from tests.emulator.conftest import retrieve, stow_client

PIXEL_BYTES = 300 * 1024 * 1024
ALLOWED_GROWTH = 64 * 1024 * 1024


def large_instance(path: Path) -> SampleInstance:
    """A valid CT instance with 300 MB of (zero) pixel data, written without holding it in memory."""
    template = get_testdata_file("CT_small.dcm")
    assert template is not None
    dataset = dcmread(template)
    del dataset.PixelData
    dataset.Rows, dataset.Columns, dataset.NumberOfFrames = 1024, 1024, PIXEL_BYTES // (1024 * 1024 * 2)
    dataset.save_as(path, enforce_file_format=True)
    block = b"\0" * (1024 * 1024)
    with path.open("ab") as out:
        out.write(struct.pack("<HH2sHI", 0x7FE0, 0x0010, b"OW", 0, PIXEL_BYTES))
        for _ in range(PIXEL_BYTES // len(block)):
            out.write(block)
    return SampleInstance(
        path,
        str(dataset.PatientID),
        str(dataset.StudyInstanceUID),
        str(dataset.SeriesInstanceUID),
        str(dataset.SOPInstanceUID),
        path.stat().st_size,
    )


def memory_kb(emulator: RunningEmulator, field: str) -> int:
    assert emulator.process is not None
    status = Path(f"/proc/{emulator.process.pid}/status").read_text()
    line = next(line for line in status.splitlines() if line.startswith(f"{field}:"))
    return int(line.split()[1]) * 1024


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs Linux /proc")
@pytest.mark.parametrize("mode", ["aws-chunked", "sha256"])
def test_a_300_mb_upload_keeps_the_emulators_memory_flat(
    mode: str, healthimaging_emulator: RunningEmulator, tmp_path: Path
) -> None:
    emulator = healthimaging_emulator
    instance = large_instance(tmp_path / "large.dcm")
    stow_client(emulator, mode).store([instance.path])  # warm-up: imports, thread pool, first request
    baseline = memory_kb(emulator, "VmRSS")
    result = stow_client(emulator, mode).store([instance.path])
    assert result.all_stored
    growth = memory_kb(emulator, "VmHWM") - baseline
    assert growth < ALLOWED_GROWTH, (
        f"peak RSS grew {growth / 2**20:.1f} MiB during a {instance.size / 2**20:.0f} MiB upload"
    )
    received = hashlib.sha256()
    with retrieve(emulator, instance, stream=True) as response:
        for block in response.iter_content(1024 * 1024):
            received.update(block)
    with instance.path.open("rb") as sent:
        assert received.hexdigest() == hashlib.file_digest(sent, "sha256").hexdigest()
