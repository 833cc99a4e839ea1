"""A validation run over a set of files: every file checked (in parallel processes for large sets), then the run
checks (duplicates, consistency), then each failing file put into the quarantine, the good files listed for the
store step, and a run report written. Every input ends good or quarantined; a rerun gives the same split and
quarantines nothing twice."""

from __future__ import annotations

import fnmatch
import io
import json
import logging
import secrets
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from functools import partial
from typing import Any

from airflow_hi_stow.core.results import InstanceResult
from airflow_hi_stow.core.summary import FailurePolicy
from airflow_hi_stow.sources.instances import InstanceFile
from airflow_hi_stow.sources.resolve import FileList
from airflow_hi_stow.storage.locations import Location
from airflow_hi_stow.validate import crossfile
from airflow_hi_stow.validate.checks.container import READABLE
from airflow_hi_stow.validate.engine import FileVerdict, inspect_file
from airflow_hi_stow.validate.findings import Finding, Problem, Severity
from airflow_hi_stow.validate.inputs import Unlisted, as_inputs, fetched_ahead, portable
from airflow_hi_stow.validate.quarantine import Quarantine, file_sha256
from airflow_hi_stow.validate.report import run_report
from airflow_hi_stow.validate.settings import ValidationSettings
from airflow_hi_stow.workers import allowed_processes, usable_cores, worker_pool

log = logging.getLogger(__name__)

REPORT = "report.json"
GOOD_MANIFEST = "good.jsonl"
PARALLEL_FROM_FILES = 3000
"""Fewer files are checked in this process: spawning worker processes (half a second to a second on a 2-core
machine) costs more than it saves (see docs/benchmarks.md)."""
PROGRESS_SECONDS = 30.0
CHUNK_BYTES = 64 * 1024**2
"""Bytes of files in one chunk sent to a worker process, at most (fetched files travel with their bytes)."""


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
    """Quarantined by an earlier try of the run (and moved away, or unreadable now)."""
    problem: str | None = None
    """The quarantine could not take it, the moved source could not be removed, or a good file's earlier
    quarantine copy could not be removed."""
    taken_out: bool = False
    """Good now, and taken out of the quarantine, where an earlier try had put it."""

    def to_dict(self) -> dict[str, Any]:
        found: dict[str, Any] = {"source": self.source, "size": self.size}
        for key in ("quarantined_as", "reason_file", "problem"):
            if getattr(self, key):
                found[key] = getattr(self, key)
        if self.earlier:
            found["earlier_try"] = True
        if self.taken_out:
            found["taken_out_of_quarantine"] = True
        found["findings"] = [finding.to_dict() for finding in self.findings]
        return found


@dataclass
class ValidationRun:
    outcomes: list[FileOutcome]
    settings: ValidationSettings
    conflicts: list[dict[str, Any]]
    manifest: str
    report: str = ""
    store_source: dict[str, Any] = field(default_factory=dict)
    """The good files as ``StoreDicomOperator`` takes its ``source``: a file list naming ``good.jsonl``."""
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
            "taken_out_of_quarantine": sum(outcome.taken_out for outcome in self.outcomes),
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
    inputs: Iterable[InstanceFile | InstanceResult],
    *,
    quarantine: Location,
    output: Location,
    settings: ValidationSettings | None = None,
    remove_source: Callable[[InstanceFile], None] | None = None,
    max_failures: int | float | None = None,
    workers: int | None = None,
) -> ValidationRun:
    """Validate every input, quarantine the failing ones, and write ``report.json`` and ``good.jsonl`` to ``output``.

    :param inputs: the files, as :func:`~airflow_hi_stow.sources.resolve.resolve_sources` yields them: an entry
        that names nothing (a REJECTED result) is quarantined with its reason (a reason file alone). The same name
        twice counts once. Checked and reported in the order of their names.
    :param quarantine: where failing files and their reason files go. It belongs to this run (like a manifest
        location): the reason files it holds for sources no longer listed (moved away by an earlier try) count as
        this run's, and what it holds for files that pass now is taken out.
    :param remove_source: quarantine by moving: called on each input once it is safely in the quarantine
        (:func:`~airflow_hi_stow.validate.inputs.remove_input` deletes a local file or an S3 object); None copies.
    :param max_failures: at most this many quarantined files (an int), or this share of the inputs (a float from
        0 to 1); beyond, :class:`TooManyFailures` is raised once everything was checked and written. None: no limit.
    :param workers: processes checking files (None: this process alone below 3000 files, else one per available
        core). Files that do not pickle (S3 objects) are read here and their bytes checked there.
    """
    started = time.monotonic()
    settings = settings or ValidationSettings.of()
    policy = FailurePolicy.of(max_failures, ()) if max_failures is not None else None
    files = _unique_sorted(as_inputs(inputs))
    store = Quarantine(quarantine)
    listed = {file.name for file in files}
    moved_away = [record for record in store.records() if record["source"] not in listed]
    files = [file for file in files if not _superseded(file, moved_away)]
    log.info("validating %d file(s); quarantine %s", len(files), quarantine.uri)
    dciodvfy = _dciodvfy_state(settings)
    verdicts = list(_progress(_inspect_all(files, settings, _workers(workers, len(files))), len(files)))
    verdicts, conflicts = _run_checks(files, verdicts, settings)
    outcomes = [_settle(store, file, verdict, remove_source) for file, verdict in zip(files, verdicts, strict=True)]
    outcomes.extend(_outcome_of_record(record) for record in moved_away)
    outcomes.sort(key=lambda outcome: outcome.source)
    taken_out = sum(outcome.taken_out for outcome in outcomes)
    if taken_out:
        log.info("took %d file(s) that pass now out of the quarantine (an earlier try had put them there)", taken_out)
    run = ValidationRun(outcomes, settings, [c.to_dict([f.name for f in files]) for c in conflicts], "")
    run.manifest = output.put_file(GOOD_MANIFEST, io.BytesIO(_manifest(run.good)))
    run.store_source = FileList(run.manifest).to_source(files=len(run.good))
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
        raise QuarantineFailed(
            f"{len(unsettled)} failing file(s) could not be quarantined in {store.uri}: {unsettled[0].problem} "
            f"(the report {run.report} lists them; a retry quarantines them)",
            run,
        )
    if run.failure:
        raise TooManyFailures(run.failure, run)
    return run


def _unique_sorted(inputs: Iterable[InstanceFile]) -> list[InstanceFile]:
    by_name: dict[str, InstanceFile] = {}
    for file in inputs:
        by_name.setdefault(file.name, file)
    return [by_name[name] for name in sorted(by_name)]


def _workers(requested: int | None, files: int) -> int:
    if requested is not None:
        return allowed_processes(max(1, requested))
    if files < PARALLEL_FROM_FILES:
        return 1
    return allowed_processes(usable_cores())


def _superseded(file: InstanceFile, moved_away: Sequence[dict[str, Any]]) -> bool:
    """An entry that names nothing now because an earlier try moved what it named into the quarantine (a directory
    or prefix, a glob): the reason files of those files count for it."""
    if not isinstance(file, Unlisted):
        return False
    entry = file.name.rstrip("/")
    return any(
        source == entry or source.startswith(entry + "/") or fnmatch.fnmatchcase(source, file.name)
        for source in (str(record["source"]) for record in moved_away)
    )


def _inspect_all(files: Sequence[InstanceFile], settings: ValidationSettings, workers: int) -> Iterator[FileVerdict]:
    """The verdict of each file, in order: in this process, or in ``workers`` processes (files that do not pickle
    are fetched here first; those too large to fetch are checked here)."""
    key = secrets.token_bytes(32)  # digests of grouping values compare within this run only
    check = partial(inspect_file, settings=settings, key=key)
    readable = fetched_ahead(files, settings.max_in_memory_bytes)
    if workers == 1 or len(files) < 2:
        yield from map(check, readable)
        return
    chunk = max(1, min(64, len(files) // (workers * 8)))
    with worker_pool(workers) as pool:
        yield from _in_workers(pool, check, readable, chunk, 4 * workers)


def _in_workers(
    pool: ProcessPoolExecutor,
    check: Callable[[InstanceFile], FileVerdict],
    files: Iterator[InstanceFile],
    chunk: int,
    in_flight: int,
) -> Iterator[FileVerdict]:
    """Chunks of files checked in the pool (at most ``in_flight`` chunks at a time), the files that cannot be sent
    there checked here; the verdicts in the order of the files."""
    pending: deque[Future[list[FileVerdict]] | list[FileVerdict]] = deque()
    batch: list[InstanceFile] = []
    batch_bytes = 0

    def send() -> None:
        nonlocal batch, batch_bytes
        if batch:
            pending.append(pool.submit(_check_all, check, batch))
            batch, batch_bytes = [], 0

    for file in files:
        if portable(file):
            batch.append(file)
            batch_bytes += file.size
            if len(batch) >= chunk or batch_bytes >= CHUNK_BYTES:
                send()
        else:
            send()
            pending.append([check(file)])
        while len(pending) > in_flight:
            yield from _done(pending.popleft())
    send()
    while pending:
        yield from _done(pending.popleft())


def _check_all(check: Callable[[InstanceFile], FileVerdict], files: list[InstanceFile]) -> list[FileVerdict]:
    return [check(file) for file in files]


def _done(item: Future[list[FileVerdict]] | list[FileVerdict]) -> list[FileVerdict]:
    return item.result() if isinstance(item, Future) else item


def _progress(verdicts: Iterator[FileVerdict], total: int) -> Iterator[FileVerdict]:
    last = time.monotonic()
    for done, verdict in enumerate(verdicts, start=1):
        if time.monotonic() - last >= PROGRESS_SECONDS:
            last = time.monotonic()
            log.info("checked %d of %d file(s)", done, total)
        yield verdict


def _run_checks(
    files: Sequence[InstanceFile], verdicts: list[FileVerdict], settings: ValidationSettings
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


def _same_content(one: InstanceFile, other: InstanceFile) -> bool | None:
    if one.size != other.size:
        return False
    try:
        return file_sha256(one) == file_sha256(other)
    except OSError:
        return None


def _settle(
    store: Quarantine,
    file: InstanceFile,
    verdict: FileVerdict,
    remove_source: Callable[[InstanceFile], None] | None,
) -> FileOutcome:
    if not verdict.failed:
        return _passed(store, file, verdict)
    earlier = store.earlier(file.name)
    if earlier and earlier.get("quarantined_as") and any(f.check == READABLE.name for f in verdict.findings):
        return _outcome_of_record(
            earlier
        )  # it is gone (moved by an earlier try) or unreadable: that try's copy holds it
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


def _passed(store: Quarantine, file: InstanceFile, verdict: FileVerdict) -> FileOutcome:
    """A good file; what an earlier try quarantined for it is taken out (its source is here)."""
    try:
        taken_out = store.take_out(file.name)
    except OSError as exc:
        log.warning("%s passes, but an earlier try's quarantine copy cannot be removed (%s)", file.name, exc)
        return FileOutcome(file.name, verdict.size, True, verdict.findings, problem="still in the quarantine")
    return FileOutcome(file.name, verdict.size, True, verdict.findings, taken_out=taken_out)


def _outcome_of_record(record: dict[str, Any]) -> FileOutcome:
    """A file an earlier try quarantined, as its reason file tells."""
    findings = tuple(
        Finding(f["check"], Severity(f["severity"]), f["message"], f.get("attribute"))
        for f in record.get("findings", [])
    )
    return FileOutcome(
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
