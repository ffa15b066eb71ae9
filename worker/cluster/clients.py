"""The client libraries: which one to load, and how to read their errors.

opensearch-py serves OpenSearch. Elasticsearch accepts requests only from a
client of its own major version. The ``elasticsearch`` packages of different
majors cannot share one environment, because each pins its own
``elastic-transport``, so the installed one must match the server. The aliases ``elasticsearch8`` and
``elasticsearch9`` on PyPI install the same client under another import name
and are tried first.
"""

from __future__ import annotations

import importlib
import logging
from types import ModuleType
from typing import Any

from worker.errors import ClusterError

logger = logging.getLogger(__name__)

# Statuses that a later attempt of the same request can get past.
RETRYABLE_STATUSES = frozenset({429, 502, 503, 504})


def _client_major(module: ModuleType) -> int | None:
    version = getattr(module, "__versionstr__", "")
    head = str(version).split(".", 1)[0]
    return int(head) if head.isdigit() else None


def elasticsearch_module(major: int | None) -> ModuleType:
    """Import the Elasticsearch client package of ``major``, or the installed one.

    Raises:
        ClusterError: no installed client package has that major version.
    """
    names = (
        ["elasticsearch"]
        if major is None
        else [f"elasticsearch{major}", "elasticsearch"]
    )
    found: list[str] = []
    for name in names:
        try:
            module = importlib.import_module(name)
        except ImportError:
            continue
        client_major = _client_major(module)
        if major is None or client_major == major:
            return module
        found.append(f"{name} {getattr(module, '__versionstr__', '?')}")
    installed = ", ".join(found) or "none"
    wanted = f"'elasticsearch>={major},<{major + 1}'" if major else "elasticsearch"
    raise ClusterError(
        f"Elasticsearch {major}.x needs the Python client of the same major version "
        f"(installed: {installed}); install it with: pip install {wanted}"
    )


def client_errors() -> tuple[type[BaseException], ...]:
    """Return the base exception classes of every installed client library."""
    errors: list[type[BaseException]] = []
    try:
        from opensearchpy.exceptions import OpenSearchException

        errors.append(OpenSearchException)
    except ImportError:
        pass
    try:
        import elastic_transport

        errors += [elastic_transport.ApiError, elastic_transport.TransportError]
    except ImportError:
        pass
    return tuple(errors)


def api_error_reason(error: BaseException) -> str:
    """Return the server's reason for a rejected request, or the error text."""
    body: Any = getattr(error, "body", None)  # elasticsearch
    if body is None:
        body = getattr(error, "info", None)  # opensearch-py
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        cause = body["error"]
        root = (cause.get("root_cause") or [cause])[0]
        if isinstance(root, dict) and root.get("reason"):
            return f"{root.get('type', 'error')}: {root['reason']}"
    return str(error)


def _status(error: BaseException) -> int | None:
    meta = getattr(error, "meta", None)  # elastic-transport
    status = getattr(meta, "status", None)
    if status is None:
        status = getattr(error, "status_code", None)  # opensearch-py
    return status if isinstance(status, int) else None


def is_retryable(error: BaseException) -> bool:
    """Tell whether a failed request may succeed when sent again.

    Connection errors and timeouts of either client qualify, and so do
    responses with status 429 or 502-504.
    """
    try:
        from opensearchpy.exceptions import ConnectionError as OpenSearchConnectionError
        from opensearchpy.exceptions import TransportError as OpenSearchTransportError

        if isinstance(error, OpenSearchConnectionError):
            return True
        if isinstance(error, OpenSearchTransportError):
            return _status(error) in RETRYABLE_STATUSES
    except ImportError:
        pass
    try:
        import elastic_transport

        # ApiError covers every response with a status. TransportError covers
        # the connection errors and timeouts, which carry no status.
        if isinstance(error, elastic_transport.ApiError):
            return _status(error) in RETRYABLE_STATUSES
        if isinstance(error, elastic_transport.TransportError):
            return isinstance(
                error,
                (
                    elastic_transport.ConnectionError,
                    elastic_transport.ConnectionTimeout,
                ),
            )
    except ImportError:
        pass
    return False
