"""A link from a task instance to its data store in the AWS HealthImaging console."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperatorLink

from airflow_hi_stow.core.healthimaging import datastore_console_url

if TYPE_CHECKING:
    from airflow.sdk.types import TaskInstanceKey


class HealthImagingDatastoreLink(BaseOperatorLink):
    """The data store of the operator's (rendered) ``datastore_id``, in the region of ``region_name`` or else of
    its AWS connection. Built on the worker when the task ends; empty when either is unknown."""

    name = "HealthImaging data store"

    def get_link(self, operator: Any, *, ti_key: TaskInstanceKey) -> str:
        datastore_id = getattr(operator, "datastore_id", None)
        if not datastore_id or not isinstance(datastore_id, str):
            return ""
        region = getattr(operator, "region_name", None) or _connection_region(getattr(operator, "aws_conn_id", None))
        return datastore_console_url(region, datastore_id) if region else ""


def _connection_region(aws_conn_id: str | None) -> str | None:
    from airflow_hi_stow.hooks.healthimaging import HealthImagingStowHook

    try:
        return HealthImagingStowHook(aws_conn_id).region_name
    except Exception:  # a link must never fail the task: no connection, no region
        return None
