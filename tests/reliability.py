"""Helpers of the fault and bad-input tests: pipelines, model wrappers, checks."""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from tests.support import FAST_GENERATION
from worker.assembly import build_pipeline
from worker.cluster import local
from worker.expansion.document import source_hash
from worker.expansion.text import extract_text
from worker.pipeline import Pipeline
from worker.settings import load_settings

# Ports of the servers and proxies these tests start themselves.
RESTARTABLE_NODE_PORT = 9260
PROXY_PORT = 9262
TLS_PROXY_PORT = 9263
# A point in time opened on the restartable node lives as short as asked:
# the first phase of opening it keeps it 1 s instead of 30 s, and expired
# contexts are removed every second instead of every minute.
RESTARTABLE_NODE_SETTINGS = {
    "search.keep_alive_interval": "1s",
    "point_in_time.init.keep_alive": "1s",
}


def restartable_node() -> local.LocalNode:
    """The local OpenSearch node that outage tests stop and start."""
    distribution = dataclasses.replace(
        local.OPENSEARCH, extra_settings=RESTARTABLE_NODE_SETTINGS
    )
    return local.LocalNode(distribution, RESTARTABLE_NODE_PORT)


def fast_flags() -> dict[str, Any]:
    """The FAST_GENERATION command line options as settings flags."""
    pairs = zip(FAST_GENERATION[::2], FAST_GENERATION[1::2], strict=True)
    return {name.lstrip("-").replace("-", "_"): int(value) for name, value in pairs}


def make_pipeline(
    engine: Any, url: str, index: str, model: Path, **overrides: Any
) -> Pipeline:
    """Build the pipeline the CLI would build, from flags over the fast defaults."""
    from worker.cluster.mapping import ensure_expansion_mapping

    flags = {
        "url": url,
        "index": index,
        "model": str(model),
        "device": "cpu",
        **fast_flags(),
        **overrides,
    }
    settings = load_settings(flags, {})
    ensure_expansion_mapping(engine, index, settings.expansion_field, settings.analyzer)
    return build_pipeline(settings, engine)


class HookedGenerator:
    """Wraps a real generator and runs ``before`` ahead of every generate call."""

    def __init__(self, inner: Any, before: Callable[[Sequence[str]], None]) -> None:
        self.inner = inner
        self.config = inner.config
        self.before = before
        self.calls = 0

    def count_tokens(self, text: str) -> int:
        return int(self.inner.count_tokens(text))

    def generate(self, paragraphs: Sequence[str]) -> list[list[str]]:
        self.calls += 1
        self.before(paragraphs)
        return list(self.inner.generate(paragraphs))


def hook_generator(
    pipeline: Pipeline, before: Callable[[Sequence[str]], None]
) -> HookedGenerator:
    """Put a HookedGenerator around the pipeline's generator."""
    hooked = HookedGenerator(pipeline.generator, before)
    pipeline.generator = hooked
    pipeline.expander.generator = hooked
    return hooked


def check_expansion(
    source: dict[str, Any],
    fingerprint: str | None = None,
    fields: Sequence[str] = ("title", "text"),
) -> list[str]:
    """Return what is wrong with a document's expansion; empty when it is valid.

    A valid expansion is whole: status expanded with queries, one paragraph
    number per query, positive finite weights without dots in their keys, and
    the hash of the document's current text.
    """
    problems: list[str] = []
    expansion = source.get("doc2query")
    if not isinstance(expansion, dict):
        return [f"no expansion object: {expansion!r}"]
    if expansion.get("status") != "expanded":
        problems.append(f"status {expansion.get('status')!r}")
    queries = expansion.get("queries") or []
    if not queries:
        problems.append("no queries")
    if len(expansion.get("query_paragraph") or []) != len(queries):
        problems.append("query_paragraph does not match queries")
    terms = expansion.get("terms") or {}
    if not terms:
        problems.append("no terms")
    for key, weight in terms.items():
        if "." in key or not key:
            problems.append(f"bad term key {key!r}")
        if not (isinstance(weight, (int, float)) and 0 < weight < float("inf")):
            problems.append(f"bad weight {weight!r} of {key!r}")
    text = extract_text(source, fields).text
    if expansion.get("source_hash") != source_hash(text):
        problems.append("source_hash is not the hash of the current text")
    if fingerprint is not None and expansion.get("fingerprint") != fingerprint:
        problems.append("fingerprint is not the current one")
    return problems


def all_sources(engine: Any, index: str) -> dict[str, dict[str, Any]]:
    """Return every document of ``index`` by id."""
    engine.refresh(index)
    body = {"size": 10_000, "query": {"match_all": {}}, "_source": False}
    response = engine.search(index, body)
    # get_source requests the vector fields that Elasticsearch leaves out of
    # search hits.
    ids = [hit["_id"] for hit in response["hits"]["hits"]]
    return {doc_id: engine.get_source(index, doc_id) for doc_id in ids}


def count_status(engine: Any, index: str, status: str) -> int:
    """Count the documents whose expansion has ``status``, after a refresh."""
    engine.refresh(index)
    return int(engine.count(index, {"term": {"doc2query.status": status}}))


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll ``condition`` every 0.2 s; raise AssertionError after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def d2q_environment(**variables: str) -> dict[str, str]:
    """The environment of a d2q child process: no D2Q_* of ours, plus ``variables``."""
    environment = {
        key: value for key, value in os.environ.items() if not key.startswith("D2Q_")
    }
    environment.update(variables)
    return environment


def start_d2q(arguments: Sequence[str], **variables: str) -> subprocess.Popen[str]:
    """Start the d2q command line in a child process with piped output."""
    return subprocess.Popen(
        [sys.executable, "-m", "worker", *arguments],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=d2q_environment(**variables),
    )


def run_d2q_with(
    arguments: Sequence[str], timeout: float = 300, **variables: str
) -> subprocess.CompletedProcess[str]:
    """Run the d2q command line to its end with extra environment variables."""
    return subprocess.run(
        [sys.executable, "-m", "worker", *arguments],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=d2q_environment(**variables),
        check=False,
    )


class RecordList(logging.Handler):
    """Keeps the log records of the ``worker`` loggers for a test to read."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def messages(self, containing: str = "") -> list[str]:
        texts = [record.getMessage() for record in self.records]
        return [text for text in texts if containing in text]


@contextlib.contextmanager
def recorded_logs(level: int = logging.INFO) -> Iterator[RecordList]:
    """Record what the ``worker`` loggers log at ``level`` and above."""
    logger = logging.getLogger("worker")
    handler = RecordList()
    previous = logger.level
    logger.addHandler(handler)
    logger.setLevel(level)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        logger.setLevel(previous)
