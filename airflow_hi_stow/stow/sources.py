"""Expanding what users give as a source (paths, directories, globs, S3 URIs, lists of these) into the files to
store."""

from __future__ import annotations

import ast
import glob
import json
import os
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from airflow_hi_stow.core.results import InstanceResult, Outcome
from airflow_hi_stow.stow.fingerprints import HashingLocalFile
from airflow_hi_stow.stow.instances import InstanceFile
from airflow_hi_stow.stow.s3 import S3Client, is_s3_uri, list_s3

_GLOB_CHARACTERS = frozenset("*?[")


def expand_local(paths: Iterable[str | os.PathLike[str]]) -> Iterator[str]:
    """Each file as given, and every regular file under each directory (recursively, in sorted order).

    A path that does not exist is passed through, so that it is reported instead of silently dropped.
    """
    for path in paths:
        root = Path(path)
        if root.is_dir():
            for directory, subdirs, files in os.walk(root):
                subdirs.sort()
                for name in sorted(files):
                    candidate = Path(directory, name)
                    if candidate.is_file():
                        yield str(candidate)
        else:
            yield str(root)


def flatten_source(source: Any) -> Iterator[str]:
    """The source entries as strings, from a path, a list of paths (nested, e.g. an XCom of a mapped task), or the
    text of such a list (what a Jinja template renders an XCom list to)."""
    if source is None:
        return
    if isinstance(source, os.PathLike):
        yield os.fspath(source)
    elif isinstance(source, str):
        text = source.strip()
        if text.startswith("["):
            parsed = _parse_list(text)
            if parsed is not None:
                yield from flatten_source(parsed)
                return
        if text:
            yield text
    elif isinstance(source, Mapping | bytes):
        raise TypeError(f"source must be a path, an S3 URI or a list of these, not {type(source).__name__}")
    elif isinstance(source, Iterable):
        for item in source:
            yield from flatten_source(item)
    else:
        raise TypeError(f"source must be a path, an S3 URI or a list of these, not {type(source).__name__}")


def _parse_list(text: str) -> list[Any] | None:
    for parse in (json.loads, ast.literal_eval):
        try:
            value = parse(text)
        except (ValueError, SyntaxError):
            continue
        if isinstance(value, list):
            return value
    return None


def resolve_sources(
    source: Any, s3_client: Callable[[], S3Client] | None = None, *, threads: int = 8
) -> Iterator[InstanceFile | InstanceResult]:
    """Every file a source names, once, in order: local files (hashing as they are read, see
    :mod:`~airflow_hi_stow.stow.fingerprints`) and S3 objects. An entry naming nothing (a missing path, a glob or
    prefix without matches, an unreadable listing) comes out as a REJECTED result with the reason, never dropped.

    Entries are looked up in ``threads`` threads (a list of many S3 keys needs one request per key).
    ``s3_client`` is called once, when the first ``s3://`` entry is met.
    """
    entries = list(flatten_source(source))
    client = s3_client() if s3_client is not None and any(is_s3_uri(entry) for entry in entries) else None

    def look_up(entry: str) -> list[InstanceFile | InstanceResult]:
        if not is_s3_uri(entry):
            return list(_local_files(entry))
        if client is None:
            return [_nothing(entry, "an s3:// source needs an S3 connection")]
        return list(_s3_files(client, entry))

    seen: set[str] = set()
    with ThreadPoolExecutor(threads, thread_name_prefix="hi-stow-list") as pool:
        for found in pool.map(look_up, entries):
            for item in found:
                name = item.source if isinstance(item, InstanceResult) else item.name
                if name not in seen:
                    seen.add(name)
                    yield item


def _nothing(entry: str, reason: str) -> InstanceResult:
    return InstanceResult(entry, Outcome.REJECTED, reason=reason)


def _s3_files(client: S3Client, uri: str) -> Iterator[InstanceFile | InstanceResult]:
    count = 0
    try:
        for item in list_s3(client, uri):
            count += 1
            yield item
    except OSError as exc:
        yield _nothing(uri, f"cannot list the S3 objects ({exc.strerror})")
        return
    except ValueError as exc:
        yield _nothing(uri, str(exc).split(": ", 1)[-1])
        return
    if not count:
        yield _nothing(uri, "no S3 object matches")


def _local_files(entry: str) -> Iterator[InstanceFile | InstanceResult]:
    if not os.path.lexists(entry) and _GLOB_CHARACTERS & set(entry):
        matches = sorted(glob.glob(entry, recursive=True))
        if not matches:
            yield _nothing(entry, "no file matches the pattern")
        for path in expand_local(matches):
            yield from _local_file(path)
        return
    if os.path.isdir(entry):
        count = 0
        for path in expand_local([entry]):
            count += 1
            yield from _local_file(path)
        if not count:
            yield _nothing(entry, "the directory holds no file")
        return
    yield from _local_file(entry)


def _local_file(path: str) -> Iterator[InstanceFile | InstanceResult]:
    try:
        yield HashingLocalFile.at(path)
    except FileNotFoundError:
        yield _nothing(path, "no such file or directory")
    except OSError as exc:
        yield _nothing(path, f"cannot read the file ({exc.strerror or type(exc).__name__})")
