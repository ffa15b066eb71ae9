"""The ``d2q`` commands that use the expansion: search, eval, import-queries, export-pairs.

``worker.cli`` registers them with :func:`add_commands` and runs them through
:data:`COMMANDS`; each handler gets the settings and the parsed arguments.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from typing import Any

from worker.errors import SearchError
from worker.settings import Settings

EXIT_OK = 0
EXIT_FAILED = 1

# Arguments of these commands that are not settings.
ARGUMENTS = {
    "query_text",
    "size",
    "explain",
    "no_expansion",
    "json",
    "queries_file",
    "qrels_file",
    "plot",
    "stat_test",
    "input_file",
    "output_file",
}


def _weight_options() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(add_help=False)
    group = parser.add_argument_group("query weights")
    group.add_argument(
        "--text-weight", type=float, help="boost of BM25 on the text fields"
    )
    group.add_argument(
        "--queries-weight", type=float, help="boost of BM25 on the expansion's queries"
    )
    group.add_argument(
        "--terms-weight",
        type=float,
        help="boost of each rank_feature clause on the terms",
    )
    return parser


def add_commands(commands: Any, connection: Any, index: Any, model: Any) -> None:
    """Add the search, eval, import-queries and export-pairs subcommands."""
    weights = _weight_options()

    search = commands.add_parser(
        "search",
        parents=[connection, index, weights],
        help="search an index with the expansion and print the ranked hits",
    )
    search.add_argument("query_text", metavar="QUERY", help="text to search for")
    search.add_argument(
        "--size", type=int, default=10, help="hits to print (default 10)"
    )
    search.add_argument(
        "--explain", action="store_true", help="show each part's share of every score"
    )
    search.add_argument(
        "--no-expansion", action="store_true", help="plain BM25 on the text fields only"
    )
    search.add_argument("--json", action="store_true", help="print the hits as JSON")

    evaluate = commands.add_parser(
        "eval",
        parents=[connection, index, weights],
        help="compare BM25 with and without the expansion on judged queries",
    )
    evaluate.add_argument(
        "--queries", dest="queries_file", required=True, help="BEIR queries.jsonl"
    )
    evaluate.add_argument(
        "--qrels", dest="qrels_file", required=True, help="BEIR qrels TSV"
    )
    evaluate.add_argument("--plot", help="write a bar chart of the metrics to this PNG")
    evaluate.add_argument(
        "--json", action="store_true", help="print the metrics as JSON"
    )
    evaluate.add_argument(
        "--stat-test",
        default="student",
        choices=["student", "fisher", "tukey"],
        help="paired significance test against BM25 (default student: paired t-test)",
    )
    evaluate.add_argument(
        "--no-expansion", action="store_true", help="evaluate plain BM25 only"
    )

    import_queries = commands.add_parser(
        "import-queries",
        parents=[connection, index, model],
        help="write expansions from queries produced elsewhere (JSONL)",
    )
    import_queries.add_argument(
        "input_file",
        metavar="QUERIES.jsonl",
        help='one {"id": DOC_ID, "queries": [...]} object per line',
    )

    export = commands.add_parser(
        "export-pairs",
        parents=[connection, index, model],
        help="write (query, paragraph) pairs for training dense retrievers",
    )
    export.add_argument(
        "output_file", metavar="OUT.jsonl", help="file to write, - for stdout"
    )


def _connect(settings: Settings) -> Any:
    from worker.assembly import connect_cluster as connect

    return connect(settings)


def _query_spec(settings: Settings) -> Any:
    from worker.search import QuerySpec, SearchWeights

    weights = SearchWeights(
        settings.text_weight, settings.queries_weight, settings.terms_weight
    )
    return QuerySpec(tuple(settings.fields), settings.expansion_field, weights)


def command_search(settings: Settings, args: argparse.Namespace) -> int:
    from worker.search import format_hits, search

    if args.size < 1:
        raise SearchError(f"--size {args.size} must be 1 or more")
    assert settings.index is not None
    engine = _connect(settings)
    spec = _query_spec(settings)
    if args.no_expansion:
        spec = spec.with_parts(["text"])
    hits = search(
        engine, settings.index, args.query_text, spec, args.size, args.explain
    )
    if args.json:
        rows = [
            {
                "rank": h.rank,
                "id": h.id,
                "score": h.score,
                "parts": h.parts,
                "terms": h.terms,
            }
            for h in hits
        ]
        print(json.dumps(rows, ensure_ascii=False))
    else:
        print(format_hits(hits, args.explain))
    return EXIT_OK


def command_eval(settings: Settings, args: argparse.Namespace) -> int:
    from worker.evaluate import (
        VARIANTS,
        evaluate,
        format_table,
        plot_report,
        read_qrels,
        read_queries,
    )

    assert settings.index is not None
    queries = read_queries(args.queries_file)
    qrels = read_qrels(args.qrels_file)
    engine = _connect(settings)
    variants = VARIANTS[:1] if args.no_expansion else VARIANTS
    report = evaluate(
        engine,
        settings.index,
        queries,
        qrels,
        _query_spec(settings),
        variants,
        args.stat_test,
    )
    if args.plot:
        plot_report(report, args.plot)
    if args.json:
        print(json.dumps(report.as_dict()))
    else:
        print(format_table(report))
    return EXIT_OK


def command_import_queries(settings: Settings, args: argparse.Namespace) -> int:
    from worker.cluster.mapping import ensure_expansion_mapping
    from worker.cluster.writer import BulkWriter
    from worker.expansion.document import fingerprint
    from worker.files import (
        ImportConfig,
        QueryImporter,
        imported_model_name,
        load_token_counter,
    )

    assert settings.index is not None
    count_tokens = load_token_counter(settings.model)
    engine = _connect(settings)
    ensure_expansion_mapping(
        engine, settings.index, settings.expansion_field, settings.analyzer
    )
    model_name = imported_model_name(args.input_file)
    config = ImportConfig(
        index=settings.index,
        fields=tuple(settings.fields),
        expansion_field=settings.expansion_field,
        model_name=model_name,
        fingerprint=fingerprint(model_name, import_fingerprint_fields(settings)),
        max_terms=settings.max_terms,
        max_input_tokens=settings.max_input_tokens,
        page_size=settings.page_size,
    )
    writer = BulkWriter(
        engine,
        settings.expansion_field,
        settings.bulk_max_bytes,
        max_items=settings.page_size,
    )
    summary = QueryImporter(engine, writer, config, count_tokens).run(args.input_file)
    print(summary.line())
    return EXIT_OK if summary.failed == 0 and summary.conflicts == 0 else EXIT_FAILED


def import_fingerprint_fields(settings: Settings) -> dict[str, Any]:
    """Return the settings that change what an imported expansion contains."""
    return {
        "fields": list(settings.fields),
        "analyzer": settings.analyzer,
        "max_terms": settings.max_terms,
        "max_input_tokens": settings.max_input_tokens,
    }


def command_export_pairs(settings: Settings, args: argparse.Namespace) -> int:
    from worker.files import load_token_counter
    from worker.pairs import ExportConfig, export_pairs

    assert settings.index is not None
    count_tokens = load_token_counter(settings.model)
    engine = _connect(settings)
    config = ExportConfig(
        index=settings.index,
        fields=tuple(settings.fields),
        expansion_field=settings.expansion_field,
        max_input_tokens=settings.max_input_tokens,
        page_size=settings.page_size,
        keep_alive=settings.pit_keep_alive,
    )
    if args.output_file == "-":
        summary = export_pairs(engine, config, count_tokens, sys.stdout)
    else:
        with open(args.output_file, "w", encoding="utf-8") as output:
            summary = export_pairs(engine, config, count_tokens, output)
    print(summary.line(), file=sys.stderr if args.output_file == "-" else sys.stdout)
    return EXIT_OK


Handler = Callable[[Settings, argparse.Namespace], int]

COMMANDS: dict[str, Handler] = {
    "search": command_search,
    "eval": command_eval,
    "import-queries": command_import_queries,
    "export-pairs": command_export_pairs,
}
