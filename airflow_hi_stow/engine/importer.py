"""The import engine, free of Airflow: sources -> headers -> checks -> resume -> batches sent in parallel under
adaptive throttling -> ledger, manifest and a small summary. Every input ends with exactly one result.

The operator, the hooks' ``store_instances`` and ``hi-stow store`` all run :func:`run_import`."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, Protocol

from airflow_hi_stow.core.aimd import AimdController
from airflow_hi_stow.core.batching import DEFAULT_MAX_BATCH_BYTES, DEFAULT_MAX_BATCH_INSTANCES, plan_batches
from airflow_hi_stow.core.progress import Progress
from airflow_hi_stow.core.results import InstanceResult, Outcome, RequestRecord, StoreResult
from airflow_hi_stow.core.summary import ImportTally
from airflow_hi_stow.engine.checks import check_instances
from airflow_hi_stow.engine.ledger import Ledger, LedgerEntry, ManifestSpool
from airflow_hi_stow.engine.throttle import AdaptiveGate
from airflow_hi_stow.sources.fingerprints import current_fingerprint, sent_fingerprint
from airflow_hi_stow.sources.instances import DicomInstance, InstanceFile, InvalidInstance, read_instance
from airflow_hi_stow.sources.resolve import resolve_sources
from airflow_hi_stow.sources.s3 import S3Client
from airflow_hi_stow.storage.locations import Location
from airflow_hi_stow.transport.client import StowClient, failed_batch
from airflow_hi_stow.transport.errors import (
    StowAuthError,
    StowError,
    StowHTTPError,
    StowNotFound,
    StowProxyError,
    StowTLSError,
)


class Log(Protocol):
    """The logging calls the engine makes (a ``logging.Logger``, or an Airflow task's ``self.log``)."""

    def info(self, msg: str, /, *args: Any) -> Any: ...

    def warning(self, msg: str, /, *args: Any) -> Any: ...

    def exception(self, msg: str, /, *args: Any) -> Any: ...


TRIES = "tries"
_HOPELESS = (StowAuthError, StowNotFound, StowTLSError, StowProxyError)
"""Request failures after which no other request can succeed: the remaining batches are not sent."""


@dataclass(frozen=True)
class ImportSettings:
    study_instance_uid: str | None = None
    """Store every instance with StoreDICOMStudy for this study; instances of other studies are rejected."""
    per_study: bool = False
    """Without ``study_instance_uid``: send each study's batches with StoreDICOMStudy for that study."""
    max_batch_bytes: int = DEFAULT_MAX_BATCH_BYTES
    max_batch_instances: int = DEFAULT_MAX_BATCH_INSTANCES
    max_connections: int = 4
    max_requests_per_second: float | None = None
    header_threads: int = 8
    """Threads reading DICOM headers (ranged GETs for S3) and re-hashing files on resume."""
    resume: bool = True
    """Skip the instances that an earlier try of the same task instance confirmed stored."""
    follow_symlinks: bool = False
    """Follow symbolic links found in source folders out of them (see ``sources.resolve.expand_local``)."""
    progress_interval: float = 15.0
    raise_on_error: bool = False
    """Stop at the first request that fails as a whole and raise its error (after the manifest is written)."""

    def __post_init__(self) -> None:
        for name in ("max_batch_bytes", "max_batch_instances", "max_connections", "header_threads"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")
        if self.progress_interval <= 0:
            raise ValueError("progress_interval must be positive")
        if self.max_requests_per_second is not None and self.max_requests_per_second <= 0:
            raise ValueError("max_requests_per_second must be positive (or None for no cap)")


class Collector:
    """Keeps every result and request record of an import, for callers that want them all (the hooks, the CLI)."""

    def __init__(self) -> None:
        self.order: dict[str, int] = {}
        self.results: list[InstanceResult] = []
        self.requests: list[RequestRecord] = []

    def saw(self, name: str) -> None:
        self.order.setdefault(name, len(self.order))

    def store_result(self) -> StoreResult:
        """Every result, in the order the source named the files."""
        ordered = sorted(self.results, key=lambda result: self.order.get(result.source, len(self.order)))
        return StoreResult(tuple(ordered), tuple(self.requests))


class _Run:
    """The state of one import: tally, manifest spool, ledger and progress. The tally and the spool are updated
    under one lock; ledger writes (a PUT per confirmed request on S3) run outside it, in parallel."""

    def __init__(self, location: Location | None, log: Log, collect: Collector | None) -> None:
        self.log = log
        self.ledger = Ledger(location) if location is not None else None
        self.collect = collect
        self.tally = ImportTally()
        self.spool = ManifestSpool()
        self.lock = threading.Lock()
        self.progress = Progress(0, 0, time.monotonic())
        self.first_error: StowError | None = None

    def settle(self, results: Iterable[InstanceResult], *, resumed: bool = False) -> None:
        with self.lock:
            for result in results:
                self._add(result, {"resumed": True} if resumed else {}, resumed=resumed)

    def _add(self, result: InstanceResult, extra: dict[str, Any], *, resumed: bool = False) -> None:
        self.tally.add(result, resumed=resumed)
        self.spool.write(result, **extra)
        if self.collect is not None:
            self.collect.results.append(result)

    def settle_batch(self, batch: Sequence[DicomInstance], outcome: StoreResult) -> None:
        files = {instance.name: instance.file for instance in batch}
        confirmed = []
        with self.lock:
            for result in outcome.instances:
                fingerprint = sent_fingerprint(files[result.source]) if result.outcome.is_stored else None
                self._add(result, {"fingerprint": fingerprint} if fingerprint else {})
                if fingerprint:
                    confirmed.append(LedgerEntry(result, fingerprint))
            for record in outcome.requests:
                self.tally.add_request(record)
                if self.collect is not None:
                    self.collect.requests.append(record)
            self.progress.add(len(batch), sum(instance.size for instance in batch))
        if self.ledger is not None and confirmed:
            try:
                self.ledger.record(confirmed)
            except OSError as exc:
                with self.lock:
                    self.tally.ledger_failures += 1
                self.log.warning(
                    "could not record %d confirmed file(s) in the resume ledger (%s); a retry would send them again",
                    len(confirmed),
                    exc,
                )


def run_import(
    source: Any,
    *,
    client: StowClient,
    location: Location | None = None,
    settings: ImportSettings | None = None,
    s3_client: Callable[[], S3Client] | None = None,
    image_sets: Callable[[set[str]], dict[str, Any]] | None = None,
    log: Log | None = None,
    collect: Collector | None = None,
) -> dict[str, Any]:
    """Store every DICOM instance that ``source`` names (see :func:`~airflow_hi_stow.sources.resolve.resolve_sources`)
    through ``client`` and return the summary (see :class:`~airflow_hi_stow.core.summary.ImportTally`).

    ``location`` keeps the ledger (written after every confirmed request; what it lists is not sent again) and the
    manifest (one line per input, written at the end, also when the import is interrupted). Without a location,
    nothing is kept and nothing resumed. ``s3_client`` builds the boto3 S3 client for ``s3://`` sources.
    ``image_sets`` looks up where the stored studies landed (e.g.
    :func:`~airflow_hi_stow.readback.image_sets.find_image_sets`); its result joins the summary. ``collect``
    receives every result and request record.
    """
    settings = settings or ImportSettings()
    log = log or logging.getLogger(__name__)
    started = time.monotonic()
    run = _Run(location, log, collect)
    controller = AimdController(settings.max_connections, settings.max_requests_per_second)
    gate = AdaptiveGate(controller)
    manifest: str | None = None
    try:
        files: list[InstanceFile] = []
        found = resolve_sources(
            source, s3_client, threads=settings.header_threads, follow_symlinks=settings.follow_symlinks
        )
        for item in found:
            if collect is not None:
                collect.saw(item.source if isinstance(item, InstanceResult) else item.name)
            if isinstance(item, InstanceResult):
                run.settle([item])
            else:
                files.append(item)
        log.info(
            "source: %d file(s), %.1f MB; %d entries named no file",
            len(files),
            sum(f.size for f in files) / 1e6,
            run.tally.files,
        )
        instances = _read_headers(files, settings.header_threads, run)
        accepted, rejected = check_instances(
            instances, settings.study_instance_uid, max_request_bytes=client.max_request_bytes
        )
        run.settle(rejected)
        to_send = _skip_confirmed(accepted, run.ledger, run, settings) if settings.resume and run.ledger else accepted
        batches = plan_batches(
            to_send,
            lambda instance: instance.size,
            max_bytes=settings.max_batch_bytes,
            max_instances=settings.max_batch_instances,
            group=lambda instance: instance.study_instance_uid,
        )
        run.progress = Progress(len(to_send), sum(i.size for i in to_send), time.monotonic())
        if location is not None:
            location.append_lines(TRIES, [_try_record(run.tally, len(to_send), len(batches))])
        if run.tally.counts[Outcome.REJECTED]:
            log.warning("%d file(s) rejected before sending (see the manifest)", run.tally.counts[Outcome.REJECTED])
        if batches:
            endpoint = "StoreDICOMStudy" if settings.study_instance_uid or settings.per_study else "StoreDICOM"
            log.info(
                "sending %d instance(s), %.1f MB, in %d %s request(s) over up to %d connection(s)",
                len(to_send),
                run.progress.total_bytes / 1e6,
                len(batches),
                endpoint,
                settings.max_connections,
            )
            _send_all(batches, client, gate, run, settings)
        extra = image_sets(run.tally.studies) if image_sets is not None and run.tally.studies else {}
    finally:
        try:
            if location is not None:
                manifest = run.spool.publish(location)
        finally:
            run.spool.close()
    duration = time.monotonic() - started
    summary = run.tally.summary(duration, manifest=manifest, throttle_events=controller.throttle_events, **extra)
    log.info(
        "done: %s; %.1f MB sent in %d request(s), %.2f MB/s; manifest %s",
        ", ".join(f"{count} {name}" for name, count in summary["counts"].items() if count),
        summary["bytes_sent"] / 1e6,
        summary["requests"],
        summary["throughput_mb_per_s"],
        manifest or "not kept",
    )
    if settings.raise_on_error and run.first_error is not None:
        raise run.first_error
    return summary


def store_files(
    client: StowClient,
    source: Any,
    study_instance_uid: str | None = None,
    *,
    settings: ImportSettings | None = None,
    s3_client: Callable[[], S3Client] | None = None,
    raise_on_error: bool = True,
) -> StoreResult:
    """Store what ``source`` names through the engine, without a manifest or resume, and return every result
    (in the source's order) with the request records. ``study_instance_uid`` and ``raise_on_error`` override the
    settings' ones: by default the first request that fails as a whole stops the import and its error is raised."""
    settings = replace(settings or ImportSettings(), raise_on_error=raise_on_error)
    if study_instance_uid is not None:
        settings = replace(settings, study_instance_uid=study_instance_uid)
    collect = Collector()
    run_import(source, client=client, settings=settings, s3_client=s3_client, collect=collect)
    return collect.store_result()


def _read_headers(files: Sequence[InstanceFile], threads: int, run: _Run) -> list[DicomInstance]:
    def read(file: InstanceFile) -> DicomInstance | InstanceResult:
        try:
            return read_instance(file)
        except InvalidInstance as exc:
            return InstanceResult(exc.source, Outcome.REJECTED, size=file.size, reason=exc.reason)

    with ThreadPoolExecutor(threads, thread_name_prefix="hi-stow-header") as pool:
        read_all = list(pool.map(read, files))
    run.settle(item for item in read_all if isinstance(item, InstanceResult))
    return [item for item in read_all if isinstance(item, DicomInstance)]


def _skip_confirmed(
    accepted: Sequence[DicomInstance], ledger: Ledger, run: _Run, settings: ImportSettings
) -> list[DicomInstance]:
    """The instances still to send; those an earlier try confirmed (same file, SOP Instance UID, size and content
    fingerprint) are settled with their earlier result."""
    try:
        confirmed = ledger.load()
    except OSError as exc:
        run.log.warning("cannot read the resume ledger (%s); every file is sent", exc)
        confirmed = {}
    if not confirmed:
        return list(accepted)

    def already_stored(instance: DicomInstance) -> InstanceResult | None:
        entry = confirmed.get(instance.name)
        if entry is None or entry.result.sop_instance_uid != instance.sop_instance_uid:
            return None
        if entry.result.size != instance.size or current_fingerprint(instance.file) != entry.fingerprint:
            return None
        return entry.result

    with ThreadPoolExecutor(settings.header_threads, thread_name_prefix="hi-stow-resume") as pool:
        earlier = list(pool.map(already_stored, accepted))
    skipped = [result for result in earlier if result is not None]
    run.settle(skipped, resumed=True)
    if skipped:
        run.log.info(
            "resume: %d file(s), %.1f MB, confirmed stored by an earlier try are not sent again",
            len(skipped),
            sum(result.size for result in skipped) / 1e6,
        )
    return [instance for instance, result in zip(accepted, earlier, strict=True) if result is None]


def _try_record(tally: ImportTally, to_send: int, requests: int) -> str:
    return json.dumps(
        {
            "started": datetime.now(UTC).isoformat(timespec="seconds"),
            "files": tally.files + to_send,
            "resumed": tally.resumed,
            "to_send": to_send,
            "requests": requests,
        }
    )


def _send_all(
    batches: Sequence[Sequence[DicomInstance]],
    client: StowClient,
    gate: AdaptiveGate,
    run: _Run,
    settings: ImportSettings,
) -> None:
    aborted: list[str] = []

    def send(batch: Sequence[DicomInstance]) -> None:
        study = settings.study_instance_uid or (batch[0].study_instance_uid if settings.per_study else None)
        if aborted:
            run.settle_batch(batch, failed_batch(batch, StowError(f"not sent: {aborted[0]}")))
            return
        gate.acquire()
        answered = False
        try:
            outcome = client.store_batch(batch, study, pacer=gate)
            answered = True
        except StowError as exc:
            answered = isinstance(exc, StowHTTPError)
            outcome = failed_batch(batch, exc)
            with run.lock:
                run.first_error = run.first_error or exc
            if isinstance(exc, _HOPELESS) or settings.raise_on_error:
                # e.g. wrong credentials, data store or CA bundle: no other request can succeed; do not send them.
                aborted.append(f"an earlier request failed {_short(exc)}")
        except Exception as exc:  # a bug or an unexpected library error must not lose the batch's files
            run.log.exception("unexpected error while sending %d file(s)", len(batch))
            outcome = failed_batch(batch, StowError(f"unexpected error ({type(exc).__name__})"))
        finally:
            gate.release(answered=answered)
        run.settle_batch(batch, outcome)

    stop = threading.Event()

    def report_progress() -> None:
        while not stop.wait(settings.progress_interval):
            with run.lock:
                line = run.progress.line(time.monotonic())
            run.log.info("progress: %s; %s", line, gate.describe())

    reporter = threading.Thread(target=report_progress, name="hi-stow-progress", daemon=True)
    reporter.start()
    pool = ThreadPoolExecutor(settings.max_connections, thread_name_prefix="hi-stow-send")
    try:
        futures = [pool.submit(send, batch) for batch in batches]
        wait(futures)
        for future in futures:
            future.result()
    finally:
        # On an error or a termination signal, do not start the batches still queued.
        aborted.append("the import was interrupted")
        pool.shutdown(wait=True, cancel_futures=True)
        stop.set()
        reporter.join()
        with run.lock:
            run.log.info("progress: %s", run.progress.line(time.monotonic()))


def _short(error: StowError) -> str:
    if isinstance(error, StowHTTPError):
        return f"with HTTP {error.status_code}"
    return f"({getattr(error, 'reason', None) or type(error).__name__})"
