"""Expanding what users give as a source (paths, directories, globs, S3 URIs, lists of these, file lists) into the
files to store.

A file list is a mapping ``{"manifest": "<path or s3:// URI>"}`` naming a JSON-lines file with one entry per line,
a JSON string (a path, URI, glob...) or an object with a ``"source"`` (as the validation step's ``good.jsonl`` and
the store manifests write them): the compact form in which steps hand large selections to the next, and
:class:`~airflow_hi_stow.operators.partition.PartitionDicomOperator` hands shards to mapped tasks.
"""

from __future__ import annotations

import ast
import glob
import json
import os
import stat
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from airflow_hi_stow.core.results import InstanceResult, Outcome
from airflow_hi_stow.sources.fingerprints import HashingLocalFile
from airflow_hi_stow.sources.instances import InstanceFile, LocalFile
from airflow_hi_stow.sources.s3 import S3Client, is_s3_uri, list_s3, read_s3_object, split_s3_uri
from airflow_hi_stow.storage.files import is_partial

_GLOB_CHARACTERS = frozenset("*?[")


OUTSIDE_LINK = "a symbolic link to outside the source folder, not followed (follow_symlinks follows it)"


@dataclass
class _Walk:
    """One walk of a source folder: how its files are made, and where its links may lead."""

    local: type[LocalFile]
    follow_symlinks: bool
    root: str
    """The folder as the source names it; ``inside`` is its real path."""
    inside: str
    walked: set[str]
    """The real paths of the folders walked through links (``follow_symlinks``), so that a loop ends."""


def _directory_files(
    directory: str, local: type[LocalFile], follow_symlinks: bool
) -> Iterator[InstanceFile | InstanceResult]:
    """Every file under ``directory``, recursively, sorted by name at each level, leaving out the partial files of
    writes in progress or killed (:func:`~airflow_hi_stow.storage.files.is_partial`). ``os.scandir`` knows each
    entry's type without a ``stat`` call, and keeps the one ``stat`` made for its size.

    Symbolic links are not followed out of the folder unless ``follow_symlinks``: each comes out as a REJECTED
    result saying so (one planted in an incoming folder could otherwise make a run read, send or quarantine a copy
    of any file the worker can read). A link to a file inside the folder stands for that file, listed once; a link
    to a folder inside it is not walked twice. A dangling link, a pipe or a device is reported, never opened."""
    root = str(Path(directory))
    inside = os.path.realpath(root)
    yield from _walk(root, _Walk(local, follow_symlinks, root, inside, {inside}))


def _walk(directory: str, walk: _Walk) -> Iterator[InstanceFile | InstanceResult]:
    with os.scandir(directory) as listing:
        entries = sorted(listing, key=lambda entry: entry.name)
    for entry in entries:
        try:
            if entry.is_symlink():
                yield from _link(entry.path, walk)
            elif entry.is_dir(follow_symlinks=False):
                yield from _walk(entry.path, walk)
            elif is_partial(entry.name):
                continue
            elif entry.is_file(follow_symlinks=False):
                yield walk.local(Path(entry.path), entry.stat(follow_symlinks=False).st_size)
            else:
                yield _nothing(entry.path, "not a regular file")
        except OSError:  # vanished or unreadable since it was listed: reported by the reader
            yield _local_file(entry.path, walk.local)


def _link(path: str, walk: _Walk) -> Iterator[InstanceFile | InstanceResult]:
    real = os.path.realpath(path)
    if _inside(real, walk.inside):
        if not os.path.exists(real):
            yield _nothing(path, "no such file or directory")  # dangling
        elif not os.path.isdir(real) and not is_partial(os.path.basename(real)):  # a folder is walked as itself
            # The file itself, as the walk names it, so that it is listed once (or reported: not a regular file).
            yield _local_file(os.path.join(walk.root, os.path.relpath(real, walk.inside)), walk.local)
    elif not walk.follow_symlinks:
        yield _nothing(path, OUTSIDE_LINK)
    elif os.path.isdir(real):
        if real not in walk.walked:  # not a loop
            walk.walked.add(real)
            yield from _walk(path, walk)
    else:
        yield _local_file(path, walk.local)


def _inside(real: str, folder: str) -> bool:
    return real == folder or real.startswith(folder.rstrip(os.sep) + os.sep)


@dataclass(frozen=True)
class FileList:
    """A file naming the entries of a source, one per line."""

    uri: str

    KEY: ClassVar[str] = "manifest"

    def to_source(self, **details: Any) -> dict[str, Any]:
        """The JSON-serialisable form a source takes (``details`` such as counts ride along, unread)."""
        return {self.KEY: self.uri, **details}


def write_file_list(entries: Iterable[str]) -> bytes:
    return b"".join(json.dumps(entry).encode() + b"\n" for entry in entries)


def read_file_list(data: bytes) -> list[str]:
    """The entries of a file list; raises ValueError on a line that is neither a JSON string nor an object with a
    ``"source"`` string."""
    entries = []
    for number, line in enumerate(data.decode("utf-8").splitlines(), 1):
        if not line.strip():
            continue
        entry = json.loads(line)
        if isinstance(entry, dict):
            entry = entry.get("source")
        if not isinstance(entry, str):
            raise ValueError(f"line {number} names no source")
        entries.append(entry)
    return entries


def flatten_source(source: Any) -> Iterator[str | FileList]:
    """The source entries, from a path, a file list, a list of these (nested, e.g. an XCom of a mapped task), or
    the text of such a list (what a Jinja template renders an XCom list to)."""
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
    elif isinstance(source, Mapping) and isinstance(source.get(FileList.KEY), str):
        yield FileList(source[FileList.KEY])
    elif isinstance(source, Mapping | bytes):
        raise TypeError(
            f"source must be a path, an S3 URI, a file list or a list of these, not {type(source).__name__}"
        )
    elif isinstance(source, Iterable):
        for item in source:
            yield from flatten_source(item)
    else:
        raise TypeError(
            f"source must be a path, an S3 URI, a file list or a list of these, not {type(source).__name__}"
        )


def refuse_overlap(source: Any, **locations: str) -> None:
    """Raise ValueError when a location (the quarantine, the records) lies inside a folder, prefix or glob the
    source names: a rerun would take the quarantined copies and the reports for inputs. File lists are not read."""
    for entry in flatten_source(source):
        if isinstance(entry, FileList):
            continue
        root = _folder_of(entry)
        for role, location in locations.items():
            if is_s3_uri(entry) != is_s3_uri(location):
                continue
            where = location.rstrip("/") if is_s3_uri(location) else os.path.realpath(location)
            if where == root or where.startswith(root.rstrip("/") + "/"):
                raise ValueError(f"the {role} {location} lies inside the source {entry}: put it elsewhere")


def _folder_of(entry: str) -> str:
    """What an entry covers: an S3 prefix, a local directory (a glob's fixed part), or a file."""
    glob_at = min((entry.find(c) for c in _GLOB_CHARACTERS if c in entry), default=-1)
    fixed = entry if glob_at < 0 else entry[:glob_at].rpartition("/")[0]
    return fixed.rstrip("/") if is_s3_uri(entry) else os.path.realpath(fixed or ".")


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
    source: Any,
    s3_client: Callable[[], S3Client] | None = None,
    *,
    threads: int = 8,
    fingerprints: bool = True,
    follow_symlinks: bool = False,
) -> Iterator[InstanceFile | InstanceResult]:
    """Every file a source names, once, in order: local files (hashing as they are read, see
    :mod:`~airflow_hi_stow.sources.fingerprints`, unless ``fingerprints`` is False: nothing will keep them) and S3
    objects. An entry naming nothing (a missing path, a glob or prefix without matches, an unreadable listing) comes
    out as a REJECTED result with the reason, never dropped; so does a symbolic link found in a folder (or matched
    by a glob) that points outside it, unless ``follow_symlinks`` (see :func:`_directory_files`; a path named in the
    source itself is always followed).

    Entries are looked up in ``threads`` threads (a list of many S3 keys needs one request per key).
    ``s3_client`` is called once, when the first ``s3://`` entry is met.
    """
    entries = list(flatten_source(source))
    client = _Once(s3_client)
    local = _LocalFiles(HashingLocalFile if fingerprints else LocalFile, follow_symlinks)

    def look_up(entry: str | FileList) -> list[InstanceFile | InstanceResult]:
        if not isinstance(entry, FileList):
            return _look_up_entry(client, entry, local)
        listed = _listed_entries(client, entry)
        if isinstance(listed, InstanceResult):
            return [listed]
        return [item for name in listed for item in _look_up_entry(client, name, local)]

    seen: set[str] = set()
    with ThreadPoolExecutor(threads, thread_name_prefix="hi-stow-list") as pool:
        for found in pool.map(look_up, entries):
            for item in found:
                name = item.source if isinstance(item, InstanceResult) else item.name
                if name not in seen:
                    seen.add(name)
                    yield item


class _Once:
    """The S3 client, built by the factory the first time an entry needs it (from any thread), or None."""

    def __init__(self, factory: Callable[[], S3Client] | None) -> None:
        self.factory = factory
        self.lock = threading.Lock()
        self.client: S3Client | None = None

    def __call__(self) -> S3Client | None:
        with self.lock:
            if self.client is None and self.factory is not None:
                self.client = self.factory()
            return self.client


@dataclass(frozen=True)
class _LocalFiles:
    """How local entries are read: the file class (hashing or not), and whether links lead out of folders."""

    file: type[LocalFile]
    follow_symlinks: bool


def _look_up_entry(client: _Once, entry: str, local: _LocalFiles) -> list[InstanceFile | InstanceResult]:
    if not is_s3_uri(entry):
        return list(_local_files(entry, local))
    s3 = client()
    if s3 is None:
        return [_nothing(entry, "an s3:// source needs an S3 connection")]
    return list(_s3_files(s3, entry))


def _listed_entries(client: _Once, listing: FileList) -> list[str] | InstanceResult:
    """The entries a file list names, or a REJECTED result saying why it cannot be read."""
    try:
        if is_s3_uri(listing.uri):
            s3 = client()
            if s3 is None:
                return _nothing(listing.uri, "an s3:// file list needs an S3 connection")
            bucket, key = split_s3_uri(listing.uri)
            data = read_s3_object(s3, bucket, key)
        else:
            data = Path(listing.uri).read_bytes()
        return read_file_list(data)
    except OSError as exc:
        return _nothing(listing.uri, f"cannot read the file list ({exc.strerror or exc})")
    except ValueError as exc:
        return _nothing(listing.uri, f"not a file list ({exc})")


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


def _local_files(entry: str, local: _LocalFiles) -> Iterator[InstanceFile | InstanceResult]:
    if not os.path.lexists(entry) and _GLOB_CHARACTERS & set(entry):
        matches = sorted(glob.glob(entry, recursive=True))
        if not matches:
            yield _nothing(entry, "no file matches the pattern")
        within = _folder_of(entry)
        for path in matches:
            if not local.follow_symlinks and not _inside(os.path.realpath(path), within):
                yield _nothing(path, OUTSIDE_LINK)  # a link, or a match found through a linked folder
            elif os.path.isdir(path):
                yield from _directory_files(path, local.file, local.follow_symlinks)
            else:
                yield _local_file(str(Path(path)), local.file)
        return
    if os.path.isdir(entry):
        count = 0
        for item in _directory_files(entry, local.file, local.follow_symlinks):
            count += 1
            yield item
        if not count:
            yield _nothing(entry, "the directory holds no file")
        return
    yield _local_file(str(Path(entry)), local.file)


def _local_file(path: str, local: type[LocalFile]) -> InstanceFile | InstanceResult:
    """The local file at ``path``, or a REJECTED result saying why there is none (a pipe or a device is never
    opened: reading one could wait for ever)."""
    try:
        info = os.stat(path)
    except FileNotFoundError:
        return _nothing(path, "no such file or directory")
    except OSError as exc:
        return _nothing(path, f"cannot read the file ({exc.strerror or type(exc).__name__})")
    if not stat.S_ISREG(info.st_mode):
        return _nothing(path, "not a regular file")
    return local(Path(path), info.st_size)
