"""PartitionDicomOperator: split a large source into balanced shards for ``StoreDicomOperator`` task mapping."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator

from airflow_hi_stow.stow.partition import GroupBy, partition_source
from airflow_hi_stow.stow.s3 import S3Client

if TYPE_CHECKING:
    from airflow.sdk import Context


class PartitionDicomOperator(BaseOperator):
    """Return shards (lists of file paths and S3 URIs), balanced by bytes, never splitting a study, for
    ``StoreDicomOperator.partial(...).expand(source=partition.output)``.

    :param source: as for StoreDicomOperator (templated).
    :param max_shards: at most this many shards (Airflow's ``max_map_length``, 1024 by default, caps it too).
    :param shard_bytes: aim at shards of about this many bytes (fewer shards for a small source).
    :param group_by: ``study`` (reads each file's header) or ``directory`` (a file's folder or S3 prefix; no reads).
    :param aws_conn_id: the AWS connection for ``s3://`` sources.
    """

    template_fields: Sequence[str] = ("source",)
    ui_color = "#d5e8f7"

    def __init__(
        self,
        *,
        source: Any,
        max_shards: int = 16,
        shard_bytes: int | None = None,
        group_by: GroupBy = "study",
        aws_conn_id: str | None = "aws_default",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.source = source
        self.max_shards = max_shards
        self.shard_bytes = shard_bytes
        self.group_by = group_by
        self.aws_conn_id = aws_conn_id

    def execute(self, context: Context) -> list[list[str]]:
        shards = partition_source(
            self.source,
            max_shards=self.max_shards,
            shard_bytes=self.shard_bytes,
            group_by=self.group_by,
            s3_client=self._s3_client,
        )
        self.log.info("%d file(s) in %d shard(s)", sum(len(shard) for shard in shards), len(shards))
        return shards

    def _s3_client(self) -> S3Client:
        from airflow.providers.amazon.aws.hooks.s3 import S3Hook

        return S3Hook(aws_conn_id=self.aws_conn_id).get_conn()
