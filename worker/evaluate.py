"""Evaluate search with and without the expansion on a BEIR-layout query set.

Each variant of the combined query (plain BM25, each expansion part alone,
the parts combined) retrieves the top documents of every query. ranx computes
nDCG@10, MRR@10 and Recall@100 and a paired significance test of each
variant against plain BM25.
"""

from __future__ import annotations

import csv
import json
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from worker.cluster.engine import Engine
from worker.errors import InputFileError, SearchError
from worker.search import ALL_PARTS, Part, QuerySpec, analyse_query, build_query

logger = logging.getLogger(__name__)

# Metric names as ir-measures writes them, mapped to ranx's names.
METRICS: dict[str, str] = {
    "nDCG@10": "ndcg@10",
    "RR@10": "mrr@10",
    "R@100": "recall@100",
}
RUN_DEPTH = 100
MSEARCH_BATCH = 50
BASELINE = "bm25"
STAT_TESTS = ("student", "fisher", "tukey")
DEFAULT_STAT_TEST = "student"
SIGNIFICANCE_LEVEL = 0.05

Queries = dict[str, str]
Qrels = dict[str, dict[str, int]]
Run = dict[str, dict[str, float]]


@dataclass(frozen=True)
class Variant:
    """One way to query: a name and the parts of the combined query it uses."""

    name: str
    parts: tuple[Part, ...]


VARIANTS: tuple[Variant, ...] = (
    Variant(BASELINE, ("text",)),
    Variant("queries", ("queries",)),
    Variant("terms", ("terms",)),
    Variant("bm25+queries", ("text", "queries")),
    Variant("expanded", ALL_PARTS),
)


@dataclass
class VariantResult:
    """Mean metrics of one variant and its p-values against the baseline."""

    name: str
    scores: dict[str, float]
    p_values: dict[str, float] = field(default_factory=dict)


@dataclass
class EvaluationReport:
    """Results of every variant over one query set."""

    queries: int
    stat_test: str
    results: list[VariantResult]

    def as_dict(self) -> dict[str, Any]:
        """Return ``{variant: {metric: mean, ..., "p_vs_bm25": {...}}}``."""
        output: dict[str, Any] = {}
        for result in self.results:
            entry: dict[str, Any] = dict(result.scores)
            if result.p_values:
                entry[f"p_vs_{BASELINE}"] = dict(result.p_values)
            output[result.name] = entry
        return output


# --- input files -----------------------------------------------------------------


def read_queries(path: str | Path) -> Queries:
    """Read a BEIR ``queries.jsonl``: one ``{"_id", "text"}`` object per line.

    Raises:
        InputFileError: the file is missing, or a line is not such an object.
    """
    queries: Queries = {}
    for number, line in _lines(path):
        try:
            row = json.loads(line)
            query_id, text = str(row["_id"]), str(row["text"])
        except (json.JSONDecodeError, KeyError, TypeError) as error:
            raise InputFileError(
                str(path), f'line {number} is not a {{"_id", "text"}} object: {error}'
            ) from error
        if text.strip():
            queries[query_id] = text
        else:
            logger.warning(
                "%s line %d: query %s is blank; skipped", path, number, query_id
            )
    return queries


def read_qrels(path: str | Path) -> Qrels:
    """Read a BEIR qrels TSV: ``query-id corpus-id score``, an optional header first.

    Raises:
        InputFileError: the file is missing, or a row lacks three columns or an
            integer score.
    """
    qrels: Qrels = {}
    for number, line in _lines(path):
        row = next(csv.reader([line], delimiter="\t"))
        if number == 1 and row[:1] == ["query-id"]:
            continue
        if len(row) < 3:
            raise InputFileError(
                str(path), f"line {number} has {len(row)} columns, not 3"
            )
        try:
            score = int(row[2])
        except ValueError as error:
            raise InputFileError(
                str(path), f"line {number}: score {row[2]!r} is not an integer"
            ) from error
        qrels.setdefault(row[0], {})[row[1]] = score
    return qrels


def _lines(path: str | Path) -> Iterable[tuple[int, str]]:
    try:
        with open(path, encoding="utf-8") as handle:
            for number, line in enumerate(handle, start=1):
                if line.strip():
                    yield number, line.rstrip("\n")
    except FileNotFoundError as error:
        raise InputFileError(str(path), "file not found") from error
    except UnicodeDecodeError as error:
        raise InputFileError(str(path), f"not UTF-8 text: {error}") from error


def judged_queries(queries: Queries, qrels: Qrels) -> Queries:
    """Keep the queries that have at least one relevant document in ``qrels``."""
    kept = {
        query_id: text
        for query_id, text in queries.items()
        if any(score > 0 for score in qrels.get(query_id, {}).values())
    }
    if len(kept) < len(queries):
        logger.info(
            "%d of %d queries have no relevant document; left out",
            len(queries) - len(kept),
            len(queries),
        )
    if not kept:
        raise SearchError(
            "no query has a relevant document in the qrels; check the ids"
        )
    return kept


# --- retrieval -------------------------------------------------------------------


def analyse_queries(
    engine: Engine, index: str, expansion_field: str, queries: Queries
) -> dict[str, list[str]]:
    """Return the term-weight keys of every query."""
    return {
        query_id: analyse_query(engine, index, expansion_field, text)
        for query_id, text in queries.items()
    }


def retrieve(
    engine: Engine,
    index: str,
    queries: Queries,
    terms: Mapping[str, list[str]],
    spec: QuerySpec,
    depth: int = RUN_DEPTH,
) -> Run:
    """Run the spec's query for every query; return ``{query id: {doc id: score}}``.

    Raises:
        SearchError: the cluster rejected one of the searches.
    """
    run: Run = {}
    ids = list(queries)
    for start in range(0, len(ids), MSEARCH_BATCH):
        batch = ids[start : start + MSEARCH_BATCH]
        bodies = [
            {
                "size": depth,
                "_source": False,
                "query": build_query(
                    queries[query_id],
                    terms.get(query_id, []),
                    spec,
                    engine.feature_clause,
                ),
            }
            for query_id in batch
        ]
        for query_id, response in zip(
            batch, engine.msearch(index, bodies), strict=True
        ):
            if "error" in response:
                raise SearchError(
                    f"search for query {query_id} on index {index!r} failed: {response['error']}"
                )
            hits = response["hits"]["hits"]
            run[query_id] = {
                str(hit["_id"]): float(hit["_score"] or 0.0) for hit in hits
            }
    return run


def expansion_is_mapped(engine: Engine, index: str, expansion_field: str) -> bool:
    """Tell whether ``index`` maps the expansion's queries and terms.

    NOTE: ``index`` must name one index (or an alias of one index), as the
    engine's ``get_mapping`` reads a single mapping.
    """
    properties = engine.get_mapping(index).get("properties", {})
    expansion = properties.get(expansion_field, {}).get("properties", {})
    return "queries" in expansion and "terms" in expansion


# --- metrics ---------------------------------------------------------------------


def score_runs(
    qrels: Qrels,
    runs: Mapping[str, Run],
    stat_test: str = DEFAULT_STAT_TEST,
) -> list[VariantResult]:
    """Compute the metrics of each run, and p-values of each against the baseline.

    Queries missing from a run count as returning no documents. The first run
    is the baseline of the paired test.
    """
    from ranx import Qrels as RanxQrels
    from ranx import Run as RanxRun
    from ranx import compare

    if stat_test not in STAT_TESTS:
        raise SearchError(
            f"invalid statistical test {stat_test!r}; choose one of: {', '.join(STAT_TESTS)}"
        )
    ranx_qrels = RanxQrels(qrels)
    ranx_runs = [RanxRun(run, name=name) for name, run in runs.items()]
    report = compare(
        ranx_qrels,
        ranx_runs,
        list(METRICS.values()),
        stat_test=stat_test,
        max_p=SIGNIFICANCE_LEVEL,
        make_comparable=True,
        rounding_digits=4,
    ).to_dict()
    names = list(runs)
    baseline = names[0]
    results: list[VariantResult] = []
    for name in names:
        entry = report[name]
        scores = {
            ours: float(entry["scores"][theirs]) for ours, theirs in METRICS.items()
        }
        p_values: dict[str, float] = {}
        if name != baseline:
            against = entry["comparisons"][baseline]
            p_values = {
                ours: float(against[theirs]) for ours, theirs in METRICS.items()
            }
        results.append(VariantResult(name, scores, p_values))
    return results


def evaluate(
    engine: Engine,
    index: str,
    queries: Queries,
    qrels: Qrels,
    spec: QuerySpec,
    variants: Sequence[Variant] = VARIANTS,
    stat_test: str = DEFAULT_STAT_TEST,
) -> EvaluationReport:
    """Retrieve with every variant and score the runs against ``qrels``.

    Raises:
        SearchError: no query is judged, the index lacks the expansion while
            a variant needs it, or a search failed.
    """
    queries = judged_queries(queries, qrels)
    needs_expansion = any(
        part != "text" for variant in variants for part in variant.parts
    )
    if needs_expansion and not expansion_is_mapped(engine, index, spec.expansion_field):
        raise SearchError(
            f"index {index!r} has no expansion object {spec.expansion_field!r}; "
            f"expand it (d2q backfill or d2q import-queries) or pass --no-expansion"
        )
    needs_terms = any("terms" in variant.parts for variant in variants)
    terms = (
        analyse_queries(engine, index, spec.expansion_field, queries)
        if needs_terms
        else {}
    )
    runs: dict[str, Run] = {}
    for variant in variants:
        logger.info(
            "index=%s variant=%s: searching %d queries",
            index,
            variant.name,
            len(queries),
        )
        runs[variant.name] = retrieve(
            engine, index, queries, terms, spec.with_parts(variant.parts)
        )
    judged = {query_id: qrels[query_id] for query_id in queries}
    return EvaluationReport(
        len(queries), stat_test, score_runs(judged, runs, stat_test)
    )


# --- output ----------------------------------------------------------------------


def format_table(report: EvaluationReport) -> str:
    """Render the report as a text table; ``*`` marks p < 0.05 against BM25."""
    header = f"{'variant':<14}" + "".join(f"{metric:>12}" for metric in METRICS)
    lines = [header, "-" * len(header)]
    for result in report.results:
        cells = []
        for metric in METRICS:
            mark = "*" if result.p_values.get(metric, 1.0) < SIGNIFICANCE_LEVEL else " "
            cells.append(f"{result.scores[metric]:>11.4f}{mark}")
        lines.append(f"{result.name:<14}" + "".join(cells))
    lines.append(
        f"{report.queries} queries; * = p < {SIGNIFICANCE_LEVEL} against {BASELINE} "
        f"(paired {report.stat_test} test, ranx)"
    )
    return "\n".join(lines)


def plot_report(report: EvaluationReport, path: str | Path) -> None:
    """Draw a grouped bar chart of every variant's metrics into ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metrics = list(METRICS)
    width = 0.8 / max(1, len(report.results))
    figure, axes = plt.subplots(figsize=(8, 4.5))
    for number, result in enumerate(report.results):
        positions = [x + number * width for x in range(len(metrics))]
        bars = axes.bar(
            positions, [result.scores[m] for m in metrics], width, label=result.name
        )
        axes.bar_label(bars, fmt="%.3f", fontsize=7, padding=2)
    axes.set_xticks(
        [x + width * (len(report.results) - 1) / 2 for x in range(len(metrics))]
    )
    axes.set_xticklabels(metrics)
    axes.set_ylim(0, 1.05)
    axes.set_ylabel("mean over queries")
    axes.set_title(f"{report.queries} queries")
    axes.legend(loc="lower right", fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
