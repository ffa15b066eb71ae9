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
    "--queries-per-paragraph", "5",
    "--min-new-tokens", "3",
    "--max-new-tokens", "8",
    "--seed", "7",
]


def create_index(engine: Any, name: str, documents: Iterable[dict[str, Any]], mapping: dict | None = None) -> None:
    """Create ``name`` with one shard per default and bulk-index ``documents`` (each has _id)."""
    engine.client.indices.create(
        index=name,
        body={"settings": {"number_of_shards": 2, "number_of_replicas": 0}, "mappings": mapping or TEXT_MAPPING},
    )
    lines: list[str] = []
    for document in documents:
        body = dict(document)
        doc_id = body.pop("_id")
        lines.append(json.dumps({"index": {"_index": name, "_id": doc_id}}))
        lines.append(json.dumps(body, ensure_ascii=False))
    if lines:
        response = engine.client.bulk(body="\n".join(lines) + "\n", params={"refresh": "true"})
        errors = [item for item in response["items"] if "error" in next(iter(item.values()))]
        assert not errors, errors
    else:
        engine.client.indices.refresh(index=name)


def fetch(engine: Any, index: str, doc_id: str) -> dict[str, Any]:
    """Return the _source of one document."""
    return engine.client.get(index=index, id=doc_id)["_source"]


def cli_arguments(url: str, index: str, model: Path, *extra: str) -> list[str]:
    return ["--url", url, "--index", index, "--model", str(model), *FAST_GENERATION, *extra]


def run_d2q(arguments: Sequence[str], timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """Run the d2q command line in a child process."""
    environment = {key: value for key, value in os.environ.items() if not key.startswith("D2Q_")}
    return subprocess.run(
        [sys.executable, "-m", "worker", *arguments],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=environment,
        check=False,
    )
