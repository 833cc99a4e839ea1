"""A link from a task instance to its data store: the AWS HealthImaging console, or the local emulator's page."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import botocore.session
from airflow.providers.amazon.aws.links.base_aws import BASE_AWS_CONSOLE_LINK, BaseAwsLink

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context

AWS_DOMAINS = (".amazonaws.com", ".amazonaws.com.cn", ".amazonaws-us-gov.com", ".api.aws")


class HealthImagingDatastoreLink(BaseAwsLink):
    """The data store's page in the console of the region's partition (aws, aws-cn, aws-us-gov), as the amazon
    provider's links are built: stored when the task runs, read back by the UI. Against an endpoint outside AWS
    (the local emulator), the emulator's own page of the data store."""

    name = "HealthImaging data store"
    key = "healthimaging_datastore"
    format_str = BASE_AWS_CONSOLE_LINK + "/medical-imaging/home?region={region_name}#/data-stores/{datastore_id}"

    def format_link(self, **kwargs: Any) -> str:
        local = kwargs.get("local_endpoint")
        if local:
            return f"{str(local).rstrip('/')}/_emulator/datastores/{kwargs.get('datastore_id', '')}"
        return super().format_link(**kwargs)

    @classmethod
    def persist_for(
        cls, context: Context, operator: Any, region_name: str | None, datastore_id: str | None, endpoint: str
    ) -> None:
        """Store the link of ``datastore_id`` in ``region_name`` reached at ``endpoint`` (the DICOMweb base URL);
        nothing when the region or the data store is unknown."""
        if not region_name or not datastore_id:
            return
        host = urlsplit(endpoint).hostname or ""
        local = None if host.endswith(AWS_DOMAINS) else endpoint
        partition = botocore.session.get_session().get_partition_for_region(region_name)
        cls.persist(
            context=context,
            operator=operator,
            region_name=region_name,
            aws_partition=partition,
            datastore_id=datastore_id,
            local_endpoint=local,
        )
