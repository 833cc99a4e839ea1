"""ASGI glue shared by the emulator's endpoints: reading and discarding request bodies, AWS-style responses, the
request id and counters middleware, and the fault-injection middleware."""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator, Mapping
from typing import Any

from starlette.requests import ClientDisconnect
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from airflow_hi_stow.emulator.errors import AwsError
from airflow_hi_stow.emulator.faults import ADMIN_PREFIX, Fault, FaultInjector
from airflow_hi_stow.emulator.stats import Stats

log = logging.getLogger("airflow_hi_stow.emulator")

ABORT_EXTENSION = "hi_stow.abort"
"""A scope extension the emulator's server adds: ``{"abort": callable}`` closes the connection at once (fault
injection)."""
_ERROR_TYPES = {429: "ThrottlingException", 503: "ServiceUnavailableException"}
"""The error types of injected errors; other statuses (500, 502, 504) are InternalServerException."""


def header_map(raw_headers: list[tuple[bytes, bytes]]) -> dict[str, str]:
    """Header names lower-cased; repeated headers joined with commas (as SigV4 canonicalises them)."""
    headers: dict[str, str] = {}
    for name, value in raw_headers:
        key = name.decode("latin-1").lower()
        text = value.decode("latin-1")
        headers[key] = f"{headers[key]},{text}" if key in headers else text
    return headers


def declared_length(headers: Mapping[str, str], name: str = "content-length") -> int | None:
    value = headers.get(name)
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        raise AwsError("ValidationException", f"{name} is not a number") from None


def aws_json(document: Any) -> Response:
    return Response(json.dumps(document), media_type="application/json")


def error_response(error: AwsError, *, close: bool = False) -> Response:
    headers = {"x-amzn-ErrorType": error.error_type, **error.headers}
    if close:
        headers["Connection"] = "close"
    return Response(json.dumps({"message": error.message}), error.status, headers, media_type="application/json")


class BodyStream:
    """A request body read from ASGI ``receive`` in one or more passes; knows how much came and whether it ended."""

    def __init__(self, receive: Receive) -> None:
        self._receive = receive
        self.complete = False
        self.received = 0

    async def chunks(self) -> AsyncIterator[bytes]:
        while not self.complete:
            message = await self._receive()
            if message["type"] == "http.disconnect":
                raise ClientDisconnect()
            self.complete = not message.get("more_body", False)
            body = message.get("body", b"")
            self.received += len(body)
            if body:
                yield body

    async def settle(self, headers: Mapping[str, str], limit: int) -> bool:
        """Before answering early: read and discard the rest of the body, so that a client still sending it sees
        the answer instead of a reset connection. Returns True when the connection should be closed instead: the
        client waits for ``100 Continue`` (it will not send the body), or more than ``limit`` bytes remain."""
        if self.complete:
            return False
        if self.received == 0 and "100-continue" in headers.get("expect", "").lower():
            return True
        try:
            length = declared_length(headers)
        except AwsError:
            return True
        if length is not None and length - self.received > limit:
            return True
        drained = 0
        try:
            async for chunk in self.chunks():
                drained += len(chunk)
                if drained > limit:
                    return True
        except ClientDisconnect:
            return True
        return False


class RequestContextMiddleware:
    """Gives every request an id (``x-amzn-RequestId`` on its response); counts responses per status and per
    operation and logs one line per request (operation, status, id, time: never a path, header or body), except
    for the admin endpoints."""

    def __init__(self, app: ASGIApp, stats: Stats) -> None:
        self.app = app
        self.stats = stats

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = str(uuid.uuid4())
        state = scope.setdefault("state", {})
        state["request_id"] = request_id
        started = time.monotonic()
        counted = not scope["path"].startswith(ADMIN_PREFIX)

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {
                    **message,
                    "headers": [*message.get("headers", []), (b"x-amzn-requestid", request_id.encode())],
                }
                if counted:
                    operation = state.get("operation", "other")
                    self.stats.add("responses", message["status"])
                    self.stats.add("operations", operation)
                    log.info(
                        "%s %s -> %d (request %s, %.3f s)",
                        scope["method"],
                        operation,
                        message["status"],
                        request_id,
                        time.monotonic() - started,
                    )
            await send(message)

        await self.app(scope, receive, send_with_id)


class FaultMiddleware:
    """Injects the faults the FaultInjector decides on, before the request reaches the emulator's endpoints."""

    def __init__(self, app: ASGIApp, injector: FaultInjector, stats: Stats, drain_limit: int) -> None:
        self.app = app
        self.injector = injector
        self.stats = stats
        self.drain_limit = drain_limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self.injector.applies_to(scope["method"], scope["path"]):
            await self.app(scope, receive, send)
            return
        decision = self.injector.decide()
        if decision is None:
            await self.app(scope, receive, send)
            return
        self.stats.add("faults", decision.fault.value)
        scope.setdefault("state", {})["operation"] = f"fault:{decision.fault.value}"
        if decision.fault is Fault.THROTTLE:
            await self._answer(scope, receive, send, AwsError("ThrottlingException", "Rate exceeded"))
        elif decision.fault is Fault.ERROR:
            status = decision.status or 503
            error = AwsError(
                _ERROR_TYPES.get(status, "InternalServerException"),
                "injected fault: please retry",
                headers={"Retry-After": str(self.injector.config.retry_after)},
                status=status,
            )
            await self._answer(scope, receive, send, error)
        elif decision.fault is Fault.DROP:
            await self._drop(scope, receive, send)
        else:
            delay = self.injector.config.slow_seconds

            async def slow_send(message: Message) -> None:
                if message["type"] == "http.response.start":
                    await asyncio.sleep(delay)
                await send(message)

            await self.app(scope, receive, slow_send)

    async def _answer(self, scope: Scope, receive: Receive, send: Send, error: AwsError) -> None:
        close = await BodyStream(receive).settle(header_map(scope["headers"]), self.drain_limit)
        await error_response(error, close=close)(scope, receive, send)

    async def _drop(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Read about half of the declared body (or one piece of a chunked one), then close the connection."""
        headers = header_map(scope["headers"])
        half = (declared_length(headers) or 0) // 2
        stream = BodyStream(receive)
        try:
            async for _ in stream.chunks():
                if stream.received >= half:
                    break
        except ClientDisconnect:
            return
        abort = scope.get("extensions", {}).get(ABORT_EXTENSION, {}).get("abort")
        if abort is None:
            # Another server than the emulator's: a response it cannot complete makes it close the connection.
            await send({"type": "http.response.start", "status": 500, "headers": [(b"content-length", b"1")]})
            return
        abort()
        await receive()  # returns http.disconnect once the server has seen the connection go
