"""Where worker processes write a step's output files: a local directory, in place, or an S3 prefix through a local
staging directory whose files this process uploads (worker processes cannot take a boto3 client).

Workers write each file under :attr:`FileTarget.local_root`; once it is complete, this process calls
:meth:`FileTarget.publish` with its relative path, which makes it available at the target (an upload, in threads,
that removes the staged copy) and returns its URI. Leaving the ``with`` block waits for the uploads; an upload that
failed raises OSError then, naming the target and the S3 error code, never the file.
"""

from __future__ import annotations

import itertools
import os
import posixpath
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from types import TracebackType
from typing import Protocol, Self

from botocore.exceptions import BotoCoreError, ClientError

from airflow_hi_stow.sources.s3 import S3Client, is_s3_uri, split_s3_uri

DEFAULT_UPLOAD_THREADS = 8
DEFAULT_MAX_PENDING = 64
"""Staged files waiting for their upload at most; publishing more waits (so staging stays small)."""
_CONTENT_TYPES = {".dcm": "application/dicom", ".json": "application/json"}


class FileTarget(Protocol):
    @property
    def uri(self) -> str: ...

    @property
    def local_root(self) -> str:
        """The local directory that workers write into."""
        ...

    def publish(self, relative: str) -> str:
        """Make the file written at ``relative`` available at the target; returns its URI."""
        ...

    def publish_if_written(self, relative: str) -> str | None:
        """``publish`` when a file was written at ``relative``; None when none was."""
        ...

    def __enter__(self) -> Self: ...

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None: ...


class LocalTarget:
    """A local directory, written in place."""

    def __init__(self, root: str) -> None:
        self.root = root

    @property
    def uri(self) -> str:
        return self.root

    @property
    def local_root(self) -> str:
        return self.root

    def publish(self, relative: str) -> str:
        return os.path.join(self.root, relative)

    def publish_if_written(self, relative: str) -> str | None:
        path = self.publish(relative)
        return path if os.path.exists(path) else None

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        return None


class S3Target:
    """An S3 prefix; files are staged under ``staging`` and uploaded by this process, then removed locally."""

    def __init__(
        self,
        client: S3Client,
        uri: str,
        staging: Path,
        *,
        threads: int = DEFAULT_UPLOAD_THREADS,
        max_pending: int = DEFAULT_MAX_PENDING,
    ) -> None:
        self.client = client
        self.bucket, prefix = split_s3_uri(uri)
        self.prefix = prefix.strip("/")
        self.staging = staging
        self.staging.mkdir(parents=True, exist_ok=True)
        self._pool = ThreadPoolExecutor(threads, thread_name_prefix="hi-stow-upload")
        self._slots = threading.BoundedSemaphore(max_pending)
        self._lock = threading.Lock()
        self._uploads: dict[str, Future[None]] = {}  # in flight, by key
        self._numbers = itertools.count()
        self.failures: list[str] = []
        """The S3 error code (or exception class) of each upload that failed."""

    @property
    def uri(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}" if self.prefix else f"s3://{self.bucket}"

    @property
    def local_root(self) -> str:
        return str(self.staging)

    def _key(self, relative: str) -> str:
        return f"{self.prefix}/{relative}" if self.prefix else relative

    def publish(self, relative: str) -> str:
        """Uploads what was last written at ``relative``. A path written again (two inputs with one SOP Instance
        UID) is uploaded again after the earlier upload, so the last write wins, as in a local directory."""
        key = self._key(relative)
        with self._lock:
            earlier = self._uploads.get(key)
        if earlier is not None:
            earlier.result()
        upload = self.staging / f".upload-{next(self._numbers)}"
        try:
            os.replace(self.staging / relative, upload)  # the workers may write that path again meanwhile
        except FileNotFoundError:  # an earlier publish of this path took the later write along
            return f"s3://{self.bucket}/{key}"
        self._slots.acquire()
        future = self._pool.submit(self._upload, upload, key)
        with self._lock:
            self._uploads[key] = future
        future.add_done_callback(lambda done: self._done(key, done))
        return f"s3://{self.bucket}/{key}"

    def publish_if_written(self, relative: str) -> str | None:
        return self.publish(relative) if (self.staging / relative).exists() else None

    def _done(self, key: str, future: Future[None]) -> None:
        with self._lock:
            if self._uploads.get(key) is future:
                del self._uploads[key]
        self._slots.release()

    def _upload(self, path: Path, key: str) -> None:
        content_type = _CONTENT_TYPES.get(posixpath.splitext(key)[1])
        try:
            self.client.upload_file(
                str(path), self.bucket, key, ExtraArgs={"ContentType": content_type} if content_type else None
            )
        except Exception as exc:  # boto3's transfer manager wraps ClientError in S3UploadFailedError
            with self._lock:
                self.failures.append(_describe(exc))
            return
        path.unlink()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self._pool.shutdown(wait=True)
        if kind is None and self.failures:
            raise OSError(
                f"{len(self.failures)} file(s) could not be written to {self.uri} ({self.failures[0]}); "
                "a retry writes them again"
            )


def _describe(exc: BaseException) -> str:
    """The S3 error code of an upload failure (or the exception's class); never its message, which names the file."""
    for cause in (exc, exc.__cause__, exc.__context__):
        if isinstance(cause, ClientError):
            return str(cause.response.get("Error", {}).get("Code", "ClientError"))
        if isinstance(cause, BotoCoreError):
            return type(cause).__name__
    return type(exc).__name__


def open_target(uri: str, staging: Path, s3_client: Callable[[], S3Client] | None) -> FileTarget:
    """The target at ``uri``: an ``s3://bucket/prefix`` (staged under ``staging``) or a local directory."""
    if is_s3_uri(uri):
        if s3_client is None:
            raise ValueError(f"{uri}: an s3:// target needs an S3 connection")
        return S3Target(s3_client(), uri, staging)
    return LocalTarget(uri)


def within(inner: str, outer: str) -> bool:
    """Whether ``inner`` is ``outer`` or lies under it: two local paths (links resolved) or two ``s3://`` URIs."""
    if is_s3_uri(inner) != is_s3_uri(outer):
        return False
    if is_s3_uri(inner):
        inner_bucket, inner_key = split_s3_uri(inner)
        outer_bucket, outer_key = split_s3_uri(outer)
        inner_key, outer_key = inner_key.strip("/"), outer_key.strip("/")
        return inner_bucket == outer_bucket and (
            not outer_key or inner_key == outer_key or inner_key.startswith(outer_key + "/")
        )
    inner_path, outer_path = os.path.realpath(inner), os.path.realpath(outer)
    return os.path.commonpath([inner_path, outer_path]) == outer_path
