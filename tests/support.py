"""Helpers shared by the integration tests."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

TEXT_MAPPING = {
    "properties": {
        "title": {"type": "text", "analyzer": "spanish"},
        "text": {"type": "text", "analyzer": "spanish"},
    }
}

# Small generation settings so the tiny model runs fast on a CPU.
FAST_GENERATION = [
    "--queries-per-paragraph",
    "5",
    "--min-new-tokens",
    "3",
    "--max-new-tokens",
    "8",
    "--seed",
    "7",
]


# A stand-in for the built-in spanish analyser on servers without the
# analysis-common module (the Elasticsearch test node): the standard analyser
# with Spanish stop words, so d2q's default --analyzer spanish resolves.
# NOTE: it does not stem, unlike the built-in one.
SPANISH_STAND_IN = {
    "analyzer": {"spanish": {"type": "standard", "stopwords": "_spanish_"}}
}


def has_global_analyzer(engine: Any, name: str) -> bool:
    """Tell whether the cluster has analyser ``name`` without index settings."""
    try:
        engine.client.indices.analyze(body={"analyzer": name, "text": "prueba"})
    except Exception as error:  # noqa: BLE001 - either client's 400 error
        if "analyzer" in str(error).lower():
            return False
        raise
    return True


def index_settings(engine: Any) -> dict[str, Any]:
    """Settings of a test index: two shards, no replica, a spanish analyser."""
    settings: dict[str, Any] = {"number_of_shards": 2, "number_of_replicas": 0}
    if not has_global_analyzer(engine, "spanish"):
        settings["analysis"] = SPANISH_STAND_IN
    return settings


def create_index(
    engine: Any,
    name: str,
    documents: Iterable[dict[str, Any]],
    mapping: dict | None = None,
) -> None:
    """Create ``name`` with two shards and bulk-index ``documents`` (each has _id)."""
    engine.create_index(
        name, settings=index_settings(engine), mappings=mapping or TEXT_MAPPING
    )
    lines: list[str] = []
    for document in documents:
        body = dict(document)
        doc_id = body.pop("_id")
        lines.append(json.dumps({"index": {"_index": name, "_id": doc_id}}))
        lines.append(json.dumps(body, ensure_ascii=False))
    if lines:
        response = engine.bulk("\n".join(lines) + "\n")
        errors = [
            item for item in response["items"] if "error" in next(iter(item.values()))
        ]
        assert not errors, errors
    engine.refresh(name)


def fetch(engine: Any, index: str, doc_id: str) -> dict[str, Any]:
    """Return the whole _source of one document."""
    return engine.get_source(index, doc_id)


def cli_arguments(url: str, index: str, model: Path, *extra: str) -> list[str]:
    return [
        "--url",
        url,
        "--index",
        index,
        "--model",
        str(model),
        *FAST_GENERATION,
        *extra,
    ]


def run_d2q(
    arguments: Sequence[str], timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    """Run the d2q command line in a child process."""
    environment = {
        key: value for key, value in os.environ.items() if not key.startswith("D2Q_")
    }
    return subprocess.run(
        [sys.executable, "-m", "worker", *arguments],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=environment,
        check=False,
    )
