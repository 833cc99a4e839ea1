"""The secret key of keyed de-identification, read from an Airflow connection and registered with the masker."""

from __future__ import annotations

from typing import Any

from airflow.providers.common.compat.sdk import BaseHook, mask_secret

from airflow_hi_stow.deid import DeidentificationKey, InvalidKeyError


class DeidentificationKeyHook(BaseHook):
    """Reads the de-identification key from a connection: its password, else its extra ``key``.

    Any connection type will do (``generic`` is the natural one); only the password or that extra is read. The key
    is registered with Airflow's secrets masker as soon as it is read, so no task log shows it.
    """

    conn_name_attr = "key_conn_id"
    default_conn_name = "hi_stow_deid_key"
    conn_type = "generic"
    hook_name = "De-identification key"

    def __init__(self, key_conn_id: str = default_conn_name, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.key_conn_id = key_conn_id

    def get_key(self) -> DeidentificationKey:
        """The key; raises InvalidKeyError (a ValueError) naming the connection when it is missing or too short."""
        connection = self.get_connection(self.key_conn_id)
        secret = connection.password or connection.extra_dejson.get("key")
        if secret is not None and not isinstance(secret, str):
            raise InvalidKeyError(f"connection {self.key_conn_id!r}: the extra 'key' must be a string")
        if secret:
            mask_secret(secret)
        try:
            return DeidentificationKey(secret)
        except InvalidKeyError as exc:
            raise InvalidKeyError(
                f"connection {self.key_conn_id!r}: {exc} (its password, or its extra 'key')"
            ) from None
