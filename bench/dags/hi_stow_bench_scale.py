"""The DAG of bench/scale.py: PartitionDicomOperator splits a folder into shards of whole studies, and
StoreDicomOperator is mapped over them (defaults otherwise), into the connection ``hi_stow_bench``. Each task also
pushes how long its ``execute`` took (``execute_seconds``), so that the benchmark can tell the operators' work
from Airflow's."""

from __future__ import annotations

import os
import time
from typing import Any

import pendulum
from airflow.providers.common.compat.sdk import DAG

from airflow_hi_stow.operators.partition import PartitionDicomOperator
from airflow_hi_stow.operators.store import StoreDicomOperator


class _Timed:
    def execute(self, context: Any) -> Any:
        started = time.monotonic()
        result = super().execute(context)  # type: ignore[misc]
        context["ti"].xcom_push(key="execute_seconds", value=time.monotonic() - started)
        return result


class TimedPartition(_Timed, PartitionDicomOperator):
    pass


class TimedStore(_Timed, StoreDicomOperator):
    pass


with DAG(
    "hi_stow_bench_scale",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
):
    shards = TimedPartition(
        task_id="partition",
        source=os.environ.get("HI_STOW_BENCH_SOURCE", "/nonexistent"),
        max_shards=int(os.environ.get("HI_STOW_BENCH_SHARDS", "16")),
        aws_conn_id=None,
    )
    TimedStore.partial(task_id="store", aws_conn_id="hi_stow_bench").expand(source=shards.output)
