"""A request body is streamed to disk, never held in memory: the emulator's peak RSS stays flat during a
several-hundred-megabyte upload."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from airflow_hi_stow.engine.importer import store_files
from airflow_hi_stow.samples import large_instance
from airflow_hi_stow.testing import RunningEmulator
from tests.emulator.conftest import retrieve, stow_client

PIXEL_BYTES = 300 * 1024 * 1024
ALLOWED_GROWTH = 64 * 1024 * 1024


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
    instance = large_instance(tmp_path / "large.dcm", PIXEL_BYTES)
    store_files(stow_client(emulator, mode), [instance.path])  # warm-up: imports, thread pool, first request
    baseline = memory_kb(emulator, "VmRSS")
    result = store_files(stow_client(emulator, mode), [instance.path])
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
