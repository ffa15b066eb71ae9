"""The differences between search engines, in one place.

Each engine class wraps its own client library and exposes the few operations
d2q needs: point in time, paged search, bulk, analysis and mappings. What
differs between OpenSearch and Elasticsearch is decided here and nowhere else:

- the client library (opensearch-py, or the ``elasticsearch`` package whose
  major version matches the server's),
- point in time open, close and search syntax, and its unique sort tiebreaker,
- the mapping file of the expansion object (``mappings/<engine>/``) and the
  query clause that scores one of its term weights,
- how an expansion is written: a painless update script where the cluster runs
  painless inline scripts, a whole-document index request where it does not.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal, cast

from worker.cluster.aws import aws_signing_options
from worker.cluster.clients import (
    api_error_reason,
    client_errors,
    elasticsearch_module,
    is_retryable,
)
from worker.cluster.detect import (
    EngineName,
    HttpOptions,
    ServerInfo,
    check_supported,
    detect_server,
    parse_version,
)
from worker.cluster.document_writes import DocumentKey, write_as_documents
from worker.errors import ClusterError

__all__ = [
    "ConnectionConfig",
    "ElasticsearchEngine",
    "Engine",
    "OpenSearchEngine",
    "connect",
    "is_retryable",
]

logger = logging.getLogger(__name__)

# NOTE: mapping files are read from the source tree, so d2q must run from a
# checkout or an editable install.
MAPPINGS_DIR = Path(__file__).resolve().parents[2] / "mappings"

# "script": a painless update replaces the expansion object in place.
# "document": the whole document, as read, is indexed again with the new
# expansion, for clusters without painless or with inline scripts disabled.
WriteMethod = Literal["script", "document"]
WRITE_METHODS: tuple[str, ...] = ("auto", "script", "document")


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
    write_method: str = "auto"
    # AWS SigV4 signing of every request (Amazon OpenSearch Service).
    aws_region: str | None = None
    aws_service: str = "es"

    def http_options(self) -> HttpOptions:
        return HttpOptions(
            username=self.username,
            password=self.password,
            api_key=self.api_key,
            ca_certs=self.ca_certs,
            insecure=self.insecure,
            timeout=min(self.request_timeout, 30.0),
        )


class Engine:
    """Operations shared by both engines; subclasses add the client-specific ones."""

    name: ClassVar[EngineName]
    pit_sort: ClassVar[list[dict[str, str]]]

    def __init__(self, client: Any, version: str, write_method: WriteMethod) -> None:
        self.client = client
        self.version = version
        self.write_method: WriteMethod = write_method

    @property
    def version_tuple(self) -> tuple[int, ...]:
        return parse_version(self.version) if self.version != "unknown" else (0,)

    def describe(self) -> str:
        return f"{self.name} {self.version} (writes by {self.write_method})"

    def mapping_template(self) -> dict[str, Any]:
        path = MAPPINGS_DIR / self.name / "expansion.json"
        template: dict[str, Any] = json.loads(path.read_text())
        return template

    # --- reading and writing documents -------------------------------------------

    def open_pit(self, index: str, keep_alive: str) -> str:
        raise NotImplementedError

    def close_pit(self, pit_id: str) -> None:
        raise NotImplementedError

    def search_pit(
        self, pit_id: str, keep_alive: str, body: dict[str, Any]
    ) -> dict[str, Any]:
        request = dict(body, pit={"id": pit_id, "keep_alive": keep_alive})
        response: dict[str, Any] = self.client.search(body=request)
        return response

    def count(self, index: str, query: dict[str, Any]) -> int:
        return int(self.client.count(index=index, body={"query": query})["count"])

    def bulk(self, ndjson: str) -> dict[str, Any]:
        """Send one bulk request; return the response with one item per action.

        With the document write method, updates that run the expansion script
        are sent as index requests of the whole document instead.
        """
        if self.write_method == "document":
            return write_as_documents(ndjson, self.get_documents, self._send_bulk)
        return self._send_bulk(ndjson)

    def _send_bulk(self, ndjson: str) -> dict[str, Any]:
        response: dict[str, Any] = self.client.bulk(body=ndjson)
        return dict(response)

    def get_documents(self, keys: Sequence[DocumentKey]) -> list[dict[str, Any]]:
        """Return the multi-get result of each (index, id, routing), in order."""
        response = self.client.mget(body={"docs": _mget_docs(keys)})
        return list(response["docs"])

    # --- searching -------------------------------------------------------------------

    def search(
        self, index: str, body: dict[str, Any], named_scores: bool = False
    ) -> dict[str, Any]:
        """Run one search; ``named_scores`` adds each named clause's score to hits."""
        raise NotImplementedError

    def msearch(self, index: str, bodies: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Run many searches in one request; return each one's response or error."""
        lines: list[str] = []
        for body in bodies:
            lines.append(json.dumps({"index": index}))
            lines.append(json.dumps(body, ensure_ascii=False))
        response = self.client.msearch(body="\n".join(lines) + "\n")
        return list(response["responses"])

    def feature_clause(
        self, field: str, key: str, boost: float = 1.0, name: str | None = None
    ) -> dict[str, Any]:
        """Return a query clause that scores the weight of term ``key`` in ``field``."""
        raise NotImplementedError

    def analyze(
        self, index: str, field: str, texts: list[str]
    ) -> list[tuple[str, int]]:
        response = self.client.indices.analyze(
            index=index, body={"field": field, "text": texts}
        )
        return [
            (token["token"], int(token["position"])) for token in response["tokens"]
        ]

    # --- indices and mappings ------------------------------------------------------

    def get_mapping(self, index: str) -> dict[str, Any]:
        response = self.client.indices.get_mapping(index=index)
        (entry,) = response.values()
        mapping: dict[str, Any] = entry.get("mappings", {})
        return mapping

    def put_mapping(self, index: str, properties: dict[str, Any]) -> None:
        """Add ``properties`` to the mapping of ``index``.

        Raises:
            ClusterError: the cluster rejected the mapping, for example because
                an analyzer it names is not installed.
        """
        try:
            self.client.indices.put_mapping(
                index=index, body={"properties": properties}
            )
        except client_errors() as error:
            raise ClusterError(
                f"{self.name} {self.version} rejected the mapping of index {index!r}: "
                f"{api_error_reason(error)}; if it names a missing analyzer, choose "
                f"an installed one with --analyzer"
            ) from error

    def index_exists(self, index: str) -> bool:
        return bool(self.client.indices.exists(index=index))

    def refresh(self, index: str) -> None:
        self.client.indices.refresh(index=index)

    def create_index(
        self,
        index: str,
        settings: dict[str, Any] | None = None,
        mappings: dict[str, Any] | None = None,
    ) -> None:
        body: dict[str, Any] = {}
        if settings:
            body["settings"] = settings
        if mappings:
            body["mappings"] = mappings
        self.client.indices.create(index=index, body=body)

    def delete_index(self, index: str) -> None:
        self.client.indices.delete(index=index, ignore_unavailable=True)

    def get_source(self, index: str, doc_id: str) -> dict[str, Any]:
        """Return the whole ``_source`` of one document."""
        source: dict[str, Any] = self.client.get(index=index, id=doc_id)["_source"]
        return source

    def index_document(
        self, index: str, doc_id: str, source: dict[str, Any], refresh: bool = False
    ) -> None:
        raise NotImplementedError


class OpenSearchEngine(Engine):
    """OpenSearch 2.4 and newer through opensearch-py."""

    name = "opensearch"
    # OpenSearch 2.x has no _shard_doc, so the unique tiebreaker of a point in
    # time search is _id. NOTE: sorting on _id loads _id field data on the heap.
    pit_sort = [{"_id": "asc"}]

    @classmethod
    def create_client(cls, config: ConnectionConfig) -> Any:
        from opensearchpy import OpenSearch

        options: dict[str, Any] = {
            "hosts": [config.url],
            "timeout": config.request_timeout,
            "verify_certs": not config.insecure,
            "ssl_show_warn": not config.insecure,
            # The reader, the model loop and the writer send requests from
            # their own threads; the client's default pool keeps one connection.
            "pool_maxsize": 4,
        }
        if config.ca_certs:
            options["ca_certs"] = config.ca_certs
        if config.username:
            options["http_auth"] = (config.username, config.password or "")
        if config.api_key:
            options["headers"] = {"Authorization": f"ApiKey {config.api_key}"}
        if config.aws_region:
            options.update(aws_signing_options(config.aws_region, config.aws_service))
        return OpenSearch(**options)

    def open_pit(self, index: str, keep_alive: str) -> str:
        response = self.client.create_pit(
            index=index, params={"keep_alive": keep_alive}
        )
        return str(response["pit_id"])

    def close_pit(self, pit_id: str) -> None:
        self.client.delete_pit(body={"pit_id": [pit_id]})

    def search(
        self, index: str, body: dict[str, Any], named_scores: bool = False
    ) -> dict[str, Any]:
        params = {"include_named_queries_score": "true"} if named_scores else {}
        response: dict[str, Any] = self.client.search(
            index=index, body=body, params=params
        )
        return response

    def feature_clause(
        self, field: str, key: str, boost: float = 1.0, name: str | None = None
    ) -> dict[str, Any]:
        # rank_feature with its default saturation function.
        clause: dict[str, Any] = {"field": f"{field}.{key}", "boost": boost}
        if name is not None:
            clause["_name"] = name
        return {"rank_feature": clause}

    def index_document(
        self, index: str, doc_id: str, source: dict[str, Any], refresh: bool = False
    ) -> None:
        params = {"refresh": "true"} if refresh else {}
        self.client.index(index=index, id=doc_id, body=source, params=params)


class ElasticsearchEngine(Engine):
    """Elasticsearch 8.11 and newer through the ``elasticsearch`` package.

    The expansion's term weights are a ``sparse_vector`` field, which lives in
    the server core since 8.11, so d2q needs no module beyond the minimal
    distribution (``rank_features`` needs the mapper-extras module).
    """

    name = "elasticsearch"
    # _shard_doc is the cheap unique tiebreaker of a point in time search.
    pit_sort = [{"_shard_doc": "asc"}]
    # Elasticsearch 9.x leaves vector fields out of _source unless requested,
    # and the document write method must index them again.
    # NOTE: 9.2 as the first version that does so is an assumption; only 9.5
    # is tested.
    EXCLUDE_VECTORS_SINCE: ClassVar[tuple[int, ...]] = (9, 2)

    @classmethod
    def create_client(cls, config: ConnectionConfig, major: int | None) -> Any:
        module = elasticsearch_module(major)
        options: dict[str, Any] = {
            "hosts": [config.url],
            "request_timeout": config.request_timeout,
            "verify_certs": not config.insecure,
            "ssl_show_warn": not config.insecure,
        }
        if config.ca_certs:
            options["ca_certs"] = config.ca_certs
        if config.username:
            options["basic_auth"] = (config.username, config.password or "")
        if config.api_key:
            options["api_key"] = config.api_key
        return module.Elasticsearch(**options)

    @property
    def _keeps_vectors_apart(self) -> bool:
        return self.version_tuple >= self.EXCLUDE_VECTORS_SINCE

    def open_pit(self, index: str, keep_alive: str) -> str:
        response = self.client.open_point_in_time(index=index, keep_alive=keep_alive)
        return str(response["id"])

    def close_pit(self, pit_id: str) -> None:
        self.client.close_point_in_time(id=pit_id)

    def search(
        self, index: str, body: dict[str, Any], named_scores: bool = False
    ) -> dict[str, Any]:
        extra = {"include_named_queries_score": True} if named_scores else {}
        response: dict[str, Any] = self.client.search(index=index, body=body, **extra)
        return dict(response)

    def feature_clause(
        self, field: str, key: str, boost: float = 1.0, name: str | None = None
    ) -> dict[str, Any]:
        # A term query on a sparse_vector field scores the stored weight
        # linearly: weight * boost.
        clause: dict[str, Any] = {"value": key, "boost": boost}
        if name is not None:
            clause["_name"] = name
        return {"term": {f"{field}": clause}}

    def get_source(self, index: str, doc_id: str) -> dict[str, Any]:
        extra = {"source_exclude_vectors": False} if self._keeps_vectors_apart else {}
        source: dict[str, Any] = self.client.get(index=index, id=doc_id, **extra)[
            "_source"
        ]
        return source

    def index_document(
        self, index: str, doc_id: str, source: dict[str, Any], refresh: bool = False
    ) -> None:
        self.client.index(index=index, id=doc_id, document=source, refresh=refresh)

    def get_documents(self, keys: Sequence[DocumentKey]) -> list[dict[str, Any]]:
        if not self._keeps_vectors_apart:
            return super().get_documents(keys)
        # The client has no parameter for this query string option.
        response = self.client.perform_request(
            "POST",
            "/_mget",
            params={"_source_exclude_vectors": "false"},
            headers={"accept": "application/json", "content-type": "application/json"},
            body={"docs": _mget_docs(keys)},
        )
        return list(response.body["docs"])


def _mget_docs(keys: Sequence[DocumentKey]) -> list[dict[str, Any]]:
    docs: list[dict[str, Any]] = []
    for index, doc_id, routing in keys:
        doc = {"_index": index, "_id": doc_id}
        if routing is not None:
            doc["routing"] = routing
        docs.append(doc)
    return docs


ENGINE_CLASSES: dict[str, type[Engine]] = {
    "opensearch": OpenSearchEngine,
    "elasticsearch": ElasticsearchEngine,
}


def _detect_write_method(client: Any, server: str) -> WriteMethod:
    """Pick the script method where painless inline scripts run, else documents."""
    try:
        languages = client.get_script_languages()
    except client_errors() as error:
        logger.warning(
            "could not list the script languages of %s (%s); assuming painless runs",
            server,
            api_error_reason(error),
        )
        return "script"
    contexts = languages.get("language_contexts") or []
    painless = any(entry.get("language") == "painless" for entry in contexts)
    inline = "inline" in (languages.get("types_allowed") or ["inline"])
    if painless and inline:
        return "script"
    logger.info(
        "%s runs no painless inline scripts; expansions are written by indexing "
        "whole documents",
        server,
    )
    return "document"


def _server_info(config: ConnectionConfig) -> ServerInfo | None:
    """Detect the server, or with ``--engine`` read only its version if it responds."""
    if config.engine == "auto":
        server = detect_server(config.url, config.http_options())
        check_supported(server)
        return server
    try:
        server = detect_server(config.url, config.http_options())
    except ClusterError as error:
        logger.warning("engine set to %s; version unknown: %s", config.engine, error)
        return None
    if server.engine != config.engine:
        logger.warning(
            "engine set to %s, but %s reports itself as %s",
            config.engine,
            config.url,
            server.describe(),
        )
        return None
    check_supported(server)
    return server


def connect(config: ConnectionConfig) -> Engine:
    """Connect to the cluster at ``config.url`` and return its engine adapter.

    The engine and its version come from the root endpoint unless
    ``config.engine`` names the engine.

    Raises:
        ClusterError: the engine name or write method is unknown, the server
            cannot be reached or runs an unsupported version, or no client
            library of the server's major version is installed.
    """
    if config.aws_region and config.engine == "auto":
        # NOTE: detection sends an unsigned request, which an AWS domain
        # rejects, so a signed connection is taken to be OpenSearch and its
        # version stays unknown.
        config = dataclasses.replace(config, engine="opensearch")
    if config.engine not in ("auto", *ENGINE_CLASSES):
        known = ", ".join(["auto", *ENGINE_CLASSES])
        raise ClusterError(
            f"engine {config.engine!r} is not supported; use one of {known}"
        )
    if config.write_method not in WRITE_METHODS:
        raise ClusterError(
            f"write method {config.write_method!r} is not supported; use one of "
            + ", ".join(WRITE_METHODS)
        )
    server = _server_info(config)
    engine_name = server.engine if server is not None else config.engine
    version = server.version if server is not None else "unknown"
    if engine_name == "elasticsearch":
        major = server.major if server is not None else None
        client = ElasticsearchEngine.create_client(config, major)
    else:
        client = OpenSearchEngine.create_client(config)
    if config.write_method == "auto":
        title = f"{engine_name} {version} at {config.url}"
        write_method = _detect_write_method(client, title)
    else:
        write_method = cast(WriteMethod, config.write_method)
    engine = ENGINE_CLASSES[engine_name](client, version, write_method)
    logger.info("connected to %s at %s", engine.describe(), config.url)
    return engine
