"""DICOM P10 files in S3, read through a boto3 S3 client: streamed, never copied whole to local disk."""

from __future__ import annotations

import errno
import fnmatch
import io
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, BinaryIO, cast

from botocore.exceptions import BotoCoreError, ClientError

S3Client = Any
"""A boto3 ``s3`` client (e.g. from the amazon provider's ``S3Hook(aws_conn_id=...).get_conn()``)."""

_GLOB_CHARACTERS = "*?["


def is_s3_uri(text: str) -> bool:
    return text.startswith("s3://")


def split_s3_uri(uri: str) -> tuple[str, str]:
    """``s3://bucket/some/key`` -> ``("bucket", "some/key")``; raises ValueError for anything else."""
    if not is_s3_uri(uri):
        raise ValueError(f"{uri}: not an s3:// URI")
    bucket, _, key = uri[len("s3://") :].partition("/")
    if not bucket:
        raise ValueError(f"{uri}: no bucket in the S3 URI")
    return bucket, key


def _os_error(exc: Exception) -> OSError:
    """An S3 failure as the OSError that the readers of an InstanceFile expect; no request details."""
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        code = error.get("Code") or exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        text = "changed in S3 since it was listed" if code in ("PreconditionFailed", "412") else f"S3 error {code}"
    else:
        text = f"S3 read failed ({type(exc).__name__})"
    return OSError(errno.EIO, text)


@dataclass(frozen=True)
class S3Object:
    """One S3 object, as an :class:`~airflow_hi_stow.sources.instances.InstanceFile`.

    Every read asks for the ETag seen when the object was listed (``IfMatch``), so what is sent is exactly that
    version of the object, and the ETag identifies the content in the resume ledger.
    """

    client: S3Client
    bucket: str
    key: str
    size: int
    etag: str

    @property
    def name(self) -> str:
        return f"s3://{self.bucket}/{self.key}"

    def _get(self, byte_range: str | None = None) -> Any:
        extra = {"Range": byte_range} if byte_range else {}
        try:
            return self.client.get_object(Bucket=self.bucket, Key=self.key, IfMatch=self.etag, **extra)["Body"]
        except (ClientError, BotoCoreError) as exc:
            raise _os_error(exc) from None

    def open(self) -> BinaryIO:
        return cast(BinaryIO, io.BufferedReader(_StreamingReader(self._get()), buffer_size=1024 * 1024))

    def read_range(self, start: int, end: int) -> bytes:
        """Bytes ``start`` to ``end - 1``, in one ranged GET."""
        if end <= start:
            return b""
        body = self._get(f"bytes={start}-{end - 1}")
        try:
            return bytes(body.read())
        except BotoCoreError as exc:
            raise _os_error(exc) from None
        finally:
            body.close()


class _StreamingReader(io.RawIOBase):
    """A botocore StreamingBody whose read errors are OSErrors."""

    def __init__(self, body: Any) -> None:
        self.body = body

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        try:
            return int(self.body.readinto(buffer))
        except BotoCoreError as exc:
            raise _os_error(exc) from None

    def close(self) -> None:
        if not self.closed:
            self.body.close()
        super().close()


def read_s3_object(client: S3Client, bucket: str, key: str) -> bytes:
    """A whole (small) object; raises OSError."""
    try:
        body = client.get_object(Bucket=bucket, Key=key)["Body"]
        with body:
            return bytes(body.read())
    except (ClientError, BotoCoreError) as exc:
        raise _os_error(exc) from None


def delete_s3_object(client: S3Client, bucket: str, key: str) -> None:
    """Delete one object (nothing happens when there is none); raises OSError."""
    try:
        client.delete_object(Bucket=bucket, Key=key)
    except (ClientError, BotoCoreError) as exc:
        raise _os_error(exc) from None


def list_s3(client: S3Client, uri: str) -> Iterator[S3Object]:
    """The objects a URI names: one object (an exact key), every object under a prefix (``s3://b/dir`` or
    ``s3://b/dir/``), or the keys matching a glob (``s3://b/dir/*.dcm``; ``*`` also crosses ``/``). Keys ending in
    ``/`` (folder markers) are skipped. Raises OSError when the bucket cannot be listed."""
    bucket, key = split_s3_uri(uri)
    glob_at = min((key.find(c) for c in _GLOB_CHARACTERS if c in key), default=-1)
    try:
        if glob_at >= 0:
            pattern = key
            yield from (o for o in _list_prefix(client, bucket, key[:glob_at]) if fnmatch.fnmatchcase(o.key, pattern))
            return
        if key and not key.endswith("/"):
            exact = next(_list_prefix(client, bucket, key, page_size=1), None)
            if exact is not None and exact.key == key:
                yield exact
                return
            key += "/"
        yield from _list_prefix(client, bucket, key)
    except (ClientError, BotoCoreError) as exc:
        raise _os_error(exc) from None


def _list_prefix(client: S3Client, bucket: str, prefix: str, page_size: int | None = None) -> Iterator[S3Object]:
    config = {"PageSize": page_size, "MaxItems": page_size} if page_size else {}
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix, PaginationConfig=config)
    for page in pages:
        for item in page.get("Contents", []):
            if not item["Key"].endswith("/"):
                yield S3Object(client, bucket, item["Key"], int(item["Size"]), str(item["ETag"]))
