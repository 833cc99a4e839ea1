"""Where the operators keep their records (manifests, ledgers, shard lists), and the S3 client they read with."""

from __future__ import annotations

import os
from collections.abc import Callable
from functools import cache
from typing import TYPE_CHECKING

from airflow.providers.common.compat.sdk import conf

from airflow_hi_stow.core import redaction
from airflow_hi_stow.sources.s3 import S3Client

if TYPE_CHECKING:
    from airflow.providers.amazon.aws.hooks.s3 import S3Hook
    from airflow.providers.common.compat.sdk import Context


def default_manifest_location() -> str:
    """``[hi_stow] manifest_location`` from Airflow's configuration, else ``$AIRFLOW_HOME/hi_stow/manifests``."""
    configured = conf.get("hi_stow", "manifest_location", fallback=None)
    if configured:
        return str(configured)
    return os.path.join(os.environ.get("AIRFLOW_HOME", os.path.expanduser("~/airflow")), "hi_stow", "manifests")


def task_instance_parts(context: Context) -> list[str]:
    """``dag_id=.../run_id=.../task_id=.../map_index=...``: the same for every try of a task instance."""
    ti = context["ti"]
    return [f"dag_id={ti.dag_id}", f"run_id={ti.run_id}", f"task_id={ti.task_id}", f"map_index={ti.map_index}"]


def s3_client_factory(aws_conn_id: str | None) -> Callable[[], S3Client]:
    """Builds the boto3 S3 client of ``aws_conn_id`` once, when first needed (never for local-only work)."""

    @cache
    def client() -> S3Client:
        from airflow.providers.amazon.aws.hooks.s3 import S3Hook

        return quiet_s3_client(S3Hook(aws_conn_id=aws_conn_id))

    return client


def quiet_s3_client(hook: S3Hook) -> S3Client:
    """The hook's S3 client, with botocore's DEBUG lines cleaned of signatures, tokens and secrets."""
    redaction.install()
    return hook.conn
