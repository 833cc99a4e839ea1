"""Local files written whole or not at all.

A file is written under a temporary name beside its target (a dot file ending in ``.hi-stow-partial``), then renamed
over the target, so that a reader never sees half a file, and a try killed mid-write leaves at worst a partial file
under that name, which every reader of the package skips (:func:`is_partial`). Files a retry writes again replace
their partial copy; :func:`remove_stale_partials` removes those left by processes of this host that are gone.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

PARTIAL_SUFFIX = ".hi-stow-partial"
_OWNER_SEPARATOR = "~"  # never in a host name
_NAME_MAX = 255
"""Bytes in one file name (Linux, macOS); a target name too long to carry the suffix is shortened to a digest."""
_COPY_BUFFER = 1024 * 1024


class Unwritable(OSError):
    """A file could not be written (a full disk, a read-only folder...): ``Unwritable(errno, message)``, the
    message naming the place and why (see :meth:`of`). Picklable, so it crosses from worker processes whole."""

    @classmethod
    def of(cls, target: Path, cause: OSError) -> Unwritable:
        return cls(cause.errno, f"cannot write {target} ({cause.strerror or type(cause).__name__})")

    def __str__(self) -> str:
        return str(self.strerror)


def process_owner() -> str:
    """This process, as partial names carry it when several processes may write one target at once."""
    return f"{socket.gethostname()}-{os.getpid()}"


def partial_path(target: Path, owner: str = "") -> Path:
    """``.<name>.hi-stow-partial`` (``.<name>~<owner>.hi-stow-partial`` with an owner) beside ``target``; a name
    too long for that becomes its digest."""
    tail = (_OWNER_SEPARATOR + owner if owner else "") + PARTIAL_SUFFIX
    name = target.name
    if len(f".{name}{tail}".encode("utf-8", "surrogateescape")) > _NAME_MAX:
        name = hashlib.sha256(name.encode("utf-8", "surrogateescape")).hexdigest()[:32]
    return target.with_name(f".{name}{tail}")


def is_partial(name: str) -> bool:
    """Whether a file name is the temporary name of a file being written (never an input or a record)."""
    return name.startswith(".") and name.endswith(PARTIAL_SUFFIX)


def write_whole(target: Path, data: bytes | BinaryIO, *, owner: str = "", mode: int = 0o644, sync: bool = True) -> Path:
    """Write ``data`` (bytes, or the rest of a stream) to ``target`` whole or not at all. ``mode`` is set when the
    file is created (``0o600`` keeps it from other users from the first byte); ``sync`` puts it on disk before it
    replaces anything, so that it survives a machine crash, not only a killed process. ``owner``
    (:func:`process_owner`) when other processes may write the same target at the same time. Raises
    :class:`Unwritable` when the file cannot be written; an error reading ``data`` passes as it is."""
    partial = partial_path(target, owner)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    except OSError as exc:
        raise Unwritable.of(target, exc) from None
    try:
        try:
            for block in _blocks(data):
                _write_all(descriptor, target, block)
            if sync:
                _on_disk(descriptor, target)
        finally:
            os.close(descriptor)
        try:
            os.replace(partial, target)
        except OSError as exc:
            raise Unwritable.of(target, exc) from None
    except BaseException:
        with contextlib.suppress(OSError):
            partial.unlink()
        raise
    return target


def _write_all(descriptor: int, target: Path, data: bytes) -> None:
    view = memoryview(data)
    while view:
        try:
            view = view[os.write(descriptor, view) :]
        except OSError as exc:
            raise Unwritable.of(target, exc) from None


def _on_disk(descriptor: int, target: Path) -> None:
    try:
        os.fsync(descriptor)
    except OSError as exc:
        raise Unwritable.of(target, exc) from None


def _blocks(data: bytes | BinaryIO) -> Iterator[bytes]:
    if isinstance(data, bytes | bytearray | memoryview):
        yield bytes(data)
        return
    while block := data.read(_COPY_BUFFER):
        yield block


def append_lines_durably(path: Path, data: bytes) -> None:
    """Append whole lines to ``path`` and put them on disk. A line an earlier, killed writer left without its
    newline is ended first, so that it stays a line of its own (skipped by readers) instead of swallowing these.
    Raises :class:`Unwritable`."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            size = os.fstat(descriptor).st_size
            if size and os.pread(descriptor, 1, size - 1) != b"\n":
                data = b"\n" + data
            _write_all(descriptor, path, data)
            _on_disk(descriptor, path)
        finally:
            os.close(descriptor)
    except Unwritable:
        raise
    except OSError as exc:
        raise Unwritable.of(path, exc) from None


def remove_stale_partials(directory: Path) -> int:
    """Remove the partial files in ``directory`` that processes of this host, now gone, left behind (a try killed
    mid-write); those of live processes and of other hosts stay. Returns how many were removed."""
    host = socket.gethostname()
    removed = 0
    try:
        entries = list(os.scandir(directory))
    except FileNotFoundError:
        return 0
    for entry in entries:
        if not is_partial(entry.name):
            continue
        owner = entry.name[: -len(PARTIAL_SUFFIX)].rpartition(_OWNER_SEPARATOR)[2]
        owner_host, _, pid = owner.rpartition("-")
        if owner_host != host or not pid.isdigit() or _alive(int(pid)):
            continue
        try:
            os.unlink(entry.path)
            removed += 1
        except FileNotFoundError:
            pass
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True
