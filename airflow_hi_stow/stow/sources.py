"""Expanding user-given local paths (files and directories) into the files to store."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from pathlib import Path


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
