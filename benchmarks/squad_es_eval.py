"""Measure search with the expansion on squad-es-dev, with real questions as the expansion.

The corpus is indexed, and each paragraph's questions are split in two: the
questions at odd positions (in file order) are imported as its expansion with
``d2q import-queries``, and those at even positions are the evaluation queries
of ``d2q eval``. A paragraph with one question gets no expansion, and its
question is evaluated.

Usage (a running OpenSearch on 127.0.0.1:9280, from the repository root)::

    python benchmarks/squad_es_eval.py --url http://127.0.0.1:9280 --out out/squad-es
    python benchmarks/squad_es_eval.py --url http://127.0.0.1:9280 --out out/squad-es --tune

``--tune`` also searches a grid of query weights and prints the best ones, and
``--designs`` compares the query designs that were tried.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from worker.cli import main as d2q  # noqa: E402
from worker.cluster.engine import ConnectionConfig, connect  # noqa: E402

DATA = REPO / "data" / "squad-es-dev"
INDEX_BODY: dict[str, Any] = {
    # One shard, so every document's BM25 uses the same term statistics.
    "settings": {"number_of_shards": 1, "number_of_replicas": 0},
    "mappings": {
        "properties": {
            "title": {"type": "text", "analyzer": "spanish"},
            "text": {"type": "text", "analyzer": "spanish"},
        }
    },
}
# The text weight scales the whole clause, so only the other two are searched.
TEXT_WEIGHTS = (1.0,)
QUERIES_WEIGHTS = (0.5, 0.75, 1.0)
TERMS_WEIGHTS = (0.0, 0.5, 1.0, 2.0)


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    with path.open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def split_questions(out: Path) -> tuple[Path, Path, Path]:
    """Write the import file and the evaluation queries and qrels into ``out``."""
    queries = {row["_id"]: row["text"] for row in read_jsonl(DATA / "queries.jsonl")}
    by_paragraph: dict[str, list[str]] = defaultdict(list)
    with (DATA / "qrels.tsv").open(encoding="utf-8") as handle:
        next(handle)
        for line in handle:
            query_id, corpus_id, _score = line.rstrip("\n").split("\t")
            by_paragraph[corpus_id].append(query_id)

    import_path, queries_path, qrels_path = (
        out / "import.jsonl",
        out / "eval-queries.jsonl",
        out / "eval-qrels.tsv",
    )
    with (
        import_path.open("w", encoding="utf-8") as imports,
        queries_path.open("w", encoding="utf-8") as evaluation,
        qrels_path.open("w", encoding="utf-8") as qrels,
    ):
        qrels.write("query-id\tcorpus-id\tscore\n")
        for corpus_id, query_ids in by_paragraph.items():
            imported = [queries[q] for q in query_ids[1::2]]
            if imported:
                row = {"id": corpus_id, "queries": imported}
                imports.write(json.dumps(row, ensure_ascii=False) + "\n")
            for query_id in query_ids[0::2]:
                row = {"_id": query_id, "text": queries[query_id]}
                evaluation.write(json.dumps(row, ensure_ascii=False) + "\n")
                qrels.write(f"{query_id}\t{corpus_id}\t1\n")
    return import_path, queries_path, qrels_path


def load_corpus(url: str, index: str) -> None:
    """Create ``index`` afresh and bulk-index the corpus."""
    engine = connect(ConnectionConfig(url=url))
    engine.client.indices.delete(index=index, ignore_unavailable=True)
    engine.client.indices.create(index=index, body=INDEX_BODY)
    rows = read_jsonl(DATA / "corpus.jsonl")
    for start in range(0, len(rows), 500):
        lines: list[str] = []
        for row in rows[start : start + 500]:
            lines.append(json.dumps({"index": {"_index": index, "_id": row["_id"]}}))
            lines.append(
                json.dumps(
                    {"title": row["title"], "text": row["text"]}, ensure_ascii=False
                )
            )
        response = engine.client.bulk(body="\n".join(lines) + "\n")
        if response["errors"]:
            raise SystemExit(f"indexing the corpus failed: {response['items'][:3]}")
    engine.client.indices.refresh(index=index)


def tokenizer_model(out: Path, model: str | None) -> str:
    """Return the model whose tokenizer splits paragraphs; build a tiny one if none."""
    if model:
        return model
    from worker.model.tiny import build_tiny_model

    target = out / "tiny-model"
    if not (target / "config.json").is_file():
        texts = [row["text"] for row in read_jsonl(DATA / "corpus.jsonl")]
        build_tiny_model(target, texts)
    return str(target)


def tune(url: str, index: str, queries_path: Path, qrels_path: Path) -> None:
    """Print nDCG@10 and MRR@10 of the combined query over a grid of weights."""
    from worker.evaluate import (
        analyse_queries,
        judged_queries,
        read_qrels,
        read_queries,
        retrieve,
        score_runs,
    )
    from worker.search import QuerySpec, SearchWeights

    engine = connect(ConnectionConfig(url=url))
    qrels = read_qrels(qrels_path)
    queries = judged_queries(read_queries(queries_path), qrels)
    terms = analyse_queries(engine, index, "doc2query", queries)
    runs = {}
    for text, queries_weight, terms_weight in itertools.product(
        TEXT_WEIGHTS, QUERIES_WEIGHTS, TERMS_WEIGHTS
    ):
        weights = SearchWeights(text, queries_weight, terms_weight)
        spec = QuerySpec(("title", "text"), "doc2query", weights)
        name = f"text={text} queries={queries_weight} terms={terms_weight}"
        runs[name] = retrieve(engine, index, queries, terms, spec)
    results = score_runs(qrels, runs)
    results.sort(key=lambda result: -result.scores["nDCG@10"])
    for result in results:
        scores = " ".join(
            f"{metric}={value:.4f}" for metric, value in result.scores.items()
        )
        print(f"{result.name:<40} {scores}")


def _sum_design(text: str, queries_weight: float) -> dict[str, Any]:
    """The first design: BM25 of the text plus BM25 of the queries, summed."""
    should: list[dict[str, Any]] = [
        {
            "multi_match": {
                "query": text,
                "fields": ["title", "text"],
                "type": "most_fields",
            }
        }
    ]
    if queries_weight > 0:
        match = {"query": text, "boost": queries_weight}
        should.append({"match": {"doc2query.queries": match}})
    return {"bool": {"should": should}}


def _cross_design(text: str, with_queries: bool) -> dict[str, Any]:
    """The chosen design: one cross_fields clause over the text and the queries."""
    fields = ["title", "text", *(["doc2query.queries"] if with_queries else [])]
    return {"multi_match": {"query": text, "fields": fields, "type": "cross_fields"}}


DESIGNS: dict[str, Any] = {
    "most_fields text": lambda text: _sum_design(text, 0.0),
    "sum, queries 1.0": lambda text: _sum_design(text, 1.0),
    "sum, queries 0.25": lambda text: _sum_design(text, 0.25),
    "cross_fields text": lambda text: _cross_design(text, False),
    "cross_fields +queries": lambda text: _cross_design(text, True),
}


def compare_designs(url: str, index: str, queries_path: Path, qrels_path: Path) -> None:
    """Print the metrics of the summed and the cross_fields designs, no term weights."""
    from worker.evaluate import judged_queries, read_qrels, read_queries, score_runs

    engine = connect(ConnectionConfig(url=url))
    qrels = read_qrels(qrels_path)
    queries = judged_queries(read_queries(queries_path), qrels)
    ids = list(queries)
    runs: dict[str, dict[str, dict[str, float]]] = {}
    for name, design in DESIGNS.items():
        run: dict[str, dict[str, float]] = {}
        for start in range(0, len(ids), 50):
            batch = ids[start : start + 50]
            bodies = [
                {"size": 100, "_source": False, "query": design(queries[query_id])}
                for query_id in batch
            ]
            for query_id, response in zip(
                batch, engine.msearch(index, bodies), strict=True
            ):
                hits = response["hits"]["hits"]
                run[query_id] = {hit["_id"]: float(hit["_score"]) for hit in hits}
        runs[name] = run
    for result in score_runs(qrels, runs):
        scores = " ".join(
            f"{metric}={value:.4f}" for metric, value in result.scores.items()
        )
        print(f"{result.name:<24} {scores}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default="http://127.0.0.1:9280")
    parser.add_argument("--index", default="squad-es-dev")
    parser.add_argument(
        "--out", default="out/squad-es", help="folder for the split files"
    )
    parser.add_argument("--model", help="model whose tokenizer splits paragraphs")
    parser.add_argument(
        "--tune", action="store_true", help="also search a grid of weights"
    )
    parser.add_argument(
        "--skip-load", action="store_true", help="reuse the loaded index"
    )
    parser.add_argument("--json", action="store_true", help="print the metrics as JSON")
    parser.add_argument(
        "--designs", action="store_true", help="also compare the query designs"
    )
    args = parser.parse_args()

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    import_path, queries_path, qrels_path = split_questions(out)
    if not args.skip_load:
        load_corpus(args.url, args.index)
        model = tokenizer_model(out, args.model)
        common = ["--url", args.url, "--index", args.index, "--log-level", "WARNING"]
        status = d2q(["import-queries", *common, "--model", model, str(import_path)])
        if status != 0:
            return status
        # Updates leave deleted documents whose term statistics BM25 still
        # counts until segments merge; merging makes the scores repeatable.
        engine = connect(ConnectionConfig(url=args.url))
        engine.client.indices.forcemerge(index=args.index, max_num_segments=1)
        engine.refresh(args.index)
    if args.tune:
        tune(args.url, args.index, queries_path, qrels_path)
    if args.designs:
        compare_designs(args.url, args.index, queries_path, qrels_path)
    evaluation = [
        "eval",
        "--url",
        args.url,
        "--index",
        args.index,
        "--log-level",
        "WARNING",
        "--queries",
        str(queries_path),
        "--qrels",
        str(qrels_path),
        "--plot",
        str(out / "evaluation.png"),
    ]
    if args.json:
        evaluation.append("--json")
    return d2q(evaluation)


if __name__ == "__main__":
    raise SystemExit(main())
