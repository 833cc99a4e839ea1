"""hi_stow_import_only: validate and import DICOM P10 files that are already clean (de-identified, or meant to be
stored as they are) into an AWS HealthImaging data store, one mapped task per study, then read back where they
landed (primary and non-primary image sets).

```mermaid
flowchart LR
    A[source] --> V[validate] -- good files --> P[find_studies] --> S["store_study (mapped)"] --> R[report]
    V -- refused --> Q[(quarantine)]
    L[later_deliveries] --> VR["validate_resend (mapped)"] --> SR["store_resend (mapped)"] --> R
```

Connection ``aws_healthimaging``: an AWS connection (keys, a profile or ``role_arn``) with the extras ``region_name``
and ``datastore_id`` (and, where the network needs them, ``verify`` and ``config_kwargs.proxies``). Add ``endpoint_url`` to reach the local emulator (``hi-stow emulator``); leave it out for AWS.
Nothing else changes between the two.

Params (e.g. ``airflow dags test hi_stow_import_only -c '{"source": "/data/incoming"}'``):

- ``source``: a directory (recursive), a glob, a file, an ``s3://bucket/prefix``, or a list of these.
- ``quarantine``: where files HealthImaging would refuse or mis-file are kept, each with a reason file.
- ``resend_source``: optional, stored after ``source``: a second delivery, such as studies a PACS re-sent with
  corrections (HealthImaging puts instances that conflict with what is stored into non-primary image sets).
- ``report_path``: optional file the JSON report is written to.
"""

from __future__ import annotations

import json
import os
from datetime import timedelta
from pathlib import Path
from typing import Any

import pendulum
from airflow.providers.common.compat.sdk import DAG, AirflowFailException, Param, TriggerRule, task

from airflow_hi_stow.hooks.healthimaging import HealthImagingStowHook
from airflow_hi_stow.operators.partition import PartitionDicomOperator
from airflow_hi_stow.operators.store import StoreDicomOperator
from airflow_hi_stow.operators.validate import ValidateDicomOperator
from airflow_hi_stow.storage.files import write_whole

CONN_ID = "aws_healthimaging"
POOL = "healthimaging"
SAMPLE_DATA = os.environ.get("HI_STOW_SAMPLE_DATA", "/data/dicom")

with DAG(
    dag_id="hi_stow_import_only",
    description="Import DICOM into AWS HealthImaging (STOW-RS), one mapped task per study",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    render_template_as_native_obj=True,
    default_args={"retries": 2, "retry_delay": timedelta(seconds=30)},
    params={
        "source": Param(f"{SAMPLE_DATA}/incoming", type=["string", "array"], description="what to import"),
        "resend_source": Param(None, type=["null", "string", "array"], description="a later delivery"),
        "quarantine": Param(f"{SAMPLE_DATA}/quarantine", type="string", description="files that cannot go on"),
        "report_path": Param(None, type=["null", "string"], description="write the JSON report here"),
    },
    tags=["healthimaging", "dicom", "sample"],
    doc_md=__doc__,
) as dag:
    validated = ValidateDicomOperator(
        task_id="validate", source="{{ params.source }}", quarantine="{{ params.quarantine }}", aws_conn_id=CONN_ID
    )
    studies = PartitionDicomOperator(
        task_id="find_studies", source=validated.output, group_by="study", shard_bytes=1, max_shards=512,
        aws_conn_id=CONN_ID,
    )  # fmt: skip
    stored = StoreDicomOperator.partial(
        task_id="store_study", aws_conn_id=CONN_ID, per_study=True, pool=POOL, retries=3
    ).expand(source=studies.output)

    @task
    def later_deliveries(params: dict[str, Any] | None = None) -> list[Any]:
        """The resend source as a list of one mapped item, or none (then ``store_resend`` is skipped)."""
        resend = (params or {}).get("resend_source")
        return [resend] if resend else []

    resend_validated = ValidateDicomOperator.partial(
        task_id="validate_resend", quarantine="{{ params.quarantine }}", aws_conn_id=CONN_ID
    ).expand(source=later_deliveries())
    resent = StoreDicomOperator.partial(
        task_id="store_resend", aws_conn_id=CONN_ID, per_study=True, pool=POOL, retries=3
    ).expand(source=resend_validated.output)
    stored >> resent

    @task(trigger_rule=TriggerRule.ALL_DONE, multiple_outputs=False)  # one XCom: the report
    def report(first: Any, later: Any, validation: Any, params: dict[str, Any] | None = None) -> dict[str, Any]:
        """Merge the store summaries (``first``, ``later``: the mapped store tasks' XComs) and read the image sets
        back with SearchImageSets and GetImageSet."""
        result = HealthImagingStowHook(CONN_ID).import_report([*(first or []), *(later or [])])
        result["validation"] = validation
        if report_path := (params or {}).get("report_path"):
            write_whole(Path(report_path), json.dumps(result, indent=1).encode())  # whole or not at all
        return result

    @task(trigger_rule=TriggerRule.ONE_FAILED, retries=0)
    def fail_run() -> None:
        """Keeps the run failed when a store task failed (``report`` runs anyway and would hide it)."""
        raise AirflowFailException("a store task failed: see its log and manifest")

    [validated, stored, resent, report(stored.output, resent.output, validated.output)] >> fail_run()
