"""Where stored studies landed: HealthImaging's STOW-RS response names no image set, so ask SearchImageSets."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

log = logging.getLogger(__name__)


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
            pages = client.get_paginator("search_image_sets").paginate(
                datastoreId=datastore_id,
                searchCriteria={"filters": [{"values": [{"DICOMStudyInstanceUID": study}], "operator": "EQUAL"}]},
            )
            for page in pages:
                for summary in page.get("imageSetsMetadataSummaries", []):
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
