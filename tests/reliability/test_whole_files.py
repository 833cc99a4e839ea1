"""Files are written whole or not at all (a temporary name, then a rename), and what a killed writer leaves is
never read: the manifests, ledgers, reports and quarantine copies (LocalLocation), the de-identified outputs and the
linkage export (deid's LocalDirectory), ``hi-stow store --json`` and the sample DAGs' report file all write through
``storage.files``; S3 writes are single PUTs (or multipart uploads completed at once)."""

from __future__ import annotations

import io
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from airflow_hi_stow.deid.storage import LinkageFile, LocalDirectory
from airflow_hi_stow.sources.resolve import resolve_sources
from airflow_hi_stow.storage.files import (
    is_partial,
    partial_path,
    process_owner,
    remove_stale_partials,
    write_whole,
)
from airflow_hi_stow.storage.locations import LocalLocation

ROOT = Path(__file__).resolve().parents[2]


class Breaks(io.RawIOBase):
    """A stream that fails after its first block, as a source read dies mid-copy."""

    def __init__(self) -> None:
        self.calls = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        self.calls += 1
        if self.calls > 1:
            raise OSError("the source went away")
        buffer[:4] = b"half"
        return 4


def test_a_write_that_fails_leaves_the_old_file_and_no_partial(tmp_path: Path) -> None:
    target = tmp_path / "manifest.jsonl"
    target.write_bytes(b"the old one\n")
    with pytest.raises(OSError, match="went away"):
        write_whole(target, io.BufferedReader(Breaks()))
    assert target.read_bytes() == b"the old one\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["manifest.jsonl"]


def test_a_writer_killed_mid_write_leaves_its_target_untouched_and_a_partial_no_reader_takes(tmp_path: Path) -> None:
    target = tmp_path / "out" / "1.2.3.dcm"
    target.parent.mkdir()
    target.write_bytes(b"DICM complete")
    script = (
        "import sys, time; from pathlib import Path; from airflow_hi_stow.storage.files import write_whole, "
        "process_owner\n"
        "class Slow:\n"
        "    def read(self, size=-1):\n"
        "        print('writing', flush=True); time.sleep(0.05); return b'x' * 1000\n"
        f"write_whole(Path({str(target)!r}), Slow(), owner=process_owner())\n"
    )
    writer = subprocess.Popen([sys.executable, "-c", script], cwd=ROOT, stdout=subprocess.PIPE)
    assert writer.stdout is not None
    writer.stdout.readline()
    time.sleep(0.2)
    writer.send_signal(signal.SIGKILL)
    writer.wait()
    assert target.read_bytes() == b"DICM complete"  # never half of the new content
    (partial,) = [p for p in target.parent.iterdir() if p != target]
    assert is_partial(partial.name)
    assert partial.name == partial_path(target, f"{socket.gethostname()}-{writer.pid}").name
    found = list(resolve_sources(str(tmp_path / "out")))
    assert [getattr(item, "name", None) for item in found] == [str(target)]  # readers skip it
    assert list(LocalLocation(target.parent).names()) == [target.name]
    assert remove_stale_partials(target.parent) == 1  # its writer is gone
    assert sorted(p.name for p in target.parent.iterdir()) == [target.name]


def test_only_the_partials_of_dead_processes_of_this_host_are_removed(tmp_path: Path) -> None:
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, check=True)
    mine = partial_path(tmp_path / "a.dcm", process_owner())  # a write in progress in this (live) process
    gone = partial_path(tmp_path / "b.dcm", f"{socket.gethostname()}-{int(dead.stdout)}")
    elsewhere = partial_path(tmp_path / "c.dcm", "another-host.example.org-1")  # a worker on another host
    for path in (mine, gone, elsewhere):
        path.write_bytes(b"...")
    assert remove_stale_partials(tmp_path) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([mine.name, elsewhere.name])


def test_a_name_too_long_for_its_partial_name_is_written_all_the_same(tmp_path: Path) -> None:
    target = tmp_path / ("x" * 250 + ".dcm")
    write_whole(target, b"data", owner=process_owner())
    assert target.read_bytes() == b"data"
    assert len(partial_path(target, process_owner()).name.encode()) <= 255


def test_a_ledger_line_cut_short_by_a_kill_stays_a_line_of_its_own(tmp_path: Path) -> None:
    location = LocalLocation(tmp_path)
    location.append_lines("ledger", ['{"a": 1}'])
    with (tmp_path / "ledger.jsonl").open("ab") as log:
        log.write(b'{"b": 2, "cut')  # what a writer killed mid-line would leave
    location.append_lines("ledger", ['{"c": 3}', '{"d": 4}'])
    assert list(location.read_lines("ledger")) == ['{"a": 1}', '{"b": 2, "cut', '{"c": 3}', '{"d": 4}']


def test_the_linkage_export_is_its_owner_s_from_its_first_byte(tmp_path: Path) -> None:
    old_umask = os.umask(0o022)
    try:
        LinkageFile(str(tmp_path / "linkage.csv")).write([])
        LocalDirectory(str(tmp_path / "out")).write("s/e/i.dcm", b"DICM")
    finally:
        os.umask(old_umask)
    assert (tmp_path / "linkage.csv").stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "out" / "s" / "e" / "i.dcm").stat().st_mode & 0o777 == 0o644
