"""The STOW-RS client: sends checked DICOM instances in one request each, streaming the body from the files,
re-signing and re-reading them on every retry, and maps the server's answer to one result per instance."""

from __future__ import annotations

import json
import logging
import ssl
import threading
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Protocol, runtime_checkable
from urllib.parse import quote, urlsplit

import requests
from requests.auth import AuthBase
from urllib3.exceptions import NewConnectionError

from airflow_hi_stow.core import status_codes
from airflow_hi_stow.core.multipart import DICOM_JSON_MEDIA_TYPE
from airflow_hi_stow.core.results import InstanceResult, Outcome, RequestRecord, RetryCause, StoreResult
from airflow_hi_stow.core.store_response import NotAStoreResponse, StoreResponse, parse_store_response
from airflow_hi_stow.core.uids import is_valid_uid
from airflow_hi_stow.sources.instances import DicomInstance
from airflow_hi_stow.transport.bodies import Body, MultipartBody, SinglePartBody
from airflow_hi_stow.transport.errors import (
    SourceError,
    StowAuthError,
    StowBadRequest,
    StowError,
    StowHTTPError,
    StowNotFound,
    StowPayloadTooLarge,
    StowProxyError,
    StowRetriesExhausted,
    StowTLSError,
    StowUnsupportedMediaType,
    error_reason,
    error_type,
)
from airflow_hi_stow.transport.retry import THROTTLING_STATUSES, RetryPolicy, retry_cause
from airflow_hi_stow.transport.session import HttpSettings, new_session

log = logging.getLogger(__name__)

REQUEST_ID_HEADERS = ("x-amzn-RequestId", "x-amz-request-id", "X-Request-Id")
EXPIRED_CREDENTIALS_ERRORS = frozenset({"ExpiredTokenException", "ExpiredToken"})
"""Error types of a 401/403 that fresh credentials fix (an assumed-role session replaced before its expiry time)."""
_MAX_REFRESHES = 2
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
_TLS_HINT = (
    "if a proxy or a TLS-inspecting gateway re-signs the traffic, set the connection's verify extra (or "
    "AWS_CA_BUNDLE) to its CA bundle"
)


class RetryPacer(Protocol):
    """What paces the client's retries: told of every retry (a throttling signal), and waits the back-off."""

    def on_retry(self, status: int | None) -> None:
        """Called before each retry with the HTTP status (None for a lost connection)."""
        ...

    def sleep_before_retry(self, delay: float) -> None: ...


@runtime_checkable
class RefreshingAuth(Protocol):
    """An auth that can get fresh credentials after the server refused a request's as expired."""

    def refresh_after_refusal(self, request: requests.PreparedRequest) -> bool:
        """Whether credentials other than those that signed ``request`` are there now (refreshing them if need
        be): then the request is signed again and re-sent."""
        ...


class _Unpaced:
    def on_retry(self, status: int | None) -> None:
        pass

    def sleep_before_retry(self, delay: float) -> None:
        time.sleep(delay)


@dataclass(frozen=True)
class _Exchange:
    response: requests.Response
    body_length: int
    attempts: int
    retries: Mapping[RetryCause, int]
    elapsed: float


class StowClient:
    """Stores checked DICOM instances on a DICOMweb STOW-RS server (HealthImaging, Orthanc, ...), one request per
    call of :meth:`store_batch`; the import engine (:mod:`airflow_hi_stow.engine`) decides what goes in each.

    ``base_url`` is the URL that ``/studies`` is appended to (for HealthImaging,
    ``https://dicom-medical-imaging.{region}.amazonaws.com/datastore/{datastoreId}``). ``auth`` signs each
    attempt (SigV4, basic, bearer...). ``http`` holds TLS, proxy, timeout and pool settings. Safe to share between
    threads; close it (or use it as a context manager) to release its connections.
    """

    def __init__(
        self,
        base_url: str,
        *,
        auth: AuthBase | None = None,
        http: HttpSettings | None = None,
        retry: RetryPolicy | None = None,
        single_part: bool = False,
        max_request_bytes: int | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.auth = auth
        self.http = http or HttpSettings()
        self.session = new_session(self.http)
        self.request_options = self.http.request_options(self.base_url)
        self.retry = retry or RetryPolicy()
        self.single_part = single_part
        """Send a lone instance as ``application/dicom`` (unless the server refused that form once, with 415)."""
        self.max_request_bytes = max_request_bytes
        self.headers = dict(headers or {})
        self._single_part_refused = threading.Event()

    def close(self) -> None:
        self.session.close()

    def __enter__(self) -> StowClient:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.close()

    @property
    def sends_single_part(self) -> bool:
        return self.single_part and not self._single_part_refused.is_set()

    def studies_url(self, study_instance_uid: str | None = None) -> str:
        """StoreDICOM (``/studies``) or StoreDICOMStudy (``/studies/{uid}``)."""
        if study_instance_uid is None:
            return f"{self.base_url}/studies"
        if not is_valid_uid(study_instance_uid):
            raise ValueError("study_instance_uid is not a valid DICOM UID")
        return f"{self.base_url}/studies/{quote(study_instance_uid)}"

    def store_batch(
        self,
        instances: Sequence[DicomInstance],
        study_instance_uid: str | None = None,
        *,
        pacer: RetryPacer | None = None,
    ) -> StoreResult:
        """Store checked instances (see :class:`airflow_hi_stow.engine.checks.InstanceChecks`) in one request;
        on 413 the batch is halved and resent. ``pacer`` is told of retries and waits their back-off."""
        if not instances:
            return StoreResult(())
        pacer = pacer or _Unpaced()
        try:
            return self._store_request(instances, study_instance_uid, pacer)
        except SourceError as exc:
            # A file vanished or changed mid-send: report it, and resend the others without it.
            unreadable = [i for i in instances if i.name == exc.source]
            if not unreadable:
                raise
            rest = [i for i in instances if i.name != exc.source]
            failed = StoreResult(tuple(instance_result(i, Outcome.FAILED, reason=exc.reason) for i in unreadable))
            return failed + self.store_batch(rest, study_instance_uid, pacer=pacer)
        except StowPayloadTooLarge:
            if len(instances) == 1:
                raise
            half = len(instances) // 2
            log.warning("HTTP 413 for %d instances; resending them in two halves", len(instances))
            return self.store_batch(instances[:half], study_instance_uid, pacer=pacer) + self.store_batch(
                instances[half:], study_instance_uid, pacer=pacer
            )

    def _store_request(
        self, instances: Sequence[DicomInstance], study_instance_uid: str | None, pacer: RetryPacer
    ) -> StoreResult:
        names = [instance.name for instance in instances]
        url = self.studies_url(study_instance_uid)
        single = self.sends_single_part and len(instances) == 1
        files, contents = [i.file for i in instances], [i.content for i in instances]
        body: Body = SinglePartBody(files[0], contents[0]) if single else MultipartBody(files, contents)
        exchange = self._post(url, body, names, pacer)
        if exchange.response.status_code == 415 and single:
            log.info("the server refused single-part application/dicom (HTTP 415); sending multipart from now on")
            self._single_part_refused.set()
            exchange = self._post(url, MultipartBody(files, contents), names, pacer)
        return self._interpret(exchange, instances)

    def _post(self, url: str, body: Body, names: Sequence[str], pacer: RetryPacer) -> _Exchange:
        """POST with retries: every attempt re-signs and re-reads the files from the start. ``retries`` counts the
        re-sends by the cause of the attempt before (see :func:`~airflow_hi_stow.transport.retry.retry_cause`)."""
        headers = {"Accept": DICOM_JSON_MEDIA_TYPE, "Content-Type": body.content_type, **self.headers}
        options = self.request_options
        started = time.monotonic()
        retries: Counter[RetryCause] = Counter()
        attempts = failures = 0
        while True:
            attempts += 1
            status: int | None = None
            retry_after: str | None = None
            try:
                response = self.session.post(url, data=body, headers=headers, auth=self.auth, **options)
            except requests.exceptions.SSLError as exc:
                raise StowTLSError(_tls_problem(exc), urlsplit(url).hostname or url, names, _TLS_HINT) from None
            except requests.exceptions.ProxyError as exc:
                if "407" in str(exc):
                    raise StowProxyError("the proxy asks for authentication (HTTP 407)", names) from None
                problem = "proxy problem (the proxy could not be reached or could not connect)"
                cause = retry_cause(None, unreachable=True)
            except (
                requests.ConnectionError,
                requests.Timeout,
                requests.exceptions.ChunkedEncodingError,
            ) as exc:
                problem = f"connection problem ({type(exc).__name__})"
                cause = retry_cause(
                    None, unreachable=_never_connected(exc), timed_out=isinstance(exc, requests.exceptions.ReadTimeout)
                )
            else:
                status = response.status_code
                if (
                    status in (401, 403)
                    and retries[RetryCause.EXPIRED_CREDENTIALS] < _MAX_REFRESHES
                    and self._refreshed(response)
                ):
                    retries[RetryCause.EXPIRED_CREDENTIALS] += 1
                    log.info("STOW-RS: HTTP %d for expired credentials; re-signing with refreshed ones", status)
                    response.close()
                    continue
                if status not in self.retry.retry_statuses:
                    return _Exchange(response, len(body), attempts, dict(retries), time.monotonic() - started)
                problem = f"HTTP {status}"
                cause = retry_cause(status)
                retry_after = response.headers.get("Retry-After")
                response.close()
            failures += 1
            if failures == self.retry.max_attempts:
                raise StowRetriesExhausted(attempts, problem, names, status, dict(retries))
            retries[cause] += 1
            delay = self.retry.delay(failures, retry_after)
            # Throttling is expected at a TPS quota and paced by the caller: INFO, so a long run's log stays readable.
            log.log(
                logging.INFO if status == 429 else logging.WARNING,
                "STOW-RS attempt %d/%d for %d file(s) failed (%s); retrying in %.1f s",
                failures,
                self.retry.max_attempts,
                len(names),
                problem,
                delay,
            )
            pacer.on_retry(status)
            pacer.sleep_before_retry(delay)

    def _refreshed(self, response: requests.Response) -> bool:
        """After a 401/403: whether it refused expired credentials and fresh ones are there to re-sign with."""
        if not isinstance(self.auth, RefreshingAuth):
            return False
        if error_type(response.content, response.headers.get("x-amzn-ErrorType")) not in EXPIRED_CREDENTIALS_ERRORS:
            return False
        return self.auth.refresh_after_refusal(response.request)

    def _interpret(self, exchange: _Exchange, instances: Sequence[DicomInstance]) -> StoreResult:
        response = exchange.response
        status = response.status_code
        request_id = next((response.headers[h] for h in REQUEST_ID_HEADERS if h in response.headers), None)
        module = parse_answer(response.content) if (200 <= status < 300 or status in (400, 409)) else None
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
            throttled=exchange.retries.get(RetryCause.THROTTLED, 0),
            elapsed_seconds=round(exchange.elapsed, 3),
            retrieve_url=retrieve_url,
            other_failures=other,
            retries=exchange.retries,
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


def _never_connected(error: requests.RequestException) -> bool:
    """Whether the connection was never made (refused, no route, DNS, connect timeout): nothing was sent."""
    if isinstance(error, requests.exceptions.ConnectTimeout):
        return True
    return any(isinstance(cause, NewConnectionError) for cause in _causes(error))


def _causes(error: BaseException) -> list[BaseException]:
    """The chain of errors that requests and urllib3 wrap around the original one (arguments, reasons, causes)."""
    pending: list[object] = [error]
    found: list[BaseException] = []
    while pending:
        cause = pending.pop(0)
        if not isinstance(cause, BaseException) or any(cause is seen for seen in found):
            continue
        found.append(cause)
        pending.extend([*cause.args, getattr(cause, "reason", None), cause.__cause__, cause.__context__])
    return found


def _tls_problem(error: requests.exceptions.SSLError) -> str:
    """The certificate problem in a few words (e.g. "self-signed certificate in certificate chain"), found in the
    chain of errors that requests and urllib3 wrap around Python's ssl error."""
    for cause in _causes(error):
        if isinstance(cause, ssl.SSLCertVerificationError):
            return f"certificate verification failed: {cause.verify_message}"
        if isinstance(cause, ssl.SSLError):
            return f"TLS handshake failed: {cause.reason or type(cause).__name__}"
    return "TLS handshake failed"


def failed_batch(instances: Sequence[DicomInstance], error: StowError) -> StoreResult:
    """Results for the instances of a request that failed as a whole, the error as their reason.

    They are FAILED when the server refused them or only throttled (429/503: not processed). They are UNCONFIRMED
    when every attempt lost its connection or ended in another server error: the server may have stored them.
    """
    status = getattr(error, "status_code", None)
    reason = str(getattr(error, "reason", None) or str(error).split("; ")[0])
    if isinstance(error, StowHTTPError):
        reason = f"HTTP {error.status_code}: {reason}"
    unknown_fate = isinstance(error, StowRetriesExhausted) and status not in THROTTLING_STATUSES
    outcome = Outcome.UNCONFIRMED if unknown_fate else Outcome.FAILED
    retries = dict(getattr(error, "retries", None) or {})
    record = RequestRecord(
        status,
        getattr(error, "request_id", None),
        len(instances),
        0,
        getattr(error, "attempts", 0),
        retries.get(RetryCause.THROTTLED, 0),
        0.0,
        retries=retries,
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


def parse_answer(content: bytes) -> StoreResponse | None:
    """The Store Instances Response Module in an answer's body, whatever its Content-Type says; None when the body
    is not one (empty, not JSON or not UTF-8, nested deeper than the JSON decoder goes, another document)."""
    if not content:
        return None
    try:
        return parse_store_response(json.loads(content))
    except (ValueError, RecursionError, NotAStoreResponse):
        return None
