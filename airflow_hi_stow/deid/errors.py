"""Errors of the de-identification engine. Their messages never hold a key or a value of a dataset."""

from __future__ import annotations


class InvalidKeyError(ValueError):
    """The de-identification key is missing or too short; raised before any file is touched."""


class UnavailableInput(OSError):
    """An input that cannot be read, raised by its ``read()``. Its message goes into the report as the reason, so it
    names neither the input nor any value from it (``no such file or directory``, ``S3 error NoSuchKey``)."""
