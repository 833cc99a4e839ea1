"""StoreDICOM and StoreDICOMStudy: ``POST /datastore/{datastoreId}/studies[/{StudyInstanceUID}]``.

The request is checked before its body is read (data store, signature headers, declared size, media type); the
body then streams into temporary files (see :mod:`.body`), each part is read as DICOM, and the instances that pass
are stored. Per instance failures carry PS3.18 reasons: C000 (not DICOM, or no usable identifiers), A900 (another
study than the StoreDICOMStudy URL's), C122 (transfer syntax HealthImaging does not import). The status is 200
when everything was stored, 202 for a mix, 400 when nothing could be read, 409 when nothing was stored for
another reason (PS3.18 §10.5.3; what HealthImaging itself answers in each case is not publicly documented).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import TypeVar

import anyio.to_thread
from anyio import CapacityLimiter
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response

from airflow_hi_stow.core.healthimaging import accepted_transfer_syntaxes
from airflow_hi_stow.core.multipart import DICOM_JSON_MEDIA_TYPE, DICOM_MEDIA_TYPE, parse_media_type
from airflow_hi_stow.core.store_response import FailedInstance, ReferencedInstance, build_store_response
from airflow_hi_stow.core.uids import matches_healthimaging_pattern
from airflow_hi_stow.emulator.aws_chunked import is_aws_chunked
from airflow_hi_stow.emulator.body import MultipartSink, ReceivedPart, RequestBody, SinglePartSink
from airflow_hi_stow.emulator.context import EmulatorContext
from airflow_hi_stow.emulator.dicom_parts import CANNOT_UNDERSTAND, ParsedInstance, PartFailure, parse_part
from airflow_hi_stow.emulator.errors import AwsError, invalid
from airflow_hi_stow.emulator.storage import Datastore
from airflow_hi_stow.emulator.web import BodyStream, declared_length, error_response, header_map

log = logging.getLogger("airflow_hi_stow.emulator")

STUDY_MISMATCH = 0xA900
TRANSFER_SYNTAX_NOT_SUPPORTED = 0xC122
FEED_BYTES = 1024 * 1024
CLIENT_CLOSED = 499
"""Counted (never sent) when the client went away during the body, as nginx logs it."""


_T = TypeVar("_T")


@dataclass(frozen=True)
class StoreOutcome:
    status: int
    module: dict[str, object]


class StowEndpoint:
    """The Starlette endpoint of both actions."""

    def __init__(self, context: EmulatorContext) -> None:
        self.context = context
        self.accepted = accepted_transfer_syntaxes(verified_only=context.config.verified_transfer_syntaxes_only)
        self.worker = CapacityLimiter(1)
        """Bodies are taken in and stored by one worker thread at a time: the work is Python, so parallel threads
        would only contend for the GIL, and more connections would make every request slower."""

    async def _work(self, function: Callable[..., _T], *args: object) -> _T:
        return await anyio.to_thread.run_sync(partial(function, *args), limiter=self.worker)

    async def handle(self, request: Request) -> Response:
        study_uid = request.path_params.get("study_uid")
        request.state.operation = "StoreDICOMStudy" if study_uid else "StoreDICOM"
        headers = header_map(request.scope["headers"])
        stream = BodyStream(request.receive)
        try:
            datastore = await run_in_threadpool(
                self.context.storage.active_datastore, request.path_params["datastore_id"]
            )
            body = self._prepare(request, headers, study_uid)
        except AwsError as error:
            return await self._refuse(error, stream, headers)
        try:
            pending: list[bytes] = []
            size = 0
            async for chunk in stream.chunks():
                # Pieces are handed to a worker thread about a megabyte at a time, not one hop per piece.
                pending.append(chunk)
                size += len(chunk)
                if size >= FEED_BYTES:
                    await self._work(body.feed_all, pending)
                    pending, size = [], 0
            parts = await self._work(body.finish, pending)
        except AwsError as error:
            await run_in_threadpool(body.discard)
            return await self._refuse(error, stream, headers)
        except ClientDisconnect:
            await run_in_threadpool(body.discard)
            return Response(status_code=CLIENT_CLOSED)
        except BaseException:
            await run_in_threadpool(body.discard)
            raise
        self.context.stats.add("bytes", "received", body.length)

        def store_and_clean() -> StoreOutcome:
            try:
                return self.store(datastore, parts, study_uid, str(request.base_url))
            finally:
                body.discard()

        outcome = await self._work(store_and_clean)
        return Response(json.dumps(outcome.module), outcome.status, media_type=DICOM_JSON_MEDIA_TYPE)

    async def _refuse(self, error: AwsError, stream: BodyStream, headers: dict[str, str]) -> Response:
        try:
            close = await stream.settle(headers, self.context.drain_limit)
        except ClientDisconnect:
            close = True
        return error_response(error, close=close)

    def _prepare(self, request: Request, headers: dict[str, str], study_uid: str | None) -> RequestBody:
        """Everything checked before the body is read; the body's receiver."""
        if study_uid is not None and not matches_healthimaging_pattern(study_uid):
            raise invalid("the StudyInstanceUID in the URL is not a valid DICOM UID")
        signed = self.context.authenticate(request, headers)
        decoded = declared_length(headers, "x-amz-decoded-content-length")
        length = decoded if decoded is not None else declared_length(headers)
        limit = self.context.config.max_request_bytes
        if length is not None and length > limit:
            raise AwsError(
                "RequestEntityTooLargeException",
                f"the request body is {length} bytes; StoreDICOM accepts up to {limit} bytes (1 GB) per request",
            )
        directory = self.context.storage.tmp / request.state.request_id
        media_type, params = parse_media_type(headers.get("content-type", ""))
        sink: SinglePartSink | MultipartSink
        if media_type == DICOM_MEDIA_TYPE:
            sink = SinglePartSink(directory)
        elif media_type == "multipart/related":
            part_type = params.get("type")
            if part_type is not None and part_type.lower() != DICOM_MEDIA_TYPE:
                raise AwsError("UnsupportedMediaTypeException", "multipart/related parts must be application/dicom")
            boundary = params.get("boundary")
            if not boundary:
                raise invalid("multipart/related without a boundary parameter")
            sink = MultipartSink(directory, boundary)
        else:
            raise AwsError(
                "UnsupportedMediaTypeException",
                'StoreDICOM takes application/dicom or multipart/related; type="application/dicom"',
            )
        return RequestBody(
            sink,
            signed=signed,
            aws_chunked=is_aws_chunked(headers),
            declared_length=decoded,
            max_bytes=limit,
        )

    def store(
        self, datastore: Datastore, parts: Sequence[ReceivedPart], study_uid: str | None, base_url: str
    ) -> StoreOutcome:
        """Read every part, store those that pass, and build the Store Instances Response Module."""
        if not parts:
            raise invalid("the request holds no instance")
        accepted: list[ParsedInstance] = []
        failures: list[PartFailure] = []
        for number, part in enumerate(parts, 1):
            outcome = self._check(parse_part(part), study_uid)
            if isinstance(outcome, PartFailure):
                log.info("part %d not stored: %04X %s", number, outcome.reason, outcome.detail)
                failures.append(outcome)
            else:
                accepted.append(outcome)
        placed = self.context.storage.store_instances(datastore, accepted)
        stats = self.context.stats
        stats.add("instances", "received", len(parts))
        stats.add("instances", "stored", len(placed))
        stats.add("instances", "failed", len(failures))
        studies_url = f"{base_url.rstrip('/')}/datastore/{datastore.id}/studies"
        referenced = [
            ReferencedInstance(
                instance.sop_instance_uid,
                instance.sop_class_uid,
                f"{studies_url}/{instance.study_instance_uid}/series/{instance.series_instance_uid}"
                f"/instances/{instance.sop_instance_uid}"
                + ("" if where.is_primary else f"?imageSetId={where.image_set_id}"),
            )
            for instance, where in zip(accepted, placed, strict=True)
        ]
        studies = {instance.study_instance_uid for instance in accepted}
        module = build_store_response(
            retrieve_url=f"{studies_url}/{studies.pop()}" if len(studies) == 1 else None,
            referenced=referenced,
            failed=[
                FailedInstance(item.sop_instance_uid, item.sop_class_uid, item.reason)
                for item in failures
                if item.sop_instance_uid
            ],
            other_failures=[item.reason for item in failures if not item.sop_instance_uid],
        )
        return StoreOutcome(store_status(len(accepted), failures), module)

    def _check(self, parsed: ParsedInstance | PartFailure, study_uid: str | None) -> ParsedInstance | PartFailure:
        if isinstance(parsed, PartFailure):
            return parsed
        if study_uid is not None and parsed.study_instance_uid != study_uid:
            return PartFailure(
                parsed.part,
                STUDY_MISMATCH,
                "StudyInstanceUID differs from the StoreDICOMStudy URL's",
                parsed.sop_instance_uid,
                parsed.sop_class_uid,
            )
        if parsed.transfer_syntax_uid not in self.accepted:
            return PartFailure(
                parsed.part,
                TRANSFER_SYNTAX_NOT_SUPPORTED,
                f"transfer syntax {parsed.transfer_syntax_uid} is not imported by HealthImaging",
                parsed.sop_instance_uid,
                parsed.sop_class_uid,
            )
        return parsed


def store_status(stored: int, failures: Sequence[PartFailure]) -> int:
    """PS3.18 §10.5.3: 200 all stored, 202 some, 400 none because nothing could be read, 409 none for a conflict."""
    if not failures:
        return 200
    if stored:
        return 202
    return 400 if all(item.reason == CANNOT_UNDERSTAND for item in failures) else 409
