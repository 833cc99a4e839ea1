"""Running the test DAGs of ``tests/dags`` for real: ``dag.test()`` on the SQLite database of the test session,
in this process or in a child process (which a test can SIGKILL).

``dag.test()`` only runs a DAG that Airflow has serialized from a DAG bundle ("the dag is not serialized"
otherwise), so ``tests/dags`` is declared as a second bundle beside the configured dags folder. A run's id comes
from ``run_after``; passing the same moment again re-creates the run under the same id, as a retry or a clear keeps
it, so a StoreDicomOperator finds the ledger of the earlier attempt.

    python -m tests.support.airflow_dags <dag_id> <run_after ISO 8601>   # exit status 0: run succeeded
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
TEST_DAGS = ROOT / "tests" / "dags"
BUNDLES = json.dumps(
    [
        {"name": "dags-folder", "classpath": "airflow.dag_processing.bundles.local.LocalDagBundle", "kwargs": {}},
        {
            "name": "hi-stow-test-dags",
            "classpath": "airflow.dag_processing.bundles.local.LocalDagBundle",
            "kwargs": {"path": str(TEST_DAGS)},
        },
    ]
)
ENVIRONMENT = {"AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST": BUNDLES}
"""Set by the tests (monkeypatch) before running a DAG, in this process and for child processes."""


def migrate_database() -> None:
    subprocess.run([sys.executable, "-m", "airflow", "db", "migrate"], check=True, capture_output=True)


def run_dag(dag_id: str, run_after: datetime) -> Any:
    """``dag.test()`` of a DAG in ``tests/dags``, parsed now (so with the current ``HI_STOW_TEST_ARGS``); returns
    the DagRun."""
    from tests.support.airflow_compat import DagBag

    bag = DagBag(dag_folder=str(TEST_DAGS))
    if bag.import_errors:
        raise RuntimeError(f"test DAGs failed to parse: {bag.import_errors}")
    return bag.get_dag(dag_id).test(logical_date=run_after, run_after=run_after)


def xcom_values(dag_id: str, run_id: str, task_id: str, key: str = "return_value") -> dict[int, Any]:
    """The XCom ``key`` of each (mapped) instance of a task in a run, by map index."""
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        rows = session.scalars(
            select(XComModel).where(
                XComModel.dag_id == dag_id,
                XComModel.run_id == run_id,
                XComModel.task_id == task_id,
                XComModel.key == key,
            )
        ).all()
        return {row.map_index: XComModel.deserialize_value(row) for row in rows}


def child_process(dag_id: str, run_after: datetime, log: Path) -> subprocess.Popen[bytes]:
    """This module's ``__main__`` in a new process group (so a test can SIGKILL the whole run)."""
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "tests.support.airflow_dags", dag_id, run_after.isoformat()],
            cwd=ROOT,
            env={**os.environ, **ENVIRONMENT},
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


if __name__ == "__main__":
    run = run_dag(sys.argv[1], datetime.fromisoformat(sys.argv[2]))
    sys.exit(0 if run.state == "success" else 1)
