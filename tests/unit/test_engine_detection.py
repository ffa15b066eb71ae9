"""Engine detection, supported versions, client choice and retryable errors."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator

import elastic_transport
import elasticsearch
import pytest
from opensearchpy.exceptions import ConnectionError as OpenSearchConnectionError
from opensearchpy.exceptions import TransportError as OpenSearchTransportError

from worker.cluster.clients import elasticsearch_module, is_retryable
from worker.cluster.detect import (
    HttpOptions,
    ServerInfo,
    _headers,
    check_supported,
    detect_server,
    parse_version,
    supported_versions_text,
)
from worker.cluster.engine import ConnectionConfig, connect
from worker.errors import ClusterError


@pytest.mark.parametrize(
    ("number", "expected"),
    [
        ("9.5.0", (9, 5, 0)),
        ("2.19.6", (2, 19, 6)),
        ("9.6.0-SNAPSHOT", (9, 6, 0)),
        ("8", (8,)),
    ],
)
def test_parse_version_reads_numbers(number, expected):
    assert parse_version(number) == expected


def test_parse_version_rejects_text():
    with pytest.raises(ClusterError, match="not a number"):
        parse_version("unknown")


@pytest.mark.parametrize(
    ("engine", "version"),
    [
        ("opensearch", "2.4.0"),
        ("opensearch", "3.1.0"),
        ("elasticsearch", "8.11.0"),
        ("elasticsearch", "9.5.0"),
    ],
)
def test_supported_versions_pass(engine, version):
    check_supported(ServerInfo(engine, version))


@pytest.mark.parametrize(
    ("engine", "version"),
    [
        ("opensearch", "1.3.20"),
        ("opensearch", "2.3.0"),
        ("opensearch", "4.0.0"),
        ("elasticsearch", "7.17.25"),
        ("elasticsearch", "8.10.4"),
        ("elasticsearch", "10.0.0"),
    ],
)
def test_unsupported_version_names_supported_ones(engine, version):
    with pytest.raises(ClusterError, match=f"{version} is not supported") as raised:
        check_supported(ServerInfo(engine, version))

    assert supported_versions_text() in str(raised.value)
    assert "Elasticsearch 8.11 to 9.x" in str(raised.value)
    assert "OpenSearch 2.4 to 3.x" in str(raised.value)


def test_missing_client_major_names_pip_command():
    installed = int(elasticsearch.__versionstr__.split(".")[0])
    other = 8 if installed != 8 else 9

    with pytest.raises(
        ClusterError, match=f"pip install 'elasticsearch>={other},<{other + 1}'"
    ):
        elasticsearch_module(other)


def test_installed_client_major_is_chosen():
    installed = int(elasticsearch.__versionstr__.split(".")[0])

    assert (
        elasticsearch_module(installed).__versionstr__ == elasticsearch.__versionstr__
    )


def test_unknown_engine_is_rejected():
    with pytest.raises(ClusterError, match="engine 'solr' is not supported"):
        connect(ConnectionConfig(url="http://127.0.0.1:9", engine="solr"))


def test_unknown_write_method_is_rejected():
    with pytest.raises(ClusterError, match="write method 'merge' is not supported"):
        connect(ConnectionConfig(url="http://127.0.0.1:9", write_method="merge"))


@pytest.fixture()
def plain_web_server(tmp_path) -> Iterator[str]:
    """A static file server on 127.0.0.1: a wrong target, not a search engine."""
    (tmp_path / "index.html").write_text("<html>not a search engine</html>")

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=str(tmp_path), **kwargs)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_plain_web_server_is_not_an_engine(plain_web_server):
    with pytest.raises(ClusterError, match="is neither OpenSearch nor Elasticsearch"):
        detect_server(plain_web_server)


def test_closed_port_gives_clear_error():
    with pytest.raises(
        ClusterError, match="could not reach the cluster at http://127.0.0.1:9/"
    ):
        detect_server("http://127.0.0.1:9")


def _elastic_error(status: int) -> elasticsearch.ApiError:
    meta = elastic_transport.ApiResponseMeta(
        status=status,
        http_version="1.1",
        headers=elastic_transport.HttpHeaders(),
        duration=0.0,
        node=elastic_transport.NodeConfig("http", "127.0.0.1", 9200),
    )
    return elasticsearch.ApiError("rejected", meta, {"error": "rejected"})


@pytest.mark.parametrize("status", [429, 502, 503, 504])
def test_rejections_are_retryable(status):
    assert is_retryable(_elastic_error(status))
    assert is_retryable(OpenSearchTransportError(status, "rejected", {}))


@pytest.mark.parametrize("status", [400, 404, 409, 500])
def test_other_statuses_are_not_retryable(status):
    assert not is_retryable(_elastic_error(status))
    assert not is_retryable(OpenSearchTransportError(status, "rejected", {}))


def test_connection_errors_are_retryable():
    assert is_retryable(elastic_transport.ConnectionError("refused"))
    assert is_retryable(elastic_transport.ConnectionTimeout("timed out"))
    assert is_retryable(OpenSearchConnectionError("N/A", "refused", None))


def test_elasticsearch_client_refused_connection_is_retryable():
    client = elasticsearch.Elasticsearch("http://127.0.0.1:9", max_retries=0)

    with pytest.raises(elastic_transport.ConnectionError) as raised:
        client.count(index="any")

    assert is_retryable(raised.value)


def test_programming_errors_are_not_retryable():
    assert not is_retryable(ValueError("bad value"))
    assert not is_retryable(elastic_transport.SerializationError("bad body"))


def test_detection_sends_api_key():
    headers = _headers(HttpOptions(api_key="a2V5OnNlY3JldA==", username="ignored"))

    assert headers["Authorization"] == "ApiKey a2V5OnNlY3JldA=="


def test_detection_sends_basic_auth():
    headers = _headers(HttpOptions(username="elastic", password="changeme"))

    assert headers["Authorization"] == "Basic ZWxhc3RpYzpjaGFuZ2VtZQ=="


def test_detection_without_credentials_sends_none():
    assert "Authorization" not in _headers(HttpOptions())
