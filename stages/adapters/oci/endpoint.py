"""Where a registry is: its scheme and ``host[:port]``, and which hosts count as loopback."""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

from tierup.stages.errors import ConfigError

TIMEOUT = 30.0
DOCKER_HUB_HOSTS = frozenset({"docker.io", "index.docker.io", "registry-1.docker.io"})
DOCKER_HUB_API = "registry-1.docker.io"  # docker.io names images; this host serves /v2/


def is_loopback(host: str) -> bool:
    """``localhost``, 127.0.0.0/8 or ::1 (``host`` without port; IPv6 with or without brackets)."""
    name = host.strip("[]").lower()
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def split_host(netloc: str) -> str:
    """The host part of ``host[:port]`` (``[v6]:port`` too)."""
    if netloc.startswith("["):
        return netloc[1 : netloc.index("]")] if "]" in netloc else netloc
    return netloc.rsplit(":", 1)[0] if netloc.count(":") == 1 else netloc


def registry_endpoint(url: str, *, insecure: bool = False) -> tuple[str, str]:
    """``[http(s)://]host[:port]`` -> (scheme, ``host[:port]``).

    Without a scheme: https, or http for a loopback host. Plain http is refused unless the
    host is loopback or ``insecure`` is set.
    """
    text = url.strip().rstrip("/")
    if "://" in text:
        parts = urlsplit(text)
        scheme, netloc = parts.scheme.lower(), parts.netloc
        if scheme not in ("http", "https") or not netloc or parts.path.strip("/"):
            raise ConfigError(
                f"registry url {url!r} must be [http(s)://]host[:port]",
                hint="e.g. https://ghcr.io or 127.0.0.1:5000",
            )
    else:
        netloc = text
        if not netloc or "/" in netloc:
            raise ConfigError(f"registry url {url!r} must be [http(s)://]host[:port]")
        scheme = "http" if is_loopback(split_host(netloc)) else "https"
    if "@" in netloc:
        raise ConfigError(
            "registry url must not carry credentials",
            hint="put them in Docker's config with `docker login`",
        )
    host = split_host(netloc)
    if scheme == "http" and not (insecure or is_loopback(host)):
        raise ConfigError(
            f"plain http to registry {netloc} is refused: credentials and manifests would "
            "travel unencrypted",
            hint="use https://, or set `insecure: true` on the registry in envs.yaml "
            "(only for a registry on a network you trust)",
        )
    return scheme, netloc
