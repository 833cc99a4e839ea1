"""The HTTP session of the STOW-RS client, configured as boto3 configures its own from the same settings: TLS
verification (``verify``: off, on, or a CA bundle; ``AWS_CA_BUNDLE``), proxies (botocore ``Config.proxies`` and
``proxies_config``, or ``HTTPS_PROXY``/``NO_PROXY``), timeouts and the connection pool size.

botocore's own HTTP layer cannot stream a re-iterable generated body with a signature made per attempt, so the
client keeps requests and this module maps botocore's settings onto it, option for option.
"""

from __future__ import annotations

import os
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import requests
from botocore.config import Config
from requests.adapters import HTTPAdapter
from urllib3.util.ssl_ import create_urllib3_context

from airflow_hi_stow import __version__

DEFAULT_CONNECT_TIMEOUT = 10.0
DEFAULT_READ_TIMEOUT = 900.0
"""A 1 GB request may take minutes to be processed, far past botocore's 60 s default."""
DEFAULT_MAX_CONNECTIONS = 10
CA_BUNDLE_ENV = "AWS_CA_BUNDLE"


@dataclass(frozen=True)
class HttpSettings:
    """How requests reach the server.

    ``verify``: True (the system's or ``AWS_CA_BUNDLE``'s CAs), False (no verification) or a CA bundle path.
    ``proxies``: botocore's form, ``{"https": "http://proxy:3128", "http": ...}``; without it ``HTTPS_PROXY``,
    ``HTTP_PROXY`` and ``NO_PROXY`` apply. ``proxies_config``: botocore's ``proxy_ca_bundle``,
    ``proxy_client_cert`` and ``proxy_use_forwarding_for_https``.
    """

    verify: bool | str = True
    proxies: Mapping[str, str] = field(default_factory=dict)
    proxies_config: Mapping[str, Any] = field(default_factory=dict)
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT
    read_timeout: float = DEFAULT_READ_TIMEOUT
    max_connections: int = DEFAULT_MAX_CONNECTIONS

    @classmethod
    def from_botocore(
        cls,
        config: Config | None,
        verify: bool | str | None = None,
        *,
        ca_bundle: str | None = None,
        max_connections: int = DEFAULT_MAX_CONNECTIONS,
    ) -> HttpSettings:
        """The settings boto3 would use with this ``Config`` and ``verify`` (as an AWS connection gives them).

        ``verify`` None means verification on, with ``ca_bundle`` (botocore's ``ca_bundle`` configuration,
        i.e. ``AWS_CA_BUNDLE`` or the profile's) when there is one. Timeouts and the pool size are taken only when
        the user set them; the pool is at least ``max_connections``.
        """
        chosen = _user_options(config)
        return cls(
            verify=verify_setting(verify, ca_bundle),
            proxies=dict(chosen.get("proxies") or {}),
            proxies_config=dict(chosen.get("proxies_config") or {}),
            connect_timeout=float(chosen.get("connect_timeout", DEFAULT_CONNECT_TIMEOUT)),
            read_timeout=float(chosen.get("read_timeout", DEFAULT_READ_TIMEOUT)),
            max_connections=max(max_connections, int(chosen.get("max_pool_connections", 0))),
        )

    @property
    def timeout(self) -> tuple[float, float]:
        return (self.connect_timeout, self.read_timeout)

    def request_options(self, url: str) -> dict[str, Any]:
        """Keyword arguments for the requests to ``url``'s server, as botocore chooses them: the connection's
        proxies, else the environment's unless ``NO_PROXY`` names the host. Resolved once per caller: the session
        does not read the environment (requests would scan it again for every request)."""
        options: dict[str, Any] = {"verify": self.verify, "timeout": self.timeout}
        proxies = dict(self.proxies) or requests.utils.get_environ_proxies(url)
        if proxies:
            options["proxies"] = proxies
        return options


def _user_options(config: Config | None) -> dict[str, Any]:
    """The options a botocore Config was given explicitly (the defaults of unset ones are botocore's, not ours)."""
    if config is None:
        return {}
    given = getattr(config, "_user_provided_options", None)
    names = given.keys() if isinstance(given, dict) else ()
    return {name: getattr(config, name) for name in names}


def verify_setting(verify: bool | str | None, ca_bundle: str | None = None) -> bool | str:
    """TLS verification as requests takes it, from a connection's ``verify`` (a bool, ``"false"``/``"true"``, a
    CA bundle path, or None) and the default ``ca_bundle`` (else ``AWS_CA_BUNDLE``) that applies when it is on."""
    if verify is False or (isinstance(verify, str) and verify.lower() == "false"):
        return False
    if isinstance(verify, str) and verify and verify.lower() != "true":
        return verify
    bundle = ca_bundle or os.environ.get(CA_BUNDLE_ENV)
    return bundle or True


class _ProxyAdapter(HTTPAdapter):
    """requests' adapter with botocore's ``proxies_config``: the proxy's CA bundle and client certificate (for an
    ``https://`` proxy) and ``proxy_use_forwarding_for_https``."""

    def __init__(self, proxies_config: Mapping[str, Any], pool_size: int) -> None:
        self.proxies_config = dict(proxies_config)
        super().__init__(pool_connections=4, pool_maxsize=pool_size, max_retries=0)

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> Any:
        if self.proxies_config.get("proxy_use_forwarding_for_https"):
            proxy_kwargs["use_forwarding_for_https"] = True
        if proxy.lower().startswith("https://"):
            context = _proxy_ssl_context(self.proxies_config)
            if context is not None:
                proxy_kwargs["proxy_ssl_context"] = context
        return super().proxy_manager_for(proxy, **proxy_kwargs)


def _proxy_ssl_context(proxies_config: Mapping[str, Any]) -> ssl.SSLContext | None:
    ca_bundle = proxies_config.get("proxy_ca_bundle")
    client_cert = proxies_config.get("proxy_client_cert")
    if ca_bundle is None and client_cert is None:
        return None
    context = create_urllib3_context()
    context.check_hostname = True
    if ca_bundle is not None:
        context.load_verify_locations(cafile=ca_bundle)
    if isinstance(client_cert, list | tuple):
        context.load_cert_chain(client_cert[0], keyfile=client_cert[1])
    elif isinstance(client_cert, str):
        context.load_cert_chain(client_cert)
    return context


def new_session(settings: HttpSettings | None = None) -> requests.Session:
    """A session with a pool of ``settings.max_connections`` keep-alive connections and no retries of its own
    (the client retries, re-signing and re-reading the files). It ignores the environment (``REQUESTS_CA_BUNDLE``,
    proxies, ``.netrc``): pass ``settings.request_options(url)`` with each request."""
    settings = settings or HttpSettings()
    session = requests.Session()
    session.trust_env = False
    adapter = _ProxyAdapter(settings.proxies_config, settings.max_connections)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    session.verify = settings.verify
    session.headers["User-Agent"] = f"airflow-hi-stow/{__version__} {requests.utils.default_user_agent()}"
    return session
