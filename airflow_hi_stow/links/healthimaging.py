"""A link from a task instance to its data store in the AWS HealthImaging console."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import botocore.session
from airflow.providers.amazon.aws.links.base_aws import BASE_AWS_CONSOLE_LINK, BaseAwsLink

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context


class HealthImagingDatastoreLink(BaseAwsLink):
    """The data store's page in the console of the region's partition (aws, aws-cn, aws-us-gov), as the amazon
    provider's links are built: stored when the task runs, read back by the UI."""

    name = "HealthImaging data store"
    key = "healthimaging_datastore"
    format_str = BASE_AWS_CONSOLE_LINK + "/medical-imaging/home?region={region_name}#/data-stores/{datastore_id}"

    @classmethod
    def persist_for(cls, context: Context, operator: Any, region_name: str | None, datastore_id: str | None) -> None:
        """Store the link of ``datastore_id`` in ``region_name``; nothing when either is unknown."""
        if not region_name or not datastore_id:
            return
        partition = botocore.session.get_session().get_partition_for_region(region_name)
        cls.persist(
            context=context,
            operator=operator,
            region_name=region_name,
            aws_partition=partition,
            datastore_id=datastore_id,
        )
