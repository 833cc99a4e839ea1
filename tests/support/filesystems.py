"""Places that cannot take a write: a small tmpfs that fills up, a read-only directory. Mounting needs root; where
the tests run without it, a full disk is skipped (with the reason) and a read-only directory is a directory without
write permission (which root would ignore)."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest


def _mount(path: Path, options: str) -> None:
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)], capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({done.stderr.strip() or done.returncode})")


def _unmount(path: Path) -> None:
    subprocess.run(["umount", "-l", str(path)], capture_output=True, check=False)


@contextmanager
def small_filesystem(path: Path, size: str) -> Iterator[Path]:
    """A tmpfs of ``size`` (``"64k"``) mounted at ``path``, for as long as the block runs."""
    if os.geteuid() != 0:
        pytest.skip("a full file system needs root, to mount a small tmpfs")
    path.mkdir(parents=True, exist_ok=True)
    _mount(path, f"size={size},mode=0755")
    try:
        yield path
    finally:
        _unmount(path)


@contextmanager
def read_only_directory(path: Path) -> Iterator[Path]:
    """An empty directory at ``path`` that takes no write: a read-only tmpfs as root, else mode 0555."""
    path.mkdir(parents=True, exist_ok=True)
    if os.geteuid() == 0:
        _mount(path, "ro,size=64k")
        try:
            yield path
        finally:
            _unmount(path)
        return
    path.chmod(0o555)
    try:
        yield path
    finally:
        path.chmod(0o755)


def fill(path: Path) -> None:
    """Use up the free space of the file system holding ``path``."""
    with (path / "filler").open("wb", buffering=0) as out:
        try:
            while out.write(b"\0" * 4096):
                pass
        except OSError:
            pass
