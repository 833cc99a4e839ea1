"""Starting and stopping the emulator from the command line, and what it keeps across restarts."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from airflow_hi_stow.engine.importer import store_files
from airflow_hi_stow.samples import SampleSet
from airflow_hi_stow.testing import READY, RunningEmulator
from tests.emulator.conftest import instance_count, stow_client

HI_STOW = str(Path(sys.executable).parent / "hi-stow")
DATASTORE_ID = "0123456789abcdef0123456789abcdef"


def start(data_dir: Path, *args: str) -> tuple[subprocess.Popen[str], str]:
    process = subprocess.Popen(
        [HI_STOW, "emulator", "--port", "0", "--data-dir", str(data_dir), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    return process, process.stdout.readline()


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM])
def test_hi_stow_emulator_prints_where_it_listens_and_stops_cleanly(stop: signal.Signals, tmp_path: Path) -> None:
    process, line = start(tmp_path / "data", "--datastore-id", DATASTORE_ID, "--no-auth")
    try:
        match = READY.match(line)
        assert match, line
        assert match["datastore_id"] == DATASTORE_ID
        assert match["region"] == "us-east-1"
        assert line.rstrip().endswith("auth=none")
        health = requests.get(f"{match['url']}/_emulator/health", timeout=10).json()
        assert health == {"status": "ok", "datastoreId": DATASTORE_ID, "region": "us-east-1", "auth": "none"}
    finally:
        process.send_signal(stop)
        _, errors = process.communicate(timeout=30)
    assert process.returncode == 0, errors
    assert "Traceback" not in errors


def test_the_default_data_store_and_the_data_survive_a_restart(
    healthimaging_emulator: RunningEmulator, sample: SampleSet
) -> None:
    emulator = healthimaging_emulator
    first_id = emulator.datastore_id
    store_files(stow_client(emulator), [item.path for item in sample.instances])
    emulator.datastore_id = ""  # start without --datastore-id: the stored default is used
    assert emulator.stop() == 0
    emulator.start()
    assert emulator.datastore_id == first_id
    assert instance_count(emulator) == len(sample.instances)
    assert list((emulator.data_dir / "tmp").iterdir()) == []


def test_a_data_directory_serves_one_emulator_at_a_time(healthimaging_emulator: RunningEmulator) -> None:
    process, line = start(healthimaging_emulator.data_dir)
    _, errors = process.communicate(timeout=30)
    assert line == ""
    assert process.returncode != 0
    assert "is in use by another emulator" in errors


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--access-key", "AKIA0000"], "give both --access-key and --secret-key"),
        (["--no-auth", "--access-key", "a", "--secret-key", "b"], "--no-auth excludes credentials"),
        (["--datastore-id", "not-an-id"], "32 characters of [0-9a-z]"),
    ],
)
def test_inconsistent_options_are_named(args: list[str], message: str, tmp_path: Path) -> None:
    process, _ = start(tmp_path / "data", *args)
    _, errors = process.communicate(timeout=30)
    assert process.returncode != 0
    assert message in errors


def test_the_emulator_and_the_test_helpers_run_without_airflow() -> None:
    code = (
        "import sys, airflow_hi_stow.emulator.server, airflow_hi_stow.testing, airflow_hi_stow.pytest_plugin; "
        "loaded = [m for m in sys.modules if m == 'airflow' or m.startswith('airflow.')]; "
        "sys.exit(f'Airflow was imported: {loaded[:3]}' if loaded else 0)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False, timeout=60)
    assert result.returncode == 0, result.stderr
