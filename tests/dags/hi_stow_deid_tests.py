"""DAGs run by tests/integration/test_deidentify_operator.py through ``dag.test()``.

The tests pass the operators' arguments as JSON in ``HI_STOW_DEID_TEST_ARGS`` (read when this file is parsed):
``{"deidentify": {...DeidentifyDicomOperator arguments...}, "store": {...StoreDicomOperator arguments...},
"sources": [...one source per mapped instance...]}``. In ``hi_stow_test_deid_store`` the store takes the
de-identification's XCom as its source, as the sample pipelines chain them.
"""

from __future__ import annotations

import json
import os

import pendulum
from airflow.providers.common.compat.sdk import DAG

from airflow_hi_stow.operators.deidentify import DeidentifyDicomOperator
from airflow_hi_stow.operators.store import StoreDicomOperator

ARGS = json.loads(os.environ.get("HI_STOW_DEID_TEST_ARGS", "{}"))
DEIDENTIFY = {
    "source": [],
    "destination": "/nonexistent",
    "key_conn_id": "hi_stow_deid_key",
    **ARGS.get("deidentify", {}),
}
STORE = ARGS.get("store", {})
SOURCES = ARGS.get("sources", [])
START = pendulum.datetime(2026, 1, 1, tz="UTC")

with DAG("hi_stow_test_deid_store", schedule=None, start_date=START, catchup=False):
    deidentified = DeidentifyDicomOperator(task_id="deidentify", **DEIDENTIFY)
    StoreDicomOperator(task_id="store", source=deidentified.output, **STORE)

with DAG("hi_stow_test_deid", schedule=None, start_date=START, catchup=False):
    DeidentifyDicomOperator(task_id="deidentify", **DEIDENTIFY)

with DAG("hi_stow_test_deid_mapped", schedule=None, start_date=START, catchup=False):
    mapped = {name: value for name, value in DEIDENTIFY.items() if name != "source"}
    DeidentifyDicomOperator.partial(task_id="deidentify", **mapped).expand(source=SOURCES)
