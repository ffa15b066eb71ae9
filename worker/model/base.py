"""The generator interface and its settings."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from worker.model.batching import DEFAULT_MAX_BATCH_TOKENS


@dataclass(frozen=True)
class GenerationConfig:
    """The model to load and how to generate, as plain values taken from the settings."""

    model: str
    backend: str = "torch"
    device: str = "auto"
    batch_size: int = 8
    queries_per_paragraph: int = 20
    decoding: str = "sampling"
    top_k: int = 10
    max_input_tokens: int = 320
    max_new_tokens: int = 64
    min_new_tokens: int = 0
    seed: int | None = None
    max_batch_tokens: int = DEFAULT_MAX_BATCH_TOKENS
    output_vocabulary: str | None = None
    compute_type: str = "auto"
    cache_dir: str | None = None


class QueryGenerator(Protocol):
    """Generates queries for paragraphs."""

    config: GenerationConfig

    def count_tokens(self, text: str) -> int:
        """Return the number of model tokens of ``text``, end-of-sequence included."""
        ...

    def generate(self, paragraphs: Sequence[str]) -> list[list[str]]:
        """Return ``queries_per_paragraph`` raw queries for each paragraph, in order."""
        ...
