"""Ingest speed of the local HealthImaging emulator, through the package's import engine.

Stores ~40 KB CT instances over 1, 4 and 8 connections (50 per request, and one per request) and ~5 MB ones in
each payload signing mode, each run into a fresh data store, SigV4 verified; writes instances/s, MB/s, the
emulator's CPU per instance and its resident memory before and after each run into docs/benchmarks.md. Client
and emulator share the machine, so the figures bound what a test suite sees; they say nothing about AWS
HealthImaging. Target: at least 1,000 instances/s of 40 KB, flat memory, no loss with more connections.

    python bench/emulator_ingest.py [--quick]
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from botocore.credentials import ReadOnlyCredentials
from pydicom.uid import generate_uid

from airflow_hi_stow.engine.importer import ImportSettings, run_import
from airflow_hi_stow.testing import RunningEmulator, start_emulator
from airflow_hi_stow.transport.auth import SigV4StowAuth
from airflow_hi_stow.transport.client import StowClient
from airflow_hi_stow.transport.session import HttpSettings

sys.path.insert(0, str(Path(__file__).resolve().parent))
from report import write_section
from workloads import multiframe_instances, small_instances

MB = 1e6
REPO = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Run:
    size: str
    instances: int
    per_request: int
    connections: int
    mode: str = "streaming"


@dataclass(frozen=True)
class Measured:
    seconds: float
    total_bytes: int
    emulator_cpu: float
    rss_before: float
    rss_after: float


def _emulator_cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _emulator_rss(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def measure(emulator: RunningEmulator, run: Run, folder: Path) -> Measured:
    """Store the files under ``folder`` into a new data store with ``run_import``."""
    datastore_id = emulator.boto3_client().create_datastore(datastoreName="bench", clientToken=generate_uid()[-60:])[
        "datastoreId"
    ]
    frozen = ReadOnlyCredentials(emulator.access_key, emulator.secret_key, None)
    client = StowClient(
        f"{emulator.url}/datastore/{datastore_id}",
        auth=SigV4StowAuth(lambda: frozen, emulator.region, run.mode),
        http=HttpSettings(max_connections=run.connections),
        single_part=True,
    )
    assert emulator.process is not None
    pid = emulator.process.pid
    cpu, rss = _emulator_cpu(pid), _emulator_rss(pid)
    started = time.perf_counter()
    with client:
        summary = run_import(
            str(folder),
            client=client,
            settings=ImportSettings(max_batch_instances=run.per_request, max_connections=run.connections),
            log=logging.getLogger("bench"),
        )
    elapsed = time.perf_counter() - started
    if summary["counts"]["stored"] != run.instances:
        raise SystemExit(f"{run}: only {summary['counts']['stored']} of {run.instances} instances stored")
    return Measured(elapsed, summary["bytes_stored"], _emulator_cpu(pid) - cpu, rss, _emulator_rss(pid))


def table(rows: list[tuple[Run, Measured]], load: float) -> str:
    shared = (
        f" The machine's cores were shared with other work while this ran (load average {load:.1f} at the start)."
        if load > 0.5
        else ""
    )
    lines = [
        "pydicom's CT_small with UIDs of its own (~40 KB, studies of 100 in 10 series) and CT instances of ~5 MB "
        "(10 frames of 512 x 512, CT_small's pixels tiled) imported by `run_import`, each run into a fresh data "
        "store, SigV4 verified by the emulator. Client and emulator share the machine's two cores over loopback: "
        "the figures bound what a test suite sees, not what AWS HealthImaging does. Emulator CPU is its process "
        "time over the run; RSS its resident memory before and after the run (the emulator runs all of them, so a "
        "leak would show as a rise from row to row). MB = 10^6 bytes." + shared,
        "",
        "| Instances | Size each | Per request | Connections | Signing | Seconds | Instances/s | MB/s | "
        "Emulator CPU per instance | Emulator RSS |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for run, measured in rows:
        lines.append(
            f"| {run.instances:,} | {run.size} | {run.per_request} | {run.connections} | {run.mode} | "
            f"{measured.seconds:.1f} | **{run.instances / measured.seconds:,.0f}** | "
            f"{measured.total_bytes / MB / measured.seconds:.1f} | "
            f"{measured.emulator_cpu / run.instances * 1000:.2f} ms | {measured.rss_before:.0f} -> "
            f"{measured.rss_after:.0f} MB |"
        )
    small = [run.instances / m.seconds for run, m in rows if run.size == "40 KB" and run.per_request > 1]
    verdict = "met" if small and min(small) >= 1000 else "not met"
    lines += ["", f"Target: at least 1,000 instances/s of 40 KB in batches: **{verdict}** (worst {min(small):,.0f})."]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer instances (a smoke run)")
    args = parser.parse_args()
    small_count, large_count = (2_000, 20) if args.quick else (10_000, 100)
    runs = [
        *(Run("40 KB", small_count, 50, connections) for connections in (1, 4, 8)),
        Run("40 KB", small_count // 5, 1, 4),
        *(Run("5 MB", large_count, 10, 4, mode) for mode in ("streaming", "aws-chunked", "sha256")),
    ]
    load = os.getloadavg()[0]
    rows = []
    with tempfile.TemporaryDirectory(prefix="emulator-bench-", dir=REPO / "build") as scratch:
        small = Path(scratch) / "small"
        small_instances(small, small_count)
        single = Path(scratch) / "single"
        small_instances(single, small_count // 5)
        large = Path(scratch) / "large"
        multiframe_instances(large, large_count, 10, "ct-5mb")
        with start_emulator(Path(scratch) / "data") as emulator:
            for run in runs:
                folder = large if run.size == "5 MB" else single if run.per_request == 1 else small
                measured = measure(emulator, run, folder)
                rows.append((run, measured))
                print(f"{run}: {run.instances / measured.seconds:,.0f} instances/s", flush=True)
    command = "python bench/emulator_ingest.py" + (" --quick" if args.quick else "")
    write_section(
        "emulator-ingest", "Emulator ingest (StoreDICOM through the import engine)", command, table(rows, load)
    )


if __name__ == "__main__":
    main()
