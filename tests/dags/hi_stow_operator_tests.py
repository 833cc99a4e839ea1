"""DAGs run by tests/integration/test_operator.py, through ``dag.test()`` and ``airflow dags test``.

The tests pass the operators' arguments as JSON in ``HI_STOW_TEST_ARGS`` (read when this file is parsed); the
source reaches StoreDicomOperator through a template (``{{ params.source }}``, rendered as a native list) in
``hi_stow_test_store``, through the XCom of an upstream task in ``hi_stow_test_xcom``, and through the XCom of
PartitionDicomOperator in ``hi_stow_test_mapped``.
"""

from __future__ import annotations

import json
import os

import pendulum
from airflow.providers.common.compat.sdk import DAG, task

from airflow_hi_stow.operators.partition import PartitionDicomOperator
from airflow_hi_stow.operators.store import StoreDicomOperator

ARGS = json.loads(os.environ.get("HI_STOW_TEST_ARGS", "{}"))
SOURCE = ARGS.pop("source", [])
SHARDS = ARGS.pop("max_shards", 3)
START = pendulum.datetime(2026, 1, 1, tz="UTC")

with DAG(
    "hi_stow_test_store",
    schedule=None,
    start_date=START,
    catchup=False,
    render_template_as_native_obj=True,
    params={"source": SOURCE},
):
    StoreDicomOperator(task_id="store", source="{{ params.source }}", **ARGS)

with DAG("hi_stow_test_xcom", schedule=None, start_date=START, catchup=False):

    @task
    def good_files() -> list[str]:
        """Stands for a validation step that returns the files worth storing."""
        return list(SOURCE)

    StoreDicomOperator(task_id="store", source=good_files(), **ARGS)

with DAG("hi_stow_test_mapped", schedule=None, start_date=START, catchup=False):
    shards = PartitionDicomOperator(task_id="partition", source=SOURCE, max_shards=SHARDS)
    StoreDicomOperator.partial(task_id="store", **ARGS).expand(source=shards.output)
