"""De-identify a set of files: inputs -> de-identified outputs laid out by new UIDs, or the quarantine; and a report.

Nothing is lost: every input ends de-identified or quarantined (original bytes and a JSON reason beside them), and
the report counts both. Outputs are deterministic, so a rerun rewrites identical files. Larger sets are spread over
worker processes (one per core).
"""

from __future__ import annotations

import json
import os
import posixpath
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from itertools import chain
from typing import Any

from airflow_hi_stow.deid.burned_in import BurnedInPolicy
from airflow_hi_stow.deid.deidentifier import DeidentifiedFile, Deidentifier, Finding
from airflow_hi_stow.deid.errors import UnavailableInput
from airflow_hi_stow.deid.keys import DeidentificationKey
from airflow_hi_stow.deid.markers import method_codes
from airflow_hi_stow.deid.profile import ProfileOptions, profile_table
from airflow_hi_stow.deid.storage import InputFile, LinkageFile, LinkageSink, LocalDirectory, OutputStore, local_inputs
from airflow_hi_stow.deid.transform import LinkageRecord
from airflow_hi_stow.workers import allowed_processes, usable_cores, worker_pool

REPORT_VERSION = 1
QUARANTINED_ORIGINAL = "original"
"""In ``<quarantine>/<input_id>/``: the input's bytes as they came (patient data)."""
QUARANTINED_SOURCE = "source.json"
"""The input's name in its source, which may hold patient data (``MRN123_1.dcm``) as the original does."""
QUARANTINED_REASON = "reason.json"
"""Why it was quarantined; no patient data, and nothing of the input's name."""
PARALLEL_FROM = 64  # fewer inputs than this are not worth starting worker processes for
CHUNK = 16  # inputs per message to a worker process
CHUNK_BYTES = 32 * 1024 * 1024  # or fewer, when the inputs say their size
IN_FLIGHT_CHUNKS = 3  # chunks submitted per worker process ahead of the outcomes gathered
IN_FLIGHT_BYTES = 512 * 1024 * 1024  # and no more input bytes than this, when the inputs say their size


@dataclass(frozen=True)
class FileOutcome:
    """What became of one input; small and picklable. ``input_id`` is a keyed hash of its name, not the name."""

    input_id: str
    status: str  # deidentified | quarantined
    output: str = ""
    """The output's path under the destination, or the input's folder under the quarantine."""
    study_instance_uid: str = ""
    series_instance_uid: str = ""
    finding: Finding | None = None
    notes: tuple[str, ...] = ()
    linkage: tuple[LinkageRecord, ...] = ()


@dataclass
class RunReport:
    """Counts and reasons of a run. It holds no original value (no name, ID, date or UID of the inputs)."""

    profile: dict[str, Any]
    key_id: str
    inputs: int = 0
    deidentified: int = 0
    quarantined: int = 0
    studies: int = 0
    series: int = 0
    reasons: dict[str, int] = field(default_factory=dict)
    quarantine: list[dict[str, str]] = field(default_factory=list)
    notes: dict[str, int] = field(default_factory=dict)
    outputs_written_twice: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {"version": REPORT_VERSION, **asdict(self)}

    def to_json(self) -> bytes:
        return (json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n").encode("utf-8")


class _Worker:
    """The per-process part of a run: one Deidentifier, the two stores."""

    def __init__(
        self,
        key: DeidentificationKey,
        options: ProfileOptions,
        burned_in: BurnedInPolicy,
        collect_linkage: bool,
        destination: OutputStore,
        quarantine: OutputStore,
    ) -> None:
        self.deidentifier = Deidentifier(key, options, burned_in, collect_linkage)
        self.destination = destination
        self.quarantine = quarantine

    def __call__(self, item: InputFile) -> FileOutcome:
        input_id = self.deidentifier.key.digest("input-name", item.name).hex()[:16]
        try:
            data = item.read()
        except OSError as error:
            detail = str(error) if isinstance(error, UnavailableInput) else type(error).__name__
            finding = Finding("unreadable", f"the input could not be read ({detail})")
            return self._quarantine(item, input_id, None, finding, ())
        result = self.deidentifier.deidentify_bytes(data)
        if isinstance(result, DeidentifiedFile):
            self.destination.write(result.relative_path, result.data)
            return FileOutcome(
                input_id,
                "deidentified",
                result.relative_path,
                result.study_instance_uid,
                result.series_instance_uid,
                notes=result.notes,
                linkage=result.linkage,
            )
        return self._quarantine(item, input_id, data, result.finding, result.notes)

    def _quarantine(
        self, item: InputFile, input_id: str, data: bytes | None, finding: Finding, notes: tuple[str, ...]
    ) -> FileOutcome:
        """Into ``<quarantine>/<input_id>/``: the original bytes, the source's name and the reason, in three files
        whose names owe nothing to the source's (a name can carry a patient's ID); the reason last."""
        if data is not None:
            self.quarantine.write(posixpath.join(input_id, QUARANTINED_ORIGINAL), data)
        for name, record in (
            (QUARANTINED_SOURCE, {"input_id": input_id, "source": item.name}),
            (QUARANTINED_REASON, {"input_id": input_id, **asdict(finding)}),
        ):
            self.quarantine.write(posixpath.join(input_id, name), (json.dumps(record, indent=2) + "\n").encode("utf-8"))
        return FileOutcome(input_id, "quarantined", input_id, finding=finding, notes=notes)


_process_worker: _Worker | None = None


def _start_process(*arguments: Any) -> None:
    global _process_worker
    _process_worker = _Worker(*arguments)


def _run_in_process(item: InputFile) -> FileOutcome:
    assert _process_worker is not None
    return _process_worker(item)


def run_deidentification(
    inputs: Iterable[InputFile],
    destination: OutputStore,
    quarantine: OutputStore,
    key: DeidentificationKey | bytes | str | None,
    options: ProfileOptions | None = None,
    burned_in: BurnedInPolicy | None = None,
    linkage: LinkageSink | None = None,
    workers: int | None = None,
    on_outcome: Callable[[FileOutcome], None] | None = None,
) -> RunReport:
    """De-identify ``inputs`` into ``destination`` (``<study>/<series>/<instance>.dcm`` by new UIDs).

    Quarantined inputs go to ``quarantine`` with a ``.reason.json`` beside each. ``linkage``, when given, receives
    every original -> replacement pair (patient data: only where the caller names). ``workers`` defaults to the
    number of cores. ``on_outcome`` is called in this process with each input's outcome, in input order, as they
    come (for a manifest or progress). ``inputs`` may be a lazy iterable: it is consumed as the run goes, at most
    ``IN_FLIGHT_CHUNKS`` chunks per worker process and ``IN_FLIGHT_BYTES`` (counting the inputs' ``size``, where
    they have one) ahead of the outcomes, so that inputs staged for the run (S3 copies) stay bounded. A key problem
    raises ``InvalidKeyError`` before any input is read.
    """
    key = key if isinstance(key, DeidentificationKey) else DeidentificationKey(key)
    options = options or ProfileOptions()
    burned_in = burned_in or BurnedInPolicy()
    arguments = (key, options, burned_in, linkage is not None, destination, quarantine)
    remaining = iter(inputs)
    head = _head(remaining)
    processes = allowed_processes(min(workers or usable_cores(), len(head)))
    outcomes: list[FileOutcome] = []
    counted = _Counted(chain(head, remaining))
    if processes > 1 and (len(head) >= PARALLEL_FROM or sum(map(_size, head)) >= IN_FLIGHT_BYTES):
        with worker_pool(processes, _start_process, arguments) as pool:
            _gather(_in_chunks(pool, counted, processes * IN_FLIGHT_CHUNKS), outcomes, on_outcome)
    else:
        worker = _Worker(*arguments)
        _gather(map(worker, counted), outcomes, on_outcome)
    report = _report(outcomes, key, options)
    if report.inputs != counted.count or report.deidentified + report.quarantined != report.inputs:
        raise RuntimeError("de-identification lost track of an input")  # cannot happen: every input has an outcome
    if linkage is not None:
        linkage.write(sorted({record for outcome in outcomes for record in outcome.linkage}, key=_linkage_order))
    return report


class _Counted:
    """The inputs, counted as they are taken."""

    def __init__(self, items: Iterable[InputFile]) -> None:
        self.items = iter(items)
        self.count = 0

    def __iter__(self) -> Iterator[InputFile]:
        for item in self.items:
            self.count += 1
            yield item


def _size(item: InputFile) -> int:
    """The input's size in bytes when it says (``InputFile`` does not require it), else 0."""
    return int(getattr(item, "size", 0) or 0)


def _head(items: Iterator[InputFile]) -> list[InputFile]:
    """The first inputs, enough to choose between this process and worker processes."""
    head: list[InputFile] = []
    total = 0
    for item in items:
        head.append(item)
        total += _size(item)
        if len(head) >= PARALLEL_FROM or total >= IN_FLIGHT_BYTES:
            break
    return head


def _chunks(items: Iterable[InputFile]) -> Iterator[tuple[list[InputFile], int]]:
    """The inputs by chunks of ``CHUNK`` inputs or about ``CHUNK_BYTES``, each with its size."""
    chunk: list[InputFile] = []
    size = 0
    for item in items:
        chunk.append(item)
        size += _size(item)
        if len(chunk) >= CHUNK or size >= CHUNK_BYTES:
            yield chunk, size
            chunk, size = [], 0
    if chunk:
        yield chunk, size


def _run_chunk(items: list[InputFile]) -> list[FileOutcome]:
    return [_run_in_process(item) for item in items]


def _in_chunks(pool: ProcessPoolExecutor, items: Iterable[InputFile], window: int) -> Iterator[FileOutcome]:
    """The outcomes of ``items`` run in ``pool`` by chunks, in input order, with at most ``window`` chunks and
    about ``IN_FLIGHT_BYTES`` submitted ahead (``Executor.map`` would take every input at once)."""
    pending: deque[tuple[Future[list[FileOutcome]], int]] = deque()
    in_flight = 0
    for chunk, size in _chunks(items):
        pending.append((pool.submit(_run_chunk, chunk), size))
        in_flight += size
        while pending and (len(pending) >= window or in_flight >= IN_FLIGHT_BYTES):
            future, done = pending.popleft()
            in_flight -= done
            yield from future.result()
    for future, _ in pending:
        yield from future.result()


def _gather(
    results: Iterable[FileOutcome], outcomes: list[FileOutcome], on_outcome: Callable[[FileOutcome], None] | None
) -> None:
    for outcome in results:
        outcomes.append(outcome)
        if on_outcome is not None:
            on_outcome(outcome)


def _linkage_order(record: LinkageRecord) -> tuple[str, str]:
    return (record.kind, record.original)


def _report(outcomes: list[FileOutcome], key: DeidentificationKey, options: ProfileOptions) -> RunReport:
    table = profile_table()
    done = [o for o in outcomes if o.status == "deidentified"]
    held = [o for o in outcomes if o.status == "quarantined"]
    outputs = Counter(o.output for o in done)
    return RunReport(
        profile={
            "table": "DICOM PS3.15 Table E.1-1",
            "edition": table.edition,
            "options_edition": table.options_edition,
            "options": list(options.enabled()),
            "method_codes": [code for code, _ in method_codes(options)],
        },
        key_id=key.key_id,
        inputs=len(outcomes),
        deidentified=len(done),
        quarantined=len(held),
        studies=len({o.study_instance_uid for o in done}),
        series=len({o.series_instance_uid for o in done}),
        reasons=dict(sorted(Counter(o.finding.reason for o in held if o.finding).items())),
        quarantine=[{"input_id": o.input_id, **asdict(o.finding)} for o in held if o.finding is not None],
        notes=dict(sorted(Counter(note for o in outcomes for note in o.notes).items())),
        outputs_written_twice=sum(count - 1 for count in outputs.values()),
    )


def deidentify_local(
    source: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
    destination: str | os.PathLike[str],
    key: DeidentificationKey | bytes | str | None,
    *,
    quarantine: str | os.PathLike[str] | None = None,
    report: str | os.PathLike[str] | None = None,
    linkage: str | os.PathLike[str] | None = None,
    options: ProfileOptions | None = None,
    burned_in: BurnedInPolicy | None = None,
    workers: int | None = None,
) -> RunReport:
    """``run_deidentification`` over local files: a directory (recursively) or a list of files.

    The quarantine defaults to ``<destination>-quarantine`` and the report to ``<destination>-report.json``, both
    siblings of the destination, which holds de-identified instances only. No linkage export unless ``linkage``.
    """
    key = key if isinstance(key, DeidentificationKey) else DeidentificationKey(key)
    target = os.fspath(destination).rstrip("/\\")
    held = os.fspath(quarantine) if quarantine else f"{target}-quarantine"
    if isinstance(source, str | os.PathLike) and os.path.isdir(source):
        root = os.path.realpath(source)
        for output in (target, held):
            if os.path.commonpath([root, os.path.realpath(output)]) == root:
                raise ValueError("the destination and the quarantine must not lie inside the source directory")
    result = run_deidentification(
        local_inputs(source),
        LocalDirectory(target),
        LocalDirectory(held),
        key,
        options,
        burned_in,
        LinkageFile(os.fspath(linkage)) if linkage else None,
        workers,
    )
    report_path = os.fspath(report) if report else f"{target}-report.json"
    parent, name = os.path.split(os.path.abspath(report_path))
    LocalDirectory(parent).write(name, result.to_json())
    return result
