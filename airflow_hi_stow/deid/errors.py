"""Errors of the de-identification engine. Their messages never hold a key or a value of a dataset."""

from __future__ import annotations


class InvalidKeyError(ValueError):
    """The de-identification key is missing or too short; raised before any file is touched."""
