"""A validation run over a set of files: every file checked (in parallel processes for large sets), then the run
checks (duplicates, consistency), then each failing file put into the quarantine, the good files listed for the
store step, and a run report written. Every input ends good or quarantined; a rerun gives the same split and
quarantines nothing twice."""

from __future__ import annotations

import io
import json
import logging
import os
import pickle
import secrets
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from functools import partial
from multiprocessing import get_context
from typing import Any

from airflow_hi_stow.core.summary import FailurePolicy
from airflow_hi_stow.validate import crossfile
from airflow_hi_stow.validate.engine import FileVerdict, inspect_file
from airflow_hi_stow.validate.findings import Finding, Problem, Severity
from airflow_hi_stow.validate.quarantine import Quarantine, file_sha256
from airflow_hi_stow.validate.report import run_report
from airflow_hi_stow.validate.settings import ValidationSettings
from airflow_hi_stow.validate.storage import Folder, InputFile

log = logging.getLogger(__name__)

REPORT = "report.json"
GOOD_MANIFEST = "good.jsonl"
DEFAULT_MAX_SOURCE_LIST = 1000
PARALLEL_FROM_FILES = 3000
"""Fewer files are checked in this process: spawning worker processes (half a second to a second on a 2-core
machine) costs more than it saves (see docs/benchmarks.md)."""
PROGRESS_SECONDS = 30.0


class TooManyFailures(RuntimeError):
    """More files were quarantined than ``max_failures`` allows; raised after the run wrote everything."""

    def __init__(self, message: str, run: ValidationRun) -> None:
        super().__init__(message)
        self.run = run


class QuarantineFailed(RuntimeError):
    """Some failing files could not be put into the quarantine; raised after the run wrote its report."""

    def __init__(self, message: str, run: ValidationRun) -> None:
        super().__init__(message)
        self.run = run


@dataclass(frozen=True)
class FileOutcome:
    """How one input ended: good (passed on) or quarantined, with every finding."""

    source: str
    size: int
    good: bool
    findings: tuple[Finding, ...]
    quarantined_as: str | None = None
    reason_file: str | None = None
    earlier: bool = False
    """Quarantined (and moved away) by an earlier try of the run."""
    problem: str | None = None
    """The quarantine could not take it, or the moved source could not be removed."""

    def to_dict(self) -> dict[str, Any]:
        found: dict[str, Any] = {"source": self.source, "size": self.size}
        for key in ("quarantined_as", "reason_file", "problem"):
            if getattr(self, key):
                found[key] = getattr(self, key)
        if self.earlier:
            found["earlier_try"] = True
        found["findings"] = [finding.to_dict() for finding in self.findings]
        return found


@dataclass
class ValidationRun:
    outcomes: list[FileOutcome]
    settings: ValidationSettings
    conflicts: list[dict[str, Any]]
    manifest: str
    report: str = ""
    store_source: list[str] | str = field(default_factory=list)
    """The good files as ``StoreDicomOperator`` takes its ``source``: their names, or the manifest's URI."""
    duration_seconds: float = 0.0
    dciodvfy: str = "off"
    failure: str | None = None

    @property
    def good(self) -> list[FileOutcome]:
        return [outcome for outcome in self.outcomes if outcome.good]

    @property
    def quarantined(self) -> list[FileOutcome]:
        return [outcome for outcome in self.outcomes if not outcome.good]

    def summary(self) -> dict[str, Any]:
        """Counts, the busiest checks and where the records are: small enough for a log line or an XCom."""
        findings = _count_files_by_check(self.outcomes)
        return {
            "inputs": len(self.outcomes),
            "good": len(self.good),
            "quarantined": len(self.quarantined),
            "quarantined_earlier": sum(outcome.earlier for outcome in self.outcomes),
            "with_warnings": sum(
                outcome.good and any(f.severity == Severity.WARNING for f in outcome.findings)
                for outcome in self.outcomes
            ),
            "files_by_check": findings,
            "conflicts": len(self.conflicts),
            "report": self.report,
            "manifest": self.manifest,
            "failure": self.failure,
        }


def validate_files(
    inputs: Iterable[InputFile],
    *,
    quarantine: Folder,
    output: Folder,
    settings: ValidationSettings | None = None,
    remove_source: Callable[[InputFile], None] | None = None,
    max_failures: int | float | None = None,
    workers: int | None = None,
    max_source_list: int = DEFAULT_MAX_SOURCE_LIST,
) -> ValidationRun:
    """Validate every input, quarantine the failing ones, and write ``report.json`` and ``good.jsonl`` to ``output``.

    :param inputs: the files; the same name twice counts once. Checked and reported in the order of their names.
    :param quarantine: where failing files and their reason files go. It belongs to this run (like a manifest
        location): in move mode, the reason files it holds for sources no longer listed count as this run's.
    :param remove_source: quarantine by moving: called on each input once it is safely in the quarantine (e.g.
        :func:`~airflow_hi_stow.validate.storage.remove_local_input`); None copies.
    :param max_failures: at most this many quarantined files (an int), or this share of the inputs (a float from
        0 to 1); beyond, :class:`TooManyFailures` is raised once everything was checked and written. None: no limit.
    :param workers: processes checking files (None: this process alone below 3000 files, else one per available
        core). With more than one, inputs must pickle.
    :param max_source_list: ``store_source`` is the list of good names up to this many, else the manifest's URI.
    """
    started = time.monotonic()
    settings = settings or ValidationSettings.of()
    policy = FailurePolicy.of(max_failures, ()) if max_failures is not None else None
    files = _unique_sorted(inputs)
    log.info("validating %d file(s); quarantine %s", len(files), quarantine.uri)
    dciodvfy = _dciodvfy_state(settings)
    verdicts = list(_progress(_inspect_all(files, settings, _workers(workers, len(files))), len(files)))
    verdicts, conflicts = _run_checks(files, verdicts, settings)
    store = Quarantine(quarantine)
    outcomes = [_settle(store, file, verdict, remove_source) for file, verdict in zip(files, verdicts, strict=True)]
    if remove_source is not None:
        outcomes.extend(_earlier(store, {file.name for file in files}))
        outcomes.sort(key=lambda outcome: outcome.source)
    run = ValidationRun(outcomes, settings, [c.to_dict([f.name for f in files]) for c in conflicts], "")
    run.manifest = output.put_file(GOOD_MANIFEST, io.BytesIO(_manifest(run.good)))
    good_names = [outcome.source for outcome in run.good]
    run.store_source = good_names if len(good_names) <= max_source_list else run.manifest
    run.dciodvfy = dciodvfy
    if policy is not None:
        run.failure = _violation(policy, run)
    run.duration_seconds = time.monotonic() - started
    report = run_report(run, max_failures, datetime.now(UTC))
    run.report = output.put_file(REPORT, io.BytesIO(json.dumps(report, indent=2).encode() + b"\n"))
    summary = run.summary()
    log.info(
        "validated %d file(s) in %.1f s: %d good, %d quarantined (%d by an earlier try); report %s",
        summary["inputs"],
        run.duration_seconds,
        summary["good"],
        summary["quarantined"],
        summary["quarantined_earlier"],
        run.report,
    )
    if summary["files_by_check"]:
        log.info(
            "files per check: %s",
            ", ".join(
                f"{check} {'/'.join(f'{n} {severity}' for severity, n in counts.items())}"
                for check, counts in summary["files_by_check"].items()
            ),
        )
    unsettled = [outcome for outcome in outcomes if not outcome.good and outcome.problem and not outcome.reason_file]
    if unsettled:
        raise QuarantineFailed(f"{len(unsettled)} failing file(s) could not be quarantined (see {run.report})", run)
    if run.failure:
        raise TooManyFailures(run.failure, run)
    return run


def _unique_sorted(inputs: Iterable[InputFile]) -> list[InputFile]:
    by_name: dict[str, InputFile] = {}
    for file in inputs:
        by_name.setdefault(file.name, file)
    return [by_name[name] for name in sorted(by_name)]


def _workers(requested: int | None, files: int) -> int:
    if requested is not None:
        return max(1, requested)
    if files < PARALLEL_FROM_FILES:
        return 1
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)


def _inspect_all(files: Sequence[InputFile], settings: ValidationSettings, workers: int) -> Iterator[FileVerdict]:
    key = secrets.token_bytes(32)  # digests of grouping values compare within this run only
    check = partial(inspect_file, settings=settings, key=key)
    if workers > 1 and files and not _pickles(files[0]):
        log.info("the inputs cannot be sent to worker processes (they do not pickle): checking them here")
        workers = 1
    if workers == 1 or len(files) < 2:
        yield from map(check, files)
        return
    chunk = max(1, min(64, len(files) // (workers * 8)))
    with ProcessPoolExecutor(workers, mp_context=get_context("spawn")) as pool:
        yield from pool.map(check, files, chunksize=chunk)


def _pickles(file: InputFile) -> bool:
    try:
        pickle.dumps(file)
    except Exception:  # pickling fails with many kinds (TypeError, PicklingError, AttributeError)
        return False
    return True


def _progress(verdicts: Iterator[FileVerdict], total: int) -> Iterator[FileVerdict]:
    last = time.monotonic()
    for done, verdict in enumerate(verdicts, start=1):
        if time.monotonic() - last >= PROGRESS_SECONDS:
            last = time.monotonic()
            log.info("checked %d of %d file(s)", done, total)
        yield verdict


def _run_checks(
    files: Sequence[InputFile], verdicts: list[FileVerdict], settings: ValidationSettings
) -> tuple[list[FileVerdict], list[crossfile.Conflict]]:
    """Add the findings of the run checks: duplicates among the files that passed so far, then consistency among
    those still passing."""
    extra: dict[int, list[Finding]] = {}

    def passing() -> list[crossfile.Identity | None]:
        return [
            None if verdict.failed or any(f.severity == Severity.ERROR for f in extra.get(p, ())) else verdict.identity
            for p, verdict in enumerate(verdicts)
        ]

    if settings.enabled(crossfile.DUPLICATES.name):
        severity = settings.severity(crossfile.DUPLICATES.name)
        for position, first in crossfile.duplicates(passing()).items():
            same = _same_content(files[position], files[first])
            note = " (byte-identical)" if same else " (different content)" if same is False else ""
            problem = Problem(f"the same SOP Instance UID as {files[first].name}{note}", "SOPInstanceUID")
            extra.setdefault(position, []).append(Finding.of(crossfile.DUPLICATES.name, severity, problem))
    conflicts: list[crossfile.Conflict] = []
    for check in (crossfile.STUDY, crossfile.SERIES):
        if not settings.enabled(check.name):
            continue
        severity = settings.severity(check.name)
        found = crossfile.conflicts(passing(), check.name.split(".", 1)[1])
        for conflict in found:
            for position in conflict.minority:
                extra.setdefault(position, []).append(Finding.of(check.name, severity, conflict.problem(position)))
        conflicts.extend(found)
    merged = [
        replace(verdict, findings=verdict.findings + tuple(extra[p])) if p in extra else verdict
        for p, verdict in enumerate(verdicts)
    ]
    return merged, conflicts


def _same_content(one: InputFile, other: InputFile) -> bool | None:
    if one.size != other.size:
        return False
    try:
        return file_sha256(one) == file_sha256(other)
    except OSError:
        return None


def _settle(
    store: Quarantine, file: InputFile, verdict: FileVerdict, remove_source: Callable[[InputFile], None] | None
) -> FileOutcome:
    if not verdict.failed:
        return FileOutcome(file.name, verdict.size, True, verdict.findings)
    errors = [finding for finding in verdict.findings if finding.severity == Severity.ERROR]
    first = errors[0]
    where = f" ({first.attribute})" if first.attribute else ""
    log.debug("quarantining %s: %s%s: %s", file.name, first.check, where, first.message)
    try:
        put = store.put(file, verdict.findings)
    except OSError as exc:
        log.error("cannot quarantine %s (%s)", file.name, exc.strerror or type(exc).__name__)
        problem = f"cannot be quarantined ({exc.strerror or type(exc).__name__})"
        return FileOutcome(file.name, verdict.size, False, verdict.findings, problem=problem)
    outcome = FileOutcome(file.name, verdict.size, False, verdict.findings, put.copy, put.reason_file)
    if remove_source is not None and put.copy is not None:
        try:
            remove_source(file)
        except OSError as exc:
            log.warning("quarantined %s but cannot remove it (%s)", file.name, exc.strerror or type(exc).__name__)
            outcome = replace(outcome, problem=f"copied, not moved: cannot remove the source ({type(exc).__name__})")
    return outcome


def _earlier(store: Quarantine, listed: set[str]) -> Iterator[FileOutcome]:
    """The files an earlier try moved into the quarantine (their sources are gone)."""
    for record in store.records():
        if record["source"] not in listed:
            findings = tuple(
                Finding(f["check"], Severity(f["severity"]), f["message"], f.get("attribute"))
                for f in record.get("findings", [])
            )
            yield FileOutcome(
                record["source"],
                int(record.get("size") or 0),
                False,
                findings,
                record.get("quarantined_as"),
                record["reason_file"],
                earlier=True,
            )


def _manifest(good: Sequence[FileOutcome]) -> bytes:
    return b"".join(json.dumps({"source": o.source, "size": o.size}).encode() + b"\n" for o in good)


def _violation(policy: FailurePolicy, run: ValidationRun) -> str | None:
    allowed = policy.allowed(len(run.outcomes))
    quarantined = len(run.quarantined)
    if quarantined <= allowed:
        return None
    return f"{quarantined} of {len(run.outcomes)} file(s) quarantined, more than the {allowed} allowed (max_failures)"


def _dciodvfy_state(settings: ValidationSettings) -> str:
    from airflow_hi_stow.validate.dciodvfy import CHECK

    if not settings.enabled(CHECK.name):
        return "off"
    if settings.dciodvfy is None:
        log.warning("%s is on but dciodvfy is not installed: the deep IOD check does not run", CHECK.name)
        return "not installed"
    return settings.dciodvfy


def _count_files_by_check(outcomes: Iterable[FileOutcome]) -> dict[str, dict[str, int]]:
    counts: dict[str, dict[str, int]] = {}
    for outcome in outcomes:
        for check, severity in {(f.check, f.severity.value) for f in outcome.findings}:
            counts.setdefault(check, {}).setdefault(severity, 0)
            counts[check][severity] += 1
    return dict(sorted(counts.items()))
