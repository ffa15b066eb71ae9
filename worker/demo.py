"""Expand a Spanish sample in a local cluster and show a search before and after.

Run with ``make demo``, which starts the local OpenSearch first, or as
``python -m worker.demo --url URL``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import socket
import sys
from pathlib import Path
from typing import Any

from worker.assembly import build_pipeline
from worker.cli import configure_logging
from worker.cluster.engine import ConnectionConfig, Engine, connect
from worker.cluster.mapping import ensure_expansion_mapping
from worker.errors import D2QError, ModelLoadError
from worker.expansion.terms import feature_key
from worker.settings import DEFAULT_MODEL, Settings

logger = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "data" / "squad-es-sample" / "corpus.jsonl"
TINY_MODEL_DIR = Path.home() / ".cache" / "d2q" / "tiny-model"
HUB_HOST = "huggingface.co"
# The real model on a CPU takes tens of seconds per paragraph, so the demo
# expands only this many documents with it.
REAL_MODEL_CPU_LIMIT = 10


def _read_sample(path: Path) -> list[dict[str, Any]]:
    with path.open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def _create_index(engine: Engine, index: str, rows: list[dict[str, Any]]) -> None:
    client = engine.client
    if client.indices.exists(index=index):
        client.indices.delete(index=index)
    text = {"type": "text", "analyzer": "spanish"}
    client.indices.create(
        index=index,
        body={
            "settings": {"number_of_shards": 1, "number_of_replicas": 0},
            "mappings": {"properties": {"title": text, "text": text}},
        },
    )
    lines = []
    for row in rows:
        lines.append(json.dumps({"index": {"_index": index, "_id": row["_id"]}}))
        lines.append(
            json.dumps({"title": row["title"], "text": row["text"]}, ensure_ascii=False)
        )
    client.bulk(body="\n".join(lines) + "\n", params={"refresh": "true"})


def _hub_resolves() -> bool:
    try:
        socket.getaddrinfo(HUB_HOST, 443)
    except OSError:
        return False
    return True


def _choose_model(requested: str) -> tuple[str, bool]:
    """Return (model, is_tiny): the requested model if it loads, else a tiny one."""
    from worker.model.torch_backend import load_model_and_tokenizer, resolve_device

    local_folder = Path(requested).is_dir()
    if local_folder or os.environ.get("HF_HUB_OFFLINE") == "1" or _hub_resolves():
        try:
            load_model_and_tokenizer(requested, resolve_device("cpu"))
            return requested, False
        except ModelLoadError as error:
            reason = str(error).splitlines()[0]
    else:
        reason = f"the model hub ({HUB_HOST}) is unreachable from this machine"
    print(
        f"Model {requested} cannot be loaded ({reason}); using a tiny random model instead, so its queries are random words."
    )
    if not (TINY_MODEL_DIR / "config.json").is_file():
        from worker.model.tiny import build_tiny_model

        build_tiny_model(TINY_MODEL_DIR, [row["text"] for row in _read_sample(SAMPLE)])
    return str(TINY_MODEL_DIR), True


def _analyse(engine: Engine, index: str, field: str, text: str) -> list[str]:
    return [token for token, _ in engine.analyze(index, field, [text])]


def _search(engine: Engine, index: str, word: str, term: str | None) -> list[str]:
    should: list[dict[str, Any]] = [
        {"multi_match": {"query": word, "fields": ["title", "text"]}}
    ]
    if term is not None:
        should.append({"match": {"doc2query.queries": word}})
        should.append(
            {
                "rank_feature": {
                    "field": f"doc2query.terms.{feature_key(term)}",
                    "boost": 2.0,
                }
            }
        )
    body = {"size": 5, "_source": False, "query": {"bool": {"should": should}}}
    response = engine.client.search(index=index, body=body)
    return [hit["_id"] for hit in response["hits"]["hits"]]


def _show_before_after(engine: Engine, index: str, vocabulary: set[str]) -> None:
    """Find a sample word that only the expansion of some document contains."""
    response = engine.client.search(
        index=index,
        body={
            "size": 50,
            "query": {"term": {"doc2query.status": "expanded"}},
            "sort": [{"_id": "asc"}],
        },
    )
    for hit in response["hits"]["hits"]:
        source = hit["_source"]
        own_terms = set(
            _analyse(engine, index, "text", f"{source['title']}\n{source['text']}")
        )
        for query in source["doc2query"]["queries"]:
            for word in query.split():
                if word.lower() not in vocabulary:
                    continue
                terms = _analyse(engine, index, "doc2query.queries", word)
                if len(terms) != 1 or terms[0] in own_terms:
                    continue
                before = _search(engine, index, word, None)
                after = _search(engine, index, word, terms[0])
                if hit["_id"] not in before and hit["_id"] in after:
                    print(
                        f"\nDocument {hit['_id']} ({source['title']}): {source['text'][:160]}..."
                    )
                    print(
                        f"Generated queries ({len(source['doc2query']['queries'])}), first five:"
                    )
                    for example in source["doc2query"]["queries"][:5]:
                        print(f"  - {example}")
                    print(
                        f"\nSearch for {word!r}, a word that is not in the document's text:"
                    )
                    print(f"  BM25 on title and text:         {before or 'no hits'}")
                    print(
                        f"  BM25 plus the expansion fields: {after}  <- found through its expansion"
                    )
                    return
    print(
        "No word found that only an expansion contains; run the demo again with another seed."
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--url", default="http://127.0.0.1:9200")
    parser.add_argument("--index", default="d2q-demo")
    parser.add_argument("--model", default=DEFAULT_MODEL)
    args = parser.parse_args(argv)
    configure_logging("WARNING", "text")
    try:
        engine = connect(ConnectionConfig(url=args.url))
        rows = _read_sample(SAMPLE)
        _create_index(engine, args.index, rows)
        print(
            f"Indexed {len(rows)} Spanish paragraphs into {args.index} at {args.url}."
        )
        model, is_tiny = _choose_model(args.model)
        settings = Settings(
            url=args.url, index=args.index, model=model, seed=1, progress=False
        )
        limit = None if is_tiny else REAL_MODEL_CPU_LIMIT
        if is_tiny:
            settings.min_new_tokens, settings.max_new_tokens = 3, 8
        ensure_expansion_mapping(
            engine, args.index, settings.expansion_field, settings.analyzer
        )
        pipeline = build_pipeline(settings, engine)
        summary = pipeline.backfill(limit)
        print(f"Backfill with {model}: {summary.line()}")
        vocabulary = {
            word
            for row in rows
            for word in row["text"].lower().split()
            if word.isalpha() and len(word) > 3
        }
        _show_before_after(engine, args.index, vocabulary)
    except D2QError as error:
        print(f"demo failed: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
