"""Partitioning a large source into balanced shards, one per mapped task instance
(``StoreDicomOperator.partial(...).expand(source=shards)``), each handed over as a small file list."""

from __future__ import annotations

import io
import posixpath
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Literal

from airflow_hi_stow.core.results import InstanceResult
from airflow_hi_stow.core.sharding import partition
from airflow_hi_stow.sources.instances import InstanceFile, InvalidInstance, header_workers, read_instance
from airflow_hi_stow.sources.resolve import FileList, resolve_sources, write_file_list
from airflow_hi_stow.sources.s3 import S3Client
from airflow_hi_stow.storage.locations import Location

GroupBy = Literal["study", "directory"]


def partition_source(
    source: Any,
    *,
    max_shards: int = 16,
    shard_bytes: int | None = None,
    group_by: GroupBy = "study",
    s3_client: Callable[[], S3Client] | None = None,
    threads: int = 8,
    follow_symlinks: bool = False,
) -> list[list[str]]:
    """Shards of file paths and S3 URIs, balanced by bytes, each study (``group_by="study"``, reading every
    header) or each directory / S3 prefix (``"directory"``, no reads) whole in one shard. At most ``max_shards``
    (and Airflow's ``max_map_length``, 1024) shards; fewer with ``shard_bytes`` (about that many bytes each).

    Entries naming no file and unreadable files are kept (each as a group of its own), so that the store task
    reports them. ``follow_symlinks``: as for :func:`~airflow_hi_stow.sources.resolve.resolve_sources`.
    """
    if group_by not in ("study", "directory"):
        raise ValueError(f"group_by must be 'study' or 'directory', not {group_by!r}")
    items = list(resolve_sources(source, s3_client, threads=threads, follow_symlinks=follow_symlinks))

    def key(item: InstanceFile | InstanceResult) -> str:
        if isinstance(item, InstanceResult):
            return item.source
        if group_by == "directory":
            return posixpath.dirname(item.name)
        try:
            return read_instance(item).study_instance_uid
        except InvalidInstance:
            return item.name

    files = [item for item in items if not isinstance(item, InstanceResult)]
    workers = header_workers(files, threads) if group_by == "study" else 1
    if workers == 1:
        keys = [key(item) for item in items]
    else:
        with ThreadPoolExecutor(workers, thread_name_prefix="hi-stow-partition") as pool:
            keys = list(pool.map(key, items))
    pairs = list(zip(items, keys, strict=True))
    shards = partition(
        pairs,
        lambda pair: 0 if isinstance(pair[0], InstanceResult) else pair[0].size,
        lambda pair: pair[1],
        max_shards=max_shards,
        shard_bytes=shard_bytes,
    )
    return [[item.source if isinstance(item, InstanceResult) else item.name for item, _ in shard] for shard in shards]


def write_shards(shards: list[list[str]], location: Location) -> list[dict[str, Any]]:
    """Each shard as a file list at ``location`` (``shard-0001.jsonl``...), and the sources naming them:
    ``{"manifest": uri, "files": n}``, a few dozen bytes each whatever the number of files."""
    sources = []
    for number, shard in enumerate(shards, 1):
        uri = location.put_file(f"shard-{number:04d}.jsonl", io.BytesIO(write_file_list(shard)))
        sources.append(FileList(uri).to_source(files=len(shard)))
    return sources
