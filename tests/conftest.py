"""Session fixtures: real local servers of each engine and a tiny mT5 model.

Tests that take ``cluster_url`` or ``engine`` run once per engine, OpenSearch
and Elasticsearch, and each server starts once per test session. Environment
variables adjust this:

- D2Q_TEST_ENGINES: comma-separated engines to test (default both).
- D2Q_TEST_OPENSEARCH_URL, D2Q_TEST_ELASTICSEARCH_URL: use a server that runs
  already instead of starting one.
- D2Q_TEST_OPENSEARCH_PORT (default 9250), D2Q_TEST_ELASTICSEARCH_PORT
  (default 9251): ports of the servers the fixtures start.
- D2Q_TEST_ELASTICSEARCH_VERSION: another Elasticsearch release to start (on
  another port than the default one's; 8.x also needs the 8.x client).
- D2Q_TEST_KEEP_SERVERS=1: leave started servers running at the end.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SAMPLE_CORPUS = REPO / "data" / "squad-es-sample" / "corpus.jsonl"
OPENSEARCH_TEST_PORT = int(os.environ.get("D2Q_TEST_OPENSEARCH_PORT", "9250"))
ELASTICSEARCH_TEST_PORT = int(os.environ.get("D2Q_TEST_ELASTICSEARCH_PORT", "9251"))
TEST_PORTS = {
    "opensearch": OPENSEARCH_TEST_PORT,
    "elasticsearch": ELASTICSEARCH_TEST_PORT,
}
_ENGINES_SETTING = os.environ.get("D2Q_TEST_ENGINES", "opensearch,elasticsearch")
TEST_ENGINES = [name.strip() for name in _ENGINES_SETTING.split(",") if name.strip()]


def expected_version(engine: str) -> str | None:
    """Return the version the test node of ``engine`` runs, or None if preset."""
    if os.environ.get(f"D2Q_TEST_{engine.upper()}_URL"):
        return None
    from worker.cluster import local

    default = local.DISTRIBUTIONS[engine].version
    return os.environ.get(f"D2Q_TEST_{engine.upper()}_VERSION", default)


def read_sample(limit: int | None = None) -> list[dict]:
    """Return the sample paragraphs as dicts with _id, title and text."""
    with SAMPLE_CORPUS.open(encoding="utf-8") as handle:
        rows = [json.loads(line) for line in handle if line.strip()]
    return rows[:limit] if limit else rows


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random mT5 whose vocabulary is trained on the sample paragraphs."""
    from worker.model.tiny import build_tiny_model

    target = tmp_path_factory.mktemp("tiny-mt5")
    return build_tiny_model(target, [row["text"] for row in read_sample()])


@pytest.fixture(scope="session", params=TEST_ENGINES)
def engine_name(request: pytest.FixtureRequest) -> str:
    """Name of the engine under test; tests that use it run once per engine."""
    name = str(request.param)
    if name not in TEST_PORTS:
        pytest.fail(f"D2Q_TEST_ENGINES names {name!r}; use opensearch, elasticsearch")
    return name


@pytest.fixture(scope="session")
def cluster_url(engine_name: str) -> Iterator[str]:
    """URL of a real node of ``engine_name`` on 127.0.0.1, started once per session.

    A node this fixture started is stopped at the end unless
    D2Q_TEST_KEEP_SERVERS=1.
    """
    preset = os.environ.get(f"D2Q_TEST_{engine_name.upper()}_URL")
    if preset:
        yield preset
        return
    from worker.cluster import local

    version = expected_version(engine_name)
    node = local.get_node(engine_name, TEST_PORTS[engine_name], version=version)
    was_running = bool(local.status(node)["answering"])
    url = local.start(node)
    yield url
    if not was_running and os.environ.get("D2Q_TEST_KEEP_SERVERS") != "1":
        local.stop(node)


@pytest.fixture(scope="session")
def opensearch_url(cluster_url: str) -> str:
    """Former name of ``cluster_url``, kept for older tests; runs on every engine."""
    return cluster_url


@pytest.fixture()
def engine(cluster_url: str):
    """An engine adapter connected to the test node of the current engine."""
    from worker.cluster.engine import ConnectionConfig, connect

    return connect(ConnectionConfig(url=cluster_url))


@pytest.fixture()
def index_name(engine) -> Iterator[str]:
    """A unique index name; the index is deleted after the test."""
    name = f"d2q-test-{uuid.uuid4().hex[:10]}"
    yield name
    engine.delete_index(name)
