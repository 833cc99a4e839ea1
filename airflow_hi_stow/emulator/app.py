"""The emulator's ASGI application: every plane on one URL (DICOMweb, control plane, runtime, admin)."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp

from airflow_hi_stow.emulator.admin import Admin
from airflow_hi_stow.emulator.context import EmulatorContext
from airflow_hi_stow.emulator.control_plane import ControlPlane
from airflow_hi_stow.emulator.dicomweb_read import DicomWebRead
from airflow_hi_stow.emulator.errors import AwsError
from airflow_hi_stow.emulator.stow import StowEndpoint
from airflow_hi_stow.emulator.web import FaultMiddleware, RequestContextMiddleware, error_response


def create_app(context: EmulatorContext) -> ASGIApp:
    stow = StowEndpoint(context)
    routes = [
        *Admin(context).routes(),
        Route("/datastore/{datastore_id}/studies", stow.handle, methods=["POST"]),
        Route("/datastore/{datastore_id}/studies/{study_uid}", stow.handle, methods=["POST"]),
        *DicomWebRead(context).routes(),
        *ControlPlane(context).routes(),
    ]
    app = Starlette(
        routes=routes,
        exception_handlers={AwsError: _aws_error, HTTPException: _http_error},
    )
    return RequestContextMiddleware(
        FaultMiddleware(app, context.faults, context.stats, context.drain_limit), context.stats
    )


async def _aws_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, AwsError)
    return error_response(exc)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 405:
        return error_response(AwsError("ValidationException", "method not allowed on this route"))
    return error_response(AwsError("ResourceNotFoundException", "the emulator has no route for this request"))
