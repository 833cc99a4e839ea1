"""The rest-json APIs boto3's ``medical-imaging`` client speaks (botocore model 2023-07-19): data stores and the
runtime image set operations. Shapes, field names and routes follow the model; timestamps are epoch seconds.
Operations the emulator does not implement answer 501 ``NotImplemented``.
"""

from __future__ import annotations

import gzip
import json
import re
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from airflow_hi_stow.core.healthimaging import DEFAULT_LOSSLESS_STORAGE_FORMAT, LOSSLESS_STORAGE_FORMATS
from airflow_hi_stow.core.healthimaging import stored_transfer_syntax as stored_syntax
from airflow_hi_stow.core.image_set_metadata import StoredInstance, image_set_metadata
from airflow_hi_stow.emulator.context import EmulatorContext
from airflow_hi_stow.emulator.dicom_parts import read_attributes
from airflow_hi_stow.emulator.errors import AwsError, invalid, not_found
from airflow_hi_stow.emulator.storage import Datastore, ImageSet
from airflow_hi_stow.emulator.web import aws_json

_ID = re.compile(r"[0-9a-z]{32}")
_NAME = re.compile(r"[A-Za-z0-9._/#-]{1,256}")
_TOKEN = re.compile(r"[A-Za-z0-9._-]{1,64}")
DEFAULT_MAX_RESULTS = 50
_EQUAL_ATTRIBUTES = {
    "DICOMPatientId": lambda image_set: image_set.tags.get("DICOMPatientId"),
    "DICOMAccessionNumber": lambda image_set: image_set.tags.get("DICOMAccessionNumber"),
    "DICOMStudyId": lambda image_set: image_set.tags.get("DICOMStudyId"),
    "DICOMStudyInstanceUID": lambda image_set: image_set.study_uid,
    "DICOMSeriesInstanceUID": lambda image_set: image_set.series_uid,
    "isPrimary": lambda image_set: image_set.is_primary,
}
_RANGE_ATTRIBUTES: dict[str, Callable[[ImageSet], Any]] = {
    "createdAt": lambda image_set: image_set.created_at,
    "updatedAt": lambda image_set: image_set.updated_at,
    "DICOMStudyDateAndTime": lambda image_set: (
        str(image_set.tags.get("DICOMStudyDate", "")) + str(image_set.tags.get("DICOMStudyTime", ""))
    ),
}
_NOT_IMPLEMENTED = {
    "CopyImageSet": ("POST", "/datastore/{datastore_id}/imageSet/{image_set_id}/copyImageSet"),
    "UpdateImageSetMetadata": ("POST", "/datastore/{datastore_id}/imageSet/{image_set_id}/updateImageSetMetadata"),
    "GetImageFrame": ("POST", "/datastore/{datastore_id}/imageSet/{image_set_id}/getImageFrame"),
    "StartDICOMImportJob": ("POST", "/startDICOMImportJob/datastore/{datastore_id}"),
    "GetDICOMImportJob": ("GET", "/getDICOMImportJob/datastore/{datastore_id}/job/{job_id}"),
    "ListDICOMImportJobs": ("GET", "/listDICOMImportJobs/datastore/{datastore_id}"),
    "ListTagsForResource": ("GET", "/tags/{arn:path}"),
    "TagResource": ("POST", "/tags/{arn:path}"),
    "UntagResource": ("DELETE", "/tags/{arn:path}"),
}


class ControlPlane:
    """Data stores and image sets, as boto3 manages them."""

    def __init__(self, context: EmulatorContext) -> None:
        self.context = context
        self.storage = context.storage

    def routes(self) -> list[Route]:
        operations: list[tuple[str, str, Callable[[Request], Any]]] = [
            ("POST", "/datastore", self.create_datastore),
            ("GET", "/datastore", self.list_datastores),
            ("GET", "/datastore/{datastore_id}", self.get_datastore),
            ("DELETE", "/datastore/{datastore_id}", self.delete_datastore),
            ("POST", "/datastore/{datastore_id}/searchImageSets", self.search_image_sets),
            ("POST", "/datastore/{datastore_id}/imageSet/{image_set_id}/getImageSet", self.get_image_set),
            (
                "POST",
                "/datastore/{datastore_id}/imageSet/{image_set_id}/getImageSetMetadata",
                self.get_image_set_metadata,
            ),
            (
                "POST",
                "/datastore/{datastore_id}/imageSet/{image_set_id}/listImageSetVersions",
                self.list_image_set_versions,
            ),
            ("POST", "/datastore/{datastore_id}/imageSet/{image_set_id}/deleteImageSet", self.delete_image_set),
        ]
        routes = [Route(path, endpoint, methods=[method]) for method, path, endpoint in operations]
        routes += [
            Route(path, _not_implemented(name), methods=[method]) for name, (method, path) in _NOT_IMPLEMENTED.items()
        ]
        return routes

    async def _call(self, request: Request, operation: str) -> Any:
        """Name the operation, verify the signature, and return the JSON body ({} when empty)."""
        request.state.operation = operation
        body = await self.context.signed_body(request)
        if not body.strip():
            return {}
        try:
            return json.loads(body)
        except ValueError:
            raise invalid("the request body is not JSON") from None

    async def create_datastore(self, request: Request) -> Response:
        data = _object(await self._call(request, "CreateDatastore"))
        name = data.get("datastoreName") or "datastore"
        token = data.get("clientToken")
        storage_format = data.get("losslessStorageFormat") or DEFAULT_LOSSLESS_STORAGE_FORMAT
        if not isinstance(name, str) or not _NAME.fullmatch(name):
            raise invalid("datastoreName must match [A-Za-z0-9._/#-]{1,256}")
        if not isinstance(token, str) or not _TOKEN.fullmatch(token):
            raise invalid("clientToken is required and must match [A-Za-z0-9._-]{1,64}")
        if storage_format not in LOSSLESS_STORAGE_FORMATS:
            raise invalid(f"losslessStorageFormat must be one of {', '.join(LOSSLESS_STORAGE_FORMATS)}")
        datastore = await run_in_threadpool(
            lambda: self.storage.create_datastore(
                name, storage_format=storage_format, kms_key_arn=data.get("kmsKeyArn"), client_token=token
            )
        )
        # HealthImaging answers CREATING and turns ACTIVE shortly after; the emulator's store is ACTIVE at once.
        return aws_json({"datastoreId": datastore.id, "datastoreStatus": "CREATING"})

    async def list_datastores(self, request: Request) -> Response:
        await self._call(request, "ListDatastores")
        status = request.query_params.get("datastoreStatus")
        datastores = [
            item for item in await run_in_threadpool(self.storage.list_datastores) if status in (None, item.status)
        ]
        page, token = _page(datastores, request)
        return aws_json({"datastoreSummaries": [self._datastore_json(item) for item in page], **token})

    async def get_datastore(self, request: Request) -> Response:
        await self._call(request, "GetDatastore")
        datastore_id = _checked_id(request, "datastore_id")
        datastore = await run_in_threadpool(self.storage.get_datastore, datastore_id)
        if datastore is None:
            raise not_found(f"Datastore {datastore_id}")
        return aws_json({"datastoreProperties": self._datastore_json(datastore)})

    async def delete_datastore(self, request: Request) -> Response:
        await self._call(request, "DeleteDatastore")
        datastore = await run_in_threadpool(self.storage.delete_datastore, _checked_id(request, "datastore_id"))
        return aws_json({"datastoreId": datastore.id, "datastoreStatus": "DELETING"})

    async def search_image_sets(self, request: Request) -> Response:
        criteria = _object(await self._call(request, "SearchImageSets"))
        datastore = await self._datastore(request)
        filters = _filters(criteria.get("filters") or [])
        sort = criteria.get("sort")
        field, order = "updatedAt", "DESC"
        if sort is not None:
            sort = _object(sort)
            field, order = str(sort.get("sortField")), str(sort.get("sortOrder"))
            if field not in ("updatedAt", "createdAt", "DICOMStudyDateAndTime") or order not in ("ASC", "DESC"):
                raise invalid("sort needs sortField updatedAt|createdAt|DICOMStudyDateAndTime and sortOrder ASC|DESC")
        # A search for one study reads that study's image sets only (the index's study column), not every one.
        study = _equal_value(criteria.get("filters") or [], "DICOMStudyInstanceUID")
        image_sets = await run_in_threadpool(self.storage.image_sets, datastore.id, study)
        found = [item for item in image_sets if all(check(item) for check in filters)]
        found.sort(key=lambda item: (_RANGE_ATTRIBUTES[field](item), item.id), reverse=order == "DESC")
        page, token = _page(found, request)
        counts = await run_in_threadpool(self.storage.study_counts, datastore.id, {item.study_uid for item in page})
        summaries = []
        for item in page:
            series, instances = counts.get(item.study_uid, (0, 0))
            tags = {
                **item.tags,
                "DICOMNumberOfStudyRelatedSeries": series,
                "DICOMNumberOfStudyRelatedInstances": instances,
            }
            summaries.append(
                {
                    "imageSetId": item.id,
                    "version": item.version,
                    "createdAt": item.created_at,
                    "updatedAt": item.updated_at,
                    "DICOMTags": tags,
                    "isPrimary": item.is_primary,
                }
            )
        document: dict[str, Any] = {"imageSetsMetadataSummaries": summaries, **token}
        if sort is not None:
            document["sort"] = {"sortOrder": order, "sortField": field}
        return aws_json(document)

    async def get_image_set(self, request: Request) -> Response:
        await self._call(request, "GetImageSet")
        datastore = await self._datastore(request)
        image_set = await run_in_threadpool(self.storage.image_set, datastore.id, _checked_id(request, "image_set_id"))
        versions = await run_in_threadpool(self.storage.image_set_versions, image_set.id)
        wanted = _version(request)
        version = next((item for item in versions if wanted in (None, item.version)), None)
        if version is None:
            raise not_found(f"Version {wanted} of image set {image_set.id}")
        document = {
            "datastoreId": datastore.id,
            "imageSetId": image_set.id,
            "versionId": str(version.version),
            "imageSetState": image_set.state,
            "imageSetWorkflowStatus": version.workflow_status if wanted is not None else image_set.workflow_status,
            "createdAt": image_set.created_at,
            "updatedAt": version.created_at,
            "imageSetArn": self.context.arn(datastore.id, image_set.id),
            "isPrimary": image_set.is_primary,
            "storageTier": "FREQUENT_ACCESS",
        }
        if image_set.deleted_at is not None:
            document["deletedAt"] = image_set.deleted_at
        return aws_json(document)

    async def get_image_set_metadata(self, request: Request) -> Response:
        await self._call(request, "GetImageSetMetadata")
        datastore = await self._datastore(request)
        image_set = await run_in_threadpool(self.storage.image_set, datastore.id, _checked_id(request, "image_set_id"))
        if image_set.state != "ACTIVE":
            raise not_found(f"Image set {image_set.id}")
        wanted = _version(request)
        if wanted is not None and wanted != image_set.version:
            raise invalid(f"the emulator keeps the metadata of the latest version ({image_set.version}) only")

        def build() -> bytes:
            instances = self.storage.instances(datastore.id, image_set_id=image_set.id)
            document = image_set_metadata(
                datastore.id,
                image_set.id,
                (
                    StoredInstance(
                        read_attributes(item.path), stored_syntax(item.transfer_syntax_uid, datastore.storage_format)
                    )
                    for item in instances
                ),
            )
            return gzip.compress(json.dumps(document).encode("utf-8"))

        blob = await run_in_threadpool(build)
        return Response(blob, media_type="application/json", headers={"Content-Encoding": "gzip"})

    async def list_image_set_versions(self, request: Request) -> Response:
        await self._call(request, "ListImageSetVersions")
        datastore = await self._datastore(request)
        image_set = await run_in_threadpool(self.storage.image_set, datastore.id, _checked_id(request, "image_set_id"))
        versions = await run_in_threadpool(self.storage.image_set_versions, image_set.id)
        page, token = _page(versions, request)
        return aws_json(
            {
                "imageSetPropertiesList": [
                    {
                        "imageSetId": image_set.id,
                        "versionId": str(item.version),
                        "imageSetState": image_set.state if item.version == image_set.version else "ACTIVE",
                        "ImageSetWorkflowStatus": item.workflow_status,
                        "createdAt": item.created_at,
                        "isPrimary": image_set.is_primary,
                    }
                    for item in page
                ],
                **token,
            }
        )

    async def delete_image_set(self, request: Request) -> Response:
        await self._call(request, "DeleteImageSet")
        datastore = await self._datastore(request)
        image_set_id = _checked_id(request, "image_set_id")
        await run_in_threadpool(self.storage.delete_image_set, datastore.id, image_set_id)
        return aws_json(
            {
                "datastoreId": datastore.id,
                "imageSetId": image_set_id,
                "imageSetState": "LOCKED",
                "imageSetWorkflowStatus": "DELETING",
            }
        )

    async def _datastore(self, request: Request) -> Datastore:
        return await run_in_threadpool(self.storage.active_datastore, _checked_id(request, "datastore_id"))

    def _datastore_json(self, datastore: Datastore) -> dict[str, Any]:
        document: dict[str, Any] = {
            "datastoreId": datastore.id,
            "datastoreName": datastore.name,
            "datastoreStatus": datastore.status,
            "losslessStorageFormat": datastore.storage_format,
            "datastoreArn": self.context.arn(datastore.id),
            "createdAt": datastore.created_at,
            "updatedAt": datastore.updated_at,
        }
        if datastore.kms_key_arn:
            document["kmsKeyArn"] = datastore.kms_key_arn
        return document


def _not_implemented(operation: str) -> Callable[[Request], Any]:
    async def endpoint(request: Request) -> Response:
        request.state.operation = operation
        raise AwsError("NotImplemented", f"the HealthImaging emulator does not implement {operation}")

    return endpoint


def _object(value: Any) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise invalid("expected a JSON object")
    return value


def _checked_id(request: Request, name: str) -> str:
    value = str(request.path_params[name])
    if not _ID.fullmatch(value):
        raise invalid(f"{'datastoreId' if name == 'datastore_id' else 'imageSetId'} must match [0-9a-z]{{32}}")
    return value


def _version(request: Request) -> int | None:
    value = request.query_params.get("version")
    if value is None:
        return None
    if not value.isdigit():
        raise invalid("version must be a number")
    return int(value)


def _page(items: Sequence[Any], request: Request) -> tuple[Sequence[Any], dict[str, str]]:
    """One page of ``items`` per maxResults/nextToken (the token is the offset of the next page)."""
    try:
        size = int(request.query_params.get("maxResults", DEFAULT_MAX_RESULTS))
        start = int(request.query_params.get("nextToken", "0"))
    except ValueError:
        raise invalid("maxResults and nextToken must be numbers") from None
    if not 1 <= size <= DEFAULT_MAX_RESULTS or start < 0:
        raise invalid(f"maxResults must be between 1 and {DEFAULT_MAX_RESULTS}")
    end = start + size
    return items[start:end], ({"nextToken": str(end)} if end < len(items) else {})


def _filters(filters: Any) -> list[Callable[[ImageSet], bool]]:
    """SearchImageSets filters as predicates: EQUAL on the DICOM identifiers and isPrimary, BETWEEN on dates."""
    if not isinstance(filters, list) or len(filters) > 2:
        raise invalid("searchCriteria.filters holds at most 2 filters")
    checks = []
    for search_filter in filters:
        search_filter = _object(search_filter)
        operator, values = search_filter.get("operator"), search_filter.get("values")
        if (
            not isinstance(values, list)
            or not values
            or not all(isinstance(v, Mapping) and len(v) == 1 for v in values)
        ):
            raise invalid("each filter needs 1 or 2 values, each naming one attribute")
        names = {next(iter(value)) for value in values}
        if len(names) != 1:
            raise invalid("the values of a filter must name the same attribute")
        name = names.pop()
        raw = [value[name] for value in values]
        if operator == "EQUAL" and len(raw) == 1 and name in _EQUAL_ATTRIBUTES:
            checks.append(_equal(_EQUAL_ATTRIBUTES[name], raw[0]))
        elif operator == "BETWEEN" and len(raw) == 2 and name in _RANGE_ATTRIBUTES:
            low, high = _range_value(name, raw[0], upper=False), _range_value(name, raw[1], upper=True)
            checks.append(_between(_RANGE_ATTRIBUTES[name], low, high))
        else:
            raise invalid(f"unsupported filter: {operator} on {name} with {len(raw)} value(s)")
    return checks


def _equal_value(filters: list[Any], name: str) -> str | None:
    """The value an EQUAL filter on ``name`` asks for (filters already checked by :func:`_filters`), or None."""
    for search_filter in filters:
        values = search_filter.get("values") or []
        if search_filter.get("operator") == "EQUAL" and len(values) == 1 and isinstance(values[0].get(name), str):
            return str(values[0][name])
    return None


def _equal(attribute: Callable[[ImageSet], Any], wanted: Any) -> Callable[[ImageSet], bool]:
    return lambda image_set: attribute(image_set) == wanted


def _between(attribute: Callable[[ImageSet], Any], low: Any, high: Any) -> Callable[[ImageSet], bool]:
    return lambda image_set: low <= attribute(image_set) <= high


def _range_value(name: str, value: Any, *, upper: bool) -> Any:
    if name == "DICOMStudyDateAndTime":
        value = _object(value)
        time = value.get("DICOMStudyTime") or ("999999" if upper else "")
        return str(value.get("DICOMStudyDate", "")) + str(time)
    if isinstance(value, int | float):
        return float(value)
    try:
        return datetime.fromisoformat(str(value)).timestamp()
    except ValueError:
        raise invalid(f"{name} must be a timestamp") from None
