"""The ``d2q`` command line: parse arguments, build settings, call one entry point."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from worker import offline, search_commands
from worker.assembly import build_pipeline, connect_cluster, current_fingerprint
from worker.errors import D2QError
from worker.fleet import fleet_options, start_service, verify_command
from worker.logs import set_worker_ids
from worker.metrics import WorkerMetrics
from worker.settings import QUERIES_PER_PARAGRAPH_RANGE, Settings, load_settings
from worker.shutdown import StopHandler

logger = logging.getLogger("worker")

EXIT_OK = 0
EXIT_FAILED_DOCUMENTS = 1
EXIT_ERROR = 2


def configure_logging(
    level: str, log_format: str, repeat_seconds: float = 60.0
) -> None:
    """Log text or JSON lines with index, slice and batch ids to standard error."""
    from worker.logs import configure_logging as configure

    configure(level, log_format, repeat_seconds)


# --- arguments -------------------------------------------------------------------


def _connection_options() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(add_help=False)
    group = parser.add_argument_group("cluster")
    group.add_argument(
        "--url", help="cluster URL (env D2Q_URL; default http://localhost:9200)"
    )
    group.add_argument(
        "--engine",
        choices=["auto", "opensearch", "elasticsearch"],
        help="server type; default: detect",
    )
    group.add_argument(
        "--ca-certs", help="CA bundle used to verify the server's TLS certificate"
    )
    group.add_argument(
        "--insecure",
        action="store_true",
        default=None,
        help="do not verify TLS certificates (logs a warning)",
    )
    group.add_argument(
        "--aws-region",
        help="sign requests with AWS SigV4 for this region (env D2Q_AWS_REGION); "
        "credentials come from the usual AWS sources",
    )
    group.add_argument(
        "--aws-service",
        choices=["es", "aoss"],
        help="service name of SigV4 signing: es for a managed domain, aoss for "
        "OpenSearch Serverless (default es)",
    )
    group.add_argument(
        "--request-timeout",
        type=float,
        help="seconds to wait for one request (default 60)",
    )
    group.add_argument("--config", help="TOML settings file (env D2Q_CONFIG)")
    group.add_argument(
        "--log-level", help="DEBUG, INFO, WARNING or ERROR (default INFO)"
    )
    group.add_argument(
        "--log-format", choices=["text", "json"], help="log line format (default text)"
    )
    return parser


def _index_options() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(add_help=False)
    group = parser.add_argument_group("index")
    group.add_argument(
        "--index",
        required=True,
        help="index to expand: a name, a comma-separated list, a pattern or an alias",
    )
    group.add_argument(
        "--field",
        dest="fields",
        action="append",
        help="source text field, repeat for several (default: title and text)",
    )
    group.add_argument(
        "--expansion-field", help="name of the expansion object (default doc2query)"
    )
    group.add_argument(
        "--analyzer", help="analyzer of the generated queries (default spanish)"
    )
    return parser


def _model_options() -> argparse.ArgumentParser:
    low, high = QUERIES_PER_PARAGRAPH_RANGE
    parser = argparse.ArgumentParser(add_help=False)
    group = parser.add_argument_group("model")
    group.add_argument("--model", help="model hub name or local folder")
    group.add_argument("--device", help="auto, cpu or cuda (default auto)")
    group.add_argument(
        "--batch-size", type=int, help="paragraphs per generate call (default 8)"
    )
    group.add_argument(
        "--queries-per-paragraph",
        type=int,
        help=f"queries generated per paragraph, {low}-{high} (default 20)",
    )
    group.add_argument("--decoding", help="sampling (top-k) or beam (default sampling)")
    group.add_argument("--top-k", type=int, help="top-k of sampling (default 10)")
    group.add_argument(
        "--max-new-tokens", type=int, help="maximum tokens per query (default 64)"
    )
    group.add_argument(
        "--min-new-tokens", type=int, help="minimum tokens per query (default 0)"
    )
    group.add_argument("--seed", type=int, help="random seed of sampling")
    group.add_argument(
        "--backend",
        choices=["torch", "ctranslate2"],
        help="generation backend (default torch)",
    )
    group.add_argument(
        "--max-batch-tokens",
        type=int,
        help="token budget of one generate call: paragraphs x queries x "
        "(longest input + max new tokens) (default 65536)",
    )
    group.add_argument(
        "--compute-type",
        help="CTranslate2 compute type: auto (int8 on CPU, bfloat16 on GPU), int8, "
        "int8_float32, int8_float16, int8_bfloat16, float16, bfloat16 or float32",
    )
    group.add_argument(
        "--output-vocabulary",
        help="file of allowed output pieces, one per line; restricts the output layer",
    )
    group.add_argument(
        "--page-size",
        type=int,
        help="documents per page and per bulk request (default 64)",
    )
    group.add_argument(
        "--keep-fraction",
        type=float,
        help="keep each paragraph's best fraction of queries, 0-1 (default 1: keep all)",
    )
    group.add_argument(
        "--filter-model",
        help="Hugging Face cross-encoder that scores queries for --keep-fraction "
        "(default: the generator's length-normalised log-likelihood)",
    )
    return parser


def _reliability_options() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(add_help=False)
    group = parser.add_argument_group("limits and faults")
    group.add_argument(
        "--bulk-max-bytes",
        type=int,
        help="maximum bytes of one bulk request (default 5000000)",
    )
    group.add_argument(
        "--pit-keep-alive",
        help="how long the point in time lives between pages (default 10m)",
    )
    group.add_argument(
        "--max-text-chars",
        type=int,
        help="characters of a document's text that are expanded; the rest is cut (default 200000)",
    )
    group.add_argument(
        "--shutdown-grace-seconds",
        type=float,
        help="after the first SIGTERM or SIGINT, seconds to finish the batch in flight "
        "before exiting anyway (default 30)",
    )
    return parser


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="d2q", description="Expand documents with doc2query queries."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    connection, index, model = _connection_options(), _index_options(), _model_options()
    limits = _reliability_options()
    fleet = fleet_options()

    cluster = commands.add_parser(
        "cluster", help="run a local single-node server for development"
    )
    cluster.add_argument("action", choices=["start", "stop", "status"])
    cluster.add_argument(
        "--engine", default="opensearch", help="engine to run (default opensearch)"
    )
    cluster.add_argument(
        "--port", type=int, default=9200, help="HTTP port on 127.0.0.1 (default 9200)"
    )
    cluster.add_argument("--heap", default="512m", help="JVM heap size (default 512m)")

    init = commands.add_parser(
        "init",
        parents=[connection, index],
        help="add the expansion object to an index's mapping",
    )
    init.add_argument(
        "--attach-change-pipeline",
        action="store_true",
        help="also store the change-marking ingest pipeline and make it the index's "
        "final pipeline, so edited documents are expanded again",
    )

    backfill = commands.add_parser(
        "backfill",
        parents=[connection, index, model, limits, fleet],
        help="expand every pending document once",
    )
    backfill.add_argument(
        "--outage-budget-seconds",
        type=float,
        help="seconds the cluster may stay unavailable before the backfill exits with "
        "an error (default 600)",
    )
    backfill.add_argument("--limit", type=int, help="stop after this many documents")
    backfill.add_argument(
        "--retry-failed",
        action="store_true",
        default=None,
        help="also retry failed documents",
    )
    backfill.add_argument(
        "--no-progress", dest="progress", action="store_false", default=None
    )

    run = commands.add_parser(
        "run",
        parents=[connection, index, model, limits, fleet],
        help="expand new documents until stopped",
    )
    run.add_argument(
        "--poll-seconds",
        type=float,
        help="wait between passes when nothing is pending (default 30)",
    )

    commands.add_parser(
        "status",
        parents=[connection, index, model],
        help="count documents by expansion state",
    )
    commands.add_parser(
        "verify",
        parents=[connection, index, model, fleet],
        help="hash every expanded document's text again and mark the changed ones "
        "for the daemon",
    )

    search_commands.add_commands(commands, connection, index, model)
    offline.add_command(commands, [model])

    tiny = commands.add_parser(
        "build-tiny-model", help="build a tiny random mT5 model for tests and the demo"
    )
    tiny.add_argument("target", help="folder to write the model to")
    tiny.add_argument(
        "--corpus",
        required=True,
        help="JSONL file whose 'text' fields train the vocabulary",
    )
    return parser


_NOT_SETTINGS = {
    "command",
    "action",
    "config",
    "port",
    "heap",
    "target",
    "corpus",
    "attach_change_pipeline",
    *search_commands.ARGUMENTS,
    *offline.ARGUMENTS,
}


def settings_from_args(args: argparse.Namespace) -> Settings:
    flags = {
        key: value for key, value in vars(args).items() if key not in _NOT_SETTINGS
    }
    return load_settings(flags, os.environ, getattr(args, "config", None))


# --- commands ----------------------------------------------------------------------


def _command_cluster(args: argparse.Namespace) -> int:
    from worker.cluster import local

    node = local.get_node(args.engine, args.port)
    if args.action == "start":
        print(local.start(node, heap=args.heap))
    elif args.action == "stop":
        print("stopped" if local.stop(node) else "not running")
    else:
        print(json.dumps(local.status(node), indent=2))
    return EXIT_OK


def _command_init(settings: Settings, attach_change_pipeline: bool = False) -> int:
    from worker.cluster.mapping import ensure_expansion_mapping

    engine = connect_cluster(settings)
    assert settings.index is not None
    ensure_expansion_mapping(
        engine, settings.index, settings.expansion_field, settings.analyzer
    )
    print(
        f"index {settings.index}: expansion object {settings.expansion_field!r} mapped"
    )
    if attach_change_pipeline:
        from worker.cluster.ingest import install_change_pipeline

        names = install_change_pipeline(
            engine, settings.index, settings.expansion_field, settings.change_pipeline
        )
        print(
            f"change pipeline {settings.change_pipeline!r} attached to: {', '.join(names)}"
        )
    return EXIT_OK


def _command_status(settings: Settings) -> int:
    from worker.cluster.counts import expansion_counts

    engine = connect_cluster(settings)
    assert settings.index is not None
    counts = expansion_counts(
        engine, settings.index, settings.expansion_field, current_fingerprint(settings)
    )
    print(json.dumps({"index": settings.index, **counts}))
    return EXIT_OK


def install_stop_handlers(pipeline: Any, grace_seconds: float) -> StopHandler:
    """First SIGINT or SIGTERM: finish the page in flight. Second: exit at once."""
    handler = StopHandler(pipeline.request_stop, grace_seconds)
    handler.install()
    return handler


def _command_backfill(settings: Settings) -> int:
    from tqdm import tqdm

    from worker.cluster.mapping import ensure_expansion_mapping

    engine = connect_cluster(settings)
    assert settings.index is not None
    ensure_expansion_mapping(
        engine, settings.index, settings.expansion_field, settings.analyzer
    )
    metrics = WorkerMetrics()
    pipeline = build_pipeline(settings, engine, metrics)
    service = start_service(settings, pipeline, metrics)
    stop_handler = install_stop_handlers(pipeline, settings.shutdown_grace_seconds)
    total = pipeline.pending_count()
    if settings.limit is not None:
        total = min(total, settings.limit)
    try:
        with tqdm(
            total=total, unit="doc", disable=not settings.progress, file=sys.stderr
        ) as bar:
            summary = pipeline.backfill(settings.limit, progress=bar.update)
    finally:
        stop_handler.cancel()
        service.stop()
    print(summary.line())
    return EXIT_OK if summary.failed == 0 else EXIT_FAILED_DOCUMENTS


def _command_run(settings: Settings) -> int:
    from worker.cluster.mapping import ensure_expansion_mapping

    engine = connect_cluster(settings)
    assert settings.index is not None
    ensure_expansion_mapping(
        engine, settings.index, settings.expansion_field, settings.analyzer
    )
    metrics = WorkerMetrics()
    pipeline = build_pipeline(settings, engine, metrics)
    service = start_service(settings, pipeline, metrics)
    stop_handler = install_stop_handlers(pipeline, settings.shutdown_grace_seconds)
    logger.info(
        "daemon started on index %s, polling every %.0f s",
        settings.index,
        settings.poll_seconds,
    )
    try:
        summary = pipeline.run_forever(settings.poll_seconds)
    finally:
        stop_handler.cancel()
        service.stop()
    logger.info("daemon stopped: %s", summary.line())
    print(summary.line())
    return EXIT_OK


def _command_build_tiny_model(args: argparse.Namespace) -> int:
    from worker.model.tiny import build_tiny_model

    with open(args.corpus, encoding="utf-8") as handle:
        texts = [json.loads(line).get("text", "") for line in handle if line.strip()]
    print(build_tiny_model(Path(args.target), [text for text in texts if text]))
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "cluster":
            configure_logging("INFO", "text")
            return _command_cluster(args)
        if args.command == "build-tiny-model":
            configure_logging("WARNING", "text")
            return _command_build_tiny_model(args)
        settings = settings_from_args(args)
        configure_logging(
            settings.log_level, settings.log_format, settings.log_repeat_seconds
        )
        set_worker_ids(settings.index, settings.slice)
        logger.debug("settings (secrets hidden): %s", settings.redacted())
        if args.command == "expand-file":
            return offline.command_expand_file(settings, args)
        if args.command in search_commands.COMMANDS:
            return search_commands.COMMANDS[args.command](settings, args)
        if args.command == "init":
            return _command_init(settings, args.attach_change_pipeline)
        if args.command == "verify":
            counts = verify_command(settings, connect_cluster(settings))
            print(json.dumps(counts))
            return EXIT_OK if counts["failed"] == 0 else EXIT_FAILED_DOCUMENTS
        handlers = {
            "status": _command_status,
            "backfill": _command_backfill,
            "run": _command_run,
        }
        return handlers[args.command](settings)
    except D2QError as error:
        print(f"d2q: error: {error}", file=sys.stderr)
        return EXIT_ERROR
    except Exception as error:
        from worker.outage import is_transient

        if not is_transient(error):
            raise
        print(
            f"d2q: error: the cluster is unavailable: {error}; try again later",
            file=sys.stderr,
        )
        return EXIT_ERROR
