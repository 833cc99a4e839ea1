"""hi_stow_s3_pipeline: batches of DICOM arriving in S3 -> de-identify -> validate -> import into AWS HealthImaging,
sharded across workers (one mapped chain per shard of whole studies), in a pool that keeps the STOW-RS requests under
the service's quota; Assets tell downstream DAGs when de-identified data and imports are ready.

```mermaid
flowchart LR
    I((Asset hi_stow_incoming)) --> B[batch_source] --> P[find_studies]
    P -- "file list per shard" --> D["deidentify (mapped)"] --> V["validate (mapped)"] --> S["store (mapped, pool healthimaging)"]
    D -.-> DA((Asset hi_stow_deidentified))
    S -.-> IA((Asset hi_stow_imported))
    S --> R[report]
```

**Started by new objects:** the DAG is scheduled on the Asset ``hi_stow_incoming``. Whatever writes a batch to S3 (an
export DAG, a Lambda calling Airflow's REST API ``POST /api/v2/assets/events``) records an event on it with the
batch's prefix in its extra, ``{"source": "s3://bucket/incoming/batch-0042/"}``; each event starts a run that imports
that batch. A run can also be triggered by hand with the ``source`` param. Unpause the DAG: paused DAGs get no
asset-triggered runs.

Connections: ``aws_healthimaging`` (an AWS connection for HealthImaging and S3, extras ``region_name`` and
``datastore_id``; with the emulator and moto or LocalStack, per-service endpoints in ``service_config``) and
``hi_stow_deid_key`` (the de-identification key in its password). Pool: ``airflow pools set healthimaging 4
"STOW-RS"``; pool slots x 4 connections bounds the requests in flight across all workers (docs/scaling.md).
``[hi_stow] manifest_location`` must be an ``s3://`` prefix when there is more than one worker.

Params: ``source`` (a batch's ``s3://`` prefix, used when no asset event names one), ``destination`` (where the
de-identified files go), ``quarantine``, ``report_path`` (optional, a local file on the worker of ``report``).
Defaults come from ``HI_STOW_S3_INCOMING``, ``HI_STOW_S3_DEIDENTIFIED`` and ``HI_STOW_S3_QUARANTINE`` when set.
"""

from __future__ import annotations

import json
import os
from datetime import timedelta
from pathlib import Path
from typing import Any

import pendulum
from airflow.providers.common.compat.sdk import DAG, AirflowFailException, Asset, Param, TriggerRule, task

from airflow_hi_stow.hooks.healthimaging import HealthImagingStowHook
from airflow_hi_stow.operators.deidentify import DeidentifyDicomOperator
from airflow_hi_stow.operators.partition import PartitionDicomOperator
from airflow_hi_stow.operators.store import StoreDicomOperator
from airflow_hi_stow.operators.validate import ValidateDicomOperator
from airflow_hi_stow.storage.files import write_whole

CONN_ID = "aws_healthimaging"
KEY_CONN_ID = "hi_stow_deid_key"
POOL = "healthimaging"
INCOMING_PREFIX = os.environ.get("HI_STOW_S3_INCOMING", "s3://hi-stow-incoming/batches/")
DEIDENTIFIED_PREFIX = os.environ.get("HI_STOW_S3_DEIDENTIFIED", "s3://hi-stow-deidentified/instances/")
QUARANTINE_PREFIX = os.environ.get("HI_STOW_S3_QUARANTINE", "s3://hi-stow-quarantine/")
INCOMING = Asset(name="hi_stow_incoming", uri=INCOMING_PREFIX.rstrip("/"))
DEIDENTIFIED = Asset(name="hi_stow_deidentified", uri=DEIDENTIFIED_PREFIX.rstrip("/"))
IMPORTED = Asset(name="hi_stow_imported", uri=f"ahi://{CONN_ID}/imports")

with DAG(
    dag_id="hi_stow_s3_pipeline",
    description="De-identify, validate and import batches of DICOM from S3 into AWS HealthImaging, sharded",
    schedule=[INCOMING],
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=4,
    render_template_as_native_obj=True,
    default_args={"retries": 2, "retry_delay": timedelta(seconds=30)},
    params={
        "source": Param(INCOMING_PREFIX, type=["string", "array"], description="a batch, when no event names one"),
        "destination": Param(DEIDENTIFIED_PREFIX, type="string", description="de-identified files"),
        "quarantine": Param(QUARANTINE_PREFIX, type="string", description="files that cannot go on"),
        "report_path": Param(None, type=["null", "string"], description="write the JSON report here"),
    },
    tags=["healthimaging", "dicom", "sample", "de-identification", "s3"],
    doc_md=__doc__,
) as dag:

    @task
    def batch_source(params: dict[str, Any] | None = None, triggering_asset_events: Any = None) -> Any:
        """The batches the triggering asset events name (their extra ``source``), else the ``source`` param."""
        named = [
            event.extra["source"]
            for events in (triggering_asset_events or {}).values()
            for event in events
            if isinstance(getattr(event, "extra", None), dict) and event.extra.get("source")
        ]
        return named or (params or {})["source"]

    shards = PartitionDicomOperator(
        task_id="find_studies", source=batch_source(), group_by="study", max_shards=16, aws_conn_id=CONN_ID
    )
    deidentified = DeidentifyDicomOperator.partial(
        task_id="deidentify",
        destination="{{ params.destination }}",
        quarantine="{{ params.quarantine.rstrip('/') }}/deidentify",
        key_conn_id=KEY_CONN_ID,
        aws_conn_id=CONN_ID,
        outlets=[DEIDENTIFIED],
    ).expand(source=shards.output)
    validated = ValidateDicomOperator.partial(
        task_id="validate",
        quarantine="{{ params.quarantine.rstrip('/') }}/validate",
        severities={"deid": "error"},
        aws_conn_id=CONN_ID,
    ).expand(source=deidentified.output)
    stored = StoreDicomOperator.partial(
        task_id="store", aws_conn_id=CONN_ID, per_study=True, pool=POOL, retries=3, outlets=[IMPORTED]
    ).expand(source=validated.output)

    @task(trigger_rule=TriggerRule.ALL_DONE, multiple_outputs=False)  # one XCom: the report
    def report(summaries: Any, validation: Any, params: dict[str, Any] | None = None) -> dict[str, Any]:
        """Merge the mapped steps' summaries and read the image sets back with SearchImageSets and GetImageSet."""
        result = HealthImagingStowHook(CONN_ID).import_report(summaries or [])
        shards = [item for item in validation or [] if item]
        result["validation"] = {
            key: sum(int(item.get(key, 0)) for item in shards) for key in ("inputs", "files", "quarantined")
        }
        if report_path := (params or {}).get("report_path"):
            write_whole(Path(report_path), json.dumps(result, indent=1).encode())  # whole or not at all
        return result

    @task(trigger_rule=TriggerRule.ONE_FAILED, retries=0)
    def fail_run() -> None:
        """Keeps the run failed when a step failed (``report`` runs anyway and would hide it)."""
        raise AirflowFailException("a step failed: see its log")

    [shards, deidentified, validated, stored, report(stored.output, validated.output)] >> fail_run()
