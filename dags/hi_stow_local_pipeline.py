"""hi_stow_local_pipeline: a folder of DICOM -> de-identify (PS3.15 Annex E) -> validate (quarantine) -> import into
AWS HealthImaging with STOW-RS, one mapped task per study -> a report read back through HealthImaging's API.

```mermaid
flowchart LR
    A[source folder] --> B[deidentify]
    B -- originals that cannot be de-identified --> Q1[(quarantine/deidentify)]
    B -- de-identified files --> C[validate]
    C -- files HealthImaging would refuse or mis-file --> Q2[(quarantine/validate)]
    C -- good files --> D[find_studies]
    D -- one file list per study --> E["store_study (mapped)"]
    E --> F[report]
```

Connections: ``aws_healthimaging`` (an AWS connection with the extras ``region_name`` and ``datastore_id``; for the
local emulator also ``endpoint_url``) and ``hi_stow_deid_key`` (the de-identification key in its password, 32 bytes or
more: keep it as long as the pseudonyms must stay stable, see docs/deidentification.md).

Params (``airflow dags test hi_stow_local_pipeline -c '{"source": "/data/incoming"}'``, or the UI's trigger form):

- ``source``: a folder (recursive), a glob, a file, an ``s3://`` prefix, or a list of these;
- ``destination``: where the de-identified files go (a folder or ``s3://`` prefix); only they flow on;
- ``quarantine``: where files that cannot go on are kept with their reasons (``deidentify/`` holds originals with
  patient data: protect it; ``validate/`` de-identified files);
- ``report_path``: optional file the JSON report is written to;
- the profile options of PS3.15 Annex E (all off: the Basic Profile alone).

The defaults point at ``$HI_STOW_SAMPLE_DATA`` (``/data/dicom`` unless set), as ``make airflow`` and the compose stack
lay it out. Bad input anywhere in the source (not DICOM, empty, truncated) ends in the quarantine with its reason; the
run still stores everything good. Every task can be retried or cleared from the UI: the de-identification rewrites
identical files, validation gives the same split, and the store sends only what was not confirmed.
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
from airflow_hi_stow.operators.deidentify import OPTION_FLAGS, DeidentifyDicomOperator
from airflow_hi_stow.operators.partition import PartitionDicomOperator
from airflow_hi_stow.operators.store import StoreDicomOperator
from airflow_hi_stow.operators.validate import ValidateDicomOperator
from airflow_hi_stow.storage.files import write_whole

CONN_ID = "aws_healthimaging"
KEY_CONN_ID = "hi_stow_deid_key"
POOL = "healthimaging"
SAMPLE_DATA = os.environ.get("HI_STOW_SAMPLE_DATA", "/data/dicom")
PROFILE_OPTIONS: dict[str, Any] = {option: f"{{{{ params.{option} }}}}" for option in OPTION_FLAGS}
"""Each profile option of the operator, set from the DAG param of its name."""

with DAG(
    dag_id="hi_stow_local_pipeline",
    description="De-identify, validate and import a folder of DICOM into AWS HealthImaging (STOW-RS)",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    render_template_as_native_obj=True,
    default_args={"retries": 2, "retry_delay": timedelta(seconds=30)},
    params={
        "source": Param(f"{SAMPLE_DATA}/incoming", type=["string", "array"], description="what to import"),
        "destination": Param(f"{SAMPLE_DATA}/deidentified", type="string", description="de-identified files"),
        "quarantine": Param(f"{SAMPLE_DATA}/quarantine", type="string", description="files that cannot go on"),
        "report_path": Param(None, type=["null", "string"], description="write the JSON report here"),
        **{option: Param(False, type="boolean", description="a PS3.15 E.3 option") for option in OPTION_FLAGS},
    },
    tags=["healthimaging", "dicom", "sample", "de-identification"],
    doc_md=__doc__,
) as dag:
    deidentified = DeidentifyDicomOperator(
        task_id="deidentify",
        source="{{ params.source }}",
        destination="{{ params.destination }}",
        quarantine="{{ params.quarantine }}/deidentify",
        key_conn_id=KEY_CONN_ID,
        aws_conn_id=CONN_ID,
        **PROFILE_OPTIONS,
    )
    validated = ValidateDicomOperator(
        task_id="validate",
        source=deidentified.output,
        quarantine="{{ params.quarantine }}/validate",
        severities={"deid": "error"},  # the de-identification gate: nothing identifiable reaches the store
        aws_conn_id=CONN_ID,
    )
    studies = PartitionDicomOperator(
        task_id="find_studies", source=validated.output, group_by="study", shard_bytes=1, max_shards=512,
        aws_conn_id=CONN_ID,
    )  # fmt: skip
    stored = StoreDicomOperator.partial(
        task_id="store_study", aws_conn_id=CONN_ID, per_study=True, pool=POOL, retries=3
    ).expand(source=studies.output)

    @task(trigger_rule=TriggerRule.ALL_DONE, multiple_outputs=False)  # one XCom: the report
    def report(
        deidentification: Any, validation: Any, summaries: Any, params: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """Merge the steps' summaries and read the image sets back with SearchImageSets and GetImageSet."""
        result = HealthImagingStowHook(CONN_ID).import_report(summaries or [])
        result["deidentification"] = deidentification
        result["validation"] = validation
        if report_path := (params or {}).get("report_path"):
            write_whole(Path(report_path), json.dumps(result, indent=1).encode())  # whole or not at all
        return result

    @task(trigger_rule=TriggerRule.ONE_FAILED, retries=0)
    def fail_run() -> None:
        """Keeps the run failed when a step failed (``report`` runs anyway and would hide it)."""
        raise AirflowFailException("a step failed: see its log")

    [deidentified, validated, stored, report(deidentified.output, validated.output, stored.output)] >> fail_run()
