"""Command-line glue for running many workers: slice options, change pipeline, service.

The commands in ``worker.cli`` call these functions, so the fleet features
stay in one place. They are the ``--slice`` and metrics options, the values the
pipeline needs for slices, the service (metrics, probes, log ids) around a
running pipeline, and ``d2q verify``.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
from dataclasses import dataclass
from typing import Any

from worker.logs import set_worker_ids
from worker.metrics import WorkerMetrics
from worker.service import HealthState, ServiceServer, observe_pipeline
from worker.settings import Settings

logger = logging.getLogger(__name__)


def fleet_options() -> argparse.ArgumentParser:
    """Return the parent parser of the options for running as one of many workers."""
    parser = argparse.ArgumentParser(add_help=False)
    group = parser.add_argument_group("fleet")
    group.add_argument(
        "--slice",
        help="expand only slice I of N of the documents, written I/N (for example "
        "0/4); N workers with slices 0/N to N-1/N cover the index once",
    )
    group.add_argument(
        "--metrics-port",
        type=int,
        help="serve /metrics, /healthz and /readyz on this port (default: off)",
    )
    group.add_argument(
        "--metrics-host",
        help="address the metrics server binds to (default 127.0.0.1; 0.0.0.0 in "
        "a container)",
    )
    group.add_argument(
        "--log-repeat-seconds",
        type=float,
        help="log a repeated warning or error once per this many seconds and "
        "count the rest; 0 logs all (default 60)",
    )
    return parser


def pipeline_options(settings: Settings, engine: Any) -> dict[str, Any]:
    """Return the PipelineConfig values of the fleet; log whether changes are seen."""
    from worker.cluster.ingest import attached_indices

    assert settings.index is not None
    watched = attached_indices(engine, settings.index, settings.change_pipeline)
    if watched:
        logger.info(
            "change pipeline %s marks edited documents of: %s",
            settings.change_pipeline,
            ", ".join(watched),
        )
    else:
        logger.info(
            "no change pipeline on index %s: edited documents are expanded again "
            "only when their expansion object is dropped (d2q init "
            "--attach-change-pipeline adds one)",
            settings.index,
        )
    return {"slice_id_max": settings.slice_id_max}


@dataclass
class Service:
    """The metrics and probes of one running worker."""

    metrics: WorkerMetrics
    health: HealthState
    server: ServiceServer | None = None

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()


def start_service(settings: Settings, pipeline: Any, metrics: WorkerMetrics) -> Service:
    """Hook metrics and probes into ``pipeline``; serve them if a port is set."""
    assert settings.index is not None
    set_worker_ids(settings.index, settings.slice)
    metrics.describe_worker(settings.index, settings.slice, settings.model)
    health = HealthState(stall_seconds=max(900.0, 10 * settings.poll_seconds))
    observe_pipeline(pipeline, metrics, health)
    # The model is loaded and the cluster was reached: ready until a pass fails.
    health.set_ready(True, "model loaded and cluster reached")
    service = Service(metrics, health)
    if settings.metrics_port is not None:
        service.server = ServiceServer(
            settings.metrics_host, settings.metrics_port, metrics, health
        ).start()
    return service


def verify_command(settings: Settings, engine: Any) -> dict[str, Any]:
    """Mark the documents whose text changed unseen; return the counts as a dict."""
    from worker.cluster.writer import BulkWriter
    from worker.expansion.document import fingerprint
    from worker.verify import VerifyConfig, verify_sources

    assert settings.index is not None
    writer = BulkWriter(
        engine,
        settings.expansion_field,
        settings.bulk_max_bytes,
        max_items=settings.page_size,
    )
    config = VerifyConfig(
        index=settings.index,
        fields=tuple(settings.fields),
        expansion_field=settings.expansion_field,
        fingerprint=fingerprint(
            settings.model, settings.generation_fingerprint_fields()
        ),
        page_size=settings.page_size,
        keep_alive=settings.pit_keep_alive,
        slice_id_max=settings.slice_id_max,
    )
    summary = verify_sources(engine, writer, config)
    return {"index": settings.index, **dataclasses.asdict(summary)}
