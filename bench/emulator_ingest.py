"""Ingest speed of the local HealthImaging emulator, through the package's own STOW-RS client.

Stores ~40 KB and ~5 MB CT instances with 1, 4 and 8 client threads, one instance per request and in batches,
into a fresh data store each run, and writes instances/s and MB/s into docs/benchmarks.md (its own section,
between markers, so that other benchmarks' sections are kept). Client and emulator share the machine, so the
figures bound what a test suite sees; they say nothing about AWS HealthImaging.

    .venv/bin/python bench/emulator_ingest.py [--quick]
"""

from __future__ import annotations

import argparse
import copy
import platform
import re
import struct
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from botocore.credentials import ReadOnlyCredentials
from pydicom import dcmread
from pydicom.data import get_testdata_file
from pydicom.uid import generate_uid

from airflow_hi_stow.stow.auth import SigV4StowAuth
from airflow_hi_stow.stow.client import StowClient, new_session
from airflow_hi_stow.testing import RunningEmulator, start_emulator

ROOT = Path(__file__).resolve().parent.parent
REPORT = ROOT / "docs" / "benchmarks.md"
START, END = "<!-- emulator-ingest:start -->", "<!-- emulator-ingest:end -->"
MB = 1e6


@dataclass(frozen=True)
class Run:
    label: str
    size: str
    instances: int
    per_request: int
    threads: int
    mode: str = "streaming"


def write_instances(folder: Path, count: int, pixel_bytes: int | None) -> list[Path]:
    """``count`` CT instances in 10 series: pydicom's CT_small (~40 KB), or with ``pixel_bytes`` of pixel data."""
    template_path = get_testdata_file("CT_small.dcm")
    assert template_path is not None
    template = dcmread(template_path)
    if pixel_bytes is not None:
        del template.PixelData
        template.Rows, template.Columns, template.NumberOfFrames = 1024, 1024, pixel_bytes // (1024 * 1024 * 2)
    folder.mkdir(parents=True)
    study, series = generate_uid(), [generate_uid() for _ in range(10)]
    paths = []
    for number in range(count):
        dataset = copy.deepcopy(template)
        dataset.StudyInstanceUID = study
        dataset.SeriesInstanceUID = series[number % len(series)]
        dataset.SOPInstanceUID = dataset.file_meta.MediaStorageSOPInstanceUID = generate_uid()
        path = folder / f"{number:05d}.dcm"
        dataset.save_as(path, enforce_file_format=True)
        if pixel_bytes is not None:
            with path.open("ab") as out:
                out.write(struct.pack("<HH2sHI", 0x7FE0, 0x0010, b"OW", 0, pixel_bytes))
                out.write(b"\0" * pixel_bytes)
        paths.append(path)
    return paths


def measure(emulator: RunningEmulator, run: Run, paths: list[Path]) -> tuple[float, float]:
    """Store ``paths`` into a new data store; returns (seconds, bytes)."""
    datastore_id = emulator.boto3_client().create_datastore(datastoreName="bench", clientToken=generate_uid()[-60:])[
        "datastoreId"
    ]
    frozen = ReadOnlyCredentials(emulator.access_key, emulator.secret_key, None)
    client = StowClient(
        f"{emulator.url}/datastore/{datastore_id}",
        auth=SigV4StowAuth(lambda: frozen, emulator.region, run.mode),
        session=new_session(run.threads),
        single_part=True,
    )
    shares = [paths[index :: run.threads] for index in range(run.threads)]
    started = time.perf_counter()
    with ThreadPoolExecutor(run.threads) as pool:
        results = list(pool.map(lambda share: client.store(share, max_batch_instances=run.per_request), shares))
    elapsed = time.perf_counter() - started
    stored = sum(result.counts()["stored"] for result in results)
    if stored != len(paths):
        raise SystemExit(f"{run.label}: only {stored} of {len(paths)} instances stored")
    return elapsed, float(sum(path.stat().st_size for path in paths))


def machine() -> str:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if "model name" in line
        ),
        platform.processor() or "unknown CPU",
    )
    cores = len(re.findall(r"^processor\s*:", Path("/proc/cpuinfo").read_text(), re.M))
    memory = next(
        line.split()[1] for line in Path("/proc/meminfo").read_text().splitlines() if line.startswith("MemTotal")
    )
    return f"{cpu}, {cores} cores, {int(memory) / 2**20:.0f} GiB RAM; `{' '.join(platform.uname())}`"


def report(rows: list[tuple[Run, float, float]], command: str) -> str:
    lines = [
        START,
        "## Emulator ingest (StoreDICOM through the package's client)",
        "",
        f"- Date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
        f"- Machine: {machine()}",
        f"- Python {platform.python_version()}; client and emulator on the same machine, over loopback",
        f"- Command: `{command}`",
        "- Each run stores into a fresh data store; SigV4 verified by the emulator; instances in 10 series.",
        "",
        "| Instances | Size each | Per request | Threads | Signing | Seconds | Instances/s | MB/s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for run, seconds, total in rows:
        lines.append(
            f"| {run.instances} | {run.size} | {run.per_request} | {run.threads} | {run.mode} | {seconds:.1f} "
            f"| {run.instances / seconds:.0f} | {total / MB / seconds:.1f} |"
        )
    return "\n".join([*lines, END])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer instances (a smoke run)")
    args = parser.parse_args()
    small_count, large_count = (200, 20) if args.quick else (2000, 100)
    runs = [
        *(Run(f"40KB-{n}-{t}", "40 KB", small_count, n, t) for n in (1, 20) for t in (1, 4, 8)),
        *(Run(f"5MB-{n}-{t}", "5 MB", large_count, n, t) for n in (1, 10) for t in (1, 4, 8)),
        *(Run(f"5MB-10-4-{mode}", "5 MB", large_count, 10, 4, mode) for mode in ("aws-chunked", "sha256")),
    ]
    rows = []
    with tempfile.TemporaryDirectory(prefix="emulator-bench-") as scratch:
        small = write_instances(Path(scratch) / "small", small_count, None)
        large = write_instances(Path(scratch) / "large", large_count, 5 * 1024 * 1024)
        with start_emulator(Path(scratch) / "data") as emulator:
            for run in runs:
                seconds, total = measure(emulator, run, small if run.size == "40 KB" else large)
                rows.append((run, seconds, total))
                print(f"{run.label:>24}: {run.instances / seconds:8.0f} instances/s {total / MB / seconds:8.1f} MB/s")
    command = "python bench/emulator_ingest.py" + (" --quick" if args.quick else "")
    section = report(rows, command)
    text = REPORT.read_text() if REPORT.exists() else "# Benchmarks\n"
    if START in text:
        text = re.sub(re.escape(START) + ".*?" + re.escape(END), lambda _: section, text, flags=re.S)
    else:
        text = text.rstrip() + "\n\n" + section + "\n"
    REPORT.parent.mkdir(exist_ok=True)
    REPORT.write_text(text)
    print(f"written to {REPORT.relative_to(ROOT)}")


if __name__ == "__main__":
    sys.exit(main())
