"""A task's process SIGKILLed at seeded random moments (its whole process group, as an OOM kill or a lost node ends
it), then run again with the same records, as Airflow retries a task instance: a store task (at least 10 kill points)
and a de-identification task (10 kill points, single- and multi-process). After the last try every instance is
stored (those re-sent bounded by what was in flight at each kill) or accounted for, and no record or output is
corrupt or partial."""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from pydicom import dcmread

from airflow_hi_stow.deid import DeidentificationKey
from airflow_hi_stow.engine.deidentify import deidentify_source
from airflow_hi_stow.engine.ledger import read_manifest
from airflow_hi_stow.samples import write_bad_files
from airflow_hi_stow.sources.resolve import read_file_list
from airflow_hi_stow.storage.files import is_partial
from airflow_hi_stow.storage.locations import LocalLocation
from airflow_hi_stow.testing import RunningEmulator, start_emulator
from tests.reliability import crash_child
from tests.support.tiny_dicom import write_tiny_instances

ROOT = Path(__file__).resolve().parents[2]
SEED = 20
KEY = "crash-test-key-" + "k" * 40


@dataclass
class Tries:
    """What the kill-and-retry loop did."""

    kill_points: list[float] = field(default_factory=list)
    """Seconds after each killed try started its work."""
    finished_early: int = 0
    """Tries that were done before their kill point came."""
    summary: dict[str, Any] = field(default_factory=dict)


@pytest.fixture
def processes() -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for process in started:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def kill_and_retry(
    task: str,
    arguments: Callable[[int], dict[str, Any]],
    environment: dict[str, str],
    *,
    kills: int,
    kill_point: Callable[[], Callable[[], bool]],
    started: list[subprocess.Popen[bytes]],
    after_kill: Callable[[], None] = lambda: None,
) -> Tries:
    """Run the task's tries one after another (``arguments(try_number)``), SIGKILLing each of the first ``kills``
    when its ``kill_point()`` says so, until a try succeeds."""
    tries = Tries()
    while True:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.reliability.crash_child",
                task,
                json.dumps(arguments(len(tries.kill_points))),
            ],
            cwd=ROOT,
            env={**os.environ, **environment},
            stdout=subprocess.PIPE,
            start_new_session=True,
        )
        started.append(process)
        assert process.stdout is not None
        assert process.stdout.readline() == b"started\n", "the child did not start"
        began = time.monotonic()
        if len(tries.kill_points) < kills:
            due = kill_point()
            while process.poll() is None and not due():
                time.sleep(0.01)
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
                tries.kill_points.append(time.monotonic() - began)
                after_kill()
                continue
            tries.finished_early += 1
        output = process.stdout.read()
        assert process.wait(300) == 0, output[-2000:]
        tries.summary = json.loads(output.splitlines()[-1])
        return tries


def after_seconds(seconds: float) -> Callable[[], bool]:
    deadline = time.monotonic() + seconds
    return lambda: time.monotonic() >= deadline


def parsed_lines(path: Path) -> list[dict[str, Any]]:
    """Every line of a JSON-lines record, each a complete JSON object (none torn, none half-written)."""
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def no_partial_files(*roots: Path) -> list[Path]:
    return [path for root in roots for path in root.rglob("*") if is_partial(path.name)]


def test_a_store_task_killed_again_and_again_stores_everything_once_resending_only_what_was_in_flight(
    tmp_path: Path, processes: list[subprocess.Popen[bytes]]
) -> None:
    batch, connections, kills = 10, 2, 10
    files = write_tiny_instances(tmp_path / "in", 800, studies=8)
    records = tmp_path / "records"
    with start_emulator(tmp_path / "emulator", extra_args=["--slow-rate", "1", "--slow-seconds", "0.1"]) as emulator:
        environment = {crash_child.ACCESS_KEY: emulator.access_key, crash_child.SECRET_KEY: emulator.secret_key}
        arguments = {
            "source": str(tmp_path / "in"),
            "records": str(records),
            "url": emulator.dicomweb_url,
            "region": emulator.region,
            "batch": batch,
            "connections": connections,
        }

        confirmed: set[str] = set()

        def records_are_whole() -> None:
            ledger = parsed_lines(records / "ledger.jsonl")
            assert all(entry["outcome"] == "stored" and entry["fingerprint"] for entry in ledger)
            parsed_lines(records / "tries.jsonl")
            assert not (records / "manifest.jsonl").exists()  # a killed try never published one
            confirmed.update(entry["source"] for entry in ledger)

        rng = random.Random(SEED)

        def kill_point() -> Callable[[], bool]:
            """A quarter of the kills while the try reads headers and the ledger; the others once it has confirmed
            a random number of requests more, a random moment later (mid-request, mid-ledger write...)."""
            if rng.random() < 0.25:
                return after_seconds(rng.uniform(0.0, 1.0))
            goal = len(confirmed_lines()) + rng.randint(1, 8) * batch
            pause = rng.uniform(0.0, 0.3)
            reached: list[Callable[[], bool]] = []

            def due() -> bool:
                if not reached and len(confirmed_lines()) >= goal:
                    reached.append(after_seconds(pause))
                return bool(reached) and reached[0]()

            return due

        def confirmed_lines() -> list[str]:
            ledger = records / "ledger.jsonl"
            return ledger.read_text().splitlines() if ledger.exists() else []

        tries = kill_and_retry(
            "store",
            lambda _: arguments,
            environment,
            kills=kills,
            kill_point=kill_point,
            started=processes,
            after_kill=records_are_whole,
        )
        stats = emulator.stats()
        stored_uids = index_uids(emulator)

    assert len(tries.kill_points) >= 10
    summary = tries.summary
    assert summary["counts"]["stored"] == len(files)
    assert stored_uids == {f.sop_instance_uid for f in files}
    # re-sent instances: at most the requests in flight at each kill (connections x batch)
    resent = stats["instances"]["stored"] - len(files)
    assert 0 <= resent <= len(tries.kill_points) * connections * batch
    assert summary["resumed"] == len(confirmed)  # the last try sent only what no killed try had confirmed
    # the records: a line per try that got as far as sending (killed earlier: none), a manifest of every file
    tried = parsed_lines(records / "tries.jsonl")
    assert 2 <= len(tried) <= len(tries.kill_points) + 1
    assert (tried[-1]["files"], tried[-1]["in_ledger"]) == (len(files), summary["resumed"])
    manifest = list(read_manifest((records / "manifest.jsonl").read_text().splitlines()))
    assert sorted(item.source for item in manifest) == sorted(str(f.path) for f in files)
    assert all(item.outcome.is_stored for item in manifest)
    assert no_partial_files(records) == []


def index_uids(emulator: RunningEmulator) -> set[str]:
    with sqlite3.connect(f"file:{emulator.data_dir / 'index.sqlite3'}?mode=ro", uri=True) as index:
        return {row[0] for row in index.execute("SELECT sop_uid FROM instances")}


def tree(root: Path) -> dict[str, bytes]:
    return {path.relative_to(root).as_posix(): path.read_bytes() for path in root.rglob("*") if path.is_file()}


def test_a_deidentification_killed_again_and_again_ends_as_a_run_never_killed(
    tmp_path: Path, processes: list[subprocess.Popen[bytes]]
) -> None:
    """The outputs, quarantine and records after the kills and the last try are those of one undisturbed run
    (byte for byte): nothing half-written, nothing left over, every input accounted for."""
    source = tmp_path / "in"
    files = write_tiny_instances(source, 400, studies=5)
    write_bad_files(source, files[0].path)  # a text file, an empty one, the first 600 bytes of an instance
    inputs = len(files) + 3
    reference = deidentify_source(
        str(source),
        str(tmp_path / "reference"),
        KEY,
        records=LocalLocation(tmp_path / "reference-records"),
        quarantine=str(tmp_path / "reference-quarantine"),
        workers=1,
    )
    # the cut copy ends between two elements, before the pixel data: it reads as an instance without them (the
    # validation step quarantines it), so it is de-identified; the text and the empty file are quarantined
    assert reference["counts"] == {"inputs": inputs, "deidentified": len(files) + 1, "quarantined": 2}

    destination, quarantine, records = tmp_path / "out", tmp_path / "held", tmp_path / "records"

    def arguments(try_number: int) -> dict[str, Any]:
        return {
            "source": str(source),
            "destination": str(destination),
            "quarantine": str(quarantine),
            "records": str(records),
            "workers": 1 + try_number % 2,  # in this process, or in two spawned worker processes
        }

    def records_are_whole() -> None:
        if (records / "deidentified.jsonl").exists():
            read_file_list((records / "deidentified.jsonl").read_bytes())
        if (records / "report.json").exists():
            json.loads((records / "report.json").read_text())
        for path in destination.rglob("*.dcm"):  # every output there is complete
            assert dcmread(path).SOPInstanceUID

    rng = random.Random(SEED + 1)
    tries = kill_and_retry(
        "deidentify",
        arguments,
        {crash_child.DEID_KEY: KEY},
        kills=10,
        kill_point=lambda: after_seconds(rng.uniform(0.05, 1.0)),  # from reading the first inputs to the records
        started=processes,
        after_kill=records_are_whole,
    )
    assert len(tries.kill_points) == 10
    summary = tries.summary
    assert summary["counts"] == reference["counts"]
    assert summary["key_id"] == DeidentificationKey(KEY).key_id
    assert tree(destination) == tree(tmp_path / "reference")  # byte for byte, nothing more
    assert tree(quarantine) == tree(tmp_path / "reference-quarantine")
    listed = read_file_list((records / "deidentified.jsonl").read_bytes())
    assert sorted(listed) == sorted(str(destination / name) for name in tree(destination))
    report = json.loads((records / "report.json").read_text())
    assert (report["inputs"], report["deidentified"], report["quarantined"]) == (inputs, len(files) + 1, 2)
    assert no_partial_files(destination, quarantine, records) == []
