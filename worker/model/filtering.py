"""A generator wrapper that keeps each paragraph's best queries (Doc2Query--)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from worker.errors import ModelLoadError
from worker.expansion.filtering import keep_best
from worker.expansion.queries import clean_queries
from worker.model.base import GenerationConfig, QueryGenerator
from worker.model.scoring import CrossEncoderScorer, QueryScorer

logger = logging.getLogger(__name__)


class FilteredGenerator:
    """Generates with an inner generator, then keeps each paragraph's best queries.

    Queries are cleaned and deduplicated before scoring, so the kept fraction
    counts usable queries only.
    """

    def __init__(
        self, generator: QueryGenerator, scorer: QueryScorer, keep_fraction: float
    ) -> None:
        self.generator = generator
        self.scorer = scorer
        self.keep_fraction = keep_fraction
        self.config: GenerationConfig = generator.config

    def count_tokens(self, text: str) -> int:
        return self.generator.count_tokens(text)

    def __getattr__(self, name: str) -> Any:
        # Anything else (statistics, close) belongs to the inner generator.
        return getattr(self.generator, name)

    def generate(self, paragraphs: Sequence[str]) -> list[list[str]]:
        """Generate queries for each paragraph and keep the best-scoring fraction."""
        cleaned = [clean_queries(raw) for raw in self.generator.generate(paragraphs)]
        pairs = [
            (paragraph, query)
            for paragraph, queries in zip(paragraphs, cleaned, strict=True)
            for query in queries
        ]
        scores = self.scorer.score(pairs) if pairs else []
        kept: list[list[str]] = []
        offset = 0
        for queries in cleaned:
            kept.append(
                keep_best(
                    queries, scores[offset : offset + len(queries)], self.keep_fraction
                )
            )
            offset += len(queries)
        logger.debug("kept %d of %d queries", sum(map(len, kept)), len(pairs))
        return kept


def apply_query_filter(
    generator: QueryGenerator, keep_fraction: float, filter_model: str | None
) -> QueryGenerator:
    """Wrap ``generator`` in a filter when ``keep_fraction`` is below 1.

    The scorer is the cross-encoder ``filter_model`` when given, else the
    generator's own ``score`` method.

    Raises:
        ModelLoadError: the cross-encoder cannot be loaded, or the generator's
            backend has no ``score`` method.
    """
    if keep_fraction >= 1:
        return generator
    scorer: Any
    if filter_model:
        from worker.model.torch_backend import resolve_device

        device = resolve_device(generator.config.device)
        scorer = CrossEncoderScorer.load(
            filter_model, device, generator.config.batch_size
        )
    elif hasattr(generator, "score"):
        scorer = generator
    else:
        raise ModelLoadError(
            f"the {generator.config.backend} backend cannot score queries; use the "
            f"torch backend or pass a cross-encoder with --filter-model"
        )
    return FilteredGenerator(generator, scorer, keep_fraction)
