"""The differences between search engines, in one place.

Each engine class wraps its own client library and exposes the few operations
d2q needs: point in time, paged search, bulk, analysis and mappings.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from worker.errors import ClusterError

logger = logging.getLogger(__name__)

# NOTE: mapping files are read from the source tree, so d2q must run from a
# checkout or an editable install.
MAPPINGS_DIR = Path(__file__).resolve().parents[2] / "mappings"


@dataclass(frozen=True)
class ConnectionConfig:
    """How to reach the cluster; plain values taken from the settings."""

    url: str
    engine: str = "auto"
    username: str | None = None
    password: str | None = None
    api_key: str | None = None
    ca_certs: str | None = None
    insecure: bool = False
    request_timeout: float = 60.0


class OpenSearchEngine:
    """OpenSearch 2.x through opensearch-py."""

    name = "opensearch"
    # OpenSearch 2.x has no _shard_doc, so the unique tiebreaker of a point in
    # time search is _id. NOTE: sorting on _id loads _id field data on the heap.
    pit_sort: list[dict[str, str]] = [{"_id": "asc"}]

    def __init__(self, client: Any, version: str) -> None:
        self.client = client
        self.version = version

    @classmethod
    def connect(cls, config: ConnectionConfig) -> OpenSearchEngine:
        from opensearchpy import OpenSearch

        options: dict[str, Any] = {
            "hosts": [config.url],
            "timeout": config.request_timeout,
            "verify_certs": not config.insecure,
            "ssl_show_warn": not config.insecure,
        }
        if config.ca_certs:
            options["ca_certs"] = config.ca_certs
        if config.username:
            options["http_auth"] = (config.username, config.password or "")
        if config.api_key:
            options["headers"] = {"Authorization": f"ApiKey {config.api_key}"}
        client = OpenSearch(**options)
        info = client.info()
        return cls(client, str(info["version"]["number"]))

    def mapping_template(self) -> dict[str, Any]:
        path = MAPPINGS_DIR / self.name / "expansion.json"
        template: dict[str, Any] = json.loads(path.read_text())
        return template

    def open_pit(self, index: str, keep_alive: str) -> str:
        response = self.client.create_pit(index=index, params={"keep_alive": keep_alive})
        return str(response["pit_id"])

    def close_pit(self, pit_id: str) -> None:
        self.client.delete_pit(body={"pit_id": [pit_id]})

    def search_pit(self, pit_id: str, keep_alive: str, body: dict[str, Any]) -> dict[str, Any]:
        request = dict(body, pit={"id": pit_id, "keep_alive": keep_alive})
        response: dict[str, Any] = self.client.search(body=request)
        return response

    def count(self, index: str, query: dict[str, Any]) -> int:
        return int(self.client.count(index=index, body={"query": query})["count"])

    def bulk(self, ndjson: str) -> dict[str, Any]:
        response: dict[str, Any] = self.client.bulk(body=ndjson)
        return response

    def search(
        self, index: str, body: dict[str, Any], named_scores: bool = False
    ) -> dict[str, Any]:
        """Run one search; ``named_scores`` adds each named clause's score to hits."""
        params = {"include_named_queries_score": "true"} if named_scores else {}
        response: dict[str, Any] = self.client.search(
            index=index, body=body, params=params
        )
        return response

    def msearch(self, index: str, bodies: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Run many searches in one request; return each one's response or error."""
        lines: list[str] = []
        for body in bodies:
            lines.append(json.dumps({"index": index}))
            lines.append(json.dumps(body, ensure_ascii=False))
        response = self.client.msearch(body="\n".join(lines) + "\n")
        return list(response["responses"])

    def analyze(self, index: str, field: str, texts: list[str]) -> list[tuple[str, int]]:
        response = self.client.indices.analyze(index=index, body={"field": field, "text": texts})
        return [(token["token"], int(token["position"])) for token in response["tokens"]]

    def get_mapping(self, index: str) -> dict[str, Any]:
        response = self.client.indices.get_mapping(index=index)
        (entry,) = response.values()
        mapping: dict[str, Any] = entry.get("mappings", {})
        return mapping

    def put_mapping(self, index: str, properties: dict[str, Any]) -> None:
        self.client.indices.put_mapping(index=index, body={"properties": properties})

    def index_exists(self, index: str) -> bool:
        return bool(self.client.indices.exists(index=index))

    def refresh(self, index: str) -> None:
        self.client.indices.refresh(index=index)


Engine = OpenSearchEngine


def connect(config: ConnectionConfig) -> Engine:
    """Connect to the cluster at ``config.url`` and return its engine adapter."""
    if config.engine not in ("auto", "opensearch"):
        raise ClusterError(f"engine {config.engine!r} is not supported; use opensearch")
    from opensearchpy.exceptions import OpenSearchException

    try:
        return OpenSearchEngine.connect(config)
    except OpenSearchException as error:
        raise ClusterError(f"could not reach the cluster at {config.url}: {error}") from error


def is_retryable(error: BaseException) -> bool:
    """Tell whether a failed request may succeed when sent again.

    Connection errors and timeouts qualify, and so do answers with status 429
    or 502-504.
    """
    from opensearchpy.exceptions import ConnectionError as OpenSearchConnectionError
    from opensearchpy.exceptions import TransportError

    if isinstance(error, OpenSearchConnectionError):
        return True
    if isinstance(error, TransportError):
        return error.status_code in (429, 502, 503, 504)
    return False
