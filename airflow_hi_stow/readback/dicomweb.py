"""Reading stored instances back through HealthImaging's DICOMweb WADO-RS (GetDICOMInstance), signed with SigV4:
what the demo uses to prove that no identifying value reached the data store."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import requests
from requests import PreparedRequest
from requests.auth import AuthBase

from airflow_hi_stow.core import sigv4
from airflow_hi_stow.transport.session import HttpSettings, new_session

ORIGINAL_TRANSFER_SYNTAX = 'application/dicom; transfer-syntax="*"'
"""GetDICOMInstance's Accept for the instance as it was stored, not transcoded."""


class SigV4ReadAuth(AuthBase):
    """Signs a request without a body (a DICOMweb GET) for ``medical-imaging``; credentials frozen per request."""

    def __init__(self, credentials: Callable[[], sigv4.Credentials], region: str) -> None:
        self.credentials = credentials
        self.region = region

    def __call__(self, request: PreparedRequest) -> PreparedRequest:
        headers = {"Accept": str(request.headers.get("Accept", "*/*")), "X-Amz-Content-SHA256": sigv4.EMPTY_SHA256}
        signature = sigv4.sign(self.credentials(), self.region, request.method or "GET", request.url or "", headers)
        request.headers.update(signature.headers)
        return request


@dataclass(frozen=True)
class RetrievedInstance:
    url: str
    data: bytes | None
    """The instance's bytes, or None when it could not be retrieved (see ``problem``)."""
    problem: str | None = None


def retrieve_instances(
    urls: Iterable[str], auth: AuthBase, *, http: HttpSettings | None = None, threads: int = 4
) -> Iterator[RetrievedInstance]:
    """Each instance of ``urls`` (the RetrieveURLs of a Store Instances Response), as stored."""
    settings = http or HttpSettings(max_connections=threads)
    session = new_session(settings)

    def get(url: str) -> RetrievedInstance:
        try:
            response = session.get(
                url, headers={"Accept": ORIGINAL_TRANSFER_SYNTAX}, auth=auth, **settings.request_options(url)
            )
        except requests.RequestException as exc:
            return RetrievedInstance(url, None, f"connection problem ({type(exc).__name__})")
        if response.status_code != 200:
            return RetrievedInstance(url, None, f"HTTP {response.status_code}")
        return RetrievedInstance(url, response.content)

    with session, ThreadPoolExecutor(threads, thread_name_prefix="hi-stow-retrieve") as pool:
        yield from pool.map(get, urls)
