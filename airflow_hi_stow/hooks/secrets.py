"""Registering the secrets a hook handles with Airflow's secrets masker, so that no task log shows them."""

from __future__ import annotations

import threading
from collections.abc import Callable

from airflow.providers.common.compat.sdk import mask_secret

from airflow_hi_stow.core import sigv4


def masked_credentials(freeze: Callable[[], sigv4.Credentials]) -> Callable[[], sigv4.Credentials]:
    """``freeze`` (e.g. ``RefreshableCredentials.get_frozen_credentials``), registering each new secret key and
    session token with the masker when it first appears (assumed-role sessions bring new ones as they refresh)."""
    seen: set[str] = set()
    lock = threading.Lock()

    def frozen() -> sigv4.Credentials:
        credentials = freeze()
        secrets = [value for value in (credentials.secret_key, credentials.token) if value]
        with lock:
            new = [value for value in secrets if value not in seen]
            seen.update(new)
        for value in new:
            mask_secret(value)
        return credentials

    return frozen
