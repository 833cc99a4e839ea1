"""The main job's demo (``make demo``): a generated DICOM set with planted patient data goes through the sample DAG
``hi_stow_local_pipeline`` (de-identify -> validate -> import) into a local HealthImaging emulator; the outcome is
printed as HealthImaging reports it, and every stored instance is read back from the emulator and searched for the
planted values.

It starts ``hi-stow emulator`` on a free port with a fresh data directory and credentials of its own, writes the
sample set (see :func:`write_demo_set`), and runs ``airflow dags test`` on SQLite with the connections given only
through environment variables, printing each step as it runs. Everything it writes stays under ``--output``.

    python -m airflow_hi_stow.demo [--output demo-output] [--dags-folder dags] [--patients 6]
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import IO, Any

from botocore.credentials import ReadOnlyCredentials

from airflow_hi_stow.core.report import format_import_report
from airflow_hi_stow.engine.ledger import read_manifest
from airflow_hi_stow.local_airflow import airflow, airflow_environment
from airflow_hi_stow.readback.dicomweb import SigV4ReadAuth, retrieve_instances
from airflow_hi_stow.samples import SampleSet, generate_dataset, planted_values, write_bad_files
from airflow_hi_stow.testing import RunningEmulator, start_emulator

DAG_ID = "hi_stow_local_pipeline"
SAMPLE_NOTE = "patients and studies with planted PHI, a misfiled series, a text file, an empty and a truncated file"
_TASK_LINE = re.compile(r"\[DAG TEST\] (starting|end task) task_id=(\w+)(?: map_index=(-?\d+))?")
_OPERATOR_LINE = re.compile(
    r"\] (.*?) \[airflow\.task\.operators\.airflow_hi_stow\."  # Airflow 3.3's task log lines
    r"|\{(?:deidentify|validate|partition|importer)\.py:\d+\} INFO - (.*)$"  # Airflow 3.0's
)
_QUIET = ("AWS Connection", "source:", "sending ", "progress:")
"""Operator lines not shown while the demo runs (they are in the log)."""


def write_demo_set(folder: Path, patients: int = 6) -> SampleSet:
    """The demo's source in ``folder``: studies with identifying values planted at the top level, in nested
    sequences and in a private block, one study with a misfiled series (another Patient ID), and three bad files (a
    text file, an empty file, a truncated one)."""
    sample = generate_dataset(
        folder, patients=patients, plant_phi=True, conflicting_series=True, redeliver_one_study=False
    )
    write_bad_files(folder, sample.instances[0].path)
    return sample


def say(message: str) -> None:
    print(f"hi-stow demo: {message}", flush=True)


def follow(log: IO[str], done: threading.Event) -> None:
    """Print the steps of ``airflow dags test`` as its log grows: tasks starting and ending, and what each did."""
    shown = ""
    while True:
        line = log.readline()
        if not line:
            if done.is_set():
                return
            time.sleep(0.2)
            continue
        if task := _TASK_LINE.search(line):
            index = f"[{task[3]}]" if task[3] not in (None, "-1") else ""
            say(f"  {task[2]}{index} {'started' if task[1] == 'starting' else 'ended'}")
        elif found := _OPERATOR_LINE.search(line):
            message = found[1] or found[2]
            if message != shown and not message.startswith(_QUIET):  # Airflow 3.0 writes each line twice
                say(f"    {message}")
            shown = message


def run_dag(environment: Mapping[str, str], conf: Mapping[str, Any], log_path: Path) -> int:
    """``airflow dags test`` of the pipeline, its steps printed while it runs; its exit status."""
    done = threading.Event()
    with log_path.open("w") as log, log_path.open() as reading:
        printer = threading.Thread(target=follow, args=(reading, done), daemon=True)
        printer.start()
        finished = subprocess.run(
            [sys.executable, "-m", "airflow", "dags", "test", DAG_ID, "-c", json.dumps(conf)],
            env=dict(environment),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        done.set()
        printer.join()
    return finished.returncode


def stored_urls(manifests: Path) -> list[str]:
    """The RetrieveURL of every instance the store tasks confirmed stored."""
    urls = []
    for manifest in sorted(manifests.glob(f"dag_id={DAG_ID}/*/task_id=store_study/*/manifest.jsonl")):
        for result in read_manifest(manifest.read_text().splitlines()):
            if result.outcome.is_stored and result.retrieve_url:
                urls.append(result.retrieve_url)
    return urls


def residue_scan(emulator: RunningEmulator, urls: Sequence[str], values: Iterable[str]) -> dict[str, int]:
    """Read every stored instance back (GetDICOMInstance, signed) and count the planted values found in them."""
    credentials = ReadOnlyCredentials(emulator.access_key, emulator.secret_key, emulator.session_token)
    auth = SigV4ReadAuth(lambda: credentials, emulator.region)
    wanted = [value.encode() for value in values]
    found, unreadable, read = 0, 0, 0
    for item in retrieve_instances(urls, auth):
        if item.data is None:
            unreadable += 1
            continue
        read += 1
        found += sum(value in item.data for value in wanted)
    return {"read": read, "unreadable": unreadable, "values": len(wanted), "found": found}


def step_lines(report: Mapping[str, Any]) -> list[str]:
    """The de-identification and validation steps of the report, as text (reasons, never values)."""
    lines = []
    deid = report.get("deidentification") or {}
    if deid:
        counts = deid["counts"]
        why = _reasons(json.loads(Path(deid["report"]).read_text()).get("quarantine", []), "detail")
        lines += [
            "De-identification (PS3.15 Annex E, Basic Profile)",
            f"  files in       {counts['inputs']}",
            f"  de-identified  {counts['deidentified']} ({deid['studies']} studies, {deid['series']} series)",
            f"  quarantined    {counts['quarantined']}" + (f"  ({why})" if why else ""),
        ]
    validation = report.get("validation") or {}
    if validation:
        warnings = ", ".join(
            f"{severities['warning']} x {check}" for check, severities in validation["checks"].items()
            if severities.get("warning")
        )  # fmt: skip
        errors = ", ".join(
            f"{severities['error']} x {check}" for check, severities in validation["checks"].items()
            if severities.get("error")
        )  # fmt: skip
        lines += [
            "Validation",
            f"  good           {validation['files']} of {validation['inputs']}"
            + (f"  (warnings: {warnings})" if warnings else ""),
            f"  quarantined    {validation['quarantined']}" + (f"  ({errors})" if errors else ""),
        ]
    return lines


def _reasons(entries: Iterable[Mapping[str, Any]], key: str) -> str:
    return "; ".join(f"{count} x {reason}" for reason, count in Counter(str(e.get(key)) for e in entries).items())


def run(output: Path, dags_folder: Path, patients: int) -> int:
    started = time.monotonic()
    output = output.resolve()  # Airflow wants an absolute SQLite path
    if output.exists():
        shutil.rmtree(output)
    output.mkdir(parents=True)
    sample = write_demo_set(output / "dicom", patients)
    values = planted_values(sample)
    say(
        f"generated {len(sample.instances)} instances in {len(sample.study_uids)} studies "
        f"({sample.total_bytes / 1e6:.1f} MB) under {output / 'dicom'}: {SAMPLE_NOTE}"
    )
    with start_emulator(output / "emulator") as emulator:
        say(f"HealthImaging emulator at {emulator.url}, data store {emulator.datastore_id}")
        environment = airflow_environment(output / "airflow", dags_folder, emulator, output / "manifests")
        airflow(environment, "db", "migrate")
        report_path = output / "report.json"
        conf = {
            "source": str(output / "dicom"),
            "destination": str(output / "deidentified"),
            "quarantine": str(output / "quarantine"),
            "report_path": str(report_path),
        }
        log_path = output / "airflow-dags-test.log"
        say(f"running the DAG {DAG_ID} with airflow dags test (log: {log_path})")
        status = run_dag(environment, conf, log_path)
        urls = stored_urls(output / "manifests")
        residue = residue_scan(emulator, urls, values) if urls else None
    if report_path.exists():
        report = json.loads(report_path.read_text())
        print()
        print("\n".join(step_lines(report)))
        print(format_import_report(report))
        if residue is not None:
            print(
                f"Residue scan of what was stored: {residue['read']} instance(s) read back from the emulator, "
                f"{residue['values']} planted identifying values searched, {residue['found']} found"
                + (f", {residue['unreadable']} could not be read" if residue["unreadable"] else "")
            )
        print()
    clean = residue is not None and residue["found"] == 0 and residue["unreadable"] == 0
    if status == 0 and not clean:
        status = 1
    outcome = "succeeded" if status == 0 else f"FAILED (see {log_path})"
    say(f"the pipeline {outcome}; {time.monotonic() - started:.0f} s in all; manifests under {output / 'manifests'}")
    return status


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
