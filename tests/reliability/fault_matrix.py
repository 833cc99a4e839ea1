"""The fault matrix: an import of small instances into the emulator while it injects every fault a STOW-RS client
meets (429 at a TPS quota, 429/503/502 answers, connections dropped mid-body, answers held back past the read
timeout), rotates the session token it accepts (a 403 ExpiredTokenException that a credential refresh fixes) and is
restarted mid-run. The import is retried as Airflow would (same records location) until it succeeds.

    python -m tests.reliability.fault_matrix [--instances 5000] [--fault-rate 0.2]   # prints the figures

``tests/reliability/test_fault_matrix.py`` runs it with 5,000 instances; ``make fault-matrix`` with 50,000.
"""

from __future__ import annotations

import argparse
import json
import secrets
import sqlite3
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from botocore.credentials import RefreshableCredentials

from airflow_hi_stow.core.report import build_import_report, format_import_report
from airflow_hi_stow.core.results import InstanceResult
from airflow_hi_stow.engine.importer import ImportSettings, run_import
from airflow_hi_stow.engine.ledger import read_manifest
from airflow_hi_stow.storage.locations import LocalLocation
from airflow_hi_stow.testing import EmulatorError, RunningEmulator, start_emulator
from airflow_hi_stow.transport.auth import SigV4StowAuth, refresh_now
from airflow_hi_stow.transport.client import StowClient
from airflow_hi_stow.transport.retry import RetryPolicy
from airflow_hi_stow.transport.session import HttpSettings
from tests.support.tiny_dicom import write_tiny_instances

READ_TIMEOUT = 1.0
SLOW_SECONDS = 2.0
"""Held-back answers outlast the client's read timeout: the instances are stored, the client sees a timeout."""
RETRY = RetryPolicy(max_attempts=8, base_delay=0.25, max_delay=3.0)
"""Enough attempts to outlast an emulator restart (DOWN_SECONDS and its start-up unreachable)."""
DOWN_SECONDS = 5.0
"""How long the restart keeps the emulator down: longer than a read timeout and the longest back-off together, so
that some request certainly finds it unreachable, however the controller has cut the connections by then."""
BATCH = 20
CONNECTIONS = 4
TPS_QUOTA = 12
"""Requests per second the emulator takes before answering 429, about what it can ingest here at 20 per request."""


@dataclass
class MatrixResult:
    instances: int
    summaries: list[dict[str, Any]]
    """The summary of each try of the import (one unless a try ended with files not confirmed)."""
    stored_uids: set[str]
    """SOP Instance UIDs in the emulator's index at the end."""
    instance_writes: int
    """Instances the emulator stored, counting every copy (summed over the restart)."""
    faults: dict[str, int]
    events: list[str] = field(default_factory=list)
    seconds: float = 0.0
    sources: set[str] = field(default_factory=set)
    """The files imported."""
    manifest: list[InstanceResult] = field(default_factory=list)
    """The final try's manifest."""

    @property
    def final(self) -> dict[str, Any]:
        return self.summaries[-1]

    @property
    def duplicates(self) -> int:
        """Instances the emulator stored more than once."""
        return self.instance_writes - len(self.stored_uids)

    def figures(self) -> dict[str, Any]:
        return {
            "instances": self.instances,
            "tries": len(self.summaries),
            "seconds": round(self.seconds, 1),
            "stored": len(self.stored_uids),
            "stored_twice_on_the_server": self.duplicates,
            "possibly_stored_twice_by_the_client": sum(s["possibly_stored_twice"] for s in self.summaries),
            "requests": sum(s["requests"] for s in self.summaries),
            "retries": {
                cause: sum(s["retries"][cause] for s in self.summaries) for cause in self.summaries[0]["retries"]
            },
            "faults": self.faults,
            "events": self.events,
        }


def assumed_role(emulator: RunningEmulator) -> RefreshableCredentials:
    """Credentials as an assumed role holds them: refreshable, each refresh bringing what the emulator accepts now.
    Their expiry is an hour away, so only a refusal makes them refresh."""

    def fetch() -> dict[str, str]:
        return {
            "access_key": emulator.access_key,
            "secret_key": emulator.secret_key,
            "token": str(emulator.session_token),
            "expiry_time": (datetime.now(UTC) + timedelta(hours=1)).isoformat(),
        }

    return RefreshableCredentials.create_from_metadata(fetch(), fetch, "assume-role")


def emulator_faults(rate: float) -> list[str]:
    """Start-up options (so a restart keeps them): ``rate`` split between bursts of 503 and 502 answers, drops and
    slow answers; and a TPS quota above which the emulator answers 429 ThrottlingException."""
    share = f"{rate / 3:.4f}"
    return [
        *("--fail-rate", share, "--fail-status", "503,502", "--fail-burst", "4", "--retry-after", "0"),
        *("--drop-rate", share),
        *("--slow-rate", share, "--slow-seconds", str(SLOW_SECONDS)),
        *("--throttle-rps", str(TPS_QUOTA), "--throttle-burst", str(TPS_QUOTA)),
    ]


class _Disturber:
    """From a thread: rotates the emulator's session token once a third of the instances are stored, stops the
    emulator at two thirds and starts it again DOWN_SECONDS later. Keeps the counts of the emulator before its restart (its counters start again)."""

    def __init__(self, emulator: RunningEmulator, instances: int) -> None:
        self.emulator = emulator
        self.instances = instances
        self.before_restart: dict[str, Any] = {}
        self.events: list[str] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name="fault-matrix", daemon=True)

    def _stored(self) -> int:
        try:
            stats = self.emulator.stats()
        except (EmulatorError, OSError):
            return 0
        return int(stats.get("instances", {}).get("stored", 0)) + int(
            self.before_restart.get("instances", {}).get("stored", 0)
        )

    def _wait_for(self, stored: int) -> bool:
        while not self.stop.wait(0.1):
            if self._stored() >= stored:
                return True
        return False

    def _run(self) -> None:
        if self._wait_for(self.instances // 3):
            self.emulator.rotate_credentials(session_token=secrets.token_urlsafe(32))
            self.events.append(f"session token rotated after {self._stored()} instances stored")
        if self._wait_for(2 * self.instances // 3):
            self.before_restart = self.emulator.stats()
            self.emulator.stop()
            self.stop.wait(DOWN_SECONDS)
            self.emulator.start()
            self.events.append(f"emulator restarted after {self._stored()} instances stored")


def run_fault_matrix(
    root: Path, instances: int, fault_rate: float = 0.2, *, log: Callable[[str], None] = print
) -> MatrixResult:
    """Write ``instances`` small instances under ``root``, import them through the faults, and return what the
    client reported and what the emulator holds."""
    files = write_tiny_instances(root / "in", instances, studies=max(1, instances // 250))
    records = LocalLocation(root / "records")
    started = time.monotonic()
    with start_emulator(
        root / "emulator", session_token=secrets.token_urlsafe(32), extra_args=emulator_faults(fault_rate)
    ) as emulator:
        credentials = assumed_role(emulator)
        auth = SigV4StowAuth(
            credentials.get_frozen_credentials, emulator.region, refresh=lambda: refresh_now(credentials)
        )
        settings = ImportSettings(max_batch_instances=BATCH, max_connections=CONNECTIONS, progress_interval=5.0)
        disturber = _Disturber(emulator, instances)
        disturber.thread.start()
        summaries = []
        try:
            with StowClient(
                emulator.dicomweb_url,
                auth=auth,
                retry=RETRY,
                http=HttpSettings(read_timeout=READ_TIMEOUT),
                single_part=True,
            ) as client:
                for _ in range(5):  # Airflow's retries of the task (same records): each sends what is unconfirmed
                    summary = run_import(str(root / "in"), client=client, location=records, settings=settings)
                    summaries.append(summary)
                    log(json.dumps({key: summary[key] for key in ("counts", "resumed", "retries")}))
                    if summary["counts"]["stored"] == instances:
                        break
        finally:
            disturber.stop.set()
            disturber.thread.join()
        after = emulator.stats()
        with sqlite3.connect(f"file:{emulator.data_dir / 'index.sqlite3'}?mode=ro", uri=True) as index:
            stored_uids = {row[0] for row in index.execute("SELECT sop_uid FROM instances")}
    seconds = time.monotonic() - started
    counts = [disturber.before_restart, after]
    faults: dict[str, int] = {}
    for stats in counts:
        for kind, count in stats.get("faults", {}).items():
            faults[kind] = faults.get(kind, 0) + int(count)
    manifest = list(read_manifest(Path(summaries[-1]["manifest"]).read_text().splitlines()))
    return MatrixResult(
        instances=instances,
        summaries=summaries,
        stored_uids=stored_uids,
        instance_writes=sum(int(stats.get("instances", {}).get("stored", 0)) for stats in counts),
        faults=faults,
        events=disturber.events,
        seconds=seconds,
        sources={str(f.path) for f in files},
        manifest=manifest,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instances", type=int, default=5000)
    parser.add_argument("--fault-rate", type=float, default=0.2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="hi-stow-fault-matrix-") as scratch:
        result = run_fault_matrix(Path(scratch), args.instances, args.fault_rate)
    print(json.dumps(result.figures(), indent=1))
    print(format_import_report(build_import_report([result.final], [])))


if __name__ == "__main__":
    main()
