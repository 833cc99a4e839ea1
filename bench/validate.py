"""Validation throughput: files/s of the default checks through the whole run (``validate_files``: listing, reading,
checks, run checks, quarantine, report), for CT instances of 40 KB and of 500 KB, in this process and in worker
processes, and with a share of failing files that go to the quarantine.

    python bench/validate.py [--small 4000] [--large 1000] [--repeat 3] [--keep]
"""

from __future__ import annotations

import argparse
import copy
import logging
import os
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

import pydicom
from pydicom import Dataset, dcmread
from pydicom.data import get_testdata_file
from pydicom.uid import UID

from airflow_hi_stow import __version__
from airflow_hi_stow.sources.resolve import resolve_sources
from airflow_hi_stow.storage.locations import LocalLocation
from airflow_hi_stow.validate import ValidationSettings, validate_files
from airflow_hi_stow.validate.runner import PARALLEL_FROM_FILES
from airflow_hi_stow.workers import usable_cores

sys.path.insert(0, str(Path(__file__).resolve().parent))
from report import write_section

TARGET_FILES_PER_SECOND = 500
FAILING_SHARE = 0.05


def _uid(*parts: object) -> UID:
    return UID("2.25." + str(uuid.uuid5(uuid.NAMESPACE_OID, "/".join(map(str, parts))).int))


def make_set(root: Path, count: int, side: int, failing: float = 0.0) -> int:
    """``count`` CT instances of ``side`` x ``side`` 16-bit pixels in studies of 100; ``failing`` of them cut short.
    Returns the bytes written."""
    path = get_testdata_file("CT_small.dcm", download=False)
    assert path is not None
    template: Dataset = dcmread(path)
    template.PatientName, template.PatientID = "BENCH^PATIENT", "BENCH-0001"
    template.Rows = template.Columns = side
    template.PixelData = os.urandom(side * side * 2)
    root.mkdir(parents=True)
    cut_every = round(1 / failing) if failing else 0
    total = 0
    for number in range(count):
        study, series = divmod(number, 100)
        dataset = copy.deepcopy(template)
        dataset.StudyInstanceUID = _uid("bench", study)
        dataset.SeriesInstanceUID = _uid("bench", study, "series")
        dataset.SOPInstanceUID = _uid("bench", study, series)
        dataset.file_meta.MediaStorageSOPInstanceUID = dataset.SOPInstanceUID
        dataset.InstanceNumber = series + 1
        target = root / f"{study:04d}" / f"{series:03d}.dcm"
        target.parent.mkdir(exist_ok=True)
        dataset.save_as(target, enforce_file_format=True)
        if cut_every and number % cut_every == cut_every - 1:
            with target.open("r+b") as out:
                out.truncate(target.stat().st_size - 1000)
        total += target.stat().st_size
    return total


def measure(root: Path, work: Path, workers: int | None, repeat: int, limit: int | None = None) -> dict[str, float]:
    """Best and median files/s of ``repeat`` runs over ``root`` (each into a fresh quarantine and report folder),
    and the CPU time of this process per file (all of it when the files are checked here)."""
    rates, cpu = [], []
    quarantined = 0
    files = 0
    for attempt in range(repeat):
        out = work / f"run-{attempt}"
        started, cpu_started = time.perf_counter(), time.process_time()
        run = validate_files(
            list(resolve_sources([root]))[:limit],
            quarantine=LocalLocation(out / "quarantine"),
            output=LocalLocation(out / "reports"),
            settings=ValidationSettings.of(),
            workers=workers,
        )
        seconds = time.perf_counter() - started
        files, quarantined = len(run.outcomes), len(run.quarantined)
        rates.append(files / seconds)
        cpu.append((time.process_time() - cpu_started) / files)
        shutil.rmtree(out)
    return {
        "best": max(rates),
        "median": statistics.median(rates),
        "files": files,
        "quarantined": quarantined,
        "cpu_ms": min(cpu) * 1000,
        "seconds": files / max(rates),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--small", type=int, default=4000, help="instances of 40 KB")
    parser.add_argument("--large", type=int, default=1000, help="instances of 500 KB")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--keep", action="store_true", help="keep the generated files")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    work = Path(tempfile.mkdtemp(prefix="bench-validate-"))
    cores = usable_cores()
    rows = []
    try:
        sets = {
            "40 KB": (work / "small", make_set(work / "small", args.small, 128)),
            "500 KB": (work / "large", make_set(work / "large", args.large, 512)),
            "40 KB, 5 % cut short": (
                work / "failing",
                make_set(work / "failing", args.small, 128, FAILING_SHARE),
            ),
        }
        cases = [
            ("40 KB", 1),
            ("40 KB", cores),
            ("500 KB", 1),
            ("500 KB", cores),
            ("40 KB, 5 % cut short", None),
        ]
        for label, workers in cases:
            root, size = sets[label]
            result = measure(root, work / "out", workers, args.repeat)
            mean_kb = size / result["files"] / 1024
            shown = "auto" if workers is None else str(workers)
            print(f"{label:<22} workers {shown:<4} best {result['best']:.0f} files/s, median {result['median']:.0f}")
            rows.append((label, shown, mean_kb, result))
        startup = {n: measure(sets["40 KB"][0], work / "out", n, args.repeat, limit=10)["seconds"] for n in (1, cores)}
    finally:
        if not args.keep:
            shutil.rmtree(work)
    small_best = max(r["best"] for label, _, _, r in rows if label == "40 KB")
    table = [
        "| Instances | Mean size | Worker processes | Files | Quarantined | Best files/s | Median files/s | Best MB/s "
        "| CPU per file in this process |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for label, shown, mean_kb, result in rows:
        table.append(
            f"| {label} | {mean_kb:.0f} KB | {shown} | {result['files']:.0f} | {result['quarantined']:.0f} | "
            f"**{result['best']:.0f}** | {result['median']:.0f} | {result['best'] * mean_kb / 1024:.1f} | "
            f"{result['cpu_ms']:.2f} ms |"
        )
    verdict = "met" if small_best >= TARGET_FILES_PER_SECOND else "NOT met"
    body = (
        f"`validate_files` with the default checks (airflow-hi-stow {__version__}, pydicom {pydicom.__version__}) "
        "over a local directory of generated CT instances (CT_small.dcm with 128 x 128 or 512 x 512 16-bit pixels, "
        "in studies of 100), end to end: listing, one read per file, every default check (no pixel is decoded), "
        "the duplicate and consistency checks, the quarantine copies and reason files, report.json and good.jsonl. "
        f"Best and median of {args.repeat} runs; the files were just written, so they are read from the page cache. "
        f'"auto" is the runner\'s own choice (one process below {PARALLEL_FROM_FILES} files, else one per core). '
        f"Worker processes are spawned: 10 files took {startup[cores]:.2f} s with {cores} of them, "
        f"{startup[1]:.2f} s in this process. With workers, the CPU column is this process's share only. The "
        "machine's 2 cores are shared with other work, so runs vary by up to 1.5x.\n\n"
        + "\n".join(table)
        + f"\n\nTarget: at least {TARGET_FILES_PER_SECOND} files/s for 40 KB instances: **{verdict}** "
        f"(best {small_best:.0f} files/s)."
    )
    write_section("validate", "Validation throughput (default checks)", "python bench/validate.py", body)
    return 0 if small_best >= TARGET_FILES_PER_SECOND else 1


if __name__ == "__main__":
    sys.exit(main())
