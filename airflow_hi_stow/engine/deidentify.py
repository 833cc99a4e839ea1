"""De-identifying a source into a destination: the I/O around :func:`airflow_hi_stow.deid.run_deidentification`.

The source is anything StoreDicomOperator takes (paths, directories, globs, ``s3://`` URIs, lists of these, file
lists); the destination and the quarantine are local directories or ``s3://`` prefixes. Local files are read in
place by the worker processes. Other files (S3 objects) are copied to a local staging directory by threads of this
process, a bounded number of bytes ahead, and removed once done with. Outputs bound for S3 are written to staging
by the workers and uploaded from this process as each input's outcome arrives. An entry naming nothing (a missing
path, a glob or prefix without a match) is quarantined with its reason, so that every input is accounted for.

The records go to a :class:`~airflow_hi_stow.storage.locations.Location`: the list of the outputs written (a file
list, the next step's source) and the report, which holds no original value.
"""

from __future__ import annotations

import io
import itertools
import json
import logging
import os
import tempfile
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from airflow_hi_stow.core.results import InstanceResult
from airflow_hi_stow.core.summary import FailurePolicy, reason_key
from airflow_hi_stow.deid import (
    BurnedInPolicy,
    DeidentificationKey,
    FileOutcome,
    InputFile,
    LinkageFile,
    LinkageSink,
    LocalDirectory,
    LocalInput,
    MissingInput,
    ProfileOptions,
    run_deidentification,
)
from airflow_hi_stow.deid.runner import QUARANTINED_ORIGINAL, QUARANTINED_REASON, QUARANTINED_SOURCE
from airflow_hi_stow.deid.storage import linkage_csv
from airflow_hi_stow.deid.transform import LinkageRecord
from airflow_hi_stow.engine.importer import Log
from airflow_hi_stow.sources.instances import InstanceFile, LocalFile
from airflow_hi_stow.sources.read_ahead import SourceReadError, copy_to, read_ahead
from airflow_hi_stow.sources.resolve import FileList, refuse_overlap, resolve_sources, write_file_list
from airflow_hi_stow.sources.s3 import S3Client, is_s3_uri, split_s3_uri
from airflow_hi_stow.storage.files import Unwritable, remove_stale_partials
from airflow_hi_stow.storage.locations import LocalLocation, Location
from airflow_hi_stow.storage.targets import open_target, within

logger = logging.getLogger(__name__)

OUTPUTS = "deidentified.jsonl"
REPORT = "report.json"
LINKAGE = "linkage.csv"
QUARANTINE_SUFFIX = "-quarantine"


def default_quarantine(destination: str) -> str:
    """``<destination>-quarantine``: a sibling of the destination, never inside it."""
    if is_s3_uri(destination):
        bucket, prefix = split_s3_uri(destination)
        if not prefix.strip("/"):
            raise ValueError(f"{destination} is a whole bucket: name a quarantine outside it")
        return f"s3://{bucket}/{prefix.strip('/')}{QUARANTINE_SUFFIX}"
    path = os.path.abspath(os.path.expanduser(destination))
    if path == os.path.dirname(path):
        raise ValueError(f"{destination} is a file system root: name a quarantine outside it")
    return path + QUARANTINE_SUFFIX


def deidentify_source(
    source: Any,
    destination: str,
    key: DeidentificationKey | bytes | str | None,
    *,
    records: Location,
    quarantine: str | None = None,
    options: ProfileOptions | None = None,
    burned_in: BurnedInPolicy | None = None,
    linkage: Location | None = None,
    s3_client: Callable[[], S3Client] | None = None,
    workers: int | None = None,
    progress_interval: float = 30.0,
    follow_symlinks: bool = False,
    log: Log = logger,
) -> dict[str, Any]:
    """De-identify every file ``source`` names into ``destination`` (``<study>/<series>/<instance>.dcm`` by the
    new UIDs); quarantine the rest, originals with a reason beside each, in ``quarantine`` (default:
    ``<destination>-quarantine``). ``linkage``, when given, receives ``linkage.csv`` (original -> replacement:
    patient data). ``follow_symlinks``: follow symbolic links found in source folders out of them (see
    :func:`~airflow_hi_stow.sources.resolve.resolve_sources`; by default each is quarantined with that reason).

    Returns the summary, itself a source for the next step: ``{"manifest": <file list of the outputs>, "files",
    "destination", "quarantine", "report", "counts", ...}``; its size does not grow with the number of files.
    A bad key or a destination, quarantine or record location that overlaps another (or lies in the source)
    raises ValueError before any file is read or written.
    """
    started = time.monotonic()
    key = key if isinstance(key, DeidentificationKey) else DeidentificationKey(key)
    destination = _normal(destination)
    quarantine = _normal(quarantine) if quarantine else default_quarantine(destination)
    _check_places(source, destination, quarantine, records.uri, linkage.uri if linkage else None)
    log.info(
        "de-identifying into %s (quarantine %s) under key %s, options: %s",
        destination,
        quarantine,
        key.key_id,
        ", ".join((options or ProfileOptions()).enabled()) or "none (Basic Profile)",
    )
    with tempfile.TemporaryDirectory(prefix="hi-stow-deid-") as scratch:
        staging = Path(scratch)
        copies = _StagedCopies(staging / "inputs")
        outputs: dict[str, None] = {}  # in input order, each once
        written: set[str] = set()  # the local folders written into
        progress = _Progress(log, progress_interval)
        with (
            open_target(destination, staging / "destination", s3_client) as target,
            open_target(quarantine, staging / "quarantine", s3_client) as held,
        ):

            def settle(outcome: FileOutcome) -> None:
                copies.release()
                if outcome.status == "deidentified":
                    outputs[target.publish(outcome.output)] = None
                    written.add(os.path.dirname(os.path.join(target.local_root, outcome.output)))
                else:
                    held.publish_if_written(f"{outcome.output}/{QUARANTINED_ORIGINAL}")  # none if it was unreadable
                    held.publish(f"{outcome.output}/{QUARANTINED_SOURCE}")
                    held.publish(f"{outcome.output}/{QUARANTINED_REASON}")
                    written.add(os.path.join(held.local_root, outcome.output))
                progress.add(outcome)

            try:
                report = run_deidentification(
                    copies.track(_inputs(source, s3_client, copies, follow_symlinks)),
                    LocalDirectory(target.local_root),
                    LocalDirectory(held.local_root),
                    key,
                    options,
                    burned_in,
                    _linkage_sink(linkage),
                    workers,
                    settle,
                )
            except Unwritable as exc:
                staged = str(exc).startswith(f"cannot write {staging}")
                where = f"; the local staging directory of the S3 transfers is under {staging.parent}" if staged else ""
                raise Unwritable(exc.errno, f"{exc}{where}; no list of outputs was written") from None
        for folder in written:  # what tries killed mid-write left there (S3 targets are staged under scratch)
            remove_stale_partials(Path(folder))
        manifest = records.put_file(OUTPUTS, io.BytesIO(write_file_list(outputs)))
        document = {
            **report.to_dict(),
            "files": len(outputs),
            "locations": {"destination": destination, "quarantine": quarantine, "outputs": manifest},
        }
        report_uri = records.put_file(REPORT, io.BytesIO(json.dumps(document, indent=2, sort_keys=True).encode()))
    duration = time.monotonic() - started
    log.info(
        "%d input(s): %d de-identified into %d file(s), %d quarantined %s, in %.1f s; report %s",
        report.inputs,
        report.deidentified,
        len(outputs),
        report.quarantined,
        json.dumps(report.reasons),
        duration,
        report_uri,
    )
    return FileList(manifest).to_source(
        files=len(outputs),
        destination=destination,
        quarantine=quarantine,
        report=report_uri,
        counts={"inputs": report.inputs, "deidentified": report.deidentified, "quarantined": report.quarantined},
        reasons=report.reasons,
        studies=report.studies,
        series=report.series,
        outputs_written_twice=report.outputs_written_twice,
        notes=report.notes,
        key_id=report.key_id,
        duration_seconds=round(duration, 3),
    )


def quarantine_limit(max_quarantined: int | float | None) -> FailurePolicy | None:
    """The limit on quarantined inputs: a count, or a share of the inputs from 0 to 1; None: no limit. Raises
    ValueError for a bad value."""
    if max_quarantined is None:
        return None
    try:
        return FailurePolicy.of(max_quarantined, ())
    except ValueError as exc:
        raise ValueError(str(exc).replace("max_failures", "max_quarantined")) from None


def quarantine_violation(limit: FailurePolicy | None, counts: dict[str, int]) -> str | None:
    """Why a run quarantined more than ``limit`` allows (``counts`` as in the summary), or None."""
    if limit is None:
        return None
    allowed = limit.allowed(counts["inputs"])
    if counts["quarantined"] <= allowed:
        return None
    quarantined, inputs = counts["quarantined"], counts["inputs"]
    return f"{quarantined} of {inputs} input(s) quarantined, more than the {allowed} allowed (max_quarantined)"


def _normal(place: str) -> str:
    if not place or not place.strip():
        raise ValueError("a destination or quarantine must be a local directory or an s3:// prefix, not empty")
    if is_s3_uri(place):
        split_s3_uri(place)  # raises ValueError without a bucket
        return place.rstrip("/")
    return os.path.abspath(os.path.expanduser(place))


def _check_places(source: Any, destination: str, quarantine: str, records: str, linkage: str | None) -> None:
    """Refuse overlapping places: the destination holds de-identified instances only, and a rerun must not read
    what a run wrote."""
    if within(quarantine, destination) or within(destination, quarantine):
        raise ValueError("the quarantine and the destination must not lie inside one another")
    for name, place in (("report_location", records), ("linkage_location", linkage)):
        if place and (within(place, destination) or within(destination, place)):
            raise ValueError(f"the {name} must lie outside the destination, which holds de-identified instances only")
    places = {"destination": destination, "quarantine": quarantine, "report_location": records}
    refuse_overlap(source, **places, **({"linkage_location": linkage} if linkage else {}))


class _StagedCopies:
    """Local copies of remote inputs, named in order, each removed once its outcome has come."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._numbers = itertools.count()
        self._taken: deque[str | None] = deque()

    def copy(self, file: InstanceFile) -> InputFile:
        target = self.root / f"{next(self._numbers):09d}"
        try:
            path = copy_to(file, target)
        except SourceReadError as exc:
            return MissingInput(file.name, reason_key(exc.strerror or "the source could not be read"))
        except OSError as exc:  # the staging directory is full or unwritable
            raise Unwritable.of(target, exc) from None
        return LocalInput(str(path), file.name, file.size)

    def track(self, inputs: Iterable[InputFile]) -> Iterator[InputFile]:
        """``inputs`` as they are taken, remembering which are staged copies (outcomes come in the same order)."""
        for item in inputs:
            path = item.path if isinstance(item, LocalInput) else None
            self._taken.append(path if path and Path(path).parent == self.root else None)
            yield item

    def release(self) -> None:
        """The oldest input taken is done with."""
        path = self._taken.popleft()
        if path is not None:
            Path(path).unlink(missing_ok=True)


def _inputs(
    source: Any, s3_client: Callable[[], S3Client] | None, copies: _StagedCopies, follow_symlinks: bool
) -> Iterator[InputFile]:
    """The de-identification inputs of a source, in order: local files in place, others copied ahead."""

    def prepare(item: InstanceFile | InstanceResult) -> InputFile:
        if isinstance(item, InstanceResult):
            return MissingInput(item.source, reason_key(item.reason or "nothing to read"))
        if isinstance(item, LocalFile):
            return LocalInput(str(item.path), item.name, item.size)
        return copies.copy(item)

    def cost(item: InstanceFile | InstanceResult) -> int:
        return 0 if isinstance(item, InstanceResult | LocalFile) else item.size

    return read_ahead(resolve_sources(source, s3_client, follow_symlinks=follow_symlinks), prepare, cost=cost)


class _LocationLinkage:
    """The linkage export as ``linkage.csv`` in a location (S3: the bucket's access rules and encryption apply)."""

    def __init__(self, location: Location) -> None:
        self.location = location

    def write(self, records: Sequence[LinkageRecord]) -> None:
        self.location.put_file(LINKAGE, io.BytesIO(linkage_csv(records)))


def _linkage_sink(location: Location | None) -> LinkageSink | None:
    if location is None:
        return None
    if isinstance(location, LocalLocation):
        return LinkageFile(str(Path(location.uri) / LINKAGE))  # readable by its owner only
    return _LocationLinkage(location)


class _Progress:
    """A log line every ``interval`` seconds with the counts so far."""

    def __init__(self, log: Log, interval: float) -> None:
        self.log = log
        self.interval = interval
        self.counts: Counter[str] = Counter()
        self.next = time.monotonic() + interval

    def add(self, outcome: FileOutcome) -> None:
        self.counts[outcome.status] += 1
        now = time.monotonic()
        if now >= self.next:
            self.next = now + self.interval
            self.log.info(
                "so far %d input(s) de-identified, %d quarantined",
                self.counts["deidentified"],
                self.counts["quarantined"],
            )
