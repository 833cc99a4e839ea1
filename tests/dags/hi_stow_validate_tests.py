"""DAGs run by tests/integration/test_validate_operator.py through ``dag.test()``: ValidateDicomOperator, whose XCom
(a file list of the good files) is StoreDicomOperator's ``source``.

The tests pass the arguments as JSON in ``HI_STOW_VALIDATE_TEST_ARGS`` (read when this file is parsed):
``{"validate": {...ValidateDicomOperator arguments...}, "store": {...StoreDicomOperator arguments...}}``. A variable
of its own: the DAGs of tests/dags/hi_stow_operator_tests.py pass all of ``HI_STOW_TEST_ARGS`` to StoreDicomOperator.
"""

from __future__ import annotations

import json
import os

import pendulum
from airflow.providers.common.compat.sdk import DAG

from airflow_hi_stow.operators.store import StoreDicomOperator
from airflow_hi_stow.operators.validate import ValidateDicomOperator

ARGS = json.loads(os.environ.get("HI_STOW_VALIDATE_TEST_ARGS", "{}"))
VALIDATE = {"source": [], "quarantine": "quarantine", **ARGS.get("validate", {})}
STORE = ARGS.get("store", {})

with DAG(
    "hi_stow_test_validate_store",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
):
    validate = ValidateDicomOperator(task_id="validate", **VALIDATE)
    StoreDicomOperator(task_id="store", source=validate.output, **STORE)
