"""The main job's demo (``make demo``): a generated DICOM set goes through the sample DAG ``hi_stow_import_only``
into a local HealthImaging emulator, and the outcome is printed the way HealthImaging reports it.

It starts ``hi-stow emulator`` on a free port with a fresh data directory and credentials of its own, writes a
realistic sample set (several patients and studies, 2-3 series each, a few hundred instances, one study re-delivered
with another Patient ID, and a stray text file as PACS exports have), and runs ``airflow dags test`` on SQLite with
the AWS connection given only through environment variables. Everything it writes stays under ``--output``.

    python -m airflow_hi_stow.demo [--output demo-output] [--dags-folder dags] [--patients 6]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from airflow_hi_stow.core.report import format_import_report
from airflow_hi_stow.samples import SampleSet, generate_dataset, write_bad_files
from airflow_hi_stow.testing import RunningEmulator, start_emulator

DAG_ID = "hi_stow_import_only"
CONN_ID = "aws_healthimaging"


SAMPLE_NOTE = "patients and studies with planted PHI, a misfiled series, a text file, an empty and a truncated file"


def write_demo_set(root: Path, patients: int = 6) -> SampleSet:
    """The demo's source under ``root / "dicom"``: studies with identifying values planted at the top level, in
    nested sequences and in a private block, one study with a misfiled series (another Patient ID), and three bad
    files; a later re-delivery of one study with another Patient ID under ``root / "dicom-redelivered"``."""
    sample = generate_dataset(root / "dicom", patients=patients, plant_phi=True, conflicting_series=True)
    write_bad_files(root / "dicom", sample.instances[0].path)
    return sample


def say(message: str) -> None:
    print(f"hi-stow demo: {message}", flush=True)


def airflow_environment(output: Path, dags_folder: Path, emulator: RunningEmulator) -> dict[str, str]:
    """An Airflow of its own (SQLite under ``output``) and the AWS connection pointed at the emulator."""
    home = output / "airflow"
    return {
        **os.environ,
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(dags_folder.resolve()),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
        "AIRFLOW__HI_STOW__MANIFEST_LOCATION": str(output / "manifests"),
        f"AIRFLOW_CONN_{CONN_ID.upper()}": emulator.aws_connection_json(datastore_id=emulator.datastore_id),
    }


def run(output: Path, dags_folder: Path, patients: int) -> int:
    started = time.monotonic()
    output = output.resolve()  # Airflow wants an absolute SQLite path
    if output.exists():
        shutil.rmtree(output)
    output.mkdir(parents=True)
    sample = generate_dataset(output / "dicom", patients=patients)
    (output / "dicom" / "EXPORT-NOTES.txt").write_text("Exported from the demo PACS; not a DICOM file.\n")
    say(
        f"generated {len(sample.instances)} instances in {len(sample.study_uids)} studies "
        f"({sample.total_bytes / 1e6:.1f} MB) under {output / 'dicom'}, and a re-delivery of one study "
        f"({len(sample.redelivered)} instances) with another Patient ID"
    )
    with start_emulator(output / "emulator") as emulator:
        say(f"HealthImaging emulator at {emulator.url}, data store {emulator.datastore_id}")
        environment = airflow_environment(output, dags_folder, emulator)
        subprocess.run(
            [sys.executable, "-m", "airflow", "db", "migrate"], env=environment, check=True, capture_output=True
        )
        report_path = output / "report.json"
        conf = {
            "source": str(output / "dicom"),
            "resend_source": str(sample.redelivered_root),
            "report_path": str(report_path),
        }
        log_path = output / "airflow-dags-test.log"
        say(f"running the DAG {DAG_ID} with airflow dags test (log: {log_path})")
        with log_path.open("w") as log:
            done = subprocess.run(
                [sys.executable, "-m", "airflow", "dags", "test", DAG_ID, "-c", json.dumps(conf)],
                env=environment,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
    if report_path.exists():
        print()
        print(format_import_report(json.loads(report_path.read_text())))
        print()
    outcome = "succeeded" if done.returncode == 0 else f"FAILED (exit status {done.returncode}; see {log_path})"
    say(f"the DAG run {outcome}; {time.monotonic() - started:.0f} s in all; manifests under {output / 'manifests'}")
    return done.returncode


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m airflow_hi_stow.demo", description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, default=Path("demo-output"), help="replaced on every run")
    parser.add_argument("--dags-folder", type=Path, default=Path("dags"))
    parser.add_argument("--patients", type=int, default=6)
    args = parser.parse_args(argv)
    if not (args.dags_folder / f"{DAG_ID}.py").exists():
        parser.error(f"{args.dags_folder / (DAG_ID + '.py')} not found: run from the repository or pass --dags-folder")
    return run(args.output, args.dags_folder, args.patients)


if __name__ == "__main__":
    sys.exit(main())
