"""Tell which search engine and version a URL serves, with plain HTTP requests.

Detection runs before any client library is chosen, because the right client
(opensearch-py, or the ``elasticsearch`` package of the server's major version)
depends on the result.
"""

from __future__ import annotations

import base64
import json
import logging
import ssl
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from worker.errors import ClusterError

logger = logging.getLogger(__name__)

EngineName = Literal["opensearch", "elasticsearch"]
Version = tuple[int, ...]

# Inclusive lower bound and exclusive upper bound of the versions d2q accepts.
# OpenSearch needs 2.4 for point in time search; Elasticsearch needs 8.11 for
# the sparse_vector field in its server core.
SUPPORTED_VERSIONS: dict[EngineName, tuple[Version, Version]] = {
    "opensearch": ((2, 4), (4,)),
    "elasticsearch": ((8, 11), (10,)),
}
ENGINE_TITLES: dict[EngineName, str] = {
    "opensearch": "OpenSearch",
    "elasticsearch": "Elasticsearch",
}
PRODUCT_HEADER = "X-Elastic-Product"


@dataclass(frozen=True)
class ServerInfo:
    """The engine and version number a cluster reports."""

    engine: EngineName
    version: str

    @property
    def version_tuple(self) -> Version:
        return parse_version(self.version)

    @property
    def major(self) -> int:
        return self.version_tuple[0]

    def describe(self) -> str:
        return f"{ENGINE_TITLES[self.engine]} {self.version}"


@dataclass(frozen=True)
class HttpOptions:
    """Credentials and TLS options of the plain HTTP requests."""

    username: str | None = None
    password: str | None = None
    api_key: str | None = None
    ca_certs: str | None = None
    insecure: bool = False
    timeout: float = 10.0


def parse_version(number: str) -> Version:
    """Return the leading numeric parts of a version such as ``9.5.0-SNAPSHOT``."""
    parts: list[int] = []
    for part in number.split("-", 1)[0].split("."):
        if not part.isdigit():
            break
        parts.append(int(part))
    if not parts:
        raise ClusterError(f"the cluster reports version {number!r}, not a number")
    return tuple(parts)


def _format(version: Version) -> str:
    return ".".join(str(part) for part in version)


def supported_versions_text() -> str:
    """Describe every supported engine and version range in one phrase."""
    ranges = []
    for engine, (low, high) in SUPPORTED_VERSIONS.items():
        ranges.append(f"{ENGINE_TITLES[engine]} {_format(low)} to {high[0] - 1}.x")
    return " and ".join(ranges)


def check_supported(server: ServerInfo) -> None:
    """Raise ClusterError unless d2q supports the version of ``server``."""
    low, high = SUPPORTED_VERSIONS[server.engine]
    if not low <= server.version_tuple < high:
        raise ClusterError(
            f"{server.describe()} is not supported; d2q supports "
            f"{supported_versions_text()}"
        )


def _headers(options: HttpOptions) -> dict[str, str]:
    headers = {"Accept": "application/json"}
    if options.api_key:
        headers["Authorization"] = f"ApiKey {options.api_key}"
    elif options.username:
        pair = f"{options.username}:{options.password or ''}".encode()
        headers["Authorization"] = "Basic " + base64.b64encode(pair).decode("ascii")
    return headers


def _ssl_context(options: HttpOptions) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=options.ca_certs)
    if options.insecure:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def _get(
    url: str, options: HttpOptions
) -> tuple[int, Mapping[str, str], dict[str, Any] | None]:
    """Send one GET; return the status, the headers and the JSON body, if any."""
    request = urllib.request.Request(url, headers=_headers(options))
    context = _ssl_context(options) if url.startswith("https:") else None
    try:
        with urllib.request.urlopen(
            request, timeout=options.timeout, context=context
        ) as response:
            status, headers, raw = response.status, response.headers, response.read()
    except urllib.error.HTTPError as error:
        status, headers, raw = error.code, error.headers, error.read()
    except (urllib.error.URLError, OSError) as error:
        reason = getattr(error, "reason", error)
        raise ClusterError(f"could not reach the cluster at {url}: {reason}") from error
    try:
        body = json.loads(raw) if raw else None
    except ValueError:
        body = None
    return status, headers, body if isinstance(body, dict) else None


def _node_version(base: str, options: HttpOptions) -> str:
    """Read the version from the nodes info API, for servers without a root endpoint."""
    status, _, body = _get(f"{base}/_nodes/_local?filter_path=nodes.*.version", options)
    nodes = (body or {}).get("nodes") or {}
    versions = [
        node.get("version") for node in nodes.values() if isinstance(node, dict)
    ]
    if status != 200 or not versions or not isinstance(versions[0], str):
        raise ClusterError(
            f"the cluster at {base} did not report its version (HTTP {status}); "
            f"pass --engine to skip detection"
        )
    return versions[0]


def detect_server(url: str, options: HttpOptions | None = None) -> ServerInfo:
    """Ask the cluster at ``url`` for its engine and version.

    The root endpoint reports both. OpenSearch names itself in
    ``version.distribution``; Elasticsearch 7.14 and newer sends the
    ``X-Elastic-Product`` header on every response, so a node whose root
    endpoint is missing (a minimal distribution) is still recognised and its
    version read from the nodes info API.

    Raises:
        ClusterError: the cluster cannot be reached, rejects the credentials,
            or responds like neither engine.
    """
    options = options or HttpOptions()
    base = url.rstrip("/")
    status, headers, body = _get(base + "/", options)
    is_elastic = headers.get(PRODUCT_HEADER, "") == "Elasticsearch"
    version = (body or {}).get("version")
    if status == 200 and isinstance(version, dict) and "number" in version:
        number = str(version["number"])
        if version.get("distribution") == "opensearch":
            return ServerInfo("opensearch", number)
        if is_elastic or (body or {}).get("tagline") == "You Know, for Search":
            return ServerInfo("elasticsearch", number)
    if is_elastic and status not in (401, 403):
        return ServerInfo("elasticsearch", _node_version(base, options))
    if status == 401:
        raise ClusterError(
            f"the cluster at {base} rejected the credentials (HTTP 401); check "
            f"--username and --password or --api-key"
        )
    if status == 403:
        raise ClusterError(
            f"the credentials may not read the root endpoint of {base} (HTTP 403); "
            f"pass --engine opensearch or --engine elasticsearch to skip detection"
        )
    raise ClusterError(
        f"the server at {base} returned HTTP {status} and is neither OpenSearch nor "
        f"Elasticsearch; pass --engine to skip detection"
    )
