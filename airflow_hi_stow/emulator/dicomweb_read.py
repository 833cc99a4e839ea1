"""The DICOMweb read side over the primary image sets: QIDO-RS searches (studies, series, instances) and WADO-RS
retrieval of an instance's stored bytes and of series/instance metadata.

As HealthImaging documents for its DICOMweb reads, only primary image sets are searched and retrieved unless the
``imageSetId`` query parameter names another image set. Matching is exact, with ``*``/``?`` wildcards and
``from-to`` ranges for dates and times; ``limit`` and ``offset`` page the results.
"""

from __future__ import annotations

import fnmatch
import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from pydicom.datadict import tag_for_keyword
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import FileResponse, Response, StreamingResponse
from starlette.routing import Route

from airflow_hi_stow.core import dicom_json as dj
from airflow_hi_stow.core import multipart
from airflow_hi_stow.emulator.context import EmulatorContext
from airflow_hi_stow.emulator.dicom_parts import read_attributes
from airflow_hi_stow.emulator.errors import invalid, not_found
from airflow_hi_stow.emulator.storage import StoredInstance

STUDY_ATTRIBUTES = (
    "00080020",
    "00080030",
    "00080050",
    "00080090",
    "00081030",
    "00100010",
    "00100020",
    "00100030",
    "00100040",
    dj.STUDY_INSTANCE_UID,
    "00200010",
)
SERIES_ATTRIBUTES = (
    "00080021",
    "00080031",
    "00080060",
    "0008103E",
    dj.STUDY_INSTANCE_UID,
    dj.SERIES_INSTANCE_UID,
    "00200011",
)
INSTANCE_ATTRIBUTES = (
    "00080016",
    dj.SOP_INSTANCE_UID,
    "00080060",
    dj.STUDY_INSTANCE_UID,
    dj.SERIES_INSTANCE_UID,
    "00200013",
    "00280008",
    "00280010",
    "00280011",
)
_CONTROL_PARAMETERS = frozenset({"limit", "offset", "includefield", "fuzzymatching", "imagesetid"})
_RANGE_VRS = frozenset({"DA", "TM", "DT"})
_READ_SIZE = 1024 * 1024


class DicomWebRead:
    def __init__(self, context: EmulatorContext) -> None:
        self.context = context
        self.storage = context.storage

    def routes(self) -> list[Route]:
        base = "/datastore/{datastore_id}"
        study = base + "/studies/{study_uid}"
        series = study + "/series/{series_uid}"
        instance = series + "/instances/{sop_uid}"
        return [
            Route(base + "/studies", self.search_studies, methods=["GET"]),
            Route(base + "/series", self.search_series, methods=["GET"]),
            Route(base + "/instances", self.search_instances, methods=["GET"]),
            Route(study + "/series", self.search_series, methods=["GET"]),
            Route(study + "/instances", self.search_instances, methods=["GET"]),
            Route(series + "/instances", self.search_instances, methods=["GET"]),
            Route(series + "/metadata", self.series_metadata, methods=["GET"]),
            Route(instance, self.retrieve_instance, methods=["GET"]),
            Route(instance + "/metadata", self.instance_metadata, methods=["GET"]),
        ]

    async def _instances(self, request: Request, operation: str) -> tuple[str, list[StoredInstance]]:
        """Verify the request, then the matching instances (by path UIDs, imageSetId and query filters)."""
        request.state.operation = operation
        await self.context.signed_body(request)
        datastore = await run_in_threadpool(self.storage.active_datastore, request.path_params["datastore_id"])
        params = request.path_params
        found = await run_in_threadpool(
            lambda: self.storage.instances(
                datastore.id,
                image_set_id=request.query_params.get("imageSetId"),
                study_uid=params.get("study_uid"),
                series_uid=params.get("series_uid"),
                sop_uid=params.get("sop_uid"),
            )
        )
        checks = query_filters(request.query_params)
        return datastore.id, [item for item in found if all(check(item.attributes) for check in checks)]

    def _base(self, request: Request, datastore_id: str) -> str:
        return f"{str(request.base_url).rstrip('/')}/datastore/{datastore_id}/studies"

    async def search_studies(self, request: Request) -> Response:
        datastore_id, found = await self._instances(request, "SearchDICOMStudies")
        base = self._base(request, datastore_id)
        results = []
        for study_uid, members in _grouped(found, lambda item: item.study_uid).items():
            result = _pick(members[-1].attributes, STUDY_ATTRIBUTES)
            modalities = sorted({str(v) for item in members for v in dj.values(item.attributes, "00080060")})
            result["00080061"] = dj.element("CS", *modalities)
            result["00201206"] = dj.element("IS", len({item.series_uid for item in members}))
            result["00201208"] = dj.element("IS", len(members))
            result[dj.RETRIEVE_URL] = dj.element("UR", f"{base}/{study_uid}")
            results.append(result)
        return _dicom_json(_paged(results, request))

    async def search_series(self, request: Request) -> Response:
        datastore_id, found = await self._instances(request, "SearchDICOMSeries")
        base = self._base(request, datastore_id)
        results = []
        for (study_uid, series_uid), members in _grouped(found, lambda item: (item.study_uid, item.series_uid)).items():
            result = _pick(members[-1].attributes, SERIES_ATTRIBUTES)
            result["00201209"] = dj.element("IS", len(members))
            result[dj.RETRIEVE_URL] = dj.element("UR", f"{base}/{study_uid}/series/{series_uid}")
            results.append(result)
        return _dicom_json(_paged(results, request))

    async def search_instances(self, request: Request) -> Response:
        datastore_id, found = await self._instances(request, "SearchDICOMInstances")
        base = self._base(request, datastore_id)
        results = []
        for item in found:
            result = _pick(item.attributes, INSTANCE_ATTRIBUTES)
            result[dj.RETRIEVE_URL] = dj.element(
                "UR", f"{base}/{item.study_uid}/series/{item.series_uid}/instances/{item.sop_uid}"
            )
            results.append(result)
        return _dicom_json(_paged(results, request))

    async def series_metadata(self, request: Request) -> Response:
        _, found = await self._instances(request, "GetDICOMSeriesMetadata")
        if not found:
            raise not_found("Series")
        return _dicom_json(await run_in_threadpool(lambda: [read_attributes(item.path) for item in found]))

    async def instance_metadata(self, request: Request) -> Response:
        _, found = await self._instances(request, "GetDICOMInstanceMetadata")
        if not found:
            raise not_found("Instance")
        return _dicom_json([await run_in_threadpool(read_attributes, found[-1].path)])

    async def retrieve_instance(self, request: Request) -> Response:
        """The instance's bytes exactly as stored: ``application/dicom``, or one part of ``multipart/related``
        when the Accept header asks for it."""
        _, found = await self._instances(request, "GetDICOMInstance")
        if not found:
            raise not_found("Instance")
        path = found[-1].path
        if "multipart/related" not in request.headers.get("accept", ""):
            return FileResponse(path, media_type=multipart.DICOM_MEDIA_TYPE)
        boundary = multipart.new_boundary()

        def body() -> Iterator[bytes]:
            yield multipart.part_opening(boundary)
            with path.open("rb") as stream:
                while block := stream.read(_READ_SIZE):
                    yield block
            yield multipart.PART_CLOSING + multipart.closing_delimiter(boundary)

        return StreamingResponse(body(), media_type=multipart.multipart_content_type(boundary))


def query_filters(params: Mapping[str, str]) -> list[Callable[[Mapping[str, Any]], bool]]:
    """QIDO-RS matching parameters (keyword or tag) as predicates over an instance's DICOM JSON."""
    checks = []
    for name, wanted in params.items():
        if name.lower() in _CONTROL_PARAMETERS:
            continue
        tag = name.upper() if len(name) == 8 and all(c in "0123456789abcdefABCDEF" for c in name) else None
        if tag is None:
            number = tag_for_keyword(name)
            if number is None:
                raise invalid(f"unknown QIDO-RS matching attribute {name!r}")
            tag = f"{number:08X}"
        checks.append(_matcher(tag, wanted))
    return checks


def _matcher(tag: str, wanted: str) -> Callable[[Mapping[str, Any]], bool]:
    def check(attributes: Mapping[str, Any]) -> bool:
        element = attributes.get(tag)
        if not isinstance(element, Mapping):
            return not wanted
        texts = [
            str(value.get("Alphabetic", "")) if isinstance(value, Mapping) else str(value)
            for value in dj.values(attributes, tag)
        ]
        if element.get("vr") in _RANGE_VRS and "-" in wanted:
            low, _, high = wanted.partition("-")
            return any((not low or text >= low) and (not high or text <= high) for text in texts)
        if element.get("vr") == "UI" and "," in wanted:
            return any(text in wanted.split(",") for text in texts)
        if "*" in wanted or "?" in wanted:
            return any(fnmatch.fnmatchcase(text, wanted) for text in texts)
        return wanted in texts

    return check


def _grouped(items: Sequence[StoredInstance], key: Callable[[StoredInstance], Any]) -> dict[Any, list[StoredInstance]]:
    groups: dict[Any, list[StoredInstance]] = {}
    for item in items:
        groups.setdefault(key(item), []).append(item)
    return groups


def _pick(attributes: Mapping[str, Any], tags: Sequence[str]) -> dict[str, Any]:
    return {tag: attributes[tag] for tag in tags if tag in attributes}


def _paged(results: list[dict[str, Any]], request: Request) -> list[dict[str, Any]]:
    try:
        offset = int(request.query_params.get("offset", "0"))
        limit = int(request.query_params.get("limit", str(len(results))))
    except ValueError:
        raise invalid("limit and offset must be numbers") from None
    return results[offset : offset + limit]


def _dicom_json(document: Any) -> Response:
    return Response(json.dumps(document), media_type=multipart.DICOM_JSON_MEDIA_TYPE)
