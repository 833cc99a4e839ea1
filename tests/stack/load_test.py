"""Under load: 8 store tasks in parallel (8 processes, each running the store engine as StoreDicomOperator does,
round after round over its own set of instances) against one emulator that injects faults at a modest rate, for a
few minutes. Checked: every round of every task stores every instance; the emulator answered nothing but 200 and
the faults it injected; the memory (RSS) of each client process and of the emulator, sampled every second, is flat
once warm: the mean of the last quarter of the run against the second (the first holds the start-up and the
first rounds, while imports, caches and buffers fill).

    python -m tests.stack.load_test [--tasks 8] [--minutes 3] [--instances 400] [--fault-rate 0.05]   # make load-test

Prints the figures and writes them to build/load-test.json.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from airflow_hi_stow.engine.importer import ImportSettings, run_import
from airflow_hi_stow.storage.locations import LocalLocation
from airflow_hi_stow.testing import start_emulator
from airflow_hi_stow.transport.auth import SigV4StowAuth
from airflow_hi_stow.transport.client import StowClient
from airflow_hi_stow.transport.retry import RetryPolicy
from tests.support.emulator_faults import INJECTED_STATUSES, error_faults
from tests.support.tiny_dicom import write_tiny_instances

ROOT = Path(__file__).resolve().parents[2]
INJECTED = set(INJECTED_STATUSES)
RETRY = RetryPolicy(max_attempts=10, base_delay=0.1, max_delay=2.0)


def rss_kb(pid: int) -> int | None:
    """Resident set size of a process, from /proc; None once it has exited (a zombie has no VmRSS)."""
    try:
        lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    except FileNotFoundError:
        return None
    return next((int(line.split()[1]) for line in lines if line.startswith("VmRSS:")), None)


def store_task(number: int, folder: str, records: str, url: str, credentials: tuple[str, str, str], until: float,
               results: Any) -> None:  # fmt: skip
    """One store task, in its own process: an import of ``folder`` per round (new records each round, so that
    every round sends everything), until ``until``; puts each round's summary on ``results``."""
    from botocore.credentials import ReadOnlyCredentials

    frozen = ReadOnlyCredentials(*credentials)
    settings = ImportSettings(max_batch_instances=20, max_connections=4, progress_interval=60.0)
    with StowClient(url, auth=SigV4StowAuth(lambda: frozen, "us-east-1"), retry=RETRY, single_part=True) as client:
        round_number = 0
        while time.time() < until:
            summary = run_import(
                folder, client=client, location=LocalLocation(Path(records) / str(round_number)), settings=settings
            )
            results.put({"task": number, "round": round_number, "counts": summary["counts"],
                         "retries": summary["retries"], "requests": summary["requests"]})  # fmt: skip
            round_number += 1
    results.put({"task": number, "done": True})


def flatness(samples: list[int]) -> dict[str, Any]:
    """The mean RSS (MB) of each quarter of the samples, and the change from the second quarter (warm) to the last."""
    quarter = max(1, len(samples) // 4)
    quarters = [statistics.mean(samples[n * quarter : (n + 1) * quarter] or samples[-quarter:]) / 1024
                for n in range(4)]  # fmt: skip
    warm, last = quarters[1], quarters[-1]
    return {"warm_mb": round(warm, 1), "last_quarter_mb": round(last, 1),
            "change_percent": round(100 * (last - warm) / warm, 1), "peak_mb": round(max(samples) / 1024, 1),
            "quarters_mb": [round(q, 1) for q in quarters]}  # fmt: skip


def run_load_test(root: Path, tasks: int, minutes: float, instances: int, fault_rate: float) -> dict[str, Any]:
    folders = []
    for number in range(tasks):
        folder = root / "in" / str(number)
        write_tiny_instances(folder, instances, studies=max(1, instances // 100), seed=number + 1)
        folders.append(str(folder))
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    with start_emulator(
        root / "emulator", session_token="load-test-token", extra_args=error_faults(fault_rate)
    ) as emulator:
        credentials = (emulator.access_key, emulator.secret_key, "load-test-token")
        started = time.time()
        until = started + minutes * 60
        workers = [
            context.Process(target=store_task, args=(n, folders[n], str(root / "records" / str(n)),
                                                     emulator.dicomweb_url, credentials, until, results))
            for n in range(tasks)
        ]  # fmt: skip
        for worker in workers:
            worker.start()
        assert emulator.process is not None
        memory: dict[str, list[int]] = {name: [] for name in ["emulator", *(f"task {n}" for n in range(tasks))]}
        rounds: list[dict[str, Any]] = []
        done = 0
        while done < tasks:
            time.sleep(1.0)
            for name, pid in [
                ("emulator", emulator.process.pid),
                *((f"task {n}", w.pid) for n, w in enumerate(workers)),
            ]:
                if pid is not None and (rss := rss_kb(pid)) is not None:
                    memory[name].append(rss)
            while not results.empty():
                item = results.get()
                done += bool(item.get("done"))
                if not item.get("done"):
                    rounds.append(item)
            if any(w.exitcode not in (None, 0) for w in workers):
                raise RuntimeError("a store task died")
        for worker in workers:
            worker.join()
        stats = emulator.stats()
    seconds = time.time() - started
    statuses = {int(status): count for status, count in stats["responses"].items()}
    stored = sum(r["counts"].get("stored", 0) for r in rounds)
    figures = {
        "tasks": tasks,
        "seconds": round(seconds, 1),
        "instances_per_task": instances,
        "rounds": len(rounds),
        "instances_stored": stored,
        "instances_per_second": round(stored / seconds, 1),
        "requests": sum(r["requests"] for r in rounds),
        "responses": statuses,
        "faults_injected": stats["faults"],
        "retries": {cause: sum(r["retries"].get(cause, 0) for r in rounds) for cause in rounds[0]["retries"]},
        "not_stored": sum(count for r in rounds for outcome, count in r["counts"].items() if outcome != "stored"),
        "memory": {name: flatness(samples) for name, samples in memory.items() if samples},
    }
    problems = [f"task {r['task']} round {r['round']}: {r['counts']}" for r in rounds
                if r["counts"]["stored"] != instances or sum(r["counts"].values()) != instances]  # fmt: skip
    problems += [f"{count} answers {status}" for status, count in statuses.items() if status not in INJECTED | {200}]
    if sum(count for status, count in statuses.items() if status != 200) != sum(stats["faults"].values()):
        problems.append(f"errors other than the injected ones: {statuses} against {stats['faults']}")
    problems += [f"{name}: RSS {m['change_percent']:+.1f} %" for name, m in figures["memory"].items()
                 if m["change_percent"] > 10]  # fmt: skip
    figures["problems"] = problems
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", type=int, default=8)
    parser.add_argument("--minutes", type=float, default=3.0)
    parser.add_argument("--instances", type=int, default=400, help="instances per task (sent again every round)")
    parser.add_argument("--fault-rate", type=float, default=0.05)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="hi-stow-load-") as scratch:
        figures = run_load_test(Path(scratch), args.tasks, args.minutes, args.instances, args.fault_rate)
    text = json.dumps(figures, indent=1)
    print(text)
    (ROOT / "build").mkdir(exist_ok=True)
    (ROOT / "build" / "load-test.json").write_text(text + "\n")
    return 1 if figures["problems"] else 0


if __name__ == "__main__":
    sys.exit(main())
