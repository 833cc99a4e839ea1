"""The import engine, free of Airflow: sources -> headers -> checks -> resume -> batches sent in parallel under
adaptive throttling -> ledger, manifest and a small summary. Every input ends with exactly one result.

The operator, the hooks' ``store_instances`` and ``hi-stow store`` all run :func:`run_import`."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, Protocol

from airflow_hi_stow.core.aimd import AimdController
from airflow_hi_stow.core.batching import DEFAULT_MAX_BATCH_BYTES, DEFAULT_MAX_BATCH_INSTANCES, BatchBuilder
from airflow_hi_stow.core.progress import Progress
from airflow_hi_stow.core.results import InstanceResult, Outcome, RequestRecord, StoreResult
from airflow_hi_stow.core.summary import ImportTally
from airflow_hi_stow.engine.checks import InstanceChecks
from airflow_hi_stow.engine.kept_content import KeptContent
from airflow_hi_stow.engine.ledger import Ledger, LedgerEntry, ManifestSpool
from airflow_hi_stow.engine.throttle import AdaptiveGate
from airflow_hi_stow.sources.fingerprints import current_fingerprint, sent_fingerprint
from airflow_hi_stow.sources.instances import (
    DicomInstance,
    InstanceFile,
    InvalidInstance,
    header_workers,
    read_instance,
)
from airflow_hi_stow.sources.read_ahead import read_ahead
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
    """Threads listing S3 entries and reading the headers of S3 objects (ranged GETs); the headers of local files
    are read, and files named in the ledger re-hashed, in the calling thread (see ``header_workers``)."""
    resume: bool = True
    """Skip the instances that an earlier try of the same task instance confirmed stored."""
    follow_symlinks: bool = False
    """Follow symbolic links found in source folders out of them (see ``sources.resolve.resolve_sources``)."""
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
        self.spool = ManifestSpool() if location is not None else None
        """Without a location nothing is kept, so no manifest is spooled."""
        self.lock = threading.Lock()
        self.progress = Progress(0, 0, time.monotonic())
        self.first_error: StowError | None = None
        self.kept = KeptContent()

    def settle(self, results: Iterable[InstanceResult], *, resumed: bool = False) -> None:
        """Results of inputs that are not sent (rejected, or resumed): they leave the progress's work to do."""
        with self.lock:
            for result in results:
                self._add(result, resumed=resumed)
                self.progress.exclude(1, result.size or 0)

    def _add(self, result: InstanceResult, *, resumed: bool = False, entry: LedgerEntry | None = None) -> None:
        """Count a result and spool its manifest line (a confirmed one's is its ``entry``'s ledger line)."""
        self.tally.add(result, resumed=resumed)
        if self.spool is not None:
            if entry is not None:
                self.spool.write_line(entry.line)
            else:
                self.spool.write(result, **({"resumed": True} if resumed else {}))
        if self.collect is not None:
            self.collect.results.append(result)

    def settle_batch(self, batch: Sequence[DicomInstance], outcome: StoreResult) -> None:
        files = {instance.name: instance.file for instance in batch}
        confirmed = []
        with self.lock:
            for result in outcome.instances:
                fingerprint = sent_fingerprint(files[result.source]) if result.outcome.is_stored else None
                entry = LedgerEntry(result, fingerprint) if fingerprint else None
                self._add(result, entry=entry)
                if entry is not None:
                    confirmed.append(entry)
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
    started, started_at = time.monotonic(), datetime.now(UTC)
    run = _Run(location, log, collect)
    controller = AimdController(settings.max_connections, settings.max_requests_per_second)
    gate = AdaptiveGate(controller)
    manifest: str | None = None
    try:
        files: list[InstanceFile] = []
        # Without a location no ledger keeps the files' fingerprints: local files are not hashed.
        found = resolve_sources(
            source,
            s3_client,
            threads=settings.header_threads,
            fingerprints=location is not None,
            follow_symlinks=settings.follow_symlinks,
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
        inputs = run.tally.files + len(files)
        run.progress = Progress(len(files), sum(f.size for f in files), time.monotonic())
        confirmed = _load_ledger(run.ledger, log) if settings.resume and run.ledger else {}
        checks = InstanceChecks(settings.study_instance_uid, max_request_bytes=client.max_request_bytes)
        batches: BatchBuilder[DicomInstance] = BatchBuilder(
            lambda instance: instance.size,
            max_bytes=settings.max_batch_bytes,
            max_instances=settings.max_batch_instances,
            group=lambda instance: instance.study_instance_uid,
        )
        if location is not None:
            # Written before anything is sent, so that every try that sent something has its record (a try killed
            # mid-way too), and nothing is sent before the records location is known to take writes.
            location.append_lines(TRIES, [_try_record(started_at, inputs, len(confirmed))])
        # Headers are read, checked and batched while the first batches are being sent, a few batches ahead.
        with _Sender(client, gate, run, settings) as sender:
            for instance in _read_headers(files, settings.header_threads, run):
                if (rejection := checks.rejection(instance)) is not None:
                    run.kept.release([instance])
                    run.settle([rejection])
                elif (earlier := _confirmed_earlier(instance, confirmed)) is not None:
                    run.kept.release([instance])
                    run.settle([earlier], resumed=True)
                else:
                    for batch in batches.add(instance):
                        sender.submit(batch)
            for batch in batches.flush():
                sender.submit(batch)
            _log_plan(log, run, sender, batches.count, settings)
        extra = image_sets(run.tally.studies) if image_sets is not None and run.tally.studies else {}
    finally:
        if run.spool is not None and location is not None:
            try:
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


def _read_headers(files: Sequence[InstanceFile], threads: int, run: _Run) -> Iterator[DicomInstance]:
    """The instances in the files' order, as their headers are read; unreadable files are settled as REJECTED."""

    def read(file: InstanceFile) -> DicomInstance | InstanceResult:
        try:
            return run.kept.keep(read_instance(file, with_content=True))
        except InvalidInstance as exc:
            return InstanceResult(exc.source, Outcome.REJECTED, size=file.size, reason=exc.reason)

    workers = header_workers(files, threads)
    # S3 objects are read in threads, a few per thread ahead of their turn (not all of them at once), so that the
    # content kept with a header is sent soon after it was fetched.
    for item in read_ahead(files, read, cost=lambda _: 0, threads=workers) if workers > 1 else map(read, files):
        if isinstance(item, InstanceResult):
            run.settle([item])
        else:
            yield item


def _load_ledger(ledger: Ledger, log: Log) -> dict[str, LedgerEntry]:
    try:
        return ledger.load()
    except OSError as exc:
        log.warning("cannot read the resume ledger (%s); every file is sent", exc)
        return {}


def _confirmed_earlier(instance: DicomInstance, confirmed: dict[str, LedgerEntry]) -> InstanceResult | None:
    """The earlier result of an instance that an earlier try confirmed stored (same file, SOP Instance UID, size
    and content fingerprint), or None."""
    entry = confirmed.get(instance.name)
    if entry is None or entry.result.sop_instance_uid != instance.sop_instance_uid:
        return None
    if entry.result.size != instance.size or current_fingerprint(instance.file, instance.content) != entry.fingerprint:
        return None
    return entry.result


def _log_plan(log: Log, run: _Run, sender: _Sender, requests: int, settings: ImportSettings) -> None:
    if run.tally.counts[Outcome.REJECTED]:
        log.warning("%d file(s) rejected before sending (see the manifest)", run.tally.counts[Outcome.REJECTED])
    if run.tally.resumed:
        log.info("resume: %d file(s) confirmed stored by an earlier try are not sent again", run.tally.resumed)
    if requests:
        endpoint = "StoreDICOMStudy" if settings.study_instance_uid or settings.per_study else "StoreDICOM"
        log.info(
            "sending %d instance(s), %.1f MB, in %d %s request(s) over up to %d connection(s)",
            sender.instances,
            sender.bytes / 1e6,
            requests,
            endpoint,
            settings.max_connections,
        )


def _try_record(started: datetime, files: int, in_ledger: int) -> str:
    return json.dumps({"started": started.isoformat(timespec="seconds"), "files": files, "in_ledger": in_ledger})


class _Sender:
    """Sends batches as they are submitted, over up to ``max_connections`` connections under the adaptive gate,
    and reports progress. Leaving it waits for every batch; on an error or a termination signal, the batches still
    queued are not started."""

    def __init__(self, client: StowClient, gate: AdaptiveGate, run: _Run, settings: ImportSettings) -> None:
        self.client = client
        self.gate = gate
        self.run = run
        self.settings = settings
        self.instances = 0
        self.bytes = 0
        self.aborted: list[str] = []
        self.futures: list[Future[None]] = []
        self.pool = ThreadPoolExecutor(settings.max_connections, thread_name_prefix="hi-stow-send")
        self.slots = threading.Semaphore(2 * settings.max_connections)
        """Batches submitted and not yet done: the header reader waits when as many wait as are being sent, so
        that the content it keeps (see KeptContent) is sent soon after it was read."""
        self.stop = threading.Event()
        self.reporter = threading.Thread(target=self._report_progress, name="hi-stow-progress", daemon=True)

    def __enter__(self) -> _Sender:
        self.reporter.start()
        return self

    def submit(self, batch: Sequence[DicomInstance]) -> None:
        self.instances += len(batch)
        self.bytes += sum(instance.size for instance in batch)
        self.slots.acquire()
        future = self.pool.submit(self._send, batch)
        future.add_done_callback(lambda _: self.slots.release())
        self.futures.append(future)

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None, traceback: Any) -> None:
        try:
            if kind is None:
                wait(self.futures)
                for future in self.futures:
                    future.result()
        finally:
            self.aborted.append("the import was interrupted")
            self.pool.shutdown(wait=True, cancel_futures=True)
            self.stop.set()
            self.reporter.join()
            with self.run.lock:
                self.run.log.info("progress: %s", self.run.progress.line(time.monotonic()))

    def _send(self, batch: Sequence[DicomInstance]) -> None:
        run, settings = self.run, self.settings
        study = settings.study_instance_uid or (batch[0].study_instance_uid if settings.per_study else None)
        if self.aborted:
            run.kept.release(batch)
            run.settle_batch(batch, failed_batch(batch, StowError(f"not sent: {self.aborted[0]}")))
            return
        self.gate.acquire()
        answered = False
        try:
            outcome = self.client.store_batch(batch, study, pacer=self.gate)
            answered = True
        except StowError as exc:
            answered = isinstance(exc, StowHTTPError)
            outcome = failed_batch(batch, exc)
            with run.lock:
                run.first_error = run.first_error or exc
            if isinstance(exc, _HOPELESS) or settings.raise_on_error:
                # e.g. wrong credentials, data store or CA bundle: no other request can succeed; do not send them.
                self.aborted.append(f"an earlier request failed {_short(exc)}")
        except Exception as exc:  # a bug or an unexpected library error must not lose the batch's files
            run.log.exception("unexpected error while sending %d file(s)", len(batch))
            outcome = failed_batch(batch, StowError(f"unexpected error ({type(exc).__name__})"))
        finally:
            self.gate.release(answered=answered)
            run.kept.release(batch)
        run.settle_batch(batch, outcome)

    def _report_progress(self) -> None:
        while not self.stop.wait(self.settings.progress_interval):
            with self.run.lock:
                line = self.run.progress.line(time.monotonic())
            self.run.log.info("progress: %s; %s", line, self.gate.describe())


def _short(error: StowError) -> str:
    if isinstance(error, StowHTTPError):
        return f"with HTTP {error.status_code}"
    return f"({getattr(error, 'reason', None) or type(error).__name__})"
