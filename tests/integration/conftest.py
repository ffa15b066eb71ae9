"""Fixtures of the fault tests: a node they may stop and start, and its engine."""

from __future__ import annotations

import fcntl
import os
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from tests.reliability import restartable_node
from worker.cluster import local
from worker.cluster.engine import ConnectionConfig, connect


@pytest.fixture(scope="session")
def restartable_url() -> Iterator[str]:
    """URL of a local OpenSearch node of the fault tests' own, on port 9260.

    Tests may stop and start it. It is stopped at the end of the session
    unless D2Q_TEST_KEEP_SERVERS=1.
    """
    node = restartable_node()
    node.node_dir.mkdir(parents=True, exist_ok=True)
    # Tests stop this node, so test sessions on one machine take turns.
    with open(node.node_dir / "tests.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        url = local.start(node, heap="384m")
        yield url
        if os.environ.get("D2Q_TEST_KEEP_SERVERS") != "1":
            local.stop(node)


@pytest.fixture()
def restartable_engine(restartable_url: str) -> Any:
    """An engine adapter connected to the restartable node (started if it is not)."""
    local.start(restartable_node(), heap="384m")
    return connect(ConnectionConfig(url=restartable_url))


@pytest.fixture()
def restartable_index(restartable_engine: Any) -> Iterator[str]:
    """A unique index name on the restartable node, deleted after the test."""
    name = f"d2q-fault-{uuid.uuid4().hex[:10]}"
    yield name
    local.start(restartable_node(), heap="384m")
    restartable_engine.client.indices.delete(index=name, ignore_unavailable=True)
