"""The STOW-RS client: checks DICOM P10 files, then stores them, streaming each request body from its source."""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from urllib.parse import quote

import requests
from requests.adapters import HTTPAdapter
from requests.auth import AuthBase

from airflow_hi_stow import __version__
from airflow_hi_stow.core import status_codes
from airflow_hi_stow.core.batching import DEFAULT_MAX_BATCH_BYTES, DEFAULT_MAX_BATCH_INSTANCES, plan_batches
from airflow_hi_stow.core.multipart import DICOM_JSON_MEDIA_TYPE
from airflow_hi_stow.core.results import InstanceResult, Outcome, RequestRecord, StoreResult
from airflow_hi_stow.core.store_response import NotAStoreResponse, StoreResponse, parse_store_response
from airflow_hi_stow.core.uids import is_valid_uid
from airflow_hi_stow.stow.bodies import Body, MultipartBody, SinglePartBody
from airflow_hi_stow.stow.errors import (
    BoundaryCollision,
    SourceError,
    StowAuthError,
    StowBadRequest,
    StowError,
    StowHTTPError,
    StowNotFound,
    StowPayloadTooLarge,
    StowRetriesExhausted,
    StowUnsupportedMediaType,
    error_reason,
)
from airflow_hi_stow.stow.instances import (
    DicomInstance,
    InstanceFile,
    InvalidInstance,
    LocalFile,
    read_instance,
)
from airflow_hi_stow.stow.retry import THROTTLING_STATUSES, RetryPolicy

log = logging.getLogger(__name__)

Source = DicomInstance | InstanceFile | str | os.PathLike[str]

DEFAULT_TIMEOUT = (10.0, 900.0)
"""Connect and read timeouts in seconds; a 1 GB request may take minutes to be processed."""
REQUEST_ID_HEADERS = ("x-amzn-RequestId", "x-amz-request-id", "X-Request-Id")
MEDIA_STORAGE_DIRECTORY = "1.2.840.10008.1.3.10"
_MAX_BODY_REBUILDS = 3
_ERRORS: dict[int, tuple[type[StowHTTPError], str]] = {
    400: (StowBadRequest, "the server could not parse the request"),
    401: (StowAuthError, "check the credentials"),
    403: (
        StowAuthError,
        "check the credentials, region, clock and the IAM permission StoreDICOM/StoreDICOMStudy",
    ),
    404: (StowNotFound, "check the data store id and the endpoint URL"),
    413: (StowPayloadTooLarge, "send fewer or smaller instances per request"),
    415: (StowUnsupportedMediaType, "the server does not accept this body form"),
}


def new_session(max_connections: int = 10) -> requests.Session:
    """A session whose connection pool holds ``max_connections`` keep-alive connections, without retries of its
    own (the client retries, re-signing and re-reading the files)."""
    session = requests.Session()
    adapter = HTTPAdapter(pool_connections=4, pool_maxsize=max_connections, max_retries=0)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    session.headers["User-Agent"] = f"airflow-hi-stow/{__version__} {requests.utils.default_user_agent()}"
    return session


@dataclass(frozen=True)
class _Exchange:
    response: requests.Response
    body_length: int
    attempts: int
    throttled: int
    elapsed: float


class StowClient:
    """Stores DICOM P10 files on a DICOMweb STOW-RS server (HealthImaging, Orthanc, ...).

    ``base_url`` is the URL that ``/studies`` is appended to (for HealthImaging,
    ``https://dicom-medical-imaging.{region}.amazonaws.com/datastore/{datastoreId}``). ``auth`` signs each
    attempt (SigV4, basic, bearer...). Safe to share between threads.
    """

    def __init__(
        self,
        base_url: str,
        *,
        auth: AuthBase | None = None,
        session: requests.Session | None = None,
        retry: RetryPolicy | None = None,
        timeout: float | tuple[float, float] = DEFAULT_TIMEOUT,
        single_part: bool = False,
        max_request_bytes: int | None = None,
        headers: Mapping[str, str] | None = None,
        on_retry: Callable[[int | None], None] | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.auth = auth
        self.session = session or new_session()
        self.retry = retry or RetryPolicy()
        self.timeout = timeout
        self.single_part = single_part
        """Send a lone instance as ``application/dicom`` (falls back to multipart for good after a 415)."""
        self.max_request_bytes = max_request_bytes
        self.headers = dict(headers or {})
        self.on_retry = on_retry
        """Called before each retry with the HTTP status (None for a lost connection): a throttling signal."""
        self.sleep = sleep

    def studies_url(self, study_instance_uid: str | None = None) -> str:
        """StoreDICOM (``/studies``) or StoreDICOMStudy (``/studies/{uid}``)."""
        if study_instance_uid is None:
            return f"{self.base_url}/studies"
        if not is_valid_uid(study_instance_uid):
            raise ValueError("study_instance_uid is not a valid DICOM UID")
        return f"{self.base_url}/studies/{quote(study_instance_uid)}"

    def store(
        self,
        sources: Iterable[Source],
        study_instance_uid: str | None = None,
        *,
        max_batch_bytes: int = DEFAULT_MAX_BATCH_BYTES,
        max_batch_instances: int = DEFAULT_MAX_BATCH_INSTANCES,
        raise_on_error: bool = True,
    ) -> StoreResult:
        """Check every source, then store the good ones in requests of bounded size, one after another.

        Every source gets exactly one result. When a request fails as a whole, StowHTTPError (or
        StowRetriesExhausted) is raised, naming the files of that request; with ``raise_on_error=False`` those
        files are reported FAILED with the error as reason, and the remaining requests are still sent.
        """
        instances, rejected = self.prepare(sources, study_instance_uid)
        result = StoreResult(tuple(rejected))
        for batch in plan_batches(
            instances, lambda item: item.size, max_bytes=max_batch_bytes, max_instances=max_batch_instances
        ):
            try:
                result += self.store_batch(batch, study_instance_uid)
            except StowError as exc:
                if raise_on_error:
                    raise
                result += failed_batch(batch, exc)
        return result

    def prepare(
        self, sources: Iterable[Source], study_instance_uid: str | None = None
    ) -> tuple[list[DicomInstance], list[InstanceResult]]:
        """Read each source's header and run the checks made before sending.

        Returns the instances fit to send and a REJECTED result (with its reason) for each of the others: not a
        DICOM P10 file, a missing identifier, another study than ``study_instance_uid`` (StoreDICOMStudy), a
        SOP Instance UID already present in this set, or larger than ``max_request_bytes``.
        """
        if study_instance_uid is not None and not is_valid_uid(study_instance_uid):
            raise ValueError("study_instance_uid is not a valid DICOM UID")
        accepted: list[DicomInstance] = []
        rejected: list[InstanceResult] = []
        first_seen: dict[str, str] = {}
        for source in sources:
            try:
                instance = to_instance(source)
            except InvalidInstance as exc:
                rejected.append(InstanceResult(exc.source, Outcome.REJECTED, reason=exc.reason))
                continue
            problem = None
            if instance.sop_class_uid == MEDIA_STORAGE_DIRECTORY:
                problem = "a DICOMDIR (media directory), not an instance to store"
            elif study_instance_uid is not None and instance.study_instance_uid != study_instance_uid:
                problem = "StudyInstanceUID differs from the study of this StoreDICOMStudy request"
            elif instance.sop_instance_uid in first_seen:
                problem = f"duplicate SOP Instance UID: the same instance as {first_seen[instance.sop_instance_uid]}"
            elif self.max_request_bytes is not None and instance.size > self.max_request_bytes:
                problem = f"larger than the {self.max_request_bytes}-byte limit per request"
            if problem:
                rejected.append(instance_result(instance, Outcome.REJECTED, reason=problem))
            else:
                first_seen[instance.sop_instance_uid] = instance.name
                accepted.append(instance)
        return accepted, rejected

    def store_batch(self, instances: Sequence[DicomInstance], study_instance_uid: str | None = None) -> StoreResult:
        """Store checked instances (see :meth:`prepare`) in one request; on 413 the batch is halved and resent."""
        if not instances:
            return StoreResult(())
        try:
            return self._store_request(instances, study_instance_uid)
        except SourceError as exc:
            # A file vanished or changed mid-send: report it, and resend the others without it.
            unreadable = [i for i in instances if i.name == exc.source]
            if not unreadable:
                raise
            rest = [i for i in instances if i.name != exc.source]
            failed = StoreResult(tuple(instance_result(i, Outcome.FAILED, reason=exc.reason) for i in unreadable))
            return failed + self.store_batch(rest, study_instance_uid)
        except StowPayloadTooLarge:
            if len(instances) == 1:
                raise
            half = len(instances) // 2
            log.warning("HTTP 413 for %d instances; resending them in two halves", len(instances))
            return self.store_batch(instances[:half], study_instance_uid) + self.store_batch(
                instances[half:], study_instance_uid
            )

    def _store_request(self, instances: Sequence[DicomInstance], study_instance_uid: str | None) -> StoreResult:
        names = [instance.name for instance in instances]
        url = self.studies_url(study_instance_uid)
        for _ in range(_MAX_BODY_REBUILDS):
            single = self.single_part and len(instances) == 1
            body: Body = SinglePartBody(instances[0].file) if single else MultipartBody([i.file for i in instances])
            try:
                exchange = self._post(url, body, names)
            except BoundaryCollision:
                log.warning("the multipart boundary occurred in a file; rebuilding the body with a new one")
                continue
            if exchange.response.status_code == 415 and single:
                log.info("the server refused single-part application/dicom (HTTP 415); sending multipart from now on")
                self.single_part = False
                continue
            return self._interpret(exchange, instances)
        raise StowError(f"could not build a request body for {len(names)} file(s) after {_MAX_BODY_REBUILDS} tries")

    def _post(self, url: str, body: Body, names: Sequence[str]) -> _Exchange:
        """POST with retries: every attempt re-signs and re-reads the files from the start."""
        headers = {"Accept": DICOM_JSON_MEDIA_TYPE, "Content-Type": body.content_type, **self.headers}
        started = time.monotonic()
        throttled = 0
        for attempt in range(1, self.retry.max_attempts + 1):
            status: int | None = None
            retry_after: str | None = None
            try:
                response = self.session.post(url, data=body, headers=headers, auth=self.auth, timeout=self.timeout)
            except (
                requests.ConnectionError,
                requests.Timeout,
                requests.exceptions.ChunkedEncodingError,
            ) as exc:
                problem = f"connection problem ({type(exc).__name__})"
            else:
                status = response.status_code
                if status not in self.retry.retry_statuses:
                    return _Exchange(response, len(body), attempt, throttled, time.monotonic() - started)
                problem = f"HTTP {status}"
                retry_after = response.headers.get("Retry-After")
                throttled += status in THROTTLING_STATUSES
                response.close()
            if attempt == self.retry.max_attempts:
                raise StowRetriesExhausted(attempt, problem, names, status)
            delay = self.retry.delay(attempt, retry_after)
            # Throttling is expected at a TPS quota and paced by the caller: INFO, so a long run's log stays readable.
            log.log(
                logging.INFO if status == 429 else logging.WARNING,
                "STOW-RS attempt %d/%d for %d file(s) failed (%s); retrying in %.1f s",
                attempt,
                self.retry.max_attempts,
                len(names),
                problem,
                delay,
            )
            if self.on_retry is not None:
                self.on_retry(status)
            self.sleep(delay)
        raise AssertionError("unreachable: the loop returns or raises")

    def _interpret(self, exchange: _Exchange, instances: Sequence[DicomInstance]) -> StoreResult:
        response = exchange.response
        status = response.status_code
        request_id = next((response.headers[h] for h in REQUEST_ID_HEADERS if h in response.headers), None)
        module = _store_response(response) if (200 <= status < 300 or status in (400, 409)) else None
        retrieve_url: str | None = None
        other: tuple[str, ...] = ()
        if module is None:
            if not 200 <= status < 300:
                error_class, hint = _ERRORS.get(status, (StowHTTPError, ""))
                reason = error_reason(response.content, response.headers.get("x-amzn-ErrorType"))
                raise error_class(status, reason, [i.name for i in instances], request_id, hint)
            results = [
                instance_result(
                    instance,
                    Outcome.UNCONFIRMED,
                    reason=f"HTTP {status} without a Store Instances Response listing the instances",
                )
                for instance in instances
            ]
        else:
            results = match_response(module, instances, status)
            retrieve_url = module.retrieve_url
            other = tuple(status_codes.describe(code) for code in module.other_failures)
        record = RequestRecord(
            status_code=status,
            request_id=request_id,
            instances=len(instances),
            sent_bytes=exchange.body_length,
            attempts=exchange.attempts,
            throttled=exchange.throttled,
            elapsed_seconds=round(exchange.elapsed, 3),
            retrieve_url=retrieve_url,
            other_failures=other,
        )
        log.debug(
            "STOW-RS: %d instance(s), %d bytes -> HTTP %d in %.2f s (%d attempt(s), request id %s)",
            len(instances),
            exchange.body_length,
            status,
            exchange.elapsed,
            exchange.attempts,
            request_id,
        )
        return StoreResult(tuple(results), (record,))


def to_instance(source: Source) -> DicomInstance:
    """A source as a checked DicomInstance (reading its header); raises InvalidInstance."""
    if isinstance(source, DicomInstance):
        return source
    if isinstance(source, str | os.PathLike):
        try:
            source = LocalFile.at(source)
        except OSError as exc:
            raise InvalidInstance(str(source), f"cannot read the file ({exc.strerror})") from None
    return read_instance(source)


def failed_batch(instances: Sequence[DicomInstance], error: StowError) -> StoreResult:
    """Results for the instances of a request that failed as a whole, the error as their reason.

    They are FAILED when the server refused them or only throttled (429/503: not processed). They are UNCONFIRMED
    when every attempt lost its connection or ended in another server error: the server may have stored them.
    """
    status = getattr(error, "status_code", None)
    reason = error.reason if isinstance(error, StowHTTPError) else str(error).split("; ")[0]
    if isinstance(error, StowHTTPError):
        reason = f"HTTP {error.status_code}: {reason}"
    unknown_fate = isinstance(error, StowRetriesExhausted) and status not in THROTTLING_STATUSES
    outcome = Outcome.UNCONFIRMED if unknown_fate else Outcome.FAILED
    record = RequestRecord(
        status, getattr(error, "request_id", None), len(instances), 0, getattr(error, "attempts", 0), 0, 0.0
    )
    results = tuple(instance_result(instance, outcome, reason=reason) for instance in instances)
    return StoreResult(results, (record,))


def instance_result(instance: DicomInstance, outcome: Outcome, **details: object) -> InstanceResult:
    return InstanceResult(
        source=instance.name,
        outcome=outcome,
        size=instance.size,
        sop_instance_uid=instance.sop_instance_uid,
        sop_class_uid=instance.sop_class_uid,
        study_instance_uid=instance.study_instance_uid,
        series_instance_uid=instance.series_instance_uid,
        **details,  # type: ignore[arg-type]
    )


def match_response(module: StoreResponse, instances: Sequence[DicomInstance], status: int) -> list[InstanceResult]:
    """One result per sent instance, matched by SOP Instance UID. Listed as failed wins over listed as stored;
    listed nowhere is UNCONFIRMED, never STORED."""
    failed = {item.sop_instance_uid: item for item in module.failed}
    referenced = {item.sop_instance_uid: item for item in module.referenced}
    results = []
    for instance in instances:
        uid = instance.sop_instance_uid
        if uid in failed:
            code = failed[uid].failure_reason
            reason = status_codes.describe(code) if code is not None else "failed without a reason code"
            results.append(instance_result(instance, Outcome.FAILED, reason_code=code, reason=reason))
        elif uid in referenced:
            item = referenced[uid]
            code = item.warning_reason
            results.append(
                instance_result(
                    instance,
                    Outcome.STORED if code is None else Outcome.STORED_WITH_WARNING,
                    reason_code=code,
                    reason=status_codes.describe(code) if code is not None else None,
                    retrieve_url=item.retrieve_url,
                )
            )
        else:
            reason = f"not listed in the HTTP {status} response"
            if module.other_failures:
                reason += "; other failures: " + ", ".join(status_codes.describe(c) for c in module.other_failures)
            results.append(instance_result(instance, Outcome.UNCONFIRMED, reason=reason))
    return results


def _store_response(response: requests.Response) -> StoreResponse | None:
    """The Store Instances Response Module, whatever the Content-Type says; None when the body is not one."""
    if not response.content:
        return None
    try:
        return parse_store_response(json.loads(response.content))
    except (ValueError, NotAStoreResponse):
        return None
