"""The emulator's own endpoints under ``/_emulator`` (no authentication; never affected by faults):
health, fault settings, the rotation of the accepted credentials, counters, and the image sets of a data store with
what made them non-primary."""

from __future__ import annotations

import html
import json
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from airflow_hi_stow.emulator.auth import EmulatorCredentials
from airflow_hi_stow.emulator.context import EmulatorContext
from airflow_hi_stow.emulator.errors import invalid
from airflow_hi_stow.emulator.faults import FaultConfig
from airflow_hi_stow.emulator.web import aws_json


class Admin:
    def __init__(self, context: EmulatorContext) -> None:
        self.context = context

    def routes(self) -> list[Route]:
        return [
            Route("/_emulator/health", self.health, methods=["GET"]),
            Route("/_emulator/faults", self.get_faults, methods=["GET"]),
            Route("/_emulator/faults", self.set_faults, methods=["POST", "PUT"]),
            Route("/_emulator/faults", self.clear_faults, methods=["DELETE"]),
            Route("/_emulator/credentials", self.rotate_credentials, methods=["POST"]),
            Route("/_emulator/stats", self.get_stats, methods=["GET"]),
            Route("/_emulator/stats", self.reset_stats, methods=["DELETE"]),
            Route("/_emulator/datastores/{datastore_id}/image-sets", self.image_sets, methods=["GET"]),
            Route("/_emulator/datastores/{datastore_id}", self.datastore_page, methods=["GET"]),
        ]

    async def health(self, request: Request) -> Response:
        config = self.context.config
        return aws_json(
            {
                "status": "ok",
                "datastoreId": self.context.default_datastore_id,
                "region": config.region,
                "auth": "sigv4" if config.credentials else "none",
            }
        )

    async def get_faults(self, request: Request) -> Response:
        return aws_json(self.context.faults.config.to_json())

    async def set_faults(self, request: Request) -> Response:
        """Replace the fault settings (the JSON names FaultConfig fields; absent ones take their defaults)."""
        try:
            config = FaultConfig.from_json(json.loads(await request.body() or b"{}"))
        except (ValueError, TypeError, AttributeError) as exc:
            raise invalid(f"bad fault settings: {exc}") from None
        self.context.faults.configure(config)
        return aws_json(config.to_json())

    async def clear_faults(self, request: Request) -> Response:
        self.context.faults.configure(FaultConfig())
        return aws_json(FaultConfig().to_json())

    async def rotate_credentials(self, request: Request) -> Response:
        """Accept other credentials from now on, as when an assumed-role session is replaced: the JSON may name
        ``access_key``, ``secret_key`` and ``session_token`` (absent ones are kept; ``session_token`` null drops
        it). Requests signed with the replaced ones get 403 ExpiredTokenException. The answer names no secret."""
        authenticator = self.context.authenticator
        if authenticator is None:
            raise invalid("authentication is off (--no-auth): there are no credentials to rotate")
        try:
            given = json.loads(await request.body() or b"{}")
            unknown = sorted(set(given) - {"access_key", "secret_key", "session_token"})
            if unknown:
                raise ValueError(f"unknown field(s): {', '.join(unknown)}")
            current = authenticator.credentials
            token = given.get("session_token", current.token)
            credentials = EmulatorCredentials(
                str(given.get("access_key") or current.access_key),
                str(given.get("secret_key") or current.secret_key),
                None if token is None else str(token),
            )
        except (ValueError, TypeError, AttributeError) as exc:
            raise invalid(f"bad credentials: {exc}") from None
        authenticator.rotate(credentials)
        return aws_json({"accessKeyId": credentials.access_key, "sessionToken": credentials.token is not None})

    async def get_stats(self, request: Request) -> Response:
        counts = await run_in_threadpool(self.context.storage.counts)
        return aws_json({**self.context.stats.snapshot(), "index": counts})

    async def reset_stats(self, request: Request) -> Response:
        self.context.stats.reset()
        return aws_json({})

    async def image_sets(self, request: Request) -> Response:
        return aws_json(await self._image_set_documents(request.path_params["datastore_id"]))

    async def datastore_page(self, request: Request) -> Response:
        """The data store as a page (what the task's console link opens against the emulator): its image sets,
        primary or not, and the grouping elements that made a set non-primary. UIDs only, no patient data."""
        datastore_id = request.path_params["datastore_id"]
        documents = await self._image_set_documents(datastore_id)
        rows = "".join(
            "<tr>"
            + "".join(
                f"<td>{html.escape(str(value))}</td>"
                for value in (
                    item["imageSetId"],
                    item["studyInstanceUID"],
                    item["seriesInstanceUID"],
                    "primary" if item["isPrimary"] else "non-primary",
                    ", ".join(item["conflicts"]),
                )
            )
            + "</tr>"
            for item in documents
        )
        primary = sum(item["isPrimary"] for item in documents)
        body = (
            f"<!doctype html><html><head><meta charset='utf-8'><title>Data store {html.escape(datastore_id)}</title>"
            "</head><body><h1>HealthImaging emulator</h1>"
            f"<p>Data store <code id='datastore'>{html.escape(datastore_id)}</code>: <span id='counts'>"
            f"{len(documents)} image set(s), {primary} primary, {len(documents) - primary} non-primary</span></p>"
            "<table border='1'><tr><th>Image set</th><th>Study</th><th>Series</th><th>Kind</th><th>Conflicts</th></tr>"
            f"{rows}</table></body></html>"
        )
        return Response(body, media_type="text/html; charset=utf-8")

    async def _image_set_documents(self, datastore_id: str) -> list[dict[str, Any]]:
        image_sets = await run_in_threadpool(self.context.storage.image_sets, datastore_id)
        return [
            {
                "imageSetId": item.id,
                "isPrimary": item.is_primary,
                "version": item.version,
                "studyInstanceUID": item.study_uid,
                "seriesInstanceUID": item.series_uid,
                "conflicts": list(item.conflicts),
            }
            for item in image_sets
        ]
