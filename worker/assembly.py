"""Build the cluster engine, the generator and the pipeline from the settings.

The commands in ``worker.cli``, ``worker.offline``, ``worker.search_commands``
and the demo share these, so settings turn into plain config objects in one place.
"""

from __future__ import annotations

import logging
from typing import Any

from worker.fleet import pipeline_options
from worker.settings import Settings

logger = logging.getLogger(__name__)


def connect_cluster(settings: Settings) -> Any:
    """Connect to the cluster that the settings name."""
    from worker.cluster.engine import ConnectionConfig, connect

    if settings.insecure:
        logger.warning("TLS certificate verification is off (--insecure)")
    return connect(
        ConnectionConfig(
            url=settings.url,
            engine=settings.engine,
            username=settings.username,
            password=settings.password,
            api_key=settings.api_key,
            ca_certs=settings.ca_certs,
            insecure=settings.insecure,
            request_timeout=settings.request_timeout,
            aws_region=settings.aws_region,
            aws_service=settings.aws_service,
        )
    )


def current_fingerprint(settings: Settings) -> str:
    """Return the fingerprint of expansions made with these settings."""
    from worker.expansion.document import fingerprint

    return fingerprint(settings.model, settings.generation_fingerprint_fields())


def generation_config(settings: Settings) -> Any:
    """Return the model's plain settings as a ``GenerationConfig``."""
    from worker.model import GenerationConfig

    return GenerationConfig(
        model=settings.model,
        backend=settings.backend,
        device=settings.device,
        batch_size=settings.batch_size,
        queries_per_paragraph=settings.queries_per_paragraph,
        decoding=settings.decoding,
        top_k=settings.top_k,
        max_input_tokens=settings.max_input_tokens,
        max_new_tokens=settings.max_new_tokens,
        min_new_tokens=settings.min_new_tokens,
        seed=settings.seed,
        max_batch_tokens=settings.max_batch_tokens,
        output_vocabulary=settings.output_vocabulary,
        compute_type=settings.compute_type,
    )


def build_pipeline(settings: Settings, engine: Any, metrics: Any = None) -> Any:
    """Load the model and join it with the cluster side.

    With ``metrics`` (a ``WorkerMetrics``), model and cluster time are recorded.
    """
    from worker.cluster.writer import BulkWriter
    from worker.model import load_generator
    from worker.model.filtering import apply_query_filter
    from worker.pipeline import Pipeline, PipelineConfig

    assert settings.index is not None
    generator = load_generator(generation_config(settings))
    generator = apply_query_filter(
        generator, settings.keep_fraction, settings.filter_model
    )
    if metrics is not None:
        from worker.metrics import TimedEngine, TimedGenerator

        engine = TimedEngine(engine, metrics)
        generator = TimedGenerator(generator, metrics)
    writer = BulkWriter(
        engine,
        settings.expansion_field,
        settings.bulk_max_bytes,
        max_items=settings.page_size,
    )
    config = PipelineConfig(
        index=settings.index,
        fields=tuple(settings.fields),
        expansion_field=settings.expansion_field,
        model_name=settings.model,
        fingerprint=current_fingerprint(settings),
        page_size=settings.page_size,
        keep_alive=settings.pit_keep_alive,
        max_terms=settings.max_terms,
        max_input_tokens=settings.max_input_tokens,
        retry_failed=settings.retry_failed,
        max_text_chars=settings.max_text_chars,
        outage_budget_seconds=settings.outage_budget_seconds,
        **pipeline_options(settings, engine),
    )
    return Pipeline(engine, generator, writer, config)
