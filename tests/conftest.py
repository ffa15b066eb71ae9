"""Session fixtures: a real local OpenSearch and a tiny mT5 model, built once."""

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


@pytest.fixture(scope="session")
def opensearch_url() -> Iterator[str]:
    """URL of a real OpenSearch node on 127.0.0.1, started once per test session.

    D2Q_TEST_OPENSEARCH_URL points the tests at a server that runs already.
    A node this fixture started is stopped at the end unless
    D2Q_TEST_KEEP_SERVERS=1.
    """
    if os.environ.get("D2Q_TEST_OPENSEARCH_URL"):
        yield os.environ["D2Q_TEST_OPENSEARCH_URL"]
        return
    from worker.cluster import local

    node = local.get_node("opensearch", OPENSEARCH_TEST_PORT)
    was_running = bool(local.status(node)["answering"])
    url = local.start(node)
    yield url
    if not was_running and os.environ.get("D2Q_TEST_KEEP_SERVERS") != "1":
        local.stop(node)


@pytest.fixture()
def engine(opensearch_url: str):
    """An engine adapter connected to the test OpenSearch."""
    from worker.cluster.engine import ConnectionConfig, connect

    return connect(ConnectionConfig(url=opensearch_url))


@pytest.fixture()
def index_name(engine) -> Iterator[str]:
    """A unique index name; the index is deleted after the test."""
    name = f"d2q-test-{uuid.uuid4().hex[:10]}"
    yield name
    engine.client.indices.delete(index=name, ignore_unavailable=True)
