"""A 100,000-instance import through Airflow: ``PartitionDicomOperator`` splits a folder of 40 KB CT instances
into shards of whole studies and ``StoreDicomOperator`` is mapped over them, in a real ``dag.test()`` on SQLite,
into the emulator (SigV4 verified). Measures the wall time, the work of the tasks (the engine's own duration in
each summary, the partition task's run), what is left for Airflow (task start-up, XCom, scheduling), the size of
every XCom, and the resident memory of the Airflow process along the run.

    python bench/scale.py [--instances 100000] [--shards 16] [--keep]

Not part of ``make test`` or ``make bench``: ``make bench-scale``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path.insert(0, str(BENCH))
DAG_ID = "hi_stow_bench_scale"


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def child() -> None:
    """Run the DAG in this process (Airflow configured by the environment); print the measurements as JSON."""
    samples: list[tuple[float, float]] = []
    stop = threading.Event()
    started = time.monotonic()

    def sample() -> None:
        while not stop.wait(0.5):
            samples.append((time.monotonic() - started, rss_mb()))

    from airflow.models.taskinstance import TaskInstance
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    try:
        from airflow.dag_processing.dagbag import DagBag
    except ImportError:  # Airflow < 3.2
        from airflow.models.dagbag import DagBag  # type: ignore[no-redef]

    dag = DagBag(dag_folder=str(BENCH / "dags")).get_dag(DAG_ID)
    threading.Thread(target=sample, daemon=True).start()
    run_started = time.monotonic()
    run = dag.test()
    wall = time.monotonic() - run_started
    stop.set()
    with create_session() as session:
        tis = session.scalars(select(TaskInstance).where(TaskInstance.run_id == run.run_id)).all()
        xcoms = session.scalars(select(XComModel).where(XComModel.run_id == run.run_id)).all()
        tasks = [
            {
                "task_id": ti.task_id,
                "map_index": ti.map_index,
                "state": str(ti.state),
                "duration": ti.duration,
                "end": (ti.end_date.timestamp() - run.start_date.timestamp())
                if ti.end_date and run.start_date
                else None,
            }
            for ti in tis
        ]
        values = [
            {
                "task_id": row.task_id,
                "map_index": row.map_index,
                "key": row.key,
                "bytes": len(json.dumps(XComModel.deserialize_value(row))),
                "value": XComModel.deserialize_value(row)
                if row.key == "execute_seconds" or (row.task_id, row.key) == ("store", "return_value")
                else None,
            }
            for row in xcoms
        ]
    print(
        "RESULT "
        + json.dumps(
            {
                "state": str(run.state),
                "wall": wall,
                "tasks": tasks,
                "xcoms": values,
                "rss": samples,
                "offset": run_started - started,
            }
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instances", type=int, default=100_000)
    parser.add_argument("--shards", type=int, default=16)
    parser.add_argument("--keep", action="store_true", help="keep the generated files and the emulator's data")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child()
        return

    from report import write_section
    from workloads import small_instances

    from airflow_hi_stow.testing import start_emulator

    work = REPO / "build" / "scale"
    shutil.rmtree(work, ignore_errors=True)
    home = work / "airflow"
    home.mkdir(parents=True)
    load = os.getloadavg()[0]
    generated = time.monotonic()
    files = small_instances(work / "data", args.instances)
    generated = time.monotonic() - generated
    size = sum(path.stat().st_size for path in files)
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_FOLDER": str(BENCH / "dags"),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home}/airflow.db",
        "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
        "AIRFLOW__HI_STOW__MANIFEST_LOCATION": str(work / "records"),
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        "AWS_EC2_METADATA_DISABLED": "true",
        "HI_STOW_BENCH_SOURCE": str(work / "data"),
        "HI_STOW_BENCH_SHARDS": str(args.shards),
    }
    subprocess.run([sys.executable, "-m", "airflow", "db", "migrate"], env=env, check=True, capture_output=True)
    try:
        with start_emulator(work / "emulator") as emulator:
            env[f"AIRFLOW_CONN_{'hi_stow_bench'.upper()}"] = emulator.aws_connection_json(
                datastore_id=emulator.datastore_id
            )
            log = work / "dag-test.log"
            with log.open("w") as out:
                done = subprocess.run(
                    [sys.executable, str(Path(__file__).resolve()), "--child"],
                    env=env,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    check=False,
                )
            lines = [line for line in log.read_text().splitlines() if line.startswith("RESULT ")]
            if done.returncode or not lines:
                raise SystemExit(f"dag.test() failed (exit status {done.returncode}); see {log}")
            result = json.loads(lines[-1][len("RESULT ") :])
            stored = emulator.stats()["instances"]["stored"]
    finally:
        if not args.keep:
            shutil.rmtree(work / "data", ignore_errors=True)
            shutil.rmtree(work / "emulator", ignore_errors=True)
    write_section(
        "import-scale",
        f"A {args.instances:,}-instance import through Airflow",
        _command(args),
        report(result, args, size, stored, generated, load),
    )


def _command(args: argparse.Namespace) -> str:
    extra = (
        ""
        if args.instances == 100_000 and args.shards == 16
        else f" --instances {args.instances} --shards {args.shards}"
    )
    return f"python bench/scale.py{extra} (make bench-scale)"


def report(
    result: dict[str, Any], args: argparse.Namespace, size: int, stored: int, generated: float, load: float
) -> str:
    tasks = result["tasks"]
    stores = [task for task in tasks if task["task_id"] == "store"]
    summaries = [
        xcom["value"]
        for xcom in sorted(result["xcoms"], key=lambda xcom: xcom["map_index"])
        if (xcom["task_id"], xcom["key"]) == ("store", "return_value")
    ]
    engine = sum(summary["duration_seconds"] for summary in summaries)
    counts: dict[str, int] = {}
    for summary in summaries:
        for name, count in summary["counts"].items():
            counts[name] = counts.get(name, 0) + count
    wall = result["wall"]
    executed = {
        (xcom["task_id"], xcom["map_index"]): xcom["value"]
        for xcom in result["xcoms"]
        if xcom["key"] == "execute_seconds"
    }
    work = sum(executed.values())
    overhead = wall - work
    largest = max(
        (xcom for xcom in result["xcoms"] if xcom["key"] != "execute_seconds"), key=lambda xcom: xcom["bytes"]
    )
    samples = result["rss"]
    ends = sorted(task["end"] for task in stores if task["end"] is not None)

    def rss_at(moment: float) -> float:
        before = [mb for at, mb in samples if at <= moment + result["offset"]]
        return before[-1] if before else samples[0][1]

    peak = max(mb for _, mb in samples)
    first, last = (rss_at(ends[0]), rss_at(ends[-1])) if ends else (peak, peak)
    per_task = [task["duration"] - executed[("store", task["map_index"])] for task in stores]
    store_execute = sum(seconds for (task_id, _), seconds in executed.items() if task_id == "store")
    rows = [
        "| Measure | Value |",
        "|---|---|",
        f"| Instances | {args.instances:,} ({size / 1e9:.2f} GB, CT_small with UIDs of their own, studies of 100 in "
        f"folders of their own; written in {generated:.1f} s) |",
        f"| Shards (mapped `StoreDicomOperator` tasks) | {len(stores)} |",
        f"| Outcome | {', '.join(f'{count:,} {name}' for name, count in counts.items() if count)}; the emulator "
        f"stored {stored:,} |",
        f"| `dag.test()` wall time | **{wall:.0f} s** ({args.instances / wall:,.0f} instances/s) |",
        f"| Work: the store tasks' `execute` (of which the engine, `run_import`: {engine:.0f} s) | "
        f"{store_execute:.0f} s |",
        f"| Work: the partition task's `execute` (every header read, shards written) | "
        f"{executed[('partition', -1)]:.1f} s |",
        f"| Airflow's share: wall time less every `execute` (task start-up, XCom, scheduling) | **{overhead:.1f} s, "
        f"{overhead / wall:.1%} of the wall time** |",
        f"| Per store task: its run less its `execute` (median) | {statistics.median(per_task):.2f} s |",
        f"| Largest XCom | **{largest['bytes']:,} bytes** ({largest['task_id']} `{largest['key']}`, map index "
        f"{largest['map_index']}); {len(result['xcoms'])} XComs in all |",
        f"| Resident memory of the Airflow process | after the first shard {first:.0f} MB, after the last "
        f"{last:.0f} MB, peak {peak:.0f} MB |",
    ]
    shared = (
        f" The machine's two cores were shared with other work (load average {load:.1f} at the start)."
        if load > 0.5
        else ""
    )
    return (
        "One `dag.test()` of bench/dags/hi_stow_bench_scale.py in a fresh process on SQLite (Airflow runs the "
        "tasks one after the other in that process), into the emulator on the same machine (SigV4 verified, "
        "every instance indexed), the operators at their defaults (4 connections, up to 200 instances per request: one study of 100 here, "
        "image sets looked up for up to 100 studies per task). Memory is sampled every 0.5 s."
        + shared
        + "\n\n"
        + "\n".join(rows)
    )


if __name__ == "__main__":
    main()
