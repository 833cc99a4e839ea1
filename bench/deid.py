"""De-identification throughput: files/s to read, de-identify (full Basic Profile) and write, against dicognito.

Both tools run on the same files in the same run, each writing every output to disk: our engine through
``run_deidentification`` (the residue scan included) with one process and with one worker process per core, and
dicognito 0.19.0 (MIT; installed by this script into its own virtual environment under build/, never a dependency
of the package) with one ``Anonymizer`` reused for the whole set, as its documentation advises. Best of --repeat.

    python bench/deid.py [--repeat 3] [--keep]
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import venv
from importlib.metadata import version
from pathlib import Path

from airflow_hi_stow.deid import LocalDirectory, ProfileOptions, local_inputs, profile_table, run_deidentification
from airflow_hi_stow.samples import generate_dataset, large_instance
from airflow_hi_stow.workers import usable_cores

sys.path.insert(0, str(Path(__file__).resolve().parent))
from report import write_section

ROOT = Path(__file__).resolve().parent.parent
DICOGNITO = "dicognito==0.19.0"
DICOGNITO_VENV = ROOT / "build" / "bench-dicognito"
KEY = b"benchmark key, not a secret: 32+ bytes long"
SMALL, LARGE = 600, 200  # enough files that starting the worker processes is a small part of a run
# Runs inside dicognito's environment: the same read + anonymize + write loop, timed without interpreter start-up.
DICOGNITO_LOOP = """
import sys, time
from pathlib import Path
import pydicom
from dicognito.anonymizer import Anonymizer
source, target = Path(sys.argv[1]), Path(sys.argv[2])
paths = sorted(p for p in source.rglob("*.dcm"))
anonymizer = Anonymizer(seed="bench")
start = time.perf_counter()
for index, path in enumerate(paths):
    dataset = pydicom.dcmread(path)
    anonymizer.anonymize(dataset)
    dataset.save_as(target / f"{index}.dcm")
print(time.perf_counter() - start)
"""


def dicognito_python() -> Path:
    python = DICOGNITO_VENV / "bin" / "python"
    if not python.exists():
        venv.create(DICOGNITO_VENV, with_pip=True)
        subprocess.run([python, "-m", "pip", "install", "--quiet", DICOGNITO], check=True)
    return python


def package_version(python: Path, name: str) -> str:
    code = f"from importlib.metadata import version; print(version({name!r}))"
    return subprocess.run([python, "-c", code], capture_output=True, text=True, check=True).stdout.strip()


def time_dicognito(python: Path, source: Path, scratch: Path) -> float:
    target = Path(tempfile.mkdtemp(dir=scratch))
    result = subprocess.run([python, "-c", DICOGNITO_LOOP, source, target], capture_output=True, text=True, check=True)
    shutil.rmtree(target)
    return float(result.stdout.strip().splitlines()[-1])


def time_ours(source: Path, scratch: Path, workers: int) -> float:
    target = Path(tempfile.mkdtemp(dir=scratch))
    inputs = local_inputs(source)
    start = time.perf_counter()
    report = run_deidentification(
        inputs, LocalDirectory(str(target / "out")), LocalDirectory(str(target / "quarantine")), KEY,
        ProfileOptions(), workers=workers,
    )  # fmt: skip
    elapsed = time.perf_counter() - start
    shutil.rmtree(target)
    if report.deidentified != len(inputs):
        raise SystemExit(f"the benchmark set should de-identify whole: {json.dumps(report.to_dict()['reasons'])}")
    return elapsed


def corpora(scratch: Path) -> dict[str, Path]:
    small = scratch / "small"
    generate_dataset(
        small, patients=SMALL // 40, studies_per_patient=(1, 1), series_per_study=(2, 2),
        instances_per_series=(20, 20), redeliver_one_study=False, seed=7,
    )  # fmt: skip
    large = scratch / "ct512"
    large.mkdir()
    for number in range(LARGE):
        large_instance(large / f"{number:03d}.dcm", 512 * 512 * 2)
    return {f"{SMALL} CT/MR instances of {SMALL // 40} patients (pydicom's CT_small and MR_small, 8-40 KB)": small,
            f"{LARGE} CT instances of 512x512 16-bit (525 KB)": large}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--keep", action="store_true", help="keep the generated files")
    args = parser.parse_args()
    python = dicognito_python()
    cores = usable_cores()
    scratch = Path(tempfile.mkdtemp(prefix="bench-deid-"))
    rows = []
    ratios = []
    try:
        for label, source in corpora(scratch).items():
            count = len(local_inputs(source))
            times: dict[str, list[float]] = {"dicognito": [], "one": [], "many": []}
            for _ in range(args.repeat):  # interleaved, so that a burst of other work on the machine hits all three
                times["dicognito"].append(time_dicognito(python, source, scratch))
                times["one"].append(time_ours(source, scratch, 1))
                times["many"].append(time_ours(source, scratch, cores))
            theirs, one, many = (min(times[name]) for name in ("dicognito", "one", "many"))
            ratios.append(count / many / (count / theirs))
            rows.append(
                f"| {label} | {count / theirs:.0f} | {count / one:.0f} ({theirs / one:.1f}x) | "
                f"{count / many:.0f} ({theirs / many:.1f}x) |"
            )
            print(rows[-1])
    finally:
        if not args.keep:
            shutil.rmtree(scratch)
    met = "met" if min(ratios) >= 2 else "**not met**"
    body = (
        f"Read + de-identify + write, every output written to a local disk, best of {args.repeat} interleaved runs. "
        f"Ours: `run_deidentification` with the full Basic Profile (Table E.1-1 {profile_table().edition}), keyed UIDs "
        "and pseudonyms, new file meta, and the residue scan of every output (its elements, and its encoded bytes up to the "
        "pixel data). "
        "dicognito: one `Anonymizer(seed=...)` reused for the whole set, in its own virtual environment. "
        f"Versions: airflow-hi-stow {version('airflow-hi-stow')} with pydicom {version('pydicom')}; "
        f"dicognito {package_version(python, 'dicognito')} with pydicom {package_version(python, 'pydicom')}; "
        f"Python {platform.python_version()}. The {cores}-process column includes starting the worker processes. "
        "The machine's cores are shared with other work, so rates vary between runs; the ratios, measured in one "
        "run, vary less.\n\n"
        f"| Files | dicognito files/s | ours, 1 process, files/s | ours, {cores} processes, files/s |\n"
        "|---|---|---|---|\n" + "\n".join(rows) + "\n\n"
        f"Target: at least 2x dicognito's rate: {met} (worst {min(ratios):.1f}x with {cores} processes)."
    )
    write_section("deid-throughput", "De-identification throughput against dicognito", "python bench/deid.py", body)


if __name__ == "__main__":
    main()
