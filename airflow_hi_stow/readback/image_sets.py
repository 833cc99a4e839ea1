"""Where stored studies landed: HealthImaging's STOW-RS response names no image set, so ask SearchImageSets."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from airflow_hi_stow.core.image_set_metadata import grouping_from_summary_tags
from airflow_hi_stow.core.image_sets import ExistingImageSet, place_instance

log = logging.getLogger(__name__)


def search_study(client: Any, datastore_id: str, study_uid: str) -> list[dict[str, Any]]:
    """The SearchImageSets summaries of one study, every page."""
    pages = client.get_paginator("search_image_sets").paginate(
        datastoreId=datastore_id,
        searchCriteria={"filters": [{"values": [{"DICOMStudyInstanceUID": study_uid}], "operator": "EQUAL"}]},
    )
    return [summary for page in pages for summary in page.get("imageSetsMetadataSummaries", [])]


def find_image_sets(client: Any, datastore_id: str, study_uids: Iterable[str], *, limit: int) -> dict[str, Any]:
    """``{"image_sets": {study UID: [image set id, ...]}, "non_primary_image_sets": [id, ...]}`` for at most
    ``limit`` studies (``image_sets_truncated`` when there were more), through a boto3 ``medical-imaging`` client.

    Best effort: a failing search (e.g. no SearchImageSets permission) is logged and leaves the result empty; the
    import itself is unaffected.
    """
    studies = sorted(study_uids)
    found: dict[str, list[str]] = {}
    non_primary: list[str] = []
    try:
        for study in studies[:limit]:
            for summary in search_study(client, datastore_id, study):
                found.setdefault(study, []).append(summary["imageSetId"])
                if summary.get("isPrimary") is False:
                    non_primary.append(summary["imageSetId"])
    except (ClientError, BotoCoreError) as exc:
        code = exc.response.get("Error", {}).get("Code") if isinstance(exc, ClientError) else type(exc).__name__
        log.warning("could not look up the image sets of the stored studies (%s); the import is unaffected", code)
        return {}
    result: dict[str, Any] = {"image_sets": found, "non_primary_image_sets": non_primary}
    if len(studies) > limit:
        result["image_sets_truncated"] = True
    return result


@dataclass(frozen=True)
class ImageSetInfo:
    """An image set of a stored study, as HealthImaging reports it."""

    image_set_id: str
    study_instance_uid: str
    series_instance_uid: str
    is_primary: bool
    version: str
    conflicts: tuple[str, ...] = ()
    """For a non-primary image set: the grouping elements whose values differ from the primary image set of its
    series (or, for a series without one, from the study's other primary image sets)."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def describe_image_sets(client: Any, datastore_id: str, study_uids: Iterable[str]) -> list[ImageSetInfo]:
    """Every image set of the given studies (SearchImageSets), with each non-primary one checked with GetImageSet
    and explained by the grouping elements that conflict. Raises botocore errors (e.g. a missing permission)."""
    described: list[ImageSetInfo] = []
    for study in sorted(set(study_uids)):
        summaries = search_study(client, datastore_id, study)
        primaries = [
            ExistingImageSet(
                summary["imageSetId"],
                str(summary.get("DICOMTags", {}).get("DICOMSeriesInstanceUID", "")),
                True,
                grouping_from_summary_tags(summary.get("DICOMTags", {})),
            )
            for summary in summaries
            if summary.get("isPrimary", True)
        ]
        for summary in summaries:
            tags = summary.get("DICOMTags", {})
            is_primary = bool(summary.get("isPrimary", True))
            version = str(summary.get("version", ""))
            conflicts: tuple[str, ...] = ()
            if not is_primary:
                image_set = client.get_image_set(datastoreId=datastore_id, imageSetId=summary["imageSetId"])
                is_primary, version = bool(image_set.get("isPrimary", False)), str(image_set["versionId"])
                conflicts = place_instance(grouping_from_summary_tags(tags), primaries).conflicts
            described.append(
                ImageSetInfo(
                    image_set_id=summary["imageSetId"],
                    study_instance_uid=study,
                    series_instance_uid=str(tags.get("DICOMSeriesInstanceUID", "")),
                    is_primary=is_primary,
                    version=version,
                    conflicts=conflicts,
                )
            )
    return described
