"""DAGs run by tests/integration/test_deidentify_operator.py through ``dag.test()``.

The tests pass the operators' arguments as JSON in ``HI_STOW_DEID_TEST_ARGS`` (read when this file is parsed):
``{"deidentify": {...DeidentifyDicomOperator arguments...}, "store": {...StoreDicomOperator arguments...},
"validate": {...ValidateDicomOperator arguments...}, "sources": [...one source per mapped instance...]}``. The
XCom of the de-identification is the next step's source, as the sample pipelines chain them: the store's in
``hi_stow_test_deid_store``, the validation's (then the store's) in ``hi_stow_test_deid_validate_store``.
"""

from __future__ import annotations

import json
import os

import pendulum
from airflow.providers.common.compat.sdk import DAG

from airflow_hi_stow.operators.deidentify import DeidentifyDicomOperator
from airflow_hi_stow.operators.store import StoreDicomOperator
from airflow_hi_stow.operators.validate import ValidateDicomOperator

ARGS = json.loads(os.environ.get("HI_STOW_DEID_TEST_ARGS", "{}"))
DEIDENTIFY = {
    "source": [],
    "destination": "/nonexistent",
    "key_conn_id": "hi_stow_deid_key",
    **ARGS.get("deidentify", {}),
}
STORE = ARGS.get("store", {})
VALIDATE = {"quarantine": "/nonexistent", **ARGS.get("validate", {})}
SOURCES = ARGS.get("sources", [])
START = pendulum.datetime(2026, 1, 1, tz="UTC")

with DAG("hi_stow_test_deid_store", schedule=None, start_date=START, catchup=False):
    deidentified = DeidentifyDicomOperator(task_id="deidentify", **DEIDENTIFY)
    StoreDicomOperator(task_id="store", source=deidentified.output, **STORE)

with DAG("hi_stow_test_deid_validate_store", schedule=None, start_date=START, catchup=False):
    deidentified = DeidentifyDicomOperator(task_id="deidentify", **DEIDENTIFY)
    validated = ValidateDicomOperator(task_id="validate", source=deidentified.output, **VALIDATE)
    StoreDicomOperator(task_id="store", source=validated.output, **STORE)

with DAG("hi_stow_test_deid", schedule=None, start_date=START, catchup=False):
    DeidentifyDicomOperator(task_id="deidentify", **DEIDENTIFY)

with DAG("hi_stow_test_deid_mapped", schedule=None, start_date=START, catchup=False):
    mapped = {name: value for name, value in DEIDENTIFY.items() if name != "source"}
    DeidentifyDicomOperator.partial(task_id="deidentify", **mapped).expand(source=SOURCES)
