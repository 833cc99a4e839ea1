"""PartitionDicomOperator: split a large source into balanced shards for ``StoreDicomOperator`` task mapping."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import BaseOperator

from airflow_hi_stow.engine.partition import GroupBy, partition_source, write_shards
from airflow_hi_stow.operators.records import default_manifest_location, s3_client_factory, task_instance_parts
from airflow_hi_stow.storage.locations import open_location

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context


class PartitionDicomOperator(BaseOperator):
    """Split a source into shards balanced by bytes, never splitting a study, for
    ``StoreDicomOperator.partial(...).expand(source=partition.output)``.

    Each shard's files are written to a file list under ``shard_location``; the XCom holds only
    ``{"manifest": <file list URI>, "files": <count>}`` per shard, so it stays small at any file count. Every
    mapped task must reach the file lists: with more than one worker, use an ``s3://`` location.

    :param source: as for StoreDicomOperator (templated).
    :param max_shards: at most this many shards (Airflow's ``max_map_length``, 1024 by default, caps it too).
    :param shard_bytes: aim at shards of about this many bytes (fewer shards for a small source).
    :param group_by: ``study`` (reads each file's header) or ``directory`` (a file's folder or S3 prefix; no reads).
    :param aws_conn_id: the AWS connection for ``s3://`` sources and an ``s3://`` shard location.
    :param shard_location: a local directory or ``s3://bucket/prefix`` for the file lists, under
        ``dag_id=../run_id=../task_id=../map_index=../`` (default: ``[hi_stow] manifest_location``; templated).
    :param follow_symlinks: follow symbolic links found in source folders (or matched by a glob) that point out of
        them; by default each is reported with that reason and never read, so that a link planted in an incoming
        folder cannot make the task read another file. A path named in ``source`` itself is always followed.
    """

    template_fields: Sequence[str] = ("source", "shard_location")
    ui_color = "#d5e8f7"

    def __init__(
        self,
        *,
        source: Any,
        max_shards: int = 16,
        shard_bytes: int | None = None,
        group_by: GroupBy = "study",
        aws_conn_id: str | None = "aws_default",
        shard_location: str | None = None,
        follow_symlinks: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.source = source
        self.max_shards = max_shards
        self.shard_bytes = shard_bytes
        self.group_by = group_by
        self.aws_conn_id = aws_conn_id
        self.shard_location = shard_location
        self.follow_symlinks = follow_symlinks

    def execute(self, context: Context) -> list[dict[str, Any]]:
        s3_client = s3_client_factory(self.aws_conn_id)
        shards = partition_source(
            self.source,
            max_shards=self.max_shards,
            shard_bytes=self.shard_bytes,
            group_by=self.group_by,
            s3_client=s3_client,
            follow_symlinks=self.follow_symlinks,
        )
        location = open_location(
            self.shard_location or default_manifest_location(), task_instance_parts(context), s3_client
        )
        sources = write_shards(shards, location)
        self.log.info("%d file(s) in %d shard(s), listed under %s", sum(map(len, shards)), len(shards), location.uri)
        return sources
