"""The emulator's persistent state: data stores, image sets and instances in SQLite, instance files on disk.

Layout of the data directory: ``index.sqlite3`` (WAL), ``objects/<2 hex>/<32 hex>.dcm`` (each stored instance
exactly as received, under a fresh name) and ``tmp/`` (request bodies being received; emptied at start). A store
moves the request's files into ``objects/`` and commits their index rows in one transaction under a lock, so
parallel requests never lose or duplicate a row; a file replaced by a newer copy is deleted after the commit, so a
crash leaves at most an unreferenced file, never an index row without its file. An instance's public attributes
and an image set's summary tags are read when a read first needs them (see ``PENDING``).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import secrets
import shutil
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from airflow_hi_stow.core.image_sets import ExistingImageSet, Placement, place_instance
from airflow_hi_stow.emulator.dicom_parts import ParsedInstance, image_set_tags, public_attributes
from airflow_hi_stow.emulator.errors import AwsError, not_found

log = logging.getLogger("airflow_hi_stow.emulator")

PENDING = ""
"""The ``attributes`` of an instance and the ``tags`` of an image set not read yet: a store indexes identifiers and
grouping only; the first read that needs these reads them from the stored file (see dicom_parts) and keeps them."""

_SCHEMA = """
CREATE TABLE IF NOT EXISTS settings (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS datastores (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    status TEXT NOT NULL,
    storage_format TEXT NOT NULL,
    kms_key_arn TEXT,
    client_token TEXT,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS image_sets (
    id TEXT PRIMARY KEY,
    datastore_id TEXT NOT NULL REFERENCES datastores(id),
    study_uid TEXT NOT NULL,
    series_uid TEXT NOT NULL,
    is_primary INTEGER NOT NULL,
    version INTEGER NOT NULL,
    state TEXT NOT NULL,
    workflow_status TEXT NOT NULL,
    grouping TEXT NOT NULL,
    conflicts TEXT NOT NULL,
    tags TEXT NOT NULL,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    deleted_at REAL
);
CREATE UNIQUE INDEX IF NOT EXISTS one_primary_per_series
    ON image_sets (datastore_id, study_uid, series_uid) WHERE is_primary = 1 AND state = 'ACTIVE';
CREATE INDEX IF NOT EXISTS image_sets_by_study ON image_sets (datastore_id, study_uid);
CREATE TABLE IF NOT EXISTS image_set_versions (
    image_set_id TEXT NOT NULL REFERENCES image_sets(id),
    version INTEGER NOT NULL,
    workflow_status TEXT NOT NULL,
    created_at REAL NOT NULL,
    PRIMARY KEY (image_set_id, version)
);
CREATE TABLE IF NOT EXISTS instances (
    image_set_id TEXT NOT NULL REFERENCES image_sets(id),
    sop_uid TEXT NOT NULL,
    datastore_id TEXT NOT NULL,
    study_uid TEXT NOT NULL,
    series_uid TEXT NOT NULL,
    sop_class_uid TEXT NOT NULL,
    transfer_syntax_uid TEXT NOT NULL,
    size INTEGER NOT NULL,
    object_name TEXT NOT NULL,
    attributes TEXT NOT NULL,
    stored_at REAL NOT NULL,
    PRIMARY KEY (image_set_id, sop_uid)
);
CREATE INDEX IF NOT EXISTS instances_by_uid ON instances (datastore_id, study_uid, series_uid, sop_uid);
"""


def new_id() -> str:
    """A data store or image set id: 32 characters of ``[0-9a-z]``, as the API model requires."""
    return secrets.token_hex(16)


@dataclass(frozen=True)
class Datastore:
    id: str
    name: str
    status: str
    storage_format: str
    kms_key_arn: str | None
    created_at: float
    updated_at: float


@dataclass(frozen=True)
class ImageSet:
    id: str
    datastore_id: str
    study_uid: str
    series_uid: str
    is_primary: bool
    version: int
    state: str
    workflow_status: str
    conflicts: tuple[str, ...]
    tags: dict[str, Any]
    created_at: float
    updated_at: float
    deleted_at: float | None


@dataclass(frozen=True)
class ImageSetVersion:
    version: int
    workflow_status: str
    created_at: float


@dataclass(frozen=True)
class StoredInstance:
    study_uid: str
    series_uid: str
    sop_uid: str
    transfer_syntax_uid: str
    path: Path
    attributes: dict[str, Any]
    """The indexed (public) attributes; the metadata documents read the file (see dicom_parts)."""


@dataclass(frozen=True)
class Placed:
    """Where a stored instance went."""

    sop_instance_uid: str
    image_set_id: str
    is_primary: bool


class Storage:
    """Thread-safe: one SQLite connection, every access under one lock (the emulator's scale needs no more)."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.objects = data_dir / "objects"
        self.tmp = data_dir / "tmp"
        data_dir.mkdir(parents=True, exist_ok=True)
        self._dir_lock = (data_dir / "lock").open("w")
        try:
            fcntl.flock(self._dir_lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._dir_lock.close()
            raise RuntimeError(f"{data_dir} is in use by another emulator") from None
        shutil.rmtree(self.tmp, ignore_errors=True)
        self.tmp.mkdir(parents=True)
        self.objects.mkdir(exist_ok=True)
        self._lock = threading.Lock()
        self._object_dirs: set[str] = set()
        """The ``objects/<2 hex>`` folders known to exist."""
        self._db = sqlite3.connect(data_dir / "index.sqlite3", check_same_thread=False, isolation_level=None)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("PRAGMA foreign_keys=ON")
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()
        self._dir_lock.close()

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def _query(self, sql: str, *params: Any) -> list[sqlite3.Row]:
        with self._lock:
            return self._db.execute(sql, params).fetchall()

    # Data stores

    def create_datastore(
        self,
        name: str,
        *,
        storage_format: str,
        kms_key_arn: str | None = None,
        client_token: str | None = None,
        datastore_id: str | None = None,
    ) -> Datastore:
        """A new ACTIVE data store; with a ``client_token`` already used, the data store it created."""
        with self._transaction() as db:
            if client_token is not None:
                row = db.execute("SELECT id FROM datastores WHERE client_token = ?", (client_token,)).fetchone()
                if row is not None:
                    datastore_id = row["id"]
            if (
                datastore_id is None
                or db.execute("SELECT 1 FROM datastores WHERE id = ?", (datastore_id,)).fetchone() is None
            ):
                now = time.time()
                datastore_id = datastore_id or new_id()
                db.execute(
                    "INSERT INTO datastores VALUES (?, ?, 'ACTIVE', ?, ?, ?, ?, ?)",
                    (datastore_id, name, storage_format, kms_key_arn, client_token, now, now),
                )
        found = self.get_datastore(datastore_id)
        assert found is not None
        return found

    def get_datastore(self, datastore_id: str) -> Datastore | None:
        rows = self._query("SELECT * FROM datastores WHERE id = ?", datastore_id)
        return _datastore(rows[0]) if rows else None

    def active_datastore(self, datastore_id: str) -> Datastore:
        """The data store, unless it does not exist or was deleted (ResourceNotFoundException)."""
        datastore = self.get_datastore(datastore_id)
        if datastore is None or datastore.status != "ACTIVE":
            raise not_found(f"Datastore {datastore_id}")
        return datastore

    def list_datastores(self) -> list[Datastore]:
        return [_datastore(row) for row in self._query("SELECT * FROM datastores ORDER BY created_at, id")]

    def delete_datastore(self, datastore_id: str) -> Datastore:
        """Mark the data store DELETED; like HealthImaging, only once it holds no image set."""
        datastore = self.active_datastore(datastore_id)
        with self._transaction() as db:
            held = db.execute(
                "SELECT COUNT(*) FROM image_sets WHERE datastore_id = ? AND state != 'DELETED'", (datastore_id,)
            ).fetchone()[0]
            if held:
                raise AwsError(
                    "ConflictException", f"Datastore {datastore_id} still holds {held} image set(s); delete them first"
                )
            db.execute(
                "UPDATE datastores SET status = 'DELETED', updated_at = ? WHERE id = ?", (time.time(), datastore_id)
            )
        return datastore

    def setting(self, key: str) -> str | None:
        rows = self._query("SELECT value FROM settings WHERE key = ?", key)
        return str(rows[0]["value"]) if rows else None

    def set_setting(self, key: str, value: str) -> None:
        with self._transaction() as db:
            db.execute("INSERT OR REPLACE INTO settings VALUES (?, ?)", (key, value))

    # Storing

    def store_instances(self, datastore: Datastore, instances: Sequence[ParsedInstance]) -> list[Placed]:
        """Place each instance into an image set (see core.image_sets), move its file into storage and index it,
        all in one transaction. Every image set the request changed gets one new version."""
        placed: list[Placed] = []
        replaced: list[str] = []
        with self._transaction() as db:
            created: dict[str, bool] = {}  # the image sets this request touched -> whether it created them
            studies: dict[str, list[ExistingImageSet]] = {}  # each study's image sets, read once per request
            for instance in instances:
                study = instance.study_instance_uid
                existing = studies.get(study)
                if existing is None:
                    existing = studies[study] = self._study_image_sets(db, datastore.id, study)
                placement = place_instance(instance.grouping, existing)
                image_set_id = placement.image_set_id
                if image_set_id is None:
                    image_set_id = self._create_image_set(db, datastore.id, instance, placement)
                    existing.append(
                        ExistingImageSet(
                            image_set_id, instance.series_instance_uid, placement.is_primary, instance.grouping
                        )
                    )
                created.setdefault(image_set_id, placement.image_set_id is None)
                replaced += self._put_instance(db, datastore.id, image_set_id, instance)
                placed.append(Placed(instance.sop_instance_uid, image_set_id, placement.is_primary))
            now = time.time()
            # The image set shows the values of the instance stored last (HealthImaging normalises them): read
            # from its file when first asked for.
            db.executemany(
                "UPDATE image_sets SET tags = ?, updated_at = ? WHERE id = ?",
                [(PENDING, now, image_set_id) for image_set_id in created],
            )
            for image_set_id in (key for key, is_new in created.items() if not is_new):
                db.execute(
                    "UPDATE image_sets SET version = version + 1, workflow_status = 'UPDATED', updated_at = ? "
                    "WHERE id = ?",
                    (now, image_set_id),
                )
                db.execute(
                    "INSERT INTO image_set_versions SELECT id, version, 'UPDATED', ? FROM image_sets WHERE id = ?",
                    (now, image_set_id),
                )
        for object_name in replaced:
            self._object_path(object_name).unlink(missing_ok=True)
        return placed

    @staticmethod
    def _create_image_set(
        db: sqlite3.Connection, datastore_id: str, instance: ParsedInstance, placement: Placement
    ) -> str:
        image_set_id = new_id()
        now = time.time()
        db.execute(
            "INSERT INTO image_sets VALUES (?, ?, ?, ?, ?, 1, 'ACTIVE', 'CREATED', ?, ?, '{}', ?, ?, NULL)",
            (
                image_set_id,
                datastore_id,
                instance.study_instance_uid,
                instance.series_instance_uid,
                int(placement.is_primary),
                json.dumps(instance.grouping),
                json.dumps(list(placement.conflicts)),
                now,
                now,
            ),
        )
        db.execute("INSERT INTO image_set_versions VALUES (?, 1, 'CREATED', ?)", (image_set_id, now))
        return image_set_id

    def _put_instance(
        self, db: sqlite3.Connection, datastore_id: str, image_set_id: str, instance: ParsedInstance
    ) -> list[str]:
        """Move the instance's file into storage and index it; returns the object it replaces, if any."""
        old = db.execute(
            "SELECT object_name FROM instances WHERE image_set_id = ? AND sop_uid = ?",
            (image_set_id, instance.sop_instance_uid),
        ).fetchone()
        object_name = f"{new_id()}.dcm"
        target = self._object_path(object_name)
        if target.parent.name not in self._object_dirs:
            target.parent.mkdir(exist_ok=True)
            self._object_dirs.add(target.parent.name)
        os.replace(instance.part.path, target)
        now = time.time()
        db.execute(
            "INSERT OR REPLACE INTO instances VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                image_set_id,
                instance.sop_instance_uid,
                datastore_id,
                instance.study_instance_uid,
                instance.series_instance_uid,
                instance.sop_class_uid,
                instance.transfer_syntax_uid,
                instance.part.size,
                object_name,
                PENDING,
                now,
            ),
        )
        return [old["object_name"]] if old is not None else []

    @staticmethod
    def _study_image_sets(db: sqlite3.Connection, datastore_id: str, study_uid: str) -> list[ExistingImageSet]:
        rows = db.execute(
            "SELECT id, series_uid, is_primary, grouping FROM image_sets "
            "WHERE datastore_id = ? AND study_uid = ? AND state = 'ACTIVE' ORDER BY created_at, id",
            (datastore_id, study_uid),
        ).fetchall()
        return [
            ExistingImageSet(row["id"], row["series_uid"], bool(row["is_primary"]), json.loads(row["grouping"]))
            for row in rows
        ]

    def _object_path(self, object_name: str) -> Path:
        return self.objects / object_name[:2] / object_name

    # Image sets

    def image_sets(self, datastore_id: str, study_uid: str | None = None) -> list[ImageSet]:
        """The active image sets of a data store (of one study)."""
        if study_uid is None:
            rows = self._query("SELECT * FROM image_sets WHERE datastore_id = ? AND state = 'ACTIVE'", datastore_id)
        else:
            rows = self._query(
                "SELECT * FROM image_sets WHERE datastore_id = ? AND study_uid = ? AND state = 'ACTIVE'",
                datastore_id,
                study_uid,
            )
        return [_image_set(row, self._tags(row)) for row in rows]

    def image_set(self, datastore_id: str, image_set_id: str) -> ImageSet:
        rows = self._query("SELECT * FROM image_sets WHERE datastore_id = ? AND id = ?", datastore_id, image_set_id)
        if not rows:
            raise not_found(f"Image set {image_set_id}")
        return _image_set(rows[0], self._tags(rows[0]))

    def _tags(self, row: sqlite3.Row) -> dict[str, Any]:
        """An image set's summary tags: those of its instance stored last, read and kept if still pending."""
        if row["tags"] != PENDING:
            return dict(json.loads(row["tags"]))
        latest = self._query(
            "SELECT image_set_id, sop_uid, object_name, attributes FROM instances WHERE image_set_id = ? "
            "ORDER BY rowid DESC LIMIT 1",
            row["id"],
        )
        tags = image_set_tags(self._attributes(latest[0])) if latest else {}
        with self._lock:
            self._db.execute(
                "UPDATE image_sets SET tags = ? WHERE id = ? AND tags = ?", (json.dumps(tags), row["id"], PENDING)
            )
        return tags

    def _attributes(self, row: sqlite3.Row) -> dict[str, Any]:
        """An instance's public attributes, read from its file and kept if still pending."""
        if row["attributes"] != PENDING:
            return dict(json.loads(row["attributes"]))
        try:
            attributes = public_attributes(self._object_path(row["object_name"]))
        except Exception as exc:  # a value pydicom cannot convert: the instance is kept, its attributes are not
            log.warning("the attributes of a stored instance cannot be read (%s)", type(exc).__name__)
            attributes = {}
        with self._lock:
            self._db.execute(
                "UPDATE instances SET attributes = ? WHERE image_set_id = ? AND sop_uid = ? AND object_name = ?",
                (json.dumps(attributes), row["image_set_id"], row["sop_uid"], row["object_name"]),
            )
        return attributes

    def image_set_versions(self, image_set_id: str) -> list[ImageSetVersion]:
        rows = self._query(
            "SELECT version, workflow_status, created_at FROM image_set_versions WHERE image_set_id = ? "
            "ORDER BY version DESC",
            image_set_id,
        )
        return [ImageSetVersion(row["version"], row["workflow_status"], row["created_at"]) for row in rows]

    def study_counts(self, datastore_id: str, study_uids: Iterable[str]) -> dict[str, tuple[int, int]]:
        """Study Instance UID -> (series, instances) over the primary image sets, for DICOMTags."""
        counts = {}
        for study_uid in study_uids:
            rows = self._query(
                "SELECT COUNT(DISTINCT s.series_uid) AS series, COUNT(*) AS instances "
                "FROM instances i JOIN image_sets s ON s.id = i.image_set_id "
                "WHERE s.datastore_id = ? AND s.study_uid = ? AND s.is_primary = 1 AND s.state = 'ACTIVE'",
                datastore_id,
                study_uid,
            )
            counts[study_uid] = (rows[0]["series"], rows[0]["instances"])
        return counts

    def delete_image_set(self, datastore_id: str, image_set_id: str) -> None:
        """Delete an image set and its instance files (the state stays, as DELETED)."""
        image_set = self.image_set(datastore_id, image_set_id)
        if image_set.state == "DELETED":
            raise AwsError("ConflictException", f"Image set {image_set_id} is already deleted")
        with self._transaction() as db:
            objects = [
                row["object_name"]
                for row in db.execute("SELECT object_name FROM instances WHERE image_set_id = ?", (image_set_id,))
            ]
            db.execute("DELETE FROM instances WHERE image_set_id = ?", (image_set_id,))
            now = time.time()
            db.execute(
                "UPDATE image_sets SET state = 'DELETED', workflow_status = 'DELETED', updated_at = ?, deleted_at = ? "
                "WHERE id = ?",
                (now, now, image_set_id),
            )
        for object_name in objects:
            self._object_path(object_name).unlink(missing_ok=True)

    # Instances

    def instances(
        self,
        datastore_id: str,
        *,
        image_set_id: str | None = None,
        study_uid: str | None = None,
        series_uid: str | None = None,
        sop_uid: str | None = None,
    ) -> list[StoredInstance]:
        """Instances of the data store's primary image sets (or of one image set), optionally narrowed by UIDs,
        in the order they were stored."""
        where = ["s.datastore_id = ?", "s.state = 'ACTIVE'"]
        params: list[Any] = [datastore_id]
        if image_set_id is None:
            where.append("s.is_primary = 1")
        else:
            where.append("s.id = ?")
            params.append(image_set_id)
        for column, value in (("i.study_uid", study_uid), ("i.series_uid", series_uid), ("i.sop_uid", sop_uid)):
            if value is not None:
                where.append(f"{column} = ?")
                params.append(value)
        sql = (
            "SELECT i.* FROM instances i JOIN image_sets s ON s.id = i.image_set_id "  # noqa: S608 - fixed column names only
            f"WHERE {' AND '.join(where)} ORDER BY i.stored_at, i.rowid"
        )
        rows = self._query(sql, *params)
        return [
            StoredInstance(
                study_uid=row["study_uid"],
                series_uid=row["series_uid"],
                sop_uid=row["sop_uid"],
                transfer_syntax_uid=row["transfer_syntax_uid"],
                path=self._object_path(row["object_name"]),
                attributes=self._attributes(row),
            )
            for row in rows
        ]

    def counts(self) -> dict[str, int]:
        """Rows in the index, for the admin endpoint."""
        rows = self._query(
            "SELECT (SELECT COUNT(*) FROM instances) AS instances, "
            "(SELECT COUNT(*) FROM image_sets WHERE state = 'ACTIVE') AS image_sets, "
            "(SELECT COUNT(*) FROM datastores WHERE status = 'ACTIVE') AS datastores"
        )
        return dict(rows[0])


def _datastore(row: sqlite3.Row) -> Datastore:
    return Datastore(
        id=row["id"],
        name=row["name"],
        status=row["status"],
        storage_format=row["storage_format"],
        kms_key_arn=row["kms_key_arn"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


def _image_set(row: sqlite3.Row, tags: dict[str, Any]) -> ImageSet:
    return ImageSet(
        id=row["id"],
        datastore_id=row["datastore_id"],
        study_uid=row["study_uid"],
        series_uid=row["series_uid"],
        is_primary=bool(row["is_primary"]),
        version=row["version"],
        state=row["state"],
        workflow_status=row["workflow_status"],
        conflicts=tuple(json.loads(row["conflicts"])),
        tags=tags,
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        deleted_at=row["deleted_at"],
    )
