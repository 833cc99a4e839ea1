"""The run over a set: safe to retry (the same split, nothing quarantined twice, copy or move), max_failures
after everything was checked, the good files as a list or a manifest, worker processes giving the same answer."""

from __future__ import annotations

import io
import json
import logging
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import pytest

from airflow_hi_stow.sources.instances import InstanceFile
from airflow_hi_stow.sources.resolve import resolve_sources
from airflow_hi_stow.storage.locations import LocalLocation
from airflow_hi_stow.validate import TooManyFailures, ValidationRun, ValidationSettings, remove_input, validate_files
from airflow_hi_stow.validate.quarantine import REASON_SUFFIX
from airflow_hi_stow.validate.runner import QuarantineFailed
from tests.validate.dicom_files import ct, p10_bytes, write


def small_set(root: Path) -> Path:
    """Four good instances, a truncated one, a text file and a duplicate."""
    for number in range(1, 5):
        write(ct(number=number), root / f"ok-{number}.dcm")
    data = p10_bytes(ct(number=9))
    (root / "cut.dcm").write_bytes(data[:-5000])
    (root / "readme.dcm").write_text("not an image")
    (root / "resent-ok-1.dcm").write_bytes((root / "ok-1.dcm").read_bytes())
    return root


BAD = {"cut.dcm", "readme.dcm", "resent-ok-1.dcm"}


def run(root: Path, out: Path, **options: object) -> ValidationRun:
    return validate_files(
        resolve_sources([root]),
        quarantine=LocalLocation(out / "quarantine"),
        output=LocalLocation(out / "reports"),
        **options,  # type: ignore[arg-type]
    )


def split(result: ValidationRun) -> tuple[list[str], list[str]]:
    return [Path(o.source).name for o in result.good], [Path(o.source).name for o in result.quarantined]


def quarantine_state(out: Path) -> dict[str, tuple[int, bytes]]:
    return {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in sorted((out / "quarantine").iterdir())}


def test_a_rerun_gives_the_same_split_and_writes_nothing_into_the_quarantine_again(tmp_path: Path) -> None:
    root = small_set(tmp_path / "in")
    first = run(root, tmp_path / "out")
    before = quarantine_state(tmp_path / "out")
    again = run(root, tmp_path / "out")
    assert split(again) == split(first)
    assert set(split(first)[1]) == BAD
    assert quarantine_state(tmp_path / "out") == before
    assert len(before) == 2 * len(BAD)  # each copy and its reason file, once


def test_moving_removes_the_sources_and_a_retry_still_accounts_for_them(tmp_path: Path) -> None:
    root = small_set(tmp_path / "in")
    first = run(root, tmp_path / "out", remove_source=remove_input)
    assert {p.name for p in root.iterdir()} == {"ok-1.dcm", "ok-2.dcm", "ok-3.dcm", "ok-4.dcm"}
    before = quarantine_state(tmp_path / "out")
    retry = run(root, tmp_path / "out", remove_source=remove_input)
    assert split(retry) == split(first)
    assert [o.earlier for o in retry.quarantined] == [True] * len(BAD)
    assert retry.summary()["quarantined_earlier"] == len(BAD)
    assert len(retry.outcomes) == len(first.outcomes) == 7
    assert quarantine_state(tmp_path / "out") == before


def test_a_move_cut_short_after_the_copy_is_finished_by_the_retry(tmp_path: Path) -> None:
    root = small_set(tmp_path / "in")

    def fails_once(file: InstanceFile) -> None:
        if file.name.endswith("cut.dcm"):
            raise PermissionError(13, "Permission denied")
        remove_input(file)

    first = run(root, tmp_path / "out", remove_source=fails_once)
    cut = next(o for o in first.quarantined if o.source.endswith("cut.dcm"))
    assert cut.problem == "copied, not moved: cannot remove the source (PermissionError)"
    assert (root / "cut.dcm").exists()
    before = quarantine_state(tmp_path / "out")
    retry = run(root, tmp_path / "out", remove_source=remove_input)
    assert split(retry) == split(first)
    assert not (root / "cut.dcm").exists()
    assert quarantine_state(tmp_path / "out") == before


@pytest.mark.parametrize(("max_failures", "fails"), [(3, False), (2, True), (0.5, False), (0.4, True)])
def test_max_failures_is_judged_after_everything_was_written(
    tmp_path: Path, max_failures: int | float, fails: bool
) -> None:
    root = small_set(tmp_path / "in")
    if not fails:
        assert len(run(root, tmp_path / "out", max_failures=max_failures).quarantined) == 3
        return
    with pytest.raises(TooManyFailures, match=r"^3 of 7 file\(s\) quarantined, more than the 2 allowed") as raised:
        run(root, tmp_path / "out", max_failures=max_failures)
    report = json.loads((tmp_path / "out" / "reports" / "report.json").read_text())
    assert report["summary"]["failure"] == str(raised.value)
    assert len(list((tmp_path / "out" / "quarantine").glob("*" + REASON_SUFFIX))) == 3
    assert len(raised.value.run.good) == 4


def test_the_good_files_are_a_file_list_the_store_step_takes_as_its_source(tmp_path: Path) -> None:
    root = small_set(tmp_path / "in")
    result = run(root, tmp_path / "out")
    manifest = tmp_path / "out" / "reports" / "good.jsonl"
    assert result.store_source == {"manifest": str(manifest), "files": 4}
    lines = [json.loads(line) for line in manifest.read_text().splitlines()]
    good = [str(root / f"ok-{n}.dcm") for n in range(1, 5)]
    assert [line["source"] for line in lines] == good
    assert all(line["size"] == Path(line["source"]).stat().st_size for line in lines)
    resolved = list(resolve_sources(result.store_source))  # exactly what StoreDicomOperator reads
    assert [getattr(item, "name", None) for item in resolved] == good


def test_worker_processes_give_the_same_answer(tmp_path: Path) -> None:
    root = small_set(tmp_path / "in")
    alone = run(root, tmp_path / "one", workers=1)
    parallel = run(root, tmp_path / "two", workers=2)
    assert [(o.source, o.good, o.findings) for o in parallel.outcomes] == [
        (o.source, o.good, o.findings) for o in alone.outcomes
    ]


def test_a_quarantine_that_cannot_be_written_fails_the_run_after_the_report(tmp_path: Path) -> None:
    root = small_set(tmp_path / "in")
    (tmp_path / "not-a-folder").write_text("a file where the quarantine folder should be")
    with pytest.raises(QuarantineFailed, match=r"^3 failing file\(s\) could not be quarantined") as raised:
        validate_files(
            resolve_sources([root]),
            quarantine=LocalLocation(tmp_path / "not-a-folder"),
            output=LocalLocation(tmp_path / "o"),
        )
    assert {o.problem for o in raised.value.run.quarantined} == {"cannot be quarantined (Not a directory)"}
    assert (tmp_path / "o" / "report.json").exists()


def test_inputs_that_do_not_pickle_are_read_here_and_checked_in_the_workers(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """As S3 objects (they hold a client): their bytes go to the worker processes; a file too large to be read
    into memory is checked in this process."""
    root = small_set(tmp_path / "in")
    fetched: list[str] = []

    @dataclass(frozen=True)
    class Remote:  # defined in a function: it cannot be pickled for a worker process
        path: Path

        @property
        def name(self) -> str:
            return f"remote://{self.path.name}"

        @property
        def size(self) -> int:
            return self.path.stat().st_size

        def open(self) -> BinaryIO:
            return self.path.open("rb")

        def read_range(self, start: int, end: int) -> bytes:
            fetched.append(self.name)
            with self.path.open("rb") as stream:
                stream.seek(start)
                return stream.read(end - start)

    expected = run(root, tmp_path / "local", workers=1)
    remote = [Remote(p) for p in sorted(root.iterdir())]
    for limit, out in ((64 * 1024**2, "fetched"), (35_000, "mixed"), (0, "here")):
        del fetched[:]
        with caplog.at_level(logging.INFO):
            result = validate_files(
                remote,
                quarantine=LocalLocation(tmp_path / out / "q"),
                output=LocalLocation(tmp_path / out / "o"),
                settings=ValidationSettings.of(max_in_memory_bytes=limit),
                workers=2,
            )
        assert [(Path(o.source).name, o.good) for o in result.outcomes] == [
            (Path(o.source).name, o.good) for o in expected.outcomes
        ]
        if out == "fetched":  # every file read once, whole, here
            assert sorted(fetched) == sorted(file.name for file in remote)
    assert caplog.text.count("Remote inputs cannot be sent to worker processes (they do not pickle)") == 1


def test_the_library_runs_without_importing_airflow(tmp_path: Path) -> None:
    root = small_set(tmp_path / "in")
    script = (
        "import sys\n"
        "from pathlib import Path\n"
        "from airflow_hi_stow.sources.resolve import resolve_sources\n"
        "from airflow_hi_stow.storage.locations import LocalLocation\n"
        "from airflow_hi_stow.validate import validate_files\n"
        f"run = validate_files(resolve_sources([{str(root)!r}]), quarantine=LocalLocation(Path({str(tmp_path / 'q')!r})), "
        f"output=LocalLocation(Path({str(tmp_path / 'o')!r})))\n"
        "assert len(run.outcomes) == 7, run.summary()\n"
        "print(sorted(name for name in sys.modules if name == 'airflow' or name.startswith('airflow.')))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=True)
    assert done.stdout.strip() == "[]"


def test_an_input_whose_stream_fails_unexpectedly_is_quarantined_and_the_run_goes_on(tmp_path: Path) -> None:
    root = small_set(tmp_path / "in")

    @dataclass(frozen=True)
    class Broken:
        """An input whose stream fails with something other than an OSError (as an S3 body can)."""

        name: str = "s3://bucket/broken.dcm"
        size: int = 1000

        def open(self) -> BinaryIO:
            stream = io.BytesIO(b"x" * 1000)
            stream.close()  # reading it raises ValueError
            return stream

        def read_range(self, start: int, end: int) -> bytes:
            return self.open().read(end - start)

    result = validate_files(
        [*resolve_sources([root]), Broken()],
        quarantine=LocalLocation(tmp_path / "q"),
        output=LocalLocation(tmp_path / "o"),
    )
    broken = next(o for o in result.quarantined if o.source == "s3://bucket/broken.dcm")
    assert [(f.check, f.message) for f in broken.findings] == [
        ("container.readable", "cannot be read: the reader failed (ValueError)")
    ]
    reason = json.loads(Path(str(broken.reason_file)).read_text())
    assert reason["copy_error"] == "cannot read the source (ValueError)"
    assert len(result.good) == 4
