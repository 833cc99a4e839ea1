"""The import engine (what StoreDicomOperator runs) against the HealthImaging emulator: throughput by number of
connections and the cost of a resume; behaviour at a TPS quota; and the size of its records for 100,000 files.

Each import case gets a fresh emulator (SigV4 verified, instances parsed and indexed in SQLite), in its own process.

    python bench/import_engine.py [--files 2000] [--quota 5] [--keep]
"""

from __future__ import annotations

import argparse
import json
import logging
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from botocore.credentials import ReadOnlyCredentials

from airflow_hi_stow.core.healthimaging import MAX_REQUEST_BYTES
from airflow_hi_stow.core.results import InstanceResult, Outcome
from airflow_hi_stow.core.summary import ImportTally
from airflow_hi_stow.engine.importer import ImportSettings, run_import
from airflow_hi_stow.engine.ledger import Ledger, LedgerEntry, ManifestSpool
from airflow_hi_stow.samples import generate_dataset
from airflow_hi_stow.storage.locations import LocalLocation
from airflow_hi_stow.testing import RunningEmulator, start_emulator
from airflow_hi_stow.transport.auth import SigV4StowAuth
from airflow_hi_stow.transport.client import StowClient
from airflow_hi_stow.transport.session import HttpSettings

sys.path.insert(0, str(Path(__file__).resolve().parent))
from report import write_section


class Quiet:
    def info(self, msg: str, /, *args: Any) -> None:
        pass

    def warning(self, msg: str, /, *args: Any) -> None:
        pass

    def exception(self, msg: str, /, *args: Any) -> None:
        raise RuntimeError(msg % args)


def emulator_client(emulator: RunningEmulator, connections: int) -> StowClient:
    credentials = ReadOnlyCredentials(emulator.access_key, emulator.secret_key, None)
    return StowClient(
        emulator.dicomweb_url,
        auth=SigV4StowAuth(lambda: credentials, emulator.region),
        http=HttpSettings(max_connections=connections),
        single_part=True,
        max_request_bytes=MAX_REQUEST_BYTES,
    )


def timed_import(emulator: RunningEmulator, source: str, location: Path, settings: ImportSettings) -> dict[str, Any]:
    started, cpu = time.monotonic(), time.process_time()
    with emulator_client(emulator, settings.max_connections) as client:
        summary = run_import(source, client=client, location=LocalLocation(location), settings=settings, log=Quiet())
    summary["wall"] = time.monotonic() - started
    summary["cpu"] = time.process_time() - cpu
    return summary


def import_section(work: Path, files: int) -> str:
    patients = max(1, files // 100)
    sample = generate_dataset(
        work / "data",
        patients=patients,
        studies_per_patient=(1, 1),
        series_per_study=(2, 2),
        instances_per_series=(50, 50),
        redeliver_one_study=False,
    )
    count, size = len(sample.instances), sample.total_bytes
    rows = [
        "| Case | Requests | Wall time | Files/s | MB/s | Client CPU | Outcome |",
        "|---|---|---|---|---|---|---|",
    ]

    def row(label: str, summary: dict[str, Any]) -> str:
        stored = summary["counts"]["stored"]
        return (
            f"| {label} | {summary['requests']} | {summary['wall']:.1f} s | {count / summary['wall']:.0f} | "
            f"{size / summary['wall'] / 1e6:.1f} | {summary['cpu']:.1f} s | {stored}/{count} stored"
            f"{', ' + str(summary['resumed']) + ' resumed' if summary['resumed'] else ''} |"
        )

    last: Path | None = None
    for connections in (1, 4, 8):
        with start_emulator(work / f"emulator-{connections}") as emulator:
            last = work / f"records-{connections}"
            settings = ImportSettings(max_batch_instances=50, max_connections=connections)
            summary = timed_import(emulator, str(sample.root), last, settings)
            print(f"{connections} connection(s): {summary['wall']:.1f} s")
            rows.append(row(f"{connections} connection(s), 50 instances per request", summary))
            if connections == 8:
                again = timed_import(emulator, str(sample.root), last, settings)
                print(f"resume of a finished import: {again['wall']:.1f} s")
                rows.append(row("resume of the finished import (all confirmed: re-hash, send nothing)", again))
    return (
        f"{count} generated CT/MR instances ({size / 1e6:.0f} MB, {patients} studies of 100) imported by "
        "`run_import` from a local directory into a fresh emulator (SigV4 verified, every part parsed and indexed), "
        "both on this machine: the emulator, not the client, is the bottleneck here, and the client and the "
        "emulator share the cores. Client CPU is the engine's process time (headers, the files' XXH3 digests while streaming, "
        "signing, HTTP).\n\n" + "\n".join(rows)
    )


def throttle_section(work: Path, quota: float) -> str:
    sample = generate_dataset(
        work / "throttle-data",
        patients=1,
        studies_per_patient=(1, 1),
        series_per_study=(2, 2),
        instances_per_series=(75, 75),
        redeliver_one_study=False,
    )
    with start_emulator(work / "emulator-throttle") as emulator:
        emulator.set_faults(throttle_rps=quota)
        settings = ImportSettings(max_batch_instances=1, max_connections=8)
        summary = timed_import(emulator, str(sample.root), work / "records-throttle", settings)
        stats = emulator.stats()
    requests = summary["requests"]
    attempts = requests + summary["throttled"]
    print(f"throttled at {quota}/s: {summary['wall']:.1f} s, {summary['throttled']} x 429")
    rows = [
        "| Quota | Requests stored | Wall time | Floor (requests / quota) | Stored requests/s | 429 answers | Cuts | "
        "Failed | Instances received by the emulator |",
        "|---|---|---|---|---|---|---|---|---|",
        f"| {quota:g}/s | {requests} | {summary['wall']:.1f} s | {requests / quota:.1f} s | "
        f"{requests / summary['wall']:.2f} | {summary['throttled']} ({summary['throttled'] / attempts:.0%} of "
        f"attempts) | {summary['throttle_events']} | {summary['counts']['failed']} | "
        f"{stats['instances']['received']} of {len(sample.instances)} |",
    ]
    return (
        f"{len(sample.instances)} instances, one per request, up to 8 connections, against an emulator throttled "
        f"like a HealthImaging TPS quota (a token bucket of {quota:g} requests/s; beyond it 429 without "
        "Retry-After). The AIMD controller halves connections and rate on each congestion event and adds about "
        "one request/s per second while requests succeed; retries (jittered back-off) wait for the same pace. "
        "The run must finish with nothing failed and each instance received once.\n\n" + "\n".join(rows)
    )


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def records_section(work: Path, files: int = 100_000) -> str:
    before = peak_rss_mb()
    tally, spool = ImportTally(), ManifestSpool()
    location = LocalLocation(work / "records-100k")
    ledger = Ledger(location)
    started = time.monotonic()
    batch: list[LedgerEntry] = []
    for number in range(files):
        result = InstanceResult(
            f"s3://bucket/incoming/patient{number // 500:04d}/study/series/{number:06d}.dcm",
            Outcome.STORED if number % 1000 else Outcome.REJECTED,
            size=520_000,
            sop_instance_uid=f"1.2.826.0.1.3680043.8.498.{number:012d}",
            sop_class_uid="1.2.840.10008.5.1.4.1.1.2",
            study_instance_uid=f"1.2.826.0.1.3680043.8.498.1{number // 500:08d}",
            series_instance_uid=f"1.2.826.0.1.3680043.8.498.2{number // 100:08d}",
            reason=None if number % 1000 else "not a DICOM P10 file (no 128-byte preamble and 'DICM' prefix)",
        )
        tally.add(result)
        spool.write(result, fingerprint='etag:"0123456789abcdef0123456789abcdef"')
        if result.outcome.is_stored:
            batch.append(LedgerEntry(result, 'etag:"0123456789abcdef0123456789abcdef"'))
        if len(batch) == 200:
            ledger.record(batch)
            batch = []
    ledger.record(batch)
    recorded = time.monotonic() - started
    manifest = Path(spool.publish(location))
    spool.close()
    started = time.monotonic()
    loaded = Ledger(location).load()
    load_seconds = time.monotonic() - started
    summary = tally.summary(3600.0, manifest=str(manifest))
    summary_bytes = len(json.dumps(summary))
    print(f"records: summary {summary_bytes} B, ledger load {load_seconds:.1f} s")
    rows = [
        "| Record | Size | Time |",
        "|---|---|---|",
        f"| XCom summary (JSON) | **{summary_bytes} bytes** | - |",
        f"| manifest.jsonl | {manifest.stat().st_size / 1e6:.1f} MB | written with the tally: {recorded:.1f} s |",
        f"| ledger.jsonl ({len(loaded)} confirmed, 500 appends) | "
        f"{(location.root / 'ledger.jsonl').stat().st_size / 1e6:.1f} MB | read back on resume: {load_seconds:.1f} s |",
        f"| peak RSS growth (ledger loaded in memory) | {peak_rss_mb() - before:.0f} MB | - |",
    ]
    return (
        f"{files} synthetic results (S3 names, realistic UIDs, 0.1 % rejected) through the engine's bookkeeping: "
        "the tally that becomes the XCom summary, the manifest spool, and the ledger appended every 200 confirmed "
        "instances (fsync each time) and loaded as a resume would.\n\n" + "\n".join(rows)
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=2000, help="instances in the throughput cases (default 2000)")
    parser.add_argument("--quota", type=float, default=5.0, help="emulated requests/s quota (default 5)")
    parser.add_argument("--keep", action="store_true", help="keep the generated files")
    args = parser.parse_args()
    logging.getLogger("airflow_hi_stow.transport.client").setLevel(logging.ERROR)  # one warning per retried request
    work = Path(tempfile.mkdtemp(prefix="hi-stow-bench-import-"))
    command = "python bench/import_engine.py"
    try:
        write_section(
            "import-throughput", "Import engine throughput and resume", command, import_section(work, args.files)
        )
        write_section("import-throttle", "Import at a TPS quota (AIMD)", command, throttle_section(work, args.quota))
        write_section("import-records", "Records of a 100,000-file import", command, records_section(work))
    finally:
        if not args.keep:
            shutil.rmtree(work)
    return 0


if __name__ == "__main__":
    sys.exit(main())
