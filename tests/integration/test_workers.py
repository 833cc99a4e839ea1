"""Worker processes inside an Airflow task: the task's main script is the ``airflow`` command and Airflow 3 withholds
the metadata database from tasks, so a spawned child that re-ran that script died at start (as the de-identification
of ``hi_stow_local_pipeline`` did under ``airflow standalone``, where ``dag.test()`` never showed it)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from multiprocessing import get_context
from pathlib import Path
from typing import Any

from airflow_hi_stow.workers import allowed_processes

MAIN_SCRIPT = textwrap.dedent(
    """
    import os
    from airflow.__main__ import main  # what the `airflow` console script runs first

    os.environ["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] = "airflow-db-not-allowed:///"  # as a task sees it

    if __name__ == "__main__":
        from concurrent.futures import ProcessPoolExecutor
        from multiprocessing import get_context

        from airflow_hi_stow.workers import worker_pool

        if os.environ["POOL"] == "worker_pool":
            with worker_pool(2) as pool:
                print(sorted(pool.map(abs, [-1, -2, -3, -4])))
        else:
            with ProcessPoolExecutor(2, mp_context=get_context("spawn")) as pool:
                print(sorted(pool.map(abs, [-1, -2, -3, -4])))
    """
)


def run(tmp_path: Path, pool: str) -> subprocess.CompletedProcess[str]:
    script = tmp_path / "airflow"  # a console script, run by path, as a task's main module is
    script.write_text(MAIN_SCRIPT)
    environment = {"POOL": pool, "PATH": "/usr/bin:/bin", "AIRFLOW_HOME": str(tmp_path / "home"),
                   "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{tmp_path}/airflow.db"}  # fmt: skip
    return subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=180, env=environment)


def test_workers_start_in_a_task_whose_main_script_is_airflow(tmp_path: Path) -> None:
    done = run(tmp_path, "worker_pool")
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "[1, 2, 3, 4]"


def test_a_plain_spawn_pool_dies_there(tmp_path: Path) -> None:
    """What the workers are protected from (if this ever passes, the protection can go)."""
    done = run(tmp_path, "plain")
    assert done.returncode != 0
    assert "Could not parse SQLAlchemy URL" in done.stderr


def _report_allowed(results: Any) -> None:
    results.put(allowed_processes(2))


def test_a_daemonic_process_works_in_one_process() -> None:
    """The tasks of a Celery prefork worker are daemonic processes, which may not start children."""
    context = get_context("spawn")
    results = context.Queue()
    daemon = context.Process(target=_report_allowed, args=(results,), daemon=True)
    daemon.start()
    daemon.join(60)
    assert results.get(timeout=10) == 1
    assert allowed_processes(2) == 2  # this test's own process may
