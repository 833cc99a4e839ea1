"""Where a run reads its inputs and writes its quarantine and reports: small protocols, with local
implementations. An S3 source or quarantine plugs in by implementing the same protocols (an ``InputFile`` whose
``open()`` returns a seekable stream, such as a ranged-GET reader; a ``Folder`` over a bucket prefix)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Protocol


class InputFile(Protocol):
    """One file to validate. The same shape as the store's ``InstanceFile``; with ``workers > 1`` it must pickle."""

    @property
    def name(self) -> str:
        """A path or URI: how reports name the file."""
        ...

    @property
    def size(self) -> int: ...

    def open(self) -> BinaryIO:
        """A fresh, seekable stream of the whole file."""
        ...


class Folder(Protocol):
    """A place to write files to and read small ones back (a local directory, an S3 prefix)."""

    @property
    def uri(self) -> str: ...

    def put_file(self, name: str, stream: BinaryIO) -> str:
        """Store the rest of ``stream`` as ``name`` (replacing it whole, never half-written); returns its URI."""
        ...

    def get_bytes(self, name: str) -> bytes | None:
        """The content of ``name``, or None when there is none."""
        ...

    def names(self, suffix: str) -> Iterator[str]:
        """The names ending with ``suffix``, in sorted order."""
        ...


@dataclass(frozen=True)
class LocalInput:
    path: Path
    size: int

    @classmethod
    def at(cls, path: str | os.PathLike[str]) -> LocalInput:
        """The file at ``path`` with its size now; a file that cannot be stat'ed gets size 0 (its read fails)."""
        resolved = Path(path)
        try:
            return cls(resolved, resolved.stat().st_size)
        except OSError:
            return cls(resolved, 0)

    @property
    def name(self) -> str:
        return str(self.path)

    def open(self) -> BinaryIO:
        return self.path.open("rb")


def local_inputs(paths: Iterable[str | os.PathLike[str]]) -> list[LocalInput]:
    """Each path given, and every regular file below each directory given (recursively). A path that does not exist
    is kept, so that it is reported as unreadable rather than dropped."""
    found: list[LocalInput] = []
    for path in paths:
        root = Path(path)
        if root.is_dir():
            found.extend(LocalInput.at(p) for p in sorted(root.rglob("*")) if p.is_file())
        else:
            found.append(LocalInput.at(root))
    return found


def remove_local_input(file: InputFile) -> None:
    """Delete a local input (``remove_source`` for a run that moves its failures into the quarantine)."""
    os.unlink(file.name)


class LocalFolder:
    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)

    @property
    def uri(self) -> str:
        return str(self.root)

    def put_file(self, name: str, stream: BinaryIO) -> str:
        target = self.root / name
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(f".{target.name}.partial")
        with partial.open("wb") as out:
            shutil.copyfileobj(stream, out)
            out.flush()
            os.fsync(out.fileno())
        os.replace(partial, target)
        return str(target)

    def get_bytes(self, name: str) -> bytes | None:
        try:
            return (self.root / name).read_bytes()
        except FileNotFoundError:
            return None

    def names(self, suffix: str) -> Iterator[str]:
        if self.root.is_dir():
            yield from sorted(p.name for p in self.root.iterdir() if p.name.endswith(suffix) and p.is_file())
